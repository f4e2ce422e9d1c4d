/* logline.h - one JSON object per line on stderr, built without allocating: the log schema of
 * both processes (vigil-api through api/log.h, vigil-hotpath through hotpath/hp_log.h).
 *
 *   {"time":"2024-05-01T12:00:00.123456Z","level":"info","event":"ready","socket":"var/run/x.sock"}
 *
 *   time   UTC, RFC 3339 with microseconds
 *   level  "debug" | "info" | "warn" | "error"
 *   event  a snake_case identifier of what happened ("request", "ready", "shutdown", ...)
 *   then   event-specific members; free text goes in "error" (why something failed) or "detail"
 *
 * A line is built in a caller-owned logline (on the stack, LOGLINE_MAX bytes) and written with one
 * write(2), so lines of concurrent threads never interleave (pipes keep writes up to PIPE_BUF =
 * 4096 bytes whole).  Values are JSON-escaped; bytes that are not valid UTF-8 become U+FFFD, so
 * every line is strict JSON whatever a peer sent.  A member is added whole or not at all; a string
 * too long for the room left is shortened; either way the line ends with "truncated":true.
 * Costs: O(line); no malloc, no stdio stream, no locale, no time-zone database (the date is
 * computed from CLOCK_REALTIME with H. Hinnant's civil-from-days): safe in the worker after ready.
 * Thread-safe (no shared state).  Keys are plain identifiers, written as given. */
#ifndef VIGIL_LOGLINE_H
#define VIGIL_LOGLINE_H

#include <stddef.h>
#include <stdint.h>

#define LOGLINE_MAX 2048

typedef struct logline {
    char buf[LOGLINE_MAX];
    size_t len;
    int truncated; /* a member was dropped or a string shortened to fit */
} logline;

/* Starts a line with time, level and event. */
void logline_begin(logline *l, const char *level, const char *event);
/* Adds "key":"value" (escaped; NULL is written as null). */
void logline_str(logline *l, const char *key, const char *value);
/* Adds "key":value. */
void logline_i64(logline *l, const char *key, int64_t value);
void logline_u64(logline *l, const char *key, uint64_t value);
/* Adds "key":true or "key":false. */
void logline_bool(logline *l, const char *key, int value);
/* Closes the line and writes it to stderr with one write(2) (retried on EINTR). */
void logline_end(logline *l);

/* The calling thread's trace context (issue 16): while set, every line the thread begins carries
 * "trace_id" (32 lowercase hex digits) and "span_id" (16) right after "event", so the lines about
 * a traced request (vigil-api: its connection thread; vigil-hotpath: the slot serving the frame)
 * can be found from its trace.  Thread-local storage, no allocation (static TLS of the executable),
 * so the worker may call these after ready.  NULL trace_id (or clear) ends it. */
void logline_trace_set(const uint8_t trace_id[16], const uint8_t span_id[8]);
void logline_trace_clear(void);

/* One-member shorthand: a line with event and, when key is not NULL, "key":"value". */
void logline_event(const char *level, const char *event, const char *key, const char *value);

/* Escapes s into out[cap] as JSON string content (no quotes), cutting on a character boundary;
 * invalid UTF-8 becomes \ufffd.  out is NUL-terminated when cap > 0.  Returns 1 when all of s
 * fit, 0 when it was cut. */
int logline_escape(const char *s, char *out, size_t cap);

#endif
