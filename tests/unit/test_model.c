/* test_model.c - the model pipeline: xgb_compile (common/xgbmodel.c) -> model_validate
 * (common/model.c) -> refeval_predict (common/refeval.c), against xgboost 1.7.4's own predictions
 * (tests/fixtures, see its README), plus hostile JSON and corrupted blobs.
 *
 * Fixtures are found through $VIGIL_FIXTURES, else tests/fixtures relative to the cwd. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "refeval.h"
#include "xgbmodel.h"
#include "fixtures_io.h"

/* Fixture access asserting on failure (tests/lib/fixtures_io.h does the reading). */
static float *read_matrix(const char *path, size_t *rows, size_t *cols)
{
    float *m = fx_matrix_file(path, rows, cols);
    ck_assert_msg(m != NULL, "cannot read %s (set VIGIL_FIXTURES?)", path);
    return m;
}

static void *compile_fixture(const char *name, xgb_info *info, size_t *blob_len, model_view *v)
{
    char err[256];
    void *blob = fx_compile(name, info, blob_len, v, err, sizeof err);
    ck_assert_msg(blob != NULL, "%s: %s", name, err);
    return blob;
}

/* Every fixture, both output modes: >= 99.9% bit-identical, none off by more than 1e-6 rel. */
START_TEST(test_fixtures_match_xgboost)
{
    char names[64][64];
    size_t nfix = fx_manifest(names, 64);
    ck_assert_uint_ge(nfix, 20);
    size_t total = 0, total_ident = 0;
    for (size_t f = 0; f < nfix; f++) {
        xgb_info info;
        size_t blob_len;
        model_view v;
        void *blob = compile_fixture(names[f], &info, &blob_len, &v);
        char path[512];
        size_t nr, nc, pr, pc, mr, mc;
        snprintf(path, sizeof(path), "%s/%s.rows.txt", fx_dir(), names[f]);
        float *rows = read_matrix(path, &nr, &nc);
        ck_assert_uint_eq(nc, v.hdr->num_feature);
        for (int margin = 0; margin <= 1; margin++) {
            snprintf(path, sizeof(path), "%s/%s.%s.txt", fx_dir(), names[f],
                     margin ? "margin" : "pred");
            float *want = read_matrix(path, &pr, &pc);
            ck_assert_uint_eq(pr, nr);
            ck_assert_uint_eq(pc, model_outputs_per_row(&v, margin));
            float *got = malloc(pr * pc * sizeof(float));
            refeval_predict(&v, rows, nr, margin, got);
            fx_cmp r = fx_compare(got, want, pr * pc);
            printf("  %-24s %-6s %5zu/%5zu bit-identical  max rel err %.3g\n", names[f],
                   margin ? "margin" : "pred", r.identical, r.n, r.max_rel);
            ck_assert_msg(r.identical * 1000 >= r.n * 999, "%s: only %zu/%zu bit-identical",
                          names[f], r.identical, r.n);
            ck_assert_msg(r.max_rel <= 1e-6, "%s: max rel err %g", names[f], r.max_rel);
            total += r.n;
            total_ident += r.identical;
            (void)mr;
            (void)mc;
            free(want);
            free(got);
        }
        free(rows);
        free(blob);
        xgb_info_free(&info);
    }
    printf("  all fixtures: %zu/%zu outputs bit-identical\n", total_ident, total);
}
END_TEST

/* xgboost 1.7 rejects +-inf in a DMatrix ("Input data contains inf"), so the fixtures probe with
 * +-FLT_MAX instead.  For every finite threshold t, (inf < t) == (FLT_MAX < t), and both are
 * invalid categories (>= 2^24), so swapping FLT_MAX for inf must not change any output bit. */
