/* test_btreport.c - unit tests for the rule and challenger figures of api/btreport.{h,c}: a
 * handful of rows whose per-rule hits, decided counts, precision and fraud amounts caught are
 * worked out by hand in the test; the partial aggregates (what a job stores after each chunk)
 * round-trip with the rules, and a job resumed with other rules is refused. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "btreport.h"

static const char *const NAMES[] = {"big", "bad_merchant", "shadow_fr"};
static const int ACTIONS[] = {2, 1, 2}; /* block, review, block (rules_action) */
static const int MODES[] = {0, 0, 1};   /* active, active, shadow (rules_mode) */

static const cJSON *at(const cJSON *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
        o = cJSON_IsArray(o) ? cJSON_GetArrayItem(o, atoi(k))
                             : cJSON_GetObjectItemCaseSensitive(o, k);
    return o;
}

static double num(const cJSON *o, const char *path)
{
    const cJSON *v = at(o, path);
    ck_assert_msg(cJSON_IsNumber(v), "%s is not a number", path);
    return v->valuedouble;
}

/* One row: label, amount (minor units), currency, the matched rules as a bit mask, and the
 * verdict (decided_by, deciding rule). */
static void row(btreport *r, int label, int64_t amount, const char *cur, uint64_t mask, int by,
                int rule, int chal_scored)
{
    btreport_row w = {0};
    w.cand = by == 0 ? ACTIONS[rule] : 0;
    w.cand_scored = 1;
    w.score = 0.1f;
    w.live_score = 0.1f;
    w.chal_scored = chal_scored;
    w.label = label;
    w.amount = amount;
    w.cur = btreport_currency(r, cur);
    ck_assert_int_ge(w.cur, 0);
    btreport_add(r, &w);
    uint64_t matched[4] = {mask, 0, 0, 0};
    btreport_rules_add(r, matched, by, rule, label, amount, w.cur);
}

static btreport *sample(void)
{
    btreport *r = btreport_new();
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(btreport_rules_init(r, 3, NAMES, ACTIONS, MODES), 0);
    row(r, BT_FRAUD, 1250, "EUR", 1u | 4u, 0, 0, 1); /* big decides; shadow_fr matches too */
    row(r, BT_LEGIT, 990, "EUR", 1u, 0, 0, 1);       /* big decides, a legit row */
    row(r, BT_FRAUD, 700, "JPY", 2u | 4u, 0, 1, 0);  /* bad_merchant decides */
    row(r, BT_UNLABELLED, 5, "EUR", 4u, 1, -1, 1);   /* only the shadow rule: the threshold */
    row(r, BT_FRAUD, 100, "EUR", 0, 3, -1, 1);       /* nothing matched: default */
    ck_assert_int_eq(btreport_operand_missing(r, "user_age_days", 2), 0);
    btreport_probes(r, 4, 1);
    btreport_probes(r, 1, 0);
    return r;
}

static cJSON *render(const btreport *r, int chal)
{
    cJSON *lv = cJSON_CreateObject();
    cJSON_AddNumberToObject(lv, "bad", 3);
    btreport_extra x = {0.5, 0.75, 0.5, chal, 0.625, 0.25, NULL, lv};
    cJSON *o = btreport_render(r, &x);
    cJSON_Delete(lv);
    ck_assert_ptr_nonnull(o);
    return o;
}

