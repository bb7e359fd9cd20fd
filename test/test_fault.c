/*
 * Fault injection, as SQLite does it: each scenario (conformance-style
 * calls through the public API on a "faulty:" store) runs again and again
 * with the Nth allocation failing (once, then from N on), and with the Nth
 * engine operation failing (an I/O error once and from N on, a lost
 * connection, a conflict), for N = 1, 2, ... until a run meets no fault.
 * After every run:
 *  - the failing call returned a code its documentation in couchjobs.h
 *    lists, and the one the fault stands for (CJ_NOMEM, CJ_STORE,
 *    CJ_CONFLICT), never a misleading one;
 *  - the store, reopened without faults, is consistent (check_store), and
 *    what the scenario was told had landed did land, atomically;
 * and at the end of the case ASan finds no leak.
 *
 * White-box: the switches are the library's internal cj__fault_* calls
 * (src/fault.c), built only with CJ_FAULTS (sanitizer builds).
 * The scenarios run in two cases (faults, faults_more), each within the
 * time limit of a case. CJ_FAULT_SCENARIO=NAME runs one scenario only. By
 * default I/O errors from N on are left out, and on PostgreSQL, where each
 * run costs connections, everything but single allocation faults;
 * CJ_FAULT_FULL=1 sweeps every mode (a few minutes). On a server, four
 * processes share each sweep, each on a schema of its own
 * (SERVER_WORKERS). The group scenario (threads whose calls are combined
 * into one commit, through nested transactions) flushes every commit: by
 * default it sweeps single allocation faults and lost connections only. On the embedded engine the
 * faulty store shares the real one's combine file, so calls of a handle
 * with sync=full are combined as on the real store (combine.c): the xclaim
 * scenario's claim of two jobs is run by a leader whose arrays grow with
 * each job it takes.
 */
#include "cj_int.h"
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

/* ---- the documented codes, from the header ----------------------------------- */

static char *header_text;

static void load_header(void) {
	if (header_text) return;
	char path[4096];
	snprintf(path, sizeof path, "%s", __FILE__);
	char *slash = strrchr(path, '/');
	CHECK(slash != NULL);
	*slash = 0;
	slash = strrchr(path, '/');
	CHECK(slash != NULL);
	snprintf(slash, sizeof path - (size_t)(slash - path), "/include/couchjobs.h");
	FILE *f = fopen(path, "r");
	if (!f) t_fail(__FILE__, __LINE__, "cannot read %s: %s", path, strerror(errno));
	size_t cap = 1 << 17;
	header_text = calloc(1, cap);
	CHECK(header_text != NULL);
	size_t n = fread(header_text, 1, cap - 1, f);
	CHECK(n > 0 && n < cap - 1);
	fclose(f);
}

/* The codes the documentation of call fn lists after @return, as a bit set
 * (bit -code), with those of the calls it refers to ("as cj_update()"). */
static unsigned doc_codes(const char *fn, int depth) {
	load_header();
	char decl[128];
	snprintf(decl, sizeof decl, "\nint %s(", fn);
	const char *d = strstr(header_text, decl);
	if (!d) t_fail(__FILE__, __LINE__, "no declaration of %s in couchjobs.h", fn);
	const char *c = d;
	while (c > header_text && strncmp(c, "/**", 3) != 0) c--;
	const char *end = strstr(c, "*/");
	const char *ret = strstr(c, "@return");
	if (!end || !ret || ret > end)
		t_fail(__FILE__, __LINE__, "%s has no @return in couchjobs.h", fn);
	unsigned set = 0;
	for (const char *p = ret; p < end; p++) {
		if (strncmp(p, "#CJ_", 4) == 0) {
			for (int code = -1; code >= -30; code--) {
				const char *name = cj_err_name(code);
				size_t nl = strlen(name);
				if (strncmp(p + 1, name, nl) == 0 &&
				    !(p[1 + nl] == '_' || (p[1 + nl] >= 'A' && p[1 + nl] <= 'Z')))
					set |= 1u << -code;
			}
		} else if (depth < 2 && strncmp(p, "cj_", 3) == 0 && (p == ret || p[-1] != '_')) {
			char other[64];
			size_t k = 0;
			while (k < sizeof other - 1 && (p[k] == '_' || (p[k] >= 'a' && p[k] <= 'z')))
				other[k] = p[k], k++;
			other[k] = 0;
			if (p[k] == '(' && strcmp(other, fn) != 0) set |= doc_codes(other, depth + 1);
		}
	}
	return set;
}

/* ---- a run ---------------------------------------------------------------------- */

enum mode { ALLOC, IO, LOST, CONFLICT };
static const char *const mode_names[] = {"allocation", "I/O error", "lost connection",
                                         "conflict"};

struct run {
	const char *url;   /* the real store */
	char furl[8300];   /* "faulty:" + url */
	cj_options opts;   /* of the faulty handles */
	cj_db *real;       /* on a server: the handle open_real() hands out */
	char type[32];     /* this run's own type */
	enum mode mode;
	int persistent;
	long n;
	/* the first call that failed */
	const char *failed; /* its text, NULL when every call returned CJ_OK */
	int rc;
	int line;
	unsigned acked;     /* steps that returned CJ_OK (bits, per scenario) */
	uint64_t removed;   /* what the prune scenario's cj_prune said it removed */
};

