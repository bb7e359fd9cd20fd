/* The PostgreSQL engine: open/close, transactions, data ops and the
 * engine table. The design is described in pg_int.h. */
#include <limits.h>

#include "engine/pg_int.h"

/* ---- open / close --------------------------------------------------------- */

static void pge_close(cj_edb *db) {
	if (!db) return;
	cj__pg_listener_stop(db);
	cj__pg_pool_flush(db);
	cj__pg_cache_free(&db->cache);
	cj_free(db->uri);
	cj_free(db->schema);
	cj_free(db->qschema);
	cj_free(db->chan);
	cj_free(db->sql_prepare);
	cj_free(db->sql_listen);
	pthread_mutex_destroy(&db->mu);
	pthread_mutex_destroy(&db->wmu);
	pthread_condattr_destroy(&db->wattr);
	cj_free(db);
}

static int pge_open(const char *url, const cj_options *o, cj_edb **out) {
	*out = NULL;
	cj_edb *db = cj__calloc(1, sizeof *db);
	if (!db) return cj__fail(CJ_NOMEM, "out of memory");
	if (pthread_mutex_init(&db->mu, NULL) != 0) {
		cj_free(db);
		return cj__fail(CJ_NOMEM, "cannot create a mutex");
	}
	atomic_init(&db->stop, 0);
	db->stopfd[0] = db->stopfd[1] = -1;
	db->linger_at = -1;
	int ok = pthread_mutex_init(&db->wmu, NULL) == 0;
	if (ok && !(ok = pthread_condattr_init(&db->wattr) == 0)) pthread_mutex_destroy(&db->wmu);
	if (ok && !(ok = pthread_condattr_setclock(&db->wattr, CLOCK_MONOTONIC) == 0)) {
		pthread_condattr_destroy(&db->wattr);
		pthread_mutex_destroy(&db->wmu);
	}
	if (!ok) {
		pthread_mutex_destroy(&db->mu);
		cj_free(db);
		return cj__fail(CJ_NOMEM, "cannot create the listener's mutex and condition "
		                "variable");
	}
	db->relaxed = o->sync == CJ_SYNC_RELAXED;

	struct pge_conn *c = NULL;
	int rc = cj__pg_cache_init(&db->cache);
	if (rc == CJ_OK) rc = cj__pg_parse_url(db, url, o);
	if (rc) goto out_close;
	db->qschema = cj__pg_printf("\"%s\"", db->schema);
	db->chan = cj__pg_printf("cj_%s", db->schema);
	db->key_hash = cj__fnv(CJ_FNV_SEED, db->schema, strlen(db->schema));
	if (!db->qschema || !db->chan) {
		rc = cj__fail(CJ_NOMEM, "out of memory");
		goto out_close;
	}
	if ((rc = cj__pg_build_sql(db))) goto out_close;

	/* defaults first: what the URI says overrides them */
	static const char *const defaults[][2] = {
		{"connect_timeout", "10"},
		{"keepalives", "1"},
		{"keepalives_idle", "30"},
		{"keepalives_interval", "10"},
		{"keepalives_count", "3"},
#ifdef LIBPQ_HAS_PIPELINING /* libpq 14 or later knows tcp_user_timeout */
		{"tcp_user_timeout", "60000"},
#endif
		{"fallback_application_name", "couchjobs"},
	};
	size_t nd = sizeof defaults / sizeof defaults[0];
	for (size_t i = 0; i < nd; i++) {
		db->kw[i] = defaults[i][0];
		db->val[i] = defaults[i][1];
	}
	db->kw[nd] = "dbname";
	db->val[nd] = db->uri;

	if ((rc = cj__pg_connect(db, &c))) goto out_close;
	if ((rc = cj__pg_init(db, c))) goto out_close;
	if ((rc = cj__pg_prepare(db, c))) goto out_close;
	cj__pg_give(db, c);
	*out = db;
	return CJ_OK;
out_close:
	cj__pg_close_conn(c);
	pge_close(db);
	return rc;
}

/* a space as a statement's text parameter (pg_int.h) */
const char *const cj__pg_space[CJ_SPACE_COUNT] = {"0", "1"};

/* ---- transactions ----------------------------------------------------------- */

static void pge_clear(cj_etx *tx) {
	PQclear(tx->res);
	tx->res = NULL;
}

/* 1 if the claimed row is key k of space. */
static int pge_is_claimed(const cj_etx *tx, int space, const void *k, size_t kl) {
	const PGresult *c = tx->claimed;
	return c && space == tx->claimed_space && (size_t)PQgetlength(c, 0, 0) == kl &&
	       memcmp(PQgetvalue(c, 0, 0), k, kl) == 0;
}

