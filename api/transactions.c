/* transactions.c - POST /api/v1/transactions (a risk decision per payment), reads, and feedback.
 *
 * A decision, in one database transaction on one pooled connection:
 *   1. with an Idempotency-Key: take a transaction-scoped advisory lock on (API key, key) without
 *      waiting (held by another request -> 409), and replay or refuse (422) a finished request;
 *   2. read the policy and its models' metadata (one SELECT), resolve the user and every built-in
 *      feature (one SELECT, feat.c);
 *   3. score champion and challenger in one worker call, bounded by the policy's
 *      scoring_timeout_ms; a worker that is down, a model that cannot be loaded or a passed
 *      deadline gives the policy's fallback decision with degraded = true;
 *   4. INSERT the transaction with its feature snapshot and the whole decision, INSERT the
 *      idempotency record holding the exact response, COMMIT.
 * A crash anywhere before COMMIT leaves nothing; after it, the whole result.  Only 201 results
 * are recorded for replay; a request that failed validation can simply be retried.  Records are
 * kept VIGIL_IDEMPOTENCY_RETENTION_H hours (default 48, at least 24). */
#include "transactions.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "dbreq.h"
#include "feat.h"
#include "fields.h"
#include "json.h"
#include "logline.h"
#include "metrics.h"
#include "scoring.h"
#include "sha256.h"
#include "validate.h"
#include "wire.h"

#define TXN_MAX_CLIENT_FEATURES 256
#define TXN_METADATA_MAX 4096
#define TXN_AMOUNT_MAX 9007199254740991.0 /* 2^53 - 1 */

/* Everything a stored transaction is returned with, in txn_row_json's order. */
#define TXN_COLS                                                                                   \
    "t.id, t.user_id, t.amount, t.currency, t.merchant_id, t.merchant_category, t.country, "       \
    "t.channel, to_char(t.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "  \
    "t.metadata::text, t.features::text, t.score, t.decision, t.degraded, t.degraded_reason, "     \
    "t.model_id, t.model_version, t.challenger_model_id, t.challenger_version, "                   \
    "t.challenger_score, t.review_threshold, t.block_threshold, t.fallback_decision, "             \
    "t.policy_version, t.scoring_latency_us, t.label, t.label_source, "                            \
    "to_char(t.labelled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "             \
    "to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "              \
    "(extract(epoch FROM t.created_at) * 1000000)::bigint, t.model_sha256, t.scoring_timeout_ms"

