/*
 * `cjobs work` rides out an outage of its store: a private PostgreSQL
 * server is stopped and started again under a real worker while it starts,
 * while it waits for jobs, while it runs one (its heartbeat fails), and while the command
 * of one ends (its finish fails). The worker must stay up, keep its
 * command running, say once per outage that the store is unavailable and
 * once that it is back, and finish every job with the output of its one
 * run. With --outage-max it gives up: it exits 1 once an outage lasts that
 * long.
 *
 * The worker's standard error (its log, and its commands') comes through a
 * pipe, read line by line: every wait is for a line, with a generous bound.
 * A command whose job id starts with "b" blocks reading a FIFO until the
 * test opens it. The embedded engine has no outage of this kind: the cases
 * pass there without doing anything.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#define TYPE "out"
#define TIMEOUT_S 20         /* the type timeout: a heartbeat every 6.7 s */
#define SHORT_TIMEOUT_S 3    /* for the --outage-max case: one every second */
#define LINE_BOUND_MS 60000  /* a line the test waits for comes within this */
#define DOWN_MS 2500         /* how long the server is down: past a heartbeat */

#define COMMAND                                                                   \
	"echo \"run $CJ_JOB_ID\" >&2;"                                                \
	"case $CJ_JOB_ID in b*) read x <\"$1\";; esac;"                               \
	"printf '{\"done\":\"%s\"}\\n' \"$CJ_JOB_ID\""

struct wk {
	int pid;
	int fd;       /* the read end of its standard error */
	char *log;    /* all it wrote so far */
	size_t len, cap;
	size_t seen;  /* expect() looks after this */
};

static char url[8192], gate[4200];

/* Starts `cjobs work` with extra options (NULL-terminated). */
static void start_worker(struct wk *w, const char *opt1, const char *opt2) {
	int p[2];
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	const char *argv[24];
	int n = 0;
	argv[n++] = "cjobs";
	argv[n++] = "--db";
	argv[n++] = url;
	argv[n++] = "work";
	argv[n++] = TYPE;
	argv[n++] = "-j";
	argv[n++] = "2";
	argv[n++] = "--grace";
	argv[n++] = "1";
	if (opt1) argv[n++] = opt1;
	if (opt2) argv[n++] = opt2;
	argv[n++] = "--";
	argv[n++] = "/bin/sh";
	argv[n++] = "-c";
	argv[n++] = COMMAND;
	argv[n++] = "sh";
	argv[n++] = gate;
	argv[n] = NULL;
	const char *cjobs = t_bin("cjobs");
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 2);
		int nul = open("/dev/null", O_RDWR);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
		}
		execv(cjobs, (char **)argv);
		_exit(127);
	}
	close(p[1]);
	*w = (struct wk){(int)pid, p[0], NULL, 0, 0, 0};
}

/* Reads what the worker wrote; 0 at EOF. */
static int read_more(struct wk *w, int64_t timeout_ms) {
	struct pollfd p = {w->fd, POLLIN, 0};
	int n = poll(&p, 1, (int)timeout_ms);
	if (n < 0 && errno != EINTR) t_fail(__FILE__, __LINE__, "poll: %s", strerror(errno));
	if (n <= 0) return 1;
	if (w->cap - w->len < 4096) {
		w->cap = w->cap ? w->cap * 2 : 65536;
		w->log = realloc(w->log, w->cap);
		CHECK(w->log != NULL);
	}
	ssize_t r = read(w->fd, w->log + w->len, w->cap - w->len - 1);
	if (r < 0 && errno == EINTR) return 1;
	if (r <= 0) return 0;
	w->len += (size_t)r;
	w->log[w->len] = 0;
	return 1;
}

/* Waits for a complete line holding `what`, after the last one found. */
#define expect(w, what) expect_at(__LINE__, (w), (what))
static void expect_at(int line, struct wk *w, const char *what) {
	int64_t end = t_now_ms() + LINE_BOUND_MS;
	for (;;) {
		char *hit = w->log ? strstr(w->log + w->seen, what) : NULL;
		char *eol = hit ? strchr(hit, '\n') : NULL;
		if (eol) {
			w->seen = (size_t)(eol + 1 - w->log);
			return;
		}
		int64_t left = end - t_now_ms();
		if (left <= 0 || !read_more(w, left))
			t_fail(__FILE__, line, "no line with \"%s\" from the worker; it wrote:\n%s", what,
			       w->log ? w->log : "");
	}
}

/* The number of lines of the log holding `what`. */
static int count_lines(const struct wk *w, const char *what) {
	int n = 0;
	for (const char *p = w->log; p && (p = strstr(p, what)); p++) n++;
	return n;
}

static void add(const char *id) {
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = NULL;
	CHECK_OK(cj_open(url, &o, &db));
	CHECK_OK(cj_add(db, NULL, TYPE, id, "{}", 0));
	cj_close(db);
}

