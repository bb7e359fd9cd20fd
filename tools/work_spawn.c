/* cjobs work: starting the command of a job. */
#include "work.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *env_entry(const char *name, const char *val) {
	size_t n = strlen(name) + strlen(val) + 2;
	char *s = malloc(n);
	if (s) snprintf(s, n, "%s=%s", name, val);
	return s;
}

int spawn_command(struct worker *w, cj_job *job, pid_t *pid, int *in_w, int *out_r) {
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err = 0;
	char *extra[4] = {0};
	char **envp = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int fa_ok = 0, attr_ok = 0;

	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
		err = errno;
		goto done;
	}
	extra[0] = env_entry("CJ_JOB_TYPE", cj_job_type(job));
	extra[1] = env_entry("CJ_JOB_ID", cj_job_id(job));
	extra[2] = env_entry("CJ_JOB_LOCK", cj_job_lock(job));
	extra[3] = env_entry("CJOBS_DB", w->c->url);
	envp = malloc((w->nenv + 5) * sizeof *envp);
	if (!extra[0] || !extra[1] || !extra[2] || !extra[3] || !envp) {
		err = ENOMEM;
		goto done;
	}
	memcpy(envp, w->env_base, w->nenv * sizeof *envp);
	for (int i = 0; i < 4; i++) envp[w->nenv + (size_t)i] = extra[i];
	envp[w->nenv + 4] = NULL;

	if ((err = posix_spawn_file_actions_init(&fa))) goto done;
	fa_ok = 1;
	if ((err = posix_spawn_file_actions_adddup2(&fa, in[0], 0)) ||
	    (err = posix_spawn_file_actions_adddup2(&fa, out[1], 1)))
		goto done;
	if ((err = posix_spawnattr_init(&attr))) goto done;
	attr_ok = 1;
	sigset_t none, dflt;
	sigemptyset(&none);
	sigemptyset(&dflt);
	sigaddset(&dflt, SIGINT);
	sigaddset(&dflt, SIGTERM);
	sigaddset(&dflt, SIGPIPE);
	sigaddset(&dflt, SIGHUP);
	sigaddset(&dflt, SIGQUIT);
	sigaddset(&dflt, SIGCHLD);
	if ((err = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
	                                    POSIX_SPAWN_SETSIGMASK |
	                                    POSIX_SPAWN_SETSIGDEF)) ||
	    (err = posix_spawnattr_setpgroup(&attr, 0)) ||
	    (err = posix_spawnattr_setsigmask(&attr, &none)) ||
	    (err = posix_spawnattr_setsigdefault(&attr, &dflt)))
		goto done;
	err = posix_spawnp(pid, w->argv[0], &fa, &attr, w->argv, envp);

done:
	if (fa_ok) posix_spawn_file_actions_destroy(&fa);
	if (attr_ok) posix_spawnattr_destroy(&attr);
	for (int i = 0; i < 4; i++) free(extra[i]);
	free(envp);
	if (in[0] >= 0) close(in[0]);
	if (out[1] >= 0) close(out[1]);
	if (err) {
		if (in[1] >= 0) close(in[1]);
		if (out[0] >= 0) close(out[0]);
		return err;
	}
	fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
	fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
	*in_w = in[1];
	*out_r = out[0];
	return 0;
}

static int runnable(const char *path) {
	struct stat st;
	return access(path, X_OK) == 0 && stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

int command_exists(const char *name) {
	if (strchr(name, '/')) return runnable(name);
	const char *path = getenv("PATH");
	if (!path || !*path) path = "/bin:/usr/bin";
	size_t nl = strlen(name);
	for (;;) {
		const char *e = strchr(path, ':');
		size_t dl = e ? (size_t)(e - path) : strlen(path);
		char *full = malloc(dl + nl + 3);
		if (!full) return 1; /* let the spawn tell */
		if (dl)
			snprintf(full, dl + nl + 3, "%.*s/%s", (int)dl, path, name);
		else
			snprintf(full, dl + nl + 3, "./%s", name);
		int ok = runnable(full);
		free(full);
		if (ok) return 1;
		if (!e) return 0;
		path = e + 1;
	}
}
