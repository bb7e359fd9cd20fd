/* A process stopped at the library's hold points; see held.h. */
#include "held.h"

#include "cj_int.h"

#include <unistd.h>

void held_init(held *h, const char *type, const char *id, int p0, int hold0, int p1,
               int hold1) {
	memset(h, 0, sizeof *h);
	h->type = type;
	h->id = id;
	h->points[0] = p0;
	h->points[1] = p1;
	h->hold[0] = hold0;
	h->hold[1] = hold1;
	gates_init(&h->at[0], &h->at[1], &h->go[0], &h->go[1], &h->ready, &h->start, &h->acked);
}

static int held_main(void *p) {
	held *h = p;
	if (h->kill_at) setenv("CJ_TEST_COMBINE_KILL", h->kill_at, 1);
	cj_db *db = open_nomon();
	t_gate_open(&h->ready);
	if (t_gate_wait(&h->start, HELD_WAIT_MS) != 0) return 90;
	for (int i = 0; i < 2; i++)
		if (h->points[i] >= 0)
			cj__fault_hold(h->points[i], h->at[i].fd[1], h->hold[i] ? h->go[i].fd[0] : -1);
	if (h->lock) {
		cj_job *job;
		CHECK_OK(cj_job_resume(h->type, h->id, h->lock, &job));
		CHECK_OK(cj_finish(db, NULL, job, "{\"f\":1}"));
		cj_job_free(job);
	} else {
		CHECK_OK(cj_add(db, NULL, h->type, h->id, NULL, 0));
	}
	t_gate_open(&h->acked);
	cj_close(db);
	return 0;
}

int tu_held_spawn(const char *file, int line, held *h) {
	return tu_spawn_ready(file, line, held_main, h, &h->ready, HELD_WAIT_MS);
}

void held_go(held *h) { t_gate_open(&h->start); }

int tu_held_start(const char *file, int line, held *h, const char *type, const char *id,
                  int p0, int hold0, int p1, int hold1, int go) {
	held_init(h, type, id, p0, hold0, p1, hold1);
	int pid = tu_held_spawn(file, line, h);
	if (go) held_go(h);
	return pid;
}

void tu_held_at(const char *file, int line, held *h, int i) {
	if (t_gate_wait(&h->at[i], HELD_WAIT_MS) != 0)
		t_fail(file, line, "process %s/%s did not reach its point %d within %d ms", h->type,
		       h->id, i, HELD_WAIT_MS);
}

void held_close(held *h) {
	gates_close(&h->at[0], &h->at[1], &h->go[0], &h->go[1], &h->ready, &h->start, &h->acked);
}
