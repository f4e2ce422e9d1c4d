/* test_kernel.c - the worker's scoring kernels: EVERY scorer registered in hotpath/hp_scorers.def
 * (hp_scorer_at(0..hp_scorer_count()-1): the tuned hp_forest.c, the plain reference layout, and
 * whatever is added there), through hotpath/hp_arena.c and hotpath/hp_k_score.c, differentially
 * against the reference evaluator common/refeval.c, which test_model.c pins to xgboost 1.7.4's
 * own predictions.  Each test below is a Check loop test over the registry (one iteration per
 * scorer, which prints "<test>: kernel <name>"), so a new scorer is held to all of it without an
 * edit here; the few assertions about hp_forest's own layout (heap/linked/binned) run only on
 * the forest scorer's layout.  A scorer may decline models of a format it does not hold (its
 * bytes() returns 0): they are skipped for it and counted ("declined"), but it may not decline
 * every fixture.  What is checked:
 *   - every fixture: compiled with xgb_compile, validated, loaded into an arena, scored with and
 *     without the compute pool: bit-identical to refeval, and as close to xgboost as refeval is;
 *   - thousands of random models built with model_builder (depths 0..30, sparse and full trees,
 *     NaN default directions, categorical sets up to 157 words, dart weights, 1..5 groups, every
 *     objective) on hostile inputs (NaN, +-inf, thresholds exactly and one ulp off, +-0,
 *     denormals, categorical edge values), for batch sizes crossing the 8-row block and the
 *     parallel split: bit-identical to refeval;
 *   - the arena: LRU eviction order, pinned models survive, too-big models, resident reloads;
 *   - the LOAD_MODEL / SCORE handlers on in-memory payloads: every error answer.
 *   - the worker's explainer (hotpath/hp_shap.c) against the reference TreeSHAP
 *     (common/treeshap.c, which test_treeshap.c pins to xgboost's pred_contribs): every fixture and
 *     random models with random covers (zero covers included), bit for bit, contributions and
 *     margins; the margins' transform is SCORE's output bit for bit.
 *   - a test scorer that declines some models and fails some builds: LOAD_MODEL answers
 *     BAD_PAYLOAD / INTERNAL and the arena keeps nothing of either.
 * Expected values come from refeval (a second implementation) or are written out here. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hp_arena.h"
#include "hp_forest.h"
#include "hp_k_explain.h"
#include "hp_k_score.h"
#include "hp_pool.h"
#include "hp_scorer.h"
#include "hp_shap.h"
#include "hp_store.h"
#include "model.h"
#include "model_build.h"
#include "refeval.h"
#include "sha256.h"
#include "treeshap.h"
#include "wire.h"
#include "xgbmodel.h"
#include "fixtures_io.h"

/* ---- helpers --------------------------------------------------------------------------------- */

/* Fixture access asserting on failure (tests/lib/fixtures_io.h does the reading). */
static float *read_matrix(const char *path, size_t *rows, size_t *cols)
{
    float *m = fx_matrix_file(path, rows, cols);
    ck_assert_msg(m != NULL, "cannot read %s (set VIGIL_FIXTURES?)", path);
    return m;
}

static void *compile_fixture(const char *name, size_t *blob_len, model_view *v)
{
    char err[256];
    void *blob = fx_compile(name, NULL, blob_len, v, err, sizeof err);
    ck_assert_msg(blob != NULL, "%s: %s", name, err);
    return blob;
}

/* Index of the first output whose bits differ, or -1. */
static long first_diff(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fx_bits(a[i]) != fx_bits(b[i]))
            return (long)i;
    return -1;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd64(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}
static uint32_t rnd(uint32_t n) /* uniform in [0, n) */
{
    return (uint32_t)((rnd64() >> 32) % n);
}
static float rndf(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rnd64() >> 40) / (float)(1 << 24);
}

static void rnd_key(uint8_t key[WIRE_MODEL_KEY_SIZE])
{
    for (unsigned i = 0; i < WIRE_MODEL_KEY_SIZE; i++)
        key[i] = (uint8_t)rnd64();
}

/* Scorer, arena + pool for a test; the pool has at least one helper even on one CPU, so the
 * parallel split always runs.  Each loop test starts with use_scorer(_i, ...). */
static const hp_scorer *T_sc;
/* Models the scorer under test declined (its bytes() returned 0: a format it does not hold);
 * reset by use_scorer, printed by the tests that count. */
static unsigned T_declined;

static hp_arena *T_arena;
static hp_pool *T_pool;

static void kernel_setup(void)
{
    char err[256];
    T_pool = hp_pool_create(1, err, sizeof err);
    ck_assert_msg(T_pool != NULL, "%s", err);
}

/* Selects registered scorer i for this iteration and gives it a fresh arena of bytes. */
static int T_scalar; /* the forest kernel with hp_forest_set_simd(0): the scalar batch walk only */

/* Scorer i (its index in hp_scorers.def), or i == hp_scorer_count(): the forest kernel again with
 * the AVX2 top levels off (hp_forest_set_simd), so both batch walks meet the same checks. */
static void use_scorer_arena(int i, size_t bytes, const char *test)
{
    char err[256];
    T_scalar = (unsigned)i == hp_scorer_count();
    hp_forest_set_simd(!T_scalar);
    T_sc = T_scalar ? &hp_scorer_forest : hp_scorer_at((unsigned)i);
    ck_assert_ptr_nonnull(T_sc);
    T_declined = 0;
    hp_arena_destroy(T_arena);
    T_arena = hp_arena_create(bytes, T_sc, err, sizeof err);
    ck_assert_msg(T_arena != NULL, "%s", err);
    printf("  %s: kernel %s%s\n", test, T_sc->name, T_scalar ? " (scalar batch walk)" : "");
}

static void use_scorer(int i, const char *test)
{
    use_scorer_arena(i, (size_t)16 << 20, test);
}

/* The forest layout of m when the scorer under test is hp_forest's (white-box checks), else NULL.
 */
static const hp_forest *forest_of(const hp_model *m)
{
    return T_sc == &hp_scorer_forest ? (const hp_forest *)m->layout : NULL;
}

/* Bytes a model takes in the arena with the scorer under test. */
static size_t arena_bytes(const model_view *v)
{
    size_t b = T_sc->bytes(v);
    return (b + HP_LAYOUT_ALIGN - 1) / HP_LAYOUT_ALIGN * HP_LAYOUT_ALIGN;
}

static void kernel_teardown(void)
{
    hp_pool_destroy(T_pool);
    hp_arena_destroy(T_arena);
    T_pool = NULL;
    T_arena = NULL;
}

/* Loads v under a fresh random key and pins it.  Returns the model, *handle for release; or NULL
 * when the scorer declines v (the caller skips it: nothing is pinned). */
static const hp_model *load_pin(const model_view *v, uint8_t key[WIRE_MODEL_KEY_SIZE],
                                uint32_t *handle)
{
    char err[256];
    rnd_key(key);
    int rc = hp_arena_load(T_arena, key, v, err, sizeof err);
    if (rc == HP_ARENA_UNSUPPORTED) {
        ck_assert_uint_eq(T_sc->bytes(v), 0);
        T_declined++;
        return NULL;
    }
    ck_assert_msg(rc == HP_ARENA_LOADED, "load: %d %s", rc, err);
    const uint8_t *keys[1] = {key};
    const hp_model *m = NULL;
    ck_assert_int_eq(hp_arena_acquire(T_arena, keys, 1, &m, handle), -1);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(m->layout);
    return m;
}

/* Scores rows both ways and with every split configuration; asserts bit equality.  what names the
 * case in messages. */
static void check_same(const model_view *v, const hp_model *m, const float *rows, size_t nrows,
                       int margin, const char *what)
{
    uint32_t nout = model_outputs_per_row(v, margin);
    ck_assert_uint_eq(m->nout[margin != 0], nout);
    ck_assert_uint_eq(m->num_feature, v->hdr->num_feature);
    size_t n = nrows * nout;
    float *want = malloc((n ? n : 1) * sizeof(float));
    float *got = malloc((n ? n : 1) * sizeof(float));
    ck_assert(want && got);
    refeval_predict(v, rows, nrows, margin, want);
    static const struct {
        int pool;
        uint64_t min_work;
    } cfgs[] = {{0, 0}, {1, 0}, {1, HP_PARALLEL_MIN_WORK}};
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        memset(got, 0xA5, n * sizeof(float)); /* poison: every output must be written */
        T_sc->score(m->layout, rows, nrows, margin, got, cfgs[c].pool ? T_pool : NULL,
                    cfgs[c].min_work);
        long d = first_diff(got, want, n);
        ck_assert_msg(d < 0,
                      "kernel %s: %s: %zu rows, margin=%d, pool=%d min_work=%llu: output %ld (row "
                      "%ld) is %a (0x%08x), refeval %a (0x%08x)",
                      T_sc->name, what, nrows, margin, cfgs[c].pool,
                      (unsigned long long)cfgs[c].min_work, d, d / (long)nout, (double)got[d],
                      fx_bits(got[d]), (double)want[d], fx_bits(want[d]));
    }
    free(want);
    free(got);
}

/* ---- layouts of models as current xgboost trains them ---------------------------------------- */

/* Every tests/fixtures/refs model (xgboost 3.5 hist: depth-wise trees that are not heap-shaped,
 * multi-class, multi-target, vector leaves): scored bit-identically to refeval on its rows, and the
 * forest kernel gives the numeric ones the binned layout (xgb_f_speed_binary is the issue-11
 * benchmark model: it used to fall back to the plain layout because 322 of its trees are sparse),
 * and says why the categorical one is not binned. */
