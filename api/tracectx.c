/* tracectx.c - W3C traceparent/tracestate, ids, samplers.  See tracectx.h. */
#include "tracectx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Value of a lowercase hex digit, -1 otherwise (W3C: uppercase is invalid). */
static int lhex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes 2n lowercase hex digits.  Returns 0 or -1. */
static int lhex_decode(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = lhex(s[2 * i]), lo = lhex(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

int tctx_parse_traceparent(const char *s, tctx_parent *out)
{
    if (!s)
        return -1;
    size_t len = strnlen(s, 1024);
    uint8_t version;
    if (len < TCTX_TRACEPARENT_LEN || lhex_decode(s, 1, &version) != 0 || version == 0xff)
        return -1;
    if (version == 0 ? len != TCTX_TRACEPARENT_LEN
                     : len > TCTX_TRACEPARENT_LEN && s[TCTX_TRACEPARENT_LEN] != '-')
        return -1;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-')
        return -1;
    tctx_parent p;
    if (lhex_decode(s + 3, 16, p.trace_id) != 0 || lhex_decode(s + 36, 8, p.span_id) != 0 ||
        lhex_decode(s + 53, 1, &p.flags) != 0)
        return -1;
    if (all_zero(p.trace_id, 16) || all_zero(p.span_id, 8))
        return -1;
    *out = p;
    return 0;
}

void tctx_hex(char *out, const uint8_t *in, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void tctx_format_traceparent(char *out, const uint8_t trace_id[16], const uint8_t span_id[8],
                             uint8_t flags)
{
    memcpy(out, "00-", 3);
    tctx_hex(out + 3, trace_id, 16);
    out[35] = '-';
    tctx_hex(out + 36, span_id, 8);
    out[52] = '-';
    tctx_hex(out + 53, &flags, 1);
}

size_t tctx_bound_tracestate(const char *s, char *out)
{
    size_t o = 0;
    int members = 0;
    out[0] = '\0';
    if (!s)
        return 0;
    for (const char *p = s; *p; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || (unsigned char)*p > 0x7e)
            return 0;
    while (*s) {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        const char *m = s;
        s += n + (end ? 1 : 0);
        while (n && (*m == ' ' || *m == '\t')) /* OWS around members */
            m++, n--;
        while (n && (m[n - 1] == ' ' || m[n - 1] == '\t'))
            n--;
        if (n == 0)
            continue;
        if (!memchr(m, '=', n)) {
            out[0] = '\0';
            return 0;
        }
        if (n > TCTX_STATE_MEMBER_MAX || members == 32 || o + (o ? 1 : 0) + n > TCTX_STATE_MAX)
            continue;
        if (o)
            out[o++] = ',';
        memcpy(out + o, m, n);
        o += n;
        members++;
    }
    out[o] = '\0';
    return o;
}

/* ---- ids ---------------------------------------------------------------------------------------
 */

/* splitmix64 over a per-thread state seeded from getrandom (or the clock and the state's address
 * when getrandom fails): ids need to be unique, not secret. */
static _Thread_local uint64_t rng_state;
static _Thread_local int rng_seeded;

static uint64_t rng_next(void)
{
    if (!rng_seeded) {
        if (getrandom(&rng_state, sizeof rng_state, GRND_NONBLOCK) != (ssize_t)sizeof rng_state) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            rng_state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
                        (uint64_t)(uintptr_t)&rng_state;
        }
        rng_seeded = 1;
    }
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void tctx_random_id(uint8_t *out, size_t n)
{
    do {
        for (size_t i = 0; i < n; i += 8) {
            uint64_t v = rng_next();
            size_t k = n - i < 8 ? n - i : 8;
            memcpy(out + i, &v, k);
        }
    } while (all_zero(out, n));
}

/* ---- samplers ----------------------------------------------------------------------------------
 */

static void set_ratio(tctx_sampler *s, double r)
{
    s->ratio = r;
    /* r = 1 gives 2^63, above every 63-bit value: all sampled; r = 0 gives 0: none. */
    s->bound = r >= 1.0 ? (uint64_t)1 << 63 : (uint64_t)(r * 9223372036854775808.0);
}

int tctx_sampler_parse(const char *name, const char *arg, tctx_sampler *out, char *err,
                       size_t errlen)
{
    static const struct {
        const char *name;
        enum tctx_sampler_kind kind;
    } names[] = {
        {"always_on", TCTX_ALWAYS_ON},
        {"always_off", TCTX_ALWAYS_OFF},
        {"traceidratio", TCTX_RATIO},
        {"parentbased_always_on", TCTX_PB_ALWAYS_ON},
        {"parentbased_always_off", TCTX_PB_ALWAYS_OFF},
        {"parentbased_traceidratio", TCTX_PB_RATIO},
    };
    out->kind = TCTX_PB_ALWAYS_ON;
    set_ratio(out, 1.0);
    int rc = 0;
    if (name && *name) {
        size_t i = 0;
        while (i < sizeof names / sizeof names[0] && strcmp(names[i].name, name) != 0)
            i++;
        if (i == sizeof names / sizeof names[0]) {
            snprintf(err, errlen, "OTEL_TRACES_SAMPLER: unsupported sampler '%.64s'", name);
            return -1;
        }
        out->kind = names[i].kind;
    }
    if ((out->kind == TCTX_RATIO || out->kind == TCTX_PB_RATIO) && arg && *arg) {
        char *end = NULL;
        errno = 0;
        double r = strtod(arg, &end);
        if (errno || end == arg || *end != '\0' || !(r >= 0.0 && r <= 1.0)) {
            snprintf(err, errlen, "OTEL_TRACES_SAMPLER_ARG: '%.64s' is not a ratio in [0, 1]", arg);
            rc = -1;
        } else {
            set_ratio(out, r);
        }
    }
    return rc;
}

static int ratio_says(const tctx_sampler *s, const uint8_t trace_id[16])
{
    uint64_t x = 0;
    for (int i = 8; i < 16; i++)
        x = x << 8 | trace_id[i];
    return (x >> 1) < s->bound;
}

int tctx_sample(const tctx_sampler *s, const tctx_parent *parent, const uint8_t trace_id[16])
{
    switch (s->kind) {
    case TCTX_ALWAYS_ON:
        return 1;
    case TCTX_ALWAYS_OFF:
        return 0;
    case TCTX_RATIO:
        return ratio_says(s, trace_id);
    case TCTX_PB_ALWAYS_ON:
        return parent ? (parent->flags & TCTX_FLAG_SAMPLED) != 0 : 1;
    case TCTX_PB_ALWAYS_OFF:
        return parent ? (parent->flags & TCTX_FLAG_SAMPLED) != 0 : 0;
    case TCTX_PB_RATIO:
        return parent ? (parent->flags & TCTX_FLAG_SAMPLED) != 0 : ratio_says(s, trace_id);
    }
    return 0;
}
