/*
 * cjobs: the command-line front end of couchjobs.
 *
 * The global options, the command table that drives dispatch and help,
 * parsing the command line (cli_parse; main() is in main.c), and the exit
 * codes.
 */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- the command table -------------------------------------------------- */

static const struct cli_cmd commands[] = {
	{"timeout", cmd_timeout, 1, 2, "TYPE [SECONDS | --clear]",
	 "print, set or clear the activity timeout of a job type",
	 cli_timeout_opts, 0,
	 "With TYPE alone, prints the type's timeout in seconds (exit 3 when it\n"
	 "has none). With SECONDS (plain seconds or a duration such as 90s, 5m,\n"
	 "2h, 1d), sets it; jobs of a type can only be added once it has one.\n"
	 "With --clear, clears it."},
	{"policy", cmd_policy, 1, 1,
	 "TYPE [--max-attempts N] [--backoff-min S] [--backoff-max S] "
	 "[--multiplier N] [--jitter none|full|equal] | --clear",
	 "print, set or clear the retry policy of a job type",
	 cli_policy_opts, 0,
	 "With TYPE alone, prints the type's retry policy as one JSON object\n"
	 "(exit 3 when it has none). With options, sets it: the options given\n"
	 "replace those of the current policy (or of the defaults: 5 attempts,\n"
	 "backoff 10 s to 1 h, multiplier 2, equal jitter). After attempt n fails\n"
	 "or is lost the job waits min(backoff-max, backoff-min * multiplier^(n-1))\n"
	 "seconds, jittered: none (exactly), full (0 to that), equal (half to\n"
	 "all of it); after max-attempts (0: never) it is dead. With --clear,\n"
	 "clears it: a failure is then final, a lost lease retried at once."},
	{"retention", cmd_retention, 1, 1,
	 "TYPE [--keep-for D] [--keep N] [--dead-keep-for D] [--dead-keep N] | --clear",
	 "print, set or clear the retention of a job type's finished and dead jobs",
	 cli_retention_opts, 0,
	 "With TYPE alone, prints the type's retention as one JSON object (null:\n"
	 "no limit; exit 3 when it has none). With options, sets it: the options\n"
	 "given replace those of the current retention. Finished jobs are removed\n"
	 "once they finished longer than --keep-for ago, and beyond the --keep\n"
	 "that finished last; dead jobs by --dead-keep-for and --dead-keep. The\n"
	 "activity monitors of the processes that have the store open remove\n"
	 "them. With --clear, clears it: such jobs are kept until removed."},
	{"prune", cmd_prune, 0, 1, "[TYPE] [--older-than D] [--keep N] [--dead]",
	 "remove finished (or dead) jobs now",
	 cli_prune_opts, 0,
	 "With --older-than or --keep, removes the finished jobs (--dead: the dead\n"
	 "ones) of TYPE, or of every type, that finished longer than D ago or are\n"
	 "beyond the N that finished last. Without them, applies the retention of\n"
	 "TYPE (exit 3 when it has none), or of every type that has one. Pending\n"
	 "and running jobs are never removed. Prints the number of jobs removed."},
	{"limit", cmd_limit, 1, 1, "TYPE [--concurrency N] [--rate N/PERIOD] | --clear",
	 "print, set or clear the concurrency and rate limits of a job type", cli_limit_opts, 0,
	 "With TYPE alone, prints the type's limits as one JSON object (exit 3 when\n"
	 "it has none). With options, sets them: the options given replace those of\n"
	 "the current limits. --concurrency N: at most N jobs of the type run at once,\n"
	 "across every processor. --rate N/PERIOD: at most N accepts per PERIOD (a\n"
	 "token bucket of N, refilled continuously). 0 turns either off. With\n"
	 "--clear, clears them."},
	{"schedule", cmd_schedule, 1, 2,
	 "add NAME (--cron EXPR [--tz ZONE] | --every DURATION) --type TYPE [--data JSON] "
	 "[--catch-up skip|last] | list | rm NAME",
	 "add, list or remove schedules (periodic jobs)",
	 cli_schedule_opts, 0,
	 "add creates schedule NAME, or replaces it: at each tick T (of the cron\n"
	 "expression in ZONE, or every DURATION, aligned to multiples of it since\n"
	 "1970-01-01T00:00:00Z) the job NAME@T (T as 2026-12-04T02:00:00Z) of\n"
	 "TYPE is added, once, if no job with that id exists. Every process that\n"
	 "opens the store with its monitor (cjobs work, cjobs serve, programs)\n"
	 "runs the scheduler. --catch-up says what a scheduler that finds missed\n"
	 "ticks does: skip (the default) fires none unless the latest is under a\n"
	 "minute late, last fires the latest once. list prints one line per\n"
	 "schedule: name, spec, type, catch-up, next tick, last tick fired (- for\n"
	 "none), tab-separated. rm removes NAME (exit 3 if there is none); its\n"
	 "jobs stay."},
	{"types", cmd_types, 0, 0, "",
	 "list the job types that have a timeout, with their limits and retention",
	 NULL, 0,
	 "Prints one line per type, tab-separated: the type, its timeout in seconds,\n"
	 "its limits (concurrency=N rate=N/PERIOD, those set; - for none) and its\n"
	 "retention (keep-for=D keep=N dead-keep-for=D dead-keep=N, those set; -\n"
	 "for none)."},
	{"add", cmd_add, 2, 3,
	 "TYPE ID [JSON] [--at EPOCH | --in DURATION] [--unique POLICY | --if-absent]",
	 "add a job, or re-enqueue an existing one",
	 cli_add_opts, 0,
	 "JSON is the job's data, one JSON object (default {}; - reads it from\n"
	 "standard input). A pending job\n"
	 "gets the new data and time; a running one is flagged to run again\n"
	 "when it finishes (its data is kept); a finished one is pending again.\n"
	 "--unique id (or --if-absent) adds only when no job with this id exists;\n"
	 "--unique active only when none is pending or running (a finished one\n"
	 "is pending again). Otherwise exit 5 and nothing changes. Prints nothing."},
	{"get", cmd_get, 2, 2, "TYPE ID",
	 "print a job as one JSON object",
	 NULL, 0,
	 "Prints {\"type\",\"id\",\"state\",\"sched_time\",\"resubmit\",\"data\",\n"
	 "\"attempt\",\"fence\",\"added_ms\",\"finished_ms\",\"errors\"} on one line; data is\n"
	 "the job's JSON object, errors how its last attempts failed. Exit 3\n"
	 "when there is no such job."},
	{"list", cmd_list, 0, 1, "[TYPE] [--state STATE]",
	 "print jobs, one JSON object per line",
	 cli_list_opts, 0,
	 "Prints every job (of TYPE, when given) in (type, id) order, one line\n"
	 "each, in the format of `cjobs get`."},
	{"rm", cmd_rm, 2, 2, "TYPE ID",
	 "remove a job, whatever its state",
	 NULL, 0,
	 "A running job's processor is told to stop (it gets a halt on its next\n"
	 "update or finish). Exit 3 when there is no such job."},
	{"stats", cmd_stats, 0, 0, "[--json]",
	 "count jobs per type and state",
	 cli_stats_opts, 0,
	 "Prints a table with one row per type (every type that has a timeout or\n"
	 "jobs): pending, running, finished, dead and total, and retrying: the\n"
	 "pending jobs waiting for another attempt."},
	{"accept", cmd_accept, 1, CJ_ACCEPT_TYPES_MAX,
	 "TYPE [TYPE...] [--timeout MS] [--any-time] [--lock-only]",
	 "take a pending job and print it with its lock",
	 cli_accept_opts, 0,
	 "Makes one pending job of TYPE running, held by the returned lock, and\n"
	 "prints {\"type\",\"id\",\"lock\",\"data\"} (--lock-only: the lock alone, as\n"
	 "in lock=$(cjobs accept TYPE --lock-only)). Waits for a job to arrive (for\n"
	 "ever unless --timeout is given); exit 3 when none arrived in time.\n"
	 "The holder must run `cjobs update` within the type's timeout, and\n"
	 "`cjobs finish` when done. With several TYPEs, in order of priority, the\n"
	 "job comes from the first that has one due."},
	{"update", cmd_update, 3, 4, "TYPE ID LOCK [JSON]",
	 "tell the store an accepted job is alive; optionally replace its data",
	 NULL, 0,
	 "LOCK is the one printed by `cjobs accept`; JSON (- reads standard\n"
	 "input) replaces the job's data. Exit 4 (halt) when the job was removed\n"
	 "or is no longer held with LOCK: stop working on it."},
	{"finish", cmd_finish, 3, 4, "TYPE ID LOCK [JSON]",
	 "finish an accepted job; JSON is its final data",
	 NULL, 0,
	 "The job becomes finished, or pending again if it was re-added while\n"
	 "running. JSON (- reads standard input) is its final data; without it\n"
	 "the data is kept. Exit 4 (halt) when the job was removed or is no\n"
	 "longer held with LOCK."},
	{"resubmit", cmd_resubmit, 3, 4,
	 "TYPE ID LOCK [JSON] [--at EPOCH | --in DURATION]",
	 "ask for an accepted job to run again",
	 cli_resubmit_opts, 0,
	 "Running: the job is flagged and becomes pending when finished (JSON is\n"
	 "not applied then; pass it to `cjobs finish`). Finished: pending again\n"
	 "with JSON. Pending: its data and time are replaced. Exit 3 when the\n"
	 "job no longer exists."},
	{"fail", cmd_fail, 3, 4, "TYPE ID LOCK [JSON]",
	 "end an accepted job's attempt as failed; JSON says why",
	 NULL, 0,
	 "The job waits for its next attempt, or is dead when its type's (or its\n"
	 "own) retry policy says its attempts are used up; without a policy it\n"
	 "is dead at once. JSON (- reads standard input; default {}) is the\n"
	 "error kept in the job, at most 4096 bytes. Exit 4 (halt) when the job\n"
	 "was removed or is no longer held with LOCK."},
	{"retry", cmd_retry, 1, 2, "TYPE ID | --all TYPE [--keep-attempts]",
	 "put a dead job, or every dead job of a type, back to pending",
	 cli_retry_opts, 0,
	 "The job runs again at once, with its data and errors; its attempts\n"
	 "start again from 0 unless --keep-attempts. With --all, every dead job\n"
	 "of TYPE, in batches; prints how many. Exit 3 when there is no such\n"
	 "job, 2 when it is not dead."},
	{"watch", cmd_watch, 2, 2, "TYPE ID",
	 "print a job's state changes until it is finished or removed",
	 NULL, 0,
	 "Prints {\"type\",\"id\",\"state\",\"data\"} on one line for the current\n"
	 "state, then one line per change (a change of state or of data), until\n"
	 "the job is finished or removed (data null). Exit 3 when there is no\n"
	 "such job. SIGINT or SIGTERM ends it with exit 0."},
	{"check", cmd_check, 0, 0, "",
	 "check the whole store for damage",
	 NULL, 0,
	 "Reads every key of the store from one snapshot and checks that it\n"
	 "decodes, that every value is sound (job data is one JSON object) and\n"
	 "that every job's indexes agree with its state. Prints one line per\n"
	 "problem (type, id, what is wrong); exit 0 when there is none, 1 when\n"
	 "there are problems or the store cannot be read to its end. Changes\n"
	 "nothing."},
	{"work", cmd_work, 1, CJ_ACCEPT_TYPES_MAX,
	 "TYPE [TYPE...] [-j N] [--grace SECONDS] [--max-jobs N] [--timeout-exit MS] "
	 "[--outage-max SECONDS] -- COMMAND [ARGS...]",
	 "run COMMAND for each job of TYPE",
	 cli_work_opts, CLI_REST,
	 "For each accepted job, runs COMMAND (no shell) in its own process group\n"
	 "with the job's data and a newline on its standard input, and CJ_JOB_TYPE,\n"
	 "CJ_JOB_ID and CJ_JOB_LOCK in its environment. While it runs, the job is\n"
	 "updated at least every third of the type's timeout. If the job is\n"
	 "removed or taken back, the command's process group gets SIGTERM, then\n"
	 "SIGKILL, and the job is left alone. When the command exits, the job is\n"
	 "finished with its standard output if that is one JSON object, otherwise\n"
	 "with {\"exit_status\":N,\"output_tail\":\"...\"} (or \"signal\":N when it\n"
	 "was killed by a signal). Its standard error passes through.\n"
	 "SIGINT or SIGTERM: take no more jobs, let running commands end within\n"
	 "the grace period, then kill them and hand their jobs back (pending at\n"
	 "once); exit 0. A second signal ends the grace period at once.\n"
	 "While the store is unavailable (a server restarting), running commands\n"
	 "go on and every store call is retried, 50-100 ms apart at first, up to\n"
	 "2.5-5 s (heartbeats every second); one line says so, one when it is back.\n"
	 "One line per job is logged on standard error; standard output is\n"
	 "not used. CJOBS_DB is set to the store for the command, so it may\n"
	 "run `cjobs update \"$CJ_JOB_TYPE\" \"$CJ_JOB_ID\" \"$CJ_JOB_LOCK\" JSON`\n"
	 "to report progress. Several TYPEs (before --) are taken in order of\n"
	 "priority: each free slot gets a job of the first that has one due."},
	{"serve", cmd_serve, 0, 0, "[--listen ADDR:PORT] [--token-file FILE] [--relaxed]",
	 "serve the store over HTTP: a JSON API, job events, /metrics",
	 cli_serve_opts, 0,
	 "Serves the API of doc/http-api.md until SIGTERM or SIGINT, then stops\n"
	 "gracefully: no new connections, waiting accepts and event streams are\n"
	 "answered, requests in flight complete. Prints \"listening on URL\" once\n"
	 "it serves. Without --token-file only loopback clients are served; with\n"
	 "it, every request needs 'Authorization: Bearer TOKEN' (the file's\n"
	 "content, trailing white space ignored)."},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* ---- messages ---------------------------------------------------------- */

static const char *cur_cmd_name(struct cli *c) {
	return c && c->cmd ? c->cmd->name : NULL;
}

/* Prints the prefix and the formatted message on one line: line breaks and
 * other control characters in it become spaces. */
static void vmsg(struct cli *c, const char *fmt, va_list ap) {
	char buf[2048];
	vsnprintf(buf, sizeof buf, fmt, ap);
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20) *p = ' ';
	const char *name = cur_cmd_name(c);
	fflush(stdout);
	if (name)
		fprintf(stderr, "cjobs: %s: %s\n", name, buf);
	else
		fprintf(stderr, "cjobs: %s\n", buf);
}

