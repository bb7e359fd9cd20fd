/*
 * Server-Sent Events:
 *
 * GET /v1/jobs/{type}/{id}/events: a job's state changes, from
 * cj_subscribe() and cj_wait(). The stream starts with the job's current
 * state, then one event per change, and ends after "finished" or
 * "removed". Each event's id names the state and a hash of the data: a
 * client that reconnects with Last-Event-ID gets the current state again
 * unless it is the one it saw last, so it never misses the latest state.
 *
 * GET /v1/types/{type}/events: the changes of a type's jobs, from its feed
 * (feed.c). The stream starts with an "open" event, then one "job" event
 * per change; ids are the feed's journal numbers, and a client that
 * reconnects with Last-Event-ID gets every change journaled since, or a
 * "reset" event when that cannot be told (it then lists the jobs again).
 *
 * Both wait in the library (or on the feed) until an event or the next
 * keep-alive comment; the wait's cancellation ends them when the client
 * hangs up or the server stops.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_ID_LEN 24

struct sse {
	struct srv_sse out;     /* first: the writer's state */
	struct srv *srv;
	cj_sub *sub;            /* a job's stream */
	struct srv_feed *feed;  /* a type's stream */
	uint64_t cursor;        /* the type stream's next journal number */
	struct srv_wait *wait;  /* its cancellation ends the wait */
	int done;
};

/* "STATE-HASH": the FNV-1a hash of the data. */
static void event_id(char out[EVENT_ID_LEN], int state, const char *data) {
	uint64_t h = 1469598103934665603ULL;
	for (const unsigned char *p = (const unsigned char *)(data ? data : ""); *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	snprintf(out, EVENT_ID_LEN, "%d-%016llx", state, (unsigned long long)h);
}

/* Queues a job's state event; 0 or -1 when out of memory. */
static int sse_state(struct sse *e, const char *type, const char *id, int state,
                     const char *data) {
	char eid[EVENT_ID_LEN];
	event_id(eid, state, data);
	json_t *j = json_pack("{s:s,s:s,s:s,s:o}", "type", type, "id", id, "state",
	                      cj_state_name(state), "data",
	                      state == CJ_REMOVED ? json_null() : srv_data_json(data));
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text) return -1;
	int rc = srv_sse_queue(&e->out, eid, "state", text);
	free(text);
	if (state == CJ_FINISHED || state == CJ_REMOVED) e->done = 1;
	return rc;
}

/* Queues a type stream's "open" or "reset" event, with the id of the last
 * journaled change (cursor - 1); 0 or -1. */
static int sse_mark(struct sse *e, const char *event, const char *reason) {
	char id[SRV_FEED_ID_LEN];
	srv_feed_id(e->feed, e->cursor - 1, id);
	json_t *j = reason ? json_pack("{s:s,s:s}", "type", srv_feed_type(e->feed), "reason", reason)
	                   : json_pack("{s:s}", "type", srv_feed_type(e->feed));
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text) return -1;
	int rc = srv_sse_queue(&e->out, id, event, text);
	free(text);
	return rc;
}

#define RESET_BEHIND "changes were missed (the reconnect came too late, or from another " \
                     "run of the server): list the jobs again"

/* The stream's source (srv_sse.next): waits up to `ms` for the next event
 * of the job or the type and queues it. */
static int sse_next(struct srv_sse *out, int64_t ms) {
	struct sse *e = (struct sse *)out;
	if (e->done || (!e->sub && !e->feed)) return SRV_SSE_END;
	if (e->feed) {
		char *text;
		int rc = srv_feed_next(e->feed, &e->cursor, ms, srv_wait_cancel(e->wait), &text);
		if (rc == 1) {
			char id[SRV_FEED_ID_LEN];
			srv_feed_id(e->feed, e->cursor - 1, id);
			rc = srv_sse_queue(&e->out, id, "job", text);
			free(text);
			return rc == 0 ? SRV_SSE_QUEUED : SRV_SSE_ERROR;
		}
		if (rc == 0) return SRV_SSE_QUIET;
		if (rc == SRV_FEED_RESET) {
			e->cursor = srv_feed_resume_point(e->feed);
			return sse_mark(e, "reset", RESET_BEHIND) == 0 ? SRV_SSE_QUEUED : SRV_SSE_ERROR;
		}
	} else {
		cj_event ev = {0};
		int rc = cj_wait(&e->sub, 1, 0, ms, &ev);
		if (rc == CJ_OK) {
			rc = sse_state(e, ev.type, ev.id, (int)ev.state, ev.data);
			cj_event_clear(&ev);
			return rc == 0 ? SRV_SSE_QUEUED : SRV_SSE_ERROR;
		}
		if (rc == CJ_TIMEOUT) return SRV_SSE_QUIET;
		if (rc != CJ_CANCELED) return SRV_SSE_ERROR;
	}
	/* cancelled: the client hung up, or the server stops */
	return srv_wait_gone(e->wait, e->srv) ? SRV_SSE_ERROR : SRV_SSE_END;
}

