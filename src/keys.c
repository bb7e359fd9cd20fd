/* The RFC 007 key layout and value encodings (see cj_int.h): building and
 * parsing both live here, so no other file knows where a key keeps what. */
#include <stdio.h>
#include <string.h>

#include "cj_int.h"

void cj__key_root(cj_buf *b) {
	cj__buf_reset(b);
	cj__tup_str(b, "couch_jobs", 10);
}

static void str(cj_buf *b, const char *s) { cj__tup_str(b, s, strlen(s)); }

static void prefix(cj_buf *b, const char *sub) {
	cj__key_root(b);
	str(b, sub);
}

void cj__key_data(cj_buf *b, const char *type, const char *id) {
	prefix(b, "data");
	str(b, type);
	str(b, id);
}

void cj__key_data_prefix(cj_buf *b, const char *type) {
	prefix(b, "data");
	if (type) str(b, type);
}

void cj__key_pending(cj_buf *b, const char *type, int64_t sched, const char *id) {
	prefix(b, "pending");
	str(b, type);
	cj__tup_int(b, sched);
	str(b, id);
}

void cj__key_pending_prefix(cj_buf *b, const char *type) {
	prefix(b, "pending");
	str(b, type);
}

void cj__key_pending_at(cj_buf *b, const char *type, int64_t sched) {
	cj__key_pending_prefix(b, type);
	cj__tup_int(b, sched);
}

void cj__key_watch_pending(cj_buf *b, const char *type) {
	prefix(b, "watches_pending");
	str(b, type);
}

void cj__key_watch_activity(cj_buf *b, const char *type) {
	prefix(b, "watches_activity");
	str(b, type);
}

void cj__key_timeout(cj_buf *b, const char *type) {
	prefix(b, "activity_timeout");
	str(b, type);
}

void cj__key_timeout_prefix(cj_buf *b) { prefix(b, "activity_timeout"); }

void cj__key_activity(cj_buf *b, const char *type, const uint8_t vs[CJ_VS_LEN]) {
	prefix(b, "activity");
	str(b, type);
	cj__tup_vs(b, vs);
}

void cj__key_activity_prefix(cj_buf *b, const char *type) {
	prefix(b, "activity");
	str(b, type);
}

void cj__key_meta(cj_buf *b, const char *name) {
	prefix(b, "meta");
	str(b, name);
}

void cj__key_policy(cj_buf *b, const char *type) {
	prefix(b, "retry_policy");
	str(b, type);
}

void cj__policy_encode(cj_buf *b, const cj_retry_policy *p) {
	cj__tup_int(b, p->max_attempts);
	cj__tup_int(b, p->backoff_min);
	cj__tup_int(b, p->backoff_max);
	cj__tup_int(b, p->multiplier);
	cj__tup_int(b, p->jitter);
}

int cj__policy_check(const cj_retry_policy *p) {
	if (p->max_attempts < 0 || p->max_attempts > CJ_MAX_ATTEMPTS)
		return cj__fail(CJ_INVALID, "max_attempts %lld is outside 0..%d",
		                (long long)p->max_attempts, CJ_MAX_ATTEMPTS);
	if (p->backoff_min < 0 || p->backoff_min > CJ_MAX_TYPE_TIMEOUT)
		return cj__fail(CJ_INVALID, "backoff_min %lld s is outside 0..%lld",
		                (long long)p->backoff_min, (long long)CJ_MAX_TYPE_TIMEOUT);
	if (p->backoff_max < p->backoff_min || p->backoff_max > CJ_MAX_TYPE_TIMEOUT)
		return cj__fail(CJ_INVALID, "backoff_max %lld s is outside backoff_min..%lld",
		                (long long)p->backoff_max, (long long)CJ_MAX_TYPE_TIMEOUT);
	if (p->multiplier < 1 || p->multiplier > CJ_MAX_MULTIPLIER)
		return cj__fail(CJ_INVALID, "multiplier %lld is outside 1..%d",
		                (long long)p->multiplier, CJ_MAX_MULTIPLIER);
	if (p->jitter != CJ_JITTER_NONE && p->jitter != CJ_JITTER_FULL &&
	    p->jitter != CJ_JITTER_EQUAL)
		return cj__fail(CJ_INVALID, "unknown jitter %d", p->jitter);
	return CJ_OK;
}

