/*
 * Subscriptions and the notifier.
 *
 * The notifier is a thread of the cj_db, started by the first subscription.
 * A commit that changes a job bumps the job's own wake word, the word of
 * its group of job words, and the "activity" channel (cj_int.h). The
 * notifier sleeps on "activity"; woken, it compares in memory the words of
 * the groups that hold subscriptions with what it saw last, and within a
 * group that changed, the job words of its subscriptions. Only a
 * subscription whose job word changed is read again from the store: a
 * commit that changes an unrelated job costs no read (unless the two jobs
 * share a word, 1 in CJ_JOB_WORDS). Reading the current state, rather than
 * replaying changes, is what lets events coalesce while never leaving a
 * subscriber with a stale state.
 *
 * A word is loaded before its job is read, so that a commit the read missed
 * changes the word again afterwards. The notifier reads without the
 * handle's mutex: it pins what it reads, and cj_unsubscribe() of a pinned
 * subscription leaves freeing it to the notifier. cj_subscribe() reads its
 * job itself and loads the word before and after: if the word moved
 * meanwhile, the subscription is marked stale and the notifier is kicked
 * to read it again; otherwise no other subscription is looked at.
 *
 * A lease subscription (cj_subscribe_lease()) is read the same way, but
 * compares the job's lock with its processor's instead of its state: it
 * queues one event, when the job is no longer held with that lock, and
 * ends. A subscription's descriptor (cj_sub_fd()) is set when its queue
 * becomes non-empty and cleared when it is emptied, both under the mutex.
 *
 * A process of the first build marks "activity" alone when a job changes.
 * Every commit of this build bumps CJ_WORD_NEW just before "activity", so
 * "activity" - NEW grows only with commits of such a process (loaded in
 * that order, a commit half done can only make it smaller for a moment);
 * when it grows, the notifier reads every subscription again.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "cj_int.h"
#include "os/os.h"

#define CJ_QUEUE_COALESCE 16 /* a longer queue merges same-state events */

struct ev_node {
	struct ev_node *next;
	cj_state state;
	char *data;
};

struct cj_sub {
	cj_db *db;
	char *type, *id; /* fixed: read without the mutex while pinned */
	unsigned job;    /* cj__job_number */
	/* in its group's list while live, in the notifier's ended list after */
	struct cj_sub *prev, *next;
	int pinned;    /* being read by the notifier without the mutex */
	int gone;      /* unsubscribed while pinned: the notifier frees it */
	int stale;     /* read it again on the next pass */
	uint64_t word; /* its job word, loaded before it was last read */
	int ended;     /* a finished or removed event (a lease subscription:
	                  its one event) was queued */
	cj_state last; /* last state seen */
	int has_seq;
	uint8_t seq[CJ_VS_LEN];
	struct ev_node *head, *tail;
	size_t queued;
	cj_cancel *cancel;    /* cj_sub_set_cancel(), or NULL */
	cj_cancel_hook hook;  /* on cancel */
	int fd;               /* cj_sub_fd()'s event, or -1 */
	int lease;            /* a lease subscription, for lock: */
	uint8_t lock[CJ_UUID_LEN];
	cj_lost lost;         /* why the job was lost, once it was */
};

/* Subscriptions whose jobs' words are in one group of job words. */
struct sub_group {
	cj_sub *subs;
	uint64_t word; /* the group's word when last compared */
	int dirty;     /* compare its subscriptions on the next pass */
};

/* ---- reading a job's current state --------------------------------------- */

struct look_arg {
	const char *type, *id;
	int want_data;
	cj_state state; /* CJ_REMOVED if missing */
	int has_seq;
	uint8_t seq[CJ_VS_LEN];
	int has_lock;
	uint8_t lock[CJ_UUID_LEN];
	char *data;
};

struct cj_notifier {
	pthread_t thread;
	int stop;
	pthread_cond_t wake; /* a subscription was added, or stop */
	size_t live;         /* subscriptions in the groups */
	int full;            /* the next pass reads every subscription */
	uint64_t all;        /* CJ_WORD_ALL when last compared */
	uint32_t legacy;     /* the largest "activity" - NEW seen */
	struct sub_group groups[CJ_JOB_GROUPS];
	cj_sub *ended;
	/* what a pass reads; the notifier thread's own */
	struct pin {
		cj_sub *s;
		struct look_arg a;
	} *pins;
	size_t npins, cap;
};

