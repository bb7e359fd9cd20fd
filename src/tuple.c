/*
 * FoundationDB tuple-layer encoding: the subset described in tuple.h.
 */
#include <string.h>

#include "cj_int.h"

/* ---- growable buffer ---------------------------------------------------- */

void cj__buf_free(cj_buf *b) {
	cj_free(b->p);
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
	b->oom = 0;
}

void cj__buf_reset(cj_buf *b) {
	b->len = 0;
	b->oom = 0;
}

/* Makes room for n more bytes; 0 on success, -1 (and oom set) on failure. */
static int buf_reserve(cj_buf *b, size_t n) {
	if (b->oom) return -1;
	if (b->cap - b->len >= n) return 0;
	if (n > SIZE_MAX - b->len) {
		b->oom = 1;
		return -1;
	}
	size_t need = b->len + n;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need) {
		if (cap > SIZE_MAX / 2) {
			cap = need;
			break;
		}
		cap *= 2;
	}
	uint8_t *p = cj__realloc(b->p, cap);
	if (!p) {
		b->oom = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void cj__buf_add(cj_buf *b, const void *p, size_t n) {
	if (n == 0 || buf_reserve(b, n) != 0) return;
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void buf_byte(cj_buf *b, uint8_t c) {
	if (buf_reserve(b, 1) != 0) return;
	b->p[b->len++] = c;
}

/* ---- encoding ----------------------------------------------------------- */

#define CODE_INT_ZERO 0x14

void cj__tup_null(cj_buf *b) { buf_byte(b, CJ_TUP_NULL); }

/* The body of a byte or unicode string: each 0x00 becomes 0x00 0xFF; then
 * the 0x00 terminator. */
static void put_string(cj_buf *b, uint8_t code, const uint8_t *s, size_t n) {
	static const uint8_t esc[2] = {0x00, 0xFF};
	buf_byte(b, code);
	while (n > 0) {
		const uint8_t *z = memchr(s, 0x00, n);
		if (!z) {
			cj__buf_add(b, s, n);
			break;
		}
		size_t k = (size_t)(z - s);
		cj__buf_add(b, s, k);
		cj__buf_add(b, esc, 2);
		s += k + 1;
		n -= k + 1;
	}
	buf_byte(b, 0x00);
}

void cj__tup_bytes(cj_buf *b, const void *p, size_t n) {
	put_string(b, CJ_TUP_BYTES, p, n);
}

void cj__tup_str(cj_buf *b, const char *s, size_t n) {
	put_string(b, CJ_TUP_STRING, (const uint8_t *)s, n);
}

/* Number of bytes (0..8) needed to hold m with no leading zero byte. */
static int mag_len(uint64_t m) {
	int k = 0;
	while (m) {
		k++;
		m >>= 8;
	}
	return k;
}

void cj__tup_int(cj_buf *b, int64_t v) {
	uint8_t out[9];
	uint64_t m, w;
	int neg = v < 0;
	/* |v| computed in unsigned arithmetic: defined for INT64_MIN too */
	m = neg ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	int k = mag_len(m);
	if (k == 0) {
		buf_byte(b, CODE_INT_ZERO);
		return;
	}
	w = neg ? ~m : m; /* ones' complement; only the low k bytes are kept */
	out[0] = (uint8_t)(neg ? CODE_INT_ZERO - k : CODE_INT_ZERO + k);
	for (int i = 0; i < k; i++)
		out[1 + i] = (uint8_t)(w >> (8 * (k - 1 - i)));
	cj__buf_add(b, out, (size_t)k + 1);
}

void cj__tup_bool(cj_buf *b, int v) {
	buf_byte(b, v ? CJ_TUP_TRUE : CJ_TUP_FALSE);
}

void cj__tup_uuid(cj_buf *b, const uint8_t uuid[CJ_UUID_LEN]) {
	buf_byte(b, CJ_TUP_UUID);
	cj__buf_add(b, uuid, CJ_UUID_LEN);
}

void cj__tup_vs(cj_buf *b, const uint8_t vs[CJ_VS_LEN]) {
	buf_byte(b, CJ_TUP_VS);
	cj__buf_add(b, vs, CJ_VS_LEN);
}

void cj__tup_range_end(cj_buf *b) { buf_byte(b, 0xFF); }

/* ---- decoding ----------------------------------------------------------- */

void cj__tup_reader_init(cj_tup_reader *r, const void *p, size_t n) {
	r->p = p;
	r->end = r->p ? r->p + n : r->p;
}

/* Scans a string body starting at s (just past the code byte). On success
 * sets *body_end to the terminator, *dlen to the decoded length and returns
 * 0; returns -1 when there is no terminator before end. */
static int scan_string(const uint8_t *s, const uint8_t *end,
                       const uint8_t **body_end, size_t *dlen) {
	size_t n = 0;
	for (;;) {
		const uint8_t *z = memchr(s, 0x00, (size_t)(end - s));
		if (!z) return -1;
		n += (size_t)(z - s);
		if (z + 1 < end && z[1] == 0xFF) {
			n++; /* escaped zero byte */
			s = z + 2;
			continue;
		}
		*body_end = z;
		*dlen = n;
		return 0;
	}
}

int cj__tup_next(cj_tup_reader *r, cj_tup_item *it) {
	const uint8_t *p = r->p, *end = r->end;
	cj_tup_item out;
	if (p == end) return 0;
	if (!p || p > end) return -1;
	size_t avail = (size_t)(end - p) - 1; /* bytes after the code */
	uint8_t code = *p++;
	out.raw = NULL;
	out.rawlen = 0;
	out.len = 0;
	out.i = 0;
	switch (code) {
	case CJ_TUP_NULL:
	case CJ_TUP_FALSE:
	case CJ_TUP_TRUE:
		out.kind = (enum cj_tup_kind)code;
		break;
	case CJ_TUP_BYTES:
	case CJ_TUP_STRING: {
		const uint8_t *be;
		size_t dlen;
		if (scan_string(p, end, &be, &dlen) != 0) return -1;
		out.kind = (enum cj_tup_kind)code;
		out.raw = p;
		out.rawlen = (size_t)(be - p);
		out.len = dlen;
		p = be + 1;
		break;
	}
	case CJ_TUP_UUID:
	case CJ_TUP_VS: {
		size_t n = code == CJ_TUP_UUID ? CJ_UUID_LEN : CJ_VS_LEN;
		if (avail < n) return -1;
		out.kind = (enum cj_tup_kind)code;
		out.raw = p;
		out.rawlen = n;
		out.len = n;
		p += n;
		break;
	}
	default: {
		if (code < CODE_INT_ZERO - 8 || code > CODE_INT_ZERO + 8) return -1;
		int neg = code < CODE_INT_ZERO;
		size_t k = (size_t)(neg ? CODE_INT_ZERO - code : code - CODE_INT_ZERO);
		if (avail < k) return -1;
		uint64_t m = 0;
		for (size_t j = 0; j < k; j++) m = (m << 8) | p[j];
		if (neg && k > 0) m = ~m & (UINT64_MAX >> (64 - 8 * k));
		/* the fewest bytes: no leading zero byte of the magnitude */
		if ((size_t)mag_len(m) != k) return -1;
		out.kind = CJ_TUP_INT;
		if (!neg) {
			if (m > (uint64_t)INT64_MAX) return -1;
			out.i = (int64_t)m;
		} else {
			if (m > (uint64_t)INT64_MAX + 1) return -1;
			/* -m without overflow: INT64_MIN when m == 2^63 */
			out.i = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
		}
		p += k;
		break;
	}
	}
	r->p = p;
	*it = out;
	return 1;
}

void cj__tup_copy(const cj_tup_item *it, void *dst) {
	if (it->kind == CJ_TUP_UUID || it->kind == CJ_TUP_VS) {
		memcpy(dst, it->raw, it->len);
		return;
	}
	if ((it->kind != CJ_TUP_BYTES && it->kind != CJ_TUP_STRING) ||
	    it->rawlen == 0)
		return;
	const uint8_t *s = it->raw, *end = it->raw + it->rawlen;
	uint8_t *d = dst;
	while (s < end) {
		const uint8_t *z = memchr(s, 0x00, (size_t)(end - s));
		size_t k = z ? (size_t)(z - s) : (size_t)(end - s);
		memcpy(d, s, k);
		d += k;
		if (!z) break;
		*d++ = 0x00;
		s = z + 2; /* skip the 0xFF of the escape */
	}
}

int cj__tup_eq(const cj_tup_item *it, const void *p, size_t n) {
	if (it->kind == CJ_TUP_UUID || it->kind == CJ_TUP_VS)
		return it->len == n && memcmp(it->raw, p, n) == 0;
	if (it->kind != CJ_TUP_BYTES && it->kind != CJ_TUP_STRING) return 0;
	if (it->len != n) return 0;
	if (n == 0) return 1;
	const uint8_t *s = it->raw, *end = it->raw + it->rawlen;
	const uint8_t *q = p;
	while (s < end) {
		const uint8_t *z = memchr(s, 0x00, (size_t)(end - s));
		size_t k = z ? (size_t)(z - s) : (size_t)(end - s);
		if (memcmp(q, s, k) != 0) return 0;
		q += k;
		if (!z) break;
		if (*q++ != 0x00) return 0;
		s = z + 2;
	}
	return 1;
}
