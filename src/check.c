/* Argument checks shared by every public call. */
#include <string.h>

#include "cj_int.h"

/* The length of the well-formed UTF-8 sequence at s (1 to 4), or 0 if it is
 * not one: a stray continuation byte, a truncated sequence, an overlong
 * form, a surrogate (U+D800..U+DFFF) or a code point over U+10FFFF. */
static size_t utf8_seq(const unsigned char *s) {
	unsigned c = s[0];
	if (c < 0x80) return 1;
	size_t n;
	unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		if (c == 0xE0) lo = 0xA0;      /* overlong */
		else if (c == 0xED) hi = 0x9F; /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		if (c == 0xF0) lo = 0x90;      /* overlong */
		else if (c == 0xF4) hi = 0x8F; /* over U+10FFFF */
	} else {
		return 0; /* continuation, C0/C1 (overlong), F5..FF */
	}
	if (s[1] < lo || s[1] > hi) return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xBF) return 0;
	return n;
}

/* CJ_INVALID naming what and the byte offset unless s[0..n) is UTF-8. */
static int check_utf8(const char *s, size_t n, const char *what) {
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq(p + i); /* stops at the NUL at p[n] */
		if (!l) return cj__fail(CJ_INVALID, "%s is not valid UTF-8 (at byte %zu)", what, i);
		i += l;
	}
	return CJ_OK;
}

int cj__check_type(const char *type) {
	if (!type) return cj__fail(CJ_INVALID, "type is NULL");
	size_t n = strnlen(type, CJ_MAX_TYPE + 1);
	if (n == 0) return cj__fail(CJ_INVALID, "type is empty");
	if (n > CJ_MAX_TYPE)
		return cj__fail(CJ_INVALID, "type is longer than %d bytes", CJ_MAX_TYPE);
	return check_utf8(type, n, "type");
}

int cj__check_id(const char *id) {
	if (!id) return cj__fail(CJ_INVALID, "job id is NULL");
	size_t n = strnlen(id, CJ_MAX_ID + 1);
	if (n == 0) return cj__fail(CJ_INVALID, "job id is empty");
	if (n > CJ_MAX_ID)
		return cj__fail(CJ_INVALID, "job id is longer than %d bytes", CJ_MAX_ID);
	return check_utf8(id, n, "job id");
}

int cj__check_schedule_name(const char *name) {
	if (!name) return cj__fail(CJ_INVALID, "schedule name is NULL");
	size_t n = strnlen(name, CJ_MAX_SCHEDULE_NAME + 1);
	if (n == 0) return cj__fail(CJ_INVALID, "schedule name is empty");
	if (n > CJ_MAX_SCHEDULE_NAME)
		return cj__fail(CJ_INVALID, "schedule name is longer than %d bytes",
		                CJ_MAX_SCHEDULE_NAME);
	return check_utf8(name, n, "schedule name");
}

int cj__check_sched(int64_t t, int allow_keep) {
	if (allow_keep && t == CJ_SCHED_KEEP) return CJ_OK;
	if (t < 0) return cj__fail(CJ_INVALID, "negative scheduled time %lld", (long long)t);
	if (t > CJ_MAX_SCHED_TIME)
		return cj__fail(CJ_INVALID, "scheduled time %lld is after %lld (the end of the "
		                "year 9999): seconds since the epoch are expected", (long long)t,
		                (long long)CJ_MAX_SCHED_TIME);
	return CJ_OK;
}

/* data (not NULL; what it is: "job data") against limit; sets *len. */
static int check_data_limit(const char *what, const char *data, size_t limit, size_t *len) {
	size_t n = strnlen(data, limit + 1);
	if (n > limit)
		return cj__fail(CJ_TOO_LARGE, "%s is over the limit of %zu bytes", what, limit);
	*len = n;
	return cj__json_check_object(data, n);
}

int cj__check_data(const cj_db *db, const char **data, size_t *len, int allow_null) {
	if (!*data) {
		if (!allow_null) return cj__fail(CJ_INVALID, "data is NULL");
		*data = "{}";
		*len = 2;
		return CJ_OK;
	}
	return check_data_limit("job data", *data, db->max_data, len);
}

int cj__check_error(const char **error, size_t *len) {
	if (!*error) {
		*error = "{}";
		*len = 2;
		return CJ_OK;
	}
	return check_data_limit("the error", *error, CJ_MAX_ERROR_SIZE, len);
}

/* ---- the public checks: the same judgement, without a store --------------- */

int cj_type_check(const char *type) {
	return cj__check_type(type);
}

int cj_id_check(const char *id) {
	return cj__check_id(id);
}

int cj_data_check(const char *data, size_t limit) {
	size_t len;
	if (!data) return cj__fail(CJ_INVALID, "data is NULL");
	if (limit > CJ_MAX_DATA_LIMIT)
		return cj__fail(CJ_INVALID, "limit over %zu bytes", CJ_MAX_DATA_LIMIT);
	return check_data_limit("job data", data, limit ? limit : CJ_DEFAULT_DATA_LIMIT, &len);
}
