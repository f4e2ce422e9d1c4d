/* dispatch.c - the webhook dispatcher threads.  See dispatch.h.
 * Costs per batch of up to VIGIL_WEBHOOK_BATCH attempts: two statements (claim, record; a third
 * when some were given back) on the dispatcher's own pool and one HTTP exchange per attempt on a
 * kept-alive connection.  One thread at a time is the poller (one claim every
 * VIGIL_WEBHOOK_POLL_MS while the outbox is drained: go_idle); a thread whose claim returns
 * deliveries first hands the polling to a sleeping thread (hand_off_polling), and the others
 * sleep until then or until a claim finds a backlog (want_helper), so a dispatcher that keeps up
 * runs one claim at a time and a slow receiver holds up no new event for longer than the poll
 * interval.  The chores (the pending count for /metrics, the sweep of old events) are run by
 * whichever thread finds them due.  Measured (500 decisions/s, one endpoint, tests/bench/README.md
 * "Eighth session"): four threads all polling put four claims at once on the database and
 * doubled the decisions' p90 (9 ms against 4-6 ms with one or two threads). */
#include "dispatch.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "db.h"
#include "json.h"
#include "logline.h"
#include "metrics.h"
#include "netguard.h"
#include "sha256.h"
#include "transactions.h"

/* Due deliveries, claimed under one lease (webhook_claim, migration 0011, its plan fixed by 0012,
 * its object apart since 0014): at most $2, each the earliest pending event of its transaction for
 * its endpoint, so no two of one batch belong to the same (endpoint, transaction) and
 * per-transaction order holds; rows come ordered by endpoint.  The event's body is envelope (the
 * JSON object without its last member and closing brace) + ', "data" : ' + data + '}'; data is
 * NULL for a decision.* event, whose object is its transaction as decided (DECIDED_SQL).
 * Columns in order: */
#define CLAIM_SQL                                                                                  \
    "SELECT id, attempt, endpoint_id, url, secret, envelope, created_us, data, transaction_id "    \
    "FROM webhook_claim($1, $2)"
enum {
    CL_ID,
    CL_ATTEMPT,
    CL_ENDPOINT,
    CL_URL,
    CL_SECRET,
    CL_ENVELOPE,
    CL_CREATED_US,
    CL_DATA,
    CL_TXN
};

/* The transactions of a claim's decision events ($1: a uuid[] literal) as their decisions answered
 * them: the bytes the API answered (transactions.h). */
#define DECIDED_SQL "SELECT " TXN_COLS_DECIDED " FROM transactions t WHERE t.id = ANY ($1::uuid[])"

/* Records a batch's attempts in one statement (one commit): webhook_record_batch (migration
 * 0011, its plan fixed by 0012) answers each recorded delivery's new state. */
#define RECORD_SQL                                                                                 \
    "SELECT delivery, state FROM webhook_record_batch($1::json, $2::bigint, $3::bigint, "          \
    "$4::bigint, $5::int, $6)"

/* Gives back the deliveries of a batch that were not attempted (see attempt_batch): the claim's
 * attempt count is undone and the lease dropped, unless the delivery was claimed again since. */
#define UNCLAIM_SQL "SELECT webhook_unclaim($1::json)"

#define DB_BUDGET_MS 5000 /* bound of one dispatcher statement (pool wait included) */
#define BATCH_MAX 256     /* bound of VIGIL_WEBHOOK_BATCH (config.c) */

typedef struct thread_arg thread_arg;

struct dispatch {
    const cfg *cfg;
    db_pool *db;
    pthread_t *threads;
    thread_arg *args; /* one per thread */
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t helpers_cv; /* sleeping helpers wait here for helpers_wanted */
    int helpers_sleeping;      /* under mu: threads waiting on helpers_cv */
    int helpers_wanted;        /* under mu: sleepers to claim at once, not yet up */
    int poller_wanted;         /* under mu: a sleeper is to become the poller, not yet up */
    int poller_idle;           /* under mu: a thread is waiting out VIGIL_WEBHOOK_POLL_MS */
    int poked;                 /* under mu: the idle poller is to claim at once */
    _Atomic int stopping;      /* set once by dispatch_stop (under mu, for the conditions) */
    char name[96];             /* host:pid, recorded with every attempt */
    int64_t pending_next_ms;   /* under mu: when to count the pending deliveries again */
    int64_t sweep_next_ms;     /* under mu: when to drop old finished events again */
};

