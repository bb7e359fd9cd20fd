/*
 * Conformance: conventions (include/couchjobs.h "Conventions", "Codes",
 * "States"): code names and messages, state names, cj_last_error, NULL
 * accepted by every free/clear/close call, failed constructors leaving
 * NULL, the version, and one handle shared by several threads.
 *
 * Public API only; the store comes from t_open().
 */
#include "testutil.h"

#include <pthread.h>

/* ---- codes ---------------------------------------------------------------- */

struct code {
	int value;
	const char *name;
};

static const struct code codes[] = {
#define CODE_ROW(name, value, msg) {CJ_##name, "CJ_" #name},
	CJ_CODE_MAP(CODE_ROW)
#undef CODE_ROW
};

/* Every code has its name, and a message that starts with it. */
TEST(misc_code_names) {
	size_t n = sizeof codes / sizeof codes[0];
	CHECK_INT(n, 12);
	for (size_t i = 0; i < n; i++) {
		CHECK(codes[i].value < 0);
		for (size_t j = 0; j < i; j++) CHECK(codes[i].value != codes[j].value);
		CHECK_STR(cj_err_name(codes[i].value), codes[i].name);
		const char *msg = cj_strerror(codes[i].value);
		size_t l = strlen(codes[i].name);
		if (!msg || strncmp(msg, codes[i].name, l) != 0 || msg[l] != ':' || strlen(msg) < l + 3)
			t_fail(__FILE__, __LINE__, "cj_strerror(%s) = \"%s\"", codes[i].name,
			       msg ? msg : "(null)");
	}
	/* the numbers are part of the ABI */
	CHECK_INT(CJ_OK, 0);
	CHECK_INT(CJ_NOT_FOUND, -1);
	CHECK_INT(CJ_HALT, -2);
	CHECK_INT(CJ_NO_TYPE_TIMEOUT, -3);
	CHECK_INT(CJ_JSON, -4);
	CHECK_INT(CJ_INVALID, -5);
	CHECK_INT(CJ_TOO_LARGE, -6);
	CHECK_INT(CJ_TIMEOUT, -7);
	CHECK_INT(CJ_CONFLICT, -8);
	CHECK_INT(CJ_STORE, -9);
	CHECK_INT(CJ_NOMEM, -10);
	CHECK_INT(CJ_CANCELED, -11);
	CHECK_INT(CJ_EXISTS, -12);
	/* success */
	CHECK_STR(cj_err_name(CJ_OK), "CJ_OK");
	CHECK(strncmp(cj_strerror(CJ_OK), "CJ_OK", 5) == 0);
	/* unknown codes */
	const int unknown[] = {1, 42, -100, -999, -2147483647 - 1};
	for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
		CHECK_STR(cj_err_name(unknown[i]), "CJ_?");
		CHECK_STR(cj_strerror(unknown[i]), "CJ_?: unknown code");
	}
}

/* ---- states ---------------------------------------------------------------- */

TEST(misc_state_names) {
	CHECK_STR(cj_state_name(CJ_PENDING), "pending");
	CHECK_STR(cj_state_name(CJ_RUNNING), "running");
	CHECK_STR(cj_state_name(CJ_FINISHED), "finished");
	CHECK_STR(cj_state_name(CJ_REMOVED), "removed");
	CHECK_STR(cj_state_name(CJ_DEAD), "dead");
	CHECK_STR(cj_state_name(0), "unknown");
	CHECK_STR(cj_state_name(6), "unknown");
	CHECK_STR(cj_state_name(-1), "unknown");
	const cj_state all[] = {CJ_PENDING, CJ_RUNNING, CJ_FINISHED, CJ_REMOVED, CJ_DEAD};
	for (size_t i = 0; i < 5; i++) {
		cj_state st = 0;
		CHECK_OK(cj_state_parse(cj_state_name(all[i]), &st));
		CHECK_INT(st, all[i]);
	}
	const char *bad[] = {"", "unknown", "bogus", "pending ", " pending", "pend", "pendingx"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cj_state st = 0;
		if (cj_state_parse(bad[i], &st) != CJ_INVALID)
			t_fail(__FILE__, __LINE__, "cj_state_parse(\"%s\") accepted", bad[i]);
	}
	cj_state st = 0;
	CHECK_RC(cj_state_parse(NULL, &st), CJ_INVALID);
	CHECK_RC(cj_state_parse("pending", NULL), CJ_INVALID);
	/* zero is never a state */
	CHECK(CJ_PENDING != 0 && CJ_RUNNING != 0 && CJ_FINISHED != 0 && CJ_REMOVED != 0);
}

/* ---- cj_last_error ------------------------------------------------------------ */

struct le_result {
	cj_db *db;
	int fresh_empty;
	int after_nonempty;
	char after[256];
};

static void *le_fresh(void *p) {
	struct le_result *r = p;
	const char *e = cj_last_error();
	r->fresh_empty = e != NULL && e[0] == 0;
	return NULL;
}

