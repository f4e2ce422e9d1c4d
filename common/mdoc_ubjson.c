/* mdoc_ubjson.c - the UBJSON front end of mdoc (see mdoc.h), for xgboost's ".ubj" model files.
 *
 * Grammar accepted (UBJSON draft 12 as xgboost 2.x/3.x's UBJWriter/UBJReader use it; all numbers
 * big-endian):
 *   value   := '{' object | '[' array | 'S' len bytes | 'C' byte
 *            | 'i' i8 | 'U' u8 | 'I' i16 | 'l' i32 | 'L' i64 | 'd' f32 | 'D' f64 | 'T' | 'F' | 'Z'
 *   len     := one of the integer markers and its payload, >= 0
 *   object  := ( key value )* '}'  |  '#' len ( key value ){len}        key := len bytes
 *   array   := value* ']'  |  '#' len value{len}  |  '$' t '#' len payload{len * size(t)}
 *              with t one of i U I l L d D (typed arrays: raw elements, no markers, no ']')
 * Refused: 'N' no-op, 'H' high-precision numbers, typed objects and typed arrays of anything else
 * (xgboost writes none of them), a negative length, a length or count larger than the bytes left
 * (checked before any loop or allocation: no count is trusted), more than 2^32-1 elements,
 * nesting deeper than MDOC_MAX_DEPTH, trailing bytes.
 *
 * Index layout: a string points at its bytes; a member-level scalar at its payload (kind = its
 * marker); a typed array at its payload (kind = element marker, flag MDOC_NF_TYPED); a generic
 * array at its first element, from where mdoc.c re-reads marker + payload pairs.
 * Costs: O(len) time, recursion depth at most MDOC_MAX_DEPTH. */
#include <string.h>

#include "mdoc_impl.h"

int mdoc_ubj_scalar_size(char m)
{
    switch (m) {
    case 'i':
    case 'U':
        return 1;
    case 'I':
        return 2;
    case 'l':
    case 'd':
        return 4;
    case 'L':
    case 'D':
        return 8;
    case 'T':
    case 'F':
    case 'Z':
        return 0;
    default:
        return -1;
    }
}

static int is_int_marker(char m)
{
    return m == 'i' || m == 'U' || m == 'I' || m == 'l' || m == 'L';
}

/* Reads a length (an integer marker and its payload) at p->pos: >= 0 and at most the bytes left
 * divided by unit (the least each counted item occupies).  Returns 0 or -1 (failure recorded). */
static int read_len(mdoc_parser *p, size_t unit, uint64_t *out)
{
    const mdoc *d = p->d;
    if (p->pos >= d->len)
        return mdoc_fail(p, MDOC_INVALID, "truncated UBJSON");
    char m = d->s[p->pos];
    if (!is_int_marker(m))
        return mdoc_fail(p, MDOC_INVALID, "expected an integer length");
    size_t sz = (size_t)mdoc_ubj_scalar_size(m);
    if (d->len - p->pos - 1 < sz)
        return mdoc_fail(p, MDOC_INVALID, "truncated UBJSON");
    const unsigned char *b = (const unsigned char *)d->s + p->pos + 1;
    uint64_t u = 0;
    for (size_t k = 0; k < sz; k++)
        u = u << 8 | b[k];
    int neg = (m == 'i' && (b[0] & 0x80)) || (m == 'I' && (b[0] & 0x80)) ||
              (m == 'l' && (b[0] & 0x80)) || (m == 'L' && (b[0] & 0x80));
    if (neg)
        return mdoc_fail(p, MDOC_INVALID, "negative length");
    p->pos += 1 + sz;
    if (u > (uint64_t)(d->len - p->pos) / unit)
        return mdoc_fail(p, MDOC_INVALID, "length larger than the rest of the document");
    *out = u;
    return 0;
}

static int parse_value(mdoc_parser *p, int depth, uint32_t *out);

/* A string payload of length n at p->pos (after its length) into a string node. */
static uint32_t string_node(mdoc_parser *p, uint64_t n)
{
    uint32_t i = mdoc_new_node(p, MDOC_STR);
    if (i == MDOC_NONE)
        return MDOC_NONE;
    p->d->n[i].len = (size_t)n;
    p->d->n[i].end = i + 1;
    p->pos += (size_t)n;
    return i;
}

static int parse_object(mdoc_parser *p, int depth, uint32_t *out)
{
    mdoc *d = p->d;
    uint32_t i = mdoc_new_node(p, MDOC_OBJ);
    if (i == MDOC_NONE)
        return -1;
    p->pos++; /* '{' */
    uint64_t want = UINT64_MAX;
    if (p->pos < d->len && d->s[p->pos] == '$')
        return mdoc_fail(p, MDOC_INVALID, "typed UBJSON objects are not accepted");
    if (p->pos < d->len && d->s[p->pos] == '#') {
        p->pos++;
        /* a member takes at least 3 bytes: key length marker, length, value marker */
        if (read_len(p, 3, &want) != 0)
            return -1;
        if (want > UINT32_MAX)
            return mdoc_fail(p, MDOC_INVALID, "container too large");
    }
    uint32_t count = 0;
    for (;;) {
        if (want != UINT64_MAX && count == want)
            break;
        if (p->pos >= d->len)
            return mdoc_fail(p, MDOC_INVALID, "truncated UBJSON");
        if (want == UINT64_MAX && d->s[p->pos] == '}') {
            p->pos++;
            break;
        }
        uint64_t kl;
        if (read_len(p, 1, &kl) != 0 || string_node(p, kl) == MDOC_NONE)
            return -1;
        uint32_t child;
        if (parse_value(p, depth + 1, &child) != 0)
            return -1;
        if (count == UINT32_MAX)
            return mdoc_fail(p, MDOC_INVALID, "container too large");
        count++;
    }
    d->n[i].count = count;
    d->n[i].end = d->count;
    *out = i;
    return 0;
}

