/*
 * The PostgreSQL engine's reads answered from what a process knows of its
 * own commits (src/engine/pg_spec.c), when another process changed the job
 * since: every call returns what it returns when it reads the store, and
 * leaves the store as it would.
 *
 * In each case this process (A) takes a job, so that it knows the job's
 * row as its accept wrote it; another process (B) then changes the job
 * (or the type) through its own handle; then A's call, which answers its
 * read from what A knew and checks that with its commit, must find the
 * change. (test_pg the_cache_stays_bounded checks the cache's bounds.)
 *
 * Runs when CJ_TEST_URL is a PostgreSQL URL; skips otherwise.
 */
#include "testutil.h"

#include <unistd.h>

static int is_pg(const char *u) {
	return u && (strncmp(u, "postgresql://", 13) == 0 || strncmp(u, "postgres://", 11) == 0);
}

static cj_db *open_quiet(void) {
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1; /* its passes would read the jobs too */
	return t_open_opts(&o);
}

/* ---- process B ------------------------------------------------------------------ */

/* B: waits for go, opens its own handle, runs act, and sends back what act
 * wrote to out (a lock). Forked before A opens its handle, so that no
 * thread of the library runs at the fork. */
struct other {
	t_gate go;
	chan back;
	void (*act)(cj_db *db, char out[64]);
};

static int other_main(void *p) {
	struct other *o = p;
	if (t_gate_wait(&o->go, t_bound_ms(60000)) != 0) return 2;
	cj_db *db = open_quiet();
	char out[64] = "";
	o->act(db, out);
	cj_close(db);
	chan_send(&o->back, out, sizeof out);
	return 0;
}

static int other_start(struct other *o, void (*act)(cj_db *, char[64])) {
	o->act = act;
	gates_init(&o->go);
	chan_init(&o->back);
	return t_spawn(other_main, o);
}

/* Lets B act, and waits until it has. */
static void other_run(struct other *o, int pid, char out[64]) {
	t_gate_open(&o->go);
	chan_recv(&o->back, out, 64, t_bound_ms(60000));
	check_exit(pid, t_bound_ms(60000), 0);
	gates_close(&o->go);
	chan_close(&o->back);
}

/* ---- cases -------------------------------------------------------------------------- */

static void remove_and_add_again(cj_db *db, char out[64]) {
	(void)out;
	CHECK_OK(cj_remove(db, NULL, "t", "u"));
	CHECK_OK(cj_remove(db, NULL, "t", "f"));
	CHECK_OK(cj_add(db, NULL, "t", "u", "{\"by\":\"b\"}", 0));
	CHECK_OK(cj_add(db, NULL, "t", "f", "{\"by\":\"b\"}", 0));
}

/* A's jobs were removed and added again by B: A's cj_update and cj_finish
 * are told CJ_HALT, and the jobs stay as B left them. */
TEST(update_and_finish_see_a_removal) {
	struct other o;
	int pid = other_start(&o, remove_and_add_again);
	cj_db *db = open_quiet();
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_add(db, NULL, "t", "u", "{\"by\":\"a\"}", 0));
	CHECK_OK(cj_add(db, NULL, "t", "f", "{\"by\":\"a\"}", 0));
	cj_job *f = take_id(db, "t", "f"), *u = take_id(db, "t", "u"); /* in key order */
	char out[64];
	other_run(&o, pid, out);
	CHECK_RC(cj_update(db, NULL, u, "{\"n\":1}"), CJ_HALT);
	CHECK_RC(cj_finish(db, NULL, f, "{\"n\":1}"), CJ_HALT);
	check_job_is(db, "t", "u", CJ_PENDING, "{\"by\":\"b\"}");
	check_job_is(db, "t", "f", CJ_PENDING, "{\"by\":\"b\"}");
	cj_job_free(u);
	cj_job_free(f);
	cj_close(db);
}

static void add_while_running(cj_db *db, char out[64]) {
	(void)out;
	CHECK_OK(cj_add(db, NULL, "t", "r", "{\"by\":\"b\"}", 0)); /* flags it resubmitted */
}

/* B added A's running job again: A's cj_finish puts it back to pending, as
 * a resubmitted job's finish does, instead of finishing it. */
TEST(finish_sees_a_resubmit) {
	struct other o;
	int pid = other_start(&o, add_while_running);
	cj_db *db = open_quiet();
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_add(db, NULL, "t", "r", "{\"by\":\"a\"}", 0));
	cj_job *r = take_id(db, "t", "r");
	char out[64];
	other_run(&o, pid, out);
	CHECK_OK(cj_finish(db, NULL, r, "{\"done\":1}"));
	CHECK_INT(state_of(db, "t", "r"), CJ_PENDING);
	cj_job_free(r);
	cj_close(db);
}

static void take_it_over(cj_db *db, char out[64]) {
	CHECK_OK(cj_remove(db, NULL, "t", "e"));
	CHECK_OK(cj_add(db, NULL, "t", "e", "{\"by\":\"b\"}", 0));
	cj_job *e = take_id(db, "t", "e");
	snprintf(out, 64, "%s", cj_job_lock(e));
	cj_job_free(e);
}

