/* cj_accept and its variants: hand pending jobs, of one type or the first
 * of several types that has some, to one processor. */
#include <string.h>

#include "cj_int.h"

#define CJ_ACCEPT_RELOOK_MS 10

_Static_assert(CJ_ACCEPT_TYPES_MAX <= CJ_WAIT_ANY_MAX, "one wait covers every type");

/* Marks in a what limits that allow nothing keep the type waiting for. */
static void note_limited(cj_claim *a, const cj_lim_look *look) {
	if (look->full) a->full[a->ti] = 1;
	if (look->next_ms >= 0 && (a->next_token < 0 || look->next_ms < a->next_token))
		a->next_token = look->next_ms;
}

typedef int (*first_fn)(cj_tx *, const cj_buf *, const cj_buf *, cj_buf *);

/* first(tx, lo, hi, found); or, when data is not NULL, a claim of the
 * first pending key of a->type in [lo, hi) that also holds the job's data
 * key where it can, in one step (cj__claim_pair; data: that key, or empty). */
static int take_first(cj_tx *tx, const cj_claim *a, const cj_buf *lo, const cj_buf *hi,
                      cj_buf *found, first_fn first, cj_buf *data) {
	if (!data) return first(tx, lo, hi, found);
	/* ("pending", type, sched, id) names ("data", type, id): the data
	 * prefix, then what follows the sched integer */
	cj_buf dp = CJ_BUF_INIT, pp = CJ_BUF_INIT;
	cj__key_data_prefix(&dp, a->type);
	cj__key_pending_prefix(&pp, a->type);
	cj_ederive d = {dp.p, dp.len, pp.len, CJ_TUP_INT};
	int rc = dp.oom || pp.oom ? cj__fail(CJ_NOMEM, "out of memory")
	                          : cj__claim_pair(tx, lo, hi, &d, found, data);
	cj__buf_free(&dp);
	cj__buf_free(&pp);
	return rc;
}

/* The pending key of a->type to take, in found: 1, 0 if none is due, or a
 * code. first: cj__scan_first (a look) or cj__claim_first (to take it);
 * data not NULL: taken with cj__claim_pair instead (take_first). When none
 * is due and next_due is not NULL, *next_due becomes the earliest later
 * scheduled time of the type if it is before *next_due (or *next_due is
 * -1). */
static int find_candidate(cj_tx *tx, cj_claim *a, cj_buf *found, first_fn first,
                          cj_buf *data, int64_t *next_due) {
	cj_buf lo = CJ_BUF_INIT, hi = CJ_BUF_INIT;
	int rc;
	if (a->no_schedule) {
		/* jobs with sched 0, starting near a random id */
		uint8_t r[8];
		char start[17];
		if (cj__random(r, sizeof r) != CJ_OK) memset(r, 0x55, sizeof r);
		for (int i = 0; i < 8; i++) {
			start[2 * i] = "0123456789abcdef"[r[i] >> 4];
			start[2 * i + 1] = "0123456789abcdef"[r[i] & 15];
		}
		start[16] = 0;
		cj__key_pending(&lo, a->type, 0, start);
		cj__key_pending_at(&hi, a->type, 0);
		cj__tup_range_end(&hi);
		rc = take_first(tx, a, &lo, &hi, found, first, data);
		if (rc == 0) {
			/* wrap around: from the first unscheduled job up to start */
			cj__buf_reset(&hi);
			cj__buf_add(&hi, lo.p, lo.len);
			cj__key_pending_at(&lo, a->type, 0);
			rc = take_first(tx, a, &lo, &hi, found, first, data);
		}
	} else {
		cj__key_pending_prefix(&lo, a->type);
		if (a->max_sched == INT64_MAX) {
			cj__key_pending_prefix(&hi, a->type);
			cj__tup_range_end(&hi);
		} else {
			cj__key_pending_at(&hi, a->type, a->max_sched + 1);
		}
		rc = take_first(tx, a, &lo, &hi, found, first, data);
		if (rc == 0 && a->max_sched != INT64_MAX && next_due) {
			/* nothing due: when is the next one? */
			cj_buf end = CJ_BUF_INIT, next = CJ_BUF_INIT;
			int64_t due;
			cj__key_pending_prefix(&end, a->type);
			cj__tup_range_end(&end);
			int n = cj__scan_first(tx, &hi, &end, &next);
			if (n == 1 && !(n = cj__key_pending_parse(next.p, next.len, &due, NULL)) &&
			    (*next_due < 0 || due < *next_due))
				*next_due = due;
			if (n < 0) rc = n;
			cj__buf_free(&end);
			cj__buf_free(&next);
		}
	}
	cj__buf_free(&lo);
	cj__buf_free(&hi);
	return rc;
}

