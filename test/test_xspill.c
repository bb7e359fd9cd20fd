/*
 * The embedded engine's spill guard (src/engine/lmdb.c, "the spill
 * guard"): a transaction whose bound of dirty pages comes near LMDB's
 * spill threshold takes the log's gate, makes sure the checkpoint is
 * pinned, and holds the gate to its end. Here the fault-injection hook
 * CJ_TEST_SPILL_PAGES=1 makes every transaction's first change run it, and
 * each case checks that the gate is free again after every way such a
 * transaction ends, seen from another open file description of the log (a
 * lock of its second byte, as another process would see it), and that the
 * next transaction commits (a gate left taken within the process would
 * make it wait for ever: each such commit runs in a child, waited for
 * within a bound):
 *  - guard_held_to_commit, guard_freed_on_abort: a commit (whose own log
 *    write must not take the gate again) and an abort;
 *  - guard_checkpoints_unpinned: a store opened alone after a close (its
 *    checkpoint unpinned): the guard makes a checkpoint, and the data is
 *    there after a reopen;
 *  - guard_freed_on_map_full: a put that finds the map full (CJ_CONFLICT),
 *    whose abort grows the map (which takes the gate to let go of the pin);
 *  - guard_freed_on_faults: the faulty engine's I/O errors and lost
 *    connections at every operation of a transaction of nested calls;
 *  - guard_freed_when_killed: a process killed (-9) holding it.
 * White-box: the hook, the guard's counters and the hold point exist in
 * CJ_FAULTS builds only (sanitizer builds, where the tests run).
 */
#include "cj_int.h"
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#define WAIT_MS 30000 /* generous: the machine may be loaded */

/* 1 if the log's gate (its second byte) is locked by any open file
 * description, this process's included. */
static int gate_held(void) {
	char path[4200];
	snprintf(path, sizeof path, "%s/store/log", t_dir());
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	CHECK(fd >= 0);
	struct flock f;
	memset(&f, 0, sizeof f);
	f.l_type = F_WRLCK;
	f.l_whence = SEEK_SET;
	f.l_start = 1;
	f.l_len = 1;
	CHECK(fcntl(fd, F_OFD_GETLK, &f) == 0);
	close(fd);
	return f.l_type != F_UNLCK;
}

static long guards(void) {
	long g, c;
	cj__lme_spill_counts(&g, &c);
	return g;
}

static long guard_ckpts(void) {
	long g, c;
	cj__lme_spill_counts(&g, &c);
	return c;
}

/* A transaction putting key = val, committed. */
static int put_commit(cj_db *db, const char *key, const char *val) {
	cj_tx *tx;
	int rc = cj_tx_begin(db, &tx);
	if (rc) return rc;
	if ((rc = put_str(tx, key, val)) != CJ_OK) {
		cj_tx_abort(tx);
		return rc;
	}
	return cj_tx_commit(tx);
}

static int later_commit(void *p) {
	cj_db *db = open_nomon();
	CHECK_OK(put_commit(db, (const char *)p, "later"));
	cj_close(db);
	return 0;
}

/* The gate is free, and another process commits (within a bound). */
static void check_free(const char *key) {
	CHECK(!gate_held());
	check_exit(t_spawn(later_commit, (void *)key), WAIT_MS, 0);
}

static void hooked(void) {
	CHECK(setenv("CJ_TEST_SPILL_PAGES", "1", 1) == 0);
}

TEST(guard_held_to_commit) {
	SKIP_UNLESS_LMDB();
	hooked();
	cj_db *db = open_nomon();
	long g0 = guards();
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK(!gate_held());
	CHECK_OK(put_str(tx, "k1", "v1"));
	CHECK(guards() == g0 + 1);
	CHECK(gate_held()); /* held from the guard ... */
	CHECK_OK(put_str(tx, "k2", "v2"));
	CHECK(guards() == g0 + 1); /* once a transaction */
	CHECK_OK(cj_tx_commit(tx)); /* ... to the commit, which takes it as its own */
	check_free("after-commit");
	check_kv(db, "k1", "v1");
	check_kv(db, "k2", "v2");
	check_kv(db, "after-commit", "later");
	cj_close(db);
}

TEST(guard_freed_on_abort) {
	SKIP_UNLESS_LMDB();
	hooked();
	cj_db *db = open_nomon();
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(put_str(tx, "k1", "v1"));
	CHECK(gate_held());
	cj_tx_abort(tx);
	check_free("after-abort");
	/* and this process's next transaction: the gate within it too */
	CHECK_OK(put_commit(db, "k2", "v2"));
	CHECK(!gate_held());
	cj_tx *rt;
	void *v;
	size_t vl;
	CHECK_OK(cj_tx_begin(db, &rt));
	CHECK_RC(cj_tx_get(rt, "k1", 2, &v, &vl), CJ_NOT_FOUND);
	cj_tx_abort(rt);
	check_kv(db, "k2", "v2");
	cj_close(db);
}

TEST(guard_checkpoints_unpinned) {
	SKIP_UNLESS_LMDB();
	hooked();
	cj_db *db = open_nomon();
	CHECK_OK(put_commit(db, "k1", "v1"));
	cj_close(db); /* its pin goes: the checkpoint is marked unpinned */
	db = open_nomon(); /* alone: no checkpoint until a writer makes one */
	long c0 = guard_ckpts();
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(put_str(tx, "k2", "v2"));
	CHECK(guard_ckpts() == c0 + 1);
	CHECK_OK(put_str(tx, "k3", "v3"));
	CHECK_OK(cj_tx_commit(tx));
	CHECK_OK(put_commit(db, "k4", "v4")); /* pinned by this process now */
	CHECK(guard_ckpts() == c0 + 1);
	cj_close(db);
	check_free("after");
	db = open_nomon();
	check_kv(db, "k1", "v1");
	check_kv(db, "k2", "v2");
	check_kv(db, "k3", "v3");
	check_kv(db, "k4", "v4");
	cj_close(db);
}

