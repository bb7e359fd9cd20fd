/*
 * Group commit across processes: calls of different processes sharing an
 * embedded store, made without a caller's transaction, share one commit.
 *  - processes_get_their_own_results: 8 processes run a script of calls
 *    whose results are known (successes interleaved with CJ_EXISTS,
 *    CJ_HALT, CJ_NOT_FOUND, and a job handle's resubmit flag), each its
 *    own type, one call at a time, in parallel: each call returns what it
 *    would alone, with its own cj_last_error(); on the embedded engine
 *    calls were combined across processes (cj_stats.combined_processes);
 *    on PostgreSQL none are.
 *  - claims_combined: 6 processes drain two types (one limited to 5
 *    running) one or three jobs a claim, with their data: each job is
 *    taken once, with the lock, fence and attempt the store holds and its
 *    data (some too large for a slot: their claims run alone); the limit
 *    holds; on the embedded engine the claims were combined across
 *    processes.
 *  - claims_combined_beside_layout_1: the same with the combine file's
 *    start held by processes of its first layout.
 *  - kill9_leader_before_commit, kill9_leader_after_commit (fault-injection
 *    builds: CJ_TEST_COMBINE_KILL): a process leads a batch holding other
 *    processes' calls and is killed exactly before its commit, or after it
 *    and before it tells the others: every other caller gets the result it
 *    would have had alone (its add on disk; a wrong lock CJ_HALT; a finish
 *    CJ_OK, once, though run again it would give CJ_HALT; a claim its
 *    job, held by it alone, with its fence), the
 *    leader's own call is on disk only after the commit, the store
 *    verifies.
 *  - kill9_waiter: a process killed while its claim waits in a slot for a
 *    leader: the others' calls go on, its slot is reused, its claim
 *    commits with the leader's batch and its job comes back after the
 *    type's timeout (a second attempt), the store verifies.
 *  - kill9_random: 4 processes add, take and finish jobs one call at a
 *    time; one of them is killed at a random point (leading, waiting,
 *    between calls): every acknowledged call of it is on disk, the others
 *    get every call right to the end, the store verifies.
 * The batch a leader takes is built while a process holds the writer (a
 * caller's transaction), so that the calls meet in one batch; the tests
 * wait a little for the calls to be posted, and check that they met.
 */
#include "testutil.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROCS 8
#define ROUNDS 6

static const char *OTHER_LOCK = "00000000-0000-4000-8000-000000000001";

/* ---- processes_get_their_own_results ------------------------------------- */

struct script_arg {
	int p;
	t_gate start;
	chan out; /* the process's cj_stats.combined_processes */
};

