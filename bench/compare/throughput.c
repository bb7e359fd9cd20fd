/* cj_compare: the throughput workloads: enqueue, drain, mixed. */
#include <stdio.h>
#include <string.h>

#include "run.h"
#include "util.h"

#define CLAIM_WAIT_MS 100            /* a processor's claim waits this long at most */
#define STALL_NS (60 * (int64_t)1000000000) /* no progress for this long fails the run */
#define MIXED_CHECK (32L << 20)      /* job numbers the mixed workload can check */
#define MIXED_BACKLOG 10000L         /* mixed: the producer pauses at this many pending */
#define BACKLOG_PAUSE_US 200         /* mixed: how long it pauses before looking again */

/* One enqueue call of the run's batch of new jobs, numbered from *seq on;
 * counted in enqueued. */
static void produce(struct cmp_run *r, void *h, long *seq) {
	struct cmp_new jobs[CMP_BATCH];
	size_t b = RUN_BATCH(r);
	for (size_t i = 0; i < b; i++) cmp_job_new(&jobs[i], 1, (*seq)++, 0);
	r->be->enqueue(h, jobs, b);
	atomic_fetch_add(&r->sh->enqueued, (long)b);
}

/* ---- enqueue: one producer, as fast as it can -------------------------- */

static void enqueue_worker(int idx, void *arg) {
	struct cmp_run *r = arg;
	long seq = 0;
	(void)idx;
	void *h = r->be->open(&r->conf);
	int64_t end = cmp_start(r->sh) + (int64_t)(r->seconds * 1e9), t;
	do {
		produce(r, h, &seq);
		t = cmp_now_ns();
	} while (t < end);
	cmp_mark_last(r->sh, t);
	r->be->close(h);
}

void cmp_workload_enqueue(struct cmp_run *r) {
	cmp_fill(r, 0);
	r->sh = cmp_shared_new(1, 0, 0);
	cmp_spawn(enqueue_worker, 0, r, "producer");
	cmp_release(r->sh);
	cmp_wait_all();
	long n = atomic_load(&r->sh->enqueued);
	double secs = (double)(atomic_load(&r->sh->t_last) - atomic_load(&r->sh->t_first)) / 1e9;
	cmp_result(r, "enqueue", (double)n / secs, "%ld jobs in %.2f s, %zu per call", n, secs,
	           RUN_BATCH(r));
	cmp_shared_free(r->sh);
	r->be->teardown(&r->conf);
}

/* ---- drain: N preloaded jobs, 1 or more processors ---------------------- */

static void drain_worker(int idx, void *arg) {
	struct cmp_run *r = arg;
	struct cmp_job jobs[CMP_BATCH];
	void *h = r->be->open(&r->conf);
	int64_t progress = cmp_start(r->sh);
	for (;;) {
		size_t k = cmp_claim(r, h, RUN_BATCH(r), CLAIM_WAIT_MS, jobs);
		if (k == 0) {
			long claimed = atomic_load(&r->sh->claimed);
			if (claimed >= r->jobs) break;
			if (cmp_now_ns() - progress > STALL_NS)
				cmp_die("nothing claimed for 60 s, with %ld of %ld jobs claimed", claimed, r->jobs);
			continue;
		}
		progress = cmp_now_ns();
		if (atomic_fetch_add(&r->sh->claimed, (long)k) + (long)k > r->jobs)
			cmp_die("more jobs claimed than the %ld added", r->jobs);
		cmp_complete(r, h, jobs, k, idx);
	}
	r->be->close(h);
}

