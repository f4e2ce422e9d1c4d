/* hp_shap.h - the worker's explainer: the explain layout built at LOAD_MODEL (into the model
 * store's explain arena, hp_store.h) and the tuned TreeSHAP walk over it, bit-identical to
 * common/treeshap.c (the reference, itself bit-identical to xgboost 1.7.4's pred_contribs).
 *
 * Layout: a header (the model_view of the blob copy, the per-call scratch need), the validated
 * blob copied (nodes, cats, covers), each node's mean value (FillNodeMeanValues, computed once
 * here instead of once per request) and each internal node's two child cover fractions
 * (covers[child] / covers[node], the same float division the reference does per visit).
 *
 * hp_shap_layout is an hp_scorer so that an hp_arena can hold it (bytes/build/release; its score
 * is refeval_predict on the copy).  It is not in hp_scorers.def: it never answers SCORE.
 *
 * Costs: bytes O(nodes) (depths); build O(blob); explain per row and tree O(leaves x depth^2)
 * arithmetic like the reference, without the reference's O(nodes) mean values per call, per-tree
 * zeroing of num_feature+1 accumulators and per-visit divisions.  Never allocates. */
#ifndef VIGIL_HP_SHAP_H
#define VIGIL_HP_SHAP_H

#include <stddef.h>
#include <stdint.h>

#include "hp_scorer.h"
#include "model.h"

extern const hp_scorer hp_shap_layout;

/* Scratch bytes hp_shap_explain needs for a layout.  Any thread. */
size_t hp_shap_scratch_bytes(const void *layout);

/* The validated view of the layout's blob copy (num_feature, num_class...).  Any thread. */
const model_view *hp_shap_view(const void *layout);

/* Explains nrows rows (row-major x num_feature, NaN = missing) into contribs (nrows x num_class x
 * (num_feature + 1), treeshap_explain's layout) and margins (nrows x num_class), bit-identical to
 * treeshap_explain on the source blob.  scratch: hp_shap_scratch_bytes(layout) bytes, 8-byte
 * aligned.  Never fails, never allocates; thread-safe (the layout is read-only). */
void hp_shap_explain(const void *layout, const float *rows, size_t nrows, float *contribs,
                     float *margins, void *scratch);

/* hp_shap_explain with the AVX2 walk allowed (allow_vec 1, what hp_shap_explain does: used when
 * the CPU has AVX2 and every tree is at most 15 deep) or not (0: the portable walk, for the tests
 * that check both against the reference).  Same contract as hp_shap_explain. */
void hp_shap_explain_isa(const void *layout, const float *rows, size_t nrows, float *contribs,
                         float *margins, void *scratch, int allow_vec);

#endif
