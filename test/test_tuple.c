/* White-box tests of the tuple codec (src/tuple.c). */
#include "testlib.h"

#include "tuple.h"

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_state;

static void rng_seed(uint64_t s) { rng_state = s ? s : 0x9E3779B97F4A7C15ull; }

static uint64_t rng(void) { /* xorshift64* */
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static size_t rng_below(size_t n) { return (size_t)(rng() % n); }

/* memcmp order, a proper prefix first: the order of keys in the store. */
static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
	size_t n = an < bn ? an : bn;
	int c = n ? memcmp(a, b, n) : 0;
	if (c) return c < 0 ? -1 : 1;
	return an < bn ? -1 : an > bn ? 1 : 0;
}

static int sign(int c) { return c < 0 ? -1 : c > 0 ? 1 : 0; }

/* Copies n bytes into a fresh allocation of exactly n bytes, so that
 * AddressSanitizer catches a read past the end. */
static uint8_t *exact_copy(const void *p, size_t n) {
	uint8_t *q = malloc(n ? n : 1);
	CHECK(q != NULL);
	if (n) memcpy(q, p, n);
	return q;
}

static void check_bytes(const cj_buf *b, const uint8_t *want, size_t n) {
	CHECK(!b->oom);
	if (b->len != n || (n && memcmp(b->p, want, n) != 0)) {
		char got[512], exp[512];
		size_t g = 0, e = 0;
		for (size_t i = 0; i < b->len && g + 4 < sizeof got; i++)
			g += (size_t)snprintf(got + g, sizeof got - g, "%02X ", b->p[i]);
		for (size_t i = 0; i < n && e + 4 < sizeof exp; i++)
			e += (size_t)snprintf(exp + e, sizeof exp - e, "%02X ", want[i]);
		got[g] = exp[e] = 0;
		t_fail(__FILE__, __LINE__, "encoded %s, want %s", got, exp);
	}
}

/* ---- a model of tuples -------------------------------------------------- */

#define MAX_ELEMS 5
#define MAX_STR 10

typedef struct elem {
	int kind; /* enum cj_tup_kind */
	int64_t i;
	uint8_t s[CJ_UUID_LEN];
	size_t n;
} elem;

typedef struct tuple {
	elem e[MAX_ELEMS];
	size_t n;
} tuple;

static void enc_elem(cj_buf *b, const elem *e) {
	switch (e->kind) {
	case CJ_TUP_NULL: cj__tup_null(b); break;
	case CJ_TUP_BYTES: cj__tup_bytes(b, e->s, e->n); break;
	case CJ_TUP_STRING: cj__tup_str(b, (const char *)e->s, e->n); break;
	case CJ_TUP_INT: cj__tup_int(b, e->i); break;
	case CJ_TUP_FALSE: cj__tup_bool(b, 0); break;
	case CJ_TUP_TRUE: cj__tup_bool(b, 1); break;
	case CJ_TUP_UUID: cj__tup_uuid(b, e->s); break;
	case CJ_TUP_VS: cj__tup_vs(b, e->s); break;
	default: t_fail(__FILE__, __LINE__, "bad kind %d", e->kind);
	}
}

static void enc_tuple(cj_buf *b, const tuple *t) {
	for (size_t i = 0; i < t->n; i++) enc_elem(b, &t->e[i]);
}

/* The natural order: kinds by type code, then values. */
static int elem_cmp(const elem *a, const elem *b) {
	if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
	switch (a->kind) {
	case CJ_TUP_INT: return a->i < b->i ? -1 : a->i > b->i;
	case CJ_TUP_BYTES:
	case CJ_TUP_STRING:
	case CJ_TUP_UUID:
	case CJ_TUP_VS: return key_cmp(a->s, a->n, b->s, b->n);
	default: return 0;
	}
}

static int tuple_cmp(const tuple *a, const tuple *b) {
	for (size_t i = 0; i < a->n && i < b->n; i++) {
		int c = elem_cmp(&a->e[i], &b->e[i]);
		if (c) return c;
	}
	return a->n < b->n ? -1 : a->n > b->n ? 1 : 0;
}

static const int64_t interesting_ints[] = {
	0, 1, -1, 2, -2, 127, -127, 128, -128, 255, -255, 256, -256, 257, -257,
	65535, -65535, 65536, -65536, 0xFFFFFF, -0xFFFFFF, 0x1000000, -0x1000000,
	INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1,
	(int64_t)0x00FFFFFFFFFFFFFFll, -(int64_t)0x00FFFFFFFFFFFFFFll,
	(int64_t)0x0100000000000000ll, -(int64_t)0x0100000000000000ll,
};
#define N_INTERESTING (sizeof interesting_ints / sizeof interesting_ints[0])

static int64_t rand_int(void) {
	switch (rng_below(4)) {
	case 0: return interesting_ints[rng_below(N_INTERESTING)];
	case 1: return (int64_t)rng_below(7) - 3;
	default: {
		/* a random magnitude of a random byte width, either sign */
		int bits = (int)rng_below(64);
		uint64_t m = bits ? rng() >> (64 - bits) : 0;
		int64_t v = (int64_t)(m >> 1);
		return rng_below(2) ? v : -v - (int64_t)rng_below(2);
	}
	}
}

