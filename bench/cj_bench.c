/*
 * cj_bench: micro-benchmark of couchjobs, on either engine.
 *
 * Without --url it measures the embedded (LMDB) engine, with stores in a
 * temporary directory (--dir). With --url postgresql://... it measures the
 * PostgreSQL engine: every store is a fresh schema of that database, named
 * by appending schema=NAME to the URL, and dropped when its section ends.
 *
 * Sections (pick with --sections, comma-separated):
 *   add      adds/s from one producer: one cj_add per transaction, and 100
 *            cj_add per cj_transact batch
 *   drain    accept+finish cycles/s with 1 and 4 processor processes
 *            draining jobs added beforehand
 *   latency  add-to-accept wake latency across processes
 *   scale    cost of one accept+finish cycle with 10k pending jobs and
 *            with a bigger store (--big)
 *   threads  jobs/s of N threads of one process (N = 1, 4, 8, 16) sharing
 *            one handle, each job one call at a time: cj_add, cj_accept,
 *            cj_finish, each its own transaction (what a threaded worker or
 *            cjobs serve does); with the share of calls that were combined
 *            into another thread's commit (group commit)
 *   subs     with 1,000 live subscriptions in one process, what a commit
 *            of another process that changes an unrelated job costs the
 *            subscribing process (its notifier's store reads and CPU), and
 *            what a cj_subscribe costs
 *   wake     with 16 acceptor processes idle in cj_accept, jobs added one
 *            at a time: how many of them each job wakes, and their context
 *            switches per job
 *
 * Every figure is measured with sync=full (the default, CJ_SYNC_FULL) and
 * sync=relaxed (CJ_SYNC_RELAXED) and says which, and names its engine;
 * store fills are always relaxed, and one row times the disk's own flush,
 * without couchjobs.
 *
 * Only the public API (couchjobs.h) is used; on PostgreSQL, libpq serves
 * for the benchmark's own housekeeping (server settings, dropping schemas,
 * table sizes, WAL volume, lock waits). Run it through bench/run.sh.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "couchjobs.h"

#ifdef HAVE_LIBPQ
#include <libpq-fe.h>
#endif

#define TYPE "bench"
#define TYPE_TIMEOUT 3600 /* seconds: the monitor never takes a job back */
#define MAX_ROWS 64
#define MAX_PROCS 16
#define MAX_LIVE 4 /* stores in use at once */

/* ---- configuration ------------------------------------------------------ */

static struct {
	int quick;
	int sec_add, sec_drain, sec_latency, sec_scale, sec_subs, sec_lost, sec_threads, sec_wake;
	char dir[PATH_MAX]; /* parent of this run's stores, and the disk row's file */
	int own_dir;        /* dir was created here: remove it at the end */
	long samples;       /* latency samples per sync mode */
	long big;           /* largest scale size */
	int big_given;      /* by --big */
	long cycles;        /* measured cycles per scale store */
	const char *tsv;    /* also write the rows here */
	int threads[8];     /* thread counts of the threads section */
	int nthreads;
	int full_only;      /* --full-only: sync=full rows only */
	/* PostgreSQL: --url as given, and the same without schema= for the
	 * benchmark's own connection */
	int pg;
	const char *url;
	char *admin_url;
	char live[MAX_LIVE][64]; /* schemas of the stores in use, dropped at exit */
	const char *engine; /* "lmdb" or "postgresql", as cj_db_engine() says */
#ifdef HAVE_LIBPQ
	PGconn *wal_conn; /* kept open while the scale section reads the WAL position */
#endif
} cfg;

static const cj_sync_mode modes[2] = {CJ_SYNC_FULL, CJ_SYNC_RELAXED};

static const char *mode_name(cj_sync_mode m) {
	return m == CJ_SYNC_FULL ? "full" : "relaxed";
}

/* A count for this engine: PostgreSQL does fewer operations per second, so
 * its sections run fewer of them to take about as long. --quick: 1/50th. */
