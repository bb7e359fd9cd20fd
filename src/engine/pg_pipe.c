/* The PostgreSQL engine's round trips.
 *
 * A write (put) needs no answer before the transaction goes on, so it is
 * sent in libpq's pipeline mode and not waited for: its result is read
 * together with the result of the next statement that needs an answer (a
 * read, a delete, the commit), which travels in the same round trip. The
 * server runs the statements in the order they were sent, inside the same
 * transaction, so reads see the queued writes exactly as if each had been
 * waited for. A queued write that fails (a lock timeout, a deadlock, a lost
 * connection) fails the statement that carried it: that statement returns
 * the write's code, and the transaction is rolled back as after any failed
 * statement (the server skips what follows an error until the sync).
 *
 * A transaction's BEGIN is queued the same way, by its first statement
 * (pge_start): a call that reads once and commits costs two round trips.
 * A write transaction's commit number (nextval) rides on its first
 * statement that needs an answer: the claims, a get's lock on the key's
 * absence and a scan have a form that also returns it (the same query in
 * a lateral join on the one row of nextval, so that it comes even with no
 * row: cj_claim_n, cj_claim_pair_n, cj_lock_absent_n, cj_scan_n, the
 * number in the last column), read when the answer comes and kept for
 * commit_version(); before any other statement nextval goes as a statement
 * of its own, in the same round trip. A transaction that commits without
 * having asked for it takes none. Since BEGIN no longer travels alone, a
 * pooled connection that a server restart broke shows at the first round
 * trip instead: nothing was done then, so that failure is CJ_CONFLICT (the
 * core runs the transaction again, on a new connection), unless the round
 * trip carried the COMMIT (pg.c's commit takes a round trip of its own
 * first in that case).
 *
 * Writes that need no answer are held back until the next statement, and
 * go before it as one (pg_held.c).
 *
 * A transaction that ends without a commit sends its ROLLBACK without
 * waiting (cj__pg_rollback); the answer is read by the connection's next
 * user (cj__pg_settle, from the pool), long since there.
 *
 * Without pipeline support in libpq (before PostgreSQL 14) every statement
 * is waited for, BEGIN included.
 */
#include "engine/pg_int.h"

/* Runs one statement and waits for its result (within the deadline): a
 * prepared one by name, or sql. */
static PGresult *pge_exec_now(cj_etx *tx, const char *name, const char *sql, int n,
                              const char *const *vals, const int *lens, const int *fmts,
                              int rfmt) {
	return cj__pg_call(tx->db, tx->c, name, sql, n, vals, lens, fmts, rfmt);
}

/* The code of a round trip's failure: a connection taken from the pool and
 * lost at the transaction's first round trip did nothing (see the top). */
static int pge_answered(cj_etx *tx, int rc) {
	int first = !tx->answered;
	tx->answered = 1;
	if (rc == CJ_OK) tx->c->answered_ms = cj__mono_ms();
	/* (one that carried the COMMIT may have committed: pg_spec.c) */
	if (rc && first && !tx->fresh && !tx->committing && !tx->c->expired &&
	    PQstatus(tx->c->pg) != CONNECTION_OK)
		return cj__fail(CJ_CONFLICT, "postgresql: a pooled connection was found lost (a "
		                "server restart?) before the transaction did anything: run it again");
	return rc;
}


/* The commit number in the last column of r's one row (text or binary),
 * into tx->version. A failed statement's answer leaves it wanted (the
 * statement's own check reports the failure). */
static void pge_number_from(cj_etx *tx, const PGresult *r) {
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		tx->vwant = PGE_V_WANT;
		return;
	}
	tx->vwant = PGE_V_NONE;
	int col = PQnfields(r) - 1;
	uint64_t v = 0;
	if (PQntuples(r) == 1 && col >= 0 && !PQgetisnull(r, 0, col)) {
		const char *p = PQgetvalue(r, 0, col);
		if (PQfformat(r, col) == 1 && PQgetlength(r, 0, col) == 8)
			for (int i = 0; i < 8; i++) v = v << 8 | (uint8_t)p[i];
		else if (PQfformat(r, col) == 0)
			v = strtoull(p, NULL, 10);
	}
	if (v) tx->version = v;
	else if (!tx->failed)
		tx->failed = cj__fail(CJ_STORE, "schema %s: corrupt store: no commit number",
		                      tx->db->schema);
}

