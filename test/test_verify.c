/*
 * The invariant checker (cj_verify, `cjobs check`), on both engines.
 *
 * White-box: each case damages a healthy store by writing raw keys and
 * values of the job space through the engine, as disk damage or a bug
 * would, and checks that cj_verify finds exactly that problem. It includes
 * the library's private header for the engine and the key layout only;
 * everything it checks goes through the public API and the real cjobs.
 */
#include "testutil.h"

#include "cj_int.h"

/* ---- damaging a store ----------------------------------------------------- */

static void raw_put(cj_db *db, const cj_buf *k, const void *v, size_t vl) {
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(db->eng->put(tx->etx, CJ_SPACE_JOBS, k->p, k->len, v, vl));
	CHECK_OK(cj_tx_commit(tx));
}

static void raw_del(cj_db *db, const cj_buf *k) {
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(db->eng->del(tx->etx, CJ_SPACE_JOBS, k->p, k->len));
	CHECK_OK(cj_tx_commit(tx));
}

/* Reads a job's value, decoded into jv (pointing into copy). */
static void raw_job(cj_db *db, const char *type, const char *id, cj_buf *copy,
                    cj_jv *jv) {
	cj_tx *tx;
	cj_buf k = CJ_BUF_INIT;
	const uint8_t *v;
	size_t vl;
	cj__key_data(&k, type, id);
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(db->eng->get(tx->etx, CJ_SPACE_JOBS, k.p, k.len, &v, &vl));
	cj__buf_reset(copy);
	cj__buf_add(copy, v, vl);
	cj_tx_abort(tx);
	CHECK_OK(cj__jv_decode(copy->p, copy->len, jv));
	cj__buf_free(&k);
}

static void put_job(cj_db *db, const char *type, const char *id, const cj_jv *jv,
                    const char *data) {
	cj_buf k = CJ_BUF_INIT, v = CJ_BUF_INIT;
	cj__key_data(&k, type, id);
	cj__jv_encode(&v, jv, data, data ? strlen(data) : 0);
	raw_put(db, &k, v.p, v.len);
	cj__buf_free(&k);
	cj__buf_free(&v);
}

/* ---- checking ------------------------------------------------------------- */

struct lines {
	char text[8192];
	int n;
};

static int collect(const char *problem, void *arg) {
	struct lines *l = arg;
	CHECK(strchr(problem, '\n') == NULL);
	size_t o = strlen(l->text);
	snprintf(l->text + o, sizeof l->text - o, "%s\n", problem);
	l->n++;
	return 0;
}

/* cj_verify finds `want` problems, and the report holds `needle`. */
#define CHECK_PROBLEMS(db, want, needle) check_problems(__LINE__, (db), (want), (needle))
static void check_problems(int line, cj_db *db, int want, const char *needle) {
	struct lines l = {"", 0};
	uint64_t n = 99;
	int rc = cj_verify(db, collect, &l, &n);
	if (rc != CJ_OK || (int)n != want || l.n != want ||
	    (needle && !strstr(l.text, needle)))
		t_fail(__FILE__, line, "cj_verify = %s, %d problems, want %d with \"%s\":\n%s",
		       cj_err_name(rc), (int)n, want, needle ? needle : "", l.text);
}

/* A store with a job in every state: pending "p" (scheduled), running "r"
 * (resubmit-flagged "rr" too), finished "f", of type "t". */
static cj_db *healthy(void) {
	cj_db *db = open_nomon();
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_set_type_timeout(db, "u", 60));
	CHECK_OK(cj_add(db, NULL, "t", "r", "{\"n\":1}", 0));
	CHECK_OK(cj_add(db, NULL, "t", "rr", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "t", "f", NULL, 0));
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	cj_job *jobs[3];
	size_t n;
	CHECK_OK(cj_accept_many(db, "t", &o, 3, jobs, NULL, &n));
	CHECK_INT(n, 3);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cj_job_id(jobs[i]), "f") == 0) CHECK_OK(cj_finish(db, NULL, jobs[i], NULL));
		else CHECK_OK(cj_update(db, NULL, jobs[i], NULL));
		cj_job_free(jobs[i]);
	}
	CHECK_OK(cj_add(db, NULL, "t", "rr", NULL, 0)); /* flags it */
	CHECK_OK(cj_add(db, NULL, "t", "p", "{\"a\":[1,2]}", 4000000000));
	CHECK_OK(cj_add(db, NULL, "u", "x\n\"y", NULL, 0));
	CHECK_PROBLEMS(db, 0, NULL);
	return db;
}

TEST(verify_healthy_store) {
	cj_db *db = healthy();
	uint64_t n = 7;
	CHECK_OK(cj_verify(db, NULL, NULL, &n));
	CHECK_INT(n, 0);
	CHECK_OK(cj_verify(db, NULL, NULL, NULL));
	CHECK_RC(cj_verify(NULL, NULL, NULL, &n), CJ_INVALID);
	CHECK_INT(n, 0);
	/* not inside a transaction of the same thread */
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_RC(cj_verify(db, NULL, NULL, &n), CJ_INVALID);
	cj_tx_abort(tx);
	/* an empty store, and a busy one after the monitor ran */
	cj_close(db);
	CHECK_INT(t_sh(NULL, NULL, "%s check", t_bin("cjobs")), 0);
}

