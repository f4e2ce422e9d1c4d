/* hp_shap.c - the explain layout and the tuned TreeSHAP walks.  See hp_shap.h.
 *
 * Why xgboost's algorithm and not Fast TreeSHAP v2 or Linear TreeSHAP: both reach the same SHAP
 * values through a different float32 computation (v2 precomputes per-leaf combination tables over
 * the features on the path; Linear TreeSHAP evaluates polynomials at Chebyshev points), so their
 * results differ from xgboost's in the last bits, and the worker must equal common/treeshap.c
 * (= xgboost) bit for bit.  What can be taken out of xgboost's per-request path without changing
 * one operation is taken out here: the node mean values (FillNodeMeanValues over every tree on
 * every request in xgboost), the two cover divisions per internal node visit (the same division,
 * done once), the per-tree zeroing and full-width accumulation of num_feature+1 values (only the
 * features the tree touched are added, which is exact: see hp_shap_explain_isa), the per-tree path
 * allocation, and a separate walk for the margin (the margin comes from the hot path of the same
 * walk).  The rest is scheduling: the same operations, ordered so that the CPU can overlap them,
 * and, in the AVX-512 level-order walk, the divisions by TreeSHAP's known divisors done without
 * a division instruction (hp_divk.h: the same quotient, bit for bit, proven over its range).
 *
 * Three walks:
 * - portable (walk_node: treeshap_path.h's scalar arithmetic, the reference's recursion);
 * - depth-first AVX2 (vec_node: the path as structure-of-arrays in vector lanes) for trees at most
 *   HP_SHAP_VEC_DEPTH deep on CPUs with AVX2 (runtime check);
 * - level order (level_tree), for those trees when they have HP_SHAP_LEVEL_MIN_NODES to
 *   HP_SHAP_BFS_NODES nodes: every node's path kept, nodes in index order, leaf sums batched by
 *   depth, contributions added in the reference's order; AVX-512 node loop and leaf sums when the
 *   CPU has AVX-512F, AVX2 otherwise (see the comment above level_tree's helpers).  This is what
 *   makes the one-row explanation of the 1000-tree depth-8 benchmark model ~2.5x the depth-first
 *   walk (tests/bench/README.md, hotpath/README.md "Explanations").
 * Every walk is tested against the reference bit for bit (test_kernel, hp_shap_explain_isa's
 * allow_vec 0..3).
 *
 * Costs: see hp_shap.h. */
#include "hp_shap.h"

#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#define HP_SHAP_HAVE_AVX2 1
#else
#define HP_SHAP_HAVE_AVX2 0
#endif

#include "hp_assert.h"
#include "hp_divk.h"
#include "refeval.h"
#include "treeshap.h"
#include "treeshap_path.h"

typedef struct shap_layout {
    model_view v;       /* points into the blob copy below */
    uint32_t max_depth; /* deepest tree */
    uint32_t max_nodes; /* largest tree */
    size_t scratch;     /* bytes hp_shap_explain needs */
    int vec;            /* the AVX2 walk applies: every tree <= HP_SHAP_VEC_DEPTH, CPU has AVX2 */
    int avx512;         /* ... and the CPU has AVX-512F (the level-order walk's leaf sums) */
    const float *mean;  /* num_nodes: every node's mean value (global node index) */
    const float *frac;  /* 2 x num_nodes: covers[left] / covers[i], covers[right] / covers[i] */
    const uint32_t *nleaves; /* num_nodes: leaves in each node's subtree (the level-order walk) */
    uint32_t bfs_cap;        /* largest tree the level-order walk takes (0: none), see level_node */
    _Alignas(HP_LAYOUT_ALIGN) unsigned char data[]; /* blob, mean[], frac[], nleaves[] */
} shap_layout;

static size_t blob_room(size_t len)
{
    return (len + 7u) & ~(size_t)7u;
}

/* Scratch of one explain call: phi[nf+1] f32, stamp[nf] u32, touched[nf] u32, then the path
 * (treeshap_elem for the portable walk), then, 64-byte aligned, one vlevel per node depth for the
 * AVX2 walk. */
#define HP_SHAP_VEC_DEPTH 15u /* deepest tree the AVX2 walks take: a path fits 16 lanes */
_Static_assert(HP_SHAP_VEC_DEPTH <= HP_DIVK_MAX_D,
               "the AVX-512 walk divides by hp_divk's divisors");
#define VLEVEL_BYTES 416u /* sizeof(vlevel), checked below */
#define VLEAF_BYTES 352u  /* sizeof(vleaf), checked below */
#define VLEAF_BUF 32u     /* leaves the AVX2 walk buffers before computing their sums */
#define BLEAF_BYTES 64u   /* a leaf's 16 contributions in the level-order walk */
/* The level-order walk takes trees of HP_SHAP_LEVEL_MIN_NODES to HP_SHAP_BFS_NODES nodes: smaller
 * ones measured faster depth-first, larger ones would need more scratch.  Up to HP_SHAP_DENSE_NF
 * features its phi is zeroed and summed whole per tree instead of tracked by feature stamps. */
#define HP_SHAP_LEVEL_MIN_NODES 64u
#define HP_SHAP_BFS_NODES 2047u
#define HP_SHAP_DENSE_NF 256u

/* The level-order walk's scratch for trees of at most cap nodes: a vlevel per node, 64-byte
 * aligned, then per leaf its contributions, then u32 arrays (see level_scratch). */
static size_t level_need(uint32_t cap)
{
    if (cap == 0)
        return 0;
    size_t leaves = (size_t)cap / 2 + 1;
    /* depth, rank (cap each), then leaf, order (a leaf each), bydepth (a leaf per depth) */
    return 64u + (size_t)cap * VLEVEL_BYTES + leaves * BLEAF_BYTES + (size_t)cap * 4u * 2u +
           leaves * 4u * (2u + HP_SHAP_VEC_DEPTH + 1u);
}

static size_t scratch_path_off(uint32_t nf)
{
    return (((size_t)nf + 1) * 4 + (size_t)nf * 8 + 15u) & ~(size_t)15u;
}

static size_t scratch_need(uint32_t nf, uint32_t max_depth, uint32_t bfs_cap)
{
    size_t b = scratch_path_off(nf) + treeshap_path_elems(max_depth) * sizeof(treeshap_elem);
    return b + 64u + ((size_t)HP_SHAP_VEC_DEPTH + 1) * VLEVEL_BYTES + VLEAF_BUF * VLEAF_BYTES +
           level_need(bfs_cap);
}

static size_t shap_bytes(const model_view *v)
{
    if (treeshap_scratch_bytes(v) == 0)
        return 0; /* no covers, or a tree deeper than TREESHAP_MAX_DEPTH */
    return sizeof(shap_layout) + blob_room(v->blob_len) + (size_t)v->hdr->num_nodes * 16u;
}

