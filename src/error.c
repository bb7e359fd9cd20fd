/* Codes, their messages, and the thread-local detail of the last failure. */
#include <stdio.h>
#include <string.h>

#include "cj_int.h"

static _Thread_local char last_error[CJ_ERROR_MAX];

const char *cj_version(void) {
#define CJ_STR_(x) #x
#define CJ_STR(x) CJ_STR_(x)
	return CJ_STR(CJ_VERSION_MAJOR) "." CJ_STR(CJ_VERSION_MINOR) "." CJ_STR(
		CJ_VERSION_PATCH);
}

const char *cj_strerror(int rc) {
	switch (rc) {
	case CJ_OK: return "CJ_OK: success";
#define CJ__CODE_MSG(name, value, msg) case CJ_##name: return msg;
	CJ_CODE_MAP(CJ__CODE_MSG)
#undef CJ__CODE_MSG
	}
	return "CJ_?: unknown code";
}

const char *cj_err_name(int rc) {
	switch (rc) {
	case CJ_OK: return "CJ_OK";
#define CJ__CODE_NAME(name, value, msg) case CJ_##name: return "CJ_" #name;
	CJ_CODE_MAP(CJ__CODE_NAME)
#undef CJ__CODE_NAME
	}
	return "CJ_?";
}

const char *cj_last_error(void) { return last_error; }

void cj__clear_error(void) { last_error[0] = 0; }

int cj__fail(int rc, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof last_error, fmt, ap);
	va_end(ap);
	return rc;
}

const char *cj_state_name(int state) {
	switch (state) {
	case CJ_PENDING: return "pending";
	case CJ_RUNNING: return "running";
	case CJ_FINISHED: return "finished";
	case CJ_REMOVED: return "removed";
	case CJ_DEAD: return "dead";
	}
	return "unknown";
}

int cj_state_parse(const char *name, cj_state *state) {
	static const cj_state all[] = {CJ_PENDING, CJ_RUNNING, CJ_FINISHED, CJ_REMOVED,
	                               CJ_DEAD};
	if (!name || !state) return cj__fail(CJ_INVALID, "NULL argument");
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		if (strcmp(name, cj_state_name(all[i])) == 0) {
			*state = all[i];
			return CJ_OK;
		}
	return cj__fail(CJ_INVALID, "unknown state \"%.40s\"", name);
}
