/*
 * Conformance: opening stores (include/couchjobs.h "Opening a store").
 *
 * The store_* cases hold for every engine. The lmdb_* cases are about the
 * embedded engine only (its URL forms, directory and files); on any other
 * engine they return at once and say so.
 *
 * Public API only.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

static int exists(const char *path) {
	struct stat st;
	return stat(path, &st) == 0;
}

/* The path of the embedded store under test (t_url() without "lmdb:"). */
static const char *store_path(void) {
	const char *u = t_url();
	return strncmp(u, "lmdb:", 5) == 0 ? u + 5 : u;
}

/* ---- every engine ---------------------------------------------------------------- */

/* Everything survives closing every handle and opening again: types, jobs
 * in each state with their data, schedule and flag, the caller's keys; a
 * job still running can be finished by its processor afterwards. */
TEST(store_reopen_persists) {
	cj_db *db = open_typed("t");
	int64_t when = t_epoch() + 3600;
	CHECK_OK(cj_add(db, NULL, "t", "fin", "{\"v\":\"f\"}", 0));
	cj_job *job = take(db, "t");
	CHECK_OK(cj_finish(db, NULL, job, "{\"v\":\"done\"}"));
	cj_job_free(job);
	CHECK_OK(cj_add(db, NULL, "t", "run", "{\"v\":\"r\"}", 0));
	cj_job *running = take(db, "t");
	CHECK_OK(cj_add(db, NULL, "t", "run", NULL, 0)); /* flag it */
	CHECK_OK(cj_add(db, NULL, "t", "sched", "{\"v\":\"s\"}", when));
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_tx_put(tx, "key", 3, "val", 3));
	CHECK_OK(cj_tx_commit(tx));
	cj_close(db);

	db = t_open();
	int64_t s = 0;
	CHECK_OK(cj_get_type_timeout(db, "t", &s));
	CHECK_INT(s, 60);
	CHECK_INT(state_of(db, "t", "fin"), CJ_FINISHED);
	check_data(db, "t", "fin", "{\"v\":\"done\"}");
	cj_job_info info = {0};
	CHECK_OK(cj_get_job(db, NULL, "t", "run", &info));
	CHECK_INT(info.state, CJ_RUNNING);
	CHECK_INT(info.resubmit, 1);
	cj_job_info_clear(&info);
	CHECK_OK(cj_get_job(db, NULL, "t", "sched", &info));
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_INT(info.sched_time, when);
	cj_job_info_clear(&info);
	CHECK_OK(cj_tx_begin(db, &tx));
	void *v = NULL;
	size_t vl = 0;
	CHECK_OK(cj_tx_get(tx, "key", 3, &v, &vl));
	CHECK_INT(vl, 3);
	CHECK(memcmp(v, "val", 3) == 0);
	cj_free(v);
	cj_tx_abort(tx);
	/* the processor's handle outlives the store handle */
	CHECK_OK(cj_update(db, NULL, running, "{\"v\":\"r2\"}"));
	CHECK_OK(cj_finish(db, NULL, running, NULL));
	CHECK_INT(state_of(db, "t", "run"), CJ_PENDING); /* it was flagged */
	cj_job_free(running);
	cj_close(db);
}

/* Two handles on one store in one process see each other's writes, and
 * closing one leaves the other working. */
TEST(store_two_handles) {
	cj_db *a = t_open(), *b = t_open();
	CHECK_OK(cj_set_type_timeout(a, "t", 60));
	CHECK_OK(cj_add(a, NULL, "t", "from-a", NULL, 0));
	CHECK_INT(state_of(b, "t", "from-a"), CJ_PENDING);
	CHECK_OK(cj_add(b, NULL, "t", "from-b", NULL, 0));
	CHECK_INT(state_of(a, "t", "from-b"), CJ_PENDING);
	cj_close(a);
	CHECK_OK(cj_add(b, NULL, "t", "after", NULL, 0));
	CHECK_INT(state_of(b, "t", "from-a"), CJ_PENDING);
	cj_close(b);
}

static int child_adds(void *arg) {
	(void)arg;
	cj_db *db = NULL;
	if (cj_open(t_url(), NULL, &db) != CJ_OK) return 2;
	int rc = cj_set_type_timeout(db, "t", 60) == CJ_OK &&
	                 cj_add(db, NULL, "t", "child", "{\"pid\":\"other\"}", 0) == CJ_OK
	             ? 0
	             : 3;
	cj_close(db);
	return rc;
}

