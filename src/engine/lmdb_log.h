/*
 * The embedded engine's log (doc/engine-log.md): the file "log" of a store
 * directory, which holds a checkpoint of data.mdb and, after it, one record
 * of key changes per commit, so that a durable commit needs one flush (of
 * this file) where LMDB needs two.
 *
 * Layout (integers big-endian, as the store's keys):
 *   [0, LML_HEAD)          the header: magic, version, the boot id of the
 *                          machine that last opened the store alone, CRC
 *   two checkpoint slots   LML_SLOT bytes each, from LML_HEAD: a checkpoint
 *                          (generation, commit number, LMDB's page size and
 *                          the bytes of data.mdb's pages 0 and 1) and its
 *                          CRC; the newer valid one counts
 *   the record area        from LML_AREA to the end of the file: the
 *                          records of the newest checkpoint's generation,
 *                          in commit order, from its start
 * A record: magic, length (a multiple of 8, all of it), generation, commit
 * number, its checkpoint's salt (a random number: a job's data that holds
 * the bytes of a record cannot pass for one, not knowing it), the changes (op, space, key and value lengths, key, value), zero
 * padding, and a CRC-32C of all before it in its last 4 bytes. The file is
 * made at its full size and flushed before use, so that flushing a record
 * never has to commit the file's own metadata (extents, size).
 *
 * This file reads and writes bytes; when to write what, and the rules that
 * make it safe, are the engine's (lmdb.c and the design page).
 */
#ifndef CJ_LMDB_LOG_H
#define CJ_LMDB_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tuple.h"

#define LML_HEAD 4096
#define LML_PAGE_MAX 65536 /* LMDB's largest page */
#define LML_SLOT (4096 + 2 * LML_PAGE_MAX)
#define LML_AREA (LML_HEAD + 2 * LML_SLOT)
#define LML_DEFAULT_SIZE ((uint64_t)512 << 10) /* a new log's size */
#define LML_REC_HEAD 32 /* magic, length, gen, commit, salt */
#define LML_CHANGE_HEAD 12                  /* op, space, 0, klen, vlen */
#define LML_BOOT_LEN 16

enum { LML_PUT = 1, LML_DEL = 2 };

typedef struct lml {
	int fd;
	uint64_t size; /* of the file, as last learnt (open, growth, cj__lml_size) */
} lml;

/* A checkpoint as read or to be written. meta: 2 * psize bytes. */
typedef struct lml_ckpt {
	uint64_t gen;
	uint64_t commit; /* the store's commit number it holds */
	uint64_t salt;   /* its records carry it */
	uint32_t psize;
	int slot; /* where it was read from (0 or 1) */
	uint8_t meta[2 * LML_PAGE_MAX];
} lml_ckpt;

/* CRC-32C (Castagnoli) of n bytes, continuing crc (0 to start). */
uint32_t cj__lml_crc(uint32_t crc, const void *p, size_t n);

/* Opens (creating it empty with mode) the log of the checked store
 * directory dirfd, without following a symlink: CJ_OK, CJ_STORE (naming
 * path), CJ_NOMEM. */
int cj__lml_open(int dirfd, const char *path, mode_t mode, lml *out);
void cj__lml_close(lml *l);
/* 1: a log; 0: not made yet (empty, or its making was cut short); or
 * CJ_STORE (a file of another kind). */
int cj__lml_head(lml *l, const char *path);
/* Makes it: zero-filled to LML_DEFAULT_SIZE and flushed, then the header
 * (no boot id), flushed. Only by a process that has it alone. */
int cj__lml_make(lml *l);

/* OFD lock of the log's first byte: shared by every process that has the
 * store open (waits for it), exclusive for the one alone (does not wait):
 * 1 got it, 0 another process holds it (exclusive only), CJ_STORE.
 * Converting one to the other is one call (atomic); 2 drops it. */
int cj__lml_lock(lml *l, int exclusive);

/* The header's boot id (all zero in a new log), and writing it (flushed). */
int cj__lml_boot(lml *l, uint8_t id[LML_BOOT_LEN]);
int cj__lml_set_boot(lml *l, const uint8_t id[LML_BOOT_LEN]);
/* This machine's boot id (Linux: /proc/sys/kernel/random/boot_id): CJ_OK
 * or CJ_STORE. */
int cj__lml_machine_boot(uint8_t id[LML_BOOT_LEN]);

/* The newest valid checkpoint: CJ_OK, CJ_NOT_FOUND (none), CJ_STORE. */
int cj__lml_ckpt_read(lml *l, lml_ckpt *c);
/* Writes c into slot c->slot and flushes the log. */
int cj__lml_ckpt_write(lml *l, const lml_ckpt *c);
/* Spoils both checkpoint slots (their magic zeroed), the older first and
 * flushed, then the newer, and flushes the log: from then on the log holds
 * no checkpoint, and a recovery restores nothing. */
int cj__lml_ckpt_void(lml *l);

/* A record under construction: changes appended, then sealed. */
void cj__lml_rec_start(cj_buf *r);
void cj__lml_rec_change(cj_buf *r, int op, int space, const void *k, size_t kl,
                        const void *v, size_t vl);
/* Appends the changes of a nested transaction's record to its parent's. */
void cj__lml_rec_join(cj_buf *parent, const cj_buf *child);
/* 1 if r holds no change. */
int cj__lml_rec_empty(const cj_buf *r);
/* Fills in the header and the CRC (padding r): CJ_OK or CJ_NOMEM. */
int cj__lml_rec_seal(cj_buf *r, uint64_t gen, uint64_t commit, uint64_t salt);

/* Writes the sealed record r at pos (not flushed): CJ_OK, CJ_TOO_LARGE
 * (it does not fit before the end of the file), CJ_STORE. */
int cj__lml_write(lml *l, uint64_t pos, const cj_buf *r);
/* Learns the file's size again (another process may have grown it):
 * CJ_OK or CJ_STORE. */
int cj__lml_size(lml *l);
/* Grows the file to at least size bytes (zero-filled, flushed). */
int cj__lml_grow(lml *l, uint64_t size);
int cj__lml_flush(lml *l);

/* A record read back. */
typedef struct lml_rec {
	uint64_t pos, len, gen, commit;
	const uint8_t *changes; /* into the reader's buffer */
	size_t changes_len;
} lml_rec;

/* Reads the valid record of generation gen (and salt) at pos into *r (its bytes in
 * *buf, which it grows): 1 read, 0 none there (end of the records: a
 * record of another generation, torn, never written), CJ_STORE, CJ_NOMEM
 * (negative). A record that would lie past the file's size as this process
 * knows it makes it look at the size again (cj__lml_size). */
int cj__lml_read(lml *l, uint64_t pos, uint64_t gen, uint64_t salt, cj_buf *buf,
                 lml_rec *r);

/* Walks the changes of r: calls fn for each, stopping at a non-zero
 * return (returned). CJ_STORE if the changes are malformed (a CRC that
 * matched over them cannot say so; the walk checks anyway). */
int cj__lml_changes(const lml_rec *r,
                    int (*fn)(void *arg, int op, int space, const uint8_t *k, size_t kl,
                              const uint8_t *v, size_t vl),
                    void *arg);

#endif
