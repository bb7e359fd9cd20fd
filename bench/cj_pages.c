/*
 * cj_pages: the lone calls whose writes bench/pages.py counts.
 *
 *   cj_pages DIR durable|relaxed JOBS CALLS
 *
 * Makes a store in DIR (which must not exist) holding JOBS pending jobs of
 * type "t", added in one transaction, then makes CALLS lone cj_add calls,
 * CALLS lone cj_accept calls and CALLS lone cj_finish calls (each its own
 * transaction, as a program that handles one job at a time makes them),
 * in the sync mode named. Before each phase it writes "@@PHASE name" to
 * standard error, so that a trace of its system calls (strace) tells the
 * phases apart. Only the public API is used.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <couchjobs.h>

static void check(int rc, const char *what) {
	if (rc == CJ_OK) return;
	fprintf(stderr, "cj_pages: %s: %s (%s)\n", what, cj_strerror(rc), cj_last_error());
	exit(1);
}

struct fill {
	cj_db *db;
	long n;
};

static int fill_fn(cj_tx *tx, void *arg) {
	struct fill *f = arg;
	char id[32];
	for (long i = 0; i < f->n; i++) {
		snprintf(id, sizeof id, "p%08ld", i);
		int rc = cj_add(f->db, tx, "t", id, "{}", 0);
		if (rc) return rc;
	}
	return CJ_OK;
}

static void phase(const char *name) {
	char line[64];
	int n = snprintf(line, sizeof line, "@@PHASE %s\n", name);
	if (write(2, line, (size_t)n) != n) exit(1);
}

static long number(const char *s) {
	char *end;
	long n = strtol(s, &end, 10);
	if (*s == 0 || *end || n < 0 || n > 100000000) {
		fprintf(stderr, "cj_pages: not a count: %s\n", s);
		exit(2);
	}
	return n;
}

int main(int argc, char **argv) {
	if (argc != 5 || (strcmp(argv[2], "durable") != 0 && strcmp(argv[2], "relaxed") != 0)) {
		fprintf(stderr, "usage: cj_pages DIR durable|relaxed JOBS CALLS\n");
		return 2;
	}
	long jobs = number(argv[3]), calls = number(argv[4]);
	cj_options o = CJ_OPTIONS_INIT;
	cj_db *db;
	o.sync = CJ_SYNC_RELAXED;
	check(cj_open(argv[1], &o, &db), "cj_open");
	check(cj_set_type_timeout(db, "t", 3600), "cj_set_type_timeout");
	struct fill f = {db, jobs};
	if (jobs) check(cj_transact(db, fill_fn, &f), "cj_transact");
	cj_close(db);
	o.sync = strcmp(argv[2], "relaxed") == 0 ? CJ_SYNC_RELAXED : CJ_SYNC_FULL;
	check(cj_open(argv[1], &o, &db), "cj_open");
	cj_job **job = calloc((size_t)calls + 1, sizeof *job);
	if (!job) return 1;
	char id[32];
	check(cj_add(db, NULL, "t", "warm", "{}", 0), "cj_add"); /* first commit apart */
	phase("add");
	for (long i = 0; i < calls; i++) {
		snprintf(id, sizeof id, "n%08ld", i);
		check(cj_add(db, NULL, "t", id, "{}", 0), "cj_add");
	}
	phase("accept");
	cj_accept_opts ao = CJ_ACCEPT_OPTS_INIT;
	ao.timeout_ms = 0;
	for (long i = 0; i < calls; i++) check(cj_accept(db, "t", &ao, &job[i], NULL), "cj_accept");
	phase("finish");
	for (long i = 0; i < calls; i++) {
		check(cj_finish(db, NULL, job[i], NULL), "cj_finish");
		cj_job_free(job[i]);
	}
	phase("end");
	free(job);
	cj_close(db);
	return 0;
}
