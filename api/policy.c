/* policy.c - the decision policy resource, and the policy as a decision reads it
 * (POLICY_LOAD_SQL, policy_from_result).
 * See policy.h.  Every statement on the policy table is here. */
#include "policy.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbreq.h"
#include "fields.h"
#include "json.h"
#include "model.h"
#include "rulecat.h"
#include "rules.h"
#include "validate.h"

#define POLICY_COLS                                                                                \
    "champion_model_id, challenger_model_id, review_threshold, block_threshold, "                  \
    "fallback_decision, scoring_timeout_ms, version, "                                             \
    "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), explain_top_k, " \
    "rules::text"

static cJSON *policy_json(const PGresult *r)
{
    cJSON *o = cJSON_CreateObject();
    if (PQgetisnull(r, 0, 0))
        cJSON_AddNullToObject(o, "champion_model_id");
    else
        cJSON_AddStringToObject(o, "champion_model_id", PQgetvalue(r, 0, 0));
    if (PQgetisnull(r, 0, 1))
        cJSON_AddNullToObject(o, "challenger_model_id");
    else
        cJSON_AddStringToObject(o, "challenger_model_id", PQgetvalue(r, 0, 1));
    cJSON_AddNumberToObject(o, "review_threshold", strtod(PQgetvalue(r, 0, 2), NULL));
    cJSON_AddNumberToObject(o, "block_threshold", strtod(PQgetvalue(r, 0, 3), NULL));
    cJSON_AddStringToObject(o, "fallback_decision", PQgetvalue(r, 0, 4));
    cJSON_AddNumberToObject(o, "scoring_timeout_ms", atoi(PQgetvalue(r, 0, 5)));
    cJSON_AddNumberToObject(o, "version", atoi(PQgetvalue(r, 0, 6)));
    cJSON_AddStringToObject(o, "updated_at", PQgetvalue(r, 0, 7));
    cJSON *ex = cJSON_AddObjectToObject(o, "explain");
    cJSON_AddNumberToObject(ex, "top_k", atoi(PQgetvalue(r, 0, 8)));
    cJSON_AddRawToObject(o, "rules", PQgetvalue(r, 0, 9));
    return o;
}

void policy_get(http_req *req, http_resp *resp)
{
    PGresult *r = NULL;
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return;
    int rc = dbreq_query(req, resp, c, "SELECT " POLICY_COLS " FROM policy", 0, NULL, &r);
    dbreq_release(req, c);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK && PQntuples(r) == 1)
        http_json(resp, 200, policy_json(r));
    else if (rc == DB_OK)
        http_problem(resp, 500, "internal", NULL, "the policy row is missing");
    PQclear(r);
}

/* A finite number >= 0 member, required. */
static int threshold(http_resp *resp, const cJSON *body, const char *name, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0) {
        http_problem(resp, 400, "validation_failed", name, "'%s' must be a number >= 0", name);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

/* Checks that a model exists, has feature names, yields one score per row and can be loaded by
 * the worker (scoring_loadable: frame, arena, not refused as too large lately). */
static int check_model(http_req *req, http_resp *resp, db_conn *c, const char *id,
                       const char *field)
{
    PGresult *r = NULL;
    const char *vals[] = {id};
    int rc =
        dbreq_query(req, resp, c,
                    "SELECT objective, num_class, coalesce(array_length(feature_names, 1), 0), "
                    "octet_length(compiled), encode(compiled_sha256, 'hex') "
                    "FROM models WHERE id = $1",
                    1, vals, &r);
    int ok = -1;
    char why[320];
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK && PQntuples(r) == 0)
        http_problem(resp, 422, "unknown_model", field, "no model with id %s", id);
    else if (rc == DB_OK && (model_objective_from_name(PQgetvalue(r, 0, 0)) == MODEL_OBJ_SOFTPROB ||
                             atoi(PQgetvalue(r, 0, 1)) > 1))
        http_problem(
            resp, 422, "unsuitable_model", field,
            "model %s is multi-class or multi-target; a policy model must give one score per row",
            id);
    else if (rc == DB_OK && atoi(PQgetvalue(r, 0, 2)) == 0)
        http_problem(resp, 422, "unsuitable_model", field,
                     "model %s has no feature_names, so vigil cannot assemble its features", id);
    else if (rc == DB_OK && scoring_loadable(req->app, id, PQgetvalue(r, 0, 4),
                                             strtoull(PQgetvalue(r, 0, 3), NULL, 10),
                                             req->deadline_ms, why, sizeof why) != 0)
        http_problem(resp, 422, "model_too_large", field,
                     "model %s cannot be loaded by the scoring worker: %s", id, why);
    else if (rc == DB_OK)
        ok = 0;
    PQclear(r);
    return ok;
}

