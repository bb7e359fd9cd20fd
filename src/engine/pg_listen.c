/* The PostgreSQL engine's wakeups: a listener thread per store turns
 * notifications into wake words; waiters sleep each on a condition
 * variable of its own, signalled when one of its words moves. */
#include "engine/pg_int.h"

/* A thread in wait_any: sleeps on cond while every word ws[i] holds
 * tokens[i]. Linked in db->waiters (wmu held). */
struct pge_waiter {
	pthread_cond_t cond;
	const unsigned *ws;
	const uint64_t *tokens;
	size_t n;
	int signalled;
	struct pge_waiter *next, **pprev;
};

/* 1 while every word ws[i] still holds tokens[i] (wmu held). */
static int pge_unchanged(const cj_edb *db, const unsigned *ws, const uint64_t *tokens,
                         size_t n) {
	for (size_t i = 0; i < n; i++)
		if (db->words[ws[i]] != tokens[i]) return 0;
	return 1;
}

/* Signals the waiters whose words moved (wmu held). */
static void pge_signal(cj_edb *db) {
	for (struct pge_waiter *w = db->waiters; w; w = w->next)
		if (!w->signalled && !pge_unchanged(db, w->ws, w->tokens, w->n)) {
			w->signalled = 1;
			pthread_cond_signal(&w->cond);
		}
}

static void pge_bump_locked(void *db, unsigned w) { ((cj_edb *)db)->words[w]++; }

void cj__pg_bump_words(cj_edb *db, const cj_wordset *s) {
	pthread_mutex_lock(&db->wmu);
	cj__wordset_each(s, pge_bump_locked, db);
	pge_signal(db);
	pthread_mutex_unlock(&db->wmu);
}

void cj__pg_bump(cj_edb *db, unsigned w) {
	pthread_mutex_lock(&db->wmu);
	db->words[w % PGE_WORDS]++;
	pge_signal(db);
	pthread_mutex_unlock(&db->wmu);
}

uint64_t cj__pg_word(cj_edb *db, unsigned w) {
	pthread_mutex_lock(&db->wmu);
	uint64_t v = db->words[w % PGE_WORDS];
	pthread_mutex_unlock(&db->wmu);
	return v;
}

static int pge_poll(cj_edb *db, int fd, short events, int64_t deadline) {
	for (;;) {
		if (atomic_load(&db->stop)) return -1;
		struct pollfd p[2] = {{db->stopfd[0], POLLIN, 0}, {fd, events, 0}};
		int ms = -1;
		if (deadline >= 0) {
			int64_t left = deadline - cj__mono_ms();
			if (left <= 0) return 0;
			ms = left > 60000 ? 60000 : (int)left;
		}
		int n = poll(p, fd >= 0 ? 2 : 1, ms);
		if (n < 0 && errno != EINTR) return -1;
		if (n <= 0) continue;
		if (p[0].revents) return -1;
		if (p[1].revents) return 1;
	}
}

/* Connects and LISTENs without blocking the stop pipe; NULL on failure. */
static PGconn *pge_listen_connect(cj_edb *db) {
	PGconn *pg = PQconnectStartParams(db->kw, db->val, 1);
	if (!pg) return NULL;
	pthread_mutex_lock(&db->wmu);
	db->lconn = pg;
	pthread_mutex_unlock(&db->wmu);
	int64_t end = cj__mono_ms() + PGE_LISTEN_CONNECT_MS;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	if (PQstatus(pg) == CONNECTION_BAD) goto out_finish;
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED) goto out_finish;
		short ev = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
		if (pge_poll(db, PQsocket(pg), ev, end) != 1) goto out_finish;
		st = PQconnectPoll(pg);
	}
	PQsetNoticeProcessor(pg, cj__pg_quiet, NULL);
	if (!PQsendQuery(pg, db->sql_listen)) goto out_finish;
	for (;;) {
		int f;
		while ((f = PQflush(pg)) == 1)
			if (pge_poll(db, PQsocket(pg), POLLOUT, end) != 1) goto out_finish;
		if (f < 0) goto out_finish;
		if (!PQisBusy(pg)) break;
		if (pge_poll(db, PQsocket(pg), POLLIN, end) != 1) goto out_finish;
		if (!PQconsumeInput(pg)) goto out_finish;
	}
	int ok = 1;
	PGresult *r;
	while ((r = PQgetResult(pg))) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK) ok = 0;
		PQclear(r);
	}
	if (!ok) goto out_finish;
	return pg;
out_finish:
	pthread_mutex_lock(&db->wmu);
	db->lconn = NULL;
	pthread_mutex_unlock(&db->wmu);
	PQfinish(pg);
	return NULL;
}

/* Bumps the words named by a payload "w,w,...". */
static void pge_payload(cj_edb *db, const char *s) {
	while (*s) {
		char *end;
		unsigned long w = strtoul(s, &end, 10);
		if (end == s) break;
		if (w < PGE_WORDS) db->words[w]++;
		s = *end == ',' ? end + 1 : end;
	}
}

/* Delivers notifications until the connection fails or stop. */
static void pge_listen_loop(cj_edb *db, PGconn *pg) {
	for (;;) {
		PGnotify *n;
		int got = 0;
		pthread_mutex_lock(&db->wmu);
		while ((n = PQnotifies(pg))) {
			pge_payload(db, n->extra);
			PQfreemem(n);
			got = 1;
		}
		if (got) pge_signal(db);
		pthread_mutex_unlock(&db->wmu);
		if (pge_poll(db, PQsocket(pg), POLLIN, -1) != 1) return;
		if (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK) return;
	}
}

