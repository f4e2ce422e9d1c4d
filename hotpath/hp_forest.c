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
 *   - binned forests (hp_forest.h): 4-byte nodes {u16 slot, u16 threshold rank} and one bin
 *     vector per row make NaN rows as fast as clean ones and halve the bytes (history: 4-level
 *     blocks with u16 bins, benchmark model 5.6-5.8 ns/tree/row, single row p50 7.7-8.0 us).
 *   - issue 11 (models as current xgboost trains them): that layout required heap-shaped trees,
 *     and xgb_f (xgboost 3.5 hist, 1000 trees of depth 8, 322 of them sparse) fell back to plain
 *     at ~15 ns/tree/row.  Now every tree is binned: padded to a complete heap when cheap, else
 *     linked (u64 {word, left}).  Measured on xgb_f, 2-core AMD EPYC (Zen 5) shared with ~7 other
 *     jobs (load 7-10), best of 300 batches of 64 rows, old and new builds alternated:
 *       plain (before)                                       14.6-15.5 ns/tree/row, 1 row 23.2 us
 *       blocks binned, sparse trees padded (first step)       8.5
 *       1-based heap order: n = 2n + (word < bin), interleaved u32 bins, cmp + adc (4
 *       instructions a step, one pointer for all lanes)     5.8 -> 4.7 (adc)
 *       16 lanes instead of 8 (a step's two dependent loads take ~11 cycles: 8 chains left
 *       the core half idle)                                  3.5
 *       root loaded once for all lanes, depth a constant     3.2-3.4, 1 row min 9.4 us
 *       every heap tree padded to the forest's depth (single rows walk all runs of 16 trees
 *       together) and the one-group margin in a register   3.3-3.4, 1 row min 7.3-7.6 us
 *     Tried and dropped: AVX-512 (16 lanes, vpgatherdd for node and bin: 10.3 ns/tree/row; a
 *     16-element gather costs 4.3 ns here, 16 scalar loads 3); 4-level blocks as THE layout,
 *     for batches and single rows alike (3 lines a path instead of 6): 10.0 us against 9.4 for a
 *     single row on this Zen 5 (see "row blocks" below for where they pay as a second copy); 32
 *     trees a single row (spills): 13.6 us; 128 or 256 rows a super-block: no better than 64.
 *   - AVX2 top levels (issue 11, batch walk): levels 0..2 are the same 7 nodes for all 16 lanes and
 *     a node's 16 lanes' bins are one line, so all 7 are compared for all lanes with 8-lane
 *     vpmaxud/vpcmpeqd and each lane's bit picked by blends (walk16_top; ~90 instructions where
 *     the scalar steps took ~190), then the scalar walk; chosen at build (HPF_F_AVX2), scalar
 *     without AVX2 or after hp_forest_set_simd(0).  Measured on another 2-core AMD EPYC (Zen 3,
 *     AVX2 only, 2.45 GHz) under a fuzz campaign and other jobs (load 4-9), 1 thread, best
 *     CPU-time batch of the 2000 rows per 1.5 s run, builds alternated (min / median of 4-6 runs):
 *       xgb_f                     scalar 4.88-5.21 / 4.93-5.38   AVX2 top 4.47-4.62 / 4.55-4.71
 *       xgb_f, 10% NaN injected   scalar 5.04 / 5.10             AVX2 top 4.79 / 4.93
 *       bench model (10% NaN)     scalar 5.05 / 5.09             AVX2 top 4.56 / 4.58
 *     Dropped with numbers (same runs, same noise: +-0.1 is nothing): 2 vector levels 5.27 (3
 *     levels 5.01 beside it); 4 levels 4.96 and 4.84 (3 levels beside them 5.01 and 4.60: level
 *     3's 8 nodes cost as much as its scalar step); the scalar levels in 2 groups of 8 lanes (no
 *     spills) 5.11, in 4 groups 5.78 (16 independent chains matter more than the ~12 spill moves
 *     a level); the node's bin offset loaded (movzwl from memory) rather than computed 4.95 (3
 *     loads a step: the load ports bind); the levels fully unrolled 4.64 vs 4.60; prefetching the
 *     next tree (1-4 KiB) 4.42-4.63 vs 4.51-4.68 (the hardware prefetcher already streams the
 *     trees); 32, 48 or 128 rows a super-block 5.28, 4.69, 4.63 vs 4.68; adding leaves into the
 *     margins inside the walk (no 16 scalar stores read back as 2 vectors) 4.65 vs 4.70.  Where
 *     the time goes (depth capped for timing, outputs then wrong): ~1.2 ns/tree/row at depth 1
 *     (call, root, leaf, margin, binning 0.25-0.35), then ~0.5-0.7 per level: the walk is bound
 *     by instruction throughput and the ~11-cycle step latency together; issue 11's 3.4 is not
 *     reached on this shared machine.
 *   - row blocks (issue 11, single rows): a row touches each tree once, so a forest larger than L2
 *     makes every line of its path a miss (this Zen 3 VM: ~70 ns a random load in 4 MiB; single
 *     row p50 14-22 us on xgb_f, walk alone 12-18 with 16 or 8 or 32 trees at once alike, and
 *     prefetching the next run's first lines changed nothing).  Each padded heap of depth >= 6 gets
 *     a second copy in 4-level blocks (blk_tree_bytes): 3 lines a depth-8 path instead of 6, the
 *     leaf line prefetched.  Same VM, old and new builds alternated, 3 rounds each (noisy: the
 *     host's other tenants share L3): xgb_f single row CPU p50 14.1-22.0 -> 9.2-16.6 us, p99
 *     26.9-35.0 -> 20.1-24.3; the repo's model p50 14.7-21.8 -> 9.8-16.3.  Costs the copy's memory
 *     (xgb_f 2.34 -> 4.46 MB; dropped when it would pass the 4x cap).  Tried with it and dropped:
 *     the 50 features' bin searches side by side (8 at a time) for one row, 1.0-1.5 us either way.
 * Padding costs memory only for sparse trees, which is bounded (HPF_HEAP_MAX_PADDING) and falls
 * back to the linked layout beyond it.
 *
 * Exactness: every tree's leaf is added to its group's float32 margin in tree order, starting at
 * base_margin, dart leaves as (0.0f + leaf) * weight, exactly as refeval_predict does per row;
 * blocks and parallel parts only change which rows are walked together, never the order of the
 * additions inside a row.  The transform is refeval_transform itself. */
#include "hp_forest.h"
#include "hp_lgbm.h"

#include <stdio.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

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

/* A binned tree of depth D is a complete heap of 2^(D+1) - 1 words numbered from 1 (node n at word
 * n - 1, children 2n and 2n + 1), its 2^D leaves (float bits) right after its 2^D - 1 nodes, so
 * one index walks nodes and leaves alike: n = 2n + go_right, D times, then leaf = word n - 1. Every
 * tree of depth D has the same size (bin_tree_words), so a run of trees of equal depth is one base
 * pointer plus constant offsets. */
static size_t bin_tree_bytes(uint32_t depth)
{
    return ALIGN64((((size_t)2 << depth) - 1) * sizeof(uint32_t));
}

#define bin_tree_words(depth) (bin_tree_bytes(depth) / sizeof(uint32_t))

/* Row blocks: a second copy of every padded heap tree of depth >= HPF_BLK_MIN_DEPTH, for single
 * rows.  A row walks each tree once, so on a forest larger than L2 every line its path touches is
 * a miss; in the heap, levels 0-3 share the tree's first line but levels 4, 5, 6, 7 and the leaf
 * are each on another line.  The copy cuts the levels into groups of 4 (the last group may have
 * fewer, L levels): group g holds 16^g blocks of 2^L words (2^L - 1 nodes in heap order and a
 * pad word), so a block never straddles a line and a group's steps stay on one line; then the
 * 2^D leaves in heap order, a block's leaves on one line whose address is known (and prefetched)
 * as soon as the last block is.  A depth-8 path touches 3 lines instead of 6.  Measured on xgb_f
 * (1000 trees of depth 8), 2-core AMD EPYC (Zen 3), one row at a time, walk only: p50 12.2 ->
 * 6.8 us.  Batches keep the heap: their 64 rows share each tree fetch, and the heap's step is 2
 * instructions.  The copy's size never depends on the tree's sparsity: it pads like the heap. */
/* (A depth-5 heap path touches 2.94 lines on average: nothing to gain there.) */
#define HPF_BLK_MIN_DEPTH 6

static uint32_t blk_groups(uint32_t depth)
{
    return (depth + 3) / 4;
}

static uint32_t blk_levels(uint32_t depth, uint32_t g)
{
    return depth - 4 * g < 4 ? depth - 4 * g : 4;
}

/* Words before group g (g == blk_groups(depth): before the leaves). */
static size_t blk_off(uint32_t depth, uint32_t g)
{
    size_t off = 0;
    for (uint32_t h = 0; h < g; h++)
        off += ((size_t)1 << (4 * h)) << blk_levels(depth, h);
    return off;
}

static size_t blk_tree_bytes(uint32_t depth)
{
    return ALIGN64((blk_off(depth, blk_groups(depth)) + ((size_t)1 << depth)) * sizeof(uint32_t));
}

/* A tree too deep or too sparse to pad (padding would cost more than 4 KiB and over 8x its nodes,
 * e.g. LightGBM's or xgboost lossguide's leaf-wise trees) is binned "linked": its nodes in the
 * blob's canonical order as u64 {node word, left child} (right = left + 1), a leaf being
 * {0xFFFF0000, itself} (0xFFFF0000 is never below a bin: the walk stays put), then one float per
 * node (the leaf values).  A walk is then exactly depth steps of i = left + (word < bin), with no
 * leaf test, like the heap's. */
static int bin_heap_ok(uint32_t depth, uint32_t count)
{
    return depth <= HPF_HEAP_MAX_DEPTH &&
           (depth <= 9 || ((uint64_t)2 << depth) - 1 <= (uint64_t)HPF_HEAP_MAX_PADDING * count);
}

/* Heap trees up to depth HPF_BIN_PAD_DEPTH are all padded to the deepest of them (xgboost's
 * depth-wise trees mostly reach max_depth; the few shallower ones cost at most 4 KiB each): one
 * depth for the whole forest lets a single row walk every run of 16 trees together (a tree of
 * another depth in the run made the run fall back to one tree at a time). */
#define HPF_BIN_PAD_DEPTH 9

static uint32_t bin_pad_depth(const model_view *v)
{
    uint32_t pad = 0;
    for (uint32_t t = 0; t < v->hdr->num_trees; t++) {
        const model_tree_rec *tr = &v->trees[t];
        uint32_t d = tree_depth(v->nodes + tr->first_node, tr->num_nodes);
        if (d <= HPF_BIN_PAD_DEPTH && d > pad)
            pad = d;
    }
    return pad;
}

/* The depth tree t is laid out (and walked) with: pad (bin_pad_depth) for shallow trees. */
static uint32_t bin_depth(const model_view *v, uint32_t t, uint32_t pad)
{
    const model_tree_rec *tr = &v->trees[t];
    uint32_t d = tree_depth(v->nodes + tr->first_node, tr->num_nodes);
    return d <= pad ? pad : d;
}

static size_t bin_tree_size(uint32_t depth, uint32_t count)
{
    return bin_heap_ok(depth, count) ? bin_tree_bytes(depth)
                                     : ALIGN64((size_t)count * (sizeof(uint64_t) + sizeof(float)));
}

/* Why a forest did or did not get the binned layout (hp_forest.why, hp_forest_describe). */
static const char *const why_text[] = {
    [HPF_WHY_BINNED] = "binned",
    [HPF_WHY_CATEGORICAL] = "a categorical split",
    [HPF_WHY_FEATURES] = "more than 2048 features",
    [HPF_WHY_DEPTH] = "a tree too deep",
    [HPF_WHY_GROWTH] = "padding every tree to its depth would take over 4x the plain layout",
    [HPF_WHY_NAN_THRESHOLD] = "a NaN threshold",
    [HPF_WHY_THRESHOLDS] = "a feature with over 65535 distinct thresholds",
};

/* Bytes of the binned layout, its threshold table counted at its bound (one threshold per internal
 * node: the distinct ones are only known after sorting), or 0 with *why set when the model cannot
 * be binned whatever its thresholds (a categorical split, a tree deeper than
 * HPF_HEAP_MAX_DEPTH, too many features).  Any tree shape up to that depth is binned: a sparse tree
 * (xgboost hist/lossguide, LightGBM-like leaf-wise growth) is padded to a complete tree of its own
 * depth, which costs memory (bounded by the caller, HPF_BIN_MAX_GROWTH).  *blk: the bytes of the
 * row-block copies (every padded heap of depth >= HPF_BLK_MIN_DEPTH), not in the result; 0 when
 * the result is 0. */
static size_t binned_bytes(const model_view *v, uint32_t pad, size_t *blk, uint32_t *why)
{
    *blk = 0;
    const model_file_header *h = v->hdr;
    if (h->num_feature > HPF_BIN_MAX_FEATURES) {
        *why = HPF_WHY_FEATURES;
        return 0;
    }
    if (h->num_cat_words > 0) {
        *why = HPF_WHY_CATEGORICAL;
        return 0;
    }
    size_t total = ALIGN64(sizeof(hp_forest)) + ALIGN64((size_t)h->num_trees * sizeof(hpf_tree));
    size_t internal = 0;
    for (uint32_t t = 0; t < h->num_trees; t++) {
        const model_tree_rec *tr = &v->trees[t];
        const model_node_rec *src = v->nodes + tr->first_node;
        uint32_t d = bin_depth(v, t, pad);
        for (uint32_t i = 0; i < tr->num_nodes; i++) {
            if (src[i].split & MODEL_NODE_CATEGORICAL) {
                *why = HPF_WHY_CATEGORICAL;
                *blk = 0;
                return 0;
            }
            internal += src[i].left != -1;
        }
        total += bin_tree_size(d, tr->num_nodes);
        if (d >= HPF_BLK_MIN_DEPTH && bin_heap_ok(d, tr->num_nodes))
            *blk += blk_tree_bytes(d);
    }
    *why = HPF_WHY_BINNED;
    return total + ALIGN64(((size_t)h->num_feature + 1) * sizeof(uint32_t)) +
           ALIGN64(internal * sizeof(float));
}

/* binned_bytes when the binned layout is worth its memory (<= HPF_BIN_MAX_GROWTH x the plain
 * layout), else 0 with *why set; *blk: the row blocks' share of it (0 when they would pass the
 * cap: the forest is then binned without them). */
static size_t binned_bytes_capped(const model_view *v, size_t plain, uint32_t *pad, size_t *blk,
                                  uint32_t *why)
{
    /* Padding every shallow heap to the forest's depth first; if that outgrows the cap (a few
     * deep trees among many stumps), each tree at its own depth. */
    *pad = bin_pad_depth(v);
    size_t bb = binned_bytes(v, *pad, blk, why);
    if (bb > 0 && bb / HPF_BIN_MAX_GROWTH > plain && *pad > 0) {
        *pad = 0;
        bb = binned_bytes(v, 0, blk, why);
    }
    if (bb > 0 && bb / HPF_BIN_MAX_GROWTH > plain) {
        *why = HPF_WHY_GROWTH;
        return 0;
    }
    if (bb > 0 && (bb + *blk) / HPF_BIN_MAX_GROWTH > plain)
        *blk = 0;
    return bb + *blk;
}

size_t hp_forest_bytes(const model_view *v)
{
    /* LightGBM (format 2): a shell pointing at hp_lgbm's own layout in the same block. */
    if (v->format == MODEL_FORMAT_LGBM)
        return ALIGN64(sizeof(hp_forest)) + hp_lgbm_bytes(v);
    /* The larger of the two layouts: build falls back to plain when a threshold turns out NaN or a
     * feature has too many distinct ones, which only sorting tells. */
    size_t plain = plain_bytes(v);
    uint32_t why;
    uint32_t pad;
    size_t blk;
    size_t bb = binned_bytes_capped(v, plain, &pad, &blk, &why);
    return bb > plain ? bb : plain;
}

/* Why a binned forest's single rows walk fewer than all its trees in row blocks ("" if none). */
static const char *blk_why(const hp_forest *f)
{
    if (f->blk_trees > 0)
        return "";
    uint32_t deep = 0; /* padded heaps of depth >= HPF_BLK_MIN_DEPTH */
    for (uint32_t t = 0; t < f->num_trees; t++)
        deep += !f->trees[t].bin_linked && f->trees[t].depth >= HPF_BLK_MIN_DEPTH;
    return deep == 0 ? " (no padded heap of depth >= 6)" : " (over the 4x memory cap)";
}

const char *hp_forest_describe(const hp_forest *f, char *buf, size_t len)
{
    if (f->lgbm)
        return hp_lgbm_describe(f->lgbm, buf, len);
    uint32_t why = f->why < sizeof why_text / sizeof why_text[0] ? f->why : HPF_WHY_BINNED;
    if (f->flags & HPF_F_BINNED)
        snprintf(buf, len,
                 "binned (%u trees: %u padded heaps, %u linked; deepest %u): numeric splits only, "
                 "<= 2048 features, thresholds binned exactly; %s; single rows: %u trees in "
                 "row blocks%s",
                 f->num_trees, f->num_trees - f->linked_trees, f->linked_trees, f->max_depth,
                 (f->flags & HPF_F_AVX2) ? "top 3 levels of 16 rows by AVX2"
                                         : "scalar walk (no AVX2, or turned off)",
                 f->blk_trees, blk_why(f));
    else
        snprintf(buf, len, "plain (%u heap trees, %u linked): not binned because of %s",
                 f->heap_trees, f->num_trees - f->heap_trees, why_text[why]);
    return buf;
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
    size_t at = p; /* 0-based heap position = 1-based number - 1 */
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
    a[at] = HPF_BIN_LANES * (2 * f + dr) | j << 16;
    fill_bin(src, (uint32_t)nd->left, 2 * p + 1, d + 1, D, off, thr, a);
    fill_bin(src, (uint32_t)nd->right, 2 * p + 2, d + 1, D, off, thr, a);
}

static int simd_on = 1; /* hp_forest_set_simd */

void hp_forest_set_simd(int on)
{
    simd_on = on != 0;
}

/* The row-block copy (blk_tree_bytes above) of the filled heap T of depth D into B (zeroed). */
static void fill_blk(const uint32_t *T, uint32_t D, uint32_t *B)
{
    for (uint32_t l = 0; l < D; l++) {
        const uint32_t g = l / 4, lg = l - 4 * g, L = blk_levels(D, g);
        const size_t off = blk_off(D, g), first = (size_t)1 << l, top = (size_t)1 << lg;
        for (size_t p = 0; p < first; p++) /* node p of level l: block p >> lg, local heap m */
            B[off + ((p >> lg) << L) + top + (p & (top - 1)) - 1] = T[first + p - 1];
    }
    memcpy(B + blk_off(D, blk_groups(D)), T + ((size_t)1 << D) - 1,
           ((size_t)1 << D) * sizeof(uint32_t));
}

/* HPF_F_AVX2 when a forest built now may use the AVX2 walk (walk16_top below). */
static uint32_t simd_flag(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (simd_on && __builtin_cpu_supports("avx2"))
        return HPF_F_AVX2;
#endif
    return 0;
}

/* Appends the row-block copy of every padded heap of depth >= HPF_BLK_MIN_DEPTH of f at p, in
 * tree order (so a run of equal-depth trees is one stride), and sets their hpf_tree.blk.  Returns
 * the end.  The space was counted by binned_bytes (*blk). */
static uint8_t *add_row_blocks(hp_forest *f, hpf_tree *trees, uint8_t *p)
{
    for (uint32_t t = 0; t < f->num_trees; t++) {
        hpf_tree *dt = &trees[t];
        if (dt->bin_linked || dt->depth < HPF_BLK_MIN_DEPTH)
            continue;
        size_t bytes = blk_tree_bytes(dt->depth);
        memset(p, 0, bytes); /* pad words */
        fill_blk(dt->bin, dt->depth, (uint32_t *)p);
        dt->blk = (const uint32_t *)p;
        f->blk_trees++;
        p += bytes;
    }
    return p;
}

/* Builds the binned layout into dst (len >= binned_bytes(v) > 0, plus its *blk when blk).  Returns
 * NULL with *why set, having written only inside dst, when a threshold is NaN or a feature has more
 * than HPF_BIN_MAX_THRESHOLDS distinct thresholds.  blk: add the row blocks (counted in len). */
static const hp_forest *build_binned(const model_view *v, uint8_t *base, size_t len, uint32_t pad,
                                     int blk, uint32_t *why)
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
        if (nd->u.threshold != nd->u.threshold) {
            *why = HPF_WHY_NAN_THRESHOLD; /* x < NaN is false for every x: no rank expresses it */
            return NULL;
        }
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
        if (w - off[k] > HPF_BIN_MAX_THRESHOLDS) {
            *why = HPF_WHY_THRESHOLDS;
            return NULL;
        }
    }
    off[nf] = w;
    memmove(thr, tmp, (size_t)w * sizeof(float)); /* thr < tmp: a forward copy is safe */

    memset(f, 0, sizeof *f);
    f->objective = h->objective;
    f->num_feature = nf;
    f->num_class = h->num_class;
    f->num_trees = h->num_trees;
    f->base_margin = h->base_margin;
    f->flags = HPF_F_BINNED | ((h->flags & MODEL_F_DART) ? HPF_F_DART : 0) | simd_flag();
    f->heap_trees = h->num_trees;
    f->trees = trees;
    f->thr_off = off;
    f->thr = thr;
    p = (uint8_t *)thr + ALIGN64((size_t)w * sizeof(float));
    for (uint32_t t = 0; t < h->num_trees; t++) {
        const model_tree_rec *tr = &v->trees[t];
        const model_node_rec *src = v->nodes + tr->first_node;
        uint32_t d = bin_depth(v, t, pad);
        hpf_tree *dt = &trees[t];
        memset(dt, 0, sizeof *dt);
        dt->depth = d;
        dt->group = tr->group;
        dt->weight = tr->weight;
        dt->bin = (const uint32_t *)p;
        if (d > f->max_depth)
            f->max_depth = d;
        size_t bytes = bin_tree_size(d, tr->num_nodes);
        memset(p, 0, bytes); /* pad words */
        if (bin_heap_ok(d, tr->num_nodes)) {
            fill_bin(src, 0, 0, 0, d, off, thr, (uint32_t *)p);
        } else {
            uint64_t *nodes = (uint64_t *)p;
            float *lv = (float *)(p + (size_t)tr->num_nodes * sizeof(uint64_t));
            for (uint32_t i = 0; i < tr->num_nodes; i++) {
                const model_node_rec *nd = &src[i];
                if (nd->left == -1) {
                    nodes[i] = 0xFFFF0000u | (uint64_t)i << 32;
                    lv[i] = nd->u.leaf;
                    continue;
                }
                uint32_t fe = nd->split & MODEL_NODE_FEATURE_MASK;
                uint32_t dr = (nd->split & MODEL_NODE_DEFAULT_LEFT) ? 0u : 1u;
                uint32_t j = rank_of(thr + off[fe], off[fe + 1] - off[fe], nd->u.threshold);
                nodes[i] = (HPF_BIN_LANES * (2 * fe + dr) | j << 16) | (uint64_t)nd->left << 32;
            }
            dt->bin_linked = 1;
            dt->leaves = lv;
            f->linked_trees++;
        }
        p += bytes;
    }
    f->heap_trees = h->num_trees - f->linked_trees;
    if (blk)
        p = add_row_blocks(f, trees, p);
    f->cats = NULL;
    f->bytes = (size_t)(p - base);
    HP_ASSERT(f->bytes <= len);
    f->why = HPF_WHY_BINNED;
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
    uint32_t why;
    uint32_t pad;
    size_t blk;
    size_t bb = binned_bytes_capped(v, plain_bytes(v), &pad, &blk, &why);
    if (bb > 0 && bb <= len) {
        const hp_forest *bf = build_binned(v, dst, len, pad, blk > 0, &why);
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
    f->why = why;

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
 *
 * Bin vectors are u32 words pre-shifted by 16 (bin << 16; NaN: 0 in the default-left slot,
 * 0xFFFF0000 in the default-right one) and interleaved by lane: the word of slot i (= 2f +
 * default_right) for lane j is at rb[HPF_BIN_LANES * i + j].  A node word is w = HPF_BIN_LANES * i
 * | rank << 16, so a lane's bin is rb[(w & 0xFFFF) + j] (j a constant displacement: no per-lane
 * pointer), and the lane goes right iff w < that bin: for bin = b << 16 that is rank < b, or rank
 * == b and (w & 0xFFFF) < 0, i.e. exactly rank < b; NaN gets 0 (never: left) or 0xFFFF0000 (more
 * than any rank <= 65534 << 16 | 0xFFFF... : right).  A step is then 4 instructions: load w,
 * zero-extend its low half, compare w with the bin in memory, n = 2n + carry.
 *
 * Measured on xgb_f (1000 trees of depth <= 8 from xgboost 3.5 hist, 50 features), 2-core AMD EPYC
 * (Zen 5) shared with other jobs, best of 400 64-row batches: 4-level blocks with u16 bins and a
 * per-lane vector pointer 8.5 ns/tree/row; this layout: see tests/bench/README.md.  An AVX-512
 * version (16 lanes, two vpgatherdd per level) measured 10.3: a 16-element gather costs 4.3 ns
 * here against 0.18 ns for a scalar load, so the walk stays scalar. */

/* Trees a single row walks at once on a binned forest (a run of equal-depth trees). */
#define HPF_BIN_ROW_TREES 16
#define HPF_BIN_BUF 65536u /* u32 words of the bin-vector stack buffer: 256 KiB (2 x 2048 x 16) */
#define HPF_BIN_SUPER 64   /* rows that share each tree fetch on a binned forest */

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

/* Lane j of an interleaved bin vector rb (see above) from one row.  For a number x and a threshold
 * of rank r, x < T_r <=> b <= r (the table is sorted and distinct by <, and <= is the negation of
 * the reversed <), so "right iff r < b" is refeval's !(x < t), and NaN takes its default. */
static void bin_lane(const hp_forest *f, const float *row, uint32_t *rb, unsigned j)
{
    for (uint32_t k = 0; k < f->num_feature; k++) {
        float x = row[k];
        uint32_t b = bin_of(f, k, x) << 16;
        int nan = x != x;
        rb[HPF_BIN_LANES * (2 * k) + j] = nan ? 0 : b;
        rb[HPF_BIN_LANES * (2 * k + 1) + j] = nan ? 0xFFFF0000u : b;
    }
}

/* bin_lane for all HPF_BIN_LANES rows r[0..16) of a sub-block: the same searches, but feature by
 * feature with the 16 rows' searches side by side (16 independent chains through one table: a
 * row at a time, each search's ~8 dependent loads left the core waiting). */
static void bin_block(const hp_forest *f, const float *const *r, uint32_t *rb)
{
    for (uint32_t k = 0; k < f->num_feature; k++) {
        const float *T = f->thr + f->thr_off[k];
        uint32_t n = f->thr_off[k + 1] - f->thr_off[k];
        float x[HPF_BIN_LANES];
        uint32_t lo[HPF_BIN_LANES];
#pragma GCC unroll 16
        for (int j = 0; j < HPF_BIN_LANES; j++) {
            x[j] = r[j][k];
            lo[j] = 0;
        }
        if (n > 0) {
            while (n > 1) {
                uint32_t half = n / 2;
#pragma GCC unroll 16
                for (int j = 0; j < HPF_BIN_LANES; j++)
                    lo[j] = T[lo[j] + half] <= x[j] ? lo[j] + half : lo[j];
                n -= half;
            }
#pragma GCC unroll 16
            for (int j = 0; j < HPF_BIN_LANES; j++)
                lo[j] += T[lo[j]] <= x[j];
        }
        uint32_t *s0 = rb + (size_t)HPF_BIN_LANES * (2 * k), *s1 = s0 + HPF_BIN_LANES;
#pragma GCC unroll 16
        for (int j = 0; j < HPF_BIN_LANES; j++) {
            int nan = x[j] != x[j];
            s0[j] = nan ? 0 : lo[j] << 16;
            s1[j] = nan ? 0xFFFF0000u : lo[j] << 16;
        }
    }
}

/* n = 2n + (w < *bin): on x86-64 the compare's carry is added by adc (cmp + adc: 2 instructions
 * where the compiler emits cmp, setb, movzx, lea); elsewhere plain C. */
#if defined(__x86_64__) && defined(__GNUC__)
#define BIN_STEP(n, w, bin)                                                                        \
    __asm__("cmpl %2, %1\n\tadcq %0, %0" : "+r"(n) : "r"(w), "m"(bin) : "cc")
#else
#define BIN_STEP(n, w, bin) ((n) = 2 * (n) + ((w) < (bin)))
#endif

/* HPF_BIN_LANES rows (lane j's bins at rb[... + j]) through the binned tree T of depth D >= 1:
 * leaf values into leaf[0..16).  Fully unrolled over the lanes (16 independent chains: a step's
 * two dependent loads take ~11 cycles, so 8 chains left the core half idle); the root is the same
 * node for every lane, loaded once. */
/* Levels from..D-1 of the binned tree T for the 16 lanes whose heap numbers at level `from` are
 * n[], then each lane's leaf into leaf[] (walk16_bin's and walk16_avx2's common part; inlined, so
 * n[] stays in registers). */
HOT void walk16_rest(const uint32_t *T, const uint32_t *rb, size_t *n, uint32_t from,
                     const uint32_t D, float *leaf)
{
    for (uint32_t d = from; d < D; d++) {
#pragma GCC unroll 16
        for (int j = 0; j < HPF_BIN_LANES; j++) {
            uint32_t w = T[n[j] - 1];
            BIN_STEP(n[j], w, rb[(w & 0xFFFFu) + (unsigned)j]);
        }
    }
#pragma GCC unroll 16
    for (int j = 0; j < HPF_BIN_LANES; j++)
        memcpy(&leaf[j], &T[n[j] - 1], sizeof(float));
}

HOT void walk16_bin(const uint32_t *T, const uint32_t *rb, const uint32_t D, float *leaf)
{
    size_t n[HPF_BIN_LANES];
    const uint32_t w0 = T[0];
    const uint32_t *r0 = rb + (w0 & 0xFFFFu);
#pragma GCC unroll 16
    for (int j = 0; j < HPF_BIN_LANES; j++)
        n[j] = 2 + (w0 < r0[j]);
    walk16_rest(T, rb, n, 1, D, leaf);
}

/* walk16_bin with D a constant (no loop counter: one more register for the lanes), per depth. */
typedef void (*walk16_fn)(const uint32_t *T, const uint32_t *rb, float *leaf);
static void walk16_d0(const uint32_t *T, const uint32_t *rb, float *leaf)
{
    (void)rb;
    for (int j = 0; j < HPF_BIN_LANES; j++)
        memcpy(&leaf[j], &T[0], sizeof(float));
}
#define WALK16_D(D)                                                                                \
    static void walk16_d##D(const uint32_t *T, const uint32_t *rb, float *leaf)                    \
    {                                                                                              \
        walk16_bin(T, rb, D, leaf);                                                                \
    }
WALK16_D(1)
WALK16_D(2)
WALK16_D(3)
WALK16_D(4)
WALK16_D(5)
WALK16_D(6)
WALK16_D(7)
WALK16_D(8)
WALK16_D(9)
WALK16_D(10)
WALK16_D(11)
WALK16_D(12)
static const walk16_fn walk16[HPF_HEAP_MAX_DEPTH + 1] = {
    walk16_d0, walk16_d1, walk16_d2, walk16_d3,  walk16_d4,  walk16_d5, walk16_d6,
    walk16_d7, walk16_d8, walk16_d9, walk16_d10, walk16_d11, walk16_d12};

/* ---- AVX2 top levels (x86-64, GCC or Clang; chosen at build time: hp_forest_set_simd) ---------
 *
 * The first HPF_VEC_LEVELS levels of a tree are the same 7 nodes for all 16 lanes, and the 16
 * lanes' bins for one node are one 64-byte line (rb + (w & 0xFFFF) + 0..15, bins 64-byte aligned).
 * So every one of those nodes is compared for all lanes at once, two 8-lane compares, and each
 * lane's bit is picked by blends on its path so far; the indices then go on with the scalar walk.
 * The decision is BIN_STEP's, negated: left iff bin <= w iff max_u32(bin, w) == w (no +1 needed, so
 * no assumption on w's bits).  Only which instructions compute a lane's index changes: the leaf,
 * and so every margin, is the same. */
#if defined(__x86_64__) && defined(__GNUC__)
#define HPF_HAVE_AVX2 1
#define AVX2 __attribute__((target("avx2")))
/* Levels 0..2: 7 nodes, 14 compares, 6 blends (measured: 2 and 4 levels lose). */
#define HPF_VEC_LEVELS 3

/* Left masks (all ones where the lane goes left) of node word w, lanes 0..7 (*lo), 8..15 (*hi). */
AVX2 static inline void node_left(uint32_t w, const uint32_t *rb, __m256i *lo, __m256i *hi)
{
    const uint32_t *r = rb + (w & 0xFFFFu);
    const __m256i wv = _mm256_set1_epi32((int)w);
    *lo = _mm256_cmpeq_epi32(_mm256_max_epu32(_mm256_loadu_si256((const __m256i *)r), wv), wv);
    *hi =
        _mm256_cmpeq_epi32(_mm256_max_epu32(_mm256_loadu_si256((const __m256i *)(r + 8)), wv), wv);
}

/* a where m is 0, b where m is all ones (m: whole-lane masks).  blendv_ps, not blendv_epi8: GCC 12
 * re-derives a byte mask for the latter (one more compare per blend). */
AVX2 static inline __m256i sel(__m256i a, __m256i b, __m256i m)
{
    return _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), _mm256_castsi256_ps(m)));
}