START_TEST(test_inf_behaves_as_flt_max)
{
    char names[64][64];
    size_t nfix = fx_manifest(names, 64);
    size_t swapped_rows = 0;
    for (size_t f = 0; f < nfix; f++) {
        xgb_info info;
        size_t blob_len, nr, nc, pr, pc;
        model_view v;
        void *blob = compile_fixture(names[f], &info, &blob_len, &v);
        char path[512];
        snprintf(path, sizeof(path), "%s/%s.rows.txt", fx_dir(), names[f]);
        float *rows = read_matrix(path, &nr, &nc);
        snprintf(path, sizeof(path), "%s/%s.margin.txt", fx_dir(), names[f]);
        float *want = read_matrix(path, &pr, &pc);
        float *got = malloc(pc * sizeof(float));
        for (size_t r = 0; r < nr; r++) {
            float *row = rows + r * nc;
            int any = 0;
            for (size_t c = 0; c < nc; c++)
                if (fabsf(row[c]) == FLT_MAX) {
                    row[c] = row[c] > 0 ? INFINITY : -INFINITY;
                    any = 1;
                }
            if (!any)
                continue;
            swapped_rows++;
            refeval_predict(&v, row, 1, 1, got);
            for (size_t k = 0; k < pc; k++)
                ck_assert_msg(fx_bits(got[k]) == fx_bits(want[r * pc + k]), "%s row %zu", names[f],
                              r);
        }
        free(got);
        free(want);
        free(rows);
        free(blob);
        xgb_info_free(&info);
    }
    ck_assert_uint_gt(swapped_rows, 50);
}
END_TEST

/* The fixtures really exercise what they claim: multi-word categorical sets, dart weights != 1,
 * several trees per group and round, feature names with spaces. */
START_TEST(test_fixtures_cover_features)
{
    xgb_info info;
    size_t len;
    model_view v;
    void *blob = compile_fixture("cat_regression", &info, &len, &v);
    uint32_t cat_nodes = 0, multiword = 0;
    for (uint32_t i = 0; i < v.hdr->num_nodes; i++)
        if (v.nodes[i].left != -1 && (v.nodes[i].split & MODEL_NODE_CATEGORICAL)) {
            cat_nodes++;
            multiword += v.cats[v.nodes[i].u.cat] > 1;
        }
    ck_assert_uint_gt(cat_nodes, 10);
    ck_assert_uint_gt(multiword, 3);
    free(blob);
    xgb_info_free(&info);

    blob = compile_fixture("dart_logistic", &info, &len, &v);
    ck_assert(v.hdr->flags & MODEL_F_DART);
    ck_assert_str_eq(info.booster, "dart");
    uint32_t non_unit = 0;
    for (uint32_t t = 0; t < v.hdr->num_trees; t++)
        non_unit += v.trees[t].weight != 1.0f;
    ck_assert_uint_gt(non_unit, 5);
    free(blob);
    xgb_info_free(&info);

    blob = compile_fixture("binary_logistic_named", &info, &len, &v);
    ck_assert_uint_eq(info.n_feature_names, 7);
    ck_assert_str_eq(info.feature_names[0], "amount usd");
    ck_assert_str_eq(info.objective, "binary:logistic");
    ck_assert(info.base_score == 0.5f);
    free(blob);
    xgb_info_free(&info);

    blob = compile_fixture("parallel_softprob", &info, &len, &v);
    ck_assert_uint_eq(v.hdr->num_class, 3);
    ck_assert_uint_eq(v.hdr->num_trees, 5 * 3 * 2);
    free(blob);
    xgb_info_free(&info);

    blob = compile_fixture("cat_binary", &info, &len, &v);
    ck_assert_uint_eq(info.n_feature_types, 5);
    ck_assert_str_eq(info.feature_types[0], "c");
    ck_assert(info.base_score == 0.7f);
    free(blob);
    xgb_info_free(&info);
}
END_TEST

/* ---- hand-written models -------------------------------------------------------------------- */

