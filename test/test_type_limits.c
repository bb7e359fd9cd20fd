/*
 * Per-type concurrency and rate limits (include/couchjobs.h "Per-type
 * concurrency and rate limits"): validation, the concurrency limit never
 * exceeded by eight processors in eight processes (proved from their log),
 * acceptors blocked on a full type woken by every way a run ends, the
 * rate within its bound over every window, cj_accept_types() skipping
 * a limited type, and the end of a run waking acceptors (the wake file's
 * word) only where a limit on running jobs can have left one waiting.
 *
 * Every child opens its own cj_db after the fork; the parent never holds an
 * open handle while it forks. Public API only; the store comes from
 * t_open() / t_url(). Each case ends with the store's invariants checked.
 */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------------- */

static int64_t mono_us(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t real_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static cj_type_limits limits(int64_t max_running, int64_t rate, int64_t period_ms) {
	cj_type_limits l = CJ_TYPE_LIMITS_INIT;
	l.max_running = max_running;
	l.rate = rate;
	l.rate_period_ms = period_ms;
	return l;
}

static void set_limits(const char *type, int64_t max_running, int64_t rate,
                       int64_t period_ms) {
	cj_db *db = open_nomon();
	cj_type_limits l = limits(max_running, rate, period_ms);
	CHECK_OK(cj_set_type_limits(db, type, &l));
	cj_close(db);
}

static void add_jobs(const char *type, int n) {
	cj_db *db = open_nomon();
	for (int i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof id, "j%03d", i);
		CHECK_OK(cj_add(db, NULL, type, id, NULL, 0));
	}
	cj_close(db);
}

/* The shared log: one line per event, appended under flock. */
static char log_path[4096];

static void log_line(const char *fmt, long long a, long long b) {
	int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK(flock(fd, LOCK_EX) == 0);
	char line[128];
	int n = snprintf(line, sizeof line, fmt, a, b);
	CHECK(write(fd, line, (size_t)n) == n);
	CHECK(flock(fd, LOCK_UN) == 0);
	close(fd);
}

static void log_start(const char *name) {
	snprintf(log_path, sizeof log_path, "%s/%s.log", t_dir(), name);
	unlink(log_path);
}

/* ---- validation -------------------------------------------------------------- */

TEST(limits_bad_arguments) {
	cj_db *db = open_typed("v");
	cj_type_limits l = limits(3, 0, 0), got;
	CHECK_RC(cj_get_type_limits(db, "v", &got), CJ_NOT_FOUND);
	CHECK_RC(cj_clear_type_limits(db, "v"), CJ_NOT_FOUND);
	CHECK_RC(cj_set_type_limits(NULL, "v", &l), CJ_INVALID);
	CHECK_RC(cj_set_type_limits(db, NULL, &l), CJ_INVALID);
	CHECK_RC(cj_set_type_limits(db, "", &l), CJ_INVALID);
	CHECK_RC(cj_set_type_limits(db, "v", NULL), CJ_INVALID);
	CHECK_RC(cj_get_type_limits(db, "v", NULL), CJ_INVALID);
	CHECK_RC(cj_get_type_limits(NULL, "v", &got), CJ_INVALID);
	CHECK_RC(cj_clear_type_limits(db, "\xff"), CJ_INVALID);
	const cj_type_limits bad[] = {
		limits(-1, 0, 0),
		limits(CJ_MAX_RUNNING_LIMIT + 1, 0, 0),
		limits(0, 1, 0),
		limits(0, 0, 1000),
		limits(0, -1, 1000),
		limits(0, 1, -1),
		limits(0, CJ_MAX_RATE + 1, 1000),
		limits(0, 1, CJ_MAX_RATE_PERIOD_MS + 1),
		limits(INT64_MIN, INT64_MAX, INT64_MAX),
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_RC(cj_type_limits_check(&bad[i]), CJ_INVALID);
		char detail[256];
		snprintf(detail, sizeof detail, "%s", cj_last_error());
		CHECK_RC(cj_set_type_limits(db, "v", &bad[i]), CJ_INVALID);
		CHECK(strlen(detail) > 0);
		CHECK_STR(cj_last_error(), detail); /* the check says what the call says */
		CHECK_RC(cj_get_type_limits(db, "v", &got), CJ_NOT_FOUND); /* nothing written */
	}
	/* both ends of every range */
	const cj_type_limits good[] = {
		limits(0, 0, 0),
		limits(1, 1, 1),
		limits(CJ_MAX_RUNNING_LIMIT, CJ_MAX_RATE, CJ_MAX_RATE_PERIOD_MS),
		limits(3, 10, 1000),
	};
	CHECK_RC(cj_type_limits_check(NULL), CJ_INVALID);
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		CHECK_OK(cj_type_limits_check(&good[i]));
		CHECK_OK(cj_set_type_limits(db, "v", &good[i]));
		CHECK_OK(cj_get_type_limits(db, "v", &got));
		CHECK_INT(got.max_running, good[i].max_running);
		CHECK_INT(got.rate, good[i].rate);
		CHECK_INT(got.rate_period_ms, good[i].rate_period_ms);
	}
	CHECK_RC(cj_set_type_limits(db, "v", &bad[0]), CJ_INVALID);
	CHECK_OK(cj_get_type_limits(db, "v", &got)); /* the last good ones stay */
	CHECK_INT(got.max_running, 3);
	CHECK_OK(cj_clear_type_limits(db, "v"));
	CHECK_RC(cj_get_type_limits(db, "v", &got), CJ_NOT_FOUND);
	CHECK_RC(cj_clear_type_limits(db, "v"), CJ_NOT_FOUND);
	/* limits of 0 are none: jobs are taken as without */
	l = limits(0, 0, 0);
	CHECK_OK(cj_set_type_limits(db, "v", &l));
	CHECK_OK(cj_add(db, NULL, "v", "a", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "v", "b", NULL, 0));
	cj_job *a = take(db, "v"), *b = take(db, "v");
	cj_job_free(a);
	cj_job_free(b);
	cj_close(db);
}

