/* cj_compare: couchjobs, through its public API only, on the embedded
 * (LMDB) engine or the PostgreSQL engine.
 *
 * One job per call (conf.batch 1): cj_add, cj_accept, cj_finish, each in
 * its own transaction. Batched (conf.batch > 1): cj_add of the batch in one
 * cj_transact, cj_accept_many, and the batch's cj_finish in one
 * transaction. Durable mode is CJ_SYNC_FULL (the default), relaxed mode
 * CJ_SYNC_RELAXED. The type's timeout is an hour, so that the activity
 * monitor (on in every handle, as by default) never takes a job back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "couchjobs.h"
#include "pgutil.h"
#include "util.h"

#define TYPE "cmp"
#define TYPE_TIMEOUT 3600
#define FILL_LMDB 10000 /* cj_add per transaction in preload */
#define FILL_PG 1000    /* the server's lock table bounds a transaction's new jobs */

static void check(int rc, const char *what) {
	if (rc != CJ_OK) cmp_die("%s: %s (%s)", what, cj_strerror(rc), cj_last_error());
}

static cj_db *open_db(const struct cmp_conf *conf, cj_sync_mode sync) {
	cj_options o = CJ_OPTIONS_INIT;
	cj_db *db;
	o.sync = sync;
	check(cj_open(conf->store, &o, &db), "cj_open");
	const char *want = conf->pg_engine ? "postgresql" : "lmdb";
	if (strcmp(cj_db_engine(db), want) != 0)
		cmp_die("%s: engine %s, expected %s", conf->store, cj_db_engine(db), want);
	return db;
}

static void *cj_b_open(const struct cmp_conf *conf) {
	return open_db(conf, conf->durable ? CJ_SYNC_FULL : CJ_SYNC_RELAXED);
}

static void cj_b_close(void *h) {
	cj_close(h);
}

struct add_arg {
	cj_db *db;
	const struct cmp_new *jobs;
	size_t n;
};

static int add_fn(cj_tx *tx, void *arg) {
	struct add_arg *a = arg;
	for (size_t i = 0; i < a->n; i++) {
		int rc = cj_add(a->db, tx, TYPE, a->jobs[i].id, a->jobs[i].data, 0);
		if (rc) return rc;
	}
	return CJ_OK;
}

static void cj_b_enqueue(void *h, const struct cmp_new *jobs, size_t n) {
	cj_db *db = h;
	if (n == 1) {
		check(cj_add(db, NULL, TYPE, jobs[0].id, jobs[0].data, 0), "cj_add");
		return;
	}
	struct add_arg a = {db, jobs, n};
	check(cj_transact(db, add_fn, &a), "cj_transact(cj_add x n)");
}

static size_t cj_b_claim(void *h, size_t max, int timeout_ms, struct cmp_job *out) {
	cj_db *db = h;
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	cj_job *jobs[CMP_BATCH];
	char *data[CMP_BATCH];
	size_t n = 0;
	int rc;
	o.timeout_ms = timeout_ms;
	if (max > CMP_BATCH) max = CMP_BATCH;
	if (max == 1) {
		rc = cj_accept(db, TYPE, &o, &jobs[0], &data[0]);
		n = rc == CJ_OK;
	} else {
		rc = cj_accept_many(db, TYPE, &o, max, jobs, data, &n);
	}
	if (rc == CJ_NOT_FOUND) return 0;
	check(rc, max == 1 ? "cj_accept" : "cj_accept_many");
	for (size_t i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof out[i]);
		snprintf(out[i].id, sizeof out[i].id, "%s", cj_job_id(jobs[i]));
		out[i].handle = jobs[i];
		out[i].data = data[i];
	}
	return n;
}

static void release(struct cmp_job *j) {
	cj_job_free(j->handle);
	cj_free(j->data);
	j->handle = NULL;
	j->data = NULL;
}

/* One job in its own transaction. 1: finished; 0: CJ_HALT (the job is no
 * longer this processor's; it cannot happen with an hour's timeout, and
 * the drain's count would then fail the run). */
static size_t finish_one(cj_db *db, struct cmp_job *j) {
	int rc = cj_finish(db, NULL, j->handle, NULL);
	if (rc == CJ_HALT) return 0;
	check(rc, "cj_finish");
	j->ok = 1;
	return 1;
}

