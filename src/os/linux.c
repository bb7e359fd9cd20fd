/* The operating system layer on Linux: the store's directory and files,
 * and wake words: futexes on a MAP_SHARED file mapping, which the kernel
 * keys by (inode, offset), so they work across processes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cj_int.h"
#include "os/os.h"

/* A read-only map's waits look again this often (see os.h). */
#define CJ_RO_RELOOK_MS 1000

struct cj_wakemap {
	_Atomic uint32_t *words;
	size_t size;
	unsigned n; /* words */
	int readonly;
};

const char *cj__os_strerror(int e) {
	return e == ENOSPC ? "no space left on device" : strerror(e);
}

int cj__os_store_dir(const char *path, int shared, mode_t share_bits, int *dirfd) {
	*dirfd = -1;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) return cj__fail(CJ_STORE, "%s: %s", path, cj__os_strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return cj__fail(CJ_STORE, "%s: %s", path, cj__os_strerror(e));
	}
	uid_t me = geteuid();
	if (shared) {
		*dirfd = fd;
		return CJ_OK;
	}
	if (st.st_uid != me && st.st_uid != 0) {
		close(fd);
		return cj__fail(CJ_STORE, "%s: the store directory belongs to another user "
		                "(uid %u; this is uid %u), who could plant files in it; open it "
		                "as a shared store if that is intended", path,
		                (unsigned)st.st_uid, (unsigned)me);
	}
	mode_t loose = st.st_mode & 0022 & ~share_bits;
	if (loose) {
		close(fd);
		return cj__fail(CJ_STORE, "%s: the store directory is writable by %s (mode "
		                "%03o), who could plant files in it; chmod go-w it, or open it "
		                "as a shared store if that is intended", path,
		                loose & 0002 ? "every user" : "its group",
		                (unsigned)(st.st_mode & 07777));
	}
	*dirfd = fd;
	return CJ_OK;
}

int cj__os_store_file(int dirfd, const char *path, const char *name, mode_t mode,
                      size_t alloc, int *readonly, int *fdp) {
	int flags = O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	*readonly = 0;
	if (fdp) *fdp = -1;
	int fd = openat(dirfd, name, flags | O_RDWR | O_CREAT, mode);
	if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
		int e = errno;
		fd = openat(dirfd, name, flags | O_RDONLY);
		if (fd >= 0) *readonly = 1;
		else errno = e;
	}
	if (fd < 0) {
		if (errno == ELOOP)
			return cj__fail(CJ_STORE, "%s/%s is a symbolic link: refused (a store's "
			                "files are never followed elsewhere)", path, name);
		return cj__fail(CJ_STORE, "%s/%s: %s", path, name, cj__os_strerror(errno));
	}
	struct stat st;
	int rc = CJ_OK;
	if (fstat(fd, &st) != 0) {
		rc = cj__fail(CJ_STORE, "%s/%s: %s", path, name, cj__os_strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		rc = cj__fail(CJ_STORE, "%s/%s is not a regular file: refused", path, name);
	} else if (st.st_nlink > 1) {
		rc = cj__fail(CJ_STORE, "%s/%s has %lu hard links: refused (it may be another "
		              "file of someone else)", path, name, (unsigned long)st.st_nlink);
	} else if (!*readonly && alloc > 0) {
		/* blocks for real, not a sparse file: a write through a mapping
		 * that finds the disk full would kill the process (SIGBUS) */
		int e = posix_fallocate(fd, 0, (off_t)alloc);
		if (e) rc = cj__fail(CJ_STORE, "%s/%s: %s", path, name, cj__os_strerror(e));
	}
	if (rc == CJ_OK) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	if (rc || !fdp) close(fd);
	else *fdp = fd;
	return rc;
}

int cj__os_wakemap_open(int fd, const char *path, int readonly, cj_wakemap **out) {
	return cj__os_wordmap_open(fd, path, CJ_WAKE_WORDS, readonly, out);
}

