/*
 * cj_bench: micro-benchmark of the embedded (LMDB) engine.
 *
 * Sections (pick with --sections, comma-separated):
 *   add      adds/s from one producer: one cj_add per transaction, and 100
 *            cj_add per cj_transact batch
 *   drain    accept+finish cycles/s with 1 and 4 processor processes
 *            draining jobs added beforehand
 *   latency  add-to-accept wake latency across processes
 *   scale    cost of one accept+finish cycle with 10k, 100k and 1M jobs
 *            pending in the store
 *
 * Every figure is measured with sync=full (the default, CJ_SYNC_FULL) and
 * sync=relaxed (CJ_SYNC_RELAXED) and says which; store fills are always
 * relaxed, and one row times the disk's own flush, without couchjobs.
 * Stores live in a temporary directory (--dir) and are deleted when their
 * section ends.
 *
 * Only the public API (couchjobs.h) is used. Run it through bench/run.sh.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "couchjobs.h"

#define TYPE "bench"
#define TYPE_TIMEOUT 3600 /* seconds: the monitor never takes a job back */
#define MAX_ROWS 64
#define MAX_PROCS 16

/* ---- configuration ------------------------------------------------------ */

static struct {
	int quick;
	int sec_add, sec_drain, sec_latency, sec_scale;
	char dir[PATH_MAX]; /* parent of this run's stores */
	int own_dir;        /* dir was created here: remove it at the end */
	long samples;       /* latency samples per sync mode */
	long big;           /* largest scale size */
	long cycles;        /* measured cycles per scale store */
} cfg;

static const cj_sync_mode modes[2] = {CJ_SYNC_FULL, CJ_SYNC_RELAXED};

static const char *mode_name(cj_sync_mode m) {
	return m == CJ_SYNC_FULL ? "full" : "relaxed";
}

/* ---- small helpers ------------------------------------------------------ */

static int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_us(long us) {
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

static void die(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "cj_bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static void check(int rc, const char *what) {
	if (rc != CJ_OK)
		die("%s: %s (%s)", what, cj_strerror(rc), cj_last_error());
}

static void progress(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "  .. ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

static void write_all(int fd, const void *p, size_t n) {
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) die("pipe write: %s", strerror(errno));
		c += w;
		n -= (size_t)w;
	}
}

/* 1: read n bytes, 0: end of file. */
static int read_all(int fd, void *p, size_t n) {
	char *c = p;
	while (n > 0) {
		ssize_t r = read(fd, c, n);
		if (r < 0 && errno == EINTR) continue;
		if (r < 0) die("pipe read: %s", strerror(errno));
		if (r == 0) return 0;
		c += r;
		n -= (size_t)r;
	}
	return 1;
}

/* In a forked processor: die with the main process, never outlive it. */
static void child_setup(void) {
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1) _exit(1);
}

static void make_pipe(int fds[2]) {
	if (pipe(fds) != 0) die("pipe: %s", strerror(errno));
}

