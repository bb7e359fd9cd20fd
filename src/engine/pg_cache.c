/* The PostgreSQL engine's cache of what this process knows of keys.
 *
 * A bounded map, per open store and shared by its threads (under a mutex
 * of its own), of (space, key) to the value the key had, or to its
 * absence, as this process last saw it in a write transaction of its own
 * that then committed: the values it wrote, and what it read under a lock
 * (a get, a claim) or in a scan of that one key. Nothing a transaction
 * did is learnt before its commit succeeded; a delete, a counter add and a
 * commit whose outcome is unknown make the key unknown instead. A key
 * whose cached answer proved wrong turns cold: it answers nothing, and
 * stays so (whatever is learnt of it) until it ages out or is deleted.
 *
 * The cache is a guess, never the truth: a speculating transaction
 * (pg_spec.c) acts on it only together with an expectation that the store
 * checks before the commit, and a wrong guess costs a rollback and a run
 * of the call again, never a wrong result. So entries need not follow
 * other processes' commits: they are replaced when this process learns
 * better, and turn cold when a guess made from them proved wrong.
 *
 * Bounds: at most PGE_CACHE_ENTRIES entries and PGE_CACHE_BYTES bytes of
 * keys and values (a value over PGE_CACHE_VALUE_MAX is not kept); the
 * least recently used go first. Everything is freed at close.
 *
 * What a transaction teaches is logged as it goes (cj__pg_log, into the
 * transaction's log) and learnt at its commit (cj__pg_cache_learn).
 */
#include "engine/pg_int.h"

struct pge_centry {
	struct pge_centry *hnext;      /* in its bucket */
	struct pge_centry *prev, *next; /* in the use order: head most recent */
	uint32_t hash;
	int space;
	int absent;
	int cold; /* a guess from it proved wrong: it answers nothing */
	size_t kl, vl;
	uint8_t data[]; /* the key, then the value */
};

/* A log record's head: what, then the key and value bytes. */
struct pge_logrec {
	uint8_t op, space;
	uint32_t kl, vl;
};

static uint32_t pge_chash(int space, const void *k, size_t kl) {
	return cj__fnv(CJ_FNV_SEED ^ (uint32_t)space, k, kl);
}

static size_t pge_csize(const struct pge_centry *e) {
	return sizeof *e + e->kl + e->vl;
}

int cj__pg_cache_init(struct pge_cache *c) {
	memset(c, 0, sizeof *c);
	if (pthread_mutex_init(&c->mu, NULL) != 0)
		return cj__fail(CJ_NOMEM, "cannot create the cache's mutex");
	c->buckets = cj__calloc(PGE_CACHE_BUCKETS, sizeof *c->buckets);
	if (!c->buckets) {
		pthread_mutex_destroy(&c->mu);
		return cj__fail(CJ_NOMEM, "out of memory");
	}
	c->ready = 1;
	return CJ_OK;
}

/* The entry of k, or NULL; *link: where it hangs in its bucket. */
static struct pge_centry *pge_cfind(struct pge_cache *c, uint32_t h, int space, const void *k,
                                    size_t kl, struct pge_centry ***link) {
	struct pge_centry **p = &c->buckets[h % PGE_CACHE_BUCKETS];
	for (; *p; p = &(*p)->hnext) {
		struct pge_centry *e = *p;
		if (e->hash == h && e->space == space && e->kl == kl && memcmp(e->data, k, kl) == 0) {
			if (link) *link = p;
			return e;
		}
	}
	if (link) *link = p;
	return NULL;
}

