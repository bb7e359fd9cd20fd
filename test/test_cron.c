/*
 * Cron expressions (include/couchjobs.h "Cron expressions"): a table of
 * expressions and their next ticks (month ends, leap days, daylight saving
 * changes in Europe/Berlin and America/New_York, UTC, and times past the
 * zone file's table), and the expressions and zones that are refused.
 *
 * Public API only; the zones come from the system's tz database (tzdata).
 */
#include "testutil.h"

#include <pthread.h>

struct tick {
	const char *expr, *zone;
	int64_t after, want; /* want -1: CJ_NOT_FOUND */
	const char *what;
};

/* The wanted times are the zone's own conversions of the local times
 * named (Python's zoneinfo over the same tzdata). */
static const struct tick ticks[] = {
	{"0 0 1 1 *", "UTC", 1796396400, 1798761600, "new year"},
	{"*/15 * * * *", "UTC", 1796396850, 1796397300, "step"},
	{"0 0 31 * *", "UTC", 1801353600, 1806451200, "31st skips February"},
	{"0 12 29 2 *", "UTC", 1735689600, 1835438400, "leap day"},
	{"0 12 29 2 *", "UTC", 1835438400, 1961668800, "next leap day"},
	{"0 0 29 2 1", "UTC", 1796342400, 1801440000, "day fields: either"},
	{"@hourly", "UTC", 1796396400, 1796400000, "strictly after"},
	{"0 9 * * MON-FRI", "UTC", 1796374800, 1796634000, "weekdays"},
	{"30 4 1,15 * 5", "UTC", 1796169600, 1796358600, "list or weekday"},
	{"59 23 31 12 *", "UTC", 1798761540, 1830297540, "year end"},
	{"0 0 * * 7", "UTC", 1796342400, 1796515200, "7 is Sunday"},
	{"5 */6 * * *", "UTC", 1796385900, 1796407500, "hour step"},
	{"0 0 1 */3 *", "UTC", 1796342400, 1798761600, "month step"},
	{"0 0 28-31 * *", "UTC", 1803772800, 1806192000, "month end range"},
	{"0 0 30 * *", "UTC", 1801267200, 1806364800, "30th skips February"},
	{"@monthly", NULL, 1796342400, 1798761600, "alias, NULL zone"},
	{"@weekly", "UTC", 1796342400, 1796515200, "weekly"},
	{"0 0 * jan,Jul sun", "UTC", 1796342400, 1798934400, "names"},
	{"10/20 * * * *", "UTC", 1796399400, 1796400600, "N/S"},
	{" 0  0\t1 1 * ", "UTC", 1796396400, 1798761600, "spaces and tabs"},
	{"0 12 * * *", "Europe/Berlin", 1796385600, 1796468400, "Berlin winter"},
	{"30 2 * * *", "Europe/Berlin", 1806112800, 1806195600, "Berlin spring gap: at the change"},
	{"30 2 * * *", "Europe/Berlin", 1806195600, 1806280200, "Berlin after the gap"},
	{"*/30 2 * * *", "Europe/Berlin", 1806195540, 1806195600, "Berlin gap ticks fire once"},
	{"*/30 2 * * *", "Europe/Berlin", 1806195600, 1806278400, "Berlin gap ticks once only"},
	{"30 2 * * *", "Europe/Berlin", 1824858000, 1824942600, "Berlin autumn: the first 02:30"},
	{"30 2 * * *", "Europe/Berlin", 1824942600, 1825032600, "Berlin autumn: not the second"},
	{"0 * * * *", "Europe/Berlin", 1824940800, 1824948000, "Berlin hourly over the repeated hour"},
	{"30 2 * * *", "Europe/Berlin", 1824945000, 1825032600, "Berlin: from inside the second pass"},
	{"0 12 * * *", "Europe/Berlin", 4118076000, 4118119200, "Berlin 2100: the footer rule"},
	{"0 12 * * *", "Europe/Berlin", 4131298800, 4131342000, "Berlin 2100 winter"},
	{"30 2 14 3 *", "America/New_York", 1798761600, 1805007600, "New York spring gap"},
	{"30 1 * * *", "America/New_York", 1825516800, 1825565400, "New York autumn: first 01:30"},
	{"30 1 * * *", "America/New_York", 1825565400, 1825655400, "New York autumn: once"},
	{"0 0 * * *", "US/Eastern", 1796342400, 1796360400, "a link inside the database"},
	{"0 0 1 1 *", "UTC", 253370764800, -1, "none before the end of 9999"},
};

/* Every row of the table. */
TEST(cron_next_table) {
	for (size_t i = 0; i < sizeof ticks / sizeof ticks[0]; i++) {
		const struct tick *t = &ticks[i];
		int64_t next = 42;
		int rc = cj_cron_next(t->expr, t->zone, t->after, &next);
		if (t->want < 0) {
			if (rc != CJ_NOT_FOUND)
				t_fail(__FILE__, __LINE__, "%s: \"%s\" gave %s", t->what, t->expr,
				       cj_err_name(rc));
			continue;
		}
		if (rc != CJ_OK || next != t->want)
			t_fail(__FILE__, __LINE__, "%s: \"%s\" in %s after %lld: %s %lld, want %lld",
			       t->what, t->expr, t->zone ? t->zone : "NULL", (long long)t->after,
			       cj_err_name(rc), (long long)next, (long long)t->want);
	}
}

/* The ticks of "every 30 minutes" from local midnight (after) to the next
 * (end, excluded), each strictly after the last. */
