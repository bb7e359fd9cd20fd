/*
 * Power loss of the embedded engine: the disk images a power loss could
 * leave, built from a trace of every write and flush the workload's
 * processes made to the store's files (test/powerloss.h: the recorder,
 * linked into this program), each opened with the library and checked:
 * it opens, cj_verify() finds it sound, and every call acknowledged (CJ_OK)
 * before the crash point is in it, in at least the state acknowledged;
 * a caller's transaction is in it whole or not at all.
 *
 * The model of the disk. A crash point is a prefix of the trace. The
 * image of a prefix is the store as it was before the trace (base: made,
 * closed, copied), with data.mdb's writes of the prefix applied in order:
 *  - a write recorded before the start of a flush of data.mdb (fdatasync,
 *    fsync: whichever process made it) that ended within the prefix is on
 *    disk: applied;
 *  - any other write may be on disk, or not, or in part: per 4 KiB page
 *    dropped (3 in 8), applied (4 in 8) or torn (1 in 8: each 512-byte
 *    sector applied or not), whatever the order of the writes; the later of
 *    two writes of a byte wins when both are applied (the disk holds the
 *    last one written back or an older one).
 *  - data.mdb's length is its base length, grown to the end of each write
 *    applied (a hole reads as zeros, as a sparse file's, or as blocks
 *    allocated but never written); LMDB never shrinks it in this engine's
 *    modes (no MDB_WRITEMAP), and a truncation, if one is recorded, is
 *    applied as a write is.
 *  - a write in flight at the crash point (its start recorded within the
 *    prefix, its return after it) is torn like any write not flushed: per
 *    4 KiB page dropped, applied or torn per sector, over what the writes
 *    of the prefix left (the last the disk was given). No flush covers it
 *    (a flush covers what returned before it started), and no
 *    acknowledgement in the prefix depends on it (the records of one
 *    thread are in its order), but it can damage what is there: a page
 *    LMDB writes again in place (a meta page, a page it reuses) is half
 *    old, half new. This needs its own state in the trace (the recorder's
 *    B record): a write is recorded with its bytes after it returns, so
 *    without a record of its start a write that returns after the crash
 *    point could not be told from one that had not begun, which must not
 *    be applied at all.
 *
 * The mapped files (lock.mdb, wake, flush, combine) are shared memory,
 * written through their mappings at any time, and written back by the
 * kernel when it likes: each 4 KiB page is taken from base or from end (the
 * store after the workload) at random, its length one of theirs, and a
 * file only one of them has is there or not. Why that covers what matters:
 * lock.mdb is re-initialised by LMDB at the first open after the crash;
 * the wake words only wake (a stale one makes a sleeper look once more);
 * the flush words only grow, so end holds the most they ever claimed and
 * base the least, and lme_flush_check() sets any word ahead of the
 * store's last commit to 0 at open (under the writer lock), so a word from
 * end that vouches for commits the image lost is set right there (before
 * any commit could trust it, at every open: a recovery's too); the
 * combine file's slots and owner locks belong to processes that are all
 * gone after the crash, as after kill -9 (test_xcombine.c). The reserve
 * file's bytes are never read: only its length matters, taken likewise.
 *
 * A second power loss, during or after the recovery. The first open of a
 * crashed store writes: LMDB resets lock.mdb, the engine sets flush words
 * ahead of the store's last commit to 0, makes the reserve file, converts
 * an old layout, and then come the first commits. So the first images of
 * the first SECOND_IMAGES crash points tried (when sound) are copied before
 * their check opens them, and recovered: opened by this process with the
 * recorder on (a second trace, whose base is the image), which notes what
 * the image holds of every job and key the first trace's markers name
 * (acknowledged or not), then commits two calls and a transaction,
 * acknowledged by markers; then SECOND_POINTS crash points of that trace x
 * SECOND_DRAWS images are built by the same rules and checked as the first
 * ones are, and also to hold exactly what their first image held (nothing
 * the first image kept, acknowledged or not, may be lost or changed by
 * its recovery and a crash after it). Not modelled: a third loss; a
 * recovery by several processes at once; recoveries are of a few sound
 * first images only (those of the points tried first); and the layout
 * conversion is exercised from layout 2 only (case layout_2_converted;
 * the other workloads' stores are of the current layout).
 *
 * Crash points: right before each flush's start and after its end, right
 * after each acknowledgement (a marker record) and after each start of a
 * write of data.mdb (in flight), plus random ones and the whole trace (at
 * most MAX_POINTS, sampled); DRAWS draws of the random
 * parts each, within a time bound (BUDGET_MS). The seed (CJ_TEST_POWERLOSS_SEED replays it) is printed; a
 * failing image is kept in the case's scratch directory with the trace and
 * base it came from (the trace itself depends on timing: the seed replays
 * the draws on that trace: see the case replay, below); a failing second
 * generation keeps its recovery's directory (gen2-<point>: its trace, base,
 * store and kept) and says its own seed, and replays likewise. Images are checked
 * in this process (CJ_TEST_POWERLOSS_FORK=1: each in a child of its own,
 * for images that may crash LMDB). The workloads' processes are forked
 * from this program, so the recorder is in each of them.
 *
 * What this proves: under the model, on every image tried, nothing
 * acknowledged is lost and nothing is corrupt, for the workloads here. What
 * it does not: it models the disk, it does not cut power to a real one
 * (a disk that lies about its flushes, or a file system that loses a
 * flushed write, is out of it); the directory's own entries are taken as
 * durable (the files exist before the trace); mapped files are taken page
 * by page from two moments only; and only the traces this run happened to
 * produce are tried.
 *
 * It can fail: in fault-injection builds CJ_TEST_SKIP_META_FLUSH=1 makes
 * the engine acknowledge a commit after its data flush alone (no flush after
 * its meta page), and CJ_TEST_DATA_NOSYNC=1 opens LMDB without its data
 * flush before the meta page (MDB_NOSYNC, the flush after it kept); and
 * CJ_TEST_POWERLOSS_OPEN_FAULT=rewrite makes the recoveries' opens rewrite
 * data.mdb in place, unflushed until the end (CJ_TEST_OPEN_REWRITE in
 * src/engine/lmdb.c), which the first images cannot show and the second
 * ones do (its images are checked in children: a truncated data.mdb can
 * crash LMDB). With
 * CJ_TEST_POWERLOSS_SYNC=relaxed the workloads run in CJ_SYNC_RELAXED and
 * the case reports what the images show instead of failing: there, LMDB's
 * MDB_NOSYNC lets a meta page reach the disk before the pages it points
 * to, and images lose acknowledged calls, fail to open, fail cj_verify()
 * or crash the opening process inside LMDB (README: "Crash").
 */
#include "cj_int.h" /* the hold points (fault-injection builds) */
#include "powerloss.h"
#include "testutil.h"

#include <lmdb.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAIT_MS 120000 /* a workload's processes: generous under load */
#define TYPE "pl"
#define MAX_POINTS 70 /* crash points per case */
#define DRAWS 3       /* images per crash point */
/* the images' time per case, both generations', at most (times
 * CJ_TEST_TIMEOUT_MULTIPLIER; CJ_TEST_POWERLOSS_BUDGET_MS sets it): about
 * 25 s are needed at a load of 8 on 2 cores */
#define BUDGET_MS 60000
/* second power losses: the first SECOND_IMAGES crash points' first images
 * (when sound) are recovered, and SECOND_POINTS crash points of each
 * recovery's trace x SECOND_DRAWS images checked, within 1/SECOND_SHARE of
 * the time bound each */
#define SECOND_IMAGES 3
#define SECOND_POINTS 14
#define SECOND_DRAWS 2
#define SECOND_SHARE 8

/* The map size every open of the case asks for (0: the default): the
 * images are opened as the workload's processes opened the store. */
static size_t map_size;

static int relaxed(void) {
	const char *s = getenv("CJ_TEST_POWERLOSS_SYNC");
	return s && strcmp(s, "relaxed") == 0;
}

static cj_db *open_mode(void) {
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	o.sync = relaxed() ? CJ_SYNC_RELAXED : CJ_SYNC_FULL;
	o.map_size = map_size;
	return t_open_opts(&o);
}

static void path_in(char *out, size_t cap, const char *name) {
	snprintf(out, cap, "%s/%s", t_dir(), name);
}

