/*
 * Conformance: cj_accept (include/couchjobs.h "Job processing"):
 * exactly-once handout, locks, data, timeouts, wakeups from threads and
 * processes, scheduled jobs, max_sched_time, no_schedule and the order of
 * handout.
 *
 * Public API only; the store comes from t_open() / t_url().
 */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

/* ---- basic handout -------------------------------------------------------- */

/* accept returns the job's data, its type/id, a UUID lock, and makes it
 * running; data may be NULL when not wanted. */
TEST(accept_basic) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j1", "{\"work\":\"x\"}", 0));
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 5000;
	cj_job *job = NULL;
	char *data = NULL;
	CHECK_OK(cj_accept(db, "t", &o, &job, &data));
	CHECK(job != NULL);
	CHECK_JSON(data, "{\"work\":\"x\"}");
	cj_free(data);
	CHECK_STR(cj_job_type(job), "t");
	CHECK_STR(cj_job_id(job), "j1");
	CHECK(is_uuid(cj_job_lock(job)));
	CHECK(!cj_is_resubmitted(job));
	CHECK_INT(state_of(db, "t", "j1"), CJ_RUNNING);
	cj_job_free(job);

	/* NULL opts are the defaults; NULL data is allowed */
	CHECK_OK(cj_add(db, NULL, "t", "j2", NULL, 0));
	job = NULL;
	CHECK_OK(cj_accept(db, "t", NULL, &job, NULL));
	CHECK_STR(cj_job_id(job), "j2");
	cj_job_free(job);
	cj_close(db);
}

/* An acceptor of one type is never handed a job of another type. */
TEST(accept_only_its_type) {
	cj_db *db = open_typed("a");
	CHECK_OK(cj_set_type_timeout(db, "b", 60));
	CHECK_OK(cj_add(db, NULL, "a", "x", NULL, 0));
	check_empty(db, "b", CJ_SCHED_ANY, 0);
	check_empty(db, "nosuchtype", CJ_SCHED_ANY, 0);
	cj_job *job = take(db, "a");
	CHECK_STR(cj_job_type(job), "a");
	cj_job_free(job);
	check_empty(db, "a", CJ_SCHED_ANY, 0);
	/* a type that is a prefix of another is still another type */
	CHECK_OK(cj_set_type_timeout(db, "ab", 60));
	CHECK_OK(cj_add(db, NULL, "ab", "x", NULL, 0));
	check_empty(db, "a", CJ_SCHED_ANY, 0);
	check_empty(db, "a", CJ_SCHED_NOW, 1);
	cj_state st = 0;
	CHECK_RC(cj_get_job_state(db, NULL, "ab", "", &st), CJ_INVALID);
	CHECK_RC(cj_get_job_state(db, NULL, "ab", "x1", &st), CJ_NOT_FOUND);
	job = take(db, "ab");
	CHECK_STR(cj_job_type(job), "ab");
	cj_job_free(job);
	cj_close(db);
}

struct herd {
	cj_db *db;
	int rc[3];
	atomic_int idx;
};

static void *herd_run(void *p) {
	struct herd *h = p;
	int i = atomic_fetch_add(&h->idx, 1);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 3000;
	cj_job *job = NULL;
	h->rc[i] = cj_accept(h->db, "t", &o, &job, NULL);
	cj_job_free(job);
	return NULL;
}

/* Three accepts waiting, one job added: exactly one gets it, the others
 * go on waiting and time out. */
TEST(accept_one_job_many_waiters) {
	cj_db *db = open_typed("t");
	struct herd h;
	h.db = db;
	for (int i = 0; i < 3; i++) h.rc[i] = -100;
	atomic_init(&h.idx, 0);
	pthread_t th[3];
	for (int i = 0; i < 3; i++) CHECK(pthread_create(&th[i], NULL, herd_run, &h) == 0);
	sleep_ms(400);
	CHECK_OK(cj_add(db, NULL, "t", "only", NULL, 0));
	for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
	int ok = 0, nf = 0;
	for (int i = 0; i < 3; i++) {
		if (h.rc[i] == CJ_OK) ok++;
		else if (h.rc[i] == CJ_NOT_FOUND) nf++;
	}
	CHECK_INT(ok, 1);
	CHECK_INT(nf, 2);
	CHECK_INT(state_of(db, "t", "only"), CJ_RUNNING);
	cj_close(db);
}

/* A job handed out is not handed out again while running, even after the
 * handle is freed; finished jobs are not handed out. */
TEST(accept_not_twice) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_job *job = take(db, "t");
	cj_job_free(job);
	check_empty(db, "t", CJ_SCHED_ANY, 0);
	check_empty(db, "t", CJ_SCHED_NOW, 1);
	CHECK_INT(state_of(db, "t", "j"), CJ_RUNNING);
	cj_close(db);
	db = t_open();
	CHECK_OK(cj_add(db, NULL, "t", "k", NULL, 0));
	job = take(db, "t");
	CHECK_STR(cj_job_id(job), "k");
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	check_empty(db, "t", CJ_SCHED_ANY, 0);
	cj_close(db);
}

