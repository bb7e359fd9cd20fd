/*
 * Robustness: what the library does with hostile or mistaken input and
 * with a failing environment. Times past any sensible schedule, bad
 * UTF-8, secrets in store URLs, planted symlinks and shared directories,
 * a full file system, a read-only store, a PostgreSQL server that stops
 * answering or is down.
 *
 * Cases for every engine first; lmdb_* cases are about the embedded
 * engine's files, pg_* cases about the PostgreSQL engine (each says so and
 * passes at once on the other).
 *
 * Public API and the real cjobs binary only.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *cj(void) { return t_bin("cjobs"); }

/* ---- time ------------------------------------------------------------------ */

/* Scheduled times past CJ_MAX_SCHED_TIME (milliseconds or nanoseconds typed
 * by mistake, INT64_MAX) are refused; the latest one is taken, and an
 * acceptor with a timeout still returns in time with it in the queue. */
TEST(sched_time_limit) {
	cj_db *db = open_typed("t");
	static const int64_t bad[] = {CJ_MAX_SCHED_TIME + 1, (int64_t)1e16, INT64_MAX};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_RC(cj_add(db, NULL, "t", "far", NULL, bad[i]), CJ_INVALID);
		CHECK(strstr(cj_last_error(), "scheduled time") != NULL);
	}
	cj_state st;
	CHECK_RC(cj_get_job_state(db, NULL, "t", "far", &st), CJ_NOT_FOUND);
	CHECK_OK(cj_add(db, NULL, "t", "far", NULL, CJ_MAX_SCHED_TIME));
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 300;
	cj_job *job = NULL;
	int64_t t0 = t_now_ms();
	CHECK_RC(cj_accept(db, "t", &o, &job, NULL), CJ_NOT_FOUND);
	CHECK(t_now_ms() - t0 < 30000);
	/* a resubmission is held to the same limit */
	CHECK_OK(cj_add(db, NULL, "t", "now", NULL, 0));
	job = take(db, "t");
	CHECK_RC(cj_resubmit(db, NULL, job, INT64_MAX, NULL), CJ_INVALID);
	CHECK_OK(cj_resubmit(db, NULL, job, CJ_SCHED_KEEP, NULL));
	cj_job_free(job);
	cj_close(db);
}

/* The CLI refuses such times with one line and exit 2; `cjobs accept
 * --timeout` returns in time whatever is queued. */
TEST(cli_sched_time_limit) {
	char *out = NULL, *err = NULL;
	CHECK_INT(t_sh(NULL, NULL, "'%s' timeout t 2", cj()), 0);
	CHECK_INT(t_sh(NULL, &err, "'%s' add t far --at 10000000000000000", cj()), 2);
	CHECK(strstr(err, "--at") != NULL);
	free(err);
	CHECK_INT(t_sh(NULL, NULL, "'%s' add t far --at 9223372036854775807", cj()), 2);
	CHECK_INT(t_sh(NULL, NULL, "'%s' add t far --in 100000000000000s", cj()), 2);
	CHECK_INT(t_sh(NULL, NULL, "'%s' add t far --at %lld", cj(),
	               (long long)CJ_MAX_SCHED_TIME), 0);
	int64_t t0 = t_now_ms();
	CHECK_INT(t_sh(&out, NULL, "'%s' accept t --timeout 500", cj()), 3);
	CHECK(t_now_ms() - t0 < 30000);
	free(out);
	/* a huge timeout is a deadline far ahead, not "no deadline" */
	CHECK_INT(t_sh(NULL, NULL, "'%s' add t now", cj()), 0);
	CHECK_INT(t_sh(&out, NULL, "'%s' accept t --timeout 9223372036854775807", cj()), 0);
	free(out);
}

struct later {
	cj_db *db;
	int remove; /* remove job "j", else add it */
};

static void *later_fn(void *p) {
	struct later *a = p;
	sleep_ms(300);
	if (a->remove) cj_remove(a->db, NULL, "t", "j");
	else cj_add(a->db, NULL, "t", "j", NULL, 0);
	return NULL;
}

/* Timeouts up to INT64_MAX are deadlines: cj_accept() and cj_wait() with
 * one still get what arrives. */
TEST(huge_timeouts) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_sub *sub = sub_on(db, "t", "j");
	pthread_t th;
	struct later a = {db, 1};
	CHECK(pthread_create(&th, NULL, later_fn, &a) == 0);
	cj_event ev;
	CHECK_OK(cj_wait(&sub, 1, 0, INT64_MAX, &ev));
	CHECK_INT(ev.state, CJ_REMOVED);
	cj_event_clear(&ev);
	pthread_join(th, NULL);
	cj_unsubscribe(sub);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = INT64_MAX;
	cj_job *job = NULL;
	a.remove = 0;
	CHECK(pthread_create(&th, NULL, later_fn, &a) == 0);
	CHECK_OK(cj_accept(db, "t", &o, &job, NULL));
	pthread_join(th, NULL);
	cj_job_free(job);
	cj_close(db);
}

