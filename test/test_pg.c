/*
 * The PostgreSQL engine's own behaviour, beyond the conformance suite:
 * the caller's SQL in the library's transactions (cj_tx_native), the
 * rollbacks it does not wait for, schema versions, several stores in one database, a server restart under a
 * blocked cj_accept, several processor processes draining a queue, and
 * notifications sent and received only where something waits.
 *
 * Runs when CJ_TEST_URL is a PostgreSQL URL (see scripts/pg.sh); skips
 * otherwise. The restart case starts a private server of its own with
 * scripts/pg.sh (found next to this file, or at CJ_PG_SH), so it never
 * disturbs the server other tests use.
 */
#include "cj_int.h"
#include "testutil.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef HAVE_LIBPQ
#include <libpq-fe.h>

#include "engine/pg_int.h" /* the cache's bounds */

/* ---- helpers ------------------------------------------------------------ */

static int is_pg(const char *u) {
	return u && (strncmp(u, "postgresql://", 13) == 0 || strncmp(u, "postgres://", 11) == 0);
}

/* url without its schema= parameter (a new string), and that schema (into
 * schema, when not NULL). */
static char *split_url(const char *url, char *schema, size_t cap) {
	char *u = strdup(url);
	CHECK(u != NULL);
	if (schema && cap) schema[0] = 0;
	char *q = strchr(u, '?');
	if (!q) return u;
	char *out = q, *p = q + 1;
	int first = 1;
	while (*p) {
		size_t n = strcspn(p, "&");
		if (strncmp(p, "schema=", 7) == 0) {
			if (schema) snprintf(schema, cap, "%.*s", (int)(n - 7), p + 7);
		} else if (n) {
			*out++ = first ? '?' : '&';
			memmove(out, p, n);
			out += n;
			first = 0;
		}
		p += n;
		if (*p == '&') p++;
	}
	*out = 0;
	return u;
}

/* The URL of schema name on the server under test. */
static char *url_with_schema(const char *name) {
	char *base = split_url(t_url(), NULL, 0);
	size_t n = strlen(base) + strlen(name) + 16;
	char *u = malloc(n);
	CHECK(u != NULL);
	snprintf(u, n, "%s%sschema=%s", base, strchr(base, '?') ? "&" : "?", name);
	free(base);
	return u;
}

/* The case's schema name. */
static const char *case_schema(void) {
	static char s[128];
	free(split_url(t_url(), s, sizeof s));
	CHECK(s[0] != 0);
	return s;
}

/* A plain libpq connection to the server under test. */
static PGconn *sql_connect(void) {
	char *u = split_url(t_url(), NULL, 0);
	PGconn *pg = PQconnectdb(u);
	free(u);
	if (PQstatus(pg) != CONNECTION_OK)
		t_fail(__FILE__, __LINE__, "connect: %s", PQerrorMessage(pg));
	return pg;
}

/* Runs sql; fails the case unless it succeeds. */
static void sql_ok(PGconn *pg, const char *sql) {
	PGresult *r = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		t_fail(__FILE__, __LINE__, "%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
}

/* The integer that a one-value query returns. */
static long long sql_int(PGconn *pg, const char *sql) {
	PGresult *r = PQexec(pg, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		t_fail(__FILE__, __LINE__, "%s: %s", sql, PQresultErrorMessage(r));
	long long v = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* ---- the caller's SQL in the library's transaction -------------------------- */

/* A statement of the caller's on the native handle never runs before a
 * write the library made ahead of it in the transaction: it fails while
 * the write's answer is due, and runs after it once cj_tx_native() was
 * called again (the write's key is the caller's own, read here in the
 * engine's table: space 1). */
TEST(native_sql_follows_the_library_writes) {
	cj_db *db = t_open();
	char sql[512];
	snprintf(sql, sizeof sql,
	         "UPDATE \"%s\".kv SET v = 'caller'::bytea WHERE space = 1 AND k = 'k'::bytea",
	         case_schema());
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	PGconn *native = cj_tx_native(tx);
	CHECK(native != NULL);
	CHECK_OK(cj_tx_put(tx, "k", 1, "lib", 3));
	PGresult *r = PQexec(native, sql);
	if (PQresultStatus(r) == PGRES_COMMAND_OK) /* then it saw the put */
		CHECK_STR(PQcmdTuples(r), "1");
	PQclear(r);
	r = PQexec(cj_tx_native(tx), sql);
	CHECK_INT(PQresultStatus(r), PGRES_COMMAND_OK);
	CHECK_STR(PQcmdTuples(r), "1");
	PQclear(r);
	CHECK_OK(cj_tx_commit(tx));
	CHECK_OK(cj_tx_begin(db, &tx));
	void *v = NULL;
	size_t vl = 0;
	CHECK_OK(cj_tx_get(tx, "k", 1, &v, &vl));
	CHECK_INT(vl, 6);
	CHECK(memcmp(v, "caller", 6) == 0);
	cj_free(v);
	cj_tx_abort(tx);
	cj_close(db);
}

TEST(native_sql_commits_with_finish) {
	cj_db *db = t_open();
	CHECK_STR(cj_db_engine(db), "postgresql");
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_add(db, NULL, "t", "a", "{\"n\":1}", 0));
	CHECK_OK(cj_add(db, NULL, "t", "b", "{\"n\":2}", 0));

	PGconn *pg = sql_connect();
	char sql[512];
	snprintf(sql, sizeof sql, "CREATE TABLE \"%s\".results (id text, v int)", case_schema());
	sql_ok(pg, sql);

	/* committed together */
	cj_job *job = take_id(db, "t", "a");
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	PGconn *native = cj_tx_native(tx);
	CHECK(native != NULL);
	CHECK_INT(PQtransactionStatus(native), PQTRANS_INTRANS);
	snprintf(sql, sizeof sql, "INSERT INTO \"%s\".results VALUES ('a', 1)", case_schema());
	sql_ok(native, sql);
	CHECK_OK(cj_finish(db, tx, job, "{\"n\":10}"));
	/* not visible outside before the commit */
	snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".results", case_schema());
	CHECK_INT(sql_int(pg, sql), 0);
	CHECK_OK(cj_tx_commit(tx));
	CHECK_INT(sql_int(pg, sql), 1);
	CHECK_INT(state_of(db, "t", "a"), CJ_FINISHED);
	cj_job_free(job);

	/* rolled back together */
	job = take_id(db, "t", "b");
	CHECK_OK(cj_tx_begin(db, &tx));
	snprintf(sql, sizeof sql, "INSERT INTO \"%s\".results VALUES ('b', 2)", case_schema());
	sql_ok(cj_tx_native(tx), sql);
	CHECK_OK(cj_finish(db, tx, job, "{\"n\":20}"));
	cj_tx_abort(tx);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".results", case_schema());
	CHECK_INT(sql_int(pg, sql), 1);
	CHECK_INT(state_of(db, "t", "b"), CJ_RUNNING);

	/* a failed statement of the caller fails the commit: nothing lands */
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_update(db, tx, job, "{\"n\":30}"));
	PGresult *r = PQexec(cj_tx_native(tx), "SELECT 1/0");
	CHECK_INT(PQresultStatus(r), PGRES_FATAL_ERROR);
	PQclear(r);
	CHECK_RC(cj_tx_commit(tx), CJ_STORE);
	char *data = NULL;
	CHECK_OK(cj_get_job_data(db, NULL, "t", "b", &data));
	CHECK(strstr(data, "30") == NULL);
	cj_free(data);

	/* the handle goes on working */
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	CHECK_INT(state_of(db, "t", "b"), CJ_FINISHED);
	cj_job_free(job);
	PQfinish(pg);
	cj_close(db);
}

/* ---- transactions that end without a commit ----------------------------------- */

/* Opens the store under test without a monitor, its connections named app
 * (application_name in the URL), so that pg_stat_activity tells them from
 * the others'. */
static cj_db *open_as_app(const char *app) {
	size_t n = strlen(t_url()) + strlen(app) + 32;
	char *u = malloc(n);
	CHECK(u != NULL);
	snprintf(u, n, "%s&application_name=%s", t_url(), app);
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = NULL;
	CHECK_OK(cj_open(u, &o, &db));
	free(u);
	return db;
}

/* Waits until no connection of application app is inside a transaction
 * (generous bound), then returns their backends' pids, "p,p,..." (free). */
