/* mdoc.c - the format-neutral index and its accessors (see mdoc.h); the front ends that build it
 * are mdoc_json.c and mdoc_ubjson.c.
 *
 * Costs: mdoc_get O(members); string decoding O(length); array reads O(elements), re-reading the
 * source bytes (JSON: re-lexing tokens the parser already proved well-formed; UBJSON: marker and
 * big-endian payload pairs, or a typed array's raw payload). */
#include "mdoc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "mdoc_impl.h"

/* The index is the compile's largest allocation after the upload itself: keep the node small. */
_Static_assert(sizeof(mdoc_node) == 16, "mdoc_node is 16 bytes");

int mdoc_fail(mdoc_parser *p, int status, const char *what)
{
    if (p->status == MDOC_OK) {
        p->status = status;
        if (p->err != NULL && p->errlen > 0)
            snprintf(p->err, p->errlen, "%s at byte %zu", what, p->pos);
    }
    return -1;
}

uint32_t mdoc_new_node(mdoc_parser *p, int type)
{
    mdoc *d = p->d;
    if (d->count >= d->max) {
        mdoc_fail(p, MDOC_INVALID, "too many values for the document size");
        return MDOC_NONE;
    }
    if (d->count == d->cap) { /* common/dynbuf.h's growth rule, bounded by d->max */
        size_t cap = d->cap;
        if (dynbuf_grow_array((void **)&d->n, &cap, (size_t)d->count + 1, sizeof(*d->n), d->max) !=
            DYNBUF_OK) {
            mdoc_fail(p, MDOC_NOMEM, "out of memory");
            return MDOC_NONE;
        }
        d->cap = (uint32_t)cap;
    }
    uint32_t i = d->count++;
    memset(&d->n[i], 0, sizeof(d->n[i]));
    d->n[i].type = (uint8_t)type;
    d->n[i].off = p->pos;
    return i;
}

int mdoc_parse(mdoc *d, int format, const char *src, size_t len, char *err, size_t errlen)
{
    memset(d, 0, sizeof(*d));
    d->s = src;
    d->len = len;
    d->format = format;
    size_t max = len / 4 + 4096;
    d->max = max > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)max;
    mdoc_parser p = {d, 0, err, errlen, MDOC_OK};
    if (err != NULL && errlen > 0)
        err[0] = 0;
    int rc = len >= UINT32_MAX       ? mdoc_fail(&p, MDOC_INVALID, "document of 4 GiB or more")
             : format == MDOC_UBJSON ? mdoc_ubjson_parse(&p)
             : format == MDOC_JSON   ? mdoc_json_parse(&p)
                                     : mdoc_fail(&p, MDOC_INVALID, "unknown document format");
    if (rc == 0 && d->n[0].type != MDOC_OBJ) {
        p.pos = 0;
        rc = mdoc_fail(&p, MDOC_INVALID, "the document is not an object");
    }
    if (rc != 0) {
        mdoc_free(d);
        return p.status;
    }
    return MDOC_OK;
}

void mdoc_free(mdoc *d)
{
    free(d->n);
    memset(d, 0, sizeof(*d));
}

/* ---- navigation ---------------------------------------------------------------------------- */

int mdoc_type(const mdoc *d, uint32_t i)
{
    return i == MDOC_NONE || i >= d->count ? 0 : d->n[i].type;
}

uint32_t mdoc_count(const mdoc *d, uint32_t i)
{
    int t = mdoc_type(d, i);
    return t == MDOC_OBJ || t == MDOC_ARR ? d->n[i].count : 0; /* count shares len's word */
}

int mdoc_arr_nodes_only(const mdoc *d, uint32_t a)
{
    return mdoc_type(d, a) == MDOC_ARR && !(d->n[a].flags & MDOC_NF_SCALARS);
}

uint32_t mdoc_first(const mdoc *d, uint32_t a)
{
    (void)d;
    return a + 1;
}

uint32_t mdoc_next(const mdoc *d, uint32_t i)
{
    return d->n[i].end;
}

static int key_is(const mdoc *d, uint32_t k, const char *key, size_t kl)
{
    const mdoc_node *n = &d->n[k];
    if (!(n->flags & MDOC_NF_ESC))
        return n->len == kl && memcmp(d->s + n->off, key, kl) == 0;
    char buf[128];
    return mdoc_str(d, k, buf, sizeof(buf)) == 0 && strcmp(buf, key) == 0;
}

uint32_t mdoc_get(const mdoc *d, uint32_t obj, const char *key)
{
    if (mdoc_type(d, obj) != MDOC_OBJ)
        return MDOC_NONE;
    size_t kl = strlen(key);
    uint32_t i = obj + 1;
    for (uint32_t m = 0; m < d->n[obj].count; m++) {
        uint32_t v = i + 1;
        if (key_is(d, i, key, kl))
            return v;
        i = d->n[v].end;
    }
    return MDOC_NONE;
}

