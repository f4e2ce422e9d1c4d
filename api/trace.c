/* trace.c - the tracer: OTEL_* configuration, request contexts, spans, the exporter thread.
 * See trace.h. */
#include "trace.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "dynbuf.h"
#include "logline.h"
#include "metrics.h"
#include "otlp.h"

#define EXPORT_BODY_MAX (16u << 20) /* bound of one export request's JSON */
#define QUEUE_MAX 65536             /* OTEL_BSP_MAX_QUEUE_SIZE bound: 65536 records, ~160 MB */
#define EXPORTER_NICE 10            /* the exporter thread's nice value */

_Static_assert(SPAN_STATE_MAX == TCTX_STATE_MAX, "a span keeps the whole bounded tracestate");
#define EXPORT_WARN_EVERY_MS 10000 /* at most one export-failure log line per this */

/* The process's tracer.  on is written once by trace_start before any request thread exists. */
static struct tracer {
    int on;
    trace_cfg cfg;
    char version[32];
    spanring ring;
    pthread_mutex_t mu; /* guards stopping; with cv, the exporter's sleep */
    pthread_cond_t cv;
    int stopping;
    pthread_t thread;
    struct curl_slist *hdrs;
} T;

/* The current request of this thread (the thread http.c runs the request's step on). */
typedef trace_request_ctx req_ctx;
static _Thread_local req_ctx tls;

int64_t trace_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int trace_enabled(void)
{
    return T.on;
}

/* ---- configuration ----------------------------------------------------------------------------
 */

static void warn(const char *detail)
{
    logline_event("warn", "tracing_config_ignored", "detail", detail);
}

/* An integer variable in [min, max]; unset or empty keeps *dst. */
static int env_num(const char *name, long long min, long long max, long long *dst, char *err,
                   size_t errlen)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return 0;
    if (cfg_parse_int(s, min, max, dst) != 0) {
        snprintf(err, errlen, "%s: must be an integer in %lld..%lld", name, min, max);
        return -1;
    }
    return 0;
}

/* The endpoint: the traces variable as is, else the base + "/v1/traces". */
static int load_endpoint(trace_cfg *c, char *err, size_t errlen)
{
    const char *t = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    const char *b = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    int n = 0;
    if (t && *t)
        n = snprintf(c->endpoint, sizeof c->endpoint, "%s", t);
    else if (b && *b) {
        size_t bl = strlen(b);
        while (bl > 0 && b[bl - 1] == '/')
            bl--;
        n = snprintf(c->endpoint, sizeof c->endpoint, "%.*s/v1/traces", (int)bl, b);
    }
    if (n < 0 || (size_t)n >= sizeof c->endpoint) {
        snprintf(err, errlen, "OTEL_EXPORTER_OTLP_ENDPOINT: longer than %zu bytes",
                 sizeof c->endpoint - 1);
        return -1;
    }
    return 0;
}

/* Protocol, sampler: the specification's "warn and use the default" cases. */
static void load_lenient(trace_cfg *c)
{
    char msg[160];
    const char *proto = getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
    if (!proto || !*proto)
        proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL");
    if (proto && *proto && strcmp(proto, "http/json") != 0) {
        snprintf(msg, sizeof msg, "OTEL_EXPORTER_OTLP_PROTOCOL=%.40s: vigil exports http/json",
                 proto);
        warn(msg);
    }
    if (tctx_sampler_parse(getenv("OTEL_TRACES_SAMPLER"), getenv("OTEL_TRACES_SAMPLER_ARG"),
                           &c->sampler, msg, sizeof msg) != 0)
        warn(msg);
}

