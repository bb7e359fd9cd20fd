/*
 * The couchjobs HTTP server (`cjobs serve`): a front end over the public
 * <couchjobs.h>, with libmicrohttpd for HTTP and jansson for JSON.
 *
 * Map of the files:
 *   server.c    the daemon: start, limits, signals, graceful stop
 *   http.c      one request: auth, body, routing, replies
 *   routes.c    the routing table {method, pattern, handler}
 *   auth.c      the token file, constant-time compare, loopback check
 *   status.c    CJ_* code -> HTTP status and error bodies
 *   h_jobs.c    /v1/jobs: add, get, remove, list
 *   h_types.c   /v1/types: timeouts, settings, limits, counts per state
 *   h_policy.c  retry policies as JSON; a job's own policy
 *   h_retention.c retention as JSON; a type's retention, prune
 *   h_setting.c the one flow of a type's settings: JSON, GET, PUT, DELETE
 *   h_sched.c   /v1/schedules: periodic jobs
 *   h_proc.c    accept (long poll), update, finish, resubmit
 *   h_events.c  a job's and a type's changes as Server-Sent Events
 *   sse.c       the writer of every event stream, keep-alives included
 *   waiters.c   waiting requests: cancelled when the client leaves or on stop
 *   feed.c      a type's changes as a numbered journal, for its event streams
 *   metrics.c   /metrics in Prometheus' text format
 *   ui.c        the dashboard at / (files in ui/, declared in ui.h)
 *   ui_events.c the dashboard's overview stream
 *
 * Internal names start with srv_; everything else is static.
 */
#ifndef CJ_SERVER_H
#define CJ_SERVER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <couchjobs.h>
#include <jansson.h>
#include <microhttpd.h>

#include "../tools/clock.h" /* cli_now_ms(), cli_epoch_ms(): the front ends' clocks */

/* ---- limits ------------------------------------------------------------- */

/* Job data limit of the store as the server opens it (the library default). */
#define SRV_DATA_LIMIT ((size_t)1 << 20)
/* A request body: the data limit plus room for the JSON around it. */
#define SRV_BODY_LIMIT (SRV_DATA_LIMIT + ((size_t)64 << 10))
/* Memory for one connection's request line and headers (and I/O buffer). */
#define SRV_HEADER_LIMIT ((size_t)32 << 10)
/* Open connections; beyond it new ones are refused by the kernel queue. */
#define SRV_MAX_CONNECTIONS 1000
/* Seconds a connection may stay idle before it is closed. */
#define SRV_IDLE_TIMEOUT 30
/* Concurrent long polls (accept) and event streams. */
#define SRV_MAX_WAITERS 500
/* Longest accept long poll, and the default one, in milliseconds. */
#define SRV_MAX_POLL_MS 60000
#define SRV_DEFAULT_POLL_MS 30000
/* Types whose changes are streamed (each has a feed: a thread, a snapshot
 * of its jobs and a journal). */
#define SRV_MAX_FEEDS 64
/* Jobs in one page of a listing: default and most. */
#define SRV_PAGE_DEFAULT 100
#define SRV_PAGE_MAX 1000
/* Jobs a page of a filtered listing reads at most, per job of its limit. */
#define SRV_PAGE_SCAN_FACTOR 100

/* ---- the server --------------------------------------------------------- */

struct srv_config {
	const char *listen;     /* "HOST:PORT" or "[V6]:PORT"; NULL: 127.0.0.1:8075 */
	const char *token_file; /* NULL: no token, loopback clients only */
	const char *url;        /* the store */
	int relaxed;            /* open it with CJ_SYNC_RELAXED */
};

/* Opens the store and runs the server until SIGTERM or SIGINT, then stops
 * gracefully. Prints "listening on http://HOST:PORT" on standard output
 * once it serves. Returns 0; 2 (bad option) or 1 (it could not start)
 * after printing one line on standard error. */
int srv_run(const struct srv_config *cfg);

/* Histogram with fixed upper bounds in seconds. */
#define SRV_HIST_BUCKETS 12
struct srv_hist {
	const double *bounds; /* SRV_HIST_BUCKETS - 1 finite bounds, ascending */
	_Atomic uint64_t count[SRV_HIST_BUCKETS]; /* the last one is +Inf */
	_Atomic uint64_t sum_us;
};

