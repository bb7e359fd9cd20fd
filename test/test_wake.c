/*
 * Waking acceptors: a job made pending wakes one waiting acceptor, not
 * every one, across processes; an acceptor woken for a job it does not
 * take hands the wake-up on, so that no job waits while an acceptor that
 * could take it sleeps.
 *
 * The acceptors are processes, each with its own handle; cj_stats'
 * acceptor_wakes counts their wake-ups. Before each job is added the test
 * waits (bounded) until every acceptor sleeps, so that a wake-up to all of
 * them would be seen. The hand-on cases rely on sleepers of one word being
 * woken oldest first (Linux futexes, for processes of one priority): the
 * acceptor that cannot take the job is put to sleep first, so it is the
 * one woken.
 *
 * Public API only; the store comes from t_url().
 */
#include "testutil.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NACC 8   /* acceptor processes */
#define NJOBS 12 /* jobs added one at a time */
#define TAKEN_MS 20000 /* a job must be taken within this (a loaded machine) */

/* 1 once process pid sleeps in a futex wait (its main thread), within 5 s;
 * where wchan is hidden, a sleeping state has to do. */
static int asleep(int pid) {
	char p[64], buf[1024], wchan[128];
	int64_t give_up = t_now_ms() + 5000;
	while (t_now_ms() < give_up) {
		char state = '?';
		snprintf(p, sizeof p, "/proc/%d/stat", pid);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof buf - 1);
			close(fd);
			buf[n > 0 ? n : 0] = 0;
			char *rp = strrchr(buf, ')');
			if (rp && rp[1] == ' ') state = rp[2];
		}
		wchan[0] = 0;
		snprintf(p, sizeof p, "/proc/%d/wchan", pid);
		if ((fd = open(p, O_RDONLY | O_CLOEXEC)) >= 0) {
			ssize_t n = read(fd, wchan, sizeof wchan - 1);
			close(fd);
			wchan[n > 0 ? n : 0] = 0;
		}
		int known = wchan[0] && strcmp(wchan, "0") != 0;
		if (state == 'S' && (!known || strstr(wchan, "futex"))) return 1;
		sleep_ms(2);
	}
	return 0;
}

/* What an acceptor process does. */
struct acc {
	const char *type;
	int no_schedule;  /* accept only jobs added without a scheduled time */
	int64_t max_sched;
	chan *out;        /* per job taken: its number; at the end: -1 - wakes */
	const char *first; /* not NULL: accepts jobs of this type first, then of
	                      type (cj_accept_types) */
	int once;          /* ends after its first job */
};

/* Takes jobs "j<k>" (reporting k) until it takes "stop". */
static int acceptor(void *arg) {
	struct acc *a = arg;
	cj_db *db = t_open_opts(&(cj_options){.no_monitor = 1});
	for (;;) {
		cj_accept_opts o = CJ_ACCEPT_OPTS_INIT;
		o.timeout_ms = 60000;
		o.no_schedule = a->no_schedule;
		o.max_sched_time = a->max_sched;
		cj_job *job;
		const char *types[2] = {a->first, a->type};
		if (a->first) CHECK_OK(cj_accept_types(db, types, 2, &o, &job, NULL));
		else CHECK_OK(cj_accept(db, a->type, &o, &job, NULL));
		const char *id = cj_job_id(job);
		int stop = strcmp(id, "stop") == 0;
		int64_t k = stop ? -1 : strtoll(id + 1, NULL, 10);
		CHECK_OK(cj_finish(db, NULL, job, NULL));
		cj_job_free(job);
		if (stop) break;
		chan_put(a->out, k);
		if (a->once) break;
	}
	cj_stats st;
	CHECK_OK(cj_db_stats(db, &st));
	chan_put(a->out, -1 - (int64_t)st.acceptor_wakes);
	cj_close(db);
	return 0;
}

static void add_at(cj_db *db, const char *type, const char *id, int64_t sched) {
	CHECK_OK(cj_add(db, NULL, type, id, NULL, sched));
}

/* NACC idle acceptor processes, jobs added one at a time: each is taken,
 * and about one acceptor wakes per job, not NACC. */
