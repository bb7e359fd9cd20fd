/*
 * cj_int.h: the library's one private header, and its table of contents.
 *
 *   error.c    codes, cj_strerror, the thread-local detail (cj__fail)
 *   alloc.c    allocation wrappers, cj_free
 *   fault.c    fault injection (CJ_FAULTS builds only; engine/faulty.c)
 *   clock.c    monotonic and wall clocks
 *   chan.c     channel names, wake words, and waiting on channels
 *   tuple.c    FoundationDB tuple encoding (tuple.h)
 *   keys.c     the RFC 007 key layout and value encodings: building and
 *              parsing every key (no other file knows a key's positions)
 *   tz.c       time zones from the tz database (TZif files), civil dates
 *   cron.c     cron expressions and their next ticks
 *   json.c     validation of job data
 *   check.c    argument checks shared by every call
 *   url.c      store URLs shown without their secrets
 *   uuid.c     job locks (random UUIDs; pooled randomness)
 *   db.c       cj_open / cj_close, options
 *   tx.c       transactions, cj_transact, the caller's own keys, and the
 *              engine's data ops (chan.c has its wake ops): the core calls
 *              the engine nowhere else but db.c's open and close
 *   group.c    group commit: own write transactions of several threads
 *              combined into one commit
 *   combine.c  group commit across processes: calls described as data,
 *              run by whichever process leads, through shared memory
 *   types.c    type timeouts
 *   job.c      the job record: loading, writing, enqueueing, indexes
 *   add.c      cj_add, cj_remove
 *   get.c      reading jobs: state, data, info, listing
 *   accept.c   cj_accept
 *   process.c  cj_update, cj_finish, cj_fail, cj_resubmit, job handles
 *   policy.c   retry policies (a type's, a job's) and their backoff
 *   fail.c     attempts that fail or are lost; dead jobs and redrive
 *   limits.c   per-type concurrency and rate limits, checked by accepts
 *   monitor.c  the activity monitor thread
 *   counts.c   the counts of jobs per type and state (cj_get_type_counts)
 *   retention.c  retention of finished and dead jobs: their index, the
 *              types' limits, pruning (cj_prune, and the monitor's)
 *   schedule.c schedules (periodic jobs) and the scheduler the monitor runs
 *   sub.c      subscriptions (lease subscriptions, their descriptors),
 *              cj_wait, the notifier thread
 *   lease.c    cj_job_wait_lost, the reasons a job is lost
 *   cancel.c   cancellations of waits (cj_cancel_*)
 *   changes.c  waiting for a change of any job (cj_changes_*)
 *   engine/    storage engines (engine.h)
 *   os/        the operating system layer (os.h)
 */
#ifndef CJ_INT_H
#define CJ_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "couchjobs.h"
#include "engine/engine.h"
#include "tuple.h"

/* ---- error.c ------------------------------------------------------------ */

/* The longest detail kept, with its NUL. */
#define CJ_ERROR_MAX 512
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

/* ---- fault.c: fault injection (CJ_FAULTS builds only) ----------------------
 *
 * A switch makes the nth allocation (cj__malloc and friends) or the nth
 * operation of the faulty engine (URL "faulty:" + a real store's URL) from
 * now fail: that one only, or with persistent every one from it on. n = 0
 * disarms. The switches are process-wide, shared by every thread. */

enum cj_fault_kind {
	CJ_FAULT_IO = 1,   /* the operation fails with CJ_STORE, doing nothing */
	CJ_FAULT_CONFLICT, /* it fails with CJ_CONFLICT, doing nothing (inside
	                      transactions only) */
	CJ_FAULT_LOST      /* the connection is lost: CJ_STORE, and so every later
	                      operation of the transaction; a commit lands but
	                      reports CJ_STORE */
};

void cj__fault_alloc(long n, int persistent);
void cj__fault_engine(long n, int kind, int persistent);
/* Events failed since the switch was armed. */
long cj__fault_alloc_hits(void);
long cj__fault_engine_hits(void);
/* For alloc.c: counts an allocation; 1 when it must fail. */
int cj__fault_alloc_due(void);
/* For engine/faulty.c: counts an operation (in_tx: inside a transaction);
 * 0, or the cj_fault_kind it must fail with. */
int cj__fault_engine_due(int in_tx);

/* Hold points: places in the library where a test can stop a process
 * deterministically (to kill it there). Armed, a point writes one byte to
 * notify_fd when reached, then, once, reads one byte from gate_fd (blocking;
 * gate_fd -1: it goes on at once). Each arming holds once; 0 .. CJ_HOLDS-1. */
enum cj_hold_point {
	CJ_HOLD_FLUSH_CHECK, /* lmdb.c: a durable commit, before it looks at the
	                        shared flush words */
	CJ_HOLD_FLUSH_CLAIM, /* lmdb.c: it found no flush covering it, before it
	                        claims the flush */
	CJ_HOLD_FLUSH_WAIT,  /* lmdb.c: before it waits for another's flush */
	CJ_HOLD_FLUSH_SYNC,  /* lmdb.c: the flush leader, before it flushes */
	CJ_HOLD_COMBINE_POSTED, /* combine.c: a call posted for another leader */
	CJ_HOLD_COMBINE_LEAD,   /* combine.c: a leader, before it opens its
	                           transaction and takes the calls posted */
	CJ_HOLD_COMBINE_RAN,    /* combine.c: a leader ran its batch, before it
	                           hands the lead on */
	CJ_HOLD_COMBINE_HAND_ON, /* combine.c: a leader handing the lead on, its
	                            lock held, between the slot's and the
	                            leader's words */
	CJ_HOLD_COMBINE_CHECK,  /* combine.c: a poster whose leader died, before
	                           it reads its receipt */
	CJ_HOLD_ACCEPT_SLEEP, /* accept.c: its look found nothing, before it
	                         sleeps on the tokens it took before the look */
	CJ_HOLD_PRUNE_COUNT, /* retention.c: a prune batch scanned the oldest
	                        entries, before it reads the count */
	CJ_HOLD_LOG_WRITTEN, /* lmdb.c: a commit's log record written, the log's
	                        gate held, before mdb_txn_commit */
	CJ_HOLD_SPILL_GUARDED, /* lmdb.c: a large transaction's spill guard
	                          holds the log's gate, the pin checked, before
	                          the change that may spill */
	CJ_HOLD_LOG_COMMITTED, /* lmdb.c: that commit done, the gate still held,
	                          before its record is counted (LOG_END) */
	CJ_HOLDS
};
void cj__fault_hold(int point, int notify_fd, int gate_fd);
/* The embedded engine's spill guard (lmdb.c) in this process: its runs,
 * and the checkpoints it made (the pin was not live). */
