/* cj_compare: the queue a C programmer would otherwise write with an
 * embedded database: SQLite, in-process, one file shared by every worker
 * process, in WAL mode.
 *
 *   table:    jobs (id TEXT PRIMARY KEY, state INTEGER, data TEXT,
 *             locked_at INTEGER), with a partial index on pending jobs
 *   enqueue:  INSERT INTO jobs ... (one statement, its own transaction)
 *   claim:    BEGIN IMMEDIATE; UPDATE jobs SET state = 1, locked_at = ?
 *             WHERE id = (SELECT id FROM jobs WHERE state = 0 ORDER BY id
 *             LIMIT 1) RETURNING id, data; COMMIT
 *             and when that finds nothing: a read-only look for a pending
 *             job every SQ_POLL_US (SQLite has no way to wake a waiter in
 *             another process), and the claim again once there is one
 *   complete: UPDATE jobs SET state = 2 WHERE id = ? (its own transaction)
 * Writers that find the database locked wait in SQLite's busy handler
 * (busy_timeout). Durable mode is synchronous=FULL (every commit is
 * fsynced before it returns), relaxed mode synchronous=OFF.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "util.h"

#define SQ_BUSY_MS 60000 /* how long a writer waits for the lock */
#define SQ_POLL_US 1000  /* an idle processor looks for work this often */
#define SQ_FILL 100000   /* rows per transaction in preload */

static const char create_sql[] =
	"PRAGMA journal_mode = WAL;"
	"CREATE TABLE jobs (id TEXT PRIMARY KEY, state INTEGER NOT NULL, data TEXT NOT NULL,"
	" locked_at INTEGER);"
	"CREATE INDEX jobs_pending ON jobs (id) WHERE state = 0";

static const char enqueue_sql[] = "INSERT INTO jobs (id, state, data) VALUES (?1, 0, ?2)";

static const char claim_sql[] =
	"UPDATE jobs SET state = 1, locked_at = ?1 WHERE id ="
	" (SELECT id FROM jobs WHERE state = 0 ORDER BY id LIMIT 1) RETURNING id, data";

static const char look_sql[] = "SELECT 1 FROM jobs WHERE state = 0 LIMIT 1";

static const char complete_sql[] = "UPDATE jobs SET state = 2 WHERE id = ?1";

struct sq {
	sqlite3 *db;
	sqlite3_stmt *enqueue, *claim, *look, *complete, *begin, *commit;
};

static void sq_check(sqlite3 *db, int rc, const char *what) {
	if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
		cmp_die("sqlite %s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static void sq_exec(sqlite3 *db, const char *sql) {
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		cmp_die("sqlite %s: %s", sql, err ? err : "error");
}

static sqlite3 *sq_connect(const struct cmp_conf *conf, int durable) {
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(conf->store, &db,
	                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                         NULL);
	if (rc != SQLITE_OK) cmp_die("sqlite open %s: %s", conf->store, sqlite3_errstr(rc));
	sq_check(db, sqlite3_busy_timeout(db, SQ_BUSY_MS), "busy_timeout");
	sq_exec(db, durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = OFF");
	return db;
}

static sqlite3_stmt *sq_prepare(sqlite3 *db, const char *sql) {
	sqlite3_stmt *st = NULL;
	sq_check(db, sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL), sql);
	return st;
}

/* Runs a statement that returns no rows, then resets it. */
static void sq_step_done(struct sq *q, sqlite3_stmt *st, const char *what) {
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) sq_check(q->db, rc == SQLITE_ROW ? SQLITE_ERROR : rc, what);
	sqlite3_reset(st);
}

static void *sq_open(const struct cmp_conf *conf) {
	struct sq *q = cmp_xcalloc(1, sizeof *q);
	q->db = sq_connect(conf, conf->durable);
	q->enqueue = sq_prepare(q->db, enqueue_sql);
	q->claim = sq_prepare(q->db, claim_sql);
	q->look = sq_prepare(q->db, look_sql);
	q->complete = sq_prepare(q->db, complete_sql);
	q->begin = sq_prepare(q->db, "BEGIN IMMEDIATE");
	q->commit = sq_prepare(q->db, "COMMIT");
	return q;
}

static void sq_close(void *h) {
	struct sq *q = h;
	sqlite3_stmt *all[] = {q->enqueue, q->claim, q->look, q->complete, q->begin, q->commit};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
	if (sqlite3_close(q->db) != SQLITE_OK) cmp_die("sqlite close: busy");
	free(q);
}

static void sq_enqueue(void *h, const struct cmp_new *jobs, size_t n) {
	struct sq *q = h;
	for (size_t i = 0; i < n; i++) { /* n is 1 */
		sqlite3_bind_text(q->enqueue, 1, jobs[i].id, -1, SQLITE_STATIC);
		sqlite3_bind_text(q->enqueue, 2, jobs[i].data, -1, SQLITE_STATIC);
		sq_step_done(q, q->enqueue, "enqueue");
		if (sqlite3_changes(q->db) != 1) cmp_die("enqueue %s: no row", jobs[i].id);
	}
}

/* One attempt in its own BEGIN IMMEDIATE transaction: 1 and the job in
 * out, or 0. */