static char *settled_backends(PGconn *pg, const char *app) {
	char sql[256];
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' "
	         "AND state LIKE 'idle in transaction%%'",
	         app);
	long long open_tx;
	int64_t give_up = t_now_ms() + 10000;
	while ((open_tx = sql_int(pg, sql)) != 0 && t_now_ms() < give_up) usleep(10000);
	CHECK_INT(open_tx, 0);
	/* the listener connects on its own thread: wait until it has (it
	 * runs no statement while nothing waits) */
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' "
	         "AND query = ''",
	         app);
	long long listeners;
	give_up = t_now_ms() + 30000;
	while ((listeners = sql_int(pg, sql)) != 1 && t_now_ms() < give_up) usleep(10000);
	CHECK_INT(listeners, 1);
	snprintf(sql, sizeof sql,
	         "SELECT coalesce(string_agg(pid::text, ',' ORDER BY pid), '') "
	         "FROM pg_stat_activity WHERE application_name = '%s'",
	         app);
	PGresult *r = PQexec(pg, sql);
	CHECK_INT(PQresultStatus(r), PGRES_TUPLES_OK);
	char *pids = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	CHECK(pids != NULL);
	return pids;
}

/* Reads, and accepts that find nothing, end their transactions with a
 * ROLLBACK the engine does not wait for: none of the handle's connections
 * stays inside a transaction (holding a snapshot), they stay pooled (no
 * new backend), and the calls that take them next read the answer and
 * work. */
static void read_calls(cj_db *db) {
	cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
	ao.timeout_ms = 0;
	cj_job *job = NULL;
	for (int i = 0; i < 20; i++) {
		CHECK_INT(state_of(db, "t", "a"), CJ_PENDING);
		CHECK_RC(cj_accept(db, "none", &ao, &job, NULL), CJ_NOT_FOUND);
	}
}

TEST(reads_leave_no_open_transaction) {
	char app[64];
	snprintf(app, sizeof app, "cjt_ro_%d", (int)getpid());
	cj_db *db = open_as_app(app); /* no monitor: its reads would come and go */
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_add(db, NULL, "t", "a", NULL, 0));
	PGconn *pg = sql_connect();
	read_calls(db);
	char *before = settled_backends(pg, app);
	CHECK(strchr(before, ',') != NULL); /* the listener's, and pooled ones */
	read_calls(db);
	char *after = settled_backends(pg, app);
	CHECK_STR(after, before);

	cj_job *job = take_id(db, "t", "a");
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	CHECK_INT(state_of(db, "t", "a"), CJ_FINISHED);
	cj_job_free(job);
	free(before);
	free(after);
	PQfinish(pg);
	cj_close(db);
}

/* ---- notifications only where something waits ------------------------------ */

/* The handle's cj_stats. */
static cj_stats stats_of(cj_db *db) {
	cj_stats st;
	CHECK_OK(cj_db_stats(db, &st));
	return st;
}

/* Adds 10 jobs of type "u", which nothing waits for, in a process of its
 * own, once the gate arg opens: 0 when its handle sent no notification.
 * (Forked before the case's handle exists: a child forked after its
 * listener thread connected would inherit that thread's allocations, out
 * of reach.) */
static int add_unawaited(void *arg) {
	if (t_gate_wait(arg, t_bound_ms(60000)) != 0) return 90;
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = t_open_opts(&o);
	for (int i = 0; i < 10; i++) {
		char id[16];
		snprintf(id, sizeof id, "u%d", i);
		CHECK_OK(cj_add(db, NULL, "u", id, NULL, 0));
	}
	uint64_t sent = stats_of(db).notifications_sent;
	cj_close(db);
	return sent == 0 ? 0 : 1;
}

/* Adds job ("v", "x") once the listener of application arg took the locks
 * of what it waits for (its statement ended): 0 when its handle sent the
 * notification. */
static int add_awaited(void *arg) {
	const char *app = arg;
	PGconn *pg = sql_connect();
	char sql[512];
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' "
	         "AND query LIKE '%%pg_advisory_lock_shared%%' AND state = 'idle'",
	         app);
	int64_t give_up = t_now_ms() + t_bound_ms(30000);
	while (sql_int(pg, sql) != 1 && t_now_ms() < give_up) usleep(10000);
	CHECK_INT(sql_int(pg, sql), 1);
	PQfinish(pg);
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = t_open_opts(&o);
	CHECK_OK(cj_add(db, NULL, "v", "x", NULL, 0));
	uint64_t sent = stats_of(db).notifications_sent;
	cj_close(db);
	return sent == 1 ? 0 : 1;
}

/* A process whose handle waits for nothing receives no notification, and
 * the commits of others send none: the listener LISTENs, and holds the
 * lock of a wake word, only while a wait wants it. Once the handle waits
 * for a job, another process's cj_add of it notifies, and wakes it. (The
 * handle's accept that finds nothing started its listener.) */
TEST(notifications_only_where_something_waits) {
	char app[64];
	snprintf(app, sizeof app, "cjt_nw_%d", (int)getpid());
	t_gate go;
	t_gate_init(&go);
	int pid1 = t_spawn(add_unawaited, &go), pid2 = t_spawn(add_awaited, app);
	cj_db *db = open_as_app(app);
	CHECK_OK(cj_set_type_timeout(db, "u", 60));
	CHECK_OK(cj_set_type_timeout(db, "v", 60));
	cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
	ao.timeout_ms = 0;
	cj_job *job = NULL;
	CHECK_RC(cj_accept(db, "v", &ao, &job, NULL), CJ_NOT_FOUND);
	t_gate_open(&go);
	CHECK_INT(t_join(pid1, t_bound_ms(60000)), 0);
	/* woken by the notification of "v", which came after those of "u"
	 * had they been sent: all would have been received by then */
	ao.timeout_ms = t_bound_ms(60000);
	CHECK_OK(cj_accept(db, "v", &ao, &job, NULL));
	CHECK_STR(cj_job_id(job), "x");
	CHECK_INT(t_join(pid2, t_bound_ms(60000)), 0);
	cj_stats st = stats_of(db);
	CHECK(st.notifications_received < 10);
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	cj_close(db);
	t_gate_close(&go);
}

#ifdef CJ_TEST_FAULTS
struct late_waiter {
	t_gate held, go;
};

/* Adds job ("w", "x") while the acceptor is held after its look found
 * nothing and before it sleeps: nothing listens for it, so no notification
 * is sent (checked: 0 then); then lets the acceptor go on. */
static int add_before_sleep(void *arg) {
	struct late_waiter *l = arg;
	if (t_gate_wait(&l->held, t_bound_ms(30000)) != 0) return 90;
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = t_open_opts(&o);
	CHECK_OK(cj_add(db, NULL, "w", "x", NULL, 0));
	uint64_t sent = stats_of(db).notifications_sent;
	cj_close(db);
	t_gate_open(&l->go);
	return sent == 0 ? 0 : 1;
}
#endif

/* The first wait of a handle: another process commits the job between the
 * acceptor's look and its sleep, while nothing listens (no notification
 * is sent). The acceptor wakes all the same, at once: its listener bumps
 * every word once it holds the words waited for, which makes the token
 * taken before the look stale. */
TEST(first_wait_sees_a_commit_made_before_it_listened) {
#ifndef CJ_TEST_FAULTS
	note("  skipped: not a fault-injection build\n");
#else
	struct late_waiter l;
	t_gate_init(&l.held);
	t_gate_init(&l.go);
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = t_open_opts(&o);
	CHECK_OK(cj_set_type_timeout(db, "w", 60));
	cj__fault_hold(CJ_HOLD_ACCEPT_SLEEP, l.held.fd[1], l.go.fd[0]);
	int pid = t_spawn(add_before_sleep, &l);
	cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
	ao.timeout_ms = t_bound_ms(60000); /* far longer than the wake-up takes */
	cj_job *job = NULL;
	int64_t t0 = t_now_ms();
	CHECK_OK(cj_accept(db, "w", &ao, &job, NULL));
	CHECK(t_now_ms() - t0 < t_bound_ms(30000));
	CHECK_INT(t_join(pid, t_bound_ms(60000)), 0);
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	cj_close(db);
	t_gate_close(&l.held);
	t_gate_close(&l.go);
#endif
}

/* ---- round trips and statements per call ---------------------------------------- */

/* The handle's round trips (cj_stats.round_trips). */
static uint64_t round_trips(cj_db *db) {
	cj_stats st;
	CHECK_OK(cj_db_stats(db, &st));
	return st.round_trips;
}

/* The handle's statements (cj_stats.statements). */
static uint64_t statements(cj_db *db) {
	cj_stats st;
	CHECK_OK(cj_db_stats(db, &st));
	return st.statements;
}

