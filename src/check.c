/* Argument checks shared by every public call. */
#include <string.h>

#include "cj_int.h"

int cj__check_type(const char *type) {
	if (!type) return cj__fail(CJ_INVALID, "type is NULL");
	size_t n = strnlen(type, CJ_MAX_TYPE + 1);
	if (n == 0) return cj__fail(CJ_INVALID, "type is empty");
	if (n > CJ_MAX_TYPE)
		return cj__fail(CJ_INVALID, "type is longer than %d bytes", CJ_MAX_TYPE);
	return CJ_OK;
}

int cj__check_id(const char *id) {
	if (!id) return cj__fail(CJ_INVALID, "job id is NULL");
	size_t n = strnlen(id, CJ_MAX_ID + 1);
	if (n == 0) return cj__fail(CJ_INVALID, "job id is empty");
	if (n > CJ_MAX_ID)
		return cj__fail(CJ_INVALID, "job id is longer than %d bytes", CJ_MAX_ID);
	return CJ_OK;
}

int cj__check_data(const cj_db *db, const char **data, size_t *len, int allow_null) {
	if (!*data) {
		if (!allow_null) return cj__fail(CJ_INVALID, "data is NULL");
		*data = "{}";
		*len = 2;
		return CJ_OK;
	}
	size_t n = strnlen(*data, db->max_data + 1);
	if (n > db->max_data)
		return cj__fail(CJ_TOO_LARGE, "job data is over the limit of %zu bytes",
		                db->max_data);
	*len = n;
	return cj__json_check_object(*data, n);
}
