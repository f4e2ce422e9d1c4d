/* e2e_trace.c - end-to-end tests of tracing (issue 16) against a real Jaeger on loopback.
 *
 * Jaeger v1.76's binary (build/jaeger/jaeger, built by `make deps` from the Go module proxy;
 * VIGIL_JAEGER overrides the path) runs with OTLP/HTTP, the query API and in-memory storage on
 * free loopback ports (a config file written here).  vigil-api exports to it
 * (OTEL_EXPORTER_OTLP_ENDPOINT).  Checked:
 *   - a decision sent with a known traceparent appears in Jaeger's query API
 *     (GET /api/traces/{trace_id}): the server span is the caller's span's child, the PostgreSQL
 *     spans (no parameter value in any attribute) and the worker client spans under it, the
 *     worker's own span (service vigil-hotpath) under its client span with compute > 0, and every
 *     child inside its parent's time; the response's traceparent names the server span; the
 *     request's log lines in both processes carry the trace id;
 *   - an invalid traceparent starts a new trace, an unsampled one is honoured (parent-based);
 *   - with Jaeger stopped requests keep succeeding and vigil_trace_spans_dropped_total grows;
 *   - a collector that accepts and never answers: requests still succeed, the bounded queue drops
 *     (reason queue_full);
 *   - OTEL_SDK_DISABLED=true with an endpoint set: no trace context at all.
 * Expected values come from the request sent (ids, route, status), never from vigil's output. */
#include <check.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "assert.h"
#include "fixtures_io.h"
#include "harness.h"

static h_env E;
static pid_t jaeger_pid;
static int otlp_port, query_port;
static char endpoint_env[128];

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- Jaeger ---------------------------------------------------------------------------------- */

static size_t collect(char *p, size_t size, size_t n, void *user)
{
    char **buf = user;
    size_t have = *buf ? strlen(*buf) : 0, add = size * n;
    char *nb = realloc(*buf, have + add + 1);
    if (!nb)
        return 0;
    memcpy(nb + have, p, add);
    nb[have + add] = '\0';
    *buf = nb;
    return add;
}

/* GET http://127.0.0.1:query_port<path>: the HTTP status (0 when nothing answered); the body
 * (caller frees) into *body. */
static long jaeger_get(const char *path, char **body)
{
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", query_port, path);
    *body = NULL;
    CURL *h = curl_easy_init();
    ck_assert_ptr_nonnull(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    long code = 0;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    return code;
}

static const char *jaeger_path(void)
{
    const char *p = getenv("VIGIL_JAEGER");
    return p && *p ? p : "build/jaeger/jaeger";
}

/* Writes the config and starts Jaeger; waits until its query API answers. */
static void jaeger_start(void)
{
    const char *bin = jaeger_path();
    ck_assert_msg(access(bin, X_OK) == 0, "%s missing: `make deps` builds Jaeger v1.76", bin);
    char cfg[400], arg[420];
    snprintf(cfg, sizeof cfg, "%s/jaeger.yaml", E.dir);
    FILE *f = fopen(cfg, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "service:\n"
            "  extensions: [jaeger_storage, jaeger_query]\n"
            "  pipelines:\n"
            "    traces:\n"
            "      receivers: [otlp]\n"
            "      processors: [batch]\n"
            "      exporters: [jaeger_storage_exporter]\n"
            "  telemetry:\n"
            "    metrics:\n"
            "      level: none\n"
            "    logs:\n"
            "      level: warn\n"
            "extensions:\n"
            "  jaeger_query:\n"
            "    storage:\n"
            "      traces: mem\n"
            "    http:\n"
            "      endpoint: 127.0.0.1:%d\n"
            "    grpc:\n"
            "      endpoint: 127.0.0.1:%d\n"
            "  jaeger_storage:\n"
            "    backends:\n"
            "      mem:\n"
            "        memory:\n"
            "          max_traces: 10000\n"
            "receivers:\n"
            "  otlp:\n"
            "    protocols:\n"
            "      http:\n"
            "        endpoint: 127.0.0.1:%d\n"
            "processors:\n"
            "  batch:\n"
            "    timeout: 100ms\n"
            "exporters:\n"
            "  jaeger_storage_exporter:\n"
            "    trace_storage: mem\n",
            query_port, h_free_port(), otlp_port);
    fclose(f);
    snprintf(arg, sizeof arg, "--config=%s", cfg);
    const char *argv[] = {bin, arg, NULL};
    jaeger_pid = h_spawn(&E, argv, NULL, "jaeger.log");
    ck_assert_int_gt(jaeger_pid, 0);
    for (int i = 0; i < 600; i++) {
        char *body;
        long code = jaeger_get("/api/services", &body);
        free(body);
        if (code == 200)
            return;
        ck_assert_msg(waitpid(jaeger_pid, NULL, WNOHANG) == 0, "jaeger exited at start");
        sleep_ms(100);
    }
    h_dump_log(&E, "jaeger.log");
    ck_abort_msg("jaeger's query API did not answer within 60 s");
}

static void jaeger_stop(void)
{
    if (jaeger_pid > 0) {
        kill(jaeger_pid, SIGTERM);
        if (h_wait(jaeger_pid, 10000) < 0)
            kill(jaeger_pid, SIGKILL);
        jaeger_pid = 0;
    }
}

static void env_up(void)
{
    otlp_port = h_free_port();
    query_port = h_free_port();
    snprintf(endpoint_env, sizeof endpoint_env, "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:%d",
             otlp_port);
    static const char *env[8];
    env[0] = endpoint_env;
    env[1] = "OTEL_BSP_SCHEDULE_DELAY=100";
    env[2] = "OTEL_TRACES_SAMPLER=parentbased_always_on";
    env[3] = NULL;
    e2e_env_up(&E, env);
    jaeger_start();
}

static void env_down(void)
{
    jaeger_stop();
    e2e_env_down(&E);
}

/* ---- helpers --------------------------------------------------------------------------------- */

/* A fresh random id of n bytes as lowercase hex into out[2n + 1]. */
static void random_hex(char *out, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    FILE *f = fopen("/dev/urandom", "rb");
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < n; i++) {
        int c = fgetc(f);
        out[2 * i] = hx[(c >> 4) & 15];
        out[2 * i + 1] = hx[c & 15];
    }
    fclose(f);
    out[2 * n] = '\0';
    if (out[0] == '0') /* never all zero */
        out[0] = '1';
}

