/* cj_compare: messages, clocks, memory and file helpers. */
#include "util.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char who[96] = "main";

void cmp_set_who(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(who, sizeof who, fmt, ap);
	va_end(ap);
}

void cmp_die(const char *fmt, ...) {
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	msg[strcspn(msg, "\n")] = 0; /* one line, whatever a server said */
	fprintf(stderr, "cj_compare: %s: %s\n", who, msg);
	exit(1);
}

void cmp_note(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "  .. ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

int64_t cmp_now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void cmp_sleep_us(long us) {
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

void *cmp_xmalloc(size_t n) {
	void *p = malloc(n ? n : 1);
	if (!p) cmp_die("out of memory");
	return p;
}

void *cmp_xcalloc(size_t n, size_t size) {
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p) cmp_die("out of memory");
	return p;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f) {
	(void)st, (void)f;
	int rc = flag == FTW_DP ? rmdir(p) : unlink(p);
	if (rc != 0 && errno != ENOENT)
		fprintf(stderr, "cj_compare: remove %s: %s\n", p, strerror(errno));
	return 0;
}

void cmp_rm_tree(const char *path) {
	struct stat st;
	if (lstat(path, &st) != 0) return;
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