/* The report's non-zero return stops the check and is returned. */
static int stop_first(const char *problem, void *arg) {
	(void)problem;
	++*(int *)arg;
	return 42;
}

TEST(verify_report_stops) {
	cj_db *db = healthy();
	cj_buf k = CJ_BUF_INIT;
	for (int i = 0; i < 3; i++) {
		char name[8];
		snprintf(name, sizeof name, "z%d", i);
		cj__key_meta(&k, name);
		raw_put(db, &k, "", 0);
	}
	CHECK_PROBLEMS(db, 3, "unknown meta key");
	int calls = 0;
	CHECK_RC(cj_verify(db, stop_first, &calls, NULL), 42);
	CHECK_INT(calls, 1);
	cj__buf_free(&k);
	cj_close(db);
}

TEST(verify_bad_keys) {
	cj_db *db = healthy();
	cj_buf k = CJ_BUF_INIT;
	/* a truncated string element */
	static const uint8_t trunc[] = {0x02, 'c', 'o', 'u', 'c', 'h'};
	cj__buf_add(&k, trunc, sizeof trunc);
	raw_put(db, &k, "", 0);
	CHECK_PROBLEMS(db, 1, "key \"\\x02couch\": does not decode");
	raw_del(db, &k);
	/* another root, an unknown subspace, a job key with too many parts */
	cj__buf_reset(&k);
	cj__tup_str(&k, "other", 5);
	raw_put(db, &k, "", 0);
	CHECK_PROBLEMS(db, 1, "not a key of the job space");
	raw_del(db, &k);
	cj__buf_reset(&k);
	cj__tup_str(&k, "couch_jobs", 10);
	cj__tup_str(&k, "jobs", 4);
	cj__tup_str(&k, "t", 1);
	raw_put(db, &k, "", 0);
	CHECK_PROBLEMS(db, 1, "unknown key");
	raw_del(db, &k);
	cj__key_data(&k, "t", "q");
	cj__tup_int(&k, 1);
	raw_put(db, &k, "", 0);
	CHECK_PROBLEMS(db, 1, "unknown key");
	raw_del(db, &k);
	/* an id with a NUL byte in it */
	cj__key_data_prefix(&k, "t");
	cj__tup_str(&k, "a\0b", 3);
	raw_put(db, &k, "", 0);
	CHECK_PROBLEMS(db, 1, "job key with an invalid id");
	raw_del(db, &k);
	CHECK_PROBLEMS(db, 0, NULL);
	cj__buf_free(&k);
	cj_close(db);
}

TEST(verify_bad_values) {
	cj_db *db = healthy();
	cj_buf k = CJ_BUF_INIT, v = CJ_BUF_INIT, copy = CJ_BUF_INIT;
	cj_jv jv;
	/* a job value that does not decode; its entries are not blamed */
	raw_job(db, "t", "r", &copy, &jv);
	cj__key_data(&k, "t", "r");
	raw_put(db, &k, "\x15", 1);
	CHECK_PROBLEMS(db, 1, "type \"t\" id \"r\": corrupt job value");
	/* a lock without a sequence */
	cj_jv bad = jv;
	bad.has_seq = 0;
	put_job(db, "t", "r", &bad, NULL);
	CHECK_PROBLEMS(db, 1, "type \"t\" id \"r\": corrupt job value");
	/* data that is not one JSON object */
	put_job(db, "t", "r", &jv, "{\"n\":");
	CHECK_PROBLEMS(db, 1, "type \"t\" id \"r\": corrupt job value: job data");
	put_job(db, "t", "r", &jv, "[1]");
	CHECK_PROBLEMS(db, 1, "not a JSON object");
	put_job(db, "t", "r", &jv, NULL);
	CHECK_PROBLEMS(db, 0, NULL);
	/* a timeout out of range, or not a number */
	cj__key_timeout(&k, "u");
	cj__tup_int(&v, 0);
	raw_put(db, &k, v.p, v.len);
	CHECK_PROBLEMS(db, 1, "type \"u\": timeout 0 is outside");
	raw_put(db, &k, "\x02x", 2);
	CHECK_PROBLEMS(db, 1, "type \"u\": timeout does not decode");
	cj__buf_reset(&v);
	cj__tup_int(&v, 60);
	raw_put(db, &k, v.p, v.len);
	/* the format version */
	cj__key_meta(&k, "format");
	cj__buf_reset(&v);
	cj__tup_int(&v, 7);
	raw_put(db, &k, v.p, v.len);
	CHECK_PROBLEMS(db, 1, "format version 7 is outside 6..6");
	cj__buf_reset(&v);
	cj__tup_int(&v, CJ_FORMAT_VERSION);
	raw_put(db, &k, v.p, v.len);
	CHECK_PROBLEMS(db, 0, NULL);
	cj__buf_free(&k);
	cj__buf_free(&v);
	cj__buf_free(&copy);
	cj_close(db);
}