void cj_event_clear(cj_event *ev) {
	if (!ev) return;
	cj_free(ev->type);
	cj_free(ev->id);
	cj_free(ev->data);
	memset(ev, 0, sizeof *ev);
}

static int look(cj_tx *tx, struct look_arg *a) {
	cj_buf copy = CJ_BUF_INIT;
	cj_jv jv;
	cj_free(a->data);
	a->data = NULL;
	int rc = cj__job_load(tx, a->type, a->id, &copy, &jv, &a->state);
	if (rc == CJ_NOT_FOUND) {
		a->state = CJ_REMOVED;
		a->has_seq = 0;
		a->has_lock = 0;
		rc = CJ_OK;
		goto out;
	}
	if (rc) goto out;
	a->has_seq = jv.has_seq;
	memcpy(a->seq, jv.seq, CJ_VS_LEN);
	a->has_lock = jv.has_lock;
	memcpy(a->lock, jv.lock, CJ_UUID_LEN);
	if (a->want_data) rc = cj__jv_data(&jv, &a->data);
out:
	cj__buf_free(&copy);
	return rc;
}

static int look_fn(cj_tx *tx, void *arg) { return look(tx, arg); }

/* ---- the notifier --------------------------------------------------------- */

/* Why a lease subscription's job, as read into a, is no longer held with
 * its lock; CJ_LOST_NONE while it is. */
static cj_lost lost_reason(const cj_sub *s, const struct look_arg *a) {
	switch (a->state) {
	case CJ_REMOVED: return CJ_LOST_REMOVED;
	case CJ_FINISHED: return CJ_LOST_FINISHED;
	case CJ_PENDING: return CJ_LOST_TAKEN_BACK;
	default:
		if (a->has_lock && memcmp(a->lock, s->lock, CJ_UUID_LEN) == 0) return CJ_LOST_NONE;
		return CJ_LOST_REACCEPTED;
	}
}

/* 1 if what a holds is news to s: a new state or sequence; for a lease
 * subscription, the loss of its lock. */
static int changed(const cj_sub *s, const struct look_arg *a) {
	if (s->lease) return lost_reason(s, a) != CJ_LOST_NONE;
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
	if (!s->tail && s->fd >= 0) cj__os_event_set(s->fd);
	s->tail = e;
	s->queued++;
	return CJ_OK;
}

/* ---- words ---------------------------------------------------------------- */

static unsigned activity_word(void) { return cj__chan_word(CJ_CHAN_ACTIVITY); }

/* "activity" - NEW (see the top of this file). */
static uint32_t legacy_count(cj_db *db) {
	uint32_t act = (uint32_t)cj__word(db, activity_word());
	return act - (uint32_t)cj__word(db, CJ_WORD_NEW);
}

/* Wakes the notifier as a commit would, keeping "activity" - NEW. */
static void kick(cj_db *db) {
	cj__bump(db, CJ_WORD_NEW);
	cj__bump(db, activity_word());
}

/* ---- the notifier's lists (db->mu held) ------------------------------------ */

static struct sub_group *group_of(cj_notifier *n, const cj_sub *s) {
	return &n->groups[s->job / CJ_JOB_GROUP_SIZE];
}

static cj_sub **list_of(cj_notifier *n, cj_sub *s) {
	return s->ended ? &n->ended : &group_of(n, s)->subs;
}

static void list_add(cj_notifier *n, cj_sub *s) {
	cj_sub **head = list_of(n, s);
	s->prev = NULL;
	s->next = *head;
	if (*head) (*head)->prev = s;
	*head = s;
	if (!s->ended) n->live++;
}

static void list_remove(cj_notifier *n, cj_sub *s) {
	if (s->prev) s->prev->next = s->next;
	else *list_of(n, s) = s->next;
	if (s->next) s->next->prev = s->prev;
	s->prev = s->next = NULL;
	if (!s->ended) n->live--;
}

