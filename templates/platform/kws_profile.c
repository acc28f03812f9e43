/* kws_profile.c - the predefined profiling region "main" (see kws_profile.h).
 *
 * Why: the startup code calls these around main(), so every firmware reports the
 * instructions of the program proper, without the reset handler's copy/zero/paint loops.
 */
#include "kws_profile.h"

KWS_REGION_DEFINE(main);
