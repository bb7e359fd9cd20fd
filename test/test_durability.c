/*
 * Durability of the embedded engine across SIGKILL: acknowledged adds
 * survive, an open transaction of a killed process neither lands nor keeps
 * the writer lock, a killed processor's job stays running and then comes
 * back through the monitor, and the relaxed sync mode works.
 *
 * Every child opens its own cj_db after the fork; the parent never holds an
 * open handle while it forks.
 */
#include "testutil.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- kill9_keeps_acknowledged ---------------------------------------------- */

#define KILL_ROUNDS 3
#define ACKS_BEFORE_KILL 300

struct adder_arg {
	int fd[2];
	cj_sync_mode sync;
	int round;
};

static void kill_id(char *id, size_t idlen, char *data, size_t dlen, int round, int32_t i) {
	snprintf(id, idlen, "r%d-k%07d", round, (int)i);
	snprintf(data, dlen, "{\"round\":%d,\"i\":%d}", round, (int)i);
}

/* Adds jobs r<round>-k0000000, ... one by one; writes i to the pipe only
 * after cj_add() of job i returned CJ_OK. Runs until killed. */
static int adder(void *p) {
	struct adder_arg *a = p;
	close(a->fd[0]);
	cj_options o = CJ_OPTIONS_INIT;
	o.sync = a->sync;
	o.no_monitor = 1;
	cj_db *db = t_open_opts(&o);
	for (int32_t i = 0; i < 10000000; i++) {
		char id[32], data[64];
		kill_id(id, sizeof id, data, sizeof data, a->round, i);
		CHECK_OK(cj_add(db, NULL, "dur", id, data, 0));
		if (write(a->fd[1], &i, sizeof i) != (ssize_t)sizeof i) _exit(97);
	}
	_exit(96);
}

/* Reads acknowledgments until EOF; kills the adder after `kill_after` of
 * them. Returns the number acknowledged. */
static int32_t collect_acks(int fd, int pid, int32_t kill_after) {
	int32_t n = 0;
	int killed = 0;
	int64_t end = t_now_ms() + 120000;
	for (;;) {
		int64_t left = end - t_now_ms();
		if (left <= 0) t_fail(__FILE__, __LINE__, "acknowledgments stalled at %d", (int)n);
		struct pollfd pf = {fd, POLLIN, 0};
		int r = poll(&pf, 1, (int)left);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) continue;
		int32_t v;
		ssize_t got = read(fd, &v, sizeof v);
		if (got < 0 && errno == EINTR) continue;
		if (got == 0) break; /* the adder is gone and the pipe drained */
		CHECK_INT(got, sizeof v);
		CHECK_INT(v, n); /* in order, none missing */
		n++;
		if (!killed && n >= kill_after) {
			CHECK(kill(pid, SIGKILL) == 0);
			killed = 1;
		}
	}
	if (!killed)
		t_fail(__FILE__, __LINE__, "the adder ended by itself after %d adds", (int)n);
	return n;
}

/* Every acknowledged job of a round is there, pending, with its data; at
 * most the add in flight at the kill landed unacknowledged. */
static void check_round(cj_db *db, int round, int32_t acked) {
	for (int32_t i = 0; i <= acked; i++) {
		char id[32], data[64];
		kill_id(id, sizeof id, data, sizeof data, round, i);
		cj_job_info info = {0};
		int rc = cj_get_job(db, NULL, "dur", id, &info);
		if (i == acked) { /* the one in flight: either way */
			CHECK(rc == CJ_OK || rc == CJ_NOT_FOUND);
			if (rc == CJ_NOT_FOUND) break;
		} else if (rc != CJ_OK) {
			t_fail(__FILE__, __LINE__, "acknowledged job %s: %s (%s)", id,
			       cj_err_name(rc), cj_last_error());
		}
		CHECK_INT(info.state, CJ_PENDING);
		CHECK_JSON(info.data, data);
		cj_job_info_clear(&info);
	}
}

