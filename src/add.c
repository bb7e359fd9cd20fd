/* Creating and removing jobs. */
#include <string.h>

#include "cj_int.h"

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
	rc = cj__job_load(tx, a->type, a->id, &copy, &jv, &state);
	if (rc == CJ_NOT_FOUND) {
		rc = cj__job_enqueue(tx, a->type, a->id, a->sched, NULL, a->data, a->dlen, 1);
		goto out;
	}
	if (rc) goto out;
	switch (state) {
	case CJ_RUNNING: {
		/* flag it; its processor's finish re-enqueues it */
		uint8_t vs[CJ_VS_LEN];
		jv.resubmit = 1;
		jv.sched = a->sched;
		if (!(rc = cj__tx_vs(tx, vs)) &&
		    !(rc = cj__job_write(tx, a->type, a->id, &jv, NULL, 0)))
			rc = cj__touch_activity(tx, a->type, vs);
		break;
	}
	case CJ_PENDING:
		if (jv.sched == a->sched && cj__tup_eq(&jv.data_item, a->data, a->dlen)) break;
		if (!(rc = cj__job_unindex(tx, a->type, a->id, &jv)))
			rc = cj__job_enqueue(tx, a->type, a->id, a->sched, &jv, a->data, a->dlen, 1);
		break;
	default: /* finished or dead: new work */
		rc = cj__job_enqueue(tx, a->type, a->id, a->sched, &jv, a->data, a->dlen, 1);
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
	    (rc = cj__check_data(db, &a.data, &a.dlen, 1)) ||
	    (rc = cj__check_sched(sched_time, 0)))
		return rc;
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
	int rc = cj__job_load(tx, a->type, a->id, &copy, &jv, NULL);
	if (rc || (rc = cj__job_unindex(tx, a->type, a->id, &jv))) goto out;
	cj__key_data(&tx->kbuf, a->type, a->id);
	if ((rc = cj__del(tx, &tx->kbuf)) || (rc = cj__notify_job(tx, a->type, a->id)) ||
	    (rc = cj__tx_vs(tx, vs)))
		goto out;
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