/* ---- the concurrency limit across processes ------------------------------------ */

#define CONC_PROCS 8
#define CONC_LIMIT 3
#define CONC_JOBS 30

static int conc_processor(void *arg) {
	(void)arg;
	cj_db *db = t_open();
	int64_t give_up = t_now_ms() + 120000;
	for (;;) {
		cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
		o.timeout_ms = 500;
		cj_job *job = NULL;
		int rc = cj_accept(db, "conc", &o, &job, NULL);
		if (rc == CJ_NOT_FOUND) {
			/* none pending: done once every job is finished */
			cj_job_info info;
			int finished = 0;
			for (int i = 0; i < CONC_JOBS; i++) {
				char id[32];
				snprintf(id, sizeof id, "j%03d", i);
				CHECK_OK(cj_get_job(db, NULL, "conc", id, &info));
				finished += info.state == CJ_FINISHED;
				cj_job_info_clear(&info);
			}
			if (finished == CONC_JOBS) break;
			CHECK(t_now_ms() < give_up);
			continue;
		}
		CHECK_OK(rc);
		log_line("S %lld %lld\n", (long long)mono_us(), (long long)getpid());
		sleep_ms(60);
		log_line("E %lld %lld\n", (long long)mono_us(), (long long)getpid());
		CHECK_OK(cj_finish(db, NULL, job, NULL));
		cj_job_free(job);
	}
	cj_close(db);
	return 0;
}

TEST(concurrency_never_exceeded_across_processes) {
	setup_type("conc", 60);
	set_limits("conc", CONC_LIMIT, 0, 0);
	add_jobs("conc", CONC_JOBS);
	log_start("conc");
	int pid[CONC_PROCS];
	for (int i = 0; i < CONC_PROCS; i++) pid[i] = t_spawn(conc_processor, NULL);
	for (int i = 0; i < CONC_PROCS; i++) check_exit(pid[i], 180000, 0);
	/* each start is logged after its accept committed, each end before its
	 * finish: the logged runs lie within the store's, so their overlap is
	 * at most the store's */
	FILE *f = fopen(log_path, "r");
	CHECK(f != NULL);
	char kind;
	long long t, who;
	int running = 0, most = 0, starts = 0;
	while (fscanf(f, " %c %lld %lld", &kind, &t, &who) == 3) {
		CHECK(kind == 'S' || kind == 'E');
		running += kind == 'S' ? 1 : -1;
		starts += kind == 'S';
		if (running > most) most = running;
		CHECK(running >= 0);
	}
	fclose(f);
	note("  %d runs by %d processes, at most %d at once (limit %d)\n", starts, CONC_PROCS,
	     most, CONC_LIMIT);
	CHECK_INT(starts, CONC_JOBS);
	CHECK_INT(running, 0);
	CHECK(most <= CONC_LIMIT);
	CHECK_INT(most, CONC_LIMIT);
}

