/*
 * Mutual exclusion under stress: several processor processes run a few
 * thousand jobs with a one-second type timeout, and now and then stall
 * past it so that a monitor takes the job back and another processor runs
 * it. Every step a processor commits also bumps a per-job counter in the
 * caller's key space, in the same transaction as its cj_update() or
 * cj_finish(), and is logged with the counter's new value. From the logs
 * and the store the test proves that committed work of one job is never
 * interleaved between two runs, that a stale run always gets CJ_HALT, and
 * that every job is finished exactly once.
 *
 * CJ_STRESS_JOBS and CJ_STRESS_STALL (per mille of steps that stall) tune
 * the load. CJ_STRESS_UNSAFE=1 makes the steps skip cj_update(), as a
 * broken processor would: the test must then fail, which shows that it can.
 */
#include "testutil.h"

#include <errno.h>
#include <stdarg.h>

#define NPROC 4
#define TYPE "stress"
#define TYPE_TIMEOUT_S 1
#define DEFAULT_JOBS 2000
#define DEFAULT_STALL_PERMILLE 4
#define STALL_MIN_MS 1500
#define STALL_SPAN_MS 1000
#define LOCK_LEN 36

static int njobs = DEFAULT_JOBS;
static int stall_permille = DEFAULT_STALL_PERMILLE;
static int unsafe_steps;

static void job_id(char *buf, size_t len, int i) { snprintf(buf, len, "job-%05d", i); }

static void log_path(char *buf, size_t len, int p) {
	snprintf(buf, len, "%s/proc.%d.log", t_dir(), p);
}

/* ---- the processors ---------------------------------------------------------- */

