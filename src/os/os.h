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

#define CJ_WAKE_WORDS 1024

/* Maps (creating with mode if missing) the file at path holding
 * CJ_WAKE_WORDS words. CJ_OK or CJ_STORE. */
int cj__os_wakemap_open(const char *path, mode_t mode, cj_wakemap **out);
void cj__os_wakemap_close(cj_wakemap *m);

uint32_t cj__os_word_load(cj_wakemap *m, unsigned idx);
/* Increments word idx and wakes all its sleepers, in every process. */
void cj__os_word_bump(cj_wakemap *m, unsigned idx);
/* Wakes all sleepers of word idx without changing it. */
void cj__os_word_wake(cj_wakemap *m, unsigned idx);
/* Sleeps while word idx == seen, until woken or deadline_ms
 * (CLOCK_MONOTONIC ms; -1: none). CJ_OK (woken or changed, perhaps
 * spuriously) or CJ_TIMEOUT. */
int cj__os_word_wait(cj_wakemap *m, unsigned idx, uint32_t seen, int64_t deadline_ms);

#endif
