/* test_rules.c - the rule language (common/rules.h): grammar, types, errors with their columns,
 * every operator, the missing rule, limits, the decision precedence, and a property test against
 * a second implementation written here.
 *
 * What is checked, each against an independent source:
 *   - the issue's example rules and every operator on hand-computed inputs;
 *   - invalid rules: the exact message and the 1-based character column, counted by hand;
 *   - limits at N and N+1 (rules per policy, bytes per rule, nesting depth);
 *   - the property test: random expression trees are rendered to text (with only the parentheses
 *     the documented precedence needs, or with extra ones), compiled, and evaluated on random
 *     inputs (missing values, -0, overflow, x/0, NaN); a tree-walking interpreter here computes
 *     the expected result, with list membership by linear scan while the engine probes real
 *     common/listset sets; random policies of such rules are decided by this file's own reading
 *     of the issue's precedence (degraded scoring and shadow rules included);
 *   - hostile text (random bytes and token soup) never crashes the compiler, and whatever
 *     compiles evaluates;
 *   - evaluation never allocates: a child with the allocation probe (tests/tools/alloccount.so)
 *     preloaded resolves probes, evaluates, decides and looks lists up 20,000 times after it
 *     marks itself ready and counts 0 calls (the probe's self-test counts its own 2). */
#include <check.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "listset.h"
#include "rules.h"
#include "skip.h"

/* The allocation probe's entry points (tests/tools/alloccount.so, preloaded into a child). */
void vigil_alloc_mark_ready(void) __attribute__((weak));
unsigned long long vigil_alloc_calls_after_ready(void) __attribute__((weak));

/* ---- a catalogue like the API's -------------------------------------------------------------- */

enum {
    S_AMOUNT,
    S_SCORE,
    S_CHALLENGER,
    S_HOUR,
    S_SEEN,
    S_AVG30,
    S_COUNTRY,
    S_CARD_COUNTRY,
    S_MERCHANT,
    S_USER,
    S_IP,
    S_BIN,
    S_WEIRD,
    N_SLOTS
};

static const rules_operand operands[N_SLOTS] = {
    [S_AMOUNT] = {"amount", RULES_NUMBER, 0},
    [S_SCORE] = {"score", RULES_NUMBER, RULES_OPERAND_SCORE},
    [S_CHALLENGER] = {"challenger_score", RULES_NUMBER, RULES_OPERAND_SCORE},
    [S_HOUR] = {"hour_of_day", RULES_NUMBER, 0},
    [S_SEEN] = {"merchant_seen_before", RULES_NUMBER, 0},
    [S_AVG30] = {"user_amount_avg_30d", RULES_NUMBER, 0},
    [S_COUNTRY] = {"country", RULES_STRING, 0},
    [S_CARD_COUNTRY] = {"card_country", RULES_STRING, 0},
    [S_MERCHANT] = {"merchant_id", RULES_STRING, 0},
    [S_USER] = {"user_external_id", RULES_STRING, 0},
    [S_IP] = {"ip_address", RULES_STRING, 0},
    [S_BIN] = {"card_bin_num", RULES_NUMBER, 0},
    [S_WEIRD] = {"f.1 weird", RULES_NUMBER, 0},
};

static const rules_list lists[] = {
    {"blocked_merchants", LISTSET_STRING},
    {"vip_customers", LISTSET_STRING},
    {"bad_ips", LISTSET_IP},
    {"bad_bins", LISTSET_NUMBER},
};

static const rules_catalog catalog = {operands, N_SLOTS, lists, 4};

static rules_program *compile_one(const char *when, rules_action action, rules_error *err)
{
    rules_spec r = {"r1", action, RULES_ACTIVE, when, strlen(when)};
    rules_program *p = NULL;
    int rc = rules_compile(&r, 1, &catalog, &p, err);
    ck_assert(rc == RULES_OK || p == NULL);
    return p;
}

static rules_value num(double v)
{
    return (rules_value){NULL, v, 0, RULES_NUMBER};
}

static rules_value str(const char *s)
{
    return (rules_value){s, 0, (uint32_t)strlen(s), RULES_STRING};
}

/* Slots of a typical transaction; tests change what they need. */
static void base_slots(rules_value *v)
{
    memset(v, 0, N_SLOTS * sizeof *v);
    v[S_AMOUNT] = num(2500);
    v[S_SCORE] = num(0.5);
    v[S_CHALLENGER] = num(0.4);
    v[S_HOUR] = num(3);
    v[S_SEEN] = num(0);
    v[S_COUNTRY] = str("FR");
    v[S_CARD_COUNTRY] = str("DE");
    v[S_MERCHANT] = str("m_42");
    v[S_USER] = str("u_1");
    v[S_IP] = str("10.1.2.3");
    v[S_BIN] = num(412345);
}

/* The sets of the four lists. */
static listset *sets[4];

/* Plain checks (not Check's): the allocation probe's child calls this outside a Check test. */
static void make_sets(void)
{
    if (sets[0])
        return;
    const char *bm[] = {"m_13", "m_42"}, *vip[] = {"u_vip"},
               *ips[] = {"10.0.0.0/8", "2001:db8::/32"};
    int bad = 0;
    listset_builder *b = listset_builder_new(LISTSET_STRING, 0);
    for (int i = 0; i < 2; i++)
        bad |= listset_builder_add(b, bm[i], strlen(bm[i]), NULL, 0) != LISTSET_OK;
    sets[0] = listset_build(b);
    b = listset_builder_new(LISTSET_STRING, 0);
    bad |= listset_builder_add(b, vip[0], strlen(vip[0]), NULL, 0) != LISTSET_OK;
    sets[1] = listset_build(b);
    b = listset_builder_new(LISTSET_IP, 0);
    for (int i = 0; i < 2; i++)
        bad |= listset_builder_add(b, ips[i], strlen(ips[i]), NULL, 0) != LISTSET_OK;
    sets[2] = listset_build(b);
    b = listset_builder_new(LISTSET_NUMBER, 0);
    bad |= listset_builder_add_number(b, 412345) != LISTSET_OK;
    sets[3] = listset_build(b);
    for (int i = 0; i < 4; i++)
        bad |= sets[i] == NULL;
    if (bad) {
        fprintf(stderr, "test_rules: building the test's list sets failed\n");
        abort();
    }
}

/* Evaluates the one-rule program p on v: 1 matched, 0 not. */
static int eval1(const rules_program *p, const rules_value *v, unsigned flags)
{
    make_sets();
    const listset *ps[8];
    for (size_t li = 0; li < rules_list_count(p); li++) {
        ps[li] = NULL;
        for (int k = 0; k < 4; k++)
            if (strcmp(rules_list_name(p, li), lists[k].name) == 0)
                ps[li] = sets[k];
    }
    uint8_t probes[16];
    ck_assert_uint_le(rules_probe_count(p), 16);
    rules_probe_resolve(p, v, ps, probes);
    uint64_t m[RULES_BITMAP_WORDS];
    ck_assert_int_eq(rules_eval(p, v, N_SLOTS, probes, flags, m), 0);
    return (int)(m[0] & 1);
}

/* Compiles when (must succeed) and evaluates it on v. */
static int run_text(const char *when, const rules_value *v)
{
    rules_error err;
    rules_program *p = compile_one(when, RULES_BLOCK, &err);
    ck_assert_msg(p != NULL, "'%.200s' does not compile: column %d: %s", when, err.column,
                  err.message);
    int r = eval1(p, v, 0);
    rules_free(p);
    return r;
}

/* ---- the issue's examples -------------------------------------------------------------------- */

START_TEST(issue_examples)
{
    rules_value v[N_SLOTS];
    base_slots(v);
    /* merchant m_42 is on the list, u_1 is not a VIP */
    ck_assert_int_eq(run_text("block if merchant_id in @blocked_merchants", v), 1);
    v[S_MERCHANT] = str("m_7");
    ck_assert_int_eq(run_text("block if merchant_id in @blocked_merchants", v), 0);
    /* 2500 > 2000, merchant not seen (0), 3 < 6 */
    ck_assert_int_eq(run_text("amount > 2000 and not merchant_seen_before and hour_of_day < 6", v),
                     1);
    v[S_SEEN] = num(1);
    ck_assert_int_eq(run_text("amount > 2000 and not merchant_seen_before and hour_of_day < 6", v),
                     0);
    ck_assert_int_eq(run_text("user_external_id in @vip_customers", v), 0);
    v[S_USER] = str("u_vip");
    ck_assert_int_eq(run_text("user_external_id in @vip_customers", v), 1);
    /* score 0.5 < 0.97 */
    ck_assert_int_eq(run_text("score >= 0.97 and card_country != country", v), 0);
    v[S_SCORE] = num(0.97);
    ck_assert_int_eq(run_text("score >= 0.97 and card_country != country", v), 1);
    v[S_CARD_COUNTRY] = str("FR");
    ck_assert_int_eq(run_text("score >= 0.97 and card_country != country", v), 0);
    /* avg missing (zeroed slot), 2500 > 500 */
    ck_assert_int_eq(run_text("is_missing(user_amount_avg_30d) and amount > 500", v), 1);
    v[S_AVG30] = num(100);
    ck_assert_int_eq(run_text("is_missing(user_amount_avg_30d) and amount > 500", v), 0);
}
END_TEST

/* ---- every operator, by hand ----------------------------------------------------------------- */

