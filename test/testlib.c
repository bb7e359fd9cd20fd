/* The test framework's runner and helpers; see testlib.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char t_scratch[PATH_MAX];
static char t_store_url[PATH_MAX + 64];
static char t_bindir[PATH_MAX];

const char *t_dir(void) { return t_scratch; }

int t_is_lmdb(void) {
	const char *u = getenv("CJ_TEST_URL");
	return !u || !*u || strcmp(u, "lmdb") == 0 || strncmp(u, "lmdb:", 5) == 0;
}

const char *t_url(void) {
	const char *u = getenv("CJ_TEST_URL");
	if (t_is_lmdb()) {
		snprintf(t_store_url, sizeof t_store_url, "lmdb:%s/store", t_scratch);
		return t_store_url;
	}
	/* A server store: a fresh schema per case, named after the case's
	 * process group and scratch directory, which the processes it forks
	 * share, so they all compute the same name. */
	uint32_t h = 2166136261u;
	for (const char *p = t_scratch; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
	static char url[8192];
	static int url_pgid;
	static uint32_t url_h;
	int pgid = (int)getpgid(0);
	if (!url[0] || url_pgid != pgid || url_h != h) {
		snprintf(url, sizeof url, "%s%sschema=cjt_%d_%08x", u,
		         strchr(u, '?') ? "&" : "?", pgid, (unsigned)h);
		url_pgid = pgid;
		url_h = h;
	}
	return url;
}

cj_db *t_open_opts(const cj_options *o) {
	cj_db *db = NULL;
	int rc = cj_open(t_url(), o, &db);
	if (rc != CJ_OK)
		t_fail(__FILE__, __LINE__, "cj_open(%s) = %s (%s)", t_url(),
		       cj_err_name(rc), cj_last_error());
	return db;
}

cj_db *t_open(void) { return t_open_opts(NULL); }

int64_t t_now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t t_epoch(void) { return (int64_t)time(NULL); }

static int t_in_child; /* a t_spawn child: failures exit 99 */

_Noreturn void t_fail(const char *file, int line, const char *fmt, ...) {
	va_list ap;
	fprintf(stderr, "%s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	_exit(t_in_child ? 99 : 1);
}

int t_spawn(int (*fn)(void *arg), void *arg) {
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) t_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
	if (pid == 0) {
		t_in_child = 1;
		int rc = fn(arg);
		fflush(NULL);
		exit(rc); /* exit, not _exit: sanitizers report leaks at exit */
	}
	return (int)pid;
}

static int t_status(int st) {
	if (WIFEXITED(st)) return WEXITSTATUS(st);
	if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
	return -1;
}

int t_join(int pid, int64_t timeout_ms) {
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0) t_fail(__FILE__, __LINE__, "pidfd_open: %s", strerror(errno));
	int64_t end = t_now_ms() + timeout_ms;
	for (;;) {
		int64_t left = end - t_now_ms();
		if (left < 0) left = 0;
		struct pollfd p = {fd, POLLIN, 0};
		int n = poll(&p, 1, (int)left);
		if (n > 0) break;
		if (n < 0 && errno == EINTR) continue;
		close(fd);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		t_fail(__FILE__, __LINE__, "process %d did not end within %lld ms",
		       pid, (long long)timeout_ms);
	}
	close(fd);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			t_fail(__FILE__, __LINE__, "waitpid: %s", strerror(errno));
	return t_status(st);
}

void t_gate_init(t_gate *g) {
	if (pipe(g->fd) != 0) t_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
}

void t_gate_open(t_gate *g) {
	char c = 1;
	if (write(g->fd[1], &c, 1) != 1)
		t_fail(__FILE__, __LINE__, "gate write: %s", strerror(errno));
}

