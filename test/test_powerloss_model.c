/*
 * The power-loss test's own tools (test/powerloss.h), checked apart from
 * any store: that the recorder records every write whole and in order,
 * from a signal handler and across fork() while another thread records, and
 * for any number of buffers a writev() takes; and that the images of a
 * trace tear a write in flight at the crash point, never apply one not yet
 * begun, and always apply one a flush covers. test_powerloss.c relies on
 * both; a recorder that deadlocks or records wrongly, or images that leave
 * out a disk state, would make it prove less than it says.
 */
#include "powerloss.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MS 120000 /* generous under load: a deadlock never ends */

static void paths(char *dir, char *trace, size_t cap) {
	snprintf(dir, cap, "%s/rec", t_dir());
	snprintf(trace, cap, "%s/trace", t_dir());
}

/* Records into t_dir()/trace what is written to t_dir()/rec (made). */
static void record_on(void) {
	char dir[4096], trace[4096];
	paths(dir, trace, sizeof dir);
	CHECK(mkdir(dir, 0700) == 0 || errno == EEXIST);
	setenv(PL_ENV_DIR, dir, 1);
	setenv(PL_ENV_TRACE, trace, 1);
	pl_rec_reload();
}

static int open_in(const char *name) {
	char p[4200];
	snprintf(p, sizeof p, "%s/rec/%s", t_dir(), name);
	int fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	return fd;
}

static void read_trace(struct pl_trace *t) {
	char dir[4096], trace[4096], err[256];
	paths(dir, trace, sizeof dir);
	if (pl_trace_read(trace, t, err, sizeof err) != 0) t_fail(__FILE__, __LINE__, "%s", err);
}

/* The writes of file name in t: each paired with its start; how many at
 * offset off (any: off < 0), and of how many processes. */
static size_t writes_of(const struct pl_trace *t, const char *name, int64_t off, size_t *pids) {
	size_t n = 0, np = 0;
	int seen[256];
	for (size_t i = 0; i < t->n; i++) {
		const struct pl_rec *r = &t->r[i];
		if (r->kind == PL_WRITE_START && strcmp(r->file, name) == 0)
			CHECK(r->end > i && t->r[r->end].kind == PL_WRITE); /* every one returned */
		if (r->kind != PL_WRITE || strcmp(r->file, name) != 0) continue;
		if (off >= 0 && r->off != (uint64_t)off) continue;
		n++;
		int known = 0;
		for (size_t j = 0; j < np; j++) known |= seen[j] == r->pid;
		if (!known && np < 256) seen[np++] = r->pid;
	}
	if (pids) *pids = np;
	return n;
}

/* ---- a signal handler that writes ------------------------------------------------ */

static int sig_fd = -1;
static volatile sig_atomic_t sig_writes;

static void on_alarm(int sig) {
	(void)sig;
	int e = errno;
	if (pwrite(sig_fd, "handler!", 8, 4096) == 8) sig_writes++;
	errno = e;
}

#define MAIN_WRITES 3000

/* Writes MAIN_WRITES times while a timer's handler writes too: a recorder
 * that locks in write() deadlocks when the signal comes inside it. */
static int signal_writer(void *p) {
	(void)p;
	record_on();
	sig_fd = open_in("f");
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
	struct itimerval it = {{0, 100}, {0, 100}};
	CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
	int n = 0;
	for (int i = 0; i < MAIN_WRITES; i++) n += pwrite(sig_fd, "main", 4, 0) == 4;
	struct itimerval off = {{0, 0}, {0, 0}};
	CHECK(setitimer(ITIMER_REAL, &off, NULL) == 0);
	CHECK(n == MAIN_WRITES);
	pl_mark("n %d", (int)sig_writes);
	close(sig_fd);
	return 0;
}