/* A schedule's value decodes, and its definition checks. */
TEST(verify_bad_schedules) {
	cj_db *db = healthy();
	cj_buf k = CJ_BUF_INIT, v = CJ_BUF_INIT;
	cj_schedule s = CJ_SCHEDULE_INIT;
	s.cron = "0 3 * * *";
	s.zone = "Europe/Berlin";
	s.type = "t";
	CHECK_OK(cj_schedule_set(db, NULL, "nightly", &s));
	CHECK_PROBLEMS(db, 0, NULL);
	cj__key_schedule(&k, "nightly");
	raw_put(db, &k, "\x15", 1);
	CHECK_PROBLEMS(db, 1, "schedule \"nightly\": corrupt schedule value");
	/* one that decodes, but whose cron expression does not parse */
	s.cron = "0 25 * * *";
	cj__schedule_encode(&v, &s, "{}", 0, 0);
	raw_put(db, &k, v.p, v.len);
	CHECK_PROBLEMS(db, 1, "bad hour field");
	s.cron = "0 3 * * *";
	cj__schedule_encode(&v, &s, "[]", 0, 0);
	raw_put(db, &k, v.p, v.len);
	CHECK_PROBLEMS(db, 1, "schedule \"nightly\"");
	CHECK_OK(cj_schedule_remove(db, NULL, "nightly"));
	/* a name too long */
	char name[CJ_MAX_SCHEDULE_NAME + 2];
	memset(name, 'n', sizeof name - 1);
	name[sizeof name - 1] = 0;
	cj__key_schedule(&k, name);
	cj__schedule_encode(&v, &s, "{}", 0, 0);
	raw_put(db, &k, v.p, v.len);
	CHECK_PROBLEMS(db, 1, "schedule key without a valid name");
	raw_del(db, &k);
	CHECK_PROBLEMS(db, 0, NULL);
	cj__buf_free(&k);
	cj__buf_free(&v);
	cj_close(db);
}

TEST(verify_pending_index) {
	cj_db *db = healthy();
	cj_buf k = CJ_BUF_INIT, copy = CJ_BUF_INIT;
	/* a pending entry at another time than the job's */
	cj__key_pending(&k, "t", 4000000000, "p");
	raw_del(db, &k);
	cj__key_pending(&k, "t", 5, "p");
	raw_put(db, &k, "", 0);
	CHECK_PROBLEMS(db, 2, "type \"t\" id \"p\": pending entry at 5, but the job is "
	                      "scheduled at 4000000000");
	CHECK_PROBLEMS(db, 2, "type \"t\" id \"p\": no pending entry at its scheduled time "
	                      "4000000000, and no finish time");
	/* and a second one at the right time */
	cj__key_pending(&k, "t", 4000000000, "p");
	raw_put(db, &k, "", 0);
	CHECK_PROBLEMS(db, 1, "pending entry at 5");
	cj__key_pending(&k, "t", 5, "p");
	raw_del(db, &k);
	CHECK_PROBLEMS(db, 0, NULL);
	/* a pending entry of a running job, of a job that does not exist */
	cj__key_pending(&k, "t", 0, "r");
	raw_put(db, &k, "", 0);
	CHECK_PROBLEMS(db, 1, "type \"t\" id \"r\": running, and has a pending entry");
	raw_del(db, &k);
	cj__key_pending(&k, "t", 0, "ghost");
	raw_put(db, &k, "", 0);
	CHECK_PROBLEMS(db, 1, "id \"ghost\": pending entry at 0 of a job that does not exist");
	raw_del(db, &k);
	/* a pending entry with a value */
	cj__key_pending(&k, "t", 4000000000, "p");
	raw_put(db, &k, "x", 1);
	CHECK_PROBLEMS(db, 1, "pending entry with a value");
	raw_put(db, &k, "", 0);
	/* a resubmit flag on a job that is not running */
	cj_jv jv;
	raw_job(db, "t", "f", &copy, &jv);
	jv.resubmit = 1;
	put_job(db, "t", "f", &jv, NULL);
	CHECK_PROBLEMS(db, 1, "id \"f\": flagged for resubmission but not running");
	jv.resubmit = 0;
	put_job(db, "t", "f", &jv, NULL);
	CHECK_PROBLEMS(db, 0, NULL);
	cj__buf_free(&k);
	cj__buf_free(&copy);
	cj_close(db);
}

