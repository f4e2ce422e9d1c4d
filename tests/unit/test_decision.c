/* test_decision.c - unit tests of the pure stages of api/decision*.c: decide (thresholds,
 * fallback, degraded reasons), feature vector assembly by name (built-in, client-supplied,
 * missing; the snapshot), parse errors naming their field, the Idempotency-Key rule, and the
 * INSERT assembled from the named column table.  Expected values are written by hand here. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decision.h"
#include "wire.h"

/* ---- decide --------------------------------------------------------------------------------- */

static policy_rules rules(double review, double block, const char *fallback)
{
    policy_rules p;
    memset(&p, 0, sizeof p);
    p.review_v = review;
    p.block_v = block;
    snprintf(p.fallback, sizeof p.fallback, "%s", fallback);
    return p;
}

static decision_scoring scored(int status, float champion, int timed_out)
{
    decision_scoring s;
    memset(&s, 0, sizeof s);
    s.ran = 1;
    s.status = status;
    s.timed_out = timed_out;
    s.score[POLICY_CHAMPION] = champion;
    s.score[POLICY_CHALLENGER] = NAN;
    return s;
}

static void assert_verdict(decision_verdict v, const char *decision, int degraded,
                           const char *reason)
{
    ck_assert_str_eq(v.decision, decision);
    ck_assert_int_eq(v.degraded, degraded);
    if (reason)
        ck_assert_pstr_eq(v.reason, reason);
    else
        ck_assert_ptr_null(v.reason);
}

/* review_threshold 0.5, block 0.9: both bounds are inclusive (score >= threshold). */
START_TEST(decide_thresholds)
{
    policy_rules p = rules(0.5, 0.9, "review");
    decision_scoring s = scored(SC_OK, 0.0f, 0);
    assert_verdict(decision_decide(&p, &s), "allow", 0, NULL);
    s.score[POLICY_CHAMPION] = 0.49999997f; /* the float just below 0.5 */
    assert_verdict(decision_decide(&p, &s), "allow", 0, NULL);
    s.score[POLICY_CHAMPION] = 0.5f;
    assert_verdict(decision_decide(&p, &s), "review", 0, NULL);
    /* 0.9f is 0.89999997615814209, below the double 0.9: still review. */
    s.score[POLICY_CHAMPION] = 0.9f;
    assert_verdict(decision_decide(&p, &s), "review", 0, NULL);
    s.score[POLICY_CHAMPION] = 0.90000004f;
    assert_verdict(decision_decide(&p, &s), "block", 0, NULL);
    s.score[POLICY_CHAMPION] = 1.0f;
    assert_verdict(decision_decide(&p, &s), "block", 0, NULL);
    /* Equal thresholds: nothing is review. */
    p = rules(0.25, 0.25, "allow");
    s.score[POLICY_CHAMPION] = 0.25f;
    assert_verdict(decision_decide(&p, &s), "block", 0, NULL);
    s.score[POLICY_CHAMPION] = 0.2f;
    assert_verdict(decision_decide(&p, &s), "allow", 0, NULL);
    /* A challenger's score never decides. */
    s.score[POLICY_CHALLENGER] = 1.0f;
    assert_verdict(decision_decide(&p, &s), "allow", 0, NULL);
}
END_TEST

