/*
 * Type feeds: the changes of one type's jobs as a numbered journal, for
 * the type's event streams (GET /v1/types/{type}/events).
 *
 * The store keeps no log of changes, only each job's current record, so a
 * feed learns what changed by comparing: it keeps a snapshot of the type's
 * jobs (id, state, a signature of data, time and flag) and, woken by
 * cj_changes_wait() after a commit changed any job (in any process),
 * lists the type's jobs again and turns the differences into events,
 * numbered in order and kept in a ring of the last FEED_RING. Commits that
 * land between two scans coalesce, as the per-job stream's do: every job's
 * latest state is delivered, intermediate ones may not be.
 *
 * Why a scan and not the store's per-job change words (cj_int.h): those
 * say which job numbers changed, a hash of type and id that cannot be
 * turned back into an id, so a job added under a number the snapshot does
 * not hold could only be found by listing the type anyway; the store keeps
 * no index of jobs by the time they changed. The scan is therefore made
 * cheap to bear at any size instead:
 *
 *  - it reads the type in pages of FEED_PAGE jobs (cj_list_jobs_from), each
 *    page its own short read: no snapshot of the store is held for the
 *    whole scan (a long read keeps the embedded engine from reusing pages,
 *    and the PostgreSQL one from vacuuming), and a stop is seen between
 *    pages. Pages of different moments are fine: a job's record is read
 *    once per scan, and any commit after the scan's token (taken before its
 *    first page) makes another scan, so every job's latest state is
 *    journaled;
 *  - scans are spaced by at least FEED_SCAN_SPACING times the last one's
 *    duration (and FEED_MIN_SCAN_MS), so that a feed spends at most about
 *    a fifth of one thread on its type however big it is: a big type's
 *    changes arrive later, but they arrive. The wait between scans ends
 *    when the server stops.
 * There is no bound on the type's jobs (an earlier one, 200,000, ended the
 * streams of bigger types).
 *
 * Costs: one scan of the type's jobs (O(jobs of the type), no per-client
 * work) per batch of commits, spaced as above, however many clients stream
 * the type; memory O(jobs of the type) for the snapshot (twice that while
 * a scan compares). A feed with no clients stops scanning and keeps its
 * snapshot and ring: the next client's arrival scans once, so the changes
 * made meanwhile (coalesced) are journaled before it reads. The journal is
 * the server's: event ids ("EPOCH-SEQ") carry a number drawn when the feed
 * was made, and an id of another feed (a restarted server) or one older
 * than the ring cannot be resumed from: the client gets a "reset" event
 * and lists the jobs again.
 */
#include "server.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define FEED_RING 4096      /* events kept for clients that resume */
#define FEED_MIN_SCAN_MS 100 /* the shortest time between two scans */
#define FEED_SCAN_SPACING 5  /* from one scan's start to the next's, at least
                                this many times its duration */
#define FEED_PAGE 4096       /* jobs read per page of a scan */

struct snap {
	char *id;
	int state;
	int64_t sched;
	int resubmit;
	uint64_t sig; /* of data, time and flag */
};

struct srv_feed {
	struct srv *srv;
	char *type;
	pthread_t thread;
	cj_cancel *stop; /* fired when the server stops */
	pthread_mutex_t mu;  /* guards what follows */
	pthread_cond_t cond; /* an event, a scan, a client, a poke, stop */
	int clients;
	int live;     /* the thread watches: the snapshot is current */
	uint64_t epoch;
	uint64_t next_seq; /* of the next event; the first is 1 */
	char *ring[FEED_RING]; /* event JSON text by seq % FEED_RING */
	struct snap *snap;     /* sorted by id */
	size_t nsnap;
	struct srv_feed *next;
};

struct srv_feeds {
	pthread_mutex_t mu;
	struct srv_feed *list;
	int n;
};

/* ---- the snapshot and its differences ----------------------------------- */

static uint64_t fnv64(uint64_t h, const void *p, size_t n) {
	for (const unsigned char *c = p; n--; c++) h = (h ^ *c) * 1099511628211ULL;
	return h;
}

static int snap_cmp(const void *a, const void *b) {
	return strcmp(((const struct snap *)a)->id, ((const struct snap *)b)->id);
}

static void snap_free(struct snap *s, size_t n) {
	for (size_t i = 0; i < n; i++) free(s[i].id);
	free(s);
}