TEST(verify_activity_index) {
	cj_db *db = healthy();
	cj_buf k = CJ_BUF_INIT, v = CJ_BUF_INIT, copy = CJ_BUF_INIT;
	cj_jv jv;
	raw_job(db, "t", "r", &copy, &jv);
	/* a running job without its activity entry */
	cj__key_activity(&k, "t", jv.seq);
	raw_del(db, &k);
	CHECK_PROBLEMS(db, 1, "type \"t\" id \"r\": running, but has no activity entry");
	/* the entry at its sequence names another job (which is running
	 * under another sequence) */
	cj__tup_str(&v, "rr", 2);
	raw_put(db, &k, v.p, v.len);
	CHECK_PROBLEMS(db, 2, "id \"r\": the activity entry at its sequence");
	CHECK_PROBLEMS(db, 2, "id \"rr\": activity entry at");
	/* an entry whose value is no id */
	raw_put(db, &k, "\x15\x01", 2);
	CHECK_PROBLEMS(db, 2, "its value is not a job id");
	cj__buf_reset(&v);
	cj__tup_str(&v, "r", 1);
	raw_put(db, &k, v.p, v.len);
	CHECK_PROBLEMS(db, 0, NULL);
	/* entries of a finished job, of a pending one, of no job */
	uint8_t seq[CJ_VS_LEN];
	memset(seq, 0, sizeof seq);
	seq[7] = 1;
	cj__key_activity(&k, "t", seq);
	cj__buf_reset(&v);
	cj__tup_str(&v, "f", 1);
	raw_put(db, &k, v.p, v.len);
	CHECK_PROBLEMS(db, 1, "id \"f\": activity entry at 000000000000000100000000 of a "
	                      "job that is not running");
	cj__buf_reset(&v);
	cj__tup_str(&v, "p", 1);
	raw_put(db, &k, v.p, v.len);
	CHECK_PROBLEMS(db, 1, "id \"p\": activity entry");
	cj__buf_reset(&v);
	cj__tup_str(&v, "gone", 4);
	raw_put(db, &k, v.p, v.len);
	CHECK_PROBLEMS(db, 1, "id \"gone\": activity entry at 000000000000000100000000 of "
	                      "a job that does not exist");
	raw_del(db, &k);
	CHECK_PROBLEMS(db, 0, NULL);
	cj__buf_free(&k);
	cj__buf_free(&v);
	cj__buf_free(&copy);
	cj_close(db);
}

/* `cjobs check` prints the report and exits 1; 0 once the store is sound. */
TEST(verify_cli_check) {
	cj_db *db = healthy();
	cj_buf k = CJ_BUF_INIT;
	cj__key_pending(&k, "t", 0, "ghost");
	raw_put(db, &k, "", 0);
	cj_close(db);
	char *out = NULL, *err = NULL;
	CHECK_INT(t_sh(&out, &err, "%s check", t_bin("cjobs")), 1);
	CHECK_STR(out, "type \"t\" id \"ghost\": pending entry at 0 of a job that does not "
	               "exist\n");
	CHECK_STR(err, "cjobs: check: 1 problem found\n");
	free(out);
	free(err);
	CHECK_INT(t_sh(NULL, NULL, "%s check extra 2>/dev/null", t_bin("cjobs")), 2);
	db = open_nomon();
	raw_del(db, &k);
	cj_close(db);
	CHECK_INT(t_sh(&out, NULL, "%s check", t_bin("cjobs")), 0);
	CHECK_STR(out, "");
	free(out);
	cj__buf_free(&k);
}

/* The finished index: an ended job without its entry, an entry without
 * its job, counts that are wrong or missing, a retention that does not
 * decode. */
TEST(verify_finished_index) {
	cj_db *db = healthy();
	cj_buf copy = CJ_BUF_INIT, k = CJ_BUF_INIT, v = CJ_BUF_INIT;
	cj_jv jv;
	raw_job(db, "t", "f", &copy, &jv);
	int64_t ms = jv.finished_ms;
	/* the entry of "f" gone: the job lacks it */
	cj__key_finished(&k, "t", 0, ms, "f");
	raw_del(db, &k);
	CHECK_PROBLEMS(db, 1, "type \"t\" id \"f\": finished, but has no finished entry");
	/* an entry of the wrong kind, and one of a job that does not exist */
	cj__key_finished(&k, "t", 1, ms, "f");
	raw_put(db, &k, "", 0);
	CHECK_PROBLEMS(db, 2, "type \"t\" id \"f\": dead entry at");
	raw_del(db, &k);
	cj__key_finished(&k, "t", 0, ms, "f");
	raw_put(db, &k, "", 0);
	cj__key_finished(&k, "t", 0, 5, "ghost");
	raw_put(db, &k, "", 0);
	CHECK_PROBLEMS(db, 1, "type \"t\" id \"ghost\": finished entry at 5 of a job that does "
	                      "not exist");
	raw_del(db, &k);
	CHECK_PROBLEMS(db, 0, NULL);
	/* a count of the entries, as format 5 kept: the counters count them */
	cj__key_finished_count(&k, "t", 0);
	cj__tup_int(&v, 1);
	raw_put(db, &k, v.p, v.len);
	CHECK_PROBLEMS(db, 1, "type \"t\": a count of finished entries, which format 6 does "
	                      "not keep");
	raw_del(db, &k);
	/* a retention that does not decode */
	cj__key_retention(&k, "t");
	raw_put(db, &k, v.p, v.len);
	CHECK_PROBLEMS(db, 1, "type \"t\": retention does not decode");
	raw_del(db, &k);
	CHECK_PROBLEMS(db, 0, NULL);
	cj__buf_free(&copy);
	cj__buf_free(&k);
	cj__buf_free(&v);
	cj_close(db);
}

