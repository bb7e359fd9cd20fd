/*
 * cj_verify: the invariant checker.
 *
 * One read transaction scans the whole job space in key order. Each key is
 * decoded and its value checked on its own; then the entries that index a
 * job (pending, activity) and the job itself are checked against each other
 * with point reads. Every index entry is checked from its own side (it must
 * point at a job in its state, at its time or sequence), and every job from
 * its side (it must have the entry its state asks for), which together make
 * "exactly one". The counts of jobs (counts.c), met before the jobs in key
 * order, are compared with the jobs counted as the scan meets them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cj_int.h"

#define VFY_MAX_ELEMS 7
#define VFY_SHOW 80 /* bytes of a type, id or key shown in a line */

/* The counters of one type, as stored and as counted from its jobs. */
struct vcounts {
	char *type;
	int broken; /* a job value of the type did not decode (reported) */
	int64_t stored[CJ_COUNT_SHARDS][CJ_COUNT_KINDS];
	int64_t counted[CJ_COUNT_SHARDS][CJ_COUNT_KINDS];
};

struct vfy {
	cj_tx *tx;
	struct vcounts *c; /* the types met, in key order */
	size_t nc, ccap;
	int64_t format; /* the store's format version (meta), 0 before it is met */
	cj_verify_fn report;
	void *arg;
	uint64_t problems;
	int stopped; /* report's non-zero return */
	cj_buf key, val, copy, ikey;
};

/* Appends s[0..n) to out (of cap bytes) quoted, printable ASCII as is and
 * every other byte as \xNN, at most VFY_SHOW bytes of s. */
static void show(char *out, size_t cap, const void *s, size_t n) {
	const uint8_t *p = s;
	size_t o = strlen(out);
	if (o + 2 >= cap) return;
	out[o++] = '"';
	for (size_t i = 0; i < n && i < VFY_SHOW && o + 6 < cap; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
			out[o++] = (char)p[i];
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", p[i]);
	}
	if (n > VFY_SHOW && o + 4 < cap) o += (size_t)snprintf(out + o, cap - o, "...");
	if (o + 1 < cap) out[o++] = '"';
	out[o] = 0;
}

