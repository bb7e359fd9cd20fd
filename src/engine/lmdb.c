/*
 * The embedded engine, on LMDB.
 *
 * A store is a directory:
 *   data.mdb, lock.mdb  the LMDB environment
 *   wake                wake words shared by the processes (os/os.h): the
 *                       CJ_WORDS words of cj_int.h, u32 each, in order.
 *                       The first build's file held the 1024 channel words
 *                       alone; it is grown in place, and a process of that
 *                       build keeps using its first 1024 words as before.
 *   reserve             LME_RESERVE bytes of disk kept for a full disk
 *   flush               64-bit words shared by the processes that flush
 *                       (see "Shared flushes" below)
 *   combine             the slots of calls combined across processes
 *                       (src/combine.c; engine.h's shared), made at the
 *                       first combined call, and the byte locks of the
 *                       processes' owner ids (src/os/owner.c)
 *   log                 a checkpoint of data.mdb's meta pages and a record
 *                       of each commit's key changes since (lmdb_log.h;
 *                       "the log" below)
 *
 * Files: LMDB opens data.mdb and lock.mdb by path itself, following
 * symlinks; so lme_open() first checks the directory (os.h: nobody else
 * may write it) and then opens every file without following a symlink,
 * creating it if missing. Once checked, nobody else can replace them.
 * lock.mdb and wake are mapped and written through their mappings: they
 * get their blocks for real when checked, so that a full disk can never
 * make such a write fail (with SIGBUS). If a file can only be read, the
 * store opens read-only (MDB_RDONLY; MDB_NOLOCK if lock.mdb cannot be
 * written): reads work, write transactions fail at begin.
 *
 * A full disk: LMDB writes data.mdb with pwrite(), so a commit that needs
 * more blocks fails with ENOSPC (CJ_STORE, nothing written). A commit
 * that removes more keys than it writes (emptying a full store) then
 * truncates the reserve file and runs again (CJ_CONFLICT) in the space it
 * freed. The reserve is made again when this process next opens the store
 * or commits, at most every LME_RESERVE_RETRY_MS, when space allows.
 *
 * Named databases in the environment:
 *   "jobs"       the jobs space (keys as in cj_int.h)
 *   "user"       the caller's own keys
 *   "cj_engine"  this engine's bookkeeping: "layout" = u32 BE, LME_LAYOUT
 * and, in the main database beside the named ones' records:
 *   "number"     u64 BE, the number of the last write commit (layout 3;
 *                layouts 1 and 2 called it "commit")
 *   "r" + u16 BE slot = u64 BE, the receipt of the last call of that
 *                combining slot that committed (engine.h's receipt_put:
 *                src/combine.c)
 * Every commit writes the number, and every commit rewrites the main
 * database's page anyway (the record of "jobs" or "user", whose root
 * moved), so the number costs no page of its own; in "cj_engine" it cost
 * one more page, in another place on disk, per commit. Layout 1 kept
 * "commit" and the receipts in "cj_engine"; layout 2 moved them to the
 * main database; layout 3 renamed "commit" to "number" when the log came
 * (every commit writes a record). Older layouts are converted at open, and
 * the key a build before the conversion reads is removed, so that such a
 * process, still running, fails its next transaction instead of numbering
 * commits apart or committing without a record. A store opened read-only
 * keeps its layout and is read as it is.
 *
 * LMDB allows one writer at a time across processes, so transactions never
 * conflict; commit numbers are the counter plus one, written in the commit
 * itself, so they grow with commit order.
 *
 * Durability: a writable open keeps the log (doc/engine-log.md; "the log"
 * below). LMDB runs with MDB_NOSYNC and flushes nothing in its commits:
 * each commit first writes one record of its key changes into the log,
 * and a durable commit (CJ_SYNC_FULL) is acknowledged once a flush of the
 * log that began after its record was written has ended (lme_durable). So
 * a durable commit costs one flush, of the log, where LMDB's own way costs
 * two (its data pages, then its meta page). data.mdb is flushed by
 * checkpoints alone; after a power loss the first open writes the last
 * checkpoint's meta pages back into it and replays the records after it.
 * A relaxed commit (CJ_SYNC_RELAXED) flushes nothing, and soon voids the
 * log (lme_log_void): a relaxed store is as a power loss leaves LMDB with
 * MDB_NOSYNC, as couchjobs.h says. A transaction large enough that LMDB
 * could write some of its pages before its commit (a spill) makes sure of
 * the checkpoint's pin first, and holds the log's gate to its end ("the
 * spill guard" below).
 *
 * Shared flushes: the flush that makes commit N durable is needed only
 * until some flush of the log starts after N's record was written
 * (fdatasync covers every write to the file before it, whichever process
 * made it). The flush file's words, shared by the processes that open the
 * store for writing, say so:
 *   DURABLE    every commit up to this number is on disk
 *   LAST       commits up to this number have written their record and
 *              committed (a committer raises it after mdb_txn_commit)
 *   FLUSHING   the LAST a flush started at (one is under way while it is
 *              after DURABLE)
 *   BEGUN      the number of the last write transaction begun (raised
 *              under the writer lock)
 *   ABANDONED  the last such number that ended without a commit
 * (u64 each, in the machine's byte order; they only grow; the log's own
 * words follow them: "the log" below.) After commit N, lme_durable raises
 * LAST to N. If DURABLE has reached N, the commit is on disk and needs no
 * flush (cj_stats.shared_flushes). Else it waits on DURABLE (a futex) while
 * a flush started at FLUSHING >= N is under way (for at most
 * LME_FLUSH_WAIT_MS). Else, or past the wait (the other process may have
 * been killed), it reads LAST as L, claims FLUSHING = L, flushes the log,
 * raises DURABLE to L and wakes the waiters: every commit up to L had
 * written its record before that flush began. The words only ever claim
 * less than is true, so a process killed anywhere leaves them true, and a
 * waiter's bound keeps anyone from hanging (no word names a process:
 * nothing here depends on process ids, nor on PID namespaces). Relaxed
 * commits never raise DURABLE; their records are flushed by the next
 * durable commit's flush, unasked. BEGUN and ABANDONED date from the
 * layout before the log, whose commits each flushed data.mdb and so
 * covered every earlier commit (a waiter then also waited for a later
 * writer); they are still kept. The words are checked against the
 * store's commit number at every open, under the writer lock: ahead of
 * it, they belong to a data.mdb that was replaced, and are set to 0
 * (lme_flush_check). This only runs while a commit is acknowledged:
 * nothing polls.
 *
 * Group commit: the core combines the own transactions of several threads
 * of a handle into one (src/group.c), each call in a nested transaction
 * (LMDB's child transactions, begin_nested below), so that they share one
 * record and one flush of the log. A killed process leaves nothing of its
 * open transaction, nested ones and all; its callers were not answered. Calls of several processes are
 * combined the same way (src/combine.c), through the combine file
 * (shared below) and a receipt per call in "cj_engine".
 *
 * Waking acceptors: a commit that made n jobs of a type pending
 * (notify_one) bumps the type's pending word and wakes n of its sleepers,
 * in whichever processes, instead of all; the others sleep on with an
 * out-of-date token. An acceptor woken for a job it does not take hands the
 * wake-up on (accept.c) with rouse: a futex wake of the word that leaves
 * it as it is, so that only the sleepers that have not looked since its
 * last change look (the others find their token current and sleep again);
 * word 0 of the wake file stamps the last rouse, so that several acceptors
 * handing on the same change wake the sleepers once.
 *
 * Keys longer than LME_SHORT bytes (LMDB takes at most 511) are stored under
 * their first LME_SHORT bytes followed by an 8-byte hash of the whole key,
 * and the value is prefixed with the whole key (u32 BE length, bytes), which
 * is compared on every read. Short keys sort as they are; a long key sorts
 * among others by its first LME_SHORT bytes; scans compare whole keys with
 * their bounds, so every range is exact.
 *
 * The map grows: a write that finds it full fails with CJ_CONFLICT, and the
 * abort that follows doubles the map under the resize lock (every
 * transaction of the process holds it shared), so the retry fits. A map
 * that cannot grow makes the next write transaction try again and, failing,
 * give CJ_STORE. A transaction that finds that another process grew the map
 * adopts its size first (lme_txn_begin), the first one of an open too.
 *
 * claim_first() is the first key: writers take turns, so no other write
 * transaction holds anything.
 *
 * A store is opened once per process, however many handles open it: see
 * "one environment per store in a process" below.
 *
 * Layout bump procedure: raise LME_LAYOUT, teach lme_open() to convert or
 * refuse the older layout, and note it in doc/format.md.
 */
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cj_int.h"
#include "engine/lmdb_log.h"
#include "os/os.h"

#define LME_LAYOUT 3
#define LME_NUMBER "number" /* layout 3's commit counter (before: "commit") */
#define LME_SHORT 500
#define LME_LONG (LME_SHORT + 8)
#define LME_DEFAULT_MAP ((size_t)1 << 30)
#define LME_MAX_READERS 1024
#define LME_RESIZE_TRIES 100 /* adoptions of another process's map size */
/* at least LMDB's lock file for LME_MAX_READERS (64 bytes a reader) */
#define LME_LOCK_BYTES ((size_t)(LME_MAX_READERS + 64) * 64)
#define LME_RESERVE ((size_t)1 << 20)
#define LME_RESERVE_RETRY_MS 10000
/* the flush file's 64-bit words (top of this file) */
#define LME_FLUSH_WORDS 32 /* u32: room for 16 (the first build's file: 8) */
#define LME_FLUSH_DURABLE 0 /* durable through this commit */
#define LME_FLUSH_LAST 1    /* the last commit acknowledged as written */
#define LME_FLUSH_FLUSHING 2 /* the last value of LAST a flush started at */
#define LME_FLUSH_BEGUN 3    /* the last write transaction begun, by number */
#define LME_FLUSH_ABANDONED 4 /* the last one that ended without a commit */
/* the log's words (doc/engine-log.md), changed only under the gate */
#define LME_LOG_END 5   /* bytes of records written, ever (only grows) */
#define LME_LOG_GEN 6   /* the generation of the newest checkpoint */
#define LME_LOG_START 7 /* LOG_END when it was made: its records start there */
#define LME_PIN_OWNER 8 /* the owner id of the process pinning it; 0: none */
#define LME_LOG_DIRTY 9 /* 1 while the words above are being changed */
#define LME_LOG_PAGES 10 /* data.mdb's last page at the last checkpoint */
#define LME_LOG_SALT 11  /* the last checkpoint's salt (lmdb_log.h) */
#define LME_LOG_FORCE 12 /* 1: the next commit makes a checkpoint first */
#define LME_LOG_KICK 13  /* the generation and step of the last writeback
                            started ahead of a checkpoint (lme_log_kick) */
#define LME_LOG_VOID 14  /* 1: the log holds no checkpoint (lme_log_void) */
/* A checkpoint is made once this many bytes of records follow the last,
 * or data.mdb has grown by this many pages since (while a checkpoint is
 * pinned, LMDB reuses no page freed after it: this bounds the growth) */
#define LME_CKPT_BYTES ((uint64_t)1 << 20)
#define LME_CKPT_PAGES 2048
/* how long a commit waits for another process's flush before it flushes
 * itself (that process may have been killed); for a later writer's commit,
 * at most this many of its own last flush's time, plus 1 ms */
#define LME_FLUSH_WAIT_MS 200
#define LME_FLUSH_WRITER_WAIT 2

struct cj_edb {
	MDB_env *env;
	MDB_dbi dbi[CJ_SPACE_COUNT];
	MDB_dbi meta;
	MDB_dbi book; /* holds "commit" and the receipts: main (layout 1: meta) */
	const char *number; /* the commit counter's key: LME_NUMBER (as read only: "commit") */
	pthread_rwlock_t resize; /* shared by transactions, exclusive to grow */
	int has_resize;          /* resize was initialised */
	atomic_int grow_err;     /* the last growth failed with this (0: none) */
	int sync_after;          /* CJ_SYNC_FULL: flush after each commit */
	int skip_durable;        /* fault builds: acknowledge without it */
	int fault_nopin;         /* fault builds: checkpoints keep no pin */
	int fault_noreplay;      /* fault builds: recovery replays nothing */
	int fault_trustpin;      /* fault builds: a pin's holder is never dead */
	int fault_unpinkeep;     /* fault builds: a pin let go stays marked held */
	int fault_noendread;     /* fault builds: the record at the log's end is
	                            never read */
	int fault_voidearly;     /* fault builds: a void spoils the slots first */
	cj_wakemap *wake;
	cj_wakemap *flush; /* the flush file's words (NULL: flush alone) */
	_Atomic uint64_t shared; /* flushes left to other commits */
	_Atomic int64_t flush_ms; /* the last flush of this process took this */
	char *path;
	int dirfd;              /* the store directory, checked */
	mode_t mode;            /* of files created */
	int readonly;           /* a file could only be opened for reading */
	_Atomic int64_t reserve_retry; /* 0: the reserve is there; else when to
	                                  make it again (monotonic ms) */
	/* where data.mdb is mapped (map_end 0: not known), and its length as
	 * last seen: see lme_in_file() */
	_Atomic uintptr_t map_base, map_end;
	_Atomic size_t file_len;
	pthread_mutex_t combine_mu; /* guards what follows */
	void *combine;              /* the combine file, mapped (engine.h) */
	size_t combine_len;
	/* the registry of the environments open in this process (below) */
	cj_edb *next;
	dev_t dev; /* of the store directory */
	ino_t ino;
	dev_t lock_dev; /* of its lock.mdb, as opened (lock_ino 0: none) */
	ino_t lock_ino;
	int refs;   /* opens not closed yet */
	int forked; /* in a child after fork: not to be handed out */
	/* the log (doc/engine-log.md): every writable open keeps one */
	int logging;
	lml log;
	const cj_os_owner *owner; /* this process's id among the log's users */
	pthread_mutex_t gate_mu;  /* the gate, within the process */
	pthread_mutex_t pin_mu;   /* guards pin, pin_gen */
	MDB_txn *pin;             /* a read transaction on a checkpoint */
	uint64_t pin_gen;         /* its generation */
	pthread_t pin_thread;     /* lets go of pins of past generations */
	int has_pin_thread;
	atomic_int stop;
	uint64_t ckpt_bytes; /* a checkpoint once this many bytes of records */
	uint64_t ckpt_pages; /* or once data.mdb grew by this many pages */
	lml_ckpt *ck;      /* room for a checkpoint (under the gate) */
	cj_buf rd;         /* a record read back (under the gate) */
	uint64_t spill_at; /* the spill guard's threshold ("the spill guard") */
	uint32_t psize;    /* LMDB's page size */
};

