/* test_lgbm.c - the LightGBM pipeline: lgbm_compile (common/lgbmmodel.c) -> model_validate
 * (format 2, common/model.c) -> refeval_lgbm_predict (common/refeval.c) against LightGBM 4.6's own
 * predictions and raw scores (tests/fixtures/refs/lgbm_*), bit for bit; hand-computed small
 * models for every rule; and hostile files (400/422, never a crash). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures_io.h"
#include "fx_lgbm.h"
#include "lgbmmodel.h"
#include "model.h"
#include "model_build.h"
#include "hp_k_score.h"
#include "hp_kernels.h"
#include "hp_lgbm.h"
#include "hp_scorer.h"
#include "hp_store.h"
#include "wire.h"
#include "refeval.h"
#include "sha256.h"

/* Compiles text (NUL-terminated) and validates the blob; returns the status. */
static int compile(const char *text, void **blob, size_t *len, model_view *v, lgbm_info *info,
                   char *err, size_t errlen)
{
    int st = lgbm_compile(text, strlen(text), info, blob, len, err, errlen);
    if (st == LGBM_OK)
        ck_assert_int_eq(model_validate(*blob, *len, NULL, 0, v, err, errlen), 0);
    return st;
}

/* Every reference case, both modes, every value bit-identical to LightGBM. */
START_TEST(test_refs_bit_identical)
{
    for (int i = 0; fx_lgbm_cases[i]; i++) {
        fx_lgbm_case c;
        ck_assert_msg(fx_lgbm_load(fx_lgbm_cases[i], &c) == 0, "cannot read %s", fx_lgbm_cases[i]);
        void *blob = NULL;
        size_t len;
        model_view v;
        lgbm_info info;
        char err[256];
        int st = lgbm_compile(c.model, c.model_len, &info, &blob, &len, err, sizeof err);
        ck_assert_msg(st == LGBM_OK, "%s: %s", fx_lgbm_cases[i], err);
        ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
        ck_assert_uint_eq(v.format, MODEL_FORMAT_LGBM);
        ck_assert_uint_eq(info.num_feature, c.ncols);
        ck_assert_str_eq(info.version, "v4");
        ck_assert_uint_eq(info.n_feature_names, c.ncols);
        for (int margin = 0; margin <= 1; margin++) {
            size_t k = margin ? c.nmargin : c.npred;
            const double *want = margin ? c.margin : c.pred;
            ck_assert_uint_eq(model_outputs_per_row(&v, margin), k);
            double *got = malloc(c.nrows * k * sizeof(double));
            refeval_lgbm_predict(&v, c.rows, c.nrows, margin, got);
            size_t bad = fx_dmismatch(got, want, c.nrows * k);
            for (size_t j = 0; j < c.nrows * k && bad; j++)
                if (fx_dbits(got[j]) != fx_dbits(want[j])) {
                    fprintf(stderr, "%s margin=%d [%zu]: got %.17g want %.17g\n", fx_lgbm_cases[i],
                            margin, j, got[j], want[j]);
                    break;
                }
            ck_assert_msg(bad == 0, "%s margin=%d: %zu of %zu differ", fx_lgbm_cases[i], margin,
                          bad, c.nrows * k);
            free(got);
        }
        free(blob);
        lgbm_info_free(&info);
        fx_lgbm_free(&c);
    }
}
END_TEST

/* A hand-written model: every rule computed by hand below. */
static const char *const tiny_fmt =
    "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=2\n"
    "objective=%s\nfeature_names=a b c\nfeature_infos=none none none\ntree_sizes=1 1\n\n"
    "Tree=0\nnum_leaves=4\nnum_cat=1\nsplit_feature=0 1 2\nsplit_gain=1 1 1\n"
    "threshold=0.5 0 inf\ndecision_type=%d 1 %d\nleft_child=1 -1 -3\nright_child=2 -2 -4\n"
    "leaf_value=1 2 4 8\nleaf_weight=1 1 1 1\nleaf_count=1 1 1 1\ninternal_value=0 0 0\n"
    "internal_weight=0 0 0\ninternal_count=1 1 1\ncat_boundaries=0 1\ncat_threshold=5\n"
    "is_linear=0\nshrinkage=1\n\n\n"
    "Tree=1\nnum_leaves=1\nnum_cat=0\nsplit_feature=\nsplit_gain=\nthreshold=\ndecision_type=\n"
    "left_child=\nright_child=\nleaf_value=0.25\nleaf_weight=\nleaf_count=\ninternal_value=\n"
    "internal_weight=\ninternal_count=\nis_linear=0\nshrinkage=1\n\n\nend of trees\n\n"
    "feature_importances:\n";

static double tiny_raw(const char *obj, int dt0, int dt2, double a, double b, double c)
{
    char text[2048], err[256];
    snprintf(text, sizeof text, tiny_fmt, obj, dt0, dt2);
    void *blob;
    size_t len;
    model_view v;
    lgbm_info info;
    int st = compile(text, &blob, &len, &v, &info, err, sizeof err);
    ck_assert_msg(st == LGBM_OK, "%s", err);
    double row[3] = {a, b, c}, out;
    refeval_lgbm_predict(&v, row, 1, 1, &out);
    free(blob);
    lgbm_info_free(&info);
    return out;
}

