/* http.c - libmicrohttpd glue: per-request state, bounded bodies, dispatch through the route table
 * it was given, the key check it was given (http_setup), responses, request logging, connection
 * limits and drain.  See http.h.
 *
 * Threads.  VIGIL_HTTP_THREADS event threads (libmicrohttpd's poll thread pool) do all the socket
 * work of every connection and never block; everything that may block (the key check, a handler,
 * a streamed body's producer) runs on a handler thread while its connection is suspended
 * (MHD_suspend_connection: the event thread leaves it alone until MHD_resume_connection).  A
 * handler thread runs one step of one request at a time and there is at most one step per
 * connection, so a slow handler holds its own connection and one handler thread, exactly as under
 * thread-per-connection, and never an event thread or another request.  Handler threads are made
 * on demand (never more than the connection limit) and kept.  Routes flagged ROUTE_INLINE
 * (/health) are answered on the event thread: no hand-off, no context switch.
 *
 * Request life cycle (MHD calls on_request several times per request):
 *   1st call   headers complete, no body byte read yet: allocate req_state, pick the request id,
 *              match the route, refuse ambiguous framing (400); for a route with a scope,
 *              suspend and hand the key check (401/403 with one database lookup) and the
 *              Content-Length check (413) to a handler thread; MHD calls again (the same "first
 *              call" state) once it resumes.  Any of these answers at once: MHD then discards the
 *              body and closes the connection, so an unauthenticated client never makes the API
 *              hold its body.
 *   n calls    append upload chunks to the body buffer, grown as bytes arrive, bounded by the
 *              route's limit (event thread).
 *   last call  (upload size 0) run the handler (inline, or suspended on a handler thread), queue
 *              the response when it is ready.
 *   completed  on_completed logs one line and frees everything.
 * The request's trace context (trace.h) travels with it: attached to whichever thread runs a step,
 * detached after.
 *
 * Connection limit (issue 11).  VIGIL_MAX_CONNECTIONS connections are admitted; libmicrohttpd's
 * own limit is higher by REFUSE_SLOTS(max), and a connection accepted above the admitted count is
 * answered 503 (Retry-After: 1, Connection: close) as soon as its request head is complete, with
 * a short head deadline (REFUSE_HEAD_S): a burst gets a fast, clear refusal, never a reset
 * mid-request.  Beyond libmicrohttpd's limit an event thread stops accepting (it stops polling the
 * listening socket) and new connections wait in the kernel's listen backlog until a slot frees.
 * The per-address limit (VIGIL_MAX_CONNECTIONS_PER_IP) stays libmicrohttpd's: a connection over it
 * is closed at accept, the defence against one address holding every slot (issue 9).
 *
 * Connection life cycle (the slow-client defence): MHD's own timeout is an idle timer that every
 * byte restarts, so a client sending one header line every few seconds would hold its connection
 * (and its thread) forever.  Each connection is therefore tracked (on_connection) with an
 * absolute deadline for the phase it is in:
 *   head   from accept (or from a keep-alive request's request line) until the headers are
 *          complete: VIGIL_HEADER_TIMEOUT_S;
 *   busy   headers complete until the response is sent: none here (the body is bounded by the
 *          route's limit and MHD's idle timer, the handler by the request deadline);
 *   idle   after a response, until the next request line: VIGIL_CONN_TIMEOUT_S (+ 1 s, so a
 *          quiet connection is MHD's idle timer's to close) in total.
 * A reaper thread wakes every REAP_TICK_MS and shuts down (shutdown(2)) the socket of every
 * connection past its deadline; MHD then sees end-of-stream and closes it.  The per-address
 * connection limit is MHD's (VIGIL_MAX_CONNECTIONS_PER_IP).
 * Costs: O(1) under one mutex per phase change; the reaper scans the open connections
 * (at most VIGIL_MAX_CONNECTIONS) once per tick. */
#include "http.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dynbuf.h"
#include "clock.h"
#include "json.h"
#include "logline.h"
#include "metrics.h"
#include "trace.h"
#include "utf8.h"

#define REAP_TICK_MS 100 /* how late past its deadline a connection may be closed */
#define REFUSE_HEAD_S 2  /* head deadline of a connection over the limit (at most the usual) */
#define STREAM_BLOCK (64 * 1024)
/* libmicrohttpd's memory pool per connection (its default is 32 KiB): the request head, the
 * response's headers and the read buffer for a body live in it, and libmicrohttpd zeroes all of
 * it after every request, a cost every request pays.  A head larger than about half of it is
 * answered 431 by libmicrohttpd. */
#define CONN_MEMORY (16 * 1024)
/* Connections libmicrohttpd accepts beyond the admitted ones, to answer them 503. */
#define REFUSE_SLOTS(max) ((max) / 4 + 16)
#define MHD_LOG_PER_SEC 10 /* libmicrohttpd lines logged per second; the rest are counted */

enum conn_phase { CONN_HEAD, CONN_BUSY, CONN_IDLE };

/* One per open TCP connection, on its server's list from MHD_CONNECTION_NOTIFY_STARTED until
 * MHD_CONNECTION_NOTIFY_CLOSED (which libmicrohttpd calls before it closes the socket, so fd is
 * valid while the entry is listed).  Guarded by http_server.mu. */