/* Levels 0..HPF_VEC_LEVELS-1 of the binned heap tree T for the 16 lanes of rb: idx[j] = lane j's
 * 1-based heap number at level HPF_VEC_LEVELS. */
AVX2 static __attribute__((noinline)) void walk16_top(const uint32_t *T, const uint32_t *rb,
                                                      uint32_t *idx)
{
    enum { L = HPF_VEC_LEVELS };
    __m256i ml[L][2]; /* ml[k][h]: left mask at level k, lanes 8h..8h+7 */
#pragma GCC unroll 8
    for (int k = 0; k < L; k++) {
        /* nodes 2^k .. 2^(k+1)-1 (words 2^k-1 ..): pairs of siblings first, by level k-1's mask,
         * then pairs of those by level k-2's, ... up to level 0's */
        __m256i s[1 << (L - 1)][2];
        const int nn = 1 << k;
#pragma GCC unroll 16
        for (int m = 0; m < nn; m++) {
            __m256i c[2];
            node_left(T[nn - 1 + m], rb, &c[0], &c[1]);
            if (k == 0 || (m & 1) == 0) {
                s[m / 2][0] = c[0];
                s[m / 2][1] = c[1];
            } else {
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++) /* went left at level k-1: the left sibling's */
                    s[m / 2][h] = sel(c[h], s[m / 2][h], ml[k - 1][h]);
            }
        }
#pragma GCC unroll 8
        for (int q = k - 2, w = nn / 2; q >= 0; q--, w /= 2)
#pragma GCC unroll 8
            for (int m = 0; m < w / 2; m++)
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++)
                    s[m][h] = sel(s[2 * m + 1][h], s[2 * m][h], ml[q][h]);
        ml[k][0] = s[0][0];
        ml[k][1] = s[0][1];
    }
    /* n = 2^L + sum_k r_k 2^(L-1-k) with r_k = 1 + ml[k] (ml: 0 or -1) */
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m256i n = ml[0][h];
#pragma GCC unroll 8
        for (int k = 1; k < L; k++)
            n = _mm256_add_epi32(_mm256_add_epi32(n, n), ml[k][h]);
        n = _mm256_add_epi32(n, _mm256_set1_epi32((2 << L) - 1));
        _mm256_storeu_si256((__m256i *)(void *)(idx + 8 * h), n);
    }
}

