/* db.c - PostgreSQL pool with deadline-bounded connect and queries.  See db.h.
 *
 * Every network wait is a poll() on the libpq socket bounded by the caller's deadline: connects
 * use PQconnectStartParams/PQconnectPoll, queries PQsendQueryParams/PQconsumeInput.  A query that
 * overruns is cancelled server-side and its connection discarded (its state is unknown).  Who holds
 * which connection is api/pool.c's (one bounded wait for both pools); log lines go through
 * common/logline (this file knows nothing of HTTP).
 *
 * The two libpq calls that can block without a bound never run on a caller's thread:
 *   - PQcancel (libpq < 17 has no non-blocking cancel) connects, sends, then waits in recv() for
 *     the server to close: with PostgreSQL frozen that is forever.  A timed-out connection is
 *     dropped at once (PQfinish does not wait on a non-blocking connection) and its cancel key is
 *     queued for one canceller thread per pool; the queue is bounded (DB_CANCEL_QUEUE) and a
 *     cancel that finds it full is skipped (the server still ends the query when it next writes
 *     to the dropped connection).
 *   - the host name lookup of a connect (getaddrinfo inside PQconnectStartParams) runs on a
 *     short-lived detached thread; the connect waits for it no longer than its deadline and passes
 *     the numeric address as hostaddr (host stays for TLS and password lookup). */
#include "db.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "logline.h"
#include "pool.h"
#include "resolve.h"
#include "trace.h"

/* A connection lives in slot (its index in db_pool.conns) of the pool's slots; pg is touched only
 * by the thread holding the slot (and read, under the slots' mutex, by the open counts). */
/* The statements prepared on one connection (server-side, by the extended protocol's Parse): a
 * statement is prepared the first time its text runs on the connection, then only executed, so the
 * server parses and analyses it once per connection instead of once per call.  Keyed by the full
 * text (a hash to skip most compares); at most DB_PREPARED_MAX per connection, texts beyond that
 * run unprepared.  Forgotten when the connection is replaced. */
#define DB_PREPARED_MAX 128
typedef struct db_prepared {
    uint64_t hash;
    char *sql;    /* owned copy; NULL = free slot */
    unsigned num; /* the server-side name is "vg<num>" */
} db_prepared;

struct db_conn {
    PGconn *pg;
    db_prepared prep[DB_PREPARED_MAX];
    int nprep;            /* slots in use at the front of prep (free ones inside are reused) */
    unsigned prep_num;    /* the next statement name's number (never reused on one connection) */
    struct db_pool *pool; /* set at creation, never changes */
    int64_t deadline_ms;  /* of the db_acquire that handed it out: bounds the release's ROLLBACK */
    trace_db trace; /* the span of this hand-out (trace.h), when the holder's request is traced */
};

#define DB_CANCEL_QUEUE 16

/* The canceller thread's state.  Shared by the pool and the thread: whoever lets go last frees it
 * (the thread, when stopping is set and it is done), so destroying the pool never waits on a
 * PQcancel that cannot finish. */
typedef struct db_canceller {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    PGcancel *queue[DB_CANCEL_QUEUE];
    int head, count;
    int stopping;
    unsigned long long skipped;
} db_canceller;

struct db_pool {
    pool_slots slots;
    char *url;
    char *lookup_host; /* the one host name of url that needs DNS, or NULL */
    int size;
    int connect_timeout_ms;
    db_conn *conns;
    db_canceller *canceller;
};

/* ---- the canceller thread ---------------------------------------------------------------------
 */

static void *canceller_main(void *arg)
{
    db_canceller *k = arg;
    pthread_mutex_lock(&k->mu);
    for (;;) {
        while (k->count == 0 && !k->stopping)
            pthread_cond_wait(&k->cv, &k->mu);
        if (k->count == 0)
            break; /* stopping, nothing left */
        PGcancel *cn = k->queue[k->head];
        k->head = (k->head + 1) % DB_CANCEL_QUEUE;
        k->count--;
        pthread_mutex_unlock(&k->mu);
        char e[128];
        PQcancel(cn, e, sizeof e); /* may block until the server answers: only this thread */
        PQfreeCancel(cn);
        pthread_mutex_lock(&k->mu);
    }
    pthread_mutex_unlock(&k->mu);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
    return NULL;
}