int trace_cfg_load(trace_cfg *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    snprintf(c->service, sizeof c->service, "vigil-api");
    long long queue = 2048, batch = 512, delay = 5000, timeout = 2000;
    const char *svc = getenv("OTEL_SERVICE_NAME");
    if (svc && *svc)
        snprintf(c->service, sizeof c->service, "%s", svc);
    if (load_endpoint(c, err, errlen) != 0 ||
        env_num("OTEL_BSP_MAX_QUEUE_SIZE", 1, QUEUE_MAX, &queue, err, errlen) != 0 ||
        env_num("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1, QUEUE_MAX, &batch, err, errlen) != 0 ||
        env_num("OTEL_BSP_SCHEDULE_DELAY", 1, 3600000, &delay, err, errlen) != 0 ||
        env_num("OTEL_EXPORTER_OTLP_TIMEOUT", 1, 600000, &timeout, err, errlen) != 0 ||
        env_num("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", 1, 600000, &timeout, err, errlen) != 0)
        return -1;
    c->queue_size = (size_t)queue;
    c->batch_size = (size_t)(batch < queue ? batch : queue); /* the spec: batch <= queue */
    c->delay_ms = (int)delay;
    c->timeout_ms = (int)timeout;
    load_lenient(c);
    const char *off = getenv("OTEL_SDK_DISABLED");
    c->enabled = c->endpoint[0] && !(off && strcasecmp(off, "true") == 0);
    return 0;
}

/* ---- queueing -----------------------------------------------------------------------------------
 */

/* Copies s into the ring (never waits on the exporter); wakes the exporter when a batch is full. */
static void submit(const span_rec *s)
{
    long held = spanring_push(&T.ring, s);
    if (held < 0) {
        metrics_observe_spans(METRICS_SPAN_DROPPED_QUEUE, 1);
        return;
    }
    if ((size_t)held == T.cfg.batch_size) {
        pthread_mutex_lock(&T.mu);
        pthread_cond_signal(&T.cv);
        pthread_mutex_unlock(&T.mu);
    }
}

/* A record with the given ids and no attributes. */
static void rec_init(span_rec *s, const uint8_t trace_id[16], const uint8_t span_id[8],
                     const uint8_t parent_id[8], int kind, const char *name)
{
    memset(s, 0, offsetof(span_rec, attrs));
    memcpy(s->trace_id, trace_id, 16);
    memcpy(s->span_id, span_id, 8);
    if (parent_id)
        memcpy(s->parent_id, parent_id, 8);
    s->kind = (uint8_t)kind;
    span_set_name(s, name);
}

/* ---- requests -----------------------------------------------------------------------------------
 */

void trace_request_begin(const char *traceparent, const char *tracestate)
{
    tls.on = 0;
    logline_trace_clear();
    if (!T.on)
        return;
    tctx_parent p;
    tls.has_parent = tctx_parse_traceparent(traceparent, &p) == 0;
    tls.state[0] = '\0';
    if (tls.has_parent) {
        memcpy(tls.trace_id, p.trace_id, 16);
        memcpy(tls.parent_id, p.span_id, 8);
        tctx_bound_tracestate(tracestate, tls.state); /* W3C: only with a valid traceparent */
    } else {
        tctx_random_id(tls.trace_id, 16);
        memset(tls.parent_id, 0, 8);
    }
    tctx_random_id(tls.span_id, 8);
    tls.sampled = tctx_sample(&T.cfg.sampler, tls.has_parent ? &p : NULL, tls.trace_id);
    tls.start_ns = trace_now_ns();
    tls.on = 1;
    logline_trace_set(tls.trace_id, tls.span_id);
}

void trace_request_detach(trace_request_ctx *out)
{
    if (!tls.on) {
        out->on = 0; /* tracing off: one store, no copy */
        return;
    }
    *out = tls;
    tls.on = 0;
    logline_trace_clear();
}

void trace_request_attach(const trace_request_ctx *in)
{
    if (!in->on) {
        if (tls.on) {
            tls.on = 0;
            logline_trace_clear();
        }
        return;
    }
    tls = *in;
    logline_trace_set(tls.trace_id, tls.span_id);
}

int trace_request_traceparent(char *out)
{
    if (!tls.on)
        return 0;
    tctx_format_traceparent(out, tls.trace_id, tls.span_id, tls.sampled ? TCTX_FLAG_SAMPLED : 0);
    return 1;
}

void trace_request_end(const char *method, const char *pattern, const char *path,
                       const char *request_id, int status)
{
    if (!tls.on)
        return;
    tls.on = 0;
    logline_trace_clear();
    if (!tls.sampled)
        return;
    span_rec s;
    char name[SPAN_NAME_MAX];
    snprintf(name, sizeof name, "%.16s %s", method, pattern ? pattern : "");
    rec_init(&s, tls.trace_id, tls.span_id, tls.has_parent ? tls.parent_id : NULL, SPAN_KIND_SERVER,
             pattern ? name : method);
    memcpy(s.trace_state, tls.state, sizeof s.trace_state);
    s.start_ns = tls.start_ns;
    s.end_ns = trace_now_ns();
    span_attr_str(&s, "http.request.method", method);
    if (pattern)
        span_attr_str(&s, "http.route", pattern);
    span_attr_str(&s, "url.path", path);
    span_attr_str(&s, "url.scheme", "http");
    span_attr_int(&s, "http.response.status_code", status);
    span_attr_str(&s, "vigil.request_id", request_id);
    if (status >= 500) {
        s.status = SPAN_STATUS_ERROR;
        char code[8];
        snprintf(code, sizeof code, "%d", status);
        span_attr_str(&s, "error.type", code);
    }
    submit(&s);
}

/* ---- child spans --------------------------------------------------------------------------------
 */

int trace_span_begin(span_rec *s, const char *name, int kind)
{
    if (!tls.on || !tls.sampled)
        return 0;
    uint8_t id[8];
    tctx_random_id(id, 8);
    rec_init(s, tls.trace_id, id, tls.span_id, kind, name);
    s->start_ns = trace_now_ns();
    return 1;
}

void trace_span_end(span_rec *s, int status)
{
    s->end_ns = trace_now_ns();
    s->status = (uint8_t)status;
    submit(s);
}

int trace_wire_ctx(wire_trace_ctx *out)
{
    if (!tls.on)
        return 0;
    memcpy(out->trace_id, tls.trace_id, 16);
    tctx_random_id(out->span_id, 8);
    out->flags = tls.sampled ? TCTX_FLAG_SAMPLED : 0;
    return 1;
}

void trace_worker_spans(const wire_trace_ctx *tc, const uint8_t client_id[8], int64_t sent_ns,
                        int64_t recv_ns, uint64_t queue_ns, uint64_t compute_ns, const char *op,
                        const char *status)
{
    if (!T.on || !(tc->flags & TCTX_FLAG_SAMPLED))
        return;
    /* Clocks of one host, but measured on two sides: keep the worker inside the round trip. */
    uint64_t avail = recv_ns > sent_ns ? (uint64_t)(recv_ns - sent_ns) : 0;
    uint64_t q = queue_ns < avail ? queue_ns : avail;
    uint64_t c = compute_ns < avail - q ? compute_ns : avail - q;
    char name[SPAN_NAME_MAX];
    snprintf(name, sizeof name, "%s/%s", OTLP_HOTPATH_SERVICE, op);
    span_rec w;
    rec_init(&w, tc->trace_id, tc->span_id, client_id, SPAN_KIND_SERVER, name);
    w.service = SPAN_SVC_HOTPATH;
    w.start_ns = sent_ns + (int64_t)((avail - q - c) / 2);
    w.end_ns = w.start_ns + (int64_t)(q + c);
    span_attr_str(&w, "rpc.system", "vigil_wire");
    span_attr_str(&w, "rpc.service", OTLP_HOTPATH_SERVICE);
    span_attr_str(&w, "rpc.method", op);
    span_attr_int(&w, "vigil.hotpath.queue_wait_ns", (int64_t)queue_ns);
    span_attr_int(&w, "vigil.hotpath.compute_ns", (int64_t)compute_ns);
    span_attr_str(&w, "vigil.wire.status", status);
    w.status = strcmp(status, "ok") == 0 ? SPAN_STATUS_UNSET : SPAN_STATUS_ERROR;
    submit(&w);

    uint8_t id[8];
    tctx_random_id(id, 8);
    span_rec k;
    rec_init(&k, tc->trace_id, id, tc->span_id, SPAN_KIND_INTERNAL, "compute");
    k.service = SPAN_SVC_HOTPATH;
    k.start_ns = w.start_ns + (int64_t)q;
    k.end_ns = w.end_ns;
    span_attr_str(&k, "rpc.method", op);
    span_attr_int(&k, "vigil.hotpath.compute_ns", (int64_t)compute_ns);
    submit(&k);
}

/* ---- PostgreSQL -------------------------------------------------------------------------------
 */

/* Next SQL word at *p (letters, digits, '_', '.', '"'), skipping anything else but parentheses,
 * which move *depth.  Returns its length (0 at the end); *start points at it. */
static size_t sql_word(const char **p, int *depth, const char **start)
{
    const char *s = *p;
    for (;;) {
        while (*s && !isalnum((unsigned char)*s) && *s != '_' && *s != '"' && *s != '(' &&
               *s != ')' && *s != '\'')
            s++;
        if (*s == '(' || *s == ')') {
            *depth += *s == '(' ? 1 : -1;
            s++;
            continue;
        }
        if (*s == '\'') { /* a literal: skip it whole ('' inside stays inside) */
            for (s++; *s && !(*s == '\'' && s[1] != '\''); s += *s == '\'' ? 2 : 1)
                ;
            if (*s)
                s++;
            continue;
        }
        break;
    }
    *start = s;
    while (*s && (isalnum((unsigned char)*s) || *s == '_' || *s == '.' || *s == '"'))
        s++;
    *p = s;
    return (size_t)(s - *start);
}

static int word_is(const char *w, size_t n, const char *kw)
{
    return strlen(kw) == n && strncasecmp(w, kw, n) == 0;
}

static void copy_word(char *out, size_t cap, const char *w, size_t n, int upper)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++)
        if (w[i] != '"')
            out[k++] = upper ? (char)toupper((unsigned char)w[i]) : w[i];
    out[k] = '\0';
}

