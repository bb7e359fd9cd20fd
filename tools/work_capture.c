/* cjobs work: the command's output, kept whole while it can be the job's
 * result, and its tail always. */
#include "work.h"

#include <stdlib.h>
#include <string.h>

static void tail_add(struct capture *k, const char *p, size_t n) {
	if (n >= TAIL_BYTES) {
		memcpy(k->tail, p + n - TAIL_BYTES, TAIL_BYTES);
		k->tlen = TAIL_BYTES;
		return;
	}
	if (k->tlen + n > sizeof k->tail) {
		size_t keep = TAIL_BYTES - n;
		memmove(k->tail, k->tail + k->tlen - keep, keep);
		k->tlen = keep;
	}
	memcpy(k->tail + k->tlen, p, n);
	k->tlen += n;
}

void capture_add(struct capture *k, const char *p, size_t n) {
	if (!k->overflow && k->len + n <= k->limit) {
		if (k->len + n + 1 > k->cap) {
			size_t cap = k->cap ? k->cap : 4096;
			while (cap < k->len + n + 1) cap *= 2;
			char *b = realloc(k->buf, cap);
			if (b) {
				k->buf = b;
				k->cap = cap;
			}
		}
		if (k->len + n + 1 <= k->cap) {
			memcpy(k->buf + k->len, p, n);
			k->len += n;
			k->buf[k->len] = 0;
			return;
		}
	}
	if (!k->overflow) {
		/* over the limit (or out of memory): keep the tail only */
		k->overflow = 1;
		if (k->len) tail_add(k, k->buf, k->len);
		free(k->buf);
		k->buf = NULL;
		k->len = k->cap = 0;
	}
	tail_add(k, p, n);
}

void capture_tail(const struct capture *k, const char **p, size_t *n) {
	if (k->overflow) {
		*n = k->tlen > TAIL_BYTES ? TAIL_BYTES : k->tlen;
		*p = k->tail + k->tlen - *n;
	} else {
		*n = k->len > TAIL_BYTES ? TAIL_BYTES : k->len;
		*p = k->buf ? k->buf + k->len - *n : "";
	}
}

char *capture_json(const struct capture *k) {
	if (k->overflow || !k->buf || !k->len) return NULL;
	const char *s = k->buf, *e = k->buf + k->len;
	while (s < e && *s && strchr(" \t\r\n", *s)) s++;
	while (e > s && e[-1] && strchr(" \t\r\n", e[-1])) e--;
	if (s == e || memchr(s, 0, (size_t)(e - s))) return NULL;
	char *j = strndup(s, (size_t)(e - s));
	if (j && cj_data_check(j, k->limit) != CJ_OK) {
		free(j);
		j = NULL;
	}
	return j;
}
