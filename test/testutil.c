/* Helpers shared by the test programs; see testutil.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "testutil.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Fails the case at file:line unless rc is CJ_OK; fmt names the call. */
static void ok_at(const char *file, int line, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void ok_at(const char *file, int line, int rc, const char *fmt, ...) {
	if (rc == CJ_OK) return;
	const char *detail = cj_last_error();
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	t_fail(file, line, "%s = %s, want CJ_OK (%s)", what, cj_err_name(rc), detail);
}

/* ---- JSON ------------------------------------------------------------------ */

/* A copy of a JSON text without the white space outside strings. */
static char *json_squeeze(const char *s) {
	size_t n = strlen(s), j = 0;
	char *o = malloc(n + 1);
	if (!o) t_fail(__FILE__, __LINE__, "out of memory");
	int in = 0, esc = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (in) {
			o[j++] = c;
			if (esc) esc = 0;
			else if (c == '\\') esc = 1;
			else if (c == '"') in = 0;
		} else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			o[j++] = c;
			if (c == '"') in = 1;
		}
	}
	o[j] = 0;
	return o;
}

int json_same(const char *a, const char *b) {
	if (!a || !b) return 0;
	char *x = json_squeeze(a), *y = json_squeeze(b);
	int same = strcmp(x, y) == 0;
	free(x);
	free(y);
	return same;
}

/* ---- opening ----------------------------------------------------------------- */

cj_db *tu_open_typed(const char *file, int line, const char *type) {
	cj_db *db = t_open();
	ok_at(file, line, cj_set_type_timeout(db, type, 60), "cj_set_type_timeout(%s, 60)", type);
	return db;
}

cj_db *open_nomon(void) {
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	return t_open_opts(&o);
}

void tu_setup_type(const char *file, int line, const char *type, int64_t timeout_s) {
	cj_db *db = open_nomon();
	ok_at(file, line, cj_set_type_timeout(db, type, timeout_s), "cj_set_type_timeout(%s, %lld)",
	      type, (long long)timeout_s);
	cj_close(db);
}

void tu_add_job(const char *file, int line, const char *type, const char *id,
                const char *data) {
	cj_db *db = open_nomon();
	ok_at(file, line, cj_add(db, NULL, type, id, data, 0), "cj_add(%s, %s)", type, id);
	cj_close(db);
}

/* ---- reading jobs ------------------------------------------------------------ */

cj_state tu_state_of(const char *file, int line, cj_db *db, const char *type,
                     const char *id) {
	cj_state st = 0;
	ok_at(file, line, cj_get_job_state(db, NULL, type, id, &st), "cj_get_job_state(%s, %s)",
	      type, id);
	return st;
}

void tu_check_data(const char *file, int line, cj_db *db, const char *type, const char *id,
                   const char *want) {
	char *d = NULL;
	ok_at(file, line, cj_get_job_data(db, NULL, type, id, &d), "cj_get_job_data(%s, %s)",
	      type, id);
	if (!json_same(d, want))
		t_fail(file, line, "data of %s/%s = %s, want %s", type, id, d ? d : "(null)",
		       want ? want : "(null)");
	cj_free(d);
}

void tu_check_job_is(const char *file, int line, cj_db *db, const char *type,
                     const char *id, cj_state state, const char *data) {
	cj_job_info info = {0};
	ok_at(file, line, cj_get_job(db, NULL, type, id, &info), "cj_get_job(%s, %s)", type, id);
	if (info.state != state)
		t_fail(file, line, "%s/%s is %s, want %s", type, id, cj_state_name(info.state),
		       cj_state_name(state));
	if (!json_same(info.data, data))
		t_fail(file, line, "data of %s/%s = %s, want %s", type, id,
		       info.data ? info.data : "(null)", data ? data : "(null)");
	cj_job_info_clear(&info);
}

static int count_cb(const cj_job_info *info, void *arg) {
	(void)info;
	++*(size_t *)arg;
	return 0;
}

size_t tu_count_jobs(const char *file, int line, cj_db *db, cj_tx *tx, const char *type) {
	size_t n = 0;
	ok_at(file, line, cj_list_jobs(db, tx, type, count_cb, &n), "cj_list_jobs(%s)",
	      type ? type : "(every type)");
	return n;
}

int noop_cb(const cj_job_info *info, void *arg) {
	(void)info;
	(void)arg;
	return 0;
}

void free_types(char **types, size_t n) {
	for (size_t i = 0; i < n; i++) cj_free(types[i]);
	cj_free(types);
}

/* ---- accepting ------------------------------------------------------------------ */