#ifdef LIBPQ_HAS_PIPELINING

/* Sends one statement into the pipeline: a prepared one by name, or sql
 * (unnamed, extended protocol). */
static int pge_send(cj_etx *tx, const char *name, const char *sql, int n,
                    const char *const *vals, const int *lens, const int *fmts, int rfmt) {
	PGconn *pg = tx->c->pg;
	if (PQpipelineStatus(pg) == PQ_PIPELINE_OFF && !PQenterPipelineMode(pg))
		return cj__pg_fail(tx->db, tx->c, NULL, "pipeline");
	atomic_fetch_add_explicit(&tx->db->statements, 1, memory_order_relaxed);
	int ok = name ? PQsendQueryPrepared(pg, name, n, vals, lens, fmts, rfmt)
	              : PQsendQueryParams(pg, sql, n, NULL, vals, lens, fmts, rfmt);
	if (tx->vwant == PGE_V_NEXT) {
		/* this one asks for the commit number (pge_ask) */
		tx->vwant = ok ? PGE_V_ASKED : PGE_V_WANT;
		tx->vidx = tx->queued;
	}
	return ok ? CJ_OK : cj__pg_fail(tx->db, tx->c, NULL, "send");
}

/* Where the answer of queued statement idx goes: NULL, dropped. */
static PGresult **pge_dest(cj_etx *tx, int idx) {
	for (int i = 0; i < tx->nkeep; i++)
		if (tx->keep[i].idx == idx) return tx->keep[i].dest;
	return NULL;
}

/* Ends the pipeline: sends a sync, reads the result of every queued write
 * and, when res is not NULL, of the one statement sent after them (into
 * *res), then leaves pipeline mode. CJ_OK, or the code of the first write
 * that failed (or of the connection). */
static int pge_collect(cj_etx *tx, PGresult **res) {
	PGconn *pg = tx->c->pg;
	int rc = CJ_OK, idx = 0, last = tx->queued + (res ? 1 : 0);
	atomic_fetch_add_explicit(&tx->db->round_trips, 1, memory_order_relaxed);
	if (!PQpipelineSync(pg)) rc = cj__pg_fail(tx->db, tx->c, NULL, "sync");
	while (rc == CJ_OK || PQstatus(pg) == CONNECTION_OK) {
		if (cj__pg_await(tx->db, tx->c) != 0) {
			if (rc == CJ_OK) rc = cj__pg_fail(tx->db, tx->c, NULL, "write");
			break;
		}
		PGresult *r = PQgetResult(pg);
		if (!r) {
			/* the end of one statement's results */
			if (PQstatus(pg) != CONNECTION_OK) {
				if (rc == CJ_OK) rc = cj__pg_fail(tx->db, tx->c, NULL, "write");
				break;
			}
			if (++idx > last + 1) break; /* no sync came: give up */
			continue;
		}
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			break;
		}
		if (tx->vwant == PGE_V_ASKED && idx == tx->vidx) pge_number_from(tx, r);
		PGresult **dest = idx < tx->queued ? pge_dest(tx, idx) : NULL;
		if (idx < tx->queued) {
			/* an expectation that did not hold is a conflict (pg_spec.c) */
			if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && rc == CJ_OK &&
			    !(rc = cj__pg_spec_failed(tx, idx, r)))
				rc = cj__pg_fail(tx->db, tx->c, r, "write");
			if (dest && !*dest) *dest = r;
			else PQclear(r);
		} else if (res && idx == tx->queued && !*res) {
			*res = r;
		} else {
			PQclear(r);
		}
	}
	if (rc) {
		for (int i = 0; i < tx->nkeep; i++) {
			PQclear(*tx->keep[i].dest);
			*tx->keep[i].dest = NULL;
		}
	}
	tx->queued = 0;
	tx->nkeep = 0;
	tx->nx = 0;
	if (tx->vwant == PGE_V_ASKED) tx->vwant = PGE_V_WANT; /* its answer never came */
	if (PQpipelineStatus(pg) != PQ_PIPELINE_OFF && !PQexitPipelineMode(pg) && rc == CJ_OK)
		rc = cj__pg_fail(tx->db, tx->c, NULL, "pipeline");
	if (rc && res) {
		PQclear(*res);
		*res = NULL;
	}
	return pge_answered(tx, rc);
}

