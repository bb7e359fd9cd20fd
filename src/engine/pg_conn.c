/* The PostgreSQL engine's connections: the pool, errors, statements. */
#include <sys/socket.h>

#include "engine/pg_int.h"

/* ---- small helpers -------------------------------------------------------- */

/* A libpq message on one line: newlines and tabs become spaces, and the
 * ends are trimmed; the URL's secrets, which libpq may quote, are hidden.
 * A line that repeats the one before it is dropped (libpq says the same
 * sentence once per attempt, as when it tries with SSL and then without). */
static void pge_line(const cj_edb *db, const char *msg, char *out, size_t cap) {
	size_t n = 0;
	int space = 0;
	const char *prev = NULL;
	size_t prev_len = 0;
	if (!msg) msg = "";
	while (*msg) {
		size_t len = strcspn(msg, "\n");
		int repeat = prev && len == prev_len && memcmp(msg, prev, len) == 0;
		if (len && !repeat) {
			for (const char *p = msg; p < msg + len && n + 1 < cap; p++) {
				if (*p == '\t' || *p == '\r' || *p == ' ') {
					space = n > 0;
					continue;
				}
				if (space && n + 2 < cap) out[n++] = ' ';
				space = 0;
				out[n++] = *p;
			}
			space = n > 0;
			prev = msg;
			prev_len = len;
		}
		msg += len;
		if (*msg) msg++;
	}
	out[n] = 0;
	cj__url_scrub(db->uri, out, cap);
}

char *cj__pg_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *cj__pg_printf(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) return NULL;
	char *s = cj__malloc((size_t)n + 1);
	if (!s) return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

void cj__pg_quiet(void *arg, const char *msg) {
	(void)arg, (void)msg; /* NOTICEs (e.g. "already exists, skipping") */
}

void cj__pg_close_conn(struct pge_conn *c) {
	if (!c) return;
	PQfinish(c->pg);
	cj_free(c);
}

/* Closes every idle connection (after one was found broken). */
void cj__pg_pool_flush(cj_edb *db) {
	pthread_mutex_lock(&db->mu);
	struct pge_conn *c = db->idle;
	db->idle = NULL;
	db->nidle = 0;
	pthread_mutex_unlock(&db->mu);
	while (c) {
		struct pge_conn *next = c->next;
		cj__pg_close_conn(c);
		c = next;
	}
}

/* The code and detail of a failed statement on c (res may be NULL). */
int cj__pg_fail(cj_edb *db, struct pge_conn *c, const PGresult *res,
                    const char *what) {
	char line[512];
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorMessage(res) : "";
	if (!msg || !*msg) msg = PQerrorMessage(c->pg);
	pge_line(db, msg, line, sizeof line);
	if (!*line && res)
		snprintf(line, sizeof line, "unexpected result %s",
		         PQresStatus(PQresultStatus(res)));
	else if (!*line)
		snprintf(line, sizeof line, "no result (out of memory?)");
	if (c->expired) {
		cj__pg_pool_flush(db); /* the server may not answer them either */
		return cj__fail(CJ_STORE, "postgresql %s: no answer from the server within %lld "
		                "ms (deadline_ms): the connection was dropped", what,
		                (long long)db->deadline_ms);
	}
	int rc = CJ_STORE;
	if (state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	              strcmp(state, "55P03") == 0))
		rc = CJ_CONFLICT;
	else if (state && strcmp(state, "54000") == 0)
		rc = CJ_TOO_LARGE;
	if (PQstatus(c->pg) != CONNECTION_OK) {
		cj__pg_pool_flush(db);
		return cj__fail(CJ_STORE, "postgresql %s: connection lost: %s", what, line);
	}
	return cj__fail(rc, "postgresql %s: %s", what, line);
}

/* Runs sql (no parameters) on c and checks its status. */
int cj__pg_exec(cj_edb *db, struct pge_conn *c, const char *sql,
                    ExecStatusType want, const char *what, PGresult **out) {
	PGresult *r = cj__pg_sql(db, c, sql);
	if (!r || PQresultStatus(r) != want) {
		int rc = cj__pg_fail(db, c, r, what);
		PQclear(r);
		return rc;
	}
	if (out) *out = r;
	else PQclear(r);
	return CJ_OK;
}

/* ---- deadlines (pg_int.h) --------------------------------------------------- */

/* Polls fd for events until deadline (monotonic ms): 1 ready, 0 the
 * deadline passed, -1 failed. */
static int pge_wait_fd(int fd, short events, int64_t deadline) {
	for (;;) {
		int64_t left = deadline - cj__mono_ms();
		if (left <= 0) return 0;
		struct pollfd p = {fd, events, 0};
		int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0) return 1;
		if (n < 0 && errno != EINTR) return -1;
	}
}

