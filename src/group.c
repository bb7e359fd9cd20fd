/*
 * Group commit: the own write transactions of several threads of one
 * handle combined into one commit, so that they share one durable flush.
 *
 * A call of cj__run without a caller's transaction (cj_add, the claim of
 * cj_accept, cj_finish, ... with tx NULL) joins the handle's queue. The
 * first to find nobody leading becomes the leader: it opens one write
 * transaction (waiting, on the embedded engine, for the writer's turn),
 * then takes up to CJ_GROUP_MAX calls from the head of the queue (its own
 * first: every call queued while it waited joins), runs each in a
 * transaction nested in it (engine.h), hands the lead to the first call
 * still queued, commits once (one flush) and hands each caller its result
 * and its cj_last_error() detail. The next leader so builds its batch
 * while this one commits and flushes. A batch of one is an ordinary
 * transaction of its own, as without combining.
 *
 * A call's result is the one it would get alone, in the order of the
 * batch:
 *  - a call that fails on its own (CJ_HALT, CJ_NOT_FOUND, ...) aborts its
 *    nested transaction only: the calls before and after it are as if it
 *    had never run, as when it aborts alone;
 *  - a failure of the store rather than of the call (CJ_CONFLICT, such as
 *    a full map, CJ_TOO_LARGE, CJ_NOMEM, CJ_STORE) may come from the batch
 *    (a map or a transaction the others filled): the batch ends there, the
 *    calls before it are committed, and that call and those after it run
 *    again alone (cj__run's own loop, which retries conflicts);
 *  - if the batch's commit fails, nothing of it landed unless the engine
 *    says the commit's fate is unknown (CJ_STORE): the calls that had
 *    succeeded get the commit's code, as alone, except CJ_CONFLICT, which
 *    makes them run again alone; and every call that had failed on its own
 *    runs again alone, since what it read held the others' writes.
 * Wake-ups: the nested transactions' marks are the batch's, so its commit
 * bumps every word any of its calls marked, as their own commits would.
 * Versionstamps go on from one nested transaction to the next, so two
 * calls of one batch never share one.
 *
 * The calls that can be described as data (cj_add, cj_update, cj_finish,
 * cj_fail, cj_resubmit, the claim of cj_accept) go to combine.c first,
 * which combines them across processes and threads alike; this queue
 * takes the others (cj_remove, cj_set_type_timeout, ...) and those
 * combine.c hands back (no free slot, too large for one).
 *
 * Nothing here blocks for long: the claim of an accept is combined, not its
 * wait (that happens outside any transaction). A leader runs one batch and
 * hands over, so no thread leads forever; the queue is FIFO.
 */
#include <stdio.h>

#include "cj_int.h"

#define CJ_GROUP_MAX 64

enum { CALL_QUEUED, CALL_LEAD, CALL_DONE };

struct cj_call {
	int (*fn)(cj_tx *tx, void *arg);
	void *arg;
	int state;          /* CALL_*, under the group's mutex */
	int alone;          /* its caller must run it alone */
	int rc;             /* its result, unless alone */
	pthread_cond_t cond; /* signalled when state changes */
	cj_call *next;
	char err[CJ_ERROR_MAX]; /* cj_last_error() with rc */
};

int cj__group_init(cj_db *db) {
	if (pthread_mutex_init(&db->group.mu, NULL) != 0)
		return cj__fail(CJ_NOMEM, "cannot create the handle's group commit mutex");
	atomic_init(&db->group.combined, 0);
	return CJ_OK;
}

void cj__group_destroy(cj_db *db) { pthread_mutex_destroy(&db->group.mu); }

void cj__group_start(cj_db *db) {
	db->group.on = db->eng->begin_nested && db->opts.sync == CJ_SYNC_FULL &&
	               !cj__engine_readonly(db->eng, db->edb);
}

static void call_set(cj_call *c, int rc) {
	c->rc = rc;
	snprintf(c->err, sizeof c->err, "%s", cj_last_error());
}

/* A failure that may come from the batch rather than from the call. */
static int store_failure(int rc) {
	return rc == CJ_CONFLICT || rc == CJ_TOO_LARGE || rc == CJ_NOMEM || rc == CJ_STORE;
}

/* Runs the batch in tx: a batch of one right in it, as alone; more each
 * in a transaction nested in it. Returns how many ran; the calls after
 * them must run alone. */
