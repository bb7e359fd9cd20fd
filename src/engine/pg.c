/*
 * The PostgreSQL engine.
 *
 * A store is a schema (default "couch_jobs") in a PostgreSQL database:
 *
 *   kv   (space smallint, k bytea, v bytea NOT NULL, PRIMARY KEY (space, k))
 *          space 0: the jobs space (keys as in cj_int.h)
 *          space 1: the caller's own keys (cj_tx_put)
 *   meta (name text PRIMARY KEY, value bigint NOT NULL)
 *          'schema_version' = PGE_SCHEMA_VERSION
 *   commit_seq: a sequence handing out commit numbers
 *
 * The first open creates the schema and both tables in one transaction,
 * under an advisory lock so concurrent first opens take turns. Opening a
 * store of an older schema_version migrates it (pge_migrations); a newer
 * one is refused.
 *
 * URL: a libpq connection URI (postgresql://... or postgres://...). A
 * query parameter schema=NAME (letters, digits, underscore; at most
 * PGE_MAX_SCHEMA bytes) names the schema and is removed before the URI
 * goes to libpq; else cj_options.schema; else "couch_jobs". Defaults that
 * the URI may override: connect_timeout=10, TCP keepalives and user
 * timeout (a vanished server fails calls within about a minute), and
 * fallback_application_name=couchjobs.
 *
 * Transactions: a write transaction is BEGIN ISOLATION LEVEL READ
 * COMMITTED, and writers of different rows never wait for each other (no
 * row is written by every transaction). What the core acts on is held as
 * engine.h asks:
 *  - get() is SELECT ... FOR UPDATE: it waits for a concurrent writer of
 *    the row and then returns the row as that one committed it (a locking
 *    read in READ COMMITTED sees the latest version of the row). When it
 *    finds nothing, it takes a transaction-scoped advisory lock on a hash
 *    of the key and looks again: two transactions finding one key absent
 *    (two cj_add of one new job) take turns, and the second sees the row
 *    the first inserted.
 *  - scan() locks nothing; the core reads again with get() what it acts on.
 *  - claim_first() is SELECT ... ORDER BY k LIMIT 1 FOR UPDATE SKIP LOCKED:
 *    concurrent acceptors of a type each take a different pending key
 *    without waiting for one another.
 * Waits that close a cycle end in a deadlock error (40P01), which is
 * CJ_CONFLICT: the core runs the transaction again.
 * The commit number is nextval('commit_seq'), taken at the first
 * commit_version() call: numbers increase in the order transactions ask
 * for them, not in commit order (engine.h allows it; monitor.c says why
 * the activity monitor stays right). A write transaction that wrote
 * nothing rolls back. A read transaction is BEGIN ISOLATION LEVEL
 * REPEATABLE READ READ ONLY; its first statement reads the sequence's last
 * value: >= every number handed out before it.
 * SQLSTATE 40001, 40P01 and 55P03 are CJ_CONFLICT, 54000 (a key too long
 * for the index) is CJ_TOO_LARGE, anything else CJ_STORE with the server's
 * message.
 *
 * Connections: a pool per store (a free list under a mutex), grown on
 * demand. A connection found broken is closed, and so are the idle ones
 * (a server restart breaks them all); the next call connects anew. Every
 * connection prepares the statements of the ops once.
 *
 * Wakeups: a channel is hashed to one of PGE_WORDS wake words (as on the
 * embedded engine). A commit that marked words sends, just before COMMIT,
 *   SELECT pg_notify('cj_<schema>', '<word>,<word>,...')
 * which PostgreSQL delivers only if the transaction commits. Each store
 * handle runs one listener thread (started by the first watch()) with its
 * own connection doing LISTEN "cj_<schema>"; it sleeps in poll() on the
 * connection and a stop pipe, and bumps the in-process counter of each word
 * it receives. Waiters sleep on a condition variable while their word's
 * counter holds their token. When the listener's connection is lost it
 * reconnects with backoff (PGE_BACKOFF_MIN to PGE_BACKOFF_MAX ms) and, once
 * it listens again, bumps every word, since notifications may have been
 * missed meanwhile: waiters then look at the store again. The first LISTEN
 * bumps every word too, which covers tokens taken before it. A commit also
 * bumps its words in this process at once.
 *
 * Schema bump procedure: raise PGE_SCHEMA_VERSION, add the SQL that turns
 * the previous version into the new one to pge_migrations, and describe it
 * in doc/postgresql.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cj_int.h"

#define PGE_SCHEMA_VERSION 2
#define PGE_DEFAULT_SCHEMA "couch_jobs"
#define PGE_MAX_SCHEMA 59 /* "cj_" + schema is a channel name: 63 bytes */
#define PGE_WORDS 1024
#define PGE_POOL_IDLE 16     /* idle connections kept */
#define PGE_BACKOFF_MIN 100  /* listener reconnect delay, ms */
#define PGE_BACKOFF_MAX 2000
#define PGE_LISTEN_CONNECT_MS 15000
#define PGE_SCAN_MAX_ROWS 256
#define PGE_SCAN_BATCH_BYTES ((size_t)4 << 20)
#define PGE_LOCK_CLASS 0x636a /* advisory lock class of schema creation */
#define PGE_KEY_LOCK_CLASS 0x636b /* advisory lock class of absent keys */

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
};

struct pge_conn {
	PGconn *pg;
	struct pge_conn *next; /* in the idle list */
};

struct cj_edb {
	/* connection parameters for PQconnectdbParams (expand_dbname) */
	const char *kw[10]; /* NULL-terminated */
	const char *val[10];
	char *uri; /* the URL without schema= */
	char *schema;
	char *qschema; /* "schema", quoted */
	char *chan;    /* cj_<schema> */
	int relaxed;

	char *sql_begin_w, *sql_begin_r, *sql_prepare, *sql_listen;
	uint32_t key_hash; /* seed of absent-key lock hashes: the schema's */