static int cmp_i64(const void *a, const void *b) {
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* The index of the q-quantile (0..1) of n sorted values, nearest rank. */
static long quantile_rank(long n, double q) {
	long r = (long)(q * (double)n + 0.999999);
	if (r < 1) r = 1;
	if (r > n) r = n;
	return r - 1;
}

static int64_t quantile(const int64_t *v, long n, double q) {
	return v[quantile_rank(n, q)];
}

static void *xcalloc(size_t n, size_t sz) {
	void *p = calloc(n ? n : 1, sz);
	if (!p) die("out of memory");
	return p;
}

/* ---- stores ------------------------------------------------------------- */

static void store_path(char *out, size_t cap, const char *name) {
	int n = snprintf(out, cap, "%s/%s", cfg.dir, name);
	if (n < 0 || (size_t)n >= cap) die("store path too long");
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f) {
	(void)st, (void)f;
	int rc = flag == FTW_DP ? rmdir(p) : unlink(p);
	if (rc != 0 && errno != ENOENT) fprintf(stderr, "cj_bench: remove %s: %s\n", p, strerror(errno));
	return 0;
}

static void rm_tree(const char *path) {
	struct stat st;
	if (lstat(path, &st) != 0) return;
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static cj_db *open_store(const char *path, cj_sync_mode mode) {
	cj_options o = CJ_OPTIONS_INIT;
	cj_db *db;
	o.sync = mode;
	check(cj_open(path, &o, &db), "cj_open");
	return db;
}

/* A fresh store with the bench type's timeout set. */
static void new_store(const char *path) {
	rm_tree(path);
	cj_db *db = open_store(path, CJ_SYNC_RELAXED);
	check(cj_set_type_timeout(db, TYPE, TYPE_TIMEOUT), "cj_set_type_timeout");
	cj_close(db);
}

static double file_mib(const char *dir, const char *name) {
	char p[PATH_MAX + 64];
	struct stat st;
	snprintf(p, sizeof p, "%s/%s", dir, name);
	if (stat(p, &st) != 0) return 0;
	return (double)st.st_blocks * 512.0 / (1024.0 * 1024.0);
}

struct fill_arg {
	cj_db *db;
	const char *prefix;
	long from, to;
};

static int fill_fn(cj_tx *tx, void *arg) {
	struct fill_arg *a = arg;
	char id[64], data[64];
	for (long i = a->from; i < a->to; i++) {
		snprintf(id, sizeof id, "%s%09ld", a->prefix, i);
		snprintf(data, sizeof data, "{\"i\":%ld}", i);
		int rc = cj_add(a->db, tx, TYPE, id, data, 0);
		if (rc) return rc;
	}
	return CJ_OK;
}

/* Adds n pending jobs (ids prefix000000000...) in transactions of batch
 * adds, with relaxed sync. Returns the elapsed seconds. */
static double fill_store(const char *path, const char *prefix, long n, long batch) {
	cj_db *db = open_store(path, CJ_SYNC_RELAXED);
	int64_t t0 = now_ns(), last = t0;
	for (long i = 0; i < n; i += batch) {
		struct fill_arg a = {db, prefix, i, i + batch < n ? i + batch : n};
		check(cj_transact(db, fill_fn, &a), "fill: cj_transact");
		int64_t t = now_ns();
		if (t - last > 10 * (int64_t)1000000000) {
			progress("filled %ld of %ld jobs (%.0f s)", a.to, n, (double)(t - t0) / 1e9);
			last = t;
		}
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	cj_close(db);
	return secs;
}

/* ---- results ------------------------------------------------------------ */

struct row {
	char section[16];
	char what[80];
	char sync[16];
	char value[40];
	char note[112];
};

static struct row rows[MAX_ROWS];
static int nrows;

static void add_row(const char *section, const char *what, const char *sync,
                    const char *value, const char *notefmt, ...) {
	if (nrows == MAX_ROWS) die("too many result rows");
	struct row *r = &rows[nrows++];
	va_list ap;
	snprintf(r->section, sizeof r->section, "%s", section);
	snprintf(r->what, sizeof r->what, "%s", what);
	snprintf(r->sync, sizeof r->sync, "%s", sync);
	snprintf(r->value, sizeof r->value, "%s", value);
	va_start(ap, notefmt);
	vsnprintf(r->note, sizeof r->note, notefmt, ap);
	va_end(ap);
	fprintf(stderr, "  => %s | %s | sync=%s | %s | %s\n", r->section, r->what, r->sync,
	        r->value, r->note);
}

static void print_table(void) {
	int w[5] = {7, 4, 4, 5, 5};
	for (int i = 0; i < nrows; i++) {
		const char *f[5] = {rows[i].section, rows[i].what, rows[i].sync, rows[i].value,
		                    rows[i].note};
		for (int j = 0; j < 5; j++) {
			int l = (int)strlen(f[j]);
			if (l > w[j]) w[j] = l;
		}
	}
	printf("| %-*s | %-*s | %-*s | %*s | %-*s |\n", w[0], "section", w[1], "what", w[2],
	       "sync", w[3], "value", w[4], "notes");
	printf("|");
	for (int j = 0; j < 5; j++) {
		putchar(j == 3 ? '-' : ':');
		for (int k = 0; k < w[j]; k++) putchar('-');
		putchar(j == 3 ? ':' : '-');
		putchar('|');
	}
	printf("\n");
	for (int i = 0; i < nrows; i++)
		printf("| %-*s | %-*s | %-*s | %*s | %-*s |\n", w[0], rows[i].section, w[1],
		       rows[i].what, w[2], rows[i].sync, w[3], rows[i].value, w[4], rows[i].note);
}

static void fmt_rate(char *out, size_t cap, double v, const char *unit) {
	snprintf(out, cap, "%.0f %s", v, unit);
}

/* ---- the machine -------------------------------------------------------- */

static void cpu_model(char *out, size_t cap) {
	snprintf(out, cap, "unknown");
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f) return;
	char line[512];
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "model name", 10) != 0) continue;
		char *c = strchr(line, ':');
		if (!c) continue;
		c++;
		while (*c == ' ' || *c == '\t') c++;
		c[strcspn(c, "\n")] = 0;
		snprintf(out, cap, "%s", c);
		break;
	}
	fclose(f);
}

