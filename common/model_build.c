/* model_build.c - the builder of the compiled model format (common/model.h): collects trees in
 * the shape a training library writes them and emits a canonical, validated blob.  API side only:
 * it allocates, so the worker never links it (see the Makefile's HOTPATH link line).
 *
 * Costs: model_builder_add_tree O(nodes + c log c) time for c categories listed by the tree,
 * O(nodes) temporary memory; categorical sets are kept as sorted lists (1 + distinct categories
 * words each).  model_build O(blob length). */
#include "errbuf.h"
#include "model_build.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"

/* ---- builder -----------------------------------------------------------------------------------
 */

/* Format 1: categorical sets are collected in the list encoding (model.h, MODEL_F_CAT_LIST):
 * cats[] holds them as written under that flag (cats_len words) and a node's u.cat is its set's
 * offset there.  model_build then writes them either so, or as the original bitsets when those are
 * not larger in total (bitset_words counts what they would take).  Format 2 (lgbm): cats[] holds
 * LightGBM's own bitsets, hdr.num_cat_words words, written verbatim (never re-encoded). */
struct model_builder {
    model_file_header hdr; /* format 1: num_cat_words, MODEL_F_CAT_LIST decided by model_build */
    model_tree_rec *trees;
    size_t trees_cap;
    model_node_rec *nodes;
    size_t nodes_cap;
    uint32_t *cats; /* list sets, cats_len words */
    size_t cats_cap;
    uint32_t cats_len;       /* format 1 */
    uint64_t bitset_words;   /* format 1: the same sets as bitsets: sum of 1 + max / 32 + 1 */
    int lgbm;                /* format 2 */
    double param;            /* format 2: objective parameter */
    model_lgbm_node *lnodes; /* format 2 nodes */
    size_t lnodes_cap;
    float *covers; /* parallel to nodes (capacity nodes_cap), used with MODEL_F_COVERS */
    size_t covers_cap;
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

void model_builder_drop_covers(model_builder *b)
{
    b->hdr.flags &= ~MODEL_F_COVERS;
}

void model_builder_free(model_builder *b)
{
    if (b == NULL)
        return;
    free(b->trees);
    free(b->nodes);
    free(b->cats);
    free(b->lnodes);
    free(b->covers);
    free(b);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Makes room for `need` elements of size `sz` in *arr (capacity *cap): the one growth rule,
 * common/dynbuf.h's, bounded by what a blob can address.  Returns 0 or -1 on OOM (the array is
 * left as it was). */
static int grow(void **arr, size_t *cap, size_t need, size_t sz)
{
    return dynbuf_grow_array(arr, cap, need, sz, SIZE_MAX / sz) == DYNBUF_OK ? 0 : -1;
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

    if (b->lgbm || n == 0 || n > MODEL_MAX_TREE_NODES) {
        errbuf_set(err, errlen, "tree with %u nodes (or a format-2 builder)", n);
        goto fail;
    }
    if (h->num_trees >= MODEL_MAX_TREES) {
        errbuf_set(err, errlen, "more than %u trees", MODEL_MAX_TREES);
        goto fail;
    }
    if (group >= h->num_class) {
        errbuf_set(err, errlen, "tree group %u >= num_class %u", group, h->num_class);
        goto fail;
    }
    if (!isfinite(weight)) {
        errbuf_set(err, errlen, "tree weight is not finite");
        goto fail;
    }
    queue = malloc((size_t)n * sizeof(*queue));
    seen = calloc(n, 1);
    if (queue == NULL || seen == NULL ||
        grow((void **)&b->trees, &b->trees_cap, (size_t)h->num_trees + 1, sizeof(*b->trees))) {
        errbuf_set(err, errlen, "out of memory");
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
            errbuf_set(err, errlen, "node %u: child index out of range", queue[k]);
            goto fail;
        }
        if (seen[s->left] || seen[s->right] || s->left == s->right) {
            errbuf_set(err, errlen, "node %u: child reached twice (cycle or shared node)",
                       queue[k]);
            goto fail;
        }
        seen[s->left] = seen[s->right] = 1;
        queue[qlen++] = (uint32_t)s->left;
        queue[qlen++] = (uint32_t)s->right;
    }
    if ((uint64_t)h->num_nodes + qlen > MODEL_MAX_NODES) {
        errbuf_set(err, errlen, "more than %u nodes in total", MODEL_MAX_NODES);
        goto fail;
    }
    if (grow((void **)&b->nodes, &b->nodes_cap, (size_t)h->num_nodes + qlen, sizeof(*b->nodes)) ||
        grow((void **)&b->covers, &b->covers_cap, (size_t)h->num_nodes + qlen,
             sizeof(*b->covers))) {
        errbuf_set(err, errlen, "out of memory");
        goto fail;
    }
    uint32_t next = 1;
    for (uint32_t k = 0; k < qlen; k++) {
        const model_src_node *s = &src[queue[k]];
        model_node_rec *d = &b->nodes[node0 + k];
        memset(d, 0, sizeof(*d));
        b->covers[node0 + k] = s->cover;
        if (s->left == -1) {
            d->left = d->right = -1;
            d->u.leaf = s->value;
            continue;
        }
        d->left = (int32_t)next;
        d->right = (int32_t)next + 1;
        next += 2;
        if (s->feature >= h->num_feature) {
            errbuf_set(err, errlen, "node %u: split feature %u >= num_feature %u", queue[k],
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
            errbuf_set(err, errlen, "node %u: categorical split without categories", queue[k]);
            goto fail;
        }
        /* The set as a sorted list without duplicates: at most 1 + n_cats words, which is what
         * the model file spent on it (a category is at least one byte there). */
        uint64_t total = (uint64_t)b->cats_len + 1 + s->n_cats;
        if (total > MODEL_MAX_CAT_WORDS) {
            errbuf_set(err, errlen, "categorical sets exceed %u words", MODEL_MAX_CAT_WORDS);
            goto fail;
        }
        if (grow((void **)&b->cats, &b->cats_cap, (size_t)total, sizeof(*b->cats))) {
            errbuf_set(err, errlen, "out of memory");
            goto fail;
        }
        uint32_t off = b->cats_len, *list = b->cats + off + 1;
        for (uint32_t j = 0; j < s->n_cats; j++) {
            if (s->cats[j] < 0 || s->cats[j] > (int64_t)MODEL_MAX_CATEGORY) {
                errbuf_set(err, errlen, "node %u: category %lld outside [0, 2^24)", queue[k],
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

model_builder *model_lgbm_builder_new(uint32_t objective, uint32_t flags, double param,
                                      uint32_t num_feature, uint32_t num_class)
{
    model_builder *b = model_builder_new(objective, flags, num_feature, num_class, 0.0f, 0.0f);
    if (b == NULL)
        return NULL;
    b->hdr.format_version = MODEL_FORMAT_LGBM;
    b->lgbm = 1;
    b->param = param;
    return b;
}

/* A LightGBM child reference: internal node c >= 0 (< n_int) or leaf ~c (< n_leaves). */
static int lgbm_ref_ok(int32_t c, uint32_t n_int, uint32_t n_leaves)
{
    return c >= 0 ? (uint32_t)c < n_int : (uint32_t)~c < n_leaves;
}

int model_lgbm_builder_add_tree(model_builder *b, const model_lgbm_src_tree *t, char *err,
                                size_t errlen)
{
    int rc = -1;
    int32_t *queue = NULL; /* queue[new index] = LightGBM reference, breadth-first */
    uint8_t *seen_int = NULL, *seen_leaf = NULL;
    model_file_header *h = &b->hdr;
    uint32_t node0 = h->num_nodes, cat0 = h->num_cat_words;
    uint32_t nl = t->num_leaves, ni = nl ? nl - 1 : 0;

    if (!b->lgbm || nl == 0 || (uint64_t)nl * 2 - 1 > MODEL_MAX_TREE_NODES) {
        errbuf_set(err, errlen, "tree with %u leaves", nl);
        goto fail;
    }
    if (h->num_trees >= MODEL_MAX_TREES) {
        errbuf_set(err, errlen, "more than %u trees", MODEL_MAX_TREES);
        goto fail;
    }
    if (t->num_cat > 0) {
        if (t->cat_boundaries == NULL || t->cat_boundaries[0] != 0 ||
            (uint32_t)t->cat_boundaries[t->num_cat] != t->n_cat_threshold) {
            errbuf_set(err, errlen, "cat_boundaries do not span cat_threshold");
            goto fail;
        }
        for (uint32_t i = 0; i < t->num_cat; i++)
            if (t->cat_boundaries[i + 1] < t->cat_boundaries[i]) {
                errbuf_set(err, errlen, "cat_boundaries decrease");
                goto fail;
            }
    }
    uint32_t total = 2 * nl - 1;
    queue = malloc((size_t)total * sizeof(*queue));
    seen_int = calloc(ni ? ni : 1, 1);
    seen_leaf = calloc(nl, 1);
    if (queue == NULL || seen_int == NULL || seen_leaf == NULL ||
        grow((void **)&b->trees, &b->trees_cap, (size_t)h->num_trees + 1, sizeof(*b->trees))) {
        errbuf_set(err, errlen, "out of memory");
        goto fail;
    }
    uint32_t qlen = 1;
    queue[0] = nl == 1 ? ~0 : 0; /* a one-leaf tree is leaf 0 (Tree::Predict) */
    if (nl == 1)
        seen_leaf[0] = 1;
    else
        seen_int[0] = 1;
    for (uint32_t k = 0; k < qlen; k++) {
        int32_t r = queue[k];
        if (r < 0)
            continue;
        int32_t kids[2] = {t->left_child[r], t->right_child[r]};
        for (int j = 0; j < 2; j++) {
            int32_t c = kids[j];
            if (!lgbm_ref_ok(c, ni, nl)) {
                errbuf_set(err, errlen, "node %d: child %d out of range", r, c);
                goto fail;
            }
            uint8_t *s = c >= 0 ? &seen_int[c] : &seen_leaf[~c];
            if (*s) {
                errbuf_set(err, errlen, "node %d: child %d reached twice (cycle or shared node)", r,
                           c);
                goto fail;
            }
            *s = 1;
            queue[qlen++] = c;
        }
    }
    if ((uint64_t)h->num_nodes + qlen > MODEL_MAX_NODES) {
        errbuf_set(err, errlen, "more than %u nodes in total", MODEL_MAX_NODES);
        goto fail;
    }
    if (grow((void **)&b->lnodes, &b->lnodes_cap, (size_t)h->num_nodes + qlen,
             sizeof(*b->lnodes))) {
        errbuf_set(err, errlen, "out of memory");
        goto fail;
    }
    uint32_t next = 1;
    for (uint32_t k = 0; k < qlen; k++) {
        int32_t r = queue[k];
        model_lgbm_node *d = &b->lnodes[node0 + k];
        memset(d, 0, sizeof(*d));
        if (r < 0) {
            d->left = d->right = -1;
            model_lgbm_store(d->value, t->leaf_value[~r]);
            continue;
        }
        d->left = (int32_t)next;
        d->right = (int32_t)next + 1;
        next += 2;
        int32_t f = t->split_feature[r], dt = t->decision_type[r];
        uint32_t miss = ((uint32_t)dt >> 2) & 3u;
        if (f < 0 || (uint32_t)f >= h->num_feature) {
            errbuf_set(err, errlen, "node %d: split feature %d outside 0..%u", r, f,
                       h->num_feature - 1);
            goto fail;
        }
        if (miss > MODEL_LGBM_MISSING_NAN) {
            errbuf_set(err, errlen, "node %d: decision_type %d has missing type 3", r, dt);
            goto fail;
        }
        d->split = (uint32_t)f | miss << MODEL_LGBM_MISSING_SHIFT |
                   ((dt & 2) ? MODEL_NODE_DEFAULT_LEFT : 0);
        double thr = t->threshold[r];
        /* LightGBM's GetLeaf takes the categorical rule only when the tree has num_cat > 0. */
        if (!((dt & 1) && t->num_cat > 0)) {
            model_lgbm_store(d->value, thr);
            continue;
        }
        /* CategoricalDecision: cat_idx = static_cast<int>(threshold). */
        if (!(thr > -1.0 && thr < (double)t->num_cat)) {
            errbuf_set(err, errlen, "node %d: categorical threshold %.17g is not a set index", r,
                       thr);
            goto fail;
        }
        uint32_t ci = (uint32_t)thr;
        uint32_t lo = (uint32_t)t->cat_boundaries[ci], hi = (uint32_t)t->cat_boundaries[ci + 1];
        uint32_t words = hi - lo ? hi - lo : 1; /* an empty set: one zero word, nothing left */
        uint64_t need = (uint64_t)h->num_cat_words + 1 + words;
        if (need > MODEL_MAX_CAT_WORDS) {
            errbuf_set(err, errlen, "categorical sets exceed %u words", MODEL_MAX_CAT_WORDS);
            goto fail;
        }
        if (grow((void **)&b->cats, &b->cats_cap, (size_t)need, sizeof(*b->cats))) {
            errbuf_set(err, errlen, "out of memory");
            goto fail;
        }
        uint32_t off = h->num_cat_words;
        b->cats[off] = words;
        b->cats[off + 1] = 0;
        if (hi > lo)
            memcpy(&b->cats[off + 1], &t->cat_threshold[lo], (size_t)(hi - lo) * sizeof(uint32_t));
        d->split |= MODEL_NODE_CATEGORICAL;
        d->cat = off;
        h->num_cat_words = (uint32_t)need;
    }
    model_tree_rec *tr = &b->trees[h->num_trees];
    tr->first_node = node0;
    tr->num_nodes = qlen;
    tr->group = h->num_trees % h->num_class;
    tr->weight = 1.0f;
    h->num_trees++;
    h->num_nodes = node0 + qlen;
    rc = 0;
fail:
    if (rc != 0)
        h->num_cat_words = cat0;
    free(queue);
    free(seen_int);
    free(seen_leaf);
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
    /* Format 1: the smaller encoding of the categorical sets; a tie keeps the original bitsets.
     * Lists are at most MODEL_MAX_CAT_WORDS (add_tree), bitsets only chosen when not larger.
     * Format 2: LightGBM's own bitsets, written as model_lgbm_builder_add_tree left them. */
    int lists = !b->lgbm && b->cats_len > 0 && b->bitset_words > b->cats_len;
    if (!b->lgbm) {
        h.num_cat_words = lists ? b->cats_len : (uint32_t)b->bitset_words;
        h.flags = lists ? h.flags | MODEL_F_CAT_LIST : h.flags & ~MODEL_F_CAT_LIST;
    }
    size_t node_size = b->lgbm ? sizeof(model_lgbm_node) : sizeof(model_node_rec);
    size_t len = MODEL_HEADER_SIZE + (size_t)h.num_trees * sizeof(model_tree_rec) +
                 (size_t)h.num_nodes * node_size + (size_t)h.num_cat_words * sizeof(uint32_t);
    int covers = !b->lgbm && (h.flags & MODEL_F_COVERS);
    if (covers)
        len += (size_t)h.num_nodes * sizeof(float);
    blob = malloc(len); /* malloc's alignment satisfies model_validate's 4 bytes */
    if (blob == NULL) {
        errbuf_set(err, errlen, "out of memory for a %zu-byte blob", len);
        goto fail;
    }
    uint8_t *p = blob;
    if (b->lgbm) {
        model_lgbm_header lh;
        memset(&lh, 0, sizeof lh);
        memcpy(&lh, &h, offsetof(model_lgbm_header, param)); /* the shared 9-word prefix */
        model_lgbm_store(lh.param, b->param);
        memcpy(p, &lh, MODEL_HEADER_SIZE);
    } else {
        memcpy(p, &h, MODEL_HEADER_SIZE);
    }
    p += MODEL_HEADER_SIZE;
    if (h.num_trees) {
        memcpy(p, b->trees, (size_t)h.num_trees * sizeof(model_tree_rec));
        p += (size_t)h.num_trees * sizeof(model_tree_rec);
    }
    model_node_rec *nodes = (model_node_rec *)p; /* format 1 only */
    if (h.num_nodes) {
        memcpy(p, b->lgbm ? (const void *)b->lnodes : (const void *)b->nodes,
               (size_t)h.num_nodes * node_size);
        p += (size_t)h.num_nodes * node_size;
    }
    if (h.num_cat_words) {
        if (b->lgbm || lists) /* format 2's words, or format 1's lists: verbatim */
            memcpy(p, b->cats, (size_t)h.num_cat_words * sizeof(uint32_t));
        else
            emit_bitsets(b, nodes, (uint32_t *)p);
        p += (size_t)h.num_cat_words * sizeof(uint32_t);
    }
    if (covers && h.num_nodes) /* after cats[] whatever their encoding */
        memcpy(p, b->covers, (size_t)h.num_nodes * sizeof(float));
    if (model_validate(blob, len, NULL, 0, &v, err, errlen) != 0)
        goto fail;
    *blob_out = blob;
    *len_out = len;
    return 0;
fail:
    free(blob);
    return -1;
}
