/* test_xgbfmt.c - current xgboost model files: UBJSON and JSON through mdoc (common/mdoc*.c) and
 * xgb_compile (common/xgbmodel.c), multi-target models, vector base_score, and content detection
 * (common/modelfile.c).
 *
 *   - every xgboost 3.5.0-dev case of tests/fixtures/refs (copied from the shared ground truth;
 *     see tests/fixtures/refs/README.md), every model file of it: each prediction and raw margin
 *     bit-identical to xgboost's, in the reference evaluator AND in the worker's kernel (loaded
 *     into an arena as tests/unit/test_kernel.c does); the .json and .ubj of one model compile to
 *     the same blob byte for byte;
 *   - hostile UBJSON: every prefix of a real file, lying counts (2^31, 2^62, count+1, -1),
 *     negative string/key lengths, typed arrays longer than the body, unsupported markers, nesting
 *     at 64 / 65, trailing bytes: 400 (XGB_INVALID), never a crash;
 *   - modelfile_detect on each format and on near misses.
 * Expected values are xgboost's own (fixtures) or written out here. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hp_arena.h"
#include "hp_pool.h"
#include "hp_scorer.h"
#include "mdoc.h"
#include "model.h"
#include "modelfile.h"
#include "refeval.h"
#include "wire.h"
#include "xgbmodel.h"
#include "fixtures_io.h"

/* ---- the reference cases --------------------------------------------------------------------- */

typedef struct refcase {
    char name[64];
    char files[2][16]; /* "model.json", "model.ubj" */
    int nfiles;
} refcase;

/* Reads tests/fixtures/refs/MANIFEST ("NAME FILE [FILE]" per line). */
static size_t ref_manifest(refcase *out, size_t cap)
{
    char path[512];
    snprintf(path, sizeof path, "%s/refs/MANIFEST", fx_dir());
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t n = 0;
    char line[256];
    while (n < cap && fgets(line, sizeof line, f)) {
        refcase *c = &out[n];
        memset(c, 0, sizeof *c);
        int k = sscanf(line, "%63s %15s %15s", c->name, c->files[0], c->files[1]);
        if (k >= 2) {
            c->nfiles = k - 1;
            n++;
        }
    }
    fclose(f);
    return n;
}

static char *ref_read(const char *cs, const char *file, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/refs/%s/%s", fx_dir(), cs, file);
    char *s = fx_slurp(path, len);
    ck_assert_msg(s != NULL, "cannot read %s", path);
    return s;
}

static float *ref_matrix(const char *cs, const char *file, size_t *rows, size_t *cols)
{
    char path[512];
    snprintf(path, sizeof path, "%s/refs/%s/%s", fx_dir(), cs, file);
    float *m = fx_matrix_file(path, rows, cols);
    ck_assert_msg(m != NULL, "cannot read %s", path);
    return m;
}

/* Compiles refs/CASE/FILE; asserts success and validity. */
static void *ref_compile(const char *cs, const char *file, xgb_info *info, size_t *blob_len,
                         model_view *v)
{
    size_t len;
    char *src = ref_read(cs, file, &len);
    char err[256];
    void *blob = NULL;
    int rc = xgb_compile(src, len, info, &blob, blob_len, err, sizeof err);
    ck_assert_msg(rc == XGB_OK, "%s/%s: %s: %s", cs, file, xgb_status_name(rc), err);
    ck_assert_msg(model_validate(blob, *blob_len, NULL, 0, v, err, sizeof err) == 0, "%s", err);
    free(src);
    return blob;
}

/* Asserts got[0..n) == want[0..n) bit for bit. */
static void assert_bits(const float *got, const float *want, size_t n, size_t per_row,
                        const char *what)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fx_bits(got[i]) == fx_bits(want[i]),
                      "%s: output %zu (row %zu) is %.9g (0x%08x), xgboost %.9g (0x%08x)", what, i,
                      i / per_row, (double)got[i], fx_bits(got[i]), (double)want[i],
                      fx_bits(want[i]));
}

START_TEST(refs_refeval_bit_identical)
{
    refcase cases[16];
    size_t n = ref_manifest(cases, 16);
    ck_assert_uint_eq(n, 7);
    size_t files = 0, values = 0;
    for (size_t c = 0; c < n; c++) {
        size_t nr, nc;
        float *rows = ref_matrix(cases[c].name, "rows.txt", &nr, &nc);
        for (int f = 0; f < cases[c].nfiles; f++) {
            xgb_info info;
            size_t bl;
            model_view v;
            void *blob = ref_compile(cases[c].name, cases[c].files[f], &info, &bl, &v);
            int ubj = strstr(cases[c].files[f], ".ubj") != NULL;
            ck_assert_int_eq(info.format, ubj ? MODELFILE_XGB_UBJSON : MODELFILE_XGB_JSON);
            ck_assert_str_eq(info.version, "3.5.0");
            ck_assert_uint_eq(nc, v.hdr->num_feature);
            for (int margin = 0; margin <= 1; margin++) {
                size_t pr, pc;
                float *want =
                    ref_matrix(cases[c].name, margin ? "margin.txt" : "pred.txt", &pr, &pc);
                ck_assert_uint_eq(pr, nr);
                ck_assert_uint_eq(pc, model_outputs_per_row(&v, margin));
                float *got = malloc(pr * pc * sizeof(float));
                refeval_predict(&v, rows, nr, margin, got);
                char what[128];
                snprintf(what, sizeof what, "%s/%s margin=%d", cases[c].name, cases[c].files[f],
                         margin);
                assert_bits(got, want, pr * pc, pc, what);
                values += pr * pc;
                free(got);
                free(want);
            }
            files++;
            xgb_info_free(&info);
            free(blob);
        }
        free(rows);
    }
    printf("  refs: %zu model files, %zu outputs bit-identical to xgboost 3.5.0-dev\n", files,
           values);
}
END_TEST