/* A PUT body, validated. */
typedef struct policy_body {
    const char *champion, *challenger, *fallback; /* point into the parsed body */
    double review, block;
    long long timeout_ms;
    long long top_k;    /* explain.top_k */
    const cJSON *rules; /* the validated "rules" array, or NULL (no rules) */
    rules_spec specs[RULES_MAX];
    size_t n_specs;
} policy_body;

static int bad_rule(http_resp *resp, int i, const char *member, const char *msg)
{
    char field[48];
    snprintf(field, sizeof field, member ? "rules[%d].%s" : "rules[%d]", i, member);
    http_problem(resp, 400, "validation_failed", field, "%s: %s", field, msg);
    return -1;
}

/* One rule's members: {name, action, when, mode?, description?}; names unique. */
static int read_rule(http_resp *resp, const cJSON *r, int i, policy_body *p)
{
    static const char *const allowed[] = {"name", "action", "when", "mode", "description", NULL};
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(r, "name");
    const cJSON *action = cJSON_GetObjectItemCaseSensitive(r, "action");
    const cJSON *when = cJSON_GetObjectItemCaseSensitive(r, "when");
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(r, "mode");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(r, "description");
    rules_spec *s = &p->specs[p->n_specs];
    const char *other = cJSON_IsObject(r) ? json_unknown_member(r, allowed) : NULL;
    if (!cJSON_IsObject(r))
        return bad_rule(resp, i, NULL, "a rule must be an object {name, action, when, mode}");
    if (other)
        return bad_rule(resp, i, other, "unknown member");
    if (!cJSON_IsString(name) || !rules_name_valid(name->valuestring, strlen(name->valuestring)))
        return bad_rule(resp, i, "name", "must be 1..64 characters of A-Z a-z 0-9 _ . : -");
    for (size_t k = 0; k < p->n_specs; k++)
        if (strcmp(p->specs[k].name, name->valuestring) == 0)
            return bad_rule(resp, i, "name", "another rule has this name");
    if (!cJSON_IsString(action) ||
        rules_action_parse(action->valuestring, strlen(action->valuestring), &s->action))
        return bad_rule(resp, i, "action", "must be allow, review or block");
    s->mode = RULES_ACTIVE;
    if (mode && (!cJSON_IsString(mode) ||
                 rules_mode_parse(mode->valuestring, strlen(mode->valuestring), &s->mode)))
        return bad_rule(resp, i, "mode", "must be active or shadow");
    if (!cJSON_IsString(when) || strlen(when->valuestring) > RULES_WHEN_MAX)
        return bad_rule(resp, i, "when", "must be an expression of at most 4096 bytes");
    if (desc && !cJSON_IsNull(desc) &&
        (!cJSON_IsString(desc) || val_utf8_chars(desc->valuestring) > 1024))
        return bad_rule(resp, i, "description", "must be a string of at most 1024 characters");
    s->name = name->valuestring;
    s->when = when->valuestring;
    s->when_len = strlen(when->valuestring);
    p->n_specs++;
    return 0;
}

/* "rules": an array of at most RULES_MAX rules, each read_rule's.  Absent = no rules. */
static int read_rules(http_resp *resp, const cJSON *body, policy_body *p)
{
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(body, "rules"), *r;
    int i = 0;
    if (!rules || cJSON_IsNull(rules))
        return 0;
    if (!cJSON_IsArray(rules) || cJSON_GetArraySize(rules) > RULES_MAX) {
        http_problem(resp, 400, "validation_failed", "rules",
                     "'rules' must be an array of at most %d rules", RULES_MAX);
        return -1;
    }
    cJSON_ArrayForEach(r, rules)
    {
        if (read_rule(resp, r, i++, p))
            return -1;
    }
    p->rules = rules;
    return 0;
}

