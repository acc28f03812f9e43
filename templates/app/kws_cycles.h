/* kws_cycles.h - the Cortex-M cycle counter (DWT->CYCCNT) through its architectural addresses.
 *
 * Why raw addresses: the same code serves kwsgen's emulated boards, STM32Cube, Arduino and bare
 * metal without depending on any vendor's CMSIS-Core headers. The DWT cycle counter exists on
 * ARMv7-M and ARMv8-M Mainline cores (M3, M4, M7, M33, M35P, M55, M85), not on v6-M / v8-M Baseline
 * (M0, M0+, M23), where kws_dwt_start() returns 0.
 * kws_dwt_start() checks that the counter really advances: under QEMU the DWT reads 0, and a core
 * may be built without the counter (DWT_CTRL.NOCYCCNT).
 */
#ifndef KWS_CYCLES_H
#define KWS_CYCLES_H

#include <stdint.h>

#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__) || \
    defined(__ARM_ARCH_8_1M_MAIN__)
#define KWS_HAS_DWT 1
#else
#define KWS_HAS_DWT 0
#endif

#if KWS_HAS_DWT
#define KWS_DEMCR (*(volatile uint32_t *)0xE000EDFCu)    /* CoreDebug->DEMCR */
#define KWS_DWT_CTRL (*(volatile uint32_t *)0xE0001000u) /* DWT->CTRL */
#define KWS_DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define KWS_DWT_LAR (*(volatile uint32_t *)0xE0001FB0u)  /* CoreSight lock access register */
#define KWS_DEMCR_TRCENA (1u << 24)
#define KWS_DWT_CTRL_CYCCNTENA 1u
#define KWS_DWT_CTRL_NOCYCCNT (1u << 25)

/* Enable and zero the cycle counter; 1 if it counts, 0 if it does not (QEMU, no counter). */
static inline int kws_dwt_start(void)
{
    volatile uint32_t spin;
    uint32_t before;
    KWS_DEMCR |= KWS_DEMCR_TRCENA;
#if defined(__ARM_ARCH_7EM__)
    KWS_DWT_LAR = 0xC5ACCE55u; /* Cortex-M7 locks the DWT until this key is written; harmless on M4 */
#endif
    if (KWS_DWT_CTRL & KWS_DWT_CTRL_NOCYCCNT) {
        return 0;
    }
    KWS_DWT_CYCCNT = 0;
    KWS_DWT_CTRL |= KWS_DWT_CTRL_CYCCNTENA;
    before = KWS_DWT_CYCCNT;
    for (spin = 0; spin < 16u; spin++) {
    }
    return KWS_DWT_CYCCNT != before;
}

static inline uint32_t kws_dwt_read(void)
{
    return KWS_DWT_CYCCNT;
}
#else
static inline int kws_dwt_start(void)
{
    return 0;
}

static inline uint32_t kws_dwt_read(void)
{
    return 0;
}
#endif

#endif /* KWS_CYCLES_H */