/* The code a fault of this run's mode stands for. */
static int fault_code(const struct run *r) {
	switch (r->mode) {
	case ALLOC: return CJ_NOMEM;
	case CONFLICT: return CJ_CONFLICT;
	default: return CJ_STORE;
	}
}

/* Runs call; a code other than want ends the scenario (goto out) after
 * noting which call failed, and how. STEP: want CJ_OK. */
#define STEP(r, call) STEP_RC(r, call, CJ_OK)
#define STEP_RC(r, call, want) STEP_AS(r, #call, call, want)
/* STEP_RC for a code code_ that the call (its text text_) returned */
#define STEP_AS(r, text_, code_, want)                                      \
	do {                                                                    \
		int s_rc_ = (code_);                                                \
		if (s_rc_ != (want)) {                                              \
			(r)->failed = (text_);                                          \
			(r)->rc = s_rc_;                                                \
			(r)->line = __LINE__;                                           \
			goto out;                                                       \
		}                                                                   \
	} while (0)
/* STEP, and marks bit when it returned CJ_OK. */
#define ACK(r, bit, call)                                                   \
	do {                                                                    \
		STEP(r, call);                                                      \
		(r)->acked |= 1u << (bit);                                          \
	} while (0)

/* The failing call's code is one its documentation lists and the one the
 * fault stands for. */
static void check_code(const struct run *r) {
	if (!r->failed) return;
	char fn[64];
	size_t k = strcspn(r->failed, "(");
	CHECK(k < sizeof fn);
	memcpy(fn, r->failed, k);
	fn[k] = 0;
	unsigned doc = doc_codes(fn, 0);
	int want = fault_code(r);
	/* a subscriber may miss its event only while every read fails */
	int timeout_ok = r->persistent && strcmp(fn, "cj_wait") == 0 && r->rc == CJ_TIMEOUT;
	if (r->rc == want && (doc & (1u << -r->rc))) return;
	if (timeout_ok) return;
	t_fail(__FILE__, __LINE__,
	       "%s fault %ld%s: line %d: %s = %s (%s), want %s%s", mode_names[r->mode], r->n,
	       r->persistent ? " on" : "", r->line, r->failed, cj_err_name(r->rc),
	       cj_last_error(), cj_err_name(want),
	       (doc & (1u << -want)) ? "" : ", which its documentation does not list");
}

/* A handle on the real store, without faults. On the embedded engine it is
 * opened anew each time (a reopened store is what is checked, and a process
 * must not have the same LMDB store open twice at once); on a server one
 * handle serves the whole case, as each of its reads asks the server. */
static cj_db *open_real(struct run *r) {
	if (r->real) return r->real;
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	o.sync = CJ_SYNC_RELAXED;
	cj_db *db = NULL;
	CHECK_OK(cj_open(r->url, &o, &db));
	if (!t_is_lmdb()) r->real = db;
	return db;
}

static void close_real(struct run *r, cj_db *db) {
	if (db != r->real) cj_close(db);
}

static cj_state state_or_missing(cj_db *db, const char *type, const char *id) {
	cj_state st;
	int rc = cj_get_job_state(db, NULL, type, id, &st);
	if (rc == CJ_NOT_FOUND) return CJ_REMOVED;
	CHECK_OK(rc);
	return st;
}

#define ACKED(r, bit) (((r)->acked >> (bit)) & 1u)

/* ---- scenarios ---------------------------------------------------------------------
 *
 * setup() prepares the run's type without faults, run() makes the calls on a
 * faulty handle of its own, post() checks what landed on a real handle. */

struct scenario {
	const char *name;
	void (*setup)(struct run *r, cj_db *db);
	void (*run)(struct run *r);
	void (*post)(struct run *r, cj_db *db);
};

static void setup_timeout(struct run *r, cj_db *db) {
	CHECK_OK(cj_set_type_timeout(db, r->type, 60));
}

static void setup_two_jobs(struct run *r, cj_db *db) {
	setup_timeout(r, db);
	CHECK_OK(cj_add(db, NULL, r->type, "a", "{\"n\":1}", 0));
	CHECK_OK(cj_add(db, NULL, r->type, "b", "{\"n\":2}", 0));
}

/* open, type timeouts, add, read, list */
static void add_run(struct run *r) {
	cj_db *db = NULL;
	char *data = NULL, **types = NULL;
	size_t ntypes = 0;
	cj_job_info info = {0};
	STEP(r, cj_open(r->furl, &r->opts, &db));
	ACK(r, 0, cj_set_type_timeout(db, r->type, 30));
	int64_t secs = 0;
	STEP(r, cj_get_type_timeout(db, r->type, &secs));
	CHECK_INT(secs, 30);
	ACK(r, 1, cj_add(db, NULL, r->type, "a", "{\"x\":1}", 0));
	ACK(r, 2, cj_add(db, NULL, r->type, "later", NULL, t_epoch() + 3600));
	ACK(r, 3, cj_add(db, NULL, r->type, "a", "{\"x\":2}", 0)); /* replaces */
	cj_add_opts ao = CJ_ADD_OPTS_INIT;
	ao.unique = CJ_UNIQUE_ID;
	ACK(r, 4, cj_add_ex(db, NULL, r->type, "u", "{\"u\":1}", &ao));
	STEP_RC(r, cj_add_ex(db, NULL, r->type, "u", "{\"u\":2}", &ao), CJ_EXISTS);
	cj_state st;
	STEP(r, cj_get_job_state(db, NULL, r->type, "a", &st));
	CHECK_INT(st, CJ_PENDING);
	STEP(r, cj_get_job_data(db, NULL, r->type, "a", &data));
	CHECK_JSON(data, "{\"x\":2}");
	STEP(r, cj_get_job(db, NULL, r->type, "later", &info));
	CHECK_INT(info.state, CJ_PENDING);
	STEP(r, cj_list_jobs(db, NULL, r->type, noop_cb, NULL));
	STEP(r, cj_get_types(db, NULL, &types, &ntypes));
	CHECK(ntypes >= 1);
out:
	free_types(types, ntypes);
	cj_job_info_clear(&info);
	cj_free(data);
	cj_close(db);
}