/* One tree: node 0 splits feature 0 at 0.5 (missing -> left), leaves 1.0 (left) and 2.0. */
static const char *const TINY =
    "{\"learner\":{\"attributes\":{},\"feature_names\":[],\"feature_types\":[],"
    "\"gradient_booster\":{\"model\":{\"gbtree_model_param\":{\"num_parallel_tree\":\"1\","
    "\"num_trees\":\"1\",\"size_leaf_vector\":\"0\"},\"tree_info\":[0],\"trees\":[{"
    "\"base_weights\":[0,0,0],\"categories\":[],\"categories_nodes\":[],"
    "\"categories_segments\":[],\"categories_sizes\":[],\"default_left\":[1,0,0],\"id\":0,"
    "\"left_children\":[1,-1,-1],\"loss_changes\":[0,0,0],\"parents\":[2147483647,0,0],"
    "\"right_children\":[2,-1,-1],\"split_conditions\":[5E-1,1E0,2E0],"
    "\"split_indices\":[0,0,0],\"split_type\":[0,0,0],\"sum_hessian\":[1,1,1],"
    "\"tree_param\":{\"num_deleted\":\"0\",\"num_feature\":\"2\",\"num_nodes\":\"3\","
    "\"size_leaf_vector\":\"0\"}}]},\"name\":\"gbtree\"},"
    "\"learner_model_param\":{\"base_score\":\"5E-1\",\"boost_from_average\":\"1\","
    "\"num_class\":\"0\",\"num_feature\":\"2\",\"num_target\":\"1\"},"
    "\"objective\":{\"name\":\"reg:squarederror\",\"reg_loss_param\":{\"scale_pos_weight\":"
    "\"1\"}}},\"version\":[1,7,4]}";

/* Returns a malloc'd copy of s with the first `from` replaced by `to` (asserts it occurs). */
static char *replace(const char *s, const char *from, const char *to)
{
    const char *p = strstr(s, from);
    ck_assert_msg(p != NULL, "pattern %s not in template", from);
    size_t a = (size_t)(p - s), fl = strlen(from), tl = strlen(to), sl = strlen(s);
    char *o = malloc(sl - fl + tl + 1);
    memcpy(o, s, a);
    memcpy(o + a, to, tl);
    memcpy(o + a + tl, p + fl, sl - a - fl + 1);
    return o;
}

static int compile_str(const char *json, char *err, size_t errlen)
{
    void *blob = NULL;
    size_t len = 0;
    xgb_info info;
    int rc = xgb_compile(json, strlen(json), &info, &blob, &len, err, errlen);
    if (rc == XGB_OK) {
        model_view v;
        ck_assert(model_validate(blob, len, NULL, 0, &v, err, errlen) == 0);
        xgb_info_free(&info);
    } else {
        ck_assert(blob == NULL);
        ck_assert(err[0] != 0);
    }
    free(blob);
    return rc;
}

static void expect_mut(const char *from, const char *to, int want, const char *in_err)
{
    char *j = replace(TINY, from, to);
    char err[256] = "";
    int rc = compile_str(j, err, sizeof(err));
    ck_assert_msg(rc == want, "%s -> %s: got %s (%s), want %s", from, to, xgb_status_name(rc), err,
                  xgb_status_name(want));
    if (in_err != NULL)
        ck_assert_msg(strstr(err, in_err) != NULL, "error \"%s\" does not name \"%s\"", err,
                      in_err);
    free(j);
}

/* Hand computation: base 0.5 + leaf (x0 < 0.5 ? 1 : 2); NaN goes left (default_left). */
START_TEST(test_tiny_model_by_hand)
{
    void *blob;
    size_t len;
    char err[256];
    ck_assert_int_eq(xgb_compile(TINY, strlen(TINY), NULL, &blob, &len, err, sizeof(err)), XGB_OK);
    model_view v;
    ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof(err)), 0);
    float rows[] = {0.0f,     9.0f, 0.5f,      9.0f, nextafterf(0.5f, 0.0f), 0.0f, NAN, 0.0f,
                    INFINITY, 0.0f, -INFINITY, 0.0f};
    float out[6];
    refeval_predict(&v, rows, 6, 0, out);
    ck_assert(out[0] == 1.5f && out[1] == 2.5f && out[2] == 1.5f && out[3] == 1.5f &&
              out[4] == 2.5f && out[5] == 1.5f);
    free(blob);
}
END_TEST