/* walk16_bin (same contract, D >= HPF_VEC_LEVELS) with the top levels by walk16_top.  The indices
 * pass through leaf[]; walk16_top is a function of its own so that this one has no 32-byte
 * aligned AVX frame (one more register for the lanes: fewer spills). */
HOT void walk16_avx2(const uint32_t *T, const uint32_t *rb, const uint32_t D, float *leaf)
{
    uint32_t *idx = (uint32_t *)(void *)leaf;
    walk16_top(T, rb, idx);
    size_t n[HPF_BIN_LANES];
#pragma GCC unroll 16
    for (int j = 0; j < HPF_BIN_LANES; j++)
        n[j] = idx[j];
    walk16_rest(T, rb, n, HPF_VEC_LEVELS, D, leaf);
}
#define WALK16_AVX2_D(D)                                                                           \
    static void walk16_avx2_d##D(const uint32_t *T, const uint32_t *rb, float *leaf)               \
    {                                                                                              \
        walk16_avx2(T, rb, D, leaf);                                                               \
    }
WALK16_AVX2_D(3)
WALK16_AVX2_D(4)
WALK16_AVX2_D(5)
WALK16_AVX2_D(6)
WALK16_AVX2_D(7)
WALK16_AVX2_D(8)
WALK16_AVX2_D(9)
WALK16_AVX2_D(10)
WALK16_AVX2_D(11)
WALK16_AVX2_D(12)
/* Depths below HPF_VEC_LEVELS keep the scalar walk. */
static const walk16_fn walk16_vec[HPF_HEAP_MAX_DEPTH + 1] = {
    walk16_d0,       walk16_d1,       walk16_d2,      walk16_avx2_d3, walk16_avx2_d4,
    walk16_avx2_d5,  walk16_avx2_d6,  walk16_avx2_d7, walk16_avx2_d8, walk16_avx2_d9,
    walk16_avx2_d10, walk16_avx2_d11, walk16_avx2_d12};
