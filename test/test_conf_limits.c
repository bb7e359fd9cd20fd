/*
 * Conformance: limits and bad input (include/couchjobs.h, each call's
 * limits, "Codes"): both
 * sides of every length limit, NULL and empty arguments, job data that is
 * not one JSON object, the data size limit, unknown types, negative times,
 * bad timeouts and bad URLs. Every refused call is shown to have written
 * nothing: the whole store (types, timeouts, every job) reads the same
 * before and after.
 *
 * Public API only; the store comes from t_open() / t_url().
 */
#include "testutil.h"

#include <dirent.h>

/* ---- helpers ------------------------------------------------------------ */

struct buf {
	char *p;
	size_t n, cap;
};

static void buf_add(struct buf *b, const char *s) {
	size_t l = strlen(s);
	if (b->n + l + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (b->n + l + 1 > cap) cap *= 2;
		char *p = realloc(b->p, cap);
		CHECK(p != NULL);
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, l + 1);
	b->n += l;
}

static int dump_job(const cj_job_info *i, void *arg) {
	struct buf *b = arg;
	char line[96];
	buf_add(b, "J ");
	buf_add(b, i->type);
	buf_add(b, " ");
	buf_add(b, i->id);
	snprintf(line, sizeof line, " %d %lld %d ", (int)i->state, (long long)i->sched_time,
	         i->resubmit);
	buf_add(b, line);
	buf_add(b, i->data ? i->data : "(null)");
	buf_add(b, "\n");
	return 0;
}

/* Everything the store holds that the job API can read, as text. */
static char *store_dump(cj_db *db) {
	struct buf b = {0};
	buf_add(&b, "");
	char **types = NULL;
	size_t n = 0;
	CHECK_OK(cj_get_types(db, NULL, &types, &n));
	for (size_t i = 0; i < n; i++) {
		int64_t s = 0;
		char line[64];
		CHECK_OK(cj_get_type_timeout(db, types[i], &s));
		snprintf(line, sizeof line, " %lld\n", (long long)s);
		buf_add(&b, "T ");
		buf_add(&b, types[i]);
		buf_add(&b, line);
		cj_free(types[i]);
	}
	cj_free(types);
	CHECK_OK(cj_list_jobs(db, NULL, NULL, dump_job, &b));
	return b.p;
}

