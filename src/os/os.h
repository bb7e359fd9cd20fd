/*
 * The operating system layer: wake words shared between processes.
 *
 * A wake word is a 32-bit counter in memory shared by every process that
 * maps the same file. A waiter reads the word, checks its condition, then
 * sleeps while the word still holds what it read; a writer increments the
 * word after making the condition true and wakes every sleeper. Sleeping
 * costs no CPU. On Linux this is a futex on a shared file mapping.
 */
#ifndef CJ_OS_H
#define CJ_OS_H

#include <stdint.h>
#include <sys/types.h>

typedef struct cj_wakemap cj_wakemap;

#define CJ_WAKE_WORDS 66818 /* CJ_WORDS of cj_int.h: the layout is doc/format.md's */

/* ---- the store's directory and files --------------------------------------
 *
 * A store directory must not let anyone but its user (and root) plant files
 * in it: it is refused when it is owned by another user, or when its group
 * or others may write it beyond what share_bits (of 0022) allow. Then no
 * one else can swap a file checked here for a symlink before it is used,
 * and the files themselves are checked for being regular files with one
 * link, opened without following a symlink. */

/* Opens the directory path and checks it as above (nothing when shared):
 * CJ_OK with *dirfd, or CJ_STORE naming what is wrong. */
int cj__os_store_dir(const char *path, int shared, mode_t share_bits, int *dirfd);

/* Opens (creating with mode) the file name of the store directory dirfd
 * (named path in messages), refusing a symlink, anything but a regular
 * file, and a file with other hard links. Writable when it can be:
 * *readonly says it could only be opened read-only. When writable and
 * alloc > 0, its first alloc bytes get blocks for real now (a later write
 * through a mapping can then not fail for want of space). CJ_OK with *fd
 * (close it) when fd is not NULL; CJ_STORE ("no space left on device",
 * the symlink, ...) or CJ_NOMEM. */
int cj__os_store_file(int dirfd, const char *path, const char *name, mode_t mode,
                      size_t alloc, int *readonly, int *fd);

/* Reads the regular file rel (a relative path without ".." components)
 * beneath the directory dir into *buf (cj_free(); *len bytes), resolving
 * symbolic links only while they stay beneath dir (where the kernel cannot
 * tell, refusing every link). CJ_OK; CJ_NOT_FOUND (missing, a link out of
 * dir, not a regular file); CJ_TOO_LARGE (over max bytes); CJ_STORE;
 * CJ_NOMEM. */
int cj__os_read_beneath(const char *dir, const char *rel, size_t max, unsigned char **buf,
                        size_t *len);

/* The text of errno value e for a message; ENOSPC is "no space left on
 * device". */
const char *cj__os_strerror(int e);

/* Maps the file fd (from cj__os_store_file, allocated for CJ_WAKE_WORDS
 * words unless readonly) holding the wake words; fd stays the caller's.
 * A read-only map wakes this process's waiters without changing the words,
 * and its waits look again at least every second (another process's wake
 * may come between a waiter's look and its sleep). CJ_OK, CJ_STORE or
 * CJ_NOMEM. */
#define CJ_WAKE_BYTES (CJ_WAKE_WORDS * sizeof(uint32_t))
int cj__os_wakemap_open(int fd, const char *path, int readonly, cj_wakemap **out);
/* The same for a file of other shared words (words of them, an even
 * number, allocated unless readonly); the calls below take any index,
 * modulo words. */
int cj__os_wordmap_open(int fd, const char *path, unsigned words, int readonly,
                        cj_wakemap **out);
void cj__os_wakemap_close(cj_wakemap *m);

uint32_t cj__os_word_load(cj_wakemap *m, unsigned idx);
/* Increments word idx and wakes all its sleepers, in every process. */
void cj__os_word_bump(cj_wakemap *m, unsigned idx);
/* Increments word idx and wakes n of its sleepers (n >= 1), in whichever
 * processes they are; the others sleep on (until their next wake-up). */
void cj__os_word_bump_n(cj_wakemap *m, unsigned idx, unsigned n);
/* Wakes all sleepers of word idx (below CJ_OS_ROUSE_WORDS) without changing
 * it, unless a rouse already did so since the word last changed: word
 * CJ_OS_ROUSE_STAMP holds the last roused word's index (10 bits) and the
 * low 22 bits of its value then. A sleeper that slept on an older value
 * wakes once per change, however many rouse it. */
#define CJ_OS_ROUSE_WORDS 1024
#define CJ_OS_ROUSE_STAMP 0
void cj__os_word_rouse(cj_wakemap *m, unsigned idx);
/* Increments word idx without waking anyone (for words nobody sleeps on). */
void cj__os_word_add(cj_wakemap *m, unsigned idx);
/* 64-bit words: 64-bit word idx is words 2 idx and 2 idx + 1 (of a
 * wordmap). raise sets it to v if v is greater (1 if it did); swap sets it
 * to v if it holds expect (1 if it did); set sets it; none wakes anyone.
 * wait sleeps while it holds seen (as cj__os_word_wait; a change of a
 * multiple of 2^32 may go unseen until the deadline); wake wakes its
 * sleepers. A read-only map changes nothing. */
