/* e2e_rules.c - end-to-end tests of rules in decisions and of policy versions (issue 12): rule
 * errors (422 naming rule, column and what was expected; 400 for the shape), precedence over the
 * champion's score, shadow rules that match and never decide, degraded scoring with rules, policy
 * versions with the API key, rollback, and the replay proof: 2,000 random decisions under three
 * random policies and changing lists, each replayed from its stored snapshot (operands, probe
 * answers, scores) with common/rules.c, giving exactly the stored decision, decided_by and
 * matched rules; each probe answer is also checked against the list content this test wrote at
 * the recorded version (its own CIDR arithmetic).
 *
 * One environment, in-process scoring; the champion is the demo model (api/demo). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert.h"
#include "fixtures_io.h"
#include "harness.h"
#include "rules.h"

static h_env E;
static const char *const ENV[] = {"VIGIL_HOTPATH_MODE=inprocess", NULL};
static char g_demo[37];

static void up(void)
{
    g_demo[0] = '\0';
    e2e_env_up(&E, ENV);
}

static void down(void)
{
    e2e_env_down(&E);
}

/* ---- helpers -------------------------------------------------------------------------------- */

static const cJSON *get(const cJSON *o, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

static const char *sget(const cJSON *o, const char *name)
{
    return cJSON_GetStringValue(get(o, name));
}

static void req_ok(const char *method, const char *path, const char *body, long status, h_resp *r)
{
    e2e_req(&E, method, path, body, r);
    ck_assert_msg(r->status == status, "%s %s: %ld (want %ld) %s", method, path, r->status, status,
                  r->body);
}

static void demo_model(void)
{
    if (g_demo[0])
        return;
    size_t len;
    char *txt = fx_slurp("api/demo/demo_model.json", &len);
    ck_assert_msg(txt != NULL, "cannot read api/demo/demo_model.json (run from the repo root)");
    h_resp r;
    e2e_req_raw(&E, "POST", "/api/v1/models?name=demo", "application/json", txt, len, &r);
    ck_assert_msg(r.status == 201, "upload: %ld %s", r.status, r.body);
    snprintf(g_demo, sizeof g_demo, "%s", h_str(&r, "id"));
    h_resp_free(&r);
    free(txt);
}

static void user(const char *ext)
{
    char body[200];
    h_resp r;
    snprintf(body, sizeof body, "{\"external_id\":\"%s\",\"country\":\"DE\"}", ext);
    e2e_req(&E, "POST", "/api/v1/users", body, &r);
    ck_assert_msg(r.status == 201 || r.status == 409, "user: %ld %s", r.status, r.body);
    h_resp_free(&r);
}

/* PUTs a policy: champion (NULL = none), thresholds, fallback and the rules JSON array. */
static long put_policy(const char *champion, double review, double block, const char *fallback,
                       const char *rules, long status, h_resp *out)
{
    size_t cap = strlen(rules) + 512;
    char *b = malloc(cap), champ[48];
    snprintf(champ, sizeof champ, champion ? "\"%s\"" : "null", champion);
    snprintf(b, cap,
             "{\"champion_model_id\":%s,\"review_threshold\":%.17g,\"block_threshold\":%.17g,"
             "\"fallback_decision\":\"%s\",\"rules\":%s}",
             champ, review, block, fallback, rules);
    h_resp r;
    e2e_req(&E, "PUT", "/api/v1/policy", b, out ? out : &r);
    free(b);
    h_resp *x = out ? out : &r;
    ck_assert_msg(x->status == status, "PUT policy: %ld %s", x->status, x->body);
    long v = x->status == 200 ? (long)get(x->json, "version")->valuedouble : 0;
    if (!out)
        h_resp_free(&r);
    return v;
}

/* Creates a list and returns nothing; id into id[37]. */
static void create_list(const char *name, const char *kind, char id[37])
{
    char body[200];
    h_resp r;
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"kind\":\"%s\"}", name, kind);
    req_ok("POST", "/api/v1/lists", body, 201, &r);
    snprintf(id, 37, "%s", h_str(&r, "id"));
    h_resp_free(&r);
}

/* POSTs a transaction (extra members appended); the answer's risk object is kept in *r. */
static const cJSON *txn(const char *u, long amount, const char *extra, h_resp *r)
{
    char b[1024];
    snprintf(b, sizeof b,
             "{\"user_external_id\":\"%s\",\"amount\":%ld,\"currency\":\"EUR\",\"merchant_id\":"
             "\"m-1\",\"merchant_category\":\"5411\",\"country\":\"DE\",\"channel\":\"ecommerce\""
             "%s}",
             u, amount, extra);
    req_ok("POST", "/api/v1/transactions", b, 201, r);
    return get(r->json, "risk");
}

