/* e2e_lgbm.c - LightGBM text models end to end: upload as text/plain through a real vigil-api,
 * predict every reference row (tests/fixtures/refs/lgbm_*) in both API modes and compare every
 * prediction and raw score, bit for bit, with LightGBM 4.6's own (the JSON numbers are %.17g and
 * read back with strtod: exact).  In worker mode the real vigil-hotpath runs with the allocation
 * probe preloaded (bin/tests/alloccount.so) and must report no allocation after ready, having
 * loaded and scored the LightGBM models.  Also: source round trip and Content-Type, refusals
 * (400/422 with their messages), f32 SCORE sections refused for a LightGBM model. */
#include <check.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "assert.h"
#include "fx_lgbm.h"
#include "harness.h"
#include "wire.h"

static h_env E;
static int g_worker;
static int asan_build;
static char probe_env[PATH_MAX + 64];

static const char *const ENV_INPROCESS[] = {"VIGIL_HOTPATH_MODE=inprocess", NULL};
static const char *const ENV_WORKER[] = {NULL};
static const char *hp_env_probe[] = {probe_env, "VIGIL_ALLOCCOUNT_VERBOSE=1", NULL};

static void env_up(const char *const *env, int worker)
{
    g_worker = worker;
    e2e_env_up_hp(&E, env, worker && !asan_build ? hp_env_probe : NULL);
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

/* Uploads text as model NAME with Content-Type ctype; returns the response (caller frees). */
static void upload(const char *name, const char *ctype, const char *text, size_t len, h_resp *r)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/models?name=%s", name);
    e2e_req_raw(&E, "POST", path, ctype, text, len, r);
}

/* {"rows": [...], "output_margin": m} with every double as %.17g (exact), NaN as null. */
static char *rows_body(const fx_lgbm_case *c, size_t a, size_t b, int margin, size_t *len)
{
    size_t cap = 64 + (b - a) * (c->ncols * 26 + 4);
    char *s = malloc(cap);
    size_t o =
        (size_t)snprintf(s, cap, "{\"output_margin\":%s,\"rows\":[", margin ? "true" : "false");
    for (size_t i = a; i < b; i++) {
        s[o++] = i > a ? ',' : '[';
        if (i > a)
            s[o++] = '[';
        for (size_t k = 0; k < c->ncols; k++) {
            double v = c->rows[i * c->ncols + k];
            if (k)
                s[o++] = ',';
            o += isnan(v) ? (size_t)snprintf(s + o, cap - o, "null")
                          : (size_t)snprintf(s + o, cap - o, "%.17g", v);
        }
        s[o++] = ']';
    }
    o += (size_t)snprintf(s + o, cap - o, "]}");
    *len = o;
    return s;
}

/* Predicts rows [0, nrows) of c with model id in chunks, comparing with LightGBM's outputs. */
static void predict_and_compare(const char *name, const char *id, const fx_lgbm_case *c)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/models/%s/predict", id);
    for (int margin = 0; margin <= 1; margin++) {
        size_t k = margin ? c->nmargin : c->npred;
        const double *want = margin ? c->margin : c->pred;
        size_t bad = 0, seen = 0;
        for (size_t a = 0; a < c->nrows; a += 500) {
            size_t b = a + 500 < c->nrows ? a + 500 : c->nrows, len;
            char *body = rows_body(c, a, b, margin, &len);
            h_resp r;
            e2e_req_raw(&E, "POST", path, "application/json", body, len, &r);
            free(body);
            if (r.status != 200) {
                h_dump_log(&E, "api.log");
                h_dump_log(&E, "hotpath.log");
            }
            ck_assert_msg(r.status == 200, "%s predict: %ld %s", name, r.status, r.body);
            const cJSON *p = cJSON_GetObjectItem(r.json, "predictions");
            ck_assert_int_eq(cJSON_GetArraySize(p), (int)(b - a));
            size_t i = a;
            const cJSON *row;
            cJSON_ArrayForEach(row, p)
            {
                for (size_t j = 0; j < k; j++) {
                    const cJSON *v = k > 1 ? cJSON_GetArrayItem(row, (int)j) : row;
                    ck_assert(cJSON_IsNumber(v));
                    /* cJSON reads numbers with strtod: the %.17g text gives the double back */
                    if (fx_dbits(v->valuedouble) != fx_dbits(want[i * k + j]))
                        bad++;
                    seen++;
                }
                i++;
            }
            h_resp_free(&r);
        }
        ck_assert_uint_eq(seen, c->nrows * k);
        ck_assert_msg(bad == 0, "%s (%s, margin %d): %zu of %zu values differ from LightGBM", name,
                      g_worker ? "worker" : "inprocess", margin, bad, seen);
    }
}

