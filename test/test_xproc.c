/*
 * Several real processes on one store: a blocked cj_accept() woken by
 * another process, idle waits that burn no CPU, a killed processor whose
 * job comes back, a stale processor halted inside its own transaction,
 * events delivered across processes, and a scheduled job waking a waiter.
 *
 * Every child opens its own cj_db after the fork; the parent never holds an
 * open handle while it forks.
 */
#include "testutil.h"

#include <signal.h>
#include <time.h>

/* ---- helpers ------------------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds: one clock for every process on the host. */
static int64_t mono_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t real_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- accept_woken_by_other_process ---------------------------------------- */

#define WAKE_ROUNDS 5

struct wake_arg {
	chan to_parent;   /* acceptor -> parent: "about to block", "woke" */
};

static int wake_acceptor(void *p) {
	struct wake_arg *a = p;
	cj_db *db = t_open();
	for (int i = 0; i < WAKE_ROUNDS; i++) {
		cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
		o.timeout_ms = 30000;
		cj_job *job = NULL;
		char *data = NULL;
		chan_put(&a->to_parent, mono_ns());
		int rc = cj_accept(db, "wake", &o, &job, &data);
		int64_t woke = mono_ns();
		CHECK_OK(rc);
		chan_put(&a->to_parent, woke);
		char id[32], want[64];
		snprintf(id, sizeof id, "w%d", i);
		snprintf(want, sizeof want, "{\"round\":%d}", i);
		CHECK_STR(cj_job_id(job), id);
		CHECK_JSON(data, want);
		CHECK_OK(cj_finish(db, NULL, job, NULL));
		cj_job_free(job);
		cj_free(data);
	}
	cj_close(db);
	return 0;
}

TEST(accept_woken_by_other_process) {
	setup_type("wake", 60);
	struct wake_arg a;
	chan_init(&a.to_parent);
	int pid = t_spawn(wake_acceptor, &a);
	cj_db *db = t_open(); /* opened after the fork */
	int64_t worst = INT64_MIN;
	for (int i = 0; i < WAKE_ROUNDS; i++) {
		int64_t blocking = chan_get(&a.to_parent, 30000);
		sleep_ms(300); /* the acceptor is waiting by now */
		char id[32], data[64];
		snprintf(id, sizeof id, "w%d", i);
		snprintf(data, sizeof data, "{\"round\":%d}", i);
		int64_t before = mono_ns();
		CHECK_OK(cj_add(db, NULL, "wake", id, data, 0));
		int64_t added = mono_ns();
		int64_t woke = chan_get(&a.to_parent, 30000);
		/* it really waited: it returned only after the add began */
		CHECK(woke > before);
		CHECK(woke - blocking >= 250 * (int64_t)1000000);
		int64_t lat = woke - added; /* may be <= 0: woke before add returned */
		note("  round %d: wake latency %.3f ms after cj_add returned "
		     "(%.3f ms after it was called)\n",
		     i, (double)lat / 1e6, (double)(woke - before) / 1e6);
		if (lat > worst) worst = lat;
		CHECK(lat < 250 * (int64_t)1000000);
	}
	note("  worst wake latency: %.3f ms\n", (double)worst / 1e6);
	check_exit(pid, 30000, 0);
	cj_close(db);
	chan_close(&a.to_parent);
}

/* ---- idle_accept_uses_no_cpu ---------------------------------------------- */