static void add_post(struct run *r, cj_db *db) {
	int64_t secs = 0;
	if (ACKED(r, 0)) {
		CHECK_OK(cj_get_type_timeout(db, r->type, &secs));
		CHECK_INT(secs, 30);
	}
	if (ACKED(r, 3)) check_data(db, r->type, "a", "{\"x\":2}");
	else if (ACKED(r, 1)) CHECK_INT(state_of(db, r->type, "a"), CJ_PENDING);
	if (ACKED(r, 2)) CHECK_INT(state_of(db, r->type, "later"), CJ_PENDING);
	if (ACKED(r, 4)) check_job_is(db, r->type, "u", CJ_PENDING, "{\"u\":1}");
}

/* accept (from the first of two types that has a job), update, finish */
static void process_run(struct run *r) {
	cj_db *db = NULL;
	cj_job *job = NULL;
	char *data = NULL;
	const char *types[] = {"empty-type", r->type};
	STEP(r, cj_open(r->furl, &r->opts, &db));
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	ACK(r, 0, cj_accept_types(db, types, 2, &o, &job, &data));
	CHECK_STR(cj_job_id(job), "a");
	CHECK_JSON(data, "{\"n\":1}");
	ACK(r, 1, cj_update(db, NULL, job, "{\"n\":1,\"progress\":50}"));
	ACK(r, 2, cj_finish(db, NULL, job, "{\"n\":1,\"done\":true}"));
out:
	cj_free(data);
	cj_job_free(job);
	cj_close(db);
}

static void process_post(struct run *r, cj_db *db) {
	cj_state st = state_of(db, r->type, "a");
	if (ACKED(r, 2)) {
		check_job_is(db, r->type, "a", CJ_FINISHED, "{\"n\":1,\"done\":true}");
	} else if (ACKED(r, 1) && st == CJ_RUNNING) {
		check_data(db, r->type, "a", "{\"n\":1,\"progress\":50}");
	} else if (ACKED(r, 0)) {
		CHECK(st != CJ_PENDING);
	}
	CHECK_INT(state_of(db, r->type, "b"), CJ_PENDING);
}

/* accept several, finish them in one caller's transaction; resubmit */
static void batch_run(struct run *r) {
	cj_db *db = NULL;
	cj_job *jobs[2] = {NULL, NULL};
	size_t n = 0;
	cj_tx *tx = NULL;
	STEP(r, cj_open(r->furl, &r->opts, &db));
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	ACK(r, 0, cj_accept_many(db, r->type, &o, 2, jobs, NULL, &n));
	CHECK_INT(n, 2);
	ACK(r, 1, cj_resubmit(db, NULL, jobs[1], CJ_SCHED_KEEP, NULL));
	STEP(r, cj_tx_begin(db, &tx));
	STEP(r, cj_finish(db, tx, jobs[0], "{\"batch\":1}"));
	STEP(r, cj_finish(db, tx, jobs[1], "{\"batch\":2}"));
	cj_tx *t = tx;
	tx = NULL;
	ACK(r, 2, cj_tx_commit(t));
out:
	cj_tx_abort(tx);
	cj_job_free(jobs[0]);
	cj_job_free(jobs[1]);
	cj_close(db);
}

static void batch_post(struct run *r, cj_db *db) {
	cj_state a = state_of(db, r->type, "a"), b = state_of(db, r->type, "b");
	/* the accept and the two finishes landed together or not at all: both
	 * pending, both running, or a finished and b (resubmitted) pending */
	CHECK((a == CJ_PENDING && b == CJ_PENDING) || (a == CJ_RUNNING && b == CJ_RUNNING) ||
	      (a == CJ_FINISHED && b == CJ_PENDING));
	if (ACKED(r, 2)) {
		check_job_is(db, r->type, "a", CJ_FINISHED, "{\"batch\":1}");
		/* resubmitted while running: pending again, its data kept */
		CHECK_INT(b, CJ_PENDING);
	}
}

/* remove: a pending job, a running one (its processor is halted) */
static void remove_run(struct run *r) {
	cj_db *db = NULL;
	cj_job *job = NULL;
	STEP(r, cj_open(r->furl, &r->opts, &db));
	ACK(r, 0, cj_remove(db, NULL, r->type, "b"));
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	ACK(r, 1, cj_accept(db, r->type, &o, &job, NULL));
	ACK(r, 2, cj_remove(db, NULL, r->type, "a"));
	STEP_RC(r, cj_update(db, NULL, job, NULL), CJ_HALT);
	STEP_RC(r, cj_remove(db, NULL, r->type, "a"), CJ_NOT_FOUND);
out:
	cj_job_free(job);
	cj_close(db);
}

