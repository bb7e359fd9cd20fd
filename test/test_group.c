/*
 * Group commit: calls made without a caller's transaction by several
 * threads of one handle share one commit (and one flush) on the embedded
 * engine in the default sync mode.
 *  - threads_get_their_own_results: 8 threads run a script of calls whose
 *    results are known (successes interleaved with CJ_HALT, CJ_NOT_FOUND,
 *    CJ_TOO_LARGE), each its own type, and all of them accepting from one
 *    shared type; each call returns what it would alone, with its own
 *    cj_last_error(); calls were combined (cj_stats.combined_calls); every
 *    shared job is taken once; the store verifies.
 *  - kill9_while_combining: a process whose 8 threads add, accept and
 *    finish jobs, combined, is killed (SIGKILL) at varied points (while
 *    one thread leads a batch holding the others' calls, while they wait
 *    for its flush): every acknowledged add and finish is on disk after
 *    the crash, and the store verifies.
 * On PostgreSQL (which does not combine) the first runs all the same and
 * checks the results; the count of combined calls is then 0.
 */
#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#define THREADS 8
#define ROUNDS 10
#define SHARED "shared"

struct worker {
	cj_db *db;
	int t;
	pthread_barrier_t *start;
	char taken[ROUNDS][32]; /* ids of the shared jobs it took */
};

static void *script(void *p) {
	struct worker *w = p;
	cj_db *db = w->db;
	char type[16], big[64];
	snprintf(type, sizeof type, "g%d", w->t);
	/* over the handle's limit of 32 bytes (cj_options.max_data_size) */
	snprintf(big, sizeof big, "{\"pad\":\"%040d\"}", 0);
	pthread_barrier_wait(w->start);
	cj_job *prev = NULL;
	for (int k = 0; k < ROUNDS; k++) {
		char id[32], data[64], done[64], missing[32];
		snprintf(id, sizeof id, "j%d", k);
		snprintf(data, sizeof data, "{\"t\":%d,\"k\":%d}", w->t, k);
		snprintf(done, sizeof done, "{\"done\":%d}", k);
		snprintf(missing, sizeof missing, "missing%d", k);

		CHECK_OK(cj_add(db, NULL, type, id, data, 0));
		cj_job *job = take_wait(db, type, 0, NULL);
		CHECK_STR(cj_job_id(job), id);
		if (prev) {
			/* the last round's lock: that job is finished */
			CHECK_RC(cj_finish(db, NULL, prev, NULL), CJ_HALT);
			CHECK_DETAIL("no longer held");
			cj_job_free(prev);
		}
		CHECK_RC(cj_remove(db, NULL, type, missing), CJ_NOT_FOUND);
		CHECK_RC(cj_update(db, NULL, job, big), CJ_TOO_LARGE);
		CHECK_OK(cj_update(db, NULL, job, "{\"u\":1}"));
		cj_job *shared = take_wait(db, SHARED, 0, NULL);
		snprintf(w->taken[k], sizeof w->taken[k], "%s", cj_job_id(shared));
		CHECK_OK(cj_finish(db, NULL, shared, NULL));
		cj_job_free(shared);
		CHECK_OK(cj_finish(db, NULL, job, done));
		check_job_is(db, type, id, CJ_FINISHED, done);
		prev = job;
	}
	cj_job_free(prev);
	return NULL;
}

