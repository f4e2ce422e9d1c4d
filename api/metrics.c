/* metrics.c - counters, histograms and the /metrics scrape.  See metrics.h.
 *
 * Every table is static and zero-initialised; an observation is a handful of relaxed atomic adds
 * on 64-bit counters, so concurrent scrapes see each value exactly but not a single snapshot of
 * all of them (a histogram's _count may be one ahead of its buckets for an instant), which is what
 * Prometheus clients do too.  Histogram buckets are stored per bucket and summed at scrape time. */
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "hpclient.h"
#include "router.h"
#include "wire.h"

#ifndef VIGIL_VERSION
#define VIGIL_VERSION "0.1.0"
#endif

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
#define HP_RESULT_BUSY WIRE_STATUS_MAX
#define HP_RESULT_DOWN (WIRE_STATUS_MAX + 1)
#define HP_RESULT_TIMEOUT (WIRE_STATUS_MAX + 2)
#define HP_RESULT_PROTO (WIRE_STATUS_MAX + 3)
#define HP_NRESULTS (WIRE_STATUS_MAX + 4)

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

int64_t metrics_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

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

void metrics_observe_hotpath(unsigned op, int hpc_rc, int wire_status, int64_t duration_us)
{
    size_t r;
    switch (hpc_rc) {
    case HPC_OK:
        r = wire_status >= 0 && wire_status < WIRE_STATUS_MAX ? (size_t)wire_status
                                                              : (size_t)WIRE_E_INTERNAL;
        break;
    case HPC_BUSY:
        r = HP_RESULT_BUSY;
        break;
    case HPC_TIMEOUT:
        r = HP_RESULT_TIMEOUT;
        break;
    case HPC_PROTO:
        r = HP_RESULT_PROTO;
        break;
    default:
        r = HP_RESULT_DOWN;
        break;
    }
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

/* ---- output buffer ----------------------------------------------------------------------------
 */

/* A bounded growable buffer: on overflow of METRICS_MAX_OUTPUT or OOM, err is set and every later
 * append is a no-op (checked once at the end). */
typedef struct out_buf {
    char *p;
    size_t len, cap;
    int err;
} out_buf;

static void outf(out_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void outf(out_buf *b, const char *fmt, ...)
{
    if (b->err)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->err = 1;
            return;
        }
        if (b->p && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t need = b->len + (size_t)n + 1;
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < need)
            cap *= 2;
        if (need > METRICS_MAX_OUTPUT) {
            b->err = 1;
            return;
        }
        if (cap > METRICS_MAX_OUTPUT)
            cap = METRICS_MAX_OUTPUT;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->err = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

/* A label value with \, " and newline escaped as the text format requires.  Truncates to cap. */
static const char *label_escape(const char *s, char *out, size_t cap)
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

static void family(out_buf *b, const char *name, const char *type, const char *help)
{
    outf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One histogram series: name_bucket{labels,le=...} cumulative, name_sum, name_count. */
static void histogram(out_buf *b, const char *name, const char *labels, const counter *bucket,
                      const int64_t *bounds, size_t nb, const counter *sum_us, const counter *count)
{
    uint64_t cum = 0;
    for (size_t i = 0; i < nb; i++) {
        cum += get(&bucket[i]);
        outf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, (double)bounds[i] / 1e6,
             (unsigned long long)cum);
    }
    cum += get(&bucket[nb]);
    /* _count is read after the buckets and never below their sum, so the series stays monotone
     * within one scrape even while requests finish. */
    uint64_t n = get(count);
    if (n < cum)
        n = cum;
    outf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, (unsigned long long)n);
    outf(b, "%s_sum{%s} %.6f\n", name, labels, (double)get(sum_us) / 1e6);
    outf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)n);
}

/* ---- scrape sections --------------------------------------------------------------------------
 */

