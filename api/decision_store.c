/* decision_store.c - what a decision reads and writes besides the policy and the user: the
 * idempotency record (claim, record, expire), the transaction row (store) and its outbox events
 * (events, outbox.h).
 *
 * Idempotency: a key is scoped to the API key that sent it.  claim looks for a finished twin and
 * replays it byte for byte (or refuses it with 422 when the request differs).  Without one the
 * decision goes on, holding no lock: the record's primary key (api_key_id, key) is what lets only
 * one of two twins in flight be stored.  The later one's record INSERT fails (23505) and its
 * whole write with it: 409, and its retry replays the first.  Only 201 answers are recorded, in
 * the same database transaction as the row, so a crash leaves both or neither.  A record names
 * its transaction (migration 0013) rather than copying the answer: the replay prints the row as
 * its decision answered it (TXN_COLS_DECIDED), the same bytes, in the lookup's own statement.
 * Records live VIGIL_IDEMPOTENCY_RETENTION_H hours (>= 24): expire deletes a bounded batch on
 * about one keyed request in 64, so the table stays bounded without a background job.
 *
 * The transaction row: the INSERT is assembled from a table with one line per column naming
 * where its value comes from (store_columns), so a column and its value cannot drift apart.  Its
 * id is made here (txn_new_id), so the INSERT, the outbox call and the record go in commit's one
 * round trip; each statement is bounded by the request's deadline. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decision.h"
#include "clock.h"
#include "dbreq.h"
#include "outbox.h"
#include "transactions.h"

/* ---- claim ---------------------------------------------------------------------------------- */

/* Columns of the idempotency record lookup: the recorded transaction as its decision answered
 * it (TXN_COLS_DECIDED: all NULL without a record or for a record made before migration 0013),
 * then the record's own. */
enum { IR_HASH = TXN_NCOLS, IR_STATUS, IR_BODY };

/* Replays a recorded answer (same key, same request) or answers 422 (different request): the
 * recorded body (records before migration 0013), or the recorded transaction printed as its
 * decision answered it (the same bytes: the same columns, the same printer). */
static void replay(http_resp *resp, const PGresult *r, const char *hash)
{
    if (strcmp(PQgetvalue(r, 0, IR_HASH), hash) != 0) {
        http_problem(resp, 422, "idempotency_key_reused", NULL,
                     "this Idempotency-Key was used with a different request");
        return;
    }
    char *body = NULL;
    const char *id = NULL; /* the transaction's, for Location */
    cJSON *parsed = NULL;
    if (!PQgetisnull(r, 0, IR_BODY)) {
        size_t n = (size_t)PQgetlength(r, 0, IR_BODY);
        body = malloc(n + 1);
        if (body) {
            memcpy(body, PQgetvalue(r, 0, IR_BODY), n + 1);
            parsed = cJSON_Parse(body);
            const cJSON *i = cJSON_GetObjectItemCaseSensitive(parsed, "id");
            id = cJSON_IsString(i) ? i->valuestring : NULL;
        }
    } else if (PQgetisnull(r, 0, 0)) { /* the record's transaction is not there */
        http_problem(resp, 500, "internal", NULL,
                     "the transaction this Idempotency-Key recorded was not found");
        return;
    } else {
        body = txn_row_text(r, 0);
        id = txn_row_id(r, 0);
    }
    if (!body) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
        return;
    }
    http_raw(resp, atoi(PQgetvalue(r, 0, IR_STATUS)), "application/json", body, strlen(body));
    resp->replayed = 1;
    if (id)
        snprintf(resp->location, sizeof resp->location, "/api/v1/transactions/%s", id);
    cJSON_Delete(parsed);
}

void decision_claim_stmt(const decision_request *d, db_stmt *s, const char *v[2])
{
    v[0] = d->req->key_id;
    v[1] = d->idem_key;
    *s = (db_stmt){"SELECT " TXN_COLS_DECIDED ", k.request_hash, k.status_code, k.response_body "
                   "FROM (VALUES (1)) AS one (x) "
                   "LEFT JOIN idempotency_keys k ON k.api_key_id = $1::uuid AND k.key = $2 "
                   "LEFT JOIN transactions t ON t.id = k.transaction_id",
                   2,
                   v,
                   NULL,
                   NULL,
                   0,
                   1};
}