enum {
    C_ID,
    C_USER,
    C_AMOUNT,
    C_CURRENCY,
    C_MERCHANT,
    C_MCC,
    C_COUNTRY,
    C_CHANNEL,
    C_OCCURRED,
    C_META,
    C_FEATURES,
    C_SCORE,
    C_DECISION,
    C_DEGRADED,
    C_REASON,
    C_MODEL,
    C_MODEL_VER,
    C_CHAL,
    C_CHAL_VER,
    C_CHAL_SCORE,
    C_REVIEW,
    C_BLOCK,
    C_FALLBACK,
    C_POLICY_VER,
    C_LATENCY,
    C_LABEL,
    C_LABEL_SRC,
    C_LABELLED,
    C_CREATED,
    C_CREATED_US,
    C_MODEL_SHA,
    C_TIMEOUT
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

/* A float32 column as the shortest text that round-trips it, or null. */
static void add_float(cJSON *o, const char *k, const char *v)
{
    char buf[32];
    if (!v) {
        cJSON_AddNullToObject(o, k);
        return;
    }
    snprintf(buf, sizeof buf, "%.9g", (double)strtof(v, NULL));
    cJSON_AddRawToObject(o, k, buf);
}

static cJSON *txn_row_json(const PGresult *r, int row)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "id", val(r, row, C_ID));
    cJSON_AddStringToObject(o, "user_id", val(r, row, C_USER));
    cJSON_AddRawToObject(o, "amount", val(r, row, C_AMOUNT));
    cJSON_AddStringToObject(o, "currency", val(r, row, C_CURRENCY));
    cJSON_AddStringToObject(o, "merchant_id", val(r, row, C_MERCHANT));
    cJSON_AddStringToObject(o, "merchant_category", val(r, row, C_MCC));
    cJSON_AddStringToObject(o, "country", val(r, row, C_COUNTRY));
    cJSON_AddStringToObject(o, "channel", val(r, row, C_CHANNEL));
    cJSON_AddStringToObject(o, "occurred_at", val(r, row, C_OCCURRED));
    cJSON_AddRawToObject(o, "metadata", val(r, row, C_META));
    cJSON_AddRawToObject(o, "features", val(r, row, C_FEATURES));

    cJSON *risk = cJSON_AddObjectToObject(o, "risk");
    add_float(risk, "score", val(r, row, C_SCORE));
    cJSON_AddStringToObject(risk, "decision", val(r, row, C_DECISION));
    if (val(r, row, C_MODEL)) {
        cJSON *m = cJSON_AddObjectToObject(risk, "model");
        cJSON_AddStringToObject(m, "id", val(r, row, C_MODEL));
        cJSON_AddNumberToObject(m, "version", atoi(val(r, row, C_MODEL_VER)));
        add_str(m, "sha256", val(r, row, C_MODEL_SHA));
    } else {
        cJSON_AddNullToObject(risk, "model");
    }
    if (val(r, row, C_CHAL)) {
        cJSON *c = cJSON_AddObjectToObject(risk, "challenger");
        cJSON_AddStringToObject(c, "id", val(r, row, C_CHAL));
        cJSON_AddNumberToObject(c, "version", atoi(val(r, row, C_CHAL_VER)));
        add_float(c, "score", val(r, row, C_CHAL_SCORE));
    } else {
        cJSON_AddNullToObject(risk, "challenger");
    }
    cJSON_AddBoolToObject(risk, "degraded", val(r, row, C_DEGRADED)[0] == 't');
    add_str(risk, "reason", val(r, row, C_REASON));
    cJSON *pol = cJSON_AddObjectToObject(risk, "policy");
    cJSON_AddNumberToObject(pol, "version", atoi(val(r, row, C_POLICY_VER)));
    cJSON_AddNumberToObject(pol, "review_threshold", strtod(val(r, row, C_REVIEW), NULL));
    cJSON_AddNumberToObject(pol, "block_threshold", strtod(val(r, row, C_BLOCK), NULL));
    cJSON_AddStringToObject(pol, "fallback_decision", val(r, row, C_FALLBACK));
    cJSON_AddNumberToObject(pol, "scoring_timeout_ms", atoi(val(r, row, C_TIMEOUT)));
    cJSON_AddNumberToObject(risk, "scoring_latency_us", atoi(val(r, row, C_LATENCY)));

    add_str(o, "label", val(r, row, C_LABEL));
    add_str(o, "label_source", val(r, row, C_LABEL_SRC));
    add_str(o, "labelled_at", val(r, row, C_LABELLED));
    cJSON_AddStringToObject(o, "created_at", val(r, row, C_CREATED));
    return o;
}

/* ---- request validation ------------------------------------------------------------------------
 */

typedef struct txn_input {
    const char *user_id, *user_external_id, *currency, *merchant_id, *mcc, *country, *channel;
    const char *occurred_at;
    double amount;
    int exponent;
    const cJSON *features; /* client features object or NULL */
    char *features_text;   /* compact JSON of it (malloc'd) or NULL */
    char *metadata_text;   /* compact JSON (malloc'd) or NULL */
} txn_input;

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM), 't'/'z' accepted.  Range
 * checks are left to PostgreSQL's parser, which rejects impossible dates. */
static int rfc3339(const char *s)
{
    const char *shape = "dddd-dd-ddTdd:dd:dd";
    size_t i = 0;
    for (; shape[i]; i++) {
        char c = s[i];
        if (shape[i] == 'd'   ? !(c >= '0' && c <= '9')
            : shape[i] == 'T' ? (c != 'T' && c != 't')
                              : c != shape[i])
            return 0;
    }
    if (s[i] == '.') {
        size_t d = 0;
        for (i++; s[i] >= '0' && s[i] <= '9'; i++)
            d++;
        if (d == 0 || d > 9)
            return 0;
    }
    if ((s[i] == 'Z' || s[i] == 'z') && s[i + 1] == '\0')
        return 1;
    return (s[i] == '+' || s[i] == '-') && s[i + 1] >= '0' && s[i + 1] <= '9' && s[i + 2] >= '0' &&
           s[i + 2] <= '9' && s[i + 3] == ':' && s[i + 4] >= '0' && s[i + 4] <= '9' &&
           s[i + 5] >= '0' && s[i + 5] <= '9' && s[i + 6] == '\0';
}

static int bad(http_resp *resp, const char *field, const char *msg)
{
    http_problem(resp, 400, "validation_failed", field, "%s", msg);
    return -1;
}