/* Uploads every reference case and predicts every row in both output modes. */
START_TEST(refs_bit_identical_over_http)
{
    for (int i = 0; fx_lgbm_cases[i]; i++) {
        fx_lgbm_case c;
        ck_assert_int_eq(fx_lgbm_load(fx_lgbm_cases[i], &c), 0);
        h_resp r;
        upload(fx_lgbm_cases[i], "text/plain", c.model, c.model_len, &r);
        ck_assert_msg(r.status == 201, "upload %s: %ld %s", fx_lgbm_cases[i], r.status, r.body);
        char id[37];
        snprintf(id, sizeof id, "%s", h_str(&r, "id"));
        ck_assert_uint_eq(cJSON_GetObjectItem(r.json, "num_features")->valueint, c.ncols);
        ck_assert_uint_eq(cJSON_GetObjectItem(r.json, "num_class")->valueint, c.nmargin);
        ck_assert_str_eq(h_str(&r, "booster"), "gbdt");
        const cJSON *fn = cJSON_GetObjectItem(r.json, "feature_names");
        ck_assert_int_eq(cJSON_GetArraySize(fn), (int)c.ncols);
        ck_assert_str_eq(cJSON_GetArrayItem(fn, 0)->valuestring, "Column_0");
        h_resp_free(&r);
        predict_and_compare(fx_lgbm_cases[i], id, &c);
        fx_lgbm_free(&c);
    }
    if (g_worker && !asan_build) {
        /* The worker loaded and scored LightGBM models: still no allocation after ready. */
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", E.hp_sock);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        uint8_t hdr[WIRE_HEADER_SIZE];
        wire_header h = {WIRE_MAGIC, WIRE_VERSION, WIRE_OP_STATS, 0, 0, 0, 9};
        wire_header_encode(hdr, &h);
        ck_assert_int_eq(wire_write_full(fd, hdr, sizeof hdr, wire_now_ms() + 5000), WIRE_IO_OK);
        ck_assert_int_eq(wire_read_full(fd, hdr, sizeof hdr, wire_now_ms() + 5000), WIRE_IO_OK);
        ck_assert_int_eq(wire_header_decode(hdr, 1 << 20, &h), WIRE_OK);
        static uint8_t buf[1 << 16];
        ck_assert_uint_le(h.payload_len, sizeof buf);
        ck_assert_int_eq(wire_read_full(fd, buf, h.payload_len, wire_now_ms() + 5000), WIRE_IO_OK);
        close(fd);
        wire_reader rd;
        wire_reader_init(&rd, buf, h.payload_len);
        int n = wire_get_u16(&rd), found = 0;
        uint64_t allocs = 1, probe = 0, scores = 0;
        for (int i = 0; i < n; i++) {
            char name[64];
            wire_get_str(&rd, name, sizeof name);
            uint64_t v = wire_get_u64(&rd);
            if (strcmp(name, "alloc_calls_after_ready") == 0)
                allocs = v, found++;
            if (strcmp(name, "alloc_probe_present") == 0)
                probe = v;
            if (strcmp(name, "op_score_calls") == 0)
                scores = v;
        }
        ck_assert_int_eq(found, 1);
        ck_assert_uint_eq(probe, 1);
        ck_assert_uint_ge(scores, 10);
        char *log = h_read_file(&E, "hotpath.log");
        ck_assert_msg(allocs == 0, "%llu allocation calls after ready; worker log:\n%s",
                      (unsigned long long)allocs, log ? log : "");
        free(log);
    }
}
END_TEST