/* Forgets the claimed row if it is k of space (k NULL: whichever). */
static void pge_unclaim(cj_etx *tx, int space, const void *k, size_t kl) {
	if (k && !pge_is_claimed(tx, space, k, kl)) return;
	PQclear(tx->claimed);
	tx->claimed = NULL;
}

/* Keys as the server orders them (bytea): bytes, then the shorter first. */
static int pge_key_cmp(const void *a, size_t al, const void *b, size_t bl) {
	int c = al && bl ? memcmp(a, b, al < bl ? al : bl) : 0;
	return c ? c : (al > bl) - (al < bl);
}

/* The announced get of k (scan 0) or scan of [k, hi) (scan 1) of space,
 * or NULL. */
static struct pge_pf *pge_pf_find(cj_etx *tx, int scan, int space, const void *k, size_t kl,
                                  const void *hi, size_t hl) {
	for (int i = 0; i < PGE_PF_MAX; i++) {
		struct pge_pf *p = &tx->pf[i];
		if (p->on && p->scan == scan && p->space == space &&
		    pge_key_cmp(p->key.p, p->key.len, k, kl) == 0 &&
		    (!scan || pge_key_cmp(p->hi.p, p->hi.len, hi, hl) == 0))
			return p;
	}
	return NULL;
}

/* 1 while answers of p's statements are still to be read. */
static int pge_pf_queued(const cj_etx *tx, const struct pge_pf *p) {
	for (int i = 0; i < tx->nkeep; i++)
		if (tx->keep[i].dest == &p->lock || tx->keep[i].dest == &p->row) return 1;
	return 0;
}

/* Forgets p; answers still to come are dropped when they come (pge_end,
 * or when p is taken again). */
static void pge_pf_drop(cj_etx *tx, struct pge_pf *p) {
	p->on = 0;
	p->spec = 0;
	if (pge_pf_queued(tx, p)) return;
	PQclear(p->lock);
	PQclear(p->row);
	p->lock = p->row = NULL;
}

/* Forgets the announced reads that a write of k of space outdates (k
 * NULL: all of them). */
static void pge_unprefetch(cj_etx *tx, int space, const void *k, size_t kl) {
	for (int i = 0; i < PGE_PF_MAX; i++) {
		struct pge_pf *p = &tx->pf[i];
		if (k) {
			if (!p->on || p->space != space) continue;
			int from = pge_key_cmp(k, kl, p->key.p, p->key.len);
			if (p->scan ? from < 0 || pge_key_cmp(k, kl, p->hi.p, p->hi.len) >= 0 : from != 0)
				continue;
		}
		pge_pf_drop(tx, p);
	}
}

/* A free entry for a new announcement, or NULL when all are in use. */
static struct pge_pf *pge_pf_slot(cj_etx *tx) {
	for (int i = 0; i < PGE_PF_MAX; i++) {
		struct pge_pf *p = &tx->pf[i];
		if (p->on || pge_pf_queued(tx, p)) continue;
		pge_pf_drop(tx, p); /* answers of one never used */
		return p;
	}
	return NULL;
}

static void pge_end(cj_etx *tx) {
	pge_clear(tx);
	pge_unclaim(tx, 0, NULL, 0);
	for (int i = 0; i < PGE_PF_MAX; i++) {
		PQclear(tx->pf[i].lock);
		PQclear(tx->pf[i].row);
		cj__buf_free(&tx->pf[i].key);
		cj__buf_free(&tx->pf[i].hi);
		cj__buf_free(&tx->pf[i].val);
	}
	cj__buf_free(&tx->log);
	cj__buf_free(&tx->spec_keys);
	cj__buf_free(&tx->specv);
	cj__pg_free_held(tx);
	cj__pg_give(tx->db, tx->c);
	cj_free(tx);
}

/* Takes a connection; BEGIN goes with the first statement (pg_pipe.c). */
static int pge_begin(cj_edb *db, int write, cj_etx **out) {
	*out = NULL;
	cj_etx *tx = cj__calloc(1, sizeof *tx);
	if (!tx) return cj__fail(CJ_NOMEM, "out of memory");
	tx->db = db;
	tx->write = write;
	int rc = cj__pg_take(db, &tx->c, &tx->fresh);
	if (rc) {
		cj_free(tx);
		return rc;
	}
	*out = tx;
	return CJ_OK;
}

static void pge_abort(cj_etx *tx) {
	if (!tx) return;
	pge_clear(tx);
	cj__pg_rollback(tx); /* what the queued writes say no longer matters */
	pge_end(tx);
}

/* Appends word w to a payload "w,w,...". */
static void pge_payload_word(void *arg, unsigned w) {
	cj_buf *b = arg;
	char num[16];
	int n = snprintf(num, sizeof num, "%s%u", b->len ? "," : "", w);
	cj__buf_add(b, num, (size_t)n);
}