START_TEST(refs_models_get_the_binned_layout)
{
    use_scorer_arena(_i, (size_t)64 << 20, "refs_models_get_the_binned_layout");
    /* blk: every padded heap in row blocks (1) or none (0: xgb_a's copies would pass the 4x cap,
     * the others are not deeper than 5) */
    static const struct {
        const char *cs, *file;
        int binned, blk;
    } cases[] = {
        {"xgb_a_binary_logistic", "model.ubj", 1, 0},
        {"xgb_b_multi_softprob", "model.ubj", 1, 0},
        {"xgb_c_reg_squarederror", "model.json", 1, 0},
        {"xgb_d_categorical", "model.json", 0, 0},
        {"xgb_e_multi_target", "model.json", 1, 0},
        {"xgb_e2_multi_output_tree", "model.json", 1, 0},
        {"xgb_f_speed_binary", "model.ubj", 1, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char path[512], err[256];
        size_t len, blob_len, nrows, ncols;
        snprintf(path, sizeof path, "%s/refs/%s/%s", fx_dir(), cases[c].cs, cases[c].file);
        char *src = fx_slurp(path, &len);
        ck_assert_msg(src != NULL, "cannot read %s", path);
        void *blob = NULL;
        ck_assert_msg(xgb_compile(src, len, NULL, &blob, &blob_len, err, sizeof err) == XGB_OK,
                      "%s: %s", path, err);
        free(src);
        model_view v;
        ck_assert(model_validate(blob, blob_len, NULL, 0, &v, err, sizeof err) == 0);
        snprintf(path, sizeof path, "%s/refs/%s/rows.txt", fx_dir(), cases[c].cs);
        float *rows = read_matrix(path, &nrows, &ncols);
        ck_assert_uint_eq(ncols, v.hdr->num_feature);
        uint8_t key[WIRE_MODEL_KEY_SIZE];
        uint32_t h;
        const hp_model *m = load_pin(&v, key, &h);
        if (m != NULL) {
            const hp_forest *f = forest_of(m);
            if (f) {
                char why[256];
                hp_forest_describe(f, why, sizeof why);
                printf("  refs: %s: %s\n", cases[c].cs, why);
                ck_assert_msg(((f->flags & HPF_F_BINNED) != 0) == cases[c].binned, "%s: %s",
                              cases[c].cs, why);
                if (!cases[c].binned)
                    ck_assert_uint_eq(f->why, HPF_WHY_CATEGORICAL);
                else
                    ck_assert_msg(f->blk_trees == (cases[c].blk ? f->num_trees : 0), "%s: %s",
                                  cases[c].cs, why);
            }
            check_same(&v, m, rows, nrows, 0, cases[c].cs);
            check_same(&v, m, rows, nrows, 1, cases[c].cs);
            check_same(&v, m, rows, 1, 0, cases[c].cs);
            hp_arena_release(T_arena, &h, 1);
        }
        free(rows);
        free(blob);
    }
}
END_TEST

/* ---- fixtures -------------------------------------------------------------------------------- */

START_TEST(fixtures_bit_identical_to_refeval)
{
    use_scorer(_i, "fixtures_bit_identical_to_refeval");
    char names[64][64];
    size_t nfix = fx_manifest(names, 64);
    ck_assert_uint_ge(nfix, 20);
    size_t total = 0, same_as_xgb = 0;
    for (size_t fi = 0; fi < nfix; fi++) {
        size_t blob_len, nr, nc;
        model_view v;
        void *blob = compile_fixture(names[fi], &blob_len, &v);
        uint8_t key[WIRE_MODEL_KEY_SIZE];
        uint32_t h;
        const hp_model *f = load_pin(&v, key, &h);
        if (f == NULL) {
            free(blob);
            continue;
        }
        char path[512];
        snprintf(path, sizeof path, "%s/%s.rows.txt", fx_dir(), names[fi]);
        float *rows = read_matrix(path, &nr, &nc);
        ck_assert_uint_eq(nc, v.hdr->num_feature);
        for (int margin = 0; margin <= 1; margin++) {
            check_same(&v, f, rows, nr, margin, names[fi]);
            /* Against xgboost's own outputs: the kernel is exactly as close as refeval. */
            size_t pr, pc;
            snprintf(path, sizeof path, "%s/%s.%s.txt", fx_dir(), names[fi],
                     margin ? "margin" : "pred");
            float *xgb = read_matrix(path, &pr, &pc);
            ck_assert_uint_eq(pr * pc, nr * f->nout[margin]);
            float *got = malloc(pr * pc * sizeof(float));
            T_sc->score(f->layout, rows, nr, margin, got, T_pool, 0);
            size_t ident = 0;
            for (size_t i = 0; i < pr * pc; i++)
                ident += fx_bits(got[i]) == fx_bits(xgb[i]) || (isnan(got[i]) && isnan(xgb[i]));
            ck_assert_msg(ident * 1000 >= pr * pc * 999, "%s: %zu/%zu equal to xgboost", names[fi],
                          ident, pr * pc);
            total += pr * pc;
            same_as_xgb += ident;
            free(got);
            free(xgb);
        }
        /* Batch sizes across the block and the split, from the fixture's own rows. */
        static const size_t sizes[] = {1, 2, 3, 7, 8, 9, 10, 11, 16, 17};
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (size_t off = 0; off + sizes[s] <= nr; off += 97)
                check_same(&v, f, rows + off * nc, sizes[s], (int)(off & 1), names[fi]);
        /* xgboost refuses inf; the fixtures use +-FLT_MAX.  Swapped for +-inf, still identical. */
        for (size_t i = 0; i < nr * nc; i++)
            if (fabsf(rows[i]) == FLT_MAX)
                rows[i] = copysignf(INFINITY, rows[i]);
        check_same(&v, f, rows, nr, 1, names[fi]);
        hp_arena_release(T_arena, &h, 1);
        free(rows);
        free(blob);
    }
    printf("  fixtures: kernel %s: outputs equal to xgboost 1.7.4's: %zu/%zu (%u of %zu fixtures "
           "declined by the kernel)\n",
           T_sc->name, same_as_xgb, total, T_declined, nfix);
    /* A kernel may decline formats it does not hold, not everything. */
    ck_assert_uint_lt(T_declined, nfix);
}
END_TEST

/* ---- random models --------------------------------------------------------------------------- */

static int T_covers; /* random_model gives nodes random covers (MODEL_F_COVERS) */

typedef struct gen {
    model_src_node *nodes;
    uint32_t n, cap;
    int64_t *cats; /* category storage, referenced by nodes */
    uint32_t ncats, cats_cap;
    uint32_t nf;
    int allow_cat;
    float thr[16]; /* this model's thresholds, reused by the inputs */
    uint32_t nthr;
} gen;

static const int64_t CAT_POOL[] = {0, 1, 2, 3, 4, 5, 30, 31, 32, 33, 63, 64, 100, 1000, 5000};
#define NCAT_POOL (sizeof CAT_POOL / sizeof CAT_POOL[0])

static float pick_threshold(gen *g)
{
    static const float special[] = {0.0f,    -0.0f,    1.0f,  0.5f,  -1.0f, 1e-40f,   -1e-40f,
                                    FLT_MAX, -FLT_MAX, 32.0f, 31.5f, 1e30f, INFINITY, -INFINITY};
    float t;
    switch (rnd(4)) {
    case 0:
        t = special[rnd(sizeof special / sizeof special[0])];
        break;
    case 1:
        if (g->nthr > 0) {
            t = g->thr[rnd(g->nthr)]; /* shared thresholds: inputs equal to several at once */
            break;
        }
        /* fall through */
    default:
        t = rndf(-3.0f, 3.0f);
        break;
    }
    if (g->nthr < 16)
        g->thr[g->nthr++] = t;
    return t;
}

static float pick_leaf(void)
{
    switch (rnd(16)) {
    case 0:
    case 15:
        return -0.0f;
    case 1:
        return 0.0f;
    case 2:
        return 1e-41f; /* denormal */
    case 3:
        return rndf(-1e6f, 1e6f);
    default:
        return rndf(-2.0f, 2.0f);
    }
}

/* Appends a subtree (preorder numbering, so the builder has to renumber) and returns its root
 * index.  style 0: full-ish, 1: sparse, 2: a long chain (deep, to force the linked layout). */
static int32_t gen_node(gen *g, uint32_t depth, uint32_t max_depth, int style)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->nodes = realloc(g->nodes, g->cap * sizeof *g->nodes);
        ck_assert_ptr_nonnull(g->nodes);
    }
    uint32_t me = g->n++;
    model_src_node *nd = &g->nodes[me];
    memset(nd, 0, sizeof *nd);
    int internal = depth < max_depth && (style == 0 ? rnd(10) < 9 : style == 1 ? rnd(10) < 6 : 1);
    if (!internal) {
        nd->left = nd->right = -1;
        nd->value = pick_leaf();
        return (int32_t)me;
    }
    nd->feature = rnd(g->nf);
    nd->default_left = (int)rnd(2);
    if (g->allow_cat && rnd(3) == 0) {
        uint32_t k = 1 + rnd(5);
        if (g->ncats + k > g->cats_cap) {
            /* Nodes keep pointers into cats: never reallocate, size it up front (see below). */
            ck_abort_msg("category storage exhausted");
        }
        nd->categorical = 1;
        nd->cats = g->cats + g->ncats;
        nd->n_cats = k;
        for (uint32_t i = 0; i < k; i++)
            g->cats[g->ncats++] = CAT_POOL[rnd(NCAT_POOL)];
    } else {
        nd->value = pick_threshold(g);
    }
    int32_t l, r;
    if (style == 2) { /* one side stops at once, the other goes on */
        int deep_left = (int)rnd(2);
        l = deep_left ? gen_node(g, depth + 1, max_depth, 2) : gen_node(g, max_depth, max_depth, 2);
        r = deep_left ? gen_node(g, max_depth, max_depth, 2) : gen_node(g, depth + 1, max_depth, 2);
    } else {
        l = gen_node(g, depth + 1, max_depth, style);
        r = gen_node(g, depth + 1, max_depth, style);
    }
    nd = &g->nodes[me]; /* gen_node may have moved the array */
    nd->left = l;
    nd->right = r;
    return (int32_t)me;
}

/* A random model: returns the blob (free()) and fills *v; *g keeps its thresholds. */
static void *random_model(gen *g, model_view *v, size_t *len, int *heap_trees, int *linked_trees)
{
    uint32_t obj = 1 + rnd(MODEL_OBJ_MAX - 1);
    int multi = obj == MODEL_OBJ_SOFTPROB || obj == MODEL_OBJ_SOFTMAX;
    uint32_t k = multi ? 1 + rnd(5) : 1;
    uint32_t flags = rnd(3) == 0 ? MODEL_F_DART : 0;
    if (T_covers)
        flags |= MODEL_F_COVERS;
    g->nf = 1 + rnd(12);
    g->allow_cat = rnd(2);
    /* Half the models avoid categorical splits and chains, so that many take the binned layout
     * (every tree a heap tree, numeric splits only). */
    int binnable = (int)rnd(2);
    if (binnable)
        g->allow_cat = 0;
    g->nthr = 0;
    /* -0.0 makes the sign of a zero dart contribution visible: refeval adds (0.0f + leaf) * w,
     * which is +0 for a -0 leaf, and -0 + +0 = +0 but -0 + -0 = -0. */
    uint32_t bc = rnd(6);
    float base = bc == 0 ? 0.0f : bc == 1 ? -0.0f : rndf(-2.0f, 2.0f);
    model_builder *b = model_builder_new(obj, flags, g->nf, k, 0.5f, base);
    ck_assert_ptr_nonnull(b);
    uint32_t ntrees = rnd(8) == 0 ? 0 : 1 + rnd(20);
    char err[256];
    for (uint32_t t = 0; t < ntrees; t++) {
        int style = binnable ? (int)rnd(2) * (rnd(4) == 0) : (int)rnd(3);
        uint32_t max_depth = style == 2 ? 10 + rnd(21) : binnable ? rnd(13) : rnd(9);
        g->n = 0;
        g->ncats = 0;
        gen_node(g, 0, max_depth, style);
        /* one tree in eight spans 2^-120..2^120: its pweights leave the range where the
         * explainer's vector walks divide by a reciprocal (hotpath/hp_divk.h), and fall back */
        const int wide = rnd(8) == 0;
        for (uint32_t i = 0; T_covers && i < g->n; i++)
            g->nodes[i].cover = rnd(20) == 0 ? 0.0f
                                : wide       ? ldexpf(rndf(1.0f, 2.0f), (int)rnd(241) - 120)
                                             : rndf(0.1f, 500.0f);
        float w = (flags & MODEL_F_DART) ? (rnd(5) == 0 ? 0.0f : rndf(-0.5f, 2.0f)) : 1.0f;
        uint32_t grp = rnd(k);
        ck_assert_msg(model_builder_add_tree(b, grp, w, g->nodes, g->n, err, sizeof err) == 0,
                      "add_tree: %s", err);
    }
    void *blob = NULL;
    ck_assert_msg(model_build(b, &blob, len, err, sizeof err) == 0, "build: %s", err);
    model_builder_free(b);
    ck_assert_int_eq(model_validate(blob, *len, NULL, 0, v, err, sizeof err), 0);
    (void)heap_trees;
    (void)linked_trees;
    return blob;
}

