/* rules.h - the rule language of a policy (issue 12): compile once per policy version, evaluate
 * per decision without allocation, decide with Radar's precedence.
 *
 * Owns: the grammar, its types and its missing-value rule; the compiled program; the evaluator;
 * the decision precedence.  The README's "Rules and lists" section is the user's copy of the
 * grammar; keep both in step.
 *
 * A rule is {name, action allow|review|block, mode active|shadow, when}.  `when` is an expression:
 *
 *   rule       = [ action "if" ] expr              (action, if given, must equal the rule's action)
 *   expr       = or
 *   or         = and { "or" and }
 *   and        = not { "and" not }
 *   not        = "not" not | cmp
 *   cmp        = sum [ cmpop sum
 *                    | [ "not" ] "in" ( "@" listname | "(" literal { "," literal } ")" ) ]
 *   cmpop      = "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
 *   sum        = product { ( "+" | "-" ) product }
 *   product    = unary { ( "*" | "/" ) unary }
 *   unary      = "-" unary | primary
 *   primary    = number | string | "true" | "false" | identifier
 *              | "is_missing" "(" expr ")" | "(" expr ")"
 *   literal    = [ "-" ] number | string
 *   identifier = ( letter | "_" ) { letter | digit | "_" }  |  "`" any but "`" "`"
 *   listname   = ( letter | digit | "_" ) { letter | digit | "_" | "-" | "." }   (<= 64 bytes)
 *   number     = digit { digit } [ "." digit { digit } ]
 *                [ ( "e" | "E" ) [ "+" | "-" ] digit { digit } ]
 *   string     = '"' { char | "\" ( '"' | "\" | "/" | "n" | "t" | "r" | "uXXXX" ) } '"'
 * Keywords are lower case (and, or, not, in, true, false, is_missing, if, allow, review, block);
 * an operand whose name is a keyword or not an identifier is written in backticks (`in`).
 * Precedence, loosest first: or < and < not < comparison/in < + - < * / < unary minus.
 * Comparisons do not chain (`a < b < c` is an error).  The left side of `in @list` is an operand
 * name (the caller resolves the probe with its list set); `in (...)` takes any expression.
 *
 * Types (checked at compile time; a mismatch is an error naming both types):
 *   number  (double) - features, amount, score...; literals; + - * / take and give numbers;
 *   string  (bytes)  - transaction/user fields; literals;
 *   boolean          - comparisons, in, is_missing, and/or/not, true/false.
 * `= != in` compare number with number or string with string (strings byte for byte); `< <= > >=`
 * numbers only.  and/or/not take booleans or numbers; a number used as a condition is true when
 * present and != 0 (flags such as merchant_seen_before are 0/1 numbers: `not
 * merchant_seen_before`). The whole `when` must be a boolean or a number.  A string list (kind
 * string) takes a string operand, a number list a number operand, an ip list a string operand
 * holding an address.  The literals of `in (...)` all have the operand's type.
 *
 * Missing values (one rule, two-valued logic - nothing is "unknown"):
 *   - an operand is missing when the caller says so (no such field, feature not computable) or
 *     its number is NaN; arithmetic with a missing operand is missing; so is a result that is not
 *     finite (x / 0, overflow);
 *   - every predicate (= == != < <= > >= in, not in, a number used as a condition) with a missing
 *     operand is FALSE - `!=` and `not in` included;
 *   - and/or/not are plain boolean logic over those results: `not (x > 5)` with x missing is
 *     `not false` = TRUE, while `x <= 5` is FALSE.  Write `not is_missing(x) and ...` to be
 * explicit;
 *   - is_missing(e) is true exactly when e is missing.
 *
 * Limits (each an error naming it): RULES_MAX rules per policy, RULES_WHEN_MAX bytes per `when`,
 * RULES_DEPTH_MAX nested parentheses/operators, RULES_NAME_MAX bytes per rule name (names are
 * unique in a policy, [A-Za-z0-9_.:-]), list names as above.
 *
 * Errors: {rule index (0-based), column (1-based, counted in characters = UTF-8 code points of the
 * `when` text; a newline is one character), message}.  The message says what was expected at the
 * column ("expected an operand after 'and'", "expected ')' to close '(' at column 7") and names
 * unknown operands and lists ("unknown operand 'amout'", "unknown list '@vip'").
 *
 * Decisions (rules_decide), as Radar does it:
 *   1. a matching ACTIVE allow rule decides allow;
 *   2. else a matching active block rule, or score >= block threshold, decides block;
 *   3. else a matching active review rule, or score >= review threshold, decides review;
 *   4. else allow (decided_by "default").
 * Within a step the first matching rule in policy order is named; a rule beats the threshold in
 * the same step (decided_by "rule:<name>", else "score_threshold").  Shadow rules are evaluated
 * and reported in the matched bitmap but never decide.  Degraded scoring (no usable champion
 * score): rules that read a scoring operand (catalogue flag RULES_OPERAND_SCORE: score,
 * challenger_score) are NOT evaluated (never matched, even `not (score > 0.9)`), the others apply
 * as above without thresholds, and the policy's fallback decides only when no rule decided
 * (decided_by "fallback").
 *
 * Thread safety: a program is immutable after rules_compile; any number of threads may evaluate
 * it at once.  rules_compile allocates (API side only); rules_eval and rules_decide never do. */