static int script(void *v) {
	struct script_arg *a = v;
	cj_db *db = open_nomon();
	char type[16];
	snprintf(type, sizeof type, "x%d", a->p);
	if (t_gate_wait(&a->start, 60000) != 0) return 90;
	for (int k = 0; k < ROUNDS; k++) {
		char id[32], data[64], done[64];
		snprintf(id, sizeof id, "j%d", k);
		snprintf(data, sizeof data, "{\"p\":%d,\"k\":%d}", a->p, k);
		snprintf(done, sizeof done, "{\"done\":%d}", k);
		CHECK_OK(cj_add(db, NULL, type, id, data, 0));
		cj_add_opts uo = CJ_ADD_OPTS_INIT;
		uo.unique = CJ_UNIQUE_ID;
		CHECK_RC(cj_add_ex(db, NULL, type, id, "{}", &uo), CJ_EXISTS);
		CHECK_DETAIL("is pending");
		cj_job *job = take_id(db, type, id), *wrong = NULL, *missing = NULL;
		CHECK_OK(cj_job_resume(type, id, OTHER_LOCK, &wrong));
		CHECK_RC(cj_update(db, NULL, wrong, "{}"), CJ_HALT);
		CHECK_DETAIL("is no longer held with lock");
		CHECK_OK(cj_update(db, NULL, job, "{\"u\":1}"));
		CHECK(!cj_is_resubmitted(job));
		if (k % 2) {
			/* an add while it runs flags it; the processor's next update
			 * tells (the flag comes back through the slot) */
			CHECK_OK(cj_add(db, NULL, type, id, data, 0));
			CHECK_OK(cj_update(db, NULL, job, NULL));
		} else {
			CHECK_OK(cj_resubmit(db, NULL, job, CJ_SCHED_KEEP, NULL));
		}
		CHECK(cj_is_resubmitted(job));
		CHECK_OK(cj_finish(db, NULL, job, done)); /* resubmitted: pending again */
		CHECK_RC(cj_finish(db, NULL, job, done), CJ_HALT);
		check_job_is(db, type, id, CJ_PENDING, done);
		cj_job_free(job);
		job = take_id(db, type, id);
		if (k % 3 == 0) {
			CHECK_OK(cj_fail(db, NULL, job, "{\"e\":1}"));
			CHECK_RC(cj_fail(db, NULL, job, "{\"e\":2}"), CJ_HALT);
			CHECK(state_of(db, type, id) != CJ_RUNNING);
		} else {
			CHECK_OK(cj_finish(db, NULL, job, NULL));
			check_job_is(db, type, id, CJ_FINISHED, done);
		}
		CHECK_OK(cj_job_resume(type, "missing", OTHER_LOCK, &missing));
		CHECK_RC(cj_finish(db, NULL, missing, NULL), CJ_HALT);
		CHECK_DETAIL("was removed");
		CHECK_RC(cj_resubmit(db, NULL, missing, 0, NULL), CJ_NOT_FOUND);
		cj_job_free(job);
		cj_job_free(wrong);
		cj_job_free(missing);
	}
	cj_stats st;
	CHECK_OK(cj_db_stats(db, &st));
	chan_put(&a->out, (int64_t)st.combined_processes);
	cj_close(db);
	return 0;
}

TEST(processes_get_their_own_results) {
	static struct script_arg a[PROCS];
	int pid[PROCS];
	for (int p = 0; p < PROCS; p++) {
		char type[16];
		snprintf(type, sizeof type, "x%d", p);
		setup_type(type, 3600);
	}
	int64_t t0 = t_now_ms();
	for (int p = 0; p < PROCS; p++) {
		a[p].p = p;
		t_gate_init(&a[p].start);
		chan_init(&a[p].out);
		pid[p] = t_spawn(script, &a[p]);
	}
	for (int p = 0; p < PROCS; p++) t_gate_open(&a[p].start);
	int64_t combined = 0;
	for (int p = 0; p < PROCS; p++) {
		combined += chan_get(&a[p].out, 120000);
		check_exit(pid[p], 60000, 0);
		t_gate_close(&a[p].start);
		chan_close(&a[p].out);
	}
	note("  %d processes in %lld ms, %lld calls combined across processes\n", PROCS,
	     (long long)(t_now_ms() - t0), (long long)combined);
	if (t_is_lmdb()) CHECK(combined > 0);
	else CHECK_INT(combined, 0);
}

/* ---- claims_combined ----------------------------------------------------------- */

#define DRAINERS 6
#define CA_JOBS 60
#define CB_JOBS 30
#define CB_LIMIT 5
#define BIG_PAD 9000 /* a job whose claim does not fit a slot: taken alone */

/* What a drainer took: one message per job, then one with idx -1. */
struct took {
	int32_t cb, idx, data_ok, attempt;
	uint64_t fence; /* idx -1: its cj_stats.combined_processes */
	char lock[40];
};

struct drain_arg {
	int p;
	t_gate start;
	chan out;
};

/* The data of job idx of type ca (a big one every 15th). */
static char *ca_data(int idx) {
	static char buf[BIG_PAD + 64];
	int n = snprintf(buf, sizeof buf, "{\"i\":%d", idx);
	if (idx % 15 == 7) {
		n += snprintf(buf + n, sizeof buf - (size_t)n, ",\"pad\":\"");
		memset(buf + n, 'x', BIG_PAD);
		n += BIG_PAD;
		buf[n++] = '"';
	}
	snprintf(buf + n, sizeof buf - (size_t)n, "}");
	return buf;
}

