/* hpclient.h - the API's bounded pool of connections to vigil-hotpath over its Unix socket.
 *
 * Owns: the sockets, request ids, frame round trips with deadlines.  A call on a pooled connection
 * that turns out dead (worker restarted) is retried once on a fresh connection, which is safe
 * because every worker op is idempotent.  Thread-safe. */
#ifndef VIGIL_HPCLIENT_H
#define VIGIL_HPCLIENT_H

#include <stddef.h>
#include <stdint.h>

enum hpc_status {
    HPC_OK = 0,      /* a response frame arrived: see hpc_reply.status (a wire_status) */
    HPC_BUSY = 1,    /* no pooled connection free within the wait */
    HPC_DOWN = 2,    /* cannot connect, or the connection broke */
    HPC_TIMEOUT = 3, /* deadline passed */
    HPC_PROTO = 4,   /* the worker answered something that is not a valid response */
};

typedef struct hpc_pool hpc_pool;

typedef struct hpc_reply {
    int status;       /* wire_status of the response */
    uint8_t *payload; /* malloc'd, caller frees with hpc_reply_free */
    uint32_t len;     /* the op's payload (a WIRE_F_TRACE timing block is taken off) */
    int timed;        /* the answer carried the worker's timings (traced requests, wire.h) */
    uint64_t queue_ns, compute_ns;
    int64_t sent_ns, recv_ns; /* Unix ns: the frame's send started / the answer was read */
} hpc_reply;

/* Creates a pool of at most size connections (opened lazily) to the socket at path.  max_frame
 * bounds response payloads; call_timeout_ms (VIGIL_HOTPATH_TIMEOUT_MS) bounds every call: its
 * deadline is min(the caller's deadline, start + call_timeout_ms).  Returns NULL with err. */
hpc_pool *hpc_pool_create(const char *path, int size, uint32_t max_frame, int call_timeout_ms,
                          char *err, size_t errlen);
void hpc_pool_destroy(hpc_pool *p);

/* Sends one request (op, payload[0..len)) and waits for its response until deadline_ms
 * (absolute, clock_now_ms; capped at now + the pool's call timeout), waiting at most wait_ms for a
 * pooled connection.  Returns an
 * hpc_status; on HPC_OK *reply is filled.  err gets a one-line reason otherwise.
 * On a thread serving a traced request (trace.h) the frame carries the trace context
 * (WIRE_F_TRACE) and, when sampled, the call is a CLIENT span with the worker's own spans under
 * it, made from the timings of the answer. */
int hpc_call(hpc_pool *p, uint16_t op, const void *payload, uint32_t len, int64_t deadline_ms,
             int wait_ms, hpc_reply *reply, char *err, size_t errlen);
/* hpc_call with request header flags (WIRE_F_BULK: a low-priority backtest batch). */
int hpc_call_flags(hpc_pool *p, uint16_t op, uint16_t flags, const void *payload, uint32_t len,
                   int64_t deadline_ms, int wait_ms, hpc_reply *reply, char *err, size_t errlen);
void hpc_reply_free(hpc_reply *r);

/* HELLO round trip: HPC_OK when the worker answers with WIRE_OK. */
int hpc_hello(hpc_pool *p, int64_t deadline_ms, char *err, size_t errlen);

#endif
