/*
 * Conformance: running a job (include/couchjobs.h "Job processing"): cj_update,
 * cj_finish, cj_resubmit, cj_is_resubmitted, CJ_HALT for removed jobs and
 * stale locks, cj_job_resume and the job accessors.
 *
 * Public API only; the store comes from t_open() / t_url().
 */
#include "testutil.h"

#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

/* adds type/id with data and accepts it */
static cj_job *add_take(cj_db *db, const char *type, const char *id, const char *data) {
	CHECK_OK(cj_add(db, NULL, type, id, data, 0));
	return take_any_id(db, type, id);
}

static void get_info(cj_db *db, const char *type, const char *id, cj_job_info *info) {
	memset(info, 0, sizeof *info);
	CHECK_OK(cj_get_job(db, NULL, type, id, info));
}

/* ---- update and finish ---------------------------------------------------- */

/* update: NULL keeps the data, a string replaces it, bad JSON is CJ_JSON and
 * changes nothing; the job stays running throughout. */
TEST(process_update_data) {
	cj_db *db = open_typed("t");
	cj_job *job = add_take(db, "t", "j", "{\"v\":0}");
	CHECK_OK(cj_update(db, NULL, job, NULL));
	check_data(db, "t", "j", "{\"v\":0}");
	CHECK_OK(cj_update(db, NULL, job, "{\"v\":1}"));
	check_data(db, "t", "j", "{\"v\":1}");
	CHECK_OK(cj_update(db, NULL, job, NULL));
	check_data(db, "t", "j", "{\"v\":1}");
	CHECK_RC(cj_update(db, NULL, job, "[1,2]"), CJ_JSON);
	CHECK_RC(cj_update(db, NULL, job, "{\"v\":"), CJ_JSON);
	check_data(db, "t", "j", "{\"v\":1}");
	CHECK_INT(state_of(db, "t", "j"), CJ_RUNNING);
	for (int i = 2; i < 22; i++) {
		char d[32];
		snprintf(d, sizeof d, "{\"v\":%d}", i);
		CHECK_OK(cj_update(db, NULL, job, d));
	}
	check_data(db, "t", "j", "{\"v\":21}");
	CHECK_INT(state_of(db, "t", "j"), CJ_RUNNING);
	cj_job_free(job);
	cj_close(db);
}

/* finish: the job is finished; NULL keeps the data, a string is the final
 * data; bad JSON is CJ_JSON and leaves it running. */
TEST(process_finish) {
	cj_db *db = open_typed("t");
	cj_job *job = add_take(db, "t", "a", "{\"v\":0}");
	CHECK_OK(cj_update(db, NULL, job, "{\"v\":1}"));
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	CHECK_INT(state_of(db, "t", "a"), CJ_FINISHED);
	check_data(db, "t", "a", "{\"v\":1}");
	cj_job_free(job);

	job = add_take(db, "t", "b", "{\"v\":0}");
	CHECK_RC(cj_finish(db, NULL, job, "nope"), CJ_JSON);
	CHECK_INT(state_of(db, "t", "b"), CJ_RUNNING);
	check_data(db, "t", "b", "{\"v\":0}");
	CHECK_OK(cj_finish(db, NULL, job, "{\"result\":\"ok\"}"));
	CHECK_INT(state_of(db, "t", "b"), CJ_FINISHED);
	check_data(db, "t", "b", "{\"result\":\"ok\"}");
	cj_job_info info;
	get_info(db, "t", "b", &info);
	CHECK_INT(info.resubmit, 0);
	cj_job_info_clear(&info);
	cj_job_free(job);
	cj_close(db);
}

/* After finish the handle is spent: update and finish on it are CJ_HALT
 * and write nothing. */
TEST(process_spent_handle) {
	cj_db *db = open_typed("t");
	cj_job *job = add_take(db, "t", "j", "{\"v\":0}");
	CHECK_OK(cj_finish(db, NULL, job, "{\"v\":1}"));
	CHECK_RC(cj_update(db, NULL, job, "{\"v\":2}"), CJ_HALT);
	CHECK_RC(cj_finish(db, NULL, job, "{\"v\":3}"), CJ_HALT);
	CHECK_INT(state_of(db, "t", "j"), CJ_FINISHED);
	check_data(db, "t", "j", "{\"v\":1}");
	cj_job_free(job);
	cj_close(db);
}