static void remove_post(struct run *r, cj_db *db) {
	if (ACKED(r, 0)) CHECK_INT(state_or_missing(db, r->type, "b"), CJ_REMOVED);
	if (ACKED(r, 2)) CHECK_INT(state_or_missing(db, r->type, "a"), CJ_REMOVED);
}

/* subscribe, and wait for the finish another handle makes; a processor's
 * lease, lost to that finish */
static void sub_run(struct run *r) {
	cj_db *db = NULL;
	cj_sub *sub = NULL, *lease = NULL;
	cj_job *job = NULL;
	cj_event ev = {0};
	STEP(r, cj_open(r->furl, &r->opts, &db));
	cj_state st;
	ACK(r, 0, cj_subscribe(db, r->type, "a", &sub, &st, NULL));
	CHECK_INT(st, CJ_PENDING);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	STEP(r, cj_accept(db, r->type, &o, &job, NULL));
	/* the processor's lease: held until its own finish */
	STEP(r, cj_subscribe_lease(db, job, &lease));
	int fd = -1;
	STEP(r, cj_sub_fd(lease, &fd));
	cj_lost lost = CJ_LOST_REMOVED;
	STEP_RC(r, cj_job_wait_lost(db, job, 0, NULL, &lost), CJ_TIMEOUT);
	CHECK_INT(lost, CJ_LOST_NONE);
	ACK(r, 1, cj_finish(db, NULL, job, "{\"sub\":true}"));
	STEP(r, cj_job_wait_lost(db, job, -1, NULL, &lost));
	CHECK_INT(lost, CJ_LOST_FINISHED);
	/* while every read fails, the event cannot come: a short wait */
	int rc = cj_wait(&sub, 1, CJ_FINISHED, r->persistent ? 200 : 2000, &ev);
	if (rc != CJ_OK && !r->persistent) {
		/* a single fault loses no event: the next wait delivers it */
		char why[256];
		snprintf(why, sizeof why, "%s (%s)", cj_err_name(rc), cj_last_error());
		if (cj_wait(&sub, 1, CJ_FINISHED, 5000, &ev) != CJ_OK)
			t_fail(__FILE__, __LINE__, "%s fault %ld: cj_wait = %s, and the finished event "
			       "never came", mode_names[r->mode], r->n, why);
	}
	STEP_AS(r, "cj_wait(&sub, ...)", rc, CJ_OK);
	CHECK_INT(ev.state, CJ_FINISHED);
	CHECK_JSON(ev.data, "{\"sub\":true}");
out:
	cj_event_clear(&ev);
	cj_unsubscribe(lease);
	cj_unsubscribe(sub);
	cj_job_free(job);
	cj_close(db);
}

static void sub_post(struct run *r, cj_db *db) {
	if (ACKED(r, 1)) check_job_is(db, r->type, "a", CJ_FINISHED, "{\"sub\":true}");
}

/* type timeouts: set, read, clear; a type without one takes no jobs */
static void types_run(struct run *r) {
	cj_db *db = NULL;
	STEP(r, cj_open(r->furl, &r->opts, &db));
	ACK(r, 0, cj_set_type_timeout(db, r->type, 5));
	ACK(r, 1, cj_clear_type_timeout(db, r->type));
	STEP_RC(r, cj_add(db, NULL, r->type, "c", NULL, 0), CJ_NO_TYPE_TIMEOUT);
	ACK(r, 2, cj_set_type_timeout(db, r->type, 7));
out:
	cj_close(db);
}

static void types_post(struct run *r, cj_db *db) {
	int64_t s = 0;
	int rc = cj_get_type_timeout(db, r->type, &s);
	if (ACKED(r, 2)) {
		CHECK_OK(rc);
		CHECK_INT(s, 7);
	} else if (ACKED(r, 1)) {
		CHECK(rc == CJ_NOT_FOUND || (rc == CJ_OK && s == 7));
	}
}

/* cj_transact with the caller's keys and a job: all or nothing */
struct tx_arg {
	cj_db *db;
	const char *type;
};

static int tx_fn(cj_tx *tx, void *p) {
	struct tx_arg *a = p;
	int rc = cj_tx_put(tx, "k1", 2, "v1", 2);
	if (!rc) rc = cj_tx_put(tx, "gone", 4, "x", 1);
	if (!rc) rc = cj_tx_del(tx, "gone", 4);
	if (!rc) rc = cj_add(a->db, tx, a->type, "t", "{\"tx\":1}", 0);
	void *v = NULL;
	size_t vl = 0;
	if (!rc) rc = cj_tx_get(tx, "k1", 2, &v, &vl);
	if (!rc && (vl != 2 || memcmp(v, "v1", 2) != 0)) rc = CJ_INVALID;
	cj_free(v);
	return rc;
}

static void tx_run(struct run *r) {
	cj_db *db = NULL;
	STEP(r, cj_open(r->furl, &r->opts, &db));
	struct tx_arg a = {db, r->type};
	ACK(r, 0, cj_transact(db, tx_fn, &a));
out:
	cj_close(db);
}

