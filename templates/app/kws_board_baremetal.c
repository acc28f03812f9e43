/* kws_board_baremetal.c - kws_board.h with no framework and no CMSIS-Core headers.
 *
 * Why: the fallback for a vendor SDK or a plain Makefile build, and what kwsgen's cross-compile
 * check builds for every real board (framework headers are not needed to prove that the
 * application and the generated library compile with the board's flags). It is compiled only
 * when no framework is in use: Arduino defines ARDUINO, STM32Cube defines USE_HAL_DRIVER,
 * kwsgen's emulated platform defines KWSGEN_QEMU.
 *
 * Console: kws_board_write() is weak; the default sends text to ITM stimulus port 0 (SWO) on
 * cores that have an ITM, when a debugger enabled it, and drops it otherwise. Define your own
 * kws_board_write() to print over your UART.
 * Time: DWT->CYCCNT where the core has it; on v6-M (Cortex-M0/M0+) SysTick at the core clock,
 * extended to 32 bits by its interrupt (SysTick_Handler, the name every CMSIS startup file uses).
 * Define KWS_BOARD_CPU_HZ to the core clock to have times printed in milliseconds too.
 */
#if !defined(ARDUINO) && !defined(USE_HAL_DRIVER) && !defined(KWSGEN_QEMU)

#include <stddef.h>
#include <string.h>

#include "kws_board.h"
#include "kws_cycles.h"

#ifndef KWS_BOARD_CPU_HZ
#define KWS_BOARD_CPU_HZ 0u
#endif

#define KWS_REG(addr) (*(volatile uint32_t *)(addr))

void kws_board_write(const char *text, size_t n);

#if KWS_HAS_DWT
#define KWS_ITM_STIM0 KWS_REG(0xE0000000u)
#define KWS_ITM_TER KWS_REG(0xE0000E00u)
#define KWS_ITM_TCR KWS_REG(0xE0000E80u)

__attribute__((weak)) void kws_board_write(const char *text, size_t n)
{
    size_t i;
    if (!(KWS_ITM_TCR & 1u) || !(KWS_ITM_TER & 1u)) {
        return; /* no debugger listening */
    }
    for (i = 0; i < n; i++) {
        while (KWS_ITM_STIM0 == 0u) {
        }
        *(volatile uint8_t *)0xE0000000u = (uint8_t)text[i];
    }
}
#else
__attribute__((weak)) void kws_board_write(const char *text, size_t n)
{
    (void)text;
    (void)n;
}
#endif

static kws_ticks_unit_t g_unit = KWS_TICKS_NONE;

#if !KWS_HAS_DWT
#define KWS_SYST_CSR KWS_REG(0xE000E010u)
#define KWS_SYST_RVR KWS_REG(0xE000E014u)
#define KWS_SYST_CVR KWS_REG(0xE000E018u)
#define KWS_SYST_MAX 0x00FFFFFFu

static volatile uint32_t g_systick_wraps;

void SysTick_Handler(void);
void SysTick_Handler(void)
{
    g_systick_wraps++;
}

static uint32_t systick_cycles(void)
{
    uint32_t wraps, value;
    do {
        wraps = g_systick_wraps;
        value = KWS_SYST_CVR;
    } while (wraps != g_systick_wraps);
    return (wraps << 24) + (KWS_SYST_MAX - value);
}
#endif

void kws_board_init(void)
{
#if KWS_HAS_DWT
    g_unit = kws_dwt_start() ? KWS_TICKS_CYCLES : KWS_TICKS_NONE;
#else
    KWS_SYST_RVR = KWS_SYST_MAX;
    KWS_SYST_CVR = 0u;
    KWS_SYST_CSR = 7u; /* core clock, interrupt on wrap, enabled */
    g_unit = KWS_TICKS_CYCLES;
#endif
}

void kws_board_print(const char *text)
{
    kws_board_write(text, strlen(text));
}

uint32_t kws_board_ticks(void)
{
#if KWS_HAS_DWT
    return g_unit == KWS_TICKS_CYCLES ? kws_dwt_read() : 0u;
#else
    return systick_cycles();
#endif
}

kws_ticks_unit_t kws_board_ticks_unit(void)
{
    return g_unit;
}

uint32_t kws_board_cpu_hz(void)
{
    return KWS_BOARD_CPU_HZ;
}

void kws_board_finish(int status)
{
    (void)status;
    for (;;) {
        __asm__ volatile("wfi");
    }
}

int main(void)
{
    kws_board_init();
    kws_board_finish(kws_app_run());
    return 0;
}

#else
typedef int kws_board_baremetal_unused; /* a framework provides the board layer */
#endif
