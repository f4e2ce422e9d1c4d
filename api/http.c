/* http.c - libmicrohttpd glue: per-request state, bounded bodies, dispatch through the route table
 * it was given, the key check it was given (http_setup), responses, request logging and drain.
 * See http.h.
 *
 * Request life cycle (MHD calls on_request several times per request):
 *   1st call   allocate req_state, pick request id, match the route, check Content-Length against
 *              the route's body limit (413 before reading a byte), reject early errors.
 *   n calls    append upload chunks to the bounded body buffer.
 *   last call  (upload size 0) authenticate, check scope, run the handler, queue the response.
 *   completed  on_completed logs one line and frees everything. */
#include "http.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "dynbuf.h"
#include "clock.h"
#include "json.h"
#include "logline.h"
#include "metrics.h"

struct http_server {
    struct MHD_Daemon *daemon;
    const app *app;
    http_setup setup;
    atomic_int inflight;
};

typedef struct req_state {
    http_req req;
    http_resp resp;
    const route *rt;
    dynbuf body; /* bounded by the route's body limit; req.body points into it once read */
    size_t body_max;
    int too_large;
    int decided; /* resp already holds the answer (early error) */
    http_server *srv;
    char pathbuf[ROUTER_MAX_PATH + 1];
} req_state;

/* ---- responses --------------------------------------------------------------------------------
 */

static void resp_set_body(http_resp *resp, int status, const char *ctype, char *body, size_t len)
{
    free(resp->body);
    resp->status = status;
    resp->content_type = ctype;
    resp->body = body;
    resp->body_len = len;
}

void http_raw(http_resp *resp, int status, const char *content_type, char *body_take, size_t len)
{
    resp_set_body(resp, status, content_type, body_take, len);
}

void http_json(http_resp *resp, int status, cJSON *obj)
{
    char *s = obj ? json_print(obj) : NULL;
    cJSON_Delete(obj);
    if (!s) {
        resp_set_body(resp, 500, NULL, NULL, 0);
        return;
    }
    resp_set_body(resp, status, "application/json", s, strlen(s));
}

static const char *status_title(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Error";
    }
}

void http_problem(http_resp *resp, int status, const char *code, const char *field,
                  const char *detail_fmt, ...)
{
    assert(resp && code && status >= 400 && status <= 599);
    char detail[512];
    va_list ap;
    va_start(ap, detail_fmt);
    vsnprintf(detail, sizeof detail, detail_fmt, ap);
    va_end(ap);
    /* detail and field may echo input, cut anywhere by %.64s or the buffer: the body stays UTF-8 */
    json_utf8_repair(detail);
    char fieldbuf[256];
    if (field) {
        snprintf(fieldbuf, sizeof fieldbuf, "%s", field);
        json_utf8_repair(fieldbuf);
        field = fieldbuf;
    }
    char type[128];
    snprintf(type, sizeof type, "https://vigil.dev/problems/%s", code);
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "type", type);
        cJSON_AddStringToObject(o, "title", status_title(status));
        cJSON_AddNumberToObject(o, "status", status);
        cJSON_AddStringToObject(o, "detail", detail);
        cJSON_AddStringToObject(o, "code", code);
        if (field)
            cJSON_AddStringToObject(o, "field", field);
    }
    char *s = o ? json_print(o) : NULL;
    cJSON_Delete(o);
    if (!s) {
        resp_set_body(resp, 500, NULL, NULL, 0);
        return;
    }
    resp_set_body(resp, status, "application/problem+json", s, strlen(s));
}

void http_unavailable(http_resp *resp, const char *what)
{
    http_problem(resp, 503, "unavailable", NULL, "%s; retry later", what);
    resp->retry_after = 1;
}

/* ---- request helpers --------------------------------------------------------------------------
 */

const char *http_header(http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_query(http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct unknown_scan {
    const char *const *allowed;
    const char *bad;
} unknown_scan;

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    (void)value;
    unknown_scan *u = cls;
    for (const char *const *a = u->allowed; *a; a++)
        if (strcmp(*a, key) == 0)
            return MHD_YES;
    u->bad = key;
    return MHD_NO;
}

const char *http_query_unknown(http_req *req, const char *const *allowed)
{
    unknown_scan u = {allowed, NULL};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, check_arg, &u);
    return u.bad;
}

int64_t http_time_left_ms(const http_req *req)
{
    return req->deadline_ms - clock_now_ms();
}

/* True when the Content-Type is application/json (parameters such as charset allowed). */
static int is_json_type(const char *ct)
{
    if (!ct)
        return 0;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';');
}

int http_body_object(http_req *req, http_resp *resp, cJSON **out)
{
    char err[256];
    *out = NULL;
    if (!is_json_type(http_header(req, "Content-Type"))) {
        http_problem(resp, 415, "unsupported_media_type", NULL,
                     "request body must be application/json");
        return -1;
    }
    if (json_parse_strict(req->body, req->body_len, out, err, sizeof err) != 0) {
        http_problem(resp, 400, "malformed_json", NULL, "%s", err);
        return -1;
    }
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        http_problem(resp, 400, "validation_failed", NULL, "request body must be a JSON object");
        return -1;
    }
    return 0;
}

