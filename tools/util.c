/* cjobs: argument parsing (numbers, durations, times, JSON) and output. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Reads digits at *p into *v; advances *p. 0, or -1 on no digits or
 * overflow. */
static int read_digits(const char **p, int64_t *v) {
	const char *s = *p;
	int64_t n = 0;
	if (*s < '0' || *s > '9') return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		int d = *s - '0';
		if (n > (INT64_MAX - d) / 10) return -1;
		n = n * 10 + d;
	}
	*p = s;
	*v = n;
	return 0;
}

int cli_parse_int(const char *s, int64_t *out) {
	int64_t v;
	if (!s || read_digits(&s, &v) != 0 || *s) return -1;
	*out = v;
	return 0;
}

int cli_parse_duration_ms(const char *s, int64_t plain_unit_ms, int64_t *ms) {
	static const struct {
		const char *name;
		int64_t ms;
	} units[] = {
		/* "ms" before "m" */
		{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
	};
	int64_t total = 0, v;
	if (!s || !*s) return -1;
	const char *p = s;
	if (read_digits(&p, &v) == 0 && !*p) {
		if (v > INT64_MAX / plain_unit_ms) return -1;
		*ms = v * plain_unit_ms;
		return 0;
	}
	p = s;
	while (*p) {
		if (read_digits(&p, &v) != 0) return -1;
		size_t i, n = sizeof units / sizeof units[0];
		for (i = 0; i < n; i++) {
			size_t l = strlen(units[i].name);
			if (strncmp(p, units[i].name, l) == 0 &&
			    !(p[l] >= 'a' && p[l] <= 'z'))
				break;
		}
		if (i == n) return -1;
		p += strlen(units[i].name);
		if (v > INT64_MAX / units[i].ms) return -1;
		v *= units[i].ms;
		if (total > INT64_MAX - v) return -1;
		total += v;
	}
	*ms = total;
	return 0;
}

void cli_put_duration(FILE *f, int64_t ms) {
	static const struct {
		const char *name;
		int64_t ms;
	} units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (ms > 0 && ms % units[i].ms == 0) {
			fprintf(f, "%lld%s", (long long)(ms / units[i].ms), units[i].name);
			return;
		}
	fprintf(f, "%lldms", (long long)ms);
}

int cli_parse_sched(struct cli *c, const char *at, const char *in,
                    int64_t dflt, int64_t *sched) {
	if (at && in) return cli_usage(c, "--at and --in cannot be used together");
	if (at) {
		int64_t v;
		if (cli_parse_int(at, &v) != 0 || v > CJ_MAX_SCHED_TIME)
			return cli_usage(c, "invalid --at time '%s' (want seconds since "
			                 "the epoch, at most %lld)", at,
			                 (long long)CJ_MAX_SCHED_TIME);
		*sched = v;
		return 0;
	}
	if (in) {
		int64_t ms;
		/* keep the result far from overflow when added to the clock */
		if (cli_parse_duration_ms(in, 1000, &ms) != 0 ||
		    ms > (int64_t)1000 * 1000 * 1000 * 1000 * 1000)
			return cli_usage(c, "invalid --in duration '%s' (e.g. 90, 90s, "
			                 "5m, 2h, 1d)", in);
		*sched = cli_epoch() + (ms + 999) / 1000;
		if (*sched > CJ_MAX_SCHED_TIME)
			return cli_usage(c, "invalid --in duration '%s': it ends after the "
			                 "latest time a job may be scheduled (the year 9999)", in);
		return 0;
	}
	*sched = dflt;
	return 0;
}

int cli_judged(struct cli *c, int rc) {
	return rc ? cli_usage(c, "%s", cj_last_error()) : 0;
}

int cli_judge_job(struct cli *c, const char *type, const char *id) {
	int rc = cli_judged(c, cj_type_check(type));
	return rc ? rc : cli_judged(c, cj_id_check(id));
}

int cli_data_arg(struct cli *c, const char *arg, char **owned, const char **data) {
	*owned = NULL;
	*data = arg;
	if (strcmp(arg, "-") != 0) return cli_judged(c, cj_data_check(arg, 0));
	size_t len = 0, cap = 0;
	char *buf = NULL;
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 65536;
			char *b = realloc(buf, cap);
			if (!b) {
				free(buf);
				cli_msg(c, "out of memory");
				return CLI_EXIT_STORE;
			}
			buf = b;
		}
		size_t n = fread(buf + len, 1, cap - len - 1, stdin);
		len += n;
		if (len > CJ_MAX_DATA_LIMIT) {
			free(buf);
			return cli_usage(c, "data on standard input is over %zu bytes",
			                 (size_t)CJ_MAX_DATA_LIMIT);
		}
		if (n == 0) break;
	}
	if (ferror(stdin)) {
		free(buf);
		cli_msg(c, "cannot read standard input: %s", strerror(errno));
		return CLI_EXIT_STORE;
	}
	buf[len] = 0;
	if (strlen(buf) != len) {
		free(buf);
		return cli_usage(c, "job data on standard input holds a NUL byte");
	}
	*owned = buf;
	*data = buf;
	return cli_judged(c, cj_data_check(buf, 0));
}

