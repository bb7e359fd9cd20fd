/* Creating and removing jobs. */
#include <string.h>

#include "cj_int.h"

struct add_arg {
	const char *type, *id, *data;
	size_t dlen;
	int64_t sched;
	int unique; /* cj_unique */
};

/* CJ_EXISTS when a->unique refuses a job in state; else CJ_OK. */
static int unique_refuses(const struct add_arg *a, cj_state state) {
	if (a->unique == CJ_UNIQUE_ID ||
	    (a->unique == CJ_UNIQUE_ACTIVE && (state == CJ_PENDING || state == CJ_RUNNING)))
		return cj__fail(CJ_EXISTS, "job %.60s of type \"%.60s\" is %s", a->id, a->type,
		                cj_state_name(state));
	return CJ_OK;
}

static int add_fn(cj_tx *tx, void *arg) {
	struct add_arg *a = arg;
	int64_t timeout;
	/* the job is read next: with the type's timeout, where the engine can */
	cj__key_data(&tx->kbuf, a->type, a->id);
	int rc = cj__prefetch(tx, &tx->kbuf);
	if (rc || (rc = cj__type_timeout_tx(tx, a->type, &timeout))) return rc;
	cj_buf copy = CJ_BUF_INIT;
	cj_jv jv;
	cj_state state;
	rc = cj__job_load(tx, a->type, a->id, &copy, &jv, &state);
	if (rc == CJ_NOT_FOUND) {
		rc = cj__job_enqueue(tx, a->type, a->id, a->sched, NULL, a->data, a->dlen, 1);
		goto out;
	}
	if (rc || (rc = unique_refuses(a, state))) goto out;
	switch (state) {
	case CJ_RUNNING: {
		/* flag it; its processor's finish re-enqueues it */
		uint8_t vs[CJ_VS_LEN];
		jv.resubmit = 1;
		jv.sched = a->sched;
		if (!(rc = cj__tx_vs(tx, vs)) &&
		    !(rc = cj__job_write(tx, a->type, a->id, &jv, &jv, NULL, 0)))
			rc = cj__touch_activity(tx, a->type, vs);
		break;
	}
	case CJ_PENDING:
		if (jv.sched == a->sched && cj__tup_eq(&jv.data_item, a->data, a->dlen)) break;
		/* fall through */
	default: /* finished or dead: new work */
		if (!(rc = cj__job_unindex(tx, a->type, a->id, &jv)))
			rc = cj__job_enqueue(tx, a->type, a->id, a->sched, &jv, a->data, a->dlen, 1);
		break;
	}
out:
	cj__buf_free(&copy);
	return rc;
}

int cj_add_ex(cj_db *db, cj_tx *tx, const char *type, const char *id, const char *data,
              const cj_add_opts *opts) {
	cj_add_opts defaults = CJ_ADD_OPTS_INIT;
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	if (!opts) opts = &defaults;
	struct add_arg a = {type, id, data, 0, opts->sched_time, opts->unique};
	int rc;
	if ((rc = cj__check_type(type)) || (rc = cj__check_id(id)) ||
	    (rc = cj__check_data(db, &a.data, &a.dlen, 1)) ||
	    (rc = cj__check_sched(opts->sched_time, 0)))
		return rc;
	if (opts->unique < CJ_UNIQUE_NONE || opts->unique > CJ_UNIQUE_ACTIVE)
		return cj__fail(CJ_INVALID, "unknown unique policy %d", opts->unique);
	if (!tx) {
		cj_op_call c = {CJ_OP_ADD, type, id, a.data, a.dlen, a.sched, a.unique, {0}, 0, NULL};
		if (cj__combine_run(db, &c, &rc)) return rc;
	}
	return cj__run(db, tx, 1, add_fn, &a);
}

int cj__add_op(cj_tx *tx, cj_op_call *c) {
	struct add_arg a = {c->type, c->id, c->data, c->dlen, c->sched, c->unique};
	return add_fn(tx, &a);
}

int cj_add(cj_db *db, cj_tx *tx, const char *type, const char *id, const char *data,
           int64_t sched_time) {
	cj_add_opts opts = CJ_ADD_OPTS_INIT;
	opts.sched_time = sched_time;
	return cj_add_ex(db, tx, type, id, data, &opts);
}

static const char *const unique_names[] = {"none", "id", "active"};

int cj_unique_parse(const char *name, int *unique) {
	if (!name || !unique) return cj__fail(CJ_INVALID, "NULL argument");
	for (int i = 0; i < (int)(sizeof unique_names / sizeof unique_names[0]); i++)
		if (strcmp(name, unique_names[i]) == 0) {
			*unique = i;
			return CJ_OK;
		}
	return cj__fail(CJ_INVALID, "unknown unique policy \"%.60s\" (none, id or active)", name);
}

struct job_arg {
	const char *type, *id;
};

static int remove_fn(cj_tx *tx, void *arg) {
	struct job_arg *a = arg;
	cj_buf copy = CJ_BUF_INIT;
	cj_jv jv;
	int rc = cj__job_load(tx, a->type, a->id, &copy, &jv, NULL);
	if (rc == CJ_OK) rc = cj__job_delete(tx, a->type, a->id, &jv);
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
