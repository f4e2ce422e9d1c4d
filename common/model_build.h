/* model_build.h - the builder of the compiled model format (format: common/model.h).
 * API side only (allocates); compilers of model files (xgbmodel.c) drive it. */
#ifndef VIGIL_MODEL_BUILD_H
#define VIGIL_MODEL_BUILD_H

#include "model.h"

/* ---- builder (API side) -----------------------------------------------------------------------
 * Collects trees in xgboost's own shape (arbitrary node numbering, possibly unreachable "deleted"
 * nodes, categories as a list) and emits a canonical blob.  Allocates; not for the worker. */

/* One node as xgboost describes it. */
typedef struct model_src_node {
    int32_t left, right; /* children; left == -1 marks a leaf (right is then ignored) */
    uint32_t feature;    /* split feature (internal nodes) */
    int default_left;    /* missing value goes left */
    int categorical;     /* split_type 1 */
    float value;         /* threshold, or the leaf value */
    const int64_t *cats; /* categorical: categories going right (any order, duplicates ok) */
    uint32_t n_cats;     /* >= 1 for a categorical node */
    float cover;         /* xgboost's sum_hessian; kept only when the builder has MODEL_F_COVERS */
} model_src_node;

typedef struct model_builder model_builder;

/* Starts a model.  flags may include MODEL_F_COVERS: the blob then carries every node's cover
 * (model_src_node.cover) for explanations.  Returns NULL on OOM.  The caller frees with
 * model_builder_free. */
model_builder *model_builder_new(uint32_t objective, uint32_t flags, uint32_t num_feature,
                                 uint32_t num_class, float base_score, float base_margin);

/* Appends one tree (trees are evaluated in the order they are added).  Walks from node 0: every
 * reachable node must be reached exactly once (no cycles, no shared children), children in
 * [0, n), features < num_feature, categories in [0, 2^24).  Unreachable nodes are dropped.
 * Returns 0, or -1 with a reason in err (the builder is unchanged; OOM is reported the same way).
 * nodes stays owned by the caller. */
int model_builder_add_tree(model_builder *b, uint32_t group, float weight,
                           const model_src_node *nodes, uint32_t n, char *err, size_t errlen);

/* Emits the blob: *blob_out is malloc'd (caller frees with free()), *len_out its size.  The blob
 * is run through model_validate before it is returned.  Returns 0, or -1 with a reason in err
 * (*blob_out NULL).  The builder may be freed or reused afterwards. */
int model_build(model_builder *b, void **blob_out, size_t *len_out, char *err, size_t errlen);

/* Drops MODEL_F_COVERS (a compiler that finds a tree without covers): the blob scores the same
 * but cannot be explained. */
void model_builder_drop_covers(model_builder *b);

void model_builder_free(model_builder *b);

#endif
