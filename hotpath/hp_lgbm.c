/* hp_lgbm.c - LightGBM layout and walks.  See hp_lgbm.h; the rules are refeval.c's (format 2),
 * which names the LightGBM source of each. */
#include "hp_lgbm.h"

#include <math.h>
#include <string.h>

#include "refeval.h"

#define ALIGN64(x) (((x) + 63u) & ~(size_t)63u)

size_t hp_lgbm_bytes(const model_view *v)
{
    const model_file_header *h = v->hdr;
    return ALIGN64(sizeof(hp_lgbm)) + ALIGN64((size_t)h->num_trees * sizeof(uint32_t)) +
           ALIGN64((size_t)h->num_nodes * sizeof(hpl_node)) +
           ALIGN64((size_t)h->num_cat_words * sizeof(uint32_t));
}

const hp_lgbm *hp_lgbm_build(const model_view *v, void *dst, size_t len)
{
    const model_file_header *h = v->hdr;
    if (v->format != MODEL_FORMAT_LGBM || len < hp_lgbm_bytes(v))
        return NULL;
    uint8_t *base = dst;
    hp_lgbm *m = dst;
    uint32_t *first = (uint32_t *)(base + ALIGN64(sizeof(hp_lgbm)));
    hpl_node *nodes =
        (hpl_node *)((uint8_t *)first + ALIGN64((size_t)h->num_trees * sizeof(uint32_t)));
    uint32_t *cats = (uint32_t *)((uint8_t *)nodes + ALIGN64((size_t)h->num_nodes * sizeof(hpl_node)));
    memset(m, 0, sizeof *m);
    m->objective = h->objective;
    m->num_feature = h->num_feature;
    m->num_class = h->num_class;
    m->num_trees = h->num_trees;
    m->lflags = h->flags;
    m->param = v->lgbm_param;
    for (uint32_t t = 0; t < h->num_trees; t++)
        first[t] = v->trees[t].first_node;
    for (uint32_t i = 0; i < h->num_nodes; i++) {
        const model_lgbm_node *s = &v->lnodes[i];
        hpl_node *d = &nodes[i];
        if (s->left == -1) {
            d->v = model_lgbm_value(s->value);
            d->ff = HPL_LEAF;
            d->left = 0;
            continue;
        }
        uint32_t miss = (s->split & MODEL_LGBM_MISSING_MASK) >> MODEL_LGBM_MISSING_SHIFT;
        int defleft = (s->split & MODEL_NODE_DEFAULT_LEFT) != 0;
        d->ff = s->split & MODEL_LGBM_FEATURE_MASK; /* < MODEL_MAX_FEATURES <= HPL_FEATURE_MASK */
        d->left = (uint32_t)s->left;
        if (s->split & MODEL_NODE_CATEGORICAL) {
            d->ff |= HPL_CAT;
            d->v = (double)s->cat; /* exact: < 2^24 */
            m->flags |= HPL_F_SLOW;
            continue;
        }
        d->v = model_lgbm_value(s->value);
        if (defleft)
            d->ff |= HPL_DEFLEFT;
        if (miss == MODEL_LGBM_MISSING_NONE) {
            if (0.0 <= d->v) /* NaN becomes 0.0 and is compared */
                d->ff |= HPL_NANLEFT;
        } else {
            if (defleft) /* NaN (either type) takes the default side */
                d->ff |= HPL_NANLEFT;
            if (miss == MODEL_LGBM_MISSING_ZERO) {
                d->ff |= HPL_ZERO;
                m->flags |= HPL_F_SLOW;
            }
        }
    }
    if (h->num_cat_words)
        memcpy(cats, v->cats, (size_t)h->num_cat_words * sizeof(uint32_t));
    m->first = first;
    m->nodes = nodes;
    m->cats = cats;
    m->bytes = hp_lgbm_bytes(v);
    return m;
}

uint32_t hp_lgbm_outputs(const hp_lgbm *m, int output_margin)
{
    if (output_margin || model_objective_multi_output(m->objective))
        return m->num_class;
    return 1;
}

/* refeval.c lgbm_cat_left, kept identical. */
static inline int cat_left(const uint32_t *set, double x)
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

/* The general decision (categorical and missing-Zero nodes too).  x has had the zero drop. */
static inline int go_left_full(const hp_lgbm *m, const hpl_node *n, double x)
{
    if (n->ff & HPL_CAT)
        return cat_left(m->cats + (uint32_t)n->v, x);
    if (isnan(x))
        return (n->ff & HPL_NANLEFT) != 0;
    if ((n->ff & HPL_ZERO) && x == 0.0)
        return (n->ff & HPL_DEFLEFT) != 0;
    return x <= n->v;
}