/* ---- an acceptor blocked on a full type --------------------------------------- */

struct blocked_arg {
	const char *type;
	chan to_parent; /* "about to block", then the job's number (or -1) */
};

static int blocked_acceptor(void *p) {
	struct blocked_arg *a = p;
	cj_db *db = t_open();
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 60000;
	cj_job *job = NULL;
	chan_put(&a->to_parent, 0);
	int rc = cj_accept(db, a->type, &o, &job, NULL);
	chan_put(&a->to_parent, rc == CJ_OK ? atoi(cj_job_id(job) + 1) : -1);
	if (job) CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	cj_close(db);
	return 0;
}

enum run_end { END_FINISH, END_FAIL, END_REMOVE, END_LOST, END_RAISE, END_CLEAR };
static const char *const end_names[] = {"finish", "fail", "remove", "lost lease",
                                        "limit raised", "limits cleared"};

/* Type full (limit 1, job j000 running): a processor in another process
 * blocks; ending the run by `end` must wake it with j001. */
/* A handle with monitors only when the case needs a lease taken back. */
static cj_db *open_for(enum run_end end) {
	if (end == END_LOST) return t_open();
	return open_nomon();
}

static void check_slot_wakes(const char *type, enum run_end end) {
	setup_type(type, end == END_LOST ? 1 : 60);
	set_limits(type, 1, 0, 0);
	add_jobs(type, 2);
	struct blocked_arg a = {type, {{-1, -1}}};
	chan_init(&a.to_parent);
	cj_db *db = open_for(end);
	cj_job *held = take_id(db, type, "j000");
	cj_close(db); /* no handle open across the fork */
	int pid = t_spawn(blocked_acceptor, &a);
	chan_get(&a.to_parent, 30000);
	sleep_ms(300); /* it is blocked by now, or took j001 wrongly */
	db = open_for(end);
	CHECK_INT(state_of(db, type, "j001"), CJ_PENDING); /* the limit held it back */
	int64_t t0 = t_now_ms();
	cj_type_limits l = limits(2, 0, 0);
	switch (end) {
	case END_FINISH: CHECK_OK(cj_finish(db, NULL, held, NULL)); break;
	case END_FAIL: CHECK_OK(cj_fail(db, NULL, held, NULL)); break;
	case END_REMOVE: CHECK_OK(cj_remove(db, NULL, type, "j000")); break;
	case END_LOST: break; /* the monitors take it back after a second */
	case END_RAISE: CHECK_OK(cj_set_type_limits(db, type, &l)); break;
	case END_CLEAR: CHECK_OK(cj_clear_type_limits(db, type)); break;
	}
	int64_t got = chan_get(&a.to_parent, 90000), waited = t_now_ms() - t0;
	note("  %s: the blocked acceptor took j%03lld after %lld ms\n", end_names[end],
	     (long long)got, (long long)waited);
	/* woken by the commit, long before its own timeout (60 s) would have
	 * made it look again */
	CHECK(waited < 20000);
	if (end == END_LOST) CHECK(got == 0 || got == 1); /* j000 is pending again too */
	else CHECK_INT(got, 1);
	check_exit(pid, 30000, 0);
	if (end >= END_RAISE) CHECK_OK(cj_finish(db, NULL, held, NULL));
	cj_job_free(held);
	cj_close(db);
	chan_close(&a.to_parent);
}

TEST(blocked_acceptor_woken_by_finish) { check_slot_wakes("wfin", END_FINISH); }
TEST(blocked_acceptor_woken_by_fail) { check_slot_wakes("wfail", END_FAIL); }
TEST(blocked_acceptor_woken_by_remove) { check_slot_wakes("wrm", END_REMOVE); }
TEST(blocked_acceptor_woken_by_lost_lease) { check_slot_wakes("wlost", END_LOST); }
TEST(blocked_acceptor_woken_by_raised_limit) { check_slot_wakes("wraise", END_RAISE); }
TEST(blocked_acceptor_woken_by_cleared_limits) { check_slot_wakes("wclear", END_CLEAR); }