START_TEST(operators_by_hand)
{
    rules_value v[N_SLOTS];
    base_slots(v); /* amount 2500, hour 3, score 0.5, country FR, card DE, ip 10.1.2.3 */
    static const struct {
        const char *when;
        int want;
    } cases[] = {
        {"amount = 2500", 1},
        {"amount == 2500", 1},
        {"amount != 2500", 0},
        {"amount < 2500", 0},
        {"amount <= 2500", 1},
        {"amount > 2499.5", 1},
        {"amount >= 2500.0001", 0},
        {"amount + 500 = 3000", 1},
        {"amount - 500 = 2000", 1},
        {"amount * 2 = 5000", 1},
        {"amount / 4 = 625", 1},
        {"-amount = -2500", 1},
        {"- -amount = 2500", 1},
        {"2 + 3 * 4 = 14", 1},
        {"(2 + 3) * 4 = 20", 1},
        {"10 - 4 - 3 = 3", 1},
        {"24 / 4 / 2 = 3", 1},
        {"-2 * 3 = -6", 1},
        {"1e3 = 1000", 1},
        {"2.5E-1 = 0.25", 1},
        {"0.1 + 0.2 = 0.3", 0},
        {"country = \"FR\"", 1},
        {"country == \"FR\"", 1},
        {"country != \"FR\"", 0},
        {"country = card_country", 0},
        {"country != card_country", 1},
        {"country = \"fr\"", 0}, /* bytes, case-sensitive */
        {"country in (\"DE\", \"FR\")", 1},
        {"country in (\"DE\")", 0},
        {"country not in (\"DE\")", 1},
        {"country not in (\"FR\", \"DE\")", 0},
        {"amount in (1, 2500, 3)", 1},
        {"amount in (-2500)", 0},
        {"-amount in (-2500)", 1},
        {"amount not in (1, 2)", 1},
        {"amount / 100 in (25)", 1},
        {"merchant_id in @blocked_merchants", 1},
        {"merchant_id not in @blocked_merchants", 0},
        {"ip_address in @bad_ips", 1},
        {"ip_address not in @bad_ips", 0},
        {"card_bin_num in @bad_bins", 1},
        {"card_bin_num not in @bad_bins", 0},
        {"true", 1},
        {"false", 0},
        {"not true", 0},
        {"not not true", 1},
        {"true and false", 0},
        {"true or false", 1},
        {"false or false", 0},
        {"amount", 1},
        {"merchant_seen_before", 0},
        {"not merchant_seen_before", 1},
        {"hour_of_day and amount", 1},
        {"amount - 2500", 0},
        /* precedence: and binds tighter than or; not tighter than and */
        {"true or true and false", 1},
        {"(true or true) and false", 0},
        {"not false and false", 0},
        {"not (false and false)", 1},
        {"false and false or true", 1},
        {"not amount > 3000", 1},
        {"not amount < 3000", 0},
        {"amount > 1000 and country = \"FR\" or false", 1},
        {"is_missing(amount)", 0},
        {"is_missing(user_amount_avg_30d)", 1},
        {"is_missing(country)", 0},
        {"is_missing(amount / 0)", 1},
        {"block if amount > 1", 1},
        {"`f.1 weird` > 0", 0},
        {"is_missing(`f.1 weird`)", 1},
        {"country = \"\\u0046\\u0052\"", 1},
        {"\"a\\\"b\" = \"a\\u0022b\"", 1},
        {"\"\\ud83d\\ude00\" = \"\xf0\x9f\x98\x80\"", 1},
        {"\"tab\\t\" != \"tab \"", 1},
        {"amount\n>\t2000\r", 1},
        {"(((amount)))>((2000))", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(run_text(cases[i].when, v) == cases[i].want, "'%s' should be %d",
                      cases[i].when, cases[i].want);
}
END_TEST

/* ---- the missing rule ------------------------------------------------------------------------ */

START_TEST(missing_rule)
{
    rules_value v[N_SLOTS];
    base_slots(v);
    v[S_AMOUNT] = (rules_value){0}; /* missing */
    v[S_COUNTRY] = (rules_value){0};
    v[S_MERCHANT] = (rules_value){0};
    v[S_IP] = (rules_value){0};
    v[S_HOUR] = num(NAN);     /* NaN is missing */
    v[S_BIN] = str("412345"); /* a string in a number slot is missing */
    static const struct {
        const char *when;
        int want;
    } cases[] = {
        {"amount > 5", 0},
        {"amount <= 5", 0},
        {"amount = 5", 0},
        {"amount != 5", 0},
        {"amount < 5", 0},
        {"amount >= 5", 0},
        {"amount == amount", 0},
        {"not (amount > 5)", 1}, /* not false */
        {"not amount > 5", 1},
        {"not (amount <= 5)", 1},
        {"amount + 1 > 0", 0},
        {"amount * 0 = 0", 0},
        {"-amount < 0", 0},
        {"is_missing(amount + 1)", 1},
        {"is_missing(amount)", 1},
        {"is_missing(-amount)", 1},
        {"amount", 0},
        {"not amount", 1},
        {"amount or true", 1},
        {"amount and true", 0},
        {"amount in (1, 2)", 0},
        {"amount not in (1, 2)", 0},
        {"country = \"FR\"", 0},
        {"country != \"FR\"", 0},
        {"country in (\"FR\")", 0},
        {"country not in (\"FR\")", 0},
        {"not (country in (\"FR\"))", 1},
        {"is_missing(country)", 1},
        {"merchant_id in @blocked_merchants", 0},
        {"merchant_id not in @blocked_merchants", 0},
        {"not (merchant_id in @blocked_merchants)", 1},
        {"ip_address in @bad_ips", 0},
        {"ip_address not in @bad_ips", 0},
        {"hour_of_day < 6", 0},
        {"is_missing(hour_of_day)", 1},
        {"card_bin_num in @bad_bins", 0},
        {"card_bin_num not in @bad_bins", 0},
        {"is_missing(card_bin_num)", 1},
        /* x / 0 and overflow are missing; 0 / 0 too */
        {"is_missing(score / 0)", 1},
        {"score / 0 > 0", 0},
        {"score / 0 != 1", 0},
        {"is_missing(0 / 0)", 1},
        {"is_missing(1e308 * 10)", 1},
        {"1e308 * 10 > 0", 0},
        {"is_missing(-1e308 - 1e308)", 1},
        {"is_missing(1e308 + 1)", 0},
        {"is_missing(score)", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(run_text(cases[i].when, v) == cases[i].want, "'%s' should be %d",
                      cases[i].when, cases[i].want);
    /* -0 equals 0; an empty string is present */
    v[S_AMOUNT] = num(-0.0);
    v[S_COUNTRY] = str("");
    ck_assert_int_eq(run_text("amount = 0", v), 1);
    ck_assert_int_eq(run_text("amount in (0)", v), 1);
    ck_assert_int_eq(run_text("amount", v), 0);
    ck_assert_int_eq(run_text("country = \"\"", v), 1);
    ck_assert_int_eq(run_text("is_missing(country)", v), 0);
    /* an ip operand that is not an address is not in the list (not missing) */
    v[S_IP] = str("not-an-ip");
    ck_assert_int_eq(run_text("ip_address in @bad_ips", v), 0);
    ck_assert_int_eq(run_text("ip_address not in @bad_ips", v), 1);
    v[S_IP] = str("2001:db8::5");
    ck_assert_int_eq(run_text("ip_address in @bad_ips", v), 1);
    v[S_IP] = str("::ffff:10.9.9.9");
    ck_assert_int_eq(run_text("ip_address in @bad_ips", v), 1);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------------- */

static void expect_error(const char *when, rules_action action, int column, const char *message)
{
    rules_error err;
    rules_program *p = compile_one(when, action, &err);
    ck_assert_msg(p == NULL, "'%s' compiled", when);
    ck_assert_int_eq(err.rule, 0);
    ck_assert_msg(err.column == column && strcmp(err.message, message) == 0,
                  "'%s': got column %d '%s', want column %d '%s'", when, err.column, err.message,
                  column, message);
}

#define VALUE_EXPECTED                                                                             \
    "expected a value (an operand, a number, a string, true, false, is_missing or '(') but found "

START_TEST(errors_with_columns)
{
    static const struct {
        const char *when;
        int column;
        const char *message;
    } cases[] = {
        {"", 1, VALUE_EXPECTED "the end of the rule"},
        {"   ", 4, VALUE_EXPECTED "the end of the rule"},
        {"amount >", 9, VALUE_EXPECTED "the end of the rule"},
        {"amount > 5 and", 15, VALUE_EXPECTED "the end of the rule"},
        {"amount > 5 and )", 16, VALUE_EXPECTED "')'"},
        {"amount > and 5", 10, VALUE_EXPECTED "'and'"},
        {"(amount > 5", 12, "expected ')' to close '(' at column 1 but found the end of the rule"},
        {"x or (amount > 5", 1, "unknown operand 'x'"},
        {"amount > 5 or (amount < 1 and (hour_of_day > 2)", 48,
         "expected ')' to close '(' at column 15 but found the end of the rule"},
        {"amout > 5", 1, "unknown operand 'amout'"},
        {"amount > 5 and AND", 16, "unknown operand 'AND' (keywords are lower case: 'and')"},
        {"`amount ` > 5", 1, "unknown operand 'amount '"},
        {"merchant_id in @nope", 16, "unknown list '@nope'"},
        {"merchant_id in @", 17, "expected a list name after '@'"},
        {"merchant_id in blocked", 16, "expected '@list' or '(' after 'in' but found 'blocked'"},
        {"amount > \"x\"", 10, "'>' needs numbers, got a string"},
        {"country < \"x\"", 1, "'<' needs numbers, got a string"},
        {"country = 5", 9, "'=' cannot compare a string with a number"},
        {"amount = (1 > 0)", 10,
         "'=' compares values, got a condition (combine conditions with and/or/not)"},
        {"amount + country > 1", 10, "'+' needs numbers, got a string"},
        {"country * 2 > 1", 1, "'*' needs numbers, got a string"},
        {"-country = \"x\"", 2, "'-' needs a number, got a string"},
        {"amount in @blocked_merchants", 1,
         "'@blocked_merchants' is a list of kind string: it takes a string, got a number"},
        {"country in @bad_bins", 1,
         "'@bad_bins' is a list of kind number: it takes a number, got a string"},
        {"amount > 1 in @bad_bins", 12,
         "comparisons do not chain: expected 'and', 'or', ')' or the end of the rule but found "
         "'in'"},
        {"amount + 1 in @bad_bins", 1,
         "the left of 'in @bad_bins' must be an operand name (lists hold values of one field)"},
        {"1 < 2 < 3", 7,
         "comparisons do not chain: expected 'and', 'or', ')' or the end of the rule but found "
         "'<'"},
        {"amount > 5 5", 12,
         "expected an operator, 'and', 'or' or the end of the rule but found '5'"},
        {"amount > 5 country", 12,
         "expected an operator, 'and', 'or' or the end of the rule but found 'country'"},
        {"amount ! 5", 8, "expected '!=' (write 'not' for negation)"},
        {"country = \"abc", 11, "unterminated string (expected '\"')"},
        {"country = \"a\\qb\"", 13,
         "unknown escape in a string (expected \\\" \\\\ \\/ \\n \\t \\r or \\uXXXX)"},
        {"country = \"\\u12\"", 12, "expected \\u and 4 hex digits (a valid code point)"},
        {"country = \"\\udc00\"", 12, "expected \\u and 4 hex digits (a valid code point)"},
        {"country = \"\\ud800x\"", 12, "expected \\u and 4 hex digits (a valid code point)"},
        {"country = \"a\nb\"", 13, "control character in a string (write \\n, \\t or \\r)"},
        {"amount > 1.", 12, "expected a digit after '.'"},
        {"amount > 1e", 12, "expected a digit in the exponent"},
        {"amount > 1e+", 13, "expected a digit in the exponent"},
        {"amount > .5", 10, "unexpected character '.'"},
        {"amount > 1e999", 10, "number out of range"},
        {"amount > 5and true", 11, "unexpected 'a' after a number"},
        {"amount > 0x10", 11, "unexpected 'x' after a number"},
        {"amount > 5 and é", 16, "unexpected character U+00E9"},
        {"country = \"é\" and amout > 1", 19, "unknown operand 'amout'"},
        {"amount > 5 # comment", 12, "unexpected character '#'"},
        {"amount > 5 and \x7f", 16, "unexpected character U+007F"},
        {"amount > 1 \xff", 12, "the rule is not valid UTF-8"},
        {"country", 1, "a rule must be a condition or a number, got a string"},
        {"  \"x\"", 3, "a rule must be a condition or a number, got a string"},
        {"amount > 5 and country", 16, "'and' needs a condition or a number, got a string"},
        {"country or true", 1, "'or' needs a condition or a number, got a string"},
        {"not country", 5, "'not' needs a condition or a number, got a string"},
        {"is_missing(amount > 5)", 12, "is_missing takes a value, got a condition"},
        {"is_missing amount", 12, "expected '(' after is_missing but found 'amount'"},
        {"is_missing(amount", 18,
         "expected ')' to close '(' at column 11 but found the end of "
         "the rule"},
        {"country in (\"a\", 1)", 18,
         "expected a string literal (the left of 'in' is a string) but found a number"},
        {"amount in (1, -\"a\")", 16, "expected a number after '-' but found '\"a\"'"},
        {"country in ()", 13, "expected a literal (a number or a string) but found ')'"},
        {"country in (\"a\" \"b\")", 17,
         "expected ',' or ')' to close '(' at column 12 but found '\"b\"'"},
        {"amount in (amount)", 12, "expected a literal (a number or a string) but found 'amount'"},
        {"(amount > 1) in (1)", 1, "the left of 'in' must be a value, got a condition"},
        {"country not like \"x\"", 13, "expected 'in' after 'not' but found 'like'"},
        {"block amount > 5", 7, "expected 'if' after 'block' but found 'amount'"},
        {"review if amount > 5", 1, "the rule's text says 'review' but its action is 'block'"},
        {"block if", 9, VALUE_EXPECTED "the end of the rule"},
        {"amount > 5 if", 12,
         "expected an operator, 'and', 'or' or the end of the rule but found "
         "'if'"},
        {"`amount", 1, "unterminated quoted operand name (expected '`')"},
        {"`` > 1", 1, "empty quoted operand name"},
        {"country = \"a very long string literal that goes on\" and 1 2", 59,
         "expected an operator, 'and', 'or' or the end of the rule but found '2'"},
        {"amount > 5 and \"abcdefghijklmnopqrstuvwxyz0123456789\"", 16,
         "'and' needs a condition or a number, got a string"},
        {"amount > 5 5555555555555555555555555555555555555", 12,
         "expected an operator, 'and', 'or' or the end of the rule but found "
         "'555555555555555555555555...'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_error(cases[i].when, RULES_BLOCK, cases[i].column, cases[i].message);
    /* the prefix must agree with the action field, and is optional */
    rules_error err;
    rules_program *p = compile_one("review if amount > 5", RULES_REVIEW, &err);
    ck_assert_ptr_nonnull(p);
    rules_free(p);
    expect_error("allow if amount > 5", RULES_REVIEW, 1,
                 "the rule's text says 'allow' but its action is 'review'");
}
END_TEST

/* Errors name the failing rule; the first failing rule is reported. */
START_TEST(errors_name_the_rule)
{
    rules_spec r[3] = {
        {"ok", RULES_BLOCK, RULES_ACTIVE, "amount > 1", 10},
        {"bad", RULES_REVIEW, RULES_SHADOW, "amount >> 1", 11},
        {"worse", RULES_ALLOW, RULES_ACTIVE, "zzz", 3},
    };
    rules_program *p = (rules_program *)1;
    rules_error err;
    ck_assert_int_eq(rules_compile(r, 3, &catalog, &p, &err), RULES_E_INVALID);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(err.rule, 1);
    ck_assert_int_eq(err.column, 9); /* the second '>' */
    ck_assert_str_eq(err.message, VALUE_EXPECTED "'>'");
    /* names: valid, unique */
    r[1].when = "amount > 1";
    r[1].when_len = 10;
    r[1].name = "ok";
    ck_assert_int_eq(rules_compile(r, 3, &catalog, &p, &err), RULES_E_INVALID);
    ck_assert_int_eq(err.rule, 1);
    ck_assert_int_eq(err.column, 0);
    ck_assert_str_eq(err.message, "duplicate rule name 'ok' (also rule 0)");
    r[1].name = "has space";
    ck_assert_int_eq(rules_compile(r, 3, &catalog, &p, &err), RULES_E_INVALID);
    ck_assert_str_eq(err.message,
                     "invalid rule name (expected 1..64 characters of A-Z a-z 0-9 _ . : -)");
    r[1].name = "";
    ck_assert_int_eq(rules_compile(r, 3, &catalog, &p, &err), RULES_E_INVALID);
    char n64[65];
    memset(n64, 'n', 64);
    n64[64] = 0;
    r[1].name = n64;
    ck_assert_int_eq(rules_compile(r, 2, &catalog, &p, &err), RULES_OK);
    rules_free(p);
    char n65[66];
    memset(n65, 'n', 65);
    n65[65] = 0;
    r[1].name = n65;
    ck_assert_int_eq(rules_compile(r, 2, &catalog, &p, &err), RULES_E_INVALID);
    ck_assert_int_eq(rules_name_valid("fraud:v2.high-amount_1", 22), 1);
    ck_assert_int_eq(rules_list_name_valid("vip-customers.2024", 18), 1);
    ck_assert_int_eq(rules_list_name_valid("-vip", 4), 0);
    ck_assert_int_eq(rules_list_name_valid("v ip", 4), 0);
    /* an action or mode outside the enums */
    r[1].name = "ok2";
    r[1].action = (rules_action)7;
    ck_assert_int_eq(rules_compile(r, 2, &catalog, &p, &err), RULES_E_INVALID);
    ck_assert_str_eq(err.message, "unknown action (expected allow, review or block)");
    r[1].action = RULES_BLOCK;
    r[1].mode = (rules_mode)9;
    ck_assert_int_eq(rules_compile(r, 2, &catalog, &p, &err), RULES_E_INVALID);
    ck_assert_str_eq(err.message, "unknown mode (expected active or shadow)");
}
END_TEST

/* ---- limits at N and N+1 --------------------------------------------------------------------- */

START_TEST(limits)
{
    static rules_spec r[RULES_MAX + 1];
    static char names[RULES_MAX + 1][16];
    for (int i = 0; i <= RULES_MAX; i++) {
        snprintf(names[i], sizeof names[i], "r%d", i);
        r[i] = (rules_spec){names[i], RULES_BLOCK, RULES_ACTIVE, "amount > 1", 10};
    }
    rules_program *p;
    rules_error err;
    ck_assert_int_eq(rules_compile(r, RULES_MAX, &catalog, &p, &err), RULES_OK);
    ck_assert_uint_eq(rules_count(p), 200);
    rules_value v[N_SLOTS];
    base_slots(v);
    uint64_t m[RULES_BITMAP_WORDS];
    rules_eval(p, v, N_SLOTS, NULL, 0, m);
    ck_assert(m[0] == UINT64_MAX && m[1] == UINT64_MAX && m[2] == UINT64_MAX &&
              m[3] == (1ULL << 8) - 1);
    rules_free(p);
    ck_assert_int_eq(rules_compile(r, RULES_MAX + 1, &catalog, &p, &err), RULES_E_INVALID);
    ck_assert_int_eq(err.rule, -1);
    ck_assert_int_eq(err.column, 0);
    ck_assert_str_eq(err.message, "a policy holds at most 200 rules, got 201");

    /* 4096 bytes per rule */
    static char text[RULES_WHEN_MAX + 2];
    memset(text, ' ', sizeof text);
    memcpy(text, "amount > 1", 10);
    text[RULES_WHEN_MAX] = 0;
    p = compile_one(text, RULES_BLOCK, &err);
    ck_assert_ptr_nonnull(p);
    rules_free(p);
    text[RULES_WHEN_MAX] = ' ';
    text[RULES_WHEN_MAX + 1] = 0;
    expect_error(text, RULES_BLOCK, 0, "the rule is longer than 4096 bytes");

    /* nesting: 64 levels of each kind compile, 65 do not */
    char buf[2048];
    const char *open[] = {"(", "not ", "-", "is_missing("};
    const char *close[] = {")", "", "", ")"};
    const char *core[] = {"amount > 1", "true", "amount", "amount"};
    const char *tail[] = {"", "", " > 0", ""};
    for (int k = 0; k < 4; k++) {
        for (int depth = RULES_DEPTH_MAX; depth <= RULES_DEPTH_MAX + 1; depth++) {
            size_t n = 0;
            /* is_missing nests values: the inner ones need a value, so use - inside */
            for (int i = 0; i < depth; i++)
                n += (size_t)snprintf(buf + n, sizeof buf - n, "%s", open[k]);
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s", core[k]);
            for (int i = 0; i < depth; i++)
                n += (size_t)snprintf(buf + n, sizeof buf - n, "%s", close[k]);
            snprintf(buf + n, sizeof buf - n, "%s", tail[k]);
            if (k == 3 && depth == RULES_DEPTH_MAX) {
                /* is_missing(is_missing(...)) is a type error: nest parentheses inside one */
                continue;
            }
            p = compile_one(buf, RULES_BLOCK, &err);
            if (depth == RULES_DEPTH_MAX) {
                ck_assert_msg(p != NULL, "depth %d of '%s': %s", depth, open[k], err.message);
                rules_free(p);
            } else {
                ck_assert_ptr_null(p);
                ck_assert_str_eq(err.message, "expression nested deeper than 64 levels");
                ck_assert_int_eq(err.column, 1 + (int)(RULES_DEPTH_MAX * strlen(open[k])));
            }
        }
    }
    /* long flat chains are not nesting: 600 terms of '+', 401 of 'or' */
    size_t n = 0;
    static char chain[RULES_WHEN_MAX + 1];
    for (int i = 0; i < 600; i++)
        n += (size_t)snprintf(chain + n, sizeof chain - n, "%s1", i ? "+" : "");
    snprintf(chain + n, sizeof chain - n, " = 600");
    ck_assert_int_eq(run_text(chain, v), 1);
    n = 0;
    for (int i = 0; i < 400; i++)
        n += (size_t)snprintf(chain + n, sizeof chain - n, "%sfalse", i ? " or " : "");
    snprintf(chain + n, sizeof chain - n, " or true");
    ck_assert_int_eq(run_text(chain, v), 1);
}
END_TEST

/* ---- what a program says about itself ------------------------------------------------------- */

START_TEST(program_accessors)
{
    rules_spec r[] = {
        {"a", RULES_ALLOW, RULES_ACTIVE, "user_external_id in @vip_customers", 0},
        {"b", RULES_BLOCK, RULES_SHADOW,
         "merchant_id in @blocked_merchants or user_external_id in @vip_customers", 0},
        {"c", RULES_REVIEW, RULES_ACTIVE, "score > 0.5 and merchant_id not in @blocked_merchants",
         0},
        {"d", RULES_REVIEW, RULES_ACTIVE, "challenger_score > 0.5", 0},
    };
    for (int i = 0; i < 4; i++)
        r[i].when_len = strlen(r[i].when);
    rules_program *p;
    rules_error err;
    ck_assert_int_eq(rules_compile(r, 4, &catalog, &p, &err), RULES_OK);
    ck_assert_uint_eq(rules_count(p), 4);
    ck_assert_str_eq(rules_rule_name(p, 2), "c");
    ck_assert_int_eq(rules_rule_action(p, 1), RULES_BLOCK);
    ck_assert_int_eq(rules_rule_mode(p, 1), RULES_SHADOW);
    ck_assert_int_eq(rules_rule_uses_score(p, 0), 0);
    ck_assert_int_eq(rules_rule_uses_score(p, 2), 1);
    ck_assert_int_eq(rules_rule_uses_score(p, 3), 1);
    ck_assert_uint_eq(rules_list_count(p), 2);
    ck_assert_str_eq(rules_list_name(p, 0), "vip_customers");
    ck_assert_str_eq(rules_list_name(p, 1), "blocked_merchants");
    ck_assert_int_eq(rules_list_kind(p, 1), LISTSET_STRING);
    ck_assert_uint_eq(rules_probe_count(p), 2); /* two distinct (list, slot) pairs */
    ck_assert_uint_eq(rules_probe_list(p, 0), 0);
    ck_assert_uint_eq(rules_probe_slot(p, 0), S_USER);
    ck_assert_uint_eq(rules_probe_list(p, 1), 1);
    ck_assert_uint_eq(rules_probe_slot(p, 1), S_MERCHANT);
    ck_assert_uint_gt(rules_program_bytes(p), sizeof(void *));
    /* the program copied what it keeps: the spec's strings may go */
    char when[] = "country = \"FR\"";
    rules_spec one = {"x", RULES_BLOCK, RULES_ACTIVE, when, strlen(when)};
    rules_program *q;
    ck_assert_int_eq(rules_compile(&one, 1, &catalog, &q, &err), RULES_OK);
    memset(when, 'Z', strlen(when));
    rules_value v[N_SLOTS];
    base_slots(v);
    ck_assert_int_eq(eval1(q, v, 0), 1);
    rules_free(q);
    /* fewer slots than the catalogue: nothing matches, -1 */
    uint64_t m[RULES_BITMAP_WORDS];
    ck_assert_int_eq(rules_eval(p, v, N_SLOTS - 1, NULL, 0, m), -1);
    ck_assert(m[0] == 0);
    rules_free(p);
    /* no rules: a program that matches nothing */
    ck_assert_int_eq(rules_compile(NULL, 0, &catalog, &p, &err), RULES_OK);
    ck_assert_uint_eq(rules_count(p), 0);
    rules_free(p);
    rules_action a;
    rules_mode md;
    ck_assert_int_eq(rules_action_parse("review", 6, &a), 0);
    ck_assert_int_eq(a, RULES_REVIEW);
    ck_assert_int_eq(rules_action_parse("Review", 6, &a), -1);
    ck_assert_int_eq(rules_mode_parse("shadow", 6, &md), 0);
    ck_assert_int_eq(md, RULES_SHADOW);
    ck_assert_str_eq(rules_action_name(RULES_BLOCK), "block");
    ck_assert_str_eq(rules_mode_name(RULES_ACTIVE), "active");
}
END_TEST

/* The caller's probe answers decide `in @list` (a replay from stored answers needs no set). */
START_TEST(probes_given_by_caller)
{
    rules_spec r[2] = {
        {"in", RULES_BLOCK, RULES_ACTIVE, "merchant_id in @blocked_merchants", 0},
        {"out", RULES_REVIEW, RULES_ACTIVE, "merchant_id not in @blocked_merchants", 0},
    };
    for (int i = 0; i < 2; i++)
        r[i].when_len = strlen(r[i].when);
    rules_program *p;
    rules_error err;
    ck_assert_int_eq(rules_compile(r, 2, &catalog, &p, &err), RULES_OK);
    ck_assert_uint_eq(rules_probe_count(p), 1);
    rules_value v[N_SLOTS];
    base_slots(v);
    static const struct {
        uint8_t answer;
        uint64_t want;
    } cases[] = {{RULES_PROBE_YES, 1}, {RULES_PROBE_NO, 2}, {RULES_PROBE_MISSING, 0}, {7, 0}};
    uint64_t m[RULES_BITMAP_WORDS];
    for (size_t i = 0; i < 4; i++) {
        rules_eval(p, v, N_SLOTS, &cases[i].answer, 0, m);
        ck_assert_uint_eq(m[0], cases[i].want);
    }
    /* no set for the list: an empty list */
    const listset *none[1] = {NULL};
    uint8_t probe = 9;
    rules_probe_resolve(p, v, none, &probe);
    ck_assert_uint_eq(probe, RULES_PROBE_NO);
    v[S_MERCHANT] = (rules_value){0};
    rules_probe_resolve(p, v, none, &probe);
    ck_assert_uint_eq(probe, RULES_PROBE_MISSING);
    /* a missing operand is false both ways whatever the answer says */
    probe = RULES_PROBE_YES;
    rules_eval(p, v, N_SLOTS, &probe, 0, m);
    ck_assert_uint_eq(m[0], 0);
    rules_free(p);
}
END_TEST

/* ---- decisions by hand ----------------------------------------------------------------------- */

static rules_verdict decide_texts(const char *const *when, const rules_action *act,
                                  const rules_mode *mode, size_t n, const rules_value *v,
                                  const rules_decide_in *in, char *by, size_t bylen)
{
    rules_spec r[8];
    char names[8][8];
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "r%zu", i);
        r[i] = (rules_spec){names[i], act[i], mode[i], when[i], strlen(when[i])};
    }
    rules_program *p;
    rules_error err;
    ck_assert_int_eq(rules_compile(r, n, &catalog, &p, &err), RULES_OK);
    uint64_t m[RULES_BITMAP_WORDS];
    rules_eval(p, v, N_SLOTS, NULL, in->degraded ? RULES_EVAL_DEGRADED : 0, m);
    rules_verdict vd = rules_decide(p, m, in);
    rules_decided_by_text(p, &vd, by, bylen);
    rules_free(p);
    return vd;
}

START_TEST(decisions_by_hand)
{
    rules_value v[N_SLOTS];
    base_slots(v); /* amount 2500, score 0.5 */
    rules_decide_in in = {0, RULES_REVIEW, 0.5, 0.6, 0.9};
    char by[80];
    const char *w[] = {"amount > 1000", "amount > 2000", "amount > 3000", "score < 0.6"};
    rules_action act[] = {RULES_REVIEW, RULES_BLOCK, RULES_ALLOW, RULES_ALLOW};
    rules_mode mode[] = {RULES_ACTIVE, RULES_ACTIVE, RULES_ACTIVE, RULES_SHADOW};
    /* review and block match; block wins; the shadow allow never decides */
    rules_verdict vd = decide_texts(w, act, mode, 4, v, &in, by, sizeof by);
    ck_assert_int_eq(vd.decision, RULES_BLOCK);
    ck_assert_int_eq(vd.rule, 1);
    ck_assert_str_eq(by, "rule:r1");
    /* the shadow allow made active: allow beats block */
    mode[3] = RULES_ACTIVE;
    vd = decide_texts(w, act, mode, 4, v, &in, by, sizeof by);
    ck_assert_int_eq(vd.decision, RULES_ALLOW);
    ck_assert_str_eq(by, "rule:r3");
    /* degraded: the allow rule reads score and is skipped; block rule decides */
    in.degraded = 1;
    vd = decide_texts(w, act, mode, 4, v, &in, by, sizeof by);
    ck_assert_int_eq(vd.decision, RULES_BLOCK);
    ck_assert_str_eq(by, "rule:r1");
    /* degraded, no rule matches: the fallback */
    v[S_AMOUNT] = num(10);
    vd = decide_texts(w, act, mode, 4, v, &in, by, sizeof by);
    ck_assert_int_eq(vd.decision, RULES_REVIEW);
    ck_assert_int_eq(vd.by, RULES_BY_FALLBACK);
    ck_assert_str_eq(by, "fallback");
    /* degraded: `not (score > 0.9)` would be true with score missing, but it is skipped */
    const char *w2[] = {"not (score > 0.9)"};
    rules_action a2[] = {RULES_ALLOW};
    rules_mode m2[] = {RULES_ACTIVE};
    v[S_SCORE] = (rules_value){0};
    vd = decide_texts(w2, a2, m2, 1, v, &in, by, sizeof by);
    ck_assert_str_eq(by, "fallback");
    /* not degraded, nothing matches: thresholds */
    in.degraded = 0;
    v[S_SCORE] = num(0.5);
    in.score = 0.95;
    vd = decide_texts(w2, a2, m2, 0, v, &in, by, sizeof by);
    ck_assert_int_eq(vd.decision, RULES_BLOCK);
    ck_assert_str_eq(by, "score_threshold");
    in.score = 0.9; /* >= block threshold */
    vd = decide_texts(w2, a2, m2, 0, v, &in, by, sizeof by);
    ck_assert_int_eq(vd.decision, RULES_BLOCK);
    in.score = 0.6;
    vd = decide_texts(w2, a2, m2, 0, v, &in, by, sizeof by);
    ck_assert_int_eq(vd.decision, RULES_REVIEW);
    ck_assert_str_eq(by, "score_threshold");
    in.score = 0.5999;
    vd = decide_texts(w2, a2, m2, 0, v, &in, by, sizeof by);
    ck_assert_int_eq(vd.decision, RULES_ALLOW);
    ck_assert_str_eq(by, "default");
    in.score = NAN;
    vd = decide_texts(w2, a2, m2, 0, v, &in, by, sizeof by);
    ck_assert_str_eq(by, "default");
    /* a review rule beats the review threshold; the block threshold beats a review rule */
    const char *w3[] = {"amount > 5"};
    rules_action a3[] = {RULES_REVIEW};
    in.score = 0.7;
    vd = decide_texts(w3, a3, m2, 1, v, &in, by, sizeof by);
    ck_assert_str_eq(by, "rule:r0");
    in.score = 0.95;
    vd = decide_texts(w3, a3, m2, 1, v, &in, by, sizeof by);
    ck_assert_int_eq(vd.decision, RULES_BLOCK);
    ck_assert_str_eq(by, "score_threshold");
    /* an active allow rule beats the block threshold */
    a3[0] = RULES_ALLOW;
    vd = decide_texts(w3, a3, m2, 1, v, &in, by, sizeof by);
    ck_assert_int_eq(vd.decision, RULES_ALLOW);
    ck_assert_str_eq(by, "rule:r0");
    /* no program at all */
    uint64_t none[RULES_BITMAP_WORDS] = {0};
    vd = rules_decide(NULL, none, &in);
    ck_assert_int_eq(vd.decision, RULES_BLOCK);
    /* the text is truncated, never overflows */
    rules_verdict rv = {RULES_ALLOW, RULES_BY_SCORE_THRESHOLD, -1};
    char small[6];
    ck_assert_uint_eq(rules_decided_by_text(NULL, &rv, small, sizeof small), 5);
    ck_assert_str_eq(small, "score");
}
END_TEST

/* ---- the property test: a second implementation ---------------------------------------------- */

/* Tree of the generator.  Types: 'n' number, 's' string, 'b' boolean. */
enum gk {
    G_NUM,
    G_STR,
    G_BOOL,
    G_SLOT,
    G_NEG,
    G_ADD,
    G_SUB,
    G_MUL,
    G_DIV,
    G_EQ,
    G_NE,
    G_LT,
    G_LE,
    G_GT,
    G_GE,
    G_AND,
    G_OR,
    G_NOT,
    G_MISS,
    G_INSET,
    G_NOTINSET,
    G_INLIST,
    G_NOTINLIST
};

typedef struct gnode {
    int kind;
    char type;
    double num;
    const char *str;
    int slot;
    int list;
    int a, b;
    int nlit;
    double lnum[4];
    const char *lstr[4];
} gnode;

typedef struct gtree {
    gnode n[4096];
    int count;
    uint64_t rng;
    int uses_score;
} gtree;

/* Operands of the property catalogue. */
enum { P_N1, P_N2, P_N3, P_SCORE, P_S1, P_S2, P_IP, P_SLOTS };
static const rules_operand p_ops[P_SLOTS] = {
    {"n1", RULES_NUMBER, 0}, {"n2", RULES_NUMBER, 0},
    {"n3", RULES_NUMBER, 0}, {"score", RULES_NUMBER, RULES_OPERAND_SCORE},
    {"s1", RULES_STRING, 0}, {"s2", RULES_STRING, 0},
    {"ip", RULES_STRING, 0},
};
static const rules_list p_lists[] = {
    {"Lstr", LISTSET_STRING}, {"Lnum", LISTSET_NUMBER}, {"Lip", LISTSET_IP}};
static const rules_catalog p_cat = {p_ops, P_SLOTS, p_lists, 3};

static const double num_pool[] = {0, 1, -1, 2.5, 3, 0.1, 1e308, -0.0, 7, 1e-300};
static const char *const str_pool[] = {"x", "y", "", "xy", "\"q\"", "\xc3\xa9"};
static const char *const lstr_items[] = {"x", "xy", "\"q\""};
static const double lnum_items[] = {1, 3, -0.0, 2.5};
static const char *const ip_pool[] = {"10.1.2.3", "192.168.0.1",    "2001:db8::7",
                                      "::1",      "not an ip",      "10.255.255.255",
                                      "11.0.0.0", "::ffff:10.0.0.9"};
/* Lip holds 10.0.0.0/8 and 2001:db8::/32: membership of each ip_pool entry by hand */
static const int ip_member[] = {1, 0, 1, 0, 0, 1, 0, 1};

static uint64_t rnd(gtree *t)
{
    t->rng ^= t->rng << 13;
    t->rng ^= t->rng >> 7;
    t->rng ^= t->rng << 17;
    return t->rng;
}

static int rn(gtree *t, int n)
{
    return (int)(rnd(t) % (uint64_t)n);
}

static int gnew(gtree *t, int kind, char type)
{
    gnode *g = &t->n[t->count];
    memset(g, 0, sizeof *g);
    g->kind = kind;
    g->type = type;
    g->a = g->b = -1;
    return t->count++;
}

static int gen_num(gtree *t, int d);
static int gen_str(gtree *t, int d);

static int gen_num(gtree *t, int d)
{
    int c = d <= 0 || t->count > 3000 ? rn(t, 2) : rn(t, 8);
    if (c == 0) {
        int i = gnew(t, G_NUM, 'n');
        t->n[i].num = num_pool[rn(t, 10)];
        return i;
    }
    if (c == 1) {
        int i = gnew(t, G_SLOT, 'n');
        t->n[i].slot = rn(t, 4);
        if (t->n[i].slot == P_SCORE)
            t->uses_score = 1;
        return i;
    }
    if (c == 2) {
        int a = gen_num(t, d - 1);
        int i = gnew(t, G_NEG, 'n');
        t->n[i].a = a;
        return i;
    }
    int a = gen_num(t, d - 1), b = gen_num(t, d - 1);
    int i = gnew(t, G_ADD + rn(t, 4), 'n');
    t->n[i].a = a;
    t->n[i].b = b;
    return i;
}

static int gen_str(gtree *t, int d)
{
    (void)d;
    if (rn(t, 2)) {
        int i = gnew(t, G_STR, 's');
        t->n[i].str = str_pool[rn(t, 6)];
        return i;
    }
    int i = gnew(t, G_SLOT, 's');
    t->n[i].slot = P_S1 + rn(t, 2);
    return i;
}

static int gen_bool(gtree *t, int d)
{
    int c = d <= 0 || t->count > 3000 ? rn(t, 3) : rn(t, 11);
    switch (c) {
    case 0: { /* comparison of numbers */
        int a = gen_num(t, d - 1), b = gen_num(t, d - 1);
        int i = gnew(t, G_EQ + rn(t, 6), 'b');
        t->n[i].a = a, t->n[i].b = b;
        return i;
    }
    case 1: { /* comparison of strings */
        int a = gen_str(t, d - 1), b = gen_str(t, d - 1);
        int i = gnew(t, G_EQ + rn(t, 2), 'b');
        t->n[i].a = a, t->n[i].b = b;
        return i;
    }
    case 2: { /* list membership */
        int which = rn(t, 3);
        int a = gnew(t, G_SLOT, which == 1 ? 'n' : 's');
        t->n[a].slot = which == 0 ? P_S1 + rn(t, 2) : which == 1 ? rn(t, 4) : P_IP;
        if (t->n[a].slot == P_SCORE)
            t->uses_score = 1;
        int i = gnew(t, rn(t, 2) ? G_INLIST : G_NOTINLIST, 'b');
        t->n[i].a = a;
        t->n[i].list = which;
        return i;
    }
    case 3:
    case 4: {
        int a = gen_bool(t, d - 1), b = gen_bool(t, d - 1);
        int i = gnew(t, c == 3 ? G_AND : G_OR, 'b');
        t->n[i].a = a, t->n[i].b = b;
        return i;
    }
    case 5: {
        int a = gen_bool(t, d - 1);
        int i = gnew(t, G_NOT, 'b');
        t->n[i].a = a;
        return i;
    }
    case 6: {
        int a = rn(t, 2) ? gen_num(t, d - 1) : gen_str(t, d - 1);
        int i = gnew(t, G_MISS, 'b');
        t->n[i].a = a;
        return i;
    }
    case 7: {
        int isnum = rn(t, 2);
        int a = isnum ? gen_num(t, d - 1) : gen_str(t, d - 1);
        int i = gnew(t, rn(t, 2) ? G_INSET : G_NOTINSET, 'b');
        gnode *g = &t->n[i];
        g->a = a;
        g->nlit = 1 + rn(t, 4);
        for (int k = 0; k < g->nlit; k++) {
            if (isnum)
                g->lnum[k] = num_pool[rn(t, 10)];
            else
                g->lstr[k] = str_pool[rn(t, 6)];
        }
        return i;
    }
    case 8: {
        int i = gnew(t, G_BOOL, 'b');
        t->n[i].num = rn(t, 2);
        return i;
    }
    case 9: /* a number as a condition */
        return gen_num(t, d - 1);
    default: {
        int a = gen_bool(t, d - 1), b = gen_bool(t, d - 1);
        int i = gnew(t, G_OR, 'b');
        t->n[i].a = a, t->n[i].b = b;
        return i;
    }
    }
}

/* The documented precedence: or 1, and 2, not 3, comparison 4, + - 5, * / 6, unary minus 7,
 * primaries 8. */
static int gprec(const gtree *t, int i)
{
    switch (t->n[i].kind) {
    case G_OR:
        return 1;
    case G_AND:
        return 2;
    case G_NOT:
        return 3;
    case G_EQ:
    case G_NE:
    case G_LT:
    case G_LE:
    case G_GT:
    case G_GE:
    case G_INSET:
    case G_NOTINSET:
    case G_INLIST:
    case G_NOTINLIST:
        return 4;
    case G_ADD:
    case G_SUB:
        return 5;
    case G_MUL:
    case G_DIV:
        return 6;
    case G_NEG:
        return 7;
    case G_NUM:
        return t->n[i].num < 0 || signbit(t->n[i].num) ? 7 : 8; /* rendered with '-' */
    default:
        return 8;
    }
}

typedef struct sbuf {
    char s[RULES_WHEN_MAX * 4];
    size_t n;
    int overflow;
} sbuf;

static void put(sbuf *b, const char *s)
{
    size_t k = strlen(s);
    if (b->n + k + 1 >= sizeof b->s) {
        b->overflow = 1;
        return;
    }
    memcpy(b->s + b->n, s, k + 1);
    b->n += k;
}

static void put_num(sbuf *b, double v)
{
    char buf[40];
    if (signbit(v)) {
        put(b, "-");
        v = -v;
    }
    snprintf(buf, sizeof buf, "%.17g", v);
    put(b, buf);
}

static void put_str(sbuf *b, const char *s)
{
    put(b, "\"");
    for (; *s; s++) {
        char e[3] = {*s, 0, 0};
        if (*s == '"' || *s == '\\')
            e[0] = '\\', e[1] = *s;
        put(b, e);
    }
    put(b, "\"");
}

static void render(const gtree *t, int i, sbuf *b, int extra);

/* Renders child i, in parentheses when its precedence is below min (or at random with extra). */
static void render_child(const gtree *t, int i, int min, sbuf *b, int extra)
{
    int paren = gprec(t, i) < min || (extra && (t->n[i].kind * 7 + i) % 5 == 0);
    if (paren)
        put(b, "(");
    render(t, i, b, extra);
    if (paren)
        put(b, ")");
}

static void render(const gtree *t, int i, sbuf *b, int extra)
{
    static const char *const ops[] = {
        [G_ADD] = " + ", [G_SUB] = " - ", [G_MUL] = " * ",   [G_DIV] = " / ",
        [G_EQ] = " = ",  [G_NE] = " != ", [G_LT] = " < ",    [G_LE] = " <= ",
        [G_GT] = " > ",  [G_GE] = " >= ", [G_AND] = " and ", [G_OR] = " or "};
    const gnode *g = &t->n[i];
    int p = gprec(t, i);
    switch (g->kind) {
    case G_NUM:
        put_num(b, g->num);
        break;
    case G_STR:
        put_str(b, g->str);
        break;
    case G_BOOL:
        put(b, g->num ? "true" : "false");
        break;
    case G_SLOT:
        put(b, p_ops[g->slot].name);
        break;
    case G_NEG:
        put(b, "-");
        render_child(t, g->a, 7, b, extra);
        break;
    case G_NOT:
        put(b, "not ");
        render_child(t, g->a, 3, b, extra);
        break;
    case G_MISS:
        put(b, "is_missing(");
        render(t, g->a, b, extra);
        put(b, ")");
        break;
    case G_INSET:
    case G_NOTINSET:
        render_child(t, g->a, 5, b, extra);
        put(b, g->kind == G_INSET ? " in (" : " not in (");
        for (int k = 0; k < g->nlit; k++) {
            if (k)
                put(b, ", ");
            if (t->n[g->a].type == 'n')
                put_num(b, g->lnum[k]);
            else
                put_str(b, g->lstr[k]);
        }
        put(b, ")");
        break;
    case G_INLIST:
    case G_NOTINLIST:
        render(t, g->a, b, 0);
        put(b, g->kind == G_INLIST ? " in @" : " not in @");
        put(b, p_lists[g->list].name);
        break;
    default: /* binary */
        if (g->kind >= G_EQ && g->kind <= G_GE) {
            render_child(t, g->a, 5, b, extra); /* comparisons do not chain */
            put(b, ops[g->kind]);
            render_child(t, g->b, 5, b, extra);
        } else {
            render_child(t, g->a, p, b, extra);
            put(b, ops[g->kind]);
            render_child(t, g->b, p + 1, b, extra);
        }
    }
}

/* The second implementation: values are {missing, number} or {missing, string}. */
typedef struct gval {
    int miss;
    double d;
    const char *s;
    int b;
} gval;

static const rules_value *g_slots;

static int lit_eq_num(double x, double y)
{
    return x == y;
}

static gval geval(const gtree *t, int i)
{
    const gnode *g = &t->n[i];
    gval r = {0, 0, NULL, 0}, x, y;
    switch (g->kind) {
    case G_NUM:
        r.d = g->num;
        return r;
    case G_STR:
        r.s = g->str;
        return r;
    case G_BOOL:
        r.b = g->num != 0;
        return r;
    case G_SLOT: {
        const rules_value *v = &g_slots[g->slot];
        if (g->type == 'n') {
            r.miss = v->type != RULES_NUMBER || isnan(v->num);
            r.d = v->num;
        } else {
            r.miss = v->type != RULES_STRING;
            r.s = v->s;
        }
        return r;
    }
    case G_NEG:
        x = geval(t, g->a);
        r.miss = x.miss;
        r.d = -x.d;
        return r;
    case G_ADD:
    case G_SUB:
    case G_MUL:
    case G_DIV:
        x = geval(t, g->a);
        y = geval(t, g->b);
        if (x.miss || y.miss) {
            r.miss = 1;
            return r;
        }
        r.d = g->kind == G_ADD   ? x.d + y.d
              : g->kind == G_SUB ? x.d - y.d
              : g->kind == G_MUL ? x.d * y.d
                                 : (y.d == 0 ? NAN : x.d / y.d);
        r.miss = !isfinite(r.d);
        return r;
    case G_AND:
        x = geval(t, g->a);
        y = geval(t, g->b);
        r.b = (x.b || (t->n[g->a].type == 'n' && !x.miss && x.d != 0)) &&
              (y.b || (t->n[g->b].type == 'n' && !y.miss && y.d != 0));
        return r;
    case G_OR:
        x = geval(t, g->a);
        y = geval(t, g->b);
        r.b = (x.b || (t->n[g->a].type == 'n' && !x.miss && x.d != 0)) ||
              (y.b || (t->n[g->b].type == 'n' && !y.miss && y.d != 0));
        return r;
    case G_NOT:
        x = geval(t, g->a);
        r.b = !(x.b || (t->n[g->a].type == 'n' && !x.miss && x.d != 0));
        return r;
    case G_MISS:
        x = geval(t, g->a);
        r.b = x.miss;
        return r;
    case G_INSET:
    case G_NOTINSET: {
        x = geval(t, g->a);
        if (x.miss)
            return r;
        int found = 0;
        for (int k = 0; k < g->nlit; k++)
            found |=
                t->n[g->a].type == 'n' ? lit_eq_num(x.d, g->lnum[k]) : strcmp(x.s, g->lstr[k]) == 0;
        r.b = found == (g->kind == G_INSET);
        return r;
    }
    case G_INLIST:
    case G_NOTINLIST: {
        x = geval(t, g->a);
        if (x.miss)
            return r;
        int found = 0;
        if (g->list == 0) {
            for (int k = 0; k < 3; k++)
                found |= strcmp(x.s, lstr_items[k]) == 0;
        } else if (g->list == 1) {
            for (int k = 0; k < 4; k++)
                found |= x.d == lnum_items[k];
        } else {
            for (int k = 0; k < 8; k++)
                if (strcmp(x.s, ip_pool[k]) == 0)
                    found = ip_member[k];
        }
        r.b = found == (g->kind == G_INLIST);
        return r;
    }
    default: /* comparisons */
        x = geval(t, g->a);
        y = geval(t, g->b);
        if (x.miss || y.miss)
            return r;
        if (t->n[g->a].type == 's') {
            int eq = strcmp(x.s, y.s) == 0;
            r.b = g->kind == G_EQ ? eq : !eq;
            return r;
        }
        r.b = g->kind == G_EQ   ? x.d == y.d
              : g->kind == G_NE ? x.d != y.d
              : g->kind == G_LT ? x.d < y.d
              : g->kind == G_LE ? x.d <= y.d
              : g->kind == G_GT ? x.d > y.d
                                : x.d >= y.d;
        return r;
    }
}

static int gtruth(const gtree *t, int root)
{
    gval v = geval(t, root);
    if (t->n[root].type == 'n')
        return !v.miss && v.d != 0;
    return v.b;
}

static listset *p_sets[3];

static void make_p_sets(void)
{
    if (p_sets[0])
        return;
    listset_builder *b = listset_builder_new(LISTSET_STRING, 0);
    for (int k = 0; k < 3; k++)
        listset_builder_add(b, lstr_items[k], strlen(lstr_items[k]), NULL, 0);
    p_sets[0] = listset_build(b);
    b = listset_builder_new(LISTSET_NUMBER, 0);
    for (int k = 0; k < 4; k++)
        listset_builder_add_number(b, lnum_items[k]);
    p_sets[1] = listset_build(b);
    b = listset_builder_new(LISTSET_IP, 0);
    listset_builder_add(b, "10.0.0.0/8", 10, NULL, 0);
    listset_builder_add(b, "2001:db8::/32", 13, NULL, 0);
    p_sets[2] = listset_build(b);
}

static void random_slots(gtree *t, rules_value *v)
{
    static const double nums[] = {0, -0.0, 1, -1, 2.5, 3, 1e308, -1e308, 0.1, 7};
    for (int s = 0; s < P_SLOTS; s++) {
        int c = rn(t, 12);
        if (c == 0) {
            v[s] = (rules_value){0};
        } else if (s < P_S1) {
            v[s] = c == 1 ? num(NAN) : num(nums[rn(t, 10)]);
        } else if (s == P_IP) {
            v[s] = str(ip_pool[rn(t, 8)]);
        } else {
            v[s] = str(str_pool[rn(t, 6)]);
        }
    }
}

/* Program list index -> set, by name. */
static void program_sets(const rules_program *p, const listset **ps)
{
    for (size_t li = 0; li < rules_list_count(p); li++)
        for (int k = 0; k < 3; k++)
            if (strcmp(rules_list_name(p, li), p_lists[k].name) == 0)
                ps[li] = p_sets[k];
}

START_TEST(property_expressions)
{
    make_p_sets();
    static gtree t;
    t.rng = 0x1234567887654321ULL;
    static sbuf b;
    int compiled = 0, evaluated = 0, matched = 0;
    for (int iter = 0; iter < 4000; iter++) {
        t.count = 0;
        t.uses_score = 0;
        int root = gen_bool(&t, 1 + rn(&t, 6));
        b.n = 0;
        b.overflow = 0;
        b.s[0] = 0;
        render(&t, root, &b, iter % 2);
        if (b.overflow || b.n > RULES_WHEN_MAX)
            continue;
        rules_spec r = {"p", RULES_BLOCK, RULES_ACTIVE, b.s, b.n};
        rules_program *p;
        rules_error err;
        int rc = rules_compile(&r, 1, &p_cat, &p, &err);
        if (rc != RULES_OK && strstr(err.message, "nested deeper") != NULL)
            continue;
        ck_assert_msg(rc == RULES_OK, "'%s': column %d: %s", b.s, err.column, err.message);
        compiled++;
        ck_assert_int_eq(rules_rule_uses_score(p, 0), t.uses_score);
        const listset *ps[3] = {NULL, NULL, NULL};
        program_sets(p, ps);
        for (int k = 0; k < 25; k++) {
            rules_value v[P_SLOTS];
            random_slots(&t, v);
            g_slots = v;
            int want = gtruth(&t, root);
            uint8_t probes[64];
            ck_assert_uint_le(rules_probe_count(p), 64);
            rules_probe_resolve(p, v, ps, probes);
            uint64_t m[RULES_BITMAP_WORDS];
            rules_eval(p, v, P_SLOTS, probes, 0, m);
            int got = (int)(m[0] & 1);
            ck_assert_msg(got == want, "'%s': engine %d, reference %d", b.s, got, want);
            evaluated++;
            matched += got;
        }
        rules_free(p);
    }
    ck_assert_int_gt(compiled, 3500);
    /* neither trivially true nor trivially false */
    ck_assert_int_gt(matched, evaluated / 10);
    ck_assert_int_lt(matched, evaluated * 9 / 10);
}
END_TEST

/* The issue's precedence, read again, over random policies. */
static rules_verdict ref_decide(const rules_spec *r, const int *match, const int *uses_score, int n,
                                const rules_decide_in *in)
{
    const rules_action order[3] = {RULES_ALLOW, RULES_BLOCK, RULES_REVIEW};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < n; i++) {
            if (r[i].mode == RULES_SHADOW || r[i].action != order[k] || !match[i])
                continue;
            if (in->degraded && uses_score[i])
                continue;
            return (rules_verdict){order[k], RULES_BY_RULE, i};
        }
        if (!in->degraded && order[k] == RULES_BLOCK && in->score >= in->block_threshold)
            return (rules_verdict){RULES_BLOCK, RULES_BY_SCORE_THRESHOLD, -1};
        if (!in->degraded && order[k] == RULES_REVIEW && in->score >= in->review_threshold)
            return (rules_verdict){RULES_REVIEW, RULES_BY_SCORE_THRESHOLD, -1};
    }
    if (in->degraded)
        return (rules_verdict){in->fallback, RULES_BY_FALLBACK, -1};
    return (rules_verdict){RULES_ALLOW, RULES_BY_DEFAULT, -1};
}

START_TEST(property_decisions)
{
    make_p_sets();
    static gtree trees[12];
    static sbuf texts[12];
    int roots[12], uses[12];
    uint64_t rng = 0xfeedfacecafebeefULL;
    int by_count[4] = {0, 0, 0, 0};
    for (int iter = 0; iter < 600; iter++) {
        trees[0].rng = rng;
        int n = 1 + rn(&trees[0], 12);
        rules_spec r[12];
        char names[12][8];
        for (int i = 0; i < n; i++) {
            trees[i].rng = rnd(&trees[0]) | 1;
            trees[i].count = 0;
            trees[i].uses_score = 0;
            roots[i] = gen_bool(&trees[i], 1 + rn(&trees[i], 3));
            uses[i] = trees[i].uses_score;
            texts[i].n = 0;
            texts[i].overflow = 0;
            texts[i].s[0] = 0;
            render(&trees[i], roots[i], &texts[i], 0);
            snprintf(names[i], sizeof names[i], "r%d", i);
            r[i] = (rules_spec){names[i], (rules_action)rn(&trees[0], 3),
                                rn(&trees[0], 4) == 0 ? RULES_SHADOW : RULES_ACTIVE, texts[i].s,
                                texts[i].n};
        }
        rng = trees[0].rng;
        rules_program *p;
        rules_error err;
        ck_assert_msg(rules_compile(r, (size_t)n, &p_cat, &p, &err) == RULES_OK,
                      "rule %d column %d: %s", err.rule, err.column, err.message);
        const listset *ps[3] = {NULL, NULL, NULL};
        program_sets(p, ps);
        for (int k = 0; k < 10; k++) {
            rules_value v[P_SLOTS];
            random_slots(&trees[0], v);
            g_slots = v;
            rules_decide_in in = {rn(&trees[0], 4) == 0, (rules_action)rn(&trees[0], 3),
                                  rn(&trees[0], 100) / 100.0, 0.5, 0.8};
            if (rn(&trees[0], 10) == 0)
                in.score = NAN;
            int match[12];
            for (int i = 0; i < n; i++)
                match[i] = gtruth(&trees[i], roots[i]);
            uint8_t probes[256];
            rules_probe_resolve(p, v, ps, probes);
            uint64_t m[RULES_BITMAP_WORDS];
            rules_eval(p, v, P_SLOTS, probes, in.degraded ? RULES_EVAL_DEGRADED : 0, m);
            for (int i = 0; i < n; i++) {
                int got = (int)(m[0] >> i & 1);
                int want = in.degraded && uses[i] ? 0 : match[i];
                ck_assert_msg(got == want, "rule '%s' degraded %d: engine %d, reference %d",
                              texts[i].s, in.degraded, got, want);
            }
            rules_verdict want = ref_decide(r, match, uses, n, &in);
            rules_verdict got = rules_decide(p, m, &in);
            ck_assert_msg(got.decision == want.decision && got.by == want.by &&
                              got.rule == want.rule,
                          "decision %d/%d/%d, reference %d/%d/%d", got.decision, got.by, got.rule,
                          want.decision, want.by, want.rule);
            by_count[got.by]++;
        }
        rules_free(p);
    }
    for (int k = 0; k < 4; k++) /* every kind of decided_by was exercised */
        ck_assert_int_gt(by_count[k], 50);
}
END_TEST

/* ---- hostile input --------------------------------------------------------------------------- */

START_TEST(hostile_text)
{
    static const char *const toks[] = {
        "amount",
        "score",
        "country",
        "(",
        ")",
        "and",
        "or",
        "not",
        "in",
        "@blocked_merchants",
        "@bad_ips",
        "@",
        "\"",
        "\"x\"",
        "\\",
        "=",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "+",
        "-",
        "*",
        "/",
        "1",
        "1e",
        "1.5",
        "0",
        "true",
        "false",
        "is_missing",
        "block",
        "if",
        ",",
        "`",
        "`amount`",
        "\xc3",
        "\xa9",
        "\xf0\x9f\x98\x80",
        "\\u",
        "\\ud800",
        " ",
        "\n",
        "\0",
        "#",
        "1e308",
        "/0",
        "--",
        "not in",
        "(\"a\",",
        "in (",
        "@x-y.z",
        "review if",
    };
    const size_t ntok = sizeof toks / sizeof toks[0];
    uint64_t rng = 99;
    static char text[RULES_WHEN_MAX + 64];
    rules_value v[N_SLOTS];
    base_slots(v);
    int ok = 0;
    for (int iter = 0; iter < 30000; iter++) {
        size_t n = 0;
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int mode = (int)(rng % 3);
        int count = (int)(rng >> 8) % 40;
        for (int k = 0; k < count; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            if (mode == 0) { /* random bytes */
                text[n++] = (char)(rng >> 24);
            } else {
                const char *tk = toks[(rng >> 16) % ntok];
                size_t tl = tk[0] ? strlen(tk) : 1;
                memcpy(text + n, tk, tl);
                n += tl;
                if (mode == 1)
                    text[n++] = ' ';
            }
        }
        rules_spec r = {"h", RULES_BLOCK, RULES_ACTIVE, text, n};
        rules_program *p;
        rules_error err;
        int rc = rules_compile(&r, 1, &catalog, &p, &err);
        if (rc == RULES_OK) {
            ok++;
            eval1(p, v, 0);
            eval1(p, v, RULES_EVAL_DEGRADED);
            rules_free(p);
        } else {
            ck_assert_int_eq(rc, RULES_E_INVALID);
            ck_assert_int_ge(err.column, 1);
            ck_assert_int_le(err.column, (int)n + 1);
            ck_assert_uint_gt(strlen(err.message), 10);
        }
    }
    ck_assert_int_gt(ok, 20); /* some of the soup is valid, and evaluates */
}
END_TEST

/* The child of eval_never_allocates: exits with the number of allocator calls (capped at 100)
 * made by the per-decision functions after it marks itself ready; 101 without the probe. */
static int alloc_probe_child(void)
{
    rules_spec r[3] = {
        {"a", RULES_ALLOW, RULES_ACTIVE, "user_external_id in @vip_customers", 0},
        {"b", RULES_BLOCK, RULES_ACTIVE,
         "merchant_id in @blocked_merchants or ip_address in @bad_ips or card_bin_num in @bad_bins",
         0},
        {"c", RULES_REVIEW, RULES_SHADOW,
         "amount / user_amount_avg_30d > 3 and country not in (\"FR\", \"DE\") or score > 0.9", 0},
    };
    for (int i = 0; i < 3; i++)
        r[i].when_len = strlen(r[i].when);
    rules_program *p;
    rules_error err;
    if (rules_compile(r, 3, &catalog, &p, &err) != RULES_OK)
        return 102;
    make_sets();
    const listset *ps[4];
    for (size_t li = 0; li < rules_list_count(p); li++)
        for (int k = 0; k < 4; k++)
            if (strcmp(rules_list_name(p, li), lists[k].name) == 0)
                ps[li] = sets[k];
    rules_value v[N_SLOTS];
    base_slots(v);
    if (vigil_alloc_mark_ready == NULL || vigil_alloc_calls_after_ready == NULL)
        return 101;
    vigil_alloc_mark_ready();
    unsigned long sink = 0;
    for (int i = 0; i < 20000; i++) {
        v[S_AMOUNT].num = i % 7 ? (double)i : NAN;
        v[S_IP] = i % 2 ? str("10.1.2.3") : str("2001:db8::1");
        uint8_t probes[8];
        uint64_t m[RULES_BITMAP_WORDS];
        rules_probe_resolve(p, v, ps, probes);
        rules_eval(p, v, N_SLOTS, probes, i % 3 ? 0 : RULES_EVAL_DEGRADED, m);
        rules_decide_in in = {i % 3 == 0, RULES_REVIEW, 0.5, 0.4, 0.9};
        rules_verdict vd = rules_decide(p, m, &in);
        char by[80];
        sink += rules_decided_by_text(p, &vd, by, sizeof by) + (unsigned long)m[0];
        sink += (unsigned long)listset_has_string(sets[0], "m_42", 4) +
                (unsigned long)listset_has_number(sets[3], 412345) +
                (unsigned long)listset_has_ip_text(sets[2], "10.0.0.1", 8);
    }
    unsigned long long calls = vigil_alloc_calls_after_ready();
    rules_free(p);
    return calls > 100 ? 100 : (int)calls + (int)(sink & 0) /* sink keeps the loop */;
}

/* Runs this binary as alloc_probe_child with the probe preloaded; its exit status. */
static int run_probe_child(const char *probe, int selftest)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_int_gt(n, 0);
    self[n] = 0;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setenv("LD_PRELOAD", probe, 1);
        if (selftest)
            setenv("VIGIL_ALLOCCOUNT_SELFTEST", "1", 1);
        execl(self, self, "--alloc-probe", (char *)NULL);
        _exit(127);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

START_TEST(eval_never_allocates)
{
    char self[PATH_MAX], probe[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_int_gt(n, 0);
    self[n] = 0;
    const char *asan = getenv("VIGIL_ASAN");
    if ((asan && *asan && strcmp(asan, "0") != 0) || strstr(self, "asan") != NULL) {
        t_skip("test_rules", "eval_never_allocates",
               "ASan build: the allocation probe cannot be preloaded before the ASan runtime");
        return;
    }
    char *slash = strrchr(self, '/');
    ck_assert_ptr_nonnull(slash);
    *slash = 0;
    snprintf(probe, sizeof probe, "%s/alloccount.so", self);
    ck_assert_msg(access(probe, R_OK) == 0, "%s not built (make tests-build)", probe);
    ck_assert_int_eq(run_probe_child(probe, 1), 2); /* the probe counts its own malloc + free */
    ck_assert_int_eq(run_probe_child(probe, 0), 0);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--alloc-probe") == 0)
        return alloc_probe_child();
    Suite *s = suite_create("rules");
    TCase *tc = tcase_create("rules");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, issue_examples);
    tcase_add_test(tc, operators_by_hand);
    tcase_add_test(tc, missing_rule);
    tcase_add_test(tc, errors_with_columns);
    tcase_add_test(tc, errors_name_the_rule);
    tcase_add_test(tc, limits);
    tcase_add_test(tc, program_accessors);
    tcase_add_test(tc, probes_given_by_caller);
    tcase_add_test(tc, decisions_by_hand);
    tcase_add_test(tc, property_expressions);
    tcase_add_test(tc, property_decisions);
    tcase_add_test(tc, hostile_text);
    tcase_add_test(tc, eval_never_allocates);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
