/* model.c - the compiled model format: validator (no allocation) and names.  The builder, which
 * allocates, is model_build.c (API side only).
 *
 * Costs: model_validate O(blob length) time, O(1) memory. */
#include "errbuf.h"
#include "model.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(model_file_header) == MODEL_HEADER_SIZE, "header size");
_Static_assert(sizeof(model_tree_rec) == 16, "tree record size");
_Static_assert(sizeof(model_node_rec) == 16, "node record size");
_Static_assert(sizeof(model_lgbm_header) == MODEL_HEADER_SIZE, "lgbm header size");
_Static_assert(sizeof(model_lgbm_node) == 24, "lgbm node record size");
_Static_assert(offsetof(model_lgbm_header, num_cat_words) ==
                   offsetof(model_file_header, num_cat_words),
               "format 2 shares format 1's header prefix");
_Static_assert(sizeof(float) == 4 && sizeof(uint32_t) == 4, "32-bit float");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the blob layout aliases little-endian records: big-endian hosts are not supported"
#endif

static const char *const obj_names[MODEL_OBJ_MAX] = {
    [MODEL_OBJ_SQUAREDERROR] = "reg:squarederror",
    [MODEL_OBJ_SQUAREDLOGERROR] = "reg:squaredlogerror",
    [MODEL_OBJ_PSEUDOHUBERERROR] = "reg:pseudohubererror",
    [MODEL_OBJ_ABSOLUTEERROR] = "reg:absoluteerror",
    [MODEL_OBJ_LOGISTIC] = "reg:logistic",
    [MODEL_OBJ_BINARY_LOGISTIC] = "binary:logistic",
    [MODEL_OBJ_BINARY_LOGITRAW] = "binary:logitraw",
    [MODEL_OBJ_BINARY_HINGE] = "binary:hinge",
    [MODEL_OBJ_POISSON] = "count:poisson",
    [MODEL_OBJ_GAMMA] = "reg:gamma",
    [MODEL_OBJ_TWEEDIE] = "reg:tweedie",
    [MODEL_OBJ_SOFTPROB] = "multi:softprob",
    [MODEL_OBJ_SOFTMAX] = "multi:softmax",
    [MODEL_OBJ_RANK_PAIRWISE] = "rank:pairwise",
    [MODEL_OBJ_RANK_NDCG] = "rank:ndcg",
    [MODEL_OBJ_RANK_MAP] = "rank:map",
};

/* LightGBM's names (ObjectiveFunction::GetName), as the first word of a model's objective= line. */
static const char *const lgbm_obj_names[MODEL_OBJ_LGBM_END - MODEL_OBJ_LGBM_FIRST] = {
    [MODEL_OBJ_LGBM_BINARY - MODEL_OBJ_LGBM_FIRST] = "binary",
    [MODEL_OBJ_LGBM_REGRESSION - MODEL_OBJ_LGBM_FIRST] = "regression",
    [MODEL_OBJ_LGBM_REGRESSION_L1 - MODEL_OBJ_LGBM_FIRST] = "regression_l1",
    [MODEL_OBJ_LGBM_HUBER - MODEL_OBJ_LGBM_FIRST] = "huber",
    [MODEL_OBJ_LGBM_FAIR - MODEL_OBJ_LGBM_FIRST] = "fair",
    [MODEL_OBJ_LGBM_QUANTILE - MODEL_OBJ_LGBM_FIRST] = "quantile",
    [MODEL_OBJ_LGBM_MAPE - MODEL_OBJ_LGBM_FIRST] = "mape",
    [MODEL_OBJ_LGBM_POISSON - MODEL_OBJ_LGBM_FIRST] = "poisson",
    [MODEL_OBJ_LGBM_GAMMA - MODEL_OBJ_LGBM_FIRST] = "gamma",
    [MODEL_OBJ_LGBM_TWEEDIE - MODEL_OBJ_LGBM_FIRST] = "tweedie",
    [MODEL_OBJ_LGBM_MULTICLASS - MODEL_OBJ_LGBM_FIRST] = "multiclass",
    [MODEL_OBJ_LGBM_MULTICLASSOVA - MODEL_OBJ_LGBM_FIRST] = "multiclassova",
    [MODEL_OBJ_LGBM_XENTROPY - MODEL_OBJ_LGBM_FIRST] = "cross_entropy",
    [MODEL_OBJ_LGBM_XENTLAMBDA - MODEL_OBJ_LGBM_FIRST] = "cross_entropy_lambda",
    [MODEL_OBJ_LGBM_LAMBDARANK - MODEL_OBJ_LGBM_FIRST] = "lambdarank",
    [MODEL_OBJ_LGBM_RANK_XENDCG - MODEL_OBJ_LGBM_FIRST] = "rank_xendcg",
};

