/*
 * cj_int.h: the library's one private header, and its table of contents.
 *
 *   error.c    codes, cj_strerror, the thread-local detail (cj__fail)
 *   alloc.c    allocation wrappers, cj_free
 *   clock.c    monotonic and wall clocks
 *   chan.c     channel names and wake words
 *   tuple.c    FoundationDB tuple encoding (tuple.h)
 *   keys.c     the RFC 007 key layout and value encodings
 *   json.c     validation of job data
 *   check.c    argument checks shared by every call
 *   uuid.c     job locks (random UUIDs; pooled randomness)
 *   db.c       cj_open / cj_close, options
 *   tx.c       transactions, cj_transact, the caller's own keys
 *   types.c    type timeouts
 *   add.c      cj_add, cj_remove, and the shared enqueue step
 *   get.c      reading jobs: state, data, info, listing
 *   accept.c   cj_accept
 *   process.c  cj_update, cj_finish, cj_resubmit, job handles
 *   monitor.c  the activity monitor thread
 *   sub.c      subscriptions, cj_wait, the notifier thread
 *   engine/    storage engines (engine.h)
 *   os/        the operating system layer (os.h)
 */
#ifndef CJ_INT_H
#define CJ_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "couchjobs.h"
#include "engine/engine.h"
#include "tuple.h"

/* ---- error.c ------------------------------------------------------------ */

/* Records a one-line detail for cj_last_error() and returns rc. */
int cj__fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clears the detail (start of a public call that may fail). */
void cj__clear_error(void);

/* ---- alloc.c ------------------------------------------------------------ */

void *cj__malloc(size_t n);
void *cj__calloc(size_t n, size_t size);
void *cj__realloc(void *p, size_t n);
char *cj__strdup(const char *s);
char *cj__strndup(const char *s, size_t n);

/* ---- clock.c ------------------------------------------------------------ */

int64_t cj__mono_ms(void);  /* CLOCK_MONOTONIC, milliseconds */
int64_t cj__epoch_ms(void); /* CLOCK_REALTIME, milliseconds */

/* ---- uuid.c ------------------------------------------------------------- */

#define CJ_LOCK_STRLEN 36
/* len random bytes from the kernel's generator (pooled per thread, safe
 * across fork); CJ_STORE if it fails. */
int cj__random(void *out, size_t len);
int cj__uuid_new(uint8_t out[CJ_UUID_LEN]);
void cj__uuid_format(const uint8_t u[CJ_UUID_LEN], char out[CJ_LOCK_STRLEN + 1]);
int cj__uuid_parse(const char *s, uint8_t out[CJ_UUID_LEN]); /* 0 or -1 */

/* ---- check.c ------------------------------------------------------------ */

int cj__check_type(const char *type);
int cj__check_id(const char *id);
/* Validates data (NULL allowed when allow_null) against db's limit; sets
 * *len to its length ("{}" when NULL). */
int cj__check_data(const cj_db *db, const char **data, size_t *len, int allow_null);

/* ---- json.c ------------------------------------------------------------- */

/* CJ_OK if s[0..n) is exactly one JSON object, else CJ_JSON with a detail. */
int cj__json_check_object(const char *s, size_t n);

/* ---- keys.c: the RFC 007 data model --------------------------------------
 *
 * Every key of the jobs space is a tuple starting with "couch_jobs":
 *   ("couch_jobs", "data", Type, JobId)
 *       = (Sequence, JobLock, ScheduledTime, Resubmit, JobData)
 *       Sequence: versionstamp of the last accept/update while running,
 *                 else null; JobLock: UUID while running, else null;
 *       ScheduledTime: int; Resubmit: bool; JobData: bytes (JSON text)
 *   ("couch_jobs", "pending", Type, ScheduledTime, JobId) = ""
 *   ("couch_jobs", "watches_pending", Type)  = (versionstamp)
 *   ("couch_jobs", "watches_activity", Type) = (versionstamp)
 *   ("couch_jobs", "activity_timeout", Type) = (seconds)
 *   ("couch_jobs", "activity", Type, Sequence) = (JobId)
 * plus the store's own:
 *   ("couch_jobs", "meta", "format") = (format version)
 *
 * A job is running iff its data value has a lock (and then it has an
 * activity entry under its Sequence); pending iff it has a pending entry;
 * finished otherwise.
 */