TEST(full_type_timeout_honoured) {
	cj_db *db = open_typed("ft");
	cj_type_limits l = limits(1, 0, 0);
	CHECK_OK(cj_set_type_limits(db, "ft", &l));
	CHECK_OK(cj_add(db, NULL, "ft", "a", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "ft", "b", NULL, 0));
	cj_job *a = take(db, "ft");
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 300;
	cj_job *job = NULL;
	int64_t t0 = t_now_ms();
	int64_t cpu0 = cpu_ms();
	CHECK_RC(cj_accept(db, "ft", &o, &job, NULL), CJ_NOT_FOUND);
	int64_t took = t_now_ms() - t0, cpu = cpu_ms() - cpu0;
	note("  a full type: timed out after %lld ms, %lld ms of CPU\n", (long long)took,
	     (long long)cpu);
	CHECK(job == NULL);
	CHECK(took >= 300);
	CHECK(took < 30000);
	o.timeout_ms = 0;
	CHECK_RC(cj_accept(db, "ft", &o, &job, NULL), CJ_NOT_FOUND);
	CHECK_OK(cj_finish(db, NULL, a, NULL));
	cj_job_free(a);
	cj_job *b = take_id(db, "ft", "b");
	CHECK_OK(cj_finish(db, NULL, b, NULL));
	cj_job_free(b);
	cj_close(db);
}

/* ---- several types, batches ------------------------------------------------------ */

TEST(accept_types_skips_limited_type) {
	cj_db *db = open_typed("hi");
	CHECK_OK(cj_set_type_timeout(db, "lo", 60));
	cj_type_limits l = limits(2, 0, 0);
	CHECK_OK(cj_set_type_limits(db, "hi", &l));
	for (int i = 0; i < 5; i++) {
		char id[16];
		snprintf(id, sizeof id, "h%d", i);
		CHECK_OK(cj_add(db, NULL, "hi", id, NULL, 0));
		snprintf(id, sizeof id, "l%d", i);
		CHECK_OK(cj_add(db, NULL, "lo", id, NULL, 0));
	}
	const char *types[] = {"hi", "lo"};
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 5000;
	/* a batch takes no more of "hi" than its free slots, then "lo" */
	cj_job *jobs[4];
	size_t n = 0;
	CHECK_OK(cj_accept_many_types(db, types, 2, &o, 4, jobs, NULL, &n));
	CHECK_INT(n, 4);
	CHECK_STR(cj_job_type(jobs[0]), "hi");
	CHECK_STR(cj_job_type(jobs[1]), "hi");
	CHECK_STR(cj_job_type(jobs[2]), "lo");
	CHECK_STR(cj_job_type(jobs[3]), "lo");
	/* "hi" is full: single accepts skip it */
	cj_job *j = NULL;
	CHECK_OK(cj_accept_types(db, types, 2, &o, &j, NULL));
	CHECK_STR(cj_job_type(j), "lo");
	CHECK_OK(cj_finish(db, NULL, j, NULL));
	cj_job_free(j);
	/* a slot frees: "hi" comes first again */
	CHECK_OK(cj_finish(db, NULL, jobs[0], NULL));
	CHECK_OK(cj_accept_types(db, types, 2, &o, &j, NULL));
	CHECK_STR(cj_job_type(j), "hi");
	CHECK_OK(cj_finish(db, NULL, j, NULL));
	cj_job_free(j);
	/* cj_accept_many of one type stops at the limit too */
	size_t m = 0;
	cj_job *more[4];
	CHECK_OK(cj_accept_many(db, "hi", &o, 4, more, NULL, &m));
	CHECK_INT(m, 1);
	CHECK_OK(cj_finish(db, NULL, more[0], NULL));
	cj_job_free(more[0]);
	for (int i = 0; i < 4; i++) {
		if (i != 0) CHECK_OK(cj_finish(db, NULL, jobs[i], NULL));
		cj_job_free(jobs[i]);
	}
	cj_close(db);
}

/* ---- the rate limit ------------------------------------------------------------- */

#define RATE 10
#define RATE_PERIOD_MS 500
#define RATE_PROCS 3
#define RATE_RUN_MS 2500