#endif

/* The 16-lane heap walks f uses, by depth. */
static const walk16_fn *walk16_table(const hp_forest *f)
{
#ifdef HPF_HAVE_AVX2
    if (f->flags & HPF_F_AVX2)
        return walk16_vec;
#endif
    (void)f;
    return walk16;
}

/* i = left + (w < *bin), the linked binned step (see BIN_STEP). */
#if defined(__x86_64__) && defined(__GNUC__)
#define LINK_STEP(i, w, bin)                                                                       \
    __asm__("cmpl %2, %1\n\tadcq $0, %0" : "+r"(i) : "r"(w), "m"(bin) : "cc")
#else
#define LINK_STEP(i, w, bin) ((i) += ((w) < (bin)))
#endif

/* HPF_BIN_LANES rows through a linked binned tree (N: u64 nodes, then the leaf floats) of depth D:
 * exactly D steps, lanes at a leaf stay there. */
static void walk16_linked(const uint64_t *N, const float *lv, const uint32_t *rb, uint32_t D,
                          float *leaf)
{
    size_t i[HPF_BIN_LANES];
#pragma GCC unroll 16
    for (int j = 0; j < HPF_BIN_LANES; j++)
        i[j] = 0;
    for (uint32_t d = 0; d < D; d++) {
#pragma GCC unroll 16
        for (int j = 0; j < HPF_BIN_LANES; j++) {
            uint64_t nd = N[i[j]];
            uint32_t w = (uint32_t)nd;
            size_t nx = (size_t)(nd >> 32);
            LINK_STEP(nx, w, rb[(w & 0xFFFFu) + (unsigned)j]);
            i[j] = nx;
        }
    }
#pragma GCC unroll 16
    for (int j = 0; j < HPF_BIN_LANES; j++)
        leaf[j] = lv[i[j]];
}