int cj__os_wordmap_open(int fd, const char *path, unsigned words, int readonly,
                        cj_wakemap **out) {
	*out = NULL;
	size_t size = (size_t)words * sizeof(uint32_t);
	struct stat st;
	if (fstat(fd, &st) != 0)
		return cj__fail(CJ_STORE, "%s: %s", path, cj__os_strerror(errno));
	if ((size_t)st.st_size < size)
		return cj__fail(CJ_STORE, "%s: %lld bytes, too short for its shared words (and "
		                "read-only)", path, (long long)st.st_size);
	void *p = mmap(NULL, size, readonly ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED,
	               fd, 0);
	if (p == MAP_FAILED) return cj__fail(CJ_STORE, "%s: %s", path, cj__os_strerror(errno));
	cj_wakemap *m = cj__malloc(sizeof *m);
	if (!m) {
		munmap(p, size);
		return cj__fail(CJ_NOMEM, "out of memory");
	}
	m->words = p;
	m->size = size;
	m->n = words;
	m->readonly = readonly;
	*out = m;
	return CJ_OK;
}

void cj__os_wakemap_close(cj_wakemap *m) {
	if (!m) return;
	munmap((void *)m->words, m->size);
	cj_free(m);
}

static long futex(_Atomic uint32_t *w, int op, uint32_t val, const struct timespec *ts) {
	return syscall(SYS_futex, (uint32_t *)w, op, val, ts, NULL, 0);
}

uint32_t cj__os_word_load(cj_wakemap *m, unsigned idx) {
	return atomic_load(&m->words[idx % m->n]);
}

void cj__os_word_bump(cj_wakemap *m, unsigned idx) {
	_Atomic uint32_t *w = &m->words[idx % m->n];
	if (!m->readonly) atomic_fetch_add(w, 1);
	futex(w, FUTEX_WAKE, INT_MAX, NULL);
}

void cj__os_word_bump_n(cj_wakemap *m, unsigned idx, unsigned n) {
	_Atomic uint32_t *w = &m->words[idx % m->n];
	if (!m->readonly) atomic_fetch_add(w, 1);
	futex(w, FUTEX_WAKE, n > INT_MAX ? INT_MAX : n, NULL);
}

void cj__os_word_rouse(cj_wakemap *m, unsigned idx) {
	_Atomic uint32_t *w = &m->words[idx % CJ_OS_ROUSE_WORDS];
	if (!m->readonly) {
		uint32_t stamp = (uint32_t)(idx % CJ_OS_ROUSE_WORDS) << 22 |
		                 (atomic_load(w) & 0x3fffffu);
		/* woken at this value already (or about to be, by its rouser) */
		if (atomic_exchange(&m->words[CJ_OS_ROUSE_STAMP], stamp) == stamp) return;
	}
	futex(w, FUTEX_WAKE, INT_MAX, NULL);
}

void cj__os_word_add(cj_wakemap *m, unsigned idx) {
	if (!m->readonly) atomic_fetch_add(&m->words[idx % m->n], 1);
}

/* Shared between processes, so never through a lock of this process. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit shared words need lock-free atomics");

/* 64-bit word idx: words 2 idx and 2 idx + 1 (8-byte aligned: the map is
 * page-aligned, and has an even number of words). */
static _Atomic uint64_t *word64(cj_wakemap *m, unsigned idx) {
	return (_Atomic uint64_t *)(void *)&m->words[(2 * (size_t)idx) % m->n];
}

/* Its half that changes with every change of less than 2^32: the futex. */
static _Atomic uint32_t *word64_low(cj_wakemap *m, unsigned idx) {
	uint64_t one = 1;
	unsigned char first;
	memcpy(&first, &one, 1);
	return &m->words[(2 * (size_t)idx + (first ? 0 : 1)) % m->n];
}

uint64_t cj__os_word64_load(cj_wakemap *m, unsigned idx) { return atomic_load(word64(m, idx)); }