/* One hostile input value for a model with thresholds g->thr. */
static float pick_input(const gen *g, int allow_nan)
{
    static const float cat_edges[] = {-1.0f,       -0.5f,       -0.0f,       0.5f,    1.5f,
                                      2.99f,       31.0f,       32.0f,       33.0f,   63.0f,
                                      64.0f,       100.0f,      1000.5f,     5000.0f, 5001.0f,
                                      16777215.0f, 16777216.0f, 16777218.0f, 1e30f,   FLT_MAX};
    switch (rnd(allow_nan ? 9 : 8)) {
    case 0:
        return INFINITY;
    case 1:
        return -INFINITY;
    case 2: {
        if (g->nthr == 0)
            return 0.0f;
        float t = g->thr[rnd(g->nthr)];
        int how = (int)rnd(3);
        return how == 0 ? t : how == 1 ? nextafterf(t, INFINITY) : nextafterf(t, -INFINITY);
    }
    case 3:
        return rnd(2) ? 0.0f : -0.0f;
    case 4:
        return rnd(2) ? 1e-40f : -1e-42f;
    case 5:
        return cat_edges[rnd(sizeof cat_edges / sizeof cat_edges[0])];
    case 6:
        return (float)rnd(70); /* in-range categories */
    case 7:
        return rndf(-3.0f, 3.0f);
    default:
        return NAN;
    }
}

/* nrows rows; blocks of 8 are NaN-free with probability 1/2, so both walks are exercised. */
static float *random_rows(const gen *g, size_t nrows)
{
    float *rows = malloc((nrows * g->nf + 1) * sizeof(float));
    ck_assert_ptr_nonnull(rows);
    int clean = 0;
    for (size_t r = 0; r < nrows; r++) {
        if (r % HPF_BLOCK == 0)
            clean = (int)rnd(2);
        for (uint32_t c = 0; c < g->nf; c++)
            rows[r * g->nf + c] = pick_input(g, !clean);
    }
    return rows;
}

static int has_categorical(const model_view *v)
{
    for (uint32_t i = 0; i < v->hdr->num_nodes; i++)
        if (v->nodes[i].left != -1 && (v->nodes[i].split & MODEL_NODE_CATEGORICAL))
            return 1;
    return 0;
}

static unsigned n_random_models(void);

/* The worker's explain layout of v, built into malloc'd memory (as the arena would). */
static const void *build_explain(const model_view *v, void **mem)
{
    size_t need = hp_shap_layout.bytes(v);
    ck_assert_uint_gt(need, 0);
    *mem = aligned_alloc(HP_LAYOUT_ALIGN,
                         (need + HP_LAYOUT_ALIGN - 1) & ~(size_t)(HP_LAYOUT_ALIGN - 1));
    ck_assert_ptr_nonnull(*mem);
    const void *l = hp_shap_layout.build(v, *mem, need);
    ck_assert_ptr_nonnull(l);
    return l;
}

/* hp_shap_explain == treeshap_explain bit for bit (contributions, margins); the margins are
 * refeval's and their transform is refeval_predict's output, bit for bit.  Returns the number of
 * values compared. */
static size_t check_explain(const model_view *v, const float *rows, size_t nrows, const char *what)
{
    void *mem;
    const void *l = build_explain(v, &mem);
    uint32_t k = v->hdr->num_class, ncol = v->hdr->num_feature + 1;
    size_t nc = nrows * k * ncol + 1, nm = nrows * k + 1;
    float *c1 = malloc(nc * 4), *c2 = malloc(nc * 4), *m1 = malloc(nm * 4), *m2 = malloc(nm * 4);
    float *ref = malloc(nm * 4), *pred = malloc(nm * 4), *tr = malloc((size_t)k * 4 + 4);
    void *s1 = malloc(treeshap_scratch_bytes(v)), *s2 = malloc(hp_shap_scratch_bytes(l));
    ck_assert(c1 && c2 && m1 && m2 && ref && pred && tr && s1 && s2);
    treeshap_explain(v, rows, nrows, c1, m1, s1);
    /* every walk (hp_shap_explain_isa's allow_vec 0..3: portable, auto, depth-first AVX2, level
     * order with AVX2 arithmetic and feature stamps), each where this CPU and the trees allow */
    for (int vec = 0; vec < 4; vec++) {
        hp_shap_explain_isa(l, rows, nrows, c2, m2, s2, vec);
        long d = first_diff(c1, c2, nrows * k * ncol);
        ck_assert_msg(d < 0, "%s (vec %d): contribution %ld differs: reference %a, worker %a", what,
                      vec, d, d >= 0 ? c1[d] : 0.0f, d >= 0 ? c2[d] : 0.0f);
        d = first_diff(m1, m2, nrows * k);
        ck_assert_msg(d < 0, "%s (vec %d): margin %ld differs", what, vec, d);
    }
    refeval_predict(v, rows, nrows, 1, ref);
    ck_assert_msg(first_diff(m2, ref, nrows * k) < 0, "%s: margins differ from refeval", what);
    uint32_t nout = model_outputs_per_row(v, 0);
    refeval_predict(v, rows, nrows, 0, pred);
    for (size_t r = 0; r < nrows; r++) {
        refeval_transform(v->hdr->objective, m2 + r * k, k, tr);
        ck_assert_msg(first_diff(tr, pred + r * nout, nout) < 0,
                      "%s row %zu: transform(margin) differs from SCORE", what, r);
    }
    free(c1), free(c2), free(m1), free(m2), free(ref), free(pred), free(tr), free(s1), free(s2);
    free(mem);
    return nrows * k * (ncol + 1);
}

/* Path weights outside the range where the AVX-512 walk divides by a reciprocal
 * (hotpath/hp_divk.h: 2^-60..2^60): complete trees 8 deep (511 nodes, so the level-order walk
 * takes them) whose covers jump between 2^-30, 1 and 2^100, so that cover fractions of 2^-130
 * (dividends in the subnormal range, where the fused form is wrong for some divisors), 2^130
 * (infinite) and ordinary ones meet on one path; features repeat on a path one split in four
 * (unwinds).  Every walk equals the reference bit for bit: the fall-back division has to run. */
START_TEST(explain_extreme_weights_bit_identical)
{
    enum { NF = 8, DEPTH = 8, NN = (2 << DEPTH) - 1, NT = 24, NR = 64 };
    static model_src_node nd[NN];
    static const float scale[3] = {0x1p-30f, 1.0f, 0x1p100f};
    char err[256];
    rng_state = 0x452821E638D01377ull;
    model_builder *b = model_builder_new(MODEL_OBJ_LOGISTIC, MODEL_F_COVERS, NF, 1, 0.5f, 0.0f);
    ck_assert_ptr_nonnull(b);
    for (int t = 0; t < NT; t++) {
        for (int i = 0; i < NN; i++) {
            const int level = 31 - __builtin_clz((unsigned)i + 1);
            const int leaf = level == DEPTH;
            nd[i] = (model_src_node){.left = leaf ? -1 : 2 * i + 1,
                                     .right = leaf ? -1 : 2 * i + 2,
                                     .feature = rnd(4) == 0 ? rnd(NF) : (uint32_t)level % NF,
                                     .default_left = (int)rnd(2),
                                     .value = leaf ? rndf(-1.0f, 1.0f) : rndf(0.2f, 0.8f),
                                     .cover = scale[rnd(3)] * rndf(0.5f, 1.0f)};
        }
        ck_assert_msg(model_builder_add_tree(b, 0, 1.0f, nd, NN, err, sizeof err) == 0, "%s", err);
    }
    void *blob = NULL;
    size_t len;
    ck_assert_msg(model_build(b, &blob, &len, err, sizeof err) == 0, "%s", err);
    model_builder_free(b);
    model_view v;
    ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
    float rows[NR * NF];
    for (int i = 0; i < NR * NF; i++)
        rows[i] = rnd(10) == 0 ? NAN : rndf(0.0f, 1.0f);
    size_t n = check_explain(&v, rows, NR, "extreme cover fractions");
    printf("  explain: extreme cover fractions: %zu values bit-identical to common/treeshap.c\n",
           n);
    free(blob);
}
END_TEST

START_TEST(explain_bit_identical_to_treeshap)
{
    char names[64][FX_NAME_MAX];
    size_t nfix = fx_manifest(names, 64), total = 0;
    ck_assert_uint_ge(nfix, 27);
    for (size_t f = 0; f < nfix; f++) {
        size_t blob_len, nr, nc;
        model_view v;
        void *blob = compile_fixture(names[f], &blob_len, &v);
        float *rows = fx_matrix(names[f], "rows.txt", &nr, &nc);
        ck_assert_ptr_nonnull(rows);
        total += check_explain(&v, rows, nr, names[f]);
        free(rows);
        free(blob);
    }
    printf("  explain: fixtures: %zu values bit-identical to common/treeshap.c\n", total);
    gen g = {0};
    g.cats_cap = 4096;
    g.cats = malloc(g.cats_cap * sizeof *g.cats);
    ck_assert_ptr_nonnull(g.cats);
    rng_state = 0x13198A2E03707344ull;
    T_covers = 1;
    unsigned nmodels = n_random_models() / 4, explained = 0;
    total = 0;
    for (unsigned m = 0; m < nmodels; m++) {
        model_view v;
        size_t len;
        void *blob = random_model(&g, &v, &len, NULL, NULL);
        ck_assert_ptr_nonnull(v.covers);
        char what[64];
        snprintf(what, sizeof what, "random model %u", m);
        static const size_t sizes[] = {1, 9, 50};
        for (size_t s = 0; s < 3; s++) {
            float *rows = random_rows(&g, sizes[s]);
            total += check_explain(&v, rows, sizes[s], what);
            free(rows);
        }
        explained++;
        free(blob);
    }
    T_covers = 0;
    free(g.cats);
    free(g.nodes);
    printf("  explain: %u random models: %zu values bit-identical to common/treeshap.c\n",
           explained, total);
}
END_TEST

static unsigned n_random_models(void)
{
    const char *s = getenv("VIGIL_KERNEL_MODELS");
    return s && *s ? (unsigned)strtoul(s, NULL, 10) : 2000;
}

