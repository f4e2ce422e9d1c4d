/* treeshap.h - the reference explainer: exact path-dependent TreeSHAP of a validated model_view,
 * following xgboost 1.7.4's Booster.predict(pred_contribs=True) operation by operation, in float32,
 * so that its outputs are xgboost's bit for bit.  Plain and obviously correct: it is the yardstick
 * the worker's tuned explainer (hotpath/hp_shap.c) is tested against, and the in-process
 * (VIGIL_HOTPATH_MODE=inprocess) explainer of the API.
 *
 * What it mirrors (xgboost 1.7.4): src/predictor/cpu_predictor.cc PredictContribution (per row,
 * per group, trees in id order; each tree's contributions into a zeroed buffer, scaled by the dart
 * weight and added; the base margin added to the bias column last), src/tree/tree_model.cc
 * (FillNodeMeanValues, CalculateContributions, TreeShap, ExtendPath, UnwindPath, UnwoundPathSum),
 * src/predictor/predict_fn.h GetNextNode (missing -> default child, categorical Decision, x < t).
 *
 * Needs the covers section (MODEL_F_COVERS: xgboost's sum_hessian per node).  Trees deeper than
 * TREESHAP_MAX_DEPTH are refused (the path scratch grows with depth squared).
 *
 * Costs: per row and tree O(leaves x depth^2) (TreeSHAP), plus O(nodes) per tree per call for the
 * node mean values; no allocation: the caller hands scratch of treeshap_scratch_bytes(m). */
#ifndef VIGIL_TREESHAP_H
#define VIGIL_TREESHAP_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define TREESHAP_MAX_DEPTH 128u /* deepest tree explained (root = depth 0) */

/* One element of TreeSHAP's unique path (xgboost's PathElement): the feature split on, the
 * fractions of the zero (feature absent) and one (feature present) paths, and the permutation
 * weight.  Exposed for the worker's explainer, which runs the same path arithmetic. */
typedef struct treeshap_elem {
    int32_t feature; /* -1 for the root's element */
    float zero, one, pweight;
} treeshap_elem;

/* Depth of tree t (a lone leaf: 0), from the canonical breadth-first order in O(nodes) time and
 * O(1) memory (depth never decreases with the node index). */
uint32_t treeshap_tree_depth(const model_view *m, uint32_t t);

/* Path elements TreeSHAP needs for trees of depth <= d: (d+2)(d+3)/2, xgboost's sizing. */
size_t treeshap_path_elems(uint32_t d);

/* Scratch bytes treeshap_explain needs for m, or 0 when m cannot be explained (no covers, or a
 * tree deeper than TREESHAP_MAX_DEPTH).  O(nodes), thread-safe, never allocates. */
size_t treeshap_scratch_bytes(const model_view *m);

/* The path arithmetic itself (treeshap_extend, treeshap_unwind, treeshap_unwound_sum) is in
 * treeshap_path.h, static inline, shared with the worker's explainer. */

/* Categorical rule of refeval.c (xgboost's Decision): 1 = the row goes left.  x is not NaN. */
int treeshap_cat_left(const uint32_t *set, float x);

/* Explains nrows rows of m.  rows: row-major nrows x num_feature float32, NaN = missing.
 * contribs receives nrows x num_class x (num_feature + 1) floats: per row, per group, the
 * features' SHAP values then the bias (xgboost's pred_contribs layout).  margins (may be NULL)
 * receives nrows x num_class raw margins, bit-identical to refeval_predict(output_margin=1).
 * scratch: treeshap_scratch_bytes(m) bytes (non-zero), 4-byte aligned, contents undefined.
 * Never fails, never allocates, thread-safe (scratch is the caller's). */
void treeshap_explain(const model_view *m, const float *rows, size_t nrows, float *contribs,
                      float *margins, void *scratch);

#endif