static const void *shap_build(const model_view *v, void *dst, size_t len)
{
    shap_layout *l = dst;
    char err[128];
    if (shap_bytes(v) == 0 || len < shap_bytes(v))
        return NULL;
    memcpy(l->data, v->hdr, v->blob_len);
    if (model_validate(l->data, v->blob_len, NULL, 0, &l->v, err, sizeof err) != 0)
        return NULL;
    float *mean = (float *)(l->data + blob_room(v->blob_len));
    float *frac = mean + v->hdr->num_nodes;
    uint32_t *nleaves = (uint32_t *)(frac + 2 * (size_t)v->hdr->num_nodes);
    l->max_depth = 0;
    l->max_nodes = 0;
    l->bfs_cap = 0;
    for (uint32_t t = 0; t < v->hdr->num_trees; t++) {
        const model_tree_rec *tr = &l->v.trees[t];
        const model_node_rec *nodes = l->v.nodes + tr->first_node;
        const float *cov = l->v.covers + tr->first_node;
        float *mn = mean + tr->first_node, *fr = frac + 2 * (size_t)tr->first_node;
        uint32_t *nl = nleaves + tr->first_node;
        uint32_t d = treeshap_tree_depth(&l->v, t);
        if (d > l->max_depth)
            l->max_depth = d;
        if (tr->num_nodes > l->max_nodes)
            l->max_nodes = tr->num_nodes;
        if (tr->num_nodes <= HP_SHAP_BFS_NODES && tr->num_nodes > l->bfs_cap)
            l->bfs_cap = tr->num_nodes;
        /* treeshap.c's FillNodeMeanValues, the same operations in the same order */
        for (uint32_t i = tr->num_nodes; i-- > 0;) {
            const model_node_rec *nd = &nodes[i];
            if (nd->left == -1) {
                mn[i] = nd->u.leaf;
                fr[2 * i] = fr[2 * i + 1] = 0;
                nl[i] = 1;
                continue;
            }
            float r = mn[nd->left] * cov[nd->left];
            r += mn[nd->right] * cov[nd->right];
            r /= cov[i];
            mn[i] = r;
            fr[2 * i] = cov[nd->left] / cov[i];
            fr[2 * i + 1] = cov[nd->right] / cov[i];
            nl[i] = nl[nd->left] + nl[nd->right];
        }
    }
    l->mean = mean;
    l->frac = frac;
    l->nleaves = nleaves;
#if HP_SHAP_HAVE_AVX2
    l->vec = l->max_depth <= HP_SHAP_VEC_DEPTH && __builtin_cpu_supports("avx2");
    l->avx512 = l->vec && __builtin_cpu_supports("avx512f");
#else
    l->vec = 0;
    l->avx512 = 0;
#endif
    if (!l->vec)
        l->bfs_cap = 0;
    l->scratch = scratch_need(v->hdr->num_feature, l->max_depth, l->bfs_cap);
    return l;
}

static void shap_score(const void *layout, const float *rows, size_t nrows, int output_margin,
                       float *out, hp_pool *pool, uint64_t min_parallel_work)
{
    (void)pool;
    (void)min_parallel_work;
    refeval_predict(&((const shap_layout *)layout)->v, rows, nrows, output_margin, out);
}

const hp_scorer hp_shap_layout = {
    .name = "shap",
    .bytes = shap_bytes,
    .build = shap_build,
    .score = shap_score,
    .release = NULL,
};

size_t hp_shap_scratch_bytes(const void *layout)
{
    return ((const shap_layout *)layout)->scratch;
}

const model_view *hp_shap_view(const void *layout)
{
    return &((const shap_layout *)layout)->v;
}

/* ---- the walk ---------------------------------------------------------------------------------
 */

typedef struct walk {
    const model_node_rec *nodes;
    const float *frac; /* this tree's */
    const uint32_t *cats;
    const float *row;
    float *phi;
    uint32_t *stamp, *touched, ntouched, gen;
    float leaf; /* the row's own leaf (the all-hot path) */
} walk;

/* treeshap_unwound_sum(path, d, i + j) for the four lanes j = 0..3 (lanes past d are computed
 * with fractions 0, 0 and ignored), in SSE: each lane performs exactly the scalar operations in
 * the scalar order (IEEE float32 add/sub/mul/div round the same in a vector lane; no FMA), and the
 * scalar branches on one != 0 / zero != 0 become per-lane selects, so every sum is bit-identical
 * to the scalar one (test_kernel checks).  The point: four dependency chains run interleaved
 * instead of one after another (measured: ~10-15% of the one-row time on the benchmark model). */
static void unwound_sums4(const treeshap_elem *path, uint32_t d, uint32_t i, float out[4])
{
#if defined(__SSE2__)
    float one[4], zero[4];
    for (uint32_t j = 0; j < 4; j++) {
        one[j] = i + j <= d ? path[i + j].one : 0.0f;
        zero[j] = i + j <= d ? path[i + j].zero : 0.0f;
    }
    const __m128 vone = _mm_loadu_ps(one), vzero = _mm_loadu_ps(zero), z = _mm_setzero_ps();
    const __m128 has_one = _mm_cmpneq_ps(vone, z), has_zero = _mm_cmpneq_ps(vzero, z);
    const __m128 dp1 = _mm_set1_ps((float)(d + 1));
    __m128 next = _mm_set1_ps(path[d].pweight), total = z;
    /* Lanes whose element came down a cold branch (one == 0) are the common case; a group of
     * only such lanes (or only hot ones) computes one branch. */
    const int hot = _mm_movemask_ps(has_one);
    for (int k = (int)d - 1; k >= 0; k--) {
        const __m128 pw = _mm_set1_ps(path[k].pweight);
        const __m128 ratio = _mm_set1_ps((float)(d - (uint32_t)k) / (float)(d + 1));
        __m128 total_a = total, next_a = next, total_c = total;
        if (hot != 0) { /* one != 0 */
            __m128 tmp =
                _mm_div_ps(_mm_mul_ps(next, dp1), _mm_mul_ps(_mm_set1_ps((float)(k + 1)), vone));
            total_a = _mm_add_ps(total, tmp);
            next_a = _mm_sub_ps(pw, _mm_mul_ps(_mm_mul_ps(tmp, vzero), ratio));
        }
        if (hot != 0xF) { /* one == 0, zero != 0 */
            __m128 total_b = _mm_add_ps(total, _mm_div_ps(_mm_div_ps(pw, vzero), ratio));
            total_c = _mm_or_ps(_mm_and_ps(has_zero, total_b), _mm_andnot_ps(has_zero, total));
        }
        total = _mm_or_ps(_mm_and_ps(has_one, total_a), _mm_andnot_ps(has_one, total_c));
        next = _mm_or_ps(_mm_and_ps(has_one, next_a), _mm_andnot_ps(has_one, next));
    }
    _mm_storeu_ps(out, total);
#else
    for (uint32_t j = 0; j < 4; j++)
        out[j] = i + j <= d ? treeshap_unwound_sum(path, d, i + j) : 0.0f;
#endif
}

static void walk_node(walk *w, int32_t nid, uint32_t d, treeshap_elem *parent, float pzero,
                      float pone, int32_t pfeature, int hot_path)
{
    const model_node_rec *nd = &w->nodes[nid];
    treeshap_elem *path = parent + d + 1;
    memcpy(path, parent, (size_t)(d + 1) * sizeof(*path));
    treeshap_extend(path, d, pzero, pone, pfeature);

    if (nd->left == -1) {
        if (hot_path)
            w->leaf = nd->u.leaf;
        float sums[4];
        for (uint32_t i = 1; i <= d; i++) {
            if ((i - 1) % 4 == 0)
                unwound_sums4(path, d, i, sums);
            const float s = sums[(i - 1) % 4];
            const treeshap_elem *el = &path[i];
            uint32_t f = (uint32_t)el->feature;
            if (w->stamp[f] != w->gen) {
                w->stamp[f] = w->gen;
                w->phi[f] = 0;
                w->touched[w->ntouched++] = f;
            }
            w->phi[f] += s * (el->one - el->zero) * nd->u.leaf;
        }
        return;
    }
    uint32_t split = nd->split & MODEL_NODE_FEATURE_MASK;
    float x = w->row[split];
    int left;
    if (isnan(x))
        left = (nd->split & MODEL_NODE_DEFAULT_LEFT) != 0;
    else if (nd->split & MODEL_NODE_CATEGORICAL)
        left = model_cat_goes_left(w->cats + nd->u.cat, x); /* either encoding */
    else
        left = x < nd->u.threshold;
    int32_t hot = left ? nd->left : nd->right, cold = left ? nd->right : nd->left;
    const float hot_zero = w->frac[2 * (size_t)nid + !left];
    const float cold_zero = w->frac[2 * (size_t)nid + left];
    float in_zero = 1, in_one = 1;
    uint32_t pi = 0;
    for (; pi <= d; pi++)
        if ((uint32_t)path[pi].feature == split)
            break;
    if (pi != d + 1) {
        in_zero = path[pi].zero;
        in_one = path[pi].one;
        treeshap_unwind(path, d, pi);
        d -= 1;
    }
    walk_node(w, hot, d + 1, path, hot_zero * in_zero, in_one, (int32_t)split, hot_path);
    walk_node(w, cold, d + 1, path, cold_zero * in_zero, 0, (int32_t)split, 0);
}

