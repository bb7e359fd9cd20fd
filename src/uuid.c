/* Job locks: random (version 4) UUIDs, from a small per-thread pool of
 * getrandom() bytes (one system call per POOL bytes instead of one per
 * lock). A forked child must not hand out its parent's pool again: every
 * fork bumps a generation in the child and a pool of an older generation
 * is thrown away. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>

#include "cj_int.h"

#define POOL 256

static atomic_uint fork_gen = 1;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void) { atomic_fetch_add(&fork_gen, 1); }
static void register_atfork(void) { pthread_atfork(NULL, NULL, on_fork_child); }

static _Thread_local struct {
	uint8_t buf[POOL];
	size_t left;   /* unused bytes at the end of buf */
	unsigned gen;  /* fork_gen when filled; 0: never */
} pool;

static int fill(uint8_t *out, size_t len) {
	size_t got = 0;
	while (got < len) {
		ssize_t n = getrandom(out + got, len - got, 0);
		if (n < 0) {
			if (errno == EINTR) continue;
			return cj__fail(CJ_STORE, "getrandom: %s", strerror(errno));
		}
		got += (size_t)n;
	}
	return CJ_OK;
}

int cj__random(void *out, size_t len) {
	if (len > POOL) return fill(out, len);
	pthread_once(&atfork_once, register_atfork);
	unsigned gen = atomic_load(&fork_gen);
	if (pool.gen != gen || pool.left < len) {
		int rc = fill(pool.buf, POOL);
		if (rc) {
			pool.left = 0;
			return rc;
		}
		pool.left = POOL;
		pool.gen = gen;
	}
	uint8_t *p = pool.buf + POOL - pool.left;
	memcpy(out, p, len);
	memset(p, 0, len); /* used bytes do not stay in memory */
	pool.left -= len;
	return CJ_OK;
}

int cj__uuid_new(uint8_t out[CJ_UUID_LEN]) {
	int rc = cj__random(out, CJ_UUID_LEN);
	if (rc) return rc;
	out[6] = (uint8_t)((out[6] & 0x0F) | 0x40);
	out[8] = (uint8_t)((out[8] & 0x3F) | 0x80);
	return CJ_OK;
}

void cj__uuid_format(const uint8_t u[CJ_UUID_LEN], char out[CJ_LOCK_STRLEN + 1]) {
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < CJ_UUID_LEN; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
		out[o++] = hex[u[i] >> 4];
		out[o++] = hex[u[i] & 15];
	}
	out[o] = 0;
}

static int hexval(char c) {
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

int cj__uuid_parse(const char *s, uint8_t out[CJ_UUID_LEN]) {
	if (strlen(s) != CJ_LOCK_STRLEN) return -1;
	size_t o = 0;
	for (size_t i = 0; i < CJ_LOCK_STRLEN;) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-') return -1;
			i++;
			continue;
		}
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);
		if (hi < 0 || lo < 0) return -1;
		out[o++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	return 0;
}
