/* kws_io.h (emulated boards): the harness's file I/O over ARM semihosting, plus the `invoke`
 * profiling region whose instruction count `kwsgen verify` reports per inference. */
#ifndef KWS_IO_H
#define KWS_IO_H

#include <stddef.h>

#include "kws_profile.h"
#include "kws_semihost.h"

typedef int kws_file_t;

KWS_REGION_DEFINE(invoke);

static inline void kws_io_init(int *argc, char ***argv) { (void)argc; (void)argv; }
static inline kws_file_t kws_io_open(const char *path, int write) { return kws_semihost_open(path, write ? KWS_SH_WRITE : KWS_SH_READ); }
static inline int kws_io_ok(kws_file_t f) { return f >= 0; }
static inline long kws_io_read(kws_file_t f, void *buf, long n) { return kws_semihost_read(f, buf, (size_t)n); }
static inline long kws_io_write(kws_file_t f, const void *buf, long n) { return kws_semihost_write(f, buf, (size_t)n) == 0 ? n : -1; }
static inline void kws_io_close(kws_file_t f) { (void)kws_semihost_close(f); }
static inline void kws_io_puts(const char *s) { kws_semihost_puts(s); }

#define KWS_INVOKE_BEGIN() KWS_REGION_BEGIN(invoke)
#define KWS_INVOKE_END() KWS_REGION_END(invoke)

#endif /* KWS_IO_H */
