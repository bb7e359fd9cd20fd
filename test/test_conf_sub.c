/*
 * Conformance: subscriptions (include/couchjobs.h "Subscriptions"): cj_subscribe's
 * answer, events for every change, only_state, timeouts, several
 * subscriptions, unsubscribe, and changes made by other threads and
 * processes; waiting for a change of any job (cj_changes_wait).
 *
 * Public API only; the store comes from t_open() / t_url().
 */
#include "testutil.h"

#include <pthread.h>

/* ---- helpers ------------------------------------------------------------ */

/* The next event of sub: its state and data (NULL: expect NULL data). */
#define EXPECT_EVENT(s_arg, st_arg, d_arg)                                         \
	do {                                                                    \
		cj_sub *e_s_ = (s_arg);                                             \
		cj_event e_ = {0};                                                  \
		CHECK_OK(cj_wait(&e_s_, 1, 0, 5000, &e_));                          \
		CHECK(e_.sub == e_s_);                                              \
		if ((int)e_.state != (int)(st_arg))                                 \
			t_fail(__FILE__, __LINE__, "event state %s, want %s",           \
			       cj_state_name(e_.state), cj_state_name(st_arg));         \
		const char *e_d_ = (d_arg);                                         \
		if (e_d_) CHECK_JSON(e_.data, e_d_);                                \
		else CHECK(e_.data == NULL);                                        \
		cj_event_clear(&e_);                                                \
	} while (0)

#define EXPECT_NONE(s_arg, ms)                                                \
	do {                                                                    \
		cj_sub *n_s_ = (s_arg);                                             \
		cj_event n_ = {0};                                                  \
		CHECK_RC(cj_wait(&n_s_, 1, 0, (ms), &n_), CJ_TIMEOUT);              \
	} while (0)

/* ---- subscribe ------------------------------------------------------------- */

/* subscribe gives the current state and data of a pending or running job;
 * state and data may be left out. */
TEST(sub_current_state) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":1}", 0));
	cj_sub *sub = NULL;
	cj_state st = 0;
	char *d = NULL;
	CHECK_OK(cj_subscribe(db, "t", "j", &sub, &st, &d));
	CHECK(sub != NULL);
	CHECK_INT(st, CJ_PENDING);
	CHECK_JSON(d, "{\"v\":1}");
	cj_free(d);
	CHECK_OK(cj_unsubscribe(sub));
	cj_job *job = take_any_id(db, "t", "j");
	CHECK_OK(cj_update(db, NULL, job, "{\"v\":2}"));
	d = NULL;
	CHECK_OK(cj_subscribe(db, "t", "j", &sub, &st, &d));
	CHECK(sub != NULL);
	CHECK_INT(st, CJ_RUNNING);
	CHECK_JSON(d, "{\"v\":2}");
	cj_free(d);
	CHECK_OK(cj_unsubscribe(sub));
	CHECK_OK(cj_subscribe(db, "t", "j", &sub, NULL, NULL));
	CHECK(sub != NULL);
	CHECK_OK(cj_unsubscribe(sub));
	cj_job_free(job);
	cj_close(db);
}

/* A finished job: CJ_OK, no subscription, state finished, its data. */
TEST(sub_finished_job) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_job *job = take_any_id(db, "t", "j");
	CHECK_OK(cj_finish(db, NULL, job, "{\"out\":1}"));
	cj_job_free(job);
	cj_sub *sub = (cj_sub *)db;
	cj_state st = 0;
	char *d = NULL;
	CHECK_OK(cj_subscribe(db, "t", "j", &sub, &st, &d));
	CHECK(sub == NULL);
	CHECK_INT(st, CJ_FINISHED);
	CHECK_JSON(d, "{\"out\":1}");
	cj_free(d);
	cj_close(db);
}

