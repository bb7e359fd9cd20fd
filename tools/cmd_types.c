/* cjobs: the store-wide commands: timeout, policy, types, check. */
#include "cli.h"

#include <string.h>

const struct cli_opt cli_timeout_opts[] = {
	{"--clear", NULL, NULL, "clear the type's timeout"},
	{NULL, NULL, NULL, NULL},
};

int cmd_timeout(struct cli *c, const struct cli_args *a) {
	const char *type = a->pos[0];
	const char *secs = a->npos > 1 ? a->pos[1] : NULL;
	int clear = a->set[TIMEOUT_CLEAR];
	int64_t ms = 0;
	int rc;
	if ((rc = cli_judged(c, cj_type_check(type)))) return rc;
	if (secs && clear) return cli_usage(c, "give SECONDS or --clear, not both");
	if (secs) {
		if (cli_parse_duration_ms(secs, 1000, &ms) != 0 || ms % 1000 != 0 ||
		    ms < 1000 || ms / 1000 > CJ_MAX_TYPE_TIMEOUT)
			return cli_usage(c, "invalid timeout '%s' (want whole seconds from "
			                 "1 to %lld, e.g. 30, 90s, 5m, 2h, 1d)", secs,
			                 (long long)CJ_MAX_TYPE_TIMEOUT);
	}
	if ((rc = cli_open(c, 0))) return rc;
	if (secs) {
		rc = cj_set_type_timeout(c->db, type, ms / 1000);
		if (rc != CJ_OK) return cli_fail(c, rc, "cannot set the timeout");
		return CLI_EXIT_OK;
	}
	if (clear) {
		rc = cj_clear_type_timeout(c->db, type);
		if (rc == CJ_NOT_FOUND) {
			cli_msg(c, "type '%s' has no timeout", type);
			return CLI_EXIT_NOT_FOUND;
		}
		if (rc != CJ_OK) return cli_fail(c, rc, "cannot clear the timeout");
		return CLI_EXIT_OK;
	}
	int64_t s;
	rc = cj_get_type_timeout(c->db, type, &s);
	if (rc == CJ_NOT_FOUND) {
		cli_msg(c, "type '%s' has no timeout", type);
		return CLI_EXIT_NOT_FOUND;
	}
	if (rc != CJ_OK) return cli_fail(c, rc, "cannot read the timeout");
	printf("%lld\n", (long long)s);
	return CLI_EXIT_OK;
}

const struct cli_opt cli_policy_opts[] = {
	{"--max-attempts", NULL, "N", "attempts after which a job is dead (0: never)"},
	{"--backoff-min", NULL, "SECONDS", "delay after the first attempt (90, 90s, 5m, ...)"},
	{"--backoff-max", NULL, "SECONDS", "the longest delay"},
	{"--multiplier", NULL, "N", "growth of the delay per attempt"},
	{"--jitter", NULL, "KIND", "none, full or equal"},
	{"--clear", NULL, NULL, "clear the type's retry policy"},
	{NULL, NULL, NULL, NULL},
};

static const char *const jitter_names[] = {"none", "full", "equal"};

/* Seconds of a duration option into *out: 0 or a usage exit code. */
static int policy_secs(struct cli *c, const char *opt, const char *s, int64_t *out) {
	int64_t ms;
	if (cli_parse_duration_ms(s, 1000, &ms) != 0 || ms % 1000 != 0 ||
	    ms / 1000 > CJ_MAX_TYPE_TIMEOUT)
		return cli_usage(c, "invalid %s '%s' (want whole seconds from 0 to %lld, "
		                 "e.g. 30, 90s, 5m, 2h)", opt, s, (long long)CJ_MAX_TYPE_TIMEOUT);
	*out = ms / 1000;
	return 0;
}

/* The options given over p: 0 or a usage exit code. */
static int policy_parse(struct cli *c, const struct cli_args *a, void *v) {
	cj_retry_policy *p = v;
	int rc;
	if (a->set[POLICY_MAX_ATTEMPTS] &&
	    (cli_parse_int(a->val[POLICY_MAX_ATTEMPTS], &p->max_attempts) != 0 ||
	     p->max_attempts > CJ_MAX_ATTEMPTS))
		return cli_usage(c, "invalid --max-attempts '%s' (want 0 to %d)",
		                 a->val[POLICY_MAX_ATTEMPTS], CJ_MAX_ATTEMPTS);
	if (a->set[POLICY_BACKOFF_MIN] &&
	    (rc = policy_secs(c, "--backoff-min", a->val[POLICY_BACKOFF_MIN], &p->backoff_min)))
		return rc;
	if (a->set[POLICY_BACKOFF_MAX] &&
	    (rc = policy_secs(c, "--backoff-max", a->val[POLICY_BACKOFF_MAX], &p->backoff_max)))
		return rc;
	if (a->set[POLICY_MULTIPLIER] &&
	    (cli_parse_int(a->val[POLICY_MULTIPLIER], &p->multiplier) != 0 ||
	     p->multiplier < 1 || p->multiplier > CJ_MAX_MULTIPLIER))
		return cli_usage(c, "invalid --multiplier '%s' (want 1 to %d)",
		                 a->val[POLICY_MULTIPLIER], CJ_MAX_MULTIPLIER);
	if (a->set[POLICY_JITTER]) {
		int k = -1;
		for (int i = 0; i < 3; i++)
			if (strcmp(a->val[POLICY_JITTER], jitter_names[i]) == 0) k = i;
		if (k < 0)
			return cli_usage(c, "invalid --jitter '%s' (want none, full or equal)",
			                 a->val[POLICY_JITTER]);
		p->jitter = k;
	}
	return 0;
}

