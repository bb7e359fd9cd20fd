/*
 * Conformance: the activity monitor (include/couchjobs.h "The model",
 * cj_update()).
 *
 * Types use a 1 s timeout. A stale job must be pending again within two
 * timeouts plus one second; the cases allow 10 s, waiting on a
 * subscription rather than polling. Public API only; the store comes from
 * t_open() / t_url().
 */
#include "testutil.h"

#include <signal.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

#define REQUEUE_BOUND_MS 10000

/* Waits for a pending event on sub; fails after the bound. Returns the
 * time it took. */
static int64_t wait_pending(cj_sub *sub, int64_t bound_ms) {
	int64_t t0 = t_now_ms();
	cj_event ev = {0};
	int rc = cj_wait(&sub, 1, CJ_PENDING, bound_ms, &ev);
	if (rc != CJ_OK)
		t_fail(__FILE__, __LINE__, "no pending event within %lld ms: %s",
		       (long long)bound_ms, cj_err_name(rc));
	CHECK_INT(ev.state, CJ_PENDING);
	cj_event_clear(&ev);
	return t_now_ms() - t0;
}

/* ---- cases -------------------------------------------------------------- */

/* A job never updated is pending again in time; its old processor gets
 * CJ_HALT on update and finish and writes nothing; a type with a long
 * timeout is left alone; the next accept gets a fresh lock. */
TEST(monitor_requeues_stale) {
	cj_db *db = t_open();
	CHECK_OK(cj_set_type_timeout(db, "t", 1));
	CHECK_OK(cj_set_type_timeout(db, "slow", 60));
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":0}", 0));
	CHECK_OK(cj_add(db, NULL, "slow", "s", NULL, 0));
	cj_job *slow = take_id(db, "slow", "s");
	cj_job *old = take_id(db, "t", "j");
	CHECK_OK(cj_update(db, NULL, old, "{\"v\":1}"));
	int64_t t_update = t_now_ms();
	cj_state st = 0;
	cj_sub *sub = sub_on_st(db, "t", "j", &st);
	if (st == CJ_RUNNING) wait_pending(sub, REQUEUE_BOUND_MS);
	else CHECK_INT(st, CJ_PENDING);
	int64_t took = t_now_ms() - t_update;
	CHECK(took <= REQUEUE_BOUND_MS + 1000);
	/* not before one timeout without an update */
	if (t_now_ms() - t_update < 900)
		t_fail(__FILE__, __LINE__, "re-enqueued %lld ms after the last update",
		       (long long)(t_now_ms() - t_update));
	CHECK_INT(state_of(db, "t", "j"), CJ_PENDING);
	CHECK_RC(cj_update(db, NULL, old, "{\"v\":2}"), CJ_HALT);
	CHECK_RC(cj_finish(db, NULL, old, "{\"v\":3}"), CJ_HALT);
	CHECK_INT(state_of(db, "t", "j"), CJ_PENDING);
	check_data(db, "t", "j", "{\"v\":1}");
	/* the long-timeout type was not touched */
	CHECK_INT(state_of(db, "slow", "s"), CJ_RUNNING);
	CHECK_OK(cj_update(db, NULL, slow, NULL));
	/* run again, with a fresh lock; the old handle stays stale */
	cj_job *again = take_id(db, "t", "j");
	CHECK(strcmp(cj_job_lock(again), cj_job_lock(old)) != 0);
	CHECK_RC(cj_update(db, NULL, old, NULL), CJ_HALT);
	CHECK_OK(cj_update(db, NULL, again, "{\"v\":4}"));
	CHECK_OK(cj_finish(db, NULL, again, NULL));
	CHECK_INT(state_of(db, "t", "j"), CJ_FINISHED);
	CHECK_OK(cj_unsubscribe(sub));
	cj_job_free(again);
	cj_job_free(old);
	cj_job_free(slow);
	cj_close(db);
}

/* A job updated every 300 ms for 4 s (in transactions of its own and in
 * the caller's) is never re-enqueued. */
TEST(monitor_update_keeps_alive) {
	cj_db *db = t_open();
	CHECK_OK(cj_set_type_timeout(db, "t", 1));
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_job *job = take_id(db, "t", "j");
	cj_state st = 0;
	cj_sub *sub = sub_on_st(db, "t", "j", &st);
	CHECK_INT(st, CJ_RUNNING);
	int64_t end = t_now_ms() + 4000;
	int i = 0;
	while (t_now_ms() < end) {
		sleep_ms(300);
		char d[32];
		snprintf(d, sizeof d, "{\"i\":%d}", i);
		if (i % 2) {
			cj_tx *tx = NULL;
			CHECK_OK(cj_tx_begin(db, &tx));
			CHECK_OK(cj_update(db, tx, job, d));
			CHECK_OK(cj_tx_commit(tx));
		} else {
			CHECK_OK(cj_update(db, NULL, job, d));
		}
		i++;
	}
	CHECK_INT(state_of(db, "t", "j"), CJ_RUNNING);
	cj_event ev = {0};
	CHECK_RC(cj_wait(&sub, 1, CJ_PENDING, 0, &ev), CJ_TIMEOUT);
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	CHECK_INT(state_of(db, "t", "j"), CJ_FINISHED);
	CHECK_OK(cj_unsubscribe(sub));
	cj_job_free(job);
	cj_close(db);
}

