/* policy_versions.c - GET the policy's versions, and rollback.  See policy_versions.h.  Every
 * statement on policy_versions except the INSERT (policy.c's write_policy) is here.  Each handler
 * is one statement (activation: one read, then policy_apply's transaction). */
#include "policy_versions.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dbreq.h"
#include "policy.h"

#define PV_COLS                                                                                    \
    "v.version, v.champion_model_id, v.challenger_model_id, v.review_threshold, "                  \
    "v.block_threshold, v.fallback_decision, v.scoring_timeout_ms, v.explain_top_k, "              \
    "v.rules::text, v.activated_from, v.api_key_id, v.api_key_name, "                              \
    "to_char(v.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
enum {
    V_VERSION,
    V_CHAMPION,
    V_CHALLENGER,
    V_REVIEW,
    V_BLOCK,
    V_FALLBACK,
    V_TIMEOUT,
    V_TOPK,
    V_RULES,
    V_FROM,
    V_KEY_ID,
    V_KEY_NAME,
    V_CREATED
};

static void add_text(cJSON *o, const char *k, const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        cJSON_AddNullToObject(o, k);
    else
        cJSON_AddStringToObject(o, k, PQgetvalue(r, row, col));
}

/* The content of a version in the shape of a PUT /api/v1/policy body. */
static cJSON *content_json(const PGresult *r, int row)
{
    cJSON *o = cJSON_CreateObject();
    add_text(o, "champion_model_id", r, row, V_CHAMPION);
    add_text(o, "challenger_model_id", r, row, V_CHALLENGER);
    cJSON_AddNumberToObject(o, "review_threshold", strtod(PQgetvalue(r, row, V_REVIEW), NULL));
    cJSON_AddNumberToObject(o, "block_threshold", strtod(PQgetvalue(r, row, V_BLOCK), NULL));
    cJSON_AddStringToObject(o, "fallback_decision", PQgetvalue(r, row, V_FALLBACK));
    cJSON_AddNumberToObject(o, "scoring_timeout_ms", atoi(PQgetvalue(r, row, V_TIMEOUT)));
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(o, "explain"), "top_k",
                            atoi(PQgetvalue(r, row, V_TOPK)));
    cJSON_AddItemToObject(o, "rules", cJSON_Parse(PQgetvalue(r, row, V_RULES)));
    return o;
}

static cJSON *version_json(const PGresult *r, int row)
{
    cJSON *o = content_json(r, row);
    cJSON_AddNumberToObject(o, "version", atoi(PQgetvalue(r, row, V_VERSION)));
    if (PQgetisnull(r, row, V_FROM))
        cJSON_AddNullToObject(o, "activated_from");
    else
        cJSON_AddNumberToObject(o, "activated_from", atoi(PQgetvalue(r, row, V_FROM)));
    cJSON *k = cJSON_AddObjectToObject(o, "api_key");
    add_text(k, "id", r, row, V_KEY_ID);
    add_text(k, "name", r, row, V_KEY_NAME);
    cJSON_AddStringToObject(o, "created_at", PQgetvalue(r, row, V_CREATED));
    return o;
}

/* {n}: a version number.  0, or -1 with a 400. */
static int version_param(http_req *req, http_resp *resp, const char **n)
{
    long long v;
    *n = req->nparams > 0 ? req->params[0] : NULL;
    if (!*n || cfg_parse_int(*n, 1, 2147483647, &v) != 0) {
        http_problem(resp, 400, "validation_failed", "n", "the version must be an integer >= 1");
        return -1;
    }
    return 0;
}

void policy_versions_list(http_req *req, http_resp *resp)
{
    static const char *const args[] = {"limit", "cursor", NULL};
    const char *bad = http_query_unknown(req, args), *cur = http_query(req, "cursor");
    const char *ls = http_query(req, "limit");
    long long limit = 50, before = 0;
    char lim[16];
    PGresult *r = NULL;
    if (bad) {
        http_problem(resp, 400, "unknown_parameter", bad, "unknown query parameter '%.64s'", bad);
        return;
    }
    if (ls && cfg_parse_int(ls, 1, 500, &limit) != 0) {
        http_problem(resp, 400, "validation_failed", "limit",
                     "'limit' must be an integer in 1..500");
        return;
    }
    if (cur && cfg_parse_int(cur, 1, 2147483647, &before) != 0) {
        http_problem(resp, 400, "validation_failed", "cursor", "'cursor' is not a valid cursor");
        return;
    }
    snprintf(lim, sizeof lim, "%lld", limit + 1);
    const char *v[] = {cur, lim};
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return;
    int rc = dbreq_query(req, resp, c,
                         "SELECT " PV_COLS " FROM policy_versions v WHERE ($1::int IS NULL OR "
                         "v.version < $1::int) ORDER BY v.version DESC LIMIT $2",
                         2, v, &r);
    dbreq_release(req, c);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    if (rc != DB_OK) {
        PQclear(r);
        return;
    }
    cJSON *out = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(out, "data");
    int n = PQntuples(r);
    for (int i = 0; i < n && i < limit; i++)
        cJSON_AddItemToArray(data, version_json(r, i));
    if (n > limit)
        cJSON_AddStringToObject(out, "next_cursor", PQgetvalue(r, (int)limit - 1, V_VERSION));
    else
        cJSON_AddNullToObject(out, "next_cursor");
    http_json(resp, 200, out);
    PQclear(r);
}

void policy_versions_get(http_req *req, http_resp *resp)
{
    const char *n;
    PGresult *r = NULL;
    if (version_param(req, resp, &n) ||
        dbreq_fetch_by_id(req, resp,
                          "SELECT " PV_COLS " FROM policy_versions v WHERE v.version = $1::int", n,
                          "policy version", 0, &r))
        return;
    http_json(resp, 200, version_json(r, 0));
    PQclear(r);
}

void policy_versions_activate(http_req *req, http_resp *resp)
{
    const char *n;
    PGresult *r = NULL;
    if (req->body_len > 0) {
        http_problem(resp, 400, "validation_failed", NULL, "activate takes no body");
        return;
    }
    if (version_param(req, resp, &n) ||
        dbreq_fetch_by_id(req, resp,
                          "SELECT " PV_COLS " FROM policy_versions v WHERE v.version = $1::int", n,
                          "policy version", 0, &r))
        return;
    cJSON *body = content_json(r, 0);
    PQclear(r);
    if (!body) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
        return;
    }
    policy_apply(req, resp, body, n);
    cJSON_Delete(body);
}