/* What each case declares, checked against meta.json's values written out here. */
START_TEST(refs_metadata)
{
    static const struct {
        const char *cs, *file, *objective;
        uint32_t nf, groups, target, trees;
    } want[] = {
        {"xgb_a_binary_logistic", "model.ubj", "binary:logistic", 30, 1, 1, 200},
        {"xgb_b_multi_softprob", "model.ubj", "multi:softprob", 64, 10, 1, 600},
        {"xgb_c_reg_squarederror", "model.json", "reg:squarederror", 10, 1, 1, 150},
        {"xgb_d_categorical", "model.ubj", "binary:logistic", 8, 1, 1, 100},
        {"xgb_e_multi_target", "model.json", "reg:squarederror", 10, 2, 2, 200},
        {"xgb_e2_multi_output_tree", "model.json", "reg:squarederror", 10, 2, 2, 100},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        xgb_info info;
        size_t bl;
        model_view v;
        void *blob = ref_compile(want[i].cs, want[i].file, &info, &bl, &v);
        ck_assert_str_eq(info.objective, want[i].objective);
        ck_assert_uint_eq(info.num_feature, want[i].nf);
        ck_assert_uint_eq(info.num_class, want[i].groups);
        ck_assert_uint_eq(info.num_target, want[i].target);
        ck_assert_uint_eq(info.num_trees, want[i].trees);
        ck_assert_uint_eq(v.hdr->num_class, want[i].groups);
        xgb_info_free(&info);
        free(blob);
    }
}
END_TEST

/* The .json and .ubj of one model compile to the same blob, byte for byte. */
START_TEST(refs_json_and_ubj_same_blob)
{
    static const char *const both[] = {"xgb_a_binary_logistic", "xgb_c_reg_squarederror",
                                       "xgb_d_categorical"};
    for (size_t i = 0; i < sizeof both / sizeof both[0]; i++) {
        size_t l1, l2;
        model_view v1, v2;
        void *b1 = ref_compile(both[i], "model.json", NULL, &l1, &v1);
        void *b2 = ref_compile(both[i], "model.ubj", NULL, &l2, &v2);
        ck_assert_uint_eq(l1, l2);
        ck_assert_msg(memcmp(b1, b2, l1) == 0, "%s: blobs differ", both[i]);
        free(b1);
        free(b2);
    }
}
END_TEST

/* UBJSON written by a second writer (tests/fuzz/gen_ubj_seeds.py, Python, xgboost's layout) from
 * the 1.7.4 fixtures' JSON compiles to the same blob as that JSON. */
START_TEST(second_writer_ubj_same_blob)
{
    static const char *const names[] = {"rank_ndcg", "cat_onehot_softprob", "dart_regression"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[512], err[256];
        size_t l1, l2, b1l, b2l;
        snprintf(path, sizeof path, "%s/%s.model.json", fx_dir(), names[i]);
        char *json = fx_slurp(path, &l1);
        snprintf(path, sizeof path, "%s/../fuzz/seeds/ubj/seed-%s.ubj", fx_dir(), names[i]);
        char *ubj = fx_slurp(path, &l2);
        ck_assert_msg(json && ubj, "cannot read %s", path);
        void *b1 = NULL, *b2 = NULL;
        xgb_info info;
        ck_assert_int_eq(xgb_compile(json, l1, NULL, &b1, &b1l, err, sizeof err), XGB_OK);
        ck_assert_msg(xgb_compile(ubj, l2, &info, &b2, &b2l, err, sizeof err) == XGB_OK, "%s: %s",
                      names[i], err);
        ck_assert_int_eq(info.format, MODELFILE_XGB_UBJSON);
        ck_assert_str_eq(info.version, "1.7.4");
        ck_assert_uint_eq(b1l, b2l);
        ck_assert_msg(memcmp(b1, b2, b1l) == 0, "%s: blobs differ", names[i]);
        xgb_info_free(&info);
        free(b1);
        free(b2);
        free(json);
        free(ubj);
    }
}
END_TEST

/* Every registered worker kernel (hotpath/hp_scorers.def, through the arena) on every ref case:
 * bit-identical to xgboost, single rows and batches, with and without the compute pool. */
