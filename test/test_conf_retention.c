/*
 * Conformance: retention of finished and dead jobs (include/couchjobs.h
 * "Retention of finished and dead jobs"): the types' limits, cj_prune, and
 * the activity monitors removing what the limits say, in batches, while
 * processors in other processes accept and finish jobs.
 *
 * Waits for the monitors are event-driven (cj_changes_wait) with generous
 * bounds. Public API only; the store comes from t_open() / t_url(). A
 * prune's race with a removal, which needs a hold point, is in
 * test_prune_race.c.
 */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

static int64_t epoch_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static cj_db *open_nomonitor(void) {
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	return t_open_opts(&o);
}

static cj_retention limits(int64_t keep_ms, int64_t keep_max, int64_t dead_ms,
                           int64_t dead_max) {
	cj_retention r = {keep_ms, keep_max, dead_ms, dead_max};
	return r;
}

/* Adds jobs type/PREFIX000.. (n of them, from first) in one transaction. */
static void add_many(cj_db *db, const char *type, const char *prefix, int first, int n) {
	cj_tx *tx;
	char id[64];
	CHECK_OK(cj_tx_begin(db, &tx));
	for (int i = first; i < first + n; i++) {
		snprintf(id, sizeof id, "%s%04d", prefix, i);
		CHECK_OK(cj_add(db, tx, type, id, NULL, 0));
	}
	CHECK_OK(cj_tx_commit(tx));
}

/* Takes every pending job of type (in id order) and finishes them (or
 * fails them: dead) in one transaction; returns how many. */
static size_t end_all(cj_db *db, const char *type, int fail) {
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	static cj_job *jobs[CJ_ACCEPT_MAX];
	size_t n = 0, total = 0;
	o.timeout_ms = 0;
	for (;;) {
		int rc = cj_accept_many(db, type, &o, CJ_ACCEPT_MAX, jobs, NULL, &n);
		if (rc == CJ_NOT_FOUND) return total;
		CHECK_OK(rc);
		cj_tx *tx;
		CHECK_OK(cj_tx_begin(db, &tx));
		for (size_t i = 0; i < n; i++) {
			CHECK_OK(fail ? cj_fail(db, tx, jobs[i], NULL) : cj_finish(db, tx, jobs[i], NULL));
			cj_job_free(jobs[i]);
		}
		CHECK_OK(cj_tx_commit(tx));
		total += n;
	}
}

/* Finishes (or fails) the pending job type/id. */
static void end_one(cj_db *db, const char *type, const char *id, int fail) {
	cj_job *job = take_id(db, type, id);
	CHECK_OK(fail ? cj_fail(db, NULL, job, NULL) : cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
}

struct census {
	size_t n[8]; /* by cj_state */
};

static int census_cb(const cj_job_info *info, void *arg) {
	struct census *c = arg;
	if (info->state >= 0 && info->state < 8) c->n[info->state]++;
	return 0;
}

static struct census census(cj_db *db, const char *type) {
	struct census c;
	memset(&c, 0, sizeof c);
	CHECK_OK(cj_list_jobs(db, NULL, type, census_cb, &c));
	return c;
}

/* Waits until type has `finished` finished and `dead` dead jobs: woken by
 * each commit that changes a job, within bound_ms. */
static void wait_census(cj_db *db, const char *type, size_t finished, size_t dead,
                        int64_t bound_ms) {
	int64_t end = t_now_ms() + bound_ms;
	for (;;) {
		uint64_t token;
		CHECK_OK(cj_changes_token(db, &token));
		struct census c = census(db, type);
		if (c.n[CJ_FINISHED] == finished && c.n[CJ_DEAD] == dead) return;
		int64_t left = end - t_now_ms();
		if (left <= 0)
			t_fail(__FILE__, __LINE__, "type %s: %zu finished and %zu dead after %lld ms, "
			       "want %zu and %zu", type, c.n[CJ_FINISHED], c.n[CJ_DEAD],
			       (long long)bound_ms, finished, dead);
		int rc = cj_changes_wait(db, token, left, NULL);
		CHECK(rc == CJ_OK || rc == CJ_TIMEOUT);
	}
}

static int exists(cj_db *db, const char *type, const char *id) {
	cj_job_info info;
	int rc = cj_get_job(db, NULL, type, id, &info);
	CHECK(rc == CJ_OK || rc == CJ_NOT_FOUND);
	if (rc == CJ_OK) cj_job_info_clear(&info);
	return rc == CJ_OK;
}

/* Checks that exactly the jobs PREFIX{from..to-1} of type are gone among
 * PREFIX{0..n-1}. */
static void check_gone(int line, cj_db *db, const char *type, const char *prefix, int n,
                       int from, int to) {
	char id[64];
	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof id, "%s%04d", prefix, i);
		int want = !(i >= from && i < to);
		if (exists(db, type, id) != want)
			t_fail(__FILE__, line, "job %s %s, want it %s", id, want ? "is gone" : "exists",
			       want ? "kept" : "removed");
	}
}
#define CHECK_GONE(db, type, prefix, n, from, to)                           \
	check_gone(__LINE__, (db), (type), (prefix), (n), (from), (to))

