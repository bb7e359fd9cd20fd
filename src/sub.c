/*
 * Subscriptions and the notifier.
 *
 * The notifier is a thread of the cj_db, started by the first subscription.
 * Whenever a commit anywhere marks the activity channel (every change of a
 * job's state or data does), it reads each subscribed job and compares its
 * state and sequence with what it last delivered; a difference queues an
 * event. Reading the current state, rather than replaying changes, is what
 * lets events coalesce while never leaving a subscriber with a stale state.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "cj_int.h"

#define CJ_QUEUE_COALESCE 16 /* a longer queue merges same-state events */

struct ev_node {
	struct ev_node *next;
	cj_state state;
	char *data;
};

struct cj_sub {
	cj_db *db;
	char *type, *id;
	struct cj_sub *next; /* in the notifier's list */
	int ended;           /* a finished or removed event was queued */
	cj_state last;       /* last state seen */
	int has_seq;
	uint8_t seq[CJ_VS_LEN];
	struct ev_node *head, *tail;
	size_t queued;
	cj_cancel *cancel;    /* cj_sub_set_cancel(), or NULL */
	cj_cancel_hook hook;  /* on cancel */
};

struct cj_notifier {
	pthread_t thread;
	int stop;
	pthread_cond_t wake; /* a subscription was added, or stop */
	cj_sub *subs;
};

void cj_event_clear(cj_event *ev) {
	if (!ev) return;
	cj_free(ev->type);
	cj_free(ev->id);
	cj_free(ev->data);
	memset(ev, 0, sizeof *ev);
}

/* ---- reading a job's current state --------------------------------------- */

struct look_arg {
	const char *type, *id;
	int want_data;
	cj_state state; /* CJ_REMOVED if missing */
	int has_seq;
	uint8_t seq[CJ_VS_LEN];
	char *data;
};

static int look(cj_tx *tx, struct look_arg *a) {
	cj_buf copy = CJ_BUF_INIT;
	cj_jv jv;
	cj_free(a->data);
	a->data = NULL;
	int rc = cj__job_load(tx, a->type, a->id, &copy, &jv, &a->state);
	if (rc == CJ_NOT_FOUND) {
		a->state = CJ_REMOVED;
		a->has_seq = 0;
		rc = CJ_OK;
		goto out;
	}
	if (rc) goto out;
	a->has_seq = jv.has_seq;
	memcpy(a->seq, jv.seq, CJ_VS_LEN);
	if (a->want_data && !(a->data = cj__jv_data(&jv))) rc = cj__fail(CJ_NOMEM, "out of memory");
out:
	cj__buf_free(&copy);
	return rc;
}

static int look_fn(cj_tx *tx, void *arg) { return look(tx, arg); }

/* ---- the notifier --------------------------------------------------------- */

static int changed(const cj_sub *s, const struct look_arg *a) {
	if (s->last != a->state) return 1;
	if (s->has_seq != a->has_seq) return 1;
	return a->has_seq && memcmp(s->seq, a->seq, CJ_VS_LEN) != 0;
}

/* Queues an event, taking data. CJ_NOMEM, leaving data to the caller, when
 * there is no memory for it and no queued event to fold it into: the
 * caller must then look at the job again later, or the event is lost. */
static int queue_event(cj_sub *s, cj_state state, char *data) {
	if (s->tail && s->queued >= CJ_QUEUE_COALESCE && s->tail->state == state) {
		cj_free(s->tail->data);
		s->tail->data = data;
		return CJ_OK;
	}
	struct ev_node *e = cj__calloc(1, sizeof *e);
	if (!e) {
		if (!s->tail) return cj__fail(CJ_NOMEM, "out of memory");
		/* no memory for a new event: fold it into the last one */
		cj_free(s->tail->data);
		s->tail->data = data;
		s->tail->state = state;
		return CJ_OK;
	}
	e->state = state;
	e->data = data;
	if (s->tail) s->tail->next = e;
	else s->head = e;
	s->tail = e;
	s->queued++;
	return CJ_OK;
}