struct cj_etx {
	cj_edb *db;
	cj_etx *parent; /* of a nested transaction, else NULL */
	MDB_txn *txn;
	int write;
	int dirty;
	int grow; /* the map was full: grow it when this transaction ends */
	int landed; /* committed */
	long puts, dels; /* keys written and deleted */
	uint64_t version;
	cj_wordset notify; /* words marked by notify() */
	cj_buf kb; /* physical key */
	cj_buf vb; /* physical value of a long key */
	cj_buf rec; /* its changes, as a log record (lmdb_log.h) */
	uint64_t dirty_max; /* at most this many dirty pages: "the spill guard" */
	int guarded; /* the spill guard ran (a transaction, not a nested one) */
	int gated;   /* it holds the gate, to its commit or abort */
	int norec;  /* a relaxed one begun on a void log: builds no record */
};

static int lme_err(int rc, const char *what) {
	switch (rc) {
	case MDB_NOTFOUND: return CJ_NOT_FOUND;
	case ENOMEM: return cj__fail(CJ_NOMEM, "lmdb %s: %s", what, mdb_strerror(rc));
	default:
		return cj__fail(CJ_STORE, "lmdb %s: %s", what,
		                rc > 0 ? cj__os_strerror(rc) : mdb_strerror(rc));
	}
}

/* Makes the last commit durable (see the top of this file); a no-op when
 * syncing is relaxed. */
static int lme_flush(cj_edb *db) {
	if (!db->sync_after) return CJ_OK;
	if (db->logging) return cj__lml_flush(&db->log);
	int rc = mdb_env_sync(db->env, 1);
	return rc ? lme_err(rc, "sync") : CJ_OK;
}

/* Makes commit number n (just committed by this process) durable, sharing
 * flushes with the other processes through the flush file: see "Shared
 * flushes" at the top of this file. */
static int lme_durable(cj_edb *db, uint64_t n) {
	cj_wakemap *m = db->flush;
	if (!db->sync_after) return CJ_OK;
#ifdef CJ_FAULT_INJECTION
	if (db->skip_durable) return CJ_OK; /* lme_fault_flags() */
#endif
	if (!m) return lme_flush(db);
	/* this commit's data flush covered every earlier commit (LMDB's
	 * flushes; with the log, commits make none) */
	if (!db->logging && cj__os_word64_raise(m, LME_FLUSH_DURABLE, n - 1))
		cj__os_word64_wake(m, LME_FLUSH_DURABLE);
	cj__os_word64_raise(m, LME_FLUSH_LAST, n);
	int64_t until = -1;
	for (;;) {
		cj__fault_hold_here(CJ_HOLD_FLUSH_CHECK);
		uint64_t d = cj__os_word64_load(m, LME_FLUSH_DURABLE);
		if (d >= n) {
			atomic_fetch_add_explicit(&db->shared, 1, memory_order_relaxed);
			return CJ_OK;
		}
		uint64_t f = cj__os_word64_load(m, LME_FLUSH_FLUSHING);
		uint64_t b = cj__os_word64_load(m, LME_FLUSH_BEGUN);
		/* a flush that started after this commit is under way, or a write
		 * transaction that began after it, whose commit flushes it */
		int flushing = f > d && f >= n;
		int writing = !db->logging && b > n && cj__os_word64_load(m, LME_FLUSH_ABANDONED) < b;
		int64_t now = cj__mono_ms();
		if ((flushing || writing) && (until < 0 || now < until)) {
			if (until < 0) {
				int64_t own = atomic_load_explicit(&db->flush_ms, memory_order_relaxed);
				int64_t bound = flushing ? LME_FLUSH_WAIT_MS : 1 + LME_FLUSH_WRITER_WAIT * own;
				until = cj__add_sat(now, bound < LME_FLUSH_WAIT_MS ? bound : LME_FLUSH_WAIT_MS);
			}
			cj__fault_hold_here(CJ_HOLD_FLUSH_WAIT);
			cj__os_word64_wait(m, LME_FLUSH_DURABLE, d, until);
			continue;
		}
		cj__fault_hold_here(CJ_HOLD_FLUSH_CLAIM);
		/* lead a flush (or, past the wait, flush alone): it covers every
		 * commit up to the last that had written its meta page */
		uint64_t l = cj__os_word64_load(m, LME_FLUSH_LAST);
		if (until < 0 && !cj__os_word64_swap(m, LME_FLUSH_FLUSHING, f, l))
			continue; /* another began one: look again */
		if (until >= 0) cj__os_word64_raise(m, LME_FLUSH_FLUSHING, l);
		cj__fault_hold_here(CJ_HOLD_FLUSH_SYNC);
		int64_t t0 = cj__mono_ns();
		int rc = lme_flush(db);
		if (rc) return rc;
		atomic_store_explicit(&db->flush_ms, (cj__mono_ns() - t0 + 999999) / 1000000,
		                      memory_order_relaxed);
		if (cj__os_word64_raise(m, LME_FLUSH_DURABLE, l))
			cj__os_word64_wake(m, LME_FLUSH_DURABLE);
		return CJ_OK;
	}
}

/* Fault-injection builds only: the power-loss test (test/test_powerloss.c)
 * shows that it catches a commit path that is not durable, with
 * CJ_TEST_SKIP_META_FLUSH=1 (a commit acknowledged before a flush of the
 * log covered its record), CJ_TEST_LOG_NOPIN=1 (checkpoints keep no pin:
 * LMDB may reuse the pages a recovery restores) and CJ_TEST_LOG_NOREPLAY=1
 * (a recovery restores the checkpoint and replays nothing),
 * CJ_TEST_LOG_TRUST_PIN=1 (a commit takes a dead process for the pin's
 * live holder), CJ_TEST_LOG_UNPIN_KEEP=1 (a process that lets go of its
 * pin to resize the map or close leaves it marked as held),
 * CJ_TEST_LOG_NOENDREAD=1 (the record at the log's end is never read: a
 * record whose writer was killed after its commit is overwritten), CJ_TEST_LOG_VOID_EARLY=1
 * (a void spoils the checkpoint slots before it flushes data.mdb); and it
 * makes
 * checkpoints as often as it likes with CJ_TEST_CKPT_BYTES (bytes of
 * records) and CJ_TEST_CKPT_PAGES (pages data.mdb grew). The spill guard
 * runs once a transaction's bound of dirty pages reaches
 * CJ_TEST_SPILL_PAGES instead of LME_SPILL_AT (so that small
 * transactions take its path), and never with CJ_TEST_SPILL_UNGUARDED=1
 * (a real spill may then overwrite a page of a checkpoint whose pin was
 * lost). */
static void lme_fault_flags(cj_edb *db, unsigned *flags) {
#ifdef CJ_FAULT_INJECTION
	const char *e = getenv("CJ_TEST_SKIP_META_FLUSH");
	db->skip_durable = db->sync_after && e && strcmp(e, "1") == 0;
	e = getenv("CJ_TEST_CKPT_BYTES"); /* checkpoints this often (test_powerloss) */
	if (e && atoll(e) > 0) db->ckpt_bytes = (uint64_t)atoll(e);
	e = getenv("CJ_TEST_LOG_NOPIN");
	db->fault_nopin = e && strcmp(e, "1") == 0;
	e = getenv("CJ_TEST_LOG_TRUST_PIN");
	db->fault_trustpin = e && strcmp(e, "1") == 0;
	e = getenv("CJ_TEST_LOG_UNPIN_KEEP");
	db->fault_unpinkeep = e && strcmp(e, "1") == 0;
	e = getenv("CJ_TEST_LOG_NOENDREAD");
	db->fault_noendread = e && strcmp(e, "1") == 0;
	e = getenv("CJ_TEST_LOG_VOID_EARLY");
	db->fault_voidearly = e && strcmp(e, "1") == 0;
	e = getenv("CJ_TEST_LOG_NOREPLAY");
	db->fault_noreplay = e && strcmp(e, "1") == 0;
	e = getenv("CJ_TEST_CKPT_PAGES");
	if (e && atoll(e) > 0) db->ckpt_pages = (uint64_t)atoll(e);
	e = getenv("CJ_TEST_SPILL_PAGES"); /* the spill guard runs this soon */
	if (e && atoll(e) > 0) db->spill_at = (uint64_t)atoll(e);
	e = getenv("CJ_TEST_SPILL_UNGUARDED"); /* never: test_powerloss shows it fail */
	if (e && strcmp(e, "1") == 0) db->spill_at = UINT64_MAX;
	(void)flags;
#else
	(void)db;
	(void)flags;
#endif
}

/* Fault-injection builds only: CJ_TEST_OPEN_REWRITE=1 makes an open
 * rewrite data.mdb in place before LMDB opens it (truncated, then written
 * back a page at a time, then flushed), as a careless conversion of a
 * layout at open would: a power loss during it loses the store. The
 * power-loss test (test/test_powerloss.c) sets it for its recovery opens
 * alone, to show that its second crash catches an unsafe open. */
static void lme_fault_rewrite(cj_edb *db) {
#ifdef CJ_FAULT_INJECTION
	const char *e = getenv("CJ_TEST_OPEN_REWRITE");
	if (db->readonly || !e || strcmp(e, "1") != 0) return;
	int fd = openat(db->dirfd, "data.mdb", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0) return;
	uint8_t *p = NULL;
	if (fstat(fd, &st) == 0 && st.st_size > 0 && (p = cj__malloc((size_t)st.st_size)) &&
	    pread(fd, p, (size_t)st.st_size, 0) == st.st_size && ftruncate(fd, 0) == 0) {
		for (off_t at = 0; at < st.st_size; at += 4096) {
			size_t n = st.st_size - at < 4096 ? (size_t)(st.st_size - at) : 4096;
			if (pwrite(fd, p + at, n, at) != (ssize_t)n) break;
		}
		(void)fdatasync(fd);
	}
	cj_free(p);
	close(fd);
#else
	(void)db;
#endif
}

/* Maps the flush file (the shared-flush words and the log's words), checked
 * as every store file is; a read-only open leaves it alone. */
static int lme_flush_open(cj_edb *db) {
	int ro, fd;
	if (db->readonly) return CJ_OK;
	int rc = cj__os_store_file(db->dirfd, db->path, "flush", db->mode,
	                           LME_FLUSH_WORDS * sizeof(uint32_t), &ro, &fd);
	if (rc) return rc;
	if (!ro) rc = cj__os_wordmap_open(fd, "flush", LME_FLUSH_WORDS, 0, &db->flush);
	close(fd);
	return rc;
}

/* Under the writer lock, with the store's last commit number last: flush
 * words ahead of it are another store's (data.mdb was replaced while no
 * process had it open) and would vouch for commits never flushed; they are
 * set to 0, which vouches for nothing. */
static void lme_flush_check(cj_edb *db, uint64_t last) {
	cj_wakemap *m = db->flush;
	if (!m) return;
	for (unsigned w = LME_FLUSH_DURABLE; w <= LME_FLUSH_ABANDONED; w++)
		if (cj__os_word64_load(m, w) > last) cj__os_word64_set(m, w, 0);
}

static uint64_t lme_hash(const uint8_t *p, size_t n) {
	uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
		h ^= h >> 29;
	}
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ull;
	h ^= h >> 32;
	return h;
}

static void be64(uint8_t *o, uint64_t v) {
	for (int i = 7; i >= 0; i--, v >>= 8) o[i] = (uint8_t)v;
}

static uint64_t rd64(const uint8_t *p) {
	uint64_t v = 0;
	for (int i = 0; i < 8; i++) v = v << 8 | p[i];
	return v;
}

/* The physical key of k. */
static MDB_val lme_key(cj_etx *tx, const void *k, size_t kl) {
	MDB_val key = {kl, (void *)k};
	if (kl <= LME_SHORT) return key;
	uint8_t h[8];
	be64(h, lme_hash(k, kl));
	cj__buf_reset(&tx->kb);
	cj__buf_add(&tx->kb, k, LME_SHORT);
	cj__buf_add(&tx->kb, h, 8);
	key.mv_size = tx->kb.len;
	key.mv_data = tx->kb.p;
	return key;
}

/* Splits the stored value of a long key into its whole key and value.
 * 0 on success, -1 if corrupt. */
static int lme_unwrap(const MDB_val *v, const uint8_t **k, size_t *kl,
                      const uint8_t **val, size_t *vl) {
	const uint8_t *p = v->mv_data;
	if (v->mv_size < 4) return -1;
	size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
	if (n > v->mv_size - 4) return -1;
	*k = p + 4;
	*kl = n;
	*val = p + 4 + n;
	*vl = v->mv_size - 4 - n;
	return 0;
}

static int lme_meta_get(MDB_txn *txn, MDB_dbi meta, const char *name, MDB_val *v) {
	MDB_val k = {strlen(name), (void *)name};
	return mdb_get(txn, meta, &k, v);
}

/* Layout 1 to 2: "commit" and the receipts move from "cj_engine" to the
 * main database, in txn (the open's). */
static int lme_convert_1(cj_edb *db, MDB_txn *txn) {
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, db->meta, &c);
	if (rc) return rc;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		int commit = k.mv_size == 6 && memcmp(k.mv_data, "commit", 6) == 0;
		if (!commit && (k.mv_size != 3 || *(const char *)k.mv_data != 'r')) continue;
		uint8_t kb[6], vb[8];
		if (v.mv_size != 8) {
			rc = MDB_CORRUPTED;
			break;
		}
		memcpy(kb, k.mv_data, k.mv_size); /* both move when written */
		memcpy(vb, v.mv_data, 8);
		MDB_val nk = {k.mv_size, kb}, nv = {8, vb};
		if ((rc = mdb_put(txn, db->book, &nk, &nv, 0)) || (rc = mdb_cursor_del(c, 0)))
			break;
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND) return rc;
	uint8_t layout[4] = {0, 0, 0, 2};
	MDB_val lk = {6, "layout"}, lv = {4, layout};
	return mdb_put(txn, db->meta, &lk, &lv, 0);
}

/* Layout 2 to 3 (the log): the commit counter is renamed, so that a
 * process of a build before the log, which would commit without a record,
 * fails its next transaction instead ("no commit counter"). In txn (the
 * open's, alone: lme_log_start then makes the first checkpoint). */
static int lme_convert_2(cj_edb *db, MDB_txn *txn) {
	MDB_val ok = {6, "commit"}, v;
	int rc = mdb_get(txn, db->book, &ok, &v);
	if (rc) return rc;
	uint8_t num[8];
	if (v.mv_size != 8) return MDB_CORRUPTED;
	memcpy(num, v.mv_data, 8);
	MDB_val nk = {strlen(LME_NUMBER), LME_NUMBER}, nv = {8, num};
	uint8_t layout[4] = {0, 0, 0, 3};
	MDB_val lk = {6, "layout"}, lv = {4, layout};
	if ((rc = mdb_put(txn, db->book, &nk, &nv, 0)) || (rc = mdb_del(txn, db->book, &ok, NULL)))
		return rc;
	return mdb_put(txn, db->meta, &lk, &lv, 0);
}

