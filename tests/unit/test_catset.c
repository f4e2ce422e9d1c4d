/* test_catset.c - categorical sets in the compiled model format (common/model.h): the compact list
 * encoding (MODEL_F_CAT_LIST) next to format 1's bitsets.
 *
 * What is checked, each against an independent source:
 *   - size: a set holding one large category costs words proportional to the categories listed,
 *     not to the largest one (issue 9 item 13: a 12.7 KB upload compiled into 65 MB);
 *   - decisions: a list set decides by hand-computed membership (xgboost 1.7 categorical.h:
 *     in the set -> right; not in it, negative, >= 2^24, +-inf -> left);
 *   - equivalence: the same model re-encoded by this test's own bitset writer (format 1, flag
 *     clear) validates and predicts bit-identically to the list blob the builder wrote;
 *   - the builder keeps bitsets when they are not larger (the original bytes of dense models);
 *   - the validator refuses every malformed list (unsorted, duplicate, out of range, bad header,
 *     a node pointing inside a list, lists without the flag, bitsets under the flag). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "model_build.h"
#include "refeval.h"
#include "treeshap.h"
#include "xgbmodel.h"

/* One tree: node 0 splits feature 0 on the categories cats[0..n) (right), leaves 1 (left), 2. */
static void *one_split(const int64_t *cats, uint32_t n, size_t *len)
{
    model_builder *b = model_builder_new(MODEL_OBJ_SQUAREDERROR, 0, 2, 1, 0.0f, 0.0f);
    ck_assert_ptr_nonnull(b);
    model_src_node nodes[3] = {
        {.left = 1, .right = 2, .feature = 0, .categorical = 1, .cats = cats, .n_cats = n},
        {.left = -1, .right = -1, .value = 1.0f},
        {.left = -1, .right = -1, .value = 2.0f},
    };
    char err[256];
    ck_assert_msg(model_builder_add_tree(b, 0, 1.0f, nodes, 3, err, sizeof err) == 0, "%s", err);
    void *blob = NULL;
    ck_assert_msg(model_build(b, &blob, len, err, sizeof err) == 0, "%s", err);
    model_builder_free(b);
    return blob;
}

static float predict1(const model_view *v, float x)
{
    float row[2] = {x, 0.0f}, out;
    refeval_predict(v, row, 1, 1, &out);
    return out;
}

/* The case: one category near 2^24 made a 2 MiB bitset per node. */
START_TEST(list_size_proportional)
{
    const int64_t big[] = {16777215};
    size_t len;
    void *blob = one_split(big, 1, &len);
    model_view v;
    char err[256];
    ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
    ck_assert(v.hdr->flags & MODEL_F_CAT_LIST);
    ck_assert_uint_eq(v.hdr->num_cat_words, 2); /* tag|1, 16777215 */
    ck_assert_uint_eq(len, MODEL_HEADER_SIZE + 16 + 3 * 16 + 2 * 4);
    free(blob);

    /* Through the xgboost compiler: 300 trees, each one categorical split on category 2^24 - 1.
     * The JSON is a few tens of KB; the bitsets were 300 x 2 MiB. */
    static const char *const tree =
        "{\"base_weights\":[0,0,0],\"categories\":[16777215],\"categories_nodes\":[0],"
        "\"categories_segments\":[0],\"categories_sizes\":[1],\"default_left\":[1,0,0],"
        "\"id\":%d,\"left_children\":[1,-1,-1],\"loss_changes\":[0,0,0],"
        "\"parents\":[2147483647,0,0],\"right_children\":[2,-1,-1],"
        "\"split_conditions\":[0,1E0,2E0],\"split_indices\":[0,0,0],\"split_type\":[1,0,0],"
        "\"sum_hessian\":[1,1,1],\"tree_param\":{\"num_deleted\":\"0\",\"num_feature\":\"2\","
        "\"num_nodes\":\"3\",\"size_leaf_vector\":\"0\"}}";
    enum { NT = 300 };
    size_t cap = 1024 + NT * 600;
    char *j = malloc(cap);
    ck_assert_ptr_nonnull(j);
    size_t o = (size_t)snprintf(j, cap,
                                "{\"learner\":{\"attributes\":{},\"feature_names\":[],"
                                "\"feature_types\":[],\"gradient_booster\":{\"model\":{"
                                "\"gbtree_model_param\":{\"num_parallel_tree\":\"1\","
                                "\"num_trees\":\"%d\",\"size_leaf_vector\":\"0\"},\"tree_info\":[",
                                NT);
    for (int t = 0; t < NT; t++)
        o += (size_t)snprintf(j + o, cap - o, "%s0", t ? "," : "");
    o += (size_t)snprintf(j + o, cap - o, "],\"trees\":[");
    for (int t = 0; t < NT; t++) {
        if (t)
            j[o++] = ',';
        o += (size_t)snprintf(j + o, cap - o, tree, t);
    }
    o += (size_t)snprintf(j + o, cap - o,
                          "]},\"name\":\"gbtree\"},\"learner_model_param\":{\"base_score\":"
                          "\"5E-1\",\"num_class\":\"0\",\"num_feature\":\"2\",\"num_target\":"
                          "\"1\"},\"objective\":{\"name\":\"reg:squarederror\"}},"
                          "\"version\":[1,7,4]}");
    ck_assert_uint_lt(o, cap);
    ck_assert_int_eq(xgb_compile(j, o, NULL, &blob, &len, err, sizeof err), XGB_OK);
    ck_assert_msg(len < o, "compiled %zu bytes from %zu bytes of JSON", len, o);
    ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
    /* base 0.5 + 300 x (category 16777215 ? 2 : 1), summed in float */
    ck_assert(predict1(&v, 16777215.0f) == 600.5f);
    ck_assert(predict1(&v, 16777214.0f) == 300.5f);
    free(blob);
    free(j);
}
END_TEST