/* The names of the matched rules, "a,b,c" (mode in brackets for shadow ones). */
static void matched_names(const cJSON *risk, char *out, size_t cap)
{
    const cJSON *m;
    out[0] = '\0';
    cJSON_ArrayForEach(m, get(risk, "rules"))
    {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s%s", n ? "," : "", sget(m, "name"),
                 strcmp(sget(m, "mode"), "shadow") ? "" : "[s]");
    }
}

/* ---- errors --------------------------------------------------------------------------------- */

START_TEST(rule_errors)
{
    static const struct {
        const char *rules;
        long status;
        const char *code, *field, *detail_has;
    } t[] = {
        {"[{\"name\":\"a\",\"action\":\"block\",\"when\":\"amout > 3\"}]", 422, "rule_invalid",
         "rules[0].when", "column 1: unknown operand 'amout'"},
        {"[{\"name\":\"a\",\"action\":\"block\",\"when\":\"amount > 1\"},{\"name\":\"b\","
         "\"action\":\"review\",\"when\":\"email in @nope\"}]",
         422, "rule_invalid", "rules[1].when", "rule 'b' (rules[1]), column 10: unknown list"},
        {"[{\"name\":\"a\",\"action\":\"block\",\"when\":\"amount > \"}]", 422, "rule_invalid",
         "rules[0].when", "column 10: expected"},
        {"[{\"name\":\"a\",\"action\":\"block\",\"when\":\"(amount > 1\"}]", 422, "rule_invalid",
         "rules[0].when", "expected ')'"},
        {"[{\"name\":\"a\",\"action\":\"block\",\"when\":\"country > 3\"}]", 422, "rule_invalid",
         "rules[0].when", "rule 'a'"},
        {"[{\"name\":\"a\",\"action\":\"deny\",\"when\":\"amount > 1\"}]", 400, "validation_failed",
         "rules[0].action", "allow, review or block"},
        {"[{\"name\":\"a\",\"action\":\"block\",\"when\":\"amount > 1\",\"mode\":\"x\"}]", 400,
         "validation_failed", "rules[0].mode", "active or shadow"},
        {"[{\"name\":\"a b\",\"action\":\"block\",\"when\":\"amount > 1\"}]", 400,
         "validation_failed", "rules[0].name", NULL},
        {"[{\"name\":\"a\",\"action\":\"block\",\"when\":\"amount > 1\"},{\"name\":\"a\","
         "\"action\":\"block\",\"when\":\"amount > 2\"}]",
         400, "validation_failed", "rules[1].name", "another rule"},
        {"[{\"name\":\"a\",\"action\":\"block\",\"when\":\"amount > 1\",\"x\":1}]", 400,
         "validation_failed", "rules[0].x", NULL},
        {"[{\"name\":\"a\",\"action\":\"block\"}]", 400, "validation_failed", "rules[0].when",
         NULL},
        {"{}", 400, "validation_failed", "rules", NULL},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        h_resp r;
        put_policy(NULL, 0.5, 0.9, "review", t[i].rules, t[i].status, &r);
        e2e_assert_problem(&r, t[i].status, t[i].code, t[i].field);
        if (t[i].detail_has)
            ck_assert_msg(strstr(h_str(&r, "detail"), t[i].detail_has), "%zu: %s", i,
                          h_str(&r, "detail"));
        h_resp_free(&r);
    }
    /* RULES_MAX rules (N) are fine, RULES_MAX + 1 are not */
    for (int count = RULES_MAX + 1; count >= RULES_MAX; count--) {
        size_t cap = (RULES_MAX + 1) * 80 + 8, at = 0;
        char *rules = malloc(cap);
        at += (size_t)snprintf(rules, cap, "[");
        for (int i = 0; i < count; i++)
            at += (size_t)snprintf(
                rules + at, cap - at,
                "%s{\"name\":\"r%d\",\"action\":\"review\",\"when\":\"amount > %d\"}", i ? "," : "",
                i, i);
        snprintf(rules + at, cap - at, "]");
        h_resp r;
        put_policy(NULL, 0.5, 0.9, "review", rules, count > RULES_MAX ? 400 : 200, &r);
        if (count > RULES_MAX)
            e2e_assert_problem(&r, 400, "validation_failed", "rules");
        h_resp_free(&r);
        free(rules);
    }
    put_policy(NULL, 0.5, 0.9, "review", "[]", 200, NULL);
}
END_TEST

/* ---- precedence, shadow, degraded ----------------------------------------------------------- */