static void lme_unpin(cj_edb *db);

/* Begins an LMDB transaction holding db->resize shared: 0 (lock held) or
 * an LMDB code (lock released). A map another process grew is adopted, a
 * bounded number of times. */
static int lme_txn_begin(cj_edb *db, unsigned flags, MDB_txn **txn) {
	for (int tries = 0;; tries++) {
		pthread_rwlock_rdlock(&db->resize);
		int rc = mdb_txn_begin(db->env, NULL, flags, txn);
		if (rc == 0) return 0;
		pthread_rwlock_unlock(&db->resize);
		if (rc != MDB_MAP_RESIZED || tries == LME_RESIZE_TRIES) return rc;
		/* another process grew the map: adopt its size */
		pthread_rwlock_wrlock(&db->resize);
		atomic_store(&db->map_end, 0); /* it moves: lme_in_file() */
		lme_unpin(db); /* no transaction of the process may be active */
		rc = mdb_env_set_mapsize(db->env, 0);
		pthread_rwlock_unlock(&db->resize);
		if (rc) return rc;
	}
}

/* ---- the log ---------------------------------------------------------------
 *
 * doc/engine-log.md gives the design; lmdb_log.h the file. Every writable
 * open keeps the log: LMDB runs with MDB_NOSYNC, each commit writes its
 * changes as one record before mdb_txn_commit, and a durable commit is on
 * disk once a flush of the log that began after its record was written has
 * ended (lme_durable). A checkpoint flushes data.mdb, pins its last commit
 * C with a read transaction (LMDB reuses no page C uses while a reader is
 * on it), and copies data.mdb's two meta pages into the log; after a power
 * loss, the first open writes them back and replays the records after C.
 *
 * The gate (an OFD lock of the log's second byte, and gate_mu within the
 * process) is held by a writer from before its record is written to after
 * its commit, and by a process dropping its pin; the log's words change
 * only under it. So no writer is ever between its check of the pin and
 * its commit while the pin goes, and the words and the records agree
 * whenever the gate is free, but for a holder killed inside it: then
 * LOG_DIRTY is 1 (its words are read again from the log) or the record at
 * the end is one it wrote (counted if its commit
 * happened, overwritten if not: the store's commit number says which). */

#define LME_REC_META 2 /* record spaces past the core's: "cj_engine" */
#define LME_REC_BOOK 3 /* the main database ("commit", receipts) */

static int lme_gate(cj_edb *db, int on) {
	if (on) pthread_mutex_lock(&db->gate_mu);
	struct flock f;
	memset(&f, 0, sizeof f);
	f.l_type = on ? F_WRLCK : F_UNLCK;
	f.l_whence = SEEK_SET;
	f.l_start = 1;
	f.l_len = 1;
	int rc = CJ_OK;
	while (fcntl(db->log.fd, F_OFD_SETLKW, &f) != 0)
		if (errno != EINTR) {
			rc = cj__fail(CJ_STORE, "%s: the store's log: cannot lock: %s", db->path,
			              cj__os_strerror(errno));
			break;
		}
	if (!on || rc) pthread_mutex_unlock(&db->gate_mu);
	return rc;
}

/* Adds a change to tx's record. */
static void lme_rec(cj_etx *tx, int op, int space, const MDB_val *k, const MDB_val *v) {
	if (!tx->db->logging || tx->norec) return;
	cj__lml_rec_change(&tx->rec, op, space, k->mv_data, k->mv_size, v ? v->mv_data : NULL,
	                   v ? v->mv_size : 0);
}

static uint64_t lme_w(cj_edb *db, unsigned w) { return cj__os_word64_load(db->flush, w); }
static void lme_wset(cj_edb *db, unsigned w, uint64_t v) { cj__os_word64_set(db->flush, w, v); }

/* Replaces this process's pin with pin (NULL: none) of generation gen. */
static void lme_pin_set(cj_edb *db, MDB_txn *pin, uint64_t gen) {
	pthread_mutex_lock(&db->pin_mu);
	MDB_txn *old = db->pin;
	db->pin = pin;
	db->pin_gen = gen;
	pthread_mutex_unlock(&db->pin_mu);
	if (old) mdb_txn_abort(old);
}

/* Makes a checkpoint (gate held; in a write transaction of this process or
 * alone): flushes data.mdb, pins its last commit, and writes the
 * checkpoint of generation gen (the words' next, or given) into the log. */
static int lme_checkpoint(cj_edb *db, uint64_t gen) {
	if (!gen) gen = lme_w(db, LME_LOG_GEN) + 1;
	int rc = mdb_env_sync(db->env, 1), fd;
	if (rc) return lme_err(rc, "sync");
	MDB_txn *pin;
	if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &pin))) return lme_err(rc, "begin");
	MDB_val k = {strlen(db->number), (void *)db->number}, v;
	MDB_stat st;
	if ((rc = mdb_get(pin, db->book, &k, &v)) || v.mv_size != 8 ||
	    (rc = mdb_env_stat(db->env, &st)) || (rc = mdb_env_get_fd(db->env, &fd))) {
		mdb_txn_abort(pin);
		return rc ? lme_err(rc, "checkpoint") : cj__fail(CJ_STORE, "corrupt store: no "
		                                                    "commit counter");
	}
	lml_ckpt *c = db->ck;
	c->gen = gen;
	c->commit = rd64(v.mv_data);
	c->psize = st.ms_psize;
	c->slot = (int)(gen & 1);
	if ((rc = cj__random(&c->salt, sizeof c->salt))) {
		mdb_txn_abort(pin);
		return rc;
	}
	size_t n = 2 * (size_t)st.ms_psize;
	ssize_t got = st.ms_psize <= LML_PAGE_MAX ? pread(fd, c->meta, n, 0) : -1;
	if (got != (ssize_t)n) {
		mdb_txn_abort(pin);
		return cj__fail(CJ_STORE, "%s: cannot read data.mdb's meta pages", db->path);
	}
	lme_wset(db, LME_LOG_DIRTY, 1);
	if ((rc = cj__lml_ckpt_write(&db->log, c))) {
		mdb_txn_abort(pin);
		return rc; /* still dirty: the next writer reads the words again */
	}
	lme_wset(db, LME_LOG_GEN, gen);
	lme_wset(db, LME_LOG_SALT, c->salt);
	lme_wset(db, LME_LOG_START, lme_w(db, LME_LOG_END));
	lme_wset(db, LME_LOG_FORCE, 0);
	lme_wset(db, LME_LOG_VOID, 0);
	lme_wset(db, LME_PIN_OWNER, cj__os_owner(db->owner));
	MDB_envinfo info;
	if (mdb_env_info(db->env, &info) == 0) lme_wset(db, LME_LOG_PAGES, info.me_last_pgno);
	lme_wset(db, LME_LOG_DIRTY, 0);
#ifdef CJ_FAULT_INJECTION
	if (db->fault_nopin) { /* lme_fault_flags() */
		mdb_txn_abort(pin);
		pin = NULL;
	}
#endif
	lme_pin_set(db, pin, gen);
	cj__os_word64_wake(db->flush, LME_LOG_GEN); /* older pins may go */
	return CJ_OK;
}

/* The words again, from the log (gate held, after a holder of the gate
 * was killed while changing them): the newest checkpoint's generation and
 * its records up to commit last; unpinned, so the caller checkpoints. */
static int lme_log_repair(cj_edb *db, uint64_t last) {
	int rc = cj__lml_size(&db->log); /* another process may have grown it */
	if (rc == CJ_OK) rc = cj__lml_ckpt_read(&db->log, db->ck);
	if (rc && rc != CJ_NOT_FOUND) return rc;
	uint64_t gen = rc ? lme_w(db, LME_LOG_GEN) : db->ck->gen, pos = LML_AREA;
	uint64_t salt = rc ? 0 : db->ck->salt;
	for (;;) {
		lml_rec r;
		int got = cj__lml_read(&db->log, pos, gen, salt, &db->rd, &r);
		if (got < 0) return got;
		if (!got || r.commit > last) break;
		pos += r.len;
	}
	lme_wset(db, LME_LOG_GEN, gen);
	lme_wset(db, LME_LOG_SALT, salt);
	lme_wset(db, LME_LOG_START, 0);
	lme_wset(db, LME_LOG_END, pos - LML_AREA);
	lme_wset(db, LME_PIN_OWNER, 0);
	/* the log may hold a checkpoint again: a relaxed writer voids it anew */
	lme_wset(db, LME_LOG_VOID, 0);
	lme_wset(db, LME_LOG_DIRTY, 0);
	return CJ_OK;
}

/* Whether the current generation is pinned by a live process. */
static int lme_pinned(cj_edb *db) {
	uint32_t owner = (uint32_t)lme_w(db, LME_PIN_OWNER);
	if (!owner) return 0;
#ifdef CJ_FAULT_INJECTION
	if (db->fault_trustpin && owner != cj__os_owner(db->owner)) return 1; /* lme_fault_flags() */
#endif
	if (owner != cj__os_owner(db->owner)) return cj__os_owner_alive(db->owner, owner);
	pthread_mutex_lock(&db->pin_mu);
	int mine = (db->pin || db->fault_nopin) && db->pin_gen == lme_w(db, LME_LOG_GEN);
	pthread_mutex_unlock(&db->pin_mu);
	return mine;
}

/* Whether enough has been written since the last checkpoint to make one:
 * 1/share of the bytes of records or of the pages of growth that make one
 * due (share 1: a checkpoint is due); if_unknown when the growth cannot be
 * read. */
static int lme_ckpt_due(cj_edb *db, uint64_t share, int if_unknown) {
	if (lme_w(db, LME_LOG_FORCE) ||
	    lme_w(db, LME_LOG_END) - lme_w(db, LME_LOG_START) >= db->ckpt_bytes / share)
		return 1;
	MDB_envinfo info;
	if (mdb_env_info(db->env, &info) != 0) return if_unknown;
	return (uint64_t)info.me_last_pgno >= lme_w(db, LME_LOG_PAGES) + db->ckpt_pages / share;
}

/* The relaxed mode's way out of the log (gate held, in a write
 * transaction of this process, before its commit). A checkpoint flushes
 * every page written since the last one, and while it is pinned LMDB
 * reuses none of them, so each commit's pages are new ones that the next
 * checkpoint must write: about four pages a commit, all flushed. A
 * durable commit pays that and gains a flush of its own; a relaxed one,
 * which flushes nothing on the engine without the log, would pay it for
 * nothing but a store that a power loss cannot damage (the relaxed mode
 * does not promise that: couchjobs.h). So where a relaxed commit would
 * have to make a checkpoint (the last is due, unpinned, or its record
 * area full), and sooner (lme_relaxed_leaves), it voids the log instead:
 *   1. flushes data.mdb: every commit so far is in it, durable ones
 *      included (they relied on the log and its checkpoint, which go);
 *   2. spoils both checkpoint slots (the older first, flushed: else a
 *      power loss could leave the older whole, and restore it over pages
 *      reused since) and flushes the log: a recovery then
 *      restores nothing and opens data.mdb as it is (as without the log);
 *      only then may a page of the last checkpoint be reused;
 *   3. marks the log void, unpinned, and moves the generation (every
 *      process's pin thread lets go of its pin).
 * While the log is void, relaxed commits write no record and take no gate,
 * and their transactions build none (lme_begin looks at VOID under LMDB's
 * writer lock, held until the commit; only a checkpoint or a repair clears
 * it, and both are made in write transactions or by an open that is
 * alone). A durable commit finds the log unpinned and makes a
 * checkpoint before it writes its record, as after a lost pin, so that
 * every record after a checkpoint is there again. */
static int lme_log_void(cj_edb *db) {
#ifdef CJ_FAULT_INJECTION
	int early = db->fault_voidearly ? cj__lml_ckpt_void(&db->log) : CJ_OK; /* lme_fault_flags() */
	if (early) return early;
#endif
	int rc = mdb_env_sync(db->env, 1);
	if (rc) return lme_err(rc, "sync");
	lme_wset(db, LME_LOG_DIRTY, 1);
	if ((rc = cj__lml_ckpt_void(&db->log))) return rc; /* still dirty: looked at again */
	lme_wset(db, LME_PIN_OWNER, 0);
	lme_wset(db, LME_LOG_GEN, lme_w(db, LME_LOG_GEN) + 1);
	lme_wset(db, LME_LOG_START, lme_w(db, LME_LOG_END));
	lme_wset(db, LME_LOG_VOID, 1);
	lme_wset(db, LME_LOG_DIRTY, 0);
	lme_pin_set(db, NULL, 0);
	cj__os_word64_wake(db->flush, LME_LOG_GEN); /* older pins may go */
	return CJ_OK;
}

/* Ahead of a checkpoint, after a commit (outside LMDB's writer lock and
 * the gate): starts the writeback of data.mdb's dirty pages, once each
 * time the way to the next checkpoint passes one of LME_KICK_STEPS steps
 * (of the record area, of the record bytes or of the pages data.mdb may
 * grow by, whichever is furthest), by whichever commit first sees the
 * step (a swap of LOG_KICK: generation * LME_KICK_STEPS + step). It does
 * not wait for the writes. The checkpoint's own flush (lme_checkpoint,
 * under the writer lock) then finds most of the pages written or being
 * written, and holds up every writer for little more than the pages of
 * the last step and the file's metadata, instead of everything written
 * since the last checkpoint.
 *
 * Nothing relies on it: the checkpoint still flushes data.mdb under the
 * lock before it writes its slot, and the writes started here are only
 * writes the kernel may make at any moment anyway (of pages LMDB has
 * written; the meta pages included, which a recovery writes back from the
 * checkpoint). So the correctness argument of the checkpoint
 * (doc/engine-log.md) is untouched; LOG_KICK is a hint, read and swapped
 * outside the gate, and a wrong value (a killed process, a recovery that
 * repeats a generation) only skips or repeats a writeback. */
#define LME_KICK_STEPS 8

