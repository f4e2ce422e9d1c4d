/* metrics.c - counters and histograms, and their Prometheus text.  See metrics.h.
 *
 * Every table is static and zero-initialised; an observation is a handful of relaxed atomic adds
 * on 64-bit counters, so concurrent scrapes see each value exactly but not a single snapshot of
 * all of them (a histogram's _count may be one ahead of its buckets for an instant), which is what
 * Prometheus clients do too.  Histogram buckets are stored per bucket and summed at scrape time. */
#include "metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* ---- fixed label sets -------------------------------------------------------------------------
 */

static const char *const methods[] = {"GET",   "HEAD",   "POST",    "PUT",
                                      "PATCH", "DELETE", "OPTIONS", "other"};
#define NMETHODS (sizeof methods / sizeof methods[0])

static const int statuses[] = {200, 201, 202, 204, 301, 304, 400, 401, 403, 404, 405, 408,
                               409, 410, 413, 415, 422, 429, 500, 501, 502, 503, 504};
#define NSTATUSES (sizeof statuses / sizeof statuses[0])
#define STATUS_OTHER NSTATUSES /* extra column: any other code, or none sent */

/* Rows: one per route of the table, then one per method for requests no route matched, then one
 * per method for routes beyond METRICS_MAX_ROUTES (never expected). */
#define ROW_UNMATCHED METRICS_MAX_ROUTES
#define ROW_OTHER (METRICS_MAX_ROUTES + NMETHODS)
#define NROWS (METRICS_MAX_ROUTES + 2 * NMETHODS)

/* Upper bounds in microseconds; +Inf is implicit. */
static const int64_t http_bounds_us[] = {500,     1000,    2500,    5000,    10000,
                                         25000,   50000,   100000,  250000,  500000,
                                         1000000, 2500000, 5000000, 10000000};
#define HTTP_NB (sizeof http_bounds_us / sizeof http_bounds_us[0])
static const int64_t hp_bounds_us[] = {50,    100,   250,   500,    1000,   2500,   5000,
                                       10000, 25000, 50000, 100000, 250000, 1000000};
#define HP_NB (sizeof hp_bounds_us / sizeof hp_bounds_us[0])

/* Worker call outcomes: the wire statuses of an answer, then the client-side failures. */
#define HP_NRESULTS (METRICS_HP_PROTO + 1)

static const char *const decisions[] = {"allow", "review", "block", "other"};
#define NDECISIONS (sizeof decisions / sizeof decisions[0])

typedef _Atomic uint64_t counter;

typedef struct http_cell {
    counter count;
    counter sum_us;
    counter bucket[HTTP_NB + 1];
} http_cell;

typedef struct hp_cell {
    counter count;
    counter sum_us;
    counter bucket[HP_NB + 1];
} hp_cell;

static http_cell http_cells[NROWS][NSTATUSES + 1];
static hp_cell hp_cells[WIRE_OP_MAX][HP_NRESULTS];
static counter decision_counts[NDECISIONS][2];
static counter span_counts[METRICS_SPAN_NRESULTS];

/* Webhooks: attempts by result, with their HTTP duration; delivered events by the time from
 * their creation (seconds to a day: retries run for days). */
static const char *const wh_results[] = {"delivered", "retrying", "failed"};
#define WH_NRESULTS (sizeof wh_results / sizeof wh_results[0])
static const int64_t wh_bounds_us[] = {
    5000,    10000,   25000,    50000,    100000,   250000,    500000,     1000000,
    2500000, 5000000, 10000000, 30000000, 60000000, 300000000, 3600000000, 86400000000};
#define WH_NB (sizeof wh_bounds_us / sizeof wh_bounds_us[0])
typedef struct wh_cell {
    counter count;
    counter sum_us;
    counter bucket[WH_NB + 1];
} wh_cell;
static wh_cell wh_attempts[WH_NRESULTS];
static wh_cell wh_latency;
static _Atomic int64_t wh_pending;
static _Atomic int64_t http_admitted; /* connections within VIGIL_MAX_CONNECTIONS (http.c) */
static counter http_refused;          /* connections answered 503 over the limit */

