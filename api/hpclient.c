/* hpclient.c - pooled request/response over the worker's Unix socket.  See hpclient.h.  Who holds
 * which connection is api/pool.c's; every call is bounded by min(caller's deadline,
 * VIGIL_HOTPATH_TIMEOUT_MS). */
#include "hpclient.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "metrics.h"
#include "pool.h"
#include "trace.h"
#include "wire.h"

/* A connection lives in a slot of the pool's slots; fd is touched only by the slot's holder. */
typedef struct hpc_conn {
    int fd;
} hpc_conn;

struct hpc_pool {
    pool_slots slots;
    char path[108];
    int size;
    uint32_t max_frame;
    int call_timeout_ms;
    atomic_ullong next_id;
    hpc_conn *conns;
};

static int conn_open(const void *ctx, int i)
{
    const hpc_pool *p = ctx;
    return p->conns[i].fd >= 0;
}

hpc_pool *hpc_pool_create(const char *path, int size, uint32_t max_frame, int call_timeout_ms,
                          char *err, size_t errlen)
{
    assert(path && size > 0 && call_timeout_ms > 0);
    if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        snprintf(err, errlen, "VIGIL_HOTPATH_SOCKET: path longer than 107 bytes");
        return NULL;
    }
    hpc_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->conns = calloc((size_t)size, sizeof *p->conns)) ||
        pool_init(&p->slots, size) != 0) {
        if (p)
            free(p->conns);
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(p->path, sizeof p->path, "%s", path);
    p->size = size;
    p->max_frame = max_frame;
    p->call_timeout_ms = call_timeout_ms;
    for (int i = 0; i < size; i++)
        p->conns[i].fd = -1;
    return p;
}

void hpc_pool_destroy(hpc_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->size; i++)
        if (p->conns[i].fd >= 0)
            close(p->conns[i].fd);
    pool_fini(&p->slots);
    free(p->conns);
    free(p);
}

void hpc_reply_free(hpc_reply *r)
{
    if (r) {
        free(r->payload);
        r->payload = NULL;
        r->len = 0;
    }
}

static void drop(hpc_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Connects c to the worker without blocking.  A blocking connect() to a Unix socket whose listen
 * backlog is full (a stopped or stuck worker) waits for an accept() with no deadline at all;
 * non-blocking, it fails at once with EAGAIN.  Every later send/recv on the fd is MSG_DONTWAIT
 * with a deadline anyway. */
static int dial(hpc_pool *p, hpc_conn *c, char *err, size_t errlen)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return HPC_DOWN;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, p->path, strlen(p->path) + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(err, errlen, "hotpath worker unreachable at %s: %s", p->path,
                 errno == EAGAIN ? "not accepting connections (backlog full)" : strerror(errno));
        close(fd);
        return HPC_DOWN;
    }
    c->fd = fd;
    return HPC_OK;
}

/* Sends the request frame: header, the trace-context block when tc is not NULL (WIRE_F_TRACE),
 * then the op's payload.  Returns a wire_io result. */
static int send_request(int fd, wire_header *h, const wire_trace_ctx *tc, const void *payload,
                        uint32_t len, int64_t deadline_ms)
{
    if (!tc)
        return wire_send_frame(fd, h, payload, deadline_ms);
    uint8_t head[WIRE_HEADER_SIZE + WIRE_TRACE_CTX_SIZE];
    h->flags |= WIRE_F_TRACE;
    h->payload_len = len + WIRE_TRACE_CTX_SIZE;
    wire_header_encode(head, h);
    wire_trace_ctx_encode(head + WIRE_HEADER_SIZE, tc);
    int rc = wire_write_full(fd, head, sizeof head, deadline_ms);
    if (rc == WIRE_IO_OK && len)
        rc = wire_write_full(fd, payload, len, deadline_ms);
    return rc;
}

/* Reads the timing block that starts a WIRE_F_TRACE answer into reply.  Returns a wire_io
 * result, or WIRE_IO_ERR with EPROTO when the payload is shorter than the block. */
static int read_timing(int fd, wire_header *rh, hpc_reply *reply, int64_t deadline_ms)
{
    uint8_t tb[WIRE_TRACE_TIMING_SIZE];
    if (rh->payload_len < WIRE_TRACE_TIMING_SIZE) {
        errno = EPROTO;
        return WIRE_IO_ERR;
    }
    int rc = wire_read_full(fd, tb, sizeof tb, deadline_ms);
    if (rc == WIRE_IO_OK) {
        wire_trace_timing_decode(tb, &reply->queue_ns, &reply->compute_ns);
        reply->timed = 1;
        rh->payload_len -= WIRE_TRACE_TIMING_SIZE;
    }
    return rc;
}

/* One round trip on an open connection.  Returns an hpc_status; on anything but HPC_OK the
 * connection is no longer usable. */
