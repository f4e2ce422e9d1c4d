/* resplog.h - the e2e response log: every answer an end-to-end test receives from vigil-api,
 * appended as one NDJSON line to the file named by $VIGIL_E2E_RESPONSE_LOG (tests/run.sh sets it),
 * so that tests/tools/openapi_check.py can validate each one against the OpenAPI document after
 * the e2e stage.  Without the variable nothing is written.
 *
 * Line: {"bin": test binary, "method", "path" (with its query), "status", "content_type" (or
 * null), "body" (the body as a JSON string when the content type is JSON, else null), "len"
 * (body bytes), "raw" (true for h_raw)}.  Each line is written with one write(2) on an O_APPEND
 * descriptor, so lines from concurrent threads and forked Check tests never interleave.
 * Thread-safe; a failure to log is reported on stderr and never fails the test itself (the
 * checker then misses the line, it never sees half of one). */
#ifndef VIGIL_E2E_RESPLOG_H
#define VIGIL_E2E_RESPLOG_H

#include <stddef.h>

/* Logs one answer: method and path as sent, the HTTP status, the Content-Type value (NULL when
 * absent) and the body (len bytes; NULL when none). */
void resplog_record(const char *method, const char *path, long status, const char *ctype,
                    const char *body, size_t len, int raw);

/* Logs the first answer of a raw exchange: req[0..reqlen) as sent, resp[0..resplen) as read
 * (status line, headers, body).  Nothing is logged when resp holds no status line. */
void resplog_raw(const char *req, size_t reqlen, const char *resp, size_t resplen);

#endif
