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
 * (pge_start), and so is a write transaction's commit number (nextval),
 * whose answer is kept for commit_version(): a call that reads once and
 * commits costs two round trips. Since BEGIN no longer travels alone, a
 * pooled connection that a server restart broke shows at the first round
 * trip instead: nothing was done then, so that failure is CJ_CONFLICT (the
 * core runs the transaction again, on a new connection), unless the round
 * trip carried the COMMIT (pg.c's commit takes a round trip of its own
 * first in that case).
 *
 * A put is held back until the transaction's next statement (cj__pg_put):
 * when that is a put too, both go as one statement (cj_put2), which the
 * server runs for less than two (every job call writes two keys in a
 * row). Nothing is sent between them, so the server sees the writes in
 * the order they were made; two puts of one key keep the later value, as
 * two upserts in a row would. Once cj_tx_native() has handed the
 * connection out, puts are sent at once: a statement of the caller's own
 * must never run before a put made ahead of it.
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
	if (rc && first && !tx->fresh && !tx->c->expired && PQstatus(tx->c->pg) != CONNECTION_OK)
		return cj__fail(CJ_CONFLICT, "postgresql: a pooled connection was found lost (a "
		                "server restart?) before the transaction did anything: run it again");
	return rc;
}

static int pge_send_held(cj_etx *tx);

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
		PGresult **dest = idx < tx->queued ? pge_dest(tx, idx) : NULL;
		if (idx < tx->queued) {
			if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && rc == CJ_OK)
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
	if (tx->queued >= PGE_QUEUE_MAX || (dest && tx->nkeep == PGE_KEEP_MAX)) {
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
	tx->queued++;
	return CJ_OK;
}

/* The first statement of a transaction: BEGIN goes first, with the commit
 * number of a write transaction (its answer into tx->vres). */
static int pge_start(cj_etx *tx) {
	if (tx->started) return CJ_OK;
	tx->started = 1;
	int rc = pge_queue(tx, tx->write ? "cj_begin_w" : "cj_begin_r", NULL, 0, NULL, NULL,
	                   NULL, 1, NULL);
	if (rc == CJ_OK && tx->write) /* the number as text */
		rc = pge_queue(tx, "cj_nextval", NULL, 0, NULL, NULL, NULL, 0, &tx->vres);
	return rc;
}

int cj__pg_queue_into(cj_etx *tx, const char *name, const char *sql, int n,
                      const char *const *vals, const int *lens, const int *fmts,
                      PGresult **dest) {
	int rc = pge_start(tx);
	if (rc == CJ_OK) rc = pge_send_held(tx);
	return rc ? rc : pge_queue(tx, name, sql, n, vals, lens, fmts, 1, dest);
}

int cj__pg_run(cj_etx *tx, const char *name, const char *sql, int n,
               const char *const *vals, const int *lens, const int *fmts, int rfmt,
               PGresult **res) {
	*res = NULL;
	int rc = pge_start(tx);
	if (rc == CJ_OK) rc = pge_send_held(tx);
	if (rc) return rc;
	if (tx->queued) {
		if ((rc = pge_send(tx, name, sql, n, vals, lens, fmts, rfmt))) {
			pge_collect(tx, NULL);
			return rc;
		}
		return pge_collect(tx, res);
	}
	*res = pge_exec_now(tx, name, sql, n, vals, lens, fmts, rfmt);
	tx->answered = 1;
	return CJ_OK;
}

int cj__pg_flush(cj_etx *tx) {
	int rc = pge_start(tx);
	if (rc == CJ_OK) rc = pge_send_held(tx);
	if (rc) return rc;
	return tx->queued ? pge_collect(tx, NULL) : CJ_OK;
}

void cj__pg_rollback(cj_etx *tx) {
	struct pge_conn *c = tx->c;
	PGconn *pg = c->pg;
	tx->held.on = 0; /* rolled back unsent */
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
		tx->vres = pge_exec_now(tx, "cj_nextval", NULL, 0, NULL, NULL, NULL, 0);
		if (!tx->vres || PQresultStatus(tx->vres) != PGRES_TUPLES_OK) {
			rc = cj__pg_fail(db, tx->c, tx->vres, "commit number");
			PQclear(tx->vres);
			tx->vres = NULL;
		}
	}
	return pge_answered(tx, rc);
}