enum { PER_CALL_N = 20, PER_CALL_SLACK = 4 };

/* What each call of a job's life adds to count, in PER_CALL_N calls of
 * each, with no monitor (its passes would be counted): n[0] cj_add of new
 * jobs, n[1] cj_accept, n[2] cj_finish, n[3] cj_fail of a job without a
 * retry policy (the same jobs, added again), n[4] cj_update (of the jobs
 * taken again before they fail). Checks that every call did what it
 * does. */
static void per_call(uint64_t (*count)(cj_db *), uint64_t n[5]) {
	enum { N = PER_CALL_N };
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = t_open_opts(&o);
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_INT(count(db) > 0, 1);
	char id[16];
	cj_job *jobs[N];
	cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
	ao.timeout_ms = 0;
	uint64_t before = count(db);
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof id, "j%02d", i);
		CHECK_OK(cj_add(db, NULL, "t", id, "{\"n\":1}", 0));
	}
	n[0] = count(db) - before;
	before = count(db);
	for (int i = 0; i < N; i++) CHECK_OK(cj_accept(db, "t", &ao, &jobs[i], NULL));
	n[1] = count(db) - before;
	before = count(db);
	for (int i = 0; i < N; i++) CHECK_OK(cj_finish(db, NULL, jobs[i], NULL));
	n[2] = count(db) - before;
	for (int i = 0; i < N; i++) {
		cj_job_free(jobs[i]);
		snprintf(id, sizeof id, "j%02d", i);
		CHECK_OK(cj_add(db, NULL, "t", id, "{\"n\":2}", 0));
		CHECK_OK(cj_accept(db, "t", &ao, &jobs[i], NULL));
	}
	before = count(db);
	for (int i = 0; i < N; i++) CHECK_OK(cj_update(db, NULL, jobs[i], "{\"n\":3}"));
	n[4] = count(db) - before;
	before = count(db);
	for (int i = 0; i < N; i++) CHECK_OK(cj_fail(db, NULL, jobs[i], "{\"e\":1}"));
	n[3] = count(db) - before;
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof id, "j%02d", i);
		CHECK_INT(state_of(db, "t", id), CJ_DEAD);
		cj_job_free(jobs[i]);
	}
	cj_close(db);
}

/* Whether count n of PER_CALL_N calls is per per call (a little slack for
 * the listener's own, which the handle counts too). */
static int per_call_is(uint64_t n, uint64_t per) {
	return n >= per * PER_CALL_N && n <= per * PER_CALL_N + PER_CALL_SLACK;
}

/* A job's life in round trips to the server: cj_add of a new job 2 (its
 * reads in one, the commit), cj_accept 2 (the type's limits with the
 * claim of the pending entry and of the job's row in one statement, the
 * commit), cj_finish 1 and cj_fail of a job without a retry policy 1:
 * the job's row is as this process's accept wrote it, and the type's
 * retention and policy as it read them before, so both are answered from
 * what it knows, and checked by the server in the round trip of the
 * commit (src/engine/pg_spec.c; the first finish and the first fail read
 * the type's settings, within the slack); cj_update 2 (its commit number,
 * which it writes, is taken with the check of the job's row, then the
 * commit). */
TEST(round_trips_per_call) {
	uint64_t n[5];
	per_call(round_trips, n);
	note("  round trips per call: cj_add %.2f, cj_accept %.2f, cj_finish %.2f, "
	     "cj_fail %.2f, cj_update %.2f\n", (double)n[0] / PER_CALL_N,
	     (double)n[1] / PER_CALL_N, (double)n[2] / PER_CALL_N, (double)n[3] / PER_CALL_N,
	     (double)n[4] / PER_CALL_N);
	CHECK(per_call_is(n[0], 2));
	CHECK(per_call_is(n[1], 2));
	CHECK(per_call_is(n[2], 1));
	CHECK(per_call_is(n[3], 1));
	CHECK(per_call_is(n[4], 2));
}

/* What a job's calls send the server. Each is BEGIN, its reads, its
 * writes, COMMIT and the notification: cj_add reads the job (two
 * statements: the lock on its absence, which takes the commit number too,
 * and the read) and the type, cj_accept claims after a look at the type
 * (which takes the number); cj_finish checks the job's row and the type's
 * retention (a statement each, answered from what the process knows),
 * cj_fail those and the type's policy, and cj_update the job's row and
 * takes its number (a statement of its own); each writes two keys and its
 * counters, and all but cj_add delete one key: one statement (the writes
 * held back for the next statement, pg_held.c). */
TEST(statements_per_call) {
	uint64_t n[5];
	per_call(statements, n);
	note("  statements per call: cj_add %.2f, cj_accept %.2f, cj_finish %.2f, "
	     "cj_fail %.2f, cj_update %.2f\n", (double)n[0] / PER_CALL_N,
	     (double)n[1] / PER_CALL_N, (double)n[2] / PER_CALL_N, (double)n[3] / PER_CALL_N,
	     (double)n[4] / PER_CALL_N);
	CHECK(per_call_is(n[0], 7));
	CHECK(per_call_is(n[1], 6));
	CHECK(per_call_is(n[2], 6));
	CHECK(per_call_is(n[3], 7));
	CHECK(per_call_is(n[4], 6));
}

/* Two puts of one key in a row, the second held back with the first: the
 * later value is what lands. */
TEST(puts_of_one_key_keep_the_last) {
	cj_db *db = t_open();
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_tx_put(tx, "k", 1, "first", 5));
	CHECK_OK(cj_tx_put(tx, "k", 1, "second", 6));
	CHECK_OK(cj_tx_put(tx, "l", 1, "", 0)); /* goes with the held one: empty, not NULL */
	CHECK_OK(cj_tx_put(tx, "m", 1, "third", 5)); /* held until the commit */
	CHECK_OK(cj_tx_commit(tx));
	CHECK_OK(cj_tx_begin(db, &tx));
	void *v = NULL;
	size_t vl = 0;
	CHECK_OK(cj_tx_get(tx, "k", 1, &v, &vl));
	CHECK_INT((int)vl, 6);
	CHECK(memcmp(v, "second", 6) == 0);
	cj_free(v);
	CHECK_OK(cj_tx_get(tx, "l", 1, &v, &vl));
	CHECK_INT((int)vl, 0);
	cj_free(v);
	CHECK_OK(cj_tx_get(tx, "m", 1, &v, &vl));
	CHECK_INT((int)vl, 5);
	CHECK(memcmp(v, "third", 5) == 0);
	cj_free(v);
	cj_tx_abort(tx);
	/* a put held when the transaction is abandoned is never sent */
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_tx_put(tx, "n", 1, "x", 1));
	cj_tx_abort(tx);
	CHECK_OK(cj_tx_begin(db, &tx));
	v = NULL;
	CHECK_RC(cj_tx_get(tx, "n", 1, &v, &vl), CJ_NOT_FOUND);
	cj_free(v);
	cj_tx_abort(tx);
	cj_close(db);
}

/* The engine's value of key k of the caller's space (its ops, as the core
 * calls them), in a transaction of its own: into out (cap bytes), its
 * length; -1 when absent. */
static long eng_value(cj_db *db, const char *k, char *out, size_t cap) {
	const struct cj_engine *e = db->eng;
	cj_etx *tx = NULL;
	CHECK_OK(e->begin(db->edb, 0, &tx));
	const uint8_t *v = NULL;
	size_t vl = 0;
	int rc = e->get(tx, CJ_SPACE_USER, k, strlen(k), &v, &vl);
	long n = -1;
	if (rc == CJ_OK) {
		CHECK(vl <= cap);
		memcpy(out, v, vl);
		n = (long)vl;
	} else {
		CHECK_RC(rc, CJ_NOT_FOUND);
	}
	e->abort(tx);
	return n;
}

/* A counter's value (engine.h's add) of eng_value. */
static int64_t eng_counter(cj_db *db, const char *k) {
	uint8_t b[CJ_COUNTER_LEN];
	CHECK_INT(eng_value(db, k, (char *)b, sizeof b), CJ_COUNTER_LEN);
	uint64_t u = 0;
	for (int i = 0; i < CJ_COUNTER_LEN; i++) u = u << 8 | b[i];
	return (int64_t)u;
}

/* Writes held back (pg_held.c) go as one statement only when their keys
 * differ: the server keeps one write of a row that a statement writes
 * twice. A put, a delete and an add of one key, in any order, leave what
 * they would one after the other. */
