/*
 * White-box tests of the embedded store's on-disk format (doc/format.md):
 * the RFC 007 key layout in FoundationDB tuple encoding, version guards,
 * long keys, and the wake file's layout. They read and write the LMDB
 * environment and the wake file directly.
 */
#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "tuple.h"

static char path[4096];

static const char *store_path(void) {
	snprintf(path, sizeof path, "%s/store", t_dir());
	return path;
}

/* Opens the store's LMDB environment and a write transaction on `name`. */
static MDB_env *env_open(const char *name, MDB_txn **txn, MDB_dbi *dbi) {
	MDB_env *env;
	CHECK(mdb_env_create(&env) == 0);
	CHECK(mdb_env_set_maxdbs(env, 8) == 0);
	CHECK(mdb_env_set_mapsize(env, (size_t)1 << 30) == 0);
	CHECK(mdb_env_open(env, store_path(), MDB_NOTLS, 0600) == 0);
	CHECK(mdb_txn_begin(env, NULL, 0, txn) == 0);
	CHECK(mdb_dbi_open(*txn, name, name ? 0 : MDB_CREATE, dbi) == 0);
	return env;
}

static void env_close(MDB_env *env, MDB_txn *txn) {
	CHECK(mdb_txn_commit(txn) == 0);
	mdb_env_close(env);
}

static void make_store(void) {
	cj_db *db = t_open();
	CHECK_OK(cj_set_type_timeout(db, "t", 30));
	cj_close(db);
}

static int has_key(MDB_txn *txn, MDB_dbi dbi, const cj_buf *k) {
	MDB_val key = {k->len, k->p}, v;
	return mdb_get(txn, dbi, &key, &v) == 0;
}

static void key(cj_buf *b, const char *sub) {
	cj__buf_reset(b);
	cj__tup_str(b, "couch_jobs", 10);
	cj__tup_str(b, sub, strlen(sub));
}

TEST(rfc_key_layout) {
	SKIP_UNLESS_LMDB();
	cj_db *db = t_open();
	CHECK_OK(cj_set_type_timeout(db, "t", 30));
	CHECK_OK(cj_add(db, NULL, "t", "pend", "{\"a\":1}", 0));
	CHECK_OK(cj_add(db, NULL, "t", "run", NULL, 0));
	CHECK_OK(cj_add(db, NULL, "t", "later", NULL, 4000000000));
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	cj_job *job;
	CHECK_OK(cj_accept(db, "t", &o, &job, NULL)); /* takes "pend" (id order) */
	CHECK_STR(cj_job_id(job), "pend");
	cj_close(db);

	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_env *env = env_open("jobs", &txn, &dbi);
	cj_buf b = CJ_BUF_INIT;
	key(&b, "data");
	cj__tup_str(&b, "t", 1);
	cj__tup_str(&b, "run", 3);
	CHECK(has_key(txn, dbi, &b));
	key(&b, "pending");
	cj__tup_str(&b, "t", 1);
	cj__tup_int(&b, 0);
	cj__tup_str(&b, "run", 3);
	CHECK(has_key(txn, dbi, &b));
	key(&b, "pending");
	cj__tup_str(&b, "t", 1);
	cj__tup_int(&b, 4000000000);
	cj__tup_str(&b, "later", 5);
	CHECK(has_key(txn, dbi, &b));
	key(&b, "pending"); /* the accepted job left the queue */
	cj__tup_str(&b, "t", 1);
	cj__tup_int(&b, 0);
	cj__tup_str(&b, "pend", 4);
	CHECK(!has_key(txn, dbi, &b));
	key(&b, "activity_timeout");
	cj__tup_str(&b, "t", 1);
	CHECK(has_key(txn, dbi, &b));
	key(&b, "watches_pending");
	cj__tup_str(&b, "t", 1);
	CHECK(has_key(txn, dbi, &b));
	key(&b, "watches_activity");
	cj__tup_str(&b, "t", 1);
	CHECK(has_key(txn, dbi, &b));

	/* the running job's value: (Sequence vs, JobLock uuid, 0, false, data,
	 * Attempt 1, Fence, Dead false, AddedMs, FinishedMs 0, Policy null), no
	 * errors, and its activity entry is keyed by that sequence */
	key(&b, "data");
	cj__tup_str(&b, "t", 1);
	cj__tup_str(&b, "pend", 4);
	MDB_val k = {b.len, b.p}, v;
	CHECK(mdb_get(txn, dbi, &k, &v) == 0);
	cj_tup_reader r;
	cj_tup_item it;
	cj__tup_reader_init(&r, v.mv_data, v.mv_size);
	CHECK(cj__tup_next(&r, &it) == 1 && it.kind == CJ_TUP_VS);
	uint8_t seq[CJ_VS_LEN];
	memcpy(seq, it.raw, CJ_VS_LEN);
	CHECK(cj__tup_next(&r, &it) == 1 && it.kind == CJ_TUP_UUID);
	CHECK(cj__tup_next(&r, &it) == 1 && it.kind == CJ_TUP_INT && it.i == 0);
	CHECK(cj__tup_next(&r, &it) == 1 && it.kind == CJ_TUP_FALSE);
	CHECK(cj__tup_next(&r, &it) == 1 && it.kind == CJ_TUP_BYTES);
	CHECK(cj__tup_eq(&it, "{\"a\":1}", 7));
	CHECK(cj__tup_next(&r, &it) == 1 && it.kind == CJ_TUP_INT && it.i == 1);
	CHECK(cj__tup_next(&r, &it) == 1 && it.kind == CJ_TUP_INT &&
	      (uint64_t)it.i == cj_job_fence(job) && it.i > 0);
	CHECK(cj__tup_next(&r, &it) == 1 && it.kind == CJ_TUP_FALSE);
	CHECK(cj__tup_next(&r, &it) == 1 && it.kind == CJ_TUP_INT && it.i > 0);
	CHECK(cj__tup_next(&r, &it) == 1 && it.kind == CJ_TUP_INT && it.i == 0);
	CHECK(cj__tup_next(&r, &it) == 1 && it.kind == CJ_TUP_NULL);
	CHECK(cj__tup_next(&r, &it) == 0);
	key(&b, "activity");
	cj__tup_str(&b, "t", 1);
	cj__tup_vs(&b, seq);
	k.mv_size = b.len;
	k.mv_data = b.p;
	CHECK(mdb_get(txn, dbi, &k, &v) == 0);
	cj__tup_reader_init(&r, v.mv_data, v.mv_size);
	CHECK(cj__tup_next(&r, &it) == 1 && it.kind == CJ_TUP_STRING);
	CHECK(cj__tup_eq(&it, "pend", 4));
	cj__buf_free(&b);
	env_close(env, txn);
	cj_job_free(job);
}