int model_objective_is_lgbm(uint32_t objective)
{
    return objective >= MODEL_OBJ_LGBM_FIRST && objective < MODEL_OBJ_LGBM_END;
}

const char *model_objective_name(uint32_t objective)
{
    if (model_objective_is_lgbm(objective))
        return lgbm_obj_names[objective - MODEL_OBJ_LGBM_FIRST];
    if (objective == 0 || objective >= MODEL_OBJ_MAX)
        return NULL;
    return obj_names[objective];
}

uint32_t model_objective_from_name(const char *name)
{
    if (name == NULL)
        return 0;
    for (uint32_t i = 1; i < MODEL_OBJ_MAX; i++)
        if (strcmp(obj_names[i], name) == 0)
            return i;
    for (uint32_t i = MODEL_OBJ_LGBM_FIRST; i < MODEL_OBJ_LGBM_END; i++)
        if (strcmp(lgbm_obj_names[i - MODEL_OBJ_LGBM_FIRST], name) == 0)
            return i;
    return 0;
}

uint32_t model_outputs(uint32_t objective, uint32_t num_class, int output_margin)
{
    /* multi:softmax reduces its classes to one index; every other objective keeps one output per
     * group (multi:softprob's probabilities, or one per target of a multi-target model). */
    if (output_margin || objective != MODEL_OBJ_SOFTMAX)
        return num_class;
    return 1;
}

/* Objectives whose classes are separate outputs (LightGBM's validator: any other objective has
 * num_class 1). */
static int is_multi(uint32_t objective)
{
    return objective == MODEL_OBJ_SOFTPROB || objective == MODEL_OBJ_SOFTMAX ||
           objective == MODEL_OBJ_LGBM_MULTICLASS || objective == MODEL_OBJ_LGBM_MULTICLASSOVA;
}

int model_objective_multi_output(uint32_t objective)
{
    return objective == MODEL_OBJ_SOFTPROB || objective == MODEL_OBJ_LGBM_MULTICLASS ||
           objective == MODEL_OBJ_LGBM_MULTICLASSOVA;
}

uint32_t model_outputs_per_row(const model_view *v, int output_margin)
{
    return model_outputs(v->hdr->objective, v->hdr->num_class, output_margin);
}

/* ---- validation --------------------------------------------------------------------------------
 */

/* Checks one tree's nodes [nodes, nodes + n) for canonical order and in-range references.
 * Returns 0 or -1 with err. */
static int validate_tree(const model_node_rec *nodes, uint32_t n, uint32_t tree,
                         const model_file_header *h, const uint32_t *cats, char *err, size_t errlen)
{
    uint32_t next = 1; /* nodes [1, next) have been given a parent so far */
    for (uint32_t i = 0; i < n; i++) {
        const model_node_rec *nd = &nodes[i];
        if (i > 0 && i >= next) {
            errbuf_set(err, errlen, "tree %u node %u: unreachable (not in breadth-first order)",
                       tree, i);
            return -1;
        }
        if (nd->left == -1) {
            if (nd->right != -1 || nd->split != 0) {
                errbuf_set(err, errlen, "tree %u node %u: malformed leaf", tree, i);
                return -1;
            }
            continue;
        }
        /* Internal: the children must be the next two unassigned indices. */
        if (nd->left < 0 || (uint32_t)nd->left != next || nd->right != nd->left + 1 ||
            (uint64_t)next + 2 > n || next <= i) {
            errbuf_set(err, errlen, "tree %u node %u: children %d,%d break canonical order", tree,
                       i, nd->left, nd->right);
            return -1;
        }
        next += 2;
        uint32_t flags = nd->split & ~MODEL_NODE_FEATURE_MASK;
        uint32_t feat = nd->split & MODEL_NODE_FEATURE_MASK;
        if ((flags & ~(MODEL_NODE_DEFAULT_LEFT | MODEL_NODE_CATEGORICAL)) != 0 ||
            feat >= h->num_feature) {
            errbuf_set(err, errlen, "tree %u node %u: split feature %u out of range (%u features)",
                       tree, i, feat, h->num_feature);
            return -1;
        }
        if (flags & MODEL_NODE_CATEGORICAL) {
            uint32_t off = nd->u.cat;
            /* Lists: validate_cat_lists proved that a tagged word starts a well-formed set. */
            int bad = (h->flags & MODEL_F_CAT_LIST)
                          ? off >= h->num_cat_words || !(cats[off] & MODEL_CAT_LIST_TAG)
                          : off >= h->num_cat_words || cats[off] == 0 ||
                                cats[off] > MODEL_MAX_CAT_SET_WORDS ||
                                cats[off] > h->num_cat_words - off - 1;
            if (bad) {
                errbuf_set(err, errlen, "tree %u node %u: categorical set out of range", tree, i);
                return -1;
            }
        }
    }
    if (next != n) {
        errbuf_set(err, errlen, "tree %u: %u nodes but %u reachable", tree, n, next);
        return -1;
    }
    return 0;
}

