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
static int limit_parse(struct cli *c, const struct cli_args *a, cj_type_limits *l) {
	if (a->set[LIMIT_CONCURRENCY] &&
	    (cli_parse_int(a->val[LIMIT_CONCURRENCY], &l->max_running) != 0 ||
	     l->max_running > CJ_MAX_RUNNING_LIMIT))
		return cli_usage(c, "invalid --concurrency '%s' (want 0 to %d)",
		                 a->val[LIMIT_CONCURRENCY], CJ_MAX_RUNNING_LIMIT);
	if (a->set[LIMIT_RATE]) return rate_parse(c, a->val[LIMIT_RATE], l);
	return 0;
}

static int no_limits(struct cli *c, const char *type) {
	cli_msg(c, "type '%s' has no limits", type);
	return CLI_EXIT_NOT_FOUND;
}

int cmd_limit(struct cli *c, const struct cli_args *a) {
	const char *type = a->pos[0];
	int setting = a->set[LIMIT_CONCURRENCY] || a->set[LIMIT_RATE], rc;
	if ((rc = cli_judged(c, cj_type_check(type)))) return rc;
	if (setting && a->set[LIMIT_CLEAR]) return cli_usage(c, "give options or --clear, not both");
	cj_type_limits l = CJ_TYPE_LIMITS_INIT;
	if (setting && (rc = limit_parse(c, a, &l))) return rc; /* judged before opening */
	if ((rc = cli_open(c, 0))) return rc;
	if (a->set[LIMIT_CLEAR]) {
		rc = cj_clear_type_limits(c->db, type);
		if (rc == CJ_NOT_FOUND) return no_limits(c, type);
		return rc == CJ_OK ? CLI_EXIT_OK : cli_fail(c, rc, "cannot clear the limits");
	}
	rc = cj_get_type_limits(c->db, type, &l);
	if (setting) {
		if (rc != CJ_OK && rc != CJ_NOT_FOUND) return cli_fail(c, rc, "cannot read the limits");
		if (rc == CJ_NOT_FOUND) l = (cj_type_limits)CJ_TYPE_LIMITS_INIT;
		if ((rc = limit_parse(c, a, &l))) return rc; /* over the current ones */
		rc = cj_set_type_limits(c->db, type, &l);
		if (rc == CJ_INVALID) return cli_usage(c, "%s", cj_last_error());
		return rc == CJ_OK ? CLI_EXIT_OK : cli_fail(c, rc, "cannot set the limits");
	}
	if (rc == CJ_NOT_FOUND) return no_limits(c, type);
	if (rc != CJ_OK) return cli_fail(c, rc, "cannot read the limits");
	printf("{\"max_running\":%lld,\"rate\":%lld,\"rate_period_ms\":%lld}\n",
	       (long long)l.max_running, (long long)l.rate, (long long)l.rate_period_ms);
	return CLI_EXIT_OK;
}