static size_t try_claim(struct sq *q, struct cmp_job *out) {
	size_t got = 0;
	sq_step_done(q, q->begin, "begin");
	sqlite3_bind_int64(q->claim, 1, cmp_now_ns());
	int rc = sqlite3_step(q->claim);
	if (rc == SQLITE_ROW) {
		memset(&out[0], 0, sizeof out[0]);
		snprintf(out[0].id, sizeof out[0].id, "%s", (const char *)sqlite3_column_text(q->claim, 0));
		const char *data = (const char *)sqlite3_column_text(q->claim, 1);
		size_t len = (size_t)sqlite3_column_bytes(q->claim, 1);
		out[0].data = cmp_xmalloc(len + 1);
		memcpy(out[0].data, data, len + 1);
		got = 1;
		rc = sqlite3_step(q->claim); /* the end of the rows */
	}
	sqlite3_reset(q->claim);
	if (rc != SQLITE_DONE) sq_check(q->db, rc == SQLITE_ROW ? SQLITE_ERROR : rc, "claim");
	sq_step_done(q, q->commit, "commit");
	return got;
}

/* A read-only look (no write lock): 1 if a job is pending. */
static int pending(struct sq *q) {
	int rc = sqlite3_step(q->look);
	sqlite3_reset(q->look);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) sq_check(q->db, rc, "look");
	return rc == SQLITE_ROW;
}

static size_t sq_claim(void *h, size_t max, int timeout_ms, struct cmp_job *out) {
	struct sq *q = h;
	(void)max; /* one job per request */
	if (try_claim(q, out)) return 1;
	if (timeout_ms <= 0) return 0;
	int64_t deadline = cmp_now_ns() + (int64_t)timeout_ms * 1000000;
	for (;;) {
		if (pending(q) && try_claim(q, out)) return 1;
		if (cmp_now_ns() >= deadline) return 0;
		cmp_sleep_us(SQ_POLL_US);
	}
}

static size_t sq_complete(void *h, struct cmp_job *jobs, size_t n) {
	struct sq *q = h;
	for (size_t i = 0; i < n; i++) { /* n is 1 */
		sqlite3_bind_text(q->complete, 1, jobs[i].id, -1, SQLITE_STATIC);
		sq_step_done(q, q->complete, "complete");
		if (sqlite3_changes(q->db) != 1) cmp_die("complete %s: no such job", jobs[i].id);
		jobs[i].ok = 1;
		free(jobs[i].data);
		jobs[i].data = NULL;
	}
	return n;
}

static void sq_remove(const struct cmp_conf *conf) {
	static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
	char path[sizeof conf->store + 16];
	for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
		snprintf(path, sizeof path, "%s%s", conf->store, suffix[i]);
		cmp_rm_tree(path);
	}
}

/* A fresh database file in the scratch directory. */
static void sq_prepare_db(struct cmp_conf *conf) {
	int n = snprintf(conf->store, sizeof conf->store, "%s/sq-%s.db", conf->dir, conf->tag);
	if (n < 0 || (size_t)n >= sizeof conf->store) cmp_die("database path too long");
	sq_remove(conf);
	sqlite3 *db = sq_connect(conf, 1);
	sq_exec(db, create_sql);
	sqlite3_close(db);
}

/* Prepared inserts in big transactions, synchronous=OFF; the same jobs as
 * every other system's preload. */
static void sq_preload(const struct cmp_conf *conf, long n) {
	sqlite3 *db = sq_connect(conf, 0);
	struct sq q = {.db = db};
	q.enqueue = sq_prepare(db, enqueue_sql);
	struct cmp_new j;
	int64_t last = cmp_now_ns();
	for (long i = 0; i < n; i += SQ_FILL) {
		long end = i + SQ_FILL < n ? i + SQ_FILL : n;
		sq_exec(db, "BEGIN");
		for (long k = i; k < end; k++) {
			cmp_job_new(&j, 0, k, 0);
			sq_enqueue(&q, &j, 1);
		}
		sq_exec(db, "COMMIT");
		if (cmp_now_ns() - last > 10 * (int64_t)1000000000) {
			last = cmp_now_ns();
			cmp_note("preloaded %ld of %ld jobs", end, n);
		}
	}
	sqlite3_finalize(q.enqueue);
	sqlite3_close(db);
}

/* The fill's pages into the database file, the WAL emptied, statistics
 * for the planner. */
static void sq_settle(const struct cmp_conf *conf) {
	sqlite3 *db = sq_connect(conf, 1);
	sq_exec(db, "ANALYZE; PRAGMA wal_checkpoint(TRUNCATE)");
	sqlite3_close(db);
}

static void sq_teardown(struct cmp_conf *conf) {
	sq_remove(conf);
}

const struct cmp_backend cmp_sqlite = {
	.name = "sqlite",
	.prepare = sq_prepare_db,
	.preload = sq_preload,
	.settle = sq_settle,
	.teardown = sq_teardown,
	.open = sq_open,
	.enqueue = sq_enqueue,
	.claim = sq_claim,
	.complete = sq_complete,
	.close = sq_close,
};