int cj__pg_queue_into(cj_etx *tx, const char *name, const char *sql, int n,
                      const char *const *vals, const int *lens, const int *fmts,
                      PGresult **dest) {
	int rc = pge_start(tx);
	if (rc == CJ_OK) rc = pge_send_held(tx);
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
	if (rc == CJ_OK) rc = pge_send_held(tx);
	if (rc) return rc;
	*res = pge_exec_now(tx, name, sql, n, vals, lens, fmts, rfmt);
	return CJ_OK;
}

int cj__pg_flush(cj_etx *tx) {
	int rc = pge_start(tx);
	return rc ? rc : pge_send_held(tx);
}

void cj__pg_rollback(cj_etx *tx) {
	tx->held.on = 0; /* rolled back unsent */
	if (!tx->started || PQtransactionStatus(tx->c->pg) == PQTRANS_IDLE) return;
	PQclear(pge_exec_now(tx, "cj_rollback", NULL, 0, NULL, NULL, NULL, 0));
}

int cj__pg_settle(cj_edb *db, struct pge_conn *c) {
	(void)db, (void)c;
	return 0;
}

#endif

int cj__pg_queue(cj_etx *tx, const char *name, const char *sql, int n,
                 const char *const *vals, const int *lens, const int *fmts) {
	return cj__pg_queue_into(tx, name, sql, n, vals, lens, fmts, NULL);
}

/* ---- held puts (see the top) --------------------------------------------------- */

/* Queues one put of k and v: CJ_OK, or as cj__pg_queue. */
static int pge_queue_put(cj_etx *tx, int space, const void *k, size_t kl, const void *v,
                         size_t vl) {
	/* a NULL parameter is SQL NULL: an empty value needs a pointer */
	const char *vals[3] = {cj__pg_space[space], k, v ? (const char *)v : ""};
	int lens[3] = {0, (int)kl, (int)vl}, fmts[3] = {0, 1, 1};
	return cj__pg_queue(tx, "cj_put", NULL, 3, vals, lens, fmts);
}

/* Sends the held put, if any: CJ_OK, or as cj__pg_queue. */
static int pge_send_held(cj_etx *tx) {
	if (!tx->held.on) return CJ_OK;
	tx->held.on = 0;
	return pge_queue_put(tx, tx->held.space, tx->held.k.p, tx->held.k.len, tx->held.v.p,
	                     tx->held.v.len);
}

int cj__pg_put(cj_etx *tx, int space, const void *k, size_t kl, const void *v, size_t vl) {
	if (tx->held.on && tx->held.space == space && tx->held.k.len == kl &&
	    memcmp(tx->held.k.p, k, kl) == 0) {
		/* one key again: the later value is what two upserts would leave */
		cj__buf_reset(&tx->held.v);
		cj__buf_add(&tx->held.v, v, vl);
		return tx->held.v.oom ? cj__fail(CJ_NOMEM, "out of memory") : CJ_OK;
	}
	if (tx->held.on) {
		tx->held.on = 0;
		const char *vals[6] = {cj__pg_space[tx->held.space], (const char *)tx->held.k.p,
		                       tx->held.v.p ? (const char *)tx->held.v.p : "",
		                       cj__pg_space[space], k, v ? (const char *)v : ""};
		int lens[6] = {0, (int)tx->held.k.len, (int)tx->held.v.len, 0, (int)kl, (int)vl};
		int fmts[6] = {0, 1, 1, 0, 1, 1};
		return cj__pg_queue(tx, "cj_put2", NULL, 6, vals, lens, fmts);
	}
	/* a statement of the caller's on the native handle must not run
	 * before this put (it fails instead while the put's answer is due:
	 * cj_tx_native() again reads it) */
	if (tx->native_out) return pge_queue_put(tx, space, k, kl, v, vl);
	cj__buf_reset(&tx->held.k);
	cj__buf_add(&tx->held.k, k, kl);
	cj__buf_reset(&tx->held.v);
	cj__buf_add(&tx->held.v, v, vl);
	if (tx->held.k.oom || tx->held.v.oom) return cj__fail(CJ_NOMEM, "out of memory");
	tx->held.space = space;
	tx->held.on = 1;
	return CJ_OK;
}
