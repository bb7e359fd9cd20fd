/* cjobs work: one job. The command runs in its own process group; its run
 * loop polls the command's pipes, a pidfd for its exit, the job's lease
 * descriptor (readable once the job is lost) and the slot's eventfd (the
 * stop state), and wakes on a timer
 * only for work that is due: the heartbeat, the end of the grace period,
 * the kill. When the command ends its result is the job's final data; a
 * finish that fails for a while (the store restarting) is retried with
 * backoff (work_outage.c), for as long as the lock may still be ours: the
 * store says CJ_HALT once it is not. */
#include "work.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIN_UPDATE_MS 200         /* floor of the update interval */
#define NO_TIMEOUT_UPDATE_MS 5000 /* interval when the type has no timeout */
#define UPDATE_RETRY_MS 1000      /* next update after a failed one, at most */
#define KILL_GRACE_MS 2000        /* SIGTERM to SIGKILL */
#define NO_PIDFD_POLL_MS 50       /* without a pidfd the child is polled */

enum outcome { RAN, HALTED, HANDED_BACK };

struct run {
	struct worker *w;
	cj_job *job;
	int wake_fd;         /* the slot's eventfd */
	cj_lost lost;        /* why the job was lost, when the watcher saw it */
	pid_t pid;
	int status;          /* waitpid() status, when RAN */
	int spawn_err;       /* errno of a failed spawn */
	struct capture out;
	struct watcher wt;   /* the job's lease, while the command runs */
};