static void kill9_adder(cj_sync_mode sync) {
	setup_type("dur", 60);
	int32_t acked[KILL_ROUNDS];
	size_t total_acked = 0;
	for (int r = 0; r < KILL_ROUNDS; r++) {
		struct adder_arg a = {.sync = sync, .round = r};
		if (pipe(a.fd) != 0) t_fail(__FILE__, __LINE__, "pipe");
		int pid = t_spawn(adder, &a);
		close(a.fd[1]);
		int64_t t0 = t_now_ms();
		/* a different kill point each round */
		acked[r] = collect_acks(a.fd[0], pid, ACKS_BEFORE_KILL + 37 * r);
		close(a.fd[0]);
		check_exit(pid, 10000, 128 + SIGKILL);
		note("  round %d: %d adds acknowledged in %lld ms before SIGKILL\n", r,
		     (int)acked[r], (long long)(t_now_ms() - t0));
		total_acked += (size_t)acked[r];

		cj_db *db = open_nomon(); /* the first open after the crash */
		for (int q = 0; q <= r; q++) check_round(db, q, acked[q]);
		size_t total = count_jobs(db, "dur");
		CHECK(total >= total_acked && total <= total_acked + (size_t)r + 1);
		cj_close(db);
	}

	/* and the store is fully usable */
	cj_db *db = open_nomon();
	note("  %zu jobs in the store, %zu acknowledged\n", count_jobs(db, "dur"),
	     total_acked);
	CHECK_OK(cj_add(db, NULL, "dur", "after", NULL, 0));
	cj_job *job = take_wait(db, "dur", 0, NULL);
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	cj_close(db);
}

TEST(kill9_keeps_acknowledged) {
	SKIP_UNLESS_LMDB();
	kill9_adder(CJ_SYNC_FULL);
}

/* CJ_SYNC_RELAXED still promises that commits survive a crash of the
 * process (only a crash of the machine may lose the last ones). */
TEST(kill9_keeps_acknowledged_relaxed) {
	SKIP_UNLESS_LMDB();
	kill9_adder(CJ_SYNC_RELAXED);
}

/* ---- kill9_in_open_tx ----------------------------------------------------- */

struct holder_arg {
	t_gate holding;
};

/* Begins a transaction, writes into it, and stalls without committing. */
static int holder(void *p) {
	struct holder_arg *a = p;
	cj_db *db = open_nomon();
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	for (int i = 0; i < 10; i++) {
		char id[16];
		snprintf(id, sizeof id, "u%d", i);
		CHECK_OK(cj_add(db, tx, "dur", id, "{\"uncommitted\":true}", 0));
	}
	CHECK_OK(cj_tx_put(tx, "uncommitted", 11, "yes", 3));
	t_gate_open(&a->holding);
	stall_forever();
}

struct writer_arg {
	t_gate opened, go, started, done;
	const char *id;
};

/* Adds one job (blocking while another process holds the writer lock),
 * then checks that nothing of the killed transaction is visible. */
static int writer(void *p) {
	struct writer_arg *a = p;
	cj_db *db = open_nomon();
	t_gate_open(&a->opened);
	CHECK_INT(t_gate_wait(&a->go, 20000), 0);
	t_gate_open(&a->started);
	CHECK_OK(cj_add(db, NULL, "dur", a->id, NULL, 0));
	t_gate_open(&a->done);
	for (int i = 0; i < 10; i++) {
		char id[16];
		snprintf(id, sizeof id, "u%d", i);
		cj_state st = 0;
		CHECK_RC(cj_get_job_state(db, NULL, "dur", id, &st), CJ_NOT_FOUND);
	}
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	void *v = NULL;
	size_t len = 0;
	CHECK_RC(cj_tx_get(tx, "uncommitted", 11, &v, &len), CJ_NOT_FOUND);
	CHECK_OK(cj_tx_put(tx, a->id, strlen(a->id), "w", 1));
	CHECK_OK(cj_tx_commit(tx));
	cj_close(db);
	return 0;
}

