/*
 * Every CJ_* code mapped to one HTTP status (doc/http-api.md lists the map).
 */
#include "server.h"

int srv_status_of(int rc) {
	switch (rc) {
	case CJ_OK: return 200;
	case CJ_NOT_FOUND: return 404;
	case CJ_HALT: return 409;
	case CJ_NO_TYPE_TIMEOUT: return 422;
	case CJ_JSON: return 400;
	case CJ_INVALID: return 400;
	case CJ_TOO_LARGE: return 413;
	case CJ_TIMEOUT: return 504;
	case CJ_CONFLICT: return 503;
	case CJ_STORE: return 500;
	case CJ_NOMEM: return 507;
	case CJ_CANCELED: return 503;
	case CJ_EXISTS: return 409;
	default: return 500;
	}
}
