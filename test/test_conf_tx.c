/*
 * Conformance: transactions and the caller's own data (include/couchjobs.h
 * "Transactions and the caller's own data"): cj_tx_put/get/del,
 * read-your-writes, abort, cj_transact and its retries, job calls inside a
 * caller's transaction, CJ_HALT at commit, and the NULL-tx rule.
 *
 * Public API only; the store comes from t_open().
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>

/* ---- the caller's key-value space ------------------------------------------ */

/* put/get/del within one transaction and across transactions and handles;
 * get sees the transaction's own writes; values are NUL-terminated. */
TEST(tx_put_get_del) {
	cj_db *db = t_open();
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK(tx != NULL);
	void *v = NULL;
	size_t vl = 0;
	CHECK_RC(cj_tx_get(tx, "k", 1, &v, &vl), CJ_NOT_FOUND);
	CHECK_OK(cj_tx_put(tx, "k", 1, "value", 5));
	CHECK_OK(cj_tx_get(tx, "k", 1, &v, &vl));
	CHECK_INT(vl, 5);
	CHECK(memcmp(v, "value", 5) == 0);
	CHECK(((char *)v)[5] == 0);
	cj_free(v);
	/* overwrite */
	CHECK_OK(cj_tx_put(tx, "k", 1, "v2", 2));
	CHECK_OK(cj_tx_get(tx, "k", 1, &v, &vl));
	CHECK_INT(vl, 2);
	CHECK(memcmp(v, "v2", 2) == 0);
	cj_free(v);
	/* binary key and value with NUL bytes; a key that is a prefix */
	const char bk[] = {'b', 0, 'k'}, bv[] = {0, 1, 0, 2};
	CHECK_OK(cj_tx_put(tx, bk, sizeof bk, bv, sizeof bv));
	CHECK_OK(cj_tx_put(tx, bk, 1, "short", 5));
	CHECK_OK(cj_tx_commit(tx));

	tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_tx_get(tx, "k", 1, &v, &vl));
	CHECK_INT(vl, 2);
	cj_free(v);
	CHECK_OK(cj_tx_get(tx, bk, sizeof bk, &v, &vl));
	CHECK_INT(vl, sizeof bv);
	CHECK(memcmp(v, bv, sizeof bv) == 0);
	cj_free(v);
	CHECK_OK(cj_tx_get(tx, bk, 1, &v, &vl));
	CHECK_INT(vl, 5);
	cj_free(v);
	CHECK_OK(cj_tx_del(tx, "k", 1));
	CHECK_RC(cj_tx_get(tx, "k", 1, &v, &vl), CJ_NOT_FOUND);
	CHECK_RC(cj_tx_del(tx, "k", 1), CJ_NOT_FOUND);
	CHECK_RC(cj_tx_del(tx, "never", 5), CJ_NOT_FOUND);
	CHECK_OK(cj_tx_commit(tx));

	/* another handle sees the committed state */
	cj_db *db2 = t_open();
	check_kv(db2, "k", NULL);
	check_kv(db2, "b", "short");
	cj_close(db2);
	cj_close(db);
}

/* An empty value is a value. */
TEST(tx_empty_value) {
	cj_db *db = t_open();
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_tx_put(tx, "e", 1, NULL, 0));
	CHECK_OK(cj_tx_put(tx, "f", 1, "", 0));
	CHECK_OK(cj_tx_commit(tx));
	CHECK_OK(cj_tx_begin(db, &tx));
	void *v = NULL;
	size_t vl = 99;
	CHECK_OK(cj_tx_get(tx, "e", 1, &v, &vl));
	CHECK_INT(vl, 0);
	CHECK(v == NULL || ((char *)v)[0] == 0);
	cj_free(v);
	vl = 99;
	CHECK_OK(cj_tx_get(tx, "f", 1, &v, &vl));
	CHECK_INT(vl, 0);
	cj_free(v);
	cj_tx_abort(tx);
	cj_close(db);
}

/* Abort discards everything the transaction did: the caller's writes and
 * job changes alike. */
