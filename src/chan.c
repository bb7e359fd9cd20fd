/* Channels: the names the core notifies and waits on, and the wake words
 * engines map them to. */
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