void cj__lme_spill_counts(long *guards, long *ckpts);
#ifdef CJ_FAULT_INJECTION
void cj__fault_hold_here(int point);
#else
#define cj__fault_hold_here(point) ((void)0)
#endif

/* ---- clock.c ------------------------------------------------------------ */

int64_t cj__mono_ms(void);  /* CLOCK_MONOTONIC, milliseconds */
int64_t cj__mono_ns(void);  /* CLOCK_MONOTONIC, nanoseconds */
int64_t cj__epoch_ms(void); /* CLOCK_REALTIME, milliseconds */
/* a + b and a * b, clamped to [INT64_MIN, INT64_MAX] instead of wrapping:
 * every time computation goes through these. */
int64_t cj__add_sat(int64_t a, int64_t b);
int64_t cj__mul_sat(int64_t a, int64_t b);
/* The monotonic deadline timeout_ms from now; -1 (none) when negative. */
int64_t cj__deadline_ms(int64_t timeout_ms);
/* The longest one sleep lasts: a wait with a later deadline (or none)
 * wakes after this and looks again, so that no clock arithmetic of the
 * kernel or the C library ever sees a time near overflow. */
#define CJ_SLEEP_MAX_MS ((int64_t)3600 * 1000)
/* Background threads retry a failing store after a delay that doubles
 * from CJ_RETRY_MIN_MS up to CJ_RETRY_MAX_MS, so that a store that stays
 * down costs (almost) no CPU. cj__backoff() returns the monotonic time of
 * the next try and doubles *delay_ms (start it at CJ_RETRY_MIN_MS). */
#define CJ_RETRY_MIN_MS 250
#define CJ_RETRY_MAX_MS 30000
int64_t cj__backoff(int64_t *delay_ms);
/* deadline_ms brought within CJ_SLEEP_MAX_MS from now; -1 (none) stays. */
int64_t cj__sleep_until(int64_t deadline_ms);

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
/* A scheduled time: 0 to CJ_MAX_SCHED_TIME, or also CJ_SCHED_KEEP. */
int cj__check_sched(int64_t t, int allow_keep);
/* Validates data (NULL allowed when allow_null) against db's limit; sets
 * *len to its length ("{}" when NULL). */
int cj__check_data(const cj_db *db, const char **data, size_t *len, int allow_null);
/* Validates an error of cj_fail (NULL: "{}"), one JSON object of at most
 * CJ_MAX_ERROR_SIZE bytes; sets *len. */
int cj__check_error(const char **error, size_t *len);

/* A schedule's name: 1 to CJ_MAX_SCHEDULE_NAME bytes of valid UTF-8. */
int cj__check_schedule_name(const char *name);

/* ---- url.c -------------------------------------------------------------- */

/* Replaces in msg (cap bytes, NUL-terminated) every secret of url (the
 * password of its userinfo, password=... parameters; as written and
 * percent-decoded) with "***": for messages of libraries that saw url. */
void cj__url_scrub(const char *url, char *msg, size_t cap);

/* ---- tz.c: time zones ------------------------------------------------------
 *
 * A loaded zone is immutable and thread-safe; the process's TZ is never
 * read or set. Zones come from TZif files under /usr/share/zoneinfo (links
 * followed only while they stay inside it); "UTC" (or NULL) needs none. */

typedef struct cj_tz cj_tz;
/* CJ_OK; CJ_INVALID (a bad name, no such zone, a damaged or leap-second
 * file); CJ_NOMEM; CJ_STORE. */
int cj__tz_load(const char *zone, cj_tz **out);
/* The zone from the TZif data b[0..len) (name for messages). */
int cj__tz_parse(const char *name, const uint8_t *b, size_t len, cj_tz **out);
void cj__tz_free(cj_tz *z);
/* The UT offset (seconds east) in effect at t. */
int32_t cj__tz_offset(const cj_tz *z, int64_t t);
/* The first instant whose local time is local (seconds since the epoch of
 * the civil calendar); for a local time that a change skips (a gap), the
 * instant of the change. */
int64_t cj__tz_from_local(const cj_tz *z, int64_t local);

/* Civil dates, proleptic Gregorian: days since 1970-01-01. */
int64_t cj__days_from_civil(int64_t y, int m, int d);
void cj__civil_from_days(int64_t days, int64_t *y, int *m, int *d);
int cj__weekday(int64_t days); /* 0 Sunday .. 6 Saturday */
int cj__is_leap(int64_t y);
int cj__month_days(int64_t y, int m);

/* ---- cron.c --------------------------------------------------------------- */

typedef struct cj_cron {
	uint64_t min;  /* bit n: minute n */
	uint32_t hour; /* bit n: hour n */
	uint32_t dom;  /* bit n: day n of the month (1..31) */
	uint16_t mon;  /* bit n: month n (1..12) */
	uint8_t dow;   /* bit n: weekday n (0 Sunday) */
	int dom_any, dow_any; /* the day field starts with "*" */
} cj_cron;

/* CJ_OK or CJ_INVALID naming the bad field. */
int cj__cron_parse(const char *expr, cj_cron *c);
/* The first tick of c in tz strictly after after: CJ_OK, or CJ_NOT_FOUND
 * (none up to CJ_MAX_SCHED_TIME). */
int cj__cron_next(const cj_cron *c, const cj_tz *tz, int64_t after, int64_t *next);

/* ---- json.c ------------------------------------------------------------- */

/* CJ_OK if s[0..n) is exactly one JSON object, else CJ_JSON with a detail. */
int cj__json_check_object(const char *s, size_t n);

