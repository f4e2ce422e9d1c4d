/* e2e_formats.c - end-to-end tests of model file formats through /api/v1/models: current xgboost
 * (3.5.0-dev) JSON and UBJSON uploads recognised by content, multi-target models, the format and
 * library version in list/get, /source with the upload's Content-Type, and predictions
 * bit-identical to xgboost's own for every case of tests/fixtures/refs; LightGBM text recognised
 * by content, hostile UBJSON refused, multi-target models refused as policy champions.
 *
 * Every TCase runs twice, with VIGIL_HOTPATH_MODE=inprocess and in the default worker mode (as in
 * e2e_models.c), each with its own environment; tests in a TCase share the database, so every test
 * uses its own model names.  Expected values never come from vigil: predictions and margins are
 * xgboost's (refs/CASE/{pred,margin}.txt), versions and shapes are written out here from the
 * cases' meta.json, SHA-256 comes from sha256sum. */
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

static char *ref_path(const char *cs, const char *file, char *out, size_t cap)
{
    snprintf(out, cap, "%s/refs/%s/%s", fx_dir(), cs, file);
    return out;
}

static char *ref_read(const char *cs, const char *file, size_t *len)
{
    char path[512];
    char *s = fx_slurp(ref_path(cs, file, path, sizeof path), len);
    ck_assert_msg(s != NULL, "cannot read %s", path);
    return s;
}

static float *ref_matrix(const char *cs, const char *file, size_t *rows, size_t *cols)
{
    char path[512];
    float *m = fx_matrix_file(ref_path(cs, file, path, sizeof path), rows, cols);
    ck_assert_msg(m != NULL, "cannot read %s", path);
    return m;
}

/* POST /api/v1/models?name=NAME. */
static void upload_raw(const char *name, const char *ctype, const char *body, size_t len, h_resp *r)
{
    char path[300];
    snprintf(path, sizeof path, "/api/v1/models?name=%s", name);
    e2e_req_raw(&E, "POST", path, ctype, body, len, r);
}