/* Bytes from a small alphabet so that equal prefixes and escapes are
 * frequent. */
static void rand_str(uint8_t *s, size_t n) {
	static const uint8_t alpha[] = {0x00, 0x01, 'a', 'b', 0xFE, 0xFF};
	for (size_t i = 0; i < n; i++) s[i] = alpha[rng_below(sizeof alpha)];
}

static void rand_elem(elem *e) {
	static const int kinds[] = {CJ_TUP_NULL,  CJ_TUP_BYTES, CJ_TUP_STRING,
	                            CJ_TUP_INT,   CJ_TUP_INT,   CJ_TUP_FALSE,
	                            CJ_TUP_TRUE,  CJ_TUP_UUID,  CJ_TUP_VS,
	                            CJ_TUP_BYTES, CJ_TUP_STRING};
	memset(e, 0, sizeof *e);
	e->kind = kinds[rng_below(sizeof kinds / sizeof kinds[0])];
	switch (e->kind) {
	case CJ_TUP_INT: e->i = rand_int(); break;
	case CJ_TUP_BYTES:
	case CJ_TUP_STRING:
		e->n = rng_below(MAX_STR + 1);
		if (rng_below(3) == 0) e->n = rng_below(3);
		rand_str(e->s, e->n);
		break;
	case CJ_TUP_UUID:
	case CJ_TUP_VS:
		e->n = e->kind == CJ_TUP_UUID ? CJ_UUID_LEN : CJ_VS_LEN;
		/* mostly zeros, so that values often share long prefixes */
		for (size_t i = 0; i < e->n; i++)
			e->s[i] = rng_below(4) ? 0 : (uint8_t)rng();
		break;
	default: break;
	}
}

static void rand_tuple(tuple *t, size_t max) {
	t->n = rng_below(max + 1);
	for (size_t i = 0; i < t->n; i++) rand_elem(&t->e[i]);
}

/* Decodes p[0..n) as exactly t, reading from an exact-size copy. */
static void check_decodes_to(const uint8_t *p, size_t n, const tuple *t) {
	uint8_t *q = exact_copy(p, n);
	cj_tup_reader r;
	cj_tup_item it;
	cj__tup_reader_init(&r, q, n);
	for (size_t i = 0; i < t->n; i++) {
		const elem *e = &t->e[i];
		CHECK_INT(cj__tup_next(&r, &it), 1);
		CHECK_INT(it.kind, e->kind);
		switch (e->kind) {
		case CJ_TUP_INT: CHECK_INT(it.i, e->i); break;
		case CJ_TUP_BYTES:
		case CJ_TUP_STRING:
		case CJ_TUP_UUID:
		case CJ_TUP_VS: {
			CHECK_INT(it.len, e->n);
			CHECK(cj__tup_eq(&it, e->s, e->n));
			uint8_t *d = malloc(e->n ? e->n : 1);
			CHECK(d != NULL);
			cj__tup_copy(&it, d);
			CHECK(e->n == 0 || memcmp(d, e->s, e->n) == 0);
			free(d);
			if (e->n > 0) {
				uint8_t alt[CJ_UUID_LEN];
				memcpy(alt, e->s, e->n);
				alt[e->n - 1] ^= 0x01;
				CHECK(!cj__tup_eq(&it, alt, e->n));
				CHECK(!cj__tup_eq(&it, e->s, e->n - 1));
			}
			break;
		}
		default: break;
		}
	}
	CHECK_INT(cj__tup_next(&r, &it), 0);
	CHECK(r.p == r.end);
	free(q);
}

/* ---- cases -------------------------------------------------------------- */

#define ENC(b, want) check_bytes((b), (const uint8_t *)(want), sizeof(want) - 1)