/* Every accept gives a fresh lock: two jobs, and the same job run twice. */
TEST(accept_fresh_lock) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "a", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "t", "b", NULL, 0));
	cj_job *ja = take(db, "t"), *jb = take(db, "t");
	CHECK(is_uuid(cj_job_lock(ja)) && is_uuid(cj_job_lock(jb)));
	CHECK(strcmp(cj_job_lock(ja), cj_job_lock(jb)) != 0);
	char first[64];
	snprintf(first, sizeof first, "%s", cj_job_lock(ja));
	CHECK_OK(cj_finish(db, NULL, ja, NULL));
	cj_job_free(ja);
	CHECK_OK(cj_add(db, NULL, "t", "a", NULL, 0));
	ja = take(db, "t");
	CHECK_STR(cj_job_id(ja), "a");
	CHECK(is_uuid(cj_job_lock(ja)));
	CHECK(strcmp(cj_job_lock(ja), first) != 0);
	CHECK(strcmp(cj_job_lock(ja), cj_job_lock(jb)) != 0);
	cj_job_free(ja);
	cj_job_free(jb);
	cj_close(db);
}

/* A process forked after this one made locks makes locks of its own, not the
 * ones this process makes next (lock randomness is pooled per thread). */
struct fork_lock_ctx {
	chan locks;
};

static int fork_lock_child(void *arg) {
	struct fork_lock_ctx *c = arg;
	cj_db *db = NULL;
	if (cj_open(t_url(), NULL, &db) != CJ_OK) return 3;
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	cj_job *job = NULL;
	if (cj_accept(db, "t", &o, &job, NULL) != CJ_OK) return 4;
	char lock[40];
	snprintf(lock, sizeof lock, "%s", cj_job_lock(job));
	chan_send(&c->locks, lock, sizeof lock);
	cj_job_free(job);
	cj_close(db);
	return 0;
}

TEST(accept_fresh_lock_after_fork) {
	struct fork_lock_ctx c;
	chan_init(&c.locks);
	cj_db *db = open_typed("t");
	for (int i = 0; i < 3; i++) {
		char id[8];
		snprintf(id, sizeof id, "j%d", i);
		CHECK_OK(cj_add(db, NULL, "t", id, NULL, 0));
	}
	cj_job *first = take(db, "t"); /* this thread now holds lock randomness */
	cj_job_free(first);
	cj_close(db); /* no handle open across the fork */

	int pid = t_spawn(fork_lock_child, &c);
	char theirs[40];
	chan_recv(&c.locks, theirs, sizeof theirs, 60000);
	CHECK_INT(t_join(pid, 60000), 0);

	db = t_open();
	cj_job *mine = take(db, "t");
	CHECK(is_uuid(theirs) && is_uuid(cj_job_lock(mine)));
	CHECK(strcmp(theirs, cj_job_lock(mine)) != 0);
	cj_job_free(mine);
	cj_close(db);
	chan_close(&c.locks);
}

/* ---- exactly once under concurrency -------------------------------------- */

#define EO_JOBS 240
#define EO_THREADS 3
#define EO_CHILDREN 2

/* Takes jobs until none is left, writing "id\n" for each to fd. Returns 0,
 * or a small number naming what went wrong. */
static int eo_drain(cj_db *db, int fd) {
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	for (;;) {
		cj_job *job = NULL;
		char *data = NULL;
		int rc = cj_accept(db, "t", &o, &job, &data);
		if (rc == CJ_NOT_FOUND) return 0;
		if (rc != CJ_OK) return 10;
		char want[64], line[64];
		snprintf(want, sizeof want, "{\"n\":\"%s\"}", cj_job_id(job));
		int ok = json_same(data, want);
		cj_free(data);
		if (!ok) return 11;
		int len = snprintf(line, sizeof line, "%s\n", cj_job_id(job));
		if (write(fd, line, (size_t)len) != len) return 12;
		rc = cj_finish(db, NULL, job, NULL);
		cj_job_free(job);
		if (rc != CJ_OK) return 13;
	}
}

struct eo_ctx {
	t_gate go;
	int pipefd[2];
	cj_db *db;
	int rc[EO_THREADS];
};

static int eo_child(void *arg) {
	struct eo_ctx *c = arg;
	close(c->pipefd[0]);
	if (t_gate_wait(&c->go, 60000) != 0) return 2;
	cj_db *db = NULL;
	if (cj_open(t_url(), NULL, &db) != CJ_OK) return 3;
	int rc = eo_drain(db, c->pipefd[1]);
	cj_close(db);
	return rc;
}

struct eo_thread_arg {
	struct eo_ctx *c;
	int i;
};

static void *eo_thread(void *arg) {
	struct eo_thread_arg *a = arg;
	a->c->rc[a->i] = eo_drain(a->c->db, a->c->pipefd[1]);
	return NULL;
}

/* Several threads and several processes accept at once: every job is
 * handed out exactly once, with its own data. */
