/* cj_compare: job ids and data. */
#include "job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cmp_job_pad[] = "xxxxxxxxxxxxxxxxxxxxxxxx";

void cmp_job_id(char *out, size_t cap, int proc, long seq) {
	snprintf(out, cap, "p%d-%09ld", proc, seq);
}

void cmp_job_data(char *out, size_t cap, long n, int64_t t) {
	snprintf(out, cap, "{\"n\":%ld,\"t\":%lld,\"pad\":\"%s\"}", n, (long long)t, cmp_job_pad);
}

void cmp_job_new(struct cmp_new *j, int proc, long seq, int64_t t) {
	cmp_job_id(j->id, sizeof j->id, proc, seq);
	cmp_job_data(j->data, sizeof j->data, seq, t);
}

/* The integer after "key": (spaces allowed around the colon). */
static int field(const char *data, const char *key, long long *v) {
	const char *p = strstr(data, key);
	if (!p) return -1;
	p += strlen(key);
	while (*p == ' ') p++;
	if (*p != ':') return -1;
	p++;
	while (*p == ' ') p++;
	char *end;
	*v = strtoll(p, &end, 10);
	return end == p ? -1 : 0;
}

int cmp_job_parse(const char *data, long *n, int64_t *t) {
	long long a, b;
	if (!data || field(data, "\"n\"", &a) != 0 || field(data, "\"t\"", &b) != 0) return -1;
	*n = (long)a;
	*t = (int64_t)b;
	return 0;
}
