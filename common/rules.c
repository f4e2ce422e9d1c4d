/* rules.c - the rule language: lexer, recursive-descent parser with type checks, code generator,
 * evaluator and decision precedence (contract and grammar: rules.h).
 *
 * Compiling a policy: each rule's text is lexed on demand (one token of lookahead), parsed into a
 * per-rule AST (a node array reused across rules, every node typed as it is made), then emitted
 * as stack-machine code into growing pools (code, number constants, string constants, list
 * literals, probes, names).  At the end the pools are copied into ONE block: the program header,
 * then each section 8-byte aligned; the header's section pointers point into the same block.
 * Costs: compile O(text) time, O(text) scratch; the program is ~12 bytes per operator/operand
 * plus its strings.
 *
 * Evaluating: one pass over each rule's code with a fixed stack on the C stack (the compiler
 * proves the depth fits).  Numbers are doubles and a missing number is NaN (a NaN input, x/0 and
 * overflow are missing too, rules.h), so arithmetic propagates it for free and every comparison
 * tests it explicitly (C's NaN != NaN would make `!=` true).  A missing string is a NULL pointer.
 * No allocation, no I/O; a rule costs one dispatch per operator. */
#include "rules.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "utf8.h"

#define STACK_MAX (2 * RULES_DEPTH_MAX + 16)

/* ---- the program ----------------------------------------------------------------------------- */

enum op {
    OP_NUM,   /* push nums[a] */
    OP_STR,   /* push strs[a] */
    OP_BOOL,  /* push a */
    OP_LDN,   /* push number slot a (NaN when missing or not a number) */
    OP_LDS,   /* push string slot a (NULL when missing or not a string) */
    OP_NEG,   /* n -> -n */
    OP_ADD,   /* n n -> n; a non-finite result is missing */
    OP_SUB,   /* */
    OP_MUL,   /* */
    OP_DIV,   /* */
    OP_EQN,   /* n n -> b; false with a missing side */
    OP_NEN,   /* */
    OP_LTN,   /* */
    OP_LEN,   /* */
    OP_GTN,   /* */
    OP_GEN,   /* */
    OP_EQS,   /* s s -> b */
    OP_NES,   /* */
    OP_TRUTH, /* n -> b: present and != 0 */
    OP_NOT,   /* b -> !b */
    OP_ANDJ,  /* b: false -> jump to a (keeping it), else pop */
    OP_ORJ,   /* b: true -> jump to a (keeping it), else pop */
    OP_MISSN, /* n -> b: missing */
    OP_MISSS, /* s -> b */
    OP_INN,   /* n -> b: in nums[a..a+b), negated by neg; false when missing */
    OP_INS,   /* s -> b: in strs[a..a+b) */
    OP_PROBE, /* -> b: probes[a] of slot b, negated by neg; false when missing */
};

typedef struct insn {
    uint8_t op;
    uint8_t neg;
    uint16_t pad;
    uint32_t a, b;
} insn;

typedef struct rule_rec {
    uint32_t name;           /* arena offset, NUL-terminated */
    uint32_t code, code_end; /* code[code..code_end) leaves one boolean */
    uint8_t action, mode, uses_score, pad;
} rule_rec;

typedef struct strref {
    uint32_t off, len;
} strref;

typedef struct list_rec {
    uint32_t name; /* arena offset */
    uint32_t kind;
} list_rec;

typedef struct probe_rec {
    uint32_t list, slot;
} probe_rec;

struct rules_program {
    size_t bytes;
    uint32_t n_rules, n_lists, n_probes, n_slots;
    const rule_rec *rules;
    const insn *code;
    const double *nums;
    const strref *strs;
    const list_rec *lists;
    const probe_rec *probes;
    const char *arena;
    uint64_t score_mask[RULES_BITMAP_WORDS];
};

/* ---- names ----------------------------------------------------------------------------------- */

static const char *const action_names[] = {"allow", "review", "block"};
static const char *const mode_names[] = {"active", "shadow"};

static int name_index(const char *const *names, int n, const char *s, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
            return i;
    return -1;
}

const char *rules_action_name(rules_action a)
{
    return (unsigned)a < 3 ? action_names[a] : NULL;
}

int rules_action_parse(const char *s, size_t len, rules_action *out)
{
    int i = name_index(action_names, 3, s, len);
    if (i < 0)
        return -1;
    *out = (rules_action)i;
    return 0;
}

const char *rules_mode_name(rules_mode m)
{
    return (unsigned)m < 2 ? mode_names[m] : NULL;
}

int rules_mode_parse(const char *s, size_t len, rules_mode *out)
{
    int i = name_index(mode_names, 2, s, len);
    if (i < 0)
        return -1;
    *out = (rules_mode)i;
    return 0;
}

static int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

int rules_name_valid(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > RULES_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)name[i];
        if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '.' && c != ':' && c != '-')
            return 0;
    }
    return 1;
}

static int listname_char(int c, int first)
{
    return is_alpha(c) || is_digit(c) || c == '_' || (!first && (c == '-' || c == '.'));
}

int rules_list_name_valid(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > RULES_LISTNAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!listname_char((unsigned char)name[i], i == 0))
            return 0;
    return 1;
}

/* ---- the compiler's state -------------------------------------------------------------------- */

enum tok {
    T_EOF,
    T_NUM,
    T_STR,
    T_IDENT,
    T_QIDENT,
    T_LIST,
    T_LP,
    T_RP,
    T_COMMA,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_SLASH,
    T_EQ,
    T_EQEQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    /* keywords, in the order of keywords[] */
    T_AND,
    T_OR,
    T_NOT,
    T_IN,
    T_TRUE,
    T_FALSE,
    T_ISMISSING,
    T_IF,
    T_ALLOW,
    T_REVIEW,
    T_BLOCK,
};

static const char *const keywords[] = {"and",        "or", "not",   "in",     "true", "false",
                                       "is_missing", "if", "allow", "review", "block"};
#define N_KEYWORDS (sizeof keywords / sizeof keywords[0])

typedef struct token {
    int kind;
    size_t start, end; /* bytes of the source */
} token;

enum ty { TY_NUM = 1, TY_STR = 2, TY_BOOL = 3 };

enum nkind {
    N_NUM,
    N_STR,
    N_BOOL,
    N_SLOT,
    N_NEG,
    N_ARITH,
    N_CMP,
    N_TRUTH,
    N_NOT,
    N_AND,
    N_OR,
    N_MISS,
    N_INSET,
    N_PROBE,
};

typedef struct node {
    uint8_t kind, type, op, neg;
    int a, b;      /* children, -1 when none */
    uint32_t x, y; /* constant index / slot / probe / set first+count */
    uint32_t pos;  /* byte offset where the expression starts */
} node;

typedef struct cctx {
    const rules_catalog *cat;
    rules_error *err;
    int status; /* RULES_OK until the first failure */
    int rule;
    /* the rule being compiled */
    const char *src;
    size_t len, pos;
    token cur;
    int depth;
    int uses_score;
    node *nodes;
    size_t n_nodes, cap_nodes;
    char *tmp; /* a number's text, NUL-terminated */
    /* the pools that become the program */
    insn *code;
    size_t n_code, cap_code;
    double *nums;
    size_t n_nums, cap_nums;
    strref *strs;
    size_t n_strs, cap_strs;
    list_rec *lists;
    size_t n_lists, cap_lists;
    uint32_t *list_cat; /* catalogue index of each program list */
    size_t cap_list_cat;
    probe_rec *probes;
    size_t n_probes, cap_probes;
    rule_rec *rules;
    dynbuf arena;
} cctx;