/* Hand computation of xgboost 1.7's Decision on the list {3, 70, 1000000, 16777215}. */
START_TEST(list_decisions_by_hand)
{
    const int64_t cats[] = {1000000, 70, 3, 16777215, 70}; /* any order, duplicates ok */
    size_t len;
    void *blob = one_split(cats, 5, &len);
    model_view v;
    char err[256];
    ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
    ck_assert(v.hdr->flags & MODEL_F_CAT_LIST);
    ck_assert_uint_eq(v.hdr->num_cat_words, 5); /* duplicates dropped */
    const float right[] = {3, 3.99f, 70, 70.5f, 1000000, 16777215};
    const float left[] = {0,  2,     4,  69,          71,   999999,    1000001, 1e7f,     16777214,
                          -1, -0.5f, -3, 16777216.0f, 3e9f, -INFINITY, 1e30f,   INFINITY, 2.9999f};
    for (size_t i = 0; i < sizeof right / sizeof right[0]; i++)
        ck_assert_msg(predict1(&v, right[i]) == 2.0f, "%g should go right", (double)right[i]);
    for (size_t i = 0; i < sizeof left / sizeof left[0]; i++)
        ck_assert_msg(predict1(&v, left[i]) == 1.0f, "%g should go left", (double)left[i]);
    free(blob);
}
END_TEST

/* Dense sets keep format 1's bitsets: {0..31} is 2 words as a bitset, 33 as a list; a tie (one
 * category below 32: 2 words either way) keeps the bitset too. */
START_TEST(dense_sets_keep_bitsets)
{
    int64_t dense[32];
    for (int i = 0; i < 32; i++)
        dense[i] = i;
    const int64_t one[] = {7};
    size_t len;
    model_view v;
    char err[256];
    void *blob = one_split(dense, 32, &len);
    ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
    ck_assert(!(v.hdr->flags & MODEL_F_CAT_LIST));
    ck_assert_uint_eq(v.hdr->num_cat_words, 2);
    ck_assert_uint_eq(v.cats[0], 1);
    ck_assert_uint_eq(v.cats[1], 0xFFFFFFFFu);
    free(blob);
    blob = one_split(one, 1, &len);
    ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
    ck_assert(!(v.hdr->flags & MODEL_F_CAT_LIST));
    ck_assert_uint_eq(v.cats[1], 1u << 7);
    free(blob);
}
END_TEST