static void writer_gates(struct writer_arg *w, int init) {
	t_gate *g[] = {&w->opened, &w->go, &w->started, &w->done};
	for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
		if (init) t_gate_init(g[i]);
		else t_gate_close(g[i]);
	}
}

static int start_holder(struct holder_arg *h) {
	t_gate_init(&h->holding);
	int pid = t_spawn(holder, h);
	CHECK_INT(t_gate_wait(&h->holding, 20000), 0);
	return pid;
}

TEST(kill9_in_open_tx) {
	SKIP_UNLESS_LMDB();
	setup_type("dur", 60);

	/* 1. a writer of another process is blocked on the lock at the kill
	 * (it opens its store before the holder begins) */
	struct writer_arg w = {.id = "w1"};
	writer_gates(&w, 1);
	int wpid = t_spawn(writer, &w);
	CHECK_INT(t_gate_wait(&w.opened, 20000), 0);
	struct holder_arg h;
	int hpid = start_holder(&h);
	t_gate_open(&w.go);
	CHECK_INT(t_gate_wait(&w.started, 20000), 0);
	/* the holder has the writer lock: the add cannot complete */
	CHECK_INT(t_gate_wait(&w.done, 500), -1);
	CHECK(kill(hpid, SIGKILL) == 0);
	check_exit(hpid, 10000, 128 + SIGKILL);
	int64_t t0 = t_now_ms();
	CHECK_INT(t_gate_wait(&w.done, 20000), 0);
	note("  blocked writer went on %lld ms after the kill\n",
	     (long long)(t_now_ms() - t0));
	check_exit(wpid, 20000, 0);
	t_gate_close(&h.holding);
	writer_gates(&w, 0);

	/* 2. nobody waits at the kill; a new process writes afterwards */
	hpid = start_holder(&h);
	CHECK(kill(hpid, SIGKILL) == 0);
	check_exit(hpid, 10000, 128 + SIGKILL);
	struct writer_arg w2 = {.id = "w2"};
	writer_gates(&w2, 1);
	t_gate_open(&w2.go);
	wpid = t_spawn(writer, &w2);
	check_exit(wpid, 20000, 0);
	t_gate_close(&h.holding);
	writer_gates(&w2, 0);

	/* what landed: the writers' jobs and keys, none of the holders' */
	cj_db *db = open_nomon();
	CHECK_INT(count_jobs(db, "dur"), 2);
	CHECK_INT(state_of(db, "dur", "w1"), CJ_PENDING);
	CHECK_INT(state_of(db, "dur", "w2"), CJ_PENDING);
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	void *v = NULL;
	size_t len = 0;
	CHECK_RC(cj_tx_get(tx, "uncommitted", 11, &v, &len), CJ_NOT_FOUND);
	CHECK_OK(cj_tx_get(tx, "w1", 2, &v, &len));
	CHECK_INT(len, 1);
	cj_free(v);
	CHECK_OK(cj_tx_get(tx, "w2", 2, &v, &len));
	cj_free(v);
	cj_tx_abort(tx);
	cj_close(db);
}

/* ---- reopen_after_kill_of_processor --------------------------------------- */

struct proc_arg {
	t_gate working;
};

static int doomed_processor(void *p) {
	struct proc_arg *a = p;
	cj_db *db = open_nomon();
	cj_job *job = take_wait(db, "rp", 10000, NULL);
	CHECK_OK(cj_update(db, NULL, job, "{\"progress\":1}"));
	t_gate_open(&a->working);
	stall_forever();
}

