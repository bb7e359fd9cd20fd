/*
 * Conformance: cancellations (include/couchjobs.h "Cancelling waits"):
 * cj_cancel_new/fire/fired/free, a blocked cj_accept() and a blocked
 * cj_wait() ended from another thread, the stickiness of a fired
 * cancellation, and the arguments.
 *
 * Public API only; the store comes from t_open() / t_url().
 */
#include "testutil.h"

#include <pthread.h>

#define NWAITERS 4

struct acceptor {
	cj_db *db;
	cj_cancel *cancel;
	int64_t timeout_ms;
	int rc;
	int got_job;
	int64_t done_ms;
};

static void *acceptor_run(void *p) {
	struct acceptor *a = p;
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = a->timeout_ms;
	o.cancel = a->cancel;
	cj_job *job = NULL;
	a->rc = cj_accept(a->db, "t", &o, &job, NULL);
	a->got_job = job != NULL;
	a->done_ms = t_now_ms();
	cj_job_free(job);
	return NULL;
}

/* Accepts with cancel c and a timeout of 0: the code it returns. */
static int accept_now(cj_db *db, cj_cancel *c, cj_job **job) {
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	o.cancel = c;
	return cj_accept(db, "t", &o, job, NULL);
}

/* Accepts blocked in other threads (forever, or for a minute) return
 * CJ_CANCELED promptly when the cancellation is fired, taking nothing; a
 * later accept with it returns CJ_CANCELED at once, even with a job
 * waiting, which stays pending. */
TEST(cancel_blocked_accept) {
	cj_db *db = open_typed("t");
	cj_cancel *c = NULL;
	CHECK_OK(cj_cancel_new(&c));
	CHECK(c != NULL);
	CHECK_INT(cj_cancel_fired(c), 0);
	struct acceptor a[NWAITERS];
	pthread_t th[NWAITERS];
	for (int i = 0; i < NWAITERS; i++) {
		a[i] = (struct acceptor){db, c, i % 2 ? 60000 : -1, -100, 0, 0};
		CHECK(pthread_create(&th[i], NULL, acceptor_run, &a[i]) == 0);
	}
	sleep_ms(300); /* let them block */
	int64_t t0 = t_now_ms();
	cj_cancel_fire(c);
	CHECK(cj_cancel_fired(c));
	for (int i = 0; i < NWAITERS; i++) {
		pthread_join(th[i], NULL);
		CHECK_RC(a[i].rc, CJ_CANCELED);
		CHECK(!a[i].got_job);
		note("  accept %d returned %lld ms after the fire\n", i,
		     (long long)(a[i].done_ms - t0));
		CHECK(a[i].done_ms - t0 < 10000);
	}
	/* sticky: later calls return at once, and take nothing */
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_job *job = NULL;
	CHECK_RC(accept_now(db, c, &job), CJ_CANCELED);
	CHECK(job == NULL);
	struct acceptor late = {db, c, -1, -100, 0, 0};
	acceptor_run(&late);
	CHECK_RC(late.rc, CJ_CANCELED);
	CHECK_INT(state_of(db, "t", "j"), CJ_PENDING);
	/* firing again changes nothing */
	cj_cancel_fire(c);
	CHECK(cj_cancel_fired(c));
	/* accept without it still works */
	CHECK_OK(accept_now(db, NULL, &job));
	CHECK_STR(cj_job_id(job), "j");
	cj_job_free(job);
	cj_cancel_free(c);
	cj_close(db);
}

/* A cancellation that is not fired changes nothing: the accept is woken by
 * an add (through another handle) as usual; one cancellation serves both
 * handles. */
TEST(cancel_unfired_changes_nothing) {
	cj_db *db = open_typed("t");
	cj_db *db2 = t_open();
	cj_cancel *c = NULL;
	CHECK_OK(cj_cancel_new(&c));
	struct acceptor a = {db, c, 60000, -100, 0, 0};
	pthread_t th;
	CHECK(pthread_create(&th, NULL, acceptor_run, &a) == 0);
	sleep_ms(300);
	CHECK_OK(cj_add(db2, NULL, "t", "j", NULL, 0));
	pthread_join(th, NULL);
	CHECK_RC(a.rc, CJ_OK);
	CHECK(a.got_job);
	cj_job *job = NULL;
	CHECK_RC(accept_now(db2, c, &job), CJ_NOT_FOUND);
	cj_cancel_fire(c);
	CHECK_RC(accept_now(db2, c, &job), CJ_CANCELED);
	cj_cancel_free(c);
	cj_close(db2);
	cj_close(db);
}

