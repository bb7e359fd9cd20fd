/*
 * cjobs work: a ready-made job processor that runs a command per job.
 *
 * Design: the main thread owns the signals (SIGINT/SIGTERM are blocked in
 * every thread and taken with sigtimedwait()). One acceptor thread waits
 * until at least one of the N slots is idle, then takes as many jobs as
 * there are idle slots (fewer when --max-jobs has fewer left) with one
 * cj_accept_many() call, so one transaction, with a bounded timeout, and
 * queues them under a mutex; N slot threads take them from the queue and
 * run one job at a time. A job still queued when a stop signal comes is
 * handed back without being started. Running a job means: spawn the command
 * in its own process group with pipes on its stdin and stdout, then poll the
 * pipes, a pidfd for the command's exit, and a pipe from a small watcher
 * thread that follows the job's subscription (so a removal is noticed at
 * once), calling cj_update() at least every third of the type's timeout.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const struct cli_opt cli_work_opts[] = {
	{"--jobs", "-j", "N", "run up to N jobs at once (default 1)"},
	{"--grace", NULL, "SECONDS", "on SIGINT/SIGTERM, let commands run this long "
	                             "(default 10)"},
	{"--max-jobs", NULL, "N", "exit after N jobs were run (finished or halted)"},
	{"--timeout-exit", NULL, "MS", "exit after MS milliseconds (or 5s, 1m, ...) "
	                               "without a job"},
	{NULL, NULL, NULL, NULL},
};

#define ACCEPT_WAIT_MS 500     /* longest cj_accept() wait between checks */
#define POLL_CAP_MS 200        /* longest poll() between checks */
#define MIN_UPDATE_MS 200      /* floor of the update interval */
#define NO_TIMEOUT_UPDATE_MS 5000 /* interval when the type has no timeout */
#define KILL_GRACE_MS 2000     /* SIGTERM to SIGKILL */
#define TAIL_BYTES 4096        /* output kept for output_tail */
#define MAX_SLOTS 1024         /* one cj_accept_many() fills them all */
_Static_assert(MAX_SLOTS <= CJ_ACCEPT_MAX, "-j above what one accept may take");

/* A job taken by the acceptor, waiting for a slot thread. */
struct queued_job {
	cj_job *job;
	char *data;
};

struct worker {
	struct cli *c;
	const char *type;
	char **argv;            /* the command */
	int nslots;
	int64_t grace_ms;
	int64_t max_jobs;       /* 0: no limit */
	int64_t idle_exit_ms;   /* -1: never */
	char **env_base;        /* environ without CJ_JOB_* and CJOBS_DB */
	size_t nenv;

