/*
 * Waiting requests (accept long polls and event streams): each holds a
 * cancellation (cj_cancel) that its library wait uses, fired when its
 * client closes the connection or when the server stops. A waiting
 * request therefore sleeps in the library for its whole wait, without
 * slices: an idle server wakes for nothing.
 *
 * One thread watches the sockets of the waiting requests with epoll for
 * their peer's hang-up (EPOLLRDHUP, no EPOLLIN: a pipelined request does
 * not count) and fires the request's cancellation. It watches a duplicate
 * of each socket, so the registration belongs to this file alone: the
 * socket is not reused under it while it is registered, whatever
 * libmicrohttpd does with its own descriptor.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct srv_wait {
	cj_cancel *cancel;
	struct srv_waiters *owner;
	int fd;      /* our duplicate of the client's socket; -1: none */
	uint64_t id; /* the epoll key (a pointer could be stale there) */
	int gone;    /* the client hung up */
	void (*poke)(void *arg); /* srv_wait_set_poke() */
	void *poke_arg;
	struct srv_wait *prev, *next;
};

struct srv_waiters {
	pthread_mutex_t mu; /* guards everything below */
	pthread_cond_t fired; /* broadcast by every fire (srv_wait_sleep()) */
	struct srv_wait *list;
	uint64_t next_id;
	int stopping;
	int ep, quit; /* epoll and the eventfd that ends the thread */
	pthread_t thread;
};

/* Fires w's cancellation (and its poke); ws->mu held. */
static void fire(struct srv_wait *w) {
	cj_cancel_fire(w->cancel);
	pthread_cond_broadcast(&w->owner->fired);
	if (w->poke) w->poke(w->poke_arg);
}

/* Fires the cancellation of the request registered under `id`, if it is
 * still there, and stops watching its socket. */
static void hung_up(struct srv_waiters *ws, uint64_t id) {
	pthread_mutex_lock(&ws->mu);
	for (struct srv_wait *w = ws->list; w; w = w->next) {
		if (w->id != id) continue;
		w->gone = 1;
		epoll_ctl(ws->ep, EPOLL_CTL_DEL, w->fd, NULL);
		fire(w);
		break;
	}
	pthread_mutex_unlock(&ws->mu);
}

static void *watch_main(void *arg) {
	struct srv_waiters *ws = arg;
	struct epoll_event ev[32];
	for (;;) {
		int n = epoll_wait(ws->ep, ev, 32, -1);
		if (n < 0 && errno != EINTR) return NULL;
		for (int i = 0; i < n; i++) {
			if (ev[i].data.u64 == 0) return NULL; /* the quit eventfd */
			hung_up(ws, ev[i].data.u64);
		}
	}
}