void trace_sql_summary(const char *sql, char *op, size_t opcap, char *coll, size_t collcap)
{
    static const char *const dml[] = {"SELECT", "INSERT", "UPDATE", "DELETE", NULL};
    const char *p = sql, *w, *prev = NULL, *cte = NULL; /* cte: "WITH <cte> AS (...)" */
    size_t prevn = 0, cten = 0;
    int depth = 0, found = 0, want_target = 0;
    size_t n = sql_word(&p, &depth, &w);
    op[0] = coll[0] = '\0';
    copy_word(op, opcap, w, n, 1); /* the first word, unless a DML verb follows (WITH ...) */
    for (; n; prev = w, prevn = n, n = sql_word(&p, &depth, &w)) {
        if (depth != 0)
            continue;
        if (!found) {
            if (word_is(w, n, "AS") && prev && !cte)
                cte = prev, cten = prevn;
            for (int i = 0; dml[i]; i++)
                if (word_is(w, n, dml[i])) {
                    found = 1;
                    copy_word(op, opcap, w, n, 1);
                    want_target = i == 2; /* UPDATE <table> */
                }
            continue;
        }
        if (want_target) {
            if (word_is(w, n, "ONLY"))
                continue;
            want_target = 0;
            if (cte && n == cten && strncmp(w, cte, n) == 0)
                continue; /* the query's own CTE is no table: look further */
            copy_word(coll, collcap, w, n, 0);
            return;
        } else if (word_is(w, n, "FROM") || word_is(w, n, "INTO")) {
            want_target = 1;
        }
    }
}