static int pge_queue(cj_etx *tx, const char *name, const char *sql, int n,
                     const char *const *vals, const int *lens, const int *fmts, int rfmt,
                     PGresult **dest) {
	/* bounded, so that the server never blocks writing results nobody
	 * reads while this process blocks sending it more */
	if (tx->queued >= PGE_QUEUE_MAX || (dest && tx->nkeep == PGE_KEEP_MAX) ||
	    (tx->expecting && tx->nx == PGE_EXPECT_MAX)) {
		int rc = pge_collect(tx, NULL);
		if (rc) return rc;
	}
	int rc = pge_send(tx, name, sql, n, vals, lens, fmts, rfmt);
	if (rc) return rc;
	if (dest) {
		*dest = NULL;
		tx->keep[tx->nkeep].idx = tx->queued;
		tx->keep[tx->nkeep++].dest = dest;
	}
	if (tx->expecting) {
		tx->xkey[tx->nx][0] = tx->expect_key[0];
		tx->xkey[tx->nx][1] = tx->expect_key[1];
		tx->xidx[tx->nx++] = tx->queued;
	}
	tx->queued++;
	return CJ_OK;
}

/* The first statement of a transaction: BEGIN goes first; a write
 * transaction's commit number is wanted from then on (pge_ask). */
static int pge_start(cj_etx *tx) {
	if (tx->started) return CJ_OK;
	tx->started = 1;
	int rc = pge_queue(tx, tx->write ? "cj_begin_w" : "cj_begin_r", NULL, 0, NULL, NULL,
	                   NULL, 1, NULL);
	if (rc == CJ_OK && tx->write) tx->vwant = PGE_V_WANT;
	return rc;
}

/* Before a statement that needs an answer (name; NULL: sql): while the
 * commit number is wanted, the statement's form that asks for it too goes
 * instead (*name changed), or nextval goes before it. */
static int pge_ask(cj_etx *tx, const char **name) {
	static const char *const with[][2] = {
		{"cj_lock_absent", "cj_lock_absent_n"},
		{"cj_scan", "cj_scan_n"},
		{"cj_claim", "cj_claim_n"},
		{"cj_claim_pair", "cj_claim_pair_n"},
	};
	if (tx->vwant != PGE_V_WANT) return CJ_OK;
	tx->vwant = PGE_V_NEXT; /* the next statement sent asks (pge_send) */
	for (size_t i = 0; *name && i < sizeof with / sizeof with[0]; i++) {
		if (strcmp(*name, with[i][0]) == 0) {
			*name = with[i][1];
			return CJ_OK;
		}
	}
	return pge_queue(tx, "cj_nextval", NULL, 0, NULL, NULL, NULL, 1, NULL);
}

int cj__pg_queue_into(cj_etx *tx, const char *name, const char *sql, int n,
                      const char *const *vals, const int *lens, const int *fmts,
                      PGresult **dest) {
	int rc = pge_start(tx);
	if (rc == CJ_OK) rc = cj__pg_send_held(tx);
	if (rc == CJ_OK && dest) rc = pge_ask(tx, &name);
	return rc ? rc : pge_queue(tx, name, sql, n, vals, lens, fmts, 1, dest);
}

