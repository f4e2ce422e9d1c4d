/* log.h - the process-wide logger of vigil-api: one JSON object per line on stderr.
 *
 * Owns: the log schema, shared with the worker's hp_log (one schema for both processes):
 *
 *   {"time":"2024-05-01T12:00:00.123456Z","level":"info","event":"request","request_id":"..",...}
 *
 *   time   UTC, RFC 3339 with microseconds
 *   level  "debug" | "info" | "warn" | "error"
 *   event  a snake_case identifier of what happened ("request", "ready", "shutdown", ...)
 *   then   event-specific members; free text goes in "error" (why something failed) or "detail"
 *
 * A line is built in a caller-owned log_line (on the stack) and written with one write(2), so lines
 * of concurrent threads never interleave.  Values are JSON-escaped; bytes that are not valid UTF-8
 * become U+FFFD, so every line is strict JSON whatever a client sent.  Values that do not fit
 * LOG_LINE_MAX are shortened (strings) or dropped (the rest) and the line gets "truncated":true.
 * Never pass secrets or bodies. Costs: O(line), no allocation.  Thread-safe.  Includes nothing of
 * api/: every module may log. */
#ifndef VIGIL_LOG_H
#define VIGIL_LOG_H

#include <stddef.h>
#include <stdint.h>

#define LOG_LINE_MAX 2048

typedef struct log_line {
    char buf[LOG_LINE_MAX];
    size_t len;
    int truncated; /* a member was dropped or a string shortened to fit */
} log_line;

/* Starts a line with time, level and event (plain identifiers, written as given). */
void log_begin(log_line *l, const char *level, const char *event);
/* Adds "key":"value" (escaped; NULL is written as null). */
void log_str(log_line *l, const char *key, const char *value);
/* Adds "key":value. */
void log_i64(log_line *l, const char *key, int64_t value);
/* Adds "key":true or "key":false. */
void log_bool(log_line *l, const char *key, int value);
/* Closes the line and writes it to stderr. */
void log_end(log_line *l);

/* One-member shorthand: a line with event and, when key is not NULL, "key":"value". */
void log_event(const char *level, const char *event, const char *key, const char *value);

/* Escapes s into out[cap] as JSON string content (no quotes), truncating on a character boundary.
 * Invalid UTF-8 becomes \ufffd.  out is always NUL-terminated when cap > 0.  Returns 1 when all of
 * s fit, 0 when it was cut.  (Was http_json_escape.) */
int log_escape(const char *s, char *out, size_t cap);

#endif
