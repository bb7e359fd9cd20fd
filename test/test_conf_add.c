/*
 * Conformance: the job creation API (include/couchjobs.h "Job creation"):
 * cj_add on new and existing jobs in every state, cj_remove, the readers
 * and cj_list_jobs (and cj_list_jobs_from).
 *
 * Public API only; the store comes from t_open().
 */
#include "testutil.h"

#include <pthread.h>

/* ---- helpers ------------------------------------------------------------ */

struct listed {
	size_t n;
	char line[64][128];
};

static int list_cb(const cj_job_info *i, void *arg) {
	struct listed *l = arg;
	if (l->n < 64)
		snprintf(l->line[l->n], sizeof l->line[0], "%s/%s/%s/%lld/%d", i->type,
		         i->id, cj_state_name(i->state), (long long)i->sched_time,
		         i->resubmit);
	l->n++;
	return 0;
}

static int stop_cb(const cj_job_info *i, void *arg) {
	(void)i;
	size_t *n = arg;
	return ++*n == 2 ? 42 : 0;
}

/* ---- cases -------------------------------------------------------------- */

/* A new job is pending with the given data, not scheduled. */
TEST(add_new_pending) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j1", "{\"a\":1}", 0));
	CHECK_INT(state_of(db, "t", "j1"), CJ_PENDING);
	check_data(db, "t", "j1", "{\"a\":1}");
	/* nested data comes back intact */
	const char *nested = "{\"a\":{\"b\":[1,2,{\"c\":null}],\"d\":\"x y\"}}";
	CHECK_OK(cj_add(db, NULL, "t", "j2", nested, 0));
	check_data(db, "t", "j2", nested);
	/* same id, different type: a different job */
	CHECK_OK(cj_set_type_timeout(db, "u", 60));
	CHECK_OK(cj_add(db, NULL, "u", "j1", "{\"a\":2}", 0));
	check_data(db, "t", "j1", "{\"a\":1}");
	check_data(db, "u", "j1", "{\"a\":2}");
	cj_close(db);
}

/* data NULL in cj_add means {}. */
TEST(add_data_null_is_empty_object) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	check_data(db, "t", "j", "{}");
	char *d = NULL;
	cj_job *job = take_data(db, "t", &d);
	CHECK_JSON(d, "{}");
	cj_free(d);
	cj_job_free(job);
	cj_close(db);
}

/* cj_get_job fills every field; on failure the info is zeroed. */
TEST(add_get_job_fields) {
	cj_db *db = open_typed("t");
	int64_t when = t_epoch() + 3600;
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"x\":\"y\"}", when));
	cj_job_info info;
	memset(&info, 0, sizeof info);
	CHECK_OK(cj_get_job(db, NULL, "t", "j", &info));
	CHECK_STR(info.type, "t");
	CHECK_STR(info.id, "j");
	CHECK_JSON(info.data, "{\"x\":\"y\"}");
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_INT(info.sched_time, when);
	CHECK_INT(info.resubmit, 0);
	cj_job_info_clear(&info);
	CHECK(info.type == NULL && info.id == NULL && info.data == NULL);
	cj_job_info_clear(&info); /* clearing twice is harmless */

	/* unscheduled job: sched_time 0 */
	CHECK_OK(cj_add(db, NULL, "t", "k", NULL, 0));
	CHECK_OK(cj_get_job(db, NULL, "t", "k", &info));
	CHECK_INT(info.sched_time, 0);
	cj_job_info_clear(&info);

	/* failure zeroes the struct (sentinels must be overwritten) */
	static char junk[] = "junk";
	info.type = junk;
	info.id = junk;
	info.data = junk;
	info.resubmit = 7;
	info.sched_time = 99;
	CHECK_RC(cj_get_job(db, NULL, "t", "missing", &info), CJ_NOT_FOUND);
	CHECK(info.type == NULL && info.id == NULL && info.data == NULL);
	CHECK_INT(info.resubmit, 0);
	CHECK_INT(info.sched_time, 0);
	cj_close(db);
}

