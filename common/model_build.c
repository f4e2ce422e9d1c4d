/* model_build.c - the builder of the compiled model format (common/model.h): collects trees in
 * the shape a training library writes them and emits a canonical, validated blob.  API side only:
 * it allocates, so the worker never links it (see the Makefile's HOTPATH link line).
 *
 * Costs: model_builder_add_tree O(nodes + c log c) time for c categories listed by the tree,
 * O(nodes) temporary memory; categorical sets are kept as sorted lists (1 + distinct categories
 * words each).  model_build O(blob length). */
#include "model_build.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- builder -----------------------------------------------------------------------------------
 */

/* Categorical sets are collected in the list encoding (model.h, MODEL_F_CAT_LIST): cats[] holds
 * them as written under that flag and a node's u.cat is its set's offset there.  model_build then
 * writes them either so, or as the original bitsets when those are not larger in total
 * (bitset_words counts what they would take). */
struct model_builder {
    model_file_header hdr; /* num_cat_words, flags: MODEL_F_CAT_LIST decided by model_build */
    model_tree_rec *trees;
    size_t trees_cap;
    model_node_rec *nodes;
    size_t nodes_cap;
    uint32_t *cats; /* list sets, cats_len words */
    size_t cats_cap;
    uint32_t cats_len;
    uint64_t bitset_words; /* the same sets as bitsets: sum of 1 + max / 32 + 1 */
};

model_builder *model_builder_new(uint32_t objective, uint32_t flags, uint32_t num_feature,
                                 uint32_t num_class, float base_score, float base_margin)
{
    model_builder *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->hdr.magic = MODEL_MAGIC;
    b->hdr.format_version = MODEL_FORMAT_VERSION;
    b->hdr.objective = objective;
    b->hdr.flags = flags;
    b->hdr.num_feature = num_feature;
    b->hdr.num_class = num_class;
    b->hdr.base_score = base_score;
    b->hdr.base_margin = base_margin;
    return b;
}