/* Reports one problem: "type T id I: what", "type T: what" or "key K: what". */
static void problem(struct vfy *v, const char *type, const char *id,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void problem(struct vfy *v, const char *type, const char *id,
                    const char *fmt, ...) {
	char line[1024] = "";
	v->problems++;
	if (v->stopped || !v->report) return;
	if (type) {
		strcat(line, "type ");
		show(line, sizeof line, type, strlen(type));
		if (id) {
			strcat(line, " id ");
			show(line, sizeof line, id, strlen(id));
		}
	} else {
		strcat(line, "key ");
		show(line, sizeof line, v->key.p, v->key.len);
	}
	size_t o = strlen(line);
	if (o + 3 < sizeof line) {
		strcpy(line + o, ": ");
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(line + o + 2, sizeof line - o - 2, fmt, ap);
		va_end(ap);
	}
	v->stopped = v->report(line, v->arg);
}

/* The decoded elements of a key. */
struct vkey {
	int n;
	cj_tup_item e[VFY_MAX_ELEMS];
	char type[CJ_MAX_TYPE + 1];
	char id[CJ_MAX_ID + 1];
};

/* Copies a string element into out (of cap bytes): 0, or -1 if it is too
 * long, empty or holds a NUL byte. */
static int elem_str(const cj_tup_item *it, char *out, size_t cap) {
	if (it->kind != CJ_TUP_STRING || it->len == 0 || it->len >= cap) return -1;
	cj__tup_copy(it, out);
	out[it->len] = 0;
	return strlen(out) == it->len ? 0 : -1;
}

static void fmt_vs(char out[2 * CJ_VS_LEN + 1], const uint8_t vs[CJ_VS_LEN]) {
	for (int i = 0; i < CJ_VS_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", vs[i]);
}

/* Reads the job (type, id) into jv: CJ_OK, CJ_NOT_FOUND, 1 for a value
 * that does not decode (reported where its own key is met), or a code. */
static int read_job(struct vfy *v, const char *type, const char *id, cj_jv *jv) {
	const uint8_t *val;
	size_t vl;
	cj__key_data(&v->ikey, type, id);
	int rc = cj__get(v->tx, &v->ikey, &val, &vl);
	if (rc) return rc;
	cj__buf_reset(&v->copy);
	cj__buf_add(&v->copy, val, vl);
	if (v->copy.oom) return cj__fail(CJ_NOMEM, "out of memory");
	return cj__jv_decode(v->copy.p, v->copy.len, jv) == CJ_OK ? CJ_OK : 1;
}

/* 1 if the key in v->ikey is there, 0 if not, or a code. */
static int has_key(struct vfy *v) {
	const uint8_t *val;
	size_t vl;
	int rc = cj__get(v->tx, &v->ikey, &val, &vl);
	return rc == CJ_OK ? 1 : rc == CJ_NOT_FOUND ? 0 : rc;
}

/* The fields of format 2: times, and each error one JSON object. */
static int check_record(struct vfy *v, const char *type, const char *id, const cj_jv *jv) {
	if (jv->v1) {
		problem(v, type, id, "job value in format 1");
		return CJ_OK;
	}
	if (jv->dead && jv->finished_ms == 0) problem(v, type, id, "dead, without a finish time");
	if (jv->has_lock && jv->finished_ms != 0)
		problem(v, type, id, "running, with a finish time");
	if (jv->has_lock && jv->attempt == 0) problem(v, type, id, "running, at attempt 0");
	for (int i = 0; i < jv->nerr; i++) {
		cj_tup_reader r;
		cj_tup_item it;
		char one[CJ_ERR_ENTRY_MAX];
		cj__tup_reader_init(&r, jv->err_enc[i], jv->err_enclen[i]);
		if (cj__tup_next(&r, &it) != 1) continue;
		cj__tup_copy(&it, one);
		if (cj__json_check_object(one, it.len) != CJ_OK)
			problem(v, type, id, "error %d is not one JSON object", i + 1);
	}
	return CJ_OK;
}

/* The counters of type (found, or a new entry); NULL when out of memory.
 * The entries are kept in the order of their types, which is the keys'
 * (a type's counters and jobs come one after another): a lookup is a
 * binary search, and the last type met is tried first. */
static struct vcounts *counts_of(struct vfy *v, const char *type) {
	size_t lo = 0, hi = v->nc;
	if (hi && strcmp(v->c[hi - 1].type, type) < 0) lo = hi;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v->c[mid].type, type);
		if (c == 0) return &v->c[mid];
		if (c < 0) lo = mid + 1;
		else hi = mid;
	}
	if (v->nc == v->ccap) {
		size_t cap = v->ccap ? 2 * v->ccap : 8;
		struct vcounts *c = cj__realloc(v->c, cap * sizeof *c);
		if (!c) return NULL;
		v->c = c;
		v->ccap = cap;
	}
	char *name = cj__strdup(type);
	if (!name) return NULL;
	struct vcounts *c = &v->c[lo];
	memmove(c + 1, c, (v->nc - lo) * sizeof *c);
	memset(c, 0, sizeof *c);
	c->type = name;
	v->nc++;
	return c;
}

/* ("counts", type, kind, shard) = n: kept to compare at the end. */
static int check_counter(struct vfy *v, struct vkey *k) {
	int kind = (int)k->e[3].i, shard = (int)k->e[4].i;
	int64_t n;
	if (cj__counter_decode(v->val.p, v->val.len, &n) != CJ_OK) {
		problem(v, k->type, NULL, "counter of kind %d, shard %d does not decode", kind, shard);
		return CJ_OK;
	}
	struct vcounts *c = counts_of(v, k->type);
	if (!c) return cj__fail(CJ_NOMEM, "out of memory");
	c->stored[shard][kind] = n;
	return CJ_OK;
}

/* Reports every counter that differs from the jobs it counts (in a store
 * of this format: opening converts an older one, computing its counts). */
