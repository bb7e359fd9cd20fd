/*
 * Group commit across processes: the calls of several processes sharing an
 * embedded store, made without a caller's transaction, run in one write
 * transaction of whichever process leads, so that they share one durable
 * flush (LMDB lets one process write at a time, and a durable commit
 * flushes under its lock: alone, every process's commit waits for the
 * flushes of all the others).
 *
 * A call that can be described as data (cj_op_call: cj_add/cj_add_ex,
 * cj_update, cj_finish, cj_fail, cj_resubmit) is posted into a slot of
 * memory shared by the store's processes (engine.h's shared: the store's
 * "combine" file), its arguments copied in. The poster then either leads
 * (nobody does) or sleeps on its slot's state word until a leader has run
 * it. A leader opens one write transaction, takes its own call and every
 * call posted meanwhile (oldest first), and runs each decoded call with the
 * very code a local run uses (cj__add_op, cj__job_op) in a transaction
 * nested in its own, as group.c does: a call that fails on its own aborts
 * its nested transaction only; a failure of the store ends the batch and
 * the calls after it run alone. With each call that succeeds and writes
 * it writes the call's receipt (engine.h's receipt_put: a random tag of
 * the call, per slot) in the same nested transaction. It writes each call's result into
 * its slot, hands the lead to the oldest call still posted (which then
 * builds the next batch while this one flushes), commits once, and then
 * publishes: each slot is marked done and its poster woken. The poster
 * takes its result (and cj_last_error() detail, and a job handle's
 * resubmit flag) from the slot. Threads of one process are just more
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
#define CJ_XC_CHECK_MS 100  /* a poster looks at its leader this often */
#define CJ_XC_SPINS 64      /* yields before sleeping on the slots' lock */

enum {
	XS_FREE = 0,
	XS_MINE,   /* its poster fills it */
	XS_POSTED, /* waits for a leader */
	XS_LEAD,   /* its poster leads the next batch */
	XS_TAKEN,  /* a leader (taker) runs it */
	XS_DONE,   /* rc, err and resubmit are its result */
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
	char err[CJ_ERROR_MAX];
	char args[CJ_XC_ARGS];
};

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
 * after it), for the crash tests */
static int kill_at;

/* This process's owner id in the file, and whether process id is alive. */
static int32_t self(const struct cj_xarea *x) { return (int32_t)cj__os_owner(x); }
static int alive(const struct cj_xarea *x, int32_t id) {
	return cj__os_owner_alive(x, (uint32_t)id);
}

void cj__combine_start(cj_db *db) {
	void *p;
	db->group.xarea = NULL;
	const struct cj_engine *e = db->eng;
	if (!db->group.on || !e->shared || !e->receipt_put || !e->receipt_get || !e->sync)
		return;
	if (e->shared(db->edb, sizeof(struct cj_xarea), &p) != CJ_OK) {
		cj__clear_error(); /* the handle's own queue still combines */
		return;
	}
	struct cj_xarea *x = p;
	uint32_t m = 0;
	if (!atomic_compare_exchange_strong(&x->magic, &m, CJ_XC_MAGIC) && m != CJ_XC_MAGIC)
		return; /* another layout: its processes combine among themselves */
	db->group.xarea = x;
#ifdef CJ_FAULT_INJECTION
	const char *k = getenv("CJ_TEST_COMBINE_KILL");
	kill_at = !k ? 0 : strcmp(k, "commit") == 0 ? 1 : strcmp(k, "publish") == 0 ? 2 : 0;
#endif
}

/* ---- the slots' lock ---------------------------------------------------- */