/* Decodes a value of exactly n ints into out: 0, or -1. */
static int ints_decode(const uint8_t *v, size_t vl, int64_t *out, int n) {
	cj_tup_reader r;
	cj_tup_item it;
	cj__tup_reader_init(&r, v, vl);
	for (int i = 0; i < n; i++) {
		if (cj__tup_next(&r, &it) != 1 || it.kind != CJ_TUP_INT) return -1;
		out[i] = it.i;
	}
	return cj__tup_next(&r, &it) == 0 ? 0 : -1;
}

int cj__policy_decode(const uint8_t *v, size_t vl, cj_retry_policy *p) {
	int64_t f[5];
	if (ints_decode(v, vl, f, 5) != 0 || f[4] < 0 || f[4] > CJ_JITTER_EQUAL) goto bad;
	p->max_attempts = f[0];
	p->backoff_min = f[1];
	p->backoff_max = f[2];
	p->multiplier = f[3];
	p->jitter = (int)f[4];
	if (cj__policy_check(p) == CJ_OK) return CJ_OK;
bad:
	return cj__fail(CJ_STORE, "corrupt retry policy");
}

/* ---- type limits ---- */

void cj__key_limits(cj_buf *b, const char *type) {
	prefix(b, "type_limits");
	str(b, type);
}

void cj__limits_encode(cj_buf *b, const cj_lim *v) {
	cj__tup_int(b, v->l.max_running);
	cj__tup_int(b, v->l.rate);
	cj__tup_int(b, v->l.rate_period_ms);
	cj__tup_int(b, v->credit);
	cj__tup_int(b, v->refill_ms);
}

int cj__limits_check(const cj_type_limits *l) {
	if (l->max_running < 0 || l->max_running > CJ_MAX_RUNNING_LIMIT)
		return cj__fail(CJ_INVALID, "max_running %lld is outside 0..%d",
		                (long long)l->max_running, CJ_MAX_RUNNING_LIMIT);
	if (l->rate < 0 || l->rate > CJ_MAX_RATE)
		return cj__fail(CJ_INVALID, "rate %lld is outside 0..%d", (long long)l->rate,
		                CJ_MAX_RATE);
	if (l->rate_period_ms < 0 || l->rate_period_ms > CJ_MAX_RATE_PERIOD_MS)
		return cj__fail(CJ_INVALID, "rate_period_ms %lld is outside 0..%lld",
		                (long long)l->rate_period_ms, (long long)CJ_MAX_RATE_PERIOD_MS);
	if ((l->rate == 0) != (l->rate_period_ms == 0))
		return cj__fail(CJ_INVALID, "rate %lld with rate_period_ms %lld: both or neither "
		                "must be 0", (long long)l->rate, (long long)l->rate_period_ms);
	return CJ_OK;
}

int cj__limits_decode(const uint8_t *v, size_t vl, cj_lim *out) {
	cj_tup_reader r;
	cj_tup_item it[5], end;
	cj__tup_reader_init(&r, v, vl);
	for (int i = 0; i < 5; i++)
		if (cj__tup_next(&r, &it[i]) != 1 || it[i].kind != CJ_TUP_INT) goto bad;
	if (cj__tup_next(&r, &end) != 0) goto bad;
	out->l.max_running = it[0].i;
	out->l.rate = it[1].i;
	out->l.rate_period_ms = it[2].i;
	out->credit = it[3].i;
	out->refill_ms = it[4].i;
	/* rate and period are bounded: their product fits */
	if (cj__limits_check(&out->l) == CJ_OK && out->credit >= 0 &&
	    out->credit <= out->l.rate * out->l.rate_period_ms && out->refill_ms >= 0)
		return CJ_OK;
bad:
	return cj__fail(CJ_STORE, "corrupt type limits");
}

/* An encoded bytes element (code, body, terminator) as it was read. */
static void add_enc(cj_buf *b, const uint8_t *enc, size_t len) { cj__buf_add(b, enc, len); }

