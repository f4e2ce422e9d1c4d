/* hp_lgbm.c - LightGBM layout and walks.  See hp_lgbm.h; the rules are refeval.c's (format 2),
 * which names the LightGBM source of each. */
#include "hp_lgbm.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "refeval.h"

#define ALIGN64(x) (((x) + 63u) & ~(size_t)63u)

/* Bytes of the binned extras for `internal` internal nodes (see build_binned for the parts). */
static size_t binned_parts(const model_file_header *h, size_t internal)
{
    size_t nf = h->num_feature, kinds = (size_t)HPL_BIN_KINDS * nf;
    return ALIGN64((size_t)h->num_nodes * 2 * sizeof(uint32_t)) /* bnodes */
           + ALIGN64((nf + 1) * sizeof(uint32_t))               /* off (per feature, build only) */
           + ALIGN64(internal * sizeof(double))                 /* thr */
           + 4 * ALIGN64((nf + 1) * sizeof(uint32_t))           /* feat, toff, zbin, fslot */
           + ALIGN64(kinds * sizeof(uint16_t))                  /* slot of (feature, kind), build */
           + ALIGN64(kinds)                                     /* slot_k */
           + ALIGN64((size_t)h->num_trees * sizeof(uint32_t));  /* order */
}

/* Whether the model can be binned whatever its thresholds: HPL_WHY_BINNED, or why not. */
static uint32_t binned_why(const model_view *v)
{
    const model_file_header *h = v->hdr;
    if (h->num_cat_words != 0)
        return HPL_WHY_CATEGORICAL;
    for (uint32_t i = 0; i < h->num_nodes; i++) {
        const model_lgbm_node *s = &v->lnodes[i];
        if (s->left == -1)
            continue;
        if (s->split & MODEL_NODE_CATEGORICAL)
            return HPL_WHY_CATEGORICAL;
        if (isnan(model_lgbm_value(s->value)))
            return HPL_WHY_NAN_THRESHOLD;
    }
    return HPL_WHY_BINNED;
}