void trace_db_begin(trace_db *t, int64_t wait_started_ns)
{
    t->on = trace_span_begin(&t->rec, "postgresql", SPAN_KIND_CLIENT);
    if (!t->on)
        return;
    t->rec.start_ns = wait_started_ns;
    t->acquired_ns = trace_now_ns();
    t->nstmt = t->failed = 0;
    t->op[0] = t->coll[0] = t->summary[0] = t->error_type[0] = '\0';
}

void trace_db_statement(trace_db *t, const char *sql, const char *error_type)
{
    if (!t->on)
        return;
    char op[24], coll[64], piece[96];
    trace_sql_summary(sql, op, sizeof op, coll, sizeof coll);
    int control = strcmp(op, "BEGIN") == 0 || strcmp(op, "COMMIT") == 0 ||
                  strcmp(op, "ROLLBACK") == 0 || strcmp(op, "SET") == 0;
    if (!control && !t->op[0]) {
        snprintf(t->op, sizeof t->op, "%s", op);
        snprintf(t->coll, sizeof t->coll, "%s", coll);
    }
    snprintf(piece, sizeof piece, "%s%s%s%s", t->nstmt ? "; " : "", op, coll[0] ? " " : "", coll);
    size_t have = strlen(t->summary);
    if (have + strlen(piece) < sizeof t->summary)
        memcpy(t->summary + have, piece, strlen(piece) + 1);
    t->nstmt++;
    if (error_type && !t->failed) {
        t->failed = 1;
        snprintf(t->error_type, sizeof t->error_type, "%s", *error_type ? error_type : "error");
    }
}

