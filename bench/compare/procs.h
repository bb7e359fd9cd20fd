/* cj_compare: worker processes and the memory they share with the driver
 * (anonymous MAP_SHARED, set up before fork): a start barrier, counters,
 * timestamps, latency samples and the completed-jobs check. */
#ifndef CMP_PROCS_H
#define CMP_PROCS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#define CMP_MAX_PROCS 8

struct cmp_shared {
	pthread_barrier_t start; /* the workers and the driver */
	atomic_int ready;        /* workers at the barrier */
	atomic_int stop;         /* the driver tells the workers to end */
	atomic_long claimed, completed, enqueued;
	atomic_long per_worker[CMP_MAX_PROCS]; /* completions of each worker */
	atomic_llong t_first; /* earliest worker start after the barrier (ns) */
	atomic_llong t_last;  /* latest completion (ns) */
	atomic_long nsamples;
	atomic_llong idle_cpu_ns, idle_wall_ns; /* latency: the processor waiting */
	long samples_cap;
	int64_t *samples;
	long done_cap;        /* job numbers 0..done_cap-1 are checked */
	atomic_uchar *done;   /* times each job number was completed */
};

/* Shared memory for nworkers workers (and the driver at the barrier). */
struct cmp_shared *cmp_shared_new(int nworkers, long samples_cap, long done_cap);
void cmp_shared_free(struct cmp_shared *sh);

/* In a worker: waits until every worker and the driver are ready, then
 * records this worker's start; returns it. */
int64_t cmp_start(struct cmp_shared *sh);

/* Records a completion time (keeps the latest). */
void cmp_mark_last(struct cmp_shared *sh, int64_t t);

/* Records that job number n was completed; dies if it already was or is
 * out of range. */
void cmp_mark_done(struct cmp_shared *sh, long n);

/* Forks a worker running fn(idx, arg), named in messages by who; it dies
 * with the driver. */
void cmp_spawn(void (*fn)(int idx, void *arg), int idx, void *arg, const char *who);

/* Driver: waits until all spawned workers are at the barrier (dying if one
 * ended first), then releases them. Returns the time of release. */
int64_t cmp_release(struct cmp_shared *sh);

/* Driver: waits for every spawned worker; dies (killing the others, by
 * pid) if one failed. */
void cmp_wait_all(void);

/* Driver: after limit_s seconds, kill the workers and fail the run. */
void cmp_watchdog(int limit_s);

#endif
