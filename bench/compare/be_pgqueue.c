/* cj_compare: a plain PostgreSQL queue, the way such queues are commonly
 * built (one table, FOR UPDATE SKIP LOCKED, LISTEN/NOTIFY to wake idle
 * processors), through libpq with prepared statements.
 *
 *   enqueue:  one statement inserting the row and calling pg_notify
 *   claim:    UPDATE jobs SET state='running', locked_at=now() WHERE id =
 *             (SELECT id FROM jobs WHERE state='pending' ORDER BY id
 *              FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id, data
 *             and when that finds nothing: LISTEN, wait for a
 *             notification up to the remaining timeout, try again
 *   complete: UPDATE jobs SET state='finished' WHERE id=$1
 * Every statement commits on its own (autocommit). Durable mode keeps
 * synchronous_commit=on (COMMIT waits for its WAL flush); relaxed mode sets
 * synchronous_commit=off on the session.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "pgutil.h"
#include "util.h"

#define CHANNEL "cmp_jobs"
#define FILL 1000000 /* rows per INSERT ... SELECT in preload */

static const char create_sql[] =
	"DROP TABLE IF EXISTS jobs;"
	"CREATE TABLE jobs (id text PRIMARY KEY, state text NOT NULL, data jsonb NOT NULL,"
	" locked_at timestamptz);"
	"CREATE INDEX jobs_pending ON jobs (id) WHERE state = 'pending'";

static const char enqueue_sql[] =
	"WITH ins AS (INSERT INTO jobs (id, state, data) VALUES ($1, 'pending', $2::jsonb)"
	" RETURNING id) SELECT pg_notify('" CHANNEL "', '') FROM ins";

static const char claim_sql[] =
	"UPDATE jobs SET state = 'running', locked_at = now() WHERE id ="
	" (SELECT id FROM jobs WHERE state = 'pending' ORDER BY id"
	" FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id, data";

static const char complete_sql[] = "UPDATE jobs SET state = 'finished' WHERE id = $1";

struct pq {
	PGconn *c;
	int listening;
};

static void prepare_stmt(PGconn *c, const char *name, const char *sql, int nparams) {
	PGresult *r = PQprepare(c, name, sql, nparams, NULL);
	cmp_pg_check(c, r, PGRES_COMMAND_OK, name);
	PQclear(r);
}

static void *pq_open(const struct cmp_conf *conf) {
	struct pq *p = cmp_xcalloc(1, sizeof *p);
	p->c = cmp_pg_connect(conf->url);
	cmp_pg_exec(p->c, conf->durable ? "SET synchronous_commit = on"
	                                : "SET synchronous_commit = off");
	cmp_pg_exec(p->c, "SET application_name = 'cj_compare pgqueue'");
	prepare_stmt(p->c, "enqueue", enqueue_sql, 2);
	prepare_stmt(p->c, "claim", claim_sql, 0);
	prepare_stmt(p->c, "complete", complete_sql, 1);
	return p;
}

static void pq_close(void *h) {
	struct pq *p = h;
	PQfinish(p->c);
	free(p);
}

static void pq_enqueue(void *h, const struct cmp_new *jobs, size_t n) {
	struct pq *p = h;
	for (size_t i = 0; i < n; i++) { /* n is 1 */
		const char *params[2] = {jobs[i].id, jobs[i].data};
		PGresult *r = PQexecPrepared(p->c, "enqueue", 2, params, NULL, NULL, 0);
		cmp_pg_check(p->c, r, PGRES_TUPLES_OK, "enqueue");
		if (PQntuples(r) != 1) cmp_die("enqueue %s: %d rows", jobs[i].id, PQntuples(r));
		PQclear(r);
	}
}

/* One attempt: 1 and the job in out, or 0. */
static size_t try_claim(struct pq *p, struct cmp_job *out) {
	PGresult *r = PQexecPrepared(p->c, "claim", 0, NULL, NULL, NULL, 0);
	cmp_pg_check(p->c, r, PGRES_TUPLES_OK, "claim");
	size_t got = 0;
	if (PQntuples(r) == 1) {
		memset(&out[0], 0, sizeof out[0]);
		snprintf(out[0].id, sizeof out[0].id, "%s", PQgetvalue(r, 0, 0));
		size_t len = (size_t)PQgetlength(r, 0, 1);
		out[0].data = cmp_xmalloc(len + 1);
		memcpy(out[0].data, PQgetvalue(r, 0, 1), len + 1);
		got = 1;
	}
	PQclear(r);
	return got;
}