TEST(reopen_after_kill_of_processor) {
	SKIP_UNLESS_LMDB();
	setup_type("rp", 1);
	add_job("rp", "j1", "{\"progress\":0}");

	struct proc_arg a;
	t_gate_init(&a.working);
	int pid = t_spawn(doomed_processor, &a);
	CHECK_INT(t_gate_wait(&a.working, 20000), 0);
	CHECK(kill(pid, SIGKILL) == 0);
	check_exit(pid, 10000, 128 + SIGKILL);
	t_gate_close(&a.working);

	/* reopened without monitors: still running, with its last update */
	cj_db *db = open_nomon();
	check_job_is(db, "rp", "j1", CJ_RUNNING, "{\"progress\":1}");
	cj_close(db);

	/* with monitors: pending again within two timeouts and a second */
	db = t_open();
	int64_t t0 = t_now_ms();
	cj_state st = 0;
	cj_sub *sub = sub_on_st(db, "rp", "j1", &st);
	if (st != CJ_PENDING) {
		CHECK_INT(st, CJ_RUNNING);
		cj_event ev = {0};
		CHECK_OK(cj_wait(&sub, 1, CJ_PENDING, 15000, &ev));
		CHECK_INT(ev.state, CJ_PENDING);
		CHECK_STR(ev.id, "j1");
		CHECK_JSON(ev.data, "{\"progress\":1}");
		cj_event_clear(&ev);
	}
	note("  pending again %lld ms after reopening\n", (long long)(t_now_ms() - t0));
	CHECK_OK(cj_unsubscribe(sub));

	char *data = NULL;
	cj_job *job = take_wait(db, "rp", 5000, &data);
	CHECK_JSON(data, "{\"progress\":1}");
	CHECK_OK(cj_finish(db, NULL, job, "{\"progress\":2}"));
	cj_job_free(job);
	cj_free(data);
	cj_close(db);

	db = open_nomon();
	check_job_is(db, "rp", "j1", CJ_FINISHED, "{\"progress\":2}");
	cj_close(db);
}

/* ---- relaxed_sync_works --------------------------------------------------- */

#define RELAXED_JOBS 50

struct batch_arg {
	cj_db *db;
	const char *prefix;
};

static int add_batch(cj_tx *tx, void *p) {
	struct batch_arg *b = p;
	for (int i = 0; i < RELAXED_JOBS; i++) {
		char id[32];
		snprintf(id, sizeof id, "%s%03d", b->prefix, i);
		int rc = cj_add(b->db, tx, "rx", id, "{\"n\":0}", 0);
		if (rc != CJ_OK) return rc;
	}
	return 0;
}

static void run_all(cj_db *db, int want) {
	for (int i = 0; i < want; i++) {
		char *data = NULL;
		cj_job *job = take_wait(db, "rx", 5000, &data);
		CHECK_JSON(data, "{\"n\":0}");
		CHECK_OK(cj_update(db, NULL, job, "{\"n\":1}"));
		CHECK_OK(cj_finish(db, NULL, job, "{\"n\":2}"));
		cj_job_free(job);
		cj_free(data);
	}
	check_empty(db, "rx", CJ_SCHED_NOW, 0);
}

static int finished_cb(const cj_job_info *info, void *arg) {
	(void)arg;
	if (info->state != CJ_FINISHED || !json_same(info->data, "{\"n\":2}")) {
		fprintf(stderr, "job %s: %s %s\n", info->id, cj_state_name(info->state),
		        info->data ? info->data : "(null)");
		return 1;
	}
	return 0;
}

static int relaxed_adder(void *p) {
	(void)p;
	cj_options o = CJ_OPTIONS_INIT;
	o.sync = CJ_SYNC_RELAXED;
	cj_db *db = t_open_opts(&o);
	struct batch_arg b = {db, "c"};
	CHECK_OK(cj_transact(db, add_batch, &b));
	cj_close(db);
	return 0;
}

