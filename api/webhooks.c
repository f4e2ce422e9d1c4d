/* webhooks.c - the webhook endpoint resource.  See webhooks.h.  An endpoint's JSON is built in SQL
 * (WH_JSON) so that every answer has one shape; the secret is added only to the create and
 * rotate-secret answers.  Costs: one statement per request (deliveries: two, the first 404s an
 * unknown endpoint), plus the URL check's name resolution on create/update. */
#include "webhooks.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "dbreq.h"
#include "fields.h"
#include "netguard.h"
#include "outbox.h"
#include "validate.h"

/* Columns: the endpoint's JSON, created_at in microseconds, id, secret. */
#define WH_COLS                                                                                    \
    "json_build_object('id', w.id, 'url', w.url, 'description', w.description, 'events', "         \
    "to_json(w.events), 'enabled', w.enabled, 'disabled_reason', w.disabled_reason, "              \
    "'consecutive_failures', w.consecutive_failures, "                                             \
    "'created_at', to_char(w.created_at AT TIME ZONE 'UTC', "                                      \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "                                                       \
    "'updated_at', to_char(w.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"  \
    ")::text, (extract(epoch FROM w.created_at) * 1000000)::bigint, w.id, w.secret"

enum { WC_JSON, WC_US, WC_ID, WC_SECRET };

static cJSON *row_json(const PGresult *r, int row)
{
    return cJSON_Parse(PQgetvalue(r, row, WC_JSON));
}

/* "whsec_" + 64 hex digits of getrandom.  0, or -1 with resp filled. */
static int new_secret(http_resp *resp, char out[71])
{
    unsigned char rnd[32];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        http_problem(resp, 500, "internal", NULL, "no random bytes for the secret");
        return -1;
    }
    memcpy(out, "whsec_", 6);
    for (int i = 0; i < 32; i++)
        snprintf(out + 6 + 2 * i, 3, "%02x", rnd[i]);
    return 0;
}

/* Answers status with the endpoint of row 0, plus its secret when with_secret. */
static void answer(http_resp *resp, int status, const PGresult *r, int with_secret)
{
    cJSON *o = row_json(r, 0);
    if (o && with_secret)
        cJSON_AddStringToObject(o, "secret", PQgetvalue(r, 0, WC_SECRET));
    if (!o)
        http_problem(resp, 500, "internal", NULL, "out of memory");
    else
        http_json(resp, status, o);
}

/* The URL under the SSRF policy: 400 (not an http(s) URL) or 422 (refused, unresolvable). */
static int check_url(http_req *req, http_resp *resp, const char *url)
{
    char why[512];
    switch (netguard_check_url(url, req->app->cfg->webhook_allowed_hosts, req->deadline_ms, why,
                               sizeof why)) {
    case NETGUARD_OK:
        return 0;
    case NETGUARD_BAD_URL:
    case NETGUARD_BAD_SCHEME:
        http_problem(resp, 400, "validation_failed", "url", "'url': %s", why);
        break;
    case NETGUARD_UNRESOLVED:
        http_problem(resp, 422, "webhook_url_unresolvable", "url", "%s", why);
        break;
    case NETGUARD_TIMEOUT: /* the resolver, not the URL: worth a retry */
        http_unavailable(resp, why);
        break;
    default:
        http_problem(resp, 422, "webhook_url_forbidden", "url", "%s", why);
    }
    return -1;
}

/* "events": 1..WEBHOOK_EVENTS_MAX distinct known types, as a PostgreSQL array literal into
 * lit[cap] ("{decision.block,review.closed}").  0 (absent: lit = ""), or -1 with resp filled. */
