/* listset.c - list items' canonical text and the immutable sets of one list version (contract:
 * listset.h).
 *
 * string: items live in one arena as [u16 length][bytes]; the table is 2^k entries of
 *   {u32 arena offset + 1 (0 = empty), u32 high half of the hash}, linear probing, load <= 1/2.
 *   The builder dedupes as it adds (same table, doubled as needed); listset_build keeps it.
 * number: 2^k u64 bit patterns, linear probing, load <= 1/2; EMPTY is a NaN pattern (NaN is never
 *   an item) and -0 is stored as +0.
 * ip: the builder collects parsed items; listset_build sorts them, counts the distinct ones, and
 *   turns them into sorted, merged (overlapping or adjacent) closed ranges: u32 pairs for IPv4,
 *   u128 (two u64) pairs for IPv6.  A lookup is one binary search in one family.
 * Hashing is a 64-bit multiply-xorshift over 8-byte words (not DoS-resistant: items come from
 * authenticated API users, and probing stays O(1) on average for any fixed set). */
#include "errbuf.h"
#include "listset.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

#define EMPTY_NUM 0x7FF8DEADBEEF0001ULL

struct listset {
    listset_kind kind;
    size_t count;
    size_t bytes;
    /* string */
    char *arena;
    size_t arena_len, arena_cap;
    uint64_t *table; /* string: off+1 | tag << 32; number: bit patterns */
    size_t mask;     /* table size - 1 */
    size_t used;     /* occupied entries */
    /* ip */
    listset_ip *items; /* the builder's; freed by listset_build */
    size_t n_items, cap_items;
    uint32_t *v4; /* lo, hi pairs */
    size_t n_v4;
    uint64_t *v6; /* lo.hi, lo.lo, hi.hi, hi.lo quadruples */
    size_t n_v6;
    int failed; /* a builder that hit LISTSET_E_NOMEM */
};

/* A builder is the set under construction. */
struct listset_builder {
    listset s;
};

const char *listset_kind_name(listset_kind k)
{
    return k == LISTSET_STRING   ? "string"
           : k == LISTSET_NUMBER ? "number"
           : k == LISTSET_IP     ? "ip"
                                 : NULL;
}

listset_kind listset_kind_parse(const char *name, size_t len)
{
    for (int k = LISTSET_STRING; k <= LISTSET_IP; k++) {
        const char *n = listset_kind_name((listset_kind)k);
        if (strlen(n) == len && memcmp(n, name, len) == 0)
            return (listset_kind)k;
    }
    return (listset_kind)0;
}

/* ---- hashing --------------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)n * 0x9fb21c651e98df25ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x9fb21c651e98df25ULL;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    return mix64(h ^ w);
}

/* ---- numbers --------------------------------------------------------------------------------- */

int listset_number_canon(double v, char *out, size_t outlen)
{
    if (!isfinite(v) || outlen < 32)
        return LISTSET_E_INVALID;
    if (v == 0)
        v = 0; /* -0 -> 0 */
    int prec = 1;
    for (; prec < 17; prec++) { /* the fewest significant digits that read back */
        snprintf(out, outlen, "%.*e", prec - 1, v);
        if (strtod(out, NULL) == v)
            break;
    }
    /* JavaScript's Number-to-String layout: plain digits for 1e-7 < |v| < 1e21, else an exponent */
    char e[40];
    snprintf(e, sizeof e, "%.*e", prec - 1, v);
    int exp10 = atoi(strchr(e, 'e') + 1);
    if (exp10 >= -6 && exp10 < 21)
        snprintf(out, outlen, "%.*f", prec - 1 - exp10 > 0 ? prec - 1 - exp10 : 0, v);
    else
        snprintf(out, outlen, "%.*g", prec, v);
    return LISTSET_OK;
}

