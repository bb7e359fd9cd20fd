/*
 * GET /v1/jobs/{type}/{id}/events: a job's state changes as Server-Sent
 * Events, from cj_subscribe() and cj_wait().
 *
 * The stream starts with the job's current state, then one event per
 * change, and ends after "finished" or "removed". Each event's id names
 * the state and a hash of the data: a client that reconnects with
 * Last-Event-ID gets the current state again unless it is the one it saw
 * last, so it never misses the latest state.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PING_MS 15000
#define EVENT_ID_LEN 24

struct sse {
	struct srv *srv;
	cj_sub *sub;
	struct srv_wait *wait; /* its cancellation ends cj_wait() */
	char *buf; /* text not yet sent */
	size_t len, off;
	int done;
	int64_t last_write_ms;
};

/* "STATE-HASH": the FNV-1a hash of the data. */
static void event_id(char out[EVENT_ID_LEN], int state, const char *data) {
	uint64_t h = 1469598103934665603ULL;
	for (const unsigned char *p = (const unsigned char *)(data ? data : ""); *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	snprintf(out, EVENT_ID_LEN, "%d-%016llx", state, (unsigned long long)h);
}

/* Queues one event; 0 or -1 when out of memory. */
static int sse_event(struct sse *e, const char *type, const char *id, int state,
                     const char *data) {
	char eid[EVENT_ID_LEN];
	event_id(eid, state, data);
	json_t *j = json_pack("{s:s,s:s,s:s,s:o}", "type", type, "id", id, "state",
	                      cj_state_name(state), "data",
	                      state == CJ_REMOVED ? json_null() : srv_data_json(data));
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text) return -1;
	free(e->buf);
	e->buf = NULL;
	e->off = 0;
	int n = asprintf(&e->buf, "id: %s\nevent: state\ndata: %s\n\n", eid, text);
	free(text);
	if (n < 0) {
		e->buf = NULL;
		e->len = 0;
		return -1;
	}
	e->len = (size_t)n;
	if (state == CJ_FINISHED || state == CJ_REMOVED) e->done = 1;
	return 0;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
	(void)pos;
	struct sse *e = cls;
	for (;;) {
		if (e->off < e->len) {
			size_t n = e->len - e->off < max ? e->len - e->off : max;
			memcpy(buf, e->buf + e->off, n);
			e->off += n;
			e->last_write_ms = srv_now_ms();
			return (ssize_t)n;
		}
		if (e->done || !e->sub) return MHD_CONTENT_READER_END_OF_STREAM;
		/* one wait until the next event or ping; the cancellation ends it
		 * when the client hangs up or the server stops */
		int64_t left = PING_MS - (srv_now_ms() - e->last_write_ms);
		cj_event ev = {0};
		int rc = cj_wait(&e->sub, 1, 0, left < 0 ? 0 : left, &ev);
		if (rc == CJ_OK) {
			rc = sse_event(e, ev.type, ev.id, (int)ev.state, ev.data);
			cj_event_clear(&ev);
			if (rc != 0) return MHD_CONTENT_READER_END_WITH_ERROR;
		} else if (rc == CJ_TIMEOUT) {
			static const char ping[] = ": keep-alive\n\n";
			size_t n = sizeof ping - 1 < max ? sizeof ping - 1 : max;
			memcpy(buf, ping, n);
			e->last_write_ms = srv_now_ms();
			return (ssize_t)n;
		} else if (rc == CJ_CANCELED && !srv_wait_gone(e->wait, e->srv)) {
			return MHD_CONTENT_READER_END_OF_STREAM; /* the server stops */
		} else {
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
	}
}

static void sse_free(void *cls) {
	struct sse *e = cls;
	cj_unsubscribe(e->sub); /* first: it is tied to the wait's cancellation */
	free(e->buf);
	srv_waiter_leave(e->srv, e->wait);
	free(e);
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
	struct sse *e = calloc(1, sizeof *e);
	if (!e || srv_waiter_enter(r, &e->wait) != 0) {
		if (!e) srv_reply_cj(r, CJ_NOMEM);
		free(e);
		cj_unsubscribe(sub);
		cj_free(data);
		return;
	}
	e->srv = s;
	e->sub = sub;
	if (sub) cj_sub_set_cancel(sub, srv_wait_cancel(e->wait));
	e->last_write_ms = srv_now_ms();
	/* the current state first, unless the client saw exactly it last */
	char eid[EVENT_ID_LEN];
	event_id(eid, (int)state, data);
	const char *last = srv_header(r, "Last-Event-ID");
	if (!last || strcmp(last, eid) != 0) {
		rc = sse_event(e, r->param[0], r->param[1], (int)state, data);
	} else if (state == CJ_FINISHED) {
		e->done = 1;
	}
	cj_free(data);
	struct MHD_Response *resp =
		rc == 0 ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, e,
		                                            sse_free)
		        : NULL;
	if (!resp) {
		sse_free(e);
		srv_reply_cj(r, CJ_NOMEM);
		return;
	}
	MHD_add_response_header(resp, "Content-Type", "text/event-stream");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	srv_reply_resp(r, 200, resp);
}
