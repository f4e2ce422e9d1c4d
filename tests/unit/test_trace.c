/* test_trace.c - unit tests for tracing (issue 16): W3C traceparent/tracestate (api/tracectx.c)
 * against the specification's rules and its own examples, the samplers' decisions at the ratio
 * boundaries (bounds computed by hand from the OpenTelemetry rule: sampled when the trace id's
 * bytes 8..15, big-endian, shifted right once, are below ratio * 2^63), the span ring's drop
 * accounting at N and N+1 (api/spanring.c), the OTLP/JSON encoding read back with cJSON
 * (api/otlp.c), the SQL summary of db spans (api/trace.c), the WIRE_F_TRACE blocks' bytes as
 * wire.h lays them out, and the log-line ids (common/logline.c). */
#include <check.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "dynbuf.h"
#include "logline.h"
#include "otlp.h"
#include "spanring.h"
#include "trace.h"
#include "tracectx.h"
#include "wire.h"

/* The W3C specification's example. */
#define TP_EXAMPLE "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

/* ---- traceparent ----------------------------------------------------------------------------- */

START_TEST(traceparent_valid)
{
    static const uint8_t tid[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                    0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
    static const uint8_t sid[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
    tctx_parent p;
    ck_assert_int_eq(tctx_parse_traceparent(TP_EXAMPLE, &p), 0);
    ck_assert_mem_eq(p.trace_id, tid, 16);
    ck_assert_mem_eq(p.span_id, sid, 8);
    ck_assert_uint_eq(p.flags, 1);
    char out[TCTX_TRACEPARENT_LEN + 1];
    tctx_format_traceparent(out, tid, sid, 1);
    ck_assert_str_eq(out, TP_EXAMPLE);
    /* not sampled; unknown flag bits are read as given */
    ck_assert_int_eq(
        tctx_parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &p), 0);
    ck_assert_uint_eq(p.flags, 0);
    ck_assert_int_eq(
        tctx_parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", &p), 0);
    ck_assert_uint_eq(p.flags, 0xff);
}
END_TEST

START_TEST(traceparent_invalid)
{
    static const char *const bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",     /* 54 chars */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",   /* v00 must be 55 */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",   /* v00 must be 55 */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    /* uppercase trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",    /* uppercase span id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",    /* uppercase flags */
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    /* uppercase version */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    /* forbidden version */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    /* zero span id */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",    /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",    /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",    /* not hex */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",    /* flags not hex */
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* leading space */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01abc", /* v01: extra without '-' */
    };
    tctx_parent p;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(tctx_parse_traceparent(bad[i], &p) == -1, "accepted '%s'", bad[i]);
    ck_assert_int_eq(tctx_parse_traceparent(NULL, &p), -1);
}
END_TEST

START_TEST(traceparent_future_version)
{
    /* A higher version is parsed as 00 when it is 55 characters, or longer with '-' next. */
    tctx_parent p;
    ck_assert_int_eq(
        tctx_parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &p), 0);
    ck_assert_int_eq(tctx_parse_traceparent(
                         "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever", &p),
                     0);
    ck_assert_uint_eq(p.flags, 1);
    ck_assert_uint_eq(p.trace_id[0], 0x4b);
}
END_TEST

/* ---- tracestate ------------------------------------------------------------------------------ */

