/*
 * Schedules (periodic jobs): validation, exactly-once ticks with three
 * schedulers in three processes, the catch-up policies after a downtime, a
 * finished tick job that is never run again, many schedules served in
 * batches, and a schedule set in one process waking another's scheduler.
 *
 * The clock. Tests do not sleep through real minutes: in fault-injection
 * builds (CJ_FAULTS, on in the sanitizer builds the tests run on) a handle
 * opened while CJ_TEST_CLOCK_FILE names a file reads its schedules' wall
 * time from that file (seconds since the epoch, as decimal text) instead of
 * the system's clock, at every pass and every cj_schedule_set(). Its
 * scheduler then never sleeps until a tick (the file's time moves only
 * when the test says): it runs a pass when a schedule is set or removed in
 * any process. So a test moves time with set_clock() (which writes the
 * file and renames it into place, so that no reader sees half a number),
 * then wakes every scheduler with wake(), a change of a disabled schedule.
 * Other builds ignore the variable.
 */
#include "testutil.h"

#include <fcntl.h>
#include <unistd.h>

/* 2026-12-04T00:00:00Z */
#define T0 ((int64_t)1796342400)

/* ---- helpers ------------------------------------------------------------- */

static char clock_path[4096];

static void set_clock(int64_t t) {
	char tmp[4200], text[32];
	snprintf(tmp, sizeof tmp, "%s.new", clock_path);
	int n = snprintf(text, sizeof text, "%lld\n", (long long)t);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, text, (size_t)n) == n);
	CHECK(close(fd) == 0);
	CHECK(rename(tmp, clock_path) == 0);
}

/* Puts the handles opened from now on (this process's and its children's)
 * on the test clock, at t. */
static void use_clock(int64_t t) {
	snprintf(clock_path, sizeof clock_path, "%s/clock", t_dir());
	set_clock(t);
	CHECK(setenv("CJ_TEST_CLOCK_FILE", clock_path, 1) == 0);
}

/* Wakes every scheduler: the disabled schedule "wake" changes. */
static void wake(cj_db *db) {
	static int n;
	char data[32];
	snprintf(data, sizeof data, "{\"n\":%d}", ++n);
	cj_schedule s = CJ_SCHEDULE_INIT;
	s.every_s = 3600;
	s.type = "tick";
	s.data = data;
	s.disabled = 1;
	CHECK_OK(cj_schedule_set(db, NULL, "wake", &s));
}

static void tick_id(char *out, size_t cap, const char *name, int64_t t) {
	int64_t s = t - T0; /* the tests' ticks fall on 2026-12-04 */
	CHECK(s >= 0 && s < 86400);
	snprintf(out, cap, "%s@2026-12-04T%02d:%02d:%02dZ", name, (int)(s / 3600),
	         (int)(s % 3600 / 60), (int)(s % 60));
}

/* Accepts the next "tick" job, which must be name's tick t, and finishes
 * it. */
static void take_tick(cj_db *db, const char *name, int64_t t) {
	char want[300];
	tick_id(want, sizeof want, name, t);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 60000;
	cj_job *job = NULL;
	char *data = NULL;
	int rc = cj_accept(db, "tick", &o, &job, &data);
	if (rc != CJ_OK) t_fail(__FILE__, __LINE__, "no tick %s: %s", want, cj_err_name(rc));
	CHECK_STR(cj_job_id(job), want);
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	cj_free(data);
}

/* No "tick" job is pending (after a grace of timeout_ms). */
static void no_tick(cj_db *db, int64_t timeout_ms) {
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = timeout_ms;
	cj_job *job = NULL;
	int rc = cj_accept(db, "tick", &o, &job, NULL);
	if (rc == CJ_OK) t_fail(__FILE__, __LINE__, "unexpected tick %s", cj_job_id(job));
	CHECK_RC(rc, CJ_NOT_FOUND);
}

static cj_schedule cron_def(const char *expr, int catch_up) {
	cj_schedule s = CJ_SCHEDULE_INIT;
	s.cron = expr;
	s.type = "tick";
	s.catch_up = catch_up;
	return s;
}

static cj_schedule every_def(int64_t every, int64_t anchor, int catch_up) {
	cj_schedule s = CJ_SCHEDULE_INIT;
	s.every_s = every;
	s.anchor = anchor;
	s.type = "tick";
	s.catch_up = catch_up;
	return s;
}