static void lme_log_kick(cj_edb *db) {
	if (lme_w(db, LME_LOG_VOID)) return; /* no checkpoint to come */
	uint64_t gen = lme_w(db, LME_LOG_GEN), used = lme_w(db, LME_LOG_END) - lme_w(db, LME_LOG_START);
	uint64_t area = db->log.size > LML_AREA ? db->log.size - LML_AREA : 1;
	uint64_t bytes = area < db->ckpt_bytes ? area : db->ckpt_bytes;
	uint64_t step = used >= bytes ? LME_KICK_STEPS - 1 : used * LME_KICK_STEPS / bytes;
	MDB_envinfo info;
	if (mdb_env_info(db->env, &info) == 0 && db->ckpt_pages) {
		uint64_t base = lme_w(db, LME_LOG_PAGES), last = info.me_last_pgno;
		uint64_t grown = last > base ? last - base : 0;
		uint64_t ps = grown >= db->ckpt_pages ? LME_KICK_STEPS - 1
		                                      : grown * LME_KICK_STEPS / db->ckpt_pages;
		if (ps > step) step = ps;
	}
	if (!step) return;
	uint64_t want = gen * LME_KICK_STEPS + step; /* wraps harmlessly */
	uint64_t was = lme_w(db, LME_LOG_KICK);
	int fd;
	if (was == want || !cj__os_word64_swap(db->flush, LME_LOG_KICK, was, want) ||
	    mdb_env_get_fd(db->env, &fd))
		return;
	/* errors are the checkpoint's flush's to report */
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

/* Whether a relaxed commit voids the log rather than write its record
 * (lme_log_void): where a checkpoint would be made, and much sooner, after
 * 1/LME_RELAXED_SHARE of a checkpoint's worth of records or growth, so
 * that a relaxed process grows data.mdb by little before its commits reuse
 * pages again. */
#define LME_RELAXED_SHARE 16

static int lme_relaxed_leaves(cj_edb *db) {
	/* a checkpoint due at its full share is due at this one too */
	return lme_w(db, LME_LOG_VOID) || !lme_pinned(db) ||
	       lme_ckpt_due(db, LME_RELAXED_SHARE, 1);
}

/* Before tx's mdb_txn_commit: takes the gate (unless the spill guard holds
 * it for tx), makes sure the checkpoint is
 * pinned (or makes one), and writes tx's record; *end is LOG_END once the
 * commit is done. On failure the gate is free again. 1: a relaxed commit
 * that found the log void, or voided it (lme_log_void), commits without
 * a record, and the gate is free again. */
static int lme_log_write(cj_etx *tx, uint64_t *pos, uint64_t *end) {
	cj_edb *db = tx->db;
	int rc = CJ_OK;
	/* the spill guard took it already (lme_spill_guard): it is this
	 * function's from here, freed as it frees its own */
	if (tx->gated) tx->gated = 0;
	else if ((rc = lme_gate(db, 1))) return rc;
	if (lme_w(db, LME_LOG_DIRTY) && (rc = lme_log_repair(db, tx->version - 1))) goto fail;
	if (!db->sync_after && lme_relaxed_leaves(db)) goto bare;
	if (!lme_pinned(db) || lme_ckpt_due(db, 1, 0))
		if ((rc = lme_checkpoint(db, 0))) goto fail;
	uint64_t gen = lme_w(db, LME_LOG_GEN), e = lme_w(db, LME_LOG_END);
	uint64_t salt = lme_w(db, LME_LOG_SALT);
	uint64_t p = LML_AREA + (e - lme_w(db, LME_LOG_START));
	/* a record counted by nobody: its writer was killed after its commit.
	 * It is looked for at every commit (one read of the page at the log's
	 * end, in the page cache): a shared word saying when to look would not
	 * be set by a process of an older build of layout 3 on the same store,
	 * and its record would then be overwritten. cj__lml_read looks at the
	 * file's size again if the record would lie past the size this process
	 * knows (another process grew the file) */
	lml_rec r;
	int got = db->fault_noendread ? 0 : cj__lml_read(&db->log, p, gen, salt, &db->rd, &r);
	if (got < 0) {
		rc = got;
		goto fail;
	}
	if (got && r.commit + 1 == tx->version) {
		e += r.len;
		p += r.len;
		lme_wset(db, LME_LOG_END, e);
	}
	if ((rc = cj__lml_rec_seal(&tx->rec, gen, tx->version, salt))) goto fail;
	/* another process may have grown the file: its size is looked at again
	 * only when the record does not fit in the size this process knows */
	if (p + tx->rec.len > db->log.size && (rc = cj__lml_size(&db->log))) goto fail;
	if (p + tx->rec.len > db->log.size) {
		if (!db->sync_after) goto bare;
		/* the area is full: a new generation starts it over */
		if ((rc = lme_checkpoint(db, 0))) goto fail;
		if (LML_AREA + tx->rec.len > db->log.size &&
		    (rc = cj__lml_grow(&db->log, 2 * (LML_AREA + (uint64_t)tx->rec.len))))
			goto fail;
		gen = lme_w(db, LME_LOG_GEN);
		salt = lme_w(db, LME_LOG_SALT);
		e = lme_w(db, LME_LOG_END);
		p = LML_AREA;
		tx->rec.len -= 4; /* sealed again: the CRC goes */
		if ((rc = cj__lml_rec_seal(&tx->rec, gen, tx->version, salt))) goto fail;
	}
	if ((rc = cj__lml_write(&db->log, p, &tx->rec))) goto fail;
	cj__fault_hold_here(CJ_HOLD_LOG_WRITTEN);
	*pos = p;
	*end = e + tx->rec.len;
	return CJ_OK;
bare:
	if (!lme_w(db, LME_LOG_VOID) && (rc = lme_log_void(db))) goto fail;
	lme_gate(db, 0);
	return 1;
fail:
	lme_gate(db, 0);
	return rc;
}

/* After tx's mdb_txn_commit (committed or not): counts its record, or
 * spoils it (a failed commit's record must never be replayed), and frees
 * the gate. */
static void lme_log_done(cj_edb *db, int committed, uint64_t pos, uint64_t end) {
	if (committed) {
		lme_wset(db, LME_LOG_END, end);
	} else {
		static const uint8_t zero[4];
		if (pwrite(db->log.fd, zero, sizeof zero, (off_t)pos) != (ssize_t)sizeof zero ||
		    cj__lml_flush(&db->log) != CJ_OK)
			lme_wset(db, LME_LOG_DIRTY, 1); /* the next writer looks again */
	}
	lme_gate(db, 0);
}

/* ---- the spill guard -------------------------------------------------------
 *
 * Everything above rests on a write transaction's pages staying in memory
 * until mdb_txn_commit, after lme_log_write's look at the pin: a write
 * transaction numbered N never reuses a page of snapshot N - 1 (LMDB 0.9's
 * mdb_find_oldest starts from N - 1), so a checkpoint of N - 1 made at the
 * commit covers whatever it allocated before, even pages of an older
 * checkpoint whose pin was lost. LMDB breaks that for a large transaction:
 * mdb_page_spill, run before every put and delete (mdb_cursor_put,
 * mdb_cursor_del), writes dirty pages to data.mdb (at least 1/8 of
 * MDB_IDL_UM_MAX of them) when the transaction's room for dirty pages
 * (mt_dirty_room: MDB_IDL_UM_MAX = 2^17 - 1 entries at begin, one taken by
 * each page allocated or touched, a run of overflow pages taking one) is
 * no more than its estimate of the change, 2 x (the tree's depth + the
 * main database's depth + (node size + page size) / page size). A nested
 * transaction starts with its parent's room and hands its own back at its
 * commit; a copy of a page its parent dirtied takes none. With the pin
 * lost (its holder killed, the store opened alone), a spilled page may sit
 * where a page of the last checkpoint was, and a power loss before the
 * next checkpoint would restore a damaged tree.
 *
 * So each transaction keeps dirty_max, an upper bound of the dirty pages
 * it (and, for a nested one, its parent) took, raised by each change by
 *   4 x (depth + 1) + main depth + pages of the node (size / page + 1):
 * the path to the leaf touched (depth), the main database's path to the
 * tree's record (main depth, the first change of a tree), a split per
 * level and a new root (depth + 1), a branch's separator moved by a split
 * or a merge splitting it again (depth + 1), a delete's rebalancing touching
 * a neighbour per level (depth + 1), and the node's overflow pages (counted
 * as pages though LMDB takes one entry for them). The depths are taken as
 * LMDB's limit, 32 (CURSOR_STACK; a real tree here has 2 to 5 levels): so
 * 164 pages and the node's a change, and no call into LMDB to read a
 * depth (a first version read both depths with mdb_stat at each change).
 * Before a change, when dirty_max plus the spill's own estimate of it
 * (with 16 bytes of node header for LMDB's 8) reaches spill_at
 * (LME_SPILL_AT, half of MDB_IDL_UM_MAX: the room then left is at least as
 * much again), the transaction runs lme_spill_guard once (so after about
 * 400 changes, or at a put of about 128 MiB): it
 * takes the gate, repairs the words as lme_log_write does, makes a
 * checkpoint of N - 1 if the current one is not pinned by a live process
 * (the design page's "A checkpoint needs no abort"), and holds the gate to
 * its commit (lme_log_write then takes it as its own) or its end
 * (lme_end), so that no pin goes while a spill may write. A process killed
 * with it frees it (an OFD lock; a forked child closes its copy: "the
 * registry" below). A relaxed transaction that finds the log void (or
 * voids it, where lme_log_write would: lme_relaxed_leaves) holds nothing:
 * no recovery restores a checkpoint, and data.mdb was flushed at the void
 * (a relaxed store promises nothing against a power loss beyond that:
 * couchjobs.h). A recovery's replay needs no guard: it is transaction
 * C + 1 of the checkpoint C it restored, which it cannot reuse a page of.
 *
 * That runs it far sooner than LMDB could spill, which costs little: a
 * durable commit takes the gate and checks the pin anyway (lme_log_write),
 * the guard only does it earlier in the transaction; a relaxed one on a
 * void log takes nothing. Ordinary transactions (a call's few changes)
 * never come near it: they pay an add and a compare a change. */
#define LME_IDL_UM_MAX ((1u << 17) - 1) /* LMDB 0.9's midl.h (not public) */
#define LME_SPILL_AT ((uint64_t)LME_IDL_UM_MAX / 2)
#define LME_DEPTH_MAX 32 /* LMDB 0.9's CURSOR_STACK: no tree is deeper */

#ifdef CJ_FAULT_INJECTION
static atomic_long lme_guards, lme_guard_ckpts;

void cj__lme_spill_counts(long *guards, long *ckpts) {
	*guards = atomic_load(&lme_guards);
	*ckpts = atomic_load(&lme_guard_ckpts);
}
#endif

/* The spill guard's run (above): CJ_OK, or the gate could not be taken or
 * the checkpoint made (the change must not be made: the next one tries
 * again). */
static int lme_spill_guard(cj_etx *tx) {
	cj_edb *db = tx->db;
	if (!db->logging) return CJ_OK;
#ifdef CJ_FAULT_INJECTION
	atomic_fetch_add(&lme_guards, 1);
#endif
	/* VOID changes under LMDB's writer lock, which tx holds (lme_commit) */
	if (!db->sync_after && lme_w(db, LME_LOG_VOID) && !lme_w(db, LME_LOG_DIRTY)) {
		tx->guarded = 1;
		return CJ_OK;
	}
	int rc = lme_gate(db, 1);
	if (rc) return rc;
	if (lme_w(db, LME_LOG_DIRTY) && (rc = lme_log_repair(db, tx->version - 1))) goto fail;
	if (!db->sync_after && lme_relaxed_leaves(db)) {
		if (!lme_w(db, LME_LOG_VOID) && (rc = lme_log_void(db))) goto fail;
		lme_gate(db, 0);
		tx->guarded = 1;
		return CJ_OK;
	}
	if (!lme_pinned(db)) {
		if ((rc = lme_checkpoint(db, 0))) goto fail;
#ifdef CJ_FAULT_INJECTION
		atomic_fetch_add(&lme_guard_ckpts, 1);
#endif
	}
	cj__fault_hold_here(CJ_HOLD_SPILL_GUARDED);
	tx->guarded = 1;
	tx->gated = 1;
	return CJ_OK;
fail:
	lme_gate(db, 0);
	return rc;
}

/* Before a change (a put of kl + vl bytes, or a delete: vl 0) in tx:
 * runs the guard when the bound comes near spill_at (CJ_OK, or its
 * failure); *add is what the change adds to the bound once made. */
static int lme_spill_check(cj_etx *tx, size_t kl, size_t vl, uint64_t *add) {
	cj_edb *db = tx->db;
	cj_etx *top = tx->parent ? tx->parent : tx;
	uint64_t d = LME_DEPTH_MAX, pages = ((uint64_t)kl + vl) / db->psize + 1;
	*add = 4 * (d + 1) + d + pages;
	if (top->guarded) return CJ_OK;
	uint64_t now = top->dirty_max + (tx->parent ? tx->dirty_max : 0);
	uint64_t spill = 2 * (2 * d + ((uint64_t)kl + vl + 16 + db->psize) / db->psize);
	return now + spill >= db->spill_at ? lme_spill_guard(top) : CJ_OK;
}

/* One change of tx, in dbi: a put of k and v, or a delete of k when v is
 * NULL, with the guard before it and its pages added to the bound after
 * it. The guard's failure, or CJ_OK with LMDB's answer to the change in
 * *mrc (0, or an error for the caller to turn into one of ours). */
static int lme_change(cj_etx *tx, MDB_dbi dbi, MDB_val *k, MDB_val *v, int *mrc) {
	uint64_t add;
	int rc = lme_spill_check(tx, k->mv_size, v ? v->mv_size : 0, &add);
	if (rc) return rc;
	*mrc = v ? mdb_put(tx->txn, dbi, k, v, 0) : mdb_del(tx->txn, dbi, k, NULL);
	if (*mrc == 0) tx->dirty_max += add;
	return CJ_OK;
}

/* Lets go of this process's pin (to close, or to resize the map, which
 * LMDB allows only with no transaction of the process active): the next
 * writer pins a checkpoint of its own before it commits. */
static void lme_unpin(cj_edb *db) {
	if (!db->logging) return;
	pthread_mutex_lock(&db->pin_mu);
	int held = db->pin != NULL;
	pthread_mutex_unlock(&db->pin_mu);
	if (!held || lme_gate(db, 1)) return;
	if ((uint32_t)lme_w(db, LME_PIN_OWNER) == cj__os_owner(db->owner) && !db->fault_unpinkeep)
		lme_wset(db, LME_PIN_OWNER, 0);
	lme_pin_set(db, NULL, 0);
	lme_gate(db, 0);
}

/* A thread of each process that keeps the log: lets go of a pin once a
 * newer checkpoint is made (its generation word moves), so that LMDB may
 * reuse the pages freed since, however idle the process is. */
static void *lme_pin_main(void *arg) {
	cj_edb *db = arg;
	while (!atomic_load(&db->stop)) {
		uint64_t g = lme_w(db, LME_LOG_GEN);
		pthread_mutex_lock(&db->pin_mu);
		MDB_txn *old = db->pin && db->pin_gen < g ? db->pin : NULL;
		if (old) db->pin = NULL;
		pthread_mutex_unlock(&db->pin_mu);
		if (old) mdb_txn_abort(old);
		cj__os_word64_wait(db->flush, LME_LOG_GEN, g, -1);
	}
	return NULL;
}

/* Applies one change of a record (replay). */
static int lme_replay_change(void *arg, int op, int space, const uint8_t *k, size_t kl,
                             const uint8_t *v, size_t vl) {
	void **a = arg;
	cj_edb *db = a[0];
	MDB_txn *txn = a[1];
	MDB_dbi dbi = space < CJ_SPACE_COUNT ? db->dbi[space]
	              : space == LME_REC_META ? db->meta : db->book;
	if (space < 0 || space > LME_REC_BOOK || kl == 0 || kl > 511)
		return cj__fail(CJ_STORE, "the store's log: a malformed record");
	MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
	int rc = op == LML_PUT ? mdb_put(txn, dbi, &key, &val, 0) : mdb_del(txn, dbi, &key, NULL);
	if (rc == MDB_MAP_FULL) *(int *)a[2] = 1; /* lme_replay grows the map */
	return rc == 0 || (op == LML_DEL && rc == MDB_NOTFOUND) ? CJ_OK : lme_err(rc, "replay");
}

/* Alone, after a power loss, with data.mdb back at checkpoint c: applies
 * the records of its generation after its commit, in order; of two
 * records of one commit number the later counts (the first one's writer
 * was killed before its commit). Stops at the first that is not there. */
static int lme_replay_once(cj_edb *db, const lml_ckpt *c, long *applied, int *full) {
	*applied = 0;
	MDB_txn *txn;
	int rc = lme_txn_begin(db, 0, &txn);
	if (rc) return lme_err(rc, "begin");
	pthread_rwlock_unlock(&db->resize); /* alone */
	MDB_val k = {strlen(db->number), (void *)db->number}, v;
	if ((rc = mdb_get(txn, db->book, &k, &v)) || v.mv_size != 8 || rd64(v.mv_data) != c->commit) {
		mdb_txn_abort(txn);
		return cj__fail(CJ_STORE, "%s: data.mdb is not at the log's checkpoint (commit %llu)",
		                db->path, (unsigned long long)c->commit);
	}
	uint64_t last = c->commit, pos = LML_AREA;
	cj_buf next = CJ_BUF_INIT;
	lml_rec r, n;
	int got = cj__lml_read(&db->log, pos, c->gen, c->salt, &db->rd, &r);
	while (got == 1 && rc == CJ_OK) {
		int more = cj__lml_read(&db->log, pos + r.len, c->gen, c->salt, &next, &n);
		if (more < 0) {
			rc = more;
			break;
		}
		if (r.commit == last + 1 && !(more == 1 && n.commit == r.commit)) {
			void *a[3] = {db, txn, full};
			if ((rc = cj__lml_changes(&r, lme_replay_change, a))) break;
			last = r.commit;
			++*applied;
		} else if (r.commit > last + 1) {
			break; /* a gap: nothing after it can count */
		}
		pos += r.len;
		if (more != 1) break;
		cj_buf t = db->rd;
		db->rd = next;
		next = t;
		r = n;
		r.changes = db->rd.p + LML_REC_HEAD;
	}
	cj__buf_free(&next);
	if (got < 0) rc = got;
	if (rc == CJ_OK && (rc = mdb_txn_commit(txn))) {
		*full = rc == MDB_MAP_FULL;
		return lme_err(rc, "replay");
	}
	if (rc) mdb_txn_abort(txn);
	return rc;
}

/* The replay, in a map grown as a commit would grow it (lme_grow): the
 * restored checkpoint holds the map size of its moment, and the commits
 * after it may have needed more (a small cj_options.map_size). Alone: no
 * other transaction of the process is active. */
static int lme_replay(cj_edb *db, const lml_ckpt *c, long *applied) {
	for (;;) {
		int full = 0, rc = lme_replay_once(db, c, applied, &full);
		if (!full) return rc;
		MDB_envinfo info;
		atomic_store(&db->map_end, 0); /* it moves: lme_in_file() */
		if ((rc = mdb_env_info(db->env, &info)) == 0)
			rc = info.me_mapsize > SIZE_MAX / 2
			         ? ENOMEM
			         : mdb_env_set_mapsize(db->env, info.me_mapsize * 2);
		if (rc) return lme_err(rc, "replay: growing the map");
	}
}


/* Opens the log and takes this process's share of it (a shared lock while
 * the store is open); *alone: no other process has the store open, and
 * the log is this process's to make or recover. */
static int lme_log_open(cj_edb *db, int *alone) {
	*alone = 0;
	int rc = cj__lml_open(db->dirfd, db->path, db->mode, &db->log);
	if (rc) return rc;
	char p[4096];
	snprintf(p, sizeof p, "%s/log", db->path);
	if ((rc = cj__os_owner_claim(db->log.fd, p, &db->log, sizeof db->log))) return rc;
	db->owner = cj__os_owner_of(&db->log);
	if (!(db->ck = cj__calloc(1, sizeof *db->ck))) return cj__fail(CJ_NOMEM, "out of memory");
	for (int tries = 0;; tries++) {
		int got = cj__lml_lock(&db->log, 1);
		if (got < 0) return got;
		if (got) break;
		if ((got = cj__lml_lock(&db->log, 0)) < 0) return got;
		int h = cj__lml_head(&db->log, db->path);
		if (h) return h < 0 ? h : CJ_OK;
		/* its maker was killed before it was made: make it ourselves */
		if ((rc = cj__lml_lock(&db->log, 2)) < 0) return rc;
		if (tries == 1000)
			return cj__fail(CJ_STORE, "%s: the store's log is never made", db->path);
		sched_yield();
	}
	*alone = 1;
	int h = cj__lml_head(&db->log, db->path);
	if (h < 0) return h;
	return h ? CJ_OK : cj__lml_make(&db->log);
}

/* A store open read-only is read as data.mdb is; after a power loss that
 * may be a damaged state (commits since the last checkpoint are only in
 * the log), so such an open fails until a writable open has recovered it. */
static int lme_log_readonly_check(cj_edb *db) {
	lml l = {openat(db->dirfd, "log", O_RDONLY | O_NOFOLLOW | O_CLOEXEC), 0};
	if (l.fd < 0) return CJ_OK; /* no log: a store of an earlier layout */
	struct stat st;
	uint8_t was[LML_BOOT_LEN], now[LML_BOOT_LEN];
	int rc = fstat(l.fd, &st) != 0
	             ? cj__fail(CJ_STORE, "%s: log: %s", db->path, cj__os_strerror(errno))
	             : CJ_OK;
	l.size = rc ? 0 : (uint64_t)st.st_size;
	if (rc == CJ_OK && (rc = cj__lml_boot(&l, was)) == CJ_OK &&
	    (rc = cj__lml_machine_boot(now)) == CJ_OK && memcmp(was, now, sizeof now) != 0) {
		lml_ckpt *c = cj__calloc(1, sizeof *c);
		rc = !c ? cj__fail(CJ_NOMEM, "out of memory") : cj__lml_ckpt_read(&l, c);
		if (rc == CJ_OK)
			rc = cj__fail(CJ_STORE, "%s: the store has not been opened since the machine "
			              "restarted: it can only be read once a process that may write "
			              "it has opened it (and recovered its last commits)", db->path);
		else if (rc == CJ_NOT_FOUND)
			rc = CJ_OK;
		cj_free(c);
	}
	cj__lml_close(&l);
	return rc;
}

/* Alone, before LMDB opens data.mdb: after a reboot (the log's boot id is
 * not the machine's), writes the newest checkpoint's meta pages back into
 * data.mdb, so that LMDB opens at its commit, whose pages its pin kept
 * (*recover: the records after it are to be replayed). */
static int lme_log_restore(cj_edb *db, int *recover) {
	uint8_t was[LML_BOOT_LEN], now[LML_BOOT_LEN];
	*recover = 0;
	int rc;
	if ((rc = cj__lml_boot(&db->log, was)) || (rc = cj__lml_machine_boot(now))) return rc;
	if (memcmp(was, now, sizeof now) == 0) return CJ_OK; /* the page cache is whole */
	rc = cj__lml_ckpt_read(&db->log, db->ck);
	if (rc == CJ_NOT_FOUND) return CJ_OK; /* nothing logged yet */
	if (rc) return rc;
	int fd = openat(db->dirfd, "data.mdb", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	size_t n = 2 * (size_t)db->ck->psize;
	if (fd < 0) return cj__fail(CJ_STORE, "%s: data.mdb: %s", db->path, cj__os_strerror(errno));
	if (pwrite(fd, db->ck->meta, n, 0) != (ssize_t)n || fdatasync(fd) != 0) {
		rc = cj__fail(CJ_STORE, "%s: cannot restore data.mdb's checkpoint: %s", db->path,
		              cj__os_strerror(errno));
	}
	close(fd);
	*recover = rc == CJ_OK;
	return rc;
}

/* Alone, once LMDB has the store open. After a power loss: replays the
 * records, then makes a checkpoint of a new generation (pinned by this
 * process: the replay's own commit has no record). Otherwise the page
 * cache held every write and data.mdb is whole at its last commit: the
 * words are read again from the log (lme_log_repair: shared memory may be
 * a former boot's or say anything), unpinned, so that the first commit
 * makes a checkpoint (LMDB cleared every reader, the pin with them; until
 * a commit, nothing can reuse a page of the last checkpoint). Then notes
 * the machine's boot id and shares the log. */
static int lme_log_start(cj_edb *db, int recover) {
	int rc = CJ_OK;
	long applied = 0;
#ifdef CJ_FAULT_INJECTION
	if (db->fault_noreplay) recover = 0; /* lme_fault_flags() */
#endif
	if (recover && (rc = lme_replay(db, db->ck, &applied))) return rc;
	if ((rc = lme_gate(db, 1))) return rc;
	if (recover) {
		/* the generation after the one restored, whatever the words say
		 * (they may be of a later moment than the disk's): its slot is the
		 * other one, so the checkpoint restored stays whole until the new
		 * one is (generations may repeat: the salt tells their records
		 * apart) */
		rc = lme_checkpoint(db, db->ck->gen + 1);
	} else {
		MDB_txn *txn;
		MDB_val k = {strlen(db->number), (void *)db->number}, v;
		if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn))) {
			rc = lme_err(rc, "begin");
		} else {
			rc = mdb_get(txn, db->book, &k, &v) == 0 && v.mv_size == 8
			         ? lme_log_repair(db, rd64(v.mv_data))
			         : cj__fail(CJ_STORE, "corrupt store: no commit counter");
			mdb_txn_abort(txn);
		}
		/* a new log (a new store, or one of an earlier layout): data.mdb
		 * is flushed once before anything relies on the log */
		if (rc == CJ_OK && (rc = cj__lml_ckpt_read(&db->log, db->ck)) == CJ_NOT_FOUND)
			rc = lme_checkpoint(db, lme_w(db, LME_LOG_GEN) + 1);
	}
	lme_gate(db, 0);
	uint8_t was[LML_BOOT_LEN], now[LML_BOOT_LEN];
	if (rc || (rc = cj__lml_boot(&db->log, was)) || (rc = cj__lml_machine_boot(now)) ||
	    (memcmp(was, now, sizeof now) != 0 && (rc = cj__lml_set_boot(&db->log, now))))
		return rc;
	rc = cj__lml_lock(&db->log, 0);
	return rc < 0 ? rc : CJ_OK;
}