int cj__pg_queue_expect(cj_etx *tx, const char *name, int n, const char *const *vals,
                        const int *lens, const int *fmts) {
	int rc = pge_start(tx);
	if (rc == CJ_OK) rc = cj__pg_send_held(tx);
	if (rc) return rc;
	tx->expecting = 1;
	rc = pge_queue(tx, name, NULL, n, vals, lens, fmts, 1, NULL);
	tx->expecting = 0;
	return rc;
}

int cj__pg_run(cj_etx *tx, const char *name, const char *sql, int n,
               const char *const *vals, const int *lens, const int *fmts, int rfmt,
               PGresult **res) {
	*res = NULL;
	int rc = pge_start(tx);
	if (rc == CJ_OK) rc = cj__pg_send_held(tx);
	if (rc == CJ_OK) rc = pge_ask(tx, &name);
	if (rc) return rc;
	if (tx->queued) {
		if ((rc = pge_send(tx, name, sql, n, vals, lens, fmts, rfmt))) {
			pge_collect(tx, NULL);
			return rc;
		}
		return pge_collect(tx, res);
	}
	*res = pge_exec_now(tx, name, sql, n, vals, lens, fmts, rfmt);
	if (tx->vwant == PGE_V_NEXT) pge_number_from(tx, *res);
	tx->answered = 1;
	if (*res && PQstatus(tx->c->pg) == CONNECTION_OK) tx->c->answered_ms = cj__mono_ms();
	return CJ_OK;
}

int cj__pg_number(cj_etx *tx) {
	/* the held writes stay held: the number needs none of them, and they
	 * go as one statement with the next (cj_update's delete, taken before
	 * its number, with its puts) */
	int rc = pge_start(tx);
	if (rc == CJ_OK && tx->vwant == PGE_V_WANT) {
		tx->vwant = PGE_V_NEXT;
		rc = pge_queue(tx, "cj_nextval", NULL, 0, NULL, NULL, NULL, 1, NULL);
	}
	if (rc) return rc;
	return tx->queued ? pge_collect(tx, NULL) : CJ_OK;
}

int cj__pg_flush(cj_etx *tx) {
	int rc = pge_start(tx);
	if (rc == CJ_OK) rc = cj__pg_send_held(tx);
	if (rc) return rc;
	return tx->queued ? pge_collect(tx, NULL) : CJ_OK;
}

void cj__pg_rollback(cj_etx *tx) {
	struct pge_conn *c = tx->c;
	PGconn *pg = c->pg;
	cj__pg_drop_held(tx); /* rolled back unsent */
	if (!tx->started) return;
	if (PQstatus(pg) != CONNECTION_OK || c->expired) return; /* closed when given back */
	if (!tx->queued && PQtransactionStatus(pg) == PQTRANS_IDLE) return; /* it ended */
	if (PQpipelineStatus(pg) == PQ_PIPELINE_OFF && !PQenterPipelineMode(pg)) return;
	/* a sync after the queued writes first: a failed one makes the server
	 * skip the rest of its segment, which must not hold the ROLLBACK */
	int ok = (!tx->queued || PQpipelineSync(pg)) &&
	         PQsendQueryPrepared(pg, "cj_rollback", 0, NULL, NULL, NULL, 0) &&
	         PQpipelineSync(pg);
	/* the queued answers no longer matter; they are read with it */
	for (int i = 0; i < tx->nkeep; i++) *tx->keep[i].dest = NULL;
	tx->nkeep = 0;
	c->owed = ok ? (tx->queued ? 2 : 1) : 0;
	tx->queued = 0;
	if (ok && PQflush(pg) == 0) return; /* sent: the next user reads the answers */
	/* not all sent at once: read the answers now (else the connection,
	 * left in pipeline mode with nothing owed, is closed when given back) */
	if (ok) cj__pg_settle(tx->db, c);
}

