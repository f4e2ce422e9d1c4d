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

/* ---- format 2: LightGBM trees ------------------------------------------------------------------
 * One tree as LightGBM's text model describes it (tree.cpp): internal nodes 0..num_leaves-2, a
 * child c < 0 is leaf ~c.  Arrays stay owned by the caller. */
typedef struct model_lgbm_src_tree {
    uint32_t num_leaves;          /* >= 1; a single-leaf tree has no internal arrays */
    const int32_t *split_feature; /* num_leaves - 1 entries each, from here ... */
    const double *threshold;      /* categorical: the index into cat_boundaries */
    const int32_t *decision_type; /* bit0 categorical, bit1 default_left, bits 2-3 missing type */
    const int32_t *left_child;
    const int32_t *right_child;    /* ... to here */
    const double *leaf_value;      /* num_leaves */
    uint32_t num_cat;              /* 0: every node decides numerically (as LightGBM's GetLeaf) */
    const int32_t *cat_boundaries; /* num_cat + 1, non-decreasing, from 0 to n_cat_threshold */
    const uint32_t *cat_threshold; /* n_cat_threshold bitset words */
    uint32_t n_cat_threshold;
} model_lgbm_src_tree;

/* Starts a format-2 model: objective MODEL_OBJ_LGBM_*, flags MODEL_LF_*, param the objective's
 * parameter (sigmoid; 0 when it has none), num_class = num_tree_per_iteration.  NULL on OOM.
 * Free with model_builder_free; emit with model_build. */
model_builder *model_lgbm_builder_new(uint32_t objective, uint32_t flags, double param,
                                      uint32_t num_feature, uint32_t num_class);

/* Appends one LightGBM tree (its class is the tree index % num_class).  Checks every reference:
 * children in range and each node reached once, features < num_feature, missing type <= 2,
 * categorical indices < num_cat, boundaries in range.  Unreachable nodes are dropped.  Returns 0,
 * or -1 with a reason in err (the builder is unchanged). */
int model_lgbm_builder_add_tree(model_builder *b, const model_lgbm_src_tree *t, char *err,
                                size_t errlen);

#endif