/* The 1-based character column of byte offset off in the current rule's text. */
static int column_of(const cctx *c, size_t off)
{
    int col = 1;
    for (size_t i = 0; i < off && i < c->len; i++)
        if (((unsigned char)c->src[i] & 0xC0) != 0x80)
            col++;
    return col;
}

/* Records the first error (later ones are consequences) at byte offset off (SIZE_MAX: no column).
 * Returns -1 for the callers' convenience. */
static int fail_at(cctx *c, size_t off, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_at(cctx *c, size_t off, const char *fmt, ...)
{
    if (c->status != RULES_OK)
        return -1;
    c->status = RULES_E_INVALID;
    if (c->err) {
        c->err->rule = c->rule;
        c->err->column = off == SIZE_MAX ? 0 : column_of(c, off);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err->message, sizeof c->err->message, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int fail_nomem(cctx *c)
{
    if (c->status == RULES_OK) {
        c->status = RULES_E_NOMEM;
        if (c->err) {
            c->err->rule = c->rule;
            c->err->column = 0;
            snprintf(c->err->message, sizeof c->err->message, "out of memory");
        }
    }
    return -1;
}

/* Makes room for one more element of a pool; -1 (status set) when it cannot. */
static int pool_room(cctx *c, void **arr, size_t *cap, size_t n, size_t elem)
{
    int rc = dynbuf_grow_array(arr, cap, n + 1, elem, (size_t)UINT32_MAX / 2);
    return rc == DYNBUF_OK ? 0 : fail_nomem(c);
}

/* Appends one (uninitialised) element to a pool: *n grows by one.  0, or -1 (status set). */
static int pool_push(cctx *c, void **arr, size_t *n, size_t *cap, size_t elem)
{
    if (pool_room(c, arr, cap, *n, elem) < 0)
        return -1;
    (*n)++;
    return 0;
}

#define POOL_PUSH(c, arr, n, cap)                                                                  \
    pool_push((c), (void **)&(c)->arr, &(c)->n, &(c)->cap, sizeof *(c)->arr)

/* Appends bytes (plus a NUL) to the arena; their offset in *off. */
static int arena_put(cctx *c, const char *s, size_t n, uint32_t *off)
{
    *off = (uint32_t)c->arena.len;
    if (dynbuf_append(&c->arena, s, n) != DYNBUF_OK || dynbuf_append(&c->arena, "", 1) != DYNBUF_OK)
        return fail_nomem(c);
    return 0;
}

/* ---- lexer ----------------------------------------------------------------------------------- */

/* How a token reads in a message: "'and'", "')'", "the end of the rule" (at most ~40 bytes). */
static const char *tok_text(const cctx *c, const token *t, char *buf, size_t n)
{
    if (t->kind == T_EOF)
        return "the end of the rule";
    size_t len = t->end - t->start;
    const char *more = "";
    if (len > 24) {
        len = 24;
        while (len > 0 && ((unsigned char)c->src[t->start + len] & 0xC0) == 0x80)
            len--; /* never cut a character */
        more = "...";
    }
    snprintf(buf, n, "'%.*s%s'", (int)len, c->src + t->start, more);
    return buf;
}

static void skip_space(cctx *c)
{
    while (c->pos < c->len) {
        char ch = c->src[c->pos];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
            break;
        c->pos++;
    }
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int ch = (unsigned char)s[i];
        int d = is_digit(ch)               ? ch - '0'
                : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10
                : (ch >= 'A' && ch <= 'F') ? ch - 'A' + 10
                                           : -1;
        if (d < 0)
            return -1;
        v = v * 16 + (unsigned)d;
    }
    *out = v;
    return 0;
}

/* Reads a \u escape at s[i] ('u' at s[i]); the code point in *cp, bytes used (5 or 11) returned,
 * 0 when malformed (a lone or reversed surrogate included). */
static size_t unicode_escape(const char *s, size_t i, size_t end, unsigned *cp)
{
    unsigned hi, lo;
    if (i + 5 > end || hex4(s + i + 1, &hi) != 0)
        return 0;
    if (hi >= 0xDC00 && hi <= 0xDFFF)
        return 0;
    if (hi < 0xD800 || hi > 0xDBFF) {
        *cp = hi;
        return 5;
    }
    if (i + 11 > end || s[i + 5] != '\\' || s[i + 6] != 'u' || hex4(s + i + 7, &lo) != 0 ||
        lo < 0xDC00 || lo > 0xDFFF)
        return 0;
    *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    return 11;
}

static size_t utf8_put(unsigned cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Scans a string literal starting at the opening quote; decodes it into out (when not NULL,
 * at least as long as the literal) with its length in *n.  Returns the offset after the closing
 * quote, or 0 after recording an error. */
static size_t scan_string(cctx *c, size_t start, char *out, size_t *n)
{
    size_t i = start + 1, k = 0;
    while (i < c->len && c->src[i] != '"') {
        unsigned char ch = (unsigned char)c->src[i];
        if (ch < 0x20) {
            fail_at(c, i, "control character in a string (write \\n, \\t or \\r)");
            return 0;
        }
        if (ch != '\\') {
            if (out)
                out[k] = (char)ch;
            k++, i++;
            continue;
        }
        char e = i + 1 < c->len ? c->src[i + 1] : 0;
        const char *simple = strchr("\"\\/ntr", e);
        if (e != 0 && simple != NULL) {
            if (out)
                out[k] = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
            k++, i += 2;
        } else if (e == 'u') {
            unsigned cp;
            size_t used = unicode_escape(c->src, i + 1, c->len, &cp);
            if (used == 0) {
                fail_at(c, i, "expected \\u and 4 hex digits (a valid code point)");
                return 0;
            }
            char buf[4];
            size_t m = utf8_put(cp, buf);
            if (out)
                memcpy(out + k, buf, m);
            k += m, i += 1 + used;
        } else {
            {
                fail_at(c, i,
                        "unknown escape in a string (expected \\\" \\\\ \\/ \\n "
                        "\\t \\r or \\uXXXX)");
                return 0;
            }
        }
    }
    if (i >= c->len) {
        fail_at(c, start, "unterminated string (expected '\"')");
        return 0;
    }
    if (n)
        *n = k;
    return i + 1;
}

static size_t scan_number(cctx *c, size_t i)
{
    while (i < c->len && is_digit((unsigned char)c->src[i]))
        i++;
    if (i < c->len && c->src[i] == '.') {
        if (i + 1 >= c->len || !is_digit((unsigned char)c->src[i + 1])) {
            fail_at(c, i + 1, "expected a digit after '.'");
            return 0;
        }
        i++;
        while (i < c->len && is_digit((unsigned char)c->src[i]))
            i++;
    }
    if (i < c->len && (c->src[i] == 'e' || c->src[i] == 'E')) {
        size_t j = i + 1;
        if (j < c->len && (c->src[j] == '+' || c->src[j] == '-'))
            j++;
        if (j >= c->len || !is_digit((unsigned char)c->src[j])) {
            fail_at(c, j, "expected a digit in the exponent");
            return 0;
        }
        i = j;
        while (i < c->len && is_digit((unsigned char)c->src[i]))
            i++;
    }
    if (i < c->len && (is_alpha((unsigned char)c->src[i]) || c->src[i] == '_')) {
        /* "5and" is a typo, not "5 and" */
        fail_at(c, i, "unexpected '%c' after a number", c->src[i]);
        return 0;
    }
    return i;
}

/* The character at byte i for an "unexpected character" message. */
static void char_text(const cctx *c, size_t i, char *buf, size_t n)
{
    unsigned char ch = (unsigned char)c->src[i];
    if (ch >= 0x21 && ch < 0x7F) {
        snprintf(buf, n, "'%c'", ch);
        return;
    }
    size_t m = utf8_seq_len((const unsigned char *)c->src + i, c->len - i);
    unsigned cp = ch;
    if (m == 2)
        cp = ((ch & 0x1Fu) << 6) | (c->src[i + 1] & 0x3Fu);
    else if (m == 3)
        cp = ((ch & 0x0Fu) << 12) | ((c->src[i + 1] & 0x3Fu) << 6) | (c->src[i + 2] & 0x3Fu);
    else if (m == 4)
        cp = ((ch & 0x07u) << 18) | ((c->src[i + 1] & 0x3Fu) << 12) |
             ((c->src[i + 2] & 0x3Fu) << 6) | (c->src[i + 3] & 0x3Fu);
    snprintf(buf, n, "U+%04X", cp);
}

/* Reads the next token into c->cur; on a lexical error records it and returns -1. */
static int next(cctx *c)
{
    skip_space(c);
    token t = {T_EOF, c->pos, c->pos};
    if (c->pos >= c->len) {
        c->cur = t;
        return 0;
    }
    size_t i = c->pos;
    int ch = (unsigned char)c->src[i];
    static const char singles[] = "(),+-*/";
    static const int single_kinds[] = {T_LP, T_RP, T_COMMA, T_PLUS, T_MINUS, T_STAR, T_SLASH};
    const char *sp = ch ? strchr(singles, ch) : NULL;
    if (sp != NULL) {
        t.kind = single_kinds[sp - singles];
        t.end = i + 1;
    } else if (ch == '=' || ch == '!' || ch == '<' || ch == '>') {
        int eq = i + 1 < c->len && c->src[i + 1] == '=';
        if (ch == '!' && !eq)
            return fail_at(c, i, "expected '!=' (write 'not' for negation)");
        t.kind = ch == '='   ? (eq ? T_EQEQ : T_EQ)
                 : ch == '!' ? T_NE
                 : ch == '<' ? (eq ? T_LE : T_LT)
                             : (eq ? T_GE : T_GT);
        t.end = i + 1 + (size_t)eq;
    } else if (is_digit(ch)) {
        t.kind = T_NUM;
        if ((t.end = scan_number(c, i)) == 0)
            return -1;
    } else if (ch == '"') {
        t.kind = T_STR;
        if ((t.end = scan_string(c, i, NULL, NULL)) == 0)
            return -1;
    } else if (is_alpha(ch) || ch == '_') {
        size_t j = i + 1;
        while (j < c->len && (is_alpha((unsigned char)c->src[j]) ||
                              is_digit((unsigned char)c->src[j]) || c->src[j] == '_'))
            j++;
        t.kind = T_IDENT;
        t.end = j;
        for (size_t k = 0; k < N_KEYWORDS; k++)
            if (strlen(keywords[k]) == j - i && memcmp(keywords[k], c->src + i, j - i) == 0)
                t.kind = T_AND + (int)k;
    } else if (ch == '`') {
        size_t j = i + 1;
        while (j < c->len && c->src[j] != '`')
            j++;
        if (j >= c->len)
            return fail_at(c, i, "unterminated quoted operand name (expected '`')");
        if (j == i + 1)
            return fail_at(c, i, "empty quoted operand name");
        t.kind = T_QIDENT;
        t.end = j + 1;
    } else if (ch == '@') {
        size_t j = i + 1;
        while (j < c->len && listname_char((unsigned char)c->src[j], j == i + 1))
            j++;
        if (j == i + 1)
            return fail_at(c, i + 1, "expected a list name after '@'");
        if (j - i - 1 > RULES_LISTNAME_MAX)
            return fail_at(c, i, "list name longer than %d bytes", RULES_LISTNAME_MAX);
        t.kind = T_LIST;
        t.end = j;
    } else {
        char buf[16];
        char_text(c, i, buf, sizeof buf);
        return fail_at(c, i, "unexpected character %s", buf);
    }
    c->pos = t.end;
    c->cur = t;
    return 0;
}

/* ---- parser ---------------------------------------------------------------------------------- */

static int new_node(cctx *c, int kind, int type, size_t pos, int a, int b)
{
    if (c->n_nodes == c->cap_nodes &&
        dynbuf_grow_array((void **)&c->nodes, &c->cap_nodes, c->n_nodes + 1, sizeof *c->nodes,
                          (size_t)1 << 20) != DYNBUF_OK)
        return fail_nomem(c);
    node *n = &c->nodes[c->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->type = (uint8_t)type;
    n->pos = (uint32_t)pos;
    n->a = a;
    n->b = b;
    return (int)c->n_nodes++;
}

static const char *type_name(int ty)
{
    return ty == TY_NUM ? "a number" : ty == TY_STR ? "a string" : "a condition";
}

/* Makes node n a condition (a number n becomes "n present and != 0"); what names the operator
 * for the message. */
static int as_cond(cctx *c, int n, const char *what)
{
    if (n < 0)
        return -1;
    if (c->nodes[n].type == TY_BOOL)
        return n;
    if (c->nodes[n].type == TY_NUM)
        return new_node(c, N_TRUTH, TY_BOOL, c->nodes[n].pos, n, -1);
    return fail_at(c, c->nodes[n].pos, "%s needs a condition or a number, got a string", what);
}

static int parse_or(cctx *c);

/* Enters one level of nesting at byte pos; -1 past RULES_DEPTH_MAX. */
static int enter(cctx *c, size_t pos)
{
    if (++c->depth > RULES_DEPTH_MAX)
        return fail_at(c, pos, "expression nested deeper than %d levels", RULES_DEPTH_MAX);
    return 0;
}

static int expect_value_error(cctx *c)
{
    char buf[48];
    return fail_at(c, c->cur.start,
                   "expected a value (an operand, a number, a string, true, false, is_missing or "
                   "'(') but found %s",
                   tok_text(c, &c->cur, buf, sizeof buf));
}

/* An identifier token as an operand: its slot, or an error naming it. */
static int operand(cctx *c)
{
    const token t = c->cur;
    const char *name = c->src + t.start;
    size_t len = t.end - t.start;
    if (t.kind == T_QIDENT)
        name++, len -= 2;
    for (size_t i = 0; i < c->cat->n_operands; i++) {
        const rules_operand *o = &c->cat->operands[i];
        if (o->name != NULL && strlen(o->name) == len && memcmp(o->name, name, len) == 0) {
            if (o->type != RULES_NUMBER && o->type != RULES_STRING)
                break;
            int n = new_node(c, N_SLOT, o->type == RULES_NUMBER ? TY_NUM : TY_STR, t.start, -1, -1);
            if (n < 0)
                return -1;
            c->nodes[n].x = (uint32_t)i;
            if (o->flags & RULES_OPERAND_SCORE)
                c->uses_score = 1;
            return next(c) < 0 ? -1 : n;
        }
    }
    int shown = len > 64 ? 64 : (int)len;
    for (size_t k = 0; k < N_KEYWORDS; k++) {
        if (strlen(keywords[k]) == len && strncasecmp(keywords[k], name, len) == 0)
            return fail_at(c, t.start, "unknown operand '%.*s' (keywords are lower case: '%s')",
                           shown, name, keywords[k]);
    }
    return fail_at(c, t.start, "unknown operand '%.*s'", shown, name);
}

static int number_literal(cctx *c, int negate, size_t pos)
{
    size_t len = c->cur.end - c->cur.start;
    memcpy(c->tmp, c->src + c->cur.start, len);
    c->tmp[len] = 0;
    double v = strtod(c->tmp, NULL);
    if (!isfinite(v))
        return fail_at(c, c->cur.start, "number out of range");
    int n = new_node(c, N_NUM, TY_NUM, pos, -1, -1);
    if (n < 0 || POOL_PUSH(c, nums, n_nums, cap_nums) < 0)
        return -1;
    c->nums[c->n_nums - 1] = negate ? -v : v;
    c->nodes[n].x = (uint32_t)(c->n_nums - 1);
    return next(c) < 0 ? -1 : n;
}

static int string_literal(cctx *c)
{
    size_t n_bytes = 0, start = c->cur.start;
    /* the decoded text is never longer than the literal */
    if (dynbuf_reserve(&c->arena, c->cur.end - start + 1) != DYNBUF_OK)
        return fail_nomem(c);
    uint32_t off = (uint32_t)c->arena.len;
    if (scan_string(c, start, c->arena.p + off, &n_bytes) == 0)
        return -1;
    c->arena.len += n_bytes;
    if (dynbuf_append(&c->arena, "", 1) != DYNBUF_OK)
        return fail_nomem(c);
    int n = new_node(c, N_STR, TY_STR, start, -1, -1);
    if (n < 0 || POOL_PUSH(c, strs, n_strs, cap_strs) < 0)
        return -1;
    c->strs[c->n_strs - 1] = (strref){off, (uint32_t)n_bytes};
    c->nodes[n].x = (uint32_t)(c->n_strs - 1);
    return next(c) < 0 ? -1 : n;
}

static int parse_primary(cctx *c)
{
    token t = c->cur;
    switch (t.kind) {
    case T_NUM:
        return number_literal(c, 0, t.start);
    case T_STR:
        return string_literal(c);
    case T_TRUE:
    case T_FALSE: {
        int n = new_node(c, N_BOOL, TY_BOOL, t.start, -1, -1);
        if (n < 0)
            return -1;
        c->nodes[n].x = t.kind == T_TRUE;
        return next(c) < 0 ? -1 : n;
    }
    case T_IDENT:
    case T_QIDENT:
        return operand(c);
    case T_ISMISSING: {
        if (next(c) < 0 || enter(c, t.start) < 0)
            return -1;
        if (c->cur.kind != T_LP) {
            char buf[48];
            return fail_at(c, c->cur.start, "expected '(' after is_missing but found %s",
                           tok_text(c, &c->cur, buf, sizeof buf));
        }
        size_t lp = c->cur.start;
        if (next(c) < 0)
            return -1;
        int a = parse_or(c);
        if (a < 0)
            return -1;
        if (c->cur.kind != T_RP) {
            char buf[48];
            return fail_at(c, c->cur.start, "expected ')' to close '(' at column %d but found %s",
                           column_of(c, lp), tok_text(c, &c->cur, buf, sizeof buf));
        }
        if (c->nodes[a].type == TY_BOOL)
            return fail_at(c, c->nodes[a].pos, "is_missing takes a value, got a condition");
        c->depth--;
        int n = new_node(c, N_MISS, TY_BOOL, t.start, a, -1);
        return n < 0 || next(c) < 0 ? -1 : n;
    }
    case T_LP: {
        if (enter(c, t.start) < 0 || next(c) < 0)
            return -1;
        int a = parse_or(c);
        if (a < 0)
            return -1;
        if (c->cur.kind != T_RP) {
            char buf[48];
            return fail_at(c, c->cur.start, "expected ')' to close '(' at column %d but found %s",
                           column_of(c, t.start), tok_text(c, &c->cur, buf, sizeof buf));
        }
        c->depth--;
        c->nodes[a].pos = (uint32_t)t.start;
        return next(c) < 0 ? -1 : a;
    }
    default:
        return expect_value_error(c);
    }
}

static int parse_unary(cctx *c)
{
    if (c->cur.kind != T_MINUS)
        return parse_primary(c);
    size_t pos = c->cur.start;
    if (enter(c, pos) < 0 || next(c) < 0)
        return -1;
    int a = parse_unary(c);
    if (a < 0)
        return -1;
    c->depth--;
    if (c->nodes[a].type != TY_NUM)
        return fail_at(c, c->nodes[a].pos, "'-' needs a number, got %s",
                       type_name(c->nodes[a].type));
    return new_node(c, N_NEG, TY_NUM, pos, a, -1);
}

static const char *tok_op_text(int kind)
{
    switch (kind) {
    case T_PLUS:
        return "'+'";
    case T_MINUS:
        return "'-'";
    case T_STAR:
        return "'*'";
    case T_SLASH:
        return "'/'";
    case T_EQ:
        return "'='";
    case T_EQEQ:
        return "'=='";
    case T_NE:
        return "'!='";
    case T_LT:
        return "'<'";
    case T_LE:
        return "'<='";
    case T_GT:
        return "'>'";
    default:
        return "'>='";
    }
}

/* The instruction of an arithmetic operator token. */
static int arith_op(int kind)
{
    return kind == T_PLUS ? OP_ADD : kind == T_MINUS ? OP_SUB : kind == T_STAR ? OP_MUL : OP_DIV;
}

/* The arithmetic node a <kind> b, both operands numbers (else a compile error at the first
 * operand that is not); the node index or -1. */
static int arith_node(cctx *c, int kind, int a, int b)
{
    for (int side = 0; side < 2; side++) {
        const node *n = &c->nodes[side ? b : a];
        if (n->type != TY_NUM)
            return fail_at(c, n->pos, "%s needs numbers, got %s", tok_op_text(kind),
                           type_name(n->type));
    }
    int r = new_node(c, N_ARITH, TY_NUM, c->nodes[a].pos, a, b);
    if (r >= 0)
        c->nodes[r].op = (uint8_t)arith_op(kind);
    return r;
}

static int parse_product(cctx *c)
{
    int a = parse_unary(c);
    while (a >= 0 && (c->cur.kind == T_STAR || c->cur.kind == T_SLASH)) {
        int kind = c->cur.kind;
        if (next(c) < 0)
            return -1;
        int b = parse_unary(c);
        if (b < 0)
            return -1;
        a = arith_node(c, kind, a, b);
    }
    return a;
}

static int parse_sum(cctx *c)
{
    int a = parse_product(c);
    while (a >= 0 && (c->cur.kind == T_PLUS || c->cur.kind == T_MINUS)) {
        int kind = c->cur.kind;
        if (next(c) < 0)
            return -1;
        int b = parse_product(c);
        if (b < 0)
            return -1;
        a = arith_node(c, kind, a, b);
    }
    return a;
}

/* The program list index of catalogue list ci (added on first use). */
static int program_list(cctx *c, size_t ci)
{
    for (size_t i = 0; i < c->n_lists; i++)
        if (c->list_cat[i] == ci)
            return (int)i;
    if (POOL_PUSH(c, lists, n_lists, cap_lists) < 0 ||
        pool_room(c, (void **)&c->list_cat, &c->cap_list_cat, c->n_lists - 1, sizeof(uint32_t)) < 0)
        return -1;
    const char *name = c->cat->lists[ci].name;
    uint32_t off;
    if (arena_put(c, name, strlen(name), &off) < 0)
        return -1;
    c->lists[c->n_lists - 1] = (list_rec){off, (uint32_t)c->cat->lists[ci].kind};
    c->list_cat[c->n_lists - 1] = (uint32_t)ci;
    return (int)(c->n_lists - 1);
}

/* `a [not] in @list` with the @list token current. */
static int in_list(cctx *c, int a, int neg)
{
    token t = c->cur;
    const char *name = c->src + t.start + 1;
    size_t len = t.end - t.start - 1;
    if (c->nodes[a].kind != N_SLOT)
        return fail_at(c, c->nodes[a].pos,
                       "the left of 'in @%.*s' must be an operand name (lists hold values of one "
                       "field)",
                       (int)len, name);
    size_t ci = 0;
    for (; ci < c->cat->n_lists; ci++) {
        const char *ln = c->cat->lists[ci].name;
        if (ln != NULL && strlen(ln) == len && memcmp(ln, name, len) == 0)
            break;
    }
    if (ci == c->cat->n_lists)
        return fail_at(c, t.start, "unknown list '@%.*s'", (int)len, name);
    listset_kind kind = c->cat->lists[ci].kind;
    int want = kind == LISTSET_NUMBER ? TY_NUM : TY_STR;
    if (kind != LISTSET_NUMBER && kind != LISTSET_STRING && kind != LISTSET_IP)
        return fail_at(c, t.start, "list '@%.*s' has no valid kind", (int)len, name);
    if (c->nodes[a].type != want)
        return fail_at(c, c->nodes[a].pos, "'@%.*s' is a list of kind %s: it takes %s, got %s",
                       (int)len, name, listset_kind_name(kind), type_name(want),
                       type_name(c->nodes[a].type));
    int li = program_list(c, ci);
    if (li < 0)
        return -1;
    uint32_t slot = c->nodes[a].x;
    size_t k = 0;
    while (k < c->n_probes && !(c->probes[k].list == (uint32_t)li && c->probes[k].slot == slot))
        k++;
    if (k == c->n_probes) {
        if (POOL_PUSH(c, probes, n_probes, cap_probes) < 0)
            return -1;
        c->probes[k] = (probe_rec){(uint32_t)li, slot};
    }
    int n = new_node(c, N_PROBE, TY_BOOL, c->nodes[a].pos, -1, -1);
    if (n < 0)
        return -1;
    c->nodes[n].x = (uint32_t)k;
    c->nodes[n].y = slot;
    c->nodes[n].neg = (uint8_t)neg;
    return next(c) < 0 ? -1 : n;
}

/* One literal of `in (...)` of type want, appended to the constant pool. */
static int set_literal(cctx *c, int want)
{
    char buf[48];
    int neg = 0;
    size_t pos = c->cur.start;
    if (c->cur.kind == T_MINUS) {
        neg = 1;
        if (next(c) < 0)
            return -1;
        if (c->cur.kind != T_NUM)
            return fail_at(c, c->cur.start, "expected a number after '-' but found %s",
                           tok_text(c, &c->cur, buf, sizeof buf));
    }
    if (c->cur.kind != T_NUM && c->cur.kind != T_STR)
        return fail_at(c, c->cur.start, "expected a literal (a number or a string) but found %s",
                       tok_text(c, &c->cur, buf, sizeof buf));
    int got = c->cur.kind == T_NUM ? TY_NUM : TY_STR;
    if (got != want)
        return fail_at(c, pos, "expected %s literal (the left of 'in' is %s) but found %s",
                       want == TY_NUM ? "a number" : "a string", type_name(want), type_name(got));
    int n = got == TY_NUM ? number_literal(c, neg, pos) : string_literal(c);
    if (n >= 0)
        c->n_nodes--; /* the constant stays in its pool; the node is not needed */
    return n < 0 ? -1 : 0;
}

/* `a [not] in ( literal, ... )` with '(' current.  The literals are consecutive in their pool. */
static int in_set(cctx *c, int a, int neg)
{
    char buf[48];
    int want = c->nodes[a].type;
    if (want == TY_BOOL)
        return fail_at(c, c->nodes[a].pos, "the left of 'in' must be a value, got a condition");
    size_t lp = c->cur.start;
    size_t first = want == TY_NUM ? c->n_nums : c->n_strs;
    if (next(c) < 0)
        return -1;
    for (;;) {
        if (set_literal(c, want) < 0)
            return -1;
        if (c->cur.kind == T_RP)
            break;
        if (c->cur.kind != T_COMMA)
            return fail_at(c, c->cur.start,
                           "expected ',' or ')' to close '(' at column %d but found %s",
                           column_of(c, lp), tok_text(c, &c->cur, buf, sizeof buf));
        if (next(c) < 0)
            return -1;
    }
    size_t count = (want == TY_NUM ? c->n_nums : c->n_strs) - first;
    int n = new_node(c, N_INSET, TY_BOOL, c->nodes[a].pos, a, -1);
    if (n < 0)
        return -1;
    c->nodes[n].x = (uint32_t)first;
    c->nodes[n].y = (uint32_t)count;
    c->nodes[n].neg = (uint8_t)neg;
    return next(c) < 0 ? -1 : n;
}

static int is_cmp(int kind)
{
    return kind >= T_EQ && kind <= T_GE;
}

static int parse_cmp(cctx *c)
{
    char buf[48];
    int a = parse_sum(c);
    if (a < 0)
        return -1;
    int kind = c->cur.kind;
    if (kind == T_NOT || kind == T_IN) {
        int neg = kind == T_NOT;
        if (neg) {
            if (next(c) < 0)
                return -1;
            if (c->cur.kind != T_IN)
                return fail_at(c, c->cur.start, "expected 'in' after 'not' but found %s",
                               tok_text(c, &c->cur, buf, sizeof buf));
        }
        if (next(c) < 0)
            return -1;
        if (c->cur.kind == T_LIST)
            a = in_list(c, a, neg);
        else if (c->cur.kind == T_LP)
            a = in_set(c, a, neg);
        else
            return fail_at(c, c->cur.start, "expected '@list' or '(' after 'in' but found %s",
                           tok_text(c, &c->cur, buf, sizeof buf));
    } else if (is_cmp(kind)) {
        size_t oppos = c->cur.start;
        if (next(c) < 0)
            return -1;
        int b = parse_sum(c);
        if (b < 0)
            return -1;
        int ta = c->nodes[a].type, tb = c->nodes[b].type;
        int ordered = kind == T_LT || kind == T_LE || kind == T_GT || kind == T_GE;
        if (ta == TY_BOOL || tb == TY_BOOL)
            return fail_at(c, c->nodes[ta == TY_BOOL ? a : b].pos,
                           "%s compares values, got a condition (combine conditions with and/or/"
                           "not)",
                           tok_op_text(kind));
        if (ordered && (ta != TY_NUM || tb != TY_NUM))
            return fail_at(c, c->nodes[ta != TY_NUM ? a : b].pos, "%s needs numbers, got a string",
                           tok_op_text(kind));
        if (ta != tb)
            return fail_at(c, oppos, "%s cannot compare %s with %s", tok_op_text(kind),
                           type_name(ta), type_name(tb));
        static const int num_ops[] = {OP_EQN, OP_EQN, OP_NEN, OP_LTN, OP_LEN, OP_GTN, OP_GEN};
        int op = num_ops[kind - T_EQ];
        if (ta == TY_STR)
            op = op == OP_EQN ? OP_EQS : OP_NES;
        size_t pos = c->nodes[a].pos;
        a = new_node(c, N_CMP, TY_BOOL, pos, a, b);
        if (a < 0)
            return -1;
        c->nodes[a].op = (uint8_t)op;
    } else {
        return a;
    }
    if (a >= 0 && (is_cmp(c->cur.kind) || c->cur.kind == T_IN))
        return fail_at(c, c->cur.start,
                       "comparisons do not chain: expected 'and', 'or', ')' or "
                       "the end of the rule but found %s",
                       tok_text(c, &c->cur, buf, sizeof buf));
    return a;
}

static int parse_not(cctx *c)
{
    if (c->cur.kind != T_NOT)
        return parse_cmp(c);
    size_t pos = c->cur.start;
    if (enter(c, pos) < 0 || next(c) < 0)
        return -1;
    int a = as_cond(c, parse_not(c), "'not'");
    if (a < 0)
        return -1;
    c->depth--;
    return new_node(c, N_NOT, TY_BOOL, pos, a, -1);
}

static int parse_and(cctx *c)
{
    int a = parse_not(c);
    while (a >= 0 && c->cur.kind == T_AND) {
        if ((a = as_cond(c, a, "'and'")) < 0 || next(c) < 0)
            return -1;
        int b = as_cond(c, parse_not(c), "'and'");
        if (b < 0)
            return -1;
        a = new_node(c, N_AND, TY_BOOL, c->nodes[a].pos, a, b);
    }
    return a;
}

static int parse_or(cctx *c)
{
    int a = parse_and(c);
    while (a >= 0 && c->cur.kind == T_OR) {
        if ((a = as_cond(c, a, "'or'")) < 0 || next(c) < 0)
            return -1;
        int b = as_cond(c, parse_and(c), "'or'");
        if (b < 0)
            return -1;
        a = new_node(c, N_OR, TY_BOOL, c->nodes[a].pos, a, b);
    }
    return a;
}

/* ---- code generation ------------------------------------------------------------------------- */

static int emit(cctx *c, int op, int neg, uint32_t a, uint32_t b)
{
    if (POOL_PUSH(c, code, n_code, cap_code) < 0)
        return -1;
    c->code[c->n_code - 1] = (insn){(uint8_t)op, (uint8_t)neg, 0, a, b};
    return (int)(c->n_code - 1);
}

/* Emits node n; returns the stack depth it needs, or -1. */
static int gen(cctx *c, int n)
{
    const node nd = c->nodes[n];
    int da, db;
    switch (nd.kind) {
    case N_NUM:
        return emit(c, OP_NUM, 0, nd.x, 0) < 0 ? -1 : 1;
    case N_STR:
        return emit(c, OP_STR, 0, nd.x, 0) < 0 ? -1 : 1;
    case N_BOOL:
        return emit(c, OP_BOOL, 0, nd.x, 0) < 0 ? -1 : 1;
    case N_SLOT:
        return emit(c, nd.type == TY_NUM ? OP_LDN : OP_LDS, 0, nd.x, 0) < 0 ? -1 : 1;
    case N_PROBE:
        return emit(c, OP_PROBE, nd.neg, nd.x, nd.y) < 0 ? -1 : 1;
    case N_NEG:
    case N_TRUTH:
    case N_NOT:
    case N_MISS:
    case N_INSET: {
        if ((da = gen(c, nd.a)) < 0)
            return -1;
        int op = nd.kind == N_NEG     ? OP_NEG
                 : nd.kind == N_TRUTH ? OP_TRUTH
                 : nd.kind == N_NOT   ? OP_NOT
                 : nd.kind == N_MISS  ? (c->nodes[nd.a].type == TY_NUM ? OP_MISSN : OP_MISSS)
                                      : (c->nodes[nd.a].type == TY_NUM ? OP_INN : OP_INS);
        return emit(c, op, nd.neg, nd.x, nd.y) < 0 ? -1 : da;
    }
    case N_AND:
    case N_OR: {
        if ((da = gen(c, nd.a)) < 0)
            return -1;
        int j = emit(c, nd.kind == N_AND ? OP_ANDJ : OP_ORJ, 0, 0, 0);
        if (j < 0 || (db = gen(c, nd.b)) < 0)
            return -1;
        c->code[j].a = (uint32_t)c->n_code;
        return da > db ? da : db;
    }
    default: /* N_ARITH, N_CMP */
        if ((da = gen(c, nd.a)) < 0 || (db = gen(c, nd.b)) < 0)
            return -1;
        if (emit(c, nd.op, 0, 0, 0) < 0)
            return -1;
        return da > db + 1 ? da : db + 1;
    }
}

/* ---- compiling a policy ---------------------------------------------------------------------- */

/* Skips an optional "<action> if" prefix, which must agree with the rule's action. */
static int action_prefix(cctx *c, rules_action action)
{
    int kind = c->cur.kind;
    if (kind != T_ALLOW && kind != T_REVIEW && kind != T_BLOCK)
        return 0;
    token t = c->cur;
    rules_action said = kind == T_ALLOW    ? RULES_ALLOW
                        : kind == T_REVIEW ? RULES_REVIEW
                                           : RULES_BLOCK;
    if (next(c) < 0)
        return -1;
    if (c->cur.kind != T_IF) {
        char buf[48];
        return fail_at(c, c->cur.start, "expected 'if' after '%s' but found %s", action_names[said],
                       tok_text(c, &c->cur, buf, sizeof buf));
    }
    if (said != action)
        return fail_at(c, t.start, "the rule's text says '%s' but its action is '%s'",
                       action_names[said], rules_action_name(action));
    return next(c);
}

/* Compiles rule i into the pools. */
static int compile_rule(cctx *c, const rules_spec *r, size_t i)
{
    c->rule = (int)i;
    c->src = r->when != NULL ? r->when : "";
    c->len = r->when != NULL ? r->when_len : 0;
    c->pos = 0;
    c->depth = 0;
    c->uses_score = 0;
    c->n_nodes = 0;
    if ((unsigned)r->action > RULES_BLOCK)
        return fail_at(c, SIZE_MAX, "unknown action (expected allow, review or block)");
    if ((unsigned)r->mode > RULES_SHADOW)
        return fail_at(c, SIZE_MAX, "unknown mode (expected active or shadow)");
    if (c->len > RULES_WHEN_MAX)
        return fail_at(c, SIZE_MAX, "the rule is longer than %d bytes", RULES_WHEN_MAX);
    for (size_t k = 0; k < c->len;) {
        size_t m = utf8_seq_len((const unsigned char *)c->src + k, c->len - k);
        if (m == 0)
            return fail_at(c, k, "the rule is not valid UTF-8");
        k += m;
    }
    if (next(c) < 0 || action_prefix(c, r->action) < 0)
        return -1;
    size_t start = c->cur.start;
    int root = parse_or(c);
    if (root < 0)
        return -1;
    if (c->cur.kind != T_EOF) {
        char buf[48];
        return fail_at(c, c->cur.start,
                       "expected an operator, 'and', 'or' or the end of the rule but found %s",
                       tok_text(c, &c->cur, buf, sizeof buf));
    }
    if (c->nodes[root].type == TY_STR)
        return fail_at(c, start, "a rule must be a condition or a number, got a string");
    if ((root = as_cond(c, root, "a rule")) < 0)
        return -1;
    uint32_t code = (uint32_t)c->n_code;
    int depth = gen(c, root);
    if (depth < 0)
        return -1;
    if (depth > STACK_MAX)
        return fail_at(c, start, "expression needs more than %d stack entries", STACK_MAX);
    uint32_t name;
    if (arena_put(c, r->name, strlen(r->name), &name) < 0)
        return -1;
    c->rules[i] = (rule_rec){name,
                             code,
                             (uint32_t)c->n_code,
                             (uint8_t)r->action,
                             (uint8_t)r->mode,
                             (uint8_t)c->uses_score,
                             0};
    return 0;
}

/* Names: valid and unique across the policy. */
static int check_names(cctx *c, const rules_spec *rules, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        c->rule = (int)i;
        c->src = "";
        c->len = 0;
        const char *nm = rules[i].name;
        if (nm == NULL || !rules_name_valid(nm, strlen(nm)))
            return fail_at(c, SIZE_MAX,
                           "invalid rule name (expected 1..%d characters of A-Z a-z 0-9 _ . : -)",
                           RULES_NAME_MAX);
        for (size_t j = 0; j < i; j++)
            if (strcmp(rules[j].name, nm) == 0)
                return fail_at(c, SIZE_MAX, "duplicate rule name '%s' (also rule %zu)", nm, j);
    }
    return 0;
}

/* Copies the pools into one block. */
static int assemble(cctx *c, size_t n, rules_program **out)
{
#define ALIGN8(x) (((x) + 7) & ~(size_t)7)
    size_t off_rules = ALIGN8(sizeof(rules_program));
    size_t off_code = ALIGN8(off_rules + n * sizeof(rule_rec));
    size_t off_nums = ALIGN8(off_code + c->n_code * sizeof(insn));
    size_t off_strs = ALIGN8(off_nums + c->n_nums * sizeof(double));
    size_t off_lists = ALIGN8(off_strs + c->n_strs * sizeof(strref));
    size_t off_probes = ALIGN8(off_lists + c->n_lists * sizeof(list_rec));
    size_t off_arena = ALIGN8(off_probes + c->n_probes * sizeof(probe_rec));
    size_t total = off_arena + c->arena.len + 1;
#undef ALIGN8
    char *blk = calloc(1, total);
    if (blk == NULL)
        return fail_nomem(c);
    rules_program *p = (rules_program *)blk;
    p->bytes = total;
    p->n_rules = (uint32_t)n;
    p->n_lists = (uint32_t)c->n_lists;
    p->n_probes = (uint32_t)c->n_probes;
    p->n_slots = (uint32_t)c->cat->n_operands;
    if (n)
        memcpy(blk + off_rules, c->rules, n * sizeof(rule_rec));
    if (c->n_code)
        memcpy(blk + off_code, c->code, c->n_code * sizeof(insn));
    if (c->n_nums)
        memcpy(blk + off_nums, c->nums, c->n_nums * sizeof(double));
    if (c->n_strs)
        memcpy(blk + off_strs, c->strs, c->n_strs * sizeof(strref));
    if (c->n_lists)
        memcpy(blk + off_lists, c->lists, c->n_lists * sizeof(list_rec));
    if (c->n_probes)
        memcpy(blk + off_probes, c->probes, c->n_probes * sizeof(probe_rec));
    if (c->arena.len)
        memcpy(blk + off_arena, c->arena.p, c->arena.len);
    p->rules = (const rule_rec *)(blk + off_rules);
    p->code = (const insn *)(blk + off_code);
    p->nums = (const double *)(blk + off_nums);
    p->strs = (const strref *)(blk + off_strs);
    p->lists = (const list_rec *)(blk + off_lists);
    p->probes = (const probe_rec *)(blk + off_probes);
    p->arena = blk + off_arena;
    for (size_t i = 0; i < n; i++)
        if (c->rules[i].uses_score)
            p->score_mask[i / 64] |= (uint64_t)1 << (i % 64);
    *out = p;
    return 0;
}

int rules_compile(const rules_spec *rules, size_t n, const rules_catalog *cat, rules_program **out,
                  rules_error *err)
{
    cctx c;
    memset(&c, 0, sizeof c);
    c.cat = cat;
    c.err = err;
    c.rule = -1;
    *out = NULL;
    if (err)
        memset(err, 0, sizeof *err);
    dynbuf_init(&c.arena, (size_t)UINT32_MAX / 2);
    if (n > RULES_MAX) {
        fail_at(&c, SIZE_MAX, "a policy holds at most %d rules, got %zu", RULES_MAX, n);
        goto done;
    }
    if (check_names(&c, rules, n) < 0)
        goto done;
    c.tmp = malloc(RULES_WHEN_MAX + 1);
    c.rules = calloc(n ? n : 1, sizeof *c.rules);
    if (c.tmp == NULL || c.rules == NULL) {
        fail_nomem(&c);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        if (compile_rule(&c, &rules[i], i) < 0)
            goto done;
    c.rule = -1;
    assemble(&c, n, out);
done:
    free(c.nodes);
    free(c.tmp);
    free(c.code);
    free(c.nums);
    free(c.strs);
    free(c.lists);
    free(c.list_cat);
    free(c.probes);
    free(c.rules);
    dynbuf_free(&c.arena);
    return c.status;
}

void rules_free(rules_program *p)
{
    free(p);
}

/* ---- reading a program ----------------------------------------------------------------------- */

size_t rules_count(const rules_program *p)
{
    return p ? p->n_rules : 0;
}

const char *rules_rule_name(const rules_program *p, size_t i)
{
    return i < rules_count(p) ? p->arena + p->rules[i].name : NULL;
}

rules_action rules_rule_action(const rules_program *p, size_t i)
{
    return i < rules_count(p) ? (rules_action)p->rules[i].action : RULES_ALLOW;
}

rules_mode rules_rule_mode(const rules_program *p, size_t i)
{
    return i < rules_count(p) ? (rules_mode)p->rules[i].mode : RULES_SHADOW;
}

int rules_rule_uses_score(const rules_program *p, size_t i)
{
    return i < rules_count(p) ? p->rules[i].uses_score : 0;
}

size_t rules_program_bytes(const rules_program *p)
{
    return p ? p->bytes : 0;
}

size_t rules_list_count(const rules_program *p)
{
    return p ? p->n_lists : 0;
}

const char *rules_list_name(const rules_program *p, size_t li)
{
    return li < rules_list_count(p) ? p->arena + p->lists[li].name : NULL;
}

listset_kind rules_list_kind(const rules_program *p, size_t li)
{
    return li < rules_list_count(p) ? (listset_kind)p->lists[li].kind : 0;
}

size_t rules_probe_count(const rules_program *p)
{
    return p ? p->n_probes : 0;
}

size_t rules_probe_list(const rules_program *p, size_t k)
{
    return k < rules_probe_count(p) ? p->probes[k].list : 0;
}

size_t rules_probe_slot(const rules_program *p, size_t k)
{
    return k < rules_probe_count(p) ? p->probes[k].slot : 0;
}

/* ---- evaluation ------------------------------------------------------------------------------ */

void rules_probe_resolve(const rules_program *p, const rules_value *slots,
                         const listset *const *sets, uint8_t *probes)
{
    for (size_t k = 0; k < rules_probe_count(p); k++) {
        const probe_rec *pr = &p->probes[k];
        const rules_value *v = &slots[pr->slot];
        const listset *s = sets ? sets[pr->list] : NULL;
        listset_kind kind = (listset_kind)p->lists[pr->list].kind;
        int missing = kind == LISTSET_NUMBER
                          ? v->type != RULES_NUMBER || isnan(v->num)
                          : v->type != RULES_STRING || (v->s == NULL && v->len > 0);
        int hit = 0;
        if (!missing && s != NULL) {
            const char *str = v->s ? v->s : "";
            hit = kind == LISTSET_NUMBER ? listset_has_number(s, v->num)
                  : kind == LISTSET_IP   ? listset_has_ip_text(s, str, v->len)
                                         : listset_has_string(s, str, v->len);
        }
        probes[k] = missing ? RULES_PROBE_MISSING : hit ? RULES_PROBE_YES : RULES_PROBE_NO;
    }
}

typedef union val {
    double d;
    struct {
        const char *p; /* NULL: missing */
        uint32_t n;
    } s;
    int b;
} val;

static double slot_num(const rules_value *v)
{
    return v->type == RULES_NUMBER ? v->num : NAN; /* a NaN stays NaN: missing */
}

static val slot_str(const rules_value *v)
{
    val r;
    r.s.p = NULL;
    r.s.n = 0;
    if (v->type == RULES_STRING && (v->s != NULL || v->len == 0)) {
        r.s.p = v->s ? v->s : "";
        r.s.n = v->len;
    }
    return r;
}

static double finite_or_missing(double x)
{
    return isfinite(x) ? x : NAN;
}

static int str_eq(val a, val b)
{
    return a.s.n == b.s.n && memcmp(a.s.p, b.s.p, a.s.n) == 0;
}

/* Runs code[pc..end) and returns the boolean it leaves. */
static int run(const rules_program *p, uint32_t pc, uint32_t end, const rules_value *slots,
               const uint8_t *probes)
{
    val st[STACK_MAX + 1];
    int sp = -1; /* index of the top */
    while (pc < end) {
        const insn *in = &p->code[pc++];
        switch (in->op) {
        case OP_NUM:
            st[++sp].d = p->nums[in->a];
            break;
        case OP_STR:
            ++sp;
            st[sp].s.p = p->arena + p->strs[in->a].off;
            st[sp].s.n = p->strs[in->a].len;
            break;
        case OP_BOOL:
            st[++sp].b = (int)in->a;
            break;
        case OP_LDN:
            st[++sp].d = slot_num(&slots[in->a]);
            break;
        case OP_LDS:
            st[++sp] = slot_str(&slots[in->a]);
            break;
        case OP_NEG:
            st[sp].d = -st[sp].d;
            break;
        case OP_ADD:
            sp--, st[sp].d = finite_or_missing(st[sp].d + st[sp + 1].d);
            break;
        case OP_SUB:
            sp--, st[sp].d = finite_or_missing(st[sp].d - st[sp + 1].d);
            break;
        case OP_MUL:
            sp--, st[sp].d = finite_or_missing(st[sp].d * st[sp + 1].d);
            break;
        case OP_DIV:
            sp--, st[sp].d = finite_or_missing(st[sp].d / st[sp + 1].d);
            break;
        case OP_EQN:
        case OP_NEN:
        case OP_LTN:
        case OP_LEN:
        case OP_GTN:
        case OP_GEN: {
            double x = st[sp - 1].d, y = st[sp].d;
            int r = 0;
            if (!isnan(x) && !isnan(y))
                r = in->op == OP_EQN   ? x == y
                    : in->op == OP_NEN ? x != y
                    : in->op == OP_LTN ? x < y
                    : in->op == OP_LEN ? x <= y
                    : in->op == OP_GTN ? x > y
                                       : x >= y;
            st[--sp].b = r;
            break;
        }
        case OP_EQS:
        case OP_NES: {
            val x = st[sp - 1], y = st[sp];
            int r = 0;
            if (x.s.p != NULL && y.s.p != NULL)
                r = str_eq(x, y) == (in->op == OP_EQS);
            st[--sp].b = r;
            break;
        }
        case OP_TRUTH:
            st[sp].b = !isnan(st[sp].d) && st[sp].d != 0;
            break;
        case OP_NOT:
            st[sp].b = !st[sp].b;
            break;
        case OP_ANDJ:
            if (!st[sp].b)
                pc = in->a;
            else
                sp--;
            break;
        case OP_ORJ:
            if (st[sp].b)
                pc = in->a;
            else
                sp--;
            break;
        case OP_MISSN:
            st[sp].b = isnan(st[sp].d);
            break;
        case OP_MISSS:
            st[sp].b = st[sp].s.p == NULL;
            break;
        case OP_INN: {
            double x = st[sp].d;
            int r = 0;
            if (!isnan(x)) {
                int found = 0;
                for (uint32_t k = 0; k < in->b && !found; k++)
                    found = p->nums[in->a + k] == x;
                r = found != in->neg;
            }
            st[sp].b = r;
            break;
        }
        case OP_INS: {
            val x = st[sp];
            int r = 0;
            if (x.s.p != NULL) {
                int found = 0;
                for (uint32_t k = 0; k < in->b && !found; k++) {
                    val y;
                    y.s.p = p->arena + p->strs[in->a + k].off;
                    y.s.n = p->strs[in->a + k].len;
                    found = str_eq(x, y);
                }
                r = found != in->neg;
            }
            st[sp].b = r;
            break;
        }
        case OP_PROBE: {
            const rules_value *v = &slots[in->b];
            uint8_t pr = probes ? probes[in->a] : RULES_PROBE_MISSING;
            int missing = v->type == RULES_MISSING || (v->type == RULES_NUMBER && isnan(v->num)) ||
                          (pr != RULES_PROBE_YES && pr != RULES_PROBE_NO);
            st[++sp].b = missing ? 0 : (pr == RULES_PROBE_YES) != in->neg;
            break;
        }
        default:
            return 0; /* cannot happen: the compiler emits the ops above */
        }
    }
    return sp >= 0 && st[sp].b;
}

int rules_eval(const rules_program *p, const rules_value *slots, size_t n_slots,
               const uint8_t *probes, unsigned flags, uint64_t matched[RULES_BITMAP_WORDS])
{
    memset(matched, 0, RULES_BITMAP_WORDS * sizeof matched[0]);
    if (p == NULL)
        return 0;
    if (n_slots < p->n_slots)
        return -1;
    for (uint32_t i = 0; i < p->n_rules; i++) {
        const rule_rec *r = &p->rules[i];
        if ((flags & RULES_EVAL_DEGRADED) && r->uses_score)
            continue;
        if (run(p, r->code, r->code_end, slots, probes))
            matched[i / 64] |= (uint64_t)1 << (i % 64);
    }
    return 0;
}

/* ---- deciding -------------------------------------------------------------------------------- */

/* The first active rule of action a that matched (and may decide), or -1. */
static int first_rule(const rules_program *p, const uint64_t *matched, rules_action a, int degraded)
{
    for (uint32_t i = 0; i < rules_count(p); i++) {
        const rule_rec *r = &p->rules[i];
        if (!(matched[i / 64] >> (i % 64) & 1) || r->mode != RULES_ACTIVE || r->action != a)
            continue;
        if (degraded && r->uses_score)
            continue;
        return (int)i;
    }
    return -1;
}

rules_verdict rules_decide(const rules_program *p, const uint64_t matched[RULES_BITMAP_WORDS],
                           const rules_decide_in *in)
{
    rules_verdict v = {RULES_ALLOW, RULES_BY_DEFAULT, -1};
    int deg = in->degraded != 0;
    static const rules_action order[] = {RULES_ALLOW, RULES_BLOCK, RULES_REVIEW};
    for (int k = 0; k < 3; k++) {
        int r = first_rule(p, matched, order[k], deg);
        if (r >= 0) {
            v.decision = order[k];
            v.by = RULES_BY_RULE;
            v.rule = r;
            return v;
        }
        double t = order[k] == RULES_BLOCK ? in->block_threshold : in->review_threshold;
        if (order[k] != RULES_ALLOW && !deg && in->score >= t) { /* NaN: false */
            v.decision = order[k];
            v.by = RULES_BY_SCORE_THRESHOLD;
            return v;
        }
    }
    if (deg) {
        v.decision = in->fallback;
        v.by = RULES_BY_FALLBACK;
    }
    return v;
}

size_t rules_decided_by_text(const rules_program *p, const rules_verdict *v, char *out,
                             size_t outlen)
{
    int n;
    switch (v->by) {
    case RULES_BY_RULE: {
        const char *name = rules_rule_name(p, (size_t)v->rule);
        n = snprintf(out, outlen, "rule:%s", name ? name : "");
        break;
    }
    case RULES_BY_SCORE_THRESHOLD:
        n = snprintf(out, outlen, "score_threshold");
        break;
    case RULES_BY_FALLBACK:
        n = snprintf(out, outlen, "fallback");
        break;
    default:
        n = snprintf(out, outlen, "default");
        break;
    }
    if (n < 0)
        n = 0;
    if (outlen == 0)
        return 0;
    return (size_t)n < outlen ? (size_t)n : outlen - 1;
}
