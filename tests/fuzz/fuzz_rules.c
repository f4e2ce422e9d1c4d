/* fuzz_rules.c - libFuzzer harness for the rule language and list items (common/rules.c,
 * common/listset.c), whose text comes from API users (PUT /policy rules, list items).
 *
 * The input's first byte picks each rule's action and mode and the degraded flag; the rest is cut
 * at 0x1E bytes into up to 8 rule texts, each copied into a heap block of exactly its size (ASan
 * sees any read past the end; a text need not be NUL-terminated).  The rules are compiled against
 * a catalogue like the API's, then evaluated on four slot vectors (all missing; typical values;
 * NaN/inf/-0/huge numbers and empty strings; values found on the lists) and decided.  Each chunk
 * is also offered as a list item of every kind.
 * Oracles besides ASan/UBSan:
 *   - a compile error names a rule in range (or -1), a column within the text (characters + 1),
 *     and a non-empty NUL-terminated message; a failure leaves no program;
 *   - evaluation is deterministic, sets no bit past the rule count, and under the degraded flag
 *     never sets the bit of a rule that reads score;
 *   - a decision by rule names an active, matched rule of that action; the decided_by text is
 *     NUL-terminated and short;
 *   - a canonical list item canonicalises to itself and is a member of a set built from it. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "listset.h"
#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const rules_operand ops[] = {
    {"amount", RULES_NUMBER, 0},
    {"score", RULES_NUMBER, RULES_OPERAND_SCORE},
    {"challenger_score", RULES_NUMBER, RULES_OPERAND_SCORE},
    {"hour_of_day", RULES_NUMBER, 0},
    {"merchant_seen_before", RULES_NUMBER, 0},
    {"user_amount_avg_30d", RULES_NUMBER, 0},
    {"country", RULES_STRING, 0},
    {"card_country", RULES_STRING, 0},
    {"merchant_id", RULES_STRING, 0},
    {"user_external_id", RULES_STRING, 0},
    {"ip_address", RULES_STRING, 0},
    {"card_bin", RULES_NUMBER, 0},
    {"in", RULES_NUMBER, 0}, /* reachable only as `in` in backticks */
};
#define N_OPS (sizeof ops / sizeof ops[0])
static const rules_list lists[] = {{"blocked_merchants", LISTSET_STRING},
                                   {"vip", LISTSET_STRING},
                                   {"bad_ips", LISTSET_IP},
                                   {"bins", LISTSET_NUMBER}};

static listset *sets[4];

static void init_sets(void)
{
    if (sets[0])
        return;
    listset_builder *b = listset_builder_new(LISTSET_STRING, 0);
    listset_builder_add(b, "m_1", 3, NULL, 0);
    sets[0] = listset_build(b);
    b = listset_builder_new(LISTSET_STRING, 0);
    listset_builder_add(b, "FR", 2, NULL, 0);
    sets[1] = listset_build(b);
    b = listset_builder_new(LISTSET_IP, 0);
    listset_builder_add(b, "10.0.0.0/8", 10, NULL, 0);
    listset_builder_add(b, "2001:db8::/32", 13, NULL, 0);
    sets[2] = listset_build(b);
    b = listset_builder_new(LISTSET_NUMBER, 0);
    listset_builder_add_number(b, 411111);
    sets[3] = listset_build(b);
    if (!sets[0] || !sets[1] || !sets[2] || !sets[3])
        abort();
}

static void fill_slots(int which, rules_value *v)
{
    memset(v, 0, N_OPS * sizeof *v); /* 0: all missing */
    static const char *const s1[] = {"FR", "DE", "m_1", "u_1", "10.1.2.3"};
    static const double n2[] = {NAN, INFINITY, -0.0, 1e308, -1e308, 5e-324, 0, 1, 2, 3, 4, 5, 6};
    for (size_t i = 0; i < N_OPS && which > 0; i++) {
        if (ops[i].type == RULES_NUMBER) {
            double x = which == 1 ? (double)(i * 7 % 11) / 2 : which == 2 ? n2[i % 13] : 411111;
            v[i] = (rules_value){NULL, x, 0, RULES_NUMBER};
        } else {
            const char *s = which == 2 ? "" : which == 3 ? s1[2 + i % 3] : s1[i % 5];
            v[i] = (rules_value){s, 0, (uint32_t)strlen(s), RULES_STRING};
        }
    }
}