/* What this server did, for /metrics. */
struct srv_metrics {
	_Atomic uint64_t added, removed, accepted, accept_empty, updated, finished,
		resubmitted, halted, failed, retried;
	_Atomic uint64_t http[6]; /* answers by status class: 1xx..5xx at [1..5] */
	struct srv_hist accept_wait; /* seconds a successful accept waited */
};

/* Types with histograms of their own in /metrics; jobs of further types
 * share one series (type=""). */
#define SRV_METRICS_TYPES 64

struct srv_runs; /* accept times of jobs, by lock (metrics.c) */
struct srv_types_hists; /* histograms per type (metrics.c) */
struct srv_waiters; /* waiting requests (waiters.c) */
struct srv_feeds;   /* type feeds (feed.c) */

/* The state shared by every request. */
struct srv {
	cj_db *db;
	char *token; /* NULL: none */
	size_t token_len;
	atomic_int active;    /* requests being handled */
	atomic_int waiters;   /* long polls and event streams */
	struct srv_metrics m;
	struct srv_runs *runs;
	struct srv_types_hists *hists;
	struct srv_waiters *waiting;
	struct srv_feeds *feeds;
};

/* ---- one request (http.c) ---------------------------------------------- */

#define SRV_MAX_PARAMS 2

struct srv_req {
	struct srv *srv;
	struct MHD_Connection *conn;
	const char *method;
	char *param[SRV_MAX_PARAMS]; /* path parameters, decoded */
	char *body;                  /* the request body, NUL-terminated */
	size_t body_len;
	int status;                  /* the answer, set by srv_reply*() */
	struct MHD_Response *resp;
};

/* Parses the body as a JSON object; an empty body is an empty object. On
 * failure replies 400 and returns NULL. */
json_t *srv_body_json(struct srv_req *r);

/* The decoded value of query argument `name` (malloc'd), or NULL. */
char *srv_query(struct srv_req *r, const char *name);

/* Whether the client closed its side of the connection (it gave up a long
 * poll or an event stream): nobody would read an answer. */
int srv_client_gone(struct srv_req *r);

/* A request header, or NULL. */
const char *srv_header(struct srv_req *r, const char *name);

/* Replies `status` with the compact text of `body` and a line break
 * (`body` is stolen; NULL: no body). */
void srv_reply_json(struct srv_req *r, int status, json_t *body);

/* Replies `status` with an error body {"error":NAME,"code":N,"message":...}. */
void srv_reply_err(struct srv_req *r, int status, const char *name, int code,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Replies with the status and error body of a failed library call. */
void srv_reply_cj(struct srv_req *r, int rc);

/* As srv_reply_cj(), with the members of the object `more` (taken; may be
 * NULL) added to the error body. */
void srv_reply_cj_more(struct srv_req *r, int rc, json_t *more);

/* Replies 200 {"ok":true} when rc is CJ_OK, else as srv_reply_cj(). */
void srv_reply_done(struct srv_req *r, int rc);

/* Replies 200 {"ok":true} (a constant body: nothing to build or free). */
void srv_reply_ok(struct srv_req *r);

/* Replies `status` with `text` (malloc'd, taken over) of `ctype`. */
void srv_reply_text(struct srv_req *r, int status, char *text, const char *ctype);

/* Decodes %XX escapes (and '+' as a space when asked); malloc'd; NULL when
 * out of memory or the text decodes to a NUL byte. */
char *srv_unescape(const char *s, int plus_is_space);

/* Replies with a response built by the handler (taken over). */
void srv_reply_resp(struct srv_req *r, int status, struct MHD_Response *resp);

/* libmicrohttpd's callbacks (http.c), installed by server.c; `cls` is the
 * struct srv. */
enum MHD_Result srv_on_request(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version,
                               const char *upload, size_t *upload_size, void **con_cls);
void srv_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe);
size_t srv_keep_escaped(void *cls, struct MHD_Connection *c, char *s);

/* ---- routing (routes.c) ------------------------------------------------- */

typedef void (*srv_handler)(struct srv_req *r);