	atomic_int stopping;    /* a stop signal came: no new jobs */
	atomic_llong deadline;  /* when stopping: kill commands at this time */
	atomic_int draining;    /* no new jobs (max-jobs, idle exit) */
	atomic_llong tickets;   /* jobs taken, for --max-jobs */
	atomic_llong last_busy; /* last time a job arrived or ended */
	atomic_int running;     /* jobs taken and not done (queued or run) */
	atomic_int alive;       /* threads (acceptor and slots) still looping */
	atomic_int failed;      /* a fatal store error: exit 1 */

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

/* ---- output capture ------------------------------------------------------ */

struct capture {
	char *buf;       /* the output while it fits the data limit */
	size_t len, cap;
	int overflow;    /* went past the limit: only the tail is kept */
	char tail[2 * TAIL_BYTES];
	size_t tlen;
	size_t limit;
};

static void tail_add(struct capture *k, const char *p, size_t n) {
	if (n >= TAIL_BYTES) {
		memcpy(k->tail, p + n - TAIL_BYTES, TAIL_BYTES);
		k->tlen = TAIL_BYTES;
		return;
	}
	if (k->tlen + n > sizeof k->tail) {
		size_t keep = TAIL_BYTES - n;
		memmove(k->tail, k->tail + k->tlen - keep, keep);
		k->tlen = keep;
	}
	memcpy(k->tail + k->tlen, p, n);
	k->tlen += n;
}

static void capture_add(struct capture *k, const char *p, size_t n) {
	if (!k->overflow && k->len + n <= k->limit) {
		if (k->len + n + 1 > k->cap) {
			size_t cap = k->cap ? k->cap : 4096;
			while (cap < k->len + n + 1) cap *= 2;
			char *b = realloc(k->buf, cap);
			if (b) {
				k->buf = b;
				k->cap = cap;
			}
		}
		if (k->len + n + 1 <= k->cap) {
			memcpy(k->buf + k->len, p, n);
			k->len += n;
			k->buf[k->len] = 0;
			return;
		}
	}
	if (!k->overflow) {
		/* over the limit (or out of memory): keep the tail only */
		k->overflow = 1;
		if (k->len) tail_add(k, k->buf, k->len);
		free(k->buf);
		k->buf = NULL;
		k->len = k->cap = 0;
	}
	tail_add(k, p, n);
}

static void capture_tail(const struct capture *k, const char **p, size_t *n) {
	if (k->overflow) {
		*n = k->tlen > TAIL_BYTES ? TAIL_BYTES : k->tlen;
		*p = k->tail + k->tlen - *n;
	} else {
		*n = k->len > TAIL_BYTES ? TAIL_BYTES : k->len;
		*p = k->buf ? k->buf + k->len - *n : "";
	}
}

/* A malloc'd copy of the captured output when it is one JSON object (as far
 * as can be told here; the store has the last word), else NULL. */
static char *capture_json(const struct capture *k) {
	if (k->overflow || !k->buf || !k->len) return NULL;
	const char *s = k->buf, *e = k->buf + k->len;
	while (s < e && strchr(" \t\r\n", *s) && *s) s++;
	while (e > s && strchr(" \t\r\n", e[-1]) && e[-1]) e--;
	if (s == e) return NULL;
	json_error_t err;
	json_t *v = json_loadb(s, (size_t)(e - s), JSON_ALLOW_NUL, &err);
	int ok = v ? json_is_object(v)
	           : json_error_code(&err) == json_error_numeric_overflow;
	json_decref(v);
	/* a copy of the text without its surrounding white space */
	return ok ? strndup(s, (size_t)(e - s)) : NULL;
}

/* ---- the watcher: a job's subscription, for prompt halts ---------------- */

struct watcher {
	cj_sub *sub;
	int fd[2];          /* a byte on fd[1]: the job left the running state */
	atomic_int stop;
	pthread_t thread;
	int started;
};

static void *watch_main(void *arg) {
	struct watcher *w = arg;
	while (!atomic_load(&w->stop)) {
		cj_event ev;
		memset(&ev, 0, sizeof ev);
		int rc = cj_wait(&w->sub, 1, 0, POLL_CAP_MS, &ev);
		if (rc == CJ_TIMEOUT) continue;
		if (rc != CJ_OK) break;
		cj_state st = ev.state;
		cj_event_clear(&ev);
		if (st != CJ_RUNNING) {
			char b = 1;
			ssize_t n = write(w->fd[1], &b, 1);
			(void)n;
			if (st == CJ_FINISHED || st == CJ_REMOVED) break;
		}
	}
	return NULL;
}

static void watcher_start(struct worker *w, cj_job *job, struct watcher *wt) {
	memset(wt, 0, sizeof *wt);
	wt->fd[0] = wt->fd[1] = -1;
	if (pipe2(wt->fd, O_CLOEXEC | O_NONBLOCK) != 0) {
		wt->fd[0] = wt->fd[1] = -1;
		return;
	}
	cj_state st;
	if (cj_subscribe(w->c->db, cj_job_type(job), cj_job_id(job), &wt->sub, &st,
	                 NULL) != CJ_OK || !wt->sub) {
		/* the periodic update will tell */
		wt->sub = NULL;
		return;
	}
	atomic_init(&wt->stop, 0);
	if (pthread_create(&wt->thread, NULL, watch_main, wt) == 0) wt->started = 1;
}

static void watcher_stop(struct watcher *wt) {
	if (wt->started) {
		atomic_store(&wt->stop, 1);
		pthread_join(wt->thread, NULL);
	}
	cj_unsubscribe(wt->sub);
	if (wt->fd[0] >= 0) close(wt->fd[0]);
	if (wt->fd[1] >= 0) close(wt->fd[1]);
}

/* ---- one job ------------------------------------------------------------ */

enum outcome { RAN, HALTED, HANDED_BACK };

struct run {
	struct worker *w;
	cj_job *job;
	pid_t pid;
	int status;          /* waitpid() status, when RAN */
	int spawn_err;       /* errno of a failed spawn */
	struct capture out;
	struct watcher wt;   /* stopped once the job is settled: the finish
	                        event then ends it at once */
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

static char *env_entry(const char *name, const char *val) {
	size_t n = strlen(name) + strlen(val) + 2;
	char *s = malloc(n);
	if (s) snprintf(s, n, "%s=%s", name, val);
	return s;
}

/* Spawns the command; returns 0 or an errno. */
static int spawn_command(struct run *r, int *in_w, int *out_r) {
	struct worker *w = r->w;
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err = 0;
	char *extra[4] = {0};
	char **envp = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int fa_ok = 0, attr_ok = 0;

	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
		err = errno;
		goto done;
	}
	extra[0] = env_entry("CJ_JOB_TYPE", cj_job_type(r->job));
	extra[1] = env_entry("CJ_JOB_ID", cj_job_id(r->job));
	extra[2] = env_entry("CJ_JOB_LOCK", cj_job_lock(r->job));
	extra[3] = env_entry("CJOBS_DB", w->c->url);
	envp = malloc((w->nenv + 5) * sizeof *envp);
	if (!extra[0] || !extra[1] || !extra[2] || !extra[3] || !envp) {
		err = ENOMEM;
		goto done;
	}
	memcpy(envp, w->env_base, w->nenv * sizeof *envp);
	for (int i = 0; i < 4; i++) envp[w->nenv + (size_t)i] = extra[i];
	envp[w->nenv + 4] = NULL;

