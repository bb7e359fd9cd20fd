/*
 * Fuzzes the job value decoder (cj__jv_decode) and the data it hands out
 * (cj__jv_data, which checks it is one JSON object): a value of format 2
 * that decodes encodes back to the same bytes, one of format 1 encodes to
 * a format-2 value that decodes to the same fields, the errors make a JSON
 * array, and damaged data is CJ_STORE, never a crash.
 */
#include <stdlib.h>
#include <string.h>

#include "cj_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	cj_jv jv;
	if (cj__jv_decode(data, size, &jv) != CJ_OK) return 0;
	if (jv.has_lock != jv.has_seq || jv.sched < 0) abort();
	if (jv.dead && jv.has_lock) abort();
	cj_buf again = CJ_BUF_INIT;
	cj__jv_encode(&again, &jv, NULL, 0);
	if (again.oom) abort();
	if (!jv.v1 && (again.len != size || memcmp(again.p, data, size) != 0)) abort();
	cj_jv jv2;
	if (cj__jv_decode(again.p, again.len, &jv2) != CJ_OK || jv2.v1 ||
	    jv2.sched != jv.sched || jv2.attempt != jv.attempt || jv2.nerr != jv.nerr ||
	    jv2.data_enclen != jv.data_enclen)
		abort();
	cj__buf_free(&again);
	char *errors = NULL;
	if (cj__jv_errors(&jv, &errors) != CJ_OK || errors[0] != '[') abort();
	cj_free(errors);
	char *s = NULL;
	int rc = cj__jv_data(&jv, &s);
	if (rc != CJ_OK && rc != CJ_STORE) abort();
	if ((rc == CJ_OK) != (s != NULL)) abort();
	if (s && cj__json_check_object(s, jv.data_item.len) != CJ_OK) abort();
	cj_free(s);
	return 0;
}