/* The failure path: A's knowledge says the job is held with A's old lock,
 * so a finish with the lock B's accept gave it fails at first (CJ_HALT),
 * before anything was asked of the store. That failure is returned only
 * once the store confirms what it was based on: here it does not, and the
 * finish runs again, reads the job, and succeeds. */
TEST(a_failure_on_stale_knowledge_is_checked) {
	struct other o;
	int pid = other_start(&o, take_it_over);
	cj_db *db = open_quiet();
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_add(db, NULL, "t", "e", "{\"by\":\"a\"}", 0));
	cj_job *mine = take_id(db, "t", "e");
	char lock[64];
	other_run(&o, pid, lock);
	cj_job *theirs;
	CHECK_OK(cj_job_resume("t", "e", lock, &theirs));
	CHECK_OK(cj_finish(db, NULL, theirs, "{\"done\":1}"));
	CHECK_INT(state_of(db, "t", "e"), CJ_FINISHED);
	CHECK_RC(cj_finish(db, NULL, mine, NULL), CJ_HALT);
	cj_job_free(theirs);
	cj_job_free(mine);
	cj_close(db);
}

static void set_a_policy(cj_db *db, char out[64]) {
	(void)out;
	cj_retry_policy p = {5, 0, 0, 1, 0};
	CHECK_OK(cj_set_type_policy(db, "t", &p));
}

/* A knows the type has no retry policy (its last cj_fail read that); B
 * gives it one: A's next cj_fail retries the job instead of making it
 * dead. The absence of a type setting is checked as its value is. */
TEST(fail_sees_a_new_policy) {
	struct other o;
	int pid = other_start(&o, set_a_policy);
	cj_db *db = open_quiet();
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_add(db, NULL, "t", "p1", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "t", "p2", NULL, 0));
	cj_job *p1 = take_id(db, "t", "p1");
	CHECK_OK(cj_fail(db, NULL, p1, "{\"e\":1}"));
	CHECK_INT(state_of(db, "t", "p1"), CJ_DEAD);
	cj_job *p2 = take_id(db, "t", "p2");
	char out[64];
	other_run(&o, pid, out);
	CHECK_OK(cj_fail(db, NULL, p2, "{\"e\":2}"));
	CHECK_INT(state_of(db, "t", "p2"), CJ_PENDING);
	cj_job_free(p1);
	cj_job_free(p2);
	cj_close(db);
}

static void remove_and_add_c(cj_db *db, char out[64]) {
	(void)out;
	CHECK_OK(cj_remove(db, NULL, "t", "c"));
	CHECK_OK(cj_add(db, NULL, "t", "c", "{\"by\":\"b\"}", 0));
}

static uint64_t round_trips(cj_db *db) {
	cj_stats st;
	CHECK_OK(cj_db_stats(db, &st));
	return st.round_trips;
}

/* A key whose cached answer proved wrong is not answered from the cache
 * again, even once A's own accept wrote it: a key other processes change
 * would cost a rollback each time. A's finish of the job it took again
 * reads the job (two round trips) instead of trusting what it wrote (one). */
TEST(a_key_found_changed_is_read_from_then_on) {
	struct other o;
	int pid = other_start(&o, remove_and_add_c);
	cj_db *db = open_quiet();
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_add(db, NULL, "t", "a", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "t", "c", "{\"by\":\"a\"}", 0));
	cj_job *a = take_id(db, "t", "a");
	CHECK_OK(cj_finish(db, NULL, a, NULL)); /* the type's retention is known */
	cj_job_free(a);
	cj_job *c = take_id(db, "t", "c");
	char out[64];
	other_run(&o, pid, out);
	CHECK_RC(cj_finish(db, NULL, c, NULL), CJ_HALT);
	cj_job_free(c);
	c = take_id(db, "t", "c");
	uint64_t before = round_trips(db);
	CHECK_OK(cj_finish(db, NULL, c, NULL));
	uint64_t took = round_trips(db) - before;
	note("  the finish took %llu round trips\n", (unsigned long long)took);
	CHECK(took >= 2);
	CHECK_INT(state_of(db, "t", "c"), CJ_FINISHED);
	cj_job_free(c);
	cj_close(db);
}

int main(int argc, char **argv) {
	int listing = argc == 2 && strcmp(argv[1], "--list") == 0;
	if (!is_pg(getenv("CJ_TEST_URL")) && !listing) {
		printf("test_pg_spec: skipped: CJ_TEST_URL is not a PostgreSQL URL\n");
		return 0;
	}
	static const struct t_entry entries[] = {
		ENTRY(update_and_finish_see_a_removal),
		ENTRY(finish_sees_a_resubmit),
		ENTRY(a_failure_on_stale_knowledge_is_checked),
		ENTRY(fail_sees_a_new_policy),
		ENTRY(a_key_found_changed_is_read_from_then_on),
	};
	return t_main(argc, argv, entries, sizeof entries / sizeof entries[0]);
}