/* ---- open / close ------------------------------------------------------- */

static int lme_mkdir(const char *path, mode_t fmode) {
	struct stat st;
	if (stat(path, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return cj__fail(CJ_STORE, "%s: not a directory", path);
		return CJ_OK;
	}
	/* a directory readable by whoever may read the files */
	mode_t dmode = fmode | ((fmode & 0444) >> 2);
	if (mkdir(path, dmode) != 0 && errno != EEXIST)
		return cj__fail(CJ_STORE, "%s: cannot create the store directory: %s", path,
		                strerror(errno));
	return CJ_OK;
}

static const char *lme_readonly_why(const cj_edb *db) {
	static const char *const why[] = {"", "data.mdb is read-only for this user",
	                                  "lock.mdb is read-only for this user",
	                                  "the wake file is read-only for this user"};
	return why[db->readonly];
}

/* Opens the named databases, creating them in a new environment; refuses
 * an environment that is not a couchjobs store. */
static int lme_init(cj_edb *db) {
	static const char *const names[CJ_SPACE_COUNT] = {"jobs", "user"};
	MDB_txn *txn;
	unsigned create = db->readonly ? 0 : MDB_CREATE;
	int rc = lme_txn_begin(db, db->readonly ? MDB_RDONLY : 0, &txn);
	if (rc) return lme_err(rc, "begin");
	pthread_rwlock_unlock(&db->resize); /* nobody else has db yet */
	rc = mdb_dbi_open(txn, "cj_engine", 0, &db->meta);
	if (rc == MDB_NOTFOUND && db->readonly) {
		mdb_txn_abort(txn);
		return cj__fail(CJ_STORE, "%s: a new store cannot be created: %s", db->path,
		                lme_readonly_why(db));
	} else if (rc == MDB_NOTFOUND) {
		MDB_stat st;
		if ((rc = mdb_dbi_open(txn, NULL, 0, &db->book)) ||
		    (rc = mdb_stat(txn, db->book, &st)))
			goto out_lmdb;
		if (st.ms_entries != 0) {
			mdb_txn_abort(txn);
			return cj__fail(CJ_STORE, "%s: not a couchjobs store (an LMDB "
			                "environment of something else)", db->path);
		}
		uint8_t layout[4] = {0, 0, 0, LME_LAYOUT}, zero[8] = {0};
		MDB_val lk = {6, "layout"}, lv = {4, layout};
		MDB_val ck = {strlen(LME_NUMBER), LME_NUMBER}, cv = {8, zero};
		if ((rc = mdb_dbi_open(txn, "cj_engine", MDB_CREATE, &db->meta)) ||
		    (rc = mdb_put(txn, db->meta, &lk, &lv, 0)) ||
		    (rc = mdb_put(txn, db->book, &ck, &cv, 0)))
			goto out_lmdb;
		lme_flush_check(db, 0);
	} else if (rc) {
		goto out_lmdb;
	} else {
		MDB_val v;
		rc = lme_meta_get(txn, db->meta, "layout", &v);
		const uint8_t *p = v.mv_data;
		unsigned layout = rc || v.mv_size != 4 || p[0] || p[1] || p[2] ? 0u : p[3];
		if (layout < 1 || layout > LME_LAYOUT) {
			mdb_txn_abort(txn);
			return cj__fail(CJ_STORE, "%s: unknown store layout version %u (this "
			                "library knows %d)", db->path, layout, LME_LAYOUT);
		}
		if ((rc = mdb_dbi_open(txn, NULL, 0, &db->book))) goto out_lmdb;
		if (layout < 3 && db->readonly) {
			db->number = "commit"; /* read where it is */
			if (layout == 1) db->book = db->meta;
		} else if ((layout == 1 && (rc = lme_convert_1(db, txn))) ||
		           (layout < 3 && (rc = lme_convert_2(db, txn)))) {
			goto out_lmdb;
		}
		if (lme_meta_get(txn, db->book, db->number, &v) == 0 && v.mv_size == 8)
			lme_flush_check(db, rd64(v.mv_data));
	}
	for (int i = 0; i < CJ_SPACE_COUNT; i++)
		if ((rc = mdb_dbi_open(txn, names[i], create, &db->dbi[i])))
			goto out_lmdb;
	if ((rc = mdb_txn_commit(txn))) return lme_err(rc, "commit");
	return db->readonly ? CJ_OK : lme_flush(db);
out_lmdb:
	mdb_txn_abort(txn);
	return lme_err(rc, "open");
}

/* Makes the reserve file hold LME_RESERVE bytes, if the disk has room. */
static void lme_reserve_make(cj_edb *db) {
	int ro, fd;
	if (cj__os_store_file(db->dirfd, db->path, "reserve", db->mode, LME_RESERVE, &ro,
	                      &fd) == CJ_OK) {
		close(fd);
		if (!ro) {
			atomic_store(&db->reserve_retry, 0);
			return;
		}
	}
	/* no room yet (a partly allocated reserve is kept) */
	atomic_store(&db->reserve_retry, cj__add_sat(cj__mono_ms(), LME_RESERVE_RETRY_MS));
}

/* rc, or ENOSPC for an EIO that was one: LMDB reports a short write (the
 * disk filled up in the middle of it) as EIO; after one the disk has
 * (almost) no room left. */
static int lme_space_err(cj_edb *db, int rc) {
	struct statvfs sv;
	if (rc != EIO || fstatvfs(db->dirfd, &sv) != 0) return rc;
	uint64_t avail = geteuid() == 0 ? sv.f_bfree : sv.f_bavail;
	return avail * sv.f_frsize < LME_RESERVE ? ENOSPC : rc;
}

/* Releases the reserve's blocks: 1 if it held any, else 0. */
static int lme_reserve_release(cj_edb *db) {
	int fd = openat(db->dirfd, "reserve", O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) return 0;
	struct stat st;
	int held = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
	           st.st_blocks > 0 && ftruncate(fd, 0) == 0;
	close(fd);
	if (held) atomic_store(&db->reserve_retry, cj__add_sat(cj__mono_ms(), LME_RESERVE_RETRY_MS));
	return held;
}

/* Creates or checks the files LMDB opens by path in the store directory
 * (checked: db->dirfd; see the top of this file); opens the wake file into
 * *wfd. */
static int lme_files(cj_edb *db, int *wfd) {
	const char *path = db->path;
	int rc, ro_data, ro_lock, ro_wake;
	if ((rc = cj__os_store_file(db->dirfd, path, "data.mdb", db->mode, 0, &ro_data, NULL)) ||
	    (rc = cj__os_store_file(db->dirfd, path, "lock.mdb", db->mode, LME_LOCK_BYTES,
	                            &ro_lock, NULL)) ||
	    (rc = cj__os_store_file(db->dirfd, path, "wake", db->mode, CJ_WAKE_BYTES, &ro_wake,
	                            wfd)))
		return rc;
	db->readonly = ro_lock ? 2 : ro_data ? 1 : ro_wake ? 3 : 0;
	if (!db->readonly) lme_reserve_make(db);
	return CJ_OK;
}

/* ---- one environment per store in a process --------------------------------
 *
 * LMDB must not open one environment twice in a process: its locks on
 * lock.mdb are POSIX record locks, which belong to the process, so closing
 * either copy (or any descriptor of the file: lme_files() opens and closes
 * it) drops the other's, and the next process to open the store believes
 * it is the first and initialises the lock table (reader slots, the writer
 * mutex) under the live one: two writers at once. So every open of a store
 * in a process shares one cj_edb: a registry keyed by the store
 * directory's (st_dev, st_ino), whatever path names it, holds each with a
 * count of its opens; a later open checks the directory for itself (its
 * own cj_options.shared and file_mode), then takes the registered one, and
 * the last close closes it. What is the environment's is the first open's:
 * the sync mode must match (a later open asking for another one fails with
 * CJ_INVALID); the map size and the mode of files created later are the
 * first's (the map grows as needed). The registry's lock is held through a
 * whole first open, so that two threads never open one store twice.
 *
 * fork(): the child must not use its parent's environment (nor its
 * handles: couchjobs.h), so every entry is marked forked in the child
 * (pthread_atfork) and is never handed out there; an open in the child
 * opens the store afresh. The child closes its copy of the log's
 * descriptor at once (lme_reg_child).
 *
 * A store made again while open: an entry is handed out only while its
 * data file is still the directory's data.mdb. One whose files were
 * removed (rm) and made again in the same directory is another store,
 * opened afresh; its writes would go to a file no longer there. (A
 * directory removed and made again is another inode: the entry holds the
 * old one open, so its number is not reused.) If its data.mdb alone was
 * replaced, its lock.mdb is still the directory's and in use: a second
 * environment on it would undo its locks, so the open fails with CJ_STORE
 * until the handles on the old one are closed. */

static pthread_mutex_t lme_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t lme_reg_once = PTHREAD_ONCE_INIT;
static cj_edb *lme_reg; /* the environments open, by next */

static void lme_reg_prepare(void) { pthread_mutex_lock(&lme_reg_mu); }
static void lme_reg_parent(void) { pthread_mutex_unlock(&lme_reg_mu); }

/* The child also closes its copy of each log's descriptor: the log's locks
 * (the gate, the share of an open store) belong to the open file
 * description, which the copy shares, so a copy kept by a child that lives
 * on would keep a killed parent's gate held for as long as it lives, and
 * every commit of every process would wait for it. */
static void lme_reg_child(void) {
	for (cj_edb *db = lme_reg; db; db = db->next) {
		db->forked = 1;
		cj__lml_close(&db->log);
	}
	pthread_mutex_unlock(&lme_reg_mu);
}

static void lme_reg_init(void) {
	pthread_atfork(lme_reg_prepare, lme_reg_parent, lme_reg_child);
}

/* 1 if name in db's directory is the file (dev, ino). */
static int lme_names(const cj_edb *db, const char *name, dev_t dev, ino_t ino) {
	struct stat st;
	return fstatat(db->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == dev &&
	       st.st_ino == ino;
}

/* The environment of the store directory st open in this process (not in
 * a parent before fork) into *out, or NULL; CJ_OK, or CJ_STORE if the
 * directory's data.mdb was replaced under one (see above). Registry lock
 * held. */
static int lme_reg_find(const struct stat *st, const char *path, cj_edb **out) {
	*out = NULL;
	for (cj_edb *db = lme_reg; db; db = db->next) {
		if (db->forked || db->dev != st->st_dev || db->ino != st->st_ino) continue;
		int fd;
		struct stat data;
		if (mdb_env_get_fd(db->env, &fd) == 0 && fstat(fd, &data) == 0 &&
		    lme_names(db, "data.mdb", data.st_dev, data.st_ino)) {
			*out = db;
			return CJ_OK;
		}
		if (db->lock_ino && lme_names(db, "lock.mdb", db->lock_dev, db->lock_ino))
			return cj__fail(CJ_STORE, "%s: its data.mdb was replaced while the store is "
			                "open in this process: close its handles first", path);
	}
	return CJ_OK;
}

static void lme_destroy(cj_edb *db) {
	if (db->has_pin_thread) {
		/* it may be between its look at stop and its sleep: woken until
		 * it ends */
		atomic_store(&db->stop, 1);
		for (;;) {
			cj__os_word64_wake(db->flush, LME_LOG_GEN);
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 10000000;
			if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
			if (pthread_timedjoin_np(db->pin_thread, NULL, &ts) == 0) break;
		}
	}
	if (db->env && db->logging) lme_unpin(db);
	if (db->env) mdb_env_close(db->env);
	if (db->log.fd >= 0) {
		cj__os_owner_release(&db->log);
		cj__lml_close(&db->log);
	}
	cj_free(db->ck);
	cj__buf_free(&db->rd);
	pthread_mutex_destroy(&db->gate_mu);
	pthread_mutex_destroy(&db->pin_mu);
	if (db->dirfd >= 0) close(db->dirfd);
	cj__os_wakemap_close(db->wake);
	cj__os_wakemap_close(db->flush);
	cj__os_unmap_shared(db->combine, db->combine_len);
	pthread_mutex_destroy(&db->combine_mu);
	if (db->has_resize) pthread_rwlock_destroy(&db->resize);
	cj_free(db->path);
	cj_free(db);
}

static void lme_close(cj_edb *db) {
	if (!db) return;
	pthread_mutex_lock(&lme_reg_mu);
	int last = --db->refs == 0;
	if (last) {
		cj_edb **p = &lme_reg;
		while (*p != db) p = &(*p)->next;
		*p = db->next;
	}
	pthread_mutex_unlock(&lme_reg_mu);
	if (last) lme_destroy(db);
}

/* Another open of db (registered) with options o, whose directory dirfd
 * was checked: CJ_OK or CJ_INVALID. Registry lock held. */
static int lme_open_again(cj_edb *db, const cj_options *o, int dirfd) {
	close(dirfd);
	if (!db->readonly && (o->sync == CJ_SYNC_RELAXED) == db->sync_after)
		return cj__fail(CJ_INVALID, "%s: the store is open in this process with "
		                "another sync mode", db->path);
	db->refs++;
	return CJ_OK;
}

/* A data.mdb shorter than its last commit's pages (a copy cut short, a
 * truncated file) would make LMDB read past the end of its map (SIGBUS) at
 * the first look at a page: refused before any. */
static int lme_length_check(cj_edb *db) {
	MDB_envinfo info;
	MDB_stat st;
	struct stat fs;
	int fd;
	if (mdb_env_info(db->env, &info) || mdb_env_stat(db->env, &st) ||
	    mdb_env_get_fd(db->env, &fd) || fstat(fd, &fs) != 0)
		return cj__fail(CJ_STORE, "%s: cannot read data.mdb's length", db->path);
	uint64_t need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	if ((uint64_t)fs.st_size >= need) return CJ_OK;
	return cj__fail(CJ_STORE, "%s: damaged store: data.mdb is shorter (%llu bytes) than "
	                "its last commit's pages (%llu bytes)", db->path,
	                (unsigned long long)fs.st_size, (unsigned long long)need);
}

static int lme_open(const char *url, const cj_options *o, cj_edb **out) {
	*out = NULL;
	const char *path = strncmp(url, "lmdb:", 5) == 0 ? url + 5 : url;
	if (!*path) return cj__fail(CJ_INVALID, "empty store path");
	mode_t mode = o->file_mode ? (mode_t)o->file_mode : 0600;
	int rc = lme_mkdir(path, mode), dirfd;
	if (rc) return rc;
	struct stat st;
	if ((rc = cj__os_store_dir(path, o->shared, mode & 0022, &dirfd))) return rc;
	if (fstat(dirfd, &st) != 0) {
		rc = cj__fail(CJ_STORE, "%s: %s", path, cj__os_strerror(errno));
		close(dirfd);
		return rc;
	}
	pthread_once(&lme_reg_once, lme_reg_init);
	pthread_mutex_lock(&lme_reg_mu);
	cj_edb *db;
	if ((rc = lme_reg_find(&st, path, &db)) || db) {
		if (db) rc = lme_open_again(db, o, dirfd);
		else close(dirfd);
		pthread_mutex_unlock(&lme_reg_mu);
		*out = rc ? NULL : db;
		return rc;
	}
	if (!(db = cj__calloc(1, sizeof *db))) {
		pthread_mutex_unlock(&lme_reg_mu);
		close(dirfd);
		return cj__fail(CJ_NOMEM, "out of memory");
	}
	db->dirfd = dirfd;
	db->dev = st.st_dev;
	db->ino = st.st_ino;
	db->mode = mode;
	int wfd = -1;
	pthread_rwlockattr_t ra;
	if (pthread_rwlockattr_init(&ra) == 0) {
		pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		db->has_resize = pthread_rwlock_init(&db->resize, &ra) == 0;
		pthread_rwlockattr_destroy(&ra);
	}
	atomic_init(&db->grow_err, 0);
	atomic_init(&db->flush_ms, 5); /* until this process has flushed */
	pthread_mutex_init(&db->combine_mu, NULL);
	pthread_mutex_init(&db->gate_mu, NULL);
	pthread_mutex_init(&db->pin_mu, NULL);
	db->log.fd = -1;
	db->ckpt_bytes = LME_CKPT_BYTES;
	db->number = LME_NUMBER;
	db->ckpt_pages = LME_CKPT_PAGES;
	db->spill_at = LME_SPILL_AT;
	if (!db->has_resize) {
		rc = cj__fail(CJ_NOMEM, "cannot create the store's resize lock");
		goto out_close;
	}
	if (!(db->path = cj__strdup(path))) {
		rc = cj__fail(CJ_NOMEM, "out of memory");
		goto out_close;
	}
	if ((rc = lme_files(db, &wfd))) goto out_close;
	if ((rc = mdb_env_create(&db->env))) {
		rc = lme_err(rc, "env_create");
		goto out_close;
	}
	unsigned flags = MDB_NOTLS;
	int alone = 0, recover = 0;
	if (db->readonly) {
		flags |= MDB_RDONLY | (db->readonly == 2 ? MDB_NOLOCK : 0);
		if ((rc = lme_log_readonly_check(db))) goto out_close;
	} else {
		/* the log makes commits durable: LMDB flushes nothing itself,
		 * once lme_init's commit is made (MDB_NOSYNC is set after it) */
		db->sync_after = o->sync != CJ_SYNC_RELAXED;
		if ((rc = lme_log_open(db, &alone)) || (alone && (rc = lme_log_restore(db, &recover))))
			goto out_close;
		db->logging = 1;
	}
	lme_fault_flags(db, &flags);
	lme_fault_rewrite(db);
	if ((rc = mdb_env_set_maxdbs(db->env, 4)) ||
	    (rc = mdb_env_set_maxreaders(db->env, LME_MAX_READERS)) ||
	    (rc = mdb_env_set_mapsize(db->env, o->map_size ? o->map_size : LME_DEFAULT_MAP))) {
		rc = lme_err(rc, "setup");
		goto out_close;
	}
	if ((rc = mdb_env_open(db->env, path, flags, mode))) {
		if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH)
			rc = cj__fail(CJ_STORE, "%s: not a couchjobs store (%s)", path,
			              mdb_strerror(rc));
		else
			rc = cj__fail(CJ_STORE, "%s: %s", path, mdb_strerror(rc));
		goto out_close;
	}
	if ((rc = lme_length_check(db))) goto out_close;
	MDB_stat est;
	if ((rc = mdb_env_stat(db->env, &est))) {
		rc = lme_err(rc, "stat");
		goto out_close;
	}
	db->psize = est.ms_psize;
	struct stat lock;
	if (db->readonly != 2 && fstatat(dirfd, "lock.mdb", &lock, AT_SYMLINK_NOFOLLOW) == 0) {
		db->lock_dev = lock.st_dev;
		db->lock_ino = lock.st_ino;
	}
	int dead;
	if ((rc = lme_flush_open(db))) goto out_close;
	/* free slots of killed readers; one may be a pin: under the gate, so
	 * that no writer is between its look at the pin and its commit */
	if (db->logging && (rc = lme_gate(db, 1))) goto out_close;
	mdb_reader_check(db->env, &dead);
	if (db->logging) lme_gate(db, 0);
	/* lme_init's commit (a new store's databases, an older layout's
	 * conversion) has no record in the log, which has no checkpoint of it
	 * yet: it is LMDB's own ordered commit (its pages flushed before its
	 * meta page is written), since after an MDB_NOSYNC one a power loss
	 * may leave the meta page on disk without the pages it points to */
	if ((rc = lme_init(db))) goto out_close;
	if (db->logging && (rc = mdb_env_set_flags(db->env, MDB_NOSYNC, 1))) {
		rc = lme_err(rc, "setup");
		goto out_close;
	}
	if (alone && (rc = lme_log_start(db, recover))) goto out_close;
	if (db->logging) {
		if (pthread_create(&db->pin_thread, NULL, lme_pin_main, db) != 0) {
			rc = cj__fail(CJ_NOMEM, "cannot start a thread");
			goto out_close;
		}
		db->has_pin_thread = 1;
	}
	char wpath[4096];
	snprintf(wpath, sizeof wpath, "%s/wake", path);
	if ((rc = cj__os_wakemap_open(wfd, wpath, db->readonly != 0, &db->wake))) goto out_close;
	close(wfd);
	db->refs = 1;
	db->next = lme_reg;
	lme_reg = db;
	pthread_mutex_unlock(&lme_reg_mu);
	*out = db;
	return CJ_OK;
out_close:
	if (wfd >= 0) close(wfd);
	lme_destroy(db);
	pthread_mutex_unlock(&lme_reg_mu);
	return rc;
}

/* ---- damaged pages --------------------------------------------------------
 *
 * LMDB trusts its pages: a damaged one can hand out a key or value that
 * runs past the end of data.mdb, and reading it would be SIGBUS. So every
 * key and value read from the map is first checked to lie within the file.
 * Where the map is is found at the start of a transaction when not known;
 * it moves only when the map is resized, under the exclusive resize lock,
 * which forgets it. Pointers outside the map are to pages that a write
 * transaction copied (and this process wrote): they are not checked.
 */

static void lme_locate(cj_edb *db, const void *p) {
	uintptr_t base, end;
	int fd;
	if (mdb_env_get_fd(db->env, &fd) != 0 || cj__os_file_mapping(fd, p, &base, &end) != 0)
		return; /* not checked then */
	atomic_store(&db->map_base, base);
	atomic_store(&db->map_end, end);
}

static int lme_in_file(cj_edb *db, const void *p, size_t n) {
	uintptr_t end = atomic_load_explicit(&db->map_end, memory_order_acquire);
	uintptr_t base = atomic_load_explicit(&db->map_base, memory_order_relaxed);
	uintptr_t a = (uintptr_t)p;
	if (!end || a < base || a >= end) return CJ_OK;
	if (n > end - a) goto bad;
	size_t len = atomic_load_explicit(&db->file_len, memory_order_relaxed);
	if (a - base + n <= len) return CJ_OK;
	/* other processes' commits may have grown the file */
	int fd;
	struct stat st;
	if (mdb_env_get_fd(db->env, &fd) == 0 && fstat(fd, &st) == 0 && st.st_size > 0) {
		len = (size_t)st.st_size;
		atomic_store_explicit(&db->file_len, len, memory_order_relaxed);
		if (a - base + n <= len) return CJ_OK;
	}
bad:
	return cj__fail(CJ_STORE, "damaged store: a key or value runs past the end of "
	                "data.mdb (see cjobs check)");
}

/* ---- transactions -------------------------------------------------------- */

/* Doubles the map; a failure is kept in grow_err for the next writer. */
static void lme_grow(cj_edb *db) {
	MDB_envinfo info;
	pthread_rwlock_wrlock(&db->resize);
	atomic_store(&db->map_end, 0); /* it moves: lme_in_file() */
	lme_unpin(db); /* no transaction of the process may be active */
	int rc = mdb_env_info(db->env, &info);
	if (rc == 0)
		rc = info.me_mapsize > SIZE_MAX / 2 ? ENOMEM
		                                    : mdb_env_set_mapsize(db->env, info.me_mapsize * 2);
	atomic_store(&db->grow_err, rc);
	pthread_rwlock_unlock(&db->resize);
}

static void lme_end(cj_etx *tx) {
	cj_edb *db = tx->db;
	int grow = tx->grow;
	if (tx->write && !tx->landed && tx->version && db->flush && db->sync_after) {
		/* a commit waiting for this one's flush waits no more (one before
		 * this one may be waiting while it is not durable) */
		cj__os_word64_raise(db->flush, LME_FLUSH_ABANDONED, tx->version);
		if (cj__os_word64_load(db->flush, LME_FLUSH_DURABLE) + 1 < tx->version)
			cj__os_word64_wake(db->flush, LME_FLUSH_DURABLE);
	}
	/* the spill guard's gate (its commit, if any, is over): before the
	 * growth, which takes it to let go of the pin */
	if (tx->gated) lme_gate(db, 0);
	pthread_rwlock_unlock(&db->resize);
	cj__buf_free(&tx->kb);
	cj__buf_free(&tx->vb);
	cj__buf_free(&tx->rec);
	cj_free(tx);
	if (grow) lme_grow(db);
}

static int lme_begin(cj_edb *db, int write, cj_etx **out) {
	*out = NULL;
	if (write && db->readonly)
		return cj__fail(CJ_STORE, "%s: the store is open read-only (%s): no writes",
		                db->path, lme_readonly_why(db));
	if (write && atomic_load(&db->grow_err)) {
		lme_grow(db); /* the last growth failed: once more */
		int e = atomic_load(&db->grow_err);
		if (e)
			return cj__fail(CJ_STORE, "%s: the store is full and its map cannot grow: %s",
			                db->path, mdb_strerror(e));
	}
	cj_etx *tx = cj__calloc(1, sizeof *tx);
	if (!tx) return cj__fail(CJ_NOMEM, "out of memory");
	tx->db = db;
	tx->write = write;
	int rc = lme_txn_begin(db, write ? 0 : MDB_RDONLY, &tx->txn);
	if (rc) {
		cj_free(tx);
		return lme_err(rc, "begin");
	}
	MDB_val v;
	rc = lme_meta_get(tx->txn, db->book, db->number, &v);
	if (rc || v.mv_size != 8) {
		mdb_txn_abort(tx->txn);
		lme_end(tx);
		return cj__fail(CJ_STORE, "corrupt store: no commit counter");
	}
	/* nothing is copied yet: v is in the map */
	if (!atomic_load_explicit(&db->map_end, memory_order_relaxed)) lme_locate(db, v.mv_data);
	tx->version = rd64(v.mv_data) + (write ? 1 : 0);
	if (write && db->logging && lme_w(db, LME_LOG_FORCE)) {
		/* the disk was full: a checkpoint before this transaction writes,
		 * so that it may use the pages freed since the last one */
		if ((rc = lme_gate(db, 1)) == CJ_OK) {
			if (lme_w(db, LME_LOG_FORCE)) rc = lme_checkpoint(db, 0);
			lme_gate(db, 0);
		}
		if (rc) {
			mdb_txn_abort(tx->txn);
			lme_end(tx);
			return rc;
		}
	}
	/* a relaxed commit on a void log writes no record (lme_commit), so its
	 * transaction builds none (a copy of every key and value written).
	 * Decided here, under LMDB's writer lock, which this transaction holds
	 * until its commit: VOID and DIRTY change only under it (a checkpoint,
	 * a void, a repair: in a write transaction, or at an open alone, which
	 * this process's open excludes), so lme_commit finds them as here */
	if (write && db->logging && !db->sync_after)
		tx->norec = lme_w(db, LME_LOG_VOID) && !lme_w(db, LME_LOG_DIRTY);
	if (write && db->flush && db->sync_after)
		cj__os_word64_raise(db->flush, LME_FLUSH_BEGUN, tx->version);
	*out = tx;
	return CJ_OK;
}

static void lme_abort(cj_etx *tx) {
	if (!tx) return;
	mdb_txn_abort(tx->txn);
	lme_end(tx);
}

_Static_assert(CJ_WORDS == CJ_WAKE_WORDS, "the wake file holds every wake word");
_Static_assert(CJ_WAIT_ANY_MAX <= CJ_OS_WAIT_ANY_MAX, "one vectored wait takes every channel");

/* Nobody sleeps on job words (cj_int.h): they only count. A channel word
 * wakes all its waiters, or n of them (notify_one). */
static void lme_bump_word(void *db, unsigned w, unsigned n) {
	cj_wakemap *m = ((cj_edb *)db)->wake;
	if (w >= CJ_CHAN_WORDS) cj__os_word_add(m, w);
	else if (n) cj__os_word_bump_n(m, w, n);
	else cj__os_word_bump(m, w);
}

static int lme_commit(cj_etx *tx) {
	if (!tx->write || !tx->dirty) {
		mdb_txn_abort(tx->txn);
		lme_end(tx);
		return CJ_OK;
	}
	uint8_t num[8];
	be64(num, tx->version);
	MDB_val k = {strlen(tx->db->number), (void *)tx->db->number}, v = {8, num};
	uint64_t pos = 0, end = 0;
	int rc = 0, grc = lme_change(tx, tx->db->book, &k, &v, &rc);
	if (grc) {
		mdb_txn_abort(tx->txn);
		lme_end(tx);
		return grc;
	}
	cj_edb *db = tx->db;
	/* a relaxed commit while the log is void (lme_log_void): read under
	 * LMDB's writer lock, which every change of VOID also holds */
	int bare = db->logging && !db->sync_after && lme_w(db, LME_LOG_VOID) &&
	           !lme_w(db, LME_LOG_DIRTY);
	if (rc == 0 && tx->norec && !bare) {
		/* cannot happen (lme_begin): its record was not built, and a
		 * commit without one that a replay would need must not land */
		mdb_txn_abort(tx->txn);
		lme_end(tx);
		return cj__fail(CJ_CONFLICT, "the store's log changed under a transaction; run "
		                "again");
	}
	if (rc == 0 && db->logging && !bare) {
		lme_rec(tx, LML_PUT, LME_REC_BOOK, &k, &v);
		int lrc = lme_log_write(tx, &pos, &end);
		if (lrc < 0) {
			mdb_txn_abort(tx->txn);
			lme_end(tx);
			return lrc;
		}
		rc = mdb_txn_commit(tx->txn);
		if (lrc == 0 && rc == 0) cj__fault_hold_here(CJ_HOLD_LOG_COMMITTED);
		if (lrc == 0) lme_log_done(db, rc == 0, pos, end);
	} else if (rc == 0) {
		rc = mdb_txn_commit(tx->txn);
	} else {
		mdb_txn_abort(tx->txn);
	}
	if (rc == MDB_MAP_FULL) {
		tx->grow = 1;
		lme_end(tx);
		return cj__fail(CJ_CONFLICT, "the store was full and grows: run again");
	}
	rc = lme_space_err(tx->db, rc);
	if (rc == ENOSPC && tx->db->logging &&
	    lme_w(tx->db, LME_LOG_END) != lme_w(tx->db, LME_LOG_START)) {
		/* the pages freed since the last checkpoint are pinned: a new one
		 * lets LMDB use them again */
		lme_wset(tx->db, LME_LOG_FORCE, 1);
		lme_end(tx);
		return cj__fail(CJ_CONFLICT, "the disk is full: the pages freed since the last "
		                "checkpoint are made free; run again");
	}
	if (rc == ENOSPC && tx->dels > tx->puts && lme_reserve_release(tx->db)) {
		lme_end(tx);
		return cj__fail(CJ_CONFLICT, "the disk is full: the store's reserve was "
		                "released for a removal; run again");
	}
	if (rc) {
		lme_end(tx);
		return lme_err(rc, "commit");
	}
	int64_t retry = atomic_load(&tx->db->reserve_retry);
	if (retry && cj__mono_ms() >= retry) lme_reserve_make(tx->db);
	tx->landed = 1;
	/* wake the waiters first: what they do next does not wait for the flush */
	cj__wordset_each_n(&tx->notify, lme_bump_word, tx->db);
	rc = lme_durable(tx->db, tx->version);
	if (tx->db->logging) lme_log_kick(tx->db);
	lme_end(tx);
	return rc;
}

/* ---- nested transactions ---------------------------------------------------
 *
 * LMDB's own: a child of the write transaction, whose pages are the
 * parent's once it commits and are dropped if it aborts. (An environment
 * opened with MDB_WRITEMAP cannot nest; this engine never opens one.) The
 * parent holds the resize lock for both; a child that found the map full
 * leaves the growth to its parent's end. */

static int lme_write_err(cj_etx *tx, int rc, const char *what);

static void lme_nested_free(cj_etx *tx) {
	if (tx->grow) tx->parent->grow = 1;
	cj__buf_free(&tx->kb);
	cj__buf_free(&tx->vb);
	cj__buf_free(&tx->rec);
	cj_free(tx);
}

static int lme_begin_nested(cj_etx *parent, cj_etx **out) {
	*out = NULL;
	unsigned flags = 0;
	if (!parent->write || parent->parent || mdb_env_get_flags(parent->db->env, &flags) ||
	    (flags & MDB_WRITEMAP))
		return cj__fail(CJ_STORE, "lmdb: this transaction cannot nest one");
	cj_etx *tx = cj__calloc(1, sizeof *tx);
	if (!tx) return cj__fail(CJ_NOMEM, "out of memory");
	tx->db = parent->db;
	tx->parent = parent;
	tx->write = 1;
	tx->version = parent->version;
	tx->norec = parent->norec;
	int rc = mdb_txn_begin(parent->db->env, parent->txn, 0, &tx->txn);
	if (rc) {
		rc = lme_write_err(tx, rc, "begin nested");
		lme_nested_free(tx);
		return rc;
	}
	*out = tx;
	return CJ_OK;
}

static int lme_commit_nested(cj_etx *tx) {
	cj_etx *p = tx->parent;
	int rc = mdb_txn_commit(tx->txn); /* frees the child, failed or not */
	if (rc) {
		rc = lme_write_err(tx, rc, "commit nested");
		lme_nested_free(tx);
		return rc;
	}
	p->dirty |= tx->dirty;
	cj__lml_rec_join(&p->rec, &tx->rec);
	p->dirty_max += tx->dirty_max; /* its dirty pages are the parent's now */
	p->puts += tx->puts;
	p->dels += tx->dels;
	cj__wordset_merge(&p->notify, &tx->notify);
	lme_nested_free(tx);
	return CJ_OK;
}

static void lme_abort_nested(cj_etx *tx) {
	mdb_txn_abort(tx->txn);
	lme_nested_free(tx);
}

static int lme_version(cj_etx *tx, uint64_t *out) {
	*out = tx->version;
	return CJ_OK;
}

static void *lme_native(cj_etx *tx) { return tx->txn; }

/* ---- data ---------------------------------------------------------------- */

static int lme_write_err(cj_etx *tx, int rc, const char *what) {
	/* LMDB refuses every op of a transaction after its map filled
	 * (MDB_BAD_TXN): that transaction is still one to run again */
	if (rc == MDB_MAP_FULL || (rc == MDB_BAD_TXN && tx->grow)) {
		tx->grow = 1;
		return cj__fail(CJ_CONFLICT, "the store was full and grows: run again");
	}
	if (rc == MDB_TXN_FULL)
		return cj__fail(CJ_TOO_LARGE, "lmdb %s: transaction too large", what);
	return lme_err(lme_space_err(tx->db, rc), what);
}

static int lme_get(cj_etx *tx, int space, const void *k, size_t kl,
                   const uint8_t **v, size_t *vl) {
	MDB_val key = lme_key(tx, k, kl), val;
	int rc = mdb_get(tx->txn, tx->db->dbi[space], &key, &val);
	if (rc) return rc == MDB_BAD_TXN && tx->grow ? lme_write_err(tx, rc, "get")
	                                             : lme_err(rc, "get");
	if ((rc = lme_in_file(tx->db, val.mv_data, val.mv_size))) return rc;
	if (kl > LME_SHORT) {
		const uint8_t *sk;
		size_t skl;
		if (lme_unwrap(&val, &sk, &skl, v, vl))
			return cj__fail(CJ_STORE, "corrupt long key");
		if (skl != kl || memcmp(sk, k, kl) != 0) return CJ_NOT_FOUND;
		return CJ_OK;
	}
	*v = val.mv_data;
	*vl = val.mv_size;
	return CJ_OK;
}

static int lme_put(cj_etx *tx, int space, const void *k, size_t kl, const void *v,
                   size_t vl) {
	MDB_val key = lme_key(tx, k, kl), val = {vl, (void *)v};
	if (kl > LME_SHORT) {
		MDB_val old;
		int rc = mdb_get(tx->txn, tx->db->dbi[space], &key, &old);
		if (rc == 0 && (rc = lme_in_file(tx->db, old.mv_data, old.mv_size))) return rc;
		if (rc == 0) {
			const uint8_t *sk, *sv;
			size_t skl, svl;
			if (lme_unwrap(&old, &sk, &skl, &sv, &svl) || skl != kl ||
			    memcmp(sk, k, kl) != 0)
				return cj__fail(CJ_STORE, "long key hash collision");
		}
		uint8_t len[4] = {(uint8_t)(kl >> 24), (uint8_t)(kl >> 16), (uint8_t)(kl >> 8),
		                  (uint8_t)kl};
		cj__buf_reset(&tx->vb);
		cj__buf_add(&tx->vb, len, 4);
		cj__buf_add(&tx->vb, k, kl);
		cj__buf_add(&tx->vb, v, vl);
		if (tx->vb.oom) return cj__fail(CJ_NOMEM, "out of memory");
		val.mv_size = tx->vb.len;
		val.mv_data = tx->vb.p;
	}
	int m, rc = lme_change(tx, tx->db->dbi[space], &key, &val, &m);
	if (rc) return rc;
	if (m) return lme_write_err(tx, m, "put");
	lme_rec(tx, LML_PUT, space, &key, &val);
	tx->dirty = 1;
	tx->puts++;
	return CJ_OK;
}

static int lme_del(cj_etx *tx, int space, const void *k, size_t kl) {
	if (kl > LME_SHORT) {
		const uint8_t *v;
		size_t vl;
		int rc = lme_get(tx, space, k, kl, &v, &vl);
		if (rc) return rc;
	}
	MDB_val key = lme_key(tx, k, kl);
	int m, rc = lme_change(tx, tx->db->dbi[space], &key, NULL, &m);
	if (rc) return rc;
	if (m) return m == MDB_NOTFOUND ? CJ_NOT_FOUND : lme_write_err(tx, m, "del");
	lme_rec(tx, LML_DEL, space, &key, NULL);
	tx->dirty = 1;
	tx->dels++;
	return CJ_OK;
}

/* A counter's new value takes its old one's place (or, new, that of a job
 * the same transaction writes): not counted as a key written, so that a
 * transaction that removes jobs still counts as emptying a full disk
 * (lme_commit's use of the reserve). */
extern const struct cj_engine cj__engine_lmdb;
static int lme_add(cj_etx *tx, int space, const cj_eadd *a, size_t n) {
	long puts = tx->puts;
	int rc = cj__add_rmw(&cj__engine_lmdb, tx, space, a, n);
	tx->puts = puts;
	return rc;
}

static int lme_cmp(const uint8_t *a, size_t al, const void *b, size_t bl) {
	int c = memcmp(a, b, al < bl ? al : bl);
	return c ? c : (al > bl) - (al < bl);
}

/* Keys in [lo, hi), compared whole. The bounds may be long keys: the walk
 * starts at lo's physical prefix and goes on until the keys' first
 * LME_SHORT bytes pass hi; long keys that share those bytes sort by hash,
 * so each is compared, not just the first past hi. */
static int lme_scan(cj_etx *tx, int space, const void *lo, size_t ll, const void *hi,
                    size_t hl, cj_scan_fn fn, void *arg) {
	MDB_cursor *c;
	int rc = mdb_cursor_open(tx->txn, tx->db->dbi[space], &c);
	if (rc) return lme_err(rc, "cursor");
	MDB_val key = {ll < LME_SHORT ? ll : LME_SHORT, (void *)lo}, val;
	int out = CJ_OK;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		size_t pn = key.mv_size < LME_SHORT ? key.mv_size : LME_SHORT;
		if ((out = lme_in_file(tx->db, key.mv_data, key.mv_size)) ||
		    (out = lme_in_file(tx->db, val.mv_data, val.mv_size)))
			break;
		if (memcmp(key.mv_data, hi, pn < hl ? pn : hl) > 0) break;
		const uint8_t *k = key.mv_data, *v = val.mv_data;
		size_t kl = key.mv_size, vl = val.mv_size;
		if (kl == LME_LONG && lme_unwrap(&val, &k, &kl, &v, &vl)) {
			out = cj__fail(CJ_STORE, "corrupt long key");
			break;
		}
		if (lme_cmp(k, kl, hi, hl) >= 0) {
			/* every later key is past hi too, unless both are long */
			if (kl <= LME_SHORT || hl <= LME_SHORT) break;
			continue;
		}
		if (lme_cmp(k, kl, lo, ll) < 0) continue;
		if ((out = fn(k, kl, v, vl, arg)) != 0) break;
	}
	mdb_cursor_close(c);
	if (out) return out;
	if (rc && rc != MDB_NOTFOUND) return lme_err(rc, "scan");
	return CJ_OK;
}

