/* transactions.c - stored transactions: their columns and JSON shape (TXN_COLS, txn_row_json),
 * GET one, the two keyset-paginated lists with filters, and feedback labels (PATCH, and
 * txn_label_apply for review closes), each written with its transaction.labelled webhook event.  A
 * transaction is created by the decision pipeline (decision.h), which returns the row it stored
 * through txn_row_json too, so a decision and a later read answer the same bytes.  Each handler is
 * one pooled connection and one statement (two for the per-user list, which 404s an unknown user).
 */
#include "transactions.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"
#include "dbreq.h"
#include "fields.h"
#include "json.h"
#include "outbox.h"
#include "validate.h"

/* Columns of TXN_COLS, in order. */
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
    C_TIMEOUT,
    C_REASONS,
    C_EMAIL,
    C_IP,
    C_DEVICE,
    C_CARD_FP,
    C_CARD_BIN,
    C_CARD_COUNTRY,
    C_SHIP_COUNTRY,
    C_RULES,
    C_DECIDED_BY,
    C_LIST_VERSIONS,
    C_PROBES,
    C_RULE_INPUTS,
    C_COUNT
};
_Static_assert(C_COUNT == TXN_NCOLS, "TXN_NCOLS is the number of TXN_COLS' columns");

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

/* A JSON column as raw JSON, or null. */
static void add_raw(cJSON *o, const char *k, const char *v)
{
    if (v)
        cJSON_AddRawToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

/* The identity fields, and in risk what the rules did (null for decisions without rules). */
static void add_identity_and_rules(cJSON *o, cJSON *risk, const PGresult *r, int row)
{
    static const struct {
        const char *name;
        int col;
    } idf[] = {{"email", C_EMAIL},
               {"ip_address", C_IP},
               {"device_id", C_DEVICE},
               {"card_fingerprint", C_CARD_FP},
               {"card_bin", C_CARD_BIN},
               {"card_country", C_CARD_COUNTRY},
               {"shipping_country", C_SHIP_COUNTRY}};
    for (size_t i = 0; i < sizeof idf / sizeof idf[0]; i++)
        add_str(o, idf[i].name, val(r, row, idf[i].col));
    add_raw(risk, "rules", val(r, row, C_RULES));
    add_str(risk, "decided_by", val(r, row, C_DECIDED_BY));
    add_raw(risk, "lists", val(r, row, C_LIST_VERSIONS));
    add_raw(risk, "list_probes", val(r, row, C_PROBES));
    add_raw(risk, "rule_inputs", val(r, row, C_RULE_INPUTS));
}

cJSON *txn_row_json(const PGresult *r, int row)
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
    /* the top-k reasons (explain.top_k), or null when explanations were off or failed */
    if (val(r, row, C_REASONS))
        cJSON_AddRawToObject(risk, "reasons", val(r, row, C_REASONS));
    else
        cJSON_AddNullToObject(risk, "reasons");
    add_identity_and_rules(o, risk, r, row);

    add_str(o, "label", val(r, row, C_LABEL));
    add_str(o, "label_source", val(r, row, C_LABEL_SRC));
    add_str(o, "labelled_at", val(r, row, C_LABELLED));
    cJSON_AddStringToObject(o, "created_at", val(r, row, C_CREATED));
    return o;
}

char *txn_row_text(const PGresult *r, int row)
{
    cJSON *o = txn_row_json(r, row);
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

const char *txn_row_id(const PGresult *r, int row)
{
    return PQgetvalue(r, row, C_ID);
}

int txn_new_id(char out[37])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10 (RFC 9562) */
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = digits[b[i] >> 4];
        *o++ = digits[b[i] & 15];
    }
    *o = '\0';
    return 0;
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

/* The filters of a list route, validated: 0, or -1 with resp filled (400 naming the argument). */
typedef struct list_filter {
    const char *user, *decision, *label, *from, *to; /* NULL = not filtered */
} list_filter;

static int list_filters(http_req *req, http_resp *resp, const char *user_id_path, list_filter *f)
{
    const char *field = NULL, *msg = NULL;
    f->user = user_id_path ? user_id_path : http_query(req, "user_id");
    f->decision = http_query(req, "decision");
    f->label = http_query(req, "label");
    f->from = http_query(req, "from");
    f->to = http_query(req, "to");
    if (f->user && !val_uuid(f->user))
        field = user_id_path ? "id" : "user_id", msg = "user id must be a UUID";
    else if (f->decision && strcmp(f->decision, "allow") && strcmp(f->decision, "review") &&
             strcmp(f->decision, "block"))
        field = "decision", msg = "'decision' must be allow, review or block";
    else if (f->label && strcmp(f->label, "fraud") && strcmp(f->label, "legit") &&
             strcmp(f->label, "none"))
        field = "label", msg = "'label' must be fraud, legit or none";
    else if ((f->from && !val_rfc3339(f->from)) || (f->to && !val_rfc3339(f->to)))
        field = f->from && !val_rfc3339(f->from) ? "from" : "to",
        msg = "'from' and 'to' must be RFC 3339 date-times";
    if (field) {
        http_problem(resp, 400, "validation_failed", field, "%s", msg);
        return -1;
    }
    return 0;
}