static void *le_fail(void *p) {
	struct le_result *r = p;
	const char *e = cj_last_error();
	r->fresh_empty = e != NULL && e[0] == 0;
	if (cj_add(r->db, NULL, "no-timeout", "j", NULL, 0) == CJ_NO_TYPE_TIMEOUT) {
		e = cj_last_error();
		r->after_nonempty = e != NULL && e[0] != 0 && strchr(e, '\n') == NULL;
		snprintf(r->after, sizeof r->after, "%s", e ? e : "");
	}
	return NULL;
}

#define CHECK_ONE_LINE_ERROR()                                              \
	do {                                                                    \
		const char *l_e_ = cj_last_error();                                 \
		CHECK(l_e_ != NULL && l_e_[0] != 0 && strchr(l_e_, '\n') == NULL);  \
	} while (0)

/* Empty on a thread where nothing failed; a one-line detail after each kind
 * of failure; per thread. */
TEST(misc_last_error) {
	cj_db *db = t_open();
	struct le_result a = {db, 0, 0, ""}, b = {db, 0, 0, ""};
	pthread_t th;
	CHECK(pthread_create(&th, NULL, le_fail, &a) == 0);
	pthread_join(th, NULL);
	CHECK(a.fresh_empty);
	CHECK(a.after_nonempty);
	/* another thread is untouched by that failure */
	CHECK(pthread_create(&th, NULL, le_fresh, &b) == 0);
	pthread_join(th, NULL);
	CHECK(b.fresh_empty);

	/* on this thread, after failures of several kinds */
	CHECK(cj_last_error() != NULL);
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	cj_state st = 0;
	cj_db *bad = NULL;
	CHECK_RC(cj_add(db, NULL, NULL, "j", NULL, 0), CJ_INVALID);
	CHECK_ONE_LINE_ERROR();
	CHECK_RC(cj_add(db, NULL, "t", "j", "[1]", 0), CJ_JSON);
	CHECK_ONE_LINE_ERROR();
	CHECK_RC(cj_add(db, NULL, "nope", "j", NULL, 0), CJ_NO_TYPE_TIMEOUT);
	CHECK_ONE_LINE_ERROR();
	CHECK_RC(cj_set_type_timeout(db, "t", 0), CJ_INVALID);
	CHECK_ONE_LINE_ERROR();
	CHECK_RC(cj_get_job_state(db, NULL, "t", "", &st), CJ_INVALID);
	CHECK_ONE_LINE_ERROR();
	CHECK_RC(cj_open(NULL, NULL, &bad), CJ_INVALID);
	CHECK_ONE_LINE_ERROR();
	CHECK_RC(cj_open("foo://nowhere", NULL, &bad), CJ_INVALID);
	CHECK_ONE_LINE_ERROR();
	cj_options big = CJ_OPTIONS_INIT;
	big.max_data_size = 100;
	cj_db *small = t_open_opts(&big);
	CHECK_RC(cj_add(small, NULL, "t", "j", "{\"a\":\"0123456789012345678901234567890123456789"
	                "01234567890123456789012345678901234567890123456789"
	                "0123456789\"}", 0), CJ_TOO_LARGE); /* 108 bytes */
	CHECK_ONE_LINE_ERROR();
	cj_close(small);
	cj_close(db);
}

/* ---- NULL everywhere it must be accepted ---------------------------------------- */

TEST(misc_null_accepted) {
	cj_free(NULL);
	cj_job_free(NULL);
	cj_job_info_clear(NULL);
	cj_event_clear(NULL);
	cj_close(NULL);
	cj_tx_abort(NULL);
	CHECK_OK(cj_unsubscribe(NULL));
	/* clearing zeroed structs, twice */
	cj_job_info info;
	memset(&info, 0, sizeof info);
	cj_job_info_clear(&info);
	cj_job_info_clear(&info);
	cj_event ev;
	memset(&ev, 0, sizeof ev);
	cj_event_clear(&ev);
	cj_event_clear(&ev);
	/* info strings freed and the struct zeroed */
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	CHECK_OK(cj_get_job(db, NULL, "t", "j", &info));
	cj_job_info_clear(&info);
	CHECK(info.type == NULL && info.id == NULL && info.data == NULL);
	CHECK_INT(info.state, 0);
	cj_job_info_clear(&info);
	cj_close(db);
}

