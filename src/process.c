/* Running jobs: cj_update, cj_finish, cj_fail, cj_resubmit, and job
 * handles. */
#include <string.h>

#include "cj_int.h"

int cj_is_resubmitted(const cj_job *job) { return job ? job->resubmit : 0; }
const char *cj_job_type(const cj_job *job) { return job ? job->type : NULL; }
const char *cj_job_id(const cj_job *job) { return job ? job->id : NULL; }
const char *cj_job_lock(const cj_job *job) { return job ? job->lock_str : NULL; }
uint64_t cj_job_fence(const cj_job *job) { return job ? job->fence : 0; }

void cj_job_free(cj_job *job) {
	if (!job) return;
	cj_free(job->type);
	cj_free(job->id);
	cj_free(job);
}

int cj_job_resume(const char *type, const char *id, const char *lock, cj_job **job) {
	if (!job) return cj__fail(CJ_INVALID, "job out-pointer is NULL");
	*job = NULL;
	int rc;
	if ((rc = cj__check_type(type)) || (rc = cj__check_id(id))) return rc;
	cj_job *j = cj__calloc(1, sizeof *j);
	if (!j) return cj__fail(CJ_NOMEM, "out of memory");
	if (!lock || cj__uuid_parse(lock, j->lock) != 0) {
		cj_free(j);
		return cj__fail(CJ_INVALID, "lock is not a UUID");
	}
	cj__uuid_format(j->lock, j->lock_str);
	j->type = cj__strdup(type);
	j->id = cj__strdup(id);
	if (!j->type || !j->id) {
		cj_job_free(j);
		return cj__fail(CJ_NOMEM, "out of memory");
	}
	*job = j;
	return CJ_OK;
}

enum run_end { RUN_UPDATE, RUN_FINISH, RUN_FAIL };

struct run_arg {
	cj_job *job;
	const char *data; /* RUN_FAIL: the error */
	size_t dlen;
	enum run_end end;
	int64_t sched;
};

/* Reads the job and checks that job still holds it. */
static int read_held(cj_tx *tx, cj_job *job, cj_buf *copy, cj_jv *jv) {
	int rc = cj__job_read(tx, job->type, job->id, copy, jv);
	if (rc == CJ_NOT_FOUND)
		return cj__fail(CJ_HALT, "job %.60s was removed", job->id);
	if (rc) return rc;
	if (!jv->has_lock || memcmp(jv->lock, job->lock, CJ_UUID_LEN) != 0)
		return cj__fail(CJ_HALT, "job %.60s is no longer held with lock %s", job->id,
		                job->lock_str);
	return CJ_OK;
}

static int update_fn(cj_tx *tx, void *arg) {
	struct run_arg *a = arg;
	cj_job *job = a->job;
	cj_buf copy = CJ_BUF_INIT;
	cj_jv jv;
	uint8_t vs[CJ_VS_LEN];
	int rc = CJ_OK;
	if (a->end != RUN_UPDATE) {
		/* the job's read, and what ending its run reads, go in one round
		 * trip where the engine can; the job first, so that its key is
		 * held before the type's rows, as without the announcements */
		cj__key_data(&tx->kbuf, job->type, job->id);
		if ((rc = cj__prefetch(tx, &tx->kbuf)) ||
		    (rc = a->end == RUN_FINISH ? cj__finished_prefetch(tx, job->type)
		                               : cj__attempt_prefetch(tx, job->type)))
			goto out;
	}
	if ((rc = read_held(tx, job, &copy, &jv))) goto out;
	const cj_jv old = jv;
	cj__key_activity(&tx->kbuf, job->type, jv.seq);
	if ((rc = cj__del_blind(tx, &tx->kbuf))) goto out;
	if (a->end != RUN_UPDATE && (rc = cj__run_ended(tx, job->type))) goto out;
	if (a->end == RUN_FAIL) { /* fail.c: recorded, then retried or dead */
		rc = cj__attempt_end(tx, job->type, job->id, &jv, a->data, a->dlen);
		goto out;
	}
	/* an update writes its number; a finish only touches the watch keys */
	if ((rc = a->end == RUN_UPDATE ? cj__tx_vs(tx, vs) : cj__watch_vs(tx, vs))) goto out;
	if (a->end == RUN_FINISH) {
		if (jv.resubmit) {
			rc = cj__job_enqueue(tx, job->type, job->id, jv.sched, &jv, a->data, a->dlen, 1);
			goto out;
		}
		jv.has_seq = jv.has_lock = 0;
		jv.finished_ms = cj__job_end_ms();
	} else {
		jv.has_seq = 1;
		memcpy(jv.seq, vs, CJ_VS_LEN);
		if ((rc = cj__job_activity_put(tx, job->type, job->id, vs))) goto out;
	}
	if ((rc = cj__job_write(tx, job->type, job->id, &old, &jv, a->data, a->dlen))) goto out;
	if (a->end == RUN_FINISH && (rc = cj__finished_put(tx, job->type, job->id, &jv)))
		goto out;
	rc = cj__touch_activity(tx, job->type, vs);
	if (rc == CJ_OK && a->end == RUN_UPDATE) job->resubmit = jv.resubmit;
out:
	cj__buf_free(&copy);
	return rc;
}

