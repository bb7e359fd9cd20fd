/* cj_compare: beanstalkd, through its text protocol on a plain socket.
 *
 * Lifecycle: put / reserve-with-timeout / delete, in the default tube, one
 * request in flight. Durability is the server's (compare.sh: -b DIR -f 0
 * fsyncs the binlog before a put or delete is answered; without -b the
 * jobs live in memory only). A reservation is not logged by beanstalkd.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "net.h"
#include "util.h"

#define PRI 1024  /* beanstalkd's usual default priority */
#define TTR 3600  /* seconds: a reserved job never times out in a run */
#define FILL 1000 /* puts per pipelined write in preload */

struct bs {
	struct net_conn c;
};

static void *bs_open(const struct cmp_conf *conf) {
	struct bs *b = cmp_xmalloc(sizeof *b);
	net_connect(&b->c, conf->port);
	return b;
}

static void bs_close(void *h) {
	struct bs *b = h;
	net_close(&b->c);
	free(b);
}

/* A put request for one job, appended to o. */
static void put_request(struct net_out *o, const char *data) {
	size_t len = strlen(data);
	net_out_printf(o, "put %d 0 %d %zu\r\n", PRI, TTR, len);
	net_out_add(o, data, len);
	net_out_add(o, "\r\n", 2);
}

static void put_reply(struct bs *b) {
	char *line = net_line(&b->c);
	if (strncmp(line, "INSERTED ", 9) != 0) cmp_die("beanstalkd put: %s", line);
}

static void bs_enqueue(void *h, const struct cmp_new *jobs, size_t n) {
	struct bs *b = h;
	struct net_out o = {0};
	for (size_t i = 0; i < n; i++) { /* n is 1: one request in flight */
		put_request(&o, jobs[i].data);
		net_send(&b->c, o.p, o.len);
		o.len = 0;
		put_reply(b);
	}
	net_out_free(&o);
}

static size_t bs_claim(void *h, size_t max, int timeout_ms, struct cmp_job *out) {
	struct bs *b = h;
	char req[64];
	(void)max; /* one job per request */
	/* the protocol counts whole seconds: round up */
	int secs = (timeout_ms + 999) / 1000;
	for (;;) {
		int n = snprintf(req, sizeof req, "reserve-with-timeout %d\r\n", secs);
		net_send(&b->c, req, (size_t)n);
		char *line = net_line(&b->c);
		if (strcmp(line, "TIMED_OUT") == 0) return 0;
		if (strcmp(line, "DEADLINE_SOON") == 0) continue; /* not with a TTR of an hour */
		uint64_t id;
		size_t len;
		if (sscanf(line, "RESERVED %" SCNu64 " %zu", &id, &len) != 2)
			cmp_die("beanstalkd reserve-with-timeout: %s", line);
		char *data = cmp_xmalloc(len + 2);
		net_read(&b->c, data, len + 2);
		if (data[len] != '\r' || data[len + 1] != '\n') cmp_die("beanstalkd: job body without CRLF");
		data[len] = 0;
		memset(&out[0], 0, sizeof out[0]);
		out[0].num = id;
		snprintf(out[0].id, sizeof out[0].id, "%" PRIu64, id);
		out[0].data = data;
		return 1;
	}
}

static size_t bs_complete(void *h, struct cmp_job *jobs, size_t n) {
	struct bs *b = h;
	char req[64];
	for (size_t i = 0; i < n; i++) { /* n is 1 */
		int len = snprintf(req, sizeof req, "delete %" PRIu64 "\r\n", jobs[i].num);
		net_send(&b->c, req, (size_t)len);
		char *line = net_line(&b->c);
		if (strcmp(line, "DELETED") != 0) cmp_die("beanstalkd delete %s: %s", jobs[i].id, line);
		jobs[i].ok = 1;
		free(jobs[i].data);
		jobs[i].data = NULL;
	}
	return n;
}

/* The number after "key: " in a stats reply. */
static long long stat_value(const char *yaml, const char *key) {
	const char *p = strstr(yaml, key);
	if (!p) cmp_die("beanstalkd stats: no %s", key);
	return atoll(p + strlen(key));
}

/* A run needs a fresh server (compare.sh starts one per run). */
static void bs_prepare(struct cmp_conf *conf) {
	void *h = bs_open(conf);
	struct bs *b = h;
	net_send(&b->c, "stats\r\n", 7);
	char *line = net_line(&b->c);
	size_t len;
	if (sscanf(line, "OK %zu", &len) != 1) cmp_die("beanstalkd stats: %s", line);
	char *yaml = cmp_xmalloc(len + 3);
	net_read(&b->c, yaml, len + 2);
	yaml[len] = 0;
	long long jobs = stat_value(yaml, "\ncurrent-jobs-ready: ") +
	                 stat_value(yaml, "\ncurrent-jobs-reserved: ") +
	                 stat_value(yaml, "\ncurrent-jobs-delayed: ") +
	                 stat_value(yaml, "\ncurrent-jobs-buried: ");
	if (jobs != 0) cmp_die("beanstalkd on port %d holds %lld jobs: not a fresh server", conf->port, jobs);
	free(yaml);
	bs_close(h);
}

static void bs_preload(const struct cmp_conf *conf, long n) {
	struct bs *b = bs_open(conf);
	struct net_out o = {0};
	struct cmp_new j;
	int64_t t0 = cmp_now_ns(), last = t0;
	for (long i = 0; i < n; i += FILL) {
		long end = i + FILL < n ? i + FILL : n;
		o.len = 0;
		for (long k = i; k < end; k++) {
			cmp_job_new(&j, 0, k, 0);
			put_request(&o, j.data);
		}
		net_send(&b->c, o.p, o.len);
		for (long k = i; k < end; k++) put_reply(b);
		if (cmp_now_ns() - last > 10 * (int64_t)1000000000) {
			last = cmp_now_ns();
			cmp_note("preloaded %ld of %ld jobs", end, n);
		}
	}
	net_out_free(&o);
	bs_close(b);
}

static void bs_nothing(const struct cmp_conf *conf) {
	(void)conf;
}

static void bs_teardown(struct cmp_conf *conf) {
	(void)conf; /* compare.sh stops the server */
}

const struct cmp_backend cmp_beanstalkd = {
	.name = "beanstalkd",
	.prepare = bs_prepare,
	.preload = bs_preload,
	.settle = bs_nothing,
	.teardown = bs_teardown,
	.open = bs_open,
	.enqueue = bs_enqueue,
	.claim = bs_claim,
	.complete = bs_complete,
	.close = bs_close,
};
