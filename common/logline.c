/* logline.c - allocation-free JSON log lines.  See logline.h. */
#include "logline.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "utf8.h"

/* Room always kept free for ,"truncated":true}\n so a line can be closed. */
#define RESERVE 24

/* Bytes a member may still take. */
static size_t room(const logline *l)
{
    return LOGLINE_MAX - RESERVE - l->len;
}

/* Appends s[0..n) whole, or nothing (returns -1): a member is never half written. */
static int put(logline *l, const char *s, size_t n)
{
    if (n > room(l))
        return -1;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return 0;
}

/* ,"key":<raw> as one piece, or the line is marked truncated. */
static void put_member(logline *l, const char *key, const char *raw)
{
    char tmp[192];
    int n = snprintf(tmp, sizeof tmp, ",\"%s\":%s", key, raw);
    if (n < 0 || (size_t)n >= sizeof tmp || put(l, tmp, (size_t)n) != 0)
        l->truncated = 1;
}

int logline_escape(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (; s && *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[c >> 4];
            out[o + 5] = hex[c & 15];
            o += 6;
        } else if (c >= 0x80) {
            /* Valid UTF-8 sequences are copied; any other byte (a decoded "%ff" in a path)
             * becomes U+FFFD, so the line stays valid JSON. */
            size_t k = utf8_seq_len((const unsigned char *)s, strnlen(s, 4));
            if (k) {
                memcpy(out + o, s, k); /* fits: o + 7 < cap and k <= 4 */
                o += k;
                s += k - 1;
            } else {
                memcpy(out + o, "\\ufffd", 6);
                o += 6;
            }
        } else {
            out[o++] = (char)c;
        }
    }
    if (cap)
        out[o < cap ? o : cap - 1] = '\0';
    return !(s && *s);
}

/* ,"key":"<s escaped>", s cut to the room left (a long client path is shortened, not dropped). */
static void put_string(logline *l, const char *key, const char *s)
{
    char esc[LOGLINE_MAX];
    size_t klen = strlen(key);
    if (klen + 7 > room(l)) { /* ,"" "" : and one character */
        l->truncated = 1;
        return;
    }
    put(l, ",\"", 2);
    put(l, key, klen);
    put(l, "\":\"", 3);
    size_t cap = room(l); /* - 1 for the closing quote, + 1 for the NUL */
    if (!logline_escape(s, esc, cap < sizeof esc ? cap : sizeof esc))
        l->truncated = 1;
    put(l, esc, strlen(esc));
    put(l, "\"", 1); /* fits: esc left one byte */
}

/* The thread's trace ids as hex, "" when none (logline_trace_set). */
typedef struct trace_ids {
    char trace_id[33];
    char span_id[17];
} trace_ids;
static _Thread_local trace_ids tls_trace;

static void to_hex(char *out, const uint8_t *in, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void logline_trace_set(const uint8_t trace_id[16], const uint8_t span_id[8])
{
    if (!trace_id) {
        logline_trace_clear();
        return;
    }
    to_hex(tls_trace.trace_id, trace_id, 16);
    to_hex(tls_trace.span_id, span_id, 8);
}

void logline_trace_clear(void)
{
    tls_trace.trace_id[0] = '\0';
    tls_trace.span_id[0] = '\0';
}

/* Days since 1970-01-01 -> proleptic Gregorian y/m/d. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void logline_begin(logline *l, const char *level, const char *event)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t secs = ts.tv_sec;
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int64_t sod = secs - days * 86400;
    int64_t y;
    unsigned mo, d;
    civil_from_days(days, &y, &mo, &d);

    l->len = 0;
    l->truncated = 0;
    char tmp[96];
    int n = snprintf(tmp, sizeof tmp, "{\"time\":\"%04lld-%02u-%02uT%02u:%02u:%02u.%06uZ\"",
                     (long long)y, mo, d, (unsigned)(sod / 3600), (unsigned)(sod / 60 % 60),
                     (unsigned)(sod % 60), (unsigned)(ts.tv_nsec / 1000));
    put(l, tmp, n > 0 && (size_t)n < sizeof tmp ? (size_t)n : 0);
    logline_str(l, "level", level);
    logline_str(l, "event", event);
    if (tls_trace.trace_id[0]) {
        logline_str(l, "trace_id", tls_trace.trace_id);
        logline_str(l, "span_id", tls_trace.span_id);
    }
}

void logline_str(logline *l, const char *key, const char *value)
{
    if (value)
        put_string(l, key, value);
    else
        put_member(l, key, "null");
}

void logline_i64(logline *l, const char *key, int64_t value)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%lld", (long long)value);
    put_member(l, key, tmp);
}

void logline_u64(logline *l, const char *key, uint64_t value)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)value);
    put_member(l, key, tmp);
}

void logline_bool(logline *l, const char *key, int value)
{
    put_member(l, key, value ? "true" : "false");
}

void logline_end(logline *l)
{
    if (l->truncated) {
        /* Into the reserved tail, which no member may use. */
        static const char tail[] = ",\"truncated\":true";
        memcpy(l->buf + l->len, tail, sizeof tail - 1);
        l->len += sizeof tail - 1;
    }
    l->buf[l->len++] = '}';
    l->buf[l->len++] = '\n';
    size_t off = 0;
    while (off < l->len) {
        ssize_t r = write(STDERR_FILENO, l->buf + off, l->len - off);
        if (r > 0)
            off += (size_t)r;
        else if (r < 0 && errno == EINTR)
            continue;
        else
            break; /* nowhere to report a failing stderr */
    }
}

void logline_event(const char *level, const char *event, const char *key, const char *value)
{
    logline l;
    logline_begin(&l, level, event);
    if (key)
        logline_str(&l, key, value);
    logline_end(&l);
}