/* Takes jobs of cb (limited) before those of ca, one or three at a time,
 * until none is left, and tells what it took. */
static int drainer(void *v) {
	struct drain_arg *a = v;
	cj_db *db = open_nomon();
	static const char *const types[2] = {"cb", "ca"};
	size_t max = a->p % 2 ? 3 : 1;
	if (t_gate_wait(&a->start, 60000) != 0) return 90;
	for (;;) {
		cj_job *jobs[3];
		char *data[3];
		size_t n;
		cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
		o.timeout_ms = 0;
		int rc = cj_accept_many_types(db, types, 2, &o, max, jobs, data, &n);
		if (rc == CJ_NOT_FOUND) break;
		CHECK_OK(rc);
		CHECK(n >= 1 && n <= max);
		for (size_t k = 0; k < n; k++) {
			struct took t = {0};
			t.cb = strcmp(cj_job_type(jobs[k]), "cb") == 0;
			t.idx = atoi(cj_job_id(jobs[k]) + 1);
			t.data_ok = t.cb ? json_same(data[k], "{}") : json_same(data[k], ca_data(t.idx));
			t.fence = cj_job_fence(jobs[k]);
			snprintf(t.lock, sizeof t.lock, "%s", cj_job_lock(jobs[k]));
			chan_send(&a->out, &t, sizeof t);
			cj_job_free(jobs[k]);
			cj_free(data[k]);
		}
	}
	cj_stats st;
	CHECK_OK(cj_db_stats(db, &st));
	struct took end = {0, -1, 0, 0, st.combined_processes, ""};
	chan_send(&a->out, &end, sizeof end);
	cj_close(db);
	return 0;
}

/* Parallel processes drain two types, one limited, taking jobs with their
 * data: each job is taken once, with the lock, fence and attempt the store
 * holds; the limited type gives no more than its limit; claims whose jobs
 * do not fit a slot run alone, intact; on the embedded engine the claims
 * were combined across processes. layout_1: the store's combine file is
 * held by processes of the file's first layout, which did not combine
 * claims (its magic number at its start). */
static void drain_claims(int layout_1) {
	static struct drain_arg a[DRAINERS];
	static int taken[2][CA_JOBS];
	int pid[DRAINERS];
	setup_type("ca", 3600);
	setup_type("cb", 3600);
	{
		cj_db *db = open_nomon();
		cj_type_limits lim = CJ_TYPE_LIMITS_INIT;
		lim.max_running = CB_LIMIT;
		CHECK_OK(cj_set_type_limits(db, "cb", &lim));
		cj_tx *tx;
		CHECK_OK(cj_tx_begin(db, &tx));
		for (int i = 0; i < CA_JOBS; i++) {
			char id[16];
			snprintf(id, sizeof id, "a%d", i);
			CHECK_OK(cj_add(db, tx, "ca", id, ca_data(i), 0));
			snprintf(id, sizeof id, "b%d", i);
			if (i < CB_JOBS) CHECK_OK(cj_add(db, tx, "cb", id, "{}", 0));
		}
		CHECK_OK(cj_tx_commit(tx));
		cj_close(db);
	}
	if (layout_1) combine_mark_layout_1();
	memset(taken, 0, sizeof taken);
	for (int p = 0; p < DRAINERS; p++) {
		a[p].p = p;
		t_gate_init(&a[p].start);
		chan_init(&a[p].out);
		pid[p] = t_spawn(drainer, &a[p]);
	}
	for (int p = 0; p < DRAINERS; p++) t_gate_open(&a[p].start);
	cj_db *db = open_nomon();
	int64_t combined = 0;
	int got[2] = {0, 0};
	for (int p = 0; p < DRAINERS; p++) {
		for (;;) {
			struct took t;
			chan_recv(&a[p].out, &t, sizeof t, 120000);
			if (t.idx < 0) {
				combined += (int64_t)t.fence;
				break;
			}
			CHECK(t.idx >= 0 && t.idx < (t.cb ? CB_JOBS : CA_JOBS));
			CHECK(t.data_ok);
			CHECK_INT(taken[t.cb][t.idx]++, 0); /* each once */
			got[t.cb]++;
			char id[16];
			snprintf(id, sizeof id, "%c%d", t.cb ? 'b' : 'a', t.idx);
			cj_job_info info;
			CHECK_OK(cj_get_job(db, NULL, t.cb ? "cb" : "ca", id, &info));
			CHECK_INT(info.state, CJ_RUNNING);
			CHECK_INT(info.attempt, 1);
			CHECK(info.fence == t.fence);
			cj_job_info_clear(&info);
			cj_job *job;
			CHECK_OK(cj_job_resume(t.cb ? "cb" : "ca", id, t.lock, &job));
			CHECK_OK(cj_update(db, NULL, job, NULL)); /* its lock */
			cj_job_free(job);
		}
		check_exit(pid[p], 60000, 0);
		t_gate_close(&a[p].start);
		chan_close(&a[p].out);
	}
	CHECK_INT(got[0], CA_JOBS);
	CHECK_INT(got[1], CB_LIMIT);
	note("  %d processes took %d jobs, %lld claims and calls combined across processes\n",
	     DRAINERS, got[0] + got[1], (long long)combined);
	if (t_is_lmdb()) CHECK(combined > 0);
	else CHECK_INT(combined, 0);
	check_store(db, NULL, NULL);
	cj_close(db);
}