cj_job *tu_take(const char *file, int line, cj_db *db, const char *type, int64_t max_sched,
                int no_schedule, int64_t timeout_ms, const char *want_id, char **data) {
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.max_sched_time = max_sched;
	o.no_schedule = no_schedule;
	o.timeout_ms = timeout_ms;
	cj_job *job = NULL;
	ok_at(file, line, cj_accept(db, type, &o, &job, data), "cj_accept(%s)", type);
	if (!job) t_fail(file, line, "cj_accept(%s) = CJ_OK without a job", type);
	const char *id = cj_job_id(job);
	if (want_id && (!id || strcmp(id, want_id) != 0))
		t_fail(file, line, "cj_accept(%s) took \"%s\", want \"%s\"", type, id ? id : "(null)",
		       want_id);
	return job;
}

void tu_check_empty(const char *file, int line, cj_db *db, const char *type,
                    int64_t max_sched, int no_schedule) {
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.max_sched_time = max_sched;
	o.no_schedule = no_schedule;
	o.timeout_ms = 0;
	cj_job *job = NULL;
	int rc = cj_accept(db, type, &o, &job, NULL);
	if (rc != CJ_NOT_FOUND)
		t_fail(file, line, "cj_accept(%s) with timeout 0 = %s, want CJ_NOT_FOUND (%s)", type,
		       cj_err_name(rc), cj_last_error());
	if (job) t_fail(file, line, "cj_accept(%s) = CJ_NOT_FOUND with a job", type);
}

int is_uuid(const char *s) {
	if (!s || strlen(s) != 36) return 0;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-') return 0;
		} else if (!isxdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

/* ---- subscribing ------------------------------------------------------------------ */

cj_sub *tu_sub_on(const char *file, int line, cj_db *db, const char *type, const char *id,
                  cj_state *st) {
	cj_sub *sub = NULL;
	ok_at(file, line, cj_subscribe(db, type, id, &sub, st, NULL), "cj_subscribe(%s, %s)",
	      type, id);
	if (!sub) t_fail(file, line, "cj_subscribe(%s, %s) = CJ_OK without a subscription", type, id);
	return sub;
}

/* ---- the caller's keys -------------------------------------------------------------- */

int put_str(cj_tx *tx, const char *key, const char *val) {
	return cj_tx_put(tx, key, strlen(key), val, strlen(val));
}

/* Reads key in a transaction of its own; returns a copy (NUL-terminated,
 * for free()) or NULL when absent. */
static char *kv_read(const char *file, int line, cj_db *db, const char *key) {
	cj_tx *tx = NULL;
	ok_at(file, line, cj_tx_begin(db, &tx), "cj_tx_begin");
	void *v = NULL;
	size_t vl = 0;
	int rc = cj_tx_get(tx, key, strlen(key), &v, &vl);
	cj_tx_abort(tx);
	if (rc == CJ_NOT_FOUND) return NULL;
	ok_at(file, line, rc, "cj_tx_get(%s)", key);
	char *copy = malloc(vl + 1);
	if (!copy) t_fail(__FILE__, __LINE__, "out of memory");
	memcpy(copy, v, vl);
	copy[vl] = 0;
	cj_free(v);
	return copy;
}

void tu_check_kv(const char *file, int line, cj_db *db, const char *key, const char *want) {
	char *got = kv_read(file, line, db, key);
	if (want == NULL) {
		if (got) t_fail(file, line, "key %s = \"%s\", want absent", key, got);
	} else if (!got) {
		t_fail(file, line, "key %s absent, want \"%s\"", key, want);
	} else if (strcmp(got, want) != 0) {
		t_fail(file, line, "key %s = \"%s\", want \"%s\"", key, got, want);
	}
	free(got);
}

/* ---- time and processes ---------------------------------------------------------- */

void sleep_ms(int64_t ms) {
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

int64_t cpu_us(void) {
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0) t_fail(__FILE__, __LINE__, "getrusage");
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
	       ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

int64_t cpu_ms(void) { return cpu_us() / 1000; }

void note(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

void tu_check_exit(const char *file, int line, int pid, int64_t timeout_ms, int want) {
	int st = t_join(pid, timeout_ms);
	if (st != want) t_fail(file, line, "process %d ended with %d, want %d", pid, st, want);
}

void tu_check_each_once(const char *file, int line, int fd, int n) {
	size_t cap = (size_t)n * 16 + 64, len = 0;
	char *buf = malloc(cap + 1);
	int *seen = calloc((size_t)n + 1, sizeof *seen);
	if (!buf || !seen) t_fail(file, line, "out of memory");
	for (;;) {
		if (len == cap) t_fail(file, line, "more ids than %d jobs can make", n);
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR) continue;
		if (r < 0) t_fail(file, line, "read: %s", strerror(errno));
		if (r == 0) break;
		len += (size_t)r;
	}
	buf[len] = 0;
	close(fd);
	int total = 0;
	char *save = NULL;
	for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		int k = -1;
		if (sscanf(l, "j%d", &k) != 1 || k < 0 || k >= n)
			t_fail(file, line, "unexpected id '%s'", l);
		if (seen[k]++) t_fail(file, line, "job %s taken twice", l);
		total++;
	}
	if (total != n) t_fail(file, line, "%d of %d jobs taken", total, n);
	free(seen);
	free(buf);
}

void tu_gates_init(t_gate *const *g, size_t n) {
	for (size_t i = 0; i < n; i++) t_gate_init(g[i]);
}

void tu_gates_close(t_gate *const *g, size_t n) {
	for (size_t i = 0; i < n; i++) t_gate_close(g[i]);
}

int tu_spawn_ready(const char *file, int line, int (*fn)(void *), void *arg, t_gate *ready,
                   int64_t timeout_ms) {
	int pid = t_spawn(fn, arg);
	if (t_gate_wait(ready, timeout_ms) != 0)
		t_fail(file, line, "process %d not ready within %lld ms", pid, (long long)timeout_ms);
	return pid;
}

_Noreturn void stall_forever(void) {
	for (int i = 0; i < 600; i++) sleep_ms(100);
	fprintf(stderr, "stalled process was never killed\n");
	_exit(98);
}

void tu_chan_init(const char *file, int line, chan *c) {
	if (pipe(c->fd) != 0) t_fail(file, line, "pipe: %s", strerror(errno));
}

void chan_close(chan *c) {
	close(c->fd[0]);
	close(c->fd[1]);
}

void tu_chan_send(const char *file, int line, chan *c, const void *buf, size_t len) {
	if (write(c->fd[1], buf, len) != (ssize_t)len)
		t_fail(file, line, "chan write: %s", strerror(errno));
}

void tu_chan_recv(const char *file, int line, chan *c, void *buf, size_t len,
                  int64_t timeout_ms) {
	size_t got = 0;
	int64_t end = t_now_ms() + timeout_ms;
	while (got < len) {
		int64_t left = end - t_now_ms();
		if (left <= 0)
			t_fail(file, line, "chan: nothing within %lld ms", (long long)timeout_ms);
		struct pollfd p = {c->fd[0], POLLIN, 0};
		int n = poll(&p, 1, (int)left);
		if (n < 0 && errno != EINTR) t_fail(file, line, "poll: %s", strerror(errno));
		if (n <= 0) continue;
		ssize_t r = read(c->fd[0], (char *)buf + got, len - got);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) t_fail(file, line, "chan read: %s", r ? strerror(errno) : "EOF");
		got += (size_t)r;
	}
}