/* One row (lane 0 of rb) through a linked binned tree: until its leaf. */
static float walk1_linked(const uint64_t *N, const float *lv, const uint32_t *rb)
{
    size_t i = 0;
    for (;;) {
        uint64_t nd = N[i];
        uint32_t w = (uint32_t)nd;
        size_t nx = (size_t)(nd >> 32);
        if (nx == i && w == 0xFFFF0000u)
            return lv[i];
        i = nx + (w < rb[w & 0xFFFFu]);
    }
}

/* All trees for nsub sub-blocks of 16 rows (sub-block s's bins at rb + s * sub), adding into
 * m[row * k + group]; trees are the outer loop, so a tree is fetched once for the super-block. */
static void walk_super_bin(const hp_forest *f, const uint32_t *rb, size_t sub, unsigned nsub,
                           float *m)
{
    const uint32_t k = f->num_class;
    const int dart = (f->flags & HPF_F_DART) != 0;
    const walk16_fn *tab = walk16_table(f);
    for (uint32_t t = 0; t < f->num_trees; t++) {
        const hpf_tree *tr = &f->trees[t];
        const walk16_fn walk = tr->bin_linked ? NULL : tab[tr->depth];
        for (unsigned sb = 0; sb < nsub; sb++) {
            float leaf[HPF_BIN_LANES];
            if (walk)
                walk(tr->bin, rb + sb * sub, leaf);
            else
                walk16_linked((const uint64_t *)tr->bin, tr->leaves, rb + sb * sub, tr->depth,
                              leaf);
            float *mg = m + (size_t)sb * HPF_BIN_LANES * k + tr->group;
            if (dart) {
                for (int j = 0; j < HPF_BIN_LANES; j++)
                    mg[(size_t)j * k] += (0.0f + leaf[j]) * tr->weight;
            } else if (k == 1) {
                /* Contiguous: the compiler adds 16 lanes with vector instructions (the same
                 * float32 additions, element by element). */
                for (int j = 0; j < HPF_BIN_LANES; j++)
                    mg[j] += leaf[j];
            } else {
                for (int j = 0; j < HPF_BIN_LANES; j++)
                    mg[(size_t)j * k] += leaf[j];
            }
        }
    }
}

