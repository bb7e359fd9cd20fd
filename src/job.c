/* The job record: a job's data value and its index entries (pending,
 * activity), the steps every call that changes a job shares. */
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

int cj__job_load(cj_tx *tx, const char *type, const char *id, cj_buf *copy,
                 cj_jv *jv, cj_state *state) {
	int rc = cj__job_read(tx, type, id, copy, jv);
	if (rc == CJ_NOT_FOUND) return cj__fail(CJ_NOT_FOUND, "no such job");
	if (rc || !state) return rc;
	return cj__job_state(tx, type, id, jv, state);
}

int cj__job_write(cj_tx *tx, const char *type, const char *id, const cj_jv *old,
                  const cj_jv *jv, const char *data, size_t dlen) {
	cj__key_data(&tx->kbuf, type, id);
	cj__jv_encode(&tx->vbuf, jv, data, dlen);
	int rc = cj__put(tx, &tx->kbuf, &tx->vbuf);
	if (rc || (rc = cj__count_move(tx, type, id, old, jv))) return rc;
	return cj__notify_job(tx, type, id);
}

int cj__job_enqueue(cj_tx *tx, const char *type, const char *id, int64_t sched,
                    const cj_jv *old, const char *data, size_t dlen, int new_work) {
	cj_jv jv;
	memset(&jv, 0, sizeof jv);
	if (old) {
		jv = *old;
		jv.has_seq = jv.has_lock = jv.resubmit = jv.dead = 0;
		if (new_work) {
			jv.attempt = 0;
			jv.nerr = 0;
			jv.new_err = NULL;
		}
	}
	jv.sched = sched;
	jv.added_ms = cj__epoch_ms();
	jv.finished_ms = 0;
	uint8_t vs[CJ_VS_LEN];
	int rc;
	if ((rc = cj__watch_vs(tx, vs)) || (rc = cj__job_write(tx, type, id, old, &jv, data, dlen)))
		return rc;
	cj_buf empty = CJ_BUF_INIT;
	cj__key_pending(&tx->kbuf, type, sched, id);
	if ((rc = cj__put(tx, &tx->kbuf, &empty))) return rc;
	if ((rc = cj__touch_pending(tx, type, vs))) return rc;
	return cj__touch_activity(tx, type, vs);
}

int cj__job_activity_put(cj_tx *tx, const char *type, const char *id,
                         const uint8_t vs[CJ_VS_LEN]) {
	cj__key_activity(&tx->kbuf, type, vs);
	cj__val_id(&tx->vbuf, id);
	return cj__put(tx, &tx->kbuf, &tx->vbuf);
}

int cj__job_unindex(cj_tx *tx, const char *type, const char *id, const cj_jv *jv) {
	/* finished and dead jobs have their finished entry only */
	if (!jv->has_lock && jv->finished_ms != 0) return cj__finished_del(tx, type, id, jv);
	if (jv->dead) return CJ_OK;
	if (jv->has_lock && jv->has_seq) {
		int rc = cj__run_ended(tx, type); /* a running job: its slot frees */
		if (rc) return rc;
		cj__key_activity(&tx->kbuf, type, jv->seq);
	} else {
		cj__key_pending(&tx->kbuf, type, jv->sched, id);
	}
	return cj__del_blind(tx, &tx->kbuf); /* finished ones of format 1 have none */
}

int64_t cj__job_end_ms(void) {
	int64_t ms = cj__epoch_ms();
	return ms > 0 ? ms : 1;
}

int cj__job_delete(cj_tx *tx, const char *type, const char *id, const cj_jv *jv) {
	uint8_t vs[CJ_VS_LEN];
	int rc;
	if ((rc = cj__job_unindex(tx, type, id, jv))) return rc;
	cj__key_data(&tx->kbuf, type, id);
	if ((rc = cj__del(tx, &tx->kbuf)) || (rc = cj__count_move(tx, type, id, jv, NULL)) ||
	    (rc = cj__notify_job(tx, type, id)) ||
	    (rc = cj__watch_vs(tx, vs)))
		return rc;
	return cj__touch_activity(tx, type, vs);
}

int cj__job_state(cj_tx *tx, const char *type, const char *id, const cj_jv *jv,
                  cj_state *state) {
	if (jv->has_lock || jv->dead) {
		*state = jv->has_lock ? CJ_RUNNING : CJ_DEAD;
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