void tu_chan_put(const char *file, int line, chan *c, int64_t v) {
	tu_chan_send(file, line, c, &v, sizeof v);
}

int64_t tu_chan_get(const char *file, int line, chan *c, int64_t timeout_ms) {
	int64_t v;
	tu_chan_recv(file, line, c, &v, sizeof v, timeout_ms);
	return v;
}

/* ---- the combine file ------------------------------------------------------------ */

void tu_combine_mark_layout_1(const char *file, int line) {
	char path[4096];
	snprintf(path, sizeof path, "%s/store/combine", t_dir());
	int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) t_fail(file, line, "open %s: %s", path, strerror(errno));
	uint32_t magic = 0x636a7801u; /* in the machine's byte order */
	if (pwrite(fd, &magic, sizeof magic, 0) != (ssize_t)sizeof magic)
		t_fail(file, line, "write %s: %s", path, strerror(errno));
	if (close(fd) != 0) t_fail(file, line, "close %s: %s", path, strerror(errno));
}

/* ---- a private PostgreSQL server ------------------------------------------------- */

static char pg_sh[4096];

const char *pg_script(void) {
	const char *e = getenv("CJ_PG_SH");
	if (e && *e) {
		snprintf(pg_sh, sizeof pg_sh, "%s", e);
	} else {
		/* __FILE__ is this file's path as the build gave it: test/.. */
		snprintf(pg_sh, sizeof pg_sh, "%s", __FILE__);
		for (int i = 0; i < 2; i++) {
			char *slash = strrchr(pg_sh, '/');
			if (!slash) return NULL;
			*slash = 0;
		}
		size_t n = strlen(pg_sh);
		snprintf(pg_sh + n, sizeof pg_sh - n, "/scripts/pg.sh");
	}
	return access(pg_sh, R_OK) == 0 ? pg_sh : NULL;
}

static void pg_dir(char *out, size_t cap) { snprintf(out, cap, "%s/pg", t_dir()); }