static void tx_post(struct run *r, cj_db *db) {
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	void *v = NULL;
	size_t vl = 0;
	int key = cj_tx_get(tx, "k1", 2, &v, &vl);
	cj_free(v);
	cj_state st;
	int job = cj_get_job_state(db, tx, r->type, "t", &st);
	int gone = cj_tx_get(tx, "gone", 4, &v, &vl);
	cj_free(v);
	cj_tx_abort(tx);
	CHECK(key == CJ_OK || key == CJ_NOT_FOUND);
	CHECK(job == CJ_OK || job == CJ_NOT_FOUND);
	CHECK_INT(gone, CJ_NOT_FOUND);
	CHECK_INT(key, job); /* together or not at all */
	if (ACKED(r, 0)) CHECK_INT(key, CJ_OK);
	/* the caller's key is shared by every run of the scenario: clear it */
	CHECK_OK(cj_tx_begin(db, &tx));
	int rc = cj_tx_del(tx, "k1", 2);
	CHECK(rc == CJ_OK || rc == CJ_NOT_FOUND);
	CHECK_OK(cj_tx_commit(tx));
}

/* accept, fail (pending again), accept, fail (dead), redrive; a job's own
 * policy; a type's redrive */
static void setup_fail(struct run *r, cj_db *db) {
	setup_two_jobs(r, db);
	cj_retry_policy p = {2, 0, 0, 1, CJ_JITTER_NONE};
	CHECK_OK(cj_set_type_policy(db, r->type, &p));
}

static void fail_run(struct run *r) {
	cj_db *db = NULL;
	cj_job *job = NULL;
	char *data = NULL;
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	cj_retry_policy p = {5, 1, 2, 2, CJ_JITTER_FULL};
	uint64_t n;
	STEP(r, cj_open(r->furl, &r->opts, &db));
	ACK(r, 0, cj_accept(db, r->type, &o, &job, &data));
	CHECK_STR(cj_job_id(job), "a");
	ACK(r, 1, cj_fail(db, NULL, job, "{\"e\":1}"));
	cj_job_free(job);
	job = NULL;
	cj_free(data);
	data = NULL;
	ACK(r, 2, cj_accept(db, r->type, &o, &job, &data));
	CHECK_STR(cj_job_id(job), "a");
	ACK(r, 3, cj_fail(db, NULL, job, "{\"e\":2}"));
	ACK(r, 4, cj_retry(db, NULL, r->type, "a", 0));
	ACK(r, 5, cj_set_job_policy(db, NULL, r->type, "b", &p));
	ACK(r, 6, cj_retry_type(db, r->type, 1, &n));
out:
	cj_free(data);
	cj_job_free(job);
	cj_close(db);
}

static void fail_post(struct run *r, cj_db *db) {
	cj_state st = state_of(db, r->type, "a");
	cj_job_info info;
	CHECK_OK(cj_get_job(db, NULL, r->type, "a", &info));
	if (ACKED(r, 4)) {
		CHECK_INT(st, CJ_PENDING);
		CHECK_INT(info.attempt, 0);
	} else if (ACKED(r, 3)) {
		CHECK(st == CJ_DEAD || st == CJ_PENDING); /* a redrive may have landed */
	} else if (ACKED(r, 1)) {
		CHECK(st != CJ_FINISHED && info.attempt >= 1);
	}
	/* every attempt that ended left its error */
	if (st == CJ_DEAD) CHECK_INT(info.attempt, 2);
	cj_job_info_clear(&info);
	cj_retry_policy p;
	if (ACKED(r, 5)) CHECK_OK(cj_get_job_policy(db, NULL, r->type, "b", &p));
	CHECK_INT(state_of(db, r->type, "b"), CJ_PENDING);
}

/* two finished and two dead jobs, ended in that order */
static void setup_prune(struct run *r, cj_db *db) {
	setup_timeout(r, db);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	static const char *const ids[] = {"f0", "f1", "d0", "d1"};
	for (int i = 0; i < 4; i++) {
		cj_job *job;
		CHECK_OK(cj_add(db, NULL, r->type, ids[i], NULL, 0));
		CHECK_OK(cj_accept(db, r->type, &o, &job, NULL));
		CHECK_OK(i < 2 ? cj_finish(db, NULL, job, NULL) : cj_fail(db, NULL, job, NULL));
		cj_job_free(job);
	}
}

/* a prune of every finished and dead job: one batch for the finished, one
 * for the dead, so a fault in the second stops it part way */
static void prune_run(struct run *r) {
	cj_db *db = NULL;
	cj_retention lim = {CJ_KEEP_ALL, 0, CJ_KEEP_ALL, 0};
	r->removed = UINT64_MAX;
	STEP(r, cj_open(r->furl, &r->opts, &db));
	ACK(r, 0, cj_prune(db, r->type, &lim, &r->removed));
out:
	cj_close(db);
}

/* What cj_prune said it removed was removed, the batches before its
 * failure included; only a lost connection may have landed one more batch
 * (its commit's outcome is unknown). */
static void prune_post(struct run *r, cj_db *db) {
	static const char *const ids[] = {"f0", "f1", "d0", "d1"};
	uint64_t gone = 0, finished_gone = 0;
	for (int i = 0; i < 4; i++)
		if (state_or_missing(db, r->type, ids[i]) == CJ_REMOVED) {
			gone++;
			finished_gone += i < 2;
		}
	if (r->removed == UINT64_MAX) { /* the open failed */
		CHECK_INT(gone, 0);
		return;
	}
	CHECK(finished_gone == 2 || gone == finished_gone); /* the finished went first */
	if (ACKED(r, 0)) CHECK_INT(r->removed, 4);
	if (r->mode == LOST && !ACKED(r, 0))
		CHECK(gone == r->removed || gone == r->removed + 2);
	else
		CHECK_INT(gone, r->removed);
}

