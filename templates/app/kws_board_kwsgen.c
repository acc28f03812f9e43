/* kws_board_kwsgen.c - kws_board.h on kwsgen's emulated boards (QEMU, kwsgen's own platform layer).
 *
 * Console and exit status go through ARM semihosting (lib/kws_platform); kwsgen's startup code
 * calls main() and turns its return value into QEMU's exit status, so a failed self-test fails
 * `pio run -t exec`. The DWT cycle counter reads 0 under QEMU: kws_board_ticks_unit() then says
 * KWS_TICKS_NONE and the application reports its profiling regions instead, whose instructions
 * kwsgen's QEMU plugin counts deterministically.
 */
#include "kws_board.h"
#include "kws_cycles.h"
#include "kws_semihost.h"

static kws_ticks_unit_t g_unit = KWS_TICKS_NONE;

void kws_board_init(void)
{
    g_unit = kws_dwt_start() ? KWS_TICKS_CYCLES : KWS_TICKS_NONE;
}

void kws_board_print(const char *text)
{
    kws_semihost_puts(text);
}

uint32_t kws_board_ticks(void)
{
    return g_unit == KWS_TICKS_CYCLES ? kws_dwt_read() : 0u;
}

kws_ticks_unit_t kws_board_ticks_unit(void)
{
    return g_unit;
}

uint32_t kws_board_cpu_hz(void)
{
    return 0u; /* an emulator has no meaningful clock */
}

void kws_board_finish(int status)
{
    (void)status; /* main() returns it; the startup code exits with it */
}

int main(void)
{
    int status;
    kws_board_init();
    status = kws_app_run();
    kws_board_finish(status);
    return status;
}
