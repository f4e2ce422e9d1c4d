/* e2e_reviews.c - end-to-end tests of the review queue (/api/v1/reviews) against a real API,
 * worker and PostgreSQL: a `review` decision opens exactly one review (an `allow` none), the open
 * queue is oldest first and pages with cursors, claims by the calling key (idempotent for the
 * same key, 409 review_claimed for another), closes with each outcome and the label it gives the
 * transaction (approved -> legit, fraud -> fraud, both with label_source analyst; refunded ->
 * none), who claimed/closed it and when, 409 review_closed afterwards, and every error answer as
 * a complete problem+json.  The policy has no model, so every decision is its fallback. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert.h"
#include "harness.h"

static h_env E;
static char g_key2[64];   /* a second write key */
static char g_key_ro[64]; /* a read-only key */

static void env_up(void)
{
    e2e_env_up(&E, NULL);
    ck_assert_int_eq(h_create_key(&E, "read,write", g_key2, sizeof g_key2), 0);
    ck_assert_int_eq(h_create_key(&E, "read", g_key_ro, sizeof g_key_ro), 0);
}

static void env_down(void)
{
    e2e_env_down(&E);
}

static const char *sget(const cJSON *o, const char *name)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

/* One decision for user ext; its transaction id into id[37]; asserts the decision. */
static void decide(const char *ext, const char *want, char *id)
{
    char body[400];
    snprintf(body, sizeof body,
             "{\"user_external_id\":\"%s\",\"amount\":1234,\"currency\":\"EUR\","
             "\"merchant_id\":\"m-1\",\"merchant_category\":\"5411\",\"country\":\"FR\","
             "\"channel\":\"ecommerce\"}",
             ext);
    h_resp r;
    e2e_req(&E, "POST", "/api/v1/transactions", body, &r);
    ck_assert_msg(r.status == 201, "decision: %ld %s", r.status, r.body);
    const cJSON *risk = cJSON_GetObjectItemCaseSensitive(r.json, "risk");
    ck_assert_str_eq(sget(risk, "decision"), want);
    snprintf(id, 37, "%s", sget(r.json, "id"));
    h_resp_free(&r);
}

/* The review of transaction txn (searched in every state), its id into id[37]; 0 if none. */
static int review_of(const char *txn, char *id)
{
    const char *states[] = {"open", "claimed", "closed"};
    int found = 0;
    for (int s = 0; s < 3; s++) {
        char path[200];
        snprintf(path, sizeof path, "/api/v1/reviews?state=%s&limit=500", states[s]);
        h_resp r;
        e2e_req(&E, "GET", path, NULL, &r);
        ck_assert_int_eq(r.status, 200);
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r.json, "data"))
        {
            if (strcmp(sget(it, "transaction_id"), txn) == 0) {
                snprintf(id, 37, "%s", sget(it, "id"));
                ck_assert_str_eq(sget(it, "state"), states[s]);
                found++;
            }
        }
        h_resp_free(&r);
    }
    ck_assert_int_le(found, 1);
    return found;
}

/* POST with key (NULL: the bootstrap admin key). */
static void post_as(const char *key, const char *path, const char *body, h_resp *r)
{
    ck_assert_int_eq(h_http(&E, "POST", path, key ? key : E.key, body ? "application/json" : NULL,
                            body, body ? strlen(body) : 0, NULL, r),
                     0);
}

START_TEST(review_decision_opens_one_review)
{
    char t1[37], t2[37], rid[37];
    e2e_user(&E, "rv-a");
    e2e_policy_fallback(&E, "review");
    decide("rv-a", "review", t1);
    ck_assert_int_eq(review_of(t1, rid), 1);
    h_resp r;
    char path[200];
    snprintf(path, sizeof path, "/api/v1/reviews/%s", rid);
    e2e_req(&E, "GET", path, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(sget(r.json, "state"), "open");
    ck_assert_str_eq(sget(r.json, "transaction_id"), t1);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "claimed_by")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "outcome")));
    ck_assert_ptr_nonnull(sget(r.json, "opened_at"));
    h_resp_free(&r);
    e2e_policy_fallback(&E, "allow");
    decide("rv-a", "allow", t2);
    ck_assert_int_eq(review_of(t2, rid), 0);
    e2e_policy_fallback(&E, "block");
    decide("rv-a", "block", t2);
    ck_assert_int_eq(review_of(t2, rid), 0);
}
END_TEST