START_TEST(tracestate_bounds)
{
    char out[TCTX_STATE_MAX + 1];
    ck_assert_uint_eq(tctx_bound_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", out), 39);
    ck_assert_str_eq(out, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    ck_assert_uint_eq(tctx_bound_tracestate(" a=1 ,, b=2\t", out), 7);
    ck_assert_str_eq(out, "a=1,b=2");
    ck_assert_uint_eq(tctx_bound_tracestate(NULL, out), 0);
    ck_assert_uint_eq(tctx_bound_tracestate("a=1,novalue", out), 0); /* not a list member */
    ck_assert_uint_eq(tctx_bound_tracestate("a=\x01", out), 0);      /* control byte */
    ck_assert_uint_eq(tctx_bound_tracestate("a=\xc3\xa9", out), 0);  /* not ASCII */

    /* A member of 129 characters is dropped, one of 128 kept. */
    char in[2048], m128[129], m129[130];
    memset(m128, 'x', 128);
    memcpy(m128, "k=", 2);
    m128[128] = '\0';
    memset(m129, 'y', 129);
    memcpy(m129, "l=", 2);
    m129[129] = '\0';
    snprintf(in, sizeof in, "%s,%s,z=1", m129, m128);
    ck_assert_uint_eq(tctx_bound_tracestate(in, out), 128 + 1 + 3);
    ck_assert_int_eq(strncmp(out, "k=", 2), 0);

    /* Whole members while the total fits in 512: four of 128 take 4 * 128 + 3 = 515 > 512, so the
     * fourth is left out and a short fifth still fits (3 * 128 + 2 = 386, + ",z=1" = 390). */
    snprintf(in, sizeof in, "%s,%s,%s,%s,z=1", m128, m128, m128, m128);
    ck_assert_uint_eq(tctx_bound_tracestate(in, out), 3 * 128 + 2 + 4);
    ck_assert_str_eq(out + strlen(out) - 4, ",z=1");

    /* At most 32 members. */
    in[0] = '\0';
    for (int i = 0; i < 40; i++)
        snprintf(in + strlen(in), sizeof in - strlen(in), "%sk%d=v", i ? "," : "", i);
    tctx_bound_tracestate(in, out);
    int commas = 0;
    for (const char *p = out; *p; p++)
        commas += *p == ',';
    ck_assert_int_eq(commas, 31);
}
END_TEST

/* ---- ids ------------------------------------------------------------------------------------- */

START_TEST(random_ids_differ_and_are_valid)
{
    uint8_t a[16], b[16], zero[16] = {0};
    tctx_random_id(a, 16);
    tctx_random_id(b, 16);
    ck_assert(memcmp(a, zero, 16) != 0);
    ck_assert(memcmp(a, b, 16) != 0);
    uint8_t s[8];
    tctx_random_id(s, 8);
    ck_assert(memcmp(s, zero, 8) != 0);
}
END_TEST

/* ---- samplers -------------------------------------------------------------------------------- */

/* A trace id whose bytes 8..15 are the big-endian low. */
static void tid_low(uint8_t tid[16], uint64_t low)
{
    memset(tid, 0xab, 8);
    for (int i = 0; i < 8; i++)
        tid[8 + i] = (uint8_t)(low >> (56 - 8 * i));
}

START_TEST(sampler_parse)
{
    tctx_sampler s;
    char err[160];
    ck_assert_int_eq(tctx_sampler_parse(NULL, NULL, &s, err, sizeof err), 0);
    ck_assert_int_eq(s.kind, TCTX_PB_ALWAYS_ON);
    ck_assert_int_eq(tctx_sampler_parse("always_off", NULL, &s, err, sizeof err), 0);
    ck_assert_int_eq(s.kind, TCTX_ALWAYS_OFF);
    ck_assert_int_eq(tctx_sampler_parse("parentbased_traceidratio", "0.25", &s, err, sizeof err),
                     0);
    ck_assert_int_eq(s.kind, TCTX_PB_RATIO);
    ck_assert_uint_eq(s.bound, (uint64_t)1 << 61); /* 0.25 * 2^63 */
    ck_assert_int_eq(tctx_sampler_parse("traceidratio", NULL, &s, err, sizeof err), 0);
    ck_assert_uint_eq(s.bound, (uint64_t)1 << 63); /* default ratio 1 */
    /* the spec: warn and use the default */
    ck_assert_int_eq(tctx_sampler_parse("jaeger_remote", NULL, &s, err, sizeof err), -1);
    ck_assert_int_eq(s.kind, TCTX_PB_ALWAYS_ON);
    ck_assert_ptr_nonnull(strstr(err, "jaeger_remote"));
    ck_assert_int_eq(tctx_sampler_parse("traceidratio", "1.5", &s, err, sizeof err), -1);
    ck_assert_int_eq(s.kind, TCTX_RATIO);
    ck_assert_uint_eq(s.bound, (uint64_t)1 << 63);
    ck_assert_int_eq(tctx_sampler_parse("traceidratio", "-0.1", &s, err, sizeof err), -1);
    ck_assert_int_eq(tctx_sampler_parse("traceidratio", "0.5x", &s, err, sizeof err), -1);
    ck_assert_int_eq(tctx_sampler_parse("traceidratio", "nan", &s, err, sizeof err), -1);
}
END_TEST

START_TEST(sampler_ratio_boundaries)
{
    tctx_sampler s;
    char err[160];
    uint8_t tid[16];
    /* 0.5: bound 2^62; x >> 1 = 2^62 - 1 (x = 0x7fff...ff) in, 2^62 (x = 0x8000...00) out. */
    ck_assert_int_eq(tctx_sampler_parse("traceidratio", "0.5", &s, err, sizeof err), 0);
    tid_low(tid, 0x7fffffffffffffffull);
    ck_assert_int_eq(tctx_sample(&s, NULL, tid), 1);
    tid_low(tid, 0x8000000000000000ull);
    ck_assert_int_eq(tctx_sample(&s, NULL, tid), 0);
    tid_low(tid, 0);
    ck_assert_int_eq(tctx_sample(&s, NULL, tid), 1);
    /* 0: nothing, not even the smallest id; 1: everything, even the largest. */
    ck_assert_int_eq(tctx_sampler_parse("traceidratio", "0", &s, err, sizeof err), 0);
    tid_low(tid, 0);
    ck_assert_int_eq(tctx_sample(&s, NULL, tid), 0);
    ck_assert_int_eq(tctx_sampler_parse("traceidratio", "1", &s, err, sizeof err), 0);
    tid_low(tid, 0xffffffffffffffffull);
    ck_assert_int_eq(tctx_sample(&s, NULL, tid), 1);
    /* Only bytes 8..15 count: the high half does not. */
    ck_assert_int_eq(tctx_sampler_parse("traceidratio", "0.5", &s, err, sizeof err), 0);
    tid_low(tid, 0x10);
    memset(tid, 0xff, 8);
    ck_assert_int_eq(tctx_sample(&s, NULL, tid), 1);
}
END_TEST

START_TEST(sampler_parent_based)
{
    tctx_sampler s;
    char err[160];
    uint8_t tid[16];
    tctx_parent on = {.flags = 1}, off = {.flags = 0}, on_more = {.flags = 0x03};
    tid_low(tid, 0xffffffffffffffffull); /* a ratio of 0.5 would not sample it */
    ck_assert_int_eq(tctx_sampler_parse("parentbased_traceidratio", "0.5", &s, err, sizeof err), 0);
    ck_assert_int_eq(tctx_sample(&s, NULL, tid), 0);
    ck_assert_int_eq(tctx_sample(&s, &on, tid), 1);
    ck_assert_int_eq(tctx_sample(&s, &on_more, tid), 1);
    tid_low(tid, 0);
    ck_assert_int_eq(tctx_sample(&s, NULL, tid), 1);
    ck_assert_int_eq(tctx_sample(&s, &off, tid), 0);
    ck_assert_int_eq(tctx_sampler_parse("parentbased_always_on", NULL, &s, err, sizeof err), 0);
    ck_assert_int_eq(tctx_sample(&s, NULL, tid), 1);
    ck_assert_int_eq(tctx_sample(&s, &off, tid), 0);
    ck_assert_int_eq(tctx_sampler_parse("parentbased_always_off", NULL, &s, err, sizeof err), 0);
    ck_assert_int_eq(tctx_sample(&s, NULL, tid), 0);
    ck_assert_int_eq(tctx_sample(&s, &on, tid), 1);
    ck_assert_int_eq(tctx_sampler_parse("always_on", NULL, &s, err, sizeof err), 0);
    ck_assert_int_eq(tctx_sample(&s, &off, tid), 1); /* not parent-based: the parent is ignored */
    ck_assert_int_eq(tctx_sampler_parse("always_off", NULL, &s, err, sizeof err), 0);
    ck_assert_int_eq(tctx_sample(&s, &on, tid), 0);
}
END_TEST

/* ---- the ring -------------------------------------------------------------------------------- */

static span_rec named(const char *name)
{
    span_rec s;
    memset(&s, 0, sizeof s);
    span_set_name(&s, name);
    return s;
}

START_TEST(ring_drop_accounting)
{
    spanring r;
    ck_assert_int_eq(spanring_init(&r, 3), 0);
    char nm[8];
    for (int i = 0; i < 3; i++) { /* N = capacity: all kept */
        snprintf(nm, sizeof nm, "s%d", i);
        span_rec s = named(nm);
        ck_assert_int_eq(spanring_push(&r, &s), i + 1); /* records held after the push */
    }
    span_rec extra = named("x");
    ck_assert_int_eq(spanring_push(&r, &extra), -1); /* N + 1: dropped */
    ck_assert_int_eq(spanring_push(&r, &extra), -1);
    size_t held;
    uint64_t pushed, dropped;
    spanring_counts(&r, &held, &pushed, &dropped);
    ck_assert_uint_eq(held, 3);
    ck_assert_uint_eq(pushed, 3);
    ck_assert_uint_eq(dropped, 2);

    span_rec out[8];
    ck_assert_uint_eq(spanring_pop(&r, out, 2), 2); /* oldest first */
    ck_assert_str_eq(out[0].name, "s0");
    ck_assert_str_eq(out[1].name, "s1");
    span_rec a = named("a"), b = named("b");
    ck_assert_int_eq(spanring_push(&r, &a), 2); /* wraps around */
    ck_assert_int_eq(spanring_push(&r, &b), 3);
    ck_assert_int_eq(spanring_push(&r, &extra), -1);
    ck_assert_uint_eq(spanring_pop(&r, out, 8), 3);
    ck_assert_str_eq(out[0].name, "s2");
    ck_assert_str_eq(out[1].name, "a");
    ck_assert_str_eq(out[2].name, "b");
    ck_assert_uint_eq(spanring_pop(&r, out, 8), 0);
    spanring_counts(&r, &held, &pushed, &dropped);
    ck_assert_uint_eq(held, 0);
    ck_assert_uint_eq(pushed, 5);
    ck_assert_uint_eq(dropped, 3);
    spanring_free(&r);
}
END_TEST

START_TEST(ring_pop_more_than_a_chunk)
{
    spanring r;
    size_t n = SPANRING_POP_CHUNK * 2 + 5;
    ck_assert_int_eq(spanring_init(&r, n), 0);
    for (size_t i = 0; i < n; i++) {
        span_rec s = named("s");
        s.start_ns = (int64_t)i;
        ck_assert_int_eq(spanring_push(&r, &s), (long)i + 1);
    }
    span_rec *out = calloc(n, sizeof *out);
    ck_assert_uint_eq(spanring_pop(&r, out, n), n);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(out[i].start_ns, (int64_t)i);
    free(out);
    spanring_free(&r);
}
END_TEST

START_TEST(span_attrs_bounded)
{
    span_rec s = named("n");
    for (int i = 0; i < SPAN_ATTRS_MAX + 3; i++)
        span_attr_int(&s, "k", i);
    ck_assert_uint_eq(s.nattrs, SPAN_ATTRS_MAX);
    char big[400];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    span_rec t = named("n");
    span_attr_str(&t, "k", big);
    ck_assert_uint_eq(strlen(t.attrs[0].s), SPAN_ATTR_STR_MAX - 1);
    /* a cut never splits a UTF-8 character: 126 ASCII + a 2-byte character at 126..127 */
    memset(big, 'v', 126);
    memcpy(big + 126, "\xc3\xa9tail", 7);
    span_rec u = named("n");
    span_attr_str(&u, "k", big);
    ck_assert_uint_eq(strlen(u.attrs[0].s), 126);
}
END_TEST

/* ---- OTLP JSON ------------------------------------------------------------------------------- */

static const cJSON *attr_value(const cJSON *attrs, const char *key)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, attrs)
    {
        if (strcmp(cJSON_GetObjectItem(a, "key")->valuestring, key) == 0)
            return cJSON_GetObjectItem(a, "value");
    }
    return NULL;
}

