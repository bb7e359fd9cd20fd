/* cjobs work: the per-job watcher. A lease subscription of the job
 * (cj_subscribe_lease()) whose descriptor joins the run loop's poll set,
 * so that a removal, a take-back or another acceptance stops the command
 * at once rather than at the next heartbeat, with no thread and no store
 * call of its own. */
#include "work.h"

#include <string.h>

void watcher_start(struct worker *w, cj_job *job, struct watcher *wt) {
	memset(wt, 0, sizeof *wt);
	wt->fd = -1;
	if (cj_subscribe_lease(w->c->db, job, &wt->sub) != CJ_OK) return;
	if (cj_sub_fd(wt->sub, &wt->fd) != CJ_OK) {
		cj_unsubscribe(wt->sub);
		wt->sub = NULL;
	}
}

void watcher_stop(struct watcher *wt) {
	cj_unsubscribe(wt->sub);
	memset(wt, 0, sizeof *wt);
	wt->fd = -1;
}