static int count_cb(const cj_schedule_info *info, void *arg) {
	(void)info;
	++*(int *)arg;
	return 0;
}

static int count_schedules(cj_db *db) {
	int n = 0;
	CHECK_OK(cj_schedule_list(db, NULL, count_cb, &n));
	return n;
}

/* ---- validation ------------------------------------------------------------ */

TEST(validation) {
	use_clock(T0);
	setup_type("tick", 60);
	cj_db *db = open_nomon();
	cj_schedule s = cron_def("*/5 * * * *", CJ_CATCH_UP_SKIP), bad;
	char longname[CJ_MAX_SCHEDULE_NAME + 2];
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;

	CHECK_RC(cj_schedule_set(NULL, NULL, "a", &s), CJ_INVALID);
	CHECK_RC(cj_schedule_set(db, NULL, "a", NULL), CJ_INVALID);
	CHECK_RC(cj_schedule_set(db, NULL, NULL, &s), CJ_INVALID);
	CHECK_RC(cj_schedule_set(db, NULL, "", &s), CJ_INVALID);
	CHECK_RC(cj_schedule_set(db, NULL, longname, &s), CJ_INVALID);
	CHECK_RC(cj_schedule_set(db, NULL, "bad\xff", &s), CJ_INVALID);
	bad = s, bad.type = NULL;
	CHECK_RC(cj_schedule_set(db, NULL, "a", &bad), CJ_INVALID);
	bad = s, bad.type = "untyped";
	CHECK_RC(cj_schedule_set(db, NULL, "a", &bad), CJ_NO_TYPE_TIMEOUT);
	bad = s, bad.cron = "61 * * * *";
	CHECK_RC(cj_schedule_set(db, NULL, "a", &bad), CJ_INVALID);
	CHECK(strstr(cj_last_error(), "minute") != NULL);
	bad = s, bad.cron = "0 0 30 2 *"; /* never fires */
	CHECK_RC(cj_schedule_set(db, NULL, "a", &bad), CJ_INVALID);
	bad = s, bad.zone = "Nowhere/Atlantis";
	CHECK_RC(cj_schedule_set(db, NULL, "a", &bad), CJ_INVALID);
	bad = s, bad.anchor = 5;
	CHECK_RC(cj_schedule_set(db, NULL, "a", &bad), CJ_INVALID);
	bad = s, bad.every_s = 60; /* both */
	CHECK_RC(cj_schedule_set(db, NULL, "a", &bad), CJ_INVALID);
	bad = s, bad.cron = NULL; /* neither */
	CHECK_RC(cj_schedule_set(db, NULL, "a", &bad), CJ_INVALID);
	bad = every_def(-1, 0, 0);
	CHECK_RC(cj_schedule_set(db, NULL, "a", &bad), CJ_INVALID);
	bad = every_def(CJ_MAX_SCHEDULE_EVERY + 1, 0, 0);
	CHECK_RC(cj_schedule_set(db, NULL, "a", &bad), CJ_INVALID);
	bad = every_def(60, -1, 0);
	CHECK_RC(cj_schedule_set(db, NULL, "a", &bad), CJ_INVALID);
	bad = every_def(60, CJ_MAX_SCHED_TIME + 1, 0);
	CHECK_RC(cj_schedule_set(db, NULL, "a", &bad), CJ_INVALID);
	bad = every_def(60, 0, 0), bad.zone = "UTC";
	CHECK_RC(cj_schedule_set(db, NULL, "a", &bad), CJ_INVALID);
	bad = s, bad.catch_up = 2;
	CHECK_RC(cj_schedule_set(db, NULL, "a", &bad), CJ_INVALID);
	bad = s, bad.data = "[1]";
	CHECK_RC(cj_schedule_set(db, NULL, "a", &bad), CJ_JSON);
	CHECK_INT(count_schedules(db), 0);

	cj_schedule_info info;
	CHECK_RC(cj_schedule_get(db, NULL, "a", &info), CJ_NOT_FOUND);
	CHECK_RC(cj_schedule_remove(db, NULL, "a"), CJ_NOT_FOUND);
	CHECK_RC(cj_schedule_get(db, NULL, "", &info), CJ_INVALID);
	CHECK_RC(cj_schedule_list(db, NULL, NULL, NULL), CJ_INVALID);
	int cu;
	CHECK_OK(cj_catch_up_parse("last", &cu));
	CHECK_INT(cu, CJ_CATCH_UP_LAST);
	CHECK_RC(cj_catch_up_parse("all", &cu), CJ_INVALID);

	/* a good one reads back as set; a bad replacement changes nothing */
	s.zone = "Europe/Berlin";
	s.data = "{\"k\":1}";
	CHECK_OK(cj_schedule_set(db, NULL, "a", &s));
	bad = s, bad.cron = "* * * * * *";
	CHECK_RC(cj_schedule_set(db, NULL, "a", &bad), CJ_INVALID);
	CHECK_OK(cj_schedule_get(db, NULL, "a", &info));
	CHECK_STR(info.name, "a");
	CHECK_STR(info.cron, "*/5 * * * *");
	CHECK_STR(info.zone, "Europe/Berlin");
	CHECK_STR(info.type, "tick");
	CHECK_JSON(info.data, "{\"k\":1}");
	CHECK_INT(info.every_s, 0);
	CHECK_INT(info.catch_up, CJ_CATCH_UP_SKIP);
	CHECK_INT(info.served, T0);
	CHECK_INT(info.fired, 0);
	CHECK_INT(info.next, T0 + 300);
	cj_schedule_info_clear(&info);

	/* the same definition later writes nothing: no tick is given up */
	set_clock(T0 + 7200);
	CHECK_OK(cj_schedule_set(db, NULL, "a", &s));
	CHECK_OK(cj_schedule_get(db, NULL, "a", &info));
	CHECK_INT(info.served, T0);
	cj_schedule_info_clear(&info);
	/* a changed one serves the ticks from now on */
	s.catch_up = CJ_CATCH_UP_LAST;
	CHECK_OK(cj_schedule_set(db, NULL, "a", &s));
	CHECK_OK(cj_schedule_get(db, NULL, "a", &info));
	CHECK_INT(info.served, T0 + 7200);
	CHECK_INT(info.catch_up, CJ_CATCH_UP_LAST);
	cj_schedule_info_clear(&info);

	cj_schedule iv = every_def(90, T0 + 30, CJ_CATCH_UP_SKIP);
	CHECK_OK(cj_schedule_set(db, NULL, "b", &iv));
	CHECK_OK(cj_schedule_get(db, NULL, "b", &info));
	CHECK_INT(info.every_s, 90);
	CHECK_INT(info.anchor, T0 + 30);
	CHECK(info.cron == NULL && info.zone == NULL);
	CHECK_JSON(info.data, "{}");
	CHECK_INT(info.next, T0 + 30 + 80 * 90); /* the first after T0 + 7200 */
	cj_schedule_info_clear(&info);
	CHECK_INT(count_schedules(db), 2);
	CHECK_OK(cj_schedule_remove(db, NULL, "a"));
	CHECK_INT(count_schedules(db), 1);
	CHECK_INT(count_jobs(db, "tick"), 0); /* no scheduler ran: no_monitor */
	cj_close(db);
}