static void check_sound(cj_db *db) {
	uint64_t problems = 1;
	CHECK_OK(cj_verify(db, NULL, NULL, &problems));
	CHECK_INT(problems, 0);
}

/* ---- arguments ---------------------------------------------------------- */

TEST(retention_arguments) {
	cj_db *db = open_typed("t");
	cj_retention r = limits(1000, 5, CJ_KEEP_ALL, 2), got = CJ_RETENTION_INIT;
	cj_retention none = CJ_RETENTION_INIT;
	CHECK_RC(cj_set_type_retention(NULL, "t", &r), CJ_INVALID);
	CHECK_RC(cj_set_type_retention(db, NULL, &r), CJ_INVALID);
	CHECK_RC(cj_set_type_retention(db, "", &r), CJ_INVALID);
	CHECK_RC(cj_set_type_retention(db, "t", NULL), CJ_INVALID);
	CHECK_RC(cj_set_type_retention(db, "t", &none), CJ_INVALID);
	cj_retention bad[] = {limits(-2, 1, 1, 1), limits(1, -5, 1, 1), limits(1, 1, INT64_MIN, 1),
	                      limits(1, 1, 1, -2)};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_RC(cj_set_type_retention(db, "t", &bad[i]), CJ_INVALID);
	CHECK_RC(cj_get_type_retention(db, "t", &got), CJ_NOT_FOUND);
	CHECK_RC(cj_get_type_retention(db, "t", NULL), CJ_INVALID);
	CHECK_RC(cj_get_type_retention(NULL, "t", &got), CJ_INVALID);
	CHECK_RC(cj_clear_type_retention(db, "t"), CJ_NOT_FOUND);
	CHECK_RC(cj_clear_type_retention(db, ""), CJ_INVALID);

	CHECK_OK(cj_set_type_retention(db, "t", &r));
	CHECK_OK(cj_get_type_retention(db, "t", &got));
	CHECK_INT(got.keep_ms, 1000);
	CHECK_INT(got.keep_max, 5);
	CHECK_INT(got.dead_keep_ms, CJ_KEEP_ALL);
	CHECK_INT(got.dead_keep_max, 2);
	/* a bad one changes nothing */
	CHECK_RC(cj_set_type_retention(db, "t", &bad[0]), CJ_INVALID);
	CHECK_OK(cj_get_type_retention(db, "t", &got));
	CHECK_INT(got.keep_max, 5);
	CHECK_OK(cj_clear_type_retention(db, "t"));
	CHECK_RC(cj_get_type_retention(db, "t", &got), CJ_NOT_FOUND);

	/* cj_prune */
	uint64_t n = 9;
	cj_retention all = limits(CJ_KEEP_ALL, 0, CJ_KEEP_ALL, 0);
	CHECK_OK(cj_add(db, NULL, "t", "f", NULL, 0));
	end_one(db, "t", "f", 0);
	CHECK_RC(cj_prune(NULL, "t", &all, &n), CJ_INVALID);
	CHECK_INT(n, 0);
	CHECK_RC(cj_prune(db, "", &all, &n), CJ_INVALID);
	CHECK_RC(cj_prune(db, "t", &none, &n), CJ_INVALID);
	CHECK_RC(cj_prune(db, "t", &bad[1], &n), CJ_INVALID);
	CHECK_RC(cj_prune(db, "t", NULL, &n), CJ_NOT_FOUND); /* no retention */
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_RC(cj_prune(db, "t", &all, &n), CJ_INVALID);
	cj_tx_abort(tx);
	CHECK_INT(state_of(db, "t", "f"), CJ_FINISHED); /* nothing was removed */
	CHECK_OK(cj_prune(db, "t", &all, NULL));
	CHECK(!exists(db, "t", "f"));
	check_sound(db);
	cj_close(db);
}

