/* scrape.c - GET /metrics: the API's counters, the pool gauges and the worker's own figures.
 * See scrape.h. */
#include "scrape.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "batchq.h"
#include "db.h"
#include "dynbuf.h"
#include "listcache.h"
#include "hpclient.h"
#include "metrics.h"
#include "scoring.h"
#include "wire.h"

#ifndef VIGIL_VERSION
#define VIGIL_VERSION "0.1.0"
#endif

/* A batch queue's two counters (batchq_counts): its batches and its jobs; 0 without a queue. */
static void write_batchq(dynbuf *b, batchq *q, const char *batches_name, const char *batches_help,
                         const char *jobs_name, const char *jobs_help)
{
    unsigned long long batches = 0, jobs = 0;
    if (q)
        batchq_counts(q, &batches, &jobs);
    metrics_family(b, batches_name, "counter", batches_help);
    dynbuf_printf(b, "%s %llu\n", batches_name, batches);
    metrics_family(b, jobs_name, "counter", jobs_help);
    dynbuf_printf(b, "%s %llu\n", jobs_name, jobs);
}

static void write_db(dynbuf *b, const app *a)
{
    int in_use = 0, open = 0;
    unsigned long long waits = 0;
    db_pool_counts(a->db, &in_use, &open, &waits);
    metrics_family(b, "vigil_db_pool_size", "gauge",
                   "Maximum PostgreSQL connections (VIGIL_DB_POOL_SIZE).");
    dynbuf_printf(b, "vigil_db_pool_size %d\n", a->cfg->db_pool_size);
    metrics_family(b, "vigil_db_pool_connections_open", "gauge",
                   "PostgreSQL connections currently open.");
    dynbuf_printf(b, "vigil_db_pool_connections_open %d\n", open);
    metrics_family(b, "vigil_db_pool_connections_in_use", "gauge",
                   "PostgreSQL connections currently handed out to requests.");
    dynbuf_printf(b, "vigil_db_pool_connections_in_use %d\n", in_use);
    metrics_family(b, "vigil_db_pool_waits_total", "counter",
                   "Times a request had to wait for a free PostgreSQL connection.");
    dynbuf_printf(b, "vigil_db_pool_waits_total %llu\n", waits);
    write_batchq(b, a->reads, "vigil_decision_read_round_trips_total",
                 "Round trips that read decisions' inputs (batchq.h: one per batch).",
                 "vigil_decision_reads_total",
                 "Decisions' reads answered without an error; with the round trips, the batch.");
    write_batchq(b, a->commits, "vigil_decision_commits_total",
                 "Database transactions that committed decisions (batchq.h: one per batch).",
                 "vigil_decisions_committed_total",
                 "Decisions committed; divided by vigil_decision_commits_total, the mean batch.");
    unsigned models = 0;
    size_t bytes = 0;
    scoring_cache_counts(a->cache, &models, &bytes);
    metrics_family(b, "vigil_model_cache_models", "gauge",
                   "Compiled models held in the API's cache (each model at most once).");
    dynbuf_printf(b, "vigil_model_cache_models %u\n", models);
    metrics_family(b, "vigil_model_cache_bytes", "gauge", "Bytes of compiled models cached.");
    dynbuf_printf(b, "vigil_model_cache_bytes %zu\n", bytes);
    size_t sets = 0, set_bytes = 0;
    if (a->lists)
        listcache_stats(a->lists, &sets, &set_bytes);
    metrics_family(b, "vigil_list_sets", "gauge",
                   "In-memory list sets held (one per list a decision or membership read used).");
    dynbuf_printf(b, "vigil_list_sets %zu\n", sets);
    metrics_family(b, "vigil_list_set_bytes", "gauge", "Bytes of the in-memory list sets.");
    dynbuf_printf(b, "vigil_list_set_bytes %zu\n", set_bytes);
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
static void write_worker_stats(dynbuf *b, const uint8_t *payload, uint32_t len)
{
    static const char *const reserved[] = {"up", "info", "kernel_info"};
    static char names[MAX_STATS][STAT_METRIC_MAX]; /* guarded by stats_mu: one scrape at a time */
    assert(pthread_mutex_trylock(&stats_mu) == EBUSY); /* contract: caller holds stats_mu */
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
        dynbuf_printf(b, "# HELP vigil_hotpath_%s vigil-hotpath STATS value %s%s.\n", name, stat,
                      unit ? ", in seconds" : "");
        dynbuf_printf(b, "# TYPE vigil_hotpath_%s untyped\n", name);
        if (unit)
            dynbuf_printf(b, "vigil_hotpath_%s %llu.%0*llu\n", name,
                          (unsigned long long)(v / unit->per_second), unit->decimals,
                          (unsigned long long)(v % unit->per_second));
        else
            dynbuf_printf(b, "vigil_hotpath_%s %llu\n", name, (unsigned long long)v);
    }
}