/* The call returns want, and the store is unchanged by it. */
#define REJECT(db, call, want)                                              \
	do {                                                                    \
		char *r_before_ = store_dump(db);                                   \
		CHECK_RC(call, want);                                               \
		char *r_after_ = store_dump(db);                                    \
		if (strcmp(r_before_, r_after_) != 0)                               \
			t_fail(__FILE__, __LINE__, "%s wrote to the store:\n%s---\n%s", \
			       #call, r_before_, r_after_);                             \
		free(r_before_);                                                    \
		free(r_after_);                                                     \
	} while (0)

static char t255[CJ_MAX_TYPE + 1], t256[CJ_MAX_TYPE + 2];
static char i1024[CJ_MAX_ID + 1], i1025[CJ_MAX_ID + 2];

static void make_names(void) {
	memset(t255, 'T', CJ_MAX_TYPE);
	t255[CJ_MAX_TYPE] = 0;
	memset(t256, 'T', CJ_MAX_TYPE + 1);
	t256[CJ_MAX_TYPE + 1] = 0;
	memset(i1024, 'I', CJ_MAX_ID);
	i1024[CJ_MAX_ID] = 0;
	memset(i1025, 'I', CJ_MAX_ID + 1);
	i1025[CJ_MAX_ID + 1] = 0;
}

/* A JSON object of exactly len bytes: {"a":"xxx..."} */
static char *object_of_size(size_t len) {
	CHECK(len >= 8);
	char *s = malloc(len + 1);
	CHECK(s != NULL);
	memcpy(s, "{\"a\":\"", 6);
	memset(s + 6, 'x', len - 8);
	memcpy(s + len - 2, "\"}", 3);
	CHECK_INT(strlen(s), len);
	return s;
}

/* ---- type and id lengths ---------------------------------------------------- */

/* A 255-byte type works everywhere. */
TEST(limits_type_255_ok) {
	make_names();
	cj_db *db = t_open();
	int64_t s = 0;
	CHECK_OK(cj_set_type_timeout(db, t255, 60));
	CHECK_OK(cj_get_type_timeout(db, t255, &s));
	CHECK_INT(s, 60);
	CHECK_OK(cj_add(db, NULL, t255, "j", "{\"v\":1}", 0));
	cj_state st = 0;
	CHECK_OK(cj_get_job_state(db, NULL, t255, "j", &st));
	char *d = NULL;
	CHECK_OK(cj_get_job_data(db, NULL, t255, "j", &d));
	cj_free(d);
	cj_job_info info = {0};
	CHECK_OK(cj_get_job(db, NULL, t255, "j", &info));
	CHECK_STR(info.type, t255);
	cj_job_info_clear(&info);
	CHECK_INT(count_jobs(db, t255), 1);
	cj_sub *sub = sub_on(db, t255, "j");
	cj_job *job = take_any(db, t255);
	CHECK_STR(cj_job_type(job), t255);
	cj_job *r = NULL;
	CHECK_OK(cj_job_resume(t255, "j", cj_job_lock(job), &r));
	CHECK_OK(cj_update(db, NULL, r, NULL));
	CHECK_OK(cj_finish(db, NULL, r, NULL));
	cj_event ev = {0};
	CHECK_OK(cj_wait(&sub, 1, CJ_FINISHED, 5000, &ev));
	CHECK_STR(ev.type, t255);
	cj_event_clear(&ev);
	CHECK_OK(cj_unsubscribe(sub));
	CHECK_OK(cj_remove(db, NULL, t255, "j"));
	char **types = NULL;
	size_t n = 0;
	CHECK_OK(cj_get_types(db, NULL, &types, &n));
	CHECK_INT(n, 1);
	CHECK_STR(types[0], t255);
	free_types(types, n);
	CHECK_OK(cj_clear_type_timeout(db, t255));
	cj_job_free(job);
	cj_job_free(r);
	cj_close(db);
}

/* A 256-byte, empty or NULL type is CJ_INVALID everywhere, and writes
 * nothing. */
TEST(limits_type_bad) {
	make_names();
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	const char *bad[] = {t256, "", NULL};
	for (size_t i = 0; i < 3; i++) {
		const char *ty = bad[i];
		int64_t s = 0;
		cj_state st = 0;
		char *d = NULL;
		cj_job_info info = {0};
		cj_sub *sub = (cj_sub *)db;
		cj_job *job = (cj_job *)db;
		cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
		o.timeout_ms = 0;
		REJECT(db, cj_set_type_timeout(db, ty, 60), CJ_INVALID);
		REJECT(db, cj_get_type_timeout(db, ty, &s), CJ_INVALID);
		REJECT(db, cj_clear_type_timeout(db, ty), CJ_INVALID);
		REJECT(db, cj_add(db, NULL, ty, "j", NULL, 0), CJ_INVALID);
		REJECT(db, cj_remove(db, NULL, ty, "j"), CJ_INVALID);
		REJECT(db, cj_get_job_state(db, NULL, ty, "j", &st), CJ_INVALID);
		REJECT(db, cj_get_job_data(db, NULL, ty, "j", &d), CJ_INVALID);
		REJECT(db, cj_get_job(db, NULL, ty, "j", &info), CJ_INVALID);
		REJECT(db, cj_subscribe(db, ty, "j", &sub, &st, &d), CJ_INVALID);
		CHECK(sub == NULL);
		REJECT(db, cj_accept(db, ty, &o, &job, NULL), CJ_INVALID);
		CHECK(job == NULL);
		job = (cj_job *)db;
		CHECK_RC(cj_job_resume(ty, "j", "01234567-89ab-cdef-0123-456789abcdef", &job),
		         CJ_INVALID);
		CHECK(job == NULL);
		if (ty) REJECT(db, cj_list_jobs(db, NULL, ty, noop_cb, NULL), CJ_INVALID);
	}
	/* the limit is in bytes: 85 three-byte characters fit, 86 do not */
	char euro85[3 * 85 + 1] = "", euro86[3 * 86 + 1] = "";
	for (int i = 0; i < 85; i++) strcat(euro85, "\xe2\x82\xac");
	snprintf(euro86, sizeof euro86, "%s\xe2\x82\xac", euro85);
	REJECT(db, cj_set_type_timeout(db, euro86, 60), CJ_INVALID);
	CHECK_OK(cj_set_type_timeout(db, euro85, 60));
	CHECK_OK(cj_add(db, NULL, euro85, "j", NULL, 0));
	cj_close(db);
}

/* A 1024-byte id works everywhere. */
TEST(limits_id_1024_ok) {
	make_names();
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", i1024, "{\"v\":1}", 0));
	cj_state st = 0;
	CHECK_OK(cj_get_job_state(db, NULL, "t", i1024, &st));
	CHECK_INT(st, CJ_PENDING);
	char *d = NULL;
	CHECK_OK(cj_get_job_data(db, NULL, "t", i1024, &d));
	cj_free(d);
	cj_job_info info = {0};
	CHECK_OK(cj_get_job(db, NULL, "t", i1024, &info));
	CHECK_STR(info.id, i1024);
	cj_job_info_clear(&info);
	cj_sub *sub = sub_on(db, "t", i1024);
	cj_job *job = take_any(db, "t");
	CHECK_STR(cj_job_id(job), i1024);
	cj_event ev = {0};
	CHECK_OK(cj_wait(&sub, 1, CJ_RUNNING, 5000, &ev));
	CHECK_STR(ev.id, i1024);
	cj_event_clear(&ev);
	cj_job *r = NULL;
	CHECK_OK(cj_job_resume("t", i1024, cj_job_lock(job), &r));
	CHECK_OK(cj_update(db, NULL, r, "{\"v\":2}"));
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	CHECK_OK(cj_unsubscribe(sub));
	CHECK_OK(cj_remove(db, NULL, "t", i1024));
	cj_job_free(job);
	cj_job_free(r);
	cj_close(db);
}