/* ---- exactly once, three schedulers in three processes ------------------------- */

#define XO_STEP 10
#define XO_STEPS 24 /* four minutes */

static int xo_scheduler(void *arg) {
	t_gate *done = arg;
	cj_db *db = t_open(); /* its monitor runs a scheduler */
	CHECK(t_gate_wait(done, 600000) == 0);
	cj_close(db);
	return 0;
}

TEST(exactly_once_three_processes) {
	use_clock(T0);
	setup_type("tick", 60);
	{
		cj_db *db = open_nomon();
		cj_schedule c = cron_def("* * * * *", CJ_CATCH_UP_LAST);
		cj_schedule iv = every_def(20, 10, CJ_CATCH_UP_LAST); /* :10, :30, :50 */
		CHECK_OK(cj_schedule_set(db, NULL, "cron", &c));
		CHECK_OK(cj_schedule_set(db, NULL, "iv", &iv));
		cj_close(db);
	}
	t_gate done;
	t_gate_init(&done);
	int pids[3];
	for (int i = 0; i < 3; i++) pids[i] = t_spawn(xo_scheduler, &done);
	cj_db *db = open_nomon();
	/* each step moves the clock 10 s and wakes all three; the one tick due
	 * (if any) must come exactly once: each is accepted and finished, so a
	 * second firing of a tick would show as that job pending again */
	int fired = 0;
	for (int k = 1; k <= XO_STEPS; k++) {
		int64_t t = T0 + k * XO_STEP;
		set_clock(t);
		wake(db);
		if (t % 60 == 0) take_tick(db, "cron", t), fired++;
		else if ((t - 10) % 20 == 0) take_tick(db, "iv", t), fired++;
		else no_tick(db, 0);
	}
	no_tick(db, 1000); /* nothing late either */
	for (int i = 0; i < 3; i++) t_gate_open(&done); /* a byte each */
	for (int i = 0; i < 3; i++) CHECK_INT(t_join(pids[i], 60000), 0);
	CHECK_INT(fired, 4 + 12);
	CHECK_INT(count_jobs(db, "tick"), fired);
	cj_schedule_info info;
	CHECK_OK(cj_schedule_get(db, NULL, "cron", &info));
	CHECK_INT(info.fired, T0 + 240);
	CHECK_INT(info.served, T0 + 240);
	cj_schedule_info_clear(&info);
	CHECK_OK(cj_schedule_get(db, NULL, "iv", &info));
	CHECK_INT(info.fired, T0 + 230);
	cj_schedule_info_clear(&info);
	cj_close(db);
	t_gate_close(&done);
}

