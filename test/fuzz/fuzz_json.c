/*
 * Fuzzes the job data check (cj__json_check_object): any bytes give
 * CJ_OK or CJ_JSON, and what it accepts jansson reads back as an object.
 */
#include <jansson.h>
#include <stdlib.h>

#include "cj_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	int rc = cj__json_check_object((const char *)data, size);
	if (rc != CJ_OK && rc != CJ_JSON) abort();
	if (rc == CJ_OK) {
		json_error_t err;
		json_t *j = json_loadb((const char *)data, size,
		                       JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &err);
		if (!j || !json_is_object(j)) abort();
		json_decref(j);
	}
	return 0;
}