/* Size of the binned extras (0 when the model cannot be binned whatever its thresholds). */
static size_t binned_bytes(const model_view *v)
{
    const model_file_header *h = v->hdr;
    if (binned_why(v) != HPL_WHY_BINNED)
        return 0;
    size_t internal = 0;
    for (uint32_t i = 0; i < h->num_nodes; i++)
        internal += v->lnodes[i].left != -1;
    return binned_parts(h, internal);
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

/* Sorts the trees of each chunk of HPL_ROW_CHUNK by depth (insertion sort on a copy of the
 * indices: stable, O(chunk^2) at most once per load). */
static void order_by_depth(const uint32_t *depth, uint32_t ntrees, uint32_t *order)
{
    for (uint32_t c0 = 0; c0 < ntrees; c0 += HPL_ROW_CHUNK) {
        uint32_t cn = ntrees - c0 < HPL_ROW_CHUNK ? ntrees - c0 : HPL_ROW_CHUNK;
        uint32_t *o = order + c0;
        for (uint32_t i = 0; i < cn; i++) {
            uint32_t t = c0 + i, j = i;
            while (j > 0 && depth[o[j - 1]] > depth[t]) {
                o[j] = o[j - 1];
                j--;
            }
            o[j] = t;
        }
    }
}

/* Builds the binned extras at p (binned_bytes(v) bytes) from the plain layout already in m.
 * Returns HPL_WHY_BINNED, or HPL_WHY_SLOTS / HPL_WHY_THRESHOLDS when the model has too many slots
 * or distinct thresholds for one feature (it then stays plain). */
static int build_binned(hp_lgbm *m, const model_view *v, uint8_t *p)
{
    const model_file_header *h = v->hdr;
    const uint32_t nf = h->num_feature;
    size_t internal = 0;
    for (uint32_t i = 0; i < h->num_nodes; i++)
        internal += v->lnodes[i].left != -1;
    size_t kinds = (size_t)HPL_BIN_KINDS * nf, n1 = ALIGN64(((size_t)nf + 1) * sizeof(uint32_t));
    uint32_t *bn = (uint32_t *)p; /* node i: bn[2 i] word, bn[2 i + 1] next */
    uint32_t *off = (uint32_t *)(p + ALIGN64((size_t)h->num_nodes * 2 * sizeof(uint32_t)));
    double *thr = (double *)((uint8_t *)off + n1);
    uint32_t *feat = (uint32_t *)((uint8_t *)thr + ALIGN64(internal * sizeof(double)));
    uint32_t *toff = (uint32_t *)((uint8_t *)feat + n1);
    uint32_t *zbin = (uint32_t *)((uint8_t *)toff + n1);
    uint32_t *fslot = (uint32_t *)((uint8_t *)zbin + n1);
    uint16_t *slot = (uint16_t *)((uint8_t *)fslot + n1);
    uint8_t *slot_k = (uint8_t *)slot + ALIGN64(kinds * sizeof(uint16_t));
    uint32_t *order = (uint32_t *)(slot_k + ALIGN64(kinds));
    /* counting sort of the thresholds by feature: count, prefix, place, shift back */
    memset(off, 0, ((size_t)nf + 1) * sizeof(uint32_t));
    for (uint32_t i = 0; i < h->num_nodes; i++)
        if (v->lnodes[i].left != -1)
            off[(v->lnodes[i].split & MODEL_LGBM_FEATURE_MASK) + 1]++;
    for (uint32_t f = 0; f < nf; f++)
        off[f + 1] += off[f];
    for (uint32_t i = 0; i < h->num_nodes; i++)
        if (v->lnodes[i].left != -1)
            thr[off[v->lnodes[i].split & MODEL_LGBM_FEATURE_MASK]++] =
                model_lgbm_value(v->lnodes[i].value);
    for (uint32_t f = nf; f > 0; f--)
        off[f] = off[f - 1];
    off[0] = 0;
    /* Slots: only the (feature, kind) pairs some node uses get a bin word, in (feature, kind)
     * order, so a row's words stay few and are filled feature by feature. */
    for (size_t i = 0; i < kinds; i++)
        slot[i] = 0xFFFFu;
    for (uint32_t i = 0; i < h->num_nodes; i++)
        if (v->lnodes[i].left != -1)
            slot[HPL_BIN_KINDS * (v->lnodes[i].split & MODEL_LGBM_FEATURE_MASK) +
                 bin_kind(v->lnodes[i].split)] = 0;
    uint32_t nslots = 0, nused = 0, w = 0;
    for (uint32_t f = 0; f < nf; f++) {
        uint32_t a = off[f], b = off[f + 1];
        if (a == b)
            continue;
        /* sort the feature's thresholds, keep the distinct ones (by <: -0.0 and 0.0 are one, and
         * LightGBM's x <= t cannot tell them apart either), compact towards the front */
        sort_doubles(thr + a, b - a);
        uint32_t start = w;
        for (uint32_t i = a; i < b; i++)
            if (w == start || thr[w - 1] < thr[i])
                thr[w++] = thr[i];
        if (w - start > HPL_BIN_MAX_THRESHOLDS)
            return HPL_WHY_THRESHOLDS;
        feat[nused] = f;
        toff[nused] = start;
        zbin[nused] = count_below(thr + start, w - start, 0.0) << 16;
        fslot[nused] = nslots;
        for (uint32_t k = 0; k < HPL_BIN_KINDS; k++) {
            if (slot[HPL_BIN_KINDS * f + k] == 0xFFFFu)
                continue;
            if (nslots >= HPL_BIN_MAX_SLOTS)
                return HPL_WHY_SLOTS;
            slot[HPL_BIN_KINDS * f + k] = (uint16_t)nslots;
            slot_k[nslots++] = (uint8_t)k;
        }
        nused++;
    }
    toff[nused] = w;
    fslot[nused] = nslots;
    /* Ranks: feature f's distinct thresholds are thr[toff[u] ..) for its u; off[] is free now, so
     * it maps f to u. */
    for (uint32_t u = 0; u < nused; u++)
        off[feat[u]] = u;
    for (uint32_t t = 0; t < h->num_trees; t++) {
        const model_tree_rec *tr = &v->trees[t];
        for (uint32_t i = 0; i < tr->num_nodes; i++) {
            uint32_t at = tr->first_node + i;
            const model_lgbm_node *s = &v->lnodes[at];
            if (s->left == -1) {
                bn[2 * (size_t)at] = 0xFFFF0000u;
                bn[2 * (size_t)at + 1] = at;
                continue;
            }
            uint32_t f = s->split & MODEL_LGBM_FEATURE_MASK, u = off[f];
            uint32_t j =
                count_below(thr + toff[u], toff[u + 1] - toff[u], model_lgbm_value(s->value));
            uint32_t word = HPL_BIN_LANES * slot[HPL_BIN_KINDS * f + bin_kind(s->split)] | j << 16;
            bn[2 * (size_t)at] = word;
            bn[2 * (size_t)at + 1] = tr->first_node + (uint32_t)s->left;
        }
    }
    order_by_depth(m->depth, h->num_trees, order);
    m->bnodes = bn;
    m->nslots = nslots;
    m->nused = nused;
    m->feat = feat;
    m->toff = toff;
    m->thr = thr;
    m->zbin = zbin;
    m->fslot = fslot;
    m->slot_k = slot_k;
    m->order = order;
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
    m->why = binned_why(v);
    if (m->why == HPL_WHY_BINNED)
        m->why = (uint32_t)build_binned(m, v, base + plain_bytes(v)); /* plain if it fails */
    return m;
}

const char *hp_lgbm_describe(const hp_lgbm *m, char *buf, size_t len)
{
    static const char *const why[] = {
        [HPL_WHY_BINNED] = "binned",
        [HPL_WHY_CATEGORICAL] = "a categorical split",
        [HPL_WHY_NAN_THRESHOLD] = "a NaN threshold",
        [HPL_WHY_SLOTS] = "over 4095 (feature, missing type) pairs",
        [HPL_WHY_THRESHOLDS] = "a feature with over 65534 distinct thresholds",
    };
    uint32_t dmax = 0;
    uint64_t dsum = 0;
    for (uint32_t t = 0; t < m->num_trees; t++) {
        dmax = m->depth[t] > dmax ? m->depth[t] : dmax;
        dsum += m->depth[t];
    }
    double dmean = m->num_trees ? (double)dsum / m->num_trees : 0.0;
    if (m->flags & HPL_F_BINNED)
        snprintf(buf, len,
                 "lightgbm binned (%u trees, linked u32-pair nodes, depth mean %.1f max %u; %u bin "
                 "words a row over %u features): numerical splits only, thresholds binned exactly "
                 "in double",
                 m->num_trees, dmean, dmax, m->nslots, m->nused);
    else
        snprintf(buf, len,
                 "lightgbm plain (%u trees, 16-byte double nodes, %s; depth mean %.1f max %u): not "
                 "binned because of %s",
                 m->num_trees,
                 (m->flags & HPL_F_SLOW) ? "the general decision (categorical or missing-Zero)"
                                         : "branch-free decisions",
                 dmean, dmax, m->why < sizeof why / sizeof why[0] ? why[m->why] : "?");
    return buf;
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

/* ---- binned walks (hp_lgbm.h: the port of hp_forest's linked binned walk) -------------------- */

/* i = next + (w < *bin): cmp + adc on x86-64 (hp_forest.c's LINK_STEP), plain C elsewhere. */
#if defined(__x86_64__) && defined(__GNUC__)
#define HPL_STEP(i, w, bin)                                                                        \
    __asm__("cmpl %2, %1\n\tadcq $0, %0" : "+r"(i) : "r"(w), "m"(bin) : "cc")
#else
#define HPL_STEP(i, w, bin) ((i) += ((w) < (bin)))
#endif

#define HPL_HOT static inline __attribute__((always_inline))

/* The bin word of kind k for a row value: b = #{thr < x'} (x' after the zero drop), nan = the raw
 * value was NaN, zero = x' == 0.0 (hp_lgbm.h's table). */
HPL_HOT uint32_t bin_word(uint32_t k, uint32_t b, int nan, int zero, uint32_t zb)
{
    switch (k) {
    case 0:
        return nan ? zb : b << 16;
    case 1:
        return nan ? 0u : b << 16;
    case 2:
        return nan ? 0xFFFF0000u : b << 16;
    case 3:
        return nan || zero ? 0u : b << 16;
    default:
        return nan || zero ? 0xFFFF0000u : b << 16;
    }
}

/* Bin words of HPL_BIN_LANES rows r[0..16) into rb (slot s of lane l at 16 s + l): per used
 * feature, the 16 rows' branch-free searches side by side (16 independent chains through one
 * table), then its slots' words. */
static void bin_block(const hp_lgbm *m, const double *const *r, uint32_t *rb)
{
    for (uint32_t u = 0; u < m->nused; u++) {
        const uint32_t f = m->feat[u];
        const double *T = m->thr + m->toff[u];
        uint32_t n = m->toff[u + 1] - m->toff[u]; /* >= 1 */
        double x[HPL_BIN_LANES];
        uint32_t lo[HPL_BIN_LANES];
#pragma GCC unroll 16
        for (unsigned j = 0; j < HPL_BIN_LANES; j++) {
            x[j] = refeval_lgbm_input(r[j][f]); /* NaN stays NaN: its searches give 0, unused */
            lo[j] = 0;
        }
        while (n > 1) {
            uint32_t half = n / 2;
#pragma GCC unroll 16
            for (unsigned j = 0; j < HPL_BIN_LANES; j++)
                lo[j] = T[lo[j] + half] < x[j] ? lo[j] + half : lo[j];
            n -= half;
        }
#pragma GCC unroll 16
        for (unsigned j = 0; j < HPL_BIN_LANES; j++)
            lo[j] += T[lo[j]] < x[j];
        for (uint32_t s = m->fslot[u]; s < m->fslot[u + 1]; s++) {
            uint32_t k = m->slot_k[s], zb = m->zbin[u];
            uint32_t *o = rb + (size_t)HPL_BIN_LANES * s;
            for (unsigned j = 0; j < HPL_BIN_LANES; j++)
                o[j] = bin_word(k, lo[j], isnan(x[j]), x[j] == 0.0, zb);
        }
    }
}

/* Bin words of one row into lane 0 of rb (words 16 s). */
static void bin_lane0(const hp_lgbm *m, const double *row, uint32_t *rb)
{
    for (uint32_t u = 0; u < m->nused; u++) {
        const double *T = m->thr + m->toff[u];
        uint32_t n = m->toff[u + 1] - m->toff[u], lo = 0;
        double x = refeval_lgbm_input(row[m->feat[u]]);
        while (n > 1) {
            uint32_t half = n / 2;
            lo = T[lo + half] < x ? lo + half : lo;
            n -= half;
        }
        lo += T[lo] < x;
        for (uint32_t s = m->fslot[u]; s < m->fslot[u + 1]; s++)
            rb[(size_t)HPL_BIN_LANES * s] =
                bin_word(m->slot_k[s], lo, isnan(x), x == 0.0, m->zbin[u]);
    }
}

/* HPL_BIN_LANES rows (lane j's words at rb[16 s + j]) through the tree rooted at absolute index
 * root, exactly D steps (lanes at a leaf stay there): leaf values into lv[0..16).  The root is the
 * same node for every lane, loaded once; the 16 chains are independent. */
HPL_HOT void walk16(const uint32_t *N, const double *L, uint32_t root, uint32_t D,
                    const uint32_t *rb, double *lv)
{
    size_t i[HPL_BIN_LANES];
    const uint32_t w0 = N[2 * (size_t)root], n0 = N[2 * (size_t)root + 1];
    const uint32_t *r0 = rb + (w0 & 0xFFFFu);
#pragma GCC unroll 16
    for (unsigned j = 0; j < HPL_BIN_LANES; j++)
        i[j] = D == 0 ? root : (size_t)n0 + (w0 < r0[j]);
    for (uint32_t d = 1; d < D; d++) {
#pragma GCC unroll 16
        for (unsigned j = 0; j < HPL_BIN_LANES; j++) {
            /* two u32 loads (word, next): no 64-bit load, copy and shift (measured ~5% faster) */
            const uint32_t *nd = N + 2 * i[j];
            uint32_t w = nd[0];
            size_t nx = nd[1];
            HPL_STEP(nx, w, rb[(w & 0xFFFFu) + j]);
            i[j] = nx;
        }
    }
#pragma GCC unroll 16
    for (unsigned j = 0; j < HPL_BIN_LANES; j++)
        lv[j] = L[i[j]];
}

/* Every tree for nsub sub-blocks of 16 rows (sub-block b's words at rb + b * sub), adding into
 * acc[row * k + tree % k]; trees are the outer loop, so each tree is fetched once for up to
 * HPL_BIN_SUPER rows, and per row the leaves are added in tree order. */
static void walk_super(const hp_lgbm *m, const uint32_t *rb, size_t sub, unsigned nsub, double *acc)
{
    const uint32_t k = m->num_class;
    for (uint32_t t = 0; t < m->num_trees; t++) {
        const uint32_t root = m->first[t], D = m->depth[t];
        double *a = acc + t % k;
        for (unsigned b = 0; b < nsub; b++) {
            double lv[HPL_BIN_LANES];
            walk16(m->bnodes, m->leaf, root, D, rb + b * sub, lv);
            double *ab = a + (size_t)b * HPL_BIN_LANES * k;
            if (k == 1) { /* contiguous: vector adds, the same double additions lane by lane */
                for (unsigned j = 0; j < HPL_BIN_LANES; j++)
                    ab[j] += lv[j];
            } else {
                for (unsigned j = 0; j < HPL_BIN_LANES; j++)
                    ab[(size_t)j * k] += lv[j];
            }
        }
    }
}

/* One row (lane 0 of rb) through HPL_BIN_LANES trees o[0..16) at once, D steps (the deepest of
 * them): a single row has no other rows to overlap its loads with, so it overlaps trees. */
HPL_HOT void walk_run(const hp_lgbm *m, const uint32_t *o, uint32_t D, const uint32_t *rb,
                      double *lv)
{
    const uint32_t *N = m->bnodes;
    size_t i[HPL_BIN_LANES];
#pragma GCC unroll 16
    for (unsigned j = 0; j < HPL_BIN_LANES; j++)
        i[j] = m->first[o[j]];
    for (uint32_t d = 0; d < D; d++) {
#pragma GCC unroll 16
        for (unsigned j = 0; j < HPL_BIN_LANES; j++) {
            const uint32_t *nd = N + 2 * i[j];
            uint32_t w = nd[0];
            size_t nx = nd[1];
            HPL_STEP(nx, w, rb[w & 0xFFFFu]);
            i[j] = nx;
        }
    }
#pragma GCC unroll 16
    for (unsigned j = 0; j < HPL_BIN_LANES; j++)
        lv[j] = m->leaf[i[j]];
}

/* One binned row (lane 0 of rb) through every tree, into acc[0..k): chunk by chunk, the chunk's
 * trees in depth order (m->order) in runs of 16, each leaf stored at its tree's place, then the
 * chunk's leaves added in tree order (so the sums are those of every other path). */
static void walk_row(const hp_lgbm *m, const uint32_t *rb, double *acc)
{
    const uint32_t k = m->num_class;
    double lv[HPL_ROW_CHUNK];
    double a0 = acc[0]; /* one class: the sum lives in a register */
    for (uint32_t c0 = 0; c0 < m->num_trees; c0 += HPL_ROW_CHUNK) {
        uint32_t cn = m->num_trees - c0 < HPL_ROW_CHUNK ? m->num_trees - c0 : HPL_ROW_CHUNK;
        const uint32_t *o = m->order + c0;
        uint32_t r = 0;
        for (; r + HPL_BIN_LANES <= cn; r += HPL_BIN_LANES) {
            double v[HPL_BIN_LANES];
            walk_run(m, o + r, m->depth[o[r + HPL_BIN_LANES - 1]], rb, v);
            for (unsigned j = 0; j < HPL_BIN_LANES; j++)
                lv[o[r + j] - c0] = v[j];
        }
        for (; r < cn; r++) {
            size_t i = m->first[o[r]];
            for (uint32_t d = 0; d < m->depth[o[r]]; d++) {
                uint32_t w = m->bnodes[2 * i];
                i = (size_t)m->bnodes[2 * i + 1] + (w < rb[w & 0xFFFFu]);
            }
            lv[o[r] - c0] = m->leaf[i];
        }
        if (k == 1) {
            for (uint32_t j = 0; j < cn; j++)
                a0 += lv[j];
        } else {
            for (uint32_t j = 0; j < cn; j++)
                acc[(c0 + j) % k] += lv[j];
        }
    }
    if (k == 1)
        acc[0] = a0;
}

/* hp_lgbm_score on a binned model: rows [0, nrows) in super-blocks of up to HPL_BIN_SUPER rows
 * (16-row sub-blocks; 3..15 leftover rows fill a sub-block, the extra lanes repeating the last
 * row); 1 or 2 rows, or too many classes for 16 rows of accumulators, walk row by row. */
static void score_binned(const hp_lgbm *m, const double *rows, size_t nrows, int output_margin,
                         double *out)
{
    const uint32_t k = m->num_class, nf = m->num_feature;
    const uint32_t per_row = hp_lgbm_outputs(m, output_margin);
    uint32_t rb[HPL_BIN_BUF];
    double acc[HPL_ACC_MAX];
    const size_t sub = (size_t)HPL_BIN_LANES * (m->nslots ? m->nslots : 1);
    size_t super = HPL_BIN_BUF / sub * HPL_BIN_LANES; /* nslots <= 4095: >= 16 */
    if (super > HPL_BIN_SUPER)
        super = HPL_BIN_SUPER;
    while (super > HPL_BIN_LANES && super * k > HPL_ACC_MAX)
        super -= HPL_BIN_LANES;
    const int by_row = (size_t)HPL_BIN_LANES * k > HPL_ACC_MAX;
    size_t i = 0;
    while (i < nrows) {
        size_t rest = nrows - i;
        if (rest <= 2 || by_row) {
            for (size_t j = 0; j < rest; j++) { /* by_row: every remaining row, one at a time */
                for (uint32_t g = 0; g < k; g++)
                    acc[g] = 0.0;
                bin_lane0(m, rows + (i + j) * nf, rb);
                walk_row(m, rb, acc);
                emit(m, acc, output_margin, out + (i + j) * per_row);
            }
            break;
        }
        size_t real = rest < super ? rest : super;
        unsigned nsub = (unsigned)((real + HPL_BIN_LANES - 1) / HPL_BIN_LANES);
        for (unsigned b = 0; b < nsub; b++) {
            const double *r[HPL_BIN_LANES];
            for (size_t j = 0; j < HPL_BIN_LANES; j++) {
                size_t q = (size_t)b * HPL_BIN_LANES + j;
                r[j] = rows + (i + (q < real ? q : real - 1)) * nf;
            }
            bin_block(m, r, rb + b * sub);
        }
        for (size_t j = 0; j < (size_t)nsub * HPL_BIN_LANES * k; j++)
            acc[j] = 0.0;
        walk_super(m, rb, sub, nsub, acc);
        for (size_t j = 0; j < real; j++)
            emit(m, acc + j * k, output_margin, out + (i + j) * per_row);
        i += real;
    }
}

void hp_lgbm_score(const hp_lgbm *m, const double *rows, size_t nrows, int output_margin,
                   double *out)
{
    if (m->flags & HPL_F_BINNED) {
        score_binned(m, rows, nrows, output_margin, out);
        return;
    }
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