TEST(tx_abort_discards) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "old", "{\"v\":0}", 0));
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(put_str(tx, "k", "v"));
	CHECK_OK(cj_add(db, tx, "t", "new", NULL, 0));
	CHECK_OK(cj_add(db, tx, "t", "old", "{\"v\":1}", 0));
	CHECK_OK(cj_remove(db, tx, "t", "new"));
	CHECK_OK(cj_add(db, tx, "t", "new2", NULL, 0));
	cj_tx_abort(tx);
	check_kv(db, "k", NULL);
	cj_state st = 0;
	CHECK_RC(cj_get_job_state(db, NULL, "t", "new", &st), CJ_NOT_FOUND);
	CHECK_RC(cj_get_job_state(db, NULL, "t", "new2", &st), CJ_NOT_FOUND);
	check_data(db, "t", "old", "{\"v\":0}");
	CHECK_INT(count_jobs(db, NULL), 1);
	cj_close(db);
}

/* Job calls in a transaction see its own writes; commit makes them
 * visible. */
TEST(tx_jobs_read_your_writes) {
	cj_db *db = open_typed("t");
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_add(db, tx, "t", "a", "{\"v\":1}", 0));
	CHECK_OK(cj_add(db, tx, "t", "b", NULL, 0));
	cj_state st = 0;
	CHECK_OK(cj_get_job_state(db, tx, "t", "a", &st));
	CHECK_INT(st, CJ_PENDING);
	char *d = NULL;
	CHECK_OK(cj_get_job_data(db, tx, "t", "a", &d));
	CHECK_JSON(d, "{\"v\":1}");
	cj_free(d);
	cj_job_info info = {0};
	CHECK_OK(cj_get_job(db, tx, "t", "a", &info));
	CHECK_STR(info.id, "a");
	cj_job_info_clear(&info);
	CHECK_INT(count_jobs_tx(db, tx, "t"), 2);
	CHECK_OK(cj_remove(db, tx, "t", "b"));
	CHECK_RC(cj_get_job_state(db, tx, "t", "b", &st), CJ_NOT_FOUND);
	CHECK_RC(cj_remove(db, tx, "t", "b"), CJ_NOT_FOUND);
	char **types = NULL;
	size_t n = 0;
	CHECK_OK(cj_get_types(db, tx, &types, &n));
	CHECK_INT(n, 1);
	CHECK_STR(types[0], "t");
	free_types(types, n);
	CHECK_OK(cj_tx_commit(tx));
	CHECK_INT(state_of(db, "t", "a"), CJ_PENDING);
	CHECK_RC(cj_get_job_state(db, NULL, "t", "b", &st), CJ_NOT_FOUND);
	cj_close(db);
}

/* The caller's keys live apart from the jobs: they are not jobs or types. */
TEST(tx_user_space_separate) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	for (int i = 0; i < 50; i++) {
		char k[32];
		int kl = snprintf(k, sizeof k, "%c%cjob%d", i % 4, i, i);
		CHECK_OK(cj_tx_put(tx, k, (size_t)kl, "xx", 2));
	}
	CHECK_OK(put_str(tx, "t", "{}"));
	CHECK_OK(cj_tx_commit(tx));
	CHECK_INT(count_jobs(db, NULL), 1);
	char **types = NULL;
	size_t n = 0;
	CHECK_OK(cj_get_types(db, NULL, &types, &n));
	CHECK_INT(n, 1);
	free_types(types, n);
	/* and removing the job does not touch them */
	CHECK_OK(cj_remove(db, NULL, "t", "j"));
	check_kv(db, "t", "{}");
	cj_close(db);
}

/* ---- cj_transact ------------------------------------------------------------- */

struct tr_arg {
	cj_db *db;
	int calls;
	int conflicts; /* return CJ_CONFLICT on this many first calls */
	int ret;       /* then return this */
};

