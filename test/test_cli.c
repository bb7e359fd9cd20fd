/*
 * The cjobs command-line tool, run as a real program: its subcommands, their
 * output and exit codes, argument checking, and the `work` processor.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <lmdb.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBPQ
#include <libpq-fe.h>
#endif

/* ---- helpers ------------------------------------------------------------ */

static const char *cj(void) { return t_bin("cjobs"); }

static int count_lines(const char *s) {
	int n = 0;
	for (; *s; s++)
		if (*s == '\n') n++;
	return n;
}

/* Runs `cjobs ARGS`; returns its exit status, its stdout in *out and its
 * stderr in *err (both malloc'd). */
#define CJ(out, err, ...) t_sh(out, err, __VA_ARGS__)

/* Runs a cjobs command that must succeed; returns its stdout (malloc'd). */
static char *ok_out(const char *args) {
	char *out, *err;
	int rc = t_sh(&out, &err, "'%s' %s", cj(), args);
	if (rc != 0)
		t_fail(__FILE__, __LINE__, "cjobs %s: exit %d, stderr: %s", args, rc, err);
	free(err);
	return out;
}

static void ok(const char *args) { free(ok_out(args)); }

/* Reads the row of type in the table `cjobs stats` printed: 1 if found. */
static int stats_row(const char *table, const char *type, long long *pending,
                     long long *running, long long *finished, long long *total) {
	char name[300];
	for (const char *line = table; line && *line;) {
		if (sscanf(line, "%299s %lld %lld %lld %lld", name, pending, running, finished,
		           total) == 5 &&
		    strcmp(name, type) == 0)
			return 1;
		line = strchr(line, '\n');
		if (line) line++;
	}
	return 0;
}

/* Runs a cjobs command that must fail with `want`, print nothing on stdout
 * and exactly one line on stderr, which holds `says` (when not NULL). */
static void fails_saying(int want, const char *args, const char *says) {
	char *out, *err;
	int rc = t_sh(&out, &err, "'%s' %s", cj(), args);
	if (rc != want || out[0] || count_lines(err) != 1 || strncmp(err, "cjobs: ", 7) != 0 ||
	    err[strlen(err) - 1] != '\n' || (says && !strstr(err, says)))
		t_fail(__FILE__, __LINE__,
		       "cjobs %.200s: exit %d (want %d), stdout \"%s\", stderr \"%s\"%s%s",
		       args, rc, want, out, err, says ? ", want it to say " : "", says ? says : "");
	free(out);
	free(err);
}

static void fails(int want, const char *args) { fails_saying(want, args, NULL); }

/* Parses one JSON object (the whole of `s`, or its first line). */
static json_t *jparse(const char *s) {
	json_error_t e;
	json_t *v = json_loads(s, JSON_DISABLE_EOF_CHECK, &e);
	if (!v || !json_is_object(v))
		t_fail(__FILE__, __LINE__, "not a JSON object: %s (%s)", s, e.text);
	return v;
}

static const char *jstr(json_t *o, const char *k) {
	const char *s = json_string_value(json_object_get(o, k));
	if (!s) t_fail(__FILE__, __LINE__, "no string \"%s\"", k);
	return s;
}

static long long jint(json_t *o, const char *k) {
	json_t *v = json_object_get(o, k);
	if (!json_is_integer(v)) t_fail(__FILE__, __LINE__, "no integer \"%s\"", k);
	return (long long)json_integer_value(v);
}

/* `cjobs get TYPE ID`, parsed. */
static json_t *get_job(const char *type, const char *id) {
	char args[512];
	snprintf(args, sizeof args, "get -- '%s' '%s'", type, id);
	char *out = ok_out(args);
	CHECK_INT(count_lines(out), 1);
	json_t *v = jparse(out);
	free(out);
	return v;
}

/* The data of a job, as compact JSON text (malloc'd). */
static char *job_data(const char *type, const char *id) {
	json_t *v = get_job(type, id);
	char *s = json_dumps(json_object_get(v, "data"), JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(v);
	return s;
}

static void check_state(const char *type, const char *id, const char *state) {
	json_t *v = get_job(type, id);
	CHECK_STR(jstr(v, "state"), state);
	json_decref(v);
}

/* A store handle for the test itself (no monitor), to poll states cheaply. */
static cj_db *test_db(void) {
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	return t_open_opts(&o);
}

/* Waits until the job is in `state`; 0 or -1 on timeout. */
static int wait_state(cj_db *db, const char *type, const char *id, cj_state want,
                      int64_t timeout_ms) {
	int64_t end = t_now_ms() + timeout_ms;
	do {
		cj_state st;
		if (cj_get_job_state(db, NULL, type, id, &st) == CJ_OK && st == want) return 0;
		usleep(20000);
	} while (t_now_ms() < end);
	return -1;
}

/* Waits until `path` holds at least `lines` lines; returns its text. */
static char *wait_file(const char *path, int lines, int64_t timeout_ms) {
	int64_t end = t_now_ms() + timeout_ms;
	for (;;) {
		FILE *f = fopen(path, "r");
		if (f) {
			char *s = NULL;
			size_t n = 0;
			ssize_t len = getdelim(&s, &n, 0, f);
			fclose(f);
			if (len > 0 && count_lines(s) >= lines) return s;
			free(s);
		}
		if (t_now_ms() > end)
			t_fail(__FILE__, __LINE__, "%s: no %d lines within %lld ms", path, lines,
			       (long long)timeout_ms);
		usleep(20000);
	}
}

static int read_pid(const char *path, int64_t timeout_ms) {
	char *s = wait_file(path, 1, timeout_ms);
	int pid = atoi(s);
	free(s);
	CHECK(pid > 1);
	return pid;
}

/* 1 while `pid` exists and is not a zombie. */
static int pid_alive(int pid) {
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f) return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	return !(p && p[1] == ' ' && p[2] == 'Z');
}

static int wait_pid_gone(int pid, int64_t timeout_ms) {
	int64_t end = t_now_ms() + timeout_ms;
	while (pid_alive(pid)) {
		if (t_now_ms() > end) return -1;
		usleep(10000);
	}
	return 0;
}

static void write_file(const char *path, const char *text) {
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	fputs(text, f);
	CHECK(fclose(f) == 0);
}

/* cjobs in the background: argv, stdout and stderr to files. */
struct bg {
	const char *argv[24];
	const char *out, *err;
};

static int bg_exec(void *arg) {
	struct bg *b = arg;
	setenv("CJOBS_DB", t_url(), 1);
	int fo = open(b->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int fe = open(b->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fo < 0 || fe < 0) return 126;
	dup2(fo, 1);
	dup2(fe, 2);
	close(fo);
	close(fe);
	execv(cj(), (char *const *)b->argv);
	return 127;
}

static int start_bg(struct bg *b) {
	b->argv[0] = cj();
	return t_spawn(bg_exec, b);
}

/* Reads a whole file (malloc'd; "" when missing). */
static char *slurp(const char *path) {
	FILE *f = fopen(path, "r");
	if (!f) return strdup("");
	char *s = NULL;
	size_t n = 0;
	if (getdelim(&s, &n, 0, f) < 0) {
		free(s);
		s = strdup("");
	}
	fclose(f);
	return s;
}

/* ---- help --------------------------------------------------------------- */

TEST(help) {
	static const char *cmds[] = {"timeout", "policy", "limit", "types", "add", "get", "list",
	                             "rm", "stats", "accept", "update", "finish", "fail",
	                             "retry", "resubmit", "watch", "work", "retention",
	                             "prune"};
	char *out, *err, *out2;
	CHECK_INT(CJ(&out, &err, "'%s' --help", cj()), 0);
	CHECK_STR(err, "");
	CHECK_INT(CJ(&out2, NULL, "'%s' help", cj()), 0);
	CHECK_STR(out2, out);
	CHECK(strstr(out, "couchjobs.db") != NULL);
	CHECK(strstr(out, "CJOBS_DB") != NULL);
	CHECK(strstr(out, "exit codes") != NULL);
	char *ver = ok_out("--version");
	CHECK(strncmp(ver, "cjobs ", 6) == 0 && count_lines(ver) == 1);
	free(ver);
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		char want[64], *o, *e;
		snprintf(want, sizeof want, "\n  %s ", cmds[i]);
		if (!strstr(out, want)) t_fail(__FILE__, __LINE__, "--help lacks %s", cmds[i]);
		CHECK_INT(CJ(&o, &e, "'%s' %s --help", cj(), cmds[i]), 0);
		snprintf(want, sizeof want, "usage: cjobs %s", cmds[i]);
		CHECK(strncmp(o, want, strlen(want)) == 0);
		CHECK(strstr(o, "exit codes") != NULL);
		CHECK_STR(e, "");
		free(o);
		free(e);
		CHECK_INT(CJ(&o, NULL, "'%s' help %s", cj(), cmds[i]), 0);
		CHECK(strncmp(o, want, strlen(want)) == 0);
		free(o);
	}
	free(out);
	free(out2);
	free(err);
	/* nothing was opened */
	struct stat st;
	if (t_is_lmdb()) CHECK(stat("store", &st) != 0);
}

