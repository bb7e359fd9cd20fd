/*
 * Schedules (periodic jobs): their definitions in the store, and the
 * scheduler the activity monitor runs (couchjobs.h explains the rules).
 *
 * Exactly once: tick T of schedule N is the job "N@T", added with
 * CJ_UNIQUE_ID in the transaction that moves the schedule's Served past T,
 * after it has read (and so holds, engine.h) the schedule's key. Schedulers
 * of any number of processes serialize on that key; whichever comes second
 * finds Served already at T and does nothing, and even a scheduler acting
 * on an old read could only get CJ_EXISTS.
 *
 * A pass reads the schedules in batches with a read transaction, and only
 * for a batch that has a tick due opens one write transaction, which reads
 * those schedules again before firing: an idle store costs one read per
 * batch per tick of the nearest schedule, and no write.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cj_int.h"

#define CJ_SCHEDULE_BATCH 100

/* ---- the clock ------------------------------------------------------------ */

void cj__schedule_clock_init(cj_db *db) {
#ifdef CJ_FAULT_INJECTION
	const char *p = getenv("CJ_TEST_CLOCK_FILE");
	if (p && *p) db->test_clock = cj__strdup(p);
#else
	(void)db;
#endif
}

/* The wall clock the schedules read, in milliseconds since the epoch: the
 * system's, or in fault-injection builds (the tests') the number of
 * seconds in the file named by CJ_TEST_CLOCK_FILE at cj_open(). */
static int64_t clock_ms(cj_db *db) {
	if (!db->test_clock) return cj__epoch_ms();
	char buf[32] = "";
	int fd = open(db->test_clock, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof buf - 1);
		buf[n > 0 ? n : 0] = 0;
		close(fd);
	}
	return cj__mul_sat(strtoll(buf, NULL, 10), 1000);
}

/* ---- ticks ------------------------------------------------------------------ */

struct spec {
	const cj_schedule *s;
	cj_cron cron;
	cj_tz *tz;
};

static int spec_load(const cj_schedule *s, struct spec *sp) {
	sp->s = s;
	sp->tz = NULL;
	if (!s->cron) return CJ_OK;
	int rc = cj__cron_parse(s->cron, &sp->cron);
	return rc ? rc : cj__tz_load(s->zone, &sp->tz);
}

static void spec_free(struct spec *sp) { cj__tz_free(sp->tz); }

/* The first tick strictly after t: 1 with *out, 0 if none up to
 * CJ_MAX_SCHED_TIME. */
static int tick_after(const struct spec *sp, int64_t t, int64_t *out) {
	if (sp->s->cron) return cj__cron_next(&sp->cron, sp->tz, t, out) == CJ_OK;
	int64_t a = sp->s->anchor, e = sp->s->every_s;
	int64_t next = t < a ? a : cj__add_sat(a, cj__mul_sat((t - a) / e + 1, e));
	if (next > CJ_MAX_SCHED_TIME) return 0;
	*out = next;
	return 1;
}

/* The latest tick in (after, now]: 1 with *out, or 0. A cron expression is
 * searched forward from ever further back (a minute, an hour, a day, a
 * month, a year, then from after), so that a long downtime costs a few
 * steps, not one per missed tick. */
static int tick_latest(const struct spec *sp, int64_t after, int64_t now, int64_t *out) {
	if (now <= after) return 0;
	if (!sp->s->cron) {
		int64_t a = sp->s->anchor, e = sp->s->every_s;
		if (now < a) return 0;
		int64_t t = a + (now - a) / e * e;
		if (t <= after) return 0;
		*out = t;
		return 1;
	}
	static const int64_t back[] = {60, 3600, 86400, 32 * 86400, 367 * 86400};
	for (size_t i = 0; i <= sizeof back / sizeof back[0]; i++) {
		int64_t from = i < sizeof back / sizeof back[0] ? now - back[i] : after;
		if (from < after) from = after;
		int64_t t, n;
		if (!tick_after(sp, from, &t) || t > now) {
			if (from == after) return 0;
			continue;
		}
		while (tick_after(sp, t, &n) && n <= now) t = n;
		*out = t;
		return 1;
	}
	return 0;
}

/* ---- checking a definition --------------------------------------------------- */

