/* policy.c - the decision policy resource, and the policy as a decision reads it (policy_load).
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
#include "validate.h"

#define POLICY_COLS                                                                                \
    "champion_model_id, challenger_model_id, review_threshold, block_threshold, "                  \
    "fallback_decision, scoring_timeout_ms, version, "                                             \
    "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), explain_top_k"

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
    long long top_k; /* explain.top_k */
} policy_body;

/* Validates a PUT body into *p.  Returns 0, or -1 with resp filled (400 naming the field). */
static int read_policy_body(http_resp *resp, const cJSON *body, policy_body *p)
{
    static const char *const allowed[] = {
        "champion_model_id", "challenger_model_id", "review_threshold", "block_threshold",
        "fallback_decision", "scoring_timeout_ms",  "explain",          NULL};
    const char *field = NULL, *msg = NULL;
    *p = (policy_body){NULL, NULL, "review", 0, 0, 50, 5};
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
    return 0;
}

void policy_put(http_req *req, http_resp *resp)
{
    cJSON *body = NULL;
    db_conn *c = NULL;
    PGresult *r = NULL;
    policy_body p;
    if (http_body_object(req, resp, &body) || read_policy_body(resp, body, &p) ||
        !(c = dbreq_acquire(req, resp)))
        goto done;
    if ((p.champion && check_model(req, resp, c, p.champion, "champion_model_id")) ||
        (p.challenger && check_model(req, resp, c, p.challenger, "challenger_model_id")))
        goto done;
    char rv[32], bv[32], tv[16], kv[8];
    snprintf(kv, sizeof kv, "%lld", p.top_k);
    snprintf(rv, sizeof rv, "%.17g", p.review);
    snprintf(bv, sizeof bv, "%.17g", p.block);
    snprintf(tv, sizeof tv, "%lld", p.timeout_ms);
    const char *vals[] = {p.champion, p.challenger, rv, bv, p.fallback, tv, kv};
    int rc = dbreq_query(req, resp, c,
                         "UPDATE policy SET champion_model_id = $1, challenger_model_id = $2, "
                         "review_threshold = $3, block_threshold = $4, fallback_decision = $5, "
                         "scoring_timeout_ms = $6, explain_top_k = $7, version = version + 1, "
                         "updated_at = clock_timestamp() RETURNING " POLICY_COLS,
                         7, vals, &r);
    if (rc == DB_ERROR && strcmp(db_sqlstate(r), "23503") == 0)
        http_problem(resp, 422, "unknown_model", NULL, "the model was deleted meanwhile");
    else if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK)
        http_json(resp, 200, policy_json(r));
done:
    PQclear(r);
    if (c)
        dbreq_release(req, c);
    cJSON_Delete(body);
}

/* The policy columns policy_load reads, in this order, followed by SCORING_MODEL_COLS of the
 * champion then of the challenger. */
enum { PL_REVIEW, PL_BLOCK, PL_FALLBACK, PL_TIMEOUT, PL_VERSION, PL_TOPK, PL_NCOLS };

int policy_load(http_req *req, http_resp *resp, db_conn *c, policy_rules *out)
{
    PGresult *r = NULL;
    memset(out, 0, sizeof *out);
    int rc = dbreq_query(req, resp, c,
                         "SELECT p.review_threshold, p.block_threshold, p.fallback_decision, "
                         "p.scoring_timeout_ms, p.version, p.explain_top_k, " SCORING_MODEL_COLS(
                             "c") ", " SCORING_MODEL_COLS("h") " FROM policy p "
                                                               "LEFT JOIN models c ON c.id = "
                                                               "p.champion_model_id "
                                                               "LEFT JOIN models h ON h.id = "
                                                               "p.challenger_model_id",
                         0, NULL, &r);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK && PQntuples(r) != 1)
        http_problem(resp, 500, "internal", NULL, "the policy row is missing");
    if (rc != DB_OK || PQntuples(r) != 1) {
        PQclear(r);
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
    /* Both models contribute the same SCORING_MODEL_COLS, so each has half of what follows the
     * policy columns, however many that list holds. */
    int width = (PQnfields(r) - PL_NCOLS) / 2;
    for (int s = 0; s < POLICY_SLOTS; s++)
        out->has_model[s] = scoring_model_from_row(r, 0, PL_NCOLS + s * width, &out->model[s]) == 0;
    PQclear(r);
    return 0;
}

void policy_rules_free(policy_rules *p)
{
    for (int s = 0; s < POLICY_SLOTS; s++)
        scoring_model_free(&p->model[s]);
}

int policy_model_check(http_req *req, http_resp *resp, db_conn *c, const char *id,
                       const char *field)
{
    return check_model(req, resp, c, id, field);
}
