/*
 * pg_int.h: the PostgreSQL engine's private header.
 *
 *   pg.c         the engine: open/close, transactions, data ops, notify
 *   pg_conn.c    connections: the pool, errors, statements
 *   pg_url.c     the URL and its schema= parameter
 *   pg_schema.c  creating, versioning and migrating the schema
 *   pg_listen.c  the listener thread and wake words (watch/wait/wake)
 *   pg_pipe.c    round trips: statements sent without waiting, answered
 *                with the next statement that needs an answer (libpq
 *                pipeline mode), BEGIN with the first, ROLLBACK unanswered
 *   pg_held.c    writes held back until the next statement, sent as one
 *   pg_cache.c   what this process knows of keys from its own commits
 *   pg_spec.c    reads answered from that, checked by the store with the
 *                commit (speculation)
 *
 * The design, in full:
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
 * goes to libpq; else cj_options.schema; else "couch_jobs". So is
 * deadline_ms=N (1 to PGE_DEADLINE_MAX_MS; default PGE_DEADLINE_MS).
 *
 * Deadlines: no call waits for the server longer than deadline_ms. Every
 * statement is sent without blocking (the connection is non-blocking) and
 * its answer awaited in poll() up to the deadline (cj__pg_call,
 * cj__pg_await); connecting is polled the same way. When the deadline
 * passes, the connection's socket is shut down, so that whatever libpq
 * does with it next fails at once; the call fails with CJ_STORE, the
 * transaction ends, and the connection is closed instead of pooled. A
 * server that stops answering (stopped, hung, cut off) thus costs a call
 * at most deadline_ms, on a Unix socket as over TCP. Defaults that
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
 *    read in READ COMMITTED sees the latest version of the row). Queued
 *    before it, a statement takes a transaction-scoped advisory lock on a
 *    hash of the key if the key is not there: two transactions finding one
 *    key absent (two cj_add of one new job) take turns, and the second sees
 *    the row the first inserted (its read is a later statement). A key
 *    there for the lock's statement and gone for the read is locked and
 *    read again.
 *  - scan() locks nothing; the core reads again with get() what it acts on.
 *  - claim_first() is SELECT ... ORDER BY k LIMIT 1 FOR UPDATE SKIP LOCKED:
 *    concurrent acceptors of a type each take a different pending key
 *    without waiting for one another. It returns the row's value too: a
 *    get() of the claimed key that follows (held since) answers from it,
 *    until the transaction writes that key. claim_pair() is one statement
 *    (cj_claim_pair): that claim, and the same of the derived key's row,
 *    which is then the claimed row.
 *  - prefetch() queues get()'s two statements at once (pg_pipe.c), their
 *    answers kept, and prefetch_scan() the first batch of a scan (one
 *    row): the get() of that key, or the scan of those bounds, that
 *    follows answers from them, unless the transaction wrote the key (a
 *    key in the bounds) since. Up to PGE_PF_MAX of them are kept, so that
 *    every read a call announces goes in one round trip with its first
 *    read (cj_finish: the job and its type's retention).
 *  - In the library's own transactions (speculate()), a get(), a scan of
 *    one key and their announcements of a key this process knows from its
 *    own commits (pg_cache.c) are answered from that, and the server checks
 *    the answer where the read would have run, under the same lock, in the
 *    round trip of the commit (pg_spec.c): cj_finish and cj_fail of a job
 *    this process accepted cost one round trip.
 * Waits that close a cycle end in a deadlock error (40P01), which is
 * CJ_CONFLICT: the core runs the transaction again.
 * BEGIN, put(), del_blind(), add() and the advisory locks are queued
 * (pg_pipe.c): sent without waiting, answered with the next statement that
 * needs an answer, in the same round trip. put(), del_blind() and add()
 * are held back until the next statement and go before it as one
 * statement (pg_held.c: every job call writes two keys, deletes one and
 * updates its counters). A transaction that ends without a commit sends
 * ROLLBACK without waiting for it.
 * The commit number is nextval('commit_seq'), taken by the write
 * transaction's first statement that needs an answer (pg_pipe.c): numbers
 * increase in the order transactions ask for them, not in commit order
 * (engine.h allows it; monitor.c says why the activity monitor stays
 * right). A write transaction that wrote nothing rolls back. A read
 * transaction is BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; asked
 * for its number, it reads the sequence's last value: >= every number
 * handed out before it began.
 * SQLSTATE 40001, 40P01 and 55P03 are CJ_CONFLICT, 54000 (a key too long
 * for the index) is CJ_TOO_LARGE, anything else CJ_STORE with the server's
 * message.
 *
 * Connections: a pool per store (a free list under a mutex), grown on
 * demand. A connection found broken is closed, and so are the idle ones
 * (a server restart breaks them all); the next call connects anew. Every
 * connection prepares the statements of the ops once, BEGIN, COMMIT,
 * ROLLBACK and the notification included (by the protocol, pg_conn.c):
 * the server parses none of a transaction's statements again.
 * cj_stats.statements counts the statements sent.
 *
 * Wakeups: a channel is hashed to a wake word, and a job has words of its
 * own (cj_int.h, as on the embedded engine). Each store handle runs one
 * listener thread (started by the first watch() or wait) with its own
 * connection; it sleeps in poll() on the connection and a pipe (stop, and
 * the kicks below), and bumps the in-process counter of each word it
 * receives. Each waiter sleeps on a condition variable of its own while
 * its words' counters hold its tokens, and a bump signals only the waiters
 * whose words it moved: a commit does not wake the threads that wait for
 * something else (the activity monitor, acceptors of other types). A
 * commit also bumps its words in this process at once.
 *
 * Notifications go only where something waits. PostgreSQL (15) signals
 * every backend that LISTENs on any channel of the database at every
 * notifying commit, and each then reads the queue and sends on to its
 * client: where nothing waits (a queue drained by busy processors) that
 * was most of the engine's cost besides the data. So:
 *  - the listener LISTENs "cj_<schema>" only while it holds at least one
 *    channel word, and it holds word w (a session-level shared advisory
 *    lock (PGE_WAKE_LOCK_CLASS, cj__pg_wake_key(w)) on its connection)
 *    while a thread of the handle waits in wait_any() on w, and for
 *    PGE_LINGER_MS after the last one left (a processor between two jobs
 *    keeps it; the listener sleeps with a timer only while a word
 *    lingers so: a process whose waiters stay, the activity monitor's,
 *    makes no wake-up). A wait on a word not held kicks the listener, which takes the locks and LISTENs in one statement and,
 *    once it is acknowledged, marks the words held and bumps every word;
 *  - a commit that marked words sends, right after COMMIT in the same
 *    round trip (pg.c's commit says why), as a transaction of its own,
 *      SELECT pg_notify('cj_<schema>', '<word>,<word>,...')
 *      WHERE NOT <an exclusive pg_try_advisory_xact_lock of the lock of
 *                 each channel word of the commit succeeded>
 *    (a listener of the first build, which knew the channel words alone,
 *    skips the words past them; job words come with "activity", whose lock
 *    stands for them), which the server skips when the COMMIT fails. Only
 *    when some listener holds one of its words is it sent (or when two
 *    commits try a lock at once: one more notification, harmless).
 * Why no wake-up is lost. A waiter takes its tokens (watch(), word()),
 * looks at the store, and sleeps on the tokens. Take a commit C, in any
 * process, that marked word w after the waiter's look missed it: C's data
 * committed after the look, and its notification statement N ran after
 * that. (a) If the listener held w from before the tokens were taken until
 * the sleep, its lock was held and its LISTEN in effect (both acknowledged)
 * before N ran: N's try of w's lock failed, the notification was sent and
 * committed after the LISTEN, so the listener receives it and bumps w, and
 * the waiter wakes. (b) Otherwise w was not held at some moment between
 * the tokens and the sleep (a word is marked not held before its lock is
 * given up, and held only after its lock and LISTEN were acknowledged),
 * and the wait itself finds it held or kicks: either way an acknowledged
 * take of w's lock came after the tokens, and it bumped every word: the
 * tokens are stale when the waiter sleeps, and it looks again. Its next
 * tokens are taken while w is held: (a). (The take's bump is what covers a
 * commit that ran while nothing listened; the test
 * first_wait_sees_a_commit_made_before_it_listened holds an acceptor
 * there.) Words read without a wait (the subscription notifier's job words)
 * are covered the same way: every bump of a job word comes with
 * "activity", which the notifier waits on, and a take bumps them all.
 * When the listener's connection is lost (its locks and LISTEN go with it)
 * it marks every word not held, reconnects with backoff (PGE_BACKOFF_MIN
 * to PGE_BACKOFF_MAX ms) and takes again what waits want: case (b).
 * Notifications of this process's own commits still come back to it while
 * it listens (its words were bumped at commit already).
 *
 * Schema bump procedure: raise PGE_SCHEMA_VERSION, add the SQL that turns
 * the previous version into the new one to pge_migrations, and describe it
 * in doc/postgresql.md.
 */