TEST(threads_get_their_own_results) {
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	o.max_data_size = 32;
	cj_db *db = t_open_opts(&o);
	CHECK_OK(cj_set_type_timeout(db, SHARED, 60));
	for (int i = 0; i < THREADS * ROUNDS; i++) {
		char id[32];
		snprintf(id, sizeof id, "s%03d", i);
		CHECK_OK(cj_add(db, NULL, SHARED, id, NULL, 0));
	}
	static struct worker w[THREADS];
	pthread_t th[THREADS];
	pthread_barrier_t start;
	CHECK(pthread_barrier_init(&start, NULL, THREADS + 1) == 0);
	for (int t = 0; t < THREADS; t++) {
		char type[16];
		snprintf(type, sizeof type, "g%d", t);
		CHECK_OK(cj_set_type_timeout(db, type, 60));
		w[t] = (struct worker){.db = db, .t = t, .start = &start};
		CHECK(pthread_create(&th[t], NULL, script, &w[t]) == 0);
	}
	int64_t t0 = t_now_ms();
	pthread_barrier_wait(&start);
	for (int t = 0; t < THREADS; t++) CHECK(pthread_join(th[t], NULL) == 0);
	pthread_barrier_destroy(&start);
	cj_stats st;
	CHECK_OK(cj_db_stats(db, &st));
	note("  %d calls in %lld ms, %llu of them combined\n", THREADS * ROUNDS * 8,
	     (long long)(t_now_ms() - t0), (unsigned long long)st.combined_calls);
	if (t_is_lmdb()) CHECK(st.combined_calls > 0);
	else CHECK_INT(st.combined_calls, 0);

	/* every shared job taken exactly once, and finished */
	static char seen[THREADS * ROUNDS];
	for (int t = 0; t < THREADS; t++)
		for (int k = 0; k < ROUNDS; k++) {
			int n = -1;
			CHECK(sscanf(w[t].taken[k], "s%d", &n) == 1);
			CHECK(n >= 0 && n < THREADS * ROUNDS);
			CHECK(!seen[n]);
			seen[n] = 1;
		}
	store_counts c;
	check_store(db, SHARED, &c);
	CHECK_INT(c.finished, THREADS * ROUNDS);
	CHECK_INT(c.total, THREADS * ROUNDS);
	check_store(db, NULL, &c);
	CHECK_INT(c.finished, THREADS * ROUNDS * 2);
	cj_close(db);
}

/* ---- kill9_while_combining --------------------------------------------------- */

#define KILL_ROUNDS 3

/* An acknowledgment: thread t's job i was added (done 0) or finished
 * (done 1); done 2: the handle has combined calls. */
struct ack {
	int32_t t, i, done, pad;
};

struct killed_arg {
	int fd[2];
	int round;
	pthread_barrier_t *start;
	cj_db *db;
	int t;
};

static void kill_id(char *id, size_t cap, int round, int t, int i) {
	snprintf(id, cap, "r%d-t%d-%06d", round, t, i);
}

static void send_ack(int fd, int t, int i, int done) {
	struct ack a = {t, i, done, 0};
	if (write(fd, &a, sizeof a) != (ssize_t)sizeof a) _exit(97);
}

/* Adds, takes and finishes jobs one call at a time until killed. */
static void *churn(void *p) {
	struct killed_arg *a = p;
	char type[16];
	snprintf(type, sizeof type, "k%d-%d", a->round, a->t);
	pthread_barrier_wait(a->start);
	for (int i = 0;; i++) {
		char id[32];
		kill_id(id, sizeof id, a->round, a->t, i);
		if (cj_add(a->db, NULL, type, id, "{}", 0) != CJ_OK) _exit(94);
		send_ack(a->fd[1], a->t, i, 0);
		cj_job *job = NULL;
		cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
		ao.timeout_ms = 0;
		if (cj_accept(a->db, type, &ao, &job, NULL) != CJ_OK) _exit(93);
		if (cj_finish(a->db, NULL, job, NULL) != CJ_OK) _exit(92);
		cj_job_free(job);
		send_ack(a->fd[1], a->t, i, 1);
		cj_stats st;
		if (a->t == 0 && cj_db_stats(a->db, &st) == CJ_OK && st.combined_calls > 0)
			send_ack(a->fd[1], a->t, i, 2);
	}
	return NULL;
}

