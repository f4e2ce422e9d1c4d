/* backtests.c - the backtest resource.  See backtests.h; the runner is btjob.c. */
#include "backtests.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbreq.h"
#include "fields.h"
#include "json.h"
#include "policy.h"
#include "transactions.h"
#include "validate.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* Everything a job is answered with; bt_json reads these columns. */
#define BT_COLS                                                                                    \
    "b.id, b.name, b.state, b.policy::text, b.policy_source::text, " TS("b.from_at") ", " TS(      \
        "b.to_at") ", b.filter::text, b.total, b.processed, b.run_seconds, b.error, "              \
                   "b.report::text, " TS("b.created_at") ", " TS("b.started_at") ", " TS(          \
                       "b.finished_at") ", (extract(epoch FROM b.created_at) * 1000000)::bigint"

enum {
    B_ID,
    B_NAME,
    B_STATE,
    B_POLICY,
    B_SOURCE,
    B_FROM,
    B_TO,
    B_FILTER,
    B_TOTAL,
    B_PROCESSED,
    B_SECONDS,
    B_ERROR,
    B_REPORT,
    B_CREATED,
    B_STARTED,
    B_FINISHED,
    B_CREATED_US
};

static const char *val(const PGresult *r, int row, int c)
{
    return PQgetisnull(r, row, c) ? NULL : PQgetvalue(r, row, c);
}

static void add_str(cJSON *o, const char *k, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

/* processed/total, rows per second of running time, and the time left at that rate. */
static cJSON *progress_json(const PGresult *r, int row)
{
    cJSON *p = cJSON_CreateObject();
    double done = strtod(PQgetvalue(r, row, B_PROCESSED), NULL);
    double secs = strtod(PQgetvalue(r, row, B_SECONDS), NULL);
    const char *total = val(r, row, B_TOTAL);
    cJSON_AddNumberToObject(p, "processed", done);
    if (total)
        cJSON_AddNumberToObject(p, "total", strtod(total, NULL));
    else
        cJSON_AddNullToObject(p, "total");
    double rate = secs > 0 ? done / secs : NAN;
    if (isfinite(rate))
        cJSON_AddNumberToObject(p, "rows_per_second", floor(rate + 0.5));
    else
        cJSON_AddNullToObject(p, "rows_per_second");
    int running = strcmp(PQgetvalue(r, row, B_STATE), "running") == 0;
    if (running && total && isfinite(rate) && rate > 0)
        cJSON_AddNumberToObject(p, "eta_seconds", ceil(fmax(0, strtod(total, NULL) - done) / rate));
    else
        cJSON_AddNullToObject(p, "eta_seconds");
    cJSON_AddNumberToObject(p, "run_seconds", secs);
    return p;
}

/* The API's JSON of a job; with_report 0 leaves the report out (lists). */
static cJSON *bt_json_full(const PGresult *r, int row, int with_report)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "id", val(r, row, B_ID));
    cJSON_AddStringToObject(o, "name", val(r, row, B_NAME));
    cJSON_AddStringToObject(o, "state", val(r, row, B_STATE));
    cJSON_AddRawToObject(o, "policy", val(r, row, B_POLICY));
    cJSON_AddRawToObject(o, "policy_source", val(r, row, B_SOURCE));
    cJSON_AddStringToObject(o, "from", val(r, row, B_FROM));
    cJSON_AddStringToObject(o, "to", val(r, row, B_TO));
    cJSON_AddRawToObject(o, "filter", val(r, row, B_FILTER));
    cJSON_AddItemToObject(o, "progress", progress_json(r, row));
    add_str(o, "error", val(r, row, B_ERROR));
    add_str(o, "created_at", val(r, row, B_CREATED));
    add_str(o, "started_at", val(r, row, B_STARTED));
    add_str(o, "finished_at", val(r, row, B_FINISHED));
    if (with_report && val(r, row, B_REPORT))
        cJSON_AddRawToObject(o, "report", val(r, row, B_REPORT));
    else if (with_report)
        cJSON_AddNullToObject(o, "report");
    return o;
}

static cJSON *bt_json(const PGresult *r, int row)
{
    return bt_json_full(r, row, 1);
}

static cJSON *bt_json_brief(const PGresult *r, int row)
{
    return bt_json_full(r, row, 0);
}

/* ---- POST: the filter ------------------------------------------------------------------------ */

