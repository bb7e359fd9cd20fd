/**
 * @file couchjobs.h
 * @brief couchjobs: durable background jobs, after Apache CouchDB RFC 007.
 *
 * @mainpage couchjobs
 *
 * couchjobs hands units of work ("jobs") from the programs that create them
 * to the programs that run them ("processors"), and lets anyone watch them.
 *
 * @section model The model
 *
 * A job is named by a type and an id and carries one JSON object of data.
 * It is in one of three states:
 *
 *          +------------>+
 *          |             |
 *          |             v
 *  -->[PENDING]     [RUNNING]--->[FINISHED]
 *          ^             |           |
 *          |             v           |
 *          +-------------+<----------+
 *
 *  - cj_add() makes it pending (optionally scheduled for later).
 *  - cj_accept() hands a pending job to exactly one processor, with a fresh
 *    lock, and makes it running.
 *  - The processor calls cj_update() at least once per type timeout, and
 *    cj_finish() when done. The job is then finished, or pending again if it
 *    was resubmitted meanwhile.
 *  - If a processor stops calling cj_update(), the activity monitor makes the
 *    job pending again; the stale processor's next cj_update()/cj_finish()
 *    returns #CJ_HALT and writes nothing.
 *  - cj_subscribe() and cj_wait() deliver a job's state changes, made by any
 *    process using the store.
 *  - A processor learns at once that its job is no longer its own (removed,
 *    taken back, accepted by another) with cj_subscribe_lease(), whose
 *    descriptor (cj_sub_fd()) its event loop can poll, or by blocking in
 *    cj_job_wait_lost(), rather than at its next cj_update().
 *  - A processor that cannot do the job calls cj_fail(): the job waits for
 *    another attempt, or is dead (#CJ_DEAD) once its retry policy's
 *    attempts are used up; a lost lease counts as an attempt too. See
 *    @ref failure.
 *
 * Every call that takes a @c cj_tx can run inside the caller's transaction,
 * so a processor's own writes (cj_tx_put()) commit atomically with its
 * cj_update()/cj_finish(). A processor MUST call cj_update() or cj_finish()
 * in every write transaction it performs for a job: that is what makes the
 * transaction fail (#CJ_HALT) when the job is no longer the processor's.
 *
 * @section engines Engines
 *
 * cj_open() chooses a storage engine from its URL:
 *  - a plain path, or @c lmdb:PATH: the embedded engine. The store is a
 *    directory; any number of processes on one machine may use it at once.
 *  - @c postgresql://... or @c postgres://...: a PostgreSQL server (when the
 *    library was built with it), for processors on many machines. Besides
 *    libpq's own parameters the URL takes @c schema=NAME (see
 *    #cj_options.schema) and @c deadline_ms=N: no call waits for the
 *    server longer than N milliseconds (default 30000, at most a day);
 *    past it the call fails with #CJ_STORE and its connection is dropped,
 *    so a server that stops answering cannot block a caller.
 *
 * @section start Getting started
 *
 *  1. cj_open() the store.
 *  2. cj_set_type_timeout() once per job type.
 *  3. Creators: cj_add(), cj_remove(), cj_get_job_state(), cj_list_jobs().
 *  4. Processors: cj_accept(), then cj_update() periodically, then
 *     cj_finish(); free the handle with cj_job_free().
 *  5. Observers: cj_subscribe(), cj_wait(), cj_unsubscribe().
 *  6. cj_close().
 *
 * @section caveats Caveats
 *
 *  - On the embedded engine a write transaction (cj_tx_begin()) holds the
 *    store's single writer lock until it commits or aborts: keep it short.
 *    It must be committed or aborted by the thread that began it.
 *  - A thread that holds an open @c cj_tx on a store must pass it to every
 *    call it makes on that store; a call with a NULL @c tx (which would need
 *    a transaction of its own) returns #CJ_INVALID instead of deadlocking.
 *  - On the embedded engine a write that finds the store's map full fails
 *    with #CJ_CONFLICT and the map grows: run the transaction again
 *    (cj_transact() and calls without a @c tx do so themselves).
 *  - A @c cj_db must not be used in a child after fork(); open a new one.
 *  - The activity monitor judges staleness by the store's commit order, not
 *    by clocks; cj_update() must still be called at least once per type
 *    timeout, measured on the processor's own clock.
 *
 * @section conventions Conventions
 *
 *  - Every call returns #CJ_OK (0) or a negative @c CJ_* code. cj_strerror()
 *    names a code; cj_last_error() gives a one-line detail of the last
 *    failure on the calling thread.
 *  - Strings are NUL-terminated UTF-8. Job data is the text of one JSON
 *    object.
 *  - Strings and arrays the library hands out are freed with cj_free();
 *    structs it fills have their own @c _clear() call.
 *  - A failed constructor (cj_open(), cj_tx_begin(), cj_accept(),
 *    cj_subscribe(), cj_job_resume()) sets its out-pointer to NULL and leaves
 *    nothing to free. Every free/clear/close call accepts NULL.
 */