struct pass_arg {
	cj_db *db;
	int delivered;
};

/* One pass over every live subscription, in one read transaction, with the
 * db mutex held (so no subscription goes away meanwhile). */
static int pass_fn(cj_tx *tx, void *arg) {
	struct pass_arg *p = arg;
	cj_notifier *n = p->db->notifier;
	for (cj_sub *s = n->subs; s; s = s->next) {
		if (s->ended) continue;
		struct look_arg a = {s->type, s->id, 1, 0, 0, {0}, NULL};
		int rc = look(tx, &a);
		if (rc) {
			cj_free(a.data);
			return rc;
		}
		if (!changed(s, &a)) {
			cj_free(a.data);
			continue;
		}
		if (a.state == CJ_REMOVED) {
			cj_free(a.data);
			a.data = NULL;
		}
		/* what was delivered moves on only once the event is queued, so a
		 * failed pass is retried */
		if ((rc = queue_event(s, a.state, a.data))) {
			cj_free(a.data);
			return rc;
		}
		s->last = a.state;
		s->has_seq = a.has_seq;
		memcpy(s->seq, a.seq, CJ_VS_LEN);
		if (a.state == CJ_FINISHED || a.state == CJ_REMOVED) s->ended = 1;
		p->delivered = 1;
	}
	return CJ_OK;
}

static int has_live(const cj_notifier *n) {
	for (const cj_sub *s = n->subs; s; s = s->next)
		if (!s->ended) return 1;
	return 0;
}

static void *notifier_main(void *arg) {
	cj_db *db = arg;
	cj_notifier *n = db->notifier;
	int64_t retry = CJ_RETRY_MIN_MS;
	pthread_mutex_lock(&db->mu);
	while (!n->stop) {
		if (!has_live(n)) {
			pthread_cond_wait(&n->wake, &db->mu);
			continue;
		}
		uint64_t token = cj__watch(db, CJ_CHAN_ACTIVITY);
		struct pass_arg p = {db, 0};
		int rc = cj__run(db, NULL, 0, pass_fn, &p);
		if (p.delivered) pthread_cond_broadcast(&db->cond);
		pthread_mutex_unlock(&db->mu);
		/* on a store failure, look again in a while, less often while it
		 * stays down (an engine that reconnects wakes every channel) */
		if (!rc) retry = CJ_RETRY_MIN_MS;
		cj__wait(db, CJ_CHAN_ACTIVITY, token, rc ? cj__backoff(&retry) : -1);
		pthread_mutex_lock(&db->mu);
	}
	pthread_mutex_unlock(&db->mu);
	return NULL;
}

/* Starts the notifier if needed; db->mu held. */
static int notifier_start(cj_db *db) {
	if (db->notifier) return CJ_OK;
	cj_notifier *n = cj__calloc(1, sizeof *n);
	if (!n) return cj__fail(CJ_NOMEM, "out of memory");
	if (pthread_cond_init(&n->wake, NULL) != 0) {
		cj_free(n);
		return cj__fail(CJ_NOMEM, "cannot create the notifier's condition variable");
	}
	db->notifier = n;
	if (pthread_create(&n->thread, NULL, notifier_main, db) != 0) {
		pthread_cond_destroy(&n->wake);
		cj_free(n);
		db->notifier = NULL;
		return cj__fail(CJ_NOMEM, "cannot start the notifier thread");
	}
	return CJ_OK;
}

static void sub_free(cj_sub *s) {
	if (s->cancel) cj__cancel_unhook(s->cancel, &s->hook);
	while (s->head) {
		struct ev_node *e = s->head;
		s->head = e->next;
		cj_free(e->data);
		cj_free(e);
	}
	cj_free(s->type);
	cj_free(s->id);
	cj_free(s);
}