static int pge_commit(cj_etx *tx) {
	cj_edb *db = tx->db;
	pge_clear(tx);
	/* nobody asks for the number from now on: none is taken */
	if (tx->vwant == PGE_V_WANT) tx->vwant = PGE_V_NONE;
	if (tx->failed || tx->mismatch) {
		int rc = tx->failed ? tx->failed : cj__pg_spec_settle(tx);
		pge_abort(tx);
		return rc;
	}
	int rc = CJ_OK;
	if (!tx->write || !tx->dirty) {
		/* what it read stands once the answers of the cache are checked */
		if ((rc = cj__pg_spec_settle(tx)) == CJ_OK) cj__pg_cache_learn(tx, 1);
		pge_abort(tx);
		return rc;
	}
	/* a pooled connection that is found lost in the round trip that
	 * carries COMMIT leaves the outcome unknown: it must not be the first
	 * (unless it answered a moment ago, for a speculating transaction:
	 * pg_spec.c) */
	if (!tx->answered && !tx->fresh && !cj__pg_spec_commit_first(tx) &&
	    (rc = cj__pg_flush(tx))) {
		pge_abort(tx);
		return rc;
	}
	tx->committing = 1;
	/* the queued writes, COMMIT and the notification: one round trip. The
	 * notification follows the COMMIT as a transaction of its own: a
	 * NOTIFY takes a lock that every notifying commit of the database
	 * holds until its end, the flush of its WAL included, so that commits
	 * which notify would take turns at the disk; alone, it writes nothing
	 * that needs a flush and holds that lock for a moment. The server
	 * skips it when the COMMIT fails (the rest of the pipeline's segment
	 * is skipped after an error) */
	PGresult *r = NULL, *n = NULL;
	int notify = !cj__wordset_empty(&tx->notify);
	cj_buf words = CJ_BUF_INIT;
	if (notify) {
		cj__wordset_each(&tx->notify, pge_payload_word, &words);
		cj__buf_add(&words, "", 1);
		if (words.oom) {
			cj__buf_free(&words);
			pge_abort(tx);
			return cj__fail(CJ_NOMEM, "out of memory");
		}
		/* the locks of its channel words (pg_listen.c): the notification
		 * is sent only if some listener holds one. Every commit that marks
		 * job words marks "activity" too */
		char cls[16];
		snprintf(cls, sizeof cls, "%d", PGE_WAKE_LOCK_CLASS);
		cj_buf keys = CJ_BUF_INIT;
		cj__buf_add(&keys, "{", 1);
		for (unsigned i = 0; i < tx->notify.n; i++) {
			char num[16];
			int len = snprintf(num, sizeof num, "%s%" PRId32, i ? "," : "",
			                   cj__pg_wake_key(db, tx->notify.list[i]));
			cj__buf_add(&keys, num, (size_t)len);
		}
		cj__buf_add(&keys, "}", 2);
		if (keys.oom) {
			cj__buf_free(&keys);
			cj__buf_free(&words);
			pge_abort(tx);
			return cj__fail(CJ_NOMEM, "out of memory");
		}
		const char *vals[4] = {db->chan, (const char *)words.p, cls, (const char *)keys.p};
		if (!(rc = cj__pg_queue_into(tx, "cj_commit", NULL, 0, NULL, NULL, NULL, &r)))
			rc = cj__pg_run(tx, "cj_notify_if", NULL, 4, vals, NULL, NULL, 0, &n);
		cj__buf_free(&keys);
		/* the commit stands whatever the notification's answer: the server
		 * refuses one only when its queue of undelivered notifications is
		 * full (a listener that stopped reading); waiters in this process
		 * are woken below all the same */
		if (n && PQresultStatus(n) == PGRES_TUPLES_OK && PQntuples(n) > 0)
			atomic_fetch_add_explicit(&db->notes_sent, 1, memory_order_relaxed);
		PQclear(n);
	} else {
		rc = cj__pg_run(tx, "cj_commit", NULL, 0, NULL, NULL, NULL, 0, &r);
	}
	cj__buf_free(&words);
	if (rc) {
		/* a queued write or the COMMIT failed: the transaction was rolled back */
	} else if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
		rc = cj__pg_fail(db, tx->c, r, "commit");
	} else if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		/* COMMIT of a failed transaction says ROLLBACK */
		rc = cj__fail(CJ_STORE, "postgresql commit: the transaction had failed (a "
		              "statement in it failed) and was rolled back");
	}
	PQclear(r);
	if (rc == CJ_OK && notify) cj__pg_bump_words(db, &tx->notify);
	/* what a failed commit wrote may or may not be there (one whose
	 * expectation failed wrote nothing: pg_spec.c) */
	if (!tx->mismatch) cj__pg_cache_learn(tx, rc == CJ_OK);
	pge_abort(tx); /* rolls back what a failed commit left open; frees tx */
	return rc;
}