static int lme_first_key(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                         void *arg) {
	(void)v, (void)vl;
	cj__buf_add(arg, k, kl);
	return 1;
}

/* The first key: no other write transaction holds anything (top of file). */
static int lme_claim_first(cj_etx *tx, int space, const void *lo, size_t ll,
                           const void *hi, size_t hl, cj_buf *key_out) {
	cj__buf_reset(key_out);
	return lme_scan(tx, space, lo, ll, hi, hl, lme_first_key, key_out);
}

/* ---- wakeups ------------------------------------------------------------- */

static int lme_notify(cj_etx *tx, const char *chan) {
	cj__wordset_add(&tx->notify, cj__chan_word(chan));
	return CJ_OK;
}

static int lme_notify_one(cj_etx *tx, const char *chan) {
	cj__wordset_add_one(&tx->notify, cj__chan_word(chan));
	return CJ_OK;
}

static void lme_rouse(cj_edb *db, const char *chan) {
	cj__os_word_rouse(db->wake, cj__chan_word(chan));
}

static uint64_t lme_watch(cj_edb *db, const char *chan) {
	return cj__os_word_load(db->wake, cj__chan_word(chan));
}

static int lme_wait(cj_edb *db, const char *chan, uint64_t token, int64_t deadline_ms) {
	return cj__os_word_wait(db->wake, cj__chan_word(chan), (uint32_t)token, deadline_ms);
}

