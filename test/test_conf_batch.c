/*
 * Conformance: cj_accept_many, and finishing several jobs in one
 * transaction: queue order, separate locks, limits and bad arguments,
 * waiting, schedules, CJ_HALT inside a batch, exactly-once handout across
 * processes.
 *
 * Public API only; the store comes from t_open() / t_url().
 */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

static void add_n(cj_db *db, const char *type, int n) {
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	for (int i = 0; i < n; i++) {
		char id[16], data[48];
		snprintf(id, sizeof id, "j%03d", i);
		snprintf(data, sizeof data, "{\"n\":\"%s\"}", id);
		CHECK_OK(cj_add(db, tx, type, id, data, 0));
	}
	CHECK_OK(cj_tx_commit(tx));
}

static void free_batch(cj_job **jobs, char **data, size_t n) {
	for (size_t i = 0; i < n; i++) {
		cj_job_free(jobs[i]);
		if (data) cj_free(data[i]);
	}
}

/* Takes the first jobs in queue order, each running with its own lock and
 * its own data; then what is left; then nothing. */
TEST(accept_many_basic) {
	cj_db *db = open_typed("t");
	add_n(db, "t", 5);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	cj_job *jobs[10];
	char *data[10];
	size_t n = 99;
	CHECK_OK(cj_accept_many(db, "t", &o, 3, jobs, data, &n));
	CHECK_INT(n, 3);
	for (size_t i = 0; i < n; i++) {
		char id[16], want[48];
		snprintf(id, sizeof id, "j%03zu", i);
		snprintf(want, sizeof want, "{\"n\":\"%s\"}", id);
		CHECK_STR(cj_job_id(jobs[i]), id);
		CHECK_STR(cj_job_type(jobs[i]), "t");
		CHECK_JSON(data[i], want);
		CHECK(is_uuid(cj_job_lock(jobs[i])));
		CHECK_INT(state_of(db, "t", id), CJ_RUNNING);
		for (size_t k = 0; k < i; k++)
			CHECK(strcmp(cj_job_lock(jobs[i]), cj_job_lock(jobs[k])) != 0);
	}
	CHECK_INT(state_of(db, "t", "j003"), CJ_PENDING);
	/* each is finished on its own */
	for (size_t i = 0; i < n; i++) CHECK_OK(cj_finish(db, NULL, jobs[i], NULL));
	free_batch(jobs, data, n);

	/* more room than jobs: the rest, without waiting for more */
	CHECK_OK(cj_accept_many(db, "t", NULL, 10, jobs, NULL, &n));
	CHECK_INT(n, 2);
	CHECK_STR(cj_job_id(jobs[0]), "j003");
	CHECK_STR(cj_job_id(jobs[1]), "j004");
	for (size_t i = n; i < 10; i++) CHECK(jobs[i] == NULL);
	free_batch(jobs, NULL, n);

	/* empty: CJ_NOT_FOUND, n = 0, the arrays cleared */
	jobs[0] = (cj_job *)&o;
	data[0] = (char *)&o;
	CHECK_RC(cj_accept_many(db, "t", &o, 4, jobs, data, &n), CJ_NOT_FOUND);
	CHECK_INT(n, 0);
	CHECK(jobs[0] == NULL && data[0] == NULL);
	cj_close(db);
}

