/*
 * GET /ui/events: the dashboard's overview as Server-Sent Events. A "types"
 * event carries what GET /v1/types answers, plus "time" (the server's
 * clock, seconds since the epoch) and "schedules" (what GET /v1/schedules
 * lists), and a new one is sent whenever any job, type timeout or schedule
 * changed, in any process using the store: the dashboard polls nothing
 * (schedule changes wake cj_changes_wait() as job changes do, see
 * schedule.c; their firing adds jobs).
 *
 * The stream waits in the library for a commit that changed any job
 * (cj_changes_wait(), cancelled when the client hangs up or the server
 * stops), then looks: it reads the overview (the store's counts, a few
 * reads per type) and sends it when it or the store's change token
 * differs from what the client has. Looks are spaced by at least a second
 * and by twenty times the last look's time, so an open dashboard never
 * takes more than a twentieth of one core. Without commits the stream
 * looks again only every
 * LOOK_MAX_MS (scheduled jobs falling due and timeout changes commit no
 * job change). A change that comes before the next look may run is looked
 * at when that time comes: the stream sleeps until then (or until it is
 * cancelled), without polling. Nothing is read while no dashboard is open.
 * The stream's writing and keep-alives are sse.c's.
 */
#include "server.h"
#include "ui.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOOK_MIN_MS 1000
#define LOOK_MAX_MS 30000
#define LOOK_COST_FACTOR 20

struct overview {
	struct srv_sse out;    /* first: the writer's state */
	struct srv *srv;
	struct srv_wait *wait; /* its cancellation ends the stream's waits */
	uint64_t hash;       /* of the store as last sent */
	int sent;            /* hash is the client's */
	int dirty;           /* a change may have landed since the last look */
	uint64_t token;      /* cj_changes_token() taken before the last look */
	int64_t next_look_ms, last_look_ms;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
	return h;
}

static uint64_t fnv_str(uint64_t h, const char *s) {
	return fnv(h, s ? s : "", s ? strlen(s) + 1 : 1);
}

/* The hash of the overview (every type's timeout and counts, without the
 * ages, which move with the clock; the schedules) and of the change token
 * taken before it was read: a commit that changed any job, even one the
 * counts do not show (new data), makes a new overview, so that the
 * dashboard reloads its list of jobs. A CJ_* code; *types is the overview
 * and *scheds the schedules (json_decref both). */
static int look(struct srv *s, uint64_t token, uint64_t *out, json_t **types,
                json_t **scheds) {
	uint64_t h = fnv(1469598103934665603ULL, &token, sizeof token);
	int rc = srv_count_types(s, types);
	if (rc != CJ_OK) return rc;
	if ((rc = srv_list_schedules(s, scheds)) != CJ_OK) {
		json_decref(*types);
		*types = NULL;
		return rc;
	}
	char *st = json_dumps(*scheds, JSON_COMPACT | JSON_SORT_KEYS);
	if (!st) {
		json_decref(*types);
		json_decref(*scheds);
		*types = *scheds = NULL;
		return CJ_NOMEM;
	}
	h = fnv_str(h, st);
	free(st);
	const char *k;
	json_t *v;
	json_object_foreach(*types, k, v) {
		json_t *e = json_deep_copy(v);
		char *text = NULL;
		if (e) json_object_del(e, "oldest_pending_age");
		if (!e || !(text = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS))) {
			json_decref(e);
			json_decref(*types);
			json_decref(*scheds);
			*types = *scheds = NULL;
			return CJ_NOMEM;
		}
		h = fnv_str(h, text);
		free(text);
		json_decref(e);
	}
	*out = h;
	return CJ_OK;
}

/* Queues the "types" event of the store as it is now. 0, or -1. */
static int queue_overview(struct overview *o, json_t *types, json_t *scheds, uint64_t hash,
                          int64_t now) {
	json_t *arr = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(types, k, v) json_array_append(arr, v);
	json_decref(types);
	json_t *body = json_pack("{s:o,s:I,s:o}", "types", arr, "time", (json_int_t)now,
	                         "schedules", scheds);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text) return -1;
	char id[17];
	snprintf(id, sizeof id, "%016" PRIx64, hash);
	int rc = srv_sse_queue(&o->out, id, "types", text);
	free(text);
	if (rc != 0) return -1;
	o->hash = hash;
	o->sent = 1;
	return 0;
}

