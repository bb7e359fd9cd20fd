/*
 * Conformance: the counts of jobs per type and state (cj_get_type_counts,
 * cj_list_type_counts), on both engines.
 *
 * The counts are compared with a listing of every job (cj_list_jobs) after
 * each step of a random mix of every call that changes a job's state; the
 * cases end with cj_verify, which checks every counter against the jobs.
 * Scheduled times are 0, long past or an hour ahead, so that no job falls
 * due between the listing and the counts.
 */
#include "testutil.h"

/* ---- the counts a listing gives ------------------------------------------- */

struct expect {
	const char *type;
	int64_t now;
	cj_type_counts c;
	int64_t first_sched; /* of the next due job to accept; -1 none */
	char first_id[CJ_MAX_ID + 1];
};

static int expect_cb(const cj_job_info *i, void *arg) {
	struct expect *e = arg;
	if (strcmp(i->type, e->type) != 0) return 0;
	switch (i->state) {
	case CJ_PENDING:
		if (i->sched_time > e->now) e->c.scheduled++;
		else e->c.pending++;
		if (i->sched_time == 0) e->c.untimed++;
		if (i->attempt > 0) e->c.retrying++;
		if (i->sched_time > e->now) break;
		if (i->sched_time > 0 && (e->c.oldest_due < 0 || i->sched_time < e->c.oldest_due))
			e->c.oldest_due = i->sched_time;
		/* what cj_accept takes next: the least (time, id) */
		if (e->first_sched < 0 || i->sched_time < e->first_sched ||
		    (i->sched_time == e->first_sched && strcmp(i->id, e->first_id) < 0)) {
			e->first_sched = i->sched_time;
			snprintf(e->first_id, sizeof e->first_id, "%s", i->id);
			e->c.oldest_added_ms = i->added_ms;
		}
		break;
	case CJ_RUNNING: e->c.running++; break;
	case CJ_FINISHED: e->c.finished++; break;
	case CJ_DEAD: e->c.dead++; break;
	default: CHECK(0);
	}
	return 0;
}

static void listed_counts(cj_db *db, const char *type, cj_type_counts *out) {
	struct expect e = {type, t_epoch(), {0}, -1, ""};
	e.c.oldest_added_ms = e.c.oldest_due = -1;
	CHECK_OK(cj_list_jobs(db, NULL, NULL, expect_cb, &e));
	*out = e.c;
}

#define CHECK_COUNTS(got, want)                                                      \
	do {                                                                             \
		CHECK_INT((got).pending, (want).pending);                                    \
		CHECK_INT((got).scheduled, (want).scheduled);                                \
		CHECK_INT((got).running, (want).running);                                    \
		CHECK_INT((got).finished, (want).finished);                                  \
		CHECK_INT((got).dead, (want).dead);                                          \
		CHECK_INT((got).untimed, (want).untimed);                                    \
		CHECK_INT((got).retrying, (want).retrying);                                  \
		CHECK_INT((got).oldest_added_ms, (want).oldest_added_ms);                    \
		CHECK_INT((got).oldest_due, (want).oldest_due);                              \
	} while (0)

/* What cj_list_type_counts gave (compared after it returns: its callback
 * may not call into the store). */
struct listed {
	int n;
	char types[4][16];
	cj_type_counts c[4];
};

static int list_cb(const char *type, const cj_type_counts *c, void *arg) {
	struct listed *l = arg;
	CHECK(l->n < 4);
	snprintf(l->types[l->n], sizeof l->types[0], "%s", type);
	l->c[l->n++] = *c;
	return 0;
}

/* The counts of every type match a listing, by both calls; the list is in
 * order and holds the types with jobs. */
static void check_all(cj_db *db, const char *const *types, size_t n) {
	struct listed l = {0, {""}, {{0}}};
	int with_jobs = 0;
	for (size_t i = 0; i < n; i++) {
		cj_type_counts got, want;
		CHECK_OK(cj_get_type_counts(db, NULL, types[i], &got));
		listed_counts(db, types[i], &want);
		CHECK_COUNTS(got, want);
		with_jobs += want.pending + want.scheduled + want.running + want.finished + want.dead > 0;
	}
	CHECK_OK(cj_list_type_counts(db, NULL, list_cb, &l));
	CHECK_INT(l.n, with_jobs);
	for (int i = 0; i < l.n; i++) {
		cj_type_counts want;
		CHECK(i == 0 || strcmp(l.types[i - 1], l.types[i]) < 0);
		listed_counts(db, l.types[i], &want);
		CHECK_COUNTS(l.c[i], want);
	}
}

