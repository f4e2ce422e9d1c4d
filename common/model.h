/* model.h - the compiled model format: what vigil-api produces from an XGBoost JSON model and
 * what vigil-hotpath (and the reference evaluator) run.
 *
 * Owns: the binary blob layout and its validator (both sides:
 * the worker trusts nothing that arrives over the socket; never allocates); the builder is
 * model_build.h (API side; allocates).  A validated blob is
 * read through model_view, which points into the blob; nothing is copied.
 *
 * Blob layout, format version 1 (little-endian, every section 4-byte aligned, offsets relative to
 * the blob start; the total length is exactly the sum of the sections):
 *   model_file_header   MODEL_HEADER_SIZE (64) bytes
 *   trees[num_trees]    model_tree_rec   16 bytes each, in xgboost tree-id order
 *   nodes[num_nodes]    model_node_rec   16 bytes each, trees' nodes contiguous, tree-local indices
 *   cats[num_cat_words] u32 words holding the categorical splits' sets
 *
 * Canonical node order (what makes validation O(1) in memory): inside a tree, nodes are numbered in
 * breadth-first order from the root, so the k-th internal node (k = 0, 1, ... in index order) has
 * left = 2k+1 and right = 2k+2 = left+1.  A leaf has left = right = -1, split = 0.  Every tree that
 * xgboost can write maps to this order (the builder renumbers and drops unreachable nodes).  It
 * implies: each non-root node has exactly one parent, children have larger indices than their
 * parent (so a walk always terminates after < num_nodes steps), and `right == left + 1`, so an
 * evaluator may compute the next node as `left + !go_left`.
 *
 * Categorical split: u.cat is the word offset in cats[] of the node's set.  The set holds the
 * categories that go RIGHT (xgboost 1.7 semantics; its JSON "categories" lists exactly these); a
 * category not in the set, or not a valid category at all, goes left (refeval.c has the rule).
 * Sets come in one of two encodings, chosen for the whole blob by the header flag
 * MODEL_F_CAT_LIST:
 *   - flag clear (the original format 1): a bitset sized by the largest category,
 *       cats[u.cat] = n (number of bitset words, 1 <= n <= MODEL_MAX_CAT_SET_WORDS)
 *       cats[u.cat + 1 .. u.cat + n]  category c is in the set iff bit (c % 32) of word c / 32
 *     n = max category / 32 + 1, xgboost's own sizing (src/tree/tree_model.cc
 *     LoadCategoricalSplit).  Costs (max category / 32 + 2) words per set whatever its size.
 *   - flag set (MODEL_F_CAT_LIST, additive: a blob without it reads exactly as before): a sorted
 *     list,
 *       cats[u.cat] = MODEL_CAT_LIST_TAG | n  (n categories, 1 <= n <= MODEL_MAX_CAT_LIST)
 *       cats[u.cat + 1 .. u.cat + n]  the categories, strictly increasing, each < 2^24
 *     and cats[] is exactly the concatenation of such sets, so that a word carrying
 *     MODEL_CAT_LIST_TAG is a set's first word and nothing else.  Costs (n + 1) words per set:
 *     proportional to the categories the model file lists.  Membership is a binary search.
 *   The builder (model_build.c) writes the list encoding when it is smaller in total than the
 *   bitsets, the bitsets otherwise, so a model whose sets are dense keeps the original bytes.
 *   Either way a set means the same thing: category c goes right iff it is in the set.
 *
 * Costs: model_validate O(len), O(1) memory.  It proves: sizes add up exactly, header fields in
 * range, trees contiguous and in order, canonical node order, split features < num_feature,
 * groups < num_class, categorical sets inside cats[] (lists: cats[] parses as a sequence of
 * sorted sets, each node points at one's first word), base_margin and tree weights finite,
 * objective known.  After model_validate succeeds, evaluation cannot read out of bounds or loop. */
#ifndef VIGIL_MODEL_H
#define VIGIL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define MODEL_MAGIC 0x4D4C4756u /* "VGLM" read as little-endian bytes */
#define MODEL_FORMAT_VERSION 1u
#define MODEL_HEADER_SIZE 64u
#define MODEL_MAX_TREES (1u << 20)
#define MODEL_MAX_NODES (1u << 26)      /* total, all trees */
#define MODEL_MAX_TREE_NODES (1u << 24) /* one tree */
#define MODEL_MAX_FEATURES (1u << 20)
#define MODEL_MAX_CLASSES 4096u
#define MODEL_MAX_CAT_WORDS (1u << 24)      /* total words in cats[] (64 MiB) */
#define MODEL_MAX_CAT_SET_WORDS (1u << 19)  /* one set: categories < 2^24, xgboost's own limit */
#define MODEL_MAX_CATEGORY ((1u << 24) - 1) /* largest valid category */
#define MODEL_MAX_CAT_LIST (1u << 24)       /* one list set: every valid category once */
#define MODEL_CAT_LIST_TAG 0x80000000u      /* first word of a list set (MODEL_F_CAT_LIST) */

