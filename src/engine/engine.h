/*
 * The storage engine interface.
 *
 * An engine is an ordered key-value store with transactions, plus a way to
 * wake waiters in other processes when a commit changes something they wait
 * for. Everything RFC 007 says lives in the core, on top of these ops; an
 * engine knows nothing of jobs.
 *
 * Each engine file exports one `const struct cj_engine`; engine.c lists
 * them, and cj_open() picks one by URL scheme.
 *
 * What every engine guarantees (the core relies on nothing else):
 *  - Ops return CJ_OK or a CJ_* code, never a native one; native text goes
 *    to cj_last_error() through cj__fail(). Memory the engine allocates
 *    comes from cj__malloc() and friends and goes back through cj_free()
 *    (cj_int.h), so that the library's allocation failures can be tested.
 *  - Keys are compared as bytes (memcmp, shorter first), except that an
 *    engine may order keys longer than 450 bytes that share their first
 *    450 bytes among themselves as it likes. Keys are 1 to
 *    CJ_ENGINE_MAX_KEY bytes; scan and claim bounds up to
 *    CJ_ENGINE_MAX_KEY + 1 bytes.
 *  - A write transaction sees its own writes. Read transactions see one
 *    consistent snapshot.
 *  - Write transactions are isolated key by key: what get() returns in a
 *    write transaction holds until it ends (no other write transaction
 *    changes that key meanwhile), and two write transactions that both
 *    find a key absent take turns. scan() in a write transaction need not
 *    hold anything: what the core acts on it reads again with get(), or
 *    takes with claim_first(). An engine whose writers take turns (one
 *    writer at a time) keeps all of this by construction.
 *  - claim_first() holds what it returns as get() does, but never waits:
 *    a key another write transaction holds is skipped. (Under one writer
 *    at a time nothing is ever held by another: it is the first key.)
 *  - commit_version(): in a write transaction, the number of its commit,
 *    unique, and increasing in the order the numbers were handed out (an
 *    engine may hand it out at the first call rather than at commit: then
 *    a transaction that took its number earlier may commit later); in a
 *    read transaction, a number >= every number handed out before the
 *    transaction began. Numbers start at 1. It may do I/O and fail; the
 *    core then abandons the transaction.
 *  - notify() marks a channel; the mark takes effect when, and only if, the
 *    transaction commits. A commit that marked channel C, in any process
 *    on any host sharing the store, makes every wait(C, token) with a token
 *    taken before the commit return.
 *  - A transient failure that is cured by running the transaction again
 *    (serialization failure, the store had to grow) is CJ_CONFLICT; one
 *    that running again cannot cure (the store cannot grow) is CJ_STORE.
 *  - Nested transactions (optional: begin_nested, commit_nested and
 *    abort_nested, all three or none). A transaction nested in a write
 *    transaction sees the parent's writes; while it is open the core uses
 *    only it, never the parent. commit_nested() makes its writes and its
 *    notify() marks the parent's, as if made in the parent; abort_nested()
 *    undoes exactly them and leaves the parent as it was before
 *    begin_nested(), usable, whatever failed inside the nested one (a full
 *    map, a transaction too large, an I/O error: the failure is the nested
 *    one's alone, except a lost connection, which is the whole
 *    transaction's). commit_version() of a nested transaction is its
 *    parent's. One level of nesting is enough. The core uses nesting to
 *    combine the own transactions of several threads into one commit (one
 *    durable flush: tx.c); an engine that leaves the ops NULL commits each
 *    alone.
 *  - `version` is CJ_ENGINE_VERSION as the engine was written to it:
 *    cj_open() refuses an engine written to another version of this file.
  */
#ifndef CJ_ENGINE_H
#define CJ_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "couchjobs.h"

#define CJ_ENGINE_VERSION 16 /* 4: nested transactions; 5: wait_any; 6: notify_one, rouse;
                              7: prefetch, round_trips; 8: shared_flushes;
                              9: prefetch_scan; 10: shared, receipt_put, receipt_get,
                              sync (combining across processes); 11: add;
                              12: count_shards; 13: claim_pair; 14: statements;
                              15: notes_sent, notes_received; 16: speculate, settle */