	pthread_mutex_t mu; /* guards the pool */
	struct pge_conn *idle;
	size_t nidle;

	pthread_mutex_t wmu; /* guards what follows */
	pthread_cond_t wcond;
	uint64_t words[PGE_WORDS];
	int listener_started;
	int listener_failed;
	pthread_t listener;
	/* the listener's connection, kept here too so that a forked child's
	 * leak check finds it reachable */
	PGconn *lconn;
	int stopfd[2];
	atomic_int stop;
};

struct cj_etx {
	cj_edb *db;
	struct pge_conn *c;
	int write;
	int dirty; /* something to commit */
	int failed; /* a code: taking the commit number failed */
	uint64_t version; /* 0: not taken yet (write transactions) */
	PGresult *res; /* of the last get */
	int nwords;
	uint8_t notify[PGE_WORDS / 8];
};

static const char *const pge_space[CJ_SPACE_COUNT] = {"0", "1"};

/* ---- small helpers -------------------------------------------------------- */

static unsigned pge_chan_word(const char *chan) {
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)chan; *p; p++)
		h = (h ^ *p) * 16777619u;
	return 1 + h % (PGE_WORDS - 1);
}

/* A libpq message on one line: newlines and tabs become spaces, and the
 * ends are trimmed. */
static void pge_line(const char *msg, char *out, size_t cap) {
	size_t n = 0;
	int space = 0;
	if (!msg) msg = "";
	for (const char *p = msg; *p && n + 1 < cap; p++) {
		if (*p == '\n' || *p == '\t' || *p == '\r' || *p == ' ') {
			space = n > 0;
			continue;
		}
		if (space && n + 2 < cap) out[n++] = ' ';
		space = 0;
		out[n++] = *p;
	}
	out[n] = 0;
}

static char *pge_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pge_printf(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) return NULL;
	char *s = cj__malloc((size_t)n + 1);
	if (!s) return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

static void pge_quiet(void *arg, const char *msg) {
	(void)arg, (void)msg; /* NOTICEs (e.g. "already exists, skipping") */
}

static void pge_close_conn(struct pge_conn *c) {
	if (!c) return;
	PQfinish(c->pg);
	free(c);
}

/* Closes every idle connection (after one was found broken). */
static void pge_pool_flush(cj_edb *db) {
	pthread_mutex_lock(&db->mu);
	struct pge_conn *c = db->idle;
	db->idle = NULL;
	db->nidle = 0;
	pthread_mutex_unlock(&db->mu);
	while (c) {
		struct pge_conn *next = c->next;
		pge_close_conn(c);
		c = next;
	}
}

/* The code and detail of a failed statement on c (res may be NULL). */
static int pge_fail(cj_edb *db, struct pge_conn *c, const PGresult *res,
                    const char *what) {
	char line[512];
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorMessage(res) : "";
	if (!msg || !*msg) msg = PQerrorMessage(c->pg);
	pge_line(msg, line, sizeof line);
	if (!*line && res)
		snprintf(line, sizeof line, "unexpected result %s",
		         PQresStatus(PQresultStatus(res)));
	else if (!*line)
		snprintf(line, sizeof line, "no result (out of memory?)");
	int rc = CJ_STORE;
	if (state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	              strcmp(state, "55P03") == 0))
		rc = CJ_CONFLICT;
	else if (state && strcmp(state, "54000") == 0)
		rc = CJ_TOO_LARGE;
	if (PQstatus(c->pg) != CONNECTION_OK) {
		pge_pool_flush(db);
		return cj__fail(CJ_STORE, "postgresql %s: connection lost: %s", what, line);
	}
	return cj__fail(rc, "postgresql %s: %s", what, line);
}

/* Runs sql (no parameters) on c and checks its status. */
static int pge_exec(cj_edb *db, struct pge_conn *c, const char *sql,
                    ExecStatusType want, const char *what, PGresult **out) {
	PGresult *r = PQexec(c->pg, sql);
	if (!r || PQresultStatus(r) != want) {
		int rc = pge_fail(db, c, r, what);
		PQclear(r);
		return rc;
	}
	if (out) *out = r;
	else PQclear(r);
	return CJ_OK;
}

/* ---- connections ---------------------------------------------------------- */

static int pge_connect(cj_edb *db, struct pge_conn **out) {
	*out = NULL;
	struct pge_conn *c = cj__calloc(1, sizeof *c);
	if (!c) return cj__fail(CJ_NOMEM, "out of memory");
	c->pg = PQconnectdbParams(db->kw, db->val, 1);
	if (!c->pg) {
		free(c);
		return cj__fail(CJ_NOMEM, "out of memory");
	}
	if (PQstatus(c->pg) != CONNECTION_OK) {
		char line[512];
		pge_line(PQerrorMessage(c->pg), line, sizeof line);
		pge_close_conn(c);
		return cj__fail(CJ_STORE, "postgresql connect: %s", line);
	}
	PQsetNoticeProcessor(c->pg, pge_quiet, NULL);
	*out = c;
	return CJ_OK;
}

/* Prepares the statements of the ops (and the session settings) on a
 * connection of a store whose schema exists. */
static int pge_prepare(cj_edb *db, struct pge_conn *c) {
	return pge_exec(db, c, db->sql_prepare, PGRES_COMMAND_OK, "prepare", NULL);
}

/* An idle connection still fine as far as a look without waiting tells:
 * a server that went away has closed it, which shows as readable. */