/* finish of a job flagged for resubmission makes it pending again, with
 * the final data; a new accept runs it again with a clear flag. */
TEST(process_finish_resubmitted) {
	cj_db *db = open_typed("t");
	cj_job *job = add_take(db, "t", "j", "{\"v\":0}");
	CHECK_OK(cj_resubmit(db, NULL, job, CJ_SCHED_KEEP, NULL));
	CHECK_OK(cj_finish(db, NULL, job, "{\"v\":9}"));
	cj_job_free(job);
	cj_job_info info;
	get_info(db, "t", "j", &info);
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_INT(info.resubmit, 0);
	CHECK_JSON(info.data, "{\"v\":9}");
	cj_job_info_clear(&info);
	job = take_any(db, "t");
	CHECK(!cj_is_resubmitted(job));
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	CHECK_INT(state_of(db, "t", "j"), CJ_FINISHED);
	cj_job_free(job);
	cj_close(db);
}

/* ---- resubmit ---------------------------------------------------------------- */

/* running: flagged, data not replaced, scheduled time replaced; pending
 * with that time once finished. */
TEST(process_resubmit_running) {
	cj_db *db = open_typed("t");
	cj_job *job = add_take(db, "t", "j", "{\"v\":0}");
	CHECK(!cj_is_resubmitted(job));
	int64_t when = t_epoch() + 3600;
	CHECK_OK(cj_resubmit(db, NULL, job, when, "{\"v\":\"ignored\"}"));
	CHECK(cj_is_resubmitted(job));
	cj_job_info info;
	get_info(db, "t", "j", &info);
	CHECK_INT(info.state, CJ_RUNNING);
	CHECK_INT(info.resubmit, 1);
	CHECK_JSON(info.data, "{\"v\":0}");
	cj_job_info_clear(&info);
	CHECK_OK(cj_update(db, NULL, job, NULL));
	CHECK(cj_is_resubmitted(job));
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	get_info(db, "t", "j", &info);
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_INT(info.sched_time, when);
	CHECK_JSON(info.data, "{\"v\":0}");
	cj_job_info_clear(&info);
	cj_close(db);
}

/* running with CJ_SCHED_KEEP: the scheduled time stays. */
TEST(process_resubmit_running_keep) {
	cj_db *db = open_typed("t");
	int64_t when = 1000; /* in the past, so it is taken at once */
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, when));
	cj_job *job = take_any(db, "t");
	CHECK_OK(cj_resubmit(db, NULL, job, CJ_SCHED_KEEP, NULL));
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	cj_job_info info;
	get_info(db, "t", "j", &info);
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_INT(info.sched_time, when);
	cj_job_info_clear(&info);
	cj_close(db);
}

/* finished: pending again with the given data (NULL keeps it). */
TEST(process_resubmit_finished) {
	cj_db *db = open_typed("t");
	cj_job *job = add_take(db, "t", "j", "{\"v\":0}");
	CHECK_OK(cj_finish(db, NULL, job, "{\"v\":1}"));
	CHECK_OK(cj_resubmit(db, NULL, job, 0, "{\"v\":2}"));
	cj_job_info info;
	get_info(db, "t", "j", &info);
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_JSON(info.data, "{\"v\":2}");
	CHECK_INT(info.sched_time, 0);
	cj_job_info_clear(&info);
	cj_job_free(job);

	job = take_any(db, "t");
	CHECK_OK(cj_finish(db, NULL, job, "{\"v\":3}"));
	int64_t when = t_epoch() + 3600;
	CHECK_OK(cj_resubmit(db, NULL, job, when, NULL));
	get_info(db, "t", "j", &info);
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_JSON(info.data, "{\"v\":3}");
	CHECK_INT(info.sched_time, when);
	cj_job_info_clear(&info);
	cj_job_free(job);
	cj_close(db);
}

