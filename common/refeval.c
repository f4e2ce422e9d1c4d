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
 * categories.  The code is model_cat_goes_left (model.h), shared with common/treeshap.c and
 * hotpath/hp_shap.c.  NaN never gets here: missing is decided first (predict_fn.h GetNextNode). */
static int cat_goes_left(const uint32_t *set, float x)
{
    return model_cat_goes_left(set, x); /* model.h: the rule above, shared with TreeSHAP */
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

/* xgboost's common::Sigmoid (src/common/math.h, 1.7.4 and 3.x alike): expf's argument clamped
 * with std::min(-x, 88.7f) (NaN stays NaN, unlike fminf), then 1 / (expf + 1 + 1e-16f) in float;
 * the epsilon vanishes next to 1, but the clamp does not: a margin below -88.7 gives 3.0066e-39,
 * not 0 (fixture logistic_extreme, computed by xgboost 1.7.4). */
static float xgb_sigmoid(float x)
{
    float e = 88.7f < -x ? 88.7f : -x;
    return 1.0f / (expf(e) + 1.0f + 1e-16f);
}

/* Output transform of one row's margins, in place.  Mirrors xgboost 1.7.4's PredTransform:
 * src/objective/regression_loss.h (LogisticRegression: xgb_sigmoid above),
 * src/objective/regression_obj.cu (Poisson, Gamma,
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
            out[i] = xgb_sigmoid(margin[i]);
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

/* ---- format 2: LightGBM 4.6
 * ---------------------------------------------------------------------- Each rule names the
 * LightGBM source it mirrors; tests/fixtures/refs/lgbm_* hold LightGBM's own outputs that prove
 * them bit for bit. */

/* include/LightGBM/tree.h CategoricalDecision: NaN goes right; int_fval = static_cast<int>(fval)
 * (truncation; a value outside int's range converts to INT_MIN on x86-64, i.e. negative), negative
 * goes right; otherwise left iff bit int_fval is set in the node's words (utils/common.h
 * FindInBitset: a word past the set's end is "not set"). */
static int lgbm_cat_left(const uint32_t *set, double x)
{
    if (isnan(x) || !(x > -2147483649.0 && x < 2147483648.0))
        return 0;
    int32_t i = (int32_t)x;
    if (i < 0)
        return 0;
    uint32_t w = (uint32_t)i / 32u;
    if (w >= set[0])
        return 0;
    return (set[1 + w] >> ((uint32_t)i % 32u)) & 1u;
}

/* tree.h NumericalDecision: NaN becomes 0.0 unless the missing type is NaN; a Zero-type node sends
 * |x| <= kZeroThreshold (IsZero), a NaN-type node sends NaN, to the default side; otherwise
 * x <= threshold goes left. */
static int lgbm_num_left(uint32_t split, double thr, double x)
{
    uint32_t miss = (split & MODEL_LGBM_MISSING_MASK) >> MODEL_LGBM_MISSING_SHIFT;
    if (isnan(x) && miss != MODEL_LGBM_MISSING_NAN)
        x = 0.0;
    if ((miss == MODEL_LGBM_MISSING_ZERO && x >= -MODEL_LGBM_ZERO && x <= MODEL_LGBM_ZERO) ||
        (miss == MODEL_LGBM_MISSING_NAN && isnan(x)))
        return (split & MODEL_NODE_DEFAULT_LEFT) != 0;
    return x <= thr;
}

double refeval_lgbm_tree_leaf(const model_view *m, uint32_t tree, const double *row)
{
    const model_lgbm_node *nodes = m->lnodes + m->trees[tree].first_node;
    int32_t nid = 0;
    /* tree.h GetLeaf: walk until a leaf; canonical order guarantees termination. */
    while (nodes[nid].left != -1) {
        const model_lgbm_node *nd = &nodes[nid];
        /* c_api.cpp RowFunctionFromDenseMatric keeps only |v| > kZeroThreshold or NaN; the
         * predictor's dense buffer holds 0.0 for the rest. */
        double x = refeval_lgbm_input(row[nd->split & MODEL_LGBM_FEATURE_MASK]);
        int left = (nd->split & MODEL_NODE_CATEGORICAL)
                       ? lgbm_cat_left(m->cats + nd->cat, x)
                       : lgbm_num_left(nd->split, model_lgbm_value(nd->value), x);
        nid = left ? nd->left : nd->right;
    }
    return model_lgbm_value(nodes[nid].value);
}

/* The objectives' ConvertOutput (src/objective/, the *_objective.hpp files), all in double: binary
 * and multiclassova 1.0f / (1.0f + exp(-sigmoid * x)); cross_entropy 1.0f / (1.0f + exp(-x));
 * cross_entropy_lambda log1p(exp(x)); poisson, gamma and tweedie exp(x); the regression family
 * identity, or with "sqrt" Common::Sign(x) * x * x; multiclass Common::Softmax (max-subtracted exp,
 * summed in double, divided); lambdarank and rank_xendcg identity
 * (ObjectiveFunction::ConvertOutput). */
void refeval_lgbm_transform(const model_view *m, const double *raw, double *out)
{
    const model_file_header *h = m->hdr;
    uint32_t k = h->num_class;
    double sig = m->lgbm_param;
    switch (h->objective) {
    case MODEL_OBJ_LGBM_BINARY:
        out[0] = 1.0 / (1.0 + exp(-sig * raw[0]));
        return;
    case MODEL_OBJ_LGBM_MULTICLASSOVA:
        for (uint32_t i = 0; i < k; i++)
            out[i] = 1.0 / (1.0 + exp(-sig * raw[i]));
        return;
    case MODEL_OBJ_LGBM_XENTROPY:
        out[0] = 1.0 / (1.0 + exp(-raw[0]));
        return;
    case MODEL_OBJ_LGBM_XENTLAMBDA:
        out[0] = log1p(exp(raw[0]));
        return;
    case MODEL_OBJ_LGBM_POISSON:
    case MODEL_OBJ_LGBM_GAMMA:
    case MODEL_OBJ_LGBM_TWEEDIE:
        out[0] = exp(raw[0]);
        return;
    case MODEL_OBJ_LGBM_MULTICLASS: {
        double wmax = raw[0];
        for (uint32_t i = 1; i < k; i++)
            wmax = raw[i] > wmax ? raw[i] : wmax; /* std::max(input[i], wmax) */
        double wsum = 0.0;
        for (uint32_t i = 0; i < k; i++) {
            out[i] = exp(raw[i] - wmax);
            wsum += out[i];
        }
        for (uint32_t i = 0; i < k; i++)
            out[i] /= wsum;
        return;
    }
    case MODEL_OBJ_LGBM_REGRESSION:
    case MODEL_OBJ_LGBM_REGRESSION_L1:
    case MODEL_OBJ_LGBM_HUBER:
    case MODEL_OBJ_LGBM_FAIR:
    case MODEL_OBJ_LGBM_QUANTILE:
    case MODEL_OBJ_LGBM_MAPE:
        if (h->flags & MODEL_LF_SQRT) {
            double x = raw[0];
            int sign = (x > 0.0) - (x < 0.0);
            out[0] = sign * x * x;
            return;
        }
        out[0] = raw[0];
        return;
    default: /* lambdarank, rank_xendcg */
        out[0] = raw[0];
        return;
    }
}

void refeval_lgbm_predict(const model_view *m, const double *rows, size_t nrows, int output_margin,
                          double *out)
{
    const model_file_header *h = m->hdr;
    uint32_t k = h->num_class;
    uint32_t per_row = model_outputs_per_row(m, output_margin);
    double raw[MODEL_MAX_CLASSES];
    for (size_t r = 0; r < nrows; r++) {
        const double *row = rows + r * h->num_feature;
        /* gbdt_prediction.cpp PredictRaw: zeroed outputs, then for each iteration i and class j,
         * output[j] += models_[i * num_tree_per_iteration + j]->Predict(features), in order. */
        for (uint32_t g = 0; g < k; g++)
            raw[g] = 0.0;
        for (uint32_t t = 0; t < h->num_trees; t++)
            raw[m->trees[t].group] += refeval_lgbm_tree_leaf(m, t, row);
        double *o = out + r * per_row;
        if (output_margin) {
            for (uint32_t g = 0; g < k; g++)
                o[g] = raw[g];
        } else {
            refeval_lgbm_transform(m, raw, o);
        }
    }
}