/* adds a job and bumps a counter; fails as told */
static int tr_fn(cj_tx *tx, void *p) {
	struct tr_arg *a = p;
	a->calls++;
	void *v = NULL;
	size_t vl = 0;
	int n = 0;
	int rc = cj_tx_get(tx, "count", 5, &v, &vl);
	if (rc == CJ_OK) {
		n = atoi(v);
		cj_free(v);
	} else if (rc != CJ_NOT_FOUND) {
		return rc;
	}
	char buf[32], data[64];
	snprintf(buf, sizeof buf, "%d", n + 1);
	rc = put_str(tx, "count", buf);
	if (rc) return rc;
	snprintf(data, sizeof data, "{\"call\":%d}", a->calls);
	rc = cj_add(a->db, tx, "t", "j", data, 0);
	if (rc) return rc;
	if (a->calls <= a->conflicts) return CJ_CONFLICT;
	return a->ret;
}

/* fn returning 0: committed. */
TEST(transact_commit) {
	cj_db *db = open_typed("t");
	struct tr_arg a = {db, 0, 0, 0};
	CHECK_OK(cj_transact(db, tr_fn, &a));
	CHECK_INT(a.calls, 1);
	check_kv(db, "count", "1");
	check_data(db, "t", "j", "{\"call\":1}");
	CHECK_OK(cj_transact(db, tr_fn, &a));
	check_kv(db, "count", "2");
	cj_close(db);
}

/* fn's non-zero return aborts and is returned as is. */
TEST(transact_fn_error) {
	cj_db *db = open_typed("t");
	struct tr_arg a = {db, 0, 0, 42};
	CHECK_RC(cj_transact(db, tr_fn, &a), 42);
	CHECK_INT(a.calls, 1);
	check_kv(db, "count", NULL);
	cj_state st = 0;
	CHECK_RC(cj_get_job_state(db, NULL, "t", "j", &st), CJ_NOT_FOUND);
	a.calls = 0;
	a.ret = CJ_NOT_FOUND;
	CHECK_RC(cj_transact(db, tr_fn, &a), CJ_NOT_FOUND);
	CHECK_INT(a.calls, 1);
	a.calls = 0;
	a.ret = -1000;
	CHECK_RC(cj_transact(db, tr_fn, &a), -1000);
	check_kv(db, "count", NULL);
	CHECK_RC(cj_get_job_state(db, NULL, "t", "j", &st), CJ_NOT_FOUND);
	cj_close(db);
}

/* CJ_CONFLICT from fn runs everything again; only the last run lands. */
TEST(transact_conflict_retried) {
	cj_db *db = open_typed("t");
	struct tr_arg a = {db, 0, 3, 0};
	CHECK_OK(cj_transact(db, tr_fn, &a));
	CHECK_INT(a.calls, 4);
	check_kv(db, "count", "1");
	check_data(db, "t", "j", "{\"call\":4}");
	/* and a conflict followed by an error returns the error */
	struct tr_arg b = {db, 0, 1, 7};
	CHECK_RC(cj_transact(db, tr_fn, &b), 7);
	CHECK_INT(b.calls, 2);
	check_kv(db, "count", "1");
	cj_close(db);
}

static int counter_fn(cj_tx *tx, void *p) {
	(void)p;
	void *v = NULL;
	size_t vl = 0;
	int n = 0;
	int rc = cj_tx_get(tx, "c", 1, &v, &vl);
	if (rc == CJ_OK) {
		n = atoi(v);
		cj_free(v);
	} else if (rc != CJ_NOT_FOUND) {
		return rc;
	}
	char buf[32];
	snprintf(buf, sizeof buf, "%d", n + 1);
	return put_str(tx, "c", buf);
}

struct counter_thread {
	cj_db *db;
	int rc;
};

static void *counter_run(void *p) {
	struct counter_thread *c = p;
	for (int i = 0; i < 25 && c->rc == CJ_OK; i++) c->rc = cj_transact(c->db, counter_fn, NULL);
	return NULL;
}

/* Concurrent read-modify-write transactions lose no update. */
TEST(transact_concurrent_counter) {
	cj_db *db = t_open();
	pthread_t th[4];
	struct counter_thread c[4];
	for (int i = 0; i < 4; i++) {
		c[i].db = db;
		c[i].rc = CJ_OK;
		CHECK(pthread_create(&th[i], NULL, counter_run, &c[i]) == 0);
	}
	for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
	for (int i = 0; i < 4; i++) CHECK_RC(c[i].rc, CJ_OK);
	check_kv(db, "c", "100");
	cj_close(db);
}