static const cJSON *jget(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* The value of tag key of a Jaeger span, or NULL. */
static const cJSON *tag(const cJSON *span, const char *key)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, jget(span, "tags"))
    {
        if (strcmp(cJSON_GetStringValue(jget(t, "key")), key) == 0)
            return jget(t, "value");
    }
    return NULL;
}

static const char *tag_str(const cJSON *span, const char *key)
{
    return cJSON_GetStringValue(tag(span, key));
}

/* The CHILD_OF parent's span id, or NULL. */
static const char *parent_of(const cJSON *span)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, jget(span, "references"))
    {
        if (strcmp(cJSON_GetStringValue(jget(r, "refType")), "CHILD_OF") == 0)
            return cJSON_GetStringValue(jget(r, "spanID"));
    }
    return NULL;
}

static const char *service_of(const cJSON *trace, const cJSON *span)
{
    const cJSON *p = jget(jget(trace, "processes"), cJSON_GetStringValue(jget(span, "processID")));
    return cJSON_GetStringValue(jget(p, "serviceName"));
}

static const cJSON *span_by_id(const cJSON *trace, const char *id)
{
    const cJSON *s;
    cJSON_ArrayForEach(s, jget(trace, "spans"))
    {
        if (id && strcmp(cJSON_GetStringValue(jget(s, "spanID")), id) == 0)
            return s;
    }
    return NULL;
}

/* Polls Jaeger until the trace holds a span named op (NULL: any) of service svc (up to 20 s).
 * Returns the parsed answer (caller deletes) and *trace, its one trace. */
static cJSON *wait_trace(const char *tid, const char *svc, const char *op, const cJSON **trace)
{
    char path[128];
    snprintf(path, sizeof path, "/api/traces/%s", tid);
    for (int i = 0; i < 200; i++) {
        char *body;
        long code = jaeger_get(path, &body);
        cJSON *doc = code == 200 && body ? cJSON_Parse(body) : NULL;
        free(body);
        const cJSON *t = cJSON_GetArrayItem(jget(doc, "data"), 0), *s;
        cJSON_ArrayForEach(s, jget(t, "spans"))
        {
            if ((!op || strcmp(cJSON_GetStringValue(jget(s, "operationName")), op) == 0) &&
                strcmp(service_of(t, s), svc) == 0) {
                *trace = t;
                return doc;
            }
        }
        cJSON_Delete(doc);
        sleep_ms(100);
    }
    ck_abort_msg("trace %s: no span %s of %s in Jaeger within 20 s", tid, op, svc);
    return NULL;
}