static long count_for(long lmdb, long pg) {
	long n = cfg.pg ? pg : lmdb;
	if (cfg.quick) n /= 50;
	return n > 0 ? n : 1;
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

/* ---- PostgreSQL housekeeping (libpq, outside couchjobs) ------------------ */

#ifdef HAVE_LIBPQ
static void pq_quiet(void *arg, const char *msg) {
	(void)arg, (void)msg; /* NOTICEs such as "schema ... does not exist, skipping" */
}

/* The benchmark's own connection to the server of --url. */
static PGconn *admin_open(void) {
	PGconn *c = PQconnectdb(cfg.admin_url);
	if (!c || PQstatus(c) != CONNECTION_OK)
		die("cannot connect to the server of --url: %s",
		    c ? PQerrorMessage(c) : "out of memory");
	PQsetNoticeProcessor(c, pq_quiet, NULL);
	return c;
}

/* Runs sql and copies the first column of its first row to out ("" if
 * none). 0: done, -1: it failed (the message is in out when quiet, else
 * the run dies). */
static int pq_value(PGconn *c, const char *sql, char *out, size_t cap, int quiet) {
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	int rc = 0;
	out[0] = 0;
	if (st == PGRES_TUPLES_OK) {
		if (PQntuples(r) > 0 && PQnfields(r) > 0)
			snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
	} else if (st != PGRES_COMMAND_OK) {
		char msg[256];
		snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
		msg[strcspn(msg, "\n")] = 0;
		if (!quiet) die("%s: %s", sql, msg);
		snprintf(out, cap, "%s", msg);
		rc = -1;
	}
	PQclear(r);
	return rc;
}

static long long pq_ll(PGconn *c, const char *sql) {
	char v[64];
	pq_value(c, sql, v, sizeof v, 0);
	return atoll(v);
}
#endif

/* The URL of --url without its schema= parameters, for libpq. */
static char *strip_schema(const char *url) {
	size_t n = strlen(url);
	char *out = xcalloc(n + 1, 1);
	const char *q = strchr(url, '?');
	memcpy(out, url, q ? (size_t)(q - url) : n);
	if (!q) return out;
	char *o = out + (q - url);
	int first = 1;
	for (const char *p = q + 1; *p;) {
		size_t len = strcspn(p, "&");
		if (len > 0 && strncmp(p, "schema=", 7) != 0) {
			*o++ = first ? '?' : '&';
			memcpy(o, p, len);
			o += len;
			first = 0;
		}
		p += len;
		if (*p == '&') p++;
	}
	*o = 0;
	return out;
}

/* ---- stores ------------------------------------------------------------- */

/* A store's location: a directory under --dir, or --url with a schema of
 * this run's own. */
struct store {
	char loc[PATH_MAX + 128];
	char schema[64]; /* PostgreSQL */
};

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

static void drop_schema(const char *schema) {
#ifdef HAVE_LIBPQ
	char sql[160], out[256];
	PGconn *c = admin_open();
	snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", schema);
	if (pq_value(c, sql, out, sizeof out, 1) != 0)
		fprintf(stderr, "cj_bench: drop schema %s: %s\n", schema, out);
	PQfinish(c);
#else
	(void)schema;
#endif
}

static cj_db *open_store(const struct store *s, cj_sync_mode mode) {
	cj_options o = CJ_OPTIONS_INIT;
	cj_db *db;
	o.sync = mode;
	check(cj_open(s->loc, &o, &db), "cj_open");
	return db;
}

/* A fresh store with the bench type's timeout set: a new directory, or a
 * new schema named after this process, a counter and the section. Its
 * PostgreSQL sessions carry the schema's name as application_name, so that
 * pg_stat_activity tells them apart. */
static void new_store(struct store *s, const char *name) {
	static int seq;
	int n;
	memset(s, 0, sizeof *s);
	if (cfg.pg) {
		snprintf(s->schema, sizeof s->schema, "cjbench_%d_%d_%s", (int)getpid(), ++seq, name);
		n = snprintf(s->loc, sizeof s->loc, "%s%sschema=%s&application_name=%s", cfg.url,
		             !strchr(cfg.url, '?') ? "?"
		             : strchr("?&", cfg.url[strlen(cfg.url) - 1]) ? ""
		                                                         : "&",
		             s->schema, s->schema);
		drop_schema(s->schema);
		int slot = 0;
		while (slot < MAX_LIVE && cfg.live[slot][0]) slot++;
		if (slot == MAX_LIVE) die("too many stores at once");
		snprintf(cfg.live[slot], sizeof cfg.live[slot], "%s", s->schema);
	} else {
		n = snprintf(s->loc, sizeof s->loc, "%s/%s", cfg.dir, name);
	}
	if (n < 0 || (size_t)n >= sizeof s->loc) die("store location too long");
	if (!cfg.pg) rm_tree(s->loc);
	cj_db *db = open_store(s, CJ_SYNC_RELAXED);
	const char *e = cj_db_engine(db);
	if (strcmp(e, cfg.engine) != 0) die("%s: engine %s, expected %s", s->loc, e, cfg.engine);
	check(cj_set_type_timeout(db, TYPE, TYPE_TIMEOUT), "cj_set_type_timeout");
	cj_close(db);
}

static void drop_store(struct store *s) {
	if (cfg.pg) {
		drop_schema(s->schema);
		for (int i = 0; i < MAX_LIVE; i++)
			if (strcmp(cfg.live[i], s->schema) == 0) cfg.live[i][0] = 0;
	} else {
		rm_tree(s->loc);
	}
}

/* What the store takes on disk, described ("data.mdb 3 MiB"). */
static void store_size(const struct store *s, char *out, size_t cap) {
	if (cfg.pg) {
#ifdef HAVE_LIBPQ
		char sql[160];
		PGconn *c = admin_open();
		snprintf(sql, sizeof sql, "SELECT pg_total_relation_size('\"%s\".kv')", s->schema);
		snprintf(out, cap, "table kv with its index %.0f MiB",
		         (double)pq_ll(c, sql) / (1024.0 * 1024.0));
		PQfinish(c);
#else
		snprintf(out, cap, "size unknown");
#endif
		return;
	}
	char p[PATH_MAX + 160];
	struct stat st;
	double mib = 0;
	int n = snprintf(p, sizeof p, "%s/data.mdb", s->loc);
	if (n > 0 && (size_t)n < sizeof p && stat(p, &st) == 0)
		mib = (double)st.st_blocks * 512.0 / (1024.0 * 1024.0);
	snprintf(out, cap, "data.mdb %.0f MiB", mib);
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

/* How many cj_add a fill puts in one transaction. On PostgreSQL each new
 * job holds an advisory lock until its transaction ends, and the server's
 * lock table has room for some thousands (max_locks_per_transaction times
 * max_connections): 1000 per transaction stays well clear of it. */
static long fill_batch(long lmdb) {
	return cfg.pg && lmdb > 1000 ? 1000 : lmdb;
}

/* Adds n pending jobs (ids prefix000000000...) in transactions of batch
 * adds, with relaxed sync. Returns the elapsed seconds. */
static double fill_store(const struct store *s, const char *prefix, long n, long batch) {
	cj_db *db = open_store(s, CJ_SYNC_RELAXED);
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

/* A row of the table. label names the figure the same way on both
 * engines (what may add engine-specific sizes): bench/run.sh joins the
 * two engines' rows on section, label and sync. */
struct row {
	char section[16];
	char label[80];
	char what[80];
	char sync[16];
	char value[40];
	char note[160];
};

static struct row rows[MAX_ROWS];
static int nrows;

/* what NULL: the label says it all. */
static void add_row(const char *section, const char *label, const char *what,
                    const char *sync, const char *value, const char *notefmt, ...)
	__attribute__((format(printf, 6, 7)));
static void add_row(const char *section, const char *label, const char *what,
                    const char *sync, const char *value, const char *notefmt, ...) {
	if (nrows == MAX_ROWS) die("too many result rows");
	struct row *r = &rows[nrows++];
	va_list ap;
	snprintf(r->section, sizeof r->section, "%s", section);
	snprintf(r->label, sizeof r->label, "%s", label);
	snprintf(r->what, sizeof r->what, "%s", what ? what : label);
	snprintf(r->sync, sizeof r->sync, "%s", sync);
	snprintf(r->value, sizeof r->value, "%s", value);
	va_start(ap, notefmt);
	vsnprintf(r->note, sizeof r->note, notefmt, ap);
	va_end(ap);
	fprintf(stderr, "  => %s | %s | %s | sync=%s | %s | %s\n", cfg.engine, r->section,
	        r->what, r->sync, r->value, r->note);
}

static void print_table(void) {
	enum { NCOL = 6 };
	int w[NCOL] = {6, 7, 4, 4, 5, 5};
	for (int i = 0; i < nrows; i++) {
		const char *f[NCOL] = {cfg.engine,    rows[i].section, rows[i].what,
		                       rows[i].sync,  rows[i].value,   rows[i].note};
		for (int j = 0; j < NCOL; j++) {
			int l = (int)strlen(f[j]);
			if (l > w[j]) w[j] = l;
		}
	}
	printf("| %-*s | %-*s | %-*s | %-*s | %*s | %-*s |\n", w[0], "engine", w[1], "section",
	       w[2], "what", w[3], "sync", w[4], "value", w[5], "notes");
	printf("|");
	for (int j = 0; j < NCOL; j++) {
		putchar(j == 4 ? '-' : ':');
		for (int k = 0; k < w[j]; k++) putchar('-');
		putchar(j == 4 ? ':' : '-');
		putchar('|');
	}
	printf("\n");
	for (int i = 0; i < nrows; i++)
		printf("| %-*s | %-*s | %-*s | %-*s | %*s | %-*s |\n", w[0], cfg.engine, w[1],
		       rows[i].section, w[2], rows[i].what, w[3], rows[i].sync, w[4], rows[i].value,
		       w[5], rows[i].note);
}

/* engine, section, label, sync, value, what, notes: one row a line. */
static void write_tsv(const char *path) {
	FILE *f = fopen(path, "w");
	if (!f) die("%s: %s", path, strerror(errno));
	for (int i = 0; i < nrows; i++)
		fprintf(f, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cfg.engine, rows[i].section,
		        rows[i].label, rows[i].sync, rows[i].value, rows[i].what, rows[i].note);
	if (fclose(f) != 0) die("%s: %s", path, strerror(errno));
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

#ifdef HAVE_LIBPQ
/* What synchronous_commit the engine's own sessions run with in mode: asked
 * inside a transaction of a handle opened that way (cj_tx_native). */
static void engine_sync_setting(const struct store *s, cj_sync_mode mode, char *out,
                                size_t cap) {
	cj_db *db = open_store(s, mode);
	cj_tx *tx;
	check(cj_tx_begin(db, &tx), "cj_tx_begin");
	PGconn *c = cj_tx_native(tx);
	if (!c) die("cj_tx_native gave no connection");
	pq_value(c, "SHOW synchronous_commit", out, cap, 0);
	cj_tx_abort(tx);
	cj_close(db);
}

static void print_server(void) {
	PGconn *c = admin_open();
	char ver[64], fsync_s[32], sc[32], wsm[32], fpw[32], sb[32], ddir[PATH_MAX], fs[PATH_MAX + 700];
	pq_value(c, "SHOW server_version", ver, sizeof ver, 0);
	pq_value(c, "SHOW fsync", fsync_s, sizeof fsync_s, 0);
	pq_value(c, "SHOW synchronous_commit", sc, sizeof sc, 0);
	pq_value(c, "SHOW wal_sync_method", wsm, sizeof wsm, 0);
	pq_value(c, "SHOW full_page_writes", fpw, sizeof fpw, 0);
	pq_value(c, "SHOW shared_buffers", sb, sizeof sb, 0);
	int have_dir = pq_value(c, "SHOW data_directory", ddir, sizeof ddir, 1) == 0;
	const char *host = PQhost(c);
	printf("server:     PostgreSQL %s, host %s, port %s, database %s\n", ver,
	       host && *host ? host : "(default)", PQport(c), PQdb(c));
	printf("server set: fsync=%s synchronous_commit=%s wal_sync_method=%s "
	       "full_page_writes=%s shared_buffers=%s\n",
	       fsync_s, sc, wsm, fpw, sb);
	if (have_dir) {
		fs_of(ddir, fs, sizeof fs);
		printf("server dir: %s\n", ddir);
		printf("filesystem: %s%s\n", fs,
		       strcmp(fs, "unknown") == 0 ? " (not on this machine, or not readable)" : "");
	}
	PQfinish(c);

	struct store s;
	char full[32], relaxed[32];
	new_store(&s, "settings");
	engine_sync_setting(&s, CJ_SYNC_FULL, full, sizeof full);
	engine_sync_setting(&s, CJ_SYNC_RELAXED, relaxed, sizeof relaxed);
	drop_store(&s);
	printf("sync=full:    CJ_SYNC_FULL: the engine's sessions keep the server's setting:\n"
	       "              synchronous_commit=%s (COMMIT returns once its WAL is flushed,\n"
	       "              fsync=%s)\n",
	       full, fsync_s);
	printf("sync=relaxed: cj_options.sync = CJ_SYNC_RELAXED: the engine sets\n"
	       "              synchronous_commit=%s on its sessions (COMMIT returns before\n"
	       "              its WAL is flushed; a server crash may lose the last moments)\n",
	       relaxed);
	printf("stores:     one fresh schema per section: --url with schema=cjbench_PID_N_NAME\n"
	       "            (and application_name=the same, to find its sessions)\n");
}
#endif

static void print_machine(void) {
	char cpu[256], fs[PATH_MAX + 700];
	struct utsname u;
	cpu_model(cpu, sizeof cpu);
	fs_of(cfg.dir, fs, sizeof fs);
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	double mem = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) /
	             (1024.0 * 1024.0 * 1024.0);
	printf("couchjobs %s micro-benchmark, %s engine\n", cj_version(),
	       cfg.pg ? "PostgreSQL (postgresql)" : "embedded (lmdb)");
	printf("cpu:        %s\n", cpu);
	printf("cores:      %ld online\n", online);
	printf("memory:     %.1f GiB\n", mem);
	if (uname(&u) == 0) printf("kernel:     %s %s %s\n", u.sysname, u.release, u.machine);
	print_load("at start");
	printf("bench dir:  %s (%s)\n", cfg.dir, cfg.pg ? "the disk row's file" : "the stores");
	printf("filesystem: %s\n", fs);
	if (cfg.pg) {
#ifdef HAVE_LIBPQ
		print_server();
#endif
	} else {
		printf("sync=full:    CJ_SYNC_FULL: every commit is flushed (fdatasync) before it returns\n");
		printf("sync=relaxed: cj_options.sync = CJ_SYNC_RELAXED: no flush at commit; the\n"
		       "              kernel writes the pages back when it chooses\n");
	}
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
	char path[PATH_MAX + 16], v[40], page[4096];
	long n = cfg.quick ? 50 : 1000;
	snprintf(path, sizeof path, "%s/flush", cfg.dir);
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
	add_row("disk", "4 KiB pwrite + fdatasync, no couchjobs (median)", NULL, "fdatasync", v,
	        "%ld flushes in the bench dir; mean %.0f us, p99 %.0f us", n,
	        (double)sum / (double)n / 1e3, (double)quantile(t, n, 0.99) / 1e3);
	free(t);
}

/* PostgreSQL: the server alone, for scale: one trivial statement's round
 * trip, as every statement of the engine pays at least once. */
static void pg_round_trip(void) {
#ifdef HAVE_LIBPQ
	char v[40];
	long n = cfg.quick ? 200 : 5000;
	PGconn *c = admin_open();
	int64_t *t = xcalloc((size_t)n, sizeof *t), sum = 0;
	for (long i = 0; i < n; i++) {
		int64_t t0 = now_ns();
		PGresult *r = PQexec(c, "SELECT 1");
		t[i] = now_ns() - t0;
		if (PQresultStatus(r) != PGRES_TUPLES_OK) die("SELECT 1: %s", PQerrorMessage(c));
		PQclear(r);
		sum += t[i];
	}
	PQfinish(c);
	qsort(t, (size_t)n, sizeof *t, cmp_i64);
	snprintf(v, sizeof v, "%.0f us", (double)quantile(t, n, 0.5) / 1e3);
	add_row("server", "round trip of SELECT 1, no couchjobs (median)", NULL, "-", v,
	        "%ld round trips; mean %.0f us, p99 %.0f us", n, (double)sum / (double)n / 1e3,
	        (double)quantile(t, n, 0.99) / 1e3);
	free(t);
#endif
}

static void section_add(void) {
	fprintf(stderr, "[add] one producer\n");
	disk_flush();
	if (cfg.pg) pg_round_trip();
	for (int m = 0; m < 2; m++) {
		cj_sync_mode mode = modes[m];
		char v[40];
		struct store s;
		new_store(&s, "add");
		cj_db *db = open_store(&s, mode);

		long n1 = mode == CJ_SYNC_FULL ? count_for(10000, 5000) : count_for(200000, 20000);
		char id[32], data[48];
		int64_t t0 = now_ns();
		for (long i = 0; i < n1; i++) {
			snprintf(id, sizeof id, "s%09ld", i);
			snprintf(data, sizeof data, "{\"i\":%ld}", i);
			check(cj_add(db, NULL, TYPE, id, data, 0), "cj_add");
		}
		double sec = (double)(now_ns() - t0) / 1e9;
		fmt_rate(v, sizeof v, (double)n1 / sec, "adds/s");
		add_row("add", "adds/s, 1 cj_add per transaction", NULL, mode_name(mode), v,
		        "%ld adds in %.2f s; %.0f us per commit", n1, sec, sec * 1e6 / (double)n1);

		long batches = mode == CJ_SYNC_FULL ? count_for(2000, 500) : count_for(5000, 500);
		t0 = now_ns();
		for (long b = 0; b < batches; b++) {
			struct batch_arg a = {db, b * 100, 100};
			check(cj_transact(db, batch_fn, &a), "cj_transact");
		}
		sec = (double)(now_ns() - t0) / 1e9;
		fmt_rate(v, sizeof v, (double)(batches * 100) / sec, "adds/s");
		add_row("add", "adds/s, 100 cj_add per cj_transact batch", NULL, mode_name(mode), v,
		        "%ld adds in %.2f s; %.0f us per commit", batches * 100, sec,
		        sec * 1e6 / (double)batches);
		cj_close(db);
		drop_store(&s);
	}
}

/* ---- section: drain ------------------------------------------------------ */

struct drain_result {
	long count;
	int64_t end_ns;
};

static void drain_child(const struct store *s, cj_sync_mode mode, int ready_w, int go_r,
                        int res_w) {
	cj_db *db = open_store(s, mode);
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

/* PostgreSQL: what the store's sessions were doing while every processor
 * was draining, sampled from pg_stat_activity. */
struct lock_samples {
	long n;            /* samples */
	long busy;         /* sessions inside a statement or transaction, summed */
	long lock_waiting; /* of them, waiting for a lock, summed */
};

#ifdef HAVE_LIBPQ
static void sample_locks(PGconn *c, const char *schema, struct lock_samples *ls) {
	char sql[512], v[64];
	/* the store's sessions carry its schema as application_name */
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock') || ' ' || count(*) "
	         "FROM pg_stat_activity WHERE application_name = '%s' AND state <> 'idle'",
	         schema);
	pq_value(c, sql, v, sizeof v, 0);
	long w = 0, b = 0;
	if (sscanf(v, "%ld %ld", &w, &b) == 2) {
		ls->n++;
		ls->busy += b;
		ls->lock_waiting += w;
	}
}
#endif

static void drain_once(cj_sync_mode mode, int procs, long njobs) {
	char v[40];
	struct store s;
	new_store(&s, "drain");
	fill_store(&s, "d", njobs, fill_batch(1000));

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
			drain_child(&s, mode, ready[1], go[0], res[1]);
		}
	}
	close(ready[1]);
	close(go[0]);
	close(res[1]);
	for (int p = 0; p < procs; p++) {
		char b;
		if (!read_all(ready[0], &b, 1)) die("drain: a processor died while opening");
	}
	struct lock_samples ls = {0, 0, 0};
#ifdef HAVE_LIBPQ
	PGconn *ac = cfg.pg && procs > 1 ? admin_open() : NULL;
#endif
	char gobuf[MAX_PROCS];
	memset(gobuf, 'g', sizeof gobuf);
	int64_t t0 = now_ns();
	write_all(go[1], gobuf, (size_t)procs);
#ifdef HAVE_LIBPQ
	/* until the first processor is done: every 20 ms, a look at the store's
	 * sessions */
	if (ac) {
		for (;;) {
			struct pollfd pf = {res[0], POLLIN, 0};
			int pr = poll(&pf, 1, 20);
			if (pr < 0 && errno == EINTR) continue;
			if (pr != 0) break;
			sample_locks(ac, s.schema, &ls);
		}
		PQfinish(ac);
	}
#endif
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
	double sec = (double)(end - t0) / 1e9;
	char what[80], locks[112] = "";
	snprintf(what, sizeof what, "accept+finish cycles/s, %d processor process%s", procs,
	         procs > 1 ? "es" : "");
	if (ls.n > 0)
		snprintf(locks, sizeof locks, "; %ld looks: %.1f sessions busy, %.1f of them waiting on a lock",
		         ls.n,
		         (double)ls.busy / (double)ls.n, (double)ls.lock_waiting / (double)ls.n);
	fmt_rate(v, sizeof v, (double)njobs / sec, "cycles/s");
	if (procs > 1)
		add_row("drain", what, NULL, mode_name(mode), v,
		        "%ld jobs in %.2f s; %ld..%ld per process%s", njobs, sec, minc, maxc, locks);
	else
		add_row("drain", what, NULL, mode_name(mode), v, "%ld jobs in %.2f s", njobs, sec);
	drop_store(&s);
}

static void section_drain(void) {
	fprintf(stderr, "[drain] processors draining a pre-filled queue\n");
	static const int procs[2] = {1, 4};
	for (int m = 0; m < 2; m++)
		for (int p = 0; p < 2; p++) {
			long n = modes[m] == CJ_SYNC_FULL ? count_for(5000, 5000)
			                                  : count_for(200000, 20000);
			drain_once(modes[m], procs[p], n);
		}
}

/* ---- section: threads ---------------------------------------------------- */

struct thread_arg {
	cj_db *db;
	int t;
	long jobs;
	pthread_barrier_t *start;
};

/* One job at a time, each step its own call and transaction. */
static void *thread_jobs(void *p) {
	struct thread_arg *a = p;
	cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
	ao.timeout_ms = 10000;
	pthread_barrier_wait(a->start);
	for (long i = 0; i < a->jobs; i++) {
		char id[32];
		cj_job *job;
		snprintf(id, sizeof id, "t%02d-%08ld", a->t, i);
		check(cj_add(a->db, NULL, TYPE, id, "{}", 0), "cj_add");
		check(cj_accept(a->db, TYPE, &ao, &job, NULL), "cj_accept");
		check(cj_finish(a->db, NULL, job, NULL), "cj_finish");
		cj_job_free(job);
	}
	return NULL;
}

static void threads_once(cj_sync_mode mode, int nthreads, long njobs) {
	struct store s;
	char v[40];
	new_store(&s, "threads");
	cj_db *db = open_store(&s, mode);
	pthread_barrier_t start;
	pthread_t th[MAX_PROCS];
	struct thread_arg args[MAX_PROCS];
	if (pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1) != 0) die("barrier");
	long per = njobs / nthreads > 0 ? njobs / nthreads : 1;
	for (int t = 0; t < nthreads; t++) {
		args[t] = (struct thread_arg){db, t, per, &start};
		if (pthread_create(&th[t], NULL, thread_jobs, &args[t]) != 0) die("pthread_create");
	}
	pthread_barrier_wait(&start);
	int64_t t0 = now_ns();
	for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
	double sec = (double)(now_ns() - t0) / 1e9;
	pthread_barrier_destroy(&start);
	cj_stats st;
	check(cj_db_stats(db, &st), "cj_db_stats");
	long total = per * nthreads;
	char label[64];
	snprintf(label, sizeof label, "jobs/s, %d thread%s of one process, 3 calls a job",
	         nthreads, nthreads > 1 ? "s" : "");
	fmt_rate(v, sizeof v, (double)total / sec, "jobs/s");
	add_row("threads", label, NULL, mode_name(mode), v,
	        "%ld jobs in %.2f s; %.0f%% of the calls combined", total, sec,
	        100.0 * (double)st.combined_calls / (double)(3 * total));
	cj_close(db);
	drop_store(&s);
}

