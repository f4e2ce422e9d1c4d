/* db.c - PostgreSQL pool with deadline-bounded connect and queries.  See db.h.
 *
 * Every network wait is a poll() on the libpq socket bounded by the caller's deadline: connects
 * use PQconnectStartParams/PQconnectPoll, queries PQsendQueryParams/PQconsumeInput.  A query that
 * overruns is cancelled server-side and its connection discarded (its state is unknown).  Who holds
 * which connection is api/pool.c's (one bounded wait for both pools); log lines go through
 * common/logline (this file knows nothing of HTTP). */
#include "db.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "logline.h"
#include "pool.h"

/* A connection lives in slot (its index in db_pool.conns) of the pool's slots; pg is touched only
 * by the thread holding the slot (and read, under the slots' mutex, by the open counts). */
struct db_conn {
    PGconn *pg;
};

struct db_pool {
    pool_slots slots;
    char *url;
    int size;
    int connect_timeout_ms;
    db_conn *conns;
};

static int conn_open(const void *ctx, int i)
{
    const db_pool *p = ctx;
    return p->conns[i].pg != NULL;
}

db_pool *db_pool_create(const char *url, int size, int connect_timeout_ms, char *err, size_t errlen)
{
    assert(url && size > 0);
    db_pool *p = calloc(1, sizeof *p);
    if (!p)
        goto oom;
    p->url = strdup(url);
    p->conns = calloc((size_t)size, sizeof *p->conns);
    if (!p->url || !p->conns || pool_init(&p->slots, size) != 0)
        goto oom;
    p->size = size;
    p->connect_timeout_ms = connect_timeout_ms;
    return p;
oom:
    snprintf(err, errlen, "out of memory");
    if (p) {
        free(p->url);
        free(p->conns);
        free(p);
    }
    return NULL;
}

void db_pool_destroy(db_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->size; i++)
        if (p->conns[i].pg)
            PQfinish(p->conns[i].pg);
    pool_fini(&p->slots);
    free(p->conns);
    free(p->url);
    free(p);
}