/* A missing job: CJ_NOT_FOUND and no subscription. */
TEST(sub_missing_job) {
	cj_db *db = open_typed("t");
	cj_sub *sub = (cj_sub *)db;
	char *d = NULL;
	cj_state st = 0;
	CHECK_RC(cj_subscribe(db, "t", "nope", &sub, &st, &d), CJ_NOT_FOUND);
	CHECK(sub == NULL);
	CHECK(d == NULL);
	CHECK_OK(cj_add(db, NULL, "t", "gone", NULL, 0));
	CHECK_OK(cj_remove(db, NULL, "t", "gone"));
	sub = (cj_sub *)db;
	CHECK_RC(cj_subscribe(db, "t", "gone", &sub, NULL, NULL), CJ_NOT_FOUND);
	CHECK(sub == NULL);
	cj_close(db);
}

/* ---- events --------------------------------------------------------------- */

/* accept, update and finish each give an event with the job's type, id,
 * state and data; after finished nothing more comes, even if the job is
 * added again and run (while another subscription keeps the handle
 * watching). */
TEST(sub_lifecycle_events) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":0}", 0));
	CHECK_OK(cj_add(db, NULL, "t", "other", NULL, t_epoch() + 3600));
	cj_sub *live = sub_on(db, "t", "other");
	cj_sub *sub = sub_on(db, "t", "j");
	cj_job *job = take_any_id(db, "t", "j");
	cj_event ev = {0};
	CHECK_OK(cj_wait(&sub, 1, 0, 5000, &ev));
	CHECK(ev.sub == sub);
	CHECK_STR(ev.type, "t");
	CHECK_STR(ev.id, "j");
	CHECK_INT(ev.state, CJ_RUNNING);
	CHECK_JSON(ev.data, "{\"v\":0}");
	cj_event_clear(&ev);
	CHECK(ev.type == NULL && ev.id == NULL && ev.data == NULL);
	cj_event_clear(&ev);
	CHECK_OK(cj_update(db, NULL, job, "{\"v\":1}"));
	EXPECT_EVENT(sub, CJ_RUNNING, "{\"v\":1}");
	CHECK_OK(cj_finish(db, NULL, job, "{\"v\":2}"));
	EXPECT_EVENT(sub, CJ_FINISHED, "{\"v\":2}");
	EXPECT_NONE(sub, 300);
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":3}", 0));
	cj_job_free(job);
	job = take_any_id(db, "t", "j");
	CHECK_OK(cj_update(db, NULL, job, "{\"v\":4}"));
	EXPECT_NONE(sub, 1000);
	cj_sub *both[2] = {sub, live};
	cj_event ev2 = {0};
	CHECK_RC(cj_wait(both, 2, 0, 500, &ev2), CJ_TIMEOUT);
	CHECK_OK(cj_unsubscribe(sub));
	CHECK_OK(cj_unsubscribe(live));
	cj_job_free(job);
	cj_close(db);
}

/* Each update of a running job gives a running event, data or not. */
TEST(sub_each_update_event) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"i\":-1}", 0));
	cj_job *job = take_any_id(db, "t", "j");
	cj_sub *sub = sub_on(db, "t", "j");
	for (int i = 0; i < 6; i++) {
		char d[32];
		snprintf(d, sizeof d, "{\"i\":%d}", i);
		CHECK_OK(cj_update(db, NULL, job, d));
		EXPECT_EVENT(sub, CJ_RUNNING, d);
	}
	/* an update that keeps the data is still an event */
	CHECK_OK(cj_update(db, NULL, job, NULL));
	EXPECT_EVENT(sub, CJ_RUNNING, "{\"i\":5}");
	EXPECT_NONE(sub, 300);
	CHECK_OK(cj_unsubscribe(sub));
	cj_job_free(job);
	cj_close(db);
}

/* remove gives CJ_REMOVED with NULL data, for a pending and for a running
 * job; nothing comes after it. */
