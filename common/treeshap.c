/* treeshap.c - reference TreeSHAP, mirroring xgboost 1.7.4's pred_contribs.  See treeshap.h.
 *
 * Every float operation is written in xgboost's order and grouping (float32 throughout, no fused
 * multiply-add: the Makefile never enables FMA and C11 only contracts within an expression when
 * the target has it), which is what makes the outputs xgboost's bit for bit.  The condition /
 * condition_feature arguments of xgboost's TreeShap (interaction values) are always 0 for
 * pred_contribs; their condition_fraction is the constant 1.0f, and x * 1.0f == x, so they are
 * left out.
 *
 * Costs: per call O(nodes) for the mean values, then per row and tree the recursive walk over
 * every node, O(depth) path work at internal nodes and O(depth^2) at leaves. */
#include "treeshap.h"

#include <math.h>
#include <string.h>

#include "refeval.h"
#include "treeshap_path.h"

uint32_t treeshap_tree_depth(const model_view *m, uint32_t t)
{
    const model_node_rec *nodes = m->nodes + m->trees[t].first_node;
    uint32_t n = m->trees[t].num_nodes;
    /* Canonical order: level d+1 is the block right after level d, two nodes per internal node. */
    uint32_t start = 0, end = 1, depth = 0;
    for (;;) {
        uint32_t internal = 0;
        for (uint32_t i = start; i < end; i++)
            internal += nodes[i].left != -1;
        if (internal == 0 || end >= n)
            return depth;
        start = end;
        end += 2 * internal;
        depth++;
    }
}

size_t treeshap_path_elems(uint32_t d)
{
    size_t maxd = (size_t)d + 2; /* tree_model.cc CalculateContributions: MaxDepth + 2 */
    return maxd * (maxd + 1) / 2;
}

size_t treeshap_scratch_bytes(const model_view *m)
{
    if (m->covers == NULL)
        return 0;
    uint32_t max_nodes = 0, max_depth = 0;
    for (uint32_t t = 0; t < m->hdr->num_trees; t++) {
        uint32_t d = treeshap_tree_depth(m, t);
        if (d > TREESHAP_MAX_DEPTH)
            return 0;
        if (d > max_depth)
            max_depth = d;
        if (m->trees[t].num_nodes > max_nodes)
            max_nodes = m->trees[t].num_nodes;
    }
    return (size_t)max_nodes * sizeof(float) + ((size_t)m->hdr->num_feature + 1) * sizeof(float) +
           treeshap_path_elems(max_depth) * sizeof(treeshap_elem);
}

int treeshap_cat_left(const uint32_t *set, float x)
{
    /* refeval.c cat_goes_left, the same rule (common/categorical.h Decision of 1.7), either
     * encoding of the set (bitset or MODEL_F_CAT_LIST list) */
    return model_cat_goes_left(set, x);
}

/* ---- the recursion (tree_model.cc TreeShap) ------------------------------------------------- */

typedef struct shap_tree {
    const model_node_rec *nodes;
    const float *covers;
    const uint32_t *cats;
    const float *row;
    float *phi; /* num_feature + 1 accumulators of this tree */
} shap_tree;

/* The child the row follows at internal node nd (predict_fn.h GetNextNode<true, true>). */
static int32_t hot_child(const shap_tree *st, const model_node_rec *nd)
{
    float x = st->row[nd->split & MODEL_NODE_FEATURE_MASK];
    int left;
    if (isnan(x))
        left = (nd->split & MODEL_NODE_DEFAULT_LEFT) != 0;
    else if (nd->split & MODEL_NODE_CATEGORICAL)
        left = treeshap_cat_left(st->cats + nd->u.cat, x);
    else
        left = x < nd->u.threshold;
    return left ? nd->left : nd->right;
}