/* A claim made before it is taken (accept_type). */
struct claimed {
	cj_buf key;
	cj_buf data; /* the job's data key when the claim holds it too, else empty */
	int rc;      /* find_candidate's */
};

static int stop_at_key(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                       void *arg) {
	(void)k, (void)kl, (void)v, (void)vl, (void)arg;
	return 1;
}

/* Holds the job's data key without waiting: 1 held, 0 held by another
 * transaction, or a code. The other writers of a job take its data key
 * first and its pending key after; an acceptor takes them the other way
 * round, so it must not wait here. */
static int claim_data(cj_tx *tx, const char *type, const char *id) {
	cj__key_data(&tx->kbuf, type, id);
	int rc = cj__claim_key(tx, &tx->kbuf);
	if (rc != 0) return rc;
	/* held by another, or missing: a look, which holds nothing, tells */
	rc = cj__scan_key(tx, &tx->kbuf, stop_at_key, NULL);
	if (rc == 0) return cj__fail(CJ_STORE, "corrupt store: pending job without data");
	return rc == 1 ? 0 : rc;
}

/* Room in a->jobs (and a->data) for one more job: arrays of less than
 * max entries double. CJ_OK or CJ_NOMEM. */
static int claim_room(cj_claim *a) {
	if (a->n < a->cap) return CJ_OK;
	size_t cap = a->cap ? a->cap * 2 : 1;
	if (cap > a->max) cap = a->max;
	cj_job **jobs = cj__realloc(a->jobs, cap * sizeof *jobs);
	if (!jobs) return cj__fail(CJ_NOMEM, "out of memory");
	a->jobs = jobs;
	if (a->data) {
		char **data = cj__realloc(a->data, cap * sizeof *data);
		if (!data) return cj__fail(CJ_NOMEM, "out of memory");
		a->data = data;
	}
	for (size_t i = a->cap; i < cap; i++) {
		a->jobs[i] = NULL;
		if (a->data) a->data[i] = NULL;
	}
	a->cap = cap;
	return CJ_OK;
}

/* Takes one pending job in tx into a->jobs[a->n]: CJ_OK, CJ_NOT_FOUND (none
 * due), CJ_CONFLICT (the candidate is busy) or a code. On success the
 * activity key is written with vs; the caller touches the type once.
 * claimed: what find_candidate() claimed already (found, and its 1 or 0),
 * or NULL. */
