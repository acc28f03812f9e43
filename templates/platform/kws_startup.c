/* kws_startup.c - vector table, reset handler and fault handlers for kwsgen's emulated boards.
 *
 * Why kwsgen's own: the firmware must run bare-metal under QEMU with no vendor pack, end with
 * main()'s return value as QEMU's exit status (semihosting SYS_EXIT_EXTENDED), and turn every
 * fault into a printed, parsable report and a non-zero exit instead of a hang.
 * Symbols come from kwsgen's linker script (templates/platform/kws_link.ld.j2).
 */
#include <stdint.h>
#include <string.h>

#include "kws_platform.h"
#include "kws_profile.h"
#include "kws_semihost.h"

#if defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8M_BASE__) || defined(__ARM_ARCH_8_1M_MAIN__)
#define KWS_HAS_STACK_LIMIT 1 /* v8-M: MSPLIM traps a stack overflow at once */
#endif
#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__) || \
    defined(__ARM_ARCH_8_1M_MAIN__)
#define KWS_HAS_CFSR 1 /* configurable fault status registers (not on v6-M / v8-M Baseline) */
#endif

#define KWS_REG(addr) (*(volatile uint32_t *)(addr))
#define SCB_VTOR 0xE000ED08u
#define SCB_CCR 0xE000ED14u
#define SCB_SHCSR 0xE000ED24u
#define SCB_CFSR 0xE000ED28u
#define SCB_HFSR 0xE000ED2Cu
#define SCB_MMFAR 0xE000ED34u
#define SCB_BFAR 0xE000ED38u
#define SCB_CPACR 0xE000ED88u
#define SCB_SFSR 0xE000EDE4u

#define KWS_STACK_PAINT 0xC5C5C5C5u