/* The file system holding path, from the longest matching mount point. */
static void fs_of(const char *path, char *out, size_t cap) {
	char real[PATH_MAX];
	snprintf(out, cap, "unknown");
	if (!realpath(path, real)) return;
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f) return;
	char line[4096];
	size_t best = 0;
	while (fgets(line, sizeof line, f)) {
		/* id parent maj:min root mountpoint opts [optional...] - fstype source sopts */
		char mnt[PATH_MAX], fstype[64], source[512];
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1) continue;
		char *dash = strstr(line, " - ");
		if (!dash || sscanf(dash + 3, "%63s %511s", fstype, source) != 2) continue;
		size_t ml = strlen(mnt);
		int match = strcmp(mnt, "/") == 0 ||
		            (strncmp(real, mnt, ml) == 0 && (real[ml] == '/' || real[ml] == 0));
		if (match && ml >= best) {
			best = ml;
			snprintf(out, cap, "%s (%s, mounted on %s)", fstype, source, mnt);
		}
	}
	fclose(f);
}

/* The load average, to tell a quiet machine from a busy one. */
static void print_load(const char *when) {
	FILE *f = fopen("/proc/loadavg", "r");
	char load[128];
	if (f && fgets(load, sizeof load, f)) {
		load[strcspn(load, "\n")] = 0;
		printf("loadavg:    %s (%s)\n", load, when);
	}
	if (f) fclose(f);
}

static void print_machine(void) {
	char cpu[256], fs[PATH_MAX + 700];
	struct utsname u;
	cpu_model(cpu, sizeof cpu);
	fs_of(cfg.dir, fs, sizeof fs);
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	double mem = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) /
	             (1024.0 * 1024.0 * 1024.0);
	printf("couchjobs %s micro-benchmark, embedded (LMDB) engine\n", cj_version());
	printf("cpu:        %s\n", cpu);
	printf("cores:      %ld online\n", online);
	printf("memory:     %.1f GiB\n", mem);
	if (uname(&u) == 0) printf("kernel:     %s %s %s\n", u.sysname, u.release, u.machine);
	print_load("at start");
	printf("store dir:  %s\n", cfg.dir);
	printf("filesystem: %s\n", fs);
	printf("mode:       %s\n", cfg.quick ? "--quick (small N: a smoke run, not a measurement)"
	                                     : "full run");
	printf("\n");
	fflush(stdout);
}

/* ---- section: add ------------------------------------------------------- */

struct batch_arg {
	cj_db *db;
	long from, n;
};

static int batch_fn(cj_tx *tx, void *arg) {
	struct batch_arg *a = arg;
	char id[32], data[48];
	for (long i = a->from; i < a->from + a->n; i++) {
		snprintf(id, sizeof id, "b%09ld", i);
		snprintf(data, sizeof data, "{\"i\":%ld}", i);
		int rc = cj_add(a->db, tx, TYPE, id, data, 0);
		if (rc) return rc;
	}
	return CJ_OK;
}

/* The disk alone, for scale: one 4 KiB write made durable, as a commit
 * must do at least once. */