START_TEST(decide_fallback_and_degraded)
{
    policy_rules p = rules(0.5, 0.9, "block");
    decision_scoring s;
    memset(&s, 0, sizeof s); /* no champion: nothing ran */
    assert_verdict(decision_decide(&p, &s), "block", 1, "no_champion_model");
    s = scored(SC_OK, NAN, 0);
    assert_verdict(decision_decide(&p, &s), "block", 1, "non_finite_score");
    s = scored(SC_OK, INFINITY, 0);
    assert_verdict(decision_decide(&p, &s), "block", 1, "non_finite_score");
    s = scored(SC_UNAVAILABLE, NAN, 1); /* a passed deadline names the timeout */
    assert_verdict(decision_decide(&p, &s), "block", 1, "scoring_timeout");
    s = scored(SC_UNAVAILABLE, NAN, 0);
    assert_verdict(decision_decide(&p, &s), "block", 1, "hotpath_unavailable");
    s = scored(SC_NOT_FOUND, NAN, 0);
    assert_verdict(decision_decide(&p, &s), "block", 1, "model_not_found");
    s = scored(SC_DB, NAN, 0);
    assert_verdict(decision_decide(&p, &s), "block", 1, "model_load_failed");
    s = scored(SC_FAILED, NAN, 0);
    assert_verdict(decision_decide(&p, &s), "block", 1, "scoring_failed");
    /* A finite score that arrived as the deadline passed still decides. */
    s = scored(SC_OK, 0.95f, 1);
    assert_verdict(decision_decide(&p, &s), "block", 0, NULL);
    p = rules(0.5, 0.9, "allow");
    s = scored(SC_FAILED, NAN, 0);
    assert_verdict(decision_decide(&p, &s), "allow", 1, "scoring_failed");
}
END_TEST

/* ---- features ------------------------------------------------------------------------------- */

static void builtins(double b[FEAT_COUNT])
{
    for (int i = 0; i < FEAT_COUNT; i++)
        b[i] = NAN;
    b[FEAT_AMOUNT] = 25.0;
    b[FEAT_HOUR_OF_DAY] = 7.0;
    b[FEAT_MERCHANT_SEEN_BEFORE] = 0.0;
}

START_TEST(feature_value_by_name)
{
    double b[FEAT_COUNT];
    builtins(b);
    cJSON *client = cJSON_Parse("{\"ext_velocity\":37.5,\"amount\":999,\"gone\":null}");
    decision_sources src;
    ck_assert_int_eq(decision_sources_init(&src, b, client), 0);
    ck_assert(decision_feature_value(&src, "amount") == 25.0); /* built-in wins */
    ck_assert(decision_feature_value(&src, "hour_of_day") == 7.0);
    ck_assert(decision_feature_value(&src, "merchant_seen_before") == 0.0);
    ck_assert(isnan(decision_feature_value(&src, "user_amount_avg_30d"))); /* missing built-in */
    ck_assert(decision_feature_value(&src, "ext_velocity") == 37.5);
    ck_assert(isnan(decision_feature_value(&src, "gone")));   /* client null */
    ck_assert(isnan(decision_feature_value(&src, "other")));  /* nobody has it */
    ck_assert(isnan(decision_feature_value(&src, "Amount"))); /* names are case-sensitive */
    decision_sources_free(&src);
    ck_assert_int_eq(decision_sources_init(&src, b, NULL), 0); /* no client features */
    ck_assert(isnan(decision_feature_value(&src, "ext_velocity")));
    ck_assert(decision_feature_value(&src, "amount") == 25.0);
    decision_sources_free(&src);
    cJSON_Delete(client);
}
END_TEST

START_TEST(row_and_snapshot)
{
    double b[FEAT_COUNT];
    builtins(b);
    cJSON *client = cJSON_Parse("{\"x\":0.1,\"big\":1e39,\"amount\":999}");
    decision_sources src;
    ck_assert_int_eq(decision_sources_init(&src, b, client), 0);
    /* Four features, three names: the fourth is "" (missing).  "big" overflows float32. */
    char *names1[] = {"amount", "x", "nope"};
    scoring_model m1 = {.num_features = 4, .n_names = 3, .names = names1};
    char *names2[] = {"x", "hour_of_day", "big"};
    scoring_model m2 = {.num_features = 3, .n_names = 3, .names = names2};
    float r1[4], r2[3];
    decision_snapshot snap;
    ck_assert_int_eq(decision_snapshot_init(&snap, 7), 0);
    ck_assert_int_eq(decision_row_build(&src, &m1, r1, &snap, -1), 0);
    ck_assert_int_eq(decision_row_build(&src, &m2, r2, &snap, -1), 0);
    ck_assert(r1[0] == 25.0f && r1[1] == 0.1f && isnan(r1[2]) && isnan(r1[3]));
    ck_assert(r2[0] == 0.1f && r2[1] == 7.0f && isinf(r2[2]) && r2[2] > 0);
    /* (float)0.1 = 0.100000001490116..., printed with 9 significant digits; "x" once. */
    char *text = cJSON_PrintUnformatted(snap.obj);
    ck_assert_str_eq(text, "{\"amount\":25,\"x\":0.100000001,\"nope\":null,\"\":null,"
                           "\"hour_of_day\":7,\"big\":null}");
    free(text);
    decision_snapshot_free(&snap);
    decision_sources_free(&src);
    cJSON_Delete(client);
}
END_TEST

