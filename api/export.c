/* export.c - the transactions export.  See export.h. */
#include "export.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dbreq.h"
#include "dynbuf.h"
#include "json.h"
#include "logline.h"
#include "transactions.h"
#include "validate.h"

#define EXPORT_LINE_MAX (64u << 20) /* one formatted row: far above any stored transaction */

/* CSV columns: a path into the transaction's JSON (member, or member.member[.member]). */
static const char *const csv_cols[] = {"id",
                                       "user_id",
                                       "amount",
                                       "currency",
                                       "merchant_id",
                                       "merchant_category",
                                       "country",
                                       "channel",
                                       "occurred_at",
                                       "risk.score",
                                       "risk.decision",
                                       "risk.degraded",
                                       "risk.reason",
                                       "risk.model.id",
                                       "risk.model.version",
                                       "risk.challenger.score",
                                       "risk.policy.version",
                                       "label",
                                       "label_source",
                                       "labelled_at",
                                       "created_at",
                                       "features",
                                       "metadata",
                                       NULL};

typedef struct export_ctx {
    const app *a;
    db_conn *c;
    PGresult *r; /* the rows of the last FETCH */
    int row, csv, header_done;
    int finished; /* 0 while rows remain; 1 after the end (0 next); -1 after a failure (-1 next) */
    int counted;  /* holds one of app->exports */
    dynbuf line;  /* the formatted row being sent */
    size_t off;
} export_ctx;

static void export_free(void *p)
{
    export_ctx *x = p;
    PQclear(x->r);
    if (x->c) /* an unfinished transaction is rolled back by the release */
        db_release(x->a->db, x->c);
    if (x->counted)
        atomic_fetch_sub(x->a->exports, 1);
    dynbuf_free(&x->line);
    free(x);
}

static const cJSON *path_get(const cJSON *o, const char *path)
{
    char part[32];
    while (o && *path) {
        size_t n = strcspn(path, ".");
        snprintf(part, sizeof part, "%.*s", (int)n, path);
        o = cJSON_GetObjectItemCaseSensitive(o, part);
        path += n + (path[n] == '.');
    }
    return o;
}

/* One CSV cell: empty for null/absent, strings and JSON quoted (RFC 4180), numbers bare. */
static void csv_cell(dynbuf *b, const cJSON *v)
{
    if (!v || cJSON_IsNull(v))
        return;
    if (cJSON_IsBool(v)) {
        dynbuf_printf(b, "%s", cJSON_IsTrue(v) ? "true" : "false");
        return;
    }
    char *t = cJSON_IsString(v) ? NULL : cJSON_PrintUnformatted(v);
    const char *s = cJSON_IsString(v) ? v->valuestring : t ? t : "";
    if (cJSON_IsNumber(v) || (cJSON_IsRaw(v) && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))) {
        dynbuf_printf(b, "%s", s);
    } else {
        dynbuf_append(b, "\"", 1);
        for (const char *p = s; *p; p++)
            dynbuf_append(b, *p == '"' ? "\"\"" : p, *p == '"' ? 2 : 1);
        dynbuf_append(b, "\"", 1);
    }
    cJSON_free(t);
}

/* Formats row x->row of x->r into x->line.  0, or -1 when out of memory. */
static int format_row(export_ctx *x)
{
    cJSON *o = txn_row_json(x->r, x->row);
    if (!o)
        return -1;
    if (x->csv) {
        for (int i = 0; csv_cols[i]; i++) {
            if (i)
                dynbuf_append(&x->line, ",", 1);
            csv_cell(&x->line, path_get(o, csv_cols[i]));
        }
        dynbuf_append(&x->line, "\r\n", 2);
    } else { /* the printer GET /transactions/{id} answers with (http_json) */
        char *s = json_print(o);
        if (s) { /* not "%s\n": vsnprintf measured the ~2 KB line and then copied it, a byte at
                    a time through stdio, ~18% of the API's export CPU */
            dynbuf_append(&x->line, s, strlen(s));
            dynbuf_append(&x->line, "\n", 1);
        } else
            x->line.err = DYNBUF_E_NOMEM;
        free(s);
    }
    cJSON_Delete(o);
    return x->line.err ? -1 : 0;
}

/* Refills x->line: the CSV header, the next row, or the end (COMMIT).  Returns 1 with bytes in
 * x->line, 0 at the end, -1 on error (logged). */
static int refill(export_ctx *x)
{
    char err[256] = "";
    int64_t deadline = clock_now_ms() + x->a->cfg->request_timeout_ms;
    dynbuf_free(&x->line);
    x->off = 0;
    if (x->csv && !x->header_done) {
        x->header_done = 1;
        for (int i = 0; csv_cols[i]; i++)
            dynbuf_printf(&x->line, "%s%s", i ? "," : "", csv_cols[i]);
        dynbuf_append(&x->line, "\r\n", 2);
        return x->line.err ? -1 : 1;
    }
    if (!x->r || x->row >= PQntuples(x->r)) {
        PQclear(x->r);
        x->r = NULL;
        x->row = 0;
        if (db_query(x->c, "FETCH FORWARD 1000 FROM vigil_export", 0, NULL, NULL, NULL, 0, deadline,
                     &x->r, err, sizeof err) != DB_OK)
            goto fail;
        if (PQntuples(x->r) == 0) {
            if (db_exec(x->c, "COMMIT", 0, NULL, deadline, err, sizeof err) != DB_OK)
                goto fail;
            return 0;
        }
    }
    if (format_row(x) != 0) {
        snprintf(err, sizeof err, "out of memory formatting a row");
        goto fail;
    }
    x->row++;
    return 1;
fail:
    logline_event("error", "export_failed", "error", err);
    return -1;
}