/* A 1025-byte, empty or NULL id is CJ_INVALID everywhere, and writes
 * nothing. */
TEST(limits_id_bad) {
	make_names();
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	const char *bad[] = {i1025, "", NULL};
	for (size_t i = 0; i < 3; i++) {
		const char *id = bad[i];
		cj_state st = 0;
		char *d = NULL;
		cj_job_info info = {0};
		cj_sub *sub = (cj_sub *)db;
		cj_job *job = (cj_job *)db;
		REJECT(db, cj_add(db, NULL, "t", id, NULL, 0), CJ_INVALID);
		REJECT(db, cj_remove(db, NULL, "t", id), CJ_INVALID);
		REJECT(db, cj_get_job_state(db, NULL, "t", id, &st), CJ_INVALID);
		REJECT(db, cj_get_job_data(db, NULL, "t", id, &d), CJ_INVALID);
		REJECT(db, cj_get_job(db, NULL, "t", id, &info), CJ_INVALID);
		REJECT(db, cj_subscribe(db, "t", id, &sub, &st, &d), CJ_INVALID);
		CHECK(sub == NULL);
		CHECK_RC(cj_job_resume("t", id, "01234567-89ab-cdef-0123-456789abcdef", &job),
		         CJ_INVALID);
		CHECK(job == NULL);
	}
	cj_close(db);
}

/* ---- NULL handles and out-pointers ----------------------------------------- */

TEST(limits_null_db) {
	int64_t s = 0;
	cj_state st = 0;
	char *d = NULL;
	cj_job_info info = {0};
	char **types = NULL;
	size_t n = 0;
	cj_sub *sub = (cj_sub *)&n;
	cj_job *job = (cj_job *)&n;
	CHECK_RC(cj_set_type_timeout(NULL, "t", 60), CJ_INVALID);
	CHECK_RC(cj_get_type_timeout(NULL, "t", &s), CJ_INVALID);
	CHECK_RC(cj_clear_type_timeout(NULL, "t"), CJ_INVALID);
	CHECK_RC(cj_get_types(NULL, NULL, &types, &n), CJ_INVALID);
	CHECK_RC(cj_add(NULL, NULL, "t", "j", NULL, 0), CJ_INVALID);
	CHECK_RC(cj_remove(NULL, NULL, "t", "j"), CJ_INVALID);
	CHECK_RC(cj_get_job_state(NULL, NULL, "t", "j", &st), CJ_INVALID);
	CHECK_RC(cj_get_job_data(NULL, NULL, "t", "j", &d), CJ_INVALID);
	CHECK_RC(cj_get_job(NULL, NULL, "t", "j", &info), CJ_INVALID);
	CHECK_RC(cj_list_jobs(NULL, NULL, NULL, noop_cb, NULL), CJ_INVALID);
	CHECK_RC(cj_accept(NULL, "t", NULL, &job, NULL), CJ_INVALID);
	CHECK(job == NULL);
	CHECK_RC(cj_subscribe(NULL, "t", "j", &sub, NULL, NULL), CJ_INVALID);
	CHECK(sub == NULL);
	cj_tx *tx = (cj_tx *)&n;
	CHECK_RC(cj_tx_begin(NULL, &tx), CJ_INVALID);
	CHECK(tx == NULL);
	CHECK_OK(cj_job_resume("t", "j", "01234567-89ab-cdef-0123-456789abcdef", &job));
	CHECK_RC(cj_update(NULL, NULL, job, NULL), CJ_INVALID);
	CHECK_RC(cj_finish(NULL, NULL, job, NULL), CJ_INVALID);
	CHECK_RC(cj_resubmit(NULL, NULL, job, 0, NULL), CJ_INVALID);
	cj_job_free(job);
}