TEST(claims_combined) { drain_claims(0); }

/* Processes of this layout combine beside those of the first one. */
TEST(claims_combined_beside_layout_1) {
	SKIP_UNLESS_LMDB();
	drain_claims(1);
}

/* ---- a batch built while the writer is held -------------------------------- */

struct holder_arg {
	t_gate begin, ready, release;
};

/* Holds the writer (a caller's transaction) from begin until released.
 * (Opening a store takes the writer: the callers open theirs first.) */
static int holder(void *v) {
	struct holder_arg *h = v;
	cj_db *db = open_nomon();
	if (t_gate_wait(&h->begin, 60000) != 0) return 90;
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	t_gate_open(&h->ready);
	if (t_gate_wait(&h->release, 60000) != 0) return 90;
	cj_tx_abort(tx);
	cj_close(db);
	return 0;
}

struct caller_arg {
	const char *id;      /* the job it adds */
	const char *kill_at; /* CJ_TEST_COMBINE_KILL, or NULL */
	const char *lock;    /* not NULL: updates job "held" with it instead,
	                        which must give CJ_HALT */
	char finish[40];     /* not empty: finishes job "fin" with this lock
	                        instead, which must give CJ_OK (once: run
	                        again it would give CJ_HALT) */
	int accept;          /* takes job "acc" of type "ka" instead, with its
	                        data, and tells its fence after its stats */
	t_gate ready, go;
	chan stats; /* its cj_stats.combined_processes, when it returns */
};

