/*
 * Group commit across processes: the calls of several processes sharing an
 * embedded store, made without a caller's transaction, run in one write
 * transaction of whichever process leads, so that they share one durable
 * flush (LMDB lets one process write at a time, and a durable commit
 * flushes under its lock: alone, every process's commit waits for the
 * flushes of all the others).
 *
 * A call that can be described as data (cj_op_call: cj_add/cj_add_ex,
 * cj_update, cj_finish, cj_fail, cj_resubmit, and the claim of cj_accept
 * and its variants) is posted into a slot of memory shared by the store's
 * processes (engine.h's shared: the store's
 * "combine" file), its arguments copied in. The poster then either leads
 * (nobody does) or sleeps on its slot's state word until a leader has run
 * it. A leader opens one write transaction, takes its own call and every
 * call posted meanwhile (oldest first), and runs each decoded call with the
 * very code a local run uses (cj__add_op, cj__job_op, cj__claim_op) in a
 * transaction nested in its own, as group.c does: a call that fails on its
 * own aborts its nested transaction only; a failure of the store ends the
 * batch and the calls after it run alone. With each call that succeeds and
 * writes it writes the call's receipt (engine.h's receipt_put: a random tag
 * of the call, per slot) in the same nested transaction. It writes each
 * call's result into its slot, hands the lead to the oldest call still
 * posted (which then
 * builds the next batch while this one flushes), commits once, and then
 * publishes: each slot is marked done and its poster woken. The poster
 * takes its result (and cj_last_error() detail, and a job handle's
 * resubmit flag) from the slot.
 *
 * A claim (cj_claim) travels as its types, in order of priority, and its
 * options (max, max_sched, no_schedule, whether data is wanted); its wait
 * stays with its caller, outside any transaction (accept.c). The leader
 * runs it with accept.c's own claim, and writes into the slot, after the
 * types, each job it took (its type's index, lock, fence, id and data),
 * and what the caller's loop reads (busy, seen, next_due, next_token, the
 * full types), all before its commit. Claims whose jobs do not fit are
 * undone (their nested transaction aborted) and run alone. A poster
 * killed after its claim committed holds its jobs as any dead processor
 * does: they come back after their type's timeout.
 *
 * Threads of one process are just more
 * posters; calls that cannot be described as data (or do not fit a slot,
 * or find none free) go to group.c's queue of the handle, as before.
 *
 * Processes are named in the file by their owner ids (os.h: a lock the
 * kernel drops when the process dies, seen from every PID namespace), not
 * by their process ids: a dead process's id taken by another, or a live
 * process in another PID namespace, is never mistaken for the other.
 *
 * Crashes (kill -9 of any process at any point):
 *  - A process dies holding the slots' lock (a word holding its owner id):
 *    the next to want it sees the id gone and takes it over. Every update
 *    under the lock leaves the slots consistent at each step.
 *  - A leader dies before its commit: LMDB drops its transaction. Its
 *    posters, waking every CJ_XC_CHECK_MS to look, see it gone: a call
 *    still posted finds a new leader (or leads); a call it had taken reads
 *    its slot's receipt, finds another tag, and runs again alone.
 *  - A leader dies after its commit, before publishing: the poster of a
 *    taken call finds its own tag in the receipt: its call committed, with
 *    the result the leader wrote into the slot before the commit. It makes
 *    the commit durable (engine.h's sync) before it returns.
 *  - A poster dies: its slot is reclaimed once no live leader holds it;
 *    a call that ran is as if its process had died just after a call of
 *    its own.
 * Wake-ups: the nested transactions' marks are the batch's; its commit
 * bumps every word any of its calls marked, as their own commits would.
 */
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cj_int.h"
#include "os/os.h"

#define CJ_XC_SLOTS 64
#define CJ_XC_ARGS 8192     /* a call's type, id and data with their NULs */
#define CJ_XC_MAGIC 0x636a7802u /* "cjx" and the layout of this file, 2 */
/* Layout 1 (before claims were combined) held the first 563,224 bytes of
 * the file: where its processes hold the start, this layout's area
 * follows them (to a page), so that processes of both combine, each with
 * its own kind, while a store's programs are upgraded. Their leaders
 * write the receipts of their slots 0 .. 63 in the same store: a receipt
 * of this area's slot i is then written as number CJ_XC_SLOTS + i too,
 * which only this area's leaders write (a dead leader's commit read
 * through number i alone could be taken for another's, and its calls
 * run twice). Number i is still written and read, for the processes of
 * this layout that know no other. */
