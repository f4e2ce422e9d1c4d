/* decision_rules.c - the rules stage of a decision (issue 12), after decide: the active policy
 * version's compiled rules (rulecat.h, compiled once per version) evaluated over this
 * transaction's operands, list probes answered from the in-memory list sets (listcache.h) of the
 * versions the policy query just read, and the decision taken by rules_decide's precedence
 * (common/rules.h).  Stores what makes a replay exact: every operand's value (rule_inputs), each
 * probe's answer, the list versions consulted, the matched rules and what decided.
 *
 * Costs: no database statement; one slot array (operands of the catalogue), one probe per
 * (list, operand) pair (a hash or binary search in memory), rules_eval linear in the program,
 * and the JSON of what was recorded.  Without rules the stage does nothing. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "decision.h"
#include "listcache.h"
#include "logline.h"
#include "rulecat.h"

/* ---- the program of the policy version ---------------------------------------------------- */

/* The compiled rules of d's policy version, from the cache or compiled now (once per version).
 * NULL with resp filled (500) when they do not compile any more (cannot happen for a version
 * PUT accepted) or memory ran out. */
static rulecat_entry *program(decision_request *d, const cJSON *lists)
{
    rulecat_cache *cache = d->req->app->rules;
    long long version = atoll(d->policy.version);
    rulecat_entry *e = rulecat_cache_get(cache, version);
    rulecat_entry fresh = {version, NULL, {0}, 0};
    if (e)
        return e;
    rules_spec *specs = calloc(RULES_MAX, sizeof *specs);
    rulecat_list known[RULES_MAX];
    const scoring_model *mp[POLICY_SLOTS];
    size_t n_specs = 0, n_lists = 0;
    cJSON *rules = cJSON_Parse(d->policy.rules_json);
    const cJSON *l;
    for (int s = 0; s < POLICY_SLOTS; s++)
        mp[s] = d->policy.has_model[s] ? &d->policy.model[s] : NULL;
    cJSON_ArrayForEach(l, lists)
    {
        const char *kind = cJSON_GetArrayItem(l, 3)->valuestring;
        if (n_lists < RULES_MAX)
            known[n_lists++] = (rulecat_list){cJSON_GetArrayItem(l, 0)->valuestring,
                                              listset_kind_parse(kind, strlen(kind))};
    }
    rules_error err = {0};
    if (specs && rulecat_specs(rules, specs, &n_specs) == 0 &&
        rulecat_build(&fresh.cat, mp, POLICY_SLOTS, known, n_lists) == 0 &&
        rules_compile(specs, n_specs, &fresh.cat.cat, &fresh.prog, &err) == RULES_OK)
        e = rulecat_cache_put(cache, &fresh);
    else
        rulecat_free(&fresh.cat);
    if (!e)
        http_problem(d->resp, 500, "internal", NULL, "the policy's rules do not compile: %s",
                     err.message[0] ? err.message : "out of memory");
    free(specs);
    cJSON_Delete(rules);
    return e;
}

/* ---- operands ------------------------------------------------------------------------------- */

/* Every operand of the catalogue: built-ins, fields, scores, then client features by name. */
static int fill_slots(const decision_request *d, const rulecat *cat, rules_value *slots)
{
    const decision_input *in = &d->in;
    const float *score = d->scoring.score;
    decision_sources src = {0};
    if (decision_sources_init(&src, d->builtin, in->features))
        return -1;
    for (int i = 0; i < FEAT_COUNT; i++)
        slots[i] = rulecat_num(d->builtin[i]);
    const char *strs[RC_SCORE - RC_CURRENCY] = {
        in->currency,         in->merchant_id, in->mcc,          in->country,
        in->channel,          in->email,       in->ip_address,   in->device_id,
        in->card_fingerprint, in->card_bin,    in->card_country, in->shipping_country,
        d->user_external_id,  d->user_country};
    for (int i = RC_CURRENCY; i < RC_SCORE; i++)
        slots[i] = rulecat_str(strs[i - RC_CURRENCY]);
    slots[RC_SCORE] = rulecat_num(d->verdict.degraded ? NAN : (double)score[POLICY_CHAMPION]);
    slots[RC_CHALLENGER_SCORE] =
        rulecat_num(d->verdict.degraded || !d->policy.has_model[POLICY_CHALLENGER]
                        ? NAN
                        : (double)score[POLICY_CHALLENGER]);
    for (size_t i = RC_CLIENT; i < cat->n_ops; i++)
        slots[i] = rulecat_num(decision_feature_value(&src, cat->ops[i].name));
    decision_sources_free(&src);
    return 0;
}