static int events_field(http_resp *resp, const cJSON *body, int required, char *lit, size_t cap)
{
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(body, "events");
    int n = cJSON_GetArraySize(ev);
    lit[0] = '\0';
    if (!ev && !required)
        return 0;
    if (!cJSON_IsArray(ev) || n < 1 || n > WEBHOOK_EVENTS_MAX) {
        http_problem(resp, 400, "validation_failed", "events",
                     "'events' must be an array of 1 to %d event types", WEBHOOK_EVENTS_MAX);
        return -1;
    }
    size_t len = 1;
    strcpy(lit, "{");
    for (int i = 0; i < n; i++) {
        const char *t = cJSON_GetStringValue(cJSON_GetArrayItem(ev, i));
        int dup = 0;
        for (int k = 0; k < i && t; k++)
            dup |= strcmp(t, cJSON_GetStringValue(cJSON_GetArrayItem(ev, k))) == 0;
        if (!outbox_type_known(t) || dup) {
            http_problem(resp, 400, "validation_failed", "events",
                         "'events' holds %s; known types: decision.allow, decision.review, "
                         "decision.block, review.opened, review.closed, transaction.labelled",
                         dup ? "a duplicate" : "an unknown event type");
            return -1;
        }
        len += (size_t)snprintf(lit + len, cap - len, "%s%s", i ? "," : "", t);
    }
    snprintf(lit + len, cap - len, "}");
    return 0;
}

/* Path parameter {id} as a UUID, or 400. */
static int id_param(http_req *req, http_resp *resp, const char **id)
{
    *id = req->nparams > 0 ? req->params[0] : NULL;
    if (!*id || !val_uuid(*id)) {
        http_problem(resp, 400, "validation_failed", "id", "webhook id must be a UUID");
        return -1;
    }
    return 0;
}

/* Runs one statement returning WH_COLS on a pooled connection; *r is set when it returned a
 * row, else resp is filled (404 naming id when no row; 503/500). */
static int one_row(http_req *req, http_resp *resp, const char *sql, int n, const char *const *v,
                   const char *id, PGresult **r)
{
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return -1;
    int rc = dbreq_query(req, resp, c, sql, n, v, r);
    dbreq_release(req, c);
    if (rc == DB_OK && PQntuples(*r) > 0)
        return 0;
    if (rc == DB_OK)
        http_problem(resp, 404, "not_found", NULL, "no webhook endpoint with id %s", id);
    else if (rc == DB_ERROR)
        dbreq_internal(req, resp, *r);
    PQclear(*r);
    *r = NULL;
    return -1;
}

void webhooks_create(http_req *req, http_resp *resp)
{
    static const char *const allowed[] = {"url", "events", "description", NULL};
    const char *url = NULL, *desc = NULL;
    char events[512], secret[71];
    cJSON *body = NULL;
    PGresult *r = NULL;
    if (http_body_object(req, resp, &body) || field_no_unknown(resp, body, allowed) ||
        field_string(resp, body, "url", WEBHOOK_URL_MAX, FIELD_REQUIRED, &url, NULL) ||
        events_field(resp, body, 1, events, sizeof events) ||
        field_string(resp, body, "description", WEBHOOK_DESCRIPTION_MAX, FIELD_NULLABLE, &desc,
                     NULL) ||
        check_url(req, resp, url) || new_secret(resp, secret))
        goto done;
    const char *v[] = {url, desc, events, secret};
    if (one_row(req, resp,
                "INSERT INTO webhook_endpoints AS w (url, description, events, secret) "
                "VALUES ($1, $2, $3::text[], $4) RETURNING " WH_COLS,
                4, v, "", &r))
        goto done;
    snprintf(resp->location, sizeof resp->location, "/api/v1/webhooks/%s", PQgetvalue(r, 0, WC_ID));
    answer(resp, 201, r, 1);
done:
    PQclear(r);
    cJSON_Delete(body);
}

void webhooks_list(http_req *req, http_resp *resp)
{
    static const char *const args[] = {"limit", "cursor", NULL};
    field_page pg;
    PGresult *r = NULL;
    if (field_page_args(req, resp, args, &pg))
        return;
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return;
    const char *v[] = {pg.cursor_us, pg.cursor_id, pg.limit_plus_1};
    int rc = dbreq_query(req, resp, c,
                         "SELECT " WH_COLS " FROM webhook_endpoints w WHERE ($1::bigint IS NULL "
                         "OR (w.created_at, w.id) < ('epoch'::timestamptz + $1::bigint * "
                         "interval '1 microsecond', $2::uuid)) "
                         "ORDER BY w.created_at DESC, w.id DESC LIMIT $3",
                         3, v, &r);
    dbreq_release(req, c);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK)
        http_json(resp, 200, dbreq_page(r, pg.limit, WC_US, WC_ID, row_json));
    PQclear(r);
}