START_TEST(refs_kernel_bit_identical)
{
    char err[256];
    hp_pool *pool = hp_pool_create(1, err, sizeof err);
    ck_assert_msg(pool != NULL, "%s", err);
    refcase cases[16];
    size_t n = ref_manifest(cases, 16);
    uint8_t key[WIRE_MODEL_KEY_SIZE];
    memset(key, 0, sizeof key);
    for (unsigned k = 0; k < hp_scorer_count(); k++) {
        const hp_scorer *sc = hp_scorer_at(k);
        hp_arena *arena = hp_arena_create((size_t)64 << 20, sc, err, sizeof err);
        ck_assert_msg(arena != NULL, "%s", err);
        size_t checked = 0;
        for (size_t c = 0; c < n; c++) {
            size_t nr, nc;
            float *rows = ref_matrix(cases[c].name, "rows.txt", &nr, &nc);
            for (int f = 0; f < cases[c].nfiles; f++) {
                size_t bl;
                model_view v;
                void *blob = ref_compile(cases[c].name, cases[c].files[f], NULL, &bl, &v);
                if (sc->bytes(&v) == 0) { /* this kernel declines the model */
                    free(blob);
                    continue;
                }
                key[0]++;
                key[1] = (uint8_t)k;
                int rc = hp_arena_load(arena, key, &v, err, sizeof err);
                ck_assert_msg(rc == HP_ARENA_LOADED, "load %s: %d %s", cases[c].name, rc, err);
                const uint8_t *keys[1] = {key};
                const hp_model *m = NULL;
                uint32_t h;
                ck_assert_int_eq(hp_arena_acquire(arena, keys, 1, &m, &h), -1);
                for (int margin = 0; margin <= 1; margin++) {
                    size_t pr, pc;
                    float *want =
                        ref_matrix(cases[c].name, margin ? "margin.txt" : "pred.txt", &pr, &pc);
                    ck_assert_uint_eq(m->nout[margin], pc);
                    float *got = malloc(pr * pc * sizeof(float));
                    char what[160];
                    for (int cfg = 0; cfg < 3; cfg++) {
                        memset(got, 0xA5, pr * pc * sizeof(float));
                        if (cfg == 2) /* one row at a time */
                            for (size_t r = 0; r < nr; r++)
                                sc->score(m->layout, rows + r * nc, 1, margin, got + r * pc, NULL,
                                          0);
                        else
                            sc->score(m->layout, rows, nr, margin, got, cfg ? pool : NULL, 0);
                        snprintf(what, sizeof what, "kernel %s: %s/%s margin=%d cfg=%d", sc->name,
                                 cases[c].name, cases[c].files[f], margin, cfg);
                        assert_bits(got, want, pr * pc, pc, what);
                    }
                    free(got);
                    free(want);
                }
                hp_arena_release(arena, &h, 1);
                free(blob);
                checked++;
            }
            free(rows);
        }
        printf("  refs: kernel %s: %zu model files bit-identical to xgboost 3.5.0-dev\n", sc->name,
               checked);
        ck_assert_msg(checked > 0, "kernel %s declined every ref model", sc->name);
        hp_arena_destroy(arena);
    }
    hp_pool_destroy(pool);
}
END_TEST

/* ---- detection ------------------------------------------------------------------------------- */

