/* openapi.c - serves the embedded OpenAPI document.  See openapi.h. */
#include "openapi.h"

#include <stdlib.h>
#include <string.h>

void openapi_handler(http_req *req, http_resp *resp)
{
    (void)req;
    char *body = malloc(openapi_doc_len);
    if (!body) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
        return;
    }
    memcpy(body, openapi_doc, openapi_doc_len);
    http_raw(resp, 200, "application/json", body, openapi_doc_len);
}
