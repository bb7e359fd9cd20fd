/*
 * Helpers shared by the test programs, on top of testlib.h (which this
 * header includes): JSON comparison, opening stores, reading, accepting and
 * subscribing to jobs, the caller's keys, the plumbing of cases that fork
 * (sleeps, CPU time, exit codes, gates, pipes), and the combine file's
 * first layout.
 *
 * A helper that can fail the case is a macro passing the caller's
 * __FILE__ and __LINE__ to a tu_* function, so that the failure names the
 * test's line. The macros are named like functions (state_of, take, ...):
 * a test file cannot define a helper of its own under one of these names.
 * Public API only.
 */
#ifndef CJ_TESTUTIL_H
#define CJ_TESTUTIL_H

#include "testlib.h"

/* ---- JSON ------------------------------------------------------------------ */

/* Two JSON texts equal but for white space outside strings; 0 when either
 * is NULL. */
int json_same(const char *a, const char *b);

#define CHECK_JSON(a, b)                                                    \
	do {                                                                    \
		const char *j_a_ = (a), *j_b_ = (b);                                \
		if (!json_same(j_a_, j_b_))                                         \
			t_fail(__FILE__, __LINE__, "%s = %s, want %s", #a,              \
			       j_a_ ? j_a_ : "(null)", j_b_ ? j_b_ : "(null)");         \
	} while (0)

/* cj_last_error() after a call holds want. */
#define CHECK_DETAIL(want)                                                  \
	do {                                                                    \
		if (!strstr(cj_last_error(), (want)))                               \
			t_fail(__FILE__, __LINE__, "detail \"%s\", want \"%s\" in it",  \
			       cj_last_error(), (want));                                \
	} while (0)

/* ---- opening ----------------------------------------------------------------- */

/* t_open(), with a 60 s timeout set for type. */
#define open_typed(type) tu_open_typed(__FILE__, __LINE__, (type))
cj_db *tu_open_typed(const char *file, int line, const char *type);

/* t_open_opts() with no_monitor set: a handle that writes nothing by
 * itself. */
cj_db *open_nomon(void);

/* Set a type timeout, or add a job (unscheduled), through a handle of
 * their own that is closed again, so that a parent holds nothing open when
 * it forks. */
#define setup_type(type, timeout_s) tu_setup_type(__FILE__, __LINE__, (type), (timeout_s))
#define add_job(type, id, data) tu_add_job(__FILE__, __LINE__, (type), (id), (data))
void tu_setup_type(const char *file, int line, const char *type, int64_t timeout_s);
void tu_add_job(const char *file, int line, const char *type, const char *id,
                const char *data);

/* Ends the case at once (passing) unless the store under test is the
 * embedded engine, and says so. */
#define SKIP_UNLESS_LMDB()                                                  \
	do {                                                                    \
		if (!t_is_lmdb()) {                                                 \
			note("  skipped: embedded engine only\n");                      \
			return;                                                         \
		}                                                                   \
	} while (0)

/* ---- reading jobs ------------------------------------------------------------ */

/* The state of a job, which must exist (cj_get_job_state() outside any
 * transaction). */
#define state_of(db, type, id) tu_state_of(__FILE__, __LINE__, (db), (type), (id))
cj_state tu_state_of(const char *file, int line, cj_db *db, const char *type,
                     const char *id);

/* The job's data (cj_get_job_data()) is want, as JSON (see json_same()). */
#define check_data(db, type, id, want)                                      \
	tu_check_data(__FILE__, __LINE__, (db), (type), (id), (want))
void tu_check_data(const char *file, int line, cj_db *db, const char *type, const char *id,
                   const char *want);

/* The job (cj_get_job()) is in state, with data as JSON. */
#define check_job_is(db, type, id, state, data)                             \
	tu_check_job_is(__FILE__, __LINE__, (db), (type), (id), (state), (data))
void tu_check_job_is(const char *file, int line, cj_db *db, const char *type,
                     const char *id, cj_state state, const char *data);

/* The number of jobs cj_list_jobs() lists for type (NULL: every type),
 * outside any transaction or inside tx. */
#define count_jobs(db, type) tu_count_jobs(__FILE__, __LINE__, (db), NULL, (type))
#define count_jobs_tx(db, tx, type) tu_count_jobs(__FILE__, __LINE__, (db), (tx), (type))
size_t tu_count_jobs(const char *file, int line, cj_db *db, cj_tx *tx, const char *type);

/* A cj_list_jobs() callback that does nothing. */
int noop_cb(const cj_job_info *info, void *arg);

/* Frees what cj_get_types() returned. */
void free_types(char **types, size_t n);

/* ---- accepting ------------------------------------------------------------------ */

/* How long the take macros wait for a job. */
#define TAKE_TIMEOUT_MS 5000