static void counts_compare(struct vfy *v) {
	if (v->format != CJ_FORMAT_VERSION) return;
	static const char *const names[CJ_COUNT_KINDS] = {"pending", "running", "finished",
	                                                  "dead", "untimed", "retrying"};
	for (size_t i = 0; i < v->nc; i++)
		for (int shard = 0; shard < CJ_COUNT_SHARDS && !v->c[i].broken; shard++)
			for (int kind = 0; kind < CJ_COUNT_KINDS; kind++) {
				int64_t s = v->c[i].stored[shard][kind], n = v->c[i].counted[shard][kind];
				if (s != n)
					problem(v, v->c[i].type, NULL,
					        "%s count %lld in shard %d, but %lld such jobs", names[kind],
					        (long long)s, shard, (long long)n);
			}
}

static void counts_free(struct vfy *v) {
	for (size_t i = 0; i < v->nc; i++) cj_free(v->c[i].type);
	cj_free(v->c);
	v->c = NULL;
	v->nc = v->ccap = 0;
}

static int check_data(struct vfy *v, struct vkey *k) {
	const char *type = k->type, *id = k->id;
	cj_jv jv;
	struct vcounts *c = counts_of(v, type);
	if (!c) return cj__fail(CJ_NOMEM, "out of memory");
	if (cj__jv_decode(v->val.p, v->val.len, &jv) != CJ_OK) {
		problem(v, type, id, "%s", cj_last_error());
		c->broken = 1; /* its counts cannot be checked */
		return CJ_OK;
	}
	if (jv.v1) c->broken = 1; /* reported below: without the fields counted */
	else cj__count_job(&jv, c->counted[cj__count_shard(v->tx->db, id)]);
	char *data;
	int rc = cj__jv_data(&jv, &data);
	if (rc == CJ_STORE) problem(v, type, id, "%s", cj_last_error());
	else if (rc) return rc;
	cj_free(data);
	if (jv.resubmit && !jv.has_lock)
		problem(v, type, id, "flagged for resubmission but not running");
	if ((rc = check_record(v, type, id, &jv))) return rc;
	if (jv.v1) return CJ_OK; /* its later fields are not there to check */
	/* its pending entry, at its scheduled time */
	cj__key_pending(&v->ikey, type, jv.sched, id);
	if ((rc = has_key(v)) < 0) return rc;
	int pending = rc;
	if (pending && jv.has_lock) problem(v, type, id, "running, and has a pending entry");
	if (pending && jv.dead) problem(v, type, id, "dead, and has a pending entry");
	if (pending && jv.finished_ms != 0) problem(v, type, id, "pending, with a finish time");
	if (!pending && !jv.has_lock && jv.finished_ms == 0 && !jv.dead) {
		problem(v, type, id, "no pending entry at its scheduled time %lld, and no finish "
		        "time", (long long)jv.sched);
	} else if (!pending && !jv.has_lock && jv.finished_ms != 0) {
		/* finished or dead: its finished entry, at its finish time */
		cj__key_finished(&v->ikey, type, jv.dead, jv.finished_ms, id);
		if ((rc = has_key(v)) < 0) return rc;
		if (!rc)
			problem(v, type, id, "%s, but has no finished entry at %lld",
			        jv.dead ? "dead" : "finished", (long long)jv.finished_ms);
	}
	if (!jv.has_lock) return CJ_OK;
	/* its activity entry, at its sequence, naming it */
	char vs[2 * CJ_VS_LEN + 1];
	fmt_vs(vs, jv.seq);
	cj__key_activity(&v->ikey, type, jv.seq);
	const uint8_t *val;
	size_t vl;
	rc = cj__get(v->tx, &v->ikey, &val, &vl);
	if (rc == CJ_NOT_FOUND) {
		problem(v, type, id, "running, but has no activity entry at its sequence %s", vs);
		return CJ_OK;
	}
	if (rc) return rc;
	cj_tup_reader r;
	cj_tup_item it;
	cj__tup_reader_init(&r, val, vl);
	if (cj__tup_next(&r, &it) != 1 || !cj__tup_eq(&it, id, strlen(id)) ||
	    it.kind != CJ_TUP_STRING || cj__tup_next(&r, &it) != 0)
		problem(v, type, id, "the activity entry at its sequence %s names another job", vs);
	return CJ_OK;
}

