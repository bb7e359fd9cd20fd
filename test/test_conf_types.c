/*
 * Conformance: job types and their timeouts (include/couchjobs.h "Job types").
 *
 * Public API only; the store comes from t_open() so the same cases run on
 * every engine.
 */
#include "testutil.h"

/* set, then get gives the value; setting again overwrites it. */
TEST(types_set_get) {
	cj_db *db = t_open();
	int64_t s = -1;
	CHECK_OK(cj_set_type_timeout(db, "mail", 5));
	CHECK_OK(cj_get_type_timeout(db, "mail", &s));
	CHECK_INT(s, 5);
	CHECK_OK(cj_set_type_timeout(db, "mail", 77));
	CHECK_OK(cj_get_type_timeout(db, "mail", &s));
	CHECK_INT(s, 77);
	/* another type is independent */
	CHECK_OK(cj_set_type_timeout(db, "mail2", 9));
	CHECK_OK(cj_get_type_timeout(db, "mail", &s));
	CHECK_INT(s, 77);
	CHECK_OK(cj_get_type_timeout(db, "mail2", &s));
	CHECK_INT(s, 9);
	cj_close(db);
}

/* The bounds of a timeout: 1 and CJ_MAX_TYPE_TIMEOUT are accepted; 0,
 * negative and one over the maximum are CJ_INVALID and change nothing. */
TEST(types_timeout_bounds) {
	cj_db *db = t_open();
	int64_t s = -1;
	CHECK_OK(cj_set_type_timeout(db, "t", 1));
	CHECK_OK(cj_get_type_timeout(db, "t", &s));
	CHECK_INT(s, 1);
	CHECK_OK(cj_set_type_timeout(db, "t", CJ_MAX_TYPE_TIMEOUT));
	CHECK_OK(cj_get_type_timeout(db, "t", &s));
	CHECK_INT(s, CJ_MAX_TYPE_TIMEOUT);
	CHECK_RC(cj_set_type_timeout(db, "t", 0), CJ_INVALID);
	CHECK_RC(cj_set_type_timeout(db, "t", -1), CJ_INVALID);
	CHECK_RC(cj_set_type_timeout(db, "t", INT64_MIN), CJ_INVALID);
	CHECK_RC(cj_set_type_timeout(db, "t", CJ_MAX_TYPE_TIMEOUT + 1), CJ_INVALID);
	CHECK_RC(cj_set_type_timeout(db, "t", INT64_MAX), CJ_INVALID);
	CHECK_OK(cj_get_type_timeout(db, "t", &s));
	CHECK_INT(s, CJ_MAX_TYPE_TIMEOUT);
	/* a rejected set on a new type creates nothing */
	CHECK_RC(cj_set_type_timeout(db, "u", 0), CJ_INVALID);
	CHECK_RC(cj_get_type_timeout(db, "u", &s), CJ_NOT_FOUND);
	char **types = NULL;
	size_t n = 0;
	CHECK_OK(cj_get_types(db, NULL, &types, &n));
	CHECK_INT(n, 1);
	CHECK_STR(types[0], "t");
	free_types(types, n);
	cj_close(db);
}

/* A type that never had a timeout: get and clear are CJ_NOT_FOUND. */
TEST(types_missing) {
	cj_db *db = t_open();
	int64_t s = 123;
	CHECK_RC(cj_get_type_timeout(db, "nope", &s), CJ_NOT_FOUND);
	CHECK_RC(cj_clear_type_timeout(db, "nope"), CJ_NOT_FOUND);
	cj_close(db);
}

/* clear: get is CJ_NOT_FOUND, the type leaves get_types, new jobs cannot be
 * added (CJ_NO_TYPE_TIMEOUT) but existing jobs stay; clearing twice is
 * CJ_NOT_FOUND; setting it again makes it usable again. */