/* ---- job calls inside a caller's transaction ----------------------------------- */

/* update and finish commit atomically with the caller's writes. */
TEST(tx_job_calls_commit_together) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":0}", 0));
	cj_job *job = take_any(db, "t");
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(put_str(tx, "progress", "50"));
	CHECK_OK(cj_update(db, tx, job, "{\"v\":1}"));
	CHECK_OK(cj_tx_commit(tx));
	check_kv(db, "progress", "50");
	check_data(db, "t", "j", "{\"v\":1}");
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_finish(db, tx, job, "{\"v\":2}"));
	CHECK_OK(put_str(tx, "result", "done"));
	CHECK_OK(cj_tx_commit(tx));
	check_kv(db, "result", "done");
	CHECK_INT(state_of(db, "t", "j"), CJ_FINISHED);
	check_data(db, "t", "j", "{\"v\":2}");
	cj_job_free(job);
	/* add + put, and resubmit + put, commit together too */
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_add(db, tx, "t", "k", NULL, 0));
	CHECK_OK(put_str(tx, "k-added", "1"));
	CHECK_OK(cj_tx_commit(tx));
	CHECK_INT(state_of(db, "t", "k"), CJ_PENDING);
	check_kv(db, "k-added", "1");
	cj_close(db);
}

/* update/finish and the caller's writes abort together; the job can be
 * updated again afterwards. */
TEST(tx_job_calls_abort_together) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":0}", 0));
	cj_job *job = take_any(db, "t");
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_update(db, tx, job, "{\"v\":1}"));
	CHECK_OK(put_str(tx, "progress", "50"));
	cj_tx_abort(tx);
	check_kv(db, "progress", NULL);
	check_data(db, "t", "j", "{\"v\":0}");
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_finish(db, tx, job, "{\"v\":2}"));
	CHECK_OK(put_str(tx, "result", "done"));
	cj_tx_abort(tx);
	check_kv(db, "result", NULL);
	CHECK_INT(state_of(db, "t", "j"), CJ_RUNNING);
	check_data(db, "t", "j", "{\"v\":0}");
	CHECK_OK(cj_update(db, NULL, job, "{\"v\":3}"));
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	check_data(db, "t", "j", "{\"v\":3}");
	cj_job_free(job);
	cj_close(db);
}

/* A transaction in which update or finish returned CJ_HALT cannot commit:
 * commit is CJ_HALT and none of the caller's writes land. */
TEST(tx_halt_cannot_commit) {
	cj_db *db = open_typed("t");
	/* removed job, update */
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":0}", 0));
	cj_job *job = take_any(db, "t");
	CHECK_OK(cj_remove(db, NULL, "t", "j"));
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(put_str(tx, "before", "1"));
	CHECK_RC(cj_update(db, tx, job, "{\"v\":1}"), CJ_HALT);
	(void)put_str(tx, "after", "1"); /* whatever it returns, nothing lands */
	(void)cj_add(db, tx, "t", "other", NULL, 0);
	CHECK_RC(cj_tx_commit(tx), CJ_HALT);
	check_kv(db, "before", NULL);
	check_kv(db, "after", NULL);
	cj_state st = 0;
	CHECK_RC(cj_get_job_state(db, NULL, "t", "j", &st), CJ_NOT_FOUND);
	CHECK_RC(cj_get_job_state(db, NULL, "t", "other", &st), CJ_NOT_FOUND);
	cj_job_free(job);

	/* stale lock (re-added and accepted again), finish */
	CHECK_OK(cj_add(db, NULL, "t", "k", "{\"v\":0}", 0));
	cj_job *a = take_any(db, "t");
	CHECK_OK(cj_remove(db, NULL, "t", "k"));
	CHECK_OK(cj_add(db, NULL, "t", "k", "{\"v\":10}", 0));
	cj_job *b = take_any(db, "t");
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(put_str(tx, "stale", "1"));
	CHECK_RC(cj_finish(db, tx, a, "{\"v\":2}"), CJ_HALT);
	CHECK_RC(cj_tx_commit(tx), CJ_HALT);
	check_kv(db, "stale", NULL);
	CHECK_INT(state_of(db, "t", "k"), CJ_RUNNING);
	check_data(db, "t", "k", "{\"v\":10}");
	/* the live processor's transaction commits */
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(put_str(tx, "live", "1"));
	CHECK_OK(cj_finish(db, tx, b, "{\"v\":11}"));
	CHECK_OK(cj_tx_commit(tx));
	check_kv(db, "live", "1");
	check_data(db, "t", "k", "{\"v\":11}");
	cj_job_free(a);
	cj_job_free(b);
	cj_close(db);
}

