/* cjobs: the job creation commands: add, get, list, rm, retry, stats. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

const struct cli_opt cli_add_opts[] = {
	{"--at", NULL, "EPOCH", "not before this time (seconds since the epoch)"},
	{"--in", NULL, "DURATION", "not before this long from now (90, 90s, 5m, 2h, 1d)"},
	{"--unique", NULL, "POLICY", "id: only if no such job exists; active: only if none is "
	 "pending or running; none (default)"},
	{"--if-absent", NULL, NULL, "the same as --unique id"},
	{NULL, NULL, NULL, NULL},
};

const struct cli_opt cli_list_opts[] = {
	{"--state", NULL, "STATE", "only jobs in STATE: pending, running, finished or dead"},
	{NULL, NULL, NULL, NULL},
};

const struct cli_opt cli_retry_opts[] = {
	{"--all", NULL, NULL, "every dead job of TYPE"},
	{"--keep-attempts", NULL, NULL, "keep the attempt count (one more attempt)"},
	{NULL, NULL, NULL, NULL},
};

const struct cli_opt cli_stats_opts[] = {
	{"--json", NULL, NULL, "print one JSON object instead of a table"},
	{NULL, NULL, NULL, NULL},
};

/* Prints a job as one JSON line. */
static void print_info(FILE *f, const cj_job_info *info) {
	fputs("{\"type\":", f);
	cli_put_jstr(f, info->type, strlen(info->type));
	fputs(",\"id\":", f);
	cli_put_jstr(f, info->id, strlen(info->id));
	fprintf(f, ",\"state\":\"%s\",\"sched_time\":%lld,\"resubmit\":%s,\"data\":",
	        cj_state_name((int)info->state), (long long)info->sched_time,
	        info->resubmit ? "true" : "false");
	cli_put_data(f, info->data);
	fprintf(f, ",\"attempt\":%lld,\"fence\":%llu,\"added_ms\":%lld,\"finished_ms\":%lld,"
	        "\"errors\":", (long long)info->attempt, (unsigned long long)info->fence,
	        (long long)info->added_ms, (long long)info->finished_ms);
	cli_put_data(f, info->errors ? info->errors : "[]");
	fputs("}\n", f);
}

/* Reports a failure of a call on one job: CJ_NOT_FOUND as "no such job". */
static int job_fail(struct cli *c, int rc, const char *type, const char *id) {
	if (rc == CJ_NOT_FOUND) {
		cli_msg(c, "no such job: type '%s', id '%s'", type, id);
		return CLI_EXIT_NOT_FOUND;
	}
	if (rc == CJ_EXISTS) {
		cli_msg(c, "exists: %s", cj_last_error());
		return CLI_EXIT_EXISTS;
	}
	if (rc == CJ_NO_TYPE_TIMEOUT) {
		cli_msg(c, "%s (set it first: cjobs timeout '%s' SECONDS)",
		        cj_strerror(rc), type);
		return CLI_EXIT_STORE;
	}
	return cli_fail(c, rc, NULL);
}

int cmd_add(struct cli *c, const struct cli_args *a) {
	const char *type = a->pos[0], *id = a->pos[1];
	const char *data = NULL;
	char *owned = NULL;
	cj_add_opts opts = CJ_ADD_OPTS_INIT;
	int rc;
	if ((rc = cli_judge_job(c, type, id)) ||
	    (rc = cli_parse_sched(c, a->val[ADD_AT], a->val[ADD_IN], 0, &opts.sched_time)))
		return rc;
	if (a->set[ADD_UNIQUE] && a->set[ADD_IF_ABSENT])
		return cli_usage(c, "--unique and --if-absent exclude each other");
	if (a->set[ADD_IF_ABSENT]) opts.unique = CJ_UNIQUE_ID;
	if (a->set[ADD_UNIQUE] && (rc = cli_judged(c, cj_unique_parse(a->val[ADD_UNIQUE],
	                                                             &opts.unique))))
		return rc;
	if (a->npos > 2 && (rc = cli_data_arg(c, a->pos[2], &owned, &data))) {
		free(owned);
		return rc;
	}
	if (!(rc = cli_open(c, 0))) {
		int r = cj_add_ex(c->db, NULL, type, id, data, &opts);
		if (r != CJ_OK) rc = job_fail(c, r, type, id);
	}
	free(owned);
	return rc;
}