static int pge_alive(struct pge_conn *c) {
	if (PQstatus(c->pg) != CONNECTION_OK) return 0;
	struct pollfd p = {PQsocket(c->pg), POLLIN, 0};
	if (p.fd < 0) return 0;
	if (poll(&p, 1, 0) > 0) {
		if (!PQconsumeInput(c->pg)) return 0;
		PGnotify *n;
		while ((n = PQnotifies(c->pg))) PQfreemem(n);
	}
	return PQstatus(c->pg) == CONNECTION_OK &&
	       PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

/* A connection for a transaction: an idle one, or a new one (*fresh). */
static int pge_take(cj_edb *db, struct pge_conn **out, int *fresh) {
	*out = NULL;
	for (;;) {
		pthread_mutex_lock(&db->mu);
		struct pge_conn *c = db->idle;
		if (c) {
			db->idle = c->next;
			db->nidle--;
		}
		pthread_mutex_unlock(&db->mu);
		if (!c) break;
		c->next = NULL;
		if (pge_alive(c)) {
			*out = c;
			*fresh = 0;
			return CJ_OK;
		}
		pge_close_conn(c);
	}
	struct pge_conn *c;
	int rc = pge_connect(db, &c);
	if (rc) return rc;
	if ((rc = pge_prepare(db, c))) {
		pge_close_conn(c);
		return rc;
	}
	*out = c;
	*fresh = 1;
	return CJ_OK;
}

/* Returns a connection to the pool, or closes it if it is not idle and
 * healthy. */
static void pge_give(cj_edb *db, struct pge_conn *c) {
	if (!c) return;
	if (PQstatus(c->pg) != CONNECTION_OK ||
	    PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		pge_close_conn(c);
		return;
	}
	pthread_mutex_lock(&db->mu);
	if (db->nidle < PGE_POOL_IDLE) {
		c->next = db->idle;
		db->idle = c;
		db->nidle++;
		c = NULL;
	}
	pthread_mutex_unlock(&db->mu);
	pge_close_conn(c);
}

/* ---- the URL --------------------------------------------------------------- */

static int pge_hex(int ch) {
	if (ch >= '0' && ch <= '9') return ch - '0';
	if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into a new string; NULL on bad escapes or no
 * memory (*bad tells which). */
static char *pge_unescape(const char *s, size_t n, int *bad) {
	char *o = cj__malloc(n + 1);
	size_t j = 0;
	*bad = 0;
	if (!o) return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			o[j++] = s[i];
			continue;
		}
		int hi = i + 2 < n ? pge_hex(s[i + 1]) : -1;
		int lo = i + 2 < n ? pge_hex(s[i + 2]) : -1;
		if (hi < 0 || lo < 0) {
			free(o);
			*bad = 1;
			return NULL;
		}
		o[j++] = (char)(hi << 4 | lo);
		i += 2;
	}
	o[j] = 0;
	return o;
}

static int pge_valid_schema(const char *s) {
	size_t n = strlen(s);
	if (n == 0 || n > PGE_MAX_SCHEMA) return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return 0;
	return 1;
}

/* Splits url into the URI for libpq (db->uri) and the schema name. */
static int pge_parse_url(cj_edb *db, const char *url, const cj_options *o) {
	const char *q = strchr(url, '?');
	char *schema = NULL;
	cj_buf u = CJ_BUF_INIT;
	int rc = CJ_OK;
	cj__buf_add(&u, url, q ? (size_t)(q - url) : strlen(url));
	if (q) {
		const char *p = q + 1;
		int first = 1;
		while (*p) {
			size_t n = strcspn(p, "&");
			if (n >= 7 && strncmp(p, "schema=", 7) == 0) {
				int bad;
				free(schema);
				schema = pge_unescape(p + 7, n - 7, &bad);
				if (!schema) {
					rc = bad ? cj__fail(CJ_INVALID, "bad escape in the schema= parameter")
					         : cj__fail(CJ_NOMEM, "out of memory");
					goto out_free;
				}
			} else if (n > 0) {
				cj__buf_add(&u, first ? "?" : "&", 1);
				cj__buf_add(&u, p, n);
				first = 0;
			}
			p += n;
			if (*p == '&') p++;
		}
	}
	cj__buf_add(&u, "", 1);
	if (u.oom) {
		rc = cj__fail(CJ_NOMEM, "out of memory");
		goto out_free;
	}
	const char *name = schema ? schema : o->schema ? o->schema : PGE_DEFAULT_SCHEMA;
	if (!pge_valid_schema(name)) {
		rc = cj__fail(CJ_INVALID, "bad schema name \"%.80s\": 1 to %d letters, digits "
		              "or underscores", name, PGE_MAX_SCHEMA);
		goto out_free;
	}
	if (!(db->schema = cj__strdup(name))) {
		rc = cj__fail(CJ_NOMEM, "out of memory");
		goto out_free;
	}
	db->uri = (char *)u.p;
	u.p = NULL;
out_free:
	free(schema);
	cj__buf_free(&u);
	return rc;
}

/* ---- open / close --------------------------------------------------------- */

static int pge_build_sql(cj_edb *db) {
	const char *s = db->qschema;
	db->sql_begin_w = pge_printf("BEGIN ISOLATION LEVEL READ COMMITTED");
	/* before the first nextval, last_value is the start and not handed out */
	db->sql_begin_r = pge_printf(
		"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
		"SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END "
		"FROM %s.commit_seq",
		s);
	db->sql_prepare = pge_printf(
		"%s"
		"PREPARE cj_get (smallint, bytea) AS "
		"SELECT v FROM %s.kv WHERE space = $1 AND k = $2; "
		"PREPARE cj_get_w (smallint, bytea) AS "
		"SELECT v FROM %s.kv WHERE space = $1 AND k = $2 FOR UPDATE; "
		"PREPARE cj_lock_key (integer) AS "
		"SELECT pg_advisory_xact_lock(%d, $1); "
		"PREPARE cj_claim (smallint, bytea, bytea) AS "
		"SELECT k FROM %s.kv WHERE space = $1 AND k >= $2 AND k < $3 "
		"ORDER BY k LIMIT 1 FOR UPDATE SKIP LOCKED; "
		"PREPARE cj_nextval AS SELECT nextval('%s.commit_seq'); "
		"PREPARE cj_put (smallint, bytea, bytea) AS "
		"INSERT INTO %s.kv (space, k, v) VALUES ($1, $2, $3) "
		"ON CONFLICT (space, k) DO UPDATE SET v = EXCLUDED.v; "
		"PREPARE cj_del (smallint, bytea) AS "
		"DELETE FROM %s.kv WHERE space = $1 AND k = $2; "
		"PREPARE cj_scan (smallint, bytea, bytea, bigint) AS "
		"SELECT k, v FROM %s.kv WHERE space = $1 AND k >= $2 AND k < $3 "
		"ORDER BY k LIMIT $4; "
		"PREPARE cj_scan_after (smallint, bytea, bytea, bigint) AS "
		"SELECT k, v FROM %s.kv WHERE space = $1 AND k > $2 AND k < $3 "
		"ORDER BY k LIMIT $4",
		db->relaxed ? "SET synchronous_commit TO off; " : "", s, s, PGE_KEY_LOCK_CLASS, s,
		s, s, s, s, s);
	db->sql_listen = pge_printf("LISTEN \"%s\"", db->chan);
	if (!db->sql_begin_w || !db->sql_begin_r || !db->sql_prepare || !db->sql_listen)
		return cj__fail(CJ_NOMEM, "out of memory");
	return CJ_OK;
}

