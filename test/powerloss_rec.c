/*
 * The write/flush recorder of powerloss.h, linked into the test program.
 *
 * Which calls: strace -f -y of the workloads (LMDB 0.9.24) shows LMDB
 * writing data.mdb with pwrite64 (its meta pages, single pages) and
 * lseek + writev (runs of pages), flushing it with fdatasync (LMDB calls
 * fsync instead where it distrusts fdatasync), mapping it read-only (no
 * MDB_WRITEMAP), and the engine sizing its mapped files (lock.mdb, wake,
 * flush, combine) and the reserve with fallocate (posix_fallocate in
 * src/os/linux.c) and writing the mapped ones through their mappings only. write(), pwrite64(), pwritev() and
 * ftruncate() are recorded too, so that a later change of LMDB or of the
 * engine that uses them is still seen. msync() (LMDB calls it only with
 * MDB_WRITEMAP, which the engine never sets) is marked as such, and the
 * images refuse a trace that holds one: the model has no place for it.
 * posix_fallocate() and fallocate() are not recorded: they change no
 * byte that can be read, and are made on the mapped files alone, whose
 * images are modelled whole (test_powerloss.c).
 *
 * Each definition here is the program's own: the C library's is not
 * called, the real operation is the system call. errno is kept as the call
 * left it, whatever recording does.
 */
#include "powerloss.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int pid;     /* the process this state was read in (0: not yet) */
	int on;
	int fd;      /* the trace, O_APPEND */
	char dir[PATH_MAX];
	size_t dirlen;
	uint64_t seq; /* flushes of this process */
} rec = {0, 0, -1, "", 0, 0};

static void rec_load(void) {
	const char *d = getenv(PL_ENV_DIR), *t = getenv(PL_ENV_TRACE);
	if (rec.fd >= 0) syscall(SYS_close, rec.fd);
	rec.fd = -1;
	rec.on = 0;
	rec.seq = 0;
	rec.pid = (int)syscall(SYS_getpid);
	if (!d || !*d || !t || !*t || !realpath(d, rec.dir)) return;
	rec.dirlen = strlen(rec.dir);
	rec.fd = (int)syscall(SYS_openat, AT_FDCWD, t,
	                      O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	rec.on = rec.fd >= 0;
}

void pl_rec_reload(void) {
	pthread_mutex_lock(&rec_mu);
	rec_load();
	pthread_mutex_unlock(&rec_mu);
}

/* 1 when this process records (after fork, the child reads its own state). */
static int rec_on(void) {
	int e = errno;
	pthread_mutex_lock(&rec_mu);
	if (rec.pid != (int)syscall(SYS_getpid)) rec_load();
	int on = rec.on;
	pthread_mutex_unlock(&rec_mu);
	errno = e;
	return on;
}

/* The name of fd's file when it is in the store directory (1), else 0. */
static int rec_name(int fd, char *name, size_t cap) {
	char link[64], path[PATH_MAX];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	long n = syscall(SYS_readlinkat, AT_FDCWD, link, path, sizeof path - 1);
	if (n <= 0) return 0;
	path[n] = 0;
	if ((size_t)n <= rec.dirlen + 1 || memcmp(path, rec.dir, rec.dirlen) != 0 ||
	    path[rec.dirlen] != '/')
		return 0;
	const char *base = path + rec.dirlen + 1;
	if (strchr(base, '/') || strlen(base) >= cap) return 0;
	snprintf(name, cap, "%s", base);
	return 1;
}

/* Appends one record: the header line, then the iovecs. One writev on an
 * O_APPEND file: nothing of another record comes between its parts. */
static void rec_put(const char *hdr, const struct iovec *data, int cnt) {
	struct iovec v[IOV_MAX];
	if (cnt + 1 > IOV_MAX) abort(); /* never: writev takes at most IOV_MAX */
	v[0].iov_base = (void *)hdr;
	v[0].iov_len = strlen(hdr);
	size_t want = v[0].iov_len;
	for (int i = 0; i < cnt; i++) {
		v[i + 1] = data[i];
		want += data[i].iov_len;
	}
	long n = syscall(SYS_writev, rec.fd, v, cnt + 1);
	if (n < 0 || (size_t)n != want) abort(); /* a torn trace proves nothing */
}

/* Records a write of the iovecs (ret bytes of them) at off. */
static void rec_write(int fd, const struct iovec *iov, int cnt, long ret, int64_t off) {
	char name[64], hdr[160];
	if (ret <= 0 || !rec_on()) return;
	int e = errno;
	pthread_mutex_lock(&rec_mu);
	if (rec_name(fd, name, sizeof name)) {
		if (off < 0) off = (int64_t)syscall(SYS_lseek, fd, 0, SEEK_CUR) - ret;
		struct iovec part[IOV_MAX];
		int n = 0;
		size_t left = (size_t)ret;
		for (int i = 0; i < cnt && left > 0 && n < IOV_MAX - 1; i++) {
			size_t l = iov[i].iov_len < left ? iov[i].iov_len : left;
			part[n].iov_base = iov[i].iov_base;
			part[n++].iov_len = l;
			left -= l;
		}
		snprintf(hdr, sizeof hdr, "W %d %s %lld %ld\n", rec.pid, name, (long long)off, ret);
		rec_put(hdr, part, n);
	}
	pthread_mutex_unlock(&rec_mu);
	errno = e;
}

/* A flush's start (end = 0) or end of fd's file; its number. */
static uint64_t rec_sync(int fd, int end, uint64_t seq) {
	char name[64], hdr[160];
	if (!rec_on()) return 0;
	int e = errno;
	pthread_mutex_lock(&rec_mu);
	if (rec_name(fd, name, sizeof name)) {
		if (!end) seq = ++rec.seq;
		snprintf(hdr, sizeof hdr, "%c %d %s %llu\n", end ? 'E' : 'S', rec.pid, name,
		         (unsigned long long)seq);
		rec_put(hdr, NULL, 0);
	}
	pthread_mutex_unlock(&rec_mu);
	errno = e;
	return seq;
}

void pl_mark(const char *fmt, ...) {
	char text[256], hdr[300];
	if (!rec_on()) return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&rec_mu);
	snprintf(hdr, sizeof hdr, "M %d %s\n", rec.pid, text);
	rec_put(hdr, NULL, 0);
	pthread_mutex_unlock(&rec_mu);
}

