/*
 * GET /metrics in Prometheus' text format (version 0.0.4): jobs per type and
 * state from the store's counts (cj_list_type_counts), counters of what this server did, and
 * histograms: the accept long poll's wait, and per type the wait of jobs
 * from due to accept and their run time from accept to finish or fail.
 *
 * The per-type histograms keep label cardinality bounded: the first
 * SRV_METRICS_TYPES types seen get series of their own, jobs of any later
 * type share the series with type="" (no type is empty).
 */
#include "server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Accept times by lock, to measure run time from accept to finish or fail.
 * A fixed table, so memory is bounded: a job whose slot was taken by
 * another is not measured. */
#define RUNS_SLOTS 4096
struct srv_runs {
	pthread_mutex_t mu;
	struct {
		char lock[40];
		int64_t ms;
	} slot[RUNS_SLOTS];
};

/* The histograms of one type; the last entry of the table is "" and takes
 * the jobs of every type beyond the first SRV_METRICS_TYPES. */
struct type_hists {
	char type[CJ_MAX_TYPE + 1];
	struct srv_hist wait; /* from due to accept */
	struct srv_hist run;  /* from accept to finish or fail */
};

struct srv_types_hists {
	pthread_mutex_t mu;        /* serialises adding entries */
	_Atomic size_t n;          /* entries published (readers need no lock) */
	struct type_hists e[SRV_METRICS_TYPES + 1];
};

static const double wait_bounds[SRV_HIST_BUCKETS - 1] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                         0.25,  0.5,   1,    5,     30};
static const double due_bounds[SRV_HIST_BUCKETS - 1] = {0.005, 0.01, 0.05, 0.1, 0.5, 1,
                                                        5,     30,   60,   300, 3600};
static const double run_bounds[SRV_HIST_BUCKETS - 1] = {0.005, 0.01, 0.05, 0.1, 0.5, 1,
                                                        5,     10,   60,   300, 3600};

int srv_metrics_init(struct srv *s) {
	s->m.accept_wait.bounds = wait_bounds;
	s->runs = calloc(1, sizeof *s->runs);
	s->hists = calloc(1, sizeof *s->hists);
	if (!s->runs || !s->hists) {
		free(s->runs);
		free(s->hists);
		s->runs = NULL;
		s->hists = NULL;
		return -1;
	}
	pthread_mutex_init(&s->runs->mu, NULL);
	pthread_mutex_init(&s->hists->mu, NULL);
	for (size_t i = 0; i <= SRV_METRICS_TYPES; i++) {
		s->hists->e[i].wait.bounds = due_bounds;
		s->hists->e[i].run.bounds = run_bounds;
	}
	return 0;
}

void srv_metrics_free(struct srv *s) {
	if (!s->runs) return;
	pthread_mutex_destroy(&s->runs->mu);
	pthread_mutex_destroy(&s->hists->mu);
	free(s->runs);
	free(s->hists);
	s->runs = NULL;
	s->hists = NULL;
}

void srv_hist_observe(struct srv_hist *h, int64_t us) {
	if (us < 0) us = 0;
	double v = (double)us / 1e6;
	int i = 0;
	while (i < SRV_HIST_BUCKETS - 1 && v > h->bounds[i]) i++;
	atomic_fetch_add(&h->count[i], 1);
	atomic_fetch_add(&h->sum_us, (uint64_t)us);
}

/* The histograms of `type`: its entry, made on first use, or the shared
 * one of types beyond the cap. At most SRV_METRICS_TYPES comparisons. */
static struct type_hists *type_hists(struct srv *s, const char *type) {
	struct srv_types_hists *t = s->hists;
	size_t n = atomic_load(&t->n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(t->e[i].type, type) == 0) return &t->e[i];
	struct type_hists *e = &t->e[SRV_METRICS_TYPES]; /* type "" */
	pthread_mutex_lock(&t->mu);
	size_t i = n;
	n = atomic_load(&t->n);
	for (; i < n; i++)
		if (strcmp(t->e[i].type, type) == 0) break;
	if (i < n) {
		e = &t->e[i];
	} else if (n < SRV_METRICS_TYPES && strlen(type) <= CJ_MAX_TYPE) {
		e = &t->e[n];
		strcpy(e->type, type);
		atomic_store(&t->n, n + 1); /* publishes the name written above */
	}
	pthread_mutex_unlock(&t->mu);
	return e;
}

static size_t lock_slot(const char *lock) {
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)lock; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % RUNS_SLOTS;
}