struct scan {
	struct snap *s;
	size_t n, cap;
	size_t page; /* jobs read in this page */
};

#define PAGE_FULL 1 /* scan_cb's return that ends a page */

static int scan_cb(const cj_job_info *info, void *arg) {
	struct scan *sc = arg;
	if (sc->page == FEED_PAGE) return PAGE_FULL;
	if (sc->n == sc->cap) {
		size_t cap = sc->cap ? sc->cap * 2 : 256;
		struct snap *p = realloc(sc->s, cap * sizeof *p);
		if (!p) return CJ_NOMEM;
		sc->s = p;
		sc->cap = cap;
	}
	struct snap *e = &sc->s[sc->n];
	e->id = strdup(info->id);
	if (!e->id) return CJ_NOMEM;
	e->state = (int)info->state;
	e->sched = info->sched_time;
	e->resubmit = info->resubmit;
	uint64_t h = fnv64(1469598103934665603ULL, info->data, strlen(info->data));
	h = fnv64(h, &e->sched, sizeof e->sched);
	e->sig = fnv64(h, &e->resubmit, sizeof e->resubmit);
	sc->n++;
	sc->page++;
	return 0;
}

/* Lists the type's jobs into sc, a page at a time; a CJ_* code (CJ_CANCELED
 * when the server stops meanwhile). */
static int scan_pages(struct srv_feed *f, struct scan *sc) {
	for (;;) {
		if (cj_cancel_fired(f->stop)) return CJ_CANCELED;
		/* after the last job read: a copy, as the next read may move it */
		char *after = sc->n ? strdup(sc->s[sc->n - 1].id) : NULL;
		if (sc->n && !after) return CJ_NOMEM;
		sc->page = 0;
		int rc = cj_list_jobs_from(f->srv->db, NULL, f->type, after ? f->type : NULL, after,
		                           scan_cb, sc);
		free(after);
		if (rc == CJ_OK) return CJ_OK; /* the last page */
		if (rc != PAGE_FULL) return rc;
	}
}

/* What a change from `was` (0: none) to `now` (0: gone) is called. */
static const char *change_name(int was, int now) {
	if (!now) return "removed";
	if (!was) return "added";
	if (was == now) return "updated";
	if (now == CJ_RUNNING) return "accepted";
	if (now == CJ_FINISHED) return "finished";
	return was == CJ_FINISHED ? "added" : "requeued"; /* pending again */
}

/* Journals one change; f->mu held. */
static void journal(struct srv_feed *f, const struct snap *was, const struct snap *now) {
	const struct snap *e = now ? now : was;
	uint64_t seq = f->next_seq;
	json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:I,s:b}", "type", f->type, "id", e->id, "change",
	                      change_name(was ? was->state : 0, now ? now->state : 0), "state",
	                      now ? cj_state_name(now->state) : "removed", "sched_time",
	                      (json_int_t)e->sched, "resubmit", e->resubmit);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text) return; /* out of memory: the change is lost to streams */
	free(f->ring[seq % FEED_RING]);
	f->ring[seq % FEED_RING] = text;
	f->next_seq = seq + 1;
}

/* Lists the type's jobs and journals what differs from the snapshot (the
 * first scan only takes the snapshot). A CJ_* code. */
static int scan_diff(struct srv_feed *f, int first) {
	struct scan sc = {0};
	int rc = scan_pages(f, &sc);
	if (rc != CJ_OK) {
		snap_free(sc.s, sc.n);
		return rc;
	}
	qsort(sc.s, sc.n, sizeof *sc.s, snap_cmp); /* engines may order long ids apart */
	pthread_mutex_lock(&f->mu);
	if (!first) {
		size_t i = 0, k = 0;
		while (i < f->nsnap || k < sc.n) {
			int c = i == f->nsnap ? 1 : k == sc.n ? -1 : strcmp(f->snap[i].id, sc.s[k].id);
			if (c < 0) {
				journal(f, &f->snap[i++], NULL);
			} else if (c > 0) {
				journal(f, NULL, &sc.s[k++]);
			} else {
				if (f->snap[i].state != sc.s[k].state || f->snap[i].sig != sc.s[k].sig)
					journal(f, &f->snap[i], &sc.s[k]);
				i++;
				k++;
			}
		}
	}
	snap_free(f->snap, f->nsnap);
	f->snap = sc.s;
	f->nsnap = sc.n;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
	return CJ_OK;
}