/* A claimed delivery: the PGresult of its batch's claim holds its texts, but body (malloc'd). */
typedef struct job {
    const char *id, *attempt, *endpoint, *url, *secret;
    char *body;
    int64_t created_us;
} job;

/* What an attempt did. */
typedef struct outcome {
    int ok;             /* a 2xx answer */
    int aborted;        /* cut short by dispatch_stop: not an attempt to record */
    long status;        /* HTTP status, 0 = none */
    char error[256];    /* "" when ok */
    int64_t us;         /* duration of the exchange */
    int64_t started_us; /* when it began, by clock_now_us (monotonic) */
} outcome;

/* One claim: n jobs whose texts live in r; o[k] is what attempting jobs[k] did, tried[k] whether
 * it was attempted (and not aborted), so it is recorded rather than given back. */
typedef struct batch {
    PGresult *r;
    int n;
    job jobs[BATCH_MAX];
    outcome o[BATCH_MAX];
    unsigned char tried[BATCH_MAX];
} batch;

/* Runs one statement on a pooled connection within DB_BUDGET_MS.  DB_OK with *r, else logs. */
static int query(dispatch *d, const char *sql, int n, const char *const *v, PGresult **r)
{
    db_conn *c = NULL;
    char err[256] = "";
    int64_t deadline = clock_now_ms() + DB_BUDGET_MS;
    int rc = db_acquire(d->db, deadline, DB_BUDGET_MS, &c);
    *r = NULL;
    if (rc == DB_OK) {
        rc = db_query(c, sql, n, v, NULL, NULL, 0, deadline, r, err, sizeof err);
        db_release(d->db, c);
    }
    if (rc != DB_OK) {
        logline_event("error", "webhook_db_failed", "error", err[0] ? err : "no connection");
        PQclear(*r);
        *r = NULL;
    }
    return rc;
}

/* The lease of a claim: attempt_batch starts an attempt only while its whole timeout, the
 * record's whole budget (DB_BUDGET_MS) and LEASE_MARGIN_MS still fit in it, and the first one
 * as long as the claim took less than VIGIL_WEBHOOK_TIMEOUT_MS. */
#define LEASE_MARGIN_MS 1000
static int lease_ms(const dispatch *d)
{
    return 2 * d->cfg->webhook_timeout_ms + DB_BUDGET_MS + LEASE_MARGIN_MS;
}

/* The body of claimed row k of r with object data: envelope + ', "data" : ' + data + '}'
 * (malloc'd; NULL when out of memory). */
static char *event_body(const PGresult *r, int k, const char *data)
{
    static const char mid[] = ", \"data\" : ";
    const char *env = PQgetvalue(r, k, CL_ENVELOPE);
    size_t ne = strlen(env), nd = strlen(data);
    char *b = malloc(ne + sizeof mid - 1 + nd + 2);
    if (b) {
        memcpy(b, env, ne);
        memcpy(b + ne, mid, sizeof mid - 1);
        memcpy(b + ne + sizeof mid - 1, data, nd);
        memcpy(b + ne + sizeof mid - 1 + nd, "}", 2);
    }
    return b;
}

/* The objects of the decision events among b's n rows (data NULL): one statement for them all,
 * each transaction printed as its decision answered it.  Their texts (malloc'd) go to obj[k],
 * NULL for the other rows.  Returns 0, or -1 (logged) when the statement failed or a transaction
 * is not there: the caller then gives the batch back. */