#ifndef COUCHJOBS_H
#define COUCHJOBS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup version Version
 * @{ */
#define CJ_VERSION_MAJOR 0
#define CJ_VERSION_MINOR 1
#define CJ_VERSION_PATCH 0
/** @brief The library's version as "MAJOR.MINOR.PATCH". Never fails. */
const char *cj_version(void);
/** @} */

/** @defgroup codes Codes
 *
 * Every call returns #CJ_OK or one of these negative codes. The numbers are
 * fixed: codes are only ever added at the end, never renumbered.
 * @{ */
#define CJ_CODE_MAP(XX)                                                        \
	XX(NOT_FOUND, -1, "CJ_NOT_FOUND: no such job, type timeout or key")        \
	XX(HALT, -2, "CJ_HALT: stop running this job; it is no longer yours")      \
	XX(NO_TYPE_TIMEOUT, -3, "CJ_NO_TYPE_TIMEOUT: the job type has no timeout") \
	XX(JSON, -4, "CJ_JSON: job data is not one valid JSON object")             \
	XX(INVALID, -5, "CJ_INVALID: invalid argument")                           \
	XX(TOO_LARGE, -6, "CJ_TOO_LARGE: data, key or value over the limit")       \
	XX(TIMEOUT, -7, "CJ_TIMEOUT: nothing arrived in time")                     \
	XX(CONFLICT, -8, "CJ_CONFLICT: transaction conflict; retry it")            \
	XX(STORE, -9, "CJ_STORE: the storage engine failed")                       \
	XX(NOMEM, -10, "CJ_NOMEM: out of memory")                                 \
	XX(CANCELED, -11, "CJ_CANCELED: the wait was cancelled (cj_cancel_fire)") \
	XX(EXISTS, -12, "CJ_EXISTS: the job already exists (cj_add_ex unique)")

/** @brief Result codes. */
typedef enum cj_code {
	CJ_OK = 0, /**< success */
#define CJ__CODE_ENUM(name, value, msg) CJ_##name = (value),
	CJ_CODE_MAP(CJ__CODE_ENUM)
#undef CJ__CODE_ENUM
} cj_code;

/**
 * @brief The message for a code, starting with its name
 * ("CJ_HALT: ..."). Unknown codes give "CJ_?: unknown code".
 * The string is static. Never fails.
 */
const char *cj_strerror(int rc);

/** @brief The bare name of a code ("CJ_HALT"), or "CJ_?". Static. */
const char *cj_err_name(int rc);

/**
 * @brief A one-line detail of the last failure on the calling thread, such
 * as the engine's own message or the name of the bad argument.
 *
 * Valid until the next failing call on this thread. Never NULL; empty when
 * no call has failed on this thread.
 */
const char *cj_last_error(void);
/** @} */

/** @defgroup states States
 * @{ */
/** @brief A job's state. Zero is never a state (see cj_wait()). */
typedef enum cj_state {
	CJ_PENDING = 1,  /**< waiting to be accepted */
	CJ_RUNNING = 2,  /**< held by a processor */
	CJ_FINISHED = 3, /**< done; kept until removed */
	CJ_REMOVED = 4,  /**< in events only: the job no longer exists */
	CJ_DEAD = 5      /**< failed for good (its attempts used up): kept, never
	                      handed out, until cj_retry() or cj_remove() */
} cj_state;

/** @brief "pending", "running", "finished", "removed", "dead", or
 * "unknown". */
const char *cj_state_name(int state);

/** @brief Parses a name given by cj_state_name(). @return #CJ_OK, #CJ_INVALID. */
int cj_state_parse(const char *name, cj_state *state);
/** @} */

/** @defgroup memory Memory
 * @{ */
/** @brief Frees a string or array the library handed out. NULL is ignored. */
void cj_free(void *p);
/** @} */

/** @defgroup store Opening a store
 * @{ */

/** @brief An open job store. Thread-safe; one per process is enough. */
typedef struct cj_db cj_db;
/** @brief A transaction on a store; used by one thread at a time. */
typedef struct cj_tx cj_tx;
/** @brief A running job as held by the processor that accepted it. */
typedef struct cj_job cj_job;
/** @brief A subscription to one job's state changes. */
typedef struct cj_sub cj_sub;

/** @brief How commits reach the disk. */
typedef enum cj_sync_mode {
	/** Default: every commit is on stable storage before the call returns
	 * #CJ_OK; it survives a crash of the process and of the machine. Other
	 * processes may see a commit a moment before it is on disk (they are
	 * woken at once); whatever they commit after it reaches the disk only
	 * together with it or after it. If the final flush fails the call
	 * returns #CJ_STORE although the commit may be visible: treat the
	 * outcome as unknown.
	 * On the embedded engine, calls made without a caller's transaction by
	 * several threads of one handle at once share one commit and one flush
	 * (group commit): each returns once its own call is on disk, with the
	 * result it would have had alone (cj_stats.combined_calls counts them).
	 * A commit whose flush another process's commit or flush already
	 * covered is not flushed again (cj_stats.shared_flushes counts them).
	 * Calls of cj_add(),
	 * cj_add_ex(), cj_update(), cj_finish(), cj_fail(), cj_resubmit() and
	 * the claim of cj_accept() and its variants (not its wait) of
	 * different processes share one commit, as threads' calls do
	 * (cj_stats.combined_processes counts them): whichever process leads
	 * runs them in its transaction; a process killed at any point loses no
	 * call that returned #CJ_OK, and changes no other call's result (jobs
	 * claimed for a process killed before it returned come back after
	 * their type's timeout, as a dead processor's do). The other calls of
	 * different processes, and a claim whose jobs with their data exceed
	 * about 8 KiB, commit separately. */
	CJ_SYNC_FULL = 0,
	/** Commits are flushed by the operating system when it chooses. Much
	 * faster. They survive a crash of the process. A crash of the machine
	 * (or a power loss) may lose the last seconds of commits, and:
	 *  - on the embedded engine it may also leave the store damaged: LMDB
	 *    (MDB_NOSYNC) lets the disk write a commit's pages in any order, so
	 *    the store may then fail to open, fail cj_verify(), or crash the
	 *    process that opens it (test/test_powerloss.c shows each). Keep
	 *    this mode for data that can be rebuilt, or take copies;
	 *  - on PostgreSQL (synchronous_commit off) the store stays consistent:
	 *    only the last moments of commits can be lost. */
	CJ_SYNC_RELAXED = 1
} cj_sync_mode;

/**
 * @brief Options of cj_open(). All-zero means the defaults; start from
 * #CJ_OPTIONS_INIT so that fields added later keep their defaults.
 */
typedef struct cj_options {
	cj_sync_mode sync;    /**< #CJ_SYNC_FULL (default) or #CJ_SYNC_RELAXED */
	int no_monitor;       /**< non-zero: this handle runs no activity monitor */
	size_t max_data_size; /**< limit of one job's data in bytes; 0:
	                           #CJ_DEFAULT_DATA_LIMIT */
	unsigned file_mode;   /**< mode of files the store creates; 0: 0600 */
	size_t map_size;      /**< embedded engine: initial map size in bytes;
	                           0: a default. The map grows as needed. */
	const char *schema;   /**< PostgreSQL engine: the schema holding the
	                           store; NULL: "couch_jobs" (a @c schema=NAME
	                           parameter of the URL takes precedence) */
	int shared;           /**< embedded engine: non-zero accepts a store
	                           directory that other users may write (see
	                           cj_open()); 0 refuses it */
} cj_options;

/** @brief Initialiser of #cj_options with every default. */
#define CJ_OPTIONS_INIT {CJ_SYNC_FULL, 0, 0, 0, 0, NULL, 0}

/** @brief The data limit of a store opened without #cj_options.max_data_size
 * (1 MiB). */
#define CJ_DEFAULT_DATA_LIMIT ((size_t)1 << 20)

/** @brief The largest value #cj_options.max_data_size may take (256 MiB). */
#define CJ_MAX_DATA_LIMIT ((size_t)256 << 20)

/**
 * @brief Opens (and on first use creates) a job store.
 *
 * @param[in] url  a directory path or @c lmdb:PATH for the embedded engine
 *                 (the directory is created if missing, its parent must
 *                 exist); @c postgresql://... or @c postgres://... for the
 *                 PostgreSQL engine.
 * @param[in] opts options, or NULL for the defaults.
 * @param[out] db  the handle, or NULL on failure.
 *
 * Unless @c opts->no_monitor is set, the handle runs the activity monitor in
 * a background thread for every type that has a timeout.
 *
 * Embedded engine, safety: the store's files are never opened through a
 * symbolic link, nor when they have other hard links. A store directory
 * owned by another user than the caller (root excepted), or writable by
 * its group or by others, is refused with #CJ_STORE: whoever can write it
 * could plant a link to a file of the caller's. Group write is accepted
 * when @c opts->file_mode grants it too (a store shared by a group), and
 * anything when @c opts->shared is set.
 *
 * Embedded engine, read-only use: when the caller may read the store's
 * files but not write them (their mode, a read-only file system), the
 * store opens read-only: every read works, every write (cj_tx_begin(),
 * cj_add(), cj_accept(), ...) fails with #CJ_STORE saying why, no activity
 * monitor runs, and waits (cj_wait()) see other processes' changes within
 * about a second. A new store cannot be created read-only. After the
 * machine restarted (or lost power), a read-only open fails with #CJ_STORE
 * until a process that may write the store has opened it: that first open
 * recovers the last commits from the store's log (doc/engine-log.md).
 *
 * Embedded engine, full disk: a write that finds the disk full fails with
 * #CJ_STORE ("no space left on device") and changes nothing; commits made
 * before stay. The store keeps a reserve of disk space (the file
 * @c reserve in its directory) that a transaction removing more keys than
 * it writes (cj_remove()) may spend, so that a full store can be emptied;
 * it is put back once space returns.
 *
 * Embedded engine, one store opened more than once in a process (by any
 * path naming its directory): the handles are independent (each has its
 * own options, monitor and statistics, each is closed with cj_close()),
 * but they share the process's one copy of the store, which stays open
 * until the last of them is closed (LMDB must not open a store twice in a
 * process). The store's sync mode is the first open's: a later open with
 * another @c opts->sync fails with #CJ_INVALID while it is open; its
 * @c opts->map_size and @c opts->file_mode are the first open's too (the
 * map grows as needed); @c opts->shared is checked for each open. A child
 * process after fork() must not use its parent's handles; cj_open() in the
 * child opens the store afresh.
 *
 * Embedded engine, processes in different PID namespaces (containers
 * sharing the store's directory): the library tells whether another
 * process is alive without process ids, but LMDB marks each process that
 * reads in lock.mdb by its process id: while one process uses the store,
 * a process of another namespace with the same id number (the first
 * process of each container is 1) fails its first transaction, cj_open()
 * included, with #CJ_STORE ("Resource temporarily unavailable").
 *
 * @return
 *  - #CJ_OK
 *  - #CJ_INVALID: NULL argument, empty or unknown URL scheme, bad option;
 *    the store is already open in this process with another sync mode
 *  - #CJ_STORE: the store cannot be opened or created, is not a couchjobs
 *    store, or has a format version this library does not know
 *  - #CJ_NOMEM
 */
int cj_open(const char *url, const cj_options *opts, cj_db **db);

/**
 * @brief Closes a store: stops its background threads and frees the handle.
 *
 * Every transaction, subscription and blocked call on the handle must have
 * ended first. Jobs held by this process stay running (they come back after
 * their type timeout). NULL is ignored.
 */
void cj_close(cj_db *db);

/**
 * @brief Copies @p url into @p out with its secrets hidden, for messages and
 * logs: the password of a @c scheme://user:password\@host URL and the value
 * of every @c password=... query parameter become @c ***. Other URLs (a
 * path) are copied as they are. The library's own messages (cj_last_error())
 * never contain a store URL's password.
 *
 * @param cap the size of @p out; the result is always NUL-terminated when
 *            @p cap > 0, and cut short (but still redacted) if it is too
 *            small.
 * @return #CJ_OK; #CJ_TOO_LARGE (cut short); #CJ_INVALID (NULL @p url or
 *         @p out, or @p cap 0). Thread-safe.
 */
int cj_url_redact(const char *url, char *out, size_t cap);

/** @brief The engine's name ("lmdb", "postgresql"). Static; never fails. */
const char *cj_db_engine(const cj_db *db);

/** @brief Counters of one handle since cj_open(); fields may be added at the
 *  end in later versions. */
typedef struct cj_stats {
	/** Reads of the store's job records and indexes (one per key looked up
	 *  or range scanned) by every call and background thread of the handle. */
	uint64_t store_reads;
	/** Times the subscription notifier looked for changes (a commit that
	 *  changed any job, in any process, makes it look). */
	uint64_t notifier_passes;
	/** Subscribed jobs the notifier read again from the store, because
	 *  their job (or another job sharing its wake word) changed. */
	uint64_t notifier_reads;
	/** Calls made without a caller's transaction that shared their commit
	 *  (and its durable flush) with calls of other threads of the handle
	 *  (see #CJ_SYNC_FULL). */
	uint64_t combined_calls;
	/** Times an accept call of the handle, waiting for a job, woke because
	 *  its types' pending jobs may have changed, and looked again. On the
	 *  embedded engine a job made pending wakes one waiting acceptor (in
	 *  any process), not all; an acceptor woken for a job it does not take
	 *  wakes the others that have not looked since (see cj_accept()). */
	uint64_t acceptor_wakes;
	/** Nanoseconds the subscription notifier held the handle's mutex
	 *  (which cj_wait(), cj_subscribe() and cj_unsubscribe() take too)
	 *  while it looked for changes and queued events; it reads the store
	 *  without holding it. */
	uint64_t notifier_lock_ns;
	/** Round trips to the database server (the PostgreSQL engine: each
	 *  time a call or background thread of the handle waited for the
	 *  server's answers, to one statement or to a pipeline of several; the
	 *  embedded engine has none: 0). */
	uint64_t round_trips;
	/** Durable commits of the handle that needed no flush of their own
	 *  after the writer lock, because another commit's flush, in this or
	 *  another process, already covered them (the embedded engine with
	 *  #CJ_SYNC_FULL; they are on disk all the same when acknowledged;
	 *  else 0). A store open more than once in the process counts those
	 *  of all its handles here (cj_open()). */
	uint64_t shared_flushes;
	/** Calls of the handle made without a caller's transaction that shared
	 *  their commit (and its durable flush) with calls of other processes
	 *  (see #CJ_SYNC_FULL; counted in combined_calls too). */
	uint64_t combined_processes;
	/** Statements the handle's transactions sent to the database server
	 *  (the PostgreSQL engine: each one of a pipeline counts, the
	 *  transaction's BEGIN and COMMIT included; not counted: a ROLLBACK
	 *  sent without waiting for its answer, and what each new connection
	 *  prepares once; the embedded engine has none: 0). */
	uint64_t statements;
	/** Commits of the handle whose notification went to other processes
	 *  through the database server (the PostgreSQL engine sends one only
	 *  when some process waits for something the commit changed, or did
	 *  within the last second; the embedded engine: 0). */
	uint64_t notifications_sent;
	/** Notifications the handle received from the database server (the
	 *  PostgreSQL engine: only while something of the handle waits, or
	 *  did within the last second, for a kind of change another process
	 *  committed; the embedded engine: 0). */
	uint64_t notifications_received;
} cj_stats;

/**
 * @brief Copies the handle's counters into @p *stats.
 *
 * Thread-safe; each counter is read on its own, not all at one instant.
 * @return #CJ_OK, #CJ_INVALID (NULL argument).
 */
int cj_db_stats(const cj_db *db, cj_stats *stats);
/** @} */

/** @defgroup checks Checking arguments without a store
 *
 * The checks every call makes of its arguments, for front ends that want
 * to judge input before (or without) opening a store. Each returns what the
 * calls themselves would return for the same argument, with the same
 * cj_last_error() detail. Thread-safe; they touch no store.
 * @{ */

/** @brief Is @p type a job type every call accepts (1 to #CJ_MAX_TYPE
 * bytes)?
 * @return #CJ_OK, #CJ_INVALID (NULL, empty, too long: whatever the calls
 *         refuse). */
int cj_type_check(const char *type);

/** @brief Is @p id a job id every call accepts (1 to #CJ_MAX_ID bytes)?
 * @return #CJ_OK, #CJ_INVALID (NULL, empty, too long: whatever the calls
 *         refuse). */
int cj_id_check(const char *id);

/**
 * @brief Is @p data valid job data for a store whose
 * #cj_options.max_data_size is @p limit (0: #CJ_DEFAULT_DATA_LIMIT)?
 * @return #CJ_OK; #CJ_INVALID (NULL @p data, @p limit over
 *         #CJ_MAX_DATA_LIMIT); #CJ_TOO_LARGE (longer than the limit);
 *         #CJ_JSON (not exactly one JSON object).
 */
int cj_data_check(const char *data, size_t limit);
/** @} */

/** @defgroup cron Cron expressions
 *
 * The calendar of periodic work, as cron writes it: five fields, minute
 * (0-59), hour (0-23), day of month (1-31), month (1-12 or JAN-DEC) and
 * day of week (0-7, 0 and 7 Sunday, or SUN-SAT), separated by spaces.
 * A field is a star (every value), a value, a range @c A-B, any of these
 * with a step @c /S (every S-th; @c A/S: from A to the end), or a
 * comma-separated list of those; names are
 * case-insensitive. @c \@yearly (@c \@annually), @c \@monthly, @c \@weekly,
 * @c \@daily (@c \@midnight) and @c \@hourly stand for their usual
 * expressions. When both day fields are restricted (neither starts with
 * @c *), a day matching either one matches, as in cron.
 *
 * Times are read in a time zone of the system's tz database (such as
 * "Europe/Berlin"; NULL or "UTC": UTC), from its files in
 * /usr/share/zoneinfo (Debian's tzdata), never from the process's TZ, so
 * the calls are thread-safe. Daylight saving time: a local time that
 * occurs twice (the clocks go back) fires once, the first time; a local
 * time that does not occur (the clocks go forward) fires once, at the
 * instant of the change (02:30 on the day Berlin skips from 02:00 to
 * 03:00 fires at 03:00 local time), however many ticks fell in the gap.
 * @{ */

/**
 * @brief Is @p expr a cron expression that fires, and @p zone a known time
 * zone? Reads the zone's file. Thread-safe.
 * @return #CJ_OK; #CJ_INVALID (NULL @p expr, a bad field (the detail names
 *         it), an unknown alias, an expression that never fires such as
 *         @c "0 0 30 2 *", a bad or unknown zone); #CJ_NOMEM; #CJ_STORE.
 */
int cj_cron_check(const char *expr, const char *zone);

/**
 * @brief The first tick of @p expr in @p zone strictly after @p after
 * (seconds since the epoch, 0 to #CJ_MAX_SCHED_TIME), in @c *next.
 * Reads the zone's file at each call. Thread-safe.
 * @return #CJ_OK; #CJ_NOT_FOUND (no tick up to #CJ_MAX_SCHED_TIME);
 *         #CJ_INVALID (as cj_cron_check(), a NULL @p next, @p after out
 *         of range); #CJ_NOMEM; #CJ_STORE.
 */
int cj_cron_next(const char *expr, const char *zone, int64_t after, int64_t *next);
/** @} */

/** @defgroup schedules Periodic jobs (schedules)
 *
 * A schedule, kept in the store under its name, adds a job of its type at
 * each of its ticks: the ticks of a cron expression in a time zone (see
 * @ref cron), or those of a fixed interval, @c anchor + k * @c every_s
 * seconds (so every process computes the same ticks).
 *
 * Tick T of schedule NAME becomes the job @c NAME\@T of the schedule's type,
 * T written in UTC as @c 2026-12-04T02:00:00Z, with the schedule's data,
 * due at once, added only if no job with that id exists
 * (#CJ_UNIQUE_ID): a tick fires exactly once however many schedulers run,
 * and a tick job that finished (or was removed) is never added again by
 * its tick.
 *
 * The scheduler runs in the activity monitor of every handle opened
 * without #cj_options.no_monitor (and not read-only). It sleeps until the
 * next tick of any schedule; cj_schedule_set() and cj_schedule_remove(),
 * in any process, wake it. The store keeps, per schedule, the tick up to
 * which it has been served and the last tick fired, updated in the same
 * transaction as the job is added, so restarts and other processes go on
 * where it got to. A schedule created (or changed) now serves only ticks
 * after now.
 *
 * Catch-up, when the scheduler finds ticks due that it has not served (all
 * schedulers were down, or a pass ran late): only the latest of them can
 * fire, never a burst.
 *  - #CJ_CATCH_UP_SKIP (default): it fires if it is less than
 *    #CJ_SCHEDULE_GRACE seconds late (a pass that merely ran late);
 *    otherwise no missed tick fires, and the next future one does.
 *  - #CJ_CATCH_UP_LAST: it fires once, however late.
 * The ticks before it are passed over. A tick whose job cannot be added
 * (its type lost its timeout, its data is over this handle's limit) is
 * passed over too.
 *
 * Wall time: ticks are wall-clock times, read by each scheduler from its
 * machine's clock (keep clocks in sync). A sleep lasts at most
 * #CJ_SCHEDULE_RECHECK_MS, so a stepped clock is noticed.
 * @{ */

/** @brief The longest schedule name in bytes (its tick jobs' ids are the
 * name, "@" and 20 bytes of time). */
#define CJ_MAX_SCHEDULE_NAME 255
/** @brief The longest #cj_schedule.every_s, in seconds (one year). */
#define CJ_MAX_SCHEDULE_EVERY ((int64_t)366 * 24 * 3600)
/** @brief How late (seconds) a tick may fire under #CJ_CATCH_UP_SKIP. */
#define CJ_SCHEDULE_GRACE 60
/** @brief The longest a scheduler sleeps before it reads the clock again. */
#define CJ_SCHEDULE_RECHECK_MS ((int64_t)600 * 1000)

/** @brief #cj_schedule.catch_up: which missed tick fires (see the group). */
typedef enum cj_catch_up {
	CJ_CATCH_UP_SKIP = 0, /**< none (unless less than #CJ_SCHEDULE_GRACE late) */
	CJ_CATCH_UP_LAST = 1  /**< the latest one, once */
} cj_catch_up;

/** @brief Parses "skip" or "last" (the CLI's words).
 * @return #CJ_OK, #CJ_INVALID (NULL argument or another word). */
int cj_catch_up_parse(const char *name, int *catch_up);

/** @brief A schedule's definition; start from #CJ_SCHEDULE_INIT. Exactly
 * one of @c cron and @c every_s is set. */
typedef struct cj_schedule {
	/** a cron expression (see @ref cron), or NULL for an interval */
	const char *cron;
	/** the cron expression's time zone; NULL: UTC. NULL for an interval */
	const char *zone;
	/** the interval in seconds, 1 to #CJ_MAX_SCHEDULE_EVERY; 0 with cron */
	int64_t every_s;
	/** the interval's ticks are anchor + k * every_s (seconds since the
	 * epoch, 0 to #CJ_MAX_SCHED_TIME; 0 with cron) */
	int64_t anchor;
	/** the tick jobs' type; it must have a timeout */
	const char *type;
	/** the tick jobs' data, a JSON object; NULL: "{}" */
	const char *data;
	/** a #cj_catch_up; #CJ_CATCH_UP_SKIP (default) */
	int catch_up;
	/** non-zero: kept, but fires nothing (its ticks are passed over) */
	int disabled;
} cj_schedule;

/** @brief Initialiser of #cj_schedule with every default. */
#define CJ_SCHEDULE_INIT {NULL, NULL, 0, 0, NULL, NULL, CJ_CATCH_UP_SKIP, 0}

/** @brief A schedule as the store holds it, filled by cj_schedule_get() and
 * cj_schedule_list(); release with cj_schedule_info_clear(). */
typedef struct cj_schedule_info {
	char *name;       /**< its name */
	char *cron;       /**< its cron expression, or NULL */
	char *zone;       /**< the cron expression's zone, or NULL (UTC) */
	int64_t every_s;  /**< its interval, or 0 */
	int64_t anchor;   /**< its interval's anchor */
	char *type;       /**< its jobs' type */
	char *data;       /**< its jobs' data */
	int catch_up;     /**< a #cj_catch_up */
	int disabled;     /**< non-zero: fires nothing */
	int64_t served;   /**< ticks up to this time (seconds since the epoch)
	                       were fired or passed over */
	int64_t fired;    /**< the last tick fired; 0: none yet */
	int64_t next;     /**< its first tick after now and after @c served;
	                       0: none (disabled, or none before
	                       #CJ_MAX_SCHED_TIME) */
} cj_schedule_info;

/** @brief Frees the strings of @p info and zeroes it. NULL is ignored. */
void cj_schedule_info_clear(cj_schedule_info *info);

/**
 * @brief Creates schedule @p name, or replaces its definition.
 *
 * A new schedule, or one whose definition changes, serves the ticks after
 * now; the same definition again writes nothing (so programs may set their
 * schedules at every start without losing a missed tick). Wakes the
 * schedulers of every process. Thread-safe.
 *
 * @return #CJ_OK; #CJ_INVALID (NULL @p db or @p s, a bad name (1 to
 *         #CJ_MAX_SCHEDULE_NAME bytes of valid UTF-8) or type, neither or
 *         both of cron and every_s, a bad cron expression or one that never
 *         fires, an unknown zone, a zone or anchor with cron, every_s or
 *         anchor out of range, an unknown catch_up); #CJ_NO_TYPE_TIMEOUT
 *         (the type has no timeout); #CJ_JSON; #CJ_TOO_LARGE (data over
 *         the handle's limit); #CJ_STORE; #CJ_CONFLICT (only with a
 *         caller's @p tx); #CJ_NOMEM. On failure nothing changed.
 */
int cj_schedule_set(cj_db *db, cj_tx *tx, const char *name, const cj_schedule *s);

/** @brief Reads schedule @p name into @p info (cj_schedule_info_clear()).
 * On failure @p info is zeroed.
 * @return #CJ_OK, #CJ_NOT_FOUND, #CJ_INVALID, #CJ_STORE, #CJ_NOMEM. */
int cj_schedule_get(cj_db *db, cj_tx *tx, const char *name, cj_schedule_info *info);

/**
 * @brief Calls @p cb for every schedule, in name (byte) order, from one
 * consistent snapshot. @p info is valid only during the call; a non-zero
 * return of @p cb stops the listing and is returned. @p cb must not call
 * into @p db with a NULL transaction.
 * @return #CJ_OK, @p cb's non-zero return, #CJ_INVALID, #CJ_STORE, #CJ_NOMEM.
 */
int cj_schedule_list(cj_db *db, cj_tx *tx,
                     int (*cb)(const cj_schedule_info *info, void *arg), void *arg);

/** @brief Removes schedule @p name: it fires nothing more (its tick jobs
 * stay). Wakes the schedulers of every process.
 * @return #CJ_OK, #CJ_NOT_FOUND, #CJ_INVALID, #CJ_STORE, #CJ_CONFLICT (only
 *         with a caller's @p tx), #CJ_NOMEM. */
int cj_schedule_remove(cj_db *db, cj_tx *tx, const char *name);
/** @} */

/** @defgroup tx Transactions and the caller's own data
 *
 * A transaction groups calls so they commit together or not at all. The
 * caller's own keys and values (cj_tx_put()) live in the same store in a
 * space of their own, separate from the jobs.
 * @{ */

/**
 * @brief Begins a write transaction.
 * @note On the embedded engine it holds the store's writer lock, across
 *       processes, until commit or abort, and must end on the thread that
 *       began it.
 * @return #CJ_OK, #CJ_INVALID (NULL argument, or this thread already holds
 *         a transaction on @p db), #CJ_STORE, #CJ_NOMEM. On failure @c *tx is
 *         NULL.
 */
int cj_tx_begin(cj_db *db, cj_tx **tx);

/**
 * @brief Commits and frees @p tx, whatever it returns.
 *
 * A transaction in which cj_update() or cj_finish() returned #CJ_HALT
 * cannot commit: it is aborted and #CJ_HALT is returned, so a
 * stale processor's writes never land.
 *
 * @return #CJ_OK; #CJ_HALT (see above; nothing written); #CJ_CONFLICT
 *         (nothing written; run the transaction again); #CJ_STORE (the
 *         engine failed; nothing written); #CJ_NOMEM (nothing written);
 *         #CJ_INVALID (NULL @p tx).
 */
int cj_tx_commit(cj_tx *tx);

/** @brief Aborts and frees @p tx: nothing it wrote lands. NULL is ignored. */
void cj_tx_abort(cj_tx *tx);

/**
 * @brief Runs @p fn in a transaction and commits it, retrying on conflict.
 *
 * Begins a transaction, calls @p fn, and commits. If @p fn returns
 * non-zero the transaction is aborted and that value is returned, except
 * #CJ_CONFLICT, which (like a conflict at commit) runs everything again.
 * @p fn must not commit or abort @p tx itself, and may run more than once.
 *
 * @return #CJ_OK, @p fn's non-zero return, or a cj_tx_begin()/cj_tx_commit()
 *         code (#CJ_CONFLICT only after many retries).
 */
int cj_transact(cj_db *db, int (*fn)(cj_tx *tx, void *arg), void *arg);

/**
 * @brief The engine's own handle of @p tx, so the caller's own statements
 * can run in the same transaction: an @c MDB_txn* on the embedded engine
 * (use it with read calls only), a @c PGconn* on PostgreSQL (the connection
 * is inside the transaction; run statements on it, never COMMIT or
 * ROLLBACK). Valid until @p tx ends. NULL if @p tx is NULL.
 * On PostgreSQL the library's writes in @p tx are pipelined: call this
 * again after any library call on @p tx, before statements of your own
 * (it sends what the library queued and reads the answers). A statement
 * run on the connection while an answer is due fails; it never runs
 * before a write the library made ahead of it.
 */
void *cj_tx_native(cj_tx *tx);

/** @brief The largest key of cj_tx_put() in bytes. */
#define CJ_MAX_KEY 1024

/**
 * @brief Writes the caller's own @p key = @p val in @p tx.
 * @return #CJ_OK; #CJ_INVALID (NULL tx or key, klen 0, NULL val with vlen
 *         > 0); #CJ_TOO_LARGE (klen over #CJ_MAX_KEY or vlen over the
 *         store's data limit); #CJ_STORE; #CJ_NOMEM.
 */
int cj_tx_put(cj_tx *tx, const void *key, size_t klen, const void *val, size_t vlen);

/**
 * @brief Reads the caller's own @p key in @p tx (seeing the transaction's
 * own writes).
 * @param[out] val a copy of the value, freed with cj_free(); NUL-terminated
 *             for convenience (the terminator is not counted in @p vlen).
 * @return #CJ_OK, #CJ_NOT_FOUND, #CJ_INVALID, #CJ_TOO_LARGE, #CJ_STORE,
 *         #CJ_NOMEM.
 */
int cj_tx_get(cj_tx *tx, const void *key, size_t klen, void **val, size_t *vlen);

/** @brief Deletes the caller's own @p key in @p tx.
 * @return #CJ_OK, #CJ_NOT_FOUND, #CJ_INVALID, #CJ_TOO_LARGE, #CJ_STORE. */
int cj_tx_del(cj_tx *tx, const void *key, size_t klen);
/** @} */

/** @defgroup types Job types
 *
 * A type is 1 to #CJ_MAX_TYPE bytes of valid UTF-8 (no overlong forms,
 * surrogates or code points over U+10FFFF), and so is a job id (1 to
 * #CJ_MAX_ID bytes); anything else is #CJ_INVALID. Jobs of a type can only be added once
 * the type has a timeout: the longest a processor may go without calling
 * cj_update() before its job is taken back.
 * @{ */
#define CJ_MAX_TYPE 255  /**< longest type in bytes */
#define CJ_MAX_ID 1024   /**< longest job id in bytes */
/** @brief The longest type timeout, in seconds (one year). */
#define CJ_MAX_TYPE_TIMEOUT ((int64_t)366 * 24 * 3600)

/**
 * @brief Sets the activity timeout of @p type, in seconds (1 to
 * #CJ_MAX_TYPE_TIMEOUT).
 * @return #CJ_OK, #CJ_INVALID, #CJ_STORE, #CJ_NOMEM.
 */
int cj_set_type_timeout(cj_db *db, const char *type, int64_t seconds);

/** @brief Reads the timeout of @p type.
 * @return #CJ_OK, #CJ_NOT_FOUND (never set, or cleared), #CJ_INVALID,
 *         #CJ_STORE, #CJ_NOMEM. */
int cj_get_type_timeout(cj_db *db, const char *type, int64_t *seconds);

/** @brief Clears the timeout of @p type. Its existing jobs stay; new ones
 * cannot be added, and its running jobs are no longer monitored.
 * @return #CJ_OK, #CJ_NOT_FOUND, #CJ_INVALID, #CJ_STORE, #CJ_NOMEM. */
int cj_clear_type_timeout(cj_db *db, const char *type);

/**
 * @brief Lists the types that have a timeout, in byte order.
 * @param[out] types an array of @p count strings: cj_free() each, then the
 *             array. NULL when @p count is 0.
 * @return #CJ_OK, #CJ_INVALID, #CJ_STORE, #CJ_NOMEM.
 */
int cj_get_types(cj_db *db, cj_tx *tx, char ***types, size_t *count);
/** @} */

/** @defgroup creation Job creation
 * @{ */

/**
 * @brief The latest scheduled time accepted (seconds since the epoch):
 * 9999-12-31T23:59:59Z. A later one (a time in milliseconds or nanoseconds
 * given by mistake) is #CJ_INVALID. Every time computation of the library
 * saturates instead of overflowing, whatever the store holds.
 */
#define CJ_MAX_SCHED_TIME ((int64_t)253402300799)

/** @brief What is known of a job, filled by cj_get_job() and cj_list_jobs().
 * Released with cj_job_info_clear(). */
typedef struct cj_job_info {
	char *type;         /**< the job's type */
	char *id;           /**< the job's id */
	char *data;         /**< its JSON data */
	cj_state state;     /**< #CJ_PENDING, #CJ_RUNNING, #CJ_FINISHED or
	                         #CJ_DEAD */
	int64_t sched_time; /**< seconds since the epoch; 0: not scheduled. For
	                         a job waiting for its next attempt: when that
	                         attempt may run */
	int resubmit;       /**< running and flagged for resubmission */
	/* fields below: since format 2 (zero for jobs of older stores until
	 * they run again) */
	int64_t attempt;    /**< acceptances since the job was last added (or
	                         redriven with its attempts reset) */
	uint64_t fence;     /**< the fencing token of its last acceptance (see
	                         cj_job_fence()); 0: never accepted */
	char *errors;       /**< JSON array of how its last attempts failed,
	                         oldest first, at most #CJ_MAX_ERRORS: objects
	                         {"attempt":N,"time":MS,"ended":"failed",
	                         "error":{...}} or {...,"ended":"lost"} (its
	                         lease expired); "[]" when none */
	int64_t added_ms;   /**< when it was last made pending (added,
	                         resubmitted, retried), ms since the epoch */
	int64_t finished_ms;/**< when it finished or died, ms since the epoch;
	                         0 while pending or running */
	int has_policy;     /**< non-zero: the job has its own retry policy */
} cj_job_info;

/** @brief Frees the strings of @p info and zeroes it. NULL is ignored. */
void cj_job_info_clear(cj_job_info *info);

/**
 * @brief Adds a job, or re-enqueues an existing one.
 *
 * @param[in] data a JSON object, or NULL for "{}".
 * @param[in] sched_time seconds since the epoch before which the job is not
 *            handed out by a default cj_accept(); 0 (or any time not in the
 *            future) means "now". Negative, or after #CJ_MAX_SCHED_TIME,
 *            is #CJ_INVALID.
 *
 * On an existing job:
 *  - pending: its scheduled time and data are replaced (nothing is written
 *    when neither changes);
 *  - running: it is flagged for resubmission with the new scheduled time,
 *    its data is NOT replaced, and it becomes pending when its processor
 *    finishes it;
 *  - finished or dead: it is pending again, with the new data and
 *    scheduled time.
 *
 * The job is new work: when it is made pending by this call (or, running,
 * by its finish) its attempt count starts again from 0 and its errors are
 * cleared.
 *
 * @return #CJ_OK; #CJ_NO_TYPE_TIMEOUT; #CJ_INVALID (NULL db, bad type or
 *         id (not valid UTF-8 included), time negative or after
 *         #CJ_MAX_SCHED_TIME); #CJ_JSON; #CJ_TOO_LARGE; #CJ_STORE;
 *         #CJ_CONFLICT (only with a caller's @p tx); #CJ_NOMEM.
 */
int cj_add(cj_db *db, cj_tx *tx, const char *type, const char *id,
           const char *data, int64_t sched_time);

/** @brief #cj_add_opts.unique: when cj_add_ex() may touch an existing job. */
typedef enum cj_unique {
	/** cj_add()'s rule (the RFC's): replace a pending job, flag a running
	 * one for resubmission, re-enqueue a finished one */
	CJ_UNIQUE_NONE = 0,
	/** add only when no job with this type and id exists, in any state;
	 * else #CJ_EXISTS and nothing changes */
	CJ_UNIQUE_ID = 1,
	/** add only when no job with this type and id is pending or running
	 * (one in any other state, finished included, is made pending again
	 * as cj_add() does); else #CJ_EXISTS and nothing changes */
	CJ_UNIQUE_ACTIVE = 2
} cj_unique;

/** @brief Parses the name of a #cj_unique: "none", "id" or "active" (the
 * words the CLI and the HTTP API take).
 * @return #CJ_OK, #CJ_INVALID (NULL argument or another word). */
int cj_unique_parse(const char *name, int *unique);

/**
 * @brief Options of cj_add_ex(). Start from #CJ_ADD_OPTS_INIT: fields are
 * only ever appended, and the initialiser gives each its default.
 */
typedef struct cj_add_opts {
	/** as cj_add()'s @p sched_time: 0 (default) means now */
	int64_t sched_time;
	/** a #cj_unique; #CJ_UNIQUE_NONE (default) */
	int unique;
} cj_add_opts;

/** @brief Initialiser of #cj_add_opts with every default. */
#define CJ_ADD_OPTS_INIT {0, CJ_UNIQUE_NONE}

/**
 * @brief cj_add() with options (NULL: the defaults, which make it exactly
 * cj_add() with @p sched_time 0).
 *
 * With @c opts->unique set, whether the job exists is decided in the same
 * transaction that adds it: of any number of callers, in any processes,
 * adding the same type and id at once, exactly one gets #CJ_OK and the
 * others #CJ_EXISTS. Thread-safe.
 *
 * @return as cj_add(); #CJ_EXISTS (@c opts->unique refused: nothing was
 *         written; a caller's @p tx stays usable); #CJ_INVALID also for an
 *         unknown @c opts->unique.
 */
int cj_add_ex(cj_db *db, cj_tx *tx, const char *type, const char *id,
              const char *data, const cj_add_opts *opts);

/**
 * @brief Deletes a job, whatever its state. Its processor gets #CJ_HALT on
 * its next update/finish; subscribers get a #CJ_REMOVED event.
 * @return #CJ_OK, #CJ_NOT_FOUND, #CJ_INVALID, #CJ_STORE, #CJ_CONFLICT,
 *         #CJ_NOMEM.
 */
int cj_remove(cj_db *db, cj_tx *tx, const char *type, const char *id);

/** @brief Reads a job's state. A pending job whose data or scheduled time
 * changed is still pending: subscribers get no event for that.
 * @return #CJ_OK, #CJ_NOT_FOUND, #CJ_INVALID, #CJ_STORE, #CJ_NOMEM. */
int cj_get_job_state(cj_db *db, cj_tx *tx, const char *type, const char *id,
                     cj_state *state);

/** @brief Reads a job's data; @c *data is freed with cj_free().
 * @return #CJ_OK, #CJ_NOT_FOUND, #CJ_INVALID, #CJ_STORE, #CJ_NOMEM. */
int cj_get_job_data(cj_db *db, cj_tx *tx, const char *type, const char *id,
                    char **data);

/** @brief Reads everything about a job into @p info (release it with
 * cj_job_info_clear()). On failure @p info is zeroed.
 * @return #CJ_OK, #CJ_NOT_FOUND, #CJ_INVALID, #CJ_STORE, #CJ_NOMEM. */
int cj_get_job(cj_db *db, cj_tx *tx, const char *type, const char *id,
               cj_job_info *info);

/**
 * @brief Calls @p cb for every job of @p type (NULL: of every type), in
 * (type, id) byte order, from one consistent snapshot.
 *
 * @p info is valid only during the call. A non-zero return from @p cb stops
 * the listing and is returned. @p cb must not call into @p db with a NULL
 * transaction.
 * @return #CJ_OK, @p cb's non-zero return, #CJ_INVALID, #CJ_STORE, #CJ_NOMEM.
 */
int cj_list_jobs(cj_db *db, cj_tx *tx, const char *type,
                 int (*cb)(const cj_job_info *info, void *arg), void *arg);

/** @brief The jobs of one type counted by state (cj_get_type_counts()).
 * A job is counted in exactly one of pending, scheduled, running, finished
 * and dead; @c untimed and @c retrying count some of the pending and
 * scheduled ones again. "Now" is the wall clock at the call, in seconds. */
typedef struct cj_type_counts {
	uint64_t pending;   /**< pending jobs due now (scheduled time <= now) */
	uint64_t scheduled; /**< pending jobs due later (scheduled time > now) */
	uint64_t running;   /**< #CJ_RUNNING */
	uint64_t finished;  /**< #CJ_FINISHED */
	uint64_t dead;      /**< #CJ_DEAD */
	uint64_t untimed;   /**< pending jobs with scheduled time 0 (always due) */
	uint64_t retrying;  /**< pending or scheduled jobs after a failed or lost
	                         attempt (cj_job_info.attempt > 0) */
	int64_t oldest_added_ms; /**< when the due pending job that cj_accept()
	                              takes next was made pending (epoch ms,
	                              cj_job_info.added_ms); -1 when none is due */
	int64_t oldest_due; /**< the earliest scheduled time other than 0 among
	                         the due pending jobs (seconds); -1 when none */
} cj_type_counts;

/**
 * @brief Counts the jobs of @p type by state, without reading them.
 *
 * The store keeps the counts, changed in the same transaction as every job
 * they count: a call costs a few reads whatever the number of jobs, plus
 * one per job scheduled for later (those fall due by the clock, so they
 * are counted at the call). A type without jobs has every count 0 (it is
 * not #CJ_NOT_FOUND). With @p tx, the counts are those @p tx sees.
 * Thread-safe.
 *
 * @param[out] counts filled on #CJ_OK.
 * @return #CJ_OK; #CJ_INVALID (@p db or @p counts NULL, a bad @p type);
 *         #CJ_STORE (including a damaged counter: cj_verify() says which);
 *         #CJ_NOMEM.
 */
int cj_get_type_counts(cj_db *db, cj_tx *tx, const char *type, cj_type_counts *counts);

/** @brief Called by cj_list_type_counts() for each type; @p type and
 * @p counts are valid only during the call. Non-zero stops the listing. */
typedef int (*cj_type_counts_fn)(const char *type, const cj_type_counts *counts, void *arg);

/**
 * @brief Calls @p fn for every type that has jobs, in byte order, with its
 * counts as cj_get_type_counts() gives them, from one consistent snapshot.
 * Costs what cj_get_type_counts() costs per type: never a read of every
 * job. Types without jobs (only a timeout) are left out: cj_get_types()
 * lists those. @p fn must not call into @p db with a NULL transaction.
 * @return #CJ_OK, @p fn's non-zero return, #CJ_INVALID (@p db or @p fn
 *         NULL), #CJ_STORE, #CJ_NOMEM.
 */
int cj_list_type_counts(cj_db *db, cj_tx *tx, cj_type_counts_fn fn, void *arg);

/**
 * @brief cj_list_jobs() from a given place: the jobs of @p type (NULL: of
 * every type) that come after (@p after_type, @p after_id) in (type, id)
 * byte order, as the next page of a listing that ended there. The scan
 * starts at that place (the job there need not exist any more): a page
 * costs what it reads, however far into the store it is.
 *
 * @param after_type, after_id both NULL (from the start, as cj_list_jobs())
 *        or both set.
 * @return as cj_list_jobs(); #CJ_INVALID also for one of @p after_type and
 *         @p after_id without the other, or either not a valid type or id.
 */
int cj_list_jobs_from(cj_db *db, cj_tx *tx, const char *type, const char *after_type,
                      const char *after_id, int (*cb)(const cj_job_info *info, void *arg),
                      void *arg);
/** @} */

/** @defgroup cancel Cancelling waits
 *
 * A cancellation lets one thread end the waits of others: a cj_accept()
 * whose #cj_accept_opts.cancel is fired, or a cj_wait() on a subscription
 * tied to it with cj_sub_set_cancel(), returns #CJ_CANCELED at once. Firing
 * is sticky: every later call that uses the cancellation returns
 * #CJ_CANCELED at once too, without doing anything. One cancellation may
 * serve any number of calls, threads and stores.
 * @{ */

/** @brief A cancellation. Thread-safe. */
typedef struct cj_cancel cj_cancel;

/** @brief Makes a cancellation, not fired.
 * @param[out] c the new cancellation (cj_cancel_free()); NULL on failure.
 * @return #CJ_OK, #CJ_INVALID (NULL @p c), #CJ_NOMEM. */
int cj_cancel_new(cj_cancel **c);

/**
 * @brief Fires @p c: every call blocked on it returns #CJ_CANCELED
 * promptly, and every later one at once. Idempotent; callable from any
 * thread, but not from a signal handler (it takes a mutex: let a thread
 * read a signalfd or a self-pipe and fire). NULL is ignored. Never fails.
 */
void cj_cancel_fire(cj_cancel *c);

/** @brief Non-zero once @p c was fired (0 for NULL). Never fails. */
int cj_cancel_fired(const cj_cancel *c);

/** @brief Frees @p c. No call may be using it, and no subscription may
 * still be tied to it (cj_sub_set_cancel()). NULL is ignored. */
void cj_cancel_free(cj_cancel *c);
/** @} */

/** @defgroup processing Job processing
 * @{ */

/** @brief #cj_accept_opts.max_sched_time: the current time at each attempt. */
#define CJ_SCHED_NOW INT64_MIN
/** @brief #cj_accept_opts.max_sched_time: accept regardless of schedule. */
#define CJ_SCHED_ANY INT64_MAX
/** @brief cj_resubmit(): keep the scheduled time. */
#define CJ_SCHED_KEEP (-1)

/** @brief Options of cj_accept(); start from #CJ_ACCEPT_OPTS_INIT. */
typedef struct cj_accept_opts {
	/** accept only jobs scheduled at or before this time (seconds since
	 * the epoch); #CJ_SCHED_NOW (default) or #CJ_SCHED_ANY */
	int64_t max_sched_time;
	/** non-zero: only jobs added with no scheduled time are candidates,
	 * picked near a random id rather than at the head of the queue (for
	 * random-looking ids; spreads concurrent acceptors apart) */
	int no_schedule;
	/** milliseconds to wait when nothing is available: -1 forever
	 * (default), 0 do not wait; any larger value up to INT64_MAX is a
	 * deadline (saturating: a huge one waits as long as it says) */
	int64_t timeout_ms;
	/** NULL (default), or a cancellation that, once fired, makes the call
	 * return #CJ_CANCELED, taking no job */
	cj_cancel *cancel;
} cj_accept_opts;

/** @brief Initialiser of #cj_accept_opts with every default. */
#define CJ_ACCEPT_OPTS_INIT {CJ_SCHED_NOW, 0, -1, NULL}

/**
 * @brief Takes a pending job of @p type and makes it running, held by the
 * caller with a fresh lock.
 *
 * Each pending job is handed to exactly one caller. Jobs are handed out in
 * the order of the RFC's pending queue: by scheduled time, then by id (byte
 * order), not in the order they were added. When none is available it
 * waits, without polling, until one is added or falls due (in any process
 * using the store), or until @p opts->timeout_ms passes. On the embedded
 * engine a job made pending wakes one waiting acceptor of its type, not
 * every one; an acceptor woken for a job it does not take (another caller
 * took it first, or the call ends) wakes the others in its place. If the
 * woken acceptor dies before it could (kill -9 at that instant), the
 * activity monitor of any handle finds the job still first due at its
 * next check of the type and wakes the acceptors that have not looked
 * since: such a job waits at most about two of the type's timeouts.
 *
 * @param[out] job  the handle, freed with cj_job_free(); NULL on failure.
 * @param[out] data the job's data (cj_free()), or NULL if not wanted.
 * @return #CJ_OK; #CJ_NOT_FOUND (nothing became available in time);
 *         #CJ_CANCELED (@p opts->cancel was fired, before or during the
 *         call: no job was taken);
 *         #CJ_INVALID (bad type, @c no_schedule with an explicit
 *         @c max_sched_time (#CJ_SCHED_ANY included), a negative
 *         @c max_sched_time other than #CJ_SCHED_NOW, timeout below -1, or
 *         this thread holds a transaction on @p db); #CJ_STORE; #CJ_NOMEM.
 */
int cj_accept(cj_db *db, const char *type, const cj_accept_opts *opts,
              cj_job **job, char **data);

/** @brief The most jobs one cj_accept_many() takes. */
#define CJ_ACCEPT_MAX 4096

/**
 * @brief cj_accept() for up to @p max jobs at once: takes the first pending
 * jobs of @p type, in queue order, in one transaction (one commit, so one
 * disk flush in the default sync mode, for the whole batch).
 *
 * Waits as cj_accept() does until at least one job is available, then
 * takes as many as are available, up to @p max, without waiting for more.
 * Each job gets its own lock and is updated and finished on its own, or
 * several in one transaction: cj_tx_begin(), cj_finish() for each with the
 * transaction, cj_tx_commit(). If cj_finish() returns #CJ_HALT for one of
 * them, that transaction cannot commit: abort it and finish the others
 * again (the halted job belongs to someone else now).
 *
 * @param max   1 to #CJ_ACCEPT_MAX.
 * @param[out] jobs  an array of @p max handles; the first @c *n are set
 *              (free each with cj_job_free()), the rest NULL.
 * @param[out] data  NULL, or an array of @p max; the first @c *n are the
 *              jobs' data (free each with cj_free()), the rest NULL.
 * @param[out] n     the number of jobs taken (0 on failure).
 * @return as cj_accept(); #CJ_INVALID also for @p max out of range or a
 *         NULL @p jobs or @p n.
 */
int cj_accept_many(cj_db *db, const char *type, const cj_accept_opts *opts, size_t max,
                   cj_job **jobs, char **data, size_t *n);

/** @brief The most types one cj_accept_types() call takes. */
#define CJ_ACCEPT_TYPES_MAX 64

/**
 * @brief cj_accept() over several types in order of priority: takes a job
 * of the first type in @p types that has one due, so that callers can
 * express priorities with types.
 *
 * When none of them has a job available it waits, without polling, until
 * a job of any of them is added or falls due (in any process using the
 * store), or until @p opts->timeout_ms passes; commits that touch only
 * other types do not wake it. @p opts apply to every type. The order is
 * decided at each look: a job of an earlier type that is added while a
 * later type's job is being taken does not undo that take.
 *
 * @param types  1 to #CJ_ACCEPT_TYPES_MAX types, highest priority first
 *               (a type given twice is looked at once more, harmlessly).
 * @return as cj_accept(); #CJ_INVALID also for a NULL @p types, or a count
 *         or one of the types out of range.
 */
int cj_accept_types(cj_db *db, const char *const *types, size_t ntypes,
                    const cj_accept_opts *opts, cj_job **job, char **data);

/**
 * @brief cj_accept_many() over several types in order of priority: takes
 * up to @p max jobs in one transaction, all of the first type that has
 * some due, then of the next, and so on (a batch can hold jobs of several
 * types: cj_job_type() tells). Waits as cj_accept_types() does.
 * @return as cj_accept_many() and cj_accept_types().
 */
int cj_accept_many_types(cj_db *db, const char *const *types, size_t ntypes,
                         const cj_accept_opts *opts, size_t max, cj_job **jobs, char **data,
                         size_t *n);

/**
 * @brief Tells the store the job is alive; optionally replaces its data.
 *
 * Must be called at least once per type timeout. Refreshes
 * cj_is_resubmitted().
 * @return #CJ_OK; #CJ_HALT (the job was removed or is no longer held with
 *         this lock: stop running it; nothing was written, and a caller's
 *         @p tx can no longer commit); #CJ_JSON; #CJ_TOO_LARGE; #CJ_INVALID;
 *         #CJ_STORE; #CJ_CONFLICT; #CJ_NOMEM.
 */
int cj_update(cj_db *db, cj_tx *tx, cj_job *job, const char *data);

/**
 * @brief Ends the run: the job becomes finished, or pending again if it
 * was flagged for resubmission. @p data (NULL: keep) is its final data.
 * @p job stays allocated (free it with cj_job_free()) but is spent.
 * @return as cj_update().
 */
int cj_finish(cj_db *db, cj_tx *tx, cj_job *job, const char *data);

/**
 * @brief Asks for the job to run again, according to its current state:
 *  - running: flagged for resubmission (data not replaced; scheduled time
 *    replaced unless #CJ_SCHED_KEEP); pending again when finished;
 *  - finished: pending again, with @p data (NULL: keep);
 *  - pending: scheduled time and data replaced.
 * @p sched_time is seconds since the epoch (0 to #CJ_MAX_SCHED_TIME) or
 * #CJ_SCHED_KEEP.
 * The lock is not checked: any holder of a handle to the job may ask for
 * another run; only cj_update() and cj_finish() are fenced.
 * @return #CJ_OK; #CJ_NOT_FOUND (the job no longer exists); #CJ_JSON;
 *         #CJ_TOO_LARGE; #CJ_INVALID; #CJ_STORE; #CJ_CONFLICT; #CJ_NOMEM.
 */
int cj_resubmit(cj_db *db, cj_tx *tx, cj_job *job, int64_t sched_time,
                const char *data);

/** @brief Non-zero if the job was flagged for resubmission, as of the last
 * cj_accept(), cj_update() or cj_resubmit() on this handle. */
int cj_is_resubmitted(const cj_job *job);

/** @brief The job's type; valid until cj_job_free(). */
const char *cj_job_type(const cj_job *job);
/** @brief The job's id; valid until cj_job_free(). */
const char *cj_job_id(const cj_job *job);
/** @brief The job's lock (a UUID, 36 characters); valid until cj_job_free(). */
const char *cj_job_lock(const cj_job *job);

/**
 * @brief Rebuilds a processor's handle from the three strings, so that a
 * job accepted in one process can be updated or finished by another that
 * holds the lock. Nothing is read from the store.
 * @return #CJ_OK, #CJ_INVALID (bad type, id, or a lock that is not a UUID),
 *         #CJ_NOMEM. On failure @c *job is NULL.
 */
int cj_job_resume(const char *type, const char *id, const char *lock, cj_job **job);

/** @brief Frees a job handle (the job itself is unaffected). NULL is ignored. */
void cj_job_free(cj_job *job);

/**
 * @brief The fencing token of the acceptance this handle holds: a number
 * that only ever grows for a job, across processes, restarts and even its
 * removal and re-adding (it is the store's commit number of the accept, so
 * jobs accepted together by one cj_accept_many() share it). Pass it to
 * other systems a processor writes to, so that they refuse a stale
 * processor's writes the way the lock makes the store refuse them.
 * @return the token; 0 for NULL or a handle of cj_job_resume() (which
 *         reads nothing: see cj_get_job()'s #cj_job_info.fence). Never fails.
 */
uint64_t cj_job_fence(const cj_job *job);
/** @} */

/** @defgroup failure Failed attempts, retries and dead jobs
 *
 * Each cj_accept() of a job starts an attempt. An attempt ends in one of
 * three ways: the processor finishes it (cj_finish()), fails it (cj_fail(),
 * with an error), or loses it: its lease expires because it stopped calling
 * cj_update() (a crash, a hang), and the activity monitor takes the job
 * back. A failed or lost attempt is recorded in the job (the last
 * #CJ_MAX_ERRORS of them) and then, by the retry policy of the job or else
 * of its type:
 *  - the job waits for its next attempt: pending, scheduled after a
 *    backoff;
 *  - or, its attempts used up, it is dead (#CJ_DEAD): kept with its data
 *    and errors, never handed out, until cj_retry() puts it back or
 *    cj_remove() deletes it. Subscribers get a #CJ_DEAD event.
 *
 * Without any policy (the default) a lost attempt makes the job pending
 * again at once, however often (as before failures were counted), and a
 * failed one makes it dead at once: retries are asked for by a policy.
 *
 * Backoff: after attempt n (1, 2, ...) fails or is lost, the delay is
 * d = min(backoff_max, backoff_min * multiplier^(n-1)) seconds, then
 * jittered: #CJ_JITTER_NONE takes d; #CJ_JITTER_FULL a uniformly random
 * whole number of seconds in [0, d]; #CJ_JITTER_EQUAL one in
 * [d - floor(d/2), d]. The job is scheduled at now + the delay (a delay of
 * 0 keeps its scheduled time). A job a cj_add() or cj_resubmit() flagged
 * while it ran is new work: whatever ends its attempt, it becomes pending
 * with its attempts reset, as cj_finish() makes it.
 * @{ */

/** @brief The most errors a job keeps (the oldest are dropped). */
#define CJ_MAX_ERRORS 5
/** @brief The longest error of cj_fail(), in bytes. */
#define CJ_MAX_ERROR_SIZE 4096
/** @brief The largest #cj_retry_policy.max_attempts. */
#define CJ_MAX_ATTEMPTS 1000000
/** @brief The largest #cj_retry_policy.multiplier. */
#define CJ_MAX_MULTIPLIER 1000

/** @brief How a backoff delay is randomised (see the group's text). */
typedef enum cj_jitter {
	CJ_JITTER_NONE = 0,  /**< exactly the delay */
	CJ_JITTER_FULL = 1,  /**< uniform in [0, delay] */
	CJ_JITTER_EQUAL = 2  /**< uniform in [delay - delay/2, delay] */
} cj_jitter;

/** @brief A retry policy; start from #CJ_RETRY_POLICY_INIT. */
typedef struct cj_retry_policy {
	/** attempts (failed or lost) after which the job is dead: 1 to
	 * #CJ_MAX_ATTEMPTS; 0: never dead (retried for ever) */
	int64_t max_attempts;
	/** delay after the first attempt, seconds: 0 to #CJ_MAX_TYPE_TIMEOUT */
	int64_t backoff_min;
	/** the longest delay, seconds: backoff_min to #CJ_MAX_TYPE_TIMEOUT */
	int64_t backoff_max;
	/** growth of the delay per attempt: 1 to #CJ_MAX_MULTIPLIER */
	int64_t multiplier;
	/** a #cj_jitter */
	int jitter;
} cj_retry_policy;

/** @brief 5 attempts; 10 s, 20 s, 40 s, 80 s apart (at most an hour), with
 * equal jitter. */
#define CJ_RETRY_POLICY_INIT {5, 10, 3600, 2, CJ_JITTER_EQUAL}

/**
 * @brief Sets the retry policy of @p type (kept in the store, like the
 * activity timeout). It applies to every attempt of the type's jobs that
 * ends from now on, except jobs with their own (cj_set_job_policy()).
 * @return #CJ_OK; #CJ_INVALID (NULL argument, bad type, a field out of its
 *         range); #CJ_STORE; #CJ_NOMEM.
 */
int cj_set_type_policy(cj_db *db, const char *type, const cj_retry_policy *policy);

/** @brief Reads the retry policy of @p type.
 * @return #CJ_OK, #CJ_NOT_FOUND (none set), #CJ_INVALID, #CJ_STORE,
 *         #CJ_NOMEM. */
int cj_get_type_policy(cj_db *db, const char *type, cj_retry_policy *policy);

/** @brief Clears the retry policy of @p type: its jobs get the default.
 * @return #CJ_OK, #CJ_NOT_FOUND, #CJ_INVALID, #CJ_STORE, #CJ_NOMEM. */
int cj_clear_type_policy(cj_db *db, const char *type);

/**
 * @brief Gives one job its own retry policy, which overrides its type's
 * (NULL @p policy: clears it). The job keeps it, whatever its state, until
 * it is removed.
 * @return #CJ_OK; #CJ_NOT_FOUND (no such job); #CJ_INVALID (as
 *         cj_set_type_policy()); #CJ_STORE; #CJ_CONFLICT (only with a
 *         caller's @p tx); #CJ_NOMEM.
 */
int cj_set_job_policy(cj_db *db, cj_tx *tx, const char *type, const char *id,
                      const cj_retry_policy *policy);

/** @brief Reads a job's own retry policy.
 * @return #CJ_OK; #CJ_NOT_FOUND (no such job, or it has none of its own);
 *         #CJ_INVALID; #CJ_STORE; #CJ_NOMEM. */
int cj_get_job_policy(cj_db *db, cj_tx *tx, const char *type, const char *id,
                      cj_retry_policy *policy);

/**
 * @brief Ends the attempt as failed, with @p error: the job waits for its
 * next attempt or is dead, by its retry policy (see the group's text). It
 * is fenced like cj_finish(): a processor that no longer holds the job gets
 * #CJ_HALT and writes nothing, so an attempt ends exactly once.
 * @p job stays allocated (free it with cj_job_free()) but is spent.
 *
 * @param error a JSON object saying what went wrong (at most
 *              #CJ_MAX_ERROR_SIZE bytes), or NULL for "{}". It is kept in
 *              the job's errors; its data is unchanged.
 * @return #CJ_OK; #CJ_HALT (see cj_update()); #CJ_JSON (@p error is not one
 *         JSON object); #CJ_TOO_LARGE; #CJ_INVALID (NULL @p db or @p job);
 *         #CJ_STORE; #CJ_CONFLICT (only with a caller's @p tx); #CJ_NOMEM.
 */
int cj_fail(cj_db *db, cj_tx *tx, cj_job *job, const char *error);

/**
 * @brief Redrives a dead job: it is pending again, scheduled now, with its
 * data and errors; its attempt count is kept when @p keep_attempts is
 * non-zero (then a policy with max_attempts gives it one more attempt
 * before it is dead again), else reset to 0. Subscribers get a pending
 * event.
 * @return #CJ_OK; #CJ_NOT_FOUND (no such job); #CJ_INVALID (bad argument,
 *         or the job is not dead); #CJ_STORE; #CJ_CONFLICT (only with a
 *         caller's @p tx); #CJ_NOMEM.
 */
int cj_retry(cj_db *db, cj_tx *tx, const char *type, const char *id, int keep_attempts);

/** @brief The most jobs one transaction of cj_retry_type() redrives. */
#define CJ_RETRY_BATCH 500

/**
 * @brief Redrives every dead job of @p type, as cj_retry() does, in
 * transactions of at most #CJ_RETRY_BATCH jobs (so a huge backlog never
 * makes one huge transaction); jobs that die meanwhile may be redriven too.
 * @param[out] count the jobs redriven (may be NULL), also when a later
 *             batch failed.
 * @return #CJ_OK, #CJ_INVALID (bad argument, or this thread holds a
 *         transaction on @p db), #CJ_STORE, #CJ_NOMEM.
 */
int cj_retry_type(cj_db *db, const char *type, int keep_attempts, uint64_t *count);
/** @} */

/** @defgroup retention Retention of finished and dead jobs
 *
 * Finished and dead jobs are kept until removed: by default for ever. A
 * type's retention removes them, as cj_remove() does (subscribers get
 * #CJ_REMOVED): finished jobs once they finished more than keep_ms ago, or
 * beyond the keep_max that finished last; dead jobs by their own pair of
 * limits, so that failures can be kept for inspection longer than
 * successes. Pending and running jobs are never removed.
 *
 * The activity monitor of every handle (#cj_options.no_monitor off)
 * enforces it, in transactions of at most #CJ_PRUNE_BATCH jobs, oldest
 * first: when the oldest kept job expires, and when a job of a type with a
 * limit on its kind finishes (or dies), at most once a second
 * (#CJ_RETENTION_GAP_MS). Ages are
 * measured by the wall clocks of the processes (a job's finish time is its
 * processor's clock; the monitor compares it with its own), so a clock that
 * is off moves removals by as much. cj_prune() applies limits at once.
 *
 * The store keeps an index of finished and dead jobs by finish time and a
 * count per type, so each removal costs O(log n) whatever the store holds.
 * @{ */

/** @brief A limit that is not set: keep all. */
#define CJ_KEEP_ALL (-1)
/** @brief The most jobs one transaction of retention removes. */
#define CJ_PRUNE_BATCH 500
/** @brief The least time between two passes of a monitor's retention. */
#define CJ_RETENTION_GAP_MS 1000

/** @brief A type's retention; start from #CJ_RETENTION_INIT. Each field is
 * 0 or more, or #CJ_KEEP_ALL; at least one is set. */
typedef struct cj_retention {
	/** finished jobs are removed this many milliseconds after they finished */
	int64_t keep_ms;
	/** at most this many finished jobs are kept, those that finished last */
	int64_t keep_max;
	/** dead jobs are removed this many milliseconds after they died */
	int64_t dead_keep_ms;
	/** at most this many dead jobs are kept, those that died last */
	int64_t dead_keep_max;
} cj_retention;

/** @brief No limit set (keeps all): set the fields wanted. */
#define CJ_RETENTION_INIT {CJ_KEEP_ALL, CJ_KEEP_ALL, CJ_KEEP_ALL, CJ_KEEP_ALL}

/**
 * @brief Sets the retention of @p type (kept in the store); the monitors
 * apply it from now on, to jobs that finished before too.
 * @return #CJ_OK; #CJ_INVALID (NULL argument, bad type, a field below
 *         #CJ_KEEP_ALL, or no field set); #CJ_STORE; #CJ_NOMEM.
 */
int cj_set_type_retention(cj_db *db, const char *type, const cj_retention *retention);

/** @brief Reads the retention of @p type.
 * @return #CJ_OK, #CJ_NOT_FOUND (none set), #CJ_INVALID, #CJ_STORE,
 *         #CJ_NOMEM. */
int cj_get_type_retention(cj_db *db, const char *type, cj_retention *retention);

/** @brief Clears the retention of @p type: its jobs are kept until removed.
 * @return #CJ_OK, #CJ_NOT_FOUND, #CJ_INVALID, #CJ_STORE, #CJ_NOMEM. */
int cj_clear_type_retention(cj_db *db, const char *type);

/**
 * @brief Removes finished and dead jobs now, as retention does, in
 * transactions of at most #CJ_PRUNE_BATCH jobs, oldest first.
 * @param type    the type, or NULL for every type (with @p limits: every
 *                type that has finished or dead jobs; without: every type
 *                that has a retention).
 * @param limits  the limits to apply (as #cj_retention, checked the same
 *                way), or NULL for the type's own retention.
 * @param[out] removed the jobs removed (may be NULL), also when a later
 *             batch failed.
 * @return #CJ_OK; #CJ_NOT_FOUND (@p type given, @p limits NULL, and the
 *         type has no retention); #CJ_INVALID (bad argument, or this thread
 *         holds a transaction on @p db); #CJ_STORE; #CJ_NOMEM.
 */
int cj_prune(cj_db *db, const char *type, const cj_retention *limits, uint64_t *removed);
/** @} */

/** @defgroup limits Per-type concurrency and rate limits
 *
 * A type may limit how many of its jobs run at once and how fast they are
 * handed out, across every processor of every process and host using the
 * store. Both are enforced by the store, inside the transaction of
 * cj_accept() and its variants; both are off by default (0), which is the
 * behaviour of a type without limits.
 *
 * Concurrency: with @c max_running N, an accept takes a job of the type
 * only while fewer than N of its jobs are running (counted from the
 * type's index of running jobs, at most N entries: O(N) per accept).
 * Acceptors of a limited type take turns at the count, so that two
 * racing accepts never both take the last slot. A slot frees whenever a
 * run ends: cj_finish(), cj_fail(), a lost lease taken back by the
 * activity monitor, cj_remove() of a running job. Lowering the limit
 * stops no running job: accepts wait until fewer than the new N run.
 *
 * Rate: with @c rate R per @c rate_period_ms P, accepts take tokens from a
 * bucket kept in the store that holds at most R tokens and refills at R
 * per P, continuously (so a full bucket is a burst of R; over any window
 * of W ms at most R + R*W/P jobs are accepted; on average R per P). Each
 * job taken costs one token. The bucket runs on the wall clock
 * (CLOCK_REALTIME, milliseconds since the epoch) of the host accepting,
 * with saturating arithmetic: a clock stepped forward refills at most a
 * full bucket; a clock that reads before the last refill adds nothing
 * until it passes it, or, when it is more than
 * #CJ_RATE_CLOCK_SLACK_MS behind (a clock stepped back), the bucket's
 * refill time moves back to it, adding nothing: the type is never locked
 * for longer than that. Hosts sharing a store should keep their clocks
 * within that slack of each other. Setting a different rate or period
 * refills the bucket.
 *
 * An acceptor that finds every due job's type full (or out of tokens)
 * waits without polling: for a slot, until a run of the type ends; for a
 * token, until the instant the next one is due; in both cases also for a
 * change of the limits (and, out of tokens, for new jobs). Its timeout is
 * honoured. cj_accept_types() skips a type that is full or out of tokens
 * and takes from the next; cj_accept_many() takes no more jobs of a type
 * than its free slots and tokens allow.
 * @{ */

/** @brief The largest #cj_type_limits.max_running. */
#define CJ_MAX_RUNNING_LIMIT 10000
/** @brief The largest #cj_type_limits.rate. */
#define CJ_MAX_RATE 1000000
/** @brief The longest #cj_type_limits.rate_period_ms (366 days). */
#define CJ_MAX_RATE_PERIOD_MS ((int64_t)366 * 24 * 3600 * 1000)
/** @brief How far behind the last refill a clock may read before the
 * bucket follows it back (see the group's text), in milliseconds. */
#define CJ_RATE_CLOCK_SLACK_MS 10000

/** @brief A type's limits; start from #CJ_TYPE_LIMITS_INIT. */
typedef struct cj_type_limits {
	/** jobs of the type running at once at most: 1 to
	 * #CJ_MAX_RUNNING_LIMIT; 0: no limit */
	int64_t max_running;
	/** accepts per @c rate_period_ms at most: 1 to #CJ_MAX_RATE; 0: no
	 * limit (then @c rate_period_ms must be 0 too) */
	int64_t rate;
	/** the rate's period in milliseconds: 1 to #CJ_MAX_RATE_PERIOD_MS, or
	 * 0 with @c rate 0 */
	int64_t rate_period_ms;
} cj_type_limits;

/** @brief No limits. */
#define CJ_TYPE_LIMITS_INIT {0, 0, 0}

/**
 * @brief Sets the limits of @p type (kept in the store; see the group's
 * text). They apply to every accept from the commit on, in every process;
 * waiting acceptors of the type look again.
 * @return #CJ_OK; #CJ_INVALID (NULL argument, bad type, a field out of its
 *         range, a rate without a period or a period without a rate);
 *         #CJ_STORE; #CJ_NOMEM.
 */
int cj_set_type_limits(cj_db *db, const char *type, const cj_type_limits *limits);

/** @brief Reads the limits of @p type.
 * @return #CJ_OK, #CJ_NOT_FOUND (none set), #CJ_INVALID, #CJ_STORE,
 *         #CJ_NOMEM. */
int cj_get_type_limits(cj_db *db, const char *type, cj_type_limits *limits);

/** @brief Clears the limits of @p type: its jobs are accepted without any.
 * @return #CJ_OK, #CJ_NOT_FOUND (none set), #CJ_INVALID, #CJ_STORE,
 *         #CJ_NOMEM. */
int cj_clear_type_limits(cj_db *db, const char *type);

/** @brief Are @p limits what cj_set_type_limits() accepts? For front ends
 * that judge input before opening a store; thread-safe, touches no store.
 * @return #CJ_OK, #CJ_INVALID (with the detail cj_set_type_limits() would
 *         give). */
int cj_type_limits_check(const cj_type_limits *limits);
/** @} */

/** @defgroup subs Subscriptions
 * @{ */

/** @brief A state change of a subscribed job; release with cj_event_clear(). */
typedef struct cj_event {
	cj_sub *sub;    /**< the subscription it came from */
	char *type;     /**< the job's type */
	char *id;       /**< the job's id */
	cj_state state; /**< its new state, or #CJ_REMOVED */
	char *data;     /**< its data then; NULL for #CJ_REMOVED */
} cj_event;

/** @brief Frees the strings of @p ev and zeroes it. NULL is ignored. */
void cj_event_clear(cj_event *ev);

/**
 * @brief Subscribes to a job's state changes.
 *
 * Costs one read of the job, however many subscriptions the handle has.
 * The handle's notifier thread (started by the first subscription) then
 * reads the job again only when a commit, in any process, changed it (or a
 * job sharing its wake word, about 1 in 65,536); commits that change other
 * jobs cost it a comparison in memory and no store read. Thread-safe.
 *
 * @param[out] sub   the subscription, or NULL when the job is finished (it
 *                   will not change again unless re-added).
 * @param[out] state the job's current state (may be NULL).
 * @param[out] data  its current data (cj_free()), or NULL if not wanted.
 * @return #CJ_OK (also for a finished job, with @c *sub NULL);
 *         #CJ_NOT_FOUND; #CJ_INVALID; #CJ_STORE; #CJ_NOMEM.
 */
int cj_subscribe(cj_db *db, const char *type, const char *id, cj_sub **sub,
                 cj_state *state, char **data);

/** @brief Ends and frees a subscription, dropping its undelivered events.
 * NULL is ignored. No cj_wait() on it may be running.
 * @return #CJ_OK. */
int cj_unsubscribe(cj_sub *sub);

/**
 * @brief Ties @p sub to the cancellation @p c (NULL: unties it): once @p c
 * is fired, a cj_wait() over @p sub returns #CJ_CANCELED, at once if it
 * was fired before. @p c must outlive the tie (until cj_unsubscribe(), or
 * a cj_sub_set_cancel() with another). Not while a cj_wait() on @p sub runs.
 * @return #CJ_OK, #CJ_INVALID (NULL @p sub).
 */
int cj_sub_set_cancel(cj_sub *sub, cj_cancel *c);

/**
 * @brief Waits for the next event of any of @p subs (all of one @c cj_db).
 *
 * With @p only_state non-zero, events in other states for these
 * subscriptions are consumed and skipped. Each cj_update() of a running job
 * gives a running event; changes may coalesce when a job changes several
 * times before this process sees it, but the last state is always
 * delivered. After a finished or removed event a subscription delivers
 * nothing more.
 *
 * A dead job's subscription goes on: a redrive (cj_retry()) or a cj_add()
 * makes it pending again.
 *
 * @param[in] timeout_ms -1 forever, 0 do not wait.
 * @param[out] ev the event; release with cj_event_clear().
 * @return #CJ_OK; #CJ_TIMEOUT (nothing in time, or at once when every one
 *         of @p subs has ended and has nothing left to deliver);
 *         #CJ_CANCELED (the cancellation of one of @p subs was fired; see
 *         cj_sub_set_cancel(); no event is taken);
 *         #CJ_INVALID (no subscriptions, a NULL one, subscriptions of
 *         different stores, a bad state, a timeout below -1); #CJ_NOMEM.
 */
int cj_wait(cj_sub *const *subs, size_t n, int only_state, int64_t timeout_ms,
            cj_event *ev);

/**
 * @brief A file descriptor, for the caller's own event loop, that is
 * readable while @p sub has events that cj_wait() has not yet taken.
 *
 * Poll it (poll(), epoll, libuv, ...) for @c POLLIN; when it is readable,
 * take the events with cj_wait() and a timeout of 0 until it returns
 * #CJ_TIMEOUT: the descriptor stays readable until the last one is taken.
 * Never read, write or close it: it belongs to @p sub, made by the first
 * call (later ones give the same) and closed by cj_unsubscribe(). It is
 * set by the handle's notifier thread, so waiting on it costs what
 * cj_wait() costs and no CPU while nothing happens. Thread-safe.
 *
 * @param[out] fd the descriptor; -1 on failure.
 * @return #CJ_OK; #CJ_INVALID (NULL argument); #CJ_NOMEM (no memory, or
 *         the process has no descriptor to spare).
 */
int cj_sub_fd(cj_sub *sub, int *fd);

/** @brief Why a processor's job is no longer its own: see
 *  cj_subscribe_lease() and cj_job_wait_lost(). */
typedef enum cj_lost {
	CJ_LOST_NONE = 0,       /**< still held with the processor's lock */
	CJ_LOST_REMOVED = 1,    /**< the job was removed (cj_remove()) */
	CJ_LOST_TAKEN_BACK = 2, /**< pending again: the activity monitor took
	                             it back (its processor stopped calling
	                             cj_update() in time), or it was resubmitted
	                             and finished */
	CJ_LOST_REACCEPTED = 3, /**< running under another lock: taken back,
	                             or removed and added again, and accepted
	                             by another processor since */
	CJ_LOST_FINISHED = 4    /**< finished: by a holder of this lock (this
	                             handle, or one rebuilt with
	                             cj_job_resume()), or by another processor
	                             after it was taken back */
} cj_lost;

/** @brief "held", "removed", "taken back", "accepted again", "finished",
 * or "unknown". Static; never fails. */
const char *cj_lost_name(int reason);

/**
 * @brief Subscribes a processor to the loss of its job: the subscription
 * delivers one event, as soon as @p job is no longer held with its lock
 * (removed, taken back, accepted again by another processor, finished),
 * and ends.
 *
 * This is how a processor learns at once, from any process using the
 * store, that it must stop, rather than at its next cj_update() (which
 * would return #CJ_HALT). Wait for the event with cj_wait() (several jobs
 * at once, a cancellation with cj_sub_set_cancel()) or poll cj_sub_fd()
 * in an event loop; cj_sub_lost() says why. The event's state is the
 * job's state when it was seen lost (#CJ_REMOVED, #CJ_PENDING, #CJ_RUNNING
 * under another lock, #CJ_FINISHED); its data is NULL. The processor's own
 * cj_update() calls deliver nothing. A job already lost when this is
 * called gives a subscription with its event already queued.
 *
 * Costs one read of the job; afterwards, as for cj_subscribe(), the
 * notifier reads it again only when a commit changed it (its processor's
 * own cj_update() included), and commits that change other jobs cost no
 * read. Free it with cj_unsubscribe(). Thread-safe.
 *
 * @param[out] sub the subscription; NULL on failure.
 * @return #CJ_OK; #CJ_INVALID (NULL argument, or this thread holds a
 *         transaction on @p db); #CJ_STORE; #CJ_NOMEM.
 */
int cj_subscribe_lease(cj_db *db, const cj_job *job, cj_sub **sub);

/** @brief Why the job of a lease subscription (cj_subscribe_lease()) was
 * lost: #CJ_LOST_NONE while it is held (and for NULL or a subscription of
 * cj_subscribe()); set when its event is queued, and kept after it was
 * taken. Thread-safe; never fails. */
cj_lost cj_sub_lost(const cj_sub *sub);

/**
 * @brief Blocks until @p job is no longer held with its lock (removed,
 * taken back, accepted again, finished: see #cj_lost), in any process
 * using the store, or until the timeout or a cancellation.
 *
 * Sleeps without polling and wakes when the job is lost: a
 * cj_subscribe_lease() for the length of the call, so it costs one read
 * of the job, and commits that change other jobs wake it for no read.
 * Returns at once with the reason when the job is lost already.
 *
 * @param timeout_ms -1 forever, 0 do not wait (one look), else a deadline
 *                   in milliseconds.
 * @param cancel NULL, or a cancellation that ends the wait (see
 *               cj_cancel_fire()).
 * @param[out] reason why the job was lost (may be NULL); #CJ_LOST_NONE
 *               unless #CJ_OK.
 * @return #CJ_OK (the job was lost); #CJ_TIMEOUT (still held at the
 *         deadline); #CJ_CANCELED (@p cancel was fired, before or during
 *         the call); #CJ_INVALID (NULL @p db or @p job, a timeout below
 *         -1, or this thread holds a transaction on @p db); #CJ_STORE;
 *         #CJ_NOMEM.
 */
int cj_job_wait_lost(cj_db *db, const cj_job *job, int64_t timeout_ms, cj_cancel *cancel,
                     cj_lost *reason);

/**
 * @brief Takes a token for cj_changes_wait(), for observers of more than one
 * job (a type's jobs, a whole store) that read what they watch themselves:
 * take the token, read, then wait with it; a commit that the read missed
 * ends the wait. Thread-safe; costs no store read.
 * @return #CJ_OK, #CJ_INVALID (NULL argument).
 */
int cj_changes_token(cj_db *db, uint64_t *token);

/**
 * @brief Waits until a commit that changed any job of the store (added,
 * accepted, updated, finished, resubmitted, removed, taken back), or set or
 * removed a schedule, in any process, lands after @p token was taken with
 * cj_changes_token(), or
 * @p timeout_ms passes, or @p cancel is fired. Tells nothing of which jobs
 * changed; it does not poll: an idle store wakes it for nothing.
 *
 * @param timeout_ms -1 forever, 0 do not wait.
 * @param cancel NULL, or a cancellation that ends the wait (see
 *        @ref cancel).
 * @return #CJ_OK (a change may have landed: take a new token, then read
 *         again; rarely, the wait ends without a change); #CJ_TIMEOUT;
 *         #CJ_CANCELED; #CJ_INVALID (NULL @p db, @p timeout_ms below -1).
 *         Thread-safe.
 */
int cj_changes_wait(cj_db *db, uint64_t token, int64_t timeout_ms, cj_cancel *cancel);
/** @} */

/** @defgroup verify Checking a store
 * @{ */

/**
 * @brief Called by cj_verify() with each problem found, as one line of
 * text (no line break; type and id are quoted, with bytes outside printable
 * ASCII written as \xNN). @p problem is valid only during the call. A
 * non-zero return stops the check.
 */
typedef int (*cj_verify_fn)(const char *problem, void *arg);

/**
 * @brief Reads a whole store, from one consistent snapshot, and checks it
 * against the invariants of its data model (doc/format.md):
 *  - every key of the job space decodes, into a key the library writes;
 *  - every value decodes: job values, type timeouts (1 to
 *    #CJ_MAX_TYPE_TIMEOUT), the store's format version, watch stamps;
 *  - every job's data is one valid JSON object, and its type and id are
 *    valid;
 *  - a job's indexes agree with it: a running job has a lock, a sequence
 *    and exactly one activity entry, at that sequence, and no pending
 *    entry; a job that is not running has no activity entry and at most
 *    one pending entry, at its scheduled time; only a running job is
 *    flagged for resubmission;
 *  - a job's failure record is sound: its value is of the store's format,
 *    a dead job is not running, has no pending entry and a finish time, a
 *    running one is at attempt 1 or later and has no finish time, each of
 *    its errors (at most #CJ_MAX_ERRORS) is one JSON object, its own
 *    retry policy and every type's are within their ranges;
 *  - every pending and activity entry belongs to a job in that state;
 *  - a finished or dead job has a finish time and exactly one entry in
 *    the index retention reads, at that time; every entry belongs to a job
 *    in that state; each type's count of them is right;
 *  - every schedule decodes, and its definition is one cj_schedule_set()
 *    accepts (its cron expression parses and fires, its zone loads).
 *
 * The library never leaves a store that breaks one of these (each of its
 * transactions keeps them, and is atomic); a problem means the store was
 * damaged from outside (disk, file system, manual edits) or a bug. The
 * caller's own keys (cj_tx_put()) are not checked. It only reads: nothing
 * is repaired. It takes time and memory proportional to the store, and
 * holds one read snapshot while it runs.
 *
 * @param report  called for each problem; NULL: only count them.
 * @param[out] problems the number of problems found (may be NULL).
 * @return #CJ_OK when the whole store was read (then @c *problems says
 *         whether it is sound); @p report's non-zero return; #CJ_INVALID
 *         (NULL @p db, or this thread holds a transaction on it);
 *         #CJ_STORE (the engine could not read the store to its end, such
 *         as a damaged page; @c *problems counts what was found before);
 *         #CJ_NOMEM.
 */
int cj_verify(cj_db *db, cj_verify_fn report, void *arg, uint64_t *problems);
/** @} */

#ifdef __cplusplus
}
#endif
#endif /* COUCHJOBS_H */