/* ---- a store of the previous format ---------------------------------------- */

/* Rewrites the job's value as format 1 wrote it: (Sequence, JobLock,
 * ScheduledTime, Resubmit, JobData) and nothing after. */
static void put_v1(cj_db *db, const char *type, const char *id) {
	cj_buf copy = CJ_BUF_INIT, k = CJ_BUF_INIT, v = CJ_BUF_INIT;
	cj_jv jv;
	raw_job(db, type, id, &copy, &jv);
	if (jv.has_seq) cj__tup_vs(&v, jv.seq); else cj__tup_null(&v);
	if (jv.has_lock) cj__tup_uuid(&v, jv.lock); else cj__tup_null(&v);
	cj__tup_int(&v, jv.sched);
	cj__tup_bool(&v, jv.resubmit);
	cj__buf_add(&v, jv.data_enc, jv.data_enclen);
	cj__key_data(&k, type, id);
	raw_put(db, &k, v.p, v.len);
	cj__buf_free(&copy);
	cj__buf_free(&k);
	cj__buf_free(&v);
}

static int64_t raw_format(cj_db *db) {
	cj_tx *tx;
	cj_buf k = CJ_BUF_INIT;
	const uint8_t *v;
	size_t vl;
	int64_t n = -1;
	cj__key_meta(&k, "format");
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(db->eng->get(tx->etx, CJ_SPACE_JOBS, k.p, k.len, &v, &vl));
	CHECK_OK(cj__val_int(v, vl, &n));
	cj_tx_abort(tx);
	cj__buf_free(&k);
	return n;
}

/* Deletes the finished entry of the ended job type/id, as a store of
 * format 1 or 2 lacks it. */
static void strip_finished(cj_db *db, const char *type, const char *id) {
	cj_buf copy = CJ_BUF_INIT, k = CJ_BUF_INIT;
	cj_jv jv;
	raw_job(db, type, id, &copy, &jv);
	CHECK(jv.finished_ms > 0);
	cj__key_finished(&k, type, jv.dead, jv.finished_ms, id);
	raw_del(db, &k);
	cj__buf_free(&copy);
	cj__buf_free(&k);
}

/* Writes (type, dead)'s count of finished entries, as formats 3 to 5 kept. */
static void put_finished_count(cj_db *db, const char *type, int dead, int64_t n) {
	cj_buf k = CJ_BUF_INIT, v = CJ_BUF_INIT;
	cj__key_finished_count(&k, type, dead);
	cj__tup_int(&v, n);
	raw_put(db, &k, v.p, v.len);
	cj__buf_free(&k);
	cj__buf_free(&v);
}

static void set_format(cj_db *db, int64_t version) {
	cj_buf k = CJ_BUF_INIT, v = CJ_BUF_INIT;
	cj__key_meta(&k, "format");
	cj__tup_int(&v, version);
	raw_put(db, &k, v.p, v.len);
	cj__buf_free(&k);
	cj__buf_free(&v);
}

/* A store written by format 1 (the healthy store's jobs with their values
 * cut back to format 1, and format 1 recorded) opens: it is converted to
 * format 2 in place, every value rewritten, and its jobs carry on. */
TEST(format1_store_converts) {
	cj_db *db = healthy();
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	CHECK_OK(cj_add(db, NULL, "u", "run", NULL, 0));
	cj_job *job;
	CHECK_OK(cj_accept(db, "u", &o, &job, NULL));
	const char *ids[][2] = {{"t", "r"}, {"t", "rr"}, {"t", "f"}, {"t", "p"},
	                        {"u", "x\n\"y"}, {"u", "run"}};
	strip_finished(db, "t", "f");
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) put_v1(db, ids[i][0], ids[i][1]);
	cj_buf k = CJ_BUF_INIT, v = CJ_BUF_INIT;
	cj__key_meta(&k, "format");
	cj__tup_int(&v, 1);
	raw_put(db, &k, v.p, v.len);
	cj_close(db);

	db = open_nomon();
	CHECK_INT(raw_format(db), CJ_FORMAT_VERSION);
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		cj_buf copy = CJ_BUF_INIT;
		cj_jv jv;
		raw_job(db, ids[i][0], ids[i][1], &copy, &jv);
		CHECK(!jv.v1);
		cj__buf_free(&copy);
	}
	CHECK_PROBLEMS(db, 0, NULL);
	/* the jobs carry on: states, data; the running one is still its
	 * processor's, at attempt 1, and finishes */
	cj_job_info info;
	CHECK_OK(cj_get_job(db, NULL, "t", "p", &info));
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_STR(info.data, "{\"a\":[1,2]}");
	CHECK_INT(info.attempt, 0);
	CHECK_STR(info.errors, "[]");
	cj_job_info_clear(&info);
	CHECK_OK(cj_get_job(db, NULL, "t", "f", &info));
	CHECK_INT(info.state, CJ_FINISHED);
	cj_job_info_clear(&info);
	CHECK_OK(cj_get_job(db, NULL, "u", "run", &info));
	CHECK_INT(info.state, CJ_RUNNING);
	CHECK_INT(info.attempt, 1);
	cj_job_info_clear(&info);
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	CHECK_OK(cj_accept(db, "u", &o, &job, NULL)); /* the converted pending one */
	CHECK_STR(cj_job_id(job), "x\n\"y");
	CHECK(cj_job_fence(job) > 0);
	cj_job_free(job);
	CHECK_PROBLEMS(db, 0, NULL);
	/* a value of format 1 in a format-2 store is reported */
	put_v1(db, "t", "f");
	CHECK_PROBLEMS(db, 1, "type \"t\" id \"f\": job value in format 1");
	cj_close(db);
	cj__buf_free(&k);
	cj__buf_free(&v);
}

