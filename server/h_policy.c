/*
 * Retry policies over HTTP: the JSON form of a policy (a type's, a
 * setting of h_setting.c, and a job's own), and a job's own policy at
 * /v1/jobs/{type}/{id}/policy: get, set, clear.
 */
#include "server.h"

#include <string.h>

static const char *const jitters[] = {"none", "full", "equal"};

json_t *srv_policy_json(const cj_retry_policy *p) {
	return json_pack("{s:I,s:I,s:I,s:I,s:s}", "max_attempts", (json_int_t)p->max_attempts,
	                 "backoff_min", (json_int_t)p->backoff_min, "backoff_max",
	                 (json_int_t)p->backoff_max, "multiplier", (json_int_t)p->multiplier,
	                 "jitter", jitters[p->jitter >= 0 && p->jitter <= 2 ? p->jitter : 0]);
}

int srv_policy_parse(struct srv_req *r, json_t *o, const char *what, cj_retry_policy *p) {
	static const char *const keys[] = {"max_attempts", "backoff_min", "backoff_max",
	                                   "multiplier"};
	*p = (cj_retry_policy)CJ_RETRY_POLICY_INIT;
	int64_t *fields[] = {&p->max_attempts, &p->backoff_min, &p->backoff_max, &p->multiplier};
	if (!json_is_object(o)) goto bad;
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		size_t i = 0;
		while (i < 4 && strcmp(k, keys[i]) != 0) i++;
		if (i < 4 && json_is_integer(v)) {
			*fields[i] = (int64_t)json_integer_value(v);
			continue;
		}
		int j = 0;
		while (j < 3 && !(json_is_string(v) && strcmp(json_string_value(v), jitters[j]) == 0))
			j++;
		if (strcmp(k, "jitter") != 0 || j == 3) goto bad;
		p->jitter = j;
	}
	return 0;
bad:
	srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID,
	              "%s of integers max_attempts, backoff_min, backoff_max, multiplier and a "
	              "jitter \"none\", \"full\" or \"equal\"",
	              what);
	return -1;
}

static int policy_get(cj_db *db, const char *type, void *v) {
	return cj_get_type_policy(db, type, v);
}

static int policy_set(cj_db *db, const char *type, const void *v) {
	return cj_set_type_policy(db, type, v);
}

static json_t *policy_json(const void *v) {
	return srv_policy_json(v);
}

static int policy_parse(struct srv_req *r, json_t *o, const char *what, void *v) {
	return srv_policy_parse(r, o, what, v);
}

/* A type's retry policy (in the body of /v1/types/{type}). */
const struct srv_setting srv_type_policy = {
	"retry_policy", policy_get, policy_set, cj_clear_type_policy, policy_json, policy_parse,
};

/* {"type","id","retry_policy"}: the job's own policy, or null when it has
 * none (its type's applies); 404 when there is no such job. PUT answers
 * the same. */
void srv_h_job_policy_get(struct srv_req *r) {
	cj_retry_policy p;
	json_t *pol;
	int rc = cj_get_job_policy(r->srv->db, NULL, r->param[0], r->param[1], &p);
	if (rc == CJ_OK) {
		pol = srv_policy_json(&p);
	} else if (rc == CJ_NOT_FOUND) {
		/* no such job, or none of its own: tell which */
		cj_job_info info = {0};
		rc = cj_get_job(r->srv->db, NULL, r->param[0], r->param[1], &info);
		cj_job_info_clear(&info);
		pol = json_null();
	}
	if (rc != CJ_OK) {
		srv_reply_cj(r, rc);
		return;
	}
	srv_reply_json(r, 200, json_pack("{s:s,s:s,s:o}", "type", r->param[0], "id", r->param[1],
	                                 "retry_policy", pol));
}

/* The body is the policy: fields left out take CJ_RETRY_POLICY_INIT's
 * values; the library checks the ranges (out of range changes nothing). */
void srv_h_job_policy_put(struct srv_req *r) {
	cj_retry_policy p;
	json_t *body = srv_body_json(r);
	if (!body) return;
	if (srv_policy_parse(r, body, "the body must be an object", &p) == 0) {
		int rc = cj_set_job_policy(r->srv->db, NULL, r->param[0], r->param[1], &p);
		if (rc == CJ_OK)
			srv_h_job_policy_get(r);
		else
			srv_reply_cj(r, rc);
	}
	json_decref(body);
}

/* Clears the job's own policy (its type's applies again). */
void srv_h_job_policy_delete(struct srv_req *r) {
	srv_reply_done(r, cj_set_job_policy(r->srv->db, NULL, r->param[0], r->param[1], NULL));
}
