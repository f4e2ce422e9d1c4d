/* router.h - maps (method, path) to a route of a table (the application's is in routes.c, handed
 * to the HTTP layer at start-up; a test may hand its own).
 *
 * Patterns are literal segments and "{name}" placeholders that match one non-empty segment.
 * Costs: O(routes x segments) per request, no allocation: parameters point into the caller's
 * copy of the path, which router_match splits in place.  Includes nothing of api/: the handler
 * type names the HTTP layer's request and response structs without needing their definitions. */
#ifndef VIGIL_ROUTER_H
#define VIGIL_ROUTER_H

#include <stddef.h>

struct http_req;
struct http_resp;

#define ROUTER_MAX_PARAMS 4

/* A resource handler: runs on a handler thread (or, for ROUTE_INLINE, on the HTTP layer's event
 * thread), fills the response (see http.h). */
typedef void (*route_handler)(struct http_req *req, struct http_resp *resp);

enum route_body { BODY_NONE = 0, BODY_JSON, BODY_MODEL, BODY_PREDICT };

/* Route flags.  ROUTE_INLINE: the handler never blocks (no lock held long, no I/O, no pool wait),
 * so the HTTP layer runs it on its event thread instead of handing it to a handler thread: for
 * /health, which load balancers call thousands of times a second.  ROUTE_PROBE: a probe or a
 * scrape (/health, /ready, /metrics), left out of the access log when VIGIL_ACCESS_LOG_PROBES=0. */
enum route_flag { ROUTE_INLINE = 1, ROUTE_PROBE = 2 };

typedef struct route {
    const char *method;
    const char *pattern;
    route_handler fn;
    unsigned scope; /* 0 (SCOPE_NONE): public; otherwise the scope a key needs (http.h) */
    int body;       /* enum route_body: which size limit applies */
    unsigned flags; /* ROUTE_* bits; 0 when omitted */
} route;

#define ROUTER_MAX_SEGMENTS 16
#define ROUTER_MAX_PATH 512

/* Matches path (split in place: it must be a writable copy) against table.  Returns the route and
 * fills params[ROUTER_MAX_PARAMS]/nparams; or NULL with *status 404 (no pattern matches) or 405
 * (pattern matches, not the method; allow[] then lists the methods, comma-separated). */
const route *router_match(const route *table, size_t n, const char *method, char *path,
                          const char **params, int *nparams, int *status, char *allow,
                          size_t allowlen);

#endif