/* Waits for fd readiness until deadline.  Returns 1 ready, 0 timeout, -1 error. */
static int wait_sock(int fd, short ev, int64_t deadline_ms)
{
    for (;;) {
        int64_t left = deadline_ms - clock_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pf = {.fd = fd, .events = ev};
        int rc = poll(&pf, 1, left > 1000 ? 1000 : (int)left);
        if (rc > 0)
            return 1;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

/* libpq prints server notices ("relation ... already exists, skipping") raw on stderr by default,
 * which would break the one-JSON-object-per-line log; route them through the logger instead. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    char raw[512];
    snprintf(raw, sizeof raw, "%s", message);
    size_t n = strlen(raw);
    while (n && (raw[n - 1] == '\n' || raw[n - 1] == '\r'))
        raw[--n] = '\0';
    logline_event("info", "db_notice", "detail", raw);
}

/* Opens a connection before deadline.  Returns DB_OK, DB_DOWN or DB_TIMEOUT. */
static int connect_one(db_pool *p, db_conn *c, int64_t deadline_ms)
{
    int64_t dl = clock_now_ms() + p->connect_timeout_ms;
    if (dl > deadline_ms)
        dl = deadline_ms;
    const char *keys[] = {"dbname", "application_name", NULL};
    const char *vals[] = {p->url, "vigil-api", NULL};
    PGconn *pg = PQconnectStartParams(keys, vals, 1);
    if (!pg)
        return DB_DOWN;
    if (PQstatus(pg) == CONNECTION_BAD)
        goto down;
    for (;;) {
        PostgresPollingStatusType st = PQconnectPoll(pg);
        if (st == PGRES_POLLING_OK)
            break;
        if (st == PGRES_POLLING_FAILED)
            goto down;
        int w = wait_sock(PQsocket(pg), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, dl);
        if (w == 0) {
            PQfinish(pg);
            return deadline_ms <= clock_now_ms() ? DB_TIMEOUT : DB_DOWN;
        }
        if (w < 0)
            goto down;
    }
    if (PQsetnonblocking(pg, 1) != 0)
        goto down;
    PQsetNoticeProcessor(pg, on_notice, NULL);
    c->pg = pg;
    return DB_OK;
down:
    PQfinish(pg);
    return DB_DOWN;
}

/* Drops c's connection if the server has closed it (restart, admin shutdown): any pending input
 * on an idle connection can only be an error or EOF. */
static void drop_if_stale(db_conn *c)
{
    if (!c->pg)
        return;
    if (PQstatus(c->pg) == CONNECTION_OK) {
        struct pollfd pf = {.fd = PQsocket(c->pg), .events = POLLIN};
        if (poll(&pf, 1, 0) == 0)
            return;
        if (PQconsumeInput(c->pg) && PQstatus(c->pg) == CONNECTION_OK && !PQisBusy(c->pg)) {
            PGresult *r;
            while ((r = PQgetResult(c->pg)) != NULL)
                PQclear(r);
            if (PQstatus(c->pg) == CONNECTION_OK)
                return;
        }
    }
    PQfinish(c->pg);
    c->pg = NULL;
}

int db_acquire(db_pool *p, int64_t deadline_ms, int wait_ms, db_conn **out)
{
    assert(p && out);
    *out = NULL;
    int64_t wait_until = clock_now_ms() + wait_ms;
    if (wait_until > deadline_ms)
        wait_until = deadline_ms;
    int slot = pool_take(&p->slots, wait_until, conn_open, p);
    if (slot < 0)
        return clock_now_ms() >= deadline_ms ? DB_TIMEOUT : DB_BUSY;
    db_conn *c = &p->conns[slot];

    drop_if_stale(c);
    if (!c->pg) {
        int rc = connect_one(p, c, deadline_ms);
        if (rc != DB_OK) {
            db_release(p, c);
            return rc;
        }
    }
    *out = c;
    return DB_OK;
}

void db_release(db_pool *p, db_conn *c)
{
    if (!c)
        return;
    assert(c >= p->conns && c < p->conns + p->size);
    if (c->pg && PQstatus(c->pg) != CONNECTION_OK) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    if (c->pg && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        /* A handler left a transaction open (error path): roll back, or drop if that fails. */
        char err[128];
        if (PQtransactionStatus(c->pg) == PQTRANS_ACTIVE ||
            db_exec(c, "ROLLBACK", 0, NULL, clock_now_ms() + 1000, err, sizeof err) != DB_OK) {
            if (c->pg)
                PQfinish(c->pg);
            c->pg = NULL;
        }
    }
    pool_give(&p->slots, (int)(c - p->conns));
}

/* Cancels the running statement (best effort) and discards the connection. */
static void abandon(db_conn *c)
{
    PGcancel *cn = PQgetCancel(c->pg);
    if (cn) {
        char e[64];
        PQcancel(cn, e, sizeof e);
        PQfreeCancel(cn);
    }
    PQfinish(c->pg);
    c->pg = NULL;
}

static void first_line(const char *msg, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s", msg && *msg ? msg : "unknown error");
    char *nl = strchr(err, '\n');
    if (nl)
        *nl = '\0';
}

int db_query(db_conn *c, const char *sql, int nparams, const char *const *values,
             const int *lengths, const int *formats, int binary_result, int64_t deadline_ms,
             PGresult **res, char *err, size_t errlen)
{
    assert(c && sql && res && (nparams <= 0 || values));
    *res = NULL;
    if (!c->pg) {
        snprintf(err, errlen, "no database connection");
        return DB_DOWN;
    }
    int sent = nparams < 0 ? PQsendQuery(c->pg, sql)
                           : PQsendQueryParams(c->pg, sql, nparams, NULL, values, lengths, formats,
                                               binary_result);
    if (!sent)
        goto broken;
    int sock = PQsocket(c->pg);
    for (;;) { /* flush the query, reading meanwhile so the server never blocks on us */
        int f = PQflush(c->pg);
        if (f == 0)
            break;
        if (f < 0)
            goto broken;
        int w = wait_sock(sock, POLLOUT | POLLIN, deadline_ms);
        if (w == 0)
            goto timeout;
        if (w < 0 || !PQconsumeInput(c->pg))
            goto broken;
    }
    PGresult *keep = NULL;
    for (;;) {
        while (PQisBusy(c->pg)) {
            int w = wait_sock(sock, POLLIN, deadline_ms);
            if (w == 0) {
                PQclear(keep);
                goto timeout;
            }
            if (w < 0 || !PQconsumeInput(c->pg)) {
                PQclear(keep);
                goto broken;
            }
        }
        PGresult *r = PQgetResult(c->pg);
        if (!r)
            break;
        /* Keep the first error, else the last result. */
        if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
            PQclear(r);
        } else {
            PQclear(keep);
            keep = r;
        }
    }
    if (!keep)
        goto broken;
    ExecStatusType st = PQresultStatus(keep);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        *res = keep;
        return DB_OK;
    }
    if (PQstatus(c->pg) != CONNECTION_OK) {
        PQclear(keep);
        goto broken;
    }
    first_line(PQresultErrorMessage(keep), err, errlen);
    *res = keep;
    return DB_ERROR;
timeout:
    snprintf(err, errlen, "database query deadline passed");
    abandon(c);
    return DB_TIMEOUT;
broken:
    first_line(PQerrorMessage(c->pg), err, errlen);
    PQfinish(c->pg);
    c->pg = NULL;
    return DB_DOWN;
}

int db_exec(db_conn *c, const char *sql, int nparams, const char *const *values,
            int64_t deadline_ms, char *err, size_t errlen)
{
    PGresult *r = NULL;
    int rc = db_query(c, sql, nparams, values, NULL, NULL, 0, deadline_ms, &r, err, errlen);
    PQclear(r);
    return rc;
}

const char *db_sqlstate(const PGresult *res)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

void db_pool_counts(db_pool *p, int *in_use, int *open, unsigned long long *waits)
{
    pool_counts(&p->slots, conn_open, p, in_use, open, waits);
}

int db_ping(db_pool *p, int64_t deadline_ms)
{
    db_conn *c = NULL;
    int rc = db_acquire(p, deadline_ms, 1000, &c);
    if (rc != DB_OK)
        return rc;
    char err[128];
    rc = db_exec(c, "SELECT 1", 0, NULL, deadline_ms, err, sizeof err);
    db_release(p, c);
    return rc;
}
