/*
 * Damaged stores (embedded engine): copies of a store with 1 to 16 random
 * bits flipped in data.mdb, each run through the real cjobs: list, check,
 * and an add. Whatever the damage, cjobs reports it and exits 1, or
 * succeeds; list never prints invalid JSON; and no sanitizer report comes
 * from couchjobs' own code. LMDB trusts its pages, so a damaged page can
 * still crash inside LMDB's B-tree code: such crashes are counted apart
 * (README "Corruption"), and `cjobs check` is the tool that finds the
 * damage.
 *
 * CJ_CORRUPT_COPIES (default 15) and CJ_CORRUPT_SEED (default 1) choose
 * the run; a longer one: CJ_CORRUPT_COPIES=2000 ./test_corrupt.
 *
 * Public API and the real binary only.
 */
#include "testutil.h"

#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t rng_state;

static uint64_t rng(void) { /* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* A store with jobs in every state, data over several pages, and one job
 * large enough for LMDB's overflow pages. */
static void make_store(const char *url) {
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db;
	CHECK_OK(cj_open(url, &o, &db));
	CHECK_OK(cj_set_type_timeout(db, "t", 30));
	CHECK_OK(cj_set_type_timeout(db, "u", 60));
	for (int i = 0; i < 150; i++) {
		char id[16], data[160];
		snprintf(id, sizeof id, "job%d", i);
		snprintf(data, sizeof data, "{\"i\":%d,\"s\":\"%0100d\"}", i, i);
		CHECK_OK(cj_add(db, NULL, "t", id, data, i % 7 ? 0 : 4000000000));
	}
	static char big[9000];
	memset(big, 'y', sizeof big);
	memcpy(big, "{\"b\":\"", 6);
	memcpy(big + sizeof big - 3, "\"}", 3);
	CHECK_OK(cj_add(db, NULL, "u", "big", big, 0));
	cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
	ao.timeout_ms = 0;
	cj_job *jobs[12];
	size_t n;
	CHECK_OK(cj_accept_many(db, "t", &ao, 12, jobs, NULL, &n));
	for (size_t i = 0; i < n; i++) {
		if (i < 2) CHECK_OK(cj_finish(db, NULL, jobs[i], "{\"done\":true}"));
		cj_job_free(jobs[i]);
	}
	CHECK_OK(cj_add(db, NULL, "t", "job5", NULL, 0)); /* flagged: running */
	uint64_t problems;
	CHECK_OK(cj_verify(db, NULL, NULL, &problems));
	CHECK_INT(problems, 0);
	cj_close(db);
}

static unsigned char *read_file(const char *path, size_t *len) {
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	CHECK(fseek(f, 0, SEEK_END) == 0);
	long n = ftell(f);
	CHECK(n > 0);
	rewind(f);
	unsigned char *b = malloc((size_t)n);
	CHECK(b && fread(b, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

/* 1 if err holds a sanitizer report whose first frame in a program or
 * library (not libc's memcpy and the like, not the sanitizer) is in
 * LMDB; 0 if there is none; fails the case for one in couchjobs' code. */
static int crash_in_lmdb(const char *what, const char *err) {
	const char *r = strstr(err, "ERROR: AddressSanitizer");
	if (!r) r = strstr(err, "runtime error:");
	if (!r) return 0;
	for (const char *p = strstr(r, "    #"); p; p = strstr(p + 1, "    #")) {
		const char *eol = strchr(p, '\n');
		size_t l = eol ? (size_t)(eol - p) : strlen(p);
		char frame[512];
		snprintf(frame, sizeof frame, "%.*s", (int)(l < 511 ? l : 511), p);
		if (strstr(frame, "liblmdb")) return 1;
		if (strstr(frame, "libc.so") || strstr(frame, "sanitizer") ||
		    strstr(frame, "__asan") || strstr(frame, "__interceptor"))
			continue;
		break;
	}
	t_fail(__FILE__, __LINE__, "%s: a sanitizer report in couchjobs:\n%s", what, err);
}

/* Every line of out is one JSON object. */
static int all_json(const char *out) {
	const char *p = out;
	while (*p) {
		const char *eol = strchr(p, '\n');
		if (!eol) return 0;
		json_error_t e;
		json_t *j = json_loadb(p, (size_t)(eol - p), 0, &e);
		int ok = j && json_is_object(j) && json_is_object(json_object_get(j, "data"));
		json_decref(j);
		if (!ok) return 0;
		p = eol + 1;
	}
	return 1;
}

TEST(corrupt_copies) {
	SKIP_UNLESS_LMDB();
	const char *s = getenv("CJ_CORRUPT_COPIES");
	int copies = s && *s ? atoi(s) : 15;
	s = getenv("CJ_CORRUPT_SEED");
	rng_state = (s && *s ? strtoull(s, NULL, 10) : 1) * 0x9e3779b97f4a7c15ull + 1;
	char base[4096], path[4300];
	snprintf(base, sizeof base, "%s/base", t_dir());
	make_store(base);
	snprintf(path, sizeof path, "%s/data.mdb", base);
	size_t len;
	unsigned char *orig = read_file(path, &len);
	unsigned char *copy = malloc(len);
	CHECK(copy != NULL);
	int lmdb_crashes = 0, unattributed = 0, found = 0, refused = 0;
	for (int c = 0; c < copies; c++) {
		memcpy(copy, orig, len);
		int flips = 1 + (int)(rng() % 16);
		for (int i = 0; i < flips; i++) {
			uint64_t bit = rng() % ((uint64_t)len * 8);
			copy[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		}
		char dir[4200];
		snprintf(dir, sizeof dir, "%s/c%d", t_dir(), c);
		CHECK(t_sh(NULL, NULL, "rm -rf '%s' && mkdir -m 700 '%s'", dir, dir) == 0);
		snprintf(path, sizeof path, "%s/data.mdb", dir);
		FILE *f = fopen(path, "wb");
		CHECK(f && fwrite(copy, 1, len, f) == len && fclose(f) == 0);

		static const char *const cmds[] = {"check", "list", "add t new '{\"n\":1}'"};
		int rc[3];
		for (int k = 0; k < 3; k++) {
			char *out = NULL, *err = NULL, what[64];
			snprintf(what, sizeof what, "copy %d: cjobs %s", c, cmds[k]);
			rc[k] = t_sh(&out, &err, "%s --db '%s' %s", t_bin("cjobs"), dir, cmds[k]);
			if (crash_in_lmdb(what, err) ||
			    (rc[k] >= 128 && strstr(err, "Assertion") && strstr(err, "mdb"))) {
				lmdb_crashes++; /* a report in LMDB, or one of its assertions */
			} else if (rc[k] >= 128 && !strstr(err, "Sanitizer")) {
				unattributed++; /* a build without sanitizers cannot tell */
			} else if (rc[k] != 0 && rc[k] != 1) {
				t_fail(__FILE__, __LINE__, "%s: exit %d\n%s", what, rc[k], err);
			} else if (k == 1 && rc[k] == 0 && !all_json(out)) {
				t_fail(__FILE__, __LINE__, "%s: exit 0 with invalid JSON:\n%s", what, out);
			} else if (rc[k] == 1 && (!strstr(err, "cjobs: ") || strchr(err, '\n') !=
			                                                         err + strlen(err) - 1)) {
				/* one line naming the problem (check: its report is on stdout) */
				t_fail(__FILE__, __LINE__, "%s: not one line:\n%s", what, err);
			}
			free(out);
			free(err);
		}
		/* a store that check passes can be listed */
		if (rc[0] == 0 && rc[1] != 0 && rc[1] < 128)
			t_fail(__FILE__, __LINE__, "copy %d: check passed, list failed", c);
		found += rc[0] == 1;
		refused += rc[1] == 1;
		CHECK(t_sh(NULL, NULL, "rm -rf '%s'", dir) == 0);
	}
	printf("  %d copies: check found damage in %d, list refused %d; crashes: %d in "
	       "LMDB, %d without a sanitizer report\n",
	       copies, found, refused, lmdb_crashes, unattributed);
	free(orig);
	free(copy);
}

/* A data.mdb cut short (a copy that stopped part way, a file truncated):
 * its last commit points at pages past its end, which LMDB would read
 * through its map (SIGBUS). cjobs refuses it with one line naming the
 * damage, and the library with CJ_STORE. */
TEST(short_data_file) {
	SKIP_UNLESS_LMDB();
	char base[4096], path[4300];
	snprintf(base, sizeof base, "%s/base", t_dir());
	make_store(base);
	snprintf(path, sizeof path, "%s/data.mdb", base);
	struct stat st;
	CHECK(stat(path, &st) == 0 && st.st_size > 8 * 4096);
	CHECK(truncate(path, st.st_size / 2) == 0);
	char *out = NULL, *err = NULL;
	int rc = t_sh(&out, &err, "%s --db '%s' list", t_bin("cjobs"), base);
	if (rc != 1 || !strstr(err, "data.mdb is shorter") || strchr(err, '\n') != err + strlen(err) - 1)
		t_fail(__FILE__, __LINE__, "cjobs list: exit %d\n%s", rc, err);
	free(out);
	free(err);
	cj_options o = CJ_OPTIONS_INIT;
	o.no_monitor = 1;
	cj_db *db = NULL;
	CHECK_RC(cj_open(base, &o, &db), CJ_STORE);
	CHECK(strstr(cj_last_error(), "data.mdb is shorter") != NULL);
}

TEST_MAIN(ENTRY(corrupt_copies), ENTRY(short_data_file))