void cj__jv_encode(cj_buf *b, const cj_jv *jv, const char *data, size_t dlen) {
	cj__buf_reset(b);
	if (jv->has_seq) cj__tup_vs(b, jv->seq); else cj__tup_null(b);
	if (jv->has_lock) cj__tup_uuid(b, jv->lock); else cj__tup_null(b);
	cj__tup_int(b, jv->sched);
	cj__tup_bool(b, jv->resubmit);
	if (data) cj__tup_bytes(b, data, dlen);
	else add_enc(b, jv->data_enc, jv->data_enclen);
	cj__tup_int(b, jv->attempt);
	cj__tup_int(b, jv->fence);
	cj__tup_bool(b, jv->dead);
	cj__tup_int(b, jv->added_ms);
	cj__tup_int(b, jv->finished_ms);
	if (jv->has_policy) {
		cj_buf pb = CJ_BUF_INIT;
		cj__policy_encode(&pb, &jv->policy);
		if (pb.oom) b->oom = 1;
		cj__tup_bytes(b, pb.p, pb.len);
		cj__buf_free(&pb);
	} else {
		cj__tup_null(b);
	}
	/* the newest CJ_MAX_ERRORS errors, the new one included */
	int first = jv->new_err && jv->nerr == CJ_MAX_ERRORS ? 1 : 0;
	for (int i = first; i < jv->nerr; i++) add_enc(b, jv->err_enc[i], jv->err_enclen[i]);
	if (jv->new_err) cj__tup_bytes(b, jv->new_err, jv->new_errlen);
}

int cj__jv_decode(const uint8_t *v, size_t vl, cj_jv *jv) {
	cj_tup_reader r;
	cj_tup_item it;
	memset(jv, 0, sizeof *jv);
	cj__tup_reader_init(&r, v, vl);
	if (cj__tup_next(&r, &it) != 1) goto bad;
	if (it.kind == CJ_TUP_VS) {
		jv->has_seq = 1;
		memcpy(jv->seq, it.raw, CJ_VS_LEN);
	} else if (it.kind != CJ_TUP_NULL) goto bad;
	if (cj__tup_next(&r, &it) != 1) goto bad;
	if (it.kind == CJ_TUP_UUID) {
		jv->has_lock = 1;
		memcpy(jv->lock, it.raw, CJ_UUID_LEN);
	} else if (it.kind != CJ_TUP_NULL) goto bad;
	if (cj__tup_next(&r, &it) != 1 || it.kind != CJ_TUP_INT) goto bad;
	jv->sched = it.i;
	if (cj__tup_next(&r, &it) != 1) goto bad;
	if (it.kind != CJ_TUP_TRUE && it.kind != CJ_TUP_FALSE) goto bad;
	jv->resubmit = it.kind == CJ_TUP_TRUE;
	jv->data_enc = r.p;
	if (cj__tup_next(&r, &jv->data_item) != 1 || jv->data_item.kind != CJ_TUP_BYTES)
		goto bad;
	jv->data_enclen = (size_t)(r.p - jv->data_enc);
	int got = cj__tup_next(&r, &it);
	if (got == 0) {
		jv->v1 = 1; /* format 1: the fields below are new */
		goto check;
	}
	if (got != 1 || it.kind != CJ_TUP_INT || it.i < 0) goto bad;
	jv->attempt = it.i;
	if (cj__tup_next(&r, &it) != 1 || it.kind != CJ_TUP_INT || it.i < 0) goto bad;
	jv->fence = it.i;
	if (cj__tup_next(&r, &it) != 1) goto bad;
	if (it.kind != CJ_TUP_TRUE && it.kind != CJ_TUP_FALSE) goto bad;
	jv->dead = it.kind == CJ_TUP_TRUE;
	if (cj__tup_next(&r, &it) != 1 || it.kind != CJ_TUP_INT || it.i < 0) goto bad;
	jv->added_ms = it.i;
	if (cj__tup_next(&r, &it) != 1 || it.kind != CJ_TUP_INT || it.i < 0) goto bad;
	jv->finished_ms = it.i;
	if (cj__tup_next(&r, &it) != 1) goto bad;
	if (it.kind == CJ_TUP_BYTES) {
		uint8_t pv[64];
		if (it.len > sizeof pv) goto bad;
		cj__tup_copy(&it, pv);
		if (cj__policy_decode(pv, it.len, &jv->policy) != CJ_OK) goto bad;
		jv->has_policy = 1;
	} else if (it.kind != CJ_TUP_NULL) goto bad;
	for (;;) {
		const uint8_t *at = r.p;
		if ((got = cj__tup_next(&r, &it)) == 0) break;
		if (got != 1 || it.kind != CJ_TUP_BYTES || jv->nerr == CJ_MAX_ERRORS ||
		    it.len > CJ_ERR_ENTRY_MAX)
			goto bad;
		jv->err_enc[jv->nerr] = at;
		jv->err_enclen[jv->nerr++] = (size_t)(r.p - at);
	}
check:
	/* a lock and a sequence come together; times are never negative; a
	 * dead job is not running */
	if (jv->has_lock != jv->has_seq || jv->sched < 0 || (jv->dead && jv->has_lock))
		goto bad;
	return CJ_OK;
bad:
	return cj__fail(CJ_STORE, "corrupt job value");
}