/* Parses a HELLO answer (u16 proto, str version, u16 n, n x (u16 op, str name, str impl)). */
static void write_worker_hello(dynbuf *b, const uint8_t *payload, uint32_t len)
{
    char version[64], name[64], impl[64], e1[140], e2[140];
    wire_reader r;
    wire_reader_init(&r, payload, len);
    unsigned proto = wire_get_u16(&r);
    wire_get_str(&r, version, sizeof version);
    unsigned n = wire_get_u16(&r);
    if (r.err)
        return;
    metrics_family(b, "vigil_hotpath_info", "gauge",
                   "The worker's version and protocol, from HELLO.");
    dynbuf_printf(b, "vigil_hotpath_info{version=\"%s\",protocol=\"%u\"} 1\n",
                  metrics_label_escape(version, e1, sizeof e1), proto);
    metrics_family(b, "vigil_hotpath_kernel_info", "gauge",
                   "Kernels the worker registers, from HELLO.");
    for (unsigned i = 0; i < n && i < WIRE_OP_MAX; i++) {
        unsigned op = wire_get_u16(&r);
        wire_get_str(&r, name, sizeof name);
        wire_get_str(&r, impl, sizeof impl);
        if (r.err)
            break;
        dynbuf_printf(b, "vigil_hotpath_kernel_info{op=\"%s\",impl=\"%s\",code=\"%u\"} 1\n",
                      metrics_label_escape(name, e1, sizeof e1),
                      metrics_label_escape(impl, e2, sizeof e2), op);
    }
}

/* HELLO then STATS, each bounded by SCRAPE_HOTPATH_DEADLINE_MS, so a hung worker delays a scrape
 * by at most twice that. */
static void write_worker(dynbuf *b, const app *a)
{
    char err[256];
    hpc_reply rep;
    int up = 0;
    int rc = hpc_call(a->hp, WIRE_OP_HELLO, NULL, 0, clock_now_ms() + SCRAPE_HOTPATH_DEADLINE_MS,
                      SCRAPE_HOTPATH_DEADLINE_MS / 2, &rep, err, sizeof err);
    if (rc == HPC_OK && rep.status == WIRE_OK) {
        up = 1;
        write_worker_hello(b, rep.payload, rep.len);
    }
    hpc_reply_free(&rep);
    metrics_family(b, "vigil_hotpath_up", "gauge",
                   "1 when vigil-hotpath answered HELLO during this scrape, else 0.");
    dynbuf_printf(b, "vigil_hotpath_up %d\n", up);
    if (!up)
        return;
    rc = hpc_call(a->hp, WIRE_OP_STATS, NULL, 0, clock_now_ms() + SCRAPE_HOTPATH_DEADLINE_MS,
                  SCRAPE_HOTPATH_DEADLINE_MS / 2, &rep, err, sizeof err);
    if (rc == HPC_OK && rep.status == WIRE_OK) {
        pthread_mutex_lock(&stats_mu);
        write_worker_stats(b, rep.payload, rep.len);
        pthread_mutex_unlock(&stats_mu);
    }
    hpc_reply_free(&rep);
}

void scrape_handler(http_req *req, http_resp *resp)
{
    const app *a = req->app;
    dynbuf b;
    dynbuf_init(&b, SCRAPE_MAX_OUTPUT);
    metrics_family(&b, "vigil_build_info", "gauge", "Build information; the value is always 1.");
    dynbuf_printf(&b, "vigil_build_info{version=\"%s\"} 1\n", VIGIL_VERSION);
    metrics_write_http(&b, req->routes, req->nroutes);
    write_db(&b, a);
    if (a->hp) {
        write_worker(&b, a);
        metrics_write_worker_calls(&b);
    }
    metrics_write_decisions(&b);
    metrics_write_webhooks(&b);
    metrics_write_trace(&b);
    size_t len;
    char *text = dynbuf_take(&b, &len); /* NULL once the output passed its bound (or OOM) */
    if (!text) {
        http_problem(resp, 500, "internal", NULL, "metrics output exceeds %u bytes",
                     SCRAPE_MAX_OUTPUT);
        return;
    }
    http_raw(resp, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}