static void section_threads(void) {
	fprintf(stderr, "[threads] threads of one process, one call a step\n");
	for (int m = 0; m < (cfg.full_only ? 1 : 2); m++)
		for (int i = 0; i < cfg.nthreads; i++)
			threads_once(modes[m], cfg.threads[i],
			             modes[m] == CJ_SYNC_FULL ? count_for(4000, 2000)
			                                      : count_for(50000, 10000));
}

/* --threads LIST: thread counts, 1 to MAX_PROCS. */
static void parse_threads(const char *list) {
	char buf[128];
	snprintf(buf, sizeof buf, "%s", list);
	cfg.nthreads = 0;
	for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		long n = strtol(tok, NULL, 10);
		if (n < 1 || n > MAX_PROCS || cfg.nthreads == 8)
			die("--threads: 1 to 8 counts of 1 to %d", MAX_PROCS);
		cfg.threads[cfg.nthreads++] = (int)n;
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

/* Forks a process that runs child(s, mode, the write end of a pipe) and
 * exits 0; res[0] is the pipe's read end (res[1] is closed). */
static pid_t fork_child(const struct store *s, cj_sync_mode mode,
                        void (*child)(const struct store *s, cj_sync_mode mode, int res_w),
                        int res[2]) {
	make_pipe(res);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) die("fork: %s", strerror(errno));
	if (pid == 0) {
		child_setup();
		close(res[0]);
		child(s, mode, res[1]);
		_exit(0);
	}
	close(res[1]);
	return pid;
}

