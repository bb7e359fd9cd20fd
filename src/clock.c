/* Clocks, and time arithmetic that saturates. Monotonic time decides when
 * to look; wall time only serves scheduled jobs, whose times are
 * wall-clock by definition. */
#include <time.h>

#include "cj_int.h"

static int64_t clock_ms(clockid_t id) {
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cj__mono_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

int64_t cj__mono_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t cj__epoch_ms(void) { return clock_ms(CLOCK_REALTIME); }

int64_t cj__add_sat(int64_t a, int64_t b) {
	int64_t r;
	if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

int64_t cj__mul_sat(int64_t a, int64_t b) {
	int64_t r;
	if (__builtin_mul_overflow(a, b, &r)) return (a < 0) != (b < 0) ? INT64_MIN : INT64_MAX;
	return r;
}

int64_t cj__deadline_ms(int64_t timeout_ms) {
	return timeout_ms < 0 ? -1 : cj__add_sat(cj__mono_ms(), timeout_ms);
}

int64_t cj__sleep_until(int64_t deadline_ms) {
	int64_t cap = cj__add_sat(cj__mono_ms(), CJ_SLEEP_MAX_MS);
	return deadline_ms > cap ? cap : deadline_ms;
}

int64_t cj__backoff(int64_t *delay_ms) {
	int64_t at = cj__add_sat(cj__mono_ms(), *delay_ms);
	*delay_ms = *delay_ms >= CJ_RETRY_MAX_MS / 2 ? CJ_RETRY_MAX_MS : *delay_ms * 2;
	return at;
}