static long walk_day(int64_t t, int64_t end) {
	long n = 0;
	for (;;) {
		int64_t next;
		CHECK_OK(cj_cron_next("*/30 * * * *", "Europe/Berlin", t, &next));
		CHECK(next > t);
		if (next >= end) return n;
		t = next;
		n++;
	}
}

/* Ticks follow one another: an ordinary day has 47 after its midnight;
 * the day the clocks go forward loses 02:00 and 02:30, which fire once at
 * 03:00 together with 03:00's own; the day they go back fires 02:00 and
 * 02:30 once each, not twice. */
TEST(cron_walk_days) {
	CHECK_INT(walk_day(1806015600, 1806102000), 47);     /* 2027-03-26 */
	CHECK_INT(walk_day(1806188400, 1806271200), 47 - 2); /* 2027-03-28 */
	CHECK_INT(walk_day(1824933600, 1825023600), 47);     /* 2027-10-31 */
}

static const char *const bad_exprs[] = {
	"", "   ", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *",
	"* * 32 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *", "5-1 * * * *",
	"a * * * *", "1,,2 * * * *", "1, * * * *", ",1 * * * *", "1- * * * *",
	"-1 * * * *", "1/ * * * *", "*/61 * * * *", "@reboot", "@hourly x", "@", "0 0 30 2 *",
	"0 0 31 4,6,9,11 *", "JAN * * * *", "* * * FOO *", "* * * JANUARY *",
	"99999999999 * * * *", "1-2-3 * * * *", "*/2/2 * * * *", "**/2 * * * *",
};

static const char *const bad_zones[] = {
	"", "Nowhere/City", "../etc/passwd", "/etc/passwd", "Europe/../Europe/Berlin",
	"Europe//Berlin", "Europe/", "./UTC", "Europe/Berlin\n", "zone.tab", "Europe",
};

/* Bad expressions and zones: CJ_INVALID with a detail. */
TEST(cron_invalid) {
	for (size_t i = 0; i < sizeof bad_exprs / sizeof bad_exprs[0]; i++) {
		int rc = cj_cron_check(bad_exprs[i], NULL);
		if (rc != CJ_INVALID || !*cj_last_error())
			t_fail(__FILE__, __LINE__, "cj_cron_check(\"%s\") = %s", bad_exprs[i],
			       cj_err_name(rc));
	}
	for (size_t i = 0; i < sizeof bad_zones / sizeof bad_zones[0]; i++) {
		int rc = cj_cron_check("* * * * *", bad_zones[i]);
		if (rc != CJ_INVALID || !*cj_last_error())
			t_fail(__FILE__, __LINE__, "zone \"%s\": %s", bad_zones[i], cj_err_name(rc));
	}
	/* an unknown zone's detail names it once, then the reader's reason */
	CHECK_RC(cj_cron_check("* * * * *", "Nowhere/City"), CJ_INVALID);
	const char *why = cj_last_error(), *head = "unknown time zone \"Nowhere/City\" (";
	if (strncmp(why, head, strlen(head)) != 0 || strstr(why + 1, "unknown time zone"))
		t_fail(__FILE__, __LINE__, "detail of an unknown zone: %s", why);
	char long_expr[400];
	memset(long_expr, ' ', sizeof long_expr - 1);
	memcpy(long_expr, "* * * * *", 9);
	long_expr[sizeof long_expr - 1] = 0;
	CHECK_RC(cj_cron_check(long_expr, NULL), CJ_INVALID);
	CHECK_RC(cj_cron_check(NULL, NULL), CJ_INVALID);
	int64_t next = 5;
	CHECK_RC(cj_cron_next("* * * * *", NULL, 0, NULL), CJ_INVALID);
	CHECK_RC(cj_cron_next("* * * * *", NULL, -1, &next), CJ_INVALID);
	CHECK_RC(cj_cron_next("* * * * *", NULL, CJ_MAX_SCHED_TIME + 1, &next), CJ_INVALID);
	CHECK_RC(cj_cron_next("* * * *", "UTC", 0, &next), CJ_INVALID);
	CHECK_INT(next, 0);
	/* and the good ones pass */
	CHECK_OK(cj_cron_check("* * * * *", NULL));
	CHECK_OK(cj_cron_check("@daily", "Europe/Berlin"));
	CHECK_OK(cj_cron_check("0 0 29 2 *", "America/New_York"));
	CHECK_OK(cj_cron_check("0-59/7 0,12 1-7 1-12/2 mon-fri", "UTC"));
}

/* Threads computing ticks in different zones at once agree with the
 * table (no shared zone state). */
static void *cron_thread(void *arg) {
	size_t k = (size_t)(uintptr_t)arg;
	for (int r = 0; r < 20; r++)
		for (size_t i = k; i < sizeof ticks / sizeof ticks[0]; i += 4) {
			int64_t next = 0;
			int rc = cj_cron_next(ticks[i].expr, ticks[i].zone, ticks[i].after, &next);
			if (ticks[i].want >= 0 && (rc != CJ_OK || next != ticks[i].want))
				return (void *)1;
		}
	return NULL;
}

TEST(cron_threads) {
	pthread_t th[4];
	for (size_t i = 0; i < 4; i++)
		CHECK(pthread_create(&th[i], NULL, cron_thread, (void *)(uintptr_t)i) == 0);
	for (size_t i = 0; i < 4; i++) {
		void *r;
		pthread_join(th[i], &r);
		CHECK(r == NULL);
	}
}

TEST_MAIN(ENTRY(cron_next_table), ENTRY(cron_walk_days), ENTRY(cron_invalid),
          ENTRY(cron_threads))