/* Readers of a missing job, and removing one, are CJ_NOT_FOUND. */
TEST(add_missing_job) {
	cj_db *db = open_typed("t");
	cj_state st = 0;
	char *d = NULL;
	CHECK_RC(cj_get_job_state(db, NULL, "t", "nope", &st), CJ_NOT_FOUND);
	CHECK_RC(cj_get_job_data(db, NULL, "t", "nope", &d), CJ_NOT_FOUND);
	CHECK(d == NULL);
	CHECK_RC(cj_remove(db, NULL, "t", "nope"), CJ_NOT_FOUND);
	/* also for a type with no timeout at all */
	CHECK_RC(cj_get_job_state(db, NULL, "untyped", "nope", &st), CJ_NOT_FOUND);
	CHECK_RC(cj_remove(db, NULL, "untyped", "nope"), CJ_NOT_FOUND);
	cj_close(db);
}

/* pending: data and scheduled time are replaced, each on its own or both. */
TEST(add_pending_replaces) {
	cj_db *db = open_typed("t");
	int64_t t1 = t_epoch() + 1000, t2 = t_epoch() + 2000;
	cj_job_info info = {0};
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":1}", 0));
	/* both */
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":2}", t1));
	CHECK_OK(cj_get_job(db, NULL, "t", "j", &info));
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_JSON(info.data, "{\"v\":2}");
	CHECK_INT(info.sched_time, t1);
	cj_job_info_clear(&info);
	/* sched only */
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":2}", t2));
	CHECK_OK(cj_get_job(db, NULL, "t", "j", &info));
	CHECK_JSON(info.data, "{\"v\":2}");
	CHECK_INT(info.sched_time, t2);
	cj_job_info_clear(&info);
	/* data only */
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":3}", t2));
	CHECK_OK(cj_get_job(db, NULL, "t", "j", &info));
	CHECK_JSON(info.data, "{\"v\":3}");
	CHECK_INT(info.sched_time, t2);
	cj_job_info_clear(&info);
	/* back to unscheduled: now a default accept takes it at once */
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":4}", 0));
	CHECK_OK(cj_get_job(db, NULL, "t", "j", &info));
	CHECK_INT(info.sched_time, 0);
	cj_job_info_clear(&info);
	char *d = NULL;
	cj_job *job = take_data(db, "t", &d);
	CHECK_STR(cj_job_id(job), "j");
	CHECK_JSON(d, "{\"v\":4}");
	cj_free(d);
	cj_job_free(job);
	/* still one job */
	cj_close(db);
}

/* pending, nothing changes: nothing is written, so a subscriber sees no
 * event; the subscription is live (an accept is seen right after). */
TEST(add_pending_unchanged_writes_nothing) {
	cj_db *db = open_typed("t");
	int64_t when = 1000; /* in the past: due at once */
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":1}", when));
	cj_state st = 0;
	cj_sub *sub = sub_on_st(db, "t", "j", &st);
	CHECK_INT(st, CJ_PENDING);
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":1}", when));
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":1}", when));
	cj_event ev = {0};
	CHECK_RC(cj_wait(&sub, 1, 0, 1500, &ev), CJ_TIMEOUT);
	/* control: a real change is delivered */
	cj_job *job = take(db, "t");
	CHECK_OK(cj_wait(&sub, 1, 0, 5000, &ev));
	CHECK_INT(ev.state, CJ_RUNNING);
	CHECK_JSON(ev.data, "{\"v\":1}");
	cj_event_clear(&ev);
	cj_job_free(job);
	CHECK_OK(cj_unsubscribe(sub));
	cj_close(db);
}

/* Reads a whole file; NULL if it cannot. */
static char *slurp_file(const char *path, size_t *len) {
	FILE *f = fopen(path, "rb");
	if (!f) return NULL;
	size_t cap = 1 << 16, n = 0;
	char *p = malloc(cap);
	CHECK(p != NULL);
	for (;;) {
		if (n == cap) {
			cap *= 2;
			p = realloc(p, cap);
			CHECK(p != NULL);
		}
		size_t r = fread(p + n, 1, cap - n, f);
		if (r == 0) break;
		n += r;
	}
	fclose(f);
	*len = n;
	return p;
}

static int same_file(const char *path, const char *before, size_t blen) {
	size_t alen = 0;
	char *after = slurp_file(path, &alen);
	CHECK(after != NULL);
	int same = alen == blen && memcmp(after, before, blen) == 0;
	free(after);
	return same;
}

/* Embedded engine only (on any other engine this case checks nothing): an
 * unchanged add on a pending job leaves the store's data file byte for
 * byte as it was, so nothing was written; a changing add does not. */
