/* metrics.h - Prometheus metrics of vigil-api, served as GET /metrics (text format 0.0.4).
 *
 * Owns: fixed-size tables of counters and latency histograms, updated from any thread with
 * relaxed atomics (no lock, no allocation on the observe paths), and the scrape handler, which
 * adds gauges read at scrape time: the PostgreSQL pool (db_pool_counts), the worker's liveness (a
 * HELLO with a short deadline) and the worker's own counters (its STATS op, re-exported one by one
 * as vigil_hotpath_<name>).
 *
 * Label sets are bounded by construction: requests are labelled by route *pattern* (an index into
 * routes_table, "unmatched" for 404/405 answers), by method from a fixed list and by status from a
 * fixed list ("other" beyond it); worker calls by op (< WIRE_OP_MAX) and outcome; decisions by the
 * three outcomes of the schema plus "other".  So a client sending random paths or methods cannot
 * grow the output.
 *
 * Costs: every observe_* is O(buckets) atomic adds; a scrape is O(series) plus two worker round
 * trips bounded by METRICS_HOTPATH_DEADLINE_MS, and its output by METRICS_MAX_OUTPUT bytes.
 * /metrics needs no key: restrict it at the network (see docker/README.md). */
#ifndef VIGIL_METRICS_H
#define VIGIL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"

#define METRICS_MAX_ROUTES 64 /* routes beyond this are counted as "other" */
#define METRICS_HOTPATH_DEADLINE_MS 300
#define METRICS_MAX_OUTPUT (1u << 20)

/* Monotonic clock in microseconds, for the durations passed below.  Thread-safe. */
int64_t metrics_now_us(void);

/* A request finished: route_index is the matched route's index in routes_table, or -1 when no
 * route matched.  method is the request method (any string; mapped to a fixed set), status the
 * HTTP status sent (0 if none), duration_us the time since the first byte.  Thread-safe. */
void metrics_observe_request(int route_index, const char *method, int status, int64_t duration_us);

/* A worker round trip finished (called by hpc_call): op is the wire op, hpc_rc the hpc_status,
 * wire_status the worker's answer when hpc_rc is HPC_OK.  Thread-safe. */
void metrics_observe_hotpath(unsigned op, int hpc_rc, int wire_status, int64_t duration_us);

/* A transaction decision was made: decision is "allow", "review" or "block" (anything else counts
 * as "other"); degraded is nonzero when it was made without the model (fallback).  Thread-safe. */
void metrics_observe_decision(const char *decision, int degraded);

/* GET /metrics.  No authentication (route scope SCOPE_NONE). */
void metrics_handler(http_req *req, http_resp *resp);

#endif
