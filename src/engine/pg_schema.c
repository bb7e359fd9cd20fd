/* The PostgreSQL engine's schema: created on first open, versioned,
 * migrated. */
#include "engine/pg_int.h"

/* SQL that turns schema version i+1 into version i+2, run in one
 * transaction; "%1$s" stands for the quoted schema name. */
static const char *const pge_migrations[PGE_SCHEMA_VERSION] = {
	NULL, /* version 1 is the first */
	/* 2: commit numbers from a sequence instead of the row meta.commit,
	 * which every write transaction had to lock */
	"CREATE SEQUENCE IF NOT EXISTS %1$s.commit_seq AS bigint; "
	"SELECT setval('%1$s.commit_seq', value + 1, false) FROM %1$s.meta "
	"WHERE name = 'commit'; "
	"DELETE FROM %1$s.meta WHERE name = 'commit'",
	/* 3: notifications only to listeners that hold the advisory lock of a
	 * word they wait for (pg_int.h): the tables stay, the version keeps
	 * libraries that take no such lock from opening the store */
	NULL,
};


int cj__pg_build_sql(cj_edb *db) {
	const char *s = db->qschema;
	db->sql_prepare = cj__pg_printf(
		"%s"
		"PREPARE cj_get (smallint, bytea) AS "
		"SELECT v FROM %s.kv WHERE space = $1 AND k = $2; "
		"PREPARE cj_get_w (smallint, bytea) AS "
		"SELECT v FROM %s.kv WHERE space = $1 AND k = $2 FOR UPDATE; "
		"PREPARE cj_lock_key (integer) AS "
		"SELECT pg_advisory_xact_lock(%d, $1); "
		"PREPARE cj_lock_absent (smallint, bytea, integer) AS "
		"SELECT pg_advisory_xact_lock(%d, $3) WHERE NOT EXISTS "
		"(SELECT 1 FROM %s.kv WHERE space = $1 AND k = $2); "
		"PREPARE cj_claim (smallint, bytea, bytea) AS "
		"SELECT k, v FROM %s.kv WHERE space = $1 AND k >= $2 AND k < $3 "
		"ORDER BY k LIMIT 1 FOR UPDATE SKIP LOCKED; "
		/* claim_pair: the key claimed, then the derived key's row, taken
		 * the same way (none when it is held by another or absent) */
		"PREPARE cj_claim_pair (smallint, bytea, bytea, bytea, integer, integer) AS "
		"WITH p AS (SELECT k FROM %s.kv WHERE space = $1 AND k >= $2 AND k < $3 "
		"ORDER BY k LIMIT 1 FOR UPDATE SKIP LOCKED) "
		"SELECT d.k, d.v, p.k FROM p LEFT JOIN LATERAL (SELECT k, v FROM %s.kv "
		"WHERE space = $1 AND k = CASE WHEN length(p.k) > $5 THEN "
		"$4 || substr(p.k, $5 + 2 + abs(get_byte(p.k, $5) - $6)) END "
		"FOR UPDATE SKIP LOCKED) d ON true; "
		"PREPARE cj_nextval AS SELECT nextval('%s.commit_seq'); "
		/* the statements that may be a write transaction's first to need
		 * an answer, in a form that takes its commit number too
		 * (pg_pipe.c): the same query in a lateral join on the one row of
		 * nextval, the number in the last column, a row with NULLs when
		 * the query has none */
		"PREPARE cj_lock_absent_n (smallint, bytea, integer) AS "
		"SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM %s.kv WHERE space = $1 AND k = $2) "
		"THEN pg_advisory_xact_lock(%d, $3)::text END, nextval('%s.commit_seq'); "
		"PREPARE cj_scan_n (smallint, bytea, bytea, bigint) AS "
		"SELECT s.k, s.v, n.v FROM (SELECT nextval('%s.commit_seq') AS v) n "
		"LEFT JOIN LATERAL (SELECT k, v FROM %s.kv WHERE space = $1 AND k >= $2 AND k < $3 "
		"ORDER BY k LIMIT $4) s ON true ORDER BY s.k; "
		"PREPARE cj_claim_n (smallint, bytea, bytea) AS "
		"SELECT c.k, c.v, n.v FROM (SELECT nextval('%s.commit_seq') AS v) n "
		"LEFT JOIN LATERAL (SELECT k, v FROM %s.kv WHERE space = $1 AND k >= $2 AND k < $3 "
		"ORDER BY k LIMIT 1 FOR UPDATE SKIP LOCKED) c ON true; "
		"PREPARE cj_claim_pair_n (smallint, bytea, bytea, bytea, integer, integer) AS "
		"SELECT q.dk, q.dv, q.pk, n.v FROM (SELECT nextval('%s.commit_seq') AS v) n "
		"LEFT JOIN LATERAL (WITH p AS (SELECT k FROM %s.kv WHERE space = $1 AND k >= $2 "
		"AND k < $3 ORDER BY k LIMIT 1 FOR UPDATE SKIP LOCKED) "
		"SELECT d.k AS dk, d.v AS dv, p.k AS pk FROM p LEFT JOIN LATERAL (SELECT k, v "
		"FROM %s.kv WHERE space = $1 AND k = CASE WHEN length(p.k) > $5 THEN "
		"$4 || substr(p.k, $5 + 2 + abs(get_byte(p.k, $5) - $6)) END "
		"FOR UPDATE SKIP LOCKED) d ON true) q ON true; "
		/* before the first nextval, last_value is the start and not handed out */
		"PREPARE cj_last_version AS "
		"SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END "
		"FROM %s.commit_seq; "
		"PREPARE cj_put (smallint, bytea, bytea) AS "
		"INSERT INTO %s.kv (space, k, v) VALUES ($1, $2, $3) "
		"ON CONFLICT (space, k) DO UPDATE SET v = EXCLUDED.v; "
		/* two puts of different keys (pg_pipe.c) */
		"PREPARE cj_put2 (smallint, bytea, bytea, smallint, bytea, bytea) AS "
		"INSERT INTO %s.kv (space, k, v) VALUES ($1, $2, $3), ($4, $5, $6) "
		"ON CONFLICT (space, k) DO UPDATE SET v = EXCLUDED.v; "
		/* counters (engine.h's add): 8 bytes, big-endian */
		"PREPARE cj_add (smallint, bytea[], bigint[]) AS "
		"INSERT INTO %s.kv AS t (space, k, v) "
		"SELECT $1, u.k, int8send(u.d) FROM unnest($2, $3) WITH ORDINALITY AS u(k, d, i) "
		"ORDER BY u.i ON CONFLICT (space, k) DO UPDATE SET "
		"v = int8send(('x' || encode(t.v, 'hex'))::bit(64)::bigint + "
		"('x' || encode(EXCLUDED.v, 'hex'))::bit(64)::bigint); "
		/* held writes (pg_held.c): a delete, two puts and an add of
		 * distinct keys, each left out when its key is NULL */
		"PREPARE cj_write (smallint, bytea, smallint, bytea, bytea, smallint, bytea, bytea, "
		"smallint, bytea[], bigint[]) AS "
		"WITH d AS (DELETE FROM %s.kv WHERE space = $1 AND k = $2), "
		"a AS (INSERT INTO %s.kv AS t (space, k, v) "
		"SELECT $9, u.k, int8send(u.d) FROM unnest($10, $11) WITH ORDINALITY AS u(k, d, i) "
		"ORDER BY u.i ON CONFLICT (space, k) DO UPDATE SET "
		"v = int8send(('x' || encode(t.v, 'hex'))::bit(64)::bigint + "
		"('x' || encode(EXCLUDED.v, 'hex'))::bit(64)::bigint)) "
		"INSERT INTO %s.kv (space, k, v) SELECT p.s, p.k, p.v FROM "
		"(VALUES ($3, $4, $5), ($6, $7, $8)) AS p(s, k, v) WHERE p.k IS NOT NULL "
		"ON CONFLICT (space, k) DO UPDATE SET v = EXCLUDED.v; "
		/* expectations (pg_spec.c): division_by_zero unless the row is as
		 * expected; cj_expect_w locks it as cj_get_w */
		"PREPARE cj_expect_w (smallint, bytea, bytea) AS "
		"SELECT 1 / count(*)::int FROM (SELECT 1 FROM %s.kv WHERE space = $1 AND k = $2 "
		"AND v = $3 FOR UPDATE) x; "
		"PREPARE cj_expect (smallint, bytea, bytea) AS "
		"SELECT 1 / count(*)::int FROM %s.kv WHERE space = $1 AND k = $2 AND v = $3; "
		"PREPARE cj_expect_none (smallint, bytea) AS "
		"SELECT 1 / (1 - count(*))::int FROM %s.kv WHERE space = $1 AND k = $2; "
		"PREPARE cj_del (smallint, bytea) AS "
		"DELETE FROM %s.kv WHERE space = $1 AND k = $2; "
		"PREPARE cj_scan (smallint, bytea, bytea, bigint) AS "
		"SELECT k, v FROM %s.kv WHERE space = $1 AND k >= $2 AND k < $3 "
		"ORDER BY k LIMIT $4; "
		"PREPARE cj_scan_after (smallint, bytea, bytea, bigint) AS "
		"SELECT k, v FROM %s.kv WHERE space = $1 AND k > $2 AND k < $3 "
		"ORDER BY k LIMIT $4",
		db->relaxed ? "SET synchronous_commit TO off; " : "", s, s, PGE_KEY_LOCK_CLASS,
		PGE_KEY_LOCK_CLASS, s, s, s, s, s, /* cj_nextval */
		s, PGE_KEY_LOCK_CLASS, s, s, s, s, s, s, s, s, /* the forms with it */
		s, s, /* cj_last_version, cj_put */
		s, s, /* cj_put2, cj_add */
		s, s, s, /* cj_write */
		s, s, s, /* the expectations */
		s, s, s); /* cj_del, cj_scan, cj_scan_after */
	db->sql_listen = cj__pg_printf("LISTEN \"%s\"", db->chan);
	if (!db->sql_prepare || !db->sql_listen)
		return cj__fail(CJ_NOMEM, "out of memory");
	return CJ_OK;
}

