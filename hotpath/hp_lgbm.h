/* hp_lgbm.h - the worker's layout of a LightGBM model (format 2 blob, common/model.h) and its
 * tree walk, bit-identical to common/refeval.c's refeval_lgbm_predict.
 *
 * Owns: the layout (one contiguous block the caller provides, e.g. a piece of the model arena),
 * its size, its build from a validated view, and scoring rows of doubles into doubles.
 *
 * Two layouts: the binned one (HPL_F_BINNED, below: every model without a categorical split or a
 * NaN threshold, e.g. lgbm_k) and the plain one, which every model has and non-binned models use:
 * 16-byte nodes {double v, u32 ff, u32 left} per tree in the blob's canonical order
 * (children of an internal node at left and left + 1).  v is the threshold or the categorical
 * set's word offset (HPL_CAT).  A leaf (HPL_LEAF) is a node that leads to itself whatever the
 * input (feature 0, v = +inf, HPL_NANLEFT, left = its own index), and its value sits in leaf[] at
 * the same index: so a walk may take exactly the tree's depth steps, branch-free, lanes that
 * reached a leaf early staying put.  ff packs the feature with the
 * decision precomputed from LightGBM's rules: HPL_NANLEFT is where a NaN goes (missing None: NaN
 * becomes 0.0, so 0.0 <= threshold; NaN or Zero type: default_left), HPL_ZERO marks a
 * missing-Zero node (a zero input takes the default side, HPL_DEFLEFT).  So a numerical node
 * without HPL_ZERO decides `x <= v || (isnan(x) && nanleft)` with no branch on the missing type.
 * Rows are walked in blocks of HPL_BLOCK through one tree at a time (the tree stays in cache),
 * HPL_LANES rows interleaved so that their dependent node loads overlap; per row, leaves are added
 * in tree order into double accumulators starting at 0.0, exactly as LightGBM's PredictRaw.
 *
 * Costs: hp_lgbm_bytes O(nodes); hp_lgbm_build O(nodes log nodes + trees x HPL_ROW_CHUNK) (the
 * threshold tables are sorted in place in dst); scoring O(rows x sum of path lengths) (plain) or
 * O(rows x sum of tree depths + rows x used features x log thresholds) (binned).  Nothing here
 * allocates; scoring uses stack blocks of HPL_ACC_MAX doubles (32 KiB), HPL_BIN_BUF bin words
 * (256 KiB) and HPL_ROW_CHUNK leaf doubles (8 KiB). */
#ifndef VIGIL_HP_LGBM_H
#define VIGIL_HP_LGBM_H

#include <stddef.h>
#include <stdint.h>

#include "hp_pool.h"
#include "model.h"

#define HPL_FEATURE_MASK 0x00FFFFFFu
#define HPL_LEAF 0x08000000u
#define HPL_DEFLEFT 0x10000000u
#define HPL_ZERO 0x20000000u
#define HPL_CAT 0x40000000u
#define HPL_NANLEFT 0x80000000u
#define HPL_BLOCK 64
#define HPL_LANES 16
#define HPL_ACC_MAX 4096 /* doubles of accumulators on the stack (32 KiB) */

typedef struct hpl_node {
    double v;
    uint32_t ff;
    uint32_t left;
} hpl_node;

#define HPL_F_SLOW 0x1u   /* some node is categorical or missing-Zero: the general decision */
#define HPL_F_BINNED 0x2u /* the binned layout below is present and used */

/* Binned layout (HPL_F_BINNED: no categorical node, no NaN threshold, <= HPL_BIN_MAX_SLOTS used
 * (feature, kind) pairs, <= HPL_BIN_MAX_THRESHOLDS distinct thresholds per feature); the port of
 * hp_forest's linked binned walk to double thresholds.  thr[toff[u] .. toff[u+1]) holds the
 * distinct thresholds (by <) of the u-th used feature feat[u], increasing.  A row is first turned
 * into one u32 bin word per slot (a used (feature, kind) pair, slots of feature u at fslot[u] ..
 * fslot[u+1]); with x' the input after the zero drop and b = #{thr < x'}, the word is b << 16, or
 * for the missing cases:
 *   kind 0 (missing None)          NaN: #{thr < 0.0} << 16 (LightGBM compares 0.0)
 *   kind 1 (missing NaN, left)     NaN: 0                      kind 2 (NaN, right): NaN: 0xFFFF0000
 *   kind 3 (missing Zero, left)    NaN or x' == 0: 0           kind 4 (Zero, right): ...:
 * 0xFFFF0000 Bins of HPL_BIN_LANES rows are interleaved (slot s of lane l at word 16 s + l).  A
 * node is u64 {word, next}: word = 16 slot | j << 16 with j the rank of its threshold t, next the
 * absolute index of its left child (right = next + 1).  It goes right iff word < bin, i.e. j < b,
 * i.e. t < x', exactly LightGBM's !(x' <= t), and the missing cases above give its default sides.
 * A leaf is {0xFFFF0000, itself} (never below a bin: a walk stays put), so a walk is exactly
 * depth[t] steps of i = next + (word < bin), no leaf test, no branch.  leaf[] (same indices) holds
 * leaf values. */
