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
 *   - binned forests (hp_forest.h): 4-byte nodes {u16 2f+default_right, u16 threshold rank} and
 *     one u16 bin vector per row make NaN rows as fast as clean ones and halve the bytes; storing
 *     each tree in 4-level blocks (leaves next to their block) cuts a depth-8 path from 6 lines to
 *     3.  Benchmark model: 10.3-12.9 -> 5.6-5.8 ns/tree/row with NaN (7.6-9.3 -> 5.6-5.7
 *     without), single row p50 17-19.6 -> 10.5-10.9 us.  (Plain heap order with 4-byte nodes was
 *     faster in batch, 4.7, but 13.9 us for a single row.)
 *   - single rows on a binned forest: once the model sits in L2 (3 lines per tree), the walk was
 *     bound by instructions, not misses (~13 a step: 32 lanes spilled, a per-lane vector
 *     pointer, a shift and mask for the rank).  A u32 bin vector pre-shifted by 16 (bin_row32:
 *     one whole-word compare), one vector pointer for all lanes and 8 lanes whose state fits
 *     the registers make a step 5-6 instructions: p50 10.7-11.2 -> 7.7-8.0 us, p99 13.0-14.8 ->
 *     9.5-9.8 us (binning the row is ~0.5 of those us).  Software prefetch of the next trees'
 *     root blocks or of a bottom block's leaf line measured no gain.
 * Padding costs memory only for sparse trees, which is bounded (HPF_HEAP_MAX_PADDING) and falls
 * back to the linked layout beyond it.
 *
 * Exactness: every tree's leaf is added to its group's float32 margin in tree order, starting at
 * base_margin, dart leaves as (0.0f + leaf) * weight, exactly as refeval_predict does per row;
 * blocks and parallel parts only change which rows are walked together, never the order of the
 * additions inside a row.  The transform is refeval_transform itself. */
#include "hp_forest.h"
#include "hp_lgbm.h"

#include <string.h>

#include "hp_assert.h"
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

/* Bytes of the plain layout (heap + linked trees, cats). */
static size_t plain_bytes(const model_view *v)
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

/* Binned trees are stored in blocks of 4 levels (15 nodes + 1 pad word = one 64-byte line): block
 * groups in breadth-first order (group g holds 16^g blocks, block c of a block b's children is
 * block 16b + c of the next group), and the last group's blocks (L <= 4 levels) carry their 2^L
 * leaves right after their 2^L - 1 nodes (2^(L+1) words: 128 bytes for L = 4).  A depth-8 path
 * then touches 3 lines (top block, bottom block's nodes, its leaves) instead of 6 in plain heap
 * order, and only 3 of its loads can miss one after the other. */
typedef struct bin_shape {
    uint32_t inner;  /* full 4-level groups before the last one */
    uint32_t last;   /* levels of the last group, 0..4 (0 only for a single leaf) */
    size_t last_off; /* word offset of the last group */
} bin_shape;

static inline bin_shape shape_of(uint32_t depth)
{
    bin_shape s;
    s.inner = depth == 0 ? 0 : (depth - 1) / 4;
    s.last = depth - 4 * s.inner;
    s.last_off = 0;
    for (uint32_t g = 0; g < s.inner; g++)
        s.last_off += (size_t)16 << (4 * g);
    return s;
}

static size_t bin_tree_bytes(uint32_t depth)
{
    bin_shape s = shape_of(depth);
    return ALIGN64((s.last_off + ((size_t)1 << (4 * s.inner)) * ((size_t)2 << s.last)) *
                   sizeof(uint32_t));
}

/* Word offset of the node (d < depth) or leaf (d == depth) at position q of level d. */
static size_t bin_addr(uint32_t depth, uint32_t d, size_t q)
{
    bin_shape s = shape_of(depth);
    uint32_t g = d / 4 < s.inner ? d / 4 : s.inner;
    uint32_t ll = d - 4 * g; /* level inside the block */
    size_t goff = 0;
    for (uint32_t i = 0; i < g; i++)
        goff += (size_t)16 << (4 * i);
    size_t bsize = g < s.inner ? 16 : (size_t)2 << s.last;
    size_t pos = q >> ll;
    return goff + pos * bsize + (((size_t)1 << ll) - 1) + (q & (((size_t)1 << ll) - 1));
}

