/* cjobs work: the per-job watcher. A thread follows the job's subscription
 * so that a removal or a take-back is noticed at once rather than at the
 * next heartbeat; it blocks in cj_wait() until an event comes or its
 * cancellation is fired. */
#include "work.h"

#include <string.h>
#include <sys/eventfd.h>

static void *watch_main(void *arg) {
	struct watcher *wt = arg;
	for (;;) {
		cj_event ev;
		memset(&ev, 0, sizeof ev);
		if (cj_wait(&wt->sub, 1, 0, -1, &ev) != CJ_OK) break; /* cancelled */
		cj_state st = ev.state;
		cj_event_clear(&ev);
		if (st != CJ_RUNNING) {
			atomic_store(wt->changed, 1);
			eventfd_write(wt->wake_fd, 1);
			if (st == CJ_FINISHED || st == CJ_REMOVED) break;
		}
	}
	return NULL;
}

void watcher_start(struct worker *w, cj_job *job, int wake_fd, atomic_int *changed,
                   struct watcher *wt) {
	memset(wt, 0, sizeof *wt);
	wt->wake_fd = wake_fd;
	wt->changed = changed;
	cj_state st;
	if (cj_subscribe(w->c->db, cj_job_type(job), cj_job_id(job), &wt->sub, &st,
	                 NULL) != CJ_OK || !wt->sub)
		return;
	if (cj_cancel_new(&wt->cancel) != CJ_OK) return;
	cj_sub_set_cancel(wt->sub, wt->cancel);
	if (pthread_create(&wt->thread, NULL, watch_main, wt) == 0) wt->started = 1;
}

void watcher_stop(struct watcher *wt) {
	if (wt->started) {
		cj_cancel_fire(wt->cancel);
		pthread_join(wt->thread, NULL);
	}
	cj_unsubscribe(wt->sub);
	cj_cancel_free(wt->cancel);
	memset(wt, 0, sizeof *wt);
}
