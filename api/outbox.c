/* outbox.c - the outbox writes of requests.  See outbox.h.  Costs: one statement each (a PL/pgSQL
 * call: one indexed probe of the endpoints when nobody subscribes; otherwise an event INSERT and
 * one delivery INSERT per subscribed endpoint). */
#include "outbox.h"

#include <string.h>

#include "dbreq.h"

const char *const outbox_event_types[] = {"decision.allow",
                                          "decision.review",
                                          "decision.block",
                                          "review.opened",
                                          "review.closed",
                                          "transaction.labelled",
                                          NULL};

int outbox_type_known(const char *t)
{
    for (const char *const *p = outbox_event_types; t && *p; p++)
        if (strcmp(*p, t) == 0)
            return 1;
    return 0;
}

/* Runs one statement whose result is not needed; 0, or -1 with resp filled. */
static int run(http_req *req, http_resp *resp, db_conn *c, const char *sql, int n,
               const char *const *v)
{
    PGresult *r = NULL;
    int rc = dbreq_query(req, resp, c, sql, n, v, &r);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    PQclear(r);
    return rc == DB_OK ? 0 : -1;
}

int outbox_emit(http_req *req, http_resp *resp, db_conn *c, const char *type, const char *txn_id,
                const char *data_json)
{
    const char *v[] = {type, txn_id, data_json};
    return run(req, resp, c, "SELECT webhook_emit($1, $2::uuid, $3::json)", 3, v);
}

void outbox_decision_stmt(db_stmt *s, const char *v[3], const char *txn_id, const char *decision)
{
    v[0] = txn_id;
    v[1] = decision;
    /* decision_events' p_data is unused since migration 0014 */
    *s = (db_stmt){"SELECT decision_events($1::uuid, $2, NULL)", 2, v, NULL, NULL, 0, 1};
}