/* ---- keys.c: the RFC 007 data model --------------------------------------
 *
 * Every key of the jobs space is a tuple starting with "couch_jobs":
 *   ("couch_jobs", "data", Type, JobId)
 *       = (Sequence, JobLock, ScheduledTime, Resubmit, JobData,
 *          Attempt, Fence, Dead, AddedMs, FinishedMs, Policy, Error...)
 *       Sequence: versionstamp of the last accept/update while running,
 *                 else null; JobLock: UUID while running, else null;
 *       ScheduledTime: int; Resubmit: bool; JobData: bytes (JSON text);
 *       Attempt, Fence: ints (cj_job_info); Dead: bool; AddedMs,
 *       FinishedMs: ints; Policy: null or bytes (a policy value);
 *       Error: 0 to CJ_MAX_ERRORS bytes, each one JSON object, oldest first.
 *       A format-1 value ends after JobData (see cj__jv_decode).
 *   ("couch_jobs", "pending", Type, ScheduledTime, JobId) = ""
 *   ("couch_jobs", "watches_pending", Type)  = (versionstamp)
 *   ("couch_jobs", "watches_activity", Type) = (versionstamp)
 *   ("couch_jobs", "activity_timeout", Type) = (seconds)
 *   ("couch_jobs", "activity", Type, Sequence) = (JobId)
 *   ("couch_jobs", "retry_policy", Type) = policy value
 *   ("couch_jobs", "finished", Type, Dead, FinishedMs, JobId) = ""
 *       one per finished (Dead 0) or dead (Dead 1) job, at its FinishedMs
 *       (formats 3 to 5 kept their number under ("finished_count", Type,
 *       Dead); the counters below count them)
 *   ("couch_jobs", "retention", Type) = (KeepMs, KeepMax, DeadKeepMs,
 *       DeadKeepMax), ints, CJ_KEEP_ALL (-1) for no limit
 *   ("couch_jobs", "type_limits", Type)
 *       = (MaxRunning, Rate, RatePeriodMs, Credit, RefillMs)
 *       Credit: the rate's token bucket, Rate * RatePeriodMs when full, one
 *       token per RatePeriodMs; RefillMs: wall clock of its last refill
 * where a policy value is (MaxAttempts, BackoffMin, BackoffMax, Multiplier,
 * Jitter), all ints; plus the store's own:
 *   ("couch_jobs", "meta", "format") = (format version)
 * and, for the counts (counts.c):
 *   ("couch_jobs", "watches_counts", Type, Kind, Shard) = 8 bytes, a
 *       big-endian int64 (engine.h's counters): the jobs of Type of that
 *       kind (enum cj_count_kind) whose id hashes to Shard
 *       (cj__count_shard); absent when none was ever counted, and then 0;
 *       named to sort beside the watch keys, which the same commits write
 *       (format 4 kept them under "counts")
 *
 * A job is running iff its data value has a lock (and then it has an
 * activity entry under its Sequence); dead iff Dead; pending iff it has a
 * pending entry; finished otherwise. A job is finished or dead iff it has
 * no lock and a FinishedMs other than 0, and then it has its finished entry
 * (format 3).
 */

#define CJ_FORMAT_VERSION 6

/* ("couch_jobs"): what every key of the jobs space starts with. */
void cj__key_root(cj_buf *b);
void cj__key_data(cj_buf *b, const char *type, const char *id);
void cj__key_data_prefix(cj_buf *b, const char *type /* NULL: all */);
void cj__key_pending(cj_buf *b, const char *type, int64_t sched, const char *id);
void cj__key_pending_prefix(cj_buf *b, const char *type);
/* ("couch_jobs", "pending", type, sched): the pending keys at sched. */
void cj__key_pending_at(cj_buf *b, const char *type, int64_t sched);
void cj__key_watch_pending(cj_buf *b, const char *type);
void cj__key_watch_activity(cj_buf *b, const char *type);
void cj__key_timeout(cj_buf *b, const char *type);
void cj__key_timeout_prefix(cj_buf *b);
void cj__key_activity(cj_buf *b, const char *type, const uint8_t vs[CJ_VS_LEN]);
void cj__key_activity_prefix(cj_buf *b, const char *type);
void cj__key_meta(cj_buf *b, const char *name);
void cj__key_policy(cj_buf *b, const char *type);

/* Retention (retention.c): the finished index, its counts, the limits. */
void cj__key_finished(cj_buf *b, const char *type, int dead, int64_t finished_ms,
                      const char *id);
void cj__key_finished_prefix(cj_buf *b, const char *type, int dead);
void cj__key_finished_count(cj_buf *b, const char *type, int dead);
void cj__key_finished_count_prefix(cj_buf *b);
void cj__key_retention(cj_buf *b, const char *type);
void cj__key_retention_prefix(cj_buf *b);
/* A retention value: encode into b (reset first) / decode, checking it
 * (CJ_STORE "corrupt retention"); the check gives CJ_INVALID naming the
 * field. */
void cj__retention_encode(cj_buf *b, const cj_retention *r);
int cj__retention_decode(const uint8_t *v, size_t vl, cj_retention *r);
int cj__retention_check(const cj_retention *r);

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
	int v1;          /* decoded from a format-1 value */
	int64_t attempt;
	int64_t fence;
	int dead;
	int64_t added_ms;
	int64_t finished_ms;
	int has_policy;
	cj_retry_policy policy;
	int nerr;        /* errors kept: their encoded elements, oldest first */
	const uint8_t *err_enc[CJ_MAX_ERRORS];
	size_t err_enclen[CJ_MAX_ERRORS];
	const char *new_err; /* encoding: appended after them (the oldest is
	                        dropped when CJ_MAX_ERRORS are kept), if set */
	size_t new_errlen;
} cj_jv;

/* Encodes jv (format 2) with data, or, when data is NULL, with jv's own
 * encoded data element (so kept data is not decoded and re-encoded). */
void cj__jv_encode(cj_buf *b, const cj_jv *jv, const char *data, size_t dlen);
/* The longest error entry kept: the processor's error and its wrapping. */
#define CJ_ERR_ENTRY_MAX (CJ_MAX_ERROR_SIZE + 128)
/* CJ_OK / CJ_STORE. A format-1 value (ending after JobData) decodes too,
 * with v1 set and the later fields zero: a process of the previous build
 * may still write them while a store is upgraded. */
int cj__jv_decode(const uint8_t *v, size_t vl, cj_jv *jv);
/* The job's errors as a JSON array text in *out (cj_free). */
int cj__jv_errors(const cj_jv *jv, char **out);
/* A policy value: encode into b (appending) / decode, checking ranges
 * (CJ_STORE "corrupt retry policy"). */
void cj__policy_encode(cj_buf *b, const cj_retry_policy *p);
int cj__policy_decode(const uint8_t *v, size_t vl, cj_retry_policy *p);
/* CJ_OK or CJ_INVALID naming the field out of range. */
int cj__policy_check(const cj_retry_policy *p);
/* A type's limits value: the limits and the rate's bucket (limits.c). */
typedef struct cj_lim {
	cj_type_limits l;
	int64_t credit;
	int64_t refill_ms;
} cj_lim;
void cj__key_limits(cj_buf *b, const char *type);
/* Encode into b (appending) / decode, checking ranges (CJ_STORE "corrupt
 * type limits"). */
void cj__limits_encode(cj_buf *b, const cj_lim *v);
int cj__limits_decode(const uint8_t *v, size_t vl, cj_lim *out);
/* CJ_OK or CJ_INVALID naming the field out of range. */
int cj__limits_check(const cj_type_limits *l);
/* The job data of jv as a new string in *out (cj_free), checked to be one
 * JSON object: CJ_OK, CJ_STORE (damaged data) or CJ_NOMEM. */
