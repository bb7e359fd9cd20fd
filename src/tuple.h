/*
 * FoundationDB tuple-layer encoding: the subset couchjobs needs.
 *
 * Encoded tuples sort, byte by byte (memcmp, shorter first), in the same
 * order as the tuples they encode, element by element:
 *
 *   code  element                 encoding after the code byte
 *   0x00  null                    nothing
 *   0x01  byte string             bytes, each 0x00 written 0x00 0xFF; then 0x00
 *   0x02  unicode (UTF-8) string  as 0x01
 *   0x0C..0x13  negative integer  |n| in 8..1 bytes, big-endian, ones' complement
 *   0x14  zero                    nothing
 *   0x15..0x1C  positive integer  n in 1..8 bytes, big-endian, no leading zeros
 *   0x26  false                   nothing
 *   0x27  true                    nothing
 *   0x30  UUID                    16 bytes
 *   0x33  versionstamp            12 bytes: 8 commit version (BE), 2 order in
 *                                 the commit (BE), 2 user version (BE)
 *
 * Integers use the fewest bytes that hold them (INT64_MIN included: it
 * takes 8 bytes under code 0x0C). The decoder refuses anything else,
 * including truncated input and unknown codes, and never reads past the end.
 */
#ifndef CJ_TUPLE_H
#define CJ_TUPLE_H

#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer. Appends that fail to allocate set oom and are
 * ignored afterwards, so a chain of appends is checked once at its end. */
typedef struct cj_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
	int oom;
} cj_buf;

#define CJ_BUF_INIT {NULL, 0, 0, 0}

void cj__buf_free(cj_buf *b);
void cj__buf_reset(cj_buf *b); /* len = 0, oom = 0; keeps memory */
void cj__buf_add(cj_buf *b, const void *p, size_t n);

enum cj_tup_kind {
	CJ_TUP_NULL = 0x00,
	CJ_TUP_BYTES = 0x01,
	CJ_TUP_STRING = 0x02,
	CJ_TUP_INT = 0x14, /* every integer code decodes to this kind */
	CJ_TUP_FALSE = 0x26,
	CJ_TUP_TRUE = 0x27,
	CJ_TUP_UUID = 0x30,
	CJ_TUP_VS = 0x33
};

#define CJ_VS_LEN 12
#define CJ_UUID_LEN 16

/* Encoding: append one element to b. */
void cj__tup_null(cj_buf *b);
void cj__tup_bytes(cj_buf *b, const void *p, size_t n);
void cj__tup_str(cj_buf *b, const char *s, size_t n);
void cj__tup_int(cj_buf *b, int64_t v);
void cj__tup_bool(cj_buf *b, int v);
void cj__tup_uuid(cj_buf *b, const uint8_t uuid[CJ_UUID_LEN]);
void cj__tup_vs(cj_buf *b, const uint8_t vs[CJ_VS_LEN]);

/* One decoded element. For BYTES and STRING, raw/rawlen is the encoded
 * body (escapes included, terminator excluded) and len the decoded length;
 * cj__tup_copy() writes the decoded bytes. For UUID and VS, raw points at
 * the 16 or 12 bytes. For INT, i holds the value. */
typedef struct cj_tup_item {
	enum cj_tup_kind kind;
	const uint8_t *raw;
	size_t rawlen;
	size_t len;
	int64_t i;
} cj_tup_item;

typedef struct cj_tup_reader {
	const uint8_t *p;
	const uint8_t *end;
} cj_tup_reader;

void cj__tup_reader_init(cj_tup_reader *r, const void *p, size_t n);

/* Decodes the next element: 1 and *it filled; 0 at the end of input;
 * -1 on malformed input (r is then left unchanged). */
int cj__tup_next(cj_tup_reader *r, cj_tup_item *it);

/* Writes it->len decoded bytes of a BYTES or STRING item to dst (which must
 * hold it->len bytes; no terminator is added). */
void cj__tup_copy(const cj_tup_item *it, void *dst);

/* Returns 1 if the BYTES/STRING item equals p[0..n), else 0. */
int cj__tup_eq(const cj_tup_item *it, const void *p, size_t n);

/* Appends a key that sorts after every key starting with b's current
 * contents (which must be whole elements) and before any other greater key (FDB's strinc is not needed:
 * tuple encodings never contain a bare 0xFF byte after a complete element,
 * so appending 0xFF bounds a prefix range). */
void cj__tup_range_end(cj_buf *b);

#endif
