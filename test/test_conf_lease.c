/*
 * Conformance: a processor learns at once that its job is no longer its own
 * (include/couchjobs.h: cj_subscribe_lease(), cj_sub_lost(), cj_sub_fd(),
 * cj_job_wait_lost()): removed, taken back, accepted again or finished by
 * another process wakes it promptly; its own updates and other jobs'
 * changes do not; timeouts, cancellations and bad arguments.
 *
 * Public API only; the store comes from t_open() / t_url().
 */
#include "testutil.h"

#include <poll.h>
#include <pthread.h>

/* Generous: a loaded machine must not fail these (times
 * CJ_TEST_TIMEOUT_MULTIPLIER); the measured latency is printed, and bench/
 * measures it for real. A wait that was never woken would last WAIT_MS,
 * ten times longer. */
#define PROMPT_MS 2000
#define WAIT_MS 20000

/* 1 if fd is readable within ms. */
static int readable(int fd, int ms) {
	struct pollfd p = {fd, POLLIN, 0};
	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* ---- arguments ----------------------------------------------------------- */

TEST(lease_bad_arguments) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_job *job = take(db, "t");
	cj_sub *sub = (cj_sub *)db;
	CHECK_RC(cj_subscribe_lease(NULL, job, &sub), CJ_INVALID);
	CHECK(sub == NULL);
	sub = (cj_sub *)db;
	CHECK_RC(cj_subscribe_lease(db, NULL, &sub), CJ_INVALID);
	CHECK(sub == NULL);
	CHECK_RC(cj_subscribe_lease(db, job, NULL), CJ_INVALID);
	cj_lost why = CJ_LOST_FINISHED;
	CHECK_RC(cj_job_wait_lost(NULL, job, 0, NULL, &why), CJ_INVALID);
	CHECK_INT(why, CJ_LOST_NONE);
	CHECK_RC(cj_job_wait_lost(db, NULL, 0, NULL, &why), CJ_INVALID);
	CHECK_RC(cj_job_wait_lost(db, job, -2, NULL, &why), CJ_INVALID);
	int fd = 7;
	CHECK_RC(cj_sub_fd(NULL, &fd), CJ_INVALID);
	CHECK_INT(fd, -1);
	CHECK_INT(cj_sub_lost(NULL), CJ_LOST_NONE);
	/* a thread holding a transaction cannot wait on the store */
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_RC(cj_subscribe_lease(db, job, &sub), CJ_INVALID);
	CHECK_RC(cj_job_wait_lost(db, job, 0, NULL, NULL), CJ_INVALID);
	cj_tx_abort(tx);
	CHECK_OK(cj_subscribe_lease(db, job, &sub));
	CHECK_RC(cj_sub_fd(sub, NULL), CJ_INVALID);
	CHECK_OK(cj_unsubscribe(sub));
	CHECK_STR(cj_lost_name(CJ_LOST_NONE), "held");
	CHECK_STR(cj_lost_name(CJ_LOST_REMOVED), "removed");
	CHECK_STR(cj_lost_name(CJ_LOST_TAKEN_BACK), "taken back");
	CHECK_STR(cj_lost_name(CJ_LOST_REACCEPTED), "accepted again");
	CHECK_STR(cj_lost_name(CJ_LOST_FINISHED), "finished");
	CHECK_STR(cj_lost_name(99), "unknown");
	cj_job_free(job);
	cj_close(db);
}

/* ---- while the job is held ------------------------------------------------ */

/* A held job: CJ_TIMEOUT after the timeout, and at once with 0; the
 * processor's own updates deliver nothing and leave the descriptor
 * unreadable. */