uint32_t mdoc_get_type(const mdoc *d, uint32_t obj, const char *key, int type)
{
    uint32_t v = mdoc_get(d, obj, key);
    return mdoc_type(d, v) == type ? v : MDOC_NONE;
}

/* ---- strings ------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 (overlong forms, surrogates and code points
 * above U+10FFFF are invalid). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t l;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        l = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        l = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        l = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < l)
        return 0;
    for (size_t k = 1; k < l; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    if ((l == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (l == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return l;
}

static int utf8_valid(const char *s, size_t n)
{
    size_t k = 0;
    while (k < n) {
        size_t l = utf8_seq((const unsigned char *)s + k, n - k);
        if (l == 0 || s[k] == 0)
            return 0;
        k += l;
    }
    return 1;
}

static unsigned hex4(const char *s)
{
    char b[5] = {s[0], s[1], s[2], s[3], 0};
    return (unsigned)strtoul(b, NULL, 16);
}

/* Decodes JSON escapes of s[0..n) into out[cap].  Returns the decoded length or -1. */
static long json_unescape(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned cp = (unsigned char)s[k];
        if (cp == '\\') {
            char e = s[++k]; /* the lexer proved an escape char follows */
            if (e == 'u') {
                cp = hex4(s + k + 1);
                k += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF && k + 6 < n && s[k + 1] == '\\' &&
                    s[k + 2] == 'u') {
                    unsigned lo = hex4(s + k + 3);
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
    return (long)o;
}

size_t mdoc_str_cap(const mdoc *d, uint32_t i)
{
    return mdoc_type(d, i) == MDOC_STR ? d->n[i].len + 1 : 1;
}

int mdoc_str(const mdoc *d, uint32_t i, char *out, size_t cap)
{
    if (mdoc_type(d, i) != MDOC_STR || cap == 0)
        return -1;
    const mdoc_node *n = &d->n[i];
    size_t len;
    if (n->flags & MDOC_NF_ESC) {
        long l = json_unescape(d->s + n->off, n->len, out, cap);
        if (l < 0)
            return -1;
        len = (size_t)l;
    } else {
        if (n->len >= cap)
            return -1;
        memcpy(out, d->s + n->off, n->len);
        len = n->len;
    }
    out[len] = 0;
    return utf8_valid(out, len) ? 0 : -1;
}

/* ---- scalars ------------------------------------------------------------------------------- */

int mdoc_text_float(const char *s, size_t n, float *out)
{
    int kind;
    size_t e = mdoc_json_lex(s, n, 0, &kind);
    if (kind == 0 || e != n)
        return -1;
    switch (kind) {
    case MDOC_K_NAN:
        *out = NAN;
        return 0;
    case MDOC_K_INF:
        *out = INFINITY;
        return 0;
    case MDOC_K_NINF:
        *out = -INFINITY;
        return 0;
    case MDOC_K_INT:
    case MDOC_K_REAL: {
        char buf[MDOC_MAX_NUMBER_CHARS + 1];
        if (n > MDOC_MAX_NUMBER_CHARS)
            return -1;
        memcpy(buf, s, n);
        buf[n] = 0;
        char *end;
        float f = strtof(buf, &end); /* straight to float: never double rounding */
        if (end != buf + n || isinf(f))
            return -1;
        *out = f;
        return 0;
    }
    default:
        return -1;
    }
}

int mdoc_text_int(const char *s, size_t n, int64_t lo, int64_t hi, int64_t *out)
{
    int kind;
    size_t e = mdoc_json_lex(s, n, 0, &kind);
    if (kind != MDOC_K_INT || e != n || n > 20)
        return -1;
    char buf[24];
    memcpy(buf, s, n);
    buf[n] = 0;
    errno = 0;
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (errno != 0 || end != buf + n || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* One scalar as found in the source: a JSON token, or a UBJSON marker and its payload. */
typedef struct sref {
    const char *p; /* token / payload */
    size_t len;    /* JSON token length */
    int kind;      /* JSON: enum mdoc_jkind; UBJSON: the marker */
} sref;

static uint64_t be(const char *p, int n)
{
    uint64_t u = 0;
    for (int k = 0; k < n; k++)
        u = u << 8 | (unsigned char)p[k];
    return u;
}

/* UBJSON integer payload of marker m; returns 0 or -1 (not an integer marker). */
static int ubj_int(const char *p, int m, int64_t *v)
{
    switch (m) {
    case 'i':
        *v = (int8_t)be(p, 1);
        return 0;
    case 'U':
        *v = (uint8_t)be(p, 1);
        return 0;
    case 'I':
        *v = (int16_t)be(p, 2);
        return 0;
    case 'l':
        *v = (int32_t)be(p, 4);
        return 0;
    case 'L':
        *v = (int64_t)be(p, 8);
        return 0;
    default:
        return -1;
    }
}

static int sref_int(const mdoc *d, const sref *r, int64_t lo, int64_t hi, int allow_bool,
                    int64_t *out)
{
    if (d->format == MDOC_JSON) {
        if (allow_bool && (r->kind == MDOC_K_TRUE || r->kind == MDOC_K_FALSE)) {
            *out = r->kind == MDOC_K_TRUE;
            return 0;
        }
        return r->kind == MDOC_K_INT ? mdoc_text_int(r->p, r->len, lo, hi, out) : -1;
    }
    int64_t v;
    if (allow_bool && (r->kind == 'T' || r->kind == 'F')) {
        *out = r->kind == 'T';
        return 0;
    }
    if (ubj_int(r->p, r->kind, &v) != 0 || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int sref_float(const mdoc *d, const sref *r, float *out)
{
    if (d->format == MDOC_JSON)
        return r->kind <= MDOC_K_NINF ? mdoc_text_float(r->p, r->len, out) : -1;
    int64_t v;
    if (r->kind == 'd') {
        uint32_t u = (uint32_t)be(r->p, 4);
        memcpy(out, &u, 4);
        return 0;
    }
    if (r->kind == 'D') {
        uint64_t u = be(r->p, 8);
        double x;
        memcpy(&x, &u, 8);
        float f = (float)x;
        if (isfinite(x) && isinf(f))
            return -1;
        *out = f;
        return 0;
    }
    if (ubj_int(r->p, r->kind, &v) != 0)
        return -1;
    *out = (float)v;
    return 0;
}

int mdoc_int(const mdoc *d, uint32_t i, int64_t lo, int64_t hi, int64_t *out)
{
    if (mdoc_type(d, i) != MDOC_SCALAR)
        return -1;
    sref r = {d->s + d->n[i].off, d->n[i].len, d->n[i].kind};
    return sref_int(d, &r, lo, hi, 0, out);
}

/* Iterator over the scalars of an array. */
typedef struct aiter {
    const mdoc *d;
    size_t pos;
    int typed; /* UBJSON typed array: kind = element marker */
    int kind, size;
} aiter;

/* Starts iterating array a, which must hold only scalars and exactly n of them. */
static int aiter_init(aiter *it, const mdoc *d, uint32_t a, uint32_t n)
{
    if (mdoc_type(d, a) != MDOC_ARR || (d->n[a].flags & MDOC_NF_NODES) || d->n[a].count != n)
        return -1;
    it->d = d;
    it->typed = (d->n[a].flags & MDOC_NF_TYPED) != 0;
    it->kind = d->n[a].kind;
    it->size = it->typed ? mdoc_ubj_scalar_size((char)it->kind) : 0;
    it->pos = d->format == MDOC_JSON ? d->n[a].off + 1 : d->n[a].off;
    return 0;
}

/* Next scalar (the parser proved the grammar and the sizes, so this only re-finds them). */
static void aiter_next(aiter *it, sref *r)
{
    const char *s = it->d->s;
    size_t n = it->d->len;
    if (it->d->format == MDOC_JSON) {
        while (it->pos < n && (s[it->pos] == ' ' || s[it->pos] == '\t' || s[it->pos] == '\n' ||
                               s[it->pos] == '\r' || s[it->pos] == ','))
            it->pos++;
        size_t e = mdoc_json_lex(s, n, it->pos, &r->kind);
        r->p = s + it->pos;
        r->len = e - it->pos;
        it->pos = e;
    } else if (it->typed) {
        r->kind = it->kind;
        r->p = s + it->pos;
        r->len = (size_t)it->size;
        it->pos += (size_t)it->size;
    } else {
        r->kind = s[it->pos];
        r->p = s + it->pos + 1;
        r->len = (size_t)mdoc_ubj_scalar_size(s[it->pos]);
        it->pos += 1 + r->len;
    }
}

int mdoc_arr_ints(const mdoc *d, uint32_t a, uint32_t n, int64_t lo, int64_t hi, int64_t *out,
                  int allow_bool)
{
    aiter it;
    if (aiter_init(&it, d, a, n) != 0)
        return -1;
    for (uint32_t k = 0; k < n; k++) {
        sref r;
        aiter_next(&it, &r);
        if (sref_int(d, &r, lo, hi, allow_bool, &out[k]) != 0)
            return -1;
    }
    return 0;
}

int mdoc_arr_floats(const mdoc *d, uint32_t a, uint32_t n, float *out)
{
    aiter it;
    if (aiter_init(&it, d, a, n) != 0)
        return -1;
    for (uint32_t k = 0; k < n; k++) {
        sref r;
        aiter_next(&it, &r);
        if (sref_float(d, &r, &out[k]) != 0)
            return -1;
    }
    return 0;
}