TEST(limits_null_outputs) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	char **types = NULL;
	size_t n = 0;
	REJECT(db, cj_get_type_timeout(db, "t", NULL), CJ_INVALID);
	REJECT(db, cj_get_types(db, NULL, NULL, &n), CJ_INVALID);
	REJECT(db, cj_get_types(db, NULL, &types, NULL), CJ_INVALID);
	REJECT(db, cj_get_job_state(db, NULL, "t", "j", NULL), CJ_INVALID);
	REJECT(db, cj_get_job_data(db, NULL, "t", "j", NULL), CJ_INVALID);
	REJECT(db, cj_get_job(db, NULL, "t", "j", NULL), CJ_INVALID);
	REJECT(db, cj_list_jobs(db, NULL, NULL, NULL, NULL), CJ_INVALID);
	REJECT(db, cj_subscribe(db, "t", "j", NULL, NULL, NULL), CJ_INVALID);
	REJECT(db, cj_accept(db, "t", NULL, NULL, NULL), CJ_INVALID);
	CHECK_INT(state_of(db, "t", "j"), CJ_PENDING); /* the refused accept took nothing */
	/* NULL job handles */
	REJECT(db, cj_update(db, NULL, NULL, NULL), CJ_INVALID);
	REJECT(db, cj_finish(db, NULL, NULL, NULL), CJ_INVALID);
	REJECT(db, cj_resubmit(db, NULL, NULL, 0, NULL), CJ_INVALID);
	cj_close(db);
}

/* ---- job data ----------------------------------------------------------------- */

static const char *const not_objects[] = {
	"", " ", "[]", "[1,2]", "1", "-2.5", "\"s\"", "null", "true", "false",
	"{", "}", "{\"a\":}", "{\"a\":1,}", "{'a':1}", "{a:1}", "{\"a\" 1}",
	"{}x", "{} {}", "{}{}", "{\"a\":1}}", "{\"a\":1} 2", "{\"a\":[1,2}",
	"{\"a\":\"\xff\"}",          /* invalid byte */
	"{\"a\":\"\xc3\"}",          /* truncated sequence */
	"{\"a\":\"\xc0\xaf\"}",      /* overlong encoding */
	"{\"a\":\"\xed\xa0\x80\"}",  /* encoded surrogate */
	"{\"\xfe\":1}",              /* invalid byte in a key */
	"{\"a\":\"tab\there\"}",     /* raw control character */
	"{\"a\":01}",                /* leading zero */
	"{\"a\":NaN}",
};

/* Data that is not one JSON object is CJ_JSON in add, update, finish and
 * resubmit, and writes nothing. */