void cli_msg(struct cli *c, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vmsg(c, fmt, ap);
	va_end(ap);
}

int cli_usage(struct cli *c, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vmsg(c, fmt, ap);
	va_end(ap);
	return CLI_EXIT_USAGE;
}

int cli_fail(struct cli *c, int rc, const char *what) {
	const char *detail = cj_last_error();
	char head[600];
	snprintf(head, sizeof head, "%s%s%s", what ? what : "", what ? ": " : "",
	         cj_strerror(rc));
	if (detail && *detail)
		cli_msg(c, "%s (%s)", head, detail);
	else
		cli_msg(c, "%s", head);
	switch (rc) {
	case CJ_NOT_FOUND: return CLI_EXIT_NOT_FOUND;
	case CJ_HALT: return CLI_EXIT_HALT;
	case CJ_EXISTS: return CLI_EXIT_EXISTS;
	case CJ_INVALID:
	case CJ_JSON:
	case CJ_TOO_LARGE: return CLI_EXIT_USAGE;
	default: return CLI_EXIT_STORE;
	}
}

int cli_try_open(struct cli *c, int monitor) {
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = !monitor;
	const char *shared = getenv("CJOBS_SHARED_STORE");
	o.shared = shared && strcmp(shared, "1") == 0;
	return cj_open(c->url, &o, &c->db);
}

