/*
 * A process stopped at the library's hold points (src/fault.c; white-box,
 * fault-injection builds only), for the tests of what other processes do
 * when one stops or dies at an exact point (test_flush, test_xhold).
 *
 * The process opens the store under test, opens its gate ready, and waits
 * for held_go(); then it arms up to two hold points and makes one call:
 * it adds job id of type, or, with lock set, finishes that job with the
 * lock. At each point it opens at[i] and, when hold[i] is set, stops until
 * the case opens go[i] (or kills it). It opens acked once its call
 * returned CJ_OK. Its store is open before the case lets it go because a
 * process opening the store takes the writer, which would stop it before
 * its points.
 */
#ifndef CJ_TEST_HELD_H
#define CJ_TEST_HELD_H

#include "testutil.h"

/* Every wait of the process and of the helpers below: generous, the
 * machine may be loaded. */
#define HELD_WAIT_MS 30000

typedef struct held {
	const char *type, *id;
	const char *lock;    /* not NULL: finishes job id with it instead */
	const char *kill_at; /* CJ_TEST_COMBINE_KILL in the process, or NULL */
	int points[2];       /* cj_hold_point, or -1 */
	int hold[2];         /* 0: the point only notifies */
	t_gate at[2];        /* opened by the process at the point */
	t_gate go[2];        /* opened by the case to let it go on */
	t_gate ready;        /* opened by the process once its store is open */
	t_gate start;        /* opened by the case (held_go): make the call */
	t_gate acked;        /* opened by the process once its call returned CJ_OK */
} held;

/* Sets h up (its gates made) to add job id of type, stopping at points p0
 * and p1 (-1: none), holding there when hold0 / hold1 is set. Set lock and
 * kill_at after it, before held_spawn(). */
void held_init(held *h, const char *type, const char *id, int p0, int hold0, int p1,
               int hold1);
/* Starts h's process and waits until its store is open; returns its pid.
 * Its call waits for held_go(). */
#define held_spawn(h) tu_held_spawn(__FILE__, __LINE__, (h))
int tu_held_spawn(const char *file, int line, held *h);
/* Lets h's process make its call. */
void held_go(held *h);
/* held_init() and held_spawn(); held_run() also held_go(): the call goes
 * on at once. */
#define held_start(h, type, id, p0, hold0, p1, hold1)                       \
	tu_held_start(__FILE__, __LINE__, (h), (type), (id), (p0), (hold0), (p1), (hold1), 0)
#define held_run(h, type, id, p0, hold0, p1, hold1)                         \
	tu_held_start(__FILE__, __LINE__, (h), (type), (id), (p0), (hold0), (p1), (hold1), 1)
int tu_held_start(const char *file, int line, held *h, const char *type, const char *id,
                  int p0, int hold0, int p1, int hold1, int go);
/* h's process reached its point i (fails the case if it does not). */
#define held_at(h, i) tu_held_at(__FILE__, __LINE__, (h), (i))
void tu_held_at(const char *file, int line, held *h, int i);
/* Closes h's gates, once its process has ended. */
void held_close(held *h);

#endif