/* Validates a PUT body into *p.  Returns 0, or -1 with resp filled (400 naming the field). */
static int read_policy_body(http_resp *resp, const cJSON *body, policy_body *p)
{
    static const char *const allowed[] = {"champion_model_id",
                                          "challenger_model_id",
                                          "review_threshold",
                                          "block_threshold",
                                          "fallback_decision",
                                          "scoring_timeout_ms",
                                          "explain",
                                          "rules",
                                          NULL};
    const char *field = NULL, *msg = NULL;
    p->champion = p->challenger = NULL;
    p->fallback = "review";
    p->review = p->block = 0;
    p->timeout_ms = 50;
    p->top_k = 5;
    p->rules = NULL;
    p->n_specs = 0;
    if (field_no_unknown(resp, body, allowed) ||
        field_string(resp, body, "champion_model_id", 36, FIELD_REQUIRED | FIELD_NULLABLE,
                     &p->champion, NULL) ||
        field_string(resp, body, "challenger_model_id", 36, FIELD_NULLABLE, &p->challenger, NULL) ||
        field_string(resp, body, "fallback_decision", 32, 0, &p->fallback, NULL) ||
        threshold(resp, body, "review_threshold", &p->review) ||
        threshold(resp, body, "block_threshold", &p->block))
        return -1;
    if (!p->fallback)
        p->fallback = "review";
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(body, "scoring_timeout_ms");
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(body, "explain");
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(ex, "top_k");
    static const char *const ex_allowed[] = {"top_k", NULL};
    if (ex && (!cJSON_IsObject(ex) || json_unknown_member(ex, ex_allowed) ||
               (tk && (!cJSON_IsNumber(tk) || tk->valuedouble != floor(tk->valuedouble) ||
                       tk->valuedouble < 0 || tk->valuedouble > 20)))) {
        http_problem(resp, 400, "validation_failed", "explain",
                     "'explain' must be an object {\"top_k\": integer 0..20}");
        return -1;
    }
    if (tk)
        p->top_k = (long long)tk->valuedouble;
    if (p->champion && !val_uuid(p->champion))
        field = "champion_model_id", msg = "must be a UUID or null";
    else if (p->challenger && !val_uuid(p->challenger))
        field = "challenger_model_id", msg = "must be a UUID or null";
    else if (p->challenger && !p->champion)
        field = "challenger_model_id", msg = "a challenger needs a champion";
    else if (p->review > p->block)
        field = "review_threshold", msg = "review_threshold must be <= block_threshold";
    else if (strcmp(p->fallback, "allow") && strcmp(p->fallback, "review") &&
             strcmp(p->fallback, "block"))
        field = "fallback_decision", msg = "'fallback_decision' must be allow, review or block";
    else if (to && (!cJSON_IsNumber(to) || to->valuedouble != floor(to->valuedouble) ||
                    to->valuedouble < 1 || to->valuedouble > 10000))
        field = "scoring_timeout_ms", msg = "'scoring_timeout_ms' must be an integer in 1..10000";
    if (field) {
        http_problem(resp, 400, "validation_failed", field, "%s", msg);
        return -1;
    }
    if (to)
        p->timeout_ms = (long long)to->valuedouble;
    return read_rules(resp, body, p);
}

/* The models of p (each may be absent) into m[] (free with scoring_model_free), for the
 * catalogue.  0, or -1 with resp filled. */