/* pending: scheduled time and data replaced. */
TEST(process_resubmit_pending) {
	cj_db *db = open_typed("t");
	cj_job *job = add_take(db, "t", "j", "{\"v\":0}");
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":1}", 0)); /* pending again */
	int64_t when = t_epoch() + 3600;
	CHECK_OK(cj_resubmit(db, NULL, job, when, "{\"v\":2}"));
	cj_job_info info;
	get_info(db, "t", "j", &info);
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_JSON(info.data, "{\"v\":2}");
	CHECK_INT(info.sched_time, when);
	cj_job_info_clear(&info);
	/* CJ_SCHED_KEEP and NULL data: nothing changes */
	CHECK_OK(cj_resubmit(db, NULL, job, CJ_SCHED_KEEP, NULL));
	get_info(db, "t", "j", &info);
	CHECK_JSON(info.data, "{\"v\":2}");
	CHECK_INT(info.sched_time, when);
	cj_job_info_clear(&info);
	cj_job_free(job);
	cj_close(db);
}

/* resubmit of a job that no longer exists is CJ_NOT_FOUND, and does not
 * bring it back. */
TEST(process_resubmit_missing) {
	cj_db *db = open_typed("t");
	cj_job *job = add_take(db, "t", "j", NULL);
	CHECK_OK(cj_remove(db, NULL, "t", "j"));
	CHECK_RC(cj_resubmit(db, NULL, job, 0, NULL), CJ_NOT_FOUND);
	CHECK_RC(cj_resubmit(db, NULL, job, CJ_SCHED_KEEP, "{\"a\":1}"), CJ_NOT_FOUND);
	cj_state st = 0;
	CHECK_RC(cj_get_job_state(db, NULL, "t", "j", &st), CJ_NOT_FOUND);
	cj_job_free(job);
	cj_close(db);
}

/* cj_is_resubmitted is as of the last accept/update/resubmit on the
 * handle: a flag set by someone else shows after the next update. */
TEST(process_is_resubmitted_refresh) {
	cj_db *db = open_typed("t");
	cj_job *job = add_take(db, "t", "j", NULL);
	CHECK(!cj_is_resubmitted(job));
	CHECK_OK(cj_update(db, NULL, job, NULL));
	CHECK(!cj_is_resubmitted(job));
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0)); /* a creator re-adds it */
	CHECK(!cj_is_resubmitted(job));
	CHECK_OK(cj_update(db, NULL, job, NULL));
	CHECK(cj_is_resubmitted(job));
	CHECK_OK(cj_update(db, NULL, job, "{\"x\":1}"));
	CHECK(cj_is_resubmitted(job));
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	CHECK_INT(state_of(db, "t", "j"), CJ_PENDING);
	/* the next run starts unflagged */
	job = take_any(db, "t");
	CHECK(!cj_is_resubmitted(job));
	CHECK_OK(cj_update(db, NULL, job, NULL));
	CHECK(!cj_is_resubmitted(job));
	cj_job_free(job);

	/* a flag set through another handle of the same run (resumed) */
	CHECK_OK(cj_add(db, NULL, "t", "k", NULL, 0));
	cj_job *a = take_any(db, "t"), *b = NULL;
	CHECK_OK(cj_job_resume(cj_job_type(a), cj_job_id(a), cj_job_lock(a), &b));
	CHECK_OK(cj_resubmit(db, NULL, b, CJ_SCHED_KEEP, NULL));
	CHECK(cj_is_resubmitted(b));
	CHECK(!cj_is_resubmitted(a));
	CHECK_OK(cj_update(db, NULL, a, NULL));
	CHECK(cj_is_resubmitted(a));
	cj_job_free(a);
	cj_job_free(b);
	cj_close(db);
}

/* ---- CJ_HALT ------------------------------------------------------------------ */

/* After remove: update and finish are CJ_HALT and write nothing, even if
 * the id is added again meanwhile. */