START_TEST(test_rules_by_hand)
{
    /* node 0: feature a, numerical x <= 0.5 -> node 1 (categorical b, set {0, 2} goes left: leaf
     * 0 = 1, else leaf 1 = 2); else node 2 (c <= inf -> leaf 2 = 4, else leaf 3 = 8); plus the
     * one-leaf tree 0.25.  dt0 = 2: missing None, default left. */
    ck_assert(tiny_raw("regression", 2, 2, 0.5, 0, 0) == 1.25);    /* x == threshold goes left */
    ck_assert(tiny_raw("regression", 2, 2, 0.5, 1, 0) == 2.25);    /* category 1 not in {0,2} */
    ck_assert(tiny_raw("regression", 2, 2, 0.5, 2.9, 0) == 1.25);  /* 2.9 -> category 2 */
    ck_assert(tiny_raw("regression", 2, 2, 0.5, -0.5, 0) == 1.25); /* (int)-0.5 == 0 */
    ck_assert(tiny_raw("regression", 2, 2, 0.5, -1, 0) == 2.25);   /* negative goes right */
    ck_assert(tiny_raw("regression", 2, 2, 0.5, NAN, 0) == 2.25);  /* NaN goes right */
    ck_assert(tiny_raw("regression", 2, 2, 0.5, 1e10, 0) == 2.25); /* beyond int: right */
    ck_assert(tiny_raw("regression", 2, 2, 0.5, 64, 0) == 2.25);   /* past the words: right */
    ck_assert(tiny_raw("regression", 2, 2, 0.50000000000000011, 0, 0) == 4.25);
    ck_assert(tiny_raw("regression", 2, 2, 1, 0, 1e308) == 4.25); /* x <= inf */
    ck_assert(tiny_raw("regression", 2, 2, 1, 0, INFINITY) == 4.25);
    /* missing None: NaN -> 0.0 -> 0 <= 0.5 left, whatever default_left says */
    ck_assert(tiny_raw("regression", 0, 2, NAN, 0, 0) == 1.25);
    /* missing NaN (8 = right, 10 = left): NaN takes the default side */
    ck_assert(tiny_raw("regression", 8, 2, NAN, 0, 0) == 4.25);
    ck_assert(tiny_raw("regression", 10, 2, NAN, 0, 0) == 1.25);
    /* missing Zero (4 = right, 6 = left): |x| <= kZeroThreshold and NaN take the default */
    ck_assert(tiny_raw("regression", 4, 2, 0.0, 0, 0) == 4.25);
    ck_assert(tiny_raw("regression", 4, 2, 1e-36, 0, 0) == 4.25);
    ck_assert(tiny_raw("regression", 4, 2, NAN, 0, 0) == 4.25);
    ck_assert(tiny_raw("regression", 6, 2, 2.0, 0, 0) == 4.25);
    ck_assert(tiny_raw("regression", 4, 2, -3.0, 0, 0) == 1.25);
    /* the C API's zero drop feeds categories too: 1e-36 is category 0 */
    ck_assert(tiny_raw("regression", 2, 2, 0.5, 1e-36, 0) == 1.25);
    /* c: Zero-type default right on the inf threshold; -0.0 is zero */
    ck_assert(tiny_raw("regression", 2, 4, 1, 0, -0.0) == 8.25);
    /* (double)1e-35f is <= kZeroThreshold: zero; 2e-35 is not */
    ck_assert(tiny_raw("regression", 2, 4, 1, 0, (double)1e-35f) == 8.25);
    ck_assert(tiny_raw("regression", 2, 4, 1, 0, 2e-35) == 4.25);
}
END_TEST

static double tiny_pred(const char *obj, double a)
{
    char text[2048], err[256];
    snprintf(text, sizeof text, tiny_fmt, obj, 2, 2);
    void *blob;
    size_t len;
    model_view v;
    lgbm_info info;
    int st = compile(text, &blob, &len, &v, &info, err, sizeof err);
    ck_assert_msg(st == LGBM_OK, "%s: %s", obj, err);
    double row[3] = {a, 1, 0}, out; /* raw = 2.25 (a <= 0.5) or 4.25 */
    refeval_lgbm_predict(&v, row, 1, 0, &out);
    free(blob);
    lgbm_info_free(&info);
    return out;
}

