/* models.c - the /api/v1/models resource: upload (compile + store), list, get, source, delete,
 * and predict.  Compilation is common/xgbmodel.c (xgboost JSON) and common/lgbmmodel.c (LightGBM
 * text, recognised by content), scoring is api/scoring.c; this file is HTTP and SQL.
 * Costs: upload O(model size) CPU + one transaction; predict one metadata SELECT plus scoring. */
#include "models.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dbreq.h"
#include "fields.h"
#include "http.h"
#include "logline.h"
#include "modelfile.h"
#include "numtext.h"
#include "lgbmmodel.h"
#include "rows.h"
#include "scoring.h"
#include "sha256.h"
#include "validate.h"
#include "xgbmodel.h"

#define MODEL_COLS                                                                                 \
    "id, name, version, objective, booster, num_features, num_class, num_trees, "                  \
    "coalesce(array_to_json(feature_names)::text, 'null'), "                                       \
    "coalesce(array_to_json(feature_types)::text, 'null'), base_score, sha256, "                   \
    "octet_length(source), "                                                                       \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "                \
    "(extract(epoch FROM created_at) * 1000000)::bigint, format, "                                 \
    "coalesce(library_version, ''), num_target"

static cJSON *model_row_json(const PGresult *r, int row)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "id", PQgetvalue(r, row, 0));
    cJSON_AddStringToObject(o, "name", PQgetvalue(r, row, 1));
    cJSON_AddNumberToObject(o, "version", atoi(PQgetvalue(r, row, 2)));
    cJSON_AddStringToObject(o, "objective", PQgetvalue(r, row, 3));
    cJSON_AddStringToObject(o, "booster", PQgetvalue(r, row, 4));
    cJSON_AddStringToObject(o, "format", PQgetvalue(r, row, 15));
    const char *lv = PQgetvalue(r, row, 16);
    if (lv[0])
        cJSON_AddStringToObject(o, "library_version", lv);
    else
        cJSON_AddNullToObject(o, "library_version");
    cJSON_AddNumberToObject(o, "num_features", atoi(PQgetvalue(r, row, 5)));
    cJSON_AddNumberToObject(o, "num_class", atoi(PQgetvalue(r, row, 6)));
    cJSON_AddNumberToObject(o, "num_target", atoi(PQgetvalue(r, row, 17)));
    cJSON_AddNumberToObject(o, "num_trees", atoi(PQgetvalue(r, row, 7)));
    cJSON *fn = cJSON_Parse(PQgetvalue(r, row, 8));
    cJSON_AddItemToObject(o, "feature_names", fn ? fn : cJSON_CreateNull());
    cJSON *ft = cJSON_Parse(PQgetvalue(r, row, 9));
    cJSON_AddItemToObject(o, "feature_types", ft ? ft : cJSON_CreateNull());
    cJSON_AddNumberToObject(o, "base_score", strtod(PQgetvalue(r, row, 10), NULL));
    cJSON_AddStringToObject(o, "sha256", PQgetvalue(r, row, 11));
    cJSON_AddNumberToObject(o, "size_bytes", strtod(PQgetvalue(r, row, 12), NULL));
    cJSON_AddStringToObject(o, "created_at", PQgetvalue(r, row, 13));
    return o;
}

static int model_id_param(http_req *req, http_resp *resp, const char **id)
{
    *id = req->nparams > 0 ? req->params[0] : NULL;
    if (!*id || !val_uuid(*id)) {
        http_problem(resp, 400, "validation_failed", "id", "model id must be a UUID");
        return -1;
    }
    return 0;
}

static int valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return 0;
    }
    return 1;
}

/* A JSON array of the strings, or NULL when n == 0.  Caller frees. */
static char *string_array_json(char **v, size_t n)
{
    if (n == 0)
        return NULL;
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n && a; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
    char *s = a ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    return s;
}

/* Content-Types a model upload may carry.  They only gate the request: the format is read from
 * the content (format = modelfile_detect), whatever the header says; text/plain is for LightGBM
 * text only (a JSON model sent as text/plain is a 415, as it always was). */
