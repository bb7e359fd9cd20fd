/*
 * Robustness: what the library does with hostile or mistaken input and
 * with a failing environment. Times past any sensible schedule, bad
 * UTF-8, secrets in store URLs, planted symlinks and shared directories,
 * a full file system, a read-only store, a PostgreSQL server that stops
 * answering or is down.
 *
 * Cases for every engine first; lmdb_* cases are about the embedded
 * engine's files, pg_* cases about the PostgreSQL engine (each says so and
 * passes at once on the other).
 *
 * Public API and the real cjobs binary only.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *cj(void) { return t_bin("cjobs"); }

/* ---- time ------------------------------------------------------------------ */

/* Scheduled times past CJ_MAX_SCHED_TIME (milliseconds or nanoseconds typed
 * by mistake, INT64_MAX) are refused; the latest one is taken, and an
 * acceptor with a timeout still returns in time with it in the queue. */
TEST(sched_time_limit) {
	cj_db *db = open_typed("t");
	static const int64_t bad[] = {CJ_MAX_SCHED_TIME + 1, (int64_t)1e16, INT64_MAX};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_RC(cj_add(db, NULL, "t", "far", NULL, bad[i]), CJ_INVALID);
		CHECK(strstr(cj_last_error(), "scheduled time") != NULL);
	}
	cj_state st;
	CHECK_RC(cj_get_job_state(db, NULL, "t", "far", &st), CJ_NOT_FOUND);
	CHECK_OK(cj_add(db, NULL, "t", "far", NULL, CJ_MAX_SCHED_TIME));
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 300;
	cj_job *job = NULL;
	int64_t t0 = t_now_ms();
	CHECK_RC(cj_accept(db, "t", &o, &job, NULL), CJ_NOT_FOUND);
	CHECK(t_now_ms() - t0 < 30000);
	/* a resubmission is held to the same limit */
	CHECK_OK(cj_add(db, NULL, "t", "now", NULL, 0));
	job = take(db, "t");
	CHECK_RC(cj_resubmit(db, NULL, job, INT64_MAX, NULL), CJ_INVALID);
	CHECK_OK(cj_resubmit(db, NULL, job, CJ_SCHED_KEEP, NULL));
	cj_job_free(job);
	cj_close(db);
}

/* The CLI refuses such times with one line and exit 2; `cjobs accept
 * --timeout` returns in time whatever is queued. */
TEST(cli_sched_time_limit) {
	char *out = NULL, *err = NULL;
	CHECK_INT(t_sh(NULL, NULL, "'%s' timeout t 2", cj()), 0);
	CHECK_INT(t_sh(NULL, &err, "'%s' add t far --at 10000000000000000", cj()), 2);
	CHECK(strstr(err, "--at") != NULL);
	free(err);
	CHECK_INT(t_sh(NULL, NULL, "'%s' add t far --at 9223372036854775807", cj()), 2);
	CHECK_INT(t_sh(NULL, NULL, "'%s' add t far --in 100000000000000s", cj()), 2);
	CHECK_INT(t_sh(NULL, NULL, "'%s' add t far --at %lld", cj(),
	               (long long)CJ_MAX_SCHED_TIME), 0);
	int64_t t0 = t_now_ms();
	CHECK_INT(t_sh(&out, NULL, "'%s' accept t --timeout 500", cj()), 3);
	CHECK(t_now_ms() - t0 < 30000);
	free(out);
	/* a huge timeout is a deadline far ahead, not "no deadline" */
	CHECK_INT(t_sh(NULL, NULL, "'%s' add t now", cj()), 0);
	CHECK_INT(t_sh(&out, NULL, "'%s' accept t --timeout 9223372036854775807", cj()), 0);
	free(out);
}

struct later {
	cj_db *db;
	int remove; /* remove job "j", else add it */
};

static void *later_fn(void *p) {
	struct later *a = p;
	sleep_ms(300);
	if (a->remove) cj_remove(a->db, NULL, "t", "j");
	else cj_add(a->db, NULL, "t", "j", NULL, 0);
	return NULL;
}

/* Timeouts up to INT64_MAX are deadlines: cj_accept() and cj_wait() with
 * one still get what arrives. */
