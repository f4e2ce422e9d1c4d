/* transactions.h - stored transactions: the columns and JSON shape every answer about one uses,
 * and the handlers of GET/PATCH /api/v1/transactions[/{id}] and /api/v1/users/{id}/transactions.
 * POST /api/v1/transactions (a decision) is decision.h's. */
#ifndef VIGIL_TRANSACTIONS_H
#define VIGIL_TRANSACTIONS_H

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "db.h"
#include "http.h"

/* Everything a stored transaction is returned with, for a transactions table aliased t (SELECT
 * or RETURNING); txn_row_json reads these columns.  TXN_COLS_DECIDED is the same list with the
 * label's three columns NULL: the transaction as its decision answered it (the label is the only
 * thing that changes a stored transaction), byte for byte once printed. */
#define TXN_COLS_HEAD                                                                              \
    "t.id, t.user_id, t.amount, t.currency, t.merchant_id, t.merchant_category, t.country, "       \
    "t.channel, to_char(t.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "  \
    "t.metadata::text, t.features::text, t.score, t.decision, t.degraded, t.degraded_reason, "     \
    "t.model_id, t.model_version, t.challenger_model_id, t.challenger_version, "                   \
    "t.challenger_score, t.review_threshold, t.block_threshold, t.fallback_decision, "             \
    "t.policy_version, t.scoring_latency_us, "
#define TXN_COLS_LABEL                                                                             \
    "t.label, t.label_source, "                                                                    \
    "to_char(t.labelled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
#define TXN_COLS_TAIL                                                                              \
    "to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "              \
    "(extract(epoch FROM t.created_at) * 1000000)::bigint, t.model_sha256, t.scoring_timeout_ms, " \
    "t.reasons::text, t.email, t.ip_address, t.device_id, t.card_fingerprint, t.card_bin, "        \
    "t.card_country, t.shipping_country, t.rules_matched::text, t.decided_by, "                    \
    "t.list_versions::text, t.list_probes::text, t.rule_inputs::text"
#define TXN_COLS TXN_COLS_HEAD TXN_COLS_LABEL TXN_COLS_TAIL
#define TXN_COLS_DECIDED TXN_COLS_HEAD "NULL::text, NULL::text, NULL::text, " TXN_COLS_TAIL
/* How many columns TXN_COLS (and TXN_COLS_DECIDED) are. */
#define TXN_NCOLS 45

/* The API's JSON of row `row` of a TXN_COLS result.  Caller deletes it; NULL when out of memory. */
cJSON *txn_row_json(const PGresult *r, int row);
/* txn_row_json printed: the answer's bytes (malloc'd; caller frees), NULL when out of memory. */
char *txn_row_text(const PGresult *r, int row);
/* The id (UUID text) of row `row` of a TXN_COLS result; points into r. */
const char *txn_row_id(const PGresult *r, int row);
/* A new transaction id: a random (version 4) UUID in canonical text form, as gen_random_uuid()
 * makes them, from getrandom.  0, or -1 when the kernel gave no random bytes (out untouched). */
int txn_new_id(char out[37]);

/* 1 when s is a label source: chargeback, early_fraud_warning, refund, analyst or customer. */
int txn_label_source_ok(const char *s);

void txn_get(http_req *req, http_resp *resp);
void txn_list(http_req *req, http_resp *resp);
void txn_list_for_user(http_req *req, http_resp *resp);
void txn_label(http_req *req, http_resp *resp);

/* Labels transaction id (label fraud|legit, source chargeback|analyst|customer, both checked by
 * the caller) on c, inside the caller's BEGIN, and writes its transaction.labelled event in the
 * same transaction.  Returns 0 with *out the labelled transaction's JSON (malloc'd, caller frees),
 * or -1 with resp filled (404 for an unknown id, 503/500) and *out NULL. */
int txn_label_apply(http_req *req, http_resp *resp, db_conn *c, const char *id, const char *label,
                    const char *source, char **out);

#endif
