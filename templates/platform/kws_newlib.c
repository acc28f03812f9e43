/* kws_newlib.c - newlib's system calls on top of kwsgen's semihosting layer.
 *
 * Why: kwsgen links newlib-nano (memcpy, memset, optional printf) without its startup files
 * or librdimon, so these few hooks are all newlib needs. Unused ones are dropped by
 * --gc-sections; a firmware that never calls stdio pays nothing. stdout and stderr both go
 * to the emulator's console; an abort() or failed assert() ends the run with status 134.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "kws_semihost.h"

extern char __heap_start[], __heap_end[];

int _write(int fd, const char *buf, int n);
int _read(int fd, char *buf, int n);
int _close(int fd);
int _fstat(int fd, struct stat *st);
int _isatty(int fd);
int _lseek(int fd, int offset, int whence);
void *_sbrk(ptrdiff_t incr);
int _getpid(void);
int _kill(int pid, int sig);
void _exit(int code);

int _write(int fd, const char *buf, int n)
{
    if ((fd != 1 && fd != 2) || n < 0) {
        errno = EBADF;
        return -1;
    }
    kws_semihost_stdout(buf, (size_t)n);
    return n;
}

int _read(int fd, char *buf, int n)
{
    (void)fd;
    (void)buf;
    (void)n;
    errno = EBADF;
    return -1;
}

int _close(int fd)
{
    (void)fd;
    errno = EBADF;
    return -1;
}

int _fstat(int fd, struct stat *st)
{
    (void)fd;
    st->st_mode = S_IFCHR; /* unbuffered-friendly: newlib line-buffers a character device */
    return 0;
}

int _isatty(int fd)
{
    return fd >= 0 && fd <= 2;
}

int _lseek(int fd, int offset, int whence)
{
    (void)fd;
    (void)offset;
    (void)whence;
    return 0;
}

/* The heap lies between the end of .bss and the stack reservation (linker script). */
void *_sbrk(ptrdiff_t incr)
{
    static char *brk = __heap_start;
    char *old = brk;
    if (incr < 0 ? (size_t)(-incr) > (size_t)(brk - __heap_start) : (size_t)incr > (size_t)(__heap_end - brk)) {
        errno = ENOMEM;
        return (void *)-1;
    }
    brk += incr;
    return old;
}

int _getpid(void)
{
    return 1;
}

int _kill(int pid, int sig)
{
    (void)pid;
    kws_semihost_exit(128 + sig);
}

void _exit(int code)
{
    kws_semihost_exit(code);
}
