/*
 * The faulty engine: a wrapper around a real engine whose operations fail
 * when the engine fault switch (fault.c) says so. For the fault-injection
 * tests only: built with CJ_FAULTS, never in a release build.
 *
 * URL: "faulty:" followed by the real store's URL. Faults and what they do
 * (enum cj_fault_kind):
 *  - I/O error: the operation fails with CJ_STORE and does nothing; a commit
 *    is then aborted.
 *  - conflict: it fails with CJ_CONFLICT and does nothing (operations
 *    inside a transaction only, as real engines conflict).
 *  - lost connection: CJ_STORE, and every later operation of the
 *    transaction fails too; a commit that meets it lands but reports
 *    CJ_STORE, as when the answer to a commit is lost.
 * wait, watch and wake pass through: they cannot fail. So does shared()
 * (the combine file), so that calls are combined as on the real store;
 * receipt_put, receipt_get and sync fail as operations do.
 */
#include <string.h>

#include "cj_int.h"

struct cj_edb {
	const struct cj_engine *inner;
	cj_edb *edb;
};

struct cj_etx {
	const struct cj_engine *inner;
	cj_etx *etx;
	cj_etx *parent; /* of a nested transaction, else NULL */
	int lost; /* a lost-connection fault hit it: everything fails */
};

#define FAULTY_SCHEME "faulty:"

extern const struct cj_engine cj__engine_faulty;

/* CJ_OK, or the code of the fault this operation meets. */
static int fault(cj_etx *tx) {
	if (tx && tx->lost) return cj__fail(CJ_STORE, "injected fault: the connection was lost");
	int kind = cj__fault_engine_due(tx != NULL);
	switch (kind) {
	case 0: return CJ_OK;
	case CJ_FAULT_CONFLICT:
		return cj__fail(CJ_CONFLICT, "injected fault: serialization failure");
	case CJ_FAULT_LOST:
		if (tx) tx->lost = 1;
		return cj__fail(CJ_STORE, "injected fault: the connection was lost");
	default: return cj__fail(CJ_STORE, "injected fault: Input/output error");
	}
}

static int fty_open(const char *url, const cj_options *opts, cj_edb **out) {
	*out = NULL;
	const char *real = url + strlen(FAULTY_SCHEME);
	if (strncmp(real, FAULTY_SCHEME, strlen(FAULTY_SCHEME)) == 0)
		return cj__fail(CJ_INVALID, "faulty: needs a real store's URL after it");
	int rc = fault(NULL);
	if (rc) return rc;
	cj_edb *db = cj__calloc(1, sizeof *db);
	if (!db) return cj__fail(CJ_NOMEM, "out of memory");
	if ((rc = cj__engine_open(real, opts, &db->inner, &db->edb))) {
		cj_free(db);
		return rc;
	}
	*out = db;
	return CJ_OK;
}

static void fty_close(cj_edb *db) {
	cj__engine_close(db->inner, db->edb);
	cj_free(db);
}

static int fty_begin(cj_edb *db, int write, cj_etx **out) {
	*out = NULL;
	int rc = fault(NULL);
	if (rc) return rc;
	cj_etx *tx = cj__calloc(1, sizeof *tx);
	if (!tx) return cj__fail(CJ_NOMEM, "out of memory");
	tx->inner = db->inner;
	if ((rc = db->inner->begin(db->edb, write, &tx->etx))) {
		cj_free(tx);
		return rc;
	}
	*out = tx;
	return CJ_OK;
}

static void fty_abort(cj_etx *tx) {
	tx->inner->abort(tx->etx);
	cj_free(tx);
}

static int fty_commit(cj_etx *tx) {
	int lost_before = tx->lost;
	int rc = fault(tx);
	if (rc && (lost_before || !tx->lost)) {
		fty_abort(tx);
		return rc;
	}
	/* no fault, or the connection is lost now: the commit lands either way */
	int crc = tx->inner->commit(tx->etx);
	cj_free(tx);
	return rc ? rc : crc;
}