#if HP_SHAP_HAVE_AVX2
/* ---- the AVX2 walk (trees of depth <= HP_SHAP_VEC_DEPTH) ---------------------------------------
 *
 * The same operations as walk_node and treeshap_path.h, on a structure-of-arrays path (one level
 * per node depth: pweights, zero and one fractions, features, each in lanes 0..15) and in AVX2
 * lanes: a vector lane performs exactly the scalar IEEE float32 operation (no FMA: the target is
 * "avx2" only and C11 does not contract across statements; the intrinsics never fuse), and the
 * scalar branches become per-lane selects, so every value is the scalar one bit for bit.
 * - extend: new pw[j] = zero*old[j]*(d-j)/(d+1) + one*old[j-1]*j/(d+1), where the reference's
 *   descending loop reads only old values (path[i+1] at step i holds its new zero-part): each
 *   lane is independent, two 8-lane vectors for the 16 lanes;
 * - the unwound sums of a leaf: lane i = path element i (1..d), the loop over k as in
 *   treeshap_unwound_sum, with the hot (one != 0) and cold (zero only) cases sharing one division
 *   (numerator and denominator selected per lane), so 2 divisions per k for 8 elements at once;
 * - unwind (a feature seen twice on a path) stays scalar, in the reference's order. */

#define VEC_LANES                                                                                  \
    24 /* lanes per level array: 16 used, reads at [-1] and up to [d+8] stay inside                \
        */

typedef struct vlevel {
    float pwb[VEC_LANES + 8]; /* pw = pwb + 8: pw[-1] is always 0 (the shifted load's lane 0) */
    float zero[VEC_LANES], one[VEC_LANES];
    int32_t feat[VEC_LANES];
} vlevel;

typedef struct vwalk {
    const model_node_rec *nodes;
    const float *frac;
    const uint32_t *cats;
    const float *row;
    float *phi;
    uint32_t *stamp, *touched, ntouched, gen;
    float leaf;
    vlevel *lv;           /* lv[node depth] */
    struct vleaf *leaves; /* VLEAF_BUF leaves waiting for their sums */
    uint32_t nleaves;
} vwalk;

#define VPW(l) ((l)->pwb + 8)

__attribute__((target("avx2"))) static void vec_extend(const vlevel *par, vlevel *p, uint32_t d,
                                                       float pzero, float pone, int32_t pfeat)
{
    /* zero/one/feature lanes 0..d-1 come from the parent; lane d is the new element */
    for (int h = 0; h < 16; h += 8) {
        _mm256_storeu_ps(p->zero + h, _mm256_loadu_ps(par->zero + h));
        _mm256_storeu_ps(p->one + h, _mm256_loadu_ps(par->one + h));
        _mm256_storeu_si256((__m256i *)(p->feat + h),
                            _mm256_loadu_si256((const __m256i *)(par->feat + h)));
    }
    p->zero[d] = pzero;
    p->one[d] = pone;
    p->feat[d] = pfeat;
    float *pw = VPW(p);
    pw[-1] = 0;
    if (d == 0) {
        pw[0] = 1.0f;
        return;
    }
    const float *old = VPW(par);
    const __m256 vz = _mm256_set1_ps(pzero), vo = _mm256_set1_ps(pone);
    const __m256 dp1 = _mm256_set1_ps((float)(d + 1)), dv = _mm256_set1_ps((float)d);
    const __m256 zero = _mm256_setzero_ps();
    for (uint32_t h = 0; h <= d; h += 8) {
        if (h == 8 && d == 8) {
            /* lane 8 alone (a leaf 8 deep): the reference's scalar expression, no vector pass */
            pw[8] = 0.0f + pone * old[7] * 8.0f / 9.0f;
            break;
        }
        const __m256i lane =
            _mm256_add_epi32(_mm256_set1_epi32((int)h), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const __m256 jf = _mm256_cvtepi32_ps(lane);
        const __m256i vd = _mm256_set1_epi32((int)d);
        /* lanes j < d read old[j]; lanes 1 <= j <= d read old[j-1] (old[-1] = 0 for lane 0) */
        const __m256 below = _mm256_castsi256_ps(_mm256_cmpgt_epi32(vd, lane));
        const __m256 upto = _mm256_castsi256_ps(
            _mm256_cmpgt_epi32(_mm256_add_epi32(vd, _mm256_set1_epi32(1)), lane));
        const __m256 o = _mm256_and_ps(below, _mm256_loadu_ps(old + h));
        const __m256 s = _mm256_and_ps(upto, _mm256_loadu_ps(old + h - 1));
        /* ((zero * pw) * (d - j)) / (d + 1) and ((one * pw) * j) / (d + 1), the reference's
         * grouping */
        const __m256 a =
            _mm256_div_ps(_mm256_mul_ps(_mm256_mul_ps(vz, o), _mm256_sub_ps(dv, jf)), dp1);
        /* A cold child (one == 0): (0 * pw) * j is +-0 or NaN, which x86 divides by the
         * positive finite d + 1 into itself (the sign of zero kept, a NaN operand returned), so
         * the division is left out: the same bits for half the nodes' extends at half the cost. */
        __m256 b = _mm256_mul_ps(_mm256_mul_ps(vo, s), jf);
        if (pone != 0)
            b = _mm256_div_ps(b, dp1);
        /* lane 0: a alone; lanes 1..d-1: a + b; lane d: 0 + b (its pweight starts at 0) */
        __m256 r = _mm256_add_ps(a, b);
        const __m256 is0 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(lane, _mm256_setzero_si256()));
        const __m256 isd = _mm256_castsi256_ps(_mm256_cmpeq_epi32(lane, vd));
        r = _mm256_blendv_ps(r, a, is0);
        r = _mm256_blendv_ps(r, _mm256_add_ps(zero, b), isd);
        _mm256_storeu_ps(pw + h, r);
    }
}

/* treeshap_unwind on a vlevel: the same scalar operations in the same order. */
static void vec_unwind(vlevel *p, uint32_t d, uint32_t pi)
{
    float *pw = VPW(p);
    const float one = p->one[pi], zero = p->zero[pi];
    float next_one = pw[d];
    for (int i = (int)d - 1; i >= 0; i--) {
        if (one != 0) {
            const float tmp = pw[i];
            pw[i] = next_one * (float)(d + 1) / ((float)(i + 1) * one);
            next_one = tmp - pw[i] * zero * (float)(d - (uint32_t)i) / (float)(d + 1);
        } else {
            pw[i] = (pw[i] * (float)(d + 1)) / (zero * (float)(d - (uint32_t)i));
        }
    }
    for (uint32_t i = pi; i < d; i++) {
        p->feat[i] = p->feat[i + 1];
        p->zero[i] = p->zero[i + 1];
        p->one[i] = p->one[i + 1];
    }
}

/* xgboost's "already split on this feature" step: when an element 0..d of p is on feature
 * split (at most one: features are unique on a path), its fractions go to *in_zero, *in_one and
 * it is unwound.  Returns the path depth after it (d or d - 1). */
__attribute__((target("avx2"), always_inline)) static inline uint32_t
vec_unwind_seen(vlevel *p, uint32_t d, uint32_t split, float *in_zero, float *in_one)
{
    const __m256i f = _mm256_set1_epi32((int32_t)split);
    unsigned m = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(
                     _mm256_cmpeq_epi32(f, _mm256_loadu_si256((const __m256i *)p->feat)))) |
                 (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(
                     _mm256_cmpeq_epi32(f, _mm256_loadu_si256((const __m256i *)(p->feat + 8)))))
                     << 8;
    m &= (2u << d) - 1u; /* lanes 0..d */
    if (m == 0)
        return d;
    const uint32_t pi = (uint32_t)__builtin_ctz(m);
    *in_zero = p->zero[pi];
    *in_one = p->one[pi];
    vec_unwind(p, d, pi);
    return d - 1;
}