#ifndef CJ_PG_INT_H
#define CJ_PG_INT_H

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

#define PGE_SCHEMA_VERSION 3
#define PGE_DEFAULT_SCHEMA "couch_jobs"
#define PGE_MAX_SCHEMA 59 /* "cj_" + schema is a channel name: 63 bytes */
#define PGE_WORDS CJ_WORDS
#define PGE_POOL_IDLE 16     /* idle connections kept */
#define PGE_BACKOFF_MIN 100  /* listener reconnect delay, ms */
#define PGE_BACKOFF_MAX 2000
#define PGE_LISTEN_CONNECT_MS 15000
#define PGE_SCAN_MAX_ROWS 256
#define PGE_QUEUE_MAX 256 /* queued writes before their answers are read */
#define PGE_KEEP_MAX 16   /* queued statements whose answers are kept */
#define PGE_PF_MAX 4      /* reads announced by prefetch() and prefetch_scan() */
#define PGE_SCAN_BATCH_BYTES ((size_t)4 << 20)
#define PGE_LOCK_CLASS 0x636a /* advisory lock class of schema creation */
#define PGE_KEY_LOCK_CLASS 0x636b /* advisory lock class of absent keys */
#define PGE_WAKE_LOCK_CLASS 0x636c /* advisory lock class of wake words */
#define PGE_LINGER_MS 1000 /* a word nobody waited on this long is given up */
#define PGE_DEADLINE_MS 30000 /* default of deadline_ms= */
#define PGE_DEADLINE_MAX_MS ((int64_t)24 * 3600 * 1000)
#define PGE_CACHE_ENTRIES 4096 /* keys the cache knows at most (pg_cache.c) */
#define PGE_CACHE_BYTES ((size_t)16 << 20) /* and their bytes */
#define PGE_CACHE_VALUE_MAX ((size_t)64 << 10) /* a longer value is not kept */
#define PGE_CACHE_BUCKETS 4096
#define PGE_EXPECT_MAX 16 /* expectations in one round trip (pg_spec.c) */
/* a transaction that logged more than this speculates no more (pg_spec.c) */
#define PGE_SPEC_LOG_MAX ((size_t)64 << 10)
/* A speculating transaction's commit may be its first round trip on a
 * pooled connection that answered this recently (pg_spec.c) */