void cj__notifier_stop(cj_db *db) {
	pthread_mutex_lock(&db->mu);
	cj_notifier *n = db->notifier;
	if (!n) {
		pthread_mutex_unlock(&db->mu);
		return;
	}
	n->stop = 1;
	pthread_cond_signal(&n->wake);
	pthread_mutex_unlock(&db->mu);
	cj__wake(db, CJ_CHAN_ACTIVITY);
	pthread_join(n->thread, NULL);
	while (n->subs) { /* subscriptions left open are freed with the db */
		cj_sub *s = n->subs;
		n->subs = s->next;
		sub_free(s);
	}
	pthread_cond_destroy(&n->wake);
	cj_free(n);
	db->notifier = NULL;
}

/* ---- the public calls ----------------------------------------------------- */

int cj_subscribe(cj_db *db, const char *type, const char *id, cj_sub **sub,
                 cj_state *state, char **data) {
	if (sub) *sub = NULL;
	if (data) *data = NULL;
	if (!db || !sub) return cj__fail(CJ_INVALID, "NULL argument");
	int rc;
	if ((rc = cj__check_type(type)) || (rc = cj__check_id(id))) return rc;
	struct look_arg a = {type, id, data != NULL, 0, 0, {0}, NULL};
	if ((rc = cj__run(db, NULL, 0, look_fn, &a))) goto out_free;
	if (a.state == CJ_REMOVED) {
		rc = cj__fail(CJ_NOT_FOUND, "no such job");
		goto out_free;
	}
	if (state) *state = a.state;
	if (a.state == CJ_FINISHED) {
		if (data) *data = a.data;
		else cj_free(a.data);
		return CJ_OK;
	}
	cj_sub *s = cj__calloc(1, sizeof *s);
	if (!s || !(s->type = cj__strdup(type)) || !(s->id = cj__strdup(id))) {
		if (s) sub_free(s);
		rc = cj__fail(CJ_NOMEM, "out of memory");
		goto out_free;
	}
	s->db = db;
	s->last = a.state;
	s->has_seq = a.has_seq;
	memcpy(s->seq, a.seq, CJ_VS_LEN);
	pthread_mutex_lock(&db->mu);
	rc = notifier_start(db);
	if (rc == CJ_OK) {
		s->next = db->notifier->subs;
		db->notifier->subs = s;
		pthread_cond_signal(&db->notifier->wake);
	}
	pthread_mutex_unlock(&db->mu);
	if (rc) {
		sub_free(s);
		goto out_free;
	}
	/* the notifier may be asleep with an older token: make it look now */
	cj__wake(db, CJ_CHAN_ACTIVITY);
	*sub = s;
	if (data) *data = a.data;
	else cj_free(a.data);
	return CJ_OK;
out_free:
	cj_free(a.data);
	return rc;
}

int cj_unsubscribe(cj_sub *sub) {
	if (!sub) return CJ_OK;
	cj_db *db = sub->db;
	pthread_mutex_lock(&db->mu);
	for (cj_sub **p = &db->notifier->subs; *p; p = &(*p)->next)
		if (*p == sub) {
			*p = sub->next;
			break;
		}
	pthread_mutex_unlock(&db->mu);
	sub_free(sub);
	return CJ_OK;
}

/* A fired cancellation wakes cj_wait(). */
static void sub_poke(void *arg) {
	cj_db *db = arg;
	pthread_mutex_lock(&db->mu);
	pthread_cond_broadcast(&db->cond);
	pthread_mutex_unlock(&db->mu);
}

int cj_sub_set_cancel(cj_sub *sub, cj_cancel *c) {
	if (!sub) return cj__fail(CJ_INVALID, "NULL subscription");
	if (sub->cancel) cj__cancel_unhook(sub->cancel, &sub->hook);
	sub->hook = (cj_cancel_hook){NULL, NULL, sub_poke, sub->db};
	if (c) cj__cancel_hook(c, &sub->hook);
	pthread_mutex_lock(&sub->db->mu);
	sub->cancel = c;
	pthread_mutex_unlock(&sub->db->mu);
	return CJ_OK;
}