/* A store written by format 2 (the healthy store and a dead job, without
 * finished entries and counts, one finished job without a finish time as
 * the conversion from format 1 left it) opens: its finished and dead jobs
 * are indexed and counted, and retention finds them. */
TEST(format2_store_converts) {
	cj_db *db = healthy();
	CHECK_OK(cj_add(db, NULL, "u", "dead", NULL, 0));
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	cj_job *job;
	CHECK_OK(cj_accept(db, "u", &o, &job, NULL)); /* "dead" before "x..." */
	CHECK_STR(cj_job_id(job), "dead");
	CHECK_OK(cj_fail(db, NULL, job, NULL));
	cj_job_free(job);
	CHECK_OK(cj_add(db, NULL, "u", "fin", NULL, 0));
	CHECK_OK(cj_accept(db, "u", &o, &job, NULL));
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	CHECK_PROBLEMS(db, 0, NULL);
	strip_finished(db, "t", "f");
	strip_finished(db, "u", "dead");
	strip_finished(db, "u", "fin");
	cj_buf copy = CJ_BUF_INIT;
	cj_jv jv;
	raw_job(db, "u", "fin", &copy, &jv);
	jv.finished_ms = 0;
	put_job(db, "u", "fin", &jv, NULL);
	cj__buf_free(&copy);
	set_format(db, 2);
	CHECK_PROBLEMS(db, 4, "type \"u\" id \"dead\": dead, but has no finished entry");
	cj_close(db);

	int64_t before = (int64_t)t_epoch() * 1000;
	db = open_nomon();
	CHECK_INT(raw_format(db), CJ_FORMAT_VERSION);
	CHECK_PROBLEMS(db, 0, NULL);
	cj_job_info info;
	CHECK_OK(cj_get_job(db, NULL, "u", "fin", &info));
	CHECK_INT(info.state, CJ_FINISHED);
	CHECK(info.finished_ms >= before); /* the time of the conversion */
	cj_job_info_clear(&info);
	/* the index finds exactly the ended jobs */
	cj_retention none = {CJ_KEEP_ALL, 0, CJ_KEEP_ALL, 0};
	uint64_t n = 0;
	CHECK_OK(cj_prune(db, NULL, &none, &n));
	CHECK_INT(n, 3);
	CHECK_RC(cj_get_job(db, NULL, "t", "f", &info), CJ_NOT_FOUND);
	CHECK_RC(cj_get_job(db, NULL, "u", "dead", &info), CJ_NOT_FOUND);
	CHECK_OK(cj_get_job(db, NULL, "t", "p", &info));
	cj_job_info_clear(&info);
	CHECK_PROBLEMS(db, 0, NULL);
	/* a store of a format after this one's is refused */
	set_format(db, CJ_FORMAT_VERSION + 1);
	cj_close(db);
	cj_db *other = NULL;
	CHECK_RC(cj_open(t_url(), NULL, &other), CJ_STORE);
	CHECK(strstr(cj_last_error(), "unknown store format version") != NULL);
}

/* ---- the counts of jobs ----------------------------------------------------- */

/* Writes n (raw bytes of vl) as the counter of (type, kind, shard). */
static void put_counter(cj_db *db, const char *type, int kind, int shard, int64_t n) {
	cj_buf k = CJ_BUF_INIT;
	uint8_t v[CJ_COUNTER_LEN];
	cj__key_counter(&k, type, kind, shard);
	cj__counter_encode(v, n);
	raw_put(db, &k, v, sizeof v);
	cj__buf_free(&k);
}

