/* The PostgreSQL engine's speculation: reads answered from what this
 * process knows, checked by the server in the round trip that commits.
 *
 * A call's second round trip exists only because the core needs a read's
 * answer before it computes the writes; most often this process knows the
 * answer already (pg_cache.c): the job row its own accept wrote, a type's
 * settings read before. In a transaction the core marks so (engine.h's
 * speculate: its own transactions, which it runs again on CJ_CONFLICT), a
 * get() of a key the cache knows returns the cached value at once, and
 * queues an expectation: a statement that takes the lock the read would
 * take and fails unless the row is what the cache said:
 *
 *   present: cj_expect_w, SELECT 1 / count(*)::int FROM (SELECT 1 FROM kv
 *            WHERE space = $1 AND k = $2 AND v = $3 FOR UPDATE) x
 *   absent:  cj_lock_key (the advisory lock the absent read takes), then
 *            cj_expect_none, SELECT 1 / (1 - count(*))::int FROM kv
 *            WHERE space = $1 AND k = $2 (a statement of its own: its
 *            snapshot is taken once the lock is held, as the read's)
 *
 * and a scan of one key (a type's settings) the same without the locks
 * (cj_expect, cj_expect_none). The expectation goes where the read would
 * have gone in the transaction's order of statements, so the server runs
 * it where it would have run the read: one that holds means the read would
 * have returned those bytes, under that lock, and the transaction is
 * exactly what it would have been. It travels with the held writes and
 * COMMIT: one round trip. One that does not hold fails with
 * division_by_zero (22012), which no other statement of the engine can
 * raise, and only a statement queued as an expectation is taken for one:
 * the server skips the rest (COMMIT included) and the transaction rolls
 * back; the key that was not as cached turns cold (is answered by the
 * server from then on, pg_cache.c), and the commit
 * returns CJ_CONFLICT, so the core runs the call again and reads the
 * usual way. A real failure of an expectation (a deadlock, a lost
 * connection) has its own code and is reported as such.
 *
 * A key the transaction read from the server or wrote already is read
 * the usual way (the server shows the transaction's own writes).
 *
 * A call that fails (its work returned a code after acting on an answer
 * not checked yet: CJ_HALT, CJ_NOT_FOUND) must not report it before the
 * answers are checked: the core calls settle() first, which sends the
 * expectations queued (one round trip, only on such paths): CJ_CONFLICT
 * runs the call again.
 *
 * The commit of a transaction that asked nothing before it is its first
 * round trip. pg_pipe.c makes the first round trip of a pooled connection
 * separate from the COMMIT, so that a connection lost while idle shows
 * where nothing was done (CJ_CONFLICT, run again) rather than as a commit
 * of unknown outcome (CJ_STORE). A speculating transaction keeps that only
 * when its connection last answered PGE_FRESH_MS ago or more: one that
 * answered just before (a processor between two calls) is taken as alive
 * (a server that closed it shows when it is taken from the pool), and a
 * loss in that moment leaves a commit of unknown outcome, as any commit.
 *
 * Without libpq's pipeline mode nothing is gained (every statement is
 * waited for), and nothing is speculated.
 */
#include "engine/pg_int.h"

void cj__pg_spec_begin(cj_etx *tx) {
#ifdef LIBPQ_HAS_PIPELINING
	if (tx->write && !tx->started) tx->spec = 1;
#else
	(void)tx;
#endif
}

int cj__pg_one_key(const void *lo, size_t ll, const void *hi, size_t hl) {
	return lo && hi && ll > 0 && hl == ll + 1 && memcmp(lo, hi, ll) == 0 &&
	       ((const uint8_t *)hi)[ll] == 0;
}

int cj__pg_spec_read(cj_etx *tx, int space, const void *k, size_t kl, int locking,
                     cj_buf *val) {
	if (!tx->spec || tx->native_out || tx->mismatch) return 0;
	/* a key the transaction read or wrote already goes to the server,
	 * which shows the transaction's own writes; so does every key of a
	 * long transaction, to which a round trip more or less is nothing */
	if (tx->log.len > PGE_SPEC_LOG_MAX || cj__pg_log_names(&tx->log, space, k, kl)) return 0;
	int known = cj__pg_cache_get(&tx->db->cache, space, k, kl, val);
	if (!known) return 0;
	const char *vals[3] = {cj__pg_space[space], k, val->p ? (const char *)val->p : ""};
	int lens[3] = {0, (int)kl, (int)val->len}, fmts[3] = {0, 1, 1};
	int rc = CJ_OK;
	if (known == 2 && locking) {
		char num[16];
		cj__pg_key_hash(tx, space, k, kl, num);
		const char *lv[1] = {num};
		rc = cj__pg_queue(tx, "cj_lock_key", NULL, 1, lv, NULL, NULL);
	}
	size_t at = tx->spec_keys.len;
	cj__pg_log_to(&tx->spec_keys, PGE_LOG_UNKNOWN, space, k, kl, NULL, 0);
	tx->expect_key[0] = at;
	tx->expect_key[1] = tx->spec_keys.len - at;
	if (rc == CJ_OK)
		rc = cj__pg_queue_expect(tx, known == 2 ? "cj_expect_none"
		                         : locking      ? "cj_expect_w"
		                                        : "cj_expect",
		                         known == 2 ? 2 : 3, vals, lens, fmts);
	return rc ? rc : known;
}

int cj__pg_spec_failed(cj_etx *tx, int idx, const PGresult *r) {
	int x = -1;
	for (int i = 0; i < tx->nx; i++)
		if (tx->xidx[i] == idx) x = i;
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (x < 0 || !st || strcmp(st, "22012") != 0) return 0;
	tx->mismatch = 1;
	/* the key that was not as known; the others held (they ran before
	 * it) or were not looked at */
	cj_buf key = CJ_BUF_INIT;
	if (tx->spec_keys.oom) {
		key.oom = 1;
	} else {
		key.p = tx->spec_keys.p + tx->xkey[x][0];
		key.len = tx->xkey[x][1];
	}
	cj__pg_cache_chill(&tx->db->cache, &key);
	return cj__fail(CJ_CONFLICT, "postgresql: a row was not as this process last knew it "
	                "(a read answered from that): run the transaction again");
}

int cj__pg_spec_settle(cj_etx *tx) {
	if (tx->mismatch)
		return cj__fail(CJ_CONFLICT, "postgresql: a row was not as this process last "
		                "knew it: run the transaction again");
	if (!tx->nx) return CJ_OK; /* none, or checked by a round trip since */
	cj__pg_drop_held(tx); /* abandoned: its writes need not go */
	int rc = cj__pg_flush(tx);
	return rc ? rc : tx->mismatch ? CJ_CONFLICT : CJ_OK;
}

int cj__pg_spec_commit_first(const cj_etx *tx) {
	return tx->spec && tx->c->answered_ms > 0 &&
	       cj__mono_ms() - tx->c->answered_ms < PGE_FRESH_MS;
}