#ifndef VIGIL_RULES_H
#define VIGIL_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "listset.h"

#define RULES_MAX 200         /* rules per policy */
#define RULES_WHEN_MAX 4096   /* bytes of one `when` text */
#define RULES_DEPTH_MAX 64    /* nesting of the expression tree */
#define RULES_NAME_MAX 64     /* bytes of a rule name */
#define RULES_LISTNAME_MAX 64 /* bytes of a list name after '@' */
#define RULES_BITMAP_WORDS ((RULES_MAX + 63) / 64)

enum rules_status {
    RULES_OK = 0,
    RULES_E_INVALID = -1, /* the rules do not compile: the error says where and why (a 422) */
    RULES_E_NOMEM = -2,   /* out of memory (a 500) */
};

typedef enum rules_action { RULES_ALLOW = 0, RULES_REVIEW = 1, RULES_BLOCK = 2 } rules_action;
typedef enum rules_mode { RULES_ACTIVE = 0, RULES_SHADOW = 1 } rules_mode;

/* Operand and value types.  RULES_MISSING is a value's type only. */
typedef enum rules_type { RULES_MISSING = 0, RULES_NUMBER = 1, RULES_STRING = 2 } rules_type;

/* "allow"/"review"/"block", "active"/"shadow" (NULL outside the enums), and back: 0 when
 * s[0..len) names one (the value in *out), -1 when not. */
const char *rules_action_name(rules_action a);
int rules_action_parse(const char *s, size_t len, rules_action *out);
const char *rules_mode_name(rules_mode m);
int rules_mode_parse(const char *s, size_t len, rules_mode *out);

/* ---- the catalogue the caller gives ---------------------------------------------------------- */

#define RULES_OPERAND_SCORE                                                                        \
    1u /* produced by the scoring call: rules reading it are skipped when                          \
          scoring is degraded (score, challenger_score) */

/* One operand: its slot is its index in the catalogue's array. */
typedef struct rules_operand {
    const char *name; /* NUL-terminated; unique in the catalogue (the first one wins otherwise) */
    rules_type type;  /* RULES_NUMBER or RULES_STRING */
    unsigned flags;   /* RULES_OPERAND_* */
} rules_operand;

/* One list a rule may name (without the '@'). */
typedef struct rules_list {
    const char *name;
    listset_kind kind;
} rules_list;

typedef struct rules_catalog {
    const rules_operand *operands;
    size_t n_operands; /* slots 0..n_operands-1 */
    const rules_list *lists;
    size_t n_lists;
} rules_catalog;

/* ---- compiling ------------------------------------------------------------------------------- */

/* One rule as the policy holds it.  Strings need not outlive rules_compile (the program copies
 * what it keeps). */
typedef struct rules_spec {
    const char *name; /* NUL-terminated */
    rules_action action;
    rules_mode mode;
    const char *when; /* when[0..when_len), need not be NUL-terminated; may hold any bytes */
    size_t when_len;
} rules_spec;

typedef struct rules_error {
    int rule;          /* 0-based index of the rule; -1 when about the whole policy (too many) */
    int column;        /* 1-based character column in `when`; 0 when not about a position */
    char message[200]; /* NUL-terminated, without the rule's name or the column */
} rules_error;

typedef struct rules_program rules_program;

/* Compiles rules[0..n) against the catalogue into one immutable program (a single allocation,
 * freed by rules_free) in *out.  n may be 0 (a program that matches nothing).  Every identifier
 * must be in cat->operands, every @list in cat->lists; types are checked.  Returns RULES_OK;
 * RULES_E_INVALID with *err filled (the first error, rules in order) and *out NULL;
 * RULES_E_NOMEM with *out NULL.  err may be NULL.  Thread-safe (no shared state). */
int rules_compile(const rules_spec *rules, size_t n, const rules_catalog *cat, rules_program **out,
                  rules_error *err);

/* Frees a program.  NULL is a no-op. */
void rules_free(rules_program *p);

/* 1 when name is a valid rule name (1..RULES_NAME_MAX bytes of [A-Za-z0-9_.:-]) */
int rules_name_valid(const char *name, size_t len);
/* 1 when name (without '@') is a valid list name (1..RULES_LISTNAME_MAX bytes, listname above) */
int rules_list_name_valid(const char *name, size_t len);

/* ---- what a program holds (read-only, thread-safe) ------------------------------------------- */