/* Another process's commits are seen. */
TEST(store_other_process) {
	int pid = t_spawn(child_adds, NULL);
	CHECK_INT(t_join(pid, 30000), 0);
	cj_db *db = t_open();
	CHECK_INT(state_of(db, "t", "child"), CJ_PENDING);
	check_data(db, "t", "child", "{\"pid\":\"other\"}");
	cj_close(db);
}

static int child_commits_then_dies(void *arg) {
	const cj_options *o = arg;
	cj_db *db = NULL;
	if (cj_open(t_url(), o, &db) != CJ_OK) return 2;
	if (cj_set_type_timeout(db, "t", 60) != CJ_OK) return 3;
	if (cj_add(db, NULL, "t", "survivor", "{\"v\":1}", 0) != CJ_OK) return 4;
	kill(getpid(), SIGKILL); /* no close, no exit handlers */
	return 5;
}

/* A commit survives the crash of the process that made it, with full and
 * with relaxed sync. */
TEST(store_survives_process_kill) {
	static cj_options full = CJ_OPTIONS_INIT, relaxed = CJ_OPTIONS_INIT;
	relaxed.sync = CJ_SYNC_RELAXED;
	const cj_options *modes[2] = {&full, &relaxed};
	for (int i = 0; i < 2; i++) {
		int pid = t_spawn(child_commits_then_dies, (void *)modes[i]);
		CHECK_INT(t_join(pid, 30000), 128 + SIGKILL);
		cj_db *db = t_open();
		CHECK_INT(state_of(db, "t", "survivor"), CJ_PENDING);
		check_data(db, "t", "survivor", "{\"v\":1}");
		CHECK_OK(cj_remove(db, NULL, "t", "survivor"));
		cj_close(db);
	}
}

/* ---- the embedded engine ---------------------------------------------------------------- */

/* A missing parent directory: CJ_STORE, and nothing is created. */
TEST(lmdb_missing_parent) {
	SKIP_UNLESS_LMDB();
	char url[8400], parent[4200];
	snprintf(parent, sizeof parent, "%s/no-such-dir", t_dir());
	snprintf(url, sizeof url, "lmdb:%s/store", parent);
	cj_db *db = (cj_db *)url;
	CHECK_RC(cj_open(url, NULL, &db), CJ_STORE);
	CHECK(db == NULL);
	CHECK(cj_last_error()[0] != 0);
	CHECK(!exists(parent));
}

/* The directory is created when missing (its parent exists), under both
 * URL forms, which name the same store. */
TEST(lmdb_url_forms) {
	SKIP_UNLESS_LMDB();
	const char *path = store_path();
	CHECK(!exists(path));
	cj_db *db = NULL;
	CHECK_OK(cj_open(path, NULL, &db)); /* plain path */
	CHECK(exists(path));
	CHECK_STR(cj_db_engine(db), "lmdb");
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_add(db, NULL, "t", "plain", NULL, 0));
	cj_close(db);
	char url[4200];
	snprintf(url, sizeof url, "lmdb:%s", path);
	CHECK_OK(cj_open(url, NULL, &db));
	CHECK_INT(state_of(db, "t", "plain"), CJ_PENDING);
	cj_close(db);
}

/* A directory whose data.mdb is garbage: CJ_STORE. */
TEST(lmdb_garbage_store) {
	SKIP_UNLESS_LMDB();
	const char *path = store_path();
	CHECK(mkdir(path, 0700) == 0);
	char file[4200];
	snprintf(file, sizeof file, "%s/data.mdb", path);
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	static char junk[64 * 1024];
	for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 7 + 13);
	CHECK(write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
	close(fd);
	cj_db *db = (cj_db *)junk;
	CHECK_RC(cj_open(t_url(), NULL, &db), CJ_STORE);
	CHECK(db == NULL);
	CHECK(cj_last_error()[0] != 0);
}

/* A URL naming a regular file: CJ_STORE. */
TEST(lmdb_path_is_a_file) {
	SKIP_UNLESS_LMDB();
	const char *path = store_path();
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, "hello\n", 6) == 6);
	close(fd);
	cj_db *db = (cj_db *)&fd;
	CHECK_RC(cj_open(t_url(), NULL, &db), CJ_STORE);
	CHECK(db == NULL);
}