#define PGE_FRESH_MS 2000
/* What a transaction's log says of a key (pg_cache.c) */
enum { PGE_LOG_VALUE, PGE_LOG_ABSENT, PGE_LOG_UNKNOWN, PGE_LOG_ALL_UNKNOWN };

/* pg_cache.c */
struct pge_centry;
struct pge_cache {
	pthread_mutex_t mu;
	int ready;
	struct pge_centry **buckets; /* PGE_CACHE_BUCKETS chains */
	struct pge_centry *head, *tail; /* in order of use, the latest first */
	size_t n, bytes;
};

struct pge_conn {
	PGconn *pg;
	struct pge_conn *next; /* in the idle list */
	int expired; /* a call found no answer in time: the socket was shut */
	int owed; /* syncs whose answers are still to read (cj__pg_rollback) */
	int64_t answered_ms; /* when a round trip on it last succeeded (monotonic) */
};

struct cj_edb {
	/* connection parameters for PQconnectdbParams (expand_dbname) */
	const char *kw[10]; /* NULL-terminated */
	const char *val[10];
	char *uri; /* the URL without schema= and deadline_ms= */
	int64_t deadline_ms; /* the longest one call waits for the server */
	char *schema;
	char *qschema; /* "schema", quoted */
	char *chan;    /* cj_<schema> */
	int relaxed;

	char *sql_prepare, *sql_listen;
	uint32_t key_hash; /* seed of absent-key lock hashes: the schema's */

	pthread_mutex_t mu; /* guards the pool */
	struct pge_conn *idle;
	size_t nidle;

