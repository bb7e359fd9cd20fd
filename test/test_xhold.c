/*
 * Calls combined across processes (src/combine.c), with processes stopped
 * and killed at exact points of the protocol:
 *  - kill9_leader_handing_on: a leader killed while it hands the lead to a
 *    call another process posted (between the slot's word and the
 *    leader's): that call is still run, and later calls of every process
 *    too; nothing of the dead leader's uncommitted batch landed.
 *  - kill9_leader_after_commit_beside_layout_1: with the combine file's
 *    start held by processes of its first layout, a leader killed after
 *    the commit of a batch holding another process's finish, before it
 *    tells it; a leader of the first layout commits receipts of its own
 *    slots (of the same numbers) before that process reads its receipt:
 *    the finish is still known to have committed (CJ_OK, once: run again
 *    it would give CJ_HALT).
 *
 * White-box: processes are stopped with the library's hold points
 * (src/fault.c, CJ_FAULTS builds only; test/held.h).
 */
#include "cj_int.h"
#include "held.h"

#include <signal.h>
#include <unistd.h>

#define WAIT_MS 30000 /* generous: the machine may be loaded */

TEST(kill9_leader_handing_on) {
	SKIP_UNLESS_LMDB();
	setup_type("xh", 3600);
	struct held l, p;
	/* L leads a batch of its own call and stops once it ran it */
	int lpid = held_start(&l, "xh", "l", CJ_HOLD_COMBINE_RAN, 1, CJ_HOLD_COMBINE_HAND_ON, 1);
	int ppid = held_start(&p, "xh", "p", CJ_HOLD_COMBINE_POSTED, 0, -1, 0);
	held_go(&l);
	held_at(&l, 0);
	/* P's call is posted for L */
	held_go(&p);
	held_at(&p, 0);
	/* L hands the lead to P's call, and is killed while it does */
	t_gate_open(&l.go[0]);
	held_at(&l, 1);
	kill(lpid, SIGKILL);
	check_exit(lpid, WAIT_MS, 128 + SIGKILL);
	CHECK(t_gate_wait(&p.acked, WAIT_MS) == 0);
	check_exit(ppid, WAIT_MS, 0);
	held_close(&l);
	held_close(&p);

	/* and the calls of the others go on */
	add_job("xh", "after", NULL);
	cj_db *db = open_nomon();
	CHECK_INT(state_of(db, "xh", "p"), CJ_PENDING);
	CHECK_INT(state_of(db, "xh", "after"), CJ_PENDING);
	cj_state st;
	CHECK_RC(cj_get_job_state(db, NULL, "xh", "l", &st), CJ_NOT_FOUND);
	cj_close(db);
}

/* A process of the combine file's first layout: it leads batches in
 * the slots at the file's start, and commits the receipts of its own
 * slots 0 .. 63 (engine.h's receipt_put), of the same store. */
static void layout_1_leader_commits(void) {
	cj_db *db = open_nomon();
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_add(db, tx, "xh", "layout-1", NULL, 0));
	for (unsigned i = 0; i < 64; i++) CHECK_OK(cj__tx_receipt(tx, i, 0x5eed0000u + i));
	CHECK_OK(cj_tx_commit(tx));
	cj_close(db);
}

TEST(kill9_leader_after_commit_beside_layout_1) {
	SKIP_UNLESS_LMDB();
	setup_type("xh", 3600);
	add_job("xh", "fin", NULL);
	char lock[40];
	{
		cj_db *db = open_nomon();
		cj_job *job = take_id(db, "xh", "fin");
		snprintf(lock, sizeof lock, "%s", cj_job_lock(job));
		cj_job_free(job);
		cj_close(db);
	}
	combine_mark_layout_1(); /* processes of the first layout hold the file's start */
	struct held l, p;
	/* L leads, and stops before it takes the calls posted */
	held_init(&l, "xh", "l", CJ_HOLD_COMBINE_LEAD, 1, -1, 0);
	l.kill_at = "publish";
	int lpid = held_spawn(&l);
	/* P's finish is posted for L; P stops once it found L dead */
	held_init(&p, "xh", "fin", CJ_HOLD_COMBINE_POSTED, 0, CJ_HOLD_COMBINE_CHECK, 1);
	p.lock = lock;
	int ppid = held_spawn(&p);
	held_go(&l);
	held_at(&l, 0);
	held_go(&p);
	held_at(&p, 0);
	/* L runs P's finish with its own add, commits, and is killed */
	t_gate_open(&l.go[0]);
	check_exit(lpid, WAIT_MS, 128 + SIGKILL);
	held_at(&p, 1);
	layout_1_leader_commits();
	t_gate_open(&p.go[1]);
	CHECK(t_gate_wait(&p.acked, WAIT_MS) == 0);
	check_exit(ppid, WAIT_MS, 0);
	held_close(&l);
	held_close(&p);

	cj_db *db = open_nomon();
	CHECK_INT(state_of(db, "xh", "fin"), CJ_FINISHED);
	CHECK_INT(state_of(db, "xh", "l"), CJ_PENDING);
	cj_close(db);
}

TEST_MAIN_VERIFIED(ENTRY(kill9_leader_handing_on),
                   ENTRY(kill9_leader_after_commit_beside_layout_1))
