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
 *   covers[num_nodes]   f32, only when flags has MODEL_F_COVERS: each node's cover (xgboost's
 *                       sum_hessian), in nodes[] order.  Scoring never reads it; TreeSHAP
 *                       (common/treeshap.h) needs it.  A blob without it scores exactly the same.
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
#define MODEL_FORMAT_LGBM 2u /* the LightGBM variant: see "Format 2" below */
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

/* LightGBM objectives (format 2 blobs only), named as LightGBM's model files name them.  Numbered
 * from 64 so that xgboost objectives can keep being appended below MODEL_OBJ_MAX.  Append only. */
enum model_lgbm_objective {
    MODEL_OBJ_LGBM_FIRST = 64,
    MODEL_OBJ_LGBM_BINARY = MODEL_OBJ_LGBM_FIRST, /* binary          1/(1+exp(-sigmoid*x)) */
    MODEL_OBJ_LGBM_REGRESSION,                    /* regression      identity (sqrt: sign*x*x) */
    MODEL_OBJ_LGBM_REGRESSION_L1,                 /* regression_l1   as regression */
    MODEL_OBJ_LGBM_HUBER,                         /* huber           as regression */
    MODEL_OBJ_LGBM_FAIR,                          /* fair            as regression */
    MODEL_OBJ_LGBM_QUANTILE,                      /* quantile        as regression */
    MODEL_OBJ_LGBM_MAPE,                          /* mape            as regression */
    MODEL_OBJ_LGBM_POISSON,                       /* poisson         exp */
    MODEL_OBJ_LGBM_GAMMA,                         /* gamma           exp */
    MODEL_OBJ_LGBM_TWEEDIE,                       /* tweedie         exp */
    MODEL_OBJ_LGBM_MULTICLASS,                    /* multiclass      softmax per row (double) */
    MODEL_OBJ_LGBM_MULTICLASSOVA,                 /* multiclassova   per-class sigmoid */
    MODEL_OBJ_LGBM_XENTROPY,                      /* cross_entropy   1/(1+exp(-x)) */
    MODEL_OBJ_LGBM_XENTLAMBDA,                    /* cross_entropy_lambda  log1p(exp(x)) */
    MODEL_OBJ_LGBM_LAMBDARANK,                    /* lambdarank      identity */
    MODEL_OBJ_LGBM_RANK_XENDCG,                   /* rank_xendcg     identity */
    MODEL_OBJ_LGBM_END
};

#define MODEL_F_DART 0x1u /* booster "dart": each tree's leaf is multiplied by its weight */
#define MODEL_F_COVERS                                                                             \
    0x2u /* format 1: the covers[num_nodes] section follows cats[] (explanations) */
/* Format 1: categorical sets are sorted lists, not bitsets (see the top).  Independent of
 * MODEL_F_COVERS: the covers section follows cats[] whatever their encoding. */
#define MODEL_F_CAT_LIST 0x4u
#define MODEL_F_ALL (MODEL_F_DART | MODEL_F_COVERS | MODEL_F_CAT_LIST)
#define MODEL_LF_SQRT 0x1u /* format 2, regression family: "regression sqrt" (sign(x) * x * x) */
#define MODEL_LF_ALL MODEL_LF_SQRT

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

/* ---- Format 2: the LightGBM variant
 * -------------------------------------------------------------- Same magic, format_version =
 * MODEL_FORMAT_LGBM, same section order and canonical breadth-first node order as format 1 (so the
 * same O(1)-memory validation), but: header    model_lgbm_header: the words at offsets 36..43 hold
 * a little-endian double, the objective's parameter (sigmoid for binary/multiclassova, else 0);
 * objective is a MODEL_OBJ_LGBM_*; flags are MODEL_LF_*; num_class = num_tree_per_iteration trees
 * model_tree_rec as format 1; group == tree index % num_class, weight == 1.0f (the init score is
 * baked into tree 0's leaves by LightGBM itself) nodes     model_lgbm_node, 24 bytes: threshold and
 * leaf as doubles (stored as two u32 words so a blob only needs 4-byte alignment; read them with
 * model_lgbm_value) cats      cats[off] = n (1 <= n), then n bitset words; a set bit sends the
 * category LEFT (LightGBM's rule, the opposite of format 1) A format-2 node decides as LightGBM's
 * Tree::NumericalDecision/CategoricalDecision on an input that first had |x| <= MODEL_LGBM_ZERO
 * replaced by 0.0 (the C API's sparse-zero drop); see refeval_lgbm_tree_leaf. */
