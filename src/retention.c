/*
 * Retention of finished and dead jobs.
 *
 * Every finished or dead job has an entry ("finished", type, dead,
 * finished_ms, id) (cj_int.h), written by the transaction that ends it and
 * deleted by the one that moves it on or removes it. So the oldest of a
 * type are the first keys under its prefix, and "beyond the newest N" is
 * the first count - N of them: pruning reads only what it removes. The
 * count is that of the type's finished (or dead) jobs in the counters of
 * counts.c, which writers of one type add to without waiting for each
 * other: nothing else is written per finish, so finishers of a type do not
 * take turns at a row of their own.
 *
 * The monitor's duty (cj__retention_step) runs a pass over the types that
 * have a retention: when the oldest kept job of a type expires (the pass
 * notes when), and when a finish of a type with a limit on its kind wakes
 * it on CJ_CHAN_RETENTION (a finish cannot know the count exactly while
 * others of its type commit beside it, nor whether the monitors have a
 * deadline for the type: it wakes them, and the pass decides). Passes are
 * at least CJ_RETENTION_GAP_MS apart: under a stream of finishes a pass
 * removes what gathered since the last one.
 */
#include <string.h>

#include "cj_int.h"

/* ---- the index --------------------------------------------------------------- */

static int retention_value(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                           void *arg) {
	(void)k, (void)kl;
	int rc = cj__retention_decode(v, vl, arg);
	return rc ? rc : 1;
}

/* The type's retention: 1, 0 if none, or a code. Read through a scan of
 * the one key, which holds nothing (every finish of the type reads it). */
static int retention_tx(cj_tx *tx, const char *type, cj_retention *r) {
	cj_buf k = CJ_BUF_INIT;
	cj__key_retention(&k, type);
	int rc = cj__scan_key(tx, &k, retention_value, r);
	cj__buf_free(&k);
	return rc;
}

int cj__finished_prefetch(cj_tx *tx, const char *type) {
	cj_buf k = CJ_BUF_INIT;
	cj__key_retention(&k, type);
	int rc = cj__prefetch_scan_key(tx, &k);
	cj__buf_free(&k);
	return rc;
}

int cj__finished_put(cj_tx *tx, const char *type, const char *id, const cj_jv *jv) {
	cj_buf empty = CJ_BUF_INIT;
	cj_retention r;
	cj__key_finished(&tx->kbuf, type, jv->dead, jv->finished_ms, id);
	int rc = cj__put(tx, &tx->kbuf, &empty);
	if (rc || (rc = retention_tx(tx, type, &r)) <= 0) return rc;
	int64_t ms = jv->dead ? r.dead_keep_ms : r.keep_ms;
	int64_t max = jv->dead ? r.dead_keep_max : r.keep_max;
	/* the pass decides whether anything is due (see above) */
	if (ms != CJ_KEEP_ALL || max != CJ_KEEP_ALL) return cj__notify(tx, CJ_CHAN_RETENTION);
	return CJ_OK;
}

int cj__finished_del(cj_tx *tx, const char *type, const char *id, const cj_jv *jv) {
	if (jv->has_lock || jv->finished_ms == 0) return CJ_OK;
	cj__key_finished(&tx->kbuf, type, jv->dead, jv->finished_ms, id);
	/* not there: the store's invariant is broken, and cj_verify says how */
	return cj__del_blind(tx, &tx->kbuf);
}

/* ---- the limits ---------------------------------------------------------------- */

struct type_arg {
	const char *type;
	const cj_retention *set;
	cj_retention got;
};

static int set_fn(cj_tx *tx, void *arg) {
	struct type_arg *a = arg;
	cj_buf k = CJ_BUF_INIT, v = CJ_BUF_INIT;
	cj__key_retention(&k, a->type);
	cj__retention_encode(&v, a->set);
	int rc = cj__put(tx, &k, &v);
	cj__buf_free(&k);
	cj__buf_free(&v);
	return rc ? rc : cj__notify(tx, CJ_CHAN_RETENTION);
}

static int check_args(cj_db *db, const char *type, const void *p) {
	if (!db || !p) return cj__fail(CJ_INVALID, "NULL argument");
	return cj__check_type(type);
}

int cj_set_type_retention(cj_db *db, const char *type, const cj_retention *retention) {
	int rc;
	if ((rc = check_args(db, type, retention)) || (rc = cj__retention_check(retention)))
		return rc;
	struct type_arg a = {type, retention, CJ_RETENTION_INIT};
	return cj__run(db, NULL, 1, set_fn, &a);
}

static int get_fn(cj_tx *tx, void *arg) {
	struct type_arg *a = arg;
	int rc = retention_tx(tx, a->type, &a->got);
	if (rc == 0) return cj__fail(CJ_NOT_FOUND, "type \"%.60s\" has no retention", a->type);
	return rc < 0 ? rc : CJ_OK;
}