typedef struct conn_track {
    struct conn_track *prev, *next; /* guarded by http_server.mu */
    int fd;
    int admitted; /* counted in http_server.admitted; 0: over the limit, answered 503 */
    /* Written by the connection's event thread without the lock (phase changes are per request
     * and must not serialise the event threads); read by the reaper. */
    _Atomic int phase;           /* enum conn_phase */
    _Atomic int64_t deadline_ms; /* absolute clock_now_ms(); 0 = none */
} conn_track;

/* A blocking step handed to a handler thread.  run() may free the job (its last act resumes the
 * connection, after which the event thread may complete and free the request). */
typedef struct job {
    struct job *next;
    void (*run)(struct job *j);
} job;

struct http_server {
    struct MHD_Daemon *daemon;
    const app *app;
    http_setup setup;
    atomic_int inflight;
    atomic_int draining; /* http_stop has begun: every answer closes its connection */
    pthread_mutex_t mu;  /* guards conns, admitted and stopping */
    pthread_cond_t cv;   /* wakes the reaper to stop */
    conn_track *conns;
    int admitted;         /* connections within VIGIL_MAX_CONNECTIONS */
    atomic_ulong refused; /* connections answered 503 over the limit, since the last log */
    int stopping;
    /* Handler threads (job_*): made on demand up to jcap, kept until http_stop. */
    pthread_mutex_t jmu;
    pthread_cond_t jwork; /* a job was queued, or stop */
    pthread_cond_t jgone; /* a handler thread exited */
    job *jhead, *jtail;
    int jthreads, jidle, jcap, jstopping;
    int jqueued; /* jobs queued and not yet taken: each needs an idle thread of its own */
    int reaper_running;
    pthread_t reaper;
    pthread_mutex_t log_mu; /* the rate limit of libmicrohttpd's log lines */
    int64_t log_window_ms;
    int log_lines;
    unsigned long log_suppressed;
};

enum req_job { JOB_NONE = 0, JOB_AUTH, JOB_HANDLER };

typedef struct req_state {
    job j; /* the request's blocking step (JOB_AUTH, then JOB_HANDLER), one at a time */
    http_req req;
    http_resp resp;
    const route *rt;
    trace_request_ctx tctx; /* the trace context while no thread runs the request */
    int job_kind;           /* the step handed to a handler thread */
    int job_done;           /* set by the handler thread before it resumes the connection */
    int ran;                /* the handler has filled resp */
    int queued;             /* resp is queued with MHD */
    dynbuf body; /* bounded by the route's body limit; req.body points into it once read */
    size_t body_max;
    int too_large;
    int announced; /* a body follows the head */
    int decided;   /* resp already holds the answer (early error) */
    http_server *srv;
    char pathbuf[ROUTER_MAX_PATH + 1];
} req_state;

/* ---- responses --------------------------------------------------------------------------------
 */

/* Drops a stream the response still owns. */
static void resp_drop_stream(http_resp *resp)
{
    if (resp->stream_free && resp->stream_ctx)
        resp->stream_free(resp->stream_ctx);
    resp->stream = NULL;
    resp->stream_ctx = NULL;
    resp->stream_free = NULL;
}

static void resp_set_body(http_resp *resp, int status, const char *ctype, char *body, size_t len)
{
    resp_drop_stream(resp);
    if (!resp->body_static)
        free(resp->body);
    resp->body_static = 0;
    resp->status = status;
    resp->content_type = ctype;
    resp->body = body;
    resp->body_len = len;
}

void http_stream(http_resp *resp, int status, const char *content_type, http_stream_fn fn,
                 void *ctx, void (*free_ctx)(void *ctx))
{
    resp_set_body(resp, status, content_type, NULL, 0);
    resp->stream = fn;
    resp->stream_ctx = ctx;
    resp->stream_free = free_ctx;
}

/* ---- handler threads ---------------------------------------------------------------------------
 */

static void *job_thread(void *arg)
{
    http_server *s = arg;
    pthread_mutex_lock(&s->jmu);
    for (;;) {
        while (!s->jhead && !s->jstopping) {
            s->jidle++;
            pthread_cond_wait(&s->jwork, &s->jmu);
            s->jidle--;
        }
        job *j = s->jhead;
        if (!j)
            break; /* stopping, and nothing left to run */
        s->jqueued--;
        s->jhead = j->next;
        if (!s->jhead)
            s->jtail = NULL;
        pthread_mutex_unlock(&s->jmu);
        j->run(j); /* may free j */
        pthread_mutex_lock(&s->jmu);
    }
    s->jthreads--;
    pthread_cond_broadcast(&s->jgone);
    pthread_mutex_unlock(&s->jmu);
    return NULL;
}

/* Queues j for a handler thread, making one when the idle ones are fewer than the queued jobs
 * (up to jcap): an idle thread already signalled for an earlier job, not awake yet, must not be
 * counted for this one too, or this job would wait behind a handler that blocks.  Returns 0, or
 * -1 when the server is stopping or no thread can run it (j is then not queued).  Never blocks
 * on a job: callable from an event thread. */