static int decided_objects(dispatch *d, const batch *b, int n, char **obj)
{
    size_t cap = (size_t)n * 40 + 3, len = 0;
    char *ids = malloc(cap);
    if (!ids)
        return -1;
    ids[len++] = '{';
    for (int k = 0; k < n; k++)
        if (PQgetisnull(b->r, k, CL_DATA))
            len += (size_t)snprintf(ids + len, cap - len, "%s%s", len > 1 ? "," : "",
                                    PQgetvalue(b->r, k, CL_TXN));
    memcpy(ids + len, "}", 2);
    int rc = -1;
    PGresult *r = NULL;
    const char *v[] = {ids};
    if (len > 1 && query(d, DECIDED_SQL, 1, v, &r) == DB_OK) {
        rc = 0;
        for (int k = 0; k < n && rc == 0; k++) {
            if (!PQgetisnull(b->r, k, CL_DATA))
                continue;
            int row = 0, nr = PQntuples(r);
            while (row < nr && strcmp(txn_row_id(r, row), PQgetvalue(b->r, k, CL_TXN)) != 0)
                row++;
            obj[k] = row < nr ? txn_row_text(r, row) : NULL;
            if (!obj[k]) {
                logline_event("error", "webhook_event_object_missing", "transaction_id",
                              PQgetvalue(b->r, k, CL_TXN));
                rc = -1;
            }
        }
    }
    PQclear(r);
    free(ids);
    return rc;
}

/* Frees what claim made for b (its jobs' bodies, its result). */
static void batch_release(batch *b)
{
    for (int k = 0; k < b->n; k++) {
        free(b->jobs[k].body);
        b->jobs[k].body = NULL;
    }
    b->n = 0;
    PQclear(b->r);
    b->r = NULL;
}

/* Claims up to VIGIL_WEBHOOK_BATCH due deliveries into b, each with its body.  Returns how many (0
 * when none is due), -1 when the statement failed, -2 when deliveries were claimed but their
 * bodies could not all be made (logged: the caller gives them back); batch_release(b) after. */
static int claim(dispatch *d, batch *b)
{
    char lease[16], limit[16];
    snprintf(lease, sizeof lease, "%d", lease_ms(d));
    snprintf(limit, sizeof limit, "%d", d->cfg->webhook_batch);
    const char *v[] = {lease, limit};
    b->n = 0;
    if (query(d, CLAIM_SQL, 2, v, &b->r) != DB_OK)
        return -1;
    int n = PQntuples(b->r) < BATCH_MAX ? PQntuples(b->r) : BATCH_MAX, decided = 0;
    char *obj[BATCH_MAX];
    for (int k = 0; k < n; k++) {
        obj[k] = NULL;
        decided |= PQgetisnull(b->r, k, CL_DATA);
    }
    int failed = decided && decided_objects(d, b, n, obj) != 0;
    for (int k = 0; k < n; k++) {
        job *j = &b->jobs[k];
        j->id = PQgetvalue(b->r, k, CL_ID);
        j->attempt = PQgetvalue(b->r, k, CL_ATTEMPT);
        j->endpoint = PQgetvalue(b->r, k, CL_ENDPOINT);
        j->url = PQgetvalue(b->r, k, CL_URL);
        j->secret = PQgetvalue(b->r, k, CL_SECRET);
        j->body =
            failed ? NULL : event_body(b->r, k, obj[k] ? obj[k] : PQgetvalue(b->r, k, CL_DATA));
        j->created_us = strtoll(PQgetvalue(b->r, k, CL_CREATED_US), NULL, 10);
        failed |= !j->body;
        b->tried[k] = 0;
        b->n++;
        free(obj[k]);
    }
    return failed ? -2 : b->n;
}

/* ---- one HTTP attempt ------------------------------------------------------------------------ */

/* The connect-time SSRF check: curl asks this callback for every socket it would connect. */
typedef struct guard {
    int allowed; /* the URL's host is allow-listed: any address */
    int refused; /* set when an address was refused */
    char addr[64];
} guard;

