/* Cron expressions: five fields (minute, hour, day of month, month, day of
 * week) with ranges, lists, steps and names, the @hourly... aliases, and
 * the next tick after a time in a time zone (tz.c). */
#include <string.h>

#include "cj_int.h"

#define CRON_MAX_LEN 256

struct cron_field {
	int lo, hi;                   /* the values it takes */
	const char *const *names;     /* 3-letter names of lo.. (or NULL) */
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT",
                                        NULL};

static const struct cron_field fields[5] = {
	{0, 59, NULL}, {0, 23, NULL}, {1, 31, NULL}, {1, 12, month_names}, {0, 7, day_names},
};
static const char *const field_names[5] = {"minute", "hour", "day of month", "month",
                                           "day of week"};

static const struct {
	const char *alias, *expr;
} aliases[] = {
	{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
	{"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
	{"@hourly", "0 * * * *"},
};

/* A number or (when the field has them) a name at s[0..n): its value. */
static int cron_value(const struct cron_field *f, const char *s, size_t n, int *out) {
	if (n > 0 && s[0] >= '0' && s[0] <= '9') {
		int v = 0;
		for (size_t i = 0; i < n; i++) {
			if (s[i] < '0' || s[i] > '9' || v > 1000) return -1;
			v = v * 10 + (s[i] - '0');
		}
		if (v < f->lo || v > f->hi) return -1;
		*out = v;
		return 0;
	}
	for (int i = 0; f->names && f->names[i]; i++) {
		if (n != 3) break;
		int same = 1;
		for (size_t k = 0; k < 3; k++)
			if ((s[k] & ~0x20) != f->names[i][k]) same = 0;
		if (same) {
			*out = f->lo + i;
			return 0;
		}
	}
	return -1;
}

/* One field s[0..n) into the bit set *bits. */
static int cron_field_parse(int which, const char *s, size_t n, uint64_t *bits) {
	const struct cron_field *f = &fields[which];
	*bits = 0;
	const char *end = s + n;
	while (s < end) {
		const char *item_end = memchr(s, ',', (size_t)(end - s));
		if (!item_end) item_end = end;
		const char *slash = memchr(s, '/', (size_t)(item_end - s));
		const char *range_end = slash ? slash : item_end;
		int lo, hi, step = 1;
		if (range_end - s == 1 && *s == '*') {
			lo = f->lo;
			hi = f->hi;
		} else {
			const char *dash = memchr(s, '-', (size_t)(range_end - s));
			if (cron_value(f, s, (size_t)((dash ? dash : range_end) - s), &lo)) return -1;
			hi = lo;
			if (dash && cron_value(f, dash + 1, (size_t)(range_end - dash - 1), &hi)) return -1;
			if (hi < lo) return -1;
			if (slash && !dash) hi = f->hi; /* N/S: from N on */
		}
		if (slash) {
			int v = 0;
			const char *p = slash + 1;
			if (p == item_end) return -1;
			for (; p < item_end; p++) {
				if (*p < '0' || *p > '9' || v > 1000) return -1;
				v = v * 10 + (*p - '0');
			}
			if (v < 1 || v > f->hi) return -1;
			step = v;
		}
		for (int v = lo; v <= hi; v += step) *bits |= (uint64_t)1 << v;
		if (item_end == end) break;
		s = item_end + 1;
		if (s == end) return -1; /* a trailing comma */
	}
	return *bits ? 0 : -1;
}

int cj__cron_parse(const char *expr, cj_cron *c) {
	memset(c, 0, sizeof *c);
	if (!expr) return cj__fail(CJ_INVALID, "cron expression is NULL");
	size_t len = strnlen(expr, CRON_MAX_LEN + 1);
	if (len > CRON_MAX_LEN)
		return cj__fail(CJ_INVALID, "cron expression is longer than %d bytes", CRON_MAX_LEN);
	while (*expr == ' ' || *expr == '\t') expr++;
	if (*expr == '@') {
		size_t n = strcspn(expr, " \t");
		for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
			if (strlen(aliases[i].alias) == n && strncmp(expr, aliases[i].alias, n) == 0 &&
			    expr[n + strspn(expr + n, " \t")] == 0)
				return cj__cron_parse(aliases[i].expr, c);
		return cj__fail(CJ_INVALID, "unknown cron alias \"%.40s\"", expr);
	}
	uint64_t bits[5];
	const char *p = expr;
	for (int i = 0; i < 5; i++) {
		size_t n = strcspn(p, " \t");
		if (n == 0)
			return cj__fail(CJ_INVALID, "cron expression has %d fields, not 5", i);
		if (cron_field_parse(i, p, n, &bits[i]))
			return cj__fail(CJ_INVALID, "bad %s field \"%.*s\" in cron expression",
			                field_names[i], (int)(n < 40 ? n : 40), p);
		if (i == 2) c->dom_any = *p == '*';
		if (i == 4) c->dow_any = *p == '*';
		p += n;
		p += strspn(p, " \t");
	}
	if (*p) return cj__fail(CJ_INVALID, "cron expression has more than 5 fields");
	c->min = bits[0];
	c->hour = (uint32_t)bits[1];
	c->dom = (uint32_t)bits[2];
	c->mon = (uint16_t)bits[3];
	c->dow = (uint8_t)(bits[4] | (bits[4] >> 7)); /* 7 is Sunday too */
	c->dow &= 0x7f;
	return CJ_OK;
}

/* The day matches: both day fields when either is "*", else either. */
static int day_ok(const cj_cron *c, int d, int64_t days) {
	int dom = (c->dom >> d) & 1, dow = (c->dow >> cj__weekday(days)) & 1;
	return c->dom_any || c->dow_any ? dom && dow : dom || dow;
}

int cj__cron_next(const cj_cron *c, const cj_tz *tz, int64_t after, int64_t *next) {
	int64_t local = cj__add_sat(after, cj__tz_offset(tz, after));
	int64_t start = local - (local % 60 + 60) % 60 + 60;
	int64_t days = start / 86400 - (start % 86400 < 0);
	int64_t secs = start - days * 86400, y;
	int h = (int)(secs / 3600), mi = (int)(secs % 3600 / 60), m, d;
	cj__civil_from_days(days, &y, &m, &d);
	int64_t limit = days + 400 * 366 + 2; /* the calendar repeats every 400 years */
	while (days <= limit) {
		if (!((c->mon >> m) & 1)) { /* the first of the next month */
			if (++m > 12) m = 1, y++;
			days = cj__days_from_civil(y, m, 1);
			d = 1, h = 0, mi = 0;
			continue;
		}
		if (!day_ok(c, d, days) || h > 23) {
			cj__civil_from_days(++days, &y, &m, &d);
			h = 0, mi = 0;
			continue;
		}
		if (!((c->hour >> h) & 1) || mi > 59) {
			h++, mi = 0;
			continue;
		}
		if (!((c->min >> mi) & 1)) {
			mi++;
			continue;
		}
		int64_t u = cj__tz_from_local(tz, days * 86400 + h * 3600 + mi * 60);
		if (u > after) {
			if (u > CJ_MAX_SCHED_TIME) break;
			*next = u;
			return CJ_OK;
		}
		mi++; /* a local time that came before (the first of two): once only */
	}
	return cj__fail(CJ_NOT_FOUND, "the cron expression has no tick after %lld",
	                (long long)after);
}

/* ---- the public calls -------------------------------------------------------- */

int cj_cron_next(const char *expr, const char *zone, int64_t after, int64_t *next) {
	cj_cron c;
	cj_tz *tz = NULL;
	if (!next) return cj__fail(CJ_INVALID, "NULL argument");
	*next = 0;
	int rc = cj__cron_parse(expr, &c);
	if (rc || (rc = cj__check_sched(after, 0)) || (rc = cj__tz_load(zone, &tz))) return rc;
	rc = cj__cron_next(&c, tz, after, next);
	cj__tz_free(tz);
	return rc;
}

int cj_cron_check(const char *expr, const char *zone) {
	int64_t next;
	int rc = cj_cron_next(expr, zone, 0, &next);
	if (rc == CJ_NOT_FOUND) return cj__fail(CJ_INVALID, "the cron expression never fires");
	return rc;
}