static int job_submit(http_server *s, job *j)
{
    int rc = 0;
    j->next = NULL;
    pthread_mutex_lock(&s->jmu);
    if (s->jstopping) {
        rc = -1;
    } else {
        if (s->jqueued + 1 > s->jidle && s->jthreads < s->jcap) {
            pthread_t t;
            pthread_attr_t at;
            pthread_attr_init(&at);
            pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
            if (pthread_create(&t, &at, job_thread, s) == 0)
                s->jthreads++;
            pthread_attr_destroy(&at);
        }
        if (s->jthreads == 0) {
            rc = -1;
        } else {
            if (s->jtail)
                s->jtail->next = j;
            else
                s->jhead = j;
            s->jtail = j;
            s->jqueued++;
            pthread_cond_signal(&s->jwork);
        }
    }
    pthread_mutex_unlock(&s->jmu);
    return rc;
}

/* Refuses new jobs, lets the threads finish every queued one and waits until all have exited.
 * Queued and running jobs end by resuming their connections, so none is left suspended (which
 * MHD_stop_daemon does not allow).  Bounded by the jobs' own deadlines. */
static void job_stop(http_server *s)
{
    pthread_mutex_lock(&s->jmu);
    s->jstopping = 1;
    pthread_cond_broadcast(&s->jwork);
    while (s->jthreads > 0)
        pthread_cond_wait(&s->jgone, &s->jmu);
    pthread_mutex_unlock(&s->jmu);
}

/* ---- streamed bodies ------------------------------------------------------------------------
 *
 * MHD asks for a streamed body block by block on the event thread, but a producer may block (a
 * database cursor).  So the reader never calls the producer: it hands out what the last fill
 * left, else queues a fill on a handler thread, suspends the connection and returns 0 (MHD's
 * "nothing yet", which MHD allows only with a suspended connection); the fill resumes it.  One
 * block of STREAM_BLOCK bytes per stream. */
typedef struct stream_box {
    job j;
    http_server *srv;
    struct MHD_Connection *conn;
    trace_request_ctx *tctx; /* the request's (req_state outlives every read of its response) */
    http_stream_fn fn;
    void *ctx;
    void (*free_ctx)(void *ctx);
    pthread_mutex_t mu; /* guards the fields below */
    char *buf;
    size_t len, off;
    int filling; /* a fill is queued or running */
    int end;     /* 1: the producer said end of body, -1: it failed */
} stream_box;

static void stream_fill(job *j)
{
    stream_box *b = (stream_box *)j;
    trace_request_attach(b->tctx);
    long n = b->fn(b->ctx, b->buf, STREAM_BLOCK);
    trace_request_detach(b->tctx);
    pthread_mutex_lock(&b->mu);
    b->filling = 0;
    if (n > 0) {
        b->len = (size_t)n;
        b->off = 0;
    } else {
        b->end = n == 0 ? 1 : -1;
    }
    struct MHD_Connection *c = b->conn;
    pthread_mutex_unlock(&b->mu);
    /* The reader suspended the connection before this fill could take the lock; while it is
     * suspended nothing frees b. */
    MHD_resume_connection(c);
}

/* MHD's content reader over the box: a producer's 0 is the end of the body. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_box *b = cls;
    ssize_t r;
    pthread_mutex_lock(&b->mu);
    if (b->off < b->len) {
        size_t n = b->len - b->off < max ? b->len - b->off : max;
        memcpy(buf, b->buf + b->off, n);
        b->off += n;
        r = (ssize_t)n;
    } else if (b->end) {
        r = b->end > 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
    } else {
        assert(!b->filling); /* a fill resumes the connection only after it is done */
        b->filling = 1;
        b->len = b->off = 0;
        MHD_suspend_connection(b->conn); /* before the fill can resume it */
        if (job_submit(b->srv, &b->j) == 0) {
            r = 0;
        } else {
            b->filling = 0;
            b->end = -1;
            MHD_resume_connection(b->conn);
            r = MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    pthread_mutex_unlock(&b->mu);
    return r;
}

static void stream_box_free(void *cls)
{
    stream_box *b = cls;
    if (b->free_ctx)
        b->free_ctx(b->ctx);
    pthread_mutex_destroy(&b->mu);
    free(b->buf);
    free(b);
}

/* The MHD response of a streamed http_resp; the stream's ownership moves to it (freed here when
 * it cannot be created).  Blocks of STREAM_BLOCK bytes. */
static struct MHD_Response *stream_response(http_server *s, struct MHD_Connection *c,
                                            trace_request_ctx *tctx, http_resp *r)
{
    stream_box *b = calloc(1, sizeof *b);
    char *buf = b ? malloc(STREAM_BLOCK) : NULL;
    struct MHD_Response *mr = NULL;
    if (b && buf) {
        b->j.run = stream_fill;
        b->srv = s;
        b->conn = c;
        b->tctx = tctx;
        b->fn = r->stream;
        b->ctx = r->stream_ctx;
        b->free_ctx = r->stream_free;
        b->buf = buf;
        pthread_mutex_init(&b->mu, NULL);
        r->stream = NULL, r->stream_ctx = NULL, r->stream_free = NULL;
        mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_read, b,
                                               stream_box_free);
        if (!mr)
            stream_box_free(b);
    } else {
        free(b);
        free(buf);
    }
    resp_drop_stream(r);
    return mr;
}

void http_raw(http_resp *resp, int status, const char *content_type, char *body_take, size_t len)
{
    resp_set_body(resp, status, content_type, body_take, len);
}