/* Checks the permission bits of every regular file in dir. */
static void check_modes(const char *dir, unsigned want) {
	DIR *d = opendir(dir);
	CHECK(d != NULL);
	struct dirent *e;
	int files = 0;
	while ((e = readdir(d)) != NULL) {
		char p[4200];
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		struct stat st;
		CHECK(stat(p, &st) == 0);
		if (!S_ISREG(st.st_mode)) continue;
		files++;
		if ((st.st_mode & 0777) != want)
			t_fail(__FILE__, __LINE__, "%s has mode %o, want %o", e->d_name,
			       (unsigned)(st.st_mode & 0777), want);
	}
	closedir(d);
	CHECK(files > 0);
}

/* Store files are created 0600 by default (whatever the umask allows), or
 * with cj_options.file_mode. */
TEST(lmdb_file_modes) {
	SKIP_UNLESS_LMDB();
	umask(0);
	cj_db *db = open_typed("t");
	cj_close(db);
	check_modes(store_path(), 0600);

	char url[8400], dir[4200];
	snprintf(dir, sizeof dir, "%s/shared", t_dir());
	snprintf(url, sizeof url, "lmdb:%s", dir);
	cj_options o = CJ_OPTIONS_INIT;
	o.file_mode = 0640;
	CHECK_OK(cj_open(url, &o, &db));
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	cj_close(db);
	check_modes(dir, 0640);
}

static char *big_object(size_t len, int seed) {
	char *s = malloc(len + 1);
	CHECK(s != NULL);
	memcpy(s, "{\"a\":\"", 6);
	for (size_t i = 6; i < len - 2; i++) s[i] = (char)('a' + (int)((i * 31 + (size_t)seed) % 26));
	memcpy(s + len - 2, "\"}", 3);
	return s;
}

static int big_tx_fn(cj_tx *tx, void *arg) {
	const char *val = arg;
	for (int i = 0; i < 16; i++) {
		char k[16];
		int kl = snprintf(k, sizeof k, "big%02d", i);
		int rc = cj_tx_put(tx, k, (size_t)kl, val, 512 * 1024);
		if (rc) return rc;
	}
	return 0;
}

/* A store opened with a 1 MiB map takes 20 MiB of jobs and 8 MiB in one
 * transaction of the caller's: the map grows. */
TEST(lmdb_map_grows) {
	SKIP_UNLESS_LMDB();
	cj_options o = CJ_OPTIONS_INIT;
	o.map_size = 1 << 20;
	o.sync = CJ_SYNC_RELAXED;
	cj_db *db = t_open_opts(&o);
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	const size_t len = 512 * 1024;
	for (int i = 0; i < 40; i++) {
		char id[16];
		snprintf(id, sizeof id, "j%02d", i);
		char *d = big_object(len, i);
		CHECK_OK(cj_add(db, NULL, "t", id, d, 0));
		free(d);
	}
	char *val = big_object(len, 99);
	CHECK_OK(cj_transact(db, big_tx_fn, val));
	cj_close(db);

	db = t_open_opts(&o);
	for (int i = 0; i < 40; i += 13) {
		char id[16];
		snprintf(id, sizeof id, "j%02d", i);
		char *want = big_object(len, i), *d = NULL;
		CHECK_OK(cj_get_job_data(db, NULL, "t", id, &d));
		CHECK(d != NULL && strcmp(d, want) == 0);
		cj_free(d);
		free(want);
	}
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	void *v = NULL;
	size_t vl = 0;
	CHECK_OK(cj_tx_get(tx, "big15", 5, &v, &vl));
	CHECK_INT(vl, 512 * 1024);
	CHECK(memcmp(v, val, vl) == 0);
	cj_free(v);
	cj_tx_abort(tx);
	free(val);
	cj_close(db);
}

/* A batch of cj_accept_many that runs out of map part-way (after it has
 * taken some jobs) is run again in a grown map, as a single call is: it
 * returns its jobs, not CJ_STORE. Each round adds 64 jobs of 3 KiB to a
 * store opened with a 64 KiB map and takes them in one batch, so that over
 * the rounds the map fills in every place of a batch. */
