/*
 * Fuzzes the PostgreSQL engine's URL parser (cj__pg_parse_url): any
 * string gives CJ_OK, with a URI for libpq and a valid schema name, or
 * CJ_INVALID; nothing leaks.
 */
#include <stdlib.h>
#include <string.h>

#include "cj_int.h"
#include "engine/pg_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	char *url = malloc(size + 1);
	if (!url) return 0;
	memcpy(url, data, size);
	url[size] = 0;
	cj_edb db;
	memset(&db, 0, sizeof db);
	cj_options o = CJ_OPTIONS_INIT;
	int rc = cj__pg_parse_url(&db, url, &o);
	if (rc == CJ_OK) {
		/* the schema= parameter is the library's, never passed to libpq */
		const char *q = db.uri ? strchr(db.uri, '?') : NULL;
		if (!db.uri || !db.schema || !*db.schema ||
		    (q && (strncmp(q + 1, "schema=", 7) == 0 || strstr(q, "&schema="))))
			abort();
		for (const char *p = db.schema; *p; p++)
			if (!(*p == '_' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
			      (*p >= 'A' && *p <= 'Z')))
				abort();
	} else if (rc != CJ_INVALID && rc != CJ_NOMEM) {
		abort();
	}
	free(db.uri);
	free(db.schema);
	free(url);
	return 0;
}