START_TEST(precedence_over_score)
{
    demo_model();
    user("prec");
    h_resp r;
    /* thresholds 0/0: the score alone blocks every transaction */
    put_policy(g_demo, 0, 0, "review", "[]", 200, NULL);
    const cJSON *risk = txn("prec", 1000, "", &r);
    ck_assert_str_eq(sget(risk, "decision"), "block");
    ck_assert_str_eq(sget(risk, "decided_by"), "score_threshold");
    h_resp_free(&r);
    /* an active allow rule beats the threshold and a block rule; a shadow allow decides nothing */
    put_policy(g_demo, 0, 0, "review",
               "[{\"name\":\"blk\",\"action\":\"block\",\"when\":\"amount > 5\"},"
               "{\"name\":\"vip\",\"action\":\"allow\",\"when\":\"user_external_id in "
               "(\\\"prec\\\")\"},{\"name\":\"sh\",\"action\":\"allow\",\"when\":\"true\","
               "\"mode\":\"shadow\"}]",
               200, NULL);
    risk = txn("prec", 1000, "", &r);
    ck_assert_str_eq(sget(risk, "decision"), "allow");
    ck_assert_str_eq(sget(risk, "decided_by"), "rule:vip");
    char names[256];
    matched_names(risk, names, sizeof names);
    ck_assert_str_eq(names, "blk,vip,sh[s]");
    h_resp_free(&r);
    /* block rule before the review threshold; review rule when the score is below both */
    put_policy(g_demo, 0.999999, 1, "allow",
               "[{\"name\":\"rev\",\"action\":\"review\",\"when\":\"amount > 5\"},"
               "{\"name\":\"blk\",\"action\":\"block\",\"when\":\"amount > 50\"}]",
               200, NULL);
    risk = txn("prec", 10000, "", &r);
    ck_assert_str_eq(sget(risk, "decision"), "block");
    ck_assert_str_eq(sget(risk, "decided_by"), "rule:blk");
    h_resp_free(&r);
    risk = txn("prec", 1000, "", &r);
    ck_assert_str_eq(sget(risk, "decision"), "review");
    ck_assert_str_eq(sget(risk, "decided_by"), "rule:rev");
    h_resp_free(&r);
    risk = txn("prec", 100, "", &r);
    ck_assert_str_eq(sget(risk, "decision"), "allow");
    ck_assert_str_eq(sget(risk, "decided_by"), "default");
    ck_assert_int_eq(cJSON_GetArraySize(get(risk, "rules")), 0);
    h_resp_free(&r);
}
END_TEST

/* Shadow rules are evaluated and recorded, never decide, whatever their action. */
START_TEST(shadow_never_decides)
{
    demo_model();
    user("shadow");
    h_resp r;
    put_policy(g_demo, 0.999999, 1, "review",
               "[{\"name\":\"s_block\",\"action\":\"block\",\"when\":\"true\",\"mode\":"
               "\"shadow\"},{\"name\":\"s_review\",\"action\":\"review\",\"when\":\"amount > 0\","
               "\"mode\":\"shadow\"},{\"name\":\"s_allow\",\"action\":\"allow\",\"when\":\"true\","
               "\"mode\":\"shadow\"}]",
               200, NULL);
    for (int i = 0; i < 5; i++) {
        const cJSON *risk = txn("shadow", 100 + i * 1000, "", &r);
        ck_assert_str_eq(sget(risk, "decision"), "allow");
        ck_assert_str_eq(sget(risk, "decided_by"), "default");
        char names[256];
        matched_names(risk, names, sizeof names);
        ck_assert_str_eq(names, "s_block[s],s_review[s],s_allow[s]");
        h_resp_free(&r);
    }
    put_policy(NULL, 0.5, 0.9, "review", "[]", 200, NULL);
}
END_TEST

/* Degraded scoring (no champion): rules not reading score still decide; score rules are skipped
 * (even negated ones); the fallback decides only when no rule did. */
START_TEST(degraded_with_rules)
{
    user("deg");
    h_resp r;
    put_policy(NULL, 0.5, 0.9, "review",
               "[{\"name\":\"big\",\"action\":\"block\",\"when\":\"amount > 100\"},"
               "{\"name\":\"low_score\",\"action\":\"allow\",\"when\":\"not (score > 0.9)\"},"
               "{\"name\":\"hi_score\",\"action\":\"block\",\"when\":\"score > 0 or amount > "
               "1000000\"}]",
               200, NULL);
    const cJSON *risk = txn("deg", 50000, "", &r);
    ck_assert(cJSON_IsTrue(get(risk, "degraded")));
    ck_assert_str_eq(sget(risk, "reason"), "no_champion_model");
    ck_assert_str_eq(sget(risk, "decision"), "block");
    ck_assert_str_eq(sget(risk, "decided_by"), "rule:big");
    char names[256];
    matched_names(risk, names, sizeof names);
    ck_assert_str_eq(names, "big");
    h_resp_free(&r);
    risk = txn("deg", 5000, "", &r);
    ck_assert_str_eq(sget(risk, "decision"), "review");
    ck_assert_str_eq(sget(risk, "decided_by"), "fallback");
    ck_assert_int_eq(cJSON_GetArraySize(get(risk, "rules")), 0);
    h_resp_free(&r);
    put_policy(NULL, 0.5, 0.9, "review", "[]", 200, NULL);
}
END_TEST