TEST(lease_held_times_out) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_job *job = take(db, "t");
	cj_sub *sub = NULL;
	CHECK_OK(cj_subscribe_lease(db, job, &sub));
	CHECK(sub != NULL);
	CHECK_INT(cj_sub_lost(sub), CJ_LOST_NONE);
	int fd = -1, fd2 = -1;
	CHECK_OK(cj_sub_fd(sub, &fd));
	CHECK(fd >= 0);
	CHECK_OK(cj_sub_fd(sub, &fd2));
	CHECK_INT(fd2, fd);
	cj_lost why = CJ_LOST_REMOVED;
	CHECK_RC(cj_job_wait_lost(db, job, 0, NULL, &why), CJ_TIMEOUT);
	CHECK_INT(why, CJ_LOST_NONE);
	int64_t t0 = t_now_ms();
	CHECK_RC(cj_job_wait_lost(db, job, 300, NULL, &why), CJ_TIMEOUT);
	CHECK(t_now_ms() - t0 >= 290);
	for (int i = 0; i < 5; i++) CHECK_OK(cj_update(db, NULL, job, "{\"i\":1}"));
	CHECK(!readable(fd, 300));
	cj_event ev = {0};
	CHECK_RC(cj_wait(&sub, 1, 0, 0, &ev), CJ_TIMEOUT);
	CHECK_INT(cj_sub_lost(sub), CJ_LOST_NONE);
	/* its own finish loses it too */
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	CHECK(readable(fd, WAIT_MS));
	CHECK_INT(cj_sub_lost(sub), CJ_LOST_FINISHED);
	CHECK_OK(cj_wait(&sub, 1, 0, WAIT_MS, &ev));
	CHECK_INT(ev.state, CJ_FINISHED);
	CHECK(ev.data == NULL);
	cj_event_clear(&ev);
	CHECK(!readable(fd, 0));
	CHECK_INT(cj_sub_lost(sub), CJ_LOST_FINISHED); /* kept */
	CHECK_RC(cj_wait(&sub, 1, 0, 1000, &ev), CJ_TIMEOUT); /* ended */
	CHECK_OK(cj_unsubscribe(sub));
	cj_job_free(job);
	cj_close(db);
}

/* A job already lost: the subscription starts with its event, and
 * cj_job_wait_lost() answers at once; one accepted again under another
 * lock says so. */
TEST(lease_already_lost) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_job *job = take(db, "t");
	/* another processor's handle, from a take-back and a new acceptance:
	 * ours is stale (hand back by resubmit + finish with its own lock) */
	CHECK_OK(cj_resubmit(db, NULL, job, CJ_SCHED_KEEP, NULL));
	cj_job *same = NULL;
	CHECK_OK(cj_job_resume("t", "j", cj_job_lock(job), &same));
	CHECK_OK(cj_finish(db, NULL, same, NULL));
	cj_job_free(same);
	cj_lost why = CJ_LOST_NONE;
	CHECK_OK(cj_job_wait_lost(db, job, 0, NULL, &why));
	CHECK_INT(why, CJ_LOST_TAKEN_BACK);
	cj_job *other = take(db, "t");
	CHECK(strcmp(cj_job_lock(other), cj_job_lock(job)) != 0);
	CHECK_OK(cj_job_wait_lost(db, job, -1, NULL, &why));
	CHECK_INT(why, CJ_LOST_REACCEPTED);
	cj_sub *sub = NULL;
	CHECK_OK(cj_subscribe_lease(db, job, &sub));
	CHECK_INT(cj_sub_lost(sub), CJ_LOST_REACCEPTED);
	int fd = -1;
	CHECK_OK(cj_sub_fd(sub, &fd));
	CHECK(readable(fd, 0));
	cj_event ev = {0};
	CHECK_OK(cj_wait(&sub, 1, 0, 0, &ev));
	CHECK_INT(ev.state, CJ_RUNNING);
	CHECK_STR(ev.id, "j");
	cj_event_clear(&ev);
	CHECK(!readable(fd, 0));
	CHECK_OK(cj_unsubscribe(sub));
	/* the new holder's lease is held */
	CHECK_RC(cj_job_wait_lost(db, other, 0, NULL, &why), CJ_TIMEOUT);
	CHECK_OK(cj_remove(db, NULL, "t", "j"));
	CHECK_OK(cj_job_wait_lost(db, other, 0, NULL, &why));
	CHECK_INT(why, CJ_LOST_REMOVED);
	cj_job_free(other);
	cj_job_free(job);
	cj_close(db);
}

/* ---- cancellation ------------------------------------------------------------ */