/* Copies the regular files of directory from into a new directory to. */
static void copy_dir(const char *from, const char *to) {
	CHECK(mkdir(to, 0700) == 0);
	DIR *d = opendir(from);
	CHECK(d != NULL);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.') continue;
		char a[8192], b[8192];
		snprintf(a, sizeof a, "%s/%s", from, de->d_name);
		snprintf(b, sizeof b, "%s/%s", to, de->d_name);
		int in = open(a, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		int out = open(b, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		CHECK(in >= 0 && out >= 0);
		char buf[65536];
		ssize_t n;
		while ((n = read(in, buf, sizeof buf)) > 0) CHECK(write(out, buf, (size_t)n) == n);
		CHECK(n == 0);
		close(in);
		close(out);
	}
	closedir(d);
}

static void empty_dir(const char *dir) {
	DIR *d = opendir(dir);
	if (!d) return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.') continue;
		char p[8192];
		if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p) continue;
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

/* ---- checking one image --------------------------------------------------------- */

struct check {
	const struct pl_trace *t;
	size_t k;
	char dir[4096];
	const char *kept; /* second generation: what the first image held (kept_text) */
};

static int report_problem(const char *problem, void *arg) {
	(void)arg;
	fprintf(stderr, "    problem: %s\n", problem);
	return 0;
}

/* The job's state (0: missing) and data. */
static cj_state job_state(cj_db *db, const char *id, char **data) {
	cj_state s = 0;
	*data = NULL;
	int rc = cj_get_job_state(db, NULL, TYPE, id, &s);
	if (rc == CJ_NOT_FOUND) return 0;
	CHECK_OK(rc);
	CHECK_OK(cj_get_job_data(db, NULL, TYPE, id, data));
	return s;
}

/* 1 if the caller's key is in db. */
static int key_there(cj_db *db, const char *key) {
	cj_tx *tx;
	void *v = NULL;
	size_t vl = 0;
	CHECK_OK(cj_tx_begin(db, &tx));
	int rc = cj_tx_get(tx, key, strlen(key), &v, &vl);
	CHECK(rc == CJ_OK || rc == CJ_NOT_FOUND);
	cj_free(v);
	cj_tx_abort(tx);
	return rc == CJ_OK;
}

/* An acknowledged call op on job id is in the image, in at least the state
 * it acknowledged: NULL, or what is wrong. */
static const char *ack_holds(cj_db *db, char op, const char *id, char *why, size_t cap) {
	char *data, want[128];
	cj_state s = job_state(db, id, &data);
	int ok = 1;
	switch (op) {
	case 'A': ok = s != 0; break;                    /* added */
	case 'R': ok = s == CJ_RUNNING || s == CJ_FINISHED || s == CJ_DEAD; break;
	case 'U':                                          /* updated */
		snprintf(want, sizeof want, "{\"u\":\"%s\"}", id);
		ok = s == CJ_FINISHED || (s == CJ_RUNNING && json_same(data, want));
		break;
	case 'F':                                          /* finished */
		snprintf(want, sizeof want, "{\"done\":\"%s\"}", id);
		ok = s == CJ_FINISHED && json_same(data, want);
		break;
	case 'X': ok = s == CJ_DEAD; break;              /* failed, for good */
	default: ok = 0;
	}
	if (!ok)
		snprintf(why, cap, "acknowledged '%c' of job %s, but it is %s (data %s)", op, id,
		         s ? cj_state_name(s) : "missing", data ? data : "-");
	cj_free(data);
	return ok ? NULL : why;
}

/* A transaction declared by "G <n> <id> <id> ... <key>" is in the image
 * whole or not at all, and whole if acknowledged ("C <n>"). */
static const char *tx_holds(cj_db *db, const char *decl, int acked, char *why, size_t cap) {
	char buf[256], *save = NULL;
	snprintf(buf, sizeof buf, "%s", decl);
	char *tok = strtok_r(buf, " ", &save); /* G */
	tok = strtok_r(NULL, " ", &save);      /* n */
	int have = 0, total = 0;
	for (tok = strtok_r(NULL, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		total++;
		if (tok[0] == 'k') {
			have += key_there(db, tok);
		} else {
			char *data;
			have += job_state(db, tok, &data) != 0;
			cj_free(data);
		}
	}
	if ((have == 0 && !acked) || have == total) return NULL;
	snprintf(why, cap, "transaction \"%s\"%s: %d of its %d writes are there", decl,
	         acked ? " (acknowledged)" : "", have, total);
	return why;
}

/* One line of kept_text(): what db holds of name (a job, or a caller's key
 * when it starts with k). */
static void kept_line(cj_db *db, const char *name, char *out, size_t cap) {
	if (name[0] == 'k') {
		snprintf(out, cap, "%s %s\n", name, key_there(db, name) ? "there" : "missing");
		return;
	}
	char *data;
	cj_state s = job_state(db, name, &data);
	size_t n = data ? strlen(data) : 0;
	if (n <= 100) {
		snprintf(out, cap, "%s %s %s\n", name, s ? cj_state_name(s) : "missing",
		         data ? data : "-");
	} else { /* a line holds any data: its length and an FNV-1a hash */
		uint64_t h = 14695981039346656037u;
		for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)data[i]) * 1099511628211u;
		snprintf(out, cap, "%s %s (%zu bytes, hash %016llx)\n", name,
		         s ? cj_state_name(s) : "missing", n, (unsigned long long)h);
	}
	cj_free(data);
}

/* What db holds of every job and key the marks of t name, acknowledged or
 * not: a line each (malloc'd text). */
static char *kept_text(cj_db *db, const struct pl_trace *t) {
	size_t cap = 4096, len = 0;
	char *out = malloc(cap);
	CHECK(out != NULL);
	out[0] = 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct pl_rec *r = &t->r[i];
		if (r->kind != PL_MARK || r->file[0] == 'C' || strlen(r->file) <= 2) continue;
		char buf[256], *save = NULL;
		snprintf(buf, sizeof buf, "%s", r->file + 2);
		char *tok = strtok_r(buf, " ", &save);
		if (r->file[0] == 'G') tok = strtok_r(NULL, " ", &save); /* its n */
		for (; tok; tok = strtok_r(NULL, " ", &save)) {
			char line[512];
			kept_line(db, tok, line, sizeof line);
			size_t l = strlen(line);
			if (len + l + 1 > cap) {
				cap = (len + l + 1) * 2;
				out = realloc(out, cap);
				CHECK(out != NULL);
			}
			memcpy(out + len, line, l + 1);
			len += l;
		}
	}
	return out;
}

/* Each line of kept holds in db: NULL, or what is wrong. */
static const char *kept_holds(cj_db *db, const char *kept, char *why, size_t cap) {
	for (const char *at = kept; *at;) {
		const char *nl = strchr(at, '\n'), *sp = strchr(at, ' ');
		if (!nl || !sp || sp > nl) break;
		char name[128], line[512];
		snprintf(name, sizeof name, "%.*s", (int)(sp - at), at);
		kept_line(db, name, line, sizeof line);
		if (strncmp(line, at, (size_t)(nl - at) + 1) != 0) {
			snprintf(why, cap, "the first image held \"%.*s\", the second holds \"%.*s\"",
			         (int)(nl - at), at, (int)strcspn(line, "\n"), line);
			return why;
		}
		at = nl + 1;
	}
	return NULL;
}

/* What is wrong with an image (exit codes of a checking child: apart from
 * the sanitizers' 1 and a failed CHECK's 99). CK_KEPT: a second-generation
 * image lost what its first-generation image held; CK_RECOVER: the recovery
 * (an open of a first-generation image and commits after it) failed. */
enum { CK_OPEN = 11, CK_VERIFY = 12, CK_LOST = 13, CK_KEPT = 14, CK_RECOVER = 15 };
#define CK_KINDS 6 /* by_kind[]: 0 = anything else (a crash) */

/* Opens the image and checks it: 0 when sound, else a CK_* code. */
static int check_image(void *p) {
	struct check *c = p;
	char url[4200], why[512];
	snprintf(url, sizeof url, "lmdb:%s", c->dir);
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	o.map_size = map_size;
	cj_db *db = NULL;
	int rc = cj_open(url, &o, &db);
	if (rc != CJ_OK) {
		fprintf(stderr, "    the image does not open: %s (%s)\n", cj_err_name(rc),
		        cj_last_error());
		return CK_OPEN;
	}
	uint64_t n = 0;
	rc = cj_verify(db, report_problem, NULL, &n);
	if (rc != CJ_OK || n) {
		fprintf(stderr, "    cj_verify = %s, %llu problems\n", cj_err_name(rc),
		        (unsigned long long)n);
		cj_close(db);
		return CK_VERIFY;
	}
	int bad = 0;
	for (size_t i = 0; i < c->t->n && !bad; i++) {
		const struct pl_rec *r = &c->t->r[i];
		if (r->kind != PL_MARK) continue;
		const char *w = NULL;
		if (r->file[0] == 'G') {
			/* acknowledged when its "C <n>" is in the prefix */
			int num = atoi(r->file + 2), acked = 0;
			for (size_t j = i + 1; j < c->k && j < c->t->n; j++)
				if (c->t->r[j].kind == PL_MARK && c->t->r[j].file[0] == 'C' &&
				    atoi(c->t->r[j].file + 2) == num)
					acked = 1;
			w = tx_holds(db, r->file, acked, why, sizeof why);
		} else if (i < c->k && r->file[0] != 'C' && strlen(r->file) > 2) {
			/* the last acknowledgement of each job is the one to hold */
			const char *id = r->file + 2;
			int later = 0;
			for (size_t j = i + 1; j < c->k && j < c->t->n && !later; j++)
				later = c->t->r[j].kind == PL_MARK && c->t->r[j].file[0] != 'G' &&
				        strcmp(c->t->r[j].file + 2, id) == 0;
			if (!later) w = ack_holds(db, r->file[0], id, why, sizeof why);
		}
		if (w) {
			fprintf(stderr, "    %s\n", w);
			bad = CK_LOST;
		}
	}
	const char *w = bad || !c->kept ? NULL : kept_holds(db, c->kept, why, sizeof why);
	if (w) {
		fprintf(stderr, "    %s\n", w);
		bad = CK_KEPT;
	}
	cj_close(db);
	return bad;
}

/* ---- the images of a trace --------------------------------------------------------- */

static uint64_t seed_of(void) {
	const char *s = getenv("CJ_TEST_POWERLOSS_SEED");
	if (s && *s) return strtoull(s, NULL, 0);
	return (uint64_t)t_now_ms() * 6364136223846793005ull ^ (uint64_t)getpid();
}