static int fty_commit_version(cj_etx *tx, uint64_t *out) {
	int rc = fault(tx);
	return rc ? rc : tx->inner->commit_version(tx->etx, out);
}

static void *fty_native(cj_etx *tx) { return tx->inner->native(tx->etx); }

static int fty_get(cj_etx *tx, int space, const void *k, size_t kl, const uint8_t **v,
                   size_t *vl) {
	int rc = fault(tx);
	return rc ? rc : tx->inner->get(tx->etx, space, k, kl, v, vl);
}

static int fty_put(cj_etx *tx, int space, const void *k, size_t kl, const void *v,
                   size_t vl) {
	int rc = fault(tx);
	return rc ? rc : tx->inner->put(tx->etx, space, k, kl, v, vl);
}

static int fty_del(cj_etx *tx, int space, const void *k, size_t kl) {
	int rc = fault(tx);
	return rc ? rc : tx->inner->del(tx->etx, space, k, kl);
}

static int fty_scan(cj_etx *tx, int space, const void *lo, size_t ll, const void *hi,
                    size_t hl, cj_scan_fn fn, void *arg) {
	int rc = fault(tx);
	return rc ? rc : tx->inner->scan(tx->etx, space, lo, ll, hi, hl, fn, arg);
}

static int fty_del_blind(cj_etx *tx, int space, const void *k, size_t kl) {
	int rc = fault(tx);
	if (rc) return rc;
	if (tx->inner->del_blind) return tx->inner->del_blind(tx->etx, space, k, kl);
	rc = tx->inner->del(tx->etx, space, k, kl);
	return rc == CJ_NOT_FOUND ? CJ_OK : rc;
}

/* One operation to fail, as the engine's add is one. */
static int fty_add(cj_etx *tx, int space, const cj_eadd *a, size_t n) {
	int rc = fault(tx);
	if (rc) return rc;
	if (tx->inner->add) return tx->inner->add(tx->etx, space, a, n);
	return cj__add_rmw(tx->inner, tx->etx, space, a, n);
}

static int fty_count_shards(cj_edb *db) {
	return db->inner->count_shards ? db->inner->count_shards(db->edb) : CJ_COUNT_SHARDS;
}

static int fty_claim_first(cj_etx *tx, int space, const void *lo, size_t ll, const void *hi,
                           size_t hl, cj_buf *key_out) {
	int rc = fault(tx);
	return rc ? rc : tx->inner->claim_first(tx->etx, space, lo, ll, hi, hl, key_out);
}

static int fty_notify(cj_etx *tx, const char *chan) {
	int rc = fault(tx);
	return rc ? rc : tx->inner->notify(tx->etx, chan);
}

static int fty_notify_one(cj_etx *tx, const char *chan) {
	int rc = fault(tx);
	if (rc) return rc;
	if (!tx->inner->notify_one) return tx->inner->notify(tx->etx, chan);
	return tx->inner->notify_one(tx->etx, chan);
}

static void fty_rouse(cj_edb *db, const char *chan) {
	if (db->inner->rouse) db->inner->rouse(db->edb, chan);
}

static uint64_t fty_watch(cj_edb *db, const char *chan) {
	return db->inner->watch(db->edb, chan);
}

static int fty_wait(cj_edb *db, const char *chan, uint64_t token, int64_t deadline_ms) {
	return db->inner->wait(db->edb, chan, token, deadline_ms);
}

static int fty_wait_any(cj_edb *db, const char *const *chans, const uint64_t *tokens,
                        size_t n, int64_t deadline_ms) {
	return db->inner->wait_any(db->edb, chans, tokens, n, deadline_ms);
}

static void fty_wake(cj_edb *db, const char *chan) { db->inner->wake(db->edb, chan); }

static int fty_notify_job(cj_etx *tx, unsigned job) {
	int rc = fault(tx);
	return rc ? rc : tx->inner->notify_job(tx->etx, job);
}

static uint64_t fty_word(cj_edb *db, unsigned w) { return db->inner->word(db->edb, w); }

