/*
 * A prune's batch and a removal by another process (another connection)
 * that lands between the batch's scan of the oldest finished jobs and its
 * read of the type's count (src/retention.c, prune_fn): the prune still
 * leaves exactly keep_max.
 *
 * White-box: a hold point (CJ_HOLD_PRUNE_COUNT, src/fault.c) stops the
 * pruning process there, deterministically; built only with CJ_FAULTS.
 * The embedded engine's writers take turns (the removal would wait for
 * the prune's commit), so the race is a server engine's: the case skips
 * on the embedded one.
 */
#include "cj_int.h"
#include "testutil.h"

#include <stdio.h>

struct held_prune {
	t_gate at; /* opened by the prune at its hold point */
	t_gate go; /* opened by the parent to let it go on */
};

/* A process that prunes "h" to 2 finished jobs, held after its first
 * batch's scan. */
static int held_pruner(void *arg) {
	struct held_prune *h = arg;
	cj_db *db = open_nomon();
	cj__fault_hold(CJ_HOLD_PRUNE_COUNT, h->at.fd[1], h->go.fd[0]);
	cj_retention r = CJ_RETENTION_INIT;
	r.keep_max = 2;
	uint64_t n = 0;
	CHECK_OK(cj_prune(db, "h", &r, &n));
	CHECK_INT(n, 2);
	cj_close(db);
	return 0;
}

static int count_finished(const cj_job_info *info, void *arg) {
	if (info->state == CJ_FINISHED) ++*(int *)arg;
	return 0;
}

TEST(prune_remove_between_scan_and_count) {
	if (t_is_lmdb()) {
		note("  skipped: a server engine's case\n");
		return;
	}
	cj_db *db = open_nomon();
	CHECK_OK(cj_set_type_timeout(db, "h", 60));
	char id[16];
	for (int i = 0; i < 5; i++) { /* h0 finished first, h4 last */
		snprintf(id, sizeof id, "h%d", i);
		CHECK_OK(cj_add(db, NULL, "h", id, NULL, 0));
		cj_job *job = take_id(db, "h", id);
		CHECK_OK(cj_finish(db, NULL, job, NULL));
		cj_job_free(job);
	}
	cj_close(db); /* no handle open across the fork */
	struct held_prune h;
	t_gate_init(&h.at);
	t_gate_init(&h.go);
	int pid = t_spawn(held_pruner, &h);
	db = open_nomon();
	CHECK_INT(t_gate_wait(&h.at, 60000), 0); /* it scanned h0..h2 */
	CHECK_OK(cj_remove(db, NULL, "h", "h0"));
	t_gate_open(&h.go);
	CHECK_INT(t_join(pid, 60000), 0);
	t_gate_close(&h.at);
	t_gate_close(&h.go);
	int finished = 0;
	CHECK_OK(cj_list_jobs(db, NULL, "h", count_finished, &finished));
	CHECK_INT(finished, 2);
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof id, "h%d", i);
		cj_state st;
		int rc = cj_get_job_state(db, NULL, "h", id, &st);
		if (i < 3) {
			CHECK_INT(rc, CJ_NOT_FOUND); /* the oldest three are gone */
		} else {
			CHECK_OK(rc);
			CHECK_INT(st, CJ_FINISHED);
		}
	}
	cj_close(db);
	CHECK_STORE();
}

TEST_MAIN(ENTRY(prune_remove_between_scan_and_count))