/* Lets the blocked command go on. */
static void open_gate(void) {
	int fd = open(gate, O_WRONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(write(fd, "\n", 1) == 1);
	close(fd);
}

static void restart_server(int64_t down_ms) {
	pg_private_stop();
	sleep_ms(down_ms);
	CHECK(pg_private_start(url, sizeof url) == 0);
}

/* Every job finished with the output of its one run (attempt 1), and the
 * store consistent. */
static void check_jobs(const char *const *ids, size_t n) {
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = NULL;
	CHECK_OK(cj_open(url, &o, &db));
	for (size_t i = 0; i < n; i++) {
		cj_job_info info;
		CHECK_OK(cj_get_job(db, NULL, TYPE, ids[i], &info));
		char want[64];
		snprintf(want, sizeof want, "{\"done\":\"%s\"}", ids[i]);
		CHECK_INT(info.state, CJ_FINISHED);
		CHECK_JSON(info.data, want);
		CHECK_INT(info.attempt, 1);
		cj_job_info_clear(&info);
	}
	check_store(db, NULL, NULL);
	cj_close(db);
}

/* Starts the private server and the type with its timeout; 0 on the embedded engine (or
 * without scripts/pg.sh): nothing to do. */
static int setup(int64_t timeout_s) {
	if (t_is_lmdb()) {
		note("  embedded engine: no server to restart\n");
		return 0;
	}
	if (pg_private_start(url, sizeof url) != 0) {
		note("  skipped: scripts/pg.sh not found (set CJ_PG_SH)\n");
		return 0;
	}
	snprintf(gate, sizeof gate, "%s/gate", t_dir());
	CHECK(mkfifo(gate, 0600) == 0);
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = NULL;
	CHECK_OK(cj_open(url, &o, &db));
	CHECK_OK(cj_set_type_timeout(db, TYPE, timeout_s));
	cj_close(db);
	return 1;
}

static int rides_out_body(void *arg) {
	(void)arg;
	struct wk w;
	/* starting while the server is down: it waits for it */
	pg_private_stop();
	start_worker(&w, NULL, NULL);
	expect(&w, "store unavailable (open: CJ_STORE");
	sleep_ms(1000);
	CHECK(pg_private_start(url, sizeof url) == 0);
	expect(&w, "store available again after");
	add("a0");
	expect(&w, TYPE " a0: finished");

	/* waiting for jobs */
	restart_server(1000);
	add("a1");
	expect(&w, TYPE " a1: finished");

	/* running one: its heartbeat fails, its command goes on */
	add("b2");
	expect(&w, "run b2");
	pg_private_stop();
	expect(&w, "store unavailable (update: CJ_STORE");
	sleep_ms(DOWN_MS);
	CHECK(pg_private_start(url, sizeof url) == 0);
	expect(&w, "store available again after");
	open_gate();
	expect(&w, TYPE " b2: finished");

	/* its command ends while the server is down: the finish is retried */
	add("b3");
	expect(&w, "run b3");
	pg_private_stop();
	open_gate();
	expect(&w, "store unavailable (");
	sleep_ms(DOWN_MS);
	CHECK(pg_private_start(url, sizeof url) == 0);
	expect(&w, TYPE " b3: finished");

	/* and it goes on taking jobs */
	add("a4");
	expect(&w, TYPE " a4: finished");
	CHECK(kill(w.pid, 0) == 0);

	/* once per outage: a line when it starts, one when it ends (each outage
	 * of the waiting worker may or may not meet a call) */
	int down = count_lines(&w, "store unavailable ("),
	    up = count_lines(&w, "store available again after");
	CHECK(down >= 3 && down <= 4);
	CHECK_INT(up, down);
	CHECK_INT(count_lines(&w, "retrying in"), 0);
	CHECK_INT(count_lines(&w, "halted"), 0);

	CHECK(kill(w.pid, SIGTERM) == 0);
	check_exit(w.pid, LINE_BOUND_MS, 0);
	static const char *const ids[] = {"a0", "a1", "b2", "b3", "a4"};
	check_jobs(ids, sizeof ids / sizeof *ids);
	close(w.fd);
	free(w.log);
	return 0;
}

static int outage_max_body(void *arg) {
	(void)arg;
	struct wk w;
	start_worker(&w, "--outage-max", "2");
	add("b1");
	expect(&w, "run b1");
	pg_private_stop();
	expect(&w, "store unavailable (update: CJ_STORE");
	expect(&w, "over --outage-max: stopping");
	check_exit(w.pid, LINE_BOUND_MS, 1);
	close(w.fd);
	free(w.log);
	return 0;
}

/* The body in a child, so that the server is stopped whatever it does. */
static void on_private_server(int (*body)(void *), int64_t timeout_s) {
	if (!setup(timeout_s)) return;
	int st = t_join(t_spawn(body, NULL), 300000);
	pg_private_stop();
	CHECK_INT(st, 0);
}

TEST(rides_out_restarts) { on_private_server(rides_out_body, TIMEOUT_S); }

TEST(outage_max) { on_private_server(outage_max_body, SHORT_TIMEOUT_S); }

TEST(outage_max_usage) {
	char *err = NULL;
	CHECK_INT(t_sh(NULL, &err, "'%s' work " TYPE " --outage-max 0 -- true", t_bin("cjobs")),
	          2);
	CHECK(strstr(err, "invalid --outage-max '0'") != NULL);
	free(err);
}

TEST_MAIN(ENTRY(rides_out_restarts), ENTRY(outage_max), ENTRY(outage_max_usage))