#define CJ_ENGINE_MAX_KEY 4096

typedef struct cj_edb cj_edb; /* an engine's open store */
typedef struct cj_etx cj_etx; /* an engine's transaction */
struct cj_buf;                 /* tuple.h */
/* One counter to add to (add below). */
typedef struct cj_eadd {
	const uint8_t *k;
	size_t kl;
	int64_t delta;
} cj_eadd;

/* How claim_pair derives a second key from the key k it claims: p (pl
 * bytes) followed by k's bytes after a field that starts at offset at,
 * whose first byte b is followed by |b - base| more bytes of it. */
typedef struct cj_ederive {
	const uint8_t *p;
	size_t pl;
	size_t at;
	uint8_t base;
} cj_ederive;

/* The key spaces of a store. */
enum cj_space {
	CJ_SPACE_JOBS = 0, /* the RFC's ("couch_jobs", ...) keys */
	CJ_SPACE_USER = 1, /* the caller's own keys (cj_tx_put) */
	CJ_SPACE_COUNT
};

/* Called for each key of a scan; k and v are valid only until the call
 * uses the transaction. The call may read (get) from the transaction; it
 * may write to it too, but then the scan may or may not see the writes.
 * Non-zero stops the scan and is returned by scan(). */
typedef int (*cj_scan_fn)(const uint8_t *k, size_t kl, const uint8_t *v,
                          size_t vl, void *arg);

/* supports bits (0x1, once "wakes other processes", is not reused: every
 * engine must, see above) */
/* The engine asks the core to leave out the RFC's watches_pending /
 * watches_activity keys (their channels are notified all the same). They
 * are written by every change of a type and read by nobody in this
 * library; an engine whose writers run side by side sets this so that the
 * writers of a type do not take turns on them. */
#define CJ_ENGINE_NO_WATCH_KEYS 0x2u
/* The engine's writers run side by side, and a write transaction that
 * takes nothing costs no more than a read: cj_accept then claims at once,
 * without a read-only look first (which keeps idle acceptors from taking
 * the writer's turn where writers take turns; there it is left out only
 * while jobs are there to take), and looks only when the claim found
 * nothing. */
#define CJ_ENGINE_CLAIM_AT_ONCE 0x4u
/* The engine's write transactions take turns: each one reads what every
 * write transaction before it committed, and none commits between its
 * reads and its own commit. The core may then leave out a notification
 * that a read in the same transaction shows nobody can be waiting for
 * (cj__run_ended, limits.c). */
#define CJ_ENGINE_WRITERS_TAKE_TURNS 0x8u

struct cj_engine {
	const char *name;
	const char *const *schemes; /* URL prefixes it takes, NULL-terminated */
	int version;                /* CJ_ENGINE_VERSION it was written to */
	unsigned supports;

	/* url is the whole URL as given to cj_open(). */
	int (*open)(const char *url, const cj_options *opts, cj_edb **out);
	void (*close)(cj_edb *edb);

	int (*begin)(cj_edb *edb, int write, cj_etx **out);
	int (*commit)(cj_etx *tx); /* frees tx whatever it returns */
	void (*abort)(cj_etx *tx); /* frees tx */
	/* *out: the number described above. CJ_OK or a code. */
	int (*commit_version)(cj_etx *tx, uint64_t *out);
	/* The native handle behind tx (cj_tx_native). */
	void *(*native)(cj_etx *tx);

	/* *v is valid until the next op on tx. CJ_NOT_FOUND if absent. */
	int (*get)(cj_etx *tx, int space, const void *k, size_t kl,
	           const uint8_t **v, size_t *vl);
	int (*put)(cj_etx *tx, int space, const void *k, size_t kl,
	           const void *v, size_t vl);
	/* CJ_NOT_FOUND if absent. */
	int (*del)(cj_etx *tx, int space, const void *k, size_t kl);
	/* Keys in [lo, hi), ascending (bounds: see the top of the file). */
	int (*scan)(cj_etx *tx, int space, const void *lo, size_t ll,
	            const void *hi, size_t hl, cj_scan_fn fn, void *arg);