struct halt_tr {
	cj_db *db;
	cj_job *job;
	int update_rc;
};

/* ignores update's CJ_HALT and returns 0: the commit must still refuse */
static int halt_fn(cj_tx *tx, void *p) {
	struct halt_tr *h = p;
	int rc = put_str(tx, "h", "1");
	if (rc) return rc;
	h->update_rc = cj_update(h->db, tx, h->job, NULL);
	return 0;
}

/* cj_transact whose fn ignores CJ_HALT: the commit is CJ_HALT. */
TEST(transact_halt_cannot_commit) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	struct halt_tr h = {db, take_any(db, "t"), 0};
	CHECK_OK(cj_remove(db, NULL, "t", "j"));
	CHECK_RC(cj_transact(db, halt_fn, &h), CJ_HALT);
	CHECK_RC(h.update_rc, CJ_HALT);
	check_kv(db, "h", NULL);
	cj_job_free(h.job);
	cj_close(db);
}

/* ---- the NULL-tx rule --------------------------------------------------------- */

/* A thread holding an open transaction that makes a call needing a
 * transaction of its own gets CJ_INVALID, not a deadlock. */
TEST(tx_null_tx_call_invalid) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_job *job = take_any(db, "t");
	CHECK_OK(cj_add(db, NULL, "t", "p", NULL, 0));
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(put_str(tx, "held", "1"));

	cj_tx *tx2 = (cj_tx *)db;
	CHECK_RC(cj_tx_begin(db, &tx2), CJ_INVALID);
	CHECK(tx2 == NULL);
	CHECK_RC(cj_add(db, NULL, "t", "x", NULL, 0), CJ_INVALID);
	CHECK_RC(cj_remove(db, NULL, "t", "p"), CJ_INVALID);
	cj_state st = 0;
	CHECK_RC(cj_get_job_state(db, NULL, "t", "p", &st), CJ_INVALID);
	char *d = NULL;
	CHECK_RC(cj_get_job_data(db, NULL, "t", "p", &d), CJ_INVALID);
	cj_job_info info = {0};
	CHECK_RC(cj_get_job(db, NULL, "t", "p", &info), CJ_INVALID);
	CHECK_RC(cj_list_jobs(db, NULL, NULL, noop_cb, NULL), CJ_INVALID);
	char **types = NULL;
	size_t n = 0;
	CHECK_RC(cj_get_types(db, NULL, &types, &n), CJ_INVALID);
	CHECK_RC(cj_update(db, NULL, job, NULL), CJ_INVALID);
	CHECK_RC(cj_finish(db, NULL, job, NULL), CJ_INVALID);
	CHECK_RC(cj_resubmit(db, NULL, job, CJ_SCHED_KEEP, NULL), CJ_INVALID);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	cj_job *j2 = (cj_job *)db;
	CHECK_RC(cj_accept(db, "t", &o, &j2, NULL), CJ_INVALID);
	CHECK(j2 == NULL);
	o.timeout_ms = 2000;
	CHECK_RC(cj_accept(db, "t", &o, &j2, NULL), CJ_INVALID);
	CHECK_RC(cj_set_type_timeout(db, "t2", 5), CJ_INVALID);

	/* the same calls with the transaction work */
	CHECK_OK(cj_get_job_state(db, tx, "t", "p", &st));
	CHECK_INT(st, CJ_PENDING);
	CHECK_OK(cj_update(db, tx, job, "{\"in\":\"tx\"}"));
	CHECK_OK(cj_tx_commit(tx));

	/* and without one, once it is over; the refused calls wrote nothing */
	check_kv(db, "held", "1");
	CHECK_RC(cj_get_job_state(db, NULL, "t", "x", &st), CJ_NOT_FOUND);
	check_data(db, "t", "j", "{\"in\":\"tx\"}");
	CHECK_INT(state_of(db, "t", "p"), CJ_PENDING);
	CHECK_OK(cj_set_type_timeout(db, "t2", 5));
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	cj_close(db);
}