TEST(accept_exactly_once) {
	struct eo_ctx c;
	memset(&c, 0, sizeof c);
	t_gate_init(&c.go);
	CHECK(pipe(c.pipefd) == 0);
	/* children first, before this process opens a handle */
	int pids[EO_CHILDREN];
	for (int i = 0; i < EO_CHILDREN; i++) pids[i] = t_spawn(eo_child, &c);

	c.db = open_typed("t");
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(c.db, &tx));
	for (int i = 0; i < EO_JOBS; i++) {
		char id[16], data[64];
		snprintf(id, sizeof id, "j%03d", i);
		snprintf(data, sizeof data, "{\"n\":\"%s\"}", id);
		CHECK_OK(cj_add(c.db, tx, "t", id, data, 0));
	}
	CHECK_OK(cj_tx_commit(tx));

	for (int i = 0; i < EO_CHILDREN; i++) t_gate_open(&c.go);
	pthread_t th[EO_THREADS];
	struct eo_thread_arg ta[EO_THREADS];
	for (int i = 0; i < EO_THREADS; i++) {
		ta[i].c = &c;
		ta[i].i = i;
		CHECK(pthread_create(&th[i], NULL, eo_thread, &ta[i]) == 0);
	}
	for (int i = 0; i < EO_THREADS; i++) pthread_join(th[i], NULL);
	for (int i = 0; i < EO_THREADS; i++) CHECK_INT(c.rc[i], 0);
	for (int i = 0; i < EO_CHILDREN; i++) CHECK_INT(t_join(pids[i], 60000), 0);
	/* an engine may skip rows others hold; take what is left */
	CHECK_INT(eo_drain(c.db, c.pipefd[1]), 0);
	close(c.pipefd[1]);

	check_each_once(c.pipefd[0], EO_JOBS);
	for (int i = 0; i < EO_JOBS; i += 37) {
		char id[16];
		snprintf(id, sizeof id, "j%03d", i);
		CHECK_INT(state_of(c.db, "t", id), CJ_FINISHED);
	}
	t_gate_close(&c.go);
	cj_close(c.db);
}

/* ---- timeouts --------------------------------------------------------------- */

/* timeout 0 on an empty queue: CJ_NOT_FOUND at once, out-pointers NULL. */
TEST(accept_timeout_zero) {
	cj_db *db = open_typed("t");
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	cj_job *job = (cj_job *)&o; /* not NULL, to see it cleared */
	char *data = (char *)&o;
	int64_t t0 = t_now_ms();
	CHECK_RC(cj_accept(db, "t", &o, &job, &data), CJ_NOT_FOUND);
	CHECK(t_now_ms() - t0 < 3000);
	CHECK(job == NULL);
	CHECK(data == NULL);
	/* also on a type that has no timeout at all */
	CHECK_RC(cj_accept(db, "other", &o, &job, NULL), CJ_NOT_FOUND);
	cj_close(db);
}

/* timeout N: CJ_NOT_FOUND, not before about N has passed. */
TEST(accept_timeout_n) {
	cj_db *db = open_typed("t");
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 800;
	cj_job *job = NULL;
	int64_t t0 = t_now_ms();
	CHECK_RC(cj_accept(db, "t", &o, &job, NULL), CJ_NOT_FOUND);
	int64_t took = t_now_ms() - t0;
	CHECK(job == NULL);
	if (took < 750) t_fail(__FILE__, __LINE__, "returned after %lld ms", (long long)took);
	CHECK(took < 20000);
	/* a job scheduled in the future does not end the wait early */
	CHECK_OK(cj_add(db, NULL, "t", "later", NULL, t_epoch() + 3600));
	t0 = t_now_ms();
	CHECK_RC(cj_accept(db, "t", &o, &job, NULL), CJ_NOT_FOUND);
	took = t_now_ms() - t0;
	if (took < 750) t_fail(__FILE__, __LINE__, "returned after %lld ms", (long long)took);
	cj_close(db);
}

/* A timeout below -1 is CJ_INVALID. */
TEST(accept_bad_timeout) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = -2;
	cj_job *job = (cj_job *)&o;
	CHECK_RC(cj_accept(db, "t", &o, &job, NULL), CJ_INVALID);
	CHECK(job == NULL);
	CHECK_INT(state_of(db, "t", "j"), CJ_PENDING);
	cj_close(db);
}

/* A waiting accept does not spin: two seconds of waiting cost far less
 * than two seconds of CPU (the bound, half of it, only catches a busy
 * loop). */
TEST(accept_wait_does_not_spin) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "later", NULL, t_epoch() + 3600));
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 2000;
	cj_job *job = NULL;
	int64_t c0 = cpu_ms();
	CHECK_RC(cj_accept(db, "t", &o, &job, NULL), CJ_NOT_FOUND);
	int64_t used = cpu_ms() - c0;
	if (used > 1000) t_fail(__FILE__, __LINE__, "waiting 2 s used %lld ms of CPU", (long long)used);
	cj_close(db);
}

/* ---- wakeups ---------------------------------------------------------------- */

struct waiter {
	cj_db *db;
	const char *type;
	cj_accept_opts o;
	int rc;
	char id[64];
	int64_t done_ms;
};

static void *waiter_run(void *arg) {
	struct waiter *w = arg;
	cj_job *job = NULL;
	w->rc = cj_accept(w->db, w->type, &w->o, &job, NULL);
	if (w->rc == CJ_OK) snprintf(w->id, sizeof w->id, "%s", cj_job_id(job));
	w->done_ms = t_now_ms();
	cj_job_free(job);
	return NULL;
}

/* A blocked accept wakes when another thread adds a job of its type (and
 * not for a job of another type). */