START_TEST(random_models_bit_identical_to_refeval)
{
    use_scorer(_i, "random_models_bit_identical_to_refeval");
    gen g = {0};
    g.cats_cap = 4096;
    g.cats = malloc(g.cats_cap * sizeof *g.cats);
    ck_assert_ptr_nonnull(g.cats);
    static const size_t sizes[] = {1, 7, 8, 9, 1000};
    unsigned nmodels = n_random_models();
    uint64_t heap = 0, linked = 0, dart = 0, cat = 0, binned = 0, avx2 = 0, rows_total = 0;
    uint64_t objs[MODEL_OBJ_MAX] = {0};
    rng_state = 0x243F6A8885A308D3ull;
    for (unsigned m = 0; m < nmodels; m++) {
        model_view v;
        size_t len;
        void *blob = random_model(&g, &v, &len, NULL, NULL);
        uint8_t key[WIRE_MODEL_KEY_SIZE];
        uint32_t h;
        const hp_model *mm = load_pin(&v, key, &h); /* the 16 MiB arena evicts as it goes */
        if (mm == NULL) {
            free(blob);
            continue;
        }
        const hp_forest *f = forest_of(mm);
        if (f) {
            heap += f->heap_trees;
            linked += f->num_trees - f->heap_trees;
            binned += (f->flags & HPF_F_BINNED) != 0;
            avx2 += (f->flags & HPF_F_AVX2) != 0;
        }
        dart += (v.hdr->flags & MODEL_F_DART) != 0;
        cat += has_categorical(&v);
        objs[v.hdr->objective]++;
        char what[64];
        snprintf(what, sizeof what, "random model %u (objective %s)", m,
                 model_objective_name(v.hdr->objective));
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            float *rows = random_rows(&g, sizes[s]);
            check_same(&v, mm, rows, sizes[s], (int)((m + s) & 1), what);
            if (s == 0)
                check_same(&v, mm, rows, sizes[s], (int)((m + s + 1) & 1), what);
            rows_total += sizes[s];
            free(rows);
        }
        hp_arena_release(T_arena, &h, 1);
        free(blob);
    }
    printf("  random: kernel %s: %u models (%u declined, %llu heap trees, %llu linked trees, %llu "
           "dart, %llu with "
           "categorical splits, %llu binned), %llu rows, each scored 3 ways\n",
           T_sc->name, nmodels, T_declined, (unsigned long long)heap, (unsigned long long)linked,
           (unsigned long long)dart, (unsigned long long)cat, (unsigned long long)binned,
           (unsigned long long)rows_total);
    /* The generator must have reached every case the kernels distinguish (the layout counts are
     * hp_forest's, known only on its own layout). */
    if (T_sc == &hp_scorer_forest) {
        ck_assert_uint_gt(heap, 0);
        ck_assert_uint_gt(linked, 0);
        ck_assert_uint_gt(binned, 0);
        ck_assert_uint_gt(nmodels - binned, 0);
        /* The AVX2 walk where the CPU has it (then on every binned forest), never when off. */
#if defined(__x86_64__) && defined(__GNUC__)
        ck_assert_uint_eq(avx2, T_scalar || !__builtin_cpu_supports("avx2") ? 0 : binned);
#else
        ck_assert_uint_eq(avx2, 0);
#endif
    }
    ck_assert_uint_gt(dart, 0);
    ck_assert_uint_gt(cat, 0);
    if (nmodels >= 500)
        for (uint32_t o = 1; o < MODEL_OBJ_MAX; o++)
            ck_assert_msg(objs[o] > 0, "objective %u never generated", o);
    free(g.nodes);
    free(g.cats);
}
END_TEST

/* ---- layout ---------------------------------------------------------------------------------- */

/* A complete depth-d tree with thresholds 0: row value < 0 goes left.  Leaf i (left to right)
 * holds i, so the output names the path taken. */
static void *complete_tree_model(uint32_t d, model_view *v, size_t *len)
{
    uint32_t n = (2u << d) - 1;
    model_src_node *nodes = calloc(n, sizeof *nodes);
    for (uint32_t i = 0; i < n; i++) {
        if (2 * i + 1 < n) {
            nodes[i].left = (int32_t)(2 * i + 1);
            nodes[i].right = (int32_t)(2 * i + 2);
            uint32_t level = 0;
            for (uint32_t j = i + 1; j > 1; j >>= 1)
                level++;
            nodes[i].feature = level;
            nodes[i].value = 0.0f;
        } else {
            nodes[i].left = nodes[i].right = -1;
            nodes[i].value = (float)(i - ((1u << d) - 1));
        }
    }
    char err[256];
    model_builder *b = model_builder_new(MODEL_OBJ_SQUAREDERROR, 0, d ? d : 1, 1, 0.5f, 0.0f);
    ck_assert_int_eq(model_builder_add_tree(b, 0, 1.0f, nodes, n, err, sizeof err), 0);
    void *blob;
    ck_assert_int_eq(model_build(b, &blob, len, err, sizeof err), 0);
    model_builder_free(b);
    free(nodes);
    ck_assert_int_eq(model_validate(blob, *len, NULL, 0, v, err, sizeof err), 0);
    return blob;
}

/* Shallow heaps are padded to the forest's deepest (<= 9) so that single rows walk runs of equal
 * depth; when that would break the growth cap (one depth-9 tree among many stumps), each tree
 * keeps its own depth.  Both forests binned and exact. */
START_TEST(binned_pad_to_forest_depth)
{
    use_scorer(_i, "binned_pad_to_forest_depth");
    for (int many = 0; many < 2; many++) {
        /* Tree 0: complete depth 9 over features 0..8; then 3 (or 400) stumps on feature 0. */
        uint32_t n = (2u << 9) - 1, nstumps = many ? 400 : 3;
        model_src_node *nodes = calloc(n, sizeof *nodes);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t level = 0;
            for (uint32_t j = i + 1; j > 1; j >>= 1)
                level++;
            int inner = 2 * i + 1 < n;
            nodes[i].left = inner ? (int32_t)(2 * i + 1) : -1;
            nodes[i].right = inner ? (int32_t)(2 * i + 2) : -1;
            nodes[i].feature = level;
            nodes[i].value = inner ? (float)level * 0.25f - 1.0f : (float)i;
        }
        char err[256];
        model_builder *b = model_builder_new(MODEL_OBJ_SQUAREDERROR, 0, 9, 1, 0.5f, 0.0f);
        ck_assert_int_eq(model_builder_add_tree(b, 0, 1.0f, nodes, n, err, sizeof err), 0);
        for (uint32_t t = 0; t < nstumps; t++) {
            model_src_node st[3] = {{.left = 1, .right = 2, .feature = 0, .value = 0.5f},
                                    {.left = -1, .right = -1, .value = (float)t},
                                    {.left = -1, .right = -1, .value = -(float)t}};
            ck_assert_int_eq(model_builder_add_tree(b, 0, 1.0f, st, 3, err, sizeof err), 0);
        }
        void *blob;
        size_t len;
        ck_assert_int_eq(model_build(b, &blob, &len, err, sizeof err), 0);
        model_builder_free(b);
        free(nodes);
        model_view v;
        ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
        uint8_t key[WIRE_MODEL_KEY_SIZE];
        uint32_t h;
        const hp_model *m = load_pin(&v, key, &h);
        if (m != NULL) {
            const hp_forest *f = forest_of(m);
            if (f) {
                ck_assert(f->flags & HPF_F_BINNED);
                ck_assert_uint_eq(f->trees[0].depth, 9);
                /* 3 stumps padded to depth 9 fit 4x the plain layout; 400 do not. */
                ck_assert_uint_eq(f->trees[1].depth, many ? 1 : 9);
            }
            float rows[5 * 9];
            for (int r = 0; r < 5 * 9; r++)
                rows[r] = (float)((r * 7) % 11) * 0.3f - 1.2f;
            rows[3] = NAN;
            check_same(&v, m, rows, 5, 1, "pad to forest depth");
            check_same(&v, m, rows, 1, 1, "pad to forest depth, one row");
            hp_arena_release(T_arena, &h, 1);
        }
        free(blob);
    }
}
END_TEST

START_TEST(layout_heap_and_linked)
{
    use_scorer(_i, "layout_heap_and_linked");
    /* Depth 12 complete: heap; depth 13: linked (over HPF_HEAP_MAX_DEPTH), in hp_forest. */
    for (uint32_t d = 11; d <= 13; d++) {
        model_view v;
        size_t len;
        void *blob = complete_tree_model(d, &v, &len);
        uint8_t key[WIRE_MODEL_KEY_SIZE];
        uint32_t h;
        const hp_model *m = load_pin(&v, key, &h);
        if (m == NULL) {
            free(blob);
            continue;
        }
        const hp_forest *f = forest_of(m);
        if (f) {
            ck_assert_uint_eq(f->heap_trees, d <= 12 ? 1 : 0);
            ck_assert_uint_eq(f->trees[0].depth, d);
            /* Binned either way: a padded heap up to depth 12, linked beyond. */
            ck_assert(f->flags & HPF_F_BINNED);
            ck_assert_uint_eq(f->linked_trees, d <= 12 ? 0 : 1);
        }
        /* Path by hand: features 0..d-1, x < 0 goes left; leaf index = bits of "went right". */
        float row[16];
        uint32_t want = 0;
        for (uint32_t i = 0; i < d; i++) {
            int right = (int)((0x5A5u >> i) & 1u);
            row[i] = right ? 0.0f : -1.0f; /* 0 is not < 0: right */
            want = want * 2 + (uint32_t)right;
        }
        float out;
        T_sc->score(m->layout, row, 1, 1, &out, NULL, 0);
        ck_assert_float_eq(out, (float)want);
        hp_arena_release(T_arena, &h, 1);
        free(blob);
    }
}
END_TEST

/* The binned layout's limits, at N and N + 1: distinct thresholds of one feature
 * (HPF_BIN_MAX_THRESHOLDS), features (HPF_BIN_MAX_FEATURES), and a NaN threshold (never binned).
 * 400 complete depth-8 trees: internal node i (over all trees) splits feature i % nf at
 * (i % distinct) / 4 (rank 0 alternately as -0 and +0: one rank); rows hit thresholds exactly,
 * one ulp either side, NaN, +-inf, -0 and denormals. */
static void check_bin_limit(uint32_t nf, uint32_t distinct, int nan_thr, int want_binned)
{
    enum { D = 8, NT = 400 };
    uint32_t n = (2u << D) - 1;
    model_src_node *nodes = calloc(n, sizeof *nodes);
    model_builder *b = model_builder_new(MODEL_OBJ_SQUAREDERROR, 0, nf, 1, 0.5f, 0.0f);
    char err[256];
    uint32_t next = 0;
    for (uint32_t t = 0; t < NT; t++) {
        for (uint32_t i = 0; i < n; i++) {
            if (2 * i + 1 < n) {
                uint32_t c = next % distinct;
                nodes[i].left = (int32_t)(2 * i + 1);
                nodes[i].right = (int32_t)(2 * i + 2);
                nodes[i].feature = nf > 1 ? next % nf : 0;
                nodes[i].default_left = (int)(next & 1);
                nodes[i].value = c == 0 && (next & 2) ? -0.0f : (float)c / 4.0f;
                if (nan_thr && next == 77)
                    nodes[i].value = NAN;
                next++;
            } else {
                nodes[i].left = nodes[i].right = -1;
                nodes[i].value = rndf(-1.0f, 1.0f);
            }
        }
        ck_assert_int_eq(model_builder_add_tree(b, 0, 1.0f, nodes, n, err, sizeof err), 0);
    }
    void *blob;
    size_t len;
    model_view v;
    ck_assert_int_eq(model_build(b, &blob, &len, err, sizeof err), 0);
    model_builder_free(b);
    ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
    uint8_t key[WIRE_MODEL_KEY_SIZE];
    uint32_t h;
    const hp_model *m = load_pin(&v, key, &h);
    if (m == NULL) {
        free(blob);
        free(nodes);
        return;
    }
    const hp_forest *f = forest_of(m);
    if (f)
        ck_assert_msg(((f->flags & HPF_F_BINNED) != 0) == want_binned,
                      "nf %u, %u thresholds, nan %d: binned %d", nf, distinct, nan_thr,
                      (f->flags & HPF_F_BINNED) != 0);
    size_t nrows = 300;
    float *rows = malloc(nrows * nf * sizeof(float));
    for (size_t i = 0; i < nrows * nf; i++) {
        float t = (float)rnd(distinct + 2) / 4.0f;
        switch (rnd(8)) {
        case 0:
            rows[i] = nextafterf(t, INFINITY);
            break;
        case 1:
            rows[i] = nextafterf(t, -INFINITY);
            break;
        case 2:
            rows[i] = rnd(2) ? NAN : rnd(2) ? INFINITY : -INFINITY;
            break;
        case 3:
            rows[i] = rnd(2) ? -0.0f : 1e-42f;
            break;
        default:
            rows[i] = t;
        }
    }
    check_same(&v, m, rows, nrows, 1, "binned limits");
    check_same(&v, m, rows, 1, 1, "binned limits, one row");
    hp_arena_release(T_arena, &h, 1);
    free(rows);
    free(blob);
    free(nodes);
}