/* ---- types -------------------------------------------------------------- */

TEST(timeout_and_types) {
	fails(3, "timeout t");
	ok("timeout t 30");
	char *o = ok_out("timeout t");
	CHECK_STR(o, "30\n");
	free(o);
	ok("timeout t 2m");
	o = ok_out("timeout t");
	CHECK_STR(o, "120\n");
	free(o);
	ok("timeout u 1d");
	ok("timeout 'a b' 5");
	o = ok_out("types");
	CHECK_STR(o, "a b\t5\t-\t-\nt\t120\t-\t-\nu\t86400\t-\t-\n");
	free(o);
	ok("timeout t --clear");
	fails(3, "timeout t");
	fails(3, "timeout t --clear");
	o = ok_out("types");
	CHECK_STR(o, "a b\t5\t-\t-\nu\t86400\t-\t-\n");
	free(o);
	/* each type's limits and retention, those set, as their commands' options */
	ok("limit u --concurrency 2 --rate 10/s");
	ok("retention u --keep-for 7d --keep 100 --dead-keep-for 90m");
	ok("limit 'a b' --rate 5/500ms");
	ok("retention 'a b' --dead-keep 3");
	o = ok_out("types");
	CHECK_STR(o, "a b\t5\trate=5/500ms\tdead-keep=3\n"
	             "u\t86400\tconcurrency=2 rate=10/1s\tkeep-for=7d keep=100 dead-keep-for=90m\n");
	free(o);
	ok("limit u --clear");
	ok("retention u --clear");
	ok("limit 'a b' --clear");
	ok("retention 'a b' --clear");
	fails(2, "timeout u 0");
	fails(2, "timeout u -5");
	fails(2, "timeout u 1.5");
	fails(2, "timeout u 5 --clear");
	fails(2, "timeout u 400d");
	fails(2, "types extra");
	o = ok_out("timeout u");
	CHECK_STR(o, "86400\n");
	free(o);

	/* --db before or after the command, over $CJOBS_DB */
	ok("--db other.db timeout x 7");
	o = ok_out("types --db=other.db");
	CHECK_STR(o, "x\t7\t-\t-\n");
	free(o);
	o = ok_out("types");
	CHECK(strstr(o, "x\t") == NULL);
	free(o);
	fails(1, "--db /nonexistent-dir/sub/store types"); /* cannot open */
}

/* ---- creation ------------------------------------------------------------- */

TEST(add_get_list_rm_stats) {
	ok("timeout t 30");
	ok("timeout t2 30");
	ok("timeout idle 30");
	fails(1, "add nosuchtype x"); /* CJ_NO_TYPE_TIMEOUT */
	ok("add t a '{\"x\":1,\"s\":\"h\\u00e9\"}'");
	ok("add t b");
	ok("add t2 c '{\"nested\":{\"k\":[1,2,3]}}'");

	json_t *v = get_job("t", "a");
	CHECK_STR(jstr(v, "type"), "t");
	CHECK_STR(jstr(v, "id"), "a");
	CHECK_STR(jstr(v, "state"), "pending");
	CHECK_INT(jint(v, "sched_time"), 0);
	CHECK(json_is_false(json_object_get(v, "resubmit")));
	json_t *d = json_object_get(v, "data");
	CHECK(json_is_object(d)); /* embedded, not a string */
	CHECK_INT(json_integer_value(json_object_get(d, "x")), 1);
	CHECK_STR(json_string_value(json_object_get(d, "s")), "h\xc3\xa9");
	json_decref(v);
	char *s = job_data("t", "b");
	CHECK_STR(s, "{}");
	free(s);
	s = job_data("t2", "c");
	CHECK_STR(s, "{\"nested\":{\"k\":[1,2,3]}}");
	free(s);

	/* re-adding a pending job replaces its data */
	ok("add t b '{\"y\":2}'");
	s = job_data("t", "b");
	CHECK_STR(s, "{\"y\":2}");
	free(s);

	char *o = ok_out("list");
	CHECK_INT(count_lines(o), 3);
	const char *want_ids[] = {"a", "b", "c"};
	const char *p = o;
	for (int i = 0; i < 3; i++) {
		json_t *j = jparse(p);
		CHECK_STR(jstr(j, "id"), want_ids[i]);
		CHECK_STR(jstr(j, "state"), "pending");
		CHECK(json_is_object(json_object_get(j, "data")));
		json_decref(j);
		p = strchr(p, '\n') + 1;
	}
	free(o);
	o = ok_out("list t2");
	CHECK_INT(count_lines(o), 1);
	CHECK(strstr(o, "\"id\":\"c\"") != NULL);
	free(o);
	o = ok_out("list --state finished");
	CHECK_STR(o, "");
	free(o);
	o = ok_out("list t --state=pending");
	CHECK_INT(count_lines(o), 2);
	free(o);

	/* one job running, one finished */
	o = ok_out("accept t2 --timeout 5000");
	json_t *acc = jparse(o);
	free(o);
	char args[256];
	snprintf(args, sizeof args, "finish t2 c %s", jstr(acc, "lock"));
	ok(args);
	json_decref(acc);
	o = ok_out("accept t --timeout 5000");
	free(o);

	o = ok_out("stats");
	CHECK(strstr(o, "PENDING") && strstr(o, "RUNNING") && strstr(o, "FINISHED") &&
	      strstr(o, "TOTAL"));
	CHECK_INT(count_lines(o), 4); /* header, idle, t, t2 */
	long long pe, ru, fi, to;
	CHECK(stats_row(o, "t", &pe, &ru, &fi, &to));
	CHECK(pe == 1 && ru == 1 && fi == 0 && to == 2);
	CHECK(stats_row(o, "t2", &pe, &ru, &fi, &to));
	CHECK(pe == 0 && ru == 0 && fi == 1 && to == 1);
	CHECK(stats_row(o, "idle", &pe, &ru, &fi, &to));
	CHECK(to == 0);
	free(o);
	o = ok_out("stats --json");
	CHECK_INT(count_lines(o), 1);
	json_t *st = jparse(o);
	json_t *tt = json_object_get(json_object_get(st, "types"), "t");
	CHECK_INT(jint(tt, "pending"), 1);
	CHECK_INT(jint(tt, "running"), 1);
	CHECK_INT(jint(tt, "total"), 2);
	json_t *tot = json_object_get(st, "total");
	CHECK_INT(jint(tot, "finished"), 1);
	CHECK_INT(jint(tot, "total"), 3);
	json_decref(st);
	free(o);

	ok("rm t a");
	fails(3, "get t a");
	fails(3, "rm t a");
	ok("rm t2 c"); /* finished */
	o = ok_out("list");
	CHECK_INT(count_lines(o), 1);
	CHECK(strstr(o, "\"id\":\"b\"") != NULL);
	free(o);
	ok("rm t b");
	o = ok_out("list");
	CHECK_STR(o, "");
	free(o);
}

TEST(schedule) {
	ok("timeout t 30");
	int64_t now = t_epoch();
	ok("add t later '{}' --in 1h");
	json_t *v = get_job("t", "later");
	CHECK(jint(v, "sched_time") >= now + 3600 && jint(v, "sched_time") <= now + 3610);
	json_decref(v);
	ok("add t later2 --in=90");
	v = get_job("t", "later2");
	CHECK(jint(v, "sched_time") >= now + 90 && jint(v, "sched_time") <= now + 100);
	json_decref(v);
	char args[128];
	snprintf(args, sizeof args, "add t at '{\"a\":1}' --at %lld", (long long)(now + 7200));
	ok(args);
	v = get_job("t", "at");
	CHECK_INT(jint(v, "sched_time"), now + 7200);
	json_decref(v);

	/* not due: a default accept does not take them */
	fails(3, "accept t --timeout 300");
	check_state("t", "later", "pending");
	/* --any-time does */
	char *o = ok_out("accept t --any-time --timeout 5000");
	json_t *a = jparse(o);
	CHECK_STR(jstr(a, "type"), "t");
	CHECK(strcmp(jstr(a, "id"), "at") == 0 || strcmp(jstr(a, "id"), "later") == 0 ||
	      strcmp(jstr(a, "id"), "later2") == 0);
	json_decref(a);
	free(o);

	/* a job scheduled in the past is due */
	snprintf(args, sizeof args, "add t past --at %lld", (long long)(now - 100));
	ok(args);
	o = ok_out("accept t --timeout 5000");
	a = jparse(o);
	CHECK_STR(jstr(a, "id"), "past");
	json_decref(a);
	free(o);
}

