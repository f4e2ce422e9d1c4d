/* hp_forest.h - the worker's own layout of a model (built from a validated common/model.h blob) and
 * the tree walks that score rows on it, bit-identical to common/refeval.c.
 *
 * Owns: the tuned in-memory layout (one contiguous, position-dependent block the caller provides,
 * e.g. a piece of the model arena), its size computation and build, and scoring (serial, or split
 * over an hp_pool).
 *
 * Layout (see hp_forest.c for the measurements behind it):
 *   - "heap" trees (depth <= HPF_HEAP_MAX_DEPTH and not too sparse, i.e. every tree xgboost grows
 *     depth-wise with default settings): 8-byte nodes {u32 feature|flags, f32 threshold or
 *     categorical-set offset} in implicit heap order (children of i at 2i+1 and 2i+2), padded to a
 *     complete tree of the tree's depth D (a leaf above depth D becomes a subtree whose leaves all
 *     hold its value), plus 2^D leaf values.  A walk is exactly D steps of
 *     i = 2i + 1 + go_right, with no leaf test and no data-dependent branch;
 *   - "linked" trees (anything else: deep or very sparse trees): 12-byte nodes {u32 feature|flags,
 *     f32 threshold/leaf/set offset, u32 left}, walked until a leaf, next = left + go_right;
 *   - "binned" forests (HPF_F_BINNED), the default whenever the model allows it: no categorical
 *     split, num_feature <= HPF_BIN_MAX_FEATURES, no NaN threshold, <= HPF_BIN_MAX_THRESHOLDS
 *     distinct thresholds per feature, and the binned layout <= HPF_BIN_MAX_GROWTH x the plain
 *     one.  Any tree shape: xgboost 3.x hist (depth-wise or lossguide), 1.7, leaf-wise trees.
 *     A node is one u32 word HPF_BIN_LANES * (2 * feature + default_right) | j << 16, j = the rank
 *     of its threshold among its feature's distinct thresholds (thr[]).  Rows are turned into bin
 *     vectors first: b = #{thresholds of f <= x}, words b << 16 in slot 2f and 2f+1 (NaN: 0 in
 *     slot 2f, 0xFFFF0000 in slot 2f+1), interleaved by lane (slot i of lane l at
 *     HPF_BIN_LANES * i + l); a node goes right iff word < rb[(word & 0xFFFF) + lane], which is
 *     exactly !(x < t) for numbers and the default direction for NaN (hp_forest.c proves it).
 *     Trees up to depth HPF_HEAP_MAX_DEPTH that pad cheaply (<= 4 KiB, or <= 8x their nodes) are
 *     complete heaps numbered from 1 (node n at word n - 1, its children 2n and 2n + 1, the 2^D
 *     leaves' float bits right after the nodes); the ones up to depth 9 are all padded to the
 *     deepest of them (unless that breaks the growth cap: then each keeps its own depth).  The
 * others ("linked", tree.bin_linked) are their canonical nodes as u64 {word, left child} with
 * leaves {0xFFFF0000, itself} (a walk stays put) and then one leaf float per node.  Either walk is
 * exactly depth steps with no leaf test and no branch.  Single rows of a padded heap of
 * depth >= 6 walk a second copy of it ("row blocks", tree.blk, when the cap leaves room): its
 * levels in groups of 4, each group 16^g blocks of 2^L words (a block's nodes in heap order and a
 * pad word: never across a line), then the 2^D leaves in heap order.
 *
 * Costs: hp_forest_bytes O(nodes); hp_forest_build O(padded nodes + nodes log nodes) (the binned
 * threshold tables are sorted in place in dst); scoring O(rows x sum of tree depths), plus for a
 * binned forest O(rows x num_feature x log thresholds) to bin the rows.  Nothing here allocates;
 * scoring uses a 256 KiB stack buffer (16 rows x MODEL_MAX_CLASSES margins) and a 256 KiB one
 * (bin vectors: 2 x HPF_BIN_MAX_FEATURES slots x 16 lanes). */
#ifndef VIGIL_HP_FOREST_H
#define VIGIL_HP_FOREST_H

#include <stddef.h>
#include <stdint.h>

#include "hp_pool.h"
#include "hp_scorer.h"
#include "model.h"

