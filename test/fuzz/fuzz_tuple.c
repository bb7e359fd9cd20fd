/*
 * Fuzzes the tuple decoder (src/tuple.c): it must never read out of
 * bounds, and what it accepts is canonical: encoding every decoded element
 * again gives back the input bytes exactly.
 */
#include <stdlib.h>
#include <string.h>

#include "tuple.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	cj_tup_reader r;
	cj_tup_item it;
	cj_buf again = CJ_BUF_INIT;
	int rc;
	cj__tup_reader_init(&r, data, size);
	while ((rc = cj__tup_next(&r, &it)) == 1) {
		switch (it.kind) {
		case CJ_TUP_NULL: cj__tup_null(&again); break;
		case CJ_TUP_FALSE:
		case CJ_TUP_TRUE: cj__tup_bool(&again, it.kind == CJ_TUP_TRUE); break;
		case CJ_TUP_INT: cj__tup_int(&again, it.i); break;
		case CJ_TUP_UUID: cj__tup_uuid(&again, it.raw); break;
		case CJ_TUP_VS: cj__tup_vs(&again, it.raw); break;
		case CJ_TUP_BYTES:
		case CJ_TUP_STRING: {
			uint8_t *s = malloc(it.len ? it.len : 1);
			if (!s) abort();
			cj__tup_copy(&it, s);
			if (!cj__tup_eq(&it, s, it.len)) abort();
			if (it.kind == CJ_TUP_BYTES) cj__tup_bytes(&again, s, it.len);
			else cj__tup_str(&again, (const char *)s, it.len);
			free(s);
			break;
		}
		}
	}
	if (rc == 0) {
		/* the whole input decoded: it is canonical */
		if (again.oom || again.len != size || (size && memcmp(again.p, data, size) != 0))
			abort();
	}
	cj__buf_free(&again);
	return 0;
}
