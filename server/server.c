/*
 * The daemon: opens the store, listens (loopback by default), serves with a
 * thread per connection under fixed limits, and stops gracefully on SIGTERM
 * or SIGINT: no new connections, waiting requests answered, requests in
 * flight completed, then the store closed.
 */
#include "server.h"

#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_LISTEN "127.0.0.1:8075"
/* Stack of a connection's thread. */
#define THREAD_STACK ((size_t)1 << 20)
/* Longest wait for requests in flight when stopping, in milliseconds. */
#define STOP_GRACE_MS 10000

/* Splits "HOST:PORT" or "[V6]:PORT" and resolves it (numbers only). */
static int parse_listen(const char *spec, struct sockaddr_storage *ss, int *v6) {
	char host[128];
	const char *port;
	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');
		if (!end || end[1] != ':' || (size_t)(end - spec - 1) >= sizeof host) return -1;
		memcpy(host, spec + 1, (size_t)(end - spec - 1));
		host[end - spec - 1] = 0;
		port = end + 2;
	} else {
		const char *c = strrchr(spec, ':');
		if (!c || (size_t)(c - spec) >= sizeof host) return -1;
		memcpy(host, spec, (size_t)(c - spec));
		host[c - spec] = 0;
		port = c + 1;
	}
	if (!*host || !*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
	    atoi(port) > 65535)
		return -1;
	struct addrinfo hints = {0}, *ai;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &ai) != 0) return -1;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*v6 = ai->ai_family == AF_INET6;
	freeaddrinfo(ai);
	return 0;
}

static void sleep_ms(int ms) {
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int srv_run(const struct srv_config *cfg) {
	const char *listen = cfg->listen ? cfg->listen : DEFAULT_LISTEN;
	struct sockaddr_storage ss = {0};
	int v6 = 0;
	if (parse_listen(listen, &ss, &v6) != 0) {
		fprintf(stderr, "cjobs: serve: invalid --listen '%s' (want IP:PORT or "
		        "[IPv6]:PORT, e.g. 127.0.0.1:8075)\n", listen);
		return 2;
	}
	struct srv s = {0};
	if (cfg->token_file && srv_token_load(&s, cfg->token_file) != 0) return 2;

	/* Every thread, the library's included, inherits this mask: the
	 * signals are taken by sigwait() below only. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	int ret = 1;
	cj_options o = CJ_OPTIONS_INIT;
	o.max_data_size = SRV_DATA_LIMIT;
	if (cfg->relaxed) o.sync = CJ_SYNC_RELAXED;
	int rc = cj_open(cfg->url, &o, &s.db);
	if (rc != CJ_OK) {
		fprintf(stderr, "cjobs: serve: cannot open the store: %s (%s)\n", cj_strerror(rc),
		        cj_last_error());
		goto out_token;
	}
	if (srv_metrics_init(&s) != 0) {
		fprintf(stderr, "cjobs: serve: out of memory\n");
		goto out_db;
	}
	if (srv_waiters_init(&s) != 0) {
		fprintf(stderr, "cjobs: serve: cannot start a thread\n");
		goto out_metrics;
	}
	if (srv_feeds_init(&s) != 0) {
		fprintf(stderr, "cjobs: serve: out of memory\n");
		goto out_waiters;
	}
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
	                 MHD_USE_POLL | MHD_USE_ITC | (v6 ? MHD_USE_IPv6 : 0);
	struct MHD_Daemon *d = MHD_start_daemon(
		flags, 0, NULL, NULL, srv_on_request, &s,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)SRV_MAX_CONNECTIONS,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SRV_IDLE_TIMEOUT,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, SRV_HEADER_LIMIT,
		MHD_OPTION_THREAD_STACK_SIZE, THREAD_STACK,
		MHD_OPTION_NOTIFY_COMPLETED, srv_on_completed, &s,
		MHD_OPTION_UNESCAPE_CALLBACK, srv_keep_escaped, NULL,
		MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "cjobs: serve: cannot listen on %s (in use, or not an address "
		        "of this machine)\n", listen);
		goto out_feeds;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	char host[128];
	const char *colon = strrchr(listen, ':');
	snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
	printf("listening on http://%s:%u\n", host, di ? (unsigned)di->port : 0u);
	fflush(stdout);

	int sig;
	while (sigwait(&sigs, &sig) != 0) {}
	fprintf(stderr, "cjobs: serve: stopping (signal %d)\n", sig);

	/* Stop taking connections, answer the waiting, finish the rest. */
	srv_waiters_stop(&s);
	srv_feeds_stop(&s);
	MHD_socket lfd = MHD_quiesce_daemon(d);
	if (lfd != MHD_INVALID_SOCKET) close(lfd);
	for (int waited = 0; atomic_load(&s.active) > 0 && waited < STOP_GRACE_MS; waited += 20)
		sleep_ms(20);
	MHD_stop_daemon(d);
	ret = 0;
out_feeds:
	srv_feeds_free(&s);
out_waiters:
	srv_waiters_free(&s);
out_metrics:
	srv_metrics_free(&s);
out_db:
	cj_close(s.db);
out_token:
	free(s.token);
	return ret;
}