int cj__jv_data(const cj_jv *jv, char **out) {
	char *s = cj__malloc(jv->data_item.len + 1);
	*out = NULL;
	if (!s) return cj__fail(CJ_NOMEM, "out of memory");
	cj__tup_copy(&jv->data_item, s);
	s[jv->data_item.len] = 0;
	/* what was stored was checked; what is read may have been damaged */
	if (cj__json_check_object(s, jv->data_item.len) != CJ_OK) {
		char why[160];
		snprintf(why, sizeof why, "%s", cj_last_error());
		cj_free(s);
		return cj__fail(CJ_STORE, "corrupt job value: %s", why);
	}
	*out = s;
	return CJ_OK;
}

int cj__jv_errors(const cj_jv *jv, char **out) {
	cj_buf b = CJ_BUF_INIT;
	*out = NULL;
	cj__buf_add(&b, "[", 1);
	for (int i = 0; i < jv->nerr; i++) {
		cj_tup_reader r;
		cj_tup_item it;
		cj__tup_reader_init(&r, jv->err_enc[i], jv->err_enclen[i]);
		if (cj__tup_next(&r, &it) != 1) continue; /* decoded once already */
		char one[CJ_ERR_ENTRY_MAX];
		if (it.len > sizeof one) continue; /* cj__jv_decode bounds it */
		cj__tup_copy(&it, one);
		if (i) cj__buf_add(&b, ",", 1);
		cj__buf_add(&b, one, it.len);
	}
	cj__buf_add(&b, "]", 2); /* with the terminator */
	if (b.oom) {
		cj__buf_free(&b);
		return cj__fail(CJ_NOMEM, "out of memory");
	}
	*out = (char *)b.p;
	return CJ_OK;
}

/* ---- parsing keys ---------------------------------------------------------- */

/* Reads key k of subspace sub into its n elements after ("couch_jobs",
 * sub): CJ_OK, or CJ_STORE naming what (a "corrupt <what> key"). */
static int key_parse(const uint8_t *k, size_t kl, const char *sub, const char *what,
                     cj_tup_item *items, int n) {
	cj_tup_reader r;
	cj_tup_item it;
	cj__tup_reader_init(&r, k, kl);
	if (cj__tup_next(&r, &it) != 1 || it.kind != CJ_TUP_STRING ||
	    !cj__tup_eq(&it, "couch_jobs", 10) || cj__tup_next(&r, &it) != 1 ||
	    it.kind != CJ_TUP_STRING || !cj__tup_eq(&it, sub, strlen(sub)))
		goto bad;
	for (int i = 0; i < n; i++)
		if (cj__tup_next(&r, &items[i]) != 1) goto bad;
	if (cj__tup_next(&r, &it) != 0) goto bad;
	return CJ_OK;
bad:
	return cj__fail(CJ_STORE, "corrupt %s key", what);
}

/* A string element as a new string (cj_free): CJ_OK, CJ_STORE if it is not
 * a string of 1 to max bytes without NUL (a type or id the library would
 * take), or CJ_NOMEM. */
static int item_string(const cj_tup_item *it, const char *what, size_t max, char **out) {
	*out = NULL;
	if (it->kind != CJ_TUP_STRING || it->len == 0 || it->len > max ||
	    memchr(it->raw, 0, it->rawlen))
		return cj__fail(CJ_STORE, "corrupt %s", what);
	char *s = cj__malloc(it->len + 1);
	if (!s) return cj__fail(CJ_NOMEM, "out of memory");
	cj__tup_copy(it, s);
	s[it->len] = 0;
	*out = s;
	return CJ_OK;
}