int cli_open_failed(struct cli *c, int rc) {
	char shown[400], what[512];
	cj_url_redact(c->url, shown, sizeof shown);
	snprintf(what, sizeof what, "cannot open store '%s'", shown);
	int ex = cli_fail(c, rc, what);
	return ex == CLI_EXIT_USAGE ? CLI_EXIT_USAGE : CLI_EXIT_STORE;
}

int cli_open(struct cli *c, int monitor) {
	int rc = cli_try_open(c, monitor);
	return rc == CJ_OK ? 0 : cli_open_failed(c, rc);
}

/* ---- help -------------------------------------------------------------- */

static const char exit_codes_help[] =
	"exit codes:\n"
	"  0  success\n"
	"  1  the store failed (the message gives the library's code and detail)\n"
	"  2  usage error: a bad command line or argument; nothing was done\n"
	"  3  not found: no such job or type timeout; accept: no job in time\n"
	"  4  halt: the job was removed or is no longer held with this lock\n"
	"  5  exists: add --unique / --if-absent found the job; nothing was done\n";

static void print_main_help(FILE *f) {
	fprintf(f,
	        "usage: cjobs [--db URL] COMMAND [ARGS...]\n"
	        "\n"
	        "Adds, runs and watches couchjobs background jobs.\n"
	        "\n"
	        "commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "  %-9s %s\n", "help", "show this help, or a command's (help COMMAND)");
	fprintf(f,
	        "\n"
	        "global options:\n"
	        "  --db URL       the job store: a directory or lmdb:PATH (embedded\n"
	        "                 engine), or postgresql://... (default: $CJOBS_DB,\n"
	        "                 else the directory " CLI_DEFAULT_DB ")\n"
	        "  -h, --help     show help\n"
	        "  -V, --version  show the version\n"
	        "\n"
	        "environment:\n"
	        "  CJOBS_DB            the store, when --db is not given\n"
	        "  CJOBS_SHARED_STORE  1: accept a store directory that other users may\n"
	        "                      write (else refused: they could plant links)\n"
	        "\n"
	        "%s"
	        "\n"
	        "Run 'cjobs COMMAND --help' for a command's arguments and options.\n",
	        exit_codes_help);
}

static void print_cmd_help(FILE *f, const struct cli_cmd *cmd) {
	fprintf(f, "usage: cjobs %s%s%s\n\n%s.\n", cmd->name, *cmd->usage ? " " : "",
	        cmd->usage, cmd->summary);
	if (cmd->help) fprintf(f, "\n%s\n", cmd->help);
	fprintf(f, "\noptions:\n");
	for (const struct cli_opt *o = cmd->opts; o && o->name; o++) {
		char left[64];
		snprintf(left, sizeof left, "%s%s%s%s%s", o->alias ? o->alias : "",
		         o->alias ? ", " : "", o->name, o->arg ? " " : "",
		         o->arg ? o->arg : "");
		fprintf(f, "  %-22s %s\n", left, o->help);
	}
	fprintf(f, "  %-22s %s\n", "--db URL",
	        "the job store (default: $CJOBS_DB, else " CLI_DEFAULT_DB ")");
	fprintf(f, "  %-22s %s\n", "-h, --help", "show this help");
	fprintf(f, "\n%s", exit_codes_help);
}

static const struct cli_cmd *find_cmd(const char *name) {
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0) return &commands[i];
	return NULL;
}

