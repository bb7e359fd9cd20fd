/* cj_compare: the jobs every system carries, and the record a processor
 * holds for a job it claimed. */
#ifndef CMP_JOB_H
#define CMP_JOB_H

#include <stddef.h>
#include <stdint.h>

#define CMP_ID_MAX 48    /* "p<proc>-<seq>" */
#define CMP_DATA_MAX 128 /* the JSON text of a job */

/* A job to enqueue: its id and JSON data. */
struct cmp_new {
	char id[CMP_ID_MAX];
	char data[CMP_DATA_MAX];
};

/* A job as a processor holds it between claim and complete. The backend
 * fills id, num, handle and data; the driver fills n and t from data;
 * complete sets ok for each job it completed and frees data and handle. */
struct cmp_job {
	char id[CMP_ID_MAX]; /* the system's name of the job */
	uint64_t num;        /* beanstalkd: the server's job id */
	void *handle;        /* couchjobs: the cj_job */
	char *data;          /* its JSON, owned by the backend */
	long n;              /* the job's number, from its data */
	int64_t t;           /* the producer's CLOCK_MONOTONIC stamp, or 0 */
	int ok;              /* set by complete */
};

/* "p<proc>-<seq>", seq zero-padded so that byte order is number order. */
void cmp_job_id(char *out, size_t cap, int proc, long seq);

/* The job's data: {"n":N,"t":T,"pad":"xxx..."}, about 50 bytes (more with
 * a latency stamp). Every system carries the same text. */
void cmp_job_data(char *out, size_t cap, long n, int64_t t);

/* Fills a struct cmp_new. */
void cmp_job_new(struct cmp_new *j, int proc, long seq, int64_t t);

/* The padding every job carries, for bulk fills that build the data
 * themselves (PostgreSQL's jsonb_build_object). */
extern const char cmp_job_pad[];

/* Reads n and t back from a job's data, as the system returned it (it may
 * have re-serialised it, e.g. jsonb adds spaces). 0, or -1 if either is
 * missing. */
int cmp_job_parse(const char *data, long *n, int64_t *t);

#endif