/* Waits ms, or until the server stops. */
static void pause_ms(struct srv_feed *f, int64_t ms) {
	struct timespec until;
	cli_deadline(&until, CLOCK_REALTIME, ms);
	pthread_mutex_lock(&f->mu);
	while (!cj_cancel_fired(f->stop) &&
	       pthread_cond_timedwait(&f->cond, &f->mu, &until) != ETIMEDOUT) {}
	pthread_mutex_unlock(&f->mu);
}

static void *feed_main(void *arg) {
	struct srv_feed *f = arg;
	int first = 1;
	int64_t last_scan = 0, gap = 0; /* the last scan's start; the least time
	                                   from it to the next */
	for (;;) {
		pthread_mutex_lock(&f->mu);
		if (f->clients == 0 && !first) {
			/* nobody reads: stop watching until a client comes */
			f->live = 0;
			pthread_cond_broadcast(&f->cond);
			while (f->clients == 0 && !cj_cancel_fired(f->stop))
				pthread_cond_wait(&f->cond, &f->mu);
		}
		pthread_mutex_unlock(&f->mu);
		if (cj_cancel_fired(f->stop)) break;
		int64_t since = cli_now_ms() - last_scan;
		if (since < gap) pause_ms(f, gap - since);
		uint64_t tok;
		cj_changes_token(f->srv->db, &tok);
		last_scan = cli_now_ms();
		int rc = scan_diff(f, first);
		if (rc == CJ_CANCELED) break;
		int64_t took = cli_now_ms() - last_scan;
		gap = took > INT64_MAX / FEED_SCAN_SPACING ? INT64_MAX : took * FEED_SCAN_SPACING;
		if (gap < FEED_MIN_SCAN_MS) gap = FEED_MIN_SCAN_MS;
		if (rc == CJ_OK) first = 0;
		pthread_mutex_lock(&f->mu);
		if (rc == CJ_OK && !f->live) {
			f->live = 1;
			pthread_cond_broadcast(&f->cond);
		}
		pthread_mutex_unlock(&f->mu);
		/* a store that fails is looked at again a second later */
		if (cj_changes_wait(f->srv->db, tok, rc == CJ_OK ? -1 : 1000, f->stop) ==
		    CJ_CANCELED)
			break;
	}
	return NULL;
}

/* ---- feeds of the server ------------------------------------------------ */

int srv_feeds_init(struct srv *s) {
	s->feeds = calloc(1, sizeof *s->feeds);
	if (!s->feeds) return -1;
	pthread_mutex_init(&s->feeds->mu, NULL);
	return 0;
}

static void feed_free(struct srv_feed *f) {
	for (size_t i = 0; i < FEED_RING; i++) free(f->ring[i]);
	snap_free(f->snap, f->nsnap);
	cj_cancel_free(f->stop);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->mu);
	free(f->type);
	free(f);
}

static void feed_stop(struct srv_feed *f) {
	cj_cancel_fire(f->stop);
	pthread_mutex_lock(&f->mu);
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
}

void srv_feeds_stop(struct srv *s) {
	pthread_mutex_lock(&s->feeds->mu);
	for (struct srv_feed *f = s->feeds->list; f; f = f->next) feed_stop(f);
	pthread_mutex_unlock(&s->feeds->mu);
}

void srv_feeds_free(struct srv *s) {
	if (!s->feeds) return;
	struct srv_feed *f = s->feeds->list;
	while (f) {
		struct srv_feed *next = f->next;
		feed_stop(f);
		pthread_join(f->thread, NULL);
		feed_free(f);
		f = next;
	}
	pthread_mutex_destroy(&s->feeds->mu);
	free(s->feeds);
	s->feeds = NULL;
}

static struct srv_feed *feed_new(struct srv *s, const char *type) {
	struct srv_feed *f = calloc(1, sizeof *f);
	if (!f) return NULL;
	f->srv = s;
	f->next_seq = 1;
	if (getrandom(&f->epoch, sizeof f->epoch, 0) != sizeof f->epoch)
		f->epoch = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)f;
	f->epoch &= 0xffffffffffffULL; /* 12 hex digits are plenty */
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cond, NULL);
	f->type = strdup(type);
	if (!f->type || cj_cancel_new(&f->stop) != CJ_OK ||
	    pthread_create(&f->thread, NULL, feed_main, f) != 0) {
		feed_free(f);
		return NULL;
	}
	return f;
}