static const struct scenario fail_scenarios[] = {
	{"fail", setup_fail, fail_run, fail_post},
	{"prune", setup_prune, prune_run, prune_post},
};

/* group commit: threads of one handle (sync=full, where calls are
 * combined) add and remove at once; each thread's calls end at its first
 * failure, which must be the fault's, as alone. A fault that meets a
 * nested transaction makes its call run again alone. */
#define GROUP_THREADS 2
static uint64_t group_combined; /* calls combined over every run */

struct group_arg {
	struct run r; /* this thread's copy: its own failure and acks */
	cj_db *db;
	int t;
	pthread_barrier_t *start;
};

static void *group_thread(void *p) {
	struct group_arg *g = p;
	struct run *r = &g->r;
	char a[16], b[16], nope[16];
	snprintf(a, sizeof a, "a%d", g->t);
	snprintf(b, sizeof b, "b%d", g->t);
	snprintf(nope, sizeof nope, "nope%d", g->t);
	pthread_barrier_wait(g->start);
	ACK(r, 2 * g->t, cj_add(g->db, NULL, r->type, a, "{\"x\":1}", 0));
	STEP_RC(r, cj_remove(g->db, NULL, r->type, nope), CJ_NOT_FOUND);
	ACK(r, 2 * g->t + 1, cj_add(g->db, NULL, r->type, b, "{\"x\":2}", 0));
out:
	return NULL;
}

static void group_run(struct run *r) {
	cj_db *db = NULL;
	cj_options o = r->opts;
	o.sync = CJ_SYNC_FULL;
	STEP(r, cj_open(r->furl, &o, &db));
	pthread_barrier_t start;
	CHECK(pthread_barrier_init(&start, NULL, GROUP_THREADS) == 0);
	struct group_arg g[GROUP_THREADS];
	pthread_t th[GROUP_THREADS];
	for (int t = 0; t < GROUP_THREADS; t++) {
		g[t] = (struct group_arg){.r = *r, .db = db, .t = t, .start = &start};
		CHECK(pthread_create(&th[t], NULL, group_thread, &g[t]) == 0);
	}
	for (int t = 0; t < GROUP_THREADS; t++) CHECK(pthread_join(th[t], NULL) == 0);
	pthread_barrier_destroy(&start);
	cj_stats st;
	CHECK_OK(cj_db_stats(db, &st));
	group_combined += st.combined_calls;
	/* every failing call is checked; the last one is left to the caller */
	for (int t = 0; t < GROUP_THREADS; t++) {
		r->acked |= g[t].r.acked;
		if (!g[t].r.failed) continue;
		r->failed = g[t].r.failed;
		r->rc = g[t].r.rc;
		r->line = g[t].r.line;
		check_code(r);
	}
out:
	cj_close(db);
}

static void group_post(struct run *r, cj_db *db) {
	for (int t = 0; t < GROUP_THREADS; t++) {
		char id[16];
		snprintf(id, sizeof id, "a%d", t);
		if (ACKED(r, 2 * t)) check_data(db, r->type, id, "{\"x\":1}");
		snprintf(id, sizeof id, "b%d", t);
		if (ACKED(r, 2 * t + 1)) check_data(db, r->type, id, "{\"x\":2}");
	}
}

/* a claim of several jobs combined (sync=full): the leader takes them
 * into arrays that grow with each job; data wanted */
static void xclaim_run(struct run *r) {
	cj_db *db = NULL;
	cj_job *jobs[2] = {NULL, NULL};
	char *data[2] = {NULL, NULL};
	size_t n = 0;
	cj_options o = r->opts;
	o.sync = CJ_SYNC_FULL;
	STEP(r, cj_open(r->furl, &o, &db));
	cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
	ao.timeout_ms = 0;
	ACK(r, 0, cj_accept_many(db, r->type, &ao, 2, jobs, data, &n));
	CHECK_INT(n, 2);
	for (size_t i = 0; i < n; i++) CHECK(data[i] && strstr(data[i], "\"n\":") != NULL);
out:
	for (int i = 0; i < 2; i++) {
		cj_job_free(jobs[i]);
		cj_free(data[i]);
	}
	cj_close(db);
}

static void xclaim_post(struct run *r, cj_db *db) {
	/* taken together or not at all */
	cj_state want = ACKED(r, 0) ? CJ_RUNNING : state_of(db, r->type, "a");
	CHECK(want == CJ_RUNNING || want == CJ_PENDING);
	CHECK_INT(state_of(db, r->type, "a"), want);
	CHECK_INT(state_of(db, r->type, "b"), want);
}

static const struct scenario scenarios[] = {
	{"add", NULL, add_run, add_post},
	{"process", setup_two_jobs, process_run, process_post},
	{"batch", setup_two_jobs, batch_run, batch_post},
	{"remove", setup_two_jobs, remove_run, remove_post},
	{"subscribe", setup_two_jobs, sub_run, sub_post},
	{"types", NULL, types_run, types_post},
	{"transact", setup_timeout, tx_run, tx_post},
	{"group", setup_timeout, group_run, group_post},
	{"xclaim", setup_two_jobs, xclaim_run, xclaim_post},
};

/* ---- the loop ------------------------------------------------------------------ */

