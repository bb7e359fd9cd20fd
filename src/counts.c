/*
 * Counts of jobs per type and state, kept in the store.
 *
 * Every change of a job's data value goes through cj__job_write or
 * cj__job_delete (job.c), which call cj__count_move with the value before
 * and after: the kinds the job is counted in (enum cj_count_kind) that
 * differ get -1 and +1 in the same transaction, on the counter of the
 * job's shard. So a count is the sum of its CJ_COUNT_SHARDS counters, read
 * with one short scan, whatever the number of jobs.
 *
 * Pending jobs due later ("scheduled") are not a state of their own: a job
 * falls due by the clock, without a transaction. Their number is counted
 * from the pending index at read time, from now on: the reads cost the
 * jobs scheduled for later, never the others.
 */
#include <string.h>

#include "cj_int.h"

/* The kinds the job of value jv (NULL: none) is counted in, one bit each. */
static unsigned count_kinds(const cj_jv *jv) {
	if (!jv) return 0;
	if (jv->has_lock) return 1u << CJ_COUNT_RUNNING;
	if (jv->dead) return 1u << CJ_COUNT_DEAD;
	if (jv->finished_ms != 0) return 1u << CJ_COUNT_FINISHED;
	unsigned k = 1u << CJ_COUNT_PENDING;
	if (jv->sched == 0) k |= 1u << CJ_COUNT_UNTIMED;
	if (jv->attempt > 0) k |= 1u << CJ_COUNT_RETRYING;
	return k;
}

int cj__count_shard(const cj_db *db, const char *id) {
	int n = db->count_shards;
	return n == 1 ? 0 : (int)(cj__fnv(CJ_FNV_SEED, id, strlen(id)) % (unsigned)n);
}

int cj__count_move(cj_tx *tx, const char *type, const char *id, const cj_jv *from,
                   const cj_jv *to) {
	unsigned a = count_kinds(from), b = count_kinds(to);
	if (a == b) return CJ_OK;
	int shard = cj__count_shard(tx->db, id);
	/* in the order of the keys, so that writers of one shard that lock
	 * counters (engine.h's add) take them in one order */
	for (int kind = 0; kind < CJ_COUNT_KINDS; kind++) {
		unsigned bit = 1u << kind;
		if ((a & bit) == (b & bit)) continue;
		cj__key_counter(&tx->kbuf, type, kind, shard);
		int rc = cj__add(tx, &tx->kbuf, (b & bit) ? 1 : -1);
		if (rc) return rc;
	}
	return CJ_OK;
}

int cj__count_job(const cj_jv *jv, int64_t n[CJ_COUNT_KINDS]) {
	unsigned k = count_kinds(jv);
	for (int kind = 0; kind < CJ_COUNT_KINDS; kind++)
		if (k & (1u << kind)) n[kind]++;
	return (int)k;
}

/* ---- reading ----------------------------------------------------------------- */

/* Adds a counter to the sum at arg. */
static int count_sum(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *arg) {
	(void)k, (void)kl;
	int64_t n;
	int rc = cj__counter_decode(v, vl, &n);
	if (rc == CJ_OK) *(int64_t *)arg += n;
	return rc;
}

int cj__count_read(cj_tx *tx, const char *type, int kind, int64_t *n) {
	cj_buf lo = CJ_BUF_INIT, hi = CJ_BUF_INIT;
	*n = 0;
	cj__key_counter(&lo, type, kind, 0);
	cj__key_counter(&hi, type, kind, CJ_COUNT_SHARDS);
	int rc = cj__add_flush(tx); /* this transaction's own changes */
	if (rc == CJ_OK) rc = cj__scan(tx, &lo, &hi, count_sum, n);
	if (rc == CJ_OK && *n < 0)
		rc = cj__fail(CJ_STORE, "corrupt counter: %lld jobs", (long long)*n);
	cj__buf_free(&lo);
	cj__buf_free(&hi);
	return rc;
}