static int accept_one(cj_tx *tx, cj_claim *a, uint8_t vs[CJ_VS_LEN],
                      const struct claimed *claimed) {
	cj_buf found = CJ_BUF_INIT, copy = CJ_BUF_INIT;
	char *id = NULL;
	cj_job *job = NULL;
	int rc = claim_room(a);
	if (rc) return rc;
	rc = claimed ? claimed->rc : find_candidate(tx, a, &found, cj__claim_first, NULL, NULL);
	if (claimed) cj__buf_add(&found, claimed->key.p, claimed->key.len);
	if (found.oom) rc = cj__fail(CJ_NOMEM, "out of memory");
	if (rc == 0) {
		rc = CJ_NOT_FOUND;
		goto out;
	}
	if (rc < 0 || (rc = cj__key_pending_parse(found.p, found.len, NULL, &id))) goto out;
	/* held already when the claim took it too */
	int held = 0;
	if (claimed && claimed->data.len) {
		cj__key_data(&tx->kbuf, a->type, id);
		held = tx->kbuf.len == claimed->data.len &&
		       memcmp(tx->kbuf.p, claimed->data.p, tx->kbuf.len) == 0;
	}
	if (!held && (rc = claim_data(tx, a->type, id)) != 1) {
		/* another transaction holds the job (an add, a resubmit, a remove):
		 * never wait for it while holding its pending key */
		if (rc == 0) {
			a->busy = 1;
			rc = cj__fail(CJ_CONFLICT, "job %.60s is busy", id);
		}
		goto out;
	}
	/* found is held by this transaction since the claim above: it is there */
	if ((rc = cj__del_blind(tx, &found))) goto out;
	cj_jv jv;
	rc = cj__job_read(tx, a->type, id, &copy, &jv);
	if (rc == CJ_NOT_FOUND) rc = cj__fail(CJ_STORE, "corrupt store: pending job without data");
	if (rc) goto out;
	const cj_jv old = jv;

	if (!(job = cj__calloc(1, sizeof *job)) || !(job->type = cj__strdup(a->type))) {
		rc = cj__fail(CJ_NOMEM, "out of memory");
		goto out;
	}
	job->id = id;
	id = NULL;
	if ((rc = cj__uuid_new(job->lock)) || (rc = cj__tx_vs(tx, vs))) goto out;
	cj__uuid_format(job->lock, job->lock_str);
	jv.has_lock = 1;
	memcpy(jv.lock, job->lock, CJ_UUID_LEN);
	jv.has_seq = 1;
	memcpy(jv.seq, vs, CJ_VS_LEN);
	jv.resubmit = 0;
	job->resubmit = 0;
	/* the fencing token: the commit number of this acceptance. The job's
	 * data key is held from before the number was taken, and its previous
	 * acceptance committed before that: the number is larger */
	uint64_t version = 0;
	for (int i = 0; i < 8; i++) version = version << 8 | vs[i];
	job->fence = version;
	jv.fence = version > INT64_MAX ? INT64_MAX : (int64_t)version;
	jv.attempt = cj__add_sat(jv.attempt, 1);
	jv.finished_ms = 0;
	if ((rc = cj__job_write(tx, a->type, job->id, &old, &jv, NULL, 0)) ||
	    (rc = cj__job_activity_put(tx, a->type, job->id, vs)))
		goto out;
	if (a->data && (rc = cj__jv_data(&jv, &a->data[a->n]))) goto out;
	a->jobs[a->n++] = job;
	job = NULL;
out:
	cj_job_free(job);
	cj_free(id);
	cj__buf_free(&found);
	cj__buf_free(&copy);
	return rc;
}

void cj__claim_undo(cj_claim *a) {
	for (size_t i = 0; i < a->n; i++) {
		cj_job_free(a->jobs[i]);
		a->jobs[i] = NULL;
		if (a->data) {
			cj_free(a->data[i]);
			a->data[i] = NULL;
		}
	}
	a->n = 0;
}

/* Up to a->max jobs of a->type into a->jobs: CJ_OK (max reached),
 * CJ_NOT_FOUND (none left), CJ_CONFLICT with a->busy (the next is busy),
 * or a code. Touches the type when it took any. */
