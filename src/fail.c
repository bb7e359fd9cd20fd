/* Attempts that end without finishing (cj__attempt_end): failed
 * (cj_fail, in process.c) or lost to the activity monitor; dead jobs, and
 * their redrive. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cj_int.h"

/* Makes the job, no longer running and without index entries, dead. */
static int make_dead(cj_tx *tx, const char *type, const char *id, cj_jv *jv) {
	uint8_t vs[CJ_VS_LEN];
	const cj_jv old = *jv;
	jv->has_lock = jv->has_seq = jv->resubmit = 0;
	jv->dead = 1;
	jv->finished_ms = cj__job_end_ms();
	int rc;
	if ((rc = cj__watch_vs(tx, vs)) || (rc = cj__job_write(tx, type, id, &old, jv, NULL, 0)) ||
	    (rc = cj__finished_put(tx, type, id, jv)))
		return rc;
	return cj__touch_activity(tx, type, vs);
}

int cj__attempt_prefetch(cj_tx *tx, const char *type) {
	cj_buf k = CJ_BUF_INIT;
	cj__key_policy(&k, type);
	int rc = cj__prefetch_scan_key(tx, &k);
	cj__buf_free(&k);
	return rc ? rc : cj__finished_prefetch(tx, type);
}

int cj__attempt_end(cj_tx *tx, const char *type, const char *id, cj_jv *jv,
                    const char *error, size_t elen) {
	if (jv->resubmit) /* flagged while it ran: new work, as cj_finish */
		return cj__job_enqueue(tx, type, id, jv->sched, jv, NULL, 0, 1);
	/* the record of this attempt */
	cj_buf e = CJ_BUF_INIT;
	char head[128];
	snprintf(head, sizeof head, "{\"attempt\":%" PRId64 ",\"time\":%" PRId64
	         ",\"ended\":\"%s\"", jv->attempt, cj__epoch_ms(), error ? "failed" : "lost");
	cj__buf_add(&e, head, strlen(head));
	if (error) {
		cj__buf_add(&e, ",\"error\":", 9);
		cj__buf_add(&e, error, elen);
	}
	cj__buf_add(&e, "}", 1);
	int rc = CJ_OK;
	if (e.oom) {
		rc = cj__fail(CJ_NOMEM, "out of memory");
		goto out;
	}
	jv->new_err = (const char *)e.p;
	jv->new_errlen = e.len;
	cj_retry_policy p;
	int has = cj__policy_for(tx, type, jv, &p);
	if (has < 0) {
		rc = has;
		goto out;
	}
	if (!has) {
		/* the default: failed is final, lost comes back at once */
		rc = error ? make_dead(tx, type, id, jv)
		           : cj__job_enqueue(tx, type, id, jv->sched, jv, NULL, 0, 0);
		goto out;
	}
	if (p.max_attempts > 0 && jv->attempt >= p.max_attempts) {
		rc = make_dead(tx, type, id, jv);
		goto out;
	}
	int64_t delay = cj__policy_delay(&p, jv->attempt > 0 ? jv->attempt : 1), sched = jv->sched;
	if (delay > 0) {
		sched = cj__add_sat(cj__epoch_ms() / 1000, delay);
		if (sched > CJ_MAX_SCHED_TIME) sched = CJ_MAX_SCHED_TIME;
	}
	rc = cj__job_enqueue(tx, type, id, sched, jv, NULL, 0, 0);
out:
	jv->new_err = NULL;
	cj__buf_free(&e);
	return rc;
}

/* ---- redrive ------------------------------------------------------------- */

/* Puts the dead job (jv, read from copy) back to pending, scheduled now. */
static int redrive(cj_tx *tx, const char *type, const char *id, cj_jv *jv, int keep) {
	if (!keep) jv->attempt = 0;
	int rc = cj__job_unindex(tx, type, id, jv);
	return rc ? rc : cj__job_enqueue(tx, type, id, 0, jv, NULL, 0, 0);
}

struct retry_arg {
	const char *type, *id;
	int keep;
};

