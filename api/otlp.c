/* otlp.c - OTLP/HTTP JSON export requests.  See otlp.h. */
#include "otlp.h"

#include <inttypes.h>
#include <string.h>

#include "logline.h"
#include "tracectx.h"

/* "<escaped s>" (JSON string, invalid UTF-8 as U+FFFD: logline's escaper). */
static void put_json_str(dynbuf *b, const char *s)
{
    char esc[6 * SPAN_STATE_MAX + 8];
    logline_escape(s, esc, sizeof esc);
    dynbuf_printf(b, "\"%s\"", esc);
}

static void put_kv_str(dynbuf *b, const char *key, const char *value, int comma)
{
    dynbuf_printf(b, "%s{\"key\":", comma ? "," : "");
    put_json_str(b, key);
    dynbuf_printf(b, ",\"value\":{\"stringValue\":");
    put_json_str(b, value);
    dynbuf_printf(b, "}}");
}

static void put_attr(dynbuf *b, const span_attr *a, int comma)
{
    if (a->type == SPAN_ATTR_STR) {
        put_kv_str(b, a->key, a->s, comma);
        return;
    }
    dynbuf_printf(b, "%s{\"key\":", comma ? "," : "");
    put_json_str(b, a->key);
    if (a->type == SPAN_ATTR_BOOL)
        dynbuf_printf(b, ",\"value\":{\"boolValue\":%s}}", a->i ? "true" : "false");
    else
        dynbuf_printf(b, ",\"value\":{\"intValue\":\"%" PRId64 "\"}}", a->i);
}

static int is_root(const span_rec *s)
{
    static const uint8_t zero[8];
    return memcmp(s->parent_id, zero, 8) == 0;
}

static void put_span(dynbuf *b, const span_rec *s)
{
    char tid[33], sid[17], pid[17];
    tctx_hex(tid, s->trace_id, 16);
    tctx_hex(sid, s->span_id, 8);
    dynbuf_printf(b, "{\"traceId\":\"%s\",\"spanId\":\"%s\"", tid, sid);
    if (!is_root(s)) {
        tctx_hex(pid, s->parent_id, 8);
        dynbuf_printf(b, ",\"parentSpanId\":\"%s\"", pid);
    }
    if (s->trace_state[0]) {
        dynbuf_printf(b, ",\"traceState\":");
        put_json_str(b, s->trace_state);
    }
    dynbuf_printf(b, ",\"name\":");
    put_json_str(b, s->name);
    dynbuf_printf(b,
                  ",\"kind\":%d,\"startTimeUnixNano\":\"%" PRId64
                  "\",\"endTimeUnixNano\":\"%" PRId64 "\",\"attributes\":[",
                  s->kind, s->start_ns, s->end_ns);
    for (unsigned i = 0; i < s->nattrs; i++)
        put_attr(b, &s->attrs[i], i > 0);
    dynbuf_printf(b, "],\"status\":{\"code\":%d}}", s->status);
}

/* One resourceSpans holding the spans of service svc; nothing when there are none. */
static void put_resource(dynbuf *b, const span_rec *spans, size_t n, int svc, const char *name,
                         const char *version, int *first)
{
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        if (spans[i].service != svc)
            continue;
        if (!any) {
            dynbuf_printf(b, "%s{\"resource\":{\"attributes\":[", *first ? "" : ",");
            put_kv_str(b, "service.name", name, 0);
            put_kv_str(b, "service.version", version, 1);
            put_kv_str(b, "telemetry.sdk.name", "vigil", 1);
            put_kv_str(b, "telemetry.sdk.language", "c", 1);
            dynbuf_printf(
                b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"%s\",\"version\":", OTLP_SCOPE_NAME);
            put_json_str(b, version);
            dynbuf_printf(b, "},\"spans\":[");
            *first = 0;
        } else {
            dynbuf_printf(b, ",");
        }
        put_span(b, &spans[i]);
        any = 1;
    }
    if (any)
        dynbuf_printf(b, "]}]}");
}

int otlp_encode(dynbuf *b, const span_rec *spans, size_t n, const char *api_service,
                const char *version)
{
    int first = 1;
    dynbuf_printf(b, "{\"resourceSpans\":[");
    put_resource(b, spans, n, SPAN_SVC_API, api_service, version, &first);
    put_resource(b, spans, n, SPAN_SVC_HOTPATH, OTLP_HOTPATH_SERVICE, version, &first);
    return dynbuf_printf(b, "]}");
}