TEST(held_writes_of_one_key_keep_their_order) {
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = t_open_opts(&o);
	const struct cj_engine *e = db->eng;
	const int sp = CJ_SPACE_USER;
	uint8_t five[CJ_COUNTER_LEN] = {0, 0, 0, 0, 0, 0, 0, 5};
	cj_eadd two = {(const uint8_t *)"n", 1, 2}, one = {(const uint8_t *)"m", 1, 1};
	cj_etx *tx = NULL;
	char v[16];
	CHECK_OK(e->begin(db->edb, 1, &tx));
	CHECK_OK(e->put(tx, sp, "a", 1, "1", 1));
	CHECK_OK(e->put(tx, sp, "c", 1, "x", 1));
	CHECK_OK(e->commit(tx));

	/* a put, then a delete of the key: absent */
	CHECK_OK(e->begin(db->edb, 1, &tx));
	CHECK_OK(e->put(tx, sp, "a", 1, "2", 1));
	CHECK_OK(e->del_blind(tx, sp, "a", 1));
	CHECK_OK(e->commit(tx));
	CHECK_INT(eng_value(db, "a", v, sizeof v), -1);

	/* a delete, then a put: there */
	CHECK_OK(e->begin(db->edb, 1, &tx));
	CHECK_OK(e->del_blind(tx, sp, "c", 1));
	CHECK_OK(e->put(tx, sp, "c", 1, "y", 1));
	CHECK_OK(e->commit(tx));
	CHECK_INT(eng_value(db, "c", v, sizeof v), 1);
	CHECK(v[0] == 'y');

	/* a put of a counter, then an add to it: the sum */
	CHECK_OK(e->begin(db->edb, 1, &tx));
	CHECK_OK(e->put(tx, sp, "n", 1, five, sizeof five));
	CHECK_OK(e->add(tx, sp, &two, 1));
	CHECK_OK(e->commit(tx));
	CHECK_INT(eng_counter(db, "n"), 7);

	/* an add, then a put of the counter: the put */
	CHECK_OK(e->begin(db->edb, 1, &tx));
	CHECK_OK(e->add(tx, sp, &one, 1));
	CHECK_OK(e->put(tx, sp, "m", 1, five, sizeof five));
	CHECK_OK(e->commit(tx));
	CHECK_INT(eng_counter(db, "m"), 5);

	/* a delete, two puts and an add of distinct keys: all of them */
	CHECK_OK(e->begin(db->edb, 1, &tx));
	CHECK_OK(e->del_blind(tx, sp, "c", 1));
	CHECK_OK(e->put(tx, sp, "d", 1, "", 0));
	CHECK_OK(e->put(tx, sp, "e", 1, "z", 1));
	CHECK_OK(e->add(tx, sp, &two, 1));
	CHECK_OK(e->commit(tx));
	CHECK_INT(eng_value(db, "c", v, sizeof v), -1);
	CHECK_INT(eng_value(db, "d", v, sizeof v), 0);
	CHECK_INT(eng_value(db, "e", v, sizeof v), 1);
	CHECK(v[0] == 'z');
	CHECK_INT(eng_counter(db, "n"), 9);
	cj_close(db);
}

/* A write transaction is READ COMMITTED (pg_int.h) whatever the session's
 * default says (its BEGIN, prepared once per connection, names the level). */
TEST(write_transactions_read_committed) {
	size_t n = strlen(t_url()) + 96;
	char *u = malloc(n);
	CHECK(u != NULL);
	snprintf(u, n, "%s&options=-c%%20default_transaction_isolation%%3Dserializable", t_url());
	cj_db *db = NULL;
	CHECK_OK(cj_open(u, NULL, &db));
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	PGresult *r = PQexec(cj_tx_native(tx), "SHOW transaction_isolation");
	CHECK_INT(PQresultStatus(r), PGRES_TUPLES_OK);
	CHECK_STR(PQgetvalue(r, 0, 0), "read committed");
	PQclear(r);
	CHECK_OK(cj_tx_commit(tx));
	cj_close(db);
	free(u);
}

/* ---- commits that notify share the disk's flushes ------------------------------ */

struct slow_adder {
	cj_db *db;
	int n;
	atomic_int done;
};

static void *slow_adds(void *p) {
	struct slow_adder *a = p;
	for (int i = 0; i < a->n; i++) {
		char id[16];
		snprintf(id, sizeof id, "s%02d", i);
		CHECK_OK(cj_add(a->db, NULL, "t", id, "{}", 0));
	}
	atomic_store(&a->done, 1);
	return NULL;
}

/* A NOTIFY takes a lock that every notifying transaction of the database
 * holds until the end of its commit, the flush of its WAL included. The
 * library's commits notify: if the notification were part of them, every
 * commit that notifies (every job call) would wait for the flush of the
 * one before. Here the handle's commits take 100 ms in their flush
 * (commit_delay), while another connection notifies again and again: it
 * must never wait for them. */
TEST(notify_waits_for_no_flush) {
	enum { ADDS = 8 };
	PGconn *m = sql_connect(), *r = sql_connect();
	if (!sql_int(m, "SELECT rolsuper::int FROM pg_roles WHERE rolname = current_user")) {
		note("  skipped: commit_delay needs a superuser\n");
		PQfinish(m);
		PQfinish(r);
		return;
	}
	char *u = url_with_schema(case_schema());
	size_t n = strlen(u) + 128;
	char *slow = malloc(n);
	CHECK(slow != NULL);
	snprintf(slow, n, "%s&options=-c%%20commit_delay%%3D100000%%20-c%%20commit_siblings%%3D0",
	         u);
	cj_db *db = NULL;
	CHECK_OK(cj_open(slow, NULL, &db));
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	char sql[128];
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND "
	         "wait_event_type = 'Lock' AND wait_event = 'object'", PQbackendPID(r));

	struct slow_adder a = {db, ADDS, 0};
	pthread_t th;
	CHECK(pthread_create(&th, NULL, slow_adds, &a) == 0);
	long long samples = 0, waiting = 0;
	while (!atomic_load(&a.done)) {
		CHECK(PQsendQuery(r, "SELECT pg_notify('cjt_probe', '')") == 1);
		for (;;) {
			CHECK(PQconsumeInput(r) == 1);
			if (!PQisBusy(r)) break;
			samples++;
			waiting += sql_int(m, sql);
		}
		PGresult *res;
		while ((res = PQgetResult(r))) {
			CHECK_INT(PQresultStatus(res), PGRES_TUPLES_OK);
			PQclear(res);
		}
	}
	CHECK(pthread_join(th, NULL) == 0);
	note("  the other notifier: %lld of %lld looks found it waiting for the lock\n",
	     waiting, samples);
	/* a look may catch the moment a notification of the handle holds it */
	CHECK(waiting * 4 <= samples);
	cj_close(db);
	free(slow);
	free(u);
	PQfinish(m);
	PQfinish(r);
}

/* ---- a job whose row another transaction holds ------------------------------- */

/* cj_accept claims the first pending entry and the job's data row in one
 * statement, neither waited for. While another transaction holds the first
 * job's data row (and not its pending entry), the acceptor neither waits
 * for it nor takes the next job (the first keeps its priority): it says
 * CJ_CONFLICT; once the row is let go, the job is taken. */
TEST(accept_leaves_a_held_job) {
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = t_open_opts(&o);
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_add(db, NULL, "t", "a", "{\"n\":1}", 0));
	CHECK_OK(cj_add(db, NULL, "t", "b", "{\"n\":2}", 0));
	PGconn *pg = sql_connect();
	sql_ok(pg, "BEGIN");
	/* the row of ("data", "t", "a"): its key ends with those three strings */
	char sql[512];
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM (SELECT 1 FROM \"%s\".kv WHERE space = 0 AND "
	         "position('\\x026461746100027400026100'::bytea in k) = length(k) - 11 "
	         "FOR UPDATE) s", case_schema());
	CHECK_INT(sql_int(pg, sql), 1);
	cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
	ao.timeout_ms = 0;
	cj_job *job = NULL;
	CHECK_INT(cj_accept(db, "t", &ao, &job, NULL), CJ_CONFLICT);
	CHECK(job == NULL);
	sql_ok(pg, "COMMIT");
	CHECK_OK(cj_accept(db, "t", &ao, &job, NULL));
	CHECK_STR(cj_job_id(job), "a");
	CHECK_INT(state_of(db, "t", "b"), CJ_PENDING);
	cj_job_free(job);
	PQfinish(pg);
	cj_close(db);
}

/* ---- schema versions and names ------------------------------------------------- */

