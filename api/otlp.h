/* otlp.h - OTLP/HTTP JSON encoding of span records (ExportTraceServiceRequest,
 * opentelemetry-proto's JSON mapping: ids as lowercase hex, 64-bit integers as decimal strings,
 * enums as integers).
 *
 * Owns: the byte layout of one export request.  Spans are grouped into one resourceSpans per
 * service (span_rec.service): vigil-api's own (service.name from OTEL_SERVICE_NAME) and
 * vigil-hotpath's (service.name "vigil-hotpath", the worker's spans, which vigil-api sends for it).
 * Costs: O(bytes); allocates only through the caller's dynbuf (its bound applies).  Pure. */
#ifndef VIGIL_OTLP_H
#define VIGIL_OTLP_H

#include <stddef.h>

#include "dynbuf.h"
#include "spanring.h"

#define OTLP_HOTPATH_SERVICE "vigil-hotpath"
#define OTLP_SCOPE_NAME "vigil"

/* Appends the JSON export request for spans[0..n) to b; api_service is vigil-api's service.name,
 * version the service.version of both resources.  Returns DYNBUF_OK or b's sticky error. */
int otlp_encode(dynbuf *b, const span_rec *spans, size_t n, const char *api_service,
                const char *version);

#endif