struct fire_arg {
	cj_cancel *c;
	int64_t delay_ms;
};

static void *fire_later(void *p) {
	struct fire_arg *a = p;
	sleep_ms(a->delay_ms);
	cj_cancel_fire(a->c);
	return NULL;
}

TEST(lease_wait_cancelled) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_job *job = take(db, "t");
	cj_cancel *c = NULL;
	CHECK_OK(cj_cancel_new(&c));
	struct fire_arg a = {c, 200};
	pthread_t th;
	CHECK(pthread_create(&th, NULL, fire_later, &a) == 0);
	cj_lost why = CJ_LOST_REMOVED;
	int64_t t0 = t_now_ms();
	CHECK_RC(cj_job_wait_lost(db, job, -1, c, &why), CJ_CANCELED);
	int64_t took = t_now_ms() - t0;
	pthread_join(th, NULL);
	note("  cancelled after %lld ms (fired at 200)\n", (long long)took);
	CHECK(took < WAIT_MS);
	CHECK_INT(why, CJ_LOST_NONE);
	/* sticky: at once, even for a job that is lost */
	CHECK_RC(cj_job_wait_lost(db, job, -1, c, &why), CJ_CANCELED);
	CHECK_OK(cj_remove(db, NULL, "t", "j"));
	CHECK_RC(cj_job_wait_lost(db, job, -1, c, &why), CJ_CANCELED);
	CHECK_OK(cj_job_wait_lost(db, job, -1, NULL, &why));
	CHECK_INT(why, CJ_LOST_REMOVED);
	cj_cancel_free(c);
	cj_job_free(job);
	cj_close(db);
}

/* ---- another process takes the job away ------------------------------------ */

enum how { BY_REMOVE, BY_FINISH, BY_MONITOR };

struct other_arg {
	enum how how;
	chan ready; /* to the child: the parent waits; holds the job's lock */
	chan done;  /* to the parent: when the change committed (ms) */
};

static int other_process(void *p) {
	struct other_arg *a = p;
	char lock[40] = {0};
	chan_recv(&a->ready, lock, 37, WAIT_MS);
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = a->how != BY_MONITOR;
	cj_db *db = t_open_opts(&o);
	int64_t before = t_now_ms();
	if (a->how == BY_REMOVE) {
		CHECK_OK(cj_remove(db, NULL, "t", "j"));
	} else if (a->how == BY_FINISH) {
		cj_job *job = NULL;
		CHECK_OK(cj_job_resume("t", "j", lock, &job));
		CHECK_OK(cj_finish(db, NULL, job, "{\"by\":\"other\"}"));
		cj_job_free(job);
	} else {
		/* this handle's monitor takes the job back (type timeout 1 s) */
		cj_sub *sub = sub_on(db, "t", "j");
		cj_event ev = {0};
		CHECK_OK(cj_wait(&sub, 1, CJ_PENDING, WAIT_MS, &ev));
		cj_event_clear(&ev);
		cj_unsubscribe(sub);
	}
	chan_put(&a->done, before);
	chan_put(&a->done, t_now_ms());
	cj_close(db);
	return 0;
}

/* The parent blocks in cj_job_wait_lost() (wait) or polls the lease
 * subscription's descriptor (!wait) while another process changes the
 * job; it must wake promptly with the reason, and not before. */