static void latency_child(const struct store *s, cj_sync_mode mode, int res_w) {
	cj_db *db = open_store(s, mode);
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
}

static void latency_once(cj_sync_mode mode, long samples) {
	char v[40], id[32], data[96];
	struct store s;
	new_store(&s, "latency");
	int res[2];
	pid_t pid = fork_child(&s, mode, latency_child, res);
	cj_db *db = open_store(&s, mode);
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
	drop_store(&s);

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
	add_row("latency", w, NULL, mode_name(mode), v,
	        "%ld samples%s; the cj_add call alone: p50 %.0f us", samples, blocked,
	        (double)adds[quantile_rank(samples, 0.50)] / 1e3);
	snprintf(w, sizeof w, "%s, p99", what);
	snprintf(v, sizeof v, "%.0f us", (double)p99->lat_ns / 1e3);
	add_row("latency", w, NULL, mode_name(mode), v, "the cj_add call alone: p99 %.0f us",
	        (double)adds[quantile_rank(samples, 0.99)] / 1e3);
	snprintf(w, sizeof w, "%s, max", what);
	snprintf(v, sizeof v, "%.0f us", (double)max->lat_ns / 1e3);
	add_row("latency", w, NULL, mode_name(mode), v, "that sample: cj_add returned after %.0f us",
	        (double)max->add_ns / 1e3);
	free(smp);
	free(adds);
}