START_TEST(binned_layout_limits)
{
    use_scorer(_i, "binned_layout_limits");
    check_bin_limit(1, HPF_BIN_MAX_THRESHOLDS, 0, 1);
    check_bin_limit(1, HPF_BIN_MAX_THRESHOLDS + 1, 0, 0);
    check_bin_limit(HPF_BIN_MAX_FEATURES, 100, 0, 1);
    check_bin_limit(HPF_BIN_MAX_FEATURES + 1, 100, 0, 0);
    check_bin_limit(7, 1000, 1, 0);
    check_bin_limit(7, 1000, 0, 1);
}
END_TEST

/* A tree of depth exactly D (a spine of internal nodes down the left, the rest random: padded in
 * the binned layout; spine 2: every node, a complete tree), numeric splits only. */
static int32_t gen_exact(gen *g, uint32_t depth, uint32_t D, int spine)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->nodes = realloc(g->nodes, g->cap * sizeof *g->nodes);
        ck_assert_ptr_nonnull(g->nodes);
    }
    uint32_t me = g->n++;
    model_src_node *nd = &g->nodes[me];
    memset(nd, 0, sizeof *nd);
    if (depth == D || (!spine && rnd(10) == 0)) {
        nd->left = nd->right = -1;
        nd->value = pick_leaf();
        return (int32_t)me;
    }
    nd->feature = rnd(g->nf);
    nd->default_left = (int)rnd(2);
    nd->value = pick_threshold(g);
    int32_t l = gen_exact(g, depth + 1, D, spine);
    int32_t r = gen_exact(g, depth + 1, D, spine == 2 ? 2 : 0);
    nd = &g->nodes[me];
    nd->left = l;
    nd->right = r;
    return (int32_t)me;
}

/* Single rows walk runs of equal-depth binned trees several at a time (and a run's leftovers one
 * by one), from depth 6 in the row-block copy; random models almost never have such runs.  Every
 * binned depth 0..HPF_HEAP_MAX_DEPTH, runs of 1..40 trees broken by other depths, gbtree and dart,
 * 1..3 groups; 1 and 2 rows. */
START_TEST(binned_single_row_runs)
{
    use_scorer(_i, "binned_single_row_runs");
    gen g = {0};
    unsigned binned = 0, blocked = 0;
    rng_state = 0x9E3779B97F4A7C15ull;
    for (uint32_t D = 0; D <= HPF_HEAP_MAX_DEPTH; D++) {
        for (int rep = 0; rep < 4; rep++) {
            uint32_t k = rep & 1 ? 3 : 1;
            uint32_t flags = rep & 2 ? MODEL_F_DART : 0;
            g.nf = 1 + rnd(12);
            g.allow_cat = 0;
            g.nthr = 0;
            model_builder *b = model_builder_new(k > 1 ? MODEL_OBJ_SOFTPROB : MODEL_OBJ_LOGISTIC,
                                                 flags, g.nf, k, 0.5f, rndf(-1.0f, 1.0f));
            ck_assert_ptr_nonnull(b);
            char err[256];
            uint32_t runs = 1 + rnd(4);
            for (uint32_t r = 0; r < runs; r++) {
                uint32_t len = 1 + rnd(40), d = r & 1 ? rnd(HPF_HEAP_MAX_DEPTH + 1) : D;
                for (uint32_t t = 0; t < len; t++) {
                    g.n = 0;
                    gen_exact(&g, 0, d, 1);
                    float w =
                        (flags & MODEL_F_DART) ? (rnd(5) == 0 ? 0.0f : rndf(-0.5f, 2.0f)) : 1.0f;
                    ck_assert_int_eq(
                        model_builder_add_tree(b, rnd(k), w, g.nodes, g.n, err, sizeof err), 0);
                }
            }
            void *blob;
            size_t len;
            model_view v;
            ck_assert_int_eq(model_build(b, &blob, &len, err, sizeof err), 0);
            model_builder_free(b);
            ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
            uint8_t key[WIRE_MODEL_KEY_SIZE];
            uint32_t h;
            const hp_model *m = load_pin(&v, key, &h);
            if (m == NULL) {
                free(blob);
                continue;
            }
            const hp_forest *f = forest_of(m);
            binned += f && (f->flags & HPF_F_BINNED) != 0; /* all-leaf models are smaller plain */
            blocked += f && f->blk_trees > 0;
            for (int i = 0; i < 40; i++) {
                size_t nrows = 1 + (size_t)(i & 1);
                float *rows = random_rows(&g, nrows);
                check_same(&v, m, rows, nrows, i & 2 ? 1 : 0, "binned single-row runs");
                free(rows);
            }
            hp_arena_release(T_arena, &h, 1);
            free(blob);
        }
    }
    if (T_sc == &hp_scorer_forest) {
        ck_assert_uint_ge(binned, 32);  /* 52 of 52 with this seed */
        ck_assert_uint_ge(blocked, 20); /* depth >= 6 somewhere: single rows walk row blocks */
        printf("  binned single-row runs: %u of 52 models binned, %u with row blocks\n", binned,
               blocked);
    }
    free(g.nodes);
}
END_TEST

/* Row blocks at every depth they exist for (6..HPF_HEAP_MAX_DEPTH: two or three groups, the last
 * one partial or whole): forests of complete trees of that depth (random sparse ones deeper than 9
 * are linked, so binned_single_row_runs rarely reaches them), in runs of 16 broken by a linked
 * tree (depth 14) and a depth-3 heap, plus a leftover; single rows and pairs against refeval, and
 * every complete tree must have its copy. */
START_TEST(row_blocks_every_depth)
{
    use_scorer(_i, "row_blocks_every_depth");
    gen g = {0};
    rng_state = 0xD1B54A32D192ED03ull;
    for (uint32_t D = 6; D <= HPF_HEAP_MAX_DEPTH; D++) {
        g.nf = 2 + rnd(20);
        g.allow_cat = 0;
        g.nthr = 0;
        model_builder *b = model_builder_new(MODEL_OBJ_LOGISTIC, 0, g.nf, 1, 0.5f, 0.0f);
        ck_assert_ptr_nonnull(b);
        char err[256];
        /* 16 complete, 1 linked, 16 complete, 1 shallow, 17 complete */
        static const uint32_t kinds[][2] = {{16, 0}, {1, 14}, {16, 0}, {1, 3}, {17, 0}};
        uint32_t complete = 0;
        for (size_t r = 0; r < sizeof kinds / sizeof kinds[0]; r++) {
            for (uint32_t t = 0; t < kinds[r][0]; t++) {
                g.n = 0;
                if (kinds[r][1] == 0) {
                    gen_exact(&g, 0, D, 2); /* complete */
                    complete++;
                } else {
                    gen_exact(&g, 0, kinds[r][1], 1);
                }
                ck_assert_int_eq(model_builder_add_tree(b, 0, 1.0f, g.nodes, g.n, err, sizeof err),
                                 0);
            }
        }
        void *blob;
        size_t len;
        model_view v;
        ck_assert_int_eq(model_build(b, &blob, &len, err, sizeof err), 0);
        model_builder_free(b);
        ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
        uint8_t key[WIRE_MODEL_KEY_SIZE];
        uint32_t h;
        const hp_model *m = load_pin(&v, key, &h);
        ck_assert_ptr_nonnull(m);
        const hp_forest *f = forest_of(m);
        if (f) {
            char why[320];
            /* up to depth 9 the depth-3 heap is padded to D (bin_pad_depth): a copy too */
            uint32_t want = complete + (D <= 9);
            ck_assert_msg((f->flags & HPF_F_BINNED) && f->blk_trees == want,
                          "depth %u: %u of %u trees in row blocks: %s", D, f->blk_trees, want,
                          hp_forest_describe(f, why, sizeof why));
        }
        for (int i = 0; i < 30; i++) {
            size_t nrows = 1 + (size_t)(i & 1);
            float *rows = random_rows(&g, nrows);
            check_same(&v, m, rows, nrows, i & 2 ? 1 : 0, "row blocks");
            free(rows);
        }
        hp_arena_release(T_arena, &h, 1);
        free(blob);
    }
    free(g.nodes);
}
END_TEST

/* ---- arena ----------------------------------------------------------------------------------- */

/* A model of exactly one depth-8 complete tree: its layout takes a fixed number of bytes. */
START_TEST(arena_lru_pins_and_limits)
{
    char err[256];
    model_view v;
    size_t len;
    void *blob = complete_tree_model(8, &v, &len);
    use_scorer(_i, "arena_lru_pins_and_limits");
    if (T_sc->bytes(&v) == 0) {
        printf("  arena_lru_pins_and_limits: kernel %s declines the model: skipped\n", T_sc->name);
        free(blob);
        return;
    }
    size_t fb = arena_bytes(&v);
    use_scorer_arena(_i, 3 * fb, "arena_lru_pins_and_limits"); /* room for exactly three */

    uint8_t k[5][WIRE_MODEL_KEY_SIZE];
    for (int i = 0; i < 5; i++)
        rnd_key(k[i]);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(hp_arena_load(T_arena, k[i], &v, err, sizeof err), HP_ARENA_LOADED);
    ck_assert_int_eq(hp_arena_load(T_arena, k[0], &v, err, sizeof err), HP_ARENA_RESIDENT);
    /* Use order now: 1, 2, 0 (0 was just touched by the reload).  Loading 3 evicts 1. */
    ck_assert_int_eq(hp_arena_load(T_arena, k[3], &v, err, sizeof err), HP_ARENA_LOADED);
    ck_assert_int_eq(hp_arena_touch(T_arena, k[1]), 0);
    ck_assert_int_eq(hp_arena_touch(T_arena, k[0]), 1);
    ck_assert_int_eq(hp_arena_touch(T_arena, k[2]), 1);
    ck_assert_int_eq(hp_arena_touch(T_arena, k[3]), 1);
    /* Pin 3 (least recent now); loading 4 must evict 0 instead. */
    const uint8_t *keys[1] = {k[3]};
    const hp_model *f;
    uint32_t h;
    ck_assert_int_eq(hp_arena_acquire(T_arena, keys, 1, &f, &h), -1);
    ck_assert_int_eq(hp_arena_load(T_arena, k[4], &v, err, sizeof err), HP_ARENA_LOADED);
    ck_assert_int_eq(hp_arena_touch(T_arena, k[3]), 1);
    ck_assert_int_eq(hp_arena_touch(T_arena, k[0]), 0);
    /* The pinned forest still scores correctly after its neighbours were replaced. */
    float row[8] = {0, -1, 0, -1, 0, -1, 0, -1}, out;
    T_sc->score(f->layout, row, 1, 1, &out, NULL, 0);
    ck_assert_float_eq(out, (float)0xAA); /* right, left, right, ... = 10101010b */
    hp_arena_release(T_arena, &h, 1);

    /* Acquire of several keys: the first missing one is reported, nothing stays pinned. */
    const uint8_t *two[3] = {k[3], k[0], k[1]};
    const hp_model *fs[3];
    uint32_t hs[3];
    ck_assert_int_eq(hp_arena_acquire(T_arena, two, 3, fs, hs), 1);

    hp_arena_stats st;
    hp_arena_get_stats(T_arena, &st);
    ck_assert_uint_eq(st.models_resident, 3);
    ck_assert_uint_eq(st.loads, 5);
    ck_assert_uint_eq(st.evictions, 2);
    ck_assert_uint_eq(st.bytes_used, 3 * fb);
    ck_assert_uint_eq(st.bytes_total, 3 * fb);

    /* Everything pinned: a fourth load waits HP_ARENA_WAIT_MS and gives up (BUSY). */
    const uint8_t *all[3] = {k[2], k[3], k[4]};
    ck_assert_int_eq(hp_arena_acquire(T_arena, all, 3, fs, hs), -1);
    ck_assert_int_eq(hp_arena_load(T_arena, k[0], &v, err, sizeof err), HP_ARENA_BUSY);
    ck_assert_ptr_nonnull(strstr(err, "arena full"));
    hp_arena_release(T_arena, hs, 3);
    ck_assert_int_eq(hp_arena_load(T_arena, k[0], &v, err, sizeof err), HP_ARENA_LOADED);
    free(blob);

    /* Bigger than the whole arena: TOO_BIG at once, whatever is resident. */
    blob = complete_tree_model(10, &v, &len);
    ck_assert_uint_gt(arena_bytes(&v), 3 * fb);
    ck_assert_int_eq(hp_arena_load(T_arena, k[1], &v, err, sizeof err), HP_ARENA_TOO_BIG);
    ck_assert_ptr_nonnull(strstr(err, "VIGIL_HOTPATH_MEMORY_MB"));
    free(blob);
}
END_TEST