/* Starts the canceller thread (detached).  Returns it, or NULL on failure. */
static db_canceller *canceller_start(void)
{
    db_canceller *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    int rc = resolve_start_detached(canceller_main, k);
    if (rc != 0) {
        pthread_cond_destroy(&k->cv);
        pthread_mutex_destroy(&k->mu);
        free(k);
        return NULL;
    }
    return k;
}

/* Tells the thread to finish what is queued and free everything; never waits for it. */
static void canceller_stop(db_canceller *k)
{
    if (!k)
        return;
    pthread_mutex_lock(&k->mu);
    k->stopping = 1;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

/* Queues cn (taken: the thread frees it).  Never blocks on the network: a full queue drops it. */
static void canceller_take(db_canceller *k, PGcancel *cn)
{
    int queued = 0;
    unsigned long long skipped = 0;
    pthread_mutex_lock(&k->mu);
    if (k->count < DB_CANCEL_QUEUE && !k->stopping) {
        k->queue[(k->head + k->count) % DB_CANCEL_QUEUE] = cn;
        k->count++;
        queued = 1;
        pthread_cond_signal(&k->cv);
    } else {
        skipped = ++k->skipped;
    }
    pthread_mutex_unlock(&k->mu);
    if (!queued) {
        PQfreeCancel(cn);
        logline l;
        logline_begin(&l, "warn", "db_cancel_skipped");
        logline_u64(&l, "skipped_total", skipped);
        logline_end(&l);
    }
}

/* Resolves host into addr[INET6_ADDRSTRLEN] (its first address) before deadline_ms.  Returns
 * DB_OK, DB_DOWN (no such host, or no thread) or DB_TIMEOUT (resolve.h). */
static int lookup_host(const char *host, int64_t deadline_ms, char *addr)
{
    struct addrinfo *res = NULL;
    int rc = resolve_host(RESOLVE_FOR_DB, host, deadline_ms, &res);
    if (rc != RESOLVE_OK)
        return rc == RESOLVE_TIMEOUT ? DB_TIMEOUT : DB_DOWN;
    const void *a = res->ai_family == AF_INET6
                        ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
    rc = inet_ntop(res->ai_family, a, addr, INET6_ADDRSTRLEN) ? DB_OK : DB_DOWN;
    freeaddrinfo(res);
    return rc;
}

/* The host of url when connecting needs a DNS lookup: one host name (not a socket directory, not
 * a numeric address, not a list) and no hostaddr.  malloc'd, or NULL. */
static char *host_needing_lookup(const char *url)
{
    PQconninfoOption *opts = PQconninfoParse(url, NULL);
    const char *host = NULL, *hostaddr = NULL;
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            hostaddr = o->val;
    }
    unsigned char buf[sizeof(struct in6_addr)];
    int needs = host && *host && host[0] != '/' && host[0] != '@' && !strchr(host, ',') &&
                strlen(host) < 256 && !(hostaddr && *hostaddr) &&
                inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1;
    char *out = needs ? strdup(host) : NULL;
    PQconninfoFree(opts);
    return out;
}

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
    p->lookup_host = host_needing_lookup(url);
    if (!(p->canceller = canceller_start())) {
        pool_fini(&p->slots);
        goto oom;
    }
    p->size = size;
    p->connect_timeout_ms = connect_timeout_ms;
    for (int i = 0; i < size; i++)
        p->conns[i].pool = p;
    return p;
oom:
    snprintf(err, errlen, "out of memory");
    if (p) {
        free(p->lookup_host);
        free(p->url);
        free(p->conns);
        free(p);
    }
    return NULL;
}

/* Forgets c's prepared statements (the connection they lived on is gone or new). */
static void prep_clear(db_conn *c)
{
    for (int i = 0; i < c->nprep; i++)
        free(c->prep[i].sql);
    memset(c->prep, 0, sizeof c->prep);
    c->nprep = 0;
}

void db_pool_destroy(db_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->size; i++) {
        if (p->conns[i].pg)
            PQfinish(p->conns[i].pg);
        prep_clear(&p->conns[i]);
    }
    canceller_stop(p->canceller);
    pool_fini(&p->slots);
    free(p->conns);
    free(p->lookup_host);
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

static int run_query(db_conn *c, const char *sql, int nparams, const char *const *values,
                     const int *lengths, const int *formats, int binary_result, int64_t deadline_ms,
                     PGresult **res, char *err, size_t errlen);

/* The session settings every statement of vigil-api may rely on.  Timestamps that travel as text
 * and come back as parameters (a backtest's chunk position, its window) are printed and parsed in
 * one form, whatever the server's configuration, the role's or PGDATESTYLE/PGTZ in the API's
 * environment say: under 'SQL, DMY' and Asia/Kolkata a zone printed as "IST" was read back as
 * Israel's, and a backtest silently skipped rows at every chunk. */