TEST(huge_timeouts) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_sub *sub = sub_on(db, "t", "j");
	pthread_t th;
	struct later a = {db, 1};
	CHECK(pthread_create(&th, NULL, later_fn, &a) == 0);
	cj_event ev;
	CHECK_OK(cj_wait(&sub, 1, 0, INT64_MAX, &ev));
	CHECK_INT(ev.state, CJ_REMOVED);
	cj_event_clear(&ev);
	pthread_join(th, NULL);
	cj_unsubscribe(sub);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = INT64_MAX;
	cj_job *job = NULL;
	a.remove = 0;
	CHECK(pthread_create(&th, NULL, later_fn, &a) == 0);
	CHECK_OK(cj_accept(db, "t", &o, &job, NULL));
	pthread_join(th, NULL);
	cj_job_free(job);
	cj_close(db);
}

/* ---- UTF-8 ------------------------------------------------------------------ */

/* Types and ids must be valid UTF-8; multi-byte text is fine. */
TEST(utf8_types_and_ids) {
	cj_db *db = open_typed("t");
	static const char *const bad[] = {
		"\xff",                 /* never in UTF-8 */
		"a\x80",                /* a stray continuation byte */
		"\xc3",                 /* truncated */
		"\xe2\x82",             /* truncated */
		"\xc0\xaf",             /* overlong '/' */
		"\xe0\x80\xaf",         /* overlong '/' */
		"\xf0\x80\x80\xaf",     /* overlong '/' */
		"\xed\xa0\x80",         /* a surrogate, U+D800 */
		"\xed\xbf\xbf",         /* a surrogate, U+DFFF */
		"\xf4\x90\x80\x80",     /* U+110000 */
		"\xf8\x88\x80\x80\x80", /* a 5-byte form */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_RC(cj_add(db, NULL, "t", bad[i], NULL, 0), CJ_INVALID);
		CHECK(strstr(cj_last_error(), "UTF-8") != NULL);
		CHECK_RC(cj_set_type_timeout(db, bad[i], 10), CJ_INVALID);
		cj_state st;
		CHECK_RC(cj_get_job_state(db, NULL, "t", bad[i], &st), CJ_INVALID);
	}
	CHECK_INT(count_jobs(db, NULL), 0);
	static const char *const good[] = {"caf\xc3\xa9", "\xe2\x82\xac", "\xed\x9f\xbf",
	                                   "\xee\x80\x80", "\xf0\x9f\x98\x80",
	                                   "\xf4\x8f\xbf\xbf"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		CHECK_OK(cj_add(db, NULL, "t", good[i], NULL, 0));
		CHECK_OK(cj_set_type_timeout(db, good[i], 10));
	}
	CHECK_INT(count_jobs(db, "t"), sizeof good / sizeof good[0]);
	cj_close(db);
}

/* ---- secrets ----------------------------------------------------------------- */

TEST(url_redact) {
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"postgresql://u:SECRET@h:5/db", "postgresql://u:***@h:5/db"},
		{"postgres://u:S%40C@h/db?schema=s", "postgres://u:***@h/db?schema=s"},
		{"postgresql://u@h/db", "postgresql://u@h/db"},
		{"postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"},
		{"postgresql:///db?host=/tmp&password=SECRET&user=u",
		 "postgresql:///db?host=/tmp&password=***&user=u"},
		{"postgresql://h/db?PASSWORD=SECRET", "postgresql://h/db?PASSWORD=***"},
		{"/var/lib/jobs", "/var/lib/jobs"},
		{"lmdb:/a:b@c", "lmdb:/a:b@c"},
	};
	char out[128];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CHECK_OK(cj_url_redact(cases[i].in, out, sizeof out));
		CHECK_STR(out, cases[i].out);
	}
	/* too small: cut short, still redacted */
	CHECK_RC(cj_url_redact("postgresql://u:SECRET@host/db", out, 20), CJ_TOO_LARGE);
	CHECK_STR(out, "postgresql://u:***@");
	/* any number of password parameters */
	char many[1024] = "postgresql://h/db?", big[1024];
	for (int i = 0; i < 40; i++) strcat(many, "password=SECRET&");
	CHECK_OK(cj_url_redact(many, big, sizeof big));
	CHECK(strstr(big, "SECRET") == NULL);
	CHECK(strncmp(big, "postgresql://h/db?password=***&", 31) == 0);
	CHECK_RC(cj_url_redact(NULL, out, sizeof out), CJ_INVALID);
	CHECK_RC(cj_url_redact("x", NULL, 4), CJ_INVALID);
	CHECK_RC(cj_url_redact("x", out, 0), CJ_INVALID);
}

