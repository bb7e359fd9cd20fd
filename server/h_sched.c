/*
 * /v1/schedules: periodic jobs (see the schedules group of <couchjobs.h>):
 * list, get, create or replace, remove.
 *
 * A schedule as JSON: {"name","cron" (or null),"zone" (or null),"every_s",
 * "anchor","type","data","catch_up" ("skip" or "last"),"disabled",
 * "served","fired" (or null: none yet),"next" (or null: none)}. Times are
 * seconds since the epoch, as the library keeps them.
 */
#include "server.h"

#include <stdlib.h>
#include <string.h>

static json_t *str_or_null(const char *s) {
	return s ? json_string(s) : json_null();
}

static json_t *time_or_null(int64_t t) {
	return t ? json_integer((json_int_t)t) : json_null();
}

static json_t *schedule_json(const cj_schedule_info *i) {
	return json_pack("{s:s,s:o,s:o,s:I,s:I,s:s,s:o,s:s,s:b,s:I,s:o,s:o}", "name", i->name,
	                 "cron", str_or_null(i->cron), "zone", str_or_null(i->zone), "every_s",
	                 (json_int_t)i->every_s, "anchor", (json_int_t)i->anchor, "type", i->type,
	                 "data", srv_data_json(i->data), "catch_up",
	                 i->catch_up == CJ_CATCH_UP_LAST ? "last" : "skip", "disabled",
	                 i->disabled != 0, "served", (json_int_t)i->served, "fired",
	                 time_or_null(i->fired), "next", time_or_null(i->next));
}

static int list_one(const cj_schedule_info *info, void *arg) {
	json_t *o = schedule_json(info);
	if (!o || json_array_append_new(arg, o) != 0) return CJ_NOMEM;
	return 0;
}

int srv_list_schedules(struct srv *s, json_t **out) {
	json_t *arr = json_array();
	int rc = arr ? cj_schedule_list(s->db, NULL, list_one, arr) : CJ_NOMEM;
	if (rc != CJ_OK) {
		json_decref(arr);
		arr = NULL;
	}
	*out = arr;
	return rc;
}

/* {"schedules":[...]}, in name (byte) order. */
void srv_h_schedules_list(struct srv_req *r) {
	json_t *arr;
	int rc = srv_list_schedules(r->srv, &arr);
	if (rc != CJ_OK) {
		srv_reply_cj(r, rc);
		return;
	}
	srv_reply_json(r, 200, json_pack("{s:o}", "schedules", arr));
}

/* The schedule; 404 when there is none. PUT answers the same. */
void srv_h_schedule_get(struct srv_req *r) {
	cj_schedule_info info;
	int rc = cj_schedule_get(r->srv->db, NULL, r->param[0], &info);
	if (rc != CJ_OK) {
		srv_reply_cj(r, rc);
		return;
	}
	srv_reply_json(r, 200, schedule_json(&info));
	cj_schedule_info_clear(&info);
}

/* Reads the definition of a PUT body into *s (its strings point into
 * body; the data text is malloc'd into *data); a member null or left out
 * takes its default. 0, or -1 after replying 400. The library judges the
 * values (cron, zone, ranges). */
static int schedule_parse(struct srv_req *r, json_t *body, cj_schedule *s, char **data) {
	static const char *const keys[] = {"cron", "zone",     "every_s",  "anchor", "type",
	                                   "data", "catch_up", "disabled", NULL};
	const char *k, *bad = NULL;
	json_t *v;
	json_object_foreach(body, k, v) {
		size_t i = 0;
		while (keys[i] && strcmp(k, keys[i]) != 0) i++;
		if (!keys[i]) {
			srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID, "unknown member \"%s\"", k);
			return -1;
		}
	}
	json_t *cron = json_object_get(body, "cron"), *zone = json_object_get(body, "zone");
	json_t *every = json_object_get(body, "every_s"), *anchor = json_object_get(body, "anchor");
	json_t *type = json_object_get(body, "type"), *cu = json_object_get(body, "catch_up");
	json_t *dis = json_object_get(body, "disabled");
	if (cron && !json_is_null(cron) && !json_is_string(cron)) bad = "\"cron\" must be a string";
	if (zone && !json_is_null(zone) && !json_is_string(zone)) bad = "\"zone\" must be a string";
	if (every && !json_is_null(every) && !json_is_integer(every))
		bad = "\"every_s\" must be an integer";
	if (anchor && !json_is_null(anchor) && !json_is_integer(anchor))
		bad = "\"anchor\" must be an integer";
	if (!json_is_string(type)) bad = "\"type\" (a string) is required";
	if (cu && !json_is_null(cu) && !json_is_string(cu))
		bad = "\"catch_up\" must be \"skip\" or \"last\"";
	if (dis && !json_is_boolean(dis)) bad = "\"disabled\" must be true or false";
	if (bad) {
		srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID, "%s", bad);
		return -1;
	}
	*s = (cj_schedule)CJ_SCHEDULE_INIT;
	s->cron = json_string_value(cron); /* NULL unless a string */
	s->zone = json_string_value(zone);
	s->every_s = (int64_t)json_integer_value(every); /* 0 unless an integer */
	s->anchor = (int64_t)json_integer_value(anchor);
	s->type = json_string_value(type);
	s->disabled = dis && json_is_true(dis);
	if (json_is_string(cu) && cj_catch_up_parse(json_string_value(cu), &s->catch_up) != CJ_OK) {
		srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID,
		              "\"catch_up\" must be \"skip\" or \"last\"");
		return -1;
	}
	if (srv_body_object(r, body, "data", data) != 0) return -1;
	s->data = *data;
	return 0;
}

/* Creates or replaces the schedule: the body is its definition (exactly
 * one of "cron" and "every_s"; "type" required). */
void srv_h_schedule_put(struct srv_req *r) {
	cj_schedule s;
	char *data = NULL;
	json_t *body = srv_body_json(r);
	if (!body) return;
	if (schedule_parse(r, body, &s, &data) == 0) {
		int rc = cj_schedule_set(r->srv->db, NULL, r->param[0], &s);
		if (rc == CJ_OK)
			srv_h_schedule_get(r);
		else
			srv_reply_cj(r, rc);
	}
	free(data);
	json_decref(body);
}

/* Removes the schedule (its jobs stay); 404 when there is none. */
void srv_h_schedule_delete(struct srv_req *r) {
	srv_reply_done(r, cj_schedule_remove(r->srv->db, NULL, r->param[0]));
}