TEST(unknown_layout_version) {
	SKIP_UNLESS_LMDB();
	make_store();
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_env *env = env_open("cj_engine", &txn, &dbi);
	uint8_t v99[4] = {0, 0, 0, 99};
	MDB_val k = {6, "layout"}, v = {4, v99};
	CHECK(mdb_put(txn, dbi, &k, &v, 0) == 0);
	env_close(env, txn);
	cj_db *db = NULL;
	CHECK_RC(cj_open(t_url(), NULL, &db), CJ_STORE);
	CHECK(db == NULL);
	CHECK(strstr(cj_last_error(), "layout version 99") != NULL);
}

TEST(unknown_format_version) {
	SKIP_UNLESS_LMDB();
	make_store();
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_env *env = env_open("jobs", &txn, &dbi);
	cj_buf kb = CJ_BUF_INIT, vb = CJ_BUF_INIT;
	key(&kb, "meta");
	cj__tup_str(&kb, "format", 6);
	cj__tup_int(&vb, 7);
	MDB_val k = {kb.len, kb.p}, v = {vb.len, vb.p};
	CHECK(mdb_put(txn, dbi, &k, &v, 0) == 0);
	env_close(env, txn);
	cj__buf_free(&kb);
	cj__buf_free(&vb);
	cj_db *db = NULL;
	CHECK_RC(cj_open(t_url(), NULL, &db), CJ_STORE);
	CHECK(strstr(cj_last_error(), "format version 7") != NULL);
}

TEST(foreign_lmdb_environment) {
	SKIP_UNLESS_LMDB();
	CHECK(mkdir(store_path(), 0700) == 0);
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_env *env = env_open(NULL, &txn, &dbi);
	MDB_val k = {5, "hello"}, v = {5, "world"};
	CHECK(mdb_put(txn, dbi, &k, &v, 0) == 0);
	env_close(env, txn);
	cj_db *db = NULL;
	CHECK_RC(cj_open(t_url(), NULL, &db), CJ_STORE);
	CHECK(strstr(cj_last_error(), "not a couchjobs store") != NULL);
	/* and it was left alone */
	env = env_open(NULL, &txn, &dbi);
	MDB_stat st;
	CHECK(mdb_stat(txn, dbi, &st) == 0);
	CHECK_INT(st.ms_entries, 1);
	env_close(env, txn);
}