/* The take macros run cj_accept(), which must return CJ_OK and a job; they
 * return the job. They wait up to TAKE_TIMEOUT_MS (take_wait: timeout_ms)
 * with max_sched_time CJ_SCHED_NOW (the *_any ones: CJ_SCHED_ANY;
 * take_opts: as given, with no_schedule). The *_id ones also check the
 * job's id; take_data and take_wait hand out its data as cj_accept() does
 * (data may be NULL). */
#define take(db, type) TU_TAKE(db, type, CJ_SCHED_NOW, 0, TAKE_TIMEOUT_MS, NULL, NULL)
#define take_any(db, type) TU_TAKE(db, type, CJ_SCHED_ANY, 0, TAKE_TIMEOUT_MS, NULL, NULL)
#define take_id(db, type, id) TU_TAKE(db, type, CJ_SCHED_NOW, 0, TAKE_TIMEOUT_MS, id, NULL)
#define take_any_id(db, type, id)                                           \
	TU_TAKE(db, type, CJ_SCHED_ANY, 0, TAKE_TIMEOUT_MS, id, NULL)
#define take_opts(db, type, max_sched, no_schedule)                         \
	TU_TAKE(db, type, max_sched, no_schedule, TAKE_TIMEOUT_MS, NULL, NULL)
#define take_data(db, type, data)                                           \
	TU_TAKE(db, type, CJ_SCHED_NOW, 0, TAKE_TIMEOUT_MS, NULL, data)
#define take_wait(db, type, timeout_ms, data)                               \
	TU_TAKE(db, type, CJ_SCHED_NOW, 0, timeout_ms, NULL, data)
#define TU_TAKE(db, type, max_sched, no_schedule, timeout_ms, id, data)     \
	tu_take(__FILE__, __LINE__, (db), (type), (max_sched), (no_schedule),   \
	        (timeout_ms), (id), (data))
cj_job *tu_take(const char *file, int line, cj_db *db, const char *type, int64_t max_sched,
                int no_schedule, int64_t timeout_ms, const char *want_id, char **data);

/* cj_accept() with timeout 0 (and max_sched_time, no_schedule as given)
 * finds nothing: CJ_NOT_FOUND and a NULL job. */
#define check_empty(db, type, max_sched, no_schedule)                       \
	tu_check_empty(__FILE__, __LINE__, (db), (type), (max_sched), (no_schedule))
void tu_check_empty(const char *file, int line, cj_db *db, const char *type,
                    int64_t max_sched, int no_schedule);

/* 1 when s is a UUID in its 36-character text form. */
int is_uuid(const char *s);

/* ---- subscribing ------------------------------------------------------------------ */

/* cj_subscribe() must return CJ_OK and a subscription, which is returned;
 * sub_on_st also stores the job's state in *st. */
#define sub_on(db, type, id) tu_sub_on(__FILE__, __LINE__, (db), (type), (id), NULL)
#define sub_on_st(db, type, id, st) tu_sub_on(__FILE__, __LINE__, (db), (type), (id), (st))
cj_sub *tu_sub_on(const char *file, int line, cj_db *db, const char *type, const char *id,
                  cj_state *st);

/* ---- the caller's keys -------------------------------------------------------------- */

/* cj_tx_put() of a C string key and value (without their NULs); returns
 * its code. */
int put_str(cj_tx *tx, const char *key, const char *val);

/* Key (a C string), read in a transaction of its own, holds the string want
 * (NULL: the key is absent). */
#define check_kv(db, key, want) tu_check_kv(__FILE__, __LINE__, (db), (key), (want))
void tu_check_kv(const char *file, int line, cj_db *db, const char *key, const char *want);

/* ---- time and processes ---------------------------------------------------------- */

/* Sleeps ms milliseconds (on through signals). */
void sleep_ms(int64_t ms);

/* CPU time (user + system, every thread) of this process. */
int64_t cpu_us(void);
int64_t cpu_ms(void);

/* Prints a line of measurements at once, so that it survives a failure
 * that follows (t_fail() ends the process without flushing stdout). */
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* t_join(pid, timeout_ms) gives want. */
#define check_exit(pid, timeout_ms, want)                                   \
	tu_check_exit(__FILE__, __LINE__, (pid), (timeout_ms), (want))
void tu_check_exit(const char *file, int line, int pid, int64_t timeout_ms, int want);

/* t_gate_init() (t_gate_close()) of each gate named, as in
 * gates_init(&a.ready, &a.go): the gates a case makes before it forks, and
 * closes at its end. */
#define gates_init(...) tu_gates_init(TU_GATES(__VA_ARGS__))
#define gates_close(...) tu_gates_close(TU_GATES(__VA_ARGS__))
#define TU_GATES(...)                                                       \
	(t_gate *const[]){__VA_ARGS__},                                         \
	    sizeof((t_gate *const[]){__VA_ARGS__}) / sizeof(t_gate *)