/* Two handles with monitors on at once: a stale job comes back once, a
 * live one is left alone, and the re-run is left alone too. */
TEST(monitor_two_handles) {
	cj_db *db1 = t_open();
	cj_db *db2 = t_open();
	CHECK_OK(cj_set_type_timeout(db1, "t", 1));
	CHECK_OK(cj_add(db1, NULL, "t", "alive", NULL, 0));
	CHECK_OK(cj_add(db1, NULL, "t", "stale", NULL, 0));
	cj_job *alive = take_id(db1, "t", "alive");
	cj_job *stale = take_id(db1, "t", "stale");
	cj_state st = 0;
	cj_sub *sub = sub_on_st(db2, "t", "stale", &st);
	int64_t end = t_now_ms() + REQUEUE_BOUND_MS;
	int requeued = st == CJ_PENDING;
	while (!requeued) {
		if (t_now_ms() > end) t_fail(__FILE__, __LINE__, "stale job not re-enqueued");
		cj_event ev = {0};
		int rc = cj_wait(&sub, 1, CJ_PENDING, 300, &ev);
		if (rc == CJ_OK) {
			requeued = 1;
			cj_event_clear(&ev);
		} else {
			CHECK_RC(rc, CJ_TIMEOUT);
		}
		CHECK_OK(cj_update(db2, NULL, alive, NULL));
	}
	CHECK_OK(cj_unsubscribe(sub));
	CHECK_RC(cj_update(db1, NULL, stale, NULL), CJ_HALT);
	cj_job *rerun = take_id(db2, "t", "stale");
	CHECK(strcmp(cj_job_lock(rerun), cj_job_lock(stale)) != 0);
	CHECK_RC(cj_finish(db1, NULL, stale, "{\"stale\":true}"), CJ_HALT);
	/* both kept alive for 3 s under both monitors */
	end = t_now_ms() + 3000;
	while (t_now_ms() < end) {
		sleep_ms(300);
		CHECK_OK(cj_update(db1, NULL, alive, NULL));
		CHECK_OK(cj_update(db2, NULL, rerun, NULL));
	}
	CHECK_INT(state_of(db1, "t", "alive"), CJ_RUNNING);
	CHECK_INT(state_of(db2, "t", "stale"), CJ_RUNNING);
	CHECK_OK(cj_finish(db1, NULL, alive, NULL));
	CHECK_OK(cj_finish(db2, NULL, rerun, NULL));
	cj_job_free(alive);
	cj_job_free(stale);
	cj_job_free(rerun);
	cj_close(db2);
	cj_close(db1);
}

/* A type's timeout lowered while its jobs run is picked up by a monitor
 * already running; a job flagged for resubmission comes back pending,
 * unflagged, at the time the flag asked for. */
TEST(monitor_timeout_lowered) {
	cj_db *db = t_open();
	CHECK_OK(cj_set_type_timeout(db, "t", 3600));
	CHECK_OK(cj_add(db, NULL, "t", "a", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "t", "b", "{\"v\":0}", 0));
	cj_job *a = take_id(db, "t", "a");
	cj_job *b = take_id(db, "t", "b");
	int64_t when = t_epoch() + 3600;
	CHECK_OK(cj_add(db, NULL, "t", "b", "{\"v\":1}", when)); /* flag b */
	cj_state st = 0;
	cj_sub *sa = sub_on_st(db, "t", "a", &st);
	cj_sub *sb = sub_on_st(db, "t", "b", &st);
	CHECK_OK(cj_set_type_timeout(db, "t", 1));
	wait_pending(sa, REQUEUE_BOUND_MS);
	wait_pending(sb, REQUEUE_BOUND_MS);
	cj_job_info info = {0};
	CHECK_OK(cj_get_job(db, NULL, "t", "b", &info));
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_INT(info.resubmit, 0);
	CHECK_INT(info.sched_time, when);
	CHECK_JSON(info.data, "{\"v\":0}");
	cj_job_info_clear(&info);
	CHECK_RC(cj_update(db, NULL, a, NULL), CJ_HALT);
	CHECK_RC(cj_update(db, NULL, b, NULL), CJ_HALT);
	CHECK_OK(cj_unsubscribe(sa));
	CHECK_OK(cj_unsubscribe(sb));
	cj_job_free(a);
	cj_job_free(b);
	cj_close(db);
}

/* A handle opened with no_monitor re-enqueues nothing; a monitored handle
 * opened later does. */
