/* hp_forest.c - tuned model layout and tree walks.  See hp_forest.h for the layout.
 *
 * Why this layout (measured with tests/bench on a 1000-tree, depth-8, 50-feature model, 2-core
 * Xeon; tests/bench/README.md has the figures, including what each step below bought):
 *   - 8-byte heap nodes: a depth-8 tree is 255 x 8 B of nodes + 256 x 4 B of leaves = 3 KiB, and
 *     its first three levels share one 64-byte line (each tree starts on a line).  The 16-byte
 *     source records of the blob would double the bytes every level touches.
 *   - implicit children (2i+1+go_right) remove the child load from the dependency chain: a step
 *     is one node load, one feature load, one compare; and since every heap tree is complete, the
 *     walk runs a fixed D steps with no leaf test, so there is no branch to mispredict at all.
 *   - 8 rows walk one tree together (HPF_BLOCK): the 8 chains are independent, so their cache
 *     misses overlap instead of queueing (unrolled: 25.8 -> 15.4 ns/tree/row);
 *   - 64 rows (HPF_SUPER) share each fetch of a tree: a 1000-tree model does not fit in L2, and
 *     re-reading each tree every 8 rows was bandwidth-bound (14.9 -> 10.3 ns/tree/row);
 *   - rows without NaN (checked once per block) take a compare-only step; models with
 *     categorical nodes take the exact per-node decision of refeval (NaN first, then the set).
 * Padding costs memory only for sparse trees, which is bounded (HPF_HEAP_MAX_PADDING) and falls
 * back to the linked layout beyond it.
 *
 * Exactness: every tree's leaf is added to its group's float32 margin in tree order, starting at
 * base_margin, dart leaves as (0.0f + leaf) * weight, exactly as refeval_predict does per row;
 * blocks and parallel parts only change which rows are walked together, never the order of the
 * additions inside a row.  The transform is refeval_transform itself. */
#include "hp_forest.h"

#include <string.h>

#include "refeval.h"

/* Trees a single row walks at once: 16 misses in flight (measured on the 1000-tree benchmark
 * model, whose 3 MiB exceed L2: 8 trees -> 19 us p50, 16 trees -> 17 us). */
#define HPF_ROW_TREES 16

#define ALIGN64(n) (((n) + 63u) & ~(size_t)63u)

/* ---- build ----------------------------------------------------------------------------------- */

/* Depth of a canonical (breadth-first) tree without memory: level l+1 holds exactly the children
 * of level l's internal nodes, so the levels are consecutive index ranges. */
static uint32_t tree_depth(const model_node_rec *n, uint32_t count)
{
    uint32_t start = 0, end = 1, depth = 0;
    for (;;) {
        uint32_t internal = 0;
        for (uint32_t i = start; i < end && i < count; i++)
            internal += n[i].left != -1;
        if (internal == 0)
            return depth;
        start = end;
        end += 2 * internal;
        depth++;
    }
}

static int use_heap(uint32_t depth, uint32_t count)
{
    return depth <= HPF_HEAP_MAX_DEPTH &&
           ((uint64_t)2 << depth) - 1 <= (uint64_t)HPF_HEAP_MAX_PADDING * count;
}

static size_t tree_bytes(uint32_t depth, uint32_t count, int heap)
{
    if (heap)
        return ALIGN64((((size_t)1 << depth) - 1) * sizeof(hpf_node) +
                       ((size_t)1 << depth) * sizeof(float));
    return ALIGN64((size_t)count * sizeof(hpf_lnode));
}

size_t hp_forest_bytes(const model_view *v)
{
    const model_file_header *h = v->hdr;
    size_t total = ALIGN64(sizeof(hp_forest)) + ALIGN64((size_t)h->num_trees * sizeof(hpf_tree));
    for (uint32_t t = 0; t < h->num_trees; t++) {
        const model_tree_rec *tr = &v->trees[t];
        uint32_t d = tree_depth(v->nodes + tr->first_node, tr->num_nodes);
        total += tree_bytes(d, tr->num_nodes, use_heap(d, tr->num_nodes));
    }
    return total + ALIGN64((size_t)h->num_cat_words * sizeof(uint32_t));
}

/* Fills heap position p (at depth d of a complete tree of depth D) from source node s.  A source
 * leaf above depth D is repeated into both children, so every path is exactly D steps long.
 * Recursion depth <= HPF_HEAP_MAX_DEPTH. */