/* ---- versions ------------------------------------------------------------------------------- */

START_TEST(versions_and_rollback)
{
    char key[128], path[200];
    h_resp r;
    ck_assert_int_eq(h_create_key(&E, "admin", key, sizeof key), 0);
    long v1 = put_policy(NULL, 0.25, 0.75, "allow",
                         "[{\"name\":\"one\",\"action\":\"review\",\"when\":\"amount > 1\","
                         "\"description\":\"first\"}]",
                         200, NULL);
    const char *body = "{\"champion_model_id\":null,\"review_threshold\":0.3,"
                       "\"block_threshold\":0.8,\"rules\":[]}";
    ck_assert_int_eq(
        h_http(&E, "PUT", "/api/v1/policy", key, "application/json", body, strlen(body), NULL, &r),
        0);
    ck_assert_int_eq(r.status, 200);
    long v2 = (long)get(r.json, "version")->valuedouble;
    ck_assert_int_eq(v2, v1 + 1);
    h_resp_free(&r);
    /* the list, newest first, paged */
    req_ok("GET", "/api/v1/policy/versions?limit=1", NULL, 200, &r);
    const cJSON *d0 = cJSON_GetArrayItem(get(r.json, "data"), 0);
    ck_assert_int_eq((long)get(d0, "version")->valuedouble, v2);
    ck_assert_str_eq(sget(get(d0, "api_key"), "name"), "e2e");
    snprintf(path, sizeof path, "/api/v1/policy/versions?limit=1&cursor=%s",
             sget(r.json, "next_cursor"));
    h_resp_free(&r);
    req_ok("GET", path, NULL, 200, &r);
    d0 = cJSON_GetArrayItem(get(r.json, "data"), 0);
    ck_assert_int_eq((long)get(d0, "version")->valuedouble, v1);
    ck_assert_str_eq(sget(get(d0, "api_key"), "name"), "bootstrap");
    ck_assert_str_eq(sget(cJSON_GetArrayItem(get(d0, "rules"), 0), "description"), "first");
    h_resp_free(&r);
    /* rollback to v1: a new version with v1's content */
    snprintf(path, sizeof path, "/api/v1/policy/versions/%ld/activate", v1);
    req_ok("POST", path, NULL, 200, &r);
    ck_assert_int_eq((long)get(r.json, "version")->valuedouble, v2 + 1);
    ck_assert(get(r.json, "review_threshold")->valuedouble == 0.25);
    ck_assert_str_eq(sget(r.json, "fallback_decision"), "allow");
    ck_assert_str_eq(sget(cJSON_GetArrayItem(get(r.json, "rules"), 0), "name"), "one");
    h_resp_free(&r);
    snprintf(path, sizeof path, "/api/v1/policy/versions/%ld", v2 + 1);
    req_ok("GET", path, NULL, 200, &r);
    ck_assert_int_eq((long)get(r.json, "activated_from")->valuedouble, v1);
    ck_assert(get(r.json, "block_threshold")->valuedouble == 0.75);
    h_resp_free(&r);
    /* versions are immutable records: v1 still reads the same */
    snprintf(path, sizeof path, "/api/v1/policy/versions/%ld", v1);
    req_ok("GET", path, NULL, 200, &r);
    ck_assert(cJSON_IsNull(get(r.json, "activated_from")));
    h_resp_free(&r);
    /* the schema itself keeps versions immutable */
    char out[512];
    ck_assert_int_ne(
        h_psql(&E, NULL, "UPDATE policy_versions SET review_threshold = 0", out, sizeof out), 0);
    ck_assert_int_ne(h_psql(&E, NULL, "DELETE FROM policy_versions", out, sizeof out), 0);
    e2e_req(&E, "GET", "/api/v1/policy/versions/99999", NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    e2e_req(&E, "POST", "/api/v1/policy/versions/99999/activate", NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/policy/versions/x", NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "n");
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/policy/versions?cursor=abc", NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "cursor");
    h_resp_free(&r);
    put_policy(NULL, 0.5, 0.9, "review", "[]", 200, NULL);
}
END_TEST

/* ---- replay --------------------------------------------------------------------------------- */

#define MAXV 32 /* versions tracked per list */
#define MAXI 64 /* items per version */
typedef struct tlist {
    const char *name, *kind;
    char id[37];
    int nv;
    long version[MAXV];
    int n[MAXV];
    char item[MAXV][MAXI][24];
} tlist;

static tlist g_lists[3] = {{.name = "bad_merchants", .kind = "string"},
                           {.name = "bad_ips", .kind = "ip"},
                           {.name = "bad_hours", .kind = "number"}};

/* Applies a change and records the list's content at the version it answered. */
static void tl_change(tlist *l, const char *method, const char *const *items, int n)
{
    char body[2048] = "{\"items\":[", path[128];
    for (int i = 0; i < n; i++)
        snprintf(body + strlen(body), sizeof body - strlen(body), "%s\"%s\"", i ? "," : "",
                 items[i]);
    strcat(body, "]}");
    snprintf(path, sizeof path, "/api/v1/lists/%s/items", l->id);
    h_resp r;
    req_ok(method, path, body, 200, &r);
    long v = (long)get(r.json, "version")->valuedouble;
    h_resp_free(&r);
    int prev = l->nv - 1, cur = l->nv;
    ck_assert_int_lt(cur, MAXV);
    l->n[cur] = 0;
    for (int i = 0; prev >= 0 && i < l->n[prev]; i++) {
        int drop = 0;
        for (int k = 0; k < n && strcmp(method, "DELETE") == 0; k++)
            drop |= strcmp(l->item[prev][i], items[k]) == 0;
        if (!drop)
            snprintf(l->item[cur][l->n[cur]++], 24, "%s", l->item[prev][i]);
    }
    for (int k = 0; k < n && strcmp(method, "POST") == 0; k++) {
        int have = 0;
        for (int i = 0; i < l->n[cur]; i++)
            have |= strcmp(l->item[cur][i], items[k]) == 0;
        if (!have)
            snprintf(l->item[cur][l->n[cur]++], 24, "%s", items[k]);
    }
    l->version[cur] = v;
    l->nv++;
}

/* a.b.c.d[/p] -> address and prefix; 0 when not IPv4. */
static int v4(const char *s, uint32_t *a, int *p)
{
    unsigned x[4];
    *p = 32;
    if (sscanf(s, "%u.%u.%u.%u/%d", &x[0], &x[1], &x[2], &x[3], p) < 4)
        return 0;
    *a = x[0] << 24 | x[1] << 16 | x[2] << 8 | x[3];
    return 1;
}

/* Membership by this test's own arithmetic: list l at version v, value text (NULL = missing). */
static const char *expect_probe(const tlist *l, long v, const cJSON *value)
{
    int at = -1;
    for (int i = 0; i < l->nv; i++)
        if (l->version[i] == v)
            at = i;
    ck_assert_msg(at >= 0, "list %s: version %ld was never written", l->name, v);
    if (!value || cJSON_IsNull(value))
        return "missing";
    for (int i = 0; i < l->n[at]; i++) {
        const char *it = l->item[at][i];
        if (strcmp(l->kind, "string") == 0 && strcmp(it, value->valuestring) == 0)
            return "member";
        if (strcmp(l->kind, "number") == 0 && strtod(it, NULL) == value->valuedouble)
            return "member";
        uint32_t a, b;
        int p, q;
        if (strcmp(l->kind, "ip") == 0 && v4(it, &a, &p) && v4(value->valuestring, &b, &q) &&
            (p == 0 || (a >> (32 - p)) == (b >> (32 - p))))
            return "member";
    }
    return "not_member";
}

/* A random rule set (5 rules) as a JSON array. */
static void random_rules(unsigned *seed, char *out, size_t cap)
{
    static const char *const when[] = {
        "merchant_id in @bad_merchants",
        "ip_address in @bad_ips",
        "hour_of_day in @bad_hours or day_of_week in @bad_hours",
        "amount > %d",
        "score >= 0.%d",
        "not merchant_seen_before and amount > %d",
        "card_country != country",
        "is_missing(card_country) or shipping_country in (\\\"US\\\", \\\"GB\\\")",
        "is_missing(challenger_score) and amount < %d",
        "user_amount_avg_30d * 2 < amount and user_txn_count_24h >= 1",
        "email in @bad_merchants or not (ip_address in @bad_ips)",
        "score < 0.%d and amount / 10 > 3",
    };
    static const char *const act[] = {"allow", "review", "block"};
    size_t at = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < 5; i++) {
        char w[200];
        snprintf(w, sizeof w, when[rand_r(seed) % 12], rand_r(seed) % 900 + 1);
        at += (size_t)snprintf(out + at, cap - at,
                               "%s{\"name\":\"r%d\",\"action\":\"%s\",\"mode\":\"%s\",\"when\":"
                               "\"%s\"}",
                               i ? "," : "", i, act[rand_r(seed) % 3],
                               rand_r(seed) % 4 ? "active" : "shadow", w);
    }
    snprintf(out + at, cap - at, "]");
}

/* One random transaction's extra members. */
static void random_txn(unsigned *seed, char *u, long *amount, char *extra, size_t cap)
{
    static const char *const ips[] = {"10.1.2.3",   "192.168.1.77", "192.168.2.1",
                                      "172.16.5.5", "8.8.8.8",      "203.0.113.1"};
    static const char *const cc[] = {"DE", "FR", "US", "GB"};
    snprintf(u, 16, "ru%u", rand_r(seed) % 8);
    *amount = 100 + rand_r(seed) % 200000;
    size_t at = (size_t)snprintf(extra, cap, "\"merchant_id\":\"m%u\"", rand_r(seed) % 20);
    if (rand_r(seed) % 5)
        at +=
            (size_t)snprintf(extra + at, cap - at, ",\"ip_address\":\"%s\"", ips[rand_r(seed) % 6]);
    if (rand_r(seed) % 3)
        at += (size_t)snprintf(extra + at, cap - at, ",\"card_country\":\"%s\"",
                               cc[rand_r(seed) % 4]);
    if (rand_r(seed) % 2)
        at += (size_t)snprintf(extra + at, cap - at, ",\"shipping_country\":\"%s\"",
                               cc[rand_r(seed) % 4]);
    if (rand_r(seed) % 4 == 0)
        snprintf(extra + at, cap - at, ",\"email\":\"%s@x.io\"", rand_r(seed) % 2 ? "fraud" : "a");
}

/* POSTs one random decision; returns the whole answer (caller deletes). */
static cJSON *random_decision(unsigned *seed)
{
    char u[16], extra[512], b[1024];
    long amount;
    h_resp r;
    random_txn(seed, u, &amount, extra, sizeof extra);
    snprintf(b, sizeof b,
             "{\"user_external_id\":\"%s\",\"amount\":%ld,\"currency\":\"EUR\",%s,"
             "\"merchant_category\":\"5411\",\"country\":\"DE\",\"channel\":\"ecommerce\"}",
             u, amount, extra);
    req_ok("POST", "/api/v1/transactions", b, 201, &r);
    cJSON *out = r.json;
    r.json = NULL;
    h_resp_free(&r);
    return out;
}

/* The rules of policy version v (cached in vers[]; caller owns nothing). */
static const cJSON *version_rules(long v, cJSON **vers, int nvers)
{
    ck_assert_int_lt(v, nvers);
    if (!vers[v]) {
        char path[100];
        h_resp r;
        snprintf(path, sizeof path, "/api/v1/policy/versions/%ld", v);
        req_ok("GET", path, NULL, 200, &r);
        vers[v] = r.json;
        r.json = NULL;
        h_resp_free(&r);
    }
    return get(vers[v], "rules");
}

/* The stored answer of a probe (list, operand) as rules.h's enum, and its independent check. */
static uint8_t stored_probe(const cJSON *risk, const char *list, const char *operand,
                            const cJSON *inputs)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, get(risk, "list_probes"))
    {
        if (strcmp(sget(p, "list"), list) || strcmp(sget(p, "operand"), operand))
            continue;
        const char *res = sget(p, "result");
        for (int i = 0; i < 3; i++)
            if (strcmp(g_lists[i].name, list) == 0) {
                const cJSON *val =
                    get(get(inputs, strcmp(g_lists[i].kind, "number") ? "strings" : "numbers"),
                        operand);
                long v = (long)get(get(risk, "lists"), list)->valuedouble;
                ck_assert_str_eq(res, expect_probe(&g_lists[i], v, val));
            }
        return strcmp(res, "member") == 0       ? RULES_PROBE_YES
               : strcmp(res, "not_member") == 0 ? RULES_PROBE_NO
                                                : RULES_PROBE_MISSING;
    }
    ck_abort_msg("probe %s/%s not stored", list, operand);
    return RULES_PROBE_MISSING;
}

