/* cjobs work: riding out an outage of the store (a database server that
 * restarts, a network that drops).
 *
 * Every thread that calls the store (the acceptor, the slots' heartbeats,
 * finishes and hand-backs) reports a failing call with a code a retry may
 * cure to outage_failed(), and a call the store answered to
 * outage_ended() (a conflict between transactions is retried the same way,
 * but is not an outage). The first failure of an outage is logged once, for the
 * whole worker, and so is the store's return; in between the callers retry
 * with a capped exponential backoff and jitter (outage_wait_ms()), and
 * running commands go on. With --outage-max, an outage that lasts longer
 * stops the worker as a SIGTERM would, and it exits 1; so does a code a
 * retry cannot cure (store_broken()).
 */
#include "work.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int transient(int rc) {
	return rc == CJ_STORE || rc == CJ_CONFLICT || rc == CJ_NOMEM || rc == CJ_TIMEOUT;
}

static int64_t backoff_next(int64_t prev_ms) {
	if (prev_ms < RETRY_FIRST_MS) return RETRY_FIRST_MS;
	return prev_ms >= RETRY_CAP_MS / 2 ? RETRY_CAP_MS : prev_ms * 2;
}

/* A splitmix64 step over one word shared by the threads: uniform enough to
 * spread the workers' retries, and lock-free. */
static uint64_t jitter_bits(void) {
	static _Atomic uint64_t state;
	uint64_t s = atomic_load(&state);
	if (!s) {
		uint64_t seed = (uint64_t)cli_epoch_ms() * 2654435761u ^ (uint64_t)getpid();
		atomic_compare_exchange_strong(&state, &s, seed | 1);
	}
	uint64_t z = atomic_fetch_add(&state, 0x9e3779b97f4a7c15ull) + 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int64_t outage_wait_ms(int64_t *backoff) {
	*backoff = backoff_next(*backoff);
	int64_t half = *backoff / 2;
	return half + (int64_t)(jitter_bits() % (uint64_t)(half + 1));
}

int outage_failed(struct worker *w, int rc, const char *what) {
	if (!transient(rc)) return 0;
	if (rc == CJ_CONFLICT) return 1; /* contention, not an outage: no log */
	int64_t now = cli_now_ms();
	long long since = 0;
	if (atomic_compare_exchange_strong(&w->outage_since, &since, now)) {
		char bound[96] = "";
		if (w->outage_max_ms)
			snprintf(bound, sizeof bound, " for up to %lld s (--outage-max)",
			         (long long)(w->outage_max_ms / 1000));
		cli_msg(w->c, "store unavailable (%s: %s: %s); retrying%s, running commands "
		        "go on", what, cj_err_name(rc), cj_last_error(), bound);
		return 1;
	}
	if (!w->outage_max_ms || now - since < w->outage_max_ms) return 1;
	if (!atomic_exchange(&w->outage_gave_up, 1)) {
		cli_msg(w->c, "store unavailable for %lld ms, over --outage-max: stopping "
		        "(%s: %s: %s)", (long long)(now - since), what, cj_err_name(rc),
		        cj_last_error());
		stop_failed(w);
	}
	return 0;
}

void outage_ended(struct worker *w) {
	if (!atomic_load(&w->outage_since)) return;
	long long since = atomic_exchange(&w->outage_since, 0);
	if (since) cli_msg(w->c, "store available again after %lld ms", cli_now_ms() - since);
}

void store_broken(struct worker *w, int rc, const char *what) {
	if (atomic_load(&w->outage_gave_up)) return; /* stopping already, and said why */
	cli_fail(w->c, rc, what);
	stop_failed(w);
}

/* After a failed open: 1 when the store's server could not be reached, or
 * went away while the store was being opened (it is down, or restarting),
 * which is worth waiting for; 0 for a store that is there but wrong (a bad
 * URL, not a couchjobs store, a format this library does not know) or
 * refuses us (a wrong role, password or database), which waiting does not
 * cure. The library has one code for both (CJ_STORE): its detail tells. */
static int unreachable(int rc) {
	static const char *const down[] = {
		"postgresql connect:", "connection lost", "no answer from the server",
		"the database system is", "terminating connection",
	};
	static const char *const refused[] = {"authentication", "does not exist"};
	const char *d = cj_last_error();
	if (rc != CJ_STORE || strncmp(d, "postgresql ", 11) != 0) return 0;
	for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
		if (strstr(d, refused[i])) return 0;
	for (size_t i = 0; i < sizeof down / sizeof *down; i++)
		if (strstr(d, down[i])) return 1;
	return 0;
}

int outage_open(struct worker *w, int sigfd) {
	for (int64_t backoff = 0;;) {
		int rc = cli_try_open(w->c, 1);
		if (rc == CJ_OK) {
			outage_ended(w);
			return CLI_EXIT_OK;
		}
		if (!unreachable(rc)) return cli_open_failed(w->c, rc);
		if (!outage_failed(w, rc, "open")) return CLI_EXIT_STORE;
		struct pollfd p = {sigfd, POLLIN, 0};
		if (poll(&p, 1, (int)outage_wait_ms(&backoff)) > 0) {
			cli_msg(w->c, "stopping");
			return CLI_EXIT_OK;
		}
	}
}