/* Deletes every counter, as a store of format 3 has none. */
static void strip_counters(cj_db *db) {
	cj_tx *tx;
	cj_buf k = CJ_BUF_INIT;
	CHECK_OK(cj_tx_begin(db, &tx));
	const char *types[] = {"t", "u", "zz"};
	for (int i = 0; i < 3; i++)
		for (int kind = 0; kind < CJ_COUNT_KINDS; kind++)
			for (int shard = 0; shard < CJ_COUNT_SHARDS; shard++) {
				cj__key_counter(&k, types[i], kind, shard);
				int rc = db->eng->del(tx->etx, CJ_SPACE_JOBS, k.p, k.len);
				CHECK(rc == CJ_OK || rc == CJ_NOT_FOUND);
			}
	CHECK_OK(cj_tx_commit(tx));
	cj__buf_free(&k);
}

/* A counter that differs from its jobs, one that does not decode and one
 * below zero are reported; the counts call refuses the one below zero. */
TEST(verify_counters) {
	cj_db *db = healthy();
	int shard = cj__count_shard(db, "p");
	cj_type_counts c;
	CHECK_OK(cj_get_type_counts(db, NULL, "t", &c));
	CHECK_INT(c.scheduled, 1);
	put_counter(db, "t", CJ_COUNT_PENDING, shard, 2);
	CHECK_PROBLEMS(db, 1, "type \"t\": pending count 2 in shard");
	put_counter(db, "t", CJ_COUNT_PENDING, shard, 1);
	CHECK_PROBLEMS(db, 0, NULL);
	/* a counter of a type without jobs */
	put_counter(db, "zz", CJ_COUNT_DEAD, 3, 1);
	CHECK_PROBLEMS(db, 1, "type \"zz\": dead count 1 in shard 3, but 0 such jobs");
	put_counter(db, "zz", CJ_COUNT_DEAD, 3, -1);
	CHECK_PROBLEMS(db, 1, "type \"zz\": dead count -1");
	CHECK_RC(cj_get_type_counts(db, NULL, "zz", &c), CJ_STORE);
	CHECK(strstr(cj_last_error(), "corrupt counter") != NULL);
	cj_buf k = CJ_BUF_INIT;
	cj__key_counter(&k, "zz", CJ_COUNT_DEAD, 3);
	raw_put(db, &k, "\x01", 1);
	CHECK_PROBLEMS(db, 1, "type \"zz\": counter of kind 3, shard 3 does not decode");
	CHECK_RC(cj_get_type_counts(db, NULL, "zz", &c), CJ_STORE);
	raw_del(db, &k);
	/* a key out of the kinds' range */
	cj__key_counter(&k, "t", CJ_COUNT_KINDS, 0);
	raw_put(db, &k, "", 0);
	CHECK_PROBLEMS(db, 1, "unknown key");
	raw_del(db, &k);
	CHECK_PROBLEMS(db, 0, NULL);
	cj__buf_free(&k);
	cj_close(db);
}

/* The calls a batch combines (group.c, combine.c) run each in a
 * transaction nested in the leader's, and their counter changes are made at
 * the leader's commit: a call that fails after its writes (a failure of the
 * store) aborts its nested transaction, and its changes of the counters go
 * with it; one whose nested transaction commits keeps them. */
TEST(counters_nested_transactions) {
	cj_db *db = healthy();
	if (!db->eng->begin_nested) {
		note("  skipped: the engine does not nest transactions\n");
		cj_close(db);
		return;
	}
	cj_type_counts before, after;
	CHECK_OK(cj_get_type_counts(db, NULL, "u", &before));
	cj_tx *tx, *sub;
	CHECK_OK(cj__tx_new(db, 1, &tx));
	CHECK_OK(cj__tx_nest(tx, &sub));
	CHECK_OK(cj_add(db, sub, "u", "kept", NULL, 0));
	CHECK_OK(cj__tx_nest_commit(sub));
	CHECK_OK(cj__tx_nest(tx, &sub)); /* written, then aborted */
	CHECK_OK(cj_add(db, sub, "u", "gone", NULL, 0));
	CHECK_OK(cj_remove(db, sub, "u", "x\n\"y"));
	cj__tx_nest_abort(sub);
	CHECK_OK(cj__tx_nest(tx, &sub));
	CHECK_OK(cj_add(db, sub, "u", "later", NULL, 4000000000));
	CHECK_OK(cj__tx_nest_commit(sub));
	CHECK_OK(cj__tx_commit(tx));
	CHECK_OK(cj_get_type_counts(db, NULL, "u", &after));
	CHECK_INT(after.pending, before.pending + 1);
	CHECK_INT(after.untimed, before.untimed + 1);
	CHECK_INT(after.scheduled, before.scheduled + 1);
	CHECK_PROBLEMS(db, 0, NULL);
	cj_close(db);
}

/* A store of format 3 (the healthy store without counters, plus a stray
 * one) opens: its counters are computed from its jobs. */