TEST(process_halt_after_remove) {
	cj_db *db = open_typed("t");
	cj_job *job = add_take(db, "t", "j", "{\"v\":0}");
	CHECK_OK(cj_remove(db, NULL, "t", "j"));
	CHECK_RC(cj_update(db, NULL, job, "{\"v\":1}"), CJ_HALT);
	CHECK_RC(cj_update(db, NULL, job, NULL), CJ_HALT);
	CHECK_RC(cj_finish(db, NULL, job, "{\"v\":2}"), CJ_HALT);
	cj_state st = 0;
	CHECK_RC(cj_get_job_state(db, NULL, "t", "j", &st), CJ_NOT_FOUND);
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"new\":1}", 0));
	CHECK_RC(cj_update(db, NULL, job, "{\"v\":3}"), CJ_HALT);
	CHECK_RC(cj_finish(db, NULL, job, "{\"v\":4}"), CJ_HALT);
	CHECK_INT(state_of(db, "t", "j"), CJ_PENDING);
	check_data(db, "t", "j", "{\"new\":1}");
	cj_job_free(job);
	cj_close(db);
}

/* A stale lock: removed, re-added and accepted by another handle. The old
 * processor gets CJ_HALT and cannot touch the new run. */
TEST(process_halt_stale_lock_readd) {
	cj_db *db = open_typed("t");
	cj_db *db2 = t_open();
	cj_job *a = add_take(db, "t", "j", "{\"v\":0}");
	CHECK_OK(cj_remove(db, NULL, "t", "j"));
	cj_job *b = add_take(db2, "t", "j", "{\"v\":10}");
	CHECK(strcmp(cj_job_lock(a), cj_job_lock(b)) != 0);
	CHECK_RC(cj_update(db, NULL, a, "{\"v\":1}"), CJ_HALT);
	CHECK_RC(cj_finish(db, NULL, a, "{\"v\":2}"), CJ_HALT);
	CHECK_INT(state_of(db, "t", "j"), CJ_RUNNING);
	check_data(db, "t", "j", "{\"v\":10}");
	CHECK_OK(cj_update(db2, NULL, b, "{\"v\":11}"));
	CHECK_OK(cj_finish(db2, NULL, b, NULL));
	CHECK_INT(state_of(db, "t", "j"), CJ_FINISHED);
	check_data(db, "t", "j", "{\"v\":11}");
	cj_job_free(a);
	cj_job_free(b);
	cj_close(db2);
	cj_close(db);
}

/* A stale lock: finished, re-added and accepted again by another handle. */
TEST(process_halt_stale_lock_after_finish) {
	cj_db *db = open_typed("t");
	cj_db *db2 = t_open();
	cj_job *a = add_take(db, "t", "j", "{\"v\":0}");
	char lock_a[64];
	snprintf(lock_a, sizeof lock_a, "%s", cj_job_lock(a));
	CHECK_OK(cj_finish(db, NULL, a, NULL));
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":1}", 0));
	cj_job *b = take_any(db2, "t");
	CHECK(strcmp(cj_job_lock(b), lock_a) != 0);
	CHECK_RC(cj_update(db, NULL, a, "{\"v\":2}"), CJ_HALT);
	CHECK_RC(cj_finish(db, NULL, a, "{\"v\":3}"), CJ_HALT);
	/* a handle rebuilt from the old lock is just as stale */
	cj_job *old = NULL;
	CHECK_OK(cj_job_resume("t", "j", lock_a, &old));
	CHECK_RC(cj_update(db2, NULL, old, "{\"v\":4}"), CJ_HALT);
	CHECK_RC(cj_finish(db2, NULL, old, NULL), CJ_HALT);
	cj_job_free(old);
	CHECK_INT(state_of(db, "t", "j"), CJ_RUNNING);
	check_data(db, "t", "j", "{\"v\":1}");
	CHECK_OK(cj_update(db2, NULL, b, NULL));
	cj_job_free(a);
	cj_job_free(b);
	cj_close(db2);
	cj_close(db);
}

