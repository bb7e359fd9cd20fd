/*
 * Reading a recorder's trace back, and building the disk images a power
 * loss could leave (powerloss.h; the model is argued in
 * test/test_powerloss.c).
 */
#include "powerloss.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PL_PAGE 4096
#define PL_SECTOR 512

uint64_t pl_rand(pl_rng *g) {
	uint64_t x = g->s ? g->s : 0x9e3779b97f4a7c15ull;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return g->s = x;
}

/* A whole file into memory: 0, or -1 with errno (ENOENT: no such file). */
static int slurp(const char *path, uint8_t **buf, size_t *len) {
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) return -1;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return -1;
	}
	size_t n = (size_t)st.st_size, got = 0;
	uint8_t *p = malloc(n ? n : 1);
	if (!p) {
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	while (got < n) {
		ssize_t r = pread(fd, p + got, n - got, (off_t)got);
		if (r <= 0) break;
		got += (size_t)r;
	}
	close(fd);
	*buf = p;
	*len = got;
	return 0;
}

/* Writes a new file, leaving its all-zero pages as holes (which read as
 * zeros): the reserve and most of the mapped files are zeros, and images
 * stay cheap. */
static int spill(const char *path, const uint8_t *buf, size_t len) {
	static const uint8_t zero[PL_PAGE];
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) return -1;
	int rc = ftruncate(fd, (off_t)len);
	for (size_t at = 0; rc == 0 && at < len; at += PL_PAGE) {
		size_t n = len - at < PL_PAGE ? len - at : PL_PAGE;
		if (memcmp(buf + at, zero, n) == 0) continue;
		if (pwrite(fd, buf + at, n, (off_t)at) != (ssize_t)n) rc = -1;
	}
	return close(fd) | rc;
}

static int trace_parse(const char *path, struct pl_trace *t, char *err, size_t errlen) {
	size_t len, cap = 0;
	memset(t, 0, sizeof *t);
	if (slurp(path, &t->buf, &len) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	for (size_t at = 0; at < len;) {
		const uint8_t *nl = memchr(t->buf + at, '\n', len - at);
		if (!nl || nl - (t->buf + at) > 400) {
			snprintf(err, errlen, "record at byte %zu: no line", at);
			return -1;
		}
		char line[512];
		size_t ll = (size_t)(nl - (t->buf + at));
		memcpy(line, t->buf + at, ll);
		line[ll] = 0;
		at += ll + 1;
		if (t->n == cap) {
			cap = cap ? cap * 2 : 256;
			struct pl_rec *r = realloc(t->r, cap * sizeof *r);
			if (!r) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			t->r = r;
		}
		struct pl_rec *r = &t->r[t->n];
		memset(r, 0, sizeof *r);
		char kind = line[0];
		unsigned long long a = 0, b = 0, c = 0;
		int ok, used = 0;
		switch (kind) {
		case 'B':
		case 'W':
			r->kind = kind == 'B' ? PL_WRITE_START : PL_WRITE;
			/* a W without its number (and its B) is a recorder's before the
			 * B records: read, never in flight */
			used = sscanf(line + 1, " %d %63s %llu %llu %llu", &r->pid, r->file, &a, &b, &c);
			ok = used == 5 || (kind == 'W' && used == 4);
			r->off = a;
			r->len = b;
			r->seq = c;
			if (kind == 'B') break;
			if (ok && r->len > len - at) ok = 0;
			r->bytes = t->buf + at;
			if (ok) at += r->len;
			break;
		case 'T':
			r->kind = PL_TRUNC;
			ok = sscanf(line, "T %d %63s %llu", &r->pid, r->file, &a) == 3;
			r->len = a;
			break;
		case 'S':
		case 'E':
			r->kind = kind == 'S' ? PL_SYNC_START : PL_SYNC_END;
			ok = sscanf(line + 1, " %d %63s %llu", &r->pid, r->file, &a) == 3;
			r->seq = a;
			break;
		case 'M':
			r->kind = PL_MARK;
			ok = sscanf(line, "M %d %n", &r->pid, &used) >= 1 && used > 0;
			if (ok) snprintf(r->file, sizeof r->file, "%s", line + used);
			break;
		default: ok = 0;
		}
		if (!ok) {
			snprintf(err, errlen, "record %zu malformed: %.80s", t->n, line);
			return -1;
		}
		if (r->kind == PL_SYNC_END || r->kind == PL_WRITE) {
			/* pair it with its start: same process, file and number */
			enum pl_kind start = r->kind == PL_WRITE ? PL_WRITE_START : PL_SYNC_START;
			size_t i = t->n;
			while (i-- > 0) {
				struct pl_rec *s = &t->r[i];
				if (s->kind == start && s->pid == r->pid && s->seq == r->seq &&
				    strcmp(s->file, r->file) == 0) {
					s->end = t->n;
					break;
				}
			}
		}
		t->n++;
	}
	return 0;
}

void pl_trace_free(struct pl_trace *t) {
	free(t->buf);
	free(t->r);
	memset(t, 0, sizeof *t);
}

int pl_trace_read(const char *path, struct pl_trace *t, char *err, size_t errlen) {
	int rc = trace_parse(path, t, err, errlen);
	if (rc) pl_trace_free(t); /* nothing of a trace that cannot be read */
	return rc;
}

/* ---- images ---------------------------------------------------------------- */

struct file_img {
	uint8_t *p;
	size_t len, cap;
};

static int img_reserve(struct file_img *f, size_t len) {
	if (len <= f->cap) return 0;
	size_t cap = f->cap ? f->cap : PL_PAGE;
	while (cap < len) cap *= 2;
	uint8_t *p = realloc(f->p, cap);
	if (!p) return -1;
	memset(p + f->cap, 0, cap - f->cap);
	f->p = p;
	f->cap = cap;
	return 0;
}

/* Puts bytes [a, b) of write w into the image (a hole before them reads
 * as zeros, as a sparse file's). */
static int img_put(struct file_img *f, const struct pl_rec *w, uint64_t a, uint64_t b) {
	if (b <= a) return 0;
	if (img_reserve(f, (size_t)(w->off + b)) != 0) return -1;
	memcpy(f->p + w->off + a, w->bytes + a, (size_t)(b - a));
	if (w->off + b > f->len) f->len = (size_t)(w->off + b);
	return 0;
}

/* A write not known to be on disk: per 4 KiB page of the file, dropped,
 * applied, or torn (each 512-byte sector applied or not). */
static int img_maybe(struct file_img *f, const struct pl_rec *w, pl_rng *g) {
	uint64_t at = 0;
	while (at < w->len) {
		uint64_t page_end = ((w->off + at) / PL_PAGE + 1) * PL_PAGE - w->off;
		uint64_t end = page_end < w->len ? page_end : w->len;
		uint64_t r = pl_rand(g) % 8;
		if (r >= 3 && r <= 6 && img_put(f, w, at, end) != 0) return -1;
		if (r == 7) {
			for (uint64_t s = at; s < end;) {
				uint64_t s_end = ((w->off + s) / PL_SECTOR + 1) * PL_SECTOR - w->off;
				if (s_end > end) s_end = end;
				if (pl_rand(g) & 1 && img_put(f, w, s, s_end) != 0) return -1;
				s = s_end;
			}
		}
		at = end;
	}
	return 0;
}

/* The file name of d, or -1. */
static int dir_find(const struct pl_dir *d, const char *name) {
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->name[i], name) == 0) return (int)i;
	return -1;
}

