/* test_treeshap.c - the reference explainer (common/treeshap.c) against xgboost 1.7.4's own
 * pred_contribs (tests/fixtures/NAME.contribs.txt, written by gen_fixtures.py), the covers section
 * of the compiled format (common/model.h MODEL_F_COVERS), and the path arithmetic by hand.
 *
 * Fixtures are found through $VIGIL_FIXTURES, else tests/fixtures relative to the cwd. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures_io.h"
#include "model.h"
#include "model_build.h"
#include "refeval.h"
#include "treeshap.h"
#include "xgbmodel.h"

static float *read_fx(const char *name, const char *suffix, size_t *r, size_t *c)
{
    float *m = fx_matrix(name, suffix, r, c);
    ck_assert_msg(m != NULL, "cannot read %s.%s (set VIGIL_FIXTURES?)", name, suffix);
    return m;
}

/* Every fixture: every contribution within 1e-5 x max(1, |margin|) of xgboost's, every row's
 * contributions summing to its margin within the same tolerance, the margins bit-identical to
 * refeval_predict; counts the bit-identical contributions and prints them. */
START_TEST(test_fixtures_match_xgboost_contribs)
{
    char names[64][FX_NAME_MAX];
    size_t nfix = fx_manifest(names, 64);
    ck_assert_uint_ge(nfix, 27);
    size_t total = 0, total_ident = 0;
    for (size_t f = 0; f < nfix; f++) {
        char err[256];
        xgb_info info;
        size_t blob_len, nr, nc, cr, cc, mr, mc;
        model_view v;
        void *blob = fx_compile(names[f], &info, &blob_len, &v, err, sizeof err);
        ck_assert_msg(blob != NULL, "%s: %s", names[f], err);
        ck_assert_msg(v.covers != NULL, "%s: compiled without covers", names[f]);
        float *rows = read_fx(names[f], "rows.txt", &nr, &nc);
        float *want = read_fx(names[f], "contribs.txt", &cr, &cc);
        float *want_margin = read_fx(names[f], "margin.txt", &mr, &mc);
        uint32_t k = v.hdr->num_class, ncol = v.hdr->num_feature + 1;
        ck_assert_uint_eq(cr, nr);
        ck_assert_uint_eq(cc, (size_t)k * ncol);
        size_t sb = treeshap_scratch_bytes(&v);
        ck_assert_uint_gt(sb, 0);
        void *scratch = malloc(sb);
        float *got = malloc(nr * cc * sizeof(float));
        float *margins = malloc(nr * k * sizeof(float));
        float *ref = malloc(nr * k * sizeof(float));
        treeshap_explain(&v, rows, nr, got, margins, scratch);
        refeval_predict(&v, rows, nr, 1, ref);
        size_t ident = 0;
        double worst = 0;
        for (size_t r = 0; r < nr; r++) {
            for (uint32_t g = 0; g < k; g++) {
                float mg = margins[r * k + g];
                ck_assert_msg(fx_bits(mg) == fx_bits(ref[r * k + g]),
                              "%s row %zu: margin differs from refeval", names[f], r);
                double tol = 1e-5 * fmax(1.0, fabs(mg));
                double sum = 0, asum = 0;
                for (uint32_t c = 0; c < ncol; c++) {
                    size_t i = r * cc + (size_t)g * ncol + c;
                    ident += fx_bits(got[i]) == fx_bits(want[i]);
                    double d = fabs((double)got[i] - want[i]);
                    if (d / fmax(1.0, fabs(mg)) > worst)
                        worst = d / fmax(1.0, fabs(mg));
                    ck_assert_msg(d <= tol, "%s row %zu group %u col %u: %.9g, xgboost %.9g",
                                  names[f], r, g, c, got[i], want[i]);
                    sum += got[i];
                    asum += fabs(got[i]);
                }
                /* float rounding in the contributions scales with their size, not the margin's
                 * (logistic_extreme: terms of +-100 summing to 0.66) */
                ck_assert_msg(fabs(sum - mg) <= 1e-5 * fmax(1.0, asum),
                              "%s row %zu group %u: sum %.9g margin %.9g", names[f], r, g, sum, mg);
                ck_assert_msg(fabs((double)mg - want_margin[r * k + g]) <= tol,
                              "%s row %zu: margin %.9g, xgboost %.9g", names[f], r, mg,
                              want_margin[r * k + g]);
            }
        }
        printf("  %-24s %6zu/%6zu contributions bit-identical  max err/max(1,|margin|) %.3g\n",
               names[f], ident, nr * cc, worst);
        total += nr * cc;
        total_ident += ident;
        free(ref);
        free(margins);
        free(got);
        free(scratch);
        free(want_margin);
        free(want);
        free(rows);
        free(blob);
        xgb_info_free(&info);
    }
    printf("  all fixtures: %zu/%zu contributions bit-identical to xgboost 1.7.4\n", total_ident,
           total);
}
END_TEST

/* A one-split stump by hand: cover 10 at the root, 4 left (leaf -1), 6 right (leaf 2).  Mean value
 * (4*-1 + 6*2)/10 = 0.8; a row going left gets phi = -1 - 0.8 = -1.8, going right 2 - 0.8 = 1.2;
 * a second feature never split on gets 0; bias = 0.8 + base_margin. */