/* The number of a write transaction's commit: nextval of the sequence,
 * which no transaction holds, taken with its first statement that needs an
 * answer (pg_pipe.c): numbers are unique and increase in the order they
 * were taken. That of a read transaction: the sequence's last value, read
 * at the first call (>= every number handed out before the transaction
 * began). A failure fails the commit too. */
static int pge_version(cj_etx *tx, uint64_t *out) {
	*out = tx->version;
	if (tx->failed || tx->version) return tx->failed;
	pge_clear(tx);
	PGresult *r = NULL;
	int rc;
	if (tx->write) {
		/* asked already (its answer read, or to come with this flush), or
		 * now */
		if ((rc = cj__pg_number(tx)))
			tx->failed = rc;
		else if (!tx->version && !tx->failed)
			tx->failed = cj__fail(CJ_STORE, "postgresql commit number: no answer");
		*out = tx->version;
		return tx->failed;
	}
	rc = cj__pg_run(tx, "cj_last_version", NULL, 0, NULL, NULL, NULL, 0, &r);
	if (rc)
		tx->failed = rc;
	else if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		tx->version = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	else if (r && PQresultStatus(r) == PGRES_TUPLES_OK)
		tx->failed = cj__fail(CJ_STORE, "schema %s: corrupt store: no commit sequence",
		                      tx->db->schema);
	else
		tx->failed = cj__pg_fail(tx->db, tx->c, r, "commit number");
	PQclear(r);
	*out = tx->version;
	return tx->failed;
}

static void *pge_native(cj_etx *tx) {
	pge_unclaim(tx, 0, NULL, 0); /* the caller may write anything */
	pge_unprefetch(tx, 0, NULL, 0);
	tx->dirty = 1; /* the caller's statements are committed too */
	cj__pg_log(tx, PGE_LOG_ALL_UNKNOWN, 0, NULL, 0, NULL, 0); /* they may write any key */
	tx->native_out = 1;
	/* the caller runs statements of its own: no answer may be pending */
	int rc = cj__pg_flush(tx);
	if (rc && !tx->failed) tx->failed = rc;
	return tx->c->pg;
}

/* ---- data -------------------------------------------------------------------- */

/* A hash of a key, for the advisory lock on its absence (as a parameter). */
void cj__pg_key_hash(cj_etx *tx, int space, const void *k, size_t kl, char num[16]) {
	uint32_t h = tx->db->key_hash;
	h = cj__fnv((h ^ (uint32_t)space) * 16777619u, k, kl);
	snprintf(num, 16, "%" PRId32, (int32_t)h);
}

/* Queues the two statements of a locking read of k (pge_get, below),
 * their answers to go into *locked and *row. */
static int pge_queue_get(cj_etx *tx, int space, const void *k, size_t kl,
                         PGresult **locked, PGresult **row) {
	const char *vals[3] = {cj__pg_space[space], k, NULL};
	int lens[3] = {0, (int)kl, 0}, fmts[3] = {0, 1, 0};
	char num[16];
	cj__pg_key_hash(tx, space, k, kl, num);
	vals[2] = num;
	int rc = cj__pg_queue_into(tx, "cj_lock_absent", NULL, 3, vals, lens, fmts, locked);
	return rc ? rc : cj__pg_queue_into(tx, "cj_get_w", NULL, 2, vals, lens, fmts, row);
}

/* The answer of a read from the cache: the one p announced, or (p NULL)
 * the one in tx->specv, known as cj__pg_spec_read says (2: absent). */
static int pge_spec_answer(cj_etx *tx, struct pge_pf *p, int known, const uint8_t **v,
                           size_t *vl) {
	if (p) {
		cj_buf t = tx->specv; /* p's value becomes the one returned */
		tx->specv = p->val;
		p->val = t;
		known = p->absent ? 2 : 1;
		p->on = p->spec = 0;
	}
	*v = tx->specv.p ? tx->specv.p : (const uint8_t *)"";
	*vl = tx->specv.len;
	return known == 2 ? CJ_NOT_FOUND : CJ_OK;
}

/* In a write transaction, a read that finds a key absent holds its absence
 * (an advisory lock on a hash of the key, until the transaction ends) and
 * returns what is there once the lock is held, so that two transactions
 * that find one key absent take turns. One round trip, two statements:
 * cj_lock_absent takes the lock if the key is not there (its own
 * snapshot), then cj_get_w reads the row for update (a new snapshot, after
 * the lock). When the key was there for the first and is gone for the
 * second (removed meanwhile), the lock is taken and the row read again. */