int cj__os_word64_raise(cj_wakemap *m, unsigned idx, uint64_t v) {
	_Atomic uint64_t *w = word64(m, idx);
	uint64_t old = atomic_load(w);
	while (!m->readonly && v > old)
		if (atomic_compare_exchange_weak(w, &old, v)) return 1;
	return 0;
}

int cj__os_word64_swap(cj_wakemap *m, unsigned idx, uint64_t expect, uint64_t v) {
	return !m->readonly && atomic_compare_exchange_strong(word64(m, idx), &expect, v);
}

void cj__os_word64_set(cj_wakemap *m, unsigned idx, uint64_t v) {
	if (!m->readonly) atomic_store(word64(m, idx), v);
}

void cj__os_word64_wake(cj_wakemap *m, unsigned idx) {
	futex(word64_low(m, idx), FUTEX_WAKE, INT_MAX, NULL);
}

void cj__os_word_wake(cj_wakemap *m, unsigned idx) {
	futex(&m->words[idx % m->n], FUTEX_WAKE, INT_MAX, NULL);
}

/* The monotonic time a wait of m with deadline_ms sleeps until: within the
 * longest sleep, and a read-only map's relook; -1: none. */
static int64_t wait_until(const cj_wakemap *m, int64_t deadline_ms) {
	int64_t until = cj__sleep_until(deadline_ms);
	if (m->readonly) {
		int64_t soon = cj__add_sat(cj__mono_ms(), CJ_RO_RELOOK_MS);
		if (until < 0 || until > soon) until = soon;
	}
	return until;
}

/* Sleeps while *w == seen: cj__os_word_wait. */
static int wait_word(cj_wakemap *m, _Atomic uint32_t *w, uint32_t seen, int64_t deadline_ms) {
	struct timespec ts, *tsp = NULL;
	int64_t until = wait_until(m, deadline_ms);
	if (until >= 0) {
		int64_t left = until - cj__mono_ms();
		if (left <= 0) return until == deadline_ms ? CJ_TIMEOUT : CJ_OK;
		ts.tv_sec = left / 1000;
		ts.tv_nsec = (left % 1000) * 1000000;
		tsp = &ts;
	}
	if (futex(w, FUTEX_WAIT, seen, tsp) == 0) return CJ_OK;
	/* a deadline past the longest sleep: a spurious wake, to look again */
	if (errno == ETIMEDOUT) return until == deadline_ms ? CJ_TIMEOUT : CJ_OK;
	return CJ_OK; /* EAGAIN: it changed; EINTR: look again */
}

int cj__os_word_wait(cj_wakemap *m, unsigned idx, uint32_t seen, int64_t deadline_ms) {
	return wait_word(m, &m->words[idx % m->n], seen, deadline_ms);
}

int cj__os_word64_wait(cj_wakemap *m, unsigned idx, uint64_t seen, int64_t deadline_ms) {
	return wait_word(m, word64_low(m, idx), (uint32_t)seen, deadline_ms);
}

#ifdef SYS_futex_waitv
/* struct futex_waitv's flag for a 32-bit word (shared: no private flag) */
#define OS_FUTEX2_SIZE_U32 0x02

/* 1 once futex_waitv was found missing (ENOSYS: a kernel before 5.16);
 * -1 until first asked. In fault-injection builds CJ_TEST_NO_FUTEX_WAITV=1
 * says it is missing from the start, so that the tests run the fallback. */
static _Atomic int waitv_missing = -1;

static int no_waitv(void) {
	int v = atomic_load(&waitv_missing);
	if (v >= 0) return v;
	int forced = 0;
#ifdef CJ_FAULT_INJECTION
	const char *e = getenv("CJ_TEST_NO_FUTEX_WAITV");
	forced = e && *e && strcmp(e, "0") != 0;
#endif
	atomic_compare_exchange_strong(&waitv_missing, &v, forced);
	return atomic_load(&waitv_missing);
}
#endif

