/* rows.c - the body of POST /api/v1/models/{id}/predict straight into a float32 matrix (or a
 * float64 one for LightGBM models).
 *
 * The body is first checked by json_validate (strict grammar, UTF-8, depth), so this reader walks
 * text already known to be well formed and only checks meaning.  It never builds a cJSON tree: a
 * 64 MiB body of numbers would cost gigabytes as one.  Costs: O(body) time; memory = the matrix
 * (grown by doubling up to max_rows) plus a name index of the model's features. */
#include "rows.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "hex.h"
#include "json.h"
#include "numtext.h"

#define ROWS_NAME_MAX 1024

typedef struct rd {
    const char *p;
    size_t len;
    size_t off;
} rd;

typedef struct name_ix {
    const char *name;
    uint32_t index;
} name_ix;

static void ws(rd *r)
{
    while (r->off < r->len && (r->p[r->off] == ' ' || r->p[r->off] == '\t' ||
                               r->p[r->off] == '\n' || r->p[r->off] == '\r'))
        r->off++;
}

static int peek(rd *r)
{
    ws(r);
    return r->off < r->len ? (unsigned char)r->p[r->off] : -1;
}

/* Reads a (validated) JSON string at r into out[cap] unescaped.  Always consumes the whole
 * string, so the reader stays in step even when the text does not fit.  Returns its length, or -1
 * when it did not fit (out then holds a truncated prefix). */