/* Two models of 150,000 features each, sharing half their names: the rows hold each name's value
 * and the snapshot the 225,000 distinct names once.  Building them is linear in the feature count;
 * a name-by-name scan of the snapshot (the old snap_add) took ~1.7e10 comparisons here. */
enum { BIG = 150000 };

static char **big_names(int first)
{
    char **n = malloc(BIG * sizeof *n);
    ck_assert_ptr_nonnull(n);
    for (int i = 0; i < BIG; i++) {
        n[i] = malloc(16);
        snprintf(n[i], 16, "f%d", first + i);
    }
    return n;
}

static void free_names(char **n)
{
    for (int i = 0; i < BIG; i++)
        free(n[i]);
    free(n);
}

START_TEST(row_build_is_linear)
{
    double b[FEAT_COUNT];
    builtins(b);
    cJSON *client = cJSON_Parse("{\"f7\":7.5,\"f200000\":-2}");
    decision_sources src;
    ck_assert_int_eq(decision_sources_init(&src, b, client), 0);
    char **n1 = big_names(0), **n2 = big_names(BIG / 2);
    scoring_model m1 = {.num_features = BIG, .n_names = BIG, .names = n1};
    scoring_model m2 = {.num_features = BIG, .n_names = BIG, .names = n2};
    float *r1 = malloc(BIG * sizeof *r1), *r2 = malloc(BIG * sizeof *r2);
    decision_snapshot snap;
    ck_assert_int_eq(decision_snapshot_init(&snap, 2 * BIG), 0);
    ck_assert_int_eq(decision_row_build(&src, &m1, r1, &snap, -1), 0);
    ck_assert_int_eq(decision_row_build(&src, &m2, r2, &snap, -1), 0);
    ck_assert(r1[7] == 7.5f && isnan(r1[8]));
    ck_assert(r2[200000 - BIG / 2] == -2.0f && isnan(r2[0]));
    ck_assert_int_eq(cJSON_GetArraySize(snap.obj), BIG + BIG / 2);
    /* A passed deadline stops the build (the stage answers 503). */
    ck_assert_int_eq(decision_row_build(&src, &m1, r1, &snap, wire_now_ms() - 1),
                     DECISION_ROW_DEADLINE);
    decision_snapshot_free(&snap);
    decision_sources_free(&src);
    free(r1);
    free(r2);
    free_names(n1);
    free_names(n2);
    cJSON_Delete(client);
}
END_TEST

/* The stage itself: no champion -> an empty snapshot and no rows; a champion with a request
 * deadline already passed -> 503 with Retry-After, nothing built. */
