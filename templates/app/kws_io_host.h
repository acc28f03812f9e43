/* kws_io.h (host): the harness's file I/O on the C library. */
#ifndef KWS_IO_H
#define KWS_IO_H

#include <stdio.h>

typedef FILE *kws_file_t;

static inline void kws_io_init(int *argc, char ***argv) { (void)argc; (void)argv; }
static inline kws_file_t kws_io_open(const char *path, int write) { return fopen(path, write ? "wb" : "rb"); }
static inline int kws_io_ok(kws_file_t f) { return f != NULL; }
static inline long kws_io_read(kws_file_t f, void *buf, long n) { return (long)fread(buf, 1, (size_t)n, f); }
static inline long kws_io_write(kws_file_t f, const void *buf, long n) { return (long)fwrite(buf, 1, (size_t)n, f); }
static inline void kws_io_close(kws_file_t f) { fclose(f); }
static inline void kws_io_puts(const char *s) { fputs(s, stderr); }

#define KWS_INVOKE_BEGIN() ((void)0)
#define KWS_INVOKE_END() ((void)0)

#endif /* KWS_IO_H */