/* Validates the optional "filter" object.  Returns 0, or -1 with resp filled. */
static int read_filter(http_resp *resp, const cJSON *body)
{
    static const char *const allowed[] = {"decision", "labelled_only", "user_id", "label_sources",
                                          NULL};
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(body, "filter"), *e;
    if (!f || cJSON_IsNull(f))
        return 0;
    const char *bad = cJSON_IsObject(f) ? json_unknown_member(f, allowed) : NULL;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(f, "decision");
    const cJSON *lo = cJSON_GetObjectItemCaseSensitive(f, "labelled_only");
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(f, "user_id");
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(f, "label_sources");
    const char *field = NULL, *msg = NULL;
    if (!cJSON_IsObject(f))
        field = "filter", msg = "'filter' must be an object";
    else if (bad) {
        http_problem(resp, 400, "unknown_field", "filter", "unknown filter member '%.64s'", bad);
        return -1;
    } else if (d && !(cJSON_IsString(d) &&
                      (!strcmp(d->valuestring, "allow") || !strcmp(d->valuestring, "review") ||
                       !strcmp(d->valuestring, "block"))))
        field = "filter.decision", msg = "'decision' must be allow, review or block";
    else if (lo && !cJSON_IsBool(lo))
        field = "filter.labelled_only", msg = "'labelled_only' must be a boolean";
    else if (u && !(cJSON_IsString(u) && val_uuid(u->valuestring)))
        field = "filter.user_id", msg = "'user_id' must be a UUID";
    else if (ls && (!cJSON_IsArray(ls) || cJSON_GetArraySize(ls) < 1))
        field = "filter.label_sources", msg = "'label_sources' must be a non-empty array";
    const cJSON *each = field ? NULL : ls;
    cJSON_ArrayForEach(e, each)
    {
        if (!cJSON_IsString(e) || !txn_label_source_ok(e->valuestring))
            field = "filter.label_sources",
            msg = "each label source must be chargeback, early_fraud_warning, refund, analyst or "
                  "customer";
    }
    if (field) {
        http_problem(resp, 400, "validation_failed", field, "%s", msg);
        return -1;
    }
    return 0;
}

/* ---- POST: the candidate policy -------------------------------------------------------------- */

/* Checks a resolved candidate's rules as PUT /api/v1/policy would (they must compile against
 * the catalogue of its models and the lists that exist now): the job compiles them the same way
 * when it starts.  Nothing to check without rules.  Returns 0, or -1 with resp filled. */
static int check_rules(http_req *req, http_resp *resp, db_conn *c, const cJSON *cand)
{
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(cand, "rules");
    if (!cJSON_IsArray(rules) || cJSON_GetArraySize(rules) == 0)
        return 0;
    cJSON *body = cJSON_Duplicate(cand, 1);
    if (!body) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
        return -1;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(body, "mode");
    int rc = policy_check(req, resp, c, body);
    cJSON_Delete(body);
    return rc;
}

/* The resolved candidate of a stored policy row (active or a version): columns champion,
 * challenger, review, block, fallback, rules.  Returns the JSON, or NULL with resp filled. */
static cJSON *candidate_from_row(http_resp *resp, const PGresult *r)
{
    if (PQgetisnull(r, 0, 0)) {
        http_problem(resp, 422, "no_champion_model", "policy",
                     "that policy has no champion model to score with");
        return NULL;
    }
    cJSON *rules = val(r, 0, 5) ? cJSON_Parse(val(r, 0, 5)) : NULL;
    if (rules && !cJSON_IsArray(rules)) {
        cJSON_Delete(rules);
        rules = NULL;
    }
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "mode", "candidate");
    cJSON_AddStringToObject(c, "champion_model_id", PQgetvalue(r, 0, 0));
    add_str(c, "challenger_model_id", val(r, 0, 1));
    cJSON_AddNumberToObject(c, "review_threshold", strtod(PQgetvalue(r, 0, 2), NULL));
    cJSON_AddNumberToObject(c, "block_threshold", strtod(PQgetvalue(r, 0, 3), NULL));
    cJSON_AddStringToObject(c, "fallback_decision", PQgetvalue(r, 0, 4));
    cJSON_AddItemToObject(c, "rules", rules ? rules : cJSON_CreateArray());
    return c;
}