	/* Write transactions only. The first key in [lo, hi) that no other
	 * transaction holds, now held by this one until it ends, copied to
	 * key_out (reset first): 1; 0 if there is none; or a code. Keys other
	 * transactions hold are skipped, not waited for. */
	int (*claim_first)(cj_etx *tx, int space, const void *lo, size_t ll,
	                   const void *hi, size_t hl, struct cj_buf *key_out);
	/* Optional (NULL: the core calls del). Deletes k if it is there,
	 * without telling whether it was; the engine may defer the work, and
	 * a failure then comes from a later op on tx or from the commit. */
	int (*del_blind)(cj_etx *tx, int space, const void *k, size_t kl);

	/* Channels are short strings chosen by the core. */
	int (*notify)(cj_etx *tx, const char *chan);
	/* A token for chan; a later wait() returns once chan was notified
	 * after this call. */
	uint64_t (*watch)(cj_edb *edb, const char *chan);
	/* Sleeps until chan is notified after token was taken, wake() is
	 * called on chan, or deadline_ms (CLOCK_MONOTONIC milliseconds;
	 * -1: none) passes. CJ_OK or CJ_TIMEOUT; may return CJ_OK spuriously. */
	int (*wait)(cj_edb *edb, const char *chan, uint64_t token,
	            int64_t deadline_ms);
	/* Wakes this process's waiters on chan (others may wake too). */
	void (*wake)(cj_edb *edb, const char *chan);

	/* Optional (NULL: never). Non-zero when the store could only be opened
	 * for reading: every write transaction fails, and the core runs no
	 * activity monitor. */
	int (*readonly)(cj_edb *edb);

	/* Job words (cj_int.h). Marks job number job like notify() marks a
	 * channel: a commit bumps the job's word, its group's word, CJ_WORD_NEW
	 * and "activity", in the order cj__wordset_each gives. */
	int (*notify_job)(cj_etx *tx, unsigned job);
	/* The value of wake word w (0 .. CJ_WORDS - 1) as this process sees it
	 * now: a commit that marked it changes it before its waiters wake. Only
	 * equality of two values means anything. */
	uint64_t (*word)(cj_edb *edb, unsigned w);
	/* Bumps wake word w as a commit would, waking its waiters in this
	 * process (others may see the bump too). */
	void (*bump)(cj_edb *edb, unsigned w);

	/* Optional, all three or none (see the top of the file). A
	 * transaction nested in the write transaction parent: CJ_OK with *out,
	 * or a code (*out NULL; the parent is as it was). */
	int (*begin_nested)(cj_etx *parent, cj_etx **out);
	/* Hands tx's writes and marks to its parent; frees tx whatever it
	 * returns. On failure nothing of tx is in the parent. */
	int (*commit_nested)(cj_etx *tx);
	/* Undoes tx and frees it. */
	void (*abort_nested)(cj_etx *tx);

	/* wait() on n channels at once (1 .. CJ_WAIT_ANY_MAX): sleeps until
	 * some chans[i] is notified after tokens[i] was taken (watch()), wake()
	 * is called on one of them, or deadline_ms passes; without waking for
	 * other channels' notifications (but for those of channels sharing a
	 * wake word). CJ_OK or CJ_TIMEOUT; may return CJ_OK spuriously. */
	int (*wait_any)(cj_edb *edb, const char *const *chans, const uint64_t *tokens,
	                size_t n, int64_t deadline_ms);