static int read_input(http_resp *resp, const cJSON *body, txn_input *in)
{
    static const char *const allowed[] = {"user_id",  "user_external_id", "amount",
                                          "currency", "merchant_id",      "merchant_category",
                                          "country",  "channel",          "occurred_at",
                                          "features", "metadata",         NULL};
    const cJSON *meta = NULL;
    if (field_no_unknown(resp, body, allowed) ||
        field_string(resp, body, "user_id", 36, 0, &in->user_id, NULL) ||
        field_string(resp, body, "user_external_id", 128, 0, &in->user_external_id, NULL) ||
        field_string(resp, body, "currency", 3, FIELD_REQUIRED, &in->currency, NULL) ||
        field_string(resp, body, "merchant_id", 128, FIELD_REQUIRED, &in->merchant_id, NULL) ||
        field_string(resp, body, "merchant_category", 4, FIELD_REQUIRED, &in->mcc, NULL) ||
        field_string(resp, body, "country", 2, FIELD_REQUIRED, &in->country, NULL) ||
        field_string(resp, body, "channel", 16, FIELD_REQUIRED, &in->channel, NULL) ||
        field_string(resp, body, "occurred_at", 40, 0, &in->occurred_at, NULL) ||
        field_object(resp, body, "features", 64 * 1024, 0, &in->features, NULL) ||
        field_object(resp, body, "metadata", TXN_METADATA_MAX, 0, &meta, NULL))
        return -1;
    if (!in->user_id == !in->user_external_id)
        return bad(resp, in->user_id ? "user_external_id" : "user_id",
                   "exactly one of 'user_id' and 'user_external_id' is required");
    if (in->user_id && !val_uuid(in->user_id))
        return bad(resp, "user_id", "'user_id' must be a UUID");
    const cJSON *amt = cJSON_GetObjectItemCaseSensitive(body, "amount");
    if (!amt)
        return bad(resp, "amount", "'amount' is required");
    if (!cJSON_IsNumber(amt) || amt->valuedouble != floor(amt->valuedouble) ||
        amt->valuedouble <= 0 || amt->valuedouble > TXN_AMOUNT_MAX)
        return bad(resp, "amount",
                   "'amount' must be an integer number of minor units in 1..9007199254740991");
    in->amount = amt->valuedouble;
    if ((in->exponent = val_currency_exponent(in->currency)) < 0)
        return bad(resp, "currency", "'currency' must be an ISO 4217 code such as \"EUR\"");
    if (strlen(in->mcc) != 4 || strspn(in->mcc, "0123456789") != 4)
        return bad(resp, "merchant_category", "'merchant_category' must be a 4-digit MCC");
    if (!val_country(in->country))
        return bad(resp, "country", "'country' must be an ISO 3166-1 alpha-2 code, e.g. \"DE\"");
    if (strcmp(in->channel, "card_present") && strcmp(in->channel, "ecommerce") &&
        strcmp(in->channel, "transfer") && strcmp(in->channel, "wallet"))
        return bad(resp, "channel",
                   "'channel' must be card_present, ecommerce, transfer or wallet");
    if (in->occurred_at && !rfc3339(in->occurred_at))
        return bad(resp, "occurred_at", "'occurred_at' must be an RFC 3339 date-time");
    if (in->features) {
        int n = 0;
        const cJSON *f;
        cJSON_ArrayForEach(f, in->features)
        {
            char field[160];
            snprintf(field, sizeof field, "features.%.128s", f->string);
            if (++n > TXN_MAX_CLIENT_FEATURES)
                return bad(resp, "features", "at most 256 client features");
            if (strlen(f->string) == 0 || val_utf8_chars(f->string) > 128)
                return bad(resp, "features", "feature names must be 1..128 characters");
            if (!cJSON_IsNull(f) && !cJSON_IsNumber(f))
                return bad(resp, field, "client features must be numbers or null");
        }
        in->features_text = cJSON_PrintUnformatted(in->features);
    }
    if (meta)
        in->metadata_text = cJSON_PrintUnformatted(meta);
    return 0;
}

/* ---- decision ----------------------------------------------------------------------------------
 */

typedef struct policy_row {
    scoring_model champion, challenger;
    int has_champion, has_challenger;
    char review[32], block[32], fallback[8], timeout[12], version[12];
    double review_v, block_v;
    int timeout_ms;
} policy_row;

