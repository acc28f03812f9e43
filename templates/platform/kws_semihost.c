/* kws_semihost.c - see kws_semihost.h. Part of kwsgen's platform layer (not generated). */
#include "kws_semihost.h"

#include <stdarg.h>
#include <string.h>

#if defined(__arm__) && !defined(KWS_SEMIHOST_USE_STDIO)
/* ------------------------------------------------------------------ ARM semihosting ---- */

enum {
    SYS_OPEN = 0x01,
    SYS_CLOSE = 0x02,
    SYS_WRITE = 0x05,
    SYS_READ = 0x06,
    SYS_FLEN = 0x0C,
    SYS_GET_CMDLINE = 0x15,
    SYS_EXIT = 0x18,
    SYS_EXIT_EXTENDED = 0x20
};
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define ADP_STOPPED_RUNTIME_ERROR 0x20023u

/* The trap: r0 = operation, r1 = parameter block; the result comes back in r0. */
static uintptr_t sh_call(uintptr_t op, const void *block)
{
    register uintptr_t r0 __asm("r0") = op;
    register uintptr_t r1 __asm("r1") = (uintptr_t)block;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static int sh_open_raw(const char *path, uintptr_t mode)
{
    uintptr_t block[3];
    block[0] = (uintptr_t)path;
    block[1] = mode;
    block[2] = strlen(path);
    return (int)(intptr_t)sh_call(SYS_OPEN, block);
}

int kws_semihost_open(const char *path, int mode)
{
    /* ISO modes: 1 "rb", 5 "wb", 9 "ab". */
    static const uintptr_t modes[3] = {1, 5, 9};
    if (path == NULL || mode < 0 || mode > 2) {
        return -1;
    }
    return sh_open_raw(path, modes[mode]);
}

long kws_semihost_read(int fd, void *buf, size_t n)
{
    uintptr_t block[3];
    uintptr_t left;
    block[0] = (uintptr_t)fd;
    block[1] = (uintptr_t)buf;
    block[2] = n;
    left = sh_call(SYS_READ, block); /* bytes NOT read */
    if (left > n) {
        return -1;
    }
    return (long)(n - left);
}

int kws_semihost_write(int fd, const void *buf, size_t n)
{
    uintptr_t block[3];
    block[0] = (uintptr_t)fd;
    block[1] = (uintptr_t)buf;
    block[2] = n;
    return sh_call(SYS_WRITE, block) == 0 ? 0 : -1; /* bytes NOT written */
}

long kws_semihost_flen(int fd)
{
    uintptr_t block[1];
    block[0] = (uintptr_t)fd;
    return (long)(intptr_t)sh_call(SYS_FLEN, block);
}

int kws_semihost_close(int fd)
{
    uintptr_t block[1];
    block[0] = (uintptr_t)fd;
    return (int)(intptr_t)sh_call(SYS_CLOSE, block);
}

void kws_semihost_stdout(const void *buf, size_t n)
{
    static int tt = -2; /* ":tt" opened for writing is the emulator's console */
    if (tt == -2) {
        tt = sh_open_raw(":tt", 4);
    }
    if (tt >= 0 && n > 0) {
        (void)kws_semihost_write(tt, buf, n);
    }
}

int kws_semihost_cmdline(char *buf, size_t cap)
{
    uintptr_t block[2];
    if (buf == NULL || cap == 0) {
        return -1;
    }
    block[0] = (uintptr_t)buf;
    block[1] = cap;
    if (sh_call(SYS_GET_CMDLINE, block) != 0) {
        buf[0] = '\0';
        return -1;
    }
    if (block[1] >= cap) {
        block[1] = cap - 1;
    }
    buf[block[1]] = '\0';
    return (int)block[1];
}

void kws_semihost_host_args(int argc, char **argv)
{
    (void)argc;
    (void)argv;
}

void kws_semihost_exit(int code)
{
    uintptr_t block[2];
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uintptr_t)(code & 0xFF);
    (void)sh_call(SYS_EXIT_EXTENDED, block);
    /* An emulator without SYS_EXIT_EXTENDED: plain SYS_EXIT can only tell 0 from non-zero. */
    (void)sh_call(SYS_EXIT, (const void *)(uintptr_t)(code == 0 ? ADP_STOPPED_APPLICATION_EXIT
                                                                 : ADP_STOPPED_RUNTIME_ERROR));
    for (;;) {
    }
}