/* A lock that was never handed out is CJ_HALT. */
TEST(process_halt_unknown_lock) {
	cj_db *db = open_typed("t");
	cj_job *real = add_take(db, "t", "j", "{\"v\":0}");
	const char *forged = strcmp(cj_job_lock(real), "00000000-0000-0000-0000-000000000000") == 0
	                         ? "11111111-1111-1111-1111-111111111111"
	                         : "00000000-0000-0000-0000-000000000000";
	cj_job *f = NULL;
	CHECK_OK(cj_job_resume("t", "j", forged, &f));
	CHECK_RC(cj_update(db, NULL, f, "{\"v\":1}"), CJ_HALT);
	CHECK_RC(cj_finish(db, NULL, f, "{\"v\":2}"), CJ_HALT);
	CHECK_INT(state_of(db, "t", "j"), CJ_RUNNING);
	check_data(db, "t", "j", "{\"v\":0}");
	CHECK_OK(cj_update(db, NULL, real, NULL));
	/* a pending job held by nobody: also CJ_HALT */
	CHECK_OK(cj_add(db, NULL, "t", "p", NULL, 0));
	cj_job *g = NULL;
	CHECK_OK(cj_job_resume("t", "p", forged, &g));
	CHECK_RC(cj_update(db, NULL, g, NULL), CJ_HALT);
	CHECK_RC(cj_finish(db, NULL, g, NULL), CJ_HALT);
	CHECK_INT(state_of(db, "t", "p"), CJ_PENDING);
	/* and a job that never existed */
	cj_job *h = NULL;
	CHECK_OK(cj_job_resume("t", "never", forged, &h));
	CHECK_RC(cj_update(db, NULL, h, NULL), CJ_HALT);
	CHECK_RC(cj_finish(db, NULL, h, NULL), CJ_HALT);
	cj_state st = 0;
	CHECK_RC(cj_get_job_state(db, NULL, "t", "never", &st), CJ_NOT_FOUND);
	cj_job_free(f);
	cj_job_free(g);
	cj_job_free(h);
	cj_job_free(real);
	cj_close(db);
}

/* ---- resume ---------------------------------------------------------------------- */

/* A resumed handle has the same strings and acts for the run; once it
 * finishes, the original handle is stale. */
TEST(process_resume_round_trip) {
	cj_db *db = open_typed("t");
	cj_job *job = add_take(db, "t", "j", "{\"v\":0}");
	cj_job *r = (cj_job *)db;
	CHECK_OK(cj_job_resume(cj_job_type(job), cj_job_id(job), cj_job_lock(job), &r));
	CHECK(r != NULL && r != job);
	CHECK_STR(cj_job_type(r), "t");
	CHECK_STR(cj_job_id(r), "j");
	CHECK_STR(cj_job_lock(r), cj_job_lock(job));
	CHECK_OK(cj_update(db, NULL, r, "{\"v\":1}"));
	check_data(db, "t", "j", "{\"v\":1}");
	CHECK_OK(cj_update(db, NULL, job, NULL)); /* same lock: still valid */
	CHECK_OK(cj_finish(db, NULL, r, "{\"v\":2}"));
	CHECK_INT(state_of(db, "t", "j"), CJ_FINISHED);
	check_data(db, "t", "j", "{\"v\":2}");
	CHECK_RC(cj_update(db, NULL, job, NULL), CJ_HALT);
	cj_job_free(r);
	cj_job_free(job);
	cj_close(db);
}

struct resume_msg {
	char type[16], id[16], lock[64];
};

static int resume_pipe[2];

static int resume_child(void *p) {
	(void)p;
	close(resume_pipe[1]);
	struct resume_msg m;
	if (read(resume_pipe[0], &m, sizeof m) != (ssize_t)sizeof m) return 2;
	cj_db *db = NULL;
	if (cj_open(t_url(), NULL, &db) != CJ_OK) return 3;
	cj_job *job = NULL;
	int rc = 0;
	if (cj_job_resume(m.type, m.id, m.lock, &job) != CJ_OK) rc = 4;
	else if (cj_update(db, NULL, job, "{\"by\":\"child\"}") != CJ_OK) rc = 5;
	else if (cj_finish(db, NULL, job, "{\"done\":true}") != CJ_OK) rc = 6;
	cj_job_free(job);
	cj_close(db);
	return rc;
}

/* A job accepted in one process is updated and finished by another that
 * holds only its three strings. */
