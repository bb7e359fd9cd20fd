/*
 * The activity monitor: a thread of each cj_db opened with monitors on.
 *
 * For each type with a timeout T it checks every T seconds (by this
 * process's monotonic clock). At each check it notes the store's commit
 * number; at the next check, a running job whose last accept/update
 * committed at or before the noted number has not been updated for at least
 * T, and its attempt ends as lost (fail.c): pending again, or dead by its
 * retry policy. So a job comes back between T and 2T after
 * its processor stopped, and no clock is compared across processes: only
 * the store's commit numbers (the versionstamps) are. Re-enqueueing checks
 * the job's sequence in the same transaction, so any number of monitors, in
 * any processes, can run at once.
 *
 * The monitor also runs the scheduler (schedule.c): a pass at the next tick
 * of any schedule, or when a schedule was set or removed in any process.
 *
 * An engine may hand commit numbers out in the order transactions ask for
 * them rather than in commit order (engine.h). The check stays right: the
 * number noted is >= every number handed out before it was read, so an
 * accept/update whose number is <= the noted one asked for it before the
 * note was taken, a full T before the check; its processor has reported
 * nothing since (a later report would carry a newer sequence). One that
 * asked later carries a greater number and waits for a later check. Its
 * commit may come after the note: then the check that follows sees it.
 */
#include <stdatomic.h>
#include <string.h>

#include "cj_int.h"

#define CJ_MONITOR_BATCH 500
#define CJ_MONITOR_RETRY_MS 1000 /* after a failure of the store */

struct mtype {
	char *type;
	int64_t timeout_ms;
	int has_base;
	uint64_t base;   /* commit number noted at the last check */
	int64_t next_ms; /* when to check next (monotonic) */
	uint64_t stranded; /* cj__accept_rescue's mark */
};

struct cj_monitor {
	cj_db *db;
	pthread_t thread;
	atomic_int stop;
	struct mtype *t;
	size_t n;
	cj_retention_state ret; /* retention.c's duty */
};

/* ---- re-enqueueing ------------------------------------------------------ */

struct stale_arg {
	const char *type;
	uint64_t max_version;
	int count;
	int full;
};

/* One activity key (type, seq) = id, as the scan saw it: re-enqueue the
 * job if it is still running under that sequence; drop a stray entry
 * otherwise. The job's data key is read before the activity key is
 * touched: the order in which processors take them (engine.h: get holds
 * the key), so that the two never wait for each other. The scan held
 * nothing: the data value read here decides. */
static int reenqueue_one(cj_tx *tx, const char *type, const uint8_t *k, size_t kl,
                         const uint8_t *v, size_t vl) {
	uint8_t seq[CJ_VS_LEN];
	cj_buf key = CJ_BUF_INIT, copy = CJ_BUF_INIT;
	char *id = NULL;
	int rc;
	if ((rc = cj__key_activity_parse(k, kl, seq)) || (rc = cj__val_id_parse(v, vl, &id)))
		goto out;
	cj__buf_add(&key, k, kl);
	cj_jv jv;
	int stale = 0;
	rc = cj__job_read(tx, type, id, &copy, &jv);
	if (rc == CJ_OK)
		stale = jv.has_lock && jv.has_seq && memcmp(jv.seq, seq, CJ_VS_LEN) == 0;
	else if (rc != CJ_NOT_FOUND) /* not found: a stray entry of a removed job */
		goto out;
	/* a stray entry may be gone already: whoever moved the job on took it */
	if ((rc = cj__del_blind(tx, &key)) || (rc = cj__run_ended(tx, type))) goto out;
	if (!stale) goto out;
	/* the attempt was lost: it counts, by the job's retry policy */
	rc = cj__attempt_end(tx, type, id, &jv, NULL, 0);
	if (rc == CJ_OK) rc = 1;
out:
	cj_free(id);
	cj__buf_free(&key);
	cj__buf_free(&copy);
	return rc;
}

static int stale_fn(cj_tx *tx, void *arg) {
	struct stale_arg *a = arg;
	cj_buf lo = CJ_BUF_INIT, hi = CJ_BUF_INIT;
	cj_batch c = {CJ_BUF_INIT, 0, CJ_MONITOR_BATCH};
	uint8_t limit[CJ_VS_LEN];
	cj__vs_make(limit, a->max_version + 1, 0);
	cj__key_activity_prefix(&lo, a->type);
	cj__key_activity(&hi, a->type, limit);
	a->count = 0;
	int rc = cj__scan(tx, &lo, &hi, cj__batch_add, &c);
	a->full = rc == 1;
	if (rc == 1) rc = CJ_OK;
	size_t off = 0, kl, vl;
	const uint8_t *k, *v;
	while (rc == CJ_OK && cj__batch_next(&c, &off, &k, &kl, &v, &vl)) {
		int n = reenqueue_one(tx, a->type, k, kl, v, vl);
		if (n < 0) rc = n;
		else a->count += n;
	}
	cj__buf_free(&lo);
	cj__buf_free(&hi);
	cj__buf_free(&c.kv);
	return rc;
}

int cj__reenqueue_stale(cj_db *db, const char *type, uint64_t max_version) {
	struct stale_arg a = {type, max_version, 0, 0};
	int total = 0;
	do {
		int rc = cj__run(db, NULL, 1, stale_fn, &a);
		if (rc) return rc;
		total += a.count;
	} while (a.full);
	return total;
}

/* ---- the thread --------------------------------------------------------- */

struct scan_types {
	struct cj_monitor *m;
	struct mtype *t;
	size_t n;
	uint64_t version;
};