	/* Optional, both or neither (NULL: the core calls notify() instead,
	 * and never rouse()). notify_one() marks chan as notify() does, except
	 * that the commit wakes, across every process, only as many of the
	 * waiters sleeping on chan's wake word as times the transaction (its
	 * nested ones included) marked chan this way, not all of them; a
	 * notify() of the same word in the transaction wakes all. The waiters
	 * left asleep see the notification at their next wake-up (their token
	 * is then out of date). The core marks this way only channels whose
	 * every waiter hands on a wake-up it cannot use, with rouse(). */
	int (*notify_one)(cj_etx *tx, const char *chan);
	/* Wakes every waiter sleeping on chan's wake word, in every process,
	 * without notifying it: a waiter whose token is current may return
	 * CJ_OK spuriously and should wait again; one whose token is out of
	 * date (it was left asleep by notify_one) sees the notification. An
	 * engine with rouse never needs a waiter to look again without a
	 * notification: its waits may then return CJ_OK only spuriously. */
	void (*rouse)(cj_edb *edb, const char *chan);
	/* Optional (NULL: nothing). In a write transaction, says that a get()
	 * of k follows: the engine may send that read now, with the next
	 * statement that needs an answer, so that two reads cost one round
	 * trip. k may be held from now on, as get() holds it; the get() then
	 * returns k as it is then (the engine forgets what it fetched when the
	 * transaction writes k). A failure of the read may come from a later
	 * op on tx instead. */
	int (*prefetch)(cj_etx *tx, int space, const void *k, size_t kl);
	/* Optional (NULL: 0). How many times the engine waited for a server's
	 * answers since open (cj_stats.round_trips). */
	uint64_t (*round_trips)(cj_edb *edb);
	/* Optional (NULL: 0). Commits since open whose durable flush another
	 * commit's flush made unneeded (cj_stats.shared_flushes). */
	uint64_t (*shared_flushes)(cj_edb *edb);
	/* Optional (NULL: nothing). In a write transaction, says that a
	 * scan() of [lo, hi) follows: the engine may send its first read now,
	 * as prefetch() does (and several prefetches may travel together).
	 * It holds nothing; the scan then sees the keys as they were when the
	 * read ran, with the transaction's own writes (the engine forgets
	 * what it fetched when the transaction writes a key in [lo, hi)). A
	 * failure of the read may come from a later op on tx instead. */
	int (*prefetch_scan)(cj_etx *tx, int space, const void *lo, size_t ll, const void *hi,
	                     size_t hl);

	/* Optional, all four or none (NULL: calls of different processes are
	 * never combined): what src/combine.c needs to run the calls of
	 * several processes sharing the store in one write transaction of
	 * whichever leads. An engine offers them when its commits are flushed
	 * one at a time and nesting works (the ops above).
	 * shared(): len bytes of memory shared by every process that opens the
	 * store (a file of the store mapped shared; all zero when new, its
	 * blocks allocated, so that writes to it never fail), valid until
	 * close. The same pointer on every call; CJ_STORE when it cannot be
	 * had (a read-only store). */
	int (*shared)(cj_edb *edb, size_t len, void **out);
	/* In a write transaction (or one nested in it): records tag as the
	 * receipt of slot (0 .. 65535), in the engine's own bookkeeping,
	 * committed with the transaction (and gone with it if it aborts);
	 * nothing when tx wrote nothing (running such a call again changes
	 * nothing either: it needs no receipt). */
	int (*receipt_put)(cj_etx *tx, unsigned slot, uint64_t tag);
	/* The last committed receipt of slot (0: none), read in a transaction
	 * of its own. */
	int (*receipt_get)(cj_edb *edb, unsigned slot, uint64_t *tag);
	/* Makes every commit so far durable (those of processes that died
	 * before they flushed theirs included). */
	int (*sync)(cj_edb *edb);
	/* Optional (NULL: the core gets, adds and puts). In a write
	 * transaction, adds a[i].delta to the counter at a[i].k for each
	 * i < n (n at least 1, the keys distinct and in ascending order): a
	 * value of CJ_COUNTER_LEN bytes holding a big-endian two's complement
	 * int64 (absent: 0; the sum wraps), without telling the result; the
	 * engine may defer the work, as del_blind's, and may delete a counter
	 * whose sum is 0. The keys are held from now on. */
	int (*add)(cj_etx *tx, int space, const cj_eadd *a, size_t n);