static void lost_across_processes(enum how how, int wait, cj_lost want) {
	setup_type("t", how == BY_MONITOR ? 1 : 60);
	add_job("t", "j", NULL);
	struct other_arg a = {how, {{-1, -1}}, {{-1, -1}}};
	chan_init(&a.ready);
	chan_init(&a.done);
	int pid = t_spawn(other_process, &a);
	cj_db *db = open_nomon();
	cj_job *job = take(db, "t");
	cj_sub *sub = NULL;
	int fd = -1;
	if (!wait) {
		CHECK_OK(cj_subscribe_lease(db, job, &sub));
		CHECK_OK(cj_sub_fd(sub, &fd));
		CHECK(!readable(fd, 0));
	}
	chan_send(&a.ready, cj_job_lock(job), 37);
	cj_lost why = CJ_LOST_NONE;
	if (wait) {
		CHECK_OK(cj_job_wait_lost(db, job, WAIT_MS, NULL, &why));
	} else {
		CHECK(readable(fd, WAIT_MS));
		why = cj_sub_lost(sub);
	}
	int64_t woke = t_now_ms();
	int64_t before = chan_get(&a.done, WAIT_MS), after = chan_get(&a.done, WAIT_MS);
	note("  %s: woken %lld ms after the change began, %lld ms after it "
	     "returned\n", cj_lost_name(why), (long long)(woke - before),
	     (long long)(woke - after));
	CHECK(woke >= before); /* not before the change */
	CHECK(woke - after < t_bound_ms(PROMPT_MS));
	CHECK_INT(why, want);
	CHECK_RC(cj_update(db, NULL, job, NULL), CJ_HALT);
	check_exit(pid, WAIT_MS, 0);
	cj_unsubscribe(sub);
	chan_close(&a.ready);
	chan_close(&a.done);
	cj_job_free(job);
	cj_close(db);
}

TEST(lease_removed_by_other_process) { lost_across_processes(BY_REMOVE, 1, CJ_LOST_REMOVED); }
TEST(lease_removed_fd) { lost_across_processes(BY_REMOVE, 0, CJ_LOST_REMOVED); }
TEST(lease_finished_by_other_process) { lost_across_processes(BY_FINISH, 1, CJ_LOST_FINISHED); }
TEST(lease_finished_fd) { lost_across_processes(BY_FINISH, 0, CJ_LOST_FINISHED); }
TEST(lease_taken_back_by_monitor) { lost_across_processes(BY_MONITOR, 1, CJ_LOST_TAKEN_BACK); }
TEST(lease_taken_back_fd) { lost_across_processes(BY_MONITOR, 0, CJ_LOST_TAKEN_BACK); }

/* Taken back and accepted again by another process: the waiter learns it
 * (taken back, or accepted again when it looks after both). The other
 * process finishes the job only after the waiter has learnt it, so that a
 * slow waiter cannot find it finished instead. */
struct reaccept {
	t_gate go, learnt;
};

static int reaccept_process(void *p) {
	struct reaccept *r = p;
	CHECK(t_gate_wait(&r->go, WAIT_MS) == 0);
	cj_db *db = t_open(); /* its monitor takes the job back */
	cj_job *job = take_wait(db, "t", WAIT_MS, NULL);
	CHECK(t_gate_wait(&r->learnt, WAIT_MS) == 0);
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	cj_close(db);
	return 0;
}

TEST(lease_reaccepted_by_other_process) {
	setup_type("t", 1);
	add_job("t", "j", NULL);
	struct reaccept r;
	t_gate_init(&r.go);
	t_gate_init(&r.learnt);
	int pid = t_spawn(reaccept_process, &r);
	cj_db *db = open_nomon();
	cj_job *job = take(db, "t");
	t_gate_open(&r.go);
	cj_lost why = CJ_LOST_NONE;
	CHECK_OK(cj_job_wait_lost(db, job, WAIT_MS, NULL, &why));
	note("  %s\n", cj_lost_name(why));
	CHECK(why == CJ_LOST_TAKEN_BACK || why == CJ_LOST_REACCEPTED);
	t_gate_open(&r.learnt);
	check_exit(pid, WAIT_MS, 0);
	CHECK_RC(cj_finish(db, NULL, job, NULL), CJ_HALT);
	t_gate_close(&r.go);
	t_gate_close(&r.learnt);
	cj_job_free(job);
	cj_close(db);
}

/* ---- other jobs do not wake it ------------------------------------------------- */

static int unrelated_commits(void *p) {
	t_gate *go = p;
	CHECK(t_gate_wait(go, WAIT_MS) == 0);
	cj_db *db = open_nomon();
	char id[32];
	for (int i = 0; i < 100; i++) {
		snprintf(id, sizeof id, "other-%d", i);
		CHECK_OK(cj_add(db, NULL, "t", id, NULL, 0));
	}
	cj_close(db);
	return 0;
}