int cmd_get(struct cli *c, const struct cli_args *a) {
	const char *type = a->pos[0], *id = a->pos[1];
	int rc;
	if ((rc = cli_judge_job(c, type, id))) return rc;
	if ((rc = cli_open(c, 0))) return rc;
	cj_job_info info = {0};
	rc = cj_get_job(c->db, NULL, type, id, &info);
	if (rc != CJ_OK) return job_fail(c, rc, type, id);
	print_info(stdout, &info);
	cj_job_info_clear(&info);
	return CLI_EXIT_OK;
}

struct list_ctx {
	int state; /* 0: any */
};

static int list_cb(const cj_job_info *info, void *arg) {
	const struct list_ctx *l = arg;
	if (!l->state || (int)info->state == l->state) print_info(stdout, info);
	return 0;
}

int cmd_list(struct cli *c, const struct cli_args *a) {
	const char *type = a->npos > 0 ? a->pos[0] : NULL;
	struct list_ctx l = {0};
	int rc;
	if (type && (rc = cli_judged(c, cj_type_check(type)))) return rc;
	if (a->set[LIST_STATE]) {
		cj_state st;
		if (cj_state_parse(a->val[LIST_STATE], &st) != CJ_OK || st == CJ_REMOVED)
			return cli_usage(c, "invalid state '%s' (want pending, running, "
			                 "finished or dead)", a->val[LIST_STATE]);
		l.state = (int)st;
	}
	if ((rc = cli_open(c, 0))) return rc;
	rc = cj_list_jobs(c->db, NULL, type, list_cb, &l);
	if (rc != CJ_OK) return cli_fail(c, rc, "cannot list jobs");
	return CLI_EXIT_OK;
}

int cmd_rm(struct cli *c, const struct cli_args *a) {
	const char *type = a->pos[0], *id = a->pos[1];
	int rc;
	if ((rc = cli_judge_job(c, type, id))) return rc;
	if ((rc = cli_open(c, 0))) return rc;
	rc = cj_remove(c->db, NULL, type, id);
	if (rc != CJ_OK) return job_fail(c, rc, type, id);
	return CLI_EXIT_OK;
}

int cmd_retry(struct cli *c, const struct cli_args *a) {
	const char *type = a->pos[0], *id = a->npos > 1 ? a->pos[1] : NULL;
	int keep = a->set[RETRY_KEEP], rc;
	if (a->set[RETRY_ALL] && id) return cli_usage(c, "give ID or --all, not both");
	if (!a->set[RETRY_ALL] && !id) return cli_usage(c, "give ID, or --all for every dead job");
	if ((rc = id ? cli_judge_job(c, type, id) : cli_judged(c, cj_type_check(type)))) return rc;
	if ((rc = cli_open(c, 0))) return rc;
	if (id) {
		rc = cj_retry(c->db, NULL, type, id, keep);
		return rc == CJ_OK ? CLI_EXIT_OK : job_fail(c, rc, type, id);
	}
	uint64_t n = 0;
	rc = cj_retry_type(c->db, type, keep, &n);
	printf("%llu\n", (unsigned long long)n);
	return rc == CJ_OK ? CLI_EXIT_OK : cli_fail(c, rc, "cannot redrive every dead job");
}

/* ---- stats ------------------------------------------------------------- */

#define RETRYING 6 /* a column past the states */

struct type_row {
	char *type;
	long long n[7]; /* indexed by cj_state: pending, running, finished, dead;
	                   RETRYING: pending after a failed or lost attempt */
};

struct stats {
	struct type_row *rows;
	size_t len, cap;
	int oom;
};

static struct type_row *stats_row(struct stats *s, const char *type) {
	/* types come in order: the row of a type is the last one, or new */
	if (s->len && strcmp(s->rows[s->len - 1].type, type) == 0)
		return &s->rows[s->len - 1];
	if (s->len == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct type_row *r = realloc(s->rows, cap * sizeof *r);
		if (!r) return NULL;
		s->rows = r;
		s->cap = cap;
	}
	struct type_row *r = &s->rows[s->len];
	memset(r, 0, sizeof *r);
	r->type = strdup(type);
	if (!r->type) return NULL;
	s->len++;
	return r;
}

