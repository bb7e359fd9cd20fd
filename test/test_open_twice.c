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
 *  - store_made_again_under_a_handle: the store's files removed and the
 *    store made again at its path (or the whole directory) while a handle
 *    is open: another open is of the new store, whose writes another
 *    process sees; the old handle's environment is not handed out.
 *  - data_file_replaced_under_a_handle: data.mdb alone replaced while a
 *    handle is open (the old lock file in use by it): another open fails
 *    with CJ_STORE until the old handle is closed, then opens the new one.
 */
#include "testutil.h"

#include <dirent.h>
#include <poll.h>
#include <stdio.h>
#include <sys/stat.h>
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

/* The store's directory. */
static const char *store_dir(void) { return t_url() + strlen("lmdb:"); }

/* Removes every file in the store's directory. */
static void remove_store_files(void) {
	DIR *d = opendir(store_dir());
	CHECK(d != NULL);
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			CHECK(unlinkat(dirfd(d), e->d_name, 0) == 0);
	closedir(d);
}

/* Another process: the store holds job arg and nothing else of type tw. */
static int child_sees(void *v) {
	cj_db *db = open_nomon();
	check_job_is(db, "tw", v, CJ_PENDING, "{}");
	CHECK_INT(count_jobs(db, "tw"), 1);
	cj_close(db);
	return 0;
}

/* Makes the store again at its path while a handle on the old one is open,
 * adds job id through a new handle, and checks that another process sees
 * it; then the old handle still works on the old store. */
static void made_again(cj_db *old, const char *id) {
	setup_type("tw", 3600);
	cj_db *db = open_nomon();
	CHECK_OK(cj_add(db, NULL, "tw", id, "{}", 0));
	check_exit(t_spawn(child_sees, (void *)id), WAIT_MS, 0);
	cj_close(db);
	CHECK_OK(cj_add(old, NULL, "tw", "more", "{}", 0));
	check_job_is(old, "tw", "more", CJ_PENDING, "{}");
}

TEST(store_made_again_under_a_handle) {
	SKIP_UNLESS_LMDB();
	setup_type("tw", 3600);
	cj_db *a = open_nomon();
	CHECK_OK(cj_add(a, NULL, "tw", "a", "{}", 0));
	remove_store_files();
	made_again(a, "b");

	/* the whole directory: a's environment holds the old one open, so the
	 * new one is another inode and another store */
	cj_db *b = open_nomon();
	remove_store_files();
	CHECK(rmdir(store_dir()) == 0);
	CHECK(mkdir(store_dir(), 0700) == 0);
	made_again(b, "c");
	cj_close(b);
	cj_close(a);
	cj_db *db = open_nomon();
	check_job_is(db, "tw", "c", CJ_PENDING, "{}");
	check_store(db, NULL, NULL);
	cj_close(db);
}

TEST(data_file_replaced_under_a_handle) {
	SKIP_UNLESS_LMDB();
	/* another store, whose data file replaces this one's */
	char other[4096], from[4200], to[4200];
	snprintf(other, sizeof other, "%s-other", store_dir());
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db;
	CHECK_OK(cj_open(other, &o, &db));
	CHECK_OK(cj_set_type_timeout(db, "tw", 3600));
	CHECK_OK(cj_add(db, NULL, "tw", "other", "{}", 0));
	cj_close(db);

	setup_type("tw", 3600);
	cj_db *a = open_nomon();
	CHECK_OK(cj_add(a, NULL, "tw", "a", "{}", 0));
	snprintf(from, sizeof from, "%s/data.mdb", other);
	snprintf(to, sizeof to, "%s/data.mdb", store_dir());
	CHECK(rename(from, to) == 0);
	/* a's lock file is the store's: a second environment on it would undo
	 * a's locks, and a's own is on the file that is gone */
	db = (cj_db *)&db;
	CHECK_RC(cj_open(t_url(), &o, &db), CJ_STORE);
	CHECK(db == NULL);
	CHECK_DETAIL("replaced");
	CHECK_OK(cj_add(a, NULL, "tw", "a1", "{}", 0));
	cj_close(a);
	/* once closed, the store is the new data file */
	db = open_nomon();
	check_job_is(db, "tw", "other", CJ_PENDING, "{}");
	CHECK_INT(count_jobs(db, "tw"), 1);
	check_store(db, NULL, NULL);
	cj_close(db);
}

TEST_MAIN_VERIFIED(ENTRY(two_handles_one_writer), ENTRY(other_sync_mode_refused),
                   ENTRY(child_after_fork_opens_afresh),
                   ENTRY(store_made_again_under_a_handle),
                   ENTRY(data_file_replaced_under_a_handle))