/* ---- commit is what wakes and notifies ----------------------------------------- */

struct acc_thread {
	cj_db *db;
	int64_t timeout;
	atomic_int done;
	int rc;
};

static void *acc_run(void *p) {
	struct acc_thread *a = p;
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = a->timeout;
	cj_job *job = NULL;
	a->rc = cj_accept(a->db, "t", &o, &job, NULL);
	cj_job_free(job);
	atomic_store(&a->done, 1);
	return NULL;
}

/* A job added in a transaction is handed out only once it commits; an
 * aborted add hands out nothing. */
TEST(tx_add_visible_on_commit) {
	cj_db *db = open_typed("t");
	struct acc_thread a = {.db = db, .timeout = 20000, .rc = -100};
	atomic_init(&a.done, 0);
	pthread_t th;
	CHECK(pthread_create(&th, NULL, acc_run, &a) == 0);
	sleep_ms(300);
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_add(db, tx, "t", "j", NULL, 0));
	sleep_ms(500);
	CHECK(!atomic_load(&a.done));
	CHECK_OK(cj_tx_commit(tx));
	pthread_join(th, NULL);
	CHECK_RC(a.rc, CJ_OK);

	struct acc_thread b = {.db = db, .timeout = 1500, .rc = -100};
	atomic_init(&b.done, 0);
	CHECK(pthread_create(&th, NULL, acc_run, &b) == 0);
	sleep_ms(200);
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_add(db, tx, "t", "k", NULL, 0));
	cj_tx_abort(tx);
	pthread_join(th, NULL);
	CHECK_RC(b.rc, CJ_NOT_FOUND);
	cj_close(db);
}

/* An update in an aborted transaction gives subscribers no event; a
 * committed one does. */
TEST(tx_abort_no_event) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":0}", 0));
	cj_job *job = take_any(db, "t");
	cj_state st = 0;
	cj_sub *sub = sub_on_st(db, "t", "j", &st);
	CHECK_INT(st, CJ_RUNNING);
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_update(db, tx, job, "{\"v\":1}"));
	cj_tx_abort(tx);
	cj_event ev = {0};
	CHECK_RC(cj_wait(&sub, 1, 0, 1000, &ev), CJ_TIMEOUT);
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_update(db, tx, job, "{\"v\":2}"));
	CHECK_OK(cj_tx_commit(tx));
	CHECK_OK(cj_wait(&sub, 1, 0, 5000, &ev));
	CHECK_INT(ev.state, CJ_RUNNING);
	CHECK_JSON(ev.data, "{\"v\":2}");
	cj_event_clear(&ev);
	CHECK_OK(cj_unsubscribe(sub));
	cj_job_free(job);
	cj_close(db);
}

/* ---- arguments and limits -------------------------------------------------------- */