/* ---- cases ------------------------------------------------------------------ */

/* Arguments are checked; a type without jobs counts 0; the list has only
 * types with jobs. */
TEST(counts_arguments) {
	cj_db *db = t_open();
	cj_type_counts c;
	CHECK_RC(cj_get_type_counts(NULL, NULL, "t", &c), CJ_INVALID);
	CHECK_RC(cj_get_type_counts(db, NULL, "t", NULL), CJ_INVALID);
	CHECK_RC(cj_get_type_counts(db, NULL, NULL, &c), CJ_INVALID);
	CHECK_RC(cj_get_type_counts(db, NULL, "", &c), CJ_INVALID);
	CHECK_RC(cj_list_type_counts(NULL, NULL, list_cb, NULL), CJ_INVALID);
	CHECK_RC(cj_list_type_counts(db, NULL, NULL, NULL), CJ_INVALID);
	CHECK_OK(cj_get_type_counts(db, NULL, "t", &c));
	CHECK_INT(c.pending + c.scheduled + c.running + c.finished + c.dead, 0);
	CHECK_INT(c.oldest_added_ms, -1);
	CHECK_INT(c.oldest_due, -1);
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_set_type_timeout(db, "empty", 60));
	CHECK_OK(cj_add(db, NULL, "t", "a", NULL, 0));
	int64_t now = t_epoch();
	CHECK_OK(cj_add(db, NULL, "t", "b", NULL, now - 100));
	CHECK_OK(cj_add(db, NULL, "t", "c", NULL, now + 3600));
	CHECK_OK(cj_get_type_counts(db, NULL, "t", &c));
	CHECK_INT(c.pending, 2);
	CHECK_INT(c.scheduled, 1);
	CHECK_INT(c.untimed, 1);
	CHECK_INT(c.oldest_due, now - 100);
	CHECK(c.oldest_added_ms > 0);
	/* in a caller's transaction: what it sees */
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_remove(db, tx, "t", "a"));
	CHECK_OK(cj_get_type_counts(db, tx, "t", &c));
	CHECK_INT(c.pending, 1);
	CHECK_INT(c.untimed, 0);
	cj_tx_abort(tx);
	CHECK_OK(cj_get_type_counts(db, NULL, "t", &c));
	CHECK_INT(c.pending, 2);
	const char *types[] = {"t", "empty"};
	check_all(db, types, 2);
	struct listed l = {0, {""}, {{0}}};
	CHECK_OK(cj_list_type_counts(db, NULL, list_cb, &l));
	CHECK_INT(l.n, 1);
	CHECK_STR(l.types[0], "t");
	cj_close(db);
}

static int stop_cb(const char *type, const cj_type_counts *c, void *arg) {
	(void)type, (void)c, (void)arg;
	return 7;
}

/* A listing stops at the callback's non-zero return, which it returns. */
TEST(counts_list_stops) {
	cj_db *db = t_open();
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_add(db, NULL, "t", "a", NULL, 0));
	CHECK_RC(cj_list_type_counts(db, NULL, stop_cb, NULL), 7);
	cj_close(db);
}

#define IDS 10
static const char *const mix_types[] = {"t", "u"};

/* A random mix of every call that changes a job's state, on two types:
 * after each, the counts match a listing. */
