/* cj_compare: Redis, through RESP on a plain socket.
 *
 * Lifecycle (the reliable-queue pattern):
 *   enqueue:  MULTI, HSET job:<id> data <json>, LPUSH queue <id>, EXEC
 *             (one job, its four commands written in one go)
 *   claim:    BLMOVE queue processing RIGHT LEFT <timeout>, then
 *             HGET job:<id> data
 *   complete: MULTI, LREM processing 1 <id>, DEL job:<id>, EXEC
 * One request in flight. Durability is the server's (compare.sh:
 * appendfsync always or everysec).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "net.h"
#include "util.h"

#define FILL 1000 /* jobs per pipelined write in preload */

struct rd {
	struct net_conn c;
	struct net_out o;
};

/* One reply. Bulk strings are copied to str (malloc'd, NUL-terminated);
 * arrays give their count in num, their elements follow. */
struct reply {
	char type; /* + - : $ * */
	long long num;
	char *str; /* +, -, $ (NULL for a nil bulk string) */
};

/* Appends one command of argc arguments to o. */
static void command(struct net_out *o, int argc, const char *const *argv) {
	net_out_printf(o, "*%d\r\n", argc);
	for (int i = 0; i < argc; i++) {
		size_t len = strlen(argv[i]);
		net_out_printf(o, "$%zu\r\n", len);
		net_out_add(o, argv[i], len);
		net_out_add(o, "\r\n", 2);
	}
}

static void read_reply(struct rd *r, struct reply *out) {
	char *line = net_line(&r->c);
	out->type = line[0];
	out->num = 0;
	out->str = NULL;
	switch (line[0]) {
	case '+':
		out->str = strdup(line + 1);
		if (!out->str) cmp_die("out of memory");
		return;
	case '-':
		cmp_die("redis: %s", line + 1);
	case ':':
	case '*':
		out->num = atoll(line + 1);
		return;
	case '$':
		out->num = atoll(line + 1);
		if (out->num < 0) return; /* nil */
		out->str = cmp_xmalloc((size_t)out->num + 2);
		net_read(&r->c, out->str, (size_t)out->num + 2);
		out->str[out->num] = 0;
		return;
	default:
		cmp_die("redis: unexpected reply %.40s", line);
	}
}

/* Reads a reply that must be of the given type; frees its string. */
static long long expect(struct rd *r, char type, const char *what) {
	struct reply rp;
	read_reply(r, &rp);
	if (rp.type != type) cmp_die("redis %s: reply of type %c, expected %c", what, rp.type, type);
	free(rp.str);
	return rp.num;
}

static void expect_status(struct rd *r, const char *status, const char *what) {
	struct reply rp;
	read_reply(r, &rp);
	if (rp.type != '+' || strcmp(rp.str, status) != 0)
		cmp_die("redis %s: expected +%s, got %c%s", what, status, rp.type, rp.str ? rp.str : "");
	free(rp.str);
}

static void *rd_open(const struct cmp_conf *conf) {
	struct rd *r = cmp_xcalloc(1, sizeof *r);
	net_connect(&r->c, conf->port);
	return r;
}

static void rd_close(void *h) {
	struct rd *r = h;
	net_close(&r->c);
	net_out_free(&r->o);
	free(r);
}

static void send_out(struct rd *r) {
	net_send(&r->c, r->o.p, r->o.len);
	r->o.len = 0;
}

/* MULTI, two commands, EXEC, in one write; the two commands' integer
 * replies go to out. */
static void multi2(struct rd *r, int n1, const char *const *c1, int n2, const char *const *c2,
                   long long out[2]) {
	static const char *const multi[] = {"MULTI"}, *const exec[] = {"EXEC"};
	command(&r->o, 1, multi);
	command(&r->o, n1, c1);
	command(&r->o, n2, c2);
	command(&r->o, 1, exec);
	send_out(r);
	expect_status(r, "OK", "MULTI");
	expect_status(r, "QUEUED", c1[0]);
	expect_status(r, "QUEUED", c2[0]);
	if (expect(r, '*', "EXEC") != 2) cmp_die("redis EXEC: not 2 replies");
	out[0] = expect(r, ':', c1[0]);
	out[1] = expect(r, ':', c2[0]);
}

static void rd_enqueue(void *h, const struct cmp_new *jobs, size_t n) {
	struct rd *r = h;
	char key[CMP_ID_MAX + 8];
	for (size_t i = 0; i < n; i++) { /* n is 1: one request in flight */
		snprintf(key, sizeof key, "job:%s", jobs[i].id);
		const char *hset[] = {"HSET", key, "data", jobs[i].data};
		const char *lpush[] = {"LPUSH", "queue", jobs[i].id};
		long long v[2];
		multi2(r, 4, hset, 3, lpush, v);
		if (v[0] != 1) cmp_die("redis HSET %s: the job existed", key);
		if (v[1] < 1) cmp_die("redis LPUSH: empty list");
	}
}