TEST(lmdb_add_unchanged_leaves_file) {
	SKIP_UNLESS_LMDB();
	cj_db *db = open_nomon(); /* no background writer */
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":1}", 1000));
	CHECK_OK(cj_add(db, NULL, "t", "k", NULL, 0));
	char path[4200];
	snprintf(path, sizeof path, "%s/store/data.mdb", t_dir());
	size_t blen = 0;
	char *before = slurp_file(path, &blen);
	CHECK(before != NULL);
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":1}", 1000));
	CHECK_OK(cj_add(db, NULL, "t", "k", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "t", "k", "{}", 0));
	CHECK(same_file(path, before, blen));
	/* control: a change is written */
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":1}", 1001));
	CHECK(!same_file(path, before, blen));
	free(before);
	cj_close(db);
}

/* running: flagged for resubmission with the new scheduled time, data not
 * replaced; pending again (with that time) when its processor finishes. */
TEST(add_running_flags_resubmit) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":1}", 0));
	cj_job *job = take(db, "t");
	int64_t when = t_epoch() + 3600;
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":2}", when));
	cj_job_info info = {0};
	CHECK_OK(cj_get_job(db, NULL, "t", "j", &info));
	CHECK_INT(info.state, CJ_RUNNING);
	CHECK_INT(info.resubmit, 1);
	CHECK_JSON(info.data, "{\"v\":1}");
	cj_job_info_clear(&info);
	/* the processor still holds it and learns of the flag on update */
	CHECK_OK(cj_update(db, NULL, job, NULL));
	CHECK(cj_is_resubmitted(job));
	check_data(db, "t", "j", "{\"v\":1}");
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	CHECK_OK(cj_get_job(db, NULL, "t", "j", &info));
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_INT(info.sched_time, when);
	CHECK_INT(info.resubmit, 0);
	CHECK_JSON(info.data, "{\"v\":1}");
	cj_job_info_clear(&info);
	/* scheduled an hour ahead: not handed out by a default accept */
	check_empty(db, "t", CJ_SCHED_NOW, 0);
	job = take_any(db, "t");
	CHECK_STR(cj_job_id(job), "j");
	cj_job_free(job);
	cj_close(db);
}

/* finished: pending again with the new data and scheduled time. */
TEST(add_finished_reenqueues) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":1}", 0));
	cj_job *job = take(db, "t");
	CHECK_OK(cj_finish(db, NULL, job, "{\"result\":1}"));
	cj_job_free(job);
	CHECK_INT(state_of(db, "t", "j"), CJ_FINISHED);
	check_data(db, "t", "j", "{\"result\":1}");
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":2}", 0));
	CHECK_INT(state_of(db, "t", "j"), CJ_PENDING);
	char *d = NULL;
	job = take_data(db, "t", &d);
	CHECK_JSON(d, "{\"v\":2}");
	cj_free(d);
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	/* and with a scheduled time */
	int64_t when = t_epoch() + 3600;
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"v\":3}", when));
	cj_job_info info = {0};
	CHECK_OK(cj_get_job(db, NULL, "t", "j", &info));
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_INT(info.sched_time, when);
	CHECK_JSON(info.data, "{\"v\":3}");
	cj_job_info_clear(&info);
	cj_close(db);
}

/* remove deletes a job in any state; removing again is CJ_NOT_FOUND; the
 * id can be used again afterwards. */
TEST(remove_each_state) {
	cj_db *db = open_typed("t");
	cj_state st = 0;
	/* pending */
	CHECK_OK(cj_add(db, NULL, "t", "p", NULL, 0));
	CHECK_OK(cj_remove(db, NULL, "t", "p"));
	CHECK_RC(cj_get_job_state(db, NULL, "t", "p", &st), CJ_NOT_FOUND);
	CHECK_RC(cj_remove(db, NULL, "t", "p"), CJ_NOT_FOUND);
	/* a removed pending job is not handed out */
	check_empty(db, "t", CJ_SCHED_NOW, 0);
	/* scheduled pending */
	CHECK_OK(cj_add(db, NULL, "t", "s", NULL, t_epoch() + 3600));
	CHECK_OK(cj_remove(db, NULL, "t", "s"));
	check_empty(db, "t", CJ_SCHED_ANY, 0);
	/* running: the processor is halted, nothing it writes lands */
	CHECK_OK(cj_add(db, NULL, "t", "r", NULL, 0));
	cj_job *job = take(db, "t");
	CHECK_OK(cj_remove(db, NULL, "t", "r"));
	CHECK_RC(cj_get_job_state(db, NULL, "t", "r", &st), CJ_NOT_FOUND);
	CHECK_RC(cj_update(db, NULL, job, "{\"late\":1}"), CJ_HALT);
	CHECK_RC(cj_finish(db, NULL, job, "{\"late\":2}"), CJ_HALT);
	CHECK_RC(cj_get_job_state(db, NULL, "t", "r", &st), CJ_NOT_FOUND);
	cj_job_free(job);
	/* finished */
	CHECK_OK(cj_add(db, NULL, "t", "f", NULL, 0));
	job = take(db, "t");
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	CHECK_OK(cj_remove(db, NULL, "t", "f"));
	CHECK_RC(cj_get_job_state(db, NULL, "t", "f", &st), CJ_NOT_FOUND);
	/* the id is free again */
	CHECK_OK(cj_add(db, NULL, "t", "f", "{\"again\":true}", 0));
	CHECK_INT(state_of(db, "t", "f"), CJ_PENDING);
	check_data(db, "t", "f", "{\"again\":true}");
	CHECK_INT(count_jobs(db, NULL), 1);
	cj_close(db);
}