/* One row (lane 0 of rb) through HPF_BIN_ROW_TREES consecutive trees of depth D, the first at T0
 * (the others follow at bin_tree_words(D) apart): with D a constant, every lane's tree is a
 * constant displacement from T0, so a lane's whole state is its index. */
HOT void walk_run_bin(const uint32_t *T0, const uint32_t *rb, const uint32_t D, float *leaf)
{
    const size_t W = bin_tree_words(D);
    size_t n[HPF_BIN_ROW_TREES];
#pragma GCC unroll 16
    for (int j = 0; j < HPF_BIN_ROW_TREES; j++)
        n[j] = 1;
    for (uint32_t d = 0; d < D; d++) {
#pragma GCC unroll 16
        for (int j = 0; j < HPF_BIN_ROW_TREES; j++) {
            uint32_t w = T0[(size_t)j * W + n[j] - 1];
            BIN_STEP(n[j], w, rb[w & 0xFFFFu]);
        }
    }
#pragma GCC unroll 16
    for (int j = 0; j < HPF_BIN_ROW_TREES; j++)
        memcpy(&leaf[j], &T0[(size_t)j * W + n[j] - 1], sizeof(float));
}

/* The path's bits after a group of PL levels that started at word prev of tree j's copy (W words
 * a tree): base + 1 - j W - prev is the block's number times 2^PL, and m - 2^PL its exit. */