START_TEST(test_objectives_by_hand)
{
    ck_assert(tiny_pred("binary sigmoid:1", 0) == 1.0 / (1.0 + exp(-2.25)));
    ck_assert(tiny_pred("binary sigmoid:0.7", 0) == 1.0 / (1.0 + exp(-lgbm_atof("0.7") * 2.25)));
    ck_assert(tiny_pred("regression", 0) == 2.25);
    ck_assert(tiny_pred("regression sqrt", 0) == 2.25 * 2.25);
    ck_assert(tiny_pred("regression_l1", 1) == 4.25);
    ck_assert(tiny_pred("huber", 1) == 4.25);
    ck_assert(tiny_pred("fair", 1) == 4.25);
    ck_assert(tiny_pred("quantile", 1) == 4.25);
    ck_assert(tiny_pred("mape", 1) == 4.25);
    ck_assert(tiny_pred("poisson", 0) == exp(2.25));
    ck_assert(tiny_pred("gamma", 0) == exp(2.25));
    ck_assert(tiny_pred("tweedie tweedie_variance_power:1.5", 0) == exp(2.25));
    ck_assert(tiny_pred("cross_entropy", 0) == 1.0 / (1.0 + exp(-2.25)));
    ck_assert(tiny_pred("cross_entropy_lambda", 0) == log1p(exp(2.25)));
    ck_assert(tiny_pred("lambdarank", 0) == 2.25);
    ck_assert(tiny_pred("rank_xendcg", 0) == 2.25);
    /* LightGBM's Atof is not strtod: this is its own arithmetic, recomputed by hand */
    ck_assert(lgbm_atof("1") == 1.0);
    ck_assert(lgbm_atof("0.5") == 5.0 / 10.0);
    ck_assert(lgbm_atof("12.25e1") == (12.0 + 25.0 / 100.0) * 10.0);
    ck_assert(lgbm_atof("-3e-2") == -(3.0 / 100.0));
}
END_TEST

/* multiclass / multiclassova: three one-leaf trees per iteration, two iterations. */
START_TEST(test_multiclass_by_hand)
{
    const char *objs[] = {"multiclass num_class:3", "multiclassova num_class:3 sigmoid:2"};
    for (int o = 0; o < 2; o++) {
        char text[4096], err[256];
        int n = snprintf(text, sizeof text,
                         "tree\nversion=v4\nnum_class=3\nnum_tree_per_iteration=3\n"
                         "label_index=0\nmax_feature_idx=0\nobjective=%s\n\n",
                         objs[o]);
        const double leaves[6] = {0.5, -1.0, 0.25, 0.125, 2.0, -0.5};
        for (int t = 0; t < 6; t++)
            n += snprintf(text + n, sizeof text - (size_t)n,
                          "Tree=%d\nnum_leaves=1\nnum_cat=0\nleaf_value=%.17g\nis_linear=0\n"
                          "shrinkage=1\n\n\n",
                          t, leaves[t]);
        snprintf(text + n, sizeof text - (size_t)n, "end of trees\n");
        void *blob;
        size_t len;
        model_view v;
        lgbm_info info;
        ck_assert_msg(compile(text, &blob, &len, &v, &info, err, sizeof err) == LGBM_OK, "%s", err);
        double row = 1.0, raw[3], pred[3];
        refeval_lgbm_predict(&v, &row, 1, 1, raw);
        refeval_lgbm_predict(&v, &row, 1, 0, pred);
        double want[3] = {0.0 + 0.5 + 0.125, 0.0 - 1.0 + 2.0, 0.0 + 0.25 - 0.5};
        for (int k = 0; k < 3; k++)
            ck_assert(raw[k] == want[k]);
        if (o == 0) {
            double mx = 1.0, e[3], s = 0;
            for (int k = 0; k < 3; k++) {
                e[k] = exp(want[k] - mx);
                s += e[k];
            }
            for (int k = 0; k < 3; k++)
                ck_assert(pred[k] == e[k] / s);
        } else {
            for (int k = 0; k < 3; k++)
                ck_assert(pred[k] == 1.0 / (1.0 + exp(-2.0 * want[k])));
        }
        free(blob);
        lgbm_info_free(&info);
    }
}
END_TEST

