/*
 * Power-loss images of an embedded store (test/test_powerloss.c): a
 * recorder of the writes and flushes made to the store's files, and the
 * disk images a power loss could leave, built from its trace.
 *
 * The recorder (powerloss_rec.c) is linked into the test program: it
 * defines write(), pwrite(), writev(), fdatasync(), ... itself, which wins
 * over the C library's and over the sanitizers' interceptors (weak), and
 * makes each real call with syscall(). When the environment names a store
 * directory (PL_ENV_DIR) and a trace file (PL_ENV_TRACE) at program start
 * or at pl_rec_reload(), every write to a file of that directory is
 * appended to the trace when it starts and again, with its bytes, after
 * the call returned, and every flush of such a file before it starts and
 * after it ended; in every process, each record with one system call to
 * the trace opened with O_APPEND, which Linux makes atomic and ordered on a
 * regular file, so the trace is one order of all the processes' events. A
 * write whose record precedes the start of a flush of the same file
 * returned before that flush began, and the flush covers it; a write whose
 * start is in a prefix of the trace and its end is not was in flight at
 * that point.
 *
 * Records: a text line, then for a write its bytes:
 *   B <pid> <file> <offset> <length> <seq>\n  a write starts
 *   W <pid> <file> <offset> <length> <seq>\n<bytes>  it returned (length:
 *                                       what it wrote; none if it failed)
 *   T <pid> <file> <length>\n           ftruncate
 *   S <pid> <file> <seq>\n              a flush starts (fsync, fdatasync)
 *   E <pid> <file> <seq>\n              that flush ended (successfully)
 *   M <pid> <text>\n                    a marker of the test (pl_mark)
 * <seq> numbers a process's writes and flushes: it pairs an end with its
 * start.
 */
#ifndef CJ_TEST_POWERLOSS_H
#define CJ_TEST_POWERLOSS_H

#include <stddef.h>
#include <stdint.h>

#define PL_ENV_DIR "CJ_TEST_POWERLOSS_DIR"
#define PL_ENV_TRACE "CJ_TEST_POWERLOSS_TRACE"

/* Appends a marker record (a line of text, no newline) to the trace, when
 * this process records. */
void pl_mark(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reads the environment again (after setenv/unsetenv in this process),
 * while no other thread of it records: children forked later record as it
 * does. */
void pl_rec_reload(void);

/* ---- the trace, read back (powerloss_img.c) ---------------------------------- */

enum pl_kind { PL_WRITE_START, PL_WRITE, PL_TRUNC, PL_SYNC_START, PL_SYNC_END, PL_MARK };

struct pl_rec {
	enum pl_kind kind;
	int pid;
	char file[64]; /* the file's name in the store directory; a mark's text */
	uint64_t off, len; /* a write's offset and length; a truncation's length */
	uint64_t seq;      /* a flush's or a write's number in its process */
	const uint8_t *bytes; /* a write's, inside the trace's buffer */
	size_t end; /* for PL_SYNC_START, PL_WRITE_START: index of its end (0: none) */
};

struct pl_trace {
	uint8_t *buf;
	struct pl_rec *r;
	size_t n;
};

/* Reads a trace file: 0, or -1 (malformed: the message in err). */
int pl_trace_read(const char *path, struct pl_trace *t, char *err, size_t errlen);
void pl_trace_free(struct pl_trace *t);

/* A deterministic generator of the random draws (xorshift). */
typedef struct pl_rng {
	uint64_t s;
} pl_rng;
uint64_t pl_rand(pl_rng *g);

/* The files of a store directory, read once. */
#define PL_DIR_FILES 16
struct pl_dir {
	size_t n;
	char name[PL_DIR_FILES][64]; /* sorted */
	uint8_t *data[PL_DIR_FILES];
	size_t len[PL_DIR_FILES];
};
int pl_dir_load(const char *path, struct pl_dir *d);
void pl_dir_free(struct pl_dir *d);

/* Builds in dir (which exists, empty) the image of a power loss after the
 * first k records of t: the store's files at base (the store as it was
 * before the trace), and data.mdb's writes of the prefix applied in order:
 * each write covered by a flush of data.mdb that ended within the prefix
 * always, every other one per 4 KiB page at random (sometimes torn per
 * 512-byte sector), and last, likewise at random, each write in flight
 * (started within the prefix, returned after it). The mapped files are taken from base or from end (the
 * store after the trace) at random, per 4 KiB page: see test_powerloss.c.
 * Returns 0, or -1 with errno. */
int pl_image(const struct pl_trace *t, size_t k, const struct pl_dir *base,
             const struct pl_dir *end, const char *dir, pl_rng *g);

#endif
