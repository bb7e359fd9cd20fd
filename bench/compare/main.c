/*
 * cj_compare: couchjobs side by side with beanstalkd, Redis and a plain
 * PostgreSQL SKIP LOCKED queue and an SQLite queue. One run measures one system in one
 * durability mode on one workload and appends its figures to a TSV file;
 * bench/compare.sh starts the servers, runs every combination and prints
 * the table. See bench/compare.sh for the whole picture.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "couchjobs.h"
#include "net.h"
#include "run.h"
#include "util.h"

static const struct {
	const char *name;
	const struct cmp_backend *be;
	size_t batch;
	int pg_engine;
} systems[] = {
	{"cj-lmdb", &cmp_couchjobs, 1, 0},
	{"cj-lmdb-batch", &cmp_couchjobs, CMP_BATCH, 0},
	{"cj-pg", &cmp_couchjobs, 1, 1},
	{"cj-pg-batch", &cmp_couchjobs, CMP_BATCH, 1},
	{"beanstalkd", &cmp_beanstalkd, 1, 0},
	{"redis", &cmp_redis, 1, 0},
	{"pgqueue", &cmp_pgqueue, 1, 0},
	{"cj-http", &cmp_http, 1, 0},
	{"sqlite", &cmp_sqlite, 1, 0},
};
#define NSYSTEMS (sizeof systems / sizeof systems[0])

static const char *mode_name(const struct cmp_run *r) {
	return r->conf.durable ? "durable" : "relaxed";
}

void cmp_result(const struct cmp_run *r, const char *key, double value, const char *fmt, ...) {
	char note[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(note, sizeof note, fmt, ap);
	va_end(ap);
	fprintf(stderr, "  => %s %s %s: %.1f (%s)\n", r->conf.system, mode_name(r), key, value, note);
	if (!r->tsv) return;
	FILE *f = fopen(r->tsv, "a");
	if (!f) cmp_die("%s: %s", r->tsv, strerror(errno));
	fprintf(f, "%s\t%s\t%s\t%.3f\t%s\n", r->conf.system, mode_name(r), key, value, note);
	if (fclose(f) != 0) cmp_die("%s: %s", r->tsv, strerror(errno));
}

static void usage(FILE *f) {
	fprintf(f,
	        "usage: cj_compare --system S --mode durable|relaxed --workload W [options]\n"
	        "       cj_compare --ping beanstalkd|redis|tcp --port P\n"
	        "       cj_compare --version\n"
	        "systems:   cj-lmdb cj-lmdb-batch cj-pg cj-pg-batch beanstalkd redis pgqueue cj-http sqlite\n"
	        "workloads: enqueue drain mixed latency scale\n"
	        "options:\n"
	        "  --dir DIR         scratch directory for embedded stores and SQLite\n"
	        "  --url URL         the PostgreSQL server (pgqueue, cj-pg*)\n"
	        "  --port P          beanstalkd or Redis on 127.0.0.1\n"
	        "  --cjobs PATH      cj-http: the cjobs binary whose `serve` it measures\n"
	        "  --tsv FILE        append results here (system, mode, key, value, note)\n"
	        "  --seconds S       enqueue: how long the producer runs (default 5)\n"
	        "  --jobs N          drain: jobs preloaded and drained (default 20000)\n"
	        "  --procs N         drain: processor processes (default 1)\n"
	        "  --warmup S        mixed: warm-up (default 2)\n"
	        "  --window S        mixed: measured window (default 10)\n"
	        "  --samples N       latency: samples (default 300)\n"
	        "  --size P          scale: jobs pending (default 10000)\n"
	        "  --scale-drain D   scale: jobs timed (default 20000)\n"
	        "  --time-limit S    fail the run after S seconds (default 3600)\n");
}

static long num(const char *s, const char *opt) {
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < 0) cmp_die("%s: not a number: %s", opt, s);
	return v;
}

static double secs(const char *s, const char *opt) {
	char *end;
	double v = strtod(s, &end);
	if (*end || v < 0) cmp_die("%s: not a number of seconds: %s", opt, s);
	return v;
}

/* --ping: 0 if the server on port answers its protocol. */
static int ping(const char *what, int port) {
	struct net_conn *c;
	if (net_probe(port) != 0) return 1;
	if (strcmp(what, "tcp") == 0) return 0;
	c = cmp_xmalloc(sizeof *c);
	net_connect(c, port);
	int ok;
	if (strcmp(what, "redis") == 0) {
		net_send(c, "PING\r\n", 6);
		ok = strcmp(net_line(c), "+PONG") == 0;
	} else if (strcmp(what, "beanstalkd") == 0) {
		net_send(c, "list-tubes\r\n", 12);
		ok = strncmp(net_line(c), "OK ", 3) == 0;
	} else {
		cmp_die("--ping beanstalkd, redis or tcp, not %s", what);
	}
	net_close(c);
	free(c);
	return ok ? 0 : 1;
}

enum {
	O_SYSTEM = 256, O_MODE, O_WORKLOAD, O_DIR, O_URL, O_PORT, O_TSV, O_SECONDS, O_JOBS,
	O_PROCS, O_WARMUP, O_WINDOW, O_SAMPLES, O_SIZE, O_SCALE_DRAIN, O_LIMIT, O_PING, O_VERSION,
	O_HELP, O_CJOBS
};