/* Reads schema_version: CJ_OK with *v, CJ_NOT_FOUND if the store's tables
 * do not exist, or a code. */
static int pge_read_version(cj_edb *db, struct pge_conn *c, int64_t *v) {
	char *sql = pge_printf("SELECT value FROM %s.meta WHERE name = 'schema_version'",
	                       db->qschema);
	if (!sql) return cj__fail(CJ_NOMEM, "out of memory");
	PGresult *r = PQexec(c->pg, sql);
	free(sql);
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
			rc = pge_fail(db, c, r, "open");
	}
	PQclear(r);
	return rc;
}

/* Takes the schema's advisory lock in an open transaction. */
static int pge_lock_schema(cj_edb *db, struct pge_conn *c) {
	char *sql = pge_printf("SELECT pg_advisory_xact_lock(%d, hashtext('%s'))",
	                       PGE_LOCK_CLASS, db->schema);
	if (!sql) return cj__fail(CJ_NOMEM, "out of memory");
	int rc = pge_exec(db, c, sql, PGRES_TUPLES_OK, "open", NULL);
	free(sql);
	return rc;
}

/* Creates the schema and its tables; a concurrent first open may have done
 * it already. Runs in a transaction of its own on c. */
static int pge_create(cj_edb *db, struct pge_conn *c) {
	const char *s = db->qschema;
	char *sql = NULL;
	PGresult *r = NULL;
	int rc = pge_exec(db, c, "BEGIN", PGRES_COMMAND_OK, "open", NULL);
	if (rc) return rc;
	if ((rc = pge_lock_schema(db, c))) goto out_rollback;
	if (!(sql = pge_printf("CREATE SCHEMA IF NOT EXISTS %s; "
	                       "SELECT to_regclass('%s.meta') IS NOT NULL, "
	                       "to_regclass('%s.kv') IS NOT NULL",
	                       s, s, s))) {
		rc = cj__fail(CJ_NOMEM, "out of memory");
		goto out_rollback;
	}
	if ((rc = pge_exec(db, c, sql, PGRES_TUPLES_OK, "create", &r))) goto out_rollback;
	int has_meta = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
	int has_kv = PQntuples(r) == 1 && PQgetvalue(r, 0, 1)[0] == 't';
	if (!has_meta && has_kv) {
		rc = cj__fail(CJ_STORE, "schema %s: not a couchjobs store (it has a table kv "
		              "but no meta)", db->schema);
		goto out_rollback;
	}
	if (!has_meta) {
		free(sql);
		sql = pge_printf(
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
		if ((rc = pge_exec(db, c, sql, PGRES_COMMAND_OK, "create", NULL))) goto out_rollback;
	}
	rc = pge_exec(db, c, "COMMIT", PGRES_COMMAND_OK, "create", NULL);
out_rollback:
	if (rc && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		PGresult *rb = PQexec(c->pg, "ROLLBACK");
		PQclear(rb);
	}
	PQclear(r);
	free(sql);
	return rc;
}

/* Brings a store of an older schema version to PGE_SCHEMA_VERSION. */
static int pge_migrate(cj_edb *db, struct pge_conn *c) {
	int rc = pge_exec(db, c, "BEGIN", PGRES_COMMAND_OK, "migrate", NULL);
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
		char *sql = pge_printf(step, db->qschema);
		if (!sql) {
			rc = cj__fail(CJ_NOMEM, "out of memory");
			goto out_rollback;
		}
		rc = pge_exec(db, c, sql, PGRES_COMMAND_OK, "migrate", NULL);
		free(sql);
		if (rc) goto out_rollback;
	}
	char *sql = pge_printf("UPDATE %s.meta SET value = %d WHERE name = 'schema_version'",
	                       db->qschema, PGE_SCHEMA_VERSION);
	if (!sql) {
		rc = cj__fail(CJ_NOMEM, "out of memory");
		goto out_rollback;
	}
	rc = pge_exec(db, c, sql, PGRES_COMMAND_OK, "migrate", NULL);
	free(sql);
	if (rc == CJ_OK) rc = pge_exec(db, c, "COMMIT", PGRES_COMMAND_OK, "migrate", NULL);
out_rollback:
	if (rc && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		PGresult *rb = PQexec(c->pg, "ROLLBACK");
		PQclear(rb);
	}
	return rc;
}

