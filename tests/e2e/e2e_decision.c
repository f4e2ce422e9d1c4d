/* e2e_decision.c - end-to-end regression tests of the decision pipeline's hardening (issue 9):
 * a completed Idempotency-Key always replays, also under many concurrent retries (item 7), and a
 * client feature that is not a finite float32 is refused before anything is stored (item 6).
 * The behaviour the rest of the pipeline keeps is e2e_txn.c's.
 *
 * One environment (default worker mode; the policy has no champion, so decisions are fallbacks,
 * which is all these tests need).  Expected values are written here. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert.h"
#include "harness.h"

static h_env E;

static void env_up(void)
{
    e2e_env_up(&E, NULL);
}

static void env_down(void)
{
    e2e_env_down(&E);
}

/* POST /api/v1/transactions with an optional Idempotency-Key.  Returns h_http's status instead of
 * failing the test, because the retry threads call it too. */
static int post_txn(const char *body, const char *ikey, h_resp *r)
{
    char hdr[400];
    const char *extra[] = {hdr, NULL};
    snprintf(hdr, sizeof hdr, "Idempotency-Key: %s", ikey ? ikey : "");
    return h_http(&E, "POST", "/api/v1/transactions", E.key, "application/json", body, strlen(body),
                  ikey ? extra : NULL, r);
}

/* Creates a user; its id into id[37]. */
static void create_user(const char *ext, char id[37])
{
    char body[200];
    h_resp r;
    snprintf(body, sizeof body, "{\"external_id\":\"%s\",\"country\":\"DE\"}", ext);
    e2e_req(&E, "POST", "/api/v1/users", body, &r);
    ck_assert_msg(r.status == 201, "create user: %ld %s", r.status, r.body);
    snprintf(id, 37, "%s", h_str(&r, "id"));
    h_resp_free(&r);
}

/* Transactions stored for a user, counted by psql. */
static int stored(const char *user_id)
{
    char sql[200], out[32];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM transactions WHERE user_id = '%s'", user_id);
    ck_assert_int_eq(h_psql(&E, NULL, sql, out, sizeof out), 0);
    return atoi(out);
}

/* ---- item 7: a completed key always replays ---------------------------------------------------
 */

enum { RETRIES = 40, ROUNDS = 3 };

typedef struct retry_arg {
    const char *body;
    const char *key;
    pthread_barrier_t *bar;
    h_resp r;
    int rc;
} retry_arg;

static void *retry(void *p)
{
    retry_arg *a = p;
    pthread_barrier_wait(a->bar);
    a->rc = post_txn(a->body, a->key, &a->r);
    return NULL;
}

/* Before the fix every retry took the key's advisory lock before looking for the record, so
 * retries of a finished request collided with each other and some got 409. */
START_TEST(completed_key_always_replays)
{
    char uid[37], body[600], key[64], replayed[16];
    h_resp first;
    create_user("replay-u", uid);
    snprintf(body, sizeof body,
             "{\"user_id\":\"%s\",\"amount\":700,\"currency\":\"EUR\",\"merchant_id\":\"m\","
             "\"merchant_category\":\"5411\",\"country\":\"DE\",\"channel\":\"wallet\"}",
             uid);
    for (int round = 0; round < ROUNDS; round++) {
        snprintf(key, sizeof key, "replay-key-%d", round);
        ck_assert_int_eq(post_txn(body, key, &first), 0);
        ck_assert_msg(first.status == 201, "first: %ld %s", first.status, first.body);
        static retry_arg args[RETRIES];
        pthread_t th[RETRIES];
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, RETRIES);
        for (int i = 0; i < RETRIES; i++) {
            memset(&args[i], 0, sizeof args[i]);
            args[i] = (retry_arg){body, key, &bar, {0}, 0};
            ck_assert_int_eq(pthread_create(&th[i], NULL, retry, &args[i]), 0);
        }
        for (int i = 0; i < RETRIES; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&bar);
        int n409 = 0;
        for (int i = 0; i < RETRIES; i++) {
            const h_resp *r = &args[i].r;
            ck_assert_msg(args[i].rc == 0, "retry %d: no response", i);
            n409 += r->status == 409;
            if (r->status == 201) {
                ck_assert_ptr_nonnull(
                    h_header(r, "Idempotent-Replayed", replayed, sizeof replayed));
                ck_assert_str_eq(replayed, "true");
                ck_assert_msg(r->len == first.len && memcmp(r->body, first.body, r->len) == 0,
                              "a replay differs from the first answer");
            }
        }
        for (int i = 0; i < RETRIES; i++) {
            ck_assert_msg(args[i].r.status == 201, "round %d: %d of %d retries got 409 (%s)", round,
                          n409, RETRIES, args[i].r.body);
            h_resp_free(&args[i].r);
        }
        h_resp_free(&first);
    }
    ck_assert_int_eq(stored(uid), ROUNDS);
}
END_TEST

/* ---- item 6: what is scored is what is stored -------------------------------------------------
 */

/* 1e400 parses as inf and 1e39 rounds to inf as float32: both were scored as inf and stored as
 * null.  They are 400 naming the feature, and nothing is stored; the largest float32 passes. */
START_TEST(nonfinite_client_feature_is_refused)
{
    static const char *const refused[] = {"1e400", "-1e400", "1e39"};
    char uid[37], body[600];
    h_resp r;
    create_user("finite-u", uid);
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        snprintf(body, sizeof body,
                 "{\"user_id\":\"%s\",\"amount\":700,\"currency\":\"EUR\",\"merchant_id\":\"m\","
                 "\"merchant_category\":\"5411\",\"country\":\"DE\",\"channel\":\"wallet\","
                 "\"features\":{\"ok\":1,\"velocity\":%s}}",
                 uid, refused[i]);
        ck_assert_int_eq(post_txn(body, NULL, &r), 0);
        e2e_assert_problem(&r, 400, "validation_failed", "features.velocity");
        h_resp_free(&r);
    }
    ck_assert_int_eq(stored(uid), 0);
    snprintf(body, sizeof body,
             "{\"user_id\":\"%s\",\"amount\":700,\"currency\":\"EUR\",\"merchant_id\":\"m\","
             "\"merchant_category\":\"5411\",\"country\":\"DE\",\"channel\":\"wallet\","
             "\"features\":{\"velocity\":3.4028235e38}}",
             uid);
    ck_assert_int_eq(post_txn(body, NULL, &r), 0);
    ck_assert_msg(r.status == 201, "FLT_MAX: %ld %s", r.status, r.body);
    h_resp_free(&r);
    ck_assert_int_eq(stored(uid), 1);
}
END_TEST

static Suite *decision_suite(void)
{
    Suite *s = suite_create("e2e_decision");
    TCase *tc = tcase_create("worker");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, env_up, env_down);
    tcase_add_test(tc, completed_key_always_replays);
    tcase_add_test(tc, nonfinite_client_feature_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(decision_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
