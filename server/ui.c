/*
 * The dashboard's files: GET / is the page, GET /ui/{file} the rest, from
 * the arrays that cmake/embed.cmake made of server/ui/ at build time.
 *
 * Every answer carries its ETag and "Cache-Control: no-cache": a browser
 * keeps the files but asks each time whether they changed (304 when not),
 * so a new binary's page is never mixed with an old script. The page runs
 * under a strict Content-Security-Policy: scripts and styles from this
 * server's own files only, no inline script, no eval, no other origin.
 */
#include "server.h"
#include "ui.h"

#include <string.h>

#define CSP                                                                            \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "        \
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const struct srv_ui_asset *find(const char *name) {
	for (const struct srv_ui_asset *a = srv_ui_assets; a->name; a++)
		if (strcmp(a->name, name) == 0) return a;
	return NULL;
}

int srv_ui_is_asset(const char *method, const char *url) {
	if (strcmp(method, "GET") != 0) return 0;
	if (strcmp(url, "/") == 0) return 1;
	return strncmp(url, "/ui/", 4) == 0 && find(url + 4) != NULL;
}

/* Whether If-None-Match names the file's current ETag (one of a list). */
static int not_modified(struct srv_req *r, const struct srv_ui_asset *a) {
	const char *inm = srv_header(r, "If-None-Match");
	return inm && (strstr(inm, a->etag) != NULL || strcmp(inm, "*") == 0);
}

static void reply_asset(struct srv_req *r, const struct srv_ui_asset *a) {
	int fresh = not_modified(r, a);
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		fresh ? 0 : a->len, fresh ? (void *)"" : (void *)a->data, MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		srv_reply_cj(r, CJ_NOMEM);
		return;
	}
	MHD_add_response_header(resp, "Content-Type", a->ctype);
	MHD_add_response_header(resp, "ETag", a->etag);
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Content-Security-Policy", CSP);
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	srv_reply_resp(r, fresh ? 304 : 200, resp);
}

void srv_h_ui_page(struct srv_req *r) {
	const struct srv_ui_asset *a = find("index.html");
	if (!a) {
		srv_reply_err(r, 404, "no_route", 0, "this build has no dashboard");
		return;
	}
	reply_asset(r, a);
}

void srv_h_ui_asset(struct srv_req *r) {
	const struct srv_ui_asset *a = find(r->param[0]);
	if (!a) {
		srv_reply_err(r, 404, "no_route", 0, "no such file of the dashboard");
		return;
	}
	reply_asset(r, a);
}
