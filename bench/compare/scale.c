/* cj_compare: the scale workload. A queue holding size + WARM + D pending
 * jobs; one processor claims and completes WARM of them (not timed), then D
 * (timed), from the head of the queue, so that at least size jobs stay
 * pending throughout. */
#include <stdio.h>

#include "run.h"
#include "util.h"

#define WARM 200
#define CLAIM_WAIT_MS 1000
#define STALL_NS (60 * (int64_t)1000000000)

/* Claims and completes n jobs, in calls of up to the run's batch. */
static void take(struct cmp_run *r, void *h, long n) {
	struct cmp_job jobs[CMP_BATCH];
	long done = 0;
	int64_t progress = cmp_now_ns();
	while (done < n) {
		long left = n - done;
		size_t max = (size_t)left < RUN_BATCH(r) ? (size_t)left : RUN_BATCH(r);
		size_t k = cmp_claim(r, h, max, CLAIM_WAIT_MS, jobs);
		if (k == 0) {
			if (cmp_now_ns() - progress > STALL_NS) cmp_die("no job for 60 s (%ld of %ld)", done, n);
			continue;
		}
		progress = cmp_now_ns();
		if (cmp_complete(r, h, jobs, k, 0) != k) cmp_die("a job could not be completed");
		done += (long)k;
	}
}

static void scale_processor(int idx, void *arg) {
	struct cmp_run *r = arg;
	(void)idx;
	void *h = r->be->open(&r->conf);
	cmp_start(r->sh);
	take(r, h, WARM);
	atomic_store(&r->sh->t_first, cmp_now_ns());
	take(r, h, r->scale_drain);
	atomic_store(&r->sh->t_last, cmp_now_ns());
	r->be->close(h);
}

void cmp_workload_scale(struct cmp_run *r) {
	char key[48];
	long total = r->size + WARM + r->scale_drain;
	double fill = cmp_fill(r, total);
	r->sh = cmp_shared_new(1, 0, total);
	cmp_spawn(scale_processor, 0, r, "processor");
	cmp_release(r->sh);
	cmp_wait_all();
	long done = atomic_load(&r->sh->completed);
	if (done != WARM + r->scale_drain) cmp_die("scale: %ld jobs completed", done);
	double secs = (double)(atomic_load(&r->sh->t_last) - atomic_load(&r->sh->t_first)) / 1e9;
	snprintf(key, sizeof key, "scale_%ld", r->size);
	cmp_result(r, key, (double)r->scale_drain / secs,
	           "%ld jobs timed in %.2f s (%.1f us per job) with %ld to %ld pending; fill of %ld "
	           "jobs took %.1f s",
	           r->scale_drain, secs, secs * 1e6 / (double)r->scale_drain, total - WARM,
	           r->size, total, fill);
	cmp_shared_free(r->sh);
	r->be->teardown(&r->conf);
}