static void fill_heap(const model_node_rec *src, uint32_t s, uint32_t p, uint32_t d, uint32_t D,
                      hpf_node *nodes, float *leaves)
{
    const model_node_rec *nd = &src[s];
    if (d == D) { /* s is a leaf: no node is deeper than D */
        leaves[p - ((1u << D) - 1)] = nd->u.leaf;
        return;
    }
    if (nd->left == -1) {
        /* Padding: any decision reaches the same value; feature 0 always exists. */
        nodes[p].ff = 0;
        nodes[p].u.t = 0.0f;
        fill_heap(src, s, 2 * p + 1, d + 1, D, nodes, leaves);
        fill_heap(src, s, 2 * p + 2, d + 1, D, nodes, leaves);
        return;
    }
    nodes[p].ff = nd->split;
    nodes[p].u.cat = nd->u.cat; /* threshold bits or set offset, copied as they are */
    fill_heap(src, (uint32_t)nd->left, 2 * p + 1, d + 1, D, nodes, leaves);
    fill_heap(src, (uint32_t)nd->right, 2 * p + 2, d + 1, D, nodes, leaves);
}

const hp_forest *hp_forest_build(const model_view *v, void *dst, size_t len)
{
    const model_file_header *h = v->hdr;
    if (len < hp_forest_bytes(v))
        return NULL;
    uint8_t *base = dst;
    hp_forest *f = dst;
    hpf_tree *trees = (hpf_tree *)(base + ALIGN64(sizeof(hp_forest)));
    uint8_t *p = (uint8_t *)trees + ALIGN64((size_t)h->num_trees * sizeof(hpf_tree));

    memset(f, 0, sizeof *f);
    f->objective = h->objective;
    f->num_feature = h->num_feature;
    f->num_class = h->num_class;
    f->num_trees = h->num_trees;
    f->base_margin = h->base_margin;
    f->flags = (h->flags & MODEL_F_DART) ? HPF_F_DART : 0;
    f->trees = trees;

    for (uint32_t t = 0; t < h->num_trees; t++) {
        const model_tree_rec *tr = &v->trees[t];
        const model_node_rec *src = v->nodes + tr->first_node;
        uint32_t d = tree_depth(src, tr->num_nodes);
        int heap = use_heap(d, tr->num_nodes);
        hpf_tree *dt = &trees[t];
        memset(dt, 0, sizeof *dt);
        dt->depth = d;
        dt->group = tr->group;
        dt->weight = tr->weight;
        for (uint32_t i = 0; i < tr->num_nodes; i++)
            if (src[i].split & MODEL_NODE_CATEGORICAL)
                f->flags |= HPF_F_CATEGORICAL;
        if (heap) {
            hpf_node *nodes = (hpf_node *)p;
            float *leaves = (float *)(p + (((size_t)1 << d) - 1) * sizeof(hpf_node));
            fill_heap(src, 0, 0, 0, d, nodes, leaves);
            dt->heap = nodes;
            dt->leaves = leaves;
            f->heap_trees++;
        } else {
            hpf_lnode *nodes = (hpf_lnode *)p;
            for (uint32_t i = 0; i < tr->num_nodes; i++) {
                if (src[i].left == -1) {
                    nodes[i].ff = HPF_LEAF;
                    nodes[i].u.leaf = src[i].u.leaf;
                    nodes[i].left = 0;
                } else {
                    nodes[i].ff = src[i].split;
                    nodes[i].u.cat = src[i].u.cat;
                    nodes[i].left = (uint32_t)src[i].left;
                }
            }
            dt->linked = nodes;
        }
        p += tree_bytes(d, tr->num_nodes, heap);
    }
    uint32_t *cats = (uint32_t *)p;
    if (h->num_cat_words)
        memcpy(cats, v->cats, (size_t)h->num_cat_words * sizeof(uint32_t));
    f->cats = cats;
    p += ALIGN64((size_t)h->num_cat_words * sizeof(uint32_t));
    f->bytes = (size_t)(p - base);
    return f;
}

uint32_t hp_forest_outputs(const hp_forest *f, int output_margin)
{
    if (output_margin || f->objective == MODEL_OBJ_SOFTPROB)
        return f->num_class;
    return 1;
}

