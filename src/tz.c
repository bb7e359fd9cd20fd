/* Time zones from the system's tz database: TZif files (RFC 8536) read
 * from /usr/share/zoneinfo, and the POSIX TZ rule of their footer for times
 * past the table. A loaded zone is immutable: any thread may use it, and
 * nothing here touches the process's TZ or the C library's zone state. */
#include <stdio.h>
#include <string.h>

#include "cj_int.h"
#include "os/os.h"

#define TZ_DIR "/usr/share/zoneinfo"
#define TZ_FILE_MAX ((size_t)1 << 20)
#define TZ_MAX_OFF (26 * 3600) /* |UT offset| beyond this is damage */

/* A day of the year in a POSIX TZ rule, and the local time on it. */
struct tz_date {
	char kind; /* 'J': Jn (1..365, no Feb 29); 'n': n (0..365); 'M': Mm.w.d */
	int n, m, w, d;
	int32_t secs;
};

struct tz_rule {
	int32_t std_off, dst_off; /* seconds east of UTC */
	int has_dst;
	struct tz_date start, end;
};

struct cj_tz {
	size_t ntrans;
	int64_t *trans;  /* ascending transition times */
	int32_t *offs;   /* the offset from each transition on */
	int32_t first;   /* the offset before the first transition */
	int has_rule;
	struct tz_rule rule;
};

/* ---- civil dates (proleptic Gregorian) ------------------------------------ */

