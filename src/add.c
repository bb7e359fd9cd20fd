/* Creating and removing jobs, and the job-level steps other calls share. */
#include <string.h>

#include "cj_int.h"

int cj__job_read(cj_tx *tx, const char *type, const char *id, cj_buf *copy,
                 cj_jv *jv) {
	const uint8_t *v;
	size_t vl;
	cj__key_data(&tx->kbuf, type, id);
	int rc = cj__get(tx, &tx->kbuf, &v, &vl);
	if (rc) return rc;
	cj__buf_reset(copy);
	cj__buf_add(copy, v, vl);
	if (copy->oom) return cj__fail(CJ_NOMEM, "out of memory");
	return cj__jv_decode(copy->p, copy->len, jv);
}

int cj__job_write(cj_tx *tx, const char *type, const char *id, const cj_jv *jv,
                  const char *data, size_t dlen) {
	cj__key_data(&tx->kbuf, type, id);
	cj__jv_encode(&tx->vbuf, jv, data, dlen);
	return cj__put(tx, &tx->kbuf, &tx->vbuf);
}

int cj__job_enqueue(cj_tx *tx, const char *type, const char *id, int64_t sched,
                    const cj_jv *old, const char *data, size_t dlen) {
	cj_jv jv;
	memset(&jv, 0, sizeof jv);
	jv.sched = sched;
	if (old) {
		jv.data_enc = old->data_enc;
		jv.data_enclen = old->data_enclen;
	}
	uint8_t vs[CJ_VS_LEN];
	cj__tx_vs(tx, vs);
	int rc = cj__job_write(tx, type, id, &jv, data, dlen);
	if (rc) return rc;
	cj_buf empty = CJ_BUF_INIT;
	cj__key_pending(&tx->kbuf, type, sched, id);
	if ((rc = cj__put(tx, &tx->kbuf, &empty))) return rc;
	if ((rc = cj__touch_pending(tx, type, vs))) return rc;
	return cj__touch_activity(tx, type, vs);
}

int cj__job_unindex(cj_tx *tx, const char *type, const char *id, const cj_jv *jv) {
	if (jv->has_lock && jv->has_seq) {
		cj__key_activity(&tx->kbuf, type, jv->seq);
	} else {
		cj__key_pending(&tx->kbuf, type, jv->sched, id);
	}
	return cj__del_blind(tx, &tx->kbuf); /* finished jobs have neither */
}

int cj__job_state(cj_tx *tx, const char *type, const char *id, const cj_jv *jv,
                  cj_state *state) {
	if (jv->has_lock) {
		*state = CJ_RUNNING;
		return CJ_OK;
	}
	const uint8_t *v;
	size_t vl;
	cj__key_pending(&tx->kbuf, type, jv->sched, id);
	int rc = cj__get(tx, &tx->kbuf, &v, &vl);
	if (rc == CJ_OK) *state = CJ_PENDING;
	else if (rc == CJ_NOT_FOUND) *state = CJ_FINISHED;
	else return rc;
	return CJ_OK;
}

struct add_arg {
	const char *type, *id, *data;
	size_t dlen;
	int64_t sched;
};

static int add_fn(cj_tx *tx, void *arg) {
	struct add_arg *a = arg;
	int64_t timeout;
	int rc = cj__type_timeout_tx(tx, a->type, &timeout);
	if (rc) return rc;
	cj_buf copy = CJ_BUF_INIT;
	cj_jv jv;
	cj_state state;
	rc = cj__job_read(tx, a->type, a->id, &copy, &jv);
	if (rc == CJ_NOT_FOUND) {
		rc = cj__job_enqueue(tx, a->type, a->id, a->sched, NULL, a->data, a->dlen);
		goto out;
	}
	if (rc || (rc = cj__job_state(tx, a->type, a->id, &jv, &state))) goto out;
	switch (state) {
	case CJ_RUNNING: {
		/* flag it; its processor's finish re-enqueues it */
		uint8_t vs[CJ_VS_LEN];
		cj__tx_vs(tx, vs);
		jv.resubmit = 1;
		jv.sched = a->sched;
		if (!(rc = cj__job_write(tx, a->type, a->id, &jv, NULL, 0)))
			rc = cj__touch_activity(tx, a->type, vs);
		break;
	}
	case CJ_PENDING:
		if (jv.sched == a->sched && cj__tup_eq(&jv.data_item, a->data, a->dlen)) break;
		if (!(rc = cj__job_unindex(tx, a->type, a->id, &jv)))
			rc = cj__job_enqueue(tx, a->type, a->id, a->sched, NULL, a->data, a->dlen);
		break;
	default:
		rc = cj__job_enqueue(tx, a->type, a->id, a->sched, NULL, a->data, a->dlen);
		break;
	}
out:
	cj__buf_free(&copy);
	return rc;
}

int cj_add(cj_db *db, cj_tx *tx, const char *type, const char *id, const char *data,
           int64_t sched_time) {
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	struct add_arg a = {type, id, data, 0, sched_time};
	int rc;
	if ((rc = cj__check_type(type)) || (rc = cj__check_id(id)) ||
	    (rc = cj__check_data(db, &a.data, &a.dlen, 1)))
		return rc;
	if (sched_time < 0)
		return cj__fail(CJ_INVALID, "negative scheduled time %lld", (long long)sched_time);
	return cj__run(db, tx, 1, add_fn, &a);
}

struct job_arg {
	const char *type, *id;
};

static int remove_fn(cj_tx *tx, void *arg) {
	struct job_arg *a = arg;
	cj_buf copy = CJ_BUF_INIT;
	cj_jv jv;
	uint8_t vs[CJ_VS_LEN];
	int rc = cj__job_read(tx, a->type, a->id, &copy, &jv);
	if (rc == CJ_NOT_FOUND) rc = cj__fail(CJ_NOT_FOUND, "no such job");
	if (rc || (rc = cj__job_unindex(tx, a->type, a->id, &jv))) goto out;
	cj__key_data(&tx->kbuf, a->type, a->id);
	if ((rc = cj__del(tx, &tx->kbuf))) goto out;
	cj__tx_vs(tx, vs);
	rc = cj__touch_activity(tx, a->type, vs);
out:
	cj__buf_free(&copy);
	return rc;
}

int cj_remove(cj_db *db, cj_tx *tx, const char *type, const char *id) {
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	int rc;
	if ((rc = cj__check_type(type)) || (rc = cj__check_id(id))) return rc;
	struct job_arg a = {type, id};
	return cj__run(db, tx, 1, remove_fn, &a);
}
