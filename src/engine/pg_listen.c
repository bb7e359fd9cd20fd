/* The PostgreSQL engine's wakeups: a listener thread per store turns
 * notifications into wake words, and holds the locks of (and LISTENs for)
 * only the words that its handle's threads wait on (pge_reconcile; the
 * design and why no wake-up is lost: pg_int.h); waiters sleep each on a
 * condition variable of its own, signalled when one of its words moves. */
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

/* Sleeps until fd is ready for events, the deadline (monotonic ms, -1:
 * none) passes, a wait kicks the listener (pge_kick) or the listener is
 * told to stop: 1 ready, 0 timed out, 2 kicked, -1 stop or error. */
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
		if (p[0].revents) {
			char buf[64];
			while (read(db->stopfd[0], buf, sizeof buf) > 0) {
			}
			if (atomic_load(&db->stop)) return -1;
			if (!p[1].revents) return 2;
		}
		if (p[1].revents) return 1;
	}
}

/* Tells the listener that a wait wants a word it does not hold (wmu held). */
static void pge_kick(cj_edb *db) {
	if (db->kicked || db->stopfd[1] < 0) return;
	db->kicked = 1;
	char ch = 0;
	while (write(db->stopfd[1], &ch, 1) < 0 && errno == EINTR) {
	}
}

/* Sends sql (simple protocol, several statements allowed) on the
 * listener's connection and reads every result, within
 * PGE_LISTEN_CONNECT_MS: 0 if all succeeded, else -1. Notifications that
 * come meanwhile stay queued in libpq for the loop. */
static int pge_command(cj_edb *db, PGconn *pg, const char *sql) {
	int64_t end = cj__mono_ms() + PGE_LISTEN_CONNECT_MS;
	if (!PQsendQuery(pg, sql)) return -1;
	for (;;) {
		int f, r;
		while ((f = PQflush(pg)) == 1)
			if ((r = pge_poll(db, PQsocket(pg), POLLOUT, end)) != 1 && r != 2) return -1;
		if (f < 0) return -1;
		if (!PQisBusy(pg)) break;
		if ((r = pge_poll(db, PQsocket(pg), POLLIN, end)) != 1 && r != 2) return -1;
		if (!PQconsumeInput(pg)) return -1;
	}
	int ok = 1;
	PGresult *res;
	while ((res = PQgetResult(pg))) {
		ExecStatusType st = PQresultStatus(res);
		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) ok = 0;
		PQclear(res);
	}
	return ok && PQstatus(pg) == CONNECTION_OK ? 0 : -1;
}

/* Connects without blocking the stop pipe; NULL on failure. It listens
 * to nothing yet (pge_reconcile). */
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
		int r = pge_poll(db, PQsocket(pg), ev, end);
		if (r == 2) continue;
		if (r != 1) goto out_finish;
		st = PQconnectPoll(pg);
	}
	PQsetNoticeProcessor(pg, cj__pg_quiet, NULL);
	if (PQsetnonblocking(pg, 1) != 0) goto out_finish;
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

static int pge_is_held(const cj_edb *db, unsigned w) {
	return db->held[w / 8] >> (w % 8) & 1;
}

/* Appends "SELECT fn(class, k) FROM unnest('{key,...}'::int4[]) k; " for
 * the n words ws to b. */
static void pge_locks_sql(cj_buf *b, const cj_edb *db, const char *fn, const uint16_t *ws,
                          unsigned n) {
	char num[32];
	int len = snprintf(num, sizeof num, "%d", PGE_WAKE_LOCK_CLASS);
	cj__buf_add(b, "SELECT ", 7);
	cj__buf_add(b, fn, strlen(fn));
	cj__buf_add(b, "(", 1);
	cj__buf_add(b, num, (size_t)len);
	cj__buf_add(b, ", k) FROM unnest('{", 19);
	for (unsigned i = 0; i < n; i++) {
		len = snprintf(num, sizeof num, "%s%" PRId32, i ? "," : "", cj__pg_wake_key(db, ws[i]));
		cj__buf_add(b, num, (size_t)len);
	}
	cj__buf_add(b, "}'::int4[]) k; ", 15);
}

static void pge_set_held(cj_edb *db, unsigned w, int on) {
	if (pge_is_held(db, w) == on) return;
	db->held[w / 8] ^= (uint8_t)(1u << (w % 8));
	if (on) db->nheld++;
	else db->nheld--;
}

/* Makes what the listener holds follow what the waits want: takes the
 * locks of (and LISTENs for) the words waited on that it does not hold,
 * then bumps every word (a word not held saw no notification: every token
 * taken and word read meanwhile is thus made stale); gives up a word that
 * nobody waited on for PGE_LINGER_MS, and UNLISTENs once none is left.
 * *wake: when to look again (-1: at a kick). 0, or -1 if the connection
 * failed (or no memory: the connection is then made again). */