int64_t cj__days_from_civil(int64_t y, int m, int d) {
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void cj__civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

int cj__weekday(int64_t days) { /* 0 Sunday; 1970-01-01 was a Thursday */
	int64_t w = (days + 4) % 7;
	return (int)(w < 0 ? w + 7 : w);
}

int cj__is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int cj__month_days(int64_t y, int m) {
	static const int n[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && cj__is_leap(y) ? 29 : n[m - 1];
}

static int64_t floor_div(int64_t a, int64_t b) {
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* ---- POSIX TZ rules ---------------------------------------------------------- */

static int rule_num(const char **p, int lo, int hi, int *out) {
	const char *s = *p;
	int v = 0, digits = 0;
	while (*s >= '0' && *s <= '9' && digits < 4) v = v * 10 + (*s++ - '0'), digits++;
	if (!digits || v < lo || v > hi) return -1;
	*p = s;
	*out = v;
	return 0;
}

/* [+-]hh[:mm[:ss]], hours up to max_h: seconds in *out. */
static int rule_time(const char **p, int max_h, int32_t *out) {
	int sign = 1, h, m = 0, sec = 0;
	if (**p == '+' || **p == '-') sign = *(*p)++ == '-' ? -1 : 1;
	if (rule_num(p, 0, max_h, &h)) return -1;
	if (**p == ':') {
		(*p)++;
		if (rule_num(p, 0, 59, &m)) return -1;
		if (**p == ':') {
			(*p)++;
			if (rule_num(p, 0, 59, &sec)) return -1;
		}
	}
	*out = sign * (h * 3600 + m * 60 + sec);
	return 0;
}

static int rule_name(const char **p) {
	const char *s = *p;
	if (*s == '<') {
		for (s++; *s && *s != '>'; s++) {}
		if (*s != '>' || s - *p < 4) return -1;
		*p = s + 1;
		return 0;
	}
	while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')) s++;
	if (s - *p < 3) return -1;
	*p = s;
	return 0;
}

static int rule_date(const char **p, struct tz_date *d) {
	d->secs = 2 * 3600;
	if (**p == 'J') {
		(*p)++;
		d->kind = 'J';
		if (rule_num(p, 1, 365, &d->n)) return -1;
	} else if (**p == 'M') {
		(*p)++;
		d->kind = 'M';
		if (rule_num(p, 1, 12, &d->m) || *(*p)++ != '.' || rule_num(p, 1, 5, &d->w) ||
		    *(*p)++ != '.' || rule_num(p, 0, 6, &d->d))
			return -1;
	} else {
		d->kind = 'n';
		if (rule_num(p, 0, 365, &d->n)) return -1;
	}
	if (**p == '/') {
		(*p)++;
		if (rule_time(p, 167, &d->secs)) return -1;
	}
	return 0;
}

/* Parses a POSIX TZ string (such as "CET-1CEST,M3.5.0,M10.5.0/3"). */
static int rule_parse(const char *s, struct tz_rule *r) {
	int32_t v;
	memset(r, 0, sizeof *r);
	if (rule_name(&s) || rule_time(&s, 24, &v)) return -1;
	r->std_off = -v; /* POSIX counts west of Greenwich */
	if (!*s) return 0;
	if (rule_name(&s)) return -1;
	r->has_dst = 1;
	r->dst_off = r->std_off + 3600;
	if (*s && *s != ',') {
		if (rule_time(&s, 24, &v)) return -1;
		r->dst_off = -v;
	}
	if (!*s) { /* no rule: the US one, as C libraries assume */
		r->start = (struct tz_date){'M', 0, 3, 2, 0, 7200};
		r->end = (struct tz_date){'M', 0, 11, 1, 0, 7200};
		return 0;
	}
	if (*s++ != ',' || rule_date(&s, &r->start) || *s++ != ',' || rule_date(&s, &r->end))
		return -1;
	return *s ? -1 : 0;
}

/* The local midnight (seconds, as if UTC) of rule date d in year y. */
static int64_t rule_day(int64_t y, const struct tz_date *d) {
	int64_t jan1 = cj__days_from_civil(y, 1, 1), day;
	if (d->kind == 'J') {
		day = jan1 + d->n - 1 + (cj__is_leap(y) && d->n >= 60);
	} else if (d->kind == 'n') {
		day = jan1 + d->n;
	} else {
		int64_t first = cj__days_from_civil(y, d->m, 1);
		day = first + (d->d - cj__weekday(first) + 7) % 7 + 7 * (d->w - 1);
		while (day >= first + cj__month_days(y, d->m)) day -= 7;
	}
	return day * 86400;
}

static int32_t rule_offset(const struct tz_rule *r, int64_t t) {
	if (!r->has_dst) return r->std_off;
	int64_t y;
	int m, d;
	cj__civil_from_days(floor_div(t + r->std_off, 86400), &y, &m, &d);
	int64_t start = rule_day(y, &r->start) + r->start.secs - r->std_off;
	int64_t end = rule_day(y, &r->end) + r->end.secs - r->dst_off;
	int dst = start < end ? (t >= start && t < end) : !(t >= end && t < start);
	return dst ? r->dst_off : r->std_off;
}

/* ---- TZif ---------------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p) {
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p) {
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_counts {
	uint32_t isut, isstd, leap, time, type, chars;
};

static void tzif_counts(const uint8_t *h, struct tzif_counts *c) {
	c->isut = be32(h + 20);
	c->isstd = be32(h + 24);
	c->leap = be32(h + 28);
	c->time = be32(h + 32);
	c->type = be32(h + 36);
	c->chars = be32(h + 40);
}

/* The size of the data block after a header with counts c and times of
 * tw bytes; 0 when the counts are absurd. */
static size_t tzif_block(const struct tzif_counts *c, size_t tw) {
	if (c->time > 100000 || c->type > 256 || c->chars > 65536 || c->leap > 10000 ||
	    c->isut > 256 || c->isstd > 256)
		return 0;
	return (size_t)c->time * (tw + 1) + (size_t)c->type * 6 + c->chars +
	       (size_t)c->leap * (tw + 4) + c->isstd + c->isut;
}

#define TZ_BAD(what) cj__fail(CJ_INVALID, "zone file of \"%.60s\": %s", name, what)

int cj__tz_parse(const char *name, const uint8_t *b, size_t len, cj_tz **out) {
	*out = NULL;
	struct tzif_counts c;
	if (len < 44 || memcmp(b, "TZif", 4) != 0) return TZ_BAD("not a TZif file");
	int version = b[4];
	tzif_counts(b, &c);
	size_t v1 = tzif_block(&c, 4), tw = 4, off = 44;
	if (version >= '2') {
		off = 44 + v1;
		if (off + 44 > len || memcmp(b + off, "TZif", 4) != 0) return TZ_BAD("damaged header");
		tzif_counts(b + off, &c);
		off += 44;
		tw = 8;
	}
	size_t blk = tzif_block(&c, tw);
	if (!blk || c.type == 0 || off + blk > len) return TZ_BAD("damaged data");
	if (c.leap) return TZ_BAD("leap-second zones are not supported");
	const uint8_t *tt = b + off, *ti = tt + (size_t)c.time * tw, *ty = ti + c.time;
	cj_tz *z = cj__calloc(1, sizeof *z);
	if (!z) return cj__fail(CJ_NOMEM, "out of memory");
	if (c.time && (!(z->trans = cj__malloc(c.time * sizeof *z->trans)) ||
	               !(z->offs = cj__malloc(c.time * sizeof *z->offs)))) {
		cj__tz_free(z);
		return cj__fail(CJ_NOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < c.type; i++) {
		int32_t o = (int32_t)be32(ty + 6 * i);
		if (o <= -TZ_MAX_OFF || o >= TZ_MAX_OFF || ty[6 * i + 4] > 1) {
			cj__tz_free(z);
			return TZ_BAD("damaged time type");
		}
	}
	z->first = (int32_t)be32(ty);
	for (uint32_t i = 0; i < c.time; i++) {
		int64_t t = tw == 8 ? be64(tt + 8 * i) : (int64_t)(int32_t)be32(tt + 4 * i);
		if (ti[i] >= c.type || (i && t <= z->trans[i - 1])) {
			cj__tz_free(z);
			return TZ_BAD("damaged transitions");
		}
		z->trans[i] = t;
		z->offs[i] = (int32_t)be32(ty + 6 * ti[i]);
	}
	z->ntrans = c.time;
	/* the footer: "\n" POSIX-TZ "\n" */
	const uint8_t *f = b + off + blk, *end = b + len;
	if (version >= '2' && f < end && *f == '\n') {
		const uint8_t *nl = memchr(f + 1, '\n', (size_t)(end - f - 1));
		char rule[128];
		size_t n = nl ? (size_t)(nl - f - 1) : 0;
		if (!nl || n >= sizeof rule) {
			cj__tz_free(z);
			return TZ_BAD("damaged footer");
		}
		memcpy(rule, f + 1, n);
		rule[n] = 0;
		if (n && rule_parse(rule, &z->rule) != 0) {
			cj__tz_free(z);
			return TZ_BAD("footer rule not understood");
		}
		z->has_rule = n > 0;
	}
	*out = z;
	return CJ_OK;
}

/* A zone name: relative, of [A-Za-z0-9_+-.] components, none "." or "..". */
static int check_zone_name(const char *zone) {
	size_t n = strnlen(zone, 256);
	if (n == 0 || n > 255) return cj__fail(CJ_INVALID, "bad time zone name");
	const char *p = zone;
	for (;;) {
		const char *q = p;
		while ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') ||
		       (*q >= '0' && *q <= '9') || *q == '_' || *q == '+' || *q == '-' || *q == '.')
			q++;
		size_t l = (size_t)(q - p);
		if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.') ||
		    (*q && *q != '/'))
			return cj__fail(CJ_INVALID, "bad time zone name \"%.60s\"", zone);
		if (!*q) return CJ_OK;
		p = q + 1;
	}
}

int cj__tz_load(const char *zone, cj_tz **out) {
	*out = NULL;
	if (!zone || strcmp(zone, "UTC") == 0) {
		cj_tz *z = cj__calloc(1, sizeof *z);
		if (!z) return cj__fail(CJ_NOMEM, "out of memory");
		*out = z;
		return CJ_OK;
	}
	int rc = check_zone_name(zone);
	if (rc) return rc;
	unsigned char *buf;
	size_t len;
	rc = cj__os_read_beneath(TZ_DIR, zone, TZ_FILE_MAX, &buf, &len);
	if (rc == CJ_NOT_FOUND || rc == CJ_TOO_LARGE) {
		/* the reader's detail is copied out of the buffer cj__fail() writes */
		char why[128];
		snprintf(why, sizeof why, "%s", cj_last_error());
		return cj__fail(CJ_INVALID, "unknown time zone \"%.60s\" (%s)", zone, why);
	}
	if (rc) return rc;
	rc = cj__tz_parse(zone, buf, len, out);
	cj_free(buf);
	return rc;
}

void cj__tz_free(cj_tz *z) {
	if (!z) return;
	cj_free(z->trans);
	cj_free(z->offs);
	cj_free(z);
}

int32_t cj__tz_offset(const cj_tz *z, int64_t t) {
	if (z->ntrans == 0 || t >= z->trans[z->ntrans - 1]) {
		if (z->has_rule) return rule_offset(&z->rule, t);
		return z->ntrans ? z->offs[z->ntrans - 1] : z->first;
	}
	if (t < z->trans[0]) return z->first;
	size_t lo = 0, hi = z->ntrans - 1; /* trans[lo] <= t < trans[hi] */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (z->trans[mid] <= t) lo = mid;
		else hi = mid;
	}
	return z->offs[lo];
}

int64_t cj__tz_from_local(const cj_tz *z, int64_t local) {
	/* the offsets a day either side (zones change at most once a day) */
	int32_t a = cj__tz_offset(z, cj__add_sat(local, -86400));
	int32_t b = cj__tz_offset(z, cj__add_sat(local, 86400));
	int64_t ua = cj__add_sat(local, -a), ub = cj__add_sat(local, -b);
	int va = cj__tz_offset(z, ua) == a, vb = cj__tz_offset(z, ub) == b;
	if (va && vb) return ua < ub ? ua : ub; /* twice: the first */
	if (va) return ua;
	if (vb) return ub;
	/* in a gap (a < b): the instant the offset becomes b */
	int64_t lo = ub, hi = ua; /* offset(lo) != b, offset(hi) == b */
	if (cj__tz_offset(z, hi) != b) return ua;
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;
		if (cj__tz_offset(z, mid) == b) hi = mid;
		else lo = mid;
	}
	return hi;
}