/* Uploads the demo model and makes it the policy's champion; creates a user (id into uid). */
static void decision_setup(char uid[37])
{
    size_t len;
    char *txt = fx_slurp("api/demo/demo_model.json", &len);
    ck_assert_msg(txt != NULL, "cannot read api/demo/demo_model.json (run from the repo root)");
    h_resp r;
    ck_assert_int_eq(h_http(&E, "POST", "/api/v1/models?name=demo", E.key, "application/json", txt,
                            len, NULL, &r),
                     0);
    free(txt);
    ck_assert_msg(r.status == 201, "upload: %ld %s", r.status, r.body);
    char body[400];
    snprintf(body, sizeof body,
             "{\"champion_model_id\":\"%s\",\"review_threshold\":0.5,\"block_threshold\":0.9,"
             "\"fallback_decision\":\"review\",\"scoring_timeout_ms\":5000}",
             h_str(&r, "id"));
    h_resp_free(&r);
    e2e_req(&E, "PUT", "/api/v1/policy", body, &r);
    ck_assert_msg(r.status == 200, "PUT policy: %ld %s", r.status, r.body);
    h_resp_free(&r);
    e2e_req(&E, "POST", "/api/v1/users", "{\"external_id\":\"trace-u1\",\"country\":\"DE\"}", &r);
    ck_assert_msg(r.status == 201, "create user: %ld %s", r.status, r.body);
    snprintf(uid, 37, "%s", h_str(&r, "id"));
    h_resp_free(&r);
}

/* Every span with a parent in the trace lies within its parent's time (1 us of slack: Jaeger
 * keeps microseconds, the spans were nanoseconds). */
static void assert_nested(const cJSON *trace)
{
    const cJSON *s;
    cJSON_ArrayForEach(s, jget(trace, "spans"))
    {
        const cJSON *p = span_by_id(trace, parent_of(s));
        if (!p)
            continue;
        double cs = jget(s, "startTime")->valuedouble, ce = cs + jget(s, "duration")->valuedouble;
        double ps = jget(p, "startTime")->valuedouble, pe = ps + jget(p, "duration")->valuedouble;
        ck_assert_msg(cs >= ps - 1 && ce <= pe + 1,
                      "span %s [%.0f, %.0f] outside parent %s [%.0f, %.0f]",
                      cJSON_GetStringValue(jget(s, "operationName")), cs, ce,
                      cJSON_GetStringValue(jget(p, "operationName")), ps, pe);
    }
}

/* ---- tests ----------------------------------------------------------------------------------- */