static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    guard *g = clientp;
    if (purpose != CURLSOCKTYPE_IPCXN || (!g->allowed && netguard_addr_forbidden(&a->addr))) {
        g->refused = 1;
        snprintf(g->addr, sizeof g->addr, "%s", a->family == AF_INET6 ? "an IPv6 address" : "");
        if (a->family == AF_INET || a->family == AF_INET6) {
            const void *src = a->family == AF_INET6
                                  ? (const void *)&((struct sockaddr_in6 *)&a->addr)->sin6_addr
                                  : (const void *)&((struct sockaddr_in *)&a->addr)->sin_addr;
            inet_ntop(a->family, src, g->addr, sizeof g->addr);
        }
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Answers are read and dropped (only the status matters). */
static size_t discard(char *p, size_t size, size_t n, void *u)
{
    (void)p;
    (void)u;
    return size * n;
}

/* "Vigil-Signature: t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>" into out[cap].  The
 * signed text is built in one buffer; -1 when out of memory. */
static int sign(const char *secret, const char *body, long long t, char *out, size_t cap)
{
    size_t blen = strlen(body);
    char *msg = malloc(blen + 32);
    if (!msg)
        return -1;
    int n = snprintf(msg, 32, "%lld.", t);
    memcpy(msg + n, body, blen);
    uint8_t mac[32];
    char hex[65];
    sha256_hmac(secret, strlen(secret), msg, (size_t)n + blen, mac);
    sha256_hex(mac, hex);
    free(msg);
    snprintf(out, cap, "Vigil-Signature: t=%lld,v1=%s", t, hex);
    return 0;
}

/* libcurl's progress callback: a nonzero answer aborts the transfer, so a stopping process does
 * not wait for slow receivers (the unrecorded attempt is made again once its lease expires). */
static int on_progress(void *p, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    return atomic_load(&((dispatch *)p)->stopping) ? 1 : 0;
}

/* Every option of an attempt but the socket guard. */
static void set_options(CURL *h, const dispatch *d, const job *j, struct curl_slist *hdrs,
                        char *errbuf)
{
    curl_easy_setopt(h, CURLOPT_URL, j->url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(j->body));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    /* A timeout during name resolution returns at once, not when the resolver's thread does
     * (libcurl's threaded resolver otherwise joins it): a stalled DNS server would make an attempt
     * outlive its lease and never be recorded. */
    curl_easy_setopt(h, CURLOPT_QUICK_EXIT, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)d->cfg->webhook_timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(d->cfg->webhook_timeout_ms < 5000 ? d->cfg->webhook_timeout_ms : 5000));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "vigil-webhooks/1");
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)d);
}

/* POSTs j's event to its endpoint; fills *o. */
static void deliver(CURL *h, const dispatch *d, const job *j, outcome *o)
{
    char sig[160], attempt[48], errbuf[CURL_ERROR_SIZE] = "", host[256];
    struct curl_slist *hdrs = NULL;
    guard g = {0};
    memset(o, 0, sizeof *o);
    int64_t t0 = clock_now_us();
    o->started_us = t0;
    g.allowed = netguard_url_host(j->url, host, sizeof host) == 0 &&
                netguard_host_allowed(d->cfg->webhook_allowed_hosts, host);
    snprintf(attempt, sizeof attempt, "Vigil-Delivery-Attempt: %s", j->attempt);
    if (sign(j->secret, j->body, (long long)time(NULL), sig, sizeof sig) != 0) {
        snprintf(o->error, sizeof o->error, "out of memory");
        return;
    }
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    hdrs = curl_slist_append(hdrs, sig);
    hdrs = curl_slist_append(hdrs, attempt);
    curl_easy_reset(h);
    set_options(h, d, j, hdrs, errbuf);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &g);
    CURLcode rc = hdrs ? curl_easy_perform(h) : CURLE_OUT_OF_MEMORY;
    o->us = clock_now_us() - t0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &o->status);
    o->ok = rc == CURLE_OK && o->status >= 200 && o->status < 300;
    o->aborted = rc == CURLE_ABORTED_BY_CALLBACK;
    if (g.refused)
        snprintf(o->error, sizeof o->error,
                 "refused to connect to %s: not a public address (VIGIL_WEBHOOK_ALLOWED_HOSTS)",
                 g.addr);
    else if (rc != CURLE_OK)
        snprintf(o->error, sizeof o->error, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    else if (!o->ok)
        snprintf(o->error, sizeof o->error, "HTTP %ld", o->status);
    /* ASCII only: the error travels in a JSON text that PostgreSQL must accept (libcurl's
     * messages are ASCII, but one may quote a host name) */
    for (char *e = o->error; *e; e++)
        if ((unsigned char)*e >= 0x80)
            *e = '?';
    curl_slist_free_all(hdrs);
}