static void disk_flush(void) {
	char path[PATH_MAX], v[40], page[4096];
	long n = cfg.quick ? 50 : 1000;
	store_path(path, sizeof path, "flush");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) die("%s: %s", path, strerror(errno));
	int64_t *t = xcalloc((size_t)n, sizeof *t), sum = 0;
	memset(page, 'x', sizeof page);
	for (long i = 0; i < n; i++) {
		int64_t t0 = now_ns();
		if (pwrite(fd, page, sizeof page, (off_t)(i % 16) * 4096) != (ssize_t)sizeof page ||
		    fdatasync(fd) != 0)
			die("%s: %s", path, strerror(errno));
		t[i] = now_ns() - t0;
		sum += t[i];
	}
	close(fd);
	unlink(path);
	qsort(t, (size_t)n, sizeof *t, cmp_i64);
	snprintf(v, sizeof v, "%.0f us", (double)quantile(t, n, 0.5) / 1e3);
	add_row("disk", "4 KiB pwrite + fdatasync, no couchjobs (median)", "fdatasync", v,
	        "%ld flushes; mean %.0f us, p99 %.0f us", n, (double)sum / (double)n / 1e3,
	        (double)quantile(t, n, 0.99) / 1e3);
	free(t);
}

static void section_add(void) {
	fprintf(stderr, "[add] one producer\n");
	disk_flush();
	for (int m = 0; m < 2; m++) {
		cj_sync_mode mode = modes[m];
		char path[PATH_MAX], v[40];
		store_path(path, sizeof path, "add");
		new_store(path);
		cj_db *db = open_store(path, mode);

		long n1 = mode == CJ_SYNC_FULL ? 10000 : 200000;
		if (cfg.quick) n1 /= 50;
		char id[32], data[48];
		int64_t t0 = now_ns();
		for (long i = 0; i < n1; i++) {
			snprintf(id, sizeof id, "s%09ld", i);
			snprintf(data, sizeof data, "{\"i\":%ld}", i);
			check(cj_add(db, NULL, TYPE, id, data, 0), "cj_add");
		}
		double s = (double)(now_ns() - t0) / 1e9;
		fmt_rate(v, sizeof v, (double)n1 / s, "adds/s");
		add_row("add", "adds/s, 1 cj_add per transaction", mode_name(mode), v,
		        "%ld adds in %.2f s; %.0f us per commit", n1, s, s * 1e6 / (double)n1);

		long batches = mode == CJ_SYNC_FULL ? 2000 : 5000;
		if (cfg.quick) batches /= 50;
		t0 = now_ns();
		for (long b = 0; b < batches; b++) {
			struct batch_arg a = {db, b * 100, 100};
			check(cj_transact(db, batch_fn, &a), "cj_transact");
		}
		s = (double)(now_ns() - t0) / 1e9;
		fmt_rate(v, sizeof v, (double)(batches * 100) / s, "adds/s");
		add_row("add", "adds/s, 100 cj_add per cj_transact batch", mode_name(mode), v,
		        "%ld adds in %.2f s; %.0f us per commit", batches * 100, s,
		        s * 1e6 / (double)batches);
		cj_close(db);
		rm_tree(path);
	}
}

/* ---- section: drain ------------------------------------------------------ */

struct drain_result {
	long count;
	int64_t end_ns;
};

static void drain_child(const char *path, cj_sync_mode mode, int ready_w, int go_r,
                        int res_w) {
	cj_db *db = open_store(path, mode);
	char b = 'r';
	write_all(ready_w, &b, 1);
	if (!read_all(go_r, &b, 1)) _exit(2);
	cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
	ao.timeout_ms = 0;
	long n = 0;
	for (;;) {
		cj_job *job;
		char *data;
		int rc = cj_accept(db, TYPE, &ao, &job, &data);
		if (rc == CJ_NOT_FOUND) break;
		check(rc, "drain: cj_accept");
		check(cj_finish(db, NULL, job, NULL), "drain: cj_finish");
		cj_job_free(job);
		cj_free(data);
		n++;
	}
	struct drain_result r = {n, now_ns()};
	write_all(res_w, &r, sizeof r);
	cj_close(db);
	_exit(0);
}