/* Hostile and unsupported files: the status and never a crash. */
START_TEST(test_hostile_files)
{
    char text[4096], err[256];
    void *blob;
    size_t len;
    lgbm_info info;
    struct {
        const char *obj;
        int dt0;
        const char *from, *to;
        int want;
    } cases[] = {
        {"regression", 2, "is_linear=0\nshrinkage=1\n\n\nTree=1",
         "is_linear=1\nshrinkage=1\n\n\nTree=1", LGBM_UNSUPPORTED},
        {"custom", 2, NULL, NULL, LGBM_UNSUPPORTED},
        {"binary", 2, NULL, NULL, LGBM_INVALID},            /* no sigmoid */
        {"binary sigmoid:-1", 2, NULL, NULL, LGBM_INVALID}, /* sigmoid <= 0 */
        {"regression", 14, NULL, NULL, LGBM_INVALID},       /* missing type 3 */
        {"regression", 2, "version=v4", "version=v9", LGBM_UNSUPPORTED},
        {"regression", 2, "version=v4\n", "", LGBM_INVALID},
        {"regression", 2, "max_feature_idx=2", "max_feature_idx=2147483648", LGBM_INVALID},
        {"regression", 2, "max_feature_idx=2", "max_feature_idx=2147483647", LGBM_UNSUPPORTED},
        {"regression", 2, "num_leaves=4", "num_leaves=5", LGBM_INVALID},
        {"regression", 2, "num_leaves=4", "num_leaves=99999999999", LGBM_INVALID},
        {"regression", 2, "left_child=1 -1 -3", "left_child=1 1 -3", LGBM_INVALID},  /* cycle */
        {"regression", 2, "left_child=1 -1 -3", "left_child=1 -2 -3", LGBM_INVALID}, /* shared */
        {"regression", 2, "left_child=1 -1 -3", "left_child=1 -9 -3", LGBM_INVALID},
        {"regression", 2, "split_feature=0 1 2", "split_feature=0 3 2", LGBM_INVALID},
        {"regression", 2, "cat_boundaries=0 1", "cat_boundaries=0 2", LGBM_INVALID},
        {"regression", 2, "cat_boundaries=0 1", "cat_boundaries=1 1", LGBM_INVALID},
        {"regression", 2, "threshold=0.5 0 inf", "threshold=0.5 1 inf", LGBM_INVALID},
        {"regression", 2, "threshold=0.5 0 inf", "threshold=0.5 -1 inf", LGBM_INVALID},
        {"regression", 2, "threshold=0.5 0 inf", "threshold=0.5 0 bogus", LGBM_INVALID},
        {"regression", 2, "threshold=0.5 0 inf", "threshold=0x1p-1 0 inf", LGBM_INVALID},
        {"regression", 2, "threshold=0.5 0 inf", "threshold=0.5 0 nan(1)", LGBM_INVALID},
        {"regression", 2, "cat_threshold=5", "cat_threshold=4294967296", LGBM_INVALID},
        {"regression", 2, "end of trees", "end of treez", LGBM_INVALID},
        {"regression", 2, "Tree=1", "Tree=7", LGBM_INVALID},
        {"regression", 2, "num_class=1", "num_class=2", LGBM_UNSUPPORTED},
        {"regression", 2, "feature_names=a b c", "feature_names=a b", LGBM_INVALID},
        {"regression", 2, "\nobjective", "\naverage_output\nobjective", LGBM_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char base[4096];
        snprintf(base, sizeof base, tiny_fmt, cases[i].obj, cases[i].dt0, 2);
        if (cases[i].from) {
            char *at = strstr(base, cases[i].from);
            ck_assert_msg(at != NULL, "case %zu: pattern", i);
            size_t pre = (size_t)(at - base);
            snprintf(text, sizeof text, "%.*s%s%s", (int)pre, base, cases[i].to,
                     at + strlen(cases[i].from));
        } else {
            snprintf(text, sizeof text, "%s", base);
        }
        int st = lgbm_compile(text, strlen(text), &info, &blob, &len, err, sizeof err);
        ck_assert_msg(st == cases[i].want, "case %zu: status %d (%s), want %d", i, st, err,
                      cases[i].want);
        ck_assert_ptr_null(blob);
    }
    /* every prefix of a real model: refused (truncated), never a crash */
    fx_lgbm_case c;
    ck_assert_int_eq(fx_lgbm_load("lgbm_j_categorical", &c), 0);
    size_t step = c.model_len / 3000 + 1;
    for (size_t n = 0; n < c.model_len; n += step) {
        int st = lgbm_compile(c.model, n, NULL, &blob, &len, err, sizeof err);
        if (st == LGBM_OK) { /* only once "end of trees" is in */
            ck_assert_ptr_nonnull(strstr(c.model, "end of trees"));
            ck_assert_uint_ge(n, (size_t)(strstr(c.model, "end of trees") - c.model) + 12);
            free(blob);
        }
    }
    /* byte flips: any status, validated blob when OK */
    for (size_t i = 0; i < 2000; i++) {
        char *m = malloc(c.model_len);
        memcpy(m, c.model, c.model_len);
        size_t at = ((size_t)i * 2654435761u) % c.model_len;
        m[at] = (char)(m[at] ^ (1 << (i % 8)));
        int st = lgbm_compile(m, c.model_len, NULL, &blob, &len, err, sizeof err);
        if (st == LGBM_OK) {
            model_view v;
            ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
            free(blob);
        }
        free(m);
    }
    fx_lgbm_free(&c);
}
END_TEST

/* A format-2 blob with any byte changed is either rejected or still valid. */
START_TEST(test_blob_mutations)
{
    fx_lgbm_case c;
    ck_assert_int_eq(fx_lgbm_load("lgbm_j_categorical", &c), 0);
    void *blob;
    size_t len;
    char err[256];
    ck_assert_int_eq(lgbm_compile(c.model, c.model_len, NULL, &blob, &len, err, sizeof err),
                     LGBM_OK);
    uint8_t *b = malloc(len);
    model_view v;
    double row[8] = {0};
    for (size_t i = 0; i < 20000; i++) {
        memcpy(b, blob, len);
        size_t at = ((size_t)i * 2654435761u) % len;
        b[at] ^= (uint8_t)(1u << (i % 8));
        if (model_validate(b, len, NULL, 0, &v, err, sizeof err) == 0) {
            double out[2];
            refeval_lgbm_predict(&v, row, 1, 1, out); /* must stay in bounds (ASan) */
        }
    }
    /* format-1 header fields on a format-2 blob are not accepted as format 1 */
    memcpy(b, blob, len);
    ((model_file_header *)b)->format_version = MODEL_FORMAT_VERSION;
    ck_assert_int_eq(model_validate(b, len, NULL, 0, &v, err, sizeof err), -1);
    free(b);
    free(blob);
    fx_lgbm_free(&c);
}
END_TEST

/* Builds the worker layout of a validated view into a malloc'd block (the arena's job). */
static const hp_lgbm *worker_build(const model_view *v, void **mem)
{
    size_t n = hp_lgbm_bytes(v);
    *mem = aligned_alloc(64, (n + 63) / 64 * 64);
    ck_assert_ptr_nonnull(*mem);
    const hp_lgbm *m = hp_lgbm_build(v, *mem, n);
    ck_assert_ptr_nonnull(m);
    return m;
}

/* The worker's walk on every reference case: bit-identical to LightGBM. */
START_TEST(test_worker_refs_bit_identical)
{
    char perr[128];
    hp_pool *pool = hp_pool_create(1, perr, sizeof perr);
    ck_assert_ptr_nonnull(pool);
    for (int i = 0; fx_lgbm_cases[i]; i++) {
        fx_lgbm_case c;
        ck_assert_int_eq(fx_lgbm_load(fx_lgbm_cases[i], &c), 0);
        void *blob, *mem;
        size_t len;
        model_view v;
        char err[256];
        ck_assert_int_eq(lgbm_compile(c.model, c.model_len, NULL, &blob, &len, err, sizeof err),
                         LGBM_OK);
        ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
        const hp_lgbm *m = worker_build(&v, &mem);
        free(blob); /* the layout points only into its own block */
        /* the layout and its reason: numerical-only cases are binned, j (categorical) is not */
        char desc[256];
        hp_lgbm_describe(m, desc, sizeof desc);
        int cat = strstr(fx_lgbm_cases[i], "categorical") != NULL;
        ck_assert_msg(cat ? strstr(desc, "not binned because of a categorical split") != NULL
                          : (m->flags & HPL_F_BINNED) && strncmp(desc, "lightgbm binned", 15) == 0,
                      "%s: %s", fx_lgbm_cases[i], desc);
        for (int margin = 0; margin <= 1; margin++) {
            size_t k = margin ? c.nmargin : c.npred;
            ck_assert_uint_eq(hp_lgbm_outputs(m, margin), k);
            double *got = malloc(c.nrows * k * sizeof(double));
            /* all rows at once, then one row at a time (lane and tail paths) */
            hp_lgbm_score(m, c.rows, c.nrows, margin, got);
            size_t bad = fx_dmismatch(got, margin ? c.margin : c.pred, c.nrows * k);
            ck_assert_msg(bad == 0, "%s margin=%d: %zu differ", fx_lgbm_cases[i], margin, bad);
            for (size_t r = 0; r < c.nrows; r += 7)
                hp_lgbm_score(m, c.rows + r * c.ncols, 1, margin, got + r * k);
            bad = fx_dmismatch(got, margin ? c.margin : c.pred, c.nrows * k);
            ck_assert_msg(bad == 0, "%s margin=%d single rows: %zu differ", fx_lgbm_cases[i],
                          margin, bad);
            /* split over a compute pool of one helper (the worker's large batches) */
            memset(got, 0, c.nrows * k * sizeof(double));
            hp_lgbm_score_pool(m, c.rows, c.nrows, margin, got, pool, 1);
            bad = fx_dmismatch(got, margin ? c.margin : c.pred, c.nrows * k);
            ck_assert_msg(bad == 0, "%s margin=%d pool: %zu differ", fx_lgbm_cases[i], margin, bad);
            free(got);
        }
        free(mem);
        fx_lgbm_free(&c);
    }
    hp_pool_destroy(pool);
}
END_TEST

/* ---- differential: random format-2 models, worker vs refeval ----------------------------------
 */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static int node_kinds; /* 0: every kind; 1: numerical None/NaN only; 2: numerical, all missing
                          types (the worker's binned and branch-free layouts) */
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Values that sit on every edge of the rules. */
static double edge_value(void)
{
    static const double vals[] = {0.0,
                                  -0.0,
                                  1e-36,
                                  -1e-36,
                                  (double)1e-35f,
                                  -(double)1e-35f,
                                  2e-35,
                                  0.5,
                                  -0.5,
                                  1.0,
                                  2.0,
                                  2.9,
                                  31.0,
                                  32.0,
                                  33.0,
                                  -1.0,
                                  1e10,
                                  -1e10,
                                  INFINITY,
                                  -INFINITY,
                                  NAN,
                                  100.25,
                                  7.0,
                                  3.0};
    uint64_t r = rnd() % 40;
    if (r < sizeof vals / sizeof vals[0])
        return vals[r];
    return ((double)(int64_t)(rnd() % 2001) - 1000.0) / 37.0;
}

/* One random LightGBM-shaped tree: leaves split at random, as LightGBM grows them. */
static int random_tree(model_builder *b, uint32_t nfeat, char *err, size_t errlen)
{
    uint32_t nl = 1 + (uint32_t)(rnd() % 48);
    int32_t sf[64], dt[64], lc[64], rc[64], cb[65];
    double thr[64], lv[64];
    uint32_t words[256], nw = 0, ncat = 0;
    int32_t parent_of_leaf[64];
    int is_left[64];
    parent_of_leaf[0] = -1;
    is_left[0] = 0;
    for (uint32_t i = 0; i < nl; i++)
        lv[i] = edge_value() == edge_value() ? (double)(int64_t)(rnd() % 1000) / 64.0 - 7.0 : 0.125;
    for (uint32_t n = 0; n + 1 < nl; n++) { /* split leaf s into leaves s and n + 1 */
        uint32_t s = (uint32_t)(rnd() % (n + 1));
        if (parent_of_leaf[s] >= 0) {
            if (is_left[s])
                lc[parent_of_leaf[s]] = (int32_t)n;
            else
                rc[parent_of_leaf[s]] = (int32_t)n;
        }
        lc[n] = ~(int32_t)s;
        rc[n] = ~(int32_t)(n + 1);
        parent_of_leaf[s] = (int32_t)n;
        is_left[s] = 1;
        parent_of_leaf[n + 1] = (int32_t)n;
        is_left[n + 1] = 0;
        sf[n] = (int32_t)(rnd() % nfeat);
        static const int32_t types[] = {0, 2, 4, 6, 8, 10, 1, 3, 9, 11};
        static const int32_t none_nan[] = {0, 2, 8, 10};
        dt[n] = node_kinds == 0   ? types[rnd() % 10]
                : node_kinds == 1 ? none_nan[rnd() % 4]
                                  : types[rnd() % 6];
        if (dt[n] & 1) {
            uint32_t w = 1 + (uint32_t)(rnd() % 3);
            cb[ncat] = (int32_t)nw;
            for (uint32_t j = 0; j < w; j++)
                words[nw++] = (uint32_t)rnd();
            thr[n] = (double)ncat++;
        } else {
            do
                thr[n] = edge_value();
            while (node_kinds == 2 && isnan(thr[n])); /* NaN thresholds keep a model unbinned */
        }
    }
    cb[ncat] = (int32_t)nw;
    model_lgbm_src_tree t = {nl, sf, thr, dt, lc, rc, lv, ncat, cb, words, nw};
    return model_lgbm_builder_add_tree(b, &t, err, errlen);
}

START_TEST(test_differential_random)
{
    static const char *objs[] = {
        "binary",        "regression",           "poisson",   "multiclass", "multiclassova",
        "cross_entropy", "cross_entropy_lambda", "lambdarank"};
    char err[256];
    int layouts[3] = {0, 0, 0}; /* models walked by: general decision, branch-free, binned */
    for (int it = 0; it < 300; it++) {
        uint32_t obj = model_objective_from_name(objs[it % 8]);
        int multi = obj == MODEL_OBJ_LGBM_MULTICLASS || obj == MODEL_OBJ_LGBM_MULTICLASSOVA;
        uint32_t k = multi ? 2 + (uint32_t)(rnd() % 4) : 1;
        uint32_t nfeat = 1 + (uint32_t)(rnd() % 6);
        uint32_t ntrees = k * (1 + (uint32_t)(rnd() % 40)); /* > 16: single rows walk runs */
        double param = (obj == MODEL_OBJ_LGBM_BINARY || obj == MODEL_OBJ_LGBM_MULTICLASSOVA)
                           ? 0.25 + (double)(rnd() % 16) / 8.0
                           : 0.0;
        uint32_t flags = obj == MODEL_OBJ_LGBM_REGRESSION && (it & 16) ? MODEL_LF_SQRT : 0;
        node_kinds = it % 3;
        model_builder *b = model_lgbm_builder_new(obj, flags, param, nfeat, k);
        for (uint32_t t = 0; t < ntrees; t++)
            ck_assert_msg(random_tree(b, nfeat, err, sizeof err) == 0, "%s", err);
        void *blob, *mem;
        size_t len;
        ck_assert_msg(model_build(b, &blob, &len, err, sizeof err) == 0, "%s", err);
        model_builder_free(b);
        model_view v;
        ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
        const hp_lgbm *m = worker_build(&v, &mem);
        layouts[(m->flags & HPL_F_BINNED) ? 2 : (m->flags & HPL_F_SLOW) ? 0 : 1]++;
        size_t nrows = 1 + rnd() % 150;
        double *rows = malloc(nrows * nfeat * sizeof(double));
        for (size_t i = 0; i < nrows * nfeat; i++)
            rows[i] = edge_value();
        for (int margin = 0; margin <= 1; margin++) {
            size_t per = model_outputs_per_row(&v, margin);
            double *want = malloc(nrows * per * sizeof(double));
            double *got = malloc(nrows * per * sizeof(double));
            refeval_lgbm_predict(&v, rows, nrows, margin, want);
            hp_lgbm_score(m, rows, nrows, margin, got);
            ck_assert_msg(memcmp(got, want, nrows * per * sizeof(double)) == 0,
                          "iteration %d (%s, margin %d): worker differs from refeval", it,
                          objs[it % 8], margin);
            free(want);
            free(got);
        }
        free(rows);
        free(mem);
        free(blob);
    }
    printf("differential: %d general, %d branch-free, %d binned models\n", layouts[0], layouts[1],
           layouts[2]);
    ck_assert(layouts[0] >= 50 && layouts[1] >= 20 && layouts[2] >= 50);
}
END_TEST

/* The binned walk's single-row path sorts each chunk of HPL_ROW_CHUNK trees by depth and walks
 * them in runs of 16, and the batch path fills 16-row sub-blocks: a forest of more than one chunk
 * (trees of every depth, every numerical missing type), scored 1, 2, 3, 17 and 130 rows at a
 * time, must equal refeval on every row, raw scores and predictions, one and three classes. */
START_TEST(test_binned_runs_and_chunks)
{
    char err[256];
    for (uint32_t k = 1; k <= 3; k += 2) {
        uint32_t nfeat = 5, ntrees = HPL_ROW_CHUNK + 77 * k;
        uint32_t obj = model_objective_from_name(k == 1 ? "binary" : "multiclass");
        node_kinds = 2;
        model_builder *b = model_lgbm_builder_new(obj, 0, k == 1 ? 1.0 : 0.0, nfeat, k);
        for (uint32_t t = 0; t < ntrees; t++)
            ck_assert_msg(random_tree(b, nfeat, err, sizeof err) == 0, "%s", err);
        void *blob, *mem;
        size_t len;
        ck_assert_msg(model_build(b, &blob, &len, err, sizeof err) == 0, "%s", err);
        model_builder_free(b);
        model_view v;
        ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
        const hp_lgbm *m = worker_build(&v, &mem);
        ck_assert_msg(m->flags & HPL_F_BINNED, "the model should be binned");
        size_t nrows = 130;
        double *rows = malloc(nrows * nfeat * sizeof(double));
        for (size_t i = 0; i < nrows * nfeat; i++)
            rows[i] = edge_value();
        for (int margin = 0; margin <= 1; margin++) {
            size_t per = model_outputs_per_row(&v, margin);
            double *want = malloc(nrows * per * sizeof(double));
            double *got = malloc(nrows * per * sizeof(double));
            refeval_lgbm_predict(&v, rows, nrows, margin, want);
            static const size_t steps[] = {1, 2, 3, 17, 130};
            for (unsigned s = 0; s < sizeof steps / sizeof steps[0]; s++) {
                memset(got, 0xFF, nrows * per * sizeof(double));
                for (size_t r = 0; r < nrows; r += steps[s]) {
                    size_t n = nrows - r < steps[s] ? nrows - r : steps[s];
                    hp_lgbm_score(m, rows + r * nfeat, n, margin, got + r * per);
                }
                ck_assert_msg(memcmp(got, want, nrows * per * sizeof(double)) == 0,
                              "k=%u margin=%d, %zu rows at a time: worker differs from refeval", k,
                              margin, steps[s]);
            }
            free(want);
            free(got);
        }
        free(rows);
        free(mem);
        free(blob);
    }
}
END_TEST

/* ---- the SCORE handler: f64 sections --------------------------------------------------------- */

static _Alignas(4096) uint8_t in_buf[1 << 22];
static _Alignas(4096) uint8_t out_buf[1 << 22];

static hp_store *L_store; /* the handlers' state: one model store per registered scorer */

static int call(hp_kernel_fn fn, uint32_t len, wire_writer *out)
{
    hp_ctx ctx = {0};
    wire_writer_init(out, out_buf, sizeof out_buf);
    return fn(L_store, &ctx, in_buf, len, out);
}

/* One F64 section: key, flags, nrows, ncols, zero padding to 8, rows. */
static void put_f64_section(wire_writer *w, const uint8_t *key, uint32_t flags, uint32_t nrows,
                            uint32_t ncols, const double *rows, uint8_t pad_byte)
{
    wire_put_bytes(w, key, WIRE_MODEL_KEY_SIZE);
    wire_put_u32(w, flags | WIRE_SCORE_F64);
    wire_put_u32(w, nrows);
    wire_put_u32(w, ncols);
    for (size_t k = wire_pad8(w->len); k > 0; k--)
        wire_put_u8(w, pad_byte);
    wire_put_bytes(w, rows, (size_t)nrows * ncols * sizeof(double));
}

/* Every registered scorer (hotpath/hp_scorers.def) through the SCORE handler: loop index _i. */
START_TEST(test_score_handler_f64)
{
    char err[256];
    const hp_scorer *sc = hp_scorer_at((unsigned)_i);
    printf("  f64 SCORE sections: kernel %s\n", sc->name);
    ck_assert_msg(hp_store_create(sc, (size_t)16 << 20, 1, &L_store, err, sizeof err) == 0, "%s",
                  err);
    fx_lgbm_case c;
    ck_assert_int_eq(fx_lgbm_load("lgbm_i_multiclass", &c), 0);
    void *blob;
    size_t blob_len;
    ck_assert_int_eq(lgbm_compile(c.model, c.model_len, NULL, &blob, &blob_len, err, sizeof err),
                     LGBM_OK);
    uint8_t key[WIRE_MODEL_KEY_SIZE];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)(i * 7 + 1);
    sha256(blob, blob_len, key + 16); /* the key's second half binds the blob (LOAD_MODEL) */
    wire_writer w, out;
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_bytes(&w, key, WIRE_MODEL_KEY_SIZE);
    wire_put_u32(&w, (uint32_t)blob_len);
    wire_put_bytes(&w, blob, blob_len);
    ck_assert_int_eq(call(hp_k_load_model, (uint32_t)w.len, &out), WIRE_OK);

    /* two sections (so the second one's padding is not the first's): predictions, raw scores */
    uint32_t n1 = 5, n2 = (uint32_t)c.nrows - 5;
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_u32(&w, 2);
    put_f64_section(&w, key, 0, n1, (uint32_t)c.ncols, c.rows, 0);
    put_f64_section(&w, key, WIRE_SCORE_MARGIN, n2, (uint32_t)c.ncols, c.rows + n1 * c.ncols, 0);
    ck_assert_int_eq(call(hp_k_score, (uint32_t)w.len, &out), WIRE_OK);
    wire_reader r;
    wire_reader_init(&r, out_buf, out.len);
    ck_assert_uint_eq(wire_get_u32(&r), 2);
    for (int sct = 0; sct < 2; sct++) {
        uint32_t nr = wire_get_u32(&r), nout = wire_get_u32(&r);
        ck_assert_uint_eq(nr, sct ? n2 : n1);
        ck_assert_uint_eq(nout, 3);
        wire_get_bytes(&r, wire_pad8(r.off));
        const double *o = (const double *)wire_get_bytes(&r, (size_t)nr * nout * sizeof(double));
        ck_assert_ptr_nonnull(o);
        const double *want = sct ? c.margin + (size_t)n1 * 3 : c.pred;
        ck_assert_uint_eq(fx_dmismatch(o, want, (size_t)nr * nout), 0);
    }
    ck_assert_uint_eq(wire_remaining(&r), 0);

    /* f32 rows for a LightGBM model: refused */
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_u32(&w, 1);
    wire_put_bytes(&w, key, WIRE_MODEL_KEY_SIZE);
    wire_put_u32(&w, 0);
    wire_put_u32(&w, 1);
    wire_put_u32(&w, (uint32_t)c.ncols);
    for (size_t k = 0; k < c.ncols; k++)
        wire_put_f32(&w, 1.0f);
    ck_assert_int_eq(call(hp_k_score, (uint32_t)w.len, &out), WIRE_E_BAD_PAYLOAD);
    /* non-zero padding, truncated rows, wrong column count: refused */
    wire_writer_init(&w, in_buf, sizeof in_buf); /* the 2nd section has 4 bytes of padding */
    wire_put_u32(&w, 2);
    put_f64_section(&w, key, 0, 1, (uint32_t)c.ncols, c.rows, 0);
    ck_assert_uint_eq(wire_pad8(w.len + WIRE_MODEL_KEY_SIZE + 12), 4);
    put_f64_section(&w, key, 0, 1, (uint32_t)c.ncols, c.rows, 0);
    ck_assert_int_eq(call(hp_k_score, (uint32_t)w.len, &out), WIRE_OK);
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_u32(&w, 2);
    put_f64_section(&w, key, 0, 1, (uint32_t)c.ncols, c.rows, 0);
    put_f64_section(&w, key, 0, 1, (uint32_t)c.ncols, c.rows, 0xAB);
    ck_assert_int_eq(call(hp_k_score, (uint32_t)w.len, &out), WIRE_E_BAD_PAYLOAD);
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_u32(&w, 1);
    put_f64_section(&w, key, 0, 2, (uint32_t)c.ncols, c.rows, 0);
    ck_assert_int_eq(call(hp_k_score, (uint32_t)w.len - 8, &out), WIRE_E_BAD_PAYLOAD);
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_u32(&w, 1);
    put_f64_section(&w, key, 0, 1, (uint32_t)c.ncols - 1, c.rows, 0);
    ck_assert_int_eq(call(hp_k_score, (uint32_t)w.len, &out), WIRE_E_BAD_PAYLOAD);
    free(blob);
    fx_lgbm_free(&c);
    hp_store_destroy(L_store);
    L_store = NULL;
}
END_TEST

static Suite *lgbm_suite(void)
{
    Suite *s = suite_create("lgbm");
    TCase *tc = tcase_create("refs");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_refs_bit_identical);
    tcase_add_test(tc, test_rules_by_hand);
    tcase_add_test(tc, test_objectives_by_hand);
    tcase_add_test(tc, test_multiclass_by_hand);
    tcase_add_test(tc, test_worker_refs_bit_identical);
    tcase_add_test(tc, test_differential_random);
    tcase_add_test(tc, test_binned_runs_and_chunks);
    tcase_add_loop_test(tc, test_score_handler_f64, 0, (int)hp_scorer_count());
    suite_add_tcase(s, tc);
    TCase *th = tcase_create("hostile");
    tcase_set_timeout(th, 600);
    tcase_add_test(th, test_hostile_files);
    tcase_add_test(th, test_blob_mutations);
    suite_add_tcase(s, th);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lgbm_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
