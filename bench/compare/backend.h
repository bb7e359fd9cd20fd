/* cj_compare: what the driver asks of every system it measures.
 *
 * The driver (the parent process) prepares a fresh, empty queue, may
 * preload it, and forks the producers and processors; each of them opens
 * its own connection (or cj_db) after the fork. Every call checks every
 * result and dies (cmp_die) on anything unexpected: a run either measures
 * what it says or fails loudly.
 *
 * One job per request for the peers: enqueue, claim and complete get n = 1
 * (max = 1). Only the batched couchjobs configurations get more (conf.batch
 * jobs in one transaction); that is the point of those columns.
 */
#ifndef CMP_BACKEND_H
#define CMP_BACKEND_H

#include <limits.h>
#include <stddef.h>

#include "job.h"

#define CMP_BATCH 64 /* jobs per call in the batched couchjobs columns */

struct cmp_conf {
	const char *system; /* the configuration's name, e.g. "cj-lmdb-batch" */
	int durable;        /* 1: durable mode, 0: relaxed (see compare.sh) */
	size_t batch;       /* 1, or CMP_BATCH for the batched columns */
	int pg_engine;      /* couchjobs: the PostgreSQL engine, not LMDB */
	const char *dir;    /* a scratch directory for embedded stores */
	const char *url;    /* the PostgreSQL server (libpq URL) */
	int port;           /* beanstalkd or Redis, on 127.0.0.1; cj-http: set by
	                       prepare */
	const char *cjobs;  /* cj-http: the cjobs binary that serves */
	char tag[64];       /* names this run's store or schema */
	/* couchjobs: where this run's store is, set by prepare */
	char store[PATH_MAX + 512];
	char schema[96];
};

struct cmp_backend {
	const char *name;
	/* Parent: makes a fresh, empty queue (or checks that the server is
	 * fresh). */
	void (*prepare)(struct cmp_conf *c);
	/* Parent: adds n pending jobs p0-000000000 .. with numbers 0..n-1, by
	 * the fastest means the system has. Not measured. */
	void (*preload)(const struct cmp_conf *c, long n);
	/* Parent, after preload: lets the system settle (checkpoint, analyze)
	 * so that the measured phase does not pay for the fill. */
	void (*settle)(const struct cmp_conf *c);
	/* Parent, at the end: removes what prepare made. */
	void (*teardown)(struct cmp_conf *c);

	/* In each worker process, after fork. */
	void *(*open)(const struct cmp_conf *c);
	void (*enqueue)(void *h, const struct cmp_new *jobs, size_t n);
	/* Takes 1..max pending jobs, waiting up to timeout_ms (0: do not wait)
	 * for the first; 0 when none came in time. */
	size_t (*claim)(void *h, size_t max, int timeout_ms, struct cmp_job *out);
	/* Completes the n jobs (sets ok on each one done) and frees their data
	 * and handles. Returns how many it completed. */
	size_t (*complete)(void *h, struct cmp_job *jobs, size_t n);
	void (*close)(void *h);
};

extern const struct cmp_backend cmp_beanstalkd;
extern const struct cmp_backend cmp_redis;
extern const struct cmp_backend cmp_pgqueue;
extern const struct cmp_backend cmp_couchjobs;
extern const struct cmp_backend cmp_http;
extern const struct cmp_backend cmp_sqlite;

#endif