/* The value of feature `name` for this request: built-in, else client-supplied, else NaN. */
static float feature_value(const char *name, const double *builtin, const cJSON *client)
{
    int b = feat_lookup(name);
    if (b >= 0)
        return (float)builtin[b];
    const cJSON *v = client ? cJSON_GetObjectItemCaseSensitive(client, name) : NULL;
    return cJSON_IsNumber(v) ? (float)v->valuedouble : NAN;
}

/* Appends "name": value to the snapshot being built (skipping names already present). */
static void snap_add(cJSON *snap, const char *name, float v)
{
    if (cJSON_GetObjectItemCaseSensitive(snap, name))
        return;
    if (isnan(v) || isinf(v)) {
        cJSON_AddNullToObject(snap, name);
    } else {
        char buf[32];
        snprintf(buf, sizeof buf, "%.9g", (double)v);
        cJSON_AddRawToObject(snap, name, buf);
    }
}

static const char *decide(double score, const policy_row *p)
{
    if (score >= p->block_v)
        return "block";
    if (score >= p->review_v)
        return "review";
    return "allow";
}

/* Replays a recorded response (same key, same request) or answers 422 (different request). */
static void replay(http_resp *resp, const PGresult *r, const char *hash)
{
    if (strcmp(PQgetvalue(r, 0, 0), hash) != 0) {
        http_problem(resp, 422, "idempotency_key_reused", NULL,
                     "this Idempotency-Key was used with a different request");
        return;
    }
    size_t n = (size_t)PQgetlength(r, 0, 2);
    char *body = malloc(n + 1);
    if (!body) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
        return;
    }
    memcpy(body, PQgetvalue(r, 0, 2), n + 1);
    http_raw(resp, atoi(PQgetvalue(r, 0, 1)), "application/json", body, n);
    resp->replayed = 1;
    cJSON *o = cJSON_Parse(body);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (cJSON_IsString(id))
        snprintf(resp->location, sizeof resp->location, "/api/v1/transactions/%s", id->valuestring);
    cJSON_Delete(o);
}

static int idem_key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n < 1 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)k[i] < 0x21 || (unsigned char)k[i] > 0x7e)
            return 0;
    return 1;
}

/* Deletes a bounded batch of idempotency records older than the retention (at least 24 h).  Run
 * on about one keyed request in 64, after its commit, so the table stays bounded without a
 * background job.  Failures only delay the cleanup. */
static void expire_keys(http_req *req, db_conn *c)
{
    char hours[16], err[256];
    snprintf(hours, sizeof hours, "%d", req->app->cfg->idempotency_retention_h);
    const char *v[] = {hours};
    db_exec(c,
            "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys "
            "WHERE created_at < clock_timestamp() - $1::int * interval '1 hour' LIMIT 1000)",
            1, v, req->deadline_ms, err, sizeof err);
}