#define CJ_FORMAT_VERSION 1

void cj__key_data(cj_buf *b, const char *type, const char *id);
void cj__key_data_prefix(cj_buf *b, const char *type /* NULL: all */);
void cj__key_pending(cj_buf *b, const char *type, int64_t sched, const char *id);
void cj__key_pending_prefix(cj_buf *b, const char *type);
void cj__key_watch_pending(cj_buf *b, const char *type);
void cj__key_watch_activity(cj_buf *b, const char *type);
void cj__key_timeout(cj_buf *b, const char *type);
void cj__key_timeout_prefix(cj_buf *b);
void cj__key_activity(cj_buf *b, const char *type, const uint8_t vs[CJ_VS_LEN]);
void cj__key_activity_prefix(cj_buf *b, const char *type);
void cj__key_meta(cj_buf *b, const char *name);

/* A decoded data value. data points into the buffer it was decoded from. */
typedef struct cj_jv {
	int has_seq;
	uint8_t seq[CJ_VS_LEN];
	int has_lock;
	uint8_t lock[CJ_UUID_LEN];
	int64_t sched;
	int resubmit;
	cj_tup_item data_item;
	const uint8_t *data_enc; /* the encoded data element */
	size_t data_enclen;
} cj_jv;

/* Encodes jv with data, or, when data is NULL, with jv's own encoded data
 * element (so kept data is not decoded and re-encoded). */
void cj__jv_encode(cj_buf *b, const cj_jv *jv, const char *data, size_t dlen);
int cj__jv_decode(const uint8_t *v, size_t vl, cj_jv *jv); /* CJ_OK / CJ_STORE */
/* The job data of jv as a new string (cj_free). */
char *cj__jv_data(const cj_jv *jv);

/* Decodes a key (type, ...) after the "couch_jobs" and subspace elements:
 * skips `skip` elements, then copies the next string element into a new
 * string. NULL on malformed keys or no memory. */
char *cj__key_string_at(const uint8_t *k, size_t kl, int index);

/* Decodes a one-element tuple value holding an int / a versionstamp. */
int cj__val_int(const uint8_t *v, size_t vl, int64_t *out);
int cj__val_vs(const uint8_t *v, size_t vl, uint8_t out[CJ_VS_LEN]);

/* ---- os.h: see os/os.h ---------------------------------------------------- */

/* ---- db.c --------------------------------------------------------------- */

typedef struct cj_monitor cj_monitor;
typedef struct cj_notifier cj_notifier;

struct cj_db {
	const struct cj_engine *eng;
	cj_edb *edb;
	cj_options opts;
	size_t max_data;

	pthread_mutex_t mu;  /* guards what follows and the notifier's state */
	pthread_cond_t cond; /* signalled when an event is queued */
	cj_monitor *monitor;
	cj_notifier *notifier;
};

/* ---- chan.c: channels (engine.h) the core notifies and waits on ------------ */

#define CJ_CHAN_TYPES "types"       /* a type timeout was set or cleared */
#define CJ_CHAN_ACTIVITY "activity" /* any job changed state or data */
/* pending channel of a type: "p:" + type */
void cj__chan_pending(char *out, size_t cap, const char *type);
#define CJ_CHAN_MAX (CJ_MAX_TYPE + 3)

/* Engines map channels to CJ_CHAN_WORDS wake words (word 0 unused); a
 * transaction collects the words it marked in a cj_wordset, each once. */
#define CJ_CHAN_WORDS 1024
unsigned cj__chan_word(const char *chan); /* 1 .. CJ_CHAN_WORDS - 1 */
typedef struct cj_wordset {
	uint8_t bits[CJ_CHAN_WORDS / 8];
	uint16_t list[CJ_CHAN_WORDS]; /* the marked words, in marking order */
	unsigned n;
} cj_wordset;
void cj__wordset_add(cj_wordset *s, unsigned word);

/* ---- tx.c --------------------------------------------------------------- */