void http_static(http_resp *resp, int status, const char *content_type, const char *body,
                 size_t len)
{
    resp_set_body(resp, status, content_type, (char *)body, len);
    resp->body_static = 1;
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

/* Copies src into dst[cap] (NUL-terminated, cut at a whole character) with every byte that is
 * not part of a valid UTF-8 sequence replaced by U+FFFD: details and fields echo client text
 * (a method, a query parameter's name, a model's strings), and an error body must stay valid
 * JSON text whatever the client sent. */
static void utf8_scrub(char *dst, size_t cap, const char *src)
{
    static const char repl[] = "\xef\xbf\xbd";
    size_t o = 0, n = strlen(src);
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq_len((const unsigned char *)src + i, n - i);
        const char *piece = k ? src + i : repl;
        size_t plen = k ? k : 3;
        if (o + plen >= cap)
            break;
        memcpy(dst + o, piece, plen);
        o += plen;
        i += k ? k : 1;
    }
    dst[o] = '\0';
}

void http_problem(http_resp *resp, int status, const char *code, const char *field,
                  const char *detail_fmt, ...)
{
    assert(resp && code && status >= 400 && status <= 599);
    char raw[512], detail[512], fieldbuf[256];
    va_list ap;
    va_start(ap, detail_fmt);
    vsnprintf(raw, sizeof raw, detail_fmt, ap);
    va_end(ap);
    /* detail and field may echo input, cut anywhere by %.64s or the buffer: the body stays UTF-8
     * (one repair, utf8_scrub: a byte outside a valid sequence becomes U+FFFD) */
    utf8_scrub(detail, sizeof detail, raw);
    if (field) {
        utf8_scrub(fieldbuf, sizeof fieldbuf, field);
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

int http_media_type_is(const char *ct, const char *type)
{
    if (!ct)
        return 0;
    size_t n = strlen(type);
    if (strncasecmp(ct, type, n) != 0)
        return 0;
    /* RFC 9110 media-type: type "/" subtype *( OWS ";" OWS parameter ) */
    const char *p = ct + n;
    while (*p == ' ' || *p == '\t')
        p++;
    return *p == '\0' || *p == ';';
}

int http_body_object(http_req *req, http_resp *resp, cJSON **out)
{
    char err[256];
    *out = NULL;
    if (!http_media_type_is(http_header(req, "Content-Type"), "application/json")) {
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
    /* Unique, not secret: splitmix64 over a per-thread counter seeded once from getrandom (a
     * system call per request cost more than the rest of a /health answer's plumbing). */
    static _Thread_local uint64_t ctr;
    static _Thread_local int seeded;
    if (!seeded) {
        if (getrandom(&ctr, sizeof ctr, 0) != (ssize_t)sizeof ctr) {
            static atomic_ulong fallback;
            ctr = atomic_fetch_add(&fallback, 1) * 0x9e3779b97f4a7c15u + (uint64_t)clock_now_us();
        }
        seeded = 1;
    }
    static const char hex[] = "0123456789abcdef";
    for (int w = 0; w < 2; w++) {
        uint64_t z = (ctr += 0x9e3779b97f4a7c15u);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        z ^= z >> 31;
        for (int i = 0; i < 16; i++)
            out[16 * w + i] = hex[(z >> (4 * i)) & 15];
    }
    out[32] = '\0';
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

/* ---- connection tracking: deadlines for the request head and for idle keep-alive -------------
 */

/* The tracking entry MHD keeps for c (our socket context), or NULL when it has none. */
static conn_track *track_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Moves c's connection to phase, with deadline_ms (0 = none).  Called on the connection's event
 * thread; lock-free (the reaper may see the old deadline for one tick, never a torn one). */
static void track_set(struct MHD_Connection *c, enum conn_phase phase, int64_t deadline_ms)
{
    conn_track *t = track_of(c);
    if (!t)
        return;
    atomic_store_explicit(&t->deadline_ms, 0, memory_order_relaxed);
    atomic_store_explicit(&t->phase, phase, memory_order_relaxed);
    atomic_store_explicit(&t->deadline_ms, deadline_ms, memory_order_relaxed);
}

/* MHD_OPTION_NOTIFY_CONNECTION: lists a new connection with its head deadline, unlists a closed
 * one.  A connection that cannot be tracked (out of memory) is shut down at once rather than
 * served without a deadline. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_track *t = ci ? calloc(1, sizeof *t) : NULL;
        if (!t) {
            if (ci)
                shutdown(ci->connect_fd, SHUT_RDWR);
            *socket_context = NULL;
            return;
        }
        t->fd = ci->connect_fd;
        t->phase = CONN_HEAD;
        pthread_mutex_lock(&s->mu);
        t->admitted = s->admitted < s->app->cfg->max_connections;
        s->admitted += t->admitted;
        metrics_set_http_connections(s->admitted);
        if (!t->admitted)
            metrics_observe_http_refused();
        int head_s = s->app->cfg->header_timeout_s;
        if (!t->admitted && head_s > REFUSE_HEAD_S)
            head_s = REFUSE_HEAD_S;
        t->deadline_ms = clock_now_ms() + (int64_t)head_s * 1000;
        t->next = s->conns;
        if (s->conns)
            s->conns->prev = t;
        s->conns = t;
        pthread_mutex_unlock(&s->mu);
        *socket_context = t;
        return;
    }
    conn_track *t = *socket_context;
    if (!t)
        return;
    pthread_mutex_lock(&s->mu);
    s->admitted -= t->admitted;
    metrics_set_http_connections(s->admitted);
    if (t->prev)
        t->prev->next = t->next;
    else
        s->conns = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&s->mu);
    free(t);
    *socket_context = NULL;
}

/* MHD_OPTION_URI_LOG_CALLBACK: a request line has arrived.  On a keep-alive connection that
 * starts the next request's head deadline (the first request's started at accept).  Returns
 * NULL: the access handler's first call still sees *ctx == NULL. */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)uri;
    http_server *s = cls;
    conn_track *t = track_of(c);
    if (t && atomic_load_explicit(&t->phase, memory_order_relaxed) == CONN_IDLE)
        track_set(c, CONN_HEAD, clock_now_ms() + (int64_t)s->app->cfg->header_timeout_s * 1000);
    return NULL;
}

/* Closes every listed connection past its deadline.  Caller holds s->mu.  Adds the counts of
 * closed heads and idle connections to heads/idles. */
static void reap(http_server *s, unsigned long *heads, unsigned long *idles)
{
    int64_t now = clock_now_ms();
    for (conn_track *t = s->conns; t; t = t->next) {
        int64_t dl = atomic_load_explicit(&t->deadline_ms, memory_order_relaxed);
        if (!dl || now < dl)
            continue;
        /* MHD's thread sees end-of-stream and closes the connection; the entry goes when it
         * does (on_connection). */
        shutdown(t->fd, SHUT_RDWR);
        atomic_store_explicit(&t->deadline_ms, 0, memory_order_relaxed);
        if (atomic_load_explicit(&t->phase, memory_order_relaxed) == CONN_HEAD)
            (*heads)++;
        else
            (*idles)++;
    }
}

/* The reaper thread: reap() every REAP_TICK_MS until http_stop; at most one log line a second
 * saying how many connections it closed (an attack must not turn into a flood of log lines). */
static void *reaper_main(void *arg)
{
    http_server *s = arg;
    unsigned long heads = 0, idles = 0;
    int64_t logged_ms = clock_now_ms();
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        reap(s, &heads, &idles);
        int64_t now = clock_now_ms();
        unsigned long refused = atomic_load_explicit(&s->refused, memory_order_relaxed);
        if ((heads || idles || refused) && now - logged_ms >= 1000) {
            pthread_mutex_unlock(&s->mu);
            atomic_fetch_sub_explicit(&s->refused, refused, memory_order_relaxed);
            logline l;
            if (heads || idles) {
                logline_begin(&l, "warn", "http_connections_closed");
                logline_u64(&l, "head_deadline", heads);
                logline_u64(&l, "idle_deadline", idles);
                logline_i64(&l, "header_timeout_s", s->app->cfg->header_timeout_s);
                logline_end(&l);
            }
            if (refused) {
                logline_begin(&l, "warn", "http_connections_refused");
                logline_u64(&l, "over_limit", refused);
                logline_i64(&l, "max_connections", s->app->cfg->max_connections);
                logline_end(&l);
            }
            heads = idles = 0;
            logged_ms = now;
            pthread_mutex_lock(&s->mu);
            continue;
        }
        struct timespec ts = clock_abs_timespec(now + REAP_TICK_MS);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- MHD callbacks ----------------------------------------------------------------------------
 */

/* Queues st's response (once).  On the event thread, inside on_request. */
static enum MHD_Result queue(struct MHD_Connection *c, req_state *st)
{
    http_resp *r = &st->resp;
    assert(r->body || r->body_len == 0);
    assert(!st->queued);
    st->queued = 1;
    if (r->status == 0)
        http_problem(r, 500, "internal", NULL, "handler produced no response");
    struct MHD_Response *mr;
    if (r->stream) {
        mr = stream_response(st->srv, c, &st->tctx, r);
    } else if (r->body && !r->body_static) {
        /* The body moves to MHD, which frees it after sending: no copy. */
        mr = MHD_create_response_from_buffer(r->body_len, r->body, MHD_RESPMEM_MUST_FREE);
        if (mr)
            r->body = NULL;
    } else {
        mr = MHD_create_response_from_buffer(r->body_len, r->body ? r->body : (void *)"",
                                             MHD_RESPMEM_PERSISTENT);
    }
    if (!mr)
        return MHD_NO;
    if (r->content_type)
        MHD_add_response_header(mr, "Content-Type", r->content_type);
    MHD_add_response_header(mr, "X-Request-Id", st->req.request_id);
    char tp[TCTX_TRACEPARENT_LEN + 1];
    if (trace_request_traceparent(tp)) /* the server span, so a caller can find the trace */
        MHD_add_response_header(mr, "traceparent", tp);
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
    if (r->close || atomic_load(&st->srv->draining))
        MHD_add_response_header(mr, "Connection", "close");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    return ok;
}

/* The framing headers as received (MHD_lookup_connection_value sees only the first of each). */
typedef struct framing {
    int n_length, n_encoding;
    int length_conflict;
    const char *length, *encoding;
} framing;

static enum MHD_Result scan_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    framing *f = cls;
    if (strcasecmp(key, "Content-Length") == 0) {
        if (f->length && strcmp(f->length, value) != 0)
            f->length_conflict = 1;
        if (!f->length)
            f->length = value;
        f->n_length++;
    } else if (strcasecmp(key, "Transfer-Encoding") == 0) {
        f->encoding = value;
        f->n_encoding++;
    }
    return MHD_YES;
}

/* Refuses a body whose length two parsers could read differently (request smuggling, RFC 9112
 * section 6.3): Content-Length headers that disagree, Content-Length together with
 * Transfer-Encoding, or any transfer coding but a single "chunked".  Identical repeated
 * Content-Length values are one length (RFC 9110 section 8.6).  Returns 0, or -1 with a 400 that
 * closes the connection decided.  Sets *announced when a body follows the head. */
static int check_framing(req_state *st, int *announced)
{
    framing f = {0};
    MHD_get_connection_values(st->req.conn, MHD_HEADER_KIND, scan_framing, &f);
    *announced = f.n_encoding > 0 || (f.length && strcmp(f.length, "0") != 0);
    const char *why = f.length_conflict ? "conflicting Content-Length headers"
                      : f.n_length && f.n_encoding
                          ? "Content-Length together with Transfer-Encoding"
                      : f.n_encoding > 1 ? "more than one Transfer-Encoding header"
                      : f.n_encoding && strcasecmp(f.encoding, "chunked") != 0
                          ? "Transfer-Encoding other than chunked"
                          : NULL;
    if (!why)
        return 0;
    http_problem(&st->resp, 400, "bad_request", NULL, "ambiguous request framing: %s", why);
    st->resp.close = 1;
    st->decided = 1;
    return -1;
}

/* Content-Length against the route's limit: 413 before a byte of the body is read.  The length
 * only decides; the buffer grows as bytes arrive.  Sets st->decided on an early answer. */
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
    }
}