static int cmp_size(const void *a, const void *b) {
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

/* The writes of data.mdb that a relaxed process (one that marked "R": case
 * relaxed_void_beside_durable) started while the log held no checkpoint
 * (after a void spoiled both slots, before a checkpoint wrote one: the
 * log's writes of 4 and of 40 bytes at a slot's start, lmdb_log.c): its
 * commits then write no record, and only a later flush of data.mdb keeps
 * them whole. bare[i] is 1 for such a write's start record. Its writes
 * while the log holds a checkpoint need nothing: a recovery restores the
 * checkpoint, whose pages the pin kept, and replays the records. */
#define PL_SLOT0 4096u
#define PL_SLOT1 (4096u + 4096u + 2u * 65536u)

static void relaxed_bare(const struct pl_trace *t, char *bare) {
	int spoiled[2] = {0, 0};
	for (size_t i = 0; i < t->n; i++) {
		const struct pl_rec *r = &t->r[i];
		bare[i] = 0;
		if (r->kind == PL_WRITE && strcmp(r->file, "log") == 0 &&
		    (r->off == PL_SLOT0 || r->off == PL_SLOT1) && (r->len == 4 || r->len == 40))
			spoiled[r->off == PL_SLOT1] = r->len == 4;
		if (r->kind != PL_WRITE_START || strcmp(r->file, "data.mdb") != 0 ||
		    !(spoiled[0] && spoiled[1]))
			continue;
		for (size_t j = 0; j < t->n && !bare[i]; j++)
			bare[i] = t->r[j].kind == PL_MARK && t->r[j].pid == r->pid &&
			          strcmp(t->r[j].file, "R") == 0;
	}
}

/* Whether data.mdb, after the first k records of t, may hold a bare write
 * (relaxed_bare) that no flush of data.mdb covers (one that started after
 * it returned and ended within the prefix). Such an image is what a power
 * loss leaves LMDB with MDB_NOSYNC (a meta page on disk before its pages:
 * the relaxed mode promises nothing there, couchjobs.h), so it is not
 * tried; every other one must be sound. */
static int relaxed_exposed(const struct pl_trace *t, const char *bare, size_t k) {
	for (size_t i = 0; i < k; i++) {
		if (!bare[i]) continue;
		const struct pl_rec *w = &t->r[i];
		if (!w->end || w->end >= k) return 1; /* in flight */
		int covered = 0;
		for (size_t s = w->end + 1; s < k && !covered; s++)
			covered = t->r[s].kind == PL_SYNC_START && strcmp(t->r[s].file, "data.mdb") == 0 &&
			          t->r[s].end && t->r[s].end < k;
		if (!covered) return 1;
	}
	return 0;
}

/* Crash points of t: before each flush's start, after its end, after
 * each acknowledgement and after each start of a write of data.mdb (in
 * flight), the whole trace, random ones; at most max, sampled; none where
 * a relaxed process's writes are exposed (relaxed_exposed). */
static size_t crash_points(const struct pl_trace *t, pl_rng *g, size_t *pt, size_t max) {
	size_t n = 0, cap = t->n + 1 + 16;
	size_t *all = calloc(cap, sizeof *all);
	CHECK(all != NULL);
	for (size_t i = 0; i < t->n; i++)
		if (t->r[i].kind == PL_SYNC_START)
			all[n++] = i; /* every write before it made, none flushed yet */
		else if (t->r[i].kind == PL_SYNC_END ||
		         (t->r[i].kind == PL_MARK && t->r[i].file[0] != 'G') ||
		         (t->r[i].kind == PL_WRITE_START && t->r[i].end &&
		          (strcmp(t->r[i].file, "data.mdb") == 0 || strcmp(t->r[i].file, "log") == 0)))
			all[n++] = i + 1; /* a write of data.mdb or the log in flight: torn, maybe */
	all[n++] = t->n;
	for (int i = 0; i < 16; i++) all[n++] = (size_t)(pl_rand(g) % (t->n + 1));
	int mixed = 0;
	for (size_t i = 0; i < t->n && !mixed; i++)
		mixed = t->r[i].kind == PL_MARK && strcmp(t->r[i].file, "R") == 0;
	size_t kept = 0, was = n;
	if (mixed) {
		char *bare = calloc(t->n + 1, 1);
		CHECK(bare != NULL);
		relaxed_bare(t, bare);
		for (size_t i = 0; i < n; i++)
			if (!relaxed_exposed(t, bare, all[i])) all[kept++] = all[i];
		free(bare);
		n = kept;
		note("  %zu of %zu crash points with a relaxed process's writes unflushed: not "
		     "tried\n", was - n, was);
		CHECK(n > 0);
	}
	/* sample down, keeping the order; with a relaxed process, the points
	 * right before each flush of data.mdb stay (a void's comes after it
	 * spoiled the log's slots: what the case is about) */
	size_t keep = 0;
	for (size_t i = 0; i < n && mixed; i++)
		keep += all[i] < t->n && t->r[all[i]].kind == PL_SYNC_START &&
		        strcmp(t->r[all[i]].file, "data.mdb") == 0;
	while (n > max) {
		size_t drop = (size_t)(pl_rand(g) % n);
		if (keep && keep <= max / 2 && all[drop] < t->n &&
		    t->r[all[drop]].kind == PL_SYNC_START && strcmp(t->r[all[drop]].file, "data.mdb") == 0)
			continue;
		all[drop] = all[--n];
	}
	qsort(all, n, sizeof *all, cmp_size);
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (u == 0 || all[i] != pt[u - 1]) pt[u++] = all[i];
	free(all);
	return u;
}

/* What the images of a run showed. */
struct tally {
	size_t tried;
	int failed;
	int by_kind[CK_KINDS]; /* by CK_* - CK_OPEN + 1; 0: a crash */
	int recoveries;        /* second generation: recoveries run */
};

static void tally_add(struct tally *to, const struct tally *from) {
	to->tried += from->tried;
	to->failed += from->failed;
	for (int i = 0; i < CK_KINDS; i++) to->by_kind[i] += from->by_kind[i];
	to->recoveries += from->recoveries;
}

static void tally_note(const char *what, const struct tally *ty) {
	note("  %s: %zu images, %d unsound (%d not opening, %d not verified, %d losing an "
	     "acknowledged call, %d losing what the first image held, %d failing the "
	     "recovery, %d crashing the check)\n", what, ty->tried, ty->failed, ty->by_kind[1],
	     ty->by_kind[2], ty->by_kind[3], ty->by_kind[4], ty->by_kind[5], ty->by_kind[0]);
}

static void tally_one(struct tally *ty, int rc) {
	ty->by_kind[rc >= CK_OPEN && rc <= CK_RECOVER ? rc - CK_OPEN + 1 : 0]++;
	ty->failed++;
}

/* Removes a directory and what is in it (two levels: a recovery's). */
static void rm_tree(const char *dir) {
	DIR *d = opendir(dir);
	if (!d) return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.') continue;
		char p[8192];
		if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p) continue;
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) empty_dir(p);
		else unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static int forked_checks(void) {
	/* relaxed, or after an unsafe recovery, an image may crash LMDB
	 * (CJ_TEST_POWERLOSS_FORK=1 also) */
	const char *fk = getenv("CJ_TEST_POWERLOSS_FORK"), *f = getenv("CJ_TEST_POWERLOSS_OPEN_FAULT");
	return relaxed() || (fk && strcmp(fk, "1") == 0) || (f && *f);
}

static void check_trace(const char *from, int level, uint64_t seed, int64_t budget,
                        struct tally *ty, struct tally *second);
static void record_end(void);

/* ---- a second power loss: during and after the recovery of an image ---------------- */

/* The recovery: the first open of a first-generation image, in dir/store,
 * recorded (as the workloads are), which writes what an open writes after a
 * crash; what the image holds of the first trace's jobs and keys, into
 * dir/kept; then commits of its own, acknowledged by markers as the
 * workloads' are. CJ_TEST_POWERLOSS_OPEN_FAULT=rewrite (fault-injection
 * builds) makes this open rewrite data.mdb unsafely (lmdb.c,
 * CJ_TEST_OPEN_REWRITE): only here, not in the workloads, whose processes
 * would rewrite it under each other's commits. */
struct recovery {
	const struct pl_trace *t; /* the first trace */
	char dir[4200];
};

static int recover(void *p) {
	struct recovery *r = p;
	char url[4300], path[4300];
	snprintf(url, sizeof url, "lmdb:%s/store", r->dir);
	const char *f = getenv("CJ_TEST_POWERLOSS_OPEN_FAULT");
	if (f && strcmp(f, "rewrite") == 0) setenv("CJ_TEST_OPEN_REWRITE", "1", 1);
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	o.sync = relaxed() ? CJ_SYNC_RELAXED : CJ_SYNC_FULL;
	o.map_size = map_size;
	cj_db *db = NULL;
	int rc = cj_open(url, &o, &db);
	unsetenv("CJ_TEST_OPEN_REWRITE");
	if (rc != CJ_OK) {
		fprintf(stderr, "    the recovery's open fails: %s (%s)\n", cj_err_name(rc),
		        cj_last_error());
		return CK_RECOVER;
	}
	char *kept = kept_text(db, r->t);
	snprintf(path, sizeof path, "%s/kept", r->dir);
	FILE *kf = fopen(path, "wx");
	CHECK(kf != NULL);
	CHECK(fputs(kept, kf) >= 0);
	CHECK(fclose(kf) == 0);
	free(kept);
	/* two calls, and a transaction of several between them */
	const char *ids[2] = {"r0", "r1"};
	for (int i = 0; i < 2 && rc == CJ_OK; i++) {
		if (i == 1) {
			pl_mark("G 90 y0 y1 k90");
			/* run again while the map grows (a small map: CJ_CONFLICT) */
			for (int tries = 0; tries < 20; tries++) {
				cj_tx *tx;
				CHECK_OK(cj_tx_begin(db, &tx));
				if ((rc = cj_add(db, tx, TYPE, "y0", "{\"tx\":1}", 0)) == CJ_OK &&
				    (rc = cj_add(db, tx, TYPE, "y1", "{\"tx\":1}", 0)) == CJ_OK &&
				    (rc = cj_tx_put(tx, "k90", 3, "v", 1)) == CJ_OK)
					rc = cj_tx_commit(tx);
				else
					cj_tx_abort(tx);
				if (rc != CJ_CONFLICT) break;
			}
			if (rc == CJ_OK) pl_mark("C 90");
		}
		if (rc == CJ_OK && (rc = cj_add(db, NULL, TYPE, ids[i], NULL, 0)) == CJ_OK)
			pl_mark("A %s", ids[i]);
	}
	if (rc != CJ_OK)
		fprintf(stderr, "    a commit after the recovery fails: %s (%s)\n", cj_err_name(rc),
		        cj_last_error());
	cj_close(db);
	return rc == CJ_OK ? 0 : CK_RECOVER;
}

/* Recovers the first-generation image copied into dir (base and store:
 * two copies of it), recording, then builds and checks the images of that
 * second trace (check_trace(), level 2) into ty; dir is removed when they
 * are all sound. */
static void second_loss(const struct pl_trace *t, const char *dir, uint64_t seed,
                        int64_t budget, struct tally *ty) {
	struct recovery r = {t, ""};
	char store[4300], trace[4300];
	snprintf(r.dir, sizeof r.dir, "%s", dir);
	snprintf(store, sizeof store, "%s/store", dir);
	snprintf(trace, sizeof trace, "%s/trace", dir);
	setenv(PL_ENV_DIR, store, 1);
	setenv(PL_ENV_TRACE, trace, 1);
	pl_rec_reload();
	int rc = forked_checks() ? t_join(t_spawn(recover, &r), WAIT_MS) : recover(&r);
	record_end();
	ty->recoveries++;
	struct tally mine = {0};
	if (rc != 0) {
		tally_one(&mine, rc);
		fprintf(stderr, "  recovery in %s: exit %d\n", dir, rc);
	} else {
		check_trace(dir, 2, seed, budget, &mine, NULL);
	}
	if (mine.failed == 0) rm_tree(dir);
	else
		fprintf(stderr, "  kept %s: CJ_TEST_POWERLOSS_REPLAY=%s CJ_TEST_POWERLOSS_SEED=%llu "
		        "replays its images\n", dir, dir, (unsigned long long)seed);
	tally_add(ty, &mine);
}

/* ---- the images of a trace ----------------------------------------------------------- */

