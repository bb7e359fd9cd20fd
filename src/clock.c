/* Clocks. Monotonic time decides when to look; wall time only serves
 * scheduled jobs, whose times are wall-clock by definition. */
#include <time.h>

#include "cj_int.h"

static int64_t clock_ms(clockid_t id) {
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cj__mono_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

int64_t cj__epoch_ms(void) { return clock_ms(CLOCK_REALTIME); }
