/* xgbmodel.c - XGBoost model (JSON or UBJSON) -> compiled blob.  See xgbmodel.h for the contract.
 *
 * Two stages.  (1) mdoc (common/mdoc.h) indexes the document, JSON or UBJSON alike: containers and
 * strings become nodes, scalars inside arrays are only counted and read back later from the
 * source bytes, so a model with millions of split values costs a few index entries per tree.
 * (2) The xgboost layout is read through mdoc's format-neutral accessors, tree by tree, into
 * model_builder, which renumbers nodes canonically and checks the tree shape.
 *
 * Lowerings onto the blob (common/model.h has one scalar base margin and scalar leaves):
 *   - a vector base_score whose per-group margins differ: the header's base margin is -0.0f (the
 *     exact additive identity of IEEE float: -0 + x == x for every x, including +-0) and one
 *     single-leaf tree per group, holding that group's margin, comes first.  Each group's float
 *     accumulation is then xgboost's: base margin first, then the trees in file order;
 *   - a vector-leaf tree (multi_strategy=multi_output_tree; size_leaf_vector = num_target) becomes
 *     num_target scalar trees of the same shape, one per target in order, leaf k of target g being
 *     leaf_weights[k * num_target + g]: per target, the same additions in the same order.
 * Costs: O(len) time; memory as stated in xgbmodel.h. */
#include "errbuf.h"
#include "xgbmodel.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "mdoc.h"
#include "model_build.h"
#include "modelfile.h"

#define NONE MDOC_NONE

/* ---- errors ------------------------------------------------------------------------------------
 */

typedef struct xctx {
    char *err;
    size_t errlen;
} xctx;