TEST(lmdb_map_grows_in_a_batch) {
	SKIP_UNLESS_LMDB();
	cj_options o = CJ_OPTIONS_INIT;
	o.map_size = 64 * 1024;
	o.sync = CJ_SYNC_RELAXED;
	o.no_monitor = 1;
	cj_db *db = t_open_opts(&o);
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	char *d = big_object(3 * 1024, 7);
	for (int round = 0; round < 40; round++) {
		for (int i = 0; i < 64; i++) {
			char id[32];
			snprintf(id, sizeof id, "r%d-%d", round, i);
			CHECK_OK(cj_add(db, NULL, "t", id, d, 0));
		}
		size_t got = 0;
		while (got < 64) {
			cj_job *jobs[64];
			size_t n = 0;
			cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
			ao.timeout_ms = 0;
			CHECK_OK(cj_accept_many(db, "t", &ao, 64 - got, jobs, NULL, &n));
			CHECK(n > 0);
			for (size_t j = 0; j < n; j++) {
				CHECK_OK(cj_finish(db, NULL, jobs[j], NULL));
				cj_job_free(jobs[j]);
			}
			got += n;
		}
	}
	free(d);
	cj_close(db);
}

/* ---- lmdb_open_while_map_grows -------------------------------------------- */

#define GROW_ADDERS 4
#define GROW_JOBS 48
#define GROW_ROUNDS 6

static char grow_url[PATH_MAX + 32];

static cj_options grow_opts(void) {
	cj_options o = CJ_OPTIONS_INIT;
	o.map_size = 64 * 1024;
	o.sync = CJ_SYNC_RELAXED;
	o.no_monitor = 1;
	return o;
}

static int grow_adder(void *arg) {
	int n = (int)(intptr_t)arg;
	cj_options o = grow_opts();
	cj_db *db = NULL;
	CHECK_OK(cj_open(grow_url, &o, &db));
	char *d = big_object(8 * 1024, n);
	for (int i = 0; i < GROW_JOBS; i++) {
		char id[32];
		snprintf(id, sizeof id, "a%d-%d", n, i);
		CHECK_OK(cj_add(db, NULL, "t", id, d, 0));
	}
	free(d);
	cj_close(db);
	return 0;
}

/* Opens made while other processes grow the map (from 64 KiB, so it grows
 * again and again) all succeed: the first transaction of an open adopts a
 * size that another process set since the environment was opened. */
TEST(lmdb_open_while_map_grows) {
	SKIP_UNLESS_LMDB();
	int opens = 0;
	for (int r = 0; r < GROW_ROUNDS; r++) {
		snprintf(grow_url, sizeof grow_url, "lmdb:%s/grow%d", t_dir(), r);
		cj_options o = grow_opts();
		cj_db *db = NULL;
		CHECK_OK(cj_open(grow_url, &o, &db));
		CHECK_OK(cj_set_type_timeout(db, "t", 60));
		cj_close(db);
		int pid[GROW_ADDERS];
		for (int i = 0; i < GROW_ADDERS; i++)
			pid[i] = t_spawn(grow_adder, (void *)(intptr_t)i);
		for (int live = GROW_ADDERS; live > 0;) {
			CHECK_OK(cj_open(grow_url, &o, &db));
			cj_close(db);
			opens++;
			live = 0;
			for (int i = 0; i < GROW_ADDERS; i++) {
				if (pid[i] < 0) continue;
				int st;
				pid_t w = waitpid(pid[i], &st, WNOHANG);
				if (w == 0) {
					live++;
				} else {
					CHECK(w == pid[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0);
					pid[i] = -1;
				}
			}
		}
	}
	note("  %d opens while the map grew\n", opens);
}

TEST_MAIN(ENTRY(store_reopen_persists), ENTRY(store_two_handles), ENTRY(store_other_process),
          ENTRY(store_survives_process_kill),
          ENTRY(lmdb_missing_parent), ENTRY(lmdb_url_forms), ENTRY(lmdb_garbage_store),
          ENTRY(lmdb_path_is_a_file), ENTRY(lmdb_file_modes), ENTRY(lmdb_map_grows), ENTRY(lmdb_map_grows_in_a_batch),
          ENTRY(lmdb_open_while_map_grows))