static int idle_child(void *p) {
	(void)p;
	cj_db *db = t_open(); /* with monitors: their thread counts too */
	sleep_ms(200);       /* let start-up work settle */

	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 2000;
	cj_job *job = NULL;
	int64_t c0 = cpu_us(), t0 = t_now_ms();
	CHECK_RC(cj_accept(db, "idle", &o, &job, NULL), CJ_NOT_FOUND);
	int64_t c1 = cpu_us(), t1 = t_now_ms();
	CHECK(job == NULL);
	note("  idle cj_accept: %lld ms wall, %.3f ms CPU\n", (long long)(t1 - t0),
	     (double)(c1 - c0) / 1000);
	CHECK(t1 - t0 >= 1900);
	CHECK(c1 - c0 < 100000);

	cj_state st = 0;
	cj_sub *sub = sub_on_st(db, "idle-watch", "watched", &st);
	CHECK_INT(st, CJ_PENDING);
	cj_event ev = {0};
	c0 = cpu_us();
	t0 = t_now_ms();
	CHECK_RC(cj_wait(&sub, 1, 0, 2000, &ev), CJ_TIMEOUT);
	c1 = cpu_us();
	t1 = t_now_ms();
	note("  idle cj_wait: %lld ms wall, %.3f ms CPU\n", (long long)(t1 - t0),
	     (double)(c1 - c0) / 1000);
	CHECK(t1 - t0 >= 1900);
	CHECK(c1 - c0 < 100000);
	cj_event_clear(&ev);
	CHECK_OK(cj_unsubscribe(sub));
	cj_close(db);
	return 0;
}

TEST(idle_accept_uses_no_cpu) {
	setup_type("idle", 1); /* short timeouts: the monitor is busiest */
	setup_type("idle-watch", 1);
	add_job("idle-watch", "watched", NULL);
	int pid = t_spawn(idle_child, NULL);
	check_exit(pid, 30000, 0);
}

/* ---- killed_processor_job_comes_back -------------------------------------- */

struct victim_arg {
	t_gate accepted;
	chan lock; /* the victim's lock, 36 bytes + NUL */
	const char *type;
};

/* Accepts one job without monitors, reports its lock, then stalls. */
static int victim(void *p) {
	struct victim_arg *a = p;
	cj_db *db = open_nomon();
	char *data = NULL;
	cj_job *job = take_wait(db, a->type, 10000, &data);
	CHECK_STR(cj_job_id(job), "j1");
	CHECK_JSON(data, "{\"v\":0}");
	char lock[37] = {0};
	CHECK_INT(strlen(cj_job_lock(job)), 36);
	memcpy(lock, cj_job_lock(job), 36);
	chan_send(&a->lock, lock, sizeof lock);
	t_gate_open(&a->accepted);
	stall_forever();
}

/* Starts a victim, waits until it holds j1, kills it; returns its lock. */
static void run_victim(const char *type, char lock[37]) {
	struct victim_arg a = {.type = type};
	t_gate_init(&a.accepted);
	chan_init(&a.lock);
	int pid = spawn_ready(victim, &a, &a.accepted, 20000);
	chan_recv(&a.lock, lock, 37, 5000);
	CHECK(kill(pid, SIGKILL) == 0);
	check_exit(pid, 10000, 128 + SIGKILL);
	t_gate_close(&a.accepted);
	chan_close(&a.lock);

	/* no monitor has run anywhere yet: the dead processor still holds it */
	cj_db *db = open_nomon();
	CHECK_INT(state_of(db, type, "j1"), CJ_RUNNING);
	cj_close(db);
}

/* The old processor's lock no longer works; the job ends as finished with
 * the new processor's data. */
static void check_taken_over(const char *type, const char *old_lock) {
	cj_db *db = open_nomon();
	cj_job *old = NULL;
	CHECK_OK(cj_job_resume(type, "j1", old_lock, &old));
	CHECK_RC(cj_update(db, NULL, old, "{\"by\":\"old\"}"), CJ_HALT);
	CHECK_RC(cj_finish(db, NULL, old, "{\"by\":\"old\"}"), CJ_HALT);
	cj_job_free(old);
	check_job_is(db, type, "j1", CJ_FINISHED, "{\"by\":\"new\"}");
	cj_close(db);
}

