/* cjobs: the serve command, the HTTP server of server/. */
#include "cli.h"

#include "server.h"

const struct cli_opt cli_serve_opts[] = {
	{"--listen", NULL, "ADDR:PORT", "where to listen (default 127.0.0.1:8075; port 0: any)"},
	{"--token-file", NULL, "FILE", "require 'Authorization: Bearer TOKEN', TOKEN from FILE"},
	{"--relaxed", NULL, NULL, "commit with CJ_SYNC_RELAXED (a machine crash may lose recent commits and damage an embedded store)"},
	{NULL, NULL, NULL, NULL},
};

int cmd_serve(struct cli *c, const struct cli_args *a) {
	struct srv_config cfg = {a->val[SERVE_LISTEN], a->val[SERVE_TOKEN_FILE], c->url,
	                         a->set[SERVE_RELAXED]};
	switch (srv_run(&cfg)) {
	case 0: return CLI_EXIT_OK;
	case 2: return CLI_EXIT_USAGE;
	default: return CLI_EXIT_STORE;
	}
}