START_TEST(detect_formats)
{
    size_t len;
    char *s = ref_read("xgb_a_binary_logistic", "model.ubj", &len);
    ck_assert_int_eq(modelfile_detect(s, len), MODELFILE_XGB_UBJSON);
    free(s);
    s = ref_read("xgb_a_binary_logistic", "model.json", &len);
    ck_assert_int_eq(modelfile_detect(s, len), MODELFILE_XGB_JSON);
    free(s);
    static const char lgbm[] = "tree\nversion=v4\nnum_class=1\n";
    ck_assert_int_eq(modelfile_detect(lgbm, strlen(lgbm)), MODELFILE_LGBM_TEXT);
    static const char lgbm_crlf[] = "tree\r\nversion=v4\r\nnum_class=1\r\n";
    ck_assert_int_eq(modelfile_detect(lgbm_crlf, strlen(lgbm_crlf)), MODELFILE_LGBM_TEXT);
    static const struct {
        const char *s;
        int want;
    } cases[] = {
        {"", MODELFILE_UNKNOWN},
        {"{", MODELFILE_XGB_JSON},
        {"  \n{\"learner\":{}}", MODELFILE_XGB_JSON},
        {"{}", MODELFILE_XGB_JSON},
        {"{i\x07learner", MODELFILE_XGB_UBJSON},
        {"{#i\x01", MODELFILE_XGB_UBJSON},
        {"[1,2]", MODELFILE_UNKNOWN},
        {"this is not json", MODELFILE_UNKNOWN},
        {"tree\nversion=v3\n", MODELFILE_LGBM_TEXT}, /* lgbm_compile judges the version */
        {"tree\nversion=v40\n", MODELFILE_LGBM_TEXT},
        {"treeversion=v4\n", MODELFILE_UNKNOWN},     /* "tree" must be a line of its own */
        {"Tree=0\nversion=v4\n", MODELFILE_UNKNOWN}, /* case matters */
        {"{x", MODELFILE_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(modelfile_detect(cases[i].s, strlen(cases[i].s)) == cases[i].want, "case %zu",
                      i);
    ck_assert_str_eq(modelfile_format_name(MODELFILE_XGB_UBJSON), "xgboost-ubjson");
    ck_assert_str_eq(modelfile_format_name(MODELFILE_XGB_JSON), "xgboost-json");
    ck_assert_str_eq(modelfile_format_name(MODELFILE_LGBM_TEXT), "lightgbm-text");
    ck_assert_ptr_null(modelfile_format_name(MODELFILE_UNKNOWN));
    ck_assert_str_eq(modelfile_content_type(MODELFILE_XGB_UBJSON), "application/ubjson");
    ck_assert_str_eq(modelfile_content_type(MODELFILE_XGB_JSON), "application/json");
    ck_assert_str_eq(modelfile_content_type(MODELFILE_LGBM_TEXT), "text/plain");
    ck_assert_int_eq(modelfile_format_from_name("xgboost-ubjson"), MODELFILE_XGB_UBJSON);
    ck_assert_int_eq(modelfile_format_from_name("nope"), MODELFILE_UNKNOWN);
    /* A LightGBM file given to the xgboost compiler is a clear 400, not a JSON parse error. */
    void *blob = NULL;
    size_t bl;
    char err[256];
    ck_assert_int_eq(xgb_compile(lgbm, strlen(lgbm), NULL, &blob, &bl, err, sizeof err),
                     XGB_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "LightGBM"));
}
END_TEST

/* ---- hostile UBJSON -------------------------------------------------------------------------- */

/* A small UBJSON model built here byte by byte, as xgboost's UBJWriter lays it out (keys as 'L' +
 * int64 length, strings 'S' 'L' ..., typed float32/int32/uint8 arrays, generic tree_info).  One
 * tree: root splits feature 0 at 0.5, leaves -1 / 2; base_score 0.5; reg:squarederror. */
typedef struct ubuf {
    char b[4096];
    size_t n;
} ubuf;

static void put(ubuf *u, const void *p, size_t n)
{
    ck_assert_uint_le(u->n + n, sizeof u->b);
    memcpy(u->b + u->n, p, n);
    u->n += n;
}
static void put_c(ubuf *u, char c)
{
    put(u, &c, 1);
}
static void put_be(ubuf *u, uint64_t v, int bytes)
{
    for (int k = bytes - 1; k >= 0; k--)
        put_c(u, (char)(v >> (8 * k)));
}
static void key(ubuf *u, const char *k)
{
    put_c(u, 'L');
    put_be(u, strlen(k), 8);
    put(u, k, strlen(k));
}
static void str(ubuf *u, const char *s)
{
    put_c(u, 'S');
    put_c(u, 'L');
    put_be(u, strlen(s), 8);
    put(u, s, strlen(s));
}
static void kstr(ubuf *u, const char *k, const char *s)
{
    key(u, k);
    str(u, s);
}
static void typed_hdr(ubuf *u, char t, uint64_t n)
{
    put(u, "[$", 2);
    put_c(u, t);
    put(u, "#L", 2);
    put_be(u, n, 8);
}
static void f32s(ubuf *u, const float *v, uint64_t n)
{
    typed_hdr(u, 'd', n);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t x;
        memcpy(&x, &v[i], 4);
        put_be(u, x, 4);
    }
}
static void i32s(ubuf *u, const int32_t *v, uint64_t n)
{
    typed_hdr(u, 'l', n);
    for (uint64_t i = 0; i < n; i++)
        put_be(u, (uint32_t)v[i], 4);
}
static void u8s(ubuf *u, const uint8_t *v, uint64_t n)
{
    typed_hdr(u, 'U', n);
    for (uint64_t i = 0; i < n; i++)
        put_c(u, (char)v[i]);
}

/* Offsets of interesting bytes in the built document, for mutations. */
typedef struct tiny_offs {
    size_t split_count; /* the int64 count of split_conditions' typed array */
    size_t trees_count; /* the int64 count of the generic "trees" array */
    size_t name_len;    /* the int64 length of the "gbtree" string */
    size_t key_len;     /* the int64 length of the key "learner" */
    size_t tree_info;   /* the '[' of tree_info */
} tiny_offs;