/* ---- by hand -------------------------------------------------------------- */

/* cj_prune by count and by age, finished and dead, in batches of
 * CJ_PRUNE_BATCH; pending and running jobs stay; observers see removals. */
TEST(prune_by_hand) {
	cj_db *db = open_nomonitor();
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_set_type_timeout(db, "u", 60));
	/* f0000..f1199 finished in id order, over three transactions, so
	 * that each finished no earlier than the one before */
	for (int i = 0; i < 1200; i += 400) {
		add_many(db, "t", "f", i, 400);
		CHECK_INT(end_all(db, "t", 0), 400);
	}
	add_many(db, "t", "d", 0, 3);
	CHECK_INT(end_all(db, "t", 1), 3);
	/* pending (later: the batches below do not take them) and running */
	CHECK_OK(cj_add(db, NULL, "t", "p0000", NULL, 4000000000));
	CHECK_OK(cj_add(db, NULL, "t", "p0001", NULL, 4000000000));
	cj_job *running = take_any_id(db, "t", "p0000");
	add_many(db, "u", "f", 0, 4);
	CHECK_INT(end_all(db, "u", 0), 4);

	/* by count: all but the 1100 newest */
	uint64_t n = 0, token;
	cj_retention r = limits(CJ_KEEP_ALL, 1100, CJ_KEEP_ALL, CJ_KEEP_ALL);
	CHECK_OK(cj_changes_token(db, &token));
	CHECK_OK(cj_prune(db, "t", &r, &n));
	CHECK_INT(n, 100);
	CHECK_OK(cj_changes_wait(db, token, 0, NULL)); /* a change, as cj_remove makes */
	CHECK_GONE(db, "t", "f", 1200, 0, 100);
	/* over several batches: 1100 - 10 of them */
	r.keep_max = 10;
	CHECK_OK(cj_prune(db, "t", &r, &n));
	CHECK_INT(n, 1090);
	CHECK_GONE(db, "t", "f", 1200, 0, 1190);

	/* by age: what finished by a mark goes, what finished 300 ms after it
	 * stays */
	add_many(db, "t", "g", 0, 3);
	CHECK_INT(end_all(db, "t", 0), 3);
	r = limits(3600 * 1000, CJ_KEEP_ALL, CJ_KEEP_ALL, CJ_KEEP_ALL);
	CHECK_OK(cj_prune(db, "t", &r, &n)); /* nothing is an hour old */
	CHECK_INT(n, 0);
	int64_t mark = epoch_ms();
	while (epoch_ms() <= mark + 300) usleep(20 * 1000);
	add_many(db, "t", "h", 0, 2);
	CHECK_INT(end_all(db, "t", 0), 2);
	r.keep_ms = epoch_ms() - mark; /* the cutoff is the mark, or just after */
	CHECK_OK(cj_prune(db, "t", &r, &n));
	CHECK_INT(n, 13);
	CHECK_GONE(db, "t", "f", 1200, 0, 1200);
	CHECK_GONE(db, "t", "g", 3, 0, 3);
	CHECK_GONE(db, "t", "h", 2, 0, 0);
	r.keep_ms = 0; /* all that finished by now */
	CHECK_OK(cj_prune(db, "t", &r, &n));
	CHECK_INT(n, 2);
	CHECK_INT(census(db, "t").n[CJ_FINISHED], 0);

	/* dead jobs have their own limits */
	CHECK_INT(census(db, "t").n[CJ_DEAD], 3);
	r = limits(CJ_KEEP_ALL, CJ_KEEP_ALL, CJ_KEEP_ALL, 1);
	CHECK_OK(cj_prune(db, "t", &r, &n));
	CHECK_INT(n, 2);
	CHECK_GONE(db, "t", "d", 3, 0, 2);
	/* pending and running jobs are never removed, whatever the limits */
	r = limits(0, 0, 0, 0);
	CHECK_OK(cj_prune(db, "t", &r, &n));
	CHECK_INT(n, 1);
	struct census c = census(db, "t");
	CHECK_INT(c.n[CJ_PENDING], 1);
	CHECK_INT(c.n[CJ_RUNNING], 1);
	CHECK_INT(c.n[CJ_FINISHED] + c.n[CJ_DEAD], 0);
	CHECK_INT(census(db, "u").n[CJ_FINISHED], 4); /* another type's are kept */
	/* every type: by limits, or by each type's own retention */
	r = limits(CJ_KEEP_ALL, 3, CJ_KEEP_ALL, CJ_KEEP_ALL);
	CHECK_OK(cj_prune(db, NULL, &r, &n));
	CHECK_INT(n, 1);
	CHECK_GONE(db, "u", "f", 4, 0, 1);
	r.keep_max = 1;
	CHECK_OK(cj_set_type_retention(db, "u", &r));
	CHECK_OK(cj_prune(db, NULL, NULL, &n));
	CHECK_INT(n, 2);
	CHECK_OK(cj_prune(db, "u", NULL, &n));
	CHECK_INT(n, 0);
	CHECK_GONE(db, "u", "f", 4, 0, 3);
	/* a job that ends again after it was pruned is counted again */
	CHECK_OK(cj_finish(db, NULL, running, NULL));
	cj_job_free(running);
	CHECK_OK(cj_add(db, NULL, "u", "f0003", NULL, 0)); /* re-enqueued: leaves the index */
	CHECK_INT(census(db, "u").n[CJ_FINISHED], 0);
	check_sound(db);
	cj_close(db);
}

