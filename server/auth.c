/*
 * Who may use the server: with a token file, every request carries
 * "Authorization: Bearer TOKEN" (compared in constant time); without one,
 * only loopback clients are served.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOKEN_MAX 4096

int srv_token_load(struct srv *s, const char *path) {
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "cjobs: serve: cannot open the token file '%s': %s\n", path,
		        strerror(errno));
		return -1;
	}
	char *buf = malloc(TOKEN_MAX + 1);
	size_t n = 0;
	ssize_t k = 0;
	while (buf && n <= TOKEN_MAX && (k = read(fd, buf + n, TOKEN_MAX + 1 - n)) > 0)
		n += (size_t)k;
	int err = errno;
	close(fd);
	if (!buf || k < 0) {
		fprintf(stderr, "cjobs: serve: cannot read the token file '%s': %s\n", path,
		        buf ? strerror(err) : "out of memory");
		free(buf);
		return -1;
	}
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
	             buf[n - 1] == '\t'))
		n--;
	buf[n] = 0;
	if (n == 0 || n > TOKEN_MAX || strlen(buf) != n) {
		fprintf(stderr, "cjobs: serve: the token file '%s' must hold one token of 1 to "
		        "%d bytes\n", path, TOKEN_MAX);
		free(buf);
		return -1;
	}
	s->token = buf;
	s->token_len = n;
	return 0;
}

/* Compares in time that depends only on the lengths, never on where the
 * texts differ. */
static int same_secret(const char *a, size_t alen, const char *b, size_t blen) {
	unsigned char d = alen != blen;
	for (size_t i = 0; i < blen; i++) d |= (unsigned char)(a[i % (alen ? alen : 1)] ^ b[i]);
	return d == 0 && alen;
}

static int is_loopback(const struct sockaddr *sa) {
	if (!sa) return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return 1;
		return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
	}
	return 0;
}

int srv_auth_check(struct srv_req *r) {
	struct srv *s = r->srv;
	if (!s->token) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		return ci && is_loopback(ci->client_addr) ? 0 : 403;
	}
	const char *h = srv_header(r, "Authorization");
	static const char bearer[] = "Bearer ";
	if (!h || strncmp(h, bearer, sizeof bearer - 1) != 0) return 401;
	h += sizeof bearer - 1;
	return same_secret(h, strlen(h), s->token, s->token_len) ? 0 : 401;
}