/* t (seconds since the epoch) as cjobs prints it. */
static void utc_text(char *out, size_t cap, int64_t t) {
	time_t tt = (time_t)t;
	struct tm tm;
	CHECK(gmtime_r(&tt, &tm) != NULL);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* schedule add / list / rm, and their errors (exit 2, nothing changed). */
TEST(schedule_add_list_rm) {
	ok("timeout report 300");
	char *o = ok_out("schedule list");
	CHECK_STR(o, "");
	free(o);
	ok("schedule add yearly --cron '0 0 1 1 *' --tz Europe/Berlin --type report "
	   "--data '{\"k\":1}'");
	ok("schedule add beat --every 1h --type report --catch-up last");
	fails(2, "schedule add x --every 0 --type report");
	fails(2, "schedule add x --every 1.5 --type report");
	fails(2, "schedule add x --cron '0 0 1 1' --type report");
	fails(2, "schedule add x --cron '0 0 1 1 *' --tz Nowhere/Atlantis --type report");
	fails(2, "schedule add x --cron '0 0 1 1 *' --every 1h --type report");
	fails(2, "schedule add x --every 1h --tz UTC --type report");
	fails(2, "schedule add x --every 1h");
	fails(2, "schedule add x --every 1h --type report --catch-up all");
	fails(2, "schedule add x --every 1h --type report --data '[1]'");
	fails(1, "schedule add x --every 1h --type untimed");
	fails(2, "schedule add --every 1h --type report");
	fails(2, "schedule list --type report");
	fails(2, "schedule frob");
	fails(3, "schedule rm x");
	int64_t now = t_epoch(), next;
	CHECK_OK(cj_cron_next("0 0 1 1 *", "Europe/Berlin", now, &next));
	char hour[32], year[32], want[256];
	utc_text(hour, sizeof hour, (now / 3600 + 1) * 3600);
	utc_text(year, sizeof year, next);
	snprintf(want, sizeof want,
	         "beat\tevery 3600s\treport\tlast\t%s\t-\n"
	         "yearly\tcron 0 0 1 1 * Europe/Berlin\treport\tskip\t%s\t-\n", hour, year);
	o = ok_out("schedule list");
	CHECK_STR(o, want);
	free(o);
	ok("schedule rm beat");
	o = ok_out("schedule list");
	CHECK(strncmp(o, "yearly\t", 7) == 0 && count_lines(o) == 1);
	free(o);
}

/* add --unique / --if-absent: exit 5 and nothing changed when the job is
 * there; --unique active re-adds a finished job. */
TEST(add_unique) {
	ok("timeout t 30");
	ok("add t a '{\"v\":1}' --if-absent");
	check_state("t", "a", "pending");
	fails_saying(5, "add t a '{\"v\":2}' --if-absent", "exists: job a of type \"t\" is pending");
	fails_saying(5, "add t a '{\"v\":2}' --unique=active", "exists");
	fails_saying(5, "add t a '{\"v\":2}' --unique id --in 1h", "exists");
	char *d = job_data("t", "a");
	CHECK_STR(d, "{\"v\":1}");
	free(d);
	json_t *v = get_job("t", "a");
	CHECK_INT(jint(v, "sched_time"), 0);
	json_decref(v);
	/* finished: id refuses it, active makes it pending again */
	char *o = ok_out("accept t --timeout 5000");
	json_t *a = jparse(o);
	char args[256];
	snprintf(args, sizeof args, "finish t a '%s'", jstr(a, "lock"));
	ok(args);
	json_decref(a);
	free(o);
	check_state("t", "a", "finished");
	fails_saying(5, "add t a --unique id", "is finished");
	ok("add t a '{\"v\":3}' --unique active");
	check_state("t", "a", "pending");
	d = job_data("t", "a");
	CHECK_STR(d, "{\"v\":3}");
	free(d);
	/* none is the plain add */
	ok("add t a '{\"v\":4}' --unique none");
	d = job_data("t", "a");
	CHECK_STR(d, "{\"v\":4}");
	free(d);
}

/* accept and work over several types, in order of priority. */
TEST(accept_work_types) {
	ok("timeout hi 30");
	ok("timeout lo 30");
	ok("add lo l1");
	ok("add hi h1");
	char *o = ok_out("accept hi lo --timeout 0");
	json_t *a = jparse(o);
	CHECK_STR(jstr(a, "type"), "hi");
	CHECK_STR(jstr(a, "id"), "h1");
	json_decref(a);
	free(o);
	o = ok_out("accept hi lo --timeout 0");
	a = jparse(o);
	CHECK_STR(jstr(a, "type"), "lo");
	json_decref(a);
	free(o);
	fails_saying(3, "accept hi lo --timeout 0", "or the others");
	/* work: one slot, --max-jobs 1, takes the higher type's job first */
	ok("add lo l2");
	ok("add hi h2");
	char *out, *err;
	int rc = CJ(&out, &err,
	            "'%s' work hi lo --max-jobs 1 --timeout-exit 5000 -- sh -c 'echo \"{\\\"t\\\":\\\"$CJ_JOB_TYPE\\\"}\"'",
	            cj());
	if (rc != 0) t_fail(__FILE__, __LINE__, "work: exit %d: %s", rc, err);
	free(out);
	free(err);
	check_state("hi", "h2", "finished");
	check_state("lo", "l2", "pending");
	char *d = job_data("hi", "h2");
	CHECK_STR(d, "{\"t\":\"hi\"}");
	free(d);
	/* the old form: without --, one type and the command */
	rc = CJ(&out, &err, "'%s' work lo --max-jobs 1 --timeout-exit 5000 true", cj());
	if (rc != 0) t_fail(__FILE__, __LINE__, "work: exit %d: %s", rc, err);
	free(out);
	free(err);
	check_state("lo", "l2", "finished");
}

/* ---- processing from separate invocations ----------------------------- */

TEST(accept_update_finish) {
	ok("timeout t 30");
	fails(3, "accept t --timeout 200");
	ok("add t j '{\"step\":0}'");
	char *o = ok_out("accept t --timeout 5000");
	CHECK_INT(count_lines(o), 1);
	json_t *a = jparse(o);
	free(o);
	CHECK_STR(jstr(a, "type"), "t");
	CHECK_STR(jstr(a, "id"), "j");
	CHECK_INT((long long)strlen(jstr(a, "lock")), 36);
	CHECK_INT(json_integer_value(json_object_get(json_object_get(a, "data"), "step")), 0);
	char lock[64];
	snprintf(lock, sizeof lock, "%s", jstr(a, "lock"));
	json_decref(a);
	check_state("t", "j", "running");

	char args[256];
	snprintf(args, sizeof args, "update t j %s", lock);
	ok(args);
	snprintf(args, sizeof args, "update t j %s '{\"step\":1}'", lock);
	ok(args);
	char *d = job_data("t", "j");
	CHECK_STR(d, "{\"step\":1}");
	free(d);
	check_state("t", "j", "running");

	/* a wrong lock (well-formed) is a halt, and changes nothing */
	fails(4, "update t j 00000000-0000-4000-8000-000000000000 '{\"step\":9}'");
	d = job_data("t", "j");
	CHECK_STR(d, "{\"step\":1}");
	free(d);

	snprintf(args, sizeof args, "finish t j %s '{\"result\":42}'", lock);
	ok(args);
	check_state("t", "j", "finished");
	d = job_data("t", "j");
	CHECK_STR(d, "{\"result\":42}");
	free(d);

	/* the lock is spent */
	snprintf(args, sizeof args, "update t j %s", lock);
	fails(4, args);
	snprintf(args, sizeof args, "finish t j %s", lock);
	fails(4, args);

	/* re-added and accepted again: the old lock is stale */
	ok("add t j '{\"step\":0}'");
	check_state("t", "j", "pending");
	o = ok_out("accept t --timeout 5000");
	a = jparse(o);
	free(o);
	char lock2[64];
	snprintf(lock2, sizeof lock2, "%s", jstr(a, "lock"));
	json_decref(a);
	CHECK(strcmp(lock, lock2) != 0);
	snprintf(args, sizeof args, "update t j %s", lock);
	fails(4, args);
	snprintf(args, sizeof args, "finish t j %s '{\"stale\":true}'", lock);
	fails(4, args);
	check_state("t", "j", "running");

	/* resubmit while running: flagged, pending again once finished */
	snprintf(args, sizeof args, "resubmit t j %s", lock2);
	ok(args);
	json_t *v = get_job("t", "j");
	CHECK_STR(jstr(v, "state"), "running");
	CHECK(json_is_true(json_object_get(v, "resubmit")));
	json_decref(v);
	snprintf(args, sizeof args, "finish t j %s '{\"again\":1}'", lock2);
	ok(args);
	check_state("t", "j", "pending");

	/* removed while held: halt */
	o = ok_out("accept t --timeout 5000");
	a = jparse(o);
	free(o);
	ok("rm t j");
	snprintf(args, sizeof args, "update t j %s", jstr(a, "lock"));
	fails(4, args);
	snprintf(args, sizeof args, "resubmit t j %s", jstr(a, "lock"));
	fails(3, args);
	json_decref(a);
}

TEST(watch) {
	ok("timeout t 30");
	ok("add t w '{\"v\":0}'");
	struct bg b = {{NULL, "watch", "t", "w", NULL}, "watch.out", "watch.err"};
	int pid = start_bg(&b);
	free(wait_file("watch.out", 1, 20000)); /* subscribed: the current state */

	char *o = ok_out("accept t --timeout 5000");
	json_t *a = jparse(o);
	free(o);
	/* each step waits for its line, so that no change coalesces */
	free(wait_file("watch.out", 2, 20000));
	char args[256];
	snprintf(args, sizeof args, "update t w %s", jstr(a, "lock"));
	ok(args); /* no change of state or data: no line */
	snprintf(args, sizeof args, "update t w %s '{\"v\":1}'", jstr(a, "lock"));
	ok(args);
	free(wait_file("watch.out", 3, 20000));
	snprintf(args, sizeof args, "finish t w %s '{\"v\":2}'", jstr(a, "lock"));
	ok(args);
	json_decref(a);
	CHECK_INT(t_join(pid, 20000), 0);

	char *out = slurp("watch.out"), *err = slurp("watch.err");
	CHECK_STR(err, "");
	CHECK_INT(count_lines(out), 4);
	static const char *const want_state[] = {"pending", "running", "running", "finished"};
	static const int want_v[] = {0, 0, 1, 2};
	const char *p = out;
	for (int i = 0; i < 4; i++) {
		json_t *line = jparse(p);
		CHECK_STR(jstr(line, "type"), "t");
		CHECK_STR(jstr(line, "id"), "w");
		CHECK_STR(jstr(line, "state"), want_state[i]);
		CHECK_INT(jint(json_object_get(line, "data"), "v"), want_v[i]);
		json_decref(line);
		p = strchr(p, '\n') + 1;
	}
	free(out);
	free(err);

	/* a finished job: one line, at once */
	o = ok_out("watch t w");
	CHECK_INT(count_lines(o), 1);
	CHECK(strstr(o, "\"state\":\"finished\""));
	free(o);
	fails(3, "watch t nosuch");

	/* removal ends a watch with a "removed" line, data null */
	ok("add t r");
	struct bg b2 = {{NULL, "watch", "t", "r", NULL}, "watch2.out", "watch2.err"};
	pid = start_bg(&b2);
	free(wait_file("watch2.out", 1, 20000));
	ok("rm t r");
	CHECK_INT(t_join(pid, 20000), 0);
	out = slurp("watch2.out");
	CHECK_INT(count_lines(out), 2);
	json_t *last = jparse(strchr(out, '\n') + 1);
	CHECK_STR(jstr(last, "state"), "removed");
	CHECK(json_is_null(json_object_get(last, "data")));
	json_decref(last);
	free(out);

	/* SIGTERM ends a watch cleanly */
	ok("add t s");
	struct bg b3 = {{NULL, "watch", "t", "s", NULL}, "watch3.out", "watch3.err"};
	pid = start_bg(&b3);
	free(wait_file("watch3.out", 1, 20000));
	kill(pid, SIGTERM);
	CHECK_INT(t_join(pid, 20000), 0);
}

/* ---- bad input -------------------------------------------------------------- */

static char long_type[CJ_MAX_TYPE + 2], long_id[CJ_MAX_ID + 2];

static void bad_commands(void) {
	char args[2048];
	fails(2, "");
	fails(2, "frobnicate");
	fails(2, "--bogus list");
	fails(2, "--db");
	fails(2, "add");
	fails(2, "add t");
	fails(2, "add t i '{\"a\":'");             /* bad JSON */
	fails(2, "add t i '{\"a\":1} x'");          /* trailing garbage */
	fails(2, "add t i '{\"a\":1}{}'");
	fails_saying(2, "add t i '[1,2]'", "job data is not a JSON object");
	/* a negative number is a bad value, not an unknown option */
	fails_saying(2, "timeout t -5", "invalid timeout '-5'");
	fails_saying(2, "add '' i", "type is empty");
	fails(2, "add t i '\"s\"'");
	fails(2, "add t i ''");
	fails(2, "add t i \"$(printf '{\"a\":\"\\377\"}')\""); /* bad UTF-8 */
	fails(2, "add t i '{}' extra");
	fails(2, "add t i --bogus");
	fails(2, "add t i --in 5x");               /* bad duration */
	fails(2, "add t i --in ''");
	fails(2, "add t i --in -5");
	fails(2, "add t i --at soon");
	fails(2, "add t i --at 1 --in 5");
	fails(2, "add t i --in");                  /* no value */
	fails_saying(2, "add t i --unique both", "unknown unique policy");
	fails(2, "add t i --unique");
	fails_saying(2, "add t i --unique id --if-absent", "exclude each other");
	fails(2, "add t i --if-absent=yes");
	fails(2, "add '' i");
	fails(2, "add t ''");
	snprintf(args, sizeof args, "add %s i", long_type);
	fails(2, args);
	snprintf(args, sizeof args, "add t %s", long_id);
	fails(2, args);
	snprintf(args, sizeof args, "get %s i", long_type);
	fails(2, args);
	snprintf(args, sizeof args, "rm t %s", long_id);
	fails(2, args);
	fails(2, "get t");
	fails(2, "get t i j");
	fails(2, "rm t");
	fails(2, "list a b");
	fails(2, "list --state removed");
	fails(2, "list --state nonsense");
	fails(2, "stats --json=yes");
	fails(2, "timeout");
	fails(2, "timeout t soon");
	fails(2, "accept");
	fails(2, "accept t --timeout soon");
	fails(2, "update t i");
	fails(2, "update t i not-a-lock");
	fails(2, "finish t i 00000000-0000-4000-8000-000000000000 '{'");
	fails(2, "resubmit t i 00000000-0000-4000-8000-000000000000 --in 3q");
	fails(2, "watch t");
	fails(2, "work t");
	fails(2, "work t --");
	fails(2, "work t -j 0 -- true");
	fails(2, "work t -j x -- true");
	fails(2, "work t --grace x -- true");
	fails(2, "work t --max-jobs 0 -- true");
	fails(2, "work t --timeout-exit x -- true");
	fails_saying(2, "work t '' -- true", "type is empty");
	fails_saying(2, "accept t '' --timeout 0", "type is empty");
	snprintf(args, sizeof args, "accept t %s", long_type);
	fails(2, args);
	{
		char many[1024] = "accept";
		for (int i = 0; i <= CJ_ACCEPT_TYPES_MAX; i++) strcat(many, " t");
		fails_saying(2, many, "unexpected argument");
	}
	fails(2, "work t -- /nonexistent/command");
	fails(2, "work t -- no-such-command-anywhere");
	fails(2, "help nosuch");
}

TEST(bad_input) {
	memset(long_type, 'a', CJ_MAX_TYPE + 1);
	memset(long_id, 'b', CJ_MAX_ID + 1);
	/* argument errors are found before the store is opened */
	bad_commands();
	struct stat st;
	if (t_is_lmdb()) CHECK(stat("store", &st) != 0);

	/* and with a store, they change nothing */
	ok("timeout t 30");
	ok("timeout i 30");
	ok("add t i '{\"keep\":1}'");
	char *before = ok_out("list"), *stats = ok_out("stats --json");
	char *types = ok_out("types");
	bad_commands();
	char *after = ok_out("list"), *stats2 = ok_out("stats --json");
	char *types2 = ok_out("types");
	CHECK_STR(after, before);
	CHECK_STR(stats2, stats);
	CHECK_STR(types2, types);
	free(before);
	free(after);
	free(stats);
	free(stats2);
	free(types);
	free(types2);

	/* ids that look like options, after "--" */
	ok("add t -- -dash '{}'");
	check_state("t", "-dash", "pending");
	/* data from standard input */
	char *out, *err;
	CHECK_INT(CJ(&out, &err, "printf '{\"from\":\"stdin\"}' | '%s' add t s -", cj()), 0);
	free(out);
	free(err);
	char *d = job_data("t", "s");
	CHECK_STR(d, "{\"from\":\"stdin\"}");
	free(d);
	CHECK_INT(CJ(&out, &err, "printf '[1]' | '%s' add t s2 -", cj()), 2);
	CHECK_INT(count_lines(err), 1);
	free(out);
	free(err);
	fails(3, "get t s2");
}

/* ---- work ----------------------------------------------------------------- */

static const char job_script[] =
	"# a job: records what it was given, then behaves according to its id\n"
	"cat > \"in.$CJ_JOB_ID\"\n"
	"echo \"$CJ_JOB_TYPE $CJ_JOB_ID $CJ_JOB_LOCK\" > \"env.$CJ_JOB_ID\"\n"
	"echo \"$$\" > \"pid.$CJ_JOB_ID\"\n"
	"case \"$CJ_JOB_ID\" in\n"
	"ok) echo '{\"ok\":true}' ;;\n"
	"fail) echo 'some output'; echo 'the last line'; echo 'to stderr' >&2; exit 3 ;;\n"
	"sig) kill -9 $$ ;;\n"
	"prog) \"$CJOBS_BIN\" update \"$CJ_JOB_TYPE\" \"$CJ_JOB_ID\" \"$CJ_JOB_LOCK\" "
	"'{\"progress\":50}' &&\n"
	"  \"$CJOBS_BIN\" get \"$CJ_JOB_TYPE\" \"$CJ_JOB_ID\" > progress.json &&\n"
	"  echo '{\"done\":true}' ;;\n"
	"long*) exec sleep 30 ;;\n"
	"slow) sleep 3.5; echo '{\"slept\":true}' ;;\n"
	"batch*) echo started > \"here.$CJ_JOB_ID\"; i=0\n"
	"  while [ ! -e go ]; do i=$((i+1)); [ $i -gt 1200 ] && exit 9; sleep 0.05; done\n"
	"  echo '{\"batched\":true}' ;;\n"
	"pair*) touch \"here.$CJ_JOB_ID\"; i=0\n"
	"  while [ ! -e here.pair1 ] || [ ! -e here.pair2 ]; do\n"
	"    i=$((i+1)); [ $i -gt 300 ] && exit 9; sleep 0.05; done\n"
	"  echo '{\"together\":true}' ;;\n"
	"*) echo 'plain text' ;;\n"
	"esac\n";

TEST(work_results) {
	write_file("job.sh", job_script);
	ok("timeout w 30");
	ok("add w ok '{\"n\":1}'");
	ok("add w fail");
	ok("add w sig");
	ok("add w text");
	ok("add w prog");
	char *out, *err;
	/* the store given with --db reaches the command as CJOBS_DB */
	int rc = CJ(&out, &err,
	            "CJOBS_BIN='%s' env -u CJOBS_DB '%s' --db '%s' work w --max-jobs 5 "
	            "--timeout-exit 20000 -- sh job.sh", cj(), cj(), t_url());
	if (rc != 0) t_fail(__FILE__, __LINE__, "work: exit %d: %s", rc, err);
	CHECK_STR(out, "");
	/* one line per job accepted and per job finished or failed, plus the
	 * command's own stderr; a command that exits non-zero or is killed
	 * fails the attempt: without a retry policy the job is dead */
	CHECK(strstr(err, "to stderr\n") != NULL);
	const char *ids[] = {"ok", "fail", "sig", "text", "prog"};
	for (int i = 0; i < 5; i++) {
		int failed = i == 1 || i == 2;
		char want[64];
		snprintf(want, sizeof want, "w %s: accepted", ids[i]);
		CHECK(strstr(err, want) != NULL);
		snprintf(want, sizeof want, "w %s: %s", ids[i], failed ? "failed" : "finished");
		CHECK(strstr(err, want) != NULL);
		check_state("w", ids[i], failed ? "dead" : "finished");
	}
	free(out);
	free(err);

	char *d = job_data("w", "ok");
	CHECK_STR(d, "{\"ok\":true}");
	free(d);
	/* a failed job keeps its data; the error holds the status and output */
	json_t *v = get_job("w", "fail");
	json_t *data = json_object_get(v, "data");
	CHECK(json_object_size(data) == 0);
	json_t *e = json_array_get(json_object_get(v, "errors"), 0);
	CHECK_STR(jstr(e, "ended"), "failed");
	CHECK_INT(jint(json_object_get(e, "error"), "exit_status"), 3);
	CHECK_STR(jstr(json_object_get(e, "error"), "output_tail"), "some output\nthe last line\n");
	CHECK_INT(json_array_size(json_object_get(v, "errors")), 1);
	json_decref(v);
	v = get_job("w", "sig");
	e = json_array_get(json_object_get(v, "errors"), 0);
	CHECK_STR(jstr(json_object_get(e, "error"), "signal"), "SIGKILL");
	json_decref(v);
	v = get_job("w", "text");
	data = json_object_get(v, "data");
	CHECK_INT(jint(data, "exit_status"), 0);
	CHECK_STR(jstr(data, "output_tail"), "plain text\n");
	json_decref(v);

	/* the command reported progress with its own lock */
	char *pj = slurp("progress.json");
	json_t *pv = jparse(pj);
	CHECK_STR(jstr(pv, "state"), "running");
	CHECK_INT(jint(json_object_get(pv, "data"), "progress"), 50);
	json_decref(pv);
	free(pj);
	d = job_data("w", "prog");
	CHECK_STR(d, "{\"done\":true}");
	free(d);

	/* the command got the data on stdin and the job in its environment */
	char *in = slurp("in.ok");
	json_t *j = jparse(in);
	CHECK_INT(jint(j, "n"), 1);
	json_decref(j);
	free(in);
	in = slurp("in.fail");
	CHECK_STR(in, "{}\n");
	free(in);
	char *env = slurp("env.ok");
	CHECK(strncmp(env, "w ok ", 5) == 0 && strlen(env) == 5 + 36 + 1);
	free(env);
}

TEST(work_parallel_and_idle_exit) {
	write_file("job.sh", job_script);
	ok("timeout w 30");
	ok("add w pair1");
	ok("add w pair2");
	/* the two jobs wait for each other: they must run at once */
	char *out, *err;
	int64_t t0 = t_now_ms();
	int rc = CJ(&out, &err, "'%s' work w -j 2 --timeout-exit 1000 -- sh job.sh", cj());
	if (rc != 0) t_fail(__FILE__, __LINE__, "work: exit %d: %s", rc, err);
	CHECK(t_now_ms() - t0 < 30000);
	free(out);
	free(err);
	char *d = job_data("w", "pair1");
	CHECK_STR(d, "{\"together\":true}");
	free(d);
	d = job_data("w", "pair2");
	CHECK_STR(d, "{\"together\":true}");
	free(d);
}

/* Appends a string element of the tuple encoding (doc/format.md; the
 * strings here hold no NUL byte). */
static size_t tup_str(char *k, size_t at, const char *s) {
	k[at++] = 0x02;
	memcpy(k + at, s, strlen(s));
	at += strlen(s);
	k[at++] = 0x00;
	return at;
}

/* The Sequence of a job's data record, read through cj_tx_native() as
 * doc/format.md lays it out: the versionstamp of the transaction that last
 * accepted (or updated) the running job. 0 and vs[12] set, or -1 when the
 * record has none. */
static int job_sequence(cj_db *db, const char *type, const char *id, uint8_t vs[12]) {
	char key[512];
	size_t klen = tup_str(key, 0, "couch_jobs");
	klen = tup_str(key, klen, "data");
	klen = tup_str(key, klen, type);
	klen = tup_str(key, klen, id);
	uint8_t val[13];
	size_t vlen = 0;
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	if (!strcmp(cj_db_engine(db), "lmdb")) {
		MDB_txn *txn = cj_tx_native(tx);
		MDB_dbi dbi;
		CHECK(mdb_dbi_open(txn, "jobs", 0, &dbi) == 0);
		MDB_val k = {klen, key}, v;
		CHECK(mdb_get(txn, dbi, &k, &v) == 0);
		vlen = v.mv_size < sizeof val ? v.mv_size : sizeof val;
		memcpy(val, v.mv_data, vlen);
	} else {
#ifdef HAVE_LIBPQ
		/* the schema of the store under test: its URL's schema=NAME */
		const char *sc = strstr(t_url(), "schema=");
		CHECK(sc != NULL);
		sc += 7;
		char sql[512];
		snprintf(sql, sizeof sql, "SELECT v FROM \"%.*s\".kv WHERE space = 0 AND k = $1",
		         (int)strcspn(sc, "&"), sc);
		const char *params[1] = {key};
		int lens[1] = {(int)klen}, fmts[1] = {1};
		PGresult *r = PQexecParams(cj_tx_native(tx), sql, 1, NULL, params, lens, fmts, 1);
		if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
			t_fail(__FILE__, __LINE__, "%s: %s", sql, PQresultErrorMessage(r));
		vlen = (size_t)PQgetlength(r, 0, 0) < sizeof val ? (size_t)PQgetlength(r, 0, 0)
		                                                 : sizeof val;
		memcpy(val, PQgetvalue(r, 0, 0), vlen);
		PQclear(r);
#else
		t_fail(__FILE__, __LINE__, "engine %s", cj_db_engine(db));
#endif
	}
	cj_tx_abort(tx);
	if (vlen < 13 || val[0] != 0x33) return -1;
	memcpy(vs, val + 1, 12);
	return 0;
}

TEST(work_batch_accept) {
	write_file("job.sh", job_script);
	/* a long type timeout: no update replaces the Sequence of the accept */
	ok("timeout w 3600");
	static const char *const ids[] = {"batch1", "batch2", "batch3", "batch4"};
	for (int i = 0; i < 4; i++) {
		char args[64];
		snprintf(args, sizeof args, "add w %s", ids[i]);
		ok(args);
	}
	struct bg b = {{NULL, "work", "w", "-j", "4", "--max-jobs", "4", "--timeout-exit",
	                "60000", "--", "sh", "job.sh", NULL},
	               "work.out", "work.err"};
	int wpid = start_bg(&b);
	/* the four commands run at once (each waits for "go") */
	for (int i = 0; i < 4; i++) {
		char path[64];
		snprintf(path, sizeof path, "here.%s", ids[i]);
		free(wait_file(path, 1, 20000));
	}
	/* and were accepted in one transaction: their Sequences carry the same
	 * commit number (the first 8 bytes), each with an order of its own */
	cj_db *db = test_db();
	uint8_t vs[4][12];
	for (int i = 0; i < 4; i++) {
		check_state("w", ids[i], "running");
		if (job_sequence(db, "w", ids[i], vs[i]) != 0)
			t_fail(__FILE__, __LINE__, "%s: no versionstamp", ids[i]);
	}
	cj_close(db);
	write_file("go", ""); /* before any failure: the commands end then */
	for (int i = 1; i < 4; i++) {
		if (memcmp(vs[i], vs[0], 8) != 0)
			t_fail(__FILE__, __LINE__, "%s and %s were accepted by different "
			       "transactions", ids[0], ids[i]);
		for (int j = 0; j < i; j++) CHECK(memcmp(vs[i] + 8, vs[j] + 8, 2) != 0);
	}
	CHECK_INT(t_join(wpid, 60000), 0);
	char *err = slurp("work.err");
	for (int i = 0; i < 4; i++) {
		char want[64];
		snprintf(want, sizeof want, "w %s: finished (exit status 0)", ids[i]);
		if (!strstr(err, want)) t_fail(__FILE__, __LINE__, "no \"%s\" in: %s", want, err);
		char *d = job_data("w", ids[i]);
		CHECK_STR(d, "{\"batched\":true}");
		free(d);
	}
	free(err);

	/* the batch is capped by the jobs left under --max-jobs: 2 of 3 */
	ok("add w more1");
	ok("add w more2");
	ok("add w more3");
	char *out;
	int rc = CJ(&out, &err, "'%s' work w -j 4 --max-jobs 2 --timeout-exit 60000 -- sh job.sh",
	            cj());
	if (rc != 0) t_fail(__FILE__, __LINE__, "work: exit %d: %s", rc, err);
	CHECK(strstr(err, "w more3") == NULL);
	free(out);
	free(err);
	check_state("w", "more1", "finished");
	check_state("w", "more2", "finished");
	check_state("w", "more3", "pending");
}

TEST(work_large_data) {
	ok("timeout w 30");
	/* 900 KB of data through `cat` (stdin and stdout both far beyond a
	 * pipe's buffer) comes back as the result */
	FILE *f = fopen("big.json", "w");
	CHECK(f != NULL);
	fputs("{\"s\":\"", f);
	for (int i = 0; i < 900000; i++) fputc('a' + i % 26, f);
	fputs("\"}", f);
	CHECK(fclose(f) == 0);
	char *out, *err;
	CHECK_INT(CJ(&out, &err, "'%s' add w big - < big.json", cj()), 0);
	free(out);
	free(err);
	/* and 3 MB of output, over the data limit, leaves only its tail */
	ok("add w huge");
	write_file("job.sh",
	           "if [ \"$CJ_JOB_ID\" = big ]; then exec cat; fi\n"
	           "cat >/dev/null; i=0; while [ $i -lt 3000 ]; do\n"
	           "  printf '%1000d\\n' $i; i=$((i+1)); done; echo END\n");
	int rc = CJ(&out, &err, "'%s' work w --max-jobs 2 --timeout-exit 20000 -- sh job.sh",
	            cj());
	if (rc != 0) t_fail(__FILE__, __LINE__, "work: exit %d: %s", rc, err);
	free(out);
	free(err);
	char *big = slurp("big.json");
	char *d = job_data("w", "big");
	CHECK(strcmp(d, big) == 0);
	free(d);
	free(big);
	json_t *v = get_job("w", "huge");
	json_t *data = json_object_get(v, "data");
	CHECK_INT(jint(data, "exit_status"), 0);
	const char *tail = jstr(data, "output_tail");
	CHECK(strlen(tail) <= 8192 && strlen(tail) >= 1000);
	CHECK(strcmp(tail + strlen(tail) - 9, "2999\nEND\n") == 0);
	json_decref(v);
}

TEST(work_keeps_job_alive) {
	write_file("job.sh", job_script);
	/* a 1 s timeout and a 3.5 s command: without updates, the monitors (the
	 * worker's and this test's) would take the job back */
	ok("timeout w 1");
	ok("add w slow");
	cj_db *db = t_open();
	char *out, *err;
	int rc = CJ(&out, &err, "'%s' work w --max-jobs 1 --timeout-exit 20000 -- sh job.sh",
	            cj());
	if (rc != 0) t_fail(__FILE__, __LINE__, "work: exit %d: %s", rc, err);
	CHECK(strstr(err, "w slow: finished (exit status 0)") != NULL);
	CHECK(strstr(err, "halted") == NULL);
	free(out);
	free(err);
	char *d = job_data("w", "slow");
	CHECK_STR(d, "{\"slept\":true}");
	free(d);
	cj_close(db);
}

TEST(work_job_removed) {
	write_file("job.sh", job_script);
	/* updates every 20 s: only the job's lease can tell the worker soon */
	ok("timeout w 60");
	ok("add w long1");
	struct bg b = {{NULL, "work", "w", "--max-jobs", "2", "--timeout-exit", "20000",
	                "--", "sh", "job.sh", NULL},
	               "work.out", "work.err"};
	int wpid = start_bg(&b);
	int pid = read_pid("pid.long1", 20000);
	cj_db *db = test_db();
	CHECK_INT(wait_state(db, "w", "long1", CJ_RUNNING, 20000), 0);
	CHECK(pid_alive(pid));
	/* removed by this process: the command ends well before the job's next
	 * update (20 s) could have told the worker; the bound is fixed, not
	 * scaled, for that reason (bench/cj_bench lost measures the latency) */
	int64_t t0 = t_now_ms();
	CHECK_OK(cj_remove(db, NULL, "w", "long1"));
	int64_t t1 = t_now_ms();
	CHECK_INT(wait_pid_gone(pid, 10000), 0);
	note("  command stopped %lld ms after the removal returned (%lld ms after it "
	     "began)\n", (long long)(t_now_ms() - t1), (long long)(t_now_ms() - t0));
	/* the worker goes on with the next job */
	ok("add w ok");
	CHECK_INT(t_join(wpid, 30000), 0);
	check_state("w", "ok", "finished");
	fails(3, "get w long1");
	char *err = slurp("work.err");
	CHECK(strstr(err, "w long1: halted: the job was removed;") != NULL);
	CHECK(strstr(err, "w ok: finished") != NULL);
	free(err);
	char *out = slurp("work.out");
	CHECK_STR(out, "");
	free(out);
	cj_close(db);
}

TEST(work_sigterm_hands_back) {
	write_file("job.sh", job_script);
	/* a long type timeout: only the hand-back can make it pending soon */
	ok("timeout w 3600");
	ok("add w long2 '{\"keep\":\"me\"}'");
	struct bg b = {{NULL, "work", "w", "--grace", "1", "--", "sh", "job.sh", NULL},
	               "work.out", "work.err"};
	int wpid = start_bg(&b);
	int pid = read_pid("pid.long2", 20000);
	cj_db *db = test_db();
	CHECK_INT(wait_state(db, "w", "long2", CJ_RUNNING, 20000), 0);
	int64_t t0 = t_now_ms();
	kill(wpid, SIGTERM);
	CHECK_INT(t_join(wpid, 20000), 0);
	CHECK(t_now_ms() - t0 < 15000);
	/* pending at once, with its data, and the command is gone */
	json_t *v = get_job("w", "long2");
	CHECK_STR(jstr(v, "state"), "pending");
	CHECK_STR(jstr(json_object_get(v, "data"), "keep"), "me");
	json_decref(v);
	CHECK(!pid_alive(pid));
	char *err = slurp("work.err");
	CHECK(strstr(err, "handed back") != NULL);
	free(err);

	/* a command that ends within the grace period finishes normally */
	write_file("job2.sh", "cat >/dev/null; echo $$ > pid.grace; trap '' TERM; "
	                      "while [ ! -e go ]; do sleep 0.05; done; echo '{\"done\":1}'\n");
	ok("add w grace");
	ok("rm w long2");
	struct bg b2 = {{NULL, "work", "w", "--grace", "20", "--", "sh", "job2.sh", NULL},
	                "work2.out", "work2.err"};
	wpid = start_bg(&b2);
	read_pid("pid.grace", 20000);
	CHECK_INT(wait_state(db, "w", "grace", CJ_RUNNING, 20000), 0);
	kill(wpid, SIGTERM);
	free(wait_file("work2.err", 2, 20000)); /* accepted, stopping */
	write_file("go", "");
	CHECK_INT(t_join(wpid, 20000), 0);
	char *d = job_data("w", "grace");
	CHECK_STR(d, "{\"done\":1}");
	free(d);
	cj_close(db);
}

/* Context switches (voluntary and not) of every thread of pid so far. */
static long long ctx_switches(int pid) {
	char path[96];
	snprintf(path, sizeof path, "/proc/%d/task", pid);
	DIR *d = opendir(path);
	CHECK(d != NULL);
	long long sum = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.') continue;
		char sp[320], line[256];
		snprintf(sp, sizeof sp, "/proc/%d/task/%s/status", pid, e->d_name);
		FILE *f = fopen(sp, "r");
		if (!f) continue; /* a thread that just ended */
		while (fgets(line, sizeof line, f)) {
			long long v;
			if (sscanf(line, "voluntary_ctxt_switches: %lld", &v) == 1 ||
			    sscanf(line, "nonvoluntary_ctxt_switches: %lld", &v) == 1)
				sum += v;
		}
		fclose(f);
	}
	closedir(d);
	return sum;
}