START_TEST(rule_figures_by_hand)
{
    btreport *r = sample();
    cJSON *o = render(r, 1);
    /* big: 2 hits (fraud 12.50 EUR, legit), decided both; precision 1/2 */
    ck_assert_str_eq(cJSON_GetStringValue(at(o, "rules.by_rule.0.name")), "big");
    ck_assert_str_eq(cJSON_GetStringValue(at(o, "rules.by_rule.0.action")), "block");
    ck_assert_str_eq(cJSON_GetStringValue(at(o, "rules.by_rule.0.mode")), "active");
    ck_assert_int_eq(num(o, "rules.by_rule.0.hits"), 2);
    ck_assert_int_eq(num(o, "rules.by_rule.0.decided"), 2);
    ck_assert_int_eq(num(o, "rules.by_rule.0.fraud_hits"), 1);
    ck_assert_int_eq(num(o, "rules.by_rule.0.legit_hits"), 1);
    ck_assert(num(o, "rules.by_rule.0.precision") == 0.5);
    char *amt = cJSON_PrintUnformatted(at(o, "rules.by_rule.0.fraud_amount_caught"));
    ck_assert_str_eq(amt, "{\"EUR\":12.50}");
    free(amt);
    /* bad_merchant: 1 fraud hit of 700 JPY (no minor unit) */
    ck_assert_int_eq(num(o, "rules.by_rule.1.hits"), 1);
    ck_assert(num(o, "rules.by_rule.1.precision") == 1.0);
    amt = cJSON_PrintUnformatted(at(o, "rules.by_rule.1.fraud_amount_caught"));
    ck_assert_str_eq(amt, "{\"JPY\":700}");
    free(amt);
    /* shadow_fr: 3 hits (2 fraud, 1 unlabelled), never decides */
    ck_assert_str_eq(cJSON_GetStringValue(at(o, "rules.by_rule.2.mode")), "shadow");
    ck_assert_int_eq(num(o, "rules.by_rule.2.hits"), 3);
    ck_assert_int_eq(num(o, "rules.by_rule.2.decided"), 0);
    ck_assert_int_eq(num(o, "rules.by_rule.2.fraud_hits"), 2);
    ck_assert(num(o, "rules.by_rule.2.precision") == 1.0);
    amt = cJSON_PrintUnformatted(at(o, "rules.by_rule.2.fraud_amount_caught"));
    ck_assert_str_eq(amt, "{\"EUR\":12.50,\"JPY\":700}");
    free(amt);
    ck_assert_int_eq(num(o, "rules.active_hits"), 3);
    ck_assert_int_eq(num(o, "rules.shadow_hits"), 3);
    ck_assert_int_eq(num(o, "rules.decided_by.rule"), 3);
    ck_assert_int_eq(num(o, "rules.decided_by.score_threshold"), 1);
    ck_assert_int_eq(num(o, "rules.decided_by.fallback"), 0);
    ck_assert_int_eq(num(o, "rules.decided_by.default"), 1);
    ck_assert_int_eq(num(o, "rules.list_versions.bad"), 3);
    ck_assert_int_eq(num(o, "rules.operands_unavailable.user_age_days"), 2);
    ck_assert_int_eq(num(o, "rules.list_probes.recorded"), 5);
    ck_assert_int_eq(num(o, "rules.list_probes.changed"), 1);
    ck_assert_str_eq(cJSON_GetStringValue(at(o, "rules.list_membership")), "current");
    /* the challenger: 4 of 5 rows scored, its AUCs beside the champion's */
    ck_assert_int_eq(num(o, "candidate.challenger_scored"), 4);
    ck_assert(num(o, "labelled.challenger_roc_auc") == 0.625);
    ck_assert(num(o, "labelled.challenger_pr_auc") == 0.25);
    ck_assert(num(o, "labelled.roc_auc") == 0.75);
    cJSON_Delete(o);
    /* without a challenger its figures are null */
    o = render(r, 0);
    ck_assert(cJSON_IsNull(at(o, "candidate.challenger_scored")));
    ck_assert(cJSON_IsNull(at(o, "labelled.challenger_roc_auc")));
    ck_assert(cJSON_IsNull(at(o, "labelled.challenger_pr_auc")));
    cJSON_Delete(o);
    btreport_free(r);
}
END_TEST

START_TEST(no_rules_renders_null)
{
    btreport *r = btreport_new();
    ck_assert_int_eq(btreport_rules_init(r, 0, NULL, NULL, NULL), 0);
    cJSON *o = render(r, 0);
    ck_assert(cJSON_IsNull(at(o, "rules")));
    cJSON_Delete(o);
    btreport_free(r);
}
END_TEST

START_TEST(partial_round_trips_with_rules)
{
    btreport *r = sample();
    cJSON *j = btreport_to_json(r);
    ck_assert_ptr_nonnull(j);
    btreport *back = btreport_new();
    ck_assert_int_eq(btreport_from_json(back, j), 0);
    /* resumed: the same rules are accepted, other ones refused */
    ck_assert_int_eq(btreport_rules_init(back, 3, NAMES, ACTIONS, MODES), 0);
    static const char *const OTHER[] = {"big", "bad_merchant", "other"};
    ck_assert_int_eq(btreport_rules_init(back, 3, OTHER, ACTIONS, MODES), -1);
    ck_assert_int_eq(btreport_rules_init(back, 2, NAMES, ACTIONS, MODES), -1);
    static const int SHADOWED[] = {1, 0, 1};
    ck_assert_int_eq(btreport_rules_init(back, 3, NAMES, ACTIONS, SHADOWED), -1);
    cJSON *a = render(r, 1), *b = render(back, 1);
    char *ta = cJSON_PrintUnformatted(a), *tb = cJSON_PrintUnformatted(b);
    ck_assert_str_eq(ta, tb);
    /* and a row added after the resume counts on top */
    row(back, BT_FRAUD, 1, "EUR", 1u, 0, 0, 0);
    cJSON *c = render(back, 1);
    ck_assert_int_eq(num(c, "rules.by_rule.0.hits"), 3);
    ck_assert_int_eq(num(c, "rules.by_rule.0.fraud_hits"), 2);
    char *amt = cJSON_PrintUnformatted(at(c, "rules.by_rule.0.fraud_amount_caught"));
    ck_assert_str_eq(amt, "{\"EUR\":12.51}");
    free(amt);
    free(ta);
    free(tb);
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(c);
    cJSON_Delete(j);
    btreport_free(back);
    btreport_free(r);
}
END_TEST

static Suite *btreport_suite(void)
{
    Suite *s = suite_create("btreport");
    TCase *tc = tcase_create("rules");
    tcase_add_test(tc, rule_figures_by_hand);
    tcase_add_test(tc, no_rules_renders_null);
    tcase_add_test(tc, partial_round_trips_with_rules);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(btreport_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
