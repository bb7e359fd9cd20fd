/* The embedded engine's log file: see lmdb_log.h. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cj_int.h"
#include "engine/lmdb_log.h"
#include "os/os.h"

#define LML_MAGIC "cjlog\0\0\1"  /* 8 bytes: kind and layout 1 */
#define LML_SLOT_MAGIC 0x636a636bu /* "cjck" */
#define LML_REC_MAGIC 0x636a7263u  /* "cjrc" */
#define LML_SLOT_HEAD 40           /* magic, psize, gen, commit, salt, crc, 0 */
#define LML_FILL (1u << 20)        /* zeros written at a time */

/* ---- CRC-32C ---------------------------------------------------------------
 * The reflected polynomial 0x82f63b78, eight bytes at a time ("slicing by
 * 8"): table k gives the CRC of a byte followed by k zero bytes, so the
 * eight bytes' contributions are looked up independently and XORed (one
 * dependent step per eight bytes instead of per byte; every record is
 * summed once written and once per read back). The bytes are assembled
 * one by one, so the result depends on neither the machine's byte order
 * nor the buffer's alignment. Tables made on first use. */

static uint32_t lml_table[8][256];
static pthread_once_t lml_table_once = PTHREAD_ONCE_INIT;

static void lml_table_make(void) {
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		lml_table[0][i] = c;
	}
	for (int k = 1; k < 8; k++)
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = lml_table[k - 1][i];
			lml_table[k][i] = (c >> 8) ^ lml_table[0][c & 0xff];
		}
}