#else
/* ------------------------------------------------------ host: the C library's stdio ---- */
#include <stdio.h>
#include <stdlib.h>

#define KWS_SH_MAX_FILES 16
static FILE *g_files[KWS_SH_MAX_FILES];
static int g_argc;
static char **g_argv;

void kws_semihost_host_args(int argc, char **argv)
{
    g_argc = argc;
    g_argv = argv;
}

int kws_semihost_open(const char *path, int mode)
{
    static const char *const modes[3] = {"rb", "wb", "ab"};
    int fd;
    if (path == NULL || mode < 0 || mode > 2) {
        return -1;
    }
    for (fd = 0; fd < KWS_SH_MAX_FILES; fd++) {
        if (g_files[fd] == NULL) {
            g_files[fd] = fopen(path, modes[mode]);
            return g_files[fd] != NULL ? fd : -1;
        }
    }
    return -1;
}

static FILE *host_file(int fd)
{
    return (fd >= 0 && fd < KWS_SH_MAX_FILES) ? g_files[fd] : NULL;
}

long kws_semihost_read(int fd, void *buf, size_t n)
{
    FILE *f = host_file(fd);
    size_t got;
    if (f == NULL) {
        return -1;
    }
    got = fread(buf, 1, n, f);
    return ferror(f) ? -1 : (long)got;
}

int kws_semihost_write(int fd, const void *buf, size_t n)
{
    FILE *f = host_file(fd);
    if (f == NULL) {
        return -1;
    }
    return fwrite(buf, 1, n, f) == n ? 0 : -1;
}

long kws_semihost_flen(int fd)
{
    FILE *f = host_file(fd);
    long here, len;
    if (f == NULL || (here = ftell(f)) < 0 || fseek(f, 0, SEEK_END) != 0) {
        return -1;
    }
    len = ftell(f);
    return fseek(f, here, SEEK_SET) == 0 ? len : -1;
}

int kws_semihost_close(int fd)
{
    FILE *f = host_file(fd);
    if (f == NULL) {
        return -1;
    }
    g_files[fd] = NULL;
    return fclose(f) == 0 ? 0 : -1;
}

void kws_semihost_stdout(const void *buf, size_t n)
{
    (void)fwrite(buf, 1, n, stdout);
    (void)fflush(stdout);
}

int kws_semihost_cmdline(char *buf, size_t cap)
{
    size_t len = 0;
    int i;
    if (buf == NULL || cap == 0) {
        return -1;
    }
    buf[0] = '\0';
    for (i = 0; i < g_argc; i++) {
        size_t w = strlen(g_argv[i]);
        if (len + w + (i > 0) + 1 > cap) {
            return -1;
        }
        if (i > 0) {
            buf[len++] = ' ';
        }
        memcpy(buf + len, g_argv[i], w + 1);
        len += w;
    }
    return (int)len;
}

void kws_semihost_exit(int code)
{
    (void)fflush(stdout);
    exit(code & 0xFF);
}

#endif

/* ----------------------------------------------------------- common to both sides ---- */

long kws_semihost_read_file(const char *path, void *buf, size_t cap)
{
    int fd = kws_semihost_open(path, KWS_SH_READ);
    long len, got;
    if (fd < 0) {
        return -1;
    }
    len = kws_semihost_flen(fd);
    if (len < 0 || (size_t)len > cap) {
        (void)kws_semihost_close(fd);
        return -1;
    }
    got = kws_semihost_read(fd, buf, (size_t)len);
    (void)kws_semihost_close(fd);
    return got == len ? got : -1;
}

int kws_semihost_write_file(const char *path, const void *buf, size_t n)
{
    int fd = kws_semihost_open(path, KWS_SH_WRITE);
    int ok;
    if (fd < 0) {
        return -1;
    }
    ok = kws_semihost_write(fd, buf, n);
    return (kws_semihost_close(fd) == 0 && ok == 0) ? 0 : -1;
}

void kws_semihost_puts(const char *s)
{
    kws_semihost_stdout(s, strlen(s));
}