uint64_t cj__os_word64_load(cj_wakemap *m, unsigned idx);
int cj__os_word64_raise(cj_wakemap *m, unsigned idx, uint64_t v);
int cj__os_word64_swap(cj_wakemap *m, unsigned idx, uint64_t expect, uint64_t v);
void cj__os_word64_set(cj_wakemap *m, unsigned idx, uint64_t v);
int cj__os_word64_wait(cj_wakemap *m, unsigned idx, uint64_t seen, int64_t deadline_ms);
void cj__os_word64_wake(cj_wakemap *m, unsigned idx);
/* Wakes all sleepers of word idx without changing it. */
void cj__os_word_wake(cj_wakemap *m, unsigned idx);
/* Sleeps while word idx == seen, until woken or deadline_ms
 * (CLOCK_MONOTONIC ms; -1: none). CJ_OK (woken or changed, perhaps
 * spuriously) or CJ_TIMEOUT. */
int cj__os_word_wait(cj_wakemap *m, unsigned idx, uint32_t seen, int64_t deadline_ms);
/* Sleeps while every word idx[i] == seen[i] (n of them, 1 to
 * CJ_OS_WAIT_ANY_MAX), as cj__os_word_wait does for one. On kernels
 * without a vectored futex wait (Linux before 5.16) it sleeps on idx[0]
 * and looks at the others at least every CJ_OS_WAIT_ANY_RELOOK_MS. */
#define CJ_OS_WAIT_ANY_MAX 128
#define CJ_OS_WAIT_ANY_RELOOK_MS 100
int cj__os_word_wait_any(cj_wakemap *m, const unsigned *idx, const uint32_t *seen, size_t n,
                         int64_t deadline_ms);

/* ---- events: descriptors a caller's event loop can poll ---------------------
 *
 * An event is a file descriptor that is readable while the event is set
 * (an eventfd on Linux). Setting a set event or clearing a clear one does
 * nothing; the caller serialises set and clear (they are not atomic
 * together). */

/* CJ_OK with *fd (non-blocking, closed on exec), or CJ_NOMEM when the
 * process or the system has no descriptor to spare. */
int cj__os_event_new(int *fd);
void cj__os_event_set(int fd);
void cj__os_event_clear(int fd);
void cj__os_event_close(int fd); /* -1 is ignored */

/* Finds where the file open as fd is mapped in this process, given an
 * address p inside that mapping: *base is the address of the file's first
 * byte, *end the end of the mapping. 0, or -1 if p is not in a mapping of
 * that file (or the mappings cannot be read). */
int cj__os_file_mapping(int fd, const void *p, uintptr_t *base, uintptr_t *end);

/* ---- shared memory of the store's processes --------------------------------
 *
 * For combining calls across processes (src/combine.c): a file of the store
 * mapped shared, 32-bit words in it to sleep on, and ids of the processes
 * taking part that say whether the process that wrote one into such memory
 * is still there (src/os/owner.c: not its process id, which another
 * process may have taken since, or which means nothing in another PID
 * namespace). */

/* Maps len bytes of the file fd (allocated for them: cj__os_store_file)
 * read-write and shared, and claims this process's owner id in it; fd stays
 * the caller's. CJ_OK, CJ_STORE (also where owner ids cannot be claimed:
 * the system has no open file description locks) or CJ_NOMEM. */
int cj__os_map_shared(int fd, const char *path, size_t len, void **out);
/* Unmaps it and gives the id up (NULL is ignored). */
void cj__os_unmap_shared(void *p, size_t len);
/* Sleeps while *w == seen, until cj__os_futex_wake(w), timeout_ms or a
 * signal: returns at once if *w differs (a shared futex: across processes). */
void cj__os_futex_wait(_Atomic uint32_t *w, uint32_t seen, int64_t timeout_ms);
/* Wakes every sleeper of *w, in every process. */
void cj__os_futex_wake(_Atomic uint32_t *w);

/* Owners (src/os/owner.c). claim takes an id for this process in the file
 * fd mapped at map for len bytes (its own descriptor: fd stays the
 * caller's): CJ_OK, CJ_STORE (none can be claimed here) or CJ_NOMEM;
 * release gives it up (the process stops taking part). cj__os_owner_of is
 * the claim of the mapping that holds address p (any byte of it), or NULL:
 * valid until that mapping's release, so a user of the mapping looks it up
 * once. cj__os_owner is this process's id in claim o: not 0, below 2^31,
 * the same in every thread (0 for NULL). cj__os_owner_alive says whether
 * the process that claimed id (any process mapping the same file) still
 * holds it: a dead one does not, seen from any PID namespace, and a later
 * claim draws a dead one's id again with a chance of 2^-30. After fork()
 * the child's claims are its parent's, whose locks it does not hold: it
 * must not use them (nor the handles that do: couchjobs.h), and alive()
 * cannot tell there and says alive. Thread-safe. */
typedef struct cj_os_owner cj_os_owner;
int cj__os_owner_claim(int fd, const char *path, const void *map, size_t len);
void cj__os_owner_release(const void *map);
const cj_os_owner *cj__os_owner_of(const void *p);
uint32_t cj__os_owner(const cj_os_owner *o);
int cj__os_owner_alive(const cj_os_owner *o, uint32_t id);

#endif