/* This test's own format-1 writer: the list blob v re-encoded with bitsets.  Caller frees. */
static void *to_bitsets(const model_view *v, size_t *len_out)
{
    const model_file_header *h = v->hdr;
    size_t words = 0;
    for (uint32_t i = 0; i < h->num_nodes; i++)
        if (v->nodes[i].left != -1 && (v->nodes[i].split & MODEL_NODE_CATEGORICAL)) {
            const uint32_t *s = v->cats + v->nodes[i].u.cat;
            words += 1 + s[s[0] & ~MODEL_CAT_LIST_TAG] / 32 + 1;
        }
    size_t head = MODEL_HEADER_SIZE + 16 * (size_t)h->num_trees + 16 * (size_t)h->num_nodes;
    size_t len = head + 4 * words + (v->covers ? 4 * (size_t)h->num_nodes : 0);
    uint8_t *b = calloc(1, len);
    ck_assert_ptr_nonnull(b);
    memcpy(b, h, head);
    model_file_header *nh = (model_file_header *)b;
    nh->flags &= ~MODEL_F_CAT_LIST;
    nh->num_cat_words = (uint32_t)words;
    model_node_rec *nodes = (model_node_rec *)(b + MODEL_HEADER_SIZE + 16 * h->num_trees);
    uint32_t *cats = (uint32_t *)(b + head), o = 0;
    for (uint32_t i = 0; i < h->num_nodes; i++)
        if (nodes[i].left != -1 && (nodes[i].split & MODEL_NODE_CATEGORICAL)) {
            const uint32_t *s = v->cats + nodes[i].u.cat;
            uint32_t n = s[0] & ~MODEL_CAT_LIST_TAG, w = s[n] / 32 + 1;
            cats[o] = w;
            for (uint32_t k = 1; k <= n; k++)
                cats[o + 1 + s[k] / 32] |= 1u << (s[k] % 32);
            nodes[i].u.cat = o;
            o += 1 + w;
        }
    if (v->covers) /* MODEL_F_COVERS: the section follows cats[] whatever their encoding */
        memcpy(cats + words, v->covers, 4 * (size_t)h->num_nodes);
    *len_out = len;
    return b;
}

/* A forest of categorical splits on several features, list-encoded by the builder, predicts
 * bit-identically to its bitset re-encoding over every category up to past the largest. */
