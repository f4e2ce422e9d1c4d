/* e2e_explain.c - end-to-end tests of explanations: POST /api/v1/models/{id}/explain for every
 * fixture (contributions and margins bit-identical to xgboost 1.7.4's pred_contribs and
 * output_margin, tests/fixtures/NAME.{contribs,margin}.txt), its errors, the explain op in
 * /metrics, and the decisions' reasons (policy explain.top_k) on the demo model (api/demo).
 *
 * Every TCase runs twice, with VIGIL_HOTPATH_MODE=inprocess (common/treeshap.c in the API) and in
 * the default worker mode (the worker's EXPLAIN), each with its own environment.  Expected values
 * never come from vigil: contributions and margins are xgboost's own. */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert.h"
#include "fixtures_io.h"
#include "harness.h"

static h_env E;
static int g_worker;

static const char *const ENV_INPROCESS[] = {"VIGIL_HOTPATH_MODE=inprocess", NULL};
static const char *const ENV_WORKER[] = {NULL};

static void env_up(const char *const *env, int worker)
{
    memset(&E, 0, sizeof E);
    E.api_env = env;
    g_worker = worker;
    if (h_start(&E) != 0)
        ck_abort_msg("harness: environment did not start");
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
    h_stop(&E);
}

/* ---- helpers --------------------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
        va_end(ap);
        ck_assert(n >= 0);
        if (b->p && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = (b->cap + (size_t)n + 1) * 2;
        char *np = realloc(b->p, ncap);
        ck_assert_ptr_nonnull(np);
        b->p = np;
        b->cap = ncap;
    }
}

static void upload_fixture(const char *fx, const char *name, char id[37])
{
    size_t len;
    char *body = fx_read(fx, "model.json", &len);
    ck_assert_msg(body != NULL, "cannot read fixture %s", fx);
    h_resp r;
    char path[300];
    snprintf(path, sizeof path, "/api/v1/models?name=%s", name);
    ck_assert_int_eq(h_http(&E, "POST", path, E.key, "application/json", body, len, NULL, &r), 0);
    ck_assert_msg(r.status == 201, "upload %s: %ld %s", fx, r.status, r.body);
    ck_assert_ptr_nonnull(h_str(&r, "id"));
    snprintf(id, 37, "%s", h_str(&r, "id"));
    h_resp_free(&r);
    free(body);
}

static char *dense_body(const float *rows, size_t nr, size_t nc)
{
    sbuf b = {0};
    sb_add(&b, "{\"rows\":[");
    for (size_t i = 0; i < nr; i++) {
        sb_add(&b, i ? ",[" : "[");
        for (size_t j = 0; j < nc; j++) {
            float v = rows[i * nc + j];
            if (isnan(v))
                sb_add(&b, "%snull", j ? "," : "");
            else
                sb_add(&b, "%s%.9g", j ? "," : "", (double)v);
        }
        sb_add(&b, "]");
    }
    sb_add(&b, "]}");
    return b.p;
}

/* Reads every number of the array member `member` (nested arrays flattened, in text order) with
 * strtof, null as NaN.  Returns the count (0 if absent or malformed). */
static size_t parse_numbers(const char *body, const char *member, float *out, size_t cap)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\":[", member);
    const char *p = strstr(body, key);
    size_t n = 0;
    int depth = 0;
    if (!p)
        return 0;
    p += strlen(key) - 1;
    do {
        if (*p == '[') {
            depth++;
            p++;
        } else if (*p == ']') {
            depth--;
            p++;
        } else if (*p == ',' || *p == ' ') {
            p++;
        } else if (strncmp(p, "null", 4) == 0) {
            if (n < cap)
                out[n] = NAN;
            n++;
            p += 4;
        } else {
            char *end;
            float v = strtof(p, &end);
            if (end == p)
                return 0;
            if (n < cap)
                out[n] = v;
            n++;
            p = end;
        }
    } while (depth > 0 && *p);
    return n;
}

