/* Per-type limits: how many jobs of a type run at once, and how fast they
 * are accepted (couchjobs.h, "Per-type concurrency and rate limits"). The
 * accept transaction asks cj__limits_look() what it may take. */
#include <string.h>

#include "cj_int.h"

static int limits_on(const cj_type_limits *l) { return l->max_running > 0 || l->rate > 0; }

struct lim_read {
	int found;
	cj_lim v;
};

static int lim_value(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *arg) {
	(void)k, (void)kl;
	struct lim_read *r = arg;
	int rc = cj__limits_decode(v, vl, &r->v);
	if (rc) return rc;
	r->found = 1;
	return 1;
}

/* The type's limits value: 1, 0 if none, or a code. hold: read with get(),
 * which holds the key until tx ends (write transactions); else a scan of
 * the one key, which holds nothing. */
static int lim_read(cj_tx *tx, const char *type, int hold, cj_lim *out) {
	cj_buf k = CJ_BUF_INIT;
	int rc;
	cj__key_limits(&k, type);
	if (hold) {
		const uint8_t *v;
		size_t vl;
		rc = cj__get(tx, &k, &v, &vl);
		if (rc == CJ_NOT_FOUND) rc = 0;
		else if (rc == CJ_OK && (rc = cj__limits_decode(v, vl, out)) == CJ_OK) rc = 1;
	} else {
		struct lim_read r = {0, {CJ_TYPE_LIMITS_INIT, 0, 0}};
		rc = cj__scan_key(tx, &k, lim_value, &r);
		if (rc >= 0) rc = r.found;
		if (rc == 1) *out = r.v;
	}
	cj__buf_free(&k);
	return rc;
}

static int lim_write(cj_tx *tx, const char *type, const cj_lim *v) {
	cj_buf k = CJ_BUF_INIT, val = CJ_BUF_INIT;
	cj__key_limits(&k, type);
	cj__limits_encode(&val, v);
	int rc = cj__put(tx, &k, &val);
	cj__buf_free(&k);
	cj__buf_free(&val);
	return rc;
}

/* ---- the rate's bucket ------------------------------------------------------
 *
 * Credit counts in units of 1/RatePeriodMs token: a full bucket is Rate
 * tokens, Rate * RatePeriodMs units (at most CJ_MAX_RATE *
 * CJ_MAX_RATE_PERIOD_MS, which fits), and each millisecond adds Rate. */

static int64_t bucket_full(const cj_lim *v) { return v->l.rate * v->l.rate_period_ms; }

/* Refills v's bucket up to the wall clock now (see couchjobs.h). */
static void bucket_refill(cj_lim *v, int64_t now) {
	if (now >= v->refill_ms) {
		int64_t add = cj__mul_sat(now - v->refill_ms, v->l.rate);
		v->credit = cj__add_sat(v->credit, add);
		if (v->credit > bucket_full(v)) v->credit = bucket_full(v);
		v->refill_ms = now;
	} else if (v->refill_ms - now > CJ_RATE_CLOCK_SLACK_MS) {
		v->refill_ms = now; /* the clock went back: follow it, adding nothing */
	}
}

/* The wall clock at which v's bucket holds a token again (it holds none). */
static int64_t bucket_next(const cj_lim *v) {
	int64_t need = v->l.rate_period_ms - v->credit;
	return cj__add_sat(v->refill_ms, (need + v->l.rate - 1) / v->l.rate);
}

/* ---- the count of running jobs ---------------------------------------------- */

struct running_count {
	int64_t n, max;
};

static int count_one(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *arg) {
	(void)k, (void)kl, (void)v, (void)vl;
	struct running_count *c = arg;
	return ++c->n >= c->max;
}

/* The type's running jobs, counted up to max: its activity entries. */
static int count_running(cj_tx *tx, const char *type, int64_t max, int64_t *n) {
	cj_buf p = CJ_BUF_INIT;
	struct running_count c = {0, max};
	cj__key_activity_prefix(&p, type);
	int rc = cj__scan_prefix(tx, &p, count_one, &c);
	cj__buf_free(&p);
	if (rc < 0) return rc;
	*n = c.n;
	return CJ_OK;
}

int cj__limits_prefetch(cj_tx *tx, const char *type) {
	cj_buf k = CJ_BUF_INIT;
	cj__key_limits(&k, type);
	int rc = cj__prefetch_scan_key(tx, &k);
	cj__buf_free(&k);
	return rc;
}

int cj__limits_look(cj_tx *tx, const char *type, int hold, cj_lim_look *look) {
	memset(look, 0, sizeof *look);
	look->allow = INT64_MAX;
	look->next_ms = -1;
	int rc = lim_read(tx, type, 0, &look->v);
	if (rc <= 0) return rc;
	if (!limits_on(&look->v.l)) return CJ_OK;
	/* limited: hold the key (and read it again, now held), so that every
	 * acceptor of the type counts after the last one committed */
	if (hold && (rc = lim_read(tx, type, 1, &look->v)) <= 0) return rc;
	if (!limits_on(&look->v.l)) return CJ_OK;
	look->on = 1;
	if (look->v.l.max_running > 0) {
		int64_t running;
		if ((rc = count_running(tx, type, look->v.l.max_running, &running))) return rc;
		look->allow = look->v.l.max_running - running;
		if (look->allow <= 0) {
			look->allow = 0;
			look->full = 1;
		}
	}
	if (look->v.l.rate > 0) {
		bucket_refill(&look->v, cj__epoch_ms());
		int64_t tokens = look->v.credit / look->v.l.rate_period_ms;
		if (tokens == 0) look->next_ms = bucket_next(&look->v);
		if (tokens < look->allow) look->allow = tokens;
	}
	return CJ_OK;
}