#define CJ_XC_MAGIC_1 0x636a7801u
#define CJ_XC_AFTER_1 565248
#define CJ_XC_CHECK_MS 100  /* a poster looks at its leader this often */
#define CJ_XC_SPINS 64      /* yields before sleeping on the slots' lock */

enum {
	XS_FREE = 0,
	XS_MINE,   /* its poster fills it */
	XS_POSTED, /* waits for a leader */
	XS_LEAD,   /* its poster leads the next batch */
	XS_TAKEN,  /* a leader (taker) runs it */
	XS_DONE,   /* rc, err, resubmit (a claim's jobs) are its result */
	XS_ALONE,  /* its poster runs it otherwise */
	XS_CHECK   /* its poster reads the receipt of a dead leader */
};

struct xc_slot {
	_Atomic uint32_t state; /* XS_*, a futex word */
	int32_t pid;            /* the poster (owner ids, as every id here) */
	int32_t taker;          /* the leader that took it */
	int32_t op;
	uint64_t seq;           /* order of posting */
	uint64_t tag;           /* its receipt */
	int64_t sched;
	int32_t unique, resubmit, has_data, rc;
	int32_t batch, mixed;   /* calls in its batch; of several processes */
	uint32_t tlen, ilen, dlen;
	uint8_t lock[CJ_UUID_LEN];
	/* CJ_OP_ACCEPT: the claim's types are the first tlen bytes of args
	 * (ntypes strings, in order of priority); the jobs it took follow
	 * them (rlen bytes: claim_put). In, and out as the claim leaves them:
	 * busy, seen, next_due, next_token, full (bit i: types[i]) */
	int32_t ntypes, max, no_schedule, want_data, claim_at_once;
	int32_t n, busy, seen;
	uint32_t rlen;
	int64_t max_sched, next_due, next_token;
	uint64_t full;
	char err[CJ_ERROR_MAX];
	char args[CJ_XC_ARGS];
};

_Static_assert(CJ_ACCEPT_TYPES_MAX <= 64, "a claim's full types fit in a slot's word");

struct cj_xarea {
	_Atomic uint32_t magic;
	_Atomic uint32_t mu;      /* the process holding the lock; 0 */
	_Atomic uint32_t mu_sleepers;
	_Atomic int32_t leader;   /* the process leading; 0 none */
	uint64_t next_seq;        /* under mu */
	struct xc_slot slot[CJ_XC_SLOTS];
};

/* doc/format.md gives this layout */
_Static_assert(offsetof(struct cj_xarea, next_seq) == 16 &&
               offsetof(struct cj_xarea, slot) == 24, "the combine file's layout");

/* fault-injection builds: where a leader of other processes' calls kills
 * itself (CJ_TEST_COMBINE_KILL: "commit" before its commit, "publish"
 * after it), for the crash tests; and CJ_TEST_COMBINE_NOSYNC=1: a poster
 * whose leader died answers from the receipt without a flush (the
 * power-loss test shows that it loses the call) */
static int kill_at, nosync;

/* This process's owner id in the file, and whether process id is alive
 * (the handle's claim, looked up once: cj__combine_start). */
static int32_t self(const cj_db *db) { return (int32_t)cj__os_owner(db->group.xowner); }
static int alive(const cj_db *db, int32_t id) {
	return cj__os_owner_alive(db->group.xowner, (uint32_t)id);
}

void cj__combine_start(cj_db *db) {
	void *p;
	db->group.xarea = NULL;
	db->group.xafter = 0;
	const struct cj_engine *e = db->eng;
	if (!db->group.on || !e->shared || !e->receipt_put || !e->receipt_get || !e->sync)
		return;
	if (e->shared(db->edb, CJ_XC_AFTER_1 + sizeof(struct cj_xarea), &p) != CJ_OK) {
		cj__clear_error(); /* the handle's own queue still combines */
		return;
	}
	struct cj_xarea *x = p;
	uint32_t m = 0;
	if (!atomic_compare_exchange_strong(&x->magic, &m, CJ_XC_MAGIC) && m != CJ_XC_MAGIC) {
		if (m != CJ_XC_MAGIC_1)
			return; /* another layout: its processes combine among themselves */
		x = (struct cj_xarea *)((char *)p + CJ_XC_AFTER_1);
		m = 0;
		if (!atomic_compare_exchange_strong(&x->magic, &m, CJ_XC_MAGIC) && m != CJ_XC_MAGIC)
			return;
		db->group.xafter = 1;
	}
	db->group.xarea = x;
	db->group.xowner = cj__os_owner_of(x);
#ifdef CJ_FAULT_INJECTION
	const char *k = getenv("CJ_TEST_COMBINE_KILL");
	kill_at = !k ? 0 : strcmp(k, "commit") == 0 ? 1 : strcmp(k, "publish") == 0 ? 2 : 0;
	k = getenv("CJ_TEST_COMBINE_NOSYNC");
	nosync = k && strcmp(k, "1") == 0;
#endif
}

