/*
 * Fuzzes the command line of cjobs (cli_parse, which runs nothing): the
 * input is the arguments, separated by NUL bytes. Any command line gives
 * an exit code or a command to run with a valid number of arguments.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	char *buf = malloc(size + 1);
	if (!buf) return 0;
	memcpy(buf, data, size);
	buf[size] = 0;
	char *argv[MAX_ARGS + 2];
	int argc = 0;
	argv[argc++] = "cjobs";
	for (char *p = buf; p <= buf + size && argc < MAX_ARGS; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	struct cli c = {0};
	struct cli_args a = {0};
	c.url = CLI_DEFAULT_DB;
	int rc = cli_parse(&c, argc, argv, &a);
	if (rc == CLI_RUN) {
		if (!c.cmd || a.npos < c.cmd->min_args || a.npos > c.cmd->max_args || !c.url ||
		    !*c.url)
			abort();
		for (int i = 0; i < a.npos; i++)
			if (!a.pos[i]) abort();
	} else if (rc != CLI_EXIT_OK && rc != CLI_EXIT_USAGE && rc != CLI_EXIT_STORE) {
		abort();
	}
	cli_args_free(&a);
	free(buf);
	return 0;
}