static int load_models(http_req *req, http_resp *resp, db_conn *c, const policy_body *p,
                       scoring_model m[POLICY_SLOTS], const scoring_model *mp[POLICY_SLOTS])
{
    const char *ids[POLICY_SLOTS] = {p->champion, p->challenger};
    for (int s = 0; s < POLICY_SLOTS; s++) {
        int db_rc = DB_OK;
        mp[s] = NULL;
        if (!ids[s])
            continue;
        int rc = scoring_meta(c, ids[s], req->deadline_ms, &m[s], &db_rc);
        if (rc == SC_NOT_FOUND) {
            http_problem(resp, 422, "unknown_model", NULL, "the model was deleted meanwhile");
            return -1;
        }
        if (rc != SC_OK) {
            resp->retry_after = 1;
            http_problem(resp, 503, "unavailable", NULL, "the database is unavailable");
            return -1;
        }
        mp[s] = &m[s];
    }
    return 0;
}

/* Every list (locked against deletion until the transaction ends), for the catalogue. */
static int load_lists(http_req *req, http_resp *resp, db_conn *c, PGresult **r, rulecat_list **out,
                      size_t *n)
{
    int rc = dbreq_query(req, resp, c, "SELECT name, kind FROM lists ORDER BY name FOR KEY SHARE",
                         0, NULL, r);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, *r);
    if (rc != DB_OK)
        return -1;
    *n = (size_t)PQntuples(*r);
    if (!(*out = calloc(*n + 1, sizeof **out))) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < *n; i++)
        (*out)[i] = (rulecat_list){
            PQgetvalue(*r, (int)i, 0),
            listset_kind_parse(PQgetvalue(*r, (int)i, 1), (size_t)PQgetlength(*r, (int)i, 1))};
    return 0;
}

/* The names of the lists prog uses as a PostgreSQL text[] literal in buf[cap]. */
static void used_lists(const rules_program *prog, char *buf, size_t cap)
{
    size_t at = (size_t)snprintf(buf, cap, "{");
    for (size_t li = 0; prog && li < rules_list_count(prog) && at < cap; li++)
        at += (size_t)snprintf(buf + at, cap - at, "%s\"%s\"", li ? "," : "",
                               rules_list_name(prog, li));
    if (at < cap)
        snprintf(buf + at, cap - at, "}");
}

/* Compiles p's rules against the catalogue of its models and the existing lists.  0 with the
 * names of the lists used in used[cap] (a text[] literal), or -1 with resp filled (422 naming
 * the rule, its column and what was expected; 503, 500). */
static int compile_rules(http_req *req, http_resp *resp, db_conn *c, const policy_body *p,
                         char *used, size_t cap)
{
    scoring_model m[POLICY_SLOTS];
    const scoring_model *mp[POLICY_SLOTS] = {NULL, NULL};
    PGresult *lr = NULL;
    rulecat_list *lists = NULL;
    size_t n_lists = 0;
    rulecat cat = {0};
    rules_program *prog = NULL;
    rules_error e = {0};
    int ok = -1;
    memset(m, 0, sizeof m);
    snprintf(used, cap, "{}");
    if (load_models(req, resp, c, p, m, mp) || load_lists(req, resp, c, &lr, &lists, &n_lists))
        goto done;
    int rc = rulecat_build(&cat, mp, POLICY_SLOTS, lists, n_lists)
                 ? RULES_E_NOMEM
                 : rules_compile(p->specs, p->n_specs, &cat.cat, &prog, &e);
    if (rc == RULES_E_INVALID && e.rule >= 0) {
        char field[40];
        snprintf(field, sizeof field, "rules[%d].when", e.rule);
        http_problem(resp, 422, "rule_invalid", field, "rule '%s' (rules[%d]), column %d: %s",
                     p->specs[e.rule].name, e.rule, e.column, e.message);
    } else if (rc == RULES_E_INVALID) {
        http_problem(resp, 422, "rule_invalid", "rules", "%s", e.message);
    } else if (rc != RULES_OK) {
        http_problem(resp, 500, "internal", NULL, "out of memory compiling the rules");
    } else if (rules_list_count(prog) > RULES_MAX) {
        http_problem(resp, 422, "rule_invalid", "rules", "the rules name %zu lists; at most %d",
                     rules_list_count(prog), RULES_MAX);
    } else {
        used_lists(prog, used, cap);
        ok = 0;
    }
done:
    rules_free(prog);
    rulecat_free(&cat);
    free(lists);
    PQclear(lr);
    for (int s = 0; s < POLICY_SLOTS; s++)
        if (mp[s])
            scoring_model_free(&m[s]);
    return ok;
}

