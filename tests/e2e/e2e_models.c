/* e2e_models.c - end-to-end tests of /api/v1/models: upload (metadata, versions, source byte for
 * byte, SHA-256), list with cursor pagination, delete, and predict against xgboost 1.7.4's own
 * predictions for every fixture in tests/fixtures (dense rows, rows by feature name, margins),
 * request validation, limits at N and N+1, scopes, and (worker mode) a worker killed and restarted
 * under a running API.
 *
 * Every TCase runs twice: once with VIGIL_HOTPATH_MODE=inprocess and once in the default worker
 * mode, each with its own environment (unchecked fixture, CK_NOFORK); tests in a TCase share the
 * database, so every test uses its own model names.  Expected values never come from vigil: model
 * metadata is read from the fixture JSON here, SHA-256 from sha256sum, predictions from the
 * fixtures' .pred/.margin files. */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures_io.h"
#include "assert.h"
#include "harness.h"

static h_env E;
static int g_worker; /* this TCase runs in worker mode */

static const char *const ENV_INPROCESS[] = {"VIGIL_HOTPATH_MODE=inprocess", NULL};
static const char *const ENV_WORKER[] = {NULL}; /* the default mode: worker */
/* Limits small enough to test at N and N+1: 10 rows, 4096 bytes of body. */
static const char *const ENV_LIMITS_INPROCESS[] = {"VIGIL_HOTPATH_MODE=inprocess",
                                                   "VIGIL_MAX_PREDICT_ROWS=10",
                                                   "VIGIL_MAX_PREDICT_BYTES=4096", NULL};
static const char *const ENV_LIMITS_WORKER[] = {"VIGIL_MAX_PREDICT_ROWS=10",
                                                "VIGIL_MAX_PREDICT_BYTES=4096", NULL};
#define LIMIT_ROWS 10
#define LIMIT_BYTES 4096

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

static void up_limits_inprocess(void)
{
    env_up(ENV_LIMITS_INPROCESS, 0);
}

static void up_limits_worker(void)
{
    env_up(ENV_LIMITS_WORKER, 1);
}

static void env_down(void)
{
    e2e_env_down(&E);
}

/* ---- helpers --------------------------------------------------------------------------------- */

/* A growable string for request bodies. */
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

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    ck_assert_msg(cJSON_IsNumber(v), "'%s' is not a number", name);
    return v->valuedouble;
}

/* POST /api/v1/models?name=NAME with the given bytes and content type. */
static void upload_raw(const char *name, const char *ctype, const char *body, size_t len,
                       const char *key, h_resp *r)
{
    char path[400];
    if (name)
        snprintf(path, sizeof path, "/api/v1/models?name=%s", name);
    else
        snprintf(path, sizeof path, "/api/v1/models");
    ck_assert_int_eq(h_http(&E, "POST", path, key ? key : E.key, ctype, body, len, NULL, r), 0);
}

/* Uploads fixture fx under name; asserts 201 and copies the model id into id[37]. */
static void upload_fixture(const char *fx, const char *name, char id[37])
{
    size_t len;
    char *body = fx_read(fx, "model.json", &len);
    ck_assert_msg(body != NULL, "cannot read fixture %s", fx);
    h_resp r;
    upload_raw(name, "application/json", body, len, NULL, &r);
    ck_assert_msg(r.status == 201, "upload %s: %ld %s", fx, r.status, r.body);
    ck_assert_ptr_nonnull(h_str(&r, "id"));
    snprintf(id, 37, "%s", h_str(&r, "id"));
    h_resp_free(&r);
    free(body);
}

/* What the fixture file itself says, read with cJSON after turning xgboost's NaN tokens (not
 * JSON) into 0.0 of the same length. */
typedef struct fx_meta {
    char objective[64], booster[32];
    int num_features, num_class, num_trees;
    cJSON *feature_names; /* array or NULL (owned) */
} fx_meta;

static int str_int(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    ck_assert_msg(cJSON_IsString(v), "fixture: '%s' missing", name);
    return atoi(v->valuestring);
}