/* Categorical node: categories {1, 40} go right (2-word bitset); everything else left, including
 * values beyond the bitset, negatives and >= 2^24 (xgboost 1.7 categorical.h Decision). */
START_TEST(test_categorical_by_hand)
{
    char *a = replace(TINY,
                      "\"categories\":[],\"categories_nodes\":[],"
                      "\"categories_segments\":[],\"categories_sizes\":[]",
                      "\"categories\":[40,1],\"categories_nodes\":[0],"
                      "\"categories_segments\":[0],\"categories_sizes\":[2]");
    char *j = replace(a, "\"split_type\":[0,0,0]", "\"split_type\":[1,0,0]");
    void *blob;
    size_t len;
    char err[256];
    ck_assert_int_eq(xgb_compile(j, strlen(j), NULL, &blob, &len, err, sizeof(err)), XGB_OK);
    model_view v;
    ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof(err)), 0);
    const float x[] = {1,  40, 1.9f, 40.5f, 0,     2,           39,       41,
                       63, 64, 1000, -1,    -0.5f, 16777216.0f, INFINITY, NAN};
    const float want[] = {2.5f, 2.5f, 2.5f, 2.5f, 1.5f, 1.5f, 1.5f, 1.5f,
                          1.5f, 1.5f, 1.5f, 1.5f, 1.5f, 1.5f, 1.5f, 1.5f};
    for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++) {
        float row[2] = {x[i], 0}, out;
        refeval_predict(&v, row, 1, 0, &out);
        ck_assert_msg(out == want[i], "category %g: %g, want %g", x[i], out, want[i]);
    }
    ck_assert_uint_eq(v.cats[v.nodes[0].u.cat], 2); /* max category 40 -> 2 words */
    free(blob);
    free(j);
    free(a);
}
END_TEST

