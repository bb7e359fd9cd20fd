/*
 * cj_stall: the latency of every commit of writers that add jobs without
 * pause, and the stalls in it (the embedded engine's checkpoints flush
 * data.mdb; doc/engine-log.md).
 *
 *   cj_stall --dir DIR [--mode durable|relaxed] [--procs N] [--seconds S]
 *            [--timeline FILE]
 *
 * N processes (default 2) each open the store (a fresh directory DIR/s,
 * removed at the end) and call cj_add, one job a call, for S seconds
 * (default 10). Every call's start and length go into shared memory; the
 * parent prints the calls' p50, p99, p99.9 and max, the calls longer than
 * 10 times the median ("slow": each process's own wait, whatever held it
 * up), and the moments when every process was inside such a call at once
 * ("stalls": nobody made progress). --timeline writes one line per call
 * (start in ms from the run's start, length in us, process) for plotting.
 *
 * What held a call up is not visible through the public API; run it under
 * `strace -f -T -e trace=fdatasync,sync_file_range` to see the flushes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <couchjobs.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CALLS 2000000 /* per process */

typedef struct call {
	int64_t start, len; /* ns */
} call;

static int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static int cmp64(const void *a, const void *b) {
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* One writer: adds jobs until the deadline; returns its call count. */
static long writer(const char *store, cj_sync_mode mode, int id, int64_t t0, int64_t end,
                   call *calls) {
	cj_options o = CJ_OPTIONS_INIT;
	o.sync = mode;
	o.no_monitor = 1;
	cj_db *db;
	if (cj_open(store, &o, &db) != CJ_OK) {
		fprintf(stderr, "cj_stall: cj_open failed\n");
		return -1;
	}
	long n = 0;
	char jid[64];
	while (n < MAX_CALLS) {
		int64_t a = now_ns();
		if (a >= end) break;
		snprintf(jid, sizeof jid, "p%d-%ld", id, n);
		int rc = cj_add(db, NULL, "stall", jid, "{\"n\":1}", 0);
		int64_t b = now_ns();
		if (rc != CJ_OK) {
			fprintf(stderr, "cj_stall: cj_add: %d\n", rc);
			break;
		}
		calls[n].start = a - t0;
		calls[n].len = b - a;
		n++;
	}
	cj_close(db);
	return n;
}

int main(int argc, char **argv) {
	const char *dir = NULL, *tl = NULL;
	cj_sync_mode mode = CJ_SYNC_FULL;
	int procs = 2;
	double seconds = 10;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
		else if (!strcmp(argv[i], "--mode") && i + 1 < argc)
			mode = !strcmp(argv[++i], "relaxed") ? CJ_SYNC_RELAXED : CJ_SYNC_FULL;
		else if (!strcmp(argv[i], "--procs") && i + 1 < argc) procs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--timeline") && i + 1 < argc) tl = argv[++i];
		else {
			fprintf(stderr, "usage: cj_stall --dir DIR [--mode durable|relaxed] [--procs N] "
			                "[--seconds S] [--timeline FILE]\n");
			return 2;
		}
	}
	if (!dir || procs < 1 || procs > 64 || seconds <= 0) {
		fprintf(stderr, "cj_stall: --dir is needed; 1 to 64 processes; seconds > 0\n");
		return 2;
	}
	char store[4096];
	snprintf(store, sizeof store, "%s/s", dir);
	nftw(store, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	size_t bytes = (size_t)procs * MAX_CALLS * sizeof(call) + (size_t)procs * sizeof(long);
	void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) return 1;
	long *count = m;
	call *calls = (call *)(count + procs);
	{ /* the store made, and the type, before the clock starts */
		cj_db *db;
		if (cj_open(store, NULL, &db) != CJ_OK) return 1;
		int rc = cj_set_type_timeout(db, "stall", 60);
		cj_close(db);
		if (rc != CJ_OK) return 1;
	}
	int64_t t0 = now_ns(), end = t0 + (int64_t)(seconds * 1e9);
	for (int p = 0; p < procs; p++) {
		pid_t pid = fork();
		if (pid < 0) return 1;
		if (pid == 0) {
			count[p] = writer(store, mode, p, t0, end, calls + (size_t)p * MAX_CALLS);
			_exit(count[p] < 0);
		}
	}
	int bad = 0;
	for (int p = 0; p < procs; p++) {
		int st;
		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) bad = 1;
	}
	if (bad) return 1;
	long total = 0;
	for (int p = 0; p < procs; p++) total += count[p];
	int64_t *lens = malloc(sizeof *lens * (size_t)(total ? total : 1));
	if (!lens) return 1;
	long k = 0;
	for (int p = 0; p < procs; p++)
		for (long i = 0; i < count[p]; i++) lens[k++] = calls[(size_t)p * MAX_CALLS + i].len;
	qsort(lens, (size_t)total, sizeof *lens, cmp64);
	if (!total) return 1;
	int64_t p50 = lens[total / 2], p99 = lens[(long)(total * 0.99)];
	int64_t p999 = lens[(long)(total * 0.999)], max = lens[total - 1];
	int64_t slow = 10 * p50;
	long nslow = 0;
	for (long i = 0; i < total; i++) nslow += lens[i] > slow;
	printf("%s, %d procs, %.1f s: %ld calls (%.0f/s); us: p50 %.0f p99 %.0f p99.9 %.0f max "
	       "%.0f; %ld calls over %.0f us\n",
	       mode == CJ_SYNC_FULL ? "durable" : "relaxed", procs, seconds, total,
	       total / seconds, p50 / 1e3, p99 / 1e3, p999 / 1e3, max / 1e3, nslow, slow / 1e3);
	/* stalls: moments when every process was inside a slow call at once
	 * (sweep of the slow calls' intervals, in start order) */
	typedef struct ev {
		int64_t t;
		int d;
	} ev;
	ev *evs = malloc(sizeof *evs * (size_t)(2 * nslow + 1));
	if (!evs) return 1;
	long ne = 0;
	for (int p = 0; p < procs; p++)
		for (long i = 0; i < count[p]; i++) {
			call *c = &calls[(size_t)p * MAX_CALLS + i];
			if (c->len <= slow) continue;
			evs[ne++] = (ev){c->start, 1};
			evs[ne++] = (ev){c->start + c->len, -1};
		}
	for (long i = 1; i < ne; i++) /* insertion sort: few */
		for (long j = i; j > 0 && (evs[j].t < evs[j - 1].t ||
		                           (evs[j].t == evs[j - 1].t && evs[j].d < evs[j - 1].d));
		     j--) {
			ev t = evs[j];
			evs[j] = evs[j - 1];
			evs[j - 1] = t;
		}
	int in = 0;
	long nstall = 0;
	int64_t since = 0, stalled = 0, longest = 0;
	for (long i = 0; i < ne; i++) {
		in += evs[i].d;
		if (in == procs && evs[i].d == 1) since = evs[i].t;
		if (in == procs - 1 && evs[i].d == -1) {
			int64_t d = evs[i].t - since;
			nstall++;
			stalled += d;
			if (d > longest) longest = d;
		}
	}
	printf("stalls (every process in a slow call): %ld, %.1f ms in all (%.2f%% of the run), "
	       "longest %.1f ms\n",
	       nstall, stalled / 1e6, 100.0 * stalled / (seconds * 1e9), longest / 1e6);
	if (tl) {
		FILE *f = fopen(tl, "w");
		if (!f) return 1;
		for (int p = 0; p < procs; p++)
			for (long i = 0; i < count[p]; i++) {
				call *c = &calls[(size_t)p * MAX_CALLS + i];
				fprintf(f, "%.3f\t%.0f\t%d\n", c->start / 1e6, c->len / 1e3, p);
			}
		fclose(f);
	}
	nftw(store, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(evs);
	free(lens);
	munmap(m, bytes);
	return 0;
}