/* A store that cannot be opened is named without its password, by the
 * library and by the CLI, whatever fails (the scheme, the URL's syntax,
 * the connection). */
TEST(open_hides_password) {
	static const char *const urls[] = {
		"postgresql://u:SECRET@127.0.0.1:1/db",
		"postgresql://u:SECRET@[::1",
		"postgresql://u:SECRET@h/d?bad%zz=1",
		"postgresql://u:SEC%52ET@127.0.0.1:1/db?password=SECRET&sslmode=bogus",
		"nosuch://u:SECRET@h/db",
	};
	for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
		cj_db *db = NULL;
		CHECK(cj_open(urls[i], NULL, &db) != CJ_OK);
		if (strstr(cj_last_error(), "SECRET"))
			t_fail(__FILE__, __LINE__, "%s: %s", urls[i], cj_last_error());
		char *out = NULL, *err = NULL;
		CHECK(t_sh(&out, &err, "'%s' --db '%s' list", cj(), urls[i]) != 0);
		if (strstr(out, "SECRET") || strstr(err, "SECRET") || !strstr(err, "***"))
			t_fail(__FILE__, __LINE__, "cjobs --db %s: %s%s", urls[i], out, err);
		free(out);
		free(err);
	}
}

/* ---- the embedded engine's files ------------------------------------------- */

static void write_text(const char *path, const char *text) {
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	fputs(text, f);
	CHECK(fclose(f) == 0);
}

static char *read_text(const char *path) {
	static char buf[256];
	FILE *f = fopen(path, "r");
	CHECK(f != NULL);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	return buf;
}

/* A store file planted as a symlink (or a hard link) to another file is
 * refused before anything opens it, and the other file is unchanged:
 * for a new store, and for one that exists. */
TEST(lmdb_links_refused) {
	SKIP_UNLESS_LMDB();
	static const char *const files[] = {"data.mdb", "lock.mdb", "wake", "flush"};
	char victim[4200], store[4200], lpath[4300];
	snprintf(victim, sizeof victim, "%s/victim", t_dir());
	for (int existing = 0; existing < 2; existing++)
		for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
			for (int hard = 0; hard < 2; hard++) {
				write_text(victim, "precious");
				snprintf(store, sizeof store, "%s/s%d%zu%d", t_dir(), existing, i, hard);
				cj_db *db = NULL;
				if (existing) {
					CHECK_OK(cj_open(store, NULL, &db));
					cj_close(db);
				} else {
					CHECK(mkdir(store, 0700) == 0);
				}
				snprintf(lpath, sizeof lpath, "%s/%s", store, files[i]);
				unlink(lpath);
				CHECK((hard ? link(victim, lpath) : symlink(victim, lpath)) == 0);
				CHECK_RC(cj_open(store, NULL, &db), CJ_STORE);
				CHECK(db == NULL);
				CHECK(strstr(cj_last_error(), files[i]) != NULL);
				CHECK(strstr(cj_last_error(), hard ? "hard link" : "symbolic link"));
				CHECK_STR(read_text(victim), "precious");
				unlink(lpath);
			}
}

/* A store directory that another user may write, or that belongs to
 * another user, is refused unless the store is opened as shared (or the
 * file mode shares it with the group); so does the CLI, unless
 * CJOBS_SHARED_STORE=1. */
TEST(lmdb_shared_directory) {
	SKIP_UNLESS_LMDB();
	char store[4200];
	snprintf(store, sizeof store, "%s/s", t_dir());
	cj_db *db = NULL;
	CHECK_OK(cj_open(store, NULL, &db));
	cj_close(db);
	cj_options shared = CJ_OPTIONS_INIT;
	shared.shared = 1;
	cj_options group = CJ_OPTIONS_INIT;
	group.file_mode = 0660;
	static const mode_t modes[] = {0777, 0770, 0703, 01777};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		CHECK(chmod(store, modes[i]) == 0);
		CHECK_RC(cj_open(store, NULL, &db), CJ_STORE);
		CHECK(strstr(cj_last_error(), "writable by") != NULL);
		CHECK_RC(cj_open(store, &group, &db), modes[i] == 0770 ? CJ_OK : CJ_STORE);
		cj_close(db);
		CHECK_OK(cj_open(store, &shared, &db));
		cj_close(db);
	}
	char *err = NULL;
	CHECK_INT(t_sh(NULL, &err, "'%s' --db '%s' types", cj(), store), 1);
	CHECK(strstr(err, "writable by") != NULL);
	free(err);
	CHECK_INT(t_sh(NULL, NULL, "CJOBS_SHARED_STORE=1 '%s' --db '%s' types", cj(), store), 0);
	CHECK(chmod(store, 0700) == 0);
	CHECK(chown(store, 65534, 65534) == 0);
	CHECK_RC(cj_open(store, NULL, &db), CJ_STORE);
	CHECK(strstr(cj_last_error(), "another user") != NULL);
	CHECK_OK(cj_open(store, &shared, &db));
	cj_close(db);
}