/* ---- the slots' lock ---------------------------------------------------- */

static void mu_lock(const cj_db *db) {
	struct cj_xarea *x = db->group.xarea;
	uint32_t me = (uint32_t)self(db);
	for (int spin = 0;; spin++) {
		uint32_t owner = 0;
		if (atomic_compare_exchange_strong(&x->mu, &owner, me)) return;
		if (spin < CJ_XC_SPINS) {
			sched_yield();
			continue;
		}
		if (!alive(db, (int32_t)owner)) {
			/* died holding it: every step under it left the slots whole */
			if (atomic_compare_exchange_strong(&x->mu, &owner, me)) return;
			continue;
		}
		atomic_fetch_add(&x->mu_sleepers, 1);
		cj__os_futex_wait(&x->mu, owner, CJ_XC_CHECK_MS);
		atomic_fetch_sub(&x->mu_sleepers, 1);
	}
}

static void mu_unlock(struct cj_xarea *x) {
	atomic_store(&x->mu, 0);
	if (atomic_load(&x->mu_sleepers)) cj__os_futex_wake(&x->mu);
}

static void set_state(struct xc_slot *s, uint32_t state) {
	atomic_store(&s->state, state);
	cj__os_futex_wake(&s->state);
}

/* A free slot, or one whose poster died and no live leader holds, now
 * XS_MINE of me: its index, or -1. Lock held. */
static int slot_take(const cj_db *db, int32_t me) {
	struct cj_xarea *x = db->group.xarea;
	int found = -1;
	for (int i = 0; i < CJ_XC_SLOTS && found < 0; i++)
		if (atomic_load(&x->slot[i].state) == XS_FREE) found = i;
	for (int i = 0; i < CJ_XC_SLOTS && found < 0; i++) {
		struct xc_slot *s = &x->slot[i];
		uint32_t st = atomic_load(&s->state);
		if (s->pid == me || alive(db, s->pid)) continue;
		if (st == XS_TAKEN && alive(db, s->taker)) continue;
		found = i;
	}
	if (found >= 0) {
		x->slot[found].pid = me;
		atomic_store(&x->slot[found].state, XS_MINE);
	}
	return found;
}

/* Hands the lead to the oldest call posted by a live process, or to
 * nobody. Lock held. The slot is marked before the leader's word names its
 * process: killed between the two, this process leaves the word as it
 * was, naming the process leading (itself, dead now: a poster takes the
 * lead over, or another leader's batch takes its call). The other way
 * round, the word would name a live process whose call waits as posted,
 * and every poster (that one too: it trusts a word naming its own
 * process) would wait for a leader that never comes. */
static void hand_on(const cj_db *db) {
	struct cj_xarea *x = db->group.xarea;
	struct xc_slot *next = NULL;
	for (int i = 0; i < CJ_XC_SLOTS; i++) {
		struct xc_slot *s = &x->slot[i];
		if (atomic_load(&s->state) == XS_POSTED && (!next || s->seq < next->seq) &&
		    alive(db, s->pid))
			next = s;
	}
	if (next) set_state(next, XS_LEAD);
	cj__fault_hold_here(CJ_HOLD_COMBINE_HAND_ON);
	atomic_store(&x->leader, next ? next->pid : 0);
}

/* ---- the leader ---------------------------------------------------------- */

/* A failure that may come from the batch rather than from the call. */
static int store_failure(int rc) {
	return rc == CJ_CONFLICT || rc == CJ_TOO_LARGE || rc == CJ_NOMEM || rc == CJ_STORE;
}

