/* hp_shap.h - the worker's explainer: the explain layout built at LOAD_MODEL (into the model
 * store's explain arena, hp_store.h) and the tuned TreeSHAP walk over it, bit-identical to
 * common/treeshap.c (the reference, itself bit-identical to xgboost 1.7.4's pred_contribs).
 *
 * Layout: a header (the model_view of the blob copy, the per-call scratch need), the validated
 * blob copied (nodes, cats, covers), each node's mean value (FillNodeMeanValues, computed once
 * here instead of once per request) and each internal node's two child cover fractions
 * (covers[child] / covers[node], the same float division the reference does per visit) and
 * its subtree's leaf count (the level-order walk's depth-first ranks).
 *
 * hp_shap_layout is an hp_scorer so that an hp_arena can hold it (bytes/build/release; its score
 * is refeval_predict on the copy).  It is not in hp_scorers.def: it never answers SCORE.
 *
 * Costs: bytes O(nodes) (16 per node beside the blob); build O(blob); explain per row and tree
 * O(leaves x depth^2) arithmetic like the reference, without the reference's O(nodes) mean values
 * per call, per-tree zeroing of num_feature+1 accumulators and per-visit divisions; scratch
 * ~18 KiB plus, for the level-order walk, ~500 bytes per node of the largest tree it takes
 * (~240 KiB for 483-node trees, ~1 MiB at HP_SHAP_BFS_NODES).  Never allocates. */
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

/* hp_shap_explain with a choice of walks, for the tests that check every walk against the
 * reference (each falls back to the portable walk where its ISA or tree shape rules it out):
 *   0  the portable walk only;
 *   1  what hp_shap_explain does: level order for trees of HP_SHAP_LEVEL_MIN_NODES to
 *      HP_SHAP_BFS_NODES nodes (AVX-512 when the CPU has it, dense phi up to 256 features),
 *      depth-first AVX2 for the others, when the CPU has AVX2 and every tree is <= 15 deep;
 *   2  depth-first AVX2 for every tree;
 *   3  level order for every tree that fits, AVX2 arithmetic and feature stamps (the paths 1
 *      takes on other CPUs and wider models).
 * Same contract as hp_shap_explain. */
void hp_shap_explain_isa(const void *layout, const float *rows, size_t nrows, float *contribs,
                         float *margins, void *scratch, int allow_vec);

#endif