int main(int argc, char **argv) {
	static const struct option opts[] = {
		{"system", 1, 0, O_SYSTEM},   {"mode", 1, 0, O_MODE},
		{"workload", 1, 0, O_WORKLOAD}, {"dir", 1, 0, O_DIR},
		{"url", 1, 0, O_URL},         {"port", 1, 0, O_PORT},
		{"tsv", 1, 0, O_TSV},         {"seconds", 1, 0, O_SECONDS},
		{"jobs", 1, 0, O_JOBS},       {"procs", 1, 0, O_PROCS},
		{"warmup", 1, 0, O_WARMUP},   {"window", 1, 0, O_WINDOW},
		{"samples", 1, 0, O_SAMPLES}, {"size", 1, 0, O_SIZE},
		{"scale-drain", 1, 0, O_SCALE_DRAIN}, {"time-limit", 1, 0, O_LIMIT},
		{"ping", 1, 0, O_PING},       {"version", 0, 0, O_VERSION},
		{"help", 0, 0, O_HELP},       {"cjobs", 1, 0, O_CJOBS},
		{0, 0, 0, 0},
	};
	struct cmp_run r;
	const char *system = NULL, *mode = NULL, *workload = NULL, *ping_what = NULL;
	long limit = 3600;
	memset(&r, 0, sizeof r);
	r.seconds = 5;
	r.jobs = 20000;
	r.procs = 1;
	r.warmup = 2;
	r.window = 10;
	r.samples = 300;
	r.size = 10000;
	r.scale_drain = 20000;
	r.conf.dir = "/var/tmp";
	int o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case O_SYSTEM: system = optarg; break;
		case O_MODE: mode = optarg; break;
		case O_WORKLOAD: workload = optarg; break;
		case O_DIR: r.conf.dir = optarg; break;
		case O_URL: r.conf.url = optarg; break;
		case O_PORT: r.conf.port = (int)num(optarg, "--port"); break;
		case O_TSV: r.tsv = optarg; break;
		case O_SECONDS: r.seconds = secs(optarg, "--seconds"); break;
		case O_JOBS: r.jobs = num(optarg, "--jobs"); break;
		case O_PROCS: r.procs = (int)num(optarg, "--procs"); break;
		case O_WARMUP: r.warmup = secs(optarg, "--warmup"); break;
		case O_WINDOW: r.window = secs(optarg, "--window"); break;
		case O_SAMPLES: r.samples = num(optarg, "--samples"); break;
		case O_SIZE: r.size = num(optarg, "--size"); break;
		case O_SCALE_DRAIN: r.scale_drain = num(optarg, "--scale-drain"); break;
		case O_LIMIT: limit = num(optarg, "--time-limit"); break;
		case O_PING: ping_what = optarg; break;
		case O_CJOBS: r.conf.cjobs = optarg; break;
		case O_VERSION: printf("%s\n", cj_version()); return 0;
		case 'h':
		case O_HELP: usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) cmp_die("unexpected argument: %s", argv[optind]);
	if (ping_what) {
		if (r.conf.port <= 0) cmp_die("--ping needs --port");
		return ping(ping_what, r.conf.port);
	}
	if (!system || !mode || !workload) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < NSYSTEMS && !r.be; i++)
		if (strcmp(systems[i].name, system) == 0) {
			r.be = systems[i].be;
			r.conf.batch = systems[i].batch;
			r.conf.pg_engine = systems[i].pg_engine;
		}
	if (!r.be) cmp_die("unknown system %s (see --help)", system);
	r.conf.system = system;
	if (strcmp(mode, "durable") == 0)
		r.conf.durable = 1;
	else if (strcmp(mode, "relaxed") != 0)
		cmp_die("--mode durable or relaxed, not %s", mode);
	int needs_url = r.be == &cmp_pgqueue || r.conf.pg_engine;
	if (needs_url && !r.conf.url) cmp_die("%s needs --url", system);
	if ((r.be == &cmp_beanstalkd || r.be == &cmp_redis) && r.conf.port <= 0)
		cmp_die("%s needs --port", system);
	if (r.be == &cmp_http && !r.conf.cjobs) cmp_die("%s needs --cjobs", system);
	if (r.procs < 1 || r.procs > CMP_MAX_PROCS) cmp_die("--procs 1 to %d", CMP_MAX_PROCS);
	if (r.jobs < 1 || r.samples < 1 || r.scale_drain < 1) cmp_die("counts must be positive");
	snprintf(r.conf.tag, sizeof r.conf.tag, "%s_%d", workload, (int)getpid());

	fprintf(stderr, "== %s, %s, %s\n", system, mode, workload);
	cmp_watchdog((int)limit);
	if (strcmp(workload, "enqueue") == 0)
		cmp_workload_enqueue(&r);
	else if (strcmp(workload, "drain") == 0)
		cmp_workload_drain(&r);
	else if (strcmp(workload, "mixed") == 0)
		cmp_workload_mixed(&r);
	else if (strcmp(workload, "latency") == 0)
		cmp_workload_latency(&r);
	else if (strcmp(workload, "scale") == 0)
		cmp_workload_scale(&r);
	else
		cmp_die("unknown workload %s (see --help)", workload);
	return 0;
}