static int read_string(rd *r, char *out, size_t cap)
{
    size_t o = 0;
    int overflow = 0;
    r->off++; /* '"' */
    while (r->off < r->len && r->p[r->off] != '"') {
        char c = r->p[r->off++];
        unsigned cp = (unsigned char)c;
        if (c == '\\') {
            char e = r->p[r->off++];
            switch (e) {
            case 'b':
                cp = '\b';
                break;
            case 'f':
                cp = '\f';
                break;
            case 'n':
                cp = '\n';
                break;
            case 'r':
                cp = '\r';
                break;
            case 't':
                cp = '\t';
                break;
            case 'u':
                cp = 0;
                for (int i = 0; i < 4; i++)
                    cp = cp << 4 | (unsigned)hex_digit(r->p[r->off++]);
                if (cp >= 0xD800 && cp <= 0xDBFF) { /* validated: a low surrogate follows */
                    unsigned lo = 0;
                    r->off += 2;
                    for (int i = 0; i < 4; i++)
                        lo = lo << 4 | (unsigned)hex_digit(r->p[r->off++]);
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                break;
            default:
                cp = (unsigned char)e;
                break;
            }
            /* UTF-8 encode cp */
            unsigned char buf[4];
            int n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            if (n == 1)
                buf[0] = (unsigned char)cp;
            else if (n == 2) {
                buf[0] = (unsigned char)(0xC0 | cp >> 6);
                buf[1] = (unsigned char)(0x80 | (cp & 0x3F));
            } else if (n == 3) {
                buf[0] = (unsigned char)(0xE0 | cp >> 12);
                buf[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
                buf[2] = (unsigned char)(0x80 | (cp & 0x3F));
            } else {
                buf[0] = (unsigned char)(0xF0 | cp >> 18);
                buf[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
                buf[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
                buf[3] = (unsigned char)(0x80 | (cp & 0x3F));
            }
            if (o + (size_t)n >= cap) {
                overflow = 1;
                continue;
            }
            memcpy(out + o, buf, (size_t)n);
            o += (size_t)n;
            continue;
        }
        if (o + 1 >= cap) {
            overflow = 1;
            continue;
        }
        out[o++] = c;
    }
    r->off++;
    out[o] = '\0';
    return overflow ? -1 : (int)o;
}

/* Reads a number or null as double (NaN for null).  Returns 0, or -1 for another kind of value.
 * strtod is correctly rounded: the double is exactly the JSON number's nearest, as Python's float()
 * and numpy give LightGBM; float32 models narrow it afterwards (put_cell).  numtext_strtod is
 * strtod bit for bit (common/numtext.h), ~10x faster on the short numbers rows hold. */
static int read_cell(rd *r, double *out)
{
    int c = peek(r);
    if (c == 'n') {
        r->off += 4;
        *out = NAN;
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        char *end = NULL;
        /* Via double, like numpy's float32 conversion of a Python float. */
        double d = numtext_strtod(r->p + r->off, &end);
        r->off = (size_t)(end - r->p);
        *out = d;
        return 0;
    }
    return -1; /* the caller answers 400 at once; nothing after this is read */
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const name_ix *)a)->name, ((const name_ix *)b)->name);
}

static void fail(rows_result *res, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(rows_result *res, int status, const char *field, const char *fmt, ...)
{
    va_list ap;
    res->status = status;
    snprintf(res->field, sizeof res->field, "%s", field);
    va_start(ap, fmt);
    vsnprintf(res->err, sizeof res->err, fmt, ap);
    va_end(ap);
}

/* Stores cell i of the matrix: as float32 (via double, like numpy's float32 conversion of a
 * Python float) or, for LightGBM models, as the double itself. */
static void put_cell(rows_result *res, int f64, size_t i, double v)
{
    if (f64)
        res->rows64[i] = v;
    else
        res->rows[i] = (float)v;
}

/* Appends one row to the matrix (mat, bounded by max_rows rows; res->rows or res->rows64 follows
 * it).  Returns 0 or -1 (413 past max_rows, 500 on OOM, the matrix pointer then NULL). */
static int grow(rows_result *res, dynbuf *mat, uint32_t nfeat, uint32_t max_rows, int f64)
{
    if (res->nrows >= max_rows) {
        fail(res, 413, "rows", "more than %u rows in one request", max_rows);
        return -1;
    }
    if (!dynbuf_extend(mat, (size_t)nfeat * (f64 ? sizeof(double) : sizeof(float)))) {
        res->rows = NULL; /* freed by the buffer */
        res->rows64 = NULL;
        fail(res, 500, "rows", "out of memory for %u rows", res->nrows + 1);
        return -1;
    }
    if (f64)
        res->rows64 = (double *)(void *)mat->p;
    else
        res->rows = (float *)(void *)mat->p;
    return 0;
}

/* The state of one parse: the input, the model's shape, the name index, the matrix. */
typedef struct parser {
    rd r;
    rows_result *res;
    uint32_t nfeat, max_rows, n_names;
    int f64;
    name_ix *ix;    /* sorted feature names (NULL when the model has none) */
    uint32_t *seen; /* seen[k] == row + 1: feature k already set in this row */
    dynbuf mat;     /* the matrix; res->rows (or rows64) points into it */
    char key[ROWS_NAME_MAX];
} parser;

/* Fails with 400 naming field ("rows[3]", "rows[3][2]", "rows[3].age"): the reason is
 * "<field><what>". */
static int bad_cell(parser *p, const char *field, const char *what)
{
    fail(p->res, 400, field, "%s%s", field, what);
    return -1;
}

/* Skips JSON whitespace from q (before e). */
static const char *skip_ws(const char *q, const char *e)
{
    while (q < e && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
        q++;
    return q;
}

/* An array row: every value in feature order.  Returns 0 or -1 (res filled).  The loop keeps
 * its position in a local pointer (250,000 cells in a 5000-row body: this is the parse's inner
 * loop); the text is validated, so a value is a number, null, or something else to refuse. */
static int parse_array_row(parser *p, size_t row, long ri)
{
    char field[64];
    uint32_t k = 0;
    const char *q = p->r.p + p->r.off + 1, *e = p->r.p + p->r.len; /* after '[' */
    for (;;) {
        q = skip_ws(q, e);
        if (q >= e || *q == ']')
            break;
        double v;
        int bad = 0;
        if (*q == 'n') {
            v = NAN;
            q += 4;
        } else if (*q == '-' || (*q >= '0' && *q <= '9')) {
            char *end;
            v = numtext_strtod(q, &end); /* strtod bit for bit (see read_cell) */
            q = end;
        } else {
            v = 0;
            bad = 1;
        }
        if (k < p->nfeat)
            put_cell(p->res, p->f64, row + k, v);
        if (bad) {
            p->r.off = (size_t)(q - p->r.p);
            snprintf(field, sizeof field, "rows[%ld][%u]", ri, k);
            return bad_cell(p, field, " must be a number or null");
        }
        k++;
        q = skip_ws(q, e);
        if (q < e && *q == ',')
            q++;
    }
    p->r.off = (size_t)(q - p->r.p) + 1;
    if (k != p->nfeat) {
        snprintf(field, sizeof field, "rows[%ld]", ri);
        fail(p->res, 400, field, "%s has %u values; the model has %u features", field, k, p->nfeat);
        return -1;
    }
    return 0;
}

/* An object row: feature name -> value, absent = missing.  Returns 0 or -1 (res filled). */
static int parse_object_row(parser *p, size_t row, long ri)
{
    rows_result *res = p->res;
    if (!p->n_names) {
        char field[64];
        snprintf(field, sizeof field, "rows[%ld]", ri);
        return bad_cell(p, field,
                        " is an object, but the model has no feature names; send an array in "
                        "feature order");
    }
    for (uint32_t k = 0; k < p->nfeat; k++)
        put_cell(res, p->f64, row + k, NAN);
    p->r.off++; /* '{' */
    while (peek(&p->r) == '"') {
        int kl = read_string(&p->r, p->key, sizeof p->key);
        name_ix want = {p->key, 0}, *hit = NULL;
        if (kl >= 0)
            hit = bsearch(&want, p->ix, p->n_names, sizeof *p->ix, cmp_name);
        peek(&p->r);
        p->r.off++; /* ':' */
        double v;
        int bad = read_cell(&p->r, &v);
        char field[192];
        snprintf(field, sizeof field, "rows[%ld].%.150s", ri, kl >= 0 ? p->key : "?");
        if (!hit || bad || hit->index >= p->nfeat)
            return bad_cell(p, field,
                            !hit ? ": unknown feature name" : ": must be a number or null");
        if (p->seen[hit->index] == (uint32_t)ri + 1)
            return bad_cell(p, field, ": duplicate key");
        p->seen[hit->index] = (uint32_t)ri + 1;
        put_cell(res, p->f64, row + hit->index, v);
        if (peek(&p->r) == ',')
            p->r.off++;
    }
    p->r.off++;
    return 0;
}

/* The "rows" member: an array of array or object rows.  Returns 0 or -1 (res filled). */
static int parse_rows(parser *p)
{
    rows_result *res = p->res;
    if (peek(&p->r) != '[') {
        fail(res, 400, "rows", "'rows' must be an array of rows");
        return -1;
    }
    p->r.off++;
    while (peek(&p->r) != ']') {
        if (grow(res, &p->mat, p->nfeat, p->max_rows, p->f64))
            return -1;
        size_t row = (size_t)res->nrows * p->nfeat;
        long ri = (long)res->nrows;
        int c = peek(&p->r), rc;
        if (c == '[') {
            rc = parse_array_row(p, row, ri);
        } else if (c == '{') {
            rc = parse_object_row(p, row, ri);
        } else {
            char field[64];
            snprintf(field, sizeof field, "rows[%ld]", ri);
            fail(res, 400, field,
                 "rows[%ld] must be an array (feature order) or an object (by name)", ri);
            rc = -1;
        }
        if (rc)
            return -1;
        res->nrows++;
        if (peek(&p->r) == ',')
            p->r.off++;
    }
    p->r.off++;
    return 0;
}

/* The body's members: "rows" (required, once) and "output_margin" (optional, once).  Returns 0 or
 * -1 (res filled). */
static int parse_members(parser *p)
{
    rows_result *res = p->res;
    int seen_rows = 0, seen_margin = 0;
    p->r.off++; /* '{' */
    while (peek(&p->r) == '"') {
        if (read_string(&p->r, p->key, sizeof p->key) < 0)
            p->key[0] = '\0';
        peek(&p->r);
        p->r.off++; /* ':' */
        if (strcmp(p->key, "output_margin") == 0 && !seen_margin) {
            seen_margin = 1;
            int c = peek(&p->r);
            if (c != 't' && c != 'f') {
                fail(res, 400, "output_margin", "'output_margin' must be true or false");
                return -1;
            }
            res->output_margin = c == 't';
            p->r.off += c == 't' ? 4 : 5;
        } else if (strcmp(p->key, "rows") == 0 && !seen_rows) {
            seen_rows = 1;
            if (parse_rows(p))
                return -1;
        } else {
            char field[101];
            snprintf(field, sizeof field, "%.100s", p->key);
            fail(res, 400, field, "%s field '%s'",
                 seen_rows || seen_margin ? "duplicate or unknown" : "unknown", field);
            return -1;
        }
        if (peek(&p->r) == ',')
            p->r.off++;
    }
    if (!seen_rows) {
        fail(res, 400, "rows", "'rows' is required");
        return -1;
    }
    if (res->nrows == 0) {
        fail(res, 400, "rows", "'rows' must hold at least one row");
        return -1;
    }
    return 0;
}

/* Sorts the model's feature names for look-up by name.  Returns 0 or -1 (500, res filled). */
static int index_names(parser *p, const char *const *names)
{
    if (!p->n_names)
        return 0;
    p->ix = malloc(p->n_names * sizeof *p->ix);
    p->seen = calloc(p->nfeat, sizeof *p->seen);
    if (!p->ix || !p->seen) {
        fail(p->res, 500, "", "out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < p->n_names; i++)
        p->ix[i] = (name_ix){names[i], i};
    qsort(p->ix, p->n_names, sizeof *p->ix, cmp_name);
    return 0;
}

/* ---- the fast path ------------------------------------------------------------------------------
 * One pass over the common body, {"rows": [[number|null, ...], ...], "output_margin": bool} with
 * any JSON whitespace: it checks the grammar of everything it reads as it reads it (numbers by
 * numtext_json, whose grammar is RFC 8259's), so a body it accepts is one json_validate accepts
 * (ASCII only, depth 3, no duplicate member), and its matrix is the general reader's (the same
 * strtod double per cell).  Anything else (object rows, escapes in keys, unknown or repeated
 * members, a wrong row length, too many rows, any syntax error) makes it give up without an
 * answer, and the general path (json_validate, then the reader above) parses the body from the
 * start and answers, errors included. */

/* After a value at *qp: skips whitespace and a ',' (returns 1: a value follows, *qp at it) or
 * stops on close (returns 0, *qp at close); anything else is -1 (give up). */
static int fast_next(const char **qp, const char *e, char close)
{
    const char *q = skip_ws(*qp, e);
    if (q < e && *q == ',') {
        *qp = skip_ws(q + 1, e);
        return 1;
    }
    *qp = q;
    return q < e && *q == close ? 0 : -1;
}

/* The rows array at *qp: rows of exactly nfeat numbers or nulls.  Returns 0 (*qp past it), or -1
 * to give up. */
static int fast_rows(const char **qp, const char *e, dynbuf *mat, uint32_t nfeat, uint32_t max_rows,
                     int f64, rows_result *res)
{
    const char *q = *qp;
    int more;
    if (q >= e || *q != '[')
        return -1;
    q = skip_ws(q + 1, e);
    do {
        if (q >= e || *q != '[' || grow(res, mat, nfeat, max_rows, f64))
            return -1;
        size_t row = (size_t)res->nrows * nfeat;
        uint32_t k = 0;
        q = skip_ws(q + 1, e);
        do {
            double v;
            if (q < e && *q == 'n') {
                if (e - q < 4 || memcmp(q, "null", 4) != 0)
                    return -1;
                v = NAN;
                q += 4;
            } else if ((q = numtext_json(q, e, &v)) == NULL) {
                return -1;
            }
            if (k >= nfeat)
                return -1;
            put_cell(res, f64, row + k++, v);
        } while ((more = fast_next(&q, e, ']')) == 1);
        if (more < 0 || k != nfeat)
            return -1;
        res->nrows++;
        q++;
    } while ((more = fast_next(&q, e, ']')) == 1);
    if (more < 0)
        return -1;
    *qp = q + 1;
    return 0;
}

/* Returns 0 with res filled (the matrix in res->rows or rows64), or 1 (res zeroed, nothing to
 * free) when the general path must answer. */
static int parse_fast(const char *body, size_t len, uint32_t nfeat, uint32_t max_rows, int f64,
                      rows_result *res)
{
    const char *q = skip_ws(body, body + len), *e = body + len;
    int seen_rows = 0, seen_margin = 0;
    dynbuf mat;
    dynbuf_init(&mat, (size_t)max_rows * nfeat * (f64 ? sizeof(double) : sizeof(float)));
    memset(res, 0, sizeof *res);
    if (q >= e || *q != '{')
        goto other;
    q = skip_ws(q + 1, e);
    for (;;) {
        if (!seen_rows && e - q >= 6 && memcmp(q, "\"rows\"", 6) == 0) {
            seen_rows = 1;
            q = skip_ws(q + 6, e);
            if (q >= e || *q != ':')
                goto other;
            q = skip_ws(q + 1, e);
            if (fast_rows(&q, e, &mat, nfeat, max_rows, f64, res))
                goto other;
        } else if (!seen_margin && e - q >= 15 && memcmp(q, "\"output_margin\"", 15) == 0) {
            seen_margin = 1;
            q = skip_ws(q + 15, e);
            if (q >= e || *q != ':')
                goto other;
            q = skip_ws(q + 1, e);
            if (e - q >= 4 && memcmp(q, "true", 4) == 0) {
                res->output_margin = 1;
                q += 4;
            } else if (e - q >= 5 && memcmp(q, "false", 5) == 0) {
                q += 5;
            } else {
                goto other;
            }
        } else {
            goto other;
        }
        int more = fast_next(&q, e, '}');
        if (more < 0)
            goto other;
        if (more == 0)
            break;
    }
    if (!seen_rows || skip_ws(q + 1, e) != e)
        goto other;
    return 0; /* res->rows (or rows64) holds the buffer's memory now, as in the general path */
other:
    dynbuf_free(&mat);
    memset(res, 0, sizeof *res);
    return 1;
}

/* The general path: json_validate, then the reader above; every error is answered here. */
static int parse_general(const char *body, size_t len, const char *const *names, uint32_t n_names,
                         uint32_t nfeat, uint32_t max_rows, int f64, rows_result *res)
{
    memset(res, 0, sizeof *res);
    parser p = {.r = {body, len, 0},
                .res = res,
                .nfeat = nfeat,
                .max_rows = max_rows,
                .n_names = n_names,
                .f64 = f64};
    dynbuf_init(&p.mat, (size_t)max_rows * nfeat * (f64 ? sizeof(double) : sizeof(float)));
    int rc = -1;
    if (json_validate(body, len, res->err, sizeof res->err) != 0) {
        res->status = 400;
        res->malformed = 1;
        return -1;
    }
    if (peek(&p.r) != '{') {
        fail(res, 400, "", "request body must be a JSON object");
        return -1;
    }
    if (index_names(&p, names) == 0 && parse_members(&p) == 0)
        rc = 0;
    free(p.ix);
    free(p.seen);
    if (rc != 0) {
        free(res->rows);
        free(res->rows64);
        res->rows = NULL;
        res->rows64 = NULL;
    }
    return rc;
}

static int parse(const char *body, size_t len, const char *const *names, uint32_t n_names,
                 uint32_t nfeat, uint32_t max_rows, int f64, rows_result *res)
{
    if (parse_fast(body, len, nfeat, max_rows, f64, res) == 0)
        return 0;
    return parse_general(body, len, names, n_names, nfeat, max_rows, f64, res);
}

int rows_parse(const char *body, size_t len, const char *const *names, uint32_t n_names,
               uint32_t nfeat, uint32_t max_rows, rows_result *res)
{
    return parse(body, len, names, n_names, nfeat, max_rows, 0, res);
}

int rows_parse_f64(const char *body, size_t len, const char *const *names, uint32_t n_names,
                   uint32_t nfeat, uint32_t max_rows, rows_result *res)
{
    return parse(body, len, names, n_names, nfeat, max_rows, 1, res);
}

int rows_parse_general(const char *body, size_t len, const char *const *names, uint32_t n_names,
                       uint32_t nfeat, uint32_t max_rows, int f64, rows_result *res)
{
    return parse_general(body, len, names, n_names, nfeat, max_rows, f64, res);
}

void rows_result_free(rows_result *res)
{
    free(res->rows);
    free(res->rows64);
    res->rows = NULL;
    res->rows64 = NULL;
}