TEST(guard_freed_on_map_full) {
	SKIP_UNLESS_LMDB();
	hooked();
	cj_close(open_nomon()); /* made with the default map */
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	o.map_size = 1; /* the smallest: the file's length */
	o.max_data_size = (size_t)8 << 20;
	cj_db *db = t_open_opts(&o);
	size_t n = (size_t)4 << 20;
	char *big = malloc(n);
	CHECK(big != NULL);
	memset(big, 'b', n);
	int rc = CJ_CONFLICT, conflicts = 0;
	for (int tries = 0; rc == CJ_CONFLICT && tries < 20; tries++) {
		cj_tx *tx;
		CHECK_OK(cj_tx_begin(db, &tx));
		rc = cj_tx_put(tx, "big", 3, big, n);
		if (rc == CJ_CONFLICT) {
			conflicts++;
			CHECK(gate_held()); /* the guard ran before the put */
			cj_tx_abort(tx); /* grows the map, after freeing the gate */
			CHECK(!gate_held());
			continue;
		}
		CHECK_OK(rc);
		rc = cj_tx_commit(tx);
	}
	CHECK_OK(rc);
	CHECK(conflicts > 0);
	free(big);
	check_free("after");
	cj_close(db);
}

/* A transaction of two calls run as nested transactions of one commit
 * (couchjobs.h's cj_add in a caller's transaction: combine.c's and
 * group.c's nesting is the engine's begin_nested) and a put. */
static int nested_tx(cj_db *db, int i) {
	cj_tx *tx;
	int rc = cj_tx_begin(db, &tx);
	if (rc) return rc;
	char id[32], key[32];
	snprintf(id, sizeof id, "j%d", i);
	snprintf(key, sizeof key, "f%d", i);
	if ((rc = cj_add(db, tx, "sg", id, NULL, 0)) || (rc = put_str(tx, key, "x"))) {
		cj_tx_abort(tx);
		return rc;
	}
	return cj_tx_commit(tx);
}

TEST(guard_freed_on_faults) {
	SKIP_UNLESS_LMDB();
	hooked();
	setup_type("sg", 3600);
	cj_db *db = open_nomon();
	char furl[8300];
	snprintf(furl, sizeof furl, "faulty:%s", t_url());
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	int kinds[2] = {CJ_FAULT_IO, CJ_FAULT_LOST}, runs = 0;
	for (int k = 0; k < 2; k++) {
		for (long n = 1;; n++) {
			cj_db *f;
			CHECK_OK(cj_open(furl, &o, &f));
			cj__fault_engine(n, kinds[k], 0);
			int rc = nested_tx(f, (int)(k * 1000 + n));
			long hits = cj__fault_engine_hits();
			cj__fault_engine(0, 0, 0);
			cj_close(f);
			CHECK(!gate_held());
			/* the real handle's next transaction, in this process */
			CHECK_OK(put_commit(db, "probe", "x"));
			runs++;
			if (!hits) {
				CHECK_OK(rc);
				break;
			}
			CHECK(n < 50);
		}
	}
	note("  %d runs, %ld guard runs\n", runs, guards());
	CHECK(guards() >= runs);
	check_free("after");
	cj_close(db);
}

struct killed {
	t_gate at, go;
};

static int guard_holder(void *p) {
	struct killed *h = p;
	cj_db *db = open_nomon();
	cj__fault_hold(CJ_HOLD_SPILL_GUARDED, h->at.fd[1], h->go.fd[0]);
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(put_str(tx, "held", "x"));
	return 97; /* not reached: killed at the hold point */
}

TEST(guard_freed_when_killed) {
	SKIP_UNLESS_LMDB();
	hooked();
	cj_db *db = open_nomon();
	CHECK_OK(put_commit(db, "k1", "v1"));
	struct killed h;
	t_gate_init(&h.at);
	t_gate_init(&h.go);
	int pid = t_spawn(guard_holder, &h);
	CHECK(t_gate_wait(&h.at, WAIT_MS) == 0);
	CHECK(gate_held());
	CHECK(kill(pid, SIGKILL) == 0);
	CHECK(t_join(pid, WAIT_MS) == 128 + SIGKILL);
	check_free("after");
	CHECK_OK(put_commit(db, "k2", "v2"));
	cj_tx *rt;
	void *v;
	size_t vl;
	CHECK_OK(cj_tx_begin(db, &rt));
	CHECK_RC(cj_tx_get(rt, "held", 4, &v, &vl), CJ_NOT_FOUND);
	cj_tx_abort(rt);
	check_kv(db, "k2", "v2");
	t_gate_close(&h.at);
	t_gate_close(&h.go);
	cj_close(db);
}

TEST_MAIN_VERIFIED(ENTRY(guard_held_to_commit), ENTRY(guard_freed_on_abort),
                   ENTRY(guard_checkpoints_unpinned), ENTRY(guard_freed_on_map_full),
                   ENTRY(guard_freed_on_faults), ENTRY(guard_freed_when_killed))
