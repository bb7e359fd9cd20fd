/* Transactions: the caller's (cj_tx_*), the library's own (cj__run), the
 * caller's own key space, and the core's one way to the engine's data ops
 * (every engine call of a transaction is made here).
 *
 * The commit path of a call without a caller's transaction: a write goes
 * first to group.c, which combines the calls of several threads into one
 * commit (one durable flush) through nested transactions (cj__tx_nest)
 * when the engine nests and commits are flushed; a call it hands back,
 * and every read, runs in a transaction of its own (run_own), retried on
 * CJ_CONFLICT. */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cj_int.h"

#define CJ_MAX_RETRIES 200

/* The transactions this thread holds open, to refuse calls that would need
 * a second one on the same store (a self-deadlock on the embedded engine). */
static _Thread_local cj_tx *tls_open;

int cj__tx_held(const cj_db *db) {
	for (cj_tx *t = tls_open; t; t = t->tls_next)
		if (t->db == db) return 1;
	return 0;
}

static void tls_remove(cj_tx *tx) {
	for (cj_tx **p = &tls_open; *p; p = &(*p)->tls_next)
		if (*p == tx) {
			*p = tx->tls_next;
			return;
		}
}

int cj__tx_new(cj_db *db, int write, cj_tx **out) {
	*out = NULL;
	if (cj__tx_held(db))
		return cj__fail(CJ_INVALID, "this thread holds an open transaction on this "
		                "store: pass it to the call");
	cj_tx *tx = cj__calloc(1, sizeof *tx);
	if (!tx) return cj__fail(CJ_NOMEM, "out of memory");
	int rc = db->eng->begin(db->edb, write, &tx->etx);
	if (rc) {
		cj_free(tx);
		return rc;
	}
	tx->db = db;
	tx->write = write;
	tx->tls_next = tls_open;
	tls_open = tx;
	*out = tx;
	return CJ_OK;
}

static void tx_free(cj_tx *tx) {
	tls_remove(tx);
	cj__buf_free(&tx->kbuf);
	cj__buf_free(&tx->vbuf);
	cj__buf_free(&tx->adds);
	cj_free(tx);
}

void cj__tx_abort(cj_tx *tx) {
	tx->db->eng->abort(tx->etx);
	tx_free(tx);
}

int cj__tx_commit(cj_tx *tx) {
	if (tx->halted) {
		cj__tx_abort(tx);
		return cj__fail(CJ_HALT, "a job in this transaction is no longer held by "
		                "this processor: nothing was written");
	}
	int rc = cj__add_flush(tx);
	if (rc) {
		cj__tx_abort(tx);
		return rc;
	}
	rc = tx->db->eng->commit(tx->etx);
	tx_free(tx);
	return rc;
}

int cj__tx_nest(cj_tx *parent, cj_tx **out) {
	*out = NULL;
	cj_tx *tx = cj__calloc(1, sizeof *tx);
	if (!tx) return cj__fail(CJ_NOMEM, "out of memory");
	int rc = parent->db->eng->begin_nested(parent->etx, &tx->etx);
	if (rc) {
		cj_free(tx);
		return rc;
	}
	tx->db = parent->db;
	tx->write = 1;
	tx->parent = parent;
	tx->vs_order = parent->vs_order;
	*out = tx;
	return CJ_OK;
}

/* The versionstamps a nested transaction handed out stay taken, whatever
 * became of it: every one of a commit is unique. */
static void nest_free(cj_tx *tx) {
	tx->parent->vs_order = tx->vs_order;
	cj__buf_free(&tx->kbuf);
	cj__buf_free(&tx->vbuf);
	cj__buf_free(&tx->adds);
	cj_free(tx);
}

