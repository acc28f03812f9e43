/* kws_semihost.h - kwsgen's I/O layer for emulated boards (ARM semihosting) and the host.
 *
 * Why: an emulated Cortex-M has no file system and no console; ARM semihosting lets the
 * firmware use the host's (QEMU's) files, stdout, command line and exit status. The same
 * API compiles on the host over the C library, so one harness runs on both and the host run
 * is the reference for the emulated one.
 *
 * On Arm targets the calls are `bkpt 0xAB` traps (no newlib needed); off-target (or with
 * KWS_SEMIHOST_USE_STDIO and a C library that has files) they use stdio.
 * Paths are relative to the emulator's working directory. All functions are reentrant-free
 * and single-threaded, like the firmware.
 */
#ifndef KWS_SEMIHOST_H
#define KWS_SEMIHOST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* File modes for kws_semihost_open (ISO C fopen semantics). */
#define KWS_SH_READ 0   /* "rb" */
#define KWS_SH_WRITE 1  /* "wb": create or truncate */
#define KWS_SH_APPEND 2 /* "ab" */

/* Exit status used by the fault handlers and by a detected stack overflow. */
#define KWS_EXIT_FAULT 250
/* First token of the line the fault handlers print; kwsgen.emulator parses it. */
#define KWS_FAULT_TAG "kws-fault:"

/* Open a host file; returns a handle >= 0, or -1. */
int kws_semihost_open(const char *path, int mode);
/* Read up to n bytes; returns the number read (0 at end of file), or -1 on error. */
long kws_semihost_read(int fd, void *buf, size_t n);
/* Write n bytes; returns 0 when all were written, -1 otherwise. */
int kws_semihost_write(int fd, const void *buf, size_t n);
/* Length of an open file in bytes, or -1. */
long kws_semihost_flen(int fd);
/* Close a handle; returns 0 or -1. */
int kws_semihost_close(int fd);

/* Whole-file helpers: read at most cap bytes (returns bytes read, -1 if the file cannot be
 * opened or is longer than cap); write n bytes (returns 0 on success). */
long kws_semihost_read_file(const char *path, void *buf, size_t cap);
int kws_semihost_write_file(const char *path, const void *buf, size_t n);

/* Console output (QEMU's stdout). Binary-safe. */
void kws_semihost_stdout(const void *buf, size_t n);
void kws_semihost_puts(const char *s); /* writes s, no newline added */
/* Minimal printf for firmware without newlib's stdio: %d %i %u %x %X %c %s %p %%, flags
 * '-' and '0', a width, and the length modifiers l and ll. Returns characters written. */
int kws_semihost_printf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Command line given to the emulator (`-semihosting-config arg=...`), words separated by
 * single spaces (the program name first). Fills buf (NUL-terminated), returns its length or -1. */
int kws_semihost_cmdline(char *buf, size_t cap);
/* Split the command line in place into at most max words; returns argc (0 if none). */
int kws_semihost_args(char *buf, size_t cap, char **argv, int max);
/* Host builds: hand main's argc/argv to kws_semihost_cmdline (a no-op on Arm targets, where
 * the startup code already passes the semihosting command line to main). */
void kws_semihost_host_args(int argc, char **argv);

/* End the program; the emulator's exit status becomes `code` (0..255). Never returns. */
void kws_semihost_exit(int code)
#if defined(__GNUC__)
    __attribute__((noreturn))
#endif
    ;

#ifdef __cplusplus
}
#endif

#endif /* KWS_SEMIHOST_H */