/* A finished twin is replayed (or refused with 422 when the request differs), so retries of a
 * completed request never see 409 however many arrive at once.  Without a record the decision
 * goes on; a twin still in flight is found by the record's primary key when the later of the two
 * commits (record: 23505, answered 409 by commit), so at most one of them is stored, and the other
 * one's retry replays it. */
int decision_stage_claim(decision_request *d)
{
    if (!d->idem_key)
        return DECISION_NEXT;
    const PGresult *r = d->head[HEAD_CLAIM];
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        dbreq_internal(d->req, d->resp, r);
        return DECISION_STOP;
    }
    if (PQgetisnull(r, 0, IR_HASH))
        return DECISION_NEXT;
    replay(d->resp, r, d->idem_hash);
    return DECISION_STOP;
}

/* ---- store ---------------------------------------------------------------------------------- */

/* The columns a decision writes, one per parameter, in parameter order ($1 = the first). */
enum store_col {
    ST_ID,
    ST_USER_ID,
    ST_AMOUNT,
    ST_CURRENCY,
    ST_AMOUNT_MAJOR,
    ST_MERCHANT_ID,
    ST_MERCHANT_CATEGORY,
    ST_COUNTRY,
    ST_CHANNEL,
    ST_OCCURRED_AT,
    ST_CLIENT_FEATURES,
    ST_METADATA,
    ST_FEATURES,
    ST_SCORE,
    ST_DECISION,
    ST_DEGRADED,
    ST_DEGRADED_REASON,
    ST_MODEL_ID,
    ST_MODEL_VERSION,
    ST_MODEL_SHA256,
    ST_CHALLENGER_MODEL_ID,
    ST_CHALLENGER_VERSION,
    ST_CHALLENGER_SHA256,
    ST_CHALLENGER_SCORE,
    ST_REVIEW_THRESHOLD,
    ST_BLOCK_THRESHOLD,
    ST_FALLBACK_DECISION,
    ST_SCORING_TIMEOUT_MS,
    ST_POLICY_VERSION,
    ST_SCORING_LATENCY_US,
    ST_REASONS,
    ST_EMAIL,
    ST_IP_ADDRESS,
    ST_DEVICE_ID,
    ST_CARD_FINGERPRINT,
    ST_CARD_BIN,
    ST_CARD_COUNTRY,
    ST_SHIPPING_COUNTRY,
    ST_RULES_MATCHED,
    ST_DECIDED_BY,
    ST_LIST_VERSIONS,
    ST_LIST_PROBES,
    ST_RULE_INPUTS,
    ST_COUNT
};

/* Column names by parameter; store_values fills the values under the same names. */
static const char *const store_columns[ST_COUNT] = {
    [ST_ID] = "id",
    [ST_USER_ID] = "user_id",
    [ST_AMOUNT] = "amount",
    [ST_CURRENCY] = "currency",
    [ST_AMOUNT_MAJOR] = "amount_major",
    [ST_MERCHANT_ID] = "merchant_id",
    [ST_MERCHANT_CATEGORY] = "merchant_category",
    [ST_COUNTRY] = "country",
    [ST_CHANNEL] = "channel",
    [ST_OCCURRED_AT] = "occurred_at",
    [ST_CLIENT_FEATURES] = "client_features",
    [ST_METADATA] = "metadata",
    [ST_FEATURES] = "features",
    [ST_SCORE] = "score",
    [ST_DECISION] = "decision",
    [ST_DEGRADED] = "degraded",
    [ST_DEGRADED_REASON] = "degraded_reason",
    [ST_MODEL_ID] = "model_id",
    [ST_MODEL_VERSION] = "model_version",
    [ST_MODEL_SHA256] = "model_sha256",
    [ST_CHALLENGER_MODEL_ID] = "challenger_model_id",
    [ST_CHALLENGER_VERSION] = "challenger_version",
    [ST_CHALLENGER_SHA256] = "challenger_sha256",
    [ST_CHALLENGER_SCORE] = "challenger_score",
    [ST_REVIEW_THRESHOLD] = "review_threshold",
    [ST_BLOCK_THRESHOLD] = "block_threshold",
    [ST_FALLBACK_DECISION] = "fallback_decision",
    [ST_SCORING_TIMEOUT_MS] = "scoring_timeout_ms",
    [ST_POLICY_VERSION] = "policy_version",
    [ST_SCORING_LATENCY_US] = "scoring_latency_us",
    [ST_REASONS] = "reasons",
    [ST_EMAIL] = "email",
    [ST_IP_ADDRESS] = "ip_address",
    [ST_DEVICE_ID] = "device_id",
    [ST_CARD_FINGERPRINT] = "card_fingerprint",
    [ST_CARD_BIN] = "card_bin",
    [ST_CARD_COUNTRY] = "card_country",
    [ST_SHIPPING_COUNTRY] = "shipping_country",
    [ST_RULES_MATCHED] = "rules_matched",
    [ST_DECIDED_BY] = "decided_by",
    [ST_LIST_VERSIONS] = "list_versions",
    [ST_LIST_PROBES] = "list_probes",
    [ST_RULE_INPUTS] = "rule_inputs",
};

