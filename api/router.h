/* router.h - maps (method, path) to a route of the table in routes.c.
 *
 * Patterns are literal segments and "{name}" placeholders that match one non-empty segment.
 * Costs: O(routes x segments) per request, no allocation: parameters point into the caller's
 * copy of the path, which router_match splits in place. */
#ifndef VIGIL_ROUTER_H
#define VIGIL_ROUTER_H

#include <stddef.h>

#include "http.h"

enum route_body { BODY_NONE = 0, BODY_JSON, BODY_MODEL, BODY_PREDICT };

typedef struct route {
    const char *method;
    const char *pattern;
    http_handler fn;
    unsigned scope; /* SCOPE_NONE: public; otherwise the scope a key needs */
    int body;       /* enum route_body: which size limit applies */
} route;

/* The application's route table (routes.c). */
extern const route routes_table[];
extern const size_t routes_count;

#define ROUTER_MAX_SEGMENTS 16
#define ROUTER_MAX_PATH 512

/* Matches path (split in place: it must be a writable copy) against table.  Returns the route and
 * fills params/nparams; or NULL with *status 404 (no pattern matches) or 405 (pattern matches, not
 * the method; allow[] then lists the methods, comma-separated). */
const route *router_match(const route *table, size_t n, const char *method, char *path,
                          const char **params, int *nparams, int *status, char *allow,
                          size_t allowlen);

#endif
