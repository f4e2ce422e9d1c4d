/* tracectx.h - W3C Trace Context (https://www.w3.org/TR/trace-context/) and the OpenTelemetry
 * samplers: the pure parts of tracing, with no state but a per-thread id generator.
 *
 * Owns: traceparent parsing and formatting, tracestate bounding, trace/span id generation, and
 * the sampling decision of the OTEL_TRACES_SAMPLER samplers.  Costs: O(header length), no
 * allocation, no lock; thread-safe (the id generator's state is thread-local, seeded once per
 * thread from getrandom). */
#ifndef VIGIL_TRACECTX_H
#define VIGIL_TRACECTX_H

#include <stddef.h>
#include <stdint.h>

#define TCTX_TRACEPARENT_LEN 55 /* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define TCTX_STATE_MAX 512      /* tracestate bytes kept (W3C: propagate at least 512) */
#define TCTX_STATE_MEMBER_MAX 128
#define TCTX_FLAG_SAMPLED 0x01u

/* A remote parent as read from traceparent. */
typedef struct tctx_parent {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags;
} tctx_parent;

/* Parses a traceparent value strictly per W3C Trace Context level 1: version two lowercase hex
 * digits other than "ff"; version 00 is exactly 55 characters; a higher version is at least 55
 * and, when longer, continues with '-' (parsed as 00, the rest ignored); trace id 32 and parent
 * id 16 lowercase hex digits, neither all zero; flags two lowercase hex digits.  Returns 0 with
 * *out filled, or -1 for anything else (NULL included): the caller then starts a new trace. */
int tctx_parse_traceparent(const char *s, tctx_parent *out);

/* "00-<trace>-<span>-<flags>" into out[TCTX_TRACEPARENT_LEN + 1]. */
void tctx_format_traceparent(char *out, const uint8_t trace_id[16], const uint8_t span_id[8],
                             uint8_t flags);

/* Copies the tracestate value s into out[TCTX_STATE_MAX + 1], bounded as W3C allows: list members
 * are kept whole, left to right, while the total stays within TCTX_STATE_MAX; members longer than
 * TCTX_STATE_MEMBER_MAX are dropped first; empty members (",,") are skipped; at most 32 members.
 * A value with a byte outside printable ASCII, or a member without '=', is not a valid
 * tracestate and gives "".  Returns the length written. */
size_t tctx_bound_tracestate(const char *s, char *out);

/* Lowercase hex of n bytes into out[2n + 1]. */
void tctx_hex(char *out, const uint8_t *in, size_t n);

/* Fills out[n] with random bytes, never all zero (a valid trace or span id).  Thread-safe. */
void tctx_random_id(uint8_t *out, size_t n);

/* ---- samplers (OTEL_TRACES_SAMPLER) -----------------------------------------------------------
 */

enum tctx_sampler_kind {
    TCTX_ALWAYS_ON,
    TCTX_ALWAYS_OFF,
    TCTX_RATIO,
    TCTX_PB_ALWAYS_ON,
    TCTX_PB_ALWAYS_OFF,
    TCTX_PB_RATIO,
};

typedef struct tctx_sampler {
    enum tctx_sampler_kind kind;
    double ratio;   /* for the ratio kinds, in [0, 1] */
    uint64_t bound; /* trace ids whose low 63 bits (big-endian bytes 8..15 >> 1) are below this
                     * are sampled: ratio * 2^63, as the OpenTelemetry SDKs compute it */
} tctx_sampler;

/* Reads a sampler name and its argument (OTEL_TRACES_SAMPLER[_ARG]; either may be NULL: the
 * default is parentbased_always_on, a missing ratio is 1.0).  Returns 0, or -1 with err filled
 * for an unknown name or a ratio that is not a number in [0, 1]: *out then holds the default for
 * the part that was wrong (the spec says to warn and go on). */
int tctx_sampler_parse(const char *name, const char *arg, tctx_sampler *out, char *err,
                       size_t errlen);

/* The decision for a new span with trace_id: parent NULL for a root span, else the remote parent
 * (its sampled flag decides for the parentbased kinds).  Returns 1 = record and export, 0 = not. */
int tctx_sample(const tctx_sampler *s, const tctx_parent *parent, const uint8_t trace_id[16]);

#endif