static void read_meta(const char *fx, fx_meta *m)
{
    size_t len;
    char *txt = fx_read(fx, "model.json", &len);
    ck_assert_ptr_nonnull(txt);
    for (char *p = txt; (p = strstr(p, "NaN")) != NULL; p += 3)
        memcpy(p, "0.0", 3);
    cJSON *root = cJSON_Parse(txt);
    ck_assert_msg(root != NULL, "fixture %s does not parse", fx);
    const cJSON *learner = cJSON_GetObjectItemCaseSensitive(root, "learner");
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(learner, "objective");
    const cJSON *gb = cJSON_GetObjectItemCaseSensitive(learner, "gradient_booster");
    const cJSON *lmp = cJSON_GetObjectItemCaseSensitive(learner, "learner_model_param");
    snprintf(m->objective, sizeof m->objective, "%s",
             cJSON_GetObjectItemCaseSensitive(obj, "name")->valuestring);
    snprintf(m->booster, sizeof m->booster, "%s",
             cJSON_GetObjectItemCaseSensitive(gb, "name")->valuestring);
    m->num_features = str_int(lmp, "num_feature");
    int nc = str_int(lmp, "num_class");
    m->num_class = strncmp(m->objective, "multi:", 6) == 0 ? nc : 1;
    const cJSON *trees_owner =
        strcmp(m->booster, "dart") == 0 ? cJSON_GetObjectItemCaseSensitive(gb, "gbtree") : gb;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(trees_owner, "model");
    m->num_trees = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(model, "trees"));
    ck_assert_int_eq(
        m->num_trees,
        str_int(cJSON_GetObjectItemCaseSensitive(model, "gbtree_model_param"), "num_trees"));
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(learner, "feature_names");
    m->feature_names = cJSON_GetArraySize(fn) > 0 ? cJSON_Duplicate(fn, 1) : NULL;
    cJSON_Delete(root);
    free(txt);
}

/* Checks a model resource against the fixture's own metadata and the bytes uploaded. */
static void assert_model_json(const cJSON *o, const char *fx, const char *name, int version,
                              const char *sha)
{
    fx_meta m = {0};
    read_meta(fx, &m);
    ck_assert_pstr_eq(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "name")), name);
    ck_assert_int_eq((int)num(o, "version"), version);
    ck_assert_pstr_eq(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "objective")),
                      m.objective);
    ck_assert_pstr_eq(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "booster")),
                      m.booster);
    ck_assert_int_eq((int)num(o, "num_features"), m.num_features);
    ck_assert_int_eq((int)num(o, "num_class"), m.num_class);
    ck_assert_int_eq((int)num(o, "num_trees"), m.num_trees);
    ck_assert_pstr_eq(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "sha256")), sha);
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(o, "feature_names");
    if (m.feature_names)
        ck_assert_msg(cJSON_Compare(fn, m.feature_names, 1), "%s: feature_names differ", fx);
    else
        ck_assert_msg(cJSON_IsNull(fn), "%s: feature_names should be null", fx);
    cJSON_Delete(m.feature_names);
}

/* Appends one cell: null for NaN, else the float's exact value (%.17g of the double it widens
 * to, which strtod maps back to exactly that float). */
static void put_cell(sbuf *b, float v)
{
    if (isnan(v))
        sb_add(b, "null");
    else
        sb_add(b, "%.17g", (double)v);
}

/* {"rows":[[...],...]} (plus "output_margin") for rows [from, to) of a matrix. */
static char *dense_body(const float *rows, size_t from, size_t to, size_t cols, int margin)
{
    sbuf b = {0};
    sb_add(&b, "{\"rows\":[");
    for (size_t i = from; i < to; i++) {
        sb_add(&b, i > from ? ",[" : "[");
        for (size_t j = 0; j < cols; j++) {
            if (j)
                sb_add(&b, ",");
            put_cell(&b, rows[i * cols + j]);
        }
        sb_add(&b, "]");
    }
    sb_add(&b, "]%s}", margin ? ",\"output_margin\":true" : "");
    return b.p;
}

/* Reads every number of the "predictions" member (nested arrays flattened) with strtof, null as
 * NaN.  Returns how many were read (at most cap). */
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

/* POSTs body to /models/{id}/predict; asserts 200 and n outputs, returned in out. */
static void predict_ok(const char *id, const char *body, float *out, size_t n, const char *key)
{
    char path[200];
    h_resp r;
    snprintf(path, sizeof path, "/api/v1/models/%s/predict", id);
    ck_assert_int_eq(h_http(&E, "POST", path, key ? key : E.key, "application/json", body,
                            strlen(body), NULL, &r),
                     0);
    ck_assert_msg(r.status == 200, "predict %s: %ld %.300s%s", id, r.status, r.body,
                  g_worker ? " (worker mode: scoring goes through vigil-hotpath's SCORE kernel)"
                           : "");
    ck_assert_pstr_eq(h_str(&r, "model_id"), id);
    size_t got = parse_predictions(r.body, out, n);
    ck_assert_msg(got == n, "predict %s: %zu outputs, want %zu", id, got, n);
    h_resp_free(&r);
}

static void predict_status(const char *id, const char *body, h_resp *r)
{
    char path[200];
    snprintf(path, sizeof path, "/api/v1/models/%s/predict", id);
    ck_assert_int_eq(
        h_http(&E, "POST", path, E.key, "application/json", body, strlen(body), NULL, r), 0);
}