TEST(schema_version_checked) {
	cj_db *db = t_open();
	cj_close(db);
	PGconn *pg = sql_connect();
	char sql[512];
	snprintf(sql, sizeof sql,
	         "UPDATE \"%s\".meta SET value = 999 WHERE name = 'schema_version'",
	         case_schema());
	sql_ok(pg, sql);
	db = NULL;
	CHECK_RC(cj_open(t_url(), NULL, &db), CJ_STORE);
	CHECK(db == NULL);
	CHECK(strstr(cj_last_error(), "999") != NULL);
	snprintf(sql, sizeof sql,
	         "UPDATE \"%s\".meta SET value = 1 WHERE name = 'schema_version'", case_schema());
	sql_ok(pg, sql);
	db = t_open();
	cj_close(db);

	/* a schema holding something else is not taken over */
	char other[160], *u;
	snprintf(other, sizeof other, "%s_x", case_schema());
	snprintf(sql, sizeof sql, "CREATE SCHEMA \"%s\"; CREATE TABLE \"%s\".kv (a int)",
	         other, other);
	sql_ok(pg, sql);
	u = url_with_schema(other);
	CHECK_RC(cj_open(u, NULL, &db), CJ_STORE);
	CHECK(db == NULL);
	free(u);

	/* bad names */
	u = url_with_schema("no-dash");
	CHECK_RC(cj_open(u, NULL, &db), CJ_INVALID);
	free(u);
	u = url_with_schema("a%2");
	CHECK_RC(cj_open(u, NULL, &db), CJ_INVALID);
	free(u);

	/* cj_options.schema, when the URL names none; the URL wins */
	char *base = split_url(t_url(), NULL, 0);
	char oname[160];
	snprintf(oname, sizeof oname, "%s_o", case_schema());
	cj_options o = CJ_OPTIONS_INIT;
	o.schema = oname;
	o.no_monitor = 1;
	CHECK_OK(cj_open(base, &o, &db));
	CHECK_OK(cj_set_type_timeout(db, "only_o", 5));
	cj_close(db);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".kv", oname);
	CHECK(sql_int(pg, sql) > 0);
	o.schema = "not_this_one";
	CHECK_OK(cj_open(t_url(), &o, &db));
	int64_t secs;
	CHECK_RC(cj_get_type_timeout(db, "only_o", &secs), CJ_NOT_FOUND);
	cj_close(db);
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM pg_namespace WHERE nspname = 'not_this_one'");
	CHECK_INT(sql_int(pg, sql), 0);
	free(base);
	PQfinish(pg);
}

TEST(two_schemas_are_two_stores) {
	char a[160], b[160];
	snprintf(a, sizeof a, "%s_a", case_schema());
	snprintf(b, sizeof b, "%s_b", case_schema());
	char *ua = url_with_schema(a), *ub = url_with_schema(b);
	cj_db *da = NULL, *db = NULL;
	CHECK_OK(cj_open(ua, NULL, &da));
	CHECK_OK(cj_open(ub, NULL, &db));
	CHECK_OK(cj_set_type_timeout(da, "t", 60));
	int64_t secs;
	CHECK_RC(cj_get_type_timeout(db, "t", &secs), CJ_NOT_FOUND);
	CHECK_RC(cj_add(db, NULL, "t", "j", NULL, 0), CJ_NO_TYPE_TIMEOUT);
	CHECK_OK(cj_set_type_timeout(db, "t", 30));
	CHECK_OK(cj_add(da, NULL, "t", "j", "{\"in\":\"a\"}", 0));
	cj_state st;
	CHECK_RC(cj_get_job_state(db, NULL, "t", "j", &st), CJ_NOT_FOUND);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	cj_job *job = NULL;
	CHECK_RC(cj_accept(db, "t", &o, &job, NULL), CJ_NOT_FOUND);
	CHECK_OK(cj_add(db, NULL, "t", "j", "{\"in\":\"b\"}", 0));
	char *data = NULL;
	job = take_id(db, "t", "j");
	CHECK_OK(cj_get_job_data(da, NULL, "t", "j", &data));
	CHECK(strstr(data, "\"a\"") != NULL);
	cj_free(data);
	CHECK_INT(state_of(da, "t", "j"), CJ_PENDING);
	CHECK_INT(state_of(db, "t", "j"), CJ_RUNNING);
	CHECK_OK(cj_finish(db, NULL, job, NULL));
	cj_job_free(job);
	/* each store's own keys */
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(da, &tx));
	CHECK_OK(cj_tx_put(tx, "k", 1, "va", 2));
	CHECK_OK(cj_tx_commit(tx));
	CHECK_OK(cj_tx_begin(db, &tx));
	void *v = NULL;
	size_t vl = 0;
	CHECK_RC(cj_tx_get(tx, "k", 1, &v, &vl), CJ_NOT_FOUND);
	cj_tx_abort(tx);
	cj_close(da);
	cj_close(db);
	free(ua);
	free(ub);
}

TEST(unreachable_server_fails_fast) {
	char *u = strdup("postgresql:///cjtest?host=/nonexistent-cj-dir&port=1&schema=x");
	cj_db *db = NULL;
	int64_t t0 = t_now_ms();
	CHECK_RC(cj_open(u, NULL, &db), CJ_STORE);
	CHECK(t_now_ms() - t0 < 5000);
	CHECK(db == NULL);
	CHECK(strstr(cj_last_error(), "postgresql") != NULL);
	free(u);
}

/* ---- a server restart ------------------------------------------------------- */

struct restart_arg {
	const char *url;
	t_gate go;    /* the parent holds the job "before" */
	t_gate ready; /* the child is about to block */
};

/* A processor blocked in cj_accept across the restart: 0 when it got the
 * job added after the restart. */
static int blocked_acceptor(void *p) {
	struct restart_arg *a = p;
	cj_db *db = NULL;
	if (t_gate_wait(&a->go, 30000) != 0) return 7;
	if (cj_open(a->url, NULL, &db) != CJ_OK) return 2;
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 60000;
	cj_job *job = NULL;
	/* the listener connects on the first wait: be sure it is there */
	o.timeout_ms = 200;
	int rc0 = cj_accept(db, "t", &o, &job, NULL);
	if (rc0 != CJ_NOT_FOUND) {
		fprintf(stderr, "first accept: %s\n", cj_err_name(rc0));
		return 3;
	}
	o.timeout_ms = 60000;
	t_gate_open(&a->ready);
	int rc = cj_accept(db, "t", &o, &job, NULL);
	if (rc != CJ_OK) {
		fprintf(stderr, "blocked acceptor: %s (%s)\n", cj_err_name(rc), cj_last_error());
		return 4;
	}
	rc = strcmp(cj_job_id(job), "after") == 0 ? 0 : 5;
	if (cj_finish(db, NULL, job, NULL) != CJ_OK) rc = 6;
	cj_job_free(job);
	cj_close(db);
	return rc;
}

struct restart_ctx {
	char dir[4096];
	char url[8192];
};

static int restart_body(void *p) {
	struct restart_ctx *c = p;
	/* fork before this process has threads of its own */
	struct restart_arg a = {c->url, {{-1, -1}}, {{-1, -1}}};
	t_gate_init(&a.go);
	t_gate_init(&a.ready);
	int pid = t_spawn(blocked_acceptor, &a);

	cj_db *db = NULL;
	CHECK_OK(cj_open(c->url, NULL, &db));
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_add(db, NULL, "t", "before", NULL, 0));
	cj_job *held = take_id(db, "t", "before");
	t_gate_open(&a.go);
	CHECK(t_gate_wait(&a.ready, 30000) == 0);
	sleep_ms(300); /* it sleeps in cj_accept by now */

	CHECK_INT(t_sh(NULL, NULL, "sh '%s' stop '%s'", pg_script(), c->dir), 0);

	/* calls during the outage fail, and fast */
	int64_t t0 = t_now_ms();
	CHECK_RC(cj_add(db, NULL, "t", "during", NULL, 0), CJ_STORE);
	cj_state st;
	CHECK_RC(cj_get_job_state(db, NULL, "t", "before", &st), CJ_STORE);
	CHECK_RC(cj_update(db, NULL, held, NULL), CJ_STORE);
	CHECK(t_now_ms() - t0 < 10000);
	printf("  calls during the outage failed in %lld ms (%s)\n",
	       (long long)(t_now_ms() - t0), cj_last_error());
	sleep_ms(500);

	CHECK_INT(t_sh(NULL, NULL, "sh '%s' start '%s'", pg_script(), c->dir), 0);

	/* the same handle works again */
	CHECK_OK(cj_update(db, NULL, held, "{\"after\":true}"));
	CHECK_INT(state_of(db, "t", "before"), CJ_RUNNING);
	CHECK_OK(cj_finish(db, NULL, held, NULL));
	cj_job_free(held);
	int64_t t1 = t_now_ms();
	CHECK_OK(cj_add(db, NULL, "t", "after", NULL, 0));
	int st_child = t_join(pid, 30000);
	CHECK_INT(st_child, 0);
	printf("  the acceptor blocked across the restart got its job %lld ms after "
	       "cj_add\n", (long long)(t_now_ms() - t1));
	CHECK_INT(state_of(db, "t", "after"), CJ_FINISHED);
	t_gate_close(&a.go);
	t_gate_close(&a.ready);
	cj_close(db);
	return 0;
}