TEST(limits_json_refused) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "run", "{\"v\":0}", 0));
	cj_job *job = take_any(db, "t");
	CHECK_OK(cj_add(db, NULL, "t", "done", "{\"v\":0}", 0));
	cj_job *fin = take_any(db, "t");
	CHECK_OK(cj_finish(db, NULL, fin, NULL));
	for (size_t i = 0; i < sizeof not_objects / sizeof not_objects[0]; i++) {
		const char *bad = not_objects[i];
		char *before = store_dump(db);
		int rc1 = cj_add(db, NULL, "t", "new", bad, 0);
		int rc2 = cj_add(db, NULL, "t", "done", bad, 0);
		int rc3 = cj_update(db, NULL, job, bad);
		int rc4 = cj_finish(db, NULL, job, bad);
		int rc5 = cj_resubmit(db, NULL, fin, 0, bad);
		char *after = store_dump(db);
		if (rc1 != CJ_JSON || rc2 != CJ_JSON || rc3 != CJ_JSON || rc4 != CJ_JSON ||
		    rc5 != CJ_JSON)
			t_fail(__FILE__, __LINE__, "data %s: add %s, re-add %s, update %s, finish %s, "
			       "resubmit %s", bad, cj_err_name(rc1), cj_err_name(rc2),
			       cj_err_name(rc3), cj_err_name(rc4), cj_err_name(rc5));
		if (strcmp(before, after) != 0)
			t_fail(__FILE__, __LINE__, "data %s was written", bad);
		free(before);
		free(after);
	}
	/* the job is still running and can be updated */
	CHECK_OK(cj_update(db, NULL, job, "{\"v\":1}"));
	cj_job_free(job);
	cj_job_free(fin);
	cj_close(db);
}

/* One JSON object in any valid form is accepted and reads back. */
TEST(limits_json_accepted) {
	cj_db *db = open_typed("t");
	const char *good[] = {
		"{}", " {} ", "\n{\"a\" : 1}\n", "{\"a\":{\"b\":{\"c\":[1,{\"d\":[]}]}}}",
		"{\"s\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}", "{\"e\":\"\\u00e9\\n\\\"\"}",
		"{\"n\":-1.5e+10,\"t\":true,\"f\":false,\"z\":null}",
		"{\"nul\":\"a\\u0000b\"}",                   /* an escaped NUL is valid */
		"{\"big\":123456789012345678901234567890}", /* beyond 64 bits */
		"{\"pair\":\"\\ud83d\\ude00\"}",            /* a surrogate pair */
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		char id[16];
		snprintf(id, sizeof id, "j%zu", i);
		int rc = cj_add(db, NULL, "t", id, good[i], 0);
		if (rc != CJ_OK)
			t_fail(__FILE__, __LINE__, "data %s: %s (%s)", good[i], cj_err_name(rc),
			       cj_last_error());
		char *d = NULL;
		CHECK_OK(cj_get_job_data(db, NULL, "t", id, &d));
		CHECK(d != NULL && d[0] != 0);
		cj_free(d);
	}
	cj_close(db);
}

/* max_data_size: exactly the limit is accepted, one byte over is
 * CJ_TOO_LARGE in add, update, finish and resubmit, and writes nothing. */
TEST(limits_data_size_option) {
	cj_options opts = CJ_OPTIONS_INIT;
	opts.max_data_size = 1000;
	cj_db *db = t_open_opts(&opts);
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	char *fits = object_of_size(1000), *over = object_of_size(1001);
	CHECK_OK(cj_add(db, NULL, "t", "a", fits, 0));
	REJECT(db, cj_add(db, NULL, "t", "b", over, 0), CJ_TOO_LARGE);
	REJECT(db, cj_add(db, NULL, "t", "a", over, 0), CJ_TOO_LARGE);
	cj_job *job = take_any(db, "t");
	CHECK_OK(cj_update(db, NULL, job, fits));
	REJECT(db, cj_update(db, NULL, job, over), CJ_TOO_LARGE);
	REJECT(db, cj_finish(db, NULL, job, over), CJ_TOO_LARGE);
	CHECK_OK(cj_finish(db, NULL, job, fits));
	REJECT(db, cj_resubmit(db, NULL, job, 0, over), CJ_TOO_LARGE);
	CHECK_OK(cj_resubmit(db, NULL, job, 0, fits));
	char *d = NULL;
	CHECK_OK(cj_get_job_data(db, NULL, "t", "a", &d));
	CHECK_INT(strlen(d), 1000);
	cj_free(d);
	cj_job_free(job);
	free(fits);
	free(over);
	cj_close(db);
}

/* The default limit is 1 MiB. */
TEST(limits_data_size_default) {
	cj_db *db = open_typed("t");
	char *fits = object_of_size((size_t)1 << 20), *over = object_of_size(((size_t)1 << 20) + 1);
	CHECK_OK(cj_add(db, NULL, "t", "a", fits, 0));
	REJECT(db, cj_add(db, NULL, "t", "b", over, 0), CJ_TOO_LARGE);
	char *d = NULL;
	CHECK_OK(cj_get_job_data(db, NULL, "t", "a", &d));
	CHECK_INT(strlen(d), (size_t)1 << 20);
	cj_free(d);
	free(fits);
	free(over);
	cj_close(db);
}