static void slot_result(struct xc_slot *s, int rc) {
	s->rc = rc;
	snprintf(s->err, sizeof s->err, "%s", cj_last_error());
}

/* ---- a claim's results in its slot ----------------------------------------- */

static void put(char **p, const void *v, size_t len) {
	memcpy(*p, v, len);
	*p += len;
}

static int get(const char **p, const char *end, void *v, size_t len) {
	if ((size_t)(end - *p) < len) return -1;
	memcpy(v, *p, len);
	*p += len;
	return 0;
}

/* Writes what claim c found into slot s, and the jobs it took (each: its
 * type's index, lock, fence, id and data) after the types: 0, or -1 if
 * they do not fit. */
static int claim_put(struct xc_slot *s, const cj_claim *c) {
	char *p = s->args + s->tlen, *end = s->args + CJ_XC_ARGS;
	s->n = (int32_t)c->n;
	s->busy = c->busy;
	s->seen = c->seen;
	s->next_due = c->next_due;
	s->next_token = c->next_token;
	s->full = 0;
	for (size_t t = 0; t < c->ntypes; t++)
		if (c->full[t]) s->full |= (uint64_t)1 << t;
	for (size_t k = 0; k < c->n; k++) {
		const cj_job *job = c->jobs[k];
		uint8_t ti = 0;
		while (ti < c->ntypes - 1 && strcmp(c->types[ti], job->type) != 0) ti++;
		uint32_t il = (uint32_t)strlen(job->id);
		uint32_t dl = c->data ? (uint32_t)strlen(c->data[k]) : 0;
		if ((size_t)(end - p) < 1 + CJ_UUID_LEN + 8 + 4 + il + 4 + dl) return -1;
		put(&p, &ti, 1);
		put(&p, job->lock, CJ_UUID_LEN);
		put(&p, &job->fence, 8);
		put(&p, &il, 4);
		put(&p, job->id, il);
		put(&p, &dl, 4);
		put(&p, c->data ? c->data[k] : "", dl);
	}
	s->rlen = (uint32_t)(p - (s->args + s->tlen));
	return 0;
}

/* Reads into c what the claim of slot s found and took (c->jobs and
 * c->data, c's to free): CJ_OK or a code (then c holds no job). */
static int claim_get(const struct xc_slot *s, cj_claim *c) {
	const char *p = s->args + s->tlen, *end = p + s->rlen;
	int rc = CJ_OK;
	c->busy = s->busy;
	c->seen = s->seen;
	c->next_due = s->next_due;
	c->next_token = s->next_token;
	for (size_t t = 0; t < c->ntypes; t++) c->full[t] = (s->full >> t) & 1;
	cj__claim_undo(c);
	if (s->rc != CJ_OK) return CJ_OK;
	if (s->rlen > CJ_XC_ARGS - s->tlen || s->n < 0 || (size_t)s->n > c->max)
		return cj__fail(CJ_STORE, "corrupt combine slot: its claim's result");
	for (int32_t k = 0; k < s->n && !rc; k++) {
		uint8_t ti;
		uint32_t il, dl;
		cj_job *job = cj__calloc(1, sizeof *job);
		if (!job) {
			rc = cj__fail(CJ_NOMEM, "out of memory");
			break;
		}
		c->jobs[c->n++] = job;
		if (get(&p, end, &ti, 1) || ti >= c->ntypes || get(&p, end, job->lock, CJ_UUID_LEN) ||
		    get(&p, end, &job->fence, 8) || get(&p, end, &il, 4) || il > CJ_MAX_ID ||
		    (size_t)(end - p) < il) {
			rc = cj__fail(CJ_STORE, "corrupt combine slot: its claim's result");
			break;
		}
		job->id = cj__strndup(p, il);
		p += il;
		job->type = cj__strdup(c->types[ti]);
		cj__uuid_format(job->lock, job->lock_str);
		if (get(&p, end, &dl, 4) || (size_t)(end - p) < dl) {
			rc = cj__fail(CJ_STORE, "corrupt combine slot: its claim's result");
			break;
		}
		if (!job->id || !job->type || (c->data && !(c->data[k] = cj__strndup(p, dl))))
			rc = cj__fail(CJ_NOMEM, "out of memory");
		p += dl;
	}
	if (rc) cj__claim_undo(c);
	return rc;
}

/* ---- the leader: one slot's call ------------------------------------------ */