/* How often pid wakes while idle: waits (up to a minute) until it has not
 * run for a whole second, then counts its wakeups over `ms`. */
static long long idle_wakeups(int pid, int64_t ms) {
	int64_t end = t_now_ms() + 60000;
	long long before = ctx_switches(pid);
	for (;;) {
		sleep_ms(1000);
		long long now = ctx_switches(pid);
		if (now == before) break;
		before = now;
		if (t_now_ms() > end) t_fail(__FILE__, __LINE__, "process %d never idle", pid);
	}
	sleep_ms(ms);
	return ctx_switches(pid) - before;
}

/* An idle `cjobs work -j 8` and an idle `cjobs watch` sleep until
 * something happens: no thread of theirs wakes while nothing does. (The
 * activity monitor of the worker's store wakes once per type timeout: an
 * hour here.) Both still react at once afterwards. */
TEST(work_and_watch_idle_wake_for_nothing) {
	ok("timeout idle 3600");
	ok("add idle watched");
	struct bg b = {{NULL, "work", "idle", "-j", "8", "--", "cat", NULL},
	               "work.out", "work.err"};
	int wpid = start_bg(&b);
	struct bg bw = {{NULL, "watch", "idle", "watched", NULL}, "watch.out", "watch.err"};
	/* the worker takes the watched job: let it run first, then watch */
	cj_db *db = test_db();
	CHECK_INT(wait_state(db, "idle", "watched", CJ_FINISHED, 20000), 0);
	ok("add idle watched2");
	CHECK_INT(wait_state(db, "idle", "watched2", CJ_FINISHED, 20000), 0);
	bw.argv[3] = "watched3";
	ok("add idle watched3 --in 1d"); /* pending, and stays so */
	int spid = start_bg(&bw);
	free(wait_file("watch.out", 1, 20000));
	long long ww = idle_wakeups(wpid, 3000), sw = idle_wakeups(spid, 3000);
	note("  idle over 3 s: cjobs work -j 8 woke %lld times, cjobs watch %lld times\n",
	     ww, sw);
	CHECK(ww <= 2);
	CHECK(sw <= 2);
	/* and both are awake to events */
	ok("add idle after '{\"x\":1}'");
	CHECK_INT(wait_state(db, "idle", "after", CJ_FINISHED, 20000), 0);
	ok("rm idle watched3");
	CHECK_INT(t_join(spid, 20000), 0);
	kill(wpid, SIGTERM);
	CHECK_INT(t_join(wpid, 20000), 0);
	char *out = slurp("watch.out");
	CHECK(strstr(out, "\"removed\"") != NULL);
	free(out);
	cj_close(db);
}