/* Bad arguments: CJ_INVALID, and nothing is taken. */
TEST(accept_many_invalid) {
	cj_db *db = open_typed("t");
	add_n(db, "t", 2);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	cj_job *jobs[2];
	size_t n = 7;
	CHECK_RC(cj_accept_many(db, "t", &o, 0, jobs, NULL, &n), CJ_INVALID);
	CHECK_INT(n, 0);
	CHECK_RC(cj_accept_many(db, "t", &o, (size_t)CJ_ACCEPT_MAX + 1, jobs, NULL, &n),
	         CJ_INVALID);
	CHECK_RC(cj_accept_many(db, "t", &o, 2, NULL, NULL, &n), CJ_INVALID);
	CHECK_RC(cj_accept_many(db, "t", &o, 2, jobs, NULL, NULL), CJ_INVALID);
	CHECK_RC(cj_accept_many(NULL, "t", &o, 2, jobs, NULL, &n), CJ_INVALID);
	CHECK_RC(cj_accept_many(db, "", &o, 2, jobs, NULL, &n), CJ_INVALID);
	o.timeout_ms = -2;
	CHECK_RC(cj_accept_many(db, "t", &o, 2, jobs, NULL, &n), CJ_INVALID);
	o.timeout_ms = 0;
	/* not while this thread holds a transaction on the store */
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_RC(cj_accept_many(db, "t", &o, 2, jobs, NULL, &n), CJ_INVALID);
	cj_tx_abort(tx);
	CHECK_INT(state_of(db, "t", "j000"), CJ_PENDING);
	CHECK_INT(state_of(db, "t", "j001"), CJ_PENDING);
	cj_close(db);
}

/* Jobs scheduled later than max_sched_time are not in the batch. */
TEST(accept_many_schedule) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "now1", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "t", "now2", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "t", "later", NULL, (int64_t)time(NULL) + 3600));
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	cj_job *jobs[8];
	size_t n = 0;
	CHECK_OK(cj_accept_many(db, "t", &o, 8, jobs, NULL, &n));
	CHECK_INT(n, 2);
	free_batch(jobs, NULL, n);
	CHECK_INT(state_of(db, "t", "later"), CJ_PENDING);
	o.max_sched_time = CJ_SCHED_ANY;
	CHECK_OK(cj_accept_many(db, "t", &o, 8, jobs, NULL, &n));
	CHECK_INT(n, 1);
	CHECK_STR(cj_job_id(jobs[0]), "later");
	free_batch(jobs, NULL, n);
	cj_close(db);
}

struct adder {
	cj_db *db;
	int n;
};

static void *add_later(void *arg) {
	struct adder *a = arg;
	usleep(100 * 1000);
	cj_tx *tx = NULL;
	if (cj_tx_begin(a->db, &tx) != CJ_OK) return NULL;
	for (int i = 0; i < a->n; i++) {
		char id[16];
		snprintf(id, sizeof id, "w%d", i);
		if (cj_add(a->db, tx, "t", id, NULL, 0) != CJ_OK) {
			cj_tx_abort(tx);
			return NULL;
		}
	}
	cj_tx_commit(tx);
	return NULL;
}

/* A waiting cj_accept_many wakes when jobs are added and takes them. */
TEST(accept_many_waits) {
	cj_db *db = open_typed("t");
	struct adder a = {db, 3};
	pthread_t th;
	CHECK(pthread_create(&th, NULL, add_later, &a) == 0);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 60000;
	cj_job *jobs[8];
	size_t n = 0;
	CHECK_OK(cj_accept_many(db, "t", &o, 8, jobs, NULL, &n));
	pthread_join(th, NULL);
	/* the three were added in one transaction, so they come together */
	CHECK_INT(n, 3);
	free_batch(jobs, NULL, n);
	cj_close(db);
}

/* Finishing a batch in one transaction; a job of the batch that is no
 * longer held makes cj_finish return CJ_HALT and the commit fail with
 * nothing written; the others then finish on their own. */
TEST(accept_many_finish_in_tx) {
	cj_db *db = open_typed("t");
	add_n(db, "t", 4);
	cj_job *jobs[4];
	size_t n = 0;
	CHECK_OK(cj_accept_many(db, "t", NULL, 4, jobs, NULL, &n));
	CHECK_INT(n, 4);
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_finish(db, tx, jobs[0], "{\"r\":0}"));
	CHECK_OK(cj_finish(db, tx, jobs[1], "{\"r\":1}"));
	CHECK_OK(cj_tx_commit(tx));
	CHECK_INT(state_of(db, "t", "j000"), CJ_FINISHED);
	check_data(db, "t", "j001", "{\"r\":1}");

	CHECK_OK(cj_remove(db, NULL, "t", "j002"));
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_finish(db, tx, jobs[3], NULL));
	CHECK_RC(cj_finish(db, tx, jobs[2], NULL), CJ_HALT);
	CHECK_RC(cj_tx_commit(tx), CJ_HALT);
	CHECK_INT(state_of(db, "t", "j003"), CJ_RUNNING);
	CHECK_OK(cj_finish(db, NULL, jobs[3], NULL));
	CHECK_INT(state_of(db, "t", "j003"), CJ_FINISHED);
	free_batch(jobs, NULL, n);
	cj_close(db);
}