/* A leaf waiting for its unwound sums: its path (pweights 0..d; zero, one, feature of elements
 * 1..d in lanes 0..d-1) and, once computed, the contributions w * (one - zero) * leaf. */
typedef struct vleaf {
    _Alignas(32) float pw[16];
    float zero[16], one[16];
    int32_t feat[16];
    float contrib[16];
    float leaf;
    uint32_t d;
    uint32_t pad[6];
} vleaf;

/* One chain of treeshap_unwound_sum over 8 lanes (path elements), state between steps. */
typedef struct vchain {
    __m256 one, zero, hot, live, next, total;
} vchain;

__attribute__((target("avx2"), always_inline)) static inline void
vchain_init(vchain *c, const float *one, const float *zero, float pwd)
{
    const __m256 z = _mm256_setzero_ps();
    c->one = _mm256_loadu_ps(one);
    c->zero = _mm256_loadu_ps(zero);
    c->hot = _mm256_cmp_ps(c->one, z, _CMP_NEQ_UQ);
    c->live = _mm256_or_ps(c->hot, _mm256_cmp_ps(c->zero, z, _CMP_NEQ_UQ));
    c->next = _mm256_set1_ps(pwd);
    c->total = z;
}

/* Step k of treeshap_unwound_sum in every lane: hot lanes (one != 0) divide (next * (d+1)) by
 * ((k+1) * one), cold lanes pw[k] by zero and that by ratio = (d-k)/(d+1); one division serves
 * both (numerator and denominator selected per lane). */
__attribute__((target("avx2"), always_inline)) static inline void
vchain_step(vchain *c, __m256 pwk, __m256 ratio, __m256 kp1, __m256 dp1)
{
    const __m256 num = _mm256_blendv_ps(pwk, _mm256_mul_ps(c->next, dp1), c->hot);
    const __m256 den = _mm256_blendv_ps(c->zero, _mm256_mul_ps(kp1, c->one), c->hot);
    const __m256 q = _mm256_div_ps(num, den);
    const __m256 add = _mm256_blendv_ps(_mm256_div_ps(q, ratio), q, c->hot);
    c->total = _mm256_blendv_ps(c->total, _mm256_add_ps(c->total, add), c->live);
    c->next = _mm256_blendv_ps(
        c->next, _mm256_sub_ps(pwk, _mm256_mul_ps(_mm256_mul_ps(q, c->zero), ratio)), c->hot);
}

/* w * (one - zero) * leaf, the reference's grouping. */
__attribute__((target("avx2"), always_inline)) static inline void
vchain_store(const vchain *c, float leaf, float *out)
{
    _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_mul_ps(c->total, _mm256_sub_ps(c->one, c->zero)),
                                        _mm256_set1_ps(leaf)));
}

/* The sums of two 8-lane chains over the same d (two leaves of equal d, or lanes 0..7 and 8..15
 * of one leaf deeper than 8): two independent dependency chains interleaved, which is what keeps
 * the divider busy (one chain alone waits on its own division ~every step). */
__attribute__((target("avx2"))) static void vleaf_sums2(vleaf *a, int ha, vleaf *b, int hb)
{
    const uint32_t d = a->d;
    const __m256 dp1 = _mm256_set1_ps((float)(d + 1));
    vchain ca, cb;
    vchain_init(&ca, a->one + ha, a->zero + ha, a->pw[d]);
    vchain_init(&cb, b->one + hb, b->zero + hb, b->pw[d]);
    for (int k = (int)d - 1; k >= 0; k--) {
        const __m256 ratio = _mm256_set1_ps((float)(d - (uint32_t)k) / (float)(d + 1));
        const __m256 kp1 = _mm256_set1_ps((float)(k + 1));
        vchain_step(&ca, _mm256_set1_ps(a->pw[k]), ratio, kp1, dp1);
        vchain_step(&cb, _mm256_set1_ps(b->pw[k]), ratio, kp1, dp1);
    }
    vchain_store(&ca, a->leaf, a->contrib + ha);
    vchain_store(&cb, b->leaf, b->contrib + hb);
}

__attribute__((target("avx2"))) static void vleaf_sums1(vleaf *a)
{
    const uint32_t d = a->d;
    const __m256 dp1 = _mm256_set1_ps((float)(d + 1));
    vchain ca;
    vchain_init(&ca, a->one, a->zero, a->pw[d]);
    for (int k = (int)d - 1; k >= 0; k--) {
        const __m256 ratio = _mm256_set1_ps((float)(d - (uint32_t)k) / (float)(d + 1));
        vchain_step(&ca, _mm256_set1_ps(a->pw[k]), ratio, _mm256_set1_ps((float)(k + 1)), dp1);
    }
    vchain_store(&ca, a->leaf, a->contrib);
}

/* The buffered leaves' sums (paired where two neighbours have the same d), then their
 * contributions added to phi in the leaves' walk order, as the reference adds them. */
__attribute__((target("avx2"))) static void vec_flush(vwalk *w)
{
    vleaf *b = w->leaves;
    for (uint32_t i = 0; i < w->nleaves;) {
        if (b[i].d > 8) {
            vleaf_sums2(&b[i], 0, &b[i], 8);
            i++;
        } else if (i + 1 < w->nleaves && b[i + 1].d == b[i].d && b[i].d > 0) {
            vleaf_sums2(&b[i], 0, &b[i + 1], 0);
            i += 2;
        } else {
            if (b[i].d > 0)
                vleaf_sums1(&b[i]);
            i++;
        }
    }
    for (uint32_t i = 0; i < w->nleaves; i++)
        for (uint32_t j = 0; j < b[i].d; j++) {
            uint32_t f = (uint32_t)b[i].feat[j];
            if (w->stamp[f] != w->gen) {
                w->stamp[f] = w->gen;
                w->phi[f] = 0;
                w->touched[w->ntouched++] = f;
            }
            w->phi[f] += b[i].contrib[j];
        }
    w->nleaves = 0;
}

/* A leaf's path into the buffer (its sums wait for vec_flush). */
__attribute__((target("avx2"))) static void vec_leaf(vwalk *w, const vlevel *p, uint32_t d,
                                                     float leaf)
{
    vleaf *l = &w->leaves[w->nleaves++];
    const float *pw = VPW(p);
    for (int h = 0; h < 16; h += 8) {
        _mm256_store_ps(l->pw + h, _mm256_loadu_ps(pw + h));
        _mm256_store_ps(l->zero + h, _mm256_loadu_ps(p->zero + 1 + h));
        _mm256_store_ps(l->one + h, _mm256_loadu_ps(p->one + 1 + h));
        _mm256_store_si256((__m256i *)(l->feat + h),
                           _mm256_loadu_si256((const __m256i *)(p->feat + 1 + h)));
    }
    l->leaf = leaf;
    l->d = d;
    if (w->nleaves == VLEAF_BUF)
        vec_flush(w);
}

/* walk_node on vlevels: node nid at node depth lvl, its path element (pzero, pone, pfeature)
 * extended onto the parent's path of d elements. */
__attribute__((target("avx2"))) static void vec_node(vwalk *w, int32_t nid, uint32_t lvl,
                                                     uint32_t d, float pzero, float pone,
                                                     int32_t pfeature, int hot_path)
{
    const model_node_rec *nd = &w->nodes[nid];
    vlevel *p = &w->lv[lvl];
    vec_extend(lvl ? p - 1 : p, p, d, pzero, pone, pfeature);
    if (nd->left == -1) {
        if (hot_path)
            w->leaf = nd->u.leaf;
        vec_leaf(w, p, d, nd->u.leaf);
        return;
    }
    uint32_t split = nd->split & MODEL_NODE_FEATURE_MASK;
    float x = w->row[split];
    int left;
    if (isnan(x))
        left = (nd->split & MODEL_NODE_DEFAULT_LEFT) != 0;
    else if (nd->split & MODEL_NODE_CATEGORICAL)
        left = model_cat_goes_left(w->cats + nd->u.cat, x);
    else
        left = x < nd->u.threshold;
    int32_t hot = left ? nd->left : nd->right, cold = left ? nd->right : nd->left;
    const float hot_zero = w->frac[2 * (size_t)nid + !left];
    const float cold_zero = w->frac[2 * (size_t)nid + left];
    float in_zero = 1, in_one = 1;
    d = vec_unwind_seen(p, d, split, &in_zero, &in_one);
    vec_node(w, hot, lvl + 1, d + 1, hot_zero * in_zero, in_one, (int32_t)split, hot_path);
    vec_node(w, cold, lvl + 1, d + 1, cold_zero * in_zero, 0, (int32_t)split, 0);
}