static int pge_get(cj_etx *tx, int space, const void *k, size_t kl,
                   const uint8_t **v, size_t *vl) {
	pge_clear(tx);
	const char *vals[3] = {cj__pg_space[space], k, NULL};
	int lens[3] = {0, (int)kl, 0}, fmts[3] = {0, 1, 0};
	char num[16];
	PGresult *r = NULL, *locked = NULL;
	int rc;
	if (pge_is_claimed(tx, space, k, kl)) {
		/* held since the claim, and not written since: as it was */
		*v = (const uint8_t *)PQgetvalue(tx->claimed, 0, 1);
		*vl = (size_t)PQgetlength(tx->claimed, 0, 1);
		return CJ_OK;
	}
	if (!tx->write) {
		rc = cj__pg_run(tx, "cj_get", NULL, 2, vals, lens, fmts, 1, &r);
	} else {
		/* answered from the cache, with an expectation (pg_spec.c) */
		struct pge_pf *pre = pge_pf_find(tx, 0, space, k, kl, NULL, 0);
		if (pre && pre->spec) return pge_spec_answer(tx, pre, 0, v, vl);
		if (!pre && (rc = cj__pg_spec_read(tx, space, k, kl, 1, &tx->specv)) != 0)
			return rc < 0 ? rc : pge_spec_answer(tx, NULL, rc, v, vl);
		/* sent now, or by prefetch(); answered with this flush (none
		 * when the prefetch's answers are here already: the writes
		 * queued since wait for the next round trip) */
		rc = pre ? CJ_OK : pge_queue_get(tx, space, k, kl, &locked, &r);
		if (!pre || pge_pf_queued(tx, pre)) {
			int flushed = cj__pg_flush(tx); /* also empties keep[] on a failure */
			if (rc == CJ_OK) rc = flushed;
		}
		if (pre) {
			locked = pre->lock;
			r = pre->row;
			pre->lock = pre->row = NULL;
			pre->on = 0;
		}
		if (rc) {
			PQclear(locked);
			PQclear(r);
			return rc;
		}
		/* a row (a value in cj_lock_absent_n's first column) if it was taken */
		int held = locked && PQntuples(locked) == 1 && !PQgetisnull(locked, 0, 0);
		PQclear(locked);
		if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 0 && !held) {
			PQclear(r);
			cj__pg_key_hash(tx, space, k, kl, num);
			vals[2] = num;
			if ((rc = cj__pg_queue(tx, "cj_lock_key", NULL, 1, vals + 2, NULL, NULL)) ||
			    (rc = cj__pg_run(tx, "cj_get_w", NULL, 2, vals, lens, fmts, 1, &r)))
				return rc;
		}
	}
	if (rc) return rc;
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		rc = cj__pg_fail(tx->db, tx->c, r, "get");
		PQclear(r);
		return rc;
	}
	if (PQntuples(r) == 0) {
		PQclear(r);
		cj__pg_log(tx, PGE_LOG_ABSENT, space, k, kl, NULL, 0);
		return CJ_NOT_FOUND;
	}
	tx->res = r;
	*v = (const uint8_t *)PQgetvalue(r, 0, 0);
	*vl = (size_t)PQgetlength(r, 0, 0);
	cj__pg_log(tx, PGE_LOG_VALUE, space, k, kl, *v, *vl); /* held until the end */
	return CJ_OK;
}

static uint64_t pge_round_trips(cj_edb *db) {
	return atomic_load_explicit(&db->round_trips, memory_order_relaxed);
}

static uint64_t pge_statements(cj_edb *db) {
	return atomic_load_explicit(&db->statements, memory_order_relaxed);
}

/* Takes an entry for an announced read of k (scan: of [k, hi)). NULL
 * with CJ_OK when there is nothing to do: the read is announced already,
 * or every entry is in use (the read then goes alone). */
static int pge_pf_take(cj_etx *tx, int scan, int space, const void *k, size_t kl,
                       const void *hi, size_t hl, struct pge_pf **out) {
	*out = NULL;
	struct pge_pf *p;
	if (!tx->write || pge_pf_find(tx, scan, space, k, kl, hi, hl) || !(p = pge_pf_slot(tx)))
		return CJ_OK;
	cj__buf_reset(&p->key);
	cj__buf_add(&p->key, k, kl);
	cj__buf_reset(&p->hi);
	if (scan) cj__buf_add(&p->hi, hi, hl);
	if (p->key.oom || p->hi.oom) return cj__fail(CJ_NOMEM, "out of memory");
	p->scan = scan;
	p->space = space;
	*out = p;
	return CJ_OK;
}

/* The two statements of a get() in a write transaction (above), queued:
 * their answers are read with the next statement that needs one. */