int srv_waiters_init(struct srv *s) {
	struct srv_waiters *ws = calloc(1, sizeof *ws);
	if (!ws) return -1;
	ws->next_id = 1;
	ws->ep = epoll_create1(EPOLL_CLOEXEC);
	ws->quit = eventfd(0, EFD_CLOEXEC);
	struct epoll_event qe = {.events = EPOLLIN, .data.u64 = 0};
	if (ws->ep < 0 || ws->quit < 0 || epoll_ctl(ws->ep, EPOLL_CTL_ADD, ws->quit, &qe) != 0)
		goto out_fds;
	pthread_mutex_init(&ws->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int crc = pthread_cond_init(&ws->fired, &ca);
	pthread_condattr_destroy(&ca);
	if (crc != 0) goto out_mu;
	if (pthread_create(&ws->thread, NULL, watch_main, ws) != 0) goto out_cond;
	s->waiting = ws;
	return 0;
out_cond:
	pthread_cond_destroy(&ws->fired);
out_mu:
	pthread_mutex_destroy(&ws->mu);
out_fds:
	if (ws->ep >= 0) close(ws->ep);
	if (ws->quit >= 0) close(ws->quit);
	free(ws);
	return -1;
}

void srv_waiters_stop(struct srv *s) {
	struct srv_waiters *ws = s->waiting;
	pthread_mutex_lock(&ws->mu);
	ws->stopping = 1;
	for (struct srv_wait *w = ws->list; w; w = w->next) fire(w);
	pthread_mutex_unlock(&ws->mu);
}

void srv_waiters_free(struct srv *s) {
	struct srv_waiters *ws = s->waiting;
	if (!ws) return;
	uint64_t one = 1;
	if (write(ws->quit, &one, sizeof one) == sizeof one) pthread_join(ws->thread, NULL);
	close(ws->quit);
	close(ws->ep);
	pthread_cond_destroy(&ws->fired);
	pthread_mutex_destroy(&ws->mu);
	free(ws);
	s->waiting = NULL;
}

int srv_waiters_stopping(struct srv *s) {
	struct srv_waiters *ws = s->waiting;
	pthread_mutex_lock(&ws->mu);
	int stopping = ws->stopping;
	pthread_mutex_unlock(&ws->mu);
	return stopping;
}

int srv_waiter_enter(struct srv_req *r, struct srv_wait **out) {
	struct srv *s = r->srv;
	struct srv_waiters *ws = s->waiting;
	*out = NULL;
	if (atomic_fetch_add(&s->waiters, 1) >= SRV_MAX_WAITERS) {
		atomic_fetch_sub(&s->waiters, 1);
		srv_reply_err(r, 503, "busy", 0, "too many long polls and event streams; retry");
		return -1;
	}
	struct srv_wait *w = calloc(1, sizeof *w);
	if (!w || cj_cancel_new(&w->cancel) != CJ_OK) {
		free(w);
		atomic_fetch_sub(&s->waiters, 1);
		srv_reply_cj(r, CJ_NOMEM);
		return -1;
	}
	w->fd = -1;
	w->owner = ws;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci) w->fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0);
	pthread_mutex_lock(&ws->mu);
	w->id = ws->next_id++;
	w->next = ws->list;
	if (ws->list) ws->list->prev = w;
	ws->list = w;
	struct epoll_event ev = {.events = EPOLLRDHUP, .data.u64 = w->id};
	/* without a watch the wait still ends at its deadline or on stop */
	if (w->fd >= 0) epoll_ctl(ws->ep, EPOLL_CTL_ADD, w->fd, &ev);
	if (ws->stopping) cj_cancel_fire(w->cancel);
	pthread_mutex_unlock(&ws->mu);
	*out = w;
	return 0;
}

cj_cancel *srv_wait_cancel(const struct srv_wait *w) { return w->cancel; }

void srv_wait_set_poke(struct srv_wait *w, void (*poke)(void *arg), void *arg) {
	struct srv_waiters *ws = w->owner;
	pthread_mutex_lock(&ws->mu);
	w->poke = poke;
	w->poke_arg = arg;
	if (cj_cancel_fired(w->cancel)) poke(arg);
	pthread_mutex_unlock(&ws->mu);
}

int srv_wait_sleep(struct srv_wait *w, int64_t ms) {
	struct srv_waiters *ws = w->owner;
	struct timespec until;
	cli_deadline(&until, CLOCK_MONOTONIC, ms);
	int rc = 0;
	pthread_mutex_lock(&ws->mu);
	/* fire() sets the flag, then broadcasts under ws->mu: never missed */
	while (!(rc = cj_cancel_fired(w->cancel)))
		if (pthread_cond_timedwait(&ws->fired, &ws->mu, &until) == ETIMEDOUT) break;
	if (!rc) rc = cj_cancel_fired(w->cancel);
	pthread_mutex_unlock(&ws->mu);
	return rc ? -1 : 0;
}

int srv_wait_gone(struct srv_wait *w, struct srv *s) {
	pthread_mutex_lock(&s->waiting->mu);
	int gone = w->gone;
	pthread_mutex_unlock(&s->waiting->mu);
	return gone;
}

void srv_waiter_leave(struct srv *s, struct srv_wait *w) {
	if (!w) return;
	struct srv_waiters *ws = s->waiting;
	pthread_mutex_lock(&ws->mu);
	if (w->prev) w->prev->next = w->next;
	else ws->list = w->next;
	if (w->next) w->next->prev = w->prev;
	if (w->fd >= 0) epoll_ctl(ws->ep, EPOLL_CTL_DEL, w->fd, NULL);
	pthread_mutex_unlock(&ws->mu);
	if (w->fd >= 0) close(w->fd);
	cj_cancel_free(w->cancel);
	free(w);
	atomic_fetch_sub(&s->waiters, 1);
}