/* The test programs list their cases (and this one lists itself). */
TEST(test_programs_list_cases) {
	char *out = NULL;
	CHECK_INT(t_sh(&out, NULL, "'%s' --list", t_bin("test_conf_misc")), 0);
	CHECK(strncmp(out, "misc_code_names\n", 16) == 0);
	CHECK(strstr(out, "\nmisc_threads_share_handle\n") != NULL);
	free(out);
	CHECK_INT(t_sh(&out, NULL, "'%s' --list", t_bin("test_cli")), 0);
	CHECK(strstr(out, "\ntest_programs_list_cases\n") != NULL);
	CHECK_INT(count_lines(out), 22);
	free(out);
	char *err = NULL;
	CHECK_INT(t_sh(&out, &err, "'%s' no_such_case", t_bin("test_conf_misc")), 2);
	CHECK(strstr(err, "--list") != NULL);
	free(out);
	free(err);
}

/* ---- failures: policy, fail, retry, list --state dead, stats -------------- */

TEST(fail_policy_retry) {
	ok("timeout f 30");
	/* policy: none yet; set, read back, partial update, clear */
	fails_saying(3, "policy f", "has no retry policy");
	ok("policy f --max-attempts 3 --backoff-min 0 --backoff-max 1m --jitter none");
	char *o = ok_out("policy f");
	CHECK_STR(o, "{\"max_attempts\":3,\"backoff_min\":0,\"backoff_max\":60,\"multiplier\":2,"
	             "\"jitter\":\"none\"}\n");
	free(o);
	ok("policy f --multiplier 3");
	o = ok_out("policy f");
	CHECK(strstr(o, "\"max_attempts\":3,") && strstr(o, "\"multiplier\":3,"));
	free(o);
	fails(2, "policy f --max-attempts -1");
	fails(2, "policy f --max-attempts x");
	fails(2, "policy f --max-attempts 1000001");
	fails(2, "policy f --backoff-min 1.5");
	fails(2, "policy f --backoff-max 400d");
	fails(2, "policy f --multiplier 0");
	fails(2, "policy f --jitter some");
	fails(2, "policy f --backoff-min 2h"); /* above backoff-max */
	fails(2, "policy f --clear --multiplier 2");
	fails(2, "policy '' --clear");
	fails(2, "policy");
	o = ok_out("policy f"); /* the bad ones changed nothing */
	CHECK(strstr(o, "\"backoff_min\":0,") && strstr(o, "\"multiplier\":3,"));
	free(o);

	/* fail: pending again (attempt 1), then a lock that is stale halts */
	ok("add f j '{\"n\":1}'");
	char *lock = ok_out("accept f --lock-only");
	lock[strcspn(lock, "\n")] = 0;
	char args[256];
	snprintf(args, sizeof args, "fail f j %s '{\"why\":\"no disk\"}'", lock);
	ok(args);
	json_t *v = get_job("f", "j");
	CHECK_STR(jstr(v, "state"), "pending");
	CHECK_INT(jint(v, "attempt"), 1);
	CHECK(jint(v, "fence") > 0);
	json_t *e = json_array_get(json_object_get(v, "errors"), 0);
	CHECK_STR(jstr(json_object_get(e, "error"), "why"), "no disk");
	json_decref(v);
	fails(4, args);
	snprintf(args, sizeof args, "fail f j %s '[1]'", lock);
	fails(2, args);
	fails(2, "fail f j not-a-lock");
	fails(2, "fail f j");
	free(lock);

	/* cjobs work with a failing command and 3 attempts: dead after 3 runs */
	write_file("count.sh", "echo run >> runs.txt; echo oops; exit 5\n");
	ok("add f w");
	char *out, *err;
	int rc = CJ(&out, &err, "'%s' work f --timeout-exit 2000 -- sh count.sh", cj());
	if (rc != 0) t_fail(__FILE__, __LINE__, "work: exit %d: %s", rc, err);
	CHECK(strstr(err, "f w: failed (exit status 5)") != NULL);
	free(out);
	free(err);
	char *runs = slurp("runs.txt");
	/* j ran twice more too (its attempts 2 and 3): 5 runs in all */
	CHECK_INT(count_lines(runs), 5);
	free(runs);
	check_state("f", "w", "dead");
	check_state("f", "j", "dead");
	v = get_job("f", "w");
	CHECK_INT(jint(v, "attempt"), 3);
	CHECK_INT(json_array_size(json_object_get(v, "errors")), 3);
	e = json_array_get(json_object_get(v, "errors"), 2);
	CHECK_INT(jint(json_object_get(e, "error"), "exit_status"), 5);
	CHECK_STR(jstr(json_object_get(e, "error"), "output_tail"), "oops\n");
	CHECK(jint(v, "finished_ms") > 0);
	json_decref(v);

	/* list --state dead, stats */
	o = ok_out("list f --state dead");
	CHECK_INT(count_lines(o), 2);
	free(o);
	fails(2, "list --state gone");
	ok("add f p");
	o = ok_out("stats --json");
	json_t *st = jparse(o);
	json_t *tf = json_object_get(json_object_get(st, "types"), "f");
	CHECK_INT(jint(tf, "dead"), 2);
	CHECK_INT(jint(tf, "pending"), 1);
	CHECK_INT(jint(tf, "retrying"), 0);
	CHECK_INT(jint(tf, "total"), 3);
	json_decref(st);
	free(o);
	o = ok_out("stats");
	CHECK(strstr(o, "DEAD") && strstr(o, "RETRYING"));
	free(o);

	/* retry: one job, keeping its attempts (retrying), then the rest */
	ok("retry f w --keep-attempts");
	v = get_job("f", "w");
	CHECK_STR(jstr(v, "state"), "pending");
	CHECK_INT(jint(v, "attempt"), 3);
	json_decref(v);
	o = ok_out("stats --json");
	st = jparse(o);
	CHECK_INT(jint(json_object_get(json_object_get(st, "types"), "f"), "retrying"), 1);
	json_decref(st);
	free(o);
	fails_saying(2, "retry f w", "not dead");
	fails(3, "retry f nope");
	fails(2, "retry f");
	fails(2, "retry --all f w");
	fails(2, "retry ''");
	o = ok_out("retry --all f");
	CHECK_STR(o, "1\n");
	free(o);
	check_state("f", "j", "pending");
	o = ok_out("retry --all f");
	CHECK_STR(o, "0\n");
	free(o);
	ok("policy f --clear");
	fails(3, "policy f --clear");
}