static int jint(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    ck_assert_msg(cJSON_IsNumber(v), "'%s' is not a number", name);
    return v->valueint;
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Reads every number of "predictions" (nested arrays flattened) with strtof, null as NaN. */
static size_t parse_predictions(const char *body, float *out, size_t cap)
{
    const char *p = strstr(body, "\"predictions\":[");
    size_t n = 0;
    int depth = 0;
    if (!p)
        return 0;
    p += strlen("\"predictions\":");
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

static char *dense_body(const float *rows, size_t nr, size_t nc, int margin)
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
    sb_add(&b, "]%s}", margin ? ",\"output_margin\":true" : "");
    return b.p;
}

/* ---- the reference cases through HTTP -------------------------------------------------------- */

static const struct refcase {
    const char *cs;
    const char *files[2];
    const char *objective;
    int num_class, num_target, num_trees;
} CASES[] = {
    {"xgb_a_binary_logistic", {"model.json", "model.ubj"}, "binary:logistic", 1, 1, 200},
    {"xgb_b_multi_softprob", {"model.ubj", NULL}, "multi:softprob", 10, 1, 600},
    {"xgb_c_reg_squarederror", {"model.json", "model.ubj"}, "reg:squarederror", 1, 1, 150},
    {"xgb_d_categorical", {"model.json", "model.ubj"}, "binary:logistic", 1, 1, 100},
    {"xgb_e_multi_target", {"model.json", NULL}, "reg:squarederror", 2, 2, 200},
    {"xgb_e2_multi_output_tree", {"model.json", NULL}, "reg:squarederror", 2, 2, 100},
    {"xgb_f_speed_binary", {"model.ubj", NULL}, "binary:logistic", 1, 1, 1000},
};

/* Uploads refs/CASE/FILE as name (Content-Type ctype); asserts 201 and the stored metadata;
 * copies the id. */
static void upload_ref(const struct refcase *c, const char *file, const char *ctype,
                       const char *name, char id[37])
{
    size_t len;
    char *body = ref_read(c->cs, file, &len);
    h_resp r;
    upload_raw(name, ctype, body, len, &r);
    ck_assert_msg(r.status == 201, "upload %s/%s: %ld %s", c->cs, file, r.status, r.body);
    int ubj = strstr(file, ".ubj") != NULL;
    ck_assert_pstr_eq(jstr(r.json, "format"), ubj ? "xgboost-ubjson" : "xgboost-json");
    ck_assert_pstr_eq(jstr(r.json, "library_version"), "3.5.0");
    ck_assert_pstr_eq(jstr(r.json, "objective"), c->objective);
    ck_assert_int_eq(jint(r.json, "num_class"), c->num_class);
    ck_assert_int_eq(jint(r.json, "num_target"), c->num_target);
    ck_assert_int_eq(jint(r.json, "num_trees"), c->num_trees);
    ck_assert_int_eq(jint(r.json, "size_bytes"), (int)len);
    char path[512], sha[65];
    ck_assert_int_eq(fx_sha256_file(ref_path(c->cs, file, path, sizeof path), sha), 0);
    ck_assert_pstr_eq(jstr(r.json, "sha256"), sha);
    snprintf(id, 37, "%s", jstr(r.json, "id"));
    h_resp_free(&r);
    free(body);
}

START_TEST(refs_upload_source_predict)
{
    size_t files = 0, outputs = 0;
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        size_t nr, nc;
        float *rows = ref_matrix(CASES[c].cs, "rows.txt", &nr, &nc);
        for (int f = 0; f < 2 && CASES[c].files[f]; f++) {
            const char *file = CASES[c].files[f];
            int ubj = strstr(file, ".ubj") != NULL;
            char id[37], name[96], path[160], ct[128];
            snprintf(name, sizeof name, "ref-%zu-%d", c, f);
            /* The file as `curl --data-binary` sends it: octet-stream for .ubj */
            upload_ref(&CASES[c], file, ubj ? "application/octet-stream" : "application/json", name,
                       id);

            /* GET: the same metadata */
            h_resp r;
            snprintf(path, sizeof path, "/api/v1/models/%s", id);
            e2e_req(&E, "GET", path, NULL, &r);
            ck_assert_int_eq(r.status, 200);
            ck_assert_pstr_eq(jstr(r.json, "format"), ubj ? "xgboost-ubjson" : "xgboost-json");
            ck_assert_pstr_eq(jstr(r.json, "library_version"), "3.5.0");
            h_resp_free(&r);

            /* /source: byte for byte, with the format's Content-Type */
            size_t len;
            char *src = ref_read(CASES[c].cs, file, &len);
            snprintf(path, sizeof path, "/api/v1/models/%s/source", id);
            e2e_req_raw(&E, "GET", path, NULL, NULL, 0, &r);
            ck_assert_int_eq(r.status, 200);
            ck_assert_uint_eq(r.len, len);
            ck_assert(memcmp(r.body, src, len) == 0);
            ck_assert_ptr_nonnull(h_header(&r, "Content-Type", ct, sizeof ct));
            ck_assert_str_eq(ct, ubj ? "application/ubjson" : "application/json");
            h_resp_free(&r);
            free(src);

            /* predictions and raw margins: bit-identical to xgboost's */
            for (int margin = 0; margin <= 1; margin++) {
                size_t pr, pc;
                float *want = ref_matrix(CASES[c].cs, margin ? "margin.txt" : "pred.txt", &pr, &pc);
                char *body = dense_body(rows, nr, nc, margin);
                snprintf(path, sizeof path, "/api/v1/models/%s/predict", id);
                e2e_req(&E, "POST", path, body, &r);
                ck_assert_msg(r.status == 200, "%s: %ld %.300s", CASES[c].cs, r.status, r.body);
                /* one array per row when there are several outputs */
                if (pc > 1)
                    ck_assert_ptr_nonnull(strstr(r.body, "\"predictions\":[["));
                float *got = malloc(pr * pc * sizeof(float));
                ck_assert_uint_eq(parse_predictions(r.body, got, pr * pc), pr * pc);
                for (size_t i = 0; i < pr * pc; i++)
                    ck_assert_msg(fx_bits(got[i]) == fx_bits(want[i]),
                                  "%s/%s (%s mode) margin=%d output %zu: %.9g, xgboost %.9g",
                                  CASES[c].cs, file, g_worker ? "worker" : "inprocess", margin, i,
                                  (double)got[i], (double)want[i]);
                outputs += pr * pc;
                free(got);
                free(want);
                free(body);
                h_resp_free(&r);
            }
            files++;
        }
        free(rows);
    }
    printf("  %s mode: %zu model files, %zu outputs bit-identical to xgboost 3.5.0-dev\n",
           g_worker ? "worker" : "inprocess", files, outputs);
}
END_TEST

