/*
 * cjobs limit: print, set or clear a job type's concurrency and rate
 * limits (cj_set_type_limits()).
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

const struct cli_opt cli_limit_opts[] = {
	{"--concurrency", NULL, "N", "jobs of the type running at once at most (0: no limit)"},
	{"--rate", NULL, "N/PERIOD", "accepts per period at most (10/s, 100/1m, 5/500ms; 0: none)"},
	{"--clear", NULL, NULL, "clear the type's limits"},
	{NULL, NULL, NULL, NULL},
};

/* --rate N/PERIOD (or 0) into l: 0 or a usage exit code. */
static int rate_parse(struct cli *c, const char *s, cj_type_limits *l) {
	if (strcmp(s, "0") == 0) {
		l->rate = l->rate_period_ms = 0;
		return 0;
	}
	const char *slash = strchr(s, '/');
	char n[32], period[64];
	if (slash && (size_t)(slash - s) < sizeof n && strlen(slash + 1) + 2 < sizeof period) {
		memcpy(n, s, (size_t)(slash - s));
		n[slash - s] = 0;
		/* "10/s" is ten per one second */
		snprintf(period, sizeof period, "%s%s", slash[1] >= 'a' && slash[1] <= 'z' ? "1" : "",
		         slash + 1);
		if (cli_parse_int(n, &l->rate) == 0 && l->rate >= 1 && l->rate <= CJ_MAX_RATE &&
		    cli_parse_duration_ms(period, 1000, &l->rate_period_ms) == 0 &&
		    l->rate_period_ms >= 1 && l->rate_period_ms <= CJ_MAX_RATE_PERIOD_MS)
			return 0;
	}
	return cli_usage(c, "invalid --rate '%s' (want N/PERIOD: N from 1 to %d, PERIOD a "
	                 "duration such as s, 1m, 500ms, 1h; or 0)", s, CJ_MAX_RATE);
}

/* The options given over l: 0 or a usage exit code. */
static int limit_parse(struct cli *c, const struct cli_args *a, void *v) {
	cj_type_limits *l = v;
	if (a->set[LIMIT_CONCURRENCY] &&
	    (cli_parse_int(a->val[LIMIT_CONCURRENCY], &l->max_running) != 0 ||
	     l->max_running > CJ_MAX_RUNNING_LIMIT))
		return cli_usage(c, "invalid --concurrency '%s' (want 0 to %d)",
		                 a->val[LIMIT_CONCURRENCY], CJ_MAX_RUNNING_LIMIT);
	if (a->set[LIMIT_RATE]) return rate_parse(c, a->val[LIMIT_RATE], l);
	return 0;
}

static int limit_get(cj_db *db, const char *type, void *v) {
	return cj_get_type_limits(db, type, v);
}

static int limit_set(cj_db *db, const char *type, const void *v) {
	return cj_set_type_limits(db, type, v);
}

static void limit_print(const void *v) {
	const cj_type_limits *l = v;
	printf("{\"max_running\":%lld,\"rate\":%lld,\"rate_period_ms\":%lld}\n",
	       (long long)l->max_running, (long long)l->rate, (long long)l->rate_period_ms);
}

int cmd_limit(struct cli *c, const struct cli_args *a) {
	static const cj_type_limits init = CJ_TYPE_LIMITS_INIT;
	static const struct cli_setting limits = {
		"limits", sizeof init, &init, LIMIT_CONCURRENCY, LIMIT_RATE, LIMIT_CLEAR,
		limit_get, limit_set, cj_clear_type_limits, limit_parse, limit_print,
	};
	cj_type_limits l;
	return cli_setting_run(c, a, &limits, &l);
}