/* A store of 13 pending jobs: t/x (scheduled at 5000), and ta/ and tb/
 * with ids B, a, a10, a9, b and e-acute. */
static cj_db *listing_store(void) {
	cj_db *db = t_open();
	CHECK_OK(cj_set_type_timeout(db, "tb", 60));
	CHECK_OK(cj_set_type_timeout(db, "ta", 60));
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	const char *ids[] = {"b", "a10", "a9", "B", "\xc3\xa9", "a"};
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		CHECK_OK(cj_add(db, NULL, "tb", ids[i], NULL, 0));
		CHECK_OK(cj_add(db, NULL, "ta", ids[i], NULL, 0));
	}
	CHECK_OK(cj_add(db, NULL, "t", "x", NULL, 5000));
	return db;
}

/* list_jobs: (type, id) byte order; a type filter; state, sched and
 * resubmit of each job. */
TEST(list_jobs_order_and_fields) {
	cj_db *db = listing_store();
	struct listed l = {0};
	CHECK_OK(cj_list_jobs(db, NULL, NULL, list_cb, &l));
	CHECK_INT(l.n, 13);
	const char *want_ids[] = {"B", "a", "a10", "a9", "b", "\xc3\xa9"};
	CHECK_STR(l.line[0], "t/x/pending/5000/0");
	for (size_t i = 0; i < 6; i++) {
		char w[128];
		snprintf(w, sizeof w, "ta/%s/pending/0/0", want_ids[i]);
		CHECK_STR(l.line[1 + i], w);
		snprintf(w, sizeof w, "tb/%s/pending/0/0", want_ids[i]);
		CHECK_STR(l.line[7 + i], w);
	}
	/* filter by type; a type that is a prefix of others does not match
	 * them */
	memset(&l, 0, sizeof l);
	CHECK_OK(cj_list_jobs(db, NULL, "t", list_cb, &l));
	CHECK_INT(l.n, 1);
	CHECK_STR(l.line[0], "t/x/pending/5000/0");
	memset(&l, 0, sizeof l);
	CHECK_OK(cj_list_jobs(db, NULL, "tb", list_cb, &l));
	CHECK_INT(l.n, 6);
	CHECK_STR(l.line[0], "tb/B/pending/0/0");
	memset(&l, 0, sizeof l);
	CHECK_OK(cj_list_jobs(db, NULL, "nosuch", list_cb, &l));
	CHECK_INT(l.n, 0);

	/* states and the resubmit flag as listed */
	cj_job *job = take(db, "ta"); /* ta/B */
	CHECK_STR(cj_job_id(job), "B");
	CHECK_OK(cj_add(db, NULL, "ta", "B", NULL, 0)); /* flag it */
	cj_job *job2 = take(db, "ta"); /* ta/a */
	CHECK_STR(cj_job_id(job2), "a");
	CHECK_OK(cj_finish(db, NULL, job2, NULL));
	memset(&l, 0, sizeof l);
	CHECK_OK(cj_list_jobs(db, NULL, "ta", list_cb, &l));
	CHECK_INT(l.n, 6);
	CHECK_STR(l.line[0], "ta/B/running/0/1");
	CHECK_STR(l.line[1], "ta/a/finished/0/0");
	CHECK_STR(l.line[2], "ta/a10/pending/0/0");
	cj_job_free(job);
	cj_job_free(job2);
	cj_close(db);
}

/* list_jobs_from: the jobs after a place in (type, id) order, with or
 * without a type filter, whether or not a job is at that place; the jobs
 * before it are not read (the callback sees only the ones after). */