/* ---- walks ----------------------------------------------------------------------------------- */

enum walk_mode {
    M_FAST, /* no NaN in the rows, no categorical node: go left iff x < t */
    M_NAN,  /* no categorical node: NaN takes the default direction, branch-free */
    M_FULL  /* refeval's rule node by node: NaN -> default, categorical -> set, else x < t */
};

/* refeval.c cat_goes_left, kept identical: invalid (< 0, >= 2^24) or beyond the set -> left;
 * otherwise left iff the truncated category is not in the set. */
static inline int cat_goes_left(const uint32_t *set, float x)
{
    if (x < 0.0f || x >= 16777216.0f)
        return 1;
    uint32_t c = (uint32_t)x;
    if (c / 32u >= set[0])
        return 1;
    return !((set[1 + c / 32u] >> (c % 32u)) & 1u);
}

#define HOT static inline __attribute__((always_inline))

HOT uint32_t go_right(uint32_t ff, uint32_t bits, float t, const float *row, const uint32_t *cats,
                      int mode)
{
    float x = row[ff & HPF_FEATURE_MASK];
    if (mode == M_FAST)
        return !(x < t);
    if (mode == M_NAN) /* x < t is false for NaN; NaN then goes left iff default-left */
        return !((x < t) | ((x != x) & (int)(ff >> 31)));
    if (x != x)
        return !(ff >> 31);
    if (ff & HPF_CATEGORICAL)
        return !cat_goes_left(cats + bits, x);
    return !(x < t);
}

HOT float walk_linked(const hpf_lnode *n, const float *row, const uint32_t *cats, int mode)
{
    uint32_t i = 0;
    while (n[i].ff != HPF_LEAF)
        i = n[i].left + go_right(n[i].ff, n[i].u.cat, n[i].u.t, row, cats, mode);
    return n[i].u.leaf;
}

/* One tree for HPF_BLOCK rows r[0..8): leaf values into leaf[0..8). */
HOT void walk_tree8(const hpf_tree *tr, const float *const *r, const uint32_t *cats, float *leaf,
                    int mode)
{
    if (tr->linked == NULL) {
        const hpf_node *n = tr->heap;
        size_t idx[HPF_BLOCK]; /* 64-bit: no zero-extension before each address */
#pragma GCC unroll 8
        for (int j = 0; j < HPF_BLOCK; j++)
            idx[j] = 0;
        for (uint32_t d = 0; d < tr->depth; d++) {
            /* Fully unrolled: the 8 indices live in registers, 8 independent chains. */
#pragma GCC unroll 8
            for (int j = 0; j < HPF_BLOCK; j++) {
                hpf_node nd = n[idx[j]];
                idx[j] = 2 * idx[j] + 1 + go_right(nd.ff, nd.u.cat, nd.u.t, r[j], cats, mode);
            }
        }
        size_t first_leaf = ((size_t)1 << tr->depth) - 1;
#pragma GCC unroll 8
        for (int j = 0; j < HPF_BLOCK; j++)
            leaf[j] = tr->leaves[idx[j] - first_leaf];
    } else {
        for (int j = 0; j < HPF_BLOCK; j++)
            leaf[j] = walk_linked(tr->linked, r[j], cats, mode);
    }
}

static void tree8_fast(const hpf_tree *tr, const float *const *r, const uint32_t *c, float *l)
{
    walk_tree8(tr, r, c, l, M_FAST);
}
static void tree8_nan(const hpf_tree *tr, const float *const *r, const uint32_t *c, float *l)
{
    walk_tree8(tr, r, c, l, M_NAN);
}
static void tree8_full(const hpf_tree *tr, const float *const *r, const uint32_t *c, float *l)
{
    walk_tree8(tr, r, c, l, M_FULL);
}

typedef void (*tree8_fn)(const hpf_tree *, const float *const *, const uint32_t *, float *);

/* All trees for nsub sub-blocks of 8 rows (rows r[8 * s + j]), adding into m[row * k + group].
 * Trees are the outer loop: a tree is fetched once for up to HPF_SUPER rows and stays in L1 while
 * its sub-blocks walk it; per row the additions still happen in tree order. */
