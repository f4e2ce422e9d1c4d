/* json.c - strict JSON validation in front of cJSON.  See json.h.
 *
 * The validator is a small recursive-descent recogniser over the raw bytes, with explicit depth
 * limit; cJSON then builds the tree from input already known to be well formed, and a walk over
 * the tree rejects duplicate keys (cJSON keeps both and its lookups would silently pick one). */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "numtext.h"
#include "utf8.h"

typedef struct scan {
    const unsigned char *p;
    size_t len;
    size_t off;
    char *err;
    size_t errlen;
} scan;

static int fail(scan *s, const char *what)
{
    snprintf(s->err, s->errlen, "malformed JSON at byte %zu: %s", s->off, what);
    return -1;
}

static void skip_ws(scan *s)
{
    while (s->off < s->len) {
        unsigned char c = s->p[s->off];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        s->off++;
    }
}

int json_utf8_valid(const char *s, size_t len)
{
    return utf8_valid(s, len);
}

static int read_u4(scan *s, unsigned *out)
{
    if (s->len - s->off < 4)
        return fail(s, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_digit((char)s->p[s->off + (size_t)i]);
        if (h < 0)
            return fail(s, "bad \\u escape");
        v = v << 4 | (unsigned)h;
    }
    s->off += 4;
    *out = v;
    return 0;
}

static int scan_string(scan *s)
{
    s->off++; /* opening quote */
    while (s->off < s->len) {
        unsigned char c = s->p[s->off];
        if (c == '"') {
            s->off++;
            return 0;
        }
        if (c < 0x20)
            return fail(s, "unescaped control character in string");
        if (c == '\\') {
            s->off++;
            if (s->off >= s->len)
                break;
            c = s->p[s->off++];
            if (c == 'u') {
                unsigned u;
                if (read_u4(s, &u))
                    return -1;
                if (u == 0)
                    return fail(s, "\\u0000 is not allowed");
                if (u >= 0xDC00 && u <= 0xDFFF)
                    return fail(s, "lone low surrogate");
                if (u >= 0xD800 && u <= 0xDBFF) {
                    unsigned lo;
                    if (s->len - s->off < 2 || s->p[s->off] != '\\' || s->p[s->off + 1] != 'u')
                        return fail(s, "lone high surrogate");
                    s->off += 2;
                    if (read_u4(s, &lo))
                        return -1;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return fail(s, "bad surrogate pair");
                }
            } else if (!strchr("\"\\/bfnrt", c) || c == 0) {
                return fail(s, "bad escape");
            }
            continue;
        }
        size_t k = utf8_seq_len(s->p + s->off, s->len - s->off);
        if (k == 0)
            return fail(s, "invalid UTF-8");
        s->off += k;
    }
    return fail(s, "unterminated string");
}

/* One or more digits at p (before e).  Returns the end of the run, or NULL when there is none. */
static const unsigned char *digits(const unsigned char *p, const unsigned char *e)
{
    const unsigned char *q =
        (const unsigned char *)numtext_digits((const char *)p, (const char *)e);
    return q > p ? q : NULL;
}

/* The number grammar, on local pointers: a predict body is mostly numbers, and this loop is most
 * of json_validate's time on it. */
static int scan_number(scan *s)
{
    const unsigned char *p = s->p + s->off, *e = s->p + s->len, *q;
    if (*p == '-')
        p++;
    if (p >= e) {
        s->off = (size_t)(p - s->p);
        return fail(s, "truncated number");
    }
    if (*p == '0') {
        p++;
        if (p < e && (unsigned)(*p - '0') < 10u) {
            s->off = (size_t)(p - s->p);
            return fail(s, "leading zero");
        }
    } else if ((q = digits(p, e)) == NULL) {
        s->off = (size_t)(p - s->p);
        return fail(s, "expected digit");
    } else {
        p = q;
    }
    if (p < e && *p == '.') {
        if ((q = digits(p + 1, e)) == NULL) {
            s->off = (size_t)(p + 1 - s->p);
            return fail(s, "expected digit");
        }
        p = q;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if ((q = digits(p, e)) == NULL) {
            s->off = (size_t)(p - s->p);
            return fail(s, "expected digit");
        }
        p = q;
    }
    s->off = (size_t)(p - s->p);
    return 0;
}

static int scan_lit(scan *s, const char *lit)
{
    size_t n = strlen(lit);
    if (s->len - s->off < n || memcmp(s->p + s->off, lit, n) != 0)
        return fail(s, "unexpected token");
    s->off += n;
    return 0;
}