/* Accepts j1 (waiting up to 15 s), checks it is a new run, finishes it. */
static int64_t take_over(cj_db *db, const char *type, const char *old_lock) {
	char *data = NULL;
	int64_t t0 = t_now_ms();
	cj_job *job = take_wait(db, type, 15000, &data);
	int64_t waited = t_now_ms() - t0;
	CHECK_STR(cj_job_id(job), "j1");
	CHECK_JSON(data, "{\"v\":0}");
	CHECK(strcmp(cj_job_lock(job), old_lock) != 0);
	CHECK_OK(cj_update(db, NULL, job, "{\"by\":\"new\",\"step\":1}"));
	CHECK_OK(cj_finish(db, NULL, job, "{\"by\":\"new\"}"));
	cj_job_free(job);
	cj_free(data);
	return waited;
}

TEST(killed_processor_job_comes_back) {
	setup_type("kp", 1);
	add_job("kp", "j1", "{\"v\":0}");
	char lock[37];
	run_victim("kp", lock);

	cj_db *db = t_open(); /* a fresh handle, monitors on */
	int64_t waited = take_over(db, "kp", lock);
	note("  job came back and was accepted after %lld ms\n", (long long)waited);
	cj_close(db);
	check_taken_over("kp", lock);
}

static int monitorless_taker(void *p) {
	const char *old_lock = p;
	cj_db *db = open_nomon();
	int64_t waited = take_over(db, "km", old_lock);
	note("  job came back (monitor in another process) after %lld ms\n",
	     (long long)waited);
	cj_close(db);
	return 0;
}

/* The monitor runs in one process, the blocked acceptor in another: the
 * monitor's re-enqueue must wake it. */
TEST(monitor_in_other_process_wakes_acceptor) {
	setup_type("km", 1);
	add_job("km", "j1", "{\"v\":0}");
	char lock[37];
	run_victim("km", lock);

	int pid = t_spawn(monitorless_taker, lock);
	sleep_ms(300); /* the taker is blocked in cj_accept */
	cj_db *db = t_open(); /* the only handle with monitors */
	check_exit(pid, 30000, 0);
	cj_close(db);
	check_taken_over("km", lock);
}

/* ---- stale_processor_halt_in_transact -------------------------------------- */

struct stale_arg {
	t_gate p1_accepted; /* P1 -> P2 */
	t_gate p2_running;  /* P2 -> P1: P2 holds the job and committed work */
	t_gate p1_done;     /* P1 -> P2 */
};

struct put_update_arg {
	cj_db *db;
	cj_job *job;
	const char *key;
	const char *val;
	const char *data;
	int finish;
	int ignore_halt; /* return 0 whatever cj_update says */
	int upd_rc;
};

static int put_update_fn(cj_tx *tx, void *p) {
	struct put_update_arg *a = p;
	int rc = put_str(tx, a->key, a->val);
	if (rc != CJ_OK) return rc;
	a->upd_rc = a->finish ? cj_finish(a->db, tx, a->job, a->data)
	                      : cj_update(a->db, tx, a->job, a->data);
	return a->ignore_halt ? 0 : a->upd_rc;
}

static int stale_p1(void *p) {
	struct stale_arg *a = p;
	cj_db *db = t_open();
	cj_job *job = take_wait(db, "stale", 10000, NULL);
	t_gate_open(&a->p1_accepted);
	/* stall without updating until P2 holds the job */
	CHECK_INT(t_gate_wait(&a->p2_running, 30000), 0);

	struct put_update_arg u = {db, job, "p1-result", "p1", "{\"by\":\"p1\"}", 0, 0, 0};
	CHECK_RC(cj_transact(db, put_update_fn, &u), CJ_HALT);
	CHECK_RC(u.upd_rc, CJ_HALT);
	/* a processor that ignores the halt still cannot commit */
	struct put_update_arg v = {db, job, "p1-ignored", "p1", NULL, 0, 1, 0};
	CHECK_RC(cj_transact(db, put_update_fn, &v), CJ_HALT);
	CHECK_RC(v.upd_rc, CJ_HALT);
	/* and the same with an explicit transaction */
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_tx_put(tx, "p1-explicit", 11, "p1", 2));
	CHECK_RC(cj_finish(db, tx, job, "{\"by\":\"p1\"}"), CJ_HALT);
	CHECK_RC(cj_tx_commit(tx), CJ_HALT);

	check_kv(db, "p1-result", NULL);
	check_kv(db, "p1-ignored", NULL);
	check_kv(db, "p1-explicit", NULL);
	check_kv(db, "p2-step", "p2");
	CHECK_INT(state_of(db, "stale", "j1"), CJ_RUNNING); /* P2's, untouched by P1 */
	t_gate_open(&a->p1_done);
	cj_job_free(job);
	cj_close(db);
	return 0;
}