void txn_create(http_req *req, http_resp *resp)
{
    cJSON *body = NULL, *snap = NULL;
    txn_input in = {0};
    policy_row pol = {0};
    db_conn *c = NULL;
    PGresult *r = NULL;
    char *snap_text = NULL, *resp_text = NULL;
    float *rows_ch = NULL, *rows_cl = NULL;
    char hash[65] = "", err[512];
    int rc;
    const char *ikey = http_header(req, "Idempotency-Key");
    if (ikey && !idem_key_ok(ikey)) {
        http_problem(resp, 400, "validation_failed", "Idempotency-Key",
                     "Idempotency-Key must be 1..255 printable ASCII characters");
        return;
    }
    if (http_body_object(req, resp, &body) || read_input(resp, body, &in))
        goto done;
    if (ikey) {
        sha256_ctx h;
        uint8_t d[32];
        sha256_init(&h);
        sha256_update(&h, "POST /api/v1/transactions\n", 26);
        sha256_update(&h, req->body, req->body_len);
        sha256_final(&h, d);
        sha256_hex(d, hash);
    }
    if (!(c = dbreq_acquire(req, resp)) || dbreq_begin(req, resp, c))
        goto done;

    /* 1. Idempotency: lock without waiting, then look for a finished twin. */
    if (ikey) {
        const char *kv[] = {req->key_id, ikey};
        rc = dbreq_query(req, resp, c,
                         "SELECT pg_try_advisory_xact_lock(hashtextextended($1 || ':' || $2, 7))",
                         2, kv, &r);
        if (rc != DB_OK)
            goto dberr;
        if (PQgetvalue(r, 0, 0)[0] != 't') {
            http_problem(resp, 409, "idempotency_key_in_use", NULL,
                         "a request with this Idempotency-Key is still being processed");
            goto done;
        }
        PQclear(r);
        r = NULL;
        rc = dbreq_query(req, resp, c,
                         "SELECT request_hash, status_code, response_body FROM idempotency_keys "
                         "WHERE api_key_id = $1 AND key = $2",
                         2, kv, &r);
        if (rc != DB_OK)
            goto dberr;
        if (PQntuples(r) == 1) {
            replay(resp, r, hash);
            goto done;
        }
        PQclear(r);
        r = NULL;
    }

    /* 2a. Policy and its models. */
    rc = dbreq_query(
        req, resp, c,
        "SELECT p.review_threshold, p.block_threshold, p.fallback_decision, "
        "p.scoring_timeout_ms, p.version, " SCORING_MODEL_COLS("c") ", " SCORING_MODEL_COLS(
            "h") " FROM policy p "
                 "LEFT JOIN models c ON c.id = p.champion_model_id "
                 "LEFT JOIN models h ON h.id = p.challenger_model_id",
        0, NULL, &r);
    if (rc != DB_OK)
        goto dberr;
    snprintf(pol.review, sizeof pol.review, "%s", PQgetvalue(r, 0, 0));
    snprintf(pol.block, sizeof pol.block, "%s", PQgetvalue(r, 0, 1));
    snprintf(pol.fallback, sizeof pol.fallback, "%s", PQgetvalue(r, 0, 2));
    snprintf(pol.timeout, sizeof pol.timeout, "%s", PQgetvalue(r, 0, 3));
    snprintf(pol.version, sizeof pol.version, "%s", PQgetvalue(r, 0, 4));
    pol.review_v = strtod(pol.review, NULL);
    pol.block_v = strtod(pol.block, NULL);
    pol.timeout_ms = atoi(pol.timeout);
    pol.has_champion = scoring_model_from_row(r, 0, 5, &pol.champion) == 0;
    pol.has_challenger = scoring_model_from_row(r, 0, 12, &pol.challenger) == 0;
    PQclear(r);
    r = NULL;

    /* 2b. The user and every built-in feature, in one round trip. */
    const char *fv[] = {in.user_id, in.user_id ? NULL : in.user_external_id, in.occurred_at,
                        in.merchant_id};
    rc = dbreq_query(req, resp, c, FEAT_SQL, 4, fv, &r);
    /* Class 22 (data exception) can only come from occurred_at here ($1 is a checked UUID):
     * 22007/22008 for impossible dates, 22009 for an offset out of range, ... */
    if (rc == DB_ERROR && strncmp(db_sqlstate(r), "22", 2) == 0) {
        http_problem(resp, 400, "validation_failed", "occurred_at",
                     "'occurred_at' is not a valid date-time");
        goto done;
    }
    if (rc != DB_OK)
        goto dberr;
    if (PQntuples(r) != 1) {
        http_problem(resp, 422, "unknown_user", in.user_id ? "user_id" : "user_external_id",
                     "no such user");
        goto done;
    }
    double amount_major = in.amount / pow(10, in.exponent);
    double builtin[FEAT_COUNT];
    feat_compute(r, amount_major, in.country, builtin);
    char user_id[40], occurred[40];
    snprintf(user_id, sizeof user_id, "%s", PQgetvalue(r, 0, FEAT_COL_USER_ID));
    snprintf(occurred, sizeof occurred, "%s", PQgetvalue(r, 0, FEAT_COL_OCCURRED_AT));
    PQclear(r);
    r = NULL;

    /* 3. Feature vectors, snapshot, scoring. */
    snap = cJSON_CreateObject();
    scoring_job jobs[2];
    int njobs = 0;
    float out_ch = NAN, out_cl = NAN;
    if (pol.has_champion) {
        rows_ch = malloc((pol.champion.num_features + 1) * sizeof(float));
        for (uint32_t i = 0; rows_ch && i < pol.champion.num_features; i++) {
            const char *nm = i < pol.champion.n_names ? pol.champion.names[i] : "";
            rows_ch[i] = feature_value(nm, builtin, in.features);
            snap_add(snap, nm, rows_ch[i]);
        }
        jobs[njobs++] = (scoring_job){&pol.champion, 0, rows_ch, 1, &out_ch};
    }
    if (pol.has_champion && pol.has_challenger) {
        rows_cl = malloc((pol.challenger.num_features + 1) * sizeof(float));
        for (uint32_t i = 0; rows_cl && i < pol.challenger.num_features; i++) {
            const char *nm = i < pol.challenger.n_names ? pol.challenger.names[i] : "";
            rows_cl[i] = feature_value(nm, builtin, in.features);
            snap_add(snap, nm, rows_cl[i]);
        }
        jobs[njobs++] = (scoring_job){&pol.challenger, 0, rows_cl, 1, &out_cl};
    }
    if ((pol.has_champion && !rows_ch) || (pol.has_challenger && pol.has_champion && !rows_cl) ||
        !snap || !(snap_text = cJSON_PrintUnformatted(snap))) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
        goto done;
    }
    const char *decision = pol.fallback, *reason = NULL;
    int degraded = 1;
    int64_t t0 = clock_now_us();
    if (!pol.has_champion) {
        reason = "no_champion_model";
    } else {
        int64_t dl = wire_now_ms() + pol.timeout_ms;
        if (dl > req->deadline_ms)
            dl = req->deadline_ms;
        int sc = scoring_run(req->app, jobs, njobs, dl, err, sizeof err);
        if (sc == SC_OK && isfinite(out_ch)) {
            decision = decide(out_ch, &pol);
            degraded = 0;
        } else {
            reason = sc == SC_OK            ? "non_finite_score"
                     : wire_now_ms() >= dl  ? "scoring_timeout"
                     : sc == SC_UNAVAILABLE ? "hotpath_unavailable"
                     : sc == SC_NOT_FOUND   ? "model_not_found"
                     : sc == SC_DB          ? "model_load_failed"
                                            : "scoring_failed";
            logline l;
            logline_begin(&l, "warn", "degraded_decision");
            logline_str(&l, "request_id", req->request_id);
            logline_str(&l, "reason", reason);
            logline_str(&l, "error", err);
            logline_end(&l);
        }
    }
    int latency_us = (int)(clock_now_us() - t0);

    /* 4. Store everything, then the idempotency record, then commit. */
    char amount[32], amajor[40], score[32], cscore[32], mver[12], cver[12], lat[12];
    snprintf(amount, sizeof amount, "%.0f", in.amount);
    snprintf(amajor, sizeof amajor, "%.17g", amount_major);
    snprintf(score, sizeof score, "%.9g", (double)out_ch);
    snprintf(cscore, sizeof cscore, "%.9g", (double)out_cl);
    snprintf(mver, sizeof mver, "%d", pol.champion.version);
    snprintf(cver, sizeof cver, "%d", pol.challenger.version);
    snprintf(lat, sizeof lat, "%d", latency_us);
    int scored = !degraded;
    int cl_scored = scored && pol.has_challenger && isfinite(out_cl);
    const char *iv[] = {user_id,
                        amount,
                        in.currency,
                        amajor,
                        in.merchant_id,
                        in.mcc,
                        in.country,
                        in.channel,
                        occurred,
                        in.features_text,
                        in.metadata_text ? in.metadata_text : "{}",
                        snap_text,
                        scored ? score : NULL,
                        decision,
                        degraded ? "t" : "f",
                        reason,
                        pol.has_champion ? pol.champion.id : NULL,
                        pol.has_champion ? mver : NULL,
                        pol.has_champion ? pol.champion.sha256 : NULL,
                        pol.has_challenger ? pol.challenger.id : NULL,
                        pol.has_challenger ? cver : NULL,
                        pol.has_challenger ? pol.challenger.sha256 : NULL,
                        cl_scored ? cscore : NULL,
                        pol.review,
                        pol.block,
                        pol.fallback,
                        pol.timeout,
                        pol.version,
                        lat};
    rc = dbreq_query(
        req, resp, c,
        "INSERT INTO transactions AS t (user_id, amount, currency, amount_major, merchant_id, "
        "merchant_category, country, channel, occurred_at, client_features, metadata, features, "
        "score, decision, degraded, degraded_reason, model_id, model_version, model_sha256, "
        "challenger_model_id, challenger_version, challenger_sha256, challenger_score, "
        "review_threshold, block_threshold, fallback_decision, scoring_timeout_ms, "
        "policy_version, scoring_latency_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
        "$11::jsonb, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, "
        "$27, $28, $29) RETURNING " TXN_COLS,
        29, iv, &r);
    if (rc == DB_ERROR && strcmp(db_sqlstate(r), "23503") == 0) {
        http_problem(resp, 422, "unknown_user", NULL, "the user was deleted meanwhile");
        goto done;
    }
    if (rc != DB_OK)
        goto dberr;
    cJSON *out = txn_row_json(r, 0);
    resp_text = out ? cJSON_PrintUnformatted(out) : NULL;
    cJSON_Delete(out);
    if (!resp_text) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
        goto done;
    }
    char location[128];
    snprintf(location, sizeof location, "/api/v1/transactions/%s", PQgetvalue(r, 0, C_ID));
    PQclear(r);
    r = NULL;
    if (ikey) {
        const char *kv[] = {req->key_id, ikey, hash, resp_text};
        rc = dbreq_query(req, resp, c,
                         "INSERT INTO idempotency_keys (api_key_id, key, request_hash, "
                         "status_code, response_body) VALUES ($1, $2, $3, 201, $4)",
                         4, kv, &r);
        if (rc != DB_OK)
            goto dberr;
    }
    if (dbreq_commit(req, resp, c))
        goto done;
    metrics_observe_decision(decision, degraded);
    if (ikey && (req->start_us & 63) == 0)
        expire_keys(req, c);
    http_raw(resp, 201, "application/json", resp_text, strlen(resp_text));
    resp_text = NULL;
    snprintf(resp->location, sizeof resp->location, "%s", location);
    goto done;