int cj__jv_data(const cj_jv *jv, char **out);

/* Parsing keys of the jobs space. Each returns CJ_OK, CJ_STORE ("corrupt
 * <subspace> key") if k is not a whole key of that subspace with elements
 * of the right kinds, or CJ_NOMEM; strings are new (cj_free), and NULL on
 * failure. Outputs that are NULL are not wanted. */
int cj__key_data_parse(const uint8_t *k, size_t kl, char **type, char **id);
int cj__key_pending_parse(const uint8_t *k, size_t kl, int64_t *sched, char **id);
int cj__key_timeout_parse(const uint8_t *k, size_t kl, char **type);
int cj__key_activity_parse(const uint8_t *k, size_t kl, uint8_t seq[CJ_VS_LEN]);
int cj__key_finished_parse(const uint8_t *k, size_t kl, int64_t *finished_ms, char **id);
int cj__key_retention_parse(const uint8_t *k, size_t kl, char **type);

/* A versionstamp: commit number (big-endian), order within the commit. */
void cj__vs_make(uint8_t out[CJ_VS_LEN], uint64_t version, uint16_t order);
/* An activity entry's value, (JobId): build / parse (as the parsers above,
 * "corrupt activity value"). */
void cj__val_id(cj_buf *b, const char *id);
int cj__val_id_parse(const uint8_t *v, size_t vl, char **id);

/* Decodes a one-element tuple value holding an int / a versionstamp. */
int cj__val_int(const uint8_t *v, size_t vl, int64_t *out);
int cj__val_vs(const uint8_t *v, size_t vl, uint8_t out[CJ_VS_LEN]);

/* Counts (counts.c): the kinds a job is counted in. A job is in exactly one
 * of the first four (its state); a pending one may be in the last two too. */
enum cj_count_kind {
	CJ_COUNT_PENDING = 0,
	CJ_COUNT_RUNNING = 1,
	CJ_COUNT_FINISHED = 2,
	CJ_COUNT_DEAD = 3,
	CJ_COUNT_UNTIMED = 4,  /* pending, scheduled at time 0 */
	CJ_COUNT_RETRYING = 5, /* pending after a failed or lost attempt */
	CJ_COUNT_KINDS
};
/* Each count is split over at most this many keys by a hash of the job id,
 * so that the writers of one type on an engine whose writers run side by
 * side seldom wait for each other's counter (engine.h's count_shards). */
#define CJ_COUNT_SHARDS 16
void cj__key_counter(cj_buf *b, const char *type, int kind, int shard);
void cj__key_counter_prefix(cj_buf *b, const char *type /* NULL: all */);
/* Where format 4 kept the counters (("couch_jobs", "counts")): the
 * conversion to format 5 deletes them. */
void cj__key_counter_v4_prefix(cj_buf *b);
int cj__key_counter_parse(const uint8_t *k, size_t kl, char **type, int *kind, int *shard);
/* A counter value (engine.h's add): encode / decode (CJ_STORE "corrupt
 * counter value"). */
void cj__counter_encode(uint8_t out[CJ_COUNTER_LEN], int64_t n);
int cj__counter_decode(const uint8_t *v, size_t vl, int64_t *n);

/* ---- keys.c: schedules -------------------------------------------------------
 *
 *   ("couch_jobs", "schedule", Name) = (Cron, Zone, Every, Anchor, Type,
 *       Data, CatchUp, Disabled, Served, Fired)
 *       Cron, Zone: string or null; Every, Anchor: ints (seconds); Type:
 *       string; Data: bytes (JSON text); CatchUp: int (cj_catch_up);
 *       Disabled: bool; Served, Fired: ints, seconds since the epoch (the
 *       tick up to which the schedule was served, the last tick fired or 0).
 */
void cj__key_schedule(cj_buf *b, const char *name);
void cj__key_schedule_prefix(cj_buf *b);
int cj__key_schedule_parse(const uint8_t *k, size_t kl, char **name);
/* Encodes s (with data, not NULL) and its progress. */
void cj__schedule_encode(cj_buf *b, const cj_schedule *s, const char *data, int64_t served,
                         int64_t fired);
/* Decodes a schedule value into out (its name NULL, its next 0): CJ_OK,
 * CJ_STORE ("corrupt schedule value") or CJ_NOMEM; out is zeroed on
 * failure. Only the layout and ranges are checked here: cj__schedule_check
 * checks the definition. */
int cj__schedule_decode(const uint8_t *v, size_t vl, cj_schedule_info *out);

/* ---- os.h: see os/os.h ---------------------------------------------------- */

/* ---- db.c --------------------------------------------------------------- */

typedef struct cj_monitor cj_monitor;
typedef struct cj_notifier cj_notifier;
typedef struct cj_call cj_call;

/* group.c: calls waiting to be combined into one commit. */
typedef struct cj_group {
	int on;             /* the engine nests and commits are flushed */
	pthread_mutex_t mu; /* guards what follows */
	cj_call *head, *tail;
	int leading; /* a thread is running a batch */
	_Atomic uint64_t combined; /* calls committed in a batch of two or more */
	/* combine.c: the store's shared slots (NULL: off), and this handle's
	 * calls committed in a batch holding calls of other processes */
	struct cj_xarea *xarea;
	const struct cj_os_owner *xowner; /* this process's claim in it */
	int xafter; /* it follows layout 1's area: its receipts too (combine.c) */
	_Atomic uint64_t xcombined;
} cj_group;

struct cj_db {
	const struct cj_engine *eng;
	cj_edb *edb;
	int count_shards; /* the engine's (engine.h), 1 .. CJ_COUNT_SHARDS */
	cj_options opts;
	size_t max_data;

	pthread_mutex_t mu;  /* guards what follows and the notifier's state */
	pthread_cond_t cond; /* signalled when an event is queued */
	cj_monitor *monitor;
	cj_notifier *notifier;
	cj_group group;
	char *test_clock; /* schedule.c: the tests' clock file, or NULL */

	/* cj_stats */
	_Atomic uint64_t store_reads;
	_Atomic uint64_t notifier_passes;
	_Atomic uint64_t notifier_reads;
	_Atomic uint64_t acceptor_wakes;
	_Atomic uint64_t notifier_lock_ns;
	/* accept.c: the last claim of the handle took a job, so the next one
	 * is made without a look first */
	atomic_int claim_took;
};

/* ---- chan.c: channels (engine.h) the core notifies and waits on ------------ */