/* A store whose files this user may read but not write opens read-only:
 * reads work, writes fail with CJ_STORE saying why (the CLI as a user who
 * only has read access). */
TEST(lmdb_read_only) {
	SKIP_UNLESS_LMDB();
	if (geteuid() != 0) {
		note("  skipped: needs root (to run the CLI as another user)\n");
		return;
	}
	CHECK(chmod(t_dir(), 0755) == 0);
	char store[4200];
	snprintf(store, sizeof store, "%s/s", t_dir());
	cj_options o = CJ_OPTIONS_INIT;
	o.file_mode = 0644;
	cj_db *db = NULL;
	CHECK_OK(cj_open(store, &o, &db));
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":1}", 0));
	cj_close(db);
	char *out = NULL, *err = NULL;
	const char *as = "runuser -u nobody --";
	CHECK_INT(t_sh(&out, &err, "%s '%s' --db '%s' list", as, cj(), store), 0);
	CHECK(strstr(out, "\"j\"") != NULL);
	free(out);
	free(err);
	CHECK_INT(t_sh(&out, &err, "%s '%s' --db '%s' get t j", as, cj(), store), 0);
	free(out);
	free(err);
	CHECK_INT(t_sh(&out, &err, "%s '%s' --db '%s' add t k", as, cj(), store), 1);
	CHECK(strstr(err, "read-only") != NULL);
	free(out);
	free(err);
	CHECK_INT(t_sh(&out, &err, "%s '%s' --db '%s' rm t j", as, cj(), store), 1);
	free(out);
	free(err);
	db = t_open_opts(&o);
	(void)db;
	cj_close(db);
}

/* ---- a full file system ----------------------------------------------------------- */

#define FULL_FS_BYTES (8 << 20)