/* Runs body(ctx) in a child process against a private server started in
 * the case's scratch directory (which the server's user must reach), with
 * the given schema; stops the server afterwards. */
static void with_private_server(int (*body)(void *), const char *schema,
                                int64_t timeout_ms) {
	if (!pg_script()) {
		printf("  skipped: scripts/pg.sh not found (set CJ_PG_SH)\n");
		return;
	}
	struct restart_ctx *c = calloc(1, sizeof *c);
	CHECK(c != NULL);
	CHECK(chmod(t_dir(), 0755) == 0);
	snprintf(c->dir, sizeof c->dir, "%s/pg", t_dir());
	char *err = NULL;
	if (t_sh(NULL, &err, "sh '%s' start '%s'", pg_script(), c->dir) != 0)
		t_fail(__FILE__, __LINE__, "pg.sh start: %s", err);
	free(err);
	char *out = NULL;
	CHECK_INT(t_sh(&out, NULL, "sh '%s' url '%s'", pg_script(), c->dir), 0);
	out[strcspn(out, "\n")] = 0;
	snprintf(c->url, sizeof c->url, "%s%cschema=%s", out, strchr(out, '?') ? '&' : '?', schema);
	free(out);

	int pid = t_spawn(body, c);
	int st = t_join(pid, timeout_ms);
	CHECK_INT(t_sh(NULL, NULL, "sh '%s' stop '%s'", pg_script(), c->dir), 0);
	CHECK_INT(st, 0);
	free(c);
}

TEST(server_restart) { with_private_server(restart_body, "restart", 90000); }

/* Stops and starts the private server. */
static void restart_server(const struct restart_ctx *c) {
	CHECK_INT(t_sh(NULL, NULL, "sh '%s' stop '%s'", pg_script(), c->dir), 0);
	CHECK_INT(t_sh(NULL, NULL, "sh '%s' start '%s'", pg_script(), c->dir), 0);
}

static int pooled_restart_body(void *p) {
	struct restart_ctx *c = p;
	cj_db *db = NULL;
	cj_tx *tx = NULL;
	CHECK_OK(cj_open(c->url, NULL, &db));
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	CHECK_OK(cj_add(db, NULL, "t", "a", NULL, 0)); /* leaves pooled connections */
	restart_server(c);

	/* the caller's transaction begun after the restart: nothing was sent
	 * on the dead pooled connection, so it runs on a new one */
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_add(db, tx, "t", "b", NULL, 0));
	CHECK_OK(cj_tx_commit(tx));
	restart_server(c);
	CHECK_OK(cj_add(db, NULL, "t", "c", NULL, 0)); /* a call's own transaction */

	/* one open across a restart fails as documented, and writes nothing */
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_add(db, tx, "t", "d", NULL, 0));
	restart_server(c);
	CHECK_RC(cj_add(db, tx, "t", "e", NULL, 0), CJ_STORE);
	CHECK_RC(cj_tx_commit(tx), CJ_STORE);

	CHECK_INT(state_of(db, "t", "b"), CJ_PENDING);
	CHECK_INT(state_of(db, "t", "c"), CJ_PENDING);
	cj_state st;
	CHECK_RC(cj_get_job_state(db, NULL, "t", "d", &st), CJ_NOT_FOUND);
	CHECK_RC(cj_get_job_state(db, NULL, "t", "e", &st), CJ_NOT_FOUND);
	cj_close(db);
	return 0;
}

/* A transaction begun after the server restarted runs on a new connection
 * (the pooled ones died with the server); one open across it fails. */
TEST(tx_after_restart) { with_private_server(pooled_restart_body, "pooled_restart", 90000); }

/* ---- a killed writer ---------------------------------------------------------- */

static int killed_writer(void *p) {
	t_gate *held = p;
	cj_db *db = NULL;
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	if (cj_open(t_url(), &o, &db) != CJ_OK) return 2;
	cj_tx *tx = NULL;
	if (cj_tx_begin(db, &tx) != CJ_OK) return 3;
	if (cj_add(db, tx, "t", "lost", NULL, 0) != CJ_OK) return 4;
	t_gate_open(held);
	for (;;) sleep_ms(1000); /* killed here, holding the writers' turn */
}

/* A processor killed inside a write transaction neither commits it nor
 * keeps the other writers waiting: the server ends its session. */
TEST(killed_writer_releases_its_turn) {
	cj_db *db = open_typed("t");
	cj_close(db); /* fork with no threads of the library running */
	t_gate held;
	t_gate_init(&held);
	int pid = t_spawn(killed_writer, &held);
	CHECK(t_gate_wait(&held, 30000) == 0);
	kill(pid, SIGKILL);
	CHECK_INT(t_join(pid, 10000), 128 + SIGKILL);
	db = t_open();
	int64_t t0 = t_now_ms();
	CHECK_OK(cj_add(db, NULL, "t", "next", NULL, 0));
	printf("  the next writer went on after %lld ms\n", (long long)(t_now_ms() - t0));
	CHECK(t_now_ms() - t0 < 10000);
	cj_state st;
	CHECK_RC(cj_get_job_state(db, NULL, "t", "lost", &st), CJ_NOT_FOUND);
	CHECK_INT(state_of(db, "t", "next"), CJ_PENDING);
	t_gate_close(&held);
	cj_close(db);
}

/* ---- a server restart in the middle of a run ------------------------------- */

#define RUN_JOBS 600
#define RUN_PROCS 3

struct run_arg {
	const char *url;
	int n;
};

static int finished_cb(const cj_job_info *info, void *arg) {
	if (info->state == CJ_FINISHED) (*(int *)arg)++;
	return 0;
}

static int count_finished_of(cj_db *db, const char *type) {
	int n = 0;
	return cj_list_jobs(db, NULL, type, finished_cb, &n) == CJ_OK ? n : -1;
}

static int count_finished(cj_db *db) { return count_finished_of(db, "r"); }

struct finish_step {
	cj_db *db;
	cj_job *job;
};

/* cj_finish and, in the same transaction, runs/<id> += 1: the count of
 * committed finishes of the job */
static int finish_counted(cj_tx *tx, void *p) {
	struct finish_step *f = p;
	int rc = cj_finish(f->db, tx, f->job, "{\"done\":true}");
	if (rc) return rc;
	char key[64];
	snprintf(key, sizeof key, "runs/%s", cj_job_id(f->job));
	void *v = NULL;
	size_t vl = 0;
	int n = 0;
	rc = cj_tx_get(tx, key, strlen(key), &v, &vl);
	if (rc == CJ_OK) n = atoi(v);
	else if (rc != CJ_NOT_FOUND) return rc;
	cj_free(v);
	char val[16];
	snprintf(val, sizeof val, "%d", n + 1);
	return cj_tx_put(tx, key, strlen(key), val, strlen(val));
}

/* A processor that rides out the restart: a call that fails with CJ_STORE
 * is tried again a little later. It stops when every job is finished. */
static int run_processor(void *p) {
	struct run_arg *a = p;
	cj_db *db = NULL;
	if (cj_open(a->url, NULL, &db) != CJ_OK) return 2;
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 1000;
	o.no_schedule = a->n % 2;
	int64_t end = t_now_ms() + 120000;
	int rc = 0;
	while (t_now_ms() < end) {
		cj_job *job = NULL;
		rc = cj_accept(db, "r", &o, &job, NULL);
		if (rc == CJ_STORE) {
			sleep_ms(50);
			continue;
		}
		if (rc == CJ_NOT_FOUND) {
			rc = 0;
			int done = count_finished(db);
			if (done == RUN_JOBS) break;
			if (done < 0) sleep_ms(50);
			continue;
		}
		if (rc) break;
		struct finish_step f = {db, job};
		do {
			/* a commit whose answer was lost may have landed: the retry
			 * then gets CJ_HALT and its count does not land twice */
			rc = cj_transact(db, finish_counted, &f);
			if (rc == CJ_STORE) sleep_ms(50);
		} while (rc == CJ_STORE && t_now_ms() < end);
		cj_job_free(job);
		if (rc && rc != CJ_HALT) break;
		rc = 0;
	}
	if (rc) fprintf(stderr, "processor %d: %s (%s)\n", a->n, cj_err_name(rc), cj_last_error());
	cj_close(db);
	return rc ? 3 : t_now_ms() < end ? 0 : 4;
}