static int caller(void *v) {
	struct caller_arg *c = v;
	if (c->kill_at) setenv("CJ_TEST_COMBINE_KILL", c->kill_at, 1);
	cj_db *db = open_nomon();
	t_gate_open(&c->ready);
	if (t_gate_wait(&c->go, 60000) != 0) return 90;
	cj_job *taken = NULL;
	if (c->accept) {
		char *data = NULL;
		taken = take_data(db, "ka", &data);
		CHECK_STR(cj_job_id(taken), "acc");
		CHECK_JSON(data, "{\"a\":1}");
		cj_free(data);
	} else if (c->finish[0]) {
		cj_job *job;
		CHECK_OK(cj_job_resume("kl", "fin", c->finish, &job));
		CHECK_OK(cj_finish(db, NULL, job, "{\"f\":1}"));
		cj_job_free(job);
	} else if (c->lock) {
		cj_job *job;
		CHECK_OK(cj_job_resume("kl", "held", c->lock, &job));
		CHECK_RC(cj_update(db, NULL, job, "{}"), CJ_HALT);
		CHECK_DETAIL("is no longer held with lock");
		cj_job_free(job);
	} else {
		CHECK_OK(cj_add(db, NULL, "kl", c->id, "{}", 0));
	}
	cj_stats st;
	CHECK_OK(cj_db_stats(db, &st));
	chan_put(&c->stats, (int64_t)st.combined_processes);
	if (taken) {
		chan_put(&c->stats, (int64_t)cj_job_fence(taken));
		CHECK_OK(cj_update(db, NULL, taken, NULL)); /* it holds it */
		cj_job_free(taken);
	}
	cj_close(db);
	return 0;
}

/* Starts c in a process of its own, its store open, waiting for go. */
static int start_caller(struct caller_arg *c) {
	gates_init(&c->ready, &c->go);
	chan_init(&c->stats);
	return spawn_ready(caller, c, &c->ready, 60000);
}

static void caller_done(struct caller_arg *c) {
	gates_close(&c->ready, &c->go);
	chan_close(&c->stats);
}

/* Starts the holder; it holds the writer on return. */
static int start_holder(struct holder_arg *h) {
	gates_init(&h->begin, &h->ready, &h->release);
	return t_spawn(holder, h);
}

static void holder_begin(struct holder_arg *h) {
	t_gate_open(&h->begin);
	CHECK(t_gate_wait(&h->ready, 60000) == 0);
}

static void holder_done(struct holder_arg *h) {
	gates_close(&h->begin, &h->ready, &h->release);
}

#define WAITERS 5

/* A leader (CJ_TEST_COMBINE_KILL kill_at) takes the calls of WAITERS
 * processes into its batch and is killed; the waiters' calls succeed (or
 * give CJ_HALT) all the same. Returns whether the leader's own add is on
 * disk. */
static int leader_killed(const char *kill_at) {
	setup_type("kl", 3600);
	setup_type("ka", 3600);
	add_job("kl", "held", "{}");
	add_job("ka", "acc", "{\"a\":1}");
	char fin_lock[40];
	{
		cj_db *db = open_nomon();
		cj_job *held = take_id(db, "kl", "held");
		CHECK_OK(cj_add(db, NULL, "kl", "fin", "{}", 0));
		cj_job *fin = take_id(db, "kl", "fin");
		snprintf(fin_lock, sizeof fin_lock, "%s", cj_job_lock(fin));
		cj_job_free(held);
		cj_job_free(fin);
		cj_close(db);
	}
	static struct holder_arg h;
	static struct caller_arg lc, w[WAITERS];
	int hp = start_holder(&h);
	lc = (struct caller_arg){.id = "leader", .kill_at = kill_at};
	int lp = start_caller(&lc);
	int wp[WAITERS];
	for (int i = 0; i < WAITERS; i++) {
		static const char *ids[WAITERS] = {"w0", "w1", "w2", "w3", "w4"};
		w[i] = (struct caller_arg){.id = ids[i], .lock = i == 2 ? OTHER_LOCK : NULL,
		                           .accept = i == 4};
		if (i == 3) snprintf(w[i].finish, sizeof w[i].finish, "%s", fin_lock);
		wp[i] = start_caller(&w[i]);
	}
	holder_begin(&h);
	/* the leader posts first: it leads, waiting for the writer */
	t_gate_open(&lc.go);
	sleep_ms(300);
	for (int i = 0; i < WAITERS; i++) t_gate_open(&w[i].go);
	sleep_ms(300); /* their calls posted, waiting for the leader */
	t_gate_open(&h.release);
	check_exit(hp, 60000, 0);
	/* killed: its batch held calls of the others (combine.c) */
	check_exit(lp, 60000, 128 + SIGKILL);
	uint64_t fence = 0;
	for (int i = 0; i < WAITERS; i++) {
		chan_get(&w[i].stats, 60000);
		if (w[i].accept) fence = (uint64_t)chan_get(&w[i].stats, 60000);
		check_exit(wp[i], 60000, 0);
		caller_done(&w[i]);
	}
	caller_done(&lc);
	holder_done(&h);
	cj_db *db = open_nomon();
	check_job_is(db, "kl", "w0", CJ_PENDING, "{}");
	check_job_is(db, "kl", "w1", CJ_PENDING, "{}");
	check_job_is(db, "kl", "held", CJ_RUNNING, "{}");
	check_job_is(db, "kl", "fin", CJ_FINISHED, "{\"f\":1}");
	/* taken once, by the process that believes it holds it */
	cj_job_info info;
	CHECK_OK(cj_get_job(db, NULL, "ka", "acc", &info));
	CHECK_INT(info.state, CJ_RUNNING);
	CHECK_INT(info.attempt, 1);
	CHECK(info.fence == fence);
	cj_job_info_clear(&info);
	cj_state st;
	int rc = cj_get_job_state(db, NULL, "kl", "leader", &st);
	CHECK(rc == CJ_OK || rc == CJ_NOT_FOUND);
	check_store(db, NULL, NULL);
	cj_close(db);
	return rc == CJ_OK;
}