/* A JSON number in s[0..len): -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int json_number(const char *s, size_t len)
{
    size_t i = 0;
#define DIGIT(k) ((k) < len && s[k] >= '0' && s[k] <= '9')
    if (i < len && s[i] == '-')
        i++;
    if (!DIGIT(i))
        return 0;
    if (s[i] == '0')
        i++;
    else
        while (DIGIT(i))
            i++;
    if (i < len && s[i] == '.') {
        i++;
        if (!DIGIT(i))
            return 0;
        while (DIGIT(i))
            i++;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (!DIGIT(i))
            return 0;
        while (DIGIT(i))
            i++;
    }
#undef DIGIT
    return i == len;
}

static int parse_number(const char *in, size_t len, double *out, char *err, size_t errlen)
{
    char buf[LISTSET_ITEM_MAX + 1];
    if (len == 0 || len > LISTSET_ITEM_MAX || !json_number(in, len)) {
        errbuf_set(err, errlen, "expected a number (JSON syntax: -12, 0.5, 1e6)");
        return LISTSET_E_INVALID;
    }
    memcpy(buf, in, len);
    buf[len] = 0;
    double v = strtod(buf, NULL);
    if (!isfinite(v)) {
        errbuf_set(err, errlen, "number out of range");
        return LISTSET_E_INVALID;
    }
    *out = v == 0 ? 0 : v;
    return LISTSET_OK;
}

/* ---- ip -------------------------------------------------------------------------------------- */

static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Bits of the address past `bits` (counted over all 128) set to zero; 1 when any was set. */
static int mask_host(uint8_t addr[16], int bits)
{
    int had = 0;
    for (int i = 0; i < 16; i++) {
        int keep = bits - i * 8;
        uint8_t m = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
        had |= (addr[i] & ~m) != 0;
        addr[i] &= m;
    }
    return had;
}

static int ip_text(const listset_ip *a, char *out, size_t outlen)
{
    char buf[INET6_ADDRSTRLEN];
    const char *r = a->v4 ? inet_ntop(AF_INET, a->addr + 12, buf, sizeof buf)
                          : inet_ntop(AF_INET6, a->addr, buf, sizeof buf);
    if (r == NULL)
        return LISTSET_E_INVALID;
    int full = a->v4 ? 32 : 128;
    int n = a->prefix == full ? snprintf(out, outlen, "%s", buf)
                              : snprintf(out, outlen, "%s/%d", buf, a->prefix);
    return n < 0 || (size_t)n >= outlen ? LISTSET_E_INVALID : LISTSET_OK;
}

int listset_ip_parse(const char *in, size_t len, listset_ip *out, char *err, size_t errlen)
{
    char buf[INET6_ADDRSTRLEN + 1];
    const char *slash = memchr(in, '/', len);
    size_t alen = slash ? (size_t)(slash - in) : len;
    if (alen == 0 || alen >= sizeof buf || memchr(in, '%', alen) != NULL ||
        memchr(in, 0, alen) != NULL) {
        if (memchr(in, '%', alen) != NULL)
            errbuf_set(err, errlen, "expected an IPv4 or IPv6 address without a zone id");
        else
            errbuf_set(err, errlen,
                       "expected an IPv4 or IPv6 address (or a CIDR range such as "
                       "10.0.0.0/8)");
        return LISTSET_E_INVALID;
    }
    memcpy(buf, in, alen);
    buf[alen] = 0;
    memset(out, 0, sizeof *out);
    int v6 = memchr(buf, ':', alen) != NULL;
    int ok = v6 ? inet_pton(AF_INET6, buf, out->addr) : inet_pton(AF_INET, buf, out->addr + 12);
    if (ok != 1) {
        errbuf_set(err, errlen,
                   "expected an IPv4 or IPv6 address (or a CIDR range such as "
                   "10.0.0.0/8)");
        return LISTSET_E_INVALID;
    }
    if (!v6)
        memcpy(out->addr, mapped_prefix, 12);
    int bits = 128; /* over the 128-bit form */
    if (slash) {
        const char *p = slash + 1;
        size_t plen = len - alen - 1;
        int val = 0;
        int good = plen >= 1 && plen <= 3 && !(plen > 1 && p[0] == '0');
        for (size_t i = 0; good && i < plen; i++) {
            good = p[i] >= '0' && p[i] <= '9';
            val = val * 10 + (p[i] - '0');
        }
        if (!good || val > (v6 ? 128 : 32)) {
            errbuf_set(err, errlen, "expected a prefix length 0..%d after '/'", v6 ? 128 : 32);
            return LISTSET_E_INVALID;
        }
        bits = v6 ? val : 96 + val;
    }
    int is_mapped = memcmp(out->addr, mapped_prefix, 12) == 0 && bits >= 96;
    listset_ip net = *out;
    if (mask_host(net.addr, bits)) {
        net.v4 = (uint8_t)is_mapped;
        net.prefix = (uint8_t)(is_mapped ? bits - 96 : bits);
        char nb[LISTSET_CANON_MAX];
        if (ip_text(&net, nb, sizeof nb) != LISTSET_OK)
            nb[0] = 0;
        errbuf_set(err, errlen, "host bits are set in the range (the network is %s)", nb);
        return LISTSET_E_INVALID;
    }
    out->v4 = (uint8_t)is_mapped;
    out->prefix = (uint8_t)(is_mapped ? bits - 96 : bits);
    return LISTSET_OK;
}