static int resubmit_fn(cj_tx *tx, void *arg);

/* Runs op on a->job: without a caller's transaction combined with other
 * processes' calls where it can be (combine.c), else as cj__run does. */
static int run_job(cj_db *db, cj_tx *tx, int op, struct run_arg *a) {
	if (!tx) {
		cj_job *job = a->job;
		cj_op_call c = {op, job->type, job->id, a->data, a->dlen, a->sched, 0, {0},
		                job->resubmit, NULL};
		memcpy(c.lock, job->lock, CJ_UUID_LEN);
		int rc;
		if (cj__combine_run(db, &c, &rc)) {
			job->resubmit = c.resubmit;
			return rc;
		}
	}
	return cj__run(db, tx, 1, op == CJ_OP_RESUBMIT ? resubmit_fn : update_fn, a);
}

static int check_job(cj_db *db, cj_job *job) {
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	if (!job) return cj__fail(CJ_INVALID, "job is NULL");
	return CJ_OK;
}

int cj_update(cj_db *db, cj_tx *tx, cj_job *job, const char *data) {
	struct run_arg a = {job, data, 0, RUN_UPDATE, 0};
	int rc;
	if ((rc = check_job(db, job)) || (rc = cj__check_data(db, &a.data, &a.dlen, 1)))
		return rc;
	a.data = data; /* NULL keeps */
	return run_job(db, tx, CJ_OP_UPDATE, &a);
}

int cj_finish(cj_db *db, cj_tx *tx, cj_job *job, const char *data) {
	struct run_arg a = {job, data, 0, RUN_FINISH, 0};
	int rc;
	if ((rc = check_job(db, job)) || (rc = cj__check_data(db, &a.data, &a.dlen, 1)))
		return rc;
	a.data = data;
	return run_job(db, tx, CJ_OP_FINISH, &a);
}

int cj_fail(cj_db *db, cj_tx *tx, cj_job *job, const char *error) {
	struct run_arg a = {job, error, 0, RUN_FAIL, 0};
	int rc;
	if ((rc = check_job(db, job)) || (rc = cj__check_error(&a.data, &a.dlen))) return rc;
	return run_job(db, tx, CJ_OP_FAIL, &a);
}

static int resubmit_fn(cj_tx *tx, void *arg) {
	struct run_arg *a = arg;
	cj_job *job = a->job;
	cj_buf copy = CJ_BUF_INIT;
	cj_jv jv;
	cj_state state;
	int rc = cj__job_load(tx, job->type, job->id, &copy, &jv, &state);
	if (rc) goto out;
	int64_t sched = a->sched == CJ_SCHED_KEEP ? jv.sched : a->sched;
	if (state == CJ_RUNNING) {
		uint8_t vs[CJ_VS_LEN];
		jv.resubmit = 1;
		jv.sched = sched;
		if (!(rc = cj__tx_vs(tx, vs)) &&
		    !(rc = cj__job_write(tx, job->type, job->id, &jv, &jv, NULL, 0)))
			rc = cj__touch_activity(tx, job->type, vs);
		if (rc == CJ_OK && memcmp(jv.lock, job->lock, CJ_UUID_LEN) == 0)
			job->resubmit = 1;
	} else {
		if (!(rc = cj__job_unindex(tx, job->type, job->id, &jv)))
			rc = cj__job_enqueue(tx, job->type, job->id, sched, &jv, a->data, a->dlen, 1);
	}
out:
	cj__buf_free(&copy);
	return rc;
}

int cj_resubmit(cj_db *db, cj_tx *tx, cj_job *job, int64_t sched_time, const char *data) {
	struct run_arg a = {job, data, 0, RUN_UPDATE, sched_time};
	int rc;
	if ((rc = check_job(db, job)) || (rc = cj__check_data(db, &a.data, &a.dlen, 1)))
		return rc;
	a.data = data;
	if ((rc = cj__check_sched(sched_time, 1))) return rc;
	return run_job(db, tx, CJ_OP_RESUBMIT, &a);
}

/* The call op on a->job, with its arguments a: run as c describes it. */
static int job_call(cj_tx *tx, int op, struct run_arg *a) {
	static const enum run_end ends[] = {[CJ_OP_UPDATE] = RUN_UPDATE,
	                                    [CJ_OP_FINISH] = RUN_FINISH,
	                                    [CJ_OP_FAIL] = RUN_FAIL};
	if (op == CJ_OP_RESUBMIT) return resubmit_fn(tx, a);
	a->end = ends[op];
	return update_fn(tx, a);
}

int cj__job_op(cj_tx *tx, cj_op_call *c) {
	cj_job job = {(char *)c->type, (char *)c->id, {0}, "", c->resubmit, 0};
	memcpy(job.lock, c->lock, CJ_UUID_LEN);
	cj__uuid_format(job.lock, job.lock_str);
	struct run_arg a = {&job, c->data, c->dlen, RUN_UPDATE, c->sched};
	int rc = job_call(tx, c->op, &a);
	c->resubmit = job.resubmit;
	return rc;
}
