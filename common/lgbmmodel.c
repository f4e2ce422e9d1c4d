/* lgbmmodel.c - LightGBM text model -> compiled blob (format 2).  See lgbmmodel.h for the contract.
 *
 * The text is read line by line without copying it: a header of key=value lines up to the first
 * "Tree=" line, then one block per tree (key=value lines, "Tree=i" numbered from 0), then
 * "end of trees" (required: a file cut short is refused, not half-loaded).  Whatever follows
 * (feature importances, parameters) is not read.  Each tree is parsed into arrays sized by counting
 * the tokens of their own lines, checked against num_leaves, handed to model_lgbm_builder (which
 * checks every reference and renumbers canonically) and freed.
 * Costs: O(len) time; memory as stated in lgbmmodel.h. */
#include "errbuf.h"
#include "lgbmmodel.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model_build.h"

#define LGBM_MAX_TOKEN 128     /* longest number token accepted */
#define LGBM_MAX_LEAVES 131072 /* LightGBM's own bound on num_leaves */

typedef struct lctx {
    char *err;
    size_t errlen;
} lctx;

static int fail(lctx *x, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(lctx *x, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errbuf_vset(x->err, x->errlen, fmt, ap);
    va_end(ap);
    return status;
}

const char *lgbm_status_name(int status)
{
    switch (status) {
    case LGBM_OK:
        return "ok";
    case LGBM_INVALID:
        return "invalid";
    case LGBM_UNSUPPORTED:
        return "unsupported";
    case LGBM_NOMEM:
        return "nomem";
    default:
        return "unknown";
    }
}

int lgbm_looks_like(const char *text, size_t len)
{
    return len >= 5 && memcmp(text, "tree", 4) == 0 && (text[4] == '\n' || text[4] == '\r');
}

/* ---- LightGBM's number reader
 * -------------------------------------------------------------------- utils/common.h Pow and Atof,
 * re-derived: the same operations in the same order, so the same double comes out (including its
 * rounding errors). */

static double lgbm_pow(double base, int power)
{
    if (power < 0)
        return 1.0 / lgbm_pow(base, -power);
    if (power == 0)
        return 1;
    if (power % 2 == 0)
        return lgbm_pow(base * base, power / 2);
    if (power % 3 == 0)
        return lgbm_pow(base * base * base, power / 3);
    return base * lgbm_pow(base, power - 1);
}

double lgbm_atof(const char *p)
{
    while (*p == ' ')
        p++;
    double sign = 1.0;
    if (*p == '-') {
        sign = -1.0;
        p++;
    } else if (*p == '+') {
        p++;
    }
    if (!((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E'))
        return NAN; /* LightGBM also reads nan/inf words here; a sigmoid cannot be either */
    double value = 0.0;
    for (; *p >= '0' && *p <= '9'; p++)
        value = value * 10.0 + (*p - '0');
    if (*p == '.') {
        double right = 0.0;
        int nn = 0;
        p++;
        for (; *p >= '0' && *p <= '9' && nn < 400; p++, nn++)
            right = (*p - '0') + right * 10.0;
        value += right / lgbm_pow(10.0, nn);
    }
    int frac = 0;
    double scale = 1.0;
    if (*p == 'e' || *p == 'E') {
        uint32_t expon = 0;
        p++;
        if (*p == '-') {
            frac = 1;
            p++;
        } else if (*p == '+') {
            p++;
        }
        for (; *p >= '0' && *p <= '9'; p++)
            expon = expon * 10 + (uint32_t)(*p - '0');
        if (expon > 308)
            expon = 308;
        while (expon >= 50) {
            scale *= 1E50;
            expon -= 50;
        }
        while (expon >= 8) {
            scale *= 1E8;
            expon -= 8;
        }
        while (expon > 0) {
            scale *= 10.0;
            expon -= 1;
        }
    }
    return sign * (frac ? (value / scale) : (value * scale));
}

/* ---- lines and tokens
 * ----------------------------------------------------------------------------
 */

typedef struct span {
    const char *p;
    size_t n;
} span;

typedef struct reader {
    const char *p;
    size_t len, off;
} reader;

/* Next line (without "\n" or "\r\n").  Returns 0 at the end of the text. */
static int next_line(reader *r, span *line)
{
    if (r->off >= r->len)
        return 0;
    const char *s = r->p + r->off;
    const char *nl = memchr(s, '\n', r->len - r->off);
    size_t n = nl ? (size_t)(nl - s) : r->len - r->off;
    r->off += n + (nl != NULL);
    if (n > 0 && s[n - 1] == '\r')
        n--;
    line->p = s;
    line->n = n;
    return 1;
}

static int span_is(span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

/* Splits "key=value": returns 1 with key and value, or 0 when the line has no '='. */
static int key_value(span line, span *key, span *val)
{
    const char *eq = memchr(line.p, '=', line.n);
    if (!eq)
        return 0;
    key->p = line.p;
    key->n = (size_t)(eq - line.p);
    val->p = eq + 1;
    val->n = line.n - key->n - 1;
    return 1;
}

/* Number of space-separated tokens in s. */
static size_t count_tokens(span s)
{
    size_t n = 0;
    for (size_t i = 0; i < s.n; i++)
        if (s.p[i] != ' ' && (i == 0 || s.p[i - 1] == ' '))
            n++;
    return n;
}

/* Copies the next token of s (from *pos) into buf as a C string.  Returns 0, or -1 when none is
 * left or it is longer than LGBM_MAX_TOKEN - 1. */
static int next_token(span s, size_t *pos, char buf[LGBM_MAX_TOKEN])
{
    size_t i = *pos;
    while (i < s.n && s.p[i] == ' ')
        i++;
    size_t b = i;
    while (i < s.n && s.p[i] != ' ')
        i++;
    *pos = i;
    if (i == b || i - b >= LGBM_MAX_TOKEN)
        return -1;
    memcpy(buf, s.p + b, i - b);
    buf[i - b] = '\0';
    return 0;
}

/* A decimal integer token in [lo, hi].  Returns 0 or -1. */
static int parse_int(const char *t, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(t, &end, 10);
    if (errno || end == t || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* A double token as LightGBM's tree parser reads it (correctly rounded; "inf", "-inf", "nan" as
 * the text writer prints them).  Returns 0 or -1. */
static int parse_double(const char *t, double *out)
{
    char *end = NULL;
    if (*t == '\0' || *t == ' ')
        return -1;
    /* Decimal digits, or the words LightGBM's AtofPrecise falls back to; strtod's hex floats
     * and "nan(...)" are not LightGBM numbers. */
    const char *w = t + (*t == '-' || *t == '+');
    if (strcasecmp(w, "inf") != 0 && strcasecmp(w, "infinity") != 0 && strcasecmp(w, "nan") != 0 &&
        strspn(t, "0123456789+-.eE") != strlen(t))
        return -1;
    double v = strtod(t, &end);
    if (end == t || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* Reads exactly n doubles / ints from a value span.  Returns 0, or a status with err. */
static int read_doubles(lctx *x, span v, const char *what, uint32_t tree, size_t n, double **out)
{
    char tok[LGBM_MAX_TOKEN];
    size_t have = count_tokens(v), pos = 0;
    if (have != n)
        return fail(x, LGBM_INVALID, "tree %u: %s has %zu values, expected %zu", tree, what, have,
                    n);
    *out = malloc((n ? n : 1) * sizeof(double));
    if (!*out)
        return fail(x, LGBM_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (next_token(v, &pos, tok) || parse_double(tok, &(*out)[i]))
            return fail(x, LGBM_INVALID, "tree %u: %s[%zu] is not a number", tree, what, i);
    return LGBM_OK;
}

static int read_ints(lctx *x, span v, const char *what, uint32_t tree, size_t n, long long lo,
                     long long hi, int32_t **out)
{
    char tok[LGBM_MAX_TOKEN];
    size_t have = count_tokens(v), pos = 0;
    if (have != n)
        return fail(x, LGBM_INVALID, "tree %u: %s has %zu values, expected %zu", tree, what, have,
                    n);
    *out = malloc((n ? n : 1) * sizeof(int32_t));
    if (!*out)
        return fail(x, LGBM_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        long long v2;
        if (next_token(v, &pos, tok) || parse_int(tok, lo, hi, &v2))
            return fail(x, LGBM_INVALID, "tree %u: %s[%zu] is not an integer in [%lld, %lld]", tree,
                        what, i, lo, hi);
        (*out)[i] = (int32_t)v2;
    }
    return LGBM_OK;
}

/* ---- the objective line ------------------------------------------------------------------------
 */

typedef struct objective {
    uint32_t id;
    uint32_t flags;
    double param;
    long long num_class; /* from "num_class:N", -1 when absent */
} objective;

/* "binary sigmoid:1", "multiclass num_class:3", "regression sqrt", ...  (each objective's
 * ToString; the constructors from strings read the same tokens). */
static int parse_objective(lctx *x, span v, objective *o, char *name, size_t namecap)
{
    char tok[LGBM_MAX_TOKEN];
    size_t pos = 0;
    o->flags = 0;
    o->param = 0.0;
    o->num_class = -1;
    if (next_token(v, &pos, tok))
        return fail(x, LGBM_INVALID, "objective is empty");
    snprintf(name, namecap, "%s", tok);
    o->id = model_objective_from_name(tok);
    if (!model_objective_is_lgbm(o->id))
        return fail(x, LGBM_UNSUPPORTED, "objective \"%.60s\"", tok);
    int has_sigmoid = 0;
    while (pos < v.n) {
        if (next_token(v, &pos, tok))
            break;
        char *colon = strchr(tok, ':');
        if (strcmp(tok, "sqrt") == 0) {
            o->flags |= MODEL_LF_SQRT;
        } else if (colon && strncmp(tok, "sigmoid:", 8) == 0) {
            o->param = lgbm_atof(colon + 1);
            has_sigmoid = 1;
        } else if (colon && strncmp(tok, "num_class:", 10) == 0) {
            if (parse_int(colon + 1, 1, MODEL_MAX_CLASSES, &o->num_class))
                return fail(x, LGBM_INVALID, "objective num_class \"%.40s\" out of range",
                            colon + 1);
        }
        /* other parameters (tweedie_variance_power, alpha, ...) do not change predictions */
    }
    int regression = o->id >= MODEL_OBJ_LGBM_REGRESSION && o->id <= MODEL_OBJ_LGBM_MAPE;
    if ((o->flags & MODEL_LF_SQRT) && !regression)
        o->flags &= ~MODEL_LF_SQRT; /* only the regression family reads "sqrt" */
    if (o->id == MODEL_OBJ_LGBM_BINARY || o->id == MODEL_OBJ_LGBM_MULTICLASSOVA) {
        /* BinaryLogloss / MulticlassOVA from strings: Log::Fatal unless sigmoid > 0. */
        if (!has_sigmoid || !(o->param > 0.0) || !isfinite(o->param))
            return fail(x, LGBM_INVALID, "objective %s needs a sigmoid:<positive number>", name);
    } else {
        o->param = 0.0;
    }
    if ((o->id == MODEL_OBJ_LGBM_MULTICLASS || o->id == MODEL_OBJ_LGBM_MULTICLASSOVA) &&
        o->num_class < 0)
        return fail(x, LGBM_INVALID, "objective %s needs num_class:<n>", name);
    return LGBM_OK;
}

/* ---- trees
 * ---------------------------------------------------------------------------------------
 */

typedef struct tree_arrays {
    int32_t *split_feature, *decision_type, *left_child, *right_child, *cat_boundaries;
    double *threshold, *leaf_value;
    uint32_t *cat_threshold;
} tree_arrays;

static void tree_arrays_free(tree_arrays *a)
{
    free(a->split_feature);
    free(a->decision_type);
    free(a->left_child);
    free(a->right_child);
    free(a->cat_boundaries);
    free(a->threshold);
    free(a->leaf_value);
    free(a->cat_threshold);
    memset(a, 0, sizeof *a);
}

/* The value spans of one tree block. */
typedef struct tree_lines {
    span num_leaves, num_cat, split_feature, threshold, decision_type, left_child, right_child,
        leaf_value, cat_boundaries, cat_threshold, is_linear;
    int has_num_leaves, has_num_cat, has_split_feature, has_threshold, has_decision_type,
        has_left_child, has_right_child, has_leaf_value, has_cat_boundaries, has_cat_threshold,
        has_is_linear;
} tree_lines;

static void tree_line(tree_lines *tl, span key, span val)
{
#define TL(name)                                                                                   \
    if (span_is(key, #name)) {                                                                     \
        tl->name = val;                                                                            \
        tl->has_##name = 1;                                                                        \
        return;                                                                                    \
    }
    TL(num_leaves)
    TL(num_cat)
    TL(split_feature)
    TL(threshold)
    TL(decision_type)
    TL(left_child)
    TL(right_child)
    TL(leaf_value)
    TL(cat_boundaries)
    TL(cat_threshold)
    TL(is_linear)
#undef TL
}

/* A scalar integer value span. */
static int span_int(span v, long long lo, long long hi, long long *out)
{
    char tok[LGBM_MAX_TOKEN];
    size_t pos = 0;
    if (count_tokens(v) != 1 || next_token(v, &pos, tok))
        return -1;
    return parse_int(tok, lo, hi, out);
}

/* Parses one tree's lines and appends it to b. */
static int add_tree(lctx *x, model_builder *b, uint32_t t, const tree_lines *tl,
                    uint32_t num_feature)
{
    tree_arrays a = {0};
    model_lgbm_src_tree src = {0};
    long long nl = 0, nc = 0, lin = 0;
    int st = LGBM_OK;
    if (!tl->has_num_leaves || !tl->has_leaf_value)
        return fail(x, LGBM_INVALID, "tree %u: num_leaves or leaf_value missing", t);
    if (tl->has_is_linear && (span_int(tl->is_linear, 0, 1, &lin) != 0))
        return fail(x, LGBM_INVALID, "tree %u: is_linear must be 0 or 1", t);
    if (lin)
        return fail(x, LGBM_UNSUPPORTED,
                    "linear trees (is_linear=1, linear_tree=true) are not supported");
    if (span_int(tl->num_leaves, 1, LGBM_MAX_LEAVES, &nl) != 0)
        return fail(x, LGBM_INVALID, "tree %u: num_leaves must be 1..%d", t, LGBM_MAX_LEAVES);
    if (tl->has_num_cat && span_int(tl->num_cat, 0, nl - 1, &nc) != 0)
        return fail(x, LGBM_INVALID, "tree %u: num_cat must be 0..num_leaves-1", t);
    size_t ni = (size_t)nl - 1;
    if ((st = read_doubles(x, tl->leaf_value, "leaf_value", t, (size_t)nl, &a.leaf_value)))
        goto done;
    if (nl > 1) {
        if (!tl->has_split_feature || !tl->has_threshold || !tl->has_decision_type ||
            !tl->has_left_child || !tl->has_right_child) {
            st = fail(x, LGBM_INVALID, "tree %u: a split array is missing", t);
            goto done;
        }
        if ((st = read_ints(x, tl->split_feature, "split_feature", t, ni, 0,
                            (long long)num_feature - 1, &a.split_feature)) ||
            (st = read_doubles(x, tl->threshold, "threshold", t, ni, &a.threshold)) ||
            (st = read_ints(x, tl->decision_type, "decision_type", t, ni, -128, 127,
                            &a.decision_type)) ||
            (st = read_ints(x, tl->left_child, "left_child", t, ni, -nl, nl - 2, &a.left_child)) ||
            (st = read_ints(x, tl->right_child, "right_child", t, ni, -nl, nl - 2, &a.right_child)))
            goto done;
    }
    if (nc > 0) {
        if (!tl->has_cat_boundaries || !tl->has_cat_threshold) {
            st = fail(x, LGBM_INVALID, "tree %u: num_cat > 0 without cat_boundaries/cat_threshold",
                      t);
            goto done;
        }
        size_t nw = count_tokens(tl->cat_threshold);
        if ((st = read_ints(x, tl->cat_boundaries, "cat_boundaries", t, (size_t)nc + 1, 0,
                            (long long)nw, &a.cat_boundaries)))
            goto done;
        a.cat_threshold = malloc((nw ? nw : 1) * sizeof(uint32_t));
        if (!a.cat_threshold) {
            st = fail(x, LGBM_NOMEM, "out of memory");
            goto done;
        }
        char tok[LGBM_MAX_TOKEN];
        size_t pos = 0;
        for (size_t i = 0; i < nw; i++) {
            long long w;
            if (next_token(tl->cat_threshold, &pos, tok) || parse_int(tok, 0, UINT32_MAX, &w)) {
                st = fail(x, LGBM_INVALID, "tree %u: cat_threshold[%zu] is not a u32 word", t, i);
                goto done;
            }
            a.cat_threshold[i] = (uint32_t)w;
        }
        src.num_cat = (uint32_t)nc;
        src.cat_boundaries = a.cat_boundaries;
        src.cat_threshold = a.cat_threshold;
        src.n_cat_threshold = (uint32_t)nw;
    }
    src.num_leaves = (uint32_t)nl;
    src.split_feature = a.split_feature;
    src.threshold = a.threshold;
    src.decision_type = a.decision_type;
    src.left_child = a.left_child;
    src.right_child = a.right_child;
    src.leaf_value = a.leaf_value;
    char berr[200];
    if (model_lgbm_builder_add_tree(b, &src, berr, sizeof berr) != 0)
        st = fail(x, strstr(berr, "out of memory") ? LGBM_NOMEM : LGBM_INVALID, "tree %u: %s", t,
                  berr);
done:
    tree_arrays_free(&a);
    return st;
}

/* ---- the model
 * -----------------------------------------------------------------------------------
 */

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void lgbm_info_free(lgbm_info *info)
{
    if (info == NULL)
        return;
    free_strings(info->feature_names, info->n_feature_names);
    memset(info, 0, sizeof(*info));
}

/* feature_names=a b c -> n malloc'd strings. */
static int read_names(lctx *x, span v, size_t want, char ***out)
{
    size_t have = count_tokens(v);
    if (have != want)
        return fail(x, LGBM_INVALID, "feature_names has %zu names, max_feature_idx says %zu", have,
                    want);
    char **names = calloc(want ? want : 1, sizeof(char *));
    if (!names)
        return fail(x, LGBM_NOMEM, "out of memory");
    size_t i = 0, k = 0;
    while (k < want) {
        while (i < v.n && v.p[i] == ' ')
            i++;
        size_t b = i;
        while (i < v.n && v.p[i] != ' ')
            i++;
        names[k] = strndup(v.p + b, i - b);
        if (!names[k++]) {
            free_strings(names, k);
            return fail(x, LGBM_NOMEM, "out of memory");
        }
    }
    *out = names;
    return LGBM_OK;
}

int lgbm_compile(const char *text, size_t len, lgbm_info *info, void **blob, size_t *blob_len,
                 char *err, size_t errlen)
{
    lctx x = {err, errlen};
    lgbm_info inf = {0};
    model_builder *b = NULL;
    objective obj = {0};
    reader r = {text, len, 0};
    span line, key, val, names = {0}, objline = {0};
    long long num_class = -1, ntpi = -1, max_feat = -1;
    int has_names = 0, has_obj = 0, st = LGBM_OK;

    *blob = NULL;
    *blob_len = 0;
    if (info)
        memset(info, 0, sizeof *info);
    if (text == NULL || !lgbm_looks_like(text, len))
        return fail(&x, LGBM_INVALID, "a LightGBM text model starts with the line \"tree\"");
    if (memchr(text, '\0', len) != NULL)
        return fail(&x, LGBM_INVALID, "the model text contains a NUL byte");
    next_line(&r, &line);
    /* header: up to the first "Tree=" line */
    size_t tree_start = r.off;
    for (;;) {
        tree_start = r.off;
        if (!next_line(&r, &line))
            return fail(&x, LGBM_INVALID, "truncated: no trees and no \"end of trees\"");
        if (line.n >= 5 && memcmp(line.p, "Tree=", 5) == 0)
            break;
        if (span_is(line, "end of trees"))
            break;
        if (span_is(line, "average_output"))
            return fail(&x, LGBM_UNSUPPORTED,
                        "average_output (random forest boosting) is not supported");
        if (!key_value(line, &key, &val))
            continue;
        if (span_is(key, "version")) {
            if (val.n == 0 || val.n >= sizeof inf.version)
                return fail(&x, LGBM_INVALID, "bad version line");
            memcpy(inf.version, val.p, val.n);
            inf.version[val.n] = '\0';
        } else if (span_is(key, "num_class")) {
            if (span_int(val, 1, MODEL_MAX_CLASSES, &num_class))
                return fail(&x, LGBM_UNSUPPORTED, "num_class must be 1..%u", MODEL_MAX_CLASSES);
        } else if (span_is(key, "num_tree_per_iteration")) {
            if (span_int(val, 1, MODEL_MAX_CLASSES, &ntpi))
                return fail(&x, LGBM_UNSUPPORTED, "num_tree_per_iteration must be 1..%u",
                            MODEL_MAX_CLASSES);
        } else if (span_is(key, "max_feature_idx")) {
            if (span_int(val, 0, 0x7fffffffLL, &max_feat))
                return fail(&x, LGBM_INVALID, "max_feature_idx is not an int");
            if (max_feat >= (long long)MODEL_MAX_FEATURES)
                return fail(&x, LGBM_UNSUPPORTED, "%lld features: at most %u are supported",
                            max_feat + 1, MODEL_MAX_FEATURES);
        } else if (span_is(key, "objective")) {
            objline = val;
            has_obj = 1;
        } else if (span_is(key, "feature_names")) {
            names = val;
            has_names = 1;
        }
    }
    r.off = tree_start;
    if (strcmp(inf.version, "v4") != 0 && strcmp(inf.version, "v3") != 0)
        return fail(&x, inf.version[0] ? LGBM_UNSUPPORTED : LGBM_INVALID,
                    "model version \"%s\": v3 and v4 (LightGBM 3.x/4.x) are supported",
                    inf.version[0] ? inf.version : "(missing)");
    if (num_class < 0 || ntpi < 0 || max_feat < 0)
        return fail(&x, LGBM_INVALID,
                    "num_class, num_tree_per_iteration or max_feature_idx missing");
    if (!has_obj)
        return fail(&x, LGBM_UNSUPPORTED, "a model without an objective (custom objective)");
    if ((st = parse_objective(&x, objline, &obj, inf.objective, sizeof inf.objective)))
        return st;
    int multi = obj.id == MODEL_OBJ_LGBM_MULTICLASS || obj.id == MODEL_OBJ_LGBM_MULTICLASSOVA;
    if (num_class != ntpi || (multi ? obj.num_class != num_class : num_class != 1))
        return fail(&x, LGBM_UNSUPPORTED,
                    "num_class %lld with num_tree_per_iteration %lld for objective %s", num_class,
                    ntpi, inf.objective);
    inf.num_feature = (uint32_t)max_feat + 1;
    inf.num_class = (uint32_t)num_class;
    inf.sigmoid = obj.param;
    if (has_names && (st = read_names(&x, names, inf.num_feature, &inf.feature_names)))
        goto fail;
    if (has_names)
        inf.n_feature_names = inf.num_feature;

    b = model_lgbm_builder_new(obj.id, obj.flags, obj.param, inf.num_feature, inf.num_class);
    if (!b) {
        st = fail(&x, LGBM_NOMEM, "out of memory");
        goto fail;
    }
    /* trees */
    int ended = 0;
    uint32_t t = 0;
    while (!ended) {
        if (!next_line(&r, &line))
            break;
        if (line.n == 0)
            continue;
        if (span_is(line, "end of trees")) {
            ended = 1;
            break;
        }
        long long idx;
        char tok[LGBM_MAX_TOKEN];
        if (line.n < 5 || memcmp(line.p, "Tree=", 5) != 0 || line.n - 5 >= sizeof tok) {
            st = fail(&x, LGBM_INVALID, "expected \"Tree=%u\" or \"end of trees\"", t);
            goto fail;
        }
        memcpy(tok, line.p + 5, line.n - 5);
        tok[line.n - 5] = '\0';
        if (parse_int(tok, 0, MODEL_MAX_TREES, &idx) || idx != (long long)t) {
            st = fail(&x, LGBM_INVALID, "expected \"Tree=%u\"", t);
            goto fail;
        }
        if (t >= MODEL_MAX_TREES) {
            st = fail(&x, LGBM_UNSUPPORTED, "more than %u trees", MODEL_MAX_TREES);
            goto fail;
        }
        tree_lines tl;
        memset(&tl, 0, sizeof tl);
        size_t back = r.off;
        while (next_line(&r, &line)) {
            if (line.n == 0 || span_is(line, "end of trees") ||
                (line.n >= 5 && memcmp(line.p, "Tree=", 5) == 0)) {
                r.off = back; /* leave the terminator to the outer loop */
                break;
            }
            back = r.off;
            if (key_value(line, &key, &val))
                tree_line(&tl, key, val);
        }
        if ((st = add_tree(&x, b, t, &tl, inf.num_feature)))
            goto fail;
        t++;
    }
    if (!ended) {
        st = fail(&x, LGBM_INVALID, "truncated: \"end of trees\" not found after %u trees", t);
        goto fail;
    }
    if (t % inf.num_class != 0) {
        st = fail(&x, LGBM_INVALID, "%u trees is not a whole number of iterations of %u", t,
                  inf.num_class);
        goto fail;
    }
    inf.num_trees = t;
    char berr[200];
    if (model_build(b, blob, blob_len, berr, sizeof berr) != 0) {
        st = fail(&x, strstr(berr, "out of memory") ? LGBM_NOMEM : LGBM_INVALID, "%s", berr);
        goto fail;
    }
    model_builder_free(b);
    if (info)
        *info = inf;
    else
        lgbm_info_free(&inf);
    return LGBM_OK;
fail:
    model_builder_free(b);
    lgbm_info_free(&inf);
    return st;
}