START_TEST(test_hostile_structure)
{
    /* array lengths */
    expect_mut("\"left_children\":[1,-1,-1]", "\"left_children\":[1,-1]", XGB_INVALID,
               "left_children");
    expect_mut("\"split_conditions\":[5E-1,1E0,2E0]", "\"split_conditions\":[5E-1,1E0,2E0,3]",
               XGB_INVALID, "split_conditions");
    expect_mut("\"num_nodes\":\"3\"", "\"num_nodes\":\"4\"", XGB_INVALID, NULL);
    /* children out of range, cycles, shared child */
    expect_mut("\"left_children\":[1,-1,-1]", "\"left_children\":[3,-1,-1]", XGB_INVALID, NULL);
    expect_mut("\"left_children\":[1,-1,-1]", "\"left_children\":[-2,-1,-1]", XGB_INVALID, NULL);
    expect_mut("\"left_children\":[1,-1,-1]", "\"left_children\":[0,-1,-1]", XGB_INVALID, "twice");
    expect_mut("\"right_children\":[2,-1,-1]", "\"right_children\":[1,-1,-1]", XGB_INVALID,
               "twice");
    expect_mut("\"left_children\":[1,-1,-1],", "\"left_children\":[1,0,-1],", XGB_INVALID, NULL);
    /* split feature >= num_feature (2) and exactly at the bound - 1 */
    expect_mut("\"split_indices\":[0,0,0]", "\"split_indices\":[2,0,0]", XGB_INVALID, "feature");
    expect_mut("\"split_indices\":[0,0,0]", "\"split_indices\":[1,0,0]", XGB_OK, NULL);
    /* tree_info >= num_class */
    expect_mut("\"tree_info\":[0]", "\"tree_info\":[1]", XGB_INVALID, "tree_info");
    /* tree ids */
    expect_mut("\"id\":0", "\"id\":1", XGB_INVALID, "id");
    expect_mut("\"id\":0,", "", XGB_INVALID, "id");
    expect_mut("\"num_trees\":\"1\"", "\"num_trees\":\"2\"", XGB_INVALID, NULL);
    /* unsupported things are named */
    expect_mut("\"name\":\"gbtree\"", "\"name\":\"gblinear\"", XGB_UNSUPPORTED, "gblinear");
    expect_mut("reg:squarederror", "reg:quantileerror", XGB_UNSUPPORTED, "reg:quantileerror");
    /* vector leaves must match num_target; multi-target models compile (tests/unit/test_xgbfmt.c
     * checks their outputs); a vector base_score needs one value per output group */
    expect_mut("\"size_leaf_vector\":\"0\"}}", "\"size_leaf_vector\":\"3\"}}", XGB_INVALID,
               "vector");
    expect_mut("\"num_target\":\"1\"", "\"num_target\":\"2\"", XGB_OK, NULL);
    expect_mut("\"base_score\":\"5E-1\"", "\"base_score\":\"[5E-1,1E0]\"", XGB_INVALID,
               "base_score");
    expect_mut("\"base_score\":\"5E-1\"", "\"base_score\":\"[5E-1]\"", XGB_OK, NULL);
    /* not a model at all */
    expect_mut("\"learner\":", "\"learnr\":", XGB_INVALID, "learner");
    /* categorical split listing no categories */
    expect_mut("\"split_type\":[0,0,0]", "\"split_type\":[1,0,0]", XGB_INVALID, "categor");
    /* logistic needs base_score in (0,1) */
    char *j = replace(TINY, "reg:squarederror", "binary:logistic");
    char *k = replace(j, "\"base_score\":\"5E-1\"", "\"base_score\":\"1E0\"");
    char err[256];
    ck_assert_int_eq(compile_str(k, err, sizeof(err)), XGB_INVALID);
    free(k);
    free(j);
}
END_TEST

