/* routes.c - every HTTP route of vigil-api in one table: method, path pattern, handler, the scope
 * an API key needs (SCOPE_NONE = public) and which body-size limit applies.  To add an endpoint,
 * add a line here and a handler in the resource's module. */
#include "health.h"
#include "models.h"
#include "router.h"
#include "users.h"

const route routes_table[] = {
    {"GET", "/health", health_live, SCOPE_NONE, BODY_NONE},
    {"GET", "/ready", health_ready, SCOPE_NONE, BODY_NONE},

    {"POST", "/api/v1/users", users_create, SCOPE_WRITE, BODY_JSON},
    {"GET", "/api/v1/users", users_list, SCOPE_READ, BODY_NONE},
    {"GET", "/api/v1/users/{id}", users_get, SCOPE_READ, BODY_NONE},
    {"PATCH", "/api/v1/users/{id}", users_update, SCOPE_WRITE, BODY_JSON},
    {"DELETE", "/api/v1/users/{id}", users_delete, SCOPE_WRITE, BODY_NONE},

    {"POST", "/api/v1/models", models_create, SCOPE_ADMIN, BODY_MODEL},
    {"GET", "/api/v1/models", models_list, SCOPE_READ, BODY_NONE},
    {"GET", "/api/v1/models/{id}", models_get, SCOPE_READ, BODY_NONE},
    {"GET", "/api/v1/models/{id}/source", models_source, SCOPE_READ, BODY_NONE},
    {"DELETE", "/api/v1/models/{id}", models_delete, SCOPE_ADMIN, BODY_NONE},
    {"POST", "/api/v1/models/{id}/predict", models_predict, SCOPE_READ, BODY_PREDICT},
};

const size_t routes_count = sizeof routes_table / sizeof routes_table[0];