static int pge_reconcile(cj_edb *db, PGconn *pg, int64_t *wake) {
	uint16_t addw[CJ_CHAN_WORDS], dropw[CJ_CHAN_WORDS];
	for (;;) {
		unsigned nadd = 0, ndrop = 0;
		pthread_mutex_lock(&db->wmu);
		db->kicked = 0;
		int64_t now = cj__mono_ms();
		for (unsigned w = 1; w < CJ_CHAN_WORDS; w++) {
			if (db->want[w] && !pge_is_held(db, w)) {
				addw[nadd++] = (uint16_t)w;
			} else if (!db->want[w] && pge_is_held(db, w) &&
			           now - db->idle_since[w] >= PGE_LINGER_MS) {
				/* not held from now on, though its lock is given up
				 * only below: a wait that comes meanwhile kicks, and the
				 * lock is taken again (and every word bumped) */
				dropw[ndrop++] = (uint16_t)w;
				pge_set_held(db, w, 0);
			}
		}
		int listen = nadd && !db->listening;
		int unlisten = !nadd && ndrop && db->nheld == 0 && db->listening;
		/* the next word to give up; none: no timer, and a wait that
		 * leaves a held word nobody waits on kicks (cj__pg_wait_any) */
		int64_t at = -1;
		for (unsigned w = 1; w < CJ_CHAN_WORDS && db->nheld; w++)
			if (!db->want[w] && pge_is_held(db, w)) {
				int64_t due = cj__add_sat(db->idle_since[w], PGE_LINGER_MS);
				if (at < 0 || due < at) at = due;
			}
		db->linger_at = *wake = at;
		pthread_mutex_unlock(&db->wmu);
		if (!nadd && !ndrop) return 0;
		cj_buf sql = CJ_BUF_INIT;
		if (listen) {
			cj__buf_add(&sql, db->sql_listen, strlen(db->sql_listen));
			cj__buf_add(&sql, "; ", 2);
		}
		if (nadd) pge_locks_sql(&sql, db, "pg_advisory_lock_shared", addw, nadd);
		if (ndrop) pge_locks_sql(&sql, db, "pg_advisory_unlock_shared", dropw, ndrop);
		if (unlisten) cj__buf_add(&sql, "UNLISTEN *", 10);
		cj__buf_add(&sql, "", 1);
		int rc = sql.oom ? -1 : pge_command(db, pg, (const char *)sql.p);
		cj__buf_free(&sql);
		if (rc) return -1;
		pthread_mutex_lock(&db->wmu);
		if (listen) db->listening = 1;
		if (unlisten) db->listening = 0;
		if (nadd) {
			/* the words that nobody waits on any more are given up later */
			for (unsigned i = 0; i < nadd; i++) pge_set_held(db, addw[i], 1);
			for (unsigned i = 0; i < PGE_WORDS; i++) db->words[i]++;
			pge_signal(db);
		}
		pthread_mutex_unlock(&db->wmu);
	}
}

/* Delivers notifications, and follows the waits (pge_reconcile), until
 * the connection fails or stop. */
static void pge_listen_loop(cj_edb *db, PGconn *pg) {
	for (;;) {
		/* first: what a reconcile's statement read in with its answer is
		 * then delivered before the sleep */
		int64_t wake;
		if (pge_reconcile(db, pg, &wake)) return;
		PGnotify *n;
		uint64_t got = 0;
		pthread_mutex_lock(&db->wmu);
		while ((n = PQnotifies(pg))) {
			pge_payload(db, n->extra);
			PQfreemem(n);
			got++;
		}
		if (got) pge_signal(db);
		pthread_mutex_unlock(&db->wmu);
		if (got) atomic_fetch_add_explicit(&db->notes_received, got, memory_order_relaxed);
		int r = pge_poll(db, PQsocket(pg), POLLIN, wake);
		if (r < 0) return;
		if (r == 1 && (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK)) return;
	}
}

static void *pge_listener_main(void *arg) {
	cj_edb *db = arg;
	int delay = PGE_BACKOFF_MIN;
	while (!atomic_load(&db->stop)) {
		PGconn *pg = pge_listen_connect(db);
		if (pg) {
			delay = PGE_BACKOFF_MIN;
			pge_listen_loop(db, pg);
			/* the connection's locks and LISTEN are gone with it: the
			 * words are taken again, and bumped, by the next one */
			pthread_mutex_lock(&db->wmu);
			db->lconn = NULL;
			db->linger_at = -1;
			memset(db->held, 0, sizeof db->held);
			db->nheld = 0;
			db->listening = 0;
			pthread_mutex_unlock(&db->wmu);
			PQfinish(pg);
		}
		int r;
		while ((r = pge_poll(db, -1, 0, cj__mono_ms() + delay)) == 2) {
		}
		if (r < 0) break;
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
	for (int i = 0; i < 2; i++) {
		fcntl(db->stopfd[i], F_SETFD, FD_CLOEXEC);
		fcntl(db->stopfd[i], F_SETFL, fcntl(db->stopfd[i], F_GETFL) | O_NONBLOCK);
	}
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
	pge_listener_start(db);
	/* the listener takes the words not held, and then bumps every word: a
	 * token of a word not held may miss a commit, but not that bump */
	for (size_t i = 0; i < n; i++) {
		db->want[ws[i]]++;
		if (!pge_is_held(db, ws[i])) pge_kick(db);
	}
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
		if (pthread_cond_init(&me.cond, &db->wattr) != 0)
			goto out_left; /* a spurious wake, which the caller allows */
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
out_left:;
	int64_t now = cj__mono_ms();
	for (size_t i = 0; i < n; i++)
		if (--db->want[ws[i]] == 0) {
			db->idle_since[ws[i]] = now;
			/* the listener sleeps without a timer: it must know that a
			 * word is to be given up (once: the timer is set then) */
			if (pge_is_held(db, ws[i]) && db->linger_at < 0) pge_kick(db);
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