#define SESSION_SQL                                                                                \
    "SELECT set_config('DateStyle', 'ISO, YMD', false), set_config('TimeZone', 'UTC', false)"

/* Opens a connection before deadline.  Returns DB_OK, DB_DOWN or DB_TIMEOUT. */
static int connect_one(db_pool *p, db_conn *c, int64_t deadline_ms)
{
    int64_t dl = clock_now_ms() + p->connect_timeout_ms;
    if (dl > deadline_ms)
        dl = deadline_ms;
    char addr[INET6_ADDRSTRLEN] = "";
    if (p->lookup_host) {
        int rc = lookup_host(p->lookup_host, dl, addr);
        if (rc != DB_OK)
            return rc == DB_TIMEOUT && deadline_ms <= clock_now_ms() ? DB_TIMEOUT : DB_DOWN;
    }
    /* Later keywords override what the expanded dbname (the URL) says. */
    const char *keys[] = {"dbname", "application_name", addr[0] ? "hostaddr" : NULL, NULL};
    const char *vals[] = {p->url, "vigil-api", addr[0] ? addr : NULL, NULL};
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
    prep_clear(c);
    c->pg = pg;
    PGresult *r = NULL;
    char e[256];
    int rc = run_query(c, SESSION_SQL, 0, NULL, NULL, NULL, 0, dl, &r, e, sizeof e);
    PQclear(r);
    if (rc != DB_OK) {
        if (c->pg) /* run_query drops a connection it gave up on */
            PQfinish(c->pg);
        c->pg = NULL;
        return rc == DB_TIMEOUT ? DB_TIMEOUT : DB_DOWN;
    }
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
    int64_t wait_started_ns = trace_enabled() ? trace_now_ns() : 0;
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
    c->deadline_ms = deadline_ms;
    trace_db_begin(&c->trace, wait_started_ns);
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
        /* A handler left a transaction open (error path): roll back, or drop if that fails.  Not
         * past the holder's deadline: a dropped connection rolls back on the server anyway. */
        char err[128];
        int64_t dl = clock_now_ms() + 1000;
        if (dl > c->deadline_ms)
            dl = c->deadline_ms;
        if (PQtransactionStatus(c->pg) == PQTRANS_ACTIVE ||
            db_exec(c, "ROLLBACK", 0, NULL, dl, err, sizeof err) != DB_OK) {
            if (c->pg)
                PQfinish(c->pg);
            c->pg = NULL;
        }
    }
    trace_db_end(&c->trace);
    pool_give(&p->slots, (int)(c - p->conns));
}

/* Discards the connection at once and has the canceller thread cancel its running statement
 * (best effort).  Never waits on the network: PQgetCancel only copies the key, and PQfinish on a
 * non-blocking connection does not wait for the Terminate message to leave. */
static void abandon(db_conn *c)
{
    PGcancel *cn = PQgetCancel(c->pg);
    PQfinish(c->pg);
    c->pg = NULL;
    if (cn)
        canceller_take(c->pool->canceller, cn);
}

static void first_line(const char *msg, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s", msg && *msg ? msg : "unknown error");
    char *nl = strchr(err, '\n');
    if (nl)
        *nl = '\0';
}

/* ---- statements: prepared once per connection, sent in pipelines -------------------------- */

static uint64_t prep_hash(const char *sql)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *q = (const unsigned char *)sql; *q; q++)
        h = (h ^ *q) * 1099511628211ULL;
    return h;
}

/* The slot holding sql's prepared statement, or -1. */
static int prep_find(const db_conn *c, const char *sql, uint64_t h)
{
    for (int i = 0; i < c->nprep; i++)
        if (c->prep[i].sql && c->prep[i].hash == h && strcmp(c->prep[i].sql, sql) == 0)
            return i;
    return -1;
}

/* Claims a slot for sql and names it; -1 when every slot is taken or out of memory (the statement
 * then runs unprepared). */
static int prep_add(db_conn *c, const char *sql, uint64_t h)
{
    int i = 0;
    while (i < c->nprep && c->prep[i].sql)
        i++;
    if (i == DB_PREPARED_MAX)
        return -1;
    char *copy = strdup(sql);
    if (!copy)
        return -1;
    c->prep[i] = (db_prepared){h, copy, c->prep_num++};
    if (i == c->nprep)
        c->nprep++;
    return i;
}

