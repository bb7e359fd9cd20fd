/* Allocation wrappers: every allocation of the library goes through here. */
#include <stdlib.h>
#include <string.h>

#include "cj_int.h"

/* The fault-injection switch (fault.c): compiled in CJ_FAULTS builds only,
 * so a release build has no check to make. */
#ifdef CJ_FAULT_INJECTION
#define ALLOC_FAILS() cj__fault_alloc_due()
#else
#define ALLOC_FAILS() 0
#endif

void *cj__malloc(size_t n) { return ALLOC_FAILS() ? NULL : malloc(n ? n : 1); }

void *cj__calloc(size_t n, size_t size) {
	return ALLOC_FAILS() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

void *cj__realloc(void *p, size_t n) { return ALLOC_FAILS() ? NULL : realloc(p, n ? n : 1); }

char *cj__strndup(const char *s, size_t n) {
	char *d = cj__malloc(n + 1);
	if (!d) return NULL;
	memcpy(d, s, n);
	d[n] = 0;
	return d;
}

char *cj__strdup(const char *s) { return cj__strndup(s, strlen(s)); }

void cj_free(void *p) { free(p); }