int cj__schedule_check(const cj_schedule *s) {
	int rc;
	if ((rc = cj__check_type(s->type))) return rc;
	if (!s->cron == !s->every_s)
		return cj__fail(CJ_INVALID, "a schedule has a cron expression or an interval: "
		                "exactly one of them");
	if (s->catch_up != CJ_CATCH_UP_SKIP && s->catch_up != CJ_CATCH_UP_LAST)
		return cj__fail(CJ_INVALID, "unknown catch-up policy %d", s->catch_up);
	if (s->every_s) {
		if (s->zone) return cj__fail(CJ_INVALID, "an interval takes no time zone");
		if (s->every_s < 1 || s->every_s > CJ_MAX_SCHEDULE_EVERY)
			return cj__fail(CJ_INVALID, "interval of %lld s is outside 1..%lld",
			                (long long)s->every_s, (long long)CJ_MAX_SCHEDULE_EVERY);
		if (s->anchor < 0 || s->anchor > CJ_MAX_SCHED_TIME)
			return cj__fail(CJ_INVALID, "anchor %lld is outside 0..%lld",
			                (long long)s->anchor, (long long)CJ_MAX_SCHED_TIME);
		return CJ_OK;
	}
	if (s->anchor) return cj__fail(CJ_INVALID, "a cron expression takes no anchor");
	return cj_cron_check(s->cron, s->zone);
}

/* The definition part of info. */
static cj_schedule info_def(const cj_schedule_info *i) {
	cj_schedule s = {i->cron, i->zone, i->every_s, i->anchor, i->type,
	                 i->data, i->catch_up, i->disabled};
	return s;
}

int cj__schedule_info_check(const cj_schedule_info *i) {
	cj_schedule s = info_def(i);
	int rc = cj__schedule_check(&s);
	return rc ? rc : cj__json_check_object(i->data, strlen(i->data));
}

/* Sets info->next: its first tick after now and after its Served. */
static void info_next(cj_schedule_info *i, int64_t now) {
	cj_schedule s = info_def(i);
	struct spec sp;
	i->next = 0;
	if (!i->disabled && spec_load(&s, &sp) == CJ_OK &&
	    !tick_after(&sp, i->served > now ? i->served : now, &i->next))
		i->next = 0;
	spec_free(&sp);
}

/* ---- the public calls ----------------------------------------------------------- */

void cj_schedule_info_clear(cj_schedule_info *info) {
	if (!info) return;
	cj_free(info->name);
	cj_free(info->cron);
	cj_free(info->zone);
	cj_free(info->type);
	cj_free(info->data);
	memset(info, 0, sizeof *info);
}

int cj_catch_up_parse(const char *name, int *catch_up) {
	if (!name || !catch_up) return cj__fail(CJ_INVALID, "NULL argument");
	if (strcmp(name, "skip") == 0) *catch_up = CJ_CATCH_UP_SKIP;
	else if (strcmp(name, "last") == 0) *catch_up = CJ_CATCH_UP_LAST;
	else return cj__fail(CJ_INVALID, "unknown catch-up policy \"%.60s\" (skip or last)", name);
	return CJ_OK;
}

struct one_arg {
	const char *name;
	const cj_schedule *set; /* set: the definition, data checked */
	int64_t now;
	cj_schedule_info *info; /* get */
};

/* Reads the schedule's key (holding it in a write transaction) and decodes
 * it into *old: CJ_OK, CJ_NOT_FOUND (no detail) or a code. */
static int read_one(cj_tx *tx, const char *name, cj_schedule_info *old) {
	const uint8_t *v;
	size_t vl;
	cj__key_schedule(&tx->kbuf, name);
	int rc = cj__get(tx, &tx->kbuf, &v, &vl);
	return rc ? rc : cj__schedule_decode(v, vl, old);
}

/* Marks a schedule's change: its channel, for the schedulers, and the
 * "activity" channel, so that observers of cj_changes_wait() (the
 * dashboard's overview, which shows the schedules) wake for it as for a
 * job's change. It is marked as the job of no type ("" is no job's type)
 * named like the schedule, with its job word, as a job's commit marks it
 * (a mark of "activity" alone would read as a commit of the first build,
 * and make every notifier read all of its subscriptions again): the word
 * may be a real job's too, whose subscribers then look again for
 * nothing. */
