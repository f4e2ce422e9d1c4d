/* trace.h - OpenTelemetry traces of vigil-api (issue 16): the per-request trace context, the spans
 * (server, PostgreSQL, worker client, and the worker's own), and their export over OTLP/HTTP JSON
 * from a background thread.
 *
 * Owns: the process's one tracer (configuration from the standard OTEL_* variables, the span ring,
 * the exporter thread and its libcurl handle), like OpenTelemetry's global TracerProvider, and
 * each thread's current request context.  The context is thread-local because each step of a
 * request runs on one thread at a time (http.c attaches it on the thread that runs the step and
 * detaches it after: trace_request_attach/detach): the database and worker clients find it there,
 * as OpenTelemetry's implicit Context works, instead of every db_/hpc_ call taking one more
 * parameter.  Threads without a request (start-up,
 * canceller, health checks' helper) have no context and make no spans.
 *
 * Off unless an endpoint is set (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or
 * OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/traces") and OTEL_SDK_DISABLED is not "true": then every
 * function here is a no-op costing one load.  On, a request's spans are copied into a bounded
 * ring (OTEL_BSP_MAX_QUEUE_SIZE records, allocated once); the exporter takes batches of
 * OTEL_BSP_MAX_EXPORT_BATCH_SIZE (sooner when a batch is full, else every OTEL_BSP_SCHEDULE_DELAY
 * ms) and POSTs them with OTEL_EXPORTER_OTLP_TIMEOUT (default here 2000 ms).  A full ring or a
 * failed export drops spans and counts them (metrics.c: vigil_trace_spans_dropped_total); no
 * request ever waits for the collector and the memory never grows.
 *
 * Every log line a traced request's thread writes carries its trace_id and span_id (the server
 * span's), through logline_trace_set. */
#ifndef VIGIL_TRACE_H
#define VIGIL_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "spanring.h"
#include "tracectx.h"
#include "wire.h"

typedef struct trace_cfg {
    int enabled;          /* an endpoint is set and the SDK is not disabled */
    char endpoint[1024];  /* full URL of the traces endpoint */
    char service[128];    /* OTEL_SERVICE_NAME, default "vigil-api" */
    tctx_sampler sampler; /* OTEL_TRACES_SAMPLER[_ARG], default parentbased_always_on */
    size_t queue_size;    /* OTEL_BSP_MAX_QUEUE_SIZE, default 2048 */
    size_t batch_size;    /* OTEL_BSP_MAX_EXPORT_BATCH_SIZE, default 512, <= queue_size */
    int delay_ms;         /* OTEL_BSP_SCHEDULE_DELAY, default 5000 */
    int timeout_ms;       /* OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT, default 2000 */
} trace_cfg;

/* Reads the OTEL_* variables.  Values the specification says to ignore with a warning (unknown
 * sampler, bad ratio, unsupported protocol) are logged and replaced by their defaults; a number
 * that does not parse is an error.  Returns 0, or -1 with err naming the variable. */
int trace_cfg_load(trace_cfg *c, char *err, size_t errlen);

/* Starts the tracer when c->enabled (otherwise does nothing and returns 0): allocates the ring,
 * starts the exporter thread.  Call once, before any request thread exists.  version is the
 * service.version.  Returns 0, or -1 with err. */
int trace_start(const trace_cfg *c, const char *version, char *err, size_t errlen);
/* Stops the exporter after one last export of what is queued (bounded by the export timeout) and
 * frees the ring.  Call after the HTTP server has stopped. */
void trace_stop(void);
/* 1 when the tracer runs. */
int trace_enabled(void);

/* ---- the request (http.c) ------------------------------------------------------------------ */

/* A request's head has arrived on this thread: starts its context from the traceparent and
 * tracestate header values (either may be NULL; an invalid traceparent starts a new trace, never
 * an error), decides sampling, and sets the thread's log-line ids. */
void trace_request_begin(const char *traceparent, const char *tracestate);
/* A request's context while it is between threads: http.c runs a request's steps on its event
 * thread and on a handler thread, one at a time, and carries the context across.  Opaque. */
