/*
 * Conformance: failed attempts, retry policies, dead jobs, redrive and
 * fencing tokens (include/couchjobs.h "Failed attempts, retries and dead
 * jobs", cj_job_fence()).
 *
 * Backoff is checked through the scheduled times the policy gives, read
 * after each failure, never by sleeping through them. Public API only; the
 * store comes from t_open() / t_url().
 */
#include "testutil.h"

#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

/* Accepts the job whatever its scheduled time. */
static cj_job *take_now(cj_db *db, const char *type, const char *id) {
	return take_any_id(db, type, id);
}

static cj_job_info info_of(cj_db *db, const char *type, const char *id) {
	cj_job_info info;
	CHECK_OK(cj_get_job(db, NULL, type, id, &info));
	return info;
}

/* The number of objects in a JSON array of objects (counts "attempt"). */
static int count_errors(const char *errors) {
	int n = 0;
	for (const char *p = errors; (p = strstr(p, "\"attempt\":")) != NULL; p++) n++;
	return n;
}

static cj_retry_policy policy(int64_t max, int64_t min, int64_t maxd, int64_t mult,
                              int jitter) {
	cj_retry_policy p = CJ_RETRY_POLICY_INIT;
	p.max_attempts = max;
	p.backoff_min = min;
	p.backoff_max = maxd;
	p.multiplier = mult;
	p.jitter = jitter;
	return p;
}

/* Waits for an event in state on sub. */
static void wait_state(cj_sub *sub, cj_state state, int64_t bound_ms) {
	cj_event ev = {0};
	int rc = cj_wait(&sub, 1, state, bound_ms, &ev);
	if (rc != CJ_OK)
		t_fail(__FILE__, __LINE__, "no %s event within %lld ms: %s", cj_state_name(state),
		       (long long)bound_ms, cj_err_name(rc));
	CHECK_INT(ev.state, state);
	cj_event_clear(&ev);
}

/* ---- arguments ---------------------------------------------------------- */