/* MODEL_F_CAT_LIST: cats[0..n) must be exactly a sequence of sets, each MODEL_CAT_LIST_TAG | k
 * followed by k strictly increasing categories <= MODEL_MAX_CATEGORY.  Payload words then never
 * carry the tag, so a node's set reference needs only one tagged-word check.  One pass over
 * cats[], no memory.  Returns 0 or -1 with err. */
static int validate_cat_lists(const uint32_t *cats, uint32_t n, char *err, size_t errlen)
{
    uint32_t pos = 0;
    while (pos < n) {
        uint32_t w = cats[pos];
        uint32_t k = w & ~MODEL_CAT_LIST_TAG;
        if (!(w & MODEL_CAT_LIST_TAG) || k == 0 || k > MODEL_MAX_CAT_LIST || k > n - pos - 1) {
            errbuf_set(err, errlen, "categorical list at word %u: bad header", pos);
            return -1;
        }
        const uint32_t *c = cats + pos + 1;
        for (uint32_t j = 0; j < k; j++)
            if (c[j] > MODEL_MAX_CATEGORY || (j > 0 && c[j] <= c[j - 1])) {
                errbuf_set(err, errlen, "categorical list at word %u: not sorted categories", pos);
                return -1;
            }
        pos += 1 + k;
    }
    return 0;
}

/* Format 2 (LightGBM): one tree's nodes, the same canonical-order proof as validate_tree plus
 * the missing-type field.  Thresholds and leaves may be any double (LightGBM writes inf). */
static int validate_tree_lgbm(const model_lgbm_node *nodes, uint32_t n, uint32_t tree,
                              const model_file_header *h, const uint32_t *cats, char *err,
                              size_t errlen)
{
    uint32_t next = 1;
    for (uint32_t i = 0; i < n; i++) {
        const model_lgbm_node *nd = &nodes[i];
        if (i > 0 && i >= next) {
            errbuf_set(err, errlen, "tree %u node %u: unreachable (not in breadth-first order)",
                       tree, i);
            return -1;
        }
        if (nd->left == -1) {
            if (nd->right != -1 || nd->split != 0 || nd->cat != 0) {
                errbuf_set(err, errlen, "tree %u node %u: malformed leaf", tree, i);
                return -1;
            }
            continue;
        }
        if (nd->left < 0 || (uint32_t)nd->left != next || nd->right != nd->left + 1 ||
            (uint64_t)next + 2 > n || next <= i) {
            errbuf_set(err, errlen, "tree %u node %u: children %d,%d break canonical order", tree,
                       i, nd->left, nd->right);
            return -1;
        }
        next += 2;
        uint32_t feat = nd->split & MODEL_LGBM_FEATURE_MASK;
        uint32_t miss = (nd->split & MODEL_LGBM_MISSING_MASK) >> MODEL_LGBM_MISSING_SHIFT;
        if (feat >= h->num_feature || miss > MODEL_LGBM_MISSING_NAN) {
            errbuf_set(err, errlen,
                       "tree %u node %u: split feature %u or missing type %u out of range", tree, i,
                       feat, miss);
            return -1;
        }
        if (nd->split & MODEL_NODE_CATEGORICAL) {
            uint32_t off = nd->cat;
            if (off >= h->num_cat_words || cats[off] == 0 ||
                cats[off] > h->num_cat_words - off - 1) {
                errbuf_set(err, errlen, "tree %u node %u: categorical set out of range", tree, i);
                return -1;
            }
        } else if (nd->cat != 0) {
            errbuf_set(err, errlen, "tree %u node %u: numerical node with a set", tree, i);
            return -1;
        }
    }
    if (next != n) {
        errbuf_set(err, errlen, "tree %u: %u nodes but %u reachable", tree, n, next);
        return -1;
    }
    return 0;
}

