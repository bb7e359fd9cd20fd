/* Retry policies: a type's (in the store, like its timeout) and a job's
 * own, and the backoff they give. */
#include <string.h>

#include "cj_int.h"

struct policy_read {
	int found;
	cj_retry_policy p;
};

static int policy_value(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                        void *arg) {
	(void)k, (void)kl;
	struct policy_read *r = arg;
	int rc = cj__policy_decode(v, vl, &r->p);
	if (rc) return rc;
	r->found = 1;
	return 1;
}

/* The type's policy: 1, 0 if none, or a code. Read through a scan of the
 * one key, which holds nothing (as cj__type_timeout_tx): every failed
 * attempt of the type reads it. */
static int type_policy_tx(cj_tx *tx, const char *type, cj_retry_policy *p) {
	struct policy_read r = {0, {0, 0, 0, 0, 0}};
	cj_buf k = CJ_BUF_INIT;
	cj__key_policy(&k, type);
	int rc = cj__scan_key(tx, &k, policy_value, &r);
	cj__buf_free(&k);
	if (rc < 0) return rc;
	if (r.found) *p = r.p;
	return r.found;
}

int cj__policy_for(cj_tx *tx, const char *type, const cj_jv *jv, cj_retry_policy *p) {
	if (jv->has_policy) {
		*p = jv->policy;
		return 1;
	}
	return type_policy_tx(tx, type, p);
}

static int check_policy(const cj_retry_policy *p) {
	if (!p) return cj__fail(CJ_INVALID, "policy is NULL");
	return cj__policy_check(p);
}

struct type_arg {
	const char *type;
	const cj_retry_policy *set; /* NULL: clear */
	cj_retry_policy got;
};

static int set_fn(cj_tx *tx, void *arg) {
	struct type_arg *a = arg;
	cj_buf k = CJ_BUF_INIT, v = CJ_BUF_INIT;
	cj__key_policy(&k, a->type);
	cj__policy_encode(&v, a->set);
	int rc = cj__put(tx, &k, &v);
	cj__buf_free(&k);
	cj__buf_free(&v);
	return rc;
}

int cj_set_type_policy(cj_db *db, const char *type, const cj_retry_policy *policy) {
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	int rc;
	if ((rc = cj__check_type(type)) || (rc = check_policy(policy))) return rc;
	struct type_arg a = {type, policy, {0, 0, 0, 0, 0}};
	return cj__run(db, NULL, 1, set_fn, &a);
}

static int get_fn(cj_tx *tx, void *arg) {
	struct type_arg *a = arg;
	int rc = type_policy_tx(tx, a->type, &a->got);
	if (rc == 0) return cj__fail(CJ_NOT_FOUND, "type \"%.60s\" has no retry policy", a->type);
	return rc < 0 ? rc : CJ_OK;
}

int cj_get_type_policy(cj_db *db, const char *type, cj_retry_policy *policy) {
	if (!db || !policy) return cj__fail(CJ_INVALID, "NULL argument");
	int rc = cj__check_type(type);
	if (rc) return rc;
	struct type_arg a = {type, NULL, {0, 0, 0, 0, 0}};
	if ((rc = cj__run(db, NULL, 0, get_fn, &a)) == CJ_OK) *policy = a.got;
	return rc;
}

static int clear_fn(cj_tx *tx, void *arg) {
	struct type_arg *a = arg;
	cj_buf k = CJ_BUF_INIT;
	cj__key_policy(&k, a->type);
	int rc = cj__del(tx, &k);
	cj__buf_free(&k);
	if (rc == CJ_NOT_FOUND)
		return cj__fail(CJ_NOT_FOUND, "type \"%.60s\" has no retry policy", a->type);
	return rc;
}

int cj_clear_type_policy(cj_db *db, const char *type) {
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	int rc = cj__check_type(type);
	if (rc) return rc;
	struct type_arg a = {type, NULL, {0, 0, 0, 0, 0}};
	return cj__run(db, NULL, 1, clear_fn, &a);
}

struct job_arg {
	const char *type, *id;
	const cj_retry_policy *set; /* NULL: clear (set) */
	int write;
	cj_retry_policy got;
};

static int job_fn(cj_tx *tx, void *arg) {
	struct job_arg *a = arg;
	cj_buf copy = CJ_BUF_INIT;
	cj_jv jv;
	int rc = cj__job_load(tx, a->type, a->id, &copy, &jv, NULL);
	if (rc) goto out;
	if (!a->write) {
		if (!jv.has_policy)
			rc = cj__fail(CJ_NOT_FOUND, "job %.60s has no retry policy of its own", a->id);
		a->got = jv.policy;
		goto out;
	}
	jv.has_policy = a->set != NULL;
	if (a->set) jv.policy = *a->set;
	rc = cj__job_write(tx, a->type, a->id, &jv, &jv, NULL, 0); /* no change of state */
out:
	cj__buf_free(&copy);
	return rc;
}

static int job_policy(cj_db *db, cj_tx *tx, struct job_arg *a) {
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	int rc;
	if ((rc = cj__check_type(a->type)) || (rc = cj__check_id(a->id))) return rc;
	if (a->set && (rc = cj__policy_check(a->set))) return rc;
	return cj__run(db, tx, a->write, job_fn, a);
}

int cj_set_job_policy(cj_db *db, cj_tx *tx, const char *type, const char *id,
                      const cj_retry_policy *policy) {
	struct job_arg a = {type, id, policy, 1, {0, 0, 0, 0, 0}};
	return job_policy(db, tx, &a);
}

int cj_get_job_policy(cj_db *db, cj_tx *tx, const char *type, const char *id,
                      cj_retry_policy *policy) {
	if (!policy) return cj__fail(CJ_INVALID, "policy is NULL");
	struct job_arg a = {type, id, NULL, 0, {0, 0, 0, 0, 0}};
	int rc = job_policy(db, tx, &a);
	if (rc == CJ_OK) *policy = a.got;
	return rc;
}

int64_t cj__policy_delay(const cj_retry_policy *p, int64_t attempt) {
	int64_t d = p->backoff_min;
	for (int64_t i = 1; i < attempt && d > 0 && d < p->backoff_max && p->multiplier > 1; i++)
		d = cj__mul_sat(d, p->multiplier);
	if (d > p->backoff_max) d = p->backoff_max;
	int64_t span = p->jitter == CJ_JITTER_FULL ? d : p->jitter == CJ_JITTER_EQUAL ? d / 2 : 0;
	if (span == 0) return d;
	uint64_t r;
	if (cj__random(&r, sizeof r) != CJ_OK) r = 0; /* no randomness: the longest */
	return d - (int64_t)(r % ((uint64_t)span + 1));
}