TEST(fail_bad_arguments) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_job *job = take_id(db, "t", "j");
	CHECK_RC(cj_fail(NULL, NULL, job, NULL), CJ_INVALID);
	CHECK_RC(cj_fail(db, NULL, NULL, NULL), CJ_INVALID);
	CHECK_RC(cj_fail(db, NULL, job, "[1]"), CJ_JSON);
	CHECK_RC(cj_fail(db, NULL, job, "{\"a\":"), CJ_JSON);
	char big[CJ_MAX_ERROR_SIZE + 16];
	memset(big, ' ', sizeof big - 1);
	big[0] = '{';
	big[sizeof big - 2] = '}';
	big[sizeof big - 1] = 0;
	CHECK_RC(cj_fail(db, NULL, job, big), CJ_TOO_LARGE);
	CHECK_INT(state_of(db, "t", "j"), CJ_RUNNING); /* nothing was written */
	CHECK_INT(cj_job_fence(NULL), 0);

	cj_retry_policy p = CJ_RETRY_POLICY_INIT, got;
	CHECK_RC(cj_set_type_policy(NULL, "t", &p), CJ_INVALID);
	CHECK_RC(cj_set_type_policy(db, "", &p), CJ_INVALID);
	CHECK_RC(cj_set_type_policy(db, "t", NULL), CJ_INVALID);
	cj_retry_policy bad[] = {policy(-1, 1, 2, 2, 0), policy(CJ_MAX_ATTEMPTS + 1, 1, 2, 2, 0),
	                         policy(3, -1, 2, 2, 0), policy(3, 5, 4, 2, 0),
	                         policy(3, 1, CJ_MAX_TYPE_TIMEOUT + 1, 2, 0),
	                         policy(3, 1, 2, 0, 0), policy(3, 1, 2, CJ_MAX_MULTIPLIER + 1, 0),
	                         policy(3, 1, 2, 2, 3), policy(3, 1, 2, 2, -1)};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_RC(cj_set_type_policy(db, "t", &bad[i]), CJ_INVALID);
		CHECK_RC(cj_set_job_policy(db, NULL, "t", "j", &bad[i]), CJ_INVALID);
	}
	CHECK_RC(cj_get_type_policy(db, "t", &got), CJ_NOT_FOUND);
	CHECK_RC(cj_get_type_policy(db, "t", NULL), CJ_INVALID);
	CHECK_RC(cj_get_type_policy(NULL, "t", &got), CJ_INVALID);
	CHECK_RC(cj_clear_type_policy(db, "t"), CJ_NOT_FOUND);
	CHECK_RC(cj_clear_type_policy(db, NULL), CJ_INVALID);
	CHECK_RC(cj_set_job_policy(db, NULL, "t", "nope", &p), CJ_NOT_FOUND);
	CHECK_RC(cj_set_job_policy(NULL, NULL, "t", "j", &p), CJ_INVALID);
	CHECK_RC(cj_set_job_policy(db, NULL, "t", "", &p), CJ_INVALID);
	CHECK_RC(cj_get_job_policy(db, NULL, "t", "j", &got), CJ_NOT_FOUND);
	CHECK_RC(cj_get_job_policy(db, NULL, "t", "j", NULL), CJ_INVALID);

	CHECK_RC(cj_retry(db, NULL, "t", "j", 0), CJ_INVALID); /* running, not dead */
	CHECK_RC(cj_retry(db, NULL, "t", "nope", 0), CJ_NOT_FOUND);
	CHECK_RC(cj_retry(NULL, NULL, "t", "j", 0), CJ_INVALID);
	CHECK_RC(cj_retry(db, NULL, "t", NULL, 0), CJ_INVALID);
	uint64_t n = 9;
	CHECK_RC(cj_retry_type(db, NULL, 0, &n), CJ_INVALID);
	CHECK_INT(n, 0);
	CHECK_RC(cj_retry_type(NULL, "t", 0, &n), CJ_INVALID);
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_RC(cj_retry_type(db, "t", 0, &n), CJ_INVALID);
	cj_tx_abort(tx);

	/* good ones round-trip */
	p = policy(3, 2, 60, 3, CJ_JITTER_FULL);
	CHECK_OK(cj_set_type_policy(db, "t", &p));
	CHECK_OK(cj_get_type_policy(db, "t", &got));
	CHECK(memcmp(&got, &p, sizeof p) == 0);
	CHECK_OK(cj_set_job_policy(db, NULL, "t", "j", &p));
	CHECK_OK(cj_get_job_policy(db, NULL, "t", "j", &got));
	CHECK(memcmp(&got, &p, sizeof p) == 0);
	CHECK_OK(cj_set_job_policy(db, NULL, "t", "j", NULL));
	CHECK_RC(cj_get_job_policy(db, NULL, "t", "j", &got), CJ_NOT_FOUND);
	CHECK_OK(cj_clear_type_policy(db, "t"));
	CHECK_RC(cj_get_type_policy(db, "t", &got), CJ_NOT_FOUND);
	CHECK_INT(state_of(db, "t", "j"), CJ_RUNNING);
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	check_store(db, NULL, NULL);
	cj_close(db);
}

/* ---- failing ------------------------------------------------------------ */

/* Without a policy a failure is final: dead at once, kept with its data
 * and the error, never handed out, listed as dead; subscribers see it; a
 * cj_add makes it new work. */
TEST(fail_default_is_dead) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"x\":1}", 0));
	cj_state st = 0;
	cj_sub *sub = sub_on_st(db, "t", "j", &st);
	cj_job *job = take_id(db, "t", "j");
	int64_t t0 = t_epoch() * 1000 - 1000;
	CHECK_OK(cj_fail(db, NULL, job, "{\"why\":\"disk full\"}"));
	wait_state(sub, CJ_DEAD, 10000);
	cj_job_info info = info_of(db, "t", "j");
	CHECK_INT(info.state, CJ_DEAD);
	CHECK_STR(info.data, "{\"x\":1}");
	CHECK_INT(info.attempt, 1);
	CHECK(info.finished_ms >= t0);
	CHECK(strstr(info.errors, "\"attempt\":1") != NULL);
	CHECK(strstr(info.errors, "\"ended\":\"failed\"") != NULL);
	CHECK(strstr(info.errors, "\"error\":{\"why\":\"disk full\"}") != NULL);
	CHECK_INT(count_errors(info.errors), 1);
	CHECK(info.errors[0] == '[');
	cj_job_info_clear(&info);
	check_empty(db, "t", CJ_SCHED_ANY, 0);
	CHECK_RC(cj_finish(db, NULL, job, NULL), CJ_HALT); /* spent */
	CHECK_RC(cj_fail(db, NULL, job, NULL), CJ_HALT);
	CHECK_INT(state_of(db, "t", "j"), CJ_DEAD);
	check_store(db, NULL, NULL);
	/* cj_add: new work, attempts reset */
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"x\":2}", 0));
	wait_state(sub, CJ_PENDING, 10000);
	info = info_of(db, "t", "j");
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_INT(info.attempt, 0);
	CHECK_INT(info.finished_ms, 0);
	cj_job_info_clear(&info);
	cj_job_free(job);
	CHECK_OK(cj_unsubscribe(sub));
	cj_close(db);
}

