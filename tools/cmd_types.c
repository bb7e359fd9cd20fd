/* cjobs: the store-wide commands: timeout, types, check. */
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
		int64_t s;
		int r = cj_get_type_timeout(c->db, types[i], &s);
		if (r == CJ_OK)
			printf("%s\t%lld\n", types[i], (long long)s);
		else if (r != CJ_NOT_FOUND && ex == CLI_EXIT_OK) /* cleared meanwhile */
			ex = cli_fail(c, r, "cannot read a timeout");
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