static int schedule_changed(cj_tx *tx, const char *name) {
	int rc = cj__notify(tx, CJ_CHAN_SCHEDULES);
	return rc ? rc : cj__notify_job(tx, "", name);
}

static int set_fn(cj_tx *tx, void *arg) {
	struct one_arg *a = arg;
	cj_schedule_info old = {0};
	cj_buf v = CJ_BUF_INIT;
	int64_t timeout;
	int rc = cj__type_timeout_tx(tx, a->set->type, &timeout);
	if (rc) return rc;
	rc = read_one(tx, a->name, &old);
	if (rc != CJ_OK && rc != CJ_NOT_FOUND) goto out;
	int exists = rc == CJ_OK;
	if (exists) {
		/* the same definition again: nothing to write */
		cj_buf was = CJ_BUF_INIT;
		cj_schedule d = info_def(&old);
		cj__schedule_encode(&was, &d, old.data, old.served, old.fired);
		cj__schedule_encode(&v, a->set, a->set->data, old.served, old.fired);
		int same = !was.oom && !v.oom && was.len == v.len && memcmp(was.p, v.p, v.len) == 0;
		cj__buf_free(&was);
		rc = CJ_OK;
		if (same) goto out;
	}
	int64_t served = exists && old.served > a->now ? old.served : a->now;
	cj__schedule_encode(&v, a->set, a->set->data, served, exists ? old.fired : 0);
	cj__key_schedule(&tx->kbuf, a->name);
	if (!(rc = cj__put(tx, &tx->kbuf, &v))) rc = schedule_changed(tx, a->name);
out:
	cj_schedule_info_clear(&old);
	cj__buf_free(&v);
	return rc;
}

int cj_schedule_set(cj_db *db, cj_tx *tx, const char *name, const cj_schedule *s) {
	if (!db || !s) return cj__fail(CJ_INVALID, "NULL argument");
	cj_schedule def = *s;
	size_t dlen;
	int rc;
	if ((rc = cj__check_schedule_name(name)) || (rc = cj__schedule_check(&def)) ||
	    (rc = cj__check_data(db, &def.data, &dlen, 1)))
		return rc;
	def.disabled = def.disabled != 0;
	struct one_arg a = {name, &def, clock_ms(db) / 1000, NULL};
	return cj__run(db, tx, 1, set_fn, &a);
}

static int get_fn(cj_tx *tx, void *arg) {
	struct one_arg *a = arg;
	int rc = read_one(tx, a->name, a->info);
	if (rc == CJ_NOT_FOUND)
		return cj__fail(CJ_NOT_FOUND, "no schedule \"%.60s\"", a->name);
	if (rc) return rc;
	if (!(a->info->name = cj__strdup(a->name))) {
		cj_schedule_info_clear(a->info);
		return cj__fail(CJ_NOMEM, "out of memory");
	}
	info_next(a->info, a->now);
	return CJ_OK;
}

int cj_schedule_get(cj_db *db, cj_tx *tx, const char *name, cj_schedule_info *info) {
	if (!info) return cj__fail(CJ_INVALID, "info is NULL");
	memset(info, 0, sizeof *info);
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	int rc = cj__check_schedule_name(name);
	if (rc) return rc;
	struct one_arg a = {name, NULL, clock_ms(db) / 1000, info};
	return cj__run(db, tx, 0, get_fn, &a);
}

static int remove_fn(cj_tx *tx, void *arg) {
	struct one_arg *a = arg;
	cj__key_schedule(&tx->kbuf, a->name);
	int rc = cj__del(tx, &tx->kbuf);
	if (rc == CJ_NOT_FOUND)
		return cj__fail(CJ_NOT_FOUND, "no schedule \"%.60s\"", a->name);
	return rc ? rc : schedule_changed(tx, a->name);
}

int cj_schedule_remove(cj_db *db, cj_tx *tx, const char *name) {
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	int rc = cj__check_schedule_name(name);
	if (rc) return rc;
	struct one_arg a = {name, NULL, 0, NULL};
	return cj__run(db, tx, 1, remove_fn, &a);
}

struct list_arg {
	int (*cb)(const cj_schedule_info *info, void *arg);
	void *arg;
	int64_t now;
};