/* Source round trip, detection by content, and the refusals with their messages. */
START_TEST(upload_source_and_refusals)
{
    fx_lgbm_case c;
    ck_assert_int_eq(fx_lgbm_load("lgbm_h_regression", &c), 0);
    h_resp r;
    /* detected by content even when sent as application/octet-stream */
    upload("reg", "application/octet-stream", c.model, c.model_len, &r);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    ck_assert_str_eq(h_str(&r, "objective"), "regression");
    char path[256];
    snprintf(path, sizeof path, "/api/v1/models/%s/source", h_str(&r, "id"));
    h_resp_free(&r);
    e2e_req_raw(&E, "GET", path, NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.len, c.model_len);
    ck_assert(memcmp(r.body, c.model, c.model_len) == 0);
    char ct[128];
    ck_assert_ptr_nonnull(h_header(&r, "Content-Type", ct, sizeof ct));
    ck_assert(strncmp(ct, "text/plain", 10) == 0);
    h_resp_free(&r);

    /* linear trees: 422 naming them */
    char *lin = strdup(c.model);
    char *at = strstr(lin, "is_linear=0");
    ck_assert_ptr_nonnull(at);
    at[10] = '1';
    upload("lin", "text/plain", lin, c.model_len, &r);
    e2e_assert_problem(&r, 422, "unsupported_model", NULL);
    ck_assert_ptr_nonnull(strstr(r.body, "linear trees"));
    h_resp_free(&r);
    /* truncated: 400 */
    upload("cut", "text/plain", c.model, c.model_len / 2, &r);
    e2e_assert_problem(&r, 400, "invalid_model", NULL);
    ck_assert_ptr_nonnull(strstr(r.body, "not a valid LightGBM text model"));
    h_resp_free(&r);
    /* a lying count: 400 */
    char *lie = strdup(c.model);
    at = strstr(lie, "num_leaves=");
    ck_assert_ptr_nonnull(at);
    at[11] = '9';
    upload("lie", "text/plain", lie, c.model_len, &r);
    e2e_assert_problem(&r, 400, "invalid_model", NULL);
    h_resp_free(&r);
    /* text/plain is for LightGBM text only */
    upload("json-as-text", "text/plain", "{\"learner\":{}}", 14, &r);
    e2e_assert_problem(&r, 415, "unsupported_media_type", NULL);
    h_resp_free(&r);
    /* 2^31 features: 400 (not an int), 2^31 - 1: 422 */
    const char *big = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\n"
                      "max_feature_idx=2147483647\nobjective=regression\n\nend of trees\n";
    upload("big", "text/plain", big, strlen(big), &r);
    e2e_assert_problem(&r, 422, "unsupported_model", NULL);
    h_resp_free(&r);
    free(lin);
    free(lie);
    fx_lgbm_free(&c);
}
END_TEST

/* Named rows (objects) and nulls work on a LightGBM model as on xgboost models. */
START_TEST(named_rows_and_nulls)
{
    fx_lgbm_case c;
    ck_assert_int_eq(fx_lgbm_load("lgbm_g_binary", &c), 0);
    h_resp r;
    upload("named", "text/plain", c.model, c.model_len, &r);
    ck_assert_int_eq(r.status, 201);
    char path[256];
    snprintf(path, sizeof path, "/api/v1/models/%s/predict", h_str(&r, "id"));
    h_resp_free(&r);
    /* row 0 by name (NaN features absent), raw score */
    char body[8192];
    size_t o = (size_t)snprintf(body, sizeof body, "{\"output_margin\":true,\"rows\":[{");
    int first = 1;
    for (size_t k = 0; k < c.ncols; k++) {
        double v = c.rows[k];
        if (isnan(v))
            continue;
        o += (size_t)snprintf(body + o, sizeof body - o, "%s\"Column_%zu\":%.17g", first ? "" : ",",
                              k, v);
        first = 0;
    }
    snprintf(body + o, sizeof body - o, "}]}");
    e2e_req(&E, "POST", path, body, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    const cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "predictions"), 0);
    ck_assert(fx_dbits(p->valuedouble) == fx_dbits(c.margin[0]));
    h_resp_free(&r);
    fx_lgbm_free(&c);
}
END_TEST

/* A LightGBM binary model as the policy's champion: the decision path (float features) gets
 * LightGBM's double score narrowed to float.  The model, by hand: amount <= 0.5 -> raw -2,
 * else raw 3 (amount is positive whatever its unit), sigmoid 1. */
