/* kws_platform.h - what kwsgen's startup code offers a firmware (emulated boards only).
 *
 * Why: the reset handler paints the stack, so a harness can report its stack high-water mark
 * next to the ELF's static RAM, and an overflow is caught at exit instead of silently
 * corrupting .bss (v8-M cores also trap it at once through MSPLIM).
 * main() may be declared `int main(void)` or `int main(int argc, char **argv)`: the startup
 * passes the semihosting command line as argc/argv (program name first; at most
 * KWS_CMDLINE_MAX - 1 characters and KWS_ARGV_MAX - 1 words, which kwsgen.emulator checks).
 * Its return value becomes the emulator's exit status.
 */
#ifndef KWS_PLATFORM_H
#define KWS_PLATFORM_H

#include <stddef.h>

#define KWS_CMDLINE_MAX 1024
#define KWS_ARGV_MAX 32

/* Bytes of stack reserved by the linker script (the board's stack_bytes). */
size_t kws_stack_size_bytes(void);
/* Deepest stack use so far, in bytes (from the painted pattern). */
size_t kws_stack_used_bytes(void);

#endif /* KWS_PLATFORM_H */
