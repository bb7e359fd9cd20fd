/* cj_compare: couchjobs over HTTP, through `cjobs serve` in front of an
 * embedded (LMDB) store: what a worker in any language gets.
 *
 * One job per request on a keep-alive HTTP/1.1 connection per process,
 * one request in flight, as the peers' clients: PUT /v1/jobs/cmp/ID to
 * enqueue, POST /v1/types/cmp/accept (a long poll) to claim, POST
 * .../finish with the lock to complete. The server commits each request in
 * its own transaction and answers once the commit is durable (durable
 * mode) or with CJ_SYNC_RELAXED (`cjobs serve --relaxed`, relaxed mode).
 *
 * prepare makes the store as the embedded couchjobs column does and starts
 * the server on a port the kernel picks (read back from its first line);
 * preload fills the store directly through the library, not measured;
 * teardown stops the server (SIGTERM, a graceful stop) and removes the
 * store.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "net.h"
#include "util.h"

#define TYPE "cmp"

/* The server of this run (the parent's; workers inherit the port only). */
static pid_t server_pid;

struct hc {
	struct net_conn c;
	struct net_out o;
};

static void *http_open(const struct cmp_conf *conf) {
	struct hc *h = cmp_xcalloc(1, sizeof *h);
	net_connect(&h->c, conf->port);
	return h;
}

static void http_close(void *p) {
	struct hc *h = p;
	net_close(&h->c);
	net_out_free(&h->o);
	free(h);
}

/* Sends one request with a JSON body and reads the answer: its status, and
 * its body (malloc'd, NUL-terminated) in *body. */
static int request(struct hc *h, const char *method, const char *path, const char *json,
                   char **body) {
	size_t blen = strlen(json);
	h->o.len = 0;
	net_out_printf(&h->o,
	               "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
	               "Content-Length: %zu\r\n\r\n",
	               method, path, blen);
	net_out_add(&h->o, json, blen);
	net_send(&h->c, h->o.p, h->o.len);
	int status;
	char *line = net_line(&h->c);
	if (sscanf(line, "HTTP/1.%*d %d", &status) != 1) cmp_die("HTTP: bad status line: %s", line);
	size_t len = 0;
	for (;;) {
		line = net_line(&h->c);
		if (!*line) break;
		if (strncasecmp(line, "Content-Length:", 15) == 0) len = strtoul(line + 15, NULL, 10);
		else if (strncasecmp(line, "Connection: close", 17) == 0)
			cmp_die("HTTP: the server closes the connection (%s %s: %d)", method, path, status);
	}
	char *b = cmp_xmalloc(len + 1);
	net_read(&h->c, b, len);
	b[len] = 0;
	*body = b;
	return status;
}

/* The string value of "key" in a flat JSON answer (no escapes in it: ids,
 * locks), copied into out. */
static void json_str(const char *body, const char *key, char *out, size_t cap) {
	char pat[32];
	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	const char *p = strstr(body, pat);
	if (!p) cmp_die("HTTP: no \"%s\" in %s", key, body);
	p += strlen(pat);
	const char *e = strchr(p, '"');
	if (!e || (size_t)(e - p) >= cap) cmp_die("HTTP: bad \"%s\" in %s", key, body);
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = 0;
}

static void http_enqueue(void *p, const struct cmp_new *jobs, size_t n) {
	struct hc *h = p;
	char path[96], json[CMP_DATA_MAX + 16], *body;
	for (size_t i = 0; i < n; i++) { /* n is 1: one request in flight */
		snprintf(path, sizeof path, "/v1/jobs/" TYPE "/%s", jobs[i].id);
		snprintf(json, sizeof json, "{\"data\":%s}", jobs[i].data);
		int st = request(h, "PUT", path, json, &body);
		if (st != 200) cmp_die("HTTP PUT %s: %d %s", path, st, body);
		free(body);
	}
}