/* ---- the level-order walk (trees of HP_SHAP_LEVEL_MIN_NODES..HP_SHAP_BFS_NODES nodes) ---------
 *
 * vec_node's time is latency: every extend waits for its parent's, stored just before (and
 * reloaded unaligned, past store forwarding), and a leaf's sums are one chain of divisions, two
 * chains at best.  Here the same operations are scheduled for throughput:
 * - nodes are taken in index order, which is breadth first (model.h: a node's children come after
 *   it), each with its own path slot: an internal node unwinds its path if needed, then extends
 *   both children's paths from it.  Consecutive extends are independent (their parents were
 *   computed long before), so they overlap (level_nodes16 in AVX-512 on lslot slots,
 *   level_nodes8 in AVX2 on vlevel slots);
 * - then every leaf's unwound sums, leaves bucketed by path depth as they are met, four chains at
 *   a time (level_sums16: 16 lanes, two leaves of depth <= 8 a register; level_sums8: 8 lanes);
 * - then the contributions added in the reference's order: depth first, hot child first.  A leaf's
 *   position in that order is its rank: rank(root) = 0, rank(hot child) = rank(node),
 *   rank(cold child) = rank(node) + leaves under the hot child (nleaves, from the layout).  The
 *   leaf of rank 0 is the row's own leaf (the margin).
 * Each node's, leaf's and lane's arithmetic is vec_extend / vec_unwind / vchain_step's (the
 * AVX-512 versions compute the same values: the same lane operations, except that divisions by
 * TreeSHAP's known divisors go through hp_divk16, which gives the division's bits), so every value
 * is the DFS walk's and the reference's bit for bit; only the order of independent computations
 * changes, and the one order that matters (the float sums into phi) is kept.
 * Tried and dropped (A/B, CPU time): phi for <= 64 features in four zmm registers, each leaf's
 * contributions spread over the feature lanes through a feature -> lane table set and reset per
 * leaf (exact: absent features add +0): +1.2 ms a row on the benchmark model, the table's scalar
 * stores stall the vector loads that follow (no store forwarding); (k+1) * one as k+1 in the
 * sums: no gain; prefetching the next tree's leaf counts: no gain. */

/* A node's path in the AVX-512 node loop: vlevel without its padding (vlevel's shifted reloads
 * need pw[-1] and spare lanes; here lanes are shifted in registers), 64-byte aligned so that
 * each field is one cache line and one zmm access.  Reads of one + 1 / zero + 1 run one lane into
 * the next field: those lanes (past any path's end) are never used. */
typedef struct lslot {
    float pw[16], zero[16], one[16];
    int32_t feat[16];
} lslot;

typedef struct lwalk {
    vlevel *slot;      /* per node: its path (after its own unwind, for an internal node) */
    lslot *slot16;     /* the same for the AVX-512 node loop (same memory) */
    float *contrib;    /* per leaf ordinal: 16 contributions, element j+1 in lane j */
    uint32_t *depth;   /* per node: path depth d */
    uint32_t *rank;    /* per node: position of its first leaf in depth-first order */
    uint32_t *bydepth; /* leaf ordinals by path depth d: from bydepth[d * leafcap], cnt[d] */
    uint32_t leafcap;  /* leaves a tree may have: bfs_cap / 2 + 1 */
    uint32_t *leaf;    /* per leaf ordinal (index order): its node */
    uint32_t *order;   /* depth-first position -> leaf ordinal */
    int avx512;        /* the leaf sums in 16 lanes (the CPU has AVX-512F) */
    int dense;         /* phi is zeroed per tree and summed whole: no feature stamps */
    uint32_t nf;       /* num_feature */
} lwalk;

/* The unwound sums of leaves o[0..3] (path depth d) into their contributions, in AVX2: four 8-lane
 * chains at once, which keeps the divider busy.  A leaf deeper than 8 is two chains (lanes 0..7,
 * 8..15): then o[0..1] are its leaves, o[2..3] unused. */
__attribute__((target("avx2"))) static void level_sums8(const vwalk *w, const lwalk *lw, uint32_t d,
                                                        const uint32_t *o)
{
    const __m256 dp1 = _mm256_set1_ps((float)(d + 1));
    const float *pw[4];
    float *out[4];
    float leaf[4];
    vchain c[4];
    for (uint32_t j = 0; j < 4; j++) {
        const uint32_t lo = d > 8 ? o[j / 2] : o[j], h = d > 8 ? (j & 1u) * 8u : 0;
        const vlevel *p = &lw->slot[lw->leaf[lo]];
        pw[j] = VPW(p);
        out[j] = lw->contrib + (size_t)lo * 16 + h;
        leaf[j] = w->nodes[lw->leaf[lo]].u.leaf;
        vchain_init(&c[j], p->one + 1 + h, p->zero + 1 + h, pw[j][d]);
    }
    for (int k = (int)d - 1; k >= 0; k--) {
        const __m256 ratio = _mm256_set1_ps((float)(d - (uint32_t)k) / (float)(d + 1));
        const __m256 kp1 = _mm256_set1_ps((float)(k + 1));
        for (int j = 0; j < 4; j++)
            vchain_step(&c[j], _mm256_set1_ps(pw[j][k]), ratio, kp1, dp1);
    }
    for (int j = 0; j < 4; j++)
        vchain_store(&c[j], leaf[j], out[j]);
}

/* level_sums8 in AVX-512: four 16-lane chains, each two leaves (lanes 0..7 and 8..15) when d <= 8
 * (o[0..7]), or one leaf when deeper (o[0..3]).  The lanes run vchain_step's operations with the
 * selects as masked operations (a masked-off lane keeps its old value, as the blend does) and
 * q / ratio through hp_divk16 (the division's bits), so every live lane's value is the AVX2
 * chains' bit for bit (a dead lane's differs and is dropped).  Lanes with one = zero = 0 add
 * nothing in the reference (its total stays +0): their total is reset to +0 before the contribution
 * instead of being guarded at every step. */