static void row_labels(size_t row, char *rlabel, size_t rcap, const char **method)
{
    if (row < METRICS_MAX_ROUTES) {
        label_escape(routes_table[row].pattern, rlabel, rcap);
        *method = routes_table[row].method;
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

static void write_http(out_buf *b)
{
    char rlabel[ROUTER_MAX_PATH * 2], st[16], labels[ROUTER_MAX_PATH * 2 + 64];
    const char *method;
    size_t nroutes = routes_count < METRICS_MAX_ROUTES ? routes_count : METRICS_MAX_ROUTES;

    family(b, "vigil_http_requests_total", "counter",
           "HTTP requests answered, by route pattern, method and status.");
    for (size_t r = 0; r < NROWS; r++) {
        if (r < METRICS_MAX_ROUTES && r >= nroutes)
            continue;
        for (size_t s = 0; s <= NSTATUSES; s++) {
            uint64_t n = get(&http_cells[r][s].count);
            if (!n)
                continue;
            row_labels(r, rlabel, sizeof rlabel, &method);
            status_label(s, st, sizeof st);
            outf(b, "vigil_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} %llu\n",
                 rlabel, method, st, (unsigned long long)n);
        }
    }
    family(b, "vigil_http_request_duration_seconds", "histogram",
           "Time from the first byte of a request to the end of its response.");
    for (size_t r = 0; r < NROWS; r++) {
        if (r < METRICS_MAX_ROUTES && r >= nroutes)
            continue;
        for (size_t s = 0; s <= NSTATUSES; s++) {
            const http_cell *c = &http_cells[r][s];
            if (!get(&c->count))
                continue;
            row_labels(r, rlabel, sizeof rlabel, &method);
            status_label(s, st, sizeof st);
            snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\",status=\"%s\"", rlabel,
                     method, st);
            histogram(b, "vigil_http_request_duration_seconds", labels, c->bucket, http_bounds_us,
                      HTTP_NB, &c->sum_us, &c->count);
        }
    }
}

static void write_db(out_buf *b, const app *a)
{
    int in_use = 0, open = 0;
    unsigned long long waits = 0;
    db_pool_counts(a->db, &in_use, &open, &waits);
    family(b, "vigil_db_pool_size", "gauge",
           "Maximum PostgreSQL connections (VIGIL_DB_POOL_SIZE).");
    outf(b, "vigil_db_pool_size %d\n", a->cfg->db_pool_size);
    family(b, "vigil_db_pool_connections_open", "gauge", "PostgreSQL connections currently open.");
    outf(b, "vigil_db_pool_connections_open %d\n", open);
    family(b, "vigil_db_pool_connections_in_use", "gauge",
           "PostgreSQL connections currently handed out to requests.");
    outf(b, "vigil_db_pool_connections_in_use %d\n", in_use);
    family(b, "vigil_db_pool_waits_total", "counter",
           "Times a request had to wait for a free PostgreSQL connection.");
    outf(b, "vigil_db_pool_waits_total %llu\n", waits);
}

static const char *hp_result_name(size_t r)
{
    switch (r) {
    case HP_RESULT_BUSY:
        return "pool_busy";
    case HP_RESULT_DOWN:
        return "down";
    case HP_RESULT_TIMEOUT:
        return "timeout";
    case HP_RESULT_PROTO:
        return "protocol_error";
    default:
        return wire_status_name((int)r);
    }
}

static void write_worker_calls(out_buf *b)
{
    char labels[160], esc[64];
    family(b, "vigil_worker_calls_total", "counter",
           "Round trips to vigil-hotpath, by op and result (a wire status or a client failure).");
    for (unsigned op = 0; op < WIRE_OP_MAX; op++)
        for (size_t r = 0; r < HP_NRESULTS; r++) {
            uint64_t n = get(&hp_cells[op][r].count);
            if (!n)
                continue;
            outf(b, "vigil_worker_calls_total{op=\"%s\",result=\"%s\"} %llu\n",
                 op ? wire_op_name((int)op) : "invalid",
                 label_escape(hp_result_name(r), esc, sizeof esc), (unsigned long long)n);
        }
    family(b, "vigil_worker_call_duration_seconds", "histogram",
           "Duration of round trips to vigil-hotpath, including the wait for a pooled connection.");
    for (unsigned op = 0; op < WIRE_OP_MAX; op++)
        for (size_t r = 0; r < HP_NRESULTS; r++) {
            const hp_cell *c = &hp_cells[op][r];
            if (!get(&c->count))
                continue;
            snprintf(labels, sizeof labels, "op=\"%s\",result=\"%s\"",
                     op ? wire_op_name((int)op) : "invalid",
                     label_escape(hp_result_name(r), esc, sizeof esc));
            histogram(b, "vigil_worker_call_duration_seconds", labels, c->bucket, hp_bounds_us,
                      HP_NB, &c->sum_us, &c->count);
        }
}

/* A STATS name as a metric-name suffix: [a-zA-Z0-9_] kept, anything else becomes '_'. */
static void sanitize_name(char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
            *s = '_';
}

#define MAX_STATS 512 /* STATS entries re-exported per scrape; the rest are dropped */
#define STAT_NAME_MAX 64
#define STAT_METRIC_MAX (STAT_NAME_MAX + 16) /* room for a unit suffix grown to "_seconds" */

static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;

/* STATS names end in abbreviated units (uptime_ms, op_score_ns); Prometheus names use base units.
 * A name with one of these suffixes is exported as <stem>_seconds, its integer value printed as an
 * exact decimal of seconds (v / per_second with `decimals` digits after the point). */
static const struct stat_unit {
    const char *suffix;
    uint64_t per_second;
    int decimals;
} stat_units[] = {
    {"_ns", 1000000000u, 9},
    {"_us", 1000000u, 6},
    {"_ms", 1000u, 3},
};

/* The unit of a sanitized STATS name, or NULL when it carries none of stat_units. */
static const struct stat_unit *stat_unit_of(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof stat_units / sizeof stat_units[0]; i++) {
        size_t k = strlen(stat_units[i].suffix);
        if (n > k && strcmp(name + n - k, stat_units[i].suffix) == 0)
            return &stat_units[i];
    }
    return NULL;
}

