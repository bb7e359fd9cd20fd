/* cjobs: main(): parse the command line, run the command. */
#include "cli.h"

#include <stdlib.h>

int main(int argc, char **argv) {
	struct cli c = {0};
	struct cli_args a = {0};
	const char *env = getenv("CJOBS_DB");
	c.url = env && *env ? env : CLI_DEFAULT_DB;
	int rc = cli_parse(&c, argc, argv, &a);
	if (rc == CLI_RUN) rc = c.cmd->run(&c, &a);
	cli_args_free(&a);
	cj_close(c.db);
	c.db = NULL;
	return cli_finish_output(&c, rc);
}