/* Fills the file system of dir: writes a file until ENOSPC. */
static void fill_up(const char *dir) {
	char path[4300];
	snprintf(path, sizeof path, "%s/filler", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	CHECK(fd >= 0);
	static char block[4096];
	while (write(fd, block, sizeof block) > 0) {
	}
	CHECK(errno == ENOSPC);
	while (write(fd, block, 1) > 0) {
	}
	close(fd);
}

/* Removals made while a reader holds its snapshot (each needs a few
 * pages of its own, its counters' leaf too: they come from the store's
 * reserve, which the first removal that meets the full disk releases). */
#define PINNED_REMOVALS 20

struct pin {
	cj_db *db;
	t_gate in, out;
};

static int pin_cb(const cj_job_info *info, void *arg) {
	(void)info;
	struct pin *p = arg;
	t_gate_open(&p->in);
	t_gate_wait(&p->out, 60000);
	return 1;
}

/* Lists jobs, stopping in the middle (snapshot held) until told. */
static void *pin_snapshot(void *arg) {
	struct pin *p = arg;
	cj_list_jobs(p->db, NULL, "t", pin_cb, p);
	return NULL;
}

/* The last error mentions a full disk. */
#define CHECK_FULL()                                                        \
	do {                                                                    \
		if (!strstr(cj_last_error(), "no space left on device"))            \
			t_fail(__FILE__, __LINE__, "not a full disk: %s", cj_last_error()); \
	} while (0)

/* In a mount namespace of its own, on a small tmpfs: 0 passed, 77 no
 * mount possible, else a failure. */
static int full_fs_body(void *arg) {
	(void)arg;
	char dir[4200], store[4300], fresh[4300];
	snprintf(dir, sizeof dir, "%s/fs", t_dir());
	CHECK(mkdir(dir, 0700) == 0);
	char opts[64];
	snprintf(opts, sizeof opts, "size=%d,mode=0700", FULL_FS_BYTES);
	if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", dir, "tmpfs", 0, opts) != 0)
		return 77;
	snprintf(store, sizeof store, "%s/s", dir);
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = NULL;
	CHECK_OK(cj_open(store, &o, &db));
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	static char data[8200];
	memset(data, 'x', sizeof data);
	memcpy(data, "{\"x\":\"", 6);
	strcpy(data + sizeof data - 3, "\"}");
	int n = 0, rc;
	char id[32];
	for (int round = 0; round < 2; round++) {
		/* round 1: the last few blocks filled too, what fits in pages the
		 * store freed before still fits */
		if (round == 1) fill_up(dir);
		for (;;) {
			snprintf(id, sizeof id, "j%d", n);
			if ((rc = cj_add(db, NULL, "t", id, data, 0)) != CJ_OK) break;
			n++;
			CHECK(n < FULL_FS_BYTES / 4096);
		}
		CHECK_RC(rc, CJ_STORE);
		CHECK_FULL();
	}
	note("  %d jobs filled the disk\n", n);
	CHECK(n > 100);
	cj_db *other = NULL; /* a new store on the full disk fails cleanly */
	snprintf(fresh, sizeof fresh, "%s/new", dir);
	CHECK_RC(cj_open(fresh, &o, &other), CJ_STORE);
	CHECK_FULL();
	cj_close(db);

	/* everything committed is there; the store can be emptied */
	CHECK_OK(cj_open(store, &o, &db));
	CHECK_INT(count_jobs(db, "t"), n);
	fill_up(dir); /* not a block left */
	/* a reader holds its snapshot: the pages removals free cannot be used
	 * again before it ends, so they need blocks the disk does not have */
	struct pin p = {db, {{-1, -1}}, {{-1, -1}}};
	t_gate_init(&p.in);
	t_gate_init(&p.out);
	pthread_t th;
	CHECK(pthread_create(&th, NULL, pin_snapshot, &p) == 0);
	CHECK(t_gate_wait(&p.in, 30000) == 0);
	for (int i = 0; i < PINNED_REMOVALS; i++) {
		snprintf(id, sizeof id, "j%d", i);
		CHECK_OK(cj_remove(db, NULL, "t", id));
	}
	t_gate_open(&p.out);
	pthread_join(th, NULL);
	for (int i = PINNED_REMOVALS; i < n; i++) {
		snprintf(id, sizeof id, "j%d", i);
		CHECK_OK(cj_remove(db, NULL, "t", id));
	}
	CHECK_INT(count_jobs(db, "t"), 0);
	cj_close(db);
	return 0;
}

/* On a full file system writes fail with CJ_STORE ("no space left on
 * device") and nothing else: the process lives on, what was committed
 * stays, the store can be emptied, a new store fails to open. */
TEST(lmdb_full_disk) {
	SKIP_UNLESS_LMDB();
	int st = t_join(t_spawn(full_fs_body, NULL), 120000);
	if (st == 77) {
		note("  skipped: cannot mount a tmpfs in a private mount namespace (needs root)\n");
		return;
	}
	CHECK_INT(st, 0);
}

/* ---- a PostgreSQL server that stops answering, or is down -------------------------- */

/* Waits for pid without failing the case (so that the caller can clean up
 * first): its exit status, 128+signal, or -1 (killed after timeout_ms). */
static int join_quietly(int pid, int64_t timeout_ms) {
	int64_t end = t_now_ms() + timeout_ms;
	int st;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (t_now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		sleep_ms(20);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs body(url) in a child against a private server, stopping the server
 * after (whatever the child did to it). */
static void with_server(int (*body)(void *), const char *params, int64_t timeout_ms) {
	char url[4400], base[4096];
	if (pg_private_start(base, sizeof base) != 0) {
		note("  skipped: scripts/pg.sh not found (set CJ_PG_SH)\n");
		return;
	}
	snprintf(url, sizeof url, "%s&%s", base, params);
	int st = join_quietly(t_spawn(body, url), timeout_ms);
	pg_private_stop();
	CHECK_INT(st, 0);
}

#define SKIP_UNLESS_PG()                                                    \
	do {                                                                    \
		if (t_is_lmdb()) {                                                  \
			note("  skipped: PostgreSQL engine only\n");                    \
			return;                                                         \
		}                                                                   \
	} while (0)

#define DEADLINE_MS 1500

static int deadline_body(void *arg) {
	const char *url = arg;
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = NULL, *other = NULL;
	CHECK_OK(cj_open(url, &o, &db));
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_add(db, NULL, "t", "a", NULL, 0));
	pg_private_signal(SIGSTOP);
	/* a statement on a pooled connection, and a new connection */
	int64_t t0 = t_now_ms();
	CHECK_RC(cj_add(db, NULL, "t", "b", NULL, 0), CJ_STORE);
	CHECK(strstr(cj_last_error(), "no answer") != NULL);
	int64_t took = t_now_ms() - t0;
	t0 = t_now_ms();
	CHECK_RC(cj_open(url, &o, &other), CJ_STORE);
	CHECK(strstr(cj_last_error(), "no answer") != NULL);
	int64_t took_open = t_now_ms() - t0;
	note("  with the server stopped: a call failed after %lld ms, an open after %lld ms "
	     "(deadline %d ms)\n", (long long)took, (long long)took_open, DEADLINE_MS);
	CHECK(took >= DEADLINE_MS && took < 20000);
	CHECK(took_open >= DEADLINE_MS && took_open < 20000);
	/* once it answers again, so does the store */
	pg_private_signal(SIGCONT);
	CHECK_OK(cj_add(db, NULL, "t", "b", NULL, 0));
	CHECK_INT(state_of(db, "t", "a"), CJ_PENDING);
	cj_close(db);
	return 0;
}

/* A server that stops answering (SIGSTOP) fails a call with CJ_STORE
 * after deadline_ms, on an open connection and when connecting; the
 * store works again once the server does. */
TEST(pg_deadline) {
	SKIP_UNLESS_PG();
	char params[64];
	snprintf(params, sizeof params, "schema=dl&deadline_ms=%d", DEADLINE_MS);
	with_server(deadline_body, params, 90000);
}

struct idle_arg {
	const char *url;
	t_gate ready;
};

/* An idle process: monitor on, a type, a subscription; then nothing. */
static int idle_body(void *arg) {
	struct idle_arg *a = arg;
	cj_db *db = NULL;
	CHECK_OK(cj_open(a->url, NULL, &db));
	CHECK_OK(cj_set_type_timeout(db, "t", 1));
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_sub *sub = sub_on(db, "t", "j");
	(void)sub;
	t_gate_open(&a->ready);
	stall_forever();
}

#define IDLE_MEASURE_MS 5000

/* With the server down, an idle process with an open handle (monitor,
 * notifier, listener) uses (almost) no CPU: its threads back off. */
TEST(pg_idle_when_server_down) {
	SKIP_UNLESS_PG();
	char base[4096], url[4200];
	if (pg_private_start(base, sizeof base) != 0) {
		note("  skipped: scripts/pg.sh not found (set CJ_PG_SH)\n");
		return;
	}
	snprintf(url, sizeof url, "%s&schema=idle", base);
	struct idle_arg a = {url, {{-1, -1}}};
	t_gate_init(&a.ready);
	int pid = t_spawn(idle_body, &a);
	int ready = t_gate_wait(&a.ready, 60000);
	pg_private_stop();
	sleep_ms(1000);
	int64_t c0 = proc_cpu_ms(pid);
	sleep_ms(IDLE_MEASURE_MS);
	int64_t c1 = proc_cpu_ms(pid);
	kill(pid, SIGKILL);
	join_quietly(pid, 10000);
	CHECK(ready == 0);
	CHECK(c0 >= 0 && c1 >= 0);
	note("  idle with the server down: %lld ms of CPU in %d ms\n", (long long)(c1 - c0),
	     IDLE_MEASURE_MS);
	CHECK(c1 - c0 < IDLE_MEASURE_MS / 20); /* under 5% of a core */
}

TEST_MAIN(ENTRY(sched_time_limit), ENTRY(cli_sched_time_limit), ENTRY(huge_timeouts),
          ENTRY(utf8_types_and_ids), ENTRY(url_redact), ENTRY(open_hides_password),
          ENTRY(lmdb_links_refused), ENTRY(lmdb_shared_directory), ENTRY(lmdb_read_only),
          ENTRY(lmdb_full_disk), ENTRY(pg_deadline), ENTRY(pg_idle_when_server_down))
