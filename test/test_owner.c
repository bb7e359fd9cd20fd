/*
 * Which processes of an embedded store are alive, as calls combined across
 * processes judge it (src/combine.c, src/os/owner.c): not by process ids.
 *  - dead_owner_pid_reused: the combine file's lock and lead words name a
 *    process that died, and whose process id an unrelated live process has
 *    taken since: a call goes on at once (it takes the lock and leads) and
 *    does not wait for the unrelated process to end.
 *  - leader_in_other_pid_namespace, ..._id_unused_here (root,
 *    fault-injection builds): a leader runs in a PID namespace of its own
 *    (a container sharing the store's directory), with a process id that
 *    names a live process here (1), or none, and is stopped after the
 *    commit of a batch holding calls of processes of this namespace,
 *    before it tells them: while it lives none of them is taken over (none
 *    returns); once it is killed (kill -9) every one of them returns
 *    CJ_OK, its job on disk, and the store verifies.
 * White-box: the words are written through the combine file's documented
 * layout (doc/format.md), and the leader is stopped at one of the
 * library's hold points (src/fault.c).
 */
#include "cj_int.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MS 60000 /* generous: the machine may be loaded */

/* The combine file of the store under test, mapped: its size in *len. */
static unsigned char *combine_map(size_t *len) {
	const char *url = t_url();
	char path[4096];
	snprintf(path, sizeof path, "%s/combine", strncmp(url, "lmdb:", 5) == 0 ? url + 5 : url);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && st.st_size > 24);
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

/* ---- dead_owner_pid_reused ----------------------------------------------- */

static int unrelated(void *v) {
	(void)v;
	stall_forever();
}

struct poster {
	const char *id;
	t_gate ready, go;
	chan done; /* the result of its cj_add, once it returned */
};

static int poster(void *v) {
	struct poster *p = v;
	cj_db *db = open_nomon();
	t_gate_open(&p->ready);
	if (t_gate_wait(&p->go, WAIT_MS) != 0) return 90;
	chan_put(&p->done, cj_add(db, NULL, "ow", p->id, "{}", 0));
	cj_close(db);
	return 0;
}

/* Starts p in a process of its own, its store open, waiting for go. */
static int start_poster(struct poster *p, const char *id) {
	p->id = id;
	gates_init(&p->ready, &p->go);
	chan_init(&p->done);
	return spawn_ready(poster, p, &p->ready, WAIT_MS);
}

static void poster_done(struct poster *p) {
	gates_close(&p->ready, &p->go);
	chan_close(&p->done);
}

TEST(dead_owner_pid_reused) {
	SKIP_UNLESS_LMDB();
	setup_type("ow", 3600);
	add_job("ow", "first", "{}"); /* the combine file is there */
	int u = t_spawn(unrelated, NULL); /* never opens the store */
	size_t len;
	unsigned char *x = combine_map(&len);
	/* the words of a process that died holding the lock while leading,
	 * whose process id u has now */
	atomic_store((_Atomic uint32_t *)(x + 4), (uint32_t)u);
	atomic_store((_Atomic uint32_t *)(x + 12), (uint32_t)u);
	static struct poster p;
	int pp = start_poster(&p, "second");
	t_gate_open(&p.go);
	CHECK_INT(chan_get(&p.done, WAIT_MS), CJ_OK); /* u still runs */
	check_exit(pp, WAIT_MS, 0);
	poster_done(&p);
	CHECK_INT(atomic_load((_Atomic uint32_t *)(x + 4)), 0); /* the lock is free */
	munmap(x, len);
	CHECK(kill(u, SIGKILL) == 0);
	check_exit(u, WAIT_MS, 128 + SIGKILL);
	cj_db *db = open_nomon();
	check_job_is(db, "ow", "first", CJ_PENDING, "{}");
	check_job_is(db, "ow", "second", CJ_PENDING, "{}");
	check_store(db, NULL, NULL);
	cj_close(db);
}

/* ---- leader_in_other_pid_namespace ----------------------------------------- */

#ifdef CJ_TEST_FAULTS

#define POSTERS 3

struct holder {
	t_gate begin, ready, release;
};

/* Holds the writer (a caller's transaction) from begin until released, so
 * that the calls posted meanwhile meet in the leader's batch. */
static int holder(void *v) {
	struct holder *h = v;
	cj_db *db = open_nomon();
	if (t_gate_wait(&h->begin, WAIT_MS) != 0) return 90;
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	t_gate_open(&h->ready);
	if (t_gate_wait(&h->release, WAIT_MS) != 0) return 90;
	cj_tx_abort(tx);
	cj_close(db);
	return 0;
}

struct leader {
	t_gate ready, go;
	t_gate held;  /* opened by the leader at its hold point */
	t_gate never; /* its hold point waits on this until it is killed */
	chan pid;     /* the id of its namespace's first process in the first
	                 namespace, or -1: no namespace */
	int want;     /* the leader's process id in its namespace */
};

/* The leader, in a PID namespace of its own. */
static int lead(void *v) {
	struct leader *l = v;
	cj_db *db = open_nomon();
	/* after its commit, before it tells the calls it ran */
	cj__fault_hold(CJ_HOLD_FLUSH_CHECK, l->held.fd[1], l->never.fd[0]);
	t_gate_open(&l->ready);
	if (t_gate_wait(&l->go, WAIT_MS) != 0) return 90;
	CHECK_OK(cj_add(db, NULL, "ow", "leader", "{}", 0));
	cj_close(db);
	return 0; /* not reached: killed at the hold point */
}