/* ---- the command line ---------------------------------------------------- */

/* Matches `arg` against option `o`. Returns 1 and sets *val (NULL when the
 * value is the next argument) on a match, 0 otherwise. */
static int match_opt(const struct cli_opt *o, const char *arg, const char **val) {
	size_t l = strlen(o->name);
	if (strncmp(arg, o->name, l) == 0 && (arg[l] == 0 || arg[l] == '=')) {
		*val = arg[l] == '=' ? arg + l + 1 : NULL;
		return 1;
	}
	if (o->alias) {
		size_t al = strlen(o->alias);
		if (strncmp(arg, o->alias, al) == 0 && (arg[al] == 0 || o->arg)) {
			*val = arg[al] ? arg + al : NULL;
			return 1;
		}
	}
	return 0;
}

/* Parses the arguments after the command's name. Returns 0, -1 for --help,
 * or a usage exit code after reporting. */
static int parse_args(struct cli *c, int argc, char **argv, struct cli_args *a) {
	const struct cli_cmd *cmd = c->cmd;
	int only_pos = 0;
	/* COMMAND starts after "--", or, without one, after min_args positionals */
	int rest_at = cmd->min_args;
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) rest_at = cmd->max_args;
	for (int i = 0; i < argc; i++) {
		char *arg = argv[i];
		if (!only_pos && strcmp(arg, "--") == 0) {
			if (cmd->flags & CLI_REST) {
				a->rest = argv + i + 1;
				a->nrest = argc - i - 1;
				break;
			}
			only_pos = 1;
			continue;
		}
		/* "-5" is a (bad) number for the command to judge, not an option */
		if (!only_pos && arg[0] == '-' && arg[1] && !isdigit((unsigned char)arg[1])) {
			if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return -1;
			const char *val;
			if (strncmp(arg, "--db", 4) == 0 && (arg[4] == 0 || arg[4] == '=')) {
				if (arg[4] == '=')
					val = arg + 5;
				else if (i + 1 < argc)
					val = argv[++i];
				else
					return cli_usage(c, "option --db needs a value (URL)");
				if (!*val) return cli_usage(c, "option --db needs a value (URL)");
				c->url = val;
				continue;
			}
			int k = 0, found = 0;
			for (const struct cli_opt *o = cmd->opts; o && o->name; o++, k++) {
				if (!match_opt(o, arg, &val)) continue;
				found = 1;
				if (!o->arg) {
					if (val)
						return cli_usage(c, "option %s takes no value", o->name);
					val = "";
				} else if (!val) {
					if (i + 1 >= argc)
						return cli_usage(c, "option %s needs a value (%s)",
						                 o->name, o->arg);
					val = argv[++i];
				}
				a->val[k] = val;
				a->set[k] = 1;
				break;
			}
			if (!found)
				return cli_usage(c, "unknown option '%s' (see cjobs %s --help)",
				                 arg, cmd->name);
			continue;
		}
		if ((cmd->flags & CLI_REST) && a->npos == rest_at) {
			a->rest = argv + i;
			a->nrest = argc - i;
			break;
		}
		a->pos[a->npos++] = arg;
	}
	if (a->npos < cmd->min_args)
		return cli_usage(c, "missing argument (usage: cjobs %s %s)", cmd->name,
		                 cmd->usage);
	if (a->npos > cmd->max_args)
		return cli_usage(c, "unexpected argument '%s' (usage: cjobs %s%s%s)",
		                 a->pos[cmd->max_args], cmd->name,
		                 *cmd->usage ? " " : "", cmd->usage);
	if ((cmd->flags & CLI_REST) && a->nrest == 0)
		return cli_usage(c, "missing COMMAND (usage: cjobs %s %s)", cmd->name,
		                 cmd->usage);
	return 0;
}

