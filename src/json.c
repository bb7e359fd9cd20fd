/* Job data validation: exactly one JSON object, valid UTF-8, nothing after
 * it. The text is stored as given. */
#include <jansson.h>

#include "cj_int.h"

int cj__json_check_object(const char *s, size_t n) {
	json_error_t err;
	/* Integers beyond 64 bits are valid JSON: parse them as reals rather
	 * than refuse them. Strings may hold \u0000. */
	json_t *j = json_loadb(s, n, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &err);
	if (!j) return cj__fail(CJ_JSON, "job data: %s at position %d", err.text, err.position);
	int is_obj = json_is_object(j);
	json_decref(j);
	if (!is_obj) return cj__fail(CJ_JSON, "job data is not a JSON object");
	return CJ_OK;
}