static void tiny_ubj(ubuf *u, tiny_offs *o)
{
    static const float split[] = {0.5f, -1.0f, 2.0f}, zeros[] = {0, 0, 0};
    static const int32_t left[] = {1, -1, -1}, right[] = {2, -1, -1}, parents[] = {-1, 0, 0},
                         feat[] = {0, 0, 0};
    static const uint8_t dleft[] = {1, 0, 0}, stype[] = {0, 0, 0};
    u->n = 0;
    put_c(u, '{');
    o->key_len = u->n + 1;
    key(u, "learner");
    put_c(u, '{');
    key(u, "attributes");
    put(u, "{}", 2);
    key(u, "feature_names");
    put(u, "[#L", 3);
    put_be(u, 0, 8);
    key(u, "gradient_booster");
    put_c(u, '{');
    key(u, "model");
    put_c(u, '{');
    key(u, "gbtree_model_param");
    put_c(u, '{');
    kstr(u, "num_parallel_tree", "1");
    kstr(u, "num_trees", "1");
    put_c(u, '}');
    key(u, "iteration_indptr");
    put(u, "[#L", 3);
    put_be(u, 2, 8);
    put(u, "i\x00i\x01", 4);
    key(u, "tree_info");
    o->tree_info = u->n;
    put(u, "[#L", 3);
    put_be(u, 1, 8);
    put(u, "i\x00", 2);
    key(u, "trees");
    put(u, "[#L", 3);
    o->trees_count = u->n;
    put_be(u, 1, 8);
    put_c(u, '{');
    key(u, "base_weights");
    f32s(u, zeros, 3);
    key(u, "categories");
    i32s(u, NULL, 0);
    key(u, "default_left");
    u8s(u, dleft, 3);
    key(u, "id");
    put(u, "i\x00", 2);
    key(u, "left_children");
    i32s(u, left, 3);
    key(u, "parents");
    i32s(u, parents, 3);
    key(u, "right_children");
    i32s(u, right, 3);
    key(u, "split_conditions");
    o->split_count = u->n + 5;
    f32s(u, split, 3);
    key(u, "split_indices");
    i32s(u, feat, 3);
    key(u, "split_type");
    u8s(u, stype, 3);
    key(u, "tree_param");
    put_c(u, '{');
    kstr(u, "num_deleted", "0");
    kstr(u, "num_feature", "2");
    kstr(u, "num_nodes", "3");
    kstr(u, "size_leaf_vector", "1");
    put_c(u, '}');
    put_c(u, '}'); /* tree */
    put_c(u, '}'); /* model */
    key(u, "name");
    o->name_len = u->n + 2;
    str(u, "gbtree");
    put_c(u, '}'); /* gradient_booster */
    key(u, "learner_model_param");
    put_c(u, '{');
    kstr(u, "base_score", "[5E-1]");
    kstr(u, "num_class", "0");
    kstr(u, "num_feature", "2");
    kstr(u, "num_target", "1");
    put_c(u, '}');
    key(u, "objective");
    put_c(u, '{');
    kstr(u, "name", "reg:squarederror");
    put_c(u, '}');
    put_c(u, '}'); /* learner */
    key(u, "version");
    put(u, "[#L", 3);
    put_be(u, 3, 8);
    put(u, "i\x03i\x05i\x00", 6);
    put_c(u, '}');
}

static int compile_buf(const char *b, size_t n, char *err, size_t errlen, float out[2])
{
    char *copy = malloc(n ? n : 1); /* exact size: ASan sees any read past the end */
    memcpy(copy, b, n);
    void *blob = NULL;
    size_t bl;
    xgb_info info;
    int rc = xgb_compile(copy, n, &info, &blob, &bl, err, errlen);
    if (rc == XGB_OK) {
        model_view v;
        ck_assert(model_validate(blob, bl, NULL, 0, &v, NULL, 0) == 0);
        ck_assert_int_eq(info.format, MODELFILE_XGB_UBJSON);
        ck_assert_str_eq(info.version, "3.5.0");
        float rows[4] = {0.25f, 0.0f, 0.75f, 0.0f};
        if (out)
            refeval_predict(&v, rows, 2, 0, out);
        xgb_info_free(&info);
    } else {
        ck_assert_ptr_null(blob);
    }
    free(blob);
    free(copy);
    return rc;
}

START_TEST(ubj_tiny_by_hand)
{
    ubuf u;
    tiny_offs o;
    tiny_ubj(&u, &o);
    char err[256];
    float out[2];
    ck_assert_msg(compile_buf(u.b, u.n, err, sizeof err, out) == XGB_OK, "%s", err);
    /* 0.25 < 0.5 -> leaf -1: 0.5 + -1 = -0.5; 0.75 -> leaf 2: 2.5 (hand computation) */
    ck_assert(out[0] == -0.5f && out[1] == 2.5f);
}
END_TEST

START_TEST(ubj_every_prefix_invalid)
{
    ubuf u;
    tiny_offs o;
    tiny_ubj(&u, &o);
    char err[256];
    for (size_t cut = 0; cut < u.n; cut++)
        ck_assert_msg(compile_buf(u.b, cut, err, sizeof err, NULL) == XGB_INVALID, "cut %zu", cut);
    /* and a real file, sampled */
    size_t len;
    char *s = ref_read("xgb_c_reg_squarederror", "model.ubj", &len);
    for (size_t cut = 0; cut < len; cut += cut < 2048 ? 1 : 4999)
        ck_assert_msg(compile_buf(s, cut, err, sizeof err, NULL) == XGB_INVALID, "cut %zu", cut);
    free(s);
}
END_TEST