START_TEST(otlp_encoding)
{
    span_rec sp[3];
    memset(sp, 0, sizeof sp);
    for (int i = 0; i < 16; i++)
        sp[0].trace_id[i] = sp[1].trace_id[i] = sp[2].trace_id[i] = (uint8_t)(0xa0 + i);
    memset(sp[0].span_id, 0x11, 8); /* root server span */
    sp[0].kind = SPAN_KIND_SERVER;
    sp[0].start_ns = 1700000000123456789;
    sp[0].end_ns = 1700000000223456789;
    span_set_name(&sp[0], "POST /api/v1/transactions");
    snprintf(sp[0].trace_state, sizeof sp[0].trace_state, "rojo=00f067aa0ba902b7");
    span_attr_str(&sp[0], "http.route", "/api/v1/transactions");
    span_attr_int(&sp[0], "http.response.status_code", 201);
    span_attr_bool(&sp[0], "flag", 1);
    memset(sp[1].span_id, 0x22, 8); /* a worker span, child of the server span */
    memset(sp[1].parent_id, 0x11, 8);
    sp[1].service = SPAN_SVC_HOTPATH;
    sp[1].kind = SPAN_KIND_SERVER;
    sp[1].status = SPAN_STATUS_ERROR;
    span_set_name(&sp[1], "q\"uote \xff");
    memset(sp[2].span_id, 0x33, 8);
    memset(sp[2].parent_id, 0x11, 8);
    sp[2].kind = SPAN_KIND_CLIENT;
    span_set_name(&sp[2], "SELECT users");

    dynbuf b;
    dynbuf_init(&b, 1 << 20);
    ck_assert_int_eq(otlp_encode(&b, sp, 3, "my-api", "1.2.3"), DYNBUF_OK);
    cJSON *doc = cJSON_ParseWithLength(b.p, b.len);
    ck_assert_msg(doc != NULL, "not JSON: %s", b.p);
    const cJSON *rs = cJSON_GetObjectItem(doc, "resourceSpans");
    ck_assert_int_eq(cJSON_GetArraySize(rs), 2);
    const cJSON *r0 = cJSON_GetArrayItem(rs, 0), *r1 = cJSON_GetArrayItem(rs, 1);
    const cJSON *ra0 = cJSON_GetObjectItem(cJSON_GetObjectItem(r0, "resource"), "attributes");
    const cJSON *ra1 = cJSON_GetObjectItem(cJSON_GetObjectItem(r1, "resource"), "attributes");
    ck_assert_str_eq(
        cJSON_GetObjectItem(attr_value(ra0, "service.name"), "stringValue")->valuestring, "my-api");
    ck_assert_str_eq(
        cJSON_GetObjectItem(attr_value(ra1, "service.name"), "stringValue")->valuestring,
        "vigil-hotpath");
    const cJSON *spans0 =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r0, "scopeSpans"), 0), "spans");
    ck_assert_int_eq(cJSON_GetArraySize(spans0), 2); /* the server and the SELECT */
    const cJSON *s0 = cJSON_GetArrayItem(spans0, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(s0, "traceId")->valuestring,
                     "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
    ck_assert_str_eq(cJSON_GetObjectItem(s0, "spanId")->valuestring, "1111111111111111");
    ck_assert_ptr_null(cJSON_GetObjectItem(s0, "parentSpanId")); /* a root */
    ck_assert_str_eq(cJSON_GetObjectItem(s0, "traceState")->valuestring, "rojo=00f067aa0ba902b7");
    ck_assert_int_eq(cJSON_GetObjectItem(s0, "kind")->valueint, 2);
    ck_assert_str_eq(cJSON_GetObjectItem(s0, "startTimeUnixNano")->valuestring,
                     "1700000000123456789");
    ck_assert_str_eq(cJSON_GetObjectItem(s0, "endTimeUnixNano")->valuestring,
                     "1700000000223456789");
    const cJSON *at = cJSON_GetObjectItem(s0, "attributes");
    ck_assert_str_eq(cJSON_GetObjectItem(attr_value(at, "http.route"), "stringValue")->valuestring,
                     "/api/v1/transactions");
    ck_assert_str_eq(
        cJSON_GetObjectItem(attr_value(at, "http.response.status_code"), "intValue")->valuestring,
        "201");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(attr_value(at, "flag"), "boolValue")));
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(s0, "status"), "code")->valueint, 0);
    const cJSON *s2 = cJSON_GetArrayItem(spans0, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(s2, "parentSpanId")->valuestring, "1111111111111111");
    ck_assert_int_eq(cJSON_GetObjectItem(s2, "kind")->valueint, 3);
    const cJSON *w = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r1, "scopeSpans"), 0), "spans"),
        0);
    ck_assert_str_eq(cJSON_GetObjectItem(w, "name")->valuestring, "q\"uote \xef\xbf\xbd");
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(w, "status"), "code")->valueint, 2);
    cJSON_Delete(doc);
    dynbuf_free(&b);

    /* Only one service present: one resourceSpans. */
    dynbuf_init(&b, 1 << 20);
    ck_assert_int_eq(otlp_encode(&b, sp + 1, 1, "my-api", "1"), DYNBUF_OK);
    doc = cJSON_ParseWithLength(b.p, b.len);
    ck_assert_ptr_nonnull(doc);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "resourceSpans")), 1);
    cJSON_Delete(doc);
    dynbuf_free(&b);
}
END_TEST

