/*
 * A small test framework: each test_*.c file is one executable holding
 * several cases; ctest runs every executable (a long one in parts:
 * `./test_x --part K/N` runs the cases K, K + N, K + 2N, ...). Run one case
 * with `./test_x CASE`; `./test_x --list` prints the names of its cases.
 *
 *   TEST(name) { ... CHECK_RC(cj_add(...), CJ_OK); ... }
 *   TEST_MAIN(ENTRY(name), ENTRY(other))
 *
 * Every case runs in a forked child with a fresh scratch directory as its
 * working directory, so a crash or a hang fails that case alone. A case
 * fails on the first CHECK that does not hold; the message names both
 * sides. A case times out after CJ_TEST_TIMEOUT seconds (default 120),
 * multiplied by CJ_TEST_TIMEOUT_MULTIPLIER.
 *
 * The store under test comes from CJ_TEST_URL: unset or "lmdb" means a fresh
 * embedded store in the case's scratch directory (t_url()); any other value
 * is a server's URL (PostgreSQL), to which t_url() adds a fresh
 * "schema=..." per case, shared by the processes the case forks.
 */
#ifndef CJ_TESTLIB_H
#define CJ_TESTLIB_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "couchjobs.h"

typedef void (*t_fn)(void);
struct t_entry {
	const char *name;
	t_fn fn;
};

#define TEST(name) static void test_##name(void)
#define ENTRY(name) {#name, test_##name}
#define TEST_MAIN(...)                                                      \
	int main(int argc, char **argv) {                                       \
		static const struct t_entry entries[] = {__VA_ARGS__};              \
		return t_main(argc, argv, entries,                                  \
		              sizeof entries / sizeof entries[0]);                  \
	}

/* TEST_MAIN whose cases each end, when they pass, by checking the store
 * under test against its invariants (CHECK_STORE): for the stress,
 * durability, cross-process, chaos and fault tests. */
#define TEST_MAIN_VERIFIED(...)                                             \
	int main(int argc, char **argv) {                                       \
		static const struct t_entry entries[] = {__VA_ARGS__};              \
		t_verify_after = 1;                                                 \
		return t_main(argc, argv, entries,                                  \
		              sizeof entries / sizeof entries[0]);                  \
	}
extern int t_verify_after;

int t_main(int argc, char **argv, const struct t_entry *e, size_t n);

/* Opens the store under test (no monitor) and fails the case, listing the
 * problems, unless cj_verify() finds it sound. */
#define CHECK_STORE() t_verify_store(__FILE__, __LINE__)
void t_verify_store(const char *file, int line);

/* Reports a failure and ends the case. */
_Noreturn void t_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define CHECK(cond)                                                         \
	do {                                                                    \
		if (!(cond)) t_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);        \
	} while (0)

/* A call returning a CJ_* code equals the expected code. */
#define CHECK_RC(call, want)                                                \
	do {                                                                    \
		int t_rc_ = (call), t_want_ = (want);                               \
		if (t_rc_ != t_want_)                                               \
			t_fail(__FILE__, __LINE__, "%s = %s, want %s (%s)", #call,      \
			       cj_err_name(t_rc_), cj_err_name(t_want_),                \
			       cj_last_error());                                        \
	} while (0)
#define CHECK_OK(call) CHECK_RC(call, CJ_OK)

#define CHECK_INT(a, b)                                                     \
	do {                                                                    \
		long long t_a_ = (long long)(a), t_b_ = (long long)(b);             \
		if (t_a_ != t_b_)                                                   \
			t_fail(__FILE__, __LINE__, "%s = %lld, want %s = %lld", #a,     \
			       t_a_, #b, t_b_);                                         \
	} while (0)

#define CHECK_STR(a, b)                                                     \
	do {                                                                    \
		const char *t_a_ = (a), *t_b_ = (b);                                \
		if (!t_a_ || !t_b_ || strcmp(t_a_, t_b_) != 0)                      \
			t_fail(__FILE__, __LINE__, "%s = \"%s\", want \"%s\"", #a,      \
			       t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)");         \
	} while (0)

/* The URL of the store under test (see above); the same for the whole case
 * and for the processes it forks. */
const char *t_url(void);
/* 1 when the store under test is the embedded engine. */
int t_is_lmdb(void);
/* Opens the store under test with default options (monitors on). */
cj_db *t_open(void);
/* Opens with options. */
cj_db *t_open_opts(const cj_options *o);
/* The case's scratch directory (absolute). */
const char *t_dir(void);

/* A bound of ms milliseconds on a wait, times CJ_TEST_TIMEOUT_MULTIPLIER
 * (a slow or loaded machine sets it). */
int64_t t_bound_ms(int64_t ms);

/* Monotonic milliseconds. */
int64_t t_now_ms(void);
/* Seconds since the epoch. */
int64_t t_epoch(void);

/* Runs fn(arg) in a child process; returns its pid. The child exits with
 * fn's return value (and 99 if a CHECK fails in it). */
int t_spawn(int (*fn)(void *arg), void *arg);
/* Waits for pid; returns its exit status, or 128+signal if killed. Fails
 * the case if it does not end within timeout_ms. */
int t_join(int pid, int64_t timeout_ms);

/* A pipe-based one-shot signal between processes: t_gate_open() in one,
 * t_gate_wait() in the other. Create before forking. */
typedef struct t_gate {
	int fd[2];
} t_gate;
void t_gate_init(t_gate *g);
void t_gate_open(t_gate *g);
/* 0 when opened, -1 on timeout. */
int t_gate_wait(t_gate *g, int64_t timeout_ms);
void t_gate_close(t_gate *g);

/* Runs a shell command line with `sh -c`, capturing stdout into *out
 * (malloc'd, NUL-terminated) when out is not NULL; stderr goes to *err when
 * err is not NULL. Returns the exit status (128+signal if killed). The
 * environment gets CJOBS_DB=t_url(). */
int t_sh(char **out, char **err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Path of a built program next to the test executables (e.g. "cjobs"). */
const char *t_bin(const char *name);

#endif