TEST(accept_woken_by_thread) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_set_type_timeout(db, "u", 60));
	struct waiter w = {db, "t", CJ_ACCEPT_OPTS_INIT, -100, "", 0};
	w.o.timeout_ms = 20000;
	pthread_t th;
	CHECK(pthread_create(&th, NULL, waiter_run, &w) == 0);
	sleep_ms(400);
	CHECK_OK(cj_add(db, NULL, "u", "wrong", NULL, 0));
	sleep_ms(200);
	int64_t t0 = t_now_ms();
	CHECK_OK(cj_add(db, NULL, "t", "right", NULL, 0));
	pthread_join(th, NULL);
	CHECK_RC(w.rc, CJ_OK);
	CHECK_STR(w.id, "right");
	CHECK(w.done_ms - t0 < 10000);
	CHECK_INT(state_of(db, "u", "wrong"), CJ_PENDING);
	cj_close(db);
}

/* A blocked no_schedule accept wakes on an add too. */
TEST(accept_no_schedule_woken_by_thread) {
	cj_db *db = open_typed("t");
	struct waiter w = {db, "t", CJ_ACCEPT_OPTS_INIT, -100, "", 0};
	w.o.timeout_ms = 20000;
	w.o.no_schedule = 1;
	pthread_t th;
	CHECK(pthread_create(&th, NULL, waiter_run, &w) == 0);
	sleep_ms(400);
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	pthread_join(th, NULL);
	CHECK_RC(w.rc, CJ_OK);
	CHECK_STR(w.id, "j");
	cj_close(db);
}

static t_gate proc_gate;

static int adder_child(void *arg) {
	(void)arg;
	if (t_gate_wait(&proc_gate, 60000) != 0) return 2;
	sleep_ms(500);
	cj_db *db = NULL;
	if (cj_open(t_url(), NULL, &db) != CJ_OK) return 3;
	int rc = cj_add(db, NULL, "t", "from-child", "{\"by\":\"child\"}", 0);
	cj_close(db);
	return rc == CJ_OK ? 0 : 4;
}

/* A blocked accept wakes when another process adds a job. */
TEST(accept_woken_by_process) {
	t_gate_init(&proc_gate);
	int pid = t_spawn(adder_child, NULL);
	cj_db *db = open_typed("t");
	t_gate_open(&proc_gate);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 20000;
	cj_job *job = NULL;
	char *data = NULL;
	CHECK_OK(cj_accept(db, "t", &o, &job, &data));
	CHECK_STR(cj_job_id(job), "from-child");
	CHECK_JSON(data, "{\"by\":\"child\"}");
	cj_free(data);
	cj_job_free(job);
	CHECK_INT(t_join(pid, 30000), 0);
	t_gate_close(&proc_gate);
	cj_close(db);
}

/* ---- scheduled jobs ---------------------------------------------------------- */

/* A job scheduled in the future is not handed out by a default accept;
 * CJ_SCHED_ANY takes it; a time in the past counts as now. */
TEST(accept_sched_not_early) {
	cj_db *db = open_typed("t");
	int64_t when = t_epoch() + 3600;
	CHECK_OK(cj_add(db, NULL, "t", "future", NULL, when));
	check_empty(db, "t", CJ_SCHED_NOW, 0);
	CHECK_INT(state_of(db, "t", "future"), CJ_PENDING);
	cj_job *job = take_opts(db, "t", CJ_SCHED_ANY, 0);
	CHECK_STR(cj_job_id(job), "future");
	cj_job_free(job);
	/* the past is now */
	CHECK_OK(cj_add(db, NULL, "t", "past", NULL, 1000));
	job = take(db, "t");
	CHECK_STR(cj_job_id(job), "past");
	cj_job_free(job);
	cj_close(db);
}

/* A waiting accept wakes when the earliest scheduled job falls due, and
 * not before. */
TEST(accept_wakes_when_due) {
	cj_db *db = open_typed("t");
	int64_t t0 = t_now_ms();
	int64_t when = t_epoch() + 2;
	CHECK_OK(cj_add(db, NULL, "t", "late", NULL, when + 3600));
	CHECK_OK(cj_add(db, NULL, "t", "soon", NULL, when));
	check_empty(db, "t", CJ_SCHED_NOW, 0);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 15000;
	cj_job *job = NULL;
	CHECK_OK(cj_accept(db, "t", &o, &job, NULL));
	int64_t took = t_now_ms() - t0;
	CHECK_STR(cj_job_id(job), "soon");
	if (took < 900) t_fail(__FILE__, __LINE__, "handed out after %lld ms", (long long)took);
	CHECK(t_epoch() >= when);
	cj_job_free(job);
	CHECK_INT(state_of(db, "t", "late"), CJ_PENDING);
	cj_close(db);
}

/* An accept already waiting on an empty queue learns of a job scheduled
 * by another thread, and takes it when it falls due. */
TEST(accept_waiting_sees_new_schedule) {
	cj_db *db = open_typed("t");
	struct waiter w = {db, "t", CJ_ACCEPT_OPTS_INIT, -100, "", 0};
	w.o.timeout_ms = 20000;
	pthread_t th;
	CHECK(pthread_create(&th, NULL, waiter_run, &w) == 0);
	sleep_ms(400);
	int64_t t0 = t_now_ms();
	int64_t when = t_epoch() + 2;
	CHECK_OK(cj_add(db, NULL, "t", "s", NULL, when));
	pthread_join(th, NULL);
	CHECK_RC(w.rc, CJ_OK);
	CHECK_STR(w.id, "s");
	if (w.done_ms - t0 < 900)
		t_fail(__FILE__, __LINE__, "handed out after %lld ms", (long long)(w.done_ms - t0));
	cj_close(db);
}