static int rate_processor(void *arg) {
	(void)arg;
	cj_db *db = t_open();
	int64_t end = t_now_ms() + RATE_RUN_MS;
	while (t_now_ms() < end) {
		cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
		o.timeout_ms = end - t_now_ms();
		if (o.timeout_ms < 0) break;
		cj_job *job = NULL;
		int64_t before = real_ms();
		int rc = cj_accept(db, "rate", &o, &job, NULL);
		int64_t after = real_ms();
		if (rc == CJ_NOT_FOUND) break;
		CHECK_OK(rc);
		log_line("%lld %lld\n", (long long)before, (long long)after);
		CHECK_OK(cj_finish(db, NULL, job, NULL));
		cj_job_free(job);
	}
	cj_close(db);
	return 0;
}

struct acc {
	int64_t before, after;
};

static int by_after(const void *x, const void *y) {
	const struct acc *a = x, *b = y;
	return (a->after > b->after) - (a->after < b->after);
}

TEST(rate_within_bound_over_every_window) {
	setup_type("rate", 60);
	set_limits("rate", 0, RATE, RATE_PERIOD_MS);
	add_jobs("rate", 100);
	log_start("rate");
	int pid[RATE_PROCS];
	for (int i = 0; i < RATE_PROCS; i++) pid[i] = t_spawn(rate_processor, NULL);
	for (int i = 0; i < RATE_PROCS; i++) check_exit(pid[i], 60000, 0);
	static struct acc acc[100];
	int n = 0;
	FILE *f = fopen(log_path, "r");
	CHECK(f != NULL);
	long long b, a;
	while (n < 100 && fscanf(f, "%lld %lld", &b, &a) == 2) acc[n++] = (struct acc){b, a};
	fclose(f);
	qsort(acc, (size_t)n, sizeof acc[0], by_after);
	/* the accepts i..j (by their return) each committed within
	 * [min before, after_j]: at most a full bucket plus the refill then */
	int worst_i = 0, worst_j = 0;
	double worst = -1e9;
	for (int i = 0; i < n; i++) {
		int64_t lo = acc[i].before;
		for (int j = i; j < n; j++) {
			if (acc[j].before < lo) lo = acc[j].before;
			double bound = RATE + (double)RATE * (double)(acc[j].after - lo) / RATE_PERIOD_MS;
			double over = (j - i + 1) - bound;
			if (over > worst) {
				worst = over;
				worst_i = i;
				worst_j = j;
			}
		}
	}
	int64_t span = n ? acc[n - 1].after - acc[0].before : 0;
	note("  %d accepts in %lld ms by %d processes (rate %d per %d ms); closest window: "
	     "%d accepts, %.1f under its bound\n", n, (long long)span, RATE_PROCS, RATE,
	     RATE_PERIOD_MS, worst_j - worst_i + 1, -worst);
	CHECK(worst <= 0);
	/* loosely from below: at least half the rate over the run */
	CHECK(n >= RATE * RATE_RUN_MS / RATE_PERIOD_MS / 2);
}

TEST(rate_waits_for_next_token) {
	cj_db *db = open_typed("tok");
	cj_type_limits l = limits(0, 1, 1000);
	CHECK_OK(cj_set_type_limits(db, "tok", &l));
	for (int i = 0; i < 3; i++) {
		char id[8];
		snprintf(id, sizeof id, "t%d", i);
		CHECK_OK(cj_add(db, NULL, "tok", id, NULL, 0));
	}
	int64_t t0 = t_now_ms(); /* before the first token was taken */
	cj_job *a = take(db, "tok");
	/* no token: a short wait times out */
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 200;
	cj_job *job = NULL;
	CHECK_RC(cj_accept(db, "tok", &o, &job, NULL), CJ_NOT_FOUND);
	/* a longer one sleeps until the token is due, without polling */
	o.timeout_ms = 30000;
	int64_t cpu0 = cpu_ms();
	CHECK_OK(cj_accept(db, "tok", &o, &job, NULL));
	int64_t took = t_now_ms() - t0, cpu = cpu_ms() - cpu0;
	note("  the next token came %lld ms after the first was taken, %lld ms of CPU\n",
	     (long long)took, (long long)cpu);
	CHECK(took >= 990); /* a token per second (the clocks' rounding aside) */
	CHECK(took < 20000);
	CHECK_OK(cj_finish(db, NULL, a, NULL));
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(a);
	cj_job_free(job);
	/* the same rate set again keeps the bucket (empty); another refills it */
	CHECK_OK(cj_set_type_limits(db, "tok", &l));
	o.timeout_ms = 0;
	CHECK_RC(cj_accept(db, "tok", &o, &job, NULL), CJ_NOT_FOUND);
	l.rate_period_ms = 2000;
	CHECK_OK(cj_set_type_limits(db, "tok", &l));
	CHECK_OK(cj_accept(db, "tok", &o, &job, NULL));
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	cj_close(db);
}