__attribute__((target("avx512f"))) static void level_sums16(const vwalk *w, const lwalk *lw,
                                                            uint32_t d, const uint32_t *o)
{
    const int two = d <= 8;
    const __m512 zr = _mm512_setzero_ps(), dp1 = _mm512_set1_ps((float)(d + 1));
    __m512 one[4], zero[4], next[4], total[4], pwv[4], leaf[4];
    __mmask16 hot[4], cold[4];
#pragma GCC unroll 4
    for (int u = 0; u < 4; u++) {
        if (two) {
            const lslot *a = &lw->slot16[lw->leaf[o[2 * u]]],
                        *b = &lw->slot16[lw->leaf[o[2 * u + 1]]];
#define CAT8(x, y)                                                                                 \
    _mm512_castpd_ps(                                                                              \
        _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(x)), _mm256_castps_pd(y), 1))
            one[u] = CAT8(_mm256_loadu_ps(a->one + 1), _mm256_loadu_ps(b->one + 1));
            zero[u] = CAT8(_mm256_loadu_ps(a->zero + 1), _mm256_loadu_ps(b->zero + 1));
            pwv[u] = CAT8(_mm256_loadu_ps(a->pw), _mm256_loadu_ps(b->pw));
            next[u] = CAT8(_mm256_set1_ps(a->pw[d]), _mm256_set1_ps(b->pw[d]));
            leaf[u] = CAT8(_mm256_set1_ps(w->nodes[lw->leaf[o[2 * u]]].u.leaf),
                           _mm256_set1_ps(w->nodes[lw->leaf[o[2 * u + 1]]].u.leaf));
#undef CAT8
        } else {
            const lslot *a = &lw->slot16[lw->leaf[o[u]]];
            one[u] = _mm512_loadu_ps(a->one + 1);
            zero[u] = _mm512_loadu_ps(a->zero + 1);
            pwv[u] = _mm512_loadu_ps(a->pw);
            next[u] = _mm512_set1_ps(a->pw[d]);
            leaf[u] = _mm512_set1_ps(w->nodes[lw->leaf[o[u]]].u.leaf);
        }
        hot[u] = _mm512_cmp_ps_mask(one[u], zr, _CMP_NEQ_UQ);
        cold[u] = (__mmask16)(~hot[u] & _mm512_cmp_ps_mask(zero[u], zr, _CMP_NEQ_UQ));
        total[u] = zr;
    }
    const __m512i half = two ? _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 8, 8, 8, 8, 8, 8, 8, 8)
                             : _mm512_setzero_si512();
    for (int k = (int)d - 1; k >= 0; k--) {
        const float rs = (float)(d - (uint32_t)k) / (float)(d + 1);
        const __m512 ratio = _mm512_set1_ps(rs), rratio = _mm512_set1_ps(hp_divk_recip(rs));
        const __m512 kp1 = _mm512_set1_ps((float)(k + 1));
        const __m512i idx = _mm512_add_epi32(half, _mm512_set1_epi32(k));
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            const __m512 pwk = _mm512_permutexvar_ps(idx, pwv[u]);
            const __m512 num = _mm512_mask_mul_ps(pwk, hot[u], next[u], dp1);
            const __m512 den = _mm512_mask_mul_ps(zero[u], hot[u], kp1, one[u]);
            __m512 q = _mm512_div_ps(num, den);
            /* q / ratio in the cold lanes; the others divide +0 (their q may be out of
             * hp_divk16's range: a hot lane's is unused here, a dead lane's is pw / 0) */
            const __m512 add = _mm512_mask_mov_ps(
                q, cold[u], hp_divk16(_mm512_maskz_mov_ps(cold[u], q), ratio, rratio));
            total[u] = _mm512_add_ps(total[u], add);
            next[u] = _mm512_mask_sub_ps(next[u], hot[u], pwk,
                                         _mm512_mul_ps(_mm512_mul_ps(q, zero[u]), ratio));
        }
    }
#pragma GCC unroll 4
    for (int u = 0; u < 4; u++) {
        const __mmask16 live = hot[u] | cold[u];
        const __m512 t = _mm512_maskz_mov_ps(live, total[u]);
        const __m512 c = _mm512_mul_ps(_mm512_mul_ps(t, _mm512_sub_ps(one[u], zero[u])), leaf[u]);
        if (two) {
            _mm256_storeu_ps(lw->contrib + (size_t)o[2 * u] * 16, _mm512_castps512_ps256(c));
            _mm256_storeu_ps(lw->contrib + (size_t)o[2 * u + 1] * 16,
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(c), 1)));
        } else {
            _mm512_storeu_ps(lw->contrib + (size_t)o[u] * 16, c);
        }
    }
}

/* The scalar part of visiting node i, shared by both node loops.  A leaf is recorded (its leaf
 * ordinal, its depth-first position, the count of leaves of its depth) and 0 returned; for an
 * internal node, 1 with its hot and cold children, their cover fractions and ranks set. */
__attribute__((always_inline)) static inline int
level_visit(const vwalk *w, const lwalk *lw, const uint32_t *nleaves, uint32_t i, uint32_t *nl,
            uint32_t *cnt, uint32_t *hot, uint32_t *cold, float *hot_zero, float *cold_zero)
{
    const model_node_rec *nd = &w->nodes[i];
    if (nd->left == -1) {
        const uint32_t d = lw->depth[i];
        lw->leaf[*nl] = i;
        lw->order[lw->rank[i]] = *nl;
        lw->bydepth[d * lw->leafcap + cnt[d]++] = *nl;
        (*nl)++;
        return 0;
    }
    const float x = w->row[nd->split & MODEL_NODE_FEATURE_MASK];
    int left;
    if ((nd->split & MODEL_NODE_CATEGORICAL) && !isnan(x))
        left = model_cat_goes_left(w->cats + nd->u.cat, x);
    else /* without a branch on the row: half of these would be mispredicted */
        left = (x < nd->u.threshold) | (isnan(x) & ((nd->split & MODEL_NODE_DEFAULT_LEFT) != 0));
    *hot = (uint32_t)nd->left + (uint32_t)!left;
    *cold = (uint32_t)nd->left + (uint32_t)left;
    *hot_zero = w->frac[2 * (size_t)i + !left];
    *cold_zero = w->frac[2 * (size_t)i + left];
    lw->rank[*hot] = lw->rank[i];
    lw->rank[*cold] = lw->rank[i] + nleaves[*hot];
    return 1;
}

/* The node loop in AVX2 (vec_extend, vec_unwind).  Returns the number of leaves. */
__attribute__((target("avx2"))) static uint32_t
level_nodes8(const vwalk *w, const lwalk *lw, const uint32_t *nleaves, uint32_t n, uint32_t *cnt)
{
    vlevel *s = lw->slot;
    uint32_t nl = 0, hot = 0, cold = 0;
    float hot_zero = 0, cold_zero = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!level_visit(w, lw, nleaves, i, &nl, cnt, &hot, &cold, &hot_zero, &cold_zero))
            continue;
        vlevel *p = &s[i];
        uint32_t d = lw->depth[i];
        const uint32_t split = w->nodes[i].split & MODEL_NODE_FEATURE_MASK;
        float in_zero = 1, in_one = 1;
        d = vec_unwind_seen(p, d, split, &in_zero, &in_one);
        vec_extend(p, &s[hot], d + 1, hot_zero * in_zero, in_one, (int32_t)split);
        vec_extend(p, &s[cold], d + 1, cold_zero * in_zero, 0, (int32_t)split);
        lw->depth[hot] = lw->depth[cold] = d + 1;
    }
    return nl;
}

/* vec_extend in one 16-lane AVX-512 pass (d >= 1): the same values (lane 0: a; lanes 1..d-1:
 * a + b; lane d: 0 + b; b undivided for a cold child), the divisions by d + 1 through hp_divk16,
 * old[j-1] by a lane shift instead of an unaligned reload, and the new element's lane inserted by
 * a masked blend instead of a scalar store (no store-forwarding stall when the child is read). */
__attribute__((target("avx512f"), always_inline)) static inline void
vec_extend16(const lslot *par, lslot *p, uint32_t d, float pzero, float pone, int32_t pfeat)
{
    const __mmask16 at = (__mmask16)(1u << d);
    _mm512_storeu_ps(p->zero,
                     _mm512_mask_blend_ps(at, _mm512_loadu_ps(par->zero), _mm512_set1_ps(pzero)));
    _mm512_storeu_ps(p->one,
                     _mm512_mask_blend_ps(at, _mm512_loadu_ps(par->one), _mm512_set1_ps(pone)));
    _mm512_storeu_si512(p->feat, _mm512_mask_blend_epi32(at, _mm512_loadu_si512(par->feat),
                                                         _mm512_set1_epi32(pfeat)));
    const __m512 zero = _mm512_setzero_ps();
    const __m512 jf = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 dp1 = _mm512_set1_ps((float)(d + 1)), dv = _mm512_set1_ps((float)d);
    const __m512 old = _mm512_loadu_ps(par->pw);
    /* lanes j < d read old[j]; lanes 1 <= j <= d read old[j-1] (lane 0: 0) */
    const __m512 o = _mm512_maskz_mov_ps((__mmask16)(at - 1u), old);
    const __m512 sh = _mm512_castsi512_ps(
        _mm512_alignr_epi32(_mm512_castps_si512(old), _mm512_setzero_si512(), 15));
    const __m512 sv = _mm512_maskz_mov_ps((__mmask16)(2u * at - 1u), sh);
    const __m512 rdp1 = _mm512_set1_ps(hp_divk_recip((float)(d + 1)));
    const __m512 a = hp_divk16(
        _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(pzero), o), _mm512_sub_ps(dv, jf)), dp1, rdp1);
    __m512 b = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(pone), sv), jf);
    if (pone != 0)
        b = hp_divk16(b, dp1, rdp1);
    __m512 r = _mm512_mask_mov_ps(_mm512_add_ps(a, b), 1, a);
    r = _mm512_mask_mov_ps(r, at, _mm512_add_ps(zero, b));
    _mm512_storeu_ps(p->pw, r);
}