static void pge_cunlink(struct pge_cache *c, struct pge_centry *e) {
	if (e->prev) e->prev->next = e->next;
	else c->head = e->next;
	if (e->next) e->next->prev = e->prev;
	else c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void pge_cfront(struct pge_cache *c, struct pge_centry *e) {
	e->next = c->head;
	e->prev = NULL;
	if (c->head) c->head->prev = e;
	c->head = e;
	if (!c->tail) c->tail = e;
}

/* Removes e, hanging at *link, and frees it. */
static void pge_cremove(struct pge_cache *c, struct pge_centry *e, struct pge_centry **link) {
	*link = e->hnext;
	pge_cunlink(c, e);
	c->n--;
	c->bytes -= pge_csize(e);
	cj_free(e);
}

/* Drops k (keep_cold: unless it is cold, which answers nothing already). */
static void pge_cdrop(struct pge_cache *c, int space, const void *k, size_t kl,
                      int keep_cold) {
	struct pge_centry **link;
	struct pge_centry *e = pge_cfind(c, pge_chash(space, k, kl), space, k, kl, &link);
	if (e && !(keep_cold && e->cold)) pge_cremove(c, e, link);
}

static void pge_cclear(struct pge_cache *c) {
	for (size_t i = 0; i < PGE_CACHE_BUCKETS; i++) {
		struct pge_centry *e = c->buckets[i];
		while (e) {
			struct pge_centry *next = e->hnext;
			cj_free(e);
			e = next;
		}
		c->buckets[i] = NULL;
	}
	c->head = c->tail = NULL;
	c->n = c->bytes = 0;
}

/* Sets k to v (absent: to its absence), the oldest entries making room;
 * cold: to a key that answers nothing, and that nothing learnt warms (a
 * key other processes change, as a rate-limited type's bucket that every
 * accept writes: guessing it would fail each time). */
static void pge_cset(struct pge_cache *c, int space, const void *k, size_t kl, const void *v,
                     size_t vl, int absent, int cold) {
	if (absent || cold) vl = 0;
	uint32_t h = pge_chash(space, k, kl);
	struct pge_centry **link;
	struct pge_centry *old = pge_cfind(c, h, space, k, kl, &link);
	if (old && old->cold && !cold) return; /* stays cold until it ages out */
	if (old) pge_cremove(c, old, link);
	if (vl > PGE_CACHE_VALUE_MAX || kl > CJ_ENGINE_MAX_KEY) return;
	struct pge_centry *e = cj__malloc(sizeof *e + kl + vl);
	if (!e) return; /* unknown is always right */
	e->hash = h;
	e->space = space;
	e->absent = absent;
	e->cold = cold;
	e->kl = kl;
	e->vl = vl;
	memcpy(e->data, k, kl);
	if (vl) memcpy(e->data + kl, v, vl);
	while (c->tail && (c->n >= PGE_CACHE_ENTRIES || c->bytes + pge_csize(e) > PGE_CACHE_BYTES)) {
		struct pge_centry *last = c->tail, **at;
		pge_cfind(c, last->hash, last->space, last->data, last->kl, &at);
		pge_cremove(c, last, at);
	}
	struct pge_centry **b = &c->buckets[e->hash % PGE_CACHE_BUCKETS];
	e->hnext = *b;
	*b = e;
	pge_cfront(c, e);
	c->n++;
	c->bytes += pge_csize(e);
}

void cj__pg_cache_free(struct pge_cache *c) {
	if (!c->ready) return;
	pge_cclear(c);
	cj_free(c->buckets);
	pthread_mutex_destroy(&c->mu);
	c->ready = 0;
}

int cj__pg_cache_get(struct pge_cache *c, int space, const void *k, size_t kl, cj_buf *out) {
	int rc = 0;
	pthread_mutex_lock(&c->mu);
	struct pge_centry *e = pge_cfind(c, pge_chash(space, k, kl), space, k, kl, NULL);
	if (e) {
		cj__buf_reset(out);
		cj__buf_add(out, e->data + e->kl, e->vl);
		rc = out->oom || e->cold ? 0 : e->absent ? 2 : 1;
		pge_cunlink(c, e);
		pge_cfront(c, e);
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

void cj__pg_log_to(cj_buf *b, int op, int space, const void *k, size_t kl, const void *v,
                   size_t vl) {
	if (op != PGE_LOG_VALUE) vl = 0;
	if (kl > UINT32_MAX || vl > UINT32_MAX) op = PGE_LOG_ALL_UNKNOWN;
	struct pge_logrec r = {(uint8_t)op, (uint8_t)space, (uint32_t)kl, (uint32_t)vl};
	if (op == PGE_LOG_ALL_UNKNOWN) r.kl = r.vl = 0;
	cj__buf_add(b, &r, sizeof r);
	if (r.kl) cj__buf_add(b, k, r.kl);
	if (r.vl) cj__buf_add(b, v, r.vl);
}

void cj__pg_log(cj_etx *tx, int op, int space, const void *k, size_t kl, const void *v,
                size_t vl) {
	if (tx->write) cj__pg_log_to(&tx->log, op, space, k, kl, v, vl);
}

/* The log's record at *at, its key in *k (the value follows the key):
 * 1, *at moved past it; 0 at the end. */
static int pge_log_next(const cj_buf *log, size_t *at, struct pge_logrec *r,
                        const uint8_t **k) {
	if (*at + sizeof *r > log->len) return 0;
	memcpy(r, log->p + *at, sizeof *r);
	*k = log->p + *at + sizeof *r;
	*at += sizeof *r + r->kl + r->vl;
	return 1;
}

int cj__pg_log_names(const cj_buf *log, int space, const void *k, size_t kl) {
	if (log->oom) return 1;
	struct pge_logrec r;
	const uint8_t *rk;
	for (size_t at = 0; pge_log_next(log, &at, &r, &rk);) {
		if (r.op == PGE_LOG_ALL_UNKNOWN ||
		    (r.space == space && r.kl == kl && memcmp(rk, k, kl) == 0))
			return 1;
	}
	return 0;
}

/* Walks a log: forget 1 drops every key it names (the outcome of the
 * commit is unknown), 2 makes each cold, else each record is learnt. */
static void pge_apply(struct pge_cache *c, const cj_buf *log, int forget) {
	struct pge_logrec r;
	const uint8_t *k;
	for (size_t at = 0; pge_log_next(log, &at, &r, &k);) {
		if (r.op == PGE_LOG_ALL_UNKNOWN) pge_cclear(c);
		else if (forget == 2) pge_cset(c, r.space, k, r.kl, NULL, 0, 0, 1);
		else if (forget || r.op == PGE_LOG_UNKNOWN) pge_cdrop(c, r.space, k, r.kl, forget);
		else pge_cset(c, r.space, k, r.kl, k + r.kl, r.vl, r.op == PGE_LOG_ABSENT, 0);
	}
}

void cj__pg_cache_learn(cj_etx *tx, int committed) {
	struct pge_cache *c = &tx->db->cache;
	if (!tx->log.len && !tx->log.oom) return;
	pthread_mutex_lock(&c->mu);
	if (tx->log.oom) pge_cclear(c); /* what it wrote is not all known */
	else pge_apply(c, &tx->log, !committed);
	pthread_mutex_unlock(&c->mu);
	cj__buf_reset(&tx->log);
}

void cj__pg_cache_chill(struct pge_cache *c, const cj_buf *keys) {
	pthread_mutex_lock(&c->mu);
	if (keys->oom) pge_cclear(c);
	else pge_apply(c, keys, 2);
	pthread_mutex_unlock(&c->mu);
}