	pthread_mutex_t wmu; /* guards what follows */
	pthread_condattr_t wattr; /* the waiters' conditions: on the monotonic clock */
	struct pge_waiter *waiters; /* threads in wait_any (pg_listen.c) */
	uint64_t words[PGE_WORDS];
	int listener_started;
	int listener_failed;
	/* what the listener subscribes to (pg_listen.c): per channel word,
	 * the waiters in wait_any on it, when the last one left, and whether
	 * the listener holds its shared lock and LISTENs (acknowledged) */
	uint32_t want[CJ_CHAN_WORDS];
	int64_t idle_since[CJ_CHAN_WORDS];
	uint8_t held[CJ_CHAN_WORDS / 8];
	unsigned nheld;
	int listening; /* LISTEN was acknowledged, UNLISTEN not sent since */
	int kicked;    /* a wait found a word not held: the listener was told */
	int64_t linger_at; /* when the listener gives up the next word; -1: none */
	atomic_uint_fast64_t notes_sent, notes_received; /* cj_stats */
	pthread_t listener;
	/* the listener's connection, kept here too so that a forked child's
	 * leak check finds it reachable */
	PGconn *lconn;
	int stopfd[2];
	atomic_int stop;
	/* waits for the server's answers (cj__pg_call, a pipeline's) */
	atomic_uint_fast64_t round_trips;
	atomic_uint_fast64_t statements; /* sent (cj_stats.statements) */
	struct pge_cache cache; /* pg_cache.c */
};

struct cj_etx {
	cj_edb *db;
	struct pge_conn *c;
	int write;
	int dirty; /* something to commit */
	int failed; /* a code: taking the commit number failed */
	uint64_t version; /* 0: not taken yet */
	PGresult *res; /* of the last get */
	/* the row claim_first took last (key, value), which this transaction
	 * holds: a get of that key that follows reads it here, until a write
	 * of the key */
	PGresult *claimed;
	int claimed_space;
	/* the reads announced by prefetch() (a get: its key, and the answers
	 * of its statements cj_lock_absent and cj_get_w once they are read)
	 * and prefetch_scan() (a scan's first batch: its bounds, and the
	 * answer of cj_scan with limit 1 in row); all are sent at once, with
	 * the next statement that needs an answer */
	struct pge_pf {
		int on;   /* announced, and not used nor outdated since */
		int scan; /* a scan of [key, hi), else a get of key */
		int space;
		cj_buf key, hi;
		PGresult *lock, *row;
		/* answered from the cache (pg_spec.c): val, or the key's absence */
		int spec, absent;
		cj_buf val;
	} pf[PGE_PF_MAX];
	cj_wordset notify; /* words marked by notify() */
	/* pg_pipe.c */
	int fresh;    /* c was connected for this transaction */
	int started;  /* BEGIN was sent */
	int answered; /* a round trip completed */
	int queued;   /* statements sent whose answers were not read */
	struct {
		int idx;         /* of a queued statement */
		PGresult **dest; /* where its answer goes */
	} keep[PGE_KEEP_MAX];
	int nkeep;
	/* a write transaction's commit number (pg_pipe.c): PGE_V_* */
	int vwant;
	int vidx; /* PGE_V_ASKED: the queued statement whose last column it is */
	/* writes not sent yet (pg_held.c): they go as one statement with the
	 * next statement */
	struct pge_held {
		int nput, del, add; /* puts (0 to 2), a delete, an add */
		int put_space[2], del_space, add_space;
		cj_buf put_k[2], put_v[2], del_k;
		cj_buf add_keys, add_deltas; /* the add's arrays, in text form */
		cj_buf add_raw; /* the add's keys: each its length (size_t), its bytes */
	} held;
	/* cj_tx_native() handed the connection out: the caller may run its
	 * own statements at any time, so no write is held back from then on */
	int native_out;
	/* pg_spec.c and pg_cache.c */
	int spec;         /* speculate(): reads may be answered from the cache */
	cj_buf log;       /* what the commit teaches the cache (cj__pg_log) */
	cj_buf spec_keys; /* the keys answered from the cache (log records) */
	cj_buf specv;     /* the value a get answered from the cache last */
	int xidx[PGE_EXPECT_MAX]; /* queued statements that are expectations */
	size_t xkey[PGE_EXPECT_MAX][2]; /* and their keys' records in spec_keys */
	int nx;
	int expecting; /* the statement being queued is an expectation */
	size_t expect_key[2]; /* the record of its key (offset, length) */
	int mismatch;  /* an expectation did not hold: the commit fails */
	int committing; /* the round trip carries the COMMIT (pg_pipe.c) */
};