static void fty_bump(cj_edb *db, unsigned w) { db->inner->bump(db->edb, w); }

/* Nesting: a fault at its begin or commit fails that op and changes
 * nothing; a lost connection is the whole transaction's, the parent's
 * too. A real store that cannot nest makes every begin_nested fail. */
static int fty_begin_nested(cj_etx *parent, cj_etx **out) {
	*out = NULL;
	if (!parent->inner->begin_nested)
		return cj__fail(CJ_STORE, "faulty: the real store cannot nest transactions");
	int rc = fault(parent);
	if (rc) return rc;
	cj_etx *tx = cj__calloc(1, sizeof *tx);
	if (!tx) return cj__fail(CJ_NOMEM, "out of memory");
	tx->inner = parent->inner;
	tx->parent = parent;
	if ((rc = parent->inner->begin_nested(parent->etx, &tx->etx))) {
		cj_free(tx);
		return rc;
	}
	*out = tx;
	return CJ_OK;
}

static void fty_abort_nested(cj_etx *tx) {
	if (tx->lost) tx->parent->lost = 1;
	tx->inner->abort_nested(tx->etx);
	cj_free(tx);
}

static int fty_commit_nested(cj_etx *tx) {
	int rc = fault(tx);
	if (rc) {
		fty_abort_nested(tx);
		return rc;
	}
	rc = tx->inner->commit_nested(tx->etx);
	cj_free(tx);
	return rc;
}

static int fty_shared(cj_edb *db, size_t len, void **out) {
	*out = NULL;
	if (!db->inner->shared) return cj__fail(CJ_STORE, "faulty: the real store shares no memory");
	return db->inner->shared(db->edb, len, out);
}

static int fty_receipt_put(cj_etx *tx, unsigned slot, uint64_t tag) {
	int rc = fault(tx);
	if (rc) return rc;
	if (!tx->inner->receipt_put) return cj__fail(CJ_STORE, "faulty: no receipts");
	return tx->inner->receipt_put(tx->etx, slot, tag);
}

static int fty_receipt_get(cj_edb *db, unsigned slot, uint64_t *tag) {
	int rc = fault(NULL);
	if (rc) return rc;
	if (!db->inner->receipt_get) return cj__fail(CJ_STORE, "faulty: no receipts");
	return db->inner->receipt_get(db->edb, slot, tag);
}

static int fty_sync(cj_edb *db) {
	int rc = fault(NULL);
	if (rc) return rc;
	return db->inner->sync ? db->inner->sync(db->edb) : CJ_OK;
}

static const char *const fty_schemes[] = {FAULTY_SCHEME, NULL};

const struct cj_engine cj__engine_faulty = {
	.name = "faulty",
	.schemes = fty_schemes,
	.version = CJ_ENGINE_VERSION,
	.supports = 0, /* the core writes the watch keys: more operations to fail */
	.open = fty_open,
	.close = fty_close,
	.begin = fty_begin,
	.commit = fty_commit,
	.abort = fty_abort,
	.commit_version = fty_commit_version,
	.native = fty_native,
	.get = fty_get,
	.put = fty_put,
	.del = fty_del,
	.scan = fty_scan,
	.claim_first = fty_claim_first,
	.del_blind = fty_del_blind,
	.notify = fty_notify,
	.watch = fty_watch,
	.wait = fty_wait,
	.wake = fty_wake,
	.wait_any = fty_wait_any,
	.notify_job = fty_notify_job,
	.word = fty_word,
	.bump = fty_bump,
	.begin_nested = fty_begin_nested,
	.commit_nested = fty_commit_nested,
	.abort_nested = fty_abort_nested,
	.notify_one = fty_notify_one,
	.rouse = fty_rouse,
	.add = fty_add,
	.count_shards = fty_count_shards,
	.shared = fty_shared,
	.receipt_put = fty_receipt_put,
	.receipt_get = fty_receipt_get,
	.sync = fty_sync,
};