/* Text forms of the numbers a row holds; store_values points into it. */
typedef struct store_text {
    char amount[32], amount_major[40], score[32], chal_score[32], model_ver[12], chal_ver[12];
    char latency[12];
} store_text;

/* The identity fields of the request and what the rules stage recorded. */
static void store_identity(const decision_request *d, const char *v[ST_COUNT])
{
    v[ST_EMAIL] = d->in.email;
    v[ST_IP_ADDRESS] = d->in.ip_address;
    v[ST_DEVICE_ID] = d->in.device_id;
    v[ST_CARD_FINGERPRINT] = d->in.card_fingerprint;
    v[ST_CARD_BIN] = d->in.card_bin;
    v[ST_CARD_COUNTRY] = d->in.card_country;
    v[ST_SHIPPING_COUNTRY] = d->in.shipping_country;
    v[ST_RULES_MATCHED] = d->rules.matched;
    v[ST_DECIDED_BY] = d->rules.decided_by[0] ? d->rules.decided_by : NULL;
    v[ST_LIST_VERSIONS] = d->rules.list_versions;
    v[ST_LIST_PROBES] = d->rules.probes;
    v[ST_RULE_INPUTS] = d->rules.inputs;
}

/* Every value by column; NULL is SQL NULL.  A model's columns are NULL when the policy names
 * none; a score is NULL unless it decided (champion) or was returned beside it (challenger). */