HOT size_t blk_path(size_t base, size_t m, int j, size_t W, size_t prev, uint32_t PL)
{
    return base + 1 - (size_t)j * W - prev + m - ((size_t)1 << PL);
}

/* walk_run_bin over row blocks (the first tree's at B0, the others blk_tree_bytes(D) apart): per
 * group, each lane's block (base[]: the word before it) and local heap number m[]; between groups
 * the path's bits so far, k, pick the next block; a lane's leaf line is prefetched when its last
 * block is known, so it arrives while that block's levels are walked. */
HOT void walk_run_blk(const uint32_t *B0, const uint32_t *rb, const uint32_t D, float *leaf)
{
    const size_t W = blk_tree_bytes(D) / sizeof(uint32_t);
    const uint32_t G = blk_groups(D);
    const size_t lo = blk_off(D, G);
    size_t base[HPF_BIN_ROW_TREES], m[HPF_BIN_ROW_TREES];
#pragma GCC unroll 16
    for (int j = 0; j < HPF_BIN_ROW_TREES; j++) {
        base[j] = (size_t)j * W - 1;
        m[j] = 1;
    }
#pragma GCC unroll 3
    for (uint32_t g = 0; g < G; g++) {
        const uint32_t L = blk_levels(D, g);
        if (g > 0) {
            const size_t prev = blk_off(D, g - 1), off = blk_off(D, g);
            const uint32_t PL = blk_levels(D, g - 1);
#pragma GCC unroll 16
            for (int j = 0; j < HPF_BIN_ROW_TREES; j++) {
                size_t k = blk_path(base[j], m[j], j, W, prev, PL); /* the next block */
                if (g + 1 == G)
                    __builtin_prefetch(B0 + (size_t)j * W + lo + (k << L));
                base[j] = (size_t)j * W + off + (k << L) - 1;
                m[j] = 1;
            }
        }
#pragma GCC unroll 4
        for (uint32_t d = 0; d < L; d++) {
#pragma GCC unroll 16
            for (int j = 0; j < HPF_BIN_ROW_TREES; j++) {
                uint32_t w = B0[base[j] + m[j]];
                BIN_STEP(m[j], w, rb[w & 0xFFFFu]);
            }
        }
    }
    const size_t last = blk_off(D, G - 1);
    const uint32_t LL = blk_levels(D, G - 1);
#pragma GCC unroll 16
    for (int j = 0; j < HPF_BIN_ROW_TREES; j++) {
        size_t k = blk_path(base[j], m[j], j, W, last, LL); /* the leaf */
        memcpy(&leaf[j], &B0[(size_t)j * W + lo + k], sizeof(float));
    }
}

typedef void (*run_fn)(const uint32_t *T0, const uint32_t *rb, float *leaf);
#define RUN_D(D)                                                                                   \
    static void run_bin_##D(const uint32_t *T0, const uint32_t *rb, float *leaf)                   \
    {                                                                                              \
        walk_run_bin(T0, rb, D, leaf);                                                             \
    }
RUN_D(0)
RUN_D(1)
RUN_D(2)
RUN_D(3)
RUN_D(4)
RUN_D(5)
RUN_D(6)
RUN_D(7)
RUN_D(8)
RUN_D(9)
RUN_D(10)
RUN_D(11)
RUN_D(12)
static const run_fn run_bin[HPF_HEAP_MAX_DEPTH + 1] = {
    run_bin_0, run_bin_1, run_bin_2, run_bin_3,  run_bin_4,  run_bin_5, run_bin_6,
    run_bin_7, run_bin_8, run_bin_9, run_bin_10, run_bin_11, run_bin_12};