static void add(counter *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static uint64_t get(const counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static size_t bucket_of(const int64_t *bounds, size_t nb, int64_t us)
{
    size_t i = 0;
    while (i < nb && us > bounds[i])
        i++;
    return i; /* nb = +Inf */
}

/* ---- observations -----------------------------------------------------------------------------
 */

static size_t method_index(const char *m)
{
    for (size_t i = 0; i + 1 < NMETHODS; i++)
        if (m && strcmp(m, methods[i]) == 0)
            return i;
    return NMETHODS - 1;
}

static size_t status_index(int status)
{
    for (size_t i = 0; i < NSTATUSES; i++)
        if (statuses[i] == status)
            return i;
    return STATUS_OTHER;
}

void metrics_observe_request(int route_index, const char *method, int status, int64_t duration_us)
{
    size_t row;
    if (route_index < 0)
        row = ROW_UNMATCHED + method_index(method);
    else if (route_index >= METRICS_MAX_ROUTES)
        row = ROW_OTHER + method_index(method);
    else
        row = (size_t)route_index;
    if (duration_us < 0)
        duration_us = 0;
    http_cell *c = &http_cells[row][status_index(status)];
    add(&c->bucket[bucket_of(http_bounds_us, HTTP_NB, duration_us)], 1);
    add(&c->sum_us, (uint64_t)duration_us);
    add(&c->count, 1);
}

void metrics_observe_hotpath(unsigned op, int result, int64_t duration_us)
{
    size_t r = result >= 0 && result < HP_NRESULTS ? (size_t)result : (size_t)WIRE_E_INTERNAL;
    if (op >= WIRE_OP_MAX)
        op = 0; /* never sent by the API; op 0 is printed as "invalid" */
    if (duration_us < 0)
        duration_us = 0;
    hp_cell *c = &hp_cells[op][r];
    add(&c->bucket[bucket_of(hp_bounds_us, HP_NB, duration_us)], 1);
    add(&c->sum_us, (uint64_t)duration_us);
    add(&c->count, 1);
}

void metrics_observe_decision(const char *decision, int degraded)
{
    size_t i = 0;
    while (i + 1 < NDECISIONS && !(decision && strcmp(decision, decisions[i]) == 0))
        i++;
    add(&decision_counts[i][degraded ? 1 : 0], 1);
}

static void wh_observe(wh_cell *c, int64_t us)
{
    if (us < 0)
        us = 0;
    add(&c->bucket[bucket_of(wh_bounds_us, WH_NB, us)], 1);
    add(&c->sum_us, (uint64_t)us);
    add(&c->count, 1);
}

void metrics_observe_webhook(int result, int64_t attempt_us, int64_t latency_us)
{
    if (result < 0 || (size_t)result >= WH_NRESULTS)
        return;
    wh_observe(&wh_attempts[result], attempt_us);
    if (result == METRICS_WH_DELIVERED)
        wh_observe(&wh_latency, latency_us);
}

void metrics_set_webhook_pending(int64_t n)
{
    atomic_store_explicit(&wh_pending, n, memory_order_relaxed);
}

/* ---- text format -----------------------------------------------------------------------------
 */

/* A label value with \, " and newline escaped as the text format requires.  Truncates to cap. */
const char *metrics_label_escape(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; s && *s && o + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') {
            out[o++] = '\\';
            out[o++] = *s;
        } else if (*s == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
    return out;
}

void metrics_family(dynbuf *b, const char *name, const char *type, const char *help)
{
    dynbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One histogram series: name_bucket{labels,le=...} cumulative, name_sum, name_count. */
static void histogram(dynbuf *b, const char *name, const char *labels, const counter *bucket,
                      const int64_t *bounds, size_t nb, const counter *sum_us, const counter *count)
{
    uint64_t cum = 0;
    for (size_t i = 0; i < nb; i++) {
        cum += get(&bucket[i]);
        dynbuf_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, (double)bounds[i] / 1e6,
                      (unsigned long long)cum);
    }
    cum += get(&bucket[nb]);
    /* _count is read after the buckets and never below their sum, so the series stays monotone
     * within one scrape even while requests finish. */
    uint64_t n = get(count);
    if (n < cum)
        n = cum;
    dynbuf_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, (unsigned long long)n);
    dynbuf_printf(b, "%s_sum{%s} %.6f\n", name, labels, (double)get(sum_us) / 1e6);
    dynbuf_printf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)n);
}

/* ---- scrape sections --------------------------------------------------------------------------
 */