static int stale_p2(void *p) {
	struct stale_arg *a = p;
	cj_db *db = t_open();
	CHECK_INT(t_gate_wait(&a->p1_accepted, 20000), 0);
	/* waits until a monitor takes the job back from P1 */
	cj_job *job = take_wait(db, "stale", 15000, NULL);
	CHECK_STR(cj_job_id(job), "j1");
	struct put_update_arg u = {db, job, "p2-step", "p2", "{\"by\":\"p2\",\"step\":1}", 0, 0, 0};
	CHECK_OK(cj_transact(db, put_update_fn, &u));
	t_gate_open(&a->p2_running);
	/* keep the job alive while P1 tries its luck */
	for (int i = 0; t_gate_wait(&a->p1_done, 300) != 0; i++) {
		CHECK(i < 100);
		CHECK_OK(cj_update(db, NULL, job, NULL));
	}
	struct put_update_arg f = {db, job, "p2-final", "p2", "{\"by\":\"p2\"}", 1, 0, 0};
	CHECK_OK(cj_transact(db, put_update_fn, &f));
	cj_job_free(job);
	cj_close(db);
	return 0;
}

TEST(stale_processor_halt_in_transact) {
	setup_type("stale", 1);
	add_job("stale", "j1", "{\"v\":0}");
	struct stale_arg a;
	gates_init(&a.p1_accepted, &a.p2_running, &a.p1_done);
	int p1 = t_spawn(stale_p1, &a);
	int p2 = t_spawn(stale_p2, &a);
	check_exit(p1, 60000, 0);
	check_exit(p2, 60000, 0);

	cj_db *db = open_nomon();
	check_kv(db, "p1-result", NULL);
	check_kv(db, "p1-ignored", NULL);
	check_kv(db, "p1-explicit", NULL);
	check_kv(db, "p2-step", "p2");
	check_kv(db, "p2-final", "p2");
	check_job_is(db, "stale", "j1", CJ_FINISHED, "{\"by\":\"p2\"}");
	cj_close(db);
	gates_close(&a.p1_accepted, &a.p2_running, &a.p1_done);
}

/* ---- events_across_processes ---------------------------------------------- */

struct ev_arg {
	t_gate subscribed, saw_step1, saw_step2, saw_finished;
};

/* Waits on subs until an event of sub `want` in `state` (with `data` unless
 * NULL) arrives. Running events of `want` before it are skipped; any event
 * of another subscription, or a final event that is not the one wanted,
 * fails. */
static void wait_for(cj_sub *const *subs, size_t n, cj_sub *want, cj_state state,
                     const char *data, const char *type, const char *id) {
	int64_t end = t_now_ms() + 20000;
	for (;;) {
		int64_t left = end - t_now_ms();
		if (left <= 0)
			t_fail(__FILE__, __LINE__, "no %s event for %s within 20 s",
			       cj_state_name(state), id);
		cj_event ev = {0};
		int rc = cj_wait(subs, n, 0, left, &ev);
		if (rc == CJ_TIMEOUT) continue;
		CHECK_OK(rc);
		if (ev.sub != want)
			t_fail(__FILE__, __LINE__, "event %s for %s/%s from another subscription",
			       cj_state_name(ev.state), ev.type, ev.id);
		CHECK_STR(ev.type, type);
		CHECK_STR(ev.id, id);
		if (ev.state == state && (!data || json_same(ev.data, data))) {
			if (state == CJ_REMOVED) CHECK(ev.data == NULL);
			cj_event_clear(&ev);
			return;
		}
		if (ev.state != CJ_RUNNING)
			t_fail(__FILE__, __LINE__, "unexpected %s event for %s (data %s)",
			       cj_state_name(ev.state), id, ev.data ? ev.data : "(null)");
		cj_event_clear(&ev);
	}
}