/* Ids up to the 1024-byte limit, many sharing a long prefix, go through
 * the whole life cycle, while no LMDB key exceeds its 511-byte limit. */
TEST(long_ids) {
	SKIP_UNLESS_LMDB();
	cj_db *db = t_open();
	CHECK_OK(cj_set_type_timeout(db, "t", 30));
	char id[CJ_MAX_ID + 1];
	memset(id, 'x', CJ_MAX_ID);
	id[CJ_MAX_ID] = 0;
	for (int i = 0; i < 40; i++) {
		snprintf(id + CJ_MAX_ID - 4, 5, "%04d", i);
		CHECK_OK(cj_add(db, NULL, "t", id, "{\"i\":1}", 0));
	}
	CHECK_INT(count_jobs(db, "t"), 40);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	for (int i = 0; i < 40; i++) {
		cj_job *job;
		CHECK_OK(cj_accept(db, "t", &o, &job, NULL));
		CHECK_INT(strlen(cj_job_id(job)), CJ_MAX_ID);
		CHECK_OK(cj_update(db, NULL, job, "{\"i\":2}"));
		CHECK_OK(cj_finish(db, NULL, job, NULL));
		CHECK_INT(state_of(db, "t", cj_job_id(job)), CJ_FINISHED);
		cj_job_free(job);
	}
	check_empty(db, "t", CJ_SCHED_NOW, 0);
	snprintf(id + CJ_MAX_ID - 4, 5, "%04d", 7);
	char *data;
	CHECK_OK(cj_get_job_data(db, NULL, "t", id, &data));
	CHECK_STR(data, "{\"i\":2}");
	cj_free(data);
	CHECK_OK(cj_remove(db, NULL, "t", id));
	CHECK_RC(cj_remove(db, NULL, "t", id), CJ_NOT_FOUND);
	CHECK_INT(count_jobs(db, "t"), 39);
	cj_close(db);

	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_env *env = env_open("jobs", &txn, &dbi);
	MDB_cursor *c;
	MDB_val k, v;
	CHECK(mdb_cursor_open(txn, dbi, &c) == 0);
	size_t longest = 0;
	while (mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0)
		if (k.mv_size > longest) longest = k.mv_size;
	mdb_cursor_close(c);
	env_close(env, txn);
	CHECK(longest <= 511);
	CHECK(longest > 500); /* long keys were really stored the long way */
}

static int count_job(const cj_job_info *info, void *arg) {
	(void)info;
	++*(int *)arg;
	return 0;
}

/* Keys that do not decode are reported as a corrupt store, naming the key,
 * never as a lack of memory: a data key whose id is not a string, and a
 * pending key after the due ones that is not a pending key at all. */
TEST(corrupt_keys) {
	SKIP_UNLESS_LMDB();
	cj_db *db = t_open();
	CHECK_OK(cj_set_type_timeout(db, "t", 30));
	CHECK_OK(cj_add(db, NULL, "t", "j", NULL, 0));
	cj_close(db);

	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_env *env = env_open("jobs", &txn, &dbi);
	cj_buf kb = CJ_BUF_INIT, bad = CJ_BUF_INIT;
	key(&kb, "data");
	cj__tup_str(&kb, "t", 1);
	cj__tup_str(&kb, "j", 1);
	MDB_val k = {kb.len, kb.p}, v;
	CHECK(mdb_get(txn, dbi, &k, &v) == 0);
	key(&bad, "data");
	cj__tup_str(&bad, "t", 1);
	cj__tup_int(&bad, 5); /* an id that is not a string */
	MDB_val bk = {bad.len, bad.p};
	CHECK(mdb_put(txn, dbi, &bk, &v, 0) == 0);
	key(&bad, "pending");
	cj__tup_str(&bad, "t", 1);
	cj__buf_add(&bad, "\xfe", 1); /* no scheduled time, no id */
	MDB_val pk = {bad.len, bad.p}, empty = {0, ""};
	CHECK(mdb_put(txn, dbi, &pk, &empty, 0) == 0);
	key(&kb, "pending");
	cj__tup_str(&kb, "t", 1);
	cj__tup_int(&kb, 0);
	cj__tup_str(&kb, "j", 1);
	MDB_val jk = {kb.len, kb.p};
	CHECK(mdb_del(txn, dbi, &jk, NULL) == 0); /* nothing is due */
	env_close(env, txn);
	cj__buf_free(&kb);
	cj__buf_free(&bad);

	db = t_open();
	int n = 0;
	CHECK_RC(cj_list_jobs(db, NULL, "t", count_job, &n), CJ_STORE);
	CHECK(strstr(cj_last_error(), "corrupt data key") != NULL);
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	cj_job *job = NULL;
	CHECK_RC(cj_accept(db, "t", &o, &job, NULL), CJ_STORE);
	CHECK(strstr(cj_last_error(), "corrupt pending key") != NULL);
	cj_close(db);
}

