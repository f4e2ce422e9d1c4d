/* hp_log.h - the worker's log lines: the shared line builder of common/logline.h under the
 * worker's names, plus the rate limit for lines a peer can cause.
 *
 * Owns: the error-line rate limit.  The format is common/logline.h's, which vigil-api writes too:
 *
 *   {"time":"2024-05-01T12:00:00.123456Z","level":"info","event":"ready","socket":"var/run/x.sock"}
 *
 * time (UTC, RFC 3339, microseconds), level, event (snake_case identifier), then members; free
 * text in "error" or "detail".  A line is assembled in a caller-owned hp_log_line (on the stack,
 * HP_LOG_LINE_MAX bytes) and written with a single write(2), so lines from different threads never
 * interleave.  Costs: O(line length); no malloc, no stdio streams, no locale, no time-zone
 * database - safe after hp_ready().  Values that do not fit are shortened (strings) or dropped and
 * the line gets "truncated":true. */
#ifndef VIGIL_HP_LOG_H
#define VIGIL_HP_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "logline.h"

#define HP_LOG_LINE_MAX LOGLINE_MAX

typedef logline hp_log_line;

/* Starts a line with time, level and event.  level and event are plain identifiers. */
void hp_log_begin(hp_log_line *l, const char *level, const char *event);
/* Adds "key":"value" (value JSON-escaped; NULL is written as null). */
void hp_log_str(hp_log_line *l, const char *key, const char *value);
/* Adds "key":value. */
void hp_log_u64(hp_log_line *l, const char *key, uint64_t value);
void hp_log_i64(hp_log_line *l, const char *key, int64_t value);
/* Adds "key":"<strerror(errnum)>" using strerror_r into a stack buffer. */
void hp_log_errno(hp_log_line *l, const char *key, int errnum);
/* Closes the line and writes it to stderr.  Thread-safe. */
void hp_log_end(hp_log_line *l);

/* Rate limit for lines caused by peers (protocol and connection errors): returns 1 if one more such
 * line may be written in the current second (at most HP_LOG_ERRORS_PER_SEC), 0 if it must be
 * dropped.  When it returns 1 after a second in which lines were dropped, *suppressed receives
 * their number (else 0) so the caller can log it.  Thread-safe, lock-free. */
#define HP_LOG_ERRORS_PER_SEC 20
int hp_log_ratelimit(uint64_t *suppressed);

#endif