/* "active" (version NULL) or {"version": n}: the stored policy, read on c. */
static cJSON *candidate_stored(http_req *req, http_resp *resp, db_conn *c, const char *version)
{
    /* to_jsonb(row) -> 'rules': NULL on a schema without rules, the rules once issue 12's are in */
    static const char active_sql[] =
        "SELECT p.champion_model_id, p.challenger_model_id, p.review_threshold, "
        "p.block_threshold, p.fallback_decision, (to_jsonb(p) -> 'rules')::text FROM policy p";
    static const char version_sql[] =
        "SELECT v.champion_model_id, v.challenger_model_id, v.review_threshold, "
        "v.block_threshold, v.fallback_decision, (to_jsonb(v) -> 'rules')::text "
        "FROM policy_versions v WHERE v.version = $1::integer";
    const char *vals[] = {version};
    PGresult *r = NULL;
    cJSON *out = NULL;
    int rc =
        dbreq_query(req, resp, c, version ? version_sql : active_sql, version ? 1 : 0, vals, &r);
    if (rc == DB_ERROR && strcmp(db_sqlstate(r), "42P01") == 0)
        http_problem(resp, 422, "policy_versions_unavailable", "policy",
                     "this server keeps no policy versions (issue 12)");
    else if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK && PQntuples(r) == 0)
        http_problem(resp, 422, "unknown_policy_version", "policy", "no policy version %s",
                     version ? version : "(active)");
    else if (rc == DB_OK)
        out = candidate_from_row(resp, r);
    PQclear(r);
    return out;
}

/* A number >= 0 member of the candidate object. */
static int cand_threshold(http_resp *resp, const cJSON *p, const char *name, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, name);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0) {
        http_problem(resp, 400, "validation_failed", "policy", "'policy.%s' must be a number >= 0",
                     name);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

/* A full policy object (PUT /api/v1/policy's members; scoring_timeout_ms and explain are accepted
 * and play no part in a backtest). */
static cJSON *candidate_object(http_req *req, http_resp *resp, db_conn *c, const cJSON *p)
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
    const char *bad = json_unknown_member(p, allowed);
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(p, "champion_model_id");
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(p, "challenger_model_id");
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(p, "fallback_decision");
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(p, "rules");
    double review, block;
    const char *msg = NULL;
    if (bad) {
        http_problem(resp, 400, "unknown_field", "policy", "unknown policy member '%.64s'", bad);
        return NULL;
    }
    if (cand_threshold(resp, p, "review_threshold", &review) ||
        cand_threshold(resp, p, "block_threshold", &block))
        return NULL;
    if (!cJSON_IsString(ch) || !val_uuid(ch->valuestring))
        msg = "'policy.champion_model_id' must be a UUID";
    else if (cl && !cJSON_IsNull(cl) && !(cJSON_IsString(cl) && val_uuid(cl->valuestring)))
        msg = "'policy.challenger_model_id' must be a UUID or null";
    else if (review > block)
        msg = "'policy.review_threshold' must be <= block_threshold";
    else if (fb && !(cJSON_IsString(fb) &&
                     (!strcmp(fb->valuestring, "allow") || !strcmp(fb->valuestring, "review") ||
                      !strcmp(fb->valuestring, "block"))))
        msg = "'policy.fallback_decision' must be allow, review or block";
    else if (rules && !cJSON_IsNull(rules) && !cJSON_IsArray(rules))
        msg = "'policy.rules' must be an array of rules";
    if (msg) {
        http_problem(resp, 400, "validation_failed", "policy", "%s", msg);
        return NULL;
    }
    if (policy_model_check(req, resp, c, ch->valuestring, "policy") ||
        (cJSON_IsString(cl) && policy_model_check(req, resp, c, cl->valuestring, "policy")))
        return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "mode", "candidate");
    cJSON_AddStringToObject(o, "champion_model_id", ch->valuestring);
    add_str(o, "challenger_model_id", cJSON_IsString(cl) ? cl->valuestring : NULL);
    cJSON_AddNumberToObject(o, "review_threshold", review);
    cJSON_AddNumberToObject(o, "block_threshold", block);
    cJSON_AddStringToObject(o, "fallback_decision", fb ? fb->valuestring : "review");
    cJSON_AddItemToObject(o, "rules",
                          cJSON_IsArray(rules) ? cJSON_Duplicate(rules, 1) : cJSON_CreateArray());
    return o;
}

/* Resolves body's "policy" into the candidate the job stores (*cand) and what was asked
 * (*source).  Returns 0, or -1 with resp filled. */