/* Vectors from the FoundationDB tuple-layer specification. */
TEST(known_vectors) {
	cj_buf b = CJ_BUF_INIT;
	struct {
		int64_t v;
		const char *enc;
		size_t n;
	} ints[] = {
		{0, "\x14", 1},
		{1, "\x15\x01", 2},
		{-1, "\x13\xFE", 2},
		{255, "\x15\xFF", 2},
		{-255, "\x13\x00", 2},
		{256, "\x16\x01\x00", 3},
		{-256, "\x12\xFE\xFF", 3},
		{65535, "\x16\xFF\xFF", 3},
		{65536, "\x17\x01\x00\x00", 4},
		{-65536, "\x11\xFE\xFF\xFF", 4},
		{5551212, "\x17\x54\xB4\x6C", 4},
		{-5551212, "\x11\xAB\x4B\x93", 4},
		{INT64_MAX, "\x1C\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF", 9},
		{INT64_MIN, "\x0C\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF", 9},
		{INT64_MIN + 1, "\x0C\x80\x00\x00\x00\x00\x00\x00\x00", 9},
		{-(int64_t)0x00FFFFFFFFFFFFFFll, "\x0D\x00\x00\x00\x00\x00\x00\x00", 8},
		{-(int64_t)0x0100000000000000ll, "\x0C\xFE\xFF\xFF\xFF\xFF\xFF\xFF\xFF", 9},
	};
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
		cj__buf_reset(&b);
		cj__tup_int(&b, ints[i].v);
		check_bytes(&b, (const uint8_t *)ints[i].enc, ints[i].n);
	}

	cj__buf_reset(&b);
	cj__tup_null(&b);
	ENC(&b, "\x00");

	cj__buf_reset(&b);
	cj__tup_bytes(&b, "foo\x00" "bar", 7);
	ENC(&b, "\x01" "foo\x00\xFF" "bar\x00");

	cj__buf_reset(&b);
	cj__tup_str(&b, "F\xC3\x94O\x00" "bar", 8);
	ENC(&b, "\x02" "F\xC3\x94O\x00\xFF" "bar\x00");

	cj__buf_reset(&b);
	cj__tup_bytes(&b, NULL, 0);
	ENC(&b, "\x01\x00");

	cj__buf_reset(&b);
	cj__tup_str(&b, "", 0);
	ENC(&b, "\x02\x00");

	cj__buf_reset(&b);
	cj__tup_bytes(&b, "\x00\x00", 2);
	ENC(&b, "\x01\x00\xFF\x00\xFF\x00");

	cj__buf_reset(&b);
	cj__tup_bytes(&b, "\xFF", 1);
	ENC(&b, "\x01\xFF\x00");

	cj__buf_reset(&b);
	cj__tup_bool(&b, 0);
	cj__tup_bool(&b, 1);
	cj__tup_bool(&b, 42);
	ENC(&b, "\x26\x27\x27");

	static const uint8_t uuid[CJ_UUID_LEN] = {
		0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF,
		0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10};
	cj__buf_reset(&b);
	cj__tup_uuid(&b, uuid);
	ENC(&b, "\x30\x01\x23\x45\x67\x89\xAB\xCD\xEF\xFE\xDC\xBA\x98\x76\x54\x32\x10");

	static const uint8_t vs[CJ_VS_LEN] = {0, 0, 0, 0, 0, 0, 0, 7, 0, 1, 0, 2};
	cj__buf_reset(&b);
	cj__tup_vs(&b, vs);
	ENC(&b, "\x33\x00\x00\x00\x00\x00\x00\x00\x07\x00\x01\x00\x02");

	/* a tuple is the concatenation of its elements */
	cj__buf_reset(&b);
	cj__tup_str(&b, "jobs", 4);
	cj__tup_int(&b, -1);
	cj__tup_null(&b);
	cj__tup_bytes(&b, "\x00", 1);
	cj__tup_int(&b, 300);
	ENC(&b, "\x02jobs\x00\x13\xFE\x00\x01\x00\xFF\x00\x16\x01\x2C");

	cj__tup_range_end(&b);
	ENC(&b, "\x02jobs\x00\x13\xFE\x00\x01\x00\xFF\x00\x16\x01\x2C\xFF");
	cj__buf_free(&b);
}

TEST(round_trip) {
	tuple t;
	elem *e;
	cj_buf b = CJ_BUF_INIT;

	/* every kind, alone and together */
	memset(&t, 0, sizeof t);
	e = &t.e[t.n++];
	e->kind = CJ_TUP_NULL;
	e = &t.e[t.n++];
	e->kind = CJ_TUP_BYTES;
	memcpy(e->s, "\x00\xFF\x00\x00\xFF" "a", 6);
	e->n = 6;
	e = &t.e[t.n++];
	e->kind = CJ_TUP_STRING;
	memcpy(e->s, "h\xC3\xA9llo\x00", 7);
	e->n = 7;
	e = &t.e[t.n++];
	e->kind = CJ_TUP_INT;
	e->i = INT64_MIN;
	e = &t.e[t.n++];
	e->kind = CJ_TUP_TRUE;
	for (size_t i = 0; i < t.n; i++) {
		tuple one = {{t.e[i]}, 1};
		cj__buf_reset(&b);
		enc_tuple(&b, &one);
		check_decodes_to(b.p, b.len, &one);
	}
	cj__buf_reset(&b);
	enc_tuple(&b, &t);
	check_decodes_to(b.p, b.len, &t);

	memset(&t, 0, sizeof t);
	e = &t.e[t.n++];
	e->kind = CJ_TUP_FALSE;
	e = &t.e[t.n++];
	e->kind = CJ_TUP_UUID;
	e->n = CJ_UUID_LEN;
	memset(e->s, 0x00, CJ_UUID_LEN); /* zero bytes are not escaped */
	e->s[3] = 0xFF;
	e = &t.e[t.n++];
	e->kind = CJ_TUP_VS;
	e->n = CJ_VS_LEN;
	memset(e->s, 0xFF, CJ_VS_LEN);
	e->s[0] = 0x00;
	e = &t.e[t.n++];
	e->kind = CJ_TUP_BYTES; /* empty */
	e = &t.e[t.n++];
	e->kind = CJ_TUP_STRING; /* empty */
	cj__buf_reset(&b);
	enc_tuple(&b, &t);
	check_decodes_to(b.p, b.len, &t);

	/* the empty tuple */
	t.n = 0;
	cj__buf_reset(&b);
	enc_tuple(&b, &t);
	CHECK_INT(b.len, 0);
	check_decodes_to((const uint8_t *)"", 0, &t);

	/* every integer of interest, and every one-byte string */
	for (size_t i = 0; i < N_INTERESTING; i++) {
		tuple one = {{{CJ_TUP_INT, interesting_ints[i], {0}, 0}}, 1};
		cj__buf_reset(&b);
		enc_tuple(&b, &one);
		check_decodes_to(b.p, b.len, &one);
	}
	for (int c = 0; c < 256; c++) {
		tuple one = {{{CJ_TUP_BYTES, 0, {(uint8_t)c}, 1}}, 1};
		cj__buf_reset(&b);
		enc_tuple(&b, &one);
		CHECK_INT(b.len, c == 0 ? 4 : 3);
		check_decodes_to(b.p, b.len, &one);
	}

	/* random tuples */
	rng_seed(1);
	for (int k = 0; k < 5000; k++) {
		rand_tuple(&t, MAX_ELEMS);
		cj__buf_reset(&b);
		enc_tuple(&b, &t);
		check_decodes_to(b.p, b.len, &t);
	}

	/* a long string makes the buffer grow */
	size_t n = 100000;
	uint8_t *big = malloc(n), *back = malloc(n);
	CHECK(big && back);
	for (size_t i = 0; i < n; i++) big[i] = (uint8_t)(i * 7);
	cj__buf_reset(&b);
	cj__tup_bytes(&b, big, n);
	CHECK(!b.oom);
	CHECK_INT(b.len, 1 + n + (n + 255) / 256 + 1);
	cj_tup_reader r;
	cj_tup_item it;
	cj__tup_reader_init(&r, b.p, b.len);
	CHECK_INT(cj__tup_next(&r, &it), 1);
	CHECK_INT(it.kind, CJ_TUP_BYTES);
	CHECK_INT(it.len, n);
	CHECK_INT(it.rawlen, b.len - 2);
	CHECK(it.raw == b.p + 1);
	CHECK(cj__tup_eq(&it, big, n));
	cj__tup_copy(&it, back);
	CHECK(memcmp(big, back, n) == 0);
	CHECK_INT(cj__tup_next(&r, &it), 0);
	free(big);
	free(back);
	cj__buf_free(&b);
}

