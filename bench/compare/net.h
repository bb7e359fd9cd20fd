/* cj_compare: a blocking TCP client connection to 127.0.0.1, with a read
 * buffer for line-based protocols (beanstalkd, Redis). */
#ifndef CMP_NET_H
#define CMP_NET_H

#include <stddef.h>

#define NET_BUF (1 << 16)

struct net_conn {
	int fd;
	int port;
	size_t pos, len; /* unread bytes are buf[pos..len) */
	char buf[NET_BUF];
};

/* A growable output buffer, to send many requests in one write. */
struct net_out {
	char *p;
	size_t len, cap;
};

/* Connects to 127.0.0.1:port (TCP_NODELAY) or dies. */
void net_connect(struct net_conn *c, int port);

/* 0 if something accepts connections on 127.0.0.1:port, else -1. */
int net_probe(int port);

void net_close(struct net_conn *c);

/* Sends all n bytes or dies. */
void net_send(struct net_conn *c, const void *p, size_t n);

/* The next line without its CRLF, NUL-terminated, in the connection's
 * buffer: valid until the next read. Dies on end of file. */
char *net_line(struct net_conn *c);

/* Reads exactly n bytes into p, or dies. */
void net_read(struct net_conn *c, void *p, size_t n);

void net_out_add(struct net_out *o, const void *p, size_t n);
void net_out_printf(struct net_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void net_out_free(struct net_out *o);

#endif
