/* cj_compare: socket helpers for the hand-written protocol clients. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

static int open_socket(int port) {
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) cmp_die("socket: %s", strerror(errno));
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

void net_connect(struct net_conn *c, int port) {
	int one = 1;
	c->fd = open_socket(port);
	if (c->fd < 0) cmp_die("connect to 127.0.0.1:%d: %s", port, strerror(errno));
	if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
		cmp_die("TCP_NODELAY: %s", strerror(errno));
	c->port = port;
	c->pos = c->len = 0;
}

int net_probe(int port) {
	int fd = open_socket(port);
	if (fd < 0) return -1;
	close(fd);
	return 0;
}

void net_close(struct net_conn *c) {
	if (c->fd >= 0) close(c->fd);
	c->fd = -1;
}

void net_send(struct net_conn *c, const void *p, size_t n) {
	const char *s = p;
	while (n > 0) {
		ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) cmp_die("send to 127.0.0.1:%d: %s", c->port, strerror(errno));
		s += w;
		n -= (size_t)w;
	}
}

/* Reads more bytes after the unread ones, moving them to the front. */
static void fill(struct net_conn *c) {
	if (c->pos > 0) {
		memmove(c->buf, c->buf + c->pos, c->len - c->pos);
		c->len -= c->pos;
		c->pos = 0;
	}
	if (c->len == sizeof c->buf) cmp_die("127.0.0.1:%d: reply line too long", c->port);
	for (;;) {
		ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
		if (r < 0 && errno == EINTR) continue;
		if (r < 0) cmp_die("recv from 127.0.0.1:%d: %s", c->port, strerror(errno));
		if (r == 0) cmp_die("127.0.0.1:%d closed the connection", c->port);
		c->len += (size_t)r;
		return;
	}
}

char *net_line(struct net_conn *c) {
	size_t scan = c->pos;
	for (;;) {
		char *nl = scan < c->len ? memchr(c->buf + scan, '\n', c->len - scan) : NULL;
		if (nl) {
			char *line = c->buf + c->pos;
			size_t end = (size_t)(nl - c->buf);
			if (end > c->pos && c->buf[end - 1] == '\r') c->buf[end - 1] = 0;
			*nl = 0;
			c->pos = end + 1;
			return line;
		}
		scan = c->len - c->pos; /* relative: fill moves the unread bytes */
		fill(c);
		scan += c->pos;
	}
}

void net_read(struct net_conn *c, void *p, size_t n) {
	char *d = p;
	size_t have = c->len - c->pos;
	size_t take = have < n ? have : n;
	memcpy(d, c->buf + c->pos, take);
	c->pos += take;
	d += take;
	n -= take;
	while (n > 0) {
		ssize_t r = recv(c->fd, d, n, 0);
		if (r < 0 && errno == EINTR) continue;
		if (r < 0) cmp_die("recv from 127.0.0.1:%d: %s", c->port, strerror(errno));
		if (r == 0) cmp_die("127.0.0.1:%d closed the connection", c->port);
		d += r;
		n -= (size_t)r;
	}
}

void net_out_add(struct net_out *o, const void *p, size_t n) {
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		while (cap < o->len + n) cap *= 2;
		char *np = realloc(o->p, cap);
		if (!np) cmp_die("out of memory");
		o->p = np;
		o->cap = cap;
	}
	memcpy(o->p + o->len, p, n);
	o->len += n;
}

void net_out_printf(struct net_out *o, const char *fmt, ...) {
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof tmp) cmp_die("request too long");
	net_out_add(o, tmp, (size_t)n);
}

void net_out_free(struct net_out *o) {
	free(o->p);
	o->p = NULL;
	o->len = o->cap = 0;
}
