/* Channels: the names the core notifies and waits on, the wake words
 * engines map them and jobs to (cj_int.h), and the engine's ops to wait on
 * them. */
#include <stdio.h>
#include <string.h>

#include "cj_int.h"

void cj__chan_pending(char *out, size_t cap, const char *type) {
	snprintf(out, cap, "p:%s", type);
}

void cj__chan_running(char *out, size_t cap, const char *type) {
	snprintf(out, cap, "r:%s", type);
}

uint32_t cj__fnv(uint32_t h, const void *p, size_t n) {
	for (const unsigned char *c = p; n--; c++) h = (h ^ *c) * 16777619u;
	return h;
}

unsigned cj__chan_word(const char *chan) {
	return 1 + cj__fnv(CJ_FNV_SEED, chan, strlen(chan)) % (CJ_CHAN_WORDS - 1);
}

unsigned cj__job_number(const char *type, const char *id) {
	/* type and id with the NUL between them: no two pairs hash alike */
	uint32_t h = cj__fnv(CJ_FNV_SEED, type, strlen(type) + 1);
	h = cj__fnv(h, id, strlen(id));
	return (h ^ h >> 16) % CJ_JOB_WORDS;
}

void cj__wordset_add(cj_wordset *s, unsigned w) {
	if (s->bits[w / 8] & (1u << (w % 8))) return;
	s->bits[w / 8] |= (uint8_t)(1u << (w % 8));
	s->list[s->n++] = (uint16_t)w;
}

static void wordset_add_n(cj_wordset *s, unsigned w, uint32_t n) {
	if (s->bits[w / 8] & (1u << (w % 8))) return; /* wakes all already */
	for (unsigned i = 0; i < s->nones; i++)
		if (s->ones[i] == w) {
			s->ones_n[i] = s->ones_n[i] > UINT32_MAX - n ? UINT32_MAX : s->ones_n[i] + n;
			return;
		}
	if (s->nones == CJ_WORDSET_ONES) {
		cj__wordset_add(s, w);
		return;
	}
	s->ones[s->nones] = (uint16_t)w;
	s->ones_n[s->nones++] = n;
}

void cj__wordset_add_one(cj_wordset *s, unsigned w) { wordset_add_n(s, w, 1); }

void cj__wordset_add_job(cj_wordset *s, unsigned job) {
	cj__wordset_add(s, cj__chan_word(CJ_CHAN_ACTIVITY));
	if (s->all_jobs) return;
	for (unsigned i = 0; i < s->njobs; i++)
		if (s->jobs[i] == job) return;
	if (s->njobs == CJ_WORDSET_JOBS) {
		s->all_jobs = 1;
		return;
	}
	s->jobs[s->njobs++] = (uint16_t)job;
}

void cj__wordset_merge(cj_wordset *dst, const cj_wordset *src) {
	if (src->all_jobs) dst->all_jobs = 1; /* "activity" is in src's list */
	for (unsigned i = 0; i < src->njobs; i++) cj__wordset_add_job(dst, src->jobs[i]);
	for (unsigned i = 0; i < src->n; i++) cj__wordset_add(dst, src->list[i]);
	for (unsigned i = 0; i < src->nones; i++) wordset_add_n(dst, src->ones[i], src->ones_n[i]);
}

int cj__wordset_empty(const cj_wordset *s) { return s->n == 0 && s->nones == 0; }

struct each_all {
	void (*fn)(void *arg, unsigned word);
	void *arg;
};

static void each_all(void *arg, unsigned word, unsigned wake) {
	struct each_all *e = arg;
	(void)wake;
	e->fn(e->arg, word);
}

void cj__wordset_each(const cj_wordset *s, void (*fn)(void *arg, unsigned word),
                      void *arg) {
	struct each_all e = {fn, arg};
	cj__wordset_each_n(s, each_all, &e);
}

void cj__wordset_each_n(const cj_wordset *s,
                        void (*fn)(void *arg, unsigned word, unsigned wake), void *arg) {
	if (s->all_jobs) {
		fn(arg, CJ_WORD_ALL, 0);
	} else if (s->njobs) {
		uint8_t seen[CJ_JOB_GROUPS / 8] = {0};
		for (unsigned i = 0; i < s->njobs; i++) fn(arg, CJ_WORD_JOB(s->jobs[i]), 0);
		for (unsigned i = 0; i < s->njobs; i++) {
			unsigned g = s->jobs[i] / CJ_JOB_GROUP_SIZE;
			if (seen[g / 8] & (1u << (g % 8))) continue;
			seen[g / 8] |= (uint8_t)(1u << (g % 8));
			fn(arg, CJ_WORD_GROUP(g), 0);
		}
	}
	if (s->all_jobs || s->njobs) fn(arg, CJ_WORD_NEW, 0);
	for (unsigned i = 0; i < s->n; i++) fn(arg, s->list[i], 0);
	for (unsigned i = 0; i < s->nones; i++) {
		unsigned w = s->ones[i];
		if (!(s->bits[w / 8] & (1u << (w % 8)))) fn(arg, w, s->ones_n[i]);
	}
}

/* ---- waiting on channels: the engine's wake ops -------------------------- */

uint64_t cj__watch(cj_db *db, const char *chan) {
	return db->eng->watch(db->edb, chan);
}

int cj__wait(cj_db *db, const char *chan, uint64_t token, int64_t deadline_ms) {
	return db->eng->wait(db->edb, chan, token, deadline_ms);
}

int cj__wait_any(cj_db *db, const char *const *chans, const uint64_t *tokens, size_t n,
                 int64_t deadline_ms) {
	return db->eng->wait_any(db->edb, chans, tokens, n, deadline_ms);
}

void cj__wake(cj_db *db, const char *chan) { db->eng->wake(db->edb, chan); }

void cj__rouse(cj_db *db, const char *chan) {
	if (db->eng->rouse) db->eng->rouse(db->edb, chan);
}

uint64_t cj__word(cj_db *db, unsigned w) { return db->eng->word(db->edb, w); }

void cj__bump(cj_db *db, unsigned w) { db->eng->bump(db->edb, w); }