/* Writes an int64 big-endian at b[at]. */
static void poke64(char *b, size_t at, uint64_t v)
{
    for (int k = 0; k < 8; k++)
        b[at + (size_t)k] = (char)(v >> (8 * (7 - k)));
}

START_TEST(ubj_lying_counts)
{
    ubuf u;
    tiny_offs o;
    tiny_ubj(&u, &o);
    char err[256];
    ubuf m;
    /* typed array counts: longer than the body, 2^31, 2^62, negative; one more than written */
    static const uint64_t lies[] = {1ull << 31, 1ull << 62, UINT64_MAX,      (uint64_t)-3,
                                    4,          1000000,    (1ull << 32) + 3};
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        m = u;
        poke64(m.b, o.split_count, lies[i]);
        ck_assert_msg(compile_buf(m.b, m.n, err, sizeof err, NULL) == XGB_INVALID,
                      "split count %llu", (unsigned long long)lies[i]);
        m = u;
        poke64(m.b, o.trees_count, lies[i]);
        ck_assert_msg(compile_buf(m.b, m.n, err, sizeof err, NULL) == XGB_INVALID,
                      "trees count %llu", (unsigned long long)lies[i]);
        m = u;
        poke64(m.b, o.name_len, lies[i]);
        ck_assert_msg(compile_buf(m.b, m.n, err, sizeof err, NULL) == XGB_INVALID,
                      "string length %llu", (unsigned long long)lies[i]);
        m = u;
        poke64(m.b, o.key_len, lies[i]);
        ck_assert_msg(compile_buf(m.b, m.n, err, sizeof err, NULL) == XGB_INVALID,
                      "key length %llu", (unsigned long long)lies[i]);
    }
    /* the messages say what was wrong */
    m = u;
    poke64(m.b, o.split_count, 1ull << 31);
    compile_buf(m.b, m.n, err, sizeof err, NULL);
    ck_assert_msg(strstr(err, "larger than the rest") != NULL, "%s", err);
    m = u;
    poke64(m.b, o.name_len, (uint64_t)-1);
    compile_buf(m.b, m.n, err, sizeof err, NULL);
    ck_assert_msg(strstr(err, "negative length") != NULL, "%s", err);
    /* a typed array one element short: the rest is misread and refused */
    m = u;
    poke64(m.b, o.split_count, 2);
    ck_assert_int_eq(compile_buf(m.b, m.n, err, sizeof err, NULL), XGB_INVALID);
    /* a generic array whose count was 2^31 while holding one element, as int32 'l' */
    m = u;
    memcpy(m.b + o.tree_info, "[#l\x7f\xff\xff\xff", 8); /* shorter header: shift the rest */
    memmove(m.b + o.tree_info + 8, u.b + o.tree_info + 11, u.n - o.tree_info - 11);
    m.n = u.n - 3;
    ck_assert_int_eq(compile_buf(m.b, m.n, err, sizeof err, NULL), XGB_INVALID);
    ck_assert_msg(strstr(err, "larger than the rest") != NULL, "%s", err);
}
END_TEST

/* Replaces the first occurrence of from (n bytes) in u with to (m bytes). */
static int ureplace(ubuf *u, const char *from, size_t n, const char *to, size_t m)
{
    for (size_t i = 0; i + n <= u->n; i++)
        if (memcmp(u->b + i, from, n) == 0) {
            ck_assert_uint_le(u->n - n + m, sizeof u->b);
            memmove(u->b + i + m, u->b + i + n, u->n - i - n);
            memcpy(u->b + i, to, m);
            u->n = u->n - n + m;
            return 0;
        }
    return -1;
}

START_TEST(ubj_bad_markers)
{
    ubuf u;
    tiny_offs o;
    tiny_ubj(&u, &o);
    char err[256];
    static const struct {
        const char *from, *to;
        size_t fn, tn;
        const char *msg;
    } muts[] = {
        {"i\x00i\x01", "N\x00i\x01", 4, 4, "no-op"},          /* 'N' as an array element */
        {"{}", "{$i#i\x01", 2, 6, "typed UBJSON objects"},    /* typed object */
        {"[$U#L", "[$S#L", 5, 5, "typed array element"},      /* typed array of strings */
        {"[$U#L", "[$U#", 5, 4, "integer length"},            /* count without its marker */
        {"[$U#L", "[$U L", 5, 5, "without a count"},          /* '$' without '#' */
        {"i\x00i\x01", "H\x00i\x01", 4, 4, "high-precision"}, /* 'H' */
        {"i\x00i\x01", "X\x00i\x01", 4, 4, "unknown UBJSON marker"},
        {"[5E-1]", "[5E\xff]", 6, 6, "base_score"}, /* invalid UTF-8 in a string */
    };
    for (size_t i = 0; i < sizeof muts / sizeof muts[0]; i++) {
        ubuf m = u;
        ck_assert_msg(ureplace(&m, muts[i].from, muts[i].fn, muts[i].to, muts[i].tn) == 0,
                      "mutation %zu not applied", i);
        ck_assert_msg(compile_buf(m.b, m.n, err, sizeof err, NULL) == XGB_INVALID, "mutation %zu",
                      i);
        ck_assert_msg(strstr(err, muts[i].msg) != NULL, "mutation %zu: want %s, got %s", i,
                      muts[i].msg, err);
    }
    /* trailing bytes */
    ubuf m = u;
    put_c(&m, 'Z');
    ck_assert_int_eq(compile_buf(m.b, m.n, err, sizeof err, NULL), XGB_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "trailing"));
    /* the root must be an object ('{' + count is one; a counted object is fine) */
    m = u;
    ck_assert_int_eq(
        ureplace(&m, "{L\0\0\0\0\0\0\0\x07learner", 17, "{#i\x02L\0\0\0\0\0\0\0\x07learner", 20),
        0);
    m.n--; /* a counted object has no closing '}' */
    ck_assert_msg(compile_buf(m.b, m.n, err, sizeof err, NULL) == XGB_OK, "%s", err);
    /* integers where floats are wanted are fine; floats where integers are wanted are not */
    m = u;
    ck_assert_int_eq(ureplace(&m, "idi\x00", 4, "idd\x00\x00\x00\x00", 7), 0);
    ck_assert_int_eq(compile_buf(m.b, m.n, err, sizeof err, NULL), XGB_INVALID);
}
END_TEST