/* xorshift64*: a deterministic stream per processor */
static uint64_t rnd(uint64_t *s) {
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

struct step_arg {
	cj_db *db;
	cj_job *job;
	int n;          /* step number in this run; the finish is the last */
	int finishing;
	int committed;  /* this run has committed work before */
	int64_t seq;    /* out: the job's counter after this step */
	int violation;  /* out: owner/<id> names another run */
	char other[128];
};

static int get_key(cj_tx *tx, const char *key, char *buf, size_t len) {
	void *v = NULL;
	size_t vlen = 0;
	int rc = cj_tx_get(tx, key, strlen(key), &v, &vlen);
	if (rc != CJ_OK) return rc;
	snprintf(buf, len, "%.*s", (int)vlen, (const char *)v);
	cj_free(v);
	return CJ_OK;
}

/* One step: cj_update() (or cj_finish()), then, in the same transaction,
 * the per-job owner check, counter and (finishing) done mark. */
static int step_fn(cj_tx *tx, void *p) {
	struct step_arg *a = p;
	const char *id = cj_job_id(a->job), *lock = cj_job_lock(a->job);
	char data[96], key[64], val[128];
	a->violation = 0;
	int rc;
	if (a->finishing) {
		snprintf(data, sizeof data, "{\"by\":\"%s\"}", lock);
		rc = cj_finish(a->db, tx, a->job, data);
	} else if (unsafe_steps) {
		rc = CJ_OK;
	} else {
		snprintf(data, sizeof data, "{\"step\":%d}", a->n);
		rc = cj_update(a->db, tx, a->job, data);
	}
	if (rc != CJ_OK) return rc;

	snprintf(key, sizeof key, "owner/%s", id);
	rc = get_key(tx, key, val, sizeof val);
	if (rc != CJ_OK && rc != CJ_NOT_FOUND) return rc;
	if (a->committed &&
	    (rc == CJ_NOT_FOUND || strncmp(val, lock, LOCK_LEN) != 0)) {
		a->violation = 1;
		snprintf(a->other, sizeof a->other, "%s", rc == CJ_OK ? val : "(none)");
	}
	snprintf(val, sizeof val, "%s %d", lock, a->n);
	if ((rc = put_str(tx, key, val)) != CJ_OK) return rc;

	snprintf(key, sizeof key, "seq/%s", id);
	rc = get_key(tx, key, val, sizeof val);
	if (rc != CJ_OK && rc != CJ_NOT_FOUND) return rc;
	a->seq = (rc == CJ_OK ? strtoll(val, NULL, 10) : 0) + 1;
	snprintf(val, sizeof val, "%lld", (long long)a->seq);
	if ((rc = put_str(tx, key, val)) != CJ_OK) return rc;

	if (a->finishing) {
		snprintf(key, sizeof key, "done/%s", id);
		if ((rc = put_str(tx, key, lock)) != CJ_OK) return rc;
	}
	return 0;
}

static int unfinished_cb(const cj_job_info *info, void *arg) {
	(void)arg;
	return info->state != CJ_FINISHED;
}

static void logf_(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(FILE *f, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fflush(f);
}

static int processor(void *p) {
	int idx = (int)(intptr_t)p;
	uint64_t rs = 0x9E3779B97F4A7C15ULL * (uint64_t)(idx + 1);
	char path[4096];
	log_path(path, sizeof path, idx);
	FILE *log = fopen(path, "a");
	if (!log) t_fail(__FILE__, __LINE__, "fopen %s: %s", path, strerror(errno));
	cj_options opts = CJ_OPTIONS_INIT;
	opts.sync = CJ_SYNC_RELAXED; /* exclusion, not durability, is tested */
	cj_db *db = t_open_opts(&opts);
	cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
	ao.timeout_ms = 2000;
	ao.no_schedule = idx % 2; /* both dequeue strategies at once */

	for (;;) {
		cj_job *job = NULL;
		int rc = cj_accept(db, TYPE, &ao, &job, NULL);
		if (rc == CJ_NOT_FOUND) {
			rc = cj_list_jobs(db, NULL, TYPE, unfinished_cb, NULL);
			if (rc == CJ_OK) break; /* every job is finished */
			CHECK(rc == 1);
			continue;
		}
		CHECK_OK(rc);
		const char *id = cj_job_id(job), *lock = cj_job_lock(job);
		logf_(log, "ACCEPT %s %s\n", id, lock);
		int nsteps = 1 + (int)(rnd(&rs) % 3);
		struct step_arg a = {.db = db, .job = job};
		for (int n = 1; n <= nsteps + 1; n++) {
			if (rnd(&rs) % 1000 < (uint64_t)stall_permille) {
				int64_t ms = STALL_MIN_MS + (int64_t)(rnd(&rs) % STALL_SPAN_MS);
				logf_(log, "STALL %s %s %lld\n", id, lock, (long long)ms);
				sleep_ms(ms);
			}
			a.n = n;
			a.finishing = n == nsteps + 1;
			rc = cj_transact(db, step_fn, &a);
			if (a.violation)
				logf_(log, "VIOLATION %s %s %d %s\n", id, lock, n, a.other);
			if (rc == CJ_HALT) {
				logf_(log, "HALT %s %s %d\n", id, lock, n);
				break;
			}
			if (rc != CJ_OK) {
				logf_(log, "ERROR %s %s %d %s\n", id, lock, n, cj_err_name(rc));
				CHECK_OK(rc);
			}
			a.committed = 1;
			if (a.finishing)
				logf_(log, "FINISH %s %s %lld\n", id, lock, (long long)a.seq);
			else
				logf_(log, "STEP %s %s %d %lld\n", id, lock, n, (long long)a.seq);
		}
		cj_job_free(job);
	}
	cj_close(db);
	fclose(log);
	return 0;
}

/* ---- the proof ------------------------------------------------------------------ */

struct rec {
	int job;
	int64_t seq;
	int n;      /* step number; 0 for the finish */
	char kind;  /* 'S' step, 'F' finish */
	char lock[LOCK_LEN + 1];
};

struct totals {
	long accepts, steps, finishes, halts, stalls, violations;
};

static int rec_cmp(const void *x, const void *y) {
	const struct rec *a = x, *b = y;
	if (a->job != b->job) return a->job < b->job ? -1 : 1;
	if (a->seq != b->seq) return a->seq < b->seq ? -1 : 1;
	return 0;
}

static int parse_job(const char *id) {
	int i = -1;
	if (sscanf(id, "job-%d", &i) != 1 || i < 0 || i >= njobs)
		t_fail(__FILE__, __LINE__, "bad job id in log: %s", id);
	return i;
}

/* Reads every processor's log into recs; counts the rest. */
static size_t read_logs(struct rec **out, struct totals *t, int *accepts) {
	size_t n = 0, cap = 1024;
	struct rec *recs = malloc(cap * sizeof *recs);
	CHECK(recs != NULL);
	for (int p = 0; p < NPROC; p++) {
		char path[4096];
		log_path(path, sizeof path, p);
		FILE *f = fopen(path, "r");
		if (!f) t_fail(__FILE__, __LINE__, "fopen %s: %s", path, strerror(errno));
		char line[512];
		while (fgets(line, sizeof line, f)) {
			char kind[16], id[64], lock[64];
			long long a1 = 0, a2 = 0;
			int got = sscanf(line, "%15s %63s %63s %lld %lld", kind, id, lock, &a1, &a2);
			if (got < 3) t_fail(__FILE__, __LINE__, "bad log line: %s", line);
			int job = parse_job(id);
			if (strcmp(kind, "ACCEPT") == 0) {
				t->accepts++;
				accepts[job]++;
			} else if (strcmp(kind, "HALT") == 0) {
				t->halts++;
			} else if (strcmp(kind, "STALL") == 0) {
				t->stalls++;
			} else if (strcmp(kind, "VIOLATION") == 0) {
				t->violations++;
				fprintf(stderr, "  processor %d: %s", p, line);
			} else if (strcmp(kind, "STEP") == 0 || strcmp(kind, "FINISH") == 0) {
				int step = kind[0] == 'S';
				if (got != (step ? 5 : 4) || strlen(lock) != LOCK_LEN)
					t_fail(__FILE__, __LINE__, "bad log line: %s", line);
				if (n == cap) {
					cap *= 2;
					recs = realloc(recs, cap * sizeof *recs);
					CHECK(recs != NULL);
				}
				struct rec *r = &recs[n++];
				r->job = job;
				r->kind = step ? 'S' : 'F';
				r->n = step ? (int)a1 : 0;
				r->seq = step ? a2 : a1;
				memcpy(r->lock, lock, LOCK_LEN + 1);
				if (step) t->steps++;
				else t->finishes++;
			} else {
				t_fail(__FILE__, __LINE__, "processor %d: %s", p, line);
			}
		}
		fclose(f);
	}
	qsort(recs, n, sizeof *recs, rec_cmp);
	*out = recs;
	return n;
}

/* The committed steps of one job, in counter order r[0..k-1]: the counter
 * has no gaps or repeats, each run's commits are contiguous and numbered
 * 1, 2, ... from its first, and the one finish comes last. */
static void check_job(const struct rec *r, size_t k, char finisher[LOCK_LEN + 1]) {
	char id[32];
	job_id(id, sizeof id, r[0].job);
	for (size_t i = 0; i < k; i++) {
		if (r[i].seq != (int64_t)i + 1)
			t_fail(__FILE__, __LINE__,
			       "%s: commit %zu has counter %lld: two runs committed on the same "
			       "state, or a commit is missing",
			       id, i + 1, (long long)r[i].seq);
		int first_of_run = i == 0 || strcmp(r[i].lock, r[i - 1].lock) != 0;
		if (first_of_run)
			for (size_t j = 0; j < i; j++)
				if (strcmp(r[j].lock, r[i].lock) == 0)
					t_fail(__FILE__, __LINE__,
					       "%s: run %s committed at counter %lld after another run "
					       "had taken over (at %lld)",
					       id, r[i].lock, (long long)r[i].seq, (long long)r[j].seq);
		if (r[i].kind == 'S') {
			int want = first_of_run ? 1 : r[i - 1].n + 1;
			if (r[i].n != want)
				t_fail(__FILE__, __LINE__, "%s: run %s committed step %d, want %d", id,
				       r[i].lock, r[i].n, want);
		} else if (i != k - 1) {
			t_fail(__FILE__, __LINE__, "%s: committed work after its finish", id);
		}
	}
	if (r[k - 1].kind != 'F')
		t_fail(__FILE__, __LINE__, "%s: no committed finish", id);
	memcpy(finisher, r[k - 1].lock, LOCK_LEN + 1);
}

struct store_check {
	char (*finisher)[LOCK_LEN + 1];
	int64_t *commits;
	int seen;
};

static int store_cb(const cj_job_info *info, void *arg) {
	struct store_check *s = arg;
	int job = parse_job(info->id);
	char want[96];
	snprintf(want, sizeof want, "{\"by\":\"%s\"}", s->finisher[job]);
	if (info->state != CJ_FINISHED || !json_same(info->data, want)) {
		fprintf(stderr, "  %s: %s %s, want finished %s\n", info->id,
		        cj_state_name(info->state), info->data ? info->data : "(null)", want);
		return 1;
	}
	s->seen++;
	return 0;
}

static void check_keys(cj_db *db, struct store_check *s) {
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	for (int j = 0; j < njobs; j++) {
		char id[32], key[64], val[128];
		job_id(id, sizeof id, j);
		snprintf(key, sizeof key, "done/%s", id);
		CHECK_OK(get_key(tx, key, val, sizeof val));
		CHECK_STR(val, s->finisher[j]);
		snprintf(key, sizeof key, "seq/%s", id);
		CHECK_OK(get_key(tx, key, val, sizeof val));
		CHECK_INT(strtoll(val, NULL, 10), s->commits[j]);
		snprintf(key, sizeof key, "owner/%s", id);
		CHECK_OK(get_key(tx, key, val, sizeof val));
		CHECK(strncmp(val, s->finisher[j], LOCK_LEN) == 0);
	}
	cj_tx_abort(tx);
}

struct add_arg {
	cj_db *db;
	int from, to;
};

static int add_fn(cj_tx *tx, void *p) {
	struct add_arg *a = p;
	for (int i = a->from; i < a->to; i++) {
		char id[32];
		job_id(id, sizeof id, i);
		int rc = cj_add(a->db, tx, TYPE, id, "{\"step\":0}", 0);
		if (rc != CJ_OK) return rc;
	}
	return 0;
}

static int env_int(const char *name, int def, int lo, int hi) {
	const char *s = getenv(name);
	if (!s || !*s) return def;
	int v = atoi(s);
	return v < lo ? lo : v > hi ? hi : v;
}

TEST(mutual_exclusion_under_stress) {
	njobs = env_int("CJ_STRESS_JOBS", DEFAULT_JOBS, 10, 100000);
	stall_permille = env_int("CJ_STRESS_STALL", DEFAULT_STALL_PERMILLE, 0, 1000);
	unsafe_steps = env_int("CJ_STRESS_UNSAFE", 0, 0, 1);

	cj_options opts = CJ_OPTIONS_INIT;
	opts.no_monitor = 1;
	cj_db *db = t_open_opts(&opts);
	CHECK_OK(cj_set_type_timeout(db, TYPE, TYPE_TIMEOUT_S));
	for (int i = 0; i < njobs; i += 500) {
		struct add_arg a = {db, i, i + 500 < njobs ? i + 500 : njobs};
		CHECK_OK(cj_transact(db, add_fn, &a));
	}
	cj_close(db); /* nothing open across the forks */

	int64_t t0 = t_now_ms();
	int pids[NPROC];
	for (int p = 0; p < NPROC; p++) pids[p] = t_spawn(processor, (void *)(intptr_t)p);
	/* within the case's limit (120 s, scaled alike): a hang fails here,
	 * naming the processor */
	int64_t bound = t_bound_ms(110000);
	for (int p = 0; p < NPROC; p++) {
		int64_t left = t0 + bound - t_now_ms();
		int st = t_join(pids[p], left > 1000 ? left : 1000);
		if (st != 0) t_fail(__FILE__, __LINE__, "processor %d exited with %d", p, st);
	}
	double secs = (double)(t_now_ms() - t0) / 1000;

	/* the logs */
	struct totals t = {0};
	int *accepts = calloc((size_t)njobs, sizeof *accepts);
	int64_t *commits = calloc((size_t)njobs, sizeof *commits);
	char(*finisher)[LOCK_LEN + 1] = calloc((size_t)njobs, sizeof *finisher);
	CHECK(accepts && commits && finisher);
	struct rec *recs = NULL;
	size_t nrec = read_logs(&recs, &t, accepts);
	long takeovers = 0;
	for (int j = 0; j < njobs; j++) {
		if (accepts[j] == 0) t_fail(__FILE__, __LINE__, "job %d was never accepted", j);
		takeovers += accepts[j] - 1;
	}
	note("  %d jobs, %d processors, %.1f s: %ld runs, %ld steps and %ld finishes "
	     "committed, %ld stalls, %ld takeovers, %ld halts\n",
	     njobs, NPROC, secs, t.accepts, t.steps, t.finishes, t.stalls, takeovers,
	     t.halts);
	/* (a) no processor saw another run's work inside its own */
	CHECK_INT(t.violations, 0);
	/* (b), (c) per job, from the logs */
	size_t i = 0;
	for (int j = 0; j < njobs; j++) {
		size_t k = 0;
		while (i + k < nrec && recs[i + k].job == j) k++;
		if (k == 0) t_fail(__FILE__, __LINE__, "job %d has no committed work", j);
		check_job(&recs[i], k, finisher[j]);
		commits[j] = (int64_t)k;
		i += k;
	}
	CHECK_INT(i, nrec);
	CHECK_INT(t.finishes, njobs);
	/* every run ended with its finish or a halt */
	CHECK_INT(t.halts, takeovers);
	/* (d) the stalls provoked takeovers: otherwise nothing was tested */
	CHECK(t.halts > 0);

	/* (c) in the store: finished by the run that logged its finish, with
	 * the counter matching the logged commits */
	db = t_open_opts(&opts);
	struct store_check s = {finisher, commits, 0};
	CHECK_OK(cj_list_jobs(db, NULL, TYPE, store_cb, &s));
	CHECK_INT(s.seen, njobs);
	check_keys(db, &s);
	check_store(db, NULL, NULL);
	cj_close(db);
	free(recs);
	free(accepts);
	free(commits);
	free(finisher);
}

TEST_MAIN_VERIFIED(ENTRY(mutual_exclusion_under_stress))