static int upload_type_ok(const char *ct, int format)
{
    static const char *const ok[] = {"application/json", "application/ubjson",
                                     "application/x-ubjson", "application/octet-stream",
                                     "text/plain"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (http_media_type_is(ct, ok[i]))
            return strcmp(ok[i], "text/plain") != 0 || format == MODELFILE_LGBM_TEXT;
    return 0;
}

/* 422 unless the worker can load a compiled blob of blob_len bytes (scoring_loadable: one frame,
 * the worker's arena when it reports it).  Returns 0, or -1 with resp filled. */
static int upload_loadable(http_req *req, http_resp *resp, size_t blob_len)
{
    char why[320];
    int64_t dl = clock_now_ms() + 1000; /* a STATS round trip; an unknown arena skips that check */
    if (dl > req->deadline_ms)
        dl = req->deadline_ms;
    if (scoring_loadable(req->app, NULL, NULL, blob_len, dl, why, sizeof why) == 0)
        return 0;
    http_problem(resp, 422, "model_too_large", NULL,
                 "the scoring worker could never load this "
                 "model: %s",
                 why);
    return -1;
}

/* The request's query and Content-Type: 400/415 (resp) and -1, or 0 with *format (by content)
 * and *name. */
static int upload_check(http_req *req, http_resp *resp, int *format, const char **name)
{
    static const char *const args[] = {"name", NULL};
    const char *bad = http_query_unknown(req, args);
    if (bad) {
        http_problem(resp, 400, "unknown_parameter", bad, "unknown query parameter '%.64s'", bad);
        return -1;
    }
    *format = modelfile_detect(req->body, req->body_len);
    if (!upload_type_ok(http_header(req, "Content-Type"), *format)) {
        http_problem(resp, 415, "unsupported_media_type", NULL,
                     "upload the model file as saved (Booster.save_model output) with Content-Type "
                     "application/json, application/ubjson or application/octet-stream "
                     "(text/plain for a LightGBM text model); the format is read from the "
                     "content");
        return -1;
    }
    *name = http_query(req, "name");
    if (!valid_name(*name)) {
        http_problem(resp, 400, "validation_failed", "name",
                     "query parameter 'name' is required: 1..128 of [A-Za-z0-9._-], starting "
                     "with a letter or digit");
        return -1;
    }
    return 0;
}

/* Compiles a LightGBM text upload into *blob and info (the fields the models row stores).
 * Returns 0, or -1 with 400/422/500 in resp (nothing to free). */
static int upload_compile_lgbm(http_req *req, http_resp *resp, xgb_info *info, void **blob,
                               size_t *blob_len)
{
    char err[512];
    lgbm_info li = {0};
    int ls = lgbm_compile(req->body, req->body_len, &li, blob, blob_len, err, sizeof err);
    if (ls != LGBM_OK) {
        if (ls == LGBM_INVALID)
            http_problem(resp, 400, "invalid_model", NULL, "not a valid LightGBM text model: %s",
                         err);
        else if (ls == LGBM_UNSUPPORTED)
            http_problem(resp, 422, "unsupported_model", NULL, "unsupported: %s", err);
        else
            http_problem(resp, 500, "internal", NULL, "could not compile the model: %s", err);
        return -1;
    }
    snprintf(info->objective, sizeof info->objective, "%s", li.objective);
    snprintf(info->booster, sizeof info->booster, "gbdt");
    info->num_feature = li.num_feature;
    info->num_class = li.num_class;
    info->num_trees = li.num_trees;
    info->feature_names = li.feature_names; /* ownership moves to info */
    info->n_feature_names = li.n_feature_names;
    info->format = MODELFILE_LGBM_TEXT;
    snprintf(info->version, sizeof info->version, "%s", li.version);
    info->num_target = 1;
    li.feature_names = NULL;
    li.n_feature_names = 0;
    lgbm_info_free(&li);
    return 0;
}

/* Compiles an upload of the detected format into *blob and info.  Returns 0, or -1 with
 * 400/422/500 in resp (nothing to free). */
static int upload_compile(http_req *req, http_resp *resp, int format, xgb_info *info, void **blob,
                          size_t *blob_len)
{
    if (format == MODELFILE_LGBM_TEXT) /* its first line is "tree" */
        return upload_compile_lgbm(req, resp, info, blob, blob_len);
    char err[512];
    int st = xgb_compile(req->body, req->body_len, info, blob, blob_len, err, sizeof err);
    if (st == XGB_OK)
        return 0;
    if (st == XGB_INVALID)
        http_problem(resp, 400, "invalid_model", NULL, "not a valid XGBoost %s model: %s",
                     format == MODELFILE_XGB_UBJSON ? "UBJSON" : "JSON", err);
    else if (st == XGB_UNSUPPORTED)
        http_problem(resp, 422, "unsupported_model", NULL, "unsupported: %s", err);
    else
        http_problem(resp, 500, "internal", NULL, "could not compile the model: %s", err);
    return -1;
}

/* The INSERT of a new version of model `name`, under a per-name advisory lock (versions are
 * max + 1).  Answers 201 with the stored row, or the database's failure (resp). */
static void upload_store(http_req *req, http_resp *resp, const char *name, const xgb_info *info,
                         const void *blob, size_t blob_len)
{
    uint8_t digest[32];
    char sha[65], nf[16], ncls[16], ntrees[16], base[32], ntarget[16];
    char *names_json = string_array_json(info->feature_names, info->n_feature_names);
    char *types_json = string_array_json(info->feature_types, info->n_feature_types);
    db_conn *c = NULL;
    PGresult *r = NULL;
    int rc = DB_OK;
    sha256(req->body, req->body_len, digest);
    sha256_hex(digest, sha);
    snprintf(nf, sizeof nf, "%u", info->num_feature);
    snprintf(ncls, sizeof ncls, "%u", info->num_class);
    snprintf(ntrees, sizeof ntrees, "%u", info->num_trees);
    snprintf(ntarget, sizeof ntarget, "%u", info->num_target);
    snprintf(base, sizeof base, "%.9g", (double)info->base_score);
    if (req->body_len > (size_t)0x7fffffff || blob_len > (size_t)0x7fffffff) {
        http_problem(resp, 413, "body_too_large", NULL, "model too large to store");
        goto done;
    }
    if (!(c = dbreq_acquire(req, resp)) || dbreq_begin(req, resp, c))
        goto done;
    const char *lockv[] = {name};
    rc = dbreq_query(req, resp, c, "SELECT pg_advisory_xact_lock(hashtext('vigil.models:' || $1))",
                     1, lockv, &r);
    if (rc != DB_OK)
        goto dberr;
    PQclear(r);
    r = NULL;
    const char *vals[] = {name,
                          info->objective,
                          info->booster,
                          nf,
                          ncls,
                          ntrees,
                          names_json,
                          types_json,
                          base,
                          sha,
                          req->body,
                          blob,
                          modelfile_format_name(info->format),
                          info->version[0] ? info->version : NULL,
                          ntarget};
    int lens[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (int)req->body_len, (int)blob_len, 0, 0, 0};
    int fmts[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0};
    rc = dbreq_query_bin(
        req, resp, c,
        "INSERT INTO models (name, version, objective, booster, num_features, num_class, "
        "num_trees, feature_names, feature_types, base_score, sha256, source, compiled, format, "
        "library_version, num_target) "
        "SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5, $6, "
        "CASE WHEN $7::jsonb IS NULL THEN NULL ELSE ARRAY(SELECT "
        "jsonb_array_elements_text($7::jsonb)) END, "
        "CASE WHEN $8::jsonb IS NULL THEN NULL ELSE ARRAY(SELECT "
        "jsonb_array_elements_text($8::jsonb)) END, "
        "$9, $10, $11, $12, $13, $14, $15 FROM models WHERE name = $1 RETURNING " MODEL_COLS,
        15, vals, lens, fmts, 0, &r);
    if (rc != DB_OK)
        goto dberr;
    if (dbreq_commit(req, resp, c))
        goto done;
    snprintf(resp->location, sizeof resp->location, "/api/v1/models/%s", PQgetvalue(r, 0, 0));
    http_json(resp, 201, model_row_json(r, 0));
    goto done;
dberr:
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
done:
    PQclear(r);
    if (c)
        dbreq_release(req, c);
    free(names_json);
    free(types_json);
}

void models_create(http_req *req, http_resp *resp)
{
    xgb_info info = {0};
    void *blob = NULL;
    size_t blob_len = 0;
    const char *name = NULL;
    int format = MODELFILE_UNKNOWN;
    if (upload_check(req, resp, &format, &name) ||
        upload_compile(req, resp, format, &info, &blob, &blob_len))
        return;
    if (upload_loadable(req, resp, blob_len) == 0)
        upload_store(req, resp, name, &info, blob, blob_len);
    free(blob);
    xgb_info_free(&info);
}

void models_list(http_req *req, http_resp *resp)
{
    static const char *const args[] = {"limit", "cursor", "name", NULL};
    field_page pg;
    PGresult *r = NULL;
    if (field_page_args(req, resp, args, &pg))
        return;
    const char *name = http_query(req, "name");
    if (name && !valid_name(name)) {
        http_problem(resp, 400, "validation_failed", "name", "'name' is not a valid model name");
        return;
    }
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return;
    const char *vals[] = {pg.cursor_us, pg.cursor_id, pg.limit_plus_1, name};
    int rc = dbreq_query(req, resp, c,
                         "SELECT " MODEL_COLS " FROM models WHERE ($1::bigint IS NULL OR "
                         "(created_at, id) < ('epoch'::timestamptz + $1::bigint * interval "
                         "'1 microsecond', $2::uuid)) AND ($4::text IS NULL OR name = $4) "
                         "ORDER BY created_at DESC, id DESC LIMIT $3",
                         4, vals, &r);
    dbreq_release(req, c);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    if (rc == DB_OK) {
        cJSON *out = dbreq_page(r, pg.limit, 14, 0, model_row_json);
        http_json(resp, 200, out);
    }
    PQclear(r);
}

void models_get(http_req *req, http_resp *resp)
{
    const char *id;
    PGresult *r = NULL;
    if (model_id_param(req, resp, &id) ||
        dbreq_fetch_by_id(req, resp, "SELECT " MODEL_COLS " FROM models WHERE id = $1", id, "model",
                          0, &r))
        return;
    http_json(resp, 200, model_row_json(r, 0));
    PQclear(r);
}

void models_source(http_req *req, http_resp *resp)
{
    const char *id;
    PGresult *r = NULL;
    if (model_id_param(req, resp, &id) ||
        dbreq_fetch_by_id(req, resp, "SELECT source, format FROM models WHERE id = $1", id, "model",
                          1, &r))
        return;
    size_t n = (size_t)PQgetlength(r, 0, 0);
    char *copy = malloc(n ? n : 1);
    if (!copy) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
    } else {
        memcpy(copy, PQgetvalue(r, 0, 0), n);
        /* the Content-Type of the uploaded bytes: application/ubjson for a .ubj upload */
        http_raw(resp, 200, modelfile_content_type(modelfile_format_from_name(PQgetvalue(r, 0, 1))),
                 copy, n);
    }
    PQclear(r);
}