static void sub_free(cj_sub *s) {
	if (s->cancel) cj__cancel_unhook(s->cancel, &s->hook);
	while (s->head) {
		struct ev_node *e = s->head;
		s->head = e->next;
		cj_free(e->data);
		cj_free(e);
	}
	cj__os_event_close(s->fd);
	cj_free(s->type);
	cj_free(s->id);
	cj_free(s);
}

/* ---- the notifier --------------------------------------------------------- */

static int pin(cj_notifier *n, cj_sub *s) {
	if (n->npins == n->cap) {
		size_t cap = n->cap ? n->cap * 2 : 64;
		struct pin *p = cj__realloc(n->pins, cap * sizeof *p);
		if (!p) return cj__fail(CJ_NOMEM, "out of memory");
		n->pins = p;
		n->cap = cap;
	}
	struct pin *p = &n->pins[n->npins++];
	memset(p, 0, sizeof *p);
	p->s = s;
	p->a.type = s->type;
	p->a.id = s->id;
	p->a.want_data = !s->lease;
	s->pinned = 1;
	return CJ_OK;
}

/* Pins the subscriptions whose jobs may have changed since they were last
 * read; a token on "activity" was taken before. */
static int collect(cj_db *db) {
	cj_notifier *n = db->notifier;
	int full = n->full;
	n->full = 0;
	uint64_t all = cj__word(db, CJ_WORD_ALL);
	uint32_t legacy = legacy_count(db);
	if (all != n->all) full = 1;
	if ((int32_t)(legacy - n->legacy) > 0) {
		full = 1;
		n->legacy = legacy;
	}
	n->all = all;
	int rc = CJ_OK;
	for (unsigned g = 0; g < CJ_JOB_GROUPS; g++) {
		struct sub_group *G = &n->groups[g];
		if (!G->subs) continue;
		uint64_t gw = cj__word(db, CJ_WORD_GROUP(g));
		if (!full && !G->dirty && gw == G->word) continue;
		G->word = gw;
		G->dirty = 0;
		for (cj_sub *s = G->subs; s; s = s->next) {
			uint64_t w = cj__word(db, CJ_WORD_JOB(s->job));
			if (!full && !s->stale && w == s->word) continue;
			s->word = w;
			s->stale = 0;
			if (rc == CJ_OK) rc = pin(n, s);
			if (rc) { /* look again at the next pass */
				s->stale = 1;
				G->dirty = 1;
			}
		}
	}
	return rc;
}

static int read_fn(cj_tx *tx, void *arg) {
	cj_notifier *n = arg;
	for (size_t i = 0; i < n->npins; i++) {
		int rc = look(tx, &n->pins[i].a);
		if (rc) return rc;
	}
	return CJ_OK;
}

/* Unpins what collect() pinned and queues the events of what changed (rc:
 * how the read went). 1 if an event was queued; *again set if a job must be
 * looked at again for want of memory. */
static int deliver(cj_db *db, int rc, int *again) {
	cj_notifier *n = db->notifier;
	int delivered = 0;
	for (size_t i = 0; i < n->npins; i++) {
		cj_sub *s = n->pins[i].s;
		struct look_arg *a = &n->pins[i].a;
		s->pinned = 0;
		if (s->gone || rc || !changed(s, a)) {
			cj_free(a->data);
			if (s->gone) {
				sub_free(s);
			} else if (rc) {
				s->stale = 1;
				group_of(n, s)->dirty = 1;
			}
			continue;
		}
		if (a->state == CJ_REMOVED) {
			cj_free(a->data);
			a->data = NULL;
		}
		/* what was delivered moves on only once the event is queued: with
		 * no memory for it, the job is looked at again */
		if (queue_event(s, a->state, a->data)) {
			cj_free(a->data);
			s->stale = 1;
			group_of(n, s)->dirty = 1;
			*again = 1;
			continue;
		}
		if (s->lease) s->lost = lost_reason(s, a);
		s->last = a->state;
		s->has_seq = a->has_seq;
		memcpy(s->seq, a->seq, CJ_VS_LEN);
		if (a->state == CJ_FINISHED || a->state == CJ_REMOVED || s->lease) {
			list_remove(n, s);
			s->ended = 1;
			list_add(n, s);
		}
		delivered = 1;
	}
	n->npins = 0;
	return delivered;
}