/* An API key with these scopes, created through the CLI. */
static void create_key(const char *scopes, char *key, size_t cap)
{
    ck_assert_msg(h_create_key(&E, scopes, key, cap) == 0, "keys create failed: %s", key);
}

/* ---- upload, get, source, list, delete ------------------------------------------------------- */

START_TEST(upload_every_fixture)
{
    char names[64][FX_NAME_MAX];
    size_t nfix = fx_manifest(names, 64);
    ck_assert_uint_ge(nfix, 20);
    for (size_t f = 0; f < nfix; f++) {
        char path[512], sha[65], mname[100], id[37], url[200], loc[200];
        size_t len;
        fx_path(names[f], "model.json", path, sizeof path);
        ck_assert_int_eq(fx_sha256_file(path, sha), 0);
        char *body = fx_slurp(path, &len);
        ck_assert_ptr_nonnull(body);
        snprintf(mname, sizeof mname, "up-%s", names[f]);
        h_resp r;
        upload_raw(mname, "application/json", body, len, NULL, &r);
        ck_assert_msg(r.status == 201, "%s: %ld %s", names[f], r.status, r.body);
        snprintf(id, sizeof id, "%s", h_str(&r, "id"));
        snprintf(url, sizeof url, "/api/v1/models/%s", id);
        ck_assert_ptr_nonnull(h_header(&r, "Location", loc, sizeof loc));
        ck_assert_str_eq(loc, url);
        assert_model_json(r.json, names[f], mname, 1, sha);
        ck_assert_int_eq((long)num(r.json, "size_bytes"), (long)len);
        h_resp_free(&r);

        e2e_req(&E, "GET", url, NULL, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_pstr_eq(h_str(&r, "id"), id);
        assert_model_json(r.json, names[f], mname, 1, sha);
        h_resp_free(&r);

        char src[220], ct[100];
        snprintf(src, sizeof src, "%s/source", url);
        e2e_req(&E, "GET", src, NULL, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_ptr_nonnull(h_header(&r, "Content-Type", ct, sizeof ct));
        ck_assert(strncmp(ct, "application/json", 16) == 0);
        ck_assert_msg(r.len == len && memcmp(r.body, body, len) == 0,
                      "%s: source differs (%zu bytes, sent %zu)", names[f], r.len, len);
        h_resp_free(&r);
        free(body);
    }
}
END_TEST

START_TEST(upload_versions_per_name)
{
    char path[512], sha_a[65], sha_b[65], id1[37], id2[37], id3[37];
    fx_path("binary_logistic_named", "model.json", path, sizeof path);
    ck_assert_int_eq(fx_sha256_file(path, sha_a), 0);
    fx_path("binary_hinge", "model.json", path, sizeof path);
    ck_assert_int_eq(fx_sha256_file(path, sha_b), 0);
    h_resp r;
    upload_fixture("binary_logistic_named", "ver-m", id1);
    upload_fixture("binary_hinge", "ver-m", id2); /* a different file under the same name */
    upload_fixture("binary_hinge", "ver-other", id3);
    ck_assert_str_ne(id1, id2);
    char url[200];
    snprintf(url, sizeof url, "/api/v1/models/%s", id1);
    e2e_req(&E, "GET", url, NULL, &r);
    assert_model_json(r.json, "binary_logistic_named", "ver-m", 1, sha_a);
    h_resp_free(&r);
    snprintf(url, sizeof url, "/api/v1/models/%s", id2);
    e2e_req(&E, "GET", url, NULL, &r);
    assert_model_json(r.json, "binary_hinge", "ver-m", 2, sha_b);
    h_resp_free(&r);
    snprintf(url, sizeof url, "/api/v1/models/%s", id3);
    e2e_req(&E, "GET", url, NULL, &r);
    assert_model_json(r.json, "binary_hinge", "ver-other", 1, sha_b);
    h_resp_free(&r);
}
END_TEST

START_TEST(list_pagination_and_name_filter)
{
    enum { N = 5 };
    char ids[N][37], other[37];
    for (int i = 0; i < N; i++)
        upload_fixture("binary_hinge", "page-m", ids[i]);
    upload_fixture("binary_hinge", "page-other", other);

    /* ?name= pages of 2, newest first: ids[4], ids[3] | ids[2], ids[1] | ids[0]. */
    char path[400] = "/api/v1/models?name=page-m&limit=2";
    int seen = 0;
    for (int page = 0; page < 3; page++) {
        h_resp r;
        e2e_req(&E, "GET", path, NULL, &r);
        ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(r.json, "data");
        int n = cJSON_GetArraySize(data);
        ck_assert_int_eq(n, page < 2 ? 2 : 1);
        const cJSON *it;
        cJSON_ArrayForEach(it, data)
        {
            ck_assert_pstr_eq(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "id")),
                              ids[N - 1 - seen]);
            ck_assert_pstr_eq(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name")),
                              "page-m");
            ck_assert_int_eq((int)num(it, "version"), N - seen);
            seen++;
        }
        const cJSON *next = cJSON_GetObjectItemCaseSensitive(r.json, "next_cursor");
        if (page < 2) {
            ck_assert_msg(cJSON_IsString(next), "page %d: no next_cursor", page);
            snprintf(path, sizeof path, "/api/v1/models?name=page-m&limit=2&cursor=%s",
                     next->valuestring);
        } else {
            ck_assert(cJSON_IsNull(next));
        }
        h_resp_free(&r);
    }
    ck_assert_int_eq(seen, N);

    /* Unfiltered, everything is there once. */
    h_resp r;
    e2e_req(&E, "GET", "/api/v1/models?limit=500", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(r.json, "data"), *it;
    int found = 0;
    cJSON_ArrayForEach(it, data)
    {
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "id"));
        for (int i = 0; i < N; i++)
            found += strcmp(id, ids[i]) == 0;
        found += strcmp(id, other) == 0;
    }
    ck_assert_int_eq(found, N + 1);
    h_resp_free(&r);

    e2e_req(&E, "GET", "/api/v1/models?limit=0", NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "limit");
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/models?limit=501", NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "limit");
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/models?cursor=garbage", NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "cursor");
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/models?name=-bad", NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "name");
    h_resp_free(&r);
}
END_TEST