/* Sets type's timeout and adds n jobs, "<type>0000" on, in one
 * transaction, through a handle of its own. */
static void fill_queue(const char *url, const char *type, int64_t timeout_s, int n) {
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = NULL;
	CHECK_OK(cj_open(url, &o, &db));
	CHECK_OK(cj_set_type_timeout(db, type, timeout_s));
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	for (int i = 0; i < n; i++) {
		char id[300];
		snprintf(id, sizeof id, "%s%04d", type, i);
		CHECK_OK(cj_add(db, tx, type, id, NULL, 0));
	}
	CHECK_OK(cj_tx_commit(tx));
	cj_close(db);
}

static int restart_run_body(void *p) {
	struct restart_ctx *c = p;
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = NULL;
	/* a short timeout: an accept whose commit landed but whose answer was
	 * lost in the restart comes back through the processors' monitors */
	fill_queue(c->url, "r", 2, RUN_JOBS);

	struct run_arg args[RUN_PROCS];
	int pids[RUN_PROCS];
	for (int i = 0; i < RUN_PROCS; i++) {
		args[i].url = c->url;
		args[i].n = i;
		pids[i] = t_spawn(run_processor, &args[i]);
	}
	/* restart once a fair part of the run is done */
	CHECK_OK(cj_open(c->url, &o, &db));
	int64_t t0 = t_now_ms();
	int done;
	while ((done = count_finished(db)) < RUN_JOBS / 4) {
		CHECK(done >= 0);
		CHECK(t_now_ms() - t0 < 60000);
		sleep_ms(20);
	}
	cj_close(db);
	CHECK_INT(t_sh(NULL, NULL, "sh '%s' stop '%s'", pg_script(), c->dir), 0);
	sleep_ms(300);
	CHECK_INT(t_sh(NULL, NULL, "sh '%s' start '%s'", pg_script(), c->dir), 0);
	printf("  restarted the server after %d of %d jobs\n", done, RUN_JOBS);

	for (int i = 0; i < RUN_PROCS; i++) CHECK_INT(t_join(pids[i], 150000), 0);

	/* every job finished, and its finish committed exactly once */
	CHECK_OK(cj_open(c->url, &o, &db));
	CHECK_INT(count_finished(db), RUN_JOBS);
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	for (int i = 0; i < RUN_JOBS; i++) {
		char key[64];
		snprintf(key, sizeof key, "runs/r%04d", i);
		void *v = NULL;
		size_t vl = 0;
		CHECK_OK(cj_tx_get(tx, key, strlen(key), &v, &vl));
		if (atoi(v) != 1)
			t_fail(__FILE__, __LINE__, "job r%04d finished %s times", i, (char *)v);
		cj_free(v);
	}
	cj_tx_abort(tx);
	cj_close(db);
	printf("  all %d jobs finished exactly once, in %lld ms\n", RUN_JOBS,
	       (long long)(t_now_ms() - t0));
	return 0;
}

/* The server is stopped and started while three processors drain a queue:
 * the run completes, no process hangs, and every job is finished exactly
 * once. */
TEST(server_restart_mid_run) {
	with_private_server(restart_run_body, "restart_run", 200000);
}

/* ---- cjobs work across server restarts ------------------------------------------ */

#define WORK_JOBS 90
#define WORK_PROCS 3
#define WORK_RESTARTS 3

struct work_proc {
	const char *url;
	int n;
};

/* `cjobs work` with the URL in CJOBS_DB, its stderr in work.N.err. */
static int work_exec(void *p) {
	struct work_proc *w = p;
	char err[4200];
	snprintf(err, sizeof err, "%s/work.%d.err", t_dir(), w->n);
	int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fe < 0) return 126;
	dup2(fe, 2);
	close(fe);
	setenv("CJOBS_DB", w->url, 1);
	execl(t_bin("cjobs"), "cjobs", "work", "w", "-j", "2", "--", "sh", "job.sh",
	      (char *)NULL);
	return 127;
}

static int work_restart_body(void *p) {
	struct restart_ctx *c = p;
	CHECK(chdir(t_dir()) == 0);
	/* each run of the command appends its job's id to runs.log */
	FILE *f = fopen("job.sh", "w");
	CHECK(f != NULL);
	fputs("cat >/dev/null; echo \"$CJ_JOB_ID\" >> runs.log; sleep 0.3; "
	      "echo '{\"ok\":1}'\n", f);
	CHECK(fclose(f) == 0);
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = NULL;
	/* a heartbeat every 10 s (a third of the timeout): an outage never
	 * takes a job back from a live worker, even on a loaded machine, where
	 * a restart of the server took up to 6 s and a timeout of 10 s once
	 * let a job be taken back (and run again) during two of them */
	fill_queue(c->url, "w", 30, WORK_JOBS);

	struct work_proc procs[WORK_PROCS];
	int pids[WORK_PROCS];
	for (int i = 0; i < WORK_PROCS; i++) {
		procs[i] = (struct work_proc){c->url, i};
		pids[i] = t_spawn(work_exec, &procs[i]);
	}
	int64_t t0 = t_now_ms();
	for (int r = 0; r < WORK_RESTARTS; r++) {
		/* restart after 1/4, 2/4, 3/4 of the jobs, while commands run */
		int want = WORK_JOBS * (r + 1) / (WORK_RESTARTS + 1), done;
		for (;;) {
			CHECK_OK(cj_open(c->url, &o, &db));
			done = count_finished_of(db, "w");
			cj_close(db);
			CHECK(done >= 0);
			if (done >= want) break;
			CHECK(t_now_ms() - t0 < 90000);
			sleep_ms(100);
		}
		CHECK_INT(t_sh(NULL, NULL, "sh '%s' stop '%s'", pg_script(), c->dir), 0);
		sleep_ms(500 + 500 * r);
		CHECK_INT(t_sh(NULL, NULL, "sh '%s' start '%s'", pg_script(), c->dir), 0);
		printf("  restart %d after %d of %d jobs\n", r + 1, done, WORK_JOBS);
	}
	/* every job finishes, and every worker is still there */
	for (;;) {
		CHECK_OK(cj_open(c->url, &o, &db));
		int done = count_finished_of(db, "w");
		cj_close(db);
		if (done == WORK_JOBS) break;
		CHECK(t_now_ms() - t0 < 150000);
		for (int i = 0; i < WORK_PROCS; i++) CHECK(kill(pids[i], 0) == 0);
		sleep_ms(100);
	}
	for (int i = 0; i < WORK_PROCS; i++) {
		char st[64];
		snprintf(st, sizeof st, "/proc/%d/stat", pids[i]);
		char *out = NULL;
		CHECK_INT(t_sh(&out, NULL, "cut -d' ' -f3 %s", st), 0);
		if (out[0] == 'Z') {
			char *err = NULL;
			t_sh(&err, NULL, "cat work.%d.err", i);
			t_fail(__FILE__, __LINE__, "worker %d exited during the run:\n%s", i, err);
		}
		free(out);
		kill(pids[i], SIGTERM);
	}
	for (int i = 0; i < WORK_PROCS; i++) CHECK_INT(t_join(pids[i], 30000), 0);
	/* each command ran once: every id once in runs.log */
	char *runs = NULL;
	CHECK_INT(t_sh(&runs, NULL, "sort runs.log | uniq -c | awk '$1 != 1' | head -5; "
	                            "sort -u runs.log | wc -l"), 0);
	char want[32];
	snprintf(want, sizeof want, "%d\n", WORK_JOBS);
	if (strcmp(runs, want) != 0)
		t_fail(__FILE__, __LINE__, "commands that did not run exactly once, then the "
		       "number of jobs run:\n%s", runs);
	free(runs);
	printf("  %d jobs, %d restarts: every worker stayed, every job ran and finished "
	       "once, in %lld ms\n", WORK_JOBS, WORK_RESTARTS, (long long)(t_now_ms() - t0));
	return 0;
}