int srv_feed_join(struct srv *s, const char *type, struct srv_feed **out) {
	int rc = cj_type_check(type);
	*out = NULL;
	if (rc != CJ_OK) return rc;
	struct srv_feeds *fs = s->feeds;
	pthread_mutex_lock(&fs->mu);
	struct srv_feed *f = fs->list;
	while (f && strcmp(f->type, type) != 0) f = f->next;
	if (!f && fs->n < SRV_MAX_FEEDS && (f = feed_new(s, type))) {
		f->next = fs->list;
		fs->list = f;
		fs->n++;
	}
	pthread_mutex_unlock(&fs->mu);
	if (!f) return fs->n >= SRV_MAX_FEEDS ? CJ_TOO_LARGE : CJ_NOMEM;
	pthread_mutex_lock(&f->mu);
	f->clients++;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
	*out = f;
	return CJ_OK;
}

void srv_feed_leave(struct srv_feed *f) {
	if (!f) return;
	pthread_mutex_lock(&f->mu);
	f->clients--;
	pthread_mutex_unlock(&f->mu);
}

void srv_feed_poke(void *feed) {
	struct srv_feed *f = feed;
	pthread_mutex_lock(&f->mu);
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
}

/* Waits until the thread watches (its catch-up scan is journaled), the
 * wait's cancellation is fired, or the server stops; f->mu held. 0 once
 * it watches. */
static int wait_live(struct srv_feed *f, cj_cancel *c) {
	while (!f->live && !cj_cancel_fired(c) && !cj_cancel_fired(f->stop))
		pthread_cond_wait(&f->cond, &f->mu);
	return f->live ? 0 : -1;
}

void srv_feed_id(const struct srv_feed *f, uint64_t seq, char out[SRV_FEED_ID_LEN]) {
	snprintf(out, SRV_FEED_ID_LEN, "%012" PRIx64 "-%" PRIu64, f->epoch, seq);
}

int srv_feed_start(struct srv_feed *f, const char *last, cj_cancel *c, uint64_t *cursor) {
	pthread_mutex_lock(&f->mu);
	int rc = wait_live(f, c);
	if (rc != 0) {
		rc = SRV_FEED_ENDED;
		goto out;
	}
	*cursor = f->next_seq;
	if (!last) goto out;
	uint64_t epoch, seq;
	int n = -1;
	if (sscanf(last, "%12" SCNx64 "-%" SCNu64 "%n", &epoch, &seq, &n) != 2 ||
	    (size_t)n != strlen(last) || epoch != f->epoch || seq >= f->next_seq ||
	    f->next_seq - seq > FEED_RING) {
		rc = SRV_FEED_RESET;
		goto out;
	}
	*cursor = seq + 1;
out:
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int srv_feed_next(struct srv_feed *f, uint64_t *cursor, int64_t timeout_ms, cj_cancel *c,
                  char **text) {
	struct timespec until;
	cli_deadline(&until, CLOCK_REALTIME, timeout_ms);
	*text = NULL;
	int rc = 0;
	pthread_mutex_lock(&f->mu);
	for (;;) {
		if (cj_cancel_fired(c) || cj_cancel_fired(f->stop)) {
			rc = SRV_FEED_ENDED;
			break;
		}
		if (f->next_seq - *cursor > FEED_RING) { /* the client fell behind */
			rc = SRV_FEED_RESET;
			break;
		}
		if (*cursor < f->next_seq) {
			*text = strdup(f->ring[*cursor % FEED_RING]);
			rc = *text ? 1 : SRV_FEED_ENDED;
			(*cursor)++;
			break;
		}
		if (pthread_cond_timedwait(&f->cond, &f->mu, &until) == ETIMEDOUT) break;
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

const char *srv_feed_type(const struct srv_feed *f) { return f->type; }

uint64_t srv_feed_resume_point(struct srv_feed *f) {
	pthread_mutex_lock(&f->mu);
	uint64_t v = f->next_seq;
	pthread_mutex_unlock(&f->mu);
	return v;
}
