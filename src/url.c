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

/* The secrets of url, in order: the password of its userinfo
 * (scheme://user:password@host) and the value of each password=...
 * query parameter. Fills in at most max; returns how many there are. */
#define CJ_URL_SECRETS 16
struct span {
	const char *p;
	size_t n;
};

static size_t secrets(const char *url, struct span *out, size_t max) {
	size_t k = 0;
	const char *p = url;
	const char *scheme_end = strstr(url, "://");
	if (scheme_end && (size_t)(scheme_end - url) == strcspn(url, ":/?#@")) {
		/* the authority ends at the first '/', '?' or '#'; its userinfo,
		 * at its last '@' */
		const char *auth = scheme_end + 3, *at = NULL;
		size_t alen = strcspn(auth, "/?#");
		for (const char *q = auth; q < auth + alen; q++)
			if (*q == '@') at = q;
		const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon && k++ < max) out[k - 1] = (struct span){colon + 1, (size_t)(at - colon - 1)};
		p = auth + alen;
	}
	const char *q = strchr(p, '?');
	for (p = q ? q + 1 : ""; *p;) {
		size_t n = strcspn(p, "&");
		if (is_password_param(p, n) && k++ < max) out[k - 1] = (struct span){p + 9, n - 9};
		p += n;
		if (*p == '&') p++;
	}
	return k;
}

int cj_url_redact(const char *url, char *out, size_t cap) {
	if (!url || !out || cap == 0) return cj__fail(CJ_INVALID, "NULL argument or no room");
	struct span sec[CJ_URL_SECRETS];
	size_t k = secrets(url, sec, CJ_URL_SECRETS), len = 0, lost = 0;
	const char *p = url;
	out[0] = 0;
	for (size_t i = 0; i < k && i < CJ_URL_SECRETS; i++) {
		put(out, cap, &len, p, (size_t)(sec[i].p - p), &lost);
		put(out, cap, &len, CJ_REDACTED, strlen(CJ_REDACTED), &lost);
		p = sec[i].p + sec[i].n;
	}
	/* more secrets than counted: hide all that follows */
	put(out, cap, &len, k > CJ_URL_SECRETS ? CJ_REDACTED : p,
	    k > CJ_URL_SECRETS ? strlen(CJ_REDACTED) : strlen(p), &lost);
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

/* Hides the secret s[0..n) of a URL in msg, as written and percent-decoded
 * (without memory for the decoded form, the whole message). */
static void scrub_secret(char *msg, size_t cap, const char *s, size_t n) {
	char *dec = cj__malloc(n + 1);
	size_t j = 0;
	if (!dec) {
		snprintf(msg, cap, "(message hidden: out of memory)");
		return;
	}
	scrub_one(msg, cap, s, n);
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (s[i] == '%' && i + 2 < n && sscanf(s + i + 1, "%2x", &v) == 1) {
			dec[j++] = (char)v;
			i += 2;
		} else {
			dec[j++] = s[i];
		}
	}
	scrub_one(msg, cap, dec, j);
	cj_free(dec);
}

void cj__url_scrub(const char *url, char *msg, size_t cap) {
	if (!url) return;
	struct span sec[CJ_URL_SECRETS];
	size_t k = secrets(url, sec, CJ_URL_SECRETS);
	if (k > CJ_URL_SECRETS) {
		snprintf(msg, cap, "(message hidden: it may quote the store URL's secrets)");
		return;
	}
	for (size_t i = 0; i < k; i++) scrub_secret(msg, cap, sec[i].p, sec[i].n);
}