START_TEST(list_equals_bitset)
{
    enum { NF = 3, NTREE = 40, MAXC = 3000 };
    model_builder *b = model_builder_new(MODEL_OBJ_BINARY_LOGISTIC, 0, NF, 1, 0.5f, 0.0f);
    ck_assert_ptr_nonnull(b);
    uint64_t rs = 12345;
    int64_t cats[2][40];
    char err[256];
    for (int t = 0; t < NTREE; t++) {
        /* node 0 categorical on f0, node 1 numeric on f1, node 2 categorical on f2 */
        model_src_node nd[7];
        uint32_t n[2];
        for (int k = 0; k < 2; k++) {
            n[k] = 1 + (uint32_t)(t * 7 + k) % 40;
            for (uint32_t c = 0; c < n[k]; c++) {
                rs = rs * 6364136223846793005ull + 1442695040888963407ull;
                cats[k][c] = (int64_t)((rs >> 33) % MAXC);
            }
        }
        nd[0] = (model_src_node){.left = 1,
                                 .right = 2,
                                 .feature = 0,
                                 .categorical = 1,
                                 .default_left = 1,
                                 .cats = cats[0],
                                 .n_cats = n[0]};
        nd[1] = (model_src_node){.left = 3, .right = 4, .feature = 1, .value = 0.25f * t};
        nd[2] = (model_src_node){
            .left = 5, .right = 6, .feature = 2, .categorical = 1, .cats = cats[1], .n_cats = n[1]};
        for (int k = 3; k < 7; k++)
            nd[k] = (model_src_node){.left = -1, .right = -1, .value = 0.01f * (float)(t * 4 + k)};
        ck_assert_msg(model_builder_add_tree(b, 0, 1.0f, nd, 7, err, sizeof err) == 0, "%s", err);
    }
    void *blob = NULL;
    size_t len, blen;
    ck_assert_msg(model_build(b, &blob, &len, err, sizeof err) == 0, "%s", err);
    model_builder_free(b);
    model_view v, w;
    ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
    ck_assert(v.hdr->flags & MODEL_F_CAT_LIST);
    void *bits = to_bitsets(&v, &blen);
    ck_assert_msg(model_validate(bits, blen, NULL, 0, &w, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_gt(blen, len);
    size_t diffs = 0, rows = 0;
    for (int x = -4; x <= 2 * MAXC + 4; x++) {
        float row[NF] = {(float)x / 2, (float)(x % 11), (float)(MAXC - x / 2)}, a[2], c[2];
        for (int m = 0; m <= 1; m++) {
            refeval_predict(&v, row, 1, m, &a[m]);
            refeval_predict(&w, row, 1, m, &c[m]);
            diffs += memcmp(&a[m], &c[m], sizeof(float)) != 0;
        }
        rows++;
    }
    const float special[] = {NAN, INFINITY, -INFINITY, 16777216.0f, -0.0f, 1e30f};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
        float row[NF] = {special[i], 0.5f, special[i]}, a, c;
        refeval_predict(&v, row, 1, 0, &a);
        refeval_predict(&w, row, 1, 0, &c);
        diffs += memcmp(&a, &c, sizeof(float)) != 0;
    }
    ck_assert_uint_gt(rows, 6000);
    ck_assert_uint_eq(diffs, 0);
    free(bits);
    free(blob);
}
END_TEST

/* Covers (MODEL_F_COVERS) and lists (MODEL_F_CAT_LIST) in one blob: the covers section follows
 * the list cats[], and TreeSHAP (common/treeshap.c, through model_cat_goes_left) explains the list
 * blob bit-identically to its bitset re-encoding, its margins those of refeval. */
START_TEST(lists_with_covers_explain_as_bitsets)
{
    enum { NF = 2, NTREE = 12 };
    model_builder *b =
        model_builder_new(MODEL_OBJ_BINARY_LOGISTIC, MODEL_F_COVERS, NF, 1, 0.5f, 0.0f);
    ck_assert_ptr_nonnull(b);
    char err[256];
    for (int t = 0; t < NTREE; t++) {
        int64_t c0[3] = {5 + t, 900 + 31 * t, 4000}, c1[2] = {t, 70000 + t};
        model_src_node nd[7] = {
            {.left = 1,
             .right = 2,
             .feature = 0,
             .categorical = 1,
             .cats = c0,
             .n_cats = 3,
             .cover = 100.0f},
            {.left = 3, .right = 4, .feature = 1, .value = 0.5f * t, .cover = 60.0f - t},
            {.left = 5,
             .right = 6,
             .feature = 1,
             .categorical = 1,
             .cats = c1,
             .n_cats = 2,
             .cover = 40.0f + t},
            {.left = -1, .right = -1, .value = 0.1f * t, .cover = 25.0f},
            {.left = -1, .right = -1, .value = -0.2f, .cover = 35.0f - t},
            {.left = -1, .right = -1, .value = 0.3f, .cover = 15.0f},
            {.left = -1, .right = -1, .value = -0.05f * t, .cover = 25.0f + t},
        };
        ck_assert_msg(model_builder_add_tree(b, 0, 1.0f, nd, 7, err, sizeof err) == 0, "%s", err);
    }
    void *blob = NULL;
    size_t len, blen;
    ck_assert_msg(model_build(b, &blob, &len, err, sizeof err) == 0, "%s", err);
    model_builder_free(b);
    model_view v, w;
    ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
    ck_assert(v.hdr->flags & MODEL_F_CAT_LIST);
    ck_assert(v.hdr->flags & MODEL_F_COVERS);
    ck_assert_ptr_eq(v.covers, (const float *)(v.cats + v.hdr->num_cat_words));
    ck_assert(v.covers[0] == 100.0f && v.covers[v.hdr->num_nodes - 1] == 25.0f + (NTREE - 1));
    void *bits = to_bitsets(&v, &blen);
    ck_assert_msg(model_validate(bits, blen, NULL, 0, &w, err, sizeof err) == 0, "%s", err);
    ck_assert(!(w.hdr->flags & MODEL_F_CAT_LIST));
    ck_assert_uint_gt(blen, len);
    size_t sv = treeshap_scratch_bytes(&v), sw = treeshap_scratch_bytes(&w);
    ck_assert(sv > 0 && sv == sw);
    float *scratch = malloc(sv);
    ck_assert_ptr_nonnull(scratch);
    size_t diffs = 0, rows = 0;
    const float xs[] = {-1.0f,   0.0f,    5.0f,     6.0f,     11.0f,       900.0f, 931.0f,  1241.0f,
                        4000.0f, 4000.9f, 70000.0f, 70011.0f, 16777216.0f, NAN,    INFINITY};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++)
        for (size_t j = 0; j < sizeof xs / sizeof xs[0]; j++) {
            float row[NF] = {xs[i], xs[j]}, cv[NF + 1], cw[NF + 1], mv, mw, ref;
            treeshap_explain(&v, row, 1, cv, &mv, scratch);
            treeshap_explain(&w, row, 1, cw, &mw, scratch);
            refeval_predict(&v, row, 1, 1, &ref);
            diffs += memcmp(cv, cw, sizeof cv) != 0;
            diffs += memcmp(&mv, &mw, sizeof mv) != 0 || memcmp(&mv, &ref, sizeof mv) != 0;
            rows++;
        }
    ck_assert_uint_eq(diffs, 0);
    ck_assert_uint_eq(rows, 225);
    free(scratch);
    free(bits);
    free(blob);
}
END_TEST