static void section_latency(void) {
	fprintf(stderr, "[latency] cj_add in one process wakes cj_accept in another\n");
	for (int m = 0; m < 2; m++) latency_once(modes[m], cfg.samples);
}

/* ---- section: lost --------------------------------------------------------- */

/* A processor in one process holds a job and polls its lease descriptor
 * (cj_subscribe_lease(), cj_sub_fd()); another process removes the job.
 * The latency runs from the cj_remove() call to the processor's poll()
 * returning. */
static void lost_child(const struct store *s, cj_sync_mode mode, int res_w) {
	cj_db *db = open_store(s, mode);
	for (;;) {
		cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
		ao.max_sched_time = CJ_SCHED_ANY;
		cj_job *job;
		check(cj_accept(db, TYPE, &ao, &job, NULL), "lost: cj_accept");
		int stop = strcmp(cj_job_id(job), "stop") == 0;
		cj_sub *sub = NULL;
		int fd = -1;
		check(cj_subscribe_lease(db, job, &sub), "lost: cj_subscribe_lease");
		check(cj_sub_fd(sub, &fd), "lost: cj_sub_fd");
		int64_t t1 = -1;
		write_all(res_w, &t1, sizeof t1); /* ready: held and watched */
		if (!stop) {
			struct pollfd p = {fd, POLLIN, 0};
			while (poll(&p, 1, -1) != 1) {}
			t1 = now_ns();
			if (cj_sub_lost(sub) != CJ_LOST_REMOVED) die("lost: not removed");
			write_all(res_w, &t1, sizeof t1);
		}
		cj_unsubscribe(sub);
		cj_job_free(job);
		if (stop) break;
	}
	cj_close(db);
}

static void lost_once(cj_sync_mode mode, long samples) {
	char v[40], id[32];
	struct store s;
	new_store(&s, "lost");
	int res[2];
	pid_t pid = fork_child(&s, mode, lost_child, res);
	cj_db *db = open_store(&s, mode);
	int64_t *lat = xcalloc((size_t)samples, sizeof *lat);
	int64_t *rm = xcalloc((size_t)samples, sizeof *rm);
	int64_t t;
	for (long i = 0; i <= samples; i++) {
		if (i == samples) snprintf(id, sizeof id, "stop");
		else snprintf(id, sizeof id, "x%09ld", i);
		check(cj_add(db, NULL, TYPE, id, NULL, 0), "lost: cj_add");
		if (!read_all(res[0], &t, sizeof t)) die("lost: the processor died");
		if (i == samples) break;
		sleep_us(1000); /* the processor asleep in poll() */
		int64_t t0 = now_ns();
		check(cj_remove(db, NULL, TYPE, id), "lost: cj_remove");
		rm[i] = now_ns() - t0;
		if (!read_all(res[0], &t, sizeof t)) die("lost: the processor died");
		lat[i] = t - t0;
	}
	int st;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("lost: the processor failed");
	close(res[0]);
	cj_close(db);
	drop_store(&s);

	qsort(lat, (size_t)samples, sizeof *lat, cmp_i64);
	qsort(rm, (size_t)samples, sizeof *rm, cmp_i64);
	const char *what = "remove-to-notified latency across processes (lease fd)";
	char w[96];
	snprintf(w, sizeof w, "%s, p50", what);
	snprintf(v, sizeof v, "%.0f us", (double)lat[quantile_rank(samples, 0.50)] / 1e3);
	add_row("lost", w, NULL, mode_name(mode), v,
	        "%ld samples; the cj_remove call alone: p50 %.0f us", samples,
	        (double)rm[quantile_rank(samples, 0.50)] / 1e3);
	snprintf(w, sizeof w, "%s, p99", what);
	snprintf(v, sizeof v, "%.0f us", (double)lat[quantile_rank(samples, 0.99)] / 1e3);
	add_row("lost", w, NULL, mode_name(mode), v, "the cj_remove call alone: p99 %.0f us",
	        (double)rm[quantile_rank(samples, 0.99)] / 1e3);
	snprintf(w, sizeof w, "%s, max", what);
	snprintf(v, sizeof v, "%.0f us", (double)lat[samples - 1] / 1e3);
	add_row("lost", w, NULL, mode_name(mode), v, "the slowest of %ld", samples);
	free(lat);
	free(rm);
}

static void section_lost(void) {
	fprintf(stderr, "[lost] cj_remove in one process wakes the job's processor in another\n");
	long n = cfg.samples / 5 > 0 ? cfg.samples / 5 : 1;
	for (int m = 0; m < 2; m++) lost_once(modes[m], n);
}

/* ---- section: scale ------------------------------------------------------ */

struct cycle_stats {
	double mean_us, p50_us, p99_us;
	double kib; /* written per cycle, or < 0 if unknown */
};

/* Bytes written so far: on the embedded engine, by this process (write and
 * pwrite calls); on PostgreSQL, into the server's WAL. -1 if unknown. */
static long long written_bytes(void) {
	if (cfg.pg) {
#ifdef HAVE_LIBPQ
		PGconn *c = cfg.wal_conn ? cfg.wal_conn : admin_open();
		long long v =
			pq_ll(c, "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint");
		if (c != cfg.wal_conn) PQfinish(c);
		return v;
#else
		return -1;
#endif
	}
	FILE *f = fopen("/proc/self/io", "r");
	if (!f) return -1;
	char line[128];
	long long v = -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "wchar:", 6) == 0) v = atoll(line + 6);
	fclose(f);
	return v;
}

/* One accept+finish cycle, timed. */
static int64_t one_cycle(cj_db *db) {
	cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
	ao.timeout_ms = 0;
	cj_job *job;
	char *data;
	int64_t t0 = now_ns();
	check(cj_accept(db, TYPE, &ao, &job, &data), "scale: cj_accept");
	check(cj_finish(db, NULL, job, NULL), "scale: cj_finish");
	int64_t d = now_ns() - t0;
	cj_job_free(job);
	cj_free(data);
	return d;
}

/* A store of the scale section and its timed cycles in one sync mode. */
struct scale_store {
	struct store s;
	long size; /* jobs kept pending */
	cj_db *db;
	int64_t *t; /* cycle times */
	long nt;
	int64_t sum;
	long long wrote; /* bytes written during the timed cycles, or < 0 */
};