int cj_get_type_retention(cj_db *db, const char *type, cj_retention *retention) {
	int rc = check_args(db, type, retention);
	if (rc) return rc;
	struct type_arg a = {type, NULL, CJ_RETENTION_INIT};
	if ((rc = cj__run(db, NULL, 0, get_fn, &a)) == CJ_OK) *retention = a.got;
	return rc;
}

static int clear_fn(cj_tx *tx, void *arg) {
	struct type_arg *a = arg;
	cj_buf k = CJ_BUF_INIT;
	cj__key_retention(&k, a->type);
	int rc = cj__del(tx, &k);
	cj__buf_free(&k);
	if (rc == CJ_NOT_FOUND)
		return cj__fail(CJ_NOT_FOUND, "type \"%.60s\" has no retention", a->type);
	return rc;
}

int cj_clear_type_retention(cj_db *db, const char *type) {
	int rc = check_args(db, type, "");
	if (rc) return rc;
	struct type_arg a = {type, NULL, CJ_RETENTION_INIT};
	return cj__run(db, NULL, 1, clear_fn, &a);
}

/* ---- pruning ------------------------------------------------------------------- */

struct prune_arg {
	const char *type;
	int dead;
	int64_t cutoff;  /* remove what finished at or before; -1: none by age */
	int64_t keep;    /* keep at most; CJ_KEEP_ALL: no limit */
	uint64_t count;  /* removed by this batch */
	int more;        /* the batch was full: go on */
	int64_t oldest;  /* finish time of the oldest kept, -1 none (when !more) */
};

/* The scan of prune_fn by age alone: collects entries into the batch up
 * to the first that the age limit keeps (it is the oldest kept, and every
 * later one is kept too). */
struct age_scan {
	cj_batch *c;
	int64_t cutoff;
};

static int age_add(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *arg) {
	struct age_scan *s = arg;
	int64_t ms;
	char *id;
	int rc = cj__batch_add(k, kl, v, vl, s->c);
	if (rc || (rc = cj__key_finished_parse(k, kl, &ms, &id))) return rc;
	cj_free(id);
	return ms > s->cutoff;
}

/* One transaction: removes up to CJ_PRUNE_BATCH of the oldest entries of
 * (type, dead) that the limits reject. The scan held nothing: each job's
 * value, read after it, decides. The count is read after the scan, and
 * neither holds anything, so that finishers of the type go on meanwhile:
 * what the count has and the scan has not finished later and is newer.
 * So a pass never removes a job the limit keeps; what finished after its
 * scan is left to the next pass, which the finish woke.
 *
 * Where reads are not of one snapshot (PostgreSQL's write transactions
 * read what committed before each statement), a job of the scan may be
 * gone when its turn comes: removed (cj_remove, a pass beside this one),
 * or moved on (re-enqueued), after the scan. Its entry went with it, in
 * the same commit, and so did its place in the count, which the count
 * read may or may not have seen: the count is read again, and the batch
 * goes on with the next entry. Stopping there instead left the type over
 * its limit when the commit landed between the scan and the count (the
 * count had lost the job, the batch its turn), and no finish woke another
 * pass. An entry still there without its job is a damaged store
 * (cj_verify says so): the batch stops there, so as not to go round it
 * for ever. */
