/* e2e_txn.c - end-to-end tests of the decision path: the policy resource, POST /api/v1/transactions
 * (validation, currencies, built-in features, champion/challenger scores, thresholds, idempotency
 * including 100 concurrent requests, degraded decisions when the worker is down), reads with
 * keyset pagination and filters, and labelling.
 *
 * Every TCase runs twice: VIGIL_HOTPATH_MODE=inprocess and the default worker mode, each with its
 * own environment (unchecked fixture, CK_NOFORK).  The policy is global, so every test PUTs the
 * policy it needs first; users are per test.  The champion is the committed demo model
 * (api/demo/demo_model.json, feature names = vigil's built-ins), the challenger the same file with
 * base_score 0.3 (so its scores differ).  Expected feature values are computed here from the
 * history each test inserts; expected scores come from /predict on the stored snapshot. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixtures_io.h"
#include "assert.h"
#include "harness.h"

static h_env E;
static int g_worker;
static char g_demo[37], g_chal[37]; /* uploaded once per environment */

/* PGTZ gives the API's database sessions a time zone with summer time: every time vigil reports is
 * UTC and every feature window is exact, whatever the session time zone. */
/* idempotency_concurrent opens 100 connections from 127.0.0.1 at once: above the default
 * per-address limit (64), so the limit is raised here. */
static const char *const ENV_INPROCESS[] = {"VIGIL_HOTPATH_MODE=inprocess", "PGTZ=Europe/Berlin",
                                            "VIGIL_MAX_CONNECTIONS_PER_IP=128", NULL};
static const char *const ENV_WORKER[] = {"PGTZ=Europe/Berlin", "VIGIL_MAX_CONNECTIONS_PER_IP=128",
                                         NULL}; /* default mode: worker */

static void env_up(const char *const *env, int worker)
{
    g_demo[0] = g_chal[0] = '\0';
    g_worker = worker;
    e2e_env_up(&E, env);
}

static void up_inprocess(void)
{
    env_up(ENV_INPROCESS, 0);
}

static void up_worker(void)
{
    env_up(ENV_WORKER, 1);
}

static void env_down(void)
{
    e2e_env_down(&E);
}

/* ---- helpers --------------------------------------------------------------------------------- */

static const cJSON *get(const cJSON *o, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

static const char *sget(const cJSON *o, const char *name)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Uploads bytes as model `name`; asserts 201; id into id[37]. */
static void upload(const char *name, const char *body, size_t len, char id[37])
{
    char path[200];
    h_resp r;
    snprintf(path, sizeof path, "/api/v1/models?name=%s", name);
    ck_assert_int_eq(h_http(&E, "POST", path, E.key, "application/json", body, len, NULL, &r), 0);
    ck_assert_msg(r.status == 201, "upload %s: %ld %s", name, r.status, r.body);
    snprintf(id, 37, "%s", h_str(&r, "id"));
    h_resp_free(&r);
}

/* The demo model as champion candidate and a variant (base_score 0.3) as challenger. */
static void ensure_models(void)
{
    if (g_demo[0])
        return;
    size_t len;
    char *txt = fx_slurp("api/demo/demo_model.json", &len);
    ck_assert_msg(txt != NULL, "cannot read api/demo/demo_model.json (run from the repo root)");
    upload("demo", txt, len, g_demo);
    char *at = strstr(txt, "\"base_score\":\"5E-1\"");
    ck_assert_ptr_nonnull(at);
    memcpy(at, "\"base_score\":\"3E-1\"", strlen("\"base_score\":\"3E-1\""));
    upload("challenger", txt, len, g_chal);
    free(txt);
}

/* PUTs the policy; thresholds go as %.17g (exact doubles).  Asserts 200. */
static void set_policy(const char *champion, const char *challenger, double review, double block,
                       const char *fallback, int timeout_ms)
{
    char body[600], ch[64], cl[64];
    snprintf(ch, sizeof ch, "\"%s\"", champion ? champion : "");
    snprintf(cl, sizeof cl, "\"%s\"", challenger ? challenger : "");
    if (!champion)
        strcpy(ch, "null");
    if (!challenger)
        strcpy(cl, "null");
    snprintf(body, sizeof body,
             "{\"champion_model_id\":%s,\"challenger_model_id\":%s,\"review_threshold\":%.17g,"
             "\"block_threshold\":%.17g,\"fallback_decision\":\"%s\",\"scoring_timeout_ms\":%d}",
             ch, cl, review, block, fallback, timeout_ms);
    h_resp r;
    e2e_req(&E, "PUT", "/api/v1/policy", body, &r);
    ck_assert_msg(r.status == 200, "PUT policy: %ld %s", r.status, r.body);
    h_resp_free(&r);
}

/* The usual policy: demo champion, challenger, review 0.5, block 0.9, generous timeout. */
static void default_policy(void)
{
    ensure_models();
    set_policy(g_demo, g_chal, 0.5, 0.9, "review", 5000);
}

/* Creates a user (country may be NULL); id into id[37], created_at (µs since epoch) returned. */
static int64_t parse_time(const char *s);

static int64_t create_user(const char *ext, const char *country, char id[37])
{
    char body[300];
    h_resp r;
    if (country)
        snprintf(body, sizeof body, "{\"external_id\":\"%s\",\"country\":\"%s\"}", ext, country);
    else
        snprintf(body, sizeof body, "{\"external_id\":\"%s\"}", ext);
    e2e_req(&E, "POST", "/api/v1/users", body, &r);
    ck_assert_msg(r.status == 201, "create user: %ld %s", r.status, r.body);
    snprintf(id, 37, "%s", h_str(&r, "id"));
    int64_t created = parse_time(h_str(&r, "created_at"));
    h_resp_free(&r);
    return created;
}

/* Microseconds since the epoch <-> "YYYY-MM-DDTHH:MM:SS.ffffffZ". */
static void fmt_time(int64_t us, char out[40])
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us % 1000000));
}