/* Drops the notifications already received. */
static void drain_notifies(struct pq *p) {
	PGnotify *n;
	if (!PQconsumeInput(p->c)) cmp_die("notifications: %s", PQerrorMessage(p->c));
	while ((n = PQnotifies(p->c))) PQfreemem(n);
}

/* Waits until a notification arrives or deadline passes. 1: one came. */
static int wait_notify(struct pq *p, int64_t deadline) {
	for (;;) {
		PGnotify *n = PQnotifies(p->c);
		if (n) {
			PQfreemem(n);
			return 1;
		}
		int64_t left = deadline - cmp_now_ns();
		if (left <= 0) return 0;
		struct pollfd pf = {PQsocket(p->c), POLLIN, 0};
		int ms = (int)((left + 999999) / 1000000);
		int rc = poll(&pf, 1, ms);
		if (rc < 0 && errno != EINTR) cmp_die("poll: %s", strerror(errno));
		if (rc > 0 && !PQconsumeInput(p->c)) cmp_die("notifications: %s", PQerrorMessage(p->c));
	}
}

static size_t pq_claim(void *h, size_t max, int timeout_ms, struct cmp_job *out) {
	struct pq *p = h;
	(void)max; /* one job per request */
	if (try_claim(p, out)) return 1;
	if (timeout_ms <= 0) return 0;
	int64_t deadline = cmp_now_ns() + (int64_t)timeout_ms * 1000000;
	if (!p->listening) {
		cmp_pg_exec(p->c, "LISTEN " CHANNEL);
		p->listening = 1;
	}
	/* Listening before each attempt: a job committed after the attempt's
	 * snapshot always sends a notification that wakes the wait. */
	for (;;) {
		drain_notifies(p);
		if (try_claim(p, out)) return 1;
		if (!wait_notify(p, deadline)) return 0;
	}
}

static size_t pq_complete(void *h, struct cmp_job *jobs, size_t n) {
	struct pq *p = h;
	for (size_t i = 0; i < n; i++) { /* n is 1 */
		const char *params[1] = {jobs[i].id};
		PGresult *r = PQexecPrepared(p->c, "complete", 1, params, NULL, NULL, 0);
		cmp_pg_check(p->c, r, PGRES_COMMAND_OK, "complete");
		if (strcmp(PQcmdTuples(r), "1") != 0) cmp_die("complete %s: no such job", jobs[i].id);
		PQclear(r);
		jobs[i].ok = 1;
		free(jobs[i].data);
		jobs[i].data = NULL;
	}
	return n;
}

static void pq_prepare(struct cmp_conf *conf) {
	PGconn *c = cmp_pg_connect(conf->url);
	cmp_pg_exec(c, create_sql);
	PQfinish(c);
}

/* INSERT ... SELECT generate_series, a million rows per statement; the
 * data has the same fields as every other system's jobs. */
static void pq_preload(const struct cmp_conf *conf, long n) {
	PGconn *c = cmp_pg_connect(conf->url);
	char sql[512];
	cmp_pg_exec(c, "SET synchronous_commit = off");
	for (long i = 0; i < n; i += FILL) {
		long end = i + FILL < n ? i + FILL : n;
		snprintf(sql, sizeof sql,
		         "INSERT INTO jobs (id, state, data) SELECT 'p0-' || lpad(g::text, 9, '0'),"
		         " 'pending', jsonb_build_object('n', g, 't', 0, 'pad', '%s')"
		         " FROM generate_series(%ld, %ld) g",
		         cmp_job_pad, i, end - 1);
		cmp_pg_exec(c, sql);
		if (n > FILL) cmp_note("preloaded %ld of %ld jobs", end, n);
	}
	PQfinish(c);
}

static void pq_settle(const struct cmp_conf *conf) {
	cmp_pg_settle(conf->url);
}

static void pq_teardown(struct cmp_conf *conf) {
	PGconn *c = cmp_pg_connect(conf->url);
	cmp_pg_exec(c, "DROP TABLE IF EXISTS jobs");
	PQfinish(c);
}

const struct cmp_backend cmp_pgqueue = {
	.name = "pgqueue",
	.prepare = pq_prepare,
	.preload = pq_preload,
	.settle = pq_settle,
	.teardown = pq_teardown,
	.open = pq_open,
	.enqueue = pq_enqueue,
	.claim = pq_claim,
	.complete = pq_complete,
	.close = pq_close,
};