static uint32_t le32(const uint8_t *b) {
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

uint32_t cj__lml_crc(uint32_t crc, const void *p, size_t n) {
	pthread_once(&lml_table_once, lml_table_make);
	const uint32_t(*t)[256] = (const uint32_t(*)[256])lml_table;
	const uint8_t *b = p;
	crc = ~crc;
	for (; n >= 8; n -= 8, b += 8) {
		uint32_t lo = crc ^ le32(b), hi = le32(b + 4);
		crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^
		      t[4][lo >> 24] ^ t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^
		      t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
	}
	while (n--) crc = t[0][(crc ^ *b++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---- integers ------------------------------------------------------------- */

static void put32(uint8_t *o, uint32_t v) {
	o[0] = (uint8_t)(v >> 24), o[1] = (uint8_t)(v >> 16), o[2] = (uint8_t)(v >> 8),
	o[3] = (uint8_t)v;
}

static void put64(uint8_t *o, uint64_t v) {
	put32(o, (uint32_t)(v >> 32));
	put32(o + 4, (uint32_t)v);
}

static uint32_t get32(const uint8_t *p) {
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) << 32 | get32(p + 4); }

/* ---- the file --------------------------------------------------------------- */

static int lml_io(const char *what, int e) {
	return cj__fail(CJ_STORE, "the store's log: %s: %s", what, cj__os_strerror(e));
}

static int lml_pwrite(lml *l, const void *p, size_t n, uint64_t off) {
	const uint8_t *b = p;
	while (n) {
		ssize_t w = pwrite(l->fd, b, n, (off_t)off);
		if (w < 0 && errno == EINTR) continue;
		if (w < 0) return lml_io("write", errno);
		if (w == 0) return lml_io("write", EIO);
		b += w, n -= (size_t)w, off += (uint64_t)w;
	}
	return CJ_OK;
}

/* Reads n bytes at off; a read past the end gives zeros. */
static int lml_pread(lml *l, void *p, size_t n, uint64_t off) {
	uint8_t *b = p;
	while (n) {
		ssize_t r = pread(l->fd, b, n, (off_t)off);
		if (r < 0 && errno == EINTR) continue;
		if (r < 0) return lml_io("read", errno);
		if (r == 0) {
			memset(b, 0, n);
			break;
		}
		b += r, n -= (size_t)r, off += (uint64_t)r;
	}
	return CJ_OK;
}

int cj__lml_flush(lml *l) {
	while (fdatasync(l->fd) != 0)
		if (errno != EINTR) return lml_io("flush", errno);
	return CJ_OK;
}

/* Zero-fills [from, to) and flushes, file size and all. */
static int lml_fill(lml *l, uint64_t from, uint64_t to) {
	uint8_t *z = cj__calloc(1, LML_FILL);
	if (!z) return cj__fail(CJ_NOMEM, "out of memory");
	int rc = CJ_OK;
	for (uint64_t o = from; o < to && rc == CJ_OK;) {
		size_t n = to - o < LML_FILL ? (size_t)(to - o) : LML_FILL;
		rc = lml_pwrite(l, z, n, o);
		o += n;
	}
	cj_free(z);
	if (rc == CJ_OK) {
		while (fsync(l->fd) != 0) /* the size too */
			if (errno != EINTR) return lml_io("flush", errno);
		l->size = to > l->size ? to : l->size;
	}
	return rc;
}

int cj__lml_open(int dirfd, const char *path, mode_t mode, lml *out) {
	out->fd = -1;
	out->size = 0;
	int ro, fd;
	int rc = cj__os_store_file(dirfd, path, "log", mode, 0, &ro, &fd);
	if (rc) return rc;
	if (ro) {
		close(fd);
		return cj__fail(CJ_STORE, "%s: the store's log is read-only for this user", path);
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		rc = lml_io("stat", errno);
		close(fd);
		return rc;
	}
	out->fd = fd;
	out->size = (uint64_t)st.st_size;
	return CJ_OK;
}

int cj__lml_head(lml *l, const char *path) {
	uint8_t h[8];
	static const uint8_t zero[8];
	int rc = lml_pread(l, h, sizeof h, 0);
	if (rc) return rc;
	if (memcmp(h, LML_MAGIC, 8) == 0 && l->size >= LML_AREA) return 1;
	if (memcmp(h, zero, 8) == 0) return 0;
	return cj__fail(CJ_STORE, "%s: the store's log is not a couchjobs log (or of a later "
	                "layout)", path);
}

int cj__lml_make(lml *l) {
	uint64_t size = LML_DEFAULT_SIZE > l->size ? LML_DEFAULT_SIZE : l->size;
	int rc = lml_fill(l, 0, size);
	if (rc) return rc;
	uint8_t head[8 + LML_BOOT_LEN + 4] = {0};
	memcpy(head, LML_MAGIC, 8);
	put32(head + 8 + LML_BOOT_LEN, cj__lml_crc(0, head, 8 + LML_BOOT_LEN));
	rc = lml_pwrite(l, head, sizeof head, 0);
	return rc ? rc : cj__lml_flush(l);
}

void cj__lml_close(lml *l) {
	if (l->fd >= 0) close(l->fd);
	l->fd = -1;
}

int cj__lml_lock(lml *l, int exclusive) {
	struct flock f = {0};
	f.l_type = exclusive == 2 ? F_UNLCK : exclusive ? F_WRLCK : F_RDLCK;
	f.l_whence = SEEK_SET;
	f.l_start = 0;
	f.l_len = 1;
	for (;;) {
		if (fcntl(l->fd, exclusive == 1 ? F_OFD_SETLK : F_OFD_SETLKW, &f) == 0) return 1;
		if (errno == EINTR) continue;
		if (exclusive == 1 && (errno == EAGAIN || errno == EACCES)) return 0;
		return lml_io("lock", errno);
	}
}

/* ---- the header's boot id ----------------------------------------------------- */

int cj__lml_boot(lml *l, uint8_t id[LML_BOOT_LEN]) {
	uint8_t h[8 + LML_BOOT_LEN + 4];
	int rc = lml_pread(l, h, sizeof h, 0);
	if (rc) return rc;
	if (get32(h + 8 + LML_BOOT_LEN) != cj__lml_crc(0, h, 8 + LML_BOOT_LEN))
		memset(h + 8, 0, LML_BOOT_LEN); /* torn: as no boot known */
	memcpy(id, h + 8, LML_BOOT_LEN);
	return CJ_OK;
}

int cj__lml_set_boot(lml *l, const uint8_t id[LML_BOOT_LEN]) {
	uint8_t h[8 + LML_BOOT_LEN + 4];
	memcpy(h, LML_MAGIC, 8);
	memcpy(h + 8, id, LML_BOOT_LEN);
	put32(h + 8 + LML_BOOT_LEN, cj__lml_crc(0, h, 8 + LML_BOOT_LEN));
	int rc = lml_pwrite(l, h, sizeof h, 0);
	return rc ? rc : cj__lml_flush(l);
}

static int hexval(int c) {
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int cj__lml_machine_boot(uint8_t id[LML_BOOT_LEN]) {
	char s[64];
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0) return cj__fail(CJ_STORE, "cannot read the machine's boot id: %s",
	                            cj__os_strerror(errno));
	ssize_t n = read(fd, s, sizeof s - 1);
	close(fd);
	size_t got = 0;
	for (ssize_t i = 0; i + 1 < n && got < LML_BOOT_LEN; i++) {
		if (s[i] == '-') continue;
		int a = hexval(s[i]), b = hexval(s[i + 1]);
		if (a < 0 || b < 0) break;
		id[got++] = (uint8_t)(a << 4 | b);
		i++;
	}
	if (got != LML_BOOT_LEN) return cj__fail(CJ_STORE, "the machine's boot id is unreadable");
	return CJ_OK;
}

/* ---- checkpoints ---------------------------------------------------------------- */

static uint64_t slot_off(int slot) { return LML_HEAD + (uint64_t)slot * LML_SLOT; }

/* Slot i's checkpoint into *c: 1 valid, 0 not, or an error. */
static int slot_read(lml *l, int slot, lml_ckpt *c) {
	uint8_t h[LML_SLOT_HEAD];
	int rc = lml_pread(l, h, sizeof h, slot_off(slot));
	if (rc) return rc;
	uint32_t psize = get32(h + 4);
	if (get32(h) != LML_SLOT_MAGIC || psize < 512 || psize > LML_PAGE_MAX ||
	    (psize & (psize - 1)))
		return 0;
	if ((rc = lml_pread(l, c->meta, 2 * (size_t)psize, slot_off(slot) + 4096))) return rc;
	uint32_t crc = cj__lml_crc(cj__lml_crc(0, h, 32), c->meta, 2 * (size_t)psize);
	if (crc != get32(h + 32)) return 0;
	c->psize = psize;
	c->gen = get64(h + 8);
	c->commit = get64(h + 16);
	c->salt = get64(h + 24);
	c->slot = slot;
	return 1;
}

int cj__lml_ckpt_read(lml *l, lml_ckpt *c) {
	lml_ckpt *other = cj__calloc(1, sizeof *other);
	if (!other) return cj__fail(CJ_NOMEM, "out of memory");
	int a = slot_read(l, 0, c);
	int b = a < 0 ? a : slot_read(l, 1, other);
	int rc = a < 0 ? a : b < 0 ? b : CJ_OK;
	if (rc == CJ_OK && b == 1 && (a == 0 || other->gen > c->gen)) memcpy(c, other, sizeof *c);
	if (rc == CJ_OK && a == 0 && b == 0) rc = CJ_NOT_FOUND;
	cj_free(other);
	return rc;
}

int cj__lml_ckpt_write(lml *l, const lml_ckpt *c) {
	if (c->slot < 0 || c->slot > 1 || c->psize < 512 || c->psize > LML_PAGE_MAX)
		return cj__fail(CJ_STORE, "the store's log: a bad checkpoint");
	uint8_t h[LML_SLOT_HEAD] = {0};
	put32(h, LML_SLOT_MAGIC);
	put32(h + 4, c->psize);
	put64(h + 8, c->gen);
	put64(h + 16, c->commit);
	put64(h + 24, c->salt);
	put32(h + 32, cj__lml_crc(cj__lml_crc(0, h, 32), c->meta, 2 * (size_t)c->psize));
	int rc = lml_pwrite(l, c->meta, 2 * (size_t)c->psize, slot_off(c->slot) + 4096);
	if (rc == CJ_OK) rc = lml_pwrite(l, h, sizeof h, slot_off(c->slot));
	return rc ? rc : cj__lml_flush(l);
}

/* Slot i's generation, if it holds a checkpoint's magic (0: none; a
 * checkpoint's generation is never 0, so an empty slot counts as older). */
static int slot_gen(lml *l, int slot, uint64_t *gen) {
	uint8_t h[16];
	int rc = lml_pread(l, h, sizeof h, slot_off(slot));
	*gen = rc == CJ_OK && get32(h) == LML_SLOT_MAGIC ? get64(h + 8) : 0;
	return rc;
}

/* The older checkpoint first, flushed, then the newer: the older one's
 * pages may have been reused since the newer was made, so a power loss
 * between the two must never leave it the newest checkpoint still whole
 * (the recovery would restore it over pages written since). Spoilt in one
 * flush, the disk could keep the newer's spoiling and not the older's. */
int cj__lml_ckpt_void(lml *l) {
	static const uint8_t zero[4];
	uint64_t g[2];
	int rc = slot_gen(l, 0, &g[0]);
	if (rc == CJ_OK) rc = slot_gen(l, 1, &g[1]);
	int older = g[1] < g[0];
	/* both written and flushed even where spoilt already (or never used):
	 * a void whose flush failed runs again */
	if (rc == CJ_OK && (rc = lml_pwrite(l, zero, sizeof zero, slot_off(older))) == CJ_OK)
		rc = cj__lml_flush(l);
	if (rc == CJ_OK) rc = lml_pwrite(l, zero, sizeof zero, slot_off(!older));
	return rc ? rc : cj__lml_flush(l);
}

/* ---- records ---------------------------------------------------------------------- */

void cj__lml_rec_start(cj_buf *r) {
	static const uint8_t head[LML_REC_HEAD];
	cj__buf_reset(r);
	cj__buf_add(r, head, sizeof head);
}

void cj__lml_rec_change(cj_buf *r, int op, int space, const void *k, size_t kl,
                        const void *v, size_t vl) {
	uint8_t h[LML_CHANGE_HEAD] = {(uint8_t)op, (uint8_t)space, 0, 0};
	put32(h + 4, (uint32_t)kl);
	put32(h + 8, (uint32_t)vl);
	if (!r->len) cj__lml_rec_start(r);
	cj__buf_add(r, h, sizeof h);
	cj__buf_add(r, k, kl);
	if (vl) cj__buf_add(r, v, vl);
}

void cj__lml_rec_join(cj_buf *parent, const cj_buf *child) {
	if (child->len <= LML_REC_HEAD) return;
	if (!parent->len) cj__lml_rec_start(parent);
	cj__buf_add(parent, child->p + LML_REC_HEAD, child->len - LML_REC_HEAD);
}

int cj__lml_rec_empty(const cj_buf *r) { return r->len <= LML_REC_HEAD; }

int cj__lml_rec_seal(cj_buf *r, uint64_t gen, uint64_t commit, uint64_t salt) {
	static const uint8_t zero[12];
	if (!r->len) cj__lml_rec_start(r);
	size_t len = (r->len + 4 + 7) & ~(size_t)7;
	cj__buf_add(r, zero, len - 4 - r->len);
	if (r->oom || len > UINT32_MAX) return cj__fail(CJ_NOMEM, "out of memory: a log record");
	put32(r->p, LML_REC_MAGIC);
	put32(r->p + 4, (uint32_t)len);
	put64(r->p + 8, gen);
	put64(r->p + 16, commit);
	put64(r->p + 24, salt);
	uint8_t crc[4];
	put32(crc, cj__lml_crc(0, r->p, len - 4));
	cj__buf_add(r, crc, 4);
	return r->oom ? cj__fail(CJ_NOMEM, "out of memory: a log record") : CJ_OK;
}

int cj__lml_write(lml *l, uint64_t pos, const cj_buf *r) {
	if (pos < LML_AREA || pos > l->size || r->len > l->size - pos)
		return cj__fail(CJ_TOO_LARGE, "the record does not fit in the store's log");
	return lml_pwrite(l, r->p, r->len, pos);
}

int cj__lml_size(lml *l) {
	struct stat st;
	if (fstat(l->fd, &st) != 0) return lml_io("stat", errno);
	if ((uint64_t)st.st_size > l->size) l->size = (uint64_t)st.st_size; /* it never shrinks */
	return CJ_OK;
}

int cj__lml_grow(lml *l, uint64_t size) {
	if (size <= l->size) return CJ_OK;
	return lml_fill(l, l->size, size);
}

int cj__lml_read(lml *l, uint64_t pos, uint64_t gen, uint64_t salt, cj_buf *buf,
                 lml_rec *r) {
	uint8_t h[LML_REC_HEAD];
	int rc;
	if (pos < LML_AREA) return 0;
	/* past the size this process knows, another may have grown the file */
	if ((pos > l->size || l->size - pos < LML_REC_HEAD + 4) && (rc = cj__lml_size(l)))
		return rc;
	if (pos > l->size || l->size - pos < LML_REC_HEAD + 4) return 0;
	if ((rc = lml_pread(l, h, sizeof h, pos))) return rc;
	uint64_t len = get32(h + 4);
	if (get32(h) != LML_REC_MAGIC || get64(h + 8) != gen || get64(h + 24) != salt ||
	    len < LML_REC_HEAD + 4 || len % 8)
		return 0;
	if (len > l->size - pos && (rc = cj__lml_size(l))) return rc;
	if (len > l->size - pos) return 0;
	cj__buf_reset(buf);
	if (buf->cap < len) {
		uint8_t *p = cj__realloc(buf->p, (size_t)len);
		if (!p) return cj__fail(CJ_NOMEM, "out of memory: a log record");
		buf->p = p;
		buf->cap = (size_t)len;
	}
	if ((rc = lml_pread(l, buf->p, (size_t)len, pos))) return rc;
	buf->len = (size_t)len;
	if (get32(buf->p + len - 4) != cj__lml_crc(0, buf->p, (size_t)len - 4) ||
	    memcmp(buf->p, h, sizeof h) != 0)
		return 0;
	r->pos = pos;
	r->len = len;
	r->gen = gen;
	r->commit = get64(h + 16);
	r->changes = buf->p + LML_REC_HEAD;
	r->changes_len = (size_t)len - LML_REC_HEAD - 4;
	return 1;
}

int cj__lml_changes(const lml_rec *r,
                    int (*fn)(void *arg, int op, int space, const uint8_t *k, size_t kl,
                              const uint8_t *v, size_t vl),
                    void *arg) {
	const uint8_t *p = r->changes, *end = r->changes + r->changes_len;
	while (end - p >= LML_CHANGE_HEAD && p[0] != 0) {
		int op = p[0], space = p[1];
		size_t kl = get32(p + 4), vl = get32(p + 8);
		p += LML_CHANGE_HEAD;
		if ((op != LML_PUT && op != LML_DEL) || kl > (size_t)(end - p) ||
		    vl > (size_t)(end - p) - kl || (op == LML_DEL && vl))
			return cj__fail(CJ_STORE, "the store's log: a malformed record (commit %llu)",
			                (unsigned long long)r->commit);
		int rc = fn(arg, op, space, p, kl, p + kl, vl);
		if (rc) return rc;
		p += kl + vl;
	}
	/* what is left is the padding */
	for (; p < end; p++)
		if (*p) return cj__fail(CJ_STORE, "the store's log: a malformed record (commit %llu)",
		                        (unsigned long long)r->commit);
	return CJ_OK;
}
