/*
 * The embedded engine's log (src/engine/lmdb.c, "the log") grown by one
 * process while another has the store open: the other must write its
 * records past the size it learnt at its open, in the grown file, instead
 * of taking the file for full and making a checkpoint at every commit
 * (each one flushes data.mdb).
 *
 * The test process opens the store first and commits (it pins the first
 * checkpoint); a child then adds a job whose record does not fit in a new
 * log (512 KiB): its commit makes a checkpoint and grows the file, and the
 * child stays alive with the store open (its read transaction pins that
 * checkpoint). The test process then adds jobs whose records land past
 * 512 KiB, far fewer bytes than make a checkpoint due: no checkpoint may
 * be made.
 *
 * White-box: checkpoints are counted by the log's generation, word 6 of
 * the store's flush file (doc/format.md).
 */
#include "testutil.h"

#include <fcntl.h>
#include <unistd.h>

#define WAIT_MS 60000 /* generous: the machine may be loaded */
#define BIG (400 << 10) /* a job's data: more than a new log's record area */
#define SMALL 2000
#define ADDS 30 /* SMALL records past 512 KiB: about 60 KiB, no checkpoint due */

static uint64_t generation(void) {
	char p[4096];
	snprintf(p, sizeof p, "%s/store/flush", t_dir());
	int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	CHECK(fd >= 0);
	uint64_t g = 0;
	CHECK(pread(fd, &g, sizeof g, 6 * sizeof g) == (ssize_t)sizeof g);
	close(fd);
	return g;
}

static char *data_of(size_t n) {
	char *d = malloc(n + 1);
	CHECK(d != NULL);
	memset(d, 'x', n);
	memcpy(d, "{\"d\":\"", 6);
	memcpy(d + n - 2, "\"}", 3);
	return d;
}

struct grower {
	t_gate grown; /* opened once its big job is added */
	t_gate end;   /* it closes the store and ends once this is opened */
};

static int grower(void *p) {
	struct grower *g = p;
	cj_db *db = open_nomon();
	char *d = data_of(BIG);
	CHECK_OK(cj_add(db, NULL, "ls", "big", d, 0));
	free(d);
	t_gate_open(&g->grown);
	if (t_gate_wait(&g->end, 4 * WAIT_MS) != 0) return 98;
	cj_close(db);
	return 0;
}

TEST(log_grown_by_another) {
	SKIP_UNLESS_LMDB();
	setup_type("ls", 3600);
	cj_db *db = open_nomon(); /* learns the log's size now: 512 KiB */
	CHECK_OK(cj_add(db, NULL, "ls", "first", NULL, 0));
	struct grower g;
	t_gate_init(&g.grown);
	t_gate_init(&g.end);
	int pid = t_spawn(grower, &g);
	int grown = t_gate_wait(&g.grown, WAIT_MS) == 0;
	uint64_t before = generation();
	char *d = data_of(SMALL);
	for (int i = 0; grown && i < ADDS; i++) {
		char id[32];
		snprintf(id, sizeof id, "s%02d", i);
		CHECK_OK(cj_add(db, NULL, "ls", id, d, 0));
	}
	free(d);
	uint64_t after = generation();
	t_gate_open(&g.end);
	check_exit(pid, WAIT_MS, 0);
	CHECK(grown);
	note("  %llu checkpoints in %d commits after the log grew\n",
	     (unsigned long long)(after - before), ADDS);
	CHECK(after == before);
	CHECK(state_of(db, "ls", "big") == CJ_PENDING);
	CHECK(state_of(db, "ls", "s29") == CJ_PENDING);
	cj_close(db);
	t_gate_close(&g.grown);
	t_gate_close(&g.end);
}

TEST_MAIN(ENTRY(log_grown_by_another))