	if ((err = posix_spawn_file_actions_init(&fa))) goto done;
	fa_ok = 1;
	if ((err = posix_spawn_file_actions_adddup2(&fa, in[0], 0)) ||
	    (err = posix_spawn_file_actions_adddup2(&fa, out[1], 1)))
		goto done;
	if ((err = posix_spawnattr_init(&attr))) goto done;
	attr_ok = 1;
	sigset_t none, dflt;
	sigemptyset(&none);
	sigemptyset(&dflt);
	sigaddset(&dflt, SIGINT);
	sigaddset(&dflt, SIGTERM);
	sigaddset(&dflt, SIGPIPE);
	sigaddset(&dflt, SIGHUP);
	sigaddset(&dflt, SIGQUIT);
	sigaddset(&dflt, SIGCHLD);
	if ((err = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
	                                    POSIX_SPAWN_SETSIGMASK |
	                                    POSIX_SPAWN_SETSIGDEF)) ||
	    (err = posix_spawnattr_setpgroup(&attr, 0)) ||
	    (err = posix_spawnattr_setsigmask(&attr, &none)) ||
	    (err = posix_spawnattr_setsigdefault(&attr, &dflt)))
		goto done;
	err = posix_spawnp(&r->pid, w->argv[0], &fa, &attr, w->argv, envp);

done:
	if (fa_ok) posix_spawn_file_actions_destroy(&fa);
	if (attr_ok) posix_spawnattr_destroy(&attr);
	for (int i = 0; i < 4; i++) free(extra[i]);
	free(envp);
	if (in[0] >= 0) close(in[0]);
	if (out[1] >= 0) close(out[1]);
	if (err) {
		if (in[1] >= 0) close(in[1]);
		if (out[0] >= 0) close(out[0]);
		return err;
	}
	fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
	fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
	*in_w = in[1];
	*out_r = out[0];
	return 0;
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

static int64_t update_interval(struct worker *w) {
	int64_t s;
	if (cj_get_type_timeout(w->c->db, w->type, &s) != CJ_OK) return NO_TIMEOUT_UPDATE_MS;
	int64_t ms = s * 1000 / 3;
	return ms < MIN_UPDATE_MS ? MIN_UPDATE_MS : ms;
}

/* Runs the command for r->job until it exits; returns how it ended. */
static enum outcome run_command(struct run *r, const char *data) {
	struct worker *w = r->w;
	int in_fd = -1, out_fd = -1;
	r->spawn_err = spawn_command(r, &in_fd, &out_fd);
	if (r->spawn_err) return RAN;