static int retry_fn(cj_tx *tx, void *arg) {
	struct retry_arg *a = arg;
	cj_buf copy = CJ_BUF_INIT;
	cj_jv jv;
	int rc = cj__job_load(tx, a->type, a->id, &copy, &jv, NULL);
	if (rc == CJ_OK && !jv.dead)
		rc = cj__fail(CJ_INVALID, "job %.60s is not dead", a->id);
	if (rc == CJ_OK) rc = redrive(tx, a->type, a->id, &jv, a->keep);
	cj__buf_free(&copy);
	return rc;
}

int cj_retry(cj_db *db, cj_tx *tx, const char *type, const char *id, int keep_attempts) {
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	int rc;
	if ((rc = cj__check_type(type)) || (rc = cj__check_id(id))) return rc;
	struct retry_arg a = {type, id, keep_attempts};
	return cj__run(db, tx, 1, retry_fn, &a);
}

/* Jobs one transaction of cj_retry_type looks at, dead or not. */
#define CJ_RETRY_SCAN 5000

struct type_arg {
	const char *type;
	int keep;
	cj_buf from;   /* the first key to look at */
	int done;      /* the type's last job was looked at */
	uint64_t count;/* redriven by this batch */
	/* the scan's harvest: ids of dead jobs, NUL-terminated, one after another */
	cj_buf ids;
	int nids, seen;
	cj_buf last;   /* the last key looked at */
};

static int collect_dead(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                        void *arg) {
	struct type_arg *a = arg;
	if (a->nids == CJ_RETRY_BATCH || a->seen == CJ_RETRY_SCAN) return 1;
	a->seen++;
	cj__buf_reset(&a->last);
	cj__buf_add(&a->last, k, kl);
	cj_jv jv;
	char *type, *id;
	int rc = cj__jv_decode(v, vl, &jv);
	if (rc || !jv.dead) return rc;
	if ((rc = cj__key_data_parse(k, kl, &type, &id))) return rc;
	cj__buf_add(&a->ids, id, strlen(id) + 1);
	a->nids++;
	cj_free(type);
	cj_free(id);
	return a->ids.oom || a->last.oom ? cj__fail(CJ_NOMEM, "out of memory") : 0;
}

static int retry_type_fn(cj_tx *tx, void *arg) {
	struct type_arg *a = arg;
	cj_buf hi = CJ_BUF_INIT;
	cj__buf_reset(&a->ids);
	cj__buf_reset(&a->last);
	a->nids = a->seen = 0;
	a->count = 0;
	cj__key_data_prefix(&hi, a->type);
	cj__tup_range_end(&hi);
	int rc = cj__scan(tx, &a->from, &hi, collect_dead, a);
	cj__buf_free(&hi);
	if (rc < 0) return rc;
	a->done = rc == 0;
	size_t off = 0;
	for (int i = 0; i < a->nids; i++) {
		const char *id = (const char *)a->ids.p + off;
		off += strlen(id) + 1;
		struct retry_arg r = {a->type, id, a->keep};
		if ((rc = retry_fn(tx, &r))) return rc;
		a->count++;
	}
	return CJ_OK;
}

int cj_retry_type(cj_db *db, const char *type, int keep_attempts, uint64_t *count) {
	if (count) *count = 0;
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	int rc = cj__check_type(type);
	if (rc) return rc;
	if (cj__tx_held(db))
		return cj__fail(CJ_INVALID, "this thread holds an open transaction on this store");
	struct type_arg a = {type, keep_attempts, CJ_BUF_INIT, 0, 0, CJ_BUF_INIT, 0, 0,
	                     CJ_BUF_INIT};
	uint64_t total = 0;
	cj__key_data_prefix(&a.from, type);
	while (!a.done) {
		if ((rc = cj__run(db, NULL, 1, retry_type_fn, &a))) break;
		total += a.count;
		/* on from just after the last key looked at */
		cj__buf_reset(&a.from);
		cj__buf_add(&a.from, a.last.p, a.last.len);
		cj__buf_add(&a.from, "", 1);
		if (a.from.oom) rc = cj__fail(CJ_NOMEM, "out of memory");
		if (rc) break;
	}
	cj__buf_free(&a.from);
	cj__buf_free(&a.ids);
	cj__buf_free(&a.last);
	if (count) *count = total;
	return rc;
}