static int cmp_i64(const void *a, const void *b) {
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

TEST(int_order) {
	int64_t v[4096];
	size_t n = 0;
	for (size_t i = 0; i < N_INTERESTING; i++) v[n++] = interesting_ints[i];
	for (int bit = 0; bit < 63; bit++) {
		int64_t p = (int64_t)1 << bit;
		v[n++] = p;
		v[n++] = p - 1;
		v[n++] = p + 1;
		v[n++] = -p;
		v[n++] = -p - 1;
		v[n++] = -p + 1;
	}
	v[n++] = INT64_MIN;
	v[n++] = INT64_MIN + 1;
	v[n++] = INT64_MAX;
	v[n++] = INT64_MAX - 1;
	rng_seed(2);
	while (n < sizeof v / sizeof v[0]) v[n++] = rand_int();
	qsort(v, n, sizeof v[0], cmp_i64);

	cj_buf prev = CJ_BUF_INIT, cur = CJ_BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		cj__buf_reset(&cur);
		cj__tup_int(&cur, v[i]);
		CHECK(!cur.oom);
		/* the fewest bytes */
		uint64_t m = v[i] < 0 ? (uint64_t)0 - (uint64_t)v[i] : (uint64_t)v[i];
		size_t k = 0;
		while (m) {
			k++;
			m >>= 8;
		}
		CHECK_INT(cur.len, 1 + k);
		CHECK_INT(cur.p[0], v[i] < 0 ? 0x14 - (int)k : 0x14 + (int)k);
		tuple one = {{{CJ_TUP_INT, v[i], {0}, 0}}, 1};
		check_decodes_to(cur.p, cur.len, &one);
		if (i > 0) {
			int c = key_cmp(prev.p, prev.len, cur.p, cur.len);
			if (v[i - 1] == v[i]) CHECK_INT(c, 0);
			else if (c >= 0)
				t_fail(__FILE__, __LINE__, "%" PRId64 " does not sort before %" PRId64,
				       v[i - 1], v[i]);
		}
		cj_buf tmp = prev;
		prev = cur;
		cur = tmp;
	}
	cj__buf_free(&prev);
	cj__buf_free(&cur);
}

TEST(string_order) {
	enum { N = 600 };
	static elem s[N];
	static cj_buf enc[N];
	rng_seed(3);
	for (size_t i = 0; i < N; i++) {
		memset(&s[i], 0, sizeof s[i]);
		s[i].kind = i % 2 ? CJ_TUP_BYTES : CJ_TUP_STRING;
		s[i].n = rng_below(MAX_STR + 1);
		rand_str(s[i].s, s[i].n);
		if (i < 8) { /* prefixes of each other, and embedded zeros */
			static const char *fixed[] = {"", "a", "a\x00", "a\x00\x00", ("a\x00" "a"),
			                              "a\x01", "a\xFF", "\xFF\xFF"};
			static const size_t fixed_n[] = {0, 1, 2, 3, 3, 2, 2, 2};
			s[i].kind = CJ_TUP_BYTES;
			s[i].n = fixed_n[i];
			memcpy(s[i].s, fixed[i], fixed_n[i]);
		}
		enc[i] = (cj_buf)CJ_BUF_INIT;
		enc_elem(&enc[i], &s[i]);
		CHECK(!enc[i].oom);
	}
	for (size_t i = 0; i < N; i++)
		for (size_t j = 0; j < N; j++) {
			int want = sign(elem_cmp(&s[i], &s[j]));
			int got = key_cmp(enc[i].p, enc[i].len, enc[j].p, enc[j].len);
			if (want != got)
				t_fail(__FILE__, __LINE__, "strings %zu and %zu: order %d, want %d",
				       i, j, got, want);
		}
	for (size_t i = 0; i < N; i++) cj__buf_free(&enc[i]);
}