TEST(types_clear) {
	cj_db *db = t_open();
	CHECK_OK(cj_set_type_timeout(db, "a", 10));
	CHECK_OK(cj_set_type_timeout(db, "b", 10));
	CHECK_OK(cj_add(db, NULL, "a", "j1", "{\"k\":1}", 0));
	CHECK_OK(cj_clear_type_timeout(db, "a"));
	int64_t s = 0;
	CHECK_RC(cj_get_type_timeout(db, "a", &s), CJ_NOT_FOUND);
	CHECK_RC(cj_clear_type_timeout(db, "a"), CJ_NOT_FOUND);
	char **types = NULL;
	size_t n = 0;
	CHECK_OK(cj_get_types(db, NULL, &types, &n));
	CHECK_INT(n, 1);
	CHECK_STR(types[0], "b");
	free_types(types, n);
	/* existing job stays */
	cj_state st = 0;
	CHECK_OK(cj_get_job_state(db, NULL, "a", "j1", &st));
	CHECK_INT(st, CJ_PENDING);
	CHECK_INT(count_jobs(db, "a"), 1);
	/* new jobs refused, nothing written */
	CHECK_RC(cj_add(db, NULL, "a", "j2", NULL, 0), CJ_NO_TYPE_TIMEOUT);
	CHECK_RC(cj_get_job_state(db, NULL, "a", "j2", &st), CJ_NOT_FOUND);
	CHECK_INT(count_jobs(db, "a"), 1);
	/* re-adding the existing job also needs the timeout */
	CHECK_RC(cj_add(db, NULL, "a", "j1", "{\"k\":2}", 0), CJ_NO_TYPE_TIMEOUT);
	/* set again: usable again */
	CHECK_OK(cj_set_type_timeout(db, "a", 3));
	CHECK_OK(cj_add(db, NULL, "a", "j2", NULL, 0));
	CHECK_INT(count_jobs(db, "a"), 2);
	cj_close(db);
}

/* get_types: byte order, every type once, NULL array for an empty list,
 * each string and the array freed with cj_free(). */
TEST(types_list_sorted) {
	cj_db *db = t_open();
	char **types = (char **)&types; /* not NULL, to see it set */
	size_t n = 99;
	CHECK_OK(cj_get_types(db, NULL, &types, &n));
	CHECK_INT(n, 0);
	CHECK(types == NULL);

	/* inserted out of order; byte order puts upper case first and the
	 * two-byte UTF-8 character last */
	const char *in[] = {"b", "\xc3\xa9t\xc3\xa9", "a", "ab", "B", "a b", "aa", "z"};
	const char *want[] = {"B", "a", "a b", "aa", "ab", "b", "z", "\xc3\xa9t\xc3\xa9"};
	for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
		CHECK_OK(cj_set_type_timeout(db, in[i], (int64_t)(i + 1)));
	/* setting an existing type again does not duplicate it */
	CHECK_OK(cj_set_type_timeout(db, "b", 50));
	CHECK_OK(cj_get_types(db, NULL, &types, &n));
	CHECK_INT(n, sizeof want / sizeof want[0]);
	for (size_t i = 0; i < n; i++) CHECK_STR(types[i], want[i]);
	free_types(types, n);

	/* the same list read inside a caller's transaction */
	cj_tx *tx = NULL;
	CHECK_OK(cj_tx_begin(db, &tx));
	CHECK_OK(cj_get_types(db, tx, &types, &n));
	CHECK_INT(n, sizeof want / sizeof want[0]);
	for (size_t i = 0; i < n; i++) CHECK_STR(types[i], want[i]);
	free_types(types, n);
	cj_tx_abort(tx);
	cj_close(db);
}

/* Types live in the store: another handle sees them, and they survive
 * closing every handle. */
TEST(types_shared_and_durable) {
	cj_db *db = t_open();
	cj_db *db2 = t_open();
	int64_t s = 0;
	CHECK_OK(cj_set_type_timeout(db, "shared", 42));
	CHECK_OK(cj_get_type_timeout(db2, "shared", &s));
	CHECK_INT(s, 42);
	CHECK_OK(cj_clear_type_timeout(db2, "shared"));
	CHECK_RC(cj_get_type_timeout(db, "shared", &s), CJ_NOT_FOUND);
	CHECK_OK(cj_set_type_timeout(db2, "kept", 7));
	cj_close(db2);
	cj_close(db);
	db = t_open();
	CHECK_OK(cj_get_type_timeout(db, "kept", &s));
	CHECK_INT(s, 7);
	cj_close(db);
}

/* Jobs can only be added once their type has a timeout. */
TEST(types_needed_for_add) {
	cj_db *db = t_open();
	CHECK_RC(cj_add(db, NULL, "late", "j", NULL, 0), CJ_NO_TYPE_TIMEOUT);
	CHECK_INT(count_jobs(db, NULL), 0);
	CHECK_OK(cj_set_type_timeout(db, "late", 1));
	CHECK_OK(cj_add(db, NULL, "late", "j", NULL, 0));
	CHECK_INT(count_jobs(db, NULL), 1);
	cj_close(db);
}

TEST_MAIN(ENTRY(types_set_get), ENTRY(types_timeout_bounds), ENTRY(types_missing),
          ENTRY(types_clear), ENTRY(types_list_sorted),
          ENTRY(types_shared_and_durable), ENTRY(types_needed_for_add))