static size_t cj_b_complete(void *h, struct cmp_job *jobs, size_t n) {
	cj_db *db = h;
	size_t done = 0;
	if (n == 1) {
		done = finish_one(db, &jobs[0]);
		release(&jobs[0]);
		return done;
	}
	/* The batch's cj_finish in one transaction. A cj_finish that returns
	 * CJ_HALT makes the transaction impossible to commit (its job is
	 * someone else's now): abort it and finish the others one by one, each
	 * in its own transaction. A conflict at commit runs the batch again
	 * (the handles stay valid: an aborted cj_finish wrote nothing). */
	for (;;) {
		cj_tx *tx;
		int halted = 0;
		check(cj_tx_begin(db, &tx), "cj_tx_begin");
		for (size_t i = 0; i < n && !halted; i++) {
			int rc = cj_finish(db, tx, jobs[i].handle, NULL);
			if (rc == CJ_HALT) {
				halted = 1;
			} else if (rc != CJ_OK) {
				cj_tx_abort(tx);
				check(rc, "cj_finish in a batch");
			}
		}
		if (halted) {
			cj_tx_abort(tx);
			for (size_t i = 0; i < n; i++) done += finish_one(db, &jobs[i]);
			break;
		}
		int rc = cj_tx_commit(tx);
		if (rc == CJ_CONFLICT) continue;
		check(rc, "cj_tx_commit of a batch of cj_finish");
		for (size_t i = 0; i < n; i++) jobs[i].ok = 1;
		done = n;
		break;
	}
	for (size_t i = 0; i < n; i++) release(&jobs[i]);
	return done;
}

/* The URL with schema=NAME (and the same application_name) appended. */
static void pg_store(struct cmp_conf *conf) {
	const char *u = conf->url;
	size_t len = strlen(u);
	const char *sep = !strchr(u, '?') ? "?" : (u[len - 1] == '?' || u[len - 1] == '&') ? "" : "&";
	int n = snprintf(conf->schema, sizeof conf->schema, "cjcmp_%s", conf->tag);
	if (n < 0 || n > 63) cmp_die("schema name too long: cjcmp_%s", conf->tag);
	n = snprintf(conf->store, sizeof conf->store, "%s%sschema=%s&application_name=%s", u,
	                 sep, conf->schema, conf->schema);
	if (n < 0 || (size_t)n >= sizeof conf->store) cmp_die("URL too long");
}

static void drop_schema(const struct cmp_conf *conf) {
	char sql[192];
	PGconn *c = cmp_pg_connect(conf->url);
	snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", conf->schema);
	cmp_pg_exec(c, sql);
	PQfinish(c);
}

/* A fresh store: a new directory, or a new schema of the server. */
static void cj_b_prepare(struct cmp_conf *conf) {
	if (conf->pg_engine) {
		pg_store(conf);
		drop_schema(conf);
	} else {
		int n = snprintf(conf->store, sizeof conf->store, "lmdb:%s/cj-%s", conf->dir, conf->tag);
		if (n < 0 || (size_t)n >= sizeof conf->store) cmp_die("store path too long");
		cmp_rm_tree(conf->store + 5);
	}
	cj_db *db = open_db(conf, CJ_SYNC_RELAXED);
	check(cj_set_type_timeout(db, TYPE, TYPE_TIMEOUT), "cj_set_type_timeout");
	cj_close(db);
}

static void cj_b_teardown(struct cmp_conf *conf) {
	if (conf->pg_engine)
		drop_schema(conf);
	else
		cmp_rm_tree(conf->store + 5);
}

struct fill_arg {
	cj_db *db;
	long from, to;
};

static int fill_fn(cj_tx *tx, void *arg) {
	struct fill_arg *a = arg;
	struct cmp_new j;
	for (long i = a->from; i < a->to; i++) {
		cmp_job_new(&j, 0, i, 0);
		int rc = cj_add(a->db, tx, TYPE, j.id, j.data, 0);
		if (rc) return rc;
	}
	return CJ_OK;
}

/* cj_add in big transactions, on a handle opened with CJ_SYNC_RELAXED. */
static void cj_b_preload(const struct cmp_conf *conf, long n) {
	cj_db *db = open_db(conf, CJ_SYNC_RELAXED);
	long batch = conf->pg_engine ? FILL_PG : FILL_LMDB;
	int64_t last = cmp_now_ns();
	for (long i = 0; i < n; i += batch) {
		struct fill_arg a = {db, i, i + batch < n ? i + batch : n};
		check(cj_transact(db, fill_fn, &a), "preload: cj_transact");
		if (cmp_now_ns() - last > 10 * (int64_t)1000000000) {
			last = cmp_now_ns();
			cmp_note("preloaded %ld of %ld jobs", a.to, n);
		}
	}
	cj_close(db);
}

static void cj_b_settle(const struct cmp_conf *conf) {
	if (conf->pg_engine) cmp_pg_settle(conf->url);
}

const struct cmp_backend cmp_couchjobs = {
	.name = "couchjobs",
	.prepare = cj_b_prepare,
	.preload = cj_b_preload,
	.settle = cj_b_settle,
	.teardown = cj_b_teardown,
	.open = cj_b_open,
	.enqueue = cj_b_enqueue,
	.claim = cj_b_claim,
	.complete = cj_b_complete,
	.close = cj_b_close,
};