/* Many small models through a small arena: the hash index (backward-shift deletion) and the
 * first-fit placement keep every resident key findable, and resident models intact. */
START_TEST(arena_index_survives_churn)
{
    char err[256];
    use_scorer_arena(_i, (size_t)1 << 20, "arena_index_survives_churn");
    gen g = {0};
    g.cats_cap = 4096;
    g.cats = malloc(g.cats_cap * sizeof *g.cats);
    enum { N = 3000 };
    static uint8_t keys[N][WIRE_MODEL_KEY_SIZE];
    rng_state = 77;
    for (int i = 0; i < N; i++) {
        model_view v;
        size_t len;
        void *blob = random_model(&g, &v, &len, NULL, NULL);
        rnd_key(keys[i]);
        if (i % 7 == 3) /* same UUID, other source: a distinct key */
            memcpy(keys[i], keys[i - 1], 16);
        int rc = hp_arena_load(T_arena, keys[i], &v, err, sizeof err);
        if (rc == HP_ARENA_UNSUPPORTED) { /* the scorer declines this model */
            ck_assert_int_eq(hp_arena_touch(T_arena, keys[i]), 0);
            T_declined++;
            free(blob);
            continue;
        }
        ck_assert_int_eq(rc, HP_ARENA_LOADED);
        const uint8_t *kp[1] = {keys[i]};
        const hp_model *f;
        uint32_t h;
        ck_assert_int_eq(hp_arena_acquire(T_arena, kp, 1, &f, &h), -1);
        float *rows = random_rows(&g, 9);
        check_same(&v, f, rows, 9, i & 1, "churn");
        free(rows);
        hp_arena_release(T_arena, &h, 1);
        free(blob);
    }
    hp_arena_stats st;
    hp_arena_get_stats(T_arena, &st);
    uint64_t found = 0;
    for (int i = 0; i < N; i++)
        found += (uint64_t)hp_arena_touch(T_arena, keys[i]);
    ck_assert_uint_eq(found, st.models_resident);
    ck_assert_uint_eq(st.loads, N - T_declined);
    ck_assert_uint_eq(st.loads - st.evictions, st.models_resident);
    ck_assert_uint_le(st.bytes_used, st.bytes_total);
    printf("  churn: kernel %s: %d loads, %llu evictions, %llu resident, %llu bytes used\n",
           T_sc->name, N, (unsigned long long)st.evictions, (unsigned long long)st.models_resident,
           (unsigned long long)st.bytes_used);
    free(g.nodes);
    free(g.cats);
}
END_TEST

/* ---- LOAD_MODEL / SCORE handlers ------------------------------------------------------------- */

static _Alignas(4096) uint8_t in_buf[1 << 24];
static _Alignas(4096) uint8_t out_buf[1 << 22];

static hp_store *T_store; /* the handlers' state (hp_k_score.h) */

static int call(hp_kernel_fn fn, uint32_t len, wire_writer *out)
{
    hp_ctx ctx = {0};
    wire_writer_init(out, out_buf, sizeof out_buf);
    return fn(T_store, &ctx, in_buf, len, out);
}

/* A LOAD_MODEL payload for blob under key, whose second half becomes SHA-256(blob) first (the
 * binding the worker checks), so later SCOREs with key name this blob. */
static uint32_t put_load(uint8_t *key, const void *blob, uint32_t blob_len)
{
    sha256(blob, blob_len, key + 16);
    wire_writer w;
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_bytes(&w, key, WIRE_MODEL_KEY_SIZE);
    wire_put_u32(&w, blob_len);
    wire_put_bytes(&w, blob, blob_len);
    ck_assert_int_eq(w.err, 0);
    return (uint32_t)w.len;
}

static void put_section(wire_writer *w, const uint8_t *key, uint32_t flags, uint32_t nrows,
                        uint32_t ncols, const float *rows)
{
    wire_put_bytes(w, key, WIRE_MODEL_KEY_SIZE);
    wire_put_u32(w, flags);
    wire_put_u32(w, nrows);
    wire_put_u32(w, ncols);
    wire_put_bytes(w, rows, (size_t)nrows * ncols * sizeof(float));
}

/* EXPLAIN through its handler and a real store: every error answer, then a batch large enough to
 * be split over the compute pool (each part with its share of the slot scratch), bit-identical to
 * common/treeshap.c, and a slot scratch too small for the model refused. */
START_TEST(explain_handler_every_case)
{
    char err[256];
    ck_assert_msg(hp_store_create(hp_scorer_at(0), (size_t)8 << 20, 1, &T_store, err, sizeof err) ==
                      0,
                  "%s", err);
    size_t nr, nc, blob_len;
    model_view v;
    void *blob = compile_fixture("deep_softprob", &blob_len, &v);
    float *fx_rows = fx_matrix("deep_softprob", "rows.txt", &nr, &nc);
    ck_assert_ptr_nonnull(fx_rows);
    enum { N = 4000 }; /* x 18 trees >= HP_PARALLEL_MIN_WORK: split over the pool */
    ck_assert_uint_ge((uint64_t)N * v.hdr->num_trees, HP_PARALLEL_MIN_WORK);
    float *rows = malloc((size_t)N * nc * sizeof(float));
    for (size_t i = 0; i < N; i++)
        memcpy(rows + i * nc, fx_rows + (i % nr) * nc, nc * sizeof(float));
    uint8_t key[WIRE_MODEL_KEY_SIZE];
    rnd_key(key);
    hp_ctx ctx = {0};
    ctx.scratch_len = HP_EXPLAIN_SCRATCH_BYTES;
    ctx.scratch = malloc(ctx.scratch_len);
    wire_writer out, w;
    /* before LOAD_MODEL: UNKNOWN_MODEL */
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_bytes(&w, key, WIRE_MODEL_KEY_SIZE);
    wire_put_u32(&w, 0);
    wire_put_u32(&w, N);
    wire_put_u32(&w, (uint32_t)nc);
    wire_put_bytes(&w, rows, (size_t)N * nc * sizeof(float));
    uint32_t good = (uint32_t)w.len;
    wire_writer_init(&out, out_buf, sizeof out_buf);
    ck_assert_int_eq(hp_k_explain(T_store, &ctx, in_buf, good, &out), WIRE_E_UNKNOWN_MODEL);
    uint32_t len = put_load(key, blob, (uint32_t)blob_len);
    ck_assert_int_eq(call(hp_k_load_model, len, &out), WIRE_OK);
    /* the batch, split over the pool */
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_bytes(&w, key, WIRE_MODEL_KEY_SIZE);
    wire_put_u32(&w, 0);
    wire_put_u32(&w, N);
    wire_put_u32(&w, (uint32_t)nc);
    wire_put_bytes(&w, rows, (size_t)N * nc * sizeof(float));
    wire_writer_init(&out, out_buf, sizeof out_buf);
    ck_assert_int_eq(hp_k_explain(T_store, &ctx, in_buf, good, &out), WIRE_OK);
    uint32_t k = v.hdr->num_class, ncol = v.hdr->num_feature + 1;
    ck_assert_uint_eq(wire_le32(out_buf), N);
    ck_assert_uint_eq(wire_le32(out_buf + 4), k);
    ck_assert_uint_eq(wire_le32(out_buf + 8), ncol);
    ck_assert_uint_eq(out.len, 12 + (size_t)N * k * (ncol + 1) * 4);
    float *c = malloc((size_t)N * k * ncol * 4), *m = malloc((size_t)N * k * 4);
    void *scr = malloc(treeshap_scratch_bytes(&v));
    treeshap_explain(&v, rows, N, c, m, scr);
    ck_assert(memcmp(out_buf + 12, c, (size_t)N * k * ncol * 4) == 0);
    ck_assert(memcmp(out_buf + 12 + (size_t)N * k * ncol * 4, m, (size_t)N * k * 4) == 0);
    /* errors: flags, columns, trailing bytes, truncation, a slot scratch too small */
    wire_st32(in_buf + WIRE_MODEL_KEY_SIZE, 1);
    ck_assert_int_eq(hp_k_explain(T_store, &ctx, in_buf, good, &out), WIRE_E_BAD_PAYLOAD);
    wire_st32(in_buf + WIRE_MODEL_KEY_SIZE, 0);
    ck_assert_int_eq(hp_k_explain(T_store, &ctx, in_buf, good + 4, &out), WIRE_E_BAD_PAYLOAD);
    ck_assert_int_eq(hp_k_explain(T_store, &ctx, in_buf, good - 4, &out), WIRE_E_BAD_PAYLOAD);
    ck_assert_int_eq(hp_k_explain(T_store, &ctx, in_buf, 20, &out), WIRE_E_BAD_PAYLOAD);
    wire_st32(in_buf + WIRE_MODEL_KEY_SIZE + 4, 1);
    wire_st32(in_buf + WIRE_MODEL_KEY_SIZE + 8, (uint32_t)nc - 1);
    ck_assert_int_eq(hp_k_explain(T_store, &ctx, in_buf,
                                  WIRE_MODEL_KEY_SIZE + 12 + 4 * ((uint32_t)nc - 1), &out),
                     WIRE_E_BAD_PAYLOAD);
    ck_assert_ptr_nonnull(memmem(out_buf, out.len, "features", 8));
    wire_st32(in_buf + WIRE_MODEL_KEY_SIZE + 8, (uint32_t)nc);
    ctx.scratch_len = 64;
    ck_assert_int_eq(
        hp_k_explain(T_store, &ctx, in_buf, WIRE_MODEL_KEY_SIZE + 12 + 4 * (uint32_t)nc, &out),
        WIRE_E_BAD_PAYLOAD);
    ck_assert_ptr_nonnull(memmem(out_buf, out.len, "VIGIL_HOTPATH_SCRATCH_MB", 24));
    free(scr), free(c), free(m), free(ctx.scratch), free(rows), free(fx_rows), free(blob);
    hp_store_destroy(T_store);
    T_store = NULL;
}
END_TEST