static void prep_forget(db_conn *c, int i)
{
    free(c->prep[i].sql);
    c->prep[i].sql = NULL;
}

/* How one statement of a pipeline was sent: its slot, and whether a Parse went before it. */
typedef struct sent_stmt {
    int slot;   /* prepared statement slot, -1 = sent unprepared */
    int parsed; /* a Parse (PQsendPrepare) was queued before the Execute */
} sent_stmt;

/* Sends what libpq has buffered, reading meanwhile so the server never blocks on us.  0, or
 * DB_TIMEOUT / DB_DOWN. */
static int flush_all(db_conn *c, int64_t deadline_ms)
{
    for (;;) {
        int f = PQflush(c->pg);
        if (f == 0)
            return 0;
        if (f < 0)
            return DB_DOWN;
        int w = wait_sock(PQsocket(c->pg), POLLOUT | POLLIN, deadline_ms);
        if (w == 0)
            return DB_TIMEOUT;
        if (w < 0 || !PQconsumeInput(c->pg))
            return DB_DOWN;
    }
}

/* Waits until a result can be read without blocking.  0, or DB_TIMEOUT / DB_DOWN. */
static int await_result(db_conn *c, int64_t deadline_ms)
{
    while (PQisBusy(c->pg)) {
        int w = wait_sock(PQsocket(c->pg), POLLIN, deadline_ms);
        if (w == 0)
            return DB_TIMEOUT;
        if (w < 0 || !PQconsumeInput(c->pg))
            return DB_DOWN;
    }
    return 0;
}

/* Reads one queued command's results up to its terminating NULL: *out gets the first error or
 * else the last result (NULL when there was none).  0, or DB_TIMEOUT / DB_DOWN. */
static int read_command(db_conn *c, int64_t deadline_ms, PGresult **out)
{
    PGresult *keep = NULL;
    for (;;) {
        int rc = await_result(c, deadline_ms);
        if (rc) {
            PQclear(keep);
            return rc;
        }
        PGresult *r = PQgetResult(c->pg);
        if (!r)
            break;
        if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
            PQclear(r);
        } else {
            PQclear(keep);
            keep = r;
        }
    }
    *out = keep;
    return 0;
}

/* Queues stmt i (a Parse first when its text is new on this connection). */
static int send_stmt(db_conn *c, const db_stmt *s, sent_stmt *how)
{
    how->slot = -1;
    how->parsed = 0;
    uint64_t h = s->prepare ? prep_hash(s->sql) : 0;
    int slot = s->prepare ? prep_find(c, s->sql, h) : -1;
    if (slot < 0 && s->prepare && (slot = prep_add(c, s->sql, h)) >= 0) {
        char name[16];
        snprintf(name, sizeof name, "vg%u", c->prep[slot].num);
        if (!PQsendPrepare(c->pg, name, s->sql, s->nparams, NULL)) {
            prep_forget(c, slot);
            return -1;
        }
        how->parsed = 1;
    }
    if (slot < 0)
        return PQsendQueryParams(c->pg, s->sql, s->nparams, NULL, s->values, s->lengths, s->formats,
                                 s->binary_result)
                   ? 0
                   : -1;
    char name[16];
    snprintf(name, sizeof name, "vg%u", c->prep[slot].num);
    how->slot = slot;
    return PQsendQueryPrepared(c->pg, name, s->nparams, s->values, s->lengths, s->formats,
                               s->binary_result)
               ? 0
               : -1;
}

/* Reads statement i's results (its Parse's first, when one was sent) into res[i]: its result, or
 * the error that stopped it; nothing for a statement not run after an earlier error.  The first
 * error sets *failed and *rc.  0, or DB_TIMEOUT / DB_DOWN. */