/* ---- who a run's end wakes ----------------------------------------------------- */

/* The wake file's word of a channel (doc/format.md, "The wake file"):
 * FNV-1a of its name modulo 1023, plus 1; 32 bits in the machine's order. */
static unsigned chan_word(const char *name) {
	uint32_t h = 2166136261u;
	for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
	return 1 + h % 1023;
}

static uint32_t wake_word(const char *name) {
	char path[4096];
	uint32_t v;
	snprintf(path, sizeof path, "%s/store/wake", t_dir());
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(pread(fd, &v, sizeof v, (off_t)chan_word(name) * 4) == (ssize_t)sizeof v);
	close(fd);
	return v;
}

/* Takes the job type/id and ends its run by end (finish or fail): how far
 * the type's run-ended word ("r:" + type) moved meanwhile. */
static uint32_t run_end_moves(cj_db *db, const char *type, const char *id, enum run_end end) {
	char name[64];
	snprintf(name, sizeof name, "r:%s", type);
	cj_job *job = take_id(db, type, id);
	uint32_t before = wake_word(name);
	if (end == END_FINISH) CHECK_OK(cj_finish(db, NULL, job, NULL));
	else CHECK_OK(cj_fail(db, NULL, job, NULL));
	cj_job_free(job);
	return wake_word(name) - before;
}

/* Only an acceptor that found the type's limit on running jobs reached
 * waits for a run to end, and setting or clearing limits wakes those (the
 * cases above): where writers take turns, a run of a type without such a
 * limit ends without a wake-up (a system call on every finish that woke
 * nobody); one of a type with the limit still bumps its word. */
TEST(run_end_wakes_only_where_a_running_limit_is) {
	SKIP_UNLESS_LMDB();
	static const char *const types[] = {"rfree", "rrate", "rcap"};
	for (size_t i = 0; i < 3; i++) {
		char run[64], pend[64];
		snprintf(run, sizeof run, "r:%s", types[i]);
		snprintf(pend, sizeof pend, "p:%s", types[i]);
		/* no other channel these commits notify shares the word */
		CHECK(chan_word(run) != chan_word(pend));
		CHECK(chan_word(run) != chan_word("activity"));
		CHECK(chan_word(run) != chan_word("types"));
		setup_type(types[i], 60);
		add_jobs(types[i], 2);
	}
	set_limits("rrate", 0, 1000, 1000); /* a rate alone fills no slots */
	set_limits("rcap", 5, 0, 0);
	cj_db *db = open_nomon();
	CHECK_INT(run_end_moves(db, "rfree", "j000", END_FINISH), 0);
	CHECK_INT(run_end_moves(db, "rfree", "j001", END_FAIL), 0);
	CHECK_INT(run_end_moves(db, "rrate", "j000", END_FINISH), 0);
	CHECK_INT(run_end_moves(db, "rcap", "j000", END_FINISH), 1);
	CHECK_INT(run_end_moves(db, "rcap", "j001", END_FAIL), 1);
	cj_close(db);
}


/* ---- a slot waiter sharing a wake word with another type's acceptors ---------- */

/* 1 once process pid sleeps in a futex wait (its wchan), within ms; 0 if
 * that cannot be told (a kernel that hides wchan) or did not happen. */
static int futex_sleeper(int pid, int64_t ms) {
	char path[64], w[128];
	snprintf(path, sizeof path, "/proc/%d/wchan", pid);
	for (int64_t end = t_now_ms() + ms; t_now_ms() < end; sleep_ms(5)) {
		FILE *f = fopen(path, "r");
		if (!f) return 0;
		size_t n = fread(w, 1, sizeof w - 1, f);
		fclose(f);
		w[n] = 0;
		if (strstr(w, "futex")) return 1;
	}
	return 0;
}