START_TEST(features_stage_snapshot_and_deadline)
{
    http_req req;
    http_resp resp;
    decision_request d;
    char *names[] = {"amount", "hour_of_day"};
    memset(&req, 0, sizeof req);
    memset(&resp, 0, sizeof resp);
    memset(&d, 0, sizeof d);
    d.req = &req;
    d.resp = &resp;
    builtins(d.builtin);
    req.deadline_ms = wire_now_ms() + 60000;
    ck_assert_int_eq(decision_stage_features(&d), DECISION_NEXT);
    ck_assert_str_eq(d.snapshot, "{}");
    ck_assert_ptr_null(d.row[POLICY_CHAMPION]);
    free(d.snapshot);
    d.snapshot = NULL;
    d.policy.has_model[POLICY_CHAMPION] = 1;
    d.policy.model[POLICY_CHAMPION] =
        (scoring_model){.num_features = 2, .n_names = 2, .names = names};
    ck_assert_int_eq(decision_stage_features(&d), DECISION_NEXT);
    ck_assert_str_eq(d.snapshot, "{\"amount\":25,\"hour_of_day\":7}");
    ck_assert(d.row[POLICY_CHAMPION][0] == 25.0f && d.row[POLICY_CHAMPION][1] == 7.0f);
    free(d.snapshot);
    free(d.row[POLICY_CHAMPION]);
    d.snapshot = NULL;
    d.row[POLICY_CHAMPION] = NULL;
    req.deadline_ms = wire_now_ms() - 1;
    ck_assert_int_eq(decision_stage_features(&d), DECISION_STOP);
    ck_assert_int_eq(resp.status, 503);
    ck_assert_int_eq(resp.retry_after, 1);
    ck_assert_ptr_null(d.snapshot);
    free(resp.body);
    free(d.row[POLICY_CHAMPION]);
}
END_TEST

/* ---- parse ---------------------------------------------------------------------------------- */

#define UID "\"user_id\":\"6f1c0a52-6c1e-4c36-9d67-0a2f1e6f0c11\""
#define REST                                                                                       \
    "\"currency\":\"EUR\",\"merchant_id\":\"m1\",\"merchant_category\":\"5411\","                  \
    "\"country\":\"DE\",\"channel\":\"ecommerce\""

/* Parses text and returns the status; field into field[64] ("" when none). */
static int parse(const char *text, decision_input *in, char field[64])
{
    http_resp resp;
    memset(&resp, 0, sizeof resp);
    cJSON *body = cJSON_Parse(text);
    ck_assert_msg(body != NULL, "test body is not JSON: %s", text);
    int rc = decision_parse_body(&resp, body, in);
    int status = rc == 0 ? 0 : resp.status;
    field[0] = '\0';
    if (rc != 0) {
        cJSON *p = cJSON_Parse(resp.body);
        const char *f = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "field"));
        snprintf(field, 64, "%s", f ? f : "");
        cJSON_Delete(p);
    }
    free(resp.body);
    decision_input_free(in);
    cJSON_Delete(body);
    return status;
}

static void assert_rejected(const char *text, const char *field)
{
    decision_input in;
    char got[64];
    ck_assert_int_eq(parse(text, &in, got), 400);
    ck_assert_msg(strcmp(got, field) == 0, "field '%s', want '%s' for %s", got, field, text);
}

START_TEST(parse_accepts_and_converts)
{
    decision_input in;
    char field[64];
    cJSON *body =
        cJSON_Parse("{" UID ",\"amount\":12345," REST ",\"features\":{\"a\":1},"
                    "\"metadata\":{\"k\": \"v\"},\"occurred_at\":\"2030-01-02T03:04:05Z\"}");
    http_resp resp;
    memset(&resp, 0, sizeof resp);
    ck_assert_int_eq(decision_parse_body(&resp, body, &in), 0);
    ck_assert(in.amount == 12345.0);
    ck_assert_int_eq(in.exponent, 2);
    ck_assert(in.amount_major == 123.45); /* 12345 / 10^2, correctly rounded */
    ck_assert_str_eq(in.features_text, "{\"a\":1}");
    ck_assert_str_eq(in.metadata_text, "{\"k\":\"v\"}");
    ck_assert_str_eq(in.occurred_at, "2030-01-02T03:04:05Z");
    ck_assert_ptr_null(in.user_external_id);
    decision_input_free(&in);
    cJSON_Delete(body);
    /* JPY has no minor unit, KWD three. */
    body = cJSON_Parse("{\"user_external_id\":\"ext-1\",\"amount\":500,\"currency\":\"JPY\","
                       "\"merchant_id\":\"m\",\"merchant_category\":\"0000\",\"country\":\"JP\","
                       "\"channel\":\"wallet\"}");
    ck_assert_int_eq(decision_parse_body(&resp, body, &in), 0);
    ck_assert(in.amount_major == 500.0 && in.exponent == 0);
    ck_assert_ptr_null(in.features_text);
    ck_assert_ptr_null(in.metadata_text);
    decision_input_free(&in);
    cJSON_Delete(body);
    ck_assert_int_eq(
        parse("{" UID ",\"amount\":1234,\"currency\":\"KWD\",\"merchant_id\":\"m\","
              "\"merchant_category\":\"5411\",\"country\":\"KW\","
              "\"channel\":\"transfer\",\"occurred_at\":\"2030-01-02t03:04:05.5+05:30\"}",
              &in, field),
        0);
}
END_TEST