	/* Optional (NULL: CJ_COUNT_SHARDS). The shards of each count of jobs
	 * (counts.c) that the writers of the store spread over, 1 ..
	 * CJ_COUNT_SHARDS: a property of the store's counters, the same for
	 * every process and every handle. Shards spare writers that run side
	 * by side each other's counter; an engine whose writers take turns
	 * takes 1, so that the counts of a type are a few keys side by side
	 * and a commit writes one page for them. */
	int (*count_shards)(cj_edb *db);
	/* Optional (NULL: the core claims the second key with claim_first()
	 * after). claim_first() of [lo, hi) (every key in it longer than
	 * d->at) and, in the same step, of the key d derives from the key it
	 * takes (cj_ederive): 1 with the key taken in key_out and, when the
	 * derived key is there and no other transaction holds it, the derived
	 * key in second_out, held from now on as claim_first() holds (second_out
	 * is left empty otherwise: the derived key is absent or held by
	 * another; it is not waited for); 0 if there is no key to take; or a
	 * code. Both are reset first. */
	int (*claim_pair)(cj_etx *tx, int space, const void *lo, size_t ll, const void *hi,
	                  size_t hl, const cj_ederive *d, struct cj_buf *key_out,
	                  struct cj_buf *second_out);
	/* Optional (NULL: 0). How many statements the engine sent to a
	 * server since open (cj_stats.statements). */
	uint64_t (*statements)(cj_edb *edb);
	/* Optional (NULL: 0). Commits since open whose notification the
	 * engine sent to other processes (cj_stats.notifications_sent), and
	 * notifications this process received from the server
	 * (cj_stats.notifications_received). */
	uint64_t (*notes_sent)(cj_edb *edb);
	uint64_t (*notes_received)(cj_edb *edb);

	/* Optional, both or neither (NULL: every read asks the store).
	 * speculate(): called on a write transaction just begun, before any
	 * other op, by a caller that runs the transaction again from the
	 * start when its commit returns CJ_CONFLICT, and that calls settle()
	 * before it acts on a failure of its own work in it (a code that work
	 * returned, the transaction then abandoned). The engine may then
	 * answer get(), and scan() of a range that holds one key k ([k, k
	 * followed by a 0 byte)), from what it knows without asking the store
	 * (prefetch() and prefetch_scan() likewise), provided that the commit
	 * writes nothing and returns CJ_CONFLICT unless the store, at that
	 * point of the transaction, holds what was answered (and grants the
	 * locks the read takes): each answer is then what the read would have
	 * returned there. settle(): CJ_OK when every answer so far held,
	 * CJ_CONFLICT when one did not (the caller runs the transaction
	 * again), or a code (the store could not tell); then abort(). */
	void (*speculate)(cj_etx *tx);
	int (*settle)(cj_etx *tx);
};
/* The length of a counter value (add). */
#define CJ_COUNTER_LEN 8

/* The most channels one wait_any() takes. */
#define CJ_WAIT_ANY_MAX 64

/* NULL-terminated, in order of preference; the first takes plain paths. */
extern const struct cj_engine *const cj__engines[];

/* Opens the store at url with the engine its scheme names (engine.c):
 * CJ_OK with *eng and *edb; CJ_INVALID for an unknown scheme or an engine
 * written to another CJ_ENGINE_VERSION; or the engine's code. */
int cj__engine_open(const char *url, const cj_options *opts,
                    const struct cj_engine **eng, cj_edb **edb);
/* Closes what cj__engine_open opened (either may be NULL). */
void cj__engine_close(const struct cj_engine *eng, cj_edb *edb);
/* 1 when the engine opened edb read-only (its readonly op), else 0. */
int cj__engine_readonly(const struct cj_engine *eng, cj_edb *edb);

#endif
