/*
 * Group commit: the own write transactions of several threads of one
 * handle combined into one commit, so that they share one durable flush.
 *
 * A call of cj__run without a caller's transaction (cj_add, the claim of
 * cj_accept, cj_finish, ... with tx NULL) joins the handle's queue. The
 * first to find nobody leading becomes the leader: it takes up to
 * CJ_GROUP_MAX calls from the head of the queue (its own first), opens one
 * write transaction, runs each call in a transaction nested in it
 * (engine.h), commits once and hands each caller its result and its
 * cj_last_error() detail. Calls that arrive meanwhile wait in the queue;
 * when the batch is done the leader hands the lead to the first of them
 * and returns. A batch of one is an ordinary transaction of its own.
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

/* A batch of one: one try of cj__run's own transaction. */
static void run_one(cj_db *db, cj_call *c) {
	cj_tx *tx;
	cj__clear_error();
	int rc = cj__tx_new(db, 1, &tx);
	if (rc == CJ_OK) {
		rc = c->fn(tx, c->arg);
		if (rc == CJ_OK) rc = cj__tx_commit(tx);
		else cj__tx_abort(tx);
	}
	if (rc == CJ_CONFLICT) c->alone = 1; /* its retries do not hold the lead */
	else call_set(c, rc);
}

static void run_batch(cj_db *db, cj_call **calls, int n) {
	cj_tx *tx;
	int i, rc;
	cj__clear_error();
	if (cj__tx_new(db, 1, &tx) != CJ_OK) {
		for (i = 0; i < n; i++) calls[i]->alone = 1;
		return;
	}
	for (i = 0; i < n; i++) {
		cj_call *c = calls[i];
		cj_tx *sub;
		cj__clear_error();
		if (cj__tx_nest(tx, &sub) != CJ_OK) break;
		rc = c->fn(sub, c->arg);
		if (rc == CJ_OK) rc = cj__tx_nest_commit(sub);
		else cj__tx_nest_abort(sub);
		if (store_failure(rc)) break;
		call_set(c, rc);
	}
	int ran = i;
	for (; i < n; i++) calls[i]->alone = 1;
	cj__clear_error();
	rc = cj__tx_commit(tx);
	for (i = 0; i < ran; i++) {
		cj_call *c = calls[i];
		if (rc && (c->rc != CJ_OK || rc == CJ_CONFLICT)) c->alone = 1;
		else if (rc) call_set(c, rc);
	}
	if (rc == CJ_OK && ran > 1)
		atomic_fetch_add_explicit(&db->group.combined, (uint64_t)ran,
		                          memory_order_relaxed);
}

/* Leads one batch from the head of the queue (the leader's own call, c,
 * first), then hands the lead on. Called and returns with the mutex held. */
static void lead(cj_db *db, cj_call *c) {
	cj_group *g = &db->group;
	cj_call *batch[CJ_GROUP_MAX];
	int n = 0;
	while (g->head && n < CJ_GROUP_MAX) {
		batch[n++] = g->head;
		g->head = g->head->next;
	}
	if (!g->head) g->tail = NULL;
	pthread_mutex_unlock(&g->mu);
	if (n == 1) run_one(db, c);
	else run_batch(db, batch, n);
	pthread_mutex_lock(&g->mu);
	for (int i = 0; i < n; i++) {
		batch[i]->state = CALL_DONE;
		if (batch[i] != c) pthread_cond_signal(&batch[i]->cond);
	}
	if (g->head) {
		g->head->state = CALL_LEAD;
		pthread_cond_signal(&g->head->cond);
	} else {
		g->leading = 0;
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
	*rc = c.rc == CJ_OK ? CJ_OK : cj__fail(c.rc, "%s", c.err);
	return 1;
}