#define SCALE_BLOCKS 10

/* Times cfg.cycles cycles on every store in mode, interleaved: each store
 * in turn runs a block of cycles, SCALE_BLOCKS times over, so that other
 * load on the machine weighs on every store alike. */
static void time_stores(struct scale_store *st, int nst, cj_sync_mode mode, long warm,
                        struct cycle_stats *out) {
	long cycles = cfg.cycles;
	for (int i = 0; i < nst; i++) {
		st[i].db = open_store(&st[i].s, mode);
		st[i].t = xcalloc((size_t)cycles, sizeof *st[i].t);
		st[i].nt = 0;
		st[i].sum = 0;
		st[i].wrote = 0;
		for (long w = 0; w < warm; w++) one_cycle(st[i].db);
	}
	for (int b = 0; b < SCALE_BLOCKS; b++) {
		long upto = cycles * (b + 1) / SCALE_BLOCKS;
		for (int i = 0; i < nst; i++) {
			long long w0 = written_bytes();
			while (st[i].nt < upto) {
				int64_t d = one_cycle(st[i].db);
				st[i].t[st[i].nt++] = d;
				st[i].sum += d;
			}
			long long w1 = written_bytes();
			if (w0 < 0 || w1 < w0 || st[i].wrote < 0) st[i].wrote = -1;
			else st[i].wrote += w1 - w0;
		}
	}
	for (int i = 0; i < nst; i++) {
		cj_close(st[i].db);
		st[i].db = NULL;
		long n = st[i].nt;
		qsort(st[i].t, (size_t)n, sizeof *st[i].t, cmp_i64);
		out[i].mean_us = (double)st[i].sum / (double)n / 1e3;
		out[i].p50_us = (double)quantile(st[i].t, n, 0.5) / 1e3;
		out[i].p99_us = (double)quantile(st[i].t, n, 0.99) / 1e3;
		out[i].kib = st[i].wrote >= 0 ? (double)st[i].wrote / 1024.0 / (double)n : -1;
		free(st[i].t);
		st[i].t = NULL;
	}
}

static void section_scale(void) {
	fprintf(stderr, "[scale] accept+finish cost against the number of pending jobs\n");
	/* 10k, the big store, and on the embedded engine 100k between them */
	struct scale_store st[3];
	long sizes[3] = {10000, 100000, cfg.big};
	int nsizes = 3;
	if (cfg.pg || cfg.big <= 100000) {
		sizes[1] = cfg.big;
		nsizes = 2;
	}
	if (cfg.big <= 10000) nsizes = 1;
	long warm = cfg.quick ? 20 : 200, cycles = cfg.cycles;
	struct cycle_stats cs[2][3];
	const char *wrote = cfg.pg ? "KiB of WAL/cycle" : "KiB written/cycle";
	for (int sz = 0; sz < nsizes; sz++) {
		char v[40], what[80], label[80], size[96], name[32];
		int big = sz == nsizes - 1 && nsizes > 1;
		memset(&st[sz], 0, sizeof st[sz]);
		st[sz].size = sizes[sz];
		snprintf(name, sizeof name, "scale%d", sz);
		new_store(&st[sz].s, name);
		/* enough that `sizes[sz]` jobs stay pending through every cycle */
		long fill = sizes[sz] + 2 * (warm + cycles);
		long batch = fill_batch(10000);
		progress("filling %ld jobs, %ld adds per transaction, sync=relaxed", fill, batch);
		double secs = fill_store(&st[sz].s, "j", fill, batch);
		store_size(&st[sz].s, size, sizeof size);
		fmt_rate(v, sizeof v, (double)fill / secs, "adds/s");
		snprintf(what, sizeof what, "fill %ld jobs, %ld cj_add per cj_transact", fill, batch);
		if (big)
			snprintf(label, sizeof label, "fill the big store, adds/s");
		else
			snprintf(label, sizeof label, "fill the %ldk store, adds/s", sizes[sz] / 1000);
		add_row("scale", label, what, "relaxed", v, "%.1f s; %s", secs, size);
		if (big) {
			snprintf(v, sizeof v, "%ld jobs", sizes[sz]);
			add_row("scale", "the big store: jobs pending", NULL, "-", v, "%s",
			        cfg.big_given ? "set with --big" : "this engine's default (--big)");
		}
	}
	/* each run takes its jobs from the head of the queue, and at least
	 * sizes[sz] stay pending behind them */
	for (int k = 0; k < 2; k++) {
		int m = 1 - k; /* relaxed first: the fill left its pages dirty */
		cj_sync_mode mode = modes[m];
		progress("%ld timed cycles per store, sync=%s, the stores taking turns", cycles,
		         mode_name(mode));
#ifdef HAVE_LIBPQ
		if (cfg.pg) cfg.wal_conn = admin_open();
#endif
		time_stores(st, nsizes, mode, warm, cs[m]);
#ifdef HAVE_LIBPQ
		if (cfg.wal_conn) PQfinish(cfg.wal_conn);
		cfg.wal_conn = NULL;
#endif
		for (int sz = 0; sz < nsizes; sz++) {
			char v[40], what[80], label[80];
			int big = sz == nsizes - 1 && nsizes > 1;
			snprintf(what, sizeof what, "accept+finish, %ld jobs pending (median)", sizes[sz]);
			if (big)
				snprintf(label, sizeof label, "accept+finish, the big store (median)");
			else
				snprintf(label, sizeof label, "%s", what);
			snprintf(v, sizeof v, "%.1f us/cycle", cs[m][sz].p50_us);
			add_row("scale", label, what, mode_name(mode), v,
			        "%ld cycles; mean %.1f us, p99 %.1f us; %.1f %s", cycles, cs[m][sz].mean_us,
			        cs[m][sz].p99_us, cs[m][sz].kib, wrote);
		}
	}
	for (int sz = 0; sz < nsizes; sz++) drop_store(&st[sz].s);
	if (nsizes > 1) {
		for (int m = 0; m < 2; m++) {
			char what[80], v[40];
			snprintf(what, sizeof what, "cost ratio, %ld vs %ld jobs pending", sizes[nsizes - 1],
			         sizes[0]);
			snprintf(v, sizeof v, "x%.2f", cs[m][nsizes - 1].p50_us / cs[m][0].p50_us);
			add_row("scale", "cost ratio, the big store vs 10000 jobs pending", what,
			        mode_name(modes[m]), v, "of the medians; of the means x%.2f",
			        cs[m][nsizes - 1].mean_us / cs[m][0].mean_us);
		}
	}
}

/* ---- section: subs ------------------------------------------------------- */

#define SUBS_LIVE 1000