static int read_stmt(db_conn *c, const sent_stmt *how, int i, int64_t deadline_ms, PGresult **res,
                     int *failed, int *rc, char *err, size_t errlen)
{
    PGresult *r = NULL;
    int st;
    if (how->parsed) {
        if ((st = read_command(c, deadline_ms, &r)) || (st = r ? 0 : DB_DOWN))
            return st;
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            prep_forget(c, how->slot); /* no statement by that name exists */
            if (PQresultStatus(r) == PGRES_FATAL_ERROR && *rc == DB_OK) {
                res[i] = r; /* a Parse error (syntax, unknown column) is the statement's */
                *failed = i;
                *rc = DB_ERROR;
                r = NULL;
            }
        }
        PQclear(r);
        r = NULL;
    }
    if ((st = read_command(c, deadline_ms, &r)) || (st = r ? 0 : DB_DOWN))
        return st;
    ExecStatusType es = PQresultStatus(r);
    if (res[i] || es == PGRES_PIPELINE_ABORTED) {
        PQclear(r); /* after an earlier error: not run */
        return 0;
    }
    if (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK) {
        res[i] = r;
        return 0;
    }
    /* A changed table under a prepared statement (0A000 "cached plan must not change result
     * type", after a migration): prepare it afresh next time. */
    if (how->slot >= 0 && strcmp(db_sqlstate(r), "0A000") == 0)
        prep_forget(c, how->slot);
    if (*rc == DB_OK) {
        first_line(PQresultErrorMessage(r), err, errlen);
        *failed = i;
        *rc = DB_ERROR;
    }
    res[i] = r;
    return 0;
}

/* Reads one Sync's result.  0, or DB_TIMEOUT / DB_DOWN. */
static int read_sync(db_conn *c, int64_t deadline_ms)
{
    int st = await_result(c, deadline_ms);
    if (st)
        return st;
    PGresult *r = PQgetResult(c->pg);
    int ok = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
    PQclear(r);
    return ok ? 0 : DB_DOWN;
}

/* Reads the results of statements [from, to) and the Sync after them: what read_stmt gives each,
 * with the group's own first error in *grc / *gfailed / err.  0, or DB_TIMEOUT / DB_DOWN. */
static int read_group(db_conn *c, const sent_stmt *how, int from, int to, int64_t deadline_ms,
                      PGresult **res, int *gfailed, int *grc, char *err, size_t errlen)
{
    int st = 0;
    *grc = DB_OK;
    *gfailed = -1;
    for (int i = from; i < to && !st; i++)
        st = read_stmt(c, &how[i], i, deadline_ms, res, gfailed, grc, err, errlen);
    return st ? st : read_sync(c, deadline_ms);
}

/* Whether s's text was given its Parse by an earlier group of this pipeline (parsed[0..n): the
 * slots parsed so far, first_group[] the group of each).  Such a Parse may not have run: a
 * failing statement before it stops the rest of its group, Parse included, and an Execute of the
 * name would then fail in this group too ("does not exist", 26000). */
static int parsed_in_earlier_group(const db_conn *c, const db_stmt *s, const int *parsed,
                                   const int *first_group, int n, int g)
{
    int slot = s->prepare ? prep_find(c, s->sql, prep_hash(s->sql)) : -1;
    for (int k = 0; slot >= 0 && k < n; k++)
        if (parsed[k] == slot && first_group[k] < g)
            return 1;
    return 0;
}

/* db_pipeline_groups' round trip, untraced. */
static int run_pipeline(db_conn *c, const db_stmt *stmts, const int *ends, int ngroups,
                        int64_t deadline_ms, PGresult **res, int *failed, char *err, size_t errlen)
{
    sent_stmt how[DB_PIPELINE_MAX];
    int parsed[DB_PIPELINE_MAX], first_group[DB_PIPELINE_MAX], nparsed = 0;
    int rc = DB_OK, st = 0, n = ends[ngroups - 1];
    assert(ngroups > 0 && n > 0 && n <= DB_PIPELINE_MAX);
    *failed = -1;
    for (int i = 0; i < n; i++)
        res[i] = NULL;
    if (!c->pg) {
        snprintf(err, errlen, "no database connection");
        return DB_DOWN;
    }
    if (!PQenterPipelineMode(c->pg))
        goto broken;
    for (int g = 0, i = 0; g < ngroups; g++) {
        assert(ends[g] > i && ends[g] <= n);
        for (; i < ends[g]; i++) {
            db_stmt s = stmts[i];
            if (parsed_in_earlier_group(c, &s, parsed, first_group, nparsed, g))
                s.prepare = 0; /* sent unprepared: parsed here, in its own group */
            if (send_stmt(c, &s, &how[i]))
                goto broken;
            if (how[i].parsed) {
                parsed[nparsed] = how[i].slot;
                first_group[nparsed++] = g;
            }
        }
        if (!PQpipelineSync(c->pg))
            goto broken;
    }
    st = flush_all(c, deadline_ms);
    for (int g = 0, from = 0; g < ngroups && !st; from = ends[g++]) {
        char gerr[256];
        int grc, gfailed;
        gerr[0] = '\0';
        st = read_group(c, how, from, ends[g], deadline_ms, res, &gfailed, &grc, gerr, sizeof gerr);
        if (!st && grc == DB_ERROR && PQstatus(c->pg) != CONNECTION_OK)
            st = DB_DOWN;
        if (!st && grc == DB_ERROR && rc == DB_OK) { /* the first error is the one named */
            rc = DB_ERROR;
            *failed = gfailed;
            if (gerr[0])
                snprintf(err, errlen, "%s", gerr);
            else
                first_line(PQresultErrorMessage(res[gfailed]), err, errlen);
        }
    }
    if (st == DB_TIMEOUT)
        goto timeout;
    if (st || !PQexitPipelineMode(c->pg))
        goto broken;
    return rc;
timeout:
    for (int i = 0; i < n; i++) {
        PQclear(res[i]);
        res[i] = NULL;
    }
    *failed = -1;
    snprintf(err, errlen, "database query deadline passed");
    abandon(c);
    return DB_TIMEOUT;
broken:
    for (int i = 0; i < n; i++) {
        PQclear(res[i]);
        res[i] = NULL;
    }
    *failed = -1;
    first_line(PQerrorMessage(c->pg), err, errlen);
    PQfinish(c->pg);
    c->pg = NULL;
    return DB_DOWN;
}