/* A write transaction's commit number (cj_etx.vwant): taken (version),
 * or none of a read transaction; wanted, not asked yet; to be asked by the
 * next statement sent; asked by the statement queued at vidx. */
enum { PGE_V_NONE, PGE_V_WANT, PGE_V_NEXT, PGE_V_ASKED };

/* pg.c: a space (0 jobs, 1 the caller's keys) as a statement's text
 * parameter */
extern const char *const cj__pg_space[CJ_SPACE_COUNT];
/* pg.c: the hash of k for the advisory lock of its absence, as a
 * statement's text parameter */
void cj__pg_key_hash(cj_etx *tx, int space, const void *k, size_t kl, char num[16]);

/* pg_conn.c */
/* Runs a statement (a prepared one by name, sql with n parameters, or,
 * with n < 0, sql in the simple protocol, which may hold several) and
 * returns its last result as PQexec() does, within the store's deadline:
 * NULL when none came in time (c->expired) or on no memory. */
PGresult *cj__pg_call(cj_edb *db, struct pge_conn *c, const char *name, const char *sql,
                      int n, const char *const *vals, const int *lens, const int *fmts,
                      int rfmt);
#define cj__pg_sql(db, c, sql) cj__pg_call((db), (c), NULL, (sql), -1, NULL, NULL, NULL, 0)
/* Sends what libpq holds and waits until a result can be read from c
 * without blocking: 0; or -1 when the deadline passed (c->expired) or the
 * connection failed. */
int cj__pg_await(cj_edb *db, struct pge_conn *c);
void cj__pg_close_conn(struct pge_conn *c);
int cj__pg_connect(cj_edb *db, struct pge_conn **out);
int cj__pg_exec(cj_edb *db, struct pge_conn *c, const char *sql, ExecStatusType want, const char *what, PGresult **out);
int cj__pg_fail(cj_edb *db, struct pge_conn *c, const PGresult *res, const char *what);
void cj__pg_give(cj_edb *db, struct pge_conn *c);
void cj__pg_pool_flush(cj_edb *db);
int cj__pg_prepare(cj_edb *db, struct pge_conn *c);
char *cj__pg_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cj__pg_quiet(void *arg, const char *msg);
int cj__pg_take(cj_edb *db, struct pge_conn **out, int *fresh);

/* pg_pipe.c (every statement of a transaction goes through these: the
 * first one sends its BEGIN) */
/* Sends a write (prepared statement name, or sql) without waiting for its
 * answer; CJ_OK, or the code of an earlier queued write or of the send. */
int cj__pg_queue(cj_etx *tx, const char *name, const char *sql, int n,
                 const char *const *vals, const int *lens, const int *fmts);
/* cj__pg_queue, keeping the answer: once a later statement's round trip
 * returned CJ_OK, *dest holds it (the caller clears it); else NULL. */
int cj__pg_queue_into(cj_etx *tx, const char *name, const char *sql, int n,
                      const char *const *vals, const int *lens, const int *fmts,
                      PGresult **dest);
/* Runs a statement that needs its answer, in one round trip with the
 * queued writes: CJ_OK with *res its result (to check as usual), or the
 * code of a queued write that failed (*res NULL). */
int cj__pg_run(cj_etx *tx, const char *name, const char *sql, int n,
               const char *const *vals, const int *lens, const int *fmts, int rfmt,
               PGresult **res);
/* cj__pg_queue of an expectation (pg_spec.c): its failure is told apart. */
int cj__pg_queue_expect(cj_etx *tx, const char *name, int n, const char *const *vals,
                        const int *lens, const int *fmts);
/* Takes the commit number of a write transaction (into tx->version), in
 * the round trip of the queued writes: CJ_OK or a code. */
int cj__pg_number(cj_etx *tx);

/* pg_held.c (writes held back: they go as one statement with the next) */
/* The engine's put, del_blind and add, held: CJ_OK, or as cj__pg_queue. */
int cj__pg_put(cj_etx *tx, int space, const void *k, size_t kl, const void *v, size_t vl);
int cj__pg_del_blind(cj_etx *tx, int space, const void *k, size_t kl);
int cj__pg_add(cj_etx *tx, int space, const cj_eadd *a, size_t n);
/* Queues the held writes, if any, as one statement: CJ_OK, or as
 * cj__pg_queue. */