START_TEST(decision_trace_in_jaeger)
{
    char uid[37];
    decision_setup(uid);
    /* A fresh worker: the decision reloads the model inside the traced request, so the worker
     * writes a line (model_loaded) about this request. */
    ck_assert_int_eq(h_hp_stop(&E, SIGTERM), 0);
    ck_assert_int_eq(h_hp_start(&E), 0);

    char tid[33], psid[17], tp[80], body[400];
    random_hex(tid, 16);
    random_hex(psid, 8);
    snprintf(tp, sizeof tp, "traceparent: 00-%s-%s-01", tid, psid);
    const char *hdrs[] = {tp, "tracestate: vendor=abc", NULL};
    snprintf(body, sizeof body,
             "{\"user_id\":\"%s\",\"amount\":1999,\"currency\":\"EUR\",\"merchant_id\":\"m1\","
             "\"merchant_category\":\"5411\",\"country\":\"DE\",\"channel\":\"ecommerce\"}",
             uid);
    h_resp r;
    ck_assert_int_eq(h_http(&E, "POST", "/api/v1/transactions", E.key, "application/json", body,
                            strlen(body), hdrs, &r),
                     0);
    ck_assert_msg(r.status == 201, "POST transaction: %ld %s", r.status, r.body);
    const cJSON *risk = jget(r.json, "risk");
    ck_assert_msg(cJSON_IsFalse(jget(risk, "degraded")) && cJSON_IsNumber(jget(risk, "score")),
                  "scored without the worker: %s", r.body);
    char rtp[80] = "", rid[80] = "", want[40];
    ck_assert_ptr_nonnull(h_header(&r, "traceparent", rtp, sizeof rtp));
    ck_assert_ptr_nonnull(h_header(&r, "X-Request-Id", rid, sizeof rid));
    h_resp_free(&r);
    snprintf(want, sizeof want, "00-%s-", tid);
    ck_assert_int_eq(strncmp(rtp, want, strlen(want)), 0); /* same trace */
    ck_assert_uint_eq(strlen(rtp), 55);
    ck_assert_str_eq(rtp + 52, "-01");
    char server_id[17];
    memcpy(server_id, rtp + 36, 16);
    server_id[16] = '\0';
    ck_assert_str_ne(server_id, psid);

    const cJSON *t;
    cJSON *doc = wait_trace(tid, "vigil-hotpath", NULL, &t);
    sleep_ms(500); /* the batch with the worker's span may precede the server span's */
    cJSON_Delete(doc);
    doc = wait_trace(tid, "vigil-api", "POST /api/v1/transactions", &t);

    /* the server span: the caller's child, named by the route, with the semantic conventions */
    const cJSON *srv = span_by_id(t, server_id);
    ck_assert_ptr_nonnull(srv);
    ck_assert_str_eq(cJSON_GetStringValue(jget(srv, "operationName")), "POST /api/v1/transactions");
    ck_assert_pstr_eq(parent_of(srv), psid);
    ck_assert_pstr_eq(tag_str(srv, "span.kind"), "server");
    ck_assert_pstr_eq(tag_str(srv, "http.request.method"), "POST");
    ck_assert_pstr_eq(tag_str(srv, "http.route"), "/api/v1/transactions");
    ck_assert_pstr_eq(tag_str(srv, "url.path"), "/api/v1/transactions");
    ck_assert_pstr_eq(tag_str(srv, "vigil.request_id"), rid);
    ck_assert_int_eq((int)cJSON_GetNumberValue(tag(srv, "http.response.status_code")), 201);
    ck_assert_pstr_eq(service_of(t, srv), "vigil-api");

    int ndb = 0, insert_txn = 0, call_ok = 0, worker = 0, compute = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, jget(t, "spans"))
    {
        const char *op = cJSON_GetStringValue(jget(s, "operationName"));
        const cJSON *tg;
        cJSON_ArrayForEach(tg, jget(s, "tags"))
        { /* no parameter value: the user's id is a parameter of every decision statement */
            const char *v = cJSON_GetStringValue(jget(tg, "value"));
            ck_assert_msg(!v || !strstr(v, uid), "span %s tag %s carries the user id", op,
                          cJSON_GetStringValue(jget(tg, "key")));
        }
        if (tag_str(s, "db.system.name")) {
            ck_assert_pstr_eq(tag_str(s, "db.system.name"), "postgresql");
            ck_assert_pstr_eq(tag_str(s, "span.kind"), "client");
            ck_assert_pstr_eq(parent_of(s), server_id);
            const char *sum = tag_str(s, "db.query.summary");
            ck_assert_ptr_nonnull(sum);
            insert_txn += strstr(sum, "INSERT transactions") != NULL;
            ndb++;
        } else if (strncmp(op, "vigil-hotpath/", 14) == 0 &&
                   strcmp(service_of(t, s), "vigil-api") == 0) {
            /* the worker calls: SCORE, or EXPLAIN when the policy explains (explain.top_k), and
             * LOAD_MODEL after the worker's restart */
            ck_assert_pstr_eq(tag_str(s, "span.kind"), "client");
            ck_assert_pstr_eq(parent_of(s), server_id);
            ck_assert_pstr_eq(tag_str(s, "rpc.method"), op + 14);
            ck_assert(cJSON_GetNumberValue(tag(s, "vigil.wire.request_bytes")) > 24 + 32);
            call_ok += tag_str(s, "vigil.wire.status") &&
                       strcmp(tag_str(s, "vigil.wire.status"), "ok") == 0;
        } else if (strcmp(service_of(t, s), "vigil-hotpath") == 0 && strcmp(op, "compute") != 0) {
            const cJSON *client = span_by_id(t, parent_of(s));
            ck_assert_ptr_nonnull(client);
            ck_assert_pstr_eq(service_of(t, client), "vigil-api");
            ck_assert_pstr_eq(tag_str(s, "span.kind"), "server");
            ck_assert_pstr_eq(parent_of(client), server_id);
            if (strcmp(op, cJSON_GetStringValue(jget(client, "operationName"))) == 0 &&
                strcmp(tag_str(s, "vigil.wire.status"), "ok") == 0) {
                ck_assert(cJSON_GetNumberValue(tag(s, "vigil.hotpath.compute_ns")) > 0);
                worker++;
            }
        } else if (strcmp(op, "compute") == 0) {
            ck_assert_pstr_eq(service_of(t, s), "vigil-hotpath");
            ck_assert_pstr_eq(service_of(t, span_by_id(t, parent_of(s))), "vigil-hotpath");
            compute++;
        }
    }
    ck_assert_int_ge(ndb, 2);        /* the reads, the writes */
    ck_assert_int_eq(insert_txn, 1); /* the commit queue adds no second span for the batch */
    ck_assert_int_ge(call_ok, 1);
    ck_assert_int_ge(worker, 1);
    ck_assert_int_ge(compute, 1);
    assert_nested(t);
    cJSON_Delete(doc);

    /* Both processes' lines about this request carry its trace id. */
    char needle[64];
    snprintf(needle, sizeof needle, "\"trace_id\":\"%s\"", tid);
    char *api = h_read_file(&E, "api.log"), *hp = h_read_file(&E, "hotpath.log");
    ck_assert_ptr_nonnull(api);
    ck_assert_ptr_nonnull(hp);
    const char *line = strstr(api, needle);
    ck_assert_msg(line != NULL, "no api.log line with trace id %s", tid);
    int request_line = 0;
    for (const char *p = line; p; p = strstr(p + 1, needle)) {
        const char *bol = p;
        while (bol > api && bol[-1] != '\n')
            bol--;
        const char *eol = strchr(p, '\n');
        if (eol && memmem(bol, (size_t)(eol - bol), "\"event\":\"request\"", 17) &&
            memmem(bol, (size_t)(eol - bol), server_id, 16))
            request_line = 1;
    }
    ck_assert_msg(request_line, "the request line of api.log lacks trace/span ids");
    const char *hl = strstr(hp, needle);
    ck_assert_msg(hl != NULL, "no hotpath.log line with trace id %s:\n%s", tid, hp);
    free(api);
    free(hp);
}
END_TEST

