/* refeval.h - the reference evaluator: plain, obviously-correct scoring of a validated model_view,
 * following xgboost 1.7.4's CPU predictor rule by rule.  It is the yardstick the fast worker path
 * is tested against, and itself is tested bit-for-bit against xgboost's own predictions.
 *
 * Costs: O(rows x sum of tree depths); no allocation (a MODEL_MAX_CLASSES-float stack array). */
#ifndef VIGIL_REFEVAL_H
#define VIGIL_REFEVAL_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* Scores nrows rows.  m must have passed model_validate.  rows is row-major nrows x num_feature
 * float32 with NaN meaning "missing".  out receives nrows x model_outputs_per_row(m, output_margin)
 * floats: the raw margins (num_class per row) when output_margin, else the objective's transform.
 * Never fails, never allocates, thread-safe. */
void refeval_predict(const model_view *m, const float *rows, size_t nrows, int output_margin,
                     float *out);

/* The objective's output transform of one row: margin[0..k) (k = num_class) -> out[0..
 * model_outputs_per_row(m, 0)); out may be margin itself (in place).  Exposed so that a faster tree
 * walk (hotpath/hp_forest.c) shares the exact transform, bit for bit.  Never fails, thread-safe. */
void refeval_transform(uint32_t objective, const float *margin, uint32_t k, float *out);

/* Leaf value of one tree for one row (tree-local walk), exposed for tests. */
float refeval_tree_leaf(const model_view *m, uint32_t tree, const float *row);

/* ---- format 2 (LightGBM), in double -------------------------------------------------------------
 * Mirrors LightGBM 4.6's prediction through its C API rule by rule (see refeval.c).  m must be a
 * validated format-2 view.  rows: nrows x num_feature doubles, NaN = missing.  out: nrows x
 * model_outputs_per_row(m, output_margin) doubles: raw scores, or ConvertOutput of them.  Never
 * fails, never allocates (a MODEL_MAX_CLASSES-double stack array), thread-safe. */
void refeval_lgbm_predict(const model_view *m, const double *rows, size_t nrows, int output_margin,
                          double *out);

/* The objective's ConvertOutput of one row's raw scores raw[0..num_class) into out (may alias). */
void refeval_lgbm_transform(const model_view *m, const double *raw, double *out);

/* Leaf value of one format-2 tree for one row (values as given: the zero drop happens inside). */
double refeval_lgbm_tree_leaf(const model_view *m, uint32_t tree, const double *row);

/* The C API's input rule: |v| <= kZeroThreshold becomes 0.0 (NaN stays NaN). */
static inline double refeval_lgbm_input(double v)
{
    return v >= -MODEL_LGBM_ZERO && v <= MODEL_LGBM_ZERO ? 0.0 : v;
}

#endif