/* vec_unwind in AVX-512: for a cold element (one == 0) every pweight is computed on its own
 * ((pw[i] * (d+1)) / (zero * (d-i)), all lanes at once); for a hot one the reference's chain,
 * scalar.  Then elements pi+1..d move down one lane. */
__attribute__((target("avx512f"), always_inline)) static inline void
vec_unwind16(lslot *p, uint32_t d, uint32_t pi)
{
    float *pw = p->pw;
    const float one = p->one[pi], zero = p->zero[pi];
    const __mmask16 below = (__mmask16)((1u << d) - 1u); /* lanes 0..d-1 */
    if (one != 0) {
        float next_one = pw[d];
        for (int i = (int)d - 1; i >= 0; i--) {
            const float tmp = pw[i];
            pw[i] = next_one * (float)(d + 1) / ((float)(i + 1) * one);
            next_one = tmp - pw[i] * zero * (float)(d - (uint32_t)i) / (float)(d + 1);
        }
    } else {
        const __m512 jf = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        const __m512 num = _mm512_mul_ps(_mm512_loadu_ps(pw), _mm512_set1_ps((float)(d + 1)));
        const __m512 den =
            _mm512_mul_ps(_mm512_set1_ps(zero), _mm512_sub_ps(_mm512_set1_ps((float)d), jf));
        _mm512_mask_storeu_ps(pw, below, _mm512_div_ps(num, den));
    }
    const __mmask16 move = (__mmask16)(below & ~((1u << pi) - 1u)); /* lanes pi..d-1 */
    const __m512i z = _mm512_loadu_si512(p->zero), o = _mm512_loadu_si512(p->one),
                  f = _mm512_loadu_si512(p->feat);
    _mm512_storeu_si512(p->zero, _mm512_mask_blend_epi32(move, z, _mm512_alignr_epi32(z, z, 1)));
    _mm512_storeu_si512(p->one, _mm512_mask_blend_epi32(move, o, _mm512_alignr_epi32(o, o, 1)));
    _mm512_storeu_si512(p->feat, _mm512_mask_blend_epi32(move, f, _mm512_alignr_epi32(f, f, 1)));
}

/* The node loop in AVX-512 (vec_extend16, vec_unwind16).  Returns the number of leaves. */
__attribute__((target("avx512f"))) static uint32_t
level_nodes16(const vwalk *w, const lwalk *lw, const uint32_t *nleaves, uint32_t n, uint32_t *cnt)
{
    lslot *s = lw->slot16;
    uint32_t nl = 0, hot = 0, cold = 0;
    float hot_zero = 0, cold_zero = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!level_visit(w, lw, nleaves, i, &nl, cnt, &hot, &cold, &hot_zero, &cold_zero))
            continue;
        lslot *p = &s[i];
        uint32_t d = lw->depth[i];
        const uint32_t split = w->nodes[i].split & MODEL_NODE_FEATURE_MASK;
        float in_zero = 1, in_one = 1;
        unsigned m =
            _mm512_cmpeq_epi32_mask(_mm512_set1_epi32((int32_t)split), _mm512_loadu_si512(p->feat));
        m &= (2u << d) - 1u; /* lanes 0..d */
        if (m != 0) {
            uint32_t pi = (uint32_t)__builtin_ctz(m);
            in_zero = p->zero[pi];
            in_one = p->one[pi];
            vec_unwind16(p, d, pi);
            d -= 1;
        }
        vec_extend16(p, &s[hot], d + 1, hot_zero * in_zero, in_one, (int32_t)split);
        vec_extend16(p, &s[cold], d + 1, cold_zero * in_zero, 0, (int32_t)split);
        lw->depth[hot] = lw->depth[cold] = d + 1;
    }
    return nl;
}

/* One tree of n <= bfs_cap nodes for w->row: phi, touched and w->leaf as vec_node + vec_flush
 * leave them (with lw->dense, phi[0..nf) zeroed by the caller and no stamps). */
static void level_tree(vwalk *w, const lwalk *lw, const uint32_t *nleaves, uint32_t n)
{
    uint32_t cnt[HP_SHAP_VEC_DEPTH + 1] = {0};
    /* the root's path, as vec_extend(d = 0) leaves it; lanes past a path's end are copied down
     * and computed on, never read: they start at 0 */
    if (lw->avx512) {
        memset(&lw->slot16[0], 0, sizeof lw->slot16[0]);
        lw->slot16[0].zero[0] = lw->slot16[0].one[0] = lw->slot16[0].pw[0] = 1.0f;
        lw->slot16[0].feat[0] = -1;
    } else {
        memset(&lw->slot[0], 0, sizeof lw->slot[0]);
        lw->slot[0].zero[0] = lw->slot[0].one[0] = VPW(&lw->slot[0])[0] = 1.0f;
        lw->slot[0].feat[0] = -1;
    }
    lw->depth[0] = 0;
    lw->rank[0] = 0;
    const uint32_t nl =
        lw->avx512 ? level_nodes16(w, lw, nleaves, n, cnt) : level_nodes8(w, lw, nleaves, n, cnt);
    /* the sums, by depth */
    for (uint32_t d = 1; d <= HP_SHAP_VEC_DEPTH; d++) {
        /* leaves per call: 8 or 4 (AVX-512), 4 or 2 (AVX2); a short group repeats its last leaf
         * (the same values written twice) */
        const uint32_t per = (lw->avx512 ? 8u : 4u) >> (d > 8);
        const uint32_t *b = lw->bydepth + (size_t)d * lw->leafcap;
        for (uint32_t a = 0; a < cnt[d]; a += per) {
            uint32_t o[8];
            for (uint32_t j = 0; j < per; j++)
                o[j] = b[a + j < cnt[d] ? a + j : cnt[d] - 1];
            if (lw->avx512)
                level_sums16(w, lw, d, o);
            else
                level_sums8(w, lw, d, o);
        }
    }
    /* the contributions in depth-first order, as the reference adds them */
    for (uint32_t r = 0; r < nl; r++) {
        const uint32_t o = lw->order[r], node = lw->leaf[o], d = lw->depth[node];
        const int32_t *feat = (lw->avx512 ? lw->slot16[node].feat : lw->slot[node].feat) + 1;
        const float *c = lw->contrib + (size_t)o * 16;
        if (lw->dense && d <= 8) {
            /* eight adds whatever d (no loop exit to mispredict): lanes past d go to phi[nf],
             * which is scratch here (the bias column is the mean's, and only phi[0..nf) is
             * summed into the output) */
            for (uint32_t j = 0; j < 8; j++) {
                const uint32_t in = 0u - (uint32_t)(j < d); /* a mask, not a branch */
                w->phi[((uint32_t)feat[j] & in) | (lw->nf & ~in)] += c[j];
            }
            continue;
        }
        if (lw->dense) {
            for (uint32_t j = 0; j < d; j++)
                w->phi[feat[j]] += c[j];
            continue;
        }
        for (uint32_t j = 0; j < d; j++) {
            uint32_t fe = (uint32_t)feat[j];
            if (w->stamp[fe] != w->gen) {
                w->stamp[fe] = w->gen;
                w->phi[fe] = 0;
                w->touched[w->ntouched++] = fe;
            }
            w->phi[fe] += c[j];
        }
    }
    w->leaf = w->nodes[lw->leaf[lw->order[0]]].u.leaf;
}
#endif

