/*
 * cjobs work: the declarations its files share.
 *
 *   work.c          the command: options, threads, signals
 *   work_slots.c    the scheduler: one acceptor thread feeding N slots
 *   work_run.c      one job: the command's run loop, finish, hand back
 *   work_spawn.c    starting the command (environment, pipes, group)
 *   work_watch.c    the per-job watcher (the job's lease subscription)
 *   work_capture.c  the command's output, kept for the job's result
 *   work_outage.c   riding out an outage of the store: retries, its log
 *
 * Nothing here wakes on a timer while idle: threads block on condition
 * variables, cj_accept() (ended by a cancellation) and poll() on file
 * descriptors that carry events (a signalfd, eventfds, pipes, pidfds). The
 * only timers are work the user asked for: the heartbeat of a running job
 * (cj_update() at least once per type timeout), the grace and kill periods
 * of a stop, --timeout-exit, and the backoff of retries while the store
 * fails (work_outage.c).
 */
#ifndef CJOBS_WORK_H
#define CJOBS_WORK_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "cli.h"

#define MAX_SLOTS 1024 /* one cj_accept_many() fills them all */
#define RETRY_FIRST_MS 100   /* first wait before retrying a store call */
#define RETRY_CAP_MS 5000    /* longest wait between retries */

/* A job taken by the acceptor, waiting for a slot thread. */
struct queued_job {
	cj_job *job;
	char *data;
};

struct worker {
	struct cli *c;
	const char *const *types; /* in order of priority */
	size_t ntypes;
	char **argv;            /* the command */
	int nslots;
	int64_t grace_ms;
	int64_t max_jobs;       /* 0: no limit */
	int64_t idle_exit_ms;   /* -1: never */
	int64_t outage_max_ms;  /* --outage-max; 0: retry until the store is back */
	char **env_base;        /* environ without CJ_JOB_* and CJOBS_DB */
	size_t nenv;

	atomic_int stopping;    /* a stop signal came: no new jobs */
	atomic_llong deadline;  /* when stopping: kill commands at this time */
	atomic_int draining;    /* no new jobs (max-jobs, idle exit) */
	atomic_llong tickets;   /* jobs taken, for --max-jobs */
	atomic_llong last_busy; /* last time a job arrived or ended */
	atomic_int running;     /* jobs taken and not done (queued or run) */
	atomic_int alive;       /* threads (acceptor and slots) still looping */
	atomic_int failed;      /* an error retrying cannot cure: exit 1 */
	atomic_llong outage_since; /* first failure of the store's outage; 0: none */
	atomic_int outage_gave_up; /* the outage outlasted --outage-max */
	int done_fd;            /* eventfd: the last thread ended */
	int *slot_wake;         /* eventfd per slot: the stop state changed */
	atomic_int next_slot;   /* a starting slot thread's index */
	cj_cancel *cancel;      /* fired by a stop: ends the acceptor's wait */

	pthread_mutex_t mu;     /* guards the queue and accept_done; running
	                           only drops under it */
	pthread_cond_t slot_free; /* to the acceptor: a job is done, or a stop */
	pthread_cond_t queued;  /* to the slots: a job is queued, or the end */
	struct queued_job *queue; /* ring of nslots entries */
	int qhead, qlen;
	int accept_done;        /* the acceptor ended: nothing more is queued */
	cj_job **jobs;          /* the acceptor's cj_accept_many() arrays */
	char **data;
};

/* ---- work_capture.c ------------------------------------------------------ */

#define TAIL_BYTES 4096 /* output kept for output_tail */

struct capture {
	char *buf;       /* the output while it fits the limit */
	size_t len, cap;
	int overflow;    /* went past the limit: only the tail is kept */
	char tail[2 * TAIL_BYTES];
	size_t tlen;
	size_t limit;
};

void capture_add(struct capture *k, const char *p, size_t n);
/* The last TAIL_BYTES of the output. */
void capture_tail(const struct capture *k, const char **p, size_t *n);
/* A malloc'd copy of the output without its surrounding white space when
 * the library judges it valid job data (cj_data_check()), else NULL. */
char *capture_json(const struct capture *k);

/* ---- work_watch.c --------------------------------------------------------- */

struct watcher {
	cj_sub *sub; /* the job's lease subscription */
	int fd;      /* its descriptor: readable once the job is lost; -1 */
};

/* Watches job's lease; without a watcher (no memory, the store failing)
 * fd is -1 and the heartbeat still tells. */
void watcher_start(struct worker *w, cj_job *job, struct watcher *wt);
void watcher_stop(struct watcher *wt);

/* ---- work_spawn.c --------------------------------------------------------- */

/* Starts argv with the job's environment in its own process group, with
 * pipes on its standard input (*in_w) and output (*out_r), both
 * non-blocking. 0 or an errno. */
int spawn_command(struct worker *w, cj_job *job, pid_t *pid, int *in_w, int *out_r);
/* 1 when `name` can be run (a path, or found in $PATH). */
int command_exists(const char *name);

/* ---- work_run.c ------------------------------------------------------------- */

/* Runs one job taken by the acceptor: the command, then its finish (or a
 * hand back, or nothing when it was halted). slot picks the slot's
 * eventfd. */
void run_job(struct worker *w, int slot, cj_job *job, const char *data);
/* Writes to every slot's eventfd: running jobs look at the stop state. */
void poke_slots(struct worker *w);

/* ---- work_outage.c ---------------------------------------------------------- */

/* 1 for the codes a retry may cure (the store failing for a while). */
int transient(int rc);
/* Steps *backoff (0 at first) along a capped exponential backoff
 * (RETRY_FIRST_MS, doubled up to RETRY_CAP_MS) and returns how long to
 * wait before the next try: between half of it and all of it, at random,
 * so that workers that met the same outage do not retry in step. */
int64_t outage_wait_ms(int64_t *backoff);
/* A store call (`what`) failed with rc. 1: retry it after outage_wait_ms()
 * (rc is transient: CJ_STORE, CJ_TIMEOUT, CJ_NOMEM, CJ_CONFLICT; the first
 * failure of an outage, other than a conflict, is logged); 0: do not (rc
 * is not transient, or the outage outlasted --outage-max: then the worker
 * is stopping and will exit 1). */
int outage_failed(struct worker *w, int rc, const char *what);
/* The store answered a call: ends the outage, if any, with a log line. */
void outage_ended(struct worker *w);
/* A store call failed with a code a retry cannot cure: logs "what: code
 * (detail)" and stops the worker, which exits 1 (nothing when it is
 * stopping for --outage-max already). */
void store_broken(struct worker *w, int rc, const char *what);
/* Opens the store (cli_open()). One whose server cannot be reached is
 * waited for as in an outage, until it opens, --outage-max or a signal on
 * sigfd; any other failure is reported at once. 0 (CLI_EXIT_OK: opened, or
 * a signal came first: c->db is NULL then) or an exit code. */
int outage_open(struct worker *w, int sigfd);

/* ---- work_slots.c ------------------------------------------------------------ */

void *accept_main(void *arg);
void *slot_main(void *arg);
/* Stops taking jobs; running commands get the grace period. */
void begin_stop(struct worker *w);
/* begin_stop() after an error retrying cannot cure: the worker exits 1. */
void stop_failed(struct worker *w);
/* The acceptor is done: the slots run (or hand back) what is queued, then
 * end. */
void end_accepting(struct worker *w);
/* A thread ends: the last one tells the main thread. */
void thread_done(struct worker *w);

#endif