/* Builds and checks the images of the trace in directory from (its trace,
 * base and store; a recovery's also its kept), in the case's scratch
 * directory, into ty. Level 1: the first generation; the first
 * SECOND_IMAGES points' first draws, when sound, are recovered and lose
 * power again (second_loss(), into second). */
static void check_trace(const char *from, int level, uint64_t seed, int64_t budget,
                        struct tally *ty, struct tally *second) {
	char trace[4200], base[4200], store[4200], kept[4200], img[4096], err[256];
	snprintf(trace, sizeof trace, "%s/trace", from);
	snprintf(base, sizeof base, "%s/base", from);
	snprintf(store, sizeof store, "%s/store", from);
	snprintf(kept, sizeof kept, "%s/kept", from);
	struct pl_trace t;
	if (pl_trace_read(trace, &t, err, sizeof err) != 0) t_fail(__FILE__, __LINE__, "%s", err);
	char *kept_txt = NULL;
	size_t kept_len = 0;
	int kfd = open(kept, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (kfd >= 0) { /* a recovery's: its images are of the second generation */
		char buf[65536];
		ssize_t n;
		while ((n = read(kfd, buf, sizeof buf)) > 0) {
			kept_txt = realloc(kept_txt, kept_len + (size_t)n + 1);
			CHECK(kept_txt != NULL);
			memcpy(kept_txt + kept_len, buf, (size_t)n);
			kept_len += (size_t)n;
			kept_txt[kept_len] = 0;
		}
		close(kfd);
		CHECK(kept_txt != NULL);
		level = 2;
	}
	const char *prefix = "";
	char pfx[64];
	if (level == 2 && second == NULL && strcmp(from, t_dir()) != 0) {
		/* a recovery's images beside the first generation's */
		const char *b = strrchr(from, '/');
		snprintf(pfx, sizeof pfx, "%s-", b ? b + 1 : from);
		prefix = pfx;
	}
	pl_rng g = {seed};
	size_t max = level == 1 ? MAX_POINTS : SECOND_POINTS;
	size_t pts[MAX_POINTS], writes = 0, syncs = 0, marks = 0;
	for (size_t i = 0; i < t.n; i++) {
		writes += t.r[i].kind == PL_WRITE &&
		          (strcmp(t.r[i].file, "data.mdb") == 0 || strcmp(t.r[i].file, "log") == 0);
		syncs += t.r[i].kind == PL_SYNC_END;
		marks += t.r[i].kind == PL_MARK;
	}
	CHECK(marks > 0);
	CHECK(relaxed() || syncs > 0);
	struct pl_dir bd, ed;
	if (pl_dir_load(base, &bd) != 0 || pl_dir_load(store, &ed) != 0)
		t_fail(__FILE__, __LINE__, "reading %s and %s: %s", base, store, strerror(errno));
	size_t np = crash_points(&t, &g, pts, max);
	/* tried in a random order: a run whose time bound is spent has still
	 * tried points from the whole trace, not only from its start */
	for (size_t i = np; i > 1; i--) {
		size_t j = (size_t)(pl_rand(&g) % i), v = pts[i - 1];
		pts[i - 1] = pts[j];
		pts[j] = v;
	}
	int draws = level == 1 ? DRAWS : SECOND_DRAWS;
	if (level == 1 || second == NULL)
		note("  seed %llu: %zu records (%zu data writes, %zu flushes, %zu marks), "
		     "%zu crash points x %d draws%s\n", (unsigned long long)seed, t.n, writes, syncs,
		     marks, np, draws, level == 2 ? " (second generation)" : "");
	int forked = forked_checks();
	int64_t t0 = t_now_ms(), build_ms = 0;
	size_t tried = 0;
	/* a bound on the time, whatever the machine's load: the points left when
	 * it is spent are said, not tried */
	for (size_t p = 0; p < np && t_now_ms() - t0 < budget; p++) {
		for (int d = 0; d < draws; d++, tried++) {
			snprintf(img, sizeof img, "%s/%simg-%zu-%d", t_dir(), prefix, pts[p], d);
			CHECK(mkdir(img, 0700) == 0);
			int64_t b0 = t_now_ms();
			if (pl_image(&t, pts[p], &bd, &ed, img, &g) != 0)
				t_fail(__FILE__, __LINE__, "image at %zu: %s", pts[p], strerror(errno));
			build_ms += t_now_ms() - b0;
			/* the recovery's copies, before the check's open recovers it */
			char rdir[4200];
			int again = level == 1 && second && p < SECOND_IMAGES && d == 0;
			if (again) {
				char cb[4300], cs[4300];
				snprintf(rdir, sizeof rdir, "%s/gen2-%zu", t_dir(), pts[p]);
				snprintf(cb, sizeof cb, "%s/base", rdir);
				snprintf(cs, sizeof cs, "%s/store", rdir);
				CHECK(mkdir(rdir, 0700) == 0);
				copy_dir(img, cb);
				copy_dir(img, cs);
			}
			struct check c = {&t, pts[p], "", kept_txt};
			snprintf(c.dir, sizeof c.dir, "%s", img);
			/* in this process, so that its leaks are checked at the end of the
			 * case and images stay cheap; a crash on one leaves it in the
			 * scratch directory (each one that passes is removed) */
			int rc = forked ? t_join(t_spawn(check_image, &c), WAIT_MS) : check_image(&c);
			uint64_t seed2 = again ? pl_rand(&g) : 0;
			if (rc == 0) {
				empty_dir(img);
				if (again) second_loss(&t, rdir, seed2, budget / SECOND_SHARE, second);
				continue;
			}
			if (again) rm_tree(rdir);
			tally_one(ty, rc);
			if (ty->failed <= 3)
				fprintf(stderr, "  image %s (crash point %zu of %zu, draw %d, seed %llu): "
				        "check exit %d\n", img, pts[p], t.n, d, (unsigned long long)seed, rc);
			else
				empty_dir(img);
		}
	}
	ty->tried += tried;
	if (tried < np * (size_t)draws)
		note("  %sthe time bound (%lld ms) was spent: %zu of %zu images tried\n",
		     level == 2 ? "second generation: " : "", (long long)budget, tried,
		     np * (size_t)draws);
	if (level == 1)
		note("  %zu images in %lld ms (%lld building them)\n", tried,
		     (long long)(t_now_ms() - t0), (long long)build_ms);
	free(kept_txt);
	pl_trace_free(&t);
	pl_dir_free(&bd);
	pl_dir_free(&ed);
}

/* Builds and checks the images of the trace in directory from, and of the
 * second power losses of some; fails the case if one is unsound (or,
 * relaxed, reports what they show). */
static void check_images(const char *from) {
	const char *bs = getenv("CJ_TEST_POWERLOSS_BUDGET_MS");
	int64_t budget = t_bound_ms(bs && *bs ? atoll(bs) : BUDGET_MS);
	uint64_t seed = seed_of();
	struct tally first = {0}, second = {0};
	char kept[4200];
	snprintf(kept, sizeof kept, "%s/kept", from);
	int replayed = access(kept, F_OK) == 0; /* a recovery's, kept */
	check_trace(from, 1, seed, budget, &first, &second);
	tally_note(replayed ? "second power loss (a recovery's trace, again)" : "first power loss",
	           &first);
	if (second.recoveries) {
		note("  %d recoveries of images, each losing power again\n", second.recoveries);
		tally_note("second power loss (of recovered images)", &second);
	}
	int failed = first.failed + second.failed;
	if (failed && !relaxed())
		t_fail(__FILE__, __LINE__, "%d of %zu power-loss images unsound (seed %llu)", failed,
		       first.tried + second.tried, (unsigned long long)seed);
}

/* ---- running a workload under the recorder -------------------------------------- */

/* Makes the store, copies it as base, and starts recording into trace. */
static void record_begin(void) {
	char base[4096], store[4096], trace[4096];
	cj_db *db = open_mode();
	CHECK_OK(cj_set_type_timeout(db, TYPE, 3600));
	/* a failed job is dead at once: its acknowledged state is exact */
	cj_retry_policy pol = CJ_RETRY_POLICY_INIT;
	pol.max_attempts = 1;
	CHECK_OK(cj_set_type_policy(db, TYPE, &pol));
	cj_close(db);
	path_in(store, sizeof store, "store");
	path_in(base, sizeof base, "base");
	path_in(trace, sizeof trace, "trace");
	copy_dir(store, base);
	setenv(PL_ENV_DIR, store, 1);
	setenv(PL_ENV_TRACE, trace, 1);
	pl_rec_reload(); /* the processes forked from now on record */
}

static void record_end(void) {
	unsetenv(PL_ENV_DIR);
	unsetenv(PL_ENV_TRACE);
	pl_rec_reload();
}

/* ---- (a) processes adding durable jobs one call at a time ------------------------- */

#define ADD_PROCS 3
#define ADD_JOBS 12

struct adder {
	t_gate go;
	int proc;
};

static int adder(void *p) {
	struct adder *a = p;
	cj_db *db = open_mode();
	if (t_gate_wait(&a->go, WAIT_MS) != 0) return 98;
	for (int i = 0; i < ADD_JOBS; i++) {
		char id[32];
		snprintf(id, sizeof id, "a%d-%02d", a->proc, i);
		CHECK_OK(cj_add(db, NULL, TYPE, id, NULL, 0));
		pl_mark("A %s", id);
	}
	/* what the trace exercised: flushes left to others, calls combined */
	cj_stats st;
	CHECK_OK(cj_db_stats(db, &st));
	note("  adder %d: %llu shared flushes, %llu calls of other processes combined\n",
	     a->proc, (unsigned long long)st.shared_flushes,
	     (unsigned long long)st.combined_processes);
	cj_close(db);
	return 0;
}

/* Starts n processes running fn (each given its struct adder), lets them
 * go at once, and waits for each to end well. */
static void run_adders(int n, int (*fn)(void *)) {
	struct adder a[8];
	int pid[8];
	CHECK(n <= 8);
	t_gate go;
	t_gate_init(&go);
	for (int i = 0; i < n; i++) {
		a[i].go = go;
		a[i].proc = i;
		pid[i] = t_spawn(fn, &a[i]);
	}
	for (int i = 0; i < n; i++) t_gate_open(&go);
	for (int i = 0; i < n; i++) check_exit(pid[i], WAIT_MS, 0);
	t_gate_close(&go);
}

TEST(adders) {
	SKIP_UNLESS_LMDB();
	record_begin();
	run_adders(ADD_PROCS, adder);
	record_end();
	check_images(t_dir());
}

/* ---- (a2) the process pinning the log's checkpoint killed ---------------------------
 *
 * The first commit after record_begin() makes a checkpoint and pins it
 * (src/engine/lmdb.c, "the log"): that process is killed (-9) while it has
 * the store open, and new processes, whose opens clear its reader slot
 * (mdb_reader_check), add jobs. Each must find the pin's holder dead and
 * make a checkpoint of its own before it commits; else LMDB may reuse the
 * pages of the checkpoint a recovery would restore. */

static int pin_holder(void *p) {
	t_gate *held = p;
	cj_db *db = open_mode();
	CHECK_OK(cj_add(db, NULL, TYPE, "h0", NULL, 0));
	pl_mark("A h0");
	t_gate_open(held);
	for (;;) pause(); /* killed here, the store open */
	return 0;
}

TEST(pin_holder_killed) {
	SKIP_UNLESS_LMDB();
	record_begin();
	/* open here throughout: the adders are not alone (an open alone makes
	 * every later commit checkpoint first anyway) */
	cj_db *db = open_mode();
	t_gate held;
	t_gate_init(&held);
	int hp = spawn_ready(pin_holder, &held, &held, WAIT_MS);
	CHECK(kill(hp, SIGKILL) == 0);
	CHECK(t_join(hp, WAIT_MS) == 128 + SIGKILL);
	t_gate_close(&held);
	run_adders(ADD_PROCS - 1, adder);
	cj_close(db);
	record_end();
	check_images(t_dir());
}

/* ---- (a3) a writer killed holding LMDB's writer lock, after the pin's holder ---------
 *
 * The pin's holder is killed (-9) with the store open, and then a writer
 * inside its own transaction (cj_tx_begin() holds LMDB's writer lock), with
 * every other process already open: no open clears the dead holder's reader
 * slot. LMDB's robust writer mutex does, in the next writer's
 * mdb_txn_begin: it gets EOWNERDEAD and runs its own reader-table repair
 * (mdb_mutex_failed, then mdb_reader_check0) before the engine's code runs.
 * That writer must still find the pin's holder dead and make a checkpoint
 * of its own before its commit writes a page (with the fault hook
 * CJ_TEST_LOG_TRUST_PIN=1, which takes the dead holder for a live one,
 * images do not open: the repair freed the checkpoint's pages). */

struct ready_adder {
	struct adder a;
	t_gate ready; /* opened once the store is open */
};

static int ready_adder(void *p) {
	struct ready_adder *r = p;
	cj_db *db = open_mode();
	t_gate_open(&r->ready);
	if (t_gate_wait(&r->a.go, WAIT_MS) != 0) return 98;
	for (int i = 0; i < ADD_JOBS; i++) {
		char id[32];
		snprintf(id, sizeof id, "a%d-%02d", r->a.proc, i);
		CHECK_OK(cj_add(db, NULL, TYPE, id, NULL, 0));
		pl_mark("A %s", id);
	}
	cj_close(db);
	return 0;
}

struct tx_holder {
	t_gate ready, start, inside;
};

static int tx_holder(void *p) {
	struct tx_holder *h = p;
	cj_db *db = open_mode();
	t_gate_open(&h->ready);
	if (t_gate_wait(&h->start, WAIT_MS) != 0) return 98;
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_add(db, tx, TYPE, "w0", NULL, 0)); /* never acknowledged */
	t_gate_open(&h->inside);
	for (;;) pause(); /* killed here, holding the writer lock */
	return 0;
}

