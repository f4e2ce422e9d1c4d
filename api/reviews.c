/* reviews.c - the review queue resource.  See reviews.h.  A review's JSON is built by the SQL
 * function review_json (migration 0009), the one shape of the API and of the review.* events.
 * Costs: list = one indexed range scan of limit+1 rows; claim = one or two statements; close =
 * BEGIN, UPDATE, the label and the outbox writes, COMMIT. */
#include "reviews.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbreq.h"
#include "fields.h"
#include "outbox.h"
#include "transactions.h"
#include "validate.h"

#define REVIEW_NOTE_MAX 2000

/* The ordering key of a page, per state: the queue (open, claimed) oldest first by opened_at,
 * closed reviews newest first by closed_at.  Columns: json, key in microseconds, id. */
static const char *const list_sql[2] = {
    "SELECT review_json(r)::text, (extract(epoch FROM r.opened_at) * 1000000)::bigint, r.id "
    "FROM reviews r WHERE r.state = $4 AND ($1::bigint IS NULL OR (r.opened_at, r.id) > "
    "('epoch'::timestamptz + $1::bigint * interval '1 microsecond', $2::uuid)) "
    "ORDER BY r.opened_at, r.id LIMIT $3",
    "SELECT review_json(r)::text, (extract(epoch FROM r.closed_at) * 1000000)::bigint, r.id "
    "FROM reviews r WHERE r.state = $4 AND ($1::bigint IS NULL OR (r.closed_at, r.id) < "
    "('epoch'::timestamptz + $1::bigint * interval '1 microsecond', $2::uuid)) "
    "ORDER BY r.closed_at DESC, r.id DESC LIMIT $3",
};

static cJSON *row_json(const PGresult *r, int row)
{
    return cJSON_Parse(PQgetvalue(r, row, 0));
}

/* Answers 200 with review JSON text (a column of the statement that produced it). */
static void answer(http_resp *resp, int status, const char *json)
{
    char *body = strdup(json);
    if (!body)
        http_problem(resp, 500, "internal", NULL, "out of memory");
    else
        http_raw(resp, status, "application/json", body, strlen(body));
}

void reviews_list(http_req *req, http_resp *resp)
{
    static const char *const args[] = {"state", "limit", "cursor", NULL};
    field_page pg;
    PGresult *r = NULL;
    if (field_page_args(req, resp, args, &pg))
        return;
    const char *state = http_query(req, "state") ? http_query(req, "state") : "open";
    if (strcmp(state, "open") && strcmp(state, "claimed") && strcmp(state, "closed")) {
        http_problem(resp, 400, "validation_failed", "state",
                     "'state' must be open, claimed or closed");
        return;
    }
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return;
    const char *v[] = {pg.cursor_us, pg.cursor_id, pg.limit_plus_1, state};
    int rc = dbreq_query(req, resp, c, list_sql[strcmp(state, "closed") == 0], 4, v, &r);
    dbreq_release(req, c);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK)
        http_json(resp, 200, dbreq_page(r, pg.limit, 1, 2, row_json));
    PQclear(r);
}

/* Path parameter {id} as a UUID, or 400. */
static int id_param(http_req *req, http_resp *resp, const char **id)
{
    *id = req->nparams > 0 ? req->params[0] : NULL;
    if (!*id || !val_uuid(*id)) {
        http_problem(resp, 400, "validation_failed", "id", "review id must be a UUID");
        return -1;
    }
    return 0;
}

void reviews_get(http_req *req, http_resp *resp)
{
    const char *id;
    PGresult *r = NULL;
    if (id_param(req, resp, &id) ||
        dbreq_fetch_by_id(req, resp, "SELECT review_json(r)::text FROM reviews r WHERE r.id = $1",
                          id, "review", 0, &r))
        return;
    answer(resp, 200, PQgetvalue(r, 0, 0));
    PQclear(r);
}

/* Why review id could not be claimed or closed by the caller: 404, or 409 review_closed /
 * review_claimed (by another key), or 503/500.  Always fills resp. */
static void refused(http_req *req, http_resp *resp, db_conn *c, const char *id)
{
    PGresult *r = NULL;
    const char *v[] = {id};
    int rc =
        dbreq_query(req, resp, c, "SELECT state, claimed_by FROM reviews WHERE id = $1", 1, v, &r);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK && PQntuples(r) == 0)
        http_problem(resp, 404, "not_found", NULL, "no review with id %s", id);
    else if (rc == DB_OK && strcmp(PQgetvalue(r, 0, 0), "closed") == 0)
        http_problem(resp, 409, "review_closed", NULL, "review %s is already closed", id);
    else if (rc == DB_OK)
        http_problem(resp, 409, "review_claimed", NULL, "review %s is claimed by API key %s", id,
                     PQgetvalue(r, 0, 1));
    PQclear(r);
}