static void store_values(const decision_request *d, store_text *t, const char *v[ST_COUNT])
{
    const policy_rules *p = &d->policy;
    const decision_verdict *vd = &d->verdict;
    const float *score = d->scoring.score;
    int champ = p->has_model[POLICY_CHAMPION], chal = p->has_model[POLICY_CHALLENGER];
    snprintf(t->amount, sizeof t->amount, "%.0f", d->in.amount);
    snprintf(t->amount_major, sizeof t->amount_major, "%.17g", d->in.amount_major);
    snprintf(t->score, sizeof t->score, "%.9g", (double)score[POLICY_CHAMPION]);
    snprintf(t->chal_score, sizeof t->chal_score, "%.9g", (double)score[POLICY_CHALLENGER]);
    snprintf(t->model_ver, sizeof t->model_ver, "%d", p->model[POLICY_CHAMPION].version);
    snprintf(t->chal_ver, sizeof t->chal_ver, "%d", p->model[POLICY_CHALLENGER].version);
    snprintf(t->latency, sizeof t->latency, "%d", d->scoring.latency_us);
    v[ST_ID] = d->txn_id;
    v[ST_USER_ID] = d->user_id;
    v[ST_AMOUNT] = t->amount;
    v[ST_CURRENCY] = d->in.currency;
    v[ST_AMOUNT_MAJOR] = t->amount_major;
    v[ST_MERCHANT_ID] = d->in.merchant_id;
    v[ST_MERCHANT_CATEGORY] = d->in.mcc;
    v[ST_COUNTRY] = d->in.country;
    v[ST_CHANNEL] = d->in.channel;
    v[ST_OCCURRED_AT] = d->occurred_at;
    v[ST_CLIENT_FEATURES] = d->in.features_text;
    v[ST_METADATA] = d->in.metadata_text ? d->in.metadata_text : "{}";
    v[ST_FEATURES] = d->snapshot;
    v[ST_SCORE] = !vd->degraded ? t->score : NULL;
    v[ST_DECISION] = vd->decision;
    v[ST_DEGRADED] = vd->degraded ? "t" : "f";
    v[ST_DEGRADED_REASON] = vd->reason;
    v[ST_MODEL_ID] = champ ? p->model[POLICY_CHAMPION].id : NULL;
    v[ST_MODEL_VERSION] = champ ? t->model_ver : NULL;
    v[ST_MODEL_SHA256] = champ ? p->model[POLICY_CHAMPION].sha256 : NULL;
    v[ST_CHALLENGER_MODEL_ID] = chal ? p->model[POLICY_CHALLENGER].id : NULL;
    v[ST_CHALLENGER_VERSION] = chal ? t->chal_ver : NULL;
    v[ST_CHALLENGER_SHA256] = chal ? p->model[POLICY_CHALLENGER].sha256 : NULL;
    v[ST_CHALLENGER_SCORE] =
        !vd->degraded && chal && isfinite(score[POLICY_CHALLENGER]) ? t->chal_score : NULL;
    v[ST_REVIEW_THRESHOLD] = p->review;
    v[ST_BLOCK_THRESHOLD] = p->block;
    v[ST_FALLBACK_DECISION] = p->fallback;
    v[ST_SCORING_TIMEOUT_MS] = p->timeout;
    v[ST_POLICY_VERSION] = p->version;
    v[ST_SCORING_LATENCY_US] = t->latency;
    v[ST_REASONS] = !vd->degraded ? d->reasons : NULL;
    store_identity(d, v);
}

/* Appends s to buf[cap] at *len; -1 (buf unchanged) when it does not fit. */
static int append(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n >= cap)
        return -1;
    memcpy(buf + *len, s, n + 1);
    *len += n;
    return 0;
}

int decision_store_sql(char *buf, size_t cap)
{
    size_t len = 0;
    char param[16];
    int rc = append(buf, cap, &len, "INSERT INTO transactions AS t (");
    for (int i = 0; i < ST_COUNT; i++) {
        if (!store_columns[i])
            return -1; /* a column without a name: the table above has a hole */
        rc |= append(buf, cap, &len, i ? ", " : "") | append(buf, cap, &len, store_columns[i]);
    }
    rc |= append(buf, cap, &len, ") VALUES (");
    for (int i = 0; i < ST_COUNT; i++) {
        snprintf(param, sizeof param, i ? ", $%d" : "$%d", i + 1);
        rc |= append(buf, cap, &len, param);
    }
    rc |= append(buf, cap, &len, ") RETURNING " TXN_COLS);
    return rc ? -1 : ST_COUNT;
}

/* The INSERT of one decision: its text and parameters, kept from store until commit. */
struct decision_store_vals {
    char sql[4096];
    store_text t;
    const char *v[ST_COUNT];
};

/* Names the transaction and queues its INSERT first in commit's round trip: the events and the
 * idempotency record need only the id, so nothing waits for the row (decision.h). */
int decision_stage_store(decision_request *d)
{
    struct decision_store_vals *s = malloc(sizeof *s);
    if (!s) {
        http_problem(d->resp, 500, "internal", NULL, "out of memory");
        return DECISION_STOP;
    }
    d->store = s; /* freed by commit, or by decision_request_free */
    if (txn_new_id(d->txn_id) != 0) {
        http_problem(d->resp, 500, "internal", NULL, "no random bytes for the transaction id");
        return DECISION_STOP;
    }
    if (decision_store_sql(s->sql, sizeof s->sql) != ST_COUNT) {
        http_problem(d->resp, 500, "internal", NULL, "the INSERT does not fit its buffer");
        return DECISION_STOP;
    }
    store_values(d, &s->t, s->v);
    d->store_at = d->ntail;
    /* prepared: one INSERT text, always */
    d->tail[d->ntail++] = (db_stmt){s->sql, ST_COUNT, s->v, NULL, NULL, 0, 1};
    return DECISION_NEXT;
}