/* 0 when user exists, else -1 with resp filled (404 for an unknown user, 503/500). */
static int user_exists(http_req *req, http_resp *resp, db_conn *c, const char *user)
{
    PGresult *r = NULL;
    const char *uv[] = {user};
    int rc = dbreq_query(req, resp, c, "SELECT 1 FROM users WHERE id = $1", 1, uv, &r);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK && PQntuples(r) == 0)
        http_problem(resp, 404, "not_found", NULL, "no user with id %s", user);
    int ok = rc == DB_OK && PQntuples(r) > 0;
    PQclear(r);
    return ok ? 0 : -1;
}

/* Shared by the two list routes; user_id_path is the {id} of /users/{id}/transactions or NULL
 * (an unknown user of that route is a 404 rather than an empty page). */
static void list(http_req *req, http_resp *resp, const char *user_id_path)
{
    static const char *const args[] = {"user_id", "decision", "label",  "from",
                                       "to",      "limit",    "cursor", NULL};
    static const char *const user_args[] = {"decision", "label",  "from", "to",
                                            "limit",    "cursor", NULL};
    field_page pg;
    list_filter f;
    PGresult *r = NULL;
    if (field_page_args(req, resp, user_id_path ? user_args : args, &pg) ||
        list_filters(req, resp, user_id_path, &f))
        return;
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return;
    if (user_id_path && user_exists(req, resp, c, f.user)) {
        dbreq_release(req, c);
        return;
    }
    const char *vals[] = {pg.cursor_us, pg.cursor_id, pg.limit_plus_1, f.user,
                          f.decision,   f.label,      f.from,          f.to};
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

int txn_label_source_ok(const char *s)
{
    static const char *const sources[] = {
        "chargeback", "early_fraud_warning", "refund", "analyst", "customer", NULL};
    for (const char *const *p = sources; *p; p++)
        if (strcmp(*p, s) == 0)
            return 1;
    return 0;
}

int txn_label_apply(http_req *req, http_resp *resp, db_conn *c, const char *id, const char *label,
                    const char *source, char **out)
{
    PGresult *r = NULL;
    const char *vals[] = {id, label, source};
    *out = NULL;
    int rc = dbreq_query(req, resp, c,
                         "UPDATE transactions AS t SET label = $2, label_source = $3, "
                         "labelled_at = clock_timestamp() WHERE t.id = $1 RETURNING " TXN_COLS,
                         3, vals, &r);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK && PQntuples(r) == 0)
        http_problem(resp, 404, "not_found", NULL, "no transaction with id %s", id);
    else if (rc == DB_OK) {
        *out = txn_row_text(r, 0);
        if (!*out)
            http_problem(resp, 500, "internal", NULL, "out of memory");
        else if (outbox_emit(req, resp, c, "transaction.labelled", id, *out)) {
            free(*out);
            *out = NULL;
        }
    }
    PQclear(r);
    return *out ? 0 : -1;
}

/* 400 for a member of body that PATCH may not write: immutable_field for a stored one, else
 * unknown_field.  0 when every member is label or label_source. */
static int label_members(http_resp *resp, const cJSON *body)
{
    static const char *const allowed[] = {"label", "label_source", NULL};
    static const char *const stored[] = {"id",
                                         "user_id",
                                         "amount",
                                         "currency",
                                         "merchant_id",
                                         "merchant_category",
                                         "country",
                                         "channel",
                                         "occurred_at",
                                         "metadata",
                                         "features",
                                         "risk",
                                         "email",
                                         "ip_address",
                                         "device_id",
                                         "card_fingerprint",
                                         "card_bin",
                                         "card_country",
                                         "shipping_country",
                                         "labelled_at",
                                         "created_at",
                                         NULL};
    const char *other = json_unknown_member(body, allowed);
    if (!other)
        return 0;
    int known = 0;
    for (const char *const *f = stored; *f && !known; f++)
        known = strcmp(*f, other) == 0;
    if (known)
        http_problem(resp, 400, "immutable_field", other,
                     "'%s' cannot be changed: only label and label_source are writable", other);
    else
        http_problem(resp, 400, "unknown_field", other, "unknown field '%.64s'", other);
    return -1;
}

/* The label and its transaction.labelled event commit together (outbox.h). */
void txn_label(http_req *req, http_resp *resp)
{
    const char *id, *label = NULL, *source = NULL;
    cJSON *body = NULL;
    char *out = NULL;
    db_conn *c = NULL;
    if (txn_id_param(req, resp, &id) || http_body_object(req, resp, &body) ||
        label_members(resp, body))
        goto done;
    if (field_string(resp, body, "label", 16, FIELD_REQUIRED, &label, NULL) ||
        field_string(resp, body, "label_source", 32, FIELD_REQUIRED, &source, NULL))
        goto done;
    if (strcmp(label, "fraud") && strcmp(label, "legit")) {
        http_problem(resp, 400, "validation_failed", "label", "'label' must be fraud or legit");
        goto done;
    }
    if (!txn_label_source_ok(source)) {
        http_problem(resp, 400, "validation_failed", "label_source",
                     "'label_source' must be chargeback, early_fraud_warning, refund, analyst or "
                     "customer");
        goto done;
    }
    if (!(c = dbreq_acquire(req, resp)) || dbreq_begin(req, resp, c) ||
        txn_label_apply(req, resp, c, id, label, source, &out) || dbreq_commit(req, resp, c))
        goto done;
    http_raw(resp, 200, "application/json", out, strlen(out));
    out = NULL; /* the response owns it */
done:
    free(out);
    if (c)
        dbreq_release(req, c);
    cJSON_Delete(body);
}