void models_delete(http_req *req, http_resp *resp)
{
    const char *id;
    PGresult *r = NULL;
    if (model_id_param(req, resp, &id))
        return;
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return;
    const char *vals[] = {id};
    int rc = dbreq_query(req, resp, c, "DELETE FROM models WHERE id = $1", 1, vals, &r);
    dbreq_release(req, c);
    if (rc == DB_ERROR && strcmp(db_sqlstate(r), "23503") == 0)
        http_problem(resp, 409, "conflict", NULL,
                     "model %s is used by the policy or by stored decisions; change the policy "
                     "first",
                     id);
    else if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK && atoi(PQcmdTuples(r)) == 0)
        http_problem(resp, 404, "not_found", NULL, "no model with id %s", id);
    else if (rc == DB_OK)
        http_raw(resp, 204, NULL, NULL, 0);
    PQclear(r);
}

/* Appends one float as %.9g's text (9 significant digits: every float32 reads back exactly), or
 * null when it is not finite (JSON has no NaN/Infinity).  numtext_g9 is printf's text, character
 * for character (common/numtext.h), without printf's cost.  p has room for NUMTEXT_G9_MAX. */
static size_t put_float(char *p, float v)
{
    if (!isfinite(v)) {
        memcpy(p, "null", 4);
        return 4;
    }
    return numtext_g9(p, v);
}

