/* cj_compare: forking workers, shared memory, barrier and watchdog. */
#include "procs.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

static pid_t pids[CMP_MAX_PROCS];
static int npids;
static size_t mapped;

static void *map_shared(size_t n) {
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) cmp_die("mmap %zu bytes: %s", n, strerror(errno));
	return p;
}

struct cmp_shared *cmp_shared_new(int nworkers, long samples_cap, long done_cap) {
	size_t head = (sizeof(struct cmp_shared) + 63) & ~(size_t)63;
	size_t samples = (size_t)samples_cap * sizeof(int64_t);
	mapped = head + samples + (size_t)done_cap;
	char *base = map_shared(mapped);
	struct cmp_shared *sh = (struct cmp_shared *)base;
	pthread_barrierattr_t a;
	if (pthread_barrierattr_init(&a) != 0 ||
	    pthread_barrierattr_setpshared(&a, PTHREAD_PROCESS_SHARED) != 0 ||
	    pthread_barrier_init(&sh->start, &a, (unsigned)nworkers + 1) != 0)
		cmp_die("process-shared barrier");
	pthread_barrierattr_destroy(&a);
	atomic_init(&sh->ready, 0);
	atomic_init(&sh->stop, 0);
	atomic_init(&sh->claimed, 0);
	atomic_init(&sh->completed, 0);
	atomic_init(&sh->enqueued, 0);
	for (int i = 0; i < CMP_MAX_PROCS; i++) atomic_init(&sh->per_worker[i], 0);
	atomic_init(&sh->t_first, INT64_MAX);
	atomic_init(&sh->t_last, 0);
	atomic_init(&sh->nsamples, 0);
	sh->samples_cap = samples_cap;
	sh->samples = (int64_t *)(base + head);
	sh->done_cap = done_cap;
	sh->done = (atomic_uchar *)(base + head + samples); /* zero, as mapped */
	return sh;
}

void cmp_shared_free(struct cmp_shared *sh) {
	pthread_barrier_destroy(&sh->start);
	munmap(sh, mapped);
}

int64_t cmp_start(struct cmp_shared *sh) {
	atomic_fetch_add(&sh->ready, 1);
	int rc = pthread_barrier_wait(&sh->start);
	if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) cmp_die("barrier: %s", strerror(rc));
	int64_t t = cmp_now_ns();
	long long first = atomic_load(&sh->t_first);
	while (t < first && !atomic_compare_exchange_weak(&sh->t_first, &first, t)) {
	}
	return t;
}

void cmp_mark_last(struct cmp_shared *sh, int64_t t) {
	long long last = atomic_load(&sh->t_last);
	while (t > last && !atomic_compare_exchange_weak(&sh->t_last, &last, t)) {
	}
}

void cmp_mark_done(struct cmp_shared *sh, long n) {
	if (n < 0 || n >= sh->done_cap) cmp_die("job number %ld out of range 0..%ld", n, sh->done_cap - 1);
	if (atomic_fetch_add(&sh->done[n], 1) != 0) cmp_die("job number %ld completed twice", n);
}

void cmp_spawn(void (*fn)(int idx, void *arg), int idx, void *arg, const char *who) {
	if (npids == CMP_MAX_PROCS) cmp_die("too many workers");
	fflush(stdout);
	fflush(stderr);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) cmp_die("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent) _exit(1);
		alarm(0);
		npids = 0;
		cmp_set_who("%s", who);
		fn(idx, arg);
		exit(0);
	}
	pids[npids++] = pid;
}

static void kill_all(void) {
	for (int i = 0; i < npids; i++)
		if (pids[i] > 0) kill(pids[i], SIGKILL);
}

/* A worker ended: fine if it exited 0, else the run fails. */
static void reap(int i, int status) {
	pids[i] = 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
	kill_all();
	if (WIFSIGNALED(status)) cmp_die("a worker was killed by signal %d", WTERMSIG(status));
	cmp_die("a worker failed (exit status %d)", WEXITSTATUS(status));
}

int64_t cmp_release(struct cmp_shared *sh) {
	while (atomic_load(&sh->ready) < npids) {
		for (int i = 0; i < npids; i++) {
			int st;
			if (pids[i] > 0 && waitpid(pids[i], &st, WNOHANG) == pids[i]) {
				reap(i, st);
				kill_all();
				cmp_die("a worker ended before the start");
			}
		}
		cmp_sleep_us(1000);
	}
	int rc = pthread_barrier_wait(&sh->start);
	if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) cmp_die("barrier: %s", strerror(rc));
	return cmp_now_ns();
}

void cmp_wait_all(void) {
	int left = 0;
	for (int i = 0; i < npids; i++) left += pids[i] > 0;
	while (left > 0) {
		int st;
		pid_t pid = waitpid(-1, &st, 0);
		if (pid < 0) {
			if (errno == EINTR) continue;
			cmp_die("waitpid: %s", strerror(errno));
		}
		for (int i = 0; i < npids; i++)
			if (pids[i] == pid) {
				reap(i, st);
				left--;
			}
	}
	npids = 0;
}

static void on_alarm(int sig) {
	static const char msg[] = "cj_compare: the run took too long (watchdog); workers killed\n";
	(void)sig;
	kill_all();
	if (write(2, msg, sizeof msg - 1) < 0) _exit(1);
	_exit(1);
}

void cmp_watchdog(int limit_s) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	alarm((unsigned)limit_s);
}
