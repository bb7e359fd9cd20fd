/*
 * /v1/jobs: add (PUT), get, remove, redrive (a dead job, or a type's dead
 * jobs), and a paged listing with filters.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *srv_data_json(const char *text) {
	json_t *v = text ? json_loads(text, 0, NULL) : NULL;
	return v ? v : json_object();
}

json_t *srv_job_json(const cj_job_info *info) {
	json_t *errors = info->errors ? json_loads(info->errors, 0, NULL) : NULL;
	if (!json_is_array(errors)) {
		json_decref(errors);
		errors = json_array();
	}
	return json_pack("{s:s,s:s,s:s,s:I,s:b,s:o,s:I,s:I,s:o,s:I,s:I,s:b}", "type", info->type,
	                 "id", info->id, "state", cj_state_name((int)info->state), "sched_time",
	                 (json_int_t)info->sched_time, "resubmit", info->resubmit, "data",
	                 srv_data_json(info->data), "attempt", (json_int_t)info->attempt,
	                 "fence", (json_int_t)info->fence, "errors", errors, "added_ms",
	                 (json_int_t)info->added_ms, "finished_ms", (json_int_t)info->finished_ms,
	                 "own_policy", info->has_policy);
}

int srv_body_object(struct srv_req *r, json_t *body, const char *key, char **text) {
	*text = NULL;
	json_t *d = json_object_get(body, key);
	if (!d || json_is_null(d)) return 0;
	if (!json_is_object(d)) {
		srv_reply_err(r, 400, "CJ_JSON", CJ_JSON, "\"%s\" must be a JSON object", key);
		return -1;
	}
	*text = json_dumps(d, JSON_COMPACT);
	if (!*text) {
		srv_reply_cj(r, CJ_NOMEM);
		return -1;
	}
	return 0;
}

int srv_body_sched(struct srv_req *r, json_t *body, int64_t dflt, int64_t *sched) {
	json_t *t = json_object_get(body, "sched_time");
	*sched = dflt;
	if (!t || json_is_null(t)) return 0;
	if (!json_is_integer(t) || json_integer_value(t) < 0) {
		srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID,
		              "\"sched_time\" must be seconds since the epoch (an integer >= 0)");
		return -1;
	}
	*sched = (int64_t)json_integer_value(t);
	return 0;
}

/* "unique": "none" | "id" | "active" (cj_unique_parse()) into *unique. */
static int body_unique(struct srv_req *r, json_t *body, int *unique) {
	json_t *u = json_object_get(body, "unique");
	if (!u || json_is_null(u)) return 0;
	if (!json_is_string(u) || cj_unique_parse(json_string_value(u), unique) != CJ_OK) {
		srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID,
		              "\"unique\" must be \"none\", \"id\" or \"active\"");
		return -1;
	}
	return 0;
}

void srv_h_job_put(struct srv_req *r) {
	json_t *body = srv_body_json(r);
	char *data = NULL;
	cj_add_opts opts = CJ_ADD_OPTS_INIT;
	if (!body) return;
	if (srv_body_object(r, body, "data", &data) == 0 &&
	    srv_body_sched(r, body, 0, &opts.sched_time) == 0 &&
	    body_unique(r, body, &opts.unique) == 0) {
		int rc = cj_add_ex(r->srv->db, NULL, r->param[0], r->param[1], data, &opts);
		if (rc == CJ_OK) {
			atomic_fetch_add(&r->srv->m.added, 1);
			srv_reply_ok(r);
		} else {
			srv_reply_cj(r, rc);
		}
	}
	free(data);
	json_decref(body);
}

void srv_h_job_get(struct srv_req *r) {
	cj_job_info info = {0};
	int rc = cj_get_job(r->srv->db, NULL, r->param[0], r->param[1], &info);
	if (rc != CJ_OK) {
		srv_reply_cj(r, rc);
		return;
	}
	srv_reply_json(r, 200, srv_job_json(&info));
	cj_job_info_clear(&info);
}

/* Reads the body {"keep_attempts": bool} (absent: false). 0, or -1 after
 * replying 400. */
static int retry_keep(struct srv_req *r, int *keep) {
	json_t *body = srv_body_json(r);
	if (!body) return -1;
	json_t *k = json_object_get(body, "keep_attempts");
	int bad = k && !json_is_boolean(k);
	*keep = json_is_true(k);
	json_decref(body);
	if (bad) {
		srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID, "\"keep_attempts\" must be a boolean");
		return -1;
	}
	return 0;
}

/* POST /v1/jobs/{type}/{id}/retry: a dead job pending again. A job that is
 * not dead is a 409 (the library's CJ_INVALID, told apart from bad input). */
void srv_h_retry(struct srv_req *r) {
	int keep;
	if (retry_keep(r, &keep) != 0) return;
	int rc = cj_retry(r->srv->db, NULL, r->param[0], r->param[1], keep);
	if (rc == CJ_OK) {
		atomic_fetch_add(&r->srv->m.retried, 1);
		srv_reply_ok(r);
		return;
	}
	cj_job_info info = {0};
	if (rc == CJ_INVALID &&
	    cj_get_job(r->srv->db, NULL, r->param[0], r->param[1], &info) == CJ_OK &&
	    info.state != CJ_DEAD)
		srv_reply_err(r, 409, "not_dead", CJ_INVALID, "the job is %s, not dead",
		              cj_state_name((int)info.state));
	else
		srv_reply_cj(r, rc);
	cj_job_info_clear(&info);
}

/* POST /v1/types/{type}/retry: every dead job of the type redriven,
 * {"retried": N}. A failure after
 * some batches committed answers the error; those jobs stay redriven. */