/* ---- lists ---------------------------------------------------------------------------------- */

/* The set of the program's list li at (at least) the version the policy query read, into
 * held[li]/sets[li].  Waits for the builder at most 1 s when an older set is held (then used:
 * the version recorded says so), else until the request deadline.  0, or -1 with resp (503). */
static int resolve_list(decision_request *d, const rules_program *prog, size_t li,
                        const cJSON *lists, listcache_set **held)
{
    const char *name = rules_list_name(prog, li), *id = NULL;
    int64_t version = 0;
    const cJSON *l;
    char err[256] = "the list is not in the policy";
    cJSON_ArrayForEach(l, lists)
    {
        if (strcmp(cJSON_GetArrayItem(l, 0)->valuestring, name) == 0) {
            id = cJSON_GetArrayItem(l, 1)->valuestring;
            version = (int64_t)cJSON_GetArrayItem(l, 2)->valuedouble;
        }
    }
    listcache *lc = d->req->app->lists;
    int64_t soon = clock_now_ms() + 1000;
    int rc =
        id ? listcache_get(lc, id, version, soon < d->req->deadline_ms ? soon : d->req->deadline_ms,
                           held, err, sizeof err)
           : LISTCACHE_FAILED;
    if (rc == LISTCACHE_TIMEOUT && !*held)
        rc = listcache_get(lc, id, version, d->req->deadline_ms, held, err, sizeof err);
    if (rc == LISTCACHE_OK || (rc == LISTCACHE_TIMEOUT && *held))
        return 0;
    listcache_release(lc, *held);
    *held = NULL;
    d->resp->retry_after = 1;
    http_problem(d->resp, 503, "lists_unavailable", NULL, "list '%s' is not available: %s", name,
                 err);
    return -1;
}

/* ---- what is recorded ----------------------------------------------------------------------- */

static void add_number(cJSON *o, const char *name, const rules_value *v)
{
    char buf[32];
    if (v->type != RULES_NUMBER) {
        cJSON_AddNullToObject(o, name);
        return;
    }
    snprintf(buf, sizeof buf, "%.17g", v->num);
    cJSON_AddRawToObject(o, name, buf);
}

/* {"numbers": {name: x|null}, "strings": {name: s|null}}: every operand as evaluated. */
static char *inputs_json(const rulecat *cat, const rules_value *slots)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *num = cJSON_AddObjectToObject(o, "numbers"),
          *str = cJSON_AddObjectToObject(o, "strings");
    for (size_t i = 0; i < cat->n_ops; i++) {
        if (cat->ops[i].type == RULES_NUMBER)
            add_number(num, cat->ops[i].name, &slots[i]);
        else if (slots[i].type == RULES_STRING)
            cJSON_AddStringToObject(str, cat->ops[i].name, slots[i].s);
        else
            cJSON_AddNullToObject(str, cat->ops[i].name);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* The matched rules, list versions and probe answers as JSON texts into d->rules. */
static int record(decision_request *d, const rulecat_entry *e, const uint64_t *matched,
                  listcache_set *const *held, const uint8_t *probes)
{
    static const char *const answer[] = {"not_member", "member", "missing"};
    const rules_program *p = e->prog;
    cJSON *m = cJSON_CreateArray(), *lv = cJSON_CreateObject(), *pr = cJSON_CreateArray();
    for (size_t i = 0; i < rules_count(p); i++)
        if (matched[i / 64] >> (i % 64) & 1) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "name", rules_rule_name(p, i));
            cJSON_AddStringToObject(r, "action", rules_action_name(rules_rule_action(p, i)));
            cJSON_AddStringToObject(r, "mode", rules_mode_name(rules_rule_mode(p, i)));
            cJSON_AddItemToArray(m, r);
        }
    for (size_t li = 0; li < rules_list_count(p); li++)
        cJSON_AddNumberToObject(lv, rules_list_name(p, li),
                                (double)listcache_set_version(held[li]));
    for (size_t k = 0; k < rules_probe_count(p); k++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "list", rules_list_name(p, rules_probe_list(p, k)));
        cJSON_AddStringToObject(o, "operand", e->cat.ops[rules_probe_slot(p, k)].name);
        cJSON_AddStringToObject(o, "result", answer[probes[k] <= 2 ? probes[k] : 2]);
        cJSON_AddItemToArray(pr, o);
    }
    d->rules.matched = cJSON_PrintUnformatted(m);
    d->rules.list_versions = cJSON_PrintUnformatted(lv);
    d->rules.probes = cJSON_PrintUnformatted(pr);
    cJSON_Delete(m);
    cJSON_Delete(lv);
    cJSON_Delete(pr);
    return d->rules.matched && d->rules.list_versions && d->rules.probes ? 0 : -1;
}