static size_t rd_claim(void *h, size_t max, int timeout_ms, struct cmp_job *out) {
	struct rd *r = h;
	struct reply rp;
	char secs[32], key[CMP_ID_MAX + 8];
	(void)max; /* one job per request */
	if (timeout_ms > 0) {
		/* Redis takes fractional seconds; 0 would mean forever */
		snprintf(secs, sizeof secs, "%d.%03d", timeout_ms / 1000, timeout_ms % 1000);
		const char *blmove[] = {"BLMOVE", "queue", "processing", "RIGHT", "LEFT", secs};
		command(&r->o, 6, blmove);
	} else {
		const char *lmove[] = {"LMOVE", "queue", "processing", "RIGHT", "LEFT"};
		command(&r->o, 5, lmove);
	}
	send_out(r);
	read_reply(r, &rp);
	if ((rp.type == '$' || rp.type == '*') && rp.num < 0) return 0; /* timed out */
	if (rp.type != '$') cmp_die("redis BLMOVE: reply of type %c", rp.type);
	if (rp.num >= CMP_ID_MAX) cmp_die("redis BLMOVE: id too long");
	memset(&out[0], 0, sizeof out[0]);
	memcpy(out[0].id, rp.str, (size_t)rp.num + 1);
	free(rp.str);

	snprintf(key, sizeof key, "job:%s", out[0].id);
	const char *hget[] = {"HGET", key, "data"};
	command(&r->o, 3, hget);
	send_out(r);
	read_reply(r, &rp);
	if (rp.type != '$' || !rp.str) cmp_die("redis HGET %s: no data", key);
	out[0].data = rp.str;
	return 1;
}

static size_t rd_complete(void *h, struct cmp_job *jobs, size_t n) {
	struct rd *r = h;
	char key[CMP_ID_MAX + 8];
	for (size_t i = 0; i < n; i++) { /* n is 1 */
		snprintf(key, sizeof key, "job:%s", jobs[i].id);
		const char *lrem[] = {"LREM", "processing", "1", jobs[i].id};
		const char *del[] = {"DEL", key};
		long long v[2];
		multi2(r, 4, lrem, 2, del, v);
		if (v[0] != 1) cmp_die("redis LREM %s: not in processing", jobs[i].id);
		if (v[1] != 1) cmp_die("redis DEL %s: no such key", key);
		jobs[i].ok = 1;
		free(jobs[i].data);
		jobs[i].data = NULL;
	}
	return n;
}

/* A run needs a fresh server (compare.sh starts one per run). */
static void rd_prepare(struct cmp_conf *conf) {
	struct rd *r = rd_open(conf);
	const char *dbsize[] = {"DBSIZE"};
	command(&r->o, 1, dbsize);
	send_out(r);
	long long keys = expect(r, ':', "DBSIZE");
	if (keys != 0) cmp_die("redis on port %d holds %lld keys: not a fresh server", conf->port, keys);
	rd_close(r);
}

/* Pipelined, without MULTI: per batch, one HSET per job and one LPUSH of
 * all the batch's ids, in job order (LPUSH a b c leaves a at the tail,
 * where BLMOVE ... RIGHT takes from). */
static void rd_preload(const struct cmp_conf *conf, long n) {
	struct rd *r = rd_open(conf);
	struct cmp_new *jobs = cmp_xcalloc(FILL, sizeof *jobs);
	const char **lpush = cmp_xcalloc(FILL + 2, sizeof *lpush);
	char key[CMP_ID_MAX + 8];
	int64_t last = cmp_now_ns();
	for (long i = 0; i < n; i += FILL) {
		long m = (i + FILL < n ? i + FILL : n) - i;
		lpush[0] = "LPUSH";
		lpush[1] = "queue";
		for (long k = 0; k < m; k++) {
			cmp_job_new(&jobs[k], 0, i + k, 0);
			snprintf(key, sizeof key, "job:%s", jobs[k].id);
			const char *hset[] = {"HSET", key, "data", jobs[k].data};
			command(&r->o, 4, hset);
			lpush[2 + k] = jobs[k].id;
		}
		command(&r->o, (int)m + 2, lpush);
		send_out(r);
		for (long k = 0; k < m; k++)
			if (expect(r, ':', "HSET") != 1) cmp_die("redis preload: job existed");
		expect(r, ':', "LPUSH");
		if (cmp_now_ns() - last > 10 * (int64_t)1000000000) {
			last = cmp_now_ns();
			cmp_note("preloaded %ld of %ld jobs", i + m, n);
		}
	}
	free(jobs);
	free(lpush);
	rd_close(r);
}

/* The value of "field:" in an INFO reply, or -1. */
static long info_field(const char *info, const char *field) {
	const char *p = strstr(info, field);
	return p ? atol(p + strlen(field)) : -1;
}

/* Waits until no AOF rewrite is running or scheduled: a big fill may
 * start one, which should not run into the measured phase. */
static void rd_settle(const struct cmp_conf *conf) {
	struct rd *r = rd_open(conf);
	int64_t t0 = cmp_now_ns();
	for (;;) {
		const char *info[] = {"INFO", "persistence"};
		command(&r->o, 2, info);
		send_out(r);
		struct reply rp;
		read_reply(r, &rp);
		if (rp.type != '$' || !rp.str) cmp_die("redis INFO: no reply");
		long running = info_field(rp.str, "aof_rewrite_in_progress:");
		long scheduled = info_field(rp.str, "aof_rewrite_scheduled:");
		free(rp.str);
		if (running == 0 && scheduled == 0) break;
		if (cmp_now_ns() - t0 > 600 * (int64_t)1000000000) cmp_die("redis: AOF rewrite never ended");
		cmp_sleep_us(100000);
	}
	rd_close(r);
}

static void rd_teardown(struct cmp_conf *conf) {
	(void)conf; /* compare.sh stops the server */
}

const struct cmp_backend cmp_redis = {
	.name = "redis",
	.prepare = rd_prepare,
	.preload = rd_preload,
	.settle = rd_settle,
	.teardown = rd_teardown,
	.open = rd_open,
	.enqueue = rd_enqueue,
	.claim = rd_claim,
	.complete = rd_complete,
	.close = rd_close,
};
