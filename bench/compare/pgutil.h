/* cj_compare: libpq helpers for the two PostgreSQL-based systems (the
 * plain queue, and the housekeeping of couchjobs' PostgreSQL engine). */
#ifndef CMP_PGUTIL_H
#define CMP_PGUTIL_H

#include <libpq-fe.h>

/* Connects to url (notices silenced) or dies. */
PGconn *cmp_pg_connect(const char *url);

/* Runs sql (no parameters) or dies; the result is discarded. */
void cmp_pg_exec(PGconn *c, const char *sql);

/* Dies unless r has status want; the message names what. */
void cmp_pg_check(PGconn *c, PGresult *r, ExecStatusType want, const char *what);

/* After a fill, for both PostgreSQL systems alike: VACUUM ANALYZE of the
 * whole database (what autovacuum would do soon after a bulk load) and a
 * CHECKPOINT (so that the fill's dirty pages are not written during the
 * measured phase). */
void cmp_pg_settle(const char *url);

#endif