/* ---- record, loop ---------------------------------------------------------------------------- */

/* Counts what webhook_record answered for job j (state) and logs a delivery given up. */
static void count_outcome(const job *j, const outcome *o, const char *state)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t latency = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000 - j->created_us;
    if (strcmp(state, "delivered") == 0)
        metrics_observe_webhook(METRICS_WH_DELIVERED, o->us, latency);
    else if (strcmp(state, "pending") == 0)
        metrics_observe_webhook(METRICS_WH_RETRYING, o->us, 0);
    else if (strcmp(state, "failed") == 0) {
        metrics_observe_webhook(METRICS_WH_FAILED, o->us, 0);
        logline l;
        logline_begin(&l, "warn", "webhook_given_up");
        logline_str(&l, "delivery_id", j->id);
        logline_str(&l, "error", o->error);
        logline_end(&l);
    }
}

/* Adds job k of b (and its outcome when tried) to array a as json_to_recordset reads it; the
 * start goes as ago_us, microseconds before now (monotonic), so the database dates it on its own
 * clock.  0, or -1 when out of memory. */
static int batch_row(cJSON *a, const batch *b, int k, int tried, int64_t now_us)
{
    const outcome *o = &b->o[k];
    cJSON *x = cJSON_CreateObject();
    if (!x || !cJSON_AddItemToArray(a, x))
        return cJSON_Delete(x), -1;
    int ok = cJSON_AddStringToObject(x, "id", b->jobs[k].id) &&
             cJSON_AddStringToObject(x, "endpoint", b->jobs[k].endpoint) &&
             cJSON_AddRawToObject(x, "attempt", b->jobs[k].attempt); /* an integer's text */
    if (ok && tried)
        ok = cJSON_AddBoolToObject(x, "ok", o->ok) &&
             (!o->status || cJSON_AddNumberToObject(x, "status", (double)o->status)) &&
             (o->ok || cJSON_AddStringToObject(x, "error", o->error)) &&
             cJSON_AddNumberToObject(x, "ms", (double)(o->us / 1000)) &&
             cJSON_AddNumberToObject(x, "ago_us", (double)(now_us - o->started_us));
    return ok ? 0 : -1;
}

/* The JSON array of the jobs of b whose tried flag equals tried.  Returns a malloc'd text
 * (caller frees), NULL when there is none or out of memory. */
static char *batch_json(const batch *b, int tried)
{
    cJSON *a = cJSON_CreateArray();
    char *text = NULL;
    int count = 0;
    int64_t now_us = clock_now_us();
    for (int k = 0; a && k < b->n; k++) {
        if (b->tried[k] != tried)
            continue;
        if (batch_row(a, b, k, tried, now_us) != 0)
            goto fail;
        count++;
    }
    if (count > 0)
        text = json_print_exact(a);
fail:
    cJSON_Delete(a);
    return text;
}

/* Records the attempts of b (webhook_record_batch, one statement, one commit) and counts them.  A
 * failure to record leaves the leases to expire: those deliveries are attempted again (at
 * least once). */
static void record(dispatch *d, const batch *b)
{
    const cfg *c = d->cfg;
    char backoff[24], backoff_max[24], window[24], disable[16];
    char *rows = batch_json(b, 1);
    if (!rows)
        return;
    snprintf(backoff, sizeof backoff, "%lld", c->webhook_backoff_ms);
    snprintf(backoff_max, sizeof backoff_max, "%lld", c->webhook_backoff_max_ms);
    snprintf(window, sizeof window, "%lld", c->webhook_retry_window_s);
    snprintf(disable, sizeof disable, "%d", c->webhook_disable_after);
    const char *v[] = {rows, backoff, backoff_max, window, disable, d->name};
    PGresult *r = NULL;
    if (query(d, RECORD_SQL, 6, v, &r) == DB_OK) {
        for (int row = 0; row < PQntuples(r); row++) /* a stale attempt has no row */
            for (int k = 0; k < b->n; k++)
                if (b->tried[k] && strcmp(b->jobs[k].id, PQgetvalue(r, row, 0)) == 0)
                    count_outcome(&b->jobs[k], &b->o[k], PQgetvalue(r, row, 1));
    }
    PQclear(r);
    free(rows);
}