/* ---- catch-up after a downtime ---------------------------------------------- */

TEST(catch_up_policies) {
	use_clock(T0);
	setup_type("tick", 60);
	cj_db *db = open_nomon();
	cj_schedule skip = cron_def("*/5 * * * *", CJ_CATCH_UP_SKIP);
	cj_schedule last = cron_def("*/5 * * * *", CJ_CATCH_UP_LAST);
	CHECK_OK(cj_schedule_set(db, NULL, "last", &last));
	CHECK_OK(cj_schedule_set(db, NULL, "skip", &skip));
	cj_close(db);

	/* no scheduler runs for an hour and two minutes: twelve ticks missed,
	 * the latest (01:00) two minutes late */
	set_clock(T0 + 3600 + 120);
	db = t_open(); /* its scheduler's first pass */
	take_tick(db, "last", T0 + 3600);
	/* the same pass served "skip" (one batch, one transaction): it fired
	 * nothing and is past the missed ticks */
	cj_schedule_info info;
	CHECK_OK(cj_schedule_get(db, NULL, "skip", &info));
	CHECK_INT(info.served, T0 + 3600);
	CHECK_INT(info.fired, 0);
	CHECK_INT(info.next, T0 + 3900);
	cj_schedule_info_clear(&info);
	no_tick(db, 0);
	CHECK_INT(count_jobs(db, "tick"), 1); /* no burst */

	/* on time, both fire */
	set_clock(T0 + 3900);
	wake(db);
	take_tick(db, "last", T0 + 3900);
	take_tick(db, "skip", T0 + 3900);
	/* a pass 30 s late (within CJ_SCHEDULE_GRACE): both fire */
	set_clock(T0 + 4200 + 30);
	wake(db);
	take_tick(db, "last", T0 + 4200);
	take_tick(db, "skip", T0 + 4200);
	no_tick(db, 500);
	CHECK_INT(count_jobs(db, "tick"), 5);
	cj_close(db);
}

/* ---- a finished tick job is not run again --------------------------------------- */

TEST(finished_tick_not_rerun) {
	use_clock(T0);
	setup_type("tick", 60);
	cj_db *db = t_open();
	cj_schedule s = every_def(60, 0, CJ_CATCH_UP_LAST);
	CHECK_OK(cj_schedule_set(db, NULL, "s", &s));
	set_clock(T0 + 60);
	wake(db);
	take_tick(db, "s", T0 + 60);
	/* the clock is stepped back and the schedule made again: its tick
	 * 00:01:00 comes due a second time, but its job exists (finished) */
	CHECK_OK(cj_schedule_remove(db, NULL, "s"));
	set_clock(T0 + 30);
	CHECK_OK(cj_schedule_set(db, NULL, "s", &s));
	CHECK_OK(cj_schedule_set(db, NULL, "probe", &s)); /* the same pass serves it */
	set_clock(T0 + 60);
	wake(db);
	take_tick(db, "probe", T0 + 60);
	char id[300];
	tick_id(id, sizeof id, "s", T0 + 60);
	CHECK_INT(state_of(db, "tick", id), CJ_FINISHED);
	cj_schedule_info info;
	CHECK_OK(cj_schedule_get(db, NULL, "s", &info));
	CHECK_INT(info.served, T0 + 60);
	CHECK_INT(info.fired, T0 + 60); /* fired: its job is there */
	cj_schedule_info_clear(&info);
	no_tick(db, 0);
	cj_close(db);
}