int cj__tx_nest_commit(cj_tx *tx) {
	cj_buf *up = &tx->parent->adds;
	size_t len = up->len;
	/* the parent makes the adds, with its own, at its commit */
	cj__buf_add(up, tx->adds.p, tx->adds.len);
	if (up->oom) {
		up->oom = 0;
		up->len = len;
		cj__tx_nest_abort(tx);
		return cj__fail(CJ_NOMEM, "out of memory");
	}
	int rc = tx->db->eng->commit_nested(tx->etx);
	if (rc) up->len = len;
	nest_free(tx);
	return rc;
}

void cj__tx_nest_abort(cj_tx *tx) {
	tx->db->eng->abort_nested(tx->etx);
	nest_free(tx);
}

int cj_tx_begin(cj_db *db, cj_tx **tx) {
	if (!tx) return cj__fail(CJ_INVALID, "tx out-pointer is NULL");
	*tx = NULL;
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	return cj__tx_new(db, 1, tx);
}

int cj_tx_commit(cj_tx *tx) {
	if (!tx) return cj__fail(CJ_INVALID, "tx is NULL");
	return cj__tx_commit(tx);
}

void cj_tx_abort(cj_tx *tx) {
	if (tx) cj__tx_abort(tx);
}

void *cj_tx_native(cj_tx *tx) {
	return tx ? tx->db->eng->native(tx->etx) : NULL;
}

static void backoff(int attempt) {
	if (attempt < 3) {
		sched_yield();
		return;
	}
	struct timespec ts = {0, (long)(attempt < 20 ? attempt : 20) * 500000L};
	nanosleep(&ts, NULL);
}

/* spec: the engine may answer reads from what it knows, checked at the
 * commit (engine.h's speculate): only for the library's own calls, whose
 * results nobody sees before this returns. A failure of fn is returned
 * only once the engine says the answers it acted on held (settle); one
 * that did not makes it run again, as a conflict at the commit does. Not
 * for cj_transact(): its fn sees each call's result and may act on it
 * (outside the store too) before the commit. */
static int run_own(cj_db *db, int write, int spec, int (*fn)(cj_tx *, void *), void *arg) {
	const struct cj_engine *e = db->eng;
	spec = spec && write && e->speculate && e->settle;
	for (int attempt = 0;; attempt++) {
		cj_tx *tx;
		int rc = cj__tx_new(db, write, &tx);
		if (rc) return rc;
		if (spec) e->speculate(tx->etx);
		rc = fn(tx, arg);
		if (rc == CJ_OK) {
			rc = cj__tx_commit(tx);
		} else {
			int held = spec && rc != CJ_CONFLICT ? e->settle(tx->etx) : CJ_OK;
			if (held != CJ_OK) rc = held;
			cj__tx_abort(tx);
		}
		if (rc != CJ_CONFLICT || attempt >= CJ_MAX_RETRIES) return rc;
		backoff(attempt);
	}
}

int cj_transact(cj_db *db, int (*fn)(cj_tx *tx, void *arg), void *arg) {
	if (!db || !fn) return cj__fail(CJ_INVALID, "NULL argument");
	return run_own(db, 1, 0, fn, arg);
}

int cj__run(cj_db *db, cj_tx *tx, int write, int (*fn)(cj_tx *tx, void *arg),
            void *arg) {
	if (!tx) {
		int rc;
		if (write && cj__group_run(db, fn, arg, &rc)) return rc;
		return run_own(db, write, 1, fn, arg);
	}
	if (tx->db != db) return cj__fail(CJ_INVALID, "tx belongs to another store");
	int rc = fn(tx, arg);
	if (rc == CJ_HALT) tx->halted = 1;
	return rc;
}

int cj__tx_receipt(cj_tx *tx, unsigned slot, uint64_t tag) {
	return tx->db->eng->receipt_put(tx->etx, slot, tag);
}

int cj__tx_version(cj_tx *tx, uint64_t *out) {
	*out = 0;
	return tx->db->eng->commit_version(tx->etx, out);
}

int cj__tx_vs(cj_tx *tx, uint8_t out[CJ_VS_LEN]) {
	uint64_t v;
	int rc = cj__tx_version(tx, &v);
	if (rc) return rc;
	cj__vs_make(out, v, tx->vs_order++);
	return CJ_OK;
}

