/* openapi.h - the OpenAPI 3.1 document of vigil-api, embedded at build time, and its route.
 *
 * The document is assembled from the JSON files of api/openapi/ by api/openapi/build.py (see
 * api/openapi/README.md) into build/openapi.json, whose bytes the build embeds as openapi_doc
 * (generated build/<flavour>/gen/openapi_doc.c).  Immutable, so thread-safe; serving it costs one
 * copy of about 50 KB. */
#ifndef VIGIL_OPENAPI_H
#define VIGIL_OPENAPI_H

#include <stddef.h>

#include "http.h"

/* The document's bytes (NUL-terminated; openapi_doc_len excludes the NUL). */
extern const char openapi_doc[];
extern const size_t openapi_doc_len;

/* GET /api/v1/openapi.json: the document as application/json (no key). */
void openapi_handler(http_req *req, http_resp *resp);

#endif