/* The look, with the token taken first so that a commit it misses ends
 * the next wait. 1 an overview was queued, 0 nothing changed, -1 failed. */
static int look_now(struct overview *o) {
	int64_t t = cli_now_ms(), now = (int64_t)time(NULL);
	uint64_t h;
	int queued = 0;
	json_t *types = NULL, *scheds = NULL;
	if (cj_changes_token(o->srv->db, &o->token) != CJ_OK) return -1;
	if (look(o->srv, o->token, &h, &types, &scheds) != CJ_OK) return -1;
	if (!o->sent || h != o->hash) {
		if (queue_overview(o, types, scheds, h, now) != 0) return -1;
		queued = 1;
	} else {
		json_decref(types);
		json_decref(scheds);
	}
	int64_t cost = cli_now_ms() - t, wait = cost * LOOK_COST_FACTOR;
	wait = wait < LOOK_MIN_MS ? LOOK_MIN_MS : wait > LOOK_MAX_MS ? LOOK_MAX_MS : wait;
	o->last_look_ms = cli_now_ms();
	o->next_look_ms = o->last_look_ms + wait;
	o->dirty = 0;
	return queued;
}

/* The stream's source (srv_sse.next): the next overview that differs from
 * the client's, within `ms`. */
static int ov_next(struct srv_sse *out, int64_t ms) {
	struct overview *o = (struct overview *)out;
	cj_cancel *cancel = srv_wait_cancel(o->wait);
	int64_t deadline = cli_now_ms() + ms;
	for (;;) {
		if (cj_cancel_fired(cancel)) break;
		int64_t t = cli_now_ms();
		if (o->dirty && t >= o->next_look_ms) {
			int rc = look_now(o);
			if (rc != 0) return rc > 0 ? SRV_SSE_QUEUED : SRV_SSE_ERROR;
			continue;
		}
		if (t >= deadline) return SRV_SSE_QUIET;
		if (o->dirty) {
			/* a change came before the next look may run (the store is
			 * busy): sleep until then, woken early only by a cancel */
			int64_t until = o->next_look_ms < deadline ? o->next_look_ms : deadline;
			srv_wait_sleep(o->wait, until - t);
			continue;
		}
		int64_t look_in = LOOK_MAX_MS - (t - o->last_look_ms);
		int64_t wait = deadline - t < look_in ? deadline - t : look_in;
		int rc = cj_changes_wait(o->srv->db, o->token, wait < 0 ? 0 : wait, cancel);
		if (rc == CJ_OK) o->dirty = 1;
		else if (rc == CJ_TIMEOUT) o->dirty = cli_now_ms() - o->last_look_ms >= LOOK_MAX_MS;
		else if (rc == CJ_CANCELED) break;
		else return SRV_SSE_ERROR;
	}
	/* cancelled: the client hung up, or the server stops */
	return srv_wait_gone(o->wait, o->srv) ? SRV_SSE_ERROR : SRV_SSE_END;
}

static void ov_free(struct srv_sse *out) {
	struct overview *o = (struct overview *)out;
	srv_waiter_leave(o->srv, o->wait);
	free(o);
}

void srv_h_ui_events(struct srv_req *r) {
	struct overview *o = calloc(1, sizeof *o);
	if (!o) {
		srv_reply_cj(r, CJ_NOMEM);
		return;
	}
	if (srv_waiter_enter(r, &o->wait) != 0) {
		free(o);
		return;
	}
	o->out.next = ov_next;
	o->out.free = ov_free;
	o->srv = r->srv;
	o->dirty = 1;
	/* a client that reconnects with the id of the overview it has gets
	 * nothing until the store changes */
	const char *last = srv_header(r, "Last-Event-ID");
	char *end;
	if (last && *last) {
		unsigned long long h = strtoull(last, &end, 16);
		if (!*end) {
			o->hash = (uint64_t)h;
			o->sent = 1;
		}
	}
	srv_sse_reply(r, &o->out);
}