struct cj_tx {
	cj_db *db;
	cj_etx *etx;
	int write;
	int halted;        /* an update/finish said CJ_HALT: cannot commit */
	uint16_t vs_order; /* next order within this commit's versionstamps */
	struct cj_tx *tls_next;
	cj_buf kbuf; /* scratch for keys */
	cj_buf vbuf; /* scratch for values */
};

/* Runs fn in tx if given, else in a transaction of its own (write or
 * read-only), committed and retried on CJ_CONFLICT. A non-zero return of fn
 * aborts an own transaction; with a caller's tx it is just returned (and
 * CJ_HALT marks the tx halted). */
int cj__run(cj_db *db, cj_tx *tx, int write, int (*fn)(cj_tx *tx, void *arg),
            void *arg);

/* A fresh versionstamp of tx's commit (write transactions only). */
void cj__tx_vs(cj_tx *tx, uint8_t out[CJ_VS_LEN]);

/* Engine ops on the jobs space, through the tx's scratch key buffer. */
int cj__get(cj_tx *tx, const cj_buf *k, const uint8_t **v, size_t *vl);
int cj__put(cj_tx *tx, const cj_buf *k, const cj_buf *v);
int cj__del(cj_tx *tx, const cj_buf *k);
/* Deletes k whether or not it is there (engines may defer it). */
int cj__del_blind(cj_tx *tx, const cj_buf *k);
int cj__scan_prefix(cj_tx *tx, const cj_buf *prefix, cj_scan_fn fn, void *arg);
int cj__notify(cj_tx *tx, const char *chan);
/* Marks a job of type changed: bumps watches_activity, notifies watchers. */
int cj__touch_activity(cj_tx *tx, const char *type, const uint8_t vs[CJ_VS_LEN]);
/* Marks new pending work of type: bumps watches_pending, notifies. */
int cj__touch_pending(cj_tx *tx, const char *type, const uint8_t vs[CJ_VS_LEN]);

/* 1 if this thread has an open transaction on db. */
int cj__tx_held(const cj_db *db);

/* ---- types.c ------------------------------------------------------------ */

/* CJ_OK with the timeout, CJ_NO_TYPE_TIMEOUT if none, or an engine code. */
int cj__type_timeout_tx(cj_tx *tx, const char *type, int64_t *seconds);

/* ---- add.c -------------------------------------------------------------- */

/* Reads the job's data value into copy and decodes it into jv (which
 * points into copy). CJ_NOT_FOUND if missing. */
int cj__job_read(cj_tx *tx, const char *type, const char *id, cj_buf *copy,
                 cj_jv *jv);
/* Writes the job's data value: jv's fields with data (NULL: jv's data). */
int cj__job_write(cj_tx *tx, const char *type, const char *id, const cj_jv *jv,
                  const char *data, size_t dlen);
/* Makes the job pending at sched with data (NULL: old's data): writes its
 * data value and pending entry and wakes acceptors. The job must have no
 * pending and no activity entry when called. */
int cj__job_enqueue(cj_tx *tx, const char *type, const char *id, int64_t sched,
                    const cj_jv *old, const char *data, size_t dlen);
/* Deletes the job's pending or activity entry, whichever it has. */
int cj__job_unindex(cj_tx *tx, const char *type, const char *id, const cj_jv *jv);
/* The state of a job from its data value (one more read for pending). */
int cj__job_state(cj_tx *tx, const char *type, const char *id, const cj_jv *jv,
                  cj_state *state);

/* ---- process.c ---------------------------------------------------------- */

struct cj_job {
	char *type;
	char *id;
	uint8_t lock[CJ_UUID_LEN];
	char lock_str[CJ_LOCK_STRLEN + 1];
	int resubmit;
};

/* ---- monitor.c ---------------------------------------------------------- */

int cj__monitor_start(cj_db *db);
void cj__monitor_stop(cj_db *db);
/* Re-enqueues running jobs of type whose last activity has a commit
 * version <= max_version. Returns the number re-enqueued, or a code. */
int cj__reenqueue_stale(cj_db *db, const char *type, uint64_t max_version);

/* ---- sub.c -------------------------------------------------------------- */

void cj__notifier_stop(cj_db *db);

#endif