/* The open queue: oldest first, and cursor pages give each review once, in order. */
START_TEST(open_queue_oldest_first_paged)
{
    char txn[5][37];
    e2e_user(&E, "rv-b");
    e2e_policy_fallback(&E, "review");
    for (int i = 0; i < 5; i++)
        decide("rv-b", "review", txn[i]);
    /* walk the whole open queue 2 at a time; ours must come in decision order */
    char path[400] = "/api/v1/reviews?state=open&limit=2", prev[40] = "";
    int seen = 0, pages = 0;
    for (;;) {
        h_resp r;
        e2e_req(&E, "GET", path, NULL, &r);
        ck_assert_int_eq(r.status, 200);
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r.json, "data"))
        {
            ck_assert_msg(strcmp(prev, sget(it, "opened_at")) <= 0, "not oldest first");
            snprintf(prev, sizeof prev, "%s", sget(it, "opened_at"));
            if (seen < 5 && strcmp(sget(it, "transaction_id"), txn[seen]) == 0)
                seen++;
        }
        const char *next = sget(r.json, "next_cursor");
        pages++;
        if (!next) {
            h_resp_free(&r);
            break;
        }
        snprintf(path, sizeof path, "/api/v1/reviews?state=open&limit=2&cursor=%s", next);
        h_resp_free(&r);
    }
    ck_assert_int_eq(seen, 5);
    ck_assert_int_ge(pages, 3);
}
END_TEST

