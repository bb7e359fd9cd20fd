/*
 * GET /ui/events: the dashboard's overview as Server-Sent Events. A "types"
 * event carries what GET /v1/types answers, plus "time" (the server's
 * clock, seconds since the epoch), and a new one is sent whenever any job
 * or type timeout changed, in any process using the store.
 *
 * The stream waits in the library for a commit that changed any job
 * (cj_changes_wait(), cancelled when the client hangs up or the server
 * stops), then looks: it reads every job's state, scheduled time and data
 * and keeps a hash of them, and sends the overview when the hash changes
 * (a second scan, which counts). One look costs a scan of the store,
 * O(jobs); looks are spaced by at least a second and by twenty times the
 * last scan's time, so an open dashboard never takes more than a twentieth
 * of one core. Without commits the stream looks again only every
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

struct look {
	uint64_t h;
	int64_t now;
};

static int hash_job(const cj_job_info *info, void *arg) {
	struct look *l = arg;
	int64_t v[4] = {info->state, info->sched_time, info->resubmit, info->sched_time > l->now};
	l->h = fnv_str(fnv_str(fnv_str(l->h, info->type), info->id), info->data);
	l->h = fnv(l->h, v, sizeof v);
	return 0;
}

/* The hash of every job and type timeout. A CJ_* code. */
static int look(struct srv *s, int64_t now, uint64_t *out) {
	struct look l = {1469598103934665603ULL, now};
	char **types = NULL;
	size_t n = 0;
	int rc = cj_get_types(s->db, NULL, &types, &n);
	for (size_t i = 0; i < n; i++) {
		int64_t t = 0;
		if (cj_get_type_timeout(s->db, types[i], &t) != CJ_OK) t = -1;
		l.h = fnv(fnv_str(l.h, types[i]), &t, sizeof t);
		cj_free(types[i]);
	}
	cj_free(types);
	if (rc == CJ_OK) rc = cj_list_jobs(s->db, NULL, NULL, hash_job, &l);
	*out = l.h;
	return rc;
}

/* Queues the "types" event of the store as it is now. 0, or -1. */
static int queue_overview(struct overview *o, uint64_t hash, int64_t now) {
	json_t *types;
	if (srv_count_types(o->srv, &types) != CJ_OK) return -1;
	json_t *arr = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(types, k, v) json_array_append(arr, v);
	json_decref(types);
	json_t *body = json_pack("{s:o,s:I}", "types", arr, "time", (json_int_t)now);
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
	if (cj_changes_token(o->srv->db, &o->token) != CJ_OK) return -1;
	if (look(o->srv, now, &h) != CJ_OK) return -1;
	if (!o->sent || h != o->hash) {
		if (queue_overview(o, h, now) != 0) return -1;
		queued = 1;
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
