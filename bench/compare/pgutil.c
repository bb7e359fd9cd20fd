/* cj_compare: libpq helpers. */
#include "pgutil.h"

#include "util.h"

static void quiet(void *arg, const char *msg) {
	(void)arg, (void)msg; /* NOTICEs such as "table ... does not exist, skipping" */
}

PGconn *cmp_pg_connect(const char *url) {
	PGconn *c = PQconnectdb(url);
	if (!c || PQstatus(c) != CONNECTION_OK)
		cmp_die("cannot connect to %s: %s", url, c ? PQerrorMessage(c) : "out of memory");
	PQsetNoticeProcessor(c, quiet, NULL);
	return c;
}

void cmp_pg_check(PGconn *c, PGresult *r, ExecStatusType want, const char *what) {
	if (!r || PQresultStatus(r) != want) cmp_die("%s: %s", what, PQerrorMessage(c));
}

void cmp_pg_exec(PGconn *c, const char *sql) {
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) cmp_die("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
}

void cmp_pg_settle(const char *url) {
	PGconn *c = cmp_pg_connect(url);
	cmp_pg_exec(c, "VACUUM ANALYZE");
	cmp_pg_exec(c, "CHECKPOINT");
	PQfinish(c);
}
