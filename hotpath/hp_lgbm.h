/* hp_lgbm.h - the worker's layout of a LightGBM model (format 2 blob, common/model.h) and its
 * tree walk, bit-identical to common/refeval.c's refeval_lgbm_predict.
 *
 * Owns: the layout (one contiguous block the caller provides, e.g. a piece of the model arena),
 * its size, its build from a validated view, and scoring rows of doubles into doubles.
 *
 * Layout: 16-byte nodes {double v, u32 ff, u32 left} per tree in the blob's canonical order
 * (children of an internal node at left and left + 1).  v is the threshold, the leaf value
 * (HPL_LEAF), or the categorical set's word offset (HPL_CAT).  ff packs the feature with the
 * decision precomputed from LightGBM's rules: HPL_NANLEFT is where a NaN goes (missing None: NaN
 * becomes 0.0, so 0.0 <= threshold; NaN or Zero type: default_left), HPL_ZERO marks a
 * missing-Zero node (a zero input takes the default side, HPL_DEFLEFT).  So a numerical node
 * without HPL_ZERO decides `x <= v || (isnan(x) && nanleft)` with no branch on the missing type.
 * Rows are walked in blocks of HPL_BLOCK through one tree at a time (the tree stays in cache),
 * HPL_LANES rows interleaved so that their dependent node loads overlap; per row, leaves are added
 * in tree order into double accumulators starting at 0.0, exactly as LightGBM's PredictRaw.
 *
 * Costs: hp_lgbm_bytes O(1) + sizes; hp_lgbm_build O(nodes); scoring O(rows x sum of path
 * lengths).  Nothing here allocates; scoring uses a stack block of HPL_BLOCK x num_class doubles
 * (at most HPL_ACC_MAX). */
#ifndef VIGIL_HP_LGBM_H
#define VIGIL_HP_LGBM_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define HPL_FEATURE_MASK 0x00FFFFFFu
#define HPL_LEAF 0x08000000u
#define HPL_DEFLEFT 0x10000000u
#define HPL_ZERO 0x20000000u
#define HPL_CAT 0x40000000u
#define HPL_NANLEFT 0x80000000u
#define HPL_BLOCK 64
#define HPL_LANES 8
#define HPL_ACC_MAX 4096 /* doubles of accumulators on the stack (32 KiB) */

typedef struct hpl_node {
    double v;
    uint32_t ff;
    uint32_t left;
} hpl_node;

#define HPL_F_SLOW 0x1u /* some node is categorical or missing-Zero: the general decision */

typedef struct hp_lgbm {
    uint32_t objective, num_feature, num_class, num_trees;
    uint32_t flags;  /* HPL_F_* */
    uint32_t lflags; /* MODEL_LF_* (the transform) */
    double param;    /* objective parameter (sigmoid) */
    const uint32_t *first; /* first[t]: index of tree t's root in nodes[] */
    const hpl_node *nodes;
    const uint32_t *cats; /* categorical sets, word for word as in the blob */
    size_t bytes;
} hp_lgbm;

/* Bytes hp_lgbm_build needs for v (a validated format-2 view).  Never fails. */
size_t hp_lgbm_bytes(const model_view *v);

/* Builds into dst[0..len) (8-byte aligned, len >= hp_lgbm_bytes(v)).  Returns the model (it lives
 * at dst and points only into dst), or NULL if len is too small or v is not format 2.  Never
 * allocates; thread-safe for distinct dst. */
const hp_lgbm *hp_lgbm_build(const model_view *v, void *dst, size_t len);

/* Outputs per row: num_class for raw scores, multiclass and multiclassova; else 1. */
uint32_t hp_lgbm_outputs(const hp_lgbm *m, int output_margin);

/* Scores rows[0..nrows) (row-major nrows x num_feature doubles, NaN = missing) into out (nrows x
 * hp_lgbm_outputs(m, output_margin) doubles), bit-identical to refeval_lgbm_predict.  Never fails,
 * never allocates; thread-safe (m is read-only). */
void hp_lgbm_score(const hp_lgbm *m, const double *rows, size_t nrows, int output_margin,
                   double *out);

#endif