static int accept_type(cj_tx *tx, cj_claim *a) {
	uint8_t vs[CJ_VS_LEN];
	size_t first = a->n;
	cj_lim_look look;
	struct claimed early = {CJ_BUF_INIT, CJ_BUF_INIT, -1}, *claimed = NULL;
	int rc = CJ_OK;
	if (a->claim_at_once) {
		/* the first claim goes in one round trip with the limits' read,
		 * and takes the job's data key with its pending key: made first,
		 * and left unused (held until the transaction ends) when the
		 * limits allow none */
		if ((rc = cj__limits_prefetch(tx, a->type)) ||
		    (rc = early.rc = find_candidate(tx, a, &early.key, cj__claim_first, &early.data,
		                                    NULL)) < 0)
			goto free_claim;
		claimed = &early;
	}
	if ((rc = cj__limits_look(tx, a->type, 1, &look))) goto free_claim;
	if (look.allow == 0) {
		note_limited(a, &look);
		rc = CJ_NOT_FOUND; /* as if it had none: the next type's turn */
		goto free_claim;
	}
	while (a->n < a->max) {
		if ((int64_t)(a->n - first) == look.allow) {
			rc = CJ_NOT_FOUND; /* its limits allow no more */
			break;
		}
		a->busy = 0;
		rc = accept_one(tx, a, vs, claimed);
		claimed = NULL;
		if (rc) break;
	}
	/* only a batch that is kept touches the type: after any other failure
	 * the transaction is abandoned, and the engine may refuse every
	 * further op on it (LMDB after a full map), which would turn a failure
	 * that running again cures into one it does not */
	if (a->n > first && (rc == CJ_OK || rc == CJ_NOT_FOUND || (rc == CJ_CONFLICT && a->busy))) {
		int t = cj__touch_activity(tx, a->type, vs);
		if (!t) t = cj__limits_take(tx, a->type, &look, (int64_t)(a->n - first));
		if (t) rc = t;
	}
free_claim:
	cj__buf_free(&early.key);
	cj__buf_free(&early.data);
	return rc;
}

static int probe_fn(cj_tx *tx, void *arg);

/* Up to a->max jobs in one transaction, from the types in their order
 * (run again from scratch on a retry). */
static int accept_fn(cj_tx *tx, void *arg) {
	cj_claim *a = arg;
	int rc = CJ_NOT_FOUND;
	cj__claim_undo(a);
	for (size_t i = 0; i < a->ntypes && rc == CJ_NOT_FOUND; i++) {
		a->type = a->types[i];
		a->ti = i;
		rc = accept_type(tx, a);
	}
	/* none left, or a later candidate is busy: the batch ends there (a
	 * busy first candidate is a conflict: the type keeps its priority) */
	if (a->n > 0 && (rc == CJ_NOT_FOUND || (rc == CJ_CONFLICT && a->busy))) rc = CJ_OK;
	if (rc) cj__claim_undo(a);
	if (rc == CJ_NOT_FOUND && a->claim_at_once) {
		/* nothing taken: is a due job held by others, when is the next? */
		int look = probe_fn(tx, a);
		a->seen = look == CJ_OK;
		if (look != CJ_OK && look != CJ_NOT_FOUND) rc = look;
	}
	return rc;
}

int cj__claim_op(cj_tx *tx, cj_claim *c) { return accept_fn(tx, c); }

/* The claim of a in a write transaction of its own: combined with other
 * processes' calls where it can be (combine.c), else as cj__run runs it. */
static int claim(cj_db *db, cj_claim *a) {
	cj_op_call c = {CJ_OP_ACCEPT, NULL, NULL, NULL, 0, 0, 0, {0}, 0, a};
	int rc;
	if (cj__combine_run(db, &c, &rc)) return rc;
	return cj__run(db, NULL, 1, accept_fn, a);
}

/* A look that takes nothing: CJ_OK when some type has a due job its
 * limits let be taken; else CJ_NOT_FOUND with a->next_due, a->full and
 * a->next_token. Made first in a read-only transaction, so that idle
 * acceptors never take the writer's turn; or, where the engine's writers
 * run side by side, after a claim that took nothing. */