/* Finds the route of `method` `path` and fills r->param. Returns the
 * handler; NULL with *status 404 (no such path) or 405 (not this method)
 * or 400 (a bad segment). */
srv_handler srv_route_find(struct srv_req *r, const char *path, int *status);

/* ---- auth (auth.c) ------------------------------------------------------ */

/* Reads the token file (no symlinks). 0, or -1 after printing a line. */
int srv_token_load(struct srv *s, const char *path);

/* Whether the request may be served: 0 yes; else the status to answer
 * (401 bad or missing token, 403 not loopback without a token). */
int srv_auth_check(struct srv_req *r);

/* ---- codes (status.c) --------------------------------------------------- */

/* The HTTP status of a CJ_* code. */
int srv_status_of(int rc);

/* ---- handlers ----------------------------------------------------------- */

void srv_h_job_put(struct srv_req *r);
void srv_h_job_get(struct srv_req *r);
void srv_h_job_delete(struct srv_req *r);
void srv_h_jobs_list(struct srv_req *r);
void srv_h_types_list(struct srv_req *r);
void srv_h_type_get(struct srv_req *r);
void srv_h_type_put(struct srv_req *r);
void srv_h_type_delete(struct srv_req *r);
void srv_h_accept(struct srv_req *r);
void srv_h_update(struct srv_req *r);
void srv_h_finish(struct srv_req *r);
void srv_h_fail(struct srv_req *r);
void srv_h_retry(struct srv_req *r);
void srv_h_resubmit(struct srv_req *r);
void srv_h_events(struct srv_req *r);
void srv_h_type_events(struct srv_req *r);
void srv_h_metrics(struct srv_req *r);
void srv_h_type_retry(struct srv_req *r);
void srv_h_job_policy_get(struct srv_req *r);
void srv_h_job_policy_put(struct srv_req *r);
void srv_h_job_policy_delete(struct srv_req *r);
void srv_h_limits_get(struct srv_req *r);
void srv_h_limits_put(struct srv_req *r);
void srv_h_limits_delete(struct srv_req *r);
void srv_h_retention_get(struct srv_req *r);
void srv_h_retention_put(struct srv_req *r);
void srv_h_retention_delete(struct srv_req *r);
void srv_h_prune(struct srv_req *r);
void srv_h_schedules_list(struct srv_req *r);
void srv_h_schedule_get(struct srv_req *r);
void srv_h_schedule_put(struct srv_req *r);
void srv_h_schedule_delete(struct srv_req *r);

/* A type's setting (retry policy, limits, retention): its member name in
 * JSON, the library's calls on it and its JSON form. */
struct srv_setting {
	const char *key; /* "retry_policy", "limits", "retention" */
	int (*get)(cj_db *db, const char *type, void *v);
	int (*set)(cj_db *db, const char *type, const void *v);
	int (*clear)(cj_db *db, const char *type);
	json_t *(*to_json)(const void *v);
	/* reads object o into *v: 0, or -1 after replying 400 with `what`
	 * ("... must be an object") first */
	int (*parse)(struct srv_req *r, json_t *o, const char *what, void *v);
};
extern const struct srv_setting srv_type_policy, srv_type_limits, srv_type_retention;

/* The type's setting as JSON, or null when it has none. */
json_t *srv_setting_json(struct srv *srv, const struct srv_setting *s, const char *type);

/* Reads the setting's member of a PUT body into *v: *set 0 when it is
 * absent, -1 when null (clear), 1 when read. 0, or -1 after replying 400. */
int srv_setting_member(struct srv_req *r, json_t *body, const struct srv_setting *s, void *v,
                       int *set);

/* /v1/types/{type}/KEY: GET {"type",KEY} (the setting, or null when the
 * type has none); PUT (the body is the setting) answers the same; DELETE
 * clears it, 404 when there is none. */
void srv_setting_get(struct srv_req *r, const struct srv_setting *s);
void srv_setting_put(struct srv_req *r, const struct srv_setting *s);
void srv_setting_delete(struct srv_req *r, const struct srv_setting *s);

/* Reads a retention object `o` ({"keep_ms","keep_max","dead_keep_ms",
 * "dead_keep_max"}) into *k: fields left out or null are not set; at least
 * one must be. 0, or -1 after replying 400 with `what` ("... must be an
 * object") first. */
