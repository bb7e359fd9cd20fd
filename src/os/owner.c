/*
 * Owners: which processes take part in a file of shared memory, told apart
 * without their process ids (os.h, "shared memory of the store's
 * processes").
 *
 * A process id says little about another process: a dead process's id may
 * be taken by an unrelated one (which then looks alive for as long as it
 * runs), and a process in another PID namespace (a container sharing the
 * store's directory through a volume) has an id that means nothing, or
 * something else, here. So a process that maps such a file claims an id
 * of its own in it: a random number R (between 2^30 and 2^31) whose byte
 * of the file, at offset R, it holds a write lock on. The lock is an open
 * file description lock (F_OFD_SETLK): it belongs to the mapping's own
 * descriptor, not to the process, so no other opening and closing of the
 * file in the process drops it; the kernel releases it when the process
 * dies, however it dies; and every process that can open the file sees it
 * (F_OFD_GETLK), in whatever PID namespace. "Is R alive" is "is byte R
 * locked". A claim that finds the byte locked draws again: two live
 * processes never hold one id. A dead process's id comes back only when a
 * later process draws the same one of 2^30 numbers.
 *
 * After fork() the child closes its copy of every owner's descriptor
 * (pthread_atfork), so that a child that lives on without the store (it
 * must not use its parent's handle) does not keep its parent's id alive
 * once the parent died.
 *
 * Fallback: a system without open file description locks (Linux before
 * 3.15, or a build without F_OFD_SETLK) claims no id, and mapping the
 * file fails: its processes then do not combine calls with other
 * processes (each commits its own, combining the calls of its own
 * threads), which is slower but never wrong. Neither process ids nor
 * process-wide POSIX record locks would do (any close of the file by the
 * same process drops those). A word holding anything but a claimed id
 * (a process id written by the first layout of the combine file, say)
 * names no live process.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "cj_int.h"
#include "os/os.h"

#define OWNER_ID 0x40000000u /* ids are from here to 2^31 */
#define OWNER_DRAWS 64       /* draws of an id before giving up */

struct cj_os_owner {
	struct cj_os_owner *next;
	const void *map; /* the mapping the id is claimed for */
	size_t len;      /* its length */
	int fd;          /* its own open file description; -1 after fork */
	uint32_t id;
};

static pthread_mutex_t owners_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t owners_once = PTHREAD_ONCE_INIT;
static struct cj_os_owner *owners;

static void owners_prepare(void) { pthread_mutex_lock(&owners_mu); }
static void owners_parent(void) { pthread_mutex_unlock(&owners_mu); }

/* The child's copies of the descriptors would keep the parent's locks
 * (they share its open file descriptions) for as long as it lives. */
static void owners_child(void) {
	for (struct cj_os_owner *o = owners; o; o = o->next)
		if (o->fd >= 0) {
			close(o->fd);
			o->fd = -1;
		}
	pthread_mutex_unlock(&owners_mu);
}

static void owners_init(void) { pthread_atfork(owners_prepare, owners_parent, owners_child); }

/* fcntl's record lock call cmd (a setlk or getlk) on byte id of fd: 0 or
 * an errno value. An OFD call the kernel does not know gives EINVAL. */
static int owner_fcntl(int fd, int cmd, short type, uint32_t id, short *held) {
	struct flock fl;
	memset(&fl, 0, sizeof fl); /* l_pid 0, as OFD locks require */
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = (off_t)id;
	fl.l_len = 1;
	if (fcntl(fd, cmd, &fl) != 0) return errno;
	if (held) *held = fl.l_type;
	return 0;
}

/* Claims an id for fd: CJ_OK, or CJ_STORE (no OFD locks here: the
 * fallback) or what cj__random() gives. */
static int owner_claim(int fd, const char *path, uint32_t *id) {
#ifdef F_OFD_SETLK
	for (int i = 0; i < OWNER_DRAWS; i++) {
		uint32_t r;
		int rc = cj__random(&r, sizeof r);
		if (rc) return rc;
		r = OWNER_ID | (r & (OWNER_ID - 1));
		int e = owner_fcntl(fd, F_OFD_SETLK, F_WRLCK, r, NULL);
		if (e == 0) {
			*id = r;
			return CJ_OK;
		}
		if (e != EAGAIN && e != EACCES && e != EINTR)
			return cj__fail(CJ_STORE, "%s: cannot lock: %s", path, cj__os_strerror(e));
	}
	return cj__fail(CJ_STORE, "%s: no free owner id", path);
#else
	(void)fd;
	(void)id;
	return cj__fail(CJ_STORE, "%s: no open file description locks here", path);
#endif
}

int cj__os_owner_claim(int fd, const char *path, const void *map, size_t len) {
	pthread_once(&owners_once, owners_init);
	struct cj_os_owner *o = cj__calloc(1, sizeof *o);
	if (!o) return cj__fail(CJ_NOMEM, "out of memory");
	o->map = map;
	o->len = len;
	o->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (o->fd < 0) {
		int e = errno;
		cj_free(o);
		return cj__fail(CJ_STORE, "%s: %s", path, cj__os_strerror(e));
	}
	int rc = owner_claim(o->fd, path, &o->id);
	if (rc) {
		close(o->fd);
		cj_free(o);
		return rc;
	}
	pthread_mutex_lock(&owners_mu);
	o->next = owners;
	owners = o;
	pthread_mutex_unlock(&owners_mu);
	return CJ_OK;
}

void cj__os_owner_release(const void *map) {
	pthread_mutex_lock(&owners_mu);
	struct cj_os_owner **p = &owners;
	while (*p && (*p)->map != map) p = &(*p)->next;
	struct cj_os_owner *o = *p;
	if (o) *p = o->next;
	pthread_mutex_unlock(&owners_mu);
	if (!o) return;
	if (o->fd >= 0) close(o->fd); /* drops the lock */
	cj_free(o);
}

/* The claim of the mapping that holds p (never released while in use), or
 * NULL. Its id does not change; its fd only in a child after fork. */
const cj_os_owner *cj__os_owner_of(const void *p) {
	const char *c = p;
	pthread_mutex_lock(&owners_mu);
	struct cj_os_owner *o = owners;
	while (o && !(c >= (const char *)o->map && c < (const char *)o->map + o->len)) o = o->next;
	pthread_mutex_unlock(&owners_mu);
	return o;
}

uint32_t cj__os_owner(const cj_os_owner *o) { return o ? o->id : 0; }

int cj__os_owner_alive(const cj_os_owner *o, uint32_t id) {
	if (id < OWNER_ID || id > INT32_MAX) return 0; /* never claimed */
	if (!o || o->fd < 0) return 1; /* cannot tell: alive, the safe side */
	if (id == o->id) return 1;
	short held = F_UNLCK;
#ifdef F_OFD_GETLK
	int e = owner_fcntl(o->fd, F_OFD_GETLK, F_WRLCK, id, &held);
#else
	int e = EINVAL;
#endif
	return e != 0 || held != F_UNLCK;
}