START_TEST(test_hostile_tokens)
{
    /* NaN tokens are fine as split values, nowhere else */
    expect_mut("[5E-1,1E0,2E0]", "[NaN,1E0,-Infinity]", XGB_OK, NULL);
    expect_mut("\"left_children\":[1,-1,-1]", "\"left_children\":[NaN,-1,-1]", XGB_INVALID, NULL);
    expect_mut("\"id\":0", "\"id\":NaN", XGB_INVALID, NULL);
    expect_mut("\"num_nodes\":\"3\"", "\"num_nodes\":NaN", XGB_INVALID, NULL);
    expect_mut("\"num_nodes\":\"3\"", "\"num_nodes\":\"NaN\"", XGB_INVALID, NULL);
    expect_mut("\"base_score\":\"5E-1\"", "\"base_score\":\"NaN\"", XGB_INVALID, NULL);
    expect_mut("\"tree_info\":[0]", "\"tree_info\":[Infinity]", XGB_INVALID, NULL);
    expect_mut("\"attributes\":{}", "\"attributes\":{NaN:1}", XGB_INVALID, NULL);
    expect_mut("\"attributes\":{}", "\"attributes\":nan", XGB_INVALID, NULL);
    expect_mut("\"attributes\":{}", "\"attributes\":NaNa", XGB_INVALID, NULL);
    expect_mut("\"attributes\":{}", "\"attributes\":-NaN", XGB_INVALID, NULL);
    /* huge numbers */
    expect_mut("[5E-1,1E0,2E0]", "[1E39,1E0,2E0]", XGB_INVALID, NULL);
    expect_mut("[5E-1,1E0,2E0]", "[1E-50,1E0,2E0]", XGB_OK, NULL); /* underflows to 0: fine */
    expect_mut("\"left_children\":[1,-1,-1]", "\"left_children\":[99999999999999999999999,-1,-1]",
               XGB_INVALID, NULL);
    expect_mut("\"left_children\":[1,-1,-1]", "\"left_children\":[4294967297,-1,-1]", XGB_INVALID,
               NULL);
    expect_mut("\"num_nodes\":\"3\"", "\"num_nodes\":\"99999999999\"", XGB_INVALID, NULL);
    expect_mut("\"num_feature\":\"2\",\"num_target\"",
               "\"num_feature\":\"4294967298\","
               "\"num_target\"",
               XGB_INVALID, NULL);
    expect_mut("[5E-1,1E0,2E0]",
               "[0.00000000000000000000000000000000000000000000000000000000000000001,"
               "1E0,2E0]",
               XGB_INVALID, NULL); /* > XGB_MAX_NUMBER_CHARS */
    /* grammar */
    expect_mut("[5E-1,1E0,2E0]", "[5E-1,1E0,2E0,]", XGB_INVALID, NULL);
    expect_mut("[5E-1,1E0,2E0]", "[05,1E0,2E0]", XGB_INVALID, NULL);
    expect_mut("[5E-1,1E0,2E0]", "[.5,1E0,2E0]", XGB_INVALID, NULL);
    expect_mut("[5E-1,1E0,2E0]", "[5E,1E0,2E0]", XGB_INVALID, NULL);
    expect_mut("\"version\":[1,7,4]", "\"version\":[1,7,4]}", XGB_INVALID, "trailing");
    expect_mut("\"gbtree\"", "\"gb\\x\"", XGB_INVALID, NULL);
    expect_mut("\"gbtree\"", "\"gb\ttree\"", XGB_INVALID, NULL);
    expect_mut("\"gbtree\"", "\"\\u0067btree\"", XGB_OK, NULL); /* escapes decode */
}
END_TEST

/* Depth bound: nesting depth 64 (root object = 1) is accepted, 65 is not. */
START_TEST(test_nesting_depth)
{
    for (int depth = 63; depth <= 66; depth++) {
        int k = depth - 1; /* arrays inside the root object */
        size_t cap = (size_t)k * 2 + 64;
        char *nest = malloc(cap);
        size_t o = 0;
        o += (size_t)snprintf(nest + o, cap - o, "\"x\":");
        for (int i = 0; i < k; i++)
            nest[o++] = '[';
        for (int i = 0; i < k; i++)
            nest[o++] = ']';
        o += (size_t)snprintf(nest + o, cap - o, ",\"learner\":");
        char *j = replace(TINY, "\"learner\":", nest);
        char err[256] = "";
        int rc = compile_str(j, err, sizeof(err));
        ck_assert_msg(rc == (depth <= XGB_MAX_DEPTH ? XGB_OK : XGB_INVALID), "depth %d: %s", depth,
                      err);
        free(j);
        free(nest);
    }
    /* a very deep document must not blow the stack */
    size_t n = 1u << 20;
    char *deep = malloc(n + 1);
    memset(deep, '[', n);
    deep[n] = 0;
    char err[256];
    ck_assert_int_eq(compile_str(deep, err, sizeof(err)), XGB_INVALID);
    free(deep);
}
END_TEST

/* Every strict prefix of a real model is rejected as invalid, never crashes. */
START_TEST(test_truncated_json)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/cat_binary.model.json", fx_dir());
    size_t len;
    char *json = fx_slurp(path, &len);
    ck_assert(json != NULL);
    size_t cuts = 0;
    for (size_t cut = 0; cut < len; cut += (cut < 4096 ? 1 : 97)) {
        char *buf = malloc(cut ? cut : 1); /* exact size: ASan catches reads past the cut */
        memcpy(buf, json, cut);
        void *blob = NULL;
        size_t bl;
        char err[256];
        int rc = xgb_compile(buf, cut, NULL, &blob, &bl, err, sizeof(err));
        ck_assert_msg(rc == XGB_INVALID, "cut at %zu: %s", cut, xgb_status_name(rc));
        ck_assert(blob == NULL);
        free(buf);
        cuts++;
    }
    ck_assert_uint_gt(cuts, 4000);
    free(json);
}
END_TEST