struct waiter {
	cj_sub *sub;
	int64_t timeout_ms;
	int rc;
	int64_t done_ms;
};

static void *waiter_run(void *p) {
	struct waiter *w = p;
	cj_event ev = {0};
	w->rc = cj_wait(&w->sub, 1, 0, w->timeout_ms, &ev);
	w->done_ms = t_now_ms();
	cj_event_clear(&ev);
	return NULL;
}

/* A cj_wait() blocked on a subscription tied to a cancellation returns
 * CJ_CANCELED promptly when it is fired, and every later wait at once; the
 * events are still there for a wait once the tie is undone. */
TEST(cancel_blocked_wait) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_cancel *c = NULL;
	CHECK_OK(cj_cancel_new(&c));
	cj_sub *s1 = sub_on(db, "t", "j"), *s2 = sub_on(db, "t", "j");
	CHECK_OK(cj_sub_set_cancel(s1, c));
	CHECK_OK(cj_sub_set_cancel(s2, c));
	struct waiter w[2] = {{s1, -1, -100, 0}, {s2, 60000, -100, 0}};
	pthread_t th[2];
	for (int i = 0; i < 2; i++) CHECK(pthread_create(&th[i], NULL, waiter_run, &w[i]) == 0);
	sleep_ms(300);
	int64_t t0 = t_now_ms();
	cj_cancel_fire(c);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		CHECK_RC(w[i].rc, CJ_CANCELED);
		CHECK(w[i].done_ms - t0 < 10000);
	}
	/* sticky, and before any event is taken */
	cj_job *job = take_any_id(db, "t", "j");
	cj_event ev = {0};
	CHECK_RC(cj_wait(&s1, 1, 0, -1, &ev), CJ_CANCELED);
	CHECK(ev.type == NULL);
	/* a wait over several subscriptions is cancelled by any of them */
	cj_sub *s3 = sub_on(db, "t", "j");
	cj_sub *both[2] = {s3, s1};
	CHECK_RC(cj_wait(both, 2, 0, -1, &ev), CJ_CANCELED);
	/* untied, the running event is delivered */
	CHECK_OK(cj_sub_set_cancel(s1, NULL));
	CHECK_OK(cj_wait(&s1, 1, 0, 10000, &ev));
	CHECK_INT(ev.state, CJ_RUNNING);
	cj_event_clear(&ev);
	/* tied to a cancellation already fired: at once */
	CHECK_OK(cj_sub_set_cancel(s3, c));
	CHECK_RC(cj_wait(&s3, 1, 0, -1, &ev), CJ_CANCELED);
	CHECK_OK(cj_unsubscribe(s3));
	CHECK_OK(cj_unsubscribe(s2)); /* still tied: unsubscribe unties it */
	CHECK_OK(cj_unsubscribe(s1));
	cj_cancel_free(c);
	cj_job_free(job);
	cj_close(db);
}

/* A subscription still tied to a cancellation when the store is closed is
 * untied by the close; the cancellation is freed after. */
TEST(cancel_tie_freed_by_close) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_cancel *c = NULL;
	CHECK_OK(cj_cancel_new(&c));
	CHECK_OK(cj_sub_set_cancel(sub_on(db, "t", "j"), c));
	cj_close(db);
	cj_cancel_fire(c); /* nothing is hooked any more */
	cj_cancel_free(c);
}

/* Arguments: NULL out-pointer, NULL cancellation, NULL subscription. */
TEST(cancel_arguments) {
	CHECK_RC(cj_cancel_new(NULL), CJ_INVALID);
	cj_cancel_fire(NULL);
	CHECK_INT(cj_cancel_fired(NULL), 0);
	cj_cancel_free(NULL);
	CHECK_RC(cj_sub_set_cancel(NULL, NULL), CJ_INVALID);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	CHECK(o.cancel == NULL);
}

TEST_MAIN(ENTRY(cancel_blocked_accept), ENTRY(cancel_unfired_changes_nothing),
          ENTRY(cancel_blocked_wait), ENTRY(cancel_tie_freed_by_close),
          ENTRY(cancel_arguments))