/* Makes sure the schema exists at the current version. */
static int pge_init(cj_edb *db, struct pge_conn *c) {
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

static void pge_listener_stop(cj_edb *db);

static void pge_close(cj_edb *db) {
	if (!db) return;
	pge_listener_stop(db);
	pge_pool_flush(db);
	free(db->uri);
	free(db->schema);
	free(db->qschema);
	free(db->chan);
	free(db->sql_begin_w);
	free(db->sql_begin_r);
	free(db->sql_prepare);
	free(db->sql_listen);
	pthread_mutex_destroy(&db->mu);
	pthread_mutex_destroy(&db->wmu);
	pthread_cond_destroy(&db->wcond);
	free(db);
}

static int pge_open(const char *url, const cj_options *o, cj_edb **out) {
	*out = NULL;
	cj_edb *db = cj__calloc(1, sizeof *db);
	if (!db) return cj__fail(CJ_NOMEM, "out of memory");
	pthread_mutex_init(&db->mu, NULL);
	pthread_mutex_init(&db->wmu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&db->wcond, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&db->stop, 0);
	db->stopfd[0] = db->stopfd[1] = -1;
	db->relaxed = o->sync == CJ_SYNC_RELAXED;

	struct pge_conn *c = NULL;
	int rc = pge_parse_url(db, url, o);
	if (rc) goto out_close;
	db->qschema = pge_printf("\"%s\"", db->schema);
	db->chan = pge_printf("cj_%s", db->schema);
	db->key_hash = 2166136261u;
	for (const char *p = db->schema; *p; p++)
		db->key_hash = (db->key_hash ^ (uint8_t)*p) * 16777619u;
	if (!db->qschema || !db->chan) {
		rc = cj__fail(CJ_NOMEM, "out of memory");
		goto out_close;
	}
	if ((rc = pge_build_sql(db))) goto out_close;

	/* defaults first: what the URI says overrides them */
	static const char *const defaults[][2] = {
		{"connect_timeout", "10"},
		{"keepalives", "1"},
		{"keepalives_idle", "30"},
		{"keepalives_interval", "10"},
		{"keepalives_count", "3"},
#ifdef LIBPQ_HAS_PIPELINING /* libpq 14 or later knows tcp_user_timeout */
		{"tcp_user_timeout", "60000"},
#endif
		{"fallback_application_name", "couchjobs"},
	};
	size_t nd = sizeof defaults / sizeof defaults[0];
	for (size_t i = 0; i < nd; i++) {
		db->kw[i] = defaults[i][0];
		db->val[i] = defaults[i][1];
	}
	db->kw[nd] = "dbname";
	db->val[nd] = db->uri;

	if ((rc = pge_connect(db, &c))) goto out_close;
	if ((rc = pge_init(db, c))) goto out_close;
	if ((rc = pge_prepare(db, c))) goto out_close;
	pge_give(db, c);
	*out = db;
	return CJ_OK;
out_close:
	pge_close_conn(c);
	pge_close(db);
	return rc;
}

/* ---- transactions ----------------------------------------------------------- */

static void pge_clear(cj_etx *tx) {
	PQclear(tx->res);
	tx->res = NULL;
}

static void pge_end(cj_etx *tx) {
	pge_clear(tx);
	pge_give(tx->db, tx->c);
	free(tx);
}

static int pge_begin(cj_edb *db, int write, cj_etx **out) {
	*out = NULL;
	cj_etx *tx = cj__calloc(1, sizeof *tx);
	if (!tx) return cj__fail(CJ_NOMEM, "out of memory");
	tx->db = db;
	tx->write = write;
	const char *sql = write ? db->sql_begin_w : db->sql_begin_r;
	int rc;
	for (int attempt = 0;; attempt++) {
		int fresh;
		if ((rc = pge_take(db, &tx->c, &fresh))) break;
		PGresult *r = PQexec(tx->c->pg, sql);
		if (r && write && PQresultStatus(r) == PGRES_COMMAND_OK) {
			PQclear(r);
			*out = tx;
			return CJ_OK;
		}
		if (r && !write && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
			tx->version = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
			PQclear(r);
			*out = tx;
			return CJ_OK;
		}
		int broken = PQstatus(tx->c->pg) != CONNECTION_OK;
		if (r && PQresultStatus(r) == PGRES_TUPLES_OK)
			rc = cj__fail(CJ_STORE, "schema %s: corrupt store: no commit sequence",
			              db->schema);
		else
			rc = pge_fail(db, tx->c, r, "begin");
		PQclear(r);
		if (PQtransactionStatus(tx->c->pg) == PQTRANS_INERROR) {
			r = PQexec(tx->c->pg, "ROLLBACK");
			PQclear(r);
		}
		pge_give(db, tx->c);
		tx->c = NULL;
		/* an idle connection that a server restart broke: nothing was
		 * done yet, so a new connection may try again */
		if (!(broken && !fresh && attempt == 0)) break;
	}
	free(tx);
	return rc;
}

static void pge_abort(cj_etx *tx) {
	if (!tx) return;
	pge_clear(tx);
	if (PQtransactionStatus(tx->c->pg) != PQTRANS_IDLE) {
		PGresult *r = PQexec(tx->c->pg, "ROLLBACK");
		PQclear(r);
	}
	pge_end(tx);
}

static void pge_bump_words(cj_edb *db, const uint8_t *bits) {
	pthread_mutex_lock(&db->wmu);
	for (unsigned i = 0; i < PGE_WORDS; i++)
		if (bits[i / 8] & (1u << (i % 8))) db->words[i]++;
	pthread_cond_broadcast(&db->wcond);
	pthread_mutex_unlock(&db->wmu);
}

static int pge_commit(cj_etx *tx) {
	cj_edb *db = tx->db;
	pge_clear(tx);
	if (tx->failed) {
		int rc = tx->failed;
		pge_abort(tx);
		return rc;
	}
	if (!tx->write || !tx->dirty) {
		pge_abort(tx);
		return CJ_OK;
	}
	cj_buf sql = CJ_BUF_INIT;
	if (tx->nwords) {
		char num[16];
		int first = 1;
		cj__buf_add(&sql, "SELECT pg_notify('", 18);
		cj__buf_add(&sql, db->chan, strlen(db->chan));
		cj__buf_add(&sql, "', '", 4);
		for (unsigned i = 0; i < PGE_WORDS; i++)
			if (tx->notify[i / 8] & (1u << (i % 8))) {
				int n = snprintf(num, sizeof num, "%s%u", first ? "" : ",", i);
				cj__buf_add(&sql, num, (size_t)n);
				first = 0;
			}
		cj__buf_add(&sql, "'); ", 4);
	}
	cj__buf_add(&sql, "COMMIT", 7);
	if (sql.oom) {
		cj__buf_free(&sql);
		pge_abort(tx);
		return cj__fail(CJ_NOMEM, "out of memory");
	}
	PGresult *r = PQexec(tx->c->pg, (const char *)sql.p);
	cj__buf_free(&sql);
	int rc = CJ_OK;
	if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
		rc = pge_fail(db, tx->c, r, "commit");
	} else if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		/* COMMIT of a failed transaction says ROLLBACK */
		rc = cj__fail(CJ_STORE, "postgresql commit: the transaction had failed (a "
		              "statement in it failed) and was rolled back");
	}
	PQclear(r);
	if (rc == CJ_OK && tx->nwords) pge_bump_words(db, tx->notify);
	pge_abort(tx); /* rolls back what a failed commit left open; frees tx */
	return rc;
}

