/* Job locks: random (version 4) UUIDs. */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "cj_int.h"

int cj__uuid_new(uint8_t out[CJ_UUID_LEN]) {
	size_t got = 0;
	while (got < CJ_UUID_LEN) {
		ssize_t n = getrandom(out + got, CJ_UUID_LEN - got, 0);
		if (n < 0) {
			if (errno == EINTR) continue;
			return cj__fail(CJ_STORE, "getrandom: %s", strerror(errno));
		}
		got += (size_t)n;
	}
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