/* A string item: 1..LISTSET_ITEM_MAX bytes of UTF-8 without U+0000 (PostgreSQL text cannot hold
 * it, and the canonical text is a C string). */
static int string_item_check(const char *s, size_t len, char *err, size_t errlen)
{
    if (len == 0 || !utf8_valid(s, len)) {
        errbuf_set(err, errlen, "expected a non-empty UTF-8 string");
        return LISTSET_E_INVALID;
    }
    if (memchr(s, 0, len) != NULL) {
        errbuf_set(err, errlen, "a string item cannot contain U+0000");
        return LISTSET_E_INVALID;
    }
    return LISTSET_OK;
}

/* ---- canonical text -------------------------------------------------------------------------- */

int listset_canon(listset_kind k, const char *in, size_t len, char *out, size_t outlen, char *err,
                  size_t errlen)
{
    if (len > LISTSET_ITEM_MAX) {
        errbuf_set(err, errlen, "item longer than %d bytes", LISTSET_ITEM_MAX);
        return LISTSET_E_INVALID;
    }
    switch (k) {
    case LISTSET_STRING:
        if (string_item_check(in, len, err, errlen) != LISTSET_OK)
            return LISTSET_E_INVALID;
        if (outlen <= len) {
            errbuf_set(err, errlen, "output buffer too small");
            return LISTSET_E_INVALID;
        }
        memcpy(out, in, len);
        out[len] = 0;
        return LISTSET_OK;
    case LISTSET_NUMBER: {
        double v;
        if (parse_number(in, len, &v, err, errlen) != LISTSET_OK)
            return LISTSET_E_INVALID;
        if (listset_number_canon(v, out, outlen) != LISTSET_OK) {
            errbuf_set(err, errlen, "output buffer too small");
            return LISTSET_E_INVALID;
        }
        return LISTSET_OK;
    }
    case LISTSET_IP: {
        listset_ip a;
        if (listset_ip_parse(in, len, &a, err, errlen) != LISTSET_OK)
            return LISTSET_E_INVALID;
        if (ip_text(&a, out, outlen) != LISTSET_OK) {
            errbuf_set(err, errlen, "output buffer too small");
            return LISTSET_E_INVALID;
        }
        return LISTSET_OK;
    }
    default:
        errbuf_set(err, errlen, "unknown list kind");
        return LISTSET_E_INVALID;
    }
}

/* ---- hash tables ----------------------------------------------------------------------------- */

static const char *str_at(const listset *s, uint32_t off, size_t *len)
{
    uint16_t n;
    memcpy(&n, s->arena + off, 2);
    *len = n;
    return s->arena + off + 2;
}

/* The table entry holding str, or the empty entry where it would go. */
static size_t str_find(const listset *s, const char *str, size_t len, uint64_t h)
{
    uint32_t tag = (uint32_t)(h >> 32);
    size_t i = (size_t)h & s->mask;
    for (;;) {
        uint64_t e = s->table[i];
        if (e == 0)
            return i;
        if ((uint32_t)(e >> 32) == tag) {
            size_t n;
            const char *p = str_at(s, (uint32_t)e - 1, &n);
            if (n == len && memcmp(p, str, len) == 0)
                return i;
        }
        i = (i + 1) & s->mask;
    }
}

static uint64_t num_bits(double v)
{
    uint64_t b;
    if (v == 0)
        v = 0;
    memcpy(&b, &v, 8);
    return b;
}

static size_t num_find(const listset *s, uint64_t b)
{
    size_t i = (size_t)mix64(b) & s->mask;
    while (s->table[i] != EMPTY_NUM && s->table[i] != b)
        i = (i + 1) & s->mask;
    return i;
}