/* The numerical decision of a node that is neither categorical nor missing-Zero, branch-free. */
static inline uint32_t go_right_fast(const hpl_node *n, double x)
{
    uint32_t left = (uint32_t)(x <= n->v) | ((uint32_t)(x != x) & (n->ff >> 31));
    return left ^ 1u;
}

/* One tree, rows r[0..cnt) (already offset), leaves added to acc[j * k + g]. */
static void tree_block_fast(const hpl_node *nd, const double *const *r, unsigned cnt, double *acc,
                            uint32_t k, uint32_t g)
{
    unsigned j = 0;
    for (; j + HPL_LANES <= cnt; j += HPL_LANES) {
        uint32_t idx[HPL_LANES] = {0};
        unsigned live;
        do {
            live = 0;
            for (unsigned l = 0; l < HPL_LANES; l++) {
                const hpl_node *n = &nd[idx[l]];
                if (n->ff & HPL_LEAF)
                    continue;
                live++;
                double x = refeval_lgbm_input(r[j + l][n->ff & HPL_FEATURE_MASK]);
                idx[l] = n->left + go_right_fast(n, x);
            }
        } while (live);
        for (unsigned l = 0; l < HPL_LANES; l++)
            acc[(size_t)(j + l) * k + g] += nd[idx[l]].v;
    }
    for (; j < cnt; j++) {
        uint32_t i = 0;
        while (!(nd[i].ff & HPL_LEAF)) {
            double x = refeval_lgbm_input(r[j][nd[i].ff & HPL_FEATURE_MASK]);
            i = nd[i].left + go_right_fast(&nd[i], x);
        }
        acc[(size_t)j * k + g] += nd[i].v;
    }
}

static void tree_block_full(const hp_lgbm *m, const hpl_node *nd, const double *const *r,
                            unsigned cnt, double *acc, uint32_t k, uint32_t g)
{
    for (unsigned j = 0; j < cnt; j++) {
        uint32_t i = 0;
        while (!(nd[i].ff & HPL_LEAF)) {
            double x = refeval_lgbm_input(r[j][nd[i].ff & HPL_FEATURE_MASK]);
            i = nd[i].left + (uint32_t)!go_left_full(m, &nd[i], x);
        }
        acc[(size_t)j * k + g] += nd[i].v;
    }
}

/* The transform through refeval_lgbm_transform itself (one definition of the arithmetic). */
static void emit(const hp_lgbm *m, const double *raw, int output_margin, double *o)
{
    if (output_margin) {
        memcpy(o, raw, (size_t)m->num_class * sizeof(double));
        return;
    }
    model_file_header h;
    memset(&h, 0, sizeof h);
    h.objective = m->objective;
    h.flags = m->lflags;
    h.num_class = m->num_class;
    model_view v;
    memset(&v, 0, sizeof v);
    v.hdr = &h;
    v.format = MODEL_FORMAT_LGBM;
    v.lgbm_param = m->param;
    refeval_lgbm_transform(&v, raw, o);
}

void hp_lgbm_score(const hp_lgbm *m, const double *rows, size_t nrows, int output_margin,
                   double *out)
{
    uint32_t k = m->num_class;
    uint32_t per_row = hp_lgbm_outputs(m, output_margin);
    unsigned block = HPL_BLOCK;
    while (block > 1 && (size_t)block * k > HPL_ACC_MAX)
        block /= 2;
    /* k <= MODEL_MAX_CLASSES == HPL_ACC_MAX, so block >= 1 always fits */
    double acc[HPL_ACC_MAX];
    const double *r[HPL_BLOCK];
    for (size_t a = 0; a < nrows; a += block) {
        unsigned cnt = (unsigned)(nrows - a < block ? nrows - a : block);
        for (unsigned j = 0; j < cnt; j++)
            r[j] = rows + (a + j) * m->num_feature;
        for (size_t i = 0; i < (size_t)cnt * k; i++)
            acc[i] = 0.0;
        for (uint32_t t = 0; t < m->num_trees; t++) {
            const hpl_node *nd = m->nodes + m->first[t];
            uint32_t g = t % k;
            if (m->flags & HPL_F_SLOW)
                tree_block_full(m, nd, r, cnt, acc, k, g);
            else
                tree_block_fast(nd, r, cnt, acc, k, g);
        }
        for (unsigned j = 0; j < cnt; j++)
            emit(m, acc + (size_t)j * k, output_margin, out + (a + j) * per_row);
    }
}