/* ---- jobs space --------------------------------------------------------- */

static int oom(const cj_buf *b) {
	return b->oom ? cj__fail(CJ_NOMEM, "out of memory") : CJ_OK;
}

static void count_read(cj_db *db) {
	atomic_fetch_add_explicit(&db->store_reads, 1, memory_order_relaxed);
}

int cj__get(cj_tx *tx, const cj_buf *k, const uint8_t **v, size_t *vl) {
	if (oom(k)) return CJ_NOMEM;
	count_read(tx->db);
	return tx->db->eng->get(tx->etx, CJ_SPACE_JOBS, k->p, k->len, v, vl);
}

int cj__prefetch(cj_tx *tx, const cj_buf *k) {
	if (oom(k)) return CJ_NOMEM;
	const struct cj_engine *e = tx->db->eng;
	return e->prefetch && tx->write ? e->prefetch(tx->etx, CJ_SPACE_JOBS, k->p, k->len)
	                                : CJ_OK;
}

int cj__put(cj_tx *tx, const cj_buf *k, const cj_buf *v) {
	if (oom(k) || oom(v)) return CJ_NOMEM;
	return tx->db->eng->put(tx->etx, CJ_SPACE_JOBS, k->p, k->len, v->p, v->len);
}

int cj__add(cj_tx *tx, const cj_buf *k, int64_t delta) {
	if (oom(k)) return CJ_NOMEM;
	uint32_t kl = (uint32_t)k->len;
	size_t len = tx->adds.len;
	cj__buf_add(&tx->adds, &kl, sizeof kl);
	cj__buf_add(&tx->adds, k->p, k->len);
	cj__buf_add(&tx->adds, &delta, sizeof delta);
	if (!tx->adds.oom) return CJ_OK;
	tx->adds.oom = 0;
	tx->adds.len = len;
	return cj__fail(CJ_NOMEM, "out of memory");
}

static int add_cmp(const void *a, const void *b) {
	const cj_eadd *x = a, *y = b;
	int c = memcmp(x->k, y->k, x->kl < y->kl ? x->kl : y->kl);
	return c ? c : (x->kl > y->kl) - (x->kl < y->kl);
}

int cj__add_rmw(const struct cj_engine *e, cj_etx *etx, int space, const cj_eadd *a,
                size_t n) {
	for (size_t i = 0; i < n; i++) {
		const uint8_t *v;
		size_t vl;
		int64_t sum = 0;
		int rc = e->get(etx, space, a[i].k, a[i].kl, &v, &vl);
		if (rc == CJ_OK && (rc = cj__counter_decode(v, vl, &sum))) return rc;
		if (rc && rc != CJ_NOT_FOUND) return rc;
		sum = (int64_t)((uint64_t)sum + (uint64_t)a[i].delta);
		/* 0 is what an absent counter holds: a type whose jobs are all
		 * gone leaves no keys behind */
		if (sum == 0) {
			if (rc == CJ_OK && (rc = e->del(etx, space, a[i].k, a[i].kl))) return rc;
			continue;
		}
		uint8_t b[CJ_COUNTER_LEN];
		cj__counter_encode(b, sum);
		if ((rc = e->put(etx, space, a[i].k, a[i].kl, b, sizeof b))) return rc;
	}
	return CJ_OK;
}