/* Format 2 after the shared header checks: objective, flags, parameter, sizes, trees. */
static int validate_lgbm(const void *blob, size_t len, model_view *v, char *err, size_t errlen)
{
    const model_file_header *h = blob;
    const model_lgbm_header *lh = blob;
    for (size_t i = 0; i < sizeof(lh->reserved) / sizeof(lh->reserved[0]); i++)
        if (lh->reserved[i] != 0) {
            errbuf_set(err, errlen, "reserved header field is not zero");
            return -1;
        }
    if (!model_objective_is_lgbm(h->objective)) {
        errbuf_set(err, errlen, "unknown objective %u", h->objective);
        return -1;
    }
    if ((h->flags & ~MODEL_LF_ALL) != 0) {
        errbuf_set(err, errlen, "unknown flags 0x%x", h->flags);
        return -1;
    }
    double param = model_lgbm_value(lh->param);
    if (!isfinite(param)) {
        errbuf_set(err, errlen, "objective parameter is not finite");
        return -1;
    }
    if (h->num_feature == 0 || h->num_feature > MODEL_MAX_FEATURES) {
        errbuf_set(err, errlen, "num_feature %u out of range", h->num_feature);
        return -1;
    }
    if (h->num_class == 0 || h->num_class > MODEL_MAX_CLASSES ||
        (!is_multi(h->objective) && h->num_class != 1)) {
        errbuf_set(err, errlen, "num_class %u invalid for the objective", h->num_class);
        return -1;
    }
    if (h->num_trees > MODEL_MAX_TREES || h->num_nodes > MODEL_MAX_NODES ||
        h->num_cat_words > MODEL_MAX_CAT_WORDS || h->num_nodes < h->num_trees) {
        errbuf_set(err, errlen, "tree/node/category counts out of range");
        return -1;
    }
    uint64_t want = (uint64_t)MODEL_HEADER_SIZE + (uint64_t)h->num_trees * 16u +
                    (uint64_t)h->num_nodes * sizeof(model_lgbm_node) +
                    (uint64_t)h->num_cat_words * 4u;
    if (want != (uint64_t)len) {
        errbuf_set(err, errlen, "blob is %zu bytes, header describes %llu", len,
                   (unsigned long long)want);
        return -1;
    }
    const uint8_t *base = blob;
    const model_tree_rec *trees = (const model_tree_rec *)(base + MODEL_HEADER_SIZE);
    const model_lgbm_node *nodes = (const model_lgbm_node *)(trees + h->num_trees);
    const uint32_t *cats = (const uint32_t *)(nodes + h->num_nodes);
    uint32_t first = 0;
    for (uint32_t t = 0; t < h->num_trees; t++) {
        const model_tree_rec *tr = &trees[t];
        if (tr->first_node != first || tr->num_nodes == 0 || tr->num_nodes > MODEL_MAX_TREE_NODES ||
            tr->num_nodes > h->num_nodes - first) {
            errbuf_set(err, errlen, "tree %u: node range out of order or out of bounds", t);
            return -1;
        }
        if (tr->group != t % h->num_class || tr->weight != 1.0f) {
            errbuf_set(err, errlen, "tree %u: group %u or weight is not LightGBM's", t, tr->group);
            return -1;
        }
        if (validate_tree_lgbm(nodes + first, tr->num_nodes, t, h, cats, err, errlen) != 0)
            return -1;
        first += tr->num_nodes;
    }
    if (first != h->num_nodes) {
        errbuf_set(err, errlen, "trees cover %u of %u nodes", first, h->num_nodes);
        return -1;
    }
    v->hdr = h;
    v->trees = trees;
    v->nodes = NULL;
    v->lnodes = nodes;
    v->cats = cats;
    v->blob_len = len;
    v->format = MODEL_FORMAT_LGBM;
    v->lgbm_param = param;
    return 0;
}