static int pge_prefetch(cj_etx *tx, int space, const void *k, size_t kl) {
	struct pge_pf *p;
	int rc = pge_pf_take(tx, 0, space, k, kl, NULL, 0, &p);
	if (rc || !p) return rc;
	if ((rc = cj__pg_spec_read(tx, space, k, kl, 1, &p->val)) < 0) return rc;
	p->spec = rc != 0; /* the cache answers, with an expectation (pg_spec.c) */
	p->absent = rc == 2;
	if (!p->spec && (rc = pge_queue_get(tx, space, k, kl, &p->lock, &p->row))) return rc;
	p->on = 1;
	return CJ_OK;
}

/* The first batch of a scan (pge_scan, below: one row), queued the same
 * way. */
static int pge_prefetch_scan(cj_etx *tx, int space, const void *lo, size_t ll,
                             const void *hi, size_t hl) {
	struct pge_pf *p;
	int rc = pge_pf_take(tx, 1, space, lo ? lo : "", ll, hi ? hi : "", hl, &p);
	if (rc || !p) return rc;
	/* a scan of one key (a type's setting) the cache may answer */
	if (cj__pg_one_key(lo, ll, hi, hl) &&
	    (rc = cj__pg_spec_read(tx, space, lo, ll, 0, &p->val)) != 0) {
		if (rc < 0) return rc;
		p->spec = p->on = 1;
		p->absent = rc == 2;
		return CJ_OK;
	}
	const char *vals[4] = {cj__pg_space[space], lo ? lo : "", hi ? hi : "", "1"};
	int lens[4] = {0, (int)ll, (int)hl, 0}, fmts[4] = {0, 1, 1, 0};
	if ((rc = cj__pg_queue_into(tx, "cj_scan", NULL, 4, vals, lens, fmts, &p->row)))
		return rc;
	p->on = 1;
	return CJ_OK;
}

static int pge_put(cj_etx *tx, int space, const void *k, size_t kl, const void *v,
                   size_t vl) {
	pge_clear(tx);
	if (vl > INT32_MAX) return cj__fail(CJ_TOO_LARGE, "value of %zu bytes", vl);
	pge_unclaim(tx, space, k, kl);
	pge_unprefetch(tx, space, k, kl);
	/* answered with the next statement that needs an answer (pg_pipe.c) */
	int rc = cj__pg_put(tx, space, k, kl, v, vl);
	if (rc == CJ_OK) tx->dirty = 1;
	cj__pg_log(tx, PGE_LOG_VALUE, space, k, kl, v, vl);
	return rc;
}

/* Held (pg_held.c): one upsert of every counter. */
static int pge_add(cj_etx *tx, int space, const cj_eadd *a, size_t n) {
	pge_clear(tx);
	for (size_t i = 0; i < n; i++) {
		pge_unclaim(tx, space, a[i].k, a[i].kl);
		pge_unprefetch(tx, space, a[i].k, a[i].kl);
		cj__pg_log(tx, PGE_LOG_UNKNOWN, space, a[i].k, a[i].kl, NULL, 0);
	}
	int rc = cj__pg_add(tx, space, a, n);
	if (rc == CJ_OK) tx->dirty = 1;
	return rc;
}

static int pge_del(cj_etx *tx, int space, const void *k, size_t kl) {
	pge_clear(tx);
	pge_unclaim(tx, space, k, kl);
	pge_unprefetch(tx, space, k, kl);
	cj__pg_log(tx, PGE_LOG_UNKNOWN, space, k, kl, NULL, 0);
	const char *vals[2] = {cj__pg_space[space], k};
	int lens[2] = {0, (int)kl}, fmts[2] = {0, 1};
	PGresult *r = NULL;
	int rc = cj__pg_run(tx, "cj_del", NULL, 2, vals, lens, fmts, 1, &r);
	if (rc) {
		/* a queued write failed */
	} else if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
		rc = cj__pg_fail(tx->db, tx->c, r, "del");
	} else {
		tx->dirty = 1;
		if (strcmp(PQcmdTuples(r), "0") == 0) rc = CJ_NOT_FOUND;
	}
	PQclear(r);
	return rc;
}

/* Held (pg_held.c): nobody waits for its row count. */
static int pge_del_blind(cj_etx *tx, int space, const void *k, size_t kl) {
	pge_clear(tx);
	pge_unclaim(tx, space, k, kl);
	pge_unprefetch(tx, space, k, kl);
	cj__pg_log(tx, PGE_LOG_UNKNOWN, space, k, kl, NULL, 0);
	int rc = cj__pg_del_blind(tx, space, k, kl);
	if (rc == CJ_OK) tx->dirty = 1;
	return rc;
}

/* Runs a claim (name, n parameters) whose answer is a row of the key held
 * and its value (columns 0 and 1; NULL when none is held) with the key
 * taken in column key_col: 1 with that key in key_out and the key held in
 * held_out (when not NULL; left empty when none), 0 if none was taken, or
 * a code. The row held is kept: a get of it that follows costs nothing. */