int cj__add_flush(cj_tx *tx) {
	size_t n = 0, off = 0;
	while (off < tx->adds.len) {
		uint32_t kl;
		memcpy(&kl, tx->adds.p + off, sizeof kl);
		off += sizeof kl + kl + sizeof(int64_t);
		n++;
	}
	if (n == 0) return CJ_OK;
	cj_eadd *r = cj__malloc(n * sizeof *r);
	if (!r) return cj__fail(CJ_NOMEM, "out of memory");
	off = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t kl;
		memcpy(&kl, tx->adds.p + off, sizeof kl);
		r[i].kl = kl;
		r[i].k = tx->adds.p + off + sizeof kl;
		memcpy(&r[i].delta, r[i].k + kl, sizeof r[i].delta);
		off += sizeof kl + kl + sizeof r[i].delta;
	}
	qsort(r, n, sizeof *r, add_cmp);
	/* equal keys summed, sums of 0 left out */
	size_t m = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		int64_t sum = r[i].delta;
		for (; j < n && add_cmp(&r[i], &r[j]) == 0; j++)
			sum = (int64_t)((uint64_t)sum + (uint64_t)r[j].delta);
		if (sum) {
			r[m] = r[i];
			r[m++].delta = sum;
		}
		i = j;
	}
	int rc = CJ_OK;
	const struct cj_engine *e = tx->db->eng;
	if (m) rc = e->add ? e->add(tx->etx, CJ_SPACE_JOBS, r, m)
	                   : cj__add_rmw(e, tx->etx, CJ_SPACE_JOBS, r, m);
	cj_free(r);
	cj__buf_reset(&tx->adds);
	return rc;
}

int cj__del(cj_tx *tx, const cj_buf *k) {
	if (oom(k)) return CJ_NOMEM;
	return tx->db->eng->del(tx->etx, CJ_SPACE_JOBS, k->p, k->len);
}

int cj__del_blind(cj_tx *tx, const cj_buf *k) {
	if (oom(k)) return CJ_NOMEM;
	const struct cj_engine *e = tx->db->eng;
	if (e->del_blind) return e->del_blind(tx->etx, CJ_SPACE_JOBS, k->p, k->len);
	int rc = e->del(tx->etx, CJ_SPACE_JOBS, k->p, k->len);
	return rc == CJ_NOT_FOUND ? CJ_OK : rc;
}

int cj__scan(cj_tx *tx, const cj_buf *lo, const cj_buf *hi, cj_scan_fn fn, void *arg) {
	if (oom(lo) || oom(hi)) return CJ_NOMEM;
	count_read(tx->db);
	return tx->db->eng->scan(tx->etx, CJ_SPACE_JOBS, lo->p, lo->len, hi->p, hi->len, fn,
	                         arg);
}

/* The bound just above k: [k, end) holds k and nothing else. */
static void key_end(cj_buf *end, const cj_buf *k) {
	cj__buf_reset(end);
	cj__buf_add(end, k->p, k->len);
	cj__buf_add(end, "", 1);
}

int cj__scan_key(cj_tx *tx, const cj_buf *k, cj_scan_fn fn, void *arg) {
	cj_buf hi = CJ_BUF_INIT;
	key_end(&hi, k);
	int rc = cj__scan(tx, k, &hi, fn, arg);
	cj__buf_free(&hi);
	return rc;
}

int cj__prefetch_scan_key(cj_tx *tx, const cj_buf *k) {
	const struct cj_engine *e = tx->db->eng;
	if (!e->prefetch_scan || !tx->write) return CJ_OK;
	cj_buf hi = CJ_BUF_INIT;
	key_end(&hi, k);
	int rc = oom(k);
	if (!rc && !(rc = oom(&hi)))
		rc = e->prefetch_scan(tx->etx, CJ_SPACE_JOBS, k->p, k->len, hi.p, hi.len);
	cj__buf_free(&hi);
	return rc;
}

int cj__scan_prefix(cj_tx *tx, const cj_buf *prefix, cj_scan_fn fn, void *arg) {
	cj_buf hi = CJ_BUF_INIT;
	cj__buf_add(&hi, prefix->p, prefix->len);
	cj__tup_range_end(&hi);
	int rc = cj__scan(tx, prefix, &hi, fn, arg);
	cj__buf_free(&hi);
	return rc;
}

static int first_key(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                     void *arg) {
	(void)v, (void)vl;
	cj_buf *out = arg;
	cj__buf_reset(out);
	cj__buf_add(out, k, kl);
	return 1;
}

