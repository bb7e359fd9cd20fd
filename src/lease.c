/* Leases: waiting until a processor's job is no longer its own. The
 * watching itself is a lease subscription (sub.c); this is the blocking
 * call on top of it and the names of the reasons. */
#include "cj_int.h"

const char *cj_lost_name(int reason) {
	switch (reason) {
	case CJ_LOST_NONE: return "held";
	case CJ_LOST_REMOVED: return "removed";
	case CJ_LOST_TAKEN_BACK: return "taken back";
	case CJ_LOST_REACCEPTED: return "accepted again";
	case CJ_LOST_FINISHED: return "finished";
	default: return "unknown";
	}
}

int cj_job_wait_lost(cj_db *db, const cj_job *job, int64_t timeout_ms, cj_cancel *cancel,
                     cj_lost *reason) {
	if (reason) *reason = CJ_LOST_NONE;
	if (!db || !job) return cj__fail(CJ_INVALID, "NULL argument");
	if (timeout_ms < -1) return cj__fail(CJ_INVALID, "timeout_ms below -1");
	if (cj_cancel_fired(cancel)) return cj__fail(CJ_CANCELED, "the wait was cancelled");
	cj_sub *sub;
	int rc = cj_subscribe_lease(db, job, &sub);
	if (rc) return rc;
	cj_sub_set_cancel(sub, cancel);
	cj_event ev;
	rc = cj_wait(&sub, 1, 0, timeout_ms, &ev);
	cj_event_clear(&ev);
	if (rc == CJ_OK && reason) *reason = cj_sub_lost(sub);
	cj_unsubscribe(sub);
	if (rc == CJ_TIMEOUT) return cj__fail(CJ_TIMEOUT, "the job is still held with this lock");
	return rc;
}