/* The call of slot s as data, in c (and, for a claim, cl with types):
 * 0, or -1 if the slot does not hold a call. The slot is any process's
 * to write: a bad one ends the batch, and its poster runs its call alone. */
static int slot_call(struct xc_slot *s, cj_op_call *c, cj_claim *cl,
                     const char *types[CJ_ACCEPT_TYPES_MAX]) {
	*c = (cj_op_call){s->op, s->args, s->args + s->tlen, NULL, s->dlen, s->sched,
	                  s->unique, {0}, s->resubmit, NULL};
	memcpy(c->lock, s->lock, CJ_UUID_LEN);
	if (!s->tlen || s->tlen > CJ_XC_ARGS || s->args[s->tlen - 1]) return -1;
	if (s->op == CJ_OP_ACCEPT) {
		if (s->ilen || s->ntypes < 1 || s->ntypes > CJ_ACCEPT_TYPES_MAX || s->max < 1 ||
		    s->max > CJ_ACCEPT_MAX)
			return -1;
		size_t n = 0;
		for (const char *t = s->args; t < s->args + s->tlen; t += strlen(t) + 1) {
			if (n == (size_t)s->ntypes || !*t || strlen(t) > CJ_MAX_TYPE) return -1;
			types[n++] = t;
		}
		if (n != (size_t)s->ntypes) return -1;
		*cl = (cj_claim){types, n, types[0], 0, s->max_sched, s->no_schedule,
		                 (size_t)s->max, NULL, NULL, 0, s->busy, s->next_due, {0},
		                 s->next_token, s->claim_at_once, s->seen};
		for (size_t t = 0; t < n; t++) cl->full[t] = (s->full >> t) & 1;
		c->id = c->type = NULL;
		c->claim = cl;
		return 0;
	}
	if (s->op < CJ_OP_ADD || s->op > CJ_OP_RESUBMIT || !s->ilen || s->ilen > CJ_XC_ARGS ||
	    s->dlen >= CJ_XC_ARGS ||
	    s->tlen + s->ilen + (s->has_data ? s->dlen + 1 : 0) > CJ_XC_ARGS ||
	    s->args[s->tlen + s->ilen - 1])
		return -1;
	if (s->has_data) c->data = s->args + s->tlen + s->ilen;
	return 0;
}

/* Runs the call of slot i in a transaction nested in tx, with its receipt:
 * its result, in the slot unless it is a failure of the store (then
 * nothing of it is in tx). A claim whose jobs do not fit the slot is
 * undone, *alone set: its poster runs it alone. */
static int run_slot(cj_db *db, cj_tx *tx, struct cj_xarea *x, int i, int *alone) {
	struct xc_slot *s = &x->slot[i];
	const char *types[CJ_ACCEPT_TYPES_MAX];
	cj_op_call c;
	cj_claim cl;
	if (slot_call(s, &c, &cl, types)) return cj__fail(CJ_STORE, "corrupt combine slot %d", i);
	if (c.claim && s->want_data && !(cl.data = cj__calloc(1, sizeof *cl.data)))
		return cj__fail(CJ_NOMEM, "out of memory"); /* wanted; grown with jobs */
	cj_tx *sub;
	cj__clear_error();
	int rc = cj__tx_nest(tx, &sub);
	if (rc) goto free_claim;
	switch (c.op) {
	case CJ_OP_ADD: rc = cj__add_op(sub, &c); break;
	case CJ_OP_ACCEPT: rc = cj__claim_op(sub, &cl); break;
	default: rc = cj__job_op(sub, &c); break;
	}
	if (rc == CJ_OK) rc = cj__tx_receipt(sub, (unsigned)i, s->tag);
	if (rc == CJ_OK && db->group.xafter)
		rc = cj__tx_receipt(sub, CJ_XC_SLOTS + (unsigned)i, s->tag);
	if (rc == CJ_OK && c.claim && claim_put(s, &cl)) {
		*alone = 1; /* its jobs do not fit: as if it had not run */
		cj__tx_nest_abort(sub);
		goto free_claim;
	}
	if (c.claim && rc != CJ_OK) {
		cj__claim_undo(&cl);
		claim_put(s, &cl); /* what it found; no job */
	}
	if (rc == CJ_OK) rc = cj__tx_nest_commit(sub);
	else cj__tx_nest_abort(sub);
	if (!store_failure(rc)) {
		slot_result(s, rc);
		s->resubmit = c.resubmit;
	}
free_claim:
	if (c.claim) {
		cj__claim_undo(&cl);
		cj_free(cl.jobs);
		cj_free(cl.data);
	}
	return rc;
}

