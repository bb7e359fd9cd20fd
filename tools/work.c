/*
 * cjobs work: a ready-made job processor that runs a command per job.
 *
 * The main thread owns the signals: SIGINT and SIGTERM are blocked in every
 * thread (the library's too) and read from a signalfd, polled together
 * with an eventfd that the last of the other threads writes when it ends.
 * The acceptor and the slots are in work_slots.c, one job's run in
 * work_run.c; work.h lists the rest.
 */
#include "work.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

extern char **environ;

const struct cli_opt cli_work_opts[] = {
	{"--jobs", "-j", "N", "run up to N jobs at once (default 1)"},
	{"--grace", NULL, "SECONDS", "on SIGINT/SIGTERM, let commands run this long "
	                             "(default 10)"},
	{"--max-jobs", NULL, "N", "exit after N jobs were run (finished or halted)"},
	{"--timeout-exit", NULL, "MS", "exit after MS milliseconds (or 5s, 1m, ...) "
	                               "without a job"},
	{"--outage-max", NULL, "SECONDS", "exit 1 once the store has been unavailable "
	                                  "this long (default: wait until it is back)"},
	{NULL, NULL, NULL, NULL},
};

_Static_assert(MAX_SLOTS <= CJ_ACCEPT_MAX, "-j above what one accept may take");

static int parse_count(struct cli *c, const char *opt, const char *s, int64_t max,
                       int64_t *v) {
	if (cli_parse_int(s, v) != 0 || *v < 1 || *v > max)
		return cli_usage(c, "invalid %s '%s' (want a whole number from 1 to %lld)",
		                 opt, s, (long long)max);
	return 0;
}

/* Parses the options into w; 0 or a usage exit code after reporting. */
static int parse_options(struct cli *c, const struct cli_args *a, struct worker *w) {
	int rc;
	int64_t v;
	for (size_t i = 0; i < w->ntypes; i++)
		if ((rc = cli_judged(c, cj_type_check(w->types[i])))) return rc;
	if (a->set[WORK_JOBS]) {
		if ((rc = parse_count(c, "-j", a->val[WORK_JOBS], MAX_SLOTS, &v))) return rc;
		w->nslots = (int)v;
	}
	if (a->set[WORK_GRACE] &&
	    (cli_parse_duration_ms(a->val[WORK_GRACE], 1000, &w->grace_ms) != 0 ||
	     w->grace_ms > (int64_t)366 * 86400 * 1000))
		return cli_usage(c, "invalid --grace '%s' (want seconds, or a duration "
		                 "such as 30s, 5m)", a->val[WORK_GRACE]);
	if (a->set[WORK_MAX_JOBS] &&
	    (rc = parse_count(c, "--max-jobs", a->val[WORK_MAX_JOBS], INT64_MAX / 2,
	                      &w->max_jobs)))
		return rc;
	if (a->set[WORK_TIMEOUT_EXIT] &&
	    (cli_parse_duration_ms(a->val[WORK_TIMEOUT_EXIT], 1, &w->idle_exit_ms) != 0 ||
	     w->idle_exit_ms > (int64_t)366 * 86400 * 1000))
		return cli_usage(c, "invalid --timeout-exit '%s' (want milliseconds, or a "
		                 "duration such as 5s)", a->val[WORK_TIMEOUT_EXIT]);
	if (a->set[WORK_OUTAGE_MAX] &&
	    (cli_parse_duration_ms(a->val[WORK_OUTAGE_MAX], 1000, &w->outage_max_ms) != 0 ||
	     w->outage_max_ms < 1000 || w->outage_max_ms > (int64_t)366 * 86400 * 1000))
		return cli_usage(c, "invalid --outage-max '%s' (want seconds, at least 1, or a "
		                 "duration such as 90s, 5m)", a->val[WORK_OUTAGE_MAX]);
	if (!*w->argv[0] || !command_exists(w->argv[0]))
		return cli_usage(c, "command not found: '%s'", w->argv[0]);
	return 0;
}

/* The environment of the commands: ours, less what is set per job. */
static int make_env(struct worker *w) {
	size_t n = 0;
	for (char **e = environ; e && *e; e++) n++;
	if (!(w->env_base = malloc((n + 1) * sizeof *w->env_base))) return -1;
	for (char **e = environ; e && *e; e++)
		if (strncmp(*e, "CJ_JOB_TYPE=", 12) && strncmp(*e, "CJ_JOB_ID=", 10) &&
		    strncmp(*e, "CJ_JOB_LOCK=", 12) && strncmp(*e, "CJOBS_DB=", 9))
			w->env_base[w->nenv++] = *e;
	return 0;
}

/* Until every thread has ended: the first SIGINT/SIGTERM stops taking jobs,
 * the second ends the grace period. Sleeps in poll() between events. */
