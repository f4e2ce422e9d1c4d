/* dbreq.c - request-scoped database helpers.  See dbreq.h. */
#include "dbreq.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

#include "cursor.h"
#include "logline.h"

void dbreq_internal(http_req *req, http_resp *resp, const PGresult *res)
{
    logline l;
    logline_begin(&l, "error", "db_error");
    logline_str(&l, "request_id", req->request_id);
    logline_str(&l, "sqlstate", db_sqlstate(res));
    logline_str(&l, "error", res ? PQresultErrorMessage(res) : "");
    logline_end(&l);
    http_problem(resp, 500, "internal", NULL, "internal error (request %s)", req->request_id);
}

void dbreq_unavailable(http_req *req, http_resp *resp, int rc, const char *err)
{
    logline l;
    logline_begin(&l, "warn", "db_unavailable");
    logline_str(&l, "request_id", req->request_id);
    logline_str(&l, "error", err);
    logline_end(&l);
    if (rc == DB_BUSY)
        http_unavailable(resp, "all database connections are busy");
    else if (rc == DB_TIMEOUT)
        http_unavailable(resp, "the request deadline passed while waiting for the database");
    else
        http_unavailable(resp, "the database is unreachable");
}

db_conn *dbreq_acquire(http_req *req, http_resp *resp)
{
    assert(req && req->app && req->app->db && resp);
    db_conn *c = NULL;
    int rc = db_acquire(req->app->db, req->deadline_ms, req->app->cfg->pool_wait_ms, &c);
    if (rc != DB_OK) {
        dbreq_unavailable(req, resp, rc, rc == DB_BUSY ? "pool exhausted" : "connect failed");
        return NULL;
    }
    return c;
}

void dbreq_release(http_req *req, db_conn *c)
{
    db_release(req->app->db, c);
}

int dbreq_query_bin(http_req *req, http_resp *resp, db_conn *c, const char *sql, int n,
                    const char *const *vals, const int *lens, const int *fmts, int binary_result,
                    PGresult **res)
{
    assert(c && sql && res && (n == 0 || vals));
    char err[300];
    int rc = db_query(c, sql, n, vals, lens, fmts, binary_result, req->deadline_ms, res, err,
                      sizeof err);
    if (rc != DB_OK && rc != DB_ERROR)
        dbreq_unavailable(req, resp, rc, err);
    return rc;
}

int dbreq_query(http_req *req, http_resp *resp, db_conn *c, const char *sql, int n,
                const char *const *vals, PGresult **res)
{
    return dbreq_query_bin(req, resp, c, sql, n, vals, NULL, NULL, 0, res);
}

int dbreq_pipeline(http_req *req, http_resp *resp, db_conn *c, const db_stmt *stmts, int n,
                   PGresult **res, int *failed)
{
    char err[300];
    int rc = db_pipeline(c, stmts, n, req->deadline_ms, res, failed, err, sizeof err);
    if (rc != DB_OK && rc != DB_ERROR)
        dbreq_unavailable(req, resp, rc, err);
    return rc;
}

static int simple(http_req *req, http_resp *resp, db_conn *c, const char *sql)
{
    PGresult *r = NULL;
    int rc = dbreq_query(req, resp, c, sql, 0, NULL, &r);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    PQclear(r);
    return rc == DB_OK ? 0 : -1;
}

int dbreq_begin(http_req *req, http_resp *resp, db_conn *c)
{
    return simple(req, resp, c, "BEGIN");
}

int dbreq_commit(http_req *req, http_resp *resp, db_conn *c)
{
    return simple(req, resp, c, "COMMIT");
}

int dbreq_fetch_by_id(http_req *req, http_resp *resp, const char *sql, const char *id,
                      const char *what, int binary_result, PGresult **res)
{
    *res = NULL;
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return -1;
    const char *vals[] = {id};
    int rc = dbreq_query_bin(req, resp, c, sql, 1, vals, NULL, NULL, binary_result, res);
    dbreq_release(req, c);
    if (rc == DB_OK && PQntuples(*res) > 0)
        return 0;
    if (rc == DB_OK)
        http_problem(resp, 404, "not_found", NULL, "no %s with id %s", what, id);
    else if (rc == DB_ERROR)
        dbreq_internal(req, resp, *res);
    PQclear(*res);
    *res = NULL;
    return -1;
}

cJSON *dbreq_page(const PGresult *r, int limit, int col_us, int col_id,
                  cJSON *(*row_json)(const PGresult *r, int row))
{
    cJSON *out = cJSON_CreateObject();
    cJSON *data = cJSON_AddArrayToObject(out, "data");
    int n = PQntuples(r), shown = n > limit ? limit : n;
    for (int i = 0; i < shown; i++)
        cJSON_AddItemToArray(data, row_json(r, i));
    if (n > limit) {
        char next[CURSOR_MAX];
        cursor_encode(atoll(PQgetvalue(r, shown - 1, col_us)), PQgetvalue(r, shown - 1, col_id),
                      next);
        cJSON_AddStringToObject(out, "next_cursor", next);
    } else {
        cJSON_AddNullToObject(out, "next_cursor");
    }
    return out;
}
