/* dbreq.h - database access from a request handler: the pool and query calls of db.h bound to
 * the request's deadline, with failures already turned into the right HTTP answer (503 +
 * Retry-After for busy/down/timeout, 500 for unexpected SQL errors).  Saves every handler the same
 * ten lines of error mapping. */
#ifndef VIGIL_DBREQ_H
#define VIGIL_DBREQ_H

#include <cjson/cJSON.h>

#include "db.h"
#include "http.h"

/* Takes a pooled connection for req.  Returns it, or NULL with resp filled (503). */
db_conn *dbreq_acquire(http_req *req, http_resp *resp);
void dbreq_release(http_req *req, db_conn *c);

/* Runs a text-parameter statement.  Returns DB_OK with *res set (caller PQclear()s it), DB_ERROR
 * with *res set and resp untouched (caller inspects db_sqlstate and answers), or another status
 * with resp already filled and *res NULL.  The message of unexpected errors is logged, not sent. */
int dbreq_query(http_req *req, http_resp *resp, db_conn *c, const char *sql, int n,
                const char *const *vals, PGresult **res);

/* Like dbreq_query, with per-parameter lengths/formats (binary parameters such as bytea). */
int dbreq_query_bin(http_req *req, http_resp *resp, db_conn *c, const char *sql, int n,
                    const char *const *vals, const int *lens, const int *fmts, int binary_result,
                    PGresult **res);

/* Runs n statements in one round trip (db_pipeline).  Returns DB_OK or DB_ERROR with res[] and
 * *failed as db_pipeline (resp untouched: the caller answers), or another status with resp
 * already filled (503) and every res[i] NULL. */
int dbreq_pipeline(http_req *req, http_resp *resp, db_conn *c, const db_stmt *stmts, int n,
                   PGresult **res, int *failed);

/* Answers 503 + Retry-After for a database status other than DB_OK/DB_ERROR (busy pool, server
 * down, deadline passed), logging err. */
void dbreq_unavailable(http_req *req, http_resp *resp, int rc, const char *err);

/* Answers 500 for an SQL error nobody expected, logging the SQLSTATE and message. */
void dbreq_internal(http_req *req, http_resp *resp, const PGresult *res);

/* Reads the row with this id: one statement with $1 = id, run on a pooled connection.  Returns
 * 0 with *res (caller PQclear()s it) or -1 with resp filled: 404 "no <what> with id <id>" when
 * no row, 503/500 on database failure. */
int dbreq_fetch_by_id(http_req *req, http_resp *resp, const char *sql, const char *id,
                      const char *what, int binary_result, PGresult **res);

/* {"data": [row_json(r, i)...], "next_cursor": ...} for a keyset page fetched with LIMIT
 * limit + 1: the extra row only says another page exists; the cursor is built from columns
 * col_us (created_at in microseconds) and col_id of the last row shown.  Caller owns the result. */
cJSON *dbreq_page(const PGresult *r, int limit, int col_us, int col_id,
                  cJSON *(*row_json)(const PGresult *r, int row));

/* Transaction helpers: 0 on success, -1 with resp filled. */
int dbreq_begin(http_req *req, http_resp *resp, db_conn *c);
int dbreq_commit(http_req *req, http_resp *resp, db_conn *c);

#endif
