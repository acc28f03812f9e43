/* kws_board.h - the small board layer a kwsgen application is written against.
 *
 * Why: the application in src/ (the self-test, later the keyword spotter) must run unchanged on
 * kwsgen's emulated boards, under STM32Cube, under Arduino and on a bare-metal vendor SDK. Everything
 * framework-specific (console, clock, time stamps, the program entry) sits behind these few calls;
 * each framework has one implementation file in src/ (kws_board_<framework>.c/.cpp), selected by
 * the framework's own macros, with a bare-metal fallback that needs no CMSIS-Core headers.
 *
 * The entry point (main(), or Arduino's setup()) belongs to the implementation: it calls
 * kws_board_init(), then the application's kws_app_run(), then kws_board_finish() with its status.
 */
#ifndef KWS_BOARD_H
#define KWS_BOARD_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What kws_board_ticks() counts. */
typedef enum {
    KWS_TICKS_NONE = 0,         /* no usable counter (QEMU: DWT->CYCCNT reads 0) */
    KWS_TICKS_CYCLES = 1,       /* core clock cycles (DWT->CYCCNT, or SysTick on v6-M bare metal) */
    KWS_TICKS_MICROSECONDS = 2, /* a framework timer (e.g. Arduino micros() on Cortex-M0+) */
    KWS_TICKS_MILLISECONDS = 3  /* a framework tick (e.g. HAL_GetTick() without DWT) */
} kws_ticks_unit_t;

/* Console, clock and counter set-up; called once before kws_app_run(). */
void kws_board_init(void);
/* Write NUL-terminated text to the board's console (semihosting, UART or USB serial). */
void kws_board_print(const char *text);
/* A free-running counter for timing; wraps modulo 2^32 (differences stay right). */
uint32_t kws_board_ticks(void);
/* The unit of kws_board_ticks(), known after kws_board_init(). */
kws_ticks_unit_t kws_board_ticks_unit(void);
/* The core clock in Hz when known (to turn cycles into time), else 0. */
uint32_t kws_board_cpu_hz(void);
/* Called once with kws_app_run()'s status: emulated boards exit with it (QEMU's exit status),
 * hardware idles. */
void kws_board_finish(int status);

/* Provided by the application (src/): runs it, returns 0 on success. */
int kws_app_run(void);

/* Named regions of work. On kwsgen's emulated boards they are kws_profile markers, whose
 * instructions kwsgen's QEMU plugin counts (DWT->CYCCNT reads 0 under QEMU); elsewhere no-ops.
 * KWS_BOARD_REGION_DEFINE(name) once at file scope, then BEGIN/END around the work. */
#if defined(KWSGEN_QEMU)
#include "kws_profile.h"
#define KWS_BOARD_REGION_DEFINE(name) KWS_REGION_DEFINE(name)
#define KWS_BOARD_REGION_BEGIN(name) KWS_REGION_BEGIN(name)
#define KWS_BOARD_REGION_END(name) KWS_REGION_END(name)
#define KWS_BOARD_HAS_REGIONS 1
#else
#define KWS_BOARD_REGION_DEFINE(name) typedef int kws_board_region_##name
#define KWS_BOARD_REGION_BEGIN(name) ((void)0)
#define KWS_BOARD_REGION_END(name) ((void)0)
#define KWS_BOARD_HAS_REGIONS 0
#endif

#ifdef __cplusplus
}
#endif

#endif /* KWS_BOARD_H */