/* Doubles the table when one more entry would pass load 1/2 (or makes the first one). */
static int table_grow(listset *s)
{
    size_t size = s->table ? s->mask + 1 : 0;
    if (s->table && (s->used + 1) * 2 <= size)
        return LISTSET_OK;
    size_t nsize = size ? size * 2 : 64;
    uint64_t *t = malloc(nsize * sizeof *t);
    if (t == NULL)
        return LISTSET_E_NOMEM;
    uint64_t empty = s->kind == LISTSET_NUMBER ? EMPTY_NUM : 0;
    for (size_t i = 0; i < nsize; i++)
        t[i] = empty;
    uint64_t *old = s->table;
    s->table = t;
    s->mask = nsize - 1;
    for (size_t i = 0; i < size; i++) {
        uint64_t e = old[i];
        if (e == empty)
            continue;
        size_t j;
        if (s->kind == LISTSET_NUMBER) {
            j = num_find(s, e);
        } else {
            size_t n;
            const char *p = str_at(s, (uint32_t)e - 1, &n);
            j = str_find(s, p, n, hash_bytes(p, n));
        }
        t[j] = e;
    }
    free(old);
    return LISTSET_OK;
}

/* ---- building -------------------------------------------------------------------------------- */

listset_builder *listset_builder_new(listset_kind k, size_t expected)
{
    if (k != LISTSET_STRING && k != LISTSET_NUMBER && k != LISTSET_IP)
        return NULL;
    listset_builder *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->s.kind = k;
    if (expected > LISTSET_ITEMS_MAX)
        expected = LISTSET_ITEMS_MAX;
    if (k != LISTSET_IP && expected > 0) {
        size_t size = 64;
        while (size < expected * 2 + 2)
            size *= 2;
        b->s.table = malloc(size * sizeof *b->s.table);
        if (b->s.table == NULL) {
            free(b);
            return NULL;
        }
        uint64_t empty = k == LISTSET_NUMBER ? EMPTY_NUM : 0;
        for (size_t i = 0; i < size; i++)
            b->s.table[i] = empty;
        b->s.mask = size - 1;
    }
    return b;
}

static int add_string(listset *s, const char *str, size_t len)
{
    if (table_grow(s) != LISTSET_OK)
        return LISTSET_E_NOMEM;
    uint64_t h = hash_bytes(str, len);
    size_t i = str_find(s, str, len, h);
    if (s->table[i] != 0)
        return LISTSET_OK;
    if (s->count >= LISTSET_ITEMS_MAX || s->arena_len + 2 + len > UINT32_MAX - 1)
        return LISTSET_E_NOMEM;
    if (s->arena_len + 2 + len > s->arena_cap) {
        size_t ncap = s->arena_cap ? s->arena_cap * 2 : 4096;
        while (ncap < s->arena_len + 2 + len)
            ncap *= 2;
        char *a = realloc(s->arena, ncap);
        if (a == NULL)
            return LISTSET_E_NOMEM;
        s->arena = a;
        s->arena_cap = ncap;
    }
    uint16_t n16 = (uint16_t)len;
    uint32_t off = (uint32_t)s->arena_len;
    memcpy(s->arena + off, &n16, 2);
    memcpy(s->arena + off + 2, str, len);
    s->arena_len += 2 + len;
    s->table[i] = (uint64_t)(off + 1) | (h >> 32) << 32;
    s->used++;
    s->count++;
    return LISTSET_OK;
}

static int add_number(listset *s, double v)
{
    if (table_grow(s) != LISTSET_OK)
        return LISTSET_E_NOMEM;
    uint64_t b = num_bits(v);
    size_t i = num_find(s, b);
    if (s->table[i] == b)
        return LISTSET_OK;
    if (s->count >= LISTSET_ITEMS_MAX)
        return LISTSET_E_NOMEM;
    s->table[i] = b;
    s->used++;
    s->count++;
    return LISTSET_OK;
}

static int add_ip(listset *s, const listset_ip *a)
{
    if (s->n_items >= LISTSET_ITEMS_MAX)
        return LISTSET_E_NOMEM;
    if (s->n_items == s->cap_items) {
        size_t ncap = s->cap_items ? s->cap_items * 2 : 64;
        listset_ip *p = realloc(s->items, ncap * sizeof *p);
        if (p == NULL)
            return LISTSET_E_NOMEM;
        s->items = p;
        s->cap_items = ncap;
    }
    s->items[s->n_items++] = *a;
    return LISTSET_OK;
}