int kws_semihost_args(char *buf, size_t cap, char **argv, int max)
{
    int argc = 0;
    char *p = buf;
    if (kws_semihost_cmdline(buf, cap) < 0) {
        return 0;
    }
    while (*p != '\0' && argc < max) {
        while (*p == ' ') {
            *p++ = '\0';
        }
        if (*p == '\0') {
            break;
        }
        argv[argc++] = p;
        while (*p != '\0' && *p != ' ') {
            p++;
        }
    }
    return argc;
}

/* A small buffered writer so printf issues one semihosting call per line, not per char. */
typedef struct {
    char buf[128];
    size_t len;
    int total;
} kws_out_t;

static void out_flush(kws_out_t *o)
{
    kws_semihost_stdout(o->buf, o->len);
    o->len = 0;
}

static void out_char(kws_out_t *o, char c)
{
    if (o->len == sizeof o->buf) {
        out_flush(o);
    }
    o->buf[o->len++] = c;
    o->total++;
}

static void out_padded(kws_out_t *o, const char *s, size_t n, int width, int left, char pad)
{
    int fill = width > (int)n ? width - (int)n : 0;
    if (!left && pad == '0' && n > 0 && s[0] == '-') { /* zero padding goes after the sign */
        out_char(o, '-');
        s++;
        n--;
    }
    while (!left && fill-- > 0) {
        out_char(o, pad);
    }
    while (n-- > 0) {
        out_char(o, *s++);
    }
    while (left && fill-- > 0) {
        out_char(o, ' ');
    }
}

/* Digits of v in the given base, into the end of tmp; returns the start. */
static char *format_unsigned(char *end, unsigned long long v, unsigned base, int upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char *p = end;
    do {
        *--p = digits[v % base];
        v /= base;
    } while (v != 0);
    return p;
}

int kws_semihost_printf(const char *fmt, ...)
{
    kws_out_t o;
    va_list ap;
    o.len = 0;
    o.total = 0;
    va_start(ap, fmt);
    while (*fmt != '\0') {
        char tmp[24];
        char *end = tmp + sizeof tmp;
        char *s;
        int left = 0, width = 0, lng = 0;
        char pad = ' ';
        if (*fmt != '%') {
            out_char(&o, *fmt++);
            continue;
        }
        fmt++;
        for (; *fmt == '-' || *fmt == '0'; fmt++) {
            if (*fmt == '-') {
                left = 1;
            } else {
                pad = '0';
            }
        }
        while (*fmt >= '0' && *fmt <= '9') {
            width = width * 10 + (*fmt++ - '0');
        }
        while (*fmt == 'l') {
            lng++;
            fmt++;
        }
        switch (*fmt) {
        case 'd':
        case 'i': {
            long long v = lng >= 2 ? va_arg(ap, long long) : lng == 1 ? va_arg(ap, long) : va_arg(ap, int);
            unsigned long long mag = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
            s = format_unsigned(end, mag, 10, 0);
            if (v < 0) {
                *--s = '-';
            }
            out_padded(&o, s, (size_t)(end - s), width, left, pad);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            unsigned long long v = lng >= 2   ? va_arg(ap, unsigned long long)
                                   : lng == 1 ? va_arg(ap, unsigned long)
                                              : va_arg(ap, unsigned int);
            s = format_unsigned(end, v, *fmt == 'u' ? 10u : 16u, *fmt == 'X');
            out_padded(&o, s, (size_t)(end - s), width, left, pad);
            break;
        }
        case 'p':
            s = format_unsigned(end, (unsigned long long)(uintptr_t)va_arg(ap, void *), 16, 0);
            *--s = 'x';
            *--s = '0';
            out_padded(&o, s, (size_t)(end - s), width, left, ' ');
            break;
        case 'c':
            tmp[0] = (char)va_arg(ap, int);
            out_padded(&o, tmp, 1, width, left, ' ');
            break;
        case 's':
            s = va_arg(ap, char *);
            if (s == NULL) {
                s = "(null)";
            }
            out_padded(&o, s, strlen(s), width, left, ' ');
            break;
        case '%':
            out_char(&o, '%');
            break;
        default: /* unsupported conversion: print it verbatim so the mistake is visible */
            out_char(&o, '%');
            if (*fmt == '\0') {
                continue;
            }
            out_char(&o, *fmt);
            break;
        }
        fmt++;
    }
    va_end(ap);
    out_flush(&o);
    return o.total;
}