static int ev_subscriber(void *p) {
	struct ev_arg *a = p;
	cj_db *db = t_open();
	cj_sub *s1 = NULL, *s2 = NULL;
	cj_state st = 0;
	char *data = NULL;
	CHECK_OK(cj_subscribe(db, "ev", "j1", &s1, &st, &data));
	CHECK(s1 != NULL);
	CHECK_INT(st, CJ_PENDING);
	CHECK_JSON(data, "{\"step\":0}");
	cj_free(data);
	s2 = sub_on_st(db, "ev2", "j2", &st);
	CHECK_INT(st, CJ_PENDING);
	t_gate_open(&a->subscribed);

	wait_for(&s1, 1, s1, CJ_RUNNING, "{\"step\":1}", "ev", "j1");
	t_gate_open(&a->saw_step1);
	wait_for(&s1, 1, s1, CJ_RUNNING, "{\"step\":2}", "ev", "j1");
	t_gate_open(&a->saw_step2);
	wait_for(&s1, 1, s1, CJ_FINISHED, "{\"result\":\"done\"}", "ev", "j1");
	/* a finished subscription delivers nothing more */
	cj_event ev = {0};
	CHECK_RC(cj_wait(&s1, 1, 0, 300, &ev), CJ_TIMEOUT);
	t_gate_open(&a->saw_finished);

	/* both subscriptions at once: only j2's removal may come */
	cj_sub *both[2] = {s1, s2};
	wait_for(both, 2, s2, CJ_REMOVED, NULL, "ev2", "j2");
	CHECK_RC(cj_wait(both, 2, 0, 300, &ev), CJ_TIMEOUT);
	CHECK_OK(cj_unsubscribe(s1));
	CHECK_OK(cj_unsubscribe(s2));
	cj_close(db);
	return 0;
}

static int ev_worker(void *p) {
	struct ev_arg *a = p;
	cj_db *db = t_open();
	CHECK_INT(t_gate_wait(&a->subscribed, 20000), 0);
	cj_job *job = take_wait(db, "ev", 10000, NULL);
	CHECK_OK(cj_update(db, NULL, job, "{\"step\":1}"));
	CHECK_INT(t_gate_wait(&a->saw_step1, 20000), 0);
	CHECK_OK(cj_update(db, NULL, job, "{\"step\":2}"));
	CHECK_INT(t_gate_wait(&a->saw_step2, 20000), 0);
	CHECK_OK(cj_finish(db, NULL, job, "{\"result\":\"done\"}"));
	cj_job_free(job);

	job = take_wait(db, "ev2", 10000, NULL);
	CHECK_STR(cj_job_id(job), "j2");
	CHECK_INT(t_gate_wait(&a->saw_finished, 20000), 0);
	CHECK_OK(cj_remove(db, NULL, "ev2", "j2"));
	CHECK_RC(cj_update(db, NULL, job, NULL), CJ_HALT);
	cj_job_free(job);
	cj_close(db);
	return 0;
}

TEST(events_across_processes) {
	setup_type("ev", 60);
	setup_type("ev2", 60);
	add_job("ev", "j1", "{\"step\":0}");
	add_job("ev2", "j2", NULL);
	struct ev_arg a;
	gates_init(&a.subscribed, &a.saw_step1, &a.saw_step2, &a.saw_finished);
	int s = t_spawn(ev_subscriber, &a);
	int w = t_spawn(ev_worker, &a);
	check_exit(s, 90000, 0);
	check_exit(w, 90000, 0);
	gates_close(&a.subscribed, &a.saw_step1, &a.saw_step2, &a.saw_finished);
}

/* ---- scheduled_job_wakes_waiter ------------------------------------------- */