int listset_builder_add(listset_builder *b, const char *item, size_t len, char *err, size_t errlen)
{
    listset *s = &b->s;
    if (s->failed) {
        errbuf_set(err, errlen, "out of memory");
        return LISTSET_E_NOMEM;
    }
    int rc;
    if (len > LISTSET_ITEM_MAX) {
        errbuf_set(err, errlen, "item longer than %d bytes", LISTSET_ITEM_MAX);
        return LISTSET_E_INVALID;
    }
    if (s->kind == LISTSET_STRING) {
        if (string_item_check(item, len, err, errlen) != LISTSET_OK)
            return LISTSET_E_INVALID;
        rc = add_string(s, item, len);
    } else if (s->kind == LISTSET_NUMBER) {
        double v;
        if (parse_number(item, len, &v, err, errlen) != LISTSET_OK)
            return LISTSET_E_INVALID;
        rc = add_number(s, v);
    } else {
        listset_ip a;
        if (listset_ip_parse(item, len, &a, err, errlen) != LISTSET_OK)
            return LISTSET_E_INVALID;
        rc = add_ip(s, &a);
    }
    if (rc != LISTSET_OK) {
        s->failed = 1;
        errbuf_set(err, errlen, "out of memory or more than %d items", LISTSET_ITEMS_MAX);
    }
    return rc;
}

int listset_builder_add_number(listset_builder *b, double v)
{
    if (b->s.failed)
        return LISTSET_E_NOMEM;
    if (b->s.kind != LISTSET_NUMBER || !isfinite(v))
        return LISTSET_E_INVALID;
    int rc = add_number(&b->s, v);
    if (rc != LISTSET_OK)
        b->s.failed = 1;
    return rc;
}

static int ip_cmp(const void *x, const void *y)
{
    const listset_ip *a = x, *b = y;
    if (a->v4 != b->v4)
        return a->v4 ? -1 : 1;
    int c = memcmp(a->addr, b->addr, 16);
    if (c != 0)
        return c;
    return (int)a->prefix - (int)b->prefix;
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* items (sorted) -> merged ranges.  Sorting by address then prefix orders ranges by their low
 * end, so one pass merges. */
static int build_ranges(listset *s)
{
    size_t n = s->n_items, distinct = 0;
    if (n > 0)
        qsort(s->items, n, sizeof *s->items, ip_cmp);
    s->v4 = malloc((n ? n : 1) * 2 * sizeof *s->v4);
    s->v6 = malloc((n ? n : 1) * 4 * sizeof *s->v6);
    if (s->v4 == NULL || s->v6 == NULL)
        return LISTSET_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const listset_ip *a = &s->items[i];
        if (i == 0 || ip_cmp(a, &s->items[i - 1]) != 0)
            distinct++;
        if (a->v4) {
            uint32_t lo = (uint32_t)be64(a->addr + 8);
            uint32_t hi = a->prefix >= 32 ? lo : lo | (UINT32_MAX >> a->prefix);
            if (s->n_v4 && (uint64_t)lo <= (uint64_t)s->v4[2 * s->n_v4 - 1] + 1) {
                if (hi > s->v4[2 * s->n_v4 - 1])
                    s->v4[2 * s->n_v4 - 1] = hi;
            } else {
                s->v4[2 * s->n_v4] = lo;
                s->v4[2 * s->n_v4 + 1] = hi;
                s->n_v4++;
            }
        } else {
            uint64_t lh = be64(a->addr), ll = be64(a->addr + 8);
            int p = a->prefix;
            uint64_t hh = p >= 64 ? lh : p == 0 ? UINT64_MAX : lh | (UINT64_MAX >> p);
            uint64_t hl = p >= 128 ? ll : p <= 64 ? UINT64_MAX : ll | (UINT64_MAX >> (p - 64));
            uint64_t *last = s->n_v6 ? &s->v6[4 * (s->n_v6 - 1)] : NULL;
            /* adjacent when lo == last hi + 1 */
            int touches = 0;
            if (last) {
                uint64_t nh = last[2], nl = last[3] + 1;
                if (nl == 0)
                    nh++;
                int wrapped = last[2] == UINT64_MAX && last[3] == UINT64_MAX;
                touches = wrapped || lh < nh || (lh == nh && ll <= nl);
            }
            if (touches) {
                if (hh > last[2] || (hh == last[2] && hl > last[3]))
                    last[2] = hh, last[3] = hl;
            } else {
                uint64_t *r = &s->v6[4 * s->n_v6++];
                r[0] = lh, r[1] = ll, r[2] = hh, r[3] = hl;
            }
        }
    }
    s->count = distinct;
    /* give back what merging and the other family left unused */
    uint32_t *v4 = realloc(s->v4, (s->n_v4 ? s->n_v4 : 1) * 2 * sizeof *s->v4);
    if (v4 != NULL)
        s->v4 = v4;
    uint64_t *v6 = realloc(s->v6, (s->n_v6 ? s->n_v6 : 1) * 4 * sizeof *s->v6);
    if (v6 != NULL)
        s->v6 = v6;
    free(s->items);
    s->items = NULL;
    s->cap_items = s->n_items = 0;
    s->bytes = (s->n_v4 * 2 * sizeof *s->v4) + (s->n_v6 * 4 * sizeof *s->v6);
    return LISTSET_OK;
}