static int check_pending(struct vfy *v, struct vkey *k) {
	const char *type = k->type, *id = k->id;
	int64_t sched = k->e[3].i;
	if (v->val.len != 0) problem(v, type, id, "pending entry with a value");
	cj_jv jv;
	int rc = read_job(v, type, id, &jv);
	if (rc == CJ_NOT_FOUND) {
		problem(v, type, id, "pending entry at %lld of a job that does not exist",
		        (long long)sched);
		return CJ_OK;
	}
	if (rc == 1) return CJ_OK; /* reported at the job's own key */
	if (rc) return rc;
	if (jv.has_lock || jv.dead)
		; /* reported at the job's key */
	else if (jv.sched != sched)
		problem(v, type, id, "pending entry at %lld, but the job is scheduled at %lld",
		        (long long)sched, (long long)jv.sched);
	return CJ_OK;
}

static int check_activity(struct vfy *v, struct vkey *k) {
	const char *type = k->type;
	char vs[2 * CJ_VS_LEN + 1];
	fmt_vs(vs, k->e[3].raw);
	cj_tup_reader r;
	cj_tup_item it;
	cj__tup_reader_init(&r, v->val.p, v->val.len);
	if (cj__tup_next(&r, &it) != 1 || elem_str(&it, k->id, sizeof k->id) != 0 ||
	    cj__tup_next(&r, &it) != 0) {
		problem(v, type, NULL, "activity entry at %s: its value is not a job id", vs);
		return CJ_OK;
	}
	const char *id = k->id;
	cj_jv jv;
	int rc = read_job(v, type, id, &jv);
	if (rc == CJ_NOT_FOUND) {
		problem(v, type, id, "activity entry at %s of a job that does not exist", vs);
		return CJ_OK;
	}
	if (rc == 1) return CJ_OK;
	if (rc) return rc;
	if (!jv.has_lock)
		problem(v, type, id, "activity entry at %s of a job that is not running", vs);
	else if (memcmp(jv.seq, k->e[3].raw, CJ_VS_LEN) != 0)
		problem(v, type, id, "activity entry at %s, but the job's sequence is another", vs);
	return CJ_OK;
}

/* ("finished", type, dead, ms, id): the job is finished (or dead) at ms. */
static int check_finished(struct vfy *v, struct vkey *k) {
	const char *type = k->type, *id = k->id;
	int dead = (int)k->e[3].i;
	int64_t ms = k->e[4].i;
	const char *what = dead ? "dead" : "finished";
	if (v->val.len != 0) problem(v, type, id, "finished entry with a value");
	cj_jv jv;
	cj_state state;
	int rc = read_job(v, type, id, &jv);
	if (rc == CJ_NOT_FOUND) {
		problem(v, type, id, "%s entry at %lld of a job that does not exist", what,
		        (long long)ms);
		return CJ_OK;
	}
	if (rc == 1 || (rc == CJ_OK && jv.v1)) return CJ_OK; /* reported at its own key */
	if (rc || (rc = cj__job_state(v->tx, type, id, &jv, &state))) return rc;
	if (state != (dead ? CJ_DEAD : CJ_FINISHED))
		problem(v, type, id, "%s entry at %lld of a job that is %s", what, (long long)ms,
		        cj_state_name(state));
	else if (jv.finished_ms != ms)
		problem(v, type, id, "%s entry at %lld, but the job finished at %lld", what,
		        (long long)ms, (long long)jv.finished_ms);
	return CJ_OK;
}

/* Checks a one-element value: an int in lo..hi or a versionstamp. */
static void check_int_value(struct vfy *v, const char *type, const char *what,
                            int64_t lo, int64_t hi) {
	int64_t n;
	if (cj__val_int(v->val.p, v->val.len, &n) != CJ_OK)
		problem(v, type, NULL, "%s does not decode", what);
	else if (n < lo || n > hi)
		problem(v, type, NULL, "%s %lld is outside %lld..%lld", what, (long long)n,
		        (long long)lo, (long long)hi);
}

/* A schedule: its key names it, its value decodes, its definition checks
 * (its cron expression parses and fires, its zone loads). */