/* An explicit max_sched_time: jobs scheduled at or before it are taken,
 * later ones are not. */
TEST(accept_max_sched_time) {
	cj_db *db = open_typed("t");
	int64_t T = t_epoch() + 10000;
	CHECK_OK(cj_add(db, NULL, "t", "after", NULL, T + 1));
	CHECK_OK(cj_add(db, NULL, "t", "at", NULL, T));
	CHECK_OK(cj_add(db, NULL, "t", "before", NULL, T - 500));
	CHECK_OK(cj_add(db, NULL, "t", "now", NULL, 0));
	const char *want[] = {"now", "before", "at"};
	for (int i = 0; i < 3; i++) {
		cj_job *job = take_opts(db, "t", T, 0);
		CHECK_STR(cj_job_id(job), want[i]);
		cj_job_free(job);
	}
	check_empty(db, "t", T, 0);
	check_empty(db, "t", CJ_SCHED_NOW, 0);
	CHECK_INT(state_of(db, "t", "after"), CJ_PENDING);
	cj_job *job = take_opts(db, "t", CJ_SCHED_ANY, 0);
	CHECK_STR(cj_job_id(job), "after");
	cj_job_free(job);
	cj_close(db);
}

/* Jobs are handed out in (scheduled time, id) byte order. */
TEST(accept_order) {
	cj_db *db = open_typed("t");
	int64_t T = t_epoch() + 10000;
	struct {
		const char *id;
		int64_t when;
	} in[] = {{"z", 0}, {"a", T + 100}, {"m", T + 50}, {"b", 0}, {"B", 0},
	          {"c", T + 100}, {"a10", 0}, {"a9", 0}, {"\xc3\xa9", 0}};
	const char *want[] = {"B", "a10", "a9", "b", "z", "\xc3\xa9", "m", "a", "c"};
	for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
		CHECK_OK(cj_add(db, NULL, "t", in[i].id, NULL, in[i].when));
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		cj_job *job = take_opts(db, "t", CJ_SCHED_ANY, 0);
		CHECK_STR(cj_job_id(job), want[i]);
		cj_job_free(job);
	}
	check_empty(db, "t", CJ_SCHED_ANY, 0);
	cj_close(db);
}

/* Rescheduling a pending job moves it in the order. */
TEST(accept_order_after_reschedule) {
	cj_db *db = open_typed("t");
	int64_t T = t_epoch() + 10000;
	CHECK_OK(cj_add(db, NULL, "t", "a", NULL, T + 10));
	CHECK_OK(cj_add(db, NULL, "t", "b", NULL, T + 20));
	CHECK_OK(cj_add(db, NULL, "t", "a", NULL, T + 30)); /* now after b */
	cj_job *job = take_opts(db, "t", CJ_SCHED_ANY, 0);
	CHECK_STR(cj_job_id(job), "b");
	cj_job_free(job);
	job = take_opts(db, "t", CJ_SCHED_ANY, 0);
	CHECK_STR(cj_job_id(job), "a");
	cj_job_free(job);
	cj_close(db);
}

/* no_schedule: only jobs added with sched_time 0 are candidates, whatever
 * the scheduled jobs' times; re-adding moves a job in or out. */
TEST(accept_no_schedule) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "u1", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "t", "u2", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "t", "due", NULL, 1000));
	CHECK_OK(cj_add(db, NULL, "t", "future", NULL, t_epoch() + 3600));
	/* u3 starts unscheduled, then gets a time; s1 the other way round */
	CHECK_OK(cj_add(db, NULL, "t", "u3", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "t", "u3", NULL, t_epoch() + 3600));
	CHECK_OK(cj_add(db, NULL, "t", "s1", NULL, t_epoch() + 3600));
	CHECK_OK(cj_add(db, NULL, "t", "s1", NULL, 0));
	int got_u1 = 0, got_u2 = 0, got_s1 = 0;
	for (int i = 0; i < 3; i++) {
		cj_job *job = take_opts(db, "t", CJ_SCHED_NOW, 1);
		const char *id = cj_job_id(job);
		if (strcmp(id, "u1") == 0) got_u1++;
		else if (strcmp(id, "u2") == 0) got_u2++;
		else if (strcmp(id, "s1") == 0) got_s1++;
		else t_fail(__FILE__, __LINE__, "no_schedule accept took %s", id);
		cj_job_free(job);
	}
	CHECK(got_u1 == 1 && got_u2 == 1 && got_s1 == 1);
	check_empty(db, "t", CJ_SCHED_NOW, 1);
	CHECK_INT(state_of(db, "t", "due"), CJ_PENDING);
	CHECK_INT(state_of(db, "t", "future"), CJ_PENDING);
	CHECK_INT(state_of(db, "t", "u3"), CJ_PENDING);
	/* a default accept does take the due one */
	cj_job *job = take(db, "t");
	CHECK_STR(cj_job_id(job), "due");
	cj_job_free(job);
	cj_close(db);
}

