/* The PostgreSQL engine's held writes.
 *
 * A write that needs no answer (put, del_blind, add) is held back until the
 * transaction's next statement, and the writes held then go before it as
 * one statement. Every job call ends with a few of them in a row (the
 * job's row and an index entry, a delete of the entry it leaves, its
 * counters): sent one by one they were three statements (cj_del, cj_put2,
 * cj_add), held they are one (cj_write), and the server runs one statement
 * for less than three (one bind, portal and snapshot instead of three).
 *
 * What is held is at most one delete, two puts and one add, of distinct
 * keys. PostgreSQL runs the parts of one statement (its data-modifying
 * WITH parts and its main part) in an order of its own, on one snapshot,
 * and a row written twice in one statement keeps only one of the writes:
 * with every key written once, the order changes nothing (writes of
 * distinct keys commute), and the statement does what the writes one after
 * the other would. A write that does not fit (a second delete or add, a
 * third put, a key already held) sends what is held first; except a put of
 * a key put already, which takes the later value, as two upserts in a row
 * would.
 *
 * A held write failing fails the statement that carries it, as a queued
 * write does (pg_pipe.c); a transaction that ends without a commit drops
 * what is held unsent. Once cj_tx_native() has handed the connection out,
 * nothing is held: a statement of the caller's own must never run before
 * a write made ahead of it.
 */
#include "engine/pg_int.h"

/* 1 if a held write (del, put or add) is of key k of space. */
static int pge_held_has(const cj_etx *tx, int space, const void *k, size_t kl) {
	const struct pge_held *h = &tx->held;
	if (h->del && h->del_space == space && h->del_k.len == kl && memcmp(h->del_k.p, k, kl) == 0)
		return 1;
	for (int i = 0; i < h->nput; i++)
		if (h->put_space[i] == space && h->put_k[i].len == kl &&
		    memcmp(h->put_k[i].p, k, kl) == 0)
			return 1;
	if (!h->add || h->add_space != space) return 0;
	for (size_t at = 0; at + sizeof(size_t) <= h->add_raw.len;) {
		size_t len;
		memcpy(&len, h->add_raw.p + at, sizeof len);
		at += sizeof len;
		if (len == kl && memcmp(h->add_raw.p + at, k, kl) == 0) return 1;
		at += len;
	}
	return 0;
}

/* A NULL parameter is SQL NULL: an empty value needs a pointer. */
static const char *pge_ptr(const cj_buf *b) {
	return b->p ? (const char *)b->p : "";
}

int cj__pg_send_held(cj_etx *tx) {
	struct pge_held *h = &tx->held;
	int nput = h->nput, del = h->del, add = h->add;
	if (!nput && !del && !add) return CJ_OK;
	h->nput = h->del = h->add = 0; /* sent by what follows (it sends what is held first) */
	const char *sp[2] = {cj__pg_space[h->put_space[0]], cj__pg_space[h->put_space[1]]};
	if (!del && !add) {
		const char *vals[6] = {sp[0], pge_ptr(&h->put_k[0]), pge_ptr(&h->put_v[0]),
		                       sp[1], pge_ptr(&h->put_k[1]), pge_ptr(&h->put_v[1])};
		int lens[6] = {0, (int)h->put_k[0].len, (int)h->put_v[0].len,
		               0, (int)h->put_k[1].len, (int)h->put_v[1].len};
		int fmts[6] = {0, 1, 1, 0, 1, 1};
		return cj__pg_queue(tx, nput == 2 ? "cj_put2" : "cj_put", NULL, nput * 3, vals, lens,
		                    fmts);
	}
	if (!nput && !add) {
		const char *vals[2] = {cj__pg_space[h->del_space], pge_ptr(&h->del_k)};
		int lens[2] = {0, (int)h->del_k.len}, fmts[2] = {0, 1};
		return cj__pg_queue(tx, "cj_del", NULL, 2, vals, lens, fmts);
	}
	if (!nput && !del) {
		const char *vals[3] = {cj__pg_space[h->add_space], (const char *)h->add_keys.p,
		                       (const char *)h->add_deltas.p};
		return cj__pg_queue(tx, "cj_add", NULL, 3, vals, NULL, NULL);
	}
	/* cj_write: the parts not held are NULL */
	const char *vals[11] = {
		del ? cj__pg_space[h->del_space] : NULL, del ? pge_ptr(&h->del_k) : NULL,
		nput > 0 ? sp[0] : NULL, nput > 0 ? pge_ptr(&h->put_k[0]) : NULL,
		nput > 0 ? pge_ptr(&h->put_v[0]) : NULL,
		nput > 1 ? sp[1] : NULL, nput > 1 ? pge_ptr(&h->put_k[1]) : NULL,
		nput > 1 ? pge_ptr(&h->put_v[1]) : NULL,
		add ? cj__pg_space[h->add_space] : NULL, add ? (const char *)h->add_keys.p : NULL,
		add ? (const char *)h->add_deltas.p : NULL};
	int lens[11] = {0, (int)h->del_k.len, 0, (int)h->put_k[0].len, (int)h->put_v[0].len,
	                0, (int)h->put_k[1].len, (int)h->put_v[1].len, 0, 0, 0};
	int fmts[11] = {0, 1, 0, 1, 1, 0, 1, 1, 0, 0, 0};
	return cj__pg_queue(tx, "cj_write", NULL, 11, vals, lens, fmts);
}