static double cpu_s(void) {
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Commits n adds of jobs nobody subscribes to, once told to start. */
static void subs_child(const struct store *s, cj_sync_mode mode, long n, int go_r,
                       int done_w) {
	child_setup();
	char ch;
	if (!read_all(go_r, &ch, 1)) _exit(1);
	cj_db *db = open_store(s, mode);
	char id[64];
	for (long i = 0; i < n; i++) {
		snprintf(id, sizeof id, "unrelated-%ld", i);
		check(cj_add(db, NULL, TYPE, id, NULL, 0), "subs: cj_add");
	}
	cj_close(db);
	write_all(done_w, "x", 1);
	_exit(0);
}

/* Waits for the event of a change to sub's job: the notifier has then
 * looked at every commit before that change. */
static void subs_settle(cj_db *db, cj_sub *sub, const char *id) {
	cj_event ev;
	check(cj_remove(db, NULL, TYPE, id), "subs: cj_remove");
	check(cj_wait(&sub, 1, CJ_REMOVED, 60000, &ev), "subs: cj_wait");
	cj_event_clear(&ev);
}

static void subs_once(cj_sync_mode mode, long n) {
	struct store s;
	new_store(&s, "subs");
	fill_store(&s, "sub-", SUBS_LIVE + 2, SUBS_LIVE + 2);
	int go[2], done[2];
	make_pipe(go);
	make_pipe(done);
	pid_t pid = fork();
	if (pid < 0) die("fork: %s", strerror(errno));
	if (pid == 0) subs_child(&s, mode, n, go[0], done[1]);
	close(go[0]);
	close(done[1]);

	cj_db *db = open_store(&s, mode);
	cj_sub **subs = xcalloc(SUBS_LIVE + 2, sizeof *subs);
	char id[64];
	int64_t t0 = now_ns();
	for (long i = 0; i < SUBS_LIVE + 2; i++) {
		snprintf(id, sizeof id, "sub-%09ld", i);
		check(cj_subscribe(db, TYPE, id, &subs[i], NULL, NULL), "subs: cj_subscribe");
	}
	double sub_us = (double)(now_ns() - t0) / 1e3 / (SUBS_LIVE + 2);
	/* 1,000 stay live; the last two tell when the notifier has settled,
	 * at a cost in store reads measured with the first */
	cj_stats s0, a, b;
	check(cj_db_stats(db, &s0), "cj_db_stats");
	subs_settle(db, subs[SUBS_LIVE], "sub-000001000");
	check(cj_db_stats(db, &a), "cj_db_stats");
	uint64_t settle_reads = a.store_reads - s0.store_reads;
	double c0 = cpu_s();
	int64_t w0 = now_ns();
	write_all(go[1], "x", 1);
	char ch;
	if (!read_all(done[0], &ch, 1)) die("subs: the committing process failed");
	double wall = (double)(now_ns() - w0) / 1e9;
	subs_settle(db, subs[SUBS_LIVE + 1], "sub-000001001");
	double cpu = cpu_s() - c0;
	check(cj_db_stats(db, &b), "cj_db_stats");
	int status;
	waitpid(pid, &status, 0);
	close(go[1]);
	close(done[0]);
	/* the two settling changes are subscribed: not counted against the n */
	double reads = (double)(b.notifier_reads - a.notifier_reads) - 1;
	double all_reads = (double)(b.store_reads - a.store_reads) - (double)settle_reads;
	uint64_t passes = b.notifier_passes - a.notifier_passes;
	char v[40];
	snprintf(v, sizeof v, "%.3f", all_reads < 0 ? 0 : all_reads / (double)n);
	add_row("subs", "store reads of the subscribing process per unrelated commit", NULL,
	        mode_name(mode), v, "every read of the handle, 1000 live subs; %.0f in all",
	        all_reads < 0 ? 0 : all_reads);
	snprintf(v, sizeof v, "%.1f us",
	         (double)(b.notifier_lock_ns - a.notifier_lock_ns) / 1e3 /
	             (double)(passes ? passes : 1));
	add_row("subs", "notifier's mutex holding per pass, 1000 live subs", NULL,
	        mode_name(mode), v, "%llu passes for %ld unrelated commits",
	        (unsigned long long)passes, n);
	snprintf(v, sizeof v, "%.3f", reads < 0 ? 0 : reads / (double)n);
	add_row("subs", "notifier store reads per unrelated commit, 1000 live subs", NULL,
	        mode_name(mode), v,
	        "%ld commits of another process in %.2f s: %llu passes, %.0f reads, "
	        "%.1f us CPU each", n, wall,
	        (unsigned long long)(b.notifier_passes - a.notifier_passes), reads < 0 ? 0 : reads,
	        cpu * 1e6 / (double)n);
	snprintf(v, sizeof v, "%.0f us", sub_us);
	add_row("subs", "cj_subscribe, up to 1000 live subs", NULL, mode_name(mode), v,
	        "mean of %d", SUBS_LIVE + 2);
	for (long i = 0; i < SUBS_LIVE + 2; i++) cj_unsubscribe(subs[i]);
	free(subs);
	cj_close(db);
	drop_store(&s);
}

static void section_subs(void) {
	for (int m = 0; m < 2; m++) subs_once(modes[m], count_for(2000, 500));
}

/* ---- section: wake -------------------------------------------------------- */

#define WAKE_ACCEPTORS 16

/* Context switches (voluntary and not) of one thread of pid (tid) or, with
 * tid 0, of all its threads, from /proc; -1 if unreadable. */
static long ctx_switches(pid_t pid, pid_t tid) {
	char path[96], buf[4096];
	long total = 0;
	pid_t tids[64];
	int n = 0;
	if (tid) {
		tids[n++] = tid;
	} else {
		snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
		DIR *d = opendir(path);
		if (!d) return -1;
		struct dirent *e;
		while ((e = readdir(d)) && n < 64)
			if (e->d_name[0] != '.') tids[n++] = (pid_t)atoi(e->d_name);
		closedir(d);
	}
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tids[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) return -1;
		ssize_t r = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (r <= 0) return -1;
		buf[r] = 0;
		const char *v = strstr(buf, "voluntary_ctxt_switches:");
		const char *nv = strstr(buf, "nonvoluntary_ctxt_switches:");
		if (!v || !nv) return -1;
		total += strtol(v + 24, NULL, 10) + strtol(nv + 27, NULL, 10);
	}
	return total;
}

/* One idle acceptor: accepts and finishes until a job says stop, telling
 * done_w after each. */
static void wake_child(const struct store *s, cj_sync_mode mode, int done_w) {
	child_setup();
	cj_db *db = open_store(s, mode);
	for (;;) {
		cj_job *job;
		char *data;
		check(cj_accept(db, TYPE, NULL, &job, &data), "wake: cj_accept");
		int stop = strstr(data, "\"stop\"") != NULL;
		check(cj_finish(db, NULL, job, NULL), "wake: cj_finish");
		cj_job_free(job);
		cj_free(data);
		if (stop) break;
		write_all(done_w, "x", 1);
	}
	cj_close(db);
	_exit(0);
}

static void wake_once(cj_sync_mode mode, long jobs) {
	struct store s;
	new_store(&s, "wake");
	int done[2];
	make_pipe(done);
	fflush(NULL);
	pid_t pids[WAKE_ACCEPTORS];
	for (int i = 0; i < WAKE_ACCEPTORS; i++) {
		if ((pids[i] = fork()) < 0) die("fork: %s", strerror(errno));
		if (pids[i] == 0) {
			close(done[0]);
			wake_child(&s, mode, done[1]);
		}
	}
	close(done[1]);
	cj_db *db = open_store(&s, mode);
	long woken = 0, main_sw = 0, all_sw = 0, unconfirmed = 0;
	char id[32];
	for (long j = 0; j < jobs; j++) {
		long before[WAKE_ACCEPTORS], before_all[WAKE_ACCEPTORS];
		for (int i = 0; i < WAKE_ACCEPTORS; i++) {
			if (!wait_blocked(pids[i])) unconfirmed++;
			before[i] = ctx_switches(pids[i], pids[i]);
			before_all[i] = ctx_switches(pids[i], 0);
		}
		snprintf(id, sizeof id, "w%09ld", j);
		check(cj_add(db, NULL, TYPE, id, NULL, 0), "wake: cj_add");
		char ch;
		if (!read_all(done[0], &ch, 1)) die("wake: an acceptor died");
		for (int i = 0; i < WAKE_ACCEPTORS; i++) {
			wait_blocked(pids[i]);
			long d = ctx_switches(pids[i], pids[i]) - before[i];
			woken += d > 0;
			main_sw += d;
			all_sw += ctx_switches(pids[i], 0) - before_all[i];
		}
	}
	for (int i = 0; i < WAKE_ACCEPTORS; i++) {
		snprintf(id, sizeof id, "stop%d", i);
		check(cj_add(db, NULL, TYPE, id, "{\"stop\":1}", 0), "wake: cj_add");
	}
	for (int i = 0; i < WAKE_ACCEPTORS; i++) {
		int st;
		if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			die("wake: an acceptor failed");
	}
	close(done[0]);
	cj_close(db);
	drop_store(&s);
	char v[40], blocked[64] = "";
	if (unconfirmed)
		snprintf(blocked, sizeof blocked, " (%ld times one was not seen asleep first)",
		         unconfirmed);
	snprintf(v, sizeof v, "%.2f", (double)woken / (double)jobs);
	add_row("wake", "acceptors woken per job added, 16 idle acceptor processes", NULL,
	        mode_name(mode), v, "%ld jobs added one at a time, each taken before the next%s",
	        jobs, blocked);
	snprintf(v, sizeof v, "%.1f", (double)all_sw / (double)jobs);
	add_row("wake", "context switches of the 16 acceptors per job added", NULL,
	        mode_name(mode), v, "all their threads; their accepting threads alone: %.1f",
	        (double)main_sw / (double)jobs);
}