/* ---- db span summaries --------------------------------------------------------------------- */

/* The error.type of a PostgreSQL span names each way a statement can fail. */
START_TEST(db_error_types)
{
    ck_assert_ptr_null(db_error_type(DB_OK, NULL));
    ck_assert_str_eq(db_error_type(DB_ERROR, NULL), ""); /* no result: no SQLSTATE to name */
    ck_assert_str_eq(db_error_type(DB_TIMEOUT, NULL), "timeout");
    ck_assert_str_eq(db_error_type(DB_BUSY, NULL), "pool_exhausted");
    ck_assert_str_eq(db_error_type(DB_DOWN, NULL), "connection_lost");
}
END_TEST

START_TEST(sql_summary)
{
    static const struct {
        const char *sql, *op, *coll;
    } cases[] = {
        {"SELECT id, name FROM users WHERE id = $1", "SELECT", "users"},
        {"select count(*) from \"api_keys\" where x = 'from y'", "SELECT", "api_keys"},
        {"  INSERT INTO transactions (a, b) VALUES ($1, $2) RETURNING id", "INSERT",
         "transactions"},
        {"UPDATE policy SET x = $1", "UPDATE", "policy"},
        {"UPDATE ONLY policy SET x = $1", "UPDATE", "policy"},
        {"DELETE FROM idempotency_keys WHERE created_at < now()", "DELETE", "idempotency_keys"},
        {"WITH c AS (SELECT 1 FROM foo) INSERT INTO bar SELECT * FROM c", "INSERT", "bar"},
        {"SELECT (SELECT max(x) FROM inner_t) AS m FROM outer_t", "SELECT", "outer_t"},
        {"SELECT 'it''s FROM nothing', 1", "SELECT", ""},
        {"WITH u AS (SELECT id FROM users) SELECT count(*) FROM u CROSS JOIN o", "SELECT", ""},
        {"WITH u AS (SELECT 1) SELECT * FROM u, t2 WHERE x IN (SELECT y FROM t3)", "SELECT", ""},
        {"BEGIN", "BEGIN", ""},
        {"COMMIT", "COMMIT", ""},
        {"SELECT pg_advisory_lock($1)", "SELECT", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char op[24], coll[64];
        trace_sql_summary(cases[i].sql, op, sizeof op, coll, sizeof coll);
        ck_assert_msg(strcmp(op, cases[i].op) == 0 && strcmp(coll, cases[i].coll) == 0,
                      "'%s': got '%s' '%s'", cases[i].sql, op, coll);
    }
}
END_TEST

/* ---- configuration ----------------------------------------------------------------------------
 */

static void clear_otel_env(void)
{
    static const char *const names[] = {"OTEL_EXPORTER_OTLP_ENDPOINT",
                                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                                        "OTEL_SDK_DISABLED",
                                        "OTEL_SERVICE_NAME",
                                        "OTEL_TRACES_SAMPLER",
                                        "OTEL_TRACES_SAMPLER_ARG",
                                        "OTEL_BSP_MAX_QUEUE_SIZE",
                                        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                                        "OTEL_BSP_SCHEDULE_DELAY",
                                        "OTEL_EXPORTER_OTLP_TIMEOUT",
                                        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unsetenv(names[i]);
}

START_TEST(cfg_from_env)
{
    trace_cfg c;
    char err[256];
    clear_otel_env();
    ck_assert_int_eq(trace_cfg_load(&c, err, sizeof err), 0);
    ck_assert_int_eq(c.enabled, 0); /* no endpoint: off */
    ck_assert_str_eq(c.service, "vigil-api");
    ck_assert_int_eq(c.sampler.kind, TCTX_PB_ALWAYS_ON);
    ck_assert_uint_eq(c.queue_size, 2048);
    ck_assert_uint_eq(c.batch_size, 512);
    ck_assert_int_eq(c.delay_ms, 5000);
    ck_assert_int_eq(c.timeout_ms, 2000);

    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318//", 1);
    ck_assert_int_eq(trace_cfg_load(&c, err, sizeof err), 0);
    ck_assert_int_eq(c.enabled, 1);
    ck_assert_str_eq(c.endpoint, "http://collector:4318/v1/traces");
    setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://other:9/custom", 1); /* wins, as is */
    setenv("OTEL_SERVICE_NAME", "svc", 1);
    setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio", 1);
    setenv("OTEL_TRACES_SAMPLER_ARG", "0.25", 1);
    setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100", 1);
    setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512", 1); /* clamped to the queue */
    setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "700", 1);
    ck_assert_int_eq(trace_cfg_load(&c, err, sizeof err), 0);
    ck_assert_str_eq(c.endpoint, "http://other:9/custom");
    ck_assert_str_eq(c.service, "svc");
    ck_assert_int_eq(c.sampler.kind, TCTX_PB_RATIO);
    ck_assert_uint_eq(c.sampler.bound, (uint64_t)1 << 61);
    ck_assert_uint_eq(c.queue_size, 100);
    ck_assert_uint_eq(c.batch_size, 100);
    ck_assert_int_eq(c.timeout_ms, 700);
    setenv("OTEL_SDK_DISABLED", "TRUE", 1);
    ck_assert_int_eq(trace_cfg_load(&c, err, sizeof err), 0);
    ck_assert_int_eq(c.enabled, 0);
    setenv("OTEL_BSP_MAX_QUEUE_SIZE", "65537", 1); /* N + 1 */
    ck_assert_int_eq(trace_cfg_load(&c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "OTEL_BSP_MAX_QUEUE_SIZE"));
    setenv("OTEL_BSP_MAX_QUEUE_SIZE", "65536", 1); /* N */
    ck_assert_int_eq(trace_cfg_load(&c, err, sizeof err), 0);
    clear_otel_env();
}
END_TEST

/* ---- wire blocks ----------------------------------------------------------------------------- */

START_TEST(wire_trace_blocks)
{
    wire_trace_ctx tc;
    for (int i = 0; i < 16; i++)
        tc.trace_id[i] = (uint8_t)(i + 1);
    for (int i = 0; i < 8; i++)
        tc.span_id[i] = (uint8_t)(0x40 + i);
    tc.flags = 1;
    uint8_t buf[WIRE_TRACE_CTX_SIZE];
    memset(buf, 0xee, sizeof buf);
    wire_trace_ctx_encode(buf, &tc);
    static const uint8_t want[32] = {1,    2,    3,    4,  5,  6,    7,    8,    9,    10,   11,
                                     12,   13,   14,   15, 16, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45,
                                     0x46, 0x47, 0x01, 0,  0,  0,    0,    0,    0,    0};
    ck_assert_mem_eq(buf, want, 32);
    wire_trace_ctx back;
    wire_trace_ctx_decode(buf, &back);
    ck_assert_mem_eq(back.trace_id, tc.trace_id, 16);
    ck_assert_mem_eq(back.span_id, tc.span_id, 8);
    ck_assert_uint_eq(back.flags, 1);

    uint8_t tb[WIRE_TRACE_TIMING_SIZE];
    wire_trace_timing_encode(tb, 0x0102030405060708ull, 0x1112131415161718ull);
    static const uint8_t twant[16] = {8,    7,    6,    5,    4,    3,    2,    1,
                                      0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11};
    ck_assert_mem_eq(tb, twant, 16);
    uint64_t q, c;
    wire_trace_timing_decode(tb, &q, &c);
    ck_assert_uint_eq(q, 0x0102030405060708ull);
    ck_assert_uint_eq(c, 0x1112131415161718ull);
}
END_TEST

/* ---- log-line ids ---------------------------------------------------------------------------- */

/* Writes one line with stderr redirected to a pipe and returns it in out. */
static void capture_line(char *out, size_t cap)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    logline_event("info", "probe", NULL, NULL);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    ssize_t n = read(fds[0], out, cap - 1);
    close(fds[0]);
    out[n > 0 ? n : 0] = '\0';
}