static void row_labels(const route *routes, size_t row, char *rlabel, size_t rcap,
                       const char **method)
{
    if (row < METRICS_MAX_ROUTES) {
        metrics_label_escape(routes[row].pattern, rlabel, rcap);
        *method = routes[row].method;
    } else if (row < ROW_OTHER) {
        snprintf(rlabel, rcap, "unmatched");
        *method = methods[row - ROW_UNMATCHED];
    } else {
        snprintf(rlabel, rcap, "other");
        *method = methods[row - ROW_OTHER];
    }
}

static void status_label(size_t s, char *out, size_t cap)
{
    if (s == STATUS_OTHER)
        snprintf(out, cap, "other");
    else
        snprintf(out, cap, "%d", statuses[s]);
}

void metrics_set_http_connections(int64_t admitted)
{
    atomic_store_explicit(&http_admitted, admitted, memory_order_relaxed);
}

void metrics_observe_http_refused(void)
{
    add(&http_refused, 1);
}

void metrics_write_http(dynbuf *b, const route *routes, size_t nroutes_all)
{
    metrics_family(b, "vigil_http_connections", "gauge",
                   "Open HTTP connections within VIGIL_MAX_CONNECTIONS.");
    dynbuf_printf(b, "vigil_http_connections %lld\n",
                  (long long)atomic_load_explicit(&http_admitted, memory_order_relaxed));
    metrics_family(b, "vigil_http_connections_refused_total", "counter",
                   "Connections over VIGIL_MAX_CONNECTIONS, answered 503 and closed.");
    dynbuf_printf(b, "vigil_http_connections_refused_total %llu\n",
                  (unsigned long long)get(&http_refused));
    char rlabel[ROUTER_MAX_PATH * 2], st[16], labels[ROUTER_MAX_PATH * 2 + 64];
    const char *method;
    size_t nroutes = nroutes_all < METRICS_MAX_ROUTES ? nroutes_all : METRICS_MAX_ROUTES;

    metrics_family(b, "vigil_http_requests_total", "counter",
                   "HTTP requests answered, by route pattern, method and status.");
    for (size_t r = 0; r < NROWS; r++) {
        if (r < METRICS_MAX_ROUTES && r >= nroutes)
            continue;
        for (size_t s = 0; s <= NSTATUSES; s++) {
            uint64_t n = get(&http_cells[r][s].count);
            if (!n)
                continue;
            row_labels(routes, r, rlabel, sizeof rlabel, &method);
            status_label(s, st, sizeof st);
            dynbuf_printf(
                b, "vigil_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} %llu\n",
                rlabel, method, st, (unsigned long long)n);
        }
    }
    metrics_family(b, "vigil_http_request_duration_seconds", "histogram",
                   "Time from the first byte of a request to the end of its response.");
    for (size_t r = 0; r < NROWS; r++) {
        if (r < METRICS_MAX_ROUTES && r >= nroutes)
            continue;
        for (size_t s = 0; s <= NSTATUSES; s++) {
            const http_cell *c = &http_cells[r][s];
            if (!get(&c->count))
                continue;
            row_labels(routes, r, rlabel, sizeof rlabel, &method);
            status_label(s, st, sizeof st);
            snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\",status=\"%s\"", rlabel,
                     method, st);
            histogram(b, "vigil_http_request_duration_seconds", labels, c->bucket, http_bounds_us,
                      HTTP_NB, &c->sum_us, &c->count);
        }
    }
}

static const char *hp_result_name(size_t r)
{
    switch (r) {
    case METRICS_HP_BUSY:
        return "pool_busy";
    case METRICS_HP_DOWN:
        return "down";
    case METRICS_HP_TIMEOUT:
        return "timeout";
    case METRICS_HP_PROTO:
        return "protocol_error";
    default:
        return wire_status_name((int)r);
    }
}

void metrics_write_worker_calls(dynbuf *b)
{
    char labels[160], esc[64];
    metrics_family(
        b, "vigil_worker_calls_total", "counter",
        "Round trips to vigil-hotpath, by op and result (a wire status or a client failure).");
    for (unsigned op = 0; op < WIRE_OP_MAX; op++)
        for (size_t r = 0; r < HP_NRESULTS; r++) {
            uint64_t n = get(&hp_cells[op][r].count);
            if (!n)
                continue;
            dynbuf_printf(b, "vigil_worker_calls_total{op=\"%s\",result=\"%s\"} %llu\n",
                          op ? wire_op_name((int)op) : "invalid",
                          metrics_label_escape(hp_result_name(r), esc, sizeof esc),
                          (unsigned long long)n);
        }
    metrics_family(
        b, "vigil_worker_call_duration_seconds", "histogram",
        "Duration of round trips to vigil-hotpath, including the wait for a pooled connection.");
    for (unsigned op = 0; op < WIRE_OP_MAX; op++)
        for (size_t r = 0; r < HP_NRESULTS; r++) {
            const hp_cell *c = &hp_cells[op][r];
            if (!get(&c->count))
                continue;
            snprintf(labels, sizeof labels, "op=\"%s\",result=\"%s\"",
                     op ? wire_op_name((int)op) : "invalid",
                     metrics_label_escape(hp_result_name(r), esc, sizeof esc));
            histogram(b, "vigil_worker_call_duration_seconds", labels, c->bucket, hp_bounds_us,
                      HP_NB, &c->sum_us, &c->count);
        }
}