static void drain_once(cj_sync_mode mode, int procs, long njobs) {
	char path[PATH_MAX], v[40];
	store_path(path, sizeof path, "drain");
	new_store(path);
	fill_store(path, "d", njobs, 1000);

	int ready[2], go[2], res[2];
	pid_t pids[MAX_PROCS];
	make_pipe(ready);
	make_pipe(go);
	make_pipe(res);
	fflush(NULL);
	for (int p = 0; p < procs; p++) {
		pids[p] = fork();
		if (pids[p] < 0) die("fork: %s", strerror(errno));
		if (pids[p] == 0) {
			child_setup();
			close(ready[0]);
			close(go[1]);
			close(res[0]);
			drain_child(path, mode, ready[1], go[0], res[1]);
		}
	}
	close(ready[1]);
	close(go[0]);
	close(res[1]);
	for (int p = 0; p < procs; p++) {
		char b;
		if (!read_all(ready[0], &b, 1)) die("drain: a processor died while opening");
	}
	char gobuf[MAX_PROCS];
	memset(gobuf, 'g', sizeof gobuf);
	int64_t t0 = now_ns();
	write_all(go[1], gobuf, (size_t)procs);
	long total = 0, minc = -1, maxc = 0;
	int64_t end = t0;
	for (int p = 0; p < procs; p++) {
		struct drain_result r;
		if (!read_all(res[0], &r, sizeof r)) die("drain: a processor died");
		total += r.count;
		if (minc < 0 || r.count < minc) minc = r.count;
		if (r.count > maxc) maxc = r.count;
		if (r.end_ns > end) end = r.end_ns;
	}
	for (int p = 0; p < procs; p++) {
		int st;
		if (waitpid(pids[p], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			die("drain: processor %d failed", (int)pids[p]);
	}
	close(ready[0]);
	close(go[1]);
	close(res[0]);
	if (total != njobs) die("drain: %ld jobs finished, expected %ld", total, njobs);
	double s = (double)(end - t0) / 1e9;
	char what[80];
	snprintf(what, sizeof what, "accept+finish cycles/s, %d processor process%s", procs,
	         procs > 1 ? "es" : "");
	fmt_rate(v, sizeof v, (double)njobs / s, "cycles/s");
	if (procs > 1)
		add_row("drain", what, mode_name(mode), v,
		        "%ld jobs in %.2f s; %ld..%ld per process", njobs, s, minc, maxc);
	else
		add_row("drain", what, mode_name(mode), v, "%ld jobs in %.2f s", njobs, s);
	rm_tree(path);
}

static void section_drain(void) {
	fprintf(stderr, "[drain] processors draining a pre-filled queue\n");
	static const int procs[2] = {1, 4};
	for (int m = 0; m < 2; m++)
		for (int p = 0; p < 2; p++) {
			long n = modes[m] == CJ_SYNC_FULL ? 5000 : 200000;
			if (cfg.quick) n /= 50;
			drain_once(modes[m], procs[p], n);
		}
}

/* ---- section: latency ---------------------------------------------------- */

/* Waits until the process is asleep on a futex (blocked in cj_accept). */
static int wait_blocked(pid_t pid) {
	char p[64], buf[1024], wchan[128];
	int64_t give_up = now_ns() + 2 * (int64_t)1000000000;
	while (now_ns() < give_up) {
		char state = '?';
		snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof buf - 1);
			close(fd);
			if (n > 0) {
				buf[n] = 0;
				char *rp = strrchr(buf, ')');
				if (rp && rp[1] == ' ') state = rp[2];
			}
		}
		wchan[0] = 0;
		snprintf(p, sizeof p, "/proc/%d/wchan", (int)pid);
		fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, wchan, sizeof wchan - 1);
			close(fd);
			wchan[n > 0 ? n : 0] = 0;
		}
		/* wchan may be hidden ("0"): then a sleeping state has to do */
		int wchan_known = wchan[0] && strcmp(wchan, "0") != 0;
		if (state == 'S' && (!wchan_known || strstr(wchan, "futex"))) return 1;
		sleep_us(20);
	}
	return 0;
}

struct sample {
	int64_t lat_ns; /* cj_add called .. cj_accept returned */
	int64_t add_ns; /* cj_add called .. cj_add returned */
};

static int cmp_sample(const void *a, const void *b) {
	const struct sample *x = a, *y = b;
	return cmp_i64(&x->lat_ns, &y->lat_ns);
}

struct lat_msg {
	int64_t lat_ns; /* the previous sample, or -1 */
};