static int resolve_policy(http_req *req, http_resp *resp, db_conn *c, const cJSON *body,
                          cJSON **cand, cJSON **source)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "policy");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(p, "version");
    *cand = *source = NULL;
    if (cJSON_IsString(p) && strcmp(p->valuestring, "active") == 0) {
        *cand = candidate_stored(req, resp, c, NULL);
        *source = cJSON_CreateString("active");
    } else if (cJSON_IsString(p) && strcmp(p->valuestring, "recorded") == 0) {
        *cand = cJSON_CreateObject();
        cJSON_AddStringToObject(*cand, "mode", "recorded");
        *source = cJSON_CreateString("recorded");
    } else if (cJSON_IsObject(p) && ver && cJSON_GetArraySize(p) == 1) {
        char v[24];
        if (!cJSON_IsNumber(ver) || ver->valuedouble != floor(ver->valuedouble) ||
            ver->valuedouble < 1 || ver->valuedouble > 2147483647) {
            http_problem(resp, 400, "validation_failed", "policy",
                         "'policy.version' must be a positive integer");
            return -1;
        }
        snprintf(v, sizeof v, "%.0f", ver->valuedouble);
        *cand = candidate_stored(req, resp, c, v);
        *source = cJSON_Duplicate(p, 1);
    } else if (cJSON_IsObject(p)) {
        *cand = candidate_object(req, resp, c, p);
        *source = cJSON_CreateString("object");
    } else {
        http_problem(resp, 400, "validation_failed", "policy",
                     "'policy' must be \"active\", \"recorded\", {\"version\": n} or a policy "
                     "object");
        return -1;
    }
    if (*cand && check_rules(req, resp, c, *cand) == 0)
        return 0;
    cJSON_Delete(*cand);
    *cand = NULL;
    cJSON_Delete(*source);
    *source = NULL;
    return -1;
}

/* ---- handlers -------------------------------------------------------------------------------- */

/* The validated members of a POST body other than policy: name, from, to (point into body). */
static int read_body(http_resp *resp, const cJSON *body, const char **name, const char **from,
                     const char **to)
{
    static const char *const allowed[] = {"policy", "from", "to", "filter", "name", NULL};
    if (field_no_unknown(resp, body, allowed) ||
        field_string(resp, body, "name", 128, 0, name, NULL) ||
        field_string(resp, body, "from", 64, FIELD_REQUIRED, from, NULL) ||
        field_string(resp, body, "to", 64, FIELD_REQUIRED, to, NULL) || read_filter(resp, body))
        return -1;
    if (!val_rfc3339(*from) || !val_rfc3339(*to)) {
        http_problem(resp, 400, "validation_failed", val_rfc3339(*from) ? "to" : "from",
                     "'from' and 'to' must be RFC 3339 date-times");
        return -1;
    }
    if (!*name)
        *name = "backtest";
    return 0;
}

/* INSERTs the job; answers 202 + Location, or the error. */
static void insert_job(http_req *req, http_resp *resp, db_conn *c, const char *const *vals)
{
    PGresult *r = NULL;
    int rc = dbreq_query(req, resp, c,
                         "INSERT INTO backtests AS b (name, policy, policy_source, from_at, to_at, "
                         "filter, api_key_id) VALUES ($1, $2, $3, $4, $5, $6, "
                         "nullif($7, '')::uuid) RETURNING " BT_COLS,
                         7, vals, &r);
    if (rc == DB_ERROR && strcmp(db_sqlstate(r), "23514") == 0)
        http_problem(resp, 400, "validation_failed", "to", "'to' must be later than 'from'");
    else if (rc == DB_ERROR && strncmp(db_sqlstate(r), "22", 2) == 0)
        http_problem(resp, 400, "validation_failed", "from",
                     "'from' and 'to' must be valid date-times");
    else if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK) {
        snprintf(resp->location, sizeof resp->location, "/api/v1/backtests/%s",
                 PQgetvalue(r, 0, B_ID));
        http_json(resp, 202, bt_json(r, 0));
    }
    PQclear(r);
}

void backtests_create(http_req *req, http_resp *resp)
{
    cJSON *body = NULL, *cand = NULL, *source = NULL;
    char *cand_text = NULL, *source_text = NULL, *filter_text = NULL;
    const char *name, *from, *to;
    db_conn *c = NULL;
    if (http_body_object(req, resp, &body) || read_body(resp, body, &name, &from, &to) ||
        !(c = dbreq_acquire(req, resp)) || resolve_policy(req, resp, c, body, &cand, &source))
        goto done;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(body, "filter");
    cand_text = cJSON_PrintUnformatted(cand);
    source_text = cJSON_PrintUnformatted(source);
    filter_text = f && !cJSON_IsNull(f) ? cJSON_PrintUnformatted(f) : strdup("{}");
    if (!cand_text || !source_text || !filter_text) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
        goto done;
    }
    const char *vals[] = {name, cand_text, source_text, from, to, filter_text, req->key_id};
    insert_job(req, resp, c, vals);