static int run_calls(cj_tx *tx, cj_call **calls, int n) {
	int i;
	for (i = 0; i < n; i++) {
		cj_call *c = calls[i];
		cj__clear_error();
		if (n == 1) {
			call_set(c, c->fn(tx, c->arg));
			return 1;
		}
		cj_tx *sub;
		if (cj__tx_nest(tx, &sub) != CJ_OK) break;
		int rc = c->fn(sub, c->arg);
		if (rc == CJ_OK) rc = cj__tx_nest_commit(sub);
		else cj__tx_nest_abort(sub);
		if (store_failure(rc)) break;
		call_set(c, rc);
	}
	for (int j = i; j < n; j++) calls[j]->alone = 1;
	return i;
}

/* Commits what ran of the batch and settles each call's result. */
static void commit_calls(cj_db *db, cj_tx *tx, cj_call **calls, int n, int ran) {
	cj__clear_error();
	if (n == 1) { /* as cj__run's own loop: a conflict runs again */
		cj_call *c = calls[0];
		if (c->rc != CJ_OK) cj__tx_abort(tx);
		else call_set(c, cj__tx_commit(tx));
		if (c->rc == CJ_CONFLICT) c->alone = 1;
		return;
	}
	int rc = cj__tx_commit(tx);
	for (int i = 0; i < ran; i++) {
		cj_call *c = calls[i];
		if (rc && (c->rc != CJ_OK || rc == CJ_CONFLICT)) c->alone = 1;
		else if (rc) call_set(c, rc);
	}
	if (rc == CJ_OK && ran > 1)
		atomic_fetch_add_explicit(&db->group.combined, (uint64_t)ran,
		                          memory_order_relaxed);
}

/* Hands the lead to the first call waiting, if any. Mutex held. */
static void hand_on(cj_group *g) {
	if (g->head) {
		g->head->state = CALL_LEAD;
		pthread_cond_signal(&g->head->cond);
	} else {
		g->leading = 0;
	}
}

/* Leads one batch from the head of the queue (the leader's own call, c,
 * first). It takes the writer's turn first (the last batch may still be
 * committing), so that the calls that arrive meanwhile join the batch, and
 * hands the lead on before its commit, so that the next leader waits for
 * the writer while this batch commits and flushes. Called and returns
 * with the mutex held. */
static void lead(cj_db *db, cj_call *c) {
	cj_group *g = &db->group;
	cj_call *batch[CJ_GROUP_MAX];
	int n = 0, ran = 0;
	cj_tx *tx;
	pthread_mutex_unlock(&g->mu);
	cj__clear_error();
	int rc = cj__tx_new(db, 1, &tx);
	pthread_mutex_lock(&g->mu);
	while (g->head && n < CJ_GROUP_MAX) {
		batch[n++] = g->head;
		g->head = g->head->next;
	}
	if (!g->head) g->tail = NULL;
	pthread_mutex_unlock(&g->mu);
	if (rc == CJ_OK) ran = run_calls(tx, batch, n);
	else for (int i = 0; i < n; i++) batch[i]->alone = 1;
	pthread_mutex_lock(&g->mu);
	hand_on(g);
	pthread_mutex_unlock(&g->mu);
	if (rc == CJ_OK) commit_calls(db, tx, batch, n, ran);
	pthread_mutex_lock(&g->mu);
	for (int i = 0; i < n; i++) {
		batch[i]->state = CALL_DONE;
		if (batch[i] != c) pthread_cond_signal(&batch[i]->cond);
	}
}

int cj__group_run(cj_db *db, int (*fn)(cj_tx *tx, void *arg), void *arg, int *rc) {
	cj_group *g = &db->group;
	if (!g->on || cj__tx_held(db)) return 0;
	cj_call c = {.fn = fn, .arg = arg, .state = CALL_QUEUED};
	if (pthread_cond_init(&c.cond, NULL) != 0) return 0;
	pthread_mutex_lock(&g->mu);
	if (g->tail) g->tail->next = &c;
	else g->head = &c;
	g->tail = &c;
	if (!g->leading) {
		g->leading = 1;
		c.state = CALL_LEAD;
	}
	while (c.state == CALL_QUEUED) pthread_cond_wait(&c.cond, &g->mu);
	if (c.state == CALL_LEAD) lead(db, &c);
	pthread_mutex_unlock(&g->mu);
	pthread_cond_destroy(&c.cond);
	if (c.alone) return 0;
	/* the detail the call left, as if this thread had run it */
	*rc = cj__fail(c.rc, "%s", c.err);
	return 1;
}