int srv_retention_parse(struct srv_req *r, json_t *o, const char *what, cj_retention *k);

/* A retry policy as JSON {"max_attempts","backoff_min","backoff_max",
 * "multiplier","jitter"} (the jitter by name). */
json_t *srv_policy_json(const cj_retry_policy *p);

/* Reads a policy object `o` of that shape into *p: fields left out keep
 * CJ_RETRY_POLICY_INIT's values; the library checks the ranges. 0, or -1
 * after replying 400 with `what` ("... must be an object") first. */
int srv_policy_parse(struct srv_req *r, json_t *o, const char *what, cj_retry_policy *p);

/* Counts the jobs of every type per state: an object type ->
 * {"type","timeout" (or null),"counts":{"pending","scheduled","running",
 * "finished"},"oldest_due","oldest_pending_age" (or null),
 * "pending_untimed"}. One scan of the jobs. A CJ_* code. */
int srv_count_types(struct srv *s, json_t **out);
/* The schedules as GET /v1/schedules lists them (a JSON array, in *out):
 * a CJ_* code. */
int srv_list_schedules(struct srv *s, json_t **out);

/* ---- waiting requests (waiters.c) ------------------------------------- */

/* One waiting request: a cancellation for its library wait, fired when its
 * client hangs up or the server stops. */
struct srv_wait;

/* Starts / ends the thread that watches the clients of waiting requests.
 * srv_waiters_init: 0, or -1 (out of resources). */
int srv_waiters_init(struct srv *s);
void srv_waiters_free(struct srv *s);
/* The server stops: fires the cancellation of every waiting request, and
 * of every one that starts waiting from now on. */
void srv_waiters_stop(struct srv *s);
/* Whether srv_waiters_stop() was called. */
int srv_waiters_stopping(struct srv *s);

/* Takes one of the SRV_MAX_WAITERS slots of long polls and event streams,
 * with a cancellation of its own: 0, or -1 after replying 503 (or 507).
 * srv_waiter_leave() gives it back (NULL is ignored). */
int srv_waiter_enter(struct srv_req *r, struct srv_wait **w);
void srv_waiter_leave(struct srv *s, struct srv_wait *w);
/* The cancellation to hand to cj_accept() or cj_sub_set_cancel(). */
cj_cancel *srv_wait_cancel(const struct srv_wait *w);
/* Whether it was cancelled because its client hung up (else, once
 * cancelled, because the server stops). */
int srv_wait_gone(struct srv_wait *w, struct srv *s);
/* Sleeps up to `ms` or until the cancellation is fired: 0 the time
 * passed, -1 cancelled. For a wait that must pause without the library
 * (no CPU while it sleeps, no slices). */
int srv_wait_sleep(struct srv_wait *w, int64_t ms);
/* Also calls poke(arg) whenever the cancellation is fired, for a wait that
 * sleeps elsewhere than in the library (poke must not call into waiters). */
void srv_wait_set_poke(struct srv_wait *w, void (*poke)(void *arg), void *arg);

/* ---- event streams (sse.c) ---------------------------------------------- */

/* Results of a stream source's next(). */
#define SRV_SSE_QUEUED 1  /* an event was queued (srv_sse_queue()) */
#define SRV_SSE_QUIET 0   /* nothing in time: a keep-alive comment goes out */
#define SRV_SSE_END (-1)  /* the stream ends cleanly (last event, or the server stops) */
#define SRV_SSE_ERROR (-2) /* it ends with an error (the client left, a failure) */

/* A Server-Sent Events stream: its writer's state, embedded first in the
 * source's own struct. */
struct srv_sse {
	/* Waits up to `ms` for the source's next event and queues it: an
	 * SRV_SSE_* result. Called on libmicrohttpd's thread of the stream. */
	int (*next)(struct srv_sse *e, int64_t ms);
	/* Frees the source (and so e) when the stream is over. */
	void (*free)(struct srv_sse *e);
	char *buf; /* the queued text, sent from off on */
	size_t len, off;
	int64_t last_write_ms;
};

/* Queues an event "id: ID / event: EVENT / data: DATA" in place of the
 * text sent. 0, or -1 when out of memory. */