TEST(sub_removed_event) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "p", "{\"v\":0}", 0));
	CHECK_OK(cj_add(db, NULL, "t", "other", NULL, t_epoch() + 3600));
	cj_sub *live = sub_on(db, "t", "other"); /* keeps the handle watching */
	cj_sub *sub = sub_on(db, "t", "p");
	CHECK_OK(cj_remove(db, NULL, "t", "p"));
	cj_event ev = {0};
	CHECK_OK(cj_wait(&sub, 1, 0, 5000, &ev));
	CHECK_INT(ev.state, CJ_REMOVED);
	CHECK(ev.data == NULL);
	CHECK_STR(ev.id, "p");
	cj_event_clear(&ev);
	CHECK_OK(cj_add(db, NULL, "t", "p", NULL, 0));
	cj_job *pj = take_any_id(db, "t", "p");
	EXPECT_NONE(sub, 1000);
	CHECK_OK(cj_unsubscribe(sub));
	CHECK_OK(cj_remove(db, NULL, "t", "p"));
	cj_job_free(pj);

	CHECK_OK(cj_add(db, NULL, "t", "r", NULL, 0));
	cj_job *job = take_any_id(db, "t", "r");
	sub = sub_on(db, "t", "r");
	CHECK_OK(cj_remove(db, NULL, "t", "r"));
	EXPECT_EVENT(sub, CJ_REMOVED, NULL);
	EXPECT_NONE(sub, 300);
	CHECK_OK(cj_unsubscribe(sub));
	CHECK_OK(cj_unsubscribe(live));
	cj_job_free(job);
	cj_close(db);
}

/* finish of a job flagged for resubmission gives a pending event, and the
 * subscription goes on to the next run. */
TEST(sub_resubmitted_finish_is_pending) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":0}", 0));
	cj_job *job = take_any_id(db, "t", "j");
	cj_sub *sub = sub_on(db, "t", "j");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	CHECK_OK(cj_finish(db, NULL, job, "{\"v\":1}"));
	cj_job_free(job);
	cj_event ev = {0};
	CHECK_OK(cj_wait(&sub, 1, CJ_PENDING, 5000, &ev));
	CHECK_INT(ev.state, CJ_PENDING);
	CHECK_JSON(ev.data, "{\"v\":1}");
	cj_event_clear(&ev);
	job = take_any_id(db, "t", "j");
	EXPECT_EVENT(sub, CJ_RUNNING, "{\"v\":1}");
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	EXPECT_EVENT(sub, CJ_FINISHED, "{\"v\":1}");
	CHECK_OK(cj_unsubscribe(sub));
	cj_job_free(job);
	cj_close(db);
}

/* only_state: events in other states are consumed and skipped. */
TEST(sub_only_state) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "a", NULL, 0));
	cj_sub *sub = sub_on(db, "t", "a");
	cj_job *job = take_any_id(db, "t", "a");
	CHECK_OK(cj_update(db, NULL, job, "{\"v\":1}"));
	CHECK_OK(cj_update(db, NULL, job, "{\"v\":2}"));
	CHECK_OK(cj_finish(db, NULL, job, "{\"v\":3}"));
	cj_job_free(job);
	cj_event ev = {0};
	CHECK_OK(cj_wait(&sub, 1, CJ_FINISHED, 5000, &ev));
	CHECK_INT(ev.state, CJ_FINISHED);
	CHECK_JSON(ev.data, "{\"v\":3}");
	cj_event_clear(&ev);
	EXPECT_NONE(sub, 300);
	CHECK_OK(cj_unsubscribe(sub));

	/* waiting for a state that never comes: the others are consumed */
	CHECK_OK(cj_add(db, NULL, "t", "b", NULL, 0));
	sub = sub_on(db, "t", "b");
	job = take_any_id(db, "t", "b");
	CHECK_OK(cj_update(db, NULL, job, NULL));
	CHECK_RC(cj_wait(&sub, 1, CJ_PENDING, 1500, &ev), CJ_TIMEOUT);
	EXPECT_NONE(sub, 0);
	/* and a new matching event still comes through afterwards */
	CHECK_OK(cj_remove(db, NULL, "t", "b"));
	CHECK_OK(cj_wait(&sub, 1, CJ_REMOVED, 5000, &ev));
	CHECK_INT(ev.state, CJ_REMOVED);
	cj_event_clear(&ev);
	CHECK_OK(cj_unsubscribe(sub));
	cj_job_free(job);
	cj_close(db);
}