TEST(counts_random_mix) {
	cj_db *db = open_nomon();
	unsigned seed = (unsigned)t_now_ms();
	note("  seed %u\n", seed);
	srand(seed);
	cj_retry_policy p = {2, 0, 0, 1, CJ_JITTER_NONE}; /* retried at its own time */
	for (int i = 0; i < 2; i++) {
		CHECK_OK(cj_set_type_timeout(db, mix_types[i], 60));
		CHECK_OK(cj_set_type_policy(db, mix_types[i], &p));
	}
	cj_job *held[2][IDS] = {{NULL}};
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	int64_t now = t_epoch();
	const int64_t scheds[] = {0, 1000, now - 50, now + 3600};
	for (int step = 0; step < 200; step++) {
		int t = rand() % 2, k = rand() % IDS, rc;
		const char *type = mix_types[t];
		char id[8];
		snprintf(id, sizeof id, "j%d", k);
		cj_job *job;
		switch (rand() % 10) {
		case 0:
		case 1: /* add, re-add */
			CHECK_OK(cj_add(db, NULL, type, id, NULL, scheds[rand() % 4]));
			break;
		case 2:
			rc = cj_remove(db, NULL, type, id);
			CHECK(rc == CJ_OK || rc == CJ_NOT_FOUND);
			break;
		case 3:
		case 4:
			rc = cj_accept(db, type, &o, &job, NULL);
			CHECK(rc == CJ_OK || rc == CJ_NOT_FOUND);
			if (rc == CJ_OK) {
				int j = atoi(cj_job_id(job) + 1);
				cj_job_free(held[t][j]);
				held[t][j] = job;
			}
			break;
		default: { /* a held job: finish, fail, update or resubmit */
			if (!(job = held[t][k])) break;
			int what = rand() % 4;
			rc = what == 0   ? cj_finish(db, NULL, job, NULL)
			     : what == 1 ? cj_fail(db, NULL, job, NULL)
			     : what == 2 ? cj_update(db, NULL, job, NULL)
			                 : cj_resubmit(db, NULL, job, scheds[rand() % 4], NULL);
			/* resubmitting a removed job: not found */
			if (rc != CJ_OK && rc != CJ_HALT && !(what == 3 && rc == CJ_NOT_FOUND))
				t_fail(__FILE__, __LINE__, "%d: %s", what, cj_err_name(rc));
			if (what < 2 || rc != CJ_OK) {
				cj_job_free(job);
				held[t][k] = NULL;
			}
			break;
		}
		}
		if (step % 50 == 25) { /* dead jobs back, old ones pruned */
			uint64_t n;
			rc = cj_retry(db, NULL, type, id, rand() % 2);
			CHECK(rc == CJ_OK || rc == CJ_NOT_FOUND || rc == CJ_INVALID);
			CHECK_OK(cj_retry_type(db, mix_types[1 - t], 0, &n));
			cj_retention r = {CJ_KEEP_ALL, 2, CJ_KEEP_ALL, 1};
			CHECK_OK(cj_prune(db, type, &r, &n));
		}
		check_all(db, mix_types, 2);
	}
	for (int t = 0; t < 2; t++)
		for (int k = 0; k < IDS; k++) cj_job_free(held[t][k]);
	cj_close(db);
}

/* The monitor's take-back of a stale job moves it from running to pending
 * (retrying), and to dead when its attempts are used up. */
TEST(counts_monitor_take_back) {
	cj_db *db = t_open();
	cj_retry_policy p = {2, 0, 0, 1, CJ_JITTER_NONE}; /* retried at its own time */
	CHECK_OK(cj_set_type_timeout(db, "t", 1));
	CHECK_OK(cj_set_type_policy(db, "t", &p));
	CHECK_OK(cj_add(db, NULL, "t", "a", NULL, 0));
	const char *types[] = {"t"};
	for (int attempt = 1; attempt <= 2; attempt++) {
		cj_job *job = take_id(db, "t", "a");
		cj_state st = 0;
		cj_sub *sub = sub_on_st(db, "t", "a", &st);
		cj_event ev = {0};
		/* pending (attempt 1) or dead (attempt 2) once the monitor took it */
		while (st == CJ_RUNNING) {
			CHECK_OK(cj_wait(&sub, 1, 0, 20000, &ev));
			st = ev.state;
			cj_event_clear(&ev);
		}
		CHECK_INT(st, attempt == 1 ? CJ_PENDING : CJ_DEAD);
		CHECK_OK(cj_unsubscribe(sub));
		cj_job_free(job);
		check_all(db, types, 1);
	}
	cj_type_counts c;
	CHECK_OK(cj_get_type_counts(db, NULL, "t", &c));
	CHECK_INT(c.dead, 1);
	CHECK_INT(c.pending + c.running + c.retrying, 0);
	cj_close(db);
}

TEST_MAIN_VERIFIED(ENTRY(counts_arguments), ENTRY(counts_list_stops), ENTRY(counts_random_mix),
                   ENTRY(counts_monitor_take_back))