static int prune_fn(cj_tx *tx, void *arg) {
	struct prune_arg *a = arg;
	cj_batch c = {CJ_BUF_INIT, 0, CJ_PRUNE_BATCH};
	cj_buf lo = CJ_BUF_INIT, hi = CJ_BUF_INIT, copy = CJ_BUF_INIT;
	char *id = NULL;
	int64_t n = 0;
	a->count = 0;
	a->more = 0;
	a->oldest = -1;
	int rc = CJ_OK, kind = a->dead ? CJ_COUNT_DEAD : CJ_COUNT_FINISHED;
	if (a->keep != CJ_KEEP_ALL && a->cutoff < 0) {
		/* by count alone: read just what is over */
		if ((rc = cj__count_read(tx, a->type, kind, &n)) || n <= a->keep) goto out;
		if (n - a->keep < c.max) c.max = (int)(n - a->keep);
	}
	cj__key_finished_prefix(&lo, a->type, a->dead);
	cj__key_finished_prefix(&hi, a->type, a->dead);
	cj__tup_range_end(&hi);
	struct age_scan age = {&c, a->cutoff};
	rc = a->keep == CJ_KEEP_ALL ? cj__scan(tx, &lo, &hi, age_add, &age)
	                            : cj__scan(tx, &lo, &hi, cj__batch_add, &c);
	if (rc < 0) goto out;
	a->more = rc == 1;
	cj__fault_hold_here(CJ_HOLD_PRUNE_COUNT);
	rc = a->keep != CJ_KEEP_ALL ? cj__count_read(tx, a->type, kind, &n) : CJ_OK;
	if (rc) goto out;
	uint64_t before = 0; /* this batch's removals the count n has */
	size_t off = 0, kl, vl;
	const uint8_t *k, *v;
	while (cj__batch_next(&c, &off, &k, &kl, &v, &vl)) {
		int64_t ms;
		cj_free(id);
		if ((rc = cj__key_finished_parse(k, kl, &ms, &id))) goto out;
		int over = a->keep != CJ_KEEP_ALL && n - (int64_t)(a->count - before) > a->keep;
		cj_jv jv;
		if (!over && !(a->cutoff >= 0 && ms <= a->cutoff)) {
			a->oldest = ms; /* kept, and so is every later one */
			a->more = 0;
			break;
		}
		rc = cj__job_read(tx, a->type, id, &copy, &jv);
		if (rc == CJ_OK && (jv.has_lock || jv.finished_ms != ms || jv.dead != a->dead))
			rc = CJ_NOT_FOUND;
		if (rc == CJ_NOT_FOUND) {
			const uint8_t *ev;
			size_t evl;
			cj__buf_reset(&lo);
			cj__buf_add(&lo, k, kl);
			if (lo.oom) {
				rc = cj__fail(CJ_NOMEM, "out of memory");
				goto out;
			}
			rc = cj__get(tx, &lo, &ev, &evl);
			if (rc == CJ_NOT_FOUND) {
				/* gone since the scan, with its entry: see above */
				rc = a->keep != CJ_KEEP_ALL ? cj__count_read(tx, a->type, kind, &n)
				                            : CJ_OK;
				if (rc) goto out;
				before = a->count; /* the read flushed them in */
				continue;
			}
			if (rc) goto out;
			/* an entry without its job: cj_verify reports it; look again later */
			a->oldest = ms;
			a->more = 0;
			break;
		}
		if (rc || (rc = cj__job_delete(tx, a->type, id, &jv))) goto out;
		a->count++;
	}
out:
	cj_free(id);
	cj__buf_free(&c.kv);
	cj__buf_free(&lo);
	cj__buf_free(&hi);
	cj__buf_free(&copy);
	return rc;
}

/* A monitor's pass runs at most this many batches per type and kind, so
 * that a huge backlog does not hold up its lease checks: the rest is left
 * for its next pass. */
#define CJ_PRUNE_PASS_BATCHES 16
#define MORE_LEFT (-2) /* prune_kind's *oldest: stopped at max_batches */

/* Prunes (type, dead) by limits ms (age) and max (count), batch after
 * batch (at most max_batches; 0: all); adds to *removed; the finish time
 * of the oldest kept in *oldest (-1 none, or MORE_LEFT). */
static int prune_kind(cj_db *db, const char *type, int dead, int64_t ms, int64_t max,
                      int max_batches, uint64_t *removed, int64_t *oldest) {
	struct prune_arg a = {type, dead, -1, max, 0, 0, -1};
	*oldest = -1;
	if (ms == CJ_KEEP_ALL && max == CJ_KEEP_ALL) return CJ_OK;
	if (ms != CJ_KEEP_ALL) a.cutoff = cj__add_sat(cj__epoch_ms(), -ms);
	for (int batches = 0; a.more || batches == 0; batches++) {
		if (max_batches && batches == max_batches) {
			*oldest = MORE_LEFT;
			return CJ_OK;
		}
		int rc = cj__run(db, NULL, 1, prune_fn, &a);
		if (rc) return rc;
		*removed += a.count;
	}
	*oldest = a.oldest;
	return CJ_OK;
}

/* The next expiry (epoch ms) by the limit ms of a kind whose oldest kept
 * job finished at oldest, folded into *next (-1 none). */
static void expiry(int64_t ms, int64_t oldest, int64_t *next) {
	int64_t t;
	if (oldest == MORE_LEFT) t = 0; /* due now */
	else if (ms == CJ_KEEP_ALL || oldest < 0) return;
	else t = cj__add_sat(cj__add_sat(oldest, ms), 1);
	if (*next < 0 || t < *next) *next = t;
}

/* Prunes type by r; its next expiry folded into *next. */
static int prune_type(cj_db *db, const char *type, const cj_retention *r, int max_batches,
                      uint64_t *removed, int64_t *next) {
	for (int dead = 0; dead <= 1; dead++) {
		int64_t ms = dead ? r->dead_keep_ms : r->keep_ms, oldest;
		int rc = prune_kind(db, type, dead, ms, dead ? r->dead_keep_max : r->keep_max,
		                    max_batches, removed, &oldest);
		if (rc) return rc;
		expiry(ms, oldest, next);
	}
	return CJ_OK;
}