int cj__scan_first(cj_tx *tx, const cj_buf *lo, const cj_buf *hi, cj_buf *out) {
	int rc = cj__scan(tx, lo, hi, first_key, out);
	if (rc == 1 && oom(out)) return CJ_NOMEM;
	return rc;
}

int cj__claim_first(cj_tx *tx, const cj_buf *lo, const cj_buf *hi, cj_buf *out) {
	if (oom(lo) || oom(hi)) return CJ_NOMEM;
	count_read(tx->db);
	cj__buf_reset(out);
	int rc = tx->db->eng->claim_first(tx->etx, CJ_SPACE_JOBS, lo->p, lo->len, hi->p,
	                                  hi->len, out);
	if (rc == 1 && oom(out)) return CJ_NOMEM;
	return rc;
}

int cj__claim_pair(cj_tx *tx, const cj_buf *lo, const cj_buf *hi, const cj_ederive *d,
                   cj_buf *out, cj_buf *second) {
	const struct cj_engine *e = tx->db->eng;
	cj__buf_reset(second);
	if (!e->claim_pair) return cj__claim_first(tx, lo, hi, out);
	if (oom(lo) || oom(hi)) return CJ_NOMEM;
	count_read(tx->db);
	cj__buf_reset(out);
	int rc = e->claim_pair(tx->etx, CJ_SPACE_JOBS, lo->p, lo->len, hi->p, hi->len, d, out,
	                       second);
	if (rc == 1 && (oom(out) || oom(second))) return CJ_NOMEM;
	return rc;
}

int cj__claim_key(cj_tx *tx, const cj_buf *k) {
	cj_buf hi = CJ_BUF_INIT, out = CJ_BUF_INIT;
	key_end(&hi, k);
	int rc = cj__claim_first(tx, k, &hi, &out);
	cj__buf_free(&hi);
	cj__buf_free(&out);
	return rc;
}

int cj__notify(cj_tx *tx, const char *chan) {
	return tx->db->eng->notify(tx->etx, chan);
}

int cj__notify_job(cj_tx *tx, const char *type, const char *id) {
	return tx->db->eng->notify_job(tx->etx, cj__job_number(type, id));
}

static int put_vs(cj_tx *tx, cj_buf *k, const uint8_t vs[CJ_VS_LEN]) {
	cj_buf v = CJ_BUF_INIT;
	cj__tup_vs(&v, vs);
	int rc = cj__put(tx, k, &v);
	cj__buf_free(&v);
	return rc;
}

/* The watch keys, unless the engine asks to leave them out (engine.h). */
static int watch_keys(const cj_tx *tx) {
	return !(tx->db->eng->supports & CJ_ENGINE_NO_WATCH_KEYS);
}

int cj__watch_vs(cj_tx *tx, uint8_t out[CJ_VS_LEN]) {
	if (watch_keys(tx)) return cj__tx_vs(tx, out);
	memset(out, 0, CJ_VS_LEN);
	return CJ_OK;
}

int cj__touch_activity(cj_tx *tx, const char *type, const uint8_t vs[CJ_VS_LEN]) {
	/* the "activity" channel is marked with the job (cj__notify_job) */
	if (!watch_keys(tx)) return CJ_OK;
	cj__key_watch_activity(&tx->kbuf, type);
	return put_vs(tx, &tx->kbuf, vs);
}

/* Marks a type's pending channel to wake one of its acceptors (engine.h's
 * notify_one): each job made pending wakes one more. Acceptors hand on a
 * wake-up they cannot use (accept.c); the other channels' waiters do not,
 * so a pending channel that shares their wake word wakes all. */
static int notify_acceptors(cj_tx *tx, const char *chan) {
	const struct cj_engine *e = tx->db->eng;
	unsigned w = cj__chan_word(chan);
	if (!e->notify_one || w == cj__chan_word(CJ_CHAN_ACTIVITY) ||
	    w == cj__chan_word(CJ_CHAN_TYPES))
		return e->notify(tx->etx, chan);
	return e->notify_one(tx->etx, chan);
}