START_TEST(delete_then_404)
{
    char id[37], url[200], sub[250];
    h_resp r;
    upload_fixture("binary_hinge", "del-m", id);
    snprintf(url, sizeof url, "/api/v1/models/%s", id);
    e2e_req(&E, "DELETE", url, NULL, &r);
    ck_assert_int_eq(r.status, 204);
    ck_assert_uint_eq(r.len, 0);
    h_resp_free(&r);
    e2e_req(&E, "GET", url, NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    snprintf(sub, sizeof sub, "%s/source", url);
    e2e_req(&E, "GET", sub, NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    predict_status(id, "{\"rows\":[[1,2,3,4,5,6,7]]}", &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    e2e_req(&E, "DELETE", url, NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
}
END_TEST

/* ---- predict --------------------------------------------------------------------------------- */

START_TEST(predict_matches_xgboost)
{
    char names[64][FX_NAME_MAX];
    size_t nfix = fx_manifest(names, 64), total = 0, total_ident = 0;
    ck_assert_uint_ge(nfix, 20);
    for (size_t f = 0; f < nfix; f++) {
        char id[37], mname[100];
        size_t nr, nc;
        snprintf(mname, sizeof mname, "pr-%s", names[f]);
        upload_fixture(names[f], mname, id);
        float *rows = fx_matrix(names[f], "rows.txt", &nr, &nc);
        ck_assert_ptr_nonnull(rows);
        for (int margin = 0; margin <= 1; margin++) {
            size_t pr, pc;
            float *want = fx_matrix(names[f], margin ? "margin.txt" : "pred.txt", &pr, &pc);
            ck_assert_ptr_nonnull(want);
            ck_assert_uint_eq(pr, nr);
            float *got = malloc(pr * pc * sizeof(float));
            char *body = dense_body(rows, 0, nr, nc, margin);
            predict_ok(id, body, got, pr * pc, NULL);
            fx_cmp c = fx_compare(got, want, pr * pc);
            printf("  %-5s %-24s %-6s %5zu/%5zu bit-identical  max rel err %.3g\n",
                   g_worker ? "work" : "inproc", names[f], margin ? "margin" : "pred", c.identical,
                   c.n, c.max_rel);
            ck_assert_msg(c.identical * 1000 >= c.n * 999, "%s %s: only %zu/%zu bit-identical",
                          names[f], margin ? "margin" : "pred", c.identical, c.n);
            ck_assert_msg(c.max_rel <= 1e-6, "%s: max rel err %g", names[f], c.max_rel);
            total += c.n;
            total_ident += c.identical;
            free(body);
            free(got);
            free(want);
        }
        free(rows);
    }
    printf("  %s: all fixtures over HTTP: %zu/%zu outputs bit-identical\n",
           g_worker ? "worker" : "inprocess", total_ident, total);
}
END_TEST

/* Rows as objects keyed by feature name give exactly the dense outputs; absent = missing, and
 * explicit null = missing too.  Key order is scrambled (reverse) on purpose. */
START_TEST(predict_rows_by_name)
{
    static const char *const named[] = {"binary_logistic_named", "cat_binary"};
    for (size_t k = 0; k < 2; k++) {
        fx_meta m = {0};
        char id[37], mname[100];
        size_t nr, nc, pr, pc;
        read_meta(named[k], &m);
        ck_assert_ptr_nonnull(m.feature_names);
        snprintf(mname, sizeof mname, "byname-%s", named[k]);
        upload_fixture(named[k], mname, id);
        float *rows = fx_matrix(named[k], "rows.txt", &nr, &nc);
        float *want = fx_matrix(named[k], "pred.txt", &pr, &pc);
        ck_assert_ptr_nonnull(rows);
        ck_assert_ptr_nonnull(want);
        ck_assert_int_eq((int)nc, cJSON_GetArraySize(m.feature_names));
        sbuf b = {0};
        sb_add(&b, "{\"rows\":[");
        for (size_t i = 0; i < nr; i++) {
            sb_add(&b, i ? ",{" : "{");
            int first = 1;
            for (size_t j = nc; j-- > 0;) {
                float v = rows[i * nc + j];
                if (isnan(v) && i % 2 == 0)
                    continue; /* absent on even rows, explicit null on odd rows */
                char *esc = cJSON_PrintUnformatted(cJSON_GetArrayItem(m.feature_names, (int)j));
                sb_add(&b, "%s%s:", first ? "" : ",", esc);
                free(esc);
                put_cell(&b, v);
                first = 0;
            }
            sb_add(&b, "}");
        }
        sb_add(&b, "]}");
        float *by_name = malloc(nr * pc * sizeof(float));
        float *dense = malloc(nr * pc * sizeof(float));
        predict_ok(id, b.p, by_name, nr * pc, NULL);
        char *db = dense_body(rows, 0, nr, nc, 0);
        predict_ok(id, db, dense, nr * pc, NULL);
        for (size_t i = 0; i < nr * pc; i++)
            ck_assert_msg(fx_bits(by_name[i]) == fx_bits(dense[i]) ||
                              (isnan(by_name[i]) && isnan(dense[i])),
                          "%s output %zu: by name %.9g, dense %.9g", named[k], i,
                          (double)by_name[i], (double)dense[i]);
        fx_cmp c = fx_compare(by_name, want, nr * pc);
        printf("  %-5s %-24s byname %5zu/%5zu bit-identical to xgboost\n",
               g_worker ? "work" : "inproc", named[k], c.identical, c.n);
        ck_assert(c.identical * 1000 >= c.n * 999);
        ck_assert(c.max_rel <= 1e-6);
        free(db);
        free(b.p);
        free(by_name);
        free(dense);
        free(rows);
        free(want);
        cJSON_Delete(m.feature_names);
    }
}
END_TEST

START_TEST(predict_validation)
{
    char named[37], plain[37];
    h_resp r;
    upload_fixture("binary_logistic_named", "val-named", named);
    upload_fixture("binary_hinge", "val-plain", plain);
    static const struct {
        int named;
        const char *body, *code, *field;
    } cases[] = {
        {0, "{\"rows\":[[1,2,3,4,5,6,7],[1,2,3,4,5,6]]}", "validation_failed", "rows[1]"},
        {0, "{\"rows\":[[1,2,3,4,5,6,7,8]]}", "validation_failed", "rows[0]"},
        {0, "{\"rows\":[[]]}", "validation_failed", "rows[0]"},
        {0, "{\"rows\":[[1,2,3,4,5,6,7],[1,2,\"3\",4,5,6,7]]}", "validation_failed", "rows[1][2]"},
        {0, "{\"rows\":[[1,2,3,4,5,6,true]]}", "validation_failed", "rows[0][6]"},
        {0, "{\"rows\":[[1,2,3,4,5,6,[7]]]}", "validation_failed", "rows[0][6]"},
        {0, "{\"rows\":[7]}", "validation_failed", "rows[0]"},
        {0, "{\"rows\":[{\"f0\":1}]}", "validation_failed", "rows[0]"}, /* no names */
        {1, "{\"rows\":[{\"amount usd\":1,\"nope\":2}]}", "validation_failed", "rows[0].nope"},
        {1, "{\"rows\":[{\"amount usd\":1},{\"amount usd\":1,\"amount usd\":2}]}",
         "validation_failed", "rows[1].amount usd"},
        {1, "{\"rows\":[{\"amount usd\":\"x\"}]}", "validation_failed", "rows[0].amount usd"},
        {0, "{}", "validation_failed", "rows"},
        {0, "{\"output_margin\":true}", "validation_failed", "rows"},
        {0, "{\"rows\":[]}", "validation_failed", "rows"},
        {0, "{\"rows\":{}}", "validation_failed", "rows"},
        {0, "{\"rows\":[[1,2,3,4,5,6,7]],\"extra\":1}", "validation_failed", "extra"},
        {0, "{\"rows\":[[1,2,3,4,5,6,7]],\"output_margin\":1}", "validation_failed",
         "output_margin"},
        {0, "[[1,2,3,4,5,6,7]]", "validation_failed", NULL},
        {0, "{\"rows\":[[1,2,3,4,5,6,7]]", "malformed_json", NULL}, /* not JSON */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        predict_status(cases[i].named ? named : plain, cases[i].body, &r);
        ck_assert_msg(r.status == 400, "case %zu (%s): %ld %s", i, cases[i].body, r.status, r.body);
        e2e_assert_problem(&r, 400, cases[i].code, cases[i].field);
        h_resp_free(&r);
    }
    /* Unknown model, malformed id, wrong content type. */
    predict_status("00000000-0000-4000-8000-000000000000", "{\"rows\":[[1,2,3,4,5,6,7]]}", &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    predict_status("not-a-uuid", "{\"rows\":[[1,2,3,4,5,6,7]]}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "id");
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/models/00000000-0000-4000-8000-00000000000", NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "id");
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/models/00000000-0000-4000-8000-000000000000", NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    char path[200];
    snprintf(path, sizeof path, "/api/v1/models/%s/predict", plain);
    const char *b = "{\"rows\":[[1,2,3,4,5,6,7]]}";
    ck_assert_int_eq(h_http(&E, "POST", path, E.key, "text/plain", b, strlen(b), NULL, &r), 0);
    e2e_assert_problem(&r, 415, "unsupported_media_type", NULL);
    h_resp_free(&r);
    /* The valid neighbours of those cases (last: they need scoring). */
    float out[2];
    predict_ok(plain, "{\"rows\":[[1,2,3,4,5,6,7],[null,null,null,null,null,null,null]]}", out, 2,
               NULL);
    predict_ok(named, "{\"rows\":[{}, {\"amount usd\":1}]}", out, 2, NULL);
}
END_TEST

/* ---- upload errors --------------------------------------------------------------------------- */

/* A copy of fixture fx with the first occurrence of from replaced by to. */
static char *edited_fixture(const char *fx, const char *from, const char *to, size_t *len)
{
    size_t n;
    char *txt = fx_read(fx, "model.json", &n);
    ck_assert_ptr_nonnull(txt);
    char *at = strstr(txt, from);
    ck_assert_msg(at != NULL, "fixture %s has no '%s'", fx, from);
    size_t fl = strlen(from), tl = strlen(to);
    char *out = malloc(n - fl + tl + 1);
    size_t pre = (size_t)(at - txt);
    memcpy(out, txt, pre);
    memcpy(out + pre, to, tl);
    memcpy(out + pre + tl, at + fl, n - pre - fl + 1);
    *len = n - fl + tl;
    free(txt);
    return out;
}

START_TEST(upload_rejections)
{
    h_resp r;
    size_t len;
    char *good = fx_read("binary_logistic_named", "model.json", &len);
    ck_assert_ptr_nonnull(good);

    upload_raw("bad-json", "application/json", "this is not json", 16, NULL, &r);
    e2e_assert_problem(&r, 400, "invalid_model", NULL);
    h_resp_free(&r);
    upload_raw("bad-json", "application/json", "{\"a\":1}", 7, NULL, &r);
    e2e_assert_problem(&r, 400, "invalid_model", NULL);
    h_resp_free(&r);
    upload_raw("bad-trunc", "application/json", good, len / 2, NULL, &r);
    e2e_assert_problem(&r, 400, "invalid_model", NULL);
    h_resp_free(&r);
    upload_raw("bad-trunc", "application/json", good, len - 1, NULL, &r); /* last '}' missing */
    e2e_assert_problem(&r, 400, "invalid_model", NULL);
    h_resp_free(&r);

    size_t elen;
    char *gbl = edited_fixture("binary_logistic_named", "\"name\":\"gbtree\"",
                               "\"name\":\"gblinear\"", &elen);
    upload_raw("bad-gblinear", "application/json", gbl, elen, NULL, &r);
    e2e_assert_problem(&r, 422, "unsupported_model", NULL);
    ck_assert_msg(strstr(h_str(&r, "detail"), "gblinear") != NULL, "detail: %s",
                  h_str(&r, "detail"));
    h_resp_free(&r);
    free(gbl);
    char *obj = edited_fixture("binary_logistic_named", "\"name\":\"binary:logistic\"",
                               "\"name\":\"binary:mystery\"", &elen);
    upload_raw("bad-objective", "application/json", obj, elen, NULL, &r);
    e2e_assert_problem(&r, 422, "unsupported_model", NULL);
    ck_assert_msg(strstr(h_str(&r, "detail"), "binary:mystery") != NULL, "detail: %s",
                  h_str(&r, "detail"));
    h_resp_free(&r);
    free(obj);

    /* name: missing, empty, bad characters, bad first character, 128 ok / 129 not. */
    char n128[140], n129[140], path[300];
    memset(n128, 'a', 128);
    n128[128] = '\0';
    memset(n129, 'a', 129);
    n129[129] = '\0';
    const char *bad_names[] = {NULL, "", "a%20b", "-a", ".a", "a/b", n129};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        upload_raw(bad_names[i], "application/json", good, len, NULL, &r);
        e2e_assert_problem(&r, 400, "validation_failed", "name");
        h_resp_free(&r);
    }
    upload_raw(n128, "application/json", good, len, NULL, &r);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    upload_raw("ok_name-1.x", "application/json", good, len, NULL, &r);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    snprintf(path, sizeof path, "/api/v1/models?name=x&other=1");
    ck_assert_int_eq(h_http(&E, "POST", path, E.key, "application/json", good, len, NULL, &r), 0);
    e2e_assert_problem(&r, 400, "unknown_parameter", "other");
    h_resp_free(&r);

    /* content type */
    upload_raw("ct", "image/png", good, len, NULL, &r);
    e2e_assert_problem(&r, 415, "unsupported_media_type", NULL);
    h_resp_free(&r);
    upload_raw("ct", NULL, good, len, NULL, &r);
    e2e_assert_problem(&r, 415, "unsupported_media_type", NULL);
    h_resp_free(&r);

    /* None of the rejected uploads left a model behind. */
    static const char *const rejected[] = {"bad-json", "bad-trunc", "bad-gblinear", "bad-objective",
                                           "ct"};
    for (size_t i = 0; i < sizeof rejected / sizeof rejected[0]; i++) {
        snprintf(path, sizeof path, "/api/v1/models?name=%s", rejected[i]);
        e2e_req(&E, "GET", path, NULL, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "data")), 0);
        h_resp_free(&r);
    }
    free(good);
}
END_TEST

START_TEST(read_only_key)
{
    char key[128], id[37], url[200];
    size_t len;
    h_resp r;
    create_key("read", key, sizeof key);
    upload_fixture("binary_hinge", "ro-m", id);
    char *good = fx_read("binary_hinge", "model.json", &len);
    upload_raw("ro-m2", "application/json", good, len, key, &r);
    e2e_assert_problem(&r, 403, "forbidden", NULL);
    h_resp_free(&r);
    snprintf(url, sizeof url, "/api/v1/models/%s", id);
    ck_assert_int_eq(h_http(&E, "DELETE", url, key, NULL, NULL, 0, NULL, &r), 0);
    e2e_assert_problem(&r, 403, "forbidden", NULL);
    h_resp_free(&r);
    ck_assert_int_eq(h_http(&E, "GET", url, key, NULL, NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    ck_assert_int_eq(h_http(&E, "GET", "/api/v1/models", key, NULL, NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    /* Predict needs only read: same outputs as with the admin key. */
    size_t nr, nc;
    float *rows = fx_matrix("binary_hinge", "rows.txt", &nr, &nc);
    float *want = fx_matrix("binary_hinge", "pred.txt", &nr, &nc);
    float got[5];
    char *body = dense_body(rows, 0, 5, 7, 0);
    predict_ok(id, body, got, 5, key);
    for (int i = 0; i < 5; i++)
        ck_assert_uint_eq(fx_bits(got[i]), fx_bits(want[i]));
    free(body);
    free(rows);
    free(want);
    free(good);
}
END_TEST

/* ---- limits (their own environment) ---------------------------------------------------------- */

START_TEST(limits_rows_and_bytes)
{
    char id[37];
    size_t nr, nc, pr, pc;
    h_resp r;
    upload_fixture("binary_hinge", "lim-m", id);
    float *rows = fx_matrix("binary_hinge", "rows.txt", &nr, &nc);
    float *want = fx_matrix("binary_hinge", "pred.txt", &pr, &pc);
    ck_assert_ptr_nonnull(rows);
    ck_assert_ptr_nonnull(want);
    /* Rows: 10 OK, 11 -> 413. */
    float got[LIMIT_ROWS];
    char *body = dense_body(rows, 0, LIMIT_ROWS, nc, 0);
    ck_assert_uint_lt(strlen(body), LIMIT_BYTES);
    predict_ok(id, body, got, LIMIT_ROWS, NULL);
    for (int i = 0; i < LIMIT_ROWS; i++)
        ck_assert_uint_eq(fx_bits(got[i]), fx_bits(want[i]));
    free(body);
    body = dense_body(rows, 0, LIMIT_ROWS + 1, nc, 0);
    ck_assert_uint_lt(strlen(body), LIMIT_BYTES);
    predict_status(id, body, &r);
    e2e_assert_problem(&r, 413, "too_many_rows", "rows");
    h_resp_free(&r);
    free(body);

    /* Bytes: a one-row body padded with spaces to exactly 4096 bytes is fine, 4097 is 413. */
    for (size_t size = LIMIT_BYTES; size <= LIMIT_BYTES + 1; size++) {
        char *b = malloc(size + 1);
        const char *core = "{\"rows\":[[1,2,3,4,5,6,7]]";
        size_t cl = strlen(core);
        memcpy(b, core, cl);
        memset(b + cl, ' ', size - cl - 1);
        b[size - 1] = '}';
        b[size] = '\0';
        predict_status(id, b, &r);
        if (size == LIMIT_BYTES) {
            ck_assert_msg(r.status == 200, "%zu bytes: %ld %s", size, r.status, r.body);
        } else {
            e2e_assert_problem(&r, 413, "body_too_large", NULL);
        }
        h_resp_free(&r);
        free(b);
    }
    free(rows);
    free(want);
}
END_TEST

/* ---- worker mode: the worker dies and comes back under a running API ------------------------- */

START_TEST(worker_killed_and_restarted)
{
    char id[37];
    size_t nr, nc, pr, pc;
    h_resp r;
    upload_fixture("binary_logistic_named", "wk-m", id);
    float *rows = fx_matrix("binary_logistic_named", "rows.txt", &nr, &nc);
    float *want = fx_matrix("binary_logistic_named", "pred.txt", &pr, &pc);
    char *body = dense_body(rows, 0, 20, nc, 0);
    float got[20];
    predict_ok(id, body, got, 20, NULL);
    for (int i = 0; i < 20; i++)
        ck_assert_uint_eq(fx_bits(got[i]), fx_bits(want[i]));

    ck_assert_int_eq(h_hp_stop(&E, SIGKILL), 128 + SIGKILL);
    predict_status(id, body, &r);
    e2e_assert_problem(&r, 503, "unavailable", NULL);
    char ra[32];
    ck_assert_msg(h_header(&r, "Retry-After", ra, sizeof ra) != NULL, "no Retry-After");
    ck_assert_int_ge(atoi(ra), 1);
    h_resp_free(&r);

    /* A fresh worker knows no models: the API must load it again on UNKNOWN_MODEL by itself. */
    ck_assert_int_eq(h_hp_start(&E), 0);
    memset(got, 0, sizeof got);
    predict_ok(id, body, got, 20, NULL);
    for (int i = 0; i < 20; i++)
        ck_assert_uint_eq(fx_bits(got[i]), fx_bits(want[i]));
    free(body);
    free(rows);
    free(want);
}
END_TEST

static void add_common(TCase *tc)
{
    tcase_add_test(tc, upload_every_fixture);
    tcase_add_test(tc, upload_versions_per_name);
    tcase_add_test(tc, list_pagination_and_name_filter);
    tcase_add_test(tc, delete_then_404);
    tcase_add_test(tc, predict_matches_xgboost);
    tcase_add_test(tc, predict_rows_by_name);
    tcase_add_test(tc, predict_validation);
    tcase_add_test(tc, upload_rejections);
    tcase_add_test(tc, read_only_key);
}

static Suite *models_suite(void)
{
    Suite *s = suite_create("e2e_models");
    TCase *tc = tcase_create("models_inprocess");
    tcase_add_unchecked_fixture(tc, up_inprocess, env_down);
    tcase_set_timeout(tc, 300);
    add_common(tc);
    suite_add_tcase(s, tc);

    tc = tcase_create("models_worker");
    tcase_add_unchecked_fixture(tc, up_worker, env_down);
    tcase_set_timeout(tc, 300);
    add_common(tc);
    tcase_add_test(tc, worker_killed_and_restarted); /* last: it kills the worker */
    suite_add_tcase(s, tc);

    tc = tcase_create("limits_inprocess");
    tcase_add_unchecked_fixture(tc, up_limits_inprocess, env_down);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, limits_rows_and_bytes);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits_worker");
    tcase_add_unchecked_fixture(tc, up_limits_worker, env_down);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, limits_rows_and_bytes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    SRunner *sr = srunner_create(models_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