/* Leads one batch, starting with slot own (XS_LEAD, the caller's). */
static void lead(cj_db *db, struct cj_xarea *x, int own) {
	int32_t me = self(db);
	int batch[CJ_XC_SLOTS], alone[CJ_XC_SLOTS] = {0}, n = 0, ran, mixed = 0;
	cj_tx *tx;
	cj__fault_hold_here(CJ_HOLD_COMBINE_LEAD);
	cj__clear_error();
	int rc = cj__tx_new(db, 1, &tx);
	mu_lock(db);
	if (rc) {
		atomic_store(&x->slot[own].state, XS_ALONE);
		hand_on(db);
		mu_unlock(x);
		return;
	}
	batch[n++] = own;
	for (;;) { /* the calls posted, oldest first */
		int next = -1;
		for (int i = 0; i < CJ_XC_SLOTS; i++)
			if (atomic_load(&x->slot[i].state) == XS_POSTED &&
			    (next < 0 || x->slot[i].seq < x->slot[next].seq))
				next = i;
		if (next < 0) break;
		x->slot[next].taker = me;
		atomic_store(&x->slot[next].state, XS_TAKEN);
		batch[n++] = next;
	}
	x->slot[own].taker = me;
	atomic_store(&x->slot[own].state, XS_TAKEN);
	mu_unlock(x);
	for (int i = 1; i < n; i++) mixed |= x->slot[batch[i]].pid != x->slot[own].pid;
	for (ran = 0; ran < n; ran++)
		if (store_failure(run_slot(db, tx, x, batch[ran], &alone[ran]))) break;
	cj__fault_hold_here(CJ_HOLD_COMBINE_RAN);
	mu_lock(db);
	hand_on(db);
	mu_unlock(x);
	if (kill_at == 1 && mixed) raise(SIGKILL);
	cj__clear_error();
	rc = cj__tx_commit(tx);
	if (kill_at == 2 && mixed && rc == CJ_OK) raise(SIGKILL);
	for (int i = 0; i < n; i++) {
		struct xc_slot *s = &x->slot[batch[i]];
		if (i >= ran || alone[i] || (rc && (s->rc != CJ_OK || rc == CJ_CONFLICT))) {
			set_state(s, XS_ALONE);
			continue;
		}
		if (rc) slot_result(s, rc);
		s->batch = ran;
		s->mixed = mixed;
		set_state(s, XS_DONE);
	}
}

/* ---- the poster ------------------------------------------------------------ */

/* After a wait on slot i in state st that nothing ended: leads if nobody
 * does, or settles a call whose leader died. */
static void look(cj_db *db, struct cj_xarea *x, int i, uint32_t st) {
	struct xc_slot *s = &x->slot[i];
	int32_t me = self(db);
	mu_lock(db);
	if (atomic_load(&s->state) != st) {
		st = XS_FREE; /* it moved: nothing to do */
	} else if (st == XS_POSTED) {
		int32_t l = atomic_load(&x->leader);
		if (l == 0 || !alive(db, l)) {
			atomic_store(&x->leader, me);
			atomic_store(&s->state, XS_LEAD);
		}
	} else if (st == XS_TAKEN && !alive(db, s->taker)) {
		atomic_store(&s->state, XS_CHECK);
	}
	mu_unlock(x);
	if (atomic_load(&s->state) != XS_CHECK) return;
	/* the leader died: did its commit land, with this call? */
	cj__fault_hold_here(CJ_HOLD_COMBINE_CHECK);
	uint64_t tag = 0;
	int rc = CJ_OK;
	if (db->group.xafter) rc = db->eng->receipt_get(db->edb, CJ_XC_SLOTS + (unsigned)i, &tag);
	if (rc == CJ_OK && tag != s->tag) rc = db->eng->receipt_get(db->edb, (unsigned)i, &tag);
	if (rc == CJ_OK && tag != s->tag) {
		atomic_store(&s->state, XS_ALONE); /* it did not: run it again */
		return;
	}
	/* the dead leader's commit may not be flushed yet: the answer waits for
	 * a flush (with the engine's log: of the log holding its record) */
	if (rc == CJ_OK && !nosync) rc = db->eng->sync(db->edb);
	if (rc) {
		slot_result(s, cj__fail(rc, "the process that ran this call with others died, "
		                        "and whether it committed is unknown: %s", cj_last_error()));
		s->batch = 1;
	}
	atomic_store(&s->state, XS_DONE);
}