/* Timeouts: 0 returns CJ_TIMEOUT at once, N after about N. */
TEST(sub_wait_timeout) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_sub *sub = sub_on(db, "t", "j");
	cj_event ev = {0};
	int64_t t0 = t_now_ms();
	CHECK_RC(cj_wait(&sub, 1, 0, 0, &ev), CJ_TIMEOUT);
	CHECK(t_now_ms() - t0 < 3000);
	t0 = t_now_ms();
	CHECK_RC(cj_wait(&sub, 1, 0, 600, &ev), CJ_TIMEOUT);
	int64_t took = t_now_ms() - t0;
	if (took < 550) t_fail(__FILE__, __LINE__, "returned after %lld ms", (long long)took);
	CHECK(took < 20000);
	/* an event already there is returned with timeout 0 */
	cj_job *job = take_any_id(db, "t", "j");
	sleep_ms(200);
	int rc = CJ_TIMEOUT;
	for (int i = 0; i < 50 && rc == CJ_TIMEOUT; i++) {
		rc = cj_wait(&sub, 1, 0, 0, &ev);
		if (rc == CJ_TIMEOUT) sleep_ms(100);
	}
	CHECK_OK(rc);
	CHECK_INT(ev.state, CJ_RUNNING);
	cj_event_clear(&ev);
	CHECK_OK(cj_unsubscribe(sub));
	cj_job_free(job);
	cj_close(db);
}

/* A waiting cj_wait does not spin (the bound only catches a busy loop). */
TEST(sub_wait_does_not_spin) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_sub *sub = sub_on(db, "t", "j");
	int64_t c0 = cpu_ms();
	EXPECT_NONE(sub, 2000);
	int64_t used = cpu_ms() - c0;
	if (used > 1000) t_fail(__FILE__, __LINE__, "waiting 2 s used %lld ms of CPU", (long long)used);
	CHECK_OK(cj_unsubscribe(sub));
	cj_close(db);
}

/* Waiting on several subscriptions: each event names its subscription;
 * two subscriptions to one job both get its events. */
TEST(sub_several) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "a", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "t", "b", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "t", "c", NULL, 0));
	cj_sub *subs[4] = {sub_on(db, "t", "a"), sub_on(db, "t", "b"), sub_on(db, "t", "c"),
	                   sub_on(db, "t", "b")};
	cj_event ev = {0};
	CHECK_RC(cj_wait(subs, 4, 0, 200, &ev), CJ_TIMEOUT);
	CHECK_OK(cj_remove(db, NULL, "t", "c"));
	CHECK_OK(cj_wait(subs, 4, 0, 5000, &ev));
	CHECK(ev.sub == subs[2]);
	CHECK_STR(ev.id, "c");
	CHECK_INT(ev.state, CJ_REMOVED);
	cj_event_clear(&ev);
	CHECK_OK(cj_remove(db, NULL, "t", "b"));
	int seen1 = 0, seen3 = 0;
	for (int i = 0; i < 2; i++) {
		CHECK_OK(cj_wait(subs, 4, 0, 5000, &ev));
		CHECK_STR(ev.id, "b");
		CHECK_INT(ev.state, CJ_REMOVED);
		if (ev.sub == subs[1]) seen1++;
		else if (ev.sub == subs[3]) seen3++;
		else t_fail(__FILE__, __LINE__, "event from the wrong subscription");
		cj_event_clear(&ev);
	}
	CHECK(seen1 == 1 && seen3 == 1);
	CHECK_OK(cj_remove(db, NULL, "t", "a"));
	CHECK_OK(cj_wait(subs, 4, 0, 5000, &ev));
	CHECK(ev.sub == subs[0]);
	CHECK_STR(ev.id, "a");
	cj_event_clear(&ev);
	CHECK_RC(cj_wait(subs, 4, 0, 300, &ev), CJ_TIMEOUT);
	for (int i = 0; i < 4; i++) CHECK_OK(cj_unsubscribe(subs[i]));
	cj_close(db);
}

/* A subscription on one handle sees changes made through another handle
 * of the same process. */