static int fail(xctx *x, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(xctx *x, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errbuf_vset(x->err, x->errlen, fmt, ap);
    va_end(ap);
    return status;
}

const char *xgb_status_name(int status)
{
    switch (status) {
    case XGB_OK:
        return "ok";
    case XGB_INVALID:
        return "invalid";
    case XGB_UNSUPPORTED:
        return "unsupported";
    case XGB_NOMEM:
        return "nomem";
    default:
        return "unknown";
    }
}

/* ---- parameters held in strings ----------------------------------------------------------------
 */

/* Unsigned integer held in a string ("7"), at most hi. */
static int str_uint(const mdoc *d, uint32_t i, int64_t hi, int64_t *out)
{
    char buf[32];
    if (mdoc_str(d, i, buf, sizeof(buf)) != 0)
        return -1;
    return mdoc_text_int(buf, strlen(buf), 0, hi, out);
}

/* base_score as xgboost writes it: "5E-1" (1.x), "[6.3736266E-1]" (2.x/3.x), or a vector
 * "[a,b,...]" (3.x multi-class / multi-target; xgboost's ParamArray also reads "(a,b)").  Reads up
 * to cap floats into out.  Returns the count (>= 1), or -1 if malformed or longer than cap. */
static long str_floats(const mdoc *d, uint32_t i, float *out, size_t cap)
{
    size_t bcap = mdoc_str_cap(d, i);
    if (bcap > (size_t)MODEL_MAX_CLASSES * (MDOC_MAX_NUMBER_CHARS + 2) + 3)
        return -1;
    char *buf = malloc(bcap);
    long n = -1;
    if (buf == NULL || mdoc_str(d, i, buf, bcap) != 0)
        goto out;
    char *p = buf;
    size_t len = strlen(buf);
    if (len >= 2 && ((p[0] == '[' && p[len - 1] == ']') || (p[0] == '(' && p[len - 1] == ')'))) {
        p++;
        len -= 2;
    }
    size_t k = 0;
    for (;;) {
        while (len > 0 && *p == ' ') {
            p++;
            len--;
        }
        char *comma = memchr(p, ',', len);
        size_t tl = comma ? (size_t)(comma - p) : len;
        while (tl > 0 && p[tl - 1] == ' ')
            tl--;
        if (k == cap || mdoc_text_float(p, tl, &out[k]) != 0)
            goto out;
        k++;
        if (comma == NULL)
            break;
        len -= (size_t)(comma - p) + 1;
        p = comma + 1;
    }
    n = (long)k;
out:
    free(buf);
    return n;
}

static void free_strings(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Copies a string array (feature_names / feature_types) into malloc'd strings (*out, *n); an
 * absent array gives NULL, 0.  Returns an xgb_status. */
static int read_strings(const mdoc *d, uint32_t a, char ***out, size_t *n, xctx *x,
                        const char *what)
{
    char **v = NULL;
    uint32_t cnt = 0, k = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if (a == NONE)
        return XGB_OK;
    if (!mdoc_arr_nodes_only(d, a))
        return fail(x, XGB_INVALID, "%s is not an array of strings", what);
    cnt = mdoc_count(d, a);
    if (cnt == 0)
        return XGB_OK;
    if (cnt > MODEL_MAX_FEATURES)
        return fail(x, XGB_INVALID, "%s has too many entries", what);
    v = calloc(cnt, sizeof(*v));
    if (v == NULL)
        return fail(x, XGB_NOMEM, "out of memory");
    uint32_t i = mdoc_first(d, a);
    for (k = 0; k < cnt; k++) {
        if (mdoc_type(d, i) != MDOC_STR) {
            rc = fail(x, XGB_INVALID, "%s[%u] is not a string", what, k);
            goto fail;
        }
        size_t cap = mdoc_str_cap(d, i);
        v[k] = malloc(cap);
        if (v[k] == NULL) {
            rc = fail(x, XGB_NOMEM, "out of memory");
            goto fail;
        }
        if (mdoc_str(d, i, v[k], cap) != 0) {
            rc = fail(x, XGB_INVALID, "%s[%u] is not a valid string", what, k);
            goto fail;
        }
        i = mdoc_next(d, i);
    }
    *out = v;
    *n = cnt;
    return XGB_OK;
fail:
    free_strings(v, cnt); /* calloc'd: unused entries are NULL */
    return rc;
}

void xgb_info_free(xgb_info *info)
{
    if (info == NULL)
        return;
    free_strings(info->feature_names, info->n_feature_names);
    free_strings(info->feature_types, info->n_feature_types);
    memset(info, 0, sizeof(*info));
}

/* ---- the xgboost layout ------------------------------------------------------------------------
 */

/* ProbToMargin of 1.7's objectives, in float as xgboost does it:
 * src/objective/regression_loss.h LogisticRegression::ProbToMargin: -logf(1.0f / p - 1.0f)
 * (reg:logistic, binary:logistic).  binary:logitraw: the identity -- xgboost 1.7.4 starts its
 * margin at base_score itself (fixture binary_logitraw, base_score 0.2, proves it; the logit
 * would be off by 1.586);
 * src/objective/regression_obj.cu Poisson/Gamma/Tweedie: std::log(float) == logf;
 * everything else is the identity (ObjFunction::ProbToMargin). */
static int base_margin(uint32_t obj, float bs, float *out, xctx *x)
{
    switch (obj) {
    case MODEL_OBJ_LOGISTIC:
    case MODEL_OBJ_BINARY_LOGISTIC:
        if (!(bs > 0.0f && bs < 1.0f))
            return fail(x, XGB_INVALID, "base_score must be in (0,1) for logistic loss");
        *out = -logf(1.0f / bs - 1.0f);
        break;
    case MODEL_OBJ_POISSON:
    case MODEL_OBJ_GAMMA:
    case MODEL_OBJ_TWEEDIE:
        if (!(bs > 0.0f))
            return fail(x, XGB_INVALID, "base_score must be > 0 for a log-link objective");
        *out = logf(bs);
        break;
    default:
        *out = bs;
        break;
    }
    if (!isfinite(*out))
        return fail(x, XGB_INVALID, "base_score gives a non-finite base margin");
    return XGB_OK;
}

/* Per-tree temporary storage, reused across trees. */
typedef struct treebuf {
    model_src_node *nodes;
    int64_t *ibuf; /* 6 x n integers: left, right, split_indices, default_left, split_type, spare */
    float *fbuf;
    int64_t *cats;
    int64_t *cnodes, *cseg, *csize;
    float *lw; /* a vector-leaf tree's leaf_weights */
    uint32_t cap, cats_cap, cn_cap, lw_cap;
} treebuf;

static void treebuf_free(treebuf *t)
{
    free(t->nodes);
    free(t->ibuf);
    free(t->fbuf);
    free(t->cats);
    free(t->cnodes);
    free(t->cseg);
    free(t->csize);
    free(t->lw);
}

/* Makes *p hold n elements of sz bytes (capacity *cap): common/dynbuf.h's growth rule.  Returns 0
 * or -1 on OOM. */
static int reserve(void **p, uint32_t *cap, uint32_t n, size_t sz)
{
    size_t c = *cap;
    if (dynbuf_grow_array(p, &c, n ? n : 1, sz, UINT32_MAX) != DYNBUF_OK)
        return -1;
    *cap = (uint32_t)c;
    return 0;
}

/* Status of a model_builder failure: out of memory, a limit of the compiled format (a model too
 * big to run: unsupported), or a malformed tree. */
static int build_status(const char *berr)
{
    if (strstr(berr, "out of memory"))
        return XGB_NOMEM;
    if (strstr(berr, "more than"))
        return XGB_UNSUPPORTED;
    return XGB_INVALID;
}

/* Copies string node i into dst[cap], truncated to fit (names only appear in messages and in the
 * models table, where a truncated unsupported name still says what it was). */
static void copy_name(char *dst, size_t cap, const mdoc *d, uint32_t i)
{
    size_t full = mdoc_str_cap(d, i);
    char *buf = malloc(full);
    dst[0] = 0;
    if (buf != NULL && mdoc_str(d, i, buf, full) == 0) {
        size_t l = strlen(buf) < cap - 1 ? strlen(buf) : cap - 1;
        while (l > 0 && ((unsigned char)buf[l] & 0xC0) == 0x80) /* whole UTF-8 sequences only */
            l--;
        memcpy(dst, buf, l);
        dst[l] = 0;
    } else {
        snprintf(dst, cap, "(unreadable)");
    }
    free(buf);
}

/* Reads tree object t into b->nodes and adds it to the builder: as one tree of `group`, or, for a
 * vector-leaf tree (size_leaf_vector = ntarget > 1), as ntarget trees of groups 0..ntarget-1.
 * *added counts the trees added. */
static int load_tree(const mdoc *d, uint32_t t, uint32_t idx, uint32_t group, float weight,
                     uint32_t ntarget, treebuf *b, model_builder *mb, uint32_t *added, xctx *x)
{
    uint32_t tp = mdoc_get_type(d, t, "tree_param", MDOC_OBJ);
    int64_t nn, slv = 1;
    if (str_uint(d, mdoc_get(d, tp, "num_nodes"), MODEL_MAX_TREE_NODES, &nn) != 0 || nn < 1)
        return fail(x, XGB_INVALID, "tree %u: tree_param.num_nodes missing or out of range", idx);
    uint32_t slvn = mdoc_get(d, tp, "size_leaf_vector");
    if (slvn != NONE && str_uint(d, slvn, INT32_MAX, &slv) != 0)
        return fail(x, XGB_INVALID, "tree %u: bad size_leaf_vector", idx);
    int vector = slv > 1;
    if (vector && slv != ntarget)
        return fail(x, XGB_INVALID,
                    "tree %u: vector leaves of size_leaf_vector=%lld, num_target %u", idx,
                    (long long)slv, ntarget);
    uint32_t n = (uint32_t)nn;
    /* Buffers are sized by num_nodes only once an array really holds that many elements: a
     * declared count never sizes an allocation on its own. */
    if (mdoc_count(d, mdoc_get(d, t, "left_children")) != n)
        return fail(x, XGB_INVALID, "tree %u: \"left_children\" missing or not %u integers", idx,
                    n);
    if (b->cap < n) {
        uint32_t c1 = b->cap, c2 = b->cap, c3 = b->cap;
        if (reserve((void **)&b->nodes, &c1, n, sizeof(*b->nodes)) ||
            reserve((void **)&b->ibuf, &c2, n, 5 * sizeof(*b->ibuf)) ||
            reserve((void **)&b->fbuf, &c3, n, sizeof(*b->fbuf)))
            return fail(x, XGB_NOMEM, "out of memory");
        b->cap = n;
    }
    int64_t *left = b->ibuf, *right = left + n, *feat = right + n, *dleft = feat + n,
            *stype = dleft + n;
    static const char *const keys[] = {"left_children", "right_children", "split_indices",
                                       "default_left"};
    for (int k = 0; k < 4; k++) {
        int64_t lo = k < 2 ? -1 : 0, hi = k < 2 ? INT32_MAX : k == 2 ? UINT32_MAX : 1;
        if (mdoc_arr_ints(d, mdoc_get(d, t, keys[k]), n, lo, hi, b->ibuf + (size_t)k * n, k == 3))
            return fail(x, XGB_INVALID, "tree %u: \"%s\" missing, not %u integers, or out of range",
                        idx, keys[k], n);
    }
    if (mdoc_arr_floats(d, mdoc_get(d, t, "split_conditions"), n, b->fbuf) != 0)
        return fail(x, XGB_INVALID, "tree %u: \"split_conditions\" missing or not %u numbers", idx,
                    n);
    uint32_t st = mdoc_get(d, t, "split_type");
    if (st == NONE)
        memset(stype, 0, (size_t)n * sizeof(*stype));
    else if (mdoc_arr_ints(d, st, n, 0, 1, stype, 0) != 0)
        return fail(x, XGB_INVALID, "tree %u: \"split_type\" not %u values in {0,1}", idx, n);

    uint32_t ncat_nodes = 0, ncats = 0;
    uint32_t cn = mdoc_get(d, t, "categories_nodes");
    if (cn != NONE) {
        uint32_t cs = mdoc_get(d, t, "categories_segments"),
                 cz = mdoc_get(d, t, "categories_sizes"), cc = mdoc_get(d, t, "categories");
        if (mdoc_type(d, cn) != MDOC_ARR || cs == NONE || cz == NONE ||
            mdoc_type(d, cc) != MDOC_ARR)
            return fail(x, XGB_INVALID, "tree %u: incomplete categorical split arrays", idx);
        ncat_nodes = mdoc_count(d, cn);
        ncats = mdoc_count(d, cc);
        uint32_t c1 = b->cn_cap, c2 = b->cn_cap, c3 = b->cn_cap;
        if (reserve((void **)&b->cnodes, &c1, ncat_nodes, sizeof(int64_t)) ||
            reserve((void **)&b->cseg, &c2, ncat_nodes, sizeof(int64_t)) ||
            reserve((void **)&b->csize, &c3, ncat_nodes, sizeof(int64_t)) ||
            reserve((void **)&b->cats, &b->cats_cap, ncats, sizeof(int64_t)))
            return fail(x, XGB_NOMEM, "out of memory");
        b->cn_cap = c1;
        if (mdoc_arr_ints(d, cn, ncat_nodes, 0, n - 1, b->cnodes, 0) ||
            mdoc_arr_ints(d, cs, ncat_nodes, 0, ncats, b->cseg, 0) ||
            mdoc_arr_ints(d, cz, ncat_nodes, 1, ncats, b->csize, 0) ||
            mdoc_arr_ints(d, cc, ncats, INT32_MIN, INT32_MAX, b->cats, 0))
            return fail(x, XGB_INVALID, "tree %u: malformed categorical split arrays", idx);
    }
    uint32_t nleaves = 0;
    if (vector) {
        uint32_t lw = mdoc_get(d, t, "leaf_weights");
        uint32_t m = mdoc_count(d, lw);
        if (mdoc_type(d, lw) != MDOC_ARR || m % ntarget != 0)
            return fail(x, XGB_INVALID, "tree %u: \"leaf_weights\" missing or not a multiple of %u",
                        idx, ntarget);
        if (reserve((void **)&b->lw, &b->lw_cap, m, sizeof(float)) != 0)
            return fail(x, XGB_NOMEM, "out of memory");
        if (mdoc_arr_floats(d, lw, m, b->lw) != 0)
            return fail(x, XGB_INVALID, "tree %u: \"leaf_weights\" are not %u numbers", idx, m);
        nleaves = m / ntarget;
    }
    for (uint32_t i = 0; i < n; i++) {
        model_src_node *s = &b->nodes[i];
        memset(s, 0, sizeof(*s));
        s->left = (int32_t)left[i];
        s->right = (int32_t)right[i];
        s->feature = (uint32_t)feat[i];
        s->default_left = (int)dleft[i];
        s->categorical = s->left != -1 && stype[i] == 1;
        s->value = b->fbuf[i];
        s->cover = 1.0f;
        /* a vector leaf names its leaf_weights row in right_children (RegTree::LeafIndex) */
        if (vector && s->left == -1 && (right[i] < 0 || right[i] >= (int64_t)nleaves))
            return fail(x, XGB_INVALID, "tree %u node %u: leaf index %lld outside leaf_weights",
                        idx, i, (long long)right[i]);
    }
    /* Covers (sum_hessian) only feed explanations: a tree without them still scores, and the
     * model is compiled without the covers section. */
    uint32_t sh = mdoc_get(d, t, "sum_hessian");
    if (sh == NONE || mdoc_arr_floats(d, sh, n, b->fbuf) != 0)
        model_builder_drop_covers(mb);
    else
        for (uint32_t i = 0; i < n; i++)
            b->nodes[i].cover = b->fbuf[i];
    for (uint32_t k = 0; k < ncat_nodes; k++) {
        uint32_t nid = (uint32_t)b->cnodes[k];
        if ((k > 0 && b->cnodes[k] <= b->cnodes[k - 1]) || stype[nid] != 1 ||
            b->cseg[k] + b->csize[k] > (int64_t)ncats)
            return fail(x, XGB_INVALID, "tree %u: categorical entry %u inconsistent", idx, k);
        b->nodes[nid].cats = b->cats + b->cseg[k];
        b->nodes[nid].n_cats = (uint32_t)b->csize[k];
    }
    for (uint32_t i = 0; i < n; i++)
        if (b->nodes[i].categorical && b->nodes[i].cats == NULL)
            return fail(x, XGB_INVALID, "tree %u node %u: categorical split without categories",
                        idx, i);
    uint32_t copies = vector ? ntarget : 1;
    for (uint32_t g = 0; g < copies; g++) {
        if (vector)
            for (uint32_t i = 0; i < n; i++)
                if (left[i] == -1)
                    b->nodes[i].value = b->lw[(size_t)right[i] * ntarget + g];
        char berr[160];
        if (model_builder_add_tree(mb, vector ? g : group, weight, b->nodes, n, berr,
                                   sizeof(berr)) != 0)
            return fail(x, build_status(berr), "tree %u: %s", idx, berr);
        (*added)++;
    }
    return XGB_OK;
}

/* The library version the file declares: top-level "version": [major, minor, patch]. */
static void read_version(const mdoc *d, char *out, size_t cap)
{
    int64_t v[3];
    out[0] = 0;
    if (mdoc_arr_ints(d, mdoc_get(d, 0, "version"), 3, 0, 999999, v, 0) == 0)
        snprintf(out, cap, "%lld.%lld.%lld", (long long)v[0], (long long)v[1], (long long)v[2]);
}

/* Checks "iteration_indptr" (xgboost >= 2.1) when present: starts at 0, never decreases, ends at
 * the number of trees. */
static int check_indptr(const mdoc *d, uint32_t a, uint32_t ntrees, xctx *x)
{
    if (a == NONE)
        return XGB_OK;
    uint32_t m = mdoc_count(d, a);
    int64_t *v = malloc((size_t)(m ? m : 1) * sizeof(*v));
    if (v == NULL)
        return fail(x, XGB_NOMEM, "out of memory");
    int ok = m >= 1 && mdoc_arr_ints(d, a, m, 0, ntrees, v, 0) == 0 && v[0] == 0 &&
             v[m - 1] == (int64_t)ntrees;
    for (uint32_t i = 1; ok && i < m; i++)
        ok = v[i] >= v[i - 1];
    free(v);
    return ok ? XGB_OK
              : fail(x, XGB_INVALID, "iteration_indptr does not split the %u trees into rounds",
                     ntrees);
}

int xgb_compile(const char *src, size_t len, xgb_info *info, void **blob, size_t *blob_len,
                char *err, size_t errlen)
{
    xctx x = {err, errlen};
    mdoc d;
    xgb_info inf;
    model_builder *mb = NULL;
    treebuf tb;
    uint32_t *slot = NULL;
    int64_t *tinfo = NULL;
    float *wdrop = NULL, *bs = NULL, *bm = NULL;
    int rc;

    memset(&d, 0, sizeof(d));
    memset(&inf, 0, sizeof(inf));
    memset(&tb, 0, sizeof(tb));
    *blob = NULL;
    *blob_len = 0;
    if (info != NULL)
        memset(info, 0, sizeof(*info));
    if (err != NULL && errlen > 0)
        err[0] = 0;

    int format = modelfile_detect(src, len);
    if (format == MODELFILE_LGBM_TEXT) {
        rc = fail(&x, XGB_INVALID, "a LightGBM text model, not an xgboost model");
        goto out;
    }
    /* Anything not UBJSON is read as JSON, whose parser then says what is wrong with it. */
    inf.format = format == MODELFILE_XGB_UBJSON ? MODELFILE_XGB_UBJSON : MODELFILE_XGB_JSON;
    rc = mdoc_parse(&d, inf.format == MODELFILE_XGB_UBJSON ? MDOC_UBJSON : MDOC_JSON, src, len, err,
                    errlen);
    if (rc != MDOC_OK) {
        rc = rc == MDOC_NOMEM ? XGB_NOMEM : XGB_INVALID;
        goto out;
    }
    read_version(&d, inf.version, sizeof(inf.version));

    uint32_t learner = mdoc_get_type(&d, 0, "learner", MDOC_OBJ);
    if (learner == NONE) {
        rc = fail(&x, XGB_INVALID, "not an xgboost model: no \"learner\" object");
        goto out;
    }
    uint32_t gb = mdoc_get_type(&d, learner, "gradient_booster", MDOC_OBJ);
    uint32_t gbname = mdoc_get_type(&d, gb, "name", MDOC_STR);
    if (gbname == NONE) {
        rc = fail(&x, XGB_INVALID, "not an xgboost model: no learner.gradient_booster.name");
        goto out;
    }
    copy_name(inf.booster, sizeof(inf.booster), &d, gbname);
    int dart = strcmp(inf.booster, "dart") == 0;
    if (!dart && strcmp(inf.booster, "gbtree") != 0) {
        rc = fail(&x, XGB_UNSUPPORTED, "unsupported booster \"%s\"", inf.booster);
        goto out;
    }
    uint32_t objname =
        mdoc_get_type(&d, mdoc_get_type(&d, learner, "objective", MDOC_OBJ), "name", MDOC_STR);
    if (objname == NONE) {
        rc = fail(&x, XGB_INVALID, "not an xgboost model: no learner.objective.name");
        goto out;
    }
    copy_name(inf.objective, sizeof(inf.objective), &d, objname);
    uint32_t obj = model_objective_from_name(inf.objective);
    if (obj == 0) {
        rc = fail(&x, XGB_UNSUPPORTED, "unsupported objective \"%s\"", inf.objective);
        goto out;
    }

    uint32_t lmp = mdoc_get_type(&d, learner, "learner_model_param", MDOC_OBJ);
    int64_t nf, nc, ntarget = 1;
    if (lmp == NONE || str_uint(&d, mdoc_get(&d, lmp, "num_feature"), MODEL_MAX_FEATURES, &nf) ||
        str_uint(&d, mdoc_get(&d, lmp, "num_class"), INT32_MAX, &nc)) {
        rc = fail(&x, XGB_INVALID, "learner_model_param: num_feature/num_class missing or bad");
        goto out;
    }
    if (nf < 1) {
        rc = fail(&x, XGB_INVALID, "num_feature is 0");
        goto out;
    }
    uint32_t nt = mdoc_get(&d, lmp, "num_target");
    if (nt != NONE && (str_uint(&d, nt, INT32_MAX, &ntarget) != 0 || ntarget < 1)) {
        rc = fail(&x, XGB_INVALID, "learner_model_param.num_target is bad");
        goto out;
    }
    int multi = obj == MODEL_OBJ_SOFTPROB || obj == MODEL_OBJ_SOFTMAX;
    if (multi) {
        if (nc < 1 || nc > MODEL_MAX_CLASSES) {
            rc = fail(&x, nc < 1 ? XGB_INVALID : XGB_UNSUPPORTED,
                      "num_class %lld out of range for %s", (long long)nc, inf.objective);
            goto out;
        }
        if (ntarget > 1) {
            rc = fail(&x, XGB_UNSUPPORTED, "multi-target (num_target=%lld) with objective \"%s\"",
                      (long long)ntarget, inf.objective);
            goto out;
        }
    } else if (nc > 1) {
        rc = fail(&x, XGB_UNSUPPORTED, "num_class %lld with objective \"%s\"", (long long)nc,
                  inf.objective);
        goto out;
    } else if (ntarget > MODEL_MAX_CLASSES) {
        rc = fail(&x, XGB_UNSUPPORTED, "num_target %lld (at most %u)", (long long)ntarget,
                  MODEL_MAX_CLASSES);
        goto out;
    }
    inf.num_feature = (uint32_t)nf;
    inf.num_target = (uint32_t)ntarget;
    inf.num_class = multi ? (uint32_t)nc : (uint32_t)ntarget; /* output groups */
    uint32_t groups = inf.num_class;

    /* base_score: one value, or one per output group (xgboost 3.x), through ProbToMargin each. */
    bs = malloc((size_t)groups * sizeof(*bs));
    bm = malloc((size_t)groups * sizeof(*bm));
    if (bs == NULL || bm == NULL) {
        rc = fail(&x, XGB_NOMEM, "out of memory");
        goto out;
    }
    long nbs = str_floats(&d, mdoc_get(&d, lmp, "base_score"), bs, groups);
    if (nbs < 1 || (nbs != 1 && nbs != (long)groups)) {
        rc = fail(&x, XGB_INVALID,
                  "learner_model_param.base_score missing, not a number, or not 1 or %u numbers",
                  groups);
        goto out;
    }
    int same = 1;
    for (uint32_t g = 0; g < groups; g++) {
        if (nbs == 1)
            bs[g] = bs[0];
        if (!isfinite(bs[g])) {
            rc = fail(&x, XGB_INVALID, "learner_model_param.base_score is not finite");
            goto out;
        }
        if ((rc = base_margin(obj, bs[g], &bm[g], &x)) != XGB_OK)
            goto out;
        same &= memcmp(&bm[g], &bm[0], sizeof(float)) == 0;
    }
    inf.base_score = bs[0];
    inf.base_margin = bm[0];

    rc = read_strings(&d, mdoc_get(&d, learner, "feature_names"), &inf.feature_names,
                      &inf.n_feature_names, &x, "feature_names");
    if (rc == XGB_OK)
        rc = read_strings(&d, mdoc_get(&d, learner, "feature_types"), &inf.feature_types,
                          &inf.n_feature_types, &x, "feature_types");
    if (rc != XGB_OK)
        goto out;
    if ((inf.n_feature_names && inf.n_feature_names != inf.num_feature) ||
        (inf.n_feature_types && inf.n_feature_types != inf.num_feature)) {
        rc = fail(&x, XGB_INVALID, "feature_names/feature_types length differs from num_feature");
        goto out;
    }

    uint32_t model =
        dart ? mdoc_get_type(&d, mdoc_get_type(&d, gb, "gbtree", MDOC_OBJ), "model", MDOC_OBJ)
             : mdoc_get_type(&d, gb, "model", MDOC_OBJ);
    uint32_t gmp = mdoc_get_type(&d, model, "gbtree_model_param", MDOC_OBJ);
    uint32_t trees = mdoc_get_type(&d, model, "trees", MDOC_ARR);
    int64_t ntrees;
    if (model == NONE || trees == NONE ||
        str_uint(&d, mdoc_get(&d, gmp, "num_trees"), MODEL_MAX_TREES, &ntrees) != 0) {
        rc = fail(&x, XGB_INVALID, "gradient booster: model, trees or num_trees missing");
        goto out;
    }
    if (mdoc_count(&d, trees) != ntrees || !mdoc_arr_nodes_only(&d, trees)) {
        rc = fail(&x, XGB_INVALID, "num_trees is %lld but \"trees\" holds %u objects",
                  (long long)ntrees, mdoc_count(&d, trees));
        goto out;
    }
    uint32_t n = (uint32_t)ntrees;
    inf.num_trees = n;
    slot = malloc((size_t)(n ? n : 1) * sizeof(*slot));
    tinfo = malloc((size_t)(n ? n : 1) * sizeof(*tinfo));
    wdrop = malloc((size_t)(n ? n : 1) * sizeof(*wdrop));
    if (slot == NULL || tinfo == NULL || wdrop == NULL) {
        rc = fail(&x, XGB_NOMEM, "out of memory");
        goto out;
    }
    if (mdoc_arr_ints(&d, mdoc_get(&d, model, "tree_info"), n, 0, (int64_t)groups - 1, tinfo, 0)) {
        rc = fail(&x, XGB_INVALID, "tree_info missing, not %u entries, or a group >= num_class %u",
                  n, groups);
        goto out;
    }
    if ((rc = check_indptr(&d, mdoc_get(&d, model, "iteration_indptr"), n, &x)) != XGB_OK)
        goto out;
    if (dart) {
        if (mdoc_arr_floats(&d, mdoc_get(&d, gb, "weight_drop"), n, wdrop) != 0) {
            rc = fail(&x, XGB_INVALID, "dart weight_drop missing or not %u numbers", n);
            goto out;
        }
    } else {
        for (uint32_t i = 0; i < n; i++)
            wdrop[i] = 1.0f;
    }
    /* Trees are placed by their "id" (gbtree_model.cc LoadModel), which must be a permutation. */
    for (uint32_t i = 0; i < n; i++)
        slot[i] = NONE;
    uint32_t t = mdoc_first(&d, trees);
    for (uint32_t i = 0; i < n; i++) {
        int64_t id;
        uint32_t idn = mdoc_get_type(&d, t, "id", MDOC_SCALAR);
        if (mdoc_type(&d, t) != MDOC_OBJ || idn == NONE ||
            mdoc_int(&d, idn, 0, (int64_t)n - 1, &id) != 0) {
            rc = fail(&x, XGB_INVALID, "trees[%u]: not an object with an id in [0, %u)", i, n);
            goto out;
        }
        if (slot[id] != NONE) {
            rc = fail(&x, XGB_INVALID, "tree id %lld appears twice", (long long)id);
            goto out;
        }
        slot[id] = t;
        t = mdoc_next(&d, t);
    }
    /* Equal per-group margins live in the header; differing ones in leading bias trees (top). */
    mb = model_builder_new(obj, (dart ? MODEL_F_DART : 0) | MODEL_F_COVERS, inf.num_feature, groups,
                           inf.base_score, same ? bm[0] : -0.0f);
    if (mb == NULL) {
        rc = fail(&x, XGB_NOMEM, "out of memory");
        goto out;
    }
    char berr[160];
    for (uint32_t g = 0; !same && g < groups; g++) {
        model_src_node leaf = {.left = -1, .right = -1, .value = bm[g], .cover = 1.0f};
        if (model_builder_add_tree(mb, g, 1.0f, &leaf, 1, berr, sizeof(berr)) != 0) {
            rc = fail(&x, build_status(berr), "base_score: %s", berr);
            goto out;
        }
    }
    uint32_t added = 0;
    for (uint32_t i = 0; i < n; i++) {
        rc = load_tree(&d, slot[i], i, (uint32_t)tinfo[i], wdrop[i], inf.num_target, &tb, mb,
                       &added, &x);
        if (rc != XGB_OK)
            goto out;
    }
    if (model_build(mb, blob, blob_len, berr, sizeof(berr)) != 0) {
        rc = fail(&x, build_status(berr), "%s", berr);
        goto out;
    }
    rc = XGB_OK;
out:
    model_builder_free(mb);
    treebuf_free(&tb);
    free(slot);
    free(tinfo);
    free(wdrop);
    free(bs);
    free(bm);
    mdoc_free(&d);
    if (rc == XGB_OK && info != NULL)
        *info = inf;
    else
        xgb_info_free(&inf);
    return rc;
}