#define RUN_BLK_D(D)                                                                               \
    static void run_blk_##D(const uint32_t *B0, const uint32_t *rb, float *leaf)                   \
    {                                                                                              \
        walk_run_blk(B0, rb, D, leaf);                                                             \
    }
RUN_BLK_D(6)
RUN_BLK_D(7)
RUN_BLK_D(8)
RUN_BLK_D(9)
RUN_BLK_D(10)
RUN_BLK_D(11)
RUN_BLK_D(12)
/* Row-block runs by depth (NULL below HPF_BLK_MIN_DEPTH: those trees have no row blocks). */
static const run_fn run_blk[HPF_HEAP_MAX_DEPTH + 1] = {
    NULL,      NULL,      NULL,      NULL,       NULL,       NULL,      run_blk_6,
    run_blk_7, run_blk_8, run_blk_9, run_blk_10, run_blk_11, run_blk_12};

/* One row (lane 0 of rb) through all trees: runs of HPF_BIN_ROW_TREES equal-depth trees walk
 * together (tree-level parallelism), the rest one by one; leaves are added in tree order. */
static void walk_row_bin(const hp_forest *f, const uint32_t *rb, float *m)
{
    const int dart = (f->flags & HPF_F_DART) != 0;
    /* One output group, no dart: the margin lives in a register (m[group] in memory made every
     * tree's add wait on the previous one's store). */
    const int one = f->num_class == 1 && !dart;
    float acc = m[0];
    const hpf_tree *trees = f->trees;
    uint32_t t = 0;
    while (t < f->num_trees) {
        const hpf_tree *tr = &trees[t];
        uint32_t run = 0;
        while (run < HPF_BIN_ROW_TREES && t + run < f->num_trees &&
               trees[t + run].depth == tr->depth && !trees[t + run].bin_linked)
            run++;
        float leaf[HPF_BIN_ROW_TREES];
        if (run == HPF_BIN_ROW_TREES && tr->blk) {
            run_blk[tr->depth](tr->blk, rb, leaf);
        } else if (run == HPF_BIN_ROW_TREES) {
            run_bin[tr->depth](tr->bin, rb, leaf);
        } else if (tr->bin_linked) {
            run = 1;
            leaf[0] = walk1_linked((const uint64_t *)tr->bin, tr->leaves, rb);
        } else {
            run = 1;
            const uint32_t *T = tr->bin;
            size_t n = 1;
            for (uint32_t d = 0; d < tr->depth; d++) {
                uint32_t w = T[n - 1];
                n = 2 * n + (w < rb[w & 0xFFFFu]);
            }
            memcpy(&leaf[0], &T[n - 1], sizeof(float));
        }
        if (one) {
            for (uint32_t j = 0; j < run; j++) /* in tree order */
                acc += leaf[j];
        } else {
            for (uint32_t j = 0; j < run; j++) { /* in tree order */
                if (dart)
                    m[tr[j].group] += (0.0f + leaf[j]) * tr[j].weight;
                else
                    m[tr[j].group] += leaf[j];
            }
        }
        t += run;
    }
    if (one)
        m[0] = acc;
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
    _Alignas(64) uint32_t bins[HPF_BIN_BUF]; /* a node's 16 lanes: one line (walk16_top) */
    const uint32_t k = f->num_class, nf = f->num_feature;
    super = (size_t)HPF_BIN_LANES * MODEL_MAX_CLASSES / k; /* what m holds */
    if (super > HPF_BIN_SUPER)
        super = HPF_BIN_SUPER;
    const uint32_t nout = hp_forest_outputs(f, output_margin);
    /* One sub-block's interleaved vectors: 2 nf slots x 16 lanes (nf <= HPF_BIN_MAX_FEATURES: one
     * always fits, and a single row's lane 0 too). */
    const size_t sub = 2 * (size_t)nf * HPF_BIN_LANES;
    size_t fit = HPF_BIN_BUF / sub * HPF_BIN_LANES;
    if (super > fit)
        super = fit;
    super = super / HPF_BIN_LANES * HPF_BIN_LANES; /* >= 16: m and bins hold one sub-block */
    size_t i = a;
    while (i < b) {
        size_t rest = b - i;
        if (rest <= 2) {
            for (size_t j = 0; j < rest; j++) {
                for (uint32_t g = 0; g < k; g++)
                    m[g] = f->base_margin;
                bin_lane(f, rows + (i + j) * nf, bins, 0);
                walk_row_bin(f, bins, m);
                emit(f, m, output_margin, out + (i + j) * nout);
            }
            break;
        }
        /* 3..7 leftover rows still fill a sub-block: the extra lanes repeat the last row. */
        size_t real = rest < super ? rest : super;
        unsigned nsub = (unsigned)((real + HPF_BIN_LANES - 1) / HPF_BIN_LANES);
        for (unsigned sb = 0; sb < nsub; sb++) {
            const float *r[HPF_BIN_LANES];
            for (size_t j = 0; j < HPF_BIN_LANES; j++) {
                size_t q = (size_t)sb * HPF_BIN_LANES + j;
                r[j] = rows + (i + (q < real ? q : real - 1)) * nf;
            }
            bin_block(f, r, bins + sb * sub);
        }
        for (size_t j = 0; j < (size_t)nsub * HPF_BIN_LANES * k; j++)
            m[j] = f->base_margin;
        walk_super_bin(f, bins, sub, nsub, m);
        for (size_t j = 0; j < real; j++)
            emit(f, m + j * k, output_margin, out + (i + j) * nout);
        i += real;
    }
}

/* Scores rows [a, b) serially. */
static void score_range(const hp_forest *f, const float *rows, size_t a, size_t b,
                        int output_margin, float *out)
{
    /* 256 KiB: 16 rows of every class (a binned sub-block), or 64 rows of 2048 classes. */
    float m[HPF_BIN_LANES * MODEL_MAX_CLASSES];
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
    /* Up to HPF_PARTS_PER_THREAD parts per thread, of at least HPF_PART_MIN_ROWS rows: threads
     * claim parts as they come free, so on a shared machine a thread that lost its CPU for a
     * while leaves its share to the others instead of holding the whole batch back (two equal
     * halves made the batch as slow as the slower thread).  Whole rounds (a multiple of the
     * thread count), so on an idle machine every thread still gets an equal share: 1000 rows
     * on 2 threads stay two halves, 5000 become 16 parts. */
    unsigned threads = helpers + 1;
    size_t per = nrows / ((size_t)threads * HPF_PART_MIN_ROWS);
    unsigned nparts = threads * (unsigned)(per < 1                      ? 1
                                           : per > HPF_PARTS_PER_THREAD ? HPF_PARTS_PER_THREAD
                                                                        : per);
    size_t chunk = (nrows + nparts - 1) / nparts;
    chunk = (chunk + HPF_BLOCK - 1) / HPF_BLOCK * HPF_BLOCK; /* parts start on block boundaries */
    nparts = (unsigned)((nrows + chunk - 1) / chunk);
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