/* A failed constructor sets its out-pointer to NULL. */
TEST(misc_failed_constructors) {
	int sentinel;
	cj_db *bad = (cj_db *)&sentinel;
	CHECK_RC(cj_open(NULL, NULL, &bad), CJ_INVALID);
	CHECK(bad == NULL);
	cj_tx *tx = (cj_tx *)&sentinel;
	CHECK_RC(cj_tx_begin(NULL, &tx), CJ_INVALID);
	CHECK(tx == NULL);
	cj_db *db = open_typed("t");
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	cj_job *job = (cj_job *)&sentinel;
	char *data = (char *)&sentinel;
	CHECK_RC(cj_accept(db, "t", &o, &job, &data), CJ_NOT_FOUND);
	CHECK(job == NULL);
	CHECK(data == NULL);
	job = (cj_job *)&sentinel;
	CHECK_RC(cj_accept(db, "", &o, &job, NULL), CJ_INVALID);
	CHECK(job == NULL);
	cj_sub *sub = (cj_sub *)&sentinel;
	data = (char *)&sentinel;
	CHECK_RC(cj_subscribe(db, "t", "missing", &sub, NULL, &data), CJ_NOT_FOUND);
	CHECK(sub == NULL);
	CHECK(data == NULL);
	sub = (cj_sub *)&sentinel;
	CHECK_RC(cj_subscribe(db, "t", "", &sub, NULL, NULL), CJ_INVALID);
	CHECK(sub == NULL);
	job = (cj_job *)&sentinel;
	CHECK_RC(cj_job_resume("t", "j", "bad", &job), CJ_INVALID);
	CHECK(job == NULL);
	cj_close(db);
}

/* ---- version, engine name, options ----------------------------------------------- */

TEST(misc_version_and_engine) {
	char want[32];
	snprintf(want, sizeof want, "%d.%d.%d", CJ_VERSION_MAJOR, CJ_VERSION_MINOR,
	         CJ_VERSION_PATCH);
	CHECK_STR(cj_version(), want);
	cj_db *db = t_open();
	const char *e = cj_db_engine(db);
	CHECK(e != NULL && e[0] != 0);
	if (t_is_lmdb()) CHECK_STR(e, "lmdb");
	else CHECK(strcmp(e, "lmdb") != 0);
	cj_close(db);
}

/* All-zero options are the defaults; relaxed sync works like full sync as
 * far as the API can tell. */
TEST(misc_options) {
	cj_options zero;
	memset(&zero, 0, sizeof zero);
	cj_db *db = t_open_opts(&zero);
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_add(db, NULL, "t", "a", NULL, 0));
	cj_close(db);
	cj_options relaxed = CJ_OPTIONS_INIT;
	relaxed.sync = CJ_SYNC_RELAXED;
	db = t_open_opts(&relaxed);
	CHECK_OK(cj_add(db, NULL, "t", "b", NULL, 0));
	cj_close(db);
	db = t_open();
	cj_state st = 0;
	CHECK_OK(cj_get_job_state(db, NULL, "t", "a", &st));
	CHECK_OK(cj_get_job_state(db, NULL, "t", "b", &st));
	cj_close(db);
}

/* ---- one handle, many threads ---------------------------------------------------- */

struct worker {
	cj_db *db;
	int n;
	int rc;
};

static void *worker_run(void *p) {
	struct worker *w = p;
	char type[16];
	snprintf(type, sizeof type, "w%d", w->n);
	for (int i = 0; i < 25 && w->rc == 0; i++) {
		char id[16];
		snprintf(id, sizeof id, "j%d", i);
		if (cj_add(w->db, NULL, type, id, "{\"x\":1}", 0) != CJ_OK) w->rc = 1;
	}
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 5000;
	for (int i = 0; i < 25 && w->rc == 0; i++) {
		cj_job *job = NULL;
		if (cj_accept(w->db, type, &o, &job, NULL) != CJ_OK) w->rc = 2;
		else if (cj_update(w->db, NULL, job, "{\"x\":2}") != CJ_OK) w->rc = 3;
		else if (cj_finish(w->db, NULL, job, NULL) != CJ_OK) w->rc = 4;
		cj_job_free(job);
	}
	return NULL;
}

static size_t finished_count;
static int finished_cb(const cj_job_info *i, void *arg) {
	(void)arg;
	if (i->state == CJ_FINISHED) finished_count++;
	return 0;
}

/* A handle is thread-safe: four threads add, accept, update and finish
 * through it at once. */
TEST(misc_threads_share_handle) {
	cj_db *db = t_open();
	struct worker w[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		char type[16];
		snprintf(type, sizeof type, "w%d", i);
		CHECK_OK(cj_set_type_timeout(db, type, 60));
	}
	for (int i = 0; i < 4; i++) {
		w[i].db = db;
		w[i].n = i;
		w[i].rc = 0;
		CHECK(pthread_create(&th[i], NULL, worker_run, &w[i]) == 0);
	}
	for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
	for (int i = 0; i < 4; i++) CHECK_INT(w[i].rc, 0);
	finished_count = 0;
	CHECK_OK(cj_list_jobs(db, NULL, NULL, finished_cb, NULL));
	CHECK_INT(finished_count, 100);
	cj_close(db);
}

TEST_MAIN(ENTRY(misc_code_names), ENTRY(misc_state_names), ENTRY(misc_last_error),
          ENTRY(misc_null_accepted), ENTRY(misc_failed_constructors),
          ENTRY(misc_version_and_engine), ENTRY(misc_options),
          ENTRY(misc_threads_share_handle))