void trace_db_end(trace_db *t)
{
    if (!t->on)
        return;
    t->on = 0;
    span_rec *s = &t->rec;
    char name[SPAN_NAME_MAX];
    snprintf(name, sizeof name, "%s%s%s", t->op[0] ? t->op : "postgresql", t->coll[0] ? " " : "",
             t->coll);
    span_set_name(s, name);
    span_attr_str(s, "db.system.name", "postgresql");
    if (t->op[0])
        span_attr_str(s, "db.operation.name", t->op);
    if (t->coll[0])
        span_attr_str(s, "db.collection.name", t->coll);
    span_attr_str(s, "db.query.summary", t->summary);
    if (t->nstmt > 1)
        span_attr_int(s, "db.operation.batch.size", t->nstmt);
    span_attr_int(s, "vigil.db.pool_wait_us", (t->acquired_ns - s->start_ns) / 1000);
    if (t->failed)
        span_attr_str(s, "error.type", t->error_type);
    trace_span_end(s, t->failed ? SPAN_STATUS_ERROR : SPAN_STATUS_UNSET);
}

/* ---- the exporter ------------------------------------------------------------------------------
 */

static size_t discard(char *ptr, size_t size, size_t nmemb, void *user)
{
    (void)ptr;
    (void)user;
    return size * nmemb;
}

/* POSTs one batch.  Returns 0 on a 2xx answer, else -1 with err. */
static int post_batch(CURL *h, const span_rec *batch, size_t n, char *err, size_t errlen)
{
    dynbuf b;
    dynbuf_init(&b, EXPORT_BODY_MAX);
    if (otlp_encode(&b, batch, n, T.cfg.service, T.version) != DYNBUF_OK) {
        dynbuf_free(&b);
        snprintf(err, errlen, "export request over %u bytes or out of memory", EXPORT_BODY_MAX);
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, b.p);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b.len);
    CURLcode cc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    dynbuf_free(&b);
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(cc));
        return -1;
    }
    if (code < 200 || code > 299) {
        snprintf(err, errlen, "collector answered HTTP %ld", code);
        return -1;
    }
    return 0;
}

/* Exports one batch and counts it; logs a failure at most every EXPORT_WARN_EVERY_MS. */
static void export_batch(CURL *h, const span_rec *batch, size_t n, int64_t *warned_ms)
{
    char err[256];
    if (post_batch(h, batch, n, err, sizeof err) == 0) {
        metrics_observe_spans(METRICS_SPAN_EXPORTED, n);
        return;
    }
    metrics_observe_spans(METRICS_SPAN_DROPPED_EXPORT, n);
    int64_t now = clock_now_ms();
    if (now - *warned_ms >= EXPORT_WARN_EVERY_MS) {
        *warned_ms = now;
        logline l;
        logline_begin(&l, "warn", "trace_export_failed");
        logline_str(&l, "endpoint", T.cfg.endpoint);
        logline_str(&l, "error", err);
        logline_u64(&l, "spans_dropped", n);
        logline_end(&l);
    }
}