int cj__os_word_wait_any(cj_wakemap *m, const unsigned *idx, const uint32_t *seen, size_t n,
                         int64_t deadline_ms) {
	for (size_t i = 1; i < n; i++)
		if (atomic_load(&m->words[idx[i] % m->n]) != seen[i]) return CJ_OK;
	if (n == 1) return cj__os_word_wait(m, idx[0], seen[0], deadline_ms);
#ifdef SYS_futex_waitv
	if (!no_waitv()) {
		struct futex_waitv v[CJ_OS_WAIT_ANY_MAX];
		memset(v, 0, sizeof v);
		for (size_t i = 0; i < n && i < CJ_OS_WAIT_ANY_MAX; i++) {
			v[i].val = seen[i];
			v[i].uaddr = (uint64_t)(uintptr_t)&m->words[idx[i] % m->n];
			v[i].flags = OS_FUTEX2_SIZE_U32;
		}
		int64_t until = wait_until(m, deadline_ms);
		struct timespec ts, *tsp = NULL;
		if (until >= 0) {
			/* futex_waitv takes an absolute time on the clock it is given */
			ts.tv_sec = until / 1000;
			ts.tv_nsec = (until % 1000) * 1000000;
			tsp = &ts;
		}
		size_t k = n < CJ_OS_WAIT_ANY_MAX ? n : CJ_OS_WAIT_ANY_MAX;
		if (syscall(SYS_futex_waitv, v, (unsigned)k, 0u, tsp, CLOCK_MONOTONIC) >= 0)
			return CJ_OK;
		if (errno == ETIMEDOUT) return until == deadline_ms ? CJ_TIMEOUT : CJ_OK;
		if (errno != ENOSYS) return CJ_OK; /* EAGAIN: one changed; EINTR */
		atomic_store(&waitv_missing, 1);
	}
#endif
	/* no vectored wait: sleep on the first, look at the others now and then */
	int64_t soon = cj__add_sat(cj__mono_ms(), CJ_OS_WAIT_ANY_RELOOK_MS);
	int rc = cj__os_word_wait(m, idx[0], seen[0],
	                          deadline_ms < 0 || deadline_ms > soon ? soon : deadline_ms);
	return rc == CJ_TIMEOUT && deadline_ms >= 0 && cj__mono_ms() >= deadline_ms ? CJ_TIMEOUT
	                                                                           : CJ_OK;
}

/* ---- events ----------------------------------------------------------------- */

int cj__os_event_new(int *fd) {
	*fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (*fd < 0) return cj__fail(CJ_NOMEM, "cannot make an eventfd: %s", cj__os_strerror(errno));
	return CJ_OK;
}

void cj__os_event_set(int fd) {
	/* the counter is readable while not zero; clear reads it back to zero */
	uint64_t v = 1;
	(void)!write(fd, &v, sizeof v);
}

void cj__os_event_clear(int fd) {
	uint64_t v;
	(void)!read(fd, &v, sizeof v); /* EAGAIN when already clear */
}

void cj__os_event_close(int fd) {
	if (fd >= 0) close(fd);
}

int cj__os_file_mapping(int fd, const void *p, uintptr_t *base, uintptr_t *end) {
	struct stat st;
	if (fstat(fd, &st) != 0) return -1;
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f) return -1;
	uintptr_t a = (uintptr_t)p;
	char line[512];
	int found = -1;
	while (found < 0 && fgets(line, sizeof line, f)) {
		unsigned long lo, hi, off, ino;
		unsigned maj, min;
		if (sscanf(line, "%lx-%lx %*s %lx %x:%x %lu", &lo, &hi, &off, &maj, &min, &ino) != 6)
			continue;
		if (a < lo || a >= hi) continue;
		if (makedev(maj, min) == st.st_dev && ino == st.st_ino && off <= lo) {
			*base = lo - off;
			*end = hi;
			found = 0;
		}
		break;
	}
	fclose(f);
	return found;
}

/* ---- files beneath a directory ------------------------------------------- */