TEST(sub_other_handle) {
	cj_db *db1 = open_typed("t");
	cj_db *db2 = t_open();
	CHECK_OK(cj_add(db1, NULL, "t", "j", "{\"v\":0}", 0));
	cj_sub *sub = sub_on(db2, "t", "j");
	cj_job *job = take_any_id(db1, "t", "j");
	EXPECT_EVENT(sub, CJ_RUNNING, "{\"v\":0}");
	CHECK_OK(cj_update(db1, NULL, job, "{\"v\":1}"));
	EXPECT_EVENT(sub, CJ_RUNNING, "{\"v\":1}");
	CHECK_OK(cj_finish(db1, NULL, job, NULL));
	EXPECT_EVENT(sub, CJ_FINISHED, "{\"v\":1}");
	CHECK_OK(cj_unsubscribe(sub));
	cj_job_free(job);
	cj_close(db2);
	cj_close(db1);
}

/* unsubscribe drops undelivered events; other subscriptions are
 * unaffected. */
TEST(sub_unsubscribe_drops) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_sub *s1 = sub_on(db, "t", "j"), *s2 = sub_on(db, "t", "j");
	cj_job *job = take_any_id(db, "t", "j");
	CHECK_OK(cj_update(db, NULL, job, "{\"v\":1}"));
	sleep_ms(200);
	CHECK_OK(cj_unsubscribe(s1)); /* with events waiting */
	CHECK_OK(cj_update(db, NULL, job, "{\"v\":2}"));
	cj_event ev = {0};
	int last = 0;
	while (cj_wait(&s2, 1, 0, 1000, &ev) == CJ_OK) {
		CHECK(ev.sub == s2);
		CHECK_INT(ev.state, CJ_RUNNING);
		last = json_same(ev.data, "{\"v\":2}");
		cj_event_clear(&ev);
	}
	CHECK(last);
	CHECK_OK(cj_unsubscribe(s2));
	CHECK_OK(cj_unsubscribe(NULL));
	/* a subscription dropped before anything happened */
	cj_sub *s3 = sub_on(db, "t", "j");
	CHECK_OK(cj_unsubscribe(s3));
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	cj_close(db);
}

/* A subscriber is never left with a stale state once the job stops
 * changing, however fast it changed. */
TEST(sub_no_stale_state) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_sub *sub = sub_on(db, "t", "j");
	cj_job *job = take_any_id(db, "t", "j");
	for (int i = 0; i < 40; i++) {
		char d[32];
		snprintf(d, sizeof d, "{\"i\":%d}", i);
		CHECK_OK(cj_update(db, NULL, job, d));
	}
	cj_event ev = {0};
	char last[64] = "";
	int n = 0;
	while (cj_wait(&sub, 1, 0, 1500, &ev) == CJ_OK) {
		CHECK_INT(ev.state, CJ_RUNNING);
		snprintf(last, sizeof last, "%s", ev.data ? ev.data : "(null)");
		cj_event_clear(&ev);
		n++;
	}
	CHECK(n >= 1);
	CHECK_JSON(last, "{\"i\":39}");
	CHECK_OK(cj_unsubscribe(sub));
	cj_job_free(job);
	cj_close(db);
}

struct sub_waiter {
	cj_sub *sub;
	int rc;
	cj_state state;
	int64_t done_ms;
};

static void *sub_waiter_run(void *p) {
	struct sub_waiter *w = p;
	cj_event ev = {0};
	w->rc = cj_wait(&w->sub, 1, 0, 20000, &ev);
	w->state = ev.state;
	w->done_ms = t_now_ms();
	cj_event_clear(&ev);
	return NULL;
}

/* A blocked cj_wait wakes on a change made by another thread. */
TEST(sub_woken_by_thread) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	struct sub_waiter w = {sub_on(db, "t", "j"), -100, 0, 0};
	pthread_t th;
	CHECK(pthread_create(&th, NULL, sub_waiter_run, &w) == 0);
	sleep_ms(400);
	int64_t t0 = t_now_ms();
	cj_job *job = take_any_id(db, "t", "j");
	pthread_join(th, NULL);
	CHECK_RC(w.rc, CJ_OK);
	CHECK_INT(w.state, CJ_RUNNING);
	CHECK(w.done_ms - t0 < 10000);
	CHECK_OK(cj_unsubscribe(w.sub));
	cj_job_free(job);
	cj_close(db);
}

static t_gate child_go;