static int pge_claim_run(cj_etx *tx, int space, const char *name, int n,
                         const char *const *vals, const int *lens, const int *fmts,
                         int key_col, cj_buf *key_out, cj_buf *held_out) {
	pge_clear(tx);
	cj__buf_reset(key_out);
	if (held_out) cj__buf_reset(held_out);
	PGresult *r = NULL;
	int rc = cj__pg_run(tx, name, NULL, n, vals, lens, fmts, 1, &r);
	if (rc) {
		/* a queued write failed */
	} else if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		rc = cj__pg_fail(tx->db, tx->c, r, "claim");
	} else if (PQntuples(r) == 1 && !PQgetisnull(r, 0, key_col)) {
		/* (a form that also took the commit number has a row with no key
		 * when it took none: pg_pipe.c) */
		cj__buf_add(key_out, PQgetvalue(r, 0, key_col), (size_t)PQgetlength(r, 0, key_col));
		rc = 1;
		if (!PQgetisnull(r, 0, 0)) {
			cj__pg_log(tx, PGE_LOG_VALUE, space, PQgetvalue(r, 0, 0),
			           (size_t)PQgetlength(r, 0, 0), PQgetvalue(r, 0, 1),
			           (size_t)PQgetlength(r, 0, 1));
			if (held_out)
				cj__buf_add(held_out, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
			pge_unclaim(tx, 0, NULL, 0);
			tx->claimed = r;
			tx->claimed_space = space;
			r = NULL;
		}
	}
	PQclear(r);
	return rc;
}

static int pge_claim_first(cj_etx *tx, int space, const void *lo, size_t ll,
                           const void *hi, size_t hl, cj_buf *key_out) {
	const char *vals[3] = {cj__pg_space[space], lo ? lo : "", hi ? hi : ""};
	int lens[3] = {0, (int)ll, (int)hl}, fmts[3] = {0, 1, 1};
	return pge_claim_run(tx, space, "cj_claim", 3, vals, lens, fmts, 0, key_out, NULL);
}

/* One statement (cj_claim_pair): the first key of [lo, hi) that no other
 * transaction holds, and the row of the key d derives from it unless
 * another holds it (columns: the derived key and its value, then the key
 * claimed). */
static int pge_claim_pair(cj_etx *tx, int space, const void *lo, size_t ll, const void *hi,
                          size_t hl, const cj_ederive *d, cj_buf *key_out,
                          cj_buf *second_out) {
	if (d->at > INT_MAX - 2 || d->pl > INT_MAX)
		return cj__fail(CJ_INVALID, "claim_pair: a derivation past any key");
	char at[24], base[8];
	snprintf(at, sizeof at, "%zu", d->at);
	snprintf(base, sizeof base, "%u", (unsigned)d->base);
	const char *vals[6] = {cj__pg_space[space], lo ? lo : "", hi ? hi : "",
	                       d->p ? (const char *)d->p : "", at, base};
	int lens[6] = {0, (int)ll, (int)hl, (int)d->pl, 0, 0}, fmts[6] = {0, 1, 1, 1, 0, 0};
	return pge_claim_run(tx, space, "cj_claim_pair", 6, vals, lens, fmts, 2, key_out,
	                     second_out);
}

/* Keyset pagination: batches of growing size (the caller often wants only
 * the first key), each its own result, so that get() calls of the
 * callback do not free the rows being walked. */