static int check_schedule(struct vfy *v) {
	char *name;
	cj_schedule_info i;
	int rc = cj__key_schedule_parse(v->key.p, v->key.len, &name);
	if (rc == CJ_NOMEM) return rc;
	if (rc) {
		problem(v, NULL, NULL, "schedule key without a valid name");
		return CJ_OK;
	}
	if ((rc = cj__schedule_decode(v->val.p, v->val.len, &i)) == CJ_OK) {
		rc = cj__schedule_info_check(&i);
		if (rc == CJ_INVALID || rc == CJ_JSON)
			problem(v, NULL, NULL, "schedule \"%.80s\": %s", name, cj_last_error());
		if (rc != CJ_NOMEM) rc = CJ_OK;
	} else if (rc == CJ_STORE) {
		problem(v, NULL, NULL, "schedule \"%.80s\": %s", name, cj_last_error());
		rc = CJ_OK;
	}
	cj_schedule_info_clear(&i);
	cj_free(name);
	return rc;
}

/* One key and value of the job space (copied to v->key / v->val). */
static int check_one(struct vfy *v) {
	struct vkey k;
	cj_tup_reader r;
	char sub[24];
	int got;
	k.n = 0;
	cj__tup_reader_init(&r, v->key.p, v->key.len);
	while (k.n < VFY_MAX_ELEMS && (got = cj__tup_next(&r, &k.e[k.n])) == 1) k.n++;
	if (k.n == VFY_MAX_ELEMS || got < 0) {
		problem(v, NULL, NULL, "does not decode");
		return CJ_OK;
	}
	if (k.n < 2 || !cj__tup_eq(&k.e[0], "couch_jobs", 10) ||
	    k.e[0].kind != CJ_TUP_STRING || elem_str(&k.e[1], sub, sizeof sub) != 0) {
		problem(v, NULL, NULL, "not a key of the job space");
		return CJ_OK;
	}
	if (strcmp(sub, "meta") == 0) {
		if (k.n != 3 || !cj__tup_eq(&k.e[2], "format", 6) || k.e[2].kind != CJ_TUP_STRING)
			problem(v, NULL, NULL, "unknown meta key");
		else {
			if (cj__val_int(v->val.p, v->val.len, &v->format) != CJ_OK) v->format = 0;
			check_int_value(v, NULL, "format version", CJ_FORMAT_VERSION,
			                CJ_FORMAT_VERSION);
		}
		return CJ_OK;
	}
	if (strcmp(sub, "schedule") == 0) return check_schedule(v);
	if (k.n < 3 || elem_str(&k.e[2], k.type, sizeof k.type) != 0) {
		problem(v, NULL, NULL, "no valid type in a %s key", sub);
		return CJ_OK;
	}
	if (strcmp(sub, "activity_timeout") == 0 && k.n == 3) {
		check_int_value(v, k.type, "timeout", 1, CJ_MAX_TYPE_TIMEOUT);
	} else if (strcmp(sub, "retry_policy") == 0 && k.n == 3) {
		cj_retry_policy p;
		if (cj__policy_decode(v->val.p, v->val.len, &p) != CJ_OK)
			problem(v, k.type, NULL, "retry policy does not decode");
	} else if (strcmp(sub, "type_limits") == 0 && k.n == 3) {
		cj_lim l;
		if (cj__limits_decode(v->val.p, v->val.len, &l) != CJ_OK)
			problem(v, k.type, NULL, "type limits do not decode");
	} else if ((strcmp(sub, "watches_pending") == 0 ||
	            strcmp(sub, "watches_activity") == 0) && k.n == 3) {
		uint8_t vs[CJ_VS_LEN];
		if (cj__val_vs(v->val.p, v->val.len, vs) != CJ_OK)
			problem(v, k.type, NULL, "%s value does not decode", sub);
	} else if (strcmp(sub, "data") == 0 && k.n == 4) {
		if (elem_str(&k.e[3], k.id, sizeof k.id) != 0)
			problem(v, k.type, NULL, "job key with an invalid id");
		else
			return check_data(v, &k);
	} else if (strcmp(sub, "pending") == 0 && k.n == 5 && k.e[3].kind == CJ_TUP_INT) {
		if (elem_str(&k.e[4], k.id, sizeof k.id) != 0 || k.e[3].i < 0)
			problem(v, k.type, NULL, "pending key with an invalid id or time");
		else
			return check_pending(v, &k);
	} else if (strcmp(sub, "activity") == 0 && k.n == 4 && k.e[3].kind == CJ_TUP_VS) {
		return check_activity(v, &k);
	} else if (strcmp(sub, "finished") == 0 && k.n == 6 && k.e[3].kind == CJ_TUP_INT &&
	           k.e[4].kind == CJ_TUP_INT) {
		if (elem_str(&k.e[5], k.id, sizeof k.id) != 0 || k.e[4].i <= 0 ||
		    (k.e[3].i != 0 && k.e[3].i != 1))
			problem(v, k.type, NULL, "finished key with an invalid id, kind or time");
		else
			return check_finished(v, &k);
	} else if (strcmp(sub, "finished_count") == 0) {
		/* the counters of counts.c count finished and dead jobs */
		problem(v, k.type, NULL, "a count of finished entries, which format %d does not keep",
		        CJ_FORMAT_VERSION);
	} else if (strcmp(sub, "watches_counts") == 0 && k.n == 5 && k.e[3].kind == CJ_TUP_INT &&
	           k.e[4].kind == CJ_TUP_INT && k.e[3].i >= 0 && k.e[3].i < CJ_COUNT_KINDS &&
	           k.e[4].i >= 0 && k.e[4].i < CJ_COUNT_SHARDS) {
		return check_counter(v, &k);
	} else if (strcmp(sub, "retention") == 0 && k.n == 3) {
		cj_retention ret;
		if (cj__retention_decode(v->val.p, v->val.len, &ret) != CJ_OK)
			problem(v, k.type, NULL, "retention does not decode");
	} else {
		problem(v, NULL, NULL, "unknown key");
	}
	return CJ_OK;
}