/* Asks for tree tr's nodes and cover fractions while the current tree is walked: a walk visits
 * every node of every tree (~12 KB a tree of depth 8), the forest is larger than the caches, and
 * a tree takes microseconds, so the next one arrives in time (measured: ~25% of the worker's
 * profile was waiting on node loads). */
static void prefetch_tree(const shap_layout *l, const model_tree_rec *tr)
{
    const char *nodes = (const char *)(l->v.nodes + tr->first_node);
    const char *frac = (const char *)(l->frac + 2 * (size_t)tr->first_node);
    for (size_t b = 0; b < (size_t)tr->num_nodes * sizeof(model_node_rec); b += 64)
        __builtin_prefetch(nodes + b);
    for (size_t b = 0; b < (size_t)tr->num_nodes * 2 * sizeof(float); b += 64)
        __builtin_prefetch(frac + b);
}

#if HP_SHAP_HAVE_AVX2
/* The level-order walk's arrays in the scratch, after the depth-first walk's (lv: its 64-byte
 * aligned start), and its choices for allow_vec (see hp_shap.h). */
static lwalk level_scratch(const shap_layout *l, uintptr_t lv, void *scratch, int allow_vec)
{
    lwalk lw = {0};
    const uint32_t nf = l->v.hdr->num_feature;
    if (l->bfs_cap > 0) {
        const uint32_t cap = l->bfs_cap, nleaf = cap / 2 + 1;
        uintptr_t b = lv + ((size_t)HP_SHAP_VEC_DEPTH + 1) * VLEVEL_BYTES + VLEAF_BUF * VLEAF_BYTES;
        b = (b + 63u) & ~(uintptr_t)63u;
        lw.slot = (vlevel *)b;
        lw.slot16 = (lslot *)b; /* cap x 256 bytes <= cap x VLEVEL_BYTES */
        lw.nf = nf;
        b += (size_t)cap * VLEVEL_BYTES;
        lw.contrib = (float *)b;
        b += (size_t)nleaf * BLEAF_BYTES;
        lw.depth = (uint32_t *)b;
        lw.rank = lw.depth + cap;
        lw.leaf = lw.rank + cap;
        lw.order = lw.leaf + nleaf;
        lw.bydepth = lw.order + nleaf;
        lw.leafcap = nleaf;
        HP_ASSERT((unsigned char *)(lw.bydepth + (size_t)nleaf * (HP_SHAP_VEC_DEPTH + 1)) <=
                  (unsigned char *)scratch + l->scratch);
        /* allow_vec 3: AVX2 sums and feature stamps, the paths the CPU or model may not pick */
        lw.avx512 = allow_vec == 1 && l->avx512;
        lw.dense = allow_vec == 1 && nf <= HP_SHAP_DENSE_NF;
    }
    return lw;
}
#endif

void hp_shap_explain_isa(const void *layout, const float *rows, size_t nrows, float *contribs,
                         float *margins, void *scratch, int allow_vec)
{
    const shap_layout *l = layout;
    const model_view *m = &l->v;
    const model_file_header *h = m->hdr;
    const uint32_t nf = h->num_feature, k = h->num_class, ncol = nf + 1;
    const int dart = (h->flags & MODEL_F_DART) != 0;
    HP_ASSERT(l != NULL && scratch != NULL);
    walk w = {.cats = m->cats};
    w.phi = scratch;
    w.stamp = (uint32_t *)(w.phi + ncol);
    w.touched = w.stamp + nf;
    size_t off = scratch_path_off(nf);
    treeshap_elem *path = (treeshap_elem *)((unsigned char *)scratch + off);
    off += treeshap_path_elems(l->max_depth) * sizeof(treeshap_elem);
    uintptr_t lv = ((uintptr_t)scratch + off + 63u) & ~(uintptr_t)63u;
    const int vec = allow_vec && l->vec;
#if HP_SHAP_HAVE_AVX2
    _Static_assert(sizeof(vlevel) == VLEVEL_BYTES, "VLEVEL_BYTES");
    _Static_assert(sizeof(vleaf) == VLEAF_BYTES, "VLEAF_BYTES");
    _Static_assert(sizeof(lslot) <= VLEVEL_BYTES && sizeof(lslot) % 64 == 0, "lslot");
    vwalk vw = {.cats = m->cats,
                .phi = w.phi,
                .stamp = w.stamp,
                .touched = w.touched,
                .lv = (vlevel *)lv,
                .leaves = (vleaf *)(lv + ((size_t)HP_SHAP_VEC_DEPTH + 1) * VLEVEL_BYTES)};
    const lwalk lw = level_scratch(l, lv, scratch, allow_vec);
#else
    (void)lv;
#endif
    memset(w.stamp, 0, (size_t)nf * sizeof(uint32_t));
    w.gen = 0;

    memset(contribs, 0, nrows * k * ncol * sizeof(float));
    for (size_t i = 0; i < nrows * k; i++)
        margins[i] = h->base_margin;
    for (size_t r = 0; r < nrows; r++) {
        w.row = rows + r * nf;
        float *orow = contribs + r * k * ncol;
        for (uint32_t t = 0; t < h->num_trees; t++) {
            const model_tree_rec *tr = &m->trees[t];
            w.nodes = m->nodes + tr->first_node;
            w.frac = l->frac + 2 * (size_t)tr->first_node;
            if (t + 1 < h->num_trees)
                prefetch_tree(l, &m->trees[t + 1]);
            w.ntouched = 0;
            int dense_tree = 0; /* phi[0..nf) all written: add every column */
            if (++w.gen == 0) { /* wrapped: restart the stamps */
                memset(w.stamp, 0, (size_t)nf * sizeof(uint32_t));
                w.gen = 1;
            }
#if HP_SHAP_HAVE_AVX2
            if (vec) {
                vw.nodes = w.nodes;
                vw.frac = w.frac;
                vw.row = w.row;
                vw.gen = w.gen;
                vw.ntouched = 0;
                /* allow_vec 3 (tests): the level-order walk for every tree it can take */
                if (tr->num_nodes <= l->bfs_cap &&
                    (allow_vec == 3 ||
                     (allow_vec == 1 && tr->num_nodes >= HP_SHAP_LEVEL_MIN_NODES))) {
                    if (lw.dense)
                        memset(w.phi, 0, (size_t)nf * sizeof(float));
                    level_tree(&vw, &lw, l->nleaves + tr->first_node, tr->num_nodes);
                    dense_tree = lw.dense;
                } else {
                    vec_node(&vw, 0, 0, 0, 1, 1, -1, 1);
                    vec_flush(&vw);
                }
                w.ntouched = vw.ntouched;
                w.leaf = vw.leaf;
            } else
#endif
                walk_node(&w, 0, 0, path, 1, 1, -1, 1);
            /* The reference adds phi[c] * weight for every column c; an untouched column adds
             * (+0) * weight = +-0, which leaves the sum unchanged (it starts at +0 and a float
             * sum is -0 only if both addends are), so only the touched ones are added. */
            float *out = orow + (size_t)tr->group * ncol;
            if (dense_tree)
                for (uint32_t c = 0; c < nf; c++)
                    out[c] += w.phi[c] * tr->weight;
            for (uint32_t j = 0; j < w.ntouched; j++) {
                uint32_t f = w.touched[j];
                out[f] += w.phi[f] * tr->weight;
            }
            /* the bias slot: (0 + mean[root]) * weight, as the reference's zeroed buffer */
            out[nf] += (0.0f + l->mean[tr->first_node]) * tr->weight;
            float *mg = &margins[r * k + tr->group];
            if (dart)
                *mg += (0.0f + w.leaf) * tr->weight;
            else
                *mg += w.leaf;
        }
        for (uint32_t g = 0; g < k; g++)
            orow[(size_t)g * ncol + nf] += h->base_margin;
    }
}

void hp_shap_explain(const void *layout, const float *rows, size_t nrows, float *contribs,
                     float *margins, void *scratch)
{
    hp_shap_explain_isa(layout, rows, nrows, contribs, margins, scratch, 1);
}