	int pidfd = -1;
#ifdef SYS_pidfd_open
	pidfd = (int)syscall(SYS_pidfd_open, r->pid, 0);
#endif
	struct watcher *wt = &r->wt;
	watcher_start(w, r->job, wt);

	size_t dlen = strlen(data), dpos = 0;
	int sent_nl = 0;
	int64_t interval = update_interval(w);
	int64_t next_update = cli_now_ms() + interval;
	int kill_phase = 0; /* 1: SIGTERM sent, 2: SIGKILL sent */
	int64_t kill_at = 0;
	enum outcome oc = RAN;
	int exited = 0;

	while (!exited) {
		int64_t now = cli_now_ms();
		/* what to do now */
		if (oc == RAN && atomic_load(&w->stopping) && !kill_phase &&
		    now >= atomic_load(&w->deadline)) {
			oc = HANDED_BACK;
			logj(w, r->job, "still running at the end of the grace period; "
			     "stopping the command");
		}
		if (oc == RAN && now >= next_update) {
			int rc = cj_update(w->c->db, NULL, r->job, NULL);
			if (rc == CJ_HALT) {
				oc = HALTED;
			} else if (rc != CJ_OK) {
				logj(w, r->job, "update failed: %s (%s); retrying", cj_strerror(rc),
				     cj_last_error());
				next_update = now + (interval < 1000 ? interval : 1000);
			} else {
				next_update = now + interval;
			}
		}
		if (oc != RAN && !kill_phase) {
			kill(-r->pid, SIGTERM);
			kill_phase = 1;
			kill_at = now + KILL_GRACE_MS;
		}
		if (kill_phase == 1 && now >= kill_at) {
			kill(-r->pid, SIGKILL);
			kill_phase = 2;
		}

		/* wait for something */
		int64_t t = POLL_CAP_MS;
		if (oc == RAN && next_update - now < t) t = next_update - now;
		if (oc == RAN && atomic_load(&w->stopping) &&
		    atomic_load(&w->deadline) - now < t)
			t = atomic_load(&w->deadline) - now;
		if (kill_phase == 1 && kill_at - now < t) t = kill_at - now;
		if (pidfd < 0 && t > 50) t = 50;
		if (t < 0) t = 0;

		struct pollfd p[4];
		int np = 0, iin = -1, iout = -1, ipid = -1, iwt = -1;
		if (in_fd >= 0) { iin = np; p[np++] = (struct pollfd){in_fd, POLLOUT, 0}; }
		if (out_fd >= 0) { iout = np; p[np++] = (struct pollfd){out_fd, POLLIN, 0}; }
		if (pidfd >= 0) { ipid = np; p[np++] = (struct pollfd){pidfd, POLLIN, 0}; }
		if (wt->fd[0] >= 0 && oc == RAN) {
			iwt = np;
			p[np++] = (struct pollfd){wt->fd[0], POLLIN, 0};
		}
		int n = poll(p, (nfds_t)np, (int)t);
		if (n <= 0) { /* timeout or EINTR */
			for (int i = 0; i < np; i++) p[i].revents = 0;
		}

		if (iin >= 0 && p[iin].revents) {
			while (in_fd >= 0) {
				const char *src = dpos < dlen ? data + dpos : "\n";
				size_t len = dpos < dlen ? dlen - dpos : 1;
				ssize_t k = write(in_fd, src, len);
				if (k < 0 && errno == EINTR) continue;
				if (k < 0 && errno == EAGAIN) break;
				if (k < 0) { /* EPIPE: the command does not read it */
					close(in_fd);
					in_fd = -1;
					break;
				}
				if (dpos < dlen)
					dpos += (size_t)k;
				else
					sent_nl = 1;
				if (sent_nl) {
					close(in_fd);
					in_fd = -1;
				}
			}
		}
		if (iout >= 0 && p[iout].revents) read_out(r, &out_fd);
		if (iwt >= 0 && p[iwt].revents) {
			char b[64];
			while (read(wt->fd[0], b, sizeof b) > 0) {}
			next_update = cli_now_ms(); /* make sure: ask the store now */
		}
		if (ipid >= 0 && p[ipid].revents) exited = 1;
		if (pidfd < 0) {
			/* no pidfd: poll the child (it is then reaped here) */
			pid_t q = waitpid(r->pid, &r->status, WNOHANG);
			if (q == r->pid) exited = 2;
		}
	}

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

/* The final data of a job whose command ended: its output when that is a
 * JSON object and `use_output`, else a summary. malloc'd; NULL: no memory. */
static char *result_of(const struct run *r, int use_output) {
	char *j = use_output ? capture_json(&r->out) : NULL;
	if (j) return j;
	const char *tail;
	size_t tlen;
	char *jt;
	if (r->spawn_err) {
		char msg[512];
		snprintf(msg, sizeof msg, "cjobs: cannot run '%s': %s", r->w->argv[0],
		         strerror(r->spawn_err));
		jt = cli_jstr(msg, strlen(msg));
	} else {
		capture_tail(&r->out, &tail, &tlen);
		jt = cli_jstr(tail, tlen);
	}
	if (!jt) return NULL;
	size_t n = strlen(jt) + 64;
	char *s = malloc(n);
	if (s) {
		if (r->spawn_err)
			snprintf(s, n, "{\"exit_status\":127,\"output_tail\":%s}", jt);
		else if (WIFSIGNALED(r->status))
			snprintf(s, n, "{\"signal\":%d,\"output_tail\":%s}", WTERMSIG(r->status), jt);
		else
			snprintf(s, n, "{\"exit_status\":%d,\"output_tail\":%s}",
			         WEXITSTATUS(r->status), jt);
	}
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

static void finish_job(struct run *r) {
	struct worker *w = r->w;
	char st[128];
	describe_status(r, st, sizeof st);
	int rc = CJ_NOMEM;
	for (int use_output = 1; use_output >= 0; use_output--) {
		char *res = result_of(r, use_output);
		if (!res) break;
		rc = cj_finish(w->c->db, NULL, r->job, res);
		free(res);
		if (rc != CJ_JSON && rc != CJ_TOO_LARGE) break;
	}
	if (rc == CJ_OK)
		logj(w, r->job, "finished (%s)", st);
	else if (rc == CJ_HALT)
		logj(w, r->job, "halted after the command ended (%s): the job was "
		     "removed or taken back; not finished", st);
	else
		logj(w, r->job, "cannot finish (%s): %s (%s)", st, cj_strerror(rc),
		     cj_last_error());
}

static int hand_back_tx(cj_tx *tx, void *arg) {
	struct run *r = arg;
	int rc = cj_resubmit(r->w->c->db, tx, r->job, CJ_SCHED_KEEP, NULL);
	if (rc == CJ_OK) rc = cj_finish(r->w->c->db, tx, r->job, NULL);
	return rc;
}

/* Makes the job pending again at once. */
static void hand_back(struct run *r) {
	int rc = cj_transact(r->w->c->db, hand_back_tx, r);
	if (rc == CJ_OK)
		logj(r->w, r->job, "handed back (pending again)");
	else if (rc == CJ_HALT || rc == CJ_NOT_FOUND)
		logj(r->w, r->job, "not handed back: the job was removed or taken back");
	else
		logj(r->w, r->job, "cannot hand back: %s (%s)", cj_strerror(rc),
		     cj_last_error());
}

static void run_job(struct worker *w, cj_job *job, const char *data) {
	struct run r;
	memset(&r, 0, sizeof r);
	r.w = w;
	r.job = job;
	r.out.limit = CLI_DATA_LIMIT;
	r.wt.fd[0] = r.wt.fd[1] = -1;
	if (atomic_load(&w->stopping)) {
		hand_back(&r);
		return;
	}
	logj(w, job, "accepted");
	enum outcome oc = run_command(&r, data);
	switch (oc) {
	case RAN: finish_job(&r); break;
	case HALTED:
		logj(w, job, "halted: the job was removed or taken back; command stopped");
		break;
	case HANDED_BACK: hand_back(&r); break;
	}
	watcher_stop(&r.wt);
	free(r.out.buf);
}

/* ---- the slots ----------------------------------------------------------
 *
 * One acceptor thread takes jobs for the idle slots, as many as there are
 * idle slots in one cj_accept_many() call, and queues them; the slot threads
 * take them from the queue and run them. w->running counts the jobs taken
 * and not yet done (queued or running): the acceptor takes jobs only while
 * it is below the number of slots, so a queued job always has a free slot
 * waiting for it and is started at once.
 */

/* Takes up to `want` tickets for --max-jobs; returns how many (0: the
 * tickets are used up). */
static int take_tickets(struct worker *w, int want) {
	if (!w->max_jobs) return want;
	long long t = atomic_load(&w->tickets);
	for (;;) {
		long long k = w->max_jobs - t;
		if (k <= 0) return 0;
		if (k > want) k = want;
		if (atomic_compare_exchange_weak(&w->tickets, &t, t + k)) return (int)k;
	}
}

static void give_back_tickets(struct worker *w, int k) {
	if (w->max_jobs && k > 0) atomic_fetch_sub(&w->tickets, k);
}

/* Stops taking jobs; running commands get the grace period. */
static void begin_stop(struct worker *w) {
	if (!atomic_exchange(&w->stopping, 1))
		atomic_store(&w->deadline, cli_now_ms() + w->grace_ms);
	pthread_mutex_lock(&w->mu);
	pthread_cond_broadcast(&w->slot_free);
	pthread_cond_broadcast(&w->queued);
	pthread_mutex_unlock(&w->mu);
}

/* The acceptor is done: the slots run (or hand back) what is queued, then
 * end. */
static void end_accepting(struct worker *w) {
	pthread_mutex_lock(&w->mu);
	w->accept_done = 1;
	pthread_cond_broadcast(&w->queued);
	pthread_mutex_unlock(&w->mu);
}

static void *accept_main(void *arg) {
	struct worker *w = arg;
	for (;;) {
		/* wait for an idle slot */
		pthread_mutex_lock(&w->mu);
		while (!atomic_load(&w->stopping) && atomic_load(&w->running) >= w->nslots)
			pthread_cond_wait(&w->slot_free, &w->mu);
		int idle = w->nslots - atomic_load(&w->running);
		pthread_mutex_unlock(&w->mu);
		if (atomic_load(&w->stopping) || atomic_load(&w->draining)) break;

		int k = take_tickets(w, idle);
		if (!k) {
			atomic_store(&w->draining, 1);
			break;
		}
		int64_t wait = ACCEPT_WAIT_MS;
		if (w->idle_exit_ms >= 0) {
			int64_t left = atomic_load(&w->last_busy) + w->idle_exit_ms - cli_now_ms();
			if (left <= 0 && atomic_load(&w->running) == 0) {
				give_back_tickets(w, k);
				atomic_store(&w->draining, 1);
				break;
			}
			if (left > 0 && left < wait) wait = left;
		}
		cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
		o.timeout_ms = wait;
		size_t n = 0;
		int rc = cj_accept_many(w->c->db, w->type, &o, (size_t)k, w->jobs, w->data, &n);
		if (rc == CJ_NOT_FOUND) {
			give_back_tickets(w, k);
			continue;
		}
		if (rc != CJ_OK) {
			give_back_tickets(w, k);
			cli_fail(w->c, rc, "cannot accept a job");
			atomic_store(&w->failed, 1);
			/* stop everything, giving running commands the grace period */
			begin_stop(w);
			break;
		}
		give_back_tickets(w, k - (int)n);
		/* queue them; the slot threads run them, or hand them back when a
		 * stop came meanwhile */
		pthread_mutex_lock(&w->mu);
		for (size_t i = 0; i < n; i++) {
			struct queued_job *q = &w->queue[(w->qhead + w->qlen) % w->nslots];
			q->job = w->jobs[i];
			q->data = w->data[i];
			w->jobs[i] = NULL;
			w->data[i] = NULL;
			w->qlen++;
		}
		atomic_fetch_add(&w->running, (int)n);
		atomic_store(&w->last_busy, cli_now_ms());
		if (n == 1)
			pthread_cond_signal(&w->queued);
		else
			pthread_cond_broadcast(&w->queued);
		pthread_mutex_unlock(&w->mu);
	}
	end_accepting(w);
	atomic_fetch_sub(&w->alive, 1);
	return NULL;
}

static void *slot_main(void *arg) {
	struct worker *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->qlen && !w->accept_done) pthread_cond_wait(&w->queued, &w->mu);
		if (!w->qlen) break; /* nothing queued, nothing to come */
		struct queued_job q = w->queue[w->qhead];
		w->qhead = (w->qhead + 1) % w->nslots;
		w->qlen--;
		pthread_mutex_unlock(&w->mu);

		run_job(w, q.job, q.data ? q.data : "{}");
		cj_free(q.data);
		cj_job_free(q.job);

		pthread_mutex_lock(&w->mu);
		atomic_store(&w->last_busy, cli_now_ms());
		atomic_fetch_sub(&w->running, 1);
		pthread_cond_signal(&w->slot_free);
	}
	pthread_mutex_unlock(&w->mu);
	atomic_fetch_sub(&w->alive, 1);
	return NULL;
}

/* ---- the command ---------------------------------------------------------- */

/* 1 when `name` can be run (a path, or found in $PATH). */
static int command_exists(const char *name) {
	struct stat st;
	if (strchr(name, '/'))
		return access(name, X_OK) == 0 && stat(name, &st) == 0 && !S_ISDIR(st.st_mode);
	const char *path = getenv("PATH");
	if (!path || !*path) path = "/bin:/usr/bin";
	size_t nl = strlen(name);
	while (1) {
		const char *e = strchr(path, ':');
		size_t dl = e ? (size_t)(e - path) : strlen(path);
		char *full = malloc(dl + nl + 3);
		if (!full) return 1; /* let the spawn tell */
		if (dl)
			snprintf(full, dl + nl + 3, "%.*s/%s", (int)dl, path, name);
		else
			snprintf(full, dl + nl + 3, "./%s", name);
		int ok = access(full, X_OK) == 0 && stat(full, &st) == 0 && !S_ISDIR(st.st_mode);
		free(full);
		if (ok) return 1;
		if (!e) return 0;
		path = e + 1;
	}
}

static int parse_count(struct cli *c, const char *opt, const char *s, int64_t max,
                       int64_t *v) {
	if (cli_parse_int(s, v) != 0 || *v < 1 || *v > max)
		return cli_usage(c, "invalid %s '%s' (want a whole number from 1 to %lld)",
		                 opt, s, (long long)max);
	return 0;
}

int cmd_work(struct cli *c, const struct cli_args *a) {
	struct worker *w = calloc(1, sizeof *w);
	pthread_t *threads = NULL;
	int rc, nthreads = 0;
	if (!w) {
		cli_msg(c, "out of memory");
		return CLI_EXIT_STORE;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->slot_free, NULL);
	pthread_cond_init(&w->queued, NULL);
	w->c = c;
	w->type = a->pos[0];
	w->argv = a->rest;
	w->nslots = 1;
	w->grace_ms = 10000;
	w->idle_exit_ms = -1;
	int64_t v;
	if ((rc = cli_check_type(c, w->type))) goto out;
	if (a->set[WORK_JOBS]) {
		if ((rc = parse_count(c, "-j", a->val[WORK_JOBS], MAX_SLOTS, &v))) goto out;
		w->nslots = (int)v;
	}
	if (a->set[WORK_GRACE] &&
	    (cli_parse_duration_ms(a->val[WORK_GRACE], 1000, &w->grace_ms) != 0 ||
	     w->grace_ms > (int64_t)366 * 86400 * 1000)) {
		rc = cli_usage(c, "invalid --grace '%s' (want seconds, or a duration "
		               "such as 30s, 5m)", a->val[WORK_GRACE]);
		goto out;
	}
	if (a->set[WORK_MAX_JOBS] &&
	    (rc = parse_count(c, "--max-jobs", a->val[WORK_MAX_JOBS], INT64_MAX / 2,
	                      &w->max_jobs)))
		goto out;
	if (a->set[WORK_TIMEOUT_EXIT] &&
	    (cli_parse_duration_ms(a->val[WORK_TIMEOUT_EXIT], 1, &w->idle_exit_ms) != 0 ||
	     w->idle_exit_ms > (int64_t)366 * 86400 * 1000)) {
		rc = cli_usage(c, "invalid --timeout-exit '%s' (want milliseconds, or a "
		               "duration such as 5s)", a->val[WORK_TIMEOUT_EXIT]);
		goto out;
	}
	if (!*w->argv[0] || !command_exists(w->argv[0])) {
		rc = cli_usage(c, "command not found: '%s'", w->argv[0]);
		goto out;
	}

	/* the environment of the commands: ours, less what is set per job */
	size_t n = 0;
	for (char **e = environ; e && *e; e++) n++;
	w->env_base = malloc((n + 1) * sizeof *w->env_base);
	threads = calloc((size_t)w->nslots + 1, sizeof *threads);
	w->queue = calloc((size_t)w->nslots, sizeof *w->queue);
	w->jobs = calloc((size_t)w->nslots, sizeof *w->jobs);
	w->data = calloc((size_t)w->nslots, sizeof *w->data);
	if (!w->env_base || !threads || !w->queue || !w->jobs || !w->data) {
		cli_msg(c, "out of memory");
		rc = CLI_EXIT_STORE;
		goto out;
	}
	for (char **e = environ; e && *e; e++)
		if (strncmp(*e, "CJ_JOB_TYPE=", 12) && strncmp(*e, "CJ_JOB_ID=", 10) &&
		    strncmp(*e, "CJ_JOB_LOCK=", 12) && strncmp(*e, "CJOBS_DB=", 9))
			w->env_base[w->nenv++] = *e;

	/* signals: blocked in every thread (the library's too), taken below */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* kept blocked until exit */
	signal(SIGPIPE, SIG_IGN);

	if ((rc = cli_open(c, 1))) goto out;

	atomic_store(&w->last_busy, cli_now_ms());
	atomic_store(&w->deadline, INT64_MAX);
	/* the slots first, then the acceptor that feeds them */
	for (int i = 0; i <= w->nslots; i++) {
		atomic_fetch_add(&w->alive, 1);
		if (pthread_create(&threads[i], NULL, i < w->nslots ? slot_main : accept_main,
		                   w) != 0) {
			cli_msg(c, "cannot start a thread: %s", strerror(errno));
			atomic_fetch_sub(&w->alive, 1);
			atomic_store(&w->failed, 1);
			begin_stop(w);
			end_accepting(w); /* no acceptor: the slots end */
			break;
		}
		nthreads++;
	}

	while (atomic_load(&w->alive) > 0) {
		struct timespec ts = {0, POLL_CAP_MS * 1000000L};
		int sig = sigtimedwait(&set, NULL, &ts);
		if (sig != SIGINT && sig != SIGTERM) continue;
		if (!atomic_load(&w->stopping)) {
			begin_stop(w);
			int nr = atomic_load(&w->running);
			cli_msg(c, "stopping: taking no more jobs; %d running command%s "
			        "get%s %lld ms to end", nr, nr == 1 ? "" : "s",
			        nr == 1 ? "s" : "", (long long)w->grace_ms);
		} else {
			atomic_store(&w->deadline, cli_now_ms());
			cli_msg(c, "stopping now");
		}
	}
	for (int i = 0; i < nthreads; i++) pthread_join(threads[i], NULL);
	rc = atomic_load(&w->failed) ? CLI_EXIT_STORE : CLI_EXIT_OK;

out:
	free(threads);
	free(w->env_base);
	free(w->queue);
	free(w->jobs);
	free(w->data);
	pthread_cond_destroy(&w->queued);
	pthread_cond_destroy(&w->slot_free);
	pthread_mutex_destroy(&w->mu);
	free(w);
	return rc;
}
