/*
 * Chaos: real `cjobs work` processes drain a few thousand jobs while the
 * test kills (SIGKILL) and stops (SIGSTOP, SIGCONT later) random workers
 * among those it started, and, on PostgreSQL, restarts the server (a private
 * one). Then it proves from the workers' logs and the store:
 *
 *  - nothing lost: every job is finished, with the output of a run of it;
 *  - nothing stuck: nothing is pending or running once the chaos ends,
 *    within a generous bound;
 *  - no job finished twice: at most one worker logged "finished" for a job,
 *    and it is the one whose run's output the job holds (when none did, that
 *    worker was killed between its commit and its log line);
 *  - every stale finish halted: every other run of a job by a worker that
 *    was not killed ended with a "halted" line in that worker's log;
 *  - no worker gave up: none exited by itself (they ride out the server's
 *    restarts, started during one or not) and none logged that it could
 *    not end a job.
 *
 * Each run of the worker's command appends "ID LOCK WORKER" to a file (WORKER
 * names the worker process, one per start) and prints {"lock":...,"worker":...}
 * as its result, so the job's final data names the run that finished it.
 *
 * Short by default (seconds per engine). A longer run:
 *   CJ_CHAOS_SCALE=20 CJ_TEST_TIMEOUT=3600 ./test_chaos
 * (CJ_CHAOS_SCALE multiplies the jobs; CJ_CHAOS_SEED repeats a run's choices.)
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define TYPE "chaos"
#define TIMEOUT_S 2      /* the type timeout: a stopped worker's jobs come back */
#define WORKERS 4        /* live workers at any time */
#define SLOTS "2"        /* jobs at once per worker */
#define BASE_JOBS 1000   /* times CJ_CHAOS_SCALE */
#define ADD_BATCH 250    /* jobs per transaction while adding */
#define MAX_STARTS 4096  /* worker processes over a run */
#define CHAOS_BOUND_MS 150000 /* the chaos phase ends within this (times the scale) */
#define CALM_BOUND_MS 60000  /* after the chaos: everything done within this */

/* The command: records its run, sometimes takes a while, prints its result. */
#define COMMAND                                                                 \
	"printf '%s %s %s\\n' \"$CJ_JOB_ID\" \"$CJ_JOB_LOCK\" \"$CHAOS_WORKER\" >>\"$CHAOS_RUNS\";" \
	"case $CJ_JOB_ID in *7) sleep 0.3;; esac;"                                  \
	"printf '{\"lock\":\"%s\",\"worker\":%s}\\n' \"$CJ_JOB_LOCK\" \"$CHAOS_WORKER\""

enum fate { ALIVE, KILLED, EXITED };

struct worker {
	int pid;
	enum fate fate;
	int status;       /* EXITED: t_join-style status */
	int stopped;      /* SIGSTOP sent, SIGCONT not yet */
	int64_t cont_at;  /* when to send SIGCONT */
};

struct chaos {
	const char *url;
	int pg;           /* on a private PostgreSQL server (else embedded) */
	char pg_url[8300];
	int jobs;
	unsigned seed;
	struct worker w[MAX_STARTS];
	int nw;
	char runs[4200];
	/* what happened */
	int kills, stops, long_stops, restarts;
};

static unsigned rnd(struct chaos *c, unsigned n) {
	c->seed = c->seed * 1103515245u + 12345u;
	return (c->seed >> 16) % n;
}

static void job_id(char *out, size_t n, int i) { snprintf(out, n, "c%05d", i); }

/* Starts worker number c->nw: `cjobs work` with its log in w<k>.log. */
static void start_worker(struct chaos *c) {
	CHECK(c->nw < MAX_STARTS);
	int k = c->nw;
	char logp[4200], tag[64], runs[4300];
	snprintf(logp, sizeof logp, "%s/w%d.log", t_dir(), k);
	snprintf(tag, sizeof tag, "CHAOS_WORKER=%d", k);
	snprintf(runs, sizeof runs, "CHAOS_RUNS=%s", c->runs);
	/* the environment and argv are built before forking: the child only
	 * redirects and execs */
	size_t ne = 0;
	while (environ[ne]) ne++;
	char **env = calloc(ne + 3, sizeof *env);
	CHECK(env != NULL);
	memcpy(env, environ, ne * sizeof *env);
	env[ne] = tag;
	env[ne + 1] = runs;
	const char *cjobs = t_bin("cjobs");
	char *argv[] = {"cjobs", "--db", (char *)c->url, "work", TYPE, "-j", SLOTS,
	                "--grace", "5", "--", "/bin/sh", "-c", COMMAND, NULL};
	int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(fd, 2);
		int nul = open("/dev/null", O_RDWR);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
		}
		execve(cjobs, argv, env);
		_exit(127);
	}
	close(fd);
	free(env);
	c->w[k] = (struct worker){(int)pid, ALIVE, 0, 0, 0};
	c->nw++;
}