int cj__pg_await(cj_edb *db, struct pge_conn *c) {
	PGconn *pg = c->pg;
	int fd = PQsocket(pg);
	if (c->expired || fd < 0) return -1;
	int64_t deadline = cj__add_sat(cj__mono_ms(), db->deadline_ms);
	for (;;) {
		int f = PQflush(pg); /* 0 all sent, 1 more to send, -1 failed */
		if (f < 0) return -1;
		if (f == 0 && !PQisBusy(pg)) return 0;
		int w = pge_wait_fd(fd, f ? POLLIN | POLLOUT : POLLIN, deadline);
		if (w == 0) {
			/* whatever libpq does with it next fails at once */
			shutdown(fd, SHUT_RDWR);
			c->expired = 1;
		}
		if (w <= 0 || !PQconsumeInput(pg)) return -1;
	}
}

PGresult *cj__pg_call(cj_edb *db, struct pge_conn *c, const char *name, const char *sql,
                      int n, const char *const *vals, const int *lens, const int *fmts,
                      int rfmt) {
	PGconn *pg = c->pg;
	atomic_fetch_add_explicit(&db->round_trips, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&db->statements, 1, memory_order_relaxed);
	int ok = name     ? PQsendQueryPrepared(pg, name, n, vals, lens, fmts, rfmt)
	         : n >= 0 ? PQsendQueryParams(pg, sql, n, NULL, vals, lens, fmts, rfmt)
	                  : PQsendQuery(pg, sql);
	if (!ok) return NULL;
	PGresult *last = NULL, *r;
	for (;;) {
		if (cj__pg_await(db, c) != 0) {
			PQclear(last);
			return NULL;
		}
		if (!(r = PQgetResult(pg))) break;
		PQclear(last);
		last = r;
	}
	return last;
}

/* ---- connections ---------------------------------------------------------- */

int cj__pg_connect(cj_edb *db, struct pge_conn **out) {
	*out = NULL;
	struct pge_conn *c = cj__calloc(1, sizeof *c);
	if (!c) return cj__fail(CJ_NOMEM, "out of memory");
	c->pg = PQconnectStartParams(db->kw, db->val, 1);
	if (!c->pg) {
		cj_free(c);
		return cj__fail(CJ_NOMEM, "out of memory");
	}
	int64_t deadline = cj__add_sat(cj__mono_ms(), db->deadline_ms);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (PQstatus(c->pg) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
	       st != PGRES_POLLING_FAILED) {
		int w = pge_wait_fd(PQsocket(c->pg), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
		                    deadline);
		if (w == 0) {
			cj__pg_close_conn(c);
			return cj__fail(CJ_STORE, "postgresql connect: no answer from the server "
			                "within %lld ms (deadline_ms)", (long long)db->deadline_ms);
		}
		st = w < 0 ? PGRES_POLLING_FAILED : PQconnectPoll(c->pg);
	}
	if (PQstatus(c->pg) != CONNECTION_OK) {
		char line[512];
		pge_line(db, PQerrorMessage(c->pg), line, sizeof line);
		cj__pg_close_conn(c);
		return cj__fail(CJ_STORE, "postgresql connect: %s", line);
	}
	PQsetNoticeProcessor(c->pg, cj__pg_quiet, NULL);
	PQsetnonblocking(c->pg, 1); /* sends never block: see cj__pg_await */
	*out = c;
	return CJ_OK;
}

/* The statements of every transaction (BEGIN, COMMIT, ROLLBACK, the
 * commit's notification), prepared by the protocol: SQL's PREPARE takes
 * no transaction control. A named statement is parsed and planned once,
 * where one sent as text is parsed (and pg_notify planned) at every
 * transaction, on the server's CPU. */
static const struct {
	const char *name, *sql;
	int n;
} pge_tx_stmts[] = {
	{"cj_begin_w", "BEGIN ISOLATION LEVEL READ COMMITTED", 0},
	{"cj_begin_r", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0},
	{"cj_commit", "COMMIT", 0},
	{"cj_rollback", "ROLLBACK", 0},
	/* sent only when some listener holds the lock of a word of the
	 * commit (pg_listen.c): an exclusive lock on each that none holds is
	 * had at once, and kept until the statement's own commit */
	{"cj_notify_if",
	 "SELECT pg_notify($1, $2) WHERE NOT coalesce((SELECT bool_and("
	 "pg_try_advisory_xact_lock($3, k)) FROM unnest($4::int4[]) k), false)",
	 4},
};
#define PGE_TX_STMTS (sizeof pge_tx_stmts / sizeof pge_tx_stmts[0])

/* Reads the answers of n statements sent (and, piped, the sync's): CJ_OK
 * or the code of the first that failed. */
static int pge_prepared(cj_edb *db, struct pge_conn *c, size_t n, int piped) {
	int rc = CJ_OK;
	size_t ends = 0;
	for (;;) {
		if (cj__pg_await(db, c) != 0) return cj__pg_fail(db, c, NULL, "prepare");
		PGresult *r = PQgetResult(c->pg);
		if (!r) {
			if (PQstatus(c->pg) != CONNECTION_OK) return cj__pg_fail(db, c, NULL, "prepare");
			if (!piped && ++ends == n) return rc;
			if (ends > n + 1) return rc ? rc : cj__pg_fail(db, c, NULL, "prepare");
			continue;
		}
		ExecStatusType st = PQresultStatus(r);
#ifdef LIBPQ_HAS_PIPELINING
		if (st == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			return rc;
		}
#endif
		if (st != PGRES_COMMAND_OK && rc == CJ_OK) rc = cj__pg_fail(db, c, r, "prepare");
		PQclear(r);
	}
}