/* Sleeps until a batch is full, the schedule delay passes, or the tracer stops.  Returns
 * stopping. */
static int exporter_wait(void)
{
    size_t held;
    uint64_t pushed, dropped;
    pthread_mutex_lock(&T.mu);
    spanring_counts(&T.ring, &held, &pushed, &dropped);
    if (!T.stopping && held < T.cfg.batch_size) {
        struct timespec ts = clock_abs_timespec(clock_now_ms() + T.cfg.delay_ms);
        pthread_cond_timedwait(&T.cv, &T.mu, &ts);
    }
    int stopping = T.stopping;
    pthread_mutex_unlock(&T.mu);
    return stopping;
}

static void *exporter_main(void *arg)
{
    CURL *h = arg;
    /* Below the request threads: on a busy machine the export waits, not the requests (Linux
     * applies a thread's own nice value; raising it needs no privilege). */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), EXPORTER_NICE) != 0)
        logline_event("warn", "tracing_exporter_priority", "detail", "setpriority failed");
    span_rec *batch = malloc(T.cfg.batch_size * sizeof *batch);
    int64_t warned_ms = clock_now_ms() - EXPORT_WARN_EVERY_MS;
    for (;;) {
        int stopping = exporter_wait();
        size_t n;
        /* Drain in batches: a full ring is sent at once, not one batch per delay. */
        while (batch && (n = spanring_pop(&T.ring, batch, T.cfg.batch_size)) > 0) {
            export_batch(h, batch, n, &warned_ms);
            if (n < T.cfg.batch_size || stopping) /* stopping: one last batch, not a backlog */
                break;
        }
        if (stopping)
            break;
    }
    free(batch);
    curl_easy_cleanup(h);
    return NULL;
}

int trace_start(const trace_cfg *c, const char *version, char *err, size_t errlen)
{
    if (!c->enabled)
        return 0;
    T.cfg = *c;
    snprintf(T.version, sizeof T.version, "%s", version);
    CURL *h = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(h = curl_easy_init()) ||
        !(T.hdrs = curl_slist_append(NULL, "Content-Type: application/json"))) {
        snprintf(err, errlen, "tracing: cannot initialise libcurl");
        goto fail;
    }
    curl_easy_setopt(h, CURLOPT_URL, T.cfg.endpoint);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, T.hdrs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)T.cfg.timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(T.cfg.timeout_ms < 1000 ? T.cfg.timeout_ms : 1000));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    if (spanring_init(&T.ring, T.cfg.queue_size) != 0) {
        snprintf(err, errlen, "tracing: out of memory for %zu span records", T.cfg.queue_size);
        goto fail;
    }
    pthread_mutex_init(&T.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&T.cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&T.thread, NULL, exporter_main, h) != 0) {
        snprintf(err, errlen, "tracing: cannot start the exporter thread");
        spanring_free(&T.ring);
        goto fail;
    }
    T.on = 1;
    logline l;
    logline_begin(&l, "info", "tracing_enabled");
    logline_str(&l, "endpoint", T.cfg.endpoint);
    logline_str(&l, "service", T.cfg.service);
    logline_u64(&l, "queue_size", T.cfg.queue_size);
    logline_end(&l);
    return 0;
fail:
    if (h)
        curl_easy_cleanup(h);
    return -1;
}

void trace_stop(void)
{
    if (!T.on)
        return;
    pthread_mutex_lock(&T.mu);
    T.stopping = 1;
    pthread_cond_signal(&T.cv);
    pthread_mutex_unlock(&T.mu);
    pthread_join(T.thread, NULL);
    T.on = 0;
    spanring_free(&T.ring);
    curl_slist_free_all(T.hdrs);
    T.hdrs = NULL;
}