/* A file written with write() and flushed (data.mdb, the log): from base
 * (empty if not there, unless required), then the prefix's writes. */
static int img_data(const char *name, int required, const struct pl_trace *t, size_t k,
                    const struct pl_dir *base, const char *dir, pl_rng *g) {
	char path[4096];
	struct file_img f = {0};
	int b = dir_find(base, name);
	if (b < 0 && required) {
		errno = ENOENT;
		return -1;
	}
	if (b >= 0) {
		if (img_reserve(&f, base->len[b]) != 0) return -1;
		memcpy(f.p, base->data[b], base->len[b]);
		f.len = base->len[b];
	}
	/* the last start of a flush of the file that ended within the prefix:
	 * every write recorded before it is on disk */
	size_t covered = 0, seen = b >= 0;
	for (size_t i = 0; i < k; i++) {
		const struct pl_rec *r = &t->r[i];
		if (strcmp(r->file, name) == 0) seen = 1;
		if (r->kind == PL_SYNC_START && r->end && r->end < k && strcmp(r->file, name) == 0)
			covered = i;
	}
	if (!seen) return 0;
	int rc = 0;
	for (size_t i = 0; i < k && rc == 0; i++) {
		const struct pl_rec *r = &t->r[i];
		if (strcmp(r->file, name) != 0) continue;
		if (r->kind == PL_WRITE)
			rc = i < covered ? img_put(&f, r, 0, r->len) : img_maybe(&f, r, g);
		else if (r->kind == PL_TRUNC && (i < covered || pl_rand(g) & 1)) {
			rc = img_reserve(&f, (size_t)r->len);
			if (rc == 0 && r->len < f.len) memset(f.p + r->len, 0, f.len - r->len);
			f.len = (size_t)r->len;
		}
	}
	/* the writes in flight at the crash point: none is covered by a flush
	 * (one covers only writes that returned before it started); each may
	 * have reached the disk in part, and last, over what the writes before
	 * it left (it was the last the disk was given) */
	for (size_t i = 0; i < k && rc == 0; i++) {
		const struct pl_rec *r = &t->r[i];
		if (r->kind == PL_WRITE_START && r->end >= k && strcmp(r->file, name) == 0)
			rc = img_maybe(&f, &t->r[r->end], g);
	}
	snprintf(path, sizeof path, "%s/%s", dir, name);
	/* a power loss reboots the machine: the log's boot id (bytes 8 to 27 of
	 * its header, with their CRC: src/engine/lmdb_log.h) is not the
	 * machine's when the image is opened */
	if (rc == 0 && strcmp(name, "log") == 0 && f.len >= 28) memset(f.p + 8, 0, 20);
	if (rc == 0) rc = spill(path, f.p, f.len);
	free(f.p);
	return rc;
}