/* no_schedule finds a job wherever its id falls, whatever random point the
 * search starts from: one job with the lowest, then the highest possible
 * id, each taken many times over. */
TEST(accept_no_schedule_finds_any) {
	cj_db *db = open_typed("t");
	const char *ids[] = {"\x01", "\xf4\x8f\xbf\xbf" /* U+10FFFF */, "m"};
	for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
		for (int i = 0; i < 25; i++) {
			CHECK_OK(cj_add(db, NULL, "t", ids[k], NULL, 0));
			cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
			o.no_schedule = 1;
			o.timeout_ms = 0;
			cj_job *job = NULL;
			CHECK_OK(cj_accept(db, "t", &o, &job, NULL));
			CHECK_STR(cj_job_id(job), ids[k]);
			CHECK_OK(cj_finish(db, NULL, job, NULL));
			cj_job_free(job);
		}
	}
	/* many jobs: every one is taken exactly once */
	for (int i = 0; i < 60; i++) {
		char id[16];
		snprintf(id, sizeof id, "%08x", (unsigned)(i * 2654435761u));
		CHECK_OK(cj_add(db, NULL, "t", id, NULL, 0));
	}
	int taken = 0;
	for (;;) {
		cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
		o.no_schedule = 1;
		o.timeout_ms = 0;
		cj_job *job = NULL;
		int rc = cj_accept(db, "t", &o, &job, NULL);
		if (rc == CJ_NOT_FOUND) break;
		CHECK_OK(rc);
		taken++;
		cj_job_free(job);
	}
	CHECK_INT(taken, 60);
	cj_close(db);
}

/* no_schedule with an explicit max_sched_time is CJ_INVALID. */
TEST(accept_no_schedule_invalid) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.no_schedule = 1;
	o.max_sched_time = t_epoch();
	o.timeout_ms = 0;
	cj_job *job = (cj_job *)&o;
	char *data = (char *)&o;
	CHECK_RC(cj_accept(db, "t", &o, &job, &data), CJ_INVALID);
	CHECK(job == NULL);
	CHECK(data == NULL);
	o.max_sched_time = 0;
	CHECK_RC(cj_accept(db, "t", &o, &job, NULL), CJ_INVALID);
	o.max_sched_time = CJ_SCHED_ANY; /* explicit too: only the default goes */
	CHECK_RC(cj_accept(db, "t", &o, &job, NULL), CJ_INVALID);
	CHECK_INT(state_of(db, "t", "j"), CJ_PENDING);
	/* the defaults with no_schedule are fine */
	o.max_sched_time = CJ_SCHED_NOW;
	CHECK_OK(cj_accept(db, "t", &o, &job, NULL));
	cj_job_free(job);
	cj_close(db);
}

/* ---- several types in order of priority --------------------------------------- */

static const char *const prio[] = {"hi", "mid", "lo"};

/* A store with the three types of prio (no monitor: only the caller
 * reads it). */
static cj_db *open_prio(void) {
	cj_db *db = open_nomon();
	for (size_t i = 0; i < 3; i++) CHECK_OK(cj_set_type_timeout(db, prio[i], 60));
	return db;
}

/* The id of the job cj_accept_types(prio) takes now, "" when none. */
static void take_prio(cj_db *db, char *id, size_t cap, char *type, size_t tcap) {
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	cj_job *job = NULL;
	char *data = NULL;
	int rc = cj_accept_types(db, prio, 3, &o, &job, &data);
	id[0] = type[0] = 0;
	if (rc == CJ_NOT_FOUND) {
		CHECK(job == NULL && data == NULL);
		return;
	}
	CHECK_OK(rc);
	CHECK_JSON(data, "{}");
	snprintf(id, cap, "%s", cj_job_id(job));
	snprintf(type, tcap, "%s", cj_job_type(job));
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	cj_free(data);
}

/* Jobs come from the first type that has one due, whatever the order they
 * were added in; within a type, in queue order; a job of a higher type that
 * is not due yet does not hold the lower ones back. */
TEST(accept_types_order) {
	cj_db *db = open_prio();
	CHECK_OK(cj_add(db, NULL, "lo", "l1", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "mid", "m2", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "mid", "m1", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "hi", "h-later", NULL, t_epoch() + 3600));
	CHECK_OK(cj_add(db, NULL, "lo", "l0", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "hi", "h1", NULL, 0));
	const char *want[][2] = {{"hi", "h1"}, {"mid", "m1"}, {"mid", "m2"}, {"lo", "l0"},
	                         {"lo", "l1"}, {"", ""}};
	char id[64], type[64];
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		take_prio(db, id, sizeof id, type, sizeof type);
		CHECK_STR(type, want[i][0]);
		CHECK_STR(id, want[i][1]);
		/* a job of a higher type added meanwhile comes first */
		if (i == 1) {
			CHECK_OK(cj_add(db, NULL, "hi", "h2", NULL, 0));
			take_prio(db, id, sizeof id, type, sizeof type);
			CHECK_STR(id, "h2");
		}
	}
	CHECK_INT(state_of(db, "hi", "h-later"), CJ_PENDING);
	/* one type is cj_accept */
	CHECK_OK(cj_add(db, NULL, "lo", "l2", NULL, 0));
	cj_job *job = NULL;
	CHECK_OK(cj_accept_types(db, &prio[2], 1, NULL, &job, NULL));
	CHECK_STR(cj_job_id(job), "l2");
	cj_job_free(job);
	cj_close(db);
}

