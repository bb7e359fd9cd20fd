/*
 * The routing table: every route of the API as {method, pattern, handler}.
 * A "{}" segment of a pattern matches one path segment, which is decoded
 * and handed to the handler as a parameter.
 */
#include "server.h"
#include "ui.h"

#include <stdlib.h>
#include <string.h>

struct route {
	const char *method;
	const char *pattern; /* "/v1/jobs/{}/{}": {} matches one segment */
	srv_handler handler;
};

static const struct route routes[] = {
	{"GET", "/v1/jobs", srv_h_jobs_list},
	{"PUT", "/v1/jobs/{}/{}", srv_h_job_put},
	{"GET", "/v1/jobs/{}/{}", srv_h_job_get},
	{"DELETE", "/v1/jobs/{}/{}", srv_h_job_delete},
	{"POST", "/v1/jobs/{}/{}/update", srv_h_update},
	{"POST", "/v1/jobs/{}/{}/finish", srv_h_finish},
	{"POST", "/v1/jobs/{}/{}/fail", srv_h_fail},
	{"POST", "/v1/jobs/{}/{}/resubmit", srv_h_resubmit},
	{"POST", "/v1/jobs/{}/{}/retry", srv_h_retry},
	{"GET", "/v1/jobs/{}/{}/events", srv_h_events},
	{"GET", "/v1/jobs/{}/{}/policy", srv_h_job_policy_get},
	{"PUT", "/v1/jobs/{}/{}/policy", srv_h_job_policy_put},
	{"DELETE", "/v1/jobs/{}/{}/policy", srv_h_job_policy_delete},
	{"GET", "/v1/types", srv_h_types_list},
	{"GET", "/v1/types/{}", srv_h_type_get},
	{"PUT", "/v1/types/{}", srv_h_type_put},
	{"DELETE", "/v1/types/{}", srv_h_type_delete},
	{"POST", "/v1/types/{}/accept", srv_h_accept},
	{"POST", "/v1/types/{}/retry", srv_h_type_retry},
	{"GET", "/v1/types/{}/events", srv_h_type_events},
	{"GET", "/v1/types/{}/limits", srv_h_limits_get},
	{"PUT", "/v1/types/{}/limits", srv_h_limits_put},
	{"DELETE", "/v1/types/{}/limits", srv_h_limits_delete},
	{"GET", "/v1/types/{}/retention", srv_h_retention_get},
	{"PUT", "/v1/types/{}/retention", srv_h_retention_put},
	{"DELETE", "/v1/types/{}/retention", srv_h_retention_delete},
	{"POST", "/v1/types/{}/prune", srv_h_prune},
	{"GET", "/v1/schedules", srv_h_schedules_list},
	{"GET", "/v1/schedules/{}", srv_h_schedule_get},
	{"PUT", "/v1/schedules/{}", srv_h_schedule_put},
	{"DELETE", "/v1/schedules/{}", srv_h_schedule_delete},
	{"GET", "/metrics", srv_h_metrics},
	/* the dashboard: the page, its overview stream, its files */
	{"GET", "/", srv_h_ui_page},
	{"GET", "/ui/events", srv_h_ui_events},
	{"GET", "/ui/{}", srv_h_ui_asset},
};

#define NROUTES (sizeof routes / sizeof routes[0])

/* Matches `path` against `pattern`: on a match, 1 + the number of
 * parameters, whose raw segments are in seg/len; 0 otherwise. */
static int match(const char *pattern, const char *path, const char *seg[], size_t len[]) {
	int np = 0;
	const char *p = pattern, *u = path;
	while (*p && *u) {
		if (p[0] == '{' && p[1] == '}') {
			size_t n = strcspn(u, "/");
			if (n == 0 || np == SRV_MAX_PARAMS) return 0;
			seg[np] = u;
			len[np++] = n;
			u += n;
			p += 2;
		} else if (*p++ != *u++) {
			return 0;
		}
	}
	return !*p && !*u ? np + 1 : 0;
}

srv_handler srv_route_find(struct srv_req *r, const char *path, int *status) {
	int path_found = 0;
	for (size_t i = 0; i < NROUTES; i++) {
		const char *seg[SRV_MAX_PARAMS];
		size_t len[SRV_MAX_PARAMS];
		int m = match(routes[i].pattern, path, seg, len);
		if (!m) continue;
		path_found = 1;
		if (strcmp(routes[i].method, r->method) != 0) continue;
		for (int k = 0; k < SRV_MAX_PARAMS; k++) {
			free(r->param[k]);
			r->param[k] = NULL;
		}
		for (int k = 0; k < m - 1; k++) {
			char *raw = strndup(seg[k], len[k]);
			r->param[k] = raw ? srv_unescape(raw, 0) : NULL;
			free(raw);
			if (!r->param[k]) {
				*status = 400;
				return NULL;
			}
		}
		return routes[i].handler;
	}
	*status = path_found ? 405 : 404;
	return NULL;
}