/* ---- the monitor ---------------------------------------------------------- */

/* A handle's monitor applies a type's retention: exactly the oldest go, by
 * count at once, by age when they expire; dead jobs by their own limits. */
TEST(retention_monitor) {
	cj_db *db = t_open();
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	add_many(db, "t", "f", 0, 12);
	for (int i = 0; i < 12; i++) {
		char id[16];
		snprintf(id, sizeof id, "f%04d", i);
		end_one(db, "t", id, 0);
	}
	add_many(db, "t", "d", 0, 3);
	CHECK_INT(end_all(db, "t", 1), 3);
	add_many(db, "t", "p", 0, 2);
	cj_retention r = limits(CJ_KEEP_ALL, 5, CJ_KEEP_ALL, 1);
	CHECK_OK(cj_set_type_retention(db, "t", &r));
	wait_census(db, "t", 5, 1, 30000);
	CHECK_GONE(db, "t", "f", 12, 0, 7);
	CHECK_GONE(db, "t", "d", 3, 0, 2);
	/* each finish over the limit wakes it */
	for (int i = 12; i < 15; i++) {
		char id[16];
		snprintf(id, sizeof id, "f%04d", i);
		CHECK_OK(cj_add(db, NULL, "t", id, NULL, 0));
		end_one(db, "t", id, 0);
	}
	wait_census(db, "t", 5, 1, 30000);
	CHECK_GONE(db, "t", "f", 15, 0, 10);
	/* by age: they expire a second after they finished; so do new ones */
	r = limits(1000, CJ_KEEP_ALL, CJ_KEEP_ALL, CJ_KEEP_ALL);
	CHECK_OK(cj_set_type_retention(db, "t", &r));
	wait_census(db, "t", 0, 1, 30000);
	CHECK_OK(cj_add(db, NULL, "t", "late", NULL, 0));
	end_one(db, "t", "late", 0);
	CHECK_INT(state_of(db, "t", "late"), CJ_FINISHED);
	wait_census(db, "t", 0, 1, 30000);
	/* the pending ones stay */
	CHECK_INT(census(db, "t").n[CJ_PENDING], 2);
	check_sound(db);
	cj_close(db);
}