TEST(tx_bad_arguments) {
	cj_db *db = t_open();
	cj_tx *tx = (cj_tx *)db;
	CHECK_RC(cj_tx_begin(NULL, &tx), CJ_INVALID);
	CHECK(tx == NULL);
	CHECK_RC(cj_tx_begin(db, NULL), CJ_INVALID);
	CHECK_RC(cj_tx_commit(NULL), CJ_INVALID);
	cj_tx_abort(NULL);
	CHECK_RC(cj_transact(NULL, counter_fn, NULL), CJ_INVALID);
	CHECK_RC(cj_transact(db, NULL, NULL), CJ_INVALID);
	CHECK_OK(cj_tx_begin(db, &tx));
	void *v = NULL;
	size_t vl = 0;
	CHECK_RC(cj_tx_put(NULL, "k", 1, "v", 1), CJ_INVALID);
	CHECK_RC(cj_tx_put(tx, NULL, 1, "v", 1), CJ_INVALID);
	CHECK_RC(cj_tx_put(tx, "k", 0, "v", 1), CJ_INVALID);
	CHECK_RC(cj_tx_put(tx, "k", 1, NULL, 1), CJ_INVALID);
	CHECK_RC(cj_tx_get(NULL, "k", 1, &v, &vl), CJ_INVALID);
	CHECK_RC(cj_tx_get(tx, NULL, 1, &v, &vl), CJ_INVALID);
	CHECK_RC(cj_tx_get(tx, "k", 0, &v, &vl), CJ_INVALID);
	CHECK_RC(cj_tx_get(tx, "k", 1, NULL, &vl), CJ_INVALID);
	CHECK_RC(cj_tx_del(NULL, "k", 1), CJ_INVALID);
	CHECK_RC(cj_tx_del(tx, NULL, 1), CJ_INVALID);
	CHECK_RC(cj_tx_del(tx, "k", 0), CJ_INVALID);
	CHECK_RC(cj_tx_get(tx, "k", 1, &v, &vl), CJ_NOT_FOUND);
	CHECK_OK(cj_tx_commit(tx));
	cj_close(db);
}

/* Keys: CJ_MAX_KEY bytes are fine, one more is CJ_TOO_LARGE; values: up to
 * the store's data limit. */
TEST(tx_key_and_value_limits) {
	cj_options opts = CJ_OPTIONS_INIT;
	opts.max_data_size = 1000;
	cj_db *db = t_open_opts(&opts);
	static char key[CJ_MAX_KEY + 1], val[1001];
	memset(key, 'k', sizeof key);
	memset(val, 'v', sizeof val);
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_tx_put(tx, key, CJ_MAX_KEY, "x", 1));
	CHECK_RC(cj_tx_put(tx, key, CJ_MAX_KEY + 1, "y", 1), CJ_TOO_LARGE);
	void *v = NULL;
	size_t vl = 0;
	CHECK_RC(cj_tx_get(tx, key, CJ_MAX_KEY + 1, &v, &vl), CJ_TOO_LARGE);
	CHECK_RC(cj_tx_del(tx, key, CJ_MAX_KEY + 1), CJ_TOO_LARGE);
	CHECK_OK(cj_tx_put(tx, "big", 3, val, 1000));
	CHECK_RC(cj_tx_put(tx, "huge", 4, val, 1001), CJ_TOO_LARGE);
	CHECK_OK(cj_tx_commit(tx));
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_tx_get(tx, key, CJ_MAX_KEY, &v, &vl));
	CHECK_INT(vl, 1);
	CHECK(((char *)v)[0] == 'x');
	cj_free(v);
	CHECK_OK(cj_tx_get(tx, "big", 3, &v, &vl));
	CHECK_INT(vl, 1000);
	cj_free(v);
	CHECK_RC(cj_tx_get(tx, "huge", 4, &v, &vl), CJ_NOT_FOUND);
	CHECK_OK(cj_tx_del(tx, key, CJ_MAX_KEY));
	CHECK_OK(cj_tx_commit(tx));
	cj_close(db);
}

TEST_MAIN(ENTRY(tx_put_get_del), ENTRY(tx_empty_value), ENTRY(tx_abort_discards),
          ENTRY(tx_jobs_read_your_writes), ENTRY(tx_user_space_separate),
          ENTRY(transact_commit), ENTRY(transact_fn_error), ENTRY(transact_conflict_retried),
          ENTRY(transact_concurrent_counter), ENTRY(tx_job_calls_commit_together),
          ENTRY(tx_job_calls_abort_together), ENTRY(tx_halt_cannot_commit),
          ENTRY(transact_halt_cannot_commit), ENTRY(tx_null_tx_call_invalid),
          ENTRY(tx_add_visible_on_commit), ENTRY(tx_abort_no_event),
          ENTRY(tx_bad_arguments), ENTRY(tx_key_and_value_limits))