START_TEST(parse_errors_name_the_field)
{
    assert_rejected("{\"amount\":1," REST "}", "user_id");
    assert_rejected("{" UID ",\"user_external_id\":\"e\",\"amount\":1," REST "}",
                    "user_external_id");
    assert_rejected("{\"user_id\":\"not-a-uuid\",\"amount\":1," REST "}", "user_id");
    assert_rejected("{" UID "," REST "}", "amount");
    assert_rejected("{" UID ",\"amount\":0," REST "}", "amount");
    assert_rejected("{" UID ",\"amount\":1.5," REST "}", "amount");
    assert_rejected("{" UID ",\"amount\":\"1\"," REST "}", "amount");
    assert_rejected("{" UID ",\"amount\":9007199254740992," REST "}", "amount");
    assert_rejected("{" UID ",\"amount\":1,\"extra\":1," REST "}", "extra");
    assert_rejected("{" UID ",\"amount\":1,\"currency\":\"EUX\",\"merchant_id\":\"m1\","
                    "\"merchant_category\":\"5411\",\"country\":\"DE\",\"channel\":\"ecommerce\"}",
                    "currency");
    assert_rejected("{" UID ",\"amount\":1,\"currency\":\"EUR\",\"merchant_id\":\"m1\","
                    "\"merchant_category\":\"54a1\",\"country\":\"DE\",\"channel\":\"ecommerce\"}",
                    "merchant_category");
    assert_rejected("{" UID ",\"amount\":1,\"currency\":\"EUR\",\"merchant_id\":\"m1\","
                    "\"merchant_category\":\"5411\",\"country\":\"XX\",\"channel\":\"ecommerce\"}",
                    "country");
    assert_rejected("{" UID ",\"amount\":1,\"currency\":\"EUR\",\"merchant_id\":\"m1\","
                    "\"merchant_category\":\"5411\",\"country\":\"DE\",\"channel\":\"post\"}",
                    "channel");
    assert_rejected("{" UID ",\"amount\":1,\"currency\":\"EUR\",\"merchant_category\":\"5411\","
                    "\"country\":\"DE\",\"channel\":\"ecommerce\"}",
                    "merchant_id");
    assert_rejected("{" UID ",\"amount\":1," REST ",\"occurred_at\":\"2030-01-02 03:04:05Z\"}",
                    "occurred_at");
    assert_rejected("{" UID ",\"amount\":1," REST ",\"occurred_at\":\"2030-01-02T03:04:05\"}",
                    "occurred_at");
    assert_rejected("{" UID ",\"amount\":1," REST ",\"occurred_at\":\"2030-01-02T03:04:05.Z\"}",
                    "occurred_at");
    assert_rejected("{" UID ",\"amount\":1," REST ",\"features\":{\"a\":\"x\"}}", "features.a");
    assert_rejected("{" UID ",\"amount\":1," REST ",\"features\":{\"\":1}}", "features");
    assert_rejected("{" UID ",\"amount\":1," REST ",\"features\":[1]}", "features");
    assert_rejected("{" UID ",\"amount\":1," REST ",\"metadata\":7}", "metadata");
}
END_TEST