/* ---- the calls ----------------------------------------------------------------- */

ssize_t write(int fd, const void *buf, size_t n) {
	long r = syscall(SYS_write, fd, buf, n);
	struct iovec v = {(void *)buf, n};
	rec_write(fd, &v, 1, r, -1);
	return r;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
	long r = syscall(SYS_pwrite64, fd, buf, n, off);
	struct iovec v = {(void *)buf, n};
	rec_write(fd, &v, 1, r, off);
	return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
	return pwrite(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
	long r = syscall(SYS_writev, fd, iov, cnt);
	rec_write(fd, iov, cnt, r, -1);
	return r;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
	/* the kernel's pwritev takes the offset in two halves */
	long r = syscall(SYS_pwritev, fd, iov, cnt, (unsigned long)off, 0UL);
	rec_write(fd, iov, cnt, r, off);
	return r;
}

int ftruncate(int fd, off_t len) {
	long r = syscall(SYS_ftruncate, fd, len);
	char name[64], hdr[160];
	if (r == 0 && rec_on()) {
		int e = errno;
		pthread_mutex_lock(&rec_mu);
		if (rec_name(fd, name, sizeof name)) {
			snprintf(hdr, sizeof hdr, "T %d %s %lld\n", rec.pid, name, (long long)len);
			rec_put(hdr, NULL, 0);
		}
		pthread_mutex_unlock(&rec_mu);
		errno = e;
	}
	return (int)r;
}

static int rec_flush(int fd, long nr) {
	uint64_t seq = rec_sync(fd, 0, 0);
	long r = syscall(nr, fd);
	if (r == 0 && seq) rec_sync(fd, 1, seq);
	return (int)r;
}

int fsync(int fd) { return rec_flush(fd, SYS_fsync); }

int fdatasync(int fd) { return rec_flush(fd, SYS_fdatasync); }

int msync(void *addr, size_t len, int flags) {
	long r = syscall(SYS_msync, addr, len, flags);
	int e = errno;
	pl_mark("msync");
	errno = e;
	return (int)r;
}