struct shared_arg {
	const char *type;
	int64_t timeout_ms;
	chan to_parent; /* 0 about to wait, then 1 took a job, -1 none */
};

static int shared_acceptor(void *p) {
	struct shared_arg *a = p;
	cj_db *db = open_nomon();
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = a->timeout_ms;
	cj_job *job = NULL;
	chan_put(&a->to_parent, 0);
	int rc = cj_accept(db, a->type, &o, &job, NULL);
	chan_put(&a->to_parent, rc == CJ_OK ? 1 : -1);
	if (job) CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	cj_close(db);
	return 0;
}

/* "r:st1935" and "p:su" share wake word 666 ("p:st1935" has 355): an
 * acceptor of st1935 blocked on its full type, asleep first, takes the one
 * wake-up that a job of su made pending gives (notify_one); it must hand
 * it on on that word (accept.c's pass_on), not leave su's acceptor asleep
 * until its timeout. */
TEST(slot_waiter_passes_on_another_types_wake_up) {
	SKIP_UNLESS_LMDB();
	setup_type("st1935", 60);
	setup_type("su", 60);
	set_limits("st1935", 1, 0, 0);
	add_jobs("st1935", 2);
	cj_db *db = open_nomon();
	cj_job *held = take_id(db, "st1935", "j000");
	cj_close(db);
	struct shared_arg x = {"st1935", 180000, {{-1, -1}}}, y = {"su", 60000, {{-1, -1}}};
	chan_init(&x.to_parent);
	chan_init(&y.to_parent);
	/* st1935's acceptor sleeps first: the kernel wakes a word's sleepers
	 * in the order they came (where it cannot be seen, the order may be
	 * the other one and the case then passes whatever pass_on does) */
	int px = t_spawn(shared_acceptor, &x);
	chan_get(&x.to_parent, 30000);
	int seen = futex_sleeper(px, 30000);
	int py = t_spawn(shared_acceptor, &y);
	chan_get(&y.to_parent, 30000);
	seen &= futex_sleeper(py, 30000);
	if (!seen) {
		note("  the acceptors' sleep cannot be seen in /proc: waiting 300 ms\n");
		sleep_ms(300);
	}
	db = open_nomon();
	int64_t t0 = t_now_ms();
	CHECK_OK(cj_add(db, NULL, "su", "u1", NULL, 0));
	int64_t got = chan_get(&y.to_parent, 90000), waited = t_now_ms() - t0;
	note("  su's acceptor: %s after %lld ms\n", got == 1 ? "took u1" : "took nothing",
	     (long long)waited);
	CHECK_INT(got, 1);
	/* woken by the commit, long before its own timeout (60 s) would have
	 * made it look again */
	CHECK(waited < 20000);
	check_exit(py, 30000, 0);
	CHECK_OK(cj_finish(db, NULL, held, NULL)); /* st1935's acceptor takes j001 */
	CHECK_INT(chan_get(&x.to_parent, 60000), 1);
	check_exit(px, 30000, 0);
	cj_job_free(held);
	cj_close(db);
	chan_close(&x.to_parent);
	chan_close(&y.to_parent);
}

TEST_MAIN_VERIFIED(ENTRY(limits_bad_arguments),
                   ENTRY(concurrency_never_exceeded_across_processes),
                   ENTRY(blocked_acceptor_woken_by_finish),
                   ENTRY(blocked_acceptor_woken_by_fail),
                   ENTRY(blocked_acceptor_woken_by_remove),
                   ENTRY(blocked_acceptor_woken_by_lost_lease),
                   ENTRY(blocked_acceptor_woken_by_raised_limit),
                   ENTRY(blocked_acceptor_woken_by_cleared_limits),
                   ENTRY(full_type_timeout_honoured), ENTRY(accept_types_skips_limited_type),
                   ENTRY(rate_within_bound_over_every_window),
                   ENTRY(rate_waits_for_next_token),
                   ENTRY(run_end_wakes_only_where_a_running_limit_is),
                   ENTRY(slot_waiter_passes_on_another_types_wake_up))