/* {"model_id": ..., "predictions": [...]} built by hand: for 100000 rows cJSON would cost far
 * more than the scoring.  One array per row for multi-output, a number otherwise. */
static char *predictions_json(const char *id, const float *out, uint32_t nrows, uint32_t nout,
                              size_t *len)
{
    size_t cap = 64 + strlen(id) + (size_t)nrows * (nout * 20 + 4);
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t o = (size_t)snprintf(s, cap, "{\"model_id\":\"%s\",\"predictions\":[", id);
    for (uint32_t i = 0; i < nrows; i++) {
        if (i)
            s[o++] = ',';
        if (nout > 1)
            s[o++] = '[';
        for (uint32_t k = 0; k < nout; k++) {
            if (k)
                s[o++] = ',';
            o += put_float(s + o, out[(size_t)i * nout + k]);
        }
        if (nout > 1)
            s[o++] = ']';
    }
    o += (size_t)snprintf(s + o, cap - o, "]}");
    *len = o;
    return s;
}

/* The double twin of predictions_json (LightGBM): %.17g round-trips every double. */
static char *predictions_json64(const char *id, const double *out, uint32_t nrows, uint32_t nout,
                                size_t *len)
{
    size_t cap = 64 + strlen(id) + (size_t)nrows * (nout * 28 + 4);
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t o = (size_t)snprintf(s, cap, "{\"model_id\":\"%s\",\"predictions\":[", id);
    for (uint32_t i = 0; i < nrows; i++) {
        if (i)
            s[o++] = ',';
        if (nout > 1)
            s[o++] = '[';
        for (uint32_t k = 0; k < nout; k++) {
            double v = out[(size_t)i * nout + k];
            if (k)
                s[o++] = ',';
            if (!isfinite(v)) {
                memcpy(s + o, "null", 4);
                o += 4;
            } else {
                o += (size_t)snprintf(s + o, 28, "%.17g", v);
            }
        }
        if (nout > 1)
            s[o++] = ']';
    }
    o += (size_t)snprintf(s + o, cap - o, "]}");
    *len = o;
    return s;
}