static int killed_child(void *p) {
	struct killed_arg *a = p;
	close(a->fd[0]);
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = t_open_opts(&o);
	pthread_barrier_t start;
	if (pthread_barrier_init(&start, NULL, THREADS) != 0) _exit(95);
	static struct killed_arg args[THREADS];
	pthread_t th[THREADS];
	for (int t = 0; t < THREADS; t++) {
		args[t] = *a;
		args[t].db = db;
		args[t].t = t;
		args[t].start = &start;
		if (pthread_create(&th[t], NULL, churn, &args[t]) != 0) _exit(91);
	}
	for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
	_exit(96);
}

/* The highest i acknowledged per thread, added and finished. */
struct acked {
	int32_t added[THREADS], finished[THREADS];
	long n;
	int combined; /* the process said it combined calls */
};

static void collect(int fd, int pid, long kill_after, struct acked *k) {
	for (int t = 0; t < THREADS; t++) k->added[t] = k->finished[t] = -1;
	k->n = 0;
	k->combined = 0;
	int killed = 0;
	int64_t end = t_now_ms() + 120000;
	for (;;) {
		int64_t left = end - t_now_ms();
		if (left <= 0) t_fail(__FILE__, __LINE__, "acknowledgments stalled at %ld", k->n);
		struct pollfd pf = {fd, POLLIN, 0};
		int r = poll(&pf, 1, (int)left);
		if (r <= 0) continue;
		struct ack a;
		ssize_t got = read(fd, &a, sizeof a);
		if (got < 0 && errno == EINTR) continue;
		if (got == 0) break;
		CHECK_INT(got, sizeof a);
		CHECK(a.t >= 0 && a.t < THREADS);
		if (a.done == 2) {
			k->combined = 1;
			continue;
		}
		int32_t *last = a.done ? &k->finished[a.t] : &k->added[a.t];
		CHECK_INT(a.i, *last + 1); /* in order per thread */
		*last = a.i;
		if (!killed && ++k->n >= kill_after) {
			CHECK(kill(pid, SIGKILL) == 0);
			killed = 1;
		}
	}
	if (!killed) t_fail(__FILE__, __LINE__, "the process ended by itself");
}

TEST(kill9_while_combining) {
	SKIP_UNLESS_LMDB();
	int combined = 0;
	for (int r = 0; r < KILL_ROUNDS; r++) {
		/* a type per thread and round: a round's accepts take its own jobs */
		for (int t = 0; t < THREADS; t++) {
			char type[16];
			snprintf(type, sizeof type, "k%d-%d", r, t);
			setup_type(type, 3600);
		}
		struct killed_arg a = {.round = r};
		if (pipe(a.fd) != 0) t_fail(__FILE__, __LINE__, "pipe");
		int pid = t_spawn(killed_child, &a);
		close(a.fd[1]);
		struct acked k;
		/* kill points spread out, so that the kill meets the batches at
		 * different steps */
		collect(a.fd[0], pid, 150 + 61 * r + (t_now_ms() % 53), &k);
		close(a.fd[0]);
		check_exit(pid, 10000, 128 + SIGKILL);

		cj_db *db = open_nomon(); /* the first open after the crash */
		for (int t = 0; t < THREADS; t++) {
			char type[16];
			snprintf(type, sizeof type, "k%d-%d", r, t);
			for (int i = 0; i <= k.added[t]; i++) {
				char id[32];
				kill_id(id, sizeof id, r, t, i);
				cj_state st;
				int rc = cj_get_job_state(db, NULL, type, id, &st);
				if (rc != CJ_OK)
					t_fail(__FILE__, __LINE__, "acknowledged add %s: %s", id,
					       cj_err_name(rc));
				if (i <= k.finished[t]) CHECK_INT(st, CJ_FINISHED);
			}
		}
		check_store(db, NULL, NULL);
		combined += k.combined;
		note("  round %d: killed after %ld acknowledgments%s\n", r, k.n,
		     k.combined ? ", calls combined" : "");
		cj_close(db);
	}
	CHECK(combined > 0);
}

TEST_MAIN_VERIFIED(ENTRY(threads_get_their_own_results), ENTRY(kill9_while_combining))