#define HPF_HEAP_MAX_DEPTH 12     /* 4095 internal nodes + 4096 leaves = 48 KiB per tree at most */
#define HPF_HEAP_MAX_PADDING 8    /* a heap tree has at most 8x the nodes of its source tree */
#define HPF_BLOCK 8               /* rows walked together through one tree (one sub-block) */
#define HPF_SUPER 64              /* rows that share each tree fetch (8 sub-blocks) */
#define HPF_PARTS_PER_THREAD 8    /* a pooled batch: at most this many parts per thread */
#define HPF_PART_MIN_ROWS 256     /* ... of at least this many rows */
#define HPF_BIN_MAX_FEATURES 2048 /* 8 rows of bin vectors fit the 64 KiB stack buffer */
#define HPF_BIN_MAX_THRESHOLDS 65535 /* ranks 0..65534 < 65535, the NaN-goes-right bin */
#define HPF_BIN_LANES 16             /* rows a binned sub-block walks together */
#define HPF_BIN_MAX_GROWTH 4         /* binned (padded) layout at most 4x the plain one */

/* Node flags (same bit positions as common/model.h's split word). */
#define HPF_FEATURE_MASK MODEL_NODE_FEATURE_MASK
#define HPF_DEFAULT_LEFT MODEL_NODE_DEFAULT_LEFT
#define HPF_CATEGORICAL MODEL_NODE_CATEGORICAL
#define HPF_LEAF MODEL_NODE_FEATURE_MASK /* linked layout: feature field all ones marks a leaf */

typedef struct hpf_node { /* heap layout */
    uint32_t ff;          /* feature | HPF_DEFAULT_LEFT | HPF_CATEGORICAL */
    union {
        float t;      /* numeric: x goes left iff x < t */
        uint32_t cat; /* categorical: word offset of the set in cats[] (model.h format) */
    } u;
} hpf_node;

typedef struct hpf_lnode { /* linked layout */
    uint32_t ff;           /* as hpf_node, or HPF_LEAF */
    union {
        float t;
        uint32_t cat;
        float leaf;
    } u;
    uint32_t left; /* tree-local index of the left child; right = left + 1 */
} hpf_lnode;

typedef struct hpf_tree {
    const hpf_node *heap;    /* heap layout: 2^depth - 1 nodes, or NULL for a linked tree */
    const float *leaves;     /* heap layout: 2^depth leaf values */
    const hpf_lnode *linked; /* linked layout: the tree's nodes, root first */
    const uint32_t *bin;     /* binned layout: 2^depth - 1 nodes (idx | j << 16), then 2^depth
                                leaves (float bits); NULL unless the forest is HPF_F_BINNED */
    uint32_t depth;          /* longest root-to-leaf path (0: a single leaf) */
    uint32_t group;          /* output group */
    float weight;            /* dart weight (1 for gbtree) */
    uint32_t bin_linked;     /* binned: 0 = padded heap of 2^(depth+1) - 1 words; 1 = linked:
                                num_nodes u64 {word, left child} then num_nodes leaf floats */
    const uint32_t *blk;     /* binned padded heap of depth >= 5: its row-block copy for single
                                rows (hp_forest.c, blk_tree_bytes), or NULL */
} hpf_tree;

#define HPF_F_DART 0x1u        /* multiply each tree's leaf by its weight (refeval's dart rule) */
#define HPF_F_CATEGORICAL 0x2u /* some node is categorical: walks take the exact slow decision */
#define HPF_F_BINNED 0x4u      /* every tree has the binned layout (tree.bin, thr_off, thr) */
#define HPF_F_LGBM 0x8u        /* a LightGBM model: only `lgbm` is set (hotpath/hp_lgbm.h) */
/* Binned: batches walk each heap tree's top levels with AVX2 (set at build when the CPU has it,
 * unless hp_forest_set_simd(0)). */
#define HPF_F_AVX2 0x10u

struct hp_lgbm;