/* ---- JSON string output ------------------------------------------------ */

struct sbuf {
	char *p;
	size_t len, cap;
	int oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n) {
	if (b->oom) return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1) cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n) {
	unsigned c = s[0];
	size_t l;
	unsigned cp;
	if (c < 0x80) return 1;
	if (c >= 0xc2 && c <= 0xdf) { l = 2; cp = c & 0x1f; }
	else if (c >= 0xe0 && c <= 0xef) { l = 3; cp = c & 0x0f; }
	else if (c >= 0xf0 && c <= 0xf4) { l = 4; cp = c & 0x07; }
	else return 0;
	if (n < l) return 0;
	for (size_t i = 1; i < l; i++) {
		if ((s[i] & 0xc0) != 0x80) return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((l == 3 && cp < 0x800) || (l == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return l;
}

static void sb_jstr(struct sbuf *b, const char *str, size_t len) {
	const unsigned char *s = (const unsigned char *)str;
	sb_put(b, "\"", 1);
	size_t i = 0;
	while (i < len) {
		unsigned c = s[i];
		if (c == 0) {
			sb_put(b, "\\ufffd", 6);
			i++;
		} else if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			sb_put(b, e, 2);
			i++;
		} else if (c < 0x20) {
			char e[8];
			switch (c) {
			case '\n': sb_put(b, "\\n", 2); break;
			case '\r': sb_put(b, "\\r", 2); break;
			case '\t': sb_put(b, "\\t", 2); break;
			case '\b': sb_put(b, "\\b", 2); break;
			case '\f': sb_put(b, "\\f", 2); break;
			default:
				snprintf(e, sizeof e, "\\u%04x", c);
				sb_put(b, e, 6);
			}
			i++;
		} else {
			size_t l = utf8_len(s + i, len - i);
			if (l == 0) {
				sb_put(b, "\\ufffd", 6);
				i++;
			} else {
				sb_put(b, (const char *)s + i, l);
				i += l;
			}
		}
	}
	sb_put(b, "\"", 1);
}

char *cli_jstr(const char *s, size_t len) {
	struct sbuf b = {0};
	sb_jstr(&b, s, len);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

void cli_put_jstr(FILE *f, const char *s, size_t len) {
	char *j = cli_jstr(s, len);
	if (j) {
		fputs(j, f);
		free(j);
	} else {
		fputs("\"\"", f);
	}
}

void cli_put_data(FILE *f, const char *data) {
	if (!data) {
		fputs("null", f);
		return;
	}
	/* The store holds valid JSON: a line break can only be white space
	 * between tokens, so it can become a space. */
	for (const char *p = data; *p;) {
		size_t n = strcspn(p, "\r\n");
		fwrite(p, 1, n, f);
		p += n;
		if (*p) {
			fputc(' ', f);
			p++;
		}
	}
}