/* ---- many schedules: a pass serves them in batches --------------------------------- */

#define MANY 250 /* two and a half batches (CJ_SCHEDULE_BATCH is 100) */

static int set_many(cj_tx *tx, void *arg) {
	cj_db *db = arg;
	cj_schedule s = every_def(60, 0, CJ_CATCH_UP_SKIP);
	for (int i = 0; i < MANY; i++) {
		char name[16];
		snprintf(name, sizeof name, "m%03d", i);
		int rc = cj_schedule_set(db, tx, name, &s);
		if (rc) return rc;
	}
	return 0;
}

TEST(many_schedules_in_batches) {
	use_clock(T0);
	setup_type("tick", 60);
	cj_db *db = t_open();
	CHECK_OK(cj_transact(db, set_many, db));
	CHECK_INT(count_schedules(db), MANY);
	set_clock(T0 + 60);
	wake(db);
	/* every one fires its tick once */
	char seen[MANY] = {0};
	int got = 0;
	while (got < MANY) {
		cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
		o.timeout_ms = 60000;
		cj_job *jobs[MANY];
		size_t n;
		CHECK_OK(cj_accept_many(db, "tick", &o, MANY, jobs, NULL, &n));
		for (size_t j = 0; j < n; j++) {
			int i = -1;
			CHECK(sscanf(cj_job_id(jobs[j]), "m%3d@", &i) == 1 && i >= 0 && i < MANY);
			char want[300], name[16];
			snprintf(name, sizeof name, "m%03d", i);
			tick_id(want, sizeof want, name, T0 + 60);
			CHECK_STR(cj_job_id(jobs[j]), want);
			CHECK(!seen[i]);
			seen[i] = 1;
			got++;
			CHECK_OK(cj_finish(db, NULL, jobs[j], NULL));
			cj_job_free(jobs[j]);
		}
	}
	no_tick(db, 500);
	cj_close(db);
}

/* ---- a schedule set in one process wakes another's scheduler ------------------ */

static int wake_scheduler(void *arg) {
	t_gate *gates = arg;
	cj_db *db = t_open(); /* no schedule: its scheduler sleeps for good */
	t_gate_open(&gates[0]);
	CHECK(t_gate_wait(&gates[1], 600000) == 0);
	cj_close(db);
	return 0;
}

TEST(set_wakes_other_process) {
	/* the real clock: the test clock would keep any sleep unbounded */
	unsetenv("CJ_TEST_CLOCK_FILE");
	setup_type("tick", 60);
	t_gate gates[2];
	t_gate_init(&gates[0]);
	t_gate_init(&gates[1]);
	int pid = t_spawn(wake_scheduler, gates);
	cj_db *db = open_nomon(); /* runs no scheduler itself */
	CHECK(t_gate_wait(&gates[0], 60000) == 0);
	sleep_ms(500); /* its first pass found nothing: it sleeps */
	cj_schedule s = every_def(1, 0, CJ_CATCH_UP_LAST);
	CHECK_OK(cj_schedule_set(db, NULL, "sec", &s));
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 30000;
	cj_job *job = NULL;
	CHECK_OK(cj_accept(db, "tick", &o, &job, NULL));
	CHECK(strncmp(cj_job_id(job), "sec@", 4) == 0);
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	/* removing it stops the ticks: after the next pass, nothing comes */
	CHECK_OK(cj_schedule_remove(db, NULL, "sec"));
	t_gate_open(&gates[1]);
	CHECK_INT(t_join(pid, 60000), 0);
	cj_close(db);
	t_gate_close(&gates[0]);
	t_gate_close(&gates[1]);
}

TEST_MAIN_VERIFIED(ENTRY(validation), ENTRY(exactly_once_three_processes),
                   ENTRY(catch_up_policies), ENTRY(finished_tick_not_rerun),
                   ENTRY(many_schedules_in_batches), ENTRY(set_wakes_other_process))