static void walk_super(const hp_forest *f, const float *const *r, unsigned nsub,
                       const tree8_fn *walk, float *m)
{
    const uint32_t k = f->num_class;
    const int dart = (f->flags & HPF_F_DART) != 0;
    for (uint32_t t = 0; t < f->num_trees; t++) {
        const hpf_tree *tr = &f->trees[t];
        for (unsigned sb = 0; sb < nsub; sb++) {
            float leaf[HPF_BLOCK];
            walk[sb](tr, r + sb * HPF_BLOCK, f->cats, leaf);
            float *mg = m + (size_t)sb * HPF_BLOCK * k + tr->group;
            if (dart) {
                /* refeval: each dart tree predicts into a zeroed buffer, scaled, then added. */
                for (int j = 0; j < HPF_BLOCK; j++)
                    mg[(size_t)j * k] += (0.0f + leaf[j]) * tr->weight;
            } else {
                for (int j = 0; j < HPF_BLOCK; j++)
                    mg[(size_t)j * k] += leaf[j];
            }
        }
    }
}

/* One row through all trees, HPF_ROW_TREES trees at a time: a single row has no other rows to
 * overlap its cache misses with, so it overlaps trees instead.  Runs of HPF_ROW_TREES heap trees
 * of equal depth (the common case) walk together; their leaves are then added in tree order, so
 * the sums are exactly those of walk_block. */
HOT void walk_row(const hp_forest *f, const float *row, float *m, int mode)
{
    const uint32_t *cats = f->cats;
    const int dart = (f->flags & HPF_F_DART) != 0;
    const hpf_tree *trees = f->trees;
    uint32_t t = 0;
    while (t < f->num_trees) {
        const hpf_tree *tr = &trees[t];
        uint32_t run = 0;
        if (tr->linked == NULL)
            while (run < HPF_ROW_TREES && t + run < f->num_trees && trees[t + run].linked == NULL &&
                   trees[t + run].depth == tr->depth)
                run++;
        if (run == HPF_ROW_TREES) {
            size_t idx[HPF_ROW_TREES];
            float leaf[HPF_ROW_TREES];
#pragma GCC unroll 16
            for (int j = 0; j < HPF_ROW_TREES; j++)
                idx[j] = 0;
            for (uint32_t d = 0; d < tr->depth; d++) {
#pragma GCC unroll 16
                for (int j = 0; j < HPF_ROW_TREES; j++) {
                    hpf_node nd = tr[j].heap[idx[j]];
                    idx[j] = 2 * idx[j] + 1 + go_right(nd.ff, nd.u.cat, nd.u.t, row, cats, mode);
                }
            }
            size_t first_leaf = ((size_t)1 << tr->depth) - 1;
#pragma GCC unroll 16
            for (int j = 0; j < HPF_ROW_TREES; j++)
                leaf[j] = tr[j].leaves[idx[j] - first_leaf];
            for (int j = 0; j < HPF_ROW_TREES; j++) { /* in tree order */
                float *mg = m + tr[j].group;
                if (dart)
                    *mg += (0.0f + leaf[j]) * tr[j].weight;
                else
                    *mg += leaf[j];
            }
            t += HPF_ROW_TREES;
            continue;
        }
        float leaf;
        if (tr->linked == NULL) {
            const hpf_node *n = tr->heap;
            size_t i = 0;
            for (uint32_t d = 0; d < tr->depth; d++) {
                hpf_node nd = n[i];
                i = 2 * i + 1 + go_right(nd.ff, nd.u.cat, nd.u.t, row, cats, mode);
            }
            leaf = tr->leaves[i - ((1u << tr->depth) - 1)];
        } else {
            leaf = walk_linked(tr->linked, row, cats, mode);
        }
        if (dart)
            m[tr->group] += (0.0f + leaf) * tr->weight;
        else
            m[tr->group] += leaf;
        t++;
    }
}

static void walk_row_fast(const hp_forest *f, const float *row, float *m)
{
    walk_row(f, row, m, M_FAST);
}
static void walk_row_nan(const hp_forest *f, const float *row, float *m)
{
    walk_row(f, row, m, M_NAN);
}
static void walk_row_full(const hp_forest *f, const float *row, float *m)
{
    walk_row(f, row, m, M_FULL);
}

static int has_nan(const float *const *r, int lanes, uint32_t nf)
{
    int bad = 0;
    for (int j = 0; j < lanes; j++)
        for (uint32_t i = 0; i < nf; i++)
            bad |= r[j][i] != r[j][i];
    return bad;
}

