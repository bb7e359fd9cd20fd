/*
 * cjobs: the command-line front end of couchjobs.
 *
 * Internal declarations shared by the files of the tool. The tool uses only
 * the public <couchjobs.h> and jansson.
 */
#ifndef CJOBS_CLI_H
#define CJOBS_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <couchjobs.h>

#include "clock.h" /* cli_now_ms(), cli_epoch() */

/* Exit codes (documented in `cjobs --help` and doc/cli.md). */
enum {
	CLI_EXIT_OK = 0,       /* success */
	CLI_EXIT_STORE = 1,     /* the store failed, or another run-time error */
	CLI_EXIT_USAGE = 2,     /* bad command line or argument; nothing was done */
	CLI_EXIT_NOT_FOUND = 3, /* no such job / type timeout; accept timed out */
	CLI_EXIT_HALT = 4,      /* the job is no longer held with this lock */
	CLI_EXIT_EXISTS = 5     /* add --unique: the job exists; nothing was done */
};

/* The store used when neither --db nor CJOBS_DB is given. */
#define CLI_DEFAULT_DB "./couchjobs.db"

/* One option of a command. */
struct cli_opt {
	const char *name;  /* long form, "--at" */
	const char *alias; /* short form, "-j", or NULL */
	const char *arg;   /* the value's name ("EPOCH"), or NULL for a flag */
	const char *help;  /* one line */
};

#define CLI_MAX_OPTS 8

/* A parsed command line. */
struct cli_args {
	int npos;             /* positional arguments */
	char **pos;
	const char *val[CLI_MAX_OPTS]; /* value of option i (flags: "") */
	int set[CLI_MAX_OPTS];         /* option i was given */
	int nrest;            /* COMMAND [ARGS...] of `work` */
	char **rest;
};

struct cli;
typedef int (*cli_fn)(struct cli *c, const struct cli_args *a);

/* Flags of a command. */
enum {
	CLI_REST = 1 /* takes COMMAND [ARGS...] after its arguments */
};

/* One entry of the command table. */
struct cli_cmd {
	const char *name;
	cli_fn run;
	int min_args, max_args;
	const char *usage;    /* arguments after the name */
	const char *summary;  /* one line for `cjobs --help` */
	const struct cli_opt *opts; /* NULL-name terminated, or NULL */
	unsigned flags;
	const char *help;     /* longer description for `cjobs CMD --help` */
};

/* The state of one invocation. */
struct cli {
	const struct cli_cmd *cmd;
	const char *url;      /* the store's URL */
	cj_db *db;            /* opened by cli_open() */
};

/* ---- cjobs.c ---------------------------------------------------------- */

/* cli_parse()'s result when the command is to run. */
#define CLI_RUN (-1)

/* Parses the command line (argv[0] is the program) into c (c->url must
 * hold the default store) and a, running nothing: CLI_RUN when c->cmd is
 * to run with a (free a with cli_args_free() either way); otherwise help
 * or the version was printed, or a usage error reported, and the result
 * is the exit code. */
int cli_parse(struct cli *c, int argc, char **argv, struct cli_args *a);
void cli_args_free(struct cli_args *a);

/* Flushes standard output; a failure is reported, and turns exit code rc
 * 0 into 1. Returns the exit code. */
int cli_finish_output(struct cli *c, int rc);

/* Prints "cjobs: CMD: message" as one line on stderr and returns
 * CLI_EXIT_USAGE. */
