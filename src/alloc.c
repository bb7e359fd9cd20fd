/* Allocation wrappers: every allocation of the library goes through here. */
#include <stdlib.h>
#include <string.h>

#include "cj_int.h"

void *cj__malloc(size_t n) { return malloc(n ? n : 1); }

void *cj__calloc(size_t n, size_t size) { return calloc(n ? n : 1, size ? size : 1); }

void *cj__realloc(void *p, size_t n) { return realloc(p, n ? n : 1); }

char *cj__strndup(const char *s, size_t n) {
	char *d = cj__malloc(n + 1);
	if (!d) return NULL;
	memcpy(d, s, n);
	d[n] = 0;
	return d;
}

char *cj__strdup(const char *s) { return cj__strndup(s, strlen(s)); }

void cj_free(void *p) { free(p); }