/* The scan's callback: copies the entry (the checks read from the
 * transaction, which ends the scan's hold on k and val) and checks it. */
static int verify_entry(const uint8_t *k, size_t kl, const uint8_t *val, size_t vl,
                        void *arg) {
	struct vfy *v = arg;
	cj__buf_reset(&v->key);
	cj__buf_reset(&v->val);
	cj__buf_add(&v->key, k, kl);
	cj__buf_add(&v->val, val, vl);
	if (v->key.oom || v->val.oom) return cj__fail(CJ_NOMEM, "out of memory");
	int rc = check_one(v);
	if (rc == CJ_OK && v->stopped) rc = v->stopped;
	return rc;
}

static int verify_fn(cj_tx *tx, void *arg) {
	struct vfy *v = arg;
	v->tx = tx;
	v->problems = 0; /* a retry starts over */
	v->stopped = 0;
	counts_free(v);
	v->format = 0;
	/* every key (one of all 0xff bytes would be out of range) */
	cj_buf lo = CJ_BUF_INIT, hi = CJ_BUF_INIT;
	static const uint8_t ff[32] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	cj__buf_add(&lo, "", 1);
	cj__buf_add(&hi, ff, sizeof ff);
	int rc = cj__scan(tx, &lo, &hi, verify_entry, v);
	if (rc == CJ_OK) counts_compare(v);
	cj__buf_free(&lo);
	cj__buf_free(&hi);
	return rc;
}

int cj_verify(cj_db *db, cj_verify_fn report, void *arg, uint64_t *problems) {
	if (problems) *problems = 0;
	if (!db) return cj__fail(CJ_INVALID, "db is NULL");
	struct vfy v = {NULL, NULL, 0, 0, 0, report, arg, 0, 0, CJ_BUF_INIT,
	                CJ_BUF_INIT, CJ_BUF_INIT, CJ_BUF_INIT};
	int rc = cj__run(db, NULL, 0, verify_fn, &v);
	counts_free(&v);
	cj__buf_free(&v.key);
	cj__buf_free(&v.val);
	cj__buf_free(&v.copy);
	cj__buf_free(&v.ikey);
	if (problems) *problems = v.problems;
	return rc;
}