static void shap_recurse(const shap_tree *st, int32_t nid, uint32_t d, treeshap_elem *parent,
                         float pzero, float pone, int32_t pfeature)
{
    const model_node_rec *nd = &st->nodes[nid];
    treeshap_elem *path = parent + d + 1;
    memcpy(path, parent, (size_t)(d + 1) * sizeof(*path));
    treeshap_extend(path, d, pzero, pone, pfeature);

    if (nd->left == -1) {
        for (uint32_t i = 1; i <= d; i++) {
            const float w = treeshap_unwound_sum(path, d, i);
            const treeshap_elem *el = &path[i];
            st->phi[el->feature] += w * (el->one - el->zero) * nd->u.leaf;
        }
        return;
    }
    uint32_t split = nd->split & MODEL_NODE_FEATURE_MASK;
    int32_t hot = hot_child(st, nd);
    int32_t cold = hot == nd->left ? nd->right : nd->left;
    const float w = st->covers[nid];
    const float hot_zero = st->covers[hot] / w;
    const float cold_zero = st->covers[cold] / w;
    float in_zero = 1, in_one = 1;

    /* a feature already on the path is unwound and redone here */
    uint32_t pi = 0;
    for (; pi <= d; pi++)
        if ((uint32_t)path[pi].feature == split)
            break;
    if (pi != d + 1) {
        in_zero = path[pi].zero;
        in_one = path[pi].one;
        treeshap_unwind(path, d, pi);
        d -= 1;
    }
    shap_recurse(st, hot, d + 1, path, hot_zero * in_zero, in_one, (int32_t)split);
    shap_recurse(st, cold, d + 1, path, cold_zero * in_zero, 0, (int32_t)split);
}

void treeshap_explain(const model_view *m, const float *rows, size_t nrows, float *contribs,
                      float *margins, void *scratch)
{
    const model_file_header *h = m->hdr;
    const uint32_t nf = h->num_feature, k = h->num_class, ncol = nf + 1;
    const int dart = (h->flags & MODEL_F_DART) != 0;
    uint32_t max_nodes = 0;
    for (uint32_t t = 0; t < h->num_trees; t++)
        if (m->trees[t].num_nodes > max_nodes)
            max_nodes = m->trees[t].num_nodes;
    float *mean = scratch;
    float *phi = mean + max_nodes;
    treeshap_elem *path = (treeshap_elem *)(phi + ncol);

    /* cpu_predictor.cc: the output is zeroed, then every tree of group g adds to its slots */
    memset(contribs, 0, nrows * k * ncol * sizeof(float));
    if (margins != NULL)
        for (size_t i = 0; i < nrows * k; i++)
            margins[i] = h->base_margin;

    for (uint32_t t = 0; t < h->num_trees; t++) {
        const model_tree_rec *tr = &m->trees[t];
        const model_node_rec *nodes = m->nodes + tr->first_node;
        const float *covers = m->covers + tr->first_node;
        /* FillNodeMeanValues: children before parents (children have larger indices) */
        for (uint32_t i = tr->num_nodes; i-- > 0;) {
            const model_node_rec *nd = &nodes[i];
            if (nd->left == -1) {
                mean[i] = nd->u.leaf;
            } else {
                float r = mean[nd->left] * covers[nd->left];
                r += mean[nd->right] * covers[nd->right];
                r /= covers[i];
                mean[i] = r;
            }
        }
        shap_tree st = {.nodes = nodes, .covers = covers, .cats = m->cats, .phi = phi};
        for (size_t r = 0; r < nrows; r++) {
            st.row = rows + r * nf;
            /* CalculateContributions into a zeroed per-tree buffer: the tree's expected value
             * into the bias slot, then TreeShap from the root (path depth 0, fractions 1, 1). */
            memset(phi, 0, ncol * sizeof(float));
            phi[nf] += mean[0];
            shap_recurse(&st, 0, 0, path, 1, 1, -1);
            /* gbtree multiplies by 1 (exact), dart by weight_drop[t] */
            float *out = contribs + (r * k + tr->group) * ncol;
            for (uint32_t c = 0; c < ncol; c++)
                out[c] += phi[c] * tr->weight;
            if (margins != NULL) {
                float leaf = refeval_tree_leaf(m, t, st.row);
                float *mg = &margins[r * k + tr->group];
                if (dart)
                    *mg += (0.0f + leaf) * tr->weight; /* refeval_predict's dart rule */
                else
                    *mg += leaf;
            }
        }
    }
    /* the base margin joins the bias column after every tree */
    for (size_t r = 0; r < nrows; r++)
        for (uint32_t g = 0; g < k; g++)
            contribs[(r * k + g) * ncol + nf] += h->base_margin;
}
