/*
 * /v1/types: a type's activity timeout, retry policy, limits and retention
 * (get, set, clear), its limits alone at /v1/types/{type}/limits, and the
 * list of types with their jobs counted per state.
 *
 * The counts are the store's own (cj_list_type_counts): a few reads per
 * type, whatever the number of jobs. The age of the oldest pending job is
 * counted from the earliest scheduled time of the due ones, so it is known
 * only for jobs added with a time (they have waited since then); jobs added
 * without one are counted in "pending_untimed" instead.
 */
#include "server.h"

#include <string.h>
#include <time.h>

/* Sets the field of k (one of n keys) to v if v is an integer: 1, or 0 if
 * k is none of them or v no integer. */
static int int_member(const char *k, json_t *v, const char *const *keys, int64_t *const *fields,
                      size_t n) {
	for (size_t i = 0; i < n; i++) {
		if (strcmp(k, keys[i]) != 0) continue;
		if (!json_is_integer(v)) return 0;
		*fields[i] = (int64_t)json_integer_value(v);
		return 1;
	}
	return 0;
}

/* Limits as JSON {"max_running","rate","rate_period_ms"}. */
static json_t *limits_json(const void *v) {
	const cj_type_limits *l = v;
	return json_pack("{s:I,s:I,s:I}", "max_running", (json_int_t)l->max_running, "rate",
	                 (json_int_t)l->rate, "rate_period_ms", (json_int_t)l->rate_period_ms);
}

/* Reads a limits object `o` into *l: fields left out are 0 (no limit). 0,
 * or -1 after replying 400 with `what` ("... must be an object") first. The
 * library checks the ranges. */
static int limits_parse(struct srv_req *r, json_t *o, const char *what, void *v) {
	static const char *const keys[] = {"max_running", "rate", "rate_period_ms"};
	cj_type_limits *l = v;
	*l = (cj_type_limits)CJ_TYPE_LIMITS_INIT;
	int64_t *const fields[] = {&l->max_running, &l->rate, &l->rate_period_ms};
	if (!json_is_object(o)) goto bad;
	const char *k;
	json_t *m;
	json_object_foreach(o, k, m) {
		if (!int_member(k, m, keys, fields, 3)) goto bad;
	}
	return 0;
bad:
	srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID,
	              "%s of integers max_running, rate and rate_period_ms", what);
	return -1;
}

static int limits_get(cj_db *db, const char *type, void *v) {
	return cj_get_type_limits(db, type, v);
}

static int limits_set(cj_db *db, const char *type, const void *v) {
	return cj_set_type_limits(db, type, v);
}

const struct srv_setting srv_type_limits = {
	"limits", limits_get, limits_set, cj_clear_type_limits, limits_json, limits_parse,
};

/* {"type", "timeout", "retry_policy", "limits", "retention"}; CJ_NOT_FOUND
 * when the type has no timeout. PUT answers the same. */
void srv_h_type_get(struct srv_req *r) {
	int64_t s;
	int rc = cj_get_type_timeout(r->srv->db, r->param[0], &s);
	if (rc != CJ_OK) {
		srv_reply_cj(r, rc);
		return;
	}
	const char *type = r->param[0];
	srv_reply_json(r, 200, json_pack("{s:s,s:I,s:o,s:o,s:o}", "type", type, "timeout",
	                                 (json_int_t)s, "retry_policy",
	                                 srv_setting_json(r->srv, &srv_type_policy, type), "limits",
	                                 srv_setting_json(r->srv, &srv_type_limits, type), "retention",
	                                 srv_setting_json(r->srv, &srv_type_retention, type)));
}

/* Clears a setting that may not be set: CJ_NOT_FOUND is success. */
static int cleared(int rc) {
	return rc == CJ_NOT_FOUND ? CJ_OK : rc;
}

/* The timeout is required; the retry policy, the limits and the retention
 * are each set, cleared (null) or left as they are (absent). */
void srv_h_type_put(struct srv_req *r) {
	cj_retry_policy p;
	cj_type_limits l;
	cj_retention k;
	int set, lset, kset, rc;
	const char *type = r->param[0];
	cj_db *db = r->srv->db;
	json_t *body = srv_body_json(r);
	if (!body) return;
	json_t *t = json_object_get(body, "timeout");
	if (!json_is_integer(t) || json_integer_value(t) < 1 ||
	    json_integer_value(t) > CJ_MAX_TYPE_TIMEOUT) {
		srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID,
		              "\"timeout\" must be whole seconds from 1 to %lld",
		              (long long)CJ_MAX_TYPE_TIMEOUT);
		goto out_body;
	}
	if (srv_setting_member(r, body, &srv_type_policy, &p, &set) != 0 ||
	    srv_setting_member(r, body, &srv_type_limits, &l, &lset) != 0 ||
	    srv_setting_member(r, body, &srv_type_retention, &k, &kset) != 0)
		goto out_body;
	/* limits out of range change nothing (a parsed retention is in range) */
	if (lset > 0 && (rc = cj_type_limits_check(&l)) != CJ_OK) {
		srv_reply_cj(r, rc);
		goto out_body;
	}
	/* the policy first: a policy out of range changes nothing */
	rc = set > 0 ? cj_set_type_policy(db, type, &p) : CJ_OK;
	if (rc == CJ_OK && lset > 0) rc = cj_set_type_limits(db, type, &l);
	if (rc == CJ_OK && lset < 0) rc = cleared(cj_clear_type_limits(db, type));
	if (rc == CJ_OK && kset > 0) rc = cj_set_type_retention(db, type, &k);
	if (rc == CJ_OK && kset < 0) rc = cleared(cj_clear_type_retention(db, type));
	if (rc == CJ_OK && set < 0) rc = cleared(cj_clear_type_policy(db, type));
	if (rc == CJ_OK) rc = cj_set_type_timeout(db, type, (int64_t)json_integer_value(t));
	if (rc == CJ_OK)
		srv_h_type_get(r);
	else
		srv_reply_cj(r, rc);