/* Slots and catalogue from the stored rule_inputs; returns the operand count. */
static size_t snapshot_slots(const cJSON *inputs, rules_operand *ops, rules_value *slots,
                             size_t cap)
{
    size_t n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, get(inputs, "numbers"))
    {
        ck_assert_uint_lt(n, cap);
        int sc = strcmp(x->string, "score") == 0 || strcmp(x->string, "challenger_score") == 0;
        ops[n] = (rules_operand){x->string, RULES_NUMBER, sc ? RULES_OPERAND_SCORE : 0u};
        slots[n] = (rules_value){0};
        if (cJSON_IsNumber(x))
            slots[n] = (rules_value){NULL, x->valuedouble, 0, RULES_NUMBER};
        n++;
    }
    cJSON_ArrayForEach(x, get(inputs, "strings"))
    {
        ck_assert_uint_lt(n, cap);
        ops[n] = (rules_operand){x->string, RULES_STRING, 0};
        slots[n] = (rules_value){0};
        if (cJSON_IsString(x))
            slots[n] =
                (rules_value){x->valuestring, 0, (uint32_t)strlen(x->valuestring), RULES_STRING};
        n++;
    }
    return n;
}

/* Replays one stored decision with common/rules.c and compares everything it decided. */
static void replay(const cJSON *t, const cJSON *rules)
{
    const cJSON *risk = get(t, "risk"), *in = get(risk, "rule_inputs"), *x;
    rules_operand ops[256];
    rules_value slots[256];
    rules_spec specs[RULES_MAX];
    size_t n_ops = snapshot_slots(in, ops, slots, 256), n_specs = 0;
    rules_list lists[3];
    for (int i = 0; i < 3; i++)
        lists[i] = (rules_list){g_lists[i].name,
                                listset_kind_parse(g_lists[i].kind, strlen(g_lists[i].kind))};
    cJSON_ArrayForEach(x, rules)
    {
        rules_spec *s = &specs[n_specs++];
        const char *a = sget(x, "action"), *m = sget(x, "mode") ? sget(x, "mode") : "active";
        s->name = sget(x, "name");
        s->when = sget(x, "when");
        s->when_len = strlen(s->when);
        ck_assert_int_eq(rules_action_parse(a, strlen(a), &s->action), 0);
        ck_assert_int_eq(rules_mode_parse(m, strlen(m), &s->mode), 0);
    }
    rules_catalog cat = {ops, n_ops, lists, 3};
    rules_program *p = NULL;
    rules_error err;
    ck_assert_int_eq(rules_compile(specs, n_specs, &cat, &p, &err), RULES_OK);
    uint8_t probes[64];
    for (size_t k = 0; k < rules_probe_count(p); k++)
        probes[k] = stored_probe(risk, rules_list_name(p, rules_probe_list(p, k)),
                                 ops[rules_probe_slot(p, k)].name, in);
    int degraded = cJSON_IsTrue(get(risk, "degraded"));
    uint64_t matched[RULES_BITMAP_WORDS] = {0};
    rules_eval(p, slots, n_ops, probes, degraded ? RULES_EVAL_DEGRADED : 0, matched);
    const cJSON *pol = get(risk, "policy"), *score = get(get(in, "numbers"), "score");
    rules_decide_in din = {degraded, RULES_REVIEW, cJSON_IsNumber(score) ? score->valuedouble : NAN,
                           get(pol, "review_threshold")->valuedouble,
                           get(pol, "block_threshold")->valuedouble};
    const char *fb = sget(pol, "fallback_decision");
    rules_action_parse(fb, strlen(fb), &din.fallback);
    rules_verdict v = rules_decide(p, matched, &din);
    char by[128], names[1024] = "", want[1024];
    rules_decided_by_text(p, &v, by, sizeof by);
    for (size_t i = 0; i < rules_count(p); i++)
        if (matched[i / 64] >> (i % 64) & 1)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s%s",
                     names[0] ? "," : "", rules_rule_name(p, i),
                     rules_rule_mode(p, i) == RULES_SHADOW ? "[s]" : "");
    matched_names(risk, want, sizeof want);
    ck_assert_str_eq(rules_action_name(v.decision), sget(risk, "decision"));
    ck_assert_str_eq(by, sget(risk, "decided_by"));
    ck_assert_str_eq(names, want);
    rules_free(p);
}