TEST(signal_handler) {
	check_exit(t_spawn(signal_writer, NULL), WAIT_MS, 0);
	struct pl_trace t;
	read_trace(&t);
	int handled = -1;
	for (size_t i = 0; i < t.n; i++)
		if (t.r[i].kind == PL_MARK && t.r[i].file[0] == 'n') handled = atoi(t.r[i].file + 2);
	CHECK(handled >= 0);
	note("  %d writes of the handler among %d of the program\n", handled, MAIN_WRITES);
	CHECK(writes_of(&t, "f", 0, NULL) == MAIN_WRITES);
	CHECK(writes_of(&t, "f", 4096, NULL) == (size_t)handled);
	pl_trace_free(&t);
}

/* ---- fork() while another thread records ----------------------------------------- */

#define FORKS 40

static atomic_int stop;

static void *busy_writer(void *p) {
	int fd = *(int *)p;
	while (!atomic_load(&stop)) CHECK(pwrite(fd, "thread", 6, 0) == 6);
	return NULL;
}

static int forker(void *p) {
	(void)p;
	record_on();
	int fd = open_in("busy"), g = open_in("g");
	pthread_t th;
	CHECK(pthread_create(&th, NULL, busy_writer, &fd) == 0);
	int pid[FORKS];
	for (int i = 0; i < FORKS; i++) {
		/* a plain fork: the child records (or hangs) while the thread, in
		 * the parent, goes on */
		pid[i] = fork();
		CHECK(pid[i] >= 0);
		if (pid[i] == 0) _exit(pwrite(g, "child", 5, 0) == 5 ? 0 : 1);
	}
	int bad = 0;
	for (int i = 0; i < FORKS; i++) bad |= t_join(pid[i], WAIT_MS) != 0;
	atomic_store(&stop, 1);
	CHECK(pthread_join(th, NULL) == 0);
	close(fd);
	close(g);
	return bad;
}

TEST(fork_while_recording) {
	check_exit(t_spawn(forker, NULL), WAIT_MS, 0);
	struct pl_trace t;
	read_trace(&t);
	size_t pids = 0;
	CHECK(writes_of(&t, "g", 0, &pids) == FORKS);
	CHECK(pids == FORKS);
	CHECK(writes_of(&t, "busy", 0, NULL) > 0);
	pl_trace_free(&t);
}

/* ---- writev() of any number of buffers --------------------------------------------- */

TEST(writev_buffers) {
	record_on();
	int fd = open_in("v");
	/* on the stack, in memory mapped for it, and as many as writev takes */
	const int counts[3] = {10, 100, IOV_MAX};
	static uint8_t bytes[IOV_MAX * 3];
	static struct iovec iov[IOV_MAX];
	for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (uint8_t)(i * 7 + 1);
	for (int c = 0; c < 3; c++) {
		for (int i = 0; i < counts[c]; i++) {
			iov[i].iov_base = bytes + 3 * i;
			iov[i].iov_len = 3;
		}
		CHECK(lseek(fd, 0, SEEK_SET) == 0);
		CHECK(writev(fd, iov, counts[c]) == 3 * counts[c]);
	}
	close(fd);
	unsetenv(PL_ENV_DIR);
	pl_rec_reload();
	struct pl_trace t;
	read_trace(&t);
	int c = 0;
	for (size_t i = 0; i < t.n; i++) {
		const struct pl_rec *r = &t.r[i];
		if (r->kind != PL_WRITE) continue;
		CHECK(c < 3 && r->off == 0 && r->len == (uint64_t)(3 * counts[c]));
		CHECK(memcmp(r->bytes, bytes, (size_t)r->len) == 0);
		c++;
	}
	CHECK(c == 3);
	pl_trace_free(&t);
}

/* ---- images: writes in flight, not begun, covered ------------------------------------ */

#define PAGE 4096

/* A trace of data.mdb, by hand: process 1 writes page 1 (flushed), then
 * starts a write of page 2 that returns only after process 2 has started
 * a flush; then starts and ends a write of page 3. */
