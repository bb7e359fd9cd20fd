/* cj_compare: what every workload's workers do alike. */
#include <stdio.h>
#include <unistd.h>

#include "run.h"
#include "util.h"

size_t cmp_claim(const struct cmp_run *r, void *h, size_t max, int timeout_ms, struct cmp_job *jobs) {
	size_t k = r->be->claim(h, max, timeout_ms, jobs);
	if (k > max) cmp_die("claim returned %zu jobs, asked for %zu", k, max);
	for (size_t i = 0; i < k; i++)
		if (cmp_job_parse(jobs[i].data, &jobs[i].n, &jobs[i].t) != 0)
			cmp_die("job %s: unexpected data %.80s", jobs[i].id, jobs[i].data ? jobs[i].data : "(none)");
	return k;
}

size_t cmp_complete(const struct cmp_run *r, void *h, struct cmp_job *jobs, size_t k, int idx) {
	size_t done = r->be->complete(h, jobs, k);
	cmp_mark_last(r->sh, cmp_now_ns());
	for (size_t i = 0; i < k; i++)
		if (jobs[i].ok) cmp_mark_done(r->sh, jobs[i].n);
	atomic_fetch_add(&r->sh->completed, (long)done);
	atomic_fetch_add(&r->sh->per_worker[idx], (long)done);
	return done;
}

double cmp_fill(struct cmp_run *r, long n) {
	r->be->prepare(&r->conf);
	int64_t t0 = cmp_now_ns();
	if (n > 0) r->be->preload(&r->conf, n);
	double secs = (double)(cmp_now_ns() - t0) / 1e9;
	if (n > 0) {
		r->be->settle(&r->conf);
		sync(); /* the fill's writes reach the disk before the measured phase */
		cmp_note("preloaded %ld jobs in %.1f s (%.0f jobs/s; not measured)", n, secs,
		         (double)n / secs);
	}
	return secs;
}

void cmp_check_empty(const struct cmp_run *r) {
	struct cmp_job jobs[CMP_BATCH];
	void *h = r->be->open(&r->conf);
	size_t k = r->be->claim(h, 1, 0, jobs);
	if (k != 0) cmp_die("a job was left in the queue after the drain: %s", jobs[0].id);
	r->be->close(h);
}