static void logj(struct worker *w, const cj_job *job, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void logj(struct worker *w, const cj_job *job, const char *fmt, ...) {
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	cli_msg(w->c, "%s %s: %s", cj_job_type(job), cj_job_id(job), buf);
}

void poke_slots(struct worker *w) {
	for (int i = 0; i < w->nslots; i++) eventfd_write(w->slot_wake[i], 1);
}

/* The poll() timeout until `at`, folded into t (-1: none yet). */
static int64_t sooner(int64_t t, int64_t at, int64_t now) {
	int64_t d = at > now ? at - now : 0;
	return t < 0 || d < t ? d : t;
}

/* Reads what is available on *fd into the capture; closes it at EOF. */
static void read_out(struct run *r, int *fd) {
	char chunk[65536];
	for (;;) {
		ssize_t n = read(*fd, chunk, sizeof chunk);
		if (n > 0) {
			capture_add(&r->out, chunk, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && errno == EAGAIN) return;
		close(*fd); /* EOF or error */
		*fd = -1;
		return;
	}
}

/* Writes what the command's standard input takes of data and a newline;
 * closes it when all is written or the command does not read it. */
static void write_in(int *fd, const char *data, size_t dlen, size_t *dpos) {
	while (*fd >= 0) {
		const char *src = *dpos < dlen ? data + *dpos : "\n";
		size_t len = *dpos < dlen ? dlen - *dpos : 1;
		ssize_t k = write(*fd, src, len);
		if (k < 0 && errno == EINTR) continue;
		if (k < 0 && errno == EAGAIN) return;
		if (k >= 0) *dpos += (size_t)k;
		if (k < 0 || *dpos > dlen) { /* EPIPE, or the newline is out */
			close(*fd);
			*fd = -1;
		}
	}
}

/* store_broken() for a call about r's job: "TYPE ID: doing: code (detail)". */
static void job_broken(struct run *r, int rc, const char *doing) {
	char what[CJ_MAX_TYPE + CJ_MAX_ID + 160];
	snprintf(what, sizeof what, "%s %s: %s", cj_job_type(r->job), cj_job_id(r->job), doing);
	store_broken(r->w, rc, what);
}

/* The heartbeat's interval: a third of the type timeout. 0 while the store
 * cannot say (it is failing): the caller asks again at its next heartbeat,
 * due within UPDATE_RETRY_MS meanwhile. */
static int64_t update_interval(struct worker *w, const cj_job *job) {
	int64_t s;
	int rc = cj_get_type_timeout(w->c->db, cj_job_type(job), &s);
	if (rc == CJ_NOT_FOUND) return NO_TIMEOUT_UPDATE_MS;
	if (rc != CJ_OK) return 0;
	int64_t ms = s * 1000 / 3;
	return ms < MIN_UPDATE_MS ? MIN_UPDATE_MS : ms;
}

/* One heartbeat of a running job. RAN while it is ours (*next_update set),
 * HALTED once the store says it is not. A failure the store may recover
 * from is tried again soon, so that the lease is renewed as soon as the
 * store is back; one it may not stops the worker. */
static enum outcome heartbeat(struct run *r, int64_t *interval, int64_t *next_update,
                              int64_t now) {
	struct worker *w = r->w;
	if (!*interval) *interval = update_interval(w, r->job);
	int rc = cj_update(w->c->db, NULL, r->job, NULL);
	if (rc == CJ_OK || rc == CJ_HALT) {
		outage_ended(w);
		*next_update = now + (*interval ? *interval : UPDATE_RETRY_MS);
		return rc == CJ_OK ? RAN : HALTED;
	}
	if (!outage_failed(w, rc, "update")) job_broken(r, rc, "cannot update the job");
	*next_update = now + (*interval && *interval < UPDATE_RETRY_MS ? *interval
	                                                                : UPDATE_RETRY_MS);
	return RAN;
}

/* Runs the command for r->job until it exits; returns how it ended. */
static enum outcome run_command(struct run *r, const char *data) {
	struct worker *w = r->w;
	int in_fd = -1, out_fd = -1;
	r->spawn_err = spawn_command(w, r->job, &r->pid, &in_fd, &out_fd);
	if (r->spawn_err) return RAN;

	int pidfd = -1;
#ifdef SYS_pidfd_open
	pidfd = (int)syscall(SYS_pidfd_open, r->pid, 0);
#endif
	watcher_start(w, r->job, &r->wt);

	size_t dlen = strlen(data), dpos = 0;
	int64_t interval = update_interval(w, r->job);
	int64_t next_update = cli_now_ms() + (interval ? interval : UPDATE_RETRY_MS);
	int kill_phase = 0; /* 1: SIGTERM sent, 2: SIGKILL sent */
	int64_t kill_at = 0;
	enum outcome oc = RAN;
	int exited = 0;

	while (!exited) {
		int64_t now = cli_now_ms();
		/* what to do now */
		int stopping = atomic_load(&w->stopping);
		int64_t deadline = atomic_load(&w->deadline);
		if (oc == RAN && stopping && !kill_phase && now >= deadline) {
			oc = HANDED_BACK;
			logj(w, r->job, "still running at the end of the grace period; "
			     "stopping the command");
		}
		if (oc == RAN && now >= next_update)
			oc = heartbeat(r, &interval, &next_update, now);
		if (oc != RAN && !kill_phase) {
			kill(-r->pid, SIGTERM);
			kill_phase = 1;
			kill_at = now + KILL_GRACE_MS;
		}
		if (kill_phase == 1 && now >= kill_at) {
			kill(-r->pid, SIGKILL);
			kill_phase = 2;
		}

		/* wait for something; a timer only for what falls due */
		int64_t t = -1;
		if (oc == RAN) t = sooner(t, next_update, now);
		if (oc == RAN && stopping) t = sooner(t, deadline, now);
		if (kill_phase == 1) t = sooner(t, kill_at, now);
		if (pidfd < 0) t = sooner(t, now + NO_PIDFD_POLL_MS, now);
		if (t > INT_MAX) t = INT_MAX;

		struct pollfd p[5];
		int np = 0, iin = -1, iout = -1, ipid = -1, ilease = -1, iwake;
		if (in_fd >= 0) { iin = np; p[np++] = (struct pollfd){in_fd, POLLOUT, 0}; }
		if (out_fd >= 0) { iout = np; p[np++] = (struct pollfd){out_fd, POLLIN, 0}; }
		if (pidfd >= 0) { ipid = np; p[np++] = (struct pollfd){pidfd, POLLIN, 0}; }
		if (oc == RAN && r->wt.fd >= 0) {
			ilease = np;
			p[np++] = (struct pollfd){r->wt.fd, POLLIN, 0};
		}
		iwake = np;
		p[np++] = (struct pollfd){r->wake_fd, POLLIN, 0};
		if (poll(p, (nfds_t)np, (int)t) <= 0) /* timeout or EINTR */
			for (int i = 0; i < np; i++) p[i].revents = 0;

		if (iin >= 0 && p[iin].revents) write_in(&in_fd, data, dlen, &dpos);
		if (iout >= 0 && p[iout].revents) read_out(r, &out_fd);
		if (ilease >= 0 && p[ilease].revents) {
			r->lost = cj_sub_lost(r->wt.sub);
			if (r->lost != CJ_LOST_NONE) oc = HALTED; /* stopped on the next turn */
		}
		if (p[iwake].revents) {
			eventfd_t v;
			eventfd_read(r->wake_fd, &v);
		}
		if (ipid >= 0 && p[ipid].revents) exited = 1;
		if (pidfd < 0) {
			/* no pidfd: poll the child (it is then reaped here) */
			pid_t q = waitpid(r->pid, &r->status, WNOHANG);
			if (q == r->pid) exited = 2;
		}
	}

	watcher_stop(&r->wt);
	/* what the command wrote before it ended is in the pipe */
	if (out_fd >= 0) read_out(r, &out_fd);
	if (out_fd >= 0) close(out_fd);
	if (in_fd >= 0) close(in_fd);
	if (kill_phase && exited != 2)
		kill(-r->pid, SIGKILL); /* whatever it left in its group */
	if (exited != 2)
		while (waitpid(r->pid, &r->status, 0) < 0 && errno == EINTR) {}
	if (pidfd >= 0) close(pidfd);
	return oc;
}

/* The final data of a job whose command succeeded: its output when that is
 * a JSON object and `use_output`, else {"exit_status":0,"output_tail":...}.
 * malloc'd; NULL: no memory. */
static char *result_of(const struct run *r, int use_output) {
	char *j = use_output ? capture_json(&r->out) : NULL;
	if (j) return j;
	const char *tail;
	size_t tlen;
	capture_tail(&r->out, &tail, &tlen);
	char *jt = cli_jstr(tail, tlen);
	if (!jt) return NULL;
	size_t n = strlen(jt) + 64;
	char *s = malloc(n);
	if (s) snprintf(s, n, "{\"exit_status\":0,\"output_tail\":%s}", jt);
	free(jt);
	return s;
}

static void describe_status(const struct run *r, char *buf, size_t n) {
	if (r->spawn_err)
		snprintf(buf, n, "could not start: %s", strerror(r->spawn_err));
	else if (WIFSIGNALED(r->status))
		snprintf(buf, n, "killed by signal %d", WTERMSIG(r->status));
	else
		snprintf(buf, n, "exit status %d", WEXITSTATUS(r->status));
}

/* Before the next try of a failed store call: waits `ms`, or less when a
 * stop pokes the slot. 0 to try again, -1 to give up (stopping, and the
 * grace period is over). */
static int retry_wait(struct run *r, int64_t ms) {
	struct worker *w = r->w;
	int64_t end = cli_now_ms() + ms;
	for (;;) {
		int64_t now = cli_now_ms();
		if (atomic_load(&w->stopping) && now >= atomic_load(&w->deadline)) return -1;
		if (now >= end) return 0;
		int64_t t = sooner(-1, end, now);
		if (atomic_load(&w->stopping)) t = sooner(t, atomic_load(&w->deadline), now);
		struct pollfd p = {r->wake_fd, POLLIN, 0};
		if (poll(&p, 1, (int)t) > 0) {
			eventfd_t v;
			eventfd_read(r->wake_fd, &v);
		}
	}
}

/* 1 when the command did not succeed: it could not start, was killed by a
 * signal, or exited non-zero. */
static int command_failed(const struct run *r) {
	return r->spawn_err || WIFSIGNALED(r->status) || WEXITSTATUS(r->status) != 0;
}

/* The output kept in a failed attempt's error: its last bytes, so that the
 * error stays within CJ_MAX_ERROR_SIZE however it is escaped. */
#define ERROR_TAIL_BYTES 512

/* The error of a failed command: {"exit_status":N} or {"signal":"SIGKILL"},
 * with "output_tail" when `with_tail`. malloc'd; NULL: no memory. */
static char *error_of(const struct run *r, int with_tail) {
	char head[96], *jt = NULL;
	if (r->spawn_err)
		snprintf(head, sizeof head, "{\"exit_status\":127");
	else if (WIFSIGNALED(r->status)) {
		const char *name = sigabbrev_np(WTERMSIG(r->status));
		if (name) snprintf(head, sizeof head, "{\"signal\":\"SIG%s\"", name);
		else snprintf(head, sizeof head, "{\"signal\":%d", WTERMSIG(r->status));
	} else
		snprintf(head, sizeof head, "{\"exit_status\":%d", WEXITSTATUS(r->status));
	if (with_tail) {
		const char *tail;
		size_t tlen;
		char msg[512];
		if (r->spawn_err) {
			snprintf(msg, sizeof msg, "cjobs: cannot run '%s': %s", r->w->argv[0],
			         strerror(r->spawn_err));
			tail = msg;
			tlen = strlen(msg);
		} else {
			capture_tail(&r->out, &tail, &tlen);
		}
		if (tlen > ERROR_TAIL_BYTES) {
			tail += tlen - ERROR_TAIL_BYTES;
			tlen = ERROR_TAIL_BYTES;
		}
		if (!(jt = cli_jstr(tail, tlen))) return NULL;
	}
	size_t n = strlen(head) + (jt ? strlen(jt) : 0) + 32;
	char *s = malloc(n);
	if (s) snprintf(s, n, "%s%s%s}", head, jt ? ",\"output_tail\":" : "", jt ? jt : "");
	free(jt);
	return s;
}

/* One attempt: a command that succeeded finishes the job with its output
 * as the result, or the summary when the store refuses the output; one
 * that failed fails the job's attempt, with the tail of its output if the
 * store takes it. */
static int finish_once(struct run *r) {
	int rc = CJ_NOMEM, failed = command_failed(r);
	for (int use_output = 1; use_output >= 0; use_output--) {
		char *res = failed ? error_of(r, use_output) : result_of(r, use_output);
		if (!res) break;
		rc = failed ? cj_fail(r->w->c->db, NULL, r->job, res)
		            : cj_finish(r->w->c->db, NULL, r->job, res);
		free(res);
		if (rc != CJ_JSON && rc != CJ_TOO_LARGE) break;
	}
	return rc;
}

/* The last "ended" of a job's errors (a JSON array, oldest first, as
 * cj_job_info documents) is `what`. */
static int last_ended_is(const char *errors, const char *what) {
	json_t *arr = errors ? json_loads(errors, 0, NULL) : NULL;
	size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
	const char *ended = n ? json_string_value(json_object_get(json_array_get(arr, n - 1),
	                                                          "ended"))
	                      : NULL;
	int is = ended && strcmp(ended, what) == 0;
	json_decref(arr);
	return is;
}

/* After a finish that was tried again met CJ_HALT: whether an earlier try,
 * whose answer the store's outage lost, had ended the job. It had if the
 * job's last acceptance is this run's (its fence) and it is finished, or,
 * for a command that failed, that attempt is recorded as failed. CJ_OK: it
 * had; CJ_HALT: it had not (removed, or taken back: no longer ours); else
 * the code of the failing read. */
static int earlier_try_ended(struct run *r) {
	cj_job_info info;
	int rc = cj_get_job(r->w->c->db, NULL, cj_job_type(r->job), cj_job_id(r->job), &info);
	if (rc == CJ_NOT_FOUND) return CJ_HALT;
	if (rc != CJ_OK) return rc;
	int ours = info.fence == cj_job_fence(r->job) &&
	           (command_failed(r) ? info.state != CJ_RUNNING &&
	                                    last_ended_is(info.errors, "failed")
	                              : info.state == CJ_FINISHED);
	cj_job_info_clear(&info);
	return ours ? CJ_OK : CJ_HALT;
}

/* Finishes (or fails) the job, trying again while the store is out for as
 * long as the lock may be ours: the store says CJ_HALT once it is not. */
static void finish_job(struct run *r) {
	struct worker *w = r->w;
	char st[128];
	describe_status(r, st, sizeof st);
	const char *ended = command_failed(r) ? "failed" : "finished";
	int rc, tries = 0, earlier = 0;
	for (int64_t backoff = 0;; tries++) {
		rc = finish_once(r);
		if (rc == CJ_HALT && tries) {
			rc = earlier_try_ended(r);
			earlier = rc == CJ_OK;
		}
		if (rc == CJ_OK || rc == CJ_HALT) outage_ended(w);
		if (!outage_failed(w, rc, "finish")) break;
		if (retry_wait(r, outage_wait_ms(&backoff)) != 0) break;
	}
	if (rc == CJ_OK)
		logj(w, r->job, "%s (%s)%s", ended, st,
		     earlier ? " by an earlier try, whose answer the store lost" : "");
	else if (rc == CJ_HALT)
		logj(w, r->job, "halted after the command ended (%s): the job was removed or "
		     "taken back; not %s by this worker", st, ended);
	else if (transient(rc)) /* stopping, and the grace period is over */
		logj(w, r->job, "cannot end the job (%s): %s (%s); the job runs again after "
		     "its timeout", st, cj_strerror(rc), cj_last_error());
	else {
		char doing[160];
		snprintf(doing, sizeof doing, "cannot end the job (%s)", st);
		job_broken(r, rc, doing);
	}
}

static int hand_back_tx(cj_tx *tx, void *arg) {
	struct run *r = arg;
	int rc = cj_resubmit(r->w->c->db, tx, r->job, CJ_SCHED_KEEP, NULL);
	if (rc == CJ_OK) rc = cj_finish(r->w->c->db, tx, r->job, NULL);
	return rc;
}

/* Makes the job pending again at once (retrying within the grace period). */
static void hand_back(struct run *r) {
	int rc;
	for (int64_t backoff = 0;;) {
		rc = cj_transact(r->w->c->db, hand_back_tx, r);
		if (!outage_failed(r->w, rc, "hand back")) break;
		if (retry_wait(r, outage_wait_ms(&backoff)) != 0) break;
	}
	if (rc == CJ_OK || rc == CJ_HALT || rc == CJ_NOT_FOUND) outage_ended(r->w);
	if (rc == CJ_OK)
		logj(r->w, r->job, "handed back (pending again)");
	else if (rc == CJ_HALT || rc == CJ_NOT_FOUND)
		logj(r->w, r->job, "not handed back: the job was removed or taken back");
	else
		logj(r->w, r->job, "cannot hand back: %s (%s); the job runs again after its "
		     "timeout", cj_strerror(rc), cj_last_error());
}

void run_job(struct worker *w, int slot, cj_job *job, const char *data) {
	struct run r;
	memset(&r, 0, sizeof r);
	r.w = w;
	r.job = job;
	r.wake_fd = w->slot_wake[slot];
	r.out.limit = CJ_DEFAULT_DATA_LIMIT; /* the store cli_open() opens */
	if (atomic_load(&w->stopping)) {
		hand_back(&r);
		return;
	}
	logj(w, job, "accepted");
	switch (run_command(&r, data)) {
	case RAN: finish_job(&r); break;
	case HALTED:
		logj(w, job, "halted: the job was %s; command stopped",
		     r.lost != CJ_LOST_NONE ? cj_lost_name(r.lost) : "removed or taken back");
		break;
	case HANDED_BACK: hand_back(&r); break;
	}
	free(r.out.buf);
}