/* Request ids: the client's X-Request-Id when it is 1..64 safe characters, else 32 random hex. */
static void pick_request_id(struct MHD_Connection *c, char *out)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
    if (h) {
        size_t n = strlen(h);
        int ok = n >= 1 && n <= HTTP_REQUEST_ID_MAX;
        for (size_t i = 0; ok && i < n; i++) {
            char ch = h[i];
            ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '_' || ch == '.' || ch == ':';
        }
        if (ok) {
            memcpy(out, h, n + 1);
            return;
        }
    }
    uint8_t rnd[16] = {0};
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        static atomic_ulong fallback;
        unsigned long v = atomic_fetch_add(&fallback, 1) + (unsigned long)clock_now_us();
        memcpy(rnd, &v, sizeof v);
    }
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", rnd[i]);
}

static size_t body_limit(const app *a, int body)
{
    switch (body) {
    case BODY_MODEL:
        return a->cfg->max_model_bytes;
    case BODY_PREDICT:
        return a->cfg->max_predict_bytes;
    default:
        return a->cfg->max_body_bytes;
    }
}

/* ---- MHD callbacks ----------------------------------------------------------------------------
 */

static enum MHD_Result queue(struct MHD_Connection *c, req_state *st)
{
    http_resp *r = &st->resp;
    assert(r->body || r->body_len == 0);
    if (r->status == 0)
        http_problem(r, 500, "internal", NULL, "handler produced no response");
    struct MHD_Response *mr = MHD_create_response_from_buffer(
        r->body_len, r->body ? r->body : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!mr)
        return MHD_NO;
    if (r->content_type)
        MHD_add_response_header(mr, "Content-Type", r->content_type);
    MHD_add_response_header(mr, "X-Request-Id", st->req.request_id);
    if (r->location[0])
        MHD_add_response_header(mr, "Location", r->location);
    if (r->allow[0])
        MHD_add_response_header(mr, "Allow", r->allow);
    if (r->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", r->retry_after);
        MHD_add_response_header(mr, "Retry-After", ra);
    }
    if (r->replayed)
        MHD_add_response_header(mr, "Idempotent-Replayed", "true");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    return ok;
}

/* Content-Length against the route's limit: 413 before a byte of the body is read, and one
 * allocation when the size is known.  Sets st->decided on an early answer. */
static void check_length(req_state *st, const char *cl)
{
    char *end = NULL;
    /* Digits only: strtoull would accept "-1" (wrapping to a huge value) and spaces. */
    unsigned long long n = cl[0] >= '0' && cl[0] <= '9' ? strtoull(cl, &end, 10) : 0;
    if (!end || end == cl || *end != '\0') {
        http_problem(&st->resp, 400, "bad_request", NULL, "invalid Content-Length");
        st->decided = 1;
    } else if (n > st->body_max) {
        http_problem(&st->resp, 413, "body_too_large", NULL,
                     "request body of %llu bytes exceeds the limit of %zu bytes", n, st->body_max);
        st->decided = 1;
    } else if (dynbuf_reserve(&st->body, (size_t)n) != DYNBUF_OK) {
        http_problem(&st->resp, 500, "internal", NULL, "out of memory");
        st->decided = 1;
    }
}

/* First call: state, route, early rejections.  Returns the state or NULL on OOM. */
static req_state *begin(http_server *s, struct MHD_Connection *c, const char *url,
                        const char *method)
{
    req_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    atomic_fetch_add(&s->inflight, 1);
    st->srv = s;
    http_req *q = &st->req;
    q->app = s->app;
    q->conn = c;
    q->method = method;
    q->path = url;
    q->routes = s->setup.routes;
    q->nroutes = s->setup.nroutes;
    q->start_us = clock_now_us();
    q->deadline_ms = clock_now_ms() + s->app->cfg->request_timeout_ms;
    pick_request_id(c, q->request_id);

    size_t ulen = strlen(url);
    int status = 404;
    if (ulen <= ROUTER_MAX_PATH) {
        memcpy(st->pathbuf, url, ulen + 1);
        st->rt = router_match(s->setup.routes, s->setup.nroutes, method, st->pathbuf, q->params,
                              &q->nparams, &status, st->resp.allow, sizeof st->resp.allow);
    }
    if (!st->rt) {
        if (status == 405)
            http_problem(&st->resp, 405, "method_not_allowed", NULL,
                         "%s is not allowed here; allowed: %s", method, st->resp.allow);
        else
            http_problem(&st->resp, 404, "not_found", NULL, "no such route");
        st->decided = 1;
        return st;
    }
    st->body_max = body_limit(s->app, st->rt->body);
    dynbuf_init(&st->body, st->body_max);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl)
        check_length(st, cl);
    return st;
}

