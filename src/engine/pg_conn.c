/* The PostgreSQL engine's connections: the pool, errors, statements. */
#include "engine/pg_int.h"

/* ---- small helpers -------------------------------------------------------- */

/* A libpq message on one line: newlines and tabs become spaces, and the
 * ends are trimmed; the URL's secrets, which libpq may quote, are hidden. */
static void pge_line(const cj_edb *db, const char *msg, char *out, size_t cap) {
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
	cj__url_scrub(db->uri, out, cap);
}

char *cj__pg_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *cj__pg_printf(const char *fmt, ...) {
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

void cj__pg_quiet(void *arg, const char *msg) {
	(void)arg, (void)msg; /* NOTICEs (e.g. "already exists, skipping") */
}

void cj__pg_close_conn(struct pge_conn *c) {
	if (!c) return;
	PQfinish(c->pg);
	cj_free(c);
}

/* Closes every idle connection (after one was found broken). */
void cj__pg_pool_flush(cj_edb *db) {
	pthread_mutex_lock(&db->mu);
	struct pge_conn *c = db->idle;
	db->idle = NULL;
	db->nidle = 0;
	pthread_mutex_unlock(&db->mu);
	while (c) {
		struct pge_conn *next = c->next;
		cj__pg_close_conn(c);
		c = next;
	}
}

/* The code and detail of a failed statement on c (res may be NULL). */
int cj__pg_fail(cj_edb *db, struct pge_conn *c, const PGresult *res,
                    const char *what) {
	char line[512];
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorMessage(res) : "";
	if (!msg || !*msg) msg = PQerrorMessage(c->pg);
	pge_line(db, msg, line, sizeof line);
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
		cj__pg_pool_flush(db);
		return cj__fail(CJ_STORE, "postgresql %s: connection lost: %s", what, line);
	}
	return cj__fail(rc, "postgresql %s: %s", what, line);
}

/* Runs sql (no parameters) on c and checks its status. */
int cj__pg_exec(cj_edb *db, struct pge_conn *c, const char *sql,
                    ExecStatusType want, const char *what, PGresult **out) {
	PGresult *r = PQexec(c->pg, sql);
	if (!r || PQresultStatus(r) != want) {
		int rc = cj__pg_fail(db, c, r, what);
		PQclear(r);
		return rc;
	}
	if (out) *out = r;
	else PQclear(r);
	return CJ_OK;
}

/* ---- connections ---------------------------------------------------------- */

int cj__pg_connect(cj_edb *db, struct pge_conn **out) {
	*out = NULL;
	struct pge_conn *c = cj__calloc(1, sizeof *c);
	if (!c) return cj__fail(CJ_NOMEM, "out of memory");
	c->pg = PQconnectdbParams(db->kw, db->val, 1);
	if (!c->pg) {
		cj_free(c);
		return cj__fail(CJ_NOMEM, "out of memory");
	}
	if (PQstatus(c->pg) != CONNECTION_OK) {
		char line[512];
		pge_line(db, PQerrorMessage(c->pg), line, sizeof line);
		cj__pg_close_conn(c);
		return cj__fail(CJ_STORE, "postgresql connect: %s", line);
	}
	PQsetNoticeProcessor(c->pg, cj__pg_quiet, NULL);
	*out = c;
	return CJ_OK;
}

/* Prepares the statements of the ops (and the session settings) on a
 * connection of a store whose schema exists. */
int cj__pg_prepare(cj_edb *db, struct pge_conn *c) {
	return cj__pg_exec(db, c, db->sql_prepare, PGRES_COMMAND_OK, "prepare", NULL);
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
int cj__pg_take(cj_edb *db, struct pge_conn **out, int *fresh) {
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
		cj__pg_close_conn(c);
	}
	struct pge_conn *c;
	int rc = cj__pg_connect(db, &c);
	if (rc) return rc;
	if ((rc = cj__pg_prepare(db, c))) {
		cj__pg_close_conn(c);
		return rc;
	}
	*out = c;
	*fresh = 1;
	return CJ_OK;
}

/* Returns a connection to the pool, or closes it if it is not idle and
 * healthy. */
void cj__pg_give(cj_edb *db, struct pge_conn *c) {
	if (!c) return;
	int piped = 0;
#ifdef LIBPQ_HAS_PIPELINING
	piped = PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF; /* answers left unread */
#endif
	if (piped || PQstatus(c->pg) != CONNECTION_OK ||
	    PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		cj__pg_close_conn(c);
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
	cj__pg_close_conn(c);
}