START_TEST(policy_with_lightgbm_champion)
{
    const char *text = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n"
                       "max_feature_idx=0\nobjective=binary sigmoid:1\nfeature_names=amount\n\n"
                       "Tree=0\nnum_leaves=2\nnum_cat=0\nsplit_feature=0\nthreshold=0.5\n"
                       "decision_type=2\nleft_child=-1\nright_child=-2\nleaf_value=-2 3\n"
                       "is_linear=0\nshrinkage=1\n\n\nend of trees\n";
    h_resp r;
    upload("lgbm-policy", "text/plain", text, strlen(text), &r);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    char id[37], body[600];
    snprintf(id, sizeof id, "%s", h_str(&r, "id"));
    h_resp_free(&r);
    snprintf(body, sizeof body,
             "{\"champion_model_id\":\"%s\",\"challenger_model_id\":null,"
             "\"review_threshold\":0.5,\"block_threshold\":0.99,\"fallback_decision\":"
             "\"review\",\"scoring_timeout_ms\":5000}",
             id);
    e2e_req(&E, "PUT", "/api/v1/policy", body, &r);
    ck_assert_msg(r.status == 200, "PUT policy: %ld %s", r.status, r.body);
    h_resp_free(&r);
    e2e_req(&E, "POST", "/api/v1/users", "{\"external_id\":\"lgbm-user\"}", &r);
    ck_assert_int_eq(r.status, 201);
    char uid[37];
    snprintf(uid, sizeof uid, "%s", h_str(&r, "id"));
    h_resp_free(&r);
    snprintf(body, sizeof body,
             "{\"user_id\":\"%s\",\"amount\":95000,\"currency\":\"EUR\",\"merchant_id\":"
             "\"m1\",\"merchant_category\":\"5411\",\"country\":\"DE\",\"channel\":"
             "\"ecommerce\"}",
             uid);
    e2e_req(&E, "POST", "/api/v1/transactions", body, &r);
    ck_assert_msg(r.status == 201, "POST transaction: %ld %s", r.status, r.body);
    const char *risk = strstr(r.body, "\"risk\":{");
    ck_assert_ptr_nonnull(risk);
    const char *sc = strstr(risk, "\"score\":");
    ck_assert_ptr_nonnull(sc);
    float got = strtof(sc + 8, NULL);
    float want = (float)(1.0 / (1.0 + exp(-3.0))); /* LightGBM's double, then the API's float */
    ck_assert_msg(got == want, "score %.9g, want %.9g (%s)", (double)got, (double)want, r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "\"decision\":\"review\""));
    h_resp_free(&r);
}
END_TEST

static Suite *lgbm_suite(void)
{
    Suite *s = suite_create("lgbm");
    TCase *ti = tcase_create("inprocess");
    tcase_add_checked_fixture(ti, up_inprocess, env_down);
    tcase_set_timeout(ti, 600);
    tcase_add_test(ti, refs_bit_identical_over_http);
    tcase_add_test(ti, upload_source_and_refusals);
    tcase_add_test(ti, named_rows_and_nulls);
    tcase_add_test(ti, policy_with_lightgbm_champion);
    suite_add_tcase(s, ti);
    TCase *tw = tcase_create("worker");
    tcase_add_checked_fixture(tw, up_worker, env_down);
    tcase_set_timeout(tw, 600);
    tcase_add_test(tw, refs_bit_identical_over_http);
    tcase_add_test(tw, named_rows_and_nulls);
    tcase_add_test(tw, policy_with_lightgbm_champion);
    suite_add_tcase(s, tw);
    return s;
}

int main(void)
{
    const char *asan = getenv("VIGIL_ASAN");
    const char *dir = getenv("VIGIL_BIN_DIR");
    char self[PATH_MAX], abs[PATH_MAX];
    if (!dir || !*dir) {
        dir = "bin";
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
            self[n] = '\0';
            char *slash = strrchr(self, '/');
            if (slash && slash - self >= 6 && strncmp(slash - 6, "/tests", 6) == 0) {
                slash[-6] = '\0';
                dir = self;
            }
        }
    }
    if (!realpath(dir, abs))
        snprintf(abs, sizeof abs, "%s", dir);
    asan_build = (asan && *asan == '1') || strstr(abs, "asan") != NULL;
    snprintf(probe_env, sizeof probe_env, "LD_PRELOAD=%s/tests/alloccount.so", abs);
    SRunner *sr = srunner_create(lgbm_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