/* Reads schema_version: CJ_OK with *v, CJ_NOT_FOUND if the store's tables
 * do not exist, or a code. */
static int pge_read_version(cj_edb *db, struct pge_conn *c, int64_t *v) {
	char *sql = cj__pg_printf("SELECT value FROM %s.meta WHERE name = 'schema_version'",
	                       db->qschema);
	if (!sql) return cj__fail(CJ_NOMEM, "out of memory");
	PGresult *r = cj__pg_sql(db, c, sql);
	cj_free(sql);
	int rc = CJ_OK;
	if (r && PQresultStatus(r) == PGRES_TUPLES_OK) {
		if (PQntuples(r) != 1)
			rc = cj__fail(CJ_STORE, "schema %s: not a couchjobs store (no "
			              "schema_version)", db->schema);
		else
			*v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	} else {
		const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
		if (st && (strcmp(st, "3F000") == 0 || strcmp(st, "42P01") == 0))
			rc = CJ_NOT_FOUND;
		else
			rc = cj__pg_fail(db, c, r, "open");
	}
	PQclear(r);
	return rc;
}

/* Takes the schema's advisory lock in an open transaction. */
static int pge_lock_schema(cj_edb *db, struct pge_conn *c) {
	char *sql = cj__pg_printf("SELECT pg_advisory_xact_lock(%d, hashtext('%s'))",
	                       PGE_LOCK_CLASS, db->schema);
	if (!sql) return cj__fail(CJ_NOMEM, "out of memory");
	int rc = cj__pg_exec(db, c, sql, PGRES_TUPLES_OK, "open", NULL);
	cj_free(sql);
	return rc;
}