/* The delays between attempts follow the policy: exact without jitter,
 * within the bounds with it; after exactly N attempts the job is dead with
 * N errors. */
TEST(fail_backoff_and_max_attempts) {
	cj_db *db = open_typed("t");
	cj_retry_policy p = policy(4, 10, 25, 2, CJ_JITTER_NONE);
	CHECK_OK(cj_set_type_policy(db, "t", &p));
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	const int64_t want[] = {10, 20, 25};
	for (int i = 0; i < 3; i++) {
		cj_job *job = take_now(db, "t", "j");
		int64_t before = t_epoch();
		CHECK_OK(cj_fail(db, NULL, job, "{}"));
		int64_t after = t_epoch();
		cj_job_info info = info_of(db, "t", "j");
		CHECK_INT(info.state, CJ_PENDING);
		CHECK_INT(info.attempt, i + 1);
		CHECK(info.sched_time >= before + want[i] && info.sched_time <= after + want[i]);
		CHECK_INT(count_errors(info.errors), i + 1);
		cj_job_info_clear(&info);
		check_empty(db, "t", CJ_SCHED_NOW, 0); /* not before its time */
		cj_job_free(job);
	}
	cj_job *job = take_now(db, "t", "j");
	CHECK_OK(cj_fail(db, NULL, job, "{\"last\":true}"));
	cj_job_info info = info_of(db, "t", "j");
	CHECK_INT(info.state, CJ_DEAD);
	CHECK_INT(info.attempt, 4);
	CHECK_INT(count_errors(info.errors), 4);
	cj_job_info_clear(&info);
	cj_job_free(job);

	/* jitter: equal within [d - d/2, d], full within [0, d] */
	const int jitters[] = {CJ_JITTER_EQUAL, CJ_JITTER_FULL};
	for (int j = 0; j < 2; j++) {
		p = policy(0, 40, 100, 2, jitters[j]);
		CHECK_OK(cj_set_type_policy(db, "t", &p));
		CHECK_OK(cj_add(db, NULL, "t", "k", NULL, 0));
		int64_t d = 40;
		for (int i = 0; i < 4; i++, d = d * 2 > 100 ? 100 : d * 2) {
			job = take_now(db, "t", "k");
			int64_t before = t_epoch();
			CHECK_OK(cj_fail(db, NULL, job, NULL));
			int64_t after = t_epoch();
			cj_job_free(job);
			info = info_of(db, "t", "k");
			int64_t lo = jitters[j] == CJ_JITTER_EQUAL ? d - d / 2 : 0;
			/* a drawn delay of 0 (full jitter: 1 in d + 1) leaves the job
			 * due at once, with the time it was added with (0: none) */
			int64_t s = info.sched_time == 0 && lo == 0 ? before : info.sched_time;
			if (s < before + lo || s > after + d)
				t_fail(__FILE__, __LINE__, "attempt %d: scheduled %lld s after the "
				       "failure, want %lld..%lld", i + 1, (long long)(s - before),
				       (long long)lo, (long long)d);
			CHECK_INT(info.state, CJ_PENDING);
			cj_job_info_clear(&info);
		}
		CHECK_OK(cj_remove(db, NULL, "t", "k"));
	}
	check_store(db, NULL, NULL);
	cj_close(db);
}

/* A job keeps its last CJ_MAX_ERRORS errors; its own policy overrides its
 * type's. */
TEST(fail_errors_bounded_job_policy) {
	cj_db *db = open_typed("t");
	cj_retry_policy tp = policy(2, 0, 0, 1, CJ_JITTER_NONE);
	cj_retry_policy jp = policy(8, 0, 0, 1, CJ_JITTER_NONE);
	CHECK_OK(cj_set_type_policy(db, "t", &tp));
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	CHECK_OK(cj_set_job_policy(db, NULL, "t", "j", &jp));
	for (int i = 1; i <= 8; i++) {
		cj_job *job = take_now(db, "t", "j");
		char err[64];
		snprintf(err, sizeof err, "{\"n\":%d}", i);
		CHECK_OK(cj_fail(db, NULL, job, err));
		cj_job_free(job);
		cj_job_info info = info_of(db, "t", "j");
		CHECK_INT(info.state, i < 8 ? CJ_PENDING : CJ_DEAD);
		CHECK_INT(count_errors(info.errors), i < CJ_MAX_ERRORS ? i : CJ_MAX_ERRORS);
		CHECK(info.has_policy);
		cj_job_info_clear(&info);
	}
	cj_job_info info = info_of(db, "t", "j");
	CHECK(strstr(info.errors, "{\"n\":3}") == NULL);
	CHECK(strstr(info.errors, "{\"n\":4}") != NULL);
	CHECK(strstr(info.errors, "{\"n\":4}") < strstr(info.errors, "{\"n\":8}"));
	cj_job_info_clear(&info);
	check_store(db, NULL, NULL);
	cj_close(db);
}