/* The types to prune, with their retention: NUL-terminated types one after
 * another in names, their retentions in rs. */
struct type_list {
	int own;          /* listing the types' own retentions, else those with jobs */
	cj_buf names;
	cj_retention *rs;
	size_t n, cap;
};

static int list_add(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *arg) {
	struct type_list *l = arg;
	char *type = NULL;
	int kind, shard, rc;
	cj_retention r = CJ_RETENTION_INIT;
	if (l->own) {
		if ((rc = cj__key_retention_parse(k, kl, &type)) ||
		    (rc = cj__retention_decode(v, vl, &r)))
			goto out;
	} else {
		if ((rc = cj__key_counter_parse(k, kl, &type, &kind, &shard))) goto out;
		/* the counters of a type come together: list it once */
		const char *last = l->n ? (const char *)l->names.p + l->names.len - 1 : NULL;
		if (last) {
			while (last > (const char *)l->names.p && last[-1]) last--;
			if (strcmp(last, type) == 0) goto out;
		}
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		cj_retention *rs = cj__realloc(l->rs, cap * sizeof *rs);
		if (!rs) {
			rc = cj__fail(CJ_NOMEM, "out of memory");
			goto out;
		}
		l->rs = rs;
		l->cap = cap;
	}
	l->rs[l->n++] = r;
	cj__buf_add(&l->names, type, strlen(type) + 1);
	if (l->names.oom) rc = cj__fail(CJ_NOMEM, "out of memory");
out:
	cj_free(type);
	return rc;
}

static int list_fn(cj_tx *tx, void *arg) {
	struct type_list *l = arg;
	cj_buf k = CJ_BUF_INIT;
	cj__buf_reset(&l->names);
	l->n = 0;
	if (l->own) cj__key_retention_prefix(&k);
	else cj__key_counter_prefix(&k, NULL);
	int rc = cj__scan_prefix(tx, &k, list_add, l);
	cj__buf_free(&k);
	return rc;
}

/* Prunes every type of the list (limits: each by those, else by its own);
 * the earliest next expiry in *next (epoch ms, -1 none). */
static int prune_all(cj_db *db, const cj_retention *limits, int max_batches,
                     uint64_t *removed, int64_t *next) {
	struct type_list l = {limits == NULL, CJ_BUF_INIT, NULL, 0, 0};
	int rc = cj__run(db, NULL, 0, list_fn, &l);
	const char *type = (const char *)l.names.p;
	for (size_t i = 0; rc == CJ_OK && i < l.n; i++, type += strlen(type) + 1)
		rc = prune_type(db, type, limits ? limits : &l.rs[i], max_batches, removed, next);
	cj__buf_free(&l.names);
	cj_free(l.rs);
	return rc;
}

int cj_prune(cj_db *db, const char *type, const cj_retention *limits, uint64_t *removed) {
	uint64_t n = 0;
	int64_t next = -1;
	int rc;
	if (removed) *removed = 0;
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	if ((type && (rc = cj__check_type(type))) || (limits && (rc = cj__retention_check(limits))))
		return rc;
	if (cj__tx_held(db))
		return cj__fail(CJ_INVALID, "this thread holds an open transaction on this store");
	if (!type) {
		rc = prune_all(db, limits, 0, &n, &next);
	} else {
		cj_retention own;
		if (!limits && (rc = cj_get_type_retention(db, type, &own))) return rc;
		rc = prune_type(db, type, limits ? limits : &own, 0, &n, &next);
	}
	if (removed) *removed = n;
	return rc;
}

/* ---- the monitor's duty ------------------------------------------------------- */

int64_t cj__retention_step(cj_db *db, cj_retention_state *st, int64_t now) {
	uint64_t token = cj__watch(db, CJ_CHAN_RETENTION);
	int64_t gap_end = cj__add_sat(st->last, CJ_RETENTION_GAP_MS);
	if (token != st->token && (st->due < 0 || st->due > gap_end)) st->due = gap_end;
	if (st->due >= 0 && st->due <= now) {
		uint64_t removed = 0;
		int64_t next = -1;
		st->token = token; /* what was notified before now, this pass sees */
		st->last = now;
		gap_end = cj__add_sat(now, CJ_RETENTION_GAP_MS);
		if (prune_all(db, NULL, CJ_PRUNE_PASS_BATCHES, &removed, &next) != CJ_OK) {
			st->due = cj__backoff(&st->retry); /* the store failed: later */
		} else {
			st->retry = CJ_RETRY_MIN_MS;
			st->due = next < 0 ? -1 : cj__add_sat(now, next - cj__epoch_ms());
			if (st->due >= 0 && st->due < gap_end) st->due = gap_end;
		}
	}
	/* a notification can only make the next pass earlier than a deadline
	 * after the gap */
	st->listen = st->due < 0 || st->due > gap_end;
	return st->due;
}