/* The format comes from the content: a UBJSON file labelled application/json is UBJSON, a JSON
 * file labelled application/ubjson is JSON; text/plain is for LightGBM text only (a JSON model
 * sent as text/plain is a 415), other Content-Types are 415. */
START_TEST(format_by_content_not_header)
{
    static const struct {
        const char *file, *ctype, *want;
    } cases[] = {
        {"model.ubj", "application/json", "xgboost-ubjson"},
        {"model.ubj", "application/ubjson", "xgboost-ubjson"},
        {"model.json", "application/ubjson", "xgboost-json"},
        {"model.json", "application/octet-stream", "xgboost-json"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        char *body = ref_read("xgb_c_reg_squarederror", cases[i].file, &len);
        h_resp r;
        char name[64];
        snprintf(name, sizeof name, "bycontent-%zu", i);
        upload_raw(name, cases[i].ctype, body, len, &r);
        ck_assert_msg(r.status == 201, "case %zu: %ld %s", i, r.status, r.body);
        ck_assert_pstr_eq(jstr(r.json, "format"), cases[i].want);
        h_resp_free(&r);
        free(body);
    }
    size_t len;
    char *body = ref_read("xgb_c_reg_squarederror", "model.ubj", &len);
    h_resp r;
    upload_raw("bycontent-png", "image/png", body, len, &r);
    e2e_assert_problem(&r, 415, "unsupported_media_type", NULL);
    h_resp_free(&r);
    free(body);
    body = ref_read("xgb_c_reg_squarederror", "model.json", &len);
    upload_raw("bycontent-text", "text/plain", body, len, &r);
    e2e_assert_problem(&r, 415, "unsupported_media_type", NULL);
    h_resp_free(&r);
    free(body);

    /* list shows the format of each */
    e2e_req(&E, "GET", "/api/v1/models?name=bycontent-0", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(r.json, "data");
    ck_assert_int_eq(cJSON_GetArraySize(data), 1);
    ck_assert_pstr_eq(jstr(cJSON_GetArrayItem(data, 0), "format"), "xgboost-ubjson");
    ck_assert_pstr_eq(jstr(cJSON_GetArrayItem(data, 0), "library_version"), "3.5.0");
    h_resp_free(&r);
}
END_TEST

/* LightGBM text is recognised by content (a truncated one is a 400 naming LightGBM; the whole
 * LightGBM path is e2e_lgbm.c's); hostile UBJSON is a 400 naming UBJSON; nothing is stored for
 * either. */
START_TEST(refused_uploads)
{
    static const char lgbm[] = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\n"
                               "label_index=0\nmax_feature_idx=1\nobjective=regression\n";
    h_resp r;
    upload_raw("lgbm", "text/plain", lgbm, strlen(lgbm), &r);
    e2e_assert_problem(&r, 400, "invalid_model", NULL);
    ck_assert_msg(strstr(h_str(&r, "detail"), "not a valid LightGBM text model") != NULL, "%s",
                  h_str(&r, "detail"));
    h_resp_free(&r);

    size_t len;
    char *ubj = ref_read("xgb_a_binary_logistic", "model.ubj", &len);
    /* truncated */
    upload_raw("bad-ubj", "application/octet-stream", ubj, len / 2, &r);
    e2e_assert_problem(&r, 400, "invalid_model", NULL);
    ck_assert_msg(strstr(h_str(&r, "detail"), "UBJSON") != NULL, "%s", h_str(&r, "detail"));
    h_resp_free(&r);
    /* a typed array claiming 2^31 elements */
    char *bad = malloc(len);
    memcpy(bad, ubj, len);
    char *at = memmem(bad, len, "[$d#L", 5);
    ck_assert_ptr_nonnull(at);
    memcpy(at + 5, "\x00\x00\x00\x00\x80\x00\x00\x00", 8);
    upload_raw("bad-ubj", "application/octet-stream", bad, len, &r);
    e2e_assert_problem(&r, 400, "invalid_model", NULL);
    ck_assert_msg(strstr(h_str(&r, "detail"), "larger than the rest") != NULL, "%s",
                  h_str(&r, "detail"));
    h_resp_free(&r);
    /* a negative string length */
    memcpy(bad, ubj, len);
    at = memmem(bad, len, "SL", 2);
    ck_assert_ptr_nonnull(at);
    memcpy(at + 2, "\xff\xff\xff\xff\xff\xff\xff\xfe", 8);
    upload_raw("bad-ubj", "application/octet-stream", bad, len, &r);
    e2e_assert_problem(&r, 400, "invalid_model", NULL);
    h_resp_free(&r);
    free(bad);
    free(ubj);

    static const char *const names[] = {"lgbm", "bad-ubj"};
    for (size_t i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/models?name=%s", names[i]);
        e2e_req(&E, "GET", path, NULL, &r);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "data")), 0);
        h_resp_free(&r);
    }
}
END_TEST