int cj__pg_send_held(cj_etx *tx);
/* Forgets the held writes (the transaction ends without them). */
void cj__pg_drop_held(cj_etx *tx);
void cj__pg_free_held(cj_etx *tx);
/* Reads the answers of the queued writes: CJ_OK or the first failure. */
int cj__pg_flush(cj_etx *tx);
/* Ends a transaction that sent anything with ROLLBACK, without waiting for
 * the answer: the connection owes it (c->owed) to its next user. */
void cj__pg_rollback(cj_etx *tx);
/* Reads what c owes, waiting within the deadline: 0, or -1 if c failed. */
int cj__pg_settle(cj_edb *db, struct pge_conn *c);

/* pg_cache.c */
int cj__pg_cache_init(struct pge_cache *c);
void cj__pg_cache_free(struct pge_cache *c);
/* What the cache knows of k: 1 its value (copied into out), 2 its
 * absence, 0 nothing. */
int cj__pg_cache_get(struct pge_cache *c, int space, const void *k, size_t kl, cj_buf *out);
/* Appends a record (PGE_LOG_*) to a log b. */
void cj__pg_log_to(cj_buf *b, int op, int space, const void *k, size_t kl, const void *v,
                   size_t vl);
/* 1 if log names k (or every key, or is incomplete). */
int cj__pg_log_names(const cj_buf *log, int space, const void *k, size_t kl);
/* Logs, in a write transaction, what its commit would teach of k. */
void cj__pg_log(cj_etx *tx, int op, int space, const void *k, size_t kl, const void *v,
                size_t vl);
/* After tx's commit (committed 1), learns its log; when the outcome is not
 * known (committed 0), forgets every key it names instead. */
void cj__pg_cache_learn(cj_etx *tx, int committed);
/* Makes every key the records of keys name cold (pg_cache.c). */
void cj__pg_cache_chill(struct pge_cache *c, const cj_buf *keys);

/* pg_spec.c */
void cj__pg_spec_begin(cj_etx *tx);
int cj__pg_spec_settle(cj_etx *tx);
/* In a speculating write transaction, a read of k answered from the cache
 * (locking: as get() holds, else as a scan of the one key): 1 with its
 * value in val, 2 absent, the expectation queued; 0 when the cache does
 * not know k (or tx does not speculate); or a code. */
int cj__pg_spec_read(cj_etx *tx, int space, const void *k, size_t kl, int locking, cj_buf *val);
/* Whether queued statement idx, which failed with r, was an expectation
 * that did not hold: then CJ_CONFLICT (the keys answered from the cache
 * are forgotten), else 0. */
int cj__pg_spec_failed(cj_etx *tx, int idx, const PGresult *r);
/* 1 when tx may commit in its first round trip. */
int cj__pg_spec_commit_first(const cj_etx *tx);
/* 1 if [lo, hi) holds key lo alone (hi is lo and a 0 byte). */
int cj__pg_one_key(const void *lo, size_t ll, const void *hi, size_t hl);

/* pg_url.c */
int cj__pg_parse_url(cj_edb *db, const char *url, const cj_options *o);

/* pg_schema.c */
int cj__pg_build_sql(cj_edb *db);
int cj__pg_init(cj_edb *db, struct pge_conn *c);

/* pg_listen.c */
/* The second key of the advisory lock of channel word w (with class
 * PGE_WAKE_LOCK_CLASS): the schema's hash and w, so that stores sharing a
 * database rarely share one (and only notify more when they do). */
static inline int32_t cj__pg_wake_key(const cj_edb *db, unsigned w) {
	return (int32_t)(db->key_hash * (uint32_t)CJ_CHAN_WORDS + w);
}
void cj__pg_bump_words(cj_edb *db, const cj_wordset *s);
void cj__pg_bump(cj_edb *db, unsigned w);
uint64_t cj__pg_word(cj_edb *db, unsigned w);
void cj__pg_listener_stop(cj_edb *db);
int cj__pg_wait(cj_edb *db, const char *chan, uint64_t token, int64_t deadline_ms);
int cj__pg_wait_any(cj_edb *db, const char *const *chans, const uint64_t *tokens, size_t n,
                    int64_t deadline_ms);
void cj__pg_wake(cj_edb *db, const char *chan);
uint64_t cj__pg_watch(cj_edb *db, const char *chan);

#endif