int cj__key_data_parse(const uint8_t *k, size_t kl, char **type, char **id) {
	cj_tup_item it[2];
	*type = *id = NULL;
	int rc = key_parse(k, kl, "data", "data", it, 2);
	if (rc || (rc = item_string(&it[0], "data key", CJ_MAX_TYPE, type)) ||
	    (rc = item_string(&it[1], "data key", CJ_MAX_ID, id))) {
		cj_free(*type);
		*type = NULL;
	}
	return rc;
}

int cj__key_pending_parse(const uint8_t *k, size_t kl, int64_t *sched, char **id) {
	cj_tup_item it[3];
	if (id) *id = NULL;
	int rc = key_parse(k, kl, "pending", "pending", it, 3);
	if (rc) return rc;
	if (it[0].kind != CJ_TUP_STRING || it[1].kind != CJ_TUP_INT)
		return cj__fail(CJ_STORE, "corrupt pending key");
	if (sched) *sched = it[1].i;
	return id ? item_string(&it[2], "pending key", CJ_MAX_ID, id) : CJ_OK;
}

int cj__key_timeout_parse(const uint8_t *k, size_t kl, char **type) {
	cj_tup_item it;
	*type = NULL;
	int rc = key_parse(k, kl, "activity_timeout", "activity_timeout", &it, 1);
	return rc ? rc : item_string(&it, "activity_timeout key", CJ_MAX_TYPE, type);
}

int cj__key_activity_parse(const uint8_t *k, size_t kl, uint8_t seq[CJ_VS_LEN]) {
	cj_tup_item it[2];
	int rc = key_parse(k, kl, "activity", "activity", it, 2);
	if (rc) return rc;
	if (it[0].kind != CJ_TUP_STRING || it[1].kind != CJ_TUP_VS)
		return cj__fail(CJ_STORE, "corrupt activity key");
	memcpy(seq, it[1].raw, CJ_VS_LEN);
	return CJ_OK;
}

/* ---- values ------------------------------------------------------------------ */

void cj__vs_make(uint8_t out[CJ_VS_LEN], uint64_t version, uint16_t order) {
	for (int i = 7; i >= 0; i--, version >>= 8) out[i] = (uint8_t)version;
	out[8] = (uint8_t)(order >> 8);
	out[9] = (uint8_t)order;
	out[10] = out[11] = 0;
}

void cj__val_id(cj_buf *b, const char *id) {
	cj__buf_reset(b);
	str(b, id);
}

int cj__val_id_parse(const uint8_t *v, size_t vl, char **id) {
	cj_tup_reader r;
	cj_tup_item it, end;
	*id = NULL;
	cj__tup_reader_init(&r, v, vl);
	if (cj__tup_next(&r, &it) != 1 || cj__tup_next(&r, &end) != 0)
		return cj__fail(CJ_STORE, "corrupt activity value");
	return item_string(&it, "activity value", CJ_MAX_ID, id);
}

int cj__val_int(const uint8_t *v, size_t vl, int64_t *out) {
	cj_tup_reader r;
	cj_tup_item it;
	cj__tup_reader_init(&r, v, vl);
	if (cj__tup_next(&r, &it) != 1 || it.kind != CJ_TUP_INT || cj__tup_next(&r, &it) != 0)
		return cj__fail(CJ_STORE, "corrupt integer value");
	*out = it.i;
	return CJ_OK;
}

int cj__val_vs(const uint8_t *v, size_t vl, uint8_t out[CJ_VS_LEN]) {
	cj_tup_reader r;
	cj_tup_item it;
	cj__tup_reader_init(&r, v, vl);
	if (cj__tup_next(&r, &it) != 1 || it.kind != CJ_TUP_VS || cj__tup_next(&r, &it) != 0)
		return cj__fail(CJ_STORE, "corrupt versionstamp value");
	memcpy(out, it.raw, CJ_VS_LEN);
	return CJ_OK;
}

/* ---- retention: the finished index, its counts, the types' limits ---------- */

void cj__key_finished(cj_buf *b, const char *type, int dead, int64_t finished_ms,
                      const char *id) {
	cj__key_finished_prefix(b, type, dead);
	cj__tup_int(b, finished_ms);
	str(b, id);
}

void cj__key_finished_prefix(cj_buf *b, const char *type, int dead) {
	prefix(b, "finished");
	str(b, type);
	cj__tup_int(b, dead ? 1 : 0);
}

void cj__key_finished_count(cj_buf *b, const char *type, int dead) {
	prefix(b, "finished_count");
	str(b, type);
	cj__tup_int(b, dead ? 1 : 0);
}