/* Objectives.  The numbering is part of the blob format: append only. */
enum model_objective {
    MODEL_OBJ_SQUAREDERROR = 1, /* reg:squarederror            identity */
    MODEL_OBJ_SQUAREDLOGERROR,  /* reg:squaredlogerror         identity */
    MODEL_OBJ_PSEUDOHUBERERROR, /* reg:pseudohubererror        identity */
    MODEL_OBJ_ABSOLUTEERROR,    /* reg:absoluteerror           identity */
    MODEL_OBJ_LOGISTIC,         /* reg:logistic                sigmoid */
    MODEL_OBJ_BINARY_LOGISTIC,  /* binary:logistic             sigmoid */
    MODEL_OBJ_BINARY_LOGITRAW,  /* binary:logitraw             identity */
    MODEL_OBJ_BINARY_HINGE,     /* binary:hinge                margin > 0 ? 1 : 0 */
    MODEL_OBJ_POISSON,          /* count:poisson               exp */
    MODEL_OBJ_GAMMA,            /* reg:gamma                   exp */
    MODEL_OBJ_TWEEDIE,          /* reg:tweedie                 exp */
    MODEL_OBJ_SOFTPROB,         /* multi:softprob              softmax per row */
    MODEL_OBJ_SOFTMAX,          /* multi:softmax               argmax (class index as float) */
    MODEL_OBJ_RANK_PAIRWISE,    /* rank:pairwise               identity */
    MODEL_OBJ_RANK_NDCG,        /* rank:ndcg                   identity */
    MODEL_OBJ_RANK_MAP,         /* rank:map                    identity */
    MODEL_OBJ_MAX
};

#define MODEL_F_DART 0x1u /* booster "dart": each tree's leaf is multiplied by its weight */
/* Categorical sets are sorted lists, not bitsets (see the top).  0x4, not 0x2, leaves the next
 * bit to the other additive format change being made at the same time (TreeSHAP covers). */
#define MODEL_F_CAT_LIST 0x4u
#define MODEL_F_ALL (MODEL_F_DART | MODEL_F_CAT_LIST)

/* Node flags, packed with the split feature into model_node_rec.split. */
#define MODEL_NODE_FEATURE_MASK 0x3FFFFFFFu
#define MODEL_NODE_DEFAULT_LEFT 0x80000000u
#define MODEL_NODE_CATEGORICAL 0x40000000u

/* On-disk/wire records.  Fields are little-endian; on little-endian hosts (all we build for) the
 * structs alias the bytes directly, which model.c checks at compile time. */
typedef struct model_file_header {
    uint32_t magic;          /* MODEL_MAGIC */
    uint32_t format_version; /* MODEL_FORMAT_VERSION */
    uint32_t objective;      /* enum model_objective */
    uint32_t flags;          /* MODEL_F_* */
    uint32_t num_feature;    /* 1..MODEL_MAX_FEATURES */
    uint32_t num_class;      /* output groups, 1..MODEL_MAX_CLASSES: the classes of multi:*, else
                                the targets (1, or xgboost's num_target of a multi-target model,
                                each target transformed by the objective on its own) */
    uint32_t num_trees;      /* 0..MODEL_MAX_TREES */
    uint32_t num_nodes;      /* total over all trees */
    uint32_t num_cat_words;
    float base_score;     /* as written by xgboost (probability space for logistic) */
    float base_margin;    /* every output's margin starts here: ProbToMargin(base_score) */
    uint32_t reserved[5]; /* zero */
} model_file_header;

typedef struct model_tree_rec {
    uint32_t first_node; /* index of the tree's node 0 in nodes[]: sum of the previous num_nodes */
    uint32_t num_nodes;  /* 1..MODEL_MAX_TREE_NODES */
    uint32_t group;      /* output group (xgboost tree_info), < num_class */
    float weight;        /* 1.0f for gbtree; weight_drop[i] for dart; finite */
} model_tree_rec;

typedef struct model_node_rec {
    int32_t left;   /* tree-local index of the left child; -1 marks a leaf */
    int32_t right;  /* left + 1 for an internal node; -1 for a leaf */
    uint32_t split; /* feature index | MODEL_NODE_DEFAULT_LEFT | MODEL_NODE_CATEGORICAL; leaf: 0 */
    union {
        float threshold; /* numeric split: x goes left iff x < threshold */
        float leaf;      /* leaf value */
        uint32_t cat;    /* categorical split: word offset of its set in cats[] (see top) */
    } u;
} model_node_rec;

/* A validated blob, read in place.  Pointers are into the caller's blob, which must outlive it. */
typedef struct model_view {
    const model_file_header *hdr;
    const model_tree_rec *trees;
    const model_node_rec *nodes;
    const uint32_t *cats;
    size_t blob_len;
} model_view;

/* Validates blob[0..len) as described at the top of this file and fills *v.  blob must be 4-byte
 * aligned (an unaligned blob is rejected, not read).  Returns 0, or -1 with a one-line reason in
 * err (v is then zeroed).  Never allocates, never reads outside [blob, blob+len), O(len) time,
 * O(1) memory.  scratch/scratch_len are unused since format 1's canonical node order made them
 * unnecessary; pass NULL, 0.  Thread-safe. */
int model_validate(const void *blob, size_t len, uint8_t *scratch, size_t scratch_len,
                   model_view *v, char *err, size_t errlen);

/* Number of float outputs per row: num_class, except predictions of multi:softmax (1, the class
 * index).  model_outputs is the same rule on plain values (the API and the worker use it). */
uint32_t model_outputs_per_row(const model_view *v, int output_margin);
uint32_t model_outputs(uint32_t objective, uint32_t num_class, int output_margin);

/* xgboost's name of an objective ("binary:logistic"), or NULL for an unknown value. */
const char *model_objective_name(uint32_t objective);
/* Returns the enum value for an xgboost objective name, or 0 if unsupported. */
uint32_t model_objective_from_name(const char *name);

#endif