static void trace_pipeline(db_conn *c, const db_stmt *stmts, int n, int rc, PGresult **res)
{
    if (c->trace.on)
        for (int i = 0; i < n; i++)
            trace_db_statement(&c->trace, stmts[i].sql,
                               rc == DB_TIMEOUT || rc == DB_DOWN ? db_error_type(rc, NULL)
                               : res[i] && PQresultStatus(res[i]) == PGRES_FATAL_ERROR
                                   ? db_sqlstate(res[i])
                                   : NULL);
}

int db_pipeline_groups(db_conn *c, const db_stmt *stmts, const int *ends, int ngroups,
                       int64_t deadline_ms, PGresult **res, int *failed, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    int rc = run_pipeline(c, stmts, ends, ngroups, deadline_ms, res, failed, err, errlen);
    trace_pipeline(c, stmts, ends[ngroups - 1], rc, res);
    return rc;
}

int db_pipeline(db_conn *c, const db_stmt *stmts, int n, int64_t deadline_ms, PGresult **res,
                int *failed, char *err, size_t errlen)
{
    return db_pipeline_groups(c, stmts, &n, 1, deadline_ms, res, failed, err, errlen);
}

/* db_query's round trip, untraced: one statement of a pipeline (unprepared), or with nparams < 0
 * a simple-protocol query string. */
static int run_query(db_conn *c, const char *sql, int nparams, const char *const *values,
                     const int *lengths, const int *formats, int binary_result, int64_t deadline_ms,
                     PGresult **res, char *err, size_t errlen)
{
    assert(c && sql && res && (nparams <= 0 || values));
    *res = NULL;
    if (nparams >= 0) {
        db_stmt s = {sql, nparams, values, lengths, formats, binary_result, 0};
        int failed, one = 1;
        return run_pipeline(c, &s, &one, 1, deadline_ms, res, &failed, err, errlen);
    }
    if (!c->pg) {
        snprintf(err, errlen, "no database connection");
        return DB_DOWN;
    }
    PGresult *keep = NULL;
    if (!PQsendQuery(c->pg, sql))
        goto broken;
    int lost = flush_all(c, deadline_ms);
    if (!lost)
        lost = read_command(c, deadline_ms, &keep);
    if (lost == DB_TIMEOUT)
        goto timeout;
    if (lost)
        goto broken;
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

int db_query(db_conn *c, const char *sql, int nparams, const char *const *values,
             const int *lengths, const int *formats, int binary_result, int64_t deadline_ms,
             PGresult **res, char *err, size_t errlen)
{
    int rc = run_query(c, sql, nparams, values, lengths, formats, binary_result, deadline_ms, res,
                       err, errlen);
    if (c->trace.on)
        trace_db_statement(&c->trace, sql, db_error_type(rc, *res));
    return rc;
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

const char *db_error_type(int rc, const PGresult *res)
{
    switch (rc) {
    case DB_OK:
        return NULL;
    case DB_ERROR:
        return db_sqlstate(res);
    case DB_TIMEOUT:
        return "timeout";
    case DB_BUSY:
        return "pool_exhausted";
    default:
        return "connection_lost";
    }
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