static void arm(const struct run *r) {
	if (r->mode == ALLOC) cj__fault_alloc(r->n, r->persistent);
	else cj__fault_engine(r->n, (int)(r->mode == IO ? CJ_FAULT_IO : r->mode == LOST
	                                                               ? CJ_FAULT_LOST
	                                                               : CJ_FAULT_CONFLICT),
	                      r->persistent);
}

static long disarm(const struct run *r) {
	long hits = r->mode == ALLOC ? cj__fault_alloc_hits() : cj__fault_engine_hits();
	cj__fault_alloc(0, 0);
	cj__fault_engine(0, 0, 0);
	return hits;
}

struct ids {
	char id[8][16];
	int n;
};

static int collect_id(const cj_job_info *info, void *arg) {
	struct ids *ids = arg;
	if (ids->n == 8 || strlen(info->id) >= sizeof ids->id[0]) return CJ_INVALID;
	strcpy(ids->id[ids->n++], info->id);
	return 0;
}

/* Names the next run's type and sets it up in db (NULL: s has no setup). */
static void prepare(const struct scenario *s, struct run *r, int *seq, cj_db *db) {
	snprintf(r->type, sizeof r->type, "%s%d", s->name, (*seq)++);
	if (s->setup) s->setup(r, db);
}

/* Runs scenario s with fault n of the given mode; returns 1 if the fault was
 * met (a next n is worth trying). *ready says whether this run's type is
 * named and set up already; the handle that checks a run prepares the next
 * one when there is one (on the embedded engine, where each check opens
 * the store, that is one open less per run: opening dominates a run). */
static int run_once(const struct scenario *s, struct run *r, int *seq, int *ready) {
	r->failed = NULL;
	r->rc = CJ_OK;
	r->acked = 0;
	if (!*ready && !s->setup) prepare(s, r, seq, NULL);
	if (!*ready && s->setup) {
		cj_db *db = open_real(r);
		prepare(s, r, seq, db);
		close_real(r, db);
	}
	*ready = 0;
	arm(r);
	s->run(r);
	long hits = disarm(r);
	check_code(r);
	if (!hits && r->failed)
		t_fail(__FILE__, __LINE__, "%s: without a fault: line %d: %s = %s (%s)", s->name,
		       r->line, r->failed, cj_err_name(r->rc), cj_last_error());
	/* the store, reopened without faults, is consistent and holds what was
	 * acknowledged */
	cj_db *db = open_real(r);
	check_store(db, r->type, NULL);
	s->post(r, db);
	/* leave nothing behind, so that every run starts from the same store */
	struct ids ids = {.n = 0};
	CHECK_OK(cj_list_jobs(db, NULL, r->type, collect_id, &ids));
	for (int i = 0; i < ids.n; i++) CHECK_OK(cj_remove(db, NULL, r->type, ids.id[i]));
	int rc = cj_clear_type_timeout(db, r->type);
	CHECK(rc == CJ_OK || rc == CJ_NOT_FOUND);
	rc = cj_clear_type_policy(db, r->type);
	CHECK(rc == CJ_OK || rc == CJ_NOT_FOUND);
	if (hits > 0) {
		prepare(s, r, seq, db);
		*ready = 1;
	}
	close_real(r, db);
	return hits > 0;
}

/* What a sweep found: per scenario and mode, the last fault number that
 * met a fault (the number of fault points); its runs; its time. */
#define MAX_SCENARIOS 8
#define NMODES 6
struct sweep {
	long points[MAX_SCENARIOS][NMODES];
	int64_t ms[MAX_SCENARIOS];
	long runs;
	uint64_t combined;
};

/* level: 0 swept by default everywhere, 1 by default on the embedded
 * engine, 2 with CJ_FAULT_FULL only. A run on a server costs connections:
 * by default it sweeps only what reaches its engine's own code,
 * allocations (engine faults are made at the engine's boundary, so they
 * test the core, as on the embedded engine). I/O errors from N on add
 * little to single ones and a persistent allocation failure. */
static const struct {
	enum mode mode;
	int persistent;
	int level;
} modes[NMODES] = {{ALLOC, 0, 0}, {ALLOC, 1, 1}, {IO, 0, 1},
                   {IO, 1, 2},    {LOST, 0, 1},  {CONFLICT, 0, 1}};

static int mode_swept(const struct scenario *s, size_t m) {
	const char *full = getenv("CJ_FAULT_FULL");
	int level = full && *full && strcmp(full, "0") != 0 ? 2 : t_is_lmdb() ? 1 : 0;
	if (modes[m].level > level) return 0;
	/* each run of group flushes its commits: by default it sweeps single
	 * allocation faults and lost connections only */
	if (s->run == group_run && level < 2 &&
	    (modes[m].persistent || (modes[m].mode != ALLOC && modes[m].mode != LOST)))
		return 0;
	return 1;
}

static int scenario_swept(const struct scenario *s) {
	const char *only = getenv("CJ_FAULT_SCENARIO");
	return !(only && *only && strcmp(only, s->name) != 0);
}

/* Runs the scenarios on url with the faults first, first + step, ... of
 * each mode, each until a run meets no fault; then checks the whole store. */
