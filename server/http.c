/*
 * One HTTP request: checks the client and the token, reads the body within
 * its limit, finds the route, runs the handler and queues its answer.
 */
#include "server.h"
#include "ui.h"

#include <microhttpd.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* The state of a request across the calls libmicrohttpd makes for it. */
struct conn_state {
	struct srv_req r;
	srv_handler handler;
	size_t cap;
	int early;    /* an answer was queued before the body was read */
	int too_large;
};

static void count_status(struct srv *s, int status) {
	int cls = status / 100;
	if (cls >= 1 && cls <= 5) atomic_fetch_add(&s->m.http[cls], 1);
}

static enum MHD_Result queue(struct conn_state *cs) {
	struct srv_req *r = &cs->r;
	if (!r->resp) srv_reply_err(r, 500, "CJ_STORE", CJ_STORE, "the handler gave no answer");
	if (!r->resp) return MHD_NO;
	count_status(r->srv, r->status);
	enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)r->status, r->resp);
	MHD_destroy_response(r->resp);
	r->resp = NULL;
	return ok;
}

/* Answers before the body is read (or once it was dropped). `code` is the
 * CJ_* code the answer stands for, 0 for the server's own refusals. */
static enum MHD_Result early(struct conn_state *cs, int status, const char *name, int code,
                             const char *msg) {
	srv_reply_err(&cs->r, status, name, code, "%s", msg);
	cs->early = 1;
	return queue(cs);
}

/* Whether the declared body is over the limit. */
static int declared_too_large(struct MHD_Connection *c) {
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	if (!cl) return 0;
	char *end;
	unsigned long long n = strtoull(cl, &end, 10);
	return *end != 0 || n > SRV_BODY_LIMIT;
}

static enum MHD_Result first_call(struct srv *s, struct MHD_Connection *c,
                                  const char *url, const char *method, void **con_cls) {
	struct conn_state *cs = calloc(1, sizeof *cs);
	if (!cs) return MHD_NO;
	*con_cls = cs;
	atomic_fetch_add(&s->active, 1);
	cs->r.srv = s;
	cs->r.conn = c;
	cs->r.method = method;
	int st = srv_auth_check(&cs->r);
	if (st == 401 && srv_ui_is_asset(method, url)) st = 0; /* they hold no data */
	if (st == 401) {
		srv_reply_err(&cs->r, 401, "unauthorized", 0,
		              "this server needs 'Authorization: Bearer TOKEN'");
		MHD_add_response_header(cs->r.resp, "WWW-Authenticate", "Bearer");
		cs->early = 1;
		return queue(cs);
	}
	if (st) return early(cs, st, "forbidden", 0, "only loopback clients are served");
	cs->handler = srv_route_find(&cs->r, url, &st);
	if (!cs->handler) {
		if (st == 405) return early(cs, 405, "method_not_allowed", 0, "method not allowed here");
		if (st == 400) return early(cs, 400, "CJ_INVALID", CJ_INVALID, "bad path segment");
		return early(cs, 404, "no_route", 0, "no such route");
	}
	if (declared_too_large(c))
		return early(cs, 413, "CJ_TOO_LARGE", CJ_TOO_LARGE, "request body over the limit");
	return MHD_YES;
}

enum MHD_Result srv_on_request(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version,
                               const char *upload, size_t *upload_size, void **con_cls) {
	(void)version;
	struct srv *s = cls;
	struct conn_state *cs = *con_cls;
	if (!cs) return first_call(s, c, url, method, con_cls);
	if (cs->early) {
		*upload_size = 0; /* the answer is queued; the rest is dropped */
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (cs->too_large || cs->r.body_len + n > SRV_BODY_LIMIT) {
			cs->too_large = 1;
			return MHD_YES;
		}
		if (cs->r.body_len + n + 1 > cs->cap) {
			size_t cap = cs->cap ? cs->cap : 4096;
			while (cap < cs->r.body_len + n + 1) cap *= 2;
			char *p = realloc(cs->r.body, cap);
			if (!p) return MHD_NO;
			cs->r.body = p;
			cs->cap = cap;
		}
		memcpy(cs->r.body + cs->r.body_len, upload, n);
		cs->r.body_len += n;
		cs->r.body[cs->r.body_len] = 0;
		return MHD_YES;
	}
	if (cs->too_large)
		return early(cs, 413, "CJ_TOO_LARGE", CJ_TOO_LARGE, "request body over the limit");
	cs->handler(&cs->r);
	return queue(cs);
}

void srv_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
	(void)c;
	(void)toe;
	struct srv *s = cls;
	struct conn_state *cs = *con_cls;
	if (!cs) return;
	for (int i = 0; i < SRV_MAX_PARAMS; i++) free(cs->r.param[i]);
	free(cs->r.body);
	if (cs->r.resp) MHD_destroy_response(cs->r.resp);
	free(cs);
	*con_cls = NULL;
	atomic_fetch_sub(&s->active, 1);
}

/* ---- replies ------------------------------------------------------------ */

