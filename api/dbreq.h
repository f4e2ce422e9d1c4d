/* dbreq.h - database access from a request handler: the pool and query calls of db.h bound to
 * the request's deadline, with failures already turned into the right HTTP answer (503 +
 * Retry-After for busy/down/timeout, 500 for unexpected SQL errors).  Saves every handler the same
 * ten lines of error mapping. */
#ifndef VIGIL_DBREQ_H
#define VIGIL_DBREQ_H

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

/* Answers 500 for an SQL error nobody expected, logging the SQLSTATE and message. */
void dbreq_internal(http_req *req, http_resp *resp, const PGresult *res);

/* Transaction helpers: 0 on success, -1 with resp filled. */
int dbreq_begin(http_req *req, http_resp *resp, db_conn *c);
int dbreq_commit(http_req *req, http_resp *resp, db_conn *c);

#endif