/* A processor that no longer holds the job gets CJ_HALT from cj_fail and
 * writes nothing, in a transaction of its own or the caller's; a job is
 * never both finished and failed. */
TEST(fail_stale_halts) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":1}", 0));
	cj_job *old = take_id(db, "t", "j");
	CHECK_OK(cj_remove(db, NULL, "t", "j"));
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":2}", 0));
	cj_job *cur = take_id(db, "t", "j");
	CHECK(cj_job_fence(cur) > cj_job_fence(old));
	CHECK_RC(cj_fail(db, NULL, old, "{}"), CJ_HALT);
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(put_str(tx, "side", "effect"));
	CHECK_RC(cj_fail(db, tx, old, "{}"), CJ_HALT);
	CHECK_RC(cj_tx_commit(tx), CJ_HALT);
	cj_job_info info = info_of(db, "t", "j");
	CHECK_INT(info.state, CJ_RUNNING);
	CHECK_STR(info.errors, "[]");
	cj_job_info_clear(&info);
	/* finished, then failed: the failure halts */
	CHECK_OK(cj_finish(db, NULL, cur, NULL));
	CHECK_RC(cj_fail(db, NULL, cur, "{}"), CJ_HALT);
	CHECK_INT(state_of(db, "t", "j"), CJ_FINISHED);
	cj_job_free(cur);
	/* failed, then finished: the finish halts */
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cur = take_id(db, "t", "j");
	CHECK_OK(cj_fail(db, NULL, cur, "{}"));
	CHECK_RC(cj_finish(db, NULL, cur, NULL), CJ_HALT);
	CHECK_INT(state_of(db, "t", "j"), CJ_DEAD);
	cj_job_free(cur);
	cj_job_free(old);
	check_store(db, NULL, NULL);
	cj_close(db);
}

/* A job flagged for resubmission while it ran is new work: its failure
 * makes it pending, with its attempts reset, even without a policy. */
TEST(fail_resubmitted_runs_again) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_job *job = take_id(db, "t", "j");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	CHECK_OK(cj_fail(db, NULL, job, NULL));
	cj_job_info info = info_of(db, "t", "j");
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_INT(info.attempt, 0);
	cj_job_info_clear(&info);
	cj_job_free(job);
	check_store(db, NULL, NULL);
	cj_close(db);
}

/* ---- lost leases ---------------------------------------------------------- */

/* A lease lost to the activity monitor counts as an attempt that ended
 * "lost"; with the attempts used up the monitor makes the job dead. */
TEST(fail_lost_counts) {
	cj_db *db = t_open();
	CHECK_OK(cj_set_type_timeout(db, "t", 1));
	cj_retry_policy p = policy(2, 0, 0, 1, CJ_JITTER_NONE);
	CHECK_OK(cj_set_type_policy(db, "t", &p));
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_job *first = take_id(db, "t", "j");
	cj_sub *sub = sub_on(db, "t", "j");
	wait_state(sub, CJ_PENDING, 10000);
	cj_job_info info = info_of(db, "t", "j");
	CHECK_INT(info.attempt, 1);
	CHECK(strstr(info.errors, "\"ended\":\"lost\"") != NULL);
	cj_job_info_clear(&info);
	CHECK_RC(cj_fail(db, NULL, first, NULL), CJ_HALT);
	cj_job *second = take_id(db, "t", "j");
	wait_state(sub, CJ_DEAD, 10000);
	info = info_of(db, "t", "j");
	CHECK_INT(info.state, CJ_DEAD);
	CHECK_INT(info.attempt, 2);
	CHECK_INT(count_errors(info.errors), 2);
	cj_job_info_clear(&info);
	CHECK_RC(cj_update(db, NULL, second, NULL), CJ_HALT);
	cj_job_free(first);
	cj_job_free(second);
	CHECK_OK(cj_unsubscribe(sub));
	check_store(db, NULL, NULL);
	cj_close(db);
}

