/* kws_profile.h - named regions for instruction counting under QEMU.
 *
 * Why: DWT->CYCCNT reads 0 under QEMU, so kwsgen counts instructions with a QEMU plugin. The
 * plugin cannot read registers (plugin API v1), so each region gets two distinct, never
 * inlined marker functions whose entry addresses kwsgen looks up in the ELF symbol table:
 *     kws_region_begin_<name>  and  kws_region_end_<name>.
 * The plugin counts the instructions executed from a begin marker to the matching end
 * marker, accumulated over every entry, and the number of entries.
 *
 * Usage (name: a C identifier, not "total"):
 *     KWS_REGION_DEFINE(invoke);            at file scope, once per program
 *     KWS_REGION_DECLARE(invoke);           in any other file that uses it
 *     KWS_REGION_BEGIN(invoke);
 *     status = kws_model_invoke(in, out);   measured work: keep it behind a call or memory,
 *     KWS_REGION_END(invoke);               since pure register arithmetic may be moved
 *                                           across the markers by the compiler.
 * A region's count includes the markers' own few instructions (the begin marker's return,
 * the call of the end marker, and anything the compiler schedules between the two calls:
 * 2-5 at -O2; see kwsgen.emulator). Regions may nest; re-entering the same region while it is
 * open (recursion) is counted once, from its outermost begin.
 * The region "main" is predefined: the startup code wraps main() in it.
 * On the host the markers are plain empty calls.
 */
#ifndef KWS_PROFILE_H
#define KWS_PROFILE_H

#if defined(__clang__)
#define KWS_MARKER_ATTR __attribute__((noinline, used, optnone))
#elif defined(__GNUC__)
/* noipa: not inlined, not cloned, not merged with another identical function (no_icf),
 * and callers assume nothing about it, so a call is never dropped as side-effect free. */
#define KWS_MARKER_ATTR __attribute__((noipa, used))
#else
#define KWS_MARKER_ATTR
#endif

#define KWS_REGION_DECLARE(name)              \
    void kws_region_begin_##name(void);       \
    void kws_region_end_##name(void)

#define KWS_REGION_DEFINE(name)                                            \
    KWS_REGION_DECLARE(name);                                              \
    KWS_MARKER_ATTR void kws_region_begin_##name(void) { __asm__ volatile("" ::: "memory"); } \
    KWS_MARKER_ATTR void kws_region_end_##name(void) { __asm__ volatile("" ::: "memory"); }   \
    typedef int kws_region_defined_##name

#define KWS_REGION_BEGIN(name) kws_region_begin_##name()
#define KWS_REGION_END(name) kws_region_end_##name()

/* The predefined region around main(), defined in kws_profile.c. */
KWS_REGION_DECLARE(main);

#endif /* KWS_PROFILE_H */