/* ---- retention, prune ---------------------------------------------------- */

/* Adds type/id and finishes it (fail: fails it; dead, without a policy). */
static void ended(const char *type, const char *id, int fail) {
	char args[256];
	snprintf(args, sizeof args, "add %s %s", type, id);
	ok(args);
	snprintf(args, sizeof args, "accept %s --lock-only", type);
	char *lock = ok_out(args);
	lock[strcspn(lock, "\n")] = 0;
	snprintf(args, sizeof args, "%s %s %s %s", fail ? "fail" : "finish", type, id, lock);
	ok(args);
	free(lock);
}

TEST(retention_prune) {
	ok("timeout r 30");
	/* retention: none yet; set, read back, partial update, clear */
	fails_saying(3, "retention r", "has no retention");
	ok("retention r --keep-for 1h --keep 3");
	char *o = ok_out("retention r");
	CHECK_STR(o, "{\"keep_for_ms\":3600000,\"keep\":3,\"dead_keep_for_ms\":null,"
	             "\"dead_keep\":null}\n");
	free(o);
	ok("retention r --dead-keep 1 --dead-keep-for 2d");
	o = ok_out("retention r");
	CHECK_STR(o, "{\"keep_for_ms\":3600000,\"keep\":3,\"dead_keep_for_ms\":172800000,"
	             "\"dead_keep\":1}\n");
	free(o);
	fails_saying(2, "retention r --keep -1", "invalid --keep '-1'");
	fails_saying(2, "retention r --keep-for soon", "invalid --keep-for 'soon'");
	fails_saying(2, "retention r --clear --keep 2", "not both");
	fails(2, "retention '' --keep 1");
	fails(2, "retention");
	ok("retention r --clear");
	fails_saying(3, "retention r --clear", "has no retention");

	/* prune by hand: 5 finished, 2 dead, 1 pending */
	for (int i = 0; i < 5; i++) {
		char id[16];
		snprintf(id, sizeof id, "f%d", i);
		ended("r", id, 0);
	}
	ended("r", "d0", 1);
	ended("r", "d1", 1);
	ok("add r p");
	fails_saying(3, "prune r", "has no retention");
	fails_saying(2, "prune r --dead", "--dead needs --older-than or --keep");
	fails_saying(2, "prune r --keep x", "invalid --keep 'x'");
	fails_saying(2, "prune r --older-than 3 --keep 1 extra", NULL);
	o = ok_out("prune r --keep 2");
	CHECK_STR(o, "3\n");
	free(o);
	check_state("r", "f3", "finished");
	fails(3, "get r f0");
	fails(3, "get r f2");
	o = ok_out("prune r --older-than 1h");
	CHECK_STR(o, "0\n");
	free(o);
	o = ok_out("prune --dead --keep 1");
	CHECK_STR(o, "1\n");
	free(o);
	check_state("r", "d1", "dead");
	/* by the type's own retention, and every type's */
	ok("retention r --keep 1");
	o = ok_out("prune r");
	CHECK_STR(o, "1\n");
	free(o);
	o = ok_out("prune");
	CHECK_STR(o, "0\n");
	free(o);
	check_state("r", "f4", "finished");
	check_state("r", "p", "pending");
	char *out = NULL;
	CHECK_INT(t_sh(&out, NULL, "%s check", t_bin("cjobs")), 0);
	free(out);
}