/* Opens rel beneath dirfd refusing every symbolic link (kernels without
 * openat2): each directory, then the file, with O_NOFOLLOW. */
static int open_nofollow(int dirfd, const char *rel) {
	char part[256];
	int fd = dup(dirfd);
	while (fd >= 0) {
		const char *slash = strchr(rel, '/');
		size_t n = slash ? (size_t)(slash - rel) : strlen(rel);
		if (n == 0 || n >= sizeof part) {
			close(fd);
			errno = ENOENT;
			return -1;
		}
		memcpy(part, rel, n);
		part[n] = 0;
		int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | (slash ? O_DIRECTORY : 0);
		int next = openat(fd, part, flags);
		close(fd);
		fd = next;
		if (!slash) break;
		rel = slash + 1;
	}
	return fd;
}

int cj__os_read_beneath(const char *dir, const char *rel, size_t max, unsigned char **buf,
                        size_t *len) {
	*buf = NULL;
	*len = 0;
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) return cj__fail(CJ_NOT_FOUND, "%s: %s", dir, cj__os_strerror(errno));
	int fd = -1;
#ifdef SYS_openat2
	struct open_how how;
	memset(&how, 0, sizeof how);
	how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
	if (fd < 0 && errno == ENOSYS) fd = open_nofollow(dirfd, rel);
#else
	fd = open_nofollow(dirfd, rel);
#endif
	int e = errno;
	close(dirfd);
	if (fd < 0) return cj__fail(CJ_NOT_FOUND, "%s/%s: %s", dir, rel, cj__os_strerror(e));
	int rc = CJ_OK;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = cj__fail(CJ_NOT_FOUND, "%s/%s: not a regular file", dir, rel);
		goto out_close;
	}
	if ((uint64_t)st.st_size > max) {
		rc = cj__fail(CJ_TOO_LARGE, "%s/%s: over %zu bytes", dir, rel, max);
		goto out_close;
	}
	size_t n = (size_t)st.st_size, got = 0;
	unsigned char *b = cj__malloc(n ? n : 1);
	if (!b) {
		rc = cj__fail(CJ_NOMEM, "out of memory");
		goto out_close;
	}
	while (got < n) {
		ssize_t k = read(fd, b + got, n - got);
		if (k < 0 && errno == EINTR) continue;
		if (k <= 0) break;
		got += (size_t)k;
	}
	if (got != n) {
		cj_free(b);
		rc = cj__fail(CJ_STORE, "%s/%s: short read", dir, rel);
		goto out_close;
	}
	*buf = b;
	*len = n;
out_close:
	close(fd);
	return rc;
}

/* ---- shared memory of the store's processes -------------------------------- */

int cj__os_map_shared(int fd, const char *path, size_t len, void **out) {
	*out = NULL;
	struct stat st;
	if (fstat(fd, &st) != 0) return cj__fail(CJ_STORE, "%s: %s", path, cj__os_strerror(errno));
	if ((size_t)st.st_size < len)
		return cj__fail(CJ_STORE, "%s: %lld bytes, %zu expected", path,
		                (long long)st.st_size, len);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) return cj__fail(CJ_STORE, "%s: %s", path, cj__os_strerror(errno));
	int rc = cj__os_owner_claim(fd, path, p, len);
	if (rc) {
		munmap(p, len);
		return rc;
	}
	*out = p;
	return CJ_OK;
}

void cj__os_unmap_shared(void *p, size_t len) {
	if (!p) return;
	cj__os_owner_release(p);
	munmap(p, len);
}

void cj__os_futex_wait(_Atomic uint32_t *w, uint32_t seen, int64_t timeout_ms) {
	struct timespec ts = {(time_t)(timeout_ms / 1000), (long)(timeout_ms % 1000) * 1000000L};
	futex(w, FUTEX_WAIT, seen, timeout_ms >= 0 ? &ts : NULL);
}

void cj__os_futex_wake(_Atomic uint32_t *w) { futex(w, FUTEX_WAKE, INT_MAX, NULL); }