#ifdef CJ_TEST_FAULTS
#define SKIP_UNLESS_FAULTS() (void)0
#else
#define SKIP_UNLESS_FAULTS()                                                \
	do {                                                                    \
		note("  skipped: not a fault-injection build\n");                   \
		return;                                                             \
	} while (0)
#endif

TEST(kill9_leader_before_commit) {
	SKIP_UNLESS_LMDB();
	SKIP_UNLESS_FAULTS();
	CHECK(!leader_killed("commit")); /* nothing of its batch landed */
}

TEST(kill9_leader_after_commit) {
	SKIP_UNLESS_LMDB();
	SKIP_UNLESS_FAULTS();
	CHECK(leader_killed("publish")); /* its batch landed */
}

/* ---- kill9_waiter ---------------------------------------------------------- */

static int add_many(void *v) {
	(void)v;
	cj_db *db = open_nomon();
	for (int i = 0; i < 80; i++) { /* more calls than slots */
		char id[32];
		snprintf(id, sizeof id, "m%d", i);
		CHECK_OK(cj_add(db, NULL, "kl", id, "{}", 0));
	}
	cj_close(db);
	return 0;
}

TEST(kill9_waiter) {
	SKIP_UNLESS_LMDB();
	setup_type("kl", 3600);
	setup_type("ka", 1);
	add_job("ka", "acc", "{\"a\":1}");
	static struct holder_arg h;
	static struct caller_arg lc, vc;
	int hp = start_holder(&h);
	lc = (struct caller_arg){.id = "leader"};
	vc = (struct caller_arg){.id = "victim", .accept = 1};
	int lp = start_caller(&lc);
	int vp = start_caller(&vc);
	holder_begin(&h);
	t_gate_open(&lc.go);
	sleep_ms(200);
	t_gate_open(&vc.go);
	sleep_ms(500); /* its claim posted, waiting */
	CHECK(kill(vp, SIGKILL) == 0);
	check_exit(vp, 60000, 128 + SIGKILL);
	t_gate_open(&h.release);
	check_exit(hp, 60000, 0);
	chan_get(&lc.stats, 60000);
	check_exit(lp, 60000, 0);
	int mp = t_spawn(add_many, NULL);
	check_exit(mp, 60000, 0);
	cj_db *db = open_nomon();
	check_job_is(db, "kl", "leader", CJ_PENDING, "{}");
	check_job_is(db, "kl", "m79", CJ_PENDING, "{}");
	check_store(db, NULL, NULL);
	cj_close(db);
	/* its claim ran with the leader's batch: the job held by nobody alive
	 * comes back after the type's timeout (a second attempt), once */
	db = t_open();
	cj_job *back = take_wait(db, "ka", 30000, NULL);
	cj_job_info info;
	CHECK_OK(cj_get_job(db, NULL, "ka", "acc", &info));
	CHECK_INT(info.attempt, 2);
	CHECK(info.fence == cj_job_fence(back));
	cj_job_info_clear(&info);
	cj_job_free(back);
	check_store(db, NULL, NULL);
	cj_close(db);
	holder_done(&h);
	caller_done(&lc);
	caller_done(&vc);
}