void webhooks_get(http_req *req, http_resp *resp)
{
    const char *id;
    PGresult *r = NULL;
    const char *v[1];
    if (id_param(req, resp, &id))
        return;
    v[0] = id;
    if (one_row(req, resp, "SELECT " WH_COLS " FROM webhook_endpoints w WHERE w.id = $1", 1, v, id,
                &r))
        return;
    answer(resp, 200, r, 0);
    PQclear(r);
}

/* The PATCH body's members, checked: NULL = unchanged (description: desc_set says whether it is
 * written, NULL then clearing it). */
typedef struct wh_patch {
    const char *url, *desc, *enabled;
    int desc_set;
    char events[512];
} wh_patch;

static int patch_body(http_req *req, http_resp *resp, const cJSON *body, wh_patch *p)
{
    static const char *const allowed[] = {"url", "events", "description", "enabled", NULL};
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(body, "enabled");
    if (field_no_unknown(resp, body, allowed) ||
        field_string(resp, body, "url", WEBHOOK_URL_MAX, 0, &p->url, NULL) ||
        events_field(resp, body, 0, p->events, sizeof p->events) ||
        field_string(resp, body, "description", WEBHOOK_DESCRIPTION_MAX, FIELD_NULLABLE, &p->desc,
                     &p->desc_set))
        return -1;
    if (en && !cJSON_IsBool(en)) {
        http_problem(resp, 400, "validation_failed", "enabled", "'enabled' must be a boolean");
        return -1;
    }
    p->enabled = !en ? NULL : cJSON_IsTrue(en) ? "t" : "f";
    return p->url ? check_url(req, resp, p->url) : 0;
}

/* The PATCH: $1 id, $2 url, $3 events, $4 description given, $5 description, $6 enabled (NULL =
 * unchanged).  Disabling parks the pending deliveries (next_attempt_at 'infinity': the dispatcher
 * never walks them), enabling makes the parked ones due now; both in the same statement. */
#define PATCH_SQL                                                                                  \
    "WITH w AS (UPDATE webhook_endpoints w SET url = coalesce($2, w.url), "                        \
    "events = coalesce($3::text[], w.events), "                                                    \
    "description = CASE WHEN $4::boolean THEN $5 ELSE w.description END, "                         \
    "enabled = coalesce($6::boolean, w.enabled), "                                                 \
    "disabled_reason = CASE WHEN $6::boolean IS NULL THEN w.disabled_reason "                      \
    "WHEN $6::boolean THEN NULL ELSE coalesce(w.disabled_reason, 'manual') END, "                  \
    "consecutive_failures = CASE WHEN $6::boolean AND NOT w.enabled THEN 0 "                       \
    "ELSE w.consecutive_failures END, updated_at = clock_timestamp() "                             \
    "WHERE w.id = $1 RETURNING w.*), "                                                             \
    "p AS (UPDATE webhook_deliveries d SET next_attempt_at = CASE WHEN $6::boolean "               \
    "THEN clock_timestamp() ELSE 'infinity' END FROM w WHERE $6::boolean IS NOT NULL "             \
    "AND d.endpoint_id = w.id AND d.state = 'pending' "                                            \
    "AND (NOT $6::boolean OR d.next_attempt_at = 'infinity')) "                                    \
    "SELECT " WH_COLS " FROM w"

/* Disabling by hand records why; enabling clears the reason and the failure streak, so an
 * endpoint disabled for its failures gets a fresh count. */
void webhooks_update(http_req *req, http_resp *resp)
{
    const char *id;
    wh_patch p = {0};
    cJSON *body = NULL;
    PGresult *r = NULL;
    if (id_param(req, resp, &id) || http_body_object(req, resp, &body) ||
        patch_body(req, resp, body, &p))
        goto done;
    const char *v[] = {id,     p.url,    p.events[0] ? p.events : NULL, p.desc_set ? "t" : "f",
                       p.desc, p.enabled};
    if (one_row(req, resp, PATCH_SQL, 6, v, id, &r))
        goto done;
    answer(resp, 200, r, 0);
done:
    PQclear(r);
    cJSON_Delete(body);
}

