/* cj_compare: one measured run (a system, a durability mode, a workload)
 * and the workloads. */
#ifndef CMP_RUN_H
#define CMP_RUN_H

#include "backend.h"
#include "procs.h"

struct cmp_run {
	const struct cmp_backend *be;
	struct cmp_conf conf;
	const char *tsv;       /* results are appended here */
	double seconds;        /* enqueue: how long the producer runs */
	long jobs;             /* drain: N */
	int procs;             /* drain: processor processes */
	double warmup, window; /* mixed */
	long samples;          /* latency: measured samples */
	long size;             /* scale: jobs pending */
	long scale_drain;      /* scale: D, the jobs timed */
	struct cmp_shared *sh; /* during a workload */
};

void cmp_workload_enqueue(struct cmp_run *r);
void cmp_workload_drain(struct cmp_run *r);
void cmp_workload_mixed(struct cmp_run *r);
void cmp_workload_latency(struct cmp_run *r);
void cmp_workload_scale(struct cmp_run *r);

/* Helpers of the workloads (worker.c). */

/* Claims up to max jobs and reads n and t from each one's data. */
size_t cmp_claim(const struct cmp_run *r, void *h, size_t max, int timeout_ms, struct cmp_job *jobs);

/* Completes k claimed jobs, records each one done (dying on a duplicate)
 * and the time of the last completion, and counts them for worker idx. */
size_t cmp_complete(const struct cmp_run *r, void *h, struct cmp_job *jobs, size_t k, int idx);

/* Parent: a fresh queue holding n preloaded jobs, settled and synced to
 * disk; returns the seconds the fill took. */
double cmp_fill(struct cmp_run *r, long n);

/* Parent, after a drain of every job: the queue must be empty. */
void cmp_check_empty(const struct cmp_run *r);

/* The workload's jobs per call: 1 for the peers, CMP_BATCH for the
 * batched couchjobs columns. */
#define RUN_BATCH(r) ((r)->conf.batch)

/* One result: a line of the TSV (system, mode, key, value, note) and a
 * line on stderr. */
void cmp_result(const struct cmp_run *r, const char *key, double value, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