static int probe_fn(cj_tx *tx, void *arg) {
	cj_claim *a = arg;
	int rc = 0;
	a->next_due = -1;
	a->next_token = -1;
	memset(a->full, 0, sizeof a->full);
	for (size_t i = 0; i < a->ntypes && rc == 0; i++) {
		cj_buf found = CJ_BUF_INIT;
		cj_lim_look look;
		a->type = a->types[i];
		a->ti = i;
		rc = find_candidate(tx, a, &found, cj__scan_first, NULL, &a->next_due);
		cj__buf_free(&found);
		if (rc == 1 && (rc = cj__limits_look(tx, a->type, 0, &look)) == CJ_OK) {
			if (look.allow > 0) rc = 1;
			else note_limited(a, &look);
		}
	}
	return rc == 1 ? CJ_OK : rc == 0 ? CJ_NOT_FOUND : rc;
}

static int check_opts(const cj_accept_opts *opts) {
	if (opts->no_schedule && opts->max_sched_time != CJ_SCHED_NOW)
		return cj__fail(CJ_INVALID, "no_schedule with an explicit max_sched_time");
	if (opts->timeout_ms < -1)
		return cj__fail(CJ_INVALID, "timeout_ms %lld below -1", (long long)opts->timeout_ms);
	if (opts->max_sched_time != CJ_SCHED_NOW && opts->max_sched_time != CJ_SCHED_ANY &&
	    opts->max_sched_time < 0)
		return cj__fail(CJ_INVALID, "negative max_sched_time");
	return CJ_OK;
}

/* A fired cancellation wakes the acceptor: a bump of the first type's
 * channels (it waits on one of the two). */
struct accept_poke_arg {
	cj_db *db;
	const char *chan, *run_chan;
};

static void accept_poke(void *arg) {
	struct accept_poke_arg *p = arg;
	cj__wake(p->db, p->chan);
	cj__wake(p->db, p->run_chan);
}

/* 1 if some channel's word moved past its token: a notification came. */
static int notified(cj_db *db, const char *const *chans, const uint64_t *tokens, size_t n) {
	for (size_t i = 0; i < n; i++)
		if (cj__watch(db, chans[i]) != tokens[i]) return 1;
	return 0;
}

/* Hands on a wake-up this acceptor took and will not turn into a job: a
 * commit that made a job pending woke one acceptor, perhaps this one for
 * another type sharing its wake word, or for a job another acceptor took
 * first. Every acceptor that has not looked since then wakes and looks.
 * chans are the channels it slept on: a full type's run-ended channel may
 * share its word with another type's pending one, whose wake-up it took. */
static void pass_on(cj_db *db, const char *const *chans, size_t n) {
	for (size_t i = 0; i < n; i++) cj__rouse(db, chans[i]);
}

/* Hands on the wake-ups an acceptor that took jobs may hold beside the
 * one it used: a sleep on the words of several types is woken by one, and
 * until it has run the kernel counts it as woken by the others too (their
 * wake of one sleeper each goes to it, and none to another acceptor). So
 * the words of the types it took no job of that moved since it slept
 * (chans, tokens) are roused; an acceptor that has looked since sleeps on. */
static void pass_on_untaken(cj_db *db, const cj_claim *a, const char *const *chans,
                            const uint64_t *tokens) {
	for (size_t i = 0; i < a->ntypes; i++) {
		int took = 0;
		for (size_t k = 0; k < a->n && !took; k++)
			took = strcmp(a->jobs[k]->type, a->types[i]) == 0;
		if (!took && cj__watch(db, chans[i]) != tokens[i]) cj__rouse(db, chans[i]);
	}
}

/* Sleeps until a notification on chans, wake_at, or a fired cancel: 1
 * when notified, else 0. On an engine that rouses (engine.h) it goes back
 * to sleep after a wake-up that brought none (a rouse, a spurious one);
 * on others every wake-up is a reason to look (the engine may wake its
 * waiters to look again when it cannot tell what changed). */
