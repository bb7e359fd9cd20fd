/*
 * The write/flush recorder of powerloss.h, linked into the test program.
 *
 * Which calls: strace -f -y of the workloads (LMDB 0.9.24) shows LMDB
 * writing data.mdb with pwrite64 (its meta pages, single pages) and
 * lseek + writev (runs of pages), flushing it with fdatasync (LMDB calls
 * fsync instead where it distrusts fdatasync), mapping it read-only (no
 * MDB_WRITEMAP), and the engine sizing its mapped files (lock.mdb, wake,
 * flush, combine) and the reserve with fallocate (posix_fallocate in
 * src/os/linux.c) and writing the mapped ones through their mappings only.
 * write(), pwrite64(), pwritev() and ftruncate() are recorded too, so that
 * a later change of LMDB or of the engine that uses them is still seen.
 * msync() (LMDB calls it only with MDB_WRITEMAP, which the engine never
 * sets) is marked as such, and the images refuse a trace that holds one:
 * the model has no place for it. posix_fallocate() and fallocate() are not
 * recorded: they change no byte that can be read, and are made on the
 * mapped files alone, whose images are modelled whole (test_powerloss.c).
 *
 * Each definition here is the program's own: the C library's is not
 * called, the real operation is the system call. errno is kept as the call
 * left it, whatever recording does.
 *
 * Async-signal-safe and fork-safe: recording takes no lock and calls
 * nothing but system calls and the formatting below (no stdio, no malloc),
 * so a signal handler that writes, or a fork() while another thread
 * records, cannot deadlock it. Each record is one writev() (or, for a
 * write of more buffers than one writev() takes with a header, one write()
 * of a copy in memory mapped for it) to the trace opened with O_APPEND:
 * atomic and ordered among all the processes' records. The state (the
 * trace's descriptor, the store directory) is read from the environment at
 * program start and by pl_rec_reload() only, which the test calls while it
 * has no other thread; a child of fork() keeps its parent's (the same
 * O_APPEND open file) and records with its own pid.
 */
#include "powerloss.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static struct {
	int fd; /* the trace, O_APPEND; -1: not recording */
	char dir[PATH_MAX];
	size_t dirlen;
} rec = {-1, "", 0};
/* numbers of this process's flushes and writes (a child goes on from its
 * parent's: records are told apart by pid too) */
static atomic_uint_least64_t rec_seq;