void srv_reply_resp(struct srv_req *r, int status, struct MHD_Response *resp) {
	if (r->resp) MHD_destroy_response(r->resp);
	r->resp = resp;
	r->status = status;
}

/* Makes resp, with the headers of every answer with a body, the answer. */
static void reply_body(struct srv_req *r, int status, struct MHD_Response *resp,
                       const char *ctype) {
	MHD_add_response_header(resp, "Content-Type", ctype);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	srv_reply_resp(r, status, resp);
}

void srv_reply_text(struct srv_req *r, int status, char *text, const char *ctype) {
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		text ? strlen(text) : 0, text ? text : (char *)"",
		text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(text);
		return;
	}
	reply_body(r, status, resp, ctype);
}

void srv_reply_ok(struct srv_req *r) {
	/* what srv_reply_json() makes of {"ok": true}, without building it */
	static const char ok[] = "{\"ok\":true}\n";
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(sizeof ok - 1, (char *)ok, MHD_RESPMEM_PERSISTENT);
	if (resp) reply_body(r, 200, resp, "application/json");
}

void srv_reply_json(struct srv_req *r, int status, json_t *body) {
	char *text = NULL;
	if (body) {
		/* one line, ending in a line break, as curl users like it */
		char *j = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		if (j && asprintf(&text, "%s\n", j) < 0) text = NULL;
		free(j);
		if (!text) {
			srv_reply_text(r, 507, NULL, "application/json");
			return;
		}
	}
	srv_reply_text(r, status, text, "application/json");
}

void srv_reply_err(struct srv_req *r, int status, const char *name, int code,
                   const char *fmt, ...) {
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	srv_reply_json(r, status,
	               json_pack("{s:s,s:i,s:s}", "error", name, "code", code, "message", msg));
}

void srv_reply_cj(struct srv_req *r, int rc) {
	srv_reply_cj_more(r, rc, NULL);
}

void srv_reply_cj_more(struct srv_req *r, int rc, json_t *more) {
	const char *detail = cj_last_error();
	json_t *b = json_pack("{s:s,s:i,s:s}", "error", cj_err_name(rc), "code", rc,
	                      "message", cj_strerror(rc));
	if (b && detail && *detail) json_object_set_new(b, "detail", json_string(detail));
	if (b && more) json_object_update(b, more);
	json_decref(more);
	if (b && rc == CJ_HALT)
		json_object_set_new(b, "action",
		                    json_string("stop working on this job: it was removed or "
		                                "taken back, and is no longer held with this lock"));
	if (rc == CJ_HALT) atomic_fetch_add(&r->srv->m.halted, 1);
	srv_reply_json(r, srv_status_of(rc), b);
}

void srv_reply_done(struct srv_req *r, int rc) {
	if (rc != CJ_OK)
		srv_reply_cj(r, rc);
	else
		srv_reply_ok(r);
}

int srv_client_gone(struct srv_req *r) {
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci) return 0;
	struct pollfd p = {ci->connect_fd, POLLIN | POLLRDHUP, 0};
	if (poll(&p, 1, 0) <= 0) return 0;
	if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return 1;
	char c;
	return (p.revents & POLLIN) && recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* ---- request data ------------------------------------------------------- */

json_t *srv_body_json(struct srv_req *r) {
	if (!r->body_len) return json_object();
	json_error_t e;
	json_t *v = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &e);
	if (!v) {
		srv_reply_err(r, 400, "CJ_JSON", CJ_JSON, "malformed JSON body: %s (line %d)",
		              e.text, e.line);
		return NULL;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		srv_reply_err(r, 400, "CJ_JSON", CJ_JSON, "the body must be one JSON object");
		return NULL;
	}
	return v;
}

const char *srv_header(struct srv_req *r, const char *name) {
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

char *srv_query(struct srv_req *r, const char *name) {
	const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
	if (!v) return NULL;
	return srv_unescape(v, 1);
}

static int hexval(char c) {
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

char *srv_unescape(const char *s, int plus_is_space) {
	size_t n = strlen(s);
	char *out = malloc(n + 1), *o = out;
	if (!out) return NULL;
	for (size_t i = 0; i < n; i++) {
		int h, l;
		if (s[i] == '%' && i + 2 < n && (h = hexval(s[i + 1])) >= 0 &&
		    (l = hexval(s[i + 2])) >= 0) {
			char ch = (char)(h * 16 + l);
			if (ch == 0) { /* a NUL cannot be part of a name */
				free(out);
				return NULL;
			}
			*o++ = ch;
			i += 2;
		} else if (s[i] == '+' && plus_is_space) {
			*o++ = ' ';
		} else {
			*o++ = s[i];
		}
	}
	*o = 0;
	return out;
}

/* The path and query are decoded by the server itself (srv_unescape), so
 * that an escaped "/" in an id does not split a path segment. */
size_t srv_keep_escaped(void *cls, struct MHD_Connection *c, char *s) {
	(void)cls;
	(void)c;
	return strlen(s);
}