static int64_t parse_time(const char *s)
{
    struct tm tm = {0};
    int frac = 0;
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(sscanf(s, "%d-%d-%dT%d:%d:%d.%6dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                         &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &frac) == 7,
                  "time '%s'", s);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000000 + frac;
}

/* A transaction body; occurred may be NULL (now). */
static void txn_body(char *out, size_t cap, const char *user_id, long long amount,
                     const char *currency, const char *merchant, const char *country,
                     const char *occurred)
{
    char occ[80] = "";
    if (occurred)
        snprintf(occ, sizeof occ, ",\"occurred_at\":\"%s\"", occurred);
    snprintf(out, cap,
             "{\"user_id\":\"%s\",\"amount\":%lld,\"currency\":\"%s\",\"merchant_id\":\"%s\","
             "\"merchant_category\":\"5411\",\"country\":\"%s\",\"channel\":\"ecommerce\"%s}",
             user_id, amount, currency, merchant, country, occ);
}

/* POST /api/v1/transactions with an optional Idempotency-Key and API key (NULL = bootstrap). */
static void post_txn(const char *body, const char *ikey, const char *key, h_resp *r)
{
    char hdr[400];
    const char *extra[] = {hdr, NULL};
    if (ikey)
        snprintf(hdr, sizeof hdr, "Idempotency-Key: %s", ikey);
    ck_assert_int_eq(h_http(&E, "POST", "/api/v1/transactions", key ? key : E.key,
                            "application/json", body, strlen(body), ikey ? extra : NULL, r),
                     0);
}

/* Posts and asserts 201; returns the response (caller frees). */
static void post_ok(const char *body, h_resp *r)
{
    post_txn(body, NULL, NULL, r);
    ck_assert_msg(r->status == 201, "POST transaction: %ld %s\nbody: %s", r->status, r->body, body);
}

/* The raw number text after `"name":` inside the object that starts at the first `"obj":{` of
 * body (obj NULL: the whole body), read with strtof; *is_null set for null.  Returns 0, or -1
 * when the member is absent.  Only for flat objects (features) or the first match. */
static int raw_float(const char *body, const char *obj, const char *name, float *out, int *is_null)
{
    char pat[200];
    const char *p = body, *end = NULL;
    if (obj) {
        snprintf(pat, sizeof pat, "\"%s\":{", obj);
        p = strstr(body, pat);
        if (!p)
            return -1;
        p += strlen(pat);
        end = strchr(p, '}');
    }
    snprintf(pat, sizeof pat, "\"%s\":", name);
    const char *v = strstr(p, pat);
    if (!v || (end && v > end))
        return -1;
    v += strlen(pat);
    *is_null = strncmp(v, "null", 4) == 0;
    if (*is_null) {
        *out = NAN;
        return 0;
    }
    char *e;
    *out = strtof(v, &e);
    return e == v ? -1 : 0;
}

/* The champion score of a POST/GET transaction body (asserts it is a number). */
static float risk_score(const h_resp *r)
{
    float s;
    int isnull;
    ck_assert_msg(raw_float(r->body, "risk", "score", &s, &isnull) == 0 && !isnull,
                  "no score in %s", r->body);
    return s;
}

static const char *decision(const h_resp *r)
{
    return sget(get(r->json, "risk"), "decision");
}

static int degraded(const h_resp *r)
{
    return cJSON_IsTrue(get(get(r->json, "risk"), "degraded"));
}

/* Asserts that a decision was scored (not degraded) and names the reason otherwise. */
static void assert_scored(const h_resp *r)
{
    ck_assert_msg(!degraded(r),
                  "decision is degraded (reason %s): scoring does not work in %s mode",
                  sget(get(r->json, "risk"), "reason"), g_worker ? "worker" : "inprocess");
}

/* /predict of model_id on one by-name row: the stored feature snapshot of transaction response r,
 * restricted to the model's own feature names (the snapshot holds the union of champion's and
 * challenger's).  Returns the single output. */
static float predict_snapshot(const char *model_id, const h_resp *txn)
{
    char path[200];
    h_resp m, r;
    snprintf(path, sizeof path, "/api/v1/models/%s", model_id);
    e2e_req(&E, "GET", path, NULL, &m);
    ck_assert_int_eq(m.status, 200);
    const cJSON *snap = get(txn->json, "features"), *nm;
    ck_assert(cJSON_IsObject(snap));
    cJSON *row = cJSON_CreateObject();
    cJSON_ArrayForEach(nm, get(m.json, "feature_names"))
    {
        const cJSON *v = get(snap, nm->valuestring);
        ck_assert_msg(v != NULL, "snapshot lacks %s", nm->valuestring);
        cJSON_AddItemToObject(row, nm->valuestring, cJSON_Duplicate(v, 1));
    }
    h_resp_free(&m);
    char *rowtxt = cJSON_PrintUnformatted(row);
    cJSON_Delete(row);
    size_t n = strlen(rowtxt) + 32;
    char *body = malloc(n);
    snprintf(body, n, "{\"rows\":[%s]}", rowtxt);
    free(rowtxt);
    snprintf(path, sizeof path, "/api/v1/models/%s/predict", model_id);
    e2e_req(&E, "POST", path, body, &r);
    ck_assert_msg(r.status == 200, "predict: %ld %s", r.status, r.body);
    const char *p = strstr(r.body, "\"predictions\":[");
    ck_assert_ptr_nonnull(p);
    char *e;
    float v = strtof(p + strlen("\"predictions\":["), &e);
    ck_assert(e != p);
    h_resp_free(&r);
    free(body);
    return v;
}

/* Number of transactions of a user, through the list endpoint (limit 500). */
static int count_user_txns(const char *user_id)
{
    char path[200];
    h_resp r;
    snprintf(path, sizeof path, "/api/v1/transactions?user_id=%s&limit=500", user_id);
    e2e_req(&E, "GET", path, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    int n = cJSON_GetArraySize(get(r.json, "data"));
    ck_assert(cJSON_IsNull(get(r.json, "next_cursor")));
    h_resp_free(&r);
    return n;
}

/* An API key with these scopes, created through the CLI. */
static void create_key(const char *scopes, char *key, size_t cap)
{
    ck_assert_msg(h_create_key(&E, scopes, key, cap) == 0, "keys create failed: %s", key);
}

/* ---- policy ---------------------------------------------------------------------------------- */

START_TEST(policy_default_and_validation)
{
    h_resp r;
    /* Defaults (this is the TCase's first test: nothing has PUT a policy yet). */
    e2e_req(&E, "GET", "/api/v1/policy", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(cJSON_IsNull(get(r.json, "champion_model_id")));
    ck_assert(cJSON_IsNull(get(r.json, "challenger_model_id")));
    ck_assert_double_eq(get(r.json, "review_threshold")->valuedouble, 0.5);
    ck_assert_double_eq(get(r.json, "block_threshold")->valuedouble, 0.9);
    ck_assert_pstr_eq(sget(r.json, "fallback_decision"), "review");
    ck_assert_int_eq((int)get(r.json, "scoring_timeout_ms")->valuedouble, 50);
    int v0 = (int)get(r.json, "version")->valuedouble;
    h_resp_free(&r);

    ensure_models();
    size_t len;
    char multi[37], nonames[37];
    char *txt = fx_read("multi_softprob", "model.json", &len);
    ck_assert_ptr_nonnull(txt);
    upload("pol-multi", txt, len, multi);
    free(txt);
    txt = fx_read("binary_hinge", "model.json", &len);
    ck_assert_ptr_nonnull(txt);
    upload("pol-nonames", txt, len, nonames);
    free(txt);

    char b[700];
    const char *unknown = "00000000-0000-4000-8000-000000000000";
    static const char *const fmt_rt =
        "{\"champion_model_id\":%s,\"review_threshold\":%s,\"block_threshold\":%s%s}";
    struct {
        const char *champ, *review, *block, *extra;
        long status;
        const char *code, *field;
    } cases[] = {
        {"\"D\"", "0.9", "0.5", "", 400, "validation_failed", "review_threshold"},
        {"\"D\"", "-0.1", "0.5", "", 400, "validation_failed", "review_threshold"},
        {"\"D\"", "0.1", "\"x\"", "", 400, "validation_failed", "block_threshold"},
        {"\"D\"", "0.1", "0.5", ",\"fallback_decision\":\"deny\"", 400, "validation_failed",
         "fallback_decision"},
        {"\"D\"", "0.1", "0.5", ",\"scoring_timeout_ms\":0", 400, "validation_failed",
         "scoring_timeout_ms"},
        {"\"D\"", "0.1", "0.5", ",\"scoring_timeout_ms\":10001", 400, "validation_failed",
         "scoring_timeout_ms"},
        {"\"D\"", "0.1", "0.5", ",\"scoring_timeout_ms\":1.5", 400, "validation_failed",
         "scoring_timeout_ms"},
        {"\"D\"", "0.1", "0.5", ",\"nope\":1", 400, "unknown_field", "nope"},
        {"\"not-a-uuid\"", "0.1", "0.5", "", 400, "validation_failed", "champion_model_id"},
        {"null", "0.1", "0.5", ",\"challenger_model_id\":\"D\"", 400, "validation_failed",
         "challenger_model_id"},
        {"\"U\"", "0.1", "0.5", "", 422, "unknown_model", "champion_model_id"},
        {"\"D\"", "0.1", "0.5", ",\"challenger_model_id\":\"U\"", 422, "unknown_model",
         "challenger_model_id"},
        {"\"M\"", "0.1", "0.5", "", 422, "unsuitable_model", "champion_model_id"},
        {"\"D\"", "0.1", "0.5", ",\"challenger_model_id\":\"M\"", 422, "unsuitable_model",
         "challenger_model_id"},
        {"\"N\"", "0.1", "0.5", "", 422, "unsuitable_model", "champion_model_id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char champ[64], extra[200];
        /* D = demo, U = unknown, M = multi-class, N = no feature names. */
        const char *sub[][2] = {{"D", g_demo}, {"U", unknown}, {"M", multi}, {"N", nonames}};
        snprintf(champ, sizeof champ, "%s", cases[i].champ);
        snprintf(extra, sizeof extra, "%s", cases[i].extra);
        for (int k = 0; k < 4; k++) {
            char *p;
            char pat[8];
            snprintf(pat, sizeof pat, "\"%s\"", sub[k][0]);
            char repl[64];
            snprintf(repl, sizeof repl, "\"%s\"", sub[k][1]);
            if (strcmp(champ, pat) == 0)
                snprintf(champ, sizeof champ, "%s", repl);
            if ((p = strstr(extra, pat)) != NULL) {
                char tmp[200];
                snprintf(tmp, sizeof tmp, "%.*s%s%s", (int)(p - extra), extra, repl,
                         p + strlen(pat));
                snprintf(extra, sizeof extra, "%s", tmp);
            }
        }
        snprintf(b, sizeof b, fmt_rt, champ, cases[i].review, cases[i].block, extra);
        e2e_req(&E, "PUT", "/api/v1/policy", b, &r);
        ck_assert_msg(r.status == cases[i].status, "case %zu %s: %ld %s", i, b, r.status, r.body);
        e2e_assert_problem(&r, cases[i].status, cases[i].code, cases[i].field);
        h_resp_free(&r);
    }
    e2e_req(&E, "PUT", "/api/v1/policy", "{\"review_threshold\":0.1,\"block_threshold\":0.5}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "champion_model_id");
    h_resp_free(&r);
    /* Nothing above changed the policy. */
    e2e_req(&E, "GET", "/api/v1/policy", NULL, &r);
    ck_assert_int_eq((int)get(r.json, "version")->valuedouble, v0);
    h_resp_free(&r);

    /* The valid edges: timeout 1 and 10000, review == block, thresholds 0. */
    set_policy(g_demo, NULL, 0.3, 0.3, "block", 1);
    set_policy(g_demo, g_chal, 0, 0, "allow", 10000);
    e2e_req(&E, "GET", "/api/v1/policy", NULL, &r);
    ck_assert_int_eq((int)get(r.json, "version")->valuedouble, v0 + 2);
    ck_assert_pstr_eq(sget(r.json, "champion_model_id"), g_demo);
    ck_assert_pstr_eq(sget(r.json, "challenger_model_id"), g_chal);
    ck_assert_pstr_eq(sget(r.json, "fallback_decision"), "allow");
    ck_assert_int_eq((int)get(r.json, "scoring_timeout_ms")->valuedouble, 10000);
    h_resp_free(&r);

    /* A model the policy uses cannot be deleted (champion or challenger); once unused, it can. */
    char path[200];
    snprintf(path, sizeof path, "/api/v1/models/%s", g_chal);
    e2e_req(&E, "DELETE", path, NULL, &r);
    e2e_assert_problem(&r, 409, "conflict", NULL);
    h_resp_free(&r);
    snprintf(path, sizeof path, "/api/v1/models/%s", g_demo);
    e2e_req(&E, "DELETE", path, NULL, &r);
    e2e_assert_problem(&r, 409, "conflict", NULL);
    h_resp_free(&r);
    char tmp[37];
    txt = fx_slurp("api/demo/demo_model.json", &len);
    upload("pol-tmp", txt, len, tmp);
    free(txt);
    set_policy(tmp, NULL, 0.5, 0.9, "review", 50);
    snprintf(path, sizeof path, "/api/v1/models/%s", tmp);
    e2e_req(&E, "DELETE", path, NULL, &r);
    e2e_assert_problem(&r, 409, "conflict", NULL);
    h_resp_free(&r);
    set_policy(g_demo, NULL, 0.5, 0.9, "review", 50);
    e2e_req(&E, "DELETE", path, NULL, &r);
    ck_assert_int_eq(r.status, 204);
    h_resp_free(&r);
}
END_TEST

/* ---- POST validation ------------------------------------------------------------------------- */

START_TEST(txn_validation)
{
    char uid[37], base[600];
    h_resp r;
    default_policy();
    create_user("val-u", "DE", uid);
    snprintf(base, sizeof base,
             "{\"user_id\":\"%s\",\"amount\":1000,\"currency\":\"EUR\",\"merchant_id\":\"m1\","
             "\"merchant_category\":\"5411\",\"country\":\"DE\",\"channel\":\"ecommerce\"}",
             uid);
    /* Each case: member, raw JSON value (NULL = remove), expected field. */
    static const struct {
        const char *member, *value, *field;
    } cases[] = {
        {"user_external_id", "\"val-u\"", "user_external_id"}, /* both */
        {"user_id", NULL, "user_id"},                          /* neither */
        {"user_id", "\"not-a-uuid\"", "user_id"},
        {"user_id", "\"0000000-0000-4000-8000-0000000000000\"", "user_id"},
        {"user_id", "5", "user_id"},
        {"amount", "0", "amount"},
        {"amount", "-1", "amount"},
        {"amount", "1.5", "amount"},
        {"amount", "9007199254740992", "amount"},
        {"amount", "1e300", "amount"},
        {"amount", "\"100\"", "amount"},
        {"amount", NULL, "amount"},
        {"currency", "\"EURO\"", "currency"},
        {"currency", "\"XXX\"", "currency"},
        {"currency", "\"eur\"", "currency"},
        {"currency", "\"\"", "currency"},
        {"currency", "978", "currency"},
        {"currency", NULL, "currency"},
        {"merchant_category", "\"541\"", "merchant_category"},
        {"merchant_category", "\"54111\"", "merchant_category"},
        {"merchant_category", "\"abcd\"", "merchant_category"},
        {"merchant_category", "\"54a1\"", "merchant_category"},
        {"merchant_id", "\"\"", "merchant_id"},
        {"merchant_id", NULL, "merchant_id"},
        {"country", "\"XX\"", "country"},
        {"country", "\"de\"", "country"},
        {"country", "\"DEU\"", "country"},
        {"channel", "\"pos\"", "channel"},
        {"channel", NULL, "channel"},
        {"occurred_at", "\"2024-01-01 10:00:00Z\"", "occurred_at"},
        {"occurred_at", "\"2024-01-01T10:00:00\"", "occurred_at"},
        {"occurred_at", "\"yesterday\"", "occurred_at"},
        {"occurred_at", "\"2024-13-01T00:00:00Z\"", "occurred_at"},
        {"occurred_at", "\"2024-02-30T00:00:00Z\"", "occurred_at"},
        /* PostgreSQL answers 22009, not 22008, for an offset out of range: was a 500. */
        {"occurred_at", "\"2024-01-01T00:00:00+99:99\"", "occurred_at"},
        {"occurred_at", "\"2024-01-01T00:00:00-16:00\"", "occurred_at"},
        {"occurred_at", "1700000000", "occurred_at"},
        {"features", "{\"x\":\"a\"}", "features.x"},
        {"features", "{\"x\":true}", "features.x"},
        {"features", "[1]", "features"},
        {"metadata", "\"m\"", "metadata"},
        {"foo", "1", "foo"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *o = cJSON_Parse(base);
        cJSON_DeleteItemFromObjectCaseSensitive(o, cases[i].member);
        if (cases[i].value)
            cJSON_AddItemToObject(o, cases[i].member, cJSON_CreateRaw(cases[i].value));
        char *body = cJSON_PrintUnformatted(o);
        post_txn(body, NULL, NULL, &r);
        ck_assert_msg(r.status == 400, "case %zu %s: %ld %s", i, body, r.status, r.body);
        /* A member the resource does not know is unknown_field, a known one with a bad value
         * validation_failed. */
        e2e_assert_problem(
            &r, 400, strcmp(cases[i].member, "foo") == 0 ? "unknown_field" : "validation_failed",
            cases[i].field);
        h_resp_free(&r);
        free(body);
        cJSON_Delete(o);
    }
    ck_assert_int_eq(count_user_txns(uid), 0);

    /* Valid neighbours: the largest amount, EUR, by external id, client features. */
    char body[800];
    snprintf(body, sizeof body,
             "{\"user_id\":\"%s\",\"amount\":9007199254740991,\"currency\":\"EUR\","
             "\"merchant_id\":\"m1\",\"merchant_category\":\"5411\",\"country\":\"DE\","
             "\"channel\":\"ecommerce\",\"features\":{\"x\":1.5,\"y\":null},"
             "\"metadata\":{\"k\":\"v\"}}",
             uid);
    post_ok(body, &r);
    ck_assert_msg(strstr(r.body, "\"amount\":9007199254740991") != NULL, "%s", r.body);
    h_resp_free(&r);
    post_ok("{\"user_external_id\":\"val-u\",\"amount\":1,\"currency\":\"EUR\","
            "\"merchant_id\":\"m1\",\"merchant_category\":\"0000\",\"country\":\"DE\","
            "\"channel\":\"wallet\",\"occurred_at\":\"2024-01-01T10:00:00.123456+02:00\"}",
            &r);
    ck_assert_pstr_eq(sget(r.json, "user_id"), uid);
    ck_assert_pstr_eq(sget(r.json, "occurred_at"), "2024-01-01T08:00:00.123456Z");
    h_resp_free(&r);
    ck_assert_int_eq(count_user_txns(uid), 2);

    /* Unknown users. */
    txn_body(body, sizeof body, "00000000-0000-4000-8000-000000000000", 100, "EUR", "m", "DE",
             NULL);
    post_txn(body, NULL, NULL, &r);
    e2e_assert_problem(&r, 422, "unknown_user", "user_id");
    h_resp_free(&r);
    post_txn("{\"user_external_id\":\"nobody\",\"amount\":1,\"currency\":\"EUR\","
             "\"merchant_id\":\"m1\",\"merchant_category\":\"5411\",\"country\":\"DE\","
             "\"channel\":\"wallet\"}",
             NULL, NULL, &r);
    e2e_assert_problem(&r, 422, "unknown_user", "user_external_id");
    h_resp_free(&r);
}
END_TEST

/* The amount feature is amount / 10^exponent(currency). */
START_TEST(currency_exponents)
{
    static const struct {
        const char *cur;
        long long amount;
        double major;
    } cases[] = {
        {"EUR", 1234, 12.34},     {"JPY", 500, 500}, {"KWD", 12345, 12.345},
        {"CLF", 123456, 12.3456}, {"USD", 1, 0.01},
    };
    char uid[37], body[600];
    default_policy();
    create_user("cur-u", "DE", uid);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h_resp r;
        txn_body(body, sizeof body, uid, cases[i].amount, cases[i].cur, "m", "DE", NULL);
        post_ok(body, &r);
        float got;
        int isnull;
        ck_assert_int_eq(raw_float(r.body, "features", "amount", &got, &isnull), 0);
        ck_assert(!isnull);
        ck_assert_msg(fbits(got) == fbits((float)cases[i].major),
                      "%s: amount feature %.9g, want %.9g", cases[i].cur, (double)got,
                      (double)(float)cases[i].major);
        ck_assert_int_eq(raw_float(r.body, "features", "log_amount", &got, &isnull), 0);
        ck_assert_uint_eq(fbits(got), fbits((float)log1p(cases[i].major)));
        ck_assert_pstr_eq(sget(r.json, "currency"), cases[i].cur);
        ck_assert_int_eq((long long)get(r.json, "amount")->valuedouble, cases[i].amount);
        h_resp_free(&r);
    }
}
END_TEST

/* ---- built-in features ----------------------------------------------------------------------- */

typedef struct hist {
    int64_t offset_us; /* from T */
    long long amount;
    const char *currency;
    int exponent;
    const char *merchant, *country;
} hist;

#define MIN_US (60LL * 1000000)
#define HOUR_US (60 * MIN_US)
#define DAY_US (24 * HOUR_US)

/* The history of the features test; windows are [T - w, T), earlier transactions only. */
static const hist HISTORY[] = {
    {-10 * MIN_US, 1050, "EUR", 2, "m-B", "FR"},        /* 1h, 24h, 30d; the latest earlier */
    {-HOUR_US, 2000, "EUR", 2, "m-C", "DE"},            /* exactly T-1h: inside 1h */
    {-HOUR_US - 1000, 1, "EUR", 2, "m-I", "DE"},        /* 1 ms before: 24h, not 1h */
    {-2 * HOUR_US, 700, "JPY", 0, "m-D", "JP"},         /* 24h */
    {-DAY_US, 333, "EUR", 2, "m-E", "DE"},              /* exactly T-24h: inside 24h */
    {-25 * HOUR_US, 12345, "KWD", 3, "m-F", "KW"},      /* 30d only */
    {-30 * DAY_US, 999, "EUR", 2, "m-G", "US"},         /* exactly T-30d: inside 30d */
    {-30 * DAY_US - 1000, 4242, "EUR", 2, "m-H", "ES"}, /* 1 ms before: outside */
    {-31 * DAY_US, 5000, "EUR", 2, "m-A", "IT"},        /* outside 30d, but merchant m-A */
    {HOUR_US, 100000, "EUR", 2, "m-Z", "BR"},           /* later: never counts */
    {0, 77777, "EUR", 2, "m-Y", "CN"},                  /* at T itself: not earlier */
};
#define NHIST (sizeof HISTORY / sizeof HISTORY[0])

/* Everything a feature needs, computed here from HISTORY (the second implementation). */
static void expected_features(int64_t t_us, int64_t user_created_us, double amount_major,
                              const char *merchant, const char *country, const char *user_country,
                              double out[15])
{
    int c1h = 0, c24h = 0, c30 = 0, seen = 0;
    double s24 = 0, s30 = 0, max30 = -INFINITY;
    int64_t last = INT64_MIN;
    const char *countries[NHIST];
    int ncountries = 0;
    for (size_t i = 0; i < NHIST; i++) {
        const hist *h = &HISTORY[i];
        int64_t at = t_us + h->offset_us;
        if (at >= t_us)
            continue;
        double major = (double)h->amount / pow(10, h->exponent);
        if (at > last)
            last = at;
        if (strcmp(h->merchant, merchant) == 0)
            seen = 1;
        if (at >= t_us - HOUR_US)
            c1h++;
        if (at >= t_us - DAY_US) {
            c24h++;
            s24 += major;
        }
        if (at >= t_us - 30 * DAY_US) {
            c30++;
            s30 += major;
            if (major > max30)
                max30 = major;
            int dup = 0;
            for (int k = 0; k < ncountries; k++)
                dup |= strcmp(countries[k], h->country) == 0;
            if (!dup)
                countries[ncountries++] = h->country;
        }
    }
    time_t ts = (time_t)(t_us / 1000000);
    struct tm tm;
    gmtime_r(&ts, &tm);
    out[0] = amount_major;
    out[1] = log1p(amount_major);
    out[2] = tm.tm_hour;
    out[3] = (tm.tm_wday + 6) % 7; /* Monday = 0 */
    out[4] = (double)(t_us - user_created_us) / 86400e6;
    out[5] = c1h;
    out[6] = c24h;
    out[7] = s24;
    out[8] = c30 ? s30 / c30 : NAN;
    out[9] = c30 ? max30 : NAN;
    out[10] = c30 && s30 != 0 ? amount_major / (s30 / c30) : NAN;
    out[11] = last == INT64_MIN ? NAN : (double)(t_us - last) / 1e6;
    out[12] = seen;
    out[13] = user_country ? strcmp(user_country, country) != 0 : NAN;
    out[14] = ncountries;
}

static const char *const FEATURE_NAMES[15] = {
    "amount",
    "log_amount",
    "hour_of_day",
    "day_of_week",
    "user_age_days",
    "user_txn_count_1h",
    "user_txn_count_24h",
    "user_amount_sum_24h",
    "user_amount_avg_30d",
    "user_amount_max_30d",
    "amount_to_user_avg_30d",
    "seconds_since_last_txn",
    "merchant_seen_before",
    "country_mismatch",
    "user_distinct_countries_30d",
};

/* Every built-in in the stored snapshot equals the float of the expected double (tolerance 0);
 * NaN means the snapshot holds null.  Checks both the POST body and GET /transactions/{id}. */
static void assert_features(const h_resp *r, const double want[15], const char *what)
{
    for (int i = 0; i < 15; i++) {
        float got;
        int isnull;
        ck_assert_msg(raw_float(r->body, "features", FEATURE_NAMES[i], &got, &isnull) == 0,
                      "%s: no %s in snapshot %s", what, FEATURE_NAMES[i], r->body);
        if (isnan(want[i])) {
            ck_assert_msg(isnull, "%s: %s = %.9g, want null", what, FEATURE_NAMES[i], (double)got);
            continue;
        }
        ck_assert_msg(!isnull && fbits(got) == fbits((float)want[i]), "%s: %s = %.9g, want %.9g",
                      what, FEATURE_NAMES[i], (double)got, (double)(float)want[i]);
    }
}

/* Inserts HISTORY around T (t_text) for a new user and checks every built-in of three probes at
 * T.  tag makes the users' external ids unique. */
static void check_features(const char *t_text, const char *tag)
{
    char uid[37], body[600], when[40], ext[64];
    const int64_t T = parse_time(t_text);
    default_policy();
    snprintf(ext, sizeof ext, "%s-u", tag);
    int64_t created = create_user(ext, "DE", uid);
    /* Insert out of time order: the features follow occurred_at, not insertion order. */
    for (size_t k = NHIST; k-- > 0;) {
        const hist *h = &HISTORY[k];
        h_resp r;
        fmt_time(T + h->offset_us, when);
        txn_body(body, sizeof body, uid, h->amount, h->currency, h->merchant, h->country, when);
        post_ok(body, &r);
        ck_assert_pstr_eq(sget(r.json, "occurred_at"), when);
        h_resp_free(&r);
    }
    double want[15];
    fmt_time(T, when);

    /* Probe 1: merchant seen 31 days ago, country differs from the user's. */
    h_resp r;
    txn_body(body, sizeof body, uid, 4321, "EUR", "m-A", "FR", when);
    post_ok(body, &r);
    expected_features(T, created, 43.21, "m-A", "FR", "DE", want);
    ck_assert_double_eq(want[5], 2);
    ck_assert_double_eq(want[6], 5);
    ck_assert_double_eq(want[11], 600);
    ck_assert_double_eq(want[12], 1);
    ck_assert_double_eq(want[14], 5);
    assert_features(&r, want, "probe 1 (POST)");
    char path[200];
    snprintf(path, sizeof path, "/api/v1/transactions/%s", sget(r.json, "id"));
    h_resp g;
    e2e_req(&E, "GET", path, NULL, &g);
    ck_assert_int_eq(g.status, 200);
    assert_features(&g, want, "probe 1 (GET)");
    h_resp_free(&g);
    h_resp_free(&r);

    /* Probe 2, also at T (probe 1 is not earlier): a merchant used only later, home country. */
    txn_body(body, sizeof body, uid, 5, "JPY", "m-Z", "DE", when);
    post_ok(body, &r);
    expected_features(T, created, 5, "m-Z", "DE", "DE", want);
    ck_assert_double_eq(want[12], 0);
    ck_assert_double_eq(want[13], 0);
    assert_features(&r, want, "probe 2");
    h_resp_free(&r);

    /* A user without country and without history: the "missing" cases. */
    char uid2[37];
    snprintf(ext, sizeof ext, "%s-empty", tag);
    int64_t created2 = create_user(ext, NULL, uid2);
    txn_body(body, sizeof body, uid2, 999, "EUR", "m-A", "FR", when);
    post_ok(body, &r);
    double none[15];
    { /* an empty history: counts 0, sum 0, the rest missing; no user country */
        none[0] = 9.99;
        none[1] = log1p(9.99);
        time_t ts = (time_t)(T / 1000000);
        struct tm tm;
        gmtime_r(&ts, &tm);
        none[2] = tm.tm_hour;
        none[3] = (tm.tm_wday + 6) % 7;
        none[4] = (double)(T - created2) / 86400e6;
        none[5] = none[6] = none[7] = 0;
        none[8] = none[9] = none[10] = none[11] = NAN;
        none[12] = 0;
        none[13] = NAN;
        none[14] = 0;
    }
    assert_features(&r, none, "empty history");
    h_resp_free(&r);
}

/* T in July: no window crosses a DST change. */
START_TEST(builtin_features)
{
    check_features("2031-07-15T12:34:56.250000Z", "feat");
}
END_TEST

/* T on 2031-04-10: the 30-day window crosses the start of summer time in the API's session time
 * zone (PGTZ=Europe/Berlin, see ENV_*), yet "30 d" stays 720 hours. */
START_TEST(builtin_features_across_dst)
{
    check_features("2031-04-10T12:00:00.000000Z", "featdst");
}
END_TEST

/* ---- scores and decisions -------------------------------------------------------------------- */

START_TEST(champion_and_challenger_scores)
{
    char uid[37], body[600], when[40];
    default_policy();
    create_user("cc-u", "DE", uid);
    const int64_t T = parse_time("2030-01-10T08:00:00.000000Z");
    for (int i = 0; i < 6; i++) {
        h_resp r;
        fmt_time(T + i * 7 * MIN_US, when);
        txn_body(body, sizeof body, uid, 1000 + 3371LL * i * i, i % 2 ? "EUR" : "USD",
                 i % 3 ? "m-1" : "m-2", i % 2 ? "FR" : "DE", when);
        post_ok(body, &r);
        assert_scored(&r);
        const cJSON *risk = get(r.json, "risk");
        ck_assert_pstr_eq(sget(get(risk, "model"), "id"), g_demo);
        ck_assert_pstr_eq(sget(get(risk, "challenger"), "id"), g_chal);
        float champ = risk_score(&r), chal, want_ch, want_cl;
        int isnull;
        ck_assert_int_eq(raw_float(r.body, "challenger", "score", &chal, &isnull), 0);
        ck_assert(!isnull);
        want_ch = predict_snapshot(g_demo, &r);
        want_cl = predict_snapshot(g_chal, &r);
        ck_assert_msg(fbits(champ) == fbits(want_ch), "champion %.9g, predict %.9g", (double)champ,
                      (double)want_ch);
        ck_assert_msg(fbits(chal) == fbits(want_cl), "challenger %.9g, predict %.9g", (double)chal,
                      (double)want_cl);
        ck_assert_msg(fbits(champ) != fbits(chal), "champion and challenger scores coincide");
        /* The decision follows the champion under the thresholds in force. */
        const char *d = champ >= 0.9 ? "block" : champ >= 0.5 ? "review" : "allow";
        ck_assert_pstr_eq(decision(&r), d);
        h_resp_free(&r);
    }
}
END_TEST

/* Score >= threshold is inclusive; a PUT changes the decision of the very next identical
 * request. */
START_TEST(decision_at_thresholds)
{
    char uid[37], body[600];
    h_resp r;
    ensure_models();
    set_policy(g_demo, NULL, 0.5, 0.9, "allow", 5000);
    create_user("thr-u", "DE", uid);
    txn_body(body, sizeof body, uid, 2500, "EUR", "m-t", "DE", "2030-02-02T02:02:02Z");
    post_ok(body, &r);
    assert_scored(&r);
    float s = risk_score(&r);
    h_resp_free(&r);
    ck_assert(s > 0 && s < 1);
    double sd = (double)s, above = nextafter(sd, INFINITY);
    struct {
        double review, block;
        const char *want;
    } cases[] = {
        {sd, 1.0, "review"},     /* review == score */
        {sd, sd, "block"},       /* block == score */
        {above, above, "allow"}, /* one double above the score */
        {0, above, "review"},    {0, sd, "block"},    {above, 1.0, "allow"},
        {0, 0, "block"},         {1.0, 1.0, "allow"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_policy(g_demo, NULL, cases[i].review, cases[i].block, "allow", 5000);
        post_ok(body, &r);
        assert_scored(&r);
        ck_assert_uint_eq(fbits(risk_score(&r)), fbits(s)); /* identical request, same score */
        ck_assert_msg(strcmp(decision(&r), cases[i].want) == 0,
                      "case %zu: review %.17g block %.17g score %.9g -> %s, want %s", i,
                      cases[i].review, cases[i].block, (double)s, decision(&r), cases[i].want);
        const cJSON *pol = get(get(r.json, "risk"), "policy");
        ck_assert_double_eq(get(pol, "review_threshold")->valuedouble, cases[i].review);
        ck_assert_double_eq(get(pol, "block_threshold")->valuedouble, cases[i].block);
        h_resp_free(&r);
    }
}
END_TEST

/* ---- idempotency ----------------------------------------------------------------------------- */

START_TEST(idempotency_replay_and_scope)
{
    char uid[37], body[600], body2[600], loc1[200], loc2[200], hv[32];
    h_resp a, b;
    default_policy();
    create_user("idem-u", "DE", uid);
    txn_body(body, sizeof body, uid, 1234, "EUR", "m-i", "DE", "2030-03-03T03:03:03Z");
    post_txn(body, "idem-key-1", NULL, &a);
    ck_assert_msg(a.status == 201, "%ld %s", a.status, a.body);
    ck_assert_ptr_null(h_header(&a, "Idempotent-Replayed", hv, sizeof hv));
    post_txn(body, "idem-key-1", NULL, &b);
    ck_assert_int_eq(b.status, 201);
    ck_assert_msg(b.len == a.len && memcmp(a.body, b.body, a.len) == 0, "replay differs:\n%s\n%s",
                  a.body, b.body);
    ck_assert_ptr_nonnull(h_header(&b, "Idempotent-Replayed", hv, sizeof hv));
    ck_assert_str_eq(hv, "true");
    ck_assert_ptr_nonnull(h_header(&a, "Location", loc1, sizeof loc1));
    ck_assert_ptr_nonnull(h_header(&b, "Location", loc2, sizeof loc2));
    ck_assert_str_eq(loc1, loc2);
    h_resp_free(&b);

    /* The record names the transaction (migration 0013): labelled since, the replay is still the
     * decision's answer byte for byte (label null), while a GET shows the label. */
    char path[200], out[64];
    snprintf(path, sizeof path, "/api/v1/transactions/%s", sget(a.json, "id"));
    e2e_req(&E, "PATCH", path, "{\"label\":\"fraud\",\"label_source\":\"chargeback\"}", &b);
    ck_assert_int_eq(b.status, 200);
    h_resp_free(&b);
    ck_assert_int_eq(h_psql(&E, NULL,
                            "SELECT count(*) FROM idempotency_keys WHERE key = 'idem-key-1' AND "
                            "response_body IS NULL AND transaction_id IS NOT NULL",
                            out, sizeof out),
                     0);
    ck_assert_str_eq(out, "1");
    post_txn(body, "idem-key-1", NULL, &b);
    ck_assert_int_eq(b.status, 201);
    ck_assert_msg(b.len == a.len && memcmp(a.body, b.body, a.len) == 0,
                  "replay after a label differs:\n%s\n%s", a.body, b.body);
    h_resp_free(&b);
    e2e_req(&E, "GET", path, NULL, &b);
    ck_assert_pstr_eq(sget(b.json, "label"), "fraud");
    /* A record made before 0013 holds the answer itself, and is replayed from it: here the
     * labelled GET body (a valid answer that the transaction's "as decided" print is not). */
    char *labelled = strdup(b.body), sql[8192];
    h_resp_free(&b);
    ck_assert_ptr_nonnull(labelled);
    ck_assert_ptr_null(strstr(labelled, "$old$"));
    ck_assert_int_lt(snprintf(sql, sizeof sql,
                              "INSERT INTO idempotency_keys (api_key_id, key, request_hash, "
                              "status_code, response_body) SELECT api_key_id, 'idem-old', "
                              "request_hash, 201, $old$%s$old$ FROM idempotency_keys WHERE key = "
                              "'idem-key-1'",
                              labelled),
                     (int)sizeof sql);
    ck_assert_int_eq(h_psql(&E, NULL, sql, NULL, 0), 0);
    post_txn(body, "idem-old", NULL, &b);
    ck_assert_int_eq(b.status, 201);
    ck_assert_str_eq(b.body, labelled);
    ck_assert_ptr_nonnull(h_header(&b, "Idempotent-Replayed", hv, sizeof hv));
    h_resp_free(&b);
    free(labelled);
    /* A record whose transaction is not there: a 500, never an empty answer or a new decision. */
    ck_assert_int_eq(h_psql(&E, NULL,
                            "INSERT INTO idempotency_keys (api_key_id, key, request_hash, "
                            "status_code, transaction_id) SELECT api_key_id, 'idem-gone', "
                            "request_hash, 201, gen_random_uuid() FROM idempotency_keys "
                            "WHERE key = 'idem-key-1'",
                            NULL, 0),
                     0);
    post_txn(body, "idem-gone", NULL, &b);
    e2e_assert_problem(&b, 500, "internal", NULL);
    h_resp_free(&b);
    ck_assert_int_eq(count_user_txns(uid), 1);

    /* Same key, different body. */
    txn_body(body2, sizeof body2, uid, 1235, "EUR", "m-i", "DE", "2030-03-03T03:03:03Z");
    post_txn(body2, "idem-key-1", NULL, &b);
    e2e_assert_problem(&b, 422, "idempotency_key_reused", NULL);
    h_resp_free(&b);
    ck_assert_int_eq(count_user_txns(uid), 1);

    /* Keys are scoped to the API key: the same key under another API key is a new request. */
    char key2[128];
    create_key("read,write", key2, sizeof key2);
    post_txn(body, "idem-key-1", key2, &b);
    ck_assert_msg(b.status == 201, "%ld %s", b.status, b.body);
    ck_assert_ptr_null(h_header(&b, "Idempotent-Replayed", hv, sizeof hv));
    ck_assert_str_ne(sget(b.json, "id"), sget(a.json, "id"));
    h_resp_free(&b);
    ck_assert_int_eq(count_user_txns(uid), 2);

    /* Without a key, the same body is simply a new transaction. */
    post_ok(body, &b);
    h_resp_free(&b);
    ck_assert_int_eq(count_user_txns(uid), 3);

    /* Key length: 255 fine, 256 and empty-ish/invalid characters not. */
    char k255[300], k256[300];
    memset(k255, 'k', 255);
    k255[255] = '\0';
    memset(k256, 'k', 256);
    k256[256] = '\0';
    post_txn(body, k256, NULL, &b);
    e2e_assert_problem(&b, 400, "validation_failed", "Idempotency-Key");
    h_resp_free(&b);
    post_txn(body, "bad key with spaces", NULL, &b);
    e2e_assert_problem(&b, 400, "validation_failed", "Idempotency-Key");
    h_resp_free(&b);
    ck_assert_int_eq(count_user_txns(uid), 3);
    post_txn(body, k255, NULL, &b);
    ck_assert_msg(b.status == 201, "%ld %s", b.status, b.body);
    h_resp_free(&b);
    post_txn(body, k255, NULL, &b);
    ck_assert_int_eq(b.status, 201);
    ck_assert_ptr_nonnull(h_header(&b, "Idempotent-Replayed", hv, sizeof hv));
    h_resp_free(&b);
    ck_assert_int_eq(count_user_txns(uid), 4);
    h_resp_free(&a);
}
END_TEST

/* How many times needle occurs in api.log. */
static int log_count(const char *needle)
{
    char *log = h_read_file(&E, "api.log");
    int n = 0;
    for (const char *p = log; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(log);
    return n;
}

/* The count a query prints (h_psql). */
static long sql_count(const char *sql)
{
    char out[64];
    ck_assert_int_eq(h_psql(&E, NULL, sql, out, sizeof out), 0);
    return atol(out);
}

/* The INSERT, the outbox call, the idempotency record and COMMIT are one round trip (the API
 * names the row): a failure of any statement in it leaves nothing, and the key is not used up.
 * Failures are planted by triggers: a foreign-key violation of the INSERT itself (a user deleted
 * between the features and the INSERT: 422 unknown_user), an error of the record INSERT after it
 * (500, after the INSERT and the review it opened).  Each fires only on this test's marked rows,
 * so one left by a failed assertion touches no other test.  And the id the API made is a
 * version-4 UUID, the one Location names. */
START_TEST(commit_round_trip_is_atomic)
{
    char uid[37], body[600], sql[1024], hv[200];
    h_resp r;
    ensure_models();
    set_policy(g_demo, g_chal, 0.0, 1.0, "review", 5000); /* every decision opens a review */
    create_user("atomic-u", "DE", uid);
    txn_body(body, sizeof body, uid, 4242, "EUR", "m-atomic", "DE", NULL);
    ck_assert_int_eq(
        h_psql(&E, NULL,
               "DROP TRIGGER IF EXISTS e2e_fail ON transactions; "
               "DROP TRIGGER IF EXISTS e2e_fail ON idempotency_keys; "
               "CREATE OR REPLACE FUNCTION e2e_fail_txn() RETURNS trigger LANGUAGE plpgsql AS $$ "
               "BEGIN IF NEW.amount = 4242 AND NEW.merchant_id = 'm-atomic' THEN "
               "RAISE foreign_key_violation USING MESSAGE = 'planted'; END IF; RETURN NEW; END $$; "
               "CREATE OR REPLACE FUNCTION e2e_fail_key() RETURNS trigger LANGUAGE plpgsql AS $$ "
               "BEGIN IF NEW.key = 'atomic-2' THEN RAISE EXCEPTION 'planted'; END IF; "
               "RETURN NEW; END $$; "
               "CREATE TRIGGER e2e_fail BEFORE INSERT ON transactions "
               "FOR EACH ROW EXECUTE FUNCTION e2e_fail_txn(); "
               "CREATE TRIGGER e2e_fail BEFORE INSERT ON idempotency_keys "
               "FOR EACH ROW EXECUTE FUNCTION e2e_fail_key()",
               NULL, 0),
        0);
    long reviews0 = sql_count("SELECT count(*) FROM reviews");
    post_txn(body, "atomic-1", NULL, &r);
    e2e_assert_problem(&r, 422, "unknown_user", NULL);
    h_resp_free(&r);
    txn_body(body, sizeof body, uid, 4343, "EUR", "m-atomic", "DE", NULL);
    int planted0 = log_count("planted");
    post_txn(body, "atomic-2", NULL, &r); /* the INSERT and the review ran; the record failed */
    e2e_assert_problem(&r, 500, "internal", NULL);
    h_resp_free(&r);
    ck_assert_msg(log_count("planted") > planted0, "the 500 was not the planted error");
    ck_assert_int_eq(count_user_txns(uid), 0);
    ck_assert_int_eq(sql_count("SELECT count(*) FROM idempotency_keys WHERE key LIKE 'atomic-%'"),
                     0);
    ck_assert_int_eq(sql_count("SELECT count(*) FROM reviews"), reviews0);
    ck_assert_int_eq(h_psql(&E, NULL,
                            "DROP TRIGGER e2e_fail ON transactions; DROP TRIGGER e2e_fail ON "
                            "idempotency_keys",
                            NULL, 0),
                     0);
    /* Neither key was used up: the same requests now decide. */
    post_txn(body, "atomic-2", NULL, &r);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    ck_assert_ptr_null(h_header(&r, "Idempotent-Replayed", hv, sizeof hv));
    char id[64];
    snprintf(id, sizeof id, "%s", sget(r.json, "id"));
    ck_assert_int_eq((int)strlen(id), 36);
    for (int i = 0; i < 36; i++)
        ck_assert_msg(i == 8 || i == 13 || i == 18 || i == 23
                          ? id[i] == '-'
                          : strchr("0123456789abcdef", id[i]) != NULL,
                      "id %s", id);
    ck_assert_int_eq(id[14], '4');                 /* version 4 */
    ck_assert_ptr_nonnull(strchr("89ab", id[19])); /* variant 10 */
    char want[200];
    snprintf(want, sizeof want, "/api/v1/transactions/%s", id);
    ck_assert_ptr_nonnull(h_header(&r, "Location", hv, sizeof hv));
    ck_assert_str_eq(hv, want);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM idempotency_keys WHERE key = 'atomic-2' AND "
             "transaction_id = '%s'",
             id);
    ck_assert_int_eq(sql_count(sql), 1);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM reviews WHERE transaction_id = '%s'", id);
    ck_assert_int_eq(sql_count(sql), 1); /* so the failed twin had opened one too */
    h_resp_free(&r);
    txn_body(body, sizeof body, uid, 4242, "EUR", "m-atomic", "DE", NULL);
    post_txn(body, "atomic-1", NULL, &r);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    ck_assert_str_ne(sget(r.json, "id"), id);
    h_resp_free(&r);
    ck_assert_int_eq(count_user_txns(uid), 2);
    default_policy();
}
END_TEST

#define NCONC 100

#define NGROUP 48

typedef struct group_arg {
    char body[600], ikey[64];
    pthread_barrier_t *bar;
    h_resp r;
    int rc;
} group_arg;

static void *group_worker(void *p)
{
    group_arg *a = p;
    char hdr[100];
    snprintf(hdr, sizeof hdr, "Idempotency-Key: %s", a->ikey);
    const char *extra[] = {hdr, NULL};
    pthread_barrier_wait(a->bar);
    a->rc = h_http(&E, "POST", "/api/v1/transactions", E.key, "application/json", a->body,
                   strlen(a->body), extra, &a->r);
    return NULL;
}

/* Starts one thread per args[i] (group_worker), all released at once by a barrier, and waits
 * for every answer. */
static void run_together(group_arg *args, int n)
{
    pthread_t th[NCONC];
    pthread_barrier_t bar;
    ck_assert_int_le(n, NCONC);
    pthread_barrier_init(&bar, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        args[i].bar = &bar;
        ck_assert_int_eq(pthread_create(&th[i], NULL, group_worker, &args[i]), 0);
    }
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
}

/* Holds an exclusive lock on the policy table for half a second (a thread of its own); *rc gets
 * psql's status. */
static void *hold_policy_lock(void *rc)
{
    *(int *)rc = h_psql(&E, NULL,
                        "BEGIN; LOCK TABLE policy IN ACCESS EXCLUSIVE MODE; "
                        "SELECT pg_sleep(0.5); COMMIT",
                        NULL, 0);
    return NULL;
}

/* Decisions made at once read and commit in groups (batchq.h), and one decision's failure fails
 * only that decision.  48 requests arrive together; a trigger makes every INSERT of this test
 * sleep 5 ms and a lock on the policy table holds the first read for up to half a second, so
 * they queue behind the first batch of each kind (checked: the metrics count fewer commits than
 * decisions, and fewer read round trips than reads).  Planted failures: every 8th request's
 * INSERT raises a foreign-key violation (422 unknown_user), every 8th, four further, fails its
 * idempotency record (500), and every 8th, two further, has a date PostgreSQL refuses in its reads
 * (400 occurred_at).  Each of the others is 201 and stored exactly as answered, with its review
 * and its record; of the failed ones nothing is stored and their keys are still free. */
START_TEST(group_commit_isolates_failures)
{
    char uid[37], sql[1024];
    ensure_models();
    set_policy(g_demo, g_chal, 0.0, 1.0, "review", 5000); /* every decision opens a review */
    create_user("group-u", "DE", uid);
    ck_assert_int_eq(
        h_psql(&E, NULL,
               "DROP TRIGGER IF EXISTS e2e_group ON transactions; "
               "DROP TRIGGER IF EXISTS e2e_group ON idempotency_keys; "
               "CREATE OR REPLACE FUNCTION e2e_group_txn() RETURNS trigger LANGUAGE plpgsql AS $$ "
               "BEGIN IF NEW.merchant_id LIKE 'm-group%' THEN PERFORM pg_sleep(0.005); END IF; "
               "IF NEW.merchant_id = 'm-group-bad' THEN "
               "RAISE foreign_key_violation USING MESSAGE = 'planted'; END IF; RETURN NEW; END $$; "
               "CREATE OR REPLACE FUNCTION e2e_group_key() RETURNS trigger LANGUAGE plpgsql AS $$ "
               "BEGIN IF NEW.key LIKE 'group-bad-%' THEN RAISE EXCEPTION 'planted'; END IF; "
               "RETURN NEW; END $$; "
               "CREATE TRIGGER e2e_group BEFORE INSERT ON transactions "
               "FOR EACH ROW EXECUTE FUNCTION e2e_group_txn(); "
               "CREATE TRIGGER e2e_group BEFORE INSERT ON idempotency_keys "
               "FOR EACH ROW EXECUTE FUNCTION e2e_group_key()",
               NULL, 0),
        0);
    double commits0 = e2e_metric(&E, "vigil_decision_commits_total");
    double decided0 = e2e_metric(&E, "vigil_decisions_committed_total");
    double trips0 = e2e_metric(&E, "vigil_decision_read_round_trips_total");
    double reads0 = e2e_metric(&E, "vigil_decision_reads_total");
    ck_assert(commits0 >= 0 && decided0 >= 0 && trips0 >= 0 && reads0 >= 0);
    long reviews0 = sql_count("SELECT count(*) FROM reviews");
    static group_arg args[NGROUP];
    for (int i = 0; i < NGROUP; i++) {
        memset(&args[i], 0, sizeof args[i]);
        txn_body(args[i].body, sizeof args[i].body, uid, 1000 + i, "EUR",
                 i % 8 == 3 ? "m-group-bad" : "m-group", "DE",
                 i % 8 == 5 ? "2024-02-30T00:00:00Z" : NULL);
        snprintf(args[i].ikey, sizeof args[i].ikey, "group-%s-%d", i % 8 == 7 ? "bad" : "ok", i);
    }
    pthread_t locker;
    int locked = -1;
    ck_assert_int_eq(pthread_create(&locker, NULL, hold_policy_lock, &locked), 0);
    for (int t = 0; t < 500 && sql_count("SELECT count(*) FROM pg_locks WHERE relation = "
                                         "'policy'::regclass AND mode = 'AccessExclusiveLock' "
                                         "AND granted") == 0;
         t++)
        usleep(10 * 1000);
    run_together(args, NGROUP);
    pthread_join(locker, NULL);
    ck_assert_int_eq(locked, 0);
    int good = 0;
    for (int i = 0; i < NGROUP; i++) {
        h_resp *r = &args[i].r;
        ck_assert_msg(args[i].rc == 0, "request %d: no response", i);
        if (i % 8 == 3) {
            e2e_assert_problem(r, 422, "unknown_user", NULL);
        } else if (i % 8 == 7) {
            e2e_assert_problem(r, 500, "internal", NULL);
        } else if (i % 8 == 5) {
            e2e_assert_problem(r, 400, "validation_failed", "occurred_at");
        } else {
            ck_assert_msg(r->status == 201, "request %d: %ld %s", i, r->status, r->body);
            ck_assert_int_eq((int)cJSON_GetNumberValue(get(r->json, "amount")), 1000 + i);
            /* stored as answered, with its record and its review */
            snprintf(sql, sizeof sql,
                     "SELECT count(*) FROM transactions t JOIN idempotency_keys k ON "
                     "k.transaction_id = t.id JOIN reviews v ON v.transaction_id = t.id "
                     "WHERE t.id = '%s' AND t.amount = %d AND k.key = '%s' AND t.decision = '%s'",
                     sget(r->json, "id"), 1000 + i, args[i].ikey,
                     sget(get(r->json, "risk"), "decision"));
            ck_assert_msg(sql_count(sql) == 1, "request %d: not stored as answered: %s -> %s", i,
                          sql, r->body);
            good++;
        }
    }
    double commits = e2e_metric(&E, "vigil_decision_commits_total") - commits0;
    double decided = e2e_metric(&E, "vigil_decisions_committed_total") - decided0;
    double trips = e2e_metric(&E, "vigil_decision_read_round_trips_total") - trips0;
    double reads = e2e_metric(&E, "vigil_decision_reads_total") - reads0;
    printf("  %s: %d decisions at once: %.0f read in full in %.0f round trips, %d committed in "
           "%.0f transactions\n",
           g_worker ? "worker" : "inprocess", NGROUP, reads, trips, (int)decided, commits);
    ck_assert_int_eq((int)reads, NGROUP - NGROUP / 8); /* all but the refused dates */
    ck_assert_msg(trips < NGROUP, "no two decisions shared a read: %.0f for %d", trips, NGROUP);
    ck_assert_int_eq((int)decided, good);
    ck_assert_msg(commits < decided, "no two decisions shared a commit: %.0f for %.0f", commits,
                  decided);
    ck_assert_int_eq(count_user_txns(uid), good);
    ck_assert_int_eq(sql_count("SELECT count(*) FROM reviews") - reviews0, good);
    ck_assert_int_eq(sql_count("SELECT count(*) FROM idempotency_keys WHERE key LIKE 'group-%'"),
                     good);
    ck_assert_int_eq(h_psql(&E, NULL,
                            "DROP TRIGGER e2e_group ON transactions; DROP TRIGGER e2e_group ON "
                            "idempotency_keys",
                            NULL, 0),
                     0);
    /* The failed ones' keys are free: each request now decides. */
    for (int i = 3; i < NGROUP; i += 4) {
        h_resp r;
        post_txn(args[i].body, args[i].ikey, NULL, &r);
        ck_assert_msg(r.status == 201, "request %d again: %ld %s", i, r.status, r.body);
        ck_assert_ptr_null(h_header(&r, "Idempotent-Replayed", sql, sizeof sql));
        h_resp_free(&r);
    }
    ck_assert_int_eq(count_user_txns(uid), NGROUP - NGROUP / 8);
    for (int i = 0; i < NGROUP; i++)
        h_resp_free(&args[i].r);
    default_policy();
}
END_TEST

/* Holds an exclusive lock on the idempotency table for 5 s (a thread of its own). */
static void *hold_keys_lock(void *rc)
{
    *(int *)rc = h_psql(&E, NULL,
                        "BEGIN; LOCK TABLE idempotency_keys IN ACCESS EXCLUSIVE MODE; "
                        "SELECT pg_sleep(5); COMMIT",
                        NULL, 0);
    return NULL;
}

/* Polls pg_locks (up to 5 s) until sql's count is non-zero. */
static void await_lock(const char *sql)
{
    for (int t = 0; t < 500 && sql_count(sql) == 0; t++)
        usleep(10 * 1000);
    ck_assert_msg(sql_count(sql) > 0, "never seen: %s", sql);
}

/* Read lanes (VIGIL_READ_LANES, default 2) bound head-of-line blocking: while one decision's read
 * is stalled (its Idempotency-Key lookup waits on a lock of the idempotency table for 5 s), other
 * decisions, without a key, read on the other lane and are answered before it. */
START_TEST(read_lanes_bound_a_stalled_read)
{
    char uid[37];
    ensure_models();
    default_policy();
    create_user("lane-u", "DE", uid);
    pthread_t locker, stalled;
    int locked = -1;
    ck_assert_int_eq(pthread_create(&locker, NULL, hold_keys_lock, &locked), 0);
    await_lock("SELECT count(*) FROM pg_locks WHERE relation = 'idempotency_keys'::regclass "
               "AND mode = 'AccessExclusiveLock' AND granted");
    static group_arg slow;
    memset(&slow, 0, sizeof slow);
    txn_body(slow.body, sizeof slow.body, uid, 4242, "EUR", "m-lane", "DE", NULL);
    snprintf(slow.ikey, sizeof slow.ikey, "lane-stalled");
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 1);
    slow.bar = &bar;
    ck_assert_int_eq(pthread_create(&stalled, NULL, group_worker, &slow), 0);
    await_lock("SELECT count(*) FROM pg_locks WHERE relation = 'idempotency_keys'::regclass "
               "AND NOT granted");
    for (int i = 0; i < 3; i++) {
        char body[600];
        txn_body(body, sizeof body, uid, 100 + i, "EUR", "m-lane", "DE", NULL);
        h_resp r;
        post_txn(body, NULL, NULL, &r);
        ck_assert_msg(r.status == 201, "request %d: %ld %s", i, r.status, r.body);
        h_resp_free(&r);
    }
    /* still waiting for the lock: the three went past it */
    ck_assert_int_gt(sql_count("SELECT count(*) FROM pg_locks WHERE relation = "
                               "'idempotency_keys'::regclass AND NOT granted"),
                     0);
    ck_assert_int_eq(sql_count("SELECT count(*) FROM transactions WHERE merchant_id = 'm-lane' "
                               "AND amount = 4242"),
                     0);
    pthread_join(stalled, NULL);
    pthread_join(locker, NULL);
    pthread_barrier_destroy(&bar);
    ck_assert_int_eq(locked, 0);
    ck_assert_int_eq(slow.rc, 0);
    ck_assert_msg(slow.r.status == 201, "the stalled one: %ld %s", slow.r.status, slow.r.body);
    h_resp_free(&slow.r);
    ck_assert_int_eq(count_user_txns(uid), 4);
}
END_TEST

/* A twin that arrives while the first request's commit is under way: it finds no record, decides,
 * and its record then collides with the first one's (23505): 409, and nothing of it is stored.
 * The first request's INSERT is made to take 400 ms by a trigger; the twin goes 150 ms later.
 * A retry after both replays the first. */
START_TEST(idempotency_twin_during_commit)
{
    char uid[37], body[600], hv[200];
    default_policy();
    create_user("twin-u", "DE", uid);
    txn_body(body, sizeof body, uid, 777, "EUR", "m-twin", "DE", NULL);
    ck_assert_int_eq(
        h_psql(&E, NULL,
               "CREATE OR REPLACE FUNCTION e2e_twin() RETURNS trigger LANGUAGE plpgsql AS $$ "
               "BEGIN IF NEW.merchant_id = 'm-twin' THEN PERFORM pg_sleep(0.4); END IF; "
               "RETURN NEW; END $$; "
               "CREATE TRIGGER e2e_twin BEFORE INSERT ON transactions "
               "FOR EACH ROW EXECUTE FUNCTION e2e_twin()",
               NULL, 0),
        0);
    static group_arg first;
    memset(&first, 0, sizeof first);
    snprintf(first.body, sizeof first.body, "%s", body);
    snprintf(first.ikey, sizeof first.ikey, "twin-key");
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    first.bar = &bar;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, group_worker, &first), 0);
    pthread_barrier_wait(&bar);
    usleep(150 * 1000);
    h_resp twin;
    post_txn(body, "twin-key", NULL, &twin);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&bar);
    ck_assert_int_eq(first.rc, 0);
    ck_assert_msg(first.r.status == 201, "%ld %s", first.r.status, first.r.body);
    e2e_assert_problem(&twin, 409, "idempotency_key_in_use", NULL);
    h_resp_free(&twin);
    ck_assert_int_eq(count_user_txns(uid), 1);
    ck_assert_int_eq(h_psql(&E, NULL, "DROP TRIGGER e2e_twin ON transactions", NULL, 0), 0);
    h_resp again;
    post_txn(body, "twin-key", NULL, &again);
    ck_assert_int_eq(again.status, 201);
    ck_assert_ptr_nonnull(h_header(&again, "Idempotent-Replayed", hv, sizeof hv));
    ck_assert(again.len == first.r.len && memcmp(again.body, first.r.body, again.len) == 0);
    h_resp_free(&again);
    h_resp_free(&first.r);
    ck_assert_int_eq(count_user_txns(uid), 1);
}
END_TEST

/* Expired idempotency records go: 1,200 records 49 h old (past the default 48 h retention) and
 * one 47 h old are planted, then keyed decisions are made until the old ones are gone (each keyed
 * request drops a batch of at most 1,000 expired records with probability 1/64: two batches
 * needed; 1,500 requests leave them all with probability > 1 - 1e-6).  The 47 h record stays. */
START_TEST(idempotency_expiry)
{
    char uid[37], body[600], ikey[64], out[64];
    h_resp r;
    default_policy();
    create_user("idem-exp", "DE", uid);
    ck_assert_int_eq(
        h_psql(
            &E, NULL,
            "INSERT INTO idempotency_keys (api_key_id, key, request_hash, status_code, "
            "response_body, created_at) SELECT k.id, 'exp-old-' || g, 'x', 201, '{}', now() - "
            "CASE WHEN g = 0 THEN interval '47 hours' ELSE interval '49 hours' END FROM "
            "(SELECT id FROM api_keys ORDER BY created_at LIMIT 1) k, generate_series(0, 1200) g",
            NULL, 0),
        0);
    txn_body(body, sizeof body, uid, 1234, "EUR", "m-x", "DE", NULL);
    for (int i = 0; i < 1500; i++) {
        snprintf(ikey, sizeof ikey, "exp-new-%d", i);
        post_txn(body, ikey, NULL, &r);
        ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
        h_resp_free(&r);
        if (i % 100 == 99) {
            ck_assert_int_eq(h_psql(&E, NULL,
                                    "SELECT count(*) FROM idempotency_keys WHERE key LIKE "
                                    "'exp-old-%' AND created_at < now() - interval '48 hours'",
                                    out, sizeof out),
                             0);
            if (strcmp(out, "0") == 0)
                break;
        }
    }
    ck_assert_str_eq(out, "0");
    ck_assert_int_eq(h_psql(&E, NULL,
                            "SELECT count(*) FROM idempotency_keys WHERE key = 'exp-old-0'", out,
                            sizeof out),
                     0);
    ck_assert_str_eq(out, "1"); /* inside the retention: kept */
}
END_TEST

START_TEST(idempotency_concurrent)
{
    char uid[37], body[600];
    default_policy();
    create_user("conc-u", "DE", uid);
    txn_body(body, sizeof body, uid, 4242, "EUR", "m-c", "DE", "2030-04-04T04:04:04Z");
    static group_arg args[NCONC];
    for (int i = 0; i < NCONC; i++) {
        memset(&args[i], 0, sizeof args[i]);
        snprintf(args[i].body, sizeof args[i].body, "%s", body);
        snprintf(args[i].ikey, sizeof args[i].ikey, "conc-key-1");
    }
    run_together(args, NCONC);
    int n201 = 0, n409 = 0;
    const h_resp *first = NULL;
    for (int i = 0; i < NCONC; i++) {
        ck_assert_msg(args[i].rc == 0, "request %d: no response", i);
        long st = args[i].r.status;
        ck_assert_msg(st == 201 || st == 409, "request %d: %ld %s", i, st, args[i].r.body);
        if (st == 409) {
            n409++;
            e2e_assert_problem(&args[i].r, 409, "idempotency_key_in_use", NULL);
            continue;
        }
        n201++;
        if (!first)
            first = &args[i].r;
        else
            ck_assert_msg(first->len == args[i].r.len &&
                              memcmp(first->body, args[i].r.body, first->len) == 0,
                          "two different 201 bodies for one key");
    }
    printf("  %s: %d concurrent requests, one key: %d x 201, %d x 409\n",
           g_worker ? "worker" : "inprocess", NCONC, n201, n409);
    ck_assert_int_ge(n201, 1);
    ck_assert_int_eq(count_user_txns(uid), 1);
    for (int i = 0; i < NCONC; i++)
        h_resp_free(&args[i].r);
}
END_TEST

/* ---- reads and labels ------------------------------------------------------------------------ */

/* The ids of a list response's data, in order, into ids[cap][37]; returns the count. */
static int list_ids(const char *path, char ids[][37], int cap, char *next, size_t next_cap)
{
    h_resp r;
    e2e_req(&E, "GET", path, NULL, &r);
    ck_assert_msg(r.status == 200, "GET %s: %ld %s", path, r.status, r.body);
    const cJSON *it;
    int n = 0;
    cJSON_ArrayForEach(it, get(r.json, "data"))
    {
        ck_assert_int_lt(n, cap);
        snprintf(ids[n++], 37, "%s", sget(it, "id"));
    }
    const cJSON *nc = get(r.json, "next_cursor");
    if (next)
        snprintf(next, next_cap, "%s", cJSON_IsString(nc) ? nc->valuestring : "");
    h_resp_free(&r);
    return n;
}

START_TEST(reads_filters_and_labels)
{
    enum { N = 5 };
    char uid[37], body[600], when[40], ids[N][37], dec[N][8], path[600];
    h_resp r;
    default_policy();
    create_user("rd-u", "DE", uid);
    const int64_t T0 = parse_time("2030-05-05T05:00:00.000000Z");
    for (int i = 0; i < N; i++) {
        fmt_time(T0 + i * MIN_US, when);
        txn_body(body, sizeof body, uid, 100 + 100000LL * i, "EUR", "m-r", "DE", when);
        post_ok(body, &r);
        snprintf(ids[i], 37, "%s", sget(r.json, "id"));
        snprintf(dec[i], 8, "%s", decision(&r));
        /* GET returns exactly what the POST answered (risk, features and the rest). */
        snprintf(path, sizeof path, "/api/v1/transactions/%s", ids[i]);
        h_resp g;
        e2e_req(&E, "GET", path, NULL, &g);
        ck_assert_int_eq(g.status, 200);
        ck_assert_msg(cJSON_Compare(get(g.json, "risk"), get(r.json, "risk"), 1), "risk differs");
        ck_assert_msg(cJSON_Compare(get(g.json, "features"), get(r.json, "features"), 1),
                      "features differ");
        ck_assert_msg(cJSON_Compare(g.json, r.json, 1), "GET differs from POST:\n%s\n%s", g.body,
                      r.body);
        h_resp_free(&g);
        h_resp_free(&r);
    }

    /* Newest first, pages of 2: ids[4], ids[3] | ids[2], ids[1] | ids[0]. */
    char got[N + 1][37], next[200];
    int seen = 0;
    snprintf(path, sizeof path, "/api/v1/transactions?user_id=%s&limit=2", uid);
    for (int page = 0; page < 3; page++) {
        int n = list_ids(path, got, N, next, sizeof next);
        ck_assert_int_eq(n, page < 2 ? 2 : 1);
        for (int k = 0; k < n; k++, seen++)
            ck_assert_str_eq(got[k], ids[N - 1 - seen]);
        if (page < 2) {
            ck_assert_uint_gt(strlen(next), 0);
            snprintf(path, sizeof path, "/api/v1/transactions?user_id=%s&limit=2&cursor=%s", uid,
                     next);
        } else {
            ck_assert_str_eq(next, "");
        }
    }
    /* The same through /users/{id}/transactions. */
    snprintf(path, sizeof path, "/api/v1/users/%s/transactions", uid);
    ck_assert_int_eq(list_ids(path, got, N, NULL, 0), N);
    for (int k = 0; k < N; k++)
        ck_assert_str_eq(got[k], ids[N - 1 - k]);
    e2e_req(&E, "GET", "/api/v1/users/00000000-0000-4000-8000-000000000000/transactions", NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);

    /* decision filter: exactly the posted transactions with that decision. */
    static const char *const decisions[] = {"allow", "review", "block"};
    for (int d = 0; d < 3; d++) {
        snprintf(path, sizeof path, "/api/v1/transactions?user_id=%s&decision=%s", uid,
                 decisions[d]);
        int n = list_ids(path, got, N, NULL, 0), k = 0;
        for (int i = N - 1; i >= 0; i--)
            if (strcmp(dec[i], decisions[d]) == 0) {
                ck_assert_int_lt(k, n);
                ck_assert_str_eq(got[k++], ids[i]);
            }
        ck_assert_int_eq(k, n);
    }

    /* from (inclusive) / to (exclusive) on occurred_at: minutes 1 and 2. */
    char from[40], to[40];
    fmt_time(T0 + MIN_US, from);
    fmt_time(T0 + 3 * MIN_US, to);
    snprintf(path, sizeof path, "/api/v1/transactions?user_id=%s&from=%s&to=%s", uid, from, to);
    ck_assert_int_eq(list_ids(path, got, N, NULL, 0), 2);
    ck_assert_str_eq(got[0], ids[2]);
    ck_assert_str_eq(got[1], ids[1]);

    /* Labels. */
    snprintf(path, sizeof path, "/api/v1/transactions/%s", ids[0]);
    e2e_req(&E, "PATCH", path, "{\"label\":\"fraud\",\"label_source\":\"chargeback\"}", &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    ck_assert_pstr_eq(sget(r.json, "label"), "fraud");
    ck_assert_pstr_eq(sget(r.json, "label_source"), "chargeback");
    ck_assert_ptr_nonnull(sget(r.json, "labelled_at"));
    parse_time(sget(r.json, "labelled_at"));
    h_resp_free(&r);
    snprintf(path, sizeof path, "/api/v1/transactions/%s", ids[1]);
    e2e_req(&E, "PATCH", path, "{\"label\":\"legit\",\"label_source\":\"analyst\"}", &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    e2e_req(&E, "GET", path, NULL, &r);
    ck_assert_pstr_eq(sget(r.json, "label"), "legit");
    ck_assert_pstr_eq(sget(r.json, "label_source"), "analyst");
    ck_assert_ptr_nonnull(sget(r.json, "labelled_at"));
    h_resp_free(&r);
    snprintf(path, sizeof path, "/api/v1/transactions?user_id=%s&label=fraud", uid);
    ck_assert_int_eq(list_ids(path, got, N, NULL, 0), 1);
    ck_assert_str_eq(got[0], ids[0]);
    snprintf(path, sizeof path, "/api/v1/transactions?user_id=%s&label=legit", uid);
    ck_assert_int_eq(list_ids(path, got, N, NULL, 0), 1);
    ck_assert_str_eq(got[0], ids[1]);
    snprintf(path, sizeof path, "/api/v1/transactions?user_id=%s&label=none", uid);
    ck_assert_int_eq(list_ids(path, got, N, NULL, 0), 3);
    ck_assert_str_eq(got[0], ids[4]);
    ck_assert_str_eq(got[2], ids[2]);

    /* PATCH rejections. */
    snprintf(path, sizeof path, "/api/v1/transactions/%s", ids[2]);
    e2e_req(&E, "PATCH", path, "{\"amount\":5}", &r);
    e2e_assert_problem(&r, 400, "immutable_field", "amount");
    h_resp_free(&r);
    e2e_req(&E, "PATCH", path, "{\"label\":\"fraud\",\"label_source\":\"analyst\",\"risk\":{}}",
            &r);
    e2e_assert_problem(&r, 400, "immutable_field", "risk");
    h_resp_free(&r);
    e2e_req(&E, "PATCH", path, "{\"label\":\"fraud\",\"label_source\":\"analyst\",\"x\":1}", &r);
    e2e_assert_problem(&r, 400, "unknown_field", "x");
    h_resp_free(&r);
    e2e_req(&E, "PATCH", path, "{\"label\":\"maybe\",\"label_source\":\"analyst\"}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "label");
    h_resp_free(&r);
    e2e_req(&E, "PATCH", path, "{\"label\":\"fraud\",\"label_source\":\"oracle\"}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "label_source");
    h_resp_free(&r);
    e2e_req(&E, "PATCH", path, "{\"label\":\"fraud\"}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "label_source");
    h_resp_free(&r);
    e2e_req(&E, "GET", path, NULL, &r);
    ck_assert(cJSON_IsNull(get(r.json, "label")));
    ck_assert(cJSON_IsNull(get(r.json, "labelled_at")));
    h_resp_free(&r);
    e2e_req(&E, "PATCH", "/api/v1/transactions/00000000-0000-4000-8000-000000000000",
            "{\"label\":\"fraud\",\"label_source\":\"analyst\"}", &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/transactions/00000000-0000-4000-8000-000000000000", NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/transactions/nope", NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "id");
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/transactions?decision=maybe", NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "decision");
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/transactions?from=yesterday", NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "from");
    h_resp_free(&r);

    /* A user with transactions cannot be deleted. */
    snprintf(path, sizeof path, "/api/v1/users/%s", uid);
    e2e_req(&E, "DELETE", path, NULL, &r);
    e2e_assert_problem(&r, 409, "conflict", NULL);
    h_resp_free(&r);
    ck_assert_int_eq(count_user_txns(uid), N);
}
END_TEST

/* Model features that are not built-ins come from the request's "features"; a client value never
 * overrides a built-in of the same name; an absent client feature is missing (null). */
START_TEST(client_features)
{
    char uid[37], body[800], ext[37];
    size_t len;
    h_resp r;
    ensure_models();
    char *txt = fx_slurp("api/demo/demo_model.json", &len);
    ck_assert_ptr_nonnull(txt);
    char *at = strstr(txt, "\"user_txn_count_1h\"");
    ck_assert_ptr_nonnull(at);
    size_t old = strlen("\"user_txn_count_1h\""), nl = strlen("\"ext_velocity\"");
    memmove(at + nl, at + old, len - (size_t)(at - txt) - old + 1);
    memcpy(at, "\"ext_velocity\"", nl);
    len = len - old + nl;
    upload("ext-model", txt, len, ext);
    free(txt);
    set_policy(g_demo, ext, 0.5, 0.9, "review", 5000);
    create_user("cf-u", "DE", uid);
    for (int with = 0; with <= 1; with++) {
        snprintf(body, sizeof body,
                 "{\"user_id\":\"%s\",\"amount\":2500,\"currency\":\"EUR\",\"merchant_id\":\"m\","
                 "\"merchant_category\":\"5411\",\"country\":\"DE\",\"channel\":\"ecommerce\","
                 "\"occurred_at\":\"2030-07-07T07:07:07Z\",\"features\":{%s\"amount\":999,"
                 "\"unused\":1}}",
                 uid, with ? "\"ext_velocity\":37.5," : "");
        post_ok(body, &r);
        float v;
        int isnull;
        ck_assert_int_eq(raw_float(r.body, "features", "ext_velocity", &v, &isnull), 0);
        if (with)
            ck_assert(!isnull && v == 37.5f);
        else
            ck_assert(isnull);
        ck_assert_int_eq(raw_float(r.body, "features", "amount", &v, &isnull), 0);
        ck_assert_uint_eq(fbits(v), fbits(25.0f)); /* the built-in, not the client's 999 */
        ck_assert_int_eq(raw_float(r.body, "features", "unused", &v, &isnull), -1);
        assert_scored(&r);
        float cl;
        ck_assert_int_eq(raw_float(r.body, "challenger", "score", &cl, &isnull), 0);
        ck_assert(!isnull);
        ck_assert_uint_eq(fbits(cl), fbits(predict_snapshot(ext, &r)));
        ck_assert_uint_eq(fbits(risk_score(&r)), fbits(predict_snapshot(g_demo, &r)));
        h_resp_free(&r);
    }
}
END_TEST

/* Without a champion every decision is the fallback, degraded, with reason no_champion_model. */
START_TEST(no_champion_is_fallback)
{
    char uid[37], body[600];
    h_resp r;
    ensure_models();
    set_policy(NULL, NULL, 0.5, 0.9, "allow", 50);
    create_user("nc-u", "DE", uid);
    txn_body(body, sizeof body, uid, 100, "EUR", "m", "DE", NULL);
    post_ok(body, &r);
    const cJSON *risk = get(r.json, "risk");
    ck_assert_pstr_eq(sget(risk, "decision"), "allow");
    ck_assert(cJSON_IsTrue(get(risk, "degraded")));
    ck_assert_pstr_eq(sget(risk, "reason"), "no_champion_model");
    ck_assert(cJSON_IsNull(get(risk, "score")));
    ck_assert(cJSON_IsNull(get(risk, "model")));
    h_resp_free(&r);
    set_policy(NULL, NULL, 0.5, 0.9, "block", 50);
    post_ok(body, &r);
    ck_assert_pstr_eq(decision(&r), "block");
    h_resp_free(&r);
}
END_TEST

/* ---- degraded decisions (worker mode) -------------------------------------------------------- */

START_TEST(degraded_when_worker_down)
{
    enum { N = 20 };
    char uid[37], body[600], when[40];
    h_resp r;
    ensure_models();
    set_policy(g_demo, g_chal, 0.5, 0.9, "block", 200);
    create_user("deg-u", "DE", uid);
    const int64_t T0 = parse_time("2030-06-06T06:00:00.000000Z");

    /* One decision while the worker is up (it loads the models into the worker). */
    fmt_time(T0, when);
    txn_body(body, sizeof body, uid, 1000, "EUR", "m-d", "DE", when);
    post_ok(body, &r);
    h_resp_free(&r);

    ck_assert_int_eq(h_hp_stop(&E, SIGKILL), 128 + SIGKILL);
    for (int i = 1; i <= N; i++) {
        fmt_time(T0 + i * MIN_US, when);
        txn_body(body, sizeof body, uid, 1000 + i, "EUR", "m-d", "DE", when);
        post_ok(body, &r);
        const cJSON *risk = get(r.json, "risk");
        ck_assert_msg(cJSON_IsTrue(get(risk, "degraded")), "not degraded: %s", r.body);
        ck_assert_pstr_eq(sget(risk, "decision"), "block"); /* the policy's fallback */
        ck_assert_msg(sget(risk, "reason") && strlen(sget(risk, "reason")) > 0, "no reason: %s",
                      r.body);
        ck_assert(cJSON_IsNull(get(risk, "score")));
        h_resp_free(&r);
    }
    ck_assert_int_eq(count_user_txns(uid), N + 1); /* none lost */

    /* Back to normal decisions after a restart, without restarting the API. */
    ck_assert_int_eq(h_hp_start(&E), 0);
    fmt_time(T0 + (N + 1) * MIN_US, when);
    txn_body(body, sizeof body, uid, 1000, "EUR", "m-d", "DE", when);
    post_ok(body, &r);
    assert_scored(&r);
    float s = risk_score(&r);
    ck_assert_pstr_eq(decision(&r), s >= 0.9 ? "block" : s >= 0.5 ? "review" : "allow");
    ck_assert(cJSON_IsNull(get(get(r.json, "risk"), "reason")));
    h_resp_free(&r);
    ck_assert_int_eq(count_user_txns(uid), N + 2);
}
END_TEST

/* A worker that is alive but stopped (SIGSTOP, a stuck process): every call times out, its
 * connection is closed, and the next call dials again.  Unaccepted connections pile up in the
 * worker's listen backlog (128); once it is full a blocking connect() waits for an accept() that
 * never comes, past every deadline.  Every decision must still be answered, degraded, while the
 * worker is stopped: an API waiting for the worker could never answer (the event; how fast is not
 * asserted, the request timeout of the harness only ends a hang). */
START_TEST(degraded_when_worker_stalled)
{
    enum { N = 200 };
    char uid[37], body[600], when[40];
    h_resp r;
    ensure_models();
    set_policy(g_demo, g_chal, 0.5, 0.9, "review", 5);
    create_user("stall-u", "DE", uid);
    const int64_t T0 = parse_time("2031-06-06T06:00:00.000000Z");
    ck_assert_int_eq(kill(E.hp_pid, SIGSTOP), 0);
    int bad = 0;
    char first_bad[300] = "";
    for (int i = 0; i < N && !bad; i++) {
        fmt_time(T0 + i * MIN_US, when);
        txn_body(body, sizeof body, uid, 100 + i, "EUR", "m-s", "DE", when);
        int rc = h_http(&E, "POST", "/api/v1/transactions", E.key, "application/json", body,
                        strlen(body), NULL, &r);
        if (rc != 0 || r.status != 201 || !degraded(&r)) {
            bad = 1;
            snprintf(first_bad, sizeof first_bad, "request %d: rc %d status %ld: %.150s", i, rc,
                     rc == 0 ? r.status : 0L, rc == 0 && r.body ? r.body : "");
        }
        if (rc == 0)
            h_resp_free(&r);
    }
    ck_assert_int_eq(kill(E.hp_pid, SIGCONT), 0);
    ck_assert_msg(!bad, "stalled worker: %s", first_bad);
    set_policy(g_demo, g_chal, 0.5, 0.9, "review", 5000);
}
END_TEST

static void add_common(TCase *tc)
{
    tcase_add_test(tc, policy_default_and_validation); /* first: it checks the default policy */
    tcase_add_test(tc, txn_validation);
    tcase_add_test(tc, currency_exponents);
    tcase_add_test(tc, builtin_features);
    tcase_add_test(tc, builtin_features_across_dst);
    tcase_add_test(tc, reads_filters_and_labels);
    tcase_add_test(tc, idempotency_replay_and_scope);
    tcase_add_test(tc, idempotency_expiry);
    tcase_add_test(tc, idempotency_concurrent);
    tcase_add_test(tc, commit_round_trip_is_atomic);
    tcase_add_test(tc, group_commit_isolates_failures);
    tcase_add_test(tc, idempotency_twin_during_commit);
    tcase_add_test(tc, read_lanes_bound_a_stalled_read);
    tcase_add_test(tc, champion_and_challenger_scores);
    tcase_add_test(tc, decision_at_thresholds);
    tcase_add_test(tc, client_features);
    tcase_add_test(tc, no_champion_is_fallback);
}

static Suite *txn_suite(void)
{
    Suite *s = suite_create("e2e_txn");
    TCase *tc = tcase_create("txn_inprocess");
    tcase_add_unchecked_fixture(tc, up_inprocess, env_down);
    tcase_set_timeout(tc, 300);
    add_common(tc);
    suite_add_tcase(s, tc);

    tc = tcase_create("txn_worker");
    tcase_add_unchecked_fixture(tc, up_worker, env_down);
    tcase_set_timeout(tc, 300);
    add_common(tc);
    tcase_add_test(tc, degraded_when_worker_stalled);
    tcase_add_test(tc, degraded_when_worker_down); /* last: it kills the worker */
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    SRunner *sr = srunner_create(txn_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
