/* Store URLs as they may be shown: cj_url_redact, and the scrubbing of
 * their secrets from messages of the libraries that got them. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cj_int.h"

#define CJ_REDACTED "***"

/* Appends s[0..n) to out (cap bytes), keeping it NUL-terminated; counts
 * what did not fit in *lost. */
static void put(char *out, size_t cap, size_t *len, const char *s, size_t n,
                size_t *lost) {
	size_t room = *len + 1 < cap ? cap - *len - 1 : 0;
	size_t k = n < room ? n : room;
	memcpy(out + *len, s, k);
	*len += k;
	out[*len] = 0;
	*lost += n - k;
}

/* 1 if the query parameter at p (up to '&' or the end, n bytes) is a
 * password: its name, up to '=', is "password" (any case). */
static int is_password_param(const char *p, size_t n) {
	return n > 9 && strncasecmp(p, "password=", 9) == 0;
}

int cj_url_redact(const char *url, char *out, size_t cap) {
	if (!url || !out || cap == 0) return cj__fail(CJ_INVALID, "NULL argument or no room");
	size_t len = 0, lost = 0;
	out[0] = 0;
	const char *p = url;
	const char *scheme_end = strstr(url, "://");
	if (scheme_end && (size_t)(scheme_end - url) == strcspn(url, ":/?#@")) {
		/* scheme://[user[:password]@]host...: the authority ends at the
		 * first '/', '?' or '#'; its userinfo, at its last '@' */
		const char *auth = scheme_end + 3;
		size_t alen = strcspn(auth, "/?#");
		const char *at = NULL;
		for (const char *q = auth; q < auth + alen; q++)
			if (*q == '@') at = q;
		put(out, cap, &len, url, (size_t)(auth - url), &lost);
		if (at) {
			const char *colon = memchr(auth, ':', (size_t)(at - auth));
			if (colon) {
				put(out, cap, &len, auth, (size_t)(colon + 1 - auth), &lost);
				put(out, cap, &len, CJ_REDACTED, strlen(CJ_REDACTED), &lost);
				put(out, cap, &len, at, (size_t)(auth + alen - at), &lost);
			} else {
				put(out, cap, &len, auth, alen, &lost);
			}
		} else {
			put(out, cap, &len, auth, alen, &lost);
		}
		p = auth + alen;
	}
	/* the rest, with the value of every password=... parameter hidden */
	const char *q = strchr(p, '?');
	if (!q) {
		put(out, cap, &len, p, strlen(p), &lost);
	} else {
		put(out, cap, &len, p, (size_t)(q + 1 - p), &lost);
		for (p = q + 1; *p;) {
			size_t n = strcspn(p, "&");
			if (is_password_param(p, n)) {
				put(out, cap, &len, p, 9, &lost);
				put(out, cap, &len, CJ_REDACTED, strlen(CJ_REDACTED), &lost);
			} else {
				put(out, cap, &len, p, n, &lost);
			}
			p += n;
			if (*p == '&') put(out, cap, &len, p++, 1, &lost);
		}
	}
	if (lost)
		return cj__fail(CJ_TOO_LARGE, "the redacted URL needs %zu bytes", len + lost + 1);
	return CJ_OK;
}

/* Replaces every occurrence of the secret s[0..n) in msg with CJ_REDACTED. */
static void scrub_one(char *msg, size_t cap, const char *s, size_t n) {
	if (n == 0) return;
	char tmp[1024];
	size_t len = 0, lost = 0;
	tmp[0] = 0;
	for (const char *p = msg; *p;) {
		if (strncmp(p, s, n) == 0) {
			put(tmp, sizeof tmp, &len, CJ_REDACTED, strlen(CJ_REDACTED), &lost);
			p += n;
		} else {
			put(tmp, sizeof tmp, &len, p++, 1, &lost);
		}
	}
	snprintf(msg, cap, "%s", tmp);
}

/* Hides the secret s[0..n) of a URL in msg, as written and percent-decoded. */
static void scrub_secret(char *msg, size_t cap, const char *s, size_t n) {
	char dec[256];
	size_t j = 0;
	scrub_one(msg, cap, s, n < sizeof dec ? n : sizeof dec - 1);
	for (size_t i = 0; i < n && j + 1 < sizeof dec; i++) {
		unsigned v;
		if (s[i] == '%' && i + 2 < n && sscanf(s + i + 1, "%2x", &v) == 1) {
			dec[j++] = (char)v;
			i += 2;
		} else {
			dec[j++] = s[i];
		}
	}
	scrub_one(msg, cap, dec, j);
}

void cj__url_scrub(const char *url, char *msg, size_t cap) {
	if (!url) return;
	const char *scheme_end = strstr(url, "://"), *p = url;
	if (scheme_end && (size_t)(scheme_end - url) == strcspn(url, ":/?#@")) {
		const char *auth = scheme_end + 3, *at = NULL;
		size_t alen = strcspn(auth, "/?#");
		for (const char *q = auth; q < auth + alen; q++)
			if (*q == '@') at = q;
		const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon) scrub_secret(msg, cap, colon + 1, (size_t)(at - colon - 1));
		p = auth + alen;
	}
	const char *q = strchr(p, '?');
	for (p = q ? q + 1 : ""; *p;) {
		size_t n = strcspn(p, "&");
		if (is_password_param(p, n)) scrub_secret(msg, cap, p + 9, n - 9);
		p += n;
		if (*p == '&') p++;
	}
}