dberr:
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
done:
    PQclear(r);
    if (c)
        dbreq_release(req, c); /* rolls back anything not committed */
    free(resp_text);
    free(snap_text);
    cJSON_Delete(snap);
    free(rows_ch);
    free(rows_cl);
    scoring_model_free(&pol.champion);
    scoring_model_free(&pol.challenger);
    free(in.features_text);
    free(in.metadata_text);
    cJSON_Delete(body);
}

/* ---- reads -------------------------------------------------------------------------------------
 */

static int txn_id_param(http_req *req, http_resp *resp, const char **id)
{
    *id = req->nparams > 0 ? req->params[0] : NULL;
    if (!*id || !val_uuid(*id)) {
        http_problem(resp, 400, "validation_failed", "id", "id must be a UUID");
        return -1;
    }
    return 0;
}

void txn_get(http_req *req, http_resp *resp)
{
    const char *id;
    PGresult *r = NULL;
    if (txn_id_param(req, resp, &id) ||
        dbreq_fetch_by_id(req, resp, "SELECT " TXN_COLS " FROM transactions t WHERE t.id = $1", id,
                          "transaction", 0, &r))
        return;
    http_json(resp, 200, txn_row_json(r, 0));
    PQclear(r);
}

/* Shared by the two list routes; user_id_path is the {id} of /users/{id}/transactions or NULL. */
static void list(http_req *req, http_resp *resp, const char *user_id_path)
{
    static const char *const args[] = {"user_id", "decision", "label",  "from",
                                       "to",      "limit",    "cursor", NULL};
    static const char *const user_args[] = {"decision", "label",  "from", "to",
                                            "limit",    "cursor", NULL};
    field_page pg;
    PGresult *r = NULL;
    if (field_page_args(req, resp, user_id_path ? user_args : args, &pg))
        return;
    const char *user = user_id_path ? user_id_path : http_query(req, "user_id");
    const char *decision = http_query(req, "decision"), *label = http_query(req, "label");
    const char *from = http_query(req, "from"), *to = http_query(req, "to");
    if (user && !val_uuid(user)) {
        http_problem(resp, 400, "validation_failed", user_id_path ? "id" : "user_id",
                     "user id must be a UUID");
        return;
    }
    if (decision && strcmp(decision, "allow") && strcmp(decision, "review") &&
        strcmp(decision, "block")) {
        http_problem(resp, 400, "validation_failed", "decision",
                     "'decision' must be allow, review or block");
        return;
    }
    if (label && strcmp(label, "fraud") && strcmp(label, "legit") && strcmp(label, "none")) {
        http_problem(resp, 400, "validation_failed", "label",
                     "'label' must be fraud, legit or none");
        return;
    }
    if ((from && !rfc3339(from)) || (to && !rfc3339(to))) {
        http_problem(resp, 400, "validation_failed", from && !rfc3339(from) ? "from" : "to",
                     "'from' and 'to' must be RFC 3339 date-times");
        return;
    }
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return;
    if (user_id_path) { /* 404 for an unknown user rather than an empty page */
        const char *uv[] = {user};
        int urc = dbreq_query(req, resp, c, "SELECT 1 FROM users WHERE id = $1", 1, uv, &r);
        int missing = urc == DB_OK && PQntuples(r) == 0;
        if (urc == DB_ERROR)
            dbreq_internal(req, resp, r);
        PQclear(r);
        r = NULL;
        if (urc != DB_OK || missing) {
            if (missing)
                http_problem(resp, 404, "not_found", NULL, "no user with id %s", user);
            dbreq_release(req, c);
            return;
        }
    }
    const char *vals[] = {
        pg.cursor_us, pg.cursor_id, pg.limit_plus_1, user, decision, label, from, to};
    int rc = dbreq_query(
        req, resp, c,
        "SELECT " TXN_COLS " FROM transactions t WHERE ($1::bigint IS NULL OR "
        "(t.created_at, t.id) < ('epoch'::timestamptz + $1::bigint * interval '1 microsecond', "
        "$2::uuid)) AND ($4::uuid IS NULL OR t.user_id = $4::uuid) "
        "AND ($5::text IS NULL OR t.decision = $5) "
        "AND ($6::text IS NULL OR ($6 = 'none' AND t.label IS NULL) OR t.label = $6) "
        "AND ($7::timestamptz IS NULL OR t.occurred_at >= $7::timestamptz) "
        "AND ($8::timestamptz IS NULL OR t.occurred_at < $8::timestamptz) "
        "ORDER BY t.created_at DESC, t.id DESC LIMIT $3",
        8, vals, &r);
    dbreq_release(req, c);
    if (rc == DB_ERROR && strncmp(db_sqlstate(r), "22", 2) == 0)
        http_problem(resp, 400, "validation_failed", NULL, "invalid filter value");
    else if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK) {
        cJSON *out = dbreq_page(r, pg.limit, C_CREATED_US, C_ID, txn_row_json);
        http_json(resp, 200, out);
    }
    PQclear(r);
}