static size_t http_claim(void *p, size_t max, int timeout_ms, struct cmp_job *out) {
	struct hc *h = p;
	char json[48], *body;
	(void)max; /* one job per request */
	snprintf(json, sizeof json, "{\"timeout_ms\":%d}", timeout_ms);
	int st = request(h, "POST", "/v1/types/" TYPE "/accept", json, &body);
	if (st == 204) {
		free(body);
		return 0;
	}
	if (st != 200) cmp_die("HTTP accept: %d %s", st, body);
	memset(&out[0], 0, sizeof out[0]);
	json_str(body, "id", out[0].id, sizeof out[0].id);
	char *lock = cmp_xmalloc(40);
	json_str(body, "lock", lock, 40);
	out[0].handle = lock;
	const char *d = strstr(body, "\"data\":");
	if (!d) cmp_die("HTTP accept: no data in %s", body);
	out[0].data = strdup(d + 7); /* the object and the answer's closing brace */
	if (!out[0].data) cmp_die("out of memory");
	free(body);
	return 1;
}

static size_t http_complete(void *p, struct cmp_job *jobs, size_t n) {
	struct hc *h = p;
	char path[96], json[64], *body;
	size_t done = 0;
	for (size_t i = 0; i < n; i++) { /* n is 1 */
		snprintf(path, sizeof path, "/v1/jobs/" TYPE "/%s/finish", jobs[i].id);
		snprintf(json, sizeof json, "{\"lock\":\"%s\"}", (char *)jobs[i].handle);
		int st = request(h, "POST", path, json, &body);
		/* 409: the job is no longer this processor's (it cannot happen with
		 * an hour's timeout; the drain's count would then fail the run) */
		if (st == 200) {
			jobs[i].ok = 1;
			done++;
		} else if (st != 409) {
			cmp_die("HTTP finish %s: %d %s", jobs[i].id, st, body);
		}
		free(body);
		free(jobs[i].handle);
		free(jobs[i].data);
		jobs[i].handle = NULL;
		jobs[i].data = NULL;
	}
	return done;
}

/* Starts `cjobs serve` on the store and reads its port back. */
static void start_server(struct cmp_conf *conf) {
	int fds[2];
	if (pipe(fds) != 0) cmp_die("pipe: %s", strerror(errno));
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) cmp_die("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent) _exit(1);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		const char *argv[] = {conf->cjobs, "--db", conf->store, "serve", "--listen",
		                      "127.0.0.1:0", conf->durable ? NULL : "--relaxed", NULL};
		execv(conf->cjobs, (char *const *)argv);
		fprintf(stderr, "cj_compare: cannot run %s: %s\n", conf->cjobs, strerror(errno));
		_exit(1);
	}
	close(fds[1]);
	server_pid = pid;
	FILE *f = fdopen(fds[0], "r");
	char line[256];
	if (!f || !fgets(line, sizeof line, f)) cmp_die("%s serve did not start", conf->cjobs);
	fclose(f);
	const char *colon = strrchr(line, ':');
	if (strncmp(line, "listening on http://", 20) != 0 || !colon)
		cmp_die("%s serve: unexpected first line: %s", conf->cjobs, line);
	conf->port = atoi(colon + 1);
}

static void http_prepare(struct cmp_conf *conf) {
	if (!conf->cjobs) cmp_die("%s needs --cjobs PATH", conf->system);
	cmp_couchjobs.prepare(conf);
	start_server(conf);
}

static void http_preload(const struct cmp_conf *conf, long n) {
	cmp_couchjobs.preload(conf, n);
}

static void http_settle(const struct cmp_conf *conf) {
	(void)conf;
}

static void http_teardown(struct cmp_conf *conf) {
	if (server_pid > 0) {
		int st;
		kill(server_pid, SIGTERM);
		while (waitpid(server_pid, &st, 0) < 0 && errno == EINTR) {}
		server_pid = 0;
	}
	cmp_couchjobs.teardown(conf);
}

const struct cmp_backend cmp_http = {
	.name = "couchjobs over HTTP",
	.prepare = http_prepare,
	.preload = http_preload,
	.settle = http_settle,
	.teardown = http_teardown,
	.open = http_open,
	.enqueue = http_enqueue,
	.claim = http_claim,
	.complete = http_complete,
	.close = http_close,
};