/* Random corruption of valid blobs: model_validate must accept or reject without reading out of
 * bounds, and whatever it accepts must evaluate without crashing (run under ASan). */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

START_TEST(test_blob_mutations)
{
    static const char *const fx[] = {"cat_regression", "dart_softprob", "multi_softmax",
                                     "nan_heavy"};
    size_t accepted = 0, rejected = 0;
    for (size_t f = 0; f < sizeof(fx) / sizeof(fx[0]); f++) {
        xgb_info info;
        size_t len;
        model_view v;
        void *blob = compile_fixture(fx[f], &info, &len, &v);
        uint32_t nf = v.hdr->num_feature;
        float *rows = malloc(16 * nf * sizeof(float));
        float *out = malloc(16 * MODEL_MAX_CLASSES * sizeof(float));
        char err[256];
        /* every truncation is rejected */
        for (size_t cut = 0; cut < len; cut += (cut < 256 ? 1 : 13)) {
            uint8_t *b = malloc(cut ? cut : 1);
            memcpy(b, blob, cut);
            ck_assert_int_eq(model_validate(b, cut, NULL, 0, &v, err, sizeof(err)), -1);
            free(b);
        }
        for (int it = 0; it < 4000; it++) {
            uint8_t *b = malloc(len);
            memcpy(b, blob, len);
            int nmut = 1 + (int)(rnd() % 4);
            for (int m = 0; m < nmut; m++) {
                size_t at = (rnd() % (len / 4)) * 4;
                uint32_t val;
                switch (rnd() % 5) {
                case 0:
                    val = rnd();
                    break;
                case 1:
                    val = rnd() % 64;
                    break;
                case 2:
                    val = (uint32_t)-1 - rnd() % 4;
                    break;
                case 3:
                    val = 0;
                    break;
                default:
                    val = ((uint32_t *)b)[at / 4] ^ (1u << (rnd() % 32));
                    break;
                }
                memcpy(b + at, &val, 4);
            }
            if (model_validate(b, len, NULL, 0, &v, err, sizeof(err)) == 0) {
                accepted++;
                for (size_t i = 0; i < 16 * nf; i++) {
                    uint32_t r = rnd();
                    rows[i] = (r % 7 == 0) ? NAN : (float)((int32_t)r % 200) / 7.0f;
                }
                refeval_predict(&v, rows, 16, 0, out);
                refeval_predict(&v, rows, 16, 1, out);
            } else {
                rejected++;
            }
            free(b);
        }
        free(rows);
        free(out);
        free(blob);
        xgb_info_free(&info);
    }
    printf("  blob mutations: %zu accepted (harmless), %zu rejected\n", accepted, rejected);
    ck_assert_uint_gt(rejected, 1000);
}
END_TEST

