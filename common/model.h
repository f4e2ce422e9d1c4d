/* model.h - the compiled model format: what vigil-api produces from an XGBoost JSON model and
 * what vigil-hotpath (and the reference evaluator) run.
 *
 * Owns: the binary blob layout, its builder (API side), and its validator (both sides: the worker
 * trusts nothing that arrives over the socket).  A validated blob is read through model_view, which
 * points into the blob; nothing is copied.
 *
 * Blob layout (little-endian, every section 4-byte aligned, offsets relative to blob start):
 *   model_file_header  (MODEL_HEADER_SIZE bytes)
 *   trees[num_trees]   model_tree_rec   16 bytes each
 *   nodes[num_nodes]   model_node_rec   16 bytes each, trees' nodes contiguous, tree-local indices
 *   cats[num_cat_words] u32 words of category bitsets (bit c of a set = word c/32, bit c%32)
 *
 * Costs: model_validate O(size of blob) and it proves: sizes add up exactly, every tree's nodes form
 * a tree rooted at local node 0 (children in range, each non-root node reached exactly once, so no
 * cycles), split features < num_feature, groups < num_class, categorical ranges inside cats[],
 * objective known.  After model_validate succeeds, evaluation cannot read out of bounds or loop. */
#ifndef VIGIL_MODEL_H
#define VIGIL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define MODEL_MAGIC 0x4D4C4756u /* "VGLM" */
#define MODEL_FORMAT_VERSION 1u
#define MODEL_HEADER_SIZE 64u
#define MODEL_MAX_TREES (1u << 20)
#define MODEL_MAX_NODES (1u << 28)
#define MODEL_MAX_FEATURES (1u << 20)
#define MODEL_MAX_CLASSES 4096u

/* Objectives.  The numbering is part of the blob format: append only. */
enum model_objective {
    MODEL_OBJ_SQUAREDERROR = 1,   /* reg:squarederror            identity */
    MODEL_OBJ_SQUAREDLOGERROR,    /* reg:squaredlogerror         identity */
    MODEL_OBJ_PSEUDOHUBERERROR,   /* reg:pseudohubererror        identity */
    MODEL_OBJ_ABSOLUTEERROR,      /* reg:absoluteerror           identity */
    MODEL_OBJ_LOGISTIC,           /* reg:logistic                sigmoid */
    MODEL_OBJ_BINARY_LOGISTIC,    /* binary:logistic             sigmoid */
    MODEL_OBJ_BINARY_LOGITRAW,    /* binary:logitraw             identity */
    MODEL_OBJ_BINARY_HINGE,       /* binary:hinge                margin > 0 ? 1 : 0 */
    MODEL_OBJ_POISSON,            /* count:poisson               exp */
    MODEL_OBJ_GAMMA,              /* reg:gamma                   exp */
    MODEL_OBJ_TWEEDIE,            /* reg:tweedie                 exp */
    MODEL_OBJ_SOFTPROB,           /* multi:softprob              softmax per row */
    MODEL_OBJ_SOFTMAX,            /* multi:softmax               argmax (class index) */
    MODEL_OBJ_RANK_PAIRWISE,      /* rank:pairwise               identity */
    MODEL_OBJ_RANK_NDCG,          /* rank:ndcg                   identity */
    MODEL_OBJ_RANK_MAP,           /* rank:map                    identity */
    MODEL_OBJ_MAX
};

#define MODEL_F_DART 0x1u /* booster "dart": each tree's leaf is multiplied by its weight */

/* Node flags, packed with the split feature into model_node_rec.split. */
#define MODEL_NODE_FEATURE_MASK 0x3FFFFFFFu
#define MODEL_NODE_DEFAULT_LEFT 0x80000000u
#define MODEL_NODE_CATEGORICAL 0x40000000u

/* On-disk/wire records.  Fields are little-endian; on little-endian hosts (all we build for) the
 * structs alias the bytes directly, which model_validate checks at compile time. */
typedef struct model_file_header {
    uint32_t magic;          /* MODEL_MAGIC */
    uint32_t format_version; /* MODEL_FORMAT_VERSION */
    uint32_t objective;      /* enum model_objective */
    uint32_t flags;          /* MODEL_F_* */
    uint32_t num_feature;
    uint32_t num_class;      /* output groups: 1 unless multi:*, then >= 2 */
    uint32_t num_trees;
    uint32_t num_nodes;      /* total over all trees */
    uint32_t num_cat_words;
    float base_score;        /* as written by xgboost (probability space for logistic) */
    float base_margin;       /* what every output's margin starts at: base_score transformed */
    uint32_t reserved[5];    /* zero */
} model_file_header;

typedef struct model_tree_rec {
    uint32_t first_node; /* index of the tree's node 0 in nodes[] */
    uint32_t num_nodes;  /* >= 1 */
    uint32_t group;      /* output group (xgboost tree_info), < num_class */
    float weight;        /* 1.0f for gbtree; weight_drop[i] for dart */
} model_tree_rec;

typedef struct model_node_rec {
    int32_t left;   /* tree-local index of the left child; -1 marks a leaf */
    int32_t right;  /* tree-local index of the right child; -1 for a leaf */
    uint32_t split; /* feature index | MODEL_NODE_DEFAULT_LEFT | MODEL_NODE_CATEGORICAL */
    union {
        float threshold; /* numeric split: x goes left iff x < threshold */
        float leaf;      /* leaf value */
        uint32_t cat;    /* categorical split: word offset of its set in cats[], see below */
    } u;
} model_node_rec;

/* Categorical nodes: u.cat holds the offset (in words) of the node's bitset in cats[]; the word
 * count sits in the first word at that offset (so a set is  [n_words][n_words bitset words]).
 * A category value c (a float) goes: missing -> default child; c in set -> right; otherwise as
 * xgboost 1.7.4 decides (see refeval.c for the exact rule and its source). */

/* A validated blob, read in place.  Pointers are into the caller's blob, which must outlive it. */
typedef struct model_view {
    const model_file_header *hdr;
    const model_tree_rec *trees;
    const model_node_rec *nodes;
    const uint32_t *cats;
    size_t blob_len;
} model_view;

/* Validates blob[0..len) as described at the top of this file and fills *v.  blob must be 4-byte
 * aligned.  Returns 0, or -1 with a one-line reason in err.  Never allocates, never reads outside
 * [blob, blob+len), runs in O(len) with O(1) extra memory besides the scratch the caller gives:
 * scratch must hold one byte per node of the largest tree (pass scratch_len = 0 to let validate
 * use a slower O(1)-memory check).  Thread-safe. */
int model_validate(const void *blob, size_t len, uint8_t *scratch, size_t scratch_len,
                   model_view *v, char *err, size_t errlen);

/* Number of float outputs per row for this model's predictions (num_class for softprob, 1
 * otherwise), and for margins (num_class). */
uint32_t model_outputs_per_row(const model_view *v, int output_margin);

const char *model_objective_name(uint32_t objective);
/* Returns the enum value for an xgboost objective name, or 0 if unsupported. */
uint32_t model_objective_from_name(const char *name);

#endif
