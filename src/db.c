/* Opening and closing a store. */
#include <stdio.h>
#include <string.h>

#include "cj_int.h"

static int check_options(const cj_options *o) {
	if (o->sync != CJ_SYNC_FULL && o->sync != CJ_SYNC_RELAXED)
		return cj__fail(CJ_INVALID, "unknown sync mode %d", (int)o->sync);
	if (o->max_data_size > CJ_MAX_DATA_LIMIT)
		return cj__fail(CJ_INVALID, "max_data_size over %zu bytes", CJ_MAX_DATA_LIMIT);
	if (o->file_mode & ~0777u)
		return cj__fail(CJ_INVALID, "file_mode %o has bits beyond 0777", o->file_mode);
	return CJ_OK;
}

struct format_arg {
	int64_t version;
	int found;
};

static int read_format(cj_tx *tx, void *arg) {
	struct format_arg *a = arg;
	cj_buf k = CJ_BUF_INIT;
	const uint8_t *v;
	size_t vl;
	cj__key_meta(&k, "format");
	int rc = cj__get(tx, &k, &v, &vl);
	cj__buf_free(&k);
	if (rc == CJ_NOT_FOUND) return CJ_OK;
	if (rc) return rc;
	a->found = 1;
	return cj__val_int(v, vl, &a->version);
}

/* A store without a format key must be new: nothing in its jobs space. */
static int stop_at_first(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                         void *arg) {
	(void)k, (void)kl, (void)v, (void)vl, (void)arg;
	return 1;
}

static int write_format(cj_tx *tx, void *arg) {
	struct format_arg *a = arg;
	int rc = read_format(tx, a);
	if (rc || a->found) return rc;
	cj_buf k = CJ_BUF_INIT, v = CJ_BUF_INIT;
	cj__key_root(&k);
	rc = cj__scan_prefix(tx, &k, stop_at_first, NULL);
	if (rc == 1) {
		rc = cj__fail(CJ_STORE, "not a couchjobs store: jobs without a format version");
	} else if (rc == CJ_OK) {
		cj__key_meta(&k, "format");
		cj__tup_int(&v, CJ_FORMAT_VERSION);
		rc = cj__put(tx, &k, &v);
		a->found = 1;
		a->version = CJ_FORMAT_VERSION;
	}
	cj__buf_free(&k);
	cj__buf_free(&v);
	return rc;
}

/* ---- formats 1 to 5 to 6 -----------------------------------------------------
 *
 * Format 2 appends fields to the job value (cj_int.h); format 3 adds the
 * finished index and its counts; format 4 the counts of jobs per type,
 * kind and shard (counts.c); format 5 moves them beside the watch keys
 * (keys.c), in as many shards as the engine takes (engine.h's
 * count_shards), so they are counted again; format 6 drops the counts of
 * the finished index (retention reads those of counts.c). Every job is
 * converted (from format 5: none, the counts of the index are deleted),
 * and the format number with them, in one write transaction: either the
 * whole store is converted or none of it. From format 1 every job value is
 * rewritten; from format 2 only those of finished jobs without a finish
 * time (they were finished under format 1: they get the time of the
 * conversion). The transaction's size is the store's: on the embedded
 * engine that needs free map space for one copy of the job values (the
 * map grows and the transaction runs again if it is short); PostgreSQL has
 * no limit on a transaction's size. Memory stays bounded: the jobs are
 * converted CJ_CONVERT_BATCH at a time. */

#define CJ_CONVERT_BATCH 1000

/* The counts of one type's jobs so far, per kind and shard. */
struct counts {
	int from; /* the format converted from */
	char type[CJ_MAX_TYPE + 1];
	int64_t c[CJ_COUNT_SHARDS][CJ_COUNT_KINDS];
};