/* ---- explain --------------------------------------------------------------------------------- */

/* Every fixture: upload, explain its first 60 rows; every contribution and margin bit-identical to
 * xgboost's.  The JSON is group-major for several groups ([g][row][col]), xgboost's files are
 * row-major ([row][g][col]). */
START_TEST(explain_every_fixture_matches_xgboost)
{
    char names[64][FX_NAME_MAX];
    size_t nfix = fx_manifest(names, 64), values = 0;
    ck_assert_uint_ge(nfix, 27);
    for (size_t f = 0; f < nfix; f++) {
        size_t nr, nc, cr, cc, mr, mc;
        float *rows = fx_matrix(names[f], "rows.txt", &nr, &nc);
        float *want = fx_matrix(names[f], "contribs.txt", &cr, &cc);
        float *wantm = fx_matrix(names[f], "margin.txt", &mr, &mc);
        ck_assert(rows && want && wantm);
        size_t n = nr < 60 ? nr : 60, k = mc, ncol = nc + 1;
        ck_assert_uint_eq(cc, k * ncol);
        char id[37], mname[96], path[160];
        snprintf(mname, sizeof mname, "explain-%s", names[f]);
        upload_fixture(names[f], mname, id);
        char *body = dense_body(rows, n, nc);
        h_resp r;
        snprintf(path, sizeof path, "/api/v1/models/%s/explain", id);
        ck_assert_int_eq(
            h_http(&E, "POST", path, E.key, "application/json", body, strlen(body), NULL, &r), 0);
        ck_assert_msg(r.status == 200, "%s: %ld %.300s", names[f], r.status, r.body);
        ck_assert_pstr_eq(h_str(&r, "model_id"), id);
        cJSON *fn = cJSON_GetObjectItemCaseSensitive(r.json, "feature_names");
        ck_assert_msg(cJSON_IsArray(fn) && (size_t)cJSON_GetArraySize(fn) == nc, "%s: names",
                      names[f]);
        float *got = malloc(n * k * ncol * sizeof(float) + 4);
        float *gotm = malloc(n * k * sizeof(float) + 4);
        ck_assert_uint_eq(parse_numbers(r.body, "contributions", got, n * k * ncol), n * k * ncol);
        ck_assert_uint_eq(parse_numbers(r.body, "margins", gotm, n * k), n * k);
        for (size_t g = 0; g < k; g++)
            for (size_t i = 0; i < n; i++) {
                for (size_t c = 0; c < ncol; c++) {
                    float a = got[(g * n + i) * ncol + c], b = want[(i * k + g) * ncol + c];
                    ck_assert_msg(fx_bits(a) == fx_bits(b),
                                  "%s (%s) row %zu group %zu col %zu: %.9g, xgboost %.9g", names[f],
                                  g_worker ? "worker" : "inprocess", i, g, c, (double)a, (double)b);
                }
                ck_assert_msg(fx_bits(gotm[g * n + i]) == fx_bits(wantm[i * k + g]),
                              "%s row %zu group %zu: margin %.9g, xgboost %.9g", names[f], i, g,
                              (double)gotm[g * n + i], (double)wantm[i * k + g]);
            }
        values += n * k * (ncol + 1);
        free(got);
        free(gotm);
        free(body);
        h_resp_free(&r);
        free(rows);
        free(want);
        free(wantm);
    }
    printf("  e2e_explain (%s): %zu fixtures, %zu values bit-identical to xgboost 1.7.4\n",
           g_worker ? "worker" : "inprocess", nfix, values);
}
END_TEST