/* Every malformed list is refused; each mutation starts from a valid list blob. */
START_TEST(validator_refuses_bad_lists)
{
    const int64_t cats[] = {5, 100000};
    size_t len;
    void *blob = one_split(cats, 2, &len);
    uint8_t *b = malloc(len);
    model_view w;
    char err[256];
    model_file_header *h = (model_file_header *)b;
    model_node_rec *nodes = (model_node_rec *)(b + MODEL_HEADER_SIZE + 16);
    uint32_t *c = (uint32_t *)(b + len - 12); /* tag|2, 5, 100000 */
#define FRESH() memcpy(b, blob, len)
#define BAD() ck_assert_int_eq(model_validate(b, len, NULL, 0, &w, err, sizeof err), -1)
    FRESH();
    ck_assert_int_eq(model_validate(b, len, NULL, 0, &w, err, sizeof err), 0);
    ck_assert_uint_eq(c[0], MODEL_CAT_LIST_TAG | 2);
    ck_assert_uint_eq(c[1], 5);
    ck_assert_uint_eq(c[2], 100000);
    FRESH();
    c[1] = 100000; /* duplicate */
    BAD();
    FRESH();
    c[1] = 200000; /* unsorted */
    BAD();
    FRESH();
    c[2] = MODEL_MAX_CATEGORY + 1; /* not a category */
    BAD();
    FRESH();
    c[2] = MODEL_CAT_LIST_TAG | 1; /* a payload word with the tag */
    BAD();
    FRESH();
    c[0] = MODEL_CAT_LIST_TAG | 3; /* longer than cats[] */
    BAD();
    FRESH();
    c[0] = MODEL_CAT_LIST_TAG; /* empty */
    BAD();
    FRESH();
    c[0] = MODEL_CAT_LIST_TAG | 1; /* leaves a word that is not a set */
    BAD();
    FRESH();
    c[0] = 2; /* a bitset header under the flag */
    BAD();
    FRESH();
    nodes[0].u.cat = 1; /* a node pointing inside a list */
    BAD();
    FRESH();
    nodes[0].u.cat = 3; /* past cats[] */
    BAD();
    FRESH();
    h->flags &= ~MODEL_F_CAT_LIST; /* a list without the flag: a bitset of 0x80000002 words */
    BAD();
#undef FRESH
#undef BAD
    free(b);
    free(blob);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("catset");
    TCase *tc = tcase_create("catset");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, list_size_proportional);
    tcase_add_test(tc, list_decisions_by_hand);
    tcase_add_test(tc, dense_sets_keep_bitsets);
    tcase_add_test(tc, list_equals_bitset);
    tcase_add_test(tc, lists_with_covers_explain_as_bitsets);
    tcase_add_test(tc, validator_refuses_bad_lists);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