/* Fills buf with as many whole or partial rows as fit (one block, one send, not one a row).  A
 * failure after some bytes were copied is returned on the next call. */
static long export_read(void *p, char *buf, size_t max)
{
    export_ctx *x = p;
    size_t n = 0;
    while (n < max && !x->finished) {
        if (x->off >= x->line.len) {
            int rc = refill(x);
            if (rc <= 0) {
                x->finished = rc < 0 ? -1 : 1;
                break;
            }
        }
        size_t k = x->line.len - x->off < max - n ? x->line.len - x->off : max - n;
        memcpy(buf + n, x->line.p + x->off, k);
        x->off += k;
        n += k;
    }
    if (n > 0)
        return (long)n;
    return x->finished < 0 ? -1 : 0;
}

/* 1 when the Accept header lists text/csv. */
static int wants_csv(http_req *req)
{
    const char *acc = http_header(req, "Accept");
    char item[128];
    while (acc && *acc) {
        size_t n = strcspn(acc, ",");
        snprintf(item, sizeof item, "%.*s", (int)(n < sizeof item ? n : sizeof item - 1), acc);
        const char *s = item;
        while (*s == ' ' || *s == '\t')
            s++;
        if (http_media_type_is(s, "text/csv"))
            return 1;
        acc += n + (acc[n] == ',');
    }
    return 0;
}

/* The query arguments: from, to (RFC 3339), labelled_only (true | false).  0, or -1 + 400. */
static int export_args(http_req *req, http_resp *resp, const char **v)
{
    static const char *const args[] = {"from", "to", "labelled_only", NULL};
    const char *bad = http_query_unknown(req, args);
    const char *lo = http_query(req, "labelled_only");
    v[0] = http_query(req, "from"), v[1] = http_query(req, "to");
    v[2] = lo && strcmp(lo, "true") == 0 ? "true" : NULL;
    if (bad)
        http_problem(resp, 400, "unknown_parameter", bad, "unknown query parameter '%.64s'", bad);
    else if ((v[0] && !val_rfc3339(v[0])) || (v[1] && !val_rfc3339(v[1])))
        http_problem(resp, 400, "validation_failed", v[0] && !val_rfc3339(v[0]) ? "from" : "to",
                     "'from' and 'to' must be RFC 3339 date-times");
    else if (lo && strcmp(lo, "true") && strcmp(lo, "false"))
        http_problem(resp, 400, "validation_failed", "labelled_only",
                     "'labelled_only' must be true or false");
    else
        return 0;
    return -1;
}

void export_transactions(http_req *req, http_resp *resp)
{
    const char *v[3];
    PGresult *r = NULL;
    if (export_args(req, resp, v))
        return;
    export_ctx *x = calloc(1, sizeof *x);
    if (!x) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
        return;
    }
    x->a = req->app;
    x->csv = wants_csv(req);
    /* A stream holds its pooled connection at the client's reading speed: a bound on how many run
     * at once keeps slow readers from taking the whole pool from everything else. */
    x->counted = atomic_fetch_add(x->a->exports, 1) < x->a->cfg->export_concurrency;
    if (!x->counted) {
        atomic_fetch_sub(x->a->exports, 1);
        http_unavailable(resp, "as many exports as VIGIL_EXPORT_CONCURRENCY allows are running");
        free(x);
        return;
    }
    dynbuf_init(&x->line, EXPORT_LINE_MAX);
    if (!(x->c = dbreq_acquire(req, resp)) ||
        dbreq_query(req, resp, x->c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL,
                    &r) != DB_OK)
        goto fail;
    PQclear(r);
    r = NULL;
    int rc = dbreq_query(req, resp, x->c,
                         "DECLARE vigil_export NO SCROLL CURSOR FOR SELECT " TXN_COLS
                         " FROM transactions t WHERE ($1::timestamptz IS NULL OR "
                         "t.occurred_at >= $1::timestamptz) AND ($2::timestamptz IS NULL OR "
                         "t.occurred_at < $2::timestamptz) AND ($3::boolean IS NOT TRUE OR "
                         "t.label IS NOT NULL) ORDER BY t.occurred_at, t.id",
                         3, v, &r);
    if (rc == DB_ERROR && strncmp(db_sqlstate(r), "22", 2) == 0)
        http_problem(resp, 400, "validation_failed", "from",
                     "'from' and 'to' must be valid date-times");
    else if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    if (rc != DB_OK)
        goto fail;
    PQclear(r);
    http_stream(resp, 200, x->csv ? "text/csv; charset=utf-8" : "application/x-ndjson", export_read,
                x, export_free);
    return;
fail:
    PQclear(r);
    export_free(x);
}