void srv_h_type_retry(struct srv_req *r) {
	int keep;
	if (retry_keep(r, &keep) != 0) return;
	uint64_t n = 0;
	int rc = cj_retry_type(r->srv->db, r->param[0], keep, &n);
	atomic_fetch_add(&r->srv->m.retried, n);
	if (rc != CJ_OK) {
		srv_reply_cj(r, rc);
		return;
	}
	srv_reply_json(r, 200, json_pack("{s:I}", "retried", (json_int_t)n));
}

void srv_h_job_delete(struct srv_req *r) {
	int rc = cj_remove(r->srv->db, NULL, r->param[0], r->param[1]);
	if (rc != CJ_OK) {
		srv_reply_cj(r, rc);
		return;
	}
	atomic_fetch_add(&r->srv->m.removed, 1);
	srv_reply_ok(r);
}

/* ---- the listing -------------------------------------------------------- */

/* A cursor is the hex of "TYPE\0ID" of the last job of the previous page. */
static char *cursor_make(const char *type, const char *id) {
	size_t tl = strlen(type), il = strlen(id);
	char *c = malloc((tl + 1 + il) * 2 + 1);
	if (!c) return NULL;
	const unsigned char *parts[2] = {(const unsigned char *)type, (const unsigned char *)id};
	size_t lens[2] = {tl + 1, il}, o = 0;
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < lens[k]; i++) o += (size_t)sprintf(c + o, "%02x", parts[k][i]);
	return c;
}

/* Decodes a cursor into its type and id (malloc'd, in one block at *type).
 * 0, or -1 when it is not a cursor. */
static int cursor_parse(const char *c, char **type, const char **id) {
	size_t n = strlen(c);
	if (n == 0 || n % 2 || n > (CJ_MAX_TYPE + 1 + CJ_MAX_ID) * 2) return -1;
	char *b = malloc(n / 2 + 1);
	if (!b) return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(c + 2 * i, "%2x", &v) != 1 || !strchr("0123456789abcdef", c[2 * i]) ||
		    !strchr("0123456789abcdef", c[2 * i + 1])) {
			free(b);
			return -1;
		}
		b[i] = (char)v;
	}
	b[n / 2] = 0;
	size_t tl = strlen(b);
	if (tl == 0 || tl >= n / 2) {
		free(b);
		return -1;
	}
	*type = b;
	*id = b + tl + 1;
	return 0;
}

struct page {
	const char *after_type, *after_id; /* NULL: from the start */
	int state;                         /* 0: any */
	size_t limit, n, scanned;
	json_t *jobs;
	char *next;
};

/* A page reads at most SRV_PAGE_SCAN_FACTOR * limit jobs: with a state
 * filter that skips many, it ends early, short (even empty), with a cursor
 * after the last job read. */
static int page_cb(const cj_job_info *info, void *arg) {
	struct page *p = arg;
	if (p->state && (int)info->state != p->state) {
		if (++p->scanned < p->limit * SRV_PAGE_SCAN_FACTOR) return 0;
		free(p->next);
		p->next = cursor_make(info->type, info->id);
		return p->next ? 1 : CJ_NOMEM;
	}
	p->scanned++;
	if (p->n == p->limit) return 1; /* one more exists: the page has a next */
	json_t *j = srv_job_json(info);
	if (!j || json_array_append_new(p->jobs, j)) return CJ_NOMEM;
	p->n++;
	free(p->next);
	p->next = cursor_make(info->type, info->id);
	return p->next ? 0 : CJ_NOMEM;
}

void srv_h_jobs_list(struct srv_req *r) {
	char *type = srv_query(r, "type"), *state = srv_query(r, "state");
	char *limit = srv_query(r, "limit"), *cursor = srv_query(r, "cursor");
	char *ctype = NULL;
	struct page p = {.limit = SRV_PAGE_DEFAULT};
	if (state) {
		cj_state st;
		if (cj_state_parse(state, &st) != CJ_OK || st == CJ_REMOVED) {
			srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID,
			              "state must be pending, running, finished or dead");
			goto out_free;
		}
		p.state = (int)st;
	}
	if (limit) {
		char *end;
		long v = strtol(limit, &end, 10);
		if (*end || end == limit || v < 1 || v > SRV_PAGE_MAX) {
			srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID, "limit must be 1 to %d",
			              SRV_PAGE_MAX);
			goto out_free;
		}
		p.limit = (size_t)v;
	}
	if (cursor) {
		if (cursor_parse(cursor, &ctype, &p.after_id) != 0) {
			srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID, "bad cursor");
			goto out_free;
		}
		p.after_type = ctype;
	}
	if (type && !*type) {
		srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID, "empty type");
		goto out_free;
	}
	p.jobs = json_array();
	/* the scan starts after the cursor: a page costs what it reads */
	int rc = p.jobs ? cj_list_jobs_from(r->srv->db, NULL, type, p.after_type, p.after_id,
	                                    page_cb, &p)
	                : CJ_NOMEM;
	if (rc < 0) {
		json_decref(p.jobs);
		srv_reply_cj(r, rc);
		goto out_free;
	}
	/* rc 1: the listing stopped at a job past the page, or at its bound */
	json_t *next = rc == 1 && p.next ? json_string(p.next) : json_null();
	srv_reply_json(r, 200, json_pack("{s:o,s:o}", "jobs", p.jobs, "next", next));
out_free:
	free(p.next);
	free(ctype);
	free(type);
	free(state);
	free(limit);
	free(cursor);
}