/* Gives back the jobs of b that were not attempted (UNCLAIM_SQL).  On failure their leases
 * expire instead and the deliveries are claimed again then. */
static void unclaim(dispatch *d, const batch *b)
{
    char *rows = batch_json(b, 0);
    if (!rows)
        return;
    const char *v[] = {rows};
    PGresult *r = NULL;
    query(d, UNCLAIM_SQL, 1, v, &r);
    PQclear(r);
    free(rows);
}

/* 1 when a chore whose next run is *next is due (then its next run is every_ms from now), so
 * whichever thread asks first runs it.  Under mu. */
static int chore_due(dispatch *d, int64_t *next, int64_t every_ms)
{
    pthread_mutex_lock(&d->mu);
    int64_t now = clock_now_ms();
    int due = now >= *next;
    if (due)
        *next = now + every_ms;
    pthread_mutex_unlock(&d->mu);
    return due;
}

/* A chore: the pending count for /metrics, at most once a second. */
static void count_pending(dispatch *d)
{
    PGresult *r = NULL;
    if (!chore_due(d, &d->pending_next_ms, 1000))
        return;
    if (query(d, "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'", 0, NULL, &r) ==
        DB_OK)
        metrics_set_webhook_pending(strtoll(PQgetvalue(r, 0, 0), NULL, 10));
    PQclear(r);
}

/* The other chore: events older than VIGIL_WEBHOOK_RETENTION_S with no pending delivery
 * are deleted (with their deliveries and attempts, by cascade), 1000 at a time, at most every
 * min(60 s, retention), so the outbox stays bounded without a separate job.  The cutoff is
 * from now() so it bounds a walk of webhook_events_created (a volatile clock_timestamp() cannot:
 * each sweep would read the whole outbox). */
static void sweep(dispatch *d)
{
    PGresult *r = NULL;
    long long every_ms =
        d->cfg->webhook_retention_s < 60 ? d->cfg->webhook_retention_s * 1000 : 60000;
    if (!chore_due(d, &d->sweep_next_ms, every_ms))
        return;
    char secs[24];
    snprintf(secs, sizeof secs, "%lld", d->cfg->webhook_retention_s);
    const char *v[] = {secs};
    query(d,
          "DELETE FROM webhook_events WHERE id = ANY (ARRAY(SELECT e.id FROM webhook_events e "
          "WHERE e.created_at < now() - $1::bigint * interval '1 second' "
          "AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.event_id = e.id "
          "AND p.state = 'pending') ORDER BY e.created_at LIMIT 1000))",
          1, v, &r);
    PQclear(r);
}

/* ---- who claims when ------------------------------------------------------------------------
 * One thread at a time is the poller: once a claim is not full it waits out
 * VIGIL_WEBHOOK_POLL_MS (or a poke) and claims again.  A thread whose claim returns deliveries
 * first hands the polling to a sleeping thread (hand_off_polling: that thread waits the poll
 * interval, then claims), so new events never wait for a batch longer than the poll interval
 * whatever its receivers take; a claim that found a backlog wakes a sleeping thread to claim at
 * once (want_helper; with none asleep the idle poller is poked instead).  A thread done with its
 * work goes idle (go_idle): the poller if the role is free, else asleep.  These functions take
 * mu themselves unless they say "Caller holds mu". */

/* Sleeping threads not yet spoken for by a wake-up.  Caller holds mu. */
static int sleepers_free(const dispatch *d)
{
    return d->helpers_sleeping - d->helpers_wanted - d->poller_wanted;
}