static int list_one(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *arg) {
	struct list_arg *a = arg;
	cj_schedule_info info;
	char *name;
	int rc = cj__key_schedule_parse(k, kl, &name);
	if (rc) return rc;
	if ((rc = cj__schedule_decode(v, vl, &info))) {
		cj_free(name);
		return rc;
	}
	info.name = name;
	info_next(&info, a->now);
	rc = a->cb(&info, a->arg);
	cj_schedule_info_clear(&info);
	return rc;
}

static int list_fn(cj_tx *tx, void *arg) {
	cj_buf p = CJ_BUF_INIT;
	cj__key_schedule_prefix(&p);
	int rc = cj__scan_prefix(tx, &p, list_one, arg);
	cj__buf_free(&p);
	return rc;
}

int cj_schedule_list(cj_db *db, cj_tx *tx, int (*cb)(const cj_schedule_info *info, void *arg),
                     void *arg) {
	if (!db || !cb) return cj__fail(CJ_INVALID, "NULL argument");
	struct list_arg a = {cb, arg, clock_ms(db) / 1000};
	return cj__run(db, tx, 0, list_fn, &a);
}

/* ---- the scheduler --------------------------------------------------------------- */

/* "NAME@2026-12-04T02:00:00Z" into out (CJ_MAX_ID + 1 bytes). */
static void tick_id(char *out, const char *name, int64_t t) {
	int64_t days = t / 86400, secs = t % 86400, y;
	int m, d;
	cj__civil_from_days(days, &y, &m, &d);
	snprintf(out, CJ_MAX_ID + 1, "%s@%04lld-%02d-%02dT%02d:%02d:%02dZ", name, (long long)y, m,
	         d, (int)(secs / 3600), (int)(secs % 3600 / 60), (int)(secs % 60));
}

/* What the schedule in i owes at now: 1 with the tick to serve (*due) and
 * whether it fires, 0 if nothing is due, or a code (a definition that no
 * longer checks: it is left alone). Sets *next to its next tick after
 * that, or leaves it. */
static int owed(const cj_schedule_info *i, int64_t now, int64_t *due, int *fire, int64_t *next) {
	cj_schedule s = info_def(i);
	struct spec sp;
	int rc = spec_load(&s, &sp), got = 0;
	if (rc == CJ_OK) {
		got = tick_latest(&sp, i->served, now, due);
		*fire = got && !i->disabled &&
		        (i->catch_up == CJ_CATCH_UP_LAST || now - *due < CJ_SCHEDULE_GRACE);
		int64_t n;
		if (!i->disabled && tick_after(&sp, i->served > now ? i->served : now, &n) &&
		    (*next < 0 || n < *next))
			*next = n;
	}
	spec_free(&sp);
	return rc ? rc : got;
}

struct pass {
	cj_db *db;
	int64_t now;     /* seconds */
	int64_t next;    /* the earliest next tick seen, or -1 */
	cj_buf start;    /* the batch starts after this key (empty: first) */
	cj_buf after;    /* the last key the batch read */
	cj_batch due;    /* schedules of the batch with a tick due */
	int scanned;     /* schedules read in this batch */
	int full;        /* the batch was cut short */
};

/* Serves one schedule in the write transaction: read again (and held),
 * its due tick fired (added unless its job exists) or passed over. */
static int serve_one(cj_tx *tx, struct pass *p, const uint8_t *k, size_t kl) {
	char *name = NULL;
	cj_schedule_info i = {0};
	cj_buf key = CJ_BUF_INIT, v = CJ_BUF_INIT;
	int rc = cj__key_schedule_parse(k, kl, &name);
	if (rc) goto out;
	if ((rc = read_one(tx, name, &i))) {
		if (rc == CJ_NOT_FOUND) rc = CJ_OK; /* removed meanwhile */
		goto out;
	}
	int64_t due, ignore = -1;
	int fire = 0;
	if ((rc = owed(&i, p->now, &due, &fire, &ignore)) <= 0) {
		/* nothing due, or changed meanwhile into one whose zone does not
		 * load: left alone (the scan skips it too) */
		if (rc != CJ_NOMEM) rc = CJ_OK;
		goto out;
	}
	int64_t fired = i.fired;
	if (fire) {
		char id[CJ_MAX_ID + 1];
		cj_add_opts o = CJ_ADD_OPTS_INIT;
		o.unique = CJ_UNIQUE_ID;
		tick_id(id, name, due);
		rc = cj_add_ex(p->db, tx, i.type, id, i.data, &o);
		if (rc == CJ_OK || rc == CJ_EXISTS) fired = due;
		else if (rc == CJ_STORE || rc == CJ_NOMEM || rc == CJ_CONFLICT) goto out;
		/* else the job cannot be added (no timeout, data over this handle's
		 * limit): the tick is passed over */
	}
	cj_schedule d = info_def(&i);
	cj__schedule_encode(&v, &d, i.data, due, fired);
	cj__buf_add(&key, k, kl);
	rc = cj__put(tx, &key, &v);
out:
	cj_free(name);
	cj_schedule_info_clear(&i);
	cj__buf_free(&key);
	cj__buf_free(&v);
	return rc;
}