/* ---- limit ------------------------------------------------------------------ */

/* A job's command: logs its start and end under flock, running a while. */
static const char limit_script[] =
	"flock runs.lock sh -c 'echo S >> runs.txt'\n"
	"sleep 0.2\n"
	"flock runs.lock sh -c 'echo E >> runs.txt'\n";

TEST(limit_concurrency_and_rate) {
	ok("timeout l 30");
	fails_saying(3, "limit l", "has no limits");
	ok("limit l --concurrency 2 --rate 10/s");
	char *o = ok_out("limit l");
	CHECK_STR(o, "{\"max_running\":2,\"rate\":10,\"rate_period_ms\":1000}\n");
	free(o);
	ok("limit l --rate 100/500ms"); /* the concurrency stays */
	o = ok_out("limit l");
	CHECK_STR(o, "{\"max_running\":2,\"rate\":100,\"rate_period_ms\":500}\n");
	free(o);
	fails(2, "limit l --concurrency -1");
	fails(2, "limit l --concurrency 10001");
	fails(2, "limit l --concurrency x");
	fails(2, "limit l --rate 10");
	fails(2, "limit l --rate 0/s");
	fails(2, "limit l --rate 1000001/s");
	fails(2, "limit l --rate 10/fortnight");
	fails(2, "limit l --rate 10/0ms");
	fails(2, "limit l --rate 10/400d");
	fails(2, "limit l --clear --concurrency 1");
	fails(2, "limit '' --clear");
	fails(2, "limit");
	o = ok_out("limit l"); /* the bad ones changed nothing */
	CHECK_STR(o, "{\"max_running\":2,\"rate\":100,\"rate_period_ms\":500}\n");
	free(o);
	ok("limit l --rate 0");

	/* two workers of four slots each run at most two jobs at once */
	write_file("job.sh", limit_script);
	for (int i = 0; i < 8; i++) {
		char args[32];
		snprintf(args, sizeof args, "add l j%d", i);
		ok(args);
	}
	char *out, *err;
	int rc = CJ(&out, &err, "'%s' work l -j 4 --timeout-exit 1500 -- sh job.sh & "
	            "'%s' work l -j 4 --timeout-exit 1500 -- sh job.sh; wait", cj(), cj());
	if (rc != 0) t_fail(__FILE__, __LINE__, "work: exit %d: %s", rc, err);
	free(out);
	free(err);
	char *runs = slurp("runs.txt");
	int running = 0, most = 0, starts = 0;
	for (const char *p = runs; *p; p++) {
		if (*p == 'S') running++, starts++;
		if (*p == 'E') running--;
		if (running > most) most = running;
	}
	free(runs);
	CHECK_INT(starts, 8);
	CHECK_INT(most, 2);
	ok("limit l --clear");
	fails_saying(3, "limit l --clear", "has no limits");
	fails_saying(3, "limit l", "has no limits");
}

TEST_MAIN(ENTRY(help), ENTRY(timeout_and_types), ENTRY(add_get_list_rm_stats),
          ENTRY(add_unique), ENTRY(accept_work_types),
          ENTRY(schedule), ENTRY(schedule_add_list_rm), ENTRY(accept_update_finish),
          ENTRY(watch),
          ENTRY(bad_input), ENTRY(work_results), ENTRY(work_parallel_and_idle_exit),
          ENTRY(work_batch_accept),
          ENTRY(work_large_data), ENTRY(work_keeps_job_alive), ENTRY(work_job_removed),
          ENTRY(work_sigterm_hands_back), ENTRY(work_and_watch_idle_wake_for_nothing),
          ENTRY(test_programs_list_cases), ENTRY(fail_policy_retry),
          ENTRY(retention_prune), ENTRY(limit_concurrency_and_rate))