/* In a write transaction the number is taken at the first call, from the
 * sequence, which no transaction holds: numbers are unique and increase in
 * the order they were taken. A failure fails the commit. */
static uint64_t pge_version(cj_etx *tx) {
	if (tx->version || !tx->write || tx->failed) return tx->version;
	pge_clear(tx);
	PGresult *r = PQexecPrepared(tx->c->pg, "cj_nextval", 0, NULL, NULL, NULL, 0);
	if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		tx->version = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	else
		tx->failed = pge_fail(tx->db, tx->c, r, "commit number");
	PQclear(r);
	return tx->version;
}

static void *pge_native(cj_etx *tx) {
	tx->dirty = 1; /* the caller's statements are committed too */
	return tx->c->pg;
}

/* ---- data -------------------------------------------------------------------- */

/* Locks the absence of a key (write transactions): an advisory lock on a
 * hash of the key, held until the transaction ends. */
static int pge_lock_absent(cj_etx *tx, int space, const void *k, size_t kl) {
	uint32_t h = tx->db->key_hash;
	h = (h ^ (uint32_t)space) * 16777619u;
	for (size_t i = 0; i < kl; i++) h = (h ^ ((const uint8_t *)k)[i]) * 16777619u;
	char num[16];
	snprintf(num, sizeof num, "%" PRId32, (int32_t)h);
	const char *vals[1] = {num};
	PGresult *r = PQexecPrepared(tx->c->pg, "cj_lock_key", 1, vals, NULL, NULL, 0);
	int rc = CJ_OK;
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) rc = pge_fail(tx->db, tx->c, r, "get");
	PQclear(r);
	return rc;
}

static int pge_get(cj_etx *tx, int space, const void *k, size_t kl,
                   const uint8_t **v, size_t *vl) {
	pge_clear(tx);
	const char *vals[2] = {pge_space[space], k};
	int lens[2] = {0, (int)kl}, fmts[2] = {0, 1};
	const char *stmt = tx->write ? "cj_get_w" : "cj_get";
	PGresult *r = PQexecPrepared(tx->c->pg, stmt, 2, vals, lens, fmts, 1);
	if (r && tx->write && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 0) {
		/* absent: take turns with other transactions that find it absent,
		 * then look again (a new statement sees what they committed) */
		PQclear(r);
		int rc = pge_lock_absent(tx, space, k, kl);
		if (rc) return rc;
		r = PQexecPrepared(tx->c->pg, stmt, 2, vals, lens, fmts, 1);
	}
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		int rc = pge_fail(tx->db, tx->c, r, "get");
		PQclear(r);
		return rc;
	}
	if (PQntuples(r) == 0) {
		PQclear(r);
		return CJ_NOT_FOUND;
	}
	tx->res = r;
	*v = (const uint8_t *)PQgetvalue(r, 0, 0);
	*vl = (size_t)PQgetlength(r, 0, 0);
	return CJ_OK;
}

static int pge_put(cj_etx *tx, int space, const void *k, size_t kl, const void *v,
                   size_t vl) {
	pge_clear(tx);
	if (vl > INT32_MAX) return cj__fail(CJ_TOO_LARGE, "value of %zu bytes", vl);
	/* a NULL parameter is SQL NULL: an empty value needs a pointer */
	const char *vals[3] = {pge_space[space], k, v ? (const char *)v : ""};
	int lens[3] = {0, (int)kl, (int)vl}, fmts[3] = {0, 1, 1};
	PGresult *r = PQexecPrepared(tx->c->pg, "cj_put", 3, vals, lens, fmts, 1);
	int rc = CJ_OK;
	if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) rc = pge_fail(tx->db, tx->c, r, "put");
	else tx->dirty = 1;
	PQclear(r);
	return rc;
}

static int pge_del(cj_etx *tx, int space, const void *k, size_t kl) {
	pge_clear(tx);
	const char *vals[2] = {pge_space[space], k};
	int lens[2] = {0, (int)kl}, fmts[2] = {0, 1};
	PGresult *r = PQexecPrepared(tx->c->pg, "cj_del", 2, vals, lens, fmts, 1);
	int rc = CJ_OK;
	if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
		rc = pge_fail(tx->db, tx->c, r, "del");
	} else {
		tx->dirty = 1;
		if (strcmp(PQcmdTuples(r), "0") == 0) rc = CJ_NOT_FOUND;
	}
	PQclear(r);
	return rc;
}