/* `cjobs work` rides out server restarts: three workers keep running across
 * three restarts, retry their accepts and the finishes of the commands that
 * ended during an outage, and every job's command runs exactly once. */
TEST(work_rides_out_restarts) {
	with_private_server(work_restart_body, "work_restart", 200000);
}

/* ---- several processor processes ------------------------------------------- */

#define DRAIN_JOBS 2000
#define DRAIN_PROCS 4

static int drain_child(void *p) {
	int n = *(int *)p;
	cj_options o = CJ_OPTIONS_INIT;
	o.sync = CJ_SYNC_RELAXED;
	cj_db *db = NULL;
	if (cj_open(t_url(), &o, &db) != CJ_OK) return 2;
	char path[4200];
	snprintf(path, sizeof path, "%s/done.%d", t_dir(), n);
	FILE *f = fopen(path, "w");
	if (!f) return 3;
	cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
	ao.timeout_ms = 0;
	ao.no_schedule = n % 2; /* both ways of picking */
	int rc;
	for (;;) {
		cj_job *job = NULL;
		rc = cj_accept(db, "d", &ao, &job, NULL);
		if (rc == CJ_NOT_FOUND) {
			rc = CJ_OK;
			break;
		}
		if (rc) break;
		rc = cj_finish(db, NULL, job, "{\"done\":true}");
		if (rc == CJ_OK) fprintf(f, "%s\n", cj_job_id(job));
		cj_job_free(job);
		if (rc) break;
	}
	fclose(f);
	cj_close(db);
	if (rc) fprintf(stderr, "drain %d: %s (%s)\n", n, cj_err_name(rc), cj_last_error());
	return rc ? 4 : 0;
}

TEST(processes_drain_exactly_once) {
	cj_options o = CJ_OPTIONS_INIT;
	o.sync = CJ_SYNC_RELAXED;
	o.no_monitor = 1;
	cj_db *db = t_open_opts(&o);
	CHECK_OK(cj_set_type_timeout(db, "d", 60));
	for (int i = 0; i < DRAIN_JOBS; i += 100) {
		cj_tx *tx;
		CHECK_OK(cj_tx_begin(db, &tx));
		for (int j = i; j < i + 100; j++) {
			char id[16];
			snprintf(id, sizeof id, "j%05d", j);
			CHECK_OK(cj_add(db, tx, "d", id, NULL, 0));
		}
		CHECK_OK(cj_tx_commit(tx));
	}
	cj_close(db); /* fork with no threads of the library running */
	int64_t t0 = t_now_ms();
	int pids[DRAIN_PROCS], ns[DRAIN_PROCS];
	for (int i = 0; i < DRAIN_PROCS; i++) {
		ns[i] = i;
		pids[i] = t_spawn(drain_child, &ns[i]);
	}
	for (int i = 0; i < DRAIN_PROCS; i++) CHECK_INT(t_join(pids[i], 100000), 0);
	printf("  %d processes finished %d jobs in %lld ms\n", DRAIN_PROCS, DRAIN_JOBS,
	       (long long)(t_now_ms() - t0));

	static unsigned char seen[DRAIN_JOBS];
	int total = 0;
	for (int i = 0; i < DRAIN_PROCS; i++) {
		char path[4200], line[64];
		snprintf(path, sizeof path, "%s/done.%d", t_dir(), i);
		FILE *f = fopen(path, "r");
		CHECK(f != NULL);
		int mine = 0;
		while (fgets(line, sizeof line, f)) {
			int k = atoi(line + 1);
			CHECK(k >= 0 && k < DRAIN_JOBS);
			if (seen[k]) t_fail(__FILE__, __LINE__, "job %s finished twice", line);
			seen[k] = 1;
			total++;
			mine++;
		}
		fclose(f);
		printf("  process %d finished %d\n", i, mine);
	}
	CHECK_INT(total, DRAIN_JOBS);
	db = t_open_opts(&o);
	for (int i = 0; i < DRAIN_JOBS; i += 97) {
		char id[16];
		snprintf(id, sizeof id, "j%05d", i);
		CHECK_INT(state_of(db, "d", id), CJ_FINISHED);
	}
	cj_close(db);
}

/* ---- the cache of what the process knows (src/engine/pg_cache.c) ---------- */

enum { BOUND_JOBS = 2400, BOUND_BATCH = 200, BOUND_DATA = 8000, BOUND_RUN = 300 };

/* The cache's entries and bytes, read under its lock. */
static void cache_size(cj_db *db, size_t *n, size_t *bytes) {
	struct pge_cache *c = &db->edb->cache;
	pthread_mutex_lock(&c->mu);
	*n = c->n;
	*bytes = c->bytes;
	pthread_mutex_unlock(&c->mu);
}

/* More jobs, and more bytes of them, than the cache keeps (each job is two
 * keys and about 8 KB here) go through one handle: the cache holds no more
 * than its bounds, and the jobs it runs end as they should. The sanitizer
 * build checks that nothing of it is left at close. */
TEST(the_cache_stays_bounded) {
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = t_open_opts(&o);
	CHECK_OK(cj_set_type_timeout(db, "t", 60));
	static char data[BOUND_DATA + 16];
	memset(data, 'x', BOUND_DATA);
	memcpy(data, "{\"x\":\"", 6);
	memcpy(data + BOUND_DATA - 2, "\"}", 3);
	size_t n, bytes, most_n = 0, most_bytes = 0;
	for (int i = 0; i < BOUND_JOBS; i += BOUND_BATCH) {
		cj_tx *tx;
		CHECK_OK(cj_tx_begin(db, &tx));
		for (int j = i; j < i + BOUND_BATCH; j++) {
			char id[16];
			snprintf(id, sizeof id, "j%05d", j);
			CHECK_OK(cj_add(db, tx, "t", id, data, 0));
		}
		CHECK_OK(cj_tx_commit(tx));
		cache_size(db, &n, &bytes);
		if (n > most_n) most_n = n;
		if (bytes > most_bytes) most_bytes = bytes;
	}
	for (int i = 0; i < BOUND_RUN; i++) {
		cj_job *j = take(db, "t");
		CHECK_OK(cj_update(db, NULL, j, NULL));
		CHECK_OK(cj_finish(db, NULL, j, "{\"ok\":1}"));
		cj_job_free(j);
		cache_size(db, &n, &bytes);
		if (n > most_n) most_n = n;
		if (bytes > most_bytes) most_bytes = bytes;
	}
	note("  the cache held at most %zu keys, %zu bytes\n", most_n, most_bytes);
	CHECK(most_n <= PGE_CACHE_ENTRIES);
	CHECK(most_bytes <= PGE_CACHE_BYTES);
	CHECK(most_bytes > PGE_CACHE_BYTES / 2); /* it was full */
	store_counts c;
	check_store(db, "t", &c);
	CHECK_INT(c.finished, BOUND_RUN);
	CHECK_INT(c.pending, BOUND_JOBS - BOUND_RUN);
	cj_close(db);
}

int main(int argc, char **argv) {
	int listing = argc == 2 && strcmp(argv[1], "--list") == 0;
	if (!is_pg(getenv("CJ_TEST_URL")) && !listing) {
		printf("test_pg: skipped: CJ_TEST_URL is not a PostgreSQL URL\n");
		return 0;
	}
	static const struct t_entry entries[] = {
		ENTRY(native_sql_commits_with_finish), ENTRY(native_sql_follows_the_library_writes), ENTRY(reads_leave_no_open_transaction),
		ENTRY(schema_version_checked),         ENTRY(round_trips_per_call),
		ENTRY(statements_per_call),            ENTRY(puts_of_one_key_keep_the_last),
		ENTRY(held_writes_of_one_key_keep_their_order),
		ENTRY(write_transactions_read_committed),
		ENTRY(notify_waits_for_no_flush),     ENTRY(accept_leaves_a_held_job),
		ENTRY(two_schemas_are_two_stores),     ENTRY(unreachable_server_fails_fast),
		ENTRY(server_restart),                 ENTRY(tx_after_restart),
		ENTRY(server_restart_mid_run),
		ENTRY(killed_writer_releases_its_turn),
		ENTRY(processes_drain_exactly_once),   ENTRY(work_rides_out_restarts),
		ENTRY(notifications_only_where_something_waits),
		ENTRY(first_wait_sees_a_commit_made_before_it_listened),
		ENTRY(the_cache_stays_bounded),
	};
	return t_main(argc, argv, entries, sizeof entries / sizeof entries[0]);
}

#else /* no libpq */

int main(void) {
	printf("test_pg: skipped: built without the PostgreSQL engine\n");
	return 0;
}

#endif