size_t rules_count(const rules_program *p);
const char *rules_rule_name(const rules_program *p, size_t i);
rules_action rules_rule_action(const rules_program *p, size_t i);
rules_mode rules_rule_mode(const rules_program *p, size_t i);
/* 1 when rule i reads an operand flagged RULES_OPERAND_SCORE (skipped when degraded). */
int rules_rule_uses_score(const rules_program *p, size_t i);
/* Bytes of the program (the one allocation). */
size_t rules_program_bytes(const rules_program *p);

/* The distinct lists the program names, in order of first use: index 0..rules_list_count-1. */
size_t rules_list_count(const rules_program *p);
const char *rules_list_name(const rules_program *p, size_t li);
listset_kind rules_list_kind(const rules_program *p, size_t li);

/* The membership probes the program needs: one per distinct (list, operand slot) pair, in order of
 * first use.  The caller answers each before rules_eval (rules_probe_resolve does it with list
 * sets) and stores the answers with the decision so a replay is exact. */
size_t rules_probe_count(const rules_program *p);
size_t rules_probe_list(const rules_program *p, size_t k); /* list index (rules_list_name) */
size_t rules_probe_slot(const rules_program *p, size_t k); /* operand slot */

enum rules_probe_result {
    RULES_PROBE_NO = 0,     /* the operand is not in the list (an ip operand that is not an
                               address is not in it either) */
    RULES_PROBE_YES = 1,    /* it is */
    RULES_PROBE_MISSING = 2 /* the operand is missing: `in` and `not in` are both false */
};

/* ---- evaluating (no allocation) -------------------------------------------------------------- */

/* A slot's value.  type RULES_MISSING (0): missing, the rest ignored, so a zeroed array is all
 * missing.  A value whose type differs from the catalogue's for its slot, or a NaN number, is
 * taken as missing. */
typedef struct rules_value {
    const char *s; /* string bytes s[0..len) (need not be NUL-terminated) */
    double num;
    uint32_t len;
    uint8_t type; /* rules_type */
} rules_value;

/* Answers every probe of p into probes[0..rules_probe_count): sets[li] is the set of list li
 * (rules_list_name(p, li)), of that list's kind; NULL sets[li] answers RULES_PROBE_NO (an empty
 * list).  A missing slot gives RULES_PROBE_MISSING.  No allocation. */
void rules_probe_resolve(const rules_program *p, const rules_value *slots,
                         const listset *const *sets, uint8_t *probes);

#define RULES_EVAL_DEGRADED 1u /* skip rules that read a RULES_OPERAND_SCORE operand */

/* Evaluates every rule: bit i of matched (word i/64, bit i%64) is set when rule i matched (active
 * and shadow alike; 0 for a rule skipped under RULES_EVAL_DEGRADED).  slots has one value per
 * catalogue operand (n_slots >= the catalogue's n_operands at compile time, else nothing matches
 * and -1 is returned); probes holds rules_probe_count answers (any byte other than YES/NO reads as
 * MISSING).  Returns 0.  No allocation, no I/O, bounded time (linear in the program). */
int rules_eval(const rules_program *p, const rules_value *slots, size_t n_slots,
               const uint8_t *probes, unsigned flags, uint64_t matched[RULES_BITMAP_WORDS]);

/* ---- deciding -------------------------------------------------------------------------------- */

typedef enum rules_decided_by {
    RULES_BY_RULE = 0,            /* "rule:<name>" */
    RULES_BY_SCORE_THRESHOLD = 1, /* "score_threshold" */
    RULES_BY_FALLBACK = 2,        /* "fallback" */
    RULES_BY_DEFAULT = 3          /* "default" */
} rules_decided_by;

typedef struct rules_decide_in {
    int degraded;          /* 1: no usable champion score (failure, timeout, no champion) */
    rules_action fallback; /* the policy's fallback decision, used only when degraded */
    double score;          /* the champion's score when !degraded */
    double review_threshold, block_threshold;
} rules_decide_in;

typedef struct rules_verdict {
    rules_action decision;
    rules_decided_by by;
    int rule; /* with RULES_BY_RULE: the deciding rule's index; else -1 */
} rules_verdict;

/* The decision from the matched bitmap of rules_eval (p may be NULL: no rules) under the
 * precedence above.  A NaN score under !degraded crosses no threshold.  Pure; no allocation. */
rules_verdict rules_decide(const rules_program *p, const uint64_t matched[RULES_BITMAP_WORDS],
                           const rules_decide_in *in);

/* "rule:<name>", "score_threshold", "fallback" or "default" into out[0..outlen) (NUL-terminated,
 * truncated if short; RULES_NAME_MAX + 6 bytes always suffice).  Returns the length written. */
size_t rules_decided_by_text(const rules_program *p, const rules_verdict *v, char *out,
                             size_t outlen);

#endif