static int sleep_until_notified(cj_db *db, const cj_accept_opts *opts,
                                const char *const *chans, const uint64_t *tokens,
                                size_t n, int64_t wake_at) {
	for (;;) {
		int rc = cj__wait_any(db, chans, tokens, n, wake_at);
		if (notified(db, chans, tokens, n)) {
			atomic_fetch_add_explicit(&db->acceptor_wakes, 1, memory_order_relaxed);
			return 1;
		}
		if (rc == CJ_TIMEOUT || !db->eng->rouse || cj_cancel_fired(opts->cancel) ||
		    (wake_at >= 0 && cj__mono_ms() >= wake_at))
			return 0;
	}
}

/* Waits until a takes at least one job, or the timeout passes. chans are
 * the types' pending channels, run_chans their run-ended channels: a
 * type whose limits leave no free slot waits on the latter instead. An
 * acceptor woken by a notification owes it (one job made pending wakes one
 * acceptor): until it takes a job, it hands the wake-up on before it
 * sleeps again or returns; having taken jobs, it hands on those of the
 * other types it slept on (pass_on_untaken). */
static int accept_loop(cj_db *db, const cj_accept_opts *opts, cj_claim *a,
                       const char *const *chans, const char *const *run_chans) {
	int64_t deadline = cj__deadline_ms(opts->timeout_ms);
	uint64_t tokens[CJ_ACCEPT_TYPES_MAX], run_tokens[CJ_ACCEPT_TYPES_MAX];
	const char *wait_chans[CJ_ACCEPT_TYPES_MAX];
	uint64_t wait_tokens[CJ_ACCEPT_TYPES_MAX];
	int owed = 0, rc;
	/* Where a look comes before the claim (no CJ_ENGINE_CLAIM_AT_ONCE), it
	 * keeps idle acceptors from taking the writer's turn; but while jobs
	 * are there to take (the handle's last claim took one, or a job made
	 * pending just woke this acceptor) it is a read-only transaction and
	 * two reads spent on every accept: the claim goes first then, and the
	 * look follows only if it took nothing. */
	int eager = atomic_load_explicit(&db->claim_took, memory_order_relaxed);
	for (;;) {
		for (size_t i = 0; i < a->ntypes; i++) {
			tokens[i] = cj__watch(db, chans[i]);
			run_tokens[i] = cj__watch(db, run_chans[i]);
		}
		if (cj_cancel_fired(opts->cancel)) {
			rc = cj__fail(CJ_CANCELED, "the accept was cancelled");
			break;
		}
		int64_t now_ms = cj__epoch_ms();
		a->max_sched = opts->max_sched_time == CJ_SCHED_NOW ? now_ms / 1000
		                                                    : opts->max_sched_time;
		int seen = 0;
		if (a->claim_at_once) {
			a->seen = 0;
			rc = claim(db, a);
			seen = a->seen;
		} else {
			rc = eager ? claim(db, a) : CJ_NOT_FOUND;
			if (rc == CJ_NOT_FOUND) {
				rc = cj__run(db, NULL, 0, probe_fn, a);
				seen = rc == CJ_OK;
				if (rc == CJ_OK) rc = claim(db, a);
			}
		}
		eager = rc == CJ_OK;
		if (atomic_load_explicit(&db->claim_took, memory_order_relaxed) != eager)
			atomic_store_explicit(&db->claim_took, eager, memory_order_relaxed);
		if (rc == CJ_OK) {
			if (owed && a->ntypes > 1 && db->eng->rouse)
				pass_on_untaken(db, a, wait_chans, wait_tokens);
			return CJ_OK;
		}
		cj__claim_undo(a); /* taken, but the commit failed: nothing was taken */
		if (rc != CJ_NOT_FOUND) break;
		int64_t wake_at = deadline;
		if (a->next_due >= 0 && opts->max_sched_time == CJ_SCHED_NOW) {
			/* a little after the second starts, so that clocks read with a
			 * coarse time() agree the job is due */
			int64_t wait = cj__add_sat(cj__mul_sat(a->next_due, 1000), 10 - now_ms);
			int64_t due = cj__add_sat(cj__mono_ms(), wait);
			if (wake_at < 0 || due < wake_at) wake_at = due;
		}
		if (a->next_token >= 0) {
			/* out of tokens: until the next is due */
			int64_t due = cj__add_sat(cj__mono_ms(), cj__add_sat(a->next_token, 1 - now_ms));
			if (wake_at < 0 || due < wake_at) wake_at = due;
		}
		if (seen) {
			/* the look found a job that the accept did not get: another
			 * acceptor took it, or holds it and may yet give it back
			 * without a commit that would wake us: look again soon */
			int64_t soon = cj__add_sat(cj__mono_ms(), CJ_ACCEPT_RELOOK_MS);
			if (wake_at < 0 || soon < wake_at) wake_at = soon;
		}
		if (deadline >= 0 && cj__mono_ms() >= deadline) {
			if (a->ntypes == 1)
				rc = cj__fail(CJ_NOT_FOUND, "no job of type \"%.60s\" available",
				              a->types[0]);
			else
				rc = cj__fail(CJ_NOT_FOUND, "no job of type \"%.60s\" or %zu other "
				              "types available", a->types[0], a->ntypes - 1);
			break;
		}
		/* on the words the wake-up came by (the last sleep's) */
		if (owed) pass_on(db, wait_chans, a->ntypes);
		for (size_t i = 0; i < a->ntypes; i++) {
			/* a full type's new jobs cannot be taken: wait for a slot */
			wait_chans[i] = a->full[i] ? run_chans[i] : chans[i];
			wait_tokens[i] = a->full[i] ? run_tokens[i] : tokens[i];
		}
		cj__fault_hold_here(CJ_HOLD_ACCEPT_SLEEP);
		owed = sleep_until_notified(db, opts, wait_chans, wait_tokens, a->ntypes, wake_at);
		eager = owed;
	}
	if (owed) pass_on(db, wait_chans, a->ntypes);
	return rc;
}

