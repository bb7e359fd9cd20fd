/* cjobs: retention of finished and dead jobs: the commands retention and
 * prune. */
#include "cli.h"

const struct cli_opt cli_retention_opts[] = {
	{"--keep-for", NULL, "DURATION", "remove finished jobs this long after they finished"},
	{"--keep", NULL, "N", "keep at most N finished jobs, the newest"},
	{"--dead-keep-for", NULL, "DURATION", "remove dead jobs this long after they died"},
	{"--dead-keep", NULL, "N", "keep at most N dead jobs, the newest"},
	{"--clear", NULL, NULL, "clear the type's retention"},
	{NULL, NULL, NULL, NULL},
};

const struct cli_opt cli_prune_opts[] = {
	{"--older-than", NULL, "DURATION", "remove jobs that finished longer ago than this"},
	{"--keep", NULL, "N", "remove all but the N that finished last"},
	{"--dead", NULL, NULL, "remove dead jobs instead of finished ones"},
	{NULL, NULL, NULL, NULL},
};

/* A duration option into *ms: 0 or a usage exit code. */
static int parse_for(struct cli *c, const char *opt, const char *s, int64_t *ms) {
	if (cli_parse_duration_ms(s, 1000, ms) != 0)
		return cli_usage(c, "invalid %s '%s' (want a duration, e.g. 30, 90s, 5m, 2h, 7d)",
		                 opt, s);
	return 0;
}

/* A count option into *n: 0 or a usage exit code. */
static int parse_count(struct cli *c, const char *opt, const char *s, int64_t *n) {
	if (cli_parse_int(s, n) != 0)
		return cli_usage(c, "invalid %s '%s' (want a whole number, 0 or more)", opt, s);
	return 0;
}

/* The options given over r: 0 or a usage exit code. */
static int retention_parse(struct cli *c, const struct cli_args *a, void *v) {
	cj_retention *r = v;
	int rc = 0;
	if (a->set[RETENTION_KEEP_FOR])
		rc = parse_for(c, "--keep-for", a->val[RETENTION_KEEP_FOR], &r->keep_ms);
	if (!rc && a->set[RETENTION_KEEP])
		rc = parse_count(c, "--keep", a->val[RETENTION_KEEP], &r->keep_max);
	if (!rc && a->set[RETENTION_DEAD_KEEP_FOR])
		rc = parse_for(c, "--dead-keep-for", a->val[RETENTION_DEAD_KEEP_FOR],
		               &r->dead_keep_ms);
	if (!rc && a->set[RETENTION_DEAD_KEEP])
		rc = parse_count(c, "--dead-keep", a->val[RETENTION_DEAD_KEEP], &r->dead_keep_max);
	return rc;
}

static void put_limit(const char *name, int64_t v, const char *sep) {
	if (v == CJ_KEEP_ALL) printf("\"%s\":null%s", name, sep);
	else printf("\"%s\":%lld%s", name, (long long)v, sep);
}

static int retention_get(cj_db *db, const char *type, void *v) {
	return cj_get_type_retention(db, type, v);
}

static int retention_set(cj_db *db, const char *type, const void *v) {
	return cj_set_type_retention(db, type, v);
}

static void retention_print(const void *v) {
	const cj_retention *r = v;
	printf("{");
	put_limit("keep_for_ms", r->keep_ms, ",");
	put_limit("keep", r->keep_max, ",");
	put_limit("dead_keep_for_ms", r->dead_keep_ms, ",");
	put_limit("dead_keep", r->dead_keep_max, "}\n");
}

int cmd_retention(struct cli *c, const struct cli_args *a) {
	static const cj_retention init = CJ_RETENTION_INIT;
	static const struct cli_setting retention = {
		"retention", sizeof init, &init, RETENTION_KEEP_FOR, RETENTION_DEAD_KEEP,
		RETENTION_CLEAR, retention_get, retention_set, cj_clear_type_retention,
		retention_parse, retention_print,
	};
	cj_retention r;
	return cli_setting_run(c, a, &retention, &r);
}

int cmd_prune(struct cli *c, const struct cli_args *a) {
	const char *type = a->npos ? a->pos[0] : NULL;
	int dead = a->set[PRUNE_DEAD], rc;
	int64_t ms = CJ_KEEP_ALL, max = CJ_KEEP_ALL;
	if (type && (rc = cli_judged(c, cj_type_check(type)))) return rc;
	if (a->set[PRUNE_OLDER_THAN] &&
	    (rc = parse_for(c, "--older-than", a->val[PRUNE_OLDER_THAN], &ms)))
		return rc;
	if (a->set[PRUNE_KEEP] && (rc = parse_count(c, "--keep", a->val[PRUNE_KEEP], &max)))
		return rc;
	int limited = ms != CJ_KEEP_ALL || max != CJ_KEEP_ALL;
	if (dead && !limited) return cli_usage(c, "--dead needs --older-than or --keep");
	cj_retention r = CJ_RETENTION_INIT;
	if (dead) {
		r.dead_keep_ms = ms;
		r.dead_keep_max = max;
	} else {
		r.keep_ms = ms;
		r.keep_max = max;
	}
	if ((rc = cli_open(c, 0))) return rc;
	uint64_t n = 0;
	rc = cj_prune(c->db, type, limited ? &r : NULL, &n);
	if (rc == CJ_NOT_FOUND) {
		cli_msg(c, "type '%s' has no retention: give --older-than or --keep", type);
		return CLI_EXIT_NOT_FOUND;
	}
	printf("%llu\n", (unsigned long long)n);
	if (rc == CJ_OK) return CLI_EXIT_OK;
	/* the batches before the error stay removed: say how many */
	char what[96];
	snprintf(what, sizeof what, "cannot remove every job due (%llu removed before the error)",
	         (unsigned long long)n);
	return cli_fail(c, rc, what);
}