int t_gate_wait(t_gate *g, int64_t timeout_ms) {
	struct pollfd p = {g->fd[0], POLLIN, 0};
	int64_t end = t_now_ms() + timeout_ms;
	for (;;) {
		int64_t left = end - t_now_ms();
		if (left < 0) return -1;
		int n = poll(&p, 1, (int)left);
		if (n > 0) {
			char c;
			return read(g->fd[0], &c, 1) == 1 ? 0 : -1;
		}
		if (n == 0) return -1;
		if (errno != EINTR) return -1;
	}
}

void t_gate_close(t_gate *g) {
	close(g->fd[0]);
	close(g->fd[1]);
}

static char *t_slurp(int fd) {
	size_t len = 0, cap = 4096;
	char *s = malloc(cap);
	if (!s) t_fail(__FILE__, __LINE__, "out of memory");
	for (;;) {
		if (cap - len < 2048) {
			cap *= 2;
			s = realloc(s, cap);
			if (!s) t_fail(__FILE__, __LINE__, "out of memory");
		}
		ssize_t n = read(fd, s + len, cap - len - 1);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) break;
		len += (size_t)n;
	}
	s[len] = 0;
	return s;
}

int t_sh(char **out, char **err, const char *fmt, ...) {
	char cmd[16384];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof cmd)
		t_fail(__FILE__, __LINE__, "t_sh: command too long");
	/* stdout through a pipe, stderr to a file read afterwards */
	char epath[PATH_MAX + 64];
	static int seq;
	snprintf(epath, sizeof epath, "%s/.stderr.%d.%d", t_scratch, (int)getpid(), seq++);
	int po[2];
	if (pipe(po) != 0) t_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) t_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
	if (pid == 0) {
		int fe = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fe < 0) _exit(126);
		dup2(po[1], 1);
		dup2(fe, 2);
		close(po[0]);
		close(po[1]);
		close(fe);
		setenv("CJOBS_DB", t_url(), 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(po[1]);
	char *o = t_slurp(po[0]);
	close(po[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) t_fail(__FILE__, __LINE__, "waitpid");
	char *e = NULL;
	int fe = open(epath, O_RDONLY);
	if (fe >= 0) {
		e = t_slurp(fe);
		close(fe);
		unlink(epath);
	} else {
		e = strdup("");
	}
	if (out) *out = o; else free(o);
	if (err) *err = e; else free(e);
	return t_status(st);
}

const char *t_bin(const char *name) {
	static char path[PATH_MAX * 2];
	snprintf(path, sizeof path, "%s/%s", t_bindir, name);
	return path;
}

int t_verify_after;

static int t_report_problem(const char *problem, void *arg) {
	(void)arg;
	fprintf(stderr, "  store: %s\n", problem);
	return 0;
}

void t_verify_store(const char *file, int line) {
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = NULL;
	int rc = cj_open(t_url(), &o, &db);
	if (rc != CJ_OK)
		t_fail(file, line, "checking the store: cj_open = %s (%s)", cj_err_name(rc),
		       cj_last_error());
	uint64_t n = 0;
	rc = cj_verify(db, t_report_problem, NULL, &n);
	cj_close(db);
	if (rc != CJ_OK || n != 0)
		t_fail(file, line, "checking the store: cj_verify = %s, %llu problems (%s)",
		       cj_err_name(rc), (unsigned long long)n, rc ? cj_last_error() : "");
}

int64_t t_bound_ms(int64_t ms) {
	const char *m = getenv("CJ_TEST_TIMEOUT_MULTIPLIER");
	double mult = m && *m ? atof(m) : 1;
	return mult > 0 ? (int64_t)((double)ms * mult) : ms;
}

static int t_run_case(const struct t_entry *e) {
	char tmpl[PATH_MAX];
	const char *base = getenv("CJ_TEST_TMPDIR");
	if (!base || !*base) base = getenv("TMPDIR");
	if (!base || !*base) base = "/tmp";
	snprintf(tmpl, sizeof tmpl, "%s/cjt-%s-XXXXXX", base, e->name);
	if (!mkdtemp(tmpl)) {
		fprintf(stderr, "mkdtemp %s: %s\n", tmpl, strerror(errno));
		return 1;
	}
	int64_t t0 = t_now_ms();
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		snprintf(t_scratch, sizeof t_scratch, "%s", tmpl);
		if (chdir(t_scratch) != 0) _exit(1);
		setpgid(0, 0); /* the case and what it forks: one group */
		e->fn();
		if (t_verify_after) t_verify_store(__FILE__, __LINE__);
		fflush(NULL);
		exit(0);
	}
	const char *ts = getenv("CJ_TEST_TIMEOUT");
	int64_t limit = t_bound_ms((int64_t)((ts && *ts ? atof(ts) : 120) * 1000));
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	struct pollfd p = {fd, POLLIN, 0};
	int timed_out = 0;
	for (;;) {
		int64_t left = t0 + limit - t_now_ms();
		if (left <= 0) { timed_out = 1; break; }
		int n = poll(&p, 1, (int)left);
		if (n > 0) break;
		if (n == 0) { timed_out = 1; break; }
	}
	close(fd);
	if (timed_out) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
	int st;
	waitpid(pid, &st, 0);
	/* end anything the case left behind in its own process group */
	kill(-pid, SIGKILL);
	int rc = timed_out ? -1 : t_status(st);
	printf("%s %s (%lld ms)%s\n", rc == 0 ? "ok  " : "FAIL", e->name,
	       (long long)(t_now_ms() - t0), timed_out ? " timed out" : "");
	fflush(stdout);
	if (rc == 0) {
		char cmd[PATH_MAX + 32];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
		if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpl);
	} else {
		fprintf(stderr, "  scratch kept: %s\n", tmpl);
	}
	return rc != 0;
}