static void sweep(const char *url, const struct scenario *list, size_t nlist, long first,
                  long step, int seq, struct sweep *out) {
	struct run r;
	memset(&r, 0, sizeof r);
	memset(out, 0, sizeof *out);
	r.url = url;
	snprintf(r.furl, sizeof r.furl, "faulty:%s", url);
	r.opts = (cj_options)CJ_OPTIONS_INIT;
	r.opts.no_monitor = 1;
	r.opts.sync = CJ_SYNC_RELAXED;
	CHECK(nlist <= MAX_SCENARIOS);
	for (size_t i = 0; i < nlist; i++) {
		const struct scenario *s = &list[i];
		if (!scenario_swept(s)) continue;
		int64_t t0 = t_now_ms();
		for (size_t m = 0; m < NMODES; m++) {
			if (!mode_swept(s, m)) continue;
			r.mode = modes[m].mode;
			r.persistent = modes[m].persistent;
			int ready = 0;
			for (r.n = first;; r.n += step) {
				out->runs++;
				if (!run_once(s, &r, &seq, &ready)) break;
			}
			out->points[i][m] = r.n - step;
		}
		out->ms[i] = t_now_ms() - t0;
	}
	out->combined = group_combined;
	/* the whole store, once more */
	cj_db *db = open_real(&r);
	check_store(db, NULL, NULL);
	cj_close(db);
}

/* On a server, where a run mostly waits for the server's answers, the
 * sweep is shared by this many processes, each with its own schema (so
 * that no other's notifications reach its faulty handle): the one of
 * worker k takes the fault numbers k + 1, k + 1 + SERVER_WORKERS, ... On
 * the embedded engine, where a run is bound by the CPU, and the faulty
 * handles of processes on one store would combine each other's calls
 * (combine.c), one process sweeps. */
#define SERVER_WORKERS 4

struct worker {
	char url[8400];
	const struct scenario *list;
	size_t nlist;
	long k;
	int fd[2]; /* its sweep, written back */
};

static int worker_main(void *p) {
	struct worker *w = p;
	close(w->fd[0]);
	struct sweep out;
	sweep(w->url, w->list, w->nlist, w->k + 1, SERVER_WORKERS, (int)w->k * 100000, &out);
	CHECK(write(w->fd[1], &out, sizeof out) == (ssize_t)sizeof out);
	close(w->fd[1]);
	return 0;
}

static void run_all(const char *url, const struct scenario *list, size_t nlist) {
	struct sweep all;
	int64_t t0 = t_now_ms();
	if (t_is_lmdb()) {
		sweep(url, list, nlist, 1, 1, 0, &all);
	} else {
		static struct worker w[SERVER_WORKERS];
		int pid[SERVER_WORKERS];
		memset(&all, 0, sizeof all);
		for (int k = 0; k < SERVER_WORKERS; k++) {
			/* t_url()'s schema is its last parameter: a schema of its own */
			snprintf(w[k].url, sizeof w[k].url, "%sw%d", url, k);
			w[k].list = list;
			w[k].nlist = nlist;
			w[k].k = k;
			CHECK(pipe(w[k].fd) == 0);
			pid[k] = t_spawn(worker_main, &w[k]);
			close(w[k].fd[1]);
		}
		for (int k = 0; k < SERVER_WORKERS; k++) {
			struct sweep one;
			ssize_t got = read(w[k].fd[0], &one, sizeof one);
			close(w[k].fd[0]);
			CHECK_INT(t_join(pid[k], 3600 * 1000), 0);
			CHECK_INT(got, (long long)sizeof one);
			for (size_t i = 0; i < nlist; i++) {
				for (size_t m = 0; m < NMODES; m++)
					if (one.points[i][m] > all.points[i][m])
						all.points[i][m] = one.points[i][m];
				if (one.ms[i] > all.ms[i]) all.ms[i] = one.ms[i];
			}
			all.runs += one.runs;
			all.combined += one.combined;
		}
	}
	for (size_t i = 0; i < nlist; i++) {
		const struct scenario *s = &list[i];
		if (!scenario_swept(s)) continue;
		char line[512];
		int len = snprintf(line, sizeof line, "  %-10s", s->name);
		for (size_t m = 0; m < NMODES; m++)
			if (mode_swept(s, m))
				len += snprintf(line + len, sizeof line - (size_t)len, " %s%s %ld",
				                mode_names[modes[m].mode], modes[m].persistent ? " (on)" : "",
				                all.points[i][m]);
		if (s->run == group_run)
			len += snprintf(line + len, sizeof line - (size_t)len, "; %llu calls combined",
			                (unsigned long long)all.combined);
		note("%s (%lld ms)\n", line, (long long)all.ms[i]);
	}
	note("  %ld runs by %d process(es) in %lld ms; every failing call returned its fault's "
	     "code, and the store stayed consistent\n", all.runs, t_is_lmdb() ? 1 : SERVER_WORKERS,
	     (long long)(t_now_ms() - t0));
}

/* the scenarios in two cases, each with the time limit of a case */
#define FAULTS_FIRST 4
TEST(faults) { run_all(t_url(), scenarios, FAULTS_FIRST); }

TEST(faults_more) {
	run_all(t_url(), scenarios + FAULTS_FIRST,
	        sizeof scenarios / sizeof scenarios[0] - FAULTS_FIRST);
}

/* a case of its own, with a time limit of its own: failures and redrives,
 * and a prune stopped part way (the count it gives of what it removed
 * before the fault) */
TEST(faults_fail) {
	run_all(t_url(), fail_scenarios, sizeof fail_scenarios / sizeof fail_scenarios[0]);
}

TEST_MAIN(ENTRY(faults), ENTRY(faults_more), ENTRY(faults_fail))