static int round_trip(hpc_pool *p, hpc_conn *c, uint16_t op, uint16_t flags, const void *payload,
                      uint32_t len, const wire_trace_ctx *tc, int64_t deadline_ms, hpc_reply *reply,
                      char *err, size_t errlen)
{
    wire_header h = {.magic = WIRE_MAGIC,
                     .version = WIRE_VERSION,
                     .op = op,
                     .flags = flags,
                     .payload_len = len,
                     .request_id = atomic_fetch_add(&p->next_id, 1) + 1};
    reply->sent_ns = tc ? trace_now_ns() : 0;
    int rc = send_request(c->fd, &h, tc, payload, len, deadline_ms);
    if (rc != WIRE_IO_OK) {
        snprintf(err, errlen, "hotpath send: %s",
                 rc == WIRE_IO_TIMEOUT ? "deadline passed" : strerror(errno));
        return rc == WIRE_IO_TIMEOUT ? HPC_TIMEOUT : HPC_DOWN;
    }
    uint8_t hb[WIRE_HEADER_SIZE];
    rc = wire_read_full(c->fd, hb, sizeof hb, deadline_ms);
    if (rc != WIRE_IO_OK) {
        snprintf(err, errlen, "hotpath receive: %s",
                 rc == WIRE_IO_TIMEOUT ? "deadline passed" : "connection closed");
        return rc == WIRE_IO_TIMEOUT ? HPC_TIMEOUT : HPC_DOWN;
    }
    wire_header rh;
    int st = wire_header_decode(hb, p->max_frame, &rh);
    if (st == WIRE_OK && (rh.flags & WIRE_F_RESPONSE) && rh.status == WIRE_E_BUSY &&
        rh.request_id == 0) {
        /* All worker slots were taken when we connected: it answered BUSY and closed. */
        snprintf(err, errlen, "hotpath worker has no free connection slot");
        return HPC_BUSY;
    }
    if (st != WIRE_OK || !(rh.flags & WIRE_F_RESPONSE) || rh.request_id != h.request_id) {
        snprintf(err, errlen, "hotpath sent an invalid response (%s)", wire_status_name(st));
        return HPC_PROTO;
    }
    if ((rh.flags & WIRE_F_TRACE) &&
        (rc = read_timing(c->fd, &rh, reply, deadline_ms)) != WIRE_IO_OK) {
        snprintf(err, errlen, "hotpath receive: %s",
                 rc == WIRE_IO_TIMEOUT ? "deadline passed" : "bad timing block");
        return rc == WIRE_IO_TIMEOUT ? HPC_TIMEOUT : HPC_PROTO;
    }
    reply->status = rh.status;
    reply->len = rh.payload_len;
    reply->payload = malloc(rh.payload_len ? rh.payload_len : 1);
    if (!reply->payload) {
        snprintf(err, errlen, "out of memory");
        return HPC_PROTO;
    }
    if (rh.payload_len) {
        rc = wire_read_full(c->fd, reply->payload, rh.payload_len, deadline_ms);
        if (rc != WIRE_IO_OK) {
            hpc_reply_free(reply);
            snprintf(err, errlen, "hotpath receive: %s",
                     rc == WIRE_IO_TIMEOUT ? "deadline passed" : "connection closed");
            return rc == WIRE_IO_TIMEOUT ? HPC_TIMEOUT : HPC_DOWN;
        }
    }
    reply->recv_ns = tc ? trace_now_ns() : 0;
    return HPC_OK;
}

/* The metrics outcome of a call: the worker's wire status, or the client-side failure. */
static int metrics_result(int rc, const hpc_reply *reply)
{
    switch (rc) {
    case HPC_OK:
        return reply->status >= 0 && reply->status < WIRE_STATUS_MAX ? reply->status
                                                                     : WIRE_E_INTERNAL;
    case HPC_BUSY:
        return METRICS_HP_BUSY;
    case HPC_TIMEOUT:
        return METRICS_HP_TIMEOUT;
    case HPC_PROTO:
        return METRICS_HP_PROTO;
    default:
        return METRICS_HP_DOWN;
    }
}

