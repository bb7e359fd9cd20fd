/*
 * Fuzzes the cron parser (cj__cron_parse): any bytes give CJ_OK or
 * CJ_INVALID, and the next tick of what parses (in UTC) is later than the
 * time it starts from and falls on a minute, hour, day and month the
 * expression names.
 */
#include <stdlib.h>
#include <string.h>

#include "cj_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	char expr[512];
	if (size >= sizeof expr) return 0;
	memcpy(expr, data, size);
	expr[size] = 0;
	cj_cron c;
	int rc = cj__cron_parse(expr, &c);
	if (rc != CJ_OK && rc != CJ_INVALID) abort();
	if (rc != CJ_OK) return 0;
	cj_tz *tz = NULL;
	if (cj__tz_load(NULL, &tz) != CJ_OK) abort();
	const int64_t after = 1796396850; /* 2026-12-04T15:07:30Z */
	int64_t next = 0;
	rc = cj__cron_next(&c, tz, after, &next);
	cj__tz_free(tz);
	if (rc == CJ_NOT_FOUND) return 0;
	if (rc != CJ_OK || next <= after || next % 60 != 0) abort();
	int64_t days = next / 86400, y;
	int m, d, h = (int)(next % 86400 / 3600), mi = (int)(next % 3600 / 60);
	cj__civil_from_days(days, &y, &m, &d);
	if (!((c.min >> mi) & 1) || !((c.hour >> h) & 1) || !((c.mon >> m) & 1)) abort();
	int dom = (c.dom >> d) & 1, dow = (c.dow >> cj__weekday(days)) & 1;
	if (c.dom_any || c.dow_any ? !(dom && dow) : !(dom || dow)) abort();
	return 0;
}