static void emit(const hp_forest *f, const float *m, int output_margin, float *o)
{
    if (output_margin)
        memcpy(o, m, f->num_class * sizeof(float));
    else
        refeval_transform(f->objective, m, f->num_class, o);
}

/* Scores rows [a, b) serially. */
static void score_range(const hp_forest *f, const float *rows, size_t a, size_t b,
                        int output_margin, float *out)
{
    float m[HPF_SUPER * MODEL_MAX_CLASSES / HPF_BLOCK]; /* 128 KiB */
    const uint32_t k = f->num_class, nf = f->num_feature;
    const uint32_t nout = hp_forest_outputs(f, output_margin);
    const int cat = (f->flags & HPF_F_CATEGORICAL) != 0;
    /* Rows per super-block: HPF_SUPER, fewer when many classes need many margins. */
    size_t super = sizeof m / sizeof m[0] / k / HPF_BLOCK * HPF_BLOCK;
    if (super > HPF_SUPER)
        super = HPF_SUPER;
    size_t i = a;
    while (i < b) {
        size_t rest = b - i;
        if (rest <= 2) {
            /* 1 or 2 rows: each walks alone, 8 trees at a time. */
            for (size_t j = 0; j < rest; j++) {
                const float *row = rows + (i + j) * nf;
                for (uint32_t g = 0; g < k; g++)
                    m[g] = f->base_margin;
                if (cat)
                    walk_row_full(f, row, m);
                else if (has_nan(&row, 1, nf))
                    walk_row_nan(f, row, m);
                else
                    walk_row_fast(f, row, m);
                emit(f, m, output_margin, out + (i + j) * nout);
            }
            break;
        }
        /* 3..7 leftover rows still fill a sub-block (the extra lanes repeat the last row and are
         * discarded): cheaper than 3..7 single-row walks. */
        size_t real = rest < super ? rest : super;
        unsigned nsub = (unsigned)((real + HPF_BLOCK - 1) / HPF_BLOCK);
        const float *r[HPF_SUPER];
        tree8_fn walk[HPF_SUPER / HPF_BLOCK];
        for (size_t j = 0; j < (size_t)nsub * HPF_BLOCK; j++)
            r[j] = rows + (i + (j < real ? j : real - 1)) * nf;
        for (unsigned sb = 0; sb < nsub; sb++)
            walk[sb] = cat ? tree8_full
                           : has_nan(r + sb * HPF_BLOCK, HPF_BLOCK, nf) ? tree8_nan : tree8_fast;
        for (size_t j = 0; j < (size_t)nsub * HPF_BLOCK * k; j++)
            m[j] = f->base_margin;
        walk_super(f, r, nsub, walk, m);
        for (size_t j = 0; j < real; j++)
            emit(f, m + j * k, output_margin, out + (i + j) * nout);
        i += real;
    }
}

typedef struct par_job {
    const hp_forest *f;
    const float *rows;
    size_t nrows, chunk;
    int output_margin;
    float *out;
} par_job;

static void par_part(void *arg, unsigned part)
{
    const par_job *j = arg;
    size_t a = (size_t)part * j->chunk;
    size_t b = a + j->chunk < j->nrows ? a + j->chunk : j->nrows;
    if (a < b)
        score_range(j->f, j->rows, a, b, j->output_margin, j->out);
}

void hp_forest_score(const hp_forest *f, const float *rows, size_t nrows, int output_margin,
                     float *out, hp_pool *pool, uint64_t min_parallel_work)
{
    unsigned helpers = hp_pool_threads(pool);
    if (helpers == 0 || nrows <= HPF_BLOCK ||
        (uint64_t)nrows * (f->num_trees ? f->num_trees : 1) < min_parallel_work) {
        score_range(f, rows, 0, nrows, output_margin, out);
        return;
    }
    unsigned nparts = helpers + 1;
    size_t chunk = (nrows + nparts - 1) / nparts;
    chunk = (chunk + HPF_BLOCK - 1) / HPF_BLOCK * HPF_BLOCK; /* parts start on block boundaries */
    par_job j = {f, rows, nrows, chunk, output_margin, out};
    hp_pool_run(pool, par_part, &j, nparts);
}
