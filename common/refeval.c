/* refeval.c - reference evaluator mirroring xgboost 1.7.4's CPU prediction.  Every rule names the
 * xgboost source it mirrors; tests/fixtures holds xgboost's own outputs that prove each of them.
 *
 * Costs: per row O(sum over trees of the path length) + O(num_class) for the transform. */
#include "refeval.h"

#include <math.h>
#include <stdint.h>

/* Categorical decision: true = go left.  Mirrors src/common/categorical.h Decision() of 1.7:
 *   - InvalidCat(x): x < 0 or x >= 2^24 (OutOfRangeCat) -> left (covers +inf, -inf, -0.5, 1e30)
 *   - the category is the float truncated toward zero (AsCat: static_cast<int32_t>), so 2.99 -> 2
 *   - a category whose word lies beyond the node's bitset (word >= n_words) -> left
 *   - otherwise left iff the category is NOT in the set (the set lists categories going right).
 * The bitset holds every category up to its largest, so "beyond the bitset" is "not in the set":
 * a list set (model.h, MODEL_F_CAT_LIST) answers the same question by a search of its sorted
 * categories.  NaN never gets here: missing is decided first (predict_fn.h GetNextNode). */
static int cat_goes_left(const uint32_t *set, float x)
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

float refeval_tree_leaf(const model_view *m, uint32_t tree, const float *row)
{
    const model_node_rec *nodes = m->nodes + m->trees[tree].first_node;
    int32_t nid = 0;
    /* src/predictor/predict_fn.h GetNextNode: a leaf is a node whose left child is -1
     * (RegTree::Node::IsLeaf); canonical order guarantees children > parent, so this ends. */
    while (nodes[nid].left != -1) {
        const model_node_rec *nd = &nodes[nid];
        float x = row[nd->split & MODEL_NODE_FEATURE_MASK];
        int left;
        if (isnan(x)) {
            /* missing (DMatrix(missing=nan) drops NaN entries): DefaultChild() */
            left = (nd->split & MODEL_NODE_DEFAULT_LEFT) != 0;
        } else if (nd->split & MODEL_NODE_CATEGORICAL) {
            left = cat_goes_left(m->cats + nd->u.cat, x);
        } else {
            /* numeric: fvalue < SplitCond() goes left, in float */
            left = x < nd->u.threshold;
        }
        nid = left ? nd->left : nd->right;
    }
    return nodes[nid].u.leaf;
}

/* Output transform of one row's margins, in place.  Mirrors xgboost 1.7.4's PredTransform:
 * src/objective/regression_loss.h (LogisticRegression: common::Sigmoid = 1/(1+expf(-x)), its
 * 1e-16f epsilon vanishing in float next to 1), src/objective/regression_obj.cu (Poisson, Gamma,
 * Tweedie: expf), src/objective/hinge.cu (x > 0 ? 1 : 0), src/objective/multiclass_obj.cu with
 * src/common/math.h Softmax (max-subtracted expf in float, sum in double, divide by (float)sum)
 * and FindMaxIndex (first maximum). */
void refeval_transform(uint32_t objective, const float *margin, uint32_t k, float *out)
{
    /* Objectives other than multi:* transform each group (target) on its own: a multi-target
     * model (xgboost num_target > 1) applies the same PredTransform element-wise. */
    switch (objective) {
    case MODEL_OBJ_LOGISTIC:
    case MODEL_OBJ_BINARY_LOGISTIC:
        for (uint32_t i = 0; i < k; i++)
            out[i] = 1.0f / (1.0f + expf(-margin[i]));
        return;
    case MODEL_OBJ_POISSON:
    case MODEL_OBJ_GAMMA:
    case MODEL_OBJ_TWEEDIE:
        for (uint32_t i = 0; i < k; i++)
            out[i] = expf(margin[i]);
        return;
    case MODEL_OBJ_BINARY_HINGE:
        for (uint32_t i = 0; i < k; i++)
            out[i] = margin[i] > 0.0f ? 1.0f : 0.0f;
        return;
    case MODEL_OBJ_SOFTPROB: {
        float wmax = margin[0];
        for (uint32_t i = 1; i < k; i++)
            wmax = fmaxf(margin[i], wmax);
        double wsum = 0.0;
        for (uint32_t i = 0; i < k; i++) {
            out[i] = expf(margin[i] - wmax);
            wsum += out[i];
        }
        for (uint32_t i = 0; i < k; i++)
            out[i] /= (float)wsum;
        return;
    }
    case MODEL_OBJ_SOFTMAX: {
        uint32_t best = 0;
        for (uint32_t i = 1; i < k; i++)
            if (margin[i] > margin[best])
                best = i;
        out[0] = (float)best;
        return;
    }
    default: /* identity: squared*, pseudohuber, absolute, logitraw, rank:* */
        for (uint32_t i = 0; i < k; i++)
            out[i] = margin[i];
        return;
    }
}

void refeval_predict(const model_view *m, const float *rows, size_t nrows, int output_margin,
                     float *out)
{
    const model_file_header *h = m->hdr;
    uint32_t k = h->num_class;
    uint32_t per_row = model_outputs_per_row(m, output_margin);
    int dart = (h->flags & MODEL_F_DART) != 0;
    float margin[MODEL_MAX_CLASSES];

    for (size_t r = 0; r < nrows; r++) {
        const float *row = rows + r * h->num_feature;
        /* learner.cc: predictions start at the base margin, ProbToMargin(base_score) computed in
         * float when the model was compiled (GBTree InitOutPredictions). */
        for (uint32_t g = 0; g < k; g++)
            margin[g] = h->base_margin;
        for (uint32_t t = 0; t < h->num_trees; t++) {
            float leaf = refeval_tree_leaf(m, t, row);
            uint32_t g = m->trees[t].group;
            if (dart) {
                /* src/gbm/gbtree.cc Dart::PredictBatchImpl: each tree predicts into a zeroed
                 * buffer (0 + leaf), which is scaled by weight_drop[i] and added, all float. */
                float p = 0.0f + leaf;
                margin[g] += p * m->trees[t].weight;
            } else {
                /* src/predictor/cpu_predictor.cc: out_preds[row * groups + gid] += leaf, trees in
                 * id order, float. */
                margin[g] += leaf;
            }
        }
        float *o = out + r * per_row;
        if (output_margin) {
            for (uint32_t g = 0; g < k; g++)
                o[g] = margin[g];
        } else {
            refeval_transform(h->objective, margin, k, o);
        }
    }
}