/* cj_accept_many_types fills a batch from the types in order. */
TEST(accept_many_types_batch) {
	cj_db *db = open_prio();
	CHECK_OK(cj_add(db, NULL, "lo", "l1", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "lo", "l2", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "lo", "l3", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "hi", "h1", "{\"h\":1}", 0));
	CHECK_OK(cj_add(db, NULL, "hi", "h2", NULL, 0));
	cj_job *jobs[4];
	char *data[4];
	size_t n = 0;
	CHECK_OK(cj_accept_many_types(db, prio, 3, NULL, 4, jobs, data, &n));
	CHECK_INT(n, 4);
	const char *want[][2] = {{"hi", "h1"}, {"hi", "h2"}, {"lo", "l1"}, {"lo", "l2"}};
	for (size_t i = 0; i < n; i++) {
		CHECK_STR(cj_job_type(jobs[i]), want[i][0]);
		CHECK_STR(cj_job_id(jobs[i]), want[i][1]);
		CHECK_INT(state_of(db, want[i][0], want[i][1]), CJ_RUNNING);
		CHECK_OK(cj_finish(db, NULL, jobs[i], NULL));
		cj_job_free(jobs[i]);
		cj_free(data[i]);
	}
	CHECK_INT(state_of(db, "lo", "l3"), CJ_PENDING);
	cj_close(db);
}

struct types_waiter {
	cj_db *db;
	int rc;
	char id[64];
	int64_t done_ms;
};

static void *types_waiter_run(void *arg) {
	struct types_waiter *w = arg;
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 30000;
	cj_job *job = NULL;
	w->rc = cj_accept_types(w->db, prio, 3, &o, &job, NULL);
	if (w->rc == CJ_OK) snprintf(w->id, sizeof w->id, "%s", cj_job_id(job));
	w->done_ms = t_now_ms();
	cj_job_free(job);
	return NULL;
}

static uint64_t reads_of(cj_db *db) {
	cj_stats st;
	CHECK_OK(cj_db_stats(db, &st));
	return st.store_reads;
}

/* A caller blocked on three types is woken by a job of the third, and not
 * by jobs of other types: while those are added it reads nothing. */
TEST(accept_types_woken_by_third) {
	cj_db *db = open_prio();
	cj_db *other = open_nomon();
	CHECK_OK(cj_set_type_timeout(other, "elsewhere", 60));
	CHECK_OK(cj_add(other, NULL, "hi", "h-later", NULL, t_epoch() + 3600));
	struct types_waiter w = {db, -100, "", 0};
	pthread_t th;
	CHECK(pthread_create(&th, NULL, types_waiter_run, &w) == 0);
	/* blocked: its reads stop */
	uint64_t r0 = reads_of(db);
	for (int i = 0; i < 100; i++) {
		sleep_ms(100);
		uint64_t r = reads_of(db);
		if (r == r0 && r > 0) break;
		r0 = r;
	}
	for (int i = 0; i < 20; i++) {
		char id[16];
		snprintf(id, sizeof id, "e%d", i);
		CHECK_OK(cj_add(other, NULL, "elsewhere", id, NULL, 0));
	}
	sleep_ms(300);
	CHECK_INT(reads_of(db), r0);
	CHECK_INT(w.rc, -100);
	int64_t t0 = t_now_ms();
	CHECK_OK(cj_add(other, NULL, "lo", "third", NULL, 0));
	pthread_join(th, NULL);
	CHECK_RC(w.rc, CJ_OK);
	CHECK_STR(w.id, "third");
	/* woken by the add, not by its 30 s timeout */
	CHECK(w.done_ms - t0 < 10000);
	cj_close(other);
	cj_close(db);
}

/* A caller blocked on three types wakes when a job of the third falls
 * due. */
TEST(accept_types_wakes_when_due) {
	cj_db *db = open_prio();
	int64_t when = t_epoch() + 2;
	CHECK_OK(cj_add(db, NULL, "hi", "h-later", NULL, when + 3600));
	CHECK_OK(cj_add(db, NULL, "lo", "soon", NULL, when));
	int64_t t0 = t_now_ms();
	struct types_waiter w = {db, -100, "", 0};
	types_waiter_run(&w);
	CHECK_RC(w.rc, CJ_OK);
	CHECK_STR(w.id, "soon");
	CHECK(t_epoch() >= when);
	note("  woken %lld ms after it started waiting\n", (long long)(t_now_ms() - t0));
	cj_close(db);
}