TEST(one_wakes_per_job) {
	SKIP_UNLESS_LMDB(); /* the PostgreSQL engine wakes every acceptor */
	setup_type("w", 60);
	chan out;
	chan_init(&out);
	struct acc a = {"w", 0, CJ_SCHED_NOW, &out};
	int pids[NACC];
	for (int i = 0; i < NACC; i++) pids[i] = t_spawn(acceptor, &a);
	cj_db *db = t_open_opts(&(cj_options){.no_monitor = 1});
	int unseen = 0;
	char id[32];
	for (int k = 0; k < NJOBS; k++) {
		for (int i = 0; i < NACC; i++) unseen += !asleep(pids[i]);
		snprintf(id, sizeof id, "j%d", k);
		int64_t t0 = t_now_ms();
		add_at(db, "w", id, 0);
		CHECK_INT(chan_get(&out, TAKEN_MS), k);
		if (t_now_ms() - t0 > 1000) note("  job %d taken after %lld ms\n", k,
		                                 (long long)(t_now_ms() - t0));
	}
	/* idle: they burn no CPU */
	for (int i = 0; i < NACC; i++) unseen += !asleep(pids[i]);
	int64_t cpu0 = 0, cpu1 = 0;
	for (int i = 0; i < NACC; i++) cpu0 += proc_cpu_ms(pids[i]);
	sleep_ms(500);
	for (int i = 0; i < NACC; i++) cpu1 += proc_cpu_ms(pids[i]);
	/* one "stop" at a time: each acceptor takes one, reports and ends */
	int64_t wakes = 0;
	for (int i = 0; i < NACC; i++) {
		add_at(db, "w", "stop", 0);
		int64_t v = chan_get(&out, TAKEN_MS);
		CHECK(v < 0);
		wakes += -1 - v;
	}
	for (int i = 0; i < NACC; i++) check_exit(pids[i], TAKEN_MS, 0);
	note("  %d jobs (and %d stops) woke acceptors %lld times; idle CPU %lld ms in "
	     "500 ms; %d times one was not seen asleep\n",
	     NJOBS, NACC, (long long)wakes, (long long)(cpu1 - cpu0), unseen);
	/* waking all would be NACC per job: 8 * 12 + the stops */
	CHECK(wakes <= 2 * (NJOBS + NACC));
	CHECK(cpu1 - cpu0 <= 100);
	chan_close(&out);
	cj_close(db);
}

/* Waits until the acceptor pid sleeps; fails the case otherwise. */
#define check_asleep(pid) CHECK(asleep(pid))

/* Ends an acceptor of type that waits for "stop" (added for sched) and
 * returns its wakes. */
static int64_t stop_acceptor(cj_db *db, const char *type, int64_t sched, chan *out,
                             int pid) {
	add_at(db, type, "stop", sched);
	int64_t v = chan_get(out, TAKEN_MS);
	CHECK(v < 0);
	check_exit(pid, TAKEN_MS, 0);
	return -1 - v;
}

/* The first acceptor to sleep takes only jobs added without a scheduled
 * time; a scheduled job wakes it (one wake-up per job), it cannot take
 * it, and hands the wake-up on to the one that can. */
TEST(passes_on_a_job_it_cannot_take) {
	setup_type("w", 60);
	chan out_a, out_b;
	chan_init(&out_a);
	chan_init(&out_b);
	struct acc a = {"w", 1, CJ_SCHED_NOW, &out_a};
	struct acc b = {"w", 0, CJ_SCHED_ANY, &out_b};
	int pa = t_spawn(acceptor, &a);
	check_asleep(pa);
	int pb = t_spawn(acceptor, &b);
	check_asleep(pb);
	cj_db *db = t_open_opts(&(cj_options){.no_monitor = 1});
	add_at(db, "w", "j7", t_epoch() + 3600);
	CHECK_INT(chan_get(&out_b, TAKEN_MS), 7);
	/* a cannot take a scheduled "stop"; b is gone when a's comes */
	int64_t wb = stop_acceptor(db, "w", t_epoch() + 3600, &out_b, pb);
	int64_t wa = stop_acceptor(db, "w", 0, &out_a, pa);
	note("  wakes: %lld of the one that could not take the job, %lld of the other\n",
	     (long long)wa, (long long)wb);
	if (t_is_lmdb()) CHECK(wa >= 1); /* it was the one woken */
	chan_close(&out_a);
	chan_close(&out_b);
	cj_close(db);
}

/* FNV-1a, as doc/format.md gives channels their wake word. */
static unsigned chan_word(const char *name) {
	uint32_t h = 2166136261u;
	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		h = (h ^ *c) * 16777619u;
	return 1 + h % 1023;
}

/* Two types whose pending channels share a wake word: the acceptor of the
 * other type sleeps first, is the one woken, and hands the wake-up on. */
TEST(passes_on_another_types_job) {
	char other[32], pchan[40];
	unsigned w = chan_word("p:w");
	int found = 0;
	for (int i = 0; i < 1000000 && !found; i++) {
		snprintf(other, sizeof other, "o%d", i);
		snprintf(pchan, sizeof pchan, "p:%s", other);
		found = chan_word(pchan) == w;
	}
	CHECK(found);
	CHECK(w != chan_word("activity") && w != chan_word("types"));
	setup_type("w", 60);
	setup_type(other, 60);
	chan out_a, out_b;
	chan_init(&out_a);
	chan_init(&out_b);
	struct acc a = {other, 0, CJ_SCHED_NOW, &out_a};
	struct acc b = {"w", 0, CJ_SCHED_NOW, &out_b};
	int pa = t_spawn(acceptor, &a);
	check_asleep(pa);
	int pb = t_spawn(acceptor, &b);
	check_asleep(pb);
	cj_db *db = t_open_opts(&(cj_options){.no_monitor = 1});
	add_at(db, "w", "j3", 0);
	CHECK_INT(chan_get(&out_b, TAKEN_MS), 3);
	int64_t wa = stop_acceptor(db, other, 0, &out_a, pa);
	int64_t wb = stop_acceptor(db, "w", 0, &out_b, pb);
	note("  type %s shares the word of w; wakes: %lld of its acceptor, %lld of w's\n",
	     other, (long long)wa, (long long)wb);
	if (t_is_lmdb()) CHECK(wa >= 1);
	chan_close(&out_a);
	chan_close(&out_b);
	cj_close(db);
}