TEST(writer_killed_after_pin_holder) {
	SKIP_UNLESS_LMDB();
	record_begin();
	/* every process opens before the kills (an open clears stale readers) */
	struct ready_adder a[ADD_PROCS - 1];
	int pid[ADD_PROCS - 1];
	t_gate go;
	t_gate_init(&go);
	for (int i = 0; i < ADD_PROCS - 1; i++) {
		a[i].a.go = go;
		a[i].a.proc = i;
		t_gate_init(&a[i].ready);
		pid[i] = spawn_ready(ready_adder, &a[i], &a[i].ready, WAIT_MS);
	}
	struct tx_holder w;
	gates_init(&w.ready, &w.start, &w.inside);
	int wp = spawn_ready(tx_holder, &w, &w.ready, WAIT_MS);
	t_gate held;
	t_gate_init(&held);
	/* its commit is the first: it pins */
	int hp = spawn_ready(pin_holder, &held, &held, WAIT_MS);
	CHECK(kill(hp, SIGKILL) == 0);
	CHECK(t_join(hp, WAIT_MS) == 128 + SIGKILL);
	t_gate_open(&w.start);
	CHECK(t_gate_wait(&w.inside, WAIT_MS) == 0);
	CHECK(kill(wp, SIGKILL) == 0);
	CHECK(t_join(wp, WAIT_MS) == 128 + SIGKILL);
	/* the first adder's begin finds the writer lock's owner dead */
	for (int i = 0; i < ADD_PROCS - 1; i++) t_gate_open(&go);
	for (int i = 0; i < ADD_PROCS - 1; i++) check_exit(pid[i], WAIT_MS, 0);
	t_gate_close(&go);
	for (int i = 0; i < ADD_PROCS - 1; i++) t_gate_close(&a[i].ready);
	t_gate_close(&held);
	gates_close(&w.ready, &w.start, &w.inside);
	record_end();
	check_images(t_dir());
}

/* ---- (a4) the map grown while a checkpoint is pinned --------------------------------
 *
 * Processes open the store with the smallest map (LMDB rounds it up to the
 * file's length) and add jobs with data, so that each grows the map
 * (MDB_MAP_FULL) or adopts another's size (MDB_MAP_RESIZED), while it or
 * another process holds the checkpoint's pin. LMDB allows a resize only
 * with no transaction of the process active, so a holder drops its pin to
 * grow and marks the checkpoint unpinned under the gate; the next writer
 * makes a checkpoint of its own before it commits. A holder in another
 * process keeps its pin across the growth: its reader slot is in lock.mdb.
 * (Here the grower's own retry mostly pins again at once: the case below
 * leaves the checkpoint unpinned while others commit.) */

#define GROW_PROCS 3
#define GROW_JOBS 10
#define GROW_DATA 3000 /* bytes of a job's data: most of a page */

/* Adds n jobs of GROW_DATA bytes of data, named prefix-00 ... */
static void add_big(cj_db *db, const char *prefix, int n) {
	static char data[GROW_DATA + 16];
	memset(data, 'x', sizeof data);
	memcpy(data, "{\"d\":\"", 6);
	memcpy(data + GROW_DATA - 2, "\"}", 3);
	for (int i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof id, "%s-%02d", prefix, i);
		CHECK_OK(cj_add(db, NULL, TYPE, id, data, 0));
		pl_mark("A %s", id);
	}
}

static int growing_adder(void *p) {
	struct adder *a = p;
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	o.sync = relaxed() ? CJ_SYNC_RELAXED : CJ_SYNC_FULL;
	o.map_size = 1;
	cj_db *db = t_open_opts(&o);
	if (t_gate_wait(&a->go, WAIT_MS) != 0) return 98;
	char prefix[16];
	snprintf(prefix, sizeof prefix, "g%d", a->proc);
	add_big(db, prefix, GROW_JOBS);
	cj_close(db);
	return 0;
}