/* Creates the schema and its tables; a concurrent first open may have done
 * it already. Runs in a transaction of its own on c. */
static int pge_create(cj_edb *db, struct pge_conn *c) {
	const char *s = db->qschema;
	char *sql = NULL;
	PGresult *r = NULL;
	int rc = cj__pg_exec(db, c, "BEGIN", PGRES_COMMAND_OK, "open", NULL);
	if (rc) return rc;
	if ((rc = pge_lock_schema(db, c))) goto out_rollback;
	if (!(sql = cj__pg_printf("CREATE SCHEMA IF NOT EXISTS %s; "
	                       "SELECT to_regclass('%s.meta') IS NOT NULL, "
	                       "to_regclass('%s.kv') IS NOT NULL",
	                       s, s, s))) {
		rc = cj__fail(CJ_NOMEM, "out of memory");
		goto out_rollback;
	}
	if ((rc = cj__pg_exec(db, c, sql, PGRES_TUPLES_OK, "create", &r))) goto out_rollback;
	int has_meta = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
	int has_kv = PQntuples(r) == 1 && PQgetvalue(r, 0, 1)[0] == 't';
	if (!has_meta && has_kv) {
		rc = cj__fail(CJ_STORE, "schema %s: not a couchjobs store (it has a table kv "
		              "but no meta)", db->schema);
		goto out_rollback;
	}
	if (!has_meta) {
		cj_free(sql);
		sql = cj__pg_printf(
			"CREATE TABLE %s.kv (space smallint NOT NULL, k bytea NOT NULL, "
			"v bytea NOT NULL, PRIMARY KEY (space, k)); "
			"CREATE TABLE %s.meta (name text PRIMARY KEY, value bigint NOT NULL); "
			"CREATE SEQUENCE %s.commit_seq AS bigint; "
			"INSERT INTO %s.meta (name, value) VALUES ('schema_version', %d)",
			s, s, s, s, PGE_SCHEMA_VERSION);
		if (!sql) {
			rc = cj__fail(CJ_NOMEM, "out of memory");
			goto out_rollback;
		}
		if ((rc = cj__pg_exec(db, c, sql, PGRES_COMMAND_OK, "create", NULL))) goto out_rollback;
	}
	rc = cj__pg_exec(db, c, "COMMIT", PGRES_COMMAND_OK, "create", NULL);
out_rollback:
	if (rc && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		PGresult *rb = cj__pg_sql(db, c, "ROLLBACK");
		PQclear(rb);
	}
	PQclear(r);
	cj_free(sql);
	return rc;
}