static int pge_claim_first(cj_etx *tx, int space, const void *lo, size_t ll,
                           const void *hi, size_t hl, cj_buf *key_out) {
	pge_clear(tx);
	const char *vals[3] = {pge_space[space], lo ? lo : "", hi ? hi : ""};
	int lens[3] = {0, (int)ll, (int)hl}, fmts[3] = {0, 1, 1};
	PGresult *r = PQexecPrepared(tx->c->pg, "cj_claim", 3, vals, lens, fmts, 1);
	int rc = 0;
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		rc = pge_fail(tx->db, tx->c, r, "claim");
	} else if (PQntuples(r) == 1) {
		cj__buf_reset(key_out);
		cj__buf_add(key_out, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
		rc = 1;
	}
	PQclear(r);
	return rc;
}

/* Keyset pagination: batches of growing size (the caller often wants only
 * the first key), each its own result, so that get() calls of the
 * callback do not free the rows being walked. */
static int pge_scan(cj_etx *tx, int space, const void *lo, size_t ll, const void *hi,
                    size_t hl, cj_scan_fn fn, void *arg) {
	pge_clear(tx);
	long limit = 1;
	cj_buf last = CJ_BUF_INIT;
	int rc = CJ_OK, after = 0;
	for (;;) {
		char lim[24];
		snprintf(lim, sizeof lim, "%ld", limit);
		const char *from = after ? (const char *)last.p : lo;
		const char *vals[4] = {pge_space[space], from ? from : "", hi ? hi : "", lim};
		int lens[4] = {0, after ? (int)last.len : (int)ll, (int)hl, 0};
		int fmts[4] = {0, 1, 1, 0};
		if (after && last.oom) {
			rc = cj__fail(CJ_NOMEM, "out of memory");
			break;
		}
		PGresult *r = PQexecPrepared(tx->c->pg, after ? "cj_scan_after" : "cj_scan", 4,
		                             vals, lens, fmts, 1);
		if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
			rc = pge_fail(tx->db, tx->c, r, "scan");
			PQclear(r);
			break;
		}
		int n = PQntuples(r);
		size_t bytes = 0;
		for (int i = 0; i < n && rc == CJ_OK; i++) {
			const uint8_t *k = (const uint8_t *)PQgetvalue(r, i, 0);
			const uint8_t *v = (const uint8_t *)PQgetvalue(r, i, 1);
			size_t kl = (size_t)PQgetlength(r, i, 0), vl = (size_t)PQgetlength(r, i, 1);
			bytes += kl + vl;
			if (i == n - 1) {
				cj__buf_reset(&last);
				cj__buf_add(&last, k, kl);
			}
			rc = fn(k, kl, v, vl, arg);
		}
		PQclear(r);
		if (rc || n < limit) break;
		after = 1;
		if (bytes > PGE_SCAN_BATCH_BYTES) limit = limit > 1 ? limit / 2 : 1;
		else if (limit < PGE_SCAN_MAX_ROWS) limit *= 16;
		if (limit > PGE_SCAN_MAX_ROWS) limit = PGE_SCAN_MAX_ROWS;
	}
	cj__buf_free(&last);
	return rc;
}

/* ---- wakeups ------------------------------------------------------------------ */

static int pge_notify(cj_etx *tx, const char *chan) {
	unsigned w = pge_chan_word(chan);
	if (!(tx->notify[w / 8] & (1u << (w % 8)))) {
		tx->notify[w / 8] |= (uint8_t)(1u << (w % 8));
		tx->nwords++;
	}
	tx->dirty = 1;
	return CJ_OK;
}

/* Sleeps until fd is ready for events, the deadline (monotonic ms, -1:
 * none) passes, or the listener is told to stop: 1 ready, 0 timed out,
 * -1 stop or error. */
static int pge_poll(cj_edb *db, int fd, short events, int64_t deadline) {
	for (;;) {
		if (atomic_load(&db->stop)) return -1;
		struct pollfd p[2] = {{db->stopfd[0], POLLIN, 0}, {fd, events, 0}};
		int ms = -1;
		if (deadline >= 0) {
			int64_t left = deadline - cj__mono_ms();
			if (left <= 0) return 0;
			ms = left > 60000 ? 60000 : (int)left;
		}
		int n = poll(p, fd >= 0 ? 2 : 1, ms);
		if (n < 0 && errno != EINTR) return -1;
		if (n <= 0) continue;
		if (p[0].revents) return -1;
		if (p[1].revents) return 1;
	}
}

/* Connects and LISTENs without blocking the stop pipe; NULL on failure. */
static PGconn *pge_listen_connect(cj_edb *db) {
	PGconn *pg = PQconnectStartParams(db->kw, db->val, 1);
	if (!pg) return NULL;
	pthread_mutex_lock(&db->wmu);
	db->lconn = pg;
	pthread_mutex_unlock(&db->wmu);
	int64_t end = cj__mono_ms() + PGE_LISTEN_CONNECT_MS;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	if (PQstatus(pg) == CONNECTION_BAD) goto out_finish;
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED) goto out_finish;
		short ev = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
		if (pge_poll(db, PQsocket(pg), ev, end) != 1) goto out_finish;
		st = PQconnectPoll(pg);
	}
	PQsetNoticeProcessor(pg, pge_quiet, NULL);
	if (!PQsendQuery(pg, db->sql_listen)) goto out_finish;
	for (;;) {
		int f;
		while ((f = PQflush(pg)) == 1)
			if (pge_poll(db, PQsocket(pg), POLLOUT, end) != 1) goto out_finish;
		if (f < 0) goto out_finish;
		if (!PQisBusy(pg)) break;
		if (pge_poll(db, PQsocket(pg), POLLIN, end) != 1) goto out_finish;
		if (!PQconsumeInput(pg)) goto out_finish;
	}
	int ok = 1;
	PGresult *r;
	while ((r = PQgetResult(pg))) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK) ok = 0;
		PQclear(r);
	}
	if (!ok) goto out_finish;
	return pg;
out_finish:
	pthread_mutex_lock(&db->wmu);
	db->lconn = NULL;
	pthread_mutex_unlock(&db->wmu);
	PQfinish(pg);
	return NULL;
}