/* ---- kill9_random ------------------------------------------------------------ */

#define CHURNERS 4
#define CHURN_JOBS 60

struct churn_arg {
	int p;
	t_gate start;
	chan acks; /* i * 2 + 0: job i added; i * 2 + 1: finished */
};

static int churn(void *v) {
	struct churn_arg *a = v;
	cj_db *db = open_nomon();
	char type[16];
	snprintf(type, sizeof type, "c%d", a->p);
	if (t_gate_wait(&a->start, 60000) != 0) return 90;
	for (int i = 0; i < CHURN_JOBS; i++) {
		char id[32];
		snprintf(id, sizeof id, "j%d", i);
		CHECK_OK(cj_add(db, NULL, type, id, "{}", 0));
		chan_put(&a->acks, i * 2);
		cj_job *job = take_id(db, type, id);
		CHECK_OK(cj_update(db, NULL, job, "{\"u\":1}"));
		CHECK_OK(cj_finish(db, NULL, job, NULL));
		CHECK_RC(cj_finish(db, NULL, job, NULL), CJ_HALT);
		cj_job_free(job);
		chan_put(&a->acks, i * 2 + 1);
	}
	cj_close(db);
	return 0;
}

TEST(kill9_random) {
	SKIP_UNLESS_LMDB();
	static struct churn_arg a[CHURNERS];
	int pid[CHURNERS];
	for (int p = 0; p < CHURNERS; p++) {
		char type[16];
		snprintf(type, sizeof type, "c%d", p);
		setup_type(type, 3600);
	}
	for (int p = 0; p < CHURNERS; p++) {
		a[p].p = p;
		t_gate_init(&a[p].start);
		chan_init(&a[p].acks);
		pid[p] = t_spawn(churn, &a[p]);
	}
	for (int p = 0; p < CHURNERS; p++) t_gate_open(&a[p].start);
	int victim = (int)(t_now_ms() % CHURNERS);
	int kill_after = 10 + (int)(t_now_ms() % 90);
	int64_t last = -1;
	for (int n = 0; n < kill_after; n++) last = chan_get(&a[victim].acks, 60000);
	CHECK(kill(pid[victim], SIGKILL) == 0);
	check_exit(pid[victim], 60000, 128 + SIGKILL);
	for (int p = 0; p < CHURNERS; p++)
		if (p != victim) check_exit(pid[p], 120000, 0);
	cj_db *db = open_nomon();
	for (int p = 0; p < CHURNERS; p++) {
		char type[16];
		snprintf(type, sizeof type, "c%d", p);
		int upto = p == victim ? (int)last : CHURN_JOBS * 2 - 1;
		for (int i = 0; i * 2 <= upto; i++) {
			char id[32];
			snprintf(id, sizeof id, "j%d", i);
			cj_state st = state_of(db, type, id);
			if (i * 2 + 1 <= upto) CHECK_INT(st, CJ_FINISHED);
		}
		t_gate_close(&a[p].start);
		chan_close(&a[p].acks);
	}
	note("  process %d killed after %d acknowledgments\n", victim, kill_after);
	check_store(db, NULL, NULL);
	cj_close(db);
}

TEST_MAIN_VERIFIED(ENTRY(processes_get_their_own_results), ENTRY(claims_combined),
                   ENTRY(claims_combined_beside_layout_1),
                   ENTRY(kill9_leader_before_commit),
                   ENTRY(kill9_leader_after_commit), ENTRY(kill9_waiter), ENTRY(kill9_random))