out_body:
	json_decref(body);
}

void srv_h_type_delete(struct srv_req *r) {
	srv_reply_done(r, cj_clear_type_timeout(r->srv->db, r->param[0]));
}

/* ---- /v1/types/{type}/limits --------------------------------------------- */

/* {"type","limits"}: the type's limits, or null when it has none. PUT
 * answers the same. */
void srv_h_limits_get(struct srv_req *r) {
	srv_setting_get(r, &srv_type_limits);
}

/* The body is the limits: fields left out are 0 (no limit). */
void srv_h_limits_put(struct srv_req *r) {
	srv_setting_put(r, &srv_type_limits);
}

/* Clears the type's limits; 404 when it has none. */
void srv_h_limits_delete(struct srv_req *r) {
	srv_setting_delete(r, &srv_type_limits);
}

/* ---- counts per type and state ------------------------------------------ */

struct counts {
	json_t *types; /* type -> {"type","timeout","counts":{...}} */
	int64_t now;
};

static json_t *type_entry(json_t *types, const char *type) {
	json_t *e = json_object_get(types, type);
	if (e) return e;
	e = json_pack("{s:s,s:n,s:{s:i,s:i,s:i,s:i,s:i},s:n,s:n,s:i,s:i}", "type", type,
	              "timeout", "counts", "pending", 0, "scheduled", 0, "running", 0,
	              "finished", 0, "dead", 0, "oldest_due", "oldest_pending_age",
	              "pending_untimed", 0, "retrying", 0);
	if (!e || json_object_set_new(types, type, e)) return NULL;
	return e;
}

static void set_int(json_t *obj, const char *key, uint64_t v) {
	json_object_set_new(obj, key, json_integer((json_int_t)v));
}

/* A type's counts from the store (cj_list_type_counts): pending jobs due
 * later are "scheduled", not "pending"; "retrying" counts the pending and
 * scheduled ones after a failed or lost attempt. */
static int count_cb(const char *type, const cj_type_counts *n, void *arg) {
	struct counts *c = arg;
	json_t *e = type_entry(c->types, type);
	if (!e) return CJ_NOMEM;
	json_t *counts = json_object_get(e, "counts");
	set_int(counts, "pending", n->pending);
	set_int(counts, "scheduled", n->scheduled);
	set_int(counts, "running", n->running);
	set_int(counts, "finished", n->finished);
	set_int(counts, "dead", n->dead);
	set_int(e, "pending_untimed", n->untimed);
	set_int(e, "retrying", n->retrying);
	if (n->oldest_due >= 0) {
		json_object_set_new(e, "oldest_due", json_integer((json_int_t)n->oldest_due));
		json_object_set_new(e, "oldest_pending_age",
		                    json_integer((json_int_t)(c->now - n->oldest_due)));
	}
	return 0;
}

int srv_count_types(struct srv *s, json_t **out) {
	struct counts c = {json_object(), (int64_t)time(NULL)};
	char **types = NULL;
	size_t n = 0;
	*out = NULL;
	if (!c.types) return CJ_NOMEM;
	int rc = cj_get_types(s->db, NULL, &types, &n);
	for (size_t i = 0; i < n; i++) {
		int64_t t;
		json_t *e = rc == CJ_OK ? type_entry(c.types, types[i]) : NULL;
		if (rc == CJ_OK && !e) rc = CJ_NOMEM;
		if (e && cj_get_type_timeout(s->db, types[i], &t) == CJ_OK)
			json_object_set_new(e, "timeout", json_integer((json_int_t)t));
		cj_free(types[i]);
	}
	cj_free(types);
	if (rc == CJ_OK) rc = cj_list_type_counts(s->db, NULL, count_cb, &c);
	if (rc != CJ_OK) {
		json_decref(c.types);
		return rc;
	}
	*out = c.types;
	return CJ_OK;
}

void srv_h_types_list(struct srv_req *r) {
	json_t *types;
	int rc = srv_count_types(r->srv, &types);
	if (rc != CJ_OK) {
		srv_reply_cj(r, rc);
		return;
	}
	json_t *arr = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(types, k, v) {
		/* the type's settings next to its counts: its whole configuration */
		json_object_set_new(v, "limits", srv_setting_json(r->srv, &srv_type_limits, k));
		json_object_set_new(v, "retention", srv_setting_json(r->srv, &srv_type_retention, k));
		json_array_append(arr, v);
	}
	json_decref(types);
	srv_reply_json(r, 200, json_pack("{s:o}", "types", arr));
}