/* hp_forest.why: the rule that decided the layout (hp_forest_describe prints it). */
enum hpf_why {
    HPF_WHY_BINNED = 0,    /* binned */
    HPF_WHY_CATEGORICAL,   /* plain: a categorical split */
    HPF_WHY_FEATURES,      /* plain: num_feature > HPF_BIN_MAX_FEATURES */
    HPF_WHY_DEPTH,         /* (unused since deep trees are binned linked) */
    HPF_WHY_GROWTH,        /* plain: padded trees > HPF_BIN_MAX_GROWTH x the plain layout */
    HPF_WHY_NAN_THRESHOLD, /* plain: a NaN threshold */
    HPF_WHY_THRESHOLDS     /* plain: a feature with > HPF_BIN_MAX_THRESHOLDS distinct ones */
};
typedef struct hp_forest {
    uint32_t objective, num_feature, num_class, num_trees;
    uint32_t flags;      /* HPF_F_* */
    uint32_t heap_trees; /* how many trees use the heap layout (the rest are linked) */
    float base_margin;
    uint32_t why;       /* enum hpf_why */
    uint32_t max_depth; /* binned: deepest tree */
    uint32_t pad;
    uint32_t linked_trees; /* binned: trees with the linked binned layout (deep or sparse) */
    uint32_t blk_trees;    /* binned: trees with a row-block copy (hpf_tree.blk) */
    const hpf_tree *trees;
    const uint32_t *cats; /* categorical sets, word for word as in the blob */
    const uint32_t
        *thr_off;     /* binned: feature f's thresholds are thr[thr_off[f] .. thr_off[f+1]) */
    const float *thr; /* binned: per feature, distinct thresholds in increasing order */
    size_t bytes;     /* size of the block it lives in */
    const struct hp_lgbm *lgbm; /* HPF_F_LGBM: the LightGBM layout, in the same block */
} hp_forest;

/* Process-wide: whether forests built from now on may use AVX2 for the top levels of the batch walk
 * (on = 1, the default: where the CPU has AVX2, checked at build time), or only the scalar walk
 * (on = 0: tests score both ways and compare).  Outputs are bit-identical either way.  Not
 * synchronized: call it before building, not while another thread builds. */
void hp_forest_set_simd(int on);

/* Bytes hp_forest_build needs for v (which passed model_validate).  Never fails; O(nodes). */
size_t hp_forest_bytes(const model_view *v);

/* Builds the forest for v into dst[0..len), len >= hp_forest_bytes(v), dst 64-byte aligned.
 * Returns the forest (it lives at dst and points only into dst; the blob may go away), or NULL if
 * len is too small.  Never allocates; thread-safe for distinct dst. */
const hp_forest *hp_forest_build(const model_view *v, void *dst, size_t len);

/* One line saying which layout f got and why ("binned (...)" or "plain (...): not binned because
 * of ..."), written into buf[0..len) (truncated, NUL-terminated); returns buf.  Thread-safe. */
const char *hp_forest_describe(const hp_forest *f, char *buf, size_t len);

/* Outputs per row: num_class for margins and multi:softprob, else 1 (model_outputs_per_row). */
uint32_t hp_forest_outputs(const hp_forest *f, int output_margin);

/* A LightGBM model (format 2) is built by hp_forest_build too, as a shell (HPF_F_LGBM) around
 * hotpath/hp_lgbm.h's layout in the same block: score it with hp_lgbm_score(f->lgbm, ...) on f64
 * rows; hp_forest_score does nothing for it. */

/* Scores rows[0..nrows) (row-major nrows x num_feature, NaN = missing) into out (nrows x
 * hp_forest_outputs(f, output_margin)), bit-identical to refeval_predict on the source blob.
 * When pool is non-NULL and nrows x num_trees >= min_parallel_work, the rows are split into
 * block-aligned parts (whole rounds of one part per thread, up to HPF_PARTS_PER_THREAD per
 * thread, of at least HPF_PART_MIN_ROWS rows) that the pool's helpers and the calling thread
 * claim as they come free.
 * Never fails, never allocates; thread-safe (the forest is read-only). */
void hp_forest_score(const hp_forest *f, const float *rows, size_t nrows, int output_margin,
                     float *out, hp_pool *pool, uint64_t min_parallel_work);

/* The registry entry of this layout (hp_scorer.h): name "forest", the default kernel. */
extern const hp_scorer hp_scorer_forest;

#endif
