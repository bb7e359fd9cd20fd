/*
 * Cancellations: a flag that, once fired, ends the waits that use it.
 *
 * A wait that can be cancelled hooks itself on the cancellation with a
 * poke function that wakes it (a bump of the channel it sleeps on, or a
 * broadcast of the condition variable it waits on), then checks the flag
 * each time before it sleeps. cj_cancel_fire() sets the flag first and then
 * pokes every hooked wait, so a wait either sees the flag before it sleeps
 * or is woken after.
 */
#include <stdatomic.h>

#include "cj_int.h"

struct cj_cancel {
	atomic_int fired;
	pthread_mutex_t mu; /* guards hooks */
	cj_cancel_hook *hooks;
};

int cj_cancel_new(cj_cancel **c) {
	if (!c) return cj__fail(CJ_INVALID, "NULL argument");
	*c = NULL;
	cj_cancel *n = cj__calloc(1, sizeof *n);
	if (!n) return cj__fail(CJ_NOMEM, "out of memory");
	atomic_init(&n->fired, 0);
	if (pthread_mutex_init(&n->mu, NULL) != 0) {
		cj_free(n);
		return cj__fail(CJ_NOMEM, "cannot make a mutex");
	}
	*c = n;
	return CJ_OK;
}

void cj_cancel_fire(cj_cancel *c) {
	if (!c) return;
	atomic_store(&c->fired, 1);
	pthread_mutex_lock(&c->mu);
	for (cj_cancel_hook *h = c->hooks; h; h = h->next) h->poke(h->arg);
	pthread_mutex_unlock(&c->mu);
}

int cj_cancel_fired(const cj_cancel *c) {
	return c ? atomic_load(&((cj_cancel *)c)->fired) : 0;
}

void cj_cancel_free(cj_cancel *c) {
	if (!c) return;
	pthread_mutex_destroy(&c->mu);
	cj_free(c);
}

void cj__cancel_hook(cj_cancel *c, cj_cancel_hook *h) {
	pthread_mutex_lock(&c->mu);
	h->prev = NULL;
	h->next = c->hooks;
	if (c->hooks) c->hooks->prev = h;
	c->hooks = h;
	pthread_mutex_unlock(&c->mu);
}

void cj__cancel_unhook(cj_cancel *c, cj_cancel_hook *h) {
	pthread_mutex_lock(&c->mu);
	if (h->prev) h->prev->next = h->next;
	else c->hooks = h->next;
	if (h->next) h->next->prev = h->prev;
	h->next = h->prev = NULL;
	pthread_mutex_unlock(&c->mu);
}
