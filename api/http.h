/* http.h - the HTTP layer of vigil-api: libmicrohttpd on epoll event threads with handler threads
 * for everything that may block (see http.c), request bodies with hard limits, problem+json errors,
 * request ids, one JSON log line per request, authentication and scope checks on the request head
 * (before any body byte is read), a deadline for the request head, a per-address connection limit,
 * and graceful drain.
 *
 * Owns: http_req (one per request, freed in MHD's completion callback), http_resp (what a handler
 * fills), the daemon.  Handlers run on a handler thread of their own (one per request being
 * handled, as under thread-per-request) and may block, bounded by the request deadline
 * (req->deadline_ms) that every pool wait and query honours; only ROUTE_INLINE handlers run on
 * an event thread and must never block.  A request's steps (key check, handler, stream blocks)
 * run one at a time, each on one thread, with the request's trace context attached.
 *
 * Knows no resource: the route table and the authentication check are handed to http_start by
 * main (http_setup), so this layer builds and runs with any table (tests/unit/test_http.c). */
#ifndef VIGIL_HTTP_H
#define VIGIL_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "router.h"

struct MHD_Connection;
struct cJSON;

#define HTTP_MAX_PARAMS ROUTER_MAX_PARAMS
#define HTTP_REQUEST_ID_MAX 64

enum http_scope { SCOPE_NONE = 0, SCOPE_READ = 1, SCOPE_WRITE = 2, SCOPE_ADMIN = 4 };

typedef struct http_req {
    const app *app;
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    char request_id[HTTP_REQUEST_ID_MAX + 1];
    int64_t start_us;
    int64_t deadline_ms; /* absolute, clock_now_ms() */
    char *body;          /* NUL-terminated copy of the body (may be empty) */
    size_t body_len;
    const char *params[HTTP_MAX_PARAMS]; /* path parameters in route order, NUL-terminated */
    int nparams;
    char key_id[40];     /* authenticated API key's UUID, "" when unauthenticated */
    unsigned key_scopes; /* SCOPE_* bits */
    const route *routes; /* the server's route table (http_setup), e.g. for /metrics labels */
    size_t nroutes;
} http_req;

/* A streamed body's producer (http_stream): writes at most max bytes into buf and returns how
 * many (> 0), 0 at the end of the body, or -1 to abort the connection (the client sees a truncated
 * chunked body).  Runs on a handler thread after the handler returned, once per block (it may
 * block, bounded by the request's deadline). */
typedef long (*http_stream_fn)(void *ctx, char *buf, size_t max);

typedef struct http_resp {
    int status;
    char *body;      /* malloc'd (static when body_static); NULL for an empty body */
    int body_static; /* set by http_static: body is never freed or copied */
    size_t body_len;
    const char *content_type; /* static string */
    char location[256];
    char allow[64];
    int retry_after;       /* seconds, 0 = no header */
    int replayed;          /* Idempotent-Replayed: true */
    int close;             /* Connection: close - the connection ends after this answer */
    http_stream_fn stream; /* set by http_stream: the body is produced block by block */
    void *stream_ctx;      /* owned by the response: stream_free(stream_ctx) at the end */
    void (*stream_free)(void *ctx);
} http_resp;

typedef void (*http_handler)(http_req *req, http_resp *resp); /* = route_handler */

/* Checks req's credentials grant scope (a SCOPE_* bit).  Returns 0, or -1 with resp filled.
 * Called when the request head is complete and before any body byte is read: req->body is NULL
 * then.  May block, bounded by req->deadline_ms. */
typedef int (*http_auth_fn)(http_req *req, http_resp *resp, unsigned scope);

/* The non-blocking first try of a key check: 0 or -1 as http_auth_fn, or 1 when it cannot tell
 * without blocking (then http_auth_fn decides, on a handler thread). */
typedef int (*http_auth_try_fn)(http_req *req, http_resp *resp, unsigned scope);

/* What the HTTP layer is given at start-up.  routes must outlive the server; authenticate is
 * called for every route whose scope is not SCOPE_NONE (NULL: such routes answer 401), after
 * authenticate_try (may be NULL) on the event thread, when that answered 1. */
typedef struct http_setup {
    const route *routes;
    size_t nroutes;
    http_auth_fn authenticate;
    http_auth_try_fn authenticate_try;
} http_setup;

/* Response helpers.  They replace whatever body resp had.  http_json takes ownership of obj and
 * deletes it.  On allocation failure they fall back to a bodiless 500. */
void http_json(http_resp *resp, int status, struct cJSON *obj);
void http_raw(http_resp *resp, int status, const char *content_type, char *body_take, size_t len);
/* A body that outlives the server (a string literal): sent without a copy. */
void http_static(http_resp *resp, int status, const char *content_type, const char *body,
                 size_t len);
/* RFC 9457 problem: type "https://vigil.dev/problems/<code>", title, status, detail, code, and
 * field when non-NULL.  detail is printf-style. */
void http_problem(http_resp *resp, int status, const char *code, const char *field,
                  const char *detail_fmt, ...) __attribute__((format(printf, 5, 6)));

/* A streamed answer (chunked transfer encoding, bounded memory whatever its size): fn produces the
 * body block by block after the handler returns; ctx belongs to the response from here on and is
 * freed with free_ctx(ctx) exactly once (after the last block, on a client that went away, or at
 * once if the response cannot be queued).  Replaces any body resp had. */
void http_stream(http_resp *resp, int status, const char *content_type, http_stream_fn fn,
                 void *ctx, void (*free_ctx)(void *ctx));

/* 503 with Retry-After for an exhausted pool, an unreachable dependency, or a passed deadline. */
void http_unavailable(http_resp *resp, const char *what);

/* Parses the strict-JSON request body into *out (an object).  On failure fills resp with the
 * right error (415 wrong content type, 400 malformed/not an object) and returns -1. */
int http_body_object(http_req *req, http_resp *resp, struct cJSON **out);

/* True when the Content-Type value ct (may be NULL) is the media type type, matched without
 * regard to case and followed by nothing or by parameters ("application/json; charset=utf-8"),
 * never a longer type ("application/jsonx"). */
int http_media_type_is(const char *ct, const char *type);

/* Request header value or NULL.  Query argument value or NULL. */
const char *http_header(http_req *req, const char *name);
const char *http_query(http_req *req, const char *name);

/* Name of the first query argument not in allowed (NULL-terminated list), or NULL. */
const char *http_query_unknown(http_req *req, const char *const *allowed);

/* Milliseconds left before the request deadline (<= 0: passed). */
int64_t http_time_left_ms(const http_req *req);

typedef struct http_server http_server;

/* Starts the daemon on a->cfg's address, dispatching through setup's table.  Returns the server
 * (caller stops it with http_stop) or NULL with err filled.  a and setup->routes must outlive it.
 */
http_server *http_start(const app *a, const http_setup *setup, char *err, size_t errlen);
/* Stops accepting, waits up to drain_timeout_s for in-flight requests, stops the daemon and
 * frees s.  Returns the number of requests still in flight when the drain timed out (0 = clean). */
int http_stop(http_server *s);

#endif