/* A policy needs one score per row: multi-target champions and challengers are 422. */
START_TEST(policy_refuses_multi_target)
{
    char id[37];
    upload_ref(&CASES[4], "model.json", "application/json", "policy-mt", id);
    char body[512];
    snprintf(body, sizeof body,
             "{\"champion_model_id\":\"%s\",\"challenger_model_id\":null,"
             "\"review_threshold\":0.5,\"block_threshold\":0.8,\"fallback_decision\":\"review\","
             "\"scoring_timeout_ms\":50}",
             id);
    h_resp r;
    e2e_req(&E, "PUT", "/api/v1/policy", body, &r);
    e2e_assert_problem(&r, 422, "unsuitable_model", "champion_model_id");
    ck_assert_msg(strstr(h_str(&r, "detail"), "multi-target") != NULL, "%s", h_str(&r, "detail"));
    h_resp_free(&r);
    char id2[37];
    upload_ref(&CASES[5], "model.json", "application/json", "policy-mt2", id2);
    snprintf(body, sizeof body,
             "{\"champion_model_id\":\"%s\",\"challenger_model_id\":null,"
             "\"review_threshold\":0.5,\"block_threshold\":0.8,\"fallback_decision\":\"review\","
             "\"scoring_timeout_ms\":50}",
             id2);
    e2e_req(&E, "PUT", "/api/v1/policy", body, &r);
    e2e_assert_problem(&r, 422, "unsuitable_model", "champion_model_id");
    h_resp_free(&r);
}
END_TEST

static void add_common(TCase *tc)
{
    tcase_add_test(tc, refs_upload_source_predict);
    tcase_add_test(tc, format_by_content_not_header);
    tcase_add_test(tc, refused_uploads);
    tcase_add_test(tc, policy_refuses_multi_target);
}

static Suite *formats_suite(void)
{
    Suite *s = suite_create("e2e_formats");
    TCase *tc = tcase_create("formats_inprocess");
    tcase_add_unchecked_fixture(tc, up_inprocess, env_down);
    tcase_set_timeout(tc, 300);
    add_common(tc);
    suite_add_tcase(s, tc);

    tc = tcase_create("formats_worker");
    tcase_add_unchecked_fixture(tc, up_worker, env_down);
    tcase_set_timeout(tc, 300);
    add_common(tc);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    SRunner *sr = srunner_create(formats_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