/* The same body limits and errors as predict. */
START_TEST(explain_errors)
{
    char id[37], path[160];
    upload_fixture("binary_logistic_named", "explain-errors", id);
    h_resp r;
    snprintf(path, sizeof path, "/api/v1/models/%s/explain", id);
    /* wrong number of columns */
    const char *bad = "{\"rows\":[[1,2,3]]}";
    ck_assert_int_eq(
        h_http(&E, "POST", path, E.key, "application/json", bad, strlen(bad), NULL, &r), 0);
    e2e_assert_problem(&r, 400, "validation_failed", "rows[0]"); /* as predict */
    h_resp_free(&r);
    /* not JSON */
    ck_assert_int_eq(h_http(&E, "POST", path, E.key, "text/plain", "x", 1, NULL, &r), 0);
    e2e_assert_problem(&r, 415, "unsupported_media_type", NULL);
    h_resp_free(&r);
    /* a media type that only starts like JSON's, and a body that is not JSON: as predict */
    ck_assert_int_eq(
        h_http(&E, "POST", path, E.key, "application/jsonfoo", bad, strlen(bad), NULL, &r), 0);
    e2e_assert_problem(&r, 415, "unsupported_media_type", NULL);
    h_resp_free(&r);
    ck_assert_int_eq(
        h_http(&E, "POST", path, E.key, "application/json", "{\"rows\":[", 9, NULL, &r), 0);
    e2e_assert_problem(&r, 400, "malformed_json", NULL);
    h_resp_free(&r);
    /* unknown model */
    const char *ok = "{\"rows\":[[1,2,3,4,5,6,7]]}";
    ck_assert_int_eq(h_http(&E, "POST",
                            "/api/v1/models/00000000-0000-4000-8000-000000000000/explain", E.key,
                            "application/json", ok, strlen(ok), NULL, &r),
                     0);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    /* no key */
    ck_assert_int_eq(h_http(&E, "POST", path, NULL, "application/json", ok, strlen(ok), NULL, &r),
                     0);
    ck_assert_int_eq(r.status, 401);
    h_resp_free(&r);
    /* rows by feature name, as predict takes them; missing features are NaN */
    const char *named = "{\"rows\":[{\"amount usd\":3.5,\"merchant risk\":null}]}";
    ck_assert_int_eq(
        h_http(&E, "POST", path, E.key, "application/json", named, strlen(named), NULL, &r), 0);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "\"feature_names\":[\"amount usd\","));
    h_resp_free(&r);
    /* a model compiled without covers (no "sum_hessian" in its trees) scores but is not
     * explainable: 409 not_explainable, predict unaffected */
    size_t flen;
    char *src = fx_read("binary_logistic_named", "model.json", &flen);
    ck_assert_ptr_nonnull(src);
    for (char *at = src; (at = strstr(at, "\"sum_hessian\"")) != NULL; at += 13)
        memcpy(at, "\"sum_hessiam\"", 13);
    char nocov[37];
    ck_assert_int_eq(h_http(&E, "POST", "/api/v1/models?name=explain-nocovers", E.key,
                            "application/json", src, flen, NULL, &r),
                     0);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    snprintf(nocov, sizeof nocov, "%s", h_str(&r, "id"));
    h_resp_free(&r);
    free(src);
    snprintf(path, sizeof path, "/api/v1/models/%s/explain", nocov);
    ck_assert_int_eq(h_http(&E, "POST", path, E.key, "application/json", ok, strlen(ok), NULL, &r),
                     0);
    e2e_assert_problem(&r, 409, "not_explainable", NULL);
    h_resp_free(&r);
    snprintf(path, sizeof path, "/api/v1/models/%s/predict", nocov);
    ck_assert_int_eq(h_http(&E, "POST", path, E.key, "application/json", ok, strlen(ok), NULL, &r),
                     0);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    /* in worker mode, the explain op is counted in /metrics */
    if (g_worker) {
        ck_assert_int_eq(h_http(&E, "GET", "/metrics", NULL, NULL, NULL, 0, NULL, &r), 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_msg(strstr(r.body, "vigil_worker_calls_total{op=\"explain\",result=\"ok\"}"),
                      "no explain calls in /metrics");
        ck_assert_ptr_nonnull(
            strstr(r.body, "vigil_worker_call_duration_seconds_count{op=\"explain\""));
        h_resp_free(&r);
    }
}
END_TEST

