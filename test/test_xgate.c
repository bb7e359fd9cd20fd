/*
 * The embedded engine's log gate (src/engine/lmdb.c, "the log") across
 * processes and fork():
 *  - gate_freed_beside_forked_child: a process that forked a child (one
 *    that lives on without the store, as couchjobs.h allows) is killed (-9)
 *    while it holds the gate (its commit's record written, before its
 *    commit). The gate is a lock of an open file description of the log,
 *    which the child's copy of the descriptor shares: if the child kept
 *    that copy, the lock would outlive its holder for as long as the child
 *    lives, and every later commit of every process would wait for it.
 *
 * White-box: the process is stopped with the library's hold points
 * (src/fault.c, CJ_FAULTS builds only).
 */
#include "cj_int.h"
#include "testutil.h"

#include <signal.h>
#include <unistd.h>

#define WAIT_MS 30000 /* generous: the machine may be loaded */

struct holder {
	t_gate at;         /* opened by the holder at the hold point */
	t_gate go;         /* never opened: it holds until killed */
	t_gate child_done; /* its forked child ends once this is opened */
	t_gate added;      /* opened by a later process once its call is done */
};

static int holder(void *p) {
	struct holder *h = p;
	cj_db *db = open_nomon();
	pid_t k = fork();
	if (k == 0) {
		/* the child: touches nothing of the store, and lives on */
		(void)t_gate_wait(&h->child_done, 4 * WAIT_MS);
		_exit(0);
	}
	CHECK(k > 0);
	cj__fault_hold(CJ_HOLD_LOG_WRITTEN, h->at.fd[1], h->go.fd[0]);
	CHECK_OK(cj_add(db, NULL, "xg", "held", NULL, 0));
	return 97; /* not reached: killed at the hold point */
}

static int adder(void *p) {
	struct holder *h = p;
	cj_db *db = open_nomon();
	CHECK_OK(cj_add(db, NULL, "xg", "after", NULL, 0));
	t_gate_open(&h->added);
	cj_close(db);
	return 0;
}

TEST(gate_freed_beside_forked_child) {
	SKIP_UNLESS_LMDB();
	setup_type("xg", 3600);
	struct holder h;
	gates_init(&h.at, &h.go, &h.child_done, &h.added);
	int hp = spawn_ready(holder, &h, &h.at, WAIT_MS);
	CHECK(kill(hp, SIGKILL) == 0);
	CHECK(t_join(hp, WAIT_MS) == 128 + SIGKILL);
	/* the holder is dead, its child alive: another process commits */
	int ap = t_spawn(adder, &h);
	int added = t_gate_wait(&h.added, WAIT_MS) == 0;
	t_gate_open(&h.child_done); /* it ends now, whatever happened */
	CHECK(t_join(ap, WAIT_MS) == 0);
	CHECK(added);
	cj_db *db = open_nomon();
	CHECK(state_of(db, "xg", "after") == CJ_PENDING);
	cj_state st;
	CHECK(cj_get_job_state(db, NULL, "xg", "held", &st) == CJ_NOT_FOUND);
	cj_close(db);
	gates_close(&h.at, &h.go, &h.child_done, &h.added);
}

TEST_MAIN_VERIFIED(ENTRY(gate_freed_beside_forked_child))