TEST(tuple_order) {
	cj_buf a = CJ_BUF_INIT, b = CJ_BUF_INIT, c = CJ_BUF_INIT;
	/* ("a", 5) < ("a", 6) < ("b", 0) */
	cj__tup_str(&a, "a", 1);
	cj__tup_int(&a, 5);
	cj__tup_str(&b, "a", 1);
	cj__tup_int(&b, 6);
	cj__tup_str(&c, "b", 1);
	cj__tup_int(&c, 0);
	CHECK(key_cmp(a.p, a.len, b.p, b.len) < 0);
	CHECK(key_cmp(b.p, b.len, c.p, c.len) < 0);
	/* ("a", 5) < ("a", 5, anything) < ("a", 6) */
	cj__buf_reset(&c);
	cj__tup_str(&c, "a", 1);
	cj__tup_int(&c, 5);
	cj__tup_null(&c);
	CHECK(key_cmp(a.p, a.len, c.p, c.len) < 0);
	CHECK(key_cmp(c.p, c.len, b.p, b.len) < 0);
	/* ("a") < ("a\0") even when followed by more elements */
	cj__buf_reset(&a);
	cj__buf_reset(&b);
	cj__tup_str(&a, "a", 1);
	cj__tup_vs(&a, (const uint8_t *)"\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF");
	cj__tup_str(&b, "a\x00", 2);
	CHECK(key_cmp(a.p, a.len, b.p, b.len) < 0);
	cj__buf_free(&a);
	cj__buf_free(&b);
	cj__buf_free(&c);

	/* random tuples, every pair */
	enum { N = 500 };
	static tuple t[N];
	static cj_buf enc[N];
	rng_seed(4);
	for (size_t i = 0; i < N; i++) {
		if (i > 0 && rng_below(3) == 0) { /* an extension or a sibling */
			t[i] = t[rng_below(i)];
			if (t[i].n < MAX_ELEMS && rng_below(2)) rand_elem(&t[i].e[t[i].n++]);
			else if (t[i].n > 0) rand_elem(&t[i].e[t[i].n - 1]);
		} else {
			rand_tuple(&t[i], MAX_ELEMS);
		}
		enc[i] = (cj_buf)CJ_BUF_INIT;
		enc_tuple(&enc[i], &t[i]);
		CHECK(!enc[i].oom);
	}
	for (size_t i = 0; i < N; i++)
		for (size_t j = 0; j < N; j++) {
			int want = sign(tuple_cmp(&t[i], &t[j]));
			int got = key_cmp(enc[i].p, enc[i].len, enc[j].p, enc[j].len);
			if (want != got)
				t_fail(__FILE__, __LINE__, "tuples %zu and %zu: order %d, want %d",
				       i, j, got, want);
		}
	for (size_t i = 0; i < N; i++) cj__buf_free(&enc[i]);
}

/* Decodes p[0..n) from an exact-size copy; returns 1 when every element
 * decodes, -1 when one is refused (checking the reader did not move). */
static int decode_all(const uint8_t *p, size_t n) {
	uint8_t *q = exact_copy(p, n);
	cj_tup_reader r;
	cj_tup_item it;
	int rc;
	cj__tup_reader_init(&r, q, n);
	while ((rc = cj__tup_next(&r, &it)) == 1) CHECK(r.p <= r.end);
	if (rc == -1) {
		cj_tup_reader before = r;
		CHECK_INT(cj__tup_next(&r, &it), -1);
		CHECK(r.p == before.p && r.end == before.end);
	}
	free(q);
	return rc == 0 ? 1 : rc;
}

/* What decoding the first n bytes of elem e's encoding enc[0..len) gives. */
static int cut_expect(const elem *e, const uint8_t *enc, size_t len, size_t n) {
	if (n == len) return 1;
	/* inside a string body a 0x00 starts an escape (0x00 0xFF); cut after
	 * it, it reads as the terminator */
	if ((e->kind == CJ_TUP_BYTES || e->kind == CJ_TUP_STRING) && n >= 2 &&
	    enc[n - 1] == 0x00)
		return 1;
	return -1;
}

#define REFUSED(lit) CHECK_INT(decode_all((const uint8_t *)(lit), sizeof(lit) - 1), -1)
#define ACCEPTED(lit) CHECK_INT(decode_all((const uint8_t *)(lit), sizeof(lit) - 1), 1)