/* ---- with processors ------------------------------------------------------- */

#define XP_JOBS 300
#define XP_PROCS 3
#define XP_KEEP 25
#define XP_DEAD_KEEP 4

/* A processor: takes jobs of "w" until none comes for a while, fails every
 * seventh (dead: no retry policy) and finishes the others, and logs
 * "F id" / "D id" to its file once that committed. Its handle's monitor
 * prunes as well. */
static int processor(void *arg) {
	int fd = open((const char *)arg, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd < 0) return 2;
	cj_db *db = t_open();
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 3000;
	for (;;) {
		cj_job *job;
		int rc = cj_accept(db, "w", &o, &job, NULL);
		if (rc == CJ_NOT_FOUND) break;
		CHECK_OK(rc);
		int num = atoi(cj_job_id(job) + 1);
		int dead = num % 7 == 0;
		CHECK_OK(dead ? cj_fail(db, NULL, job, NULL) : cj_finish(db, NULL, job, NULL));
		char line[64];
		int len = snprintf(line, sizeof line, "%c %s\n", dead ? 'D' : 'F', cj_job_id(job));
		CHECK(write(fd, line, (size_t)len) == len);
		cj_job_free(job);
	}
	cj_close(db);
	close(fd);
	return 0;
}

/* Processors in other processes take and end jobs while the jobs are
 * added and every handle's monitor prunes: nothing pending or running is
 * ever removed, every job is ended exactly once, and in the end exactly the
 * limits' numbers of finished and dead jobs are kept. */
TEST(retention_with_processors) {
	cj_db *db = t_open();
	CHECK_OK(cj_set_type_timeout(db, "w", 60));
	cj_retention r = limits(CJ_KEEP_ALL, XP_KEEP, CJ_KEEP_ALL, XP_DEAD_KEEP);
	CHECK_OK(cj_set_type_retention(db, "w", &r));
	cj_close(db); /* no handle open across the fork */
	char logs[XP_PROCS][256];
	int pids[XP_PROCS];
	for (int i = 0; i < XP_PROCS; i++) {
		snprintf(logs[i], sizeof logs[i], "%s/proc%d.log", t_dir(), i);
		pids[i] = t_spawn(processor, logs[i]);
	}
	db = t_open();
	/* added in batches while they run: each batch is seen pending */
	for (int i = 0; i < XP_JOBS; i += 30) {
		add_many(db, "w", "j", i, 30);
		CHECK(census(db, "w").n[CJ_PENDING] + census(db, "w").n[CJ_RUNNING] <= XP_JOBS);
	}
	for (int i = 0; i < XP_PROCS; i++) CHECK_INT(t_join(pids[i], 120000), 0);
	/* each job was ended once, by one processor */
	static char ended[XP_JOBS];
	int nfin = 0, ndead = 0;
	for (int i = 0; i < XP_PROCS; i++) {
		FILE *f = fopen(logs[i], "r");
		CHECK(f != NULL);
		char kind, id[64];
		while (fscanf(f, " %c %63s", &kind, id) == 2) {
			int num = atoi(id + 1);
			CHECK(num >= 0 && num < XP_JOBS && !ended[num]);
			ended[num] = kind;
			CHECK_INT(kind == 'D', num % 7 == 0);
			if (kind == 'D') ndead++;
			else nfin++;
		}
		fclose(f);
	}
	CHECK_INT(nfin + ndead, XP_JOBS);
	wait_census(db, "w", XP_KEEP, XP_DEAD_KEEP, 60000);
	struct census c = census(db, "w");
	CHECK_INT(c.n[CJ_PENDING] + c.n[CJ_RUNNING], 0);
	/* every job is accounted for: kept in its ended state, or removed */
	size_t kept = 0;
	for (int i = 0; i < XP_JOBS; i++) {
		char id[16];
		snprintf(id, sizeof id, "j%04d", i);
		cj_job_info info;
		int rc = cj_get_job(db, NULL, "w", id, &info);
		if (rc == CJ_NOT_FOUND) continue;
		CHECK_OK(rc);
		CHECK_INT(info.state, ended[i] == 'D' ? CJ_DEAD : CJ_FINISHED);
		cj_job_info_clear(&info);
		kept++;
	}
	CHECK_INT(kept, XP_KEEP + XP_DEAD_KEEP);
	check_sound(db);
	cj_close(db);
}

