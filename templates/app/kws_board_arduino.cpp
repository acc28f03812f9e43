/* kws_board_arduino.cpp - kws_board.h on the Arduino framework (PlatformIO framework = arduino).
 *
 * Console: Serial (USB CDC on the Nano 33 BLE and the Pico), 115200 baud
 * (`pio device monitor -b 115200`); the board waits up to 5 s for the port to open so the first
 * lines are not lost. Time: DWT->CYCCNT on cores that have it (Cortex-M4/M7/M33...), micros()
 * on Cortex-M0+ (RP2040). The Arduino core owns main(): setup() runs the application once.
 */
#if defined(ARDUINO)

#include <Arduino.h>

extern "C" {
#include "kws_board.h"
#include "kws_cycles.h"
}

static kws_ticks_unit_t g_unit = KWS_TICKS_NONE;

extern "C" void kws_board_init(void)
{
    Serial.begin(115200);
    const unsigned long start = millis();
    while (!Serial && millis() - start < 5000UL) {
        delay(10);
    }
    g_unit = kws_dwt_start() ? KWS_TICKS_CYCLES : KWS_TICKS_MICROSECONDS;
}

extern "C" void kws_board_print(const char *text)
{
    Serial.print(text);
}

extern "C" uint32_t kws_board_ticks(void)
{
    return g_unit == KWS_TICKS_CYCLES ? kws_dwt_read() : (uint32_t)micros();
}

extern "C" kws_ticks_unit_t kws_board_ticks_unit(void)
{
    return g_unit;
}

extern "C" uint32_t kws_board_cpu_hz(void)
{
#ifdef F_CPU
    return (uint32_t)F_CPU;
#else
    return 0u;
#endif
}

extern "C" void kws_board_finish(int status)
{
    (void)status;
    Serial.flush();
}

void setup()
{
    kws_board_init();
    kws_board_finish(kws_app_run());
}

void loop()
{
    delay(1000);
}

#endif