void metrics_write_decisions(dynbuf *b)
{
    metrics_family(
        b, "vigil_decisions_total", "counter",
        "Transaction decisions, by outcome; degraded=\"true\" when made by the fallback rule.");
    for (size_t i = 0; i < NDECISIONS; i++)
        for (int d = 0; d < 2; d++)
            dynbuf_printf(b, "vigil_decisions_total{decision=\"%s\",degraded=\"%s\"} %llu\n",
                          decisions[i], d ? "true" : "false",
                          (unsigned long long)get(&decision_counts[i][d]));
}

void metrics_write_webhooks(dynbuf *b)
{
    char labels[64];
    metrics_family(b, "vigil_webhook_deliveries_pending", "gauge",
                   "Webhook deliveries not yet delivered nor given up, as last counted in the "
                   "database by this replica's dispatcher (all replicas share the outbox).");
    dynbuf_printf(b, "vigil_webhook_deliveries_pending %lld\n",
                  (long long)atomic_load_explicit(&wh_pending, memory_order_relaxed));
    metrics_family(b, "vigil_webhook_attempts_total", "counter",
                   "Webhook delivery attempts made by this replica, by result: delivered, "
                   "retrying (failed, retried later), failed (failed, delivery given up).");
    for (size_t i = 0; i < WH_NRESULTS; i++)
        dynbuf_printf(b, "vigil_webhook_attempts_total{result=\"%s\"} %llu\n", wh_results[i],
                      (unsigned long long)get(&wh_attempts[i].count));
    metrics_family(b, "vigil_webhook_attempt_duration_seconds", "histogram",
                   "Duration of webhook HTTP attempts, by result.");
    for (size_t i = 0; i < WH_NRESULTS; i++) {
        snprintf(labels, sizeof labels, "result=\"%s\"", wh_results[i]);
        histogram(b, "vigil_webhook_attempt_duration_seconds", labels, wh_attempts[i].bucket,
                  wh_bounds_us, WH_NB, &wh_attempts[i].sum_us, &wh_attempts[i].count);
    }
    metrics_family(b, "vigil_webhook_delivery_latency_seconds", "histogram",
                   "Time from a webhook event's creation to its successful delivery.");
    histogram(b, "vigil_webhook_delivery_latency_seconds", "event=\"any\"", wh_latency.bucket,
              wh_bounds_us, WH_NB, &wh_latency.sum_us, &wh_latency.count);
}

void metrics_observe_spans(int result, uint64_t n)
{
    if (result >= 0 && result < METRICS_SPAN_NRESULTS)
        add(&span_counts[result], n);
}

void metrics_write_trace(dynbuf *b)
{
    metrics_family(b, "vigil_trace_spans_exported_total", "counter",
                   "Spans the OTLP collector accepted (0 while tracing is off).");
    dynbuf_printf(b, "vigil_trace_spans_exported_total %llu\n",
                  (unsigned long long)get(&span_counts[METRICS_SPAN_EXPORTED]));
    metrics_family(b, "vigil_trace_spans_dropped_total", "counter",
                   "Spans dropped: the export queue was full (queue_full) or the collector did not "
                   "accept them (export_failed).");
    dynbuf_printf(b, "vigil_trace_spans_dropped_total{reason=\"queue_full\"} %llu\n",
                  (unsigned long long)get(&span_counts[METRICS_SPAN_DROPPED_QUEUE]));
    dynbuf_printf(b, "vigil_trace_spans_dropped_total{reason=\"export_failed\"} %llu\n",
                  (unsigned long long)get(&span_counts[METRICS_SPAN_DROPPED_EXPORT]));
}