/* Parses the predict body into rr, never holding more rows than fit one worker frame
 * (rows x features x elem bytes: 4 for float32 rows, 8 for LightGBM's float64 ones;
 * VIGIL_HOTPATH_MAX_FRAME_MB; the same bound in process) or VIGIL_MAX_PREDICT_ROWS, whichever is
 * lower: past it, 413 naming the limit that applied.  So the matrix is bounded before it is
 * allocated, whatever the body's size.  Returns 0 or -1 (resp). */
static int predict_parse(http_req *req, http_resp *resp, const scoring_model *m, size_t elem,
                         rows_result *rr)
{
    uint64_t frame = scoring_frame_bytes(req->app);
    uint64_t per_row = (uint64_t)(m->num_features ? m->num_features : 1) * elem;
    uint64_t fit = frame > scoring_request_bytes(0, 0, elem)
                       ? (frame - scoring_request_bytes(0, 0, elem)) / per_row
                       : 0;
    uint32_t cap = (uint32_t)req->app->cfg->max_predict_rows;
    int by_frame = fit < cap;
    if (by_frame)
        cap = (uint32_t)fit;
    if ((elem == sizeof(double) ? rows_parse_f64 : rows_parse)(
            req->body, req->body_len, (const char *const *)m->names, m->n_names, m->num_features,
            cap, rr) == 0)
        return 0;
    if (rr->status == 413 && by_frame)
        http_problem(resp, 413, "too_many_rows", "rows",
                     "more than %u rows: rows x %u features x %zu bytes must fit one worker frame "
                     "(VIGIL_HOTPATH_MAX_FRAME_MB=%d)",
                     cap, m->num_features, elem, req->app->cfg->hotpath_max_frame_mb);
    else
        http_problem(resp, rr->status,
                     rr->malformed       ? "malformed_json"
                     : rr->status == 413 ? "too_many_rows"
                                         : "validation_failed",
                     rr->field[0] ? rr->field : NULL, "%s", rr->err);
    return -1;
}