/* max_data_size may be up to CJ_MAX_DATA_LIMIT; above it is a bad option. */
TEST(limits_data_size_bounds) {
	cj_options opts = CJ_OPTIONS_INIT;
	opts.max_data_size = CJ_MAX_DATA_LIMIT;
	cj_db *db = NULL;
	CHECK_OK(cj_open(t_url(), &opts, &db));
	cj_close(db);
	opts.max_data_size = CJ_MAX_DATA_LIMIT + 1;
	db = (cj_db *)&opts;
	CHECK_RC(cj_open(t_url(), &opts, &db), CJ_INVALID);
	CHECK(db == NULL);
}

/* ---- types, times, timeouts ---------------------------------------------------- */

/* Adding to a type that has no timeout is CJ_NO_TYPE_TIMEOUT and writes
 * nothing. */
TEST(limits_no_type_timeout) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	REJECT(db, cj_add(db, NULL, "unknown", "j", NULL, 0), CJ_NO_TYPE_TIMEOUT);
	REJECT(db, cj_add(db, NULL, "unknown", "j", "{\"a\":1}", t_epoch() + 100),
	       CJ_NO_TYPE_TIMEOUT);
	/* a type name that differs only in case is another type */
	REJECT(db, cj_add(db, NULL, "T", "j", NULL, 0), CJ_NO_TYPE_TIMEOUT);
	cj_close(db);
}

/* A negative scheduled time is CJ_INVALID (CJ_SCHED_KEEP aside, for
 * resubmit) and writes nothing. */
TEST(limits_negative_sched) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":0}", 0));
	REJECT(db, cj_add(db, NULL, "t", "n", NULL, -1), CJ_INVALID);
	REJECT(db, cj_add(db, NULL, "t", "j", "{\"v\":1}", -1), CJ_INVALID);
	REJECT(db, cj_add(db, NULL, "t", "n", NULL, INT64_MIN), CJ_INVALID);
	cj_job *job = take_any(db, "t");
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	REJECT(db, cj_resubmit(db, NULL, job, -2, NULL), CJ_INVALID);
	REJECT(db, cj_resubmit(db, NULL, job, INT64_MIN, NULL), CJ_INVALID);
	CHECK_OK(cj_resubmit(db, NULL, job, CJ_SCHED_KEEP, NULL));
	cj_job_free(job);
	cj_close(db);
}

/* Timeouts of 0, negative, or over CJ_MAX_TYPE_TIMEOUT seconds are
 * CJ_INVALID and write nothing. */
TEST(limits_bad_type_timeout) {
	cj_db *db = open_typed("t");
	REJECT(db, cj_set_type_timeout(db, "t", 0), CJ_INVALID);
	REJECT(db, cj_set_type_timeout(db, "t", -5), CJ_INVALID);
	REJECT(db, cj_set_type_timeout(db, "t", CJ_MAX_TYPE_TIMEOUT + 1), CJ_INVALID);
	REJECT(db, cj_set_type_timeout(db, "new", 0), CJ_INVALID);
	REJECT(db, cj_set_type_timeout(db, "new", CJ_MAX_TYPE_TIMEOUT + 1), CJ_INVALID);
	cj_close(db);
}

/* ---- opening ----------------------------------------------------------------------- */

static size_t dir_entries(const char *path) {
	DIR *d = opendir(path);
	CHECK(d != NULL);
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) n++;
	closedir(d);
	return n;
}

/* NULL or empty URL, unknown scheme, NULL out-pointer, bad option:
 * CJ_INVALID, a NULL handle, and nothing created. */
TEST(limits_open_bad) {
	size_t before = dir_entries(t_dir());
	cj_db *db = (cj_db *)&before;
	CHECK_RC(cj_open(NULL, NULL, &db), CJ_INVALID);
	CHECK(db == NULL);
	db = (cj_db *)&before;
	CHECK_RC(cj_open("", NULL, &db), CJ_INVALID);
	CHECK(db == NULL);
	const char *unknown[] = {"foo://x/y", "mysql://host/db", "http://x/"};
	for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
		db = (cj_db *)&before;
		int rc = cj_open(unknown[i], NULL, &db);
		if (rc != CJ_INVALID)
			t_fail(__FILE__, __LINE__, "cj_open(%s) = %s", unknown[i], cj_err_name(rc));
		CHECK(db == NULL);
	}
	CHECK_RC(cj_open(t_url(), NULL, NULL), CJ_INVALID);
	cj_options o = CJ_OPTIONS_INIT;
	o.sync = (cj_sync_mode)42;
	db = (cj_db *)&before;
	CHECK_RC(cj_open(t_url(), &o, &db), CJ_INVALID);
	CHECK(db == NULL);
	CHECK_INT(dir_entries(t_dir()), before);
}