/* ---- decisions ------------------------------------------------------------------------------ */

static const cJSON *jget(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(v != NULL, "no member '%s'", k);
    return v;
}

static void put_policy(const char *champion, const char *explain, long status)
{
    char body[512];
    h_resp r;
    snprintf(body, sizeof body,
             "{\"champion_model_id\":\"%s\",\"review_threshold\":0.3,\"block_threshold\":0.6,"
             "\"scoring_timeout_ms\":5000%s%s}",
             champion, explain ? ",\"explain\":" : "", explain ? explain : "");
    ck_assert_int_eq(h_json(&E, "PUT", "/api/v1/policy", body, &r), 0);
    ck_assert_msg(r.status == status, "PUT policy %s: %ld %s", explain ? explain : "-", r.status,
                  r.body);
    h_resp_free(&r);
}

/* With explain.top_k the decision's risk block carries the top-k reasons, stored and returned on
 * reads; each is the champion's contribution as /explain gives it for the stored snapshot (which
 * is xgboost's, see above), the largest |contribution| first; the score is /predict's for the
 * same row, bit for bit.  top_k 0 turns them off; the policy refuses a bad explain member. */
START_TEST(decision_reasons)
{
    size_t len;
    char *txt = fx_slurp("api/demo/demo_model.json", &len);
    ck_assert_msg(txt != NULL, "cannot read api/demo/demo_model.json (run from the repo root)");
    char demo[37], path[200], user[37], body[600];
    h_resp r;
    ck_assert_int_eq(h_http(&E, "POST", "/api/v1/models?name=explain-demo", E.key,
                            "application/json", txt, len, NULL, &r),
                     0);
    ck_assert_int_eq(r.status, 201);
    snprintf(demo, sizeof demo, "%s", h_str(&r, "id"));
    h_resp_free(&r);
    free(txt);

    put_policy(demo, "{\"top_k\":21}", 400);
    put_policy(demo, "{\"top_k\":2.5}", 400);
    put_policy(demo, "3", 400);
    put_policy(demo, "{\"top_k\":3,\"x\":1}", 400);
    put_policy(demo, NULL, 200); /* default 5 */
    ck_assert_int_eq(h_json(&E, "GET", "/api/v1/policy", NULL, &r), 0);
    ck_assert_int_eq(jget(jget(r.json, "explain"), "top_k")->valueint, 5);
    h_resp_free(&r);

    ck_assert_int_eq(h_json(&E, "POST", "/api/v1/users", "{\"external_id\":\"explain-u1\"}", &r),
                     0);
    ck_assert_int_eq(r.status, 201);
    snprintf(user, sizeof user, "%s", h_str(&r, "id"));
    h_resp_free(&r);

    for (int top_k = 5; top_k >= 0; top_k -= 5) {
        char ex[32];
        snprintf(ex, sizeof ex, "{\"top_k\":%d}", top_k);
        put_policy(demo, ex, 200);
        snprintf(body, sizeof body,
                 "{\"user_id\":\"%s\",\"amount\":%d,\"currency\":\"EUR\",\"merchant_id\":\"m-%d\","
                 "\"merchant_category\":\"5411\",\"country\":\"FR\",\"channel\":\"ecommerce\"}",
                 user, 250000 + top_k, top_k);
        h_resp t;
        ck_assert_int_eq(h_json(&E, "POST", "/api/v1/transactions", body, &t), 0);
        ck_assert_msg(t.status == 201, "%ld %s", t.status, t.body);
        const cJSON *risk = jget(t.json, "risk"), *reasons = jget(risk, "reasons");
        ck_assert(!cJSON_IsTrue(jget(risk, "degraded")));
        /* the same row through /predict and /explain */
        char *snap = cJSON_PrintUnformatted(jget(t.json, "features"));
        char *rows = malloc(strlen(snap) + 32);
        sprintf(rows, "{\"rows\":[%s]}", snap);
        snprintf(path, sizeof path, "/api/v1/models/%s/predict", demo);
        ck_assert_int_eq(h_json(&E, "POST", path, rows, &r), 0);
        ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
        float want_score, got_score = (float)jget(risk, "score")->valuedouble;
        ck_assert_uint_eq(parse_numbers(r.body, "predictions", &want_score, 1), 1);
        ck_assert_msg(fx_bits(want_score) == fx_bits(got_score), "score %.9g, predict %.9g",
                      (double)got_score, (double)want_score);
        h_resp_free(&r);
        if (top_k == 0) {
            ck_assert(cJSON_IsNull(reasons));
        } else {
            float c[16];
            snprintf(path, sizeof path, "/api/v1/models/%s/explain", demo);
            ck_assert_int_eq(h_json(&E, "POST", path, rows, &r), 0);
            ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
            ck_assert_uint_eq(parse_numbers(r.body, "contributions", c, 16), 16);
            const cJSON *names = jget(r.json, "feature_names");
            ck_assert(cJSON_IsArray(reasons));
            ck_assert_int_eq(cJSON_GetArraySize(reasons), top_k);
            float prev = INFINITY;
            for (int i = 0; i < top_k; i++) {
                const cJSON *e = cJSON_GetArrayItem(reasons, i);
                const char *fname = jget(e, "feature")->valuestring;
                int fi = -1;
                for (int j = 0; j < 15; j++)
                    if (strcmp(cJSON_GetArrayItem(names, j)->valuestring, fname) == 0)
                        fi = j;
                ck_assert_msg(fi >= 0, "reason feature %s", fname);
                float got = (float)jget(e, "contribution")->valuedouble;
                ck_assert_msg(fx_bits(got) == fx_bits(c[fi]), "%s: %.9g, /explain %.9g", fname,
                              (double)got, (double)c[fi]);
                ck_assert(fabsf(got) <= prev);
                prev = fabsf(got);
                /* the value as scored: the snapshot's */
                const cJSON *sv = jget(jget(t.json, "features"), fname), *v = jget(e, "value");
                if (cJSON_IsNull(sv))
                    ck_assert(cJSON_IsNull(v));
                else
                    ck_assert(fx_bits((float)sv->valuedouble) == fx_bits((float)v->valuedouble));
            }
            /* no feature left out has a larger |contribution| than the last one kept */
            for (int j = 0; j < 15; j++) {
                int kept = 0;
                for (int i = 0; i < top_k; i++)
                    kept |= strcmp(jget(cJSON_GetArrayItem(reasons, i), "feature")->valuestring,
                                   cJSON_GetArrayItem(names, j)->valuestring) == 0;
                ck_assert(kept || fabsf(c[j]) <= prev);
            }
            h_resp_free(&r);
            /* stored: a read returns the same reasons */
            char *posted = cJSON_PrintUnformatted(reasons);
            snprintf(path, sizeof path, "/api/v1/transactions/%s", h_str(&t, "id"));
            ck_assert_int_eq(h_json(&E, "GET", path, NULL, &r), 0);
            ck_assert_int_eq(r.status, 200);
            char *read = cJSON_PrintUnformatted(jget(jget(r.json, "risk"), "reasons"));
            ck_assert_str_eq(read, posted);
            free(read);
            free(posted);
            h_resp_free(&r);
        }
        free(rows);
        free(snap);
        h_resp_free(&t);
    }
    put_policy(demo, "{\"top_k\":5}", 200);
}
END_TEST