static void mu_lock(struct cj_xarea *x) {
	uint32_t me = (uint32_t)self(x);
	for (int spin = 0;; spin++) {
		uint32_t owner = 0;
		if (atomic_compare_exchange_strong(&x->mu, &owner, me)) return;
		if (spin < CJ_XC_SPINS) {
			sched_yield();
			continue;
		}
		if (!alive(x, (int32_t)owner)) {
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
static int slot_take(struct cj_xarea *x, int32_t me) {
	int found = -1;
	for (int i = 0; i < CJ_XC_SLOTS && found < 0; i++)
		if (atomic_load(&x->slot[i].state) == XS_FREE) found = i;
	for (int i = 0; i < CJ_XC_SLOTS && found < 0; i++) {
		struct xc_slot *s = &x->slot[i];
		uint32_t st = atomic_load(&s->state);
		if (s->pid == me || alive(x, s->pid)) continue;
		if (st == XS_TAKEN && alive(x, s->taker)) continue;
		found = i;
	}
	if (found >= 0) {
		x->slot[found].pid = me;
		atomic_store(&x->slot[found].state, XS_MINE);
	}
	return found;
}

/* Hands the lead to the oldest call posted by a live process, or to
 * nobody. Lock held. */
static void hand_on(struct cj_xarea *x) {
	struct xc_slot *next = NULL;
	for (int i = 0; i < CJ_XC_SLOTS; i++) {
		struct xc_slot *s = &x->slot[i];
		if (atomic_load(&s->state) == XS_POSTED && (!next || s->seq < next->seq) &&
		    alive(x, s->pid))
			next = s;
	}
	atomic_store(&x->leader, next ? next->pid : 0);
	if (next) set_state(next, XS_LEAD);
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

/* Runs the call of slot i in a transaction nested in tx, with its receipt:
 * its result, in the slot unless it is a failure of the store (then
 * nothing of it is in tx). */
static int run_slot(cj_tx *tx, struct cj_xarea *x, int i) {
	struct xc_slot *s = &x->slot[i];
	/* the slot is any process's to write: a bad one ends the batch, and
	 * its poster runs its call alone */
	if (s->op < CJ_OP_ADD || s->op > CJ_OP_RESUBMIT || !s->tlen || !s->ilen ||
	    s->tlen > CJ_XC_ARGS || s->ilen > CJ_XC_ARGS || s->dlen >= CJ_XC_ARGS ||
	    s->tlen + s->ilen + (s->has_data ? s->dlen + 1 : 0) > CJ_XC_ARGS ||
	    s->args[s->tlen - 1] || s->args[s->tlen + s->ilen - 1])
		return cj__fail(CJ_STORE, "corrupt combine slot %d", i);
	const char *data = s->has_data ? s->args + s->tlen + s->ilen : NULL;
	cj_op_call c = {s->op, s->args, s->args + s->tlen, data, s->dlen, s->sched,
	                s->unique, {0}, s->resubmit};
	memcpy(c.lock, s->lock, CJ_UUID_LEN);
	cj_tx *sub;
	cj__clear_error();
	int rc = cj__tx_nest(tx, &sub);
	if (rc) return rc;
	rc = c.op == CJ_OP_ADD ? cj__add_op(sub, &c) : cj__job_op(sub, &c);
	if (rc == CJ_OK) rc = cj__tx_receipt(sub, (unsigned)i, s->tag);
	if (rc == CJ_OK) rc = cj__tx_nest_commit(sub);
	else cj__tx_nest_abort(sub);
	if (!store_failure(rc)) {
		slot_result(s, rc);
		s->resubmit = c.resubmit;
	}
	return rc;
}

/* Leads one batch, starting with slot own (XS_LEAD, the caller's). */
static void lead(cj_db *db, struct cj_xarea *x, int own) {
	int32_t me = self(x);
	int batch[CJ_XC_SLOTS], n = 0, ran, mixed = 0;
	cj_tx *tx;
	cj__clear_error();
	int rc = cj__tx_new(db, 1, &tx);
	mu_lock(x);
	if (rc) {
		atomic_store(&x->slot[own].state, XS_ALONE);
		hand_on(x);
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
		if (store_failure(run_slot(tx, x, batch[ran]))) break;
	mu_lock(x);
	hand_on(x);
	mu_unlock(x);
	if (kill_at == 1 && mixed) raise(SIGKILL);
	cj__clear_error();
	rc = cj__tx_commit(tx);
	if (kill_at == 2 && mixed && rc == CJ_OK) raise(SIGKILL);
	for (int i = 0; i < n; i++) {
		struct xc_slot *s = &x->slot[batch[i]];
		if (i >= ran || (rc && (s->rc != CJ_OK || rc == CJ_CONFLICT))) {
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
	int32_t me = self(x);
	mu_lock(x);
	if (atomic_load(&s->state) != st) {
		st = XS_FREE; /* it moved: nothing to do */
	} else if (st == XS_POSTED) {
		int32_t l = atomic_load(&x->leader);
		if (l == 0 || !alive(x, l)) {
			atomic_store(&x->leader, me);
			atomic_store(&s->state, XS_LEAD);
		}
	} else if (st == XS_TAKEN && !alive(x, s->taker)) {
		atomic_store(&s->state, XS_CHECK);
	}
	mu_unlock(x);
	if (atomic_load(&s->state) != XS_CHECK) return;
	/* the leader died: did its commit land, with this call? */
	uint64_t tag;
	int rc = db->eng->receipt_get(db->edb, (unsigned)i, &tag);
	if (rc == CJ_OK && tag != s->tag) {
		atomic_store(&s->state, XS_ALONE); /* it did not: run it again */
		return;
	}
	if (rc == CJ_OK) rc = db->eng->sync(db->edb);
	if (rc) {
		slot_result(s, cj__fail(rc, "the process that ran this call with others died, "
		                        "and whether it committed is unknown: %s", cj_last_error()));
		s->batch = 1;
	}
	atomic_store(&s->state, XS_DONE);
}

int cj__combine_run(cj_db *db, cj_op_call *c, int *rc) {
	struct cj_xarea *x = db->group.xarea;
	if (!x || cj__tx_held(db)) return 0;
	size_t tl = strlen(c->type) + 1, il = strlen(c->id) + 1;
	size_t dl = c->data ? c->dlen + 1 : 0;
	uint64_t tag;
	if (tl + il + dl > CJ_XC_ARGS || cj__random(&tag, sizeof tag) != CJ_OK) return 0;
	int32_t me = self(x);
	mu_lock(x);
	int i = slot_take(x, me);
	mu_unlock(x);
	if (i < 0) return 0;
	struct xc_slot *s = &x->slot[i];
	s->op = c->op;
	s->tag = tag ? tag : 1;
	s->sched = c->sched;
	s->unique = c->unique;
	s->resubmit = c->resubmit;
	s->has_data = c->data != NULL;
	s->tlen = (uint32_t)tl;
	s->ilen = (uint32_t)il;
	s->dlen = (uint32_t)c->dlen;
	memcpy(s->lock, c->lock, CJ_UUID_LEN);
	memcpy(s->args, c->type, tl);
	memcpy(s->args + tl, c->id, il);
	if (c->data) {
		memcpy(s->args + tl + il, c->data, c->dlen);
		s->args[tl + il + c->dlen] = 0;
	}
	s->batch = s->mixed = 0;
	mu_lock(x);
	s->seq = ++x->next_seq;
	int32_t l = atomic_load(&x->leader);
	if (l == 0 || (l != me && !alive(x, l))) {
		atomic_store(&x->leader, me);
		atomic_store(&s->state, XS_LEAD);
	} else {
		atomic_store(&s->state, XS_POSTED);
	}
	mu_unlock(x);
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
		if (s->batch > 1)
			atomic_fetch_add_explicit(&db->group.combined, 1, memory_order_relaxed);
		if (s->mixed)
			atomic_fetch_add_explicit(&db->group.xcombined, 1, memory_order_relaxed);
	}
	atomic_store(&s->state, XS_FREE);
	return st == XS_DONE;
}