TEST(malformed) {
	cj_buf b = CJ_BUF_INIT;

	/* every single element, cut at every length, is refused, except a
	 * string cut just after the 0x00 of an escaped zero byte: that is a
	 * complete, shorter string */
	rng_seed(5);
	for (int k = 0; k < 3000; k++) {
		elem e;
		rand_elem(&e);
		if (k < (int)N_INTERESTING) {
			e.kind = CJ_TUP_INT;
			e.i = interesting_ints[k];
		}
		cj__buf_reset(&b);
		enc_elem(&b, &e);
		for (size_t n = 1; n <= b.len; n++)
			CHECK_INT(decode_all(b.p, n), cut_expect(&e, b.p, b.len, n));
	}
	/* a tuple cut anywhere: accepted at element boundaries and where its
	 * last, partial element is accepted alone */
	for (int k = 0; k < 1000; k++) {
		tuple t;
		rand_tuple(&t, MAX_ELEMS);
		size_t bounds[MAX_ELEMS + 1];
		cj__buf_reset(&b);
		bounds[0] = 0;
		for (size_t i = 0; i < t.n; i++) {
			enc_elem(&b, &t.e[i]);
			bounds[i + 1] = b.len;
		}
		for (size_t i = 0; i < t.n; i++) {
			const uint8_t *el = b.p + bounds[i];
			size_t elen = bounds[i + 1] - bounds[i];
			if (i == 0) CHECK_INT(decode_all(b.p, 0), 1);
			for (size_t n = 1; n <= elen; n++)
				CHECK_INT(decode_all(b.p, bounds[i] + n),
				          cut_expect(&t.e[i], el, elen, n));
		}
	}

	/* unknown type codes */
	for (int c = 0; c < 256; c++) {
		int known = c == 0x00 || c == 0x01 || c == 0x02 || (c >= 0x0C && c <= 0x1C) ||
		            c == 0x26 || c == 0x27 || c == 0x30 || c == 0x33;
		uint8_t in[1 + CJ_UUID_LEN + 1];
		memset(in, 0x01, sizeof in);
		in[0] = (uint8_t)c;
		in[sizeof in - 1] = 0x00; /* terminates a string */
		if (!known) {
			CHECK_INT(decode_all(in, 1), -1);
			CHECK_INT(decode_all(in, sizeof in), -1);
		}
		/* after a valid element too: the valid one is read first */
		uint8_t two[3] = {0x14, (uint8_t)c, 0x00};
		if (!known) {
			cj_tup_reader r;
			cj_tup_item it;
			uint8_t *q = exact_copy(two, 2);
			cj__tup_reader_init(&r, q, 2);
			CHECK_INT(cj__tup_next(&r, &it), 1);
			CHECK_INT(it.kind, CJ_TUP_INT);
			CHECK_INT(it.i, 0);
			CHECK_INT(cj__tup_next(&r, &it), -1);
			CHECK(r.p == q + 1);
			free(q);
		}
	}
	REFUSED("\xFF");
	REFUSED("\x03\x00");
	REFUSED("\x05");
	REFUSED("\x0B\x00\x00\x00\x00\x00\x00\x00\x00\x01");
	REFUSED("\x1D\x01\x00\x00\x00\x00\x00\x00\x00\x00");

	/* strings: terminator and escapes */
	ACCEPTED("\x01\x00");
	ACCEPTED("\x01\x00\xFF\x00");
	ACCEPTED("\x01\x00\x00"); /* "" then null */
	ACCEPTED("\x01" "a\x00\x14");
	REFUSED("\x01");
	REFUSED("\x02");
	REFUSED("\x01" "abc");
	REFUSED("\x01\x00\xFF");        /* an escaped zero, then no terminator */
	REFUSED("\x01\x00\xFF\x00\xFF"); /* two of them */
	REFUSED("\x01\xFF");
	REFUSED("\x01" "a\x00\xFE");  /* "a" then the unknown code 0xFE */
	REFUSED("\x02" "a\x00" "b");  /* "a" then the unknown code 'b' */
	{
		/* "a\0" cut after the escape's 0x00 reads as "a" */
		static const uint8_t in[] = {0x01, 'a', 0x00};
		cj_tup_reader r;
		cj_tup_item it;
		uint8_t *q = exact_copy(in, sizeof in);
		cj__tup_reader_init(&r, q, sizeof in);
		CHECK_INT(cj__tup_next(&r, &it), 1);
		CHECK(cj__tup_eq(&it, "a", 1));
		CHECK_INT(cj__tup_next(&r, &it), 0);
		free(q);
	}
	{
		/* "a" ends at the first 0x00 not followed by 0xFF */
		static const uint8_t in[] = {0x01, 'a', 0x00, 0xFF, 'b', 0x00, 0x00};
		cj_tup_reader r;
		cj_tup_item it;
		uint8_t *q = exact_copy(in, sizeof in);
		cj__tup_reader_init(&r, q, sizeof in);
		CHECK_INT(cj__tup_next(&r, &it), 1);
		CHECK_INT(it.kind, CJ_TUP_BYTES);
		CHECK_INT(it.len, 3);
		CHECK_INT(it.rawlen, 4);
		CHECK(cj__tup_eq(&it, "a\x00" "b", 3));
		CHECK_INT(cj__tup_next(&r, &it), 1);
		CHECK_INT(it.kind, CJ_TUP_NULL);
		CHECK_INT(cj__tup_next(&r, &it), 0);
		free(q);
	}

	/* integers: truncated, not the fewest bytes, out of range */
	REFUSED("\x15");
	REFUSED("\x16\x01");
	REFUSED("\x1C\x01\x00\x00\x00\x00\x00\x00");
	REFUSED("\x13");
	REFUSED("\x0C\x7F\xFF\xFF\xFF\xFF\xFF\xFF");
	REFUSED("\x15\x00");           /* zero in one byte */
	REFUSED("\x16\x00\x01");       /* 1 in two bytes */
	REFUSED("\x16\x00\xFF");
	REFUSED("\x1C\x00\xFF\xFF\xFF\xFF\xFF\xFF\xFF");
	REFUSED("\x13\xFF");           /* -0 */
	REFUSED("\x12\xFF\xFE");       /* -1 in two bytes */
	REFUSED("\x12\xFF\x00");       /* -255 in two bytes */
	REFUSED("\x0C\xFF\x00\x00\x00\x00\x00\x00\x00");
	REFUSED("\x1C\x80\x00\x00\x00\x00\x00\x00\x00"); /* 2^63 */
	REFUSED("\x1C\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF"); /* 2^64 - 1 */
	REFUSED("\x0C\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFE"); /* -(2^63 + 1) */
	REFUSED("\x0C\x00\x00\x00\x00\x00\x00\x00\x00"); /* -(2^64 - 1) */
	ACCEPTED("\x0C\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF"); /* INT64_MIN */
	ACCEPTED("\x1C\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF"); /* INT64_MAX */
	ACCEPTED("\x15\x01");
	ACCEPTED("\x13\x00");
	/* every two-byte integer body: accepted exactly when minimal */
	for (int code = 0x12; code <= 0x16; code += 4)
		for (int hi = 0; hi < 256; hi++)
			for (int lo = 0; lo < 256; lo += 17) {
				uint8_t in[3] = {(uint8_t)code, (uint8_t)hi, (uint8_t)lo};
				int minimal = code == 0x16 ? hi != 0x00 : hi != 0xFF;
				CHECK_INT(decode_all(in, 3), minimal ? 1 : -1);
			}

	/* uuid and versionstamp: exactly 16 and 12 bytes */
	{
		uint8_t in[1 + CJ_UUID_LEN];
		memset(in, 0x00, sizeof in);
		in[0] = 0x30;
		for (size_t n = 1; n < sizeof in; n++) CHECK_INT(decode_all(in, n), -1);
		CHECK_INT(decode_all(in, sizeof in), 1);
		in[0] = 0x33;
		for (size_t n = 1; n < 1 + CJ_VS_LEN; n++) CHECK_INT(decode_all(in, n), -1);
		CHECK_INT(decode_all(in, 1 + CJ_VS_LEN), 1);
		/* 16 bytes after 0x33: 12 of the versionstamp, then 0x00 0x00 0x00 0x00 */
		CHECK_INT(decode_all(in, sizeof in), 1);
	}

	/* an empty input, and the reader keeps answering 0 at its end */
	{
		cj_tup_reader r;
		cj_tup_item it;
		cj__tup_reader_init(&r, NULL, 0);
		CHECK_INT(cj__tup_next(&r, &it), 0);
		CHECK_INT(cj__tup_next(&r, &it), 0);
	}
	cj__buf_free(&b);
}