static size_t chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static void check_item(const char *s, size_t n)
{
    for (int k = LISTSET_STRING; k <= LISTSET_IP; k++) {
        char out[LISTSET_ITEM_MAX + 1], again[LISTSET_ITEM_MAX + 1], err[160];
        if (listset_canon((listset_kind)k, s, n, out, sizeof out, err, sizeof err) != LISTSET_OK) {
            if (memchr(err, 0, sizeof err) == NULL || err[0] == 0)
                abort();
            continue;
        }
        size_t m = strlen(out);
        if (listset_canon((listset_kind)k, out, m, again, sizeof again, NULL, 0) != LISTSET_OK ||
            strcmp(out, again) != 0)
            abort();
        listset_builder *b = listset_builder_new((listset_kind)k, 1);
        if (b == NULL || listset_builder_add(b, s, n, NULL, 0) != LISTSET_OK)
            abort();
        listset *set = listset_build(b);
        if (set == NULL || listset_count(set) != 1)
            abort();
        int in = k == LISTSET_STRING ? listset_has_string(set, out, m)
                 : k == LISTSET_NUMBER
                     ? listset_has_number(set, strtod(out, NULL))
                     : (strchr(out, '/') != NULL || listset_has_ip_text(set, out, m));
        if (!in)
            abort();
        listset_free(set);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    init_sets();
    unsigned flags = data[0];
    data++, size--;
    char *text[8] = {0};
    char names[8][8];
    rules_spec spec[8];
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= size && n < 8; i++) {
        if (i < size && data[i] != 0x1E)
            continue;
        size_t len = i - start;
        text[n] = malloc(len ? len : 1);
        if (text[n] == NULL)
            goto done;
        memcpy(text[n], data + start, len);
        snprintf(names[n], sizeof names[n], "r%zu", n);
        spec[n] = (rules_spec){names[n], (rules_action)((flags >> n) % 3),
                               (flags >> (n + 1)) & 1 ? RULES_SHADOW : RULES_ACTIVE, text[n], len};
        check_item(text[n], len);
        n++;
        start = i + 1;
    }
    rules_catalog cat = {ops, N_OPS, lists, 4};
    rules_program *p = (rules_program *)&cat; /* must be reset to NULL on failure */
    rules_error err;
    int rc = rules_compile(spec, n, &cat, &p, &err);
    if (rc != RULES_OK) {
        if (rc != RULES_E_INVALID || p != NULL || err.rule < -1 || err.rule >= (int)n ||
            memchr(err.message, 0, sizeof err.message) == NULL || err.message[0] == 0)
            abort();
        if (err.rule >= 0 &&
            (err.column < 0 ||
             (size_t)err.column > chars(text[err.rule], spec[err.rule].when_len) + 1))
            abort();
        goto done;
    }
    const listset *ps[8];
    for (size_t li = 0; li < rules_list_count(p); li++)
        for (int k = 0; k < 4; k++)
            if (strcmp(rules_list_name(p, li), lists[k].name) == 0)
                ps[li] = sets[k];
    for (int which = 0; which < 4; which++) {
        rules_value v[N_OPS];
        fill_slots(which, v);
        uint8_t probes[64];
        if (rules_probe_count(p) > 64)
            abort(); /* 4 lists x 13 operands bound the distinct (list, slot) pairs */
        rules_probe_resolve(p, v, ps, probes);
        int degraded = (flags >> 7) & 1;
        uint64_t m[RULES_BITMAP_WORDS], m2[RULES_BITMAP_WORDS];
        rules_eval(p, v, N_OPS, probes, degraded ? RULES_EVAL_DEGRADED : 0, m);
        rules_eval(p, v, N_OPS, probes, degraded ? RULES_EVAL_DEGRADED : 0, m2);
        if (memcmp(m, m2, sizeof m) != 0 || (m[0] >> n) != 0 || m[1] || m[2] || m[3])
            abort();
        for (size_t i = 0; i < n; i++)
            if (degraded && rules_rule_uses_score(p, i) && (m[0] >> i & 1))
                abort();
        rules_decide_in in = {degraded, RULES_REVIEW, which == 2 ? NAN : 0.5, 0.4, 0.9};
        rules_verdict vd = rules_decide(p, m, &in);
        if (vd.by == RULES_BY_RULE &&
            (vd.rule < 0 || (size_t)vd.rule >= n || !(m[0] >> vd.rule & 1) ||
             rules_rule_mode(p, (size_t)vd.rule) != RULES_ACTIVE ||
             rules_rule_action(p, (size_t)vd.rule) != vd.decision))
            abort();
        char by[RULES_NAME_MAX + 8];
        size_t bl = rules_decided_by_text(p, &vd, by, sizeof by);
        if (bl >= sizeof by || strlen(by) != bl)
            abort();
    }
    rules_free(p);
done:
    for (size_t i = 0; i < 8; i++)
        free(text[i]);
    return 0;
}