int cli_parse(struct cli *c, int argc, char **argv, struct cli_args *a) {
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			print_main_help(stdout);
			return CLI_EXIT_OK;
		}
		if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0) {
			printf("cjobs %s\n", cj_version());
			return CLI_EXIT_OK;
		}
		if (strncmp(arg, "--db", 4) == 0 && (arg[4] == 0 || arg[4] == '=')) {
			const char *val = arg[4] == '=' ? arg + 5 : i + 1 < argc ? argv[++i] : NULL;
			if (!val || !*val) return cli_usage(c, "option --db needs a value (URL)");
			c->url = val;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		}
		return cli_usage(c, "unknown option '%s' (see cjobs --help)", arg);
	}
	if (i >= argc) return cli_usage(c, "missing command (see cjobs --help)");

	const char *name = argv[i++];
	if (strcmp(name, "help") == 0) {
		if (i >= argc) {
			print_main_help(stdout);
			return CLI_EXIT_OK;
		}
		const struct cli_cmd *cmd = find_cmd(argv[i]);
		if (!cmd)
			return cli_usage(c, "help: unknown command '%s' (see cjobs --help)", argv[i]);
		if (i + 1 < argc) return cli_usage(c, "help: unexpected argument '%s'", argv[i + 1]);
		print_cmd_help(stdout, cmd);
		return CLI_EXIT_OK;
	}
	c->cmd = find_cmd(name);
	if (!c->cmd) return cli_usage(c, "unknown command '%s' (see cjobs --help)", name);

	memset(a, 0, sizeof *a);
	a->pos = calloc((size_t)(argc - i) + 1, sizeof *a->pos);
	if (!a->pos) {
		cli_msg(c, "out of memory");
		return CLI_EXIT_STORE;
	}
	int rc = parse_args(c, argc - i, argv + i, a);
	if (rc == -1) {
		print_cmd_help(stdout, c->cmd);
		return CLI_EXIT_OK;
	}
	return rc == 0 ? CLI_RUN : rc;
}

void cli_args_free(struct cli_args *a) {
	free(a->pos);
	a->pos = NULL;
}

int cli_finish_output(struct cli *c, int rc) {
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_msg(c, "cannot write the output: %s", strerror(errno));
		if (rc == CLI_EXIT_OK) rc = CLI_EXIT_STORE;
	}
	return rc;
}
