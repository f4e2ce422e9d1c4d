/* mdoc_json.c - the JSON front end of mdoc (see mdoc.h): strict RFC 8259 plus the NaN, Infinity
 * and -Infinity tokens that xgboost writes and standard parsers (cJSON) reject.
 *
 * Index layout: strings point inside their quotes (escapes decoded later, by mdoc_str); an array's
 * off is its '[', from where its scalar tokens are re-lexed on demand (mdoc.c).  Scalars directly
 * inside arrays are counted, never indexed, so millions of split values cost one node per array.
 * Costs: O(len) time, recursion depth at most MDOC_MAX_DEPTH. */
#include <string.h>

#include "mdoc_impl.h"

static void skip_ws(mdoc_parser *p)
{
    const mdoc *d = p->d;
    while (p->pos < d->len) {
        char c = d->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

size_t mdoc_json_lex(const char *s, size_t len, size_t p, int *kind)
{
    static const struct {
        const char *t;
        int k;
    } lits[] = {{"NaN", MDOC_K_NAN},   {"Infinity", MDOC_K_INF}, {"-Infinity", MDOC_K_NINF},
                {"true", MDOC_K_TRUE}, {"false", MDOC_K_FALSE},  {"null", MDOC_K_NULL}};
    *kind = 0;
    if (p >= len)
        return 0;
    /* The first byte rules out most literals: a number (the common case by far: every split
     * value of every tree is lexed twice) costs at most one comparison, for "-Infinity". */
    for (size_t i = 0; i < sizeof(lits) / sizeof(lits[0]); i++) {
        if (s[p] != lits[i].t[0])
            continue;
        size_t tl = strlen(lits[i].t);
        if (len - p >= tl && memcmp(s + p, lits[i].t, tl) == 0) {
            *kind = lits[i].k;
            return p + tl;
        }
    }
    size_t q = p;
    int k = MDOC_K_INT;
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
        k = MDOC_K_REAL;
        if (q >= len || !is_digit(s[q]))
            return 0;
        while (q < len && is_digit(s[q]))
            q++;
    }
    if (q < len && (s[q] == 'e' || s[q] == 'E')) {
        q++;
        k = MDOC_K_REAL;
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

/* Lexes a string starting at the opening quote into a string node.  Validates escapes and rejects
 * raw control characters.  Returns the node or MDOC_NONE. */
static uint32_t parse_string(mdoc_parser *p)
{
    mdoc *d = p->d;
    p->pos++; /* opening quote */
    uint32_t i = mdoc_new_node(p, MDOC_STR);
    if (i == MDOC_NONE)
        return MDOC_NONE;
    int esc = 0;
    while (p->pos < d->len) {
        unsigned char c = (unsigned char)d->s[p->pos];
        if (c == '"') {
            d->n[i].len = p->pos - d->n[i].off;
            d->n[i].flags = esc ? MDOC_NF_ESC : 0;
            d->n[i].end = i + 1;
            p->pos++;
            return i;
        }
        if (c < 0x20) {
            mdoc_fail(p, MDOC_INVALID, "control character in string");
            return MDOC_NONE;
        }
        if (c == '\\') {
            esc = 1;
            p->pos++;
            if (p->pos >= d->len)
                break;
            char e = d->s[p->pos];
            if (e == 'u') {
                for (int k = 1; k <= 4; k++) {
                    char h = p->pos + (size_t)k < d->len ? d->s[p->pos + (size_t)k] : 0;
                    if (!is_digit(h) && !((h | 0x20) >= 'a' && (h | 0x20) <= 'f')) {
                        mdoc_fail(p, MDOC_INVALID, "bad \\u escape");
                        return MDOC_NONE;
                    }
                }
                p->pos += 4;
            } else if (e == 0 || !strchr("\"\\/bfnrt", e)) {
                mdoc_fail(p, MDOC_INVALID, "bad escape");
                return MDOC_NONE;
            }
        }
        p->pos++;
    }
    mdoc_fail(p, MDOC_INVALID, "unterminated string");
    return MDOC_NONE;
}

static int parse_value(mdoc_parser *p, int depth, uint32_t *out);

/* Parses a scalar at p->pos; stores a node unless packed (inside an array). */
static int parse_scalar(mdoc_parser *p, int packed, uint32_t *out)
{
    mdoc *d = p->d;
    int kind;
    size_t e = mdoc_json_lex(d->s, d->len, p->pos, &kind);
    if (kind == 0)
        return mdoc_fail(p, MDOC_INVALID, "invalid JSON value");
    *out = MDOC_NONE;
    if (!packed) {
        uint32_t i = mdoc_new_node(p, MDOC_SCALAR);
        if (i == MDOC_NONE)
            return -1;
        d->n[i].len = e - p->pos;
        d->n[i].kind = (uint8_t)kind;
        d->n[i].end = i + 1;
        *out = i;
    }
    p->pos = e;
    return 0;
}

static int parse_container(mdoc_parser *p, int depth, int is_obj, uint32_t *out)
{
    mdoc *d = p->d;
    uint32_t i = mdoc_new_node(p, is_obj ? MDOC_OBJ : MDOC_ARR);
    if (i == MDOC_NONE)
        return -1;
    p->pos++;
    skip_ws(p);
    char close = is_obj ? '}' : ']';
    uint32_t count = 0;
    uint8_t flags = 0;
    if (p->pos < d->len && d->s[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            uint32_t child;
            skip_ws(p);
            if (p->pos >= d->len)
                return mdoc_fail(p, MDOC_INVALID, "truncated JSON");
            if (is_obj) {
                if (d->s[p->pos] != '"')
                    return mdoc_fail(p, MDOC_INVALID, "expected a member name");
                if (parse_string(p) == MDOC_NONE)
                    return -1;
                skip_ws(p);
                if (p->pos >= d->len || d->s[p->pos] != ':')
                    return mdoc_fail(p, MDOC_INVALID, "expected ':'");
                p->pos++;
                skip_ws(p);
                if (parse_value(p, depth + 1, &child) != 0)
                    return -1;
            } else {
                char c = d->s[p->pos];
                if (c == '{' || c == '[' || c == '"') {
                    if (parse_value(p, depth + 1, &child) != 0)
                        return -1;
                    flags |= MDOC_NF_NODES;
                } else {
                    if (parse_scalar(p, 1, &child) != 0)
                        return -1;
                    flags |= MDOC_NF_SCALARS;
                }
            }
            if (count == UINT32_MAX)
                return mdoc_fail(p, MDOC_INVALID, "container too large");
            count++;
            skip_ws(p);
            if (p->pos >= d->len)
                return mdoc_fail(p, MDOC_INVALID, "truncated JSON");
            if (d->s[p->pos] == ',') {
                p->pos++;
                continue;
            }
            if (d->s[p->pos] == close) {
                p->pos++;
                break;
            }
            return mdoc_fail(p, MDOC_INVALID,
                             is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
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
        return mdoc_fail(p, MDOC_INVALID, "JSON nested too deeply");
    skip_ws(p);
    if (p->pos >= d->len)
        return mdoc_fail(p, MDOC_INVALID, "truncated JSON");
    char c = d->s[p->pos];
    if (c == '{' || c == '[')
        return parse_container(p, depth, c == '{', out);
    if (c == '"') {
        *out = parse_string(p);
        return *out == MDOC_NONE ? -1 : 0;
    }
    return parse_scalar(p, 0, out);
}

int mdoc_json_parse(mdoc_parser *p)
{
    uint32_t root;
    if (parse_value(p, 1, &root) != 0)
        return -1;
    skip_ws(p);
    if (p->pos != p->d->len)
        return mdoc_fail(p, MDOC_INVALID, "trailing data after the JSON value");
    return 0;
}