void cmp_workload_drain(struct cmp_run *r) {
	char key[32], who[32], spread[64] = "";
	cmp_fill(r, r->jobs);
	r->sh = cmp_shared_new(r->procs, 0, r->jobs);
	for (int p = 0; p < r->procs; p++) {
		snprintf(who, sizeof who, "processor %d", p + 1);
		cmp_spawn(drain_worker, p, r, who);
	}
	cmp_release(r->sh);
	cmp_wait_all();

	/* exactly the N jobs, each once */
	long done = atomic_load(&r->sh->completed);
	if (done != r->jobs) cmp_die("drain: %ld jobs completed, %ld were added", done, r->jobs);
	for (long i = 0; i < r->jobs; i++)
		if (atomic_load(&r->sh->done[i]) != 1) cmp_die("drain: job number %ld completed %d times", i,
		                                                (int)atomic_load(&r->sh->done[i]));
	cmp_check_empty(r);

	double secs = (double)(atomic_load(&r->sh->t_last) - atomic_load(&r->sh->t_first)) / 1e9;
	if (r->procs > 1) {
		long lo = r->jobs, hi = 0;
		for (int p = 0; p < r->procs; p++) {
			long c = atomic_load(&r->sh->per_worker[p]);
			lo = c < lo ? c : lo;
			hi = c > hi ? c : hi;
		}
		snprintf(spread, sizeof spread, "; %ld..%ld per process", lo, hi);
	}
	snprintf(key, sizeof key, "drain%d", r->procs);
	cmp_result(r, key, (double)r->jobs / secs, "%ld jobs in %.2f s, %d process%s, %zu per call%s",
	           r->jobs, secs, r->procs, r->procs > 1 ? "es" : "", RUN_BATCH(r), spread);
	cmp_shared_free(r->sh);
	r->be->teardown(&r->conf);
}

/* ---- mixed: 1 producer and 2 processors at once ------------------------- */

/* The producer of every system keeps at most MIXED_BACKLOG jobs waiting
 * (enqueued and not yet claimed): enough that a processor never finds the
 * queue empty, bounded so that the window measures a steady state (what
 * goes in comes out) rather than a producer filling a queue faster than
 * it is drained. */

static void mixed_producer(int idx, void *arg) {
	struct cmp_run *r = arg;
	long seq = 0;
	(void)idx;
	void *h = r->be->open(&r->conf);
	cmp_start(r->sh);
	while (!atomic_load(&r->sh->stop)) {
		if (atomic_load(&r->sh->enqueued) - atomic_load(&r->sh->claimed) >= MIXED_BACKLOG) {
			cmp_sleep_us(BACKLOG_PAUSE_US);
			continue;
		}
		if (seq + (long)RUN_BATCH(r) > r->sh->done_cap)
			cmp_die("more than %ld jobs enqueued", r->sh->done_cap);
		produce(r, h, &seq);
	}
	r->be->close(h);
}

static void mixed_processor(int idx, void *arg) {
	struct cmp_run *r = arg;
	struct cmp_job jobs[CMP_BATCH];
	void *h = r->be->open(&r->conf);
	cmp_start(r->sh);
	while (!atomic_load(&r->sh->stop)) {
		size_t k = cmp_claim(r, h, RUN_BATCH(r), CLAIM_WAIT_MS, jobs);
		if (k == 0) continue;
		atomic_fetch_add(&r->sh->claimed, (long)k);
		cmp_complete(r, h, jobs, k, idx);
	}
	r->be->close(h);
}

static void sleep_until(int64_t t) {
	int64_t left = t - cmp_now_ns();
	if (left > 0) cmp_sleep_us((long)(left / 1000));
}

void cmp_workload_mixed(struct cmp_run *r) {
	cmp_fill(r, 0);
	r->sh = cmp_shared_new(3, 0, MIXED_CHECK);
	cmp_spawn(mixed_producer, 0, r, "producer");
	cmp_spawn(mixed_processor, 1, r, "processor 1");
	cmp_spawn(mixed_processor, 2, r, "processor 2");
	int64_t t0 = cmp_release(r->sh);
	sleep_until(t0 + (int64_t)(r->warmup * 1e9));
	int64_t ta = cmp_now_ns();
	long c1 = atomic_load(&r->sh->completed), e1 = atomic_load(&r->sh->enqueued);
	sleep_until(ta + (int64_t)(r->window * 1e9));
	int64_t tb = cmp_now_ns();
	long c2 = atomic_load(&r->sh->completed), e2 = atomic_load(&r->sh->enqueued);
	atomic_store(&r->sh->stop, 1);
	cmp_wait_all();
	double secs = (double)(tb - ta) / 1e9;
	long backlog = atomic_load(&r->sh->enqueued) - atomic_load(&r->sh->claimed);
	cmp_result(r, "mixed", (double)(c2 - c1) / secs,
	           "%ld completions in the %.1f s window (after %.1f s of warm-up), %zu per call",
	           c2 - c1, secs, r->warmup, RUN_BATCH(r));
	cmp_result(r, "mixed_enqueue", (double)(e2 - e1) / secs,
	           "%ld enqueued in the window; %ld jobs still pending at the end", e2 - e1, backlog);
	cmp_shared_free(r->sh);
	r->be->teardown(&r->conf);
}