/* A type's row from the store's counts (pending: due now or later). */
static int stats_cb(const char *type, const cj_type_counts *n, void *arg) {
	struct stats *s = arg;
	struct type_row *r = stats_row(s, type);
	if (!r) {
		s->oom = 1;
		return CJ_NOMEM;
	}
	r->n[CJ_PENDING] = (long long)(n->pending + n->scheduled);
	r->n[CJ_RUNNING] = (long long)n->running;
	r->n[CJ_FINISHED] = (long long)n->finished;
	r->n[CJ_DEAD] = (long long)n->dead;
	r->n[RETRYING] = (long long)n->retrying;
	return 0;
}

static int row_cmp(const void *a, const void *b) {
	const struct type_row *x = a, *y = b;
	return strcmp(x->type, y->type);
}

static void stats_free(struct stats *s) {
	for (size_t i = 0; i < s->len; i++) free(s->rows[i].type);
	free(s->rows);
}

static long long total(const long long *n) {
	return n[CJ_PENDING] + n[CJ_RUNNING] + n[CJ_FINISHED] + n[CJ_DEAD];
}

static void print_counts(FILE *f, const long long *n) {
	fprintf(f, "{\"pending\":%lld,\"running\":%lld,\"finished\":%lld,\"total\":%lld,"
	        "\"dead\":%lld,\"retrying\":%lld}", n[CJ_PENDING], n[CJ_RUNNING],
	        n[CJ_FINISHED], total(n), n[CJ_DEAD], n[RETRYING]);
}

int cmd_stats(struct cli *c, const struct cli_args *a) {
	struct stats s = {0};
	char **types = NULL;
	size_t ntypes = 0;
	int rc;
	if ((rc = cli_open(c, 0))) return rc;
	rc = cj_list_type_counts(c->db, NULL, stats_cb, &s);
	if (rc == CJ_OK) rc = cj_get_types(c->db, NULL, &types, &ntypes);
	if (rc != CJ_OK) {
		stats_free(&s);
		return cli_fail(c, rc, "cannot read the store");
	}
	/* types that have a timeout but no job get a row of zeros */
	size_t njobtypes = s.len;
	for (size_t i = 0; i < ntypes; i++) {
		int seen = 0;
		for (size_t j = 0; j < njobtypes && !seen; j++)
			seen = strcmp(s.rows[j].type, types[i]) == 0;
		if (!seen && !s.oom && !stats_row(&s, types[i])) s.oom = 1;
		cj_free(types[i]);
	}
	cj_free(types);
	if (s.oom) {
		stats_free(&s);
		cli_msg(c, "out of memory");
		return CLI_EXIT_STORE;
	}
	if (s.len) qsort(s.rows, s.len, sizeof *s.rows, row_cmp);

	long long tot[7] = {0};
	for (size_t i = 0; i < s.len; i++)
		for (int k = CJ_PENDING; k <= RETRYING; k++) tot[k] += s.rows[i].n[k];

	if (a->set[STATS_JSON]) {
		fputs("{\"types\":{", stdout);
		for (size_t i = 0; i < s.len; i++) {
			if (i) fputc(',', stdout);
			cli_put_jstr(stdout, s.rows[i].type, strlen(s.rows[i].type));
			fputc(':', stdout);
			print_counts(stdout, s.rows[i].n);
		}
		fputs("},\"total\":", stdout);
		print_counts(stdout, tot);
		fputs("}\n", stdout);
	} else {
		int w = 4;
		for (size_t i = 0; i < s.len; i++) {
			size_t l = strlen(s.rows[i].type);
			if ((int)l > w) w = l > 60 ? 60 : (int)l;
		}
		printf("%-*s %9s %9s %9s %9s %9s %9s\n", w, "TYPE", "PENDING", "RUNNING",
		       "FINISHED", "TOTAL", "DEAD", "RETRYING");
		for (size_t i = 0; i < s.len; i++) {
			const long long *n = s.rows[i].n;
			printf("%-*s %9lld %9lld %9lld %9lld %9lld %9lld\n", w, s.rows[i].type,
			       n[CJ_PENDING], n[CJ_RUNNING], n[CJ_FINISHED], total(n), n[CJ_DEAD],
			       n[RETRYING]);
		}
	}
	stats_free(&s);
	return CLI_EXIT_OK;
}