/* Writes the counts of c's type and starts counting type. */
static int counts_put(cj_tx *tx, struct counts *c, const char *type) {
	int rc = CJ_OK;
	for (int shard = 0; rc == CJ_OK && shard < CJ_COUNT_SHARDS; shard++)
		for (int kind = 0; rc == CJ_OK && kind < CJ_COUNT_KINDS; kind++) {
			if (!c->c[shard][kind]) continue;
			cj__key_counter(&tx->kbuf, c->type, kind, shard);
			rc = cj__add(tx, &tx->kbuf, c->c[shard][kind]);
		}
	snprintf(c->type, sizeof c->type, "%s", type);
	memset(c->c, 0, sizeof c->c);
	return rc;
}

/* Converts one job (key k, value v) to format 6; counts it in c. */
static int convert_job(cj_tx *tx, const uint8_t *k, size_t kl, const uint8_t *v,
                       size_t vl, struct counts *c, int64_t now_ms, cj_buf *key,
                       cj_buf *val) {
	char *type = NULL, *id = NULL;
	cj_jv jv;
	cj_state state;
	int rc;
	if ((rc = cj__jv_decode(v, vl, &jv)) || (rc = cj__key_data_parse(k, kl, &type, &id)))
		goto out;
	int rewrite = jv.v1;
	if (strcmp(c->type, type) != 0 && (rc = counts_put(tx, c, type))) goto out;
	if (jv.has_lock && jv.v1) jv.attempt = 1; /* its attempt runs */
	if ((rc = cj__job_state(tx, type, id, &jv, &state))) goto out;
	if ((state == CJ_FINISHED || state == CJ_DEAD) && c->from < 3) {
		if (jv.finished_ms == 0) {
			jv.finished_ms = now_ms;
			rewrite = 1;
		}
		cj_buf empty = CJ_BUF_INIT;
		cj__key_finished(&tx->kbuf, type, jv.dead, jv.finished_ms, id);
		if ((rc = cj__put(tx, &tx->kbuf, &empty))) goto out;
	}
	cj__count_job(&jv, c->c[cj__count_shard(tx->db, id)]);
	if (rewrite) {
		cj__buf_reset(key);
		cj__buf_add(key, k, kl);
		cj__jv_encode(val, &jv, NULL, 0);
		rc = cj__put(tx, key, val);
	}
out:
	cj_free(type);
	cj_free(id);
	return rc;
}

/* Calls fn for every key under prefix (a subspace of the jobs), read
 * CJ_CONVERT_BATCH at a time, each batch from just after the last key of
 * the one before; fn may write. */
static int each_key(cj_tx *tx, const cj_buf *prefix,
                    int (*fn)(cj_tx *tx, const uint8_t *k, size_t kl, const uint8_t *v,
                              size_t vl, void *arg),
                    void *arg) {
	cj_batch c = {CJ_BUF_INIT, 0, CJ_CONVERT_BATCH};
	cj_buf lo = CJ_BUF_INIT, hi = CJ_BUF_INIT;
	cj__buf_add(&lo, prefix->p, prefix->len);
	cj__buf_add(&hi, prefix->p, prefix->len);
	cj__tup_range_end(&hi);
	int rc, more;
	do {
		cj__buf_reset(&c.kv);
		c.n = 0;
		if ((rc = cj__scan(tx, &lo, &hi, cj__batch_add, &c)) < 0) break;
		more = rc == 1;
		rc = CJ_OK;
		size_t off = 0, kl, vl;
		const uint8_t *k, *v;
		while (rc == CJ_OK && cj__batch_next(&c, &off, &k, &kl, &v, &vl)) {
			if ((rc = fn(tx, k, kl, v, vl, arg))) break;
			cj__buf_reset(&lo);
			cj__buf_add(&lo, k, kl);
			cj__buf_add(&lo, "", 1);
			if (lo.oom) rc = cj__fail(CJ_NOMEM, "out of memory");
		}
	} while (rc == CJ_OK && more);
	cj__buf_free(&c.kv);
	cj__buf_free(&lo);
	cj__buf_free(&hi);
	return rc;
}

/* Deletes a counter: the conversion computes them from the jobs (a store
 * of an older format has none, unless a process of this build wrote some
 * before the store was converted), and format 6 keeps no count of the
 * finished index. */