enum hpl_why {
    HPL_WHY_BINNED = 0,
    HPL_WHY_CATEGORICAL,   /* plain: a categorical split */
    HPL_WHY_NAN_THRESHOLD, /* plain: a NaN threshold */
    HPL_WHY_SLOTS,         /* plain: more than HPL_BIN_MAX_SLOTS (feature, kind) pairs */
    HPL_WHY_THRESHOLDS     /* plain: a feature with more than HPL_BIN_MAX_THRESHOLDS */
};
#define HPL_BIN_KINDS 5u
#define HPL_BIN_LANES 16u             /* rows (or, for one row, trees) walking together */
#define HPL_BIN_MAX_SLOTS 4095u       /* 16 * slot fits a word's low 16 bits */
#define HPL_BIN_MAX_THRESHOLDS 65534u /* ranks < 65535, the always-right bin */
#define HPL_BIN_BUF 65536u            /* u32 bin words on the stack (256 KiB): >= one sub-block */
#define HPL_BIN_SUPER 64u             /* rows that share each tree fetch */
#define HPL_ROW_CHUNK 1024u           /* trees a single row walks between two in-order sums */

typedef struct hp_lgbm {
    uint32_t objective, num_feature, num_class, num_trees;
    uint32_t flags;        /* HPL_F_* */
    uint32_t lflags;       /* MODEL_LF_* (the transform) */
    double param;          /* objective parameter (sigmoid) */
    const uint32_t *first; /* first[t]: index of tree t's root in nodes[] */
    const uint32_t *depth; /* depth[t]: longest root-to-leaf path of tree t */
    const hpl_node *nodes;
    const double *leaf;     /* leaf[i]: the value of leaf node i (same index as nodes[]) */
    const uint32_t *cats;   /* categorical sets, word for word as in the blob */
    const uint32_t *bnodes; /* HPL_F_BINNED: node i = {word bnodes[2i], absolute left bnodes[2i+1]}
                               (same indices as nodes[]) */
    uint32_t nslots;        /* HPL_F_BINNED: bin words per row */
    uint32_t nused;         /* HPL_F_BINNED: features some node splits on */
    const uint32_t *feat;   /* HPL_F_BINNED: nused used features, increasing */
    const uint32_t *toff;   /* HPL_F_BINNED: nused + 1 offsets into thr */
    const double *thr;      /* HPL_F_BINNED: distinct thresholds per used feature, increasing */
    const uint32_t *zbin;   /* HPL_F_BINNED: #{thr < 0.0} << 16 per used feature */
    const uint32_t *fslot;  /* HPL_F_BINNED: nused + 1: feature u's slots */
    const uint8_t *slot_k;  /* HPL_F_BINNED: slot -> kind */
    const uint32_t *order;  /* HPL_F_BINNED: per chunk of HPL_ROW_CHUNK trees, its trees by depth
                               (the single-row walk takes runs of 16 of about the same depth) */
    uint32_t why;           /* enum hpl_why: binned, or why not (hp_lgbm_describe) */
    size_t bytes;
} hp_lgbm;

/* Bytes hp_lgbm_build needs for v (a validated format-2 view).  Never fails. */
size_t hp_lgbm_bytes(const model_view *v);

/* Builds into dst[0..len) (8-byte aligned, len >= hp_lgbm_bytes(v)).  Returns the model (it lives
 * at dst and points only into dst), or NULL if len is too small or v is not format 2.  Never
 * allocates; thread-safe for distinct dst. */
const hp_lgbm *hp_lgbm_build(const model_view *v, void *dst, size_t len);

/* One line saying which layout m got and why ("lightgbm binned (...)" or "lightgbm plain (...):
 * not binned because of ..."), written into buf[0..len) (truncated, NUL-terminated); returns buf.
 * O(num_trees); thread-safe. */
const char *hp_lgbm_describe(const hp_lgbm *m, char *buf, size_t len);

/* Outputs per row: num_class for raw scores, multiclass and multiclassova; else 1. */
uint32_t hp_lgbm_outputs(const hp_lgbm *m, int output_margin);

/* Scores rows[0..nrows) (row-major nrows x num_feature doubles, NaN = missing) into out (nrows x
 * hp_lgbm_outputs(m, output_margin) doubles), bit-identical to refeval_lgbm_predict.  Never fails,
 * never allocates; thread-safe (m is read-only). */
void hp_lgbm_score(const hp_lgbm *m, const double *rows, size_t nrows, int output_margin,
                   double *out);

/* hp_lgbm_score split over a compute pool: when pool is non-NULL and nrows x num_trees >=
 * min_parallel_work, the rows are cut into parts scored by the pool's helpers and the calling
 * thread (each row's arithmetic is the same whichever part it lands in, so the outputs are
 * identical).  Never allocates; thread-safe. */
void hp_lgbm_score_pool(const hp_lgbm *m, const double *rows, size_t nrows, int output_margin,
                        double *out, hp_pool *pool, uint64_t min_parallel_work);

#endif
