/* Reading jobs: state, data, everything, and listing. */
#include <string.h>

#include "cj_int.h"

void cj_job_info_clear(cj_job_info *info) {
	if (!info) return;
	cj_free(info->type);
	cj_free(info->id);
	cj_free(info->data);
	cj_free(info->errors);
	memset(info, 0, sizeof *info);
}

struct get_arg {
	const char *type, *id;
	cj_state state;
	int want_data;
	char *data;
	int64_t sched;
	int resubmit;
	cj_job_info *info; /* cj_get_job: the rest of the record */
};

/* The fields of format 2 (errors replaced: a retry may fill it again). */
static int info_fill(cj_job_info *info, const cj_jv *jv) {
	info->attempt = jv->attempt;
	info->fence = (uint64_t)jv->fence;
	info->added_ms = jv->added_ms;
	info->finished_ms = jv->finished_ms;
	info->has_policy = jv->has_policy;
	cj_free(info->errors);
	return cj__jv_errors(jv, &info->errors);
}

static int get_fn(cj_tx *tx, void *arg) {
	struct get_arg *a = arg;
	cj_buf copy = CJ_BUF_INIT;
	cj_jv jv;
	int rc = cj__job_load(tx, a->type, a->id, &copy, &jv, &a->state);
	if (rc) goto out;
	a->sched = jv.sched;
	a->resubmit = jv.resubmit;
	cj_free(a->data);
	a->data = NULL;
	if (a->want_data) rc = cj__jv_data(&jv, &a->data);
	if (rc == CJ_OK && a->info) rc = info_fill(a->info, &jv);
out:
	cj__buf_free(&copy);
	return rc;
}

static int get_job(cj_db *db, cj_tx *tx, struct get_arg *a) {
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	int rc;
	if ((rc = cj__check_type(a->type)) || (rc = cj__check_id(a->id))) return rc;
	rc = cj__run(db, tx, 0, get_fn, a);
	if (rc) {
		cj_free(a->data);
		a->data = NULL;
	}
	return rc;
}

int cj_get_job_state(cj_db *db, cj_tx *tx, const char *type, const char *id,
                     cj_state *state) {
	if (!state) return cj__fail(CJ_INVALID, "state is NULL");
	struct get_arg a = {type, id, 0, 0, NULL, 0, 0, NULL};
	int rc = get_job(db, tx, &a);
	if (rc == CJ_OK) *state = a.state;
	return rc;
}

int cj_get_job_data(cj_db *db, cj_tx *tx, const char *type, const char *id,
                    char **data) {
	if (!data) return cj__fail(CJ_INVALID, "data is NULL");
	*data = NULL;
	struct get_arg a = {type, id, 0, 1, NULL, 0, 0, NULL};
	int rc = get_job(db, tx, &a);
	if (rc == CJ_OK) *data = a.data;
	return rc;
}

int cj_get_job(cj_db *db, cj_tx *tx, const char *type, const char *id,
               cj_job_info *info) {
	if (!info) return cj__fail(CJ_INVALID, "info is NULL");
	memset(info, 0, sizeof *info);
	struct get_arg a = {type, id, 0, 1, NULL, 0, 0, info};
	int rc = get_job(db, tx, &a);
	if (rc) {
		cj_job_info_clear(info);
		return rc;
	}
	info->type = cj__strdup(type);
	info->id = cj__strdup(id);
	info->data = a.data;
	info->state = a.state;
	info->sched_time = a.sched;
	info->resubmit = a.resubmit;
	if (!info->type || !info->id) {
		cj_job_info_clear(info);
		return cj__fail(CJ_NOMEM, "out of memory");
	}
	return CJ_OK;
}

struct list_arg {
	cj_tx *tx;
	const char *type;
	const char *after_type, *after_id; /* NULL: from the start */
	int (*cb)(const cj_job_info *, void *);
	void *cb_arg;
};

static int list_one(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *arg) {
	struct list_arg *a = arg;
	cj_job_info info;
	cj_jv jv;
	memset(&info, 0, sizeof info);
	int rc = cj__jv_decode(v, vl, &jv);
	if (rc || (rc = cj__key_data_parse(k, kl, &info.type, &info.id))) return rc;
	if ((rc = cj__jv_data(&jv, &info.data))) goto out;
	info.sched_time = jv.sched;
	info.resubmit = jv.resubmit;
	if ((rc = info_fill(&info, &jv))) goto out;
	if ((rc = cj__job_state(a->tx, info.type, info.id, &jv, &info.state))) goto out;
	rc = a->cb(&info, a->cb_arg);
out:
	cj_job_info_clear(&info);
	return rc;
}

/* Compares two keys as the engines order them (bytes, shorter first). */
static int key_cmp(const cj_buf *a, const cj_buf *b) {
	size_t n = a->len < b->len ? a->len : b->len;
	int c = n ? memcmp(a->p, b->p, n) : 0;
	return c ? c : (a->len > b->len) - (a->len < b->len);
}

static int list_fn(cj_tx *tx, void *arg) {
	struct list_arg *a = arg;
	cj_buf lo = CJ_BUF_INIT, hi = CJ_BUF_INIT;
	cj__key_data_prefix(&lo, a->type);
	cj__buf_add(&hi, lo.p, lo.len);
	cj__tup_range_end(&hi);
	if (a->after_type) {
		/* just above the key of (after_type, after_id), if that is later */
		cj_buf after = CJ_BUF_INIT;
		cj__key_data(&after, a->after_type, a->after_id);
		cj__buf_add(&after, "", 1);
		if (key_cmp(&after, &lo) > 0) {
			cj__buf_reset(&lo);
			cj__buf_add(&lo, after.p, after.len);
		}
		cj__buf_free(&after);
	}
	a->tx = tx;
	/* (a bound that ran out of memory makes the scan say CJ_NOMEM) */
	int rc = lo.oom || hi.oom || key_cmp(&lo, &hi) < 0 ? cj__scan(tx, &lo, &hi, list_one, a)
	                                                   : CJ_OK;
	cj__buf_free(&lo);
	cj__buf_free(&hi);
	return rc;
}

int cj_list_jobs(cj_db *db, cj_tx *tx, const char *type,
                 int (*cb)(const cj_job_info *info, void *arg), void *arg) {
	return cj_list_jobs_from(db, tx, type, NULL, NULL, cb, arg);
}

int cj_list_jobs_from(cj_db *db, cj_tx *tx, const char *type, const char *after_type,
                      const char *after_id, int (*cb)(const cj_job_info *info, void *arg),
                      void *arg) {
	if (!db || !cb) return cj__fail(CJ_INVALID, "NULL argument");
	int rc;
	if (type && (rc = cj__check_type(type))) return rc;
	if (!after_type != !after_id)
		return cj__fail(CJ_INVALID, "after_type and after_id go together");
	if (after_type && ((rc = cj__check_type(after_type)) || (rc = cj__check_id(after_id))))
		return rc;
	struct list_arg a = {NULL, type, after_type, after_id, cb, arg};
	return cj__run(db, tx, 0, list_fn, &a);
}