static long data_len(const char *name) {
	char path[4200];
	struct stat st;
	path_in(path, sizeof path, name);
	size_t n = strlen(path);
	snprintf(path + n, sizeof path - n, "/data.mdb");
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

TEST(map_growth) {
	SKIP_UNLESS_LMDB();
	if (relaxed()) { /* relaxed commits let the pin go (lme_log_void) */
		note("  skipped: in the relaxed mode no checkpoint stays pinned while the map grows\n");
		return;
	}
	record_begin();
	run_adders(GROW_PROCS, growing_adder);
	record_end();
	/* the map began at the file's length: it grew (doubling) */
	long base = data_len("base"), end = data_len("store");
	note("  data.mdb: %ld bytes before, %ld after\n", base, end);
	CHECK(base > 0 && end >= 4 * base);
	check_images(t_dir());
}

/* ---- (a5) the pin's holder adopts a grown map, and others commit -----------------
 *
 * The holder opened with the smallest map; another process (with a large
 * one) adds jobs until data.mdb is past the holder's map; the holder's next
 * transaction, a read, finds the map resized (MDB_MAP_RESIZED), lets go of
 * its pin and adopts the size, and then only waits while the other adds
 * more. Those commits must find the checkpoint unpinned and make one of
 * their own first (with CJ_TEST_LOG_UNPIN_KEEP=1, which leaves the let-go
 * pin marked as held, they reuse the checkpoint's pages: images do not
 * open). */

struct adopter {
	t_gate pinned; /* the holder made the first commit (and pinned it) */
	t_gate grown;  /* the other process grew data.mdb past its map */
	t_gate read;   /* the holder read (and adopted the size) */
	t_gate done;   /* the other process added its last job */
};

static int map_adopter(void *p) {
	struct adopter *a = p;
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	o.sync = relaxed() ? CJ_SYNC_RELAXED : CJ_SYNC_FULL;
	o.map_size = 1; /* the file's length */
	cj_db *db = t_open_opts(&o);
	CHECK_OK(cj_add(db, NULL, TYPE, "h0", NULL, 0));
	pl_mark("A h0");
	t_gate_open(&a->pinned);
	if (t_gate_wait(&a->grown, WAIT_MS) != 0) return 98;
	char *data;
	CHECK(job_state(db, "h0", &data) == CJ_PENDING);
	cj_free(data);
	t_gate_open(&a->read);
	if (t_gate_wait(&a->done, WAIT_MS) != 0) return 98; /* holds the store open */
	cj_close(db);
	return 0;
}

TEST(pin_holder_adopts_grown_map) {
	SKIP_UNLESS_LMDB();
	if (relaxed()) { /* relaxed commits let the pin go (lme_log_void) */
		note("  skipped: in the relaxed mode no checkpoint stays pinned while the map grows\n");
		return;
	}
	record_begin();
	struct adopter a;
	gates_init(&a.pinned, &a.grown, &a.read, &a.done);
	int hp = spawn_ready(map_adopter, &a, &a.pinned, WAIT_MS);
	cj_db *db = open_mode(); /* after the holder's open: it is not alone */
	long at = data_len("store");
	add_big(db, "b", 2 * GROW_JOBS); /* past twice the holder's map */
	note("  data.mdb: %ld bytes when pinned, %ld after the first adds\n", at,
	     data_len("store"));
	CHECK(data_len("store") >= 4 * at);
	t_gate_open(&a.grown);
	CHECK(t_gate_wait(&a.read, WAIT_MS) == 0);
	add_big(db, "c", GROW_JOBS);
	t_gate_open(&a.done);
	check_exit(hp, WAIT_MS, 0);
	cj_close(db);
	gates_close(&a.pinned, &a.grown, &a.read, &a.done);
	record_end();
	check_images(t_dir());
}

/* ---- (a6) a combining leader killed between its commit and its flush ----------------
 *
 * Fault-injection builds (the library's hold points, src/fault.c): a
 * process leads a batch holding another process's call, commits it, and is
 * killed (-9) before its flush of the log (CJ_HOLD_FLUSH_CHECK). The other
 * finds its leader dead, reads its receipt, and must make sure the log
 * holding that commit's record is flushed before it answers CJ_OK (with
 * CJ_TEST_COMBINE_NOSYNC=1, which answers from the receipt alone, images
 * lose its call). */

#ifdef CJ_TEST_FAULTS
struct xheld {
	const char *id;
	int points[2]; /* cj_hold_point, or -1 */
	t_gate at[2], go[2];
	t_gate ready, start;
};

static int xheld_adder(void *p) {
	struct xheld *h = p;
	cj_db *db = open_mode();
	t_gate_open(&h->ready);
	if (t_gate_wait(&h->start, WAIT_MS) != 0) return 98;
	for (int i = 0; i < 2; i++)
		if (h->points[i] >= 0) cj__fault_hold(h->points[i], h->at[i].fd[1], h->go[i].fd[0]);
	CHECK_OK(cj_add(db, NULL, TYPE, h->id, NULL, 0));
	pl_mark("A %s", h->id);
	cj_close(db);
	return 0;
}

static int xheld_spawn(struct xheld *h, const char *id, int p0, int p1) {
	memset(h, 0, sizeof *h);
	h->id = id;
	h->points[0] = p0;
	h->points[1] = p1;
	gates_init(&h->at[0], &h->at[1], &h->go[0], &h->go[1], &h->ready, &h->start);
	return spawn_ready(xheld_adder, h, &h->ready, WAIT_MS);
}

static void xheld_close(struct xheld *h) {
	gates_close(&h->at[0], &h->at[1], &h->go[0], &h->go[1], &h->ready, &h->start);
}
#endif

TEST(leader_killed_before_flush) {
	SKIP_UNLESS_LMDB();
#ifndef CJ_TEST_FAULTS
	note("  skipped: needs a fault-injection build (hold points)\n");
#else
	record_begin();
	struct xheld l, p;
	/* L stops before it takes the calls posted, and after its commit */
	int lpid = xheld_spawn(&l, "l", CJ_HOLD_COMBINE_LEAD, CJ_HOLD_FLUSH_CHECK);
	int ppid = xheld_spawn(&p, "p", CJ_HOLD_COMBINE_POSTED, -1);
	t_gate_open(&l.start);
	CHECK(t_gate_wait(&l.at[0], WAIT_MS) == 0);
	t_gate_open(&p.start);
	CHECK(t_gate_wait(&p.at[0], WAIT_MS) == 0);
	t_gate_open(&p.go[0]);
	t_gate_open(&l.go[0]); /* L takes P's call and commits both */
	CHECK(t_gate_wait(&l.at[1], WAIT_MS) == 0);
	CHECK(kill(lpid, SIGKILL) == 0);
	CHECK(t_join(lpid, WAIT_MS) == 128 + SIGKILL);
	check_exit(ppid, WAIT_MS, 0); /* P answered from L's receipt */
	xheld_close(&l);
	xheld_close(&p);
	record_end();
	check_images(t_dir());
#endif
}

/* ---- (a7) a writer killed between its commit and the count of its record -----------
 *
 * Fault-injection builds (hold points): a process writes its record, commits,
 * and is killed (-9) holding the log's gate before its record is counted
 * (CJ_HOLD_LOG_COMMITTED). Its commit is in data.mdb, so the next writer must
 * count that record and write its own after it: overwritten, it would leave
 * a gap that a replay stops at, losing every acknowledged commit after it.
 * The next writer reads the record at the log's end; with the fault hook
 * CJ_TEST_LOG_NOENDREAD=1, which never reads it, images lose the adders'
 * jobs. The test process commits
 * first and stays open: it holds the checkpoint's pin, so the killed
 * writer's death makes no checkpoint that would cover its commit. */

TEST(writer_killed_after_commit) {
	SKIP_UNLESS_LMDB();
#ifndef CJ_TEST_FAULTS
	note("  skipped: needs a fault-injection build (hold points)\n");
#else
	record_begin();
	cj_db *db = open_mode();
	CHECK_OK(cj_add(db, NULL, TYPE, "p0", NULL, 0)); /* pins the checkpoint */
	pl_mark("A p0");
	struct xheld k;
	int kpid = xheld_spawn(&k, "k", CJ_HOLD_LOG_COMMITTED, -1);
	t_gate_open(&k.start);
	CHECK(t_gate_wait(&k.at[0], WAIT_MS) == 0);
	CHECK(kill(kpid, SIGKILL) == 0);
	CHECK(t_join(kpid, WAIT_MS) == 128 + SIGKILL);
	xheld_close(&k);
	cj_state st;
	CHECK_OK(cj_get_job_state(db, NULL, TYPE, "k", &st)); /* it committed */
	run_adders(ADD_PROCS - 1, adder);
	cj_close(db);
	record_end();
	check_images(t_dir());
#endif
}

/* ---- (a8) a relaxed process voiding the log while durable processes commit ---------
 *
 * A relaxed process adds jobs with data beside durable adders: its commits
 * void the log (lme_log_void in src/engine/lmdb.c: data.mdb flushed, then
 * the checkpoint slots spoiled and the log flushed), the next durable
 * commit makes a checkpoint again, the relaxed ones void it again, and so
 * on. Every image must open and hold every acknowledged durable call; the
 * crash points where a relaxed commit's own writes to data.mdb are not
 * flushed yet are not tried (relaxed_exposed: the relaxed mode's images
 * may be unsound there, as without the log). With the fault hook
 * CJ_TEST_LOG_VOID_EARLY=1 (a void spoils the slots before it flushes
 * data.mdb), images open data.mdb without the durable commits the log
 * held.
 *
 * It found a void that spoiled both slots in one flush: a power loss could
 * keep the newer checkpoint's spoiling and not the older's, and a recovery
 * then restored the older checkpoint, whose pages had been reused since
 * ("data.mdb is not at the log's checkpoint (commit 0)", 3 of 16 runs with
 * four at a time); the older is now spoiled and flushed first
 * (cj__lml_ckpt_void). */

#define VOID_JOBS 40
#define VOID_DATA 6000 /* a relaxed record of about 6 KB: a void every ~11 */

static int voider(void *p) {
	struct adder *a = p;
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	o.sync = CJ_SYNC_RELAXED;
	o.map_size = map_size;
	cj_db *db = t_open_opts(&o);
	pl_mark("R"); /* names this process: nobody waits for its writes */
	static char data[VOID_DATA + 16];
	memset(data, 'x', sizeof data);
	memcpy(data, "{\"d\":\"", 6);
	memcpy(data + VOID_DATA - 2, "\"}", 3);
	if (t_gate_wait(&a->go, WAIT_MS) != 0) return 98;
	for (int i = 0; i < VOID_JOBS; i++) {
		char id[32];
		snprintf(id, sizeof id, "r%02d", i);
		CHECK_OK(cj_add(db, NULL, TYPE, id, data, 0)); /* not acknowledged as durable */
	}
	cj_close(db);
	return 0;
}

TEST(relaxed_void_beside_durable) {
	SKIP_UNLESS_LMDB();
	if (relaxed()) {
		note("  skipped: its durable processes are the point\n");
		return;
	}
	record_begin();
	struct adder a[ADD_PROCS];
	int pid[ADD_PROCS];
	t_gate go;
	t_gate_init(&go);
	for (int i = 0; i < ADD_PROCS; i++) {
		a[i].go = go;
		a[i].proc = i;
		pid[i] = t_spawn(i == 0 ? voider : adder, &a[i]);
	}
	for (int i = 0; i < ADD_PROCS; i++) t_gate_open(&go);
	for (int i = 0; i < ADD_PROCS; i++) check_exit(pid[i], WAIT_MS, 0);
	t_gate_close(&go);
	record_end();
	check_images(t_dir());
}

/* ---- (b) processors accepting, finishing, failing, updating, beside a producer ------ */

#define PROC_JOBS 18
#define PROCESSORS 2

struct proc_arg {
	t_gate done; /* the producer has added every job */
};

static int producer(void *p) {
	(void)p;
	cj_db *db = open_mode();
	for (int i = 0; i < PROC_JOBS; i++) {
		char id[32];
		snprintf(id, sizeof id, "b%02d", i);
		CHECK_OK(cj_add(db, NULL, TYPE, id, NULL, 0));
		pl_mark("A %s", id);
	}
	cj_close(db);
	return 0;
}

/* Job b<i>'s fate by i: every fifth is failed, every fifth (another) is
 * updated before it is finished, the rest are finished. */
static int processor(void *p) {
	struct proc_arg *a = p;
	cj_db *db = open_mode();
	cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
	ao.timeout_ms = 100;
	int64_t end = t_now_ms() + WAIT_MS;
	for (;;) {
		cj_job *job = NULL;
		int rc = cj_accept(db, TYPE, &ao, &job, NULL);
		if (rc == CJ_NOT_FOUND) {
			/* nothing left once the producer is done */
			if (t_gate_wait(&a->done, 0) == 0 || t_now_ms() > end) break;
			continue;
		}
		CHECK_OK(rc);
		const char *id = cj_job_id(job);
		char data[64];
		pl_mark("R %s", id);
		int i = atoi(id + 1);
		if (i % 5 == 4) {
			CHECK_OK(cj_fail(db, NULL, job, "{\"e\":1}"));
			pl_mark("X %s", id);
		} else {
			if (i % 5 == 2) {
				snprintf(data, sizeof data, "{\"u\":\"%s\"}", id);
				CHECK_OK(cj_update(db, NULL, job, data));
				pl_mark("U %s", id);
			}
			snprintf(data, sizeof data, "{\"done\":\"%s\"}", id);
			CHECK_OK(cj_finish(db, NULL, job, data));
			pl_mark("F %s", id);
		}
		cj_job_free(job);
	}
	cj_close(db);
	return 0;
}

TEST(processors) {
	SKIP_UNLESS_LMDB();
	record_begin();
	struct proc_arg a;
	t_gate_init(&a.done);
	int pp[PROCESSORS];
	for (int i = 0; i < PROCESSORS; i++) pp[i] = t_spawn(processor, &a);
	int prod = t_spawn(producer, NULL);
	check_exit(prod, WAIT_MS, 0);
	for (int i = 0; i < PROCESSORS; i++) t_gate_open(&a.done);
	for (int i = 0; i < PROCESSORS; i++) check_exit(pp[i], WAIT_MS, 0);
	t_gate_close(&a.done);
	record_end();
	check_images(t_dir());
}

/* ---- (c) a caller's own transactions of several calls ----------------------------- */

#define TXS 5
#define TX_JOBS 3

static int transactor(void *p) {
	(void)p;
	cj_db *db = open_mode();
	for (int n = 0; n < TXS; n++) {
		char decl[200], id[32], key[16];
		int at = snprintf(decl, sizeof decl, "G %d", n);
		for (int j = 0; j < TX_JOBS; j++)
			at += snprintf(decl + at, sizeof decl - (size_t)at, " t%d-%d", n, j);
		snprintf(key, sizeof key, "k%d", n);
		snprintf(decl + at, sizeof decl - (size_t)at, " %s", key);
		pl_mark("%s", decl);
		cj_tx *tx;
		CHECK_OK(cj_tx_begin(db, &tx));
		for (int j = 0; j < TX_JOBS; j++) {
			snprintf(id, sizeof id, "t%d-%d", n, j);
			CHECK_OK(cj_add(db, tx, TYPE, id, "{\"tx\":1}", 0));
		}
		CHECK_OK(cj_tx_put(tx, key, strlen(key), "v", 1));
		CHECK_OK(cj_tx_commit(tx));
		pl_mark("C %d", n);
		/* and one call of its own between them */
		snprintf(id, sizeof id, "s%d", n);
		CHECK_OK(cj_add(db, NULL, TYPE, id, NULL, 0));
		pl_mark("A %s", id);
	}
	cj_close(db);
	return 0;
}

TEST(transactions) {
	SKIP_UNLESS_LMDB();
	record_begin();
	check_exit(t_spawn(transactor, NULL), WAIT_MS, 0);
	record_end();
	check_images(t_dir());
}

/* ---- (d) a store of layout 2 converted by its first open ------------------------
 *
 * A store of the build before the log (layout 2: the commit counter is
 * "commit", and there is no log file) holding acknowledged jobs is opened
 * by a process of this build, which converts it (src/engine/lmdb.c,
 * lme_convert_2) in a commit of its own before the log has any checkpoint
 * to restore, then adds jobs. Every image must open, whole, with the jobs
 * of before the conversion. */

#define OLD_JOBS 24

/* Takes the store (closed) back to layout 2, as a build before the log
 * left it. */
static void to_layout_2(const char *store) {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi main, meta;
	CHECK(mdb_env_create(&env) == 0);
	CHECK(mdb_env_set_maxdbs(env, 8) == 0);
	CHECK(mdb_env_set_mapsize(env, (size_t)1 << 30) == 0);
	CHECK(mdb_env_open(env, store, MDB_NOTLS, 0600) == 0);
	CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
	CHECK(mdb_dbi_open(txn, NULL, 0, &main) == 0);
	CHECK(mdb_dbi_open(txn, "cj_engine", 0, &meta) == 0);
	MDB_val nk = {6, "number"}, ck = {6, "commit"}, lk = {6, "layout"}, v;
	CHECK(mdb_get(txn, main, &nk, &v) == 0 && v.mv_size == 8);
	uint8_t num[8], lay[4] = {0, 0, 0, 2};
	memcpy(num, v.mv_data, 8);
	MDB_val nv = {8, num}, lv = {4, lay};
	CHECK(mdb_del(txn, main, &nk, NULL) == 0);
	CHECK(mdb_put(txn, main, &ck, &nv, 0) == 0);
	CHECK(mdb_put(txn, meta, &lk, &lv, 0) == 0);
	CHECK(mdb_txn_commit(txn) == 0);
	mdb_env_close(env);
	char log[4200];
	snprintf(log, sizeof log, "%s/log", store);
	CHECK(unlink(log) == 0);
}

static int converter(void *p) {
	(void)p;
	cj_db *db = open_mode();
	for (int i = 0; i < 6; i++) {
		char id[32];
		snprintf(id, sizeof id, "n%d", i);
		CHECK_OK(cj_add(db, NULL, TYPE, id, NULL, 0));
		pl_mark("A %s", id);
	}
	cj_close(db);
	return 0;
}

TEST(layout_2_converted) {
	SKIP_UNLESS_LMDB();
	char base[4096], store[4096], trace[4096];
	cj_db *db = open_mode();
	CHECK_OK(cj_set_type_timeout(db, TYPE, 3600));
	cj_retry_policy pol = CJ_RETRY_POLICY_INIT;
	pol.max_attempts = 1;
	CHECK_OK(cj_set_type_policy(db, TYPE, &pol));
	for (int i = 0; i < OLD_JOBS; i++) {
		char id[32];
		snprintf(id, sizeof id, "o%02d", i);
		CHECK_OK(cj_add(db, NULL, TYPE, id, NULL, 0));
	}
	cj_close(db);
	path_in(store, sizeof store, "store");
	path_in(base, sizeof base, "base");
	path_in(trace, sizeof trace, "trace");
	to_layout_2(store);
	copy_dir(store, base);
	setenv(PL_ENV_DIR, store, 1);
	setenv(PL_ENV_TRACE, trace, 1);
	pl_rec_reload();
	/* the jobs of the old store were acknowledged before the trace */
	for (int i = 0; i < OLD_JOBS; i++) pl_mark("A o%02d", i);
	check_exit(t_spawn(converter, NULL), WAIT_MS, 0);
	record_end();
	check_images(t_dir());
}

/* ---- (e) a small map, grown after the last checkpoint -----------------------------
 *
 * Every open asks for a small map (cj_options.map_size), which grows as
 * commits need it (src/engine/lmdb.c: "The map grows"). The checkpoint a
 * recovery restores holds the map size and the pages of its moment; the
 * records after it need more pages, so the replay must grow the map as a
 * commit would, or the image does not open. */

#define SMALL_MAP ((size_t)64 << 10)
#define BIG_TXS 24
#define BIG_VALUE 3000 /* bytes: each a page of its own (overflow pages) */

/* Transactions of a job and a key of the caller's holding BIG_VALUE bytes
 * (kept_line() says of a key only whether it is there). */
static int big_adder(void *p) {
	(void)p;
	cj_db *db = open_mode();
	static char value[BIG_VALUE];
	memset(value, 'x', sizeof value);
	for (int i = 0; i < BIG_TXS; i++) {
		char id[32], key[32];
		snprintf(id, sizeof id, "g%02d", i);
		snprintf(key, sizeof key, "kg%02d", i);
		pl_mark("G %d %s %s", 100 + i, id, key);
		int rc = CJ_CONFLICT;
		/* run again while the map grows (CJ_CONFLICT: couchjobs.h) */
		for (int tries = 0; rc == CJ_CONFLICT && tries < 20; tries++) {
			cj_tx *tx;
			CHECK_OK(cj_tx_begin(db, &tx));
			if ((rc = cj_add(db, tx, TYPE, id, NULL, 0)) == CJ_OK &&
			    (rc = cj_tx_put(tx, key, strlen(key), value, sizeof value)) == CJ_OK)
				rc = cj_tx_commit(tx);
			else
				cj_tx_abort(tx);
		}
		CHECK_OK(rc);
		pl_mark("C %d", 100 + i);
	}
	cj_close(db);
	return 0;
}

TEST(small_map_grown) {
	SKIP_UNLESS_LMDB();
	map_size = SMALL_MAP;
	record_begin();
	check_exit(t_spawn(big_adder, NULL), WAIT_MS, 0);
	record_end();
	check_images(t_dir());
	map_size = 0;
}

/* ---- (f) large transactions after the pin was lost: the spill guard ---------------
 *
 * LMDB writes the dirty pages of a very large transaction into data.mdb
 * before its commit (mdb_page_spill), so such a transaction checks the
 * checkpoint's pin before it may spill (src/engine/lmdb.c, "the spill
 * guard"). spill_guard_pin_lost: the pin's holder is killed, and
 * processes then run transactions of several jobs and a key each, with
 * the guard's threshold lowered (CJ_TEST_SPILL_PAGES, 64 pages unless the
 * environment sets it; 0 leaves LMDB's own): the first of them finds the
 * holder dead and makes a checkpoint in the middle of its transaction,
 * holding the gate to its commit. LMDB spills nothing at this size, so this
 * shows the guard's path sound (every image opens and holds every
 * acknowledged transaction whole), not that it is needed: spill_real is
 * the real spill. */

#define SPILL_PROCS 2
#define SPILL_TXS 6
#define SPILL_TX_JOBS 5

static chan spill_counts; /* each spill_adder: guard runs << 32 | checkpoints */

/* The spill guard's runs and checkpoints in this process (fault-injection
 * builds; else -1 each: the hooks are not there either). */
static void spill_guard_counts(long *g, long *c) {
#ifdef CJ_TEST_FAULTS
	cj__lme_spill_counts(g, c);
#else
	*g = *c = -1;
#endif
}

static int spill_adder(void *p) {
	struct adder *a = p;
	cj_db *db = open_mode();
	if (t_gate_wait(&a->go, WAIT_MS) != 0) return 98;
	for (int t = 0; t < SPILL_TXS; t++) {
		int n = 200 + a->proc * SPILL_TXS + t;
		char decl[64], key[16];
		snprintf(key, sizeof key, "k%d", n);
		int len = snprintf(decl, sizeof decl, "G %d", n);
		cj_tx *tx;
		CHECK_OK(cj_tx_begin(db, &tx));
		for (int j = 0; j < SPILL_TX_JOBS; j++) {
			char id[16];
			snprintf(id, sizeof id, "s%d%d%d", a->proc, t, j);
			len += snprintf(decl + len, sizeof decl - (size_t)len, " %s", id);
			CHECK_OK(cj_add(db, tx, TYPE, id, NULL, 0));
		}
		snprintf(decl + len, sizeof decl - (size_t)len, " %s", key);
		CHECK_OK(cj_tx_put(tx, key, strlen(key), "v", 1));
		pl_mark("%s", decl);
		CHECK_OK(cj_tx_commit(tx));
		pl_mark("C %d", n);
	}
	long g, c;
	spill_guard_counts(&g, &c);
	chan_put(&spill_counts, g < 0 ? -1 : (int64_t)g << 32 | c);
	cj_close(db);
	return 0;
}

TEST(spill_guard_pin_lost) {
	SKIP_UNLESS_LMDB();
	if (!getenv("CJ_TEST_SPILL_PAGES")) CHECK(setenv("CJ_TEST_SPILL_PAGES", "64", 1) == 0);
	int hook = atoll(getenv("CJ_TEST_SPILL_PAGES")) > 0;
	chan_init(&spill_counts);
	record_begin();
	cj_db *db = open_mode(); /* open throughout: the adders are not alone */
	t_gate held;
	t_gate_init(&held);
	int hp = t_spawn(pin_holder, &held);
	CHECK(t_gate_wait(&held, WAIT_MS) == 0);
	CHECK(kill(hp, SIGKILL) == 0);
	CHECK(t_join(hp, WAIT_MS) == 128 + SIGKILL);
	t_gate_close(&held);
	run_adders(SPILL_PROCS, spill_adder);
	cj_close(db);
	record_end();
	long guards = 0, ckpts = 0;
	int known = 1;
	for (int i = 0; i < SPILL_PROCS; i++) {
		int64_t v = chan_get(&spill_counts, WAIT_MS);
		known = known && v >= 0;
		guards += (long)(v >> 32);
		ckpts += (long)(v & 0xffffffff);
	}
	chan_close(&spill_counts);
	if (!known) hook = 0; /* not a fault-injection build: no hook, no count */
	else note("  spill guard: %ld runs, %ld checkpoints made by it (threshold %s)\n", guards,
	          ckpts, hook ? getenv("CJ_TEST_SPILL_PAGES") : "the default");
	if (hook && !relaxed()) {
		/* every transaction of the adders, once each (and their other
		 * write transactions: at this threshold every change runs it) */
		CHECK(guards >= SPILL_PROCS * SPILL_TXS);
		CHECK(ckpts >= 1);                        /* the first found the pin lost */
	}
	if (known && !hook) CHECK(guards == 0);
	check_images(t_dir());
}

/* spill_real: a real spill after the pin was lost. A process fills the
 * store in one transaction and closes (its checkpoint unpinned); the pin's
 * holder adds jobs among them (its first commit pins a checkpoint of the
 * filled store, whose pages its later commits free) and is killed; a
 * process that then opens the store (alone: its open clears the dead
 * holder's reader slot) adds jobs in a transaction, whose pages LMDB may
 * now take from those of the checkpoint, and puts a value of
 * CJ_MAX_DATA_LIMIT bytes: LMDB spills before such a put (its estimate of
 * the put's pages is more than the transaction's room: mdb_page_spill),
 * writing the transaction's dirty pages into data.mdb, and the process is
 * killed before its commit. With the guard, the put first makes a
 * checkpoint of the last commit, which the spilled pages cannot be part
 * of. With CJ_TEST_SPILL_UNGUARDED=1 the recovery restores the old
 * checkpoint over spilled pages: the image of every write applied does
 * not open (checked in a child, as the model's images then are: a damaged
 * tree may crash LMDB). Run only with CJ_TEST_SPILL_REAL=1: about 1 GiB of
 * memory in the spilling process, its put about 15 s under the
 * sanitizers, then the images' time bound. */

#define REAL_JOBS 240
#define REAL_TX_JOBS 40

/* Adds REAL_JOBS jobs named prefix + number (every step-th), each with
 * 300 bytes of data. */
static void real_add(cj_db *db, const char *fmt, int step) {
	char data[300];
	memset(data, 'h', sizeof data);
	memcpy(data, "{\"d\":\"", 6);
	memcpy(data + sizeof data - 3, "\"}", 3);
	for (int i = 0; i < REAL_JOBS; i += step) {
		char id[16];
		snprintf(id, sizeof id, fmt, i);
		CHECK_OK(cj_add(db, NULL, TYPE, id, data, 0));
		pl_mark("A %s", id);
	}
}

/* The jobs of the checkpoint to come, whose pages the holder's commits
 * free, in one transaction (so that nearly every page of the store is one
 * of the checkpoint's, and few are free besides): closed, its checkpoint
 * is unpinned, and the holder's first commit makes one of the same
 * commit. */
static int real_filler(void *p) {
	(void)p;
	cj_db *db = open_mode();
	char data[300];
	memset(data, 'h', sizeof data);
	memcpy(data, "{\"d\":\"", 6);
	memcpy(data + sizeof data - 3, "\"}", 3);
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	for (int i = 0; i < REAL_JOBS; i++) {
		char id[16];
		snprintf(id, sizeof id, "h%03d", i);
		CHECK_OK(cj_add(db, tx, TYPE, id, data, 0));
	}
	CHECK_OK(cj_tx_commit(tx));
	for (int i = 0; i < REAL_JOBS; i++) pl_mark("A h%03d", i);
	cj_close(db);
	return 0;
}

static int real_holder(void *p) {
	t_gate *held = p;
	cj_db *db = open_mode();
	real_add(db, "h%03d-a", 3);
	t_gate_open(held);
	for (;;) pause(); /* killed here, the store open, the pin held */
	return 0;
}

static int real_spiller(void *p) {
	(void)p;
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	o.max_data_size = CJ_MAX_DATA_LIMIT;
	cj_db *db = t_open_opts(&o);
	size_t n = CJ_MAX_DATA_LIMIT;
	char *big = malloc(n);
	CHECK(big != NULL);
	memset(big, 'z', n);
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	for (int i = 0; i < REAL_TX_JOBS; i++) {
		char id[16];
		snprintf(id, sizeof id, "h%03d-x", i * REAL_JOBS / REAL_TX_JOBS);
		CHECK_OK(cj_add(db, tx, TYPE, id, "{\"d\":1}", 0));
	}
	int64_t t0 = t_now_ms();
	CHECK_OK(cj_tx_put(tx, "kbig", 4, big, n));
	long g, c;
	spill_guard_counts(&g, &c);
	note("  the spilling put: %lld ms; spill guard: %ld runs, %ld checkpoints\n",
	     (long long)(t_now_ms() - t0), g, c);
	const char *off = getenv("CJ_TEST_SPILL_UNGUARDED");
	if (g >= 0 && !(off && strcmp(off, "1") == 0)) CHECK(g == 1 && c == 1);
	raise(SIGKILL); /* before the commit */
	return 97;
}

TEST(spill_real) {
	SKIP_UNLESS_LMDB();
	const char *want = getenv("CJ_TEST_SPILL_REAL");
	if (!(want && strcmp(want, "1") == 0)) {
		note("  skipped: CJ_TEST_SPILL_REAL=1 runs it (about 1 GiB of memory, 15 s to "
		     "spill under the sanitizers, then the images)\n");
		return;
	}
	if (relaxed()) {
		note("  skipped: a relaxed store promises nothing against a power loss\n");
		return;
	}
	const char *off = getenv("CJ_TEST_SPILL_UNGUARDED");
	if (off && strcmp(off, "1") == 0) CHECK(setenv("CJ_TEST_POWERLOSS_FORK", "1", 1) == 0);
	record_begin();
	check_exit(t_spawn(real_filler, NULL), WAIT_MS, 0);
	t_gate held;
	t_gate_init(&held);
	int hp = t_spawn(real_holder, &held);
	CHECK(t_gate_wait(&held, WAIT_MS) == 0);
	CHECK(kill(hp, SIGKILL) == 0);
	CHECK(t_join(hp, WAIT_MS) == 128 + SIGKILL);
	t_gate_close(&held);
	CHECK(t_join(t_spawn(real_spiller, NULL), WAIT_MS) == 128 + SIGKILL);
	record_end();
	/* the image of every write reaching the disk (one the model draws
	 * rarely, with each of the spilled pages applied): the store as the
	 * processes left it, with the log's boot id spoiled, so that its open
	 * recovers as after a restart (checked in a child: it may crash) */
	char store[4096], all[4096], trace[4096], err[256];
	path_in(store, sizeof store, "store");
	path_in(all, sizeof all, "all-applied");
	path_in(trace, sizeof trace, "trace");
	copy_dir(store, all);
	char logp[4200];
	snprintf(logp, sizeof logp, "%s/log", all);
	int fd = open(logp, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	uint8_t b;
	CHECK(pread(fd, &b, 1, 8) == 1);
	b ^= 0xff;
	CHECK(pwrite(fd, &b, 1, 8) == 1);
	close(fd);
	struct pl_trace t;
	if (pl_trace_read(trace, &t, err, sizeof err) != 0) t_fail(__FILE__, __LINE__, "%s", err);
	struct check c = {&t, t.n, "", NULL};
	snprintf(c.dir, sizeof c.dir, "%s", all);
	int rc = t_join(t_spawn(check_image, &c), WAIT_MS);
	note("  every write applied: check exit %d\n", rc);
	pl_trace_free(&t);
	CHECK(rc == 0);
	check_images(t_dir());
}

/* ---- replaying a failure ---------------------------------------------------------- */

/* CJ_TEST_POWERLOSS_REPLAY names the scratch directory a failing case kept
 * (its trace, base and store); with the seed it printed in
 * CJ_TEST_POWERLOSS_SEED, this case builds and checks the same images again
 * (the same CJ_TEST_* fault variables are not needed: the trace holds what
 * the engine did). Without it, the case has nothing to do. */
TEST(replay) {
	const char *from = getenv("CJ_TEST_POWERLOSS_REPLAY");
	if (!from || !*from) {
		note("  skipped: CJ_TEST_POWERLOSS_REPLAY names no kept scratch directory\n");
		return;
	}
	check_images(from);
}

TEST_MAIN(ENTRY(adders), ENTRY(pin_holder_killed), ENTRY(writer_killed_after_pin_holder),
          ENTRY(map_growth),
          ENTRY(pin_holder_adopts_grown_map),
          ENTRY(leader_killed_before_flush), ENTRY(writer_killed_after_commit),
          ENTRY(relaxed_void_beside_durable),
          ENTRY(processors), ENTRY(transactions),
          ENTRY(layout_2_converted), ENTRY(small_map_grown), ENTRY(spill_guard_pin_lost),
          ENTRY(spill_real), ENTRY(replay))
