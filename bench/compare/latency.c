/* cj_compare: the latency workload. One processor waits in claim; the
 * producer adds one job at a time carrying CLOCK_MONOTONIC (taken just
 * before its enqueue call), and the processor takes the clock again as
 * claim returns. Between jobs the producer waits for the previous one to
 * be completed, then 3 ms more, so that the processor is idle, waiting,
 * when each job arrives. Before the first job the producer waits IDLE_US:
 * the processor's CPU time over that wait (user + system, getrusage) is
 * what an idle processor costs. */
#include <stdlib.h>
#include <sys/resource.h>

#include "run.h"
#include "util.h"

#define WARM 20              /* samples not counted */
#define GAP_US 3000          /* idle time before each job */
#define IDLE_US 1000000      /* the wait before the first job */
#define CLAIM_WAIT_MS 1000
#define STALL_NS (30 * (int64_t)1000000000)

static int64_t cpu_ns(void) {
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
	       ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static void latency_processor(int idx, void *arg) {
	struct cmp_run *r = arg;
	struct cmp_job jobs[CMP_BATCH];
	long total = r->samples + WARM, got = 0;
	void *h = r->be->open(&r->conf);
	int64_t progress = cmp_start(r->sh), cpu0 = cpu_ns();
	while (got < total) {
		size_t k = cmp_claim(r, h, RUN_BATCH(r), CLAIM_WAIT_MS, jobs);
		int64_t now = cmp_now_ns();
		if (k == 0) {
			if (now - progress > STALL_NS) cmp_die("no job for 30 s (%ld of %ld)", got, total);
			continue;
		}
		if (got == 0) { /* the idle wait ended with this claim */
			atomic_store(&r->sh->idle_cpu_ns, cpu_ns() - cpu0);
			atomic_store(&r->sh->idle_wall_ns, now - progress);
		}
		progress = now;
		for (size_t i = 0; i < k; i++, got++)
			if (got >= WARM && got - WARM < r->sh->samples_cap) {
				r->sh->samples[got - WARM] = now - jobs[i].t;
				atomic_fetch_add(&r->sh->nsamples, 1);
			}
		cmp_complete(r, h, jobs, k, idx);
	}
	r->be->close(h);
}

static void latency_producer(int idx, void *arg) {
	struct cmp_run *r = arg;
	struct cmp_new job;
	long total = r->samples + WARM;
	(void)idx;
	void *h = r->be->open(&r->conf);
	cmp_start(r->sh);
	cmp_sleep_us(IDLE_US);
	for (long i = 0; i < total; i++) {
		int64_t t0 = cmp_now_ns();
		while (atomic_load(&r->sh->completed) < i) {
			if (cmp_now_ns() - t0 > STALL_NS) cmp_die("job %ld not completed in 30 s", i - 1);
			cmp_sleep_us(50);
		}
		cmp_sleep_us(GAP_US);
		cmp_job_new(&job, 1, i, cmp_now_ns());
		r->be->enqueue(h, &job, 1);
	}
	r->be->close(h);
}

static int cmp_i64(const void *a, const void *b) {
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* The q-quantile of n sorted values, nearest rank. */
static int64_t quantile(const int64_t *v, long n, double q) {
	long k = (long)(q * (double)n + 0.999999);
	if (k < 1) k = 1;
	if (k > n) k = n;
	return v[k - 1];
}

void cmp_workload_latency(struct cmp_run *r) {
	cmp_fill(r, 0);
	r->sh = cmp_shared_new(2, r->samples, r->samples + WARM);
	cmp_spawn(latency_processor, 0, r, "processor");
	cmp_spawn(latency_producer, 1, r, "producer");
	cmp_release(r->sh);
	cmp_wait_all();
	long n = atomic_load(&r->sh->nsamples);
	if (n != r->samples) cmp_die("latency: %ld samples, expected %ld", n, r->samples);
	int64_t *s = r->sh->samples;
	qsort(s, (size_t)n, sizeof *s, cmp_i64);
	double sum = 0;
	for (long i = 0; i < n; i++) sum += (double)s[i];
	cmp_result(r, "latency_p50", (double)quantile(s, n, 0.5) / 1e3,
	           "us; %ld samples (after %d not counted); mean %.0f us, max %.0f us", n, WARM,
	           sum / (double)n / 1e3, (double)s[n - 1] / 1e3);
	cmp_result(r, "latency_p99", (double)quantile(s, n, 0.99) / 1e3, "us");
	double idle_cpu = (double)atomic_load(&r->sh->idle_cpu_ns);
	double idle_wall = (double)atomic_load(&r->sh->idle_wall_ns);
	cmp_result(r, "idle_cpu", idle_wall > 0 ? 100 * idle_cpu / idle_wall : 0,
	           "%% of a core: %.2f ms of CPU while waiting %.2f s for the first job",
	           idle_cpu / 1e6, idle_wall / 1e9);
	cmp_shared_free(r->sh);
	r->be->teardown(&r->conf);
}