static int child_processor(void *arg) {
	(void)arg;
	if (t_gate_wait(&child_go, 60000) != 0) return 2;
	cj_db *db = NULL;
	if (cj_open(t_url(), NULL, &db) != CJ_OK) return 3;
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 10000;
	cj_job *job = NULL;
	int rc = 0;
	if (cj_accept(db, "t", &o, &job, NULL) != CJ_OK) rc = 4;
	else {
		sleep_ms(300);
		if (cj_update(db, NULL, job, "{\"step\":1}") != CJ_OK) rc = 5;
		sleep_ms(300);
		if (!rc && cj_finish(db, NULL, job, "{\"step\":2}") != CJ_OK) rc = 6;
	}
	cj_job_free(job);
	cj_close(db);
	return rc;
}

/* Changes made by another process are delivered. */
TEST(sub_other_process) {
	t_gate_init(&child_go);
	int pid = t_spawn(child_processor, NULL);
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"step\":0}", 0));
	cj_sub *sub = sub_on(db, "t", "j");
	t_gate_open(&child_go);
	cj_event ev = {0};
	int got_finished = 0, events = 0;
	while (!got_finished) {
		int rc = cj_wait(&sub, 1, 0, 15000, &ev);
		if (rc != CJ_OK) t_fail(__FILE__, __LINE__, "after %d events: %s", events, cj_err_name(rc));
		events++;
		CHECK(ev.state == CJ_RUNNING || ev.state == CJ_FINISHED);
		if (ev.state == CJ_FINISHED) {
			CHECK_JSON(ev.data, "{\"step\":2}");
			got_finished = 1;
		}
		cj_event_clear(&ev);
	}
	EXPECT_NONE(sub, 300);
	CHECK_INT(t_join(pid, 30000), 0);
	CHECK_OK(cj_unsubscribe(sub));
	t_gate_close(&child_go);
	cj_close(db);
}

/* Bad calls to cj_wait: CJ_INVALID. */
TEST(sub_wait_invalid) {
	cj_db *db = open_typed("t");
	cj_db *db2 = t_open();
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_sub *a = sub_on(db, "t", "j");
	cj_sub *b = sub_on(db2, "t", "j");
	cj_event ev = {0};
	CHECK_RC(cj_wait(&a, 0, 0, 0, &ev), CJ_INVALID);
	CHECK_RC(cj_wait(NULL, 1, 0, 0, &ev), CJ_INVALID);
	CHECK_RC(cj_wait(&a, 1, 0, 0, NULL), CJ_INVALID);
	cj_sub *with_null[2] = {a, NULL};
	CHECK_RC(cj_wait(with_null, 2, 0, 0, &ev), CJ_INVALID);
	CHECK_RC(cj_wait(&a, 1, 99, 0, &ev), CJ_INVALID);
	CHECK_RC(cj_wait(&a, 1, -1, 0, &ev), CJ_INVALID);
	cj_sub *mixed[2] = {a, b};
	CHECK_RC(cj_wait(mixed, 2, 0, 0, &ev), CJ_INVALID);
	/* every state name is a valid only_state */
	CHECK_RC(cj_wait(&a, 1, CJ_PENDING, 0, &ev), CJ_TIMEOUT);
	CHECK_RC(cj_wait(&a, 1, CJ_RUNNING, 0, &ev), CJ_TIMEOUT);
	CHECK_RC(cj_wait(&a, 1, CJ_FINISHED, 0, &ev), CJ_TIMEOUT);
	CHECK_RC(cj_wait(&a, 1, CJ_REMOVED, 0, &ev), CJ_TIMEOUT);
	CHECK_OK(cj_unsubscribe(a));
	CHECK_OK(cj_unsubscribe(b));
	cj_close(db2);
	cj_close(db);
}

/* ---- cj_changes_token / cj_changes_wait ------------------------------------ */

static int child_remove(void *arg) {
	(void)arg;
	if (t_gate_wait(&child_go, 60000) != 0) return 2;
	cj_db *db = open_nomon();
	sleep_ms(200); /* the parent is asleep in its wait by now, most likely */
	int rc = cj_remove(db, NULL, "t", "j") == CJ_OK ? 0 : 4;
	cj_close(db);
	return rc;
}

/* A change of any job, by this process or another, ends a wait with a
 * token taken before it; a change before the wait ends it at once; a quiet
 * store lets it time out. */