/* A mapped file: each 4 KiB page from base or from end, its length one of
 * theirs; a file in one of them only is there or not. */
static int img_mapped(const char *name, const struct pl_dir *base, const struct pl_dir *end,
                      const char *dir, pl_rng *g) {
	char path[4096];
	int ib = dir_find(base, name), ie = dir_find(end, name);
	int hb = ib >= 0, he = ie >= 0;
	const uint8_t *b = hb ? base->data[ib] : NULL, *e = he ? end->data[ie] : NULL;
	size_t bl = hb ? base->len[ib] : 0, el = he ? end->len[ie] : 0;
	int rc = 0;
	if ((hb && he) || ((hb || he) && pl_rand(g) & 1)) {
		size_t len = !he ? bl : !hb ? el : pl_rand(g) & 1 ? bl : el;
		uint8_t *o = calloc(1, len ? len : 1);
		if (!o) rc = -1;
		for (size_t at = 0; o && at < len; at += PL_PAGE) {
			size_t n = len - at < PL_PAGE ? len - at : PL_PAGE;
			int from_end = !hb || (he && pl_rand(g) & 1);
			const uint8_t *src = from_end ? e : b;
			size_t sl = from_end ? el : bl;
			if (at < sl) memcpy(o + at, src + at, n < sl - at ? n : sl - at);
		}
		snprintf(path, sizeof path, "%s/%s", dir, name);
		if (o) rc = spill(path, o, len);
		free(o);
	}
	return rc;
}

int pl_dir_load(const char *path, struct pl_dir *d) {
	memset(d, 0, sizeof *d);
	DIR *dp = opendir(path);
	if (!dp) return -1;
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(dp))) {
		if (de->d_name[0] == '.') continue;
		size_t nl = strlen(de->d_name);
		if (d->n == PL_DIR_FILES || nl >= sizeof d->name[0]) {
			errno = E2BIG;
			rc = -1;
			break;
		}
		char p[4096];
		snprintf(p, sizeof p, "%s/%s", path, de->d_name);
		memcpy(d->name[d->n], de->d_name, nl + 1); /* fits: checked above */
		rc = slurp(p, &d->data[d->n], &d->len[d->n]);
		if (rc == 0) d->n++;
	}
	closedir(dp);
	/* sorted, for the draws' sake */
	for (size_t i = 1; i < d->n; i++)
		for (size_t j = i; j > 0 && strcmp(d->name[j - 1], d->name[j]) > 0; j--) {
			char nm[64];
			memcpy(nm, d->name[j], sizeof nm);
			memcpy(d->name[j], d->name[j - 1], sizeof nm);
			memcpy(d->name[j - 1], nm, sizeof nm);
			uint8_t *p = d->data[j];
			d->data[j] = d->data[j - 1];
			d->data[j - 1] = p;
			size_t l = d->len[j];
			d->len[j] = d->len[j - 1];
			d->len[j - 1] = l;
		}
	if (rc) pl_dir_free(d); /* nothing of a directory that cannot be read */
	return rc;
}

void pl_dir_free(struct pl_dir *d) {
	for (size_t i = 0; i < d->n; i++) free(d->data[i]);
	memset(d, 0, sizeof *d);
}

int pl_image(const struct pl_trace *t, size_t k, const struct pl_dir *base,
             const struct pl_dir *end, const char *dir, pl_rng *g) {
	for (size_t i = 0; i < k; i++)
		if (t->r[i].kind == PL_MARK && strcmp(t->r[i].file, "msync") == 0) {
			errno = ENOTSUP; /* the model has no place for it */
			return -1;
		}
	if (img_data("data.mdb", 1, t, k > t->n ? t->n : k, base, dir, g) != 0 ||
	    img_data("log", 0, t, k > t->n ? t->n : k, base, dir, g) != 0)
		return -1;
	/* every other file of either directory, in order of name */
	const struct pl_dir *ds[2] = {base, end};
	for (int d = 0; d < 2; d++)
		for (size_t i = 0; i < ds[d]->n; i++) {
			const char *name = ds[d]->name[i];
			if (strcmp(name, "data.mdb") == 0 || strcmp(name, "log") == 0 ||
			    (d == 1 && dir_find(base, name) >= 0))
				continue;
			if (img_mapped(name, base, end, dir, g) != 0) return -1;
		}
	return 0;
}