START_TEST(logline_carries_trace_ids)
{
    uint8_t tid[16], sid[8];
    for (int i = 0; i < 16; i++)
        tid[i] = (uint8_t)(0xf0 + (i & 15));
    for (int i = 0; i < 8; i++)
        sid[i] = (uint8_t)i;
    char line[512];
    logline_trace_set(tid, sid);
    capture_line(line, sizeof line);
    ck_assert_ptr_nonnull(strstr(line, "\"event\":\"probe\",\"trace_id\":"
                                       "\"f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff\","
                                       "\"span_id\":\"0001020304050607\""));
    logline_trace_clear();
    capture_line(line, sizeof line);
    ck_assert_ptr_null(strstr(line, "trace_id"));
}
END_TEST

static Suite *trace_suite(void)
{
    Suite *s = suite_create("trace");
    TCase *w3c = tcase_create("w3c");
    tcase_add_test(w3c, traceparent_valid);
    tcase_add_test(w3c, traceparent_invalid);
    tcase_add_test(w3c, traceparent_future_version);
    tcase_add_test(w3c, tracestate_bounds);
    tcase_add_test(w3c, random_ids_differ_and_are_valid);
    suite_add_tcase(s, w3c);
    TCase *smp = tcase_create("sampler");
    tcase_add_test(smp, sampler_parse);
    tcase_add_test(smp, sampler_ratio_boundaries);
    tcase_add_test(smp, sampler_parent_based);
    suite_add_tcase(s, smp);
    TCase *ring = tcase_create("ring");
    tcase_add_test(ring, ring_drop_accounting);
    tcase_add_test(ring, ring_pop_more_than_a_chunk);
    tcase_add_test(ring, span_attrs_bounded);
    suite_add_tcase(s, ring);
    TCase *enc = tcase_create("encoding");
    tcase_add_test(enc, otlp_encoding);
    tcase_add_test(enc, sql_summary);
    tcase_add_test(enc, db_error_types);
    tcase_add_test(enc, wire_trace_blocks);
    tcase_add_test(enc, cfg_from_env);
    tcase_add_test(enc, logline_carries_trace_ids);
    suite_add_tcase(s, enc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(trace_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