/* Re-encodes what a reader yields. */
static void reencode(cj_buf *b, const cj_tup_item *it) {
	switch (it->kind) {
	case CJ_TUP_NULL: cj__tup_null(b); break;
	case CJ_TUP_FALSE: cj__tup_bool(b, 0); break;
	case CJ_TUP_TRUE: cj__tup_bool(b, 1); break;
	case CJ_TUP_INT: cj__tup_int(b, it->i); break;
	case CJ_TUP_UUID:
		CHECK_INT(it->rawlen, CJ_UUID_LEN);
		cj__tup_uuid(b, it->raw);
		break;
	case CJ_TUP_VS:
		CHECK_INT(it->rawlen, CJ_VS_LEN);
		cj__tup_vs(b, it->raw);
		break;
	case CJ_TUP_BYTES:
	case CJ_TUP_STRING: {
		uint8_t *d = malloc(it->len ? it->len : 1);
		CHECK(d != NULL);
		cj__tup_copy(it, d);
		CHECK(cj__tup_eq(it, d, it->len));
		if (it->kind == CJ_TUP_BYTES) cj__tup_bytes(b, d, it->len);
		else cj__tup_str(b, (const char *)d, it->len);
		free(d);
		break;
	}
	default: t_fail(__FILE__, __LINE__, "unknown kind %d", (int)it->kind);
	}
}