done:
    if (c)
        dbreq_release(req, c);
    free(cand_text);
    free(source_text);
    free(filter_text);
    cJSON_Delete(cand);
    cJSON_Delete(source);
    cJSON_Delete(body);
}

static int id_param(http_req *req, http_resp *resp, const char **id)
{
    *id = req->nparams > 0 ? req->params[0] : NULL;
    if (!*id || !val_uuid(*id)) {
        http_problem(resp, 400, "validation_failed", "id", "id must be a UUID");
        return -1;
    }
    return 0;
}

void backtests_get(http_req *req, http_resp *resp)
{
    const char *id;
    PGresult *r = NULL;
    if (id_param(req, resp, &id) ||
        dbreq_fetch_by_id(req, resp, "SELECT " BT_COLS " FROM backtests b WHERE b.id = $1", id,
                          "backtest", 0, &r))
        return;
    http_json(resp, 200, bt_json(r, 0));
    PQclear(r);
}

void backtests_list(http_req *req, http_resp *resp)
{
    static const char *const args[] = {"limit", "cursor", "state", NULL};
    field_page pg;
    PGresult *r = NULL;
    if (field_page_args(req, resp, args, &pg))
        return;
    const char *state = http_query(req, "state");
    if (state && strcmp(state, "queued") && strcmp(state, "running") &&
        strcmp(state, "succeeded") && strcmp(state, "failed") && strcmp(state, "cancelled")) {
        http_problem(resp, 400, "validation_failed", "state",
                     "'state' must be queued, running, succeeded, failed or cancelled");
        return;
    }
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return;
    const char *vals[] = {pg.cursor_us, pg.cursor_id, pg.limit_plus_1, state};
    int rc = dbreq_query(
        req, resp, c,
        "SELECT " BT_COLS " FROM backtests b WHERE ($1::bigint IS NULL OR "
        "(b.created_at, b.id) < ('epoch'::timestamptz + $1::bigint * interval '1 microsecond', "
        "$2::uuid)) AND ($4::text IS NULL OR b.state = $4) "
        "ORDER BY b.created_at DESC, b.id DESC LIMIT $3",
        4, vals, &r);
    dbreq_release(req, c);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK)
        http_json(resp, 200, dbreq_page(r, pg.limit, B_CREATED_US, B_ID, bt_json_brief));
    PQclear(r);
}

/* DELETE: a queued or running job becomes cancelled (its runner stops after the chunk in hand,
 * whose results are rolled back); a finished one is a 409. */
void backtests_cancel(http_req *req, http_resp *resp)
{
    const char *id;
    PGresult *r = NULL;
    if (id_param(req, resp, &id))
        return;
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return;
    const char *vals[] = {id};
    int rc = dbreq_query(req, resp, c,
                         "UPDATE backtests AS b SET state = 'cancelled', finished_at = "
                         "clock_timestamp(), updated_at = clock_timestamp(), partial = NULL "
                         "WHERE b.id = $1 AND b.state IN ('queued', 'running') RETURNING " BT_COLS,
                         1, vals, &r);
    if (rc == DB_OK && PQntuples(r) == 0) { /* unknown, or already finished */
        PQclear(r);
        r = NULL;
        rc = dbreq_query(req, resp, c, "SELECT state FROM backtests WHERE id = $1", 1, vals, &r);
        if (rc == DB_OK && PQntuples(r) == 0)
            http_problem(resp, 404, "not_found", NULL, "no backtest with id %s", id);
        else if (rc == DB_OK)
            http_problem(resp, 409, "conflict", NULL, "backtest %s has already %s", id,
                         PQgetvalue(r, 0, 0));
        rc = rc == DB_OK ? -1 : rc;
    }
    if (rc == DB_OK) {      /* its scores are of no use any more (a chunk in flight rolls back) */
        PGresult *d = NULL; /* best effort: the cancel stands whatever this answers */
        dbreq_query(req, resp, c, "DELETE FROM backtest_scores WHERE backtest_id = $1", 1, vals,
                    &d);
        PQclear(d);
    }
    dbreq_release(req, c);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK)
        http_json(resp, 200, bt_json(r, 0));
    PQclear(r);
}
