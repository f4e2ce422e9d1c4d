/* hp_log.c - allocation-free JSON log lines.  See hp_log.h.
 *
 * Why not fprintf(stderr): stdio may allocate its buffer lazily and takes a lock per stream; and
 * why not gmtime_r: its first call may load the time-zone database (malloc).  The timestamp is
 * computed here from CLOCK_REALTIME with the civil-from-days algorithm (H. Hinnant).
 *
 * The schema (time, level, event, then members; free text in "error" or "detail") is the API's
 * too: api/log.h documents it for both processes. */
#include "hp_log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Room always kept free for ,"truncated":true}\n so a line can be closed. */
#define RESERVE 24

/* Bytes a member may still take. */
static size_t room(const hp_log_line *l)
{
    return HP_LOG_LINE_MAX - RESERVE - l->len;
}

/* Appends s[0..n) whole, or nothing (returns -1): a member is never half written. */
static int put(hp_log_line *l, const char *s, size_t n)
{
    if (n > room(l))
        return -1;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return 0;
}

/* Appends s as a JSON string body: escapes quote, backslash and control bytes; other bytes pass.
 * Stops (and marks the line truncated) when only keep bytes would be left. */
static void put_escaped(hp_log_line *l, const char *s, size_t keep)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[6];
        size_t n = 1;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        } else {
            esc[0] = (char)c;
        }
        if (n + keep > room(l)) {
            l->truncated = 1;
            return;
        }
        put(l, esc, n);
    }
}

/* ,"key":<raw> as one piece, or the line is marked truncated. */
static void put_member(hp_log_line *l, const char *key, const char *raw)
{
    char tmp[160];
    int n = snprintf(tmp, sizeof tmp, ",\"%s\":%s", key, raw);
    if (n < 0 || (size_t)n >= sizeof tmp || put(l, tmp, (size_t)n) != 0)
        l->truncated = 1;
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

void hp_log_begin(hp_log_line *l, const char *level, const char *event)
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
    hp_log_str(l, "level", level);
    hp_log_str(l, "event", event);
}

void hp_log_str(hp_log_line *l, const char *key, const char *value)
{
    if (value == NULL) {
        put_member(l, key, "null");
        return;
    }
    size_t klen = strlen(key);
    if (klen + 7 > room(l)) { /* ,"" "" : and one character */
        l->truncated = 1;
        return;
    }
    put(l, ",\"", 2);
    put(l, key, klen);
    put(l, "\":\"", 3);
    put_escaped(l, value, 1); /* a string cut short still gets its closing quote */
    put(l, "\"", 1);
}

void hp_log_u64(hp_log_line *l, const char *key, uint64_t value)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)value);
    put_member(l, key, tmp);
}

void hp_log_i64(hp_log_line *l, const char *key, int64_t value)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%lld", (long long)value);
    put_member(l, key, tmp);
}

void hp_log_errno(hp_log_line *l, const char *key, int errnum)
{
    char tmp[128];
    /* _GNU_SOURCE gives the GNU strerror_r, which may return a static string instead of tmp. */
    const char *msg = strerror_r(errnum, tmp, sizeof tmp);
    hp_log_str(l, key, msg);
}

void hp_log_end(hp_log_line *l)
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

/* One window per monotonic second.  The reset at a window change races benignly with concurrent
 * callers: at worst a few lines more or fewer than the limit in that second. */
static _Atomic int64_t rl_window = -1;
static _Atomic uint32_t rl_count;
static _Atomic uint64_t rl_dropped;

int hp_log_ratelimit(uint64_t *suppressed)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = ts.tv_sec;
    int64_t w = atomic_load_explicit(&rl_window, memory_order_relaxed);
    if (w != now && atomic_compare_exchange_strong(&rl_window, &w, now))
        atomic_store(&rl_count, 0);
    if (atomic_fetch_add(&rl_count, 1) < HP_LOG_ERRORS_PER_SEC) {
        *suppressed = atomic_exchange(&rl_dropped, 0);
        return 1;
    }
    atomic_fetch_add(&rl_dropped, 1);
    *suppressed = 0;
    return 0;
}
