/*
 * The one flow of a type's settings over HTTP (retry policy, limits,
 * retention): the setting as JSON or null, as a member of a body, and the
 * GET, PUT and DELETE of /v1/types/{type}/KEY. Each setting is a table of
 * callbacks (struct srv_setting).
 */
#include "server.h"

/* Room for the value of any setting. */
union value {
	cj_retry_policy policy;
	cj_type_limits limits;
	cj_retention retention;
};

json_t *srv_setting_json(struct srv *srv, const struct srv_setting *s, const char *type) {
	union value v;
	if (s->get(srv->db, type, &v) != CJ_OK) return json_null();
	return s->to_json(&v);
}

int srv_setting_member(struct srv_req *r, json_t *body, const struct srv_setting *s, void *v,
                       int *set) {
	json_t *o = json_object_get(body, s->key);
	*set = !o ? 0 : json_is_null(o) ? -1 : 1;
	if (*set <= 0) return 0;
	char what[64];
	snprintf(what, sizeof what, "\"%s\" must be null or an object", s->key);
	return s->parse(r, o, what, v);
}

void srv_setting_get(struct srv_req *r, const struct srv_setting *s) {
	union value v;
	int rc = s->get(r->srv->db, r->param[0], &v);
	if (rc != CJ_OK && rc != CJ_NOT_FOUND) {
		srv_reply_cj(r, rc);
		return;
	}
	srv_reply_json(r, 200, json_pack("{s:s,s:o}", "type", r->param[0], s->key,
	                                 rc == CJ_OK ? s->to_json(&v) : json_null()));
}

void srv_setting_put(struct srv_req *r, const struct srv_setting *s) {
	union value v;
	json_t *body = srv_body_json(r);
	if (!body) return;
	if (s->parse(r, body, "the body must be an object", &v) == 0) {
		int rc = s->set(r->srv->db, r->param[0], &v);
		if (rc == CJ_OK)
			srv_setting_get(r, s);
		else
			srv_reply_cj(r, rc);
	}
	json_decref(body);
}

void srv_setting_delete(struct srv_req *r, const struct srv_setting *s) {
	srv_reply_done(r, s->clear(r->srv->db, r->param[0]));
}