static int parse_array(mdoc_parser *p, int depth, uint32_t *out)
{
    mdoc *d = p->d;
    uint32_t i = mdoc_new_node(p, MDOC_ARR);
    if (i == MDOC_NONE)
        return -1;
    p->pos++; /* '[' */
    if (p->pos < d->len && d->s[p->pos] == '$') {
        if (d->len - p->pos < 3)
            return mdoc_fail(p, MDOC_INVALID, "truncated UBJSON");
        char t = d->s[p->pos + 1];
        int sz = mdoc_ubj_scalar_size(t);
        if (sz <= 0)
            return mdoc_fail(p, MDOC_INVALID, "unsupported typed array element type");
        if (d->s[p->pos + 2] != '#')
            return mdoc_fail(p, MDOC_INVALID, "typed array without a count");
        p->pos += 3;
        uint64_t n;
        if (read_len(p, (size_t)sz, &n) != 0)
            return -1;
        if (n > UINT32_MAX)
            return mdoc_fail(p, MDOC_INVALID, "container too large");
        d->n[i].off = p->pos;
        d->n[i].count = (uint32_t)n;
        d->n[i].kind = (uint8_t)t;
        d->n[i].flags = MDOC_NF_TYPED | (n ? MDOC_NF_SCALARS : 0);
        d->n[i].end = i + 1;
        p->pos += (size_t)n * (size_t)sz;
        *out = i;
        return 0;
    }
    uint64_t want = UINT64_MAX;
    if (p->pos < d->len && d->s[p->pos] == '#') {
        p->pos++;
        if (read_len(p, 1, &want) != 0) /* an element takes at least its marker */
            return -1;
        if (want > UINT32_MAX)
            return mdoc_fail(p, MDOC_INVALID, "container too large");
    }
    d->n[i].off = p->pos;
    uint32_t count = 0;
    uint8_t flags = 0;
    for (;;) {
        if (want != UINT64_MAX && count == want)
            break;
        if (p->pos >= d->len)
            return mdoc_fail(p, MDOC_INVALID, "truncated UBJSON");
        char m = d->s[p->pos];
        if (want == UINT64_MAX && m == ']') {
            p->pos++;
            break;
        }
        int sz = mdoc_ubj_scalar_size(m);
        if (sz >= 0) {
            if (d->len - p->pos - 1 < (size_t)sz)
                return mdoc_fail(p, MDOC_INVALID, "truncated UBJSON");
            p->pos += 1 + (size_t)sz;
            flags |= MDOC_NF_SCALARS;
        } else {
            uint32_t child;
            if (parse_value(p, depth + 1, &child) != 0)
                return -1;
            flags |= MDOC_NF_NODES;
        }
        if (count == UINT32_MAX)
            return mdoc_fail(p, MDOC_INVALID, "container too large");
        count++;
    }
    d->n[i].count = count;
    d->n[i].flags = flags;
    d->n[i].end = d->count;
    *out = i;
    return 0;
}

static int parse_value(mdoc_parser *p, int depth, uint32_t *out)
{
    mdoc *d = p->d;
    if (depth > MDOC_MAX_DEPTH)
        return mdoc_fail(p, MDOC_INVALID, "UBJSON nested too deeply");
    if (p->pos >= d->len)
        return mdoc_fail(p, MDOC_INVALID, "truncated UBJSON");
    char m = d->s[p->pos];
    uint64_t n;
    switch (m) {
    case '{':
        return parse_object(p, depth, out);
    case '[':
        return parse_array(p, depth, out);
    case 'S':
        p->pos++;
        if (read_len(p, 1, &n) != 0)
            return -1;
        *out = string_node(p, n);
        return *out == MDOC_NONE ? -1 : 0;
    case 'C':
        if (d->len - p->pos < 2)
            return mdoc_fail(p, MDOC_INVALID, "truncated UBJSON");
        p->pos++;
        *out = string_node(p, 1);
        return *out == MDOC_NONE ? -1 : 0;
    case 'N':
        return mdoc_fail(p, MDOC_INVALID, "UBJSON no-op markers are not accepted");
    case 'H':
        return mdoc_fail(p, MDOC_INVALID, "UBJSON high-precision numbers are not accepted");
    default:
        break;
    }
    int sz = mdoc_ubj_scalar_size(m);
    if (sz < 0)
        return mdoc_fail(p, MDOC_INVALID, "unknown UBJSON marker");
    if (d->len - p->pos - 1 < (size_t)sz)
        return mdoc_fail(p, MDOC_INVALID, "truncated UBJSON");
    p->pos++;
    uint32_t i = mdoc_new_node(p, MDOC_SCALAR);
    if (i == MDOC_NONE)
        return -1;
    d->n[i].kind = (uint8_t)m;
    d->n[i].len = (size_t)sz;
    d->n[i].end = i + 1;
    p->pos += (size_t)sz;
    *out = i;
    return 0;
}

int mdoc_ubjson_parse(mdoc_parser *p)
{
    uint32_t root;
    if (parse_value(p, 1, &root) != 0)
        return -1;
    if (p->pos != p->d->len)
        return mdoc_fail(p, MDOC_INVALID, "trailing data after the UBJSON value");
    return 0;
}