static void listed_from(cj_db *db, const char *type, const char *at, const char *ai,
                        struct listed *l) {
	memset(l, 0, sizeof *l);
	CHECK_OK(cj_list_jobs_from(db, NULL, type, at, ai, list_cb, l));
}

TEST(list_jobs_from_place) {
	cj_db *db = listing_store();
	struct listed l;
	/* every type, from the start and after a job */
	listed_from(db, NULL, NULL, NULL, &l);
	CHECK_INT(l.n, 13);
	listed_from(db, NULL, "ta", "a10", &l);
	CHECK_INT(l.n, 9);
	CHECK_STR(l.line[0], "ta/a9/pending/0/0");
	CHECK_STR(l.line[2], "ta/\xc3\xa9/pending/0/0");
	CHECK_STR(l.line[3], "tb/B/pending/0/0");
	/* an id that is a prefix of the next is not skipped with it */
	listed_from(db, "ta", "ta", "a", &l);
	CHECK_INT(l.n, 4);
	CHECK_STR(l.line[0], "ta/a10/pending/0/0");
	/* a place where no job is */
	listed_from(db, "ta", "ta", "a5", &l);
	CHECK_INT(l.n, 2 + 1);
	CHECK_STR(l.line[0], "ta/a9/pending/0/0");
	/* a type that is a prefix of others, as the place */
	listed_from(db, NULL, "t", "x", &l);
	CHECK_INT(l.n, 12);
	CHECK_STR(l.line[0], "ta/B/pending/0/0");
	/* the filter and the place: before the type, in it, after it */
	listed_from(db, "tb", "ta", "\xc3\xa9", &l);
	CHECK_INT(l.n, 6);
	listed_from(db, "tb", "tb", "b", &l);
	CHECK_INT(l.n, 1);
	CHECK_STR(l.line[0], "tb/\xc3\xa9/pending/0/0");
	listed_from(db, "tb", "tb", "\xc3\xa9", &l);
	CHECK_INT(l.n, 0);
	listed_from(db, "t", "ta", "a", &l);
	CHECK_INT(l.n, 0);
	/* pages of one job, each after the last one's job, visit every job once */
	char at[64] = "", ai[64] = "";
	size_t seen = 0;
	for (;;) {
		listed_from(db, NULL, *at ? at : NULL, *at ? ai : NULL, &l);
		if (l.n == 0) break;
		CHECK(++seen <= 13);
		char *slash = strchr(l.line[0], '/'), *slash2 = strchr(slash + 1, '/');
		snprintf(at, sizeof at, "%.*s", (int)(slash - l.line[0]), l.line[0]);
		snprintf(ai, sizeof ai, "%.*s", (int)(slash2 - slash - 1), slash + 1);
	}
	CHECK_INT(seen, 13);
	cj_close(db);
}

/* list_jobs_from: the place is both or neither of type and id, and valid. */
TEST(list_jobs_from_invalid) {
	cj_db *db = open_typed("t");
	size_t calls = 0;
	CHECK_RC(cj_list_jobs_from(db, NULL, NULL, "t", NULL, stop_cb, &calls), CJ_INVALID);
	CHECK_RC(cj_list_jobs_from(db, NULL, NULL, NULL, "j", stop_cb, &calls), CJ_INVALID);
	CHECK_RC(cj_list_jobs_from(db, NULL, NULL, "", "j", stop_cb, &calls), CJ_INVALID);
	CHECK_RC(cj_list_jobs_from(db, NULL, NULL, "t", "", stop_cb, &calls), CJ_INVALID);
	CHECK_RC(cj_list_jobs_from(db, NULL, "", "t", "j", stop_cb, &calls), CJ_INVALID);
	CHECK_RC(cj_list_jobs_from(db, NULL, NULL, "t", "j", NULL, NULL), CJ_INVALID);
	CHECK_RC(cj_list_jobs_from(NULL, NULL, NULL, "t", "j", stop_cb, &calls), CJ_INVALID);
	CHECK_INT(calls, 0);
	cj_close(db);
}

/* list_jobs: the data of each job is given; a non-zero return from the
 * callback stops the listing and is returned. */
static int data_cb(const cj_job_info *i, void *arg) {
	int *ok = arg;
	char want[64];
	snprintf(want, sizeof want, "{\"id\":\"%s\"}", i->id);
	if (json_same(i->data, want)) (*ok)++;
	return 0;
}