void cj__key_finished_count_prefix(cj_buf *b) { prefix(b, "finished_count"); }

void cj__key_retention(cj_buf *b, const char *type) {
	prefix(b, "retention");
	str(b, type);
}

void cj__key_retention_prefix(cj_buf *b) { prefix(b, "retention"); }

int cj__key_finished_parse(const uint8_t *k, size_t kl, int64_t *finished_ms, char **id) {
	cj_tup_item it[4];
	*id = NULL;
	int rc = key_parse(k, kl, "finished", "finished", it, 4);
	if (rc) return rc;
	if (it[0].kind != CJ_TUP_STRING || it[1].kind != CJ_TUP_INT || it[2].kind != CJ_TUP_INT)
		return cj__fail(CJ_STORE, "corrupt finished key");
	*finished_ms = it[2].i;
	return item_string(&it[3], "finished key", CJ_MAX_ID, id);
}

int cj__key_retention_parse(const uint8_t *k, size_t kl, char **type) {
	cj_tup_item it;
	*type = NULL;
	int rc = key_parse(k, kl, "retention", "retention", &it, 1);
	return rc ? rc : item_string(&it, "retention key", CJ_MAX_TYPE, type);
}

void cj__retention_encode(cj_buf *b, const cj_retention *r) {
	cj__buf_reset(b);
	cj__tup_int(b, r->keep_ms);
	cj__tup_int(b, r->keep_max);
	cj__tup_int(b, r->dead_keep_ms);
	cj__tup_int(b, r->dead_keep_max);
}

int cj__retention_check(const cj_retention *r) {
	const int64_t v[4] = {r->keep_ms, r->keep_max, r->dead_keep_ms, r->dead_keep_max};
	static const char *const names[4] = {"keep_ms", "keep_max", "dead_keep_ms",
	                                     "dead_keep_max"};
	int any = 0;
	for (int i = 0; i < 4; i++) {
		if (v[i] < CJ_KEEP_ALL)
			return cj__fail(CJ_INVALID, "%s %lld is negative (-1 keeps all)", names[i],
			                (long long)v[i]);
		any |= v[i] != CJ_KEEP_ALL;
	}
	if (!any) return cj__fail(CJ_INVALID, "no limit: every field is CJ_KEEP_ALL");
	return CJ_OK;
}

int cj__retention_decode(const uint8_t *v, size_t vl, cj_retention *r) {
	int64_t f[4];
	if (ints_decode(v, vl, f, 4) != 0) goto bad;
	r->keep_ms = f[0];
	r->keep_max = f[1];
	r->dead_keep_ms = f[2];
	r->dead_keep_max = f[3];
	if (cj__retention_check(r) == CJ_OK) return CJ_OK;
bad:
	return cj__fail(CJ_STORE, "corrupt retention");
}

/* ---- schedules ------------------------------------------------------------- */

void cj__key_schedule(cj_buf *b, const char *name) {
	prefix(b, "schedule");
	str(b, name);
}

void cj__key_schedule_prefix(cj_buf *b) { prefix(b, "schedule"); }

int cj__key_schedule_parse(const uint8_t *k, size_t kl, char **name) {
	cj_tup_item it;
	*name = NULL;
	int rc = key_parse(k, kl, "schedule", "schedule", &it, 1);
	return rc ? rc : item_string(&it, "schedule key", CJ_MAX_SCHEDULE_NAME, name);
}

static void str_or_null(cj_buf *b, const char *s) {
	if (s) str(b, s);
	else cj__tup_null(b);
}

void cj__schedule_encode(cj_buf *b, const cj_schedule *s, const char *data, int64_t served,
                         int64_t fired) {
	cj__buf_reset(b);
	str_or_null(b, s->cron);
	str_or_null(b, s->zone);
	cj__tup_int(b, s->every_s);
	cj__tup_int(b, s->anchor);
	str(b, s->type);
	cj__tup_bytes(b, data, strlen(data));
	cj__tup_int(b, s->catch_up);
	cj__tup_bool(b, s->disabled);
	cj__tup_int(b, served);
	cj__tup_int(b, fired);
}

/* A string or bytes element as a new string (NULL for a null element when
 * null_ok): 0, 1 if it is of another kind or holds a NUL, or CJ_NOMEM. */
