/* The table of engines built into the library, and opening and closing a
 * store through the one cj_open() picks. This is the only place that knows
 * which engines exist. */
#include <string.h>

#include "cj_int.h"

#ifdef HAVE_LMDB
extern const struct cj_engine cj__engine_lmdb;
#endif
#ifdef HAVE_LIBPQ
extern const struct cj_engine cj__engine_pg;
#endif
#ifdef CJ_FAULT_INJECTION
extern const struct cj_engine cj__engine_faulty; /* tests only (fault.c) */
#endif

const struct cj_engine *const cj__engines[] = {
#ifdef HAVE_LMDB
	&cj__engine_lmdb,
#endif
#ifdef HAVE_LIBPQ
	&cj__engine_pg,
#endif
#ifdef CJ_FAULT_INJECTION
	&cj__engine_faulty,
#endif
	NULL};

/* A URL with a scheme ("word:") the table does not know is refused rather
 * than taken for a path; a path holding ':' can be given as lmdb:PATH. */
static int has_scheme(const char *url) {
	const char *c = strchr(url, ':');
	if (!c || c == url) return 0;
	for (const char *p = url; p < c; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.'))
			return 0;
	return 1;
}

static const struct cj_engine *engine_for(const char *url) {
	for (size_t i = 0; cj__engines[i]; i++)
		for (const char *const *s = cj__engines[i]->schemes; *s; s++)
			if (strncmp(url, *s, strlen(*s)) == 0) return cj__engines[i];
	if (!has_scheme(url)) return cj__engines[0];
	return NULL;
}

int cj__engine_open(const char *url, const cj_options *opts,
                    const struct cj_engine **eng, cj_edb **edb) {
	*eng = NULL;
	*edb = NULL;
	const struct cj_engine *e = engine_for(url);
	if (!e) {
		char shown[128];
		cj_url_redact(url, shown, sizeof shown);
		return cj__fail(CJ_INVALID, "unknown store URL scheme: %s", shown);
	}
	if (e->version != CJ_ENGINE_VERSION)
		return cj__fail(CJ_INVALID, "engine %s was written to engine interface "
		                "version %d; this library has version %d", e->name, e->version,
		                CJ_ENGINE_VERSION);
	int rc = e->open(url, opts, edb);
	if (rc == CJ_OK) *eng = e;
	return rc;
}

void cj__engine_close(const struct cj_engine *eng, cj_edb *edb) {
	if (eng && edb) eng->close(edb);
}

int cj__engine_readonly(const struct cj_engine *eng, cj_edb *edb) {
	return eng->readonly && eng->readonly(edb) ? 1 : 0;
}