/* The store-free checks (cj_type_check, cj_id_check, cj_data_check) give
 * the code and the detail the calls give for the same argument. */
#define SAME_JUDGEMENT(check, call)                                         \
	do {                                                                    \
		int rc_call_ = (call);                                              \
		char detail_[600];                                                  \
		snprintf(detail_, sizeof detail_, "%s", cj_last_error());           \
		int rc_check_ = (check);                                            \
		CHECK_RC(rc_check_, rc_call_);                                      \
		if (rc_call_ != CJ_OK) CHECK_STR(cj_last_error(), detail_);         \
	} while (0)

TEST(limits_public_checks) {
	make_names();
	cj_options o = CJ_OPTIONS_INIT;
	o.max_data_size = 64;
	cj_db *db = t_open_opts(&o);
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_state st;
	int64_t secs;
	const char *bad_types[] = {t256, "", NULL};
	for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++)
		SAME_JUDGEMENT(cj_type_check(bad_types[i]), cj_get_type_timeout(db, bad_types[i], &secs));
	CHECK_OK(cj_type_check(t255));
	CHECK_OK(cj_type_check("t"));
	const char *bad_ids[] = {i1025, "", NULL};
	for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++)
		SAME_JUDGEMENT(cj_id_check(bad_ids[i]), cj_get_job_state(db, NULL, "t", bad_ids[i], &st));
	CHECK_OK(cj_id_check(i1024));
	CHECK_OK(cj_id_check("j"));
	for (size_t i = 0; i < sizeof not_objects / sizeof not_objects[0]; i++)
		SAME_JUDGEMENT(cj_data_check(not_objects[i], 64), cj_add(db, NULL, "t", "j", not_objects[i], 0));
	/* integers beyond 64 bits are valid JSON, for both */
	const char *big = "{\"n\":123456789012345678901234567890}";
	CHECK_OK(cj_add(db, NULL, "t", "j", big, 0));
	CHECK_OK(cj_data_check(big, 0));
	/* the limit: 64 bytes pass, 65 do not; 0 is the default 1 MiB */
	char *at = object_of_size(64), *over = object_of_size(65);
	SAME_JUDGEMENT(cj_data_check(at, 64), cj_add(db, NULL, "t", "j", at, 0));
	SAME_JUDGEMENT(cj_data_check(over, 64), cj_add(db, NULL, "t", "j", over, 0));
	CHECK_RC(cj_data_check(over, 0), CJ_OK);
	char *mib = object_of_size((size_t)1 << 20), *mib1 = object_of_size(((size_t)1 << 20) + 1);
	CHECK_OK(cj_data_check(mib, 0));
	CHECK_RC(cj_data_check(mib1, 0), CJ_TOO_LARGE);
	CHECK_RC(cj_data_check(NULL, 0), CJ_INVALID);
	CHECK_RC(cj_data_check("{}", CJ_MAX_DATA_LIMIT + 1), CJ_INVALID);
	CHECK_OK(cj_data_check("{}", CJ_MAX_DATA_LIMIT));
	free(at);
	free(over);
	free(mib);
	free(mib1);
	cj_close(db);
}

TEST_MAIN(ENTRY(limits_type_255_ok), ENTRY(limits_type_bad), ENTRY(limits_id_1024_ok),
          ENTRY(limits_id_bad), ENTRY(limits_null_db), ENTRY(limits_null_outputs),
          ENTRY(limits_json_refused), ENTRY(limits_json_accepted),
          ENTRY(limits_data_size_option), ENTRY(limits_data_size_default),
          ENTRY(limits_data_size_bounds), ENTRY(limits_no_type_timeout),
          ENTRY(limits_negative_sched), ENTRY(limits_bad_type_timeout),
          ENTRY(limits_open_bad), ENTRY(limits_public_checks))