/* An acceptor of two types sleeps first, one of the second type next;
 * one commit makes a job of each type pending. The first acceptor is woken
 * by the first type's word, and (until it has run) counts as woken by the
 * second's too: the kernel wakes one sleeper per job, and takes it for the
 * second. It takes the first type's job, and hands the other wake-up on to
 * the acceptor of the second type. */
TEST(passes_on_a_wake_up_taken_with_another) {
	SKIP_UNLESS_LMDB(); /* the PostgreSQL engine wakes every acceptor */
	setup_type("wx", 60);
	setup_type("wy", 60);
	chan out_a, out_b;
	chan_init(&out_a);
	chan_init(&out_b);
	struct acc a = {"wy", 0, CJ_SCHED_NOW, &out_a, "wx", 1}; /* else it may take both */
	struct acc b = {"wy", 0, CJ_SCHED_NOW, &out_b, NULL};
	int pa = t_spawn(acceptor, &a);
	check_asleep(pa);
	int pb = t_spawn(acceptor, &b);
	check_asleep(pb);
	cj_db *db = t_open_opts(&(cj_options){.no_monitor = 1});
	cj_tx *tx;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_add(db, tx, "wx", "j1", NULL, 0));
	CHECK_OK(cj_add(db, tx, "wy", "j2", NULL, 0));
	CHECK_OK(cj_tx_commit(tx));
	CHECK_INT(chan_get(&out_a, TAKEN_MS), 1);
	CHECK_INT(chan_get(&out_b, TAKEN_MS), 2);
	int64_t wa = chan_get(&out_a, TAKEN_MS);
	CHECK(wa < 0);
	wa = -1 - wa;
	check_exit(pa, TAKEN_MS, 0);
	int64_t wb = stop_acceptor(db, "wy", 0, &out_b, pb);
	note("  wakes: %lld of the acceptor of both types, %lld of the other\n",
	     (long long)wa, (long long)wb);
	chan_close(&out_a);
	chan_close(&out_b);
	cj_close(db);
}

/* A sleeper on a channel's word that takes a wake-up and never looks nor
 * hands it on: what an acceptor killed right after its wake-up leaves (or
 * one of a build that does not hand wake-ups on). It waits on the word as
 * the embedded engine does (doc/format.md, "The wake file") and exits 0
 * when woken. */
static int raw_sleeper(void *arg) {
	unsigned w = *(unsigned *)arg;
	char path[4200];
	snprintf(path, sizeof path, "%s/store/wake", t_dir());
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	CHECK(fd >= 0);
	uint32_t *words = mmap(NULL, 1024 * sizeof *words, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(words != MAP_FAILED);
	uint32_t v = __atomic_load_n(&words[w], __ATOMIC_SEQ_CST);
	long r = syscall(SYS_futex, &words[w], FUTEX_WAIT, v, NULL, NULL, 0);
	munmap(words, 1024 * sizeof *words);
	close(fd);
	return r == 0 ? 0 : 1;
}

/* The one wake-up of a job goes to a sleeper that never looks (it sleeps
 * first, so it is the one woken): the job would wait while an acceptor
 * that could take it sleeps. The activity monitor finds the same job
 * first due at two checks of its type and wakes the acceptors that have
 * not looked since. */
TEST(monitor_rescues_a_lost_wake_up) {
	SKIP_UNLESS_LMDB(); /* the PostgreSQL engine wakes every acceptor */
	setup_type("w", 1);
	unsigned w = chan_word("p:w");
	int ps = t_spawn(raw_sleeper, &w);
	check_asleep(ps);
	chan out;
	chan_init(&out);
	struct acc b = {"w", 0, CJ_SCHED_NOW, &out};
	int pb = t_spawn(acceptor, &b);
	check_asleep(pb);
	cj_db *db = t_open(); /* with its monitor, checking "w" every second */
	int64_t t0 = t_now_ms();
	add_at(db, "w", "j5", 0);
	check_exit(ps, TAKEN_MS, 0); /* it took the wake-up */
	CHECK_INT(chan_get(&out, TAKEN_MS), 5);
	note("  taken %lld ms after it was added\n", (long long)(t_now_ms() - t0));
	stop_acceptor(db, "w", 0, &out, pb);
	chan_close(&out);
	cj_close(db);
}

TEST_MAIN_VERIFIED(ENTRY(one_wakes_per_job), ENTRY(passes_on_a_job_it_cannot_take),
                   ENTRY(passes_on_another_types_job),
                   ENTRY(passes_on_a_wake_up_taken_with_another),
                   ENTRY(monitor_rescues_a_lost_wake_up))