/* Brings a store of an older schema version to PGE_SCHEMA_VERSION. */
static int pge_migrate(cj_edb *db, struct pge_conn *c) {
	int rc = cj__pg_exec(db, c, "BEGIN", PGRES_COMMAND_OK, "migrate", NULL);
	if (rc) return rc;
	int64_t v = 0;
	if ((rc = pge_lock_schema(db, c)) || (rc = pge_read_version(db, c, &v))) goto out_rollback;
	if (v < 1 || v > PGE_SCHEMA_VERSION) {
		rc = cj__fail(CJ_STORE, "schema %s: store schema version %lld changed while "
		              "migrating", db->schema, (long long)v);
		goto out_rollback;
	}
	for (; v < PGE_SCHEMA_VERSION; v++) {
		const char *step = pge_migrations[v - 1];
		if (!step) continue;
		char *sql = cj__pg_printf(step, db->qschema);
		if (!sql) {
			rc = cj__fail(CJ_NOMEM, "out of memory");
			goto out_rollback;
		}
		rc = cj__pg_exec(db, c, sql, PGRES_COMMAND_OK, "migrate", NULL);
		cj_free(sql);
		if (rc) goto out_rollback;
	}
	char *sql = cj__pg_printf("UPDATE %s.meta SET value = %d WHERE name = 'schema_version'",
	                       db->qschema, PGE_SCHEMA_VERSION);
	if (!sql) {
		rc = cj__fail(CJ_NOMEM, "out of memory");
		goto out_rollback;
	}
	rc = cj__pg_exec(db, c, sql, PGRES_COMMAND_OK, "migrate", NULL);
	cj_free(sql);
	if (rc == CJ_OK) rc = cj__pg_exec(db, c, "COMMIT", PGRES_COMMAND_OK, "migrate", NULL);
out_rollback:
	if (rc && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		PGresult *rb = cj__pg_sql(db, c, "ROLLBACK");
		PQclear(rb);
	}
	return rc;
}

/* Makes sure the schema exists at the current version. */
int cj__pg_init(cj_edb *db, struct pge_conn *c) {
	int64_t v = 0;
	int rc = pge_read_version(db, c, &v);
	if (rc == CJ_NOT_FOUND) {
		if ((rc = pge_create(db, c))) return rc;
		rc = pge_read_version(db, c, &v);
	}
	if (rc) return rc;
	if (v > PGE_SCHEMA_VERSION)
		return cj__fail(CJ_STORE, "schema %s: unknown store schema version %lld (this "
		                "library knows up to %d)", db->schema, (long long)v,
		                PGE_SCHEMA_VERSION);
	if (v < 1)
		return cj__fail(CJ_STORE, "schema %s: bad store schema version %lld",
		                db->schema, (long long)v);
	if (v < PGE_SCHEMA_VERSION) return pge_migrate(db, c);
	return CJ_OK;
}