static int counter_del(cj_tx *tx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                       void *arg) {
	(void)v, (void)vl;
	cj_buf *key = arg;
	cj__buf_reset(key);
	cj__buf_add(key, k, kl);
	return cj__del_blind(tx, key);
}

struct convert_arg {
	struct counts cnt;
	int64_t now_ms;
	cj_buf key, val;
};

static int convert_one(cj_tx *tx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                       void *arg) {
	struct convert_arg *a = arg;
	return convert_job(tx, k, kl, v, vl, &a->cnt, a->now_ms, &a->key, &a->val);
}

/* Converts a store of format from to format 6, in tx. */
static int convert(cj_tx *tx, int from) {
	struct convert_arg a;
	cj_buf prefix = CJ_BUF_INIT;
	memset(&a, 0, sizeof a);
	a.cnt.from = from;
	a.now_ms = cj__epoch_ms();
	cj__key_finished_count_prefix(&prefix);
	int rc = each_key(tx, &prefix, counter_del, &a.key);
	if (from == 5) goto out; /* its jobs and their counters are as format 6 has them */
	cj__key_counter_prefix(&prefix, NULL);
	if (rc == CJ_OK) rc = each_key(tx, &prefix, counter_del, &a.key);
	cj__key_counter_v4_prefix(&prefix);
	if (rc == CJ_OK) rc = each_key(tx, &prefix, counter_del, &a.key);
	cj__key_data_prefix(&prefix, NULL);
	if (rc == CJ_OK) rc = each_key(tx, &prefix, convert_one, &a);
	if (rc == CJ_OK) rc = counts_put(tx, &a.cnt, "");
out:
	cj__buf_free(&prefix);
	cj__buf_free(&a.key);
	cj__buf_free(&a.val);
	return rc;
}

static int upgrade_fn(cj_tx *tx, void *arg) {
	struct format_arg *a = arg;
	int rc = read_format(tx, a);
	if (rc || a->version < 1 || a->version >= CJ_FORMAT_VERSION) return rc; /* another was first */
	if ((rc = convert(tx, (int)a->version))) return rc;
	cj_buf k = CJ_BUF_INIT, v = CJ_BUF_INIT;
	cj__key_meta(&k, "format");
	cj__tup_int(&v, CJ_FORMAT_VERSION);
	rc = cj__put(tx, &k, &v);
	cj__buf_free(&k);
	cj__buf_free(&v);
	if (rc == CJ_OK) a->version = CJ_FORMAT_VERSION;
	return rc;
}

/* Format bump procedure: raise CJ_FORMAT_VERSION, convert older formats
 * here (in one write transaction), and describe the change in
 * doc/format.md. */
static int check_format(cj_db *db) {
	struct format_arg a = {0, 0};
	int rc = cj__run(db, NULL, 0, read_format, &a);
	if (rc == CJ_OK && !a.found) rc = cj__run(db, NULL, 1, write_format, &a);
	if (rc == CJ_OK && a.version >= 1 && a.version < CJ_FORMAT_VERSION) {
		if (cj__engine_readonly(db->eng, db->edb))
			return cj__fail(CJ_STORE, "the store is in format %d and read-only: open it "
			                "once with write access to convert it to format %d",
			                (int)a.version, CJ_FORMAT_VERSION);
		rc = cj__run(db, NULL, 1, upgrade_fn, &a);
	}
	if (rc) return rc;
	if (a.version != CJ_FORMAT_VERSION)
		return cj__fail(CJ_STORE, "unknown store format version %lld (this library "
		                "knows %d)", (long long)a.version, CJ_FORMAT_VERSION);
	return CJ_OK;
}

/* The handle's mutex and condition variable (on the monotonic clock), and
 * its group commit's (group.c). */
