/*
 * Fuzzes the job value decoder (cj__jv_decode) and the data it hands out
 * (cj__jv_data, which checks it is one JSON object): a value that decodes
 * encodes back to the same bytes, and damaged data is CJ_STORE, never a
 * crash.
 */
#include <stdlib.h>
#include <string.h>

#include "cj_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	cj_jv jv;
	if (cj__jv_decode(data, size, &jv) != CJ_OK) return 0;
	if (jv.has_lock != jv.has_seq || jv.sched < 0) abort();
	cj_buf again = CJ_BUF_INIT;
	cj__jv_encode(&again, &jv, NULL, 0);
	if (again.oom || again.len != size || memcmp(again.p, data, size) != 0) abort();
	cj__buf_free(&again);
	char *s = NULL;
	int rc = cj__jv_data(&jv, &s);
	if (rc != CJ_OK && rc != CJ_STORE) abort();
	if ((rc == CJ_OK) != (s != NULL)) abort();
	if (s && cj__json_check_object(s, jv.data_item.len) != CJ_OK) abort();
	cj_free(s);
	return 0;
}
