/* Wake words on Linux: futexes on a MAP_SHARED file mapping, which the
 * kernel keys by (inode, offset), so they work across processes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cj_int.h"
#include "os/os.h"

struct cj_wakemap {
	_Atomic uint32_t *words;
	size_t size;
};

int cj__os_wakemap_open(const char *path, mode_t mode, cj_wakemap **out) {
	*out = NULL;
	size_t size = CJ_WAKE_WORDS * sizeof(uint32_t);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, mode);
	if (fd < 0) return cj__fail(CJ_STORE, "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) goto out_errno;
	if ((size_t)st.st_size < size && ftruncate(fd, (off_t)size) != 0) goto out_errno;
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) goto out_errno;
	close(fd);
	cj_wakemap *m = cj__malloc(sizeof *m);
	if (!m) {
		munmap(p, size);
		return cj__fail(CJ_NOMEM, "out of memory");
	}
	m->words = p;
	m->size = size;
	*out = m;
	return CJ_OK;
out_errno:;
	int e = errno;
	close(fd);
	return cj__fail(CJ_STORE, "%s: %s", path, strerror(e));
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
	return atomic_load(&m->words[idx % CJ_WAKE_WORDS]);
}

void cj__os_word_bump(cj_wakemap *m, unsigned idx) {
	_Atomic uint32_t *w = &m->words[idx % CJ_WAKE_WORDS];
	atomic_fetch_add(w, 1);
	futex(w, FUTEX_WAKE, INT_MAX, NULL);
}

void cj__os_word_wake(cj_wakemap *m, unsigned idx) {
	futex(&m->words[idx % CJ_WAKE_WORDS], FUTEX_WAKE, INT_MAX, NULL);
}

int cj__os_word_wait(cj_wakemap *m, unsigned idx, uint32_t seen, int64_t deadline_ms) {
	_Atomic uint32_t *w = &m->words[idx % CJ_WAKE_WORDS];
	struct timespec ts, *tsp = NULL;
	int64_t until = cj__sleep_until(deadline_ms);
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