START_TEST(handlers_answer_every_case)
{
    char err[256];
    use_scorer(_i, "handlers_answer_every_case");
    ck_assert_msg(hp_store_create(T_sc, (size_t)4 << 20, 1, &T_store, err, sizeof err) == 0, "%s",
                  err);
    /* The init hook both handlers share hands the store over as their state. */
    hp_kernel_env env = {.store = T_store};
    void *state = NULL;
    ck_assert_int_eq(hp_k_store_init(&env, &state, err, sizeof err), 0);
    ck_assert_ptr_eq(state, T_store);
    ck_assert_str_eq(hp_k_store_impl(state), T_sc->name);
    wire_writer out;
    size_t nr, nc, blob_len;
    model_view v;
    void *blob = compile_fixture("multi_softprob", &blob_len, &v);
    if (T_sc->bytes(&v) == 0) {
        printf("  handlers_answer_every_case: kernel %s declines the model: skipped\n", T_sc->name);
        hp_store_destroy(T_store);
        T_store = NULL;
        free(blob);
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/multi_softprob.rows.txt", fx_dir());
    float *rows = read_matrix(path, &nr, &nc);
    uint8_t key[WIRE_MODEL_KEY_SIZE], other[WIRE_MODEL_KEY_SIZE];
    rnd_key(key);
    rnd_key(other);

    /* LOAD_MODEL errors. */
    ck_assert_int_eq(call(hp_k_load_model, 10, &out), WIRE_E_BAD_PAYLOAD);
    uint32_t len = put_load(key, blob, (uint32_t)blob_len);
    ck_assert_int_eq(call(hp_k_load_model, len - 1, &out), WIRE_E_BAD_PAYLOAD); /* blob_len != */
    in_buf[52] ^= 1; /* the blob magic: a bad blob, no longer the one the key names */
    ck_assert_int_eq(call(hp_k_load_model, len, &out), WIRE_E_BAD_PAYLOAD);
    ck_assert_ptr_nonnull(memmem(out_buf, out.len, "SHA-256", 7));
    sha256(in_buf + 52, blob_len, in_buf + 16); /* a key bound to the bad blob: validated */
    ck_assert_int_eq(call(hp_k_load_model, len, &out), WIRE_E_BAD_PAYLOAD);
    ck_assert_ptr_nonnull(memmem(out_buf, out.len, "invalid model blob", 18));
    /* SCORE before it is loaded: UNKNOWN_MODEL with the section index as payload. */
    wire_writer w;
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_u32(&w, 1);
    put_section(&w, key, 0, 3, (uint32_t)nc, rows);
    ck_assert_int_eq(call(hp_k_score, (uint32_t)w.len, &out), WIRE_E_UNKNOWN_MODEL);
    ck_assert_uint_eq(out.len, 4);
    ck_assert_uint_eq(wire_le32(out_buf), 0);
    /* Load, then a resident reload of the same blob is OK; another blob under the resident key
     * (a peer on the socket trying to replace the model) is refused, before and after loading. */
    len = put_load(key, blob, (uint32_t)blob_len);
    memset(in_buf + 52, 0xFF, 64);
    ck_assert_int_eq(call(hp_k_load_model, len, &out), WIRE_E_BAD_PAYLOAD);
    ck_assert_ptr_nonnull(memmem(out_buf, out.len, "SHA-256", 7));
    len = put_load(key, blob, (uint32_t)blob_len);
    ck_assert_int_eq(call(hp_k_load_model, len, &out), WIRE_OK);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_int_eq(call(hp_k_load_model, len, &out), WIRE_OK);
    memset(in_buf + 52, 0xFF, 64);
    ck_assert_int_eq(call(hp_k_load_model, len, &out), WIRE_E_BAD_PAYLOAD);
    ck_assert_ptr_nonnull(memmem(out_buf, out.len, "SHA-256", 7));

    /* SCORE OK: two sections, margins then transformed, equal to refeval. */
    size_t n1 = 37, n2 = nr;
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_u32(&w, 2);
    put_section(&w, key, WIRE_SCORE_MARGIN, (uint32_t)n1, (uint32_t)nc, rows);
    put_section(&w, key, 0, (uint32_t)n2, (uint32_t)nc, rows);
    uint32_t score_len = (uint32_t)w.len;
    ck_assert_int_eq(call(hp_k_score, score_len, &out), WIRE_OK);
    uint32_t k = v.hdr->num_class;
    ck_assert_uint_eq(out.len, 4 + 8 + n1 * k * 4 + 8 + n2 * k * 4);
    wire_reader r;
    wire_reader_init(&r, out_buf, out.len);
    ck_assert_uint_eq(wire_get_u32(&r), 2);
    float *want = malloc(nr * k * sizeof(float));
    for (int s = 0; s < 2; s++) {
        size_t n = s == 0 ? n1 : n2;
        ck_assert_uint_eq(wire_get_u32(&r), n);
        ck_assert_uint_eq(wire_get_u32(&r), k);
        const uint8_t *p = wire_get_bytes(&r, n * k * 4);
        refeval_predict(&v, rows, n, s == 0, want);
        ck_assert_int_eq(memcmp(p, want, n * k * 4), 0);
    }
    free(want);

    /* Second section unknown: index 1. */
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_u32(&w, 2);
    put_section(&w, key, 0, 1, (uint32_t)nc, rows);
    put_section(&w, other, 0, 1, (uint32_t)nc, rows);
    ck_assert_int_eq(call(hp_k_score, (uint32_t)w.len, &out), WIRE_E_UNKNOWN_MODEL);
    ck_assert_uint_eq(wire_le32(out_buf), 1);

    /* BAD_PAYLOAD: ncols != num_feature (both ways), sizes that do not add up, section counts,
     * unknown flags. */
    for (int delta = -1; delta <= 1; delta += 2) {
        wire_writer_init(&w, in_buf, sizeof in_buf);
        wire_put_u32(&w, 1);
        put_section(&w, key, 0, 2, (uint32_t)((int)nc + delta), rows);
        ck_assert_int_eq(call(hp_k_score, (uint32_t)w.len, &out), WIRE_E_BAD_PAYLOAD);
        ck_assert_ptr_nonnull(memmem(out_buf, out.len, "columns", 7));
    }
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_u32(&w, 1);
    put_section(&w, key, 0, 2, (uint32_t)nc, rows);
    uint32_t good = (uint32_t)w.len;
    ck_assert_int_eq(call(hp_k_score, good, &out), WIRE_OK);
    ck_assert_int_eq(call(hp_k_score, good - 1, &out), WIRE_E_BAD_PAYLOAD); /* short a byte */
    in_buf[good] = 0;
    ck_assert_int_eq(call(hp_k_score, good + 1, &out), WIRE_E_BAD_PAYLOAD); /* trailing byte */
    ck_assert_int_eq(call(hp_k_score, 3, &out), WIRE_E_BAD_PAYLOAD);
    wire_st32(in_buf + 4 + 48 + 4, 0xFFFFFFFFu); /* nrows: huge, must not overflow a check */
    ck_assert_int_eq(call(hp_k_score, good, &out), WIRE_E_BAD_PAYLOAD);
    /* nrows x ncols x 4 = 2^64 wraps to 0 bytes: still a framing error (BAD_PAYLOAD), answered
     * before the model is looked up, even for a key that is not resident. */
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_u32(&w, 1);
    put_section(&w, other, 0, 0, 0, rows);
    wire_st32(in_buf + 4 + 48 + 4, 0x80000000u);
    wire_st32(in_buf + 4 + 48 + 8, 0x80000000u);
    ck_assert_int_eq(call(hp_k_score, (uint32_t)w.len, &out), WIRE_E_BAD_PAYLOAD);
    ck_assert_ptr_nonnull(memmem(out_buf, out.len, "truncated", 9));
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_u32(&w, 1);
    put_section(&w, key, 0, 2, (uint32_t)nc, rows);
    wire_st32(in_buf + 4 + 48 + 4, 2);
    wire_st32(in_buf + 4 + 48, 2); /* flags: unknown bit */
    ck_assert_int_eq(call(hp_k_score, good, &out), WIRE_E_BAD_PAYLOAD);
    wire_st32(in_buf + 4 + 48, 0);
    for (uint32_t ns = 0; ns <= WIRE_MAX_SECTIONS + 1; ns += WIRE_MAX_SECTIONS + 1) {
        wire_st32(in_buf, ns); /* 0 and 9 sections */
        ck_assert_int_eq(call(hp_k_score, good, &out), WIRE_E_BAD_PAYLOAD);
    }
    /* WIRE_MAX_SECTIONS sections of zero and one rows: fine. */
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_u32(&w, WIRE_MAX_SECTIONS);
    for (uint32_t s = 0; s < WIRE_MAX_SECTIONS; s++)
        put_section(&w, key, 0, s & 1, (uint32_t)nc, rows);
    ck_assert_int_eq(call(hp_k_score, (uint32_t)w.len, &out), WIRE_OK);
    ck_assert_uint_eq(out.len, 4 + WIRE_MAX_SECTIONS * 8 + WIRE_MAX_SECTIONS / 2 * k * 4);

    /* A model larger than the whole 4 MiB arena: TOO_LARGE (never fits) with a message.  100
     * complete depth-12 trees take 48 KiB each in the worker's layout: 4.8 MiB. */
    model_builder *b = model_builder_new(MODEL_OBJ_SQUAREDERROR, 0, 4, 1, 0.5f, 0.0f);
    size_t big_len;
    uint32_t n12 = (2u << 12) - 1;
    model_src_node *nodes = calloc(n12, sizeof *nodes);
    for (uint32_t i = 0; i < n12; i++) {
        if (2 * i + 1 < n12) {
            nodes[i].left = (int32_t)(2 * i + 1);
            nodes[i].right = (int32_t)(2 * i + 2);
        } else {
            nodes[i].left = nodes[i].right = -1;
        }
    }
    for (int t = 0; t < 100; t++)
        ck_assert_int_eq(model_builder_add_tree(b, 0, 1.0f, nodes, n12, err, sizeof err), 0);
    void *bblob;
    ck_assert_int_eq(model_build(b, &bblob, &big_len, err, sizeof err), 0);
    model_builder_free(b);
    free(nodes);
    ck_assert_uint_lt(big_len + 52, sizeof in_buf);
    len = put_load(other, bblob, (uint32_t)big_len);
    ck_assert_int_eq(call(hp_k_load_model, len, &out), WIRE_E_TOO_LARGE);
    ck_assert_ptr_nonnull(memmem(out_buf, out.len, "VIGIL_HOTPATH_MEMORY_MB", 23));
    free(bblob);

    hp_store_destroy(T_store);
    T_store = NULL;
    free(rows);
    free(blob);
}
END_TEST

/* ---- the registry itself --------------------------------------------------------------------- */

/* Names are what VIGIL_HOTPATH_KERNEL, HELLO, STATS (kernel_<name>) and logs carry: [a-z0-9_],
 * 1..31 bytes, unique; every member but release is set; hp_scorer_find agrees with the list. */
START_TEST(registry_entries_are_well_formed)
{
    unsigned n = hp_scorer_count();
    ck_assert_uint_ge(n, 2); /* forest and plain at least */
    for (unsigned i = 0; i < n; i++) {
        const hp_scorer *sc = hp_scorer_at(i);
        ck_assert_ptr_nonnull(sc);
        size_t len = strlen(sc->name);
        ck_assert_msg(len >= 1 && len < HP_KERNEL_NAME_MAX, "scorer %u: name length %zu", i, len);
        ck_assert_msg(strspn(sc->name, "abcdefghijklmnopqrstuvwxyz0123456789_") == len,
                      "scorer %u: name '%s' not [a-z0-9_]", i, sc->name);
        ck_assert_msg(sc->bytes && sc->build && sc->score, "scorer %s: member missing", sc->name);
        ck_assert_ptr_eq(hp_scorer_find(sc->name), sc);
        for (unsigned j = 0; j < i; j++)
            ck_assert_str_ne(hp_scorer_at(j)->name, sc->name);
        printf("  registry: kernel %u: %s%s\n", i, sc->name, i == 0 ? " (default)" : "");
    }
    ck_assert_ptr_null(hp_scorer_at(n));
    ck_assert_ptr_null(hp_scorer_find("nosuch"));
}
END_TEST

/* ---- a scorer that declines models, or fails to build -----------------------------------------
 */

/* "picky": the default scorer, except that it declines models with an odd number of features
 * (bytes 0, as a scorer for another format would) and, while picky_fail is set, its build returns
 * NULL (a scorer bug).  The arena and LOAD_MODEL must answer both without keeping anything. */
static int picky_fail;

static size_t picky_bytes(const model_view *v)
{
    return v->hdr->num_feature % 2 ? 0 : hp_scorer_at(0)->bytes(v);
}

static const void *picky_build(const model_view *v, void *dst, size_t len)
{
    return picky_fail ? NULL : hp_scorer_at(0)->build(v, dst, len);
}

static void picky_score(const void *layout, const float *rows, size_t nrows, int output_margin,
                        float *out, hp_pool *pool, uint64_t min_parallel_work)
{
    hp_scorer_at(0)->score(layout, rows, nrows, output_margin, out, pool, min_parallel_work);
}

static const hp_scorer picky = {
    .name = "picky", .bytes = picky_bytes, .build = picky_build, .score = picky_score};

START_TEST(declined_and_failed_builds_keep_nothing)
{
    char err[256];
    wire_writer out, w;
    ck_assert_int_eq(hp_store_create(&picky, (size_t)4 << 20, 0, &T_store, err, sizeof err), 0);
    model_view v2, v3, v4;
    size_t l2, l3, l4;
    void *b2 = complete_tree_model(2, &v2, &l2), *b3 = complete_tree_model(3, &v3, &l3),
         *b4 = complete_tree_model(4, &v4, &l4);
    uint8_t k2[WIRE_MODEL_KEY_SIZE], k3[WIRE_MODEL_KEY_SIZE], k4[WIRE_MODEL_KEY_SIZE];
    rnd_key(k2);
    rnd_key(k3);
    rnd_key(k4);
    ck_assert_int_eq(call(hp_k_load_model, put_load(k2, b2, (uint32_t)l2), &out), WIRE_OK);
    /* Declined: BAD_PAYLOAD naming the kernel and the variable. */
    ck_assert_int_eq(call(hp_k_load_model, put_load(k3, b3, (uint32_t)l3), &out),
                     WIRE_E_BAD_PAYLOAD);
    ck_assert_ptr_nonnull(memmem(out_buf, out.len, "picky kernel", 12));
    ck_assert_ptr_nonnull(memmem(out_buf, out.len, "VIGIL_HOTPATH_KERNEL", 20));
    /* Failed build: INTERNAL, and the space it had reserved is free again. */
    picky_fail = 1;
    ck_assert_int_eq(call(hp_k_load_model, put_load(k4, b4, (uint32_t)l4), &out), WIRE_E_INTERNAL);
    ck_assert_ptr_nonnull(memmem(out_buf, out.len, "failed to build", 15));
    picky_fail = 0;
    hp_arena_stats st;
    hp_arena_get_stats(hp_store_arena(T_store), &st);
    ck_assert_uint_eq(st.models_resident, 1);
    ck_assert_uint_eq(st.loads, 1);
    size_t one = (picky_bytes(&v2) + HP_LAYOUT_ALIGN - 1) / HP_LAYOUT_ALIGN * HP_LAYOUT_ALIGN;
    ck_assert_uint_eq(st.bytes_used, one);
    /* Neither is resident; the failed one loads once the build works. */
    float row[4] = {0, -1, 0, -1};
    const uint8_t *missing[2] = {k3, k4};
    for (int i = 0; i < 2; i++) {
        wire_writer_init(&w, in_buf, sizeof in_buf);
        wire_put_u32(&w, 1);
        put_section(&w, missing[i], 0, 1, i ? 4 : 3, row);
        ck_assert_int_eq(call(hp_k_score, (uint32_t)w.len, &out), WIRE_E_UNKNOWN_MODEL);
    }
    ck_assert_int_eq(call(hp_k_load_model, put_load(k4, b4, (uint32_t)l4), &out), WIRE_OK);
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_u32(&w, 1);
    put_section(&w, k4, WIRE_SCORE_MARGIN, 1, 4, row);
    ck_assert_int_eq(call(hp_k_score, (uint32_t)w.len, &out), WIRE_OK);
    float got;
    memcpy(&got, out_buf + 12, 4);
    ck_assert_float_eq(got, 10.0f); /* right, left, right, left = 1010b */
    hp_store_destroy(T_store);
    T_store = NULL;
    free(b2);
    free(b3);
    free(b4);
}
END_TEST

/* Categorical list sets (model.h MODEL_F_CAT_LIST) with categories up to 2^24 - 1 and up to a
 * thousand members (binary searches of 1..10 halvings): every kernel agrees with refeval on every
 * member, its neighbours and the invalid values, on the row path and in 8-row blocks; the blob
 * carries covers too, and the worker's explainer agrees with common/treeshap.c bit for bit. */
START_TEST(catset_lists_bit_identical_to_refeval)
{
    use_scorer(_i, "catset_lists_bit_identical_to_refeval");
    enum { NT = 12, MAXN = 1000 };
    static int64_t cats[NT][MAXN];
    model_builder *b = model_builder_new(MODEL_OBJ_SQUAREDERROR, MODEL_F_COVERS, 2, 1, 0.5f, 0.5f);
    ck_assert_ptr_nonnull(b);
    char err[256];
    uint32_t sizes[NT];
    for (int t = 0; t < NT; t++) {
        sizes[t] = t == 0 ? 1 : t == 1 ? 2 : (uint32_t)(t * 83 % MAXN) + 3;
        for (uint32_t k = 0; k < sizes[t]; k++)
            cats[t][k] = k == 0 ? (int64_t)MODEL_MAX_CATEGORY : (int64_t)(rnd64() >> 40);
        model_src_node nd[3] = {
            {.left = 1,
             .right = 2,
             .feature = (uint32_t)t % 2,
             .categorical = 1,
             .default_left = t % 3 == 0,
             .cats = cats[t],
             .n_cats = sizes[t],
             .cover = 10.0f + (float)t},
            {.left = -1, .right = -1, .value = (float)(t + 1), .cover = 4.0f},
            {.left = -1, .right = -1, .value = (float)(t + 1) * 64.0f, .cover = 6.0f + (float)t},
        };
        ck_assert_msg(model_builder_add_tree(b, 0, 1.0f, nd, 3, err, sizeof err) == 0, "%s", err);
    }
    void *blob = NULL;
    size_t len;
    ck_assert_msg(model_build(b, &blob, &len, err, sizeof err) == 0, "%s", err);
    model_builder_free(b);
    model_view v;
    ck_assert_int_eq(model_validate(blob, len, NULL, 0, &v, err, sizeof err), 0);
    ck_assert(v.hdr->flags & MODEL_F_CAT_LIST);
    ck_assert_ptr_nonnull(v.covers); /* lists and covers together */
    /* rows: every listed category, +-1, +0.5, and the invalid/missing values, on both features */
    size_t cap = 0;
    for (int t = 0; t < NT; t++)
        cap += 4 * (size_t)sizes[t];
    cap += 16;
    float *rows = malloc(cap * 2 * sizeof(float));
    ck_assert_ptr_nonnull(rows);
    size_t nr = 0;
    for (int t = 0; t < NT; t++)
        for (uint32_t k = 0; k < sizes[t]; k++) {
            float c = (float)cats[t][k];
            const float x[4] = {c, c - 1.0f, c + 1.0f, c + 0.5f};
            for (int q = 0; q < 4; q++) {
                rows[2 * nr] = x[q];
                rows[2 * nr + 1] = x[(q + 1) % 4];
                nr++;
            }
        }
    const float special[] = {NAN, INFINITY, -INFINITY, 16777216.0f, -0.5f, -1.0f, 0.0f, 1e30f};
    for (size_t q = 0; q < sizeof special / sizeof special[0]; q++) {
        rows[2 * nr] = special[q];
        rows[2 * nr + 1] = special[(q + 3) % 8];
        nr++;
    }
    uint8_t key[WIRE_MODEL_KEY_SIZE];
    uint32_t h;
    const hp_model *m = load_pin(&v, key, &h);
    if (m != NULL) {
        check_same(&v, m, rows, nr, 0, "list sets");
        check_same(&v, m, rows, 1, 1, "list sets, one row");
        hp_arena_release(T_arena, &h, 1);
    }
    ck_assert_uint_eq(T_declined, 0);
    /* the worker's explainer (hotpath/hp_shap.c) walks the list sets as common/treeshap.c does */
    check_explain(&v, rows, nr, "list sets");
    free(rows);
    free(blob);
}
END_TEST

static Suite *kernel_suite(void)
{
    Suite *s = suite_create("kernel");
    TCase *tc = tcase_create("differential");
    tcase_add_checked_fixture(tc, kernel_setup, kernel_teardown);
    tcase_set_timeout(tc, 600);
    /* Every test once per registered scorer (_i = its index in hp_scorers.def), ... */
    int n = (int)hp_scorer_count();
    /* ... and the two differential ones once more on the forest's scalar batch walk (_i = n). */
    tcase_add_loop_test(tc, fixtures_bit_identical_to_refeval, 0, n + 1);
    tcase_add_loop_test(tc, random_models_bit_identical_to_refeval, 0, n + 1);
    tcase_add_loop_test(tc, layout_heap_and_linked, 0, n);
    tcase_add_loop_test(tc, refs_models_get_the_binned_layout, 0, n);
    tcase_add_loop_test(tc, binned_pad_to_forest_depth, 0, n);
    tcase_add_loop_test(tc, binned_layout_limits, 0, n);
    tcase_add_loop_test(tc, binned_single_row_runs, 0, n);
    tcase_add_loop_test(tc, row_blocks_every_depth, 0, n);
    tcase_add_loop_test(tc, arena_lru_pins_and_limits, 0, n);
    tcase_add_loop_test(tc, arena_index_survives_churn, 0, n);
    tcase_add_loop_test(tc, handlers_answer_every_case, 0, n);
    tcase_add_loop_test(tc, catset_lists_bit_identical_to_refeval, 0, n);
    tcase_add_test(tc, declined_and_failed_builds_keep_nothing);
    tcase_add_test(tc, registry_entries_are_well_formed);
    tcase_add_test(tc, explain_bit_identical_to_treeshap);
    tcase_add_test(tc, explain_extreme_weights_bit_identical);
    tcase_add_test(tc, explain_handler_every_case);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(kernel_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