static int sync_init(cj_db *db) {
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca) != 0)
		return cj__fail(CJ_NOMEM, "cannot create a condition variable");
	int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (rc == 0 && (rc = pthread_cond_init(&db->cond, &ca)) == 0 &&
	    (rc = pthread_mutex_init(&db->mu, NULL)) != 0)
		pthread_cond_destroy(&db->cond);
	pthread_condattr_destroy(&ca);
	if (rc)
		return cj__fail(CJ_NOMEM, "cannot create the handle's mutex and condition "
		                "variable");
	if ((rc = cj__group_init(db))) {
		pthread_cond_destroy(&db->cond);
		pthread_mutex_destroy(&db->mu);
	}
	return rc;
}

int cj_open(const char *url, const cj_options *opts, cj_db **out) {
	cj_options defaults = CJ_OPTIONS_INIT;
	if (!out) return cj__fail(CJ_INVALID, "db out-pointer is NULL");
	*out = NULL;
	if (!url || !*url) return cj__fail(CJ_INVALID, "store URL is NULL or empty");
	if (!opts) opts = &defaults;
	int rc = check_options(opts);
	if (rc) return rc;
	cj_db *db = cj__calloc(1, sizeof *db);
	if (!db) return cj__fail(CJ_NOMEM, "out of memory");
	db->opts = *opts;
	db->max_data = opts->max_data_size ? opts->max_data_size : CJ_DEFAULT_DATA_LIMIT;
	if ((rc = sync_init(db))) {
		cj_free(db);
		return rc;
	}
	if ((rc = cj__engine_open(url, opts, &db->eng, &db->edb))) goto out_free;
	db->count_shards = db->eng->count_shards ? db->eng->count_shards(db->edb) : 0;
	if (db->count_shards < 1 || db->count_shards > CJ_COUNT_SHARDS)
		db->count_shards = CJ_COUNT_SHARDS;
	if ((rc = check_format(db))) goto out_free;
	cj__group_start(db);
	cj__combine_start(db);
	cj__schedule_clock_init(db);
	if (!opts->no_monitor && !cj__engine_readonly(db->eng, db->edb) &&
	    (rc = cj__monitor_start(db)))
		goto out_free;
	*out = db;
	return CJ_OK;
out_free:
	cj_close(db);
	return rc;
}

void cj_close(cj_db *db) {
	if (!db) return;
	cj__notifier_stop(db);
	cj__monitor_stop(db);
	cj__engine_close(db->eng, db->edb);
	cj__group_destroy(db);
	pthread_cond_destroy(&db->cond);
	pthread_mutex_destroy(&db->mu);
	cj_free(db->test_clock);
	cj_free(db);
}

const char *cj_db_engine(const cj_db *db) { return db ? db->eng->name : "none"; }

int cj_db_stats(const cj_db *db, cj_stats *stats) {
	if (!db || !stats) return cj__fail(CJ_INVALID, "NULL argument");
	stats->store_reads = atomic_load_explicit(&db->store_reads, memory_order_relaxed);
	stats->notifier_passes = atomic_load_explicit(&db->notifier_passes, memory_order_relaxed);
	stats->notifier_reads = atomic_load_explicit(&db->notifier_reads, memory_order_relaxed);
	stats->combined_calls = atomic_load_explicit(&db->group.combined, memory_order_relaxed);
	stats->acceptor_wakes = atomic_load_explicit(&db->acceptor_wakes, memory_order_relaxed);
	stats->notifier_lock_ns = atomic_load_explicit(&db->notifier_lock_ns, memory_order_relaxed);
	stats->round_trips = db->eng->round_trips ? db->eng->round_trips(db->edb) : 0;
	stats->statements = db->eng->statements ? db->eng->statements(db->edb) : 0;
	stats->notifications_sent = db->eng->notes_sent ? db->eng->notes_sent(db->edb) : 0;
	stats->notifications_received =
	    db->eng->notes_received ? db->eng->notes_received(db->edb) : 0;
	stats->shared_flushes = db->eng->shared_flushes ? db->eng->shared_flushes(db->edb) : 0;
	stats->combined_processes =
	    atomic_load_explicit(&db->group.xcombined, memory_order_relaxed);
	return CJ_OK;
}