/* A client feature is scored as float32 and stored as that float32: a value that is infinite
 * (1e400 parses as inf) or rounds to infinity as float32 is refused, naming the feature.  The
 * limit is FLT_MAX + 2^103 (half a unit in the last place of FLT_MAX = (2 - 2^-23) * 2^127):
 * 3.4028235e38 rounds down to FLT_MAX and is accepted, 3.4028236e38 is past the limit. */
START_TEST(parse_client_features_must_be_finite_float32)
{
    static const char *const refused[] = {"1e400", "-1e400", "1e39", "-1e39", "3.4028236e38"};
    static const char *const accepted[] = {"3.4028235e38", "-3.4028235e38", "1e-50", "0"};
    char text[512], field[64];
    decision_input in;
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        snprintf(text, sizeof text,
                 "{" UID ",\"amount\":1," REST ",\"features\":{\"ok\":1,\"v\":%s}}", refused[i]);
        ck_assert_msg(parse(text, &in, field) == 400, "%s accepted", refused[i]);
        ck_assert_str_eq(field, "features.v");
    }
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        snprintf(text, sizeof text, "{" UID ",\"amount\":1," REST ",\"features\":{\"v\":%s}}",
                 accepted[i]);
        ck_assert_msg(parse(text, &in, field) == 0, "%s refused (%s)", accepted[i], field);
    }
}
END_TEST

/* 256 client features pass, 257 are refused. */
START_TEST(parse_client_feature_limit)
{
    for (int n = 256; n <= 257; n++) {
        size_t cap = 64 * 1024;
        char *text = malloc(cap);
        int len = snprintf(text, cap, "{" UID ",\"amount\":1," REST ",\"features\":{");
        for (int i = 0; i < n; i++)
            len += snprintf(text + len, cap - (size_t)len, "%s\"f%d\":%d", i ? "," : "", i, i);
        snprintf(text + len, cap - (size_t)len, "}}");
        decision_input in;
        char field[64];
        ck_assert_int_eq(parse(text, &in, field), n == 256 ? 0 : 400);
        if (n == 257)
            ck_assert_str_eq(field, "features");
        free(text);
    }
}
END_TEST

START_TEST(idempotency_key_rule)
{
    char k[300];
    ck_assert(!decision_idem_key_ok(""));
    ck_assert(decision_idem_key_ok("a"));
    ck_assert(decision_idem_key_ok("!~"));
    ck_assert(!decision_idem_key_ok("a b"));
    ck_assert(!decision_idem_key_ok("a\x7f"));
    ck_assert(!decision_idem_key_ok("\xc3\xa9"));
    memset(k, 'k', 255);
    k[255] = '\0';
    ck_assert(decision_idem_key_ok(k));
    k[255] = 'k';
    k[256] = '\0';
    ck_assert(!decision_idem_key_ok(k));
}
END_TEST

/* ---- explain -------------------------------------------------------------------------------- */

/* The reasons of a row by hand: largest |contribution| first, ties to the lower index, zeros and
 * the bias left out, missing values null, top_k bounded by the non-zero contributions. */
START_TEST(reasons_by_hand)
{
    char *names[] = {"a", "b", "c", "d", "e"};
    scoring_model m = {.num_features = 5, .num_class = 1, .n_names = 5, .names = names};
    float row[5] = {1.5f, NAN, -2.0f, 0.25f, 7.0f};
    float c[6] = {0.5f, -1.25f, 0.0f, 0.5f, -0.125f, 9.0f /* bias: never a reason */};
    char *j = decision_reasons_json(&m, row, c, 3);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(j, "[{\"feature\":\"b\",\"value\":null,\"contribution\":-1.25},"
                        "{\"feature\":\"a\",\"value\":1.5,\"contribution\":0.5},"
                        "{\"feature\":\"d\",\"value\":0.25,\"contribution\":0.5}]");
    free(j);
    j = decision_reasons_json(&m, row, c, 20); /* c has 4 non-zero feature contributions */
    ck_assert_ptr_nonnull(j);
    ck_assert_ptr_nonnull(strstr(j, "\"feature\":\"e\",\"value\":7,\"contribution\":-0.125}]"));
    ck_assert_ptr_null(strstr(j, "\"c\""));
    free(j);
    j = decision_reasons_json(&m, row, c, 0);
    ck_assert_str_eq(j, "[]");
    free(j);
}
END_TEST