#define CJ_CHAN_TYPES "types"       /* a type timeout was set or cleared */
#define CJ_CHAN_ACTIVITY "activity" /* a job changed (with its job word) */
#define CJ_CHAN_RETENTION "retention" /* a retention was set, or is due */
#define CJ_CHAN_SCHEDULES "schedules" /* a schedule was set or removed */
/* pending channel of a type: "p:" + type */
void cj__chan_pending(char *out, size_t cap, const char *type);
/* run-ended channel of a type: "r:" + type (limits.c) */
void cj__chan_running(char *out, size_t cap, const char *type);
#define CJ_CHAN_MAX (CJ_MAX_TYPE + 3)

/* Wake words. Engines map channels to CJ_CHAN_WORDS words (word 0: os.h's
 * CJ_OS_ROUSE_STAMP),
 * and every job to one of CJ_JOB_WORDS job words past them:
 *
 *   1 .. 1023       channels (cj__chan_word; the layout of the first build)
 *   CJ_WORD_NEW     bumped with "activity" by every commit that marks job
 *                   words, so that a commit of a build that marks
 *                   "activity" alone can be told apart (sub.c)
 *   CJ_WORD_ALL     every job changed (a commit marked too many to list)
 *   CJ_WORD_GROUP   one per CJ_JOB_GROUP_SIZE job words: bumped with any
 *   CJ_WORD_JOB     the job's own word
 *
 * A commit bumps its words in the order cj__wordset_each gives: job words,
 * their groups, ALL, NEW, then channels; so whoever sees a group, NEW or
 * "activity" bumped sees the job words under it bumped too. A transaction
 * collects the words it marked in a cj_wordset, each once. */
#define CJ_CHAN_WORDS 1024
unsigned cj__chan_word(const char *chan); /* 1 .. CJ_CHAN_WORDS - 1 */
/* The library's byte hash: 32-bit FNV-1a over n bytes, continuing from h
 * (CJ_FNV_SEED to start). Channel and job words are laid out with it
 * (doc/format.md): it must not change. */
uint32_t cj__fnv(uint32_t h, const void *p, size_t n);
#define CJ_FNV_SEED 2166136261u
#define CJ_JOB_WORDS 65536
#define CJ_JOB_GROUP_SIZE 256
#define CJ_JOB_GROUPS (CJ_JOB_WORDS / CJ_JOB_GROUP_SIZE)
#define CJ_WORD_NEW CJ_CHAN_WORDS
#define CJ_WORD_ALL (CJ_CHAN_WORDS + 1)
#define CJ_WORD_GROUP(g) (CJ_CHAN_WORDS + 2 + (unsigned)(g))
#define CJ_WORD_JOB(j) (CJ_WORD_GROUP(CJ_JOB_GROUPS) + (unsigned)(j))
#define CJ_WORDS CJ_WORD_JOB(CJ_JOB_WORDS) /* words in all */
/* The job number of (type, id): 0 .. CJ_JOB_WORDS - 1. */
unsigned cj__job_number(const char *type, const char *id);

/* Job numbers a transaction lists before it marks CJ_WORD_ALL instead; it
 * keeps the PostgreSQL engine's notification payload well under 8000 bytes. */
#define CJ_WORDSET_JOBS 256
#define CJ_WORDSET_ONES 16
typedef struct cj_wordset {
	uint8_t bits[CJ_CHAN_WORDS / 8];
	uint16_t list[CJ_CHAN_WORDS]; /* the marked words, in marking order */
	unsigned n;
	uint16_t jobs[CJ_WORDSET_JOBS]; /* job numbers marked */
	unsigned njobs;
	int all_jobs; /* more than CJ_WORDSET_JOBS were marked */
	/* channel words marked to wake a number of their waiters rather than
	 * all (cj__wordset_add_one), each with that number; a word also in
	 * bits wakes all */
	uint16_t ones[CJ_WORDSET_ONES];
	uint32_t ones_n[CJ_WORDSET_ONES];
	unsigned nones;
} cj_wordset;
void cj__wordset_add(cj_wordset *s, unsigned word);
/* Marks channel word w to wake one more of its waiters (the acceptors of a
 * type: one per job made pending). A word marked with cj__wordset_add as
 * well wakes all; past CJ_WORDSET_ONES such words, they do. */
void cj__wordset_add_one(cj_wordset *s, unsigned word);
/* Marks a job number, and "activity" with it. */
void cj__wordset_add_job(cj_wordset *s, unsigned job);
/* Marks in dst every word and job src marked. */
void cj__wordset_merge(cj_wordset *dst, const cj_wordset *src);
/* 1 if nothing was marked. */
int cj__wordset_empty(const cj_wordset *s);
/* Calls fn with each word to bump, in the order commits bump them. */
void cj__wordset_each(const cj_wordset *s, void (*fn)(void *arg, unsigned word),
                      void *arg);
/* The same, with the number of the word's waiters to wake: 0 for all, else
 * what cj__wordset_add_one counted (those words come last). */
void cj__wordset_each_n(const cj_wordset *s,
                        void (*fn)(void *arg, unsigned word, unsigned wake), void *arg);

/* The engine's wake ops (engine.h's watch, wait, wake, word, bump) on db. */
uint64_t cj__watch(cj_db *db, const char *chan);
int cj__wait(cj_db *db, const char *chan, uint64_t token, int64_t deadline_ms);
/* cj__wait on n channels (1 .. CJ_WAIT_ANY_MAX), each with its token. */
int cj__wait_any(cj_db *db, const char *const *chans, const uint64_t *tokens, size_t n,
                 int64_t deadline_ms);
void cj__wake(cj_db *db, const char *chan);
/* engine.h's rouse (nothing when the engine has none) */
void cj__rouse(cj_db *db, const char *chan);
uint64_t cj__word(cj_db *db, unsigned w);
void cj__bump(cj_db *db, unsigned w);

/* ---- tx.c --------------------------------------------------------------- */

struct cj_tx {
	cj_db *db;
	cj_etx *etx;
	int write;
	int halted;        /* an update/finish said CJ_HALT: cannot commit */
	uint16_t vs_order; /* next order within this commit's versionstamps */
	struct cj_tx *parent; /* of a nested transaction (group.c), else NULL */
	struct cj_tx *tls_next;
	cj_buf kbuf; /* scratch for keys */
	cj_buf vbuf; /* scratch for values */
	cj_buf adds; /* counter adds (cj__add) not yet made: (u32 key length,
	                key, int64 delta)... */
};

/* Runs fn in tx if given, else in a transaction of its own (write or
 * read-only), committed and retried on CJ_CONFLICT. A non-zero return of fn
 * aborts an own transaction; with a caller's tx it is just returned (and
 * CJ_HALT marks the tx halted). */
int cj__run(cj_db *db, cj_tx *tx, int write, int (*fn)(cj_tx *tx, void *arg),
            void *arg);