/* The sums of the counters of the types met by a scan, in key order. */
struct sums {
	cj_buf names; /* NUL-terminated types one after another */
	int64_t (*n)[CJ_COUNT_KINDS];
	size_t len, cap;
	char *last; /* the type of the last key met */
};

static int sums_add(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *arg) {
	struct sums *s = arg;
	char *type = NULL;
	int kind, shard;
	int64_t n;
	int rc = cj__key_counter_parse(k, kl, &type, &kind, &shard);
	if (rc == CJ_OK && (rc = cj__counter_decode(v, vl, &n)) == CJ_OK && n < 0)
		rc = cj__fail(CJ_STORE, "corrupt counter: %lld jobs", (long long)n);
	if (rc) goto out;
	if (!s->last || strcmp(s->last, type) != 0) {
		if (s->len == s->cap) {
			size_t cap = s->cap ? 2 * s->cap : 8;
			void *p = cj__realloc(s->n, cap * sizeof *s->n);
			if (!p) {
				rc = cj__fail(CJ_NOMEM, "out of memory");
				goto out;
			}
			s->n = p;
			s->cap = cap;
		}
		memset(s->n[s->len++], 0, sizeof s->n[0]);
		cj__buf_add(&s->names, type, strlen(type) + 1);
		if (s->names.oom) {
			rc = cj__fail(CJ_NOMEM, "out of memory");
			goto out;
		}
		cj_free(s->last);
		s->last = type;
		type = NULL;
	}
	s->n[s->len - 1][kind] += n;
out:
	cj_free(type);
	return rc;
}

static void sums_free(struct sums *s) {
	cj__buf_free(&s->names);
	cj_free(s->n);
	cj_free(s->last);
}

/* Counts the pending keys of type in [lo, hi). */
static int count_key(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *arg) {
	(void)k, (void)kl, (void)v, (void)vl;
	(*(uint64_t *)arg)++;
	return 0;
}

/* The first pending key of type in [from, to) seconds (to -1: no end):
 * 1 with its time and id (cj_free), 0 if none, or a code. */
static int first_pending(cj_tx *tx, const char *type, int64_t from, int64_t to,
                         int64_t *sched, char **id) {
	cj_buf lo = CJ_BUF_INIT, hi = CJ_BUF_INIT, k = CJ_BUF_INIT;
	cj__key_pending_at(&lo, type, from);
	if (to < 0) {
		cj__key_pending_prefix(&hi, type);
		cj__tup_range_end(&hi);
	} else {
		cj__key_pending_at(&hi, type, to);
	}
	int rc = cj__scan_first(tx, &lo, &hi, &k);
	if (rc == 1 && (rc = cj__key_pending_parse(k.p, k.len, sched, id)) == CJ_OK) rc = 1;
	cj__buf_free(&lo);
	cj__buf_free(&hi);
	cj__buf_free(&k);
	return rc;
}

/* Fills out from the sums n of type: splits the pending jobs at now and
 * finds the oldest due one. */
