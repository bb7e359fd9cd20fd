/* The RFC 007 key layout and value encodings (see cj_int.h). */
#include <string.h>

#include "cj_int.h"

static void prefix(cj_buf *b, const char *sub) {
	cj__buf_reset(b);
	cj__tup_str(b, "couch_jobs", 10);
	cj__tup_str(b, sub, strlen(sub));
}

static void str(cj_buf *b, const char *s) { cj__tup_str(b, s, strlen(s)); }

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

void cj__jv_encode(cj_buf *b, const cj_jv *jv, const char *data, size_t dlen) {
	cj__buf_reset(b);
	if (jv->has_seq) cj__tup_vs(b, jv->seq); else cj__tup_null(b);
	if (jv->has_lock) cj__tup_uuid(b, jv->lock); else cj__tup_null(b);
	cj__tup_int(b, jv->sched);
	cj__tup_bool(b, jv->resubmit);
	if (data) cj__tup_bytes(b, data, dlen);
	else cj__buf_add(b, jv->data_enc, jv->data_enclen);
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
	if (cj__tup_next(&r, &it) != 0) goto bad;
	return CJ_OK;
bad:
	return cj__fail(CJ_STORE, "corrupt job value");
}

char *cj__jv_data(const cj_jv *jv) {
	char *s = cj__malloc(jv->data_item.len + 1);
	if (!s) return NULL;
	cj__tup_copy(&jv->data_item, s);
	s[jv->data_item.len] = 0;
	return s;
}

char *cj__key_string_at(const uint8_t *k, size_t kl, int index) {
	cj_tup_reader r;
	cj_tup_item it;
	cj__tup_reader_init(&r, k, kl);
	for (int i = 0; i <= index; i++)
		if (cj__tup_next(&r, &it) != 1) return NULL;
	if (it.kind != CJ_TUP_STRING) return NULL;
	char *s = cj__malloc(it.len + 1);
	if (!s) return NULL;
	cj__tup_copy(&it, s);
	s[it.len] = 0;
	return s;
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
