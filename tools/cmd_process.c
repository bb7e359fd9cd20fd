/* cjobs: the job processing commands: accept, update, finish, fail,
 * resubmit, watch. */
#include "cli.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

const struct cli_opt cli_accept_opts[] = {
	{"--timeout", NULL, "MS", "wait at most MS milliseconds (or 5s, 1m, ...); "
	                          "0: do not wait"},
	{"--any-time", NULL, NULL, "also take jobs scheduled in the future"},
	{"--lock-only", NULL, NULL, "print only the lock, for a shell variable"},
	{NULL, NULL, NULL, NULL},
};

const struct cli_opt cli_resubmit_opts[] = {
	{"--at", NULL, "EPOCH", "run again not before this time (seconds since the epoch)"},
	{"--in", NULL, "DURATION", "run again not before this long from now"},
	{NULL, NULL, NULL, NULL},
};

int cmd_accept(struct cli *c, const struct cli_args *a) {
	const char *type = a->pos[0];
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	int rc;
	for (int i = 0; i < a->npos; i++)
		if ((rc = cli_judged(c, cj_type_check(a->pos[i])))) return rc;
	if (a->set[ACCEPT_TIMEOUT]) {
		int64_t ms;
		if (cli_parse_duration_ms(a->val[ACCEPT_TIMEOUT], 1, &ms) != 0)
			return cli_usage(c, "invalid --timeout '%s' (want milliseconds, or "
			                 "a duration such as 5s)", a->val[ACCEPT_TIMEOUT]);
		o.timeout_ms = ms;
	}
	if (a->set[ACCEPT_ANY]) o.max_sched_time = CJ_SCHED_ANY;
	if ((rc = cli_open(c, 0))) return rc;
	cj_job *job = NULL;
	char *data = NULL;
	rc = cj_accept_types(c->db, (const char *const *)a->pos, (size_t)a->npos, &o, &job, &data);
	if (rc == CJ_NOT_FOUND) {
		cli_msg(c, "no job of type '%s'%s became available in time", type,
		        a->npos > 1 ? " or the others" : "");
		return CLI_EXIT_NOT_FOUND;
	}
	if (rc != CJ_OK) return cli_fail(c, rc, "cannot accept a job");
	if (a->set[ACCEPT_LOCK_ONLY]) {
		printf("%s\n", cj_job_lock(job));
		cj_free(data);
		cj_job_free(job);
		return CLI_EXIT_OK;
	}
	fputs("{\"type\":", stdout);
	cli_put_jstr(stdout, cj_job_type(job), strlen(cj_job_type(job)));
	fputs(",\"id\":", stdout);
	cli_put_jstr(stdout, cj_job_id(job), strlen(cj_job_id(job)));
	fputs(",\"lock\":", stdout);
	cli_put_jstr(stdout, cj_job_lock(job), strlen(cj_job_lock(job)));
	fputs(",\"data\":", stdout);
	cli_put_data(stdout, data);
	fputs("}\n", stdout);
	cj_free(data);
	cj_job_free(job);
	return CLI_EXIT_OK;
}

/* Checks TYPE ID LOCK [JSON] and rebuilds the job's handle. 0 or a usage
 * exit code. */
static int resume(struct cli *c, const struct cli_args *a, cj_job **job,
                  const char **data, char **owned) {
	const char *type = a->pos[0], *id = a->pos[1], *lock = a->pos[2];
	int rc;
	*data = NULL;
	*owned = NULL;
	if ((rc = cli_judge_job(c, type, id))) return rc;
	if (cj_job_resume(type, id, lock, job) != CJ_OK)
		return cli_usage(c, "invalid lock '%s' (want the UUID printed by "
		                 "cjobs accept)", lock);
	if (a->npos > 3 && (rc = cli_data_arg(c, a->pos[3], owned, data))) {
		free(*owned);
		*owned = NULL;
		cj_job_free(*job);
		*job = NULL;
		return rc;
	}
	return 0;
}

static int halted(struct cli *c, const cj_job *job) {
	cli_msg(c, "halt: job type '%s' id '%s' was removed or is no longer held "
	        "with this lock; stop working on it", cj_job_type(job), cj_job_id(job));
	return CLI_EXIT_HALT;
}

enum end { END_UPDATE, END_FINISH, END_FAIL };

static int update_or_finish(struct cli *c, const struct cli_args *a, enum end how) {
	cj_job *job = NULL;
	const char *data;
	char *owned;
	int rc;
	if ((rc = resume(c, a, &job, &data, &owned))) return rc;
	if ((rc = cli_open(c, 0))) {
		free(owned);
		cj_job_free(job);
		return rc;
	}
	static const char *const what[] = {"cannot update the job", "cannot finish the job",
	                                   "cannot fail the job"};
	rc = how == END_FINISH ? cj_finish(c->db, NULL, job, data)
	     : how == END_FAIL ? cj_fail(c->db, NULL, job, data)
	                       : cj_update(c->db, NULL, job, data);
	int ex = CLI_EXIT_OK;
	if (rc == CJ_HALT)
		ex = halted(c, job);
	else if (rc != CJ_OK)
		ex = cli_fail(c, rc, what[how]);
	free(owned);
	cj_job_free(job);
	return ex;
}

int cmd_update(struct cli *c, const struct cli_args *a) {
	return update_or_finish(c, a, END_UPDATE);
}