/* ---- finishers side by side ---------------------------------------------- */

#define CF_PROCS 4
#define CF_EACH 5
#define CF_KEEP 10

static t_gate cf_go;

/* A finisher without a monitor: takes CF_EACH jobs of "c", and once the
 * gate opens finishes them, each in its own commit, beside the others. */
static int finisher(void *arg) {
	(void)arg;
	cj_db *db = open_nomonitor();
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 30000;
	cj_job *jobs[CF_EACH];
	for (int i = 0; i < CF_EACH; i++) CHECK_OK(cj_accept(db, "c", &o, &jobs[i], NULL));
	CHECK_INT(t_gate_wait(&cf_go, 60000), 0);
	for (int i = 0; i < CF_EACH; i++) {
		CHECK_OK(cj_finish(db, NULL, jobs[i], NULL));
		cj_job_free(jobs[i]);
	}
	cj_close(db);
	return 0;
}

/* A type at its keep_max gets finishes from processes at once: none of
 * them can tell from the count it sees that the type went over, yet the
 * monitor of this handle (theirs have none) is woken, and in the end the
 * type keeps exactly keep_max, those that finished last. */
TEST(retention_concurrent_finishers) {
	cj_db *db = t_open();
	CHECK_OK(cj_set_type_timeout(db, "c", 60));
	cj_retention r = limits(CJ_KEEP_ALL, CF_KEEP, CJ_KEEP_ALL, CJ_KEEP_ALL);
	CHECK_OK(cj_set_type_retention(db, "c", &r));
	add_many(db, "c", "o", 0, CF_KEEP);
	CHECK_INT(end_all(db, "c", 0), CF_KEEP);
	add_many(db, "c", "n", 0, CF_PROCS * CF_EACH);
	cj_close(db); /* no handle open across the fork */
	t_gate_init(&cf_go);
	int pids[CF_PROCS];
	for (int i = 0; i < CF_PROCS; i++) pids[i] = t_spawn(finisher, NULL);
	db = t_open();
	/* every job taken, then all finish at once */
	int64_t end = t_now_ms() + 60000;
	for (;;) {
		uint64_t token;
		CHECK_OK(cj_changes_token(db, &token));
		if (census(db, "c").n[CJ_RUNNING] == CF_PROCS * CF_EACH) break;
		CHECK(t_now_ms() < end);
		int rc = cj_changes_wait(db, token, end - t_now_ms(), NULL);
		CHECK(rc == CJ_OK || rc == CJ_TIMEOUT);
	}
	CHECK_INT(census(db, "c").n[CJ_FINISHED], CF_KEEP);
	for (int i = 0; i < CF_PROCS; i++) t_gate_open(&cf_go); /* a byte each */
	for (int i = 0; i < CF_PROCS; i++) CHECK_INT(t_join(pids[i], 60000), 0);
	t_gate_close(&cf_go);
	wait_census(db, "c", CF_KEEP, 0, 30000);
	CHECK_GONE(db, "c", "o", CF_KEEP, 0, CF_KEEP);
	uint64_t removed = 1;
	CHECK_OK(cj_prune(db, "c", NULL, &removed)); /* nothing over: the monitor was exact */
	CHECK_INT(removed, 0);
	CHECK_INT(census(db, "c").n[CJ_FINISHED], CF_KEEP);
	check_sound(db);
	cj_close(db);
}

TEST_MAIN_VERIFIED(ENTRY(retention_arguments), ENTRY(prune_by_hand),
                   ENTRY(retention_monitor), ENTRY(retention_with_processors),
                   ENTRY(retention_concurrent_finishers))