static void main_loop(struct worker *w, int sigfd) {
	struct cli *c = w->c;
	while (atomic_load(&w->alive) > 0) {
		struct pollfd p[2] = {{sigfd, POLLIN, 0}, {w->done_fd, POLLIN, 0}};
		if (poll(p, 2, -1) < 0) continue; /* EINTR */
		if (p[1].revents) break;
		struct signalfd_siginfo si;
		if (!p[0].revents || read(sigfd, &si, sizeof si) != (ssize_t)sizeof si) continue;
		if (!atomic_load(&w->stopping)) {
			begin_stop(w);
			int nr = atomic_load(&w->running);
			cli_msg(c, "stopping: taking no more jobs; %d running command%s "
			        "get%s %lld ms to end", nr, nr == 1 ? "" : "s",
			        nr == 1 ? "s" : "", (long long)w->grace_ms);
		} else {
			atomic_store(&w->deadline, cli_now_ms());
			poke_slots(w);
			cli_msg(c, "stopping now");
		}
	}
}

int cmd_work(struct cli *c, const struct cli_args *a) {
	struct worker *w = calloc(1, sizeof *w);
	pthread_t *threads = NULL;
	int rc, nthreads = 0, nwake = 0, sigfd = -1;
	if (!w) {
		cli_msg(c, "out of memory");
		return CLI_EXIT_STORE;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->slot_free, &ca);
	pthread_cond_init(&w->queued, NULL);
	pthread_condattr_destroy(&ca);
	w->c = c;
	w->types = (const char *const *)a->pos;
	w->ntypes = (size_t)a->npos;
	w->argv = a->rest;
	w->nslots = 1;
	w->grace_ms = 10000;
	w->idle_exit_ms = -1;
	w->done_fd = -1;
	if ((rc = parse_options(c, a, w))) goto out;

	rc = CLI_EXIT_STORE;
	threads = calloc((size_t)w->nslots + 1, sizeof *threads);
	w->queue = calloc((size_t)w->nslots, sizeof *w->queue);
	w->jobs = calloc((size_t)w->nslots, sizeof *w->jobs);
	w->data = calloc((size_t)w->nslots, sizeof *w->data);
	w->slot_wake = calloc((size_t)w->nslots, sizeof *w->slot_wake);
	if (!threads || !w->queue || !w->jobs || !w->data || !w->slot_wake ||
	    make_env(w) != 0 || cj_cancel_new(&w->cancel) != CJ_OK) {
		cli_msg(c, "out of memory");
		goto out;
	}
	if ((w->done_fd = eventfd(0, EFD_CLOEXEC)) < 0) {
		cli_msg(c, "cannot make an eventfd: %s", strerror(errno));
		goto out;
	}
	for (; nwake < w->nslots; nwake++)
		if ((w->slot_wake[nwake] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
			cli_msg(c, "cannot make an eventfd: %s", strerror(errno));
			goto out;
		}

	/* signals: blocked in every thread (the library's too), read below */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* kept blocked until exit */
	signal(SIGPIPE, SIG_IGN);
	if ((sigfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
		cli_msg(c, "cannot make a signalfd: %s", strerror(errno));
		goto out;
	}

	if ((rc = outage_open(w, sigfd)) || !c->db) goto out;

	atomic_store(&w->last_busy, cli_now_ms());
	atomic_store(&w->deadline, INT64_MAX);
	/* the slots first, then the acceptor that feeds them */
	for (int i = 0; i <= w->nslots; i++) {
		atomic_fetch_add(&w->alive, 1);
		if (pthread_create(&threads[i], NULL, i < w->nslots ? slot_main : accept_main,
		                   w) != 0) {
			cli_msg(c, "cannot start a thread: %s", strerror(errno));
			stop_failed(w);
			end_accepting(w); /* no acceptor: the slots end */
			thread_done(w);
			break;
		}
		nthreads++;
	}
	main_loop(w, sigfd);
	for (int i = 0; i < nthreads; i++) pthread_join(threads[i], NULL);
	rc = atomic_load(&w->failed) ? CLI_EXIT_STORE : CLI_EXIT_OK;

out:
	if (sigfd >= 0) close(sigfd);
	for (int i = 0; i < nwake; i++) close(w->slot_wake[i]);
	if (w->done_fd >= 0) close(w->done_fd);
	cj_cancel_free(w->cancel);
	free(threads);
	free(w->env_base);
	free(w->queue);
	free(w->jobs);
	free(w->data);
	free(w->slot_wake);
	pthread_cond_destroy(&w->queued);
	pthread_cond_destroy(&w->slot_free);
	pthread_mutex_destroy(&w->mu);
	free(w);
	return rc;
}