/* Copies the call c into slot s (XS_MINE): 0, or -1 if it does not fit. */
static int slot_fill(struct xc_slot *s, const cj_op_call *c) {
	const cj_claim *cl = c->claim;
	size_t tl = 0, il = 0, dl = 0;
	if (cl) {
		for (size_t t = 0; t < cl->ntypes; t++) tl += strlen(cl->types[t]) + 1;
	} else {
		tl = strlen(c->type) + 1;
		il = strlen(c->id) + 1;
		dl = c->data ? c->dlen + 1 : 0;
	}
	if (tl + il + dl > CJ_XC_ARGS) return -1;
	s->op = c->op;
	s->sched = c->sched;
	s->unique = c->unique;
	s->resubmit = c->resubmit;
	s->has_data = c->data != NULL;
	s->tlen = (uint32_t)tl;
	s->ilen = (uint32_t)il;
	s->dlen = (uint32_t)c->dlen;
	memcpy(s->lock, c->lock, CJ_UUID_LEN);
	if (cl) {
		char *p = s->args;
		for (size_t t = 0; t < cl->ntypes; t++)
			put(&p, cl->types[t], strlen(cl->types[t]) + 1);
		s->ntypes = (int32_t)cl->ntypes;
		s->max = (int32_t)cl->max;
		s->no_schedule = cl->no_schedule;
		s->want_data = cl->data != NULL;
		s->claim_at_once = cl->claim_at_once;
		s->max_sched = cl->max_sched;
		s->rlen = 0;
		claim_put(s, cl); /* what it knows already, in */
		return 0;
	}
	memcpy(s->args, c->type, tl);
	memcpy(s->args + tl, c->id, il);
	if (c->data) {
		memcpy(s->args + tl + il, c->data, c->dlen);
		s->args[tl + il + c->dlen] = 0;
	}
	return 0;
}

int cj__combine_run(cj_db *db, cj_op_call *c, int *rc) {
	struct cj_xarea *x = db->group.xarea;
	uint64_t tag;
	if (!x || cj__tx_held(db) || cj__random(&tag, sizeof tag) != CJ_OK) return 0;
	int32_t me = self(db);
	mu_lock(db);
	int i = slot_take(db, me);
	mu_unlock(x);
	if (i < 0) return 0;
	struct xc_slot *s = &x->slot[i];
	if (slot_fill(s, c)) {
		atomic_store(&s->state, XS_FREE);
		return 0;
	}
	s->tag = tag ? tag : 1;
	s->batch = s->mixed = 0;
	mu_lock(db);
	s->seq = ++x->next_seq;
	int32_t l = atomic_load(&x->leader);
	if (l == 0 || (l != me && !alive(db, l))) {
		atomic_store(&x->leader, me);
		atomic_store(&s->state, XS_LEAD);
	} else {
		atomic_store(&s->state, XS_POSTED);
	}
	mu_unlock(x);
	if (atomic_load(&s->state) != XS_LEAD) cj__fault_hold_here(CJ_HOLD_COMBINE_POSTED);
	uint32_t st;
	for (;;) {
		st = atomic_load(&s->state);
		if (st == XS_DONE || st == XS_ALONE) break;
		if (st == XS_LEAD) {
			lead(db, x, i);
			continue;
		}
		cj__os_futex_wait(&s->state, st, CJ_XC_CHECK_MS);
		if (atomic_load(&s->state) == st) look(db, x, i, st);
	}
	if (st == XS_DONE) {
		/* the detail the call left, as if this thread had run it */
		*rc = cj__fail(s->rc, "%s", s->err);
		c->resubmit = s->resubmit;
		if (c->claim) {
			int got = claim_get(s, c->claim);
			if (got) *rc = got; /* taken, but lost here: back after the timeout */
		}
		if (s->batch > 1)
			atomic_fetch_add_explicit(&db->group.combined, 1, memory_order_relaxed);
		if (s->mixed)
			atomic_fetch_add_explicit(&db->group.xcombined, 1, memory_order_relaxed);
	}
	atomic_store(&s->state, XS_FREE);
	return st == XS_DONE;
}