static int lme_wait_any(cj_edb *db, const char *const *chans, const uint64_t *tokens,
                        size_t n, int64_t deadline_ms) {
	unsigned idx[CJ_WAIT_ANY_MAX];
	uint32_t seen[CJ_WAIT_ANY_MAX];
	for (size_t i = 0; i < n; i++) {
		idx[i] = cj__chan_word(chans[i]);
		seen[i] = (uint32_t)tokens[i];
	}
	return cj__os_word_wait_any(db->wake, idx, seen, n, deadline_ms);
}

static void lme_wake(cj_edb *db, const char *chan) {
	/* a bump, not a bare wake: a waiter about to sleep sees it too */
	cj__os_word_bump(db->wake, cj__chan_word(chan));
}

static int lme_readonly(cj_edb *db) { return db->readonly != 0; }

static int lme_notify_job(cj_etx *tx, unsigned job) {
	cj__wordset_add_job(&tx->notify, job);
	return CJ_OK;
}

static uint64_t lme_word(cj_edb *db, unsigned w) { return cj__os_word_load(db->wake, w); }

static void lme_bump(cj_edb *db, unsigned w) { cj__os_word_bump(db->wake, w); }

static uint64_t lme_shared_flushes(cj_edb *db) {
	return atomic_load_explicit(&db->shared, memory_order_relaxed);
}