typedef struct trace_request_ctx {
    int on;
    int sampled;
    int has_parent;
    uint8_t trace_id[16], span_id[8], parent_id[8];
    int64_t start_ns;
    char state[TCTX_STATE_MAX + 1];
} trace_request_ctx;
/* Moves this thread's request context into *out (the thread is left without one, its log-line
 * ids cleared).  Costs one store when tracing is off. */
void trace_request_detach(trace_request_ctx *out);
/* Makes *in (from trace_request_detach) this thread's request context, with its log-line ids. */
void trace_request_attach(const trace_request_ctx *in);
/* The traceparent naming this request's server span ("00-<trace>-<span>-<flags>") into
 * out[TCTX_TRACEPARENT_LEN + 1], for the response header.  Returns 0 when there is no context. */
int trace_request_traceparent(char *out);
/* The request is complete: ends the server span (SERVER kind; name "<method> <route>";
 * http.request.method, http.route (NULL when no route matched), url.path,
 * http.response.status_code, vigil.request_id; status ERROR on 5xx), clears the context and the
 * log-line ids.  Call after the request's last log line. */
void trace_request_end(const char *method, const char *pattern, const char *path,
                       const char *request_id, int status);

/* ---- child spans of the current request ------------------------------------------------------ */

/* Starts s as a child of the current request's server span.  Returns 1 when it is recorded (a
 * sampled request on this thread), 0 otherwise (s is then untouched and must not be ended). */
int trace_span_begin(span_rec *s, const char *name, int kind);
/* Ends s now with status (enum span_status) and queues it. */
void trace_span_end(span_rec *s, int status);

/* The block for a worker call (wire.h, WIRE_F_TRACE): the trace id, a fresh id for the worker's
 * span, the sampled flag.  Returns 1 when this thread has a context, 0 otherwise. */
int trace_wire_ctx(wire_trace_ctx *out);
/* After a sampled worker call answered with timings: queues the worker's span (SERVER kind,
 * resource vigil-hotpath, id tc->span_id, child of the client span client_id) covering queue
 * wait + compute, and its child "compute" span (INTERNAL).  sent_ns/recv_ns (Unix ns) bound the
 * round trip as the API saw it; the worker's span sits inside them, the socket transit split
 * evenly before and after it (both clocks are the host's, but read on two sides). */
void trace_worker_spans(const wire_trace_ctx *tc, const uint8_t client_id[8], int64_t sent_ns,
                        int64_t recv_ns, uint64_t queue_ns, uint64_t compute_ns, const char *op,
                        const char *status);

/* ---- PostgreSQL (db.c) ------------------------------------------------------------------------
 */

/* One span per connection hand-out: from db_acquire to db_release, every statement run on the
 * connection in between (a transaction, or the statements of one handler step).  Attributes:
 * db.system.name "postgresql", db.operation.name (the first statement's operation that is not
 * transaction control), db.collection.name (its table, when the statement names one plainly),
 * db.query.summary ("BEGIN; SELECT users; INSERT transactions; COMMIT", cut to fit),
 * db.operation.batch.size (statements, when more than one), error.type (the SQLSTATE or the
 * failure) and status ERROR when a statement failed.  Never a parameter value. */
typedef struct trace_db {
    span_rec rec;
    int on;
    int nstmt;
    int failed;
    int64_t acquired_ns;
    char op[24];
    char coll[64];
    char summary[SPAN_ATTR_STR_MAX];
    char error_type[24];
} trace_db;

/* Connection handed out; wait_started_ns (trace_now_ns) is when db_acquire was entered. */
void trace_db_begin(trace_db *t, int64_t wait_started_ns);
/* A statement ran; error_type is NULL when it succeeded, else what went wrong (the SQLSTATE,
 * "timeout", "connection_lost"): the first one becomes the span's error.type. */
void trace_db_statement(trace_db *t, const char *sql, const char *error_type);
/* The connection goes back: ends and queues the span. */
void trace_db_end(trace_db *t);

/* CLOCK_REALTIME in nanoseconds: every span time. */
int64_t trace_now_ns(void);

/* The operation and table of one SQL statement (the first top-level SELECT/INSERT/UPDATE/DELETE
 * and its FROM/INTO/UPDATE target, else the first word, uppercased).  For the db span; exposed for
 * the unit tests.  op[opcap], coll[collcap] ("" when none). */
void trace_sql_summary(const char *sql, char *op, size_t opcap, char *coll, size_t collcap);

#endif