static int read_types(cj_tx *tx, void *arg) {
	struct scan_types *s = arg;
	char **types = NULL;
	size_t n = 0;
	int rc = cj_get_types(tx->db, tx, &types, &n);
	if (rc) return rc;
	s->t = cj__calloc(n ? n : 1, sizeof *s->t);
	if (!s->t) rc = cj__fail(CJ_NOMEM, "out of memory");
	for (size_t i = 0; rc == CJ_OK && i < n; i++) {
		int64_t secs;
		int r = cj__type_timeout_tx(tx, types[i], &secs);
		if (r == CJ_NO_TYPE_TIMEOUT) continue;
		if (r) {
			rc = r;
			break;
		}
		s->t[s->n].type = types[i];
		types[i] = NULL;
		s->t[s->n].timeout_ms = cj__mul_sat(secs, 1000);
		s->n++;
	}
	for (size_t i = 0; i < n; i++) cj_free(types[i]);
	cj_free(types);
	return rc ? rc : cj__tx_version(tx, &s->version);
}

static void free_types(struct mtype *t, size_t n) {
	for (size_t i = 0; i < n; i++) cj_free(t[i].type);
	cj_free(t);
}

/* Replaces the type list, keeping the state of types whose timeout is
 * unchanged. */
static void merge_types(struct cj_monitor *m, struct scan_types *s, int64_t now) {
	for (size_t i = 0; i < s->n; i++) {
		struct mtype *nt = &s->t[i];
		nt->next_ms = now;
		for (size_t j = 0; j < m->n; j++)
			if (strcmp(m->t[j].type, nt->type) == 0 &&
			    m->t[j].timeout_ms == nt->timeout_ms) {
				nt->has_base = m->t[j].has_base;
				nt->base = m->t[j].base;
				nt->next_ms = m->t[j].next_ms;
				nt->stranded = m->t[j].stranded;
			}
	}
	free_types(m->t, m->n);
	m->t = s->t;
	m->n = s->n;
}

static void *monitor_main(void *arg) {
	struct cj_monitor *m = arg;
	cj_db *db = m->db;
	int64_t retry = CJ_RETRY_MIN_MS;
	/* the scheduler (schedule.c): its next pass, and its token */
	int64_t sched_at = 0, sched_retry = CJ_RETRY_MIN_MS;
	uint64_t sched_token = 0;
	while (!atomic_load(&m->stop)) {
		uint64_t token = cj__watch(db, CJ_CHAN_TYPES);
		if (sched_at >= 0 && sched_at <= cj__mono_ms()) sched_at = 0;
		if (sched_at == 0 || cj__watch(db, CJ_CHAN_SCHEDULES) != sched_token) {
			int failed;
			sched_token = cj__watch(db, CJ_CHAN_SCHEDULES);
			sched_at = cj__schedule_pass(db, &failed);
			if (failed) sched_at = cj__backoff(&sched_retry);
			else sched_retry = CJ_RETRY_MIN_MS;
		}
		struct scan_types s = {m, NULL, 0, 0};
		int rc = cj__run(db, NULL, 0, read_types, &s);
		int64_t now = cj__mono_ms(), wake = -1;
		if (rc) {
			/* the store failed: try again later, and less often while it
			 * stays down; the checks that fell due wait for it */
			free_types(s.t, s.n);
			wake = cj__backoff(&retry);
		} else {
			retry = CJ_RETRY_MIN_MS;
			merge_types(m, &s, now);
		}
		for (size_t i = 0; i < m->n && !atomic_load(&m->stop); i++) {
			struct mtype *t = &m->t[i];
			if (!rc && t->next_ms <= now) {
				if (t->has_base && cj__reenqueue_stale(db, t->type, t->base) < 0) {
					/* the store failed: the same check again soon (what
					 * was stale at base still is) */
					t->next_ms = cj__add_sat(now, CJ_MONITOR_RETRY_MS);
				} else {
					t->has_base = 1;
					t->base = s.version;
					t->next_ms = cj__add_sat(now, t->timeout_ms);
				}
				/* a failure here waits for the next check */
				(void)cj__accept_rescue(db, t->type, &t->stranded);
			}
			if (!rc && (wake < 0 || t->next_ms < wake)) wake = t->next_ms;
		}
		if (atomic_load(&m->stop)) break;
		int64_t rwake = cj__retention_step(db, &m->ret, cj__mono_ms());
		if (rwake >= 0 && (wake < 0 || rwake < wake)) wake = rwake;
		if (sched_at >= 0 && (wake < 0 || sched_at < wake)) wake = sched_at;
		const char *chans[3] = {CJ_CHAN_TYPES, CJ_CHAN_SCHEDULES, CJ_CHAN_RETENTION};
		uint64_t tokens[3] = {token, sched_token, m->ret.token};
		cj__wait_any(db, chans, tokens, m->ret.listen ? 3 : 2, cj__sleep_until(wake));
	}
	return NULL;
}

int cj__monitor_start(cj_db *db) {
	struct cj_monitor *m = cj__calloc(1, sizeof *m);
	if (!m) return cj__fail(CJ_NOMEM, "out of memory");
	m->db = db;
	m->ret = (cj_retention_state)CJ_RETENTION_STATE_INIT;
	atomic_init(&m->stop, 0);
	if (pthread_create(&m->thread, NULL, monitor_main, m) != 0) {
		cj_free(m);
		return cj__fail(CJ_NOMEM, "cannot start the activity monitor thread");
	}
	db->monitor = m;
	return CJ_OK;
}

void cj__monitor_stop(cj_db *db) {
	struct cj_monitor *m = db->monitor;
	if (!m) return;
	atomic_store(&m->stop, 1);
	cj__wake(db, CJ_CHAN_TYPES);
	pthread_join(m->thread, NULL);
	free_types(m->t, m->n);
	cj_free(m);
	db->monitor = NULL;
}