int srv_sse_queue(struct srv_sse *e, const char *id, const char *event, const char *data);
/* Replies 200 with the stream e (what it queued goes first); on failure
 * frees it (e->free) and replies with an error. */
void srv_sse_reply(struct srv_req *r, struct srv_sse *e);
/* Frees a stream that is not replied with (its text and, by e->free, its
 * source). */
void srv_sse_drop(struct srv_sse *e);

/* ---- type feeds (feed.c) ------------------------------------------------ */

struct srv_feed;

/* Start and stop the feeds of the server: srv_feeds_init 0 or -1; stop
 * ends their threads' waits; free joins and frees them (after every
 * stream ended). */
int srv_feeds_init(struct srv *s);
void srv_feeds_stop(struct srv *s);
void srv_feeds_free(struct srv *s);

/* Joins the feed of `type` as a client (made on first use; it lives as
 * long as the server). CJ_OK; CJ_INVALID (a bad type); CJ_TOO_LARGE
 * (SRV_MAX_FEEDS types streamed already); CJ_NOMEM. srv_feed_leave()
 * (NULL is ignored). */
int srv_feed_join(struct srv *s, const char *type, struct srv_feed **f);
void srv_feed_leave(struct srv_feed *f);
const char *srv_feed_type(const struct srv_feed *f);
/* Wakes the feed's readers (a srv_wait poke). */
void srv_feed_poke(void *feed);

/* Results of srv_feed_start() and srv_feed_next() besides 0 and 1. */
#define SRV_FEED_ENDED (-1)    /* cancelled or the server stops */
#define SRV_FEED_RESET (-2)    /* changes were missed: list again */

/* An event id: "EPOCH-SEQ", EPOCH naming this feed of this server run. */
#define SRV_FEED_ID_LEN 40
void srv_feed_id(const struct srv_feed *f, uint64_t seq, char out[SRV_FEED_ID_LEN]);

/* Where a client reads from: after the event id `last` (a Last-Event-ID),
 * or, NULL, from the changes journaled after the feed caught up with the
 * store (it waits for that, up to `c` being fired). 0 with *cursor;
 * SRV_FEED_RESET (`last` cannot be resumed from: *cursor is from now on);
 * SRV_FEED_ENDED. */
int srv_feed_start(struct srv_feed *f, const char *last, cj_cancel *c, uint64_t *cursor);
/* The journal number of the next change. */
uint64_t srv_feed_resume_point(struct srv_feed *f);
/* The change at *cursor (JSON text, malloc'd, in *text), waiting up to
 * timeout_ms for it, or until `c` is fired: 1 (and *cursor advances);
 * 0 nothing in time; SRV_FEED_RESET (the reader fell more than the ring
 * behind); SRV_FEED_ENDED. */
int srv_feed_next(struct srv_feed *f, uint64_t *cursor, int64_t timeout_ms, cj_cancel *c,
                  char **text);

/* Builds the JSON object of a job as GET /v1/jobs/{type}/{id} answers it. */
json_t *srv_job_json(const cj_job_info *info);

/* Reads the object `key` of a request body ("data", "error"; absent or
 * null: *text NULL) as compact text (malloc'd). 0, or -1 after replying 400. */
int srv_body_object(struct srv_req *r, json_t *body, const char *key, char **text);

/* Reads "sched_time" of a request body (absent or null: `dflt`). 0, or -1
 * after replying 400. */
int srv_body_sched(struct srv_req *r, json_t *body, int64_t dflt, int64_t *sched);

/* Parses job data text from the store into JSON (an empty object if it
 * cannot be parsed, which the store does not allow). */
json_t *srv_data_json(const char *text);

/* ---- metrics (metrics.c) ------------------------------------------------ */

int srv_metrics_init(struct srv *s);
void srv_metrics_free(struct srv *s);
void srv_hist_observe(struct srv_hist *h, int64_t us);
/* A job was accepted: observes its wait since it was due (one read of the
 * job) and remembers when, by its lock. */
void srv_job_accepted(struct srv *s, const cj_job *job);
/* The attempt of the job of `type` with `lock` ended (finished or failed):
 * observes its run time. */
void srv_run_ended(struct srv *s, const char *type, const char *lock);

#endif
