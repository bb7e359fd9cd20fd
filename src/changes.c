/*
 * Waiting for any change of any job: the "activity" channel, which every
 * commit that changes a job marks (cj_int.h), for observers that want more
 * than one job's changes (a type's, a whole store's) and read what they
 * watch themselves. A token is taken before the read, so a commit the read
 * missed still ends the next wait.
 */
#include "cj_int.h"

int cj_changes_token(cj_db *db, uint64_t *token) {
	cj__clear_error();
	if (!db || !token) return cj__fail(CJ_INVALID, "NULL argument");
	*token = cj__watch(db, CJ_CHAN_ACTIVITY);
	return CJ_OK;
}

/* A fired cancellation wakes the wait: a bump of its channel. */
static void changes_poke(void *arg) { cj__wake(arg, CJ_CHAN_ACTIVITY); }

int cj_changes_wait(cj_db *db, uint64_t token, int64_t timeout_ms, cj_cancel *cancel) {
	cj__clear_error();
	if (!db) return cj__fail(CJ_INVALID, "NULL db");
	if (timeout_ms < -1)
		return cj__fail(CJ_INVALID, "timeout_ms %lld below -1", (long long)timeout_ms);
	/* a wait whose deadline has passed may not look at the channel: give
	 * "do not wait" a millisecond, so that it tells whether one changed */
	int64_t deadline = cj__deadline_ms(timeout_ms == 0 ? 1 : timeout_ms);
	cj_cancel_hook hook = {NULL, NULL, changes_poke, db};
	if (cancel) cj__cancel_hook(cancel, &hook);
	int rc;
	for (;;) {
		if (cj_cancel_fired(cancel)) {
			rc = cj__fail(CJ_CANCELED, "the wait was cancelled");
			break;
		}
		/* returns at once when a change landed since the token */
		rc = cj__wait(db, CJ_CHAN_ACTIVITY, token, cj__sleep_until(deadline));
		if (cj_cancel_fired(cancel)) continue;
		if (rc == CJ_OK) break;
		if (deadline >= 0 && cj__mono_ms() >= deadline) {
			rc = cj__fail(CJ_TIMEOUT, "no change in time");
			break;
		}
	}
	if (cancel) cj__cancel_unhook(cancel, &hook);
	return rc;
}