/* The steps of cj__run's own transactions, for group.c: a new transaction
 * (refused when this thread holds one on db), its commit (CJ_HALT if
 * halted; frees tx) and abort. */
int cj__tx_new(cj_db *db, int write, cj_tx **out);
int cj__tx_commit(cj_tx *tx);
void cj__tx_abort(cj_tx *tx);
/* A transaction nested in the write transaction parent (engine.h; the
 * engine must nest): parent is not used until it ends. Its versionstamps
 * go on from the parent's; its commit hands its writes to the parent. */
int cj__tx_nest(cj_tx *parent, cj_tx **out);
int cj__tx_nest_commit(cj_tx *tx); /* frees tx */
void cj__tx_nest_abort(cj_tx *tx);

/* ---- group.c ------------------------------------------------------------ */

int cj__group_init(cj_db *db);
void cj__group_destroy(cj_db *db);
/* Turns combining on for db if its engine nests and commits are flushed
 * (CJ_SYNC_FULL): only then does sharing a commit save anything. */
void cj__group_start(cj_db *db);
/* Runs fn as cj__run runs it in a write transaction of its own, combined
 * with other threads' calls: 1 with its result in *rc (and its detail in
 * cj_last_error()), or 0 if the caller must run it alone. */
int cj__group_run(cj_db *db, int (*fn)(cj_tx *tx, void *arg), void *arg, int *rc);

/* ---- combine.c ---------------------------------------------------------- */

/* A call described as data, so that another process can run it. */
enum cj_op {
	CJ_OP_ADD = 1, /* cj_add_ex: type, id, data, sched, unique */
	CJ_OP_UPDATE,  /* cj_update: type, id, lock, data (NULL: kept) */
	CJ_OP_FINISH,  /* cj_finish: the same */
	CJ_OP_FAIL,    /* cj_fail: type, id, lock, data (the error) */
	CJ_OP_RESUBMIT, /* cj_resubmit: type, id, lock, sched, data (NULL: kept) */
	CJ_OP_ACCEPT   /* the claim of cj_accept and its variants: claim */
};

/* The claim of an accept call (accept.c): what to take, and what it took
 * and found, which the caller's loop reads. */
typedef struct cj_claim {
	const char *const *types; /* in order of priority */
	size_t ntypes;
	const char *type;  /* the one being looked at */
	size_t ti;         /* its index in types */
	int64_t max_sched; /* INT64_MAX: any */
	int no_schedule;
	size_t max;        /* jobs to take at most */
	cj_job **jobs;     /* [cap] */
	char **data;       /* [cap], or NULL: not wanted */
	/* results */
	size_t n;          /* jobs taken */
	int busy;          /* the last candidate was held by another transaction */
	int64_t next_due;  /* earliest later sched time of any type, or -1 */
	/* limits (limits.c): types with a due job that their limits keep */
	uint8_t full[CJ_ACCEPT_TYPES_MAX]; /* no free slot */
	int64_t next_token;                /* wall clock of the next token, or -1 */
	/* the engine's CJ_ENGINE_CLAIM_AT_ONCE: no look before the claim, and
	 * seen: the claim took nothing, but a look after it found a due job */
	int claim_at_once, seen;
	/* entries of jobs (and data): max, the caller's arrays; less, arrays
	 * of cj__malloc that the claim grows (up to max) as it takes jobs */
	size_t cap;
} cj_claim;
/* Runs the claim c in tx (a write transaction): up to c->max jobs into
 * c->jobs, as cj_accept_many_types() takes them, and its results: CJ_OK,
 * CJ_NOT_FOUND or a code (then c->n is 0). */
int cj__claim_op(cj_tx *tx, cj_claim *c);
/* Frees the jobs (and data) c holds; c->n becomes 0. */
void cj__claim_undo(cj_claim *c);
typedef struct cj_op_call {
	int op;                   /* cj_op */
	const char *type, *id;
	const char *data;         /* NULL: none */
	size_t dlen;              /* of data, checked by the caller */
	int64_t sched;
	int unique;
	uint8_t lock[CJ_UUID_LEN];
	int resubmit;             /* the job handle's flag: in, and out as the call
	                             leaves it */
	cj_claim *claim;          /* CJ_OP_ACCEPT: in and out (type and id NULL) */
} cj_op_call;
/* Runs c in tx as the call it describes runs (add.c, process.c). */
int cj__add_op(cj_tx *tx, cj_op_call *c);
int cj__job_op(cj_tx *tx, cj_op_call *c);

/* Turns combining across processes on for db (with cj__group_start's
 * conditions, and an engine with shared memory and receipts). */
void cj__combine_start(cj_db *db);
/* Runs c as cj__run runs it in a write transaction of its own, combined
 * with calls of other processes (and threads): 1 with its result in *rc
 * (and its detail in cj_last_error()), or 0 if the caller must run it
 * otherwise (no free slot, too large for one, the leader died before its
 * commit, a failure of the store). */
int cj__combine_run(cj_db *db, cj_op_call *c, int *rc);

/* Records the receipt tag of combining slot slot in tx (engine.h's
 * receipt_put; combine.c). */
int cj__tx_receipt(cj_tx *tx, unsigned slot, uint64_t tag);

/* The engine's commit number of tx (engine.h): CJ_OK or a code. */
int cj__tx_version(cj_tx *tx, uint64_t *out);
/* A fresh versionstamp of tx's commit (write transactions only): CJ_OK or
 * a code (the engine may do I/O to number the commit). */
int cj__tx_vs(cj_tx *tx, uint8_t out[CJ_VS_LEN]);

/* Engine ops on the jobs space. A key or bound whose buffer ran out of
 * memory gives CJ_NOMEM. */
int cj__get(cj_tx *tx, const cj_buf *k, const uint8_t **v, size_t *vl);
/* A get() of k follows in this write transaction: the engine may read it
 * with the reads before it, in one round trip (engine.h's prefetch). */
int cj__prefetch(cj_tx *tx, const cj_buf *k);
/* The same for a cj__scan_key() of k (engine.h's prefetch_scan). */
int cj__prefetch_scan_key(cj_tx *tx, const cj_buf *k);
int cj__put(cj_tx *tx, const cj_buf *k, const cj_buf *v);
int cj__del(cj_tx *tx, const cj_buf *k);
/* Adds delta to the counter at k (engine.h's add; absent: 0) when the
 * write transaction commits (its parent's, for a nested one), the adds of
 * one commit together and in key order: where writers run side by side and
 * an add holds its key until commit, writers then never wait for each
 * other's counters in a cycle, and hold them only for the commit. The
 * counters a transaction reads must be flushed first (cj__add_flush). */