/* hpc_call without its span; tc (may be NULL) goes into the frame, flags into its header. */
static int call_pooled(hpc_pool *p, uint16_t op, uint16_t flags, const void *payload, uint32_t len,
                       const wire_trace_ctx *tc, int64_t deadline_ms, int wait_ms, hpc_reply *reply,
                       char *err, size_t errlen)
{
    int64_t t0 = clock_now_us();
    memset(reply, 0, sizeof *reply);
    /* VIGIL_HOTPATH_TIMEOUT_MS bounds each call, inside the caller's (request) deadline. */
    int64_t own = clock_now_ms() + p->call_timeout_ms;
    if (deadline_ms > own)
        deadline_ms = own;
    int64_t until = clock_now_ms() + wait_ms;
    if (until > deadline_ms)
        until = deadline_ms;
    int slot = pool_take(&p->slots, until, conn_open, p);
    if (slot < 0) {
        snprintf(err, errlen, "all %d hotpath connections busy", p->size);
        int busy = clock_now_ms() >= deadline_ms ? HPC_TIMEOUT : HPC_BUSY;
        metrics_observe_hotpath(op, metrics_result(busy, reply), clock_now_us() - t0);
        return busy;
    }
    hpc_conn *c = &p->conns[slot];
    int rc = HPC_DOWN;
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused = c->fd >= 0;
        if (!reused && (rc = dial(p, c, err, errlen)) != HPC_OK)
            break;
        rc = round_trip(p, c, op, flags, payload, len, tc, deadline_ms, reply, err, errlen);
        if (rc == HPC_OK)
            break;
        drop(c);
        /* Only a connection that was already open may have gone stale; retry that case once. */
        if (rc != HPC_DOWN || !reused)
            break;
    }
    pool_give(&p->slots, slot);
    metrics_observe_hotpath(op, metrics_result(rc, reply), clock_now_us() - t0);
    return rc;
}

static const char *hpc_status_name(int rc)
{
    switch (rc) {
    case HPC_BUSY:
        return "busy";
    case HPC_DOWN:
        return "down";
    case HPC_TIMEOUT:
        return "timeout";
    default:
        return "protocol_error";
    }
}

/* Ends the CLIENT span s of a call and queues the worker's spans from the answer's timings. */
static void end_call_span(span_rec *s, const wire_trace_ctx *tc, uint16_t op, uint32_t len, int rc,
                          const hpc_reply *reply)
{
    const char *status = rc == HPC_OK ? wire_status_name(reply->status) : hpc_status_name(rc);
    span_attr_str(s, "rpc.system", "vigil_wire");
    span_attr_str(s, "rpc.service", "vigil-hotpath");
    span_attr_str(s, "rpc.method", wire_op_name(op));
    span_attr_str(s, "network.transport", "unix");
    span_attr_int(s, "vigil.wire.request_bytes", WIRE_HEADER_SIZE + WIRE_TRACE_CTX_SIZE + len);
    if (rc == HPC_OK)
        span_attr_int(s, "vigil.wire.response_bytes",
                      WIRE_HEADER_SIZE + (reply->timed ? WIRE_TRACE_TIMING_SIZE : 0) + reply->len);
    span_attr_str(s, "vigil.wire.status", status);
    int ok = rc == HPC_OK && reply->status == WIRE_OK;
    if (!ok)
        span_attr_str(s, "error.type", status);
    trace_span_end(s, ok ? SPAN_STATUS_UNSET : SPAN_STATUS_ERROR);
    if (rc == HPC_OK && reply->timed)
        trace_worker_spans(tc, s->span_id, reply->sent_ns, reply->recv_ns, reply->queue_ns,
                           reply->compute_ns, wire_op_name(op), status);
}

int hpc_call(hpc_pool *p, uint16_t op, const void *payload, uint32_t len, int64_t deadline_ms,
             int wait_ms, hpc_reply *reply, char *err, size_t errlen)
{
    return hpc_call_flags(p, op, 0, payload, len, deadline_ms, wait_ms, reply, err, errlen);
}

int hpc_call_flags(hpc_pool *p, uint16_t op, uint16_t flags, const void *payload, uint32_t len,
                   int64_t deadline_ms, int wait_ms, hpc_reply *reply, char *err, size_t errlen)
{
    assert(p && reply && (payload || len == 0));
    wire_trace_ctx tc;
    int has_ctx = trace_wire_ctx(&tc);
    span_rec s;
    char name[SPAN_NAME_MAX];
    snprintf(name, sizeof name, "vigil-hotpath/%s", wire_op_name(op));
    int spanned = has_ctx && trace_span_begin(&s, name, SPAN_KIND_CLIENT);
    int rc = call_pooled(p, op, flags, payload, len, has_ctx ? &tc : NULL, deadline_ms, wait_ms,
                         reply, err, errlen);
    if (spanned)
        end_call_span(&s, &tc, op, len, rc, reply);
    return rc;
}

int hpc_hello(hpc_pool *p, int64_t deadline_ms, char *err, size_t errlen)
{
    hpc_reply r;
    int rc = hpc_call(p, WIRE_OP_HELLO, NULL, 0, deadline_ms, 1000, &r, err, errlen);
    if (rc == HPC_OK && r.status != WIRE_OK) {
        snprintf(err, errlen, "hotpath HELLO answered %s", wire_status_name(r.status));
        rc = HPC_PROTO;
    }
    hpc_reply_free(&r);
    return rc;
}