/* The stored operands say what the transaction said, and the score is the decision's. */
static void check_inputs(const cJSON *t)
{
    const cJSON *risk = get(t, "risk"), *strs = get(get(risk, "rule_inputs"), "strings");
    static const char *const f[] = {"merchant_id", "ip_address", "card_country", "shipping_country",
                                    "email"};
    for (int i = 0; i < 5; i++) {
        const cJSON *a = get(t, f[i]), *b = get(strs, f[i]);
        ck_assert(cJSON_IsNull(a) == cJSON_IsNull(b));
        if (!cJSON_IsNull(a))
            ck_assert_str_eq(a->valuestring, b->valuestring);
    }
    const cJSON *s1 = get(risk, "score"),
                *s2 = get(get(get(risk, "rule_inputs"), "numbers"), "score");
    ck_assert(cJSON_IsNull(s1) == cJSON_IsNull(s2));
    if (cJSON_IsNumber(s1))
        ck_assert((float)s1->valuedouble == (float)s2->valuedouble);
}

/* List changes between batches of decisions, so decisions see several versions of each list. */
static void churn_lists(unsigned *seed, int round)
{
    static const char *const ms[] = {"m1", "m2", "m4", "m9", "m11", "m12", "m19", "a@x.io"};
    static const char *const ips[] = {"8.8.8.0/24", "203.0.113.0/24", "192.168.0.0/16",
                                      "172.16.5.5"};
    static const char *const hrs[] = {"1", "7", "8", "9", "10", "13", "15", "20"};
    const char *m = ms[rand_r(seed) % 8], *ip = ips[rand_r(seed) % 4], *h = hrs[rand_r(seed) % 8];
    const char *method = round % 2 ? "DELETE" : "POST";
    tl_change(&g_lists[0], method, &m, 1);
    tl_change(&g_lists[1], method, &ip, 1);
    tl_change(&g_lists[2], method, &h, 1);
}

