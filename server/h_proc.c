/*
 * Processing over HTTP: accept as a bounded long poll, then update, finish,
 * fail or resubmit with the lock it returned. A stale lock is CJ_HALT, a 409.
 */
#include "server.h"

#include <stdlib.h>
#include <string.h>

/* Reads the accept options of the body. 0, or -1 after replying 400. */
static int accept_opts(struct srv_req *r, json_t *body, cj_accept_opts *o) {
	*o = (cj_accept_opts)CJ_ACCEPT_OPTS_INIT;
	o->timeout_ms = SRV_DEFAULT_POLL_MS;
	json_t *t = json_object_get(body, "timeout_ms");
	if (t) {
		if (!json_is_integer(t) || json_integer_value(t) < 0 ||
		    json_integer_value(t) > SRV_MAX_POLL_MS) {
			srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID,
			              "\"timeout_ms\" must be 0 to %d", SRV_MAX_POLL_MS);
			return -1;
		}
		o->timeout_ms = (int64_t)json_integer_value(t);
	}
	json_t *m = json_object_get(body, "max_sched_time");
	if (m && !json_is_null(m)) {
		if (json_is_string(m) && strcmp(json_string_value(m), "any") == 0) {
			o->max_sched_time = CJ_SCHED_ANY;
		} else if (json_is_integer(m) && json_integer_value(m) >= 0) {
			o->max_sched_time = (int64_t)json_integer_value(m);
		} else {
			srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID,
			              "\"max_sched_time\" must be seconds since the epoch or \"any\"");
			return -1;
		}
	}
	json_t *ns = json_object_get(body, "no_schedule");
	if (ns && !json_is_boolean(ns)) {
		srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID, "\"no_schedule\" must be a boolean");
		return -1;
	}
	o->no_schedule = json_is_true(ns);
	return 0;
}

/* Makes a job accepted for a client that left pending again, with its data
 * and scheduled time unchanged: flagged for another run, then finished. */
static void hand_back(struct srv *s, cj_job *job) {
	if (cj_resubmit(s->db, NULL, job, CJ_SCHED_KEEP, NULL) == CJ_OK)
		cj_finish(s->db, NULL, job, NULL);
}

void srv_h_accept(struct srv_req *r) {
	struct srv *s = r->srv;
	cj_accept_opts o;
	json_t *body = srv_body_json(r);
	if (!body) return;
	if (accept_opts(r, body, &o) != 0) {
		json_decref(body);
		return;
	}
	json_decref(body);
	int64_t start = cli_now_ms();
	cj_job *job = NULL;
	char *data = NULL;
	int rc, gone = 0;
	/* One look first: a job ready now is taken without the watch of a
	 * waiting request (a duplicate of the socket and its registration,
	 * four system calls). A stopping server takes none. */
	if (srv_waiters_stopping(s)) {
		rc = CJ_CANCELED;
	} else {
		cj_accept_opts now = o;
		now.timeout_ms = 0;
		rc = cj_accept(s->db, r->param[0], &now, &job, &data);
	}
	if (rc == CJ_NOT_FOUND && o.timeout_ms > 0) {
		/* One wait in the library for the whole timeout: the cancellation
		 * ends it at once when the client hangs up or the server stops. */
		struct srv_wait *w;
		if (srv_waiter_enter(r, &w) != 0) return;
		o.cancel = srv_wait_cancel(w);
		rc = cj_accept(s->db, r->param[0], &o, &job, &data);
		if (rc == CJ_CANCELED) gone = srv_wait_gone(w, s);
		srv_waiter_leave(s, w);
	}
	if (rc == CJ_OK) gone = srv_client_gone(r);
	if (gone) {
		if (job) hand_back(s, job);
		cj_free(data);
		cj_job_free(job);
		srv_reply_err(r, 499, "client_gone", 0, "the client closed the connection");
		return;
	}
	if (rc == CJ_CANCELED) rc = CJ_NOT_FOUND; /* the server stops: nothing came */
	if (rc == CJ_NOT_FOUND) {
		atomic_fetch_add(&s->m.accept_empty, 1);
		srv_reply_resp(r, 204, MHD_create_response_from_buffer(0, (char *)"",
		                                                       MHD_RESPMEM_PERSISTENT));
		return;
	}
	if (rc != CJ_OK) {
		srv_reply_cj(r, rc);
		return;
	}
	atomic_fetch_add(&s->m.accepted, 1);
	srv_hist_observe(&s->m.accept_wait, (cli_now_ms() - start) * 1000);
	srv_job_accepted(s, job);
	srv_reply_json(r, 200,
	               json_pack("{s:s,s:s,s:s,s:b,s:o}", "type", cj_job_type(job), "id",
	                         cj_job_id(job), "lock", cj_job_lock(job), "resubmit",
	                         cj_is_resubmitted(job), "data", srv_data_json(data)));
	cj_free(data);
	cj_job_free(job);
}