/* Re-exports the STATS payload (u16 n, n x (str name, u64 value)) as vigil_hotpath_<name>, time
 * counters renamed to seconds (stat_units).  Names that collide with the API's own vigil_hotpath_*
 * families or repeat are skipped. */
static void write_worker_stats(out_buf *b, const uint8_t *payload, uint32_t len)
{
    static const char *const reserved[] = {"up", "info", "kernel_info"};
    static char names[MAX_STATS][STAT_METRIC_MAX]; /* guarded by stats_mu: one scrape at a time */
    wire_reader r;
    wire_reader_init(&r, payload, len);
    unsigned n = wire_get_u16(&r);
    unsigned kept = 0;
    for (unsigned i = 0; i < n && kept < MAX_STATS; i++) {
        char *name = names[kept];
        wire_get_str(&r, name, STAT_NAME_MAX);
        uint64_t v = wire_get_u64(&r);
        if (r.err)
            break;
        sanitize_name(name);
        char stat[STAT_NAME_MAX];
        snprintf(stat, sizeof stat, "%s", name);
        const struct stat_unit *unit = stat_unit_of(name);
        if (unit)
            strcpy(name + strlen(name) - strlen(unit->suffix), "_seconds");
        int skip = name[0] == '\0';
        for (size_t k = 0; !skip && k < sizeof reserved / sizeof reserved[0]; k++)
            skip = strcmp(name, reserved[k]) == 0;
        for (unsigned k = 0; !skip && k < kept; k++)
            skip = strcmp(name, names[k]) == 0;
        if (skip)
            continue;
        kept++;
        outf(b, "# HELP vigil_hotpath_%s vigil-hotpath STATS value %s%s.\n", name, stat,
             unit ? ", in seconds" : "");
        outf(b, "# TYPE vigil_hotpath_%s untyped\n", name);
        if (unit)
            outf(b, "vigil_hotpath_%s %llu.%0*llu\n", name,
                 (unsigned long long)(v / unit->per_second), unit->decimals,
                 (unsigned long long)(v % unit->per_second));
        else
            outf(b, "vigil_hotpath_%s %llu\n", name, (unsigned long long)v);
    }
}

