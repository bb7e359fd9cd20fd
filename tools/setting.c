/*
 * cjobs: the one flow of a type's settings (retry policy, limits,
 * retention): print it, set the options given over the current value, or
 * clear it. Each setting is a table of callbacks (struct cli_setting).
 */
#include "cli.h"

#include <string.h>

static int none(struct cli *c, const struct cli_setting *s, const char *type) {
	cli_msg(c, "type '%s' has no %s", type, s->name);
	return CLI_EXIT_NOT_FOUND;
}

static int failed(struct cli *c, int rc, const char *verb, const char *name) {
	char what[64];
	snprintf(what, sizeof what, "cannot %s the %s", verb, name);
	return cli_fail(c, rc, what);
}

int cli_setting_run(struct cli *c, const struct cli_args *a, const struct cli_setting *s,
                    void *v) {
	const char *type = a->pos[0];
	int setting = 0, rc;
	for (int i = s->first_opt; i <= s->last_opt; i++) setting |= a->set[i];
	if ((rc = cli_judged(c, cj_type_check(type)))) return rc;
	if (setting && a->set[s->clear_opt]) return cli_usage(c, "give options or --clear, not both");
	memcpy(v, s->init, s->size);
	if (setting && (rc = s->parse(c, a, v))) return rc; /* judged before opening */
	if ((rc = cli_open(c, 0))) return rc;
	if (a->set[s->clear_opt]) {
		rc = s->clear(c->db, type);
		if (rc == CJ_NOT_FOUND) return none(c, s, type);
		return rc == CJ_OK ? CLI_EXIT_OK : failed(c, rc, "clear", s->name);
	}
	rc = s->get(c->db, type, v);
	if (setting) {
		if (rc != CJ_OK && rc != CJ_NOT_FOUND) return failed(c, rc, "read", s->name);
		if (rc == CJ_NOT_FOUND) memcpy(v, s->init, s->size);
		if ((rc = s->parse(c, a, v))) return rc; /* over the current value */
		rc = s->set(c->db, type, v);
		if (rc == CJ_INVALID) return cli_usage(c, "%s", cj_last_error());
		return rc == CJ_OK ? CLI_EXIT_OK : failed(c, rc, "set", s->name);
	}
	if (rc == CJ_NOT_FOUND) return none(c, s, type);
	if (rc != CJ_OK) return failed(c, rc, "read", s->name);
	s->print(v);
	return CLI_EXIT_OK;
}