/* ---- combining across processes (engine.h) -------------------------------- */

static int lme_shared(cj_edb *db, size_t len, void **out) {
	int rc = CJ_OK, ro, fd;
	pthread_mutex_lock(&db->combine_mu);
	if (!db->combine) {
		if (db->readonly) {
			rc = cj__fail(CJ_STORE, "%s: the store is open read-only", db->path);
		} else if (!(rc = cj__os_store_file(db->dirfd, db->path, "combine", db->mode, len,
		                                    &ro, &fd))) {
			char path[4096];
			snprintf(path, sizeof path, "%s/combine", db->path);
			if (ro) rc = cj__fail(CJ_STORE, "%s: read-only for this user", path);
			else if (!(rc = cj__os_map_shared(fd, path, len, &db->combine)))
				db->combine_len = len;
			close(fd);
		}
	} else if (len != db->combine_len) {
		rc = cj__fail(CJ_INVALID, "the combine file is mapped with another length");
	}
	*out = rc ? NULL : db->combine;
	pthread_mutex_unlock(&db->combine_mu);
	return rc;
}

static int lme_receipt_put(cj_etx *tx, unsigned slot, uint64_t tag) {
	if (!tx->dirty) return CJ_OK; /* nothing to tell: engine.h */
	uint8_t key[3] = {'r', (uint8_t)(slot >> 8), (uint8_t)slot}, val[8];
	be64(val, tag);
	MDB_val k = {3, key}, v = {8, val};
	int m, rc = lme_change(tx, tx->db->book, &k, &v, &m);
	if (rc) return rc;
	if (m) return lme_write_err(tx, m, "put");
	lme_rec(tx, LML_PUT, LME_REC_BOOK, &k, &v);
	tx->dirty = 1;
	tx->puts++;
	return CJ_OK;
}

static int lme_receipt_get(cj_edb *db, unsigned slot, uint64_t *tag) {
	*tag = 0;
	MDB_txn *txn;
	int rc = lme_txn_begin(db, MDB_RDONLY, &txn);
	if (rc) return lme_err(rc, "begin");
	uint8_t key[3] = {'r', (uint8_t)(slot >> 8), (uint8_t)slot};
	MDB_val k = {3, key}, v;
	rc = mdb_get(txn, db->book, &k, &v);
	if (rc == 0 && v.mv_size == 8) *tag = rd64(v.mv_data);
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&db->resize);
	return rc == 0 || rc == MDB_NOTFOUND ? CJ_OK : lme_err(rc, "get");
}

static int lme_sync(cj_edb *db) { return lme_flush(db); }

/* One writer at a time: one shard, so a type's counters share a page. */
static int lme_count_shards(cj_edb *db) {
	(void)db;
	return 1;
}

static const char *const lme_schemes[] = {"lmdb:", NULL};

const struct cj_engine cj__engine_lmdb = {
	.name = "lmdb",
	.schemes = lme_schemes,
	.version = CJ_ENGINE_VERSION,
	.supports = CJ_ENGINE_WRITERS_TAKE_TURNS, /* one writer at a time */
	.open = lme_open,
	.close = lme_close,
	.begin = lme_begin,
	.commit = lme_commit,
	.abort = lme_abort,
	.commit_version = lme_version,
	.native = lme_native,
	.get = lme_get,
	.put = lme_put,
	.del = lme_del,
	.scan = lme_scan,
	.claim_first = lme_claim_first,
	.notify = lme_notify,
	.watch = lme_watch,
	.wait = lme_wait,
	.wake = lme_wake,
	.wait_any = lme_wait_any,
	.readonly = lme_readonly,
	.notify_job = lme_notify_job,
	.word = lme_word,
	.bump = lme_bump,
	.begin_nested = lme_begin_nested,
	.commit_nested = lme_commit_nested,
	.abort_nested = lme_abort_nested,
	.notify_one = lme_notify_one,
	.rouse = lme_rouse,
	.shared_flushes = lme_shared_flushes,
	.shared = lme_shared,
	.receipt_put = lme_receipt_put,
	.receipt_get = lme_receipt_get,
	.sync = lme_sync,
	.add = lme_add,
	.count_shards = lme_count_shards,
};