START_TEST(replay_2000_random_decisions)
{
    enum { PHASES = 3, PER_PHASE = 667, MAXVERS = 4096 };
    static const char *const m0[] = {"m0", "m3", "m5", "m7", "fraud@x.io"};
    static const char *const ip0[] = {"10.0.0.0/8", "192.168.1.0/24", "172.16.5.5"};
    static const char *const h0[] = {"0", "2", "4", "6", "8", "10", "12", "14", "16", "18", "22"};
    unsigned seed = 20261130;
    demo_model();
    for (int i = 0; i < 8; i++) {
        char u[16];
        snprintf(u, sizeof u, "ru%d", i);
        user(u);
    }
    for (int i = 0; i < 3; i++) {
        create_list(g_lists[i].name, g_lists[i].kind, g_lists[i].id);
        g_lists[i].version[0] = 1;
        g_lists[i].n[0] = 0;
        g_lists[i].nv = 1;
    }
    tl_change(&g_lists[0], "POST", m0, 5);
    tl_change(&g_lists[1], "POST", ip0, 3);
    tl_change(&g_lists[2], "POST", h0, 11);
    cJSON **answers = calloc(PHASES * PER_PHASE, sizeof *answers);
    cJSON **vers = calloc(MAXVERS, sizeof *vers);
    int n = 0;
    for (int ph = 0; ph < PHASES; ph++) {
        char rules[4096];
        random_rules(&seed, rules, sizeof rules);
        double review = (rand_r(&seed) % 100) / 100.0;
        put_policy(ph == PHASES - 1 ? NULL : g_demo, review, review + (1 - review) / 2,
                   ph ? "block" : "review", rules, 200, NULL);
        for (int i = 0; i < PER_PHASE; i++) {
            if (i % 100 == 99)
                churn_lists(&seed, i / 100);
            answers[n++] = random_decision(&seed);
        }
    }
    int decided_by_rule = 0, degraded = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *risk = get(answers[i], "risk");
        long v = (long)get(get(risk, "policy"), "version")->valuedouble;
        check_inputs(answers[i]);
        replay(answers[i], version_rules(v, vers, MAXVERS));
        decided_by_rule += strncmp(sget(risk, "decided_by"), "rule:", 5) == 0;
        degraded += cJSON_IsTrue(get(risk, "degraded"));
        cJSON_Delete(answers[i]);
    }
    /* the random policies exercised rules deciding, degraded decisions and other outcomes */
    ck_assert_int_gt(decided_by_rule, 50);
    ck_assert_int_gt(n - decided_by_rule, 20);
    ck_assert_int_ge(degraded, PER_PHASE);
    for (int i = 0; i < MAXVERS; i++)
        cJSON_Delete(vers[i]);
    free(vers);
    free(answers);
    put_policy(NULL, 0.5, 0.9, "review", "[]", 200, NULL);
}
END_TEST

static Suite *rules_suite(void)
{
    Suite *s = suite_create("rules");
    TCase *tc = tcase_create("rules");
    tcase_add_unchecked_fixture(tc, up, down);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, rule_errors);
    tcase_add_test(tc, precedence_over_score);
    tcase_add_test(tc, shadow_never_decides);
    tcase_add_test(tc, degraded_with_rules);
    tcase_add_test(tc, versions_and_rollback);
    tcase_add_test(tc, replay_2000_random_decisions);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rules_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