TEST(list_jobs_data_and_stop) {
	cj_db *db = open_typed("t");
	for (int i = 0; i < 5; i++) {
		char id[8], data[64];
		snprintf(id, sizeof id, "j%d", i);
		snprintf(data, sizeof data, "{\"id\":\"%s\"}", id);
		CHECK_OK(cj_add(db, NULL, "t", id, data, 0));
	}
	int ok = 0;
	CHECK_OK(cj_list_jobs(db, NULL, NULL, data_cb, &ok));
	CHECK_INT(ok, 5);
	size_t calls = 0;
	CHECK_RC(cj_list_jobs(db, NULL, "t", stop_cb, &calls), 42);
	CHECK_INT(calls, 2);
	calls = 0;
	CHECK_RC(cj_list_jobs(db, NULL, NULL, stop_cb, &calls), 42);
	CHECK_INT(calls, 2);
	cj_close(db);
}

struct snap_ctx {
	cj_db *db;
	t_gate added; /* the writer is done */
	int writer_rc;
	size_t calls;
	int started;
	pthread_t th;
};

static void *snap_writer(void *p) {
	struct snap_ctx *c = p;
	c->writer_rc = CJ_OK;
	for (int i = 0; i < 20 && c->writer_rc == CJ_OK; i++) {
		char id[16];
		snprintf(id, sizeof id, "z%02d", i);
		c->writer_rc = cj_add(c->db, NULL, "t", id, NULL, 0);
	}
	if (c->writer_rc == CJ_OK) c->writer_rc = cj_remove(c->db, NULL, "t", "j9");
	t_gate_open(&c->added);
	return NULL;
}

/* On its first call, lets another thread add and remove jobs, and waits
 * (a while) for it: the listing must not see those changes. */
static int snap_cb(const cj_job_info *i, void *arg) {
	(void)i;
	struct snap_ctx *c = arg;
	if (c->calls++ == 0) {
		CHECK(pthread_create(&c->th, NULL, snap_writer, c) == 0);
		c->started = 1;
		(void)t_gate_wait(&c->added, 3000);
	}
	return 0;
}

/* list_jobs reads one consistent snapshot: changes committed while it runs
 * are not seen. */
TEST(list_jobs_snapshot) {
	cj_db *db = open_typed("t");
	for (int i = 0; i < 10; i++) {
		char id[8];
		snprintf(id, sizeof id, "j%d", i);
		CHECK_OK(cj_add(db, NULL, "t", id, NULL, 0));
	}
	struct snap_ctx c;
	memset(&c, 0, sizeof c);
	c.db = db;
	t_gate_init(&c.added);
	CHECK_OK(cj_list_jobs(db, NULL, "t", snap_cb, &c));
	CHECK_INT(c.calls, 10);
	CHECK(c.started);
	pthread_join(c.th, NULL);
	CHECK_RC(c.writer_rc, CJ_OK);
	CHECK_INT(count_jobs(db, "t"), 29);
	t_gate_close(&c.added);
	cj_close(db);
}

/* The whole life of a job through the readers: pending, running,
 * finished, pending again, removed. */
TEST(add_state_walk) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	CHECK_INT(state_of(db, "t", "j"), CJ_PENDING);
	cj_job *job = take(db, "t");
	CHECK_INT(state_of(db, "t", "j"), CJ_RUNNING);
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	CHECK_INT(state_of(db, "t", "j"), CJ_FINISHED);
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	CHECK_INT(state_of(db, "t", "j"), CJ_PENDING);
	CHECK_OK(cj_remove(db, NULL, "t", "j"));
	cj_state st = 0;
	CHECK_RC(cj_get_job_state(db, NULL, "t", "j", &st), CJ_NOT_FOUND);
	cj_close(db);
}

/* ---- cj_add_ex: uniqueness ------------------------------------------------ */

/* Makes a job pending, running (returned) or finished: the only job of
 * its type, which is named like it. */
static cj_job *job_in_state(cj_db *db, const char *id, cj_state st) {
	CHECK_OK(cj_set_type_timeout(db, id, 60));
	CHECK_OK(cj_add(db, NULL, id, id, "{\"v\":1}", 0));
	if (st == CJ_PENDING) return NULL;
	cj_job *job = take_id(db, id, id);
	if (st == CJ_RUNNING) return job;
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	return NULL;
}

/* An add that the policy refuses: CJ_EXISTS, and the job is as it was
 * (state, data, time, not flagged for resubmission). */