#define MODEL_LGBM_FEATURE_MASK 0x0FFFFFFFu
#define MODEL_LGBM_MISSING_SHIFT 28u
#define MODEL_LGBM_MISSING_MASK 0x30000000u
#define MODEL_LGBM_MISSING_NONE 0u
#define MODEL_LGBM_MISSING_ZERO 1u
#define MODEL_LGBM_MISSING_NAN 2u
/* LightGBM's kZeroThreshold: 1e-35f widened to double. */
#define MODEL_LGBM_ZERO ((double)1e-35f)

typedef struct model_lgbm_header {
    uint32_t magic, format_version, objective, flags, num_feature, num_class, num_trees, num_nodes,
        num_cat_words;
    uint32_t param[2];    /* double: objective parameter (sigmoid), little-endian */
    uint32_t reserved[5]; /* zero */
} model_lgbm_header;

typedef struct model_lgbm_node {
    int32_t left;      /* canonical, as model_node_rec; -1 marks a leaf */
    int32_t right;     /* left + 1, or -1 for a leaf */
    uint32_t split;    /* feature | missing type << 28 | MODEL_NODE_DEFAULT_LEFT |
                          MODEL_NODE_CATEGORICAL; leaf: 0 */
    uint32_t cat;      /* categorical: word offset of its set in cats[]; else 0 */
    uint32_t value[2]; /* double: threshold (numerical; may be +-inf), or the leaf value */
} model_lgbm_node;

/* The double stored in two little-endian u32 words (4-byte aligned storage). */
static inline double model_lgbm_value(const uint32_t w[2])
{
    uint64_t b = (uint64_t)w[0] | (uint64_t)w[1] << 32;
    double d;
    __builtin_memcpy(&d, &b, sizeof d);
    return d;
}
static inline void model_lgbm_store(uint32_t w[2], double d)
{
    uint64_t b;
    __builtin_memcpy(&b, &d, sizeof b);
    w[0] = (uint32_t)b;
    w[1] = (uint32_t)(b >> 32);
}

/* A validated blob, read in place.  Pointers are into the caller's blob, which must outlive it. */
typedef struct model_view {
    const model_file_header *hdr;
    const model_tree_rec *trees;
    const model_node_rec *nodes;
    const uint32_t *cats;
    const float *covers; /* num_nodes node covers, or NULL without MODEL_F_COVERS */
    size_t blob_len;
    uint32_t format;               /* MODEL_FORMAT_VERSION or MODEL_FORMAT_LGBM */
    double lgbm_param;             /* format 2: the objective parameter (sigmoid) */
    const model_lgbm_node *lnodes; /* format 2: the nodes (nodes is NULL then) */
} model_view;

/* Format 1's categorical decision, 1 = the row goes left: xgboost 1.7's Decision (refeval.c names
 * each rule).  set = cats + u.cat of a validated format-1 blob, in either encoding (a bitset, or a
 * MODEL_F_CAT_LIST sorted list: the first word says which); x is not NaN.  An invalid category
 * (< 0, >= 2^24) or one not in the set goes left.  The one implementation for refeval.c,
 * treeshap.c and hotpath/hp_shap.c; hotpath/hp_forest.c keeps a branch-free copy of the same rule
 * (tested against refeval). */
static inline int model_cat_goes_left(const uint32_t *set, float x)
{
    if (x < 0.0f || x >= 16777216.0f)
        return 1;
    uint32_t c = (uint32_t)x;
    if (set[0] & MODEL_CAT_LIST_TAG) {
        /* binary search of set[1 .. n] for c */
        uint32_t lo = 1, hi = (set[0] & ~MODEL_CAT_LIST_TAG) + 1; /* [lo, hi) */
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (set[mid] == c)
                return 0;
            if (set[mid] < c)
                lo = mid + 1;
            else
                hi = mid;
        }
        return 1;
    }
    uint32_t n_words = set[0];
    if (c / 32u >= n_words)
        return 1;
    return !((set[1 + c / 32u] >> (c % 32u)) & 1u);
}

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

/* 1 if the objective's predictions are one value per class (multi:softprob, LightGBM multiclass
 * and multiclassova). */
int model_objective_multi_output(uint32_t objective);
/* 1 for a MODEL_OBJ_LGBM_* value (a format-2 model, scored in double). */
int model_objective_is_lgbm(uint32_t objective);

/* xgboost's (or LightGBM's) name of an objective ("binary:logistic", "binary"), or NULL for an
 * unknown value. */
const char *model_objective_name(uint32_t objective);
/* Returns the enum value for an xgboost or LightGBM objective name, or 0 if unsupported. */
uint32_t model_objective_from_name(const char *name);

#endif