static void model_trace(const char *path, uint8_t fill[3][PAGE]) {
	FILE *f = fopen(path, "wx");
	CHECK(f != NULL);
	fprintf(f, "B 1 data.mdb %d %d 1\n", PAGE, PAGE);        /* 0 */
	fprintf(f, "W 1 data.mdb %d %d 1\n", PAGE, PAGE);        /* 1 */
	CHECK(fwrite(fill[0], 1, PAGE, f) == PAGE);
	fprintf(f, "S 1 data.mdb 2\nE 1 data.mdb 2\n");          /* 2, 3 */
	fprintf(f, "B 1 data.mdb %d %d 3\n", 2 * PAGE, PAGE);    /* 4 */
	fprintf(f, "S 2 data.mdb 1\nE 2 data.mdb 1\n");          /* 5, 6 */
	fprintf(f, "W 1 data.mdb %d %d 3\n", 2 * PAGE, PAGE);    /* 7 */
	CHECK(fwrite(fill[1], 1, PAGE, f) == PAGE);
	fprintf(f, "B 1 data.mdb %d %d 4\n", 3 * PAGE, PAGE);    /* 8 */
	fprintf(f, "W 1 data.mdb %d %d 4\n", 3 * PAGE, PAGE);    /* 9 */
	CHECK(fwrite(fill[2], 1, PAGE, f) == PAGE);
	CHECK(fclose(f) == 0);
}

/* What an image holds of page p: 0 none of the write, 1 all, 2 part. */
static int page_has(const struct pl_dir *d, int p, const uint8_t *fill) {
	CHECK(d->n >= 1 && strcmp(d->name[0], "data.mdb") == 0);
	size_t have = 0;
	for (size_t i = 0; i < PAGE; i++) {
		size_t at = (size_t)p * PAGE + i;
		uint8_t b = at < d->len[0] ? d->data[0][at] : 0;
		have += b == fill[i];
		CHECK(b == fill[i] || b == 0);
	}
	return have == 0 ? 0 : have == PAGE ? 1 : 2;
}

TEST(images_in_flight) {
	char trace[4200], base[4200], err[256];
	uint8_t fill[3][PAGE];
	for (int p = 0; p < 3; p++) memset(fill[p], 0xa0 + p, PAGE);
	snprintf(trace, sizeof trace, "%s/trace", t_dir());
	snprintf(base, sizeof base, "%s/base", t_dir());
	model_trace(trace, fill);
	CHECK(mkdir(base, 0700) == 0);
	char p[4300];
	snprintf(p, sizeof p, "%s/data.mdb", base);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	CHECK(fd >= 0 && ftruncate(fd, PAGE) == 0);
	close(fd);
	struct pl_trace t;
	struct pl_dir bd;
	if (pl_trace_read(trace, &t, err, sizeof err) != 0) t_fail(__FILE__, __LINE__, "%s", err);
	CHECK(t.n == 10 && t.r[4].end == 7 && t.r[0].end == 1);
	CHECK(pl_dir_load(base, &bd) == 0);
	pl_rng g = {12345};
	/* at 7 (after the other process's flush, before the write returned)
	 * page 2 is in flight: over 200 images it is absent, whole and torn
	 * each at least once; page 1 is always there (flushed); page 3 never
	 * (not begun) */
	int seen[3] = {0};
	for (int i = 0; i < 200; i++) {
		char img[4300];
		snprintf(img, sizeof img, "%s/img-%d", t_dir(), i);
		CHECK(mkdir(img, 0700) == 0);
		CHECK(pl_image(&t, 7, &bd, &bd, img, &g) == 0);
		struct pl_dir id;
		CHECK(pl_dir_load(img, &id) == 0);
		CHECK(page_has(&id, 1, fill[0]) == 1);
		seen[page_has(&id, 2, fill[1])]++;
		CHECK(page_has(&id, 3, fill[2]) == 0);
		pl_dir_free(&id);
	}
	note("  page in flight: %d images without it, %d with it whole, %d torn\n", seen[0],
	     seen[1], seen[2]);
	CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
	pl_dir_free(&bd);
	pl_trace_free(&t);
}

TEST_MAIN(ENTRY(signal_handler), ENTRY(fork_while_recording), ENTRY(writev_buffers),
          ENTRY(images_in_flight))
