/*
 * Fault injection, as SQLite does it: a switch makes the Nth allocation of
 * the library (alloc.c), or the Nth operation of the faulty engine
 * (engine/faulty.c), fail, once or from then on. The fault-injection test
 * loops its scenarios over N = 1, 2, ... until a run meets no fault.
 *
 * Built only with the CMake option CJ_FAULTS (on by default in sanitizer
 * builds, where the tests run): in any other build neither this file nor the
 * faulty engine exists and cj__malloc() has no check to make.
 */
#include <stdatomic.h>
#include <unistd.h>

#include "cj_int.h"

struct fault_switch {
	atomic_long countdown; /* events until the fault; 0: off */
	atomic_int persistent; /* after the fault, every event fails */
	atomic_int kind;
	atomic_long hits;      /* events failed since armed */
};

static struct fault_switch alloc_sw, engine_sw;

static void arm(struct fault_switch *s, long n, int kind, int persistent) {
	atomic_store(&s->countdown, 0);
	atomic_store(&s->kind, kind);
	atomic_store(&s->persistent, persistent);
	atomic_store(&s->hits, 0);
	atomic_store(&s->countdown, n > 0 ? n : 0);
}

/* Counts an event: 1 when it must fail. */
static int due(struct fault_switch *s) {
	long n = atomic_load(&s->countdown);
	for (;;) {
		if (n <= 0) return 0;
		long next = n > 1 ? n - 1 : atomic_load(&s->persistent) ? 1 : 0;
		if (atomic_compare_exchange_weak(&s->countdown, &n, next)) break;
	}
	if (n > 1) return 0;
	atomic_fetch_add(&s->hits, 1);
	return 1;
}

void cj__fault_alloc(long n, int persistent) { arm(&alloc_sw, n, 0, persistent); }

long cj__fault_alloc_hits(void) { return atomic_load(&alloc_sw.hits); }

int cj__fault_alloc_due(void) { return due(&alloc_sw); }

void cj__fault_engine(long n, int kind, int persistent) {
	arm(&engine_sw, n, kind, persistent);
}

long cj__fault_engine_hits(void) { return atomic_load(&engine_sw.hits); }

int cj__fault_engine_due(int in_tx) {
	/* engines conflict inside transactions only */
	if (!in_tx && atomic_load(&engine_sw.kind) == CJ_FAULT_CONFLICT) return 0;
	return due(&engine_sw) ? atomic_load(&engine_sw.kind) : 0;
}

static struct {
	atomic_int armed;
	int notify_fd, gate_fd;
} holds[CJ_HOLDS];

void cj__fault_hold(int point, int notify_fd, int gate_fd) {
	if (point < 0 || point >= CJ_HOLDS) return;
	atomic_store(&holds[point].armed, 0);
	holds[point].notify_fd = notify_fd;
	holds[point].gate_fd = gate_fd;
	atomic_store(&holds[point].armed, 1);
}

void cj__fault_hold_here(int point) {
	if (point < 0 || point >= CJ_HOLDS || !atomic_exchange(&holds[point].armed, 0)) return;
	char c = (char)point;
	(void)!write(holds[point].notify_fd, &c, 1);
	if (holds[point].gate_fd >= 0) (void)!read(holds[point].gate_fd, &c, 1);
}