/* The transaction's label and label_source ("" for null) into label[16], source[16]. */
static void txn_label_of(const char *txn, char *label, char *source)
{
    char path[200];
    snprintf(path, sizeof path, "/api/v1/transactions/%s", txn);
    h_resp r;
    e2e_req(&E, "GET", path, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    snprintf(label, 16, "%s", sget(r.json, "label") ? sget(r.json, "label") : "");
    snprintf(source, 16, "%s", sget(r.json, "label_source") ? sget(r.json, "label_source") : "");
    h_resp_free(&r);
}

START_TEST(claim_and_close_flow)
{
    char txn[37], rid[37], path[200], claimed_by[40], claimed_at[40], label[16], source[16];
    e2e_user(&E, "rv-c");
    e2e_policy_fallback(&E, "review");
    decide("rv-c", "review", txn);
    ck_assert_int_eq(review_of(txn, rid), 1);
    snprintf(path, sizeof path, "/api/v1/reviews/%s/claim", rid);
    h_resp r;
    post_as(NULL, path, NULL, &r);
    ck_assert_msg(r.status == 200, "claim: %ld %s", r.status, r.body);
    ck_assert_str_eq(sget(r.json, "state"), "claimed");
    snprintf(claimed_by, sizeof claimed_by, "%s", sget(r.json, "claimed_by"));
    snprintf(claimed_at, sizeof claimed_at, "%s", sget(r.json, "claimed_at"));
    h_resp_free(&r);
    /* the same key again: fine, and the first claim time stays */
    post_as(NULL, path, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(sget(r.json, "claimed_by"), claimed_by);
    ck_assert_str_eq(sget(r.json, "claimed_at"), claimed_at);
    h_resp_free(&r);
    /* another key: 409, for claim and close alike */
    post_as(g_key2, path, NULL, &r);
    e2e_assert_problem(&r, 409, "review_claimed", NULL);
    h_resp_free(&r);
    snprintf(path, sizeof path, "/api/v1/reviews/%s/close", rid);
    post_as(g_key2, path, "{\"outcome\":\"fraud\"}", &r);
    e2e_assert_problem(&r, 409, "review_claimed", NULL);
    h_resp_free(&r);
    txn_label_of(txn, label, source);
    ck_assert_str_eq(label, "");
    /* the claimer closes it */
    post_as(NULL, path, "{\"outcome\":\"fraud\",\"note\":\"card testing pattern\"}", &r);
    ck_assert_msg(r.status == 200, "close: %ld %s", r.status, r.body);
    ck_assert_str_eq(sget(r.json, "state"), "closed");
    ck_assert_str_eq(sget(r.json, "outcome"), "fraud");
    ck_assert_str_eq(sget(r.json, "note"), "card testing pattern");
    ck_assert_str_eq(sget(r.json, "closed_by"), claimed_by);
    ck_assert_str_eq(sget(r.json, "claimed_by"), claimed_by);
    ck_assert(strcmp(sget(r.json, "closed_at"), claimed_at) >= 0);
    h_resp_free(&r);
    txn_label_of(txn, label, source);
    ck_assert_str_eq(label, "fraud");
    ck_assert_str_eq(source, "analyst");
    /* closed is final */
    post_as(NULL, path, "{\"outcome\":\"approved\"}", &r);
    e2e_assert_problem(&r, 409, "review_closed", NULL);
    h_resp_free(&r);
    snprintf(path, sizeof path, "/api/v1/reviews/%s/claim", rid);
    post_as(g_key2, path, NULL, &r);
    e2e_assert_problem(&r, 409, "review_closed", NULL);
    h_resp_free(&r);
}
END_TEST

/* An open review may be closed directly: the closer is recorded as claimer too.  approved labels
 * legit; refunded leaves the transaction unlabelled. */
START_TEST(close_outcomes_and_labels)
{
    char t1[37], t2[37], r1[37], r2[37], path[200], label[16], source[16];
    e2e_user(&E, "rv-d");
    e2e_policy_fallback(&E, "review");
    decide("rv-d", "review", t1);
    decide("rv-d", "review", t2);
    ck_assert_int_eq(review_of(t1, r1), 1);
    ck_assert_int_eq(review_of(t2, r2), 1);
    h_resp r;
    snprintf(path, sizeof path, "/api/v1/reviews/%s/close", r1);
    post_as(g_key2, path, "{\"outcome\":\"approved\"}", &r);
    ck_assert_msg(r.status == 200, "close: %ld %s", r.status, r.body);
    ck_assert_str_eq(sget(r.json, "claimed_by"), sget(r.json, "closed_by"));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "note")));
    h_resp_free(&r);
    txn_label_of(t1, label, source);
    ck_assert_str_eq(label, "legit");
    ck_assert_str_eq(source, "analyst");
    snprintf(path, sizeof path, "/api/v1/reviews/%s/close", r2);
    post_as(NULL, path, "{\"outcome\":\"refunded\",\"note\":null}", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(sget(r.json, "outcome"), "refunded");
    h_resp_free(&r);
    txn_label_of(t2, label, source);
    ck_assert_str_eq(label, "");
    /* both in the closed list, newest closed first */
    e2e_req(&E, "GET", "/api/v1/reviews?state=closed&limit=2", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(r.json, "data");
    ck_assert_int_eq(cJSON_GetArraySize(data), 2);
    ck_assert_str_eq(sget(cJSON_GetArrayItem(data, 0), "id"), r2);
    ck_assert_str_eq(sget(cJSON_GetArrayItem(data, 1), "id"), r1);
    h_resp_free(&r);
}
END_TEST

START_TEST(errors_are_problems)
{
    char txn[37], rid[37], path[200];
    e2e_user(&E, "rv-e");
    e2e_policy_fallback(&E, "review");
    decide("rv-e", "review", txn);
    ck_assert_int_eq(review_of(txn, rid), 1);
    h_resp r;
    snprintf(path, sizeof path, "/api/v1/reviews/%s/close", rid);
    post_as(NULL, path, "{\"outcome\":\"maybe\"}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "outcome");
    h_resp_free(&r);
    post_as(NULL, path, "{}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "outcome");
    h_resp_free(&r);
    post_as(NULL, path, "{\"outcome\":\"fraud\",\"label\":\"x\"}", &r);
    e2e_assert_problem(&r, 400, "unknown_field", "label");
    h_resp_free(&r);
    post_as(NULL, path, "{\"outcome\":\"fraud\",\"note\":\"\"}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "note");
    h_resp_free(&r);
    post_as(NULL, "/api/v1/reviews/not-a-uuid/claim", NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "id");
    h_resp_free(&r);
    post_as(NULL, "/api/v1/reviews/00000000-0000-4000-8000-000000000000/claim", NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    post_as(NULL, "/api/v1/reviews/00000000-0000-4000-8000-000000000000/close",
            "{\"outcome\":\"fraud\"}", &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/reviews/00000000-0000-4000-8000-000000000000", NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/reviews?state=pending", NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "state");
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/reviews?sort=x", NULL, &r);
    e2e_assert_problem(&r, 400, "unknown_parameter", "sort");
    h_resp_free(&r);
    snprintf(path, sizeof path, "/api/v1/reviews/%s/claim", rid);
    post_as(g_key_ro, path, NULL, &r);
    e2e_assert_problem(&r, 403, "forbidden", NULL);
    h_resp_free(&r);
    ck_assert_int_eq(h_http(&E, "GET", "/api/v1/reviews", g_key_ro, NULL, NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reviews");
    TCase *tc = tcase_create("reviews");
    tcase_add_unchecked_fixture(tc, env_up, env_down);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, review_decision_opens_one_review);
    tcase_add_test(tc, open_queue_oldest_first_paged);
    tcase_add_test(tc, claim_and_close_flow);
    tcase_add_test(tc, close_outcomes_and_labels);
    tcase_add_test(tc, errors_are_problems);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