/* Specific validator rules, each on a copy of a real blob. */
START_TEST(test_validate_rules)
{
    xgb_info info;
    size_t len;
    model_view v;
    void *blob = compile_fixture("cat_regression", &info, &len, &v);
    char err[256];
    uint8_t *b = malloc(len);
    model_view w;
#define FRESH() memcpy(b, blob, len)
#define HDR ((model_file_header *)b)
#define TREES ((model_tree_rec *)(b + MODEL_HEADER_SIZE))
#define NODES ((model_node_rec *)(b + MODEL_HEADER_SIZE + 16 * (size_t)HDR->num_trees))
    FRESH();
    ck_assert_int_eq(model_validate(b, len, NULL, 0, &w, err, sizeof(err)), 0);
    ck_assert_int_eq(model_validate(b + 4, len - 4, NULL, 0, &w, err, sizeof(err)), -1);
    FRESH();
    HDR->magic ^= 1;
    ck_assert_int_eq(model_validate(b, len, NULL, 0, &w, err, sizeof(err)), -1);
    FRESH();
    HDR->objective = MODEL_OBJ_MAX;
    ck_assert_int_eq(model_validate(b, len, NULL, 0, &w, err, sizeof(err)), -1);
    FRESH();
    HDR->num_class = 2; /* not multi: two targets (xgboost num_target), each scored alone */
    ck_assert_int_eq(model_validate(b, len, NULL, 0, &w, err, sizeof(err)), 0);
    FRESH();
    HDR->num_class = 0;
    ck_assert_int_eq(model_validate(b, len, NULL, 0, &w, err, sizeof(err)), -1);
    FRESH();
    HDR->num_class = MODEL_MAX_CLASSES + 1;
    ck_assert_int_eq(model_validate(b, len, NULL, 0, &w, err, sizeof(err)), -1);
    FRESH();
    TREES[1].group = 1;
    ck_assert_int_eq(model_validate(b, len, NULL, 0, &w, err, sizeof(err)), -1);
    FRESH();
    TREES[0].weight = 0.5f; /* weights only for dart */
    ck_assert_int_eq(model_validate(b, len, NULL, 0, &w, err, sizeof(err)), -1);
    FRESH();
    NODES[0].split = (NODES[0].split & ~MODEL_NODE_FEATURE_MASK) | HDR->num_feature;
    ck_assert_int_eq(model_validate(b, len, NULL, 0, &w, err, sizeof(err)), -1);
    FRESH();
    NODES[0].split = (NODES[0].split & ~MODEL_NODE_FEATURE_MASK) | (HDR->num_feature - 1);
    ck_assert_int_eq(model_validate(b, len, NULL, 0, &w, err, sizeof(err)), 0);
    FRESH();
    NODES[0].left = 0; /* cycle to itself */
    NODES[0].right = 1;
    ck_assert_int_eq(model_validate(b, len, NULL, 0, &w, err, sizeof(err)), -1);
    FRESH();
    NODES[0].right = NODES[0].left; /* shared child */
    ck_assert_int_eq(model_validate(b, len, NULL, 0, &w, err, sizeof(err)), -1);
    FRESH();
    HDR->base_margin = NAN;
    ck_assert_int_eq(model_validate(b, len, NULL, 0, &w, err, sizeof(err)), -1);
    /* categorical set pointing past cats[] */
    FRESH();
    for (uint32_t i = 0; i < HDR->num_nodes; i++)
        if (NODES[i].left != -1 && (NODES[i].split & MODEL_NODE_CATEGORICAL)) {
            NODES[i].u.cat = HDR->num_cat_words - 1;
            break;
        }
    ck_assert_int_eq(model_validate(b, len, NULL, 0, &w, err, sizeof(err)), -1);
    free(b);
    free(blob);
    xgb_info_free(&info);
}
END_TEST

static Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_fixtures_match_xgboost);
    tcase_add_test(tc, test_inf_behaves_as_flt_max);
    tcase_add_test(tc, test_fixtures_cover_features);
    suite_add_tcase(s, tc);
    TCase *th = tcase_create("hostile");
    tcase_set_timeout(th, 600);
    tcase_add_test(th, test_tiny_model_by_hand);
    tcase_add_test(th, test_categorical_by_hand);
    tcase_add_test(th, test_hostile_structure);
    tcase_add_test(th, test_hostile_tokens);
    tcase_add_test(th, test_nesting_depth);
    tcase_add_test(th, test_truncated_json);
    tcase_add_test(th, test_blob_mutations);
    tcase_add_test(th, test_validate_rules);
    suite_add_tcase(s, th);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(model_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