void model_builder_free(model_builder *b)
{
    if (b == NULL)
        return;
    free(b->trees);
    free(b->nodes);
    free(b->cats);
    free(b);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Makes room for `need` elements of size `sz` in *arr (capacity *cap), doubling.  Returns 0 or -1
 * on OOM (the array is left as it was). */
static int grow(void **arr, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, ncap * sz);
    if (p == NULL)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

int model_builder_add_tree(model_builder *b, uint32_t group, float weight,
                           const model_src_node *src, uint32_t n, char *err, size_t errlen)
{
    int rc = -1;
    uint32_t *queue = NULL; /* queue[new index] = source index (breadth-first) */
    uint8_t *seen = NULL;
    model_file_header *h = &b->hdr;
    uint32_t node0 = h->num_nodes, cat0 = b->cats_len;
    uint64_t bits0 = b->bitset_words;

    if (n == 0 || n > MODEL_MAX_TREE_NODES) {
        set_err(err, errlen, "tree with %u nodes", n);
        goto fail;
    }
    if (h->num_trees >= MODEL_MAX_TREES) {
        set_err(err, errlen, "more than %u trees", MODEL_MAX_TREES);
        goto fail;
    }
    if (group >= h->num_class) {
        set_err(err, errlen, "tree group %u >= num_class %u", group, h->num_class);
        goto fail;
    }
    if (!isfinite(weight)) {
        set_err(err, errlen, "tree weight is not finite");
        goto fail;
    }
    queue = malloc((size_t)n * sizeof(*queue));
    seen = calloc(n, 1);
    if (queue == NULL || seen == NULL ||
        grow((void **)&b->trees, &b->trees_cap, (size_t)h->num_trees + 1, sizeof(*b->trees))) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    uint32_t qlen = 1;
    queue[0] = 0;
    seen[0] = 1;
    for (uint32_t k = 0; k < qlen; k++) {
        const model_src_node *s = &src[queue[k]];
        if (s->left == -1)
            continue;
        if (s->left < 0 || (uint32_t)s->left >= n || s->right < 0 || (uint32_t)s->right >= n) {
            set_err(err, errlen, "node %u: child index out of range", queue[k]);
            goto fail;
        }
        if (seen[s->left] || seen[s->right] || s->left == s->right) {
            set_err(err, errlen, "node %u: child reached twice (cycle or shared node)", queue[k]);
            goto fail;
        }
        seen[s->left] = seen[s->right] = 1;
        queue[qlen++] = (uint32_t)s->left;
        queue[qlen++] = (uint32_t)s->right;
    }
    if ((uint64_t)h->num_nodes + qlen > MODEL_MAX_NODES) {
        set_err(err, errlen, "more than %u nodes in total", MODEL_MAX_NODES);
        goto fail;
    }
    if (grow((void **)&b->nodes, &b->nodes_cap, (size_t)h->num_nodes + qlen, sizeof(*b->nodes))) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    uint32_t next = 1;
    for (uint32_t k = 0; k < qlen; k++) {
        const model_src_node *s = &src[queue[k]];
        model_node_rec *d = &b->nodes[node0 + k];
        memset(d, 0, sizeof(*d));
        if (s->left == -1) {
            d->left = d->right = -1;
            d->u.leaf = s->value;
            continue;
        }
        d->left = (int32_t)next;
        d->right = (int32_t)next + 1;
        next += 2;
        if (s->feature >= h->num_feature) {
            set_err(err, errlen, "node %u: split feature %u >= num_feature %u", queue[k],
                    s->feature, h->num_feature);
            goto fail;
        }
        d->split = s->feature | (s->default_left ? MODEL_NODE_DEFAULT_LEFT : 0);
        if (!s->categorical) {
            d->u.threshold = s->value;
            continue;
        }
        d->split |= MODEL_NODE_CATEGORICAL;
        if (s->n_cats == 0 || s->cats == NULL) {
            set_err(err, errlen, "node %u: categorical split without categories", queue[k]);
            goto fail;
        }
        /* The set as a sorted list without duplicates: at most 1 + n_cats words, which is what
         * the model file spent on it (a category is at least one byte there). */
        uint64_t total = (uint64_t)b->cats_len + 1 + s->n_cats;
        if (total > MODEL_MAX_CAT_WORDS) {
            set_err(err, errlen, "categorical sets exceed %u words", MODEL_MAX_CAT_WORDS);
            goto fail;
        }
        if (grow((void **)&b->cats, &b->cats_cap, (size_t)total, sizeof(*b->cats))) {
            set_err(err, errlen, "out of memory");
            goto fail;
        }
        uint32_t off = b->cats_len, *list = b->cats + off + 1;
        for (uint32_t j = 0; j < s->n_cats; j++) {
            if (s->cats[j] < 0 || s->cats[j] > (int64_t)MODEL_MAX_CATEGORY) {
                set_err(err, errlen, "node %u: category %lld outside [0, 2^24)", queue[k],
                        (long long)s->cats[j]);
                goto fail;
            }
            list[j] = (uint32_t)s->cats[j];
        }
        qsort(list, s->n_cats, sizeof(*list), cmp_u32);
        uint32_t m = 1;
        for (uint32_t j = 1; j < s->n_cats; j++)
            if (list[j] != list[m - 1])
                list[m++] = list[j];
        b->cats[off] = MODEL_CAT_LIST_TAG | m;
        /* xgboost sizes the bitset from the largest category (tree_model.cc
         * LoadCategoricalSplit: ComputeStorageSize(max_cat + 1)). */
        b->bitset_words += 1 + list[m - 1] / 32 + 1;
        d->u.cat = off;
        b->cats_len = off + 1 + m;
    }
    model_tree_rec *tr = &b->trees[h->num_trees];
    tr->first_node = node0;
    tr->num_nodes = qlen;
    tr->group = group;
    tr->weight = weight;
    h->num_trees++;
    h->num_nodes = node0 + qlen;
    rc = 0;
fail:
    if (rc != 0) { /* drop this tree's partial category words */
        b->cats_len = cat0;
        b->bitset_words = bits0;
    }
    free(queue);
    free(seen);
    return rc;
}

/* Writes the list sets of b as bitsets into out (bitset_words words) and points the categorical
 * nodes of the blob's nodes[] at them.  The k-th categorical node in node order owns the k-th
 * list set (model_builder_add_tree appends one set per categorical node, in that order). */
static void emit_bitsets(const model_builder *b, model_node_rec *nodes, uint32_t *out)
{
    uint32_t o = 0;
    for (uint32_t i = 0; i < b->hdr.num_nodes; i++) {
        if (nodes[i].left == -1 || !(nodes[i].split & MODEL_NODE_CATEGORICAL))
            continue;
        const uint32_t *set = b->cats + nodes[i].u.cat;
        uint32_t m = set[0] & ~MODEL_CAT_LIST_TAG;
        uint32_t words = set[m] / 32 + 1; /* the largest category is the last */
        out[o] = words;
        memset(&out[o + 1], 0, (size_t)words * sizeof(uint32_t));
        for (uint32_t j = 1; j <= m; j++)
            out[o + 1 + set[j] / 32] |= 1u << (set[j] % 32);
        nodes[i].u.cat = o;
        o += 1 + words;
    }
}

int model_build(model_builder *b, void **blob_out, size_t *len_out, char *err, size_t errlen)
{
    model_file_header h = b->hdr;
    uint8_t *blob = NULL;
    model_view v;

    *blob_out = NULL;
    *len_out = 0;
    /* The smaller encoding of the categorical sets; a tie keeps format 1's original bitsets. */
    int lists = b->cats_len > 0 && b->bitset_words > b->cats_len;
    /* Lists are at most MODEL_MAX_CAT_WORDS (add_tree), bitsets only chosen when not larger. */
    h.num_cat_words = lists ? b->cats_len : (uint32_t)b->bitset_words;
    h.flags = lists ? h.flags | MODEL_F_CAT_LIST : h.flags & ~MODEL_F_CAT_LIST;
    size_t len = MODEL_HEADER_SIZE + (size_t)h.num_trees * sizeof(model_tree_rec) +
                 (size_t)h.num_nodes * sizeof(model_node_rec) +
                 (size_t)h.num_cat_words * sizeof(uint32_t);
    blob = malloc(len); /* malloc's alignment satisfies model_validate's 4 bytes */
    if (blob == NULL) {
        set_err(err, errlen, "out of memory for a %zu-byte blob", len);
        goto fail;
    }
    uint8_t *p = blob;
    memcpy(p, &h, MODEL_HEADER_SIZE);
    p += MODEL_HEADER_SIZE;
    if (h.num_trees) {
        memcpy(p, b->trees, (size_t)h.num_trees * sizeof(model_tree_rec));
        p += (size_t)h.num_trees * sizeof(model_tree_rec);
    }
    model_node_rec *nodes = (model_node_rec *)p;
    if (h.num_nodes) {
        memcpy(p, b->nodes, (size_t)h.num_nodes * sizeof(model_node_rec));
        p += (size_t)h.num_nodes * sizeof(model_node_rec);
    }
    if (lists)
        memcpy(p, b->cats, (size_t)h.num_cat_words * sizeof(uint32_t));
    else if (h.num_cat_words)
        emit_bitsets(b, nodes, (uint32_t *)p);
    if (model_validate(blob, len, NULL, 0, &v, err, errlen) != 0)
        goto fail;
    *blob_out = blob;
    *len_out = len;
    return 0;
fail:
    free(blob);
    return -1;
}