/* ---- the stage ------------------------------------------------------------------------------ */

/* Evaluates and decides with the sets held; fills d->verdict and d->rules. */
static int evaluate(decision_request *d, const rulecat_entry *e, const rules_value *slots,
                    listcache_set *const *held, uint8_t *probes)
{
    const rules_program *p = e->prog;
    const listset *sets[RULES_MAX];
    uint64_t matched[RULES_BITMAP_WORDS] = {0};
    for (size_t li = 0; li < rules_list_count(p); li++)
        sets[li] = listcache_set_get(held[li]);
    rules_probe_resolve(p, slots, sets, probes);
    rules_eval(p, slots, e->cat.n_ops, probes, d->verdict.degraded ? RULES_EVAL_DEGRADED : 0,
               matched);
    rules_decide_in in = {d->verdict.degraded, RULES_REVIEW,
                          (double)d->scoring.score[POLICY_CHAMPION], d->policy.review_v,
                          d->policy.block_v};
    rules_action_parse(d->policy.fallback, strlen(d->policy.fallback), &in.fallback);
    rules_verdict v = rules_decide(p, matched, &in);
    d->verdict.decision = rules_action_name(v.decision);
    rules_decided_by_text(p, &v, d->rules.decided_by, sizeof d->rules.decided_by);
    if (record(d, e, matched, held, probes) || !(d->rules.inputs = inputs_json(&e->cat, slots)))
        return -1;
    return 0;
}

int decision_stage_rules(decision_request *d)
{
    if (strcmp(d->policy.rules_json, "[]") == 0)
        return DECISION_NEXT;
    int rc = -1, answered = 0;
    cJSON *lists = cJSON_Parse(d->policy.lists_json);
    rulecat_entry *e = program(d, lists);
    listcache_set *held[RULES_MAX] = {0};
    rules_value *slots = e ? calloc(e->cat.n_ops + 1, sizeof *slots) : NULL;
    uint8_t *probes = e ? calloc(rules_probe_count(e->prog) + 1, 1) : NULL;
    answered = !e;
    /* PUT /policy refuses more lists than this, so it cannot happen for a stored version */
    if (e && rules_list_count(e->prog) > RULES_MAX) {
        http_problem(d->resp, 500, "internal", NULL, "the rules name too many lists");
        answered = 1;
    } else if (e && slots && probes && fill_slots(d, &e->cat, slots) == 0) {
        size_t li = 0;
        while (li < rules_list_count(e->prog) &&
               resolve_list(d, e->prog, li, lists, &held[li]) == 0)
            li++;
        answered = li < rules_list_count(e->prog);
        rc = answered ? -1 : evaluate(d, e, slots, held, probes);
    }
    for (size_t li = 0; e && li < rules_list_count(e->prog); li++)
        listcache_release(d->req->app->lists, held[li]);
    if (rc && !answered)
        http_problem(d->resp, 500, "internal", NULL, "out of memory evaluating the rules");
    rulecat_cache_release(d->req->app->rules, e);
    free(slots);
    free(probes);
    cJSON_Delete(lists);
    return rc ? DECISION_STOP : DECISION_NEXT;
}