TEST(changes_wait) {
	/* the child is forked before this process opens the store */
	t_gate_init(&child_go);
	int pid = t_spawn(child_remove, NULL);
	cj_db *db = open_typed("t");
	uint64_t tok;
	/* a quiet store: the wait times out (on PostgreSQL the first watch
	 * starts the listener, whose start may end one wait early) */
	int rc = CJ_OK;
	for (int i = 0; i < 3 && rc == CJ_OK; i++) {
		CHECK_OK(cj_changes_token(db, &tok));
		int64_t t0 = t_now_ms();
		rc = cj_changes_wait(db, tok, 300, NULL);
		if (rc == CJ_TIMEOUT) CHECK(t_now_ms() - t0 >= 290);
	}
	CHECK_RC(rc, CJ_TIMEOUT);
	CHECK_RC(cj_changes_wait(db, tok, 0, NULL), CJ_TIMEOUT);
	/* a commit after the token, before the wait */
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	CHECK_OK(cj_changes_wait(db, tok, 0, NULL));
	CHECK_OK(cj_changes_wait(db, tok, 5000, NULL));
	/* another process's commit wakes a waiting thread */
	CHECK_OK(cj_changes_token(db, &tok));
	t_gate_open(&child_go);
	CHECK_OK(cj_changes_wait(db, tok, 15000, NULL));
	CHECK_INT(t_join(pid, 30000), 0);
	t_gate_close(&child_go);
	cj_state st;
	CHECK_RC(cj_get_job_state(db, NULL, "t", "j", &st), CJ_NOT_FOUND);
	cj_close(db);
}

struct fire_arg {
	cj_cancel *c;
	int delay_ms;
};

static void *fire_later(void *arg) {
	struct fire_arg *f = arg;
	sleep_ms(f->delay_ms);
	cj_cancel_fire(f->c);
	return NULL;
}

/* A cancellation ends the wait at once, fired before or during it; bad
 * arguments are CJ_INVALID. */
TEST(changes_wait_cancel_and_invalid) {
	cj_db *db = open_typed("t");
	uint64_t tok;
	cj_cancel *c;
	CHECK_OK(cj_cancel_new(&c));
	CHECK_OK(cj_changes_token(db, &tok));
	struct fire_arg f = {c, 200};
	pthread_t th;
	CHECK(pthread_create(&th, NULL, fire_later, &f) == 0);
	int64_t t0 = t_now_ms();
	int rc;
	/* (on PostgreSQL the listener's start may end a wait early) */
	while ((rc = cj_changes_wait(db, tok, -1, c)) == CJ_OK) CHECK_OK(cj_changes_token(db, &tok));
	CHECK_RC(rc, CJ_CANCELED);
	CHECK(t_now_ms() - t0 < 10000);
	pthread_join(th, NULL);
	CHECK_RC(cj_changes_wait(db, tok, -1, c), CJ_CANCELED); /* sticky */
	cj_cancel_free(c);
	CHECK_RC(cj_changes_token(NULL, &tok), CJ_INVALID);
	CHECK_RC(cj_changes_token(db, NULL), CJ_INVALID);
	CHECK_RC(cj_changes_wait(NULL, tok, 0, NULL), CJ_INVALID);
	CHECK_RC(cj_changes_wait(db, tok, -2, NULL), CJ_INVALID);
	cj_close(db);
}

TEST_MAIN(ENTRY(sub_current_state), ENTRY(sub_finished_job), ENTRY(sub_missing_job),
          ENTRY(sub_lifecycle_events), ENTRY(sub_each_update_event),
          ENTRY(sub_removed_event), ENTRY(sub_resubmitted_finish_is_pending),
          ENTRY(sub_only_state), ENTRY(sub_wait_timeout),
          ENTRY(sub_wait_does_not_spin), ENTRY(sub_several),
          ENTRY(sub_other_handle), ENTRY(sub_unsubscribe_drops), ENTRY(sub_no_stale_state),
          ENTRY(sub_woken_by_thread), ENTRY(sub_other_process), ENTRY(sub_wait_invalid),
          ENTRY(changes_wait), ENTRY(changes_wait_cancel_and_invalid))