static int scan_value(scan *s, int depth)
{
    skip_ws(s);
    if (s->off >= s->len)
        return fail(s, "unexpected end of input");
    unsigned char c = s->p[s->off];
    if (c == '{' || c == '[') {
        if (depth >= JSON_MAX_DEPTH)
            return fail(s, "nesting deeper than 32");
        unsigned char close = c == '{' ? '}' : ']';
        s->off++;
        skip_ws(s);
        if (s->off < s->len && s->p[s->off] == close) {
            s->off++;
            return 0;
        }
        for (;;) {
            if (c == '{') {
                skip_ws(s);
                if (s->off >= s->len || s->p[s->off] != '"')
                    return fail(s, "expected object key");
                if (scan_string(s))
                    return -1;
                skip_ws(s);
                if (s->off >= s->len || s->p[s->off] != ':')
                    return fail(s, "expected ':'");
                s->off++;
            }
            /* a number inline (no call, no second look at the whitespace): the common element */
            skip_ws(s);
            if (s->off < s->len && (s->p[s->off] == '-' || (unsigned)(s->p[s->off] - '0') < 10u)) {
                if (scan_number(s))
                    return -1;
            } else if (scan_value(s, depth + 1)) {
                return -1;
            }
            skip_ws(s);
            if (s->off >= s->len)
                return fail(s, "unexpected end of input");
            if (s->p[s->off] == ',') {
                s->off++;
                continue;
            }
            if (s->p[s->off] == close) {
                s->off++;
                return 0;
            }
            return fail(s, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    if (c == '"')
        return scan_string(s);
    if (c == '-' || (c >= '0' && c <= '9'))
        return scan_number(s);
    if (c == 't')
        return scan_lit(s, "true");
    if (c == 'f')
        return scan_lit(s, "false");
    if (c == 'n')
        return scan_lit(s, "null");
    return fail(s, "unexpected character");
}

int json_validate(const char *buf, size_t len, char *err, size_t errlen)
{
    scan s = {(const unsigned char *)buf, len, 0, err, errlen};
    if (len == 0)
        return fail(&s, "empty body");
    if (scan_value(&s, 0))
        return -1;
    skip_ws(&s);
    if (s.off != len)
        return fail(&s, "trailing data after the JSON value");
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Walks the tree; returns -1 and fills err at the first object with a repeated key. */
static int check_dups(const cJSON *item, char *err, size_t errlen)
{
    for (; item; item = item->next) {
        if (cJSON_IsObject(item)) {
            size_t n = 0;
            for (const cJSON *c = item->child; c; c = c->next)
                n++;
            if (n > 1) {
                const char **keys = malloc(n * sizeof *keys);
                if (!keys) {
                    snprintf(err, errlen, "out of memory");
                    return -1;
                }
                size_t i = 0;
                for (const cJSON *c = item->child; c; c = c->next)
                    keys[i++] = c->string;
                qsort(keys, n, sizeof *keys, cmp_str);
                for (i = 1; i < n; i++) {
                    if (strcmp(keys[i - 1], keys[i]) == 0) {
                        snprintf(err, errlen, "malformed JSON: duplicate key \"%.64s\"", keys[i]);
                        free(keys);
                        return -1;
                    }
                }
                free(keys);
            }
        }
        if ((cJSON_IsObject(item) || cJSON_IsArray(item)) && check_dups(item->child, err, errlen))
            return -1;
    }
    return 0;
}

int json_parse_strict(const char *buf, size_t len, cJSON **out, char *err, size_t errlen)
{
    *out = NULL;
    if (json_validate(buf, len, err, errlen))
        return -1;
    cJSON *root = cJSON_ParseWithLength(buf, len);
    if (!root) {
        snprintf(err, errlen, "malformed JSON (or out of memory)");
        return -1;
    }
    if (check_dups(root, err, errlen)) {
        cJSON_Delete(root);
        return -1;
    }
    *out = root;
    return 0;
}

const char *json_unknown_member(const cJSON *obj, const char *const *allowed)
{
    /* Only an object's children have names: an array's have c->string == NULL, which strcmp must
     * never see (found by tests/fuzz/fuzz_json.c on "[0]"). */
    if (!cJSON_IsObject(obj))
        return NULL;
    for (const cJSON *c = obj->child; c; c = c->next) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++) {
            if (strcmp(*a, c->string) == 0) {
                ok = 1;
                break;
            }
        }
        if (!ok)
            return c->string;
    }
    return NULL;
}

char *json_print(const cJSON *item)
{
    return cJSON_PrintUnformatted(item);
}

int json_find_inexact_number(const cJSON *item, const char *prefix, char *path, size_t cap)
{
    if (cJSON_IsNumber(item)) {
        if (isfinite(item->valuedouble) && fabs(item->valuedouble) <= JSON_EXACT_MAX)
            return 0;
        snprintf(path, cap, "%s", prefix);
        return 1;
    }
    if (!cJSON_IsObject(item) && !cJSON_IsArray(item))
        return 0;
    long i = 0;
    for (const cJSON *c = item->child; c; c = c->next, i++) {
        char sub[256];
        if (cJSON_IsObject(item))
            snprintf(sub, sizeof sub, "%s.%.64s", prefix, c->string);
        else
            snprintf(sub, sizeof sub, "%s[%ld]", prefix, i);
        if (json_find_inexact_number(c, sub, path, cap))
            return 1;
    }
    return 0;
}

/* Turns every finite number of the subtree into a raw token written as json_print_exact says.
 * Returns 0 or -1 on OOM (the tree is then partly converted: the caller deletes it). */
static int numbers_to_raw(cJSON *item)
{
    for (; item; item = item->next) {
        if (cJSON_IsNumber(item) && isfinite(item->valuedouble)) {
            double d = item->valuedouble;
            char buf[40];
            if (d == floor(d) && fabs(d) <= JSON_EXACT_MAX) {
                snprintf(buf, sizeof buf, "%.0f", d); /* every digit: exact below 2^53 */
            } else {
                for (int prec = 15; prec <= 17; prec++) {
                    snprintf(buf, sizeof buf, "%.*g", prec, d);
                    if (strtod(buf, NULL) == d)
                        break;
                }
            }
            char *raw = strdup(buf);
            if (!raw)
                return -1;
            item->type = cJSON_Raw;
            item->valuestring = raw;
        } else if ((cJSON_IsObject(item) || cJSON_IsArray(item)) && numbers_to_raw(item->child)) {
            return -1;
        }
    }
    return 0;
}

char *json_print_exact(const cJSON *item)
{
    cJSON *copy = cJSON_Duplicate(item, 1); /* a detached copy: copy->next is NULL */
    char *s = copy && numbers_to_raw(copy) == 0 ? cJSON_PrintUnformatted(copy) : NULL;
    cJSON_Delete(copy);
    return s;
}
