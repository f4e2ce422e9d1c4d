/* outbox.h - webhook events written in the caller's database transaction (the transactional
 * outbox): the decision, review or label that causes an event and the event itself commit or roll
 * back together, so a crash neither loses an event nor invents one.  The SQL side is migration
 * 0009's webhook_emit (event row + one delivery per enabled subscribed endpoint; nothing when no
 * endpoint subscribes) and decision_events; the dispatcher (dispatch.c) delivers.
 *
 * Event types: outbox_event_types.  Each call is one statement on the caller's connection,
 * which must be inside BEGIN; failures are answered on resp (503/500).  Thread-safe. */
#ifndef VIGIL_OUTBOX_H
#define VIGIL_OUTBOX_H

#include "db.h"
#include "http.h"

/* Every event type, NULL-terminated: decision.allow, decision.review, decision.block,
 * review.opened, review.closed, transaction.labelled. */
extern const char *const outbox_event_types[];

/* 1 when t is one of outbox_event_types. */
int outbox_type_known(const char *t);

/* Writes event type about transaction txn_id whose object is data_json (JSON text, stored as
 * sent).  Returns 0, or -1 with resp filled. */
int outbox_emit(http_req *req, http_resp *resp, db_conn *c, const char *type, const char *txn_id,
                const char *data_json);

/* What a decision adds: the decision.<decision> event and, for "review", the review (opened now)
 * and its review.opened event.  The decision event names its transaction and stores no copy of
 * it (migration 0014): the dispatcher prints the transaction as decided when it delivers.  Fills
 * *s (and v, which must live as long as *s) for the decision's commit round trip (decision.c):
 * the strings are borrowed.  An error of the statement is an unexpected one (500). */
void outbox_decision_stmt(db_stmt *s, const char *v[3], const char *txn_id, const char *decision);

#endif