/* Enters a new PID namespace and runs the leader in it: 0 when the leader
 * was killed, 77 when namespaces are not available here. */
static int namespace(void *v) {
	struct leader *l = v;
	if (unshare(CLONE_NEWPID) != 0) {
		chan_put(&l->pid, -1);
		return 77;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		/* the namespace's first process (id 1): the leader, or the parent
		 * of processes that end at once until one has the id wanted */
		while (getpid() != l->want) {
			fflush(NULL);
			pid_t c = fork();
			if (c == 0) {
				if (getpid() == l->want) exit(lead(l));
				_exit(0);
			}
			if (c < 0 || c > l->want || waitpid(c, NULL, 0) != c) _exit(92);
			if (c == l->want) _exit(0); /* not reached: killed with it */
		}
		exit(lead(l));
	}
	chan_put(&l->pid, pid);
	if (pid < 0) return 91;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) return 93;
	/* _exit: the sanitizers' leak check at exit would fork, which this
	 * process cannot do again once its namespace's first process ended */
	fflush(NULL);
	_exit(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? 0 : 94);
}

/* A leader with process id want in a namespace of its own, its batch
 * holding the calls of POSTERS processes of this one. */
static void ns_leader(int want) {
	setup_type("ow", 3600);
	static struct leader l;
	l.want = want;
	gates_init(&l.ready, &l.go, &l.held, &l.never);
	chan_init(&l.pid);
	int np = t_spawn(namespace, &l);
	int lp = (int)chan_get(&l.pid, WAIT_MS);
	if (lp < 0) {
		check_exit(np, WAIT_MS, 77);
		note("  skipped: no PID namespaces here (unshare(CLONE_NEWPID) needs root)\n");
		return;
	}
	CHECK(t_gate_wait(&l.ready, WAIT_MS) == 0);
	static struct holder h;
	gates_init(&h.begin, &h.ready, &h.release);
	int hp = t_spawn(holder, &h);
	static struct poster p[POSTERS];
	int pp[POSTERS];
	for (int i = 0; i < POSTERS; i++) {
		static const char *ids[POSTERS] = {"p0", "p1", "p2"};
		pp[i] = start_poster(&p[i], ids[i]);
	}
	t_gate_open(&h.begin);
	CHECK(t_gate_wait(&h.ready, WAIT_MS) == 0);
	/* the leader posts first: it leads, waiting for the writer */
	t_gate_open(&l.go);
	sleep_ms(300);
	for (int i = 0; i < POSTERS; i++) t_gate_open(&p[i].go);
	sleep_ms(300); /* their calls posted, waiting for the leader */
	t_gate_open(&h.release);
	check_exit(hp, WAIT_MS, 0);
	CHECK(t_gate_wait(&l.held, WAIT_MS) == 0);
	/* the leader lives, its batch committed and not yet told: a caller
	 * that returned now was taken over (its process looks at its leader
	 * every 100 ms) */
	sleep_ms(1500);
	for (int i = 0; i < POSTERS; i++) {
		struct pollfd pf = {p[i].done.fd[0], POLLIN, 0};
		CHECK_INT(poll(&pf, 1, 0), 0);
	}
	CHECK(kill(lp, SIGKILL) == 0);
	check_exit(np, WAIT_MS, 0);
	for (int i = 0; i < POSTERS; i++) {
		CHECK_INT(chan_get(&p[i].done, WAIT_MS), CJ_OK);
		check_exit(pp[i], WAIT_MS, 0);
		poster_done(&p[i]);
	}
	cj_db *db = open_nomon();
	check_job_is(db, "ow", "leader", CJ_PENDING, "{}");
	for (int i = 0; i < POSTERS; i++) check_job_is(db, "ow", p[i].id, CJ_PENDING, "{}");
	check_store(db, NULL, NULL);
	cj_close(db);
	gates_close(&h.begin, &h.ready, &h.release);
	gates_close(&l.ready, &l.go, &l.held, &l.never);
	chan_close(&l.pid);
}
#endif

/* Its id names a live process here (the first of this namespace). */
TEST(leader_in_other_pid_namespace) {
	SKIP_UNLESS_LMDB();
#ifndef CJ_TEST_FAULTS
	note("  skipped: not a fault-injection build\n");
#else
	ns_leader(1);
#endif
}

/* Its id names no process here. */
TEST(leader_in_other_pid_namespace_id_unused_here) {
	SKIP_UNLESS_LMDB();
#ifndef CJ_TEST_FAULTS
	note("  skipped: not a fault-injection build\n");
#else
	int want = 2;
	while (want < 400 && (kill(want, 0) == 0 || errno != ESRCH)) want++;
	if (want == 400) {
		note("  skipped: every process id below 400 is in use here\n");
		return;
	}
	ns_leader(want);
#endif
}

TEST_MAIN_VERIFIED(ENTRY(dead_owner_pid_reused), ENTRY(leader_in_other_pid_namespace),
                   ENTRY(leader_in_other_pid_namespace_id_unused_here))