static void latency_child(const char *path, cj_sync_mode mode, int res_w) {
	cj_db *db = open_store(path, mode);
	struct lat_msg m = {-1};
	for (;;) {
		write_all(res_w, &m, sizeof m);
		cj_job *job;
		char *data;
		check(cj_accept(db, TYPE, NULL, &job, &data), "latency: cj_accept");
		int64_t t1 = now_ns();
		const char *t = strstr(data, "\"t\":");
		if (!t) die("latency: job data without a timestamp: %s", data);
		int64_t t0 = strtoll(t + 4, NULL, 10);
		int stop = strstr(data, "\"stop\"") != NULL;
		check(cj_finish(db, NULL, job, NULL), "latency: cj_finish");
		cj_job_free(job);
		cj_free(data);
		if (stop) break;
		m.lat_ns = t1 - t0;
	}
	cj_close(db);
	_exit(0);
}

static void latency_once(cj_sync_mode mode, long samples) {
	char path[PATH_MAX], v[40], id[32], data[96];
	store_path(path, sizeof path, "latency");
	new_store(path);
	int res[2];
	make_pipe(res);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) die("fork: %s", strerror(errno));
	if (pid == 0) {
		child_setup();
		close(res[0]);
		latency_child(path, mode, res[1]);
	}
	close(res[1]);
	cj_db *db = open_store(path, mode);
	struct sample *smp = xcalloc((size_t)samples, sizeof *smp);
	int64_t *adds = xcalloc((size_t)samples, sizeof *adds);
	long unconfirmed = 0;
	struct lat_msg m;
	if (!read_all(res[0], &m, sizeof m)) die("latency: the acceptor died");
	for (long i = 0; i <= samples; i++) {
		if (!wait_blocked(pid)) unconfirmed++;
		sleep_us(1000); /* an idle acceptor */
		snprintf(id, sizeof id, "l%09ld", i);
		int64_t t0 = now_ns();
		snprintf(data, sizeof data, "{\"t\":%" PRId64 "%s}", t0,
		         i == samples ? ",\"stop\":1" : "");
		check(cj_add(db, NULL, TYPE, id, data, 0), "latency: cj_add");
		int64_t t_added = now_ns();
		if (i == samples) break;
		if (!read_all(res[0], &m, sizeof m)) die("latency: the acceptor died");
		smp[i].lat_ns = m.lat_ns;
		smp[i].add_ns = adds[i] = t_added - t0;
	}
	int st;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("latency: the acceptor failed");
	close(res[0]);
	cj_close(db);
	rm_tree(path);

	qsort(smp, (size_t)samples, sizeof *smp, cmp_sample);
	qsort(adds, (size_t)samples, sizeof *adds, cmp_i64);
	const struct sample *p50 = &smp[quantile_rank(samples, 0.50)];
	const struct sample *p99 = &smp[quantile_rank(samples, 0.99)];
	const struct sample *max = &smp[samples - 1];
	char blocked[64] = "";
	if (unconfirmed)
		snprintf(blocked, sizeof blocked, " (%ld not seen blocked first)", unconfirmed);
	const char *what = "add-to-accept wake latency across processes";
	char w[96];
	snprintf(w, sizeof w, "%s, p50", what);
	snprintf(v, sizeof v, "%.0f us", (double)p50->lat_ns / 1e3);
	add_row("latency", w, mode_name(mode), v, "%ld samples%s; the cj_add call alone: p50 %.0f us",
	        samples, blocked, (double)adds[quantile_rank(samples, 0.50)] / 1e3);
	snprintf(w, sizeof w, "%s, p99", what);
	snprintf(v, sizeof v, "%.0f us", (double)p99->lat_ns / 1e3);
	add_row("latency", w, mode_name(mode), v, "the cj_add call alone: p99 %.0f us",
	        (double)adds[quantile_rank(samples, 0.99)] / 1e3);
	snprintf(w, sizeof w, "%s, max", what);
	snprintf(v, sizeof v, "%.0f us", (double)max->lat_ns / 1e3);
	add_row("latency", w, mode_name(mode), v, "that sample: cj_add returned after %.0f us",
	        (double)max->add_ns / 1e3);
	free(smp);
	free(adds);
}

static void section_latency(void) {
	fprintf(stderr, "[latency] cj_add in one process wakes cj_accept in another\n");
	for (int m = 0; m < 2; m++) latency_once(modes[m], cfg.samples);
}