void tu_gates_init(t_gate *const *g, size_t n);
void tu_gates_close(t_gate *const *g, size_t n);

/* t_spawn(fn, arg), then waits up to timeout_ms for the child to open the
 * gate ready (its store open, or a point of its run reached): fails the
 * case if it does not. Returns the child's pid. */
#define spawn_ready(fn, arg, ready, timeout_ms)                             \
	tu_spawn_ready(__FILE__, __LINE__, (fn), (arg), (ready), (timeout_ms))
int tu_spawn_ready(const char *file, int line, int (*fn)(void *), void *arg, t_gate *ready,
                   int64_t timeout_ms);

/* Reads "j<k>" lines up to end of file from fd (then closes it): each k of
 * 0..n-1 must appear exactly once. */
#define check_each_once(fd, n) tu_check_each_once(__FILE__, __LINE__, (fd), (n))
void tu_check_each_once(const char *file, int line, int fd, int n);

/* CPU time (user + system) of process pid so far, from /proc; -1 if it
 * cannot be read. */
int64_t proc_cpu_ms(int pid);

/* ---- a private PostgreSQL server ----------------------------------------------- */

/* scripts/pg.sh (or $CJ_PG_SH), or NULL when it cannot be found. */
const char *pg_script(void);
/* Starts a private server (scripts/pg.sh) in t_dir()/pg and puts its URL
 * (without schema=) in url: 0, or -1 when pg.sh is not found (the case
 * should skip). Stop it with pg_private_stop() before the case ends. */
#define pg_private_start(url, cap) tu_pg_private_start(__FILE__, __LINE__, (url), (cap))
int tu_pg_private_start(const char *file, int line, char *url, size_t cap);
void pg_private_stop(void);
/* Sends sig to the private server's processes (by PID): SIGSTOP makes it
 * stop answering without closing anything. */
void pg_private_signal(int sig);

/* Sleeps until killed; bounded (a minute), so that a lost process ends by
 * itself, with exit code 98. */
_Noreturn void stall_forever(void);

/* A pipe carrying fixed-size messages between processes; create before
 * forking. Messages up to PIPE_BUF bytes are written atomically. */
typedef struct chan {
	int fd[2];
} chan;

#define chan_init(c) tu_chan_init(__FILE__, __LINE__, (c))
void chan_close(chan *c);
#define chan_send(c, buf, len) tu_chan_send(__FILE__, __LINE__, (c), (buf), (len))
/* Receives exactly len bytes; fails the case after timeout_ms. */
#define chan_recv(c, buf, len, timeout_ms)                                  \
	tu_chan_recv(__FILE__, __LINE__, (c), (buf), (len), (timeout_ms))
/* One int64_t as a message. */
#define chan_put(c, v) tu_chan_put(__FILE__, __LINE__, (c), (v))
#define chan_get(c, timeout_ms) tu_chan_get(__FILE__, __LINE__, (c), (timeout_ms))
void tu_chan_init(const char *file, int line, chan *c);
void tu_chan_send(const char *file, int line, chan *c, const void *buf, size_t len);
void tu_chan_recv(const char *file, int line, chan *c, void *buf, size_t len,
                  int64_t timeout_ms);
void tu_chan_put(const char *file, int line, chan *c, int64_t v);
int64_t tu_chan_get(const char *file, int line, chan *c, int64_t timeout_ms);

/* ---- the combine file ------------------------------------------------------------ */

/* Makes the embedded store's combine file (doc/format.md) look held by
 * processes of its first layout: writes layout 1's magic (0x636a7801) at
 * its start, as such a process does when it maps the file first. The calls
 * of this build then combine in the area after layout 1's. The file must
 * exist (a process opened the store). */
#define combine_mark_layout_1() tu_combine_mark_layout_1(__FILE__, __LINE__)
void tu_combine_mark_layout_1(const char *file, int line);

/* ---- the store's invariants ------------------------------------------------------- */

/* How many jobs of each state a store holds. */
typedef struct store_counts {
	size_t pending, running, finished, total, dead;
} store_counts;

/* Checks that the store of db is consistent: every job (of type; NULL: of
 * every type) listed reads back, in the same snapshot, in the state it was
 * listed in, with JSON object data, and cj_verify() finds no problem in
 * the whole store. Every stress, chaos and fault test ends with it. Stores
 * the counts in *counts when not NULL. */
#define check_store(db, type, counts)                                       \
	tu_check_store(__FILE__, __LINE__, (db), (type), (counts))
void tu_check_store(const char *file, int line, cj_db *db, const char *type,
                    store_counts *counts);

#endif