TEST(fuzz) {
	/* bytes that are valid codes, escapes and terminators, more often than
	 * chance would give them */
	static const uint8_t common[] = {0x00, 0x00, 0x00, 0xFF, 0xFF, 0x01, 0x02, 0x0C,
	                                 0x0D, 0x12, 0x13, 0x14, 0x15, 0x16, 0x1B, 0x1C,
	                                 0x26, 0x27, 0x30, 0x33, 0x7F, 0x80, 0xFE, 'a'};
	cj_buf b = CJ_BUF_INIT;
	uint8_t in[40];
	long accepted = 0, rejected = 0;
	rng_seed(6);
	for (int k = 0; k < 300000; k++) {
		size_t n = rng_below(k % 4 == 0 ? sizeof in + 1 : 14);
		for (size_t i = 0; i < n; i++)
			in[i] = rng_below(3) ? common[rng_below(sizeof common)] : (uint8_t)rng();
		uint8_t *q = exact_copy(in, n);
		cj_tup_reader r;
		cj_tup_item it;
		int rc;
		cj__buf_reset(&b);
		cj__tup_reader_init(&r, q, n);
		while ((rc = cj__tup_next(&r, &it)) == 1) {
			CHECK(r.p <= r.end);
			if (it.kind == CJ_TUP_BYTES || it.kind == CJ_TUP_STRING ||
			    it.kind == CJ_TUP_UUID || it.kind == CJ_TUP_VS)
				CHECK(it.raw >= q && it.raw + it.rawlen <= q + n);
			reencode(&b, &it);
		}
		if (rc == 0) {
			accepted++;
			CHECK(!b.oom);
			CHECK_INT(b.len, n);
			CHECK(n == 0 || memcmp(b.p, in, n) == 0);
		} else {
			CHECK_INT(rc, -1);
			rejected++;
			const uint8_t *at = r.p;
			CHECK_INT(cj__tup_next(&r, &it), -1);
			CHECK(r.p == at);
			/* what was read so far re-encodes to the bytes before r.p */
			CHECK_INT(b.len, (size_t)(at - q));
			CHECK(b.len == 0 || memcmp(b.p, in, b.len) == 0);
		}
		free(q);
	}
	/* the input mix reaches both outcomes often */
	CHECK(accepted > 20000);
	CHECK(rejected > 20000);
	cj__buf_free(&b);
}

TEST(range_end) {
	rng_seed(7);
	cj_buf pb = CJ_BUF_INIT, end = CJ_BUF_INIT, kb = CJ_BUF_INIT;
	for (int round = 0; round < 200; round++) {
		tuple p;
		rand_tuple(&p, 3);
		cj__buf_reset(&pb);
		enc_tuple(&pb, &p);
		cj__buf_reset(&end);
		cj__buf_add(&end, pb.p, pb.len);
		cj__tup_range_end(&end);
		CHECK(!end.oom);
		CHECK_INT(end.len, pb.len + 1);
		CHECK_INT(end.p[pb.len], 0xFF);
		CHECK(key_cmp(pb.p, pb.len, end.p, end.len) < 0);
		for (int k = 0; k < 300; k++) {
			tuple t;
			if (rng_below(2)) { /* P + anything */
				t = p;
				size_t extra = 1 + rng_below(MAX_ELEMS - p.n);
				for (size_t i = 0; i < extra; i++) rand_elem(&t.e[t.n++]);
			} else {
				rand_tuple(&t, MAX_ELEMS);
			}
			int extends = t.n > p.n;
			for (size_t i = 0; extends && i < p.n; i++)
				if (elem_cmp(&t.e[i], &p.e[i]) != 0) extends = 0;
			cj__buf_reset(&kb);
			enc_tuple(&kb, &t);
			int in_range = key_cmp(pb.p, pb.len, kb.p, kb.len) < 0 &&
			               key_cmp(kb.p, kb.len, end.p, end.len) < 0;
			CHECK_INT(in_range, extends);
		}
	}
	cj__buf_free(&pb);
	cj__buf_free(&end);
	cj__buf_free(&kb);
}

TEST(buffer) {
	cj_buf b = CJ_BUF_INIT;
	uint8_t chunk[37];
	for (size_t i = 0; i < sizeof chunk; i++) chunk[i] = (uint8_t)i;
	for (int i = 0; i < 10000; i++) cj__buf_add(&b, chunk, sizeof chunk);
	CHECK(!b.oom);
	CHECK_INT(b.len, 10000 * sizeof chunk);
	CHECK(b.cap >= b.len);
	for (int i = 0; i < 10000; i++)
		CHECK(memcmp(b.p + (size_t)i * sizeof chunk, chunk, sizeof chunk) == 0);
	cj__buf_add(&b, NULL, 0);
	CHECK_INT(b.len, 10000 * sizeof chunk);

	/* reset keeps the memory */
	uint8_t *mem = b.p;
	size_t cap = b.cap;
	cj__buf_reset(&b);
	CHECK_INT(b.len, 0);
	CHECK(b.p == mem && b.cap == cap);

	/* a failed append sets oom; later appends are ignored until reset */
	cj__tup_int(&b, 1);
	cj__buf_add(&b, chunk, SIZE_MAX); /* cannot fit: size overflow */
	CHECK(b.oom);
	CHECK_INT(b.len, 2);
	cj__tup_str(&b, "x", 1);
	cj__tup_int(&b, 7);
	cj__tup_null(&b);
	cj__tup_range_end(&b);
	CHECK(b.oom);
	CHECK_INT(b.len, 2);
	cj__buf_reset(&b);
	CHECK(!b.oom);
	cj__tup_int(&b, 1);
	ENC(&b, "\x15\x01");

	cj__buf_free(&b);
	CHECK(b.p == NULL && b.len == 0 && b.cap == 0 && !b.oom);
	cj__buf_free(&b); /* twice is harmless */
}

TEST_MAIN(ENTRY(known_vectors), ENTRY(round_trip), ENTRY(int_order),
          ENTRY(string_order), ENTRY(tuple_order), ENTRY(malformed), ENTRY(fuzz),
          ENTRY(range_end), ENTRY(buffer))