START_TEST(test_stump_by_hand)
{
    model_builder *b = model_builder_new(MODEL_OBJ_SQUAREDERROR, MODEL_F_COVERS, 2, 1, 0.5f, 0.5f);
    ck_assert_ptr_nonnull(b);
    model_src_node n[3] = {
        {.left = 1, .right = 2, .feature = 0, .value = 0.0f, .cover = 10.0f},
        {.left = -1, .right = -1, .value = -1.0f, .cover = 4.0f},
        {.left = -1, .right = -1, .value = 2.0f, .cover = 6.0f},
    };
    char err[160];
    ck_assert_int_eq(model_builder_add_tree(b, 0, 1.0f, n, 3, err, sizeof err), 0);
    void *blob;
    size_t len;
    ck_assert_int_eq(model_build(b, &blob, &len, err, sizeof err), 0);
    model_builder_free(b);
    model_view v;
    ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
    ck_assert_ptr_nonnull(v.covers);
    ck_assert_uint_eq(len, 64 + 16 + 3 * 16 + 3 * 4);
    float rows[4] = {-1.0f, 7.0f, 1.0f, NAN};
    float out[6], mg[2];
    uint8_t scratch[4096];
    ck_assert_uint_le(treeshap_scratch_bytes(&v), sizeof scratch);
    treeshap_explain(&v, rows, 2, out, mg, scratch);
    ck_assert_float_eq_tol(out[0], -1.8f, 1e-6f);
    ck_assert_float_eq(out[1], 0.0f);
    ck_assert_float_eq_tol(out[2], 1.3f, 1e-6f);
    ck_assert_float_eq_tol(out[3], 1.2f, 1e-6f);
    ck_assert_float_eq(out[4], 0.0f);
    ck_assert_float_eq_tol(out[5], 1.3f, 1e-6f);
    ck_assert_float_eq(mg[0], -0.5f);
    ck_assert_float_eq(mg[1], 2.5f);
    free(blob);
}
END_TEST

/* A blob without covers is format 1 as before (same length, same scores) and cannot be explained;
 * a blob whose flags claim covers it does not carry is refused. */
START_TEST(test_covers_optional)
{
    char err[160];
    void *blob[2];
    size_t len[2];
    model_view v[2];
    for (int c = 0; c < 2; c++) {
        model_builder *b =
            model_builder_new(MODEL_OBJ_SQUAREDERROR, c ? MODEL_F_COVERS : 0, 1, 1, 0.0f, 0.0f);
        model_src_node n[3] = {
            {.left = 1, .right = 2, .value = 0.5f, .cover = 3.0f},
            {.left = -1, .right = -1, .value = 1.0f, .cover = 1.0f},
            {.left = -1, .right = -1, .value = 2.0f, .cover = 2.0f},
        };
        ck_assert_int_eq(model_builder_add_tree(b, 0, 1.0f, n, 3, err, sizeof err), 0);
        ck_assert_int_eq(model_build(b, &blob[c], &len[c], err, sizeof err), 0);
        model_builder_free(b);
        ck_assert_int_eq(model_validate(blob[c], len[c], NULL, 0, &v[c], err, sizeof err), 0);
    }
    ck_assert_uint_eq(len[0] + 3 * 4, len[1]);
    ck_assert_ptr_null(v[0].covers);
    ck_assert_uint_eq(treeshap_scratch_bytes(&v[0]), 0);
    float row = 0.7f, o[2];
    refeval_predict(&v[0], &row, 1, 1, &o[0]);
    refeval_predict(&v[1], &row, 1, 1, &o[1]);
    ck_assert_uint_eq(fx_bits(o[0]), fx_bits(o[1]));
    /* claim covers without the section: the length no longer adds up */
    ((model_file_header *)blob[0])->flags |= MODEL_F_COVERS;
    ck_assert_int_ne(model_validate(blob[0], len[0], NULL, 0, &v[0], err, sizeof err), 0);
    free(blob[0]);
    free(blob[1]);
}
END_TEST

/* Depth from the canonical order: a chain and a full tree. */
START_TEST(test_tree_depth)
{
    char err[160];
    model_builder *b = model_builder_new(MODEL_OBJ_SQUAREDERROR, MODEL_F_COVERS, 1, 1, 0, 0);
    /* a chain of depth 3: 0 -> (1 leaf, 2) -> (3 leaf, 4) -> (5 leaf, 6 leaf) */
    model_src_node n[7];
    memset(n, 0, sizeof n);
    for (int i = 0; i < 7; i++) {
        n[i].left = n[i].right = -1;
        n[i].cover = 1;
    }
    n[0].left = 1, n[0].right = 2;
    n[2].left = 3, n[2].right = 4;
    n[4].left = 5, n[4].right = 6;
    ck_assert_int_eq(model_builder_add_tree(b, 0, 1.0f, n, 7, err, sizeof err), 0);
    ck_assert_int_eq(model_builder_add_tree(b, 0, 1.0f, &n[1], 1, err, sizeof err), 0);
    void *blob;
    size_t len;
    ck_assert_int_eq(model_build(b, &blob, &len, err, sizeof err), 0);
    model_builder_free(b);
    model_view v;
    ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
    ck_assert_uint_eq(treeshap_tree_depth(&v, 0), 3);
    ck_assert_uint_eq(treeshap_tree_depth(&v, 1), 0);
    ck_assert_uint_eq(treeshap_path_elems(3), 15);
    free(blob);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("treeshap");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fixtures_match_xgboost_contribs);
    tcase_add_test(tc, test_stump_by_hand);
    tcase_add_test(tc, test_covers_optional);
    tcase_add_test(tc, test_tree_depth);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
