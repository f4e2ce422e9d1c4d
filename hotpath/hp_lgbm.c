/* hp_lgbm.c - LightGBM layout and walks.  See hp_lgbm.h; the rules are refeval.c's (format 2),
 * which names the LightGBM source of each. */
#include "hp_lgbm.h"

#include <math.h>
#include <string.h>

#include "refeval.h"

#define ALIGN64(x) (((x) + 63u) & ~(size_t)63u)

/* Size of the binned extras (0 when the model cannot be binned). */
static size_t binned_bytes(const model_view *v)
{
    const model_file_header *h = v->hdr;
    if (h->num_cat_words != 0 || h->num_feature > HPL_BIN_MAX_FEATURES)
        return 0;
    size_t internal = 0;
    for (uint32_t i = 0; i < h->num_nodes; i++) {
        const model_lgbm_node *s = &v->lnodes[i];
        if (s->left == -1)
            continue;
        if ((s->split & MODEL_NODE_CATEGORICAL) || isnan(model_lgbm_value(s->value)))
            return 0;
        internal++;
    }
    size_t kinds = (size_t)HPL_BIN_KINDS * h->num_feature; /* (feature, kind) pairs */
    return ALIGN64((size_t)h->num_nodes * sizeof(hpl_bnode)) +
           ALIGN64(((size_t)h->num_feature + 1) * sizeof(uint32_t)) +
           ALIGN64(internal * sizeof(double)) + ALIGN64((size_t)h->num_feature * sizeof(uint16_t)) +
           ALIGN64(kinds * sizeof(uint16_t)) + ALIGN64(kinds * sizeof(uint32_t)) + ALIGN64(kinds);
}

static size_t plain_bytes(const model_view *v)
{
    const model_file_header *h = v->hdr;
    return ALIGN64(sizeof(hp_lgbm)) + 2 * ALIGN64((size_t)h->num_trees * sizeof(uint32_t)) +
           ALIGN64((size_t)h->num_nodes * sizeof(hpl_node)) +
           ALIGN64((size_t)h->num_nodes * sizeof(double)) +
           ALIGN64((size_t)h->num_cat_words * sizeof(uint32_t));
}

size_t hp_lgbm_bytes(const model_view *v)
{
    return plain_bytes(v) + binned_bytes(v);
}

static void sift_down(double *a, size_t i, size_t n)
{
    double x = a[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && a[c] < a[c + 1])
            c++;
        if (!(x < a[c]))
            break;
        a[i] = a[c];
        i = c;
    }
    a[i] = x;
}

/* Heap sort (no allocation); a holds no NaN. */
static void sort_doubles(double *a, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(a, i, n);
    for (size_t e = n; e-- > 1;) {
        double t = a[0];
        a[0] = a[e];
        a[e] = t;
        sift_down(a, 0, e);
    }
}