/* Deletes the endpoint and, by cascade, its deliveries and their attempts. */
void webhooks_delete(http_req *req, http_resp *resp)
{
    const char *id;
    PGresult *r = NULL;
    const char *v[1];
    if (id_param(req, resp, &id))
        return;
    v[0] = id;
    if (one_row(req, resp, "DELETE FROM webhook_endpoints w WHERE w.id = $1 RETURNING " WH_COLS, 1,
                v, id, &r))
        return;
    PQclear(r);
    http_raw(resp, 204, NULL, NULL, 0);
}

/* The old secret stops signing at once: deliveries after this answer carry the new one. */
void webhooks_rotate_secret(http_req *req, http_resp *resp)
{
    const char *id;
    char secret[71];
    PGresult *r = NULL;
    if (id_param(req, resp, &id) || new_secret(resp, secret))
        return;
    const char *v[] = {id, secret};
    if (one_row(req, resp,
                "UPDATE webhook_endpoints w SET secret = $2, updated_at = clock_timestamp() "
                "WHERE w.id = $1 RETURNING " WH_COLS,
                2, v, id, &r))
        return;
    answer(resp, 200, r, 1);
    PQclear(r);
}

/* Columns: a delivery's JSON with its attempts (oldest first), created_at in microseconds, id. */
#define DELIVERY_SQL                                                                               \
    "SELECT json_build_object('id', d.id, 'event_id', d.event_id, 'event_type', e.type, "          \
    "'transaction_id', d.transaction_id, 'state', d.state, 'attempt_count', d.attempts, "          \
    "'next_attempt_at', CASE WHEN d.state = 'pending' AND d.next_attempt_at <> 'infinity' "        \
    "THEN to_char(d.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "     \
    "END, "                                                                                        \
    "'last_status', d.last_status, 'last_error', d.last_error, "                                   \
    "'created_at', to_char(d.created_at AT TIME ZONE 'UTC', "                                      \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "                                                       \
    "'delivered_at', to_char(d.delivered_at AT TIME ZONE 'UTC', "                                  \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "                                                       \
    "'attempts', (SELECT coalesce(json_agg(json_build_object('attempt', a.attempt, "               \
    "'started_at', to_char(a.started_at AT TIME ZONE 'UTC', "                                      \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'duration_ms', a.duration_ms, "                         \
    "'response_status', a.response_status, 'error', a.error) ORDER BY a.attempt), '[]'::json) "    \
    "FROM webhook_attempts a WHERE a.delivery_id = d.id))::text, "                                 \
    "(extract(epoch FROM d.created_at) * 1000000)::bigint, d.id "                                  \
    "FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id "                        \
    "WHERE d.endpoint_id = $4 AND ($5::text IS NULL OR d.state = $5) AND ($1::bigint IS NULL OR "  \
    "(d.created_at, d.id) < ('epoch'::timestamptz + $1::bigint * interval '1 microsecond', "       \
    "$2::uuid)) ORDER BY d.created_at DESC, d.id DESC LIMIT $3"

static cJSON *delivery_json(const PGresult *r, int row)
{
    return cJSON_Parse(PQgetvalue(r, row, 0));
}

/* The endpoint's deliveries, newest first, optionally of one state; 404 for an unknown endpoint. */
void webhooks_deliveries(http_req *req, http_resp *resp)
{
    static const char *const args[] = {"state", "limit", "cursor", NULL};
    const char *id, *state;
    field_page pg;
    PGresult *r = NULL;
    if (id_param(req, resp, &id) || field_page_args(req, resp, args, &pg))
        return;
    state = http_query(req, "state");
    if (state && strcmp(state, "pending") && strcmp(state, "delivered") &&
        strcmp(state, "failed")) {
        http_problem(resp, 400, "validation_failed", "state",
                     "'state' must be pending, delivered or failed");
        return;
    }
    const char *ev[] = {id};
    if (one_row(req, resp, "SELECT " WH_COLS " FROM webhook_endpoints w WHERE w.id = $1", 1, ev, id,
                &r))
        return;
    PQclear(r);
    r = NULL;
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return;
    const char *v[] = {pg.cursor_us, pg.cursor_id, pg.limit_plus_1, id, state};
    int rc = dbreq_query(req, resp, c, DELIVERY_SQL, 5, v, &r);
    dbreq_release(req, c);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK)
        http_json(resp, 200, dbreq_page(r, pg.limit, 1, 2, delivery_json));
    PQclear(r);
}
