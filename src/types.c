/* Job types and their activity timeouts. */
#include <string.h>

#include "cj_int.h"

struct timeout_read {
	int found;
	int64_t seconds;
};

static int timeout_value(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                         void *arg) {
	(void)k, (void)kl;
	struct timeout_read *t = arg;
	int rc = cj__val_int(v, vl, &t->seconds);
	if (rc) return rc;
	t->found = 1;
	return 1;
}

/* Read through a scan of the one key, which holds nothing in a write
 * transaction (engine.h): every cj_add of a type reads its timeout, and
 * holding the key would make them take turns. Acting on a value that a
 * concurrent set or clear replaces is the same as having committed first. */
int cj__type_timeout_tx(cj_tx *tx, const char *type, int64_t *seconds) {
	struct timeout_read t = {0, 0};
	cj__key_timeout(&tx->kbuf, type);
	int rc = cj__scan_key(tx, &tx->kbuf, timeout_value, &t);
	if (rc < 0) return rc;
	if (!t.found)
		return cj__fail(CJ_NO_TYPE_TIMEOUT, "type \"%.60s\" has no timeout", type);
	*seconds = t.seconds;
	return CJ_OK;
}

struct timeout_arg {
	const char *type;
	int64_t seconds;
};

static int set_fn(cj_tx *tx, void *arg) {
	struct timeout_arg *a = arg;
	int64_t old;
	int rc = cj__type_timeout_tx(tx, a->type, &old);
	if (rc == CJ_OK && old == a->seconds) return CJ_OK;
	if (rc != CJ_OK && rc != CJ_NO_TYPE_TIMEOUT) return rc;
	cj_buf k = CJ_BUF_INIT, v = CJ_BUF_INIT;
	cj__key_timeout(&k, a->type);
	cj__tup_int(&v, a->seconds);
	rc = cj__put(tx, &k, &v);
	cj__buf_free(&k);
	cj__buf_free(&v);
	return rc ? rc : cj__notify(tx, CJ_CHAN_TYPES);
}

int cj_set_type_timeout(cj_db *db, const char *type, int64_t seconds) {
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	int rc = cj__check_type(type);
	if (rc) return rc;
	if (seconds < 1 || seconds > CJ_MAX_TYPE_TIMEOUT)
		return cj__fail(CJ_INVALID, "timeout of %lld s is outside 1..%lld",
		                (long long)seconds, (long long)CJ_MAX_TYPE_TIMEOUT);
	struct timeout_arg a = {type, seconds};
	return cj__run(db, NULL, 1, set_fn, &a);
}

static int get_fn(cj_tx *tx, void *arg) {
	struct timeout_arg *a = arg;
	int rc = cj__type_timeout_tx(tx, a->type, &a->seconds);
	return rc == CJ_NO_TYPE_TIMEOUT ? CJ_NOT_FOUND : rc;
}

int cj_get_type_timeout(cj_db *db, const char *type, int64_t *seconds) {
	if (!db || !seconds) return cj__fail(CJ_INVALID, "NULL argument");
	int rc = cj__check_type(type);
	if (rc) return rc;
	struct timeout_arg a = {type, 0};
	rc = cj__run(db, NULL, 0, get_fn, &a);
	if (rc == CJ_OK) *seconds = a.seconds;
	return rc;
}

static int clear_fn(cj_tx *tx, void *arg) {
	cj_buf k = CJ_BUF_INIT;
	cj__key_timeout(&k, arg);
	int rc = cj__del(tx, &k);
	cj__buf_free(&k);
	if (rc == CJ_NOT_FOUND)
		return cj__fail(CJ_NOT_FOUND, "type \"%.60s\" has no timeout", (char *)arg);
	return rc ? rc : cj__notify(tx, CJ_CHAN_TYPES);
}

int cj_clear_type_timeout(cj_db *db, const char *type) {
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	int rc = cj__check_type(type);
	if (rc) return rc;
	return cj__run(db, NULL, 1, clear_fn, (void *)type);
}

struct types_arg {
	char **v;
	size_t n, cap;
};

static int collect_type(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                        void *arg) {
	(void)v, (void)vl;
	struct types_arg *a = arg;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 8;
		char **nv = cj__realloc(a->v, cap * sizeof *nv);
		if (!nv) return cj__fail(CJ_NOMEM, "out of memory");
		a->v = nv;
		a->cap = cap;
	}
	int rc = cj__key_timeout_parse(k, kl, &a->v[a->n]);
	if (rc == CJ_OK) a->n++;
	return rc;
}

static void types_free(struct types_arg *a) {
	for (size_t i = 0; i < a->n; i++) cj_free(a->v[i]);
	cj_free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

static int types_fn(cj_tx *tx, void *arg) {
	types_free(arg); /* a retry starts over */
	cj_buf k = CJ_BUF_INIT;
	cj__key_timeout_prefix(&k);
	int rc = cj__scan_prefix(tx, &k, collect_type, arg);
	cj__buf_free(&k);
	return rc;
}

int cj_get_types(cj_db *db, cj_tx *tx, char ***types, size_t *count) {
	if (types) *types = NULL;
	if (count) *count = 0;
	if (!db || !types || !count) return cj__fail(CJ_INVALID, "NULL argument");
	struct types_arg a = {NULL, 0, 0};
	int rc = cj__run(db, tx, 0, types_fn, &a);
	if (rc) {
		types_free(&a);
		return rc;
	}
	*types = a.v;
	*count = a.n;
	return CJ_OK;
}
