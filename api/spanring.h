/* spanring.h - finished spans as fixed-size records, and the bounded ring that holds them between
 * the request threads that end them and the exporter thread (trace.c) that sends them.
 *
 * Owns: the span record (span_rec: ids, times, kind, status, up to SPAN_ATTRS_MAX attributes,
 * every string bounded and copied in) and the ring (one allocation of capacity records, made at
 * init; never grows).  A push into a full ring drops the new span and counts it: a request never
 * waits for the exporter.  Costs: push O(record) under a mutex held for one copy; pop copies at
 * most SPANRING_POP_CHUNK records per lock hold, so a producer waits at most that long.
 * Thread-safe. */
#ifndef VIGIL_SPANRING_H
#define VIGIL_SPANRING_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define SPAN_NAME_MAX 64
#define SPAN_ATTRS_MAX 12
#define SPAN_ATTR_STR_MAX 128
#define SPAN_STATE_MAX 512 /* = TCTX_STATE_MAX */
#define SPANRING_POP_CHUNK 32

/* OTLP's enum values (opentelemetry/proto/trace/v1/trace.proto). */
enum span_kind { SPAN_KIND_INTERNAL = 1, SPAN_KIND_SERVER = 2, SPAN_KIND_CLIENT = 3 };
enum span_status { SPAN_STATUS_UNSET = 0, SPAN_STATUS_OK = 1, SPAN_STATUS_ERROR = 2 };
/* Which resource (service.name) a span belongs to: vigil-api's own, or the worker's, whose spans
 * vigil-api exports from the timings the worker returns (the worker has no network). */
enum span_service { SPAN_SVC_API = 0, SPAN_SVC_HOTPATH = 1 };
enum span_attr_type { SPAN_ATTR_STR = 0, SPAN_ATTR_INT = 1, SPAN_ATTR_BOOL = 2 };

typedef struct span_attr {
    const char *key; /* a static string (semantic-convention names are literals) */
    int type;        /* enum span_attr_type */
    int64_t i;
    char s[SPAN_ATTR_STR_MAX]; /* cut to fit */
} span_attr;

typedef struct span_rec {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t parent_id[8]; /* all zero: a root span */
    uint8_t kind, status, service, nattrs;
    int64_t start_ns, end_ns; /* Unix epoch nanoseconds (CLOCK_REALTIME) */
    char name[SPAN_NAME_MAX];
    char trace_state[SPAN_STATE_MAX + 1];
    span_attr attrs[SPAN_ATTRS_MAX];
} span_rec;

/* Attribute setters: one more attribute, silently ignored past SPAN_ATTRS_MAX. */
void span_attr_str(span_rec *s, const char *key, const char *value);
void span_attr_int(span_rec *s, const char *key, int64_t value);
void span_attr_bool(span_rec *s, const char *key, int value);
/* Copies name into s->name (cut to fit). */
void span_set_name(span_rec *s, const char *name);

typedef struct spanring {
    pthread_mutex_t mu;
    span_rec *slots;
    size_t cap, head, count;
    uint64_t pushed, dropped; /* guarded by mu */
} spanring;

/* Allocates cap records (cap >= 1).  Returns 0, or -1 when out of memory. */
int spanring_init(spanring *r, size_t cap);
void spanring_free(spanring *r);
/* Copies s into the ring.  Returns the number of records held after it (>= 1), or -1 when the
 * ring is full (the span is dropped and counted in r->dropped).  Never blocks beyond the mutex. */
long spanring_push(spanring *r, const span_rec *s);
/* Moves up to max of the oldest records into out[].  Returns how many. */
size_t spanring_pop(spanring *r, span_rec *out, size_t max);
/* Records held now; totals pushed and dropped since init. */
void spanring_counts(spanring *r, size_t *held, uint64_t *pushed, uint64_t *dropped);

#endif