/* Bytes of the binned layout without its threshold table (the distinct thresholds are only known
 * after sorting), or 0 when the model cannot be binned whatever its thresholds (a categorical
 * split, a linked tree, too many features). */
static size_t binned_bytes(const model_view *v)
{
    const model_file_header *h = v->hdr;
    if (h->num_feature > HPF_BIN_MAX_FEATURES || h->num_cat_words > 0)
        return 0;
    size_t total = ALIGN64(sizeof(hp_forest)) + ALIGN64((size_t)h->num_trees * sizeof(hpf_tree));
    size_t internal = 0;
    for (uint32_t t = 0; t < h->num_trees; t++) {
        const model_tree_rec *tr = &v->trees[t];
        const model_node_rec *src = v->nodes + tr->first_node;
        uint32_t d = tree_depth(src, tr->num_nodes);
        if (!use_heap(d, tr->num_nodes))
            return 0;
        for (uint32_t i = 0; i < tr->num_nodes; i++) {
            if (src[i].split & MODEL_NODE_CATEGORICAL)
                return 0;
            internal += src[i].left != -1;
        }
        total += bin_tree_bytes(d);
    }
    (void)internal;
    return total + ALIGN64(((size_t)h->num_feature + 1) * sizeof(uint32_t));
}

size_t hp_forest_bytes(const model_view *v)
{
    /* LightGBM (format 2): a shell pointing at hp_lgbm's own layout in the same block. */
    if (v->format == MODEL_FORMAT_LGBM)
        return ALIGN64(sizeof(hp_forest)) + hp_lgbm_bytes(v);
    /* The plain layout's size: the binned one is built only when its reservation fits in it (it
     * does for complete-ish trees: 4-byte nodes, leaves included, plus at most one threshold per
     * internal node), so the arena holds exactly as many models as before binning existed. */
    return plain_bytes(v);
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

/* ---- binned build ---------------------------------------------------------------------------- */

/* Sorts a[0..n) increasingly by < (no NaN in a; -0 and +0 are equal).  Heapsort: in place, no
 * allocation (glibc's qsort may malloc), O(n log n) whatever the input. */
static void sift_down(float *a, size_t i, size_t n)
{
    float v = a[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && a[c] < a[c + 1])
            c++;
        if (!(v < a[c]))
            break;
        a[i] = a[c];
        i = c;
    }
    a[i] = v;
}

static void sort_floats(float *a, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(a, i, n);
    for (size_t e = n; e-- > 1;) {
        float t = a[0];
        a[0] = a[e];
        a[e] = t;
        sift_down(a, 0, e);
    }
}