TEST(relaxed_sync_works) {
	SKIP_UNLESS_LMDB();
	cj_options o = CJ_OPTIONS_INIT;
	o.sync = (cj_sync_mode)7;
	cj_db *bad = NULL;
	CHECK_RC(cj_open(t_url(), &o, &bad), CJ_INVALID);
	CHECK(bad == NULL);

	/* one relaxed handle does everything */
	o.sync = CJ_SYNC_RELAXED;
	cj_db *db = t_open_opts(&o);
	CHECK_OK(cj_set_type_timeout(db, "rx", 60));
	struct batch_arg b = {db, "a"};
	CHECK_OK(cj_transact(db, add_batch, &b));
	for (int i = 0; i < RELAXED_JOBS; i++) {
		char id[32];
		snprintf(id, sizeof id, "b%03d", i);
		CHECK_OK(cj_add(db, NULL, "rx", id, "{\"n\":0}", 0));
	}
	run_all(db, 2 * RELAXED_JOBS);
	cj_close(db);

	/* a relaxed process adds, a default one runs them */
	int pid = t_spawn(relaxed_adder, NULL);
	check_exit(pid, 30000, 0);
	db = t_open();
	run_all(db, RELAXED_JOBS);
	cj_close(db);

	/* everything is there after reopening */
	db = open_nomon();
	CHECK_INT(count_jobs(db, "rx"), 3 * RELAXED_JOBS);
	CHECK_OK(cj_list_jobs(db, NULL, "rx", finished_cb, NULL));
	cj_close(db);
}

/* ---- relaxed_reuses_pages ------------------------------------------------------
 *
 * A relaxed process's commits leave the log of the embedded engine
 * (src/engine/lmdb.c, lme_log_void) rather than keep its checkpoints
 * pinned: LMDB then reuses the pages each commit frees, as without the
 * log, and data.mdb stays the size of what it holds. With the pinned
 * checkpoints every commit's pages were new ones, to be flushed at the
 * next checkpoint, and the file grew by up to a checkpoint's worth of
 * pages (LME_CKPT_PAGES: 8 MiB of 4 KiB pages). */

#define REUSE_COMMITS 3000
#define REUSE_MAX_BYTES ((off_t)2 << 20)

static off_t data_size(void) {
	char file[PATH_MAX + 64];
	snprintf(file, sizeof file, "%s/store/data.mdb", t_dir());
	struct stat st;
	CHECK(stat(file, &st) == 0);
	return st.st_size;
}

static int relaxed_rewriter(void *p) {
	(void)p;
	cj_options o = CJ_OPTIONS_INIT;
	o.sync = CJ_SYNC_RELAXED;
	o.no_monitor = 1;
	cj_db *db = t_open_opts(&o);
	/* one pending job replaced again and again: the same few keys */
	for (int i = 0; i < REUSE_COMMITS; i++) {
		char data[32];
		snprintf(data, sizeof data, "{\"i\":%d}", i);
		CHECK_OK(cj_add(db, NULL, "rx", "again", data, 0));
	}
	cj_close(db);
	return 0;
}

TEST(relaxed_reuses_pages) {
	SKIP_UNLESS_LMDB();
	/* a durable process has the store open throughout: the relaxed one
	 * is not alone */
	cj_db *db = open_nomon();
	CHECK_OK(cj_set_type_timeout(db, "rx", 60));
	int pid = t_spawn(relaxed_rewriter, NULL);
	check_exit(pid, 120000, 0);
	off_t size = data_size();
	note("  data.mdb after %d relaxed commits: %lld bytes\n", REUSE_COMMITS, (long long)size);
	CHECK(size <= REUSE_MAX_BYTES);
	/* a durable commit after them: the log holds a checkpoint again */
	CHECK_OK(cj_add(db, NULL, "rx", "after", NULL, 0));
	char *data = NULL;
	CHECK_OK(cj_get_job_data(db, NULL, "rx", "again", &data));
	CHECK(data && strstr(data, "2999") != NULL);
	cj_free(data);
	cj_close(db);
}

TEST_MAIN_VERIFIED(ENTRY(kill9_keeps_acknowledged), ENTRY(kill9_keeps_acknowledged_relaxed),
          ENTRY(kill9_in_open_tx), ENTRY(reopen_after_kill_of_processor),
          ENTRY(relaxed_sync_works), ENTRY(relaxed_reuses_pages))
