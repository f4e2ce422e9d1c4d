/* rows.c - the body of POST /api/v1/models/{id}/predict straight into a float32 matrix.
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

/* Reads a number or null as float (NaN for null).  Returns 0, or -1 for another kind of value. */
static int read_cell(rd *r, float *out)
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
        double d = strtod(r->p + r->off, &end);
        r->off = (size_t)(end - r->p);
        *out = (float)d;
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

/* Appends one row to the matrix (mat, bounded by max_rows rows; res->rows follows it).  Returns
 * 0 or -1 (413 past max_rows, 500 on OOM, res->rows then NULL). */
static int grow(rows_result *res, dynbuf *mat, uint32_t nfeat, uint32_t max_rows)
{
    if (res->nrows >= max_rows) {
        fail(res, 413, "rows", "more than %u rows in one request", max_rows);
        return -1;
    }
    if (!dynbuf_extend(mat, (size_t)nfeat * sizeof(float))) {
        res->rows = NULL; /* freed by the buffer */
        fail(res, 500, "rows", "out of memory for %u rows", res->nrows + 1);
        return -1;
    }
    res->rows = (float *)(void *)mat->p;
    return 0;
}

int rows_parse(const char *body, size_t len, const char *const *names, uint32_t n_names,
               uint32_t nfeat, uint32_t max_rows, rows_result *res)
{
    memset(res, 0, sizeof *res);
    char key[ROWS_NAME_MAX], field[64];
    name_ix *ix = NULL;
    uint32_t *seen = NULL; /* seen[k] == row + 1: feature k already set in this row */
    dynbuf mat;            /* the matrix; res->rows points into it */
    dynbuf_init(&mat, (size_t)max_rows * nfeat * sizeof(float));
    int seen_rows = 0, seen_margin = 0;
    if (json_validate(body, len, res->err, sizeof res->err) != 0) {
        res->status = 400;
        res->malformed = 1;
        return -1;
    }
    rd r = {body, len, 0};
    if (peek(&r) != '{') {
        fail(res, 400, "", "request body must be a JSON object");
        return -1;
    }
    if (n_names) {
        ix = malloc(n_names * sizeof *ix);
        seen = calloc(nfeat, sizeof *seen);
        if (!ix || !seen) {
            fail(res, 500, "", "out of memory");
            return -1;
        }
        for (uint32_t i = 0; i < n_names; i++)
            ix[i] = (name_ix){names[i], i};
        qsort(ix, n_names, sizeof *ix, cmp_name);
    }
    r.off++;
    while (peek(&r) == '"') {
        if (read_string(&r, key, sizeof key) < 0)
            key[0] = '\0';
        peek(&r);
        r.off++; /* ':' */
        if (strcmp(key, "output_margin") == 0 && !seen_margin) {
            seen_margin = 1;
            int c = peek(&r);
            if (c == 't' || c == 'f') {
                res->output_margin = c == 't';
                r.off += c == 't' ? 4 : 5;
            } else {
                fail(res, 400, "output_margin", "'output_margin' must be true or false");
                goto fail;
            }
        } else if (strcmp(key, "rows") == 0 && !seen_rows) {
            seen_rows = 1;
            if (peek(&r) != '[') {
                fail(res, 400, "rows", "'rows' must be an array of rows");
                goto fail;
            }
            r.off++;
            while (peek(&r) != ']') {
                if (grow(res, &mat, nfeat, max_rows))
                    goto fail;
                float *row = res->rows + (size_t)res->nrows * nfeat;
                long ri = (long)res->nrows;
                int c = peek(&r);
                if (c == '[') {
                    r.off++;
                    uint32_t k = 0;
                    while (peek(&r) != ']') {
                        float v;
                        int bad = read_cell(&r, &v);
                        if (k < nfeat)
                            row[k] = v;
                        if (bad) {
                            snprintf(field, sizeof field, "rows[%ld][%u]", ri, k);
                            res->status = 400;
                            snprintf(res->field, sizeof res->field, "%s", field);
                            snprintf(res->err, sizeof res->err, "%s must be a number or null",
                                     field);
                            goto fail;
                        }
                        k++;
                        if (peek(&r) == ',')
                            r.off++;
                    }
                    r.off++;
                    if (k != nfeat) {
                        snprintf(field, sizeof field, "rows[%ld]", ri);
                        res->status = 400;
                        snprintf(res->field, sizeof res->field, "%s", field);
                        snprintf(res->err, sizeof res->err,
                                 "%s has %u values; the model has %u features", field, k, nfeat);
                        goto fail;
                    }
                } else if (c == '{') {
                    if (!n_names) {
                        snprintf(res->field, sizeof res->field, "rows[%ld]", ri);
                        res->status = 400;
                        snprintf(res->err, sizeof res->err,
                                 "rows[%ld] is an object, but the model has no feature names; "
                                 "send an array in feature order",
                                 ri);
                        goto fail;
                    }
                    for (uint32_t k = 0; k < nfeat; k++)
                        row[k] = NAN;
                    r.off++;
                    while (peek(&r) == '"') {
                        int kl = read_string(&r, key, sizeof key);
                        name_ix want = {key, 0}, *hit = NULL;
                        if (kl >= 0)
                            hit = bsearch(&want, ix, n_names, sizeof *ix, cmp_name);
                        peek(&r);
                        r.off++; /* ':' */
                        float v;
                        int bad = read_cell(&r, &v);
                        if (!hit || bad || hit->index >= nfeat) {
                            snprintf(res->field, sizeof res->field, "rows[%ld].%.150s", ri,
                                     kl >= 0 ? key : "?");
                            res->status = 400;
                            snprintf(res->err, sizeof res->err, "%s: %s", res->field,
                                     !hit ? "unknown feature name" : "must be a number or null");
                            goto fail;
                        }
                        if (seen[hit->index] == (uint32_t)ri + 1) {
                            snprintf(res->field, sizeof res->field, "rows[%ld].%.150s", ri, key);
                            res->status = 400;
                            snprintf(res->err, sizeof res->err, "%s: duplicate key", res->field);
                            goto fail;
                        }
                        seen[hit->index] = (uint32_t)ri + 1;
                        row[hit->index] = v;
                        if (peek(&r) == ',')
                            r.off++;
                    }
                    r.off++;
                } else {
                    snprintf(res->field, sizeof res->field, "rows[%ld]", ri);
                    res->status = 400;
                    snprintf(res->err, sizeof res->err,
                             "rows[%ld] must be an array (feature order) or an object (by name)",
                             ri);
                    goto fail;
                }
                res->nrows++;
                if (peek(&r) == ',')
                    r.off++;
            }
            r.off++;
        } else {
            res->status = 400;
            snprintf(res->field, sizeof res->field, "%.100s", key);
            snprintf(res->err, sizeof res->err, "%s field '%.100s'",
                     seen_rows || seen_margin ? "duplicate or unknown" : "unknown", key);
            goto fail;
        }
        if (peek(&r) == ',')
            r.off++;
    }
    if (!seen_rows) {
        res->status = 400;
        snprintf(res->field, sizeof res->field, "rows");
        snprintf(res->err, sizeof res->err, "'rows' is required");
        goto fail;
    }
    if (res->nrows == 0) {
        res->status = 400;
        snprintf(res->field, sizeof res->field, "rows");
        snprintf(res->err, sizeof res->err, "'rows' must hold at least one row");
        goto fail;
    }
    free(ix);
    free(seen);
    return 0;
fail:
    free(ix);
    free(seen);
    free(res->rows);
    res->rows = NULL;
    return -1;
}

void rows_result_free(rows_result *res)
{
    free(res->rows);
    res->rows = NULL;
}