static void *pge_listener_main(void *arg) {
	cj_edb *db = arg;
	int delay = PGE_BACKOFF_MIN;
	while (!atomic_load(&db->stop)) {
		PGconn *pg = pge_listen_connect(db);
		if (pg) {
			/* notifications may have been missed until now */
			pthread_mutex_lock(&db->wmu);
			for (unsigned i = 0; i < PGE_WORDS; i++) db->words[i]++;
			pge_signal(db);
			pthread_mutex_unlock(&db->wmu);
			delay = PGE_BACKOFF_MIN;
			pge_listen_loop(db, pg);
			pthread_mutex_lock(&db->wmu);
			db->lconn = NULL;
			pthread_mutex_unlock(&db->wmu);
			PQfinish(pg);
		}
		if (pge_poll(db, -1, 0, cj__mono_ms() + delay) < 0) break;
		delay = delay * 2 > PGE_BACKOFF_MAX ? PGE_BACKOFF_MAX : delay * 2;
	}
	return NULL;
}

/* Starts the listener if it is not running; db->wmu held. */
static void pge_listener_start(cj_edb *db) {
	if (db->listener_started || db->listener_failed) return;
	if (pipe(db->stopfd) != 0) {
		db->stopfd[0] = db->stopfd[1] = -1;
		db->listener_failed = 1;
		return;
	}
	fcntl(db->stopfd[0], F_SETFD, FD_CLOEXEC);
	fcntl(db->stopfd[1], F_SETFD, FD_CLOEXEC);
	if (pthread_create(&db->listener, NULL, pge_listener_main, db) != 0) {
		close(db->stopfd[0]);
		close(db->stopfd[1]);
		db->stopfd[0] = db->stopfd[1] = -1;
		db->listener_failed = 1;
		return;
	}
	db->listener_started = 1;
}

void cj__pg_listener_stop(cj_edb *db) {
	pthread_mutex_lock(&db->wmu);
	int started = db->listener_started;
	db->listener_started = 0;
	pthread_mutex_unlock(&db->wmu);
	if (!started) return;
	atomic_store(&db->stop, 1);
	char ch = 1;
	while (write(db->stopfd[1], &ch, 1) < 0 && errno == EINTR) {
	}
	pthread_join(db->listener, NULL);
	close(db->stopfd[0]);
	close(db->stopfd[1]);
	db->stopfd[0] = db->stopfd[1] = -1;
}

uint64_t cj__pg_watch(cj_edb *db, const char *chan) {
	unsigned w = cj__chan_word(chan);
	pthread_mutex_lock(&db->wmu);
	pge_listener_start(db);
	uint64_t v = db->words[w];
	pthread_mutex_unlock(&db->wmu);
	return v;
}

int cj__pg_wait_any(cj_edb *db, const char *const *chans, const uint64_t *tokens, size_t n,
                    int64_t deadline_ms) {
	unsigned ws[CJ_WAIT_ANY_MAX];
	for (size_t i = 0; i < n; i++) ws[i] = cj__chan_word(chans[i]);
	int rc = CJ_OK;
	pthread_mutex_lock(&db->wmu);
	/* without a listener, other processes' commits go unseen: look again
	 * every second */
	if (db->listener_failed) {
		int64_t soon = cj__add_sat(cj__mono_ms(), 1000);
		if (deadline_ms < 0 || deadline_ms > soon) deadline_ms = soon;
	}
	/* a deadline past the longest sleep ends in a spurious wake */
	int64_t until = cj__sleep_until(deadline_ms);
	struct pge_waiter me = {.ws = ws, .tokens = tokens, .n = n};
	if (pge_unchanged(db, ws, tokens, n)) {
		if (pthread_cond_init(&me.cond, &db->wattr) != 0) {
			pthread_mutex_unlock(&db->wmu);
			return CJ_OK; /* a spurious wake, which the caller allows */
		}
		if ((me.next = db->waiters)) me.next->pprev = &me.next;
		me.pprev = &db->waiters;
		db->waiters = &me;
		while (pge_unchanged(db, ws, tokens, n)) {
			if (until < 0) {
				pthread_cond_wait(&me.cond, &db->wmu);
				continue;
			}
			struct timespec ts = {(time_t)(until / 1000), (long)(until % 1000) * 1000000L};
			if (pthread_cond_timedwait(&me.cond, &db->wmu, &ts) == ETIMEDOUT) {
				if (pge_unchanged(db, ws, tokens, n) && until == deadline_ms) rc = CJ_TIMEOUT;
				break;
			}
		}
		if ((*me.pprev = me.next)) me.next->pprev = me.pprev;
		pthread_cond_destroy(&me.cond);
	}
	/* nor which jobs they changed: any may have (CJ_WORD_ALL) */
	if (db->listener_failed) db->words[CJ_WORD_ALL]++;
	pthread_mutex_unlock(&db->wmu);
	return rc;
}

int cj__pg_wait(cj_edb *db, const char *chan, uint64_t token, int64_t deadline_ms) {
	return cj__pg_wait_any(db, &chan, &token, 1, deadline_ms);
}

void cj__pg_wake(cj_edb *db, const char *chan) { cj__pg_bump(db, cj__chan_word(chan)); }