/* UPDATEs the policy row and records the new version (with the API key that made it), on c
 * inside the caller's transaction.  0 with *r (the POLICY_COLS row), or -1 with resp filled. */
static int write_policy(http_req *req, http_resp *resp, db_conn *c, const policy_body *p,
                        const char *rules, const char *used, const char *from, PGresult **r)
{
    char rv[32], bv[32], tv[16], kv[8];
    snprintf(kv, sizeof kv, "%lld", p->top_k);
    snprintf(rv, sizeof rv, "%.17g", p->review);
    snprintf(bv, sizeof bv, "%.17g", p->block);
    snprintf(tv, sizeof tv, "%lld", p->timeout_ms);
    const char *vals[] = {p->champion, p->challenger, rv,   bv,   p->fallback, tv,
                          kv,          rules,         used, from, req->key_id};
    int rc = dbreq_query(
        req, resp, c,
        "WITH u AS (UPDATE policy SET champion_model_id = $1, challenger_model_id = $2, "
        "review_threshold = $3, block_threshold = $4, fallback_decision = $5, "
        "scoring_timeout_ms = $6, explain_top_k = $7, rules = $8, rule_lists = $9::text[], "
        "version = version + 1, updated_at = clock_timestamp() RETURNING *), "
        "v AS (INSERT INTO policy_versions (version, champion_model_id, challenger_model_id, "
        "review_threshold, block_threshold, fallback_decision, scoring_timeout_ms, explain_top_k, "
        "rules, activated_from, api_key_id, api_key_name, created_at) SELECT u.version, "
        "u.champion_model_id, u.challenger_model_id, u.review_threshold, u.block_threshold, "
        "u.fallback_decision, u.scoring_timeout_ms, u.explain_top_k, u.rules, $10::int, "
        "$11::uuid, (SELECT k.name FROM api_keys k WHERE k.id = $11::uuid), u.updated_at FROM u) "
        "SELECT " POLICY_COLS " FROM u",
        11, vals, r);
    if (rc == DB_ERROR && strcmp(db_sqlstate(*r), "23503") == 0)
        http_problem(resp, 422, "unknown_model", NULL, "the model was deleted meanwhile");
    else if (rc == DB_ERROR)
        dbreq_internal(req, resp, *r);
    return rc == DB_OK ? 0 : -1;
}

int policy_apply(http_req *req, http_resp *resp, const cJSON *body, const char *activated_from)
{
    db_conn *c = NULL;
    PGresult *r = NULL, *lock = NULL;
    char used[RULES_MAX * (RULES_LISTNAME_MAX + 3) + 3];
    char *rules = NULL;
    policy_body *p = malloc(sizeof *p);
    int ok = -1;
    if (!p) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
        return -1;
    }
    if (read_policy_body(resp, body, p) || !(c = dbreq_acquire(req, resp)) ||
        dbreq_begin(req, resp, c))
        goto done;
    if ((p->champion && check_model(req, resp, c, p->champion, "champion_model_id")) ||
        (p->challenger && check_model(req, resp, c, p->challenger, "challenger_model_id")))
        goto done;
    /* the policy row first, then the lists: lists_delete locks in the same order */
    if (dbreq_query(req, resp, c, "SELECT 1 FROM policy FOR UPDATE", 0, NULL, &lock) != DB_OK ||
        compile_rules(req, resp, c, p, used, sizeof used))
        goto done;
    if (!(rules = p->rules ? json_print(p->rules) : strdup("[]"))) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
        goto done;
    }
    if (write_policy(req, resp, c, p, rules, used, activated_from, &r) ||
        dbreq_commit(req, resp, c))
        goto done;
    http_json(resp, 200, policy_json(r));
    ok = 0;
done:
    PQclear(lock);
    PQclear(r);
    free(rules);
    free(p);
    if (c)
        dbreq_release(req, c);
    return ok;
}