static int accept_wait(cj_db *db, const cj_accept_opts *opts, cj_claim *a) {
	char buf[CJ_ACCEPT_TYPES_MAX][CJ_CHAN_MAX], run_buf[CJ_ACCEPT_TYPES_MAX][CJ_CHAN_MAX];
	const char *chans[CJ_ACCEPT_TYPES_MAX], *run_chans[CJ_ACCEPT_TYPES_MAX];
	for (size_t i = 0; i < a->ntypes; i++) {
		cj__chan_pending(buf[i], sizeof buf[i], a->types[i]);
		chans[i] = buf[i];
		cj__chan_running(run_buf[i], sizeof run_buf[i], a->types[i]);
		run_chans[i] = run_buf[i];
	}
	if (!opts->cancel) return accept_loop(db, opts, a, chans, run_chans);
	struct accept_poke_arg pa = {db, chans[0], run_chans[0]};
	cj_cancel_hook hook = {NULL, NULL, accept_poke, &pa};
	cj__cancel_hook(opts->cancel, &hook);
	int rc = accept_loop(db, opts, a, chans, run_chans);
	cj__cancel_unhook(opts->cancel, &hook);
	return rc;
}

int cj_accept(cj_db *db, const char *type, const cj_accept_opts *opts, cj_job **job,
              char **data) {
	return cj_accept_types(db, &type, 1, opts, job, data);
}

int cj_accept_many(cj_db *db, const char *type, const cj_accept_opts *opts, size_t max,
                   cj_job **jobs, char **data, size_t *n) {
	return cj_accept_many_types(db, &type, 1, opts, max, jobs, data, n);
}

int cj_accept_types(cj_db *db, const char *const *types, size_t ntypes,
                    const cj_accept_opts *opts, cj_job **job, char **data) {
	size_t n;
	if (job) *job = NULL;
	if (data) *data = NULL;
	if (!job) return cj__fail(CJ_INVALID, "NULL argument");
	return cj_accept_many_types(db, types, ntypes, opts, 1, job, data, &n);
}

