/* routes.c - every HTTP route of vigil-api in one table: method, path pattern, handler, the scope
 * an API key needs (SCOPE_NONE = public) and which body-size limit applies.  To add an endpoint,
 * add a line here, a handler in the resource's module and its operation in the area's fragment of
 * api/openapi/ (test_openapi fails until the table and the OpenAPI document agree). */
#include "routes.h"

#include "backtests.h"
#include "decision.h"
#include "export.h"
#include "health.h"
#include "http.h"
#include "lists.h"
#include "models.h"
#include "openapi.h"
#include "policy.h"
#include "policy_versions.h"
#include "scrape.h"
#include "transactions.h"
#include "reviews.h"
#include "users.h"
#include "webhooks.h"

const route routes_table[] = {
    {"GET", "/health", health_live, SCOPE_NONE, BODY_NONE, ROUTE_INLINE | ROUTE_PROBE},
    {"GET", "/ready", health_ready, SCOPE_NONE, BODY_NONE, ROUTE_PROBE},
    {"GET", "/metrics", scrape_handler, SCOPE_NONE, BODY_NONE, ROUTE_PROBE},
    {"GET", "/api/v1/openapi.json", openapi_handler, SCOPE_NONE, BODY_NONE, 0},

    {"POST", "/api/v1/users", users_create, SCOPE_WRITE, BODY_JSON, 0},
    {"GET", "/api/v1/users", users_list, SCOPE_READ, BODY_NONE, 0},
    {"GET", "/api/v1/users/{id}", users_get, SCOPE_READ, BODY_NONE, 0},
    {"PATCH", "/api/v1/users/{id}", users_update, SCOPE_WRITE, BODY_JSON, 0},
    {"DELETE", "/api/v1/users/{id}", users_delete, SCOPE_WRITE, BODY_NONE, 0},

    {"POST", "/api/v1/models", models_create, SCOPE_ADMIN, BODY_MODEL, 0},
    {"GET", "/api/v1/models", models_list, SCOPE_READ, BODY_NONE, 0},
    {"GET", "/api/v1/models/{id}", models_get, SCOPE_READ, BODY_NONE, 0},
    {"GET", "/api/v1/models/{id}/source", models_source, SCOPE_READ, BODY_NONE, 0},
    {"DELETE", "/api/v1/models/{id}", models_delete, SCOPE_ADMIN, BODY_NONE, 0},
    {"POST", "/api/v1/models/{id}/predict", models_predict, SCOPE_READ, BODY_PREDICT, 0},
    {"POST", "/api/v1/models/{id}/explain", models_explain, SCOPE_READ, BODY_PREDICT, 0},

    {"GET", "/api/v1/policy", policy_get, SCOPE_READ, BODY_NONE, 0},
    {"PUT", "/api/v1/policy", policy_put, SCOPE_ADMIN, BODY_JSON, 0},
    {"GET", "/api/v1/policy/versions", policy_versions_list, SCOPE_READ, BODY_NONE, 0},
    {"GET", "/api/v1/policy/versions/{n}", policy_versions_get, SCOPE_READ, BODY_NONE, 0},
    {"POST", "/api/v1/policy/versions/{n}/activate", policy_versions_activate, SCOPE_ADMIN,
     BODY_NONE, 0},

    {"POST", "/api/v1/lists", lists_create, SCOPE_ADMIN, BODY_JSON, 0},
    {"GET", "/api/v1/lists", lists_list, SCOPE_READ, BODY_NONE, 0},
    {"GET", "/api/v1/lists/{id}", lists_get, SCOPE_READ, BODY_NONE, 0},
    {"DELETE", "/api/v1/lists/{id}", lists_delete, SCOPE_ADMIN, BODY_NONE, 0},
    /* up to 100,000 items a call: the predict body limit (VIGIL_MAX_PREDICT_BYTES) applies */
    {"POST", "/api/v1/lists/{id}/items", lists_items_add, SCOPE_WRITE, BODY_PREDICT, 0},
    {"DELETE", "/api/v1/lists/{id}/items", lists_items_remove, SCOPE_WRITE, BODY_PREDICT, 0},
    {"GET", "/api/v1/lists/{id}/items", lists_items_page, SCOPE_READ, BODY_NONE, 0},
    {"GET", "/api/v1/lists/{id}/items/{value}", lists_item_member, SCOPE_READ, BODY_NONE, 0},
    {"GET", "/api/v1/lists/{id}/changes", lists_changes, SCOPE_READ, BODY_NONE, 0},

    {"POST", "/api/v1/transactions", decision_post, SCOPE_WRITE, BODY_JSON, 0},
    {"GET", "/api/v1/transactions", txn_list, SCOPE_READ, BODY_NONE, 0},
    {"GET", "/api/v1/transactions/export", export_transactions, SCOPE_READ, BODY_NONE, 0},
    {"GET", "/api/v1/transactions/{id}", txn_get, SCOPE_READ, BODY_NONE, 0},
    {"PATCH", "/api/v1/transactions/{id}", txn_label, SCOPE_WRITE, BODY_JSON, 0},
    {"GET", "/api/v1/users/{id}/transactions", txn_list_for_user, SCOPE_READ, BODY_NONE, 0},

    {"POST", "/api/v1/backtests", backtests_create, SCOPE_ADMIN, BODY_JSON, 0},
    {"GET", "/api/v1/backtests", backtests_list, SCOPE_READ, BODY_NONE, 0},
    {"GET", "/api/v1/backtests/{id}", backtests_get, SCOPE_READ, BODY_NONE, 0},
    {"DELETE", "/api/v1/backtests/{id}", backtests_cancel, SCOPE_ADMIN, BODY_NONE, 0},
    {"GET", "/api/v1/reviews", reviews_list, SCOPE_READ, BODY_NONE, 0},
    {"GET", "/api/v1/reviews/{id}", reviews_get, SCOPE_READ, BODY_NONE, 0},
    {"POST", "/api/v1/reviews/{id}/claim", reviews_claim, SCOPE_WRITE, BODY_NONE, 0},
    {"POST", "/api/v1/reviews/{id}/close", reviews_close, SCOPE_WRITE, BODY_JSON, 0},

    {"POST", "/api/v1/webhooks", webhooks_create, SCOPE_ADMIN, BODY_JSON, 0},
    {"GET", "/api/v1/webhooks", webhooks_list, SCOPE_ADMIN, BODY_NONE, 0},
    {"GET", "/api/v1/webhooks/{id}", webhooks_get, SCOPE_ADMIN, BODY_NONE, 0},
    {"PATCH", "/api/v1/webhooks/{id}", webhooks_update, SCOPE_ADMIN, BODY_JSON, 0},
    {"DELETE", "/api/v1/webhooks/{id}", webhooks_delete, SCOPE_ADMIN, BODY_NONE, 0},
    {"POST", "/api/v1/webhooks/{id}/rotate-secret", webhooks_rotate_secret, SCOPE_ADMIN, BODY_NONE,
     0},
    {"GET", "/api/v1/webhooks/{id}/deliveries", webhooks_deliveries, SCOPE_ADMIN, BODY_NONE, 0},
};

const size_t routes_count = sizeof routes_table / sizeof routes_table[0];