int cj__limits_take(cj_tx *tx, const char *type, cj_lim_look *look, int64_t n) {
	if (!look->on || look->v.l.rate == 0 || n == 0) return CJ_OK;
	look->v.credit -= n * look->v.l.rate_period_ms; /* n <= the tokens there */
	return lim_write(tx, type, &look->v);
}

/* Only an acceptor that found the type's limit on running jobs reached
 * waits for a run to end (accept.c), and setting or clearing the limits
 * wakes every such waiter (limits_changed). Where write transactions take
 * turns, a run that ends while the type has no such limit therefore has
 * nobody to wake: a waiter saw the limit before this transaction, so a
 * change since then notified the channel after it took its token. Left
 * out, the notification costs one read here instead of a wake-up system
 * call on every commit that ends a run. Elsewhere a limit may be set
 * beside this transaction unseen: it always notifies. */
int cj__run_ended(cj_tx *tx, const char *type) {
	char chan[CJ_CHAN_MAX];
	if (tx->db->eng->supports & CJ_ENGINE_WRITERS_TAKE_TURNS) {
		cj_lim v;
		int rc = lim_read(tx, type, 1, &v);
		if (rc < 0) return rc;
		if (rc == 0 || v.l.max_running <= 0) return CJ_OK;
	}
	cj__chan_running(chan, sizeof chan, type);
	return cj__notify(tx, chan);
}

/* ---- the public calls -------------------------------------------------------- */

struct limits_arg {
	const char *type;
	const cj_type_limits *set; /* NULL: clear */
	cj_type_limits got;
};

/* Waiting acceptors of the type look again: those waiting for a slot and
 * those waiting for a job or a token. */
static int limits_changed(cj_tx *tx, const char *type) {
	char chan[CJ_CHAN_MAX];
	cj__chan_pending(chan, sizeof chan, type);
	int rc = cj__notify(tx, chan);
	/* whatever the limits are now (cleared, or with no limit on running
	 * jobs: cj__run_ended would leave this out) */
	cj__chan_running(chan, sizeof chan, type);
	return rc ? rc : cj__notify(tx, chan);
}

static int set_fn(cj_tx *tx, void *arg) {
	struct limits_arg *a = arg;
	cj_lim old, v = {*a->set, 0, 0};
	int rc = lim_read(tx, a->type, 1, &old);
	if (rc < 0) return rc;
	if (rc == 1 && old.l.rate == v.l.rate && old.l.rate_period_ms == v.l.rate_period_ms) {
		v.credit = old.credit; /* the same rate: its bucket goes on */
		v.refill_ms = old.refill_ms;
	} else {
		v.credit = bucket_full(&v);
		v.refill_ms = cj__epoch_ms();
	}
	if ((rc = lim_write(tx, a->type, &v))) return rc;
	return limits_changed(tx, a->type);
}

int cj_type_limits_check(const cj_type_limits *limits) {
	if (!limits) return cj__fail(CJ_INVALID, "limits is NULL");
	return cj__limits_check(limits);
}

int cj_set_type_limits(cj_db *db, const char *type, const cj_type_limits *limits) {
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	int rc;
	if ((rc = cj__check_type(type)) || (rc = cj_type_limits_check(limits))) return rc;
	struct limits_arg a = {type, limits, CJ_TYPE_LIMITS_INIT};
	return cj__run(db, NULL, 1, set_fn, &a);
}

static int get_fn(cj_tx *tx, void *arg) {
	struct limits_arg *a = arg;
	cj_lim v;
	int rc = lim_read(tx, a->type, 0, &v);
	if (rc == 0) return cj__fail(CJ_NOT_FOUND, "type \"%.60s\" has no limits", a->type);
	if (rc == 1) a->got = v.l;
	return rc < 0 ? rc : CJ_OK;
}

int cj_get_type_limits(cj_db *db, const char *type, cj_type_limits *limits) {
	if (!db || !limits) return cj__fail(CJ_INVALID, "NULL argument");
	int rc = cj__check_type(type);
	if (rc) return rc;
	struct limits_arg a = {type, NULL, CJ_TYPE_LIMITS_INIT};
	if ((rc = cj__run(db, NULL, 0, get_fn, &a)) == CJ_OK) *limits = a.got;
	return rc;
}

static int clear_fn(cj_tx *tx, void *arg) {
	struct limits_arg *a = arg;
	cj_buf k = CJ_BUF_INIT;
	cj__key_limits(&k, a->type);
	int rc = cj__del(tx, &k);
	cj__buf_free(&k);
	if (rc == CJ_NOT_FOUND)
		return cj__fail(CJ_NOT_FOUND, "type \"%.60s\" has no limits", a->type);
	return rc ? rc : limits_changed(tx, a->type);
}

int cj_clear_type_limits(cj_db *db, const char *type) {
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	int rc = cj__check_type(type);
	if (rc) return rc;
	struct limits_arg a = {type, NULL, CJ_TYPE_LIMITS_INIT};
	return cj__run(db, NULL, 1, clear_fn, &a);
}