/* The sum over results of vigil_worker_calls_total{op="<op>",...} in /metrics. */
static unsigned long long worker_calls(const char *op)
{
    h_resp r;
    char pre[96];
    unsigned long long sum = 0;
    ck_assert_int_eq(h_http(&E, "GET", "/metrics", NULL, NULL, NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    snprintf(pre, sizeof pre, "vigil_worker_calls_total{op=\"%s\",", op);
    for (const char *p = strstr(r.body, pre); p; p = strstr(p + 1, pre)) {
        const char *sp = strchr(p, ' ');
        if (sp)
            sum += strtoull(sp + 1, NULL, 10);
    }
    h_resp_free(&r);
    return sum;
}

/* Issue 13: with explanations on, a decision gets its champion's score, the reasons and the
 * challenger's score from ONE worker round trip (a SCORE frame whose champion section carries
 * WIRE_SCORE_EXPLAIN): each decision adds exactly one score call and no explain call to the
 * worker counters, and carries reasons, the champion's score (/predict's, bit for bit) and the
 * challenger's score (/predict's of the challenger, bit for bit).  In process the same answer
 * comes from common/. */
START_TEST(decision_one_round_trip)
{
    size_t len;
    char *txt = fx_slurp("api/demo/demo_model.json", &len);
    ck_assert_ptr_nonnull(txt);
    char ids[2][37], path[200], user[37], body[700];
    h_resp r;
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "/api/v1/models?name=explain-rt-%d", i);
        ck_assert_int_eq(h_http(&E, "POST", path, E.key, "application/json", txt, len, NULL, &r),
                         0);
        ck_assert_int_eq(r.status, 201);
        snprintf(ids[i], sizeof ids[i], "%s", h_str(&r, "id"));
        h_resp_free(&r);
    }
    free(txt);
    snprintf(body, sizeof body,
             "{\"champion_model_id\":\"%s\",\"challenger_model_id\":\"%s\","
             "\"review_threshold\":0.3,\"block_threshold\":0.6,\"scoring_timeout_ms\":5000,"
             "\"explain\":{\"top_k\":5}}",
             ids[0], ids[1]);
    ck_assert_int_eq(h_json(&E, "PUT", "/api/v1/policy", body, &r), 0);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    ck_assert_int_eq(h_json(&E, "POST", "/api/v1/users", "{\"external_id\":\"explain-rt\"}", &r),
                     0);
    ck_assert_int_eq(r.status, 201);
    snprintf(user, sizeof user, "%s", h_str(&r, "id"));
    h_resp_free(&r);
    unsigned long long score0 = 0, explain0 = 0;
    enum { N = 4 };
    for (int i = 0; i <= N; i++) {
        if (i == 1 && g_worker) { /* after the first decision loaded both models */
            score0 = worker_calls("score");
            explain0 = worker_calls("explain");
        }
        snprintf(body, sizeof body,
                 "{\"user_id\":\"%s\",\"amount\":%d,\"currency\":\"EUR\",\"merchant_id\":"
                 "\"rt-%d\",\"merchant_category\":\"5411\",\"country\":\"FR\",\"channel\":"
                 "\"ecommerce\"}",
                 user, 120000 + 777 * i, i);
        h_resp t;
        ck_assert_int_eq(h_json(&E, "POST", "/api/v1/transactions", body, &t), 0);
        ck_assert_msg(t.status == 201, "%ld %s", t.status, t.body);
        const cJSON *risk = jget(t.json, "risk");
        ck_assert(!cJSON_IsTrue(jget(risk, "degraded")));
        ck_assert(cJSON_IsArray(jget(risk, "reasons")));
        ck_assert_int_eq(cJSON_GetArraySize(jget(risk, "reasons")), 5);
        const cJSON *chal = jget(risk, "challenger");
        ck_assert(cJSON_IsObject(chal));
        ck_assert_str_eq(jget(chal, "id")->valuestring, ids[1]);
        /* both scores are /predict's for the stored snapshot, bit for bit */
        char *snap = cJSON_PrintUnformatted(jget(t.json, "features"));
        char *rows = malloc(strlen(snap) + 32);
        sprintf(rows, "{\"rows\":[%s]}", snap);
        for (int m = 0; m < 2; m++) {
            float want, got = (float)jget(m ? chal : risk, "score")->valuedouble;
            snprintf(path, sizeof path, "/api/v1/models/%s/predict", ids[m]);
            ck_assert_int_eq(h_json(&E, "POST", path, rows, &r), 0);
            ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
            ck_assert_uint_eq(parse_numbers(r.body, "predictions", &want, 1), 1);
            ck_assert_msg(fx_bits(want) == fx_bits(got), "model %d: score %.9g, predict %.9g", m,
                          (double)got, (double)want);
            h_resp_free(&r);
        }
        free(rows);
        free(snap);
        h_resp_free(&t);
    }
    if (g_worker) {
        /* the N decisions' calls (the /predict checks above add N x 2 score calls too) */
        ck_assert_uint_eq(worker_calls("score") - score0, N * 3);
        ck_assert_uint_eq(worker_calls("explain") - explain0, 0);
    }
    /* a champion compiled without covers cannot be explained: the decision is scored anyway
     * (not degraded), without reasons, the challenger still scored */
    txt = fx_slurp("api/demo/demo_model.json", &len);
    ck_assert_ptr_nonnull(txt);
    for (char *at = txt; (at = strstr(at, "\"sum_hessian\"")) != NULL; at += 13)
        memcpy(at, "\"sum_hessiam\"", 13);
    ck_assert_int_eq(h_http(&E, "POST", "/api/v1/models?name=explain-rt-nocovers", E.key,
                            "application/json", txt, len, NULL, &r),
                     0);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    char nocov[37];
    snprintf(nocov, sizeof nocov, "%s", h_str(&r, "id"));
    h_resp_free(&r);
    free(txt);
    snprintf(body, sizeof body,
             "{\"champion_model_id\":\"%s\",\"challenger_model_id\":\"%s\","
             "\"review_threshold\":0.3,\"block_threshold\":0.6,\"scoring_timeout_ms\":5000,"
             "\"explain\":{\"top_k\":5}}",
             nocov, ids[1]);
    ck_assert_int_eq(h_json(&E, "PUT", "/api/v1/policy", body, &r), 0);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    snprintf(body, sizeof body,
             "{\"user_id\":\"%s\",\"amount\":4321,\"currency\":\"EUR\",\"merchant_id\":"
             "\"rt-x\",\"merchant_category\":\"5411\",\"country\":\"FR\",\"channel\":"
             "\"ecommerce\"}",
             user);
    ck_assert_int_eq(h_json(&E, "POST", "/api/v1/transactions", body, &r), 0);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    const cJSON *risk = jget(r.json, "risk");
    ck_assert(!cJSON_IsTrue(jget(risk, "degraded")));
    ck_assert(cJSON_IsNull(jget(risk, "reasons")));
    ck_assert(cJSON_IsNumber(jget(risk, "score")));
    ck_assert(cJSON_IsNumber(jget(jget(risk, "challenger"), "score")));
    h_resp_free(&r);
}
END_TEST

static void add_common(TCase *tc)
{
    tcase_add_test(tc, explain_every_fixture_matches_xgboost);
    tcase_add_test(tc, explain_errors);
    tcase_add_test(tc, decision_reasons);
    tcase_add_test(tc, decision_one_round_trip);
}

static Suite *explain_suite(void)
{
    Suite *s = suite_create("e2e_explain");
    TCase *tc = tcase_create("explain_inprocess");
    tcase_add_unchecked_fixture(tc, up_inprocess, env_down);
    tcase_set_timeout(tc, 300);
    add_common(tc);
    suite_add_tcase(s, tc);

    tc = tcase_create("explain_worker");
    tcase_add_unchecked_fixture(tc, up_worker, env_down);
    tcase_set_timeout(tc, 300);
    add_common(tc);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    SRunner *sr = srunner_create(explain_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