TEST(monitor_no_monitor_handle) {
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = t_open_opts(&o);
	CHECK_OK(cj_set_type_timeout(db, "t", 1));
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_job *job = take_id(db, "t", "j");
	cj_state st = 0;
	cj_sub *sub = sub_on_st(db, "t", "j", &st);
	CHECK_INT(st, CJ_RUNNING);
	cj_event ev = {0};
	/* more than two timeouts plus one second */
	CHECK_RC(cj_wait(&sub, 1, CJ_PENDING, 4500, &ev), CJ_TIMEOUT);
	CHECK_INT(state_of(db, "t", "j"), CJ_RUNNING);
	/* control: a monitoring handle takes it back */
	cj_db *mon = t_open();
	wait_pending(sub, REQUEUE_BOUND_MS);
	CHECK_RC(cj_update(db, NULL, job, NULL), CJ_HALT);
	CHECK_OK(cj_unsubscribe(sub));
	cj_job_free(job);
	cj_close(mon);
	cj_close(db);
}

/* Clearing a type's timeout stops monitoring its running jobs. */
TEST(monitor_cleared_type) {
	cj_db *db = t_open();
	CHECK_OK(cj_set_type_timeout(db, "t", 1));
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_job *job = take_id(db, "t", "j");
	CHECK_OK(cj_clear_type_timeout(db, "t"));
	cj_state st = 0;
	cj_sub *sub = sub_on_st(db, "t", "j", &st);
	CHECK_INT(st, CJ_RUNNING);
	cj_event ev = {0};
	CHECK_RC(cj_wait(&sub, 1, CJ_PENDING, 4500, &ev), CJ_TIMEOUT);
	CHECK_INT(state_of(db, "t", "j"), CJ_RUNNING);
	CHECK_OK(cj_update(db, NULL, job, NULL));
	CHECK_OK(cj_unsubscribe(sub));
	cj_job_free(job);
	cj_close(db);
}

static int dying_processor(void *arg) {
	(void)arg;
	cj_db *db = NULL;
	if (cj_open(t_url(), NULL, &db) != CJ_OK) return 2;
	int rc = 0;
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 5000;
	cj_job *job = NULL;
	if (cj_set_type_timeout(db, "t", 1) != CJ_OK) rc = 3;
	else if (cj_add(db, NULL, "t", "j", "{\"from\":\"child\"}", 0) != CJ_OK) rc = 4;
	else if (cj_accept(db, "t", &o, &job, NULL) != CJ_OK) rc = 5;
	if (rc) return rc;
	kill(getpid(), SIGKILL); /* dies holding the job, without a word */
	return 6;
}

/* A processor whose process died while holding a job: another process's
 * monitor takes the job back. */
TEST(monitor_dead_process) {
	int pid = t_spawn(dying_processor, NULL);
	CHECK_INT(t_join(pid, 30000), 128 + SIGKILL);
	cj_db *db = t_open();
	cj_state st = 0;
	cj_sub *sub = sub_on_st(db, "t", "j", &st);
	if (st == CJ_RUNNING) wait_pending(sub, REQUEUE_BOUND_MS);
	else CHECK_INT(st, CJ_PENDING);
	cj_job *job = take_id(db, "t", "j");
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	CHECK_OK(cj_unsubscribe(sub));
	cj_job_free(job);
	cj_close(db);
}

/* Many stale jobs at once: the monitor takes them back in several
 * transactions (it batches), and every one of them comes back. */
TEST(monitor_many_stale_jobs) {
	enum { N = 1300 }; /* more than two of the monitor's batches */
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	o.sync = CJ_SYNC_RELAXED;
	cj_db *db = t_open_opts(&o);
	CHECK_OK(cj_set_type_timeout(db, "t", 1));
	char id[32];
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof id, "job-%05d", i);
		CHECK_OK(cj_add(db, NULL, "t", id, NULL, 0));
	}
	cj_job *held[N];
	for (int i = 0; i < N; i++) held[i] = take(db, "t");
	check_empty(db, "t", CJ_SCHED_NOW, 0);

	/* a handle with monitors on takes them all back (in the same sync
	 * mode: the store is open in this process, cj_open()) */
	o.no_monitor = 0;
	cj_db *mon = t_open_opts(&o);
	for (int i = 0; i < N; i++) {
		/* finished at once: taking them all may last longer than the
		 * timeout, and a retaken job left running would go stale again */
		cj_job *j = take_wait(db, "t", 30000, NULL);
		CHECK_OK(cj_finish(db, NULL, j, NULL));
		cj_job_free(j);
	}
	check_empty(db, "t", CJ_SCHED_NOW, 0);
	/* and each old run is told to halt */
	for (int i = 0; i < N; i++) {
		CHECK_RC(cj_update(db, NULL, held[i], NULL), CJ_HALT);
		cj_job_free(held[i]);
	}
	cj_close(mon);
	cj_close(db);
}

TEST_MAIN(ENTRY(monitor_requeues_stale), ENTRY(monitor_update_keeps_alive),
          ENTRY(monitor_two_handles), ENTRY(monitor_timeout_lowered),
          ENTRY(monitor_no_monitor_handle),
          ENTRY(monitor_cleared_type), ENTRY(monitor_dead_process),
          ENTRY(monitor_many_stale_jobs))