int decision_store_answer(decision_request *d, int rc, PGresult *r)
{
    if (rc == DB_ERROR && strcmp(db_sqlstate(r), "23503") == 0) {
        http_problem(d->resp, 422, "unknown_user", NULL, "the user was deleted meanwhile");
        return DECISION_STOP;
    }
    if (rc != DB_OK) {
        if (rc == DB_ERROR)
            dbreq_internal(d->req, d->resp, r);
        return DECISION_STOP;
    }
    d->answer = txn_row_text(r, 0);
    if (!d->answer) {
        /* Committed, but no memory to print it: as when the answer is lost on the way, a retry
         * with the same Idempotency-Key replays the decision. */
        http_problem(d->resp, 500, "internal", NULL, "out of memory");
        return DECISION_STOP;
    }
    snprintf(d->location, sizeof d->location, "/api/v1/transactions/%s", txn_row_id(r, 0));
    return DECISION_NEXT;
}

void decision_store_free(decision_request *d)
{
    free(d->store);
    d->store = NULL;
}

/* ---- events, record: statements for commit; expire, after it --------------------------------- */

/* The outbox rows of this decision (outbox.h), naming the transaction as the events' object: in
 * the decision's own database transaction, so they commit with it or not at all. */
int decision_stage_events(decision_request *d)
{
    outbox_decision_stmt(&d->tail[d->ntail], d->tail_v[d->ntail], d->txn_id, d->verdict.decision);
    d->ntail++;
    return DECISION_NEXT;
}

int decision_stage_record(decision_request *d)
{
    if (!d->idem_key)
        return DECISION_NEXT;
    const char **v = d->tail_v[d->ntail];
    d->record_at = d->ntail;
    v[0] = d->req->key_id;
    v[1] = d->idem_key;
    v[2] = d->idem_hash;
    v[3] = d->txn_id; /* the answer is the transaction: replay prints it again (migration 0013) */
    d->tail[d->ntail++] =
        (db_stmt){"INSERT INTO idempotency_keys (api_key_id, key, request_hash, status_code, "
                  "transaction_id) VALUES ($1, $2, $3, 201, $4)",
                  4,
                  v,
                  NULL,
                  NULL,
                  0,
                  1};
    return DECISION_NEXT;
}

/* ~1 request in 64 with a key also drops a batch of expired records, after its commit, on a
 * connection of its own for at most a second (its failure is ignored: a later request retries).
 * The DELETE walks idempotency_keys_created from its oldest entry and stops at the cutoff, then
 * deletes by TID: the cutoff is from now() (stable), because a volatile clock_timestamp() cannot
 * bound an index scan and made every 64th decision read the whole table (48 h of keys), and
 * `ctid IN (subquery)` would be a hash join over a read of the whole table too.  Deleting by TID is
 * right because idempotency records are only inserted and deleted, never updated: were they ever
 * updated in place, a concurrent update's new version would be deleted without created_at
 * rechecked. */
int decision_stage_expire(decision_request *d)
{
    if (!d->idem_key || (d->req->start_us & 63) != 0)
        return DECISION_NEXT;
    char hours[16], err[128];
    snprintf(hours, sizeof hours, "%d", d->req->app->cfg->idempotency_retention_h);
    const char *v[] = {hours};
    int64_t deadline = clock_now_ms() + 1000;
    if (deadline > d->req->deadline_ms)
        deadline = d->req->deadline_ms;
    db_conn *c = NULL;
    if (db_acquire(d->req->app->db, deadline, 1000, &c) != DB_OK)
        return DECISION_NEXT;
    db_exec(c,
            "DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(SELECT ctid FROM "
            "idempotency_keys WHERE created_at < now() - $1::int * interval '1 hour' ORDER BY "
            "created_at LIMIT 1000))",
            1, v, deadline, err, sizeof err);
    db_release(d->req->app->db, c);
    return DECISION_NEXT;
}