int policy_check(http_req *req, http_resp *resp, db_conn *c, const cJSON *body)
{
    char used[RULES_MAX * (RULES_LISTNAME_MAX + 3) + 3];
    policy_body *p = malloc(sizeof *p);
    if (!p) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
        return -1;
    }
    int rc = read_policy_body(resp, body, p) || compile_rules(req, resp, c, p, used, sizeof used)
                 ? -1
                 : 0;
    free(p);
    return rc;
}

void policy_put(http_req *req, http_resp *resp)
{
    cJSON *body = NULL;
    if (http_body_object(req, resp, &body) == 0)
        policy_apply(req, resp, body, NULL);
    cJSON_Delete(body);
}

/* The policy columns POLICY_LOAD_SQL reads, in this order, followed by SCORING_MODEL_COLS of the
 * champion then of the challenger. */
enum {
    PL_REVIEW,
    PL_BLOCK,
    PL_FALLBACK,
    PL_TIMEOUT,
    PL_VERSION,
    PL_TOPK,
    PL_RULES,
    PL_LISTS,
    PL_NCOLS
};

const char POLICY_LOAD_SQL[] =
    "SELECT p.review_threshold, p.block_threshold, p.fallback_decision, "
    "p.scoring_timeout_ms, p.version, p.explain_top_k, p.rules::text, "
    /* the version check of every list the rules use, folded in here */
    "(SELECT json_agg(json_build_array(l.name, l.id, l.version, l.kind)) "
    "FROM lists l WHERE l.name = ANY (p.rule_lists))::text, " SCORING_MODEL_COLS(
        "c") ", " SCORING_MODEL_COLS("h") " FROM policy p "
                                          "LEFT JOIN models c ON c.id = p.champion_model_id "
                                          "LEFT JOIN models h ON h.id = p.challenger_model_id";

int policy_from_result(http_req *req, http_resp *resp, const PGresult *r, policy_rules *out)
{
    memset(out, 0, sizeof *out);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        dbreq_internal(req, resp, r);
        return -1;
    }
    if (PQntuples(r) != 1) {
        http_problem(resp, 500, "internal", NULL, "the policy row is missing");
        return -1;
    }
    snprintf(out->review, sizeof out->review, "%s", PQgetvalue(r, 0, PL_REVIEW));
    snprintf(out->block, sizeof out->block, "%s", PQgetvalue(r, 0, PL_BLOCK));
    snprintf(out->fallback, sizeof out->fallback, "%s", PQgetvalue(r, 0, PL_FALLBACK));
    snprintf(out->timeout, sizeof out->timeout, "%s", PQgetvalue(r, 0, PL_TIMEOUT));
    snprintf(out->version, sizeof out->version, "%s", PQgetvalue(r, 0, PL_VERSION));
    out->review_v = strtod(out->review, NULL);
    out->block_v = strtod(out->block, NULL);
    out->timeout_ms = atoi(out->timeout);
    out->top_k = atoi(PQgetvalue(r, 0, PL_TOPK));
    out->rules_json = strdup(PQgetvalue(r, 0, PL_RULES));
    out->lists_json = strdup(PQgetisnull(r, 0, PL_LISTS) ? "[]" : PQgetvalue(r, 0, PL_LISTS));
    if (!out->rules_json || !out->lists_json) {
        policy_rules_free(out);
        http_problem(resp, 500, "internal", NULL, "out of memory");
        return -1;
    }
    /* Both models contribute the same SCORING_MODEL_COLS, so each has half of what follows the
     * policy columns, however many that list holds. */
    int width = (PQnfields(r) - PL_NCOLS) / 2;
    for (int s = 0; s < POLICY_SLOTS; s++)
        out->has_model[s] = scoring_model_from_row(r, 0, PL_NCOLS + s * width, &out->model[s]) == 0;
    return 0;
}

void policy_rules_free(policy_rules *p)
{
    free(p->rules_json);
    free(p->lists_json);
    p->rules_json = p->lists_json = NULL;
    for (int s = 0; s < POLICY_SLOTS; s++)
        scoring_model_free(&p->model[s]);
}

int policy_model_check(http_req *req, http_resp *resp, db_conn *c, const char *id,
                       const char *field)
{
    return check_model(req, resp, c, id, field);
}