int cj__add(cj_tx *tx, const cj_buf *k, int64_t delta);
/* Makes the adds of tx now, in key order, equal keys summed. */
int cj__add_flush(cj_tx *tx);
/* engine.h's add made of e's get and put (del when the sum is 0), for
 * engines without one. */
int cj__add_rmw(const struct cj_engine *e, cj_etx *etx, int space, const cj_eadd *a,
                size_t n);
/* Deletes k whether or not it is there (engines may defer it). */
int cj__del_blind(cj_tx *tx, const cj_buf *k);
/* Keys in [lo, hi) / under prefix / just k, ascending; engine.h's scan(). */
int cj__scan(cj_tx *tx, const cj_buf *lo, const cj_buf *hi, cj_scan_fn fn, void *arg);
int cj__scan_prefix(cj_tx *tx, const cj_buf *prefix, cj_scan_fn fn, void *arg);
int cj__scan_key(cj_tx *tx, const cj_buf *k, cj_scan_fn fn, void *arg);
/* Copies the first key in [lo, hi) to out: 1, 0 if none, or a code.
 * scan_first holds nothing; claim_first holds the key (engine.h's
 * claim_first: keys other transactions hold are skipped). */
int cj__scan_first(cj_tx *tx, const cj_buf *lo, const cj_buf *hi, cj_buf *out);
int cj__claim_first(cj_tx *tx, const cj_buf *lo, const cj_buf *hi, cj_buf *out);
/* claim_first, and of the key d derives from the key taken (engine.h's
 * claim_pair): 1 with second holding that key when it is held too (empty
 * when it is absent or held by another); 0 if none; or a code. Engines
 * without claim_pair: the key only, second left empty. */
int cj__claim_pair(cj_tx *tx, const cj_buf *lo, const cj_buf *hi, const cj_ederive *d,
                   cj_buf *out, cj_buf *second);
/* Holds key k without waiting: 1 held, 0 absent or held by another
 * transaction, or a code. */
int cj__claim_key(cj_tx *tx, const cj_buf *k);
int cj__notify(cj_tx *tx, const char *chan);
/* Marks the job's own word (and "activity"): every commit that changes a
 * job's data value, or removes it, calls this. */
int cj__notify_job(cj_tx *tx, const char *type, const char *id);
/* Bumps the type's watches_activity key (the job itself is marked changed
 * by cj__notify_job). */
int cj__touch_activity(cj_tx *tx, const char *type, const uint8_t vs[CJ_VS_LEN]);
/* Marks new pending work of type: bumps watches_pending, notifies. */
int cj__touch_pending(cj_tx *tx, const char *type, const uint8_t vs[CJ_VS_LEN]);
/* The versionstamp to touch the watch keys with (cj__tx_vs), taken only
 * when the engine keeps them (zeros otherwise): a commit number may cost
 * the engine a round trip before the commit, which a call whose writes
 * need none (cj_finish, cj_fail) is then spared. */
int cj__watch_vs(cj_tx *tx, uint8_t out[CJ_VS_LEN]);

/* Entries a scan copies for its transaction to act on after the scan
 * (which holds the engine's cursor): cj__batch_add is the scan's callback,
 * and stops it once max entries are kept; cj__batch_next walks them (1 and
 * the next entry at *off, 0 at the end). */
typedef struct cj_batch {
	cj_buf kv; /* (u32 length, key, u32 length, value)... */
	int n, max;
} cj_batch;
int cj__batch_add(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *arg);
int cj__batch_next(const cj_batch *b, size_t *off, const uint8_t **k, size_t *kl,
                   const uint8_t **v, size_t *vl);

/* 1 if this thread has an open transaction on db. */
int cj__tx_held(const cj_db *db);

/* ---- types.c ------------------------------------------------------------ */

/* CJ_OK with the timeout, CJ_NO_TYPE_TIMEOUT if none, or an engine code. */
int cj__type_timeout_tx(cj_tx *tx, const char *type, int64_t *seconds);

/* ---- job.c -------------------------------------------------------------- */

/* Reads the job's data value into copy and decodes it into jv (which
 * points into copy). CJ_NOT_FOUND (without a detail) if missing. */
int cj__job_read(cj_tx *tx, const char *type, const char *id, cj_buf *copy,
                 cj_jv *jv);
/* cj__job_read, then the job's state (when state is not NULL): CJ_OK;
 * CJ_NOT_FOUND with the detail "no such job"; or a code. */
int cj__job_load(cj_tx *tx, const char *type, const char *id, cj_buf *copy,
                 cj_jv *jv, cj_state *state);
/* Writes the job's data value: jv's fields with data (NULL: jv's data),
 * moves it in the counts from old (its value as read, before any change;
 * NULL: a new job), and marks the job changed (cj__notify_job). Every
 * change of a job's state goes through here or cj__job_delete. */
int cj__job_write(cj_tx *tx, const char *type, const char *id, const cj_jv *old,
                  const cj_jv *jv, const char *data, size_t dlen);
/* Makes the job pending at sched with data (NULL: old's data): writes its
 * data value and pending entry and wakes acceptors. The job must have no
 * pending and no activity entry when called. old (NULL: a new job) gives
 * the fields kept: fence, policy, and, unless new_work, its attempt count
 * and errors (and an error to add, new_err). */
int cj__job_enqueue(cj_tx *tx, const char *type, const char *id, int64_t sched,
                    const cj_jv *old, const char *data, size_t dlen, int new_work);
/* Writes the job's activity entry under the sequence vs. */
int cj__job_activity_put(cj_tx *tx, const char *type, const char *id,
                         const uint8_t vs[CJ_VS_LEN]);
/* Deletes the job's pending or activity entry, whichever it has. */
int cj__job_unindex(cj_tx *tx, const char *type, const char *id, const cj_jv *jv);
/* The finish time of a job ending now (FinishedMs): the wall clock, at
 * least 1, as 0 means "not ended". */
int64_t cj__job_end_ms(void);
/* Deletes the job (jv, as loaded) and its index entries, and marks it
 * changed, as cj_remove does. */
int cj__job_delete(cj_tx *tx, const char *type, const char *id, const cj_jv *jv);
/* The state of a job from its data value (one more read for pending). */
int cj__job_state(cj_tx *tx, const char *type, const char *id, const cj_jv *jv,
                  cj_state *state);

/* ---- counts.c ----------------------------------------------------------- */

/* The shard of the job id's counters in db (0 .. its engine's count_shards
 * - 1). */
int cj__count_shard(const cj_db *db, const char *id);
/* Moves the job from the counts of value from to those of value to (NULL:
 * no job), in tx. */
int cj__count_move(cj_tx *tx, const char *type, const char *id, const cj_jv *from,
                   const cj_jv *to);