/* #{T[i] < x} for sorted T[0..n) (x not NaN). */
static inline uint32_t count_below(const double *T, uint32_t n, double x)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (T[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The bin kind of a numerical node (hp_lgbm.h): 0 None, 1/2 NaN left/right, 3/4 Zero left/right. */
static uint32_t bin_kind(uint32_t split)
{
    uint32_t miss = (split & MODEL_LGBM_MISSING_MASK) >> MODEL_LGBM_MISSING_SHIFT;
    int defleft = (split & MODEL_NODE_DEFAULT_LEFT) != 0;
    return miss == MODEL_LGBM_MISSING_NONE  ? 0u
           : miss == MODEL_LGBM_MISSING_NAN ? (defleft ? 1u : 2u)
                                            : (defleft ? 3u : 4u);
}

/* Builds the binned extras at p (binned_bytes(v) bytes) from the plain layout already in m.
 * Returns 0, or -1 when a feature has more than 65534 nodes (the model then stays plain). */
static int build_binned(hp_lgbm *m, const model_view *v, uint8_t *p)
{
    const model_file_header *h = v->hdr;
    uint32_t nf = h->num_feature;
    hpl_bnode *bn = (hpl_bnode *)p;
    uint32_t *off = (uint32_t *)(p + ALIGN64((size_t)h->num_nodes * sizeof(hpl_bnode)));
    double *thr = (double *)((uint8_t *)off + ALIGN64(((size_t)nf + 1) * sizeof(uint32_t)));
    size_t internal = 0;
    for (uint32_t i = 0; i < h->num_nodes; i++)
        internal += v->lnodes[i].left != -1;
    uint16_t *zb = (uint16_t *)((uint8_t *)thr + ALIGN64(internal * sizeof(double)));
    size_t kinds = (size_t)HPL_BIN_KINDS * nf;
    uint16_t *slot = (uint16_t *)((uint8_t *)zb + ALIGN64((size_t)nf * sizeof(uint16_t)));
    uint32_t *slot_f = (uint32_t *)((uint8_t *)slot + ALIGN64(kinds * sizeof(uint16_t)));
    uint8_t *slot_k = (uint8_t *)slot_f + ALIGN64(kinds * sizeof(uint32_t));
    /* counting sort of the thresholds by feature: count, prefix, place, shift back */
    memset(off, 0, ((size_t)nf + 1) * sizeof(uint32_t));
    for (uint32_t i = 0; i < h->num_nodes; i++)
        if (v->lnodes[i].left != -1)
            off[(v->lnodes[i].split & MODEL_LGBM_FEATURE_MASK) + 1]++;
    for (uint32_t f = 0; f < nf; f++) {
        if (off[f + 1] > 65534u)
            return -1;
        off[f + 1] += off[f];
    }
    for (uint32_t i = 0; i < h->num_nodes; i++)
        if (v->lnodes[i].left != -1)
            thr[off[v->lnodes[i].split & MODEL_LGBM_FEATURE_MASK]++] =
                model_lgbm_value(v->lnodes[i].value);
    for (uint32_t f = nf; f > 0; f--)
        off[f] = off[f - 1];
    off[0] = 0;
    for (uint32_t f = 0; f < nf; f++) {
        sort_doubles(thr + off[f], off[f + 1] - off[f]);
        zb[f] = (uint16_t)count_below(thr + off[f], off[f + 1] - off[f], 0.0);
    }
    /* Slots: only the (feature, kind) pairs some node uses get a bin in a row's vector, in
     * (feature, kind) order, so a row's bins stay small and are filled feature by feature. */
    for (size_t i = 0; i < kinds; i++)
        slot[i] = 0xFFFFu;
    for (uint32_t i = 0; i < h->num_nodes; i++)
        if (v->lnodes[i].left != -1)
            slot[HPL_BIN_KINDS * (v->lnodes[i].split & MODEL_LGBM_FEATURE_MASK) +
                 bin_kind(v->lnodes[i].split)] = 0;
    uint32_t nslots = 0;
    for (size_t i = 0; i < kinds; i++) {
        if (slot[i] == 0xFFFFu)
            continue;
        slot[i] = (uint16_t)nslots;
        slot_f[nslots] = (uint32_t)(i / HPL_BIN_KINDS);
        slot_k[nslots] = (uint8_t)(i % HPL_BIN_KINDS);
        nslots++; /* <= kinds <= 5 * HPL_BIN_MAX_FEATURES < 65535 */
    }
    for (uint32_t t = 0; t < h->num_trees; t++) {
        const model_tree_rec *tr = &v->trees[t];
        for (uint32_t i = 0; i < tr->num_nodes; i++) {
            const model_lgbm_node *s = &v->lnodes[tr->first_node + i];
            hpl_bnode *d = &bn[tr->first_node + i];
            if (s->left == -1) {
                d->w = 65535u << 16;
                d->left = i;
                continue;
            }
            uint32_t f = s->split & MODEL_LGBM_FEATURE_MASK;
            uint32_t j = count_below(thr + off[f], off[f + 1] - off[f], model_lgbm_value(s->value));
            d->w = slot[HPL_BIN_KINDS * f + bin_kind(s->split)] | j << 16;
            d->left = (uint32_t)s->left;
        }
    }
    m->nslots = nslots;
    m->slot_f = slot_f;
    m->slot_k = slot_k;
    m->bnodes = bn;
    m->thr_off = off;
    m->thr = thr;
    m->zero_bin = zb;
    m->flags |= HPL_F_BINNED;
    return 0;
}

const hp_lgbm *hp_lgbm_build(const model_view *v, void *dst, size_t len)
{
    const model_file_header *h = v->hdr;
    if (v->format != MODEL_FORMAT_LGBM || len < hp_lgbm_bytes(v))
        return NULL;
    uint8_t *base = dst;
    hp_lgbm *m = dst;
    uint32_t *first = (uint32_t *)(base + ALIGN64(sizeof(hp_lgbm)));
    uint32_t *depth =
        (uint32_t *)((uint8_t *)first + ALIGN64((size_t)h->num_trees * sizeof(uint32_t)));
    hpl_node *nodes =
        (hpl_node *)((uint8_t *)depth + ALIGN64((size_t)h->num_trees * sizeof(uint32_t)));
    double *leaf = (double *)((uint8_t *)nodes + ALIGN64((size_t)h->num_nodes * sizeof(hpl_node)));
    uint32_t *cats = (uint32_t *)((uint8_t *)leaf + ALIGN64((size_t)h->num_nodes * sizeof(double)));
    memset(m, 0, sizeof *m);
    m->objective = h->objective;
    m->num_feature = h->num_feature;
    m->num_class = h->num_class;
    m->num_trees = h->num_trees;
    m->lflags = h->flags;
    m->param = v->lgbm_param;
    for (uint32_t t = 0; t < h->num_trees; t++) {
        const model_tree_rec *tr = &v->trees[t];
        first[t] = tr->first_node;
        /* depth: canonical order puts children after parents, so one pass over leaf[] (as a
         * scratch of per-node depths, overwritten below) finds the longest path */
        uint32_t dmax = 0;
        for (uint32_t i = 0; i < tr->num_nodes; i++) {
            const model_lgbm_node *s = &v->lnodes[tr->first_node + i];
            double di = i == 0 ? 0.0 : leaf[tr->first_node + i];
            if (s->left == -1) {
                if ((uint32_t)di > dmax)
                    dmax = (uint32_t)di;
                continue;
            }
            leaf[tr->first_node + (uint32_t)s->left] = di + 1.0;
            leaf[tr->first_node + (uint32_t)s->left + 1] = di + 1.0;
        }
        depth[t] = dmax;
    }
    for (uint32_t i = 0; i < h->num_nodes; i++) {
        const model_lgbm_node *s = &v->lnodes[i];
        hpl_node *d = &nodes[i];
        leaf[i] = 0.0;
        if (s->left == -1) {
            /* a node that leads to itself: x <= inf, NaN goes "left" (to left == itself) */
            leaf[i] = model_lgbm_value(s->value);
            d->v = INFINITY;
            d->ff = HPL_LEAF | HPL_NANLEFT;
            d->left = 0; /* set to its own tree-local index below */
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
    /* leaves lead to themselves (tree-local index) */
    for (uint32_t t = 0; t < h->num_trees; t++) {
        const model_tree_rec *tr = &v->trees[t];
        for (uint32_t i = 0; i < tr->num_nodes; i++)
            if (nodes[tr->first_node + i].ff & HPL_LEAF)
                nodes[tr->first_node + i].left = i;
    }
    if (h->num_cat_words)
        memcpy(cats, v->cats, (size_t)h->num_cat_words * sizeof(uint32_t));
    m->first = first;
    m->depth = depth;
    m->leaf = leaf;
    m->nodes = nodes;
    m->cats = cats;
    m->bytes = hp_lgbm_bytes(v);
    if (binned_bytes(v) > 0)
        (void)build_binned(m, v, base + plain_bytes(v)); /* stays plain if it does not apply */
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

/* One tree (nodes nd, leaf values lv, longest path depth), rows r[0..cnt) (already offset),
 * leaves added to acc[j * k + g].  HPL_LANES rows step together exactly depth times with no
 * data-dependent branch (leaves lead to themselves), so their node loads overlap. */
static void tree_block_fast(const hpl_node *nd, const double *lv, uint32_t depth,
                            const double *const *r, unsigned cnt, double *acc, uint32_t k,
                            uint32_t g)
{
    unsigned j = 0;
    for (; j + HPL_LANES <= cnt; j += HPL_LANES) {
        uint32_t idx[HPL_LANES] = {0};
        const double *const *rr = r + j;
        for (uint32_t s = 0; s < depth; s++) {
            for (unsigned l = 0; l < HPL_LANES; l++) {
                const hpl_node *n = &nd[idx[l]];
                double x = refeval_lgbm_input(rr[l][n->ff & HPL_FEATURE_MASK]);
                idx[l] = n->left + go_right_fast(n, x);
            }
        }
        for (unsigned l = 0; l < HPL_LANES; l++)
            acc[(size_t)(j + l) * k + g] += lv[idx[l]];
    }
    for (; j < cnt; j++) {
        uint32_t i = 0;
        while (!(nd[i].ff & HPL_LEAF)) {
            double x = refeval_lgbm_input(r[j][nd[i].ff & HPL_FEATURE_MASK]);
            i = nd[i].left + go_right_fast(&nd[i], x);
        }
        acc[(size_t)j * k + g] += lv[i];
    }
}

static void tree_block_full(const hp_lgbm *m, uint32_t t, const hpl_node *nd,
                            const double *const *r, unsigned cnt, double *acc, uint32_t k,
                            uint32_t g)
{
    for (unsigned j = 0; j < cnt; j++) {
        uint32_t i = 0;
        while (!(nd[i].ff & HPL_LEAF)) {
            double x = refeval_lgbm_input(r[j][nd[i].ff & HPL_FEATURE_MASK]);
            i = nd[i].left + (uint32_t)!go_left_full(m, &nd[i], x);
        }
        acc[(size_t)j * k + g] += m->leaf[m->first[t] + i];
    }
}

/* Bins of one row (see hp_lgbm.h) into rb[0..nslots): one binary search per used feature. */
static void bin_row(const hp_lgbm *m, const double *row, uint16_t *rb)
{
    uint32_t prev = UINT32_MAX;
    double x = 0.0;
    uint16_t b = 0;
    int nan = 0;
    for (uint32_t s = 0; s < m->nslots; s++) {
        uint32_t f = m->slot_f[s];
        if (f != prev) { /* slots are in feature order: bin each feature once */
            prev = f;
            x = row[f];
            nan = isnan(x);
            if (!nan) {
                x = refeval_lgbm_input(x);
                uint32_t a = m->thr_off[f];
                b = (uint16_t)count_below(m->thr + a, m->thr_off[f + 1] - a, x);
            }
        }
        switch (m->slot_k[s]) {
        case 0: /* None: NaN is 0.0 */
            rb[s] = nan ? m->zero_bin[f] : b;
            break;
        case 1: /* NaN, default left */
            rb[s] = nan ? 0 : b;
            break;
        case 2: /* NaN, default right */
            rb[s] = nan ? 65535 : b;
            break;
        case 3: /* Zero (NaN is 0.0 too), default left */
            rb[s] = nan || x == 0.0 ? 0 : b;
            break;
        default: /* Zero, default right */
            rb[s] = nan || x == 0.0 ? 65535 : b;
            break;
        }
    }
}

/* One tree on binned rows: rb[j * stride ...] for rows j < cnt; HPL_LANES rows step together
 * depth times, branch-free. */
static void tree_block_bin(const hpl_bnode *nd, const double *lv, uint32_t depth,
                           const uint16_t *rb, size_t stride, unsigned cnt, double *acc, uint32_t k,
                           uint32_t g)
{
    unsigned j = 0;
    for (; j + HPL_LANES <= cnt; j += HPL_LANES) {
        uint32_t idx[HPL_LANES] = {0};
        const uint16_t *base = rb + (size_t)j * stride;
        for (uint32_t s = 0; s < depth; s++) {
            uint32_t live = 0; /* stays 0 while every lane stands on a leaf */
            for (unsigned l = 0; l < HPL_LANES; l++) {
                hpl_bnode n = nd[idx[l]];
                uint32_t bin = base[(size_t)l * stride + (n.w & 0xFFFFu)];
                live |= n.w + 0x10000u; /* 0 only for a leaf (65535 << 16) */
                idx[l] = n.left + (uint32_t)((bin << 16) > n.w);
            }
            if (!live) /* every lane stood on a leaf: done before the tree's depth */
                break;
        }
        for (unsigned l = 0; l < HPL_LANES; l++)
            acc[(size_t)(j + l) * k + g] += lv[idx[l]];
    }
    for (; j < cnt; j++) {
        const uint16_t *r = rb + (size_t)j * stride;
        uint32_t i = 0;
        for (uint32_t s = 0; s < depth; s++) {
            hpl_bnode n = nd[i];
            i = n.left + (uint32_t)(((uint32_t)r[n.w & 0xFFFFu] << 16) > n.w);
        }
        acc[(size_t)j * k + g] += lv[i];
    }
}

/* One binned row r through every tree, HPL_LANES trees stepping together (a single row has no
 * other rows to overlap with); the leaves are then added in tree order, as everywhere. */
static void row_trees_bin(const hp_lgbm *m, const uint16_t *r, double *acc)
{
    uint32_t k = m->num_class, t = 0;
    for (; t + HPL_LANES <= m->num_trees; t += HPL_LANES) {
        const hpl_bnode *nd[HPL_LANES];
        uint32_t idx[HPL_LANES], depth = 0;
        for (unsigned l = 0; l < HPL_LANES; l++) {
            nd[l] = m->bnodes + m->first[t + l];
            idx[l] = 0;
            depth = m->depth[t + l] > depth ? m->depth[t + l] : depth;
        }
        for (uint32_t s = 0; s < depth; s++) {
            uint32_t live = 0;
            for (unsigned l = 0; l < HPL_LANES; l++) {
                hpl_bnode n = nd[l][idx[l]];
                live |= n.w + 0x10000u; /* 0 only for a leaf */
                idx[l] = n.left + (uint32_t)(((uint32_t)r[n.w & 0xFFFFu] << 16) > n.w);
            }
            if (!live)
                break;
        }
        for (unsigned l = 0; l < HPL_LANES; l++)
            acc[(t + l) % k] += m->leaf[m->first[t + l] + idx[l]];
    }
    for (; t < m->num_trees; t++) {
        const hpl_bnode *nd = m->bnodes + m->first[t];
        uint32_t i = 0;
        for (uint32_t s = 0; s < m->depth[t]; s++) {
            hpl_bnode n = nd[i];
            i = n.left + (uint32_t)(((uint32_t)r[n.w & 0xFFFFu] << 16) > n.w);
        }
        acc[t % k] += m->leaf[m->first[t] + i];
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
    int binned = (m->flags & HPL_F_BINNED) != 0;
    size_t stride = m->nslots ? m->nslots : 1;
    uint16_t rb[HPL_BIN_SCRATCH / sizeof(uint16_t)];
    while (binned && block > 1 && (size_t)block * stride * sizeof(uint16_t) > sizeof rb)
        block /= 2; /* num_feature <= HPL_BIN_MAX_FEATURES keeps block >= 8 */
    /* k <= MODEL_MAX_CLASSES == HPL_ACC_MAX, so block >= 1 always fits */
    double acc[HPL_ACC_MAX];
    const double *r[HPL_BLOCK];
    for (size_t a = 0; a < nrows; a += block) {
        unsigned cnt = (unsigned)(nrows - a < block ? nrows - a : block);
        for (unsigned j = 0; j < cnt; j++)
            r[j] = rows + (a + j) * m->num_feature;
        for (size_t i = 0; i < (size_t)cnt * k; i++)
            acc[i] = 0.0;
        if (binned) {
            for (unsigned j = 0; j < cnt; j++)
                bin_row(m, r[j], rb + (size_t)j * stride);
            if (cnt < HPL_LANES) { /* too few rows to interleave: interleave trees */
                for (unsigned j = 0; j < cnt; j++)
                    row_trees_bin(m, rb + (size_t)j * stride, acc + (size_t)j * k);
            } else {
                for (uint32_t t = 0; t < m->num_trees; t++)
                    tree_block_bin(m->bnodes + m->first[t], m->leaf + m->first[t], m->depth[t], rb,
                                   stride, cnt, acc, k, t % k);
            }
        }
        for (uint32_t t = 0; t < m->num_trees && !binned; t++) {
            const hpl_node *nd = m->nodes + m->first[t];
            uint32_t g = t % k;
            if (m->flags & HPL_F_SLOW)
                tree_block_full(m, t, nd, r, cnt, acc, k, g);
            else
                tree_block_fast(nd, m->leaf + m->first[t], m->depth[t], r, cnt, acc, k, g);
        }
        for (unsigned j = 0; j < cnt; j++)
            emit(m, acc + (size_t)j * k, output_margin, out + (a + j) * per_row);
    }
}

typedef struct lgbm_job {
    const hp_lgbm *m;
    const double *rows;
    size_t nrows, chunk;
    int output_margin;
    double *out;
} lgbm_job;

static void lgbm_part(void *arg, unsigned part)
{
    const lgbm_job *j = arg;
    size_t a = (size_t)part * j->chunk;
    size_t b = a + j->chunk < j->nrows ? a + j->chunk : j->nrows;
    uint32_t per_row = hp_lgbm_outputs(j->m, j->output_margin);
    if (a < b)
        hp_lgbm_score(j->m, j->rows + a * j->m->num_feature, b - a, j->output_margin,
                      j->out + a * per_row);
}

void hp_lgbm_score_pool(const hp_lgbm *m, const double *rows, size_t nrows, int output_margin,
                        double *out, hp_pool *pool, uint64_t min_parallel_work)
{
    unsigned helpers = hp_pool_threads(pool);
    if (helpers == 0 || nrows <= HPL_BLOCK ||
        (uint64_t)nrows * (m->num_trees ? m->num_trees : 1) < min_parallel_work) {
        hp_lgbm_score(m, rows, nrows, output_margin, out);
        return;
    }
    unsigned nparts = helpers + 1;
    size_t chunk = (nrows + nparts - 1) / nparts;
    chunk = (chunk + HPL_BLOCK - 1) / HPL_BLOCK * HPL_BLOCK;
    lgbm_job j = {m, rows, nrows, chunk, output_margin, out};
    hp_pool_run(pool, lgbm_part, &j, nparts);
}