int model_validate(const void *blob, size_t len, uint8_t *scratch, size_t scratch_len,
                   model_view *v, char *err, size_t errlen)
{
    (void)scratch;
    (void)scratch_len;
    memset(v, 0, sizeof(*v));
    if (blob == NULL || ((uintptr_t)blob & 3u) != 0) {
        errbuf_set(err, errlen, "blob is NULL or not 4-byte aligned");
        return -1;
    }
    if (len < MODEL_HEADER_SIZE) {
        errbuf_set(err, errlen, "blob of %zu bytes is shorter than the header", len);
        return -1;
    }
    const model_file_header *h = blob;
    if (h->magic == MODEL_MAGIC && h->format_version == MODEL_FORMAT_LGBM)
        return validate_lgbm(blob, len, v, err, errlen);
    if (h->magic != MODEL_MAGIC || h->format_version != MODEL_FORMAT_VERSION) {
        errbuf_set(err, errlen, "bad magic or format version");
        return -1;
    }
    for (size_t i = 0; i < sizeof(h->reserved) / sizeof(h->reserved[0]); i++)
        if (h->reserved[i] != 0) {
            errbuf_set(err, errlen, "reserved header field is not zero");
            return -1;
        }
    if (h->objective == 0 || h->objective >= MODEL_OBJ_MAX) {
        errbuf_set(err, errlen, "unknown objective %u", h->objective);
        return -1;
    }
    if ((h->flags & ~MODEL_F_ALL) != 0) {
        errbuf_set(err, errlen, "unknown flags 0x%x", h->flags);
        return -1;
    }
    if (h->num_feature == 0 || h->num_feature > MODEL_MAX_FEATURES) {
        errbuf_set(err, errlen, "num_feature %u out of range", h->num_feature);
        return -1;
    }
    if (h->num_class == 0 || h->num_class > MODEL_MAX_CLASSES) {
        errbuf_set(err, errlen, "num_class %u invalid for the objective", h->num_class);
        return -1;
    }
    if (h->num_trees > MODEL_MAX_TREES || h->num_nodes > MODEL_MAX_NODES ||
        h->num_cat_words > MODEL_MAX_CAT_WORDS || h->num_nodes < h->num_trees) {
        errbuf_set(err, errlen, "tree/node/category counts out of range");
        return -1;
    }
    if (!isfinite(h->base_margin)) {
        errbuf_set(err, errlen, "base_margin is not finite");
        return -1;
    }
    /* All counts are bounded above, so this cannot overflow a 64-bit size. */
    uint64_t want = (uint64_t)MODEL_HEADER_SIZE + (uint64_t)h->num_trees * 16u +
                    (uint64_t)h->num_nodes * 16u + (uint64_t)h->num_cat_words * 4u;
    if (h->flags & MODEL_F_COVERS)
        want += (uint64_t)h->num_nodes * 4u;
    if (want != (uint64_t)len) {
        errbuf_set(err, errlen, "blob is %zu bytes, header describes %llu", len,
                   (unsigned long long)want);
        return -1;
    }
    const uint8_t *base = blob;
    const model_tree_rec *trees = (const model_tree_rec *)(base + MODEL_HEADER_SIZE);
    const model_node_rec *nodes = (const model_node_rec *)(trees + h->num_trees);
    const uint32_t *cats = (const uint32_t *)(nodes + h->num_nodes);

    if ((h->flags & MODEL_F_CAT_LIST) &&
        validate_cat_lists(cats, h->num_cat_words, err, errlen) != 0)
        return -1;
    uint32_t first = 0;
    for (uint32_t t = 0; t < h->num_trees; t++) {
        const model_tree_rec *tr = &trees[t];
        if (tr->first_node != first || tr->num_nodes == 0 || tr->num_nodes > MODEL_MAX_TREE_NODES ||
            tr->num_nodes > h->num_nodes - first) {
            errbuf_set(err, errlen, "tree %u: node range out of order or out of bounds", t);
            return -1;
        }
        if (tr->group >= h->num_class) {
            errbuf_set(err, errlen, "tree %u: group %u >= num_class %u", t, tr->group,
                       h->num_class);
            return -1;
        }
        if (!isfinite(tr->weight) || (!(h->flags & MODEL_F_DART) && tr->weight != 1.0f)) {
            errbuf_set(err, errlen, "tree %u: bad weight", t);
            return -1;
        }
        if (validate_tree(nodes + first, tr->num_nodes, t, h, cats, err, errlen) != 0)
            return -1;
        first += tr->num_nodes;
    }
    if (first != h->num_nodes) {
        errbuf_set(err, errlen, "trees cover %u of %u nodes", first, h->num_nodes);
        return -1;
    }
    v->hdr = h;
    v->trees = trees;
    v->nodes = nodes;
    v->cats = cats;
    /* Covers are only read by TreeSHAP, as floats: any bit pattern is safe to read. */
    v->covers = (h->flags & MODEL_F_COVERS) ? (const float *)(cats + h->num_cat_words) : NULL;
    v->blob_len = len;
    v->format = MODEL_FORMAT_VERSION;
    return 0;
}