/* The key check for a route with a scope, while only the head has arrived.  Returns 0, or -1
 * with the answer (401, 403, 503 when the database cannot say) decided.  May block on the
 * database, bounded by the request deadline. */
static int authorize(req_state *st)
{
    http_auth_fn auth = st->srv->setup.authenticate;
    if (!auth)
        http_problem(&st->resp, 401, "unauthorized", NULL, "this server accepts no keys");
    else if (auth(&st->req, &st->resp, st->rt->scope) == 0)
        return 0;
    st->decided = 1;
    return -1;
}

/* First call, the head complete and no body byte read: state, route, framing, and, for a route
 * without a scope, length.  The key check (which may block) is the caller's to hand off when
 * st->rt->scope is set.  Returns the state (st->decided when it is answered already) or NULL on
 * OOM.  Never blocks: runs on the event thread. */
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
    /* Before anything that logs or queries (the key check): the trace context is the request's
     * until on_completed, attached to the thread running each step. */
    trace_request_begin(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "traceparent"),
                        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "tracestate"));

    if (check_framing(st, &st->announced) != 0)
        return st;
    conn_track *t = track_of(c);
    if (t && !t->admitted) {
        /* Accepted over VIGIL_MAX_CONNECTIONS: a clear refusal, then the connection ends. */
        http_unavailable(&st->resp,
                         "the server is at its connection limit (VIGIL_MAX_CONNECTIONS)");
        st->resp.close = 1;
        st->decided = 1;
        atomic_fetch_add_explicit(&s->refused, 1, memory_order_relaxed);
        return st;
    }
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
    } else {
        st->body_max = body_limit(s->app, st->rt->body);
        dynbuf_init(&st->body, st->body_max);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (st->rt->scope == SCOPE_NONE && cl)
            check_length(st, cl);
    }
    /* An early answer leaves the announced body unread: the connection cannot carry another
     * request (libmicrohttpd closes it too; the header says so to the client). */
    if (st->decided && st->announced)
        st->resp.close = 1;
    return st;
}