START_TEST(invalid_or_unsampled_traceparent)
{
    static const char *const bad[] = {
        "traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "traceparent: ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "traceparent: garbage",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *hdrs[] = {bad[i], NULL};
        h_resp r;
        ck_assert_int_eq(h_http(&E, "GET", "/health", NULL, NULL, NULL, 0, hdrs, &r), 0);
        ck_assert_int_eq(r.status, 200);
        char tp[80];
        ck_assert_ptr_nonnull(h_header(&r, "traceparent", tp, sizeof tp));
        ck_assert_uint_eq(strlen(tp), 55);
        ck_assert_msg(strncasecmp(tp + 3, "4bf92f3577b34da6a3ce929d0e0e4736", 32) != 0 &&
                          strncmp(tp + 3, "00000000000000000000000000000000", 32) != 0,
                      "kept the invalid parent's trace: %s", tp);
        ck_assert_str_eq(tp + 52, "-01"); /* a new root: parentbased_always_on samples it */
        h_resp_free(&r);
    }
    /* an unsampled parent: same trace, not sampled (parent-based) */
    const char *hdrs[] = {"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                          NULL};
    h_resp r;
    ck_assert_int_eq(h_http(&E, "GET", "/health", NULL, NULL, NULL, 0, hdrs, &r), 0);
    ck_assert_int_eq(r.status, 200);
    char tp[80];
    ck_assert_ptr_nonnull(h_header(&r, "traceparent", tp, sizeof tp));
    ck_assert_int_eq(strncmp(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36), 0);
    ck_assert_str_eq(tp + 52, "-00");
    h_resp_free(&r);
}
END_TEST

START_TEST(jaeger_down_drops_and_counts)
{
    ck_assert(e2e_metric(&E, "vigil_trace_spans_exported_total") >
              0); /* the earlier tests' spans */
    jaeger_stop();
    const char *series = "vigil_trace_spans_dropped_total{reason=\"export_failed\"}";
    double before = e2e_metric(&E, series);
    ck_assert(before >= 0);
    for (int i = 0; i < 20; i++) {
        h_resp r;
        e2e_req(&E, "GET", "/api/v1/users?limit=1", NULL, &r);
        ck_assert_msg(r.status == 200, "with the collector down: %ld %s", r.status, r.body);
        h_resp_free(&r);
    }
    double after = before;
    for (int i = 0; i < 100 && after <= before; i++) {
        sleep_ms(100);
        after = e2e_metric(&E, series);
    }
    ck_assert_msg(after > before, "dropped spans did not grow (%.0f)", before);
}
END_TEST

/* ---- a collector that never answers ---------------------------------------------------------- */

static int blackhole_fd = -1;
static char blackhole_env[128];

static void slow_up(void)
{
    /* A listening socket nobody accepts from: connects complete (backlog), requests never get an
     * answer, so every export waits its whole timeout. */
    blackhole_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    ck_assert(bind(blackhole_fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
              listen(blackhole_fd, 16) == 0 &&
              getsockname(blackhole_fd, (struct sockaddr *)&sa, &len) == 0);
    snprintf(blackhole_env, sizeof blackhole_env,
             "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:%d/v1/traces",
             ntohs(sa.sin_port));
    static const char *env[8];
    env[0] = blackhole_env;
    env[1] = "OTEL_BSP_MAX_QUEUE_SIZE=8";
    env[2] = "OTEL_BSP_SCHEDULE_DELAY=50";
    env[3] = "OTEL_EXPORTER_OTLP_TIMEOUT=3000";
    env[4] = NULL;
    e2e_env_up(&E, env);
}

static void slow_down(void)
{
    e2e_env_down(&E);
    if (blackhole_fd >= 0)
        close(blackhole_fd);
    blackhole_fd = -1;
}

START_TEST(slow_collector_fills_the_queue)
{
    for (int i = 0; i < 40; i++) {
        h_resp r;
        e2e_req(&E, "GET", "/api/v1/users?limit=1", NULL, &r);
        ck_assert_msg(r.status == 200, "with a hung collector: %ld %s", r.status, r.body);
        h_resp_free(&r);
    }
    ck_assert(e2e_metric(&E, "vigil_trace_spans_dropped_total{reason=\"queue_full\"}") > 0);
    ck_assert(e2e_metric(&E, "vigil_trace_spans_exported_total") == 0);
}
END_TEST

/* ---- disabled -------------------------------------------------------------------------------- */

static void disabled_up(void)
{
    static const char *const env[] = {"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9",
                                      "OTEL_SDK_DISABLED=true", NULL};
    e2e_env_up(&E, env);
}

static void disabled_down(void)
{
    e2e_env_down(&E);
}

START_TEST(sdk_disabled_means_no_context)
{
    const char *hdrs[] = {"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                          NULL};
    h_resp r;
    ck_assert_int_eq(h_http(&E, "GET", "/health", NULL, NULL, NULL, 0, hdrs, &r), 0);
    ck_assert_int_eq(r.status, 200);
    char tp[80];
    ck_assert_ptr_null(h_header(&r, "traceparent", tp, sizeof tp));
    h_resp_free(&r);
    char *api = h_read_file(&E, "api.log");
    ck_assert_ptr_nonnull(api);
    ck_assert_ptr_null(strstr(api, "\"trace_id\""));
    ck_assert_ptr_null(strstr(api, "tracing_enabled"));
    free(api);
}
END_TEST

static Suite *trace_suite(void)
{
    Suite *s = suite_create("e2e_trace");
    TCase *tc = tcase_create("jaeger");
    tcase_set_timeout(tc, 240);
    tcase_add_unchecked_fixture(tc, env_up, env_down);
    tcase_add_test(tc, decision_trace_in_jaeger);
    tcase_add_test(tc, invalid_or_unsampled_traceparent);
    tcase_add_test(tc, jaeger_down_drops_and_counts); /* last: stops Jaeger */
    suite_add_tcase(s, tc);
    TCase *slow = tcase_create("slow_collector");
    tcase_set_timeout(slow, 120);
    tcase_add_unchecked_fixture(slow, slow_up, slow_down);
    tcase_add_test(slow, slow_collector_fills_the_queue);
    suite_add_tcase(s, slow);
    TCase *off = tcase_create("disabled");
    tcase_set_timeout(off, 120);
    tcase_add_unchecked_fixture(off, disabled_up, disabled_down);
    tcase_add_test(off, sdk_disabled_means_no_context);
    suite_add_tcase(s, off);
    return s;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    SRunner *sr = srunner_create(trace_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