/* ---- redrive ---------------------------------------------------------------- */

/* A dead job redriven is pending at once and runs; subscribers see dead,
 * then pending; attempts kept or reset as asked. A whole type in one call. */
TEST(fail_redrive) {
	cj_db *db = open_typed("t");
	cj_retry_policy p = policy(1, 0, 0, 1, CJ_JITTER_NONE);
	CHECK_OK(cj_set_type_policy(db, "t", &p));
	const char *ids[] = {"a", "b", "c", "d"};
	for (int i = 0; i < 4; i++) CHECK_OK(cj_add(db, NULL, "t", ids[i], NULL, 0));
	cj_sub *sub = sub_on(db, "t", "a");
	for (int i = 0; i < 3; i++) {
		cj_job *job = take_id(db, "t", ids[i]);
		CHECK_OK(cj_fail(db, NULL, job, NULL));
		cj_job_free(job);
	}
	wait_state(sub, CJ_DEAD, 10000);
	CHECK_OK(cj_retry(db, NULL, "t", "a", 1));
	wait_state(sub, CJ_PENDING, 10000);
	cj_job_info info = info_of(db, "t", "a");
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_INT(info.attempt, 1); /* kept */
	CHECK_INT(count_errors(info.errors), 1);
	cj_job_info_clear(&info);
	cj_job *job = take_id(db, "t", "a");
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	CHECK_INT(state_of(db, "t", "a"), CJ_FINISHED);
	/* the rest of the type: b and c are dead, d pending */
	uint64_t n = 0;
	CHECK_OK(cj_retry_type(db, "t", 0, &n));
	CHECK_INT(n, 2);
	info = info_of(db, "t", "b");
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_INT(info.attempt, 0); /* reset */
	cj_job_info_clear(&info);
	CHECK_INT(state_of(db, "t", "c"), CJ_PENDING);
	CHECK_INT(state_of(db, "t", "d"), CJ_PENDING);
	CHECK_OK(cj_retry_type(db, "t", 0, &n));
	CHECK_INT(n, 0);
	/* a dead job is removed as any other */
	job = take_id(db, "t", "b");
	CHECK_OK(cj_fail(db, NULL, job, NULL));
	cj_job_free(job);
	CHECK_OK(cj_remove(db, NULL, "t", "b"));
	CHECK_RC(cj_get_job_state(db, NULL, "t", "b", &(cj_state){0}), CJ_NOT_FOUND);
	CHECK_OK(cj_unsubscribe(sub));
	check_store(db, NULL, NULL);
	cj_close(db);
}

/* ---- fencing tokens ----------------------------------------------------------- */

/* Tokens strictly increase across acceptances of one job, through finish,
 * removal and re-adding, and a reopen; cj_job_info shows the last one. */
TEST(fail_fence_increases) {
	cj_db *db = open_typed("t");
	uint64_t last = 0;
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 3; i++) {
			CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
			cj_job *job = take_id(db, "t", "j");
			uint64_t f = cj_job_fence(job);
			if (f <= last)
				t_fail(__FILE__, __LINE__, "fence %llu after %llu", (unsigned long long)f,
				       (unsigned long long)last);
			last = f;
			cj_job_info info = info_of(db, "t", "j");
			CHECK(info.fence == f);
			cj_job_info_clear(&info);
			if (i == 1) CHECK_OK(cj_fail(db, NULL, job, NULL));
			else CHECK_OK(cj_finish(db, NULL, job, NULL));
			cj_job_free(job);
		}
		CHECK_OK(cj_remove(db, NULL, "t", "j"));
		cj_close(db);
		db = t_open();
	}
	/* a resumed handle reads nothing: 0 */
	cj_job *r;
	CHECK_OK(cj_job_resume("t", "j", "00000000-0000-0000-0000-000000000000", &r));
	CHECK_INT(cj_job_fence(r), 0);
	cj_job_free(r);
	cj_close(db);
}

TEST_MAIN(ENTRY(fail_bad_arguments), ENTRY(fail_default_is_dead),
          ENTRY(fail_backoff_and_max_attempts), ENTRY(fail_errors_bounded_job_policy),
          ENTRY(fail_stale_halts), ENTRY(fail_resubmitted_runs_again), ENTRY(fail_lost_counts),
          ENTRY(fail_redrive), ENTRY(fail_fence_increases))
