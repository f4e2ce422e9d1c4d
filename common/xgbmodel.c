/* xgbmodel.c - XGBoost JSON model -> compiled blob.  See xgbmodel.h for the contract.
 *
 * Two stages.  (1) A strict JSON pass (RFC 8259 plus xgboost's NaN/Infinity/-Infinity tokens)
 * builds an index of containers and strings; scalars inside arrays are only counted, and read back
 * later by re-lexing the array's text, so a model with millions of split values costs a few index
 * entries per tree.  (2) The xgboost layout is read from the index tree by tree into
 * model_builder, which renumbers nodes canonically and checks the tree shape.
 * Costs: O(len) time; memory as stated in xgbmodel.h. */
#include "xgbmodel.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_build.h"

/* ---- errors ------------------------------------------------------------------------------------
 */

typedef struct xctx {
    char *err;
    size_t errlen;
} xctx;

static int fail(xctx *x, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(xctx *x, int status, const char *fmt, ...)
{
    if (x->err != NULL && x->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->err, x->errlen, fmt, ap);
        va_end(ap);
    }
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

/* ---- stage 1: strict JSON index ----------------------------------------------------------------
 */

enum jtype { J_OBJ = 1, J_ARR, J_STR, J_SCALAR };

/* Kinds of scalar tokens. */
enum jkind { K_INT = 1, K_REAL, K_NAN, K_INF, K_NINF, K_TRUE, K_FALSE, K_NULL };

#define JNONE UINT32_MAX

typedef struct jnode {
    size_t off;     /* string: first byte inside the quotes; scalar: token; container: '[' or '{' */
    size_t len;     /* string: raw length; scalar: token length */
    uint32_t end;   /* index of the next sibling (one past this subtree) */
    uint32_t count; /* object: members; array: elements (indexed or not) */
    uint8_t type;   /* enum jtype */
    uint8_t kind;   /* scalar: enum jkind; array: 1 if it holds scalars (not indexed) */
    uint8_t esc;    /* string contains escapes */
    uint8_t nodes;  /* array: 1 if it holds indexed elements (containers or strings) */
} jnode;

typedef struct jdoc {
    const char *s;
    size_t len;
    size_t pos;
    jnode *n;
    uint32_t count, cap, max;
    xctx *x;
    int status; /* first failure */
} jdoc;

static int jfail(jdoc *d, int status, const char *what)
{
    if (d->status == XGB_OK)
        d->status = fail(d->x, status, "%s at byte %zu", what, d->pos);
    return -1;
}

static void skip_ws(jdoc *d)
{
    while (d->pos < d->len) {
        char c = d->s[d->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        d->pos++;
    }
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Lexes one scalar token at s[p..len).  Returns its end, or 0 (never a valid end, since a token is
 * at least one byte after p >= 0... p may be 0, so failure is signalled by *kind = 0). */
static size_t lex_scalar(const char *s, size_t len, size_t p, int *kind)
{
    static const struct {
        const char *t;
        int k;
    } lits[] = {{"NaN", K_NAN},   {"Infinity", K_INF}, {"-Infinity", K_NINF},
                {"true", K_TRUE}, {"false", K_FALSE},  {"null", K_NULL}};
    *kind = 0;
    for (size_t i = 0; i < sizeof(lits) / sizeof(lits[0]); i++) {
        size_t tl = strlen(lits[i].t);
        if (len - p >= tl && memcmp(s + p, lits[i].t, tl) == 0) {
            *kind = lits[i].k;
            return p + tl;
        }
    }
    size_t q = p;
    int k = K_INT;
    if (q < len && s[q] == '-')
        q++;
    if (q >= len)
        return 0;
    if (s[q] == '0') {
        q++;
    } else if (s[q] >= '1' && s[q] <= '9') {
        while (q < len && is_digit(s[q]))
            q++;
    } else {
        return 0;
    }
    if (q < len && s[q] == '.') {
        q++;
        k = K_REAL;
        if (q >= len || !is_digit(s[q]))
            return 0;
        while (q < len && is_digit(s[q]))
            q++;
    }
    if (q < len && (s[q] == 'e' || s[q] == 'E')) {
        q++;
        k = K_REAL;
        if (q < len && (s[q] == '+' || s[q] == '-'))
            q++;
        if (q >= len || !is_digit(s[q]))
            return 0;
        while (q < len && is_digit(s[q]))
            q++;
    }
    *kind = k;
    return q;
}

static uint32_t new_node(jdoc *d, int type)
{
    if (d->count >= d->max) {
        jfail(d, XGB_INVALID, "too many JSON values for the document size");
        return JNONE;
    }
    if (d->count == d->cap) {
        uint32_t ncap = d->cap ? d->cap * 2 : 256;
        if (ncap > d->max)
            ncap = d->max;
        jnode *p = realloc(d->n, (size_t)ncap * sizeof(*p));
        if (p == NULL) {
            jfail(d, XGB_NOMEM, "out of memory");
            return JNONE;
        }
        d->n = p;
        d->cap = ncap;
    }
    uint32_t i = d->count++;
    memset(&d->n[i], 0, sizeof(d->n[i]));
    d->n[i].type = (uint8_t)type;
    d->n[i].off = d->pos;
    return i;
}

/* Lexes a string starting at the opening quote into a J_STR node.  Validates escapes and rejects
 * raw control characters.  Returns the node or JNONE. */
static uint32_t parse_string(jdoc *d)
{
    d->pos++; /* opening quote */
    uint32_t i = new_node(d, J_STR);
    if (i == JNONE)
        return JNONE;
    int esc = 0;
    while (d->pos < d->len) {
        unsigned char c = (unsigned char)d->s[d->pos];
        if (c == '"') {
            d->n[i].len = d->pos - d->n[i].off;
            d->n[i].esc = (uint8_t)esc;
            d->n[i].end = i + 1;
            d->pos++;
            return i;
        }
        if (c < 0x20) {
            jfail(d, XGB_INVALID, "control character in string");
            return JNONE;
        }
        if (c == '\\') {
            esc = 1;
            d->pos++;
            if (d->pos >= d->len)
                break;
            char e = d->s[d->pos];
            if (e == 'u') {
                for (int k = 1; k <= 4; k++) {
                    char h = d->pos + (size_t)k < d->len ? d->s[d->pos + (size_t)k] : 0;
                    if (!is_digit(h) && !((h | 0x20) >= 'a' && (h | 0x20) <= 'f')) {
                        jfail(d, XGB_INVALID, "bad \\u escape");
                        return JNONE;
                    }
                }
                d->pos += 4;
            } else if (!strchr("\"\\/bfnrt", e) || e == 0) {
                jfail(d, XGB_INVALID, "bad escape");
                return JNONE;
            }
        }
        d->pos++;
    }
    jfail(d, XGB_INVALID, "unterminated string");
    return JNONE;
}

static int parse_value(jdoc *d, int depth, uint32_t *out);

/* Parses a scalar at d->pos; stores a node unless packed (inside an array). */
static int parse_scalar(jdoc *d, int packed, uint32_t *out)
{
    int kind;
    size_t e = lex_scalar(d->s, d->len, d->pos, &kind);
    if (kind == 0)
        return jfail(d, XGB_INVALID, "invalid JSON value");
    *out = JNONE;
    if (!packed) {
        uint32_t i = new_node(d, J_SCALAR);
        if (i == JNONE)
            return -1;
        d->n[i].len = e - d->pos;
        d->n[i].kind = (uint8_t)kind;
        d->n[i].end = i + 1;
        *out = i;
    }
    d->pos = e;
    return 0;
}

static int parse_container(jdoc *d, int depth, int is_obj, uint32_t *out)
{
    uint32_t i = new_node(d, is_obj ? J_OBJ : J_ARR);
    if (i == JNONE)
        return -1;
    d->pos++;
    skip_ws(d);
    char close = is_obj ? '}' : ']';
    uint32_t count = 0;
    if (d->pos < d->len && d->s[d->pos] == close) {
        d->pos++;
    } else {
        for (;;) {
            uint32_t child;
            skip_ws(d);
            if (d->pos >= d->len)
                return jfail(d, XGB_INVALID, "truncated JSON");
            if (is_obj) {
                if (d->s[d->pos] != '"')
                    return jfail(d, XGB_INVALID, "expected a member name");
                if (parse_string(d) == JNONE)
                    return -1;
                skip_ws(d);
                if (d->pos >= d->len || d->s[d->pos] != ':')
                    return jfail(d, XGB_INVALID, "expected ':'");
                d->pos++;
                skip_ws(d);
                if (parse_value(d, depth + 1, &child) != 0)
                    return -1;
            } else {
                char c = d->pos < d->len ? d->s[d->pos] : 0;
                if (c == '{' || c == '[' || c == '"') {
                    if (parse_value(d, depth + 1, &child) != 0)
                        return -1;
                    d->n[i].nodes = 1;
                } else {
                    if (parse_scalar(d, 1, &child) != 0)
                        return -1;
                    d->n[i].kind = 1;
                }
            }
            if (count == UINT32_MAX)
                return jfail(d, XGB_INVALID, "container too large");
            count++;
            skip_ws(d);
            if (d->pos >= d->len)
                return jfail(d, XGB_INVALID, "truncated JSON");
            if (d->s[d->pos] == ',') {
                d->pos++;
                continue;
            }
            if (d->s[d->pos] == close) {
                d->pos++;
                break;
            }
            return jfail(d, XGB_INVALID, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    d->n[i].count = count;
    d->n[i].end = d->count;
    *out = i;
    return 0;
}

static int parse_value(jdoc *d, int depth, uint32_t *out)
{
    if (depth > XGB_MAX_DEPTH)
        return jfail(d, XGB_INVALID, "JSON nested too deeply");
    skip_ws(d);
    if (d->pos >= d->len)
        return jfail(d, XGB_INVALID, "truncated JSON");
    char c = d->s[d->pos];
    if (c == '{' || c == '[')
        return parse_container(d, depth, c == '{', out);
    if (c == '"') {
        *out = parse_string(d);
        return *out == JNONE ? -1 : 0;
    }
    return parse_scalar(d, 0, out);
}

/* Parses the whole document.  Returns XGB_OK or the failure status (err filled). */
static int jdoc_parse(jdoc *d, const char *s, size_t len, xctx *x)
{
    memset(d, 0, sizeof(*d));
    d->s = s;
    d->len = len;
    d->x = x;
    size_t max = len / 4 + 4096;
    d->max = max > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)max;
    uint32_t root;
    if (parse_value(d, 1, &root) != 0)
        return d->status;
    skip_ws(d);
    if (d->pos != len) {
        jfail(d, XGB_INVALID, "trailing data after the JSON value");
        return d->status;
    }
    if (d->n[0].type != J_OBJ)
        return fail(x, XGB_INVALID, "model is not a JSON object");
    return XGB_OK;
}

/* Decodes string node i into out (capacity cap, NUL-terminated).  \u0000 and strings that do not
 * fit are rejected.  Returns 0 or -1. */
static int jstr_decode(const jdoc *d, uint32_t i, char *out, size_t cap)
{
    const char *s = d->s + d->n[i].off;
    size_t n = d->n[i].len, o = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned cp = (unsigned char)s[k];
        if (cp == '\\') {
            char e = s[++k]; /* the lexer proved an escape char follows */
            if (e == 'u') {
                cp = (unsigned)strtoul((char[5]){s[k + 1], s[k + 2], s[k + 3], s[k + 4], 0}, NULL,
                                       16);
                k += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF && k + 6 < n && s[k + 1] == '\\' &&
                    s[k + 2] == 'u') {
                    unsigned lo = (unsigned)strtoul(
                        (char[5]){s[k + 3], s[k + 4], s[k + 5], s[k + 6], 0}, NULL, 16);
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        k += 6;
                    }
                }
                if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
                    return -1;
                char u[4];
                size_t ul;
                if (cp < 0x80) {
                    u[0] = (char)cp;
                    ul = 1;
                } else if (cp < 0x800) {
                    u[0] = (char)(0xC0 | (cp >> 6));
                    u[1] = (char)(0x80 | (cp & 0x3F));
                    ul = 2;
                } else if (cp < 0x10000) {
                    u[0] = (char)(0xE0 | (cp >> 12));
                    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    u[2] = (char)(0x80 | (cp & 0x3F));
                    ul = 3;
                } else {
                    u[0] = (char)(0xF0 | (cp >> 18));
                    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
                    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    u[3] = (char)(0x80 | (cp & 0x3F));
                    ul = 4;
                }
                if (o + ul >= cap)
                    return -1;
                memcpy(out + o, u, ul);
                o += ul;
                continue;
            }
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            cp = (unsigned char)to[strchr(from, e) - from];
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = (char)cp;
    }
    if (o >= cap)
        return -1;
    out[o] = 0;
    return 0;
}

/* Member value of object node obj named key, or JNONE. */
static uint32_t jget(const jdoc *d, uint32_t obj, const char *key)
{
    if (obj == JNONE || d->n[obj].type != J_OBJ)
        return JNONE;
    size_t kl = strlen(key);
    uint32_t i = obj + 1;
    for (uint32_t m = 0; m < d->n[obj].count; m++) {
        uint32_t v = i + 1;
        const jnode *k = &d->n[i];
        if (!k->esc) {
            if (k->len == kl && memcmp(d->s + k->off, key, kl) == 0)
                return v;
        } else {
            char buf[128];
            if (jstr_decode(d, i, buf, sizeof(buf)) == 0 && strcmp(buf, key) == 0)
                return v;
        }
        i = d->n[v].end;
    }
    return JNONE;
}

static uint32_t jget_type(const jdoc *d, uint32_t obj, const char *key, int type)
{
    uint32_t v = jget(d, obj, key);
    return v != JNONE && d->n[v].type == type ? v : JNONE;
}

/* ---- scalar conversion -------------------------------------------------------------------------
 */

/* Converts a number token to float32 directly with strtof (never via double).  NaN/Infinity
 * tokens map to their values; a finite token that overflows float is rejected. */
static int tok_float(const char *s, size_t len, int kind, float *out)
{
    switch (kind) {
    case K_NAN:
        *out = NAN;
        return 0;
    case K_INF:
        *out = INFINITY;
        return 0;
    case K_NINF:
        *out = -INFINITY;
        return 0;
    case K_INT:
    case K_REAL: {
        char buf[XGB_MAX_NUMBER_CHARS + 1];
        if (len > XGB_MAX_NUMBER_CHARS)
            return -1;
        memcpy(buf, s, len);
        buf[len] = 0;
        char *end;
        float f = strtof(buf, &end);
        if (end != buf + len || isinf(f))
            return -1;
        *out = f;
        return 0;
    }
    default:
        return -1;
    }
}

/* Integer token (no fraction or exponent) in [lo, hi]. */
static int tok_int(const char *s, size_t len, int kind, int64_t lo, int64_t hi, int64_t *out)
{
    if (kind != K_INT || len > 20)
        return -1;
    char buf[24];
    memcpy(buf, s, len);
    buf[len] = 0;
    errno = 0;
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (errno != 0 || end != buf + len || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Reads a number held in a JSON string, as xgboost writes parameters ("5E-1", "7"); a 2.x style
 * single-element list "[5E-1]" is accepted when allow_list.  Returns 0, -1 (malformed) or -2 (a
 * list of more than one value). */
static int jstr_number(const jdoc *d, uint32_t i, int allow_list, float *f, int *kind_out)
{
    char buf[XGB_MAX_NUMBER_CHARS + 3];
    if (i == JNONE || d->n[i].type != J_STR || jstr_decode(d, i, buf, sizeof(buf)) != 0)
        return -1;
    char *p = buf;
    size_t n = strlen(buf);
    if (allow_list && n >= 2 && p[0] == '[' && p[n - 1] == ']') {
        p++;
        n -= 2;
        if (memchr(p, ',', n) != NULL)
            return -2;
    }
    int kind;
    size_t e = lex_scalar(p, n, 0, &kind);
    if (kind == 0 || e != n || kind > K_NINF)
        return -1;
    *kind_out = kind;
    return tok_float(p, n, kind, f);
}

/* Unsigned integer held in a JSON string ("7"), at most hi. */
static int jstr_uint(const jdoc *d, uint32_t i, int64_t hi, int64_t *out)
{
    char buf[32];
    if (i == JNONE || d->n[i].type != J_STR || jstr_decode(d, i, buf, sizeof(buf)) != 0)
        return -1;
    int kind;
    size_t n = strlen(buf);
    size_t e = lex_scalar(buf, n, 0, &kind);
    if (kind != K_INT || e != n)
        return -1;
    return tok_int(buf, n, kind, 0, hi, out);
}

/* Iterator over the scalar elements of an array node (re-lexes its text). */
typedef struct jiter {
    const jdoc *d;
    size_t pos;
    uint32_t left;
} jiter;

/* Starts iterating array a, which must hold only scalars and exactly `count` of them (pass
 * UINT32_MAX for any count).  Returns 0 or -1. */
static int jiter_init(jiter *it, const jdoc *d, uint32_t a, uint32_t count)
{
    if (a == JNONE || d->n[a].type != J_ARR || d->n[a].nodes ||
        (count != UINT32_MAX && d->n[a].count != count))
        return -1;
    it->d = d;
    it->pos = d->n[a].off + 1;
    it->left = d->n[a].count;
    return 0;
}

/* Next token of the array (the JSON pass proved the grammar, so this only re-finds tokens). */
static void jiter_next(jiter *it, const char **tok, size_t *len, int *kind)
{
    const char *s = it->d->s;
    size_t n = it->d->len;
    while (it->pos < n && (s[it->pos] == ' ' || s[it->pos] == '\t' || s[it->pos] == '\n' ||
                           s[it->pos] == '\r' || s[it->pos] == ','))
        it->pos++;
    size_t e = lex_scalar(s, n, it->pos, kind);
    *tok = s + it->pos;
    *len = e - it->pos;
    it->pos = e;
    it->left--;
}

/* Reads array a of exactly n integers in [lo, hi] into out. */
static int jarr_ints(const jdoc *d, uint32_t a, uint32_t n, int64_t lo, int64_t hi, int64_t *out,
                     int allow_bool)
{
    jiter it;
    if (jiter_init(&it, d, a, n) != 0)
        return -1;
    for (uint32_t k = 0; k < n; k++) {
        const char *t;
        size_t l;
        int kind;
        jiter_next(&it, &t, &l, &kind);
        if (allow_bool && (kind == K_TRUE || kind == K_FALSE)) {
            out[k] = kind == K_TRUE;
            continue;
        }
        if (tok_int(t, l, kind, lo, hi, &out[k]) != 0)
            return -1;
    }
    return 0;
}

static int jarr_floats(const jdoc *d, uint32_t a, uint32_t n, float *out)
{
    jiter it;
    if (jiter_init(&it, d, a, n) != 0)
        return -1;
    for (uint32_t k = 0; k < n; k++) {
        const char *t;
        size_t l;
        int kind;
        jiter_next(&it, &t, &l, &kind);
        if (tok_float(t, l, kind, &out[k]) != 0)
            return -1;
    }
    return 0;
}

/* ---- stage 2: the xgboost layout ---------------------------------------------------------------
 */

static void free_strings(char **v, size_t n);

/* Copies a string array (feature_names / feature_types) into malloc'd strings (*out, *n); an
 * absent array gives NULL, 0.  Returns an xgb_status. */
static int read_strings(const jdoc *d, uint32_t a, char ***out, size_t *n, xctx *x,
                        const char *what)
{
    char **v = NULL;
    uint32_t cnt = 0, k = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if (a == JNONE)
        return XGB_OK;
    if (d->n[a].type != J_ARR || (d->n[a].kind && d->n[a].count))
        return fail(x, XGB_INVALID, "%s is not an array of strings", what);
    cnt = d->n[a].count;
    if (cnt == 0)
        return XGB_OK;
    if (cnt > MODEL_MAX_FEATURES)
        return fail(x, XGB_INVALID, "%s has too many entries", what);
    v = calloc(cnt, sizeof(*v));
    if (v == NULL)
        return fail(x, XGB_NOMEM, "out of memory");
    uint32_t i = a + 1;
    for (k = 0; k < cnt; k++) {
        if (d->n[i].type != J_STR) {
            rc = fail(x, XGB_INVALID, "%s[%u] is not a string", what, k);
            goto fail;
        }
        v[k] = malloc(d->n[i].len + 1);
        if (v[k] == NULL) {
            rc = fail(x, XGB_NOMEM, "out of memory");
            goto fail;
        }
        if (jstr_decode(d, i, v[k], d->n[i].len + 1) != 0) {
            rc = fail(x, XGB_INVALID, "%s[%u] is not a valid string", what, k);
            goto fail;
        }
        i = d->n[i].end;
    }
    *out = v;
    *n = cnt;
    return XGB_OK;
fail:
    free_strings(v, cnt); /* calloc'd: unused entries are NULL */
    return rc;
}

static void free_strings(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void xgb_info_free(xgb_info *info)
{
    if (info == NULL)
        return;
    free_strings(info->feature_names, info->n_feature_names);
    free_strings(info->feature_types, info->n_feature_types);
    memset(info, 0, sizeof(*info));
}

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
    uint32_t cap, cats_cap, cn_cap;
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
}

static int reserve(void **p, uint32_t *cap, uint32_t n, size_t sz)
{
    if (n <= *cap && *p != NULL)
        return 0;
    void *q = realloc(*p, (size_t)(n ? n : 1) * sz);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

/* Reads tree object t (n nodes per tree_param) into b->nodes and adds it to the builder. */
static int load_tree(const jdoc *d, uint32_t t, uint32_t idx, uint32_t group, float weight,
                     uint32_t num_feature, treebuf *b, model_builder *mb, xctx *x)
{
    uint32_t tp = jget_type(d, t, "tree_param", J_OBJ);
    int64_t nn, slv = 0;
    if (jstr_uint(d, jget(d, tp, "num_nodes"), MODEL_MAX_TREE_NODES, &nn) != 0 || nn < 1)
        return fail(x, XGB_INVALID, "tree %u: tree_param.num_nodes missing or out of range", idx);
    uint32_t slvn = jget(d, tp, "size_leaf_vector");
    if (slvn != JNONE && jstr_uint(d, slvn, INT32_MAX, &slv) != 0)
        return fail(x, XGB_INVALID, "tree %u: bad size_leaf_vector", idx);
    if (slv > 1)
        return fail(x, XGB_UNSUPPORTED, "vector leaves (size_leaf_vector=%lld)", (long long)slv);
    uint32_t n = (uint32_t)nn;
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
        if (jarr_ints(d, jget(d, t, keys[k]), n, lo, hi, b->ibuf + (size_t)k * n, k == 3) != 0)
            return fail(x, XGB_INVALID, "tree %u: \"%s\" missing, not %u integers, or out of range",
                        idx, keys[k], n);
    }
    if (jarr_floats(d, jget(d, t, "split_conditions"), n, b->fbuf) != 0)
        return fail(x, XGB_INVALID, "tree %u: \"split_conditions\" missing or not %u numbers", idx,
                    n);
    uint32_t st = jget(d, t, "split_type");
    if (st == JNONE)
        memset(stype, 0, (size_t)n * sizeof(*stype));
    else if (jarr_ints(d, st, n, 0, 1, stype, 0) != 0)
        return fail(x, XGB_INVALID, "tree %u: \"split_type\" not %u values in {0,1}", idx, n);

    uint32_t ncat_nodes = 0, ncats = 0;
    uint32_t cn = jget(d, t, "categories_nodes");
    if (cn != JNONE) {
        uint32_t cs = jget(d, t, "categories_segments"), cz = jget(d, t, "categories_sizes"),
                 cc = jget(d, t, "categories");
        if (d->n[cn].type != J_ARR || cs == JNONE || cz == JNONE || cc == JNONE ||
            d->n[cc].type != J_ARR)
            return fail(x, XGB_INVALID, "tree %u: incomplete categorical split arrays", idx);
        ncat_nodes = d->n[cn].count;
        ncats = d->n[cc].count;
        uint32_t c1 = b->cn_cap, c2 = b->cn_cap, c3 = b->cn_cap;
        if (reserve((void **)&b->cnodes, &c1, ncat_nodes, sizeof(int64_t)) ||
            reserve((void **)&b->cseg, &c2, ncat_nodes, sizeof(int64_t)) ||
            reserve((void **)&b->csize, &c3, ncat_nodes, sizeof(int64_t)) ||
            reserve((void **)&b->cats, &b->cats_cap, ncats, sizeof(int64_t)))
            return fail(x, XGB_NOMEM, "out of memory");
        b->cn_cap = c1;
        if (jarr_ints(d, cn, ncat_nodes, 0, n - 1, b->cnodes, 0) ||
            jarr_ints(d, cs, ncat_nodes, 0, ncats, b->cseg, 0) ||
            jarr_ints(d, cz, ncat_nodes, 1, ncats, b->csize, 0) ||
            jarr_ints(d, cc, ncats, INT32_MIN, INT32_MAX, b->cats, 0))
            return fail(x, XGB_INVALID, "tree %u: malformed categorical split arrays", idx);
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
    }
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
    (void)num_feature; /* checked by the builder */
    char berr[160];
    if (model_builder_add_tree(mb, group, weight, b->nodes, n, berr, sizeof(berr)) != 0)
        return fail(x, strstr(berr, "out of memory") ? XGB_NOMEM : XGB_INVALID, "tree %u: %s", idx,
                    berr);
    return XGB_OK;
}

static void copy_name(char *dst, size_t cap, const jdoc *d, uint32_t i)
{
    dst[0] = 0;
    if (i != JNONE && d->n[i].type == J_STR && jstr_decode(d, i, dst, cap) != 0) {
        size_t l = d->n[i].len < cap - 1 ? d->n[i].len : cap - 1; /* too long: raw prefix */
        memcpy(dst, d->s + d->n[i].off, l);
        dst[l] = 0;
    }
}

int xgb_compile(const char *json, size_t len, xgb_info *info, void **blob, size_t *blob_len,
                char *err, size_t errlen)
{
    xctx x = {err, errlen};
    jdoc d;
    xgb_info inf;
    model_builder *mb = NULL;
    treebuf tb;
    uint32_t *slot = NULL;
    int64_t *tinfo = NULL;
    float *wdrop = NULL;
    int rc;

    memset(&inf, 0, sizeof(inf));
    memset(&tb, 0, sizeof(tb));
    *blob = NULL;
    *blob_len = 0;
    if (info != NULL)
        memset(info, 0, sizeof(*info));
    if (err != NULL && errlen > 0)
        err[0] = 0;

    if ((rc = jdoc_parse(&d, json, len, &x)) != XGB_OK)
        goto out;

    uint32_t learner = jget_type(&d, 0, "learner", J_OBJ);
    if (learner == JNONE) {
        rc = fail(&x, XGB_INVALID, "not an xgboost model: no \"learner\" object");
        goto out;
    }
    uint32_t gb = jget_type(&d, learner, "gradient_booster", J_OBJ);
    uint32_t gbname = jget_type(&d, gb, "name", J_STR);
    if (gbname == JNONE) {
        rc = fail(&x, XGB_INVALID, "not an xgboost model: no learner.gradient_booster.name");
        goto out;
    }
    copy_name(inf.booster, sizeof(inf.booster), &d, gbname);
    int dart = strcmp(inf.booster, "dart") == 0;
    if (!dart && strcmp(inf.booster, "gbtree") != 0) {
        rc = fail(&x, XGB_UNSUPPORTED, "unsupported booster \"%s\"", inf.booster);
        goto out;
    }
    uint32_t objname = jget_type(&d, jget_type(&d, learner, "objective", J_OBJ), "name", J_STR);
    if (objname == JNONE) {
        rc = fail(&x, XGB_INVALID, "not an xgboost model: no learner.objective.name");
        goto out;
    }
    copy_name(inf.objective, sizeof(inf.objective), &d, objname);
    uint32_t obj = model_objective_from_name(inf.objective);
    if (obj == 0) {
        rc = fail(&x, XGB_UNSUPPORTED, "unsupported objective \"%s\"", inf.objective);
        goto out;
    }

    uint32_t lmp = jget_type(&d, learner, "learner_model_param", J_OBJ);
    int64_t nf, nc, ntarget = 1;
    int kind;
    if (lmp == JNONE || jstr_uint(&d, jget(&d, lmp, "num_feature"), MODEL_MAX_FEATURES, &nf) ||
        jstr_uint(&d, jget(&d, lmp, "num_class"), INT32_MAX, &nc)) {
        rc = fail(&x, XGB_INVALID, "learner_model_param: num_feature/num_class missing or bad");
        goto out;
    }
    if (nf < 1) {
        rc = fail(&x, XGB_INVALID, "num_feature is 0");
        goto out;
    }
    uint32_t nt = jget(&d, lmp, "num_target");
    if (nt != JNONE && jstr_uint(&d, nt, INT32_MAX, &ntarget) != 0) {
        rc = fail(&x, XGB_INVALID, "learner_model_param.num_target is bad");
        goto out;
    }
    if (ntarget > 1) {
        rc = fail(&x, XGB_UNSUPPORTED, "multi-target model (num_target=%lld)", (long long)ntarget);
        goto out;
    }
    int bsr = jstr_number(&d, jget(&d, lmp, "base_score"), 1, &inf.base_score, &kind);
    if (bsr == -2) {
        rc = fail(&x, XGB_UNSUPPORTED, "vector base_score");
        goto out;
    }
    if (bsr != 0 || !isfinite(inf.base_score)) {
        rc = fail(&x, XGB_INVALID, "learner_model_param.base_score missing or not a number");
        goto out;
    }
    int multi = obj == MODEL_OBJ_SOFTPROB || obj == MODEL_OBJ_SOFTMAX;
    if (multi) {
        if (nc < 1 || nc > MODEL_MAX_CLASSES) {
            rc = fail(&x, nc < 1 ? XGB_INVALID : XGB_UNSUPPORTED,
                      "num_class %lld out of range for %s", (long long)nc, inf.objective);
            goto out;
        }
    } else if (nc > 1) {
        rc = fail(&x, XGB_UNSUPPORTED, "num_class %lld with objective \"%s\"", (long long)nc,
                  inf.objective);
        goto out;
    }
    inf.num_feature = (uint32_t)nf;
    inf.num_class = multi ? (uint32_t)nc : 1;
    if ((rc = base_margin(obj, inf.base_score, &inf.base_margin, &x)) != XGB_OK)
        goto out;

    rc = read_strings(&d, jget(&d, learner, "feature_names"), &inf.feature_names,
                      &inf.n_feature_names, &x, "feature_names");
    if (rc == XGB_OK)
        rc = read_strings(&d, jget(&d, learner, "feature_types"), &inf.feature_types,
                          &inf.n_feature_types, &x, "feature_types");
    if (rc != XGB_OK)
        goto out;
    if ((inf.n_feature_names && inf.n_feature_names != inf.num_feature) ||
        (inf.n_feature_types && inf.n_feature_types != inf.num_feature)) {
        rc = fail(&x, XGB_INVALID, "feature_names/feature_types length differs from num_feature");
        goto out;
    }

    uint32_t model = dart ? jget_type(&d, jget_type(&d, gb, "gbtree", J_OBJ), "model", J_OBJ)
                          : jget_type(&d, gb, "model", J_OBJ);
    uint32_t gmp = jget_type(&d, model, "gbtree_model_param", J_OBJ);
    uint32_t trees = jget_type(&d, model, "trees", J_ARR);
    int64_t ntrees;
    if (model == JNONE || trees == JNONE ||
        jstr_uint(&d, jget(&d, gmp, "num_trees"), MODEL_MAX_TREES, &ntrees) != 0) {
        rc = fail(&x, XGB_INVALID, "gradient booster: model, trees or num_trees missing");
        goto out;
    }
    if (d.n[trees].count != ntrees || (ntrees > 0 && d.n[trees].kind)) {
        rc = fail(&x, XGB_INVALID, "num_trees is %lld but \"trees\" holds %u objects",
                  (long long)ntrees, d.n[trees].count);
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
    if (jarr_ints(&d, jget(&d, model, "tree_info"), n, 0, (int64_t)inf.num_class - 1, tinfo, 0)) {
        rc = fail(&x, XGB_INVALID, "tree_info missing, not %u entries, or a group >= num_class %u",
                  n, inf.num_class);
        goto out;
    }
    if (dart) {
        if (jarr_floats(&d, jget(&d, gb, "weight_drop"), n, wdrop) != 0) {
            rc = fail(&x, XGB_INVALID, "dart weight_drop missing or not %u numbers", n);
            goto out;
        }
    } else {
        for (uint32_t i = 0; i < n; i++)
            wdrop[i] = 1.0f;
    }
    /* Trees are placed by their "id" (gbtree_model.cc LoadModel), which must be a permutation. */
    for (uint32_t i = 0; i < n; i++)
        slot[i] = JNONE;
    uint32_t t = trees + 1;
    for (uint32_t i = 0; i < n; i++) {
        int64_t id;
        uint32_t idn = jget_type(&d, t, "id", J_SCALAR);
        if (d.n[t].type != J_OBJ || idn == JNONE ||
            tok_int(json + d.n[idn].off, d.n[idn].len, d.n[idn].kind, 0, (int64_t)n - 1, &id)) {
            rc = fail(&x, XGB_INVALID, "trees[%u]: not an object with an id in [0, %u)", i, n);
            goto out;
        }
        if (slot[id] != JNONE) {
            rc = fail(&x, XGB_INVALID, "tree id %lld appears twice", (long long)id);
            goto out;
        }
        slot[id] = t;
        t = d.n[t].end;
    }
    mb = model_builder_new(obj, dart ? MODEL_F_DART : 0, inf.num_feature, inf.num_class,
                           inf.base_score, inf.base_margin);
    if (mb == NULL) {
        rc = fail(&x, XGB_NOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        rc = load_tree(&d, slot[i], i, (uint32_t)tinfo[i], wdrop[i], inf.num_feature, &tb, mb, &x);
        if (rc != XGB_OK)
            goto out;
    }
    char berr[160];
    if (model_build(mb, blob, blob_len, berr, sizeof(berr)) != 0) {
        rc = fail(&x, strstr(berr, "out of memory") ? XGB_NOMEM : XGB_INVALID, "%s", berr);
        goto out;
    }
    rc = XGB_OK;
out:
    model_builder_free(mb);
    treebuf_free(&tb);
    free(slot);
    free(tinfo);
    free(wdrop);
    free(d.n);
    if (rc == XGB_OK && info != NULL)
        *info = inf;
    else
        xgb_info_free(&inf);
    return rc;
}
