/*
 * Retention over HTTP (see the retention group of <couchjobs.h>): the JSON
 * form of a retention, a type's retention at /v1/types/{type}/retention
 * (get, set, clear) and /v1/types/{type}/prune.
 *
 * A retention as JSON: {"keep_ms","keep_max","dead_keep_ms",
 * "dead_keep_max"}, each an integer >= 0 or null (not set: keep all).
 */
#include "server.h"

#include <string.h>

static const char *const keys[] = {"keep_ms", "keep_max", "dead_keep_ms", "dead_keep_max"};
#define NKEYS 4

static int64_t *field(cj_retention *k, size_t i) {
	int64_t *const f[NKEYS] = {&k->keep_ms, &k->keep_max, &k->dead_keep_ms,
	                           &k->dead_keep_max};
	return f[i];
}

static json_t *retention_json(const void *v) {
	json_t *o = json_object();
	cj_retention c = *(const cj_retention *)v;
	for (size_t i = 0; o && i < NKEYS; i++) {
		int64_t n = *field(&c, i);
		json_object_set_new(o, keys[i], n == CJ_KEEP_ALL ? json_null() : json_integer(n));
	}
	return o;
}

int srv_retention_parse(struct srv_req *r, json_t *o, const char *what, cj_retention *k) {
	int set = 0; /* at least one limit, as the library wants */
	*k = (cj_retention)CJ_RETENTION_INIT;
	if (!json_is_object(o)) goto bad;
	const char *name;
	json_t *v;
	json_object_foreach(o, name, v) {
		size_t i = 0;
		while (i < NKEYS && strcmp(name, keys[i]) != 0) i++;
		if (i == NKEYS) goto bad;
		if (json_is_null(v)) continue;
		if (!json_is_integer(v) || json_integer_value(v) < 0) goto bad;
		*field(k, i) = (int64_t)json_integer_value(v);
		set = 1;
	}
	if (set) return 0;
bad:
	srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID,
	              "%s of keep_ms, keep_max, dead_keep_ms and dead_keep_max, each an "
	              "integer >= 0 or null, at least one set",
	              what);
	return -1;
}

static int retention_get(cj_db *db, const char *type, void *v) {
	return cj_get_type_retention(db, type, v);
}

static int retention_set(cj_db *db, const char *type, const void *v) {
	return cj_set_type_retention(db, type, v);
}

static int retention_parse(struct srv_req *r, json_t *o, const char *what, void *v) {
	return srv_retention_parse(r, o, what, v);
}

const struct srv_setting srv_type_retention = {
	"retention", retention_get, retention_set, cj_clear_type_retention, retention_json,
	retention_parse,
};

/* {"type","retention"}: the type's retention, or null when it has none.
 * PUT (the body is the retention, at least one limit set) answers the
 * same. */
void srv_h_retention_get(struct srv_req *r) {
	srv_setting_get(r, &srv_type_retention);
}

void srv_h_retention_put(struct srv_req *r) {
	srv_setting_put(r, &srv_type_retention);
}

/* Clears the type's retention; 404 when it has none. */
void srv_h_retention_delete(struct srv_req *r) {
	srv_setting_delete(r, &srv_type_retention);
}

/* Removes the type's finished and dead jobs now: by the limits of the
 * body's "retention" when given, else by the type's own retention (404
 * when it has none). Answers {"type","removed"}; the error body of a
 * failed prune has "removed" too: the batches before the error stay
 * removed. */
void srv_h_prune(struct srv_req *r) {
	cj_retention k;
	uint64_t removed = 0;
	json_t *body = srv_body_json(r);
	if (!body) return;
	json_t *o = json_object_get(body, "retention");
	if (json_object_size(body) > (o ? 1u : 0u)) {
		srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID,
		              "the body may hold only \"retention\"");
		goto out_body;
	}
	if (o && !json_is_null(o) &&
	    srv_retention_parse(r, o, "\"retention\" must be null or an object", &k) != 0)
		goto out_body;
	int rc = cj_prune(r->srv->db, r->param[0], o && !json_is_null(o) ? &k : NULL, &removed);
	if (rc != CJ_OK) /* with what the batches before the error removed */
		srv_reply_cj_more(r, rc, json_pack("{s:I}", "removed", (json_int_t)removed));
	else
		srv_reply_json(r, 200, json_pack("{s:s,s:I}", "type", r->param[0], "removed",
		                                 (json_int_t)removed));
out_body:
	json_decref(body);
}