/* ---- UTF-8 ------------------------------------------------------------------ */

/* Types and ids must be valid UTF-8; multi-byte text is fine. */
TEST(utf8_types_and_ids) {
	cj_db *db = open_typed("t");
	static const char *const bad[] = {
		"\xff",                 /* never in UTF-8 */
		"a\x80",                /* a stray continuation byte */
		"\xc3",                 /* truncated */
		"\xe2\x82",             /* truncated */
		"\xc0\xaf",             /* overlong '/' */
		"\xe0\x80\xaf",         /* overlong '/' */
		"\xf0\x80\x80\xaf",     /* overlong '/' */
		"\xed\xa0\x80",         /* a surrogate, U+D800 */
		"\xed\xbf\xbf",         /* a surrogate, U+DFFF */
		"\xf4\x90\x80\x80",     /* U+110000 */
		"\xf8\x88\x80\x80\x80", /* a 5-byte form */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_RC(cj_add(db, NULL, "t", bad[i], NULL, 0), CJ_INVALID);
		CHECK(strstr(cj_last_error(), "UTF-8") != NULL);
		CHECK_RC(cj_set_type_timeout(db, bad[i], 10), CJ_INVALID);
		cj_state st;
		CHECK_RC(cj_get_job_state(db, NULL, "t", bad[i], &st), CJ_INVALID);
	}
	CHECK_INT(count_jobs(db, NULL), 0);
	static const char *const good[] = {"caf\xc3\xa9", "\xe2\x82\xac", "\xed\x9f\xbf",
	                                   "\xee\x80\x80", "\xf0\x9f\x98\x80",
	                                   "\xf4\x8f\xbf\xbf"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		CHECK_OK(cj_add(db, NULL, "t", good[i], NULL, 0));
		CHECK_OK(cj_set_type_timeout(db, good[i], 10));
	}
	CHECK_INT(count_jobs(db, "t"), sizeof good / sizeof good[0]);
	cj_close(db);
}

/* ---- secrets ----------------------------------------------------------------- */

TEST(url_redact) {
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"postgresql://u:SECRET@h:5/db", "postgresql://u:***@h:5/db"},
		{"postgres://u:S%40C@h/db?schema=s", "postgres://u:***@h/db?schema=s"},
		{"postgresql://u@h/db", "postgresql://u@h/db"},
		{"postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"},
		{"postgresql:///db?host=/tmp&password=SECRET&user=u",
		 "postgresql:///db?host=/tmp&password=***&user=u"},
		{"postgresql://h/db?PASSWORD=SECRET", "postgresql://h/db?PASSWORD=***"},
		{"/var/lib/jobs", "/var/lib/jobs"},
		{"lmdb:/a:b@c", "lmdb:/a:b@c"},
	};
	char out[128];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CHECK_OK(cj_url_redact(cases[i].in, out, sizeof out));
		CHECK_STR(out, cases[i].out);
	}
	/* too small: cut short, still redacted */
	CHECK_RC(cj_url_redact("postgresql://u:SECRET@host/db", out, 20), CJ_TOO_LARGE);
	CHECK_STR(out, "postgresql://u:***@");
	CHECK_RC(cj_url_redact(NULL, out, sizeof out), CJ_INVALID);
	CHECK_RC(cj_url_redact("x", NULL, 4), CJ_INVALID);
	CHECK_RC(cj_url_redact("x", out, 0), CJ_INVALID);
}

/* A store that cannot be opened is named without its password, by the
 * library and by the CLI, whatever fails (the scheme, the URL's syntax,
 * the connection). */
TEST(open_hides_password) {
	static const char *const urls[] = {
		"postgresql://u:SECRET@127.0.0.1:1/db",
		"postgresql://u:SECRET@[::1",
		"postgresql://u:SECRET@h/d?bad%zz=1",
		"postgresql://u:SEC%52ET@127.0.0.1:1/db?password=SECRET&sslmode=bogus",
		"nosuch://u:SECRET@h/db",
	};
	for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
		cj_db *db = NULL;
		CHECK(cj_open(urls[i], NULL, &db) != CJ_OK);
		if (strstr(cj_last_error(), "SECRET"))
			t_fail(__FILE__, __LINE__, "%s: %s", urls[i], cj_last_error());
		char *out = NULL, *err = NULL;
		CHECK(t_sh(&out, &err, "'%s' --db '%s' list", cj(), urls[i]) != 0);
		if (strstr(out, "SECRET") || strstr(err, "SECRET") || !strstr(err, "***"))
			t_fail(__FILE__, __LINE__, "cjobs --db %s: %s%s", urls[i], out, err);
		free(out);
		free(err);
	}
}

TEST_MAIN(ENTRY(sched_time_limit), ENTRY(cli_sched_time_limit), ENTRY(huge_timeouts),
          ENTRY(utf8_types_and_ids), ENTRY(url_redact), ENTRY(open_hides_password))