static void check_refused(cj_db *db, const char *id, int unique, cj_state st) {
	cj_add_opts o = CJ_ADD_OPTS_INIT;
	o.unique = unique;
	o.sched_time = t_epoch() + 3600;
	CHECK_RC(cj_add_ex(db, NULL, id, id, "{\"v\":2}", &o), CJ_EXISTS);
	CHECK(strstr(cj_last_error(), id) != NULL);
	cj_job_info info;
	memset(&info, 0, sizeof info);
	CHECK_OK(cj_get_job(db, NULL, id, id, &info));
	CHECK_INT(info.state, st);
	CHECK_JSON(info.data, "{\"v\":1}");
	CHECK_INT(info.sched_time, 0);
	CHECK_INT(info.resubmit, 0);
	cj_job_info_clear(&info);
}

/* CJ_UNIQUE_ID adds a new job and refuses one in every state. */
TEST(add_unique_id) {
	cj_db *db = open_typed("t");
	cj_add_opts o = CJ_ADD_OPTS_INIT;
	o.unique = CJ_UNIQUE_ID;
	CHECK_OK(cj_add_ex(db, NULL, "t", "new", "{\"n\":1}", &o));
	check_job_is(db, "t", "new", CJ_PENDING, "{\"n\":1}");
	CHECK_RC(cj_add_ex(db, NULL, "t", "new", "{\"n\":1}", &o), CJ_EXISTS);

	(void)job_in_state(db, "p", CJ_PENDING);
	check_refused(db, "p", CJ_UNIQUE_ID, CJ_PENDING);
	cj_job *running = job_in_state(db, "r", CJ_RUNNING);
	check_refused(db, "r", CJ_UNIQUE_ID, CJ_RUNNING);
	/* the refused add did not flag the job: its finish finishes it */
	CHECK_OK(cj_finish(db, NULL, running, NULL));
	cj_job_free(running);
	CHECK_INT(state_of(db, "r", "r"), CJ_FINISHED);
	(void)job_in_state(db, "f", CJ_FINISHED);
	check_refused(db, "f", CJ_UNIQUE_ID, CJ_FINISHED);
	/* once removed, it may be added again */
	CHECK_OK(cj_remove(db, NULL, "f", "f"));
	CHECK_OK(cj_add_ex(db, NULL, "f", "f", NULL, &o));
	CHECK_INT(state_of(db, "f", "f"), CJ_PENDING);
	cj_close(db);
}

/* CJ_UNIQUE_ACTIVE refuses a pending or running job; a finished one is
 * pending again with the new data and time. */
TEST(add_unique_active) {
	cj_db *db = open_typed("t");
	cj_add_opts o = CJ_ADD_OPTS_INIT;
	o.unique = CJ_UNIQUE_ACTIVE;
	CHECK_OK(cj_add_ex(db, NULL, "t", "new", NULL, &o));
	(void)job_in_state(db, "p", CJ_PENDING);
	check_refused(db, "p", CJ_UNIQUE_ACTIVE, CJ_PENDING);
	cj_job *running = job_in_state(db, "r", CJ_RUNNING);
	check_refused(db, "r", CJ_UNIQUE_ACTIVE, CJ_RUNNING);
	cj_job_free(running);
	(void)job_in_state(db, "f", CJ_FINISHED);
	int64_t when = t_epoch() + 3600;
	o.sched_time = when;
	CHECK_OK(cj_add_ex(db, NULL, "f", "f", "{\"v\":3}", &o));
	cj_job_info info;
	memset(&info, 0, sizeof info);
	CHECK_OK(cj_get_job(db, NULL, "f", "f", &info));
	CHECK_INT(info.state, CJ_PENDING);
	CHECK_JSON(info.data, "{\"v\":3}");
	CHECK_INT(info.sched_time, when);
	cj_job_info_clear(&info);
	cj_close(db);
}

/* cj_add_ex with NULL options, or CJ_UNIQUE_NONE, is cj_add. */
TEST(add_ex_defaults_are_add) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add_ex(db, NULL, "t", "a", "{\"v\":1}", NULL));
	CHECK_OK(cj_add_ex(db, NULL, "t", "a", "{\"v\":2}", NULL));
	check_job_is(db, "t", "a", CJ_PENDING, "{\"v\":2}");
	cj_job *job = take_id(db, "t", "a");
	cj_add_opts o = CJ_ADD_OPTS_INIT;
	CHECK_OK(cj_add_ex(db, NULL, "t", "a", NULL, &o));
	CHECK_OK(cj_finish(db, NULL, job, NULL)); /* flagged: pending again */
	cj_job_free(job);
	CHECK_INT(state_of(db, "t", "a"), CJ_PENDING);
	cj_close(db);
}