static int type_counts(cj_tx *tx, const char *type, const int64_t n[CJ_COUNT_KINDS],
                       cj_type_counts *out) {
	int64_t now = cj__epoch_ms() / 1000, sched;
	char *id = NULL;
	cj_buf lo = CJ_BUF_INIT, hi = CJ_BUF_INIT, copy = CJ_BUF_INIT;
	memset(out, 0, sizeof *out);
	out->oldest_added_ms = out->oldest_due = -1;
	out->running = (uint64_t)n[CJ_COUNT_RUNNING];
	out->finished = (uint64_t)n[CJ_COUNT_FINISHED];
	out->dead = (uint64_t)n[CJ_COUNT_DEAD];
	out->untimed = (uint64_t)n[CJ_COUNT_UNTIMED];
	out->retrying = (uint64_t)n[CJ_COUNT_RETRYING];
	int rc = CJ_OK;
	if (n[CJ_COUNT_PENDING] == 0) goto out;
	/* due later: from now + 1 on */
	cj__key_pending_at(&lo, type, cj__add_sat(now, 1));
	cj__key_pending_prefix(&hi, type);
	cj__tup_range_end(&hi);
	if ((rc = cj__scan(tx, &lo, &hi, count_key, &out->scheduled)) < 0) goto out;
	rc = CJ_OK;
	/* the scan and the counters come from one snapshot, or, in a write
	 * transaction, from keys this one holds or wrote */
	out->pending = (uint64_t)n[CJ_COUNT_PENDING] > out->scheduled
	                       ? (uint64_t)n[CJ_COUNT_PENDING] - out->scheduled
	                       : 0;
	if (out->pending == 0) goto out;
	if ((rc = first_pending(tx, type, 0, cj__add_sat(now, 1), &sched, &id)) <= 0) goto out;
	cj_jv jv;
	if ((rc = cj__job_read(tx, type, id, &copy, &jv)) == CJ_OK) out->oldest_added_ms = jv.added_ms;
	if (rc == CJ_NOT_FOUND) rc = cj__fail(CJ_STORE, "corrupt store: pending job without data");
	if (rc) goto out;
	cj_free(id);
	id = NULL;
	if (sched == 0 && (rc = first_pending(tx, type, 1, cj__add_sat(now, 1), &sched, &id)) <= 0)
		goto out;
	out->oldest_due = sched;
	rc = CJ_OK;
out:
	cj_free(id);
	cj__buf_free(&lo);
	cj__buf_free(&hi);
	cj__buf_free(&copy);
	return rc < 0 ? rc : CJ_OK;
}

struct counts_arg {
	const char *type; /* NULL: every type */
	cj_type_counts *out;
	cj_type_counts_fn fn;
	void *arg;
};

static int counts_fn(cj_tx *tx, void *arg) {
	struct counts_arg *a = arg;
	struct sums s = {CJ_BUF_INIT, NULL, 0, 0, NULL};
	cj_buf k = CJ_BUF_INIT;
	cj__key_counter_prefix(&k, a->type);
	int rc = cj__add_flush(tx); /* this transaction's own changes */
	if (rc == CJ_OK) rc = cj__scan_prefix(tx, &k, sums_add, &s);
	cj__buf_free(&k);
	if (rc) goto out;
	if (a->type) {
		static const int64_t none[CJ_COUNT_KINDS];
		rc = type_counts(tx, a->type, s.len ? s.n[0] : none, a->out);
		goto out;
	}
	const char *type = (const char *)s.names.p;
	for (size_t i = 0; i < s.len; i++, type += strlen(type) + 1) {
		int any = 0;
		for (int kind = 0; kind < CJ_COUNT_KINDS; kind++) any |= s.n[i][kind] != 0;
		cj_type_counts c;
		if (!any) continue; /* counters of jobs gone */
		if ((rc = type_counts(tx, type, s.n[i], &c)) || (rc = a->fn(type, &c, a->arg)))
			break;
	}
out:
	sums_free(&s);
	return rc;
}

int cj_get_type_counts(cj_db *db, cj_tx *tx, const char *type, cj_type_counts *counts) {
	if (!db || !counts) return cj__fail(CJ_INVALID, "NULL argument");
	int rc = cj__check_type(type);
	if (rc) return rc;
	struct counts_arg a = {type, counts, NULL, NULL};
	return cj__run(db, tx, 0, counts_fn, &a);
}

int cj_list_type_counts(cj_db *db, cj_tx *tx, cj_type_counts_fn fn, void *arg) {
	if (!db || !fn) return cj__fail(CJ_INVALID, "NULL argument");
	struct counts_arg a = {NULL, NULL, fn, arg};
	return cj__run(db, tx, 0, counts_fn, &a);
}
