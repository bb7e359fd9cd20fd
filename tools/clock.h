/*
 * The clocks of the front ends (the CLI and the server), in one place:
 * header-only, so both link it without a library of their own.
 */
#ifndef CJ_TOOLS_CLOCK_H
#define CJ_TOOLS_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds on the monotonic clock. */
static inline int64_t cli_now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds since the epoch (the wall clock). */
static inline int64_t cli_epoch_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The time `ms` from now on `clock` (for pthread_cond_timedwait()); a
 * negative `ms` is now, and one over a day a day (a caller that waits
 * longer waits again). */
static inline void cli_deadline(struct timespec *ts, clockid_t clock, int64_t ms) {
	clock_gettime(clock, ts);
	ms = ms < 0 ? 0 : ms > 86400000 ? 86400000 : ms;
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Seconds since the epoch. */
static inline int64_t cli_epoch(void) {
	return cli_epoch_ms() / 1000;
}

#endif