/* Rank of t among T[0..k) (sorted, distinct by <): the i with neither T[i] < t nor t < T[i]. */
static uint32_t rank_of(const float *T, uint32_t k, float t)
{
    uint32_t lo = 0, hi = k;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (T[mid] < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Fills binned heap position p, as fill_heap does; nodes and leaves share one array. */
static void fill_bin(const model_node_rec *src, uint32_t s, uint32_t p, uint32_t d, uint32_t D,
                     const uint32_t *off, const float *thr, uint32_t *a)
{
    const model_node_rec *nd = &src[s];
    size_t at = bin_addr(D, d, p - ((1u << d) - 1));
    if (d == D) {
        memcpy(&a[at], &nd->u.leaf, sizeof(float));
        return;
    }
    if (nd->left == -1) {
        a[at] = 0; /* padding: feature 0, rank 0; both children hold the same values */
        fill_bin(src, s, 2 * p + 1, d + 1, D, off, thr, a);
        fill_bin(src, s, 2 * p + 2, d + 1, D, off, thr, a);
        return;
    }
    uint32_t f = nd->split & MODEL_NODE_FEATURE_MASK;
    uint32_t dr = (nd->split & MODEL_NODE_DEFAULT_LEFT) ? 0u : 1u;
    uint32_t j = rank_of(thr + off[f], off[f + 1] - off[f], nd->u.threshold);
    a[at] = (2 * f + dr) | j << 16;
    fill_bin(src, (uint32_t)nd->left, 2 * p + 1, d + 1, D, off, thr, a);
    fill_bin(src, (uint32_t)nd->right, 2 * p + 2, d + 1, D, off, thr, a);
}

/* Builds the binned layout into dst (len >= binned_bytes(v) > 0).  Returns NULL, having written
 * only inside dst, when a threshold is NaN or a feature has more than HPF_BIN_MAX_THRESHOLDS
 * distinct thresholds. */
static const hp_forest *build_binned(const model_view *v, uint8_t *base, size_t len, size_t fixed)
{
    const model_file_header *h = v->hdr;
    const uint32_t nf = h->num_feature;
    hp_forest *f = (hp_forest *)base;
    hpf_tree *trees = (hpf_tree *)(base + ALIGN64(sizeof(hp_forest)));
    uint8_t *p = (uint8_t *)trees + ALIGN64((size_t)h->num_trees * sizeof(hpf_tree));
    uint32_t *off = (uint32_t *)p;
    float *thr = (float *)(p + ALIGN64(((size_t)nf + 1) * sizeof(uint32_t)));

    /* Counting sort by feature into a scratch run at the very end of dst (the tree blocks,
     * written last, may overwrite it): off[f + 1] = count, prefix sums, scatter with off[f] as
     * the cursor (afterwards off[f] is the old off[f + 1]: shift back). */
    memset(off, 0, ((size_t)nf + 1) * sizeof(uint32_t));
    size_t internal = 0;
    for (uint64_t i = 0; i < h->num_nodes; i++) {
        const model_node_rec *nd = &v->nodes[i];
        if (nd->left == -1)
            continue;
        if (nd->u.threshold != nd->u.threshold)
            return NULL; /* x < NaN is false for every x: no rank expresses it */
        off[(nd->split & MODEL_NODE_FEATURE_MASK) + 1]++;
        internal++;
    }
    if (internal * sizeof(float) > len - (size_t)((uint8_t *)thr - base))
        return NULL;
    float *tmp = (float *)(base + len) - internal;
    for (uint32_t k = 0; k < nf; k++)
        off[k + 1] += off[k];
    for (uint64_t i = 0; i < h->num_nodes; i++) {
        const model_node_rec *nd = &v->nodes[i];
        if (nd->left != -1)
            tmp[off[nd->split & MODEL_NODE_FEATURE_MASK]++] = nd->u.threshold;
    }
    for (uint32_t k = nf; k > 0; k--)
        off[k] = off[k - 1];
    off[0] = 0;
    /* Sort each feature's run, keep the distinct values (by <, so -0 and +0 are one), compact. */
    uint32_t w = 0, prev_end = 0;
    for (uint32_t k = 0; k < nf; k++) {
        uint32_t a = prev_end, b = off[k + 1];
        prev_end = b;
        sort_floats(tmp + a, b - a);
        off[k] = w;
        for (uint32_t i = a; i < b; i++)
            if (w == off[k] || tmp[w - 1] < tmp[i])
                tmp[w++] = tmp[i];
        if (w - off[k] > HPF_BIN_MAX_THRESHOLDS)
            return NULL;
    }
    off[nf] = w;
    if (fixed + ALIGN64((size_t)w * sizeof(float)) > len)
        return NULL;                              /* the plain layout is smaller */
    memmove(thr, tmp, (size_t)w * sizeof(float)); /* thr < tmp: a forward copy is safe */

    memset(f, 0, sizeof *f);
    f->objective = h->objective;
    f->num_feature = nf;
    f->num_class = h->num_class;
    f->num_trees = h->num_trees;
    f->base_margin = h->base_margin;
    f->flags = HPF_F_BINNED | ((h->flags & MODEL_F_DART) ? HPF_F_DART : 0);
    f->heap_trees = h->num_trees;
    f->trees = trees;
    f->thr_off = off;
    f->thr = thr;
    p = (uint8_t *)thr + ALIGN64((size_t)w * sizeof(float));
    for (uint32_t t = 0; t < h->num_trees; t++) {
        const model_tree_rec *tr = &v->trees[t];
        const model_node_rec *src = v->nodes + tr->first_node;
        uint32_t d = tree_depth(src, tr->num_nodes);
        hpf_tree *dt = &trees[t];
        memset(dt, 0, sizeof *dt);
        dt->depth = d;
        dt->group = tr->group;
        dt->weight = tr->weight;
        dt->bin = (const uint32_t *)p;
        memset(p, 0, bin_tree_bytes(d)); /* pad words */
        fill_bin(src, 0, 0, 0, d, off, thr, (uint32_t *)p);
        p += bin_tree_bytes(d);
    }
    f->cats = NULL;
    f->bytes = (size_t)(p - base);
    return f;
}

const hp_forest *hp_forest_build(const model_view *v, void *dst, size_t len)
{
    const model_file_header *h = v->hdr;
    if (len < hp_forest_bytes(v))
        return NULL;
    if (v->format == MODEL_FORMAT_LGBM) {
        hp_forest *lf = dst;
        memset(lf, 0, sizeof *lf);
        lf->objective = h->objective;
        lf->num_feature = h->num_feature;
        lf->num_class = h->num_class;
        lf->num_trees = h->num_trees;
        lf->flags = HPF_F_LGBM;
        lf->lgbm = hp_lgbm_build(v, (uint8_t *)dst + ALIGN64(sizeof(hp_forest)),
                                 len - ALIGN64(sizeof(hp_forest)));
        lf->bytes = hp_forest_bytes(v);
        return lf->lgbm ? lf : NULL;
    }
    size_t bb = binned_bytes(v);
    if (bb > 0 && bb <= len) {
        const hp_forest *bf = build_binned(v, dst, len, bb);
        if (bf)
            return bf;
    }
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
    if (f->lgbm)
        return hp_lgbm_outputs(f->lgbm, output_margin);
    return model_outputs(f->objective, f->num_class, output_margin);
}

/* ---- walks ----------------------------------------------------------------------------------- */

enum walk_mode {
    M_FAST, /* no NaN in the rows, no categorical node: go left iff x < t */
    M_NAN,  /* no categorical node: NaN takes the default direction, branch-free */
    M_FULL  /* refeval's rule node by node: NaN -> default, categorical -> set, else x < t */
};

/* model.h model_cat_goes_left (refeval.c's rule), kept identical: invalid (< 0, >= 2^24) or beyond
 * the set -> left; otherwise left iff the truncated category is not in the set.  A list set
 * (MODEL_F_CAT_LIST: set[0] = tag | n, then n sorted categories) is searched by halving: base moves
 * to the last element <= c, so the loop runs ceil(log2 n) times with no data-dependent exit. */
static inline int cat_goes_left(const uint32_t *set, float x)
{
    if (x < 0.0f || x >= 16777216.0f)
        return 1;
    uint32_t c = (uint32_t)x;
    if (set[0] & MODEL_CAT_LIST_TAG) {
        const uint32_t *base = set + 1;
        uint32_t n = set[0] & ~MODEL_CAT_LIST_TAG; /* >= 1 (model_validate) */
        while (n > 1) {
            uint32_t half = n / 2;
            base = base[half] <= c ? base + half : base;
            n -= half;
        }
        return *base != c;
    }
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

/* ---- binned walks ------------------------------------------------------------------------------
 */

/* Trees a single row walks at once on a binned forest: 8 lanes' block pointers and indices almost
 * fit the registers.  On the benchmark model 12 measured the same and 32 (the previous value,
 * every lane's state on the stack) about 1.3 us slower per row. */
#define HPF_BIN_ROW_TREES 8
#define HPF_BIN_BUF (32768u) /* u16 entries of the bin-vector stack buffer: 64 KiB */

/* b = #{thresholds of f <= x} for x = row[f] (0 for NaN: every compare is false).  The search is
 * branch-free: its trip count depends only on the table's size. */
static inline uint32_t bin_of(const hp_forest *f, uint32_t k, float x)
{
    const float *T = f->thr + f->thr_off[k];
    uint32_t n = f->thr_off[k + 1] - f->thr_off[k];
    if (n == 0)
        return 0;
    uint32_t lo = 0;
    while (n > 1) {
        uint32_t half = n / 2;
        lo = T[lo + half] <= x ? lo + half : lo;
        n -= half;
    }
    return lo + (T[lo] <= x);
}

/* The bin vector of one row: rb[2f] = NaN ? 0 : b, rb[2f + 1] = NaN ? 65535 : b, b = bin_of.  For
 * a number x and a threshold of rank j, x < T_j <=> b <= j (the table is sorted and distinct by
 * <, and <= is the negation of the reversed <), so "go right iff rb[idx] > j" is refeval's
 * !(x < t), and for NaN its default direction (0 <= j: left; 65535 > j: right). */
static void bin_row(const hp_forest *f, const float *row, uint16_t *rb)
{
    for (uint32_t k = 0; k < f->num_feature; k++) {
        float x = row[k];
        uint32_t b = bin_of(f, k, x);
        int nan = x != x;
        rb[2 * k] = nan ? 0 : (uint16_t)b;
        rb[2 * k + 1] = nan ? 65535 : (uint16_t)b;
    }
}

/* bin_row for the single-row walk, in words pre-shifted by 16: rb[i] = (bin_row's rb[i]) << 16.
 * A node word w = idx | j << 16 (idx < 2 * HPF_BIN_MAX_FEATURES <= 65536) goes right iff
 * rb[idx] > w: for rb[idx] = b << 16 that is b > j, or b == j and 0 > idx, i.e. exactly b > j;
 * NaN gets 0 (never greater: left) or 65535 << 16 (greater than any j <= 65534: right).  One
 * compare of whole words, no shift or mask to take j out of w. */
static void bin_row32(const hp_forest *f, const float *row, uint32_t *rb)
{
    for (uint32_t k = 0; k < f->num_feature; k++) {
        float x = row[k];
        uint32_t b = bin_of(f, k, x) << 16;
        int nan = x != x;
        rb[2 * k] = nan ? 0 : b;
        rb[2 * k + 1] = nan ? 0xFFFF0000u : b;
    }
}

/* N lanes through binned trees of depth D: lane j walks tree g[j] with bin vector rb[j].  All
 * loops have trip counts known per tree, so the lanes are N independent chains with no
 * data-dependent branch. */
HOT void walk_bin_lanes(const uint32_t *const *g, const uint16_t *const *rb, int N, uint32_t D,
                        float *leaf)
{
    bin_shape s = shape_of(D);
    const uint32_t *b[32];
    size_t pos[32], l[32];
    size_t goff = 0;
#pragma GCC unroll 32
    for (int j = 0; j < N; j++)
        pos[j] = 0;
    for (uint32_t gi = 0; gi < s.inner; gi++) {
#pragma GCC unroll 32
        for (int j = 0; j < N; j++) {
            b[j] = g[j] + goff + pos[j] * 16;
            l[j] = 0;
        }
#pragma GCC unroll 4
        for (int d = 0; d < 4; d++) {
#pragma GCC unroll 32
            for (int j = 0; j < N; j++) {
                uint32_t w = b[j][l[j]];
                l[j] = 2 * l[j] + 1 + (rb[j][w & 0xFFFFu] > (w >> 16));
            }
        }
#pragma GCC unroll 32
        for (int j = 0; j < N; j++)
            pos[j] = pos[j] * 16 + (l[j] - 15);
        goff += (size_t)16 << (4 * gi);
    }
    size_t bs = (size_t)2 << s.last;
#pragma GCC unroll 32
    for (int j = 0; j < N; j++) {
        b[j] = g[j] + goff + pos[j] * bs;
        l[j] = 0;
    }
    for (uint32_t d = 0; d < s.last; d++) {
#pragma GCC unroll 32
        for (int j = 0; j < N; j++) {
            uint32_t w = b[j][l[j]];
            l[j] = 2 * l[j] + 1 + (rb[j][w & 0xFFFFu] > (w >> 16));
        }
    }
#pragma GCC unroll 32
    for (int j = 0; j < N; j++)
        memcpy(&leaf[j], &b[j][l[j]], sizeof(float));
}

/* All trees for nsub sub-blocks of 8 rows whose bin vectors are rb[row], as walk_super. */
static void walk_super_bin(const hp_forest *f, const uint16_t *const *rb, unsigned nsub, float *m)
{
    const uint32_t k = f->num_class;
    const int dart = (f->flags & HPF_F_DART) != 0;
    for (uint32_t t = 0; t < f->num_trees; t++) {
        const hpf_tree *tr = &f->trees[t];
        const uint32_t *g[HPF_BLOCK];
        for (int j = 0; j < HPF_BLOCK; j++)
            g[j] = tr->bin;
        for (unsigned sb = 0; sb < nsub; sb++) {
            float leaf[HPF_BLOCK];
            walk_bin_lanes(g, rb + sb * HPF_BLOCK, HPF_BLOCK, tr->depth, leaf);
            float *mg = m + (size_t)sb * HPF_BLOCK * k + tr->group;
            if (dart) {
                for (int j = 0; j < HPF_BLOCK; j++)
                    mg[(size_t)j * k] += (0.0f + leaf[j]) * tr->weight;
            } else {
                for (int j = 0; j < HPF_BLOCK; j++)
                    mg[(size_t)j * k] += leaf[j];
            }
        }
    }
}

/* N trees g[0..N) of depth D for one row (pre-shifted bin vector rb, bin_row32): leaf values
 * into leaf[0..N).  The same walk as walk_bin_lanes, but with one bin vector in one register and
 * the whole-word compare, a step is 5-6 instructions (load, zero-extend, compare with memory,
 * lea, adc) instead of ~13, and 8 lanes' block pointers and indices nearly fit the registers (32
 * lanes spilled every one of them): a single row's walk was bound by instructions, not misses,
 * once the model sits in L2. */
HOT void walk_row_lanes(const uint32_t *const *g, const uint32_t *rb, int N, uint32_t D,
                        float *leaf)
{
    bin_shape s = shape_of(D);
    const uint32_t *b[HPF_BIN_ROW_TREES];
    size_t l[HPF_BIN_ROW_TREES];
    size_t goff = 0;
#pragma GCC unroll 32
    for (int j = 0; j < N; j++) {
        b[j] = g[j];
        l[j] = 0;
    }
    for (uint32_t gi = 0; gi < s.inner; gi++) {
#pragma GCC unroll 4
        for (int d = 0; d < 4; d++) {
#pragma GCC unroll 32
            for (int j = 0; j < N; j++) {
                uint32_t w = b[j][l[j]];
                l[j] = 2 * l[j] + 1 + (rb[w & 0xFFFFu] > w);
            }
        }
        size_t bs = gi + 1 < s.inner ? 16 : (size_t)2 << s.last;
        size_t next = goff + ((size_t)16 << (4 * gi));
#pragma GCC unroll 32
        for (int j = 0; j < N; j++) {
            b[j] = g[j] + next + ((size_t)(b[j] - g[j]) - goff + l[j] - 15) * bs;
            l[j] = 0;
        }
        goff = next;
    }
    for (uint32_t d = 0; d < s.last; d++) {
#pragma GCC unroll 32
        for (int j = 0; j < N; j++) {
            uint32_t w = b[j][l[j]];
            l[j] = 2 * l[j] + 1 + (rb[w & 0xFFFFu] > w);
        }
    }
#pragma GCC unroll 32
    for (int j = 0; j < N; j++)
        memcpy(&leaf[j], &b[j][l[j]], sizeof(float));
}

/* One row (bin vector rb) through all trees, HPF_BIN_ROW_TREES at a time, as walk_row. */
static void walk_row_bin(const hp_forest *f, const uint32_t *rb, float *m)
{
    const int dart = (f->flags & HPF_F_DART) != 0;
    const hpf_tree *trees = f->trees;
    uint32_t t = 0;
    while (t < f->num_trees) {
        const hpf_tree *tr = &trees[t];
        uint32_t run = 0;
        while (run < HPF_BIN_ROW_TREES && t + run < f->num_trees &&
               trees[t + run].depth == tr->depth)
            run++;
        float leaf[HPF_BIN_ROW_TREES];
        const uint32_t *g[HPF_BIN_ROW_TREES];
        if (run == HPF_BIN_ROW_TREES) {
            for (int j = 0; j < HPF_BIN_ROW_TREES; j++)
                g[j] = tr[j].bin;
            walk_row_lanes(g, rb, HPF_BIN_ROW_TREES, tr->depth, leaf);
        } else {
            run = 1;
            g[0] = tr->bin;
            walk_row_lanes(g, rb, 1, tr->depth, leaf);
        }
        for (uint32_t j = 0; j < run; j++) { /* in tree order */
            if (dart)
                m[tr[j].group] += (0.0f + leaf[j]) * tr[j].weight;
            else
                m[tr[j].group] += leaf[j];
        }
        t += run;
    }
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

/* score_range for a binned forest: bin each super-block's rows once into a stack buffer, then
 * walk; m has room for super rows of margins. */
static void score_range_bin(const hp_forest *f, const float *rows, size_t a, size_t b,
                            int output_margin, float *out, float *m, size_t super)
{
    union {
        uint16_t h[HPF_BIN_BUF];     /* per-row u16 vectors (blocks of rows) */
        uint32_t w[HPF_BIN_BUF / 2]; /* one u32 vector (single rows): 2 * nf <= 4096 words */
    } bins;
    const uint32_t k = f->num_class, nf = f->num_feature;
    const uint32_t nout = hp_forest_outputs(f, output_margin);
    const size_t vec = 2 * (size_t)nf; /* nf <= HPF_BIN_MAX_FEATURES: 8 vectors always fit */
    size_t fit = HPF_BIN_BUF / vec / HPF_BLOCK * HPF_BLOCK;
    if (super > fit)
        super = fit;
    size_t i = a;
    while (i < b) {
        size_t rest = b - i;
        if (rest <= 2) {
            for (size_t j = 0; j < rest; j++) {
                for (uint32_t g = 0; g < k; g++)
                    m[g] = f->base_margin;
                bin_row32(f, rows + (i + j) * nf, bins.w);
                walk_row_bin(f, bins.w, m);
                emit(f, m, output_margin, out + (i + j) * nout);
            }
            break;
        }
        size_t real = rest < super ? rest : super;
        unsigned nsub = (unsigned)((real + HPF_BLOCK - 1) / HPF_BLOCK);
        const uint16_t *rb[HPF_SUPER];
        for (size_t j = 0; j < real; j++)
            bin_row(f, rows + (i + j) * nf, bins.h + j * vec);
        for (size_t j = 0; j < (size_t)nsub * HPF_BLOCK; j++)
            rb[j] = bins.h + (j < real ? j : real - 1) * vec;
        for (size_t j = 0; j < (size_t)nsub * HPF_BLOCK * k; j++)
            m[j] = f->base_margin;
        walk_super_bin(f, rb, nsub, m);
        for (size_t j = 0; j < real; j++)
            emit(f, m + j * k, output_margin, out + (i + j) * nout);
        i += real;
    }
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
    if (f->flags & HPF_F_BINNED) {
        score_range_bin(f, rows, a, b, output_margin, out, m, super);
        return;
    }
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
            walk[sb] = cat                                          ? tree8_full
                       : has_nan(r + sb * HPF_BLOCK, HPF_BLOCK, nf) ? tree8_nan
                                                                    : tree8_fast;
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
    HP_ASSERT(f != NULL && (rows != NULL || nrows == 0) && (out != NULL || nrows == 0));
    if (f->lgbm) /* LightGBM forests take f64 rows: hp_lgbm_score (hp_k_score refuses f32) */
        return;
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

/* ---- registry entry (hp_scorer.h) ------------------------------------------------------------ */

static size_t sc_bytes(const model_view *v)
{
    return hp_forest_bytes(v);
}

static const void *sc_build(const model_view *v, void *dst, size_t len)
{
    return hp_forest_build(v, dst, len);
}

static void sc_score(const void *layout, const float *rows, size_t nrows, int output_margin,
                     float *out, hp_pool *pool, uint64_t min_parallel_work)
{
    hp_forest_score(layout, rows, nrows, output_margin, out, pool, min_parallel_work);
}

/* LightGBM models: the forest is a shell around hp_lgbm's layout (hp_forest_build). */
static void sc_score64(const void *layout, const double *rows, size_t nrows, int output_margin,
                       double *out, hp_pool *pool, uint64_t min_parallel_work)
{
    const hp_forest *f = layout;
    HP_ASSERT(f != NULL && f->lgbm != NULL);
    hp_lgbm_score_pool(f->lgbm, rows, nrows, output_margin, out, pool, min_parallel_work);
}

const hp_scorer hp_scorer_forest = {
    .name = "forest",
    .bytes = sc_bytes,
    .build = sc_build,
    .score = sc_score,
    .score64 = sc_score64,
    .release = NULL, /* the layout lives entirely in the arena's memory */
};