/* Adds 1 to n[kind] for each kind a job of value jv is counted in; returns
 * those kinds as bits. */
int cj__count_job(const cj_jv *jv, int64_t n[CJ_COUNT_KINDS]);
/* Reads the number of type's jobs of one kind into *n: the sum of the
 * shards of its counter, as committed and as tx changed it (a read that
 * holds nothing). */
int cj__count_read(cj_tx *tx, const char *type, int kind, int64_t *n);

/* ---- process.c ---------------------------------------------------------- */

struct cj_job {
	char *type;
	char *id;
	uint8_t lock[CJ_UUID_LEN];
	char lock_str[CJ_LOCK_STRLEN + 1];
	int resubmit;
	uint64_t fence;
};

/* ---- policy.c, fail.c: ends of attempts other than finishing ------------- */

/* The policy that applies to the job (its own, else its type's): 1 with
 * *p set, 0 if none, or a code. */
int cj__policy_for(cj_tx *tx, const char *type, const cj_jv *jv, cj_retry_policy *p);
/* policy.c: the delay in seconds after attempt (1, 2, ...) ended, with
 * its jitter (couchjobs.h). */
int64_t cj__policy_delay(const cj_retry_policy *p, int64_t attempt);
/* Ends the running job's attempt as failed (error: a JSON object) or lost
 * (error NULL): records it, then makes the job pending after its backoff,
 * or dead. The caller has deleted its activity entry. */
int cj__attempt_end(cj_tx *tx, const char *type, const char *id, cj_jv *jv,
                    const char *error, size_t elen);
/* Announces the reads of type's settings that cj__attempt_end() may do
 * (the type's policy, its retention), which hold nothing (cj__prefetch). */
int cj__attempt_prefetch(cj_tx *tx, const char *type);

/* ---- limits.c ----------------------------------------------------------- */

/* What a type's limits allow an accept now. */
typedef struct cj_lim_look {
	int on;          /* the type has a limit */
	cj_lim v;        /* its value, refilled to now */
	int64_t allow;   /* jobs it may take: free slots and tokens (INT64_MAX) */
	int full;        /* no free slot: wait for a run of the type to end */
	int64_t next_ms; /* out of tokens: the wall clock of the next, else -1 */
} cj_lim_look;
/* Looks at type's limits in tx. hold (write transactions): holds the
 * limits key, so that acceptors of a limited type take turns at the
 * count. CJ_OK or a code. */
int cj__limits_look(cj_tx *tx, const char *type, int hold, cj_lim_look *look);
/* Announces cj__limits_look()'s first read (cj__prefetch). */
int cj__limits_prefetch(cj_tx *tx, const char *type);
/* Records that n jobs were taken under look (their tokens). */
int cj__limits_take(cj_tx *tx, const char *type, cj_lim_look *look, int64_t n);
/* Every transaction that ends a run of type (deletes a running job's
 * activity entry) calls this: acceptors waiting for a slot wake (where
 * writers take turns, only while the type limits its running jobs: it
 * reads the limits). CJ_OK or a code. */
int cj__run_ended(cj_tx *tx, const char *type);

/* ---- monitor.c ---------------------------------------------------------- */

int cj__monitor_start(cj_db *db);
void cj__monitor_stop(cj_db *db);
/* Re-enqueues running jobs of type whose last activity has a commit
 * version <= max_version. Returns the number re-enqueued, or a code. */
int cj__reenqueue_stale(cj_db *db, const char *type, uint64_t max_version);

/* ---- retention.c ---------------------------------------------------------- */

/* The finished entry of a job just written finished or dead (jv): writes
 * it, and wakes the monitors if its type's retention limits its kind. */
int cj__finished_put(cj_tx *tx, const char *type, const char *id, const cj_jv *jv);
/* Announces what cj__finished_put() of a job of type reads, so that it
 * goes with the next read (cj__prefetch): the type's retention. */
int cj__finished_prefetch(cj_tx *tx, const char *type);
/* Deletes the finished entry of the job jv, as loaded, if it is finished
 * or dead (else does nothing). */
int cj__finished_del(cj_tx *tx, const char *type, const char *id, const cj_jv *jv);

/* The monitor's retention duty: cj__retention_step runs a pass when one is
 * due and returns its next deadline (monotonic; -1 none); the monitor then
 * also waits on CJ_CHAN_RETENTION with token when listen is set. */
typedef struct cj_retention_state {
	int64_t due;   /* next pass (monotonic), -1 none */
	int64_t last;  /* start of the last pass */
	int64_t retry; /* backoff after a failing store */
	uint64_t token;
	int listen;
} cj_retention_state;
#define CJ_RETENTION_STATE_INIT {0, -CJ_RETENTION_GAP_MS, CJ_RETRY_MIN_MS, 0, 0}
int64_t cj__retention_step(cj_db *db, cj_retention_state *st, int64_t now);
/* ---- schedule.c: the scheduler ---------------------------------------------- */

/* Notes the tests' clock (fault-injection builds only) at cj_open(). */
void cj__schedule_clock_init(cj_db *db);
/* CJ_OK or CJ_INVALID naming what is wrong with s (its data unchecked). */
int cj__schedule_check(const cj_schedule *s);
/* cj__schedule_check of a decoded schedule, and its data: CJ_OK, CJ_INVALID
 * or CJ_JSON naming what is wrong. */
int cj__schedule_info_check(const cj_schedule_info *i);
/* Serves every schedule's due tick, in batches; returns the monotonic time
 * of the next tick of any schedule (-1: none), and sets *failed when the
 * store failed (the caller retries after a backoff). */
int64_t cj__schedule_pass(cj_db *db, int *failed);

/* accept.c: at a monitor's check of type, wakes the acceptors that have
 * not looked since its first due pending job was made pending, when that
 * job was already first at the last check (*mark, a hash of its key, 0:
 * none). */
int cj__accept_rescue(cj_db *db, const char *type, uint64_t *mark);

/* ---- sub.c -------------------------------------------------------------- */

void cj__notifier_stop(cj_db *db);

/* ---- cancel.c ------------------------------------------------------------ */

/* A wait hooked on a cancellation: cj_cancel_fire() calls poke(arg) (with
 * the cancellation's mutex held: poke must not hook or unhook) after
 * setting the flag. A wait hooks, then checks cj_cancel_fired() before
 * each sleep, and unhooks before it returns. */
typedef struct cj_cancel_hook {
	struct cj_cancel_hook *next, *prev;
	void (*poke)(void *arg);
	void *arg;
} cj_cancel_hook;
void cj__cancel_hook(cj_cancel *c, cj_cancel_hook *h);
void cj__cancel_unhook(cj_cancel *c, cj_cancel_hook *h);

#endif