int cj__touch_pending(cj_tx *tx, const char *type, const uint8_t vs[CJ_VS_LEN]) {
	char chan[CJ_CHAN_MAX];
	if (watch_keys(tx)) {
		cj__key_watch_pending(&tx->kbuf, type);
		int rc = put_vs(tx, &tx->kbuf, vs);
		if (rc) return rc;
	}
	cj__chan_pending(chan, sizeof chan, type);
	return notify_acceptors(tx, chan);
}

/* ---- the caller's own keys ------------------------------------------------ */

static int check_user_key(cj_tx *tx, const void *key, size_t klen) {
	if (!tx) return cj__fail(CJ_INVALID, "tx is NULL");
	if (!key || klen == 0) return cj__fail(CJ_INVALID, "key is NULL or empty");
	if (klen > CJ_MAX_KEY)
		return cj__fail(CJ_TOO_LARGE, "key of %zu bytes is over %d", klen, CJ_MAX_KEY);
	return CJ_OK;
}

int cj_tx_put(cj_tx *tx, const void *key, size_t klen, const void *val, size_t vlen) {
	int rc = check_user_key(tx, key, klen);
	if (rc) return rc;
	if (!val && vlen) return cj__fail(CJ_INVALID, "val is NULL");
	if (vlen > tx->db->max_data)
		return cj__fail(CJ_TOO_LARGE, "value of %zu bytes is over the limit of %zu",
		                vlen, tx->db->max_data);
	return tx->db->eng->put(tx->etx, CJ_SPACE_USER, key, klen, val ? val : "", vlen);
}

int cj_tx_get(cj_tx *tx, const void *key, size_t klen, void **val, size_t *vlen) {
	if (val) *val = NULL;
	int rc = check_user_key(tx, key, klen);
	if (rc) return rc;
	if (!val || !vlen) return cj__fail(CJ_INVALID, "val or vlen is NULL");
	const uint8_t *v;
	size_t n;
	rc = tx->db->eng->get(tx->etx, CJ_SPACE_USER, key, klen, &v, &n);
	if (rc) return rc;
	char *copy = cj__malloc(n + 1);
	if (!copy) return cj__fail(CJ_NOMEM, "out of memory");
	memcpy(copy, v, n);
	copy[n] = 0;
	*val = copy;
	*vlen = n;
	return CJ_OK;
}

int cj_tx_del(cj_tx *tx, const void *key, size_t klen) {
	int rc = check_user_key(tx, key, klen);
	if (rc) return rc;
	return tx->db->eng->del(tx->etx, CJ_SPACE_USER, key, klen);
}

/* ---- copied scans ----------------------------------------------------------- */

static void put_len(cj_buf *b, size_t n) {
	uint8_t l[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
	                (uint8_t)n};
	cj__buf_add(b, l, 4);
}

static size_t get_len(const uint8_t *q) {
	return (size_t)q[0] << 24 | (size_t)q[1] << 16 | (size_t)q[2] << 8 | q[3];
}

int cj__batch_add(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *arg) {
	cj_batch *b = arg;
	if (b->n == b->max) return 1;
	put_len(&b->kv, kl);
	cj__buf_add(&b->kv, k, kl);
	put_len(&b->kv, vl);
	cj__buf_add(&b->kv, v, vl);
	b->n++;
	return b->kv.oom ? cj__fail(CJ_NOMEM, "out of memory") : 0;
}

int cj__batch_next(const cj_batch *b, size_t *off, const uint8_t **k, size_t *kl,
                   const uint8_t **v, size_t *vl) {
	if (*off >= b->kv.len) return 0;
	const uint8_t *q = b->kv.p + *off;
	*kl = get_len(q);
	*k = q + 4;
	*vl = get_len(q + 4 + *kl);
	*v = q + 8 + *kl;
	*off += 8 + *kl + *vl;
	return 1;
}