void srv_job_accepted(struct srv *s, const cj_job *job) {
	size_t i = lock_slot(cj_job_lock(job));
	pthread_mutex_lock(&s->runs->mu);
	snprintf(s->runs->slot[i].lock, sizeof s->runs->slot[i].lock, "%s", cj_job_lock(job));
	s->runs->slot[i].ms = cli_now_ms();
	pthread_mutex_unlock(&s->runs->mu);
	/* the wait since the job was due: when it was last made pending or its
	 * scheduled time, the later; read back from the store, unless another
	 * acceptance took the job meanwhile (its fence moved on) */
	cj_job_info info = {0};
	if (cj_get_job(s->db, NULL, cj_job_type(job), cj_job_id(job), &info) != CJ_OK) return;
	if (info.fence == cj_job_fence(job) && info.added_ms > 0) {
		int64_t due = info.added_ms;
		if (info.sched_time > 0 && info.sched_time <= INT64_MAX / 1000 &&
		    info.sched_time * 1000 > due)
			due = info.sched_time * 1000;
		int64_t waited = cli_epoch_ms() - due;
		if (waited < 0) waited = 0; /* a clock stepped back */
		srv_hist_observe(&type_hists(s, info.type)->wait,
		                 waited > INT64_MAX / 1000 ? INT64_MAX : waited * 1000);
	}
	cj_job_info_clear(&info);
}

void srv_run_ended(struct srv *s, const char *type, const char *lock) {
	size_t i = lock_slot(lock);
	int64_t start = -1;
	pthread_mutex_lock(&s->runs->mu);
	if (strcmp(s->runs->slot[i].lock, lock) == 0) {
		start = s->runs->slot[i].ms;
		s->runs->slot[i].lock[0] = 0;
	}
	pthread_mutex_unlock(&s->runs->mu);
	if (start >= 0) srv_hist_observe(&type_hists(s, type)->run, (cli_now_ms() - start) * 1000);
}

/* ---- the text format ---------------------------------------------------- */

/* Writes a label value with \\, \" and \n escaped. */
static void label(FILE *f, const char *v) {
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

static void counter(FILE *f, const char *name, const char *help, _Atomic uint64_t *v) {
	fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
	        (unsigned long long)atomic_load(v));
}

static void hist_head(FILE *f, const char *name, const char *help) {
	fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
}

/* The samples of one histogram; `type` NULL: without a type label. */
static void hist(FILE *f, const char *name, const char *type, struct srv_hist *h) {
	uint64_t cum = 0;
	for (int i = 0; i < SRV_HIST_BUCKETS; i++) {
		cum += atomic_load(&h->count[i]);
		fprintf(f, "%s_bucket{", name);
		if (type) {
			fputs("type=\"", f);
			label(f, type);
			fputs("\",", f);
		}
		if (i < SRV_HIST_BUCKETS - 1)
			fprintf(f, "le=\"%g\"} %llu\n", h->bounds[i], (unsigned long long)cum);
		else
			fprintf(f, "le=\"+Inf\"} %llu\n", (unsigned long long)cum);
	}
	static const char *const ends[] = {"_sum", "_count"};
	for (int k = 0; k < 2; k++) {
		fprintf(f, "%s%s", name, ends[k]);
		if (type) {
			fputs("{type=\"", f);
			label(f, type);
			fputs("\"}", f);
		}
		if (k == 0)
			fprintf(f, " %.6f\n", (double)atomic_load(&h->sum_us) / 1e6);
		else
			fprintf(f, " %llu\n", (unsigned long long)cum);
	}
}

/* The per-type histograms: one series per type seen, then the shared one
 * of the types beyond the cap (type="") once it has samples. */
static void type_hists_text(FILE *f, struct srv_types_hists *t) {
	size_t n = atomic_load(&t->n);
	struct type_hists *other = &t->e[SRV_METRICS_TYPES];
	int more = atomic_load(&other->wait.sum_us) || atomic_load(&other->run.sum_us);
	for (int i = 0; i < SRV_HIST_BUCKETS && !more; i++)
		more = atomic_load(&other->wait.count[i]) || atomic_load(&other->run.count[i]);
	hist_head(f, "couchjobs_server_job_wait_seconds",
	          "From when a job was due (added, made pending again, or its scheduled time, "
	          "the latest) to its accept through this server, by type.");
	for (size_t i = 0; i < n; i++)
		hist(f, "couchjobs_server_job_wait_seconds", t->e[i].type, &t->e[i].wait);
	if (more) hist(f, "couchjobs_server_job_wait_seconds", "", &other->wait);
	hist_head(f, "couchjobs_server_job_run_seconds",
	          "From accept to finish or fail of jobs run through this server, by type.");
	for (size_t i = 0; i < n; i++)
		hist(f, "couchjobs_server_job_run_seconds", t->e[i].type, &t->e[i].run);
	if (more) hist(f, "couchjobs_server_job_run_seconds", "", &other->run);
}

