/* log.c - JSON log lines.  See log.h. */
#include "log.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "utf8.h"

/* Room always kept free for ,"truncated":true}\n so a line can be closed. */
#define RESERVE 24

/* Bytes a member may still take. */
static size_t room(const log_line *l)
{
    return LOG_LINE_MAX - RESERVE - l->len;
}

/* Appends s[0..n) whole, or nothing (returns -1): a member is never half written. */
static int put(log_line *l, const char *s, size_t n)
{
    if (n > room(l))
        return -1;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return 0;
}

/* ,"key":<raw> as one piece, or the line is marked truncated. */
static void put_member(log_line *l, const char *key, const char *raw)
{
    char tmp[192];
    int n = snprintf(tmp, sizeof tmp, ",\"%s\":%s", key, raw);
    if (n < 0 || (size_t)n >= sizeof tmp || put(l, tmp, (size_t)n) != 0)
        l->truncated = 1;
}

int log_escape(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; s && *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else if (c >= 0x80) {
            /* Valid UTF-8 sequences are copied; any other byte (a decoded "%ff" in a path)
             * becomes U+FFFD, so the line stays valid JSON. */
            size_t k = utf8_seq_len((const unsigned char *)s, strnlen(s, 4));
            if (k) {
                memcpy(out + o, s, k); /* fits: o + 7 < cap and k <= 4 */
                o += k;
                s += k - 1;
            } else {
                o += (size_t)snprintf(out + o, cap - o, "\\ufffd");
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
static void put_string(log_line *l, const char *key, const char *s)
{
    char esc[LOG_LINE_MAX];
    size_t klen = strlen(key);
    if (klen + 7 > room(l)) { /* ,"" "" : and one character */
        l->truncated = 1;
        return;
    }
    put(l, ",\"", 2);
    put(l, key, klen);
    put(l, "\":\"", 3);
    size_t cap = room(l); /* - 1 for the closing quote, + 1 for the NUL */
    if (!log_escape(s, esc, cap < sizeof esc ? cap : sizeof esc))
        l->truncated = 1;
    put(l, esc, strlen(esc));
    put(l, "\"", 1); /* fits: esc left one byte */
}

void log_begin(log_line *l, const char *level, const char *event)
{
    assert(level && event);
    struct timespec now;
    struct tm tm;
    char ts[48];
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%06ldZ", now.tv_nsec / 1000);
    l->len = 0;
    l->truncated = 0;
    char head[128];
    int h = snprintf(head, sizeof head, "{\"time\":\"%s\"", ts);
    put(l, head, (size_t)h); /* fits: an empty line has LOG_LINE_MAX - RESERVE bytes */
    log_str(l, "level", level);
    log_str(l, "event", event);
}

void log_str(log_line *l, const char *key, const char *value)
{
    if (value)
        put_string(l, key, value);
    else
        put_member(l, key, "null");
}

void log_i64(log_line *l, const char *key, int64_t value)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%lld", (long long)value);
    put_member(l, key, tmp);
}

void log_bool(log_line *l, const char *key, int value)
{
    put_member(l, key, value ? "true" : "false");
}

void log_end(log_line *l)
{
    if (l->truncated) {
        /* Into the reserved tail, which no member may use. */
        static const char tail[] = ",\"truncated\":true";
        memcpy(l->buf + l->len, tail, sizeof tail - 1);
        l->len += sizeof tail - 1;
    }
    l->buf[l->len++] = '}';
    l->buf[l->len++] = '\n';
    assert(l->len <= LOG_LINE_MAX);
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

void log_event(const char *level, const char *event, const char *key, const char *value)
{
    log_line l;
    log_begin(&l, level, event);
    if (key)
        log_str(&l, key, value);
    log_end(&l);
}
