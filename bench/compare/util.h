/* cj_compare: small helpers shared by the driver and the backends. */
#ifndef CMP_UTIL_H
#define CMP_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Names the current process in messages ("redis, processor 2"). */
void cmp_set_who(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "cj_compare: WHO: message" to stderr and exits with status 1. */
_Noreturn void cmp_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A progress line on stderr ("  .. message"). */
void cmp_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* CLOCK_MONOTONIC in nanoseconds: one clock for every process. */
int64_t cmp_now_ns(void);

void cmp_sleep_us(long us);

void *cmp_xmalloc(size_t n);
void *cmp_xcalloc(size_t n, size_t size);

/* Removes a directory tree (or a file); nothing if it does not exist. */
void cmp_rm_tree(const char *path);

#endif
