/* cjobs: the schedule command (periodic jobs): add, list, rm. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

const struct cli_opt cli_schedule_opts[] = {
	{"--cron", NULL, "EXPR", "a cron expression (five fields, or @daily...)"},
	{"--tz", NULL, "ZONE", "the cron expression's time zone (default UTC)"},
	{"--every", NULL, "DURATION", "a fixed interval instead (90, 90s, 5m, 1h, 1d)"},
	{"--type", NULL, "TYPE", "the type of the jobs it adds"},
	{"--data", NULL, "JSON", "their data, one JSON object (default {})"},
	{"--catch-up", NULL, "POLICY", "skip (default) or last"},
	{NULL, NULL, NULL, NULL},
};

/* The schedule's definition from the options: 0 or a usage exit code. */
static int schedule_parse(struct cli *c, const struct cli_args *a, cj_schedule *s,
                          char **owned) {
	int rc;
	if (!a->set[SCHED_TYPE]) return cli_usage(c, "--type TYPE is required");
	if (a->set[SCHED_CRON] == a->set[SCHED_EVERY])
		return cli_usage(c, "give --cron EXPR or --every DURATION (one of them)");
	if (a->set[SCHED_TZ] && !a->set[SCHED_CRON])
		return cli_usage(c, "--tz goes with --cron");
	s->type = a->val[SCHED_TYPE];
	if ((rc = cli_judged(c, cj_type_check(s->type)))) return rc;
	if (a->set[SCHED_CRON]) {
		s->cron = a->val[SCHED_CRON];
		s->zone = a->set[SCHED_TZ] ? a->val[SCHED_TZ] : NULL;
		if ((rc = cli_judged(c, cj_cron_check(s->cron, s->zone)))) return rc;
	} else {
		int64_t ms;
		if (cli_parse_duration_ms(a->val[SCHED_EVERY], 1000, &ms) != 0 || ms % 1000 != 0 ||
		    ms < 1000 || ms / 1000 > CJ_MAX_SCHEDULE_EVERY)
			return cli_usage(c, "invalid --every '%s' (want whole seconds from 1 to %lld, "
			                 "e.g. 30, 90s, 5m, 1h, 1d)", a->val[SCHED_EVERY],
			                 (long long)CJ_MAX_SCHEDULE_EVERY);
		s->every_s = ms / 1000;
	}
	if (a->set[SCHED_CATCH_UP] &&
	    (rc = cli_judged(c, cj_catch_up_parse(a->val[SCHED_CATCH_UP], &s->catch_up))))
		return rc;
	if (a->set[SCHED_DATA] && (rc = cli_data_arg(c, a->val[SCHED_DATA], owned, &s->data)))
		return rc;
	return 0;
}

static int schedule_add(struct cli *c, const struct cli_args *a, const char *name) {
	cj_schedule s = CJ_SCHEDULE_INIT;
	char *owned = NULL;
	int rc = schedule_parse(c, a, &s, &owned);
	if (!rc && !(rc = cli_open(c, 0))) {
		int r = cj_schedule_set(c->db, NULL, name, &s);
		if (r != CJ_OK) rc = cli_fail(c, r, "cannot set the schedule");
	}
	free(owned);
	return rc;
}

/* t (seconds since the epoch) as 2026-12-04T02:00:00Z, or "-" for 0. */
static void put_time(int64_t t) {
	char buf[32] = "-";
	time_t tt = (time_t)t;
	struct tm tm;
	if (t > 0 && gmtime_r(&tt, &tm)) strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	fputs(buf, stdout);
}

static int list_one(const cj_schedule_info *i, void *arg) {
	(void)arg;
	printf("%s\t", i->name);
	if (i->cron) printf("cron %s%s%s", i->cron, i->zone ? " " : "", i->zone ? i->zone : "");
	else printf("every %llds", (long long)i->every_s);
	printf("\t%s\t%s%s\t", i->type, i->catch_up == CJ_CATCH_UP_LAST ? "last" : "skip",
	       i->disabled ? " disabled" : "");
	put_time(i->next);
	putchar('\t');
	put_time(i->fired);
	putchar('\n');
	return 0;
}

int cmd_schedule(struct cli *c, const struct cli_args *a) {
	const char *sub = a->pos[0], *name = a->npos > 1 ? a->pos[1] : NULL;
	int any = 0, rc;
	for (int i = SCHED_CRON; i <= SCHED_CATCH_UP; i++) any |= a->set[i];
	if (strcmp(sub, "add") == 0) {
		if (!name) return cli_usage(c, "add needs a NAME");
		return schedule_add(c, a, name);
	}
	if (any) return cli_usage(c, "options go with add only");
	if (strcmp(sub, "list") == 0) {
		if (name) return cli_usage(c, "list takes no NAME");
		if ((rc = cli_open(c, 0))) return rc;
		rc = cj_schedule_list(c->db, NULL, list_one, NULL);
		return rc == CJ_OK ? CLI_EXIT_OK : cli_fail(c, rc, "cannot list the schedules");
	}
	if (strcmp(sub, "rm") == 0) {
		if (!name) return cli_usage(c, "rm needs a NAME");
		if ((rc = cli_open(c, 0))) return rc;
		rc = cj_schedule_remove(c->db, NULL, name);
		if (rc == CJ_NOT_FOUND) {
			cli_msg(c, "no schedule '%s'", name);
			return CLI_EXIT_NOT_FOUND;
		}
		return rc == CJ_OK ? CLI_EXIT_OK : cli_fail(c, rc, "cannot remove the schedule");
	}
	return cli_usage(c, "unknown subcommand '%s' (add, list or rm)", sub);
}
