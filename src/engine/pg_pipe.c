/* The PostgreSQL engine's queued writes.
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
 * Without pipeline support in libpq (before PostgreSQL 14) every write is
 * waited for, as any other statement.
 */
#include "engine/pg_int.h"

/* Runs one statement and waits for its result (within the deadline): a
 * prepared one by name, or sql. */
static PGresult *pge_exec_now(cj_etx *tx, const char *name, const char *sql, int n,
                              const char *const *vals, const int *lens, const int *fmts,
                              int rfmt) {
	return cj__pg_call(tx->db, tx->c, name, sql, n, vals, lens, fmts, rfmt);
}

#ifdef LIBPQ_HAS_PIPELINING

/* Sends one statement into the pipeline: a prepared one by name, or sql
 * (unnamed, extended protocol). */
static int pge_send(cj_etx *tx, const char *name, const char *sql, int n,
                    const char *const *vals, const int *lens, const int *fmts, int rfmt) {
	PGconn *pg = tx->c->pg;
	if (PQpipelineStatus(pg) == PQ_PIPELINE_OFF && !PQenterPipelineMode(pg))
		return cj__pg_fail(tx->db, tx->c, NULL, "pipeline");
	int ok = name ? PQsendQueryPrepared(pg, name, n, vals, lens, fmts, rfmt)
	              : PQsendQueryParams(pg, sql, n, NULL, vals, lens, fmts, rfmt);
	return ok ? CJ_OK : cj__pg_fail(tx->db, tx->c, NULL, "send");
}

/* Ends the pipeline: sends a sync, reads the result of every queued write
 * and, when res is not NULL, of the one statement sent after them (into
 * *res), then leaves pipeline mode. CJ_OK, or the code of the first write
 * that failed (or of the connection). */
static int pge_collect(cj_etx *tx, PGresult **res) {
	PGconn *pg = tx->c->pg;
	int rc = CJ_OK, idx = 0, last = tx->queued + (res ? 1 : 0);
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
		if (idx < tx->queued) {
			if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && rc == CJ_OK)
				rc = cj__pg_fail(tx->db, tx->c, r, "write");
			PQclear(r);
		} else if (res && idx == tx->queued && !*res) {
			*res = r;
		} else {
			PQclear(r);
		}
	}
	tx->queued = 0;
	if (PQpipelineStatus(pg) != PQ_PIPELINE_OFF && !PQexitPipelineMode(pg) && rc == CJ_OK)
		rc = cj__pg_fail(tx->db, tx->c, NULL, "pipeline");
	if (rc && res) {
		PQclear(*res);
		*res = NULL;
	}
	return rc;
}

int cj__pg_queue(cj_etx *tx, const char *name, const char *sql, int n,
                 const char *const *vals, const int *lens, const int *fmts) {
	/* bounded, so that the server never blocks writing results nobody
	 * reads while this process blocks sending it more */
	if (tx->queued >= PGE_QUEUE_MAX) {
		int rc = pge_collect(tx, NULL);
		if (rc) return rc;
	}
	int rc = pge_send(tx, name, sql, n, vals, lens, fmts, 1);
	if (rc == CJ_OK) tx->queued++;
	return rc;
}

int cj__pg_run(cj_etx *tx, const char *name, const char *sql, int n,
               const char *const *vals, const int *lens, const int *fmts, int rfmt,
               PGresult **res) {
	*res = NULL;
	if (tx->queued) {
		int rc = pge_send(tx, name, sql, n, vals, lens, fmts, rfmt);
		if (rc) {
			pge_collect(tx, NULL);
			return rc;
		}
		return pge_collect(tx, res);
	}
	*res = pge_exec_now(tx, name, sql, n, vals, lens, fmts, rfmt);
	return CJ_OK;
}

int cj__pg_flush(cj_etx *tx) {
	return tx->queued ? pge_collect(tx, NULL) : CJ_OK;
}

#else /* libpq without pipeline mode: every statement is waited for */

int cj__pg_queue(cj_etx *tx, const char *name, const char *sql, int n,
                 const char *const *vals, const int *lens, const int *fmts) {
	PGresult *r = pge_exec_now(tx, name, sql, n, vals, lens, fmts, 1);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK
	             ? CJ_OK
	             : cj__pg_fail(tx->db, tx->c, r, "write");
	PQclear(r);
	return rc;
}

int cj__pg_run(cj_etx *tx, const char *name, const char *sql, int n,
               const char *const *vals, const int *lens, const int *fmts, int rfmt,
               PGresult **res) {
	*res = pge_exec_now(tx, name, sql, n, vals, lens, fmts, rfmt);
	return CJ_OK;
}

int cj__pg_flush(cj_etx *tx) {
	(void)tx;
	return CJ_OK;
}

#endif