int t_main(int argc, char **argv, const struct t_entry *e, size_t n) {
	char self[PATH_MAX];
	ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
	if (l > 0) {
		self[l] = 0;
		char *slash = strrchr(self, '/');
		if (slash) *slash = 0;
		snprintf(t_bindir, sizeof t_bindir, "%s", self);
	}
	if (argc == 2 && (strcmp(argv[1], "--list") == 0 || strcmp(argv[1], "--help") == 0)) {
		if (strcmp(argv[1], "--help") == 0)
			printf("usage: %s [--list | --part K/N | CASE...]: runs every case, the "
			       "cases K, K + N, ... or the cases named; --list prints their "
			       "names\n", argv[0]);
		else
			for (size_t i = 0; i < n; i++) printf("%s\n", e[i].name);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	/* --part K/N: the cases K, K + N, K + 2N, ... (counting from 1), so that
	 * a long program can be a few tests, each with its own time limit */
	size_t part = 0, parts = 1;
	if (argc == 3 && strcmp(argv[1], "--part") == 0) {
		char *end = NULL;
		unsigned long k = strtoul(argv[2], &end, 10);
		unsigned long of = end && *end == '/' ? strtoul(end + 1, &end, 10) : 0;
		if (!end || *end || k < 1 || k > of || of > n) {
			fprintf(stderr, "--part %s: want K/N, 1 <= K <= N <= %zu\n", argv[2], n);
			return 2;
		}
		part = k - 1;
		parts = of;
		argc = 1;
	}
	size_t failed = 0, ran = 0;
	for (size_t i = 0; i < n; i++) {
		if (i % parts != part) continue;
		if (argc > 1) {
			int want = 0;
			for (int a = 1; a < argc; a++)
				if (strcmp(argv[a], e[i].name) == 0) want = 1;
			if (!want) continue;
		}
		ran++;
		failed += (size_t)t_run_case(&e[i]);
	}
	if (argc > 1 && ran == 0) {
		fprintf(stderr, "no case named %s (--list prints them)\n", argv[1]);
		return 2;
	}
	printf("%zu passed, %zu failed\n", ran - failed, failed);
	return failed ? 1 : 0;
}