listset *listset_build(listset_builder *b)
{
    if (b == NULL)
        return NULL;
    listset *s = malloc(sizeof *s);
    if (s == NULL || b->s.failed) {
        free(s);
        listset_builder_free(b);
        return NULL;
    }
    *s = b->s;
    free(b);
    if (s->kind == LISTSET_IP) {
        if (build_ranges(s) != LISTSET_OK) {
            listset_free(s);
            return NULL;
        }
    } else if (s->table == NULL && table_grow(s) != LISTSET_OK) {
        listset_free(s);
        return NULL;
    } else {
        if (s->arena_len > 0 && s->arena_len < s->arena_cap) { /* give back the doubling slack */
            char *a = realloc(s->arena, s->arena_len);
            if (a != NULL)
                s->arena = a, s->arena_cap = s->arena_len;
        }
        s->bytes = (s->mask + 1) * sizeof *s->table + s->arena_cap;
    }
    s->bytes += sizeof *s;
    return s;
}

void listset_builder_free(listset_builder *b)
{
    if (b == NULL)
        return;
    free(b->s.arena);
    free(b->s.table);
    free(b->s.items);
    free(b->s.v4);
    free(b->s.v6);
    free(b);
}

void listset_free(listset *s)
{
    if (s == NULL)
        return;
    free(s->arena);
    free(s->table);
    free(s->items);
    free(s->v4);
    free(s->v6);
    free(s);
}

/* ---- reading --------------------------------------------------------------------------------- */

listset_kind listset_get_kind(const listset *s)
{
    return s ? s->kind : (listset_kind)0;
}

size_t listset_count(const listset *s)
{
    return s ? s->count : 0;
}

size_t listset_bytes(const listset *s)
{
    return s ? s->bytes : 0;
}

int listset_has_string(const listset *s, const char *str, size_t len)
{
    if (s == NULL || s->kind != LISTSET_STRING || len > LISTSET_ITEM_MAX)
        return 0;
    return s->table[str_find(s, str, len, hash_bytes(str, len))] != 0;
}

int listset_has_number(const listset *s, double v)
{
    if (s == NULL || s->kind != LISTSET_NUMBER || isnan(v))
        return 0;
    uint64_t b = num_bits(v);
    return s->table[num_find(s, b)] == b;
}

int listset_has_ip(const listset *s, const listset_ip *a)
{
    if (s == NULL || s->kind != LISTSET_IP)
        return 0;
    if (a->v4) {
        uint32_t x = (uint32_t)be64(a->addr + 8);
        size_t lo = 0, hi = s->n_v4; /* first range with lo > x */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (s->v4[2 * mid] <= x)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo > 0 && x <= s->v4[2 * (lo - 1) + 1];
    }
    uint64_t xh = be64(a->addr), xl = be64(a->addr + 8);
    size_t lo = 0, hi = s->n_v6;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const uint64_t *r = &s->v6[4 * mid];
        if (r[0] < xh || (r[0] == xh && r[1] <= xl))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return 0;
    const uint64_t *r = &s->v6[4 * (lo - 1)];
    return xh < r[2] || (xh == r[2] && xl <= r[3]);
}

int listset_has_ip_text(const listset *s, const char *str, size_t len)
{
    listset_ip a;
    if (s == NULL || s->kind != LISTSET_IP || memchr(str, '/', len) != NULL ||
        listset_ip_parse(str, len, &a, NULL, 0) != LISTSET_OK)
        return 0;
    return listset_has_ip(s, &a);
}