/* Bumps the words named by a payload "w,w,...". */
static void pge_payload(cj_edb *db, const char *s) {
	while (*s) {
		char *end;
		unsigned long w = strtoul(s, &end, 10);
		if (end == s) break;
		if (w < PGE_WORDS) db->words[w]++;
		s = *end == ',' ? end + 1 : end;
	}
}

/* Delivers notifications until the connection fails or stop. */
static void pge_listen_loop(cj_edb *db, PGconn *pg) {
	for (;;) {
		PGnotify *n;
		int got = 0;
		pthread_mutex_lock(&db->wmu);
		while ((n = PQnotifies(pg))) {
			pge_payload(db, n->extra);
			PQfreemem(n);
			got = 1;
		}
		if (got) pthread_cond_broadcast(&db->wcond);
		pthread_mutex_unlock(&db->wmu);
		if (pge_poll(db, PQsocket(pg), POLLIN, -1) != 1) return;
		if (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK) return;
	}
}

static void *pge_listener_main(void *arg) {
	cj_edb *db = arg;
	int delay = PGE_BACKOFF_MIN;
	while (!atomic_load(&db->stop)) {
		PGconn *pg = pge_listen_connect(db);
		if (pg) {
			/* notifications may have been missed until now */
			pthread_mutex_lock(&db->wmu);
			for (unsigned i = 0; i < PGE_WORDS; i++) db->words[i]++;
			pthread_cond_broadcast(&db->wcond);
			pthread_mutex_unlock(&db->wmu);
			delay = PGE_BACKOFF_MIN;
			pge_listen_loop(db, pg);
			pthread_mutex_lock(&db->wmu);
			db->lconn = NULL;
			pthread_mutex_unlock(&db->wmu);
			PQfinish(pg);
		}
		if (pge_poll(db, -1, 0, cj__mono_ms() + delay) < 0) break;
		delay = delay * 2 > PGE_BACKOFF_MAX ? PGE_BACKOFF_MAX : delay * 2;
	}
	return NULL;
}

/* Starts the listener if it is not running; db->wmu held. */
static void pge_listener_start(cj_edb *db) {
	if (db->listener_started || db->listener_failed) return;
	if (pipe(db->stopfd) != 0) {
		db->stopfd[0] = db->stopfd[1] = -1;
		db->listener_failed = 1;
		return;
	}
	fcntl(db->stopfd[0], F_SETFD, FD_CLOEXEC);
	fcntl(db->stopfd[1], F_SETFD, FD_CLOEXEC);
	if (pthread_create(&db->listener, NULL, pge_listener_main, db) != 0) {
		close(db->stopfd[0]);
		close(db->stopfd[1]);
		db->stopfd[0] = db->stopfd[1] = -1;
		db->listener_failed = 1;
		return;
	}
	db->listener_started = 1;
}

static void pge_listener_stop(cj_edb *db) {
	pthread_mutex_lock(&db->wmu);
	int started = db->listener_started;
	db->listener_started = 0;
	pthread_mutex_unlock(&db->wmu);
	if (!started) return;
	atomic_store(&db->stop, 1);
	char ch = 1;
	while (write(db->stopfd[1], &ch, 1) < 0 && errno == EINTR) {
	}
	pthread_join(db->listener, NULL);
	close(db->stopfd[0]);
	close(db->stopfd[1]);
	db->stopfd[0] = db->stopfd[1] = -1;
}

static uint64_t pge_watch(cj_edb *db, const char *chan) {
	unsigned w = pge_chan_word(chan);
	pthread_mutex_lock(&db->wmu);
	pge_listener_start(db);
	uint64_t v = db->words[w];
	pthread_mutex_unlock(&db->wmu);
	return v;
}

static int pge_wait(cj_edb *db, const char *chan, uint64_t token, int64_t deadline_ms) {
	unsigned w = pge_chan_word(chan);
	int rc = CJ_OK;
	pthread_mutex_lock(&db->wmu);
	/* without a listener, other processes' commits go unseen: look again
	 * every second */
	if (db->listener_failed) {
		int64_t soon = cj__mono_ms() + 1000;
		if (deadline_ms < 0 || deadline_ms > soon) deadline_ms = soon;
	}
	while (db->words[w] == token) {
		if (deadline_ms < 0) {
			pthread_cond_wait(&db->wcond, &db->wmu);
			continue;
		}
		struct timespec ts = {(time_t)(deadline_ms / 1000),
		                      (long)(deadline_ms % 1000) * 1000000L};
		if (pthread_cond_timedwait(&db->wcond, &db->wmu, &ts) == ETIMEDOUT) {
			if (db->words[w] == token) rc = CJ_TIMEOUT;
			break;
		}
	}
	pthread_mutex_unlock(&db->wmu);
	return rc;
}

static void pge_wake(cj_edb *db, const char *chan) {
	unsigned w = pge_chan_word(chan);
	pthread_mutex_lock(&db->wmu);
	db->words[w]++;
	pthread_cond_broadcast(&db->wcond);
	pthread_mutex_unlock(&db->wmu);
}

static const char *const pge_schemes[] = {"postgresql://", "postgres://", NULL};

const struct cj_engine cj__engine_pg = {
	.name = "postgresql",
	.schemes = pge_schemes,
	.version = CJ_ENGINE_VERSION,
	.supports = CJ_ENGINE_CROSS_PROCESS_WAKE | CJ_ENGINE_NO_WATCH_KEYS,
	.open = pge_open,
	.close = pge_close,
	.begin = pge_begin,
	.commit = pge_commit,
	.abort = pge_abort,
	.commit_version = pge_version,
	.native = pge_native,
	.get = pge_get,
	.put = pge_put,
	.del = pge_del,
	.scan = pge_scan,
	.claim_first = pge_claim_first,
	.notify = pge_notify,
	.watch = pge_watch,
	.wait = pge_wait,
	.wake = pge_wake,
};