static int item_text(const cj_tup_item *it, int kind, int null_ok, char **out) {
	*out = NULL;
	if (null_ok && it->kind == CJ_TUP_NULL) return 0;
	if ((int)it->kind != kind || memchr(it->raw, 0, it->rawlen)) return 1;
	char *s = cj__malloc(it->len + 1);
	if (!s) return cj__fail(CJ_NOMEM, "out of memory");
	cj__tup_copy(it, s);
	s[it->len] = 0;
	*out = s;
	return 0;
}

int cj__schedule_decode(const uint8_t *v, size_t vl, cj_schedule_info *out) {
	cj_tup_reader r;
	cj_tup_item it[10], end;
	int rc = 0;
	memset(out, 0, sizeof *out);
	cj__tup_reader_init(&r, v, vl);
	for (int i = 0; i < 10; i++)
		if (cj__tup_next(&r, &it[i]) != 1) goto bad;
	if (cj__tup_next(&r, &end) != 0) goto bad;
	if ((rc = item_text(&it[0], CJ_TUP_STRING, 1, &out->cron)) ||
	    (rc = item_text(&it[1], CJ_TUP_STRING, 1, &out->zone)) ||
	    (rc = item_text(&it[4], CJ_TUP_STRING, 0, &out->type)) ||
	    (rc = item_text(&it[5], CJ_TUP_BYTES, 0, &out->data)))
		goto bad;
	static const int ints[] = {2, 3, 6, 8, 9};
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
		if (it[ints[i]].kind != CJ_TUP_INT || it[ints[i]].i < 0 ||
		    it[ints[i]].i > CJ_MAX_SCHED_TIME)
			goto bad;
	if (it[7].kind != CJ_TUP_TRUE && it[7].kind != CJ_TUP_FALSE) goto bad;
	out->every_s = it[2].i;
	out->anchor = it[3].i;
	out->catch_up = (int)it[6].i;
	out->disabled = it[7].kind == CJ_TUP_TRUE;
	out->served = it[8].i;
	out->fired = it[9].i;
	return CJ_OK;
bad:
	cj_schedule_info_clear(out);
	if (rc < 0) return rc;
	return cj__fail(CJ_STORE, "corrupt schedule value");
}

/* ---- counts: jobs per type, kind and shard ----------------------------------- */

void cj__key_counter(cj_buf *b, const char *type, int kind, int shard) {
	cj__key_counter_prefix(b, type);
	cj__tup_int(b, kind);
	cj__tup_int(b, shard);
}

/* "watches_counts" sorts between "watches_activity" and "watches_pending":
 * every change of a job's state writes its type's watch keys and counters
 * in one transaction, and on an ordered store (LMDB) they then share a
 * page. */
void cj__key_counter_prefix(cj_buf *b, const char *type) {
	prefix(b, "watches_counts");
	if (type) str(b, type);
}

void cj__key_counter_v4_prefix(cj_buf *b) { prefix(b, "counts"); }

int cj__key_counter_parse(const uint8_t *k, size_t kl, char **type, int *kind, int *shard) {
	cj_tup_item it[3];
	*type = NULL;
	int rc = key_parse(k, kl, "watches_counts", "counts", it, 3);
	if (rc) return rc;
	if (it[1].kind != CJ_TUP_INT || it[1].i < 0 || it[1].i >= CJ_COUNT_KINDS ||
	    it[2].kind != CJ_TUP_INT || it[2].i < 0 || it[2].i >= CJ_COUNT_SHARDS)
		return cj__fail(CJ_STORE, "corrupt counts key");
	*kind = (int)it[1].i;
	*shard = (int)it[2].i;
	return item_string(&it[0], "counts key", CJ_MAX_TYPE, type);
}

void cj__counter_encode(uint8_t out[CJ_COUNTER_LEN], int64_t n) {
	uint64_t u = (uint64_t)n;
	for (int i = CJ_COUNTER_LEN - 1; i >= 0; i--, u >>= 8) out[i] = (uint8_t)u;
}

int cj__counter_decode(const uint8_t *v, size_t vl, int64_t *n) {
	if (vl != CJ_COUNTER_LEN) return cj__fail(CJ_STORE, "corrupt counter value");
	uint64_t u = 0;
	for (int i = 0; i < CJ_COUNTER_LEN; i++) u = u << 8 | v[i];
	*n = (int64_t)u;
	return CJ_OK;
}