static int serve_fn(cj_tx *tx, void *arg) {
	struct pass *p = arg;
	size_t off = 0, kl, vl;
	const uint8_t *k, *v;
	int rc = CJ_OK;
	while (rc == CJ_OK && cj__batch_next(&p->due, &off, &k, &kl, &v, &vl))
		rc = serve_one(tx, p, k, kl);
	return rc;
}

/* The scan's callback: keeps the schedules with a tick due (up to a
 * batch), notes every schedule's next tick. */
static int scan_one(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *arg) {
	struct pass *p = arg;
	cj_schedule_info i;
	int64_t due;
	int fire;
	if (p->scanned == CJ_SCHEDULE_BATCH) {
		p->full = 1;
		return 1;
	}
	p->scanned++;
	cj__buf_reset(&p->after);
	cj__buf_add(&p->after, k, kl);
	if (cj__schedule_decode(v, vl, &i) != CJ_OK) return CJ_OK; /* cj_verify reports it */
	int rc = owed(&i, p->now, &due, &fire, &p->next);
	cj_schedule_info_clear(&i);
	return rc == 1 ? cj__batch_add(k, kl, v, vl, &p->due) : CJ_OK;
}

static int scan_fn(cj_tx *tx, void *arg) {
	struct pass *p = arg;
	cj_buf lo = CJ_BUF_INIT, hi = CJ_BUF_INIT;
	cj__key_schedule_prefix(&hi);
	if (p->start.len) {
		cj__buf_add(&lo, p->start.p, p->start.len);
		cj__buf_add(&lo, "", 1); /* just after it */
	} else {
		cj__key_schedule_prefix(&lo);
	}
	cj__tup_range_end(&hi);
	cj__buf_reset(&p->due.kv);
	p->due.n = 0;
	p->scanned = 0;
	p->full = 0;
	int rc = lo.oom || hi.oom ? cj__fail(CJ_NOMEM, "out of memory")
	                          : cj__scan(tx, &lo, &hi, scan_one, p);
	cj__buf_free(&lo);
	cj__buf_free(&hi);
	return rc < 0 ? rc : CJ_OK;
}

int64_t cj__schedule_pass(cj_db *db, int *failed) {
	struct pass p = {db, 0, -1, CJ_BUF_INIT, CJ_BUF_INIT, {CJ_BUF_INIT, 0, CJ_SCHEDULE_BATCH},
	                 0, 0};
	int64_t wall = clock_ms(db);
	p.now = wall / 1000;
	int rc;
	do {
		/* (a scan that runs again starts where this one did) */
		cj__buf_reset(&p.start);
		cj__buf_add(&p.start, p.after.p, p.after.len);
		if (p.start.oom) rc = cj__fail(CJ_NOMEM, "out of memory");
		else rc = cj__run(db, NULL, 0, scan_fn, &p);
		if (rc) break;
		if (p.due.n && (rc = cj__run(db, NULL, 1, serve_fn, &p))) break;
	} while (p.full);
	*failed = rc != CJ_OK;
	cj__buf_free(&p.start);
	cj__buf_free(&p.after);
	cj__buf_free(&p.due.kv);
	if (rc || p.next < 0) return -1;
	if (db->test_clock) return -1; /* the tests' clock moves when they say */
	/* the monotonic time of the next tick, a millisecond past it */
	int64_t in_ms = cj__add_sat(cj__mul_sat(p.next, 1000), -wall) + 1;
	if (in_ms > CJ_SCHEDULE_RECHECK_MS) in_ms = CJ_SCHEDULE_RECHECK_MS;
	return cj__add_sat(cj__mono_ms(), in_ms < 1 ? 1 : in_ms);
}