/* ---- exactly once across processes ---------------------------------------- */

#define XO_JOBS 300
#define XO_CHILDREN 3

struct xo_ctx {
	t_gate go;
	int pipefd[2];
};

/* Takes batches of various sizes until none is left, writes "id\n" per job,
 * finishes each batch in one transaction. 0, or what went wrong. */
static int xo_drain(cj_db *db, int fd, size_t max) {
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	for (;;) {
		cj_job *jobs[16];
		char *data[16];
		size_t n = 0;
		int rc = cj_accept_many(db, "t", &o, max, jobs, data, &n);
		if (rc == CJ_NOT_FOUND) return n == 0 ? 0 : 9;
		if (rc != CJ_OK || n < 1 || n > max) return 10;
		cj_tx *tx = NULL;
		if (cj_tx_begin(db, &tx) != CJ_OK) return 11;
		for (size_t i = 0; i < n; i++) {
			char want[48], line[32];
			snprintf(want, sizeof want, "{\"n\":\"%s\"}", cj_job_id(jobs[i]));
			if (!json_same(data[i], want)) return 12;
			int len = snprintf(line, sizeof line, "%s\n", cj_job_id(jobs[i]));
			if (write(fd, line, (size_t)len) != len) return 13;
			if (cj_finish(db, tx, jobs[i], NULL) != CJ_OK) return 14;
		}
		if (cj_tx_commit(tx) != CJ_OK) return 15;
		free_batch(jobs, data, n);
		max = max % 16 + 1;
	}
}

static int xo_child(void *arg) {
	struct xo_ctx *c = arg;
	close(c->pipefd[0]);
	if (t_gate_wait(&c->go, 60000) != 0) return 2;
	cj_db *db = NULL;
	if (cj_open(t_url(), NULL, &db) != CJ_OK) return 3;
	int rc = xo_drain(db, c->pipefd[1], (size_t)getpid() % 16 + 1);
	cj_close(db);
	return rc;
}

/* Several processes take batches at once: every job is handed out exactly
 * once, and every one ends finished. */
TEST(accept_many_exactly_once) {
	struct xo_ctx c;
	t_gate_init(&c.go);
	CHECK(pipe(c.pipefd) == 0);
	int pids[XO_CHILDREN];
	for (int i = 0; i < XO_CHILDREN; i++) pids[i] = t_spawn(xo_child, &c);
	cj_db *db = open_typed("t");
	add_n(db, "t", XO_JOBS);
	for (int i = 0; i < XO_CHILDREN; i++) t_gate_open(&c.go);
	int rc = xo_drain(db, c.pipefd[1], 5);
	CHECK_INT(rc, 0);
	for (int i = 0; i < XO_CHILDREN; i++) CHECK_INT(t_join(pids[i], 60000), 0);
	/* an engine may skip rows others hold; take what is left */
	CHECK_INT(xo_drain(db, c.pipefd[1], 16), 0);
	close(c.pipefd[1]);

	check_each_once(c.pipefd[0], XO_JOBS);
	for (int i = 0; i < XO_JOBS; i += 29) {
		char id[16];
		snprintf(id, sizeof id, "j%03d", i);
		CHECK_INT(state_of(db, "t", id), CJ_FINISHED);
	}
	t_gate_close(&c.go);
	cj_close(db);
}

TEST_MAIN(ENTRY(accept_many_basic), ENTRY(accept_many_invalid),
          ENTRY(accept_many_schedule), ENTRY(accept_many_waits),
          ENTRY(accept_many_finish_in_tx), ENTRY(accept_many_exactly_once))