/* The key check and then the length check of a route with a scope (JOB_AUTH, handler thread). */
static void check_key(req_state *st)
{
    const char *cl = MHD_lookup_connection_value(st->req.conn, MHD_HEADER_KIND, "Content-Length");
    if (authorize(st) == 0 && cl)
        check_length(st, cl);
    if (st->decided && st->announced)
        st->resp.close = 1;
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

/* The whole body read and the key checked: runs the handler (on a handler thread, or inline for
 * ROUTE_INLINE and the 413). */
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
    st->rt->fn(q, r);
}

/* The key check without blocking (a cached key, or an answer that needs no database): 1 when it
 * settled the check (st->decided when it refused, Content-Length checked when it accepted), 0
 * when the blocking check must run on a handler thread. */
static int key_known(req_state *st)
{
    http_auth_try_fn try = st->srv->setup.authenticate_try;
    if (!try || !st->srv->setup.authenticate)
        return 0;
    int rc = try(&st->req, &st->resp, st->rt->scope);
    if (rc > 0)
        return 0;
    if (rc < 0) {
        st->decided = 1;
    } else {
        const char *cl =
            MHD_lookup_connection_value(st->req.conn, MHD_HEADER_KIND, "Content-Length");
        if (cl)
            check_length(st, cl);
    }
    if (st->decided && st->announced)
        st->resp.close = 1;
    return 1;
}

/* A request's blocking step on a handler thread: the key check or the handler.  Its last act
 * resumes the connection: MHD then calls on_request again, which queues the answer. */