/* Takes the next event of s matching only_state; db->mu held. CJ_OK if ev
 * was filled, CJ_NOT_FOUND if there is none, CJ_NOMEM (the event stays
 * queued for the next call). */
static int take(cj_sub *s, int only_state, cj_event *ev) {
	while (s->head) {
		struct ev_node *e = s->head;
		int skip = only_state && (int)e->state != only_state;
		char *type = NULL, *id = NULL;
		if (!skip && (!(type = cj__strdup(s->type)) || !(id = cj__strdup(s->id)))) {
			cj_free(type);
			return CJ_NOMEM;
		}
		s->head = e->next;
		if (!s->head) s->tail = NULL;
		s->queued--;
		if (skip) {
			cj_free(e->data);
			cj_free(e);
			continue;
		}
		ev->sub = s;
		ev->state = e->state;
		ev->data = e->data;
		ev->type = type;
		ev->id = id;
		cj_free(e);
		return CJ_OK;
	}
	return CJ_NOT_FOUND;
}

int cj_wait(cj_sub *const *subs, size_t n, int only_state, int64_t timeout_ms,
            cj_event *ev) {
	if (ev) memset(ev, 0, sizeof *ev);
	if (!subs || n == 0 || !ev) return cj__fail(CJ_INVALID, "no subscriptions or no event");
	if (only_state < 0 || only_state > CJ_REMOVED)
		return cj__fail(CJ_INVALID, "unknown state %d", only_state);
	if (timeout_ms < -1) return cj__fail(CJ_INVALID, "timeout_ms below -1");
	for (size_t i = 0; i < n; i++) {
		if (!subs[i]) return cj__fail(CJ_INVALID, "subscription %zu is NULL", i);
		if (subs[i]->db != subs[0]->db)
			return cj__fail(CJ_INVALID, "subscriptions of different stores");
	}
	cj_db *db = subs[0]->db;
	int64_t deadline = cj__deadline_ms(timeout_ms);
	static _Atomic unsigned rotor;
	size_t start = n > 1 ? (size_t)(rotor++ % n) : 0;
	int rc = CJ_TIMEOUT, t;
	pthread_mutex_lock(&db->mu);
	for (;;) {
		int live = 0;
		for (size_t j = 0; j < n; j++)
			if (cj_cancel_fired(subs[j]->cancel)) {
				rc = CJ_CANCELED;
				goto out;
			}
		for (size_t j = 0; j < n; j++) {
			cj_sub *s = subs[(start + j) % n];
			if ((t = take(s, only_state, ev)) != CJ_NOT_FOUND) {
				rc = t;
				goto out;
			}
			if (!s->ended) live = 1;
		}
		if (!live || timeout_ms == 0) break;
		/* a deadline past the longest sleep: wake then and wait again */
		int64_t until_ms = cj__sleep_until(deadline);
		struct timespec until = {(time_t)(until_ms / 1000),
		                         (long)(until_ms % 1000) * 1000000L};
		int w = until_ms < 0 ? pthread_cond_wait(&db->cond, &db->mu)
		                     : pthread_cond_timedwait(&db->cond, &db->mu, &until);
		if (w == ETIMEDOUT && until_ms == deadline) {
			/* one last look */
			for (size_t j = 0; j < n; j++)
				if ((t = take(subs[(start + j) % n], only_state, ev)) != CJ_NOT_FOUND) {
					rc = t;
					goto out;
				}
			break;
		}
	}
out:
	pthread_mutex_unlock(&db->mu);
	if (rc == CJ_NOMEM) {
		cj_event_clear(ev);
		return cj__fail(CJ_NOMEM, "out of memory");
	}
	if (rc == CJ_TIMEOUT) return cj__fail(CJ_TIMEOUT, "no event in time");
	if (rc == CJ_CANCELED) return cj__fail(CJ_CANCELED, "the wait was cancelled");
	return rc;
}