int cli_usage(struct cli *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prints "cjobs: CMD: message" as one line on stderr. */
void cli_msg(struct cli *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Reports a failed library call as one line ("cjobs: CMD: WHAT: CJ_...:
 * message (detail)"; WHAT may be NULL) and returns the exit code for rc: CJ_NOT_FOUND 3, CJ_HALT 4,
 * CJ_INVALID / CJ_JSON / CJ_TOO_LARGE 2, anything else 1. */
int cli_fail(struct cli *c, int rc, const char *what);

/* Opens c->url into c->db (monitors off unless `monitor`). Returns 0 or an
 * exit code after reporting the failure. */
int cli_open(struct cli *c, int monitor);
/* cli_open() in two steps: the open, which returns the library's code and
 * reports nothing, and the report of its failure, which returns the exit
 * code. */
int cli_try_open(struct cli *c, int monitor);
int cli_open_failed(struct cli *c, int rc);

/* ---- setting.c -------------------------------------------------------- */

/* A type's setting as the commands policy, limit and retention handle it:
 * the library's calls, the options (first_opt..last_opt set it, clear_opt
 * clears it) and their parse over a value, and its print. */
struct cli_setting {
	const char *name; /* in messages: "type 'T' has no NAME", "cannot set the NAME" */
	size_t size;      /* of the value */
	const void *init; /* the value of a type without the setting */
	int first_opt, last_opt, clear_opt;
	int (*get)(cj_db *db, const char *type, void *v);
	int (*set)(cj_db *db, const char *type, const void *v);
	int (*clear)(cj_db *db, const char *type);
	/* the options given over v: 0 or a usage exit code */
	int (*parse)(struct cli *c, const struct cli_args *a, void *v);
	void (*print)(const void *v); /* one line of JSON on stdout */
};

/* The command over a type's setting (a->pos[0]): with options, sets them
 * over the current value; with --clear, clears it; else prints it. `v` is
 * room for one value. Returns the exit code: 3 (one line) when the type has
 * none to print or clear. */
int cli_setting_run(struct cli *c, const struct cli_args *a, const struct cli_setting *s,
                    void *v);

/* ---- util.c ----------------------------------------------------------- */

/* Parses a non-negative decimal integer that fits int64_t. 0 or -1. */
int cli_parse_int(const char *s, int64_t *out);

/* Parses a duration: plain digits are `plain_unit_ms` each (1000 for
 * seconds, 1 for milliseconds); otherwise one or more NUMBER UNIT parts,
 * UNIT one of ms, s, m, h, d ("90s", "5m", "1h30m"). The result is in
 * milliseconds. 0 or -1. */
int cli_parse_duration_ms(const char *s, int64_t plain_unit_ms, int64_t *ms);

/* Writes a duration in milliseconds as cli_parse_duration_ms() reads it,
 * in the largest unit that divides it ("7d", "90s", "1500ms"). */
void cli_put_duration(FILE *f, int64_t ms);

/* Parses --at EPOCH / --in DURATION into a scheduled time (seconds since
 * the epoch). Either may be NULL; both given is an error. On success *sched
 * is the time, or `dflt` when neither is given. 0, or a usage exit code
 * after reporting. */
int cli_parse_sched(struct cli *c, const char *at, const char *in,
                    int64_t dflt, int64_t *sched);

/* The verdict of a library check of an argument (cj_type_check(),
 * cj_id_check(), cj_data_check()): 0 for CJ_OK, else a usage exit code
 * after reporting the library's detail as one line. */
int cli_judged(struct cli *c, int rc);
/* cli_judged() of a job's type, then of its id. */
int cli_judge_job(struct cli *c, const char *type, const char *id);

/* Resolves a JSON argument: "-" reads standard input into *owned (freed by
 * the caller with free()); anything else is used as it is. Then checks it
 * with cj_data_check() against the default data limit. 0 or an exit code
 * after reporting. */
int cli_data_arg(struct cli *c, const char *arg, char **owned, const char **data);

/* Writes `s` (len bytes) as a JSON string literal, with invalid UTF-8 and
 * NUL bytes replaced by U+FFFD, to `f`. */
void cli_put_jstr(FILE *f, const char *s, size_t len);

/* Writes job data (valid JSON from the store) to `f` on one line. */
void cli_put_data(FILE *f, const char *data);

/* Returns a malloc'd copy of `s[0..len)` as a JSON string literal (see
 * cli_put_jstr), or NULL when out of memory. */
char *cli_jstr(const char *s, size_t len);

/* ---- the commands ----------------------------------------------------- */

int cmd_add(struct cli *c, const struct cli_args *a);
int cmd_get(struct cli *c, const struct cli_args *a);
int cmd_list(struct cli *c, const struct cli_args *a);
int cmd_rm(struct cli *c, const struct cli_args *a);
int cmd_stats(struct cli *c, const struct cli_args *a);
int cmd_timeout(struct cli *c, const struct cli_args *a);
int cmd_types(struct cli *c, const struct cli_args *a);
int cmd_check(struct cli *c, const struct cli_args *a);
int cmd_accept(struct cli *c, const struct cli_args *a);
int cmd_update(struct cli *c, const struct cli_args *a);
int cmd_finish(struct cli *c, const struct cli_args *a);
int cmd_fail(struct cli *c, const struct cli_args *a);
int cmd_retry(struct cli *c, const struct cli_args *a);
int cmd_policy(struct cli *c, const struct cli_args *a);
int cmd_limit(struct cli *c, const struct cli_args *a);
int cmd_resubmit(struct cli *c, const struct cli_args *a);
int cmd_watch(struct cli *c, const struct cli_args *a);
int cmd_work(struct cli *c, const struct cli_args *a);
int cmd_serve(struct cli *c, const struct cli_args *a);
int cmd_retention(struct cli *c, const struct cli_args *a);
int cmd_prune(struct cli *c, const struct cli_args *a);
int cmd_schedule(struct cli *c, const struct cli_args *a);

/* Option tables; the index of an option in its table is its index in
 * cli_args.val / cli_args.set. */
extern const struct cli_opt cli_add_opts[];     /* ADD_* */
extern const struct cli_opt cli_list_opts[];    /* LIST_STATE */
extern const struct cli_opt cli_stats_opts[];   /* STATS_JSON */
extern const struct cli_opt cli_timeout_opts[]; /* TIMEOUT_CLEAR */
extern const struct cli_opt cli_policy_opts[];  /* POLICY_* */
extern const struct cli_opt cli_limit_opts[];   /* LIMIT_* */
extern const struct cli_opt cli_retry_opts[];   /* RETRY_* */
extern const struct cli_opt cli_accept_opts[];  /* ACCEPT_TIMEOUT, ACCEPT_ANY,
                                                   ACCEPT_LOCK_ONLY */
extern const struct cli_opt cli_resubmit_opts[];/* RESUB_AT, RESUB_IN */
extern const struct cli_opt cli_work_opts[];    /* WORK_* */
extern const struct cli_opt cli_serve_opts[];   /* SERVE_* */
extern const struct cli_opt cli_retention_opts[]; /* RETENTION_* */
extern const struct cli_opt cli_prune_opts[];   /* PRUNE_* */
enum { RETENTION_KEEP_FOR, RETENTION_KEEP, RETENTION_DEAD_KEEP_FOR, RETENTION_DEAD_KEEP,
       RETENTION_CLEAR };
enum { PRUNE_OLDER_THAN, PRUNE_KEEP, PRUNE_DEAD };
extern const struct cli_opt cli_schedule_opts[];/* SCHED_* */

enum { ADD_AT, ADD_IN, ADD_UNIQUE, ADD_IF_ABSENT };
enum { LIST_STATE };
enum { STATS_JSON };
enum { TIMEOUT_CLEAR };
enum { POLICY_MAX_ATTEMPTS, POLICY_BACKOFF_MIN, POLICY_BACKOFF_MAX, POLICY_MULTIPLIER,
       POLICY_JITTER, POLICY_CLEAR };
enum { RETRY_ALL, RETRY_KEEP };
enum { LIMIT_CONCURRENCY, LIMIT_RATE, LIMIT_CLEAR };
enum { ACCEPT_TIMEOUT, ACCEPT_ANY, ACCEPT_LOCK_ONLY };
enum { RESUB_AT, RESUB_IN };
enum { WORK_JOBS, WORK_GRACE, WORK_MAX_JOBS, WORK_TIMEOUT_EXIT, WORK_OUTAGE_MAX };
enum { SERVE_LISTEN, SERVE_TOKEN_FILE, SERVE_RELAXED };
enum { SCHED_CRON, SCHED_TZ, SCHED_EVERY, SCHED_TYPE, SCHED_DATA, SCHED_CATCH_UP };

#endif