/* Nesting: depth 64 (the root object is 1) is accepted, 65 is not; a deep document does not
 * blow the stack. */
START_TEST(ubj_nesting_depth)
{
    ubuf u;
    tiny_offs o;
    tiny_ubj(&u, &o);
    char err[256];
    for (int depth = 63; depth <= 66; depth++) {
        ubuf m = u;
        int k = depth - 2; /* arrays inside "attributes" (depth 2) */
        char nest[256];
        size_t nn = 0;
        nest[nn++] = '{';
        nest[nn++] = 'i';
        nest[nn++] = 1;
        nest[nn++] = 'x';
        for (int i = 0; i < k; i++)
            nest[nn++] = '[';
        for (int i = 0; i < k; i++)
            nest[nn++] = ']';
        nest[nn++] = '}';
        ck_assert_int_eq(ureplace(&m, "{}", 2, nest, nn), 0);
        int rc = compile_buf(m.b, m.n, err, sizeof err, NULL);
        ck_assert_msg(rc == (depth + 1 <= XGB_MAX_DEPTH ? XGB_OK : XGB_INVALID), "depth %d: %s",
                      depth, err);
    }
    size_t n = 1u << 20;
    char *deep = malloc(n);
    deep[0] = '{';
    deep[1] = 'i';
    deep[2] = 1;
    deep[3] = 'x';
    memset(deep + 4, '[', n - 4);
    ck_assert_int_eq(compile_buf(deep, n, err, sizeof err, NULL), XGB_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "nested too deeply"));
    free(deep);
}
END_TEST

/* The index never grows past len/4 + 4096 nodes, whatever the document: a UBJSON document made
 * only of empty objects in a counted array is refused as too dense, not indexed. */
START_TEST(ubj_index_bound)
{
    size_t n = 200000;
    char *s = malloc(n);
    memcpy(s, "{i\x01x[#L", 7);
    poke64(s, 7, (n - 16) / 2);
    size_t p = 15;
    while (p + 2 <= n - 1) {
        s[p++] = '{';
        s[p++] = '}';
    }
    s[p++] = '}';
    char err[256];
    ck_assert_int_eq(compile_buf(s, p, err, sizeof err, NULL), XGB_INVALID);
    ck_assert_msg(strstr(err, "too many values") != NULL, "%s", err);
    free(s);
}
END_TEST

/* Sets the last string parameter k (a key followed by an 'S' 'L' string) of u to v: the learner's
 * parameters come after the trees, so "num_feature" is learner_model_param's. */
static void uparam(ubuf *u, const char *k, const char *v)
{
    size_t kl = strlen(k), vl = strlen(v);
    for (size_t i = u->n - kl - 10; i-- > 0;)
        if (memcmp(u->b + i, k, kl) == 0 && u->b[i + kl] == 'S' && u->b[i + kl + 1] == 'L') {
            size_t at = i + kl + 2, old = 0;
            for (int b = 0; b < 8; b++)
                old = old << 8 | (unsigned char)u->b[at + (size_t)b];
            ck_assert_uint_le(u->n - old + vl, sizeof u->b);
            memmove(u->b + at + 8 + vl, u->b + at + 8 + old, u->n - at - 8 - old);
            memcpy(u->b + at + 8, v, vl);
            poke64(u->b, at, vl);
            u->n = u->n - old + vl;
            return;
        }
    ck_abort_msg("no parameter %s", k);
}

/* Multi-target rules on the tiny model: a vector base_score needs one value per group; with two
 * targets each target starts at its own base_score; multi:softprob with num_target > 1 is
 * refused. */