struct sched_arg {
	chan ready;  /* acceptor -> parent */
	chan sched;  /* parent -> acceptor: the job's scheduled time */
};

static int sched_acceptor(void *p) {
	struct sched_arg *a = p;
	cj_db *db = t_open();
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 20000;
	cj_job *job = NULL;
	chan_put(&a->ready, 1);
	int rc = cj_accept(db, "sched", &o, &job, NULL);
	int64_t got_ms = real_ms();
	CHECK_OK(rc);
	int64_t sched = chan_get(&a->sched, 5000);
	int64_t delta = got_ms - sched * 1000;
	note("  scheduled job accepted %lld ms after its scheduled time\n",
	     (long long)delta);
	CHECK_STR(cj_job_id(job), "later");
	CHECK(delta >= 0);    /* not early */
	CHECK(delta <= 2000); /* and soon after it fell due */
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	cj_close(db);
	return 0;
}

TEST(scheduled_job_wakes_waiter) {
	setup_type("sched", 60);
	struct sched_arg a;
	chan_init(&a.ready);
	chan_init(&a.sched);
	int pid = t_spawn(sched_acceptor, &a);
	chan_get(&a.ready, 20000);
	sleep_ms(300); /* the acceptor is waiting by now */
	cj_db *db = t_open();
	int64_t sched = t_epoch() + 2;
	CHECK_OK(cj_add(db, NULL, "sched", "later", NULL, sched));
	chan_put(&a.sched, sched);
	check_exit(pid, 30000, 0);
	CHECK_INT(state_of(db, "sched", "later"), CJ_FINISHED);
	cj_close(db);
	chan_close(&a.ready);
	chan_close(&a.sched);
}

/* ---- poison_job_ends_dead -------------------------------------------------- */

struct poison_arg {
	t_gate accepted;
	chan fence; /* the victim's fencing token */
};

/* Accepts j1 without monitors, reports its fence, then stalls. */
static int poison_victim(void *p) {
	struct poison_arg *a = p;
	cj_db *db = open_nomon();
	cj_job *job = take_wait(db, "pz", 10000, NULL);
	CHECK_STR(cj_job_id(job), "j1");
	chan_put(&a->fence, (int64_t)cj_job_fence(job));
	t_gate_open(&a->accepted);
	stall_forever();
}

/* A job whose processor is SIGKILLed every time: each lost lease counts as
 * an attempt, and after the policy's 3 the monitor parks it as dead, with 3
 * "lost" errors. The fencing tokens the three processes got strictly
 * increase, and survive a reopen. */
TEST(poison_job_ends_dead) {
	setup_type("pz", 1);
	cj_db *db = open_nomon();
	cj_retry_policy p = {3, 0, 0, 1, CJ_JITTER_NONE};
	CHECK_OK(cj_set_type_policy(db, "pz", &p));
	cj_close(db);
	add_job("pz", "j1", "{\"v\":0}");
	db = t_open(); /* monitors on: they take the leases back */
	int64_t last = 0;
	for (int i = 1; i <= 3; i++) {
		struct poison_arg a;
		t_gate_init(&a.accepted);
		chan_init(&a.fence);
		int pid = spawn_ready(poison_victim, &a, &a.accepted, 20000);
		int64_t f = chan_get(&a.fence, 5000);
		if (f <= last)
			t_fail(__FILE__, __LINE__, "process %d got fence %lld after %lld", i,
			       (long long)f, (long long)last);
		last = f;
		cj_state st = 0;
		cj_sub *sub = sub_on_st(db, "pz", "j1", &st);
		CHECK_INT(st, CJ_RUNNING);
		CHECK(kill(pid, SIGKILL) == 0);
		check_exit(pid, 10000, 128 + SIGKILL);
		t_gate_close(&a.accepted);
		chan_close(&a.fence);
		cj_event ev = {0};
		CHECK_OK(cj_wait(&sub, 1, i < 3 ? CJ_PENDING : CJ_DEAD, 20000, &ev));
		cj_event_clear(&ev);
		CHECK_OK(cj_unsubscribe(sub));
	}
	cj_close(db);
	db = open_nomon();
	cj_job_info info;
	CHECK_OK(cj_get_job(db, NULL, "pz", "j1", &info));
	CHECK_INT(info.state, CJ_DEAD);
	CHECK_INT(info.attempt, 3);
	CHECK_INT((int64_t)info.fence, last);
	int lost = 0;
	for (const char *q = info.errors; (q = strstr(q, "\"ended\":\"lost\"")) != NULL; q++) lost++;
	CHECK_INT(lost, 3);
	cj_job_info_clear(&info);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	cj_job *job = NULL;
	CHECK_RC(cj_accept(db, "pz", &o, &job, NULL), CJ_NOT_FOUND);
	cj_close(db);
}