/* ---- store ---------------------------------------------------------------------------------- */

/* The INSERT names each column of the transactions table that a decision writes (written out
 * here from migrations/0003_transactions.sql and 0006_explain.sql) exactly once, with $1..$30 in
 * order. */
START_TEST(store_sql_named_columns)
{
    static const char *const expected[] = {"id",
                                           "user_id",
                                           "amount",
                                           "currency",
                                           "amount_major",
                                           "merchant_id",
                                           "merchant_category",
                                           "country",
                                           "channel",
                                           "occurred_at",
                                           "client_features",
                                           "metadata",
                                           "features",
                                           "score",
                                           "decision",
                                           "degraded",
                                           "degraded_reason",
                                           "model_id",
                                           "model_version",
                                           "model_sha256",
                                           "challenger_model_id",
                                           "challenger_version",
                                           "challenger_sha256",
                                           "challenger_score",
                                           "review_threshold",
                                           "block_threshold",
                                           "fallback_decision",
                                           "scoring_timeout_ms",
                                           "policy_version",
                                           "scoring_latency_us",
                                           "reasons",
                                           "email",
                                           "ip_address",
                                           "device_id",
                                           "card_fingerprint",
                                           "card_bin",
                                           "card_country",
                                           "shipping_country",
                                           "rules_matched",
                                           "decided_by",
                                           "list_versions",
                                           "list_probes",
                                           "rule_inputs"};
    enum { N = sizeof expected / sizeof expected[0] };
    char sql[4096], cols[2048], want[2048] = "", params[1024] = "";
    ck_assert_int_eq(decision_store_sql(sql, sizeof sql), N);
    const char *open = strstr(sql, "INSERT INTO transactions AS t (");
    ck_assert_ptr_eq(open, sql);
    const char *vals = strstr(sql, ") VALUES (");
    ck_assert_ptr_nonnull(vals);
    size_t n = (size_t)(vals - sql) - strlen("INSERT INTO transactions AS t (");
    memcpy(cols, sql + strlen("INSERT INTO transactions AS t ("), n);
    cols[n] = '\0';
    for (int i = 0; i < N; i++) {
        char p[16];
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", i ? ", " : "",
                 expected[i]);
        snprintf(p, sizeof p, "%s$%d", i ? ", " : "", i + 1);
        strcat(params, p);
    }
    ck_assert_str_eq(cols, want);
    ck_assert_int_eq(strncmp(vals + strlen(") VALUES ("), params, strlen(params)), 0);
    ck_assert_ptr_nonnull(strstr(sql, ") RETURNING t.id, "));
    ck_assert_int_eq(decision_store_sql(sql, 100), -1); /* bounded */
}
END_TEST

static Suite *decision_suite(void)
{
    Suite *s = suite_create("decision");
    TCase *tc = tcase_create("pure");
    tcase_add_test(tc, decide_thresholds);
    tcase_add_test(tc, decide_fallback_and_degraded);
    tcase_add_test(tc, feature_value_by_name);
    tcase_add_test(tc, row_and_snapshot);
    tcase_add_test(tc, row_build_is_linear);
    tcase_add_test(tc, features_stage_snapshot_and_deadline);
    tcase_add_test(tc, parse_accepts_and_converts);
    tcase_add_test(tc, parse_errors_name_the_field);
    tcase_add_test(tc, parse_client_feature_limit);
    tcase_add_test(tc, parse_client_features_must_be_finite_float32);
    tcase_add_test(tc, idempotency_key_rule);
    tcase_add_test(tc, store_sql_named_columns);
    tcase_add_test(tc, reasons_by_hand);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(decision_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