static void req_job(job *j)
{
    req_state *st = (req_state *)j;
    trace_request_attach(&st->tctx);
    if (st->job_kind == JOB_AUTH) {
        check_key(st);
        /* No body to wait for: run the handler now, on this thread, and save a second hand-off
         * (MHD's final call queues the answer: see step). */
        if (!st->decided && !st->announced) {
            dispatch(st);
            st->ran = 1;
        }
    } else {
        dispatch(st);
        st->ran = 1;
    }
    trace_request_detach(&st->tctx);
    struct MHD_Connection *c = st->req.conn;
    st->job_done = st->job_kind;
    MHD_resume_connection(c); /* st may be gone after this */
}

/* Suspends c and hands st's next step (kind) to a handler thread, the trace context with it.
 * From here the event thread must not touch st until MHD calls on_request again.  When no
 * thread can take it (stopping, out of threads) the answer is a 503 and the connection resumes
 * at once. */
static void hand_off(req_state *st, struct MHD_Connection *c, int kind)
{
    trace_request_detach(&st->tctx);
    st->job_kind = kind;
    st->job_done = JOB_NONE;
    st->j.run = req_job;
    MHD_suspend_connection(c); /* before the job can resume it */
    if (job_submit(st->srv, &st->j) == 0)
        return;
    http_unavailable(&st->resp, "the server is shutting down or out of threads");
    st->resp.close = 1;
    st->decided = 1;
    st->job_done = kind;
    MHD_resume_connection(c);
}

/* One step of a request on the event thread, its trace context attached by the caller; sets
 * *handed when st went to a handler thread (its context with it). */
static enum MHD_Result step(req_state *st, struct MHD_Connection *c, const char *upload_data,
                            size_t *upload_data_size, int *handed)
{
    int done = st->job_done;
    st->job_done = JOB_NONE;
    if (done == JOB_AUTH) {
        /* MHD's first call again, after the key check (and, without a body, the handler).  A
         * refusal is answered now, before any body is read.  Any other answer waits for MHD's
         * final call (the body, if any, read): libmicrohttpd 0.9.75 takes an answer queued in
         * the first call as an early one, discards the rest of the request and closes the
         * connection after it, which would cost a kept-alive client a new connection after
         * every request whose key was not cached. */
        return st->decided && !st->queued ? queue(c, st) : MHD_YES;
    }
    if (*upload_data_size) {
        if (append_body(st, upload_data, *upload_data_size) != 0)
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    /* Only MHD's final call passes no buffer: an empty one is a body step with nothing in it
     * (libmicrohttpd 0.9.75 makes one after "100 Continue" when bytes follow the head, e.g. a
     * pipelined request), where an answer cannot be queued yet. */
    if (upload_data)
        return MHD_YES;
    if (st->queued)
        return MHD_YES; /* answered early; MHD discarded the body */
    if (st->ran || st->decided)
        return queue(c, st); /* the handler thread's answer, or a refused hand-off */
    if ((st->rt->flags & ROUTE_INLINE) || st->too_large) {
        dispatch(st); /* never blocks: an inline route, or the 413 */
        st->ran = 1;
        return queue(c, st);
    }
    hand_off(st, c, JOB_HANDLER);
    *handed = 1;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **ctx)
{
    (void)version;
    http_server *s = cls;
    req_state *st = *ctx;
    enum MHD_Result rc = MHD_YES;
    int handed = 0;
    if (!st) {
        track_set(c, CONN_BUSY, 0); /* the head is complete */
        st = begin(s, c, url, method);
        if (!st)
            return MHD_NO;
        *ctx = st;
        if (!st->decided && st->rt->scope != SCOPE_NONE && !key_known(st)) {
            hand_off(st, c, JOB_AUTH);
            handed = 1;
        } else if (st->decided) {
            rc = queue(c, st); /* answered before reading the body */
        }
    } else {
        trace_request_attach(&st->tctx);
        rc = step(st, c, upload_data, upload_data_size, &handed);
    }
    if (!handed)
        trace_request_detach(&st->tctx); /* the event thread serves other connections next */
    return rc;
}

/* The request's log line and metrics, once its response is sent (or the connection dropped).
 * The connection is idle from here until its next request line. */
static void on_completed(void *cls, struct MHD_Connection *c, void **ctx,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *s = cls;
    /* A second after MHD's own idle timer would fire: a quiet connection is closed by MHD as
     * usual, only one that trickles bytes without finishing a request line reaches this. */
    track_set(c, CONN_IDLE, clock_now_ms() + ((int64_t)s->app->cfg->conn_timeout_s + 1) * 1000);
    req_state *st = *ctx;
    if (!st)
        return;
    *ctx = NULL;
    trace_request_attach(&st->tctx);
    int64_t duration_us = clock_now_us() - st->req.start_us;
    metrics_observe_request(st->rt ? (int)(st->rt - s->setup.routes) : -1, st->req.method,
                            st->resp.status, duration_us);
    /* Probes and scrapes may stay out of the access log (VIGIL_ACCESS_LOG_PROBES=0); their
     * failures never do. */
    int quiet = !s->app->cfg->access_log_probes && st->rt && (st->rt->flags & ROUTE_PROBE) &&
                st->resp.status < 400 && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
    if (!quiet) {
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
    }
    trace_request_end(st->req.method, st->rt ? st->rt->pattern : NULL, st->req.path,
                      st->req.request_id, st->resp.status);
    dynbuf_free(&st->body);
    resp_drop_stream(&st->resp);
    if (!st->resp.body_static)
        free(st->resp.body);
    free(st);
    atomic_fetch_sub(&s->inflight, 1);
}

/* libmicrohttpd's own messages (bind failures, socket errors, refused connections) as log lines,
 * at most MHD_LOG_PER_SEC a second: the next line logged says how many were dropped. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    http_server *s = cls;
    unsigned long dropped = 0;
    int64_t now = clock_now_ms();
    pthread_mutex_lock(&s->log_mu);
    if (now - s->log_window_ms >= 1000) {
        s->log_window_ms = now;
        s->log_lines = 0;
    }
    int allowed = s->log_lines < MHD_LOG_PER_SEC;
    if (allowed) {
        s->log_lines++;
        dropped = s->log_suppressed;
        s->log_suppressed = 0;
    } else {
        s->log_suppressed++;
    }
    pthread_mutex_unlock(&s->log_mu);
    if (!allowed)
        return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    logline l;
    logline_begin(&l, "warn", "http_server_error");
    logline_str(&l, "error", msg);
    logline_str(&l, "source", "libmicrohttpd");
    if (dropped)
        logline_u64(&l, "suppressed", dropped);
    logline_end(&l);
}

/* Frees s and what http_start made of it before the daemon (the daemon itself is gone). */
static void server_free(http_server *s)
{
    if (s->reaper_running) {
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->reaper, NULL);
    }
    assert(!s->conns); /* MHD_stop_daemon closed (and unlisted) every connection */
    job_stop(s);       /* none left when the daemon ran; joins nothing otherwise */
    pthread_cond_destroy(&s->jgone);
    pthread_cond_destroy(&s->jwork);
    pthread_mutex_destroy(&s->jmu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->log_mu);
    free(s);
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
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->log_mu, NULL);
    pthread_mutex_init(&s->jmu, NULL);
    pthread_cond_init(&s->jwork, NULL);
    pthread_cond_init(&s->jgone, NULL);
    unsigned max = (unsigned)a->cfg->max_connections;
    unsigned hard = max + REFUSE_SLOTS(max);
    s->jcap = (int)hard; /* at most one step per connection runs at a time */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)a->cfg->http_port)};
    if (inet_pton(AF_INET, a->cfg->http_host, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "VIGIL_HTTP_ADDR: '%s' is not an IPv4 address", a->cfg->http_host);
        server_free(s);
        return NULL;
    }
    if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
        snprintf(err, errlen, "cannot start the connection reaper thread");
        server_free(s);
        return NULL;
    }
    s->reaper_running = 1;
    /* Event threads on poll(2) (libmicrohttpd's thread pool; one thread: no pool), suspend/resume
     * for the hand-offs.  Not epoll: libmicrohttpd 0.9.75 on epoll missed the end-of-stream of a
     * client that half-closed right after a partial request head (the bytes and the FIN in one
     * edge), and kept the connection until the head deadline (fuzz_http; test_http
     * half_closed_partial_head_is_closed); poll is level-triggered, and as fast here (/health
     * 122.7k req/s, 7.8 us of CPU a request, against epoll's 132.7k / 7.4 us in another run).  The
     * connection limit is split evenly between the event threads; one at its share stops accepting
     * and leaves new connections in the listen backlog. */
    s->daemon = MHD_start_daemon(
        MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(a->cfg->http_threads > 1 ? a->cfg->http_threads : 0),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY, MHD_OPTION_CONNECTION_LIMIT, hard,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)a->cfg->max_conns_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)a->cfg->conn_timeout_s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_URI_LOG_CALLBACK,
        on_request_line, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s:%d (address in use or not permitted)",
                 a->cfg->http_host, a->cfg->http_port);
        server_free(s);
        return NULL;
    }
    return s;
}

