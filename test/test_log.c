/* White-box tests of the embedded engine's log file (src/engine/lmdb_log.c):
 * its CRC-32C, summed eight bytes at a time, against the definition (a bit
 * at a time from the polynomial) over many lengths, alignments and
 * continuations, and the standard check value. */
#include "testlib.h"

#include "engine/lmdb_log.h"

#include <string.h>

/* CRC-32C by its definition: reflected, polynomial 0x82f63b78, a bit at a
 * time (no table: nothing shared with the code under test). */
static uint32_t crc_bits(uint32_t crc, const uint8_t *p, size_t n) {
	crc = ~crc;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++) crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
	}
	return ~crc;
}

TEST(crc_check_value) {
	CHECK(cj__lml_crc(0, "123456789", 9) == 0xE3069283u);
	CHECK(crc_bits(0, (const uint8_t *)"123456789", 9) == 0xE3069283u);
	CHECK(cj__lml_crc(0, "", 0) == 0);
	/* 32 zero bytes and 32 0xff bytes: RFC 3720's vectors */
	uint8_t b[32];
	memset(b, 0, sizeof b);
	CHECK(cj__lml_crc(0, b, sizeof b) == 0x8A9136AAu);
	memset(b, 0xff, sizeof b);
	CHECK(cj__lml_crc(0, b, sizeof b) == 0x62A8AB43u);
}

TEST(crc_lengths_and_alignments) {
	static uint8_t buf[1024 + 16];
	uint64_t x = 0x9E3779B97F4A7C15ull;
	for (size_t i = 0; i < sizeof buf; i++) {
		x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
		buf[i] = (uint8_t)(x * 0x2545F4914F6CDD1Dull >> 56);
	}
	for (size_t off = 0; off < 8; off++)
		for (size_t n = 0; n <= 1024; n += n < 80 ? 1 : 37) {
			uint32_t want = crc_bits(0, buf + off, n);
			CHECK(cj__lml_crc(0, buf + off, n) == want);
			/* continued from a cut anywhere, as records are summed */
			for (size_t cut = 0; cut <= n; cut += 1 + n / 5)
				CHECK(cj__lml_crc(cj__lml_crc(0, buf + off, cut), buf + off + cut, n - cut) ==
				      want);
		}
}

TEST_MAIN(ENTRY(crc_check_value), ENTRY(crc_lengths_and_alignments))
