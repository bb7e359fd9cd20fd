/*
 * cj_test_fill: adds many pending jobs of one type to a store, many adds
 * per transaction, for the server tests that need a big type
 * (test_server.py's type_events_big).
 *
 *   cj_test_fill URL TYPE COUNT PREFIX
 *
 * Job ids are PREFIX and the job's number in seven digits (PREFIX0000000,
 * PREFIX0000001, ...), data "{}", due now. The store is opened relaxed, as
 * that test's server is: the fill need not be flushed.
 *
 * Why not over HTTP: one request and one commit per job made the fill most
 * of the test's time (200,001 jobs: minutes on PostgreSQL under the
 * sanitizers). The server learns of these commits as of any other
 * process's (cj_changes_wait), so what the test checks is the same.
 * Only the public API is used. Exits 0 once every add committed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <couchjobs.h>

#define FILL_BATCH 2000 /* adds per transaction */

struct batch {
	cj_db *db;
	const char *type, *prefix;
	long from, to; /* job numbers [from, to) */
};

static int add_batch(cj_tx *tx, void *arg) {
	const struct batch *b = arg;
	char id[256];
	for (long i = b->from; i < b->to; i++) {
		snprintf(id, sizeof id, "%s%07ld", b->prefix, i);
		int rc = cj_add(b->db, tx, b->type, id, "{}", 0);
		if (rc != CJ_OK) return rc;
	}
	return CJ_OK;
}

int main(int argc, char **argv) {
	if (argc != 5) {
		fprintf(stderr, "usage: cj_test_fill URL TYPE COUNT PREFIX\n");
		return 2;
	}
	char *end;
	long n = strtol(argv[3], &end, 10);
	if (*argv[3] == '\0' || *end != '\0' || n < 0 || n > 9999999 || strlen(argv[4]) > 200) {
		fprintf(stderr, "cj_test_fill: COUNT 0 to 9999999, PREFIX 200 bytes at most\n");
		return 2;
	}
	cj_options opts = CJ_OPTIONS_INIT;
	opts.sync = CJ_SYNC_RELAXED;
	opts.no_monitor = 1;
	cj_db *db;
	int rc = cj_open(argv[1], &opts, &db);
	if (rc != CJ_OK) {
		fprintf(stderr, "cj_test_fill: open: %s (%s)\n", cj_strerror(rc), cj_last_error());
		return 1;
	}
	struct batch b = {db, argv[2], argv[4], 0, 0};
	for (; b.from < n && rc == CJ_OK; b.from = b.to) {
		b.to = n - b.from < FILL_BATCH ? n : b.from + FILL_BATCH;
		rc = cj_transact(db, add_batch, &b);
	}
	if (rc != CJ_OK)
		fprintf(stderr, "cj_test_fill: add %s%07ld...: %s (%s)\n", b.prefix, b.from,
		        cj_strerror(rc), cj_last_error());
	cj_close(db);
	return rc == CJ_OK ? 0 : 1;
}