/* A claim found a backlog (a full batch, or deliveries it had to give back): one more thread
 * claims at once. */
static void want_helper(dispatch *d)
{
    pthread_mutex_lock(&d->mu);
    if (sleepers_free(d) > 0) {
        d->helpers_wanted++;
        pthread_cond_broadcast(&d->helpers_cv);
    } else if (d->poller_idle) {
        d->poked = 1;
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
}

/* The calling thread claimed deliveries and is about to attempt them: unless a thread is already
 * polling or about to, a sleeping one becomes the poller. */
static void hand_off_polling(dispatch *d)
{
    pthread_mutex_lock(&d->mu);
    if (!d->poller_idle && !d->poller_wanted && sleepers_free(d) > 0) {
        d->poller_wanted = 1;
        pthread_cond_broadcast(&d->helpers_cv);
    }
    pthread_mutex_unlock(&d->mu);
}

/* Sleeps until woken or stopping.  Returns -1 when stopping, 0 to claim at once, 1 to become
 * the poller.  Caller holds mu (released while asleep). */
static int sleep_turn(dispatch *d)
{
    int r = -1;
    d->helpers_sleeping++;
    while (!atomic_load(&d->stopping)) {
        if (d->helpers_wanted > 0) {
            d->helpers_wanted--, r = 0;
            break;
        }
        if (d->poller_wanted) {
            d->poller_wanted = 0, r = 1;
            break;
        }
        pthread_cond_wait(&d->helpers_cv, &d->mu);
    }
    d->helpers_sleeping--;
    return r;
}

/* The poller waits ms, or until poked or stopping; returns stopping.  Caller holds mu (released
 * while waiting). */
static int poll_wait(dispatch *d, int ms)
{
    struct timespec ts;
    d->poller_idle = 1;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L)
        ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    while (!atomic_load(&d->stopping) && !d->poked &&
           pthread_cond_timedwait(&d->cv, &d->mu, &ts) == 0)
        ;
    d->poked = 0;
    d->poller_idle = 0;
    return atomic_load(&d->stopping);
}

/* A thread with nothing to do (asleep_first: one that starts asleep): the poller (claims again
 * after ms) when no other thread is or is about to be, else asleep until woken.  Returns
 * stopping. */
static int go_idle(dispatch *d, int ms, int asleep_first)
{
    pthread_mutex_lock(&d->mu);
    int from_sleep = asleep_first || d->poller_idle || d->poller_wanted;
    int r = from_sleep ? sleep_turn(d) : 1;
    if (r == 1) /* the poller: after a hand-off it waits the poll interval, else ms */
        r = poll_wait(d, from_sleep ? d->cfg->webhook_poll_ms : ms) ? -1 : 0;
    pthread_mutex_unlock(&d->mu);
    return r < 0;
}

/* Attempts the jobs of b in order on handle h while each still has its whole timeout and the
 * record's budget left in the claim's lease (taken at claimed_ms), so no attempt can outlive its
 * lease, unrecorded, and be made a second time by another thread or replica; the rest are given
 * back.  Stops early when the dispatcher stops.  Returns how many were attempted. */
static int attempt_batch(dispatch *d, CURL *h, batch *b, int64_t claimed_ms)
{
    int64_t last_start =
        claimed_ms + lease_ms(d) - d->cfg->webhook_timeout_ms - DB_BUDGET_MS - LEASE_MARGIN_MS;
    int tried = 0;
    for (int k = 0; k < b->n; k++) {
        if (atomic_load(&d->stopping) || clock_now_ms() > last_start)
            break;
        deliver(h, d, &b->jobs[k], &b->o[k]);
        b->tried[k] = !b->o[k].aborted;
        tried += b->tried[k];
    }
    return tried;
}

/* A thread's own resources, made (and freed) by dispatch_start/dispatch_stop. */
struct thread_arg {
    dispatch *d;
    CURL *h;   /* its kept-alive connections */
    batch *b;  /* its claim */
    int first; /* the first thread claims at once; the others start asleep */
};