int cj__pg_settle(cj_edb *db, struct pge_conn *c) {
	PGconn *pg = c->pg;
	while (c->owed) {
		if (cj__pg_await(db, c) != 0) return -1;
		PGresult *r = PQgetResult(pg);
		if (!r) {
			if (PQstatus(pg) != CONNECTION_OK) return -1;
			continue;
		}
		if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) c->owed--;
		PQclear(r);
	}
	if (PQpipelineStatus(pg) != PQ_PIPELINE_OFF && !PQexitPipelineMode(pg)) return -1;
	return 0;
}

#else /* libpq without pipeline mode: every statement is waited for */

static int pge_start(cj_etx *tx) {
	if (tx->started) return CJ_OK;
	tx->started = 1;
	cj_edb *db = tx->db;
	PGresult *r = pge_exec_now(tx, tx->write ? "cj_begin_w" : "cj_begin_r", NULL, 0, NULL,
	                           NULL, NULL, 0);
	int rc = r && PQresultStatus(r) == PGRES_COMMAND_OK ? CJ_OK
	                                                    : cj__pg_fail(db, tx->c, r, "begin");
	PQclear(r);
	if (rc == CJ_OK && tx->write) {
		r = pge_exec_now(tx, "cj_nextval", NULL, 0, NULL, NULL, NULL, 0);
		if (r && PQresultStatus(r) == PGRES_TUPLES_OK) pge_number_from(tx, r);
		else rc = cj__pg_fail(db, tx->c, r, "commit number");
		PQclear(r);
	}
	return pge_answered(tx, rc);
}

int cj__pg_queue_into(cj_etx *tx, const char *name, const char *sql, int n,
                      const char *const *vals, const int *lens, const int *fmts,
                      PGresult **dest) {
	int rc = pge_start(tx);
	if (rc == CJ_OK) rc = cj__pg_send_held(tx);
	if (rc) return rc;
	PGresult *r = pge_exec_now(tx, name, sql, n, vals, lens, fmts, 1);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK
	         ? CJ_OK
	         : cj__pg_fail(tx->db, tx->c, r, "write");
	if (rc == CJ_OK && dest) *dest = r;
	else PQclear(r);
	return rc;
}

int cj__pg_run(cj_etx *tx, const char *name, const char *sql, int n,
               const char *const *vals, const int *lens, const int *fmts, int rfmt,
               PGresult **res) {
	*res = NULL;
	int rc = pge_start(tx);
	if (rc == CJ_OK) rc = cj__pg_send_held(tx);
	if (rc) return rc;
	*res = pge_exec_now(tx, name, sql, n, vals, lens, fmts, rfmt);
	return CJ_OK;
}

int cj__pg_flush(cj_etx *tx) {
	int rc = pge_start(tx);
	return rc ? rc : cj__pg_send_held(tx);
}

int cj__pg_queue_expect(cj_etx *tx, const char *name, int n, const char *const *vals,
                        const int *lens, const int *fmts) {
	return cj__pg_queue(tx, name, NULL, n, vals, lens, fmts); /* never speculates */
}

void cj__pg_rollback(cj_etx *tx) {
	cj__pg_drop_held(tx); /* rolled back unsent */
	if (!tx->started || PQtransactionStatus(tx->c->pg) == PQTRANS_IDLE) return;
	PQclear(pge_exec_now(tx, "cj_rollback", NULL, 0, NULL, NULL, NULL, 0));
}

int cj__pg_settle(cj_edb *db, struct pge_conn *c) {
	(void)db, (void)c;
	return 0;
}

int cj__pg_number(cj_etx *tx) {
	int rc = pge_start(tx); /* takes it */
	return rc ? rc : tx->failed;
}

#endif

int cj__pg_queue(cj_etx *tx, const char *name, const char *sql, int n,
                 const char *const *vals, const int *lens, const int *fmts) {
	return cj__pg_queue_into(tx, name, sql, n, vals, lens, fmts, NULL);
}