/* ---- section: scale ------------------------------------------------------ */

struct cycle_stats {
	double mean_us, p50_us, p99_us;
	double kib; /* written per cycle, or < 0 if unknown */
};

/* Bytes this process has written so far (write and pwrite calls), or -1. */
static long long written_bytes(void) {
	FILE *f = fopen("/proc/self/io", "r");
	if (!f) return -1;
	char line[128];
	long long v = -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "wchar:", 6) == 0) v = atoll(line + 6);
	fclose(f);
	return v;
}

/* Times n accept+finish cycles, one by one, after warm cycles. */
static struct cycle_stats time_cycles(cj_db *db, long warm, long n) {
	cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
	ao.timeout_ms = 0;
	int64_t *t = xcalloc((size_t)n, sizeof *t), sum = 0;
	long long w0 = 0;
	for (long i = -warm; i < n; i++) {
		if (i == 0) w0 = written_bytes();
		cj_job *job;
		char *data;
		int64_t t0 = now_ns();
		check(cj_accept(db, TYPE, &ao, &job, &data), "scale: cj_accept");
		check(cj_finish(db, NULL, job, NULL), "scale: cj_finish");
		int64_t d = now_ns() - t0;
		cj_job_free(job);
		cj_free(data);
		if (i >= 0) {
			t[i] = d;
			sum += d;
		}
	}
	long long w1 = written_bytes();
	qsort(t, (size_t)n, sizeof *t, cmp_i64);
	struct cycle_stats s = {(double)sum / (double)n / 1e3, (double)quantile(t, n, 0.5) / 1e3,
	                        (double)quantile(t, n, 0.99) / 1e3,
	                        w0 >= 0 && w1 >= w0 ? (double)(w1 - w0) / 1024.0 / (double)n : -1};
	free(t);
	return s;
}

static void section_scale(void) {
	fprintf(stderr, "[scale] accept+finish cost against the number of pending jobs\n");
	long sizes[3] = {10000, 100000, cfg.big};
	int nsizes = 3;
	if (cfg.big <= 100000) {
		sizes[1] = cfg.big;
		nsizes = 2;
	}
	if (cfg.big <= 10000) nsizes = 1;
	long warm = cfg.quick ? 20 : 200, cycles = cfg.cycles;
	struct cycle_stats st[3][2];
	for (int s = 0; s < nsizes; s++) {
		char path[PATH_MAX], v[40], what[80];
		store_path(path, sizeof path, "scale");
		new_store(path);
		/* enough that `sizes[s]` jobs stay pending through every cycle */
		long extra = 2 * (warm + cycles);
		long fill = sizes[s] + extra;
		progress("filling %ld jobs, 10000 adds per transaction, sync=relaxed", fill);
		double secs = fill_store(path, "j", fill, 10000);
		fmt_rate(v, sizeof v, (double)fill / secs, "adds/s");
		snprintf(what, sizeof what, "fill %ld jobs, 10000 cj_add per cj_transact", fill);
		add_row("scale", what, "relaxed", v, "%.1f s; data.mdb %.0f MiB", secs,
		        file_mib(path, "data.mdb"));
		/* each run takes its jobs from the head of the queue, and
		 * at least sizes[s] stay pending behind them */
		for (int k = 0; k < 2; k++) {
			int m = 1 - k; /* relaxed first: the fill left its pages dirty */
			cj_sync_mode mode = modes[m];
			cj_db *db = open_store(path, mode);
			st[s][m] = time_cycles(db, warm, cycles);
			cj_close(db);
			snprintf(what, sizeof what, "accept+finish, %ld jobs pending (median)", sizes[s]);
			snprintf(v, sizeof v, "%.1f us/cycle", st[s][m].p50_us);
			add_row("scale", what, mode_name(mode), v,
			        "%ld cycles; mean %.1f us, p99 %.1f us; %.0f KiB written/cycle", cycles,
			        st[s][m].mean_us, st[s][m].p99_us, st[s][m].kib);
		}
		rm_tree(path);
	}
	if (nsizes > 1) {
		for (int m = 0; m < 2; m++) {
			char what[80], v[40];
			snprintf(what, sizeof what, "cost ratio, %ld vs %ld jobs pending", sizes[nsizes - 1],
			         sizes[0]);
			snprintf(v, sizeof v, "x%.2f", st[nsizes - 1][m].p50_us / st[0][m].p50_us);
			add_row("scale", what, mode_name(modes[m]), v, "of the medians; of the means x%.2f",
			        st[nsizes - 1][m].mean_us / st[0][m].mean_us);
		}
	}
}