int tu_pg_private_start(const char *file, int line, char *url, size_t cap) {
	const char *sh = pg_script();
	if (!sh) return -1;
	char dir[4200], *err = NULL, *out = NULL;
	pg_dir(dir, sizeof dir);
	if (chmod(t_dir(), 0755) != 0) t_fail(file, line, "chmod: %s", strerror(errno));
	if (t_sh(NULL, &err, "sh '%s' start '%s'", sh, dir) != 0)
		t_fail(file, line, "pg.sh start: %s", err);
	free(err);
	if (t_sh(&out, NULL, "sh '%s' url '%s'", sh, dir) != 0) t_fail(file, line, "pg.sh url");
	out[strcspn(out, "\n")] = 0;
	snprintf(url, cap, "%s", out);
	free(out);
	return 0;
}

void pg_private_stop(void) {
	char dir[4200];
	pg_dir(dir, sizeof dir);
	pg_private_signal(SIGCONT); /* a stopped server cannot shut down */
	t_sh(NULL, NULL, "sh '%s' stop '%s'", pg_sh, dir);
}

/* The PID in the first line of the server's postmaster.pid, or -1. */
static int postmaster_pid(void) {
	char path[4300];
	pg_dir(path, sizeof path);
	strcat(path, "/data/postmaster.pid");
	FILE *f = fopen(path, "r");
	int pid = -1;
	if (f) {
		if (fscanf(f, "%d", &pid) != 1) pid = -1;
		fclose(f);
	}
	return pid;
}

void pg_private_signal(int sig) {
	int pm = postmaster_pid();
	if (pm <= 0) return;
	kill(pm, sig);
	/* and its children, the backends, by their parent PID */
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!isdigit((unsigned char)e->d_name[0])) continue;
		char path[300], buf[512];
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f) continue;
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = 0;
		char *rp = strrchr(buf, ')');
		int ppid;
		if (rp && sscanf(rp + 2, "%*c %d", &ppid) == 1 && ppid == pm)
			kill(atoi(e->d_name), sig);
	}
	if (d) closedir(d);
}

int64_t proc_cpu_ms(int pid) {
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f) return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *rp = strrchr(buf, ')');
	unsigned long long ut, st;
	/* after the name: state ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime stime */
	if (!rp || sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
	                  &st) != 2)
		return -1;
	return (int64_t)(ut + st) * 1000 / sysconf(_SC_CLK_TCK);
}
/* ---- the store's invariants ------------------------------------------------------- */

struct store_walk {
	cj_db *db;
	cj_tx *tx;
	store_counts n;
	char bad[512]; /* the first inconsistency */
};

static int walk_job(const cj_job_info *info, void *arg) {
	struct store_walk *w = arg;
	cj_job_info again = {0};
	int rc = cj_get_job(w->db, w->tx, info->type, info->id, &again);
	if (rc != CJ_OK)
		snprintf(w->bad, sizeof w->bad, "job %s/%s is listed but reads as %s (%s)",
		         info->type, info->id, cj_err_name(rc), cj_last_error());
	else if (again.state != info->state)
		snprintf(w->bad, sizeof w->bad, "job %s/%s is listed %s but reads %s", info->type,
		         info->id, cj_state_name(info->state), cj_state_name(again.state));
	else if (!info->data || info->data[0] != '{')
		snprintf(w->bad, sizeof w->bad, "job %s/%s has data that is not an object: %s",
		         info->type, info->id, info->data ? info->data : "(null)");
	cj_job_info_clear(&again);
	if (w->bad[0]) return 1;
	switch (info->state) {
	case CJ_PENDING: w->n.pending++; break;
	case CJ_RUNNING: w->n.running++; break;
	case CJ_FINISHED: w->n.finished++; break;
	case CJ_DEAD: w->n.dead++; break;
	default:
		snprintf(w->bad, sizeof w->bad, "job %s/%s is listed in state %d", info->type,
		         info->id, (int)info->state);
		return 1;
	}
	w->n.total++;
	return 0;
}

static int store_problem(const char *problem, void *arg) {
	(void)arg;
	fprintf(stderr, "  store: %s\n", problem);
	return 0;
}

void tu_check_store(const char *file, int line, cj_db *db, const char *type,
                    store_counts *counts) {
	struct store_walk w = {db, NULL, {0, 0, 0, 0}, ""};
	ok_at(file, line, cj_tx_begin(db, &w.tx), "cj_tx_begin");
	int rc = cj_list_jobs(db, w.tx, type, walk_job, &w);
	cj_tx_abort(w.tx);
	if (w.bad[0]) t_fail(file, line, "inconsistent store: %s", w.bad);
	ok_at(file, line, rc, "cj_list_jobs");
	/* and every invariant of the data model, as `cjobs check` checks it */
	uint64_t problems = 0;
	rc = cj_verify(db, store_problem, NULL, &problems);
	ok_at(file, line, rc, "cj_verify");
	if (problems)
		t_fail(file, line, "inconsistent store: cj_verify found %llu problems",
		       (unsigned long long)problems);
	if (counts) *counts = w.n;
}