/* Pause after a claim failed (database down): the poller's interval or 1 s, whichever is
 * longer, so a database outage logs about one line a second. */
#define FAIL_WAIT_MS 1000

static void *run(void *p)
{
    thread_arg *a = p;
    dispatch *d = a->d;
    CURL *h = a->h;
    batch *b = a->b;
    int stop = !a->first && go_idle(d, 0, 1);
    while (!stop) {
        count_pending(d); /* the chores, run by whichever thread finds them due */
        sweep(d);
        int64_t claimed_ms = clock_now_ms();
        int n = claim(d, b), tried = 0;
        if (n > 0) {
            hand_off_polling(d);
            tried = attempt_batch(d, h, b, claimed_ms);
            record(d, b);
            unclaim(d, b);    /* at stop too: a restarted replica need not wait for the leases */
        } else if (n == -2) { /* claimed, but their bodies could not be made: all given back */
            unclaim(d, b);
            n = -1;
        }
        batch_release(b);
        if (atomic_load(&d->stopping))
            break;
        /* a full batch, or one partly given back, says more is due now: one more thread is
         * woken to claim, and this one claims again at once; otherwise (or when nothing could
         * be attempted: a claim too slow for that waits rather than claiming again at once) the
         * outbox was drained and this thread goes idle */
        if (n > 0 && tried > 0 && (n == d->cfg->webhook_batch || tried < n)) {
            want_helper(d);
            continue;
        }
        int ms = d->cfg->webhook_poll_ms;
        if (n < 0 && ms < FAIL_WAIT_MS)
            ms = FAIL_WAIT_MS;
        if (go_idle(d, ms, 0))
            break;
    }
    return NULL;
}

/* ---- start, stop ----------------------------------------------------------------------------- */

dispatch *dispatch_start(const cfg *c, char *err, size_t errlen)
{
    dispatch *d = calloc(1, sizeof *d);
    if (!d || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "webhook dispatcher: out of memory or curl_global_init failed");
        free(d);
        return NULL;
    }
    d->cfg = c;
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&d->helpers_cv, NULL);
    char host[64] = "?";
    gethostname(host, sizeof host - 1);
    snprintf(d->name, sizeof d->name, "%s:%d", host, (int)getpid());
    if (c->webhook_concurrency == 0)
        return d;
    d->db = db_pool_create(c->database_url, c->webhook_concurrency, c->db_connect_timeout_ms, err,
                           errlen);
    d->threads = calloc((size_t)c->webhook_concurrency, sizeof *d->threads);
    d->args = calloc((size_t)c->webhook_concurrency, sizeof *d->args);
    for (int i = 0; d->db && d->threads && d->args && i < c->webhook_concurrency; i++) {
        thread_arg *a = &d->args[i];
        *a = (thread_arg){d, curl_easy_init(), malloc(sizeof(batch)), i == 0};
        if (!a->h || !a->b || pthread_create(&d->threads[i], NULL, run, a) != 0)
            break; /* a's resources are freed by dispatch_stop */
        d->nthreads++;
    }
    if (d->nthreads != c->webhook_concurrency) {
        snprintf(err, errlen, "webhook dispatcher: cannot start its threads or database pool");
        dispatch_stop(d);
        return NULL;
    }
    return d;
}

void dispatch_stop(dispatch *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    atomic_store(&d->stopping, 1);
    pthread_cond_broadcast(&d->cv);
    pthread_cond_broadcast(&d->helpers_cv);
    pthread_mutex_unlock(&d->mu);
    for (int i = 0; i < d->nthreads; i++)
        pthread_join(d->threads[i], NULL);
    for (int i = 0; d->args && i < d->cfg->webhook_concurrency; i++) {
        curl_easy_cleanup(d->args[i].h);
        free(d->args[i].b);
    }
    free(d->args);
    free(d->threads);
    if (d->db)
        db_pool_destroy(d->db);
    pthread_cond_destroy(&d->cv);
    pthread_cond_destroy(&d->helpers_cv);
    pthread_mutex_destroy(&d->mu);
    curl_global_cleanup();
    free(d);
}