/* ---- the wake file ----------------------------------------------------------- */

#define WAKE_CHAN_WORDS 1024
#define WAKE_WORDS 66818 /* doc/format.md */

static uint32_t fnv1a(uint32_t h, const void *p, size_t n) {
	for (const unsigned char *c = p; n--; c++) h = (h ^ *c) * 16777619u;
	return h;
}

static void wake_path(char *out, size_t cap) { snprintf(out, cap, "%s/wake", store_path()); }

/* The store's wake words, mapped. */
static uint32_t *wake_map(void) {
	char p[4200];
	wake_path(p, sizeof p);
	int fd = open(p, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	struct stat st;
	CHECK(fstat(fd, &st) == 0);
	CHECK(st.st_size == (off_t)WAKE_WORDS * 4);
	void *m = mmap(NULL, (size_t)WAKE_WORDS * 4, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED);
	close(fd);
	return m;
}

/* A wake file of the first build (1024 words) grows in place: the words it
 * held keep their value, and the new words are allocated. */
TEST(wake_file_grows_in_place) {
	SKIP_UNLESS_LMDB();
	cj_db *db = t_open();
	cj_close(db);
	char p[4200];
	wake_path(p, sizeof p);
	CHECK(truncate(p, WAKE_CHAN_WORDS * 4) == 0);
	int fd = open(p, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	uint32_t v = 0x5eed;
	CHECK(pwrite(fd, &v, 4, 4 * 77) == 4);
	close(fd);
	db = t_open();
	cj_close(db);
	uint32_t *w = wake_map();
	CHECK_INT(w[77], 0x5eed);
	munmap(w, (size_t)WAKE_WORDS * 4);
	struct stat st;
	CHECK(stat(p, &st) == 0);
	CHECK((off_t)st.st_blocks * 512 >= (off_t)WAKE_WORDS * 4); /* not sparse */
}

static int legacy_subscriber(void *arg) {
	t_gate *ready = arg;
	cj_db *db = t_open();
	cj_sub *sub = sub_on(db, "t", "x");
	/* let the notifier settle: its first pass done, asleep */
	cj_stats st;
	do {
		CHECK_OK(cj_db_stats(db, &st));
		sleep_ms(10);
	} while (st.notifier_passes == 0);
	sleep_ms(200);
	t_gate_open(ready);
	cj_event ev = {0};
	int rc = cj_wait(&sub, 1, 0, 30000, &ev);
	int ok = rc == CJ_OK && ev.state == CJ_REMOVED;
	cj_event_clear(&ev);
	CHECK_OK(cj_unsubscribe(sub));
	cj_close(db);
	return ok ? 0 : 1;
}

/* A commit of a first-build process bumps "activity" alone, not the job's
 * words: a subscriber of this build still gets its event. Simulated by
 * undoing, while the subscriber is stopped, every bump a commit of this
 * build makes past the channel words. */
TEST(wake_legacy_commit) {
	SKIP_UNLESS_LMDB();
	setup_type("t", 30);
	add_job("t", "x", NULL);
	t_gate ready;
	t_gate_init(&ready);
	int pid = t_spawn(legacy_subscriber, &ready);
	CHECK(t_gate_wait(&ready, 30000) == 0);
	CHECK(kill(pid, SIGSTOP) == 0);
	uint32_t *w = wake_map();
	size_t n = WAKE_WORDS - WAKE_CHAN_WORDS;
	uint32_t *saved = malloc(n * 4);
	CHECK(saved != NULL);
	memcpy(saved, w + WAKE_CHAN_WORDS, n * 4);
	unsigned activity = 1 + fnv1a(2166136261u, "activity", 8) % (WAKE_CHAN_WORDS - 1);
	uint32_t act = w[activity];
	cj_db *db = open_nomon();
	CHECK_OK(cj_remove(db, NULL, "t", "x"));
	cj_close(db);
	/* the job's own word moved (type, NUL, id: FNV-1a folded to 16 bits) */
	uint32_t h = fnv1a(fnv1a(2166136261u, "t", 2), "x", 1);
	unsigned job = (h ^ h >> 16) % 65536;
	CHECK(w[1282 + job] != saved[1282 + job - WAKE_CHAN_WORDS]);
	CHECK(w[activity] != act);
	memcpy(w + WAKE_CHAN_WORDS, saved, n * 4);
	free(saved);
	munmap(w, (size_t)WAKE_WORDS * 4);
	CHECK(kill(pid, SIGCONT) == 0);
	check_exit(pid, 60000, 0);
	t_gate_close(&ready);
}

/* Reads the u64 BE at key name (len bytes) of dbi (0: none). */
static uint64_t get_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, size_t len) {
	MDB_val k = {len, (void *)name}, v;
	if (mdb_get(txn, dbi, &k, &v) != 0) return 0;
	CHECK(v.mv_size == 8);
	uint64_t n = 0;
	for (int i = 0; i < 8; i++) n = n << 8 | ((const uint8_t *)v.mv_data)[i];
	return n;
}

/* A store of layout 1 kept its commit number ("commit") in "cj_engine",
 * layout 2 in the main database; layout 3 (the log: doc/engine-log.md)
 * renames it "number", so that a process of a build without the log fails
 * its next transaction rather than commit without a record. Opened, an
 * older store is converted, and fences go on growing from its number. */
static void layout_converted(int from) {
	cj_db *db = t_open();
	CHECK_OK(cj_set_type_timeout(db, "t", 30));
	CHECK_OK(cj_add(db, NULL, "t", "a", "{}", 0));
	CHECK_OK(cj_add(db, NULL, "t", "b", "{}", 0));
	cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
	o.timeout_ms = 0;
	cj_job *a;
	CHECK_OK(cj_accept(db, "t", &o, &a, NULL));
	uint64_t fence = cj_job_fence(a);
	cj_job_free(a);
	cj_close(db);
	/* back to layout 1 or 2: "commit" (a number ahead of every fence, as
	 * after many commits) and, for 1, a receipt in "cj_engine" */
	MDB_txn *txn;
	MDB_dbi main, meta;
	MDB_env *env = env_open(NULL, &txn, &main);
	CHECK(mdb_dbi_open(txn, "cj_engine", 0, &meta) == 0);
	uint64_t commit = get_u64(txn, main, "number", 6);
	CHECK(commit >= fence);
	MDB_val nk = {6, "number"}, ck = {6, "commit"}, rk = {3, "r\0\7"}, lk = {6, "layout"};
	uint8_t num[8], lay[4] = {0, 0, 0, (uint8_t)from};
	for (int i = 0; i < 8; i++) num[i] = (uint8_t)((commit + 1000) >> (56 - 8 * i));
	MDB_val nv = {8, num}, lv = {4, lay};
	CHECK(mdb_del(txn, main, &nk, NULL) == 0);
	CHECK(mdb_put(txn, from == 1 ? meta : main, &ck, &nv, 0) == 0);
	if (from == 1) CHECK(mdb_put(txn, meta, &rk, &nv, 0) == 0);
	CHECK(mdb_put(txn, meta, &lk, &lv, 0) == 0);
	env_close(env, txn);

	db = t_open();
	cj_job *b;
	CHECK_OK(cj_accept(db, "t", &o, &b, NULL));
	CHECK(cj_job_fence(b) > commit + 1000);
	cj_job_free(b);
	cj_close(db);
	env = env_open(NULL, &txn, &main);
	CHECK(mdb_dbi_open(txn, "cj_engine", 0, &meta) == 0);
	CHECK(get_u64(txn, main, "number", 6) > commit + 1000);
	CHECK(get_u64(txn, main, "commit", 6) == 0);
	CHECK(get_u64(txn, meta, "commit", 6) == 0);
	MDB_val v;
	if (from == 1) {
		CHECK(get_u64(txn, main, "r\0\7", 3) == commit + 1000);
		CHECK(mdb_get(txn, meta, &rk, &v) == MDB_NOTFOUND);
	}
	CHECK(mdb_get(txn, meta, &lk, &v) == 0 && v.mv_size == 4);
	CHECK(((const uint8_t *)v.mv_data)[3] == 3);
	env_close(env, txn);
}

TEST(layout_1_converted) {
	SKIP_UNLESS_LMDB();
	layout_converted(1);
}

TEST(layout_2_converted) {
	SKIP_UNLESS_LMDB();
	layout_converted(2);
}

TEST_MAIN(ENTRY(rfc_key_layout), ENTRY(unknown_layout_version),
          ENTRY(unknown_format_version), ENTRY(foreign_lmdb_environment),
          ENTRY(long_ids), ENTRY(corrupt_keys), ENTRY(wake_file_grows_in_place),
          ENTRY(wake_legacy_commit), ENTRY(layout_1_converted),
          ENTRY(layout_2_converted))
