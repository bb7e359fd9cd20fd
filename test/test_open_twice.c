/*
 * One embedded store opened more than once in one process (a server and a
 * library in one program, two modules): the opens share one environment
 * (src/engine/lmdb.c, "one environment per store in a process").
 *  - two_handles_one_writer: two handles on the store, one closed, writes
 *    go on through the other while another process opens the store and
 *    writes: while this process holds a write transaction the other waits
 *    for it (no two writers at once), every acknowledged job is there, the
 *    store verifies, and again after both are closed and it is reopened.
 *  - other_sync_mode_refused: a second open asking for another sync mode
 *    fails with CJ_INVALID and changes nothing; the first handle works on.
 *  - child_after_fork_opens_afresh: a child forked while its parent has
 *    the store open opens it for itself and writes, and so does the parent
 *    after it.
 */
#include "testutil.h"

#include <poll.h>
#include <unistd.h>

#define WAIT_MS 60000 /* generous: the machine may be loaded */

struct other {
	t_gate go;
	chan done; /* the result of its cj_add, once it returned */
};

/* Another process: opens the store and adds job "other". */
static int other(void *v) {
	struct other *o = v;
	if (t_gate_wait(&o->go, WAIT_MS) != 0) return 90;
	cj_db *db = open_nomon(); /* a write transaction: it waits too */
	chan_put(&o->done, cj_add(db, NULL, "tw", "other", "{}", 0));
	cj_close(db);
	return 0;
}

TEST(two_handles_one_writer) {
	SKIP_UNLESS_LMDB();
	setup_type("tw", 3600);
	cj_db *a = open_nomon(), *b = open_nomon();
	CHECK_OK(cj_add(a, NULL, "tw", "a0", "{}", 0));
	CHECK_OK(cj_add(b, NULL, "tw", "b0", "{}", 0));
	cj_close(a);
	CHECK_OK(cj_add(b, NULL, "tw", "b1", "{}", 0));

	static struct other o;
	t_gate_init(&o.go);
	chan_init(&o.done);
	int op = t_spawn(other, &o);
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(b, &tx)); /* the store's writer, until it commits */
	CHECK_OK(cj_add(b, tx, "tw", "intx", "{}", 0));
	t_gate_open(&o.go);
	/* the other process must wait for this transaction: it had not
	 * returned after this long if it did */
	sleep_ms(1500);
	struct pollfd pf = {o.done.fd[0], POLLIN, 0};
	CHECK_INT(poll(&pf, 1, 0), 0);
	CHECK_OK(cj_tx_commit(tx));
	CHECK_INT(chan_get(&o.done, WAIT_MS), CJ_OK);
	check_exit(op, WAIT_MS, 0);
	t_gate_close(&o.go);
	chan_close(&o.done);

	CHECK_OK(cj_add(b, NULL, "tw", "b2", "{}", 0));
	static const char *const ids[] = {"a0", "b0", "b1", "intx", "other", "b2"};
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
		check_job_is(b, "tw", ids[i], CJ_PENDING, "{}");
	check_store(b, NULL, NULL);
	cj_close(b);

	cj_db *db = open_nomon();
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
		check_job_is(db, "tw", ids[i], CJ_PENDING, "{}");
	CHECK_INT(count_jobs(db, "tw"), 6);
	check_store(db, NULL, NULL);
	cj_close(db);
}

TEST(other_sync_mode_refused) {
	SKIP_UNLESS_LMDB();
	setup_type("tw", 3600);
	cj_db *a = open_nomon(), *b = (cj_db *)&b;
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	o.sync = CJ_SYNC_RELAXED;
	CHECK_RC(cj_open(t_url(), &o, &b), CJ_INVALID);
	CHECK(b == NULL);
	CHECK_DETAIL("another sync mode");
	CHECK_OK(cj_add(a, NULL, "tw", "a0", "{}", 0));
	cj_close(a);
	/* once closed, the store opens in either mode */
	CHECK_OK(cj_open(t_url(), &o, &b));
	check_job_is(b, "tw", "a0", CJ_PENDING, "{}");
	cj_close(b);
}

static int child_adds(void *v) {
	(void)v;
	cj_db *db = open_nomon();
	CHECK_OK(cj_add(db, NULL, "tw", "child", "{}", 0));
	check_store(db, NULL, NULL);
	cj_close(db);
	return 0;
}

TEST(child_after_fork_opens_afresh) {
	SKIP_UNLESS_LMDB();
	setup_type("tw", 3600);
	cj_db *db = open_nomon();
	CHECK_OK(cj_add(db, NULL, "tw", "parent0", "{}", 0));
	check_exit(t_spawn(child_adds, NULL), WAIT_MS, 0);
	CHECK_OK(cj_add(db, NULL, "tw", "parent1", "{}", 0));
	check_job_is(db, "tw", "child", CJ_PENDING, "{}");
	CHECK_INT(count_jobs(db, "tw"), 3);
	check_store(db, NULL, NULL);
	cj_close(db);
}

TEST_MAIN_VERIFIED(ENTRY(two_handles_one_writer), ENTRY(other_sync_mode_refused),
                   ENTRY(child_after_fork_opens_afresh))