int cmd_finish(struct cli *c, const struct cli_args *a) {
	return update_or_finish(c, a, END_FINISH);
}

int cmd_fail(struct cli *c, const struct cli_args *a) {
	return update_or_finish(c, a, END_FAIL);
}

int cmd_resubmit(struct cli *c, const struct cli_args *a) {
	cj_job *job = NULL;
	const char *data;
	char *owned;
	int64_t sched;
	int rc;
	if ((rc = cli_parse_sched(c, a->val[RESUB_AT], a->val[RESUB_IN],
	                          CJ_SCHED_KEEP, &sched)))
		return rc;
	if ((rc = resume(c, a, &job, &data, &owned))) return rc;
	if ((rc = cli_open(c, 0))) {
		free(owned);
		cj_job_free(job);
		return rc;
	}
	rc = cj_resubmit(c->db, NULL, job, sched, data);
	int ex = CLI_EXIT_OK;
	if (rc == CJ_HALT) {
		ex = halted(c, job);
	} else if (rc == CJ_NOT_FOUND) {
		cli_msg(c, "no such job: type '%s', id '%s'", cj_job_type(job), cj_job_id(job));
		ex = CLI_EXIT_NOT_FOUND;
	} else if (rc != CJ_OK) {
		ex = cli_fail(c, rc, "cannot resubmit the job");
	}
	free(owned);
	cj_job_free(job);
	return ex;
}

/* ---- watch ------------------------------------------------------------- */

/* SIGINT and SIGTERM, blocked in every thread, are taken by a thread of
 * their own that fires the cancellation tied to the subscription: the wait
 * sleeps until an event or a signal, on no timer. */
struct stop_thread {
	sigset_t set;
	cj_cancel *cancel;
	pthread_t thread;
	int started;
};

static void *stop_main(void *arg) {
	struct stop_thread *st = arg;
	int sig;
	sigwait(&st->set, &sig);
	cj_cancel_fire(st->cancel);
	return NULL;
}

/* Blocks the signals (before the library starts threads, which inherit
 * the mask) and starts the thread. 0, or -1 when out of memory. */
static int stop_thread_start(struct stop_thread *st) {
	memset(st, 0, sizeof *st);
	sigemptyset(&st->set);
	sigaddset(&st->set, SIGINT);
	sigaddset(&st->set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &st->set, NULL);
	if (cj_cancel_new(&st->cancel) != CJ_OK) return -1;
	if (pthread_create(&st->thread, NULL, stop_main, st) != 0) return -1;
	st->started = 1;
	return 0;
}

static void stop_thread_end(struct stop_thread *st) {
	if (st->started) {
		pthread_kill(st->thread, SIGTERM); /* taken by its sigwait() */
		pthread_join(st->thread, NULL);
	}
	cj_cancel_free(st->cancel);
}

static void print_event(const char *type, const char *id, int state, const char *data) {
	fputs("{\"type\":", stdout);
	cli_put_jstr(stdout, type, strlen(type));
	fputs(",\"id\":", stdout);
	cli_put_jstr(stdout, id, strlen(id));
	fprintf(stdout, ",\"state\":\"%s\",\"data\":", cj_state_name(state));
	cli_put_data(stdout, data);
	fputs("}\n", stdout);
	fflush(stdout);
}

int cmd_watch(struct cli *c, const struct cli_args *a) {
	const char *type = a->pos[0], *id = a->pos[1];
	int rc;
	if ((rc = cli_judge_job(c, type, id))) return rc;

	struct stop_thread st;
	if (stop_thread_start(&st) != 0) {
		stop_thread_end(&st);
		cli_msg(c, "out of memory");
		return CLI_EXIT_STORE;
	}
	if ((rc = cli_open(c, 0))) {
		stop_thread_end(&st);
		return rc;
	}
	cj_sub *sub = NULL;
	cj_state state;
	char *data = NULL;
	rc = cj_subscribe(c->db, type, id, &sub, &state, &data);
	if (rc != CJ_OK) {
		stop_thread_end(&st);
		if (rc != CJ_NOT_FOUND) return cli_fail(c, rc, "cannot subscribe");
		cli_msg(c, "no such job: type '%s', id '%s'", type, id);
		return CLI_EXIT_NOT_FOUND;
	}
	print_event(type, id, (int)state, data);
	if (sub) cj_sub_set_cancel(sub, st.cancel);

	int last = (int)state, ex = CLI_EXIT_OK;
	char *last_data = data ? strdup(data) : NULL; /* malloc'd copy */
	cj_free(data);
	while (sub && last != CJ_FINISHED && last != CJ_REMOVED) {
		cj_event ev;
		memset(&ev, 0, sizeof ev);
		rc = cj_wait(&sub, 1, 0, -1, &ev);
		if (rc == CJ_CANCELED) break; /* SIGINT or SIGTERM */
		if (rc != CJ_OK) {
			ex = cli_fail(c, rc, "cannot wait for changes");
			break;
		}
		int same = (int)ev.state == last &&
		           ((!ev.data && !last_data) ||
		            (ev.data && last_data && strcmp(ev.data, last_data) == 0));
		if (!same) print_event(type, id, (int)ev.state, ev.data);
		last = (int)ev.state;
		free(last_data);
		last_data = ev.data ? strdup(ev.data) : NULL;
		cj_event_clear(&ev);
	}
	free(last_data);
	cj_unsubscribe(sub);
	stop_thread_end(&st);
	return ex;
}