void txn_list(http_req *req, http_resp *resp)
{
    list(req, resp, NULL);
}

void txn_list_for_user(http_req *req, http_resp *resp)
{
    const char *id = req->nparams > 0 ? req->params[0] : NULL;
    if (!id || !val_uuid(id)) {
        http_problem(resp, 400, "validation_failed", "id", "user id must be a UUID");
        return;
    }
    list(req, resp, id);
}

/* ---- feedback ----------------------------------------------------------------------------------
 */

void txn_label(http_req *req, http_resp *resp)
{
    static const char *const allowed[] = {"label", "label_source", NULL};
    const char *id, *label = NULL, *source = NULL;
    cJSON *body = NULL;
    PGresult *r = NULL;
    db_conn *c = NULL;
    if (txn_id_param(req, resp, &id) || http_body_object(req, resp, &body))
        goto done;
    const char *other = json_unknown_member(body, allowed);
    if (other) {
        static const char *const stored[] = {"id",          "user_id",     "amount",
                                             "currency",    "merchant_id", "merchant_category",
                                             "country",     "channel",     "occurred_at",
                                             "metadata",    "features",    "risk",
                                             "labelled_at", "created_at",  NULL};
        int known = 0;
        for (const char *const *f = stored; *f && !known; f++)
            known = strcmp(*f, other) == 0;
        if (known)
            http_problem(resp, 400, "immutable_field", other,
                         "'%s' cannot be changed: only label and label_source are writable", other);
        else
            http_problem(resp, 400, "unknown_field", other, "unknown field '%.64s'", other);
        goto done;
    }
    if (field_string(resp, body, "label", 16, FIELD_REQUIRED, &label, NULL) ||
        field_string(resp, body, "label_source", 16, FIELD_REQUIRED, &source, NULL))
        goto done;
    if (strcmp(label, "fraud") && strcmp(label, "legit")) {
        http_problem(resp, 400, "validation_failed", "label", "'label' must be fraud or legit");
        goto done;
    }
    if (strcmp(source, "chargeback") && strcmp(source, "analyst") && strcmp(source, "customer")) {
        http_problem(resp, 400, "validation_failed", "label_source",
                     "'label_source' must be chargeback, analyst or customer");
        goto done;
    }
    if (!(c = dbreq_acquire(req, resp)))
        goto done;
    const char *vals[] = {id, label, source};
    int rc = dbreq_query(req, resp, c,
                         "UPDATE transactions AS t SET label = $2, label_source = $3, "
                         "labelled_at = clock_timestamp() WHERE t.id = $1 RETURNING " TXN_COLS,
                         3, vals, &r);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK && PQntuples(r) == 0)
        http_problem(resp, 404, "not_found", NULL, "no transaction with id %s", id);
    else if (rc == DB_OK)
        http_json(resp, 200, txn_row_json(r, 0));
done:
    PQclear(r);
    if (c)
        dbreq_release(req, c);
    cJSON_Delete(body);
}