static void sse_free(struct srv_sse *out) {
	struct sse *e = (struct sse *)out;
	cj_unsubscribe(e->sub); /* first: it is tied to the wait's cancellation */
	srv_feed_leave(e->feed);
	srv_waiter_leave(e->srv, e->wait);
	free(e);
}

/* A stream for the request: 0, or -1 after replying. */
static struct sse *sse_new(struct srv_req *r) {
	struct sse *e = calloc(1, sizeof *e);
	if (!e) {
		srv_reply_cj(r, CJ_NOMEM);
		return NULL;
	}
	if (srv_waiter_enter(r, &e->wait) != 0) {
		free(e);
		return NULL;
	}
	e->srv = r->srv;
	e->out.next = sse_next;
	e->out.free = sse_free;
	return e;
}

/* Replies with the stream e (rc 0: its first event queued); on failure
 * frees it. */
static void sse_reply(struct srv_req *r, struct sse *e, int rc) {
	if (rc != 0) {
		srv_sse_drop(&e->out);
		srv_reply_cj(r, CJ_NOMEM);
		return;
	}
	srv_sse_reply(r, &e->out);
}

void srv_h_events(struct srv_req *r) {
	struct srv *s = r->srv;
	cj_sub *sub = NULL;
	cj_state state;
	char *data = NULL;
	int rc = cj_subscribe(s->db, r->param[0], r->param[1], &sub, &state, &data);
	if (rc != CJ_OK) {
		srv_reply_cj(r, rc);
		return;
	}
	struct sse *e = sse_new(r);
	if (!e) {
		cj_unsubscribe(sub);
		cj_free(data);
		return;
	}
	e->sub = sub;
	if (sub) cj_sub_set_cancel(sub, srv_wait_cancel(e->wait));
	/* the current state first, unless the client saw exactly it last */
	char eid[EVENT_ID_LEN];
	event_id(eid, (int)state, data);
	const char *last = srv_header(r, "Last-Event-ID");
	if (!last || strcmp(last, eid) != 0) {
		rc = sse_state(e, r->param[0], r->param[1], (int)state, data);
	} else if (state == CJ_FINISHED) {
		e->done = 1;
	}
	cj_free(data);
	sse_reply(r, e, rc);
}

void srv_h_type_events(struct srv_req *r) {
	struct srv_feed *f;
	int rc = srv_feed_join(r->srv, r->param[0], &f);
	if (rc != CJ_OK) {
		if (rc == CJ_TOO_LARGE)
			srv_reply_err(r, 503, "busy", 0, "too many types streamed at once; retry");
		else
			srv_reply_cj(r, rc);
		return;
	}
	struct sse *e = sse_new(r);
	if (!e) {
		srv_feed_leave(f);
		return;
	}
	e->feed = f;
	srv_wait_set_poke(e->wait, srv_feed_poke, f);
	/* journaled changes after the client's last event, or from now on */
	rc = srv_feed_start(f, srv_header(r, "Last-Event-ID"), srv_wait_cancel(e->wait),
	                    &e->cursor);
	if (rc == 0) {
		rc = sse_mark(e, "open", NULL);
	} else if (rc == SRV_FEED_RESET) {
		e->cursor = srv_feed_resume_point(f);
		rc = sse_mark(e, "reset", RESET_BEHIND);
	} else { /* the server stops, or the client left */
		e->done = 1;
		rc = 0;
	}
	sse_reply(r, e, rc);
}