static void section_wake(void) {
	for (int m = 0; m < 2; m++) wake_once(modes[m], count_for(200, 100));
}

/* ---- main ----------------------------------------------------------------- */

static void usage(FILE *f) {
	fprintf(f,
	        "usage: cj_bench [--url URL] [--quick] [--sections LIST] [--dir DIR]\n"
	        "                [--samples N] [--big N] [--cycles N] [--tsv FILE]\n"
	        "  --url URL        benchmark the PostgreSQL engine at URL (postgresql://...):\n"
	        "                   each store is a fresh schema, URL plus schema=NAME,\n"
	        "                   dropped afterwards. Without it: the embedded engine\n"
	        "  --quick          small N everywhere: a fast smoke run\n"
	        "  --sections LIST  comma-separated subset of add,drain,latency,scale,subs,\n"
	        "                   lost,threads,wake\n"
	        "                   (default: all)\n"
	        "  --dir DIR        where the temporary stores (embedded engine) and the disk\n"
	        "                   row's file go (default: a new directory under $TMPDIR or\n"
	        "                   /var/tmp, removed at the end)\n"
	        "  --samples N      latency samples per sync mode (default 1000; the lost\n"
	        "                   section takes a fifth as many)\n"
	        "  --big N          largest store of the scale section (default 1000000 on\n"
	        "                   the embedded engine, 200000 on PostgreSQL; --quick:\n"
	        "                   50000 and 20000)\n"
	        "  --cycles N       measured accept+finish cycles per scale store and sync mode\n"
	        "                   (default 5000 on the embedded engine, 2000 on PostgreSQL)\n"
	        "  --threads LIST   thread counts of the threads section (default 1,4,8,16)\n"
	        "  --full-only      measure sync=full only (the threads section)\n"
	        "  --tsv FILE       also write the rows to FILE, tab-separated: engine,\n"
	        "                   section, label, sync, value, what, notes\n");
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
	cfg.sec_add = cfg.sec_drain = cfg.sec_latency = cfg.sec_scale = cfg.sec_subs = 0;
	cfg.sec_lost = cfg.sec_threads = cfg.sec_wake = 0;
	for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (strcmp(tok, "add") == 0) cfg.sec_add = 1;
		else if (strcmp(tok, "drain") == 0) cfg.sec_drain = 1;
		else if (strcmp(tok, "latency") == 0) cfg.sec_latency = 1;
		else if (strcmp(tok, "scale") == 0) cfg.sec_scale = 1;
		else if (strcmp(tok, "subs") == 0) cfg.sec_subs = 1;
		else if (strcmp(tok, "lost") == 0) cfg.sec_lost = 1;
		else if (strcmp(tok, "threads") == 0) cfg.sec_threads = 1;
		else if (strcmp(tok, "wake") == 0) cfg.sec_wake = 1;
		else if (strcmp(tok, "all") == 0)
			cfg.sec_add = cfg.sec_drain = cfg.sec_latency = cfg.sec_scale = cfg.sec_subs =
				cfg.sec_lost = cfg.sec_threads = cfg.sec_wake = 1;
		else die("unknown section \"%s\" (add, drain, latency, scale, subs, lost, threads, "
		         "wake)",
		         tok);
	}
}

static pid_t main_pid;

/* At exit of the main process only: a processor that fails leaves the
 * stores to the main process. */
static void cleanup(void) {
	if (getpid() != main_pid) return;
	for (int i = 0; cfg.pg && i < MAX_LIVE; i++) {
		if (!cfg.live[i][0]) continue;
		char schema[64];
		snprintf(schema, sizeof schema, "%s", cfg.live[i]);
		cfg.live[i][0] = 0;
		drop_schema(schema);
	}
	if (cfg.own_dir && cfg.dir[0]) rm_tree(cfg.dir);
}

int main(int argc, char **argv) {
	const char *sections = "all", *dir = NULL;
	long samples = 0, big = 0, cycles = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--quick") == 0) cfg.quick = 1;
		else if (strcmp(a, "--full-only") == 0) cfg.full_only = 1;
		else if (next && strcmp(a, "--threads") == 0) parse_threads(argv[++i]);
		else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (next && strcmp(a, "--sections") == 0) sections = argv[++i];
		else if (next && strcmp(a, "--dir") == 0) dir = argv[++i];
		else if (next && strcmp(a, "--url") == 0) cfg.url = argv[++i];
		else if (next && strcmp(a, "--tsv") == 0) cfg.tsv = argv[++i];
		else if (next && strcmp(a, "--samples") == 0) samples = parse_long(argv[++i], a);
		else if (next && strcmp(a, "--big") == 0) big = parse_long(argv[++i], a);
		else if (next && strcmp(a, "--cycles") == 0) cycles = parse_long(argv[++i], a);
		else {
			usage(stderr);
			return 2;
		}
	}
	parse_sections(sections);
	if (!cfg.nthreads) parse_threads("1,4,8,16");
	if (cfg.url) {
		if (strncmp(cfg.url, "postgresql://", 13) != 0 && strncmp(cfg.url, "postgres://", 11) != 0)
			die("--url: not a postgresql:// or postgres:// URL");
#ifndef HAVE_LIBPQ
		die("--url: this build has no PostgreSQL engine (libpq was not found)");
#endif
		cfg.pg = 1;
		cfg.admin_url = strip_schema(cfg.url);
		cfg.engine = "postgresql";
	} else {
		cfg.engine = "lmdb";
	}
	cfg.samples = samples ? samples : cfg.quick ? 50 : 1000;
	cfg.big_given = big > 0;
	cfg.big = big ? big : cfg.quick ? (cfg.pg ? 20000 : 50000) : (cfg.pg ? 200000 : 1000000);
	cfg.cycles = cycles ? cycles : cfg.quick ? 200 : cfg.pg ? 2000 : 5000;

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
	if (cfg.sec_subs) section_subs();
	if (cfg.sec_lost) section_lost();
	if (cfg.sec_threads) section_threads();
	if (cfg.sec_wake) section_wake();
	printf("\n");
	print_load("at end");
	printf("\n");
	print_table();
	if (cfg.tsv) write_tsv(cfg.tsv);
	free(cfg.admin_url);
	return 0;
}