/* 413 unless the answer, nrows x nout values of elem bytes, fits one worker frame (the same bound
 * in process): checked before anything is allocated or scored.  Returns 0 or -1 (resp). */
static int predict_answer_fits(http_req *req, http_resp *resp, uint32_t nrows, uint32_t nout,
                               size_t elem)
{
    uint64_t frame = scoring_frame_bytes(req->app);
    if (scoring_answer_bytes(nrows, nout, elem) <= frame)
        return 0;
    http_problem(
        resp, 413, "too_many_rows", "rows",
        "the answer (%u rows x %u outputs x %zu bytes) does not fit one worker frame "
        "(VIGIL_HOTPATH_MAX_FRAME_MB=%d): at most %llu rows for this model",
        nrows, nout, elem, req->app->cfg->hotpath_max_frame_mb,
        (unsigned long long)((frame - scoring_answer_bytes(0, 0, elem)) / ((uint64_t)nout * elem)));
    return -1;
}

/* The head of predict and explain: the model id from the path, a JSON body (415 otherwise) and
 * the model's metadata (404, or 503 when the database is unavailable).  Returns 0 with *m filled
 * (the caller frees it with scoring_model_free), or -1 with the answer in resp. */
static int model_rows_head(http_req *req, http_resp *resp, scoring_model *m)
{
    const char *id;
    int db_rc = DB_OK;
    if (model_id_param(req, resp, &id))
        return -1;
    if (!http_media_type_is(http_header(req, "Content-Type"), "application/json")) {
        http_problem(resp, 415, "unsupported_media_type", NULL,
                     "request body must be application/json");
        return -1;
    }
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return -1;
    int sc = scoring_meta(c, id, req->deadline_ms, m, &db_rc);
    dbreq_release(req, c);
    if (sc == SC_NOT_FOUND) {
        http_problem(resp, 404, "not_found", NULL, "no model with id %s", id);
        return -1;
    }
    if (sc != SC_OK) {
        http_unavailable(resp, "the database is unavailable");
        return -1;
    }
    return 0;
}

/* The predict answer for scoring status sc: 200 with the predictions (out, nrows x nout values,
 * double when f64), or the failure as a problem (err: the scorer's reason, logged, never shown
 * for 5xx). */