/* Claims for the calling key: an open review, or one this key already claimed (idempotent; the
 * first claimed_at stays). */
void reviews_claim(http_req *req, http_resp *resp)
{
    const char *id;
    PGresult *r = NULL;
    if (id_param(req, resp, &id))
        return;
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return;
    const char *v[] = {id, req->key_id};
    int rc = dbreq_query(req, resp, c,
                         "UPDATE reviews r SET state = 'claimed', claimed_by = $2::uuid, "
                         "claimed_at = coalesce(r.claimed_at, clock_timestamp()) WHERE r.id = $1 "
                         "AND (r.state = 'open' OR (r.state = 'claimed' AND r.claimed_by = $2)) "
                         "RETURNING review_json(r)::text",
                         2, v, &r);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK && PQntuples(r) == 0)
        refused(req, resp, c, id);
    else if (rc == DB_OK)
        answer(resp, 200, PQgetvalue(r, 0, 0));
    PQclear(r);
    dbreq_release(req, c);
}

/* The close body: {"outcome": approved|refunded|fraud, "note": optional string or null}.
 * 0, or -1 with resp filled (400). */
static int close_body(http_resp *resp, const cJSON *body, const char **outcome, const char **note)
{
    static const char *const allowed[] = {"outcome", "note", NULL};
    if (field_no_unknown(resp, body, allowed) ||
        field_string(resp, body, "outcome", 16, FIELD_REQUIRED, outcome, NULL) ||
        field_string(resp, body, "note", REVIEW_NOTE_MAX, FIELD_NULLABLE, note, NULL))
        return -1;
    if (strcmp(*outcome, "approved") && strcmp(*outcome, "refunded") && strcmp(*outcome, "fraud")) {
        http_problem(resp, 400, "validation_failed", "outcome",
                     "'outcome' must be approved, refunded or fraud");
        return -1;
    }
    return 0;
}

/* The label a closing outcome gives its transaction (source analyst), or NULL for none. */
static const char *outcome_label(const char *outcome)
{
    return strcmp(outcome, "approved") == 0 ? "legit"
           : strcmp(outcome, "fraud") == 0  ? "fraud"
                                            : NULL;
}

/* Closes, labels and writes the events on c inside BEGIN.  Returns 0 with *json (malloc'd), or -1
 * with resp filled. */
static int close_on(http_req *req, http_resp *resp, db_conn *c, const char *id, const char *outcome,
                    const char *note, char **json)
{
    PGresult *r = NULL;
    char *labelled = NULL, txn[40];
    const char *v[] = {id, req->key_id, outcome, note};
    int rc = dbreq_query(
        req, resp, c,
        "UPDATE reviews r SET state = 'closed', outcome = $3, note = $4, closed_by = $2::uuid, "
        "closed_at = clock_timestamp(), claimed_by = coalesce(r.claimed_by, $2::uuid), "
        "claimed_at = coalesce(r.claimed_at, clock_timestamp()) WHERE r.id = $1 AND "
        "r.state <> 'closed' AND (r.claimed_by IS NULL OR r.claimed_by = $2) "
        "RETURNING review_json(r)::text, r.transaction_id",
        4, v, &r);
    *json = NULL;
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK && PQntuples(r) == 0)
        refused(req, resp, c, id);
    else if (rc == DB_OK) {
        snprintf(txn, sizeof txn, "%s", PQgetvalue(r, 0, 1));
        *json = strdup(PQgetvalue(r, 0, 0));
        const char *label = outcome_label(outcome);
        if (!*json)
            http_problem(resp, 500, "internal", NULL, "out of memory");
        else if (outbox_emit(req, resp, c, "review.closed", txn, *json) ||
                 (label && txn_label_apply(req, resp, c, txn, label, "analyst", &labelled))) {
            free(*json);
            *json = NULL;
        }
    }
    free(labelled);
    PQclear(r);
    return *json ? 0 : -1;
}

void reviews_close(http_req *req, http_resp *resp)
{
    const char *id, *outcome = NULL, *note = NULL;
    cJSON *body = NULL;
    char *json = NULL;
    db_conn *c = NULL;
    if (id_param(req, resp, &id) || http_body_object(req, resp, &body) ||
        close_body(resp, body, &outcome, &note))
        goto done;
    if (!(c = dbreq_acquire(req, resp)) || dbreq_begin(req, resp, c) ||
        close_on(req, resp, c, id, outcome, note, &json) || dbreq_commit(req, resp, c))
        goto done;
    http_raw(resp, 200, "application/json", json, strlen(json));
    json = NULL; /* the response owns it */
done:
    free(json);
    if (c)
        dbreq_release(req, c);
    cJSON_Delete(body);
}