/* Appends an upload chunk within the route's bound; past it, the rest is read and dropped so the
 * answer can be a 413.  Returns 0, or -1 on OOM. */
static int append_body(req_state *st, const char *data, size_t len)
{
    if (st->too_large || len > st->body_max - st->body.len) {
        st->too_large = 1;
        return 0;
    }
    return dynbuf_append(&st->body, data, len) == DYNBUF_OK ? 0 : -1;
}

static void dispatch(req_state *st)
{
    assert(st->rt && !st->decided); /* early answers never reach a handler */
    http_req *q = &st->req;
    http_resp *r = &st->resp;
    if (st->too_large) {
        http_problem(r, 413, "body_too_large", NULL, "request body exceeds the limit of %zu bytes",
                     st->body_max);
        return;
    }
    /* The request deadline covers processing; reading the body is bounded by the connection
     * timeout and the body limit. */
    q->deadline_ms = clock_now_ms() + q->app->cfg->request_timeout_ms;
    if (dynbuf_append(&st->body, "", 0) != DYNBUF_OK) { /* an empty body is "" too */
        http_problem(r, 500, "internal", NULL, "out of memory");
        return;
    }
    q->body = st->body.p;
    q->body_len = st->body.len;
    if (st->rt->scope != SCOPE_NONE) {
        http_auth_fn auth = st->srv->setup.authenticate;
        if (!auth) {
            http_problem(r, 401, "unauthorized", NULL, "this server accepts no keys");
            return;
        }
        if (auth(q, r, st->rt->scope) != 0)
            return;
    }
    st->rt->fn(q, r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **ctx)
{
    (void)version;
    http_server *s = cls;
    req_state *st = *ctx;
    if (!st) {
        st = begin(s, c, url, method);
        if (!st)
            return MHD_NO;
        *ctx = st;
        if (st->decided)
            return queue(c, st); /* answered before reading the body */
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (append_body(st, upload_data, *upload_data_size) != 0)
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (st->decided)
        return MHD_YES; /* already queued */
    dispatch(st);
    st->decided = 1;
    return queue(c, st);
}

/* The request's log line and metrics, once its response is sent (or the connection dropped). */
static void on_completed(void *cls, struct MHD_Connection *c, void **ctx,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    http_server *s = cls;
    req_state *st = *ctx;
    if (!st)
        return;
    *ctx = NULL;
    int64_t duration_us = clock_now_us() - st->req.start_us;
    metrics_observe_request(st->rt ? (int)(st->rt - s->setup.routes) : -1, st->req.method,
                            st->resp.status, duration_us);
    logline l;
    logline_begin(&l, "info", "request");
    /* The method is the client's text up to the first space, quotes included. */
    logline_str(&l, "method", st->req.method);
    logline_str(&l, "path", st->req.path);
    logline_i64(&l, "status", st->resp.status);
    logline_i64(&l, "duration_us", duration_us);
    logline_str(&l, "request_id", st->req.request_id);
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        logline_bool(&l, "aborted", 1);
    logline_end(&l);
    dynbuf_free(&st->body);
    free(st->resp.body);
    free(st);
    atomic_fetch_sub(&s->inflight, 1);
}

/* libmicrohttpd's own error messages (bind failures, socket errors) as log lines. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    logline l;
    logline_begin(&l, "warn", "http_server_error");
    logline_str(&l, "error", msg);
    logline_str(&l, "source", "libmicrohttpd");
    logline_end(&l);
}

http_server *http_start(const app *a, const http_setup *setup, char *err, size_t errlen)
{
    assert(a && a->cfg && setup && (setup->routes || setup->nroutes == 0));
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->app = a;
    s->setup = *setup;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)a->cfg->http_port)};
    if (inet_pton(AF_INET, a->cfg->http_host, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "VIGIL_HTTP_ADDR: '%s' is not an IPv4 address", a->cfg->http_host);
        free(s);
        return NULL;
    }
    s->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO_INTERNAL_THREAD |
                                     MHD_USE_ITC | MHD_USE_ERROR_LOG,
                                 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
                                 on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)a->cfg->max_connections,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)a->cfg->conn_timeout_s,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s:%d (address in use or not permitted)",
                 a->cfg->http_host, a->cfg->http_port);
        free(s);
        return NULL;
    }
    return s;
}

int http_stop(http_server *s)
{
    if (!s)
        return 0;
    /* The listen socket may only be closed after MHD_stop_daemon (libmicrohttpd's contract for
     * threaded modes); until then new connections wait in the backlog, unanswered. */
    MHD_socket lfd = MHD_quiesce_daemon(s->daemon);
    int64_t until = clock_now_ms() + (int64_t)s->app->cfg->drain_timeout_s * 1000;
    while (atomic_load(&s->inflight) > 0 && clock_now_ms() < until) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int left = atomic_load(&s->inflight);
    MHD_stop_daemon(s->daemon);
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd);
    free(s);
    return left;
}