/* ---- main ----------------------------------------------------------------- */

static void usage(FILE *f) {
	fprintf(f,
	        "usage: cj_bench [--quick] [--sections LIST] [--dir DIR] [--samples N]\n"
	        "                [--big N] [--cycles N]\n"
	        "  --quick          small N everywhere: a fast smoke run\n"
	        "  --sections LIST  comma-separated subset of add,drain,latency,scale\n"
	        "                   (default: all)\n"
	        "  --dir DIR        where the temporary stores go (default: a new\n"
	        "                   directory under $TMPDIR or /var/tmp, removed at the end)\n"
	        "  --samples N      latency samples per sync mode (default 1000)\n"
	        "  --big N          largest store of the scale section (default 1000000)\n"
	        "  --cycles N       measured accept+finish cycles per scale store and sync mode\n"
	        "                   (default 5000)\n");
}

static long parse_long(const char *s, const char *opt) {
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v <= 0) die("%s: not a positive number: %s", opt, s);
	return v;
}

static void parse_sections(const char *list) {
	char buf[256];
	snprintf(buf, sizeof buf, "%s", list);
	cfg.sec_add = cfg.sec_drain = cfg.sec_latency = cfg.sec_scale = 0;
	for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (strcmp(tok, "add") == 0) cfg.sec_add = 1;
		else if (strcmp(tok, "drain") == 0) cfg.sec_drain = 1;
		else if (strcmp(tok, "latency") == 0) cfg.sec_latency = 1;
		else if (strcmp(tok, "scale") == 0) cfg.sec_scale = 1;
		else if (strcmp(tok, "all") == 0)
			cfg.sec_add = cfg.sec_drain = cfg.sec_latency = cfg.sec_scale = 1;
		else die("unknown section \"%s\" (add, drain, latency, scale)", tok);
	}
}

static pid_t main_pid;

/* At exit of the main process only: a processor that fails leaves the
 * stores to the main process. */
static void cleanup(void) {
	if (getpid() == main_pid && cfg.own_dir && cfg.dir[0]) rm_tree(cfg.dir);
}

int main(int argc, char **argv) {
	const char *sections = "all", *dir = NULL;
	long samples = 0, big = 0, cycles = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--quick") == 0) cfg.quick = 1;
		else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (next && strcmp(a, "--sections") == 0) sections = argv[++i];
		else if (next && strcmp(a, "--dir") == 0) dir = argv[++i];
		else if (next && strcmp(a, "--samples") == 0) samples = parse_long(argv[++i], a);
		else if (next && strcmp(a, "--big") == 0) big = parse_long(argv[++i], a);
		else if (next && strcmp(a, "--cycles") == 0) cycles = parse_long(argv[++i], a);
		else {
			usage(stderr);
			return 2;
		}
	}
	parse_sections(sections);
	cfg.samples = samples ? samples : cfg.quick ? 50 : 1000;
	cfg.big = big ? big : cfg.quick ? 50000 : 1000000;
	cfg.cycles = cycles ? cycles : cfg.quick ? 200 : 5000;

	/* a directory of our own for this run's stores */
	const char *parent = dir ? dir : getenv("TMPDIR");
	if (!parent || !*parent) parent = "/var/tmp";
	int n = snprintf(cfg.dir, sizeof cfg.dir, "%s/cj_bench.XXXXXX", parent);
	if (n < 0 || (size_t)n >= sizeof cfg.dir) die("--dir too long");
	if (!mkdtemp(cfg.dir)) die("cannot create a directory under %s: %s", parent, strerror(errno));
	cfg.own_dir = 1;
	main_pid = getpid();
	atexit(cleanup);

	print_machine();
	if (cfg.sec_add) section_add();
	if (cfg.sec_drain) section_drain();
	if (cfg.sec_latency) section_latency();
	if (cfg.sec_scale) section_scale();
	printf("\n");
	print_load("at end");
	printf("\n");
	print_table();
	return 0;
}