static int pge_scan(cj_etx *tx, int space, const void *lo, size_t ll, const void *hi,
                    size_t hl, cj_scan_fn fn, void *arg) {
	pge_clear(tx);
	long limit = 1;
	cj_buf last = CJ_BUF_INIT;
	int rc = CJ_OK, after = 0;
	/* the first batch, announced by prefetch_scan() */
	struct pge_pf *pre = pge_pf_find(tx, 1, space, lo ? lo : "", ll, hi ? hi : "", hl);
	/* a scan of one key answered from the cache (pg_spec.c) */
	int one = cj__pg_one_key(lo, ll, hi, hl), known = 0;
	if (pre && pre->spec) {
		const uint8_t *v;
		size_t vl;
		known = pge_spec_answer(tx, pre, 0, &v, &vl) == CJ_OK ? 1 : 2;
	} else if (!pre && one && (known = cj__pg_spec_read(tx, space, lo, ll, 0, &tx->specv)) < 0) {
		return known;
	}
	if (known)
		return known == 2 ? 0 : fn(lo, ll, tx->specv.p ? tx->specv.p : (const uint8_t *)"",
		                           tx->specv.len, arg);
	for (;;) {
		char lim[24];
		snprintf(lim, sizeof lim, "%ld", limit);
		const char *from = after ? (const char *)last.p : lo;
		const char *vals[4] = {cj__pg_space[space], from ? from : "", hi ? hi : "", lim};
		int lens[4] = {0, after ? (int)last.len : (int)ll, (int)hl, 0};
		int fmts[4] = {0, 1, 1, 0};
		if (after && last.oom) {
			rc = cj__fail(CJ_NOMEM, "out of memory");
			break;
		}
		PGresult *r = NULL;
		if (pre) {
			/* its answer, unless it is here */
			rc = pge_pf_queued(tx, pre) ? cj__pg_flush(tx) : CJ_OK;
			r = pre->row;
			pre->row = NULL;
			pre->on = 0;
			pre = NULL;
			if (rc) {
				PQclear(r);
				break;
			}
		} else if ((rc = cj__pg_run(tx, after ? "cj_scan_after" : "cj_scan", NULL, 4, vals,
		                            lens, fmts, 1, &r))) {
			break;
		}
		if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
			rc = cj__pg_fail(tx->db, tx->c, r, "scan");
			PQclear(r);
			break;
		}
		int n = PQntuples(r);
		if (n == 1 && PQgetisnull(r, 0, 0)) n = 0; /* cj_scan_n found none */
		if (one && !after) /* what the cache learns of the key at the commit */
			cj__pg_log(tx, n ? PGE_LOG_VALUE : PGE_LOG_ABSENT, space, lo, ll,
			           n ? PQgetvalue(r, 0, 1) : NULL, n ? (size_t)PQgetlength(r, 0, 1) : 0);
		size_t bytes = 0;
		for (int i = 0; i < n && rc == CJ_OK; i++) {
			const uint8_t *k = (const uint8_t *)PQgetvalue(r, i, 0);
			const uint8_t *v = (const uint8_t *)PQgetvalue(r, i, 1);
			size_t kl = (size_t)PQgetlength(r, i, 0), vl = (size_t)PQgetlength(r, i, 1);
			bytes += kl + vl;
			if (i == n - 1) {
				cj__buf_reset(&last);
				cj__buf_add(&last, k, kl);
			}
			rc = fn(k, kl, v, vl, arg);
		}
		PQclear(r);
		if (rc || n < limit) break;
		after = 1;
		if (bytes > PGE_SCAN_BATCH_BYTES) limit = limit > 1 ? limit / 2 : 1;
		else if (limit < PGE_SCAN_MAX_ROWS) limit *= 16;
		if (limit > PGE_SCAN_MAX_ROWS) limit = PGE_SCAN_MAX_ROWS;
	}
	cj__buf_free(&last);
	return rc;
}

/* ---- wakeups ------------------------------------------------------------------ */

static int pge_notify(cj_etx *tx, const char *chan) {
	cj__wordset_add(&tx->notify, cj__chan_word(chan));
	tx->dirty = 1;
	return CJ_OK;
}

static int pge_notify_job(cj_etx *tx, unsigned job) {
	cj__wordset_add_job(&tx->notify, job);
	tx->dirty = 1;
	return CJ_OK;
}

static uint64_t pge_notes_sent(cj_edb *db) {
	return atomic_load_explicit(&db->notes_sent, memory_order_relaxed);
}

static uint64_t pge_notes_received(cj_edb *db) {
	return atomic_load_explicit(&db->notes_received, memory_order_relaxed);
}

static const char *const pge_schemes[] = {"postgresql://", "postgres://", NULL};

const struct cj_engine cj__engine_pg = {
	.name = "postgresql",
	.schemes = pge_schemes,
	.version = CJ_ENGINE_VERSION,
	.supports = CJ_ENGINE_NO_WATCH_KEYS | CJ_ENGINE_CLAIM_AT_ONCE,
	.open = pge_open,
	.close = pge_close,
	.begin = pge_begin,
	.commit = pge_commit,
	.abort = pge_abort,
	.commit_version = pge_version,
	.native = pge_native,
	.get = pge_get,
	.put = pge_put,
	.del = pge_del,
	.scan = pge_scan,
	.claim_first = pge_claim_first,
	.del_blind = pge_del_blind,
	.notify = pge_notify,
	.notify_job = pge_notify_job,
	.word = cj__pg_word,
	.bump = cj__pg_bump,
	.watch = cj__pg_watch,
	.wait = cj__pg_wait,
	.wake = cj__pg_wake,
	.wait_any = cj__pg_wait_any,
	.prefetch = pge_prefetch,
	.round_trips = pge_round_trips,
	.prefetch_scan = pge_prefetch_scan,
	.add = pge_add,
	.claim_pair = pge_claim_pair,
	.statements = pge_statements,
	.notes_sent = pge_notes_sent,
	.notes_received = pge_notes_received,
	.speculate = cj__pg_spec_begin,
	.settle = cj__pg_spec_settle,
};