static void predict_answer(http_req *req, http_resp *resp, const scoring_model *m, int sc,
                           const char *err, const void *out, uint32_t nrows, uint32_t nout, int f64)
{
    if (sc == SC_OK) {
        size_t len = 0;
        char *body = f64 ? predictions_json64(m->id, out, nrows, nout, &len)
                         : predictions_json(m->id, out, nrows, nout, &len);
        if (body)
            http_raw(resp, 200, "application/json", body, len);
        else
            http_problem(resp, 500, "internal", NULL, "out of memory");
    } else if (sc == SC_NOT_FOUND) {
        http_problem(resp, 404, "not_found", NULL, "no model with id %s", m->id);
    } else if (sc == SC_TOO_LARGE) {
        http_problem(resp, 422, "model_too_large", NULL,
                     "the scoring worker cannot load this model: %s", err);
    } else {
        int down = sc == SC_UNAVAILABLE || sc == SC_DB;
        logline l;
        logline_begin(&l, down ? "warn" : "error", down ? "scoring_unavailable" : "scoring_failed");
        logline_str(&l, "request_id", req->request_id);
        logline_str(&l, "error", err);
        logline_end(&l);
        if (down)
            http_unavailable(resp, "the scoring worker is unavailable");
        else
            http_problem(resp, 500, "internal", NULL, "scoring failed (request %s)",
                         req->request_id);
    }
}

void models_predict(http_req *req, http_resp *resp)
{
    scoring_model m = {0};
    rows_result rr = {0};
    void *out = NULL;
    char err[512];
    if (model_rows_head(req, resp, &m))
        return;
    int sc;
    int f64 = scoring_is_f64(&m); /* LightGBM: rows and outputs in double */
    size_t elem = f64 ? sizeof(double) : sizeof(float);
    if (predict_parse(req, resp, &m, elem, &rr))
        goto done;
    uint32_t nout = scoring_nout(&m, rr.output_margin);
    if (predict_answer_fits(req, resp, rr.nrows, nout, elem))
        goto done;
    out = malloc((size_t)rr.nrows * nout * elem);
    if (!out) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
        goto done;
    }
    if (f64) {
        scoring_job64 job = {&m, rr.output_margin, rr.rows64, rr.nrows, out};
        sc = scoring_run64(req->app, &job, 1, req->deadline_ms, err, sizeof err);
    } else {
        scoring_job job = {&m, rr.output_margin, rr.rows, rr.nrows, out, NULL};
        sc = scoring_run(req->app, &job, 1, req->deadline_ms, err, sizeof err);
    }
    predict_answer(req, resp, &m, sc, err, out, rr.nrows, nout, f64);
done:
    free(out);
    rows_result_free(&rr);
    scoring_model_free(&m);
}

/* ---- explain ------------------------------------------------------------------------------------
 */

/* {"model_id","feature_names","contributions","margins"} built by hand like predictions_json.
 * One group: contributions is a matrix (a row per input row: num_features values, then the bias)
 * and margins an array.  Several groups (multi-class): contributions is one such matrix per group,
 * margins one array per group.  names: the model's feature names, or f0..fN-1 (xgboost's). */
static char *explain_json(const scoring_model *m, const float *contribs, const float *margins,
                          uint32_t nrows, size_t *len)
{
    uint32_t nf = m->num_features, k = m->num_class, ncol = nf + 1;
    cJSON *names = cJSON_CreateArray();
    char fname[32];
    for (uint32_t i = 0; names && i < nf; i++) {
        snprintf(fname, sizeof fname, "f%u", i);
        cJSON *s = cJSON_CreateString(m->n_names == nf ? m->names[i] : fname);
        if (!s || !cJSON_AddItemToArray(names, s)) {
            cJSON_Delete(s);
            cJSON_Delete(names);
            names = NULL;
        }
    }
    char *ntext = names ? cJSON_PrintUnformatted(names) : NULL;
    cJSON_Delete(names);
    if (!ntext)
        return NULL;
    size_t cap = 128 + strlen(m->id) + strlen(ntext) + (size_t)nrows * k * ((ncol + 1) * 20 + 8);
    char *s = malloc(cap);
    if (!s) {
        free(ntext);
        return NULL;
    }
    size_t o = (size_t)snprintf(
        s, cap, "{\"model_id\":\"%s\",\"feature_names\":%s,\"contributions\":", m->id, ntext);
    free(ntext);
    if (k > 1)
        s[o++] = '[';
    for (uint32_t g = 0; g < k; g++) {
        if (g)
            s[o++] = ',';
        s[o++] = '[';
        for (uint32_t r = 0; r < nrows; r++) {
            if (r)
                s[o++] = ',';
            s[o++] = '[';
            const float *c = contribs + ((size_t)r * k + g) * ncol;
            for (uint32_t j = 0; j < ncol; j++) {
                if (j)
                    s[o++] = ',';
                o += put_float(s + o, c[j]);
            }
            s[o++] = ']';
        }
        s[o++] = ']';
    }
    if (k > 1)
        s[o++] = ']';
    o += (size_t)snprintf(s + o, cap - o, ",\"margins\":");
    if (k > 1)
        s[o++] = '[';
    for (uint32_t g = 0; g < k; g++) {
        if (g)
            s[o++] = ',';
        s[o++] = '[';
        for (uint32_t r = 0; r < nrows; r++) {
            if (r)
                s[o++] = ',';
            o += put_float(s + o, margins[(size_t)r * k + g]);
        }
        s[o++] = ']';
    }
    if (k > 1)
        s[o++] = ']';
    o += (size_t)snprintf(s + o, cap - o, "}");
    *len = o;
    return s;
}