TEST(format3_store_converts) {
	cj_db *db = healthy();
	cj_type_counts before, after;
	CHECK_OK(cj_get_type_counts(db, NULL, "t", &before));
	strip_counters(db);
	put_counter(db, "t", CJ_COUNT_RUNNING, 0, 7);
	put_finished_count(db, "t", 0, 1);
	set_format(db, 3);
	/* counters are checked in a store of this format only */
	CHECK_PROBLEMS(db, 2, "format version 3 is outside 6..6");
	cj_close(db);

	db = open_nomon();
	CHECK_INT(raw_format(db), CJ_FORMAT_VERSION);
	CHECK_PROBLEMS(db, 0, NULL);
	CHECK_OK(cj_get_type_counts(db, NULL, "t", &after));
	CHECK_INT(after.running, 2);
	CHECK_INT(after.finished, 1);
	CHECK_INT(after.scheduled, 1);
	CHECK_INT(after.running, before.running);
	CHECK_INT(after.finished, before.finished);
	CHECK_INT(after.scheduled, before.scheduled);
	CHECK_OK(cj_get_type_counts(db, NULL, "u", &after));
	CHECK_INT(after.pending, 1);
	CHECK_INT(after.untimed, 1);
	cj_close(db);
}

/* A store of format 4 (the healthy store with its counters where format 4
 * kept them, in 16 shards) opens: they are counted again where this format
 * keeps them, in the engine's shards, and the old keys are gone. */
TEST(format4_store_converts) {
	cj_db *db = healthy();
	cj_type_counts before, after;
	CHECK_OK(cj_get_type_counts(db, NULL, "t", &before));
	strip_counters(db);
	cj_buf k = CJ_BUF_INIT;
	uint8_t v[CJ_COUNTER_LEN];
	const int kinds[] = {CJ_COUNT_RUNNING, CJ_COUNT_FINISHED, CJ_COUNT_PENDING};
	for (int i = 0; i < 3; i++) {
		cj__key_counter_v4_prefix(&k);
		cj__tup_str(&k, "t", 1);
		cj__tup_int(&k, kinds[i]);
		cj__tup_int(&k, 11);
		cj__counter_encode(v, 1);
		raw_put(db, &k, v, sizeof v);
	}
	set_format(db, 4);
	CHECK_PROBLEMS(db, 4, "format version 4 is outside 6..6");
	cj_close(db);

	db = open_nomon();
	CHECK_INT(raw_format(db), CJ_FORMAT_VERSION);
	CHECK_PROBLEMS(db, 0, NULL); /* no key of format 4 is left */
	CHECK_OK(cj_get_type_counts(db, NULL, "t", &after));
	CHECK_INT(after.running, 2);
	CHECK_INT(after.finished, 1);
	CHECK_INT(after.scheduled, 1);
	CHECK_INT(after.running, before.running);
	CHECK_OK(cj_get_type_counts(db, NULL, "u", &after));
	CHECK_INT(after.pending, 1);
	CHECK_INT(after.untimed, 1);
	/* and they move with the jobs */
	CHECK_OK(cj_add(db, NULL, "u", "more", NULL, 0));
	CHECK_OK(cj_get_type_counts(db, NULL, "u", &after));
	CHECK_INT(after.pending, 2);
	CHECK_PROBLEMS(db, 0, NULL);
	cj__buf_free(&k);
	cj_close(db);
}

/* A store of format 5 (the healthy store with the counts of its finished
 * index, one of them off) opens: the counts are deleted, nothing else
 * changes, and retention counts by the counters of the jobs. */
TEST(format5_store_converts) {
	cj_db *db = healthy();
	cj_type_counts before, after;
	CHECK_OK(cj_get_type_counts(db, NULL, "t", &before));
	put_finished_count(db, "t", 0, 1);
	put_finished_count(db, "u", 1, 3);
	set_format(db, 5);
	CHECK_PROBLEMS(db, 3, "a count of finished entries, which format 6 does not keep");
	cj_close(db);

	db = open_nomon();
	CHECK_INT(raw_format(db), CJ_FORMAT_VERSION);
	CHECK_PROBLEMS(db, 0, NULL);
	CHECK_OK(cj_get_type_counts(db, NULL, "t", &after));
	CHECK(memcmp(&before, &after, sizeof before) == 0);
	/* beyond none: the finished job goes, the others stay */
	cj_retention r = CJ_RETENTION_INIT;
	r.keep_max = 0;
	uint64_t removed = 9;
	CHECK_OK(cj_prune(db, "t", &r, &removed));
	CHECK_INT(removed, 1);
	CHECK_OK(cj_get_type_counts(db, NULL, "t", &after));
	CHECK_INT(after.finished, 0);
	CHECK_INT(after.running, before.running);
	CHECK_PROBLEMS(db, 0, NULL);
	cj_close(db);
}

TEST_MAIN(ENTRY(verify_healthy_store), ENTRY(verify_report_stops), ENTRY(verify_bad_keys),
          ENTRY(verify_bad_schedules),
          ENTRY(verify_bad_values), ENTRY(verify_pending_index),
          ENTRY(verify_activity_index), ENTRY(verify_cli_check), ENTRY(verify_finished_index),
          ENTRY(format1_store_converts), ENTRY(format2_store_converts),
          ENTRY(verify_counters), ENTRY(counters_nested_transactions), ENTRY(format3_store_converts),
          ENTRY(format4_store_converts),
          ENTRY(format5_store_converts))