/* Bad arguments: CJ_INVALID, nothing taken, out-pointers cleared. */
TEST(accept_types_invalid) {
	cj_db *db = open_prio();
	CHECK_OK(cj_add(db, NULL, "hi", "h", NULL, 0));
	cj_job *job = (cj_job *)&job;
	char *data = (char *)&data;
	const char *bad[] = {"hi", NULL};
	const char *empty[] = {"mid", ""};
	const char *many[CJ_ACCEPT_TYPES_MAX + 1];
	for (size_t i = 0; i < CJ_ACCEPT_TYPES_MAX + 1; i++) many[i] = "hi";
	CHECK_RC(cj_accept_types(db, prio, 0, NULL, &job, &data), CJ_INVALID);
	CHECK(job == NULL && data == NULL);
	CHECK_RC(cj_accept_types(db, NULL, 1, NULL, &job, &data), CJ_INVALID);
	CHECK_RC(cj_accept_types(db, bad, 2, NULL, &job, &data), CJ_INVALID);
	CHECK_RC(cj_accept_types(db, empty, 2, NULL, &job, &data), CJ_INVALID);
	CHECK_RC(cj_accept_types(db, many, CJ_ACCEPT_TYPES_MAX + 1, NULL, &job, &data),
	         CJ_INVALID);
	CHECK_RC(cj_accept_types(NULL, prio, 3, NULL, &job, &data), CJ_INVALID);
	CHECK_RC(cj_accept_types(db, prio, 3, NULL, NULL, &data), CJ_INVALID);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = -2;
	CHECK_RC(cj_accept_types(db, prio, 3, &o, &job, &data), CJ_INVALID);
	size_t n = 7;
	cj_job *jobs[2];
	CHECK_RC(cj_accept_many_types(db, prio, 3, NULL, 0, jobs, NULL, &n), CJ_INVALID);
	CHECK_INT(n, 0);
	CHECK_RC(cj_accept_many_types(db, prio, 0, NULL, 2, jobs, NULL, &n), CJ_INVALID);
	CHECK(jobs[0] == NULL && jobs[1] == NULL);
	CHECK_INT(state_of(db, "hi", "h"), CJ_PENDING);
	/* the full count is fine */
	CHECK_OK(cj_accept_types(db, many, CJ_ACCEPT_TYPES_MAX, NULL, &job, &data));
	CHECK_STR(cj_job_id(job), "h");
	cj_job_free(job);
	cj_free(data);
	cj_close(db);
}

/* While jobs are there to take, an accept claims without a look first: on an
 * engine that looks before it claims (the embedded one), the accept after
 * one that took a job reads less than the first; on the others the same.
 * Each accept still takes the oldest job, and the last, finding none,
 * says so and takes nothing. */
TEST(accept_claims_first_while_busy) {
	cj_db *db = open_nomon();
	CHECK_OK(cj_set_type_timeout(db, "busy", 60));
	const char *ids[] = {"b1", "b2", "b3"};
	for (size_t i = 0; i < 3; i++) CHECK_OK(cj_add(db, NULL, "busy", ids[i], NULL, 0));
	uint64_t reads[3];
	for (size_t i = 0; i < 3; i++) {
		cj_job *job = NULL;
		uint64_t r0 = reads_of(db);
		CHECK_OK(cj_accept(db, "busy", NULL, &job, NULL));
		reads[i] = reads_of(db) - r0;
		CHECK_STR(cj_job_id(job), ids[i]);
		CHECK_OK(cj_finish(db, NULL, job, NULL));
		cj_job_free(job);
	}
	note("  store reads of three accepts: %llu, %llu, %llu\n", (unsigned long long)reads[0],
	     (unsigned long long)reads[1], (unsigned long long)reads[2]);
	CHECK_INT(reads[2], reads[1]);
	if (strcmp(cj_db_engine(db), "lmdb") == 0) CHECK(reads[1] < reads[0]);
	else CHECK(reads[1] <= reads[0]);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	cj_job *job = (cj_job *)&job;
	CHECK_RC(cj_accept(db, "busy", &o, &job, NULL), CJ_NOT_FOUND);
	CHECK(job == NULL);
	/* and after that, a job added is taken as ever */
	CHECK_OK(cj_add(db, NULL, "busy", "b4", NULL, 0));
	CHECK_OK(cj_accept(db, "busy", &o, &job, NULL));
	CHECK_STR(cj_job_id(job), "b4");
	cj_job_free(job);
	cj_close(db);
}

TEST_MAIN(ENTRY(accept_basic), ENTRY(accept_only_its_type), ENTRY(accept_not_twice),
          ENTRY(accept_fresh_lock), ENTRY(accept_fresh_lock_after_fork),
          ENTRY(accept_exactly_once),
          ENTRY(accept_timeout_zero), ENTRY(accept_timeout_n),
          ENTRY(accept_bad_timeout), ENTRY(accept_wait_does_not_spin),
          ENTRY(accept_woken_by_thread), ENTRY(accept_one_job_many_waiters),
          ENTRY(accept_no_schedule_woken_by_thread), ENTRY(accept_woken_by_process),
          ENTRY(accept_sched_not_early), ENTRY(accept_wakes_when_due),
          ENTRY(accept_waiting_sees_new_schedule), ENTRY(accept_max_sched_time),
          ENTRY(accept_order), ENTRY(accept_order_after_reschedule),
          ENTRY(accept_no_schedule), ENTRY(accept_no_schedule_finds_any),
          ENTRY(accept_no_schedule_invalid), ENTRY(accept_types_order),
          ENTRY(accept_many_types_batch), ENTRY(accept_types_woken_by_third),
          ENTRY(accept_types_wakes_when_due), ENTRY(accept_types_invalid),
          ENTRY(accept_claims_first_while_busy))