/* Bad arguments of cj_add_ex and cj_unique_parse: CJ_INVALID, nothing
 * written. */
TEST(add_ex_invalid) {
	cj_db *db = open_typed("t");
	cj_add_opts o = CJ_ADD_OPTS_INIT;
	o.unique = 3;
	CHECK_RC(cj_add_ex(db, NULL, "t", "a", NULL, &o), CJ_INVALID);
	o.unique = -1;
	CHECK_RC(cj_add_ex(db, NULL, "t", "a", NULL, &o), CJ_INVALID);
	o.unique = CJ_UNIQUE_ID;
	CHECK_RC(cj_add_ex(NULL, NULL, "t", "a", NULL, &o), CJ_INVALID);
	CHECK_RC(cj_add_ex(db, NULL, "", "a", NULL, &o), CJ_INVALID);
	CHECK_RC(cj_add_ex(db, NULL, "t", NULL, NULL, &o), CJ_INVALID);
	CHECK_RC(cj_add_ex(db, NULL, "t", "a", "[1]", &o), CJ_JSON);
	o.sched_time = -5;
	CHECK_RC(cj_add_ex(db, NULL, "t", "a", NULL, &o), CJ_INVALID);
	o.sched_time = 0;
	CHECK_RC(cj_add_ex(db, NULL, "nope", "a", NULL, &o), CJ_NO_TYPE_TIMEOUT);
	CHECK_INT(count_jobs(db, NULL), 0);
	int u = 42;
	CHECK_OK(cj_unique_parse("none", &u));
	CHECK_INT(u, CJ_UNIQUE_NONE);
	CHECK_OK(cj_unique_parse("id", &u));
	CHECK_INT(u, CJ_UNIQUE_ID);
	CHECK_OK(cj_unique_parse("active", &u));
	CHECK_INT(u, CJ_UNIQUE_ACTIVE);
	CHECK_RC(cj_unique_parse("ID", &u), CJ_INVALID);
	CHECK_RC(cj_unique_parse("", &u), CJ_INVALID);
	CHECK_RC(cj_unique_parse(NULL, &u), CJ_INVALID);
	CHECK_RC(cj_unique_parse("id", NULL), CJ_INVALID);
	cj_close(db);
}

/* In the caller's transaction a refused add writes nothing and leaves the
 * transaction usable: its other writes commit. */
TEST(add_ex_refused_in_tx) {
	cj_db *db = open_typed("t");
	CHECK_OK(cj_add(db, NULL, "t", "a", "{\"v\":1}", 0));
	cj_add_opts o = CJ_ADD_OPTS_INIT;
	o.unique = CJ_UNIQUE_ID;
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_add_ex(db, tx, "t", "b", NULL, &o));
	CHECK_RC(cj_add_ex(db, tx, "t", "b", NULL, &o), CJ_EXISTS); /* its own write */
	CHECK_RC(cj_add_ex(db, tx, "t", "a", "{\"v\":2}", &o), CJ_EXISTS);
	CHECK_OK(cj_tx_commit(tx));
	check_job_is(db, "t", "a", CJ_PENDING, "{\"v\":1}");
	CHECK_INT(state_of(db, "t", "b"), CJ_PENDING);
	cj_close(db);
}

TEST_MAIN(ENTRY(add_new_pending), ENTRY(add_data_null_is_empty_object),
          ENTRY(add_get_job_fields), ENTRY(add_missing_job),
          ENTRY(add_pending_replaces), ENTRY(add_pending_unchanged_writes_nothing),
          ENTRY(lmdb_add_unchanged_leaves_file),
          ENTRY(add_running_flags_resubmit), ENTRY(add_finished_reenqueues),
          ENTRY(remove_each_state), ENTRY(list_jobs_order_and_fields),
          ENTRY(list_jobs_data_and_stop), ENTRY(list_jobs_snapshot),
          ENTRY(list_jobs_from_place), ENTRY(list_jobs_from_invalid),
          ENTRY(add_state_walk), ENTRY(add_unique_id), ENTRY(add_unique_active),
          ENTRY(add_ex_defaults_are_add), ENTRY(add_ex_invalid), ENTRY(add_ex_refused_in_tx))