/* cj_stats.notifier_lock_ns: the mutex was held since held (ns). */
static void count_held(cj_db *db, int64_t held) {
	atomic_fetch_add_explicit(&db->notifier_lock_ns, (uint64_t)(cj__mono_ns() - held),
	                          memory_order_relaxed);
}

static void *notifier_main(void *arg) {
	cj_db *db = arg;
	cj_notifier *n = db->notifier;
	int64_t retry = CJ_RETRY_MIN_MS;
	pthread_mutex_lock(&db->mu);
	while (!n->stop) {
		if (!n->live) {
			pthread_cond_wait(&n->wake, &db->mu);
			continue;
		}
		uint64_t token = cj__watch(db, CJ_CHAN_ACTIVITY);
		atomic_fetch_add_explicit(&db->notifier_passes, 1, memory_order_relaxed);
		int64_t held = cj__mono_ns();
		int rc = collect(db);
		if (n->npins) {
			size_t npins = n->npins;
			count_held(db, held);
			pthread_mutex_unlock(&db->mu);
			atomic_fetch_add_explicit(&db->notifier_reads, npins, memory_order_relaxed);
			int read = cj__run(db, NULL, 0, read_fn, n);
			pthread_mutex_lock(&db->mu);
			held = cj__mono_ns();
			int again = 0;
			if (deliver(db, read, &again)) pthread_cond_broadcast(&db->cond);
			if (read) rc = read;
			else if (again) rc = CJ_NOMEM;
		}
		count_held(db, held);
		if (n->stop) break;
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
	/* the first subscription was read before these were loaded */
	n->full = 1;
	n->all = cj__word(db, CJ_WORD_ALL);
	n->legacy = legacy_count(db);
	db->notifier = n;
	if (pthread_create(&n->thread, NULL, notifier_main, db) != 0) {
		pthread_cond_destroy(&n->wake);
		cj_free(n);
		db->notifier = NULL;
		return cj__fail(CJ_NOMEM, "cannot start the notifier thread");
	}
	return CJ_OK;
}

static void free_list(cj_sub *s) {
	while (s) {
		cj_sub *next = s->next;
		sub_free(s);
		s = next;
	}
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
	kick(db);
	pthread_join(n->thread, NULL);
	/* subscriptions left open are freed with the db */
	for (unsigned g = 0; g < CJ_JOB_GROUPS; g++) free_list(n->groups[g].subs);
	free_list(n->ended);
	cj_free(n->pins);
	pthread_cond_destroy(&n->wake);
	cj_free(n);
	db->notifier = NULL;
}

/* ---- the public calls ----------------------------------------------------- */

/* cj_subscribe(), or with lock a lease subscription of the job held with
 * it (cj_subscribe_lease()): one read of the job, then the subscription
 * joins its group. A lease subscription is made whatever the job's state:
 * when it is lost already, it starts with its one event queued. */
static int sub_open(cj_db *db, const char *type, const char *id, const uint8_t *lock,
                    cj_sub **sub, cj_state *state, char **data) {
	int rc;
	if ((rc = cj__check_type(type)) || (rc = cj__check_id(id))) return rc;
	unsigned job = cj__job_number(type, id);
	/* the words before the read: a change the read misses moves them */
	uint64_t w0 = cj__word(db, CJ_WORD_JOB(job));
	uint32_t legacy0 = legacy_count(db);
	struct look_arg a = {type, id, data != NULL, 0, 0, {0}, 0, {0}, NULL};
	if ((rc = cj__run(db, NULL, 0, look_fn, &a))) goto out_free;
	if (a.state == CJ_REMOVED && !lock) {
		rc = cj__fail(CJ_NOT_FOUND, "no such job");
		goto out_free;
	}
	if (state) *state = a.state;
	if (a.state == CJ_FINISHED && !lock) {
		if (data) *data = a.data;
		else cj_free(a.data);
		return CJ_OK;
	}
	cj_sub *s = cj__calloc(1, sizeof *s);
	if (s) s->fd = -1;
	if (!s || !(s->type = cj__strdup(type)) || !(s->id = cj__strdup(id))) {
		if (s) sub_free(s);
		rc = cj__fail(CJ_NOMEM, "out of memory");
		goto out_free;
	}
	s->db = db;
	s->job = job;
	s->last = a.state;
	s->has_seq = a.has_seq;
	memcpy(s->seq, a.seq, CJ_VS_LEN);
	if (lock) {
		s->lease = 1;
		memcpy(s->lock, lock, CJ_UUID_LEN);
		s->lost = lost_reason(s, &a);
		if (s->lost && (rc = queue_event(s, a.state, NULL))) {
			sub_free(s);
			goto out_free;
		}
		s->ended = s->lost != CJ_LOST_NONE;
	}
	int moved = 0;
	pthread_mutex_lock(&db->mu);
	rc = notifier_start(db);
	if (rc == CJ_OK) {
		cj_notifier *n = db->notifier;
		struct sub_group *G = group_of(n, s);
		/* a group's word is loaded before the job words it covers */
		if (!G->subs) G->word = cj__word(db, CJ_WORD_GROUP(job / CJ_JOB_GROUP_SIZE));
		s->word = cj__word(db, CJ_WORD_JOB(job));
		if (!s->ended && (s->word != w0 || legacy_count(db) != legacy0)) {
			/* the job may have changed since it was read */
			s->stale = 1;
			G->dirty = 1;
			moved = 1;
		}
		list_add(n, s);
		pthread_cond_signal(&n->wake);
	}
	pthread_mutex_unlock(&db->mu);
	if (rc) {
		sub_free(s);
		goto out_free;
	}
	if (moved) kick(db);
	*sub = s;
	if (data) *data = a.data;
	else cj_free(a.data);
	return CJ_OK;
out_free:
	cj_free(a.data);
	return rc;
}

int cj_subscribe(cj_db *db, const char *type, const char *id, cj_sub **sub,
                 cj_state *state, char **data) {
	if (sub) *sub = NULL;
	if (data) *data = NULL;
	if (!db || !sub) return cj__fail(CJ_INVALID, "NULL argument");
	return sub_open(db, type, id, NULL, sub, state, data);
}

int cj_subscribe_lease(cj_db *db, const cj_job *job, cj_sub **sub) {
	if (sub) *sub = NULL;
	if (!db || !job || !sub) return cj__fail(CJ_INVALID, "NULL argument");
	return sub_open(db, job->type, job->id, job->lock, sub, NULL, NULL);
}

cj_lost cj_sub_lost(const cj_sub *sub) {
	if (!sub) return CJ_LOST_NONE;
	pthread_mutex_lock(&sub->db->mu);
	cj_lost lost = sub->lost;
	pthread_mutex_unlock(&sub->db->mu);
	return lost;
}

int cj_sub_fd(cj_sub *sub, int *fd) {
	if (fd) *fd = -1;
	if (!sub || !fd) return cj__fail(CJ_INVALID, "NULL argument");
	int rc = CJ_OK;
	pthread_mutex_lock(&sub->db->mu);
	if (sub->fd < 0 && (rc = cj__os_event_new(&sub->fd)) == CJ_OK && sub->head)
		cj__os_event_set(sub->fd);
	if (rc == CJ_OK) *fd = sub->fd;
	pthread_mutex_unlock(&sub->db->mu);
	return rc;
}

int cj_unsubscribe(cj_sub *sub) {
	if (!sub) return CJ_OK;
	cj_db *db = sub->db;
	/* the tie ends now, even when the notifier frees sub later: the caller
	 * may free its cancellation as soon as this returns */
	if (sub->cancel) cj__cancel_unhook(sub->cancel, &sub->hook);
	pthread_mutex_lock(&db->mu);
	sub->cancel = NULL;
	list_remove(db->notifier, sub);
	int pinned = sub->pinned;
	sub->gone = 1;
	pthread_mutex_unlock(&db->mu);
	if (!pinned) sub_free(sub);
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
		if (!s->head) {
			s->tail = NULL;
			if (s->fd >= 0) cj__os_event_clear(s->fd);
		}
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
	if (only_state < 0 || only_state > CJ_DEAD)
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