START_TEST(multi_target_rules)
{
    ubuf u;
    tiny_offs o;
    tiny_ubj(&u, &o);
    char err[256];
    ubuf m = u;
    uparam(&m, "base_score", "[5E-1,1E0]");
    ck_assert_int_eq(compile_buf(m.b, m.n, err, sizeof err, NULL), XGB_INVALID);
    ck_assert_msg(strstr(err, "base_score") != NULL, "%s", err);
    uparam(&m, "num_target", "2");
    char *copy = malloc(m.n);
    memcpy(copy, m.b, m.n);
    void *blob = NULL;
    size_t bl;
    xgb_info info;
    ck_assert_msg(xgb_compile(copy, m.n, &info, &blob, &bl, err, sizeof err) == XGB_OK, "%s", err);
    model_view v;
    ck_assert(model_validate(blob, bl, NULL, 0, &v, NULL, 0) == 0);
    ck_assert_uint_eq(info.num_target, 2);
    ck_assert_uint_eq(info.num_class, 2);
    ck_assert_uint_eq(model_outputs_per_row(&v, 0), 2);
    float rows[2] = {0.25f, 0.0f}, out[2];
    refeval_predict(&v, rows, 1, 0, out);
    /* target 0: 0.5 + -1 (the tree's leaf); target 1 has no trees: its base_score 1 */
    ck_assert(out[0] == -0.5f && out[1] == 1.0f);
    xgb_info_free(&info);
    free(blob);
    free(copy);
    /* the same vector with multi:softprob, two classes and two targets: refused (422) */
    ubuf sp = m;
    uparam(&sp, "num_class", "2");
    for (size_t i = 0; i + 16 <= sp.n; i++)
        if (memcmp(sp.b + i, "reg:squarederror", 16) == 0) {
            memcpy(sp.b + i, "multi:softprob", 14);
            memmove(sp.b + i + 14, sp.b + i + 16, sp.n - i - 16);
            sp.n -= 2;
            poke64(sp.b, i - 8, 14);
            break;
        }
    ck_assert_int_eq(compile_buf(sp.b, sp.n, err, sizeof err, NULL), XGB_UNSUPPORTED);
    ck_assert_msg(strstr(err, "multi-target") != NULL, "%s", err);
    /* and with one target it is an ordinary two-class softprob */
    uparam(&sp, "num_target", "1");
    ck_assert_msg(compile_buf(sp.b, sp.n, err, sizeof err, NULL) == XGB_OK, "%s", err);
}
END_TEST

/* Counts beyond the limits, declared in parameters: 2^31 features, 2^31 targets, 2^31 trees. */
START_TEST(huge_declared_counts)
{
    ubuf u;
    tiny_offs o;
    tiny_ubj(&u, &o);
    char err[256];
    static const char *const keys[] = {"num_feature", "num_target", "num_trees", "num_nodes"};
    static const char *const vals[] = {"2147483648", "2147483648", "4294967296", "-1", "1e3"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        for (size_t v = 0; v < sizeof vals / sizeof vals[0]; v++) {
            ubuf m = u;
            uparam(&m, keys[k], vals[v]);
            int rc = compile_buf(m.b, m.n, err, sizeof err, NULL);
            ck_assert_msg(rc == XGB_INVALID || rc == XGB_UNSUPPORTED, "%s=%s: %s", keys[k], vals[v],
                          xgb_status_name(rc));
        }
    /* a tree declaring 2^24 nodes while holding 3 is refused before anything is sized by it */
    ubuf m = u;
    uparam(&m, "num_nodes", "16777216");
    ck_assert_int_eq(compile_buf(m.b, m.n, err, sizeof err, NULL), XGB_INVALID);
    ck_assert_msg(strstr(err, "left_children") != NULL, "%s", err);
    /* at the limit + 1 of targets: unsupported, naming it */
    m = u;
    uparam(&m, "num_target", "4097");
    ck_assert_int_eq(compile_buf(m.b, m.n, err, sizeof err, NULL), XGB_UNSUPPORTED);
    ck_assert_msg(strstr(err, "num_target") != NULL, "%s", err);
}
END_TEST

static Suite *xgbfmt_suite(void)
{
    Suite *s = suite_create("xgbfmt");
    TCase *tc = tcase_create("refs");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, refs_refeval_bit_identical);
    tcase_add_test(tc, refs_metadata);
    tcase_add_test(tc, refs_json_and_ubj_same_blob);
    tcase_add_test(tc, second_writer_ubj_same_blob);
    tcase_add_test(tc, refs_kernel_bit_identical);
    suite_add_tcase(s, tc);
    TCase *th = tcase_create("ubjson");
    tcase_set_timeout(th, 300);
    tcase_add_test(th, detect_formats);
    tcase_add_test(th, ubj_tiny_by_hand);
    tcase_add_test(th, ubj_every_prefix_invalid);
    tcase_add_test(th, ubj_lying_counts);
    tcase_add_test(th, ubj_bad_markers);
    tcase_add_test(th, ubj_nesting_depth);
    tcase_add_test(th, ubj_index_bound);
    tcase_add_test(th, multi_target_rules);
    tcase_add_test(th, huge_declared_counts);
    suite_add_tcase(s, th);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(xgbfmt_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