extern uint32_t __data_start[], __data_end[], __data_load[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __stack_limit[], __stack_top[];

int main(int argc, char **argv);
void Reset_Handler(void);
void kws_fault_entry(void);
void kws_fault_report(const uint32_t *frame, uint32_t exc_return);

/* The table the core reads at reset: initial stack pointer, then the system handlers.
 * Every handler but reset reports a fault (no interrupt is ever enabled). */
typedef struct {
    uint32_t *initial_sp;
    void (*handlers[15])(void);
} kws_vector_table_t;

__attribute__((section(".kws_vectors"), used, aligned(128))) const kws_vector_table_t kws_vectors = {
    __stack_top,
    {
        Reset_Handler,   kws_fault_entry, kws_fault_entry, kws_fault_entry, kws_fault_entry,
        kws_fault_entry, kws_fault_entry, kws_fault_entry, kws_fault_entry, kws_fault_entry,
        kws_fault_entry, kws_fault_entry, kws_fault_entry, kws_fault_entry, kws_fault_entry,
    },
};

static char g_cmdline[KWS_CMDLINE_MAX];
static char *g_argv[KWS_ARGV_MAX];

size_t kws_stack_size_bytes(void)
{
    return (size_t)((uintptr_t)__stack_top - (uintptr_t)__stack_limit);
}

size_t kws_stack_used_bytes(void)
{
    const uint32_t *p = __stack_limit;
    while (p < __stack_top && *p == KWS_STACK_PAINT) {
        p++;
    }
    return (size_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

/* Copy .data, zero .bss. Not inlined, so that no instruction of it (the compiler may use
 * FPU/MVE registers for these loops) can be scheduled before the FPU is enabled. */
__attribute__((noinline)) static void init_memory(void)
{
    const uint32_t *src = __data_load;
    uint32_t *dst = __data_start;
    while (dst < __data_end) {
        *dst++ = *src++;
    }
    for (dst = __bss_start; dst < __bss_end; dst++) {
        *dst = 0;
    }
}

/* Fill the unused stack with a pattern, below the reset handler's own frame. */
__attribute__((noinline)) static void paint_stack(void)
{
    uint32_t *p = __stack_limit;
    uint32_t *here = (uint32_t *)__builtin_frame_address(0) - 64;
    while (p < here) {
        *p++ = KWS_STACK_PAINT;
    }
}

__attribute__((noreturn)) void Reset_Handler(void)
{
    int argc, rc;
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    /* Full access to CP10/CP11 (FPU and MVE) before any floating-point or vector instruction. */
    KWS_REG(SCB_CPACR) |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
#ifdef KWS_HAS_STACK_LIMIT
    __asm__ volatile("msr msplim, %0" : : "r"(__stack_limit));
#endif
#ifdef KWS_HAS_CFSR
    /* Exceptions use this table even when the core booted through an alias of its memory
     * (AN547 resets with VTOR 0x0, the ITCM's Non-secure address). Separate MemManage,
     * BusFault and UsageFault handlers give clearer reports than a forced HardFault, and
     * integer division by zero traps instead of returning 0. */
    KWS_REG(SCB_VTOR) = (uint32_t)(uintptr_t)&kws_vectors;
    KWS_REG(SCB_SHCSR) |= (1u << 16) | (1u << 17) | (1u << 18);
    KWS_REG(SCB_CCR) |= 1u << 4;
#endif
    init_memory();
    paint_stack();

    argc = kws_semihost_args(g_cmdline, sizeof g_cmdline, g_argv, (int)(sizeof g_argv / sizeof g_argv[0]) - 1);
    g_argv[argc] = NULL;

    KWS_REGION_BEGIN(main);
    rc = main(argc, g_argv);
    KWS_REGION_END(main);

    if (__stack_limit[0] != KWS_STACK_PAINT) {
        kws_semihost_printf("%s stack overflow: more than %u bytes of stack used (board stack_bytes)\n",
                            KWS_FAULT_TAG, (unsigned)kws_stack_size_bytes());
        kws_semihost_exit(KWS_EXIT_FAULT);
    }
    kws_semihost_exit(rc);
}

/* Every exception lands here: find the stacked frame (MSP or PSP, bit 2 of EXC_RETURN) and
 * report from a small private stack, since the faulting stack may be the problem. Written
 * for Thumb-1 encodings so it also assembles for v6-M. */
static uint32_t g_fault_stack[128] __attribute__((aligned(8)));

__attribute__((naked)) void kws_fault_entry(void)
{
    __asm__ volatile(
        "mov r1, lr\n\t"
        "movs r0, #4\n\t"
        "tst r0, r1\n\t"
        "beq 1f\n\t"
        "mrs r0, psp\n\t"
        "b 2f\n"
        "1:\n\t"
        "mrs r0, msp\n"
        "2:\n\t"
#ifdef KWS_HAS_STACK_LIMIT
        "movs r2, #0\n\t"
        "msr msplim, r2\n\t"
#endif
        "ldr r2, =%c0\n\t"
        "mov sp, r2\n\t"
        "ldr r2, =kws_fault_report\n\t"
        "bx r2\n\t"
        ".ltorg\n"
        :
        : "i"(g_fault_stack + sizeof g_fault_stack / sizeof g_fault_stack[0]));
}

static const char *exception_name(uint32_t n)
{
    static const char *const names[16] = {
        "Thread", "Reset", "NMI", "HardFault", "MemManage", "BusFault", "UsageFault", "SecureFault",
        "Reserved8", "Reserved9", "Reserved10", "SVCall", "DebugMonitor", "Reserved13", "PendSV", "SysTick",
    };
    return n < 16 ? names[n] : "IRQ";
}

__attribute__((noreturn, used)) void kws_fault_report(const uint32_t *frame, uint32_t exc_return)
{
    uint32_t ipsr;
    uint32_t cfsr = 0, hfsr = 0, mmfar = 0, bfar = 0, sfsr = 0;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    ipsr &= 0x1FFu;
#ifdef KWS_HAS_CFSR
    cfsr = KWS_REG(SCB_CFSR);
    hfsr = KWS_REG(SCB_HFSR);
    mmfar = KWS_REG(SCB_MMFAR);
    bfar = KWS_REG(SCB_BFAR);
#endif
#if defined(__ARM_FEATURE_CMSE)
    sfsr = KWS_REG(SCB_SFSR);
#endif
    kws_semihost_printf("%s %s exception=%u sp=0x%08x pc=0x%08x lr=0x%08x psr=0x%08x cfsr=0x%08x hfsr=0x%08x "
                        "mmfar=0x%08x bfar=0x%08x sfsr=0x%08x exc_return=0x%08x\n",
                        KWS_FAULT_TAG, exception_name(ipsr), (unsigned)ipsr, (unsigned)(uintptr_t)frame,
                        (unsigned)frame[6],
                        (unsigned)frame[5], (unsigned)frame[7], (unsigned)cfsr, (unsigned)hfsr,
                        (unsigned)mmfar, (unsigned)bfar, (unsigned)sfsr, (unsigned)exc_return);
    kws_semihost_exit(KWS_EXIT_FAULT);
}