/* Prepares the statements of the ops (and the session settings) on a
 * connection of a store whose schema exists. */
int cj__pg_prepare(cj_edb *db, struct pge_conn *c) {
	int rc = cj__pg_exec(db, c, db->sql_prepare, PGRES_COMMAND_OK, "prepare", NULL);
	if (rc) return rc;
	PGconn *pg = c->pg;
#ifdef LIBPQ_HAS_PIPELINING
	/* all in one round trip */
	if (!PQenterPipelineMode(pg)) return cj__pg_fail(db, c, NULL, "prepare");
	atomic_fetch_add_explicit(&db->round_trips, 1, memory_order_relaxed);
	for (size_t i = 0; i < PGE_TX_STMTS; i++)
		if (!PQsendPrepare(pg, pge_tx_stmts[i].name, pge_tx_stmts[i].sql, pge_tx_stmts[i].n,
		                   NULL))
			return cj__pg_fail(db, c, NULL, "prepare");
	if (!PQpipelineSync(pg)) return cj__pg_fail(db, c, NULL, "prepare");
	if ((rc = pge_prepared(db, c, PGE_TX_STMTS, 1))) return rc;
	if (!PQexitPipelineMode(pg)) return cj__pg_fail(db, c, NULL, "prepare");
#else
	for (size_t i = 0; i < PGE_TX_STMTS && rc == CJ_OK; i++) {
		atomic_fetch_add_explicit(&db->round_trips, 1, memory_order_relaxed);
		if (!PQsendPrepare(pg, pge_tx_stmts[i].name, pge_tx_stmts[i].sql, pge_tx_stmts[i].n,
		                   NULL))
			return cj__pg_fail(db, c, NULL, "prepare");
		rc = pge_prepared(db, c, 1, 0);
	}
#endif
	return rc;
}

/* An idle connection still fine as far as a look without waiting tells:
 * a server that went away has closed it, which shows as readable. Its
 * last words (FATAL: terminating connection...) come first and libpq reads
 * them as a notice, the connection still OK: so it reads until nothing is
 * left, and the end of the stream marks it bad (a few reads at most: an
 * idle connection receives no more than a parameter status or a notice). */
static int pge_alive(struct pge_conn *c) {
	struct pollfd p = {PQsocket(c->pg), POLLIN, 0};
	for (int i = 0; i < 8 && PQstatus(c->pg) == CONNECTION_OK; i++) {
		if (p.fd < 0 || poll(&p, 1, 0) < 0) return 0;
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) break;
		if (!PQconsumeInput(c->pg)) return 0;
		PGnotify *n;
		while ((n = PQnotifies(c->pg))) PQfreemem(n);
	}
	return PQstatus(c->pg) == CONNECTION_OK &&
	       PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

/* A connection for a transaction: an idle one, or a new one (*fresh). */
int cj__pg_take(cj_edb *db, struct pge_conn **out, int *fresh) {
	*out = NULL;
	for (;;) {
		pthread_mutex_lock(&db->mu);
		struct pge_conn *c = db->idle;
		if (c) {
			db->idle = c->next;
			db->nidle--;
		}
		pthread_mutex_unlock(&db->mu);
		if (!c) break;
		c->next = NULL;
		if (cj__pg_settle(db, c) == 0 && pge_alive(c)) {
			*out = c;
			*fresh = 0;
			return CJ_OK;
		}
		cj__pg_close_conn(c);
	}
	struct pge_conn *c;
	int rc = cj__pg_connect(db, &c);
	if (rc) return rc;
	if ((rc = cj__pg_prepare(db, c))) {
		cj__pg_close_conn(c);
		return rc;
	}
	*out = c;
	*fresh = 1;
	return CJ_OK;
}

/* Returns a connection to the pool, or closes it if it is not idle and
 * healthy. */
void cj__pg_give(cj_edb *db, struct pge_conn *c) {
	if (!c) return;
	int piped = 0;
#ifdef LIBPQ_HAS_PIPELINING
	piped = PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF; /* answers left unread */
#endif
	/* one that owes the answers of a rollback is settled when taken */
	if (PQstatus(c->pg) != CONNECTION_OK || c->expired ||
	    (!c->owed && (piped || PQtransactionStatus(c->pg) != PQTRANS_IDLE))) {
		cj__pg_close_conn(c);
		return;
	}
	pthread_mutex_lock(&db->mu);
	if (db->nidle < PGE_POOL_IDLE) {
		c->next = db->idle;
		db->idle = c;
		db->nidle++;
		c = NULL;
	}
	pthread_mutex_unlock(&db->mu);
	cj__pg_close_conn(c);
}
