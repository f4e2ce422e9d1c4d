/* policy.c - the decision policy resource.  See policy.h. */
#include "policy.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbreq.h"
#include "fields.h"
#include "model.h"
#include "validate.h"

#define POLICY_COLS                                                                                \
    "champion_model_id, challenger_model_id, review_threshold, block_threshold, "                  \
    "fallback_decision, scoring_timeout_ms, version, "                                             \
    "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

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

/* Checks that a model exists, has feature names and yields one score per row. */
static int check_model(http_req *req, http_resp *resp, db_conn *c, const char *id,
                       const char *field)
{
    PGresult *r = NULL;
    const char *vals[] = {id};
    int rc = dbreq_query(req, resp, c,
                         "SELECT objective, num_class, coalesce(array_length(feature_names, 1), 0) "
                         "FROM models WHERE id = $1",
                         1, vals, &r);
    int ok = -1;
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
    else if (rc == DB_OK)
        ok = 0;
    PQclear(r);
    return ok;
}

void policy_put(http_req *req, http_resp *resp)
{
    static const char *const allowed[] = {"champion_model_id",
                                          "challenger_model_id",
                                          "review_threshold",
                                          "block_threshold",
                                          "fallback_decision",
                                          "scoring_timeout_ms",
                                          NULL};
    cJSON *body = NULL;
    db_conn *c = NULL;
    PGresult *r = NULL;
    const char *champion = NULL, *challenger = NULL, *fallback = "review";
    double review, block;
    long long timeout = 50;
    if (http_body_object(req, resp, &body) || field_no_unknown(resp, body, allowed) ||
        field_string(resp, body, "champion_model_id", 36, FIELD_REQUIRED | FIELD_NULLABLE,
                     &champion, NULL) ||
        field_string(resp, body, "challenger_model_id", 36, FIELD_NULLABLE, &challenger, NULL) ||
        field_string(resp, body, "fallback_decision", 32, 0, &fallback, NULL) ||
        threshold(resp, body, "review_threshold", &review) ||
        threshold(resp, body, "block_threshold", &block))
        goto done;
    if (!fallback)
        fallback = "review";
    if (champion && !val_uuid(champion)) {
        http_problem(resp, 400, "validation_failed", "champion_model_id", "must be a UUID or null");
        goto done;
    }
    if (challenger && !val_uuid(challenger)) {
        http_problem(resp, 400, "validation_failed", "challenger_model_id",
                     "must be a UUID or null");
        goto done;
    }
    if (challenger && !champion) {
        http_problem(resp, 400, "validation_failed", "challenger_model_id",
                     "a challenger needs a champion");
        goto done;
    }
    if (review > block) {
        http_problem(resp, 400, "validation_failed", "review_threshold",
                     "review_threshold must be <= block_threshold");
        goto done;
    }
    if (strcmp(fallback, "allow") && strcmp(fallback, "review") && strcmp(fallback, "block")) {
        http_problem(resp, 400, "validation_failed", "fallback_decision",
                     "'fallback_decision' must be allow, review or block");
        goto done;
    }
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(body, "scoring_timeout_ms");
    if (to) {
        if (!cJSON_IsNumber(to) || to->valuedouble != floor(to->valuedouble) ||
            to->valuedouble < 1 || to->valuedouble > 10000) {
            http_problem(resp, 400, "validation_failed", "scoring_timeout_ms",
                         "'scoring_timeout_ms' must be an integer in 1..10000");
            goto done;
        }
        timeout = (long long)to->valuedouble;
    }
    if (!(c = dbreq_acquire(req, resp)))
        goto done;
    if ((champion && check_model(req, resp, c, champion, "champion_model_id")) ||
        (challenger && check_model(req, resp, c, challenger, "challenger_model_id")))
        goto done;
    char rv[32], bv[32], tv[16];
    snprintf(rv, sizeof rv, "%.17g", review);
    snprintf(bv, sizeof bv, "%.17g", block);
    snprintf(tv, sizeof tv, "%lld", timeout);
    const char *vals[] = {champion, challenger, rv, bv, fallback, tv};
    int rc = dbreq_query(req, resp, c,
                         "UPDATE policy SET champion_model_id = $1, challenger_model_id = $2, "
                         "review_threshold = $3, block_threshold = $4, fallback_decision = $5, "
                         "scoring_timeout_ms = $6, version = version + 1, "
                         "updated_at = clock_timestamp() RETURNING " POLICY_COLS,
                         6, vals, &r);
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