static int live(const struct chaos *c) {
	int n = 0;
	for (int k = 0; k < c->nw; k++) n += c->w[k].fate == ALIVE;
	return n;
}

/* A random live worker (stopped ones too when any_state), or -1. */
static int pick(struct chaos *c, int any_state) {
	int cand[MAX_STARTS], n = 0;
	for (int k = 0; k < c->nw; k++)
		if (c->w[k].fate == ALIVE && (any_state || !c->w[k].stopped)) cand[n++] = k;
	return n ? cand[rnd(c, (unsigned)n)] : -1;
}

static int wstatus(int st) {
	return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

/* Reaps workers that ended by themselves: none may. A worker rides out a
 * restart of the PostgreSQL server (it retries until the store is back). */
static void reap(struct chaos *c) {
	for (int k = 0; k < c->nw; k++) {
		struct worker *w = &c->w[k];
		if (w->fate != ALIVE) continue;
		int st;
		pid_t r = waitpid(w->pid, &st, WNOHANG);
		if (r != w->pid) continue;
		w->fate = EXITED;
		w->status = wstatus(st);
		t_fail(__FILE__, __LINE__, "worker %d (pid %d) exited with %d; its log: %s/w%d.log",
		       k, w->pid, w->status, t_dir(), k);
	}
}

static void kill_worker(struct chaos *c, int k) {
	struct worker *w = &c->w[k];
	CHECK(kill(w->pid, SIGKILL) == 0);
	int st;
	while (waitpid(w->pid, &st, 0) < 0) CHECK(errno == EINTR);
	w->fate = KILLED;
	w->stopped = 0;
	c->kills++;
}

static void cont_due(struct chaos *c, int64_t now) {
	for (int k = 0; k < c->nw; k++) {
		struct worker *w = &c->w[k];
		if (w->fate == ALIVE && w->stopped && now >= w->cont_at) {
			kill(w->pid, SIGCONT);
			w->stopped = 0;
		}
	}
}

/* 1 while a live worker is stopped. It may be stopped inside a write
 * transaction, holding the embedded engine's writer lock until it is
 * continued: this process must not write then (it is the one that
 * continues it). */
static int any_stopped(const struct chaos *c) {
	for (int k = 0; k < c->nw; k++)
		if (c->w[k].fate == ALIVE && c->w[k].stopped) return 1;
	return 0;
}

struct tally {
	int finished; /* jobs finished */
	int other;    /* pending or running */
};

static int tally_cb(const cj_job_info *info, void *arg) {
	struct tally *t = arg;
	if (info->state == CJ_FINISHED) t->finished++;
	else t->other++;
	return 0;
}

/* The jobs finished so far, or -1 when the store cannot say (a restart). */
static int finished_now(cj_db *db) {
	struct tally t = {0, 0};
	return cj_list_jobs(db, NULL, TYPE, tally_cb, &t) == CJ_OK ? t.finished : -1;
}

/* Adds up to ADD_BATCH more jobs in one transaction; returns the next index. */
static int add_batch(struct chaos *c, cj_db *db, int next) {
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	int end = next + ADD_BATCH < c->jobs ? next + ADD_BATCH : c->jobs;
	for (int i = next; i < end; i++) {
		char id[16], data[32];
		job_id(id, sizeof id, i);
		snprintf(data, sizeof data, "{\"n\":%d}", i);
		CHECK_OK(cj_add(db, tx, TYPE, id, data, 0));
	}
	CHECK_OK(cj_tx_commit(tx));
	return end;
}

/* Stops the server, waits a moment, starts it again. The workers ride it
 * out: none may exit (reap()). */
static void restart_server(struct chaos *c) {
	char url[8192];
	pg_private_stop();
	sleep_ms(300);
	CHECK(pg_private_start(url, sizeof url) == 0);
	c->restarts++;
}

/* ---- the proof ----------------------------------------------------------- */

struct run {
	int job;
	char lock[40];
	int worker;
};

struct jobinfo {
	char lock[40]; /* of the finishing run, from the job's data */
	int worker;
	int finished_by; /* the worker that logged "finished"; -1: none */
	int recorded;    /* the finishing run is in the command's records */
};

static int job_index(const char *id) {
	if (id[0] != 'c') return -1;
	char *end;
	long i = strtol(id + 1, &end, 10);
	return end != id + 1 && (*end == 0 || *end == ' ' || *end == ':') ? (int)i : -1;
}

static char *slurp(const char *path) {
	FILE *f = fopen(path, "r");
	if (!f) t_fail(__FILE__, __LINE__, "cannot read %s: %s", path, strerror(errno));
	size_t cap = 1 << 16, len = 0;
	char *s = malloc(cap);
	CHECK(s != NULL);
	size_t n;
	while ((n = fread(s + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len < 4096) {
			cap *= 2;
			s = realloc(s, cap);
			CHECK(s != NULL);
		}
	}
	fclose(f);
	s[len] = 0;
	return s;
}

/* Per (worker, job): runs logged by the command, and the worker's lines. */
struct pair {
	int worker, job;
	int runs, stale_runs, finished, halted;
};

static struct pair *pair_of(struct pair *p, size_t *n, int worker, int job) {
	for (size_t i = 0; i < *n; i++)
		if (p[i].worker == worker && p[i].job == job) return &p[i];
	p[*n] = (struct pair){worker, job, 0, 0, 0, 0};
	return &p[(*n)++];
}

static int final_data_cb(const cj_job_info *info, void *arg) {
	struct jobinfo *ji = arg;
	int i = job_index(info->id);
	if (i < 0) t_fail(__FILE__, __LINE__, "unexpected job %s", info->id);
	if (info->state != CJ_FINISHED)
		t_fail(__FILE__, __LINE__, "job %s is %s at the end", info->id,
		       cj_state_name(info->state));
	if (sscanf(info->data, "{\"lock\":\"%36[^\"]\",\"worker\":%d}", ji[i].lock,
	           &ji[i].worker) != 2)
		t_fail(__FILE__, __LINE__, "job %s finished with %s, not a run's output", info->id,
		       info->data);
	return 0;
}

static void prove(struct chaos *c) {
	/* the store: every job finished, by one of its runs */
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = NULL;
	CHECK_OK(cj_open(c->url, &o, &db));
	store_counts n;
	check_store(db, NULL, &n);
	CHECK_INT(n.total, c->jobs);
	CHECK_INT(n.finished, c->jobs);
	struct jobinfo *ji = calloc((size_t)c->jobs, sizeof *ji);
	CHECK(ji != NULL);
	for (int i = 0; i < c->jobs; i++) ji[i].finished_by = -1;
	CHECK_OK(cj_list_jobs(db, NULL, TYPE, final_data_cb, ji));
	cj_close(db);

	/* the command's record of every run */
	char *runs = slurp(c->runs);
	size_t cap = 4096, np = 0;
	struct pair *p = malloc(cap * sizeof *p);
	CHECK(p != NULL);
	int nruns = 0, stale = 0;
	for (char *line = strtok(runs, "\n"); line; line = strtok(NULL, "\n")) {
		char id[32];
		struct run r;
		if (sscanf(line, "%31s %39s %d", id, r.lock, &r.worker) != 3 ||
		    (r.job = job_index(id)) < 0 || r.job >= c->jobs || r.worker < 0 ||
		    r.worker >= c->nw)
			t_fail(__FILE__, __LINE__, "bad run record: %s", line);
		if (np + 1 >= cap) {
			cap *= 2;
			p = realloc(p, cap * sizeof *p);
			CHECK(p != NULL);
		}
		struct pair *q = pair_of(p, &np, r.worker, r.job);
		q->runs++;
		nruns++;
		if (strcmp(r.lock, ji[r.job].lock) != 0) {
			q->stale_runs++;
			stale++;
		} else if (r.worker != ji[r.job].worker || ji[r.job].recorded++) {
			t_fail(__FILE__, __LINE__, "job c%05d: lock %s handed out twice (workers %d "
			       "and %d)", r.job, r.lock, r.worker, ji[r.job].worker);
		}
	}
	free(runs);

	/* the workers' logs */
	int halted = 0, finished = 0, outages = 0;
	for (int k = 0; k < c->nw; k++) {
		char path[4200];
		snprintf(path, sizeof path, "%s/w%d.log", t_dir(), k);
		char *log = slurp(path);
		for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
			const char *pre = "cjobs: work: " TYPE " ";
			outages += strncmp(line, "cjobs: work: store unavailable (", 32) == 0;
			if (strncmp(line, pre, strlen(pre)) != 0) continue;
			const char *id = line + strlen(pre);
			int j = job_index(id);
			if (j < 0 || j >= c->jobs) continue;
			const char *what = strchr(id, ':');
			if (!what) continue;
			what += 2;
			if (np + 1 >= cap) {
				cap *= 2;
				p = realloc(p, cap * sizeof *p);
				CHECK(p != NULL);
			}
			struct pair *q = pair_of(p, &np, k, j);
			if (strncmp(what, "finished", 8) == 0) {
				q->finished++;
				finished++;
				if (ji[j].finished_by >= 0)
					t_fail(__FILE__, __LINE__, "job c%05d finished by workers %d and %d "
					       "(logs %s/w*.log)", j, ji[j].finished_by, k, t_dir());
				ji[j].finished_by = k;
			} else if (strncmp(what, "halted", 6) == 0) {
				q->halted++;
				halted++;
			} else if (strncmp(what, "cannot", 6) == 0) {
				/* a worker gives up a finish or a hand-back only when
				 * stopping, past its grace period */
				t_fail(__FILE__, __LINE__, "worker %d: %s (log %s/w%d.log)", k, line,
				       t_dir(), k);
			}
		}
		free(log);
	}

	for (int j = 0; j < c->jobs; j++) {
		int fin = ji[j].worker;
		if (!ji[j].recorded)
			t_fail(__FILE__, __LINE__, "job c%05d finished with the output of a run (lock "
			       "%s) that never started", j, ji[j].lock);
		if (ji[j].finished_by >= 0 && ji[j].finished_by != fin)
			t_fail(__FILE__, __LINE__, "job c%05d holds the output of worker %d's run, but "
			       "worker %d logged its finish", j, fin, ji[j].finished_by);
		/* no "finished" line: its finisher died between commit and log (a
		 * finish whose answer a restart lost is retried, and logged) */
		if (ji[j].finished_by < 0 && c->w[fin].fate != KILLED)
			t_fail(__FILE__, __LINE__, "job c%05d: worker %d ran it to the end and lived, "
			       "but did not log its finish", j, fin);
	}
	/* every stale run of a worker that lived ended halted */
	for (size_t i = 0; i < np; i++) {
		struct pair *q = &p[i];
		if (c->w[q->worker].fate == KILLED) continue;
		if (q->stale_runs > q->halted)
			t_fail(__FILE__, __LINE__, "worker %d ran job c%05d %d time(s) with a lock that "
			       "was not the last, but logged %d halt(s)", q->worker, q->job,
			       q->stale_runs, q->halted);
		/* (more halts than stale runs is fine: a command stopped at once may
		 * not have recorded its run) */
	}
	note("  %d jobs, %d runs (%d stale), %d finish lines, %d halted; %d worker "
	     "starts, %d killed, %d stopped (%d past the timeout), %d server restarts, %d "
	     "outages logged\n",
	     c->jobs, nruns, stale, finished, halted, c->nw, c->kills, c->stops, c->long_stops,
	     c->restarts, outages);
	free(p);
	free(ji);
}

/* ---- the run -------------------------------------------------------------- */

static int chaos_body(void *arg) {
	struct chaos *c = arg;
	const char *s = getenv("CJ_CHAOS_SCALE");
	int scale = s && *s ? atoi(s) : 1;
	if (scale < 1) scale = 1;
	c->jobs = BASE_JOBS * scale;
	s = getenv("CJ_CHAOS_SEED");
	c->seed = s && *s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)(t_now_ms() ^ getpid());
	note("  %s, %d jobs, seed %u (CJ_CHAOS_SEED repeats the choices)\n",
	     c->pg ? "PostgreSQL" : "embedded engine", c->jobs, c->seed);
	snprintf(c->runs, sizeof c->runs, "%s/runs", t_dir());

	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1; /* the workers watch for stale jobs; this one only counts */
	cj_db *db = NULL;
	CHECK_OK(cj_open(c->url, &o, &db));
	CHECK_OK(cj_set_type_timeout(db, TYPE, TIMEOUT_S));
	int added = add_batch(c, db, 0);
	for (int i = 0; i < WORKERS; i++) start_worker(c);

	/* chaos until 90% are finished: every 200-400 ms, maybe kill a worker
	 * (and start another), maybe stop one for 0.2-6 s (past the type
	 * timeout, its jobs go to others and its finishes must halt); on
	 * PostgreSQL restart the server at a third and at two thirds */
	int64_t t0 = t_now_ms();
	int done = 0, next_restart = c->pg ? c->jobs / 3 : c->jobs + 1;
	while (done < c->jobs * 9 / 10) {
		if (t_now_ms() - t0 > (int64_t)CHAOS_BOUND_MS * scale)
			t_fail(__FILE__, __LINE__, "only %d of %d jobs finished after %d s of chaos", done,
			       c->jobs, CHAOS_BOUND_MS / 1000 * scale);
		int64_t now = t_now_ms();
		cont_due(c, now);
		reap(c);
		while (live(c) < WORKERS) start_worker(c);
		if (added < c->jobs && !any_stopped(c)) added = add_batch(c, db, added);
		unsigned a = rnd(c, 10);
		if (a < 2 && live(c) > 1) {
			int k = pick(c, 1);
			if (k >= 0) {
				kill_worker(c, k);
				start_worker(c);
			}
		} else if (a < 4) {
			int k = pick(c, 0);
			if (k >= 0) {
				int64_t d = 200 + rnd(c, 5800);
				kill(c->w[k].pid, SIGSTOP);
				c->w[k].stopped = 1;
				c->w[k].cont_at = now + d;
				c->stops++;
				c->long_stops += d > TIMEOUT_S * 1000;
			}
		}
		if (added == c->jobs && done >= next_restart) {
			restart_server(c);
			next_restart += c->jobs / 3;
		}
		sleep_ms(200 + rnd(c, 200));
		int f = finished_now(db);
		if (f >= 0) done = f;
	}

	/* calm: let stopped workers go on; everything ends within the bound */
	int64_t t1 = t_now_ms();
	cont_due(c, INT64_MAX);
	for (;;) {
		reap(c);
		while (live(c) < WORKERS) start_worker(c);
		int f = finished_now(db);
		if (f == c->jobs) break;
		if (t_now_ms() - t1 > CALM_BOUND_MS)
			t_fail(__FILE__, __LINE__, "%d of %d jobs finished %d ms after the chaos ended",
			       f, c->jobs, CALM_BOUND_MS);
		sleep_ms(50);
	}
	note("  chaos for %lld ms, then the last jobs in %lld ms\n", (long long)(t1 - t0),
	     (long long)(t_now_ms() - t1));
	cj_close(db);

	/* stop the workers in order: stale ones log their halts first */
	for (int k = 0; k < c->nw; k++)
		if (c->w[k].fate == ALIVE) kill(c->w[k].pid, SIGTERM);
	for (int k = 0; k < c->nw; k++) {
		struct worker *w = &c->w[k];
		if (w->fate != ALIVE) continue;
		w->status = t_join(w->pid, 60000);
		w->fate = EXITED;
		if (w->status != 0)
			t_fail(__FILE__, __LINE__, "worker %d exited with %d on SIGTERM (log %s/w%d.log)",
			       k, w->status, t_dir(), k);
	}
	prove(c);
	return 0;
}

TEST(chaos) {
	struct chaos *c = calloc(1, sizeof *c);
	CHECK(c != NULL);
	if (t_is_lmdb()) {
		c->url = t_url();
		chaos_body(c);
		free(c);
		return;
	}
	/* a private server, to restart it; the run in a child, so that the
	 * server is stopped whatever the run does */
	char url[8192];
	if (pg_private_start(url, sizeof url) != 0) {
		note("  skipped: scripts/pg.sh not found (set CJ_PG_SH)\n");
		free(c);
		return;
	}
	snprintf(c->pg_url, sizeof c->pg_url, "%s%sschema=chaos", url,
	         strchr(url, '?') ? "&" : "?");
	c->url = c->pg_url;
	c->pg = 1;
	int st = t_join(t_spawn(chaos_body, c), 600000);
	pg_private_stop();
	free(c);
	CHECK_INT(st, 0);
}

TEST_MAIN(ENTRY(chaos))
