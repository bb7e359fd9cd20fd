/* cjobs work: the slot scheduler.
 *
 * One acceptor thread takes jobs for the idle slots, as many as there are
 * idle slots in one cj_accept_many() call, and queues them; the slot threads
 * take them from the queue and run them. w->running counts the jobs taken
 * and not yet done (queued or running): the acceptor takes jobs only while
 * it is below the number of slots, so a queued job always has a free slot
 * waiting for it and is started at once.
 *
 * The acceptor blocks in cj_accept_many() without a timeout (unless
 * --timeout-exit asks for one while nothing runs); w->cancel ends that
 * wait. It is fired, under w->mu, by a stop, and by the slot that ends the
 * last running job when --timeout-exit is set (the idle time starts then);
 * the acceptor replaces a fired cancellation when it is not stopping.
 */
#include "work.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>

/* Takes up to `want` tickets for --max-jobs; returns how many (0: the
 * tickets are used up). */
static int take_tickets(struct worker *w, int want) {
	if (!w->max_jobs) return want;
	long long t = atomic_load(&w->tickets);
	for (;;) {
		long long k = w->max_jobs - t;
		if (k <= 0) return 0;
		if (k > want) k = want;
		if (atomic_compare_exchange_weak(&w->tickets, &t, t + k)) return (int)k;
	}
}

static void give_back_tickets(struct worker *w, int k) {
	if (w->max_jobs && k > 0) atomic_fetch_sub(&w->tickets, k);
}

void begin_stop(struct worker *w) {
	if (!atomic_exchange(&w->stopping, 1))
		atomic_store(&w->deadline, cli_now_ms() + w->grace_ms);
	pthread_mutex_lock(&w->mu);
	cj_cancel_fire(w->cancel);
	pthread_cond_broadcast(&w->slot_free);
	pthread_cond_broadcast(&w->queued);
	pthread_mutex_unlock(&w->mu);
	poke_slots(w);
}

void stop_failed(struct worker *w) {
	atomic_store(&w->failed, 1);
	begin_stop(w);
}

void end_accepting(struct worker *w) {
	pthread_mutex_lock(&w->mu);
	w->accept_done = 1;
	pthread_cond_broadcast(&w->queued);
	pthread_mutex_unlock(&w->mu);
}

void thread_done(struct worker *w) {
	if (atomic_fetch_sub(&w->alive, 1) == 1) eventfd_write(w->done_fd, 1);
}

/* After a failed accept: waits ms, or less if a stop comes. */
static void accept_pause(struct worker *w, int64_t ms) {
	struct timespec ts; /* slot_free runs on CLOCK_MONOTONIC */
	cli_deadline(&ts, CLOCK_MONOTONIC, ms);
	pthread_mutex_lock(&w->mu);
	while (!atomic_load(&w->stopping))
		if (pthread_cond_timedwait(&w->slot_free, &w->mu, &ts) == ETIMEDOUT) break;
	pthread_mutex_unlock(&w->mu);
}

/* Waits for an idle slot; returns how many are idle, with w->cancel usable
 * (a fresh one if the last was fired, unless stopping), in *cancel. */
static int wait_idle_slot(struct worker *w, cj_cancel **cancel) {
	pthread_mutex_lock(&w->mu);
	while (!atomic_load(&w->stopping) && atomic_load(&w->running) >= w->nslots)
		pthread_cond_wait(&w->slot_free, &w->mu);
	int idle = w->nslots - atomic_load(&w->running);
	if (!atomic_load(&w->stopping) && cj_cancel_fired(w->cancel)) {
		cj_cancel *fresh = NULL;
		if (cj_cancel_new(&fresh) == CJ_OK) {
			cj_cancel_free(w->cancel);
			w->cancel = fresh;
		}
	}
	*cancel = w->cancel;
	pthread_mutex_unlock(&w->mu);
	return idle;
}

void *accept_main(void *arg) {
	struct worker *w = arg;
	int64_t backoff = 0;
	for (;;) {
		cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
		int idle = wait_idle_slot(w, &o.cancel);
		if (atomic_load(&w->stopping) || atomic_load(&w->draining)) break;

		int k = take_tickets(w, idle);
		if (!k) {
			atomic_store(&w->draining, 1);
			break;
		}
		if (w->idle_exit_ms >= 0 && atomic_load(&w->running) == 0) {
			/* idle: wait until the idle time is up */
			int64_t left = atomic_load(&w->last_busy) + w->idle_exit_ms - cli_now_ms();
			if (left <= 0) {
				give_back_tickets(w, k);
				atomic_store(&w->draining, 1);
				break;
			}
			o.timeout_ms = left;
		}
		size_t n = 0;
		int rc = cj_accept_many_types(w->c->db, w->types, w->ntypes, &o, (size_t)k, w->jobs,
		                              w->data, &n);
		if (rc != CJ_OK) give_back_tickets(w, k);
		if (rc == CJ_NOT_FOUND || rc == CJ_CANCELED) continue;
		if (rc != CJ_OK) {
			if (!outage_failed(w, rc, "accept")) {
				store_broken(w, rc, "cannot accept a job");
				break;
			}
			accept_pause(w, outage_wait_ms(&backoff));
			continue;
		}
		outage_ended(w);
		backoff = 0;
		give_back_tickets(w, k - (int)n);
		/* queue them; the slot threads run them, or hand them back when a
		 * stop came meanwhile */
		pthread_mutex_lock(&w->mu);
		for (size_t i = 0; i < n; i++) {
			struct queued_job *q = &w->queue[(w->qhead + w->qlen) % w->nslots];
			q->job = w->jobs[i];
			q->data = w->data[i];
			w->jobs[i] = NULL;
			w->data[i] = NULL;
			w->qlen++;
		}
		atomic_fetch_add(&w->running, (int)n);
		atomic_store(&w->last_busy, cli_now_ms());
		if (n == 1)
			pthread_cond_signal(&w->queued);
		else
			pthread_cond_broadcast(&w->queued);
		pthread_mutex_unlock(&w->mu);
	}
	end_accepting(w);
	thread_done(w);
	return NULL;
}

void *slot_main(void *arg) {
	struct worker *w = arg;
	int slot = atomic_fetch_add(&w->next_slot, 1);
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->qlen && !w->accept_done) pthread_cond_wait(&w->queued, &w->mu);
		if (!w->qlen) break; /* nothing queued, nothing to come */
		struct queued_job q = w->queue[w->qhead];
		w->qhead = (w->qhead + 1) % w->nslots;
		w->qlen--;
		pthread_mutex_unlock(&w->mu);

		run_job(w, slot, q.job, q.data ? q.data : "{}");
		cj_free(q.data);
		cj_job_free(q.job);

		pthread_mutex_lock(&w->mu);
		atomic_store(&w->last_busy, cli_now_ms());
		if (atomic_fetch_sub(&w->running, 1) == 1 && w->idle_exit_ms >= 0)
			cj_cancel_fire(w->cancel); /* the idle time starts now */
		pthread_cond_signal(&w->slot_free);
	}
	pthread_mutex_unlock(&w->mu);
	thread_done(w);
	return NULL;
}
