/* The PostgreSQL engine's URL: a libpq URI plus schema=NAME and
 * deadline_ms=N. */
#include "engine/pg_int.h"

/* ---- the URL --------------------------------------------------------------- */

static int pge_hex(int ch) {
	if (ch >= '0' && ch <= '9') return ch - '0';
	if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into a new string; NULL on bad escapes or no
 * memory (*bad tells which). */
static char *pge_unescape(const char *s, size_t n, int *bad) {
	char *o = cj__malloc(n + 1);
	size_t j = 0;
	*bad = 0;
	if (!o) return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			o[j++] = s[i];
			continue;
		}
		int hi = i + 2 < n ? pge_hex(s[i + 1]) : -1;
		int lo = i + 2 < n ? pge_hex(s[i + 2]) : -1;
		if (hi < 0 || lo < 0) {
			cj_free(o);
			*bad = 1;
			return NULL;
		}
		o[j++] = (char)(hi << 4 | lo);
		i += 2;
	}
	o[j] = 0;
	return o;
}

static int pge_valid_schema(const char *s) {
	size_t n = strlen(s);
	if (n == 0 || n > PGE_MAX_SCHEMA) return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return 0;
	return 1;
}

/* Parses s[0..n), decimal digits, into 1 .. PGE_DEADLINE_MAX_MS: 0 or -1. */
static int pge_parse_ms(const char *s, size_t n, int64_t *ms) {
	int64_t v = 0;
	if (n == 0) return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9') return -1;
		v = v * 10 + (s[i] - '0');
		if (v > PGE_DEADLINE_MAX_MS) return -1;
	}
	if (v < 1) return -1;
	*ms = v;
	return 0;
}

/* Splits url into the URI for libpq (db->uri), the schema name and the
 * deadline. */
int cj__pg_parse_url(cj_edb *db, const char *url, const cj_options *o) {
	const char *q = strchr(url, '?');
	char *schema = NULL;
	cj_buf u = CJ_BUF_INIT;
	int rc = CJ_OK;
	db->deadline_ms = PGE_DEADLINE_MS;
	cj__buf_add(&u, url, q ? (size_t)(q - url) : strlen(url));
	if (q) {
		const char *p = q + 1;
		int first = 1;
		while (*p) {
			size_t n = strcspn(p, "&");
			if (n >= 7 && strncmp(p, "schema=", 7) == 0) {
				int bad;
				cj_free(schema);
				schema = pge_unescape(p + 7, n - 7, &bad);
				if (!schema) {
					rc = bad ? cj__fail(CJ_INVALID, "bad escape in the schema= parameter")
					         : cj__fail(CJ_NOMEM, "out of memory");
					goto out_free;
				}
			} else if (n >= 12 && strncmp(p, "deadline_ms=", 12) == 0) {
				if (pge_parse_ms(p + 12, n - 12, &db->deadline_ms) != 0) {
					rc = cj__fail(CJ_INVALID, "bad deadline_ms= parameter: want 1 to "
					              "%lld milliseconds", (long long)PGE_DEADLINE_MAX_MS);
					goto out_free;
				}
			} else if (n > 0) {
				cj__buf_add(&u, first ? "?" : "&", 1);
				cj__buf_add(&u, p, n);
				first = 0;
			}
			p += n;
			if (*p == '&') p++;
		}
	}
	cj__buf_add(&u, "", 1);
	if (u.oom) {
		rc = cj__fail(CJ_NOMEM, "out of memory");
		goto out_free;
	}
	const char *name = schema ? schema : o->schema ? o->schema : PGE_DEFAULT_SCHEMA;
	if (!pge_valid_schema(name)) {
		rc = cj__fail(CJ_INVALID, "bad schema name \"%.80s\": 1 to %d letters, digits "
		              "or underscores", name, PGE_MAX_SCHEMA);
		goto out_free;
	}
	if (!(db->schema = cj__strdup(name))) {
		rc = cj__fail(CJ_NOMEM, "out of memory");
		goto out_free;
	}
	db->uri = (char *)u.p;
	u.p = NULL;
out_free:
	cj_free(schema);
	cj__buf_free(&u);
	return rc;
}
