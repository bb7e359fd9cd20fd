/*
 * The writer of every Server-Sent Events stream (a job's and a type's, in
 * h_events.c; the dashboard's overview, in ui_events.c): it sends the text
 * of the event its source queued; when all is sent it asks the source for
 * the next event, to be waited for until the next keep-alive comment is
 * due, and sends that comment when none came. The source does its waiting
 * in the library or on its feed, with the stream's cancellation, so a
 * quiet stream sleeps between keep-alives and wakes for nothing.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A comment line every PING_MS of silence keeps proxies and clients from
 * giving the connection up. */
#define PING_MS 15000

int srv_sse_queue(struct srv_sse *e, const char *id, const char *event, const char *data) {
	free(e->buf);
	e->off = 0;
	int n = asprintf(&e->buf, "id: %s\nevent: %s\ndata: %s\n\n", id, event, data);
	if (n < 0) {
		e->buf = NULL;
		e->len = 0;
		return -1;
	}
	e->len = (size_t)n;
	return 0;
}

/* Copies up to `max` bytes of `text` from *off on; advances it. */
static ssize_t put(struct srv_sse *e, const char *text, size_t len, size_t *off, char *buf,
                   size_t max) {
	size_t n = len - *off < max ? len - *off : max;
	memcpy(buf, text + *off, n);
	*off += n;
	e->last_write_ms = cli_now_ms();
	return (ssize_t)n;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
	(void)pos;
	struct srv_sse *e = cls;
	for (;;) {
		if (e->off < e->len) return put(e, e->buf, e->len, &e->off, buf, max);
		int64_t left = PING_MS - (cli_now_ms() - e->last_write_ms);
		switch (e->next(e, left < 0 ? 0 : left)) {
		case SRV_SSE_QUEUED: continue;
		case SRV_SSE_QUIET: {
			static const char ping[] = ": keep-alive\n\n";
			size_t off = 0;
			return put(e, ping, sizeof ping - 1, &off, buf, max);
		}
		case SRV_SSE_END: return MHD_CONTENT_READER_END_OF_STREAM;
		default: return MHD_CONTENT_READER_END_WITH_ERROR;
		}
	}
}

void srv_sse_drop(struct srv_sse *e) {
	free(e->buf);
	e->buf = NULL;
	e->free(e);
}

static void sse_free(void *cls) { srv_sse_drop(cls); }

void srv_sse_reply(struct srv_req *r, struct srv_sse *e) {
	e->last_write_ms = cli_now_ms();
	struct MHD_Response *resp =
		MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, e, sse_free);
	if (!resp) {
		srv_sse_drop(e);
		srv_reply_cj(r, CJ_NOMEM);
		return;
	}
	MHD_add_response_header(resp, "Content-Type", "text/event-stream");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	srv_reply_resp(r, 200, resp);
}