/* A gauge per type: the integer `key` of each type's entry (a type whose
 * entry holds none there has no sample). */
static void type_gauge(FILE *f, json_t *types, const char *name, const char *help,
                       const char *key) {
	fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
	const char *type;
	json_t *e;
	json_object_foreach(types, type, e) {
		json_t *v = json_object_get(e, key);
		if (!json_is_integer(v)) continue;
		fprintf(f, "%s{type=\"", name);
		label(f, type);
		fprintf(f, "\"} %lld\n", (long long)json_integer_value(v));
	}
}

static void jobs_gauge(FILE *f, json_t *types) {
	static const char *states[] = {"pending", "scheduled", "running", "finished", "dead"};
	fputs("# HELP couchjobs_jobs Jobs in the store by type and state (pending: due now; "
	      "scheduled: pending, due later).\n# TYPE couchjobs_jobs gauge\n", f);
	const char *type;
	json_t *e;
	json_object_foreach(types, type, e) {
		json_t *c = json_object_get(e, "counts");
		for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
			fputs("couchjobs_jobs{type=\"", f);
			label(f, type);
			fprintf(f, "\",state=\"%s\"} %lld\n", states[i],
			        (long long)json_integer_value(json_object_get(c, states[i])));
		}
	}
	type_gauge(f, types, "couchjobs_oldest_pending_age_seconds",
	           "How long the most overdue pending job has been due (jobs added with a "
	           "scheduled time only: the store records no add time).",
	           "oldest_pending_age");
	type_gauge(f, types, "couchjobs_pending_untimed_jobs",
	           "Pending jobs added without a scheduled time (their age is unknown).",
	           "pending_untimed");
	type_gauge(f, types, "couchjobs_retrying_jobs",
	           "Pending jobs waiting for another attempt after a failed or lost one.",
	           "retrying");
	type_gauge(f, types, "couchjobs_type_timeout_seconds", "The activity timeout of a type.",
	           "timeout");
}

void srv_h_metrics(struct srv_req *r) {
	struct srv *s = r->srv;
	struct srv_metrics *m = &s->m;
	json_t *types;
	int rc = srv_count_types(s, &types);
	if (rc != CJ_OK) {
		srv_reply_cj(r, rc);
		return;
	}
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f) {
		json_decref(types);
		srv_reply_cj(r, CJ_NOMEM);
		return;
	}
	jobs_gauge(f, types);
	json_decref(types);
	counter(f, "couchjobs_server_jobs_added_total", "Jobs added or re-enqueued through this server.", &m->added);
	counter(f, "couchjobs_server_jobs_removed_total", "Jobs removed through this server.", &m->removed);
	counter(f, "couchjobs_server_jobs_accepted_total", "Jobs handed out by accept.", &m->accepted);
	counter(f, "couchjobs_server_accept_empty_total", "Accept long polls that ended with no job.", &m->accept_empty);
	counter(f, "couchjobs_server_jobs_updated_total", "Successful updates.", &m->updated);
	counter(f, "couchjobs_server_jobs_finished_total", "Successful finishes.", &m->finished);
	counter(f, "couchjobs_server_jobs_resubmitted_total", "Successful resubmits.", &m->resubmitted);
	counter(f, "couchjobs_server_jobs_failed_total", "Successful fails (attempts ended as failed).", &m->failed);
	counter(f, "couchjobs_server_jobs_retried_total", "Dead jobs redriven by retry.", &m->retried);
	counter(f, "couchjobs_server_jobs_halted_total", "Updates, finishes and fails refused with CJ_HALT (409).", &m->halted);
	fputs("# HELP couchjobs_server_http_responses_total HTTP answers by status class.\n"
	      "# TYPE couchjobs_server_http_responses_total counter\n", f);
	for (int i = 1; i <= 5; i++)
		fprintf(f, "couchjobs_server_http_responses_total{class=\"%dxx\"} %llu\n", i,
		        (unsigned long long)atomic_load(&m->http[i]));
	fprintf(f, "# HELP couchjobs_server_waiting_requests Accept long polls and event streams "
	        "open now.\n# TYPE couchjobs_server_waiting_requests gauge\n"
	        "couchjobs_server_waiting_requests %d\n", atomic_load(&s->waiters));
	hist_head(f, "couchjobs_server_accept_wait_seconds", "How long successful accept long polls waited for a job.");
	hist(f, "couchjobs_server_accept_wait_seconds", NULL, &m->accept_wait);
	type_hists_text(f, s->hists);
	if (fclose(f) != 0) {
		free(text);
		srv_reply_cj(r, CJ_NOMEM);
		return;
	}
	srv_reply_text(r, 200, text, "text/plain; version=0.0.4; charset=utf-8");
}