/* Parses a HELLO answer (u16 proto, str version, u16 n, n x (u16 op, str name, str impl)). */
static void write_worker_hello(out_buf *b, const uint8_t *payload, uint32_t len)
{
    char version[64], name[64], impl[64], e1[140], e2[140];
    wire_reader r;
    wire_reader_init(&r, payload, len);
    unsigned proto = wire_get_u16(&r);
    wire_get_str(&r, version, sizeof version);
    unsigned n = wire_get_u16(&r);
    if (r.err)
        return;
    family(b, "vigil_hotpath_info", "gauge", "The worker's version and protocol, from HELLO.");
    outf(b, "vigil_hotpath_info{version=\"%s\",protocol=\"%u\"} 1\n",
         label_escape(version, e1, sizeof e1), proto);
    family(b, "vigil_hotpath_kernel_info", "gauge", "Kernels the worker registers, from HELLO.");
    for (unsigned i = 0; i < n && i < WIRE_OP_MAX; i++) {
        unsigned op = wire_get_u16(&r);
        wire_get_str(&r, name, sizeof name);
        wire_get_str(&r, impl, sizeof impl);
        if (r.err)
            break;
        outf(b, "vigil_hotpath_kernel_info{op=\"%s\",impl=\"%s\",code=\"%u\"} 1\n",
             label_escape(name, e1, sizeof e1), label_escape(impl, e2, sizeof e2), op);
    }
}

/* HELLO then STATS, each bounded by METRICS_HOTPATH_DEADLINE_MS, so a hung worker delays a scrape
 * by at most twice that. */
static void write_worker(out_buf *b, const app *a)
{
    char err[256];
    hpc_reply rep;
    int up = 0;
    int rc = hpc_call(a->hp, WIRE_OP_HELLO, NULL, 0, wire_now_ms() + METRICS_HOTPATH_DEADLINE_MS,
                      METRICS_HOTPATH_DEADLINE_MS / 2, &rep, err, sizeof err);
    if (rc == HPC_OK && rep.status == WIRE_OK) {
        up = 1;
        write_worker_hello(b, rep.payload, rep.len);
    }
    hpc_reply_free(&rep);
    family(b, "vigil_hotpath_up", "gauge",
           "1 when vigil-hotpath answered HELLO during this scrape, else 0.");
    outf(b, "vigil_hotpath_up %d\n", up);
    if (!up)
        return;
    rc = hpc_call(a->hp, WIRE_OP_STATS, NULL, 0, wire_now_ms() + METRICS_HOTPATH_DEADLINE_MS,
                  METRICS_HOTPATH_DEADLINE_MS / 2, &rep, err, sizeof err);
    if (rc == HPC_OK && rep.status == WIRE_OK) {
        pthread_mutex_lock(&stats_mu);
        write_worker_stats(b, rep.payload, rep.len);
        pthread_mutex_unlock(&stats_mu);
    }
    hpc_reply_free(&rep);
}

static void write_decisions(out_buf *b)
{
    family(b, "vigil_decisions_total", "counter",
           "Transaction decisions, by outcome; degraded=\"true\" when made by the fallback rule.");
    for (size_t i = 0; i < NDECISIONS; i++)
        for (int d = 0; d < 2; d++)
            outf(b, "vigil_decisions_total{decision=\"%s\",degraded=\"%s\"} %llu\n", decisions[i],
                 d ? "true" : "false", (unsigned long long)get(&decision_counts[i][d]));
}

void metrics_handler(http_req *req, http_resp *resp)
{
    const app *a = req->app;
    out_buf b = {0};
    family(&b, "vigil_build_info", "gauge", "Build information; the value is always 1.");
    outf(&b, "vigil_build_info{version=\"%s\"} 1\n", VIGIL_VERSION);
    write_http(&b);
    write_db(&b, a);
    if (a->hp) {
        write_worker(&b, a);
        write_worker_calls(&b);
    }
    write_decisions(&b);
    if (b.err) {
        free(b.p);
        http_problem(resp, 500, "internal", NULL, "metrics output exceeds %u bytes",
                     METRICS_MAX_OUTPUT);
        return;
    }
    http_raw(resp, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
}