/* ---- add_unique_race ---------------------------------------------------------- */

#define RACERS 4
#define RACE_IDS 20

/* Each racer adds the same ids as the others, at once: u* with
 * CJ_UNIQUE_ID (new jobs), f* with CJ_UNIQUE_ACTIVE (finished jobs, made
 * pending again). It exits with the number of adds it won. */
static int unique_racer(void *p) {
	t_gate *start = p;
	cj_db *db = t_open();
	CHECK(t_gate_wait(start, 30000) == 0);
	int won = 0;
	for (int i = 0; i < RACE_IDS; i++) {
		for (int k = 0; k < 2; k++) {
			char id[16];
			snprintf(id, sizeof id, "%c%d", k ? 'f' : 'u', i);
			cj_add_opts o = CJ_ADD_OPTS_INIT;
			o.unique = k ? CJ_UNIQUE_ACTIVE : CJ_UNIQUE_ID;
			int rc = cj_add_ex(db, NULL, "race", id, NULL, &o);
			if (rc == CJ_OK) won++;
			else CHECK_RC(rc, CJ_EXISTS);
		}
	}
	cj_close(db);
	return won;
}

/* Four processes add the same ids at once, with a uniqueness policy: each
 * id is added by exactly one of them. */
TEST(add_unique_race) {
	setup_type("race", 60);
	cj_db *db = t_open();
	for (int i = 0; i < RACE_IDS; i++) {
		char id[16];
		snprintf(id, sizeof id, "f%d", i);
		CHECK_OK(cj_add(db, NULL, "race", id, NULL, 0));
		cj_job *job = take_id(db, "race", id);
		CHECK_OK(cj_finish(db, NULL, job, NULL));
		cj_job_free(job);
	}
	cj_close(db);
	t_gate start;
	t_gate_init(&start);
	int pid[RACERS];
	for (int i = 0; i < RACERS; i++) pid[i] = t_spawn(unique_racer, &start);
	for (int i = 0; i < RACERS; i++) t_gate_open(&start);
	int won = 0;
	for (int i = 0; i < RACERS; i++) {
		int st = t_join(pid[i], 120000);
		CHECK(st >= 0 && st <= 2 * RACE_IDS);
		won += st;
	}
	/* every id was tried by all four, so at least one won each: a total of
	 * one per id means none was won twice */
	CHECK_INT(won, 2 * RACE_IDS);
	db = t_open();
	CHECK_INT(count_jobs(db, "race"), 2 * RACE_IDS);
	for (int i = 0; i < RACE_IDS; i++) {
		char id[16];
		snprintf(id, sizeof id, "f%d", i);
		CHECK_INT(state_of(db, "race", id), CJ_PENDING);
	}
	cj_close(db);
	t_gate_close(&start);
}

TEST_MAIN_VERIFIED(ENTRY(accept_woken_by_other_process), ENTRY(idle_accept_uses_no_cpu),
          ENTRY(killed_processor_job_comes_back),
          ENTRY(monitor_in_other_process_wakes_acceptor),
          ENTRY(stale_processor_halt_in_transact), ENTRY(events_across_processes),
          ENTRY(scheduled_job_wakes_waiter), ENTRY(poison_job_ends_dead),
          ENTRY(add_unique_race))
