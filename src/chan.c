/* Channels: the names the core notifies and waits on, the wake words
 * engines map them to, and the engine's ops to wait on them. */
#include <stdio.h>

#include "cj_int.h"

void cj__chan_pending(char *out, size_t cap, const char *type) {
	snprintf(out, cap, "p:%s", type);
}

unsigned cj__chan_word(const char *chan) {
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)chan; *p; p++)
		h = (h ^ *p) * 16777619u;
	return 1 + h % (CJ_CHAN_WORDS - 1);
}

void cj__wordset_add(cj_wordset *s, unsigned w) {
	if (s->bits[w / 8] & (1u << (w % 8))) return;
	s->bits[w / 8] |= (uint8_t)(1u << (w % 8));
	s->list[s->n++] = (uint16_t)w;
}

/* ---- waiting on channels: the engine's wake ops -------------------------- */

uint64_t cj__watch(cj_db *db, const char *chan) {
	return db->eng->watch(db->edb, chan);
}

int cj__wait(cj_db *db, const char *chan, uint64_t token, int64_t deadline_ms) {
	return db->eng->wait(db->edb, chan, token, deadline_ms);
}

void cj__wake(cj_db *db, const char *chan) { db->eng->wake(db->edb, chan); }
