/* metrics.h - the API's Prometheus counters: requests, worker calls, decisions, webhooks.
 *
 * Owns: fixed-size tables of counters and latency histograms, written from any thread with relaxed
 * atomics (no lock, no allocation on the observe paths) by the HTTP layer, the worker client and
 * the decision code, and their text-format series, which the /metrics handler (scrape.c) writes
 * into its page.  Includes nothing of api/ but the route type: every floor may count.
 *
 * Label sets are bounded by construction: requests are labelled by route *pattern* (an index into
 * the server's route table, "unmatched" for 404/405 answers), by method from a fixed list and by
 * status from a fixed list ("other" beyond it); worker calls by op (< WIRE_OP_MAX) and result;
 * decisions by the three outcomes of the schema plus "other".  So a client sending random paths or
 * methods cannot grow the output.
 *
 * Costs: every observe_* is O(buckets) atomic adds; the writers are O(series). */
#ifndef VIGIL_METRICS_H
#define VIGIL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "dynbuf.h"
#include "router.h"
#include "wire.h"

#define METRICS_MAX_ROUTES 64 /* routes beyond this are counted as "other" */

/* Results of a worker call that are not a wire status (those are 0..WIRE_STATUS_MAX-1). */
enum metrics_hp_result {
    METRICS_HP_BUSY = WIRE_STATUS_MAX, /* no pooled connection, or the worker had no free slot */
    METRICS_HP_DOWN,                   /* cannot connect, or the connection broke */
    METRICS_HP_TIMEOUT,                /* deadline passed */
    METRICS_HP_PROTO,                  /* not a valid response */
};

/* A request finished: route_index is the matched route's index in the server's table, or -1 when
 * no route matched.  method is the request method (any string; mapped to a fixed set), status the
 * HTTP status sent (0 if none), duration_us the time since the first byte.  Thread-safe. */
void metrics_observe_request(int route_index, const char *method, int status, int64_t duration_us);

/* A worker round trip finished: op is the wire op, result the worker's wire status or a
 * metrics_hp_result.  Thread-safe. */
void metrics_observe_hotpath(unsigned op, int result, int64_t duration_us);

/* A transaction decision was made: decision is "allow", "review" or "block" (anything else counts
 * as "other"); degraded is nonzero when it was made without the model (fallback).  Thread-safe. */
void metrics_observe_decision(const char *decision, int degraded);

/* Webhook attempt outcomes (dispatch.c): the attempt succeeded (the delivery is delivered), failed
 * and will be retried, or failed and the delivery was given up (past its retry window). */
enum metrics_webhook_result { METRICS_WH_DELIVERED, METRICS_WH_RETRYING, METRICS_WH_FAILED };

/* A webhook attempt finished: result a metrics_webhook_result, attempt_us the HTTP exchange's
 * duration, latency_us (delivered only) the time from the event's creation to its delivery.
 * Thread-safe. */
void metrics_observe_webhook(int result, int64_t attempt_us, int64_t latency_us);
/* The number of pending webhook deliveries in the database, as last counted.  Thread-safe. */
void metrics_set_webhook_pending(int64_t n);
/* The HTTP layer's connection count within the limit, and one refusal over it (http.c). */
void metrics_set_http_connections(int64_t admitted);
void metrics_observe_http_refused(void);

/* What became of finished spans (trace.c): exported, or dropped because the ring was full or the
 * export failed. */
enum metrics_span_result {
    METRICS_SPAN_EXPORTED = 0,
    METRICS_SPAN_DROPPED_QUEUE,
    METRICS_SPAN_DROPPED_EXPORT,
    METRICS_SPAN_NRESULTS
};

/* n spans met result (enum metrics_span_result).  Thread-safe. */
void metrics_observe_spans(int result, uint64_t n);

/* ---- text format (for scrape.c) ---- */

/* "# HELP name help\n# TYPE name type\n". */
void metrics_family(dynbuf *b, const char *name, const char *type, const char *help);
/* A label value with \, " and newline escaped as the text format requires, into out[cap]
 * (truncated to fit).  Returns out. */
const char *metrics_label_escape(const char *s, char *out, size_t cap);
/* vigil_http_requests_total and vigil_http_request_duration_seconds; routes label the rows. */
void metrics_write_http(dynbuf *b, const route *routes, size_t nroutes);
/* vigil_worker_calls_total and vigil_worker_call_duration_seconds. */
void metrics_write_worker_calls(dynbuf *b);
/* vigil_decisions_total. */
void metrics_write_decisions(dynbuf *b);
/* vigil_webhook_deliveries_pending, vigil_webhook_attempts_total,
 * vigil_webhook_attempt_duration_seconds, vigil_webhook_delivery_latency_seconds. */
void metrics_write_webhooks(dynbuf *b);

/* vigil_trace_spans_exported_total and vigil_trace_spans_dropped_total{reason}. */
void metrics_write_trace(dynbuf *b);

#endif
