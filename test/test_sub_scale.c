/*
 * Subscriptions at scale: with many live subscriptions in one process,
 * subscribing and delivering an event cost the same as with few, a commit
 * that changes an unrelated job costs no store reads, and unsubscribing
 * while the notifier reads is safe.
 *
 * Costs are compared as ratios between a small and a large number of
 * subscriptions, never against absolute times; each side is raised to a
 * floor well above a fast run's time, so that a loaded machine's noise
 * cannot make a flat cost look like growth (a cost that grows with the
 * number of subscriptions exceeds the floor by far).
 *
 * Public API only; the store comes from t_open() / t_url().
 */
#include "testutil.h"

#include <pthread.h>
#include <time.h>

#define NSUB 10000 /* subscriptions */
#define SLICE 1000 /* compared: the first and the last SLICE */
#define ROUNDS 15  /* event latency: the median of ROUNDS events */
#define BATCH 500  /* jobs added per transaction */

static double now_s(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void job_id(char *out, size_t cap, int i) { snprintf(out, cap, "job-%05d", i); }

/* Jobs from .. to-1, to add or to remove in one transaction. */
struct range {
	cj_db *db;
	int from, to;
	int remove;
};

static int range_fn(cj_tx *tx, void *arg) {
	struct range *r = arg;
	char id[32];
	for (int i = r->from; i < r->to; i++) {
		job_id(id, sizeof id, i);
		int rc = r->remove ? cj_remove(r->db, tx, "s", id)
		                   : cj_add(r->db, tx, "s", id, NULL, 0);
		if (rc) return rc;
	}
	return CJ_OK;
}

static void add_jobs(cj_db *db, int n) {
	for (int i = 0; i < n; i += BATCH) {
		struct range r = {db, i, i + BATCH < n ? i + BATCH : n, 0};
		CHECK_OK(cj_transact(db, range_fn, &r));
	}
}

/* Adds jobs 0 .. n-1 and subscribes to each: subs[i] is job i's. */
static cj_sub **add_subscribed(cj_db *db, int n) {
	add_jobs(db, n);
	cj_sub **subs = calloc((size_t)n, sizeof *subs);
	CHECK(subs != NULL);
	char id[32];
	for (int i = 0; i < n; i++) {
		job_id(id, sizeof id, i);
		subs[i] = sub_on(db, "s", id);
	}
	return subs;
}

static void unsubscribe_all(cj_sub **subs, int n) {
	for (int i = 0; i < n; i++) CHECK_OK(cj_unsubscribe(subs[i]));
	free(subs);
}

static int cmp_double(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The median time from a cj_update of job to its event on sub. */
static double event_latency(cj_db *db, cj_job *job, cj_sub *sub) {
	double t[ROUNDS];
	for (int i = 0; i < ROUNDS; i++) {
		char data[32];
		snprintf(data, sizeof data, "{\"round\":%d}", i);
		double t0 = now_s();
		CHECK_OK(cj_update(db, NULL, job, data));
		cj_event ev = {0};
		CHECK_OK(cj_wait(&sub, 1, 0, 30000, &ev));
		t[i] = now_s() - t0;
		CHECK_INT(ev.state, CJ_RUNNING);
		CHECK_JSON(ev.data, data);
		cj_event_clear(&ev);
	}
	qsort(t, ROUNDS, sizeof t[0], cmp_double);
	return t[ROUNDS / 2];
}

static double at_least(double v, double floor) { return v > floor ? v : floor; }

/* 10,000 subscriptions in one process: the last thousand subscribe as fast
 * as the first, an event takes as long with 10,000 as with 1,000, and it
 * reaches the right subscription (and no other). */
TEST(sub_scale_flat) {
	/* relaxed: the time to an event is the notifier's, not the disk's */
	cj_options o = CJ_OPTIONS_INIT;
	o.sync = CJ_SYNC_RELAXED;
	cj_db *db = t_open_opts(&o);
	CHECK_OK(cj_set_type_timeout(db, "s", 600));
	CHECK_OK(cj_set_type_timeout(db, "p", 600));
	CHECK_OK(cj_add(db, NULL, "p", "probe", NULL, 0));
	cj_job *job = take(db, "p");
	add_jobs(db, NSUB);

	cj_sub **subs = calloc(NSUB + 1, sizeof *subs);
	CHECK(subs != NULL);
	subs[NSUB] = sub_on(db, "p", "probe");
	double first = 0, last = 0, lat_small = 0;
	char id[32];
	for (int i = 0; i < NSUB; i++) {
		job_id(id, sizeof id, i);
		double t0 = now_s();
		subs[i] = sub_on(db, "s", id);
		double dt = now_s() - t0;
		if (i < SLICE) first += dt;
		if (i >= NSUB - SLICE) last += dt;
		if (i == SLICE - 1) lat_small = event_latency(db, job, subs[NSUB]);
	}
	double lat_large = event_latency(db, job, subs[NSUB]);
	note("  %d subscribes: first %.3f s, last %.3f s; event latency with %d: %.2f ms, "
	     "with %d: %.2f ms\n", SLICE, first, last, SLICE, lat_small * 1e3, NSUB,
	     lat_large * 1e3);
	/* floors: 0.25 s per thousand subscribes, 10 ms per event */
	CHECK(at_least(last, 0.25) <= 3 * at_least(first, 0.25));
	CHECK(at_least(lat_large, 0.010) <= 3 * at_least(lat_small, 0.010));

	/* an event reaches the subscription of its job, and no other */
	cj_event ev = {0};
	CHECK_RC(cj_wait(subs, NSUB + 1, 0, 0, &ev), CJ_TIMEOUT);
	CHECK_OK(cj_remove(db, NULL, "s", "job-04321"));
	CHECK_OK(cj_wait(subs, NSUB + 1, 0, 30000, &ev));
	CHECK(ev.sub == subs[4321]);
	CHECK_STR(ev.id, "job-04321");
	CHECK_INT(ev.state, CJ_REMOVED);
	cj_event_clear(&ev);
	CHECK_RC(cj_wait(subs, NSUB + 1, 0, 200, &ev), CJ_TIMEOUT);

	unsubscribe_all(subs, NSUB + 1);
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	cj_close(db);
}

static int other_commits(void *arg) {
	t_gate *go = arg;
	if (t_gate_wait(go, 120000) != 0) return 1;
	cj_db *db = t_open();
	char id[32];
	for (int i = 0; i < 100; i++) {
		snprintf(id, sizeof id, "other-%d", i);
		CHECK_OK(cj_add(db, NULL, "o", id, NULL, 0));
	}
	cj_close(db);
	return 0;
}

/* With 1,000 live subscriptions, commits in another process that change
 * jobs nobody here subscribes to cost this process (almost) no store reads:
 * a job shares its wake word with one of the 1,000 once in 65 times, so 100
 * commits may cost a few reads, where reading every subscription would
 * cost 100,000. */
TEST(sub_unrelated_commit_no_reads) {
	setup_type("o", 600);
	t_gate go;
	t_gate_init(&go);
	int pid = t_spawn(other_commits, &go); /* before this process opens */
	cj_db *db = open_typed("s");
	cj_sub **subs = add_subscribed(db, SLICE);
	/* the notifier has settled once a change of a subscribed job arrived */
	CHECK_OK(cj_remove(db, NULL, "s", "job-00000"));
	cj_event ev = {0};
	CHECK_OK(cj_wait(subs, 1, 0, 30000, &ev));
	cj_event_clear(&ev);

	cj_stats before, after;
	CHECK_OK(cj_db_stats(db, &before));
	t_gate_open(&go);
	check_exit(pid, 120000, 0);
	/* and settles again */
	CHECK_OK(cj_remove(db, NULL, "s", "job-00001"));
	CHECK_OK(cj_wait(subs + 1, 1, 0, 30000, &ev));
	cj_event_clear(&ev);
	CHECK_OK(cj_db_stats(db, &after));
	uint64_t reads = after.notifier_reads - before.notifier_reads;
	note("  100 unrelated commits: %llu notifier passes, %llu subscriptions read\n",
	     (unsigned long long)(after.notifier_passes - before.notifier_passes),
	     (unsigned long long)reads);
	CHECK(after.notifier_passes > before.notifier_passes);
	CHECK(reads >= 1); /* job-00001 */
	CHECK(reads <= 20);
	unsubscribe_all(subs, SLICE);
	t_gate_close(&go);
	cj_close(db);
}

/* A transaction that changes more jobs than a commit lists words for
 * still gives every subscriber its event. */
TEST(sub_big_transaction) {
	enum { N = 600 };
	cj_db *db = open_typed("s");
	cj_sub **subs = add_subscribed(db, N);
	char id[32];
	struct range r = {db, 0, N, 1}; /* all in one transaction */
	CHECK_OK(cj_transact(db, range_fn, &r));
	char *seen = calloc(N, 1);
	CHECK(seen != NULL);
	for (int i = 0; i < N; i++) {
		cj_event ev = {0};
		CHECK_OK(cj_wait(subs, N, 0, 30000, &ev));
		CHECK_INT(ev.state, CJ_REMOVED);
		int k;
		for (k = 0; k < N && subs[k] != ev.sub; k++) {
		}
		CHECK(k < N && !seen[k]);
		seen[k] = 1;
		job_id(id, sizeof id, k);
		CHECK_STR(ev.id, id);
		cj_event_clear(&ev);
	}
	free(seen);
	unsubscribe_all(subs, N);
	cj_close(db);
}

struct churn {
	cj_db *db;
	volatile int stop;
};

static void *update_loop(void *arg) {
	struct churn *c = arg;
	char id[32];
	for (int i = 0; !c->stop; i = (i + 1) % 50) {
		job_id(id, sizeof id, i);
		int rc = cj_add(c->db, NULL, "s", id, i % 2 ? "{\"a\":1}" : "{\"a\":2}", i);
		if (rc != CJ_OK && rc != CJ_CONFLICT) return (void *)1;
	}
	return NULL;
}

/* Subscribing and unsubscribing while the notifier reads the same jobs
 * (they change all the time) is safe (run under the sanitizers), and the
 * notifier keeps delivering. */
TEST(sub_unsubscribe_while_reading) {
	cj_db *db = open_typed("s");
	add_jobs(db, 50);
	struct churn c = {db, 0};
	pthread_t th;
	CHECK(pthread_create(&th, NULL, update_loop, &c) == 0);
	char id[32];
	double end = now_s() + 2;
	int rounds = 0;
	while (now_s() < end) {
		cj_sub *s[10];
		for (int i = 0; i < 10; i++) {
			job_id(id, sizeof id, (rounds + i) % 50);
			s[i] = sub_on(db, "s", id);
		}
		for (int i = 0; i < 10; i++) CHECK_OK(cj_unsubscribe(s[i]));
		rounds++;
	}
	c.stop = 1;
	void *res;
	pthread_join(th, &res);
	CHECK(res == NULL);
	note("  %d rounds of 10 subscribes and unsubscribes\n", rounds);
	/* still delivering */
	cj_sub *s = sub_on(db, "s", "job-00007");
	CHECK_OK(cj_remove(db, NULL, "s", "job-00007"));
	cj_event ev = {0};
	CHECK_OK(cj_wait(&s, 1, 0, 30000, &ev));
	CHECK_INT(ev.state, CJ_REMOVED);
	cj_event_clear(&ev);
	CHECK_OK(cj_unsubscribe(s));
	cj_close(db);
}

TEST_MAIN(ENTRY(sub_scale_flat), ENTRY(sub_unrelated_commit_no_reads),
          ENTRY(sub_big_transaction), ENTRY(sub_unsubscribe_while_reading))