void cj__pg_drop_held(cj_etx *tx) {
	tx->held.nput = tx->held.del = tx->held.add = 0;
}

void cj__pg_free_held(cj_etx *tx) {
	struct pge_held *h = &tx->held;
	for (int i = 0; i < 2; i++) {
		cj__buf_free(&h->put_k[i]);
		cj__buf_free(&h->put_v[i]);
	}
	cj__buf_free(&h->del_k);
	cj__buf_free(&h->add_keys);
	cj__buf_free(&h->add_deltas);
	cj__buf_free(&h->add_raw);
}

/* Queues one put of k and v at once: CJ_OK, or as cj__pg_queue. */
static int pge_queue_put(cj_etx *tx, int space, const void *k, size_t kl, const void *v,
                         size_t vl) {
	const char *vals[3] = {cj__pg_space[space], k, v ? (const char *)v : ""};
	int lens[3] = {0, (int)kl, (int)vl}, fmts[3] = {0, 1, 1};
	return cj__pg_queue(tx, "cj_put", NULL, 3, vals, lens, fmts);
}

int cj__pg_put(cj_etx *tx, int space, const void *k, size_t kl, const void *v, size_t vl) {
	struct pge_held *h = &tx->held;
	if (tx->native_out) return pge_queue_put(tx, space, k, kl, v, vl);
	for (int i = 0; i < h->nput; i++) {
		if (h->put_space[i] != space || h->put_k[i].len != kl ||
		    memcmp(h->put_k[i].p, k, kl) != 0)
			continue;
		/* one key again: the later value is what two upserts would leave */
		cj__buf_reset(&h->put_v[i]);
		cj__buf_add(&h->put_v[i], v, vl);
		return h->put_v[i].oom ? cj__fail(CJ_NOMEM, "out of memory") : CJ_OK;
	}
	int rc = h->nput == 2 || pge_held_has(tx, space, k, kl) ? cj__pg_send_held(tx) : CJ_OK;
	if (rc) return rc;
	int i = h->nput;
	cj__buf_reset(&h->put_k[i]);
	cj__buf_add(&h->put_k[i], k, kl);
	cj__buf_reset(&h->put_v[i]);
	cj__buf_add(&h->put_v[i], v, vl);
	if (h->put_k[i].oom || h->put_v[i].oom) return cj__fail(CJ_NOMEM, "out of memory");
	h->put_space[i] = space;
	h->nput++;
	return CJ_OK;
}

int cj__pg_del_blind(cj_etx *tx, int space, const void *k, size_t kl) {
	struct pge_held *h = &tx->held;
	if (tx->native_out) {
		const char *vals[2] = {cj__pg_space[space], k};
		int lens[2] = {0, (int)kl}, fmts[2] = {0, 1};
		return cj__pg_queue(tx, "cj_del", NULL, 2, vals, lens, fmts);
	}
	int rc = h->del || pge_held_has(tx, space, k, kl) ? cj__pg_send_held(tx) : CJ_OK;
	if (rc) return rc;
	cj__buf_reset(&h->del_k);
	cj__buf_add(&h->del_k, k, kl);
	if (h->del_k.oom) return cj__fail(CJ_NOMEM, "out of memory");
	h->del_space = space;
	h->del = 1;
	return CJ_OK;
}

/* The add's two arrays in text form ({"\\x0102",...} and {1,-1,...}, each
 * NUL-terminated) into keys and deltas, and its keys into raw. */
static void pge_add_arrays(const cj_eadd *a, size_t n, cj_buf *keys, cj_buf *deltas,
                           cj_buf *raw) {
	static const char hex[] = "0123456789abcdef";
	cj__buf_reset(keys);
	cj__buf_reset(deltas);
	cj__buf_reset(raw);
	cj__buf_add(keys, "{", 1);
	cj__buf_add(deltas, "{", 1);
	for (size_t i = 0; i < n; i++) {
		char d[24];
		cj__buf_add(keys, i ? ",\"\\\\x" : "\"\\\\x", i ? 5 : 4);
		for (size_t j = 0; j < a[i].kl; j++) {
			char x[2] = {hex[a[i].k[j] >> 4], hex[a[i].k[j] & 15]};
			cj__buf_add(keys, x, 2);
		}
		cj__buf_add(keys, "\"", 1);
		int dl = snprintf(d, sizeof d, "%s%lld", i ? "," : "", (long long)a[i].delta);
		cj__buf_add(deltas, d, (size_t)dl);
		cj__buf_add(raw, &a[i].kl, sizeof a[i].kl);
		cj__buf_add(raw, a[i].k, a[i].kl);
	}
	cj__buf_add(keys, "}", 2); /* with its NUL */
	cj__buf_add(deltas, "}", 2);
}

int cj__pg_add(cj_etx *tx, int space, const cj_eadd *a, size_t n) {
	struct pge_held *h = &tx->held;
	int conflict = h->add, rc;
	for (size_t i = 0; i < n && !conflict; i++)
		conflict = pge_held_has(tx, space, a[i].k, a[i].kl);
	if (conflict && (rc = cj__pg_send_held(tx))) return rc;
	pge_add_arrays(a, n, &h->add_keys, &h->add_deltas, &h->add_raw);
	if (h->add_keys.oom || h->add_deltas.oom || h->add_raw.oom)
		return cj__fail(CJ_NOMEM, "out of memory");
	h->add_space = space;
	h->add = 1;
	if (tx->native_out) return cj__pg_send_held(tx);
	return CJ_OK;
}
