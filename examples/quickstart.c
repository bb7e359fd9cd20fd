/* The README's library quick start: add a job, run it, watch it finish. */
#include <couchjobs.h>
#include <stdio.h>

#define TRY(call)                                                              \
	do {                                                                       \
		int rc_ = (call);                                                      \
		if (rc_ != CJ_OK) {                                                    \
			fprintf(stderr, "%s: %s (%s)\n", #call, cj_strerror(rc_),          \
			        cj_last_error());                                          \
			return 1;                                                          \
		}                                                                      \
	} while (0)

int main(void) {
	cj_db *db;
	TRY(cj_open("quickstart.db", NULL, &db)); /* a directory, created here */
	TRY(cj_set_type_timeout(db, "thumbnail", 30));

	/* a creator adds a job and subscribes to it */
	TRY(cj_add(db, NULL, "thumbnail", "img-42", "{\"src\":\"cat.png\"}", 0));
	cj_sub *sub;
	cj_state state;
	TRY(cj_subscribe(db, "thumbnail", "img-42", &sub, &state, NULL));

	/* a processor (normally another process) takes it, reports, finishes */
	cj_job *job;
	char *data;
	TRY(cj_accept(db, "thumbnail", NULL, &job, &data));
	printf("accepted %s with %s\n", cj_job_id(job), data);
	cj_free(data);
	TRY(cj_update(db, NULL, job, "{\"src\":\"cat.png\",\"progress\":50}"));
	TRY(cj_finish(db, NULL, job, "{\"src\":\"cat.png\",\"thumb\":\"cat-64.png\"}"));
	cj_job_free(job);

	/* the creator waits for it to finish */
	cj_event ev;
	TRY(cj_wait(&sub, 1, CJ_FINISHED, 5000, &ev));
	printf("%s is %s: %s\n", ev.id, cj_state_name(ev.state), ev.data);
	cj_event_clear(&ev);
	cj_unsubscribe(sub);
	cj_close(db);
	return 0;
}