TEST(process_resume_other_process) {
	CHECK(pipe(resume_pipe) == 0);
	int pid = t_spawn(resume_child, NULL); /* before this process opens a handle */
	close(resume_pipe[0]);
	cj_db *db = open_typed("t");
	cj_job *job = add_take(db, "t", "j", "{\"v\":0}");
	struct resume_msg m;
	memset(&m, 0, sizeof m);
	snprintf(m.type, sizeof m.type, "%s", cj_job_type(job));
	snprintf(m.id, sizeof m.id, "%s", cj_job_id(job));
	snprintf(m.lock, sizeof m.lock, "%s", cj_job_lock(job));
	CHECK(write(resume_pipe[1], &m, sizeof m) == (ssize_t)sizeof m);
	close(resume_pipe[1]);
	CHECK_INT(t_join(pid, 60000), 0);
	CHECK_INT(state_of(db, "t", "j"), CJ_FINISHED);
	check_data(db, "t", "j", "{\"done\":true}");
	/* the accepting process's own handle is now stale */
	CHECK_RC(cj_update(db, NULL, job, NULL), CJ_HALT);
	cj_job_free(job);
	cj_close(db);
}

/* Bad strings: CJ_INVALID and a NULL handle. */
TEST(process_resume_bad_lock) {
	const char *bad[] = {
		"",
		"not-a-uuid",
		"0123456789abcdef0123456789abcdef0123",  /* 36, no hyphens */
		"01234567-89ab-cdef-0123-456789abcde",   /* 35 */
		"01234567-89ab-cdef-0123-456789abcdef0", /* 37 */
		"0123456g-89ab-cdef-0123-456789abcdef",  /* not hex */
		"012345678-9ab-cdef-0123-456789abcdef",  /* hyphen misplaced */
		"01234567-89ab-cdef-0123-456789abcdef ", /* trailing space */
		" 1234567-89ab-cdef-0123-456789abcdef",  /* leading space */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cj_job *job = (cj_job *)bad;
		int rc = cj_job_resume("t", "j", bad[i], &job);
		if (rc != CJ_INVALID)
			t_fail(__FILE__, __LINE__, "resume with lock \"%s\" = %s", bad[i], cj_err_name(rc));
		CHECK(job == NULL);
	}
	cj_job *job = (cj_job *)bad;
	CHECK_RC(cj_job_resume("t", "j", NULL, &job), CJ_INVALID);
	CHECK(job == NULL);
	CHECK_RC(cj_job_resume("t", "j", "01234567-89ab-cdef-0123-456789abcdef", NULL), CJ_INVALID);
	/* the good one */
	CHECK_OK(cj_job_resume("t", "j", "01234567-89ab-cdef-0123-456789abcdef", &job));
	CHECK_STR(cj_job_lock(job), "01234567-89ab-cdef-0123-456789abcdef");
	cj_job_free(job);
}

/* The accessors: type, id and a UUID lock, valid through update and finish
 * until the handle is freed. */
TEST(process_accessors) {
	cj_db *db = open_typed("type-x");
	cj_job *job = add_take(db, "type-x", "id-y", NULL);
	const char *type = cj_job_type(job), *id = cj_job_id(job), *lock = cj_job_lock(job);
	CHECK_STR(type, "type-x");
	CHECK_STR(id, "id-y");
	CHECK(is_uuid(lock));
	char lock_copy[64];
	snprintf(lock_copy, sizeof lock_copy, "%s", lock);
	CHECK_OK(cj_update(db, NULL, job, NULL));
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	CHECK_STR(cj_job_type(job), "type-x");
	CHECK_STR(cj_job_id(job), "id-y");
	CHECK_STR(cj_job_lock(job), lock_copy);
	cj_job_free(job);
	cj_close(db);
}

TEST_MAIN(ENTRY(process_update_data), ENTRY(process_finish), ENTRY(process_spent_handle),
          ENTRY(process_finish_resubmitted), ENTRY(process_resubmit_running),
          ENTRY(process_resubmit_running_keep), ENTRY(process_resubmit_finished),
          ENTRY(process_resubmit_pending), ENTRY(process_resubmit_missing),
          ENTRY(process_is_resubmitted_refresh), ENTRY(process_halt_after_remove),
          ENTRY(process_halt_stale_lock_readd), ENTRY(process_halt_stale_lock_after_finish),
          ENTRY(process_halt_unknown_lock), ENTRY(process_resume_round_trip),
          ENTRY(process_resume_other_process), ENTRY(process_resume_bad_lock),
          ENTRY(process_accessors))