static int policy_get(cj_db *db, const char *type, void *v) {
	return cj_get_type_policy(db, type, v);
}

static int policy_set(cj_db *db, const char *type, const void *v) {
	return cj_set_type_policy(db, type, v);
}

static void policy_print(const void *v) {
	const cj_retry_policy *p = v;
	printf("{\"max_attempts\":%lld,\"backoff_min\":%lld,\"backoff_max\":%lld,"
	       "\"multiplier\":%lld,\"jitter\":\"%s\"}\n", (long long)p->max_attempts,
	       (long long)p->backoff_min, (long long)p->backoff_max, (long long)p->multiplier,
	       jitter_names[p->jitter]);
}

int cmd_policy(struct cli *c, const struct cli_args *a) {
	static const cj_retry_policy init = CJ_RETRY_POLICY_INIT;
	static const struct cli_setting policy = {
		"retry policy", sizeof init, &init, POLICY_MAX_ATTEMPTS, POLICY_JITTER, POLICY_CLEAR,
		policy_get, policy_set, cj_clear_type_policy, policy_parse, policy_print,
	};
	cj_retry_policy p;
	return cli_setting_run(c, a, &policy, &p);
}

/* The type's limits as "concurrency=N rate=N/PERIOD" (those set), or "-". */
static void put_limits(const cj_type_limits *l) {
	if (!l->max_running && !l->rate) fputs("-", stdout);
	if (l->max_running) printf("concurrency=%lld", (long long)l->max_running);
	if (l->max_running && l->rate) putchar(' ');
	if (l->rate) {
		printf("rate=%lld/", (long long)l->rate);
		cli_put_duration(stdout, l->rate_period_ms);
	}
}

/* The type's retention as "keep-for=D keep=N dead-keep-for=D dead-keep=N"
 * (the limits set, named as `cjobs retention`'s options), or "-". */
static void put_retention(const cj_retention *k) {
	const int64_t v[] = {k->keep_ms, k->keep_max, k->dead_keep_ms, k->dead_keep_max};
	static const char *const names[] = {"keep-for", "keep", "dead-keep-for", "dead-keep"};
	const char *sep = "";
	for (int i = 0; i < 4; i++) {
		if (v[i] == CJ_KEEP_ALL) continue;
		printf("%s%s=", sep, names[i]);
		if (i % 2 == 0)
			cli_put_duration(stdout, v[i]);
		else
			printf("%lld", (long long)v[i]);
		sep = " ";
	}
	if (!*sep) fputs("-", stdout);
}

/* One line: the type, its timeout, its limits, its retention. CJ_NOT_FOUND
 * when it has no timeout (cleared meanwhile). */
static int type_line(cj_db *db, const char *type) {
	int64_t s;
	cj_type_limits l = CJ_TYPE_LIMITS_INIT;
	cj_retention k = CJ_RETENTION_INIT;
	int rc = cj_get_type_timeout(db, type, &s);
	if (rc == CJ_OK && (rc = cj_get_type_limits(db, type, &l)) == CJ_NOT_FOUND) rc = CJ_OK;
	if (rc == CJ_OK && (rc = cj_get_type_retention(db, type, &k)) == CJ_NOT_FOUND) rc = CJ_OK;
	if (rc != CJ_OK) return rc;
	printf("%s\t%lld\t", type, (long long)s);
	put_limits(&l);
	putchar('\t');
	put_retention(&k);
	putchar('\n');
	return CJ_OK;
}

int cmd_types(struct cli *c, const struct cli_args *a) {
	(void)a;
	char **types = NULL;
	size_t n = 0;
	int rc;
	if ((rc = cli_open(c, 0))) return rc;
	rc = cj_get_types(c->db, NULL, &types, &n);
	if (rc != CJ_OK) return cli_fail(c, rc, "cannot list the types");
	int ex = CLI_EXIT_OK;
	for (size_t i = 0; i < n; i++) {
		int r = type_line(c->db, types[i]);
		if (r != CJ_OK && r != CJ_NOT_FOUND && ex == CLI_EXIT_OK) /* cleared meanwhile */
			ex = cli_fail(c, r, "cannot read the type's settings");
		cj_free(types[i]);
	}
	cj_free(types);
	return ex;
}

static int check_report(const char *problem, void *arg) {
	(void)arg;
	printf("%s\n", problem);
	return 0;
}

int cmd_check(struct cli *c, const struct cli_args *a) {
	(void)a;
	int rc = cli_open(c, 0);
	if (rc) return rc;
	uint64_t n = 0;
	rc = cj_verify(c->db, check_report, NULL, &n);
	if (rc != CJ_OK) return cli_fail(c, rc, "cannot read the whole store");
	if (n == 0) return CLI_EXIT_OK;
	cli_msg(c, "%llu problem%s found", (unsigned long long)n, n == 1 ? "" : "s");
	return CLI_EXIT_STORE;
}