int cj_accept_many_types(cj_db *db, const char *const *types, size_t ntypes,
                         const cj_accept_opts *opts, size_t max, cj_job **jobs, char **data,
                         size_t *n) {
	cj_accept_opts defaults = CJ_ACCEPT_OPTS_INIT;
	if (n) *n = 0;
	if (!db || !jobs || !n || !types) return cj__fail(CJ_INVALID, "NULL argument");
	if (max < 1 || max > CJ_ACCEPT_MAX)
		return cj__fail(CJ_INVALID, "max %zu is not within 1..%d", max, CJ_ACCEPT_MAX);
	for (size_t i = 0; i < max; i++) {
		jobs[i] = NULL;
		if (data) data[i] = NULL;
	}
	if (ntypes < 1 || ntypes > CJ_ACCEPT_TYPES_MAX)
		return cj__fail(CJ_INVALID, "%zu types is not within 1..%d", ntypes,
		                CJ_ACCEPT_TYPES_MAX);
	int rc;
	for (size_t i = 0; i < ntypes; i++)
		if ((rc = cj__check_type(types[i]))) return rc;
	if (!opts) opts = &defaults;
	if ((rc = check_opts(opts))) return rc;
	if (cj__tx_held(db))
		return cj__fail(CJ_INVALID, "this thread holds an open transaction on this store");
	cj_claim a = {types, ntypes, types[0], 0, 0, opts->no_schedule, max, jobs,
	              data, 0, 0, -1, {0}, -1, 0, 0, max};
	a.claim_at_once = (db->eng->supports & CJ_ENGINE_CLAIM_AT_ONCE) != 0;
	if ((rc = accept_wait(db, opts, &a))) return rc;
	*n = a.n;
	return CJ_OK;
}

/* ---- the monitor's rescue of a lost wake-up ---------------------------------- */

struct stranded_arg {
	const char *type;
	uint64_t hash; /* of the first due pending key; 0: none */
};

static int stranded_fn(cj_tx *tx, void *arg) {
	struct stranded_arg *s = arg;
	cj_buf lo = CJ_BUF_INIT, hi = CJ_BUF_INIT, found = CJ_BUF_INIT;
	cj__key_pending_prefix(&lo, s->type);
	cj__key_pending_at(&hi, s->type, cj__epoch_ms() / 1000 + 1);
	int rc = cj__scan_first(tx, &lo, &hi, &found);
	s->hash = 0;
	if (rc == 1) {
		uint32_t h = cj__fnv(CJ_FNV_SEED, found.p, found.len);
		s->hash = h ? h : 1;
		rc = CJ_OK;
	}
	cj__buf_free(&lo);
	cj__buf_free(&hi);
	cj__buf_free(&found);
	return rc;
}

/* A job made pending wakes one acceptor (engine.h, notify_one); if that
 * acceptor dies before it looks or hands the wake-up on, the job would
 * wait for the next change of its type. The monitor calls this at each
 * check of a type: when the first due pending job is the one it found at
 * the last check, every acceptor that has not looked since it was made
 * pending wakes and looks (acceptors that have looked sleep on). A job
 * whose acceptors are all busy costs one read per check, and no wake-up. */
int cj__accept_rescue(cj_db *db, const char *type, uint64_t *mark) {
	if (!db->eng->rouse) return CJ_OK;
	struct stranded_arg s = {type, 0};
	int rc = cj__run(db, NULL, 0, stranded_fn, &s);
	if (rc) return rc;
	if (s.hash && s.hash == *mark) {
		char chan[CJ_CHAN_MAX];
		cj__chan_pending(chan, sizeof chan, type);
		cj__rouse(db, chan);
	}
	*mark = s.hash;
	return CJ_OK;
}