/* 100 commits of other jobs in another process: the descriptor stays
 * unreadable, and the notifier reads (almost) nothing: a job shares the
 * leased job's wake word 1 time in 65,536. */
TEST(lease_unrelated_jobs_do_not_wake) {
	setup_type("t", 600);
	add_job("t", "j", NULL);
	t_gate go;
	t_gate_init(&go);
	int pid = t_spawn(unrelated_commits, &go);
	cj_db *db = open_nomon();
	cj_job *job = take(db, "t");
	cj_sub *sub = NULL;
	CHECK_OK(cj_subscribe_lease(db, job, &sub));
	int fd = -1;
	CHECK_OK(cj_sub_fd(sub, &fd));
	cj_stats before, after;
	CHECK_OK(cj_db_stats(db, &before));
	t_gate_open(&go);
	check_exit(pid, 60000, 0);
	CHECK(!readable(fd, 200));
	CHECK_OK(cj_db_stats(db, &after));
	uint64_t reads = after.notifier_reads - before.notifier_reads;
	note("  100 unrelated commits: %llu notifier passes, %llu reads\n",
	     (unsigned long long)(after.notifier_passes - before.notifier_passes),
	     (unsigned long long)reads);
	CHECK(reads <= 2);
	CHECK_INT(cj_sub_lost(sub), CJ_LOST_NONE);
	/* and it is awake to its own job */
	CHECK_OK(cj_remove(db, NULL, "t", "j"));
	CHECK(readable(fd, WAIT_MS));
	CHECK_INT(cj_sub_lost(sub), CJ_LOST_REMOVED);
	cj_unsubscribe(sub);
	t_gate_close(&go);
	cj_job_free(job);
	cj_close(db);
}

/* ---- cj_sub_fd() of an ordinary subscription ------------------------------------ */

/* Readable while events wait, until the last one is taken; made late, it
 * is readable at once for events already queued. */
TEST(sub_fd_level) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_sub *sub = sub_on(db, "t", "j");
	cj_job *job = take(db, "t");
	CHECK_OK(cj_update(db, NULL, job, "{\"v\":1}"));
	/* both events (running, running) queued before the descriptor exists */
	cj_event ev = {0};
	int fd = -1;
	for (int64_t end = t_now_ms() + WAIT_MS;;) {
		CHECK_OK(cj_sub_fd(sub, &fd));
		if (readable(fd, 100)) break;
		CHECK(t_now_ms() < end);
	}
	/* take events until the update's is in (the notifier may deliver the
	 * accept's and the update's in separate passes), then what is left */
	for (int64_t end = t_now_ms() + WAIT_MS, seen = 0; !seen;) {
		CHECK(t_now_ms() < end);
		if (cj_wait(&sub, 1, 0, 100, &ev) != CJ_OK) continue;
		seen = ev.data && strstr(ev.data, "\"v\":1");
		cj_event_clear(&ev);
	}
	while (cj_wait(&sub, 1, 0, 0, &ev) == CJ_OK) cj_event_clear(&ev);
	CHECK(!readable(fd, 0));
	CHECK_OK(cj_finish(db, NULL, job, "{\"v\":2}"));
	CHECK(readable(fd, WAIT_MS));
	CHECK(readable(fd, 0)); /* level: still there */
	CHECK_OK(cj_wait(&sub, 1, 0, 0, &ev));
	CHECK_INT(ev.state, CJ_FINISHED);
	cj_event_clear(&ev);
	CHECK(!readable(fd, 0));
	CHECK_OK(cj_unsubscribe(sub));
	cj_job_free(job);
	cj_close(db);
}

TEST_MAIN(ENTRY(lease_bad_arguments), ENTRY(lease_held_times_out), ENTRY(lease_already_lost),
          ENTRY(lease_wait_cancelled), ENTRY(lease_removed_by_other_process),
          ENTRY(lease_removed_fd), ENTRY(lease_finished_by_other_process),
          ENTRY(lease_finished_fd), ENTRY(lease_taken_back_by_monitor),
          ENTRY(lease_taken_back_fd), ENTRY(lease_reaccepted_by_other_process),
          ENTRY(lease_unrelated_jobs_do_not_wake), ENTRY(sub_fd_level))