static void rec_load(void) {
	const char *d = getenv(PL_ENV_DIR), *t = getenv(PL_ENV_TRACE);
	if (rec.fd >= 0) syscall(SYS_close, rec.fd);
	rec.fd = -1;
	if (!d || !*d || !t || !*t || !realpath(d, rec.dir)) return;
	rec.dirlen = strlen(rec.dir);
	rec.fd = (int)syscall(SYS_openat, AT_FDCWD, t,
	                      O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
}

__attribute__((constructor)) static void rec_start(void) { rec_load(); }

void pl_rec_reload(void) {
	int e = errno;
	rec_load();
	errno = e;
}

/* ---- formatting without stdio (async-signal-safe) ------------------------------- */

struct line {
	char s[512]; /* a header: names are at most 63 bytes, markers 255 */
	size_t n;
};

static void put_str(struct line *l, const char *s) {
	while (*s && l->n < sizeof l->s - 1) l->s[l->n++] = *s++;
}

static void put_u64(struct line *l, uint64_t v) {
	char d[24];
	int n = 0;
	do d[n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < 24);
	while (n > 0 && l->n < sizeof l->s - 1) l->s[l->n++] = d[--n];
}

static void put_i64(struct line *l, int64_t v) {
	if (v < 0) put_str(l, "-");
	put_u64(l, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
}

/* "<kind> <pid> <name>" */
static void put_head(struct line *l, const char *kind, const char *name) {
	l->n = 0;
	put_str(l, kind);
	put_str(l, " ");
	put_i64(l, syscall(SYS_getpid));
	put_str(l, " ");
	put_str(l, name);
}

/* The name of fd's file when it is in the store directory (1), else 0. */
static int rec_name(int fd, char *name, size_t cap) {
	struct line link = {.n = 0};
	char path[PATH_MAX];
	if (rec.fd < 0 || fd < 0) return 0;
	put_str(&link, "/proc/self/fd/");
	put_i64(&link, fd);
	link.s[link.n] = 0;
	long n = syscall(SYS_readlinkat, AT_FDCWD, link.s, path, sizeof path - 1);
	if (n <= 0) return 0;
	path[n] = 0;
	if ((size_t)n <= rec.dirlen + 1 || memcmp(path, rec.dir, rec.dirlen) != 0 ||
	    path[rec.dirlen] != '/')
		return 0;
	const char *base = path + rec.dirlen + 1;
	size_t bl = strlen(base);
	if (memchr(base, '/', bl) || bl >= cap) return 0;
	memcpy(name, base, bl + 1);
	return 1;
}

#define REC_IOV 64 /* iovecs of a record on the stack, the header's included */

/* Appends one record: the header line l (without its newline), then len
 * bytes of the iovecs; one system call, so nothing of another record comes
 * between its parts. */
static void rec_put(struct line *l, const struct iovec *data, int cnt, size_t len) {
	l->s[l->n++] = '\n'; /* room kept by put_*() */
	size_t want = l->n + len;
	long n;
	if (cnt < REC_IOV) {
		struct iovec v[REC_IOV];
		v[0].iov_base = l->s;
		v[0].iov_len = l->n;
		size_t left = len;
		int k = 1;
		for (int i = 0; i < cnt && left > 0; i++, k++) {
			v[k] = data[i];
			if (v[k].iov_len > left) v[k].iov_len = left;
			left -= v[k].iov_len;
		}
		n = syscall(SYS_writev, rec.fd, v, k);
	} else {
		/* more buffers than kept on the stack (a handler's may be small), up
		 * to more than a writev() takes beside the header: a copy, in memory
		 * mapped for it (mmap, unlike malloc, is safe in a handler) */
		uint8_t *p = (uint8_t *)syscall(SYS_mmap, NULL, want, PROT_READ | PROT_WRITE,
		                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) abort();
		memcpy(p, l->s, l->n);
		size_t at = l->n, left = len;
		for (int i = 0; i < cnt && left > 0; i++) {
			size_t c = data[i].iov_len < left ? data[i].iov_len : left;
			memcpy(p + at, data[i].iov_base, c);
			at += c;
			left -= c;
		}
		n = syscall(SYS_write, rec.fd, p, want);
		syscall(SYS_munmap, p, want);
	}
	if (n < 0 || (size_t)n != want) abort(); /* a torn trace proves nothing */
}

/* A write of fd's file at off starts: its name (or 0: not recorded) and
 * its number, for rec_write(). off < 0: at the file's offset. */
static int rec_write_start(int fd, int64_t *off, size_t len, char *name, uint64_t *seq) {
	int e = errno;
	int on = rec_name(fd, name, 64);
	if (on) {
		if (*off < 0) *off = (int64_t)syscall(SYS_lseek, fd, 0, SEEK_CUR);
		*seq = atomic_fetch_add(&rec_seq, 1) + 1;
		struct line l;
		put_head(&l, "B", name);
		put_str(&l, " ");
		put_i64(&l, *off);
		put_str(&l, " ");
		put_u64(&l, len);
		put_str(&l, " ");
		put_u64(&l, *seq);
		rec_put(&l, NULL, 0, 0);
	}
	errno = e;
	return on;
}

/* That write returned ret: ret bytes of the iovecs written at off. */
static void rec_write(const char *name, uint64_t seq, const struct iovec *iov, int cnt,
                      long ret, int64_t off) {
	if (ret <= 0) return; /* its start has no end: nothing written */
	int e = errno;
	struct line l;
	put_head(&l, "W", name);
	put_str(&l, " ");
	put_i64(&l, off);
	put_str(&l, " ");
	put_i64(&l, ret);
	put_str(&l, " ");
	put_u64(&l, seq);
	rec_put(&l, iov, cnt, (size_t)ret);
	errno = e;
}

/* A flush's start (end = 0) or end of the file name; its number. */
static void rec_sync(const char *name, int end, uint64_t seq) {
	int e = errno;
	struct line l;
	put_head(&l, end ? "E" : "S", name);
	put_str(&l, " ");
	put_u64(&l, seq);
	rec_put(&l, NULL, 0, 0);
	errno = e;
}

/* Not from a signal handler (vsnprintf): the test's own markers. */
void pl_mark(const char *fmt, ...) {
	char text[256];
	if (rec.fd < 0) return;
	int e = errno;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	struct line l;
	put_head(&l, "M", text);
	rec_put(&l, NULL, 0, 0);
	errno = e;
}

/* ---- the calls ----------------------------------------------------------------- */

static size_t iov_len(const struct iovec *iov, int cnt) {
	size_t n = 0;
	for (int i = 0; i < cnt; i++) n += iov[i].iov_len;
	return n;
}

/* One write of the iovecs at off (< 0: at the file's offset), by the
 * system call nr with its arguments a..d, recorded. */
static long rec_call(int fd, const struct iovec *iov, int cnt, int64_t off, long nr, long a,
                     long b, long c, long d) {
	/* (pwritev's fifth argument, the offset's high half, is 0: ignored
	 * on 64-bit kernels, where the fourth holds it whole) */
	char name[64];
	uint64_t seq = 0;
	int on = rec_write_start(fd, &off, iov_len(iov, cnt), name, &seq);
	long r = syscall(nr, a, b, c, d, 0L);
	if (on) rec_write(name, seq, iov, cnt, r, off);
	return r;
}

ssize_t write(int fd, const void *buf, size_t n) {
	struct iovec v = {(void *)buf, n};
	return rec_call(fd, &v, 1, -1, SYS_write, fd, (long)buf, (long)n, 0);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
	struct iovec v = {(void *)buf, n};
	return rec_call(fd, &v, 1, off, SYS_pwrite64, fd, (long)buf, (long)n, (long)off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
	return pwrite(fd, buf, n, off);
}

/* The iovecs a vectored write may read: none when the call must fail. */
static int iov_cnt(int cnt) { return cnt < 0 || cnt > IOV_MAX ? 0 : cnt; }

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
	return rec_call(fd, iov, iov_cnt(cnt), -1, SYS_writev, fd, (long)iov, cnt, 0);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
	return rec_call(fd, iov, iov_cnt(cnt), off, SYS_pwritev, fd, (long)iov, cnt, (long)off);
}

int ftruncate(int fd, off_t len) {
	long r = syscall(SYS_ftruncate, fd, len);
	char name[64];
	int e = errno;
	if (r == 0 && rec_name(fd, name, sizeof name)) {
		struct line l;
		put_head(&l, "T", name);
		put_str(&l, " ");
		put_i64(&l, len);
		rec_put(&l, NULL, 0, 0);
	}
	errno = e;
	return (int)r;
}

static int rec_flush(int fd, long nr) {
	char name[64];
	int e = errno;
	int on = rec_name(fd, name, sizeof name);
	uint64_t seq = on ? atomic_fetch_add(&rec_seq, 1) + 1 : 0;
	if (on) rec_sync(name, 0, seq);
	errno = e;
	long r = syscall(nr, fd);
	if (r == 0 && on) rec_sync(name, 1, seq);
	return (int)r;
}

int fsync(int fd) { return rec_flush(fd, SYS_fsync); }

int fdatasync(int fd) { return rec_flush(fd, SYS_fdatasync); }

int msync(void *addr, size_t len, int flags) {
	long r = syscall(SYS_msync, addr, len, flags);
	int e = errno;
	if (rec.fd >= 0) {
		struct line l;
		put_head(&l, "M", "msync");
		rec_put(&l, NULL, 0, 0);
	}
	errno = e;
	return (int)r;
}