/* How long http_stop waits, past VIGIL_DRAIN_TIMEOUT_S, for answers made to be written. */
#define DRAIN_FLUSH_MS 1000

/* Waits until every request begun is answered (on_completed) or deadline_ms passes. */
static void wait_answered(http_server *s, int64_t deadline_ms)
{
    while (atomic_load(&s->inflight) > 0 && clock_now_ms() < deadline_ms) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int http_stop(http_server *s)
{
    if (!s)
        return 0;
    /* The listen socket may only be closed after MHD_stop_daemon (libmicrohttpd's contract for
     * threaded modes); until then new connections wait in the backlog, unanswered.  The reaper
     * keeps closing slow heads during the drain. */
    MHD_socket lfd = MHD_quiesce_daemon(s->daemon);
    /* Kept-alive connections would go on bringing requests: each answer from now on closes its
     * connection, so a client sends its next request elsewhere. */
    atomic_store(&s->draining, 1);
    int64_t until = clock_now_ms() + (int64_t)s->app->cfg->drain_timeout_s * 1000;
    wait_answered(s, until);
    int left = atomic_load(&s->inflight);
    /* No connection may be suspended when the daemon stops: let the handler threads finish
     * (each step is bounded by its request's deadline) and refuse new hand-offs (503). */
    job_stop(s);
    /* Their answers, and those 503s, are written by the event threads: let them go out before
     * the daemon closes every connection (at most DRAIN_FLUSH_MS past the drain's bound). */
    int64_t now = clock_now_ms();
    wait_answered(s, until > now ? until : now + DRAIN_FLUSH_MS);
    MHD_stop_daemon(s->daemon);
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd);
    server_free(s);
    return left;
}