/* The answer to a failed scoring_explain (sc != SC_OK), logged like predict's. */
static void explain_problem(http_req *req, http_resp *resp, int sc, const char *id, const char *err)
{
    if (sc == SC_NOT_FOUND) {
        http_problem(resp, 404, "not_found", NULL, "no model with id %s", id);
        return;
    }
    if (sc == SC_UNEXPLAINABLE) {
        http_problem(resp, 409, "not_explainable", NULL, "%s", err);
        return;
    }
    int down = sc == SC_UNAVAILABLE || sc == SC_DB;
    logline l;
    logline_begin(&l, down ? "warn" : "error", down ? "scoring_unavailable" : "explain_failed");
    logline_str(&l, "request_id", req->request_id);
    logline_str(&l, "error", err);
    logline_end(&l);
    if (down)
        http_unavailable(resp, "the scoring worker is unavailable");
    else
        http_problem(resp, 500, "internal", NULL, "explanation failed (request %s)",
                     req->request_id);
}

void models_explain(http_req *req, http_resp *resp)
{
    scoring_model m = {0};
    rows_result rr = {0};
    float *contribs = NULL, *margins = NULL;
    char err[512];
    if (model_rows_head(req, resp, &m))
        return;
    int sc;
    if (predict_parse(req, resp, &m, sizeof(float), &rr))
        goto done;
    /* Both modes answer within the worker's frame: the same limit whichever runs it. */
    uint64_t answer = 12 + (uint64_t)rr.nrows * m.num_class * (m.num_features + 2) * 4;
    if (answer > ((uint64_t)req->app->cfg->hotpath_max_frame_mb << 20)) {
        http_problem(resp, 413, "too_many_rows", "rows",
                     "%u rows of %u contributions exceed one worker frame "
                     "(VIGIL_HOTPATH_MAX_FRAME_MB); send fewer rows",
                     rr.nrows, m.num_class * (m.num_features + 1));
        goto done;
    }
    contribs = malloc((size_t)rr.nrows * m.num_class * (m.num_features + 1) * sizeof(float) + 4);
    margins = malloc((size_t)rr.nrows * m.num_class * sizeof(float) + 4);
    if (!contribs || !margins) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
        goto done;
    }
    scoring_explain_job job = {&m, rr.rows, rr.nrows, contribs, margins};
    sc = scoring_explain(req->app, &job, req->deadline_ms, err, sizeof err);
    if (sc == SC_OK) {
        size_t len = 0;
        char *body = explain_json(&m, contribs, margins, rr.nrows, &len);
        if (body)
            http_raw(resp, 200, "application/json", body, len);
        else
            http_problem(resp, 500, "internal", NULL, "out of memory");
    } else {
        explain_problem(req, resp, sc, m.id, err);
    }
done:
    free(contribs);
    free(margins);
    rows_result_free(&rr);
    scoring_model_free(&m);
}