enum proc_op { OP_UPDATE, OP_FINISH, OP_FAIL, OP_RESUBMIT };

static void proc(struct srv_req *r, enum proc_op op) {
	struct srv *s = r->srv;
	json_t *body = srv_body_json(r);
	char *data = NULL;
	cj_job *job = NULL;
	int64_t sched = CJ_SCHED_KEEP;
	if (!body) return;
	json_t *lock = json_object_get(body, "lock");
	if (!json_is_string(lock)) {
		srv_reply_err(r, 400, "CJ_INVALID", CJ_INVALID,
		              "\"lock\" (the string accept returned) is required");
		goto out_body;
	}
	/* a failure keeps the job's data: its body's object is the error */
	if (srv_body_object(r, body, op == OP_FAIL ? "error" : "data", &data) != 0)
		goto out_body;
	if (op == OP_RESUBMIT && srv_body_sched(r, body, CJ_SCHED_KEEP, &sched) != 0)
		goto out_data;
	int rc = cj_job_resume(r->param[0], r->param[1], json_string_value(lock), &job);
	if (rc == CJ_OK) {
		switch (op) {
		case OP_UPDATE: rc = cj_update(s->db, NULL, job, data); break;
		case OP_FINISH: rc = cj_finish(s->db, NULL, job, data); break;
		case OP_FAIL: rc = cj_fail(s->db, NULL, job, data); break;
		case OP_RESUBMIT: rc = cj_resubmit(s->db, NULL, job, sched, data); break;
		}
	}
	if (rc != CJ_OK) {
		srv_reply_cj(r, rc);
		goto out_job;
	}
	switch (op) {
	case OP_UPDATE: atomic_fetch_add(&s->m.updated, 1); break;
	case OP_FINISH:
		atomic_fetch_add(&s->m.finished, 1);
		srv_run_ended(s, r->param[0], json_string_value(lock));
		break;
	case OP_FAIL:
		atomic_fetch_add(&s->m.failed, 1);
		srv_run_ended(s, r->param[0], json_string_value(lock));
		break;
	case OP_RESUBMIT: atomic_fetch_add(&s->m.resubmitted, 1); break;
	}
	if (op == OP_FINISH || op == OP_FAIL)
		srv_reply_ok(r);
	else
		srv_reply_json(r, 200, json_pack("{s:b,s:b}", "ok", 1, "resubmit",
		                                 cj_is_resubmitted(job)));
out_job:
	cj_job_free(job);
out_data:
	free(data);
out_body:
	json_decref(body);
}

void srv_h_update(struct srv_req *r) { proc(r, OP_UPDATE); }
void srv_h_finish(struct srv_req *r) { proc(r, OP_FINISH); }
void srv_h_fail(struct srv_req *r) { proc(r, OP_FAIL); }
void srv_h_resubmit(struct srv_req *r) { proc(r, OP_RESUBMIT); }
