/* e2e_webhooks.c - end-to-end tests of webhooks through the outbox, with a real receiver on
 * loopback (tests/tools/webhook_receiver.py, Debian's python3 http.server, writing every request
 * it receives to a file) and real API/worker/PostgreSQL processes:
 *   - the endpoint resource (create with a one-time secret, get/list without it, PATCH, rotate,
 *     DELETE, deliveries) and its problem+json errors;
 *   - SSRF: loopback without the allow-list, private/link-local/shared/multicast/unspecified v4
 *     and v6 (v4-mapped too), `localhost` (a name resolving to loopback) refused with 422 at
 *     create time; an endpoint written straight into the database with a refused address is
 *     refused again when the dispatcher connects (the receiver there never sees a request);
 *   - signatures verified by an independent implementation (tests/tools/webhook_verify.py:
 *     Python's hmac), event ids, per-transaction order;
 *   - the receiver down for a while then back: every event delivered at least once, in order per
 *     transaction, with the failed attempts shown by /deliveries;
 *   - the API SIGKILLed while a delivery is in flight: after a restart nothing is lost;
 *   - two API processes on one database: no event delivered twice;
 *   - automatic disable after VIGIL_WEBHOOK_DISABLE_AFTER consecutive failures, and re-enable;
 *   - a delivery given up once its retry window has passed (state failed, metrics), and finished
 *     events deleted after the retention.
 * Backoff, polling and timeouts are shortened with the VIGIL_WEBHOOK_* knobs so the suite stays
 * bounded; no assertion is on wall-clock time beyond generous waits for deliveries. */
#include <arpa/inet.h>
#include <check.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <math.h>
#include <unistd.h>

#include "assert.h"
#include "clock.h"
#include "harness.h"

static h_env E;
static const char *const ENV[] = {
    "VIGIL_WEBHOOK_ALLOWED_HOSTS=127.0.0.1", "VIGIL_WEBHOOK_BACKOFF_MS=100",
    "VIGIL_WEBHOOK_BACKOFF_MAX_MS=400",      "VIGIL_WEBHOOK_POLL_MS=50",
    "VIGIL_WEBHOOK_TIMEOUT_MS=2000",         NULL};

static void env_up(void)
{
    e2e_env_up(&E, ENV);
}

static void env_down(void)
{
    e2e_env_down(&E);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static const char *sget(const cJSON *o, const char *name)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

/* ---- the receiver -----------------------------------------------------------------------------
 */

typedef struct receiver {
    pid_t pid;
    int port;
    char file[400]; /* full path of its output */
} receiver;

/* Starts a receiver on bind:port answering status after delay_ms, writing to name in E.dir
 * (appending: a restarted receiver keeps the earlier lines).  Waits until it accepts. */
static void receiver_start(receiver *rc, const char *bind, int port, const char *name, int status,
                           int delay_ms)
{
    char p[16], st[16], dl[16];
    snprintf(p, sizeof p, "%d", port);
    snprintf(st, sizeof st, "%d", status);
    snprintf(dl, sizeof dl, "%d", delay_ms);
    snprintf(rc->file, sizeof rc->file, "%s/%s", E.dir, name);
    rc->port = port;
    const char *argv[] = {
        "/usr/bin/python3", "tests/tools/webhook_receiver.py", p, rc->file, st, dl, bind, NULL};
    rc->pid = h_spawn(&E, argv, NULL, "receiver.log");
    ck_assert_int_gt(rc->pid, 0);
    for (int i = 0; i < 500; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, bind, &sa.sin_addr);
        int fd = socket(AF_INET, SOCK_STREAM, 0), ok = connect(fd, (void *)&sa, sizeof sa) == 0;
        close(fd);
        if (ok)
            return;
        sleep_ms(20);
    }
    h_dump_log(&E, "receiver.log");
    ck_abort_msg("receiver did not start");
}

static void receiver_stop(receiver *rc)
{
    if (rc->pid > 0) {
        kill(rc->pid, SIGKILL);
        h_wait(rc->pid, 5000);
    }
    rc->pid = 0;
}

/* The requests received so far: a JSON array of {"path", "headers", "body", "at"} objects (each
 * body also parsed, as "event").  Caller deletes it. */
static cJSON *received(const receiver *rc)
{
    cJSON *all = cJSON_CreateArray();
    FILE *f = fopen(rc->file, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (f && (len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n')
            break; /* the receiver is still writing this line: read it next time */
        cJSON *o = cJSON_Parse(line);
        ck_assert_ptr_nonnull(o);
        cJSON_AddItemToObject(o, "event", cJSON_Parse(sget(o, "body")));
        cJSON_AddItemToArray(all, o);
    }
    free(line);
    if (f)
        fclose(f);
    return all;
}

/* Number of distinct event ids received. */
static int distinct_events(const cJSON *all)
{
    int n = 0, i = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, all)
    {
        const char *id = sget(cJSON_GetObjectItemCaseSensitive(a, "event"), "id");
        int dup = 0;
        for (int k = 0; k < i && !dup; k++)
            dup = strcmp(id,
                         sget(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(all, k), "event"),
                              "id")) == 0;
        n += !dup;
        i++;
    }
    return n;
}

/* Waits up to timeout_ms until at least want distinct events arrived; returns the requests. */
static cJSON *wait_events(const receiver *rc, int want, int timeout_ms)
{
    for (int waited = 0;; waited += 100) {
        cJSON *all = received(rc);
        if (distinct_events(all) >= want || waited >= timeout_ms)
            return all;
        cJSON_Delete(all);
        sleep_ms(100);
    }
}

/* ---- API helpers ------------------------------------------------------------------------------
 */

/* One decision for user ext; its transaction id into id[37] and, when answer is not NULL, the
 * 201 body into answer[cap]. */
static void decide_answer(const char *ext, char *id, char *answer, size_t cap)
{
    char body[400];
    snprintf(body, sizeof body,
             "{\"user_external_id\":\"%s\",\"amount\":1234,\"currency\":\"EUR\","
             "\"merchant_id\":\"m-1\",\"merchant_category\":\"5411\",\"country\":\"FR\","
             "\"channel\":\"ecommerce\"}",
             ext);
    h_resp r;
    e2e_req(&E, "POST", "/api/v1/transactions", body, &r);
    ck_assert_msg(r.status == 201, "decision: %ld %s", r.status, r.body);
    snprintf(id, 37, "%s", sget(r.json, "id"));
    if (answer) {
        ck_assert_uint_lt(r.len, cap);
        snprintf(answer, cap, "%s", r.body);
    }
    h_resp_free(&r);
}

/* One decision for user ext; its transaction id into id[37]. */
static void decide(const char *ext, char *id)
{
    decide_answer(ext, id, NULL, 0);
}

static void label(const char *txn, const char *lbl)
{
    char path[200], body[100];
    snprintf(path, sizeof path, "/api/v1/transactions/%s", txn);
    snprintf(body, sizeof body, "{\"label\":\"%s\",\"label_source\":\"chargeback\"}", lbl);
    h_resp r;
    e2e_req(&E, "PATCH", path, body, &r);
    ck_assert_msg(r.status == 200, "label: %ld %s", r.status, r.body);
    h_resp_free(&r);
}

/* Creates an endpoint for url and events (a JSON array text); id[37], secret[80] (may be NULL). */
static void endpoint(const char *url, const char *events, char *id, char *secret)
{
    char body[1200];
    snprintf(body, sizeof body, "{\"url\":\"%s\",\"events\":%s,\"description\":\"test\"}", url,
             events);
    h_resp r;
    e2e_req(&E, "POST", "/api/v1/webhooks", body, &r);
    ck_assert_msg(r.status == 201, "create endpoint: %ld %s", r.status, r.body);
    snprintf(id, 37, "%s", sget(r.json, "id"));
    if (secret)
        snprintf(secret, 80, "%s", sget(r.json, "secret"));
    h_resp_free(&r);
}

static void endpoint_delete(const char *id)
{
    char path[200];
    snprintf(path, sizeof path, "/api/v1/webhooks/%s", id);
    h_resp r;
    e2e_req(&E, "DELETE", path, NULL, &r);
    ck_assert_int_eq(r.status, 204);
    h_resp_free(&r);
}

static const char ALL_EVENTS[] =
    "[\"decision.allow\",\"decision.review\",\"decision.block\",\"review.opened\","
    "\"review.closed\",\"transaction.labelled\"]";

/* Checks that, for every transaction, the first arrival of each of its events follows the order
 * in which the events were caused: types[] in order, per transaction. */
static void assert_order(const cJSON *all, const char *const *types, int ntypes)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, all)
    {
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(a, "event");
        int rank = -1;
        for (int t = 0; t < ntypes; t++)
            if (strcmp(sget(ev, "type"), types[t]) == 0)
                rank = t;
        ck_assert_int_ge(rank, 0);
        /* every event of a lower rank of this transaction arrived before this one */
        for (int t = 0; t < rank; t++) {
            int before = 0;
            for (const cJSON *b = all->child; b != a && !before; b = b->next) {
                const cJSON *eb = cJSON_GetObjectItemCaseSensitive(b, "event");
                before = strcmp(sget(eb, "transaction_id"), sget(ev, "transaction_id")) == 0 &&
                         strcmp(sget(eb, "type"), types[t]) == 0;
            }
            ck_assert_msg(before, "%s of %s arrived before its %s", sget(ev, "type"),
                          sget(ev, "transaction_id"), types[t]);
        }
    }
}

/* ---- the resource -----------------------------------------------------------------------------
 */

static void patch_expect(const char *id, const char *body, long status, const char *code,
                         const char *field, h_resp *out)
{
    char path[200];
    snprintf(path, sizeof path, "/api/v1/webhooks/%s", id);
    e2e_req(&E, "PATCH", path, body, out);
    if (code)
        e2e_assert_problem(out, status, code, field);
    else
        ck_assert_msg(out->status == status, "PATCH %s: %ld %s", body, out->status, out->body);
}

START_TEST(endpoint_resource)
{
    char id[37], secret[80], path[200], loc[200];
    h_resp r;
    e2e_req(&E, "POST", "/api/v1/webhooks",
            "{\"url\":\"http://127.0.0.1:9/h\",\"events\":[\"decision.block\"]}", &r);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    snprintf(id, sizeof id, "%s", sget(r.json, "id"));
    snprintf(secret, sizeof secret, "%s", sget(r.json, "secret"));
    ck_assert_uint_eq(strlen(secret), 70);
    ck_assert(strncmp(secret, "whsec_", 6) == 0);
    snprintf(path, sizeof path, "/api/v1/webhooks/%s", id);
    ck_assert_str_eq(h_header(&r, "Location", loc, sizeof loc), path);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r.json, "enabled")));
    h_resp_free(&r);
    e2e_req(&E, "GET", path, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r.json, "secret")); /* shown once */
    ck_assert_str_eq(sget(r.json, "url"), "http://127.0.0.1:9/h");
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/webhooks?limit=1", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "data"), 0);
    ck_assert_str_eq(sget(first, "id"), id);
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(first, "secret"));
    h_resp_free(&r);

    patch_expect(id, "{\"enabled\":false}", 200, NULL, NULL, &r);
    ck_assert_str_eq(sget(r.json, "disabled_reason"), "manual");
    h_resp_free(&r);
    patch_expect(id,
                 "{\"enabled\":true,\"events\":[\"review.closed\",\"decision.allow\"],"
                 "\"description\":null}",
                 200, NULL, NULL, &r);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "disabled_reason")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "description")));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "events")), 2);
    h_resp_free(&r);
    patch_expect(id, "{\"events\":[\"nope\"]}", 400, "validation_failed", "events", &r);
    h_resp_free(&r);
    patch_expect(id, "{\"events\":[]}", 400, "validation_failed", "events", &r);
    h_resp_free(&r);
    patch_expect(id, "{\"events\":[\"decision.block\",\"decision.block\"]}", 400,
                 "validation_failed", "events", &r);
    h_resp_free(&r);
    patch_expect(id, "{\"url\":\"http://10.1.2.3/\"}", 422, "webhook_url_forbidden", "url", &r);
    h_resp_free(&r);
    patch_expect(id, "{\"enabled\":\"yes\"}", 400, "validation_failed", "enabled", &r);
    h_resp_free(&r);
    patch_expect(id, "{\"secret\":\"x\"}", 400, "unknown_field", "secret", &r);
    h_resp_free(&r);

    snprintf(path, sizeof path, "/api/v1/webhooks/%s/rotate-secret", id);
    e2e_req(&E, "POST", path, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(strncmp(sget(r.json, "secret"), "whsec_", 6) == 0);
    ck_assert_str_ne(sget(r.json, "secret"), secret);
    h_resp_free(&r);
    snprintf(path, sizeof path, "/api/v1/webhooks/%s/deliveries?state=lost", id);
    e2e_req(&E, "GET", path, NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "state");
    h_resp_free(&r);
    snprintf(path, sizeof path, "/api/v1/webhooks/%s/deliveries", id);
    e2e_req(&E, "GET", path, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);

    endpoint_delete(id);
    snprintf(path, sizeof path, "/api/v1/webhooks/%s", id);
    e2e_req(&E, "GET", path, NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    e2e_req(&E, "DELETE", path, NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    snprintf(path, sizeof path, "/api/v1/webhooks/%s/deliveries", id);
    e2e_req(&E, "GET", path, NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/webhooks/nope", NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "id");
    h_resp_free(&r);
}
END_TEST

START_TEST(create_errors_and_scope)
{
    static const struct {
        const char *body;
        long status;
        const char *code, *field;
    } cases[] = {
        {"{\"events\":[\"decision.block\"]}", 400, "validation_failed", "url"},
        {"{\"url\":\"http://127.0.0.1:9/\"}", 400, "validation_failed", "events"},
        {"{\"url\":\"ftp://8.8.8.8/\",\"events\":[\"decision.block\"]}", 400, "validation_failed",
         "url"},
        {"{\"url\":\"not a url\",\"events\":[\"decision.block\"]}", 400, "validation_failed",
         "url"},
        {"{\"url\":\"http://nonexistent.invalid/\",\"events\":[\"decision.block\"]}", 422,
         "webhook_url_unresolvable", "url"},
        {"{\"url\":\"http://127.0.0.1:9/\",\"events\":[\"decision.block\"],\"secret\":\"s\"}", 400,
         "unknown_field", "secret"},
        {"{\"url\":\"http://127.0.0.1:9/\",\"events\":\"decision.block\"}", 400,
         "validation_failed", "events"},
    };
    h_resp r;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        e2e_req(&E, "POST", "/api/v1/webhooks", cases[i].body, &r);
        e2e_assert_problem(&r, cases[i].status, cases[i].code, cases[i].field);
        h_resp_free(&r);
    }
    char key[64];
    ck_assert_int_eq(h_create_key(&E, "read,write", key, sizeof key), 0);
    ck_assert_int_eq(h_http(&E, "GET", "/api/v1/webhooks", key, NULL, NULL, 0, NULL, &r), 0);
    e2e_assert_problem(&r, 403, "forbidden", NULL);
    h_resp_free(&r);
}
END_TEST

/* Loopback without the allow-list (127.0.0.2: only 127.0.0.1 is listed; also in its decimal and
 * hex spellings), a name resolving to loopback, and every other refused class, v4 and v6: 422 at
 * create time. */
START_TEST(ssrf_refused_at_create)
{
    static const char *const urls[] = {
        "http://127.0.0.2:9/",
        "http://localhost:9/",
        "http://[::1]:9/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.10/",
        "http://169.254.169.254/latest",
        "http://100.64.0.1/",
        "http://0.0.0.0:9/",
        "http://224.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[::]/",
        "https://[ff02::1]/",
        "http://2130706434/",
        "http://0x7f.2/",
    };
    h_resp r;
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        char body[300];
        snprintf(body, sizeof body, "{\"url\":\"%s\",\"events\":[\"decision.block\"]}", urls[i]);
        e2e_req(&E, "POST", "/api/v1/webhooks", body, &r);
        ck_assert_msg(r.status == 422, "%s: %ld %s", urls[i], r.status, r.body);
        e2e_assert_problem(&r, 422, "webhook_url_forbidden", "url");
        h_resp_free(&r);
    }
}
END_TEST

/* ---- delivery ------------------------------------------------------------------------------- */

/* An endpoint written straight into the database (bypassing the create check) with a refused
 * address: the dispatcher refuses it at connect time, the receiver listening there gets nothing. */
START_TEST(ssrf_refused_at_connect)
{
    receiver rc;
    char sql[400], id[64], txn[37], err[300] = "";
    int port = h_free_port();
    receiver_start(&rc, "127.0.0.2", port, "ssrf.jsonl", 200, 0);
    snprintf(sql, sizeof sql,
             "INSERT INTO webhook_endpoints (url, events, secret) VALUES "
             "('http://127.0.0.2:%d/h', '{decision.review}', 'whsec_x') RETURNING id",
             port);
    ck_assert_int_eq(h_psql(&E, NULL, sql, id, sizeof id), 0);
    e2e_user(&E, "wh-ssrf");
    e2e_policy_fallback(&E, "review");
    decide("wh-ssrf", txn);
    snprintf(sql, sizeof sql,
             "SELECT last_error FROM webhook_deliveries WHERE endpoint_id = '%s' AND attempts > 0 "
             "AND last_error IS NOT NULL",
             id);
    for (int i = 0; i < 100 && !err[0]; i++) {
        ck_assert_int_eq(h_psql(&E, NULL, sql, err, sizeof err), 0);
        sleep_ms(100);
    }
    ck_assert_msg(strstr(err, "refused to connect to 127.0.0.2"), "last_error: '%s'", err);
    cJSON *all = received(&rc);
    ck_assert_int_eq(cJSON_GetArraySize(all), 0);
    cJSON_Delete(all);
    receiver_stop(&rc);
    endpoint_delete(id);
}
END_TEST

/* The receiver's requests for this test's transactions only. */
static int count_type(const cJSON *all, const char *type)
{
    int n = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, all) n +=
        strcmp(sget(cJSON_GetObjectItemCaseSensitive(a, "event"), "type"), type) == 0;
    return n;
}

/* The review id of transaction txn into id[37]. */
static void review_of(const char *txn, char *id)
{
    h_resp r;
    id[0] = '\0';
    e2e_req(&E, "GET", "/api/v1/reviews?state=open&limit=500", NULL, &r);
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r.json, "data"))
    {
        if (strcmp(sget(it, "transaction_id"), txn) == 0)
            snprintf(id, 37, "%s", sget(it, "id"));
    }
    h_resp_free(&r);
    ck_assert_msg(id[0], "no open review for %s", txn);
}

/* Verifies every received request with Python's hmac (tests/tools/webhook_verify.py). */
static void verify_signatures(const receiver *rc, const char *secret)
{
    char out[256];
    const char *argv[] = {"/usr/bin/python3", "tests/tools/webhook_verify.py", rc->file, secret,
                          NULL};
    int st = h_run(&E, argv, NULL, out, sizeof out);
    ck_assert_msg(st == 0, "webhook_verify.py: %s", out);
}

START_TEST(signed_ordered_delivery)
{
    receiver rc;
    char id[37], secret[80], url[100], txn[3][37], rid[37], path[200];
    receiver_start(&rc, "127.0.0.1", h_free_port(), "signed.jsonl", 200, 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hooks/vigil", rc.port);
    endpoint(url, ALL_EVENTS, id, secret);
    e2e_user(&E, "wh-sig");
    e2e_policy_fallback(&E, "review");
    for (int i = 0; i < 3; i++)
        decide("wh-sig", txn[i]);
    review_of(txn[0], rid);
    snprintf(path, sizeof path, "/api/v1/reviews/%s/close", rid);
    h_resp r;
    e2e_req(&E, "POST", path, "{\"outcome\":\"fraud\"}", &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    cJSON *all = wait_events(&rc, 8, 20000);
    ck_assert_int_eq(distinct_events(all), 8);
    ck_assert_int_eq(count_type(all, "decision.review"), 3);
    ck_assert_int_eq(count_type(all, "review.opened"), 3);
    ck_assert_int_eq(count_type(all, "review.closed"), 1);
    ck_assert_int_eq(count_type(all, "transaction.labelled"), 1);
    static const char *const order[] = {"decision.review", "review.opened", "review.closed",
                                        "transaction.labelled"};
    assert_order(all, order, 4);
    const cJSON *a;
    cJSON_ArrayForEach(a, all)
    {
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(a, "event"),
                    *h = cJSON_GetObjectItemCaseSensitive(a, "headers"),
                    *data = cJSON_GetObjectItemCaseSensitive(ev, "data");
        ck_assert_str_eq(sget(a, "path"), "/hooks/vigil");
        ck_assert_str_eq(sget(h, "content-type"), "application/json");
        ck_assert_ptr_nonnull(sget(ev, "id"));
        ck_assert_ptr_nonnull(sget(ev, "created_at"));
        /* the object: the transaction itself, or the review of it */
        const char *t = sget(ev, "type");
        const char *about =
            strncmp(t, "review.", 7) == 0 ? sget(data, "transaction_id") : sget(data, "id");
        ck_assert_str_eq(about, sget(ev, "transaction_id"));
    }
    cJSON_Delete(all);
    verify_signatures(&rc, secret);
    /* the deliveries resource shows each with its one successful attempt: the receiver logs an
     * event before its 200 reaches the dispatcher, which records the attempt after it, so the
     * last one may be recorded a moment after the receiver saw it (bounded wait) */
    snprintf(path, sizeof path, "/api/v1/webhooks/%s/deliveries?state=delivered", id);
    const cJSON *data = NULL, *d;
    for (int tries = 0;; tries++) {
        e2e_req(&E, "GET", path, NULL, &r);
        ck_assert_int_eq(r.status, 200);
        data = cJSON_GetObjectItemCaseSensitive(r.json, "data");
        if (cJSON_GetArraySize(data) >= 8 || tries == 100)
            break;
        h_resp_free(&r);
        usleep(100000);
    }
    ck_assert_int_ge(cJSON_GetArraySize(data), 8);
    cJSON_ArrayForEach(d, data)
    {
        const cJSON *att = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(d, "attempts"), 0);
        ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(att, "response_status")->valueint, 200);
        ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(att, "error")));
    }
    h_resp_free(&r);
    /* and /metrics counts them */
    e2e_req(&E, "GET", "/metrics", NULL, &r);
    const char *m = strstr(r.body, "vigil_webhook_attempts_total{result=\"delivered\"} ");
    ck_assert_ptr_nonnull(m);
    ck_assert_int_ge(atoi(m + strlen("vigil_webhook_attempts_total{result=\"delivered\"} ")), 8);
    ck_assert_ptr_nonnull(strstr(r.body, "vigil_webhook_delivery_latency_seconds_count"));
    ck_assert_ptr_nonnull(strstr(r.body, "vigil_webhook_deliveries_pending "));
    h_resp_free(&r);
    receiver_stop(&rc);
    endpoint_delete(id);
}
END_TEST

/* The pending/delivered/failed counts of endpoint id's deliveries, as "p d f" into out[64]. */
static void states_of(const char *id, char *out)
{
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FILTER (WHERE state = 'pending') || ' ' || count(*) FILTER (WHERE "
             "state = 'delivered') || ' ' || count(*) FILTER (WHERE state = 'failed') FROM "
             "webhook_deliveries WHERE endpoint_id = '%s'",
             id);
    ck_assert_int_eq(h_psql(&E, NULL, sql, out, 64), 0);
}

START_TEST(receiver_down_then_back)
{
    receiver rc;
    char id[37], url[100], txn[4][37], st[64], path[200], want[64], answer[4][4096];
    int port = h_free_port();
    snprintf(url, sizeof url, "http://127.0.0.1:%d/down", port);
    endpoint(url, "[\"decision.block\",\"transaction.labelled\"]", id, NULL);
    e2e_user(&E, "wh-down");
    e2e_policy_fallback(&E, "block");
    for (int i = 0; i < 4; i++) {
        decide_answer("wh-down", txn[i], answer[i], sizeof answer[i]);
        label(txn[i], "fraud");
    }
    sleep_ms(1500); /* several failed attempts each (backoff 100..400 ms) */
    h_resp r;
    snprintf(path, sizeof path, "/api/v1/webhooks/%s/deliveries?state=pending", id);
    e2e_req(&E, "GET", path, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    const cJSON *d;
    int failed_attempts = 0;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(r.json, "data"))
    {
        const cJSON *att = cJSON_GetObjectItemCaseSensitive(d, "attempts");
        if (cJSON_GetArraySize(att) == 0)
            continue;
        ck_assert_ptr_nonnull(sget(d, "last_error"));
        /* attempt_count counts a claimed attempt still in flight too */
        int claimed = cJSON_GetObjectItemCaseSensitive(d, "attempt_count")->valueint;
        ck_assert_int_ge(claimed, cJSON_GetArraySize(att));
        ck_assert_int_le(claimed, cJSON_GetArraySize(att) + 1);
        ck_assert(cJSON_IsNull(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(att, 0), "response_status")));
        failed_attempts += cJSON_GetArraySize(att);
    }
    ck_assert_int_ge(failed_attempts, 4 * 2); /* each decision.block tried at least twice */
    h_resp_free(&r);
    /* later events of a transaction wait for its earlier ones: none of the labels was tried */
    char sql[300], tried[32];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id "
             "WHERE d.endpoint_id = '%s' AND e.type = 'transaction.labelled' AND d.attempts > 0",
             id);
    ck_assert_int_eq(h_psql(&E, NULL, sql, tried, sizeof tried), 0);
    ck_assert_str_eq(tried, "0");
    receiver_start(&rc, "127.0.0.1", port, "down.jsonl", 200, 0);
    cJSON *all = wait_events(&rc, 8, 20000);
    ck_assert_int_eq(distinct_events(all), 8);
    static const char *const order[] = {"decision.block", "transaction.labelled"};
    assert_order(all, order, 2);
    /* A decision event's object is the transaction as the decision answered it, byte for byte,
     * though labelled before the delivery (the event names the transaction, migration 0014);
     * the label's own event carries the label. */
    const cJSON *a;
    int checked = 0;
    cJSON_ArrayForEach(a, all)
    {
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(a, "event");
        const char *raw = sget(a, "body"), *type = sget(ev, "type");
        for (int i = 0; i < 4; i++) {
            if (strcmp(sget(ev, "transaction_id"), txn[i]) != 0)
                continue;
            const cJSON *data = cJSON_GetObjectItemCaseSensitive(ev, "data");
            if (strcmp(type, "decision.block") == 0) {
                char tail[4200];
                snprintf(tail, sizeof tail, ", \"data\" : %s}", answer[i]);
                size_t nr = strlen(raw), nt = strlen(tail);
                ck_assert_msg(nr > nt && strcmp(raw + nr - nt, tail) == 0,
                              "decision event's object is not the answer:\n%s\n%s", raw, answer[i]);
                ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(data, "label")));
                checked++;
            } else {
                ck_assert_pstr_eq(sget(data, "label"), "fraud");
            }
        }
    }
    ck_assert_int_ge(checked, 4);
    cJSON_Delete(all);
    snprintf(want, sizeof want, "0 8 0");
    for (int i = 0; i < 50; i++) {
        states_of(id, st);
        if (strcmp(st, want) == 0)
            break;
        sleep_ms(100);
    }
    ck_assert_str_eq(st, want);
    receiver_stop(&rc);
    endpoint_delete(id);
}
END_TEST

/* The API is SIGKILLed while the receiver holds a delivery open; after a restart every event
 * arrives (the lease of the interrupted attempt expires and it is made again). */
START_TEST(kill_mid_delivery)
{
    receiver rc;
    char id[37], url[100], txn[3][37], st[64];
    receiver_start(&rc, "127.0.0.1", h_free_port(), "kill.jsonl", 200, 1500);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow", rc.port);
    endpoint(url, "[\"decision.review\",\"review.opened\"]", id, NULL);
    e2e_user(&E, "wh-kill");
    e2e_policy_fallback(&E, "review");
    for (int i = 0; i < 3; i++)
        decide("wh-kill", txn[i]);
    cJSON *all = wait_events(&rc, 1, 10000); /* a request is in flight now */
    ck_assert_int_ge(cJSON_GetArraySize(all), 1);
    cJSON_Delete(all);
    ck_assert_int_eq(h_api_stop(&E, SIGKILL), 128 + SIGKILL);
    ck_assert_int_eq(h_api_start(&E), 0);
    all = wait_events(&rc, 6, 40000);
    ck_assert_int_eq(distinct_events(all), 6);
    static const char *const order[] = {"decision.review", "review.opened"};
    assert_order(all, order, 2);
    cJSON_Delete(all);
    for (int i = 0; i < 50; i++) {
        states_of(id, st);
        if (strcmp(st, "0 6 0") == 0)
            break;
        sleep_ms(100);
    }
    ck_assert_str_eq(st, "0 6 0");
    receiver_stop(&rc);
    endpoint_delete(id);
}
END_TEST

/* Two API processes dispatch from one database: each event reaches the receiver exactly once
 * (the receiver always answers 200 at once, so no attempt is ever repeated legitimately). */
START_TEST(two_replicas_no_double_delivery)
{
    receiver rc;
    char id[37], url[100], txn[37], sql[400], out[64], exe[400], env[4][700];
    receiver_start(&rc, "127.0.0.1", h_free_port(), "two.jsonl", 200, 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/two", rc.port);
    snprintf(exe, sizeof exe, "%s/vigil-api", E.bin);
    snprintf(env[0], sizeof env[0], "DATABASE_URL=%s", E.db_url);
    snprintf(env[1], sizeof env[1], "VIGIL_HTTP_ADDR=127.0.0.1:%d", h_free_port());
    snprintf(env[2], sizeof env[2], "VIGIL_HOTPATH_SOCKET=%s", E.hp_sock);
    snprintf(env[3], sizeof env[3], "VIGIL_BOOTSTRAP_KEY=%s", E.key);
    const char *envv[] = {env[0], env[1], env[2], env[3], NULL};
    const char *argv[] = {exe, "serve", NULL};
    pid_t second = h_spawn(&E, argv, envv, "api2.log");
    ck_assert_int_gt(second, 0);
    endpoint(url, "[\"decision.review\",\"review.opened\"]", id, NULL);
    e2e_user(&E, "wh-two");
    e2e_policy_fallback(&E, "review");
    for (int i = 0; i < 15; i++)
        decide("wh-two", txn);
    cJSON *all = wait_events(&rc, 30, 30000);
    ck_assert_int_eq(distinct_events(all), 30);
    cJSON_Delete(all);
    sleep_ms(500);
    all = received(&rc);
    ck_assert_int_eq(cJSON_GetArraySize(all), 30); /* no duplicate */
    cJSON_Delete(all);
    snprintf(sql, sizeof sql,
             "SELECT count(*) || ' ' || count(DISTINCT dispatcher) || ' ' || max(attempt) FROM "
             "webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id "
             "WHERE d.endpoint_id = '%s'",
             id);
    ck_assert_int_eq(h_psql(&E, NULL, sql, out, sizeof out), 0);
    ck_assert_msg(strncmp(out, "30 ", 3) == 0 && out[strlen(out) - 1] == '1', "attempts: %s", out);
    printf("two replicas: attempts, dispatchers, max attempt = %s\n", out);
    kill(second, SIGTERM);
    ck_assert_int_eq(h_wait(second, 20000), 0);
    receiver_stop(&rc);
    endpoint_delete(id);
}
END_TEST

/* The API without dispatcher threads: deliveries are written and stay due. */
static const char *const ENV_NO_DISPATCH[] = {"VIGIL_WEBHOOK_ALLOWED_HOSTS=127.0.0.1",
                                              "VIGIL_WEBHOOK_CONCURRENCY=0", NULL};

/* Restarts E's API with env (NULL: the suite's ENV). */
static void api_restart(const char *const *env)
{
    ck_assert_int_eq(h_api_stop(&E, SIGTERM), 0);
    E.api_env = env ? env : ENV;
    ck_assert_int_eq(h_api_start(&E), 0);
}

/* The API's thread count (/proc). */
static int api_threads(void)
{
    char path[64], line[128];
    int n = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)E.api_pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Threads:", 8) == 0)
            n = atoi(line + 8);
    fclose(f);
    return n;
}

/* With the resolver stalled (slowdns.so, 10 s), 48 endpoint creates at once: each is a 503, and
 * the lookups they leave running are bounded (32 for webhook checks, resolve.h: the others are
 * refused at once, "too many"); counted as the threads that end when the stalled lookups return.
 * Meanwhile the API's database connections are ended and it reconnects (to "localhost": its own
 * lookups, bounded apart).  Then a create is looked up again (the slots were given back): a 503
 * "in time". */
static void lookups_are_bounded(void)
{
    static char out[65536];
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "seq 48 | xargs -P 48 -I{} curl -s -w ' CODE=%%{http_code}\\n' -H "
             "'Authorization: Bearer %s' -H 'Content-Type: application/json' -d "
             "'{\"url\":\"http://n{}.slow.test:9/h\",\"events\":[\"decision.block\"]}' "
             "http://127.0.0.1:%d/api/v1/webhooks",
             E.key, E.api_port);
    const char *argv[] = {"sh", "-c", cmd, NULL};
    ck_assert_int_eq(h_run(&E, argv, NULL, out, sizeof out), 0);
    int n503 = 0, busy = 0;
    for (const char *p = out; (p = strstr(p, "CODE=503")) != NULL; p += 8) /* one write each */
        n503++;
    for (const char *p = out; (p = strstr(p, "too many host name lookups")) != NULL; p += 5)
        busy++;
    ck_assert_msg(n503 == 48, "%d answers 503 of 48: %.300s", n503, out);
    ck_assert_msg(busy >= 48 - 32, "%d of 48 refused at once", busy);
    /* meanwhile the database pool still reconnects: its lookups have a bound of their own */
    char n[16];
    ck_assert_int_eq(h_psql(&E, NULL,
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                            "application_name = 'vigil-api'",
                            n, sizeof n),
                     0);
    ck_assert_int_gt(atoi(n), 0);
    h_resp r;
    long st = 0;
    for (int i = 0; i < 5 && st != 200; i++) { /* a dropped connection may be found in use */
        e2e_req(&E, "GET", "/api/v1/users?limit=1", NULL, &r);
        st = r.status;
        h_resp_free(&r);
        if (st != 200)
            sleep_ms(200);
    }
    ck_assert_msg(st == 200, "with the webhook lookups full, a reconnect answered %ld", st);
    int during = api_threads();
    sleep_ms(11000); /* every stalled lookup began during the burst and ends 10 s after */
    int after = api_threads();
    ck_assert_msg(during - after >= 1 && during - after <= 32,
                  "%d lookup threads were left running", during - after);
    e2e_req(&E, "POST", "/api/v1/webhooks",
            "{\"url\":\"http://again.slow.test:9/h\",\"events\":[\"decision.block\"]}", &r);
    ck_assert_msg(r.status == 503 && strstr(r.body, "in time"), "after the burst: %ld %s", r.status,
                  r.body);
    h_resp_free(&r);
}

/* An endpoint whose host name does not resolve in time (a resolver whose nameservers do not
 * answer: tests/tools/slowdns.so makes every *.slow.test lookup take 10 s): each attempt ends at
 * VIGIL_WEBHOOK_TIMEOUT_MS (1 s here) and is recorded as a failure, so the delivery backs off and
 * its failures count.  Were the attempt to wait for the resolver instead, it would outlive its
 * lease (8 s here) and never be recorded: retried once a lease, never given up, never counted.
 * Creating such an endpoint through the API resolves the name under the request's deadline
 * (VIGIL_REQUEST_TIMEOUT_MS, 2 s here): a 503 to retry, well before the resolver's 10 s, and
 * nothing written; so the endpoint that is attempted is written with SQL. */
START_TEST(slow_dns_is_bounded_by_the_timeout)
{
    static char preload[PATH_MAX + 64]; /* static: E keeps env after a failed assertion */
    char so[PATH_MAX + 32], abs[PATH_MAX];
    snprintf(so, sizeof so, "%s/tests/slowdns.so", E.bin);
    ck_assert_msg(realpath(so, abs) != NULL, "no %s (make tests-build)", so);
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", abs);
    static const char *const env[] = {"VIGIL_WEBHOOK_ALLOWED_HOSTS=127.0.0.1",
                                      "VIGIL_WEBHOOK_BACKOFF_MS=100",
                                      "VIGIL_WEBHOOK_BACKOFF_MAX_MS=400",
                                      "VIGIL_WEBHOOK_POLL_MS=50",
                                      "VIGIL_WEBHOOK_TIMEOUT_MS=1000",
                                      "VIGIL_REQUEST_TIMEOUT_MS=2000",
                                      preload,
                                      NULL};
    char socket_url[sizeof E.db_url];
    memcpy(socket_url, E.db_url, sizeof socket_url);
    /* the pool reaches PostgreSQL by a host name here, so its reconnects need lookups too */
    snprintf(E.db_url, sizeof E.db_url, "postgresql://vigil@localhost:%d/vigil", E.pg_port);
    api_restart(env);
    char id[64], txn[37], got[300] = "", sql[400];
    h_resp r;
    int64_t t0 = clock_now_ms();
    e2e_req(&E, "POST", "/api/v1/webhooks",
            "{\"url\":\"http://made.slow.test:9/h\",\"events\":[\"decision.block\"]}", &r);
    int64_t took = clock_now_ms() - t0;
    ck_assert_msg(r.status == 503 && strstr(r.body, "\"unavailable\"") && strstr(r.body, "in time"),
                  "create with a slow resolver: %ld %s", r.status, r.body);
    ck_assert_msg(took < 6000, "the create answered after %lld ms", (long long)took);
    h_resp_free(&r);
    ck_assert_int_eq(h_psql(&E, NULL,
                            "SELECT count(*) FROM webhook_endpoints WHERE url LIKE '%slow.test%'",
                            got, sizeof got),
                     0);
    ck_assert_str_eq(got, "0");
    lookups_are_bounded();
    got[0] = '\0';
    ck_assert_int_eq(h_psql(&E, NULL,
                            "INSERT INTO webhook_endpoints (url, events, secret) VALUES "
                            "('http://hook.slow.test:9/h', '{decision.review}', 'whsec_x') "
                            "RETURNING id",
                            id, sizeof id),
                     0);
    e2e_user(&E, "wh-dns");
    e2e_policy_fallback(&E, "review");
    decide("wh-dns", txn);
    snprintf(sql, sizeof sql,
             "SELECT a.duration_ms || ' ' || coalesce(a.error, '') FROM webhook_attempts a JOIN "
             "webhook_deliveries d ON d.id = a.delivery_id WHERE d.endpoint_id = '%s' "
             "ORDER BY a.attempt LIMIT 1",
             id);
    for (int i = 0; i < 80 && !got[0]; i++) { /* 8 s: one lease */
        sleep_ms(100);
        ck_assert_int_eq(h_psql(&E, NULL, sql, got, sizeof got), 0);
    }
    ck_assert_msg(got[0], "no attempt recorded within one lease");
    ck_assert_msg(atoi(got) < 3000, "the attempt took %s ms", got);
    ck_assert_msg(strstr(got, "esolv"), "attempt: '%s'", got);
    endpoint_delete(id);
    memcpy(E.db_url, socket_url, sizeof socket_url);
    api_restart(NULL);
}
END_TEST

/* The start time of each attempt of endpoint id's deliveries as "<event id>=<epoch s>,..." into
 * out[cap]. */
static void attempt_starts(const char *id, char *out, size_t cap)
{
    char sql[500];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(e.id || '=' || extract(epoch FROM a.started_at), ',') FROM "
             "webhook_attempts a JOIN webhook_deliveries x ON x.id = a.delivery_id JOIN "
             "webhook_events e ON e.id = x.event_id WHERE x.endpoint_id = '%s'",
             id);
    ck_assert_int_eq(h_psql(&E, NULL, sql, out, cap), 0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The smallest gap in seconds between two of the start times in attempt_starts' text ("<id>=<s>,
 * ..."); 1e9 when there are fewer than two. */
static double min_start_gap(const char *starts)
{
    double t[64], gap = 1e9;
    int n = 0;
    for (const char *p = strchr(starts, '='); p && n < 64; p = strchr(p + 1, '='))
        t[n++] = strtod(p + 1, NULL);
    qsort(t, (size_t)n, sizeof t[0], cmp_double);
    for (int i = 1; i < n; i++)
        if (t[i] - t[i - 1] < gap)
            gap = t[i] - t[i - 1];
    return gap;
}

/* A backlog for a slow receiver: with no dispatcher running, n decision.block events for a new
 * endpoint (id into id[37]) served by rc (a receiver answering in 500 ms, writing to name in
 * E.dir), user ext; then the API restarted with env to deliver them. */
static void backlog_for_slow_receiver(receiver *rc, const char *name, const char *ext, int n,
                                      const char *const *env, char *id)
{
    char url[100], txn[37];
    api_restart(ENV_NO_DISPATCH);
    receiver_start(rc, "127.0.0.1", h_free_port(), name, 200, 500);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/%s", rc->port, ext);
    endpoint(url, "[\"decision.block\"]", id, NULL);
    e2e_user(&E, ext);
    e2e_policy_fallback(&E, "block");
    for (int i = 0; i < n; i++)
        decide(ext, txn);
    api_restart(env);
}

/* A batch against a slow receiver (500 ms an answer).  Twenty deliveries are written while no
 * dispatcher runs, so the first claim takes them all.  With VIGIL_WEBHOOK_TIMEOUT_MS=1000 a
 * claim's lease is 8 s (2 x timeout + the record's 5 s budget + 1 s) and a thread starts an
 * attempt only while the timeout and that budget still fit in it, i.e. within 1 s of the claim:
 * it attempts two or three and gives the rest back at once, unattempted (their attempt count
 * undone), for the other thread to claim.  Were attempts started past that point, the batch
 * would take 10 s, its lease would expire after 8 and the other thread would send the last ones
 * again.  Every event arrives exactly once, every delivery shows one attempt, and each attempt
 * is recorded with the time it began (within 0.25 s of the receiver's arrival time; recorded as
 * "record time minus duration" it would be up to 1 s late for all but a batch's last). */
START_TEST(slow_receiver_batch_gives_back)
{
    static const char *const env_slow[] = {
        "VIGIL_WEBHOOK_ALLOWED_HOSTS=127.0.0.1", "VIGIL_WEBHOOK_POLL_MS=50",
        "VIGIL_WEBHOOK_TIMEOUT_MS=1000", "VIGIL_WEBHOOK_CONCURRENCY=2", NULL};
    receiver rc;
    char id[37], sql[600], out[64], starts[4096];
    backlog_for_slow_receiver(&rc, "batch.jsonl", "wh-batch", 20, env_slow, id);
    cJSON *all = wait_events(&rc, 20, 40000);
    ck_assert_int_eq(distinct_events(all), 20);
    cJSON_Delete(all);
    sleep_ms(2000); /* a second copy, were one sent, would have arrived by now */
    all = received(&rc);
    ck_assert_int_eq(cJSON_GetArraySize(all), 20);
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) || ' ' || sum(attempts) FROM webhook_deliveries WHERE "
             "endpoint_id = '%s' AND state = 'delivered') || ' ' || (SELECT count(*) FROM "
             "webhook_attempts a JOIN webhook_deliveries x ON x.id = a.delivery_id WHERE "
             "x.endpoint_id = '%s')",
             id, id);
    ck_assert_int_eq(h_psql(&E, NULL, sql, out, sizeof out), 0);
    ck_assert_str_eq(out, "20 20 20"); /* delivered, attempts counted, attempts recorded */
    attempt_starts(id, starts, sizeof starts);
    const cJSON *req;
    cJSON_ArrayForEach(req, all)
    {
        const char *ev = sget(cJSON_GetObjectItemCaseSensitive(req, "event"), "id");
        const char *at = strstr(starts, ev);
        ck_assert_msg(at != NULL, "no attempt recorded for event %s", ev);
        double started = strtod(at + strlen(ev) + 1, NULL),
               arrived = cJSON_GetObjectItemCaseSensitive(req, "at")->valuedouble;
        ck_assert_msg(fabs(arrived - started) < 0.25, "event %s: started %.3f, arrived %.3f", ev,
                      started, arrived);
    }
    cJSON_Delete(all);
    receiver_stop(&rc);
    endpoint_delete(id);
    api_restart(NULL);
}
END_TEST

/* A backlog brings the sleeping threads in at once: ten deliveries written while no dispatcher
 * runs, a receiver that answers in 500 ms, VIGIL_WEBHOOK_BATCH=2, three threads, and a poll
 * interval of 5 s (so the thread handed the polling does not claim before the end).  The first
 * claim is full, so it wakes a second thread at once, whose full claim wakes the third: attempts
 * overlap (one thread alone starts one only after the 500 ms answer of the one before), and
 * every event arrives once. */
START_TEST(backlog_brings_helpers)
{
    static const char *const env_backlog[] = {"VIGIL_WEBHOOK_ALLOWED_HOSTS=127.0.0.1",
                                              "VIGIL_WEBHOOK_POLL_MS=5000", "VIGIL_WEBHOOK_BATCH=2",
                                              "VIGIL_WEBHOOK_CONCURRENCY=3", NULL};
    receiver rc;
    char id[37], starts[4096];
    backlog_for_slow_receiver(&rc, "backlog.jsonl", "wh-backlog", 10, env_backlog, id);
    cJSON *all = wait_events(&rc, 10, 30000);
    ck_assert_int_eq(distinct_events(all), 10);
    ck_assert_int_eq(cJSON_GetArraySize(all), 10);
    cJSON_Delete(all);
    attempt_starts(id, starts, sizeof starts);
    ck_assert_msg(min_start_gap(starts) < 0.4, "no two attempts overlapped: %s", starts);
    receiver_stop(&rc);
    endpoint_delete(id);
    api_restart(NULL);
}
END_TEST

/* A receiver that takes 3 s to answer does not hold up new events for another endpoint: the
 * thread that claimed its delivery handed the polling to a sleeping thread first.  Endpoint A
 * (slow) gets a decision.block; once its request has arrived (in flight for 3 s), a decision.review
 * is made for endpoint B, which must receive it well before A's answer (within 2 s of A's request;
 * a single poller would reach it only after the 3 s answer). */
START_TEST(slow_receiver_does_not_hold_new_events)
{
    static const char *const env_slow[] = {"VIGIL_WEBHOOK_ALLOWED_HOSTS=127.0.0.1",
                                           "VIGIL_WEBHOOK_POLL_MS=50",
                                           "VIGIL_WEBHOOK_TIMEOUT_MS=10000", NULL};
    receiver slow, fast;
    char a[37], b[37], url[100], txn[37];
    api_restart(env_slow);
    receiver_start(&slow, "127.0.0.1", h_free_port(), "hold-a.jsonl", 200, 3000);
    receiver_start(&fast, "127.0.0.1", h_free_port(), "hold-b.jsonl", 200, 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/a", slow.port);
    endpoint(url, "[\"decision.block\"]", a, NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/b", fast.port);
    endpoint(url, "[\"decision.review\"]", b, NULL);
    e2e_user(&E, "wh-hold");
    e2e_policy_fallback(&E, "block");
    decide("wh-hold", txn);
    cJSON *got_a = wait_events(&slow, 1, 10000);
    ck_assert_int_eq(cJSON_GetArraySize(got_a), 1);
    e2e_policy_fallback(&E, "review");
    decide("wh-hold", txn);
    cJSON *got_b = wait_events(&fast, 1, 10000);
    ck_assert_int_eq(cJSON_GetArraySize(got_b), 1);
    double at_a = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(got_a, 0), "at")->valuedouble,
           at_b = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(got_b, 0), "at")->valuedouble;
    ck_assert_msg(at_b - at_a < 2.0, "B's event arrived %.3f s after A's request", at_b - at_a);
    cJSON_Delete(got_a);
    cJSON_Delete(got_b);
    receiver_stop(&slow);
    receiver_stop(&fast);
    endpoint_delete(a);
    endpoint_delete(b);
    api_restart(NULL);
}
END_TEST

/* A batch's failures count toward the endpoint's streak only when they came after its last
 * success in the batch.  Six deliveries are claimed as one batch and recorded (through
 * webhook_record_batch, as the dispatcher does) with the outcomes ok, fail, ok, fail, ok, fail in
 * the order they started, with VIGIL_WEBHOOK_DISABLE_AFTER's place taken by 3: the streak is 1
 * (only the last failure follows the last success) and the endpoint stays enabled; three
 * delivered, three pending again. */
START_TEST(batch_streak_follows_start_order)
{
    char id[37], txn[37], sql[1400], out[64], st[64];
    api_restart(ENV_NO_DISPATCH);
    endpoint("http://127.0.0.1:9/streak", "[\"decision.block\"]", id, NULL);
    e2e_user(&E, "wh-streak");
    e2e_policy_fallback(&E, "block");
    for (int i = 0; i < 6; i++)
        decide("wh-streak", txn);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM webhook_record_batch((SELECT json_agg(json_build_object("
             "'id', q.id, 'endpoint', q.endpoint_id, 'attempt', q.attempt, 'ok', q.rn %% 2 = 1, "
             "'status', CASE WHEN q.rn %% 2 = 1 THEN 200 ELSE 500 END, 'error', CASE WHEN q.rn "
             "%% 2 = 1 THEN NULL ELSE 'HTTP 500' END, 'ms', 1, 'ago_us', (10 - q.rn) * 100000)) "
             "FROM (SELECT c.*, row_number() OVER () AS rn FROM webhook_claim(60000, 256) c "
             "WHERE c.endpoint_id = '%s') q), 60000, 60000, 86400, 3, 'e2e')",
             id);
    ck_assert_int_eq(h_psql(&E, NULL, sql, out, sizeof out), 0);
    ck_assert_str_eq(out, "6"); /* six recorded */
    snprintf(sql, sizeof sql,
             "SELECT enabled || ' ' || consecutive_failures FROM webhook_endpoints WHERE id = '%s'",
             id);
    ck_assert_int_eq(h_psql(&E, NULL, sql, out, sizeof out), 0);
    ck_assert_str_eq(out, "true 1");
    states_of(id, st);
    ck_assert_str_eq(st, "3 3 0");
    endpoint_delete(id);
    api_restart(NULL);
}
END_TEST

/* Three consecutive failures disable the endpoint (VIGIL_WEBHOOK_DISABLE_AFTER=3 for this test);
 * its pending deliveries wait, and re-enabling it delivers them. */
START_TEST(auto_disable_and_enable)
{
    static const char *const env3[] = {"VIGIL_WEBHOOK_ALLOWED_HOSTS=127.0.0.1",
                                       "VIGIL_WEBHOOK_BACKOFF_MS=100",
                                       "VIGIL_WEBHOOK_BACKOFF_MAX_MS=200",
                                       "VIGIL_WEBHOOK_POLL_MS=50",
                                       "VIGIL_WEBHOOK_TIMEOUT_MS=2000",
                                       "VIGIL_WEBHOOK_DISABLE_AFTER=3",
                                       NULL};
    receiver rc;
    char id[37], url[100], txn[37], path[200];
    int port = h_free_port();
    ck_assert_int_eq(h_api_stop(&E, SIGTERM), 0);
    E.api_env = env3;
    ck_assert_int_eq(h_api_start(&E), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/off", port);
    endpoint(url, "[\"decision.review\"]", id, NULL);
    e2e_user(&E, "wh-off");
    e2e_policy_fallback(&E, "review");
    decide("wh-off", txn);
    decide("wh-off", txn);
    snprintf(path, sizeof path, "/api/v1/webhooks/%s", id);
    h_resp r;
    int enabled = 1;
    for (int i = 0; i < 100 && enabled; i++) {
        sleep_ms(100);
        e2e_req(&E, "GET", path, NULL, &r);
        enabled = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r.json, "enabled"));
        if (!enabled) {
            ck_assert_str_eq(sget(r.json, "disabled_reason"), "consecutive_failures");
            /* 3, or 4 when the other delivery's attempt was in flight as the third failed */
            int n = cJSON_GetObjectItemCaseSensitive(r.json, "consecutive_failures")->valueint;
            ck_assert_int_ge(n, 3);
            ck_assert_int_le(n, 4);
        }
        h_resp_free(&r);
    }
    ck_assert_msg(!enabled, "the endpoint was not disabled");
    /* its pending deliveries are parked: no next attempt while it is disabled */
    char sql[300], parked[32];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = '%s' AND state = "
             "'pending' AND next_attempt_at = 'infinity'",
             id);
    ck_assert_int_eq(h_psql(&E, NULL, sql, parked, sizeof parked), 0);
    ck_assert_str_eq(parked, "2");
    receiver_start(&rc, "127.0.0.1", port, "off.jsonl", 200, 0);
    sleep_ms(500);
    cJSON *all = received(&rc);
    ck_assert_int_eq(cJSON_GetArraySize(all), 0); /* disabled: nothing is sent */
    cJSON_Delete(all);
    e2e_req(&E, "PATCH", path, "{\"enabled\":true}", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(r.json, "consecutive_failures")->valueint, 0);
    h_resp_free(&r);
    all = wait_events(&rc, 2, 20000);
    ck_assert_int_eq(distinct_events(all), 2);
    cJSON_Delete(all);
    receiver_stop(&rc);
    endpoint_delete(id);
    ck_assert_int_eq(h_api_stop(&E, SIGTERM), 0);
    E.api_env = ENV;
    ck_assert_int_eq(h_api_start(&E), 0);
}
END_TEST

/* A delivery still failing when its retry window (VIGIL_WEBHOOK_RETRY_WINDOW_S=1 for this test)
 * has passed is given up: state failed, no next attempt, counted as failed in /metrics; once
 * older than VIGIL_WEBHOOK_RETENTION_S (5 s here) the finished event is deleted. */
START_TEST(given_up_after_window)
{
    static const char *const env1[] = {"VIGIL_WEBHOOK_ALLOWED_HOSTS=127.0.0.1",
                                       "VIGIL_WEBHOOK_BACKOFF_MS=200",
                                       "VIGIL_WEBHOOK_POLL_MS=50",
                                       "VIGIL_WEBHOOK_RETRY_WINDOW_S=1",
                                       "VIGIL_WEBHOOK_RETENTION_S=5",
                                       NULL};
    char id[37], url[100], txn[37], st[64], path[200];
    ck_assert_int_eq(h_api_stop(&E, SIGTERM), 0);
    E.api_env = env1;
    ck_assert_int_eq(h_api_start(&E), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/gone", h_free_port());
    endpoint(url, "[\"decision.block\"]", id, NULL);
    e2e_user(&E, "wh-gone");
    e2e_policy_fallback(&E, "block");
    decide("wh-gone", txn);
    for (int i = 0; i < 100; i++) {
        states_of(id, st);
        if (strcmp(st, "0 0 1") == 0)
            break;
        sleep_ms(100);
    }
    ck_assert_str_eq(st, "0 0 1");
    h_resp r;
    snprintf(path, sizeof path, "/api/v1/webhooks/%s/deliveries?state=failed", id);
    e2e_req(&E, "GET", path, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "data"), 0);
    ck_assert_ptr_nonnull(d);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(d, "next_attempt_at")));
    ck_assert_int_ge(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(d, "attempts")), 1);
    h_resp_free(&r);
    e2e_req(&E, "GET", "/metrics", NULL, &r);
    const char *m = strstr(r.body, "vigil_webhook_attempts_total{result=\"failed\"} ");
    ck_assert_ptr_nonnull(m);
    ck_assert_int_ge(atoi(m + strlen("vigil_webhook_attempts_total{result=\"failed\"} ")), 1);
    h_resp_free(&r);
    /* VIGIL_WEBHOOK_RETENTION_S=5: the finished event goes, with its delivery and attempts */
    char sql[300], left[32] = "";
    snprintf(sql, sizeof sql, "SELECT count(*) FROM webhook_events WHERE transaction_id = '%s'",
             txn);
    for (int i = 0; i < 200 && strcmp(left, "0") != 0; i++) {
        ck_assert_int_eq(h_psql(&E, NULL, sql, left, sizeof left), 0);
        sleep_ms(100);
    }
    ck_assert_str_eq(left, "0");
    states_of(id, st);
    ck_assert_str_eq(st, "0 0 0");
    endpoint_delete(id);
    ck_assert_int_eq(h_api_stop(&E, SIGTERM), 0);
    E.api_env = ENV;
    ck_assert_int_eq(h_api_start(&E), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("webhooks");
    TCase *tc = tcase_create("webhooks");
    tcase_add_unchecked_fixture(tc, env_up, env_down);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, endpoint_resource);
    tcase_add_test(tc, create_errors_and_scope);
    tcase_add_test(tc, ssrf_refused_at_create);
    tcase_add_test(tc, ssrf_refused_at_connect);
    tcase_add_test(tc, slow_dns_is_bounded_by_the_timeout);
    tcase_add_test(tc, signed_ordered_delivery);
    tcase_add_test(tc, receiver_down_then_back);
    tcase_add_test(tc, kill_mid_delivery);
    tcase_add_test(tc, two_replicas_no_double_delivery);
    tcase_add_test(tc, slow_receiver_batch_gives_back);
    tcase_add_test(tc, slow_receiver_does_not_hold_new_events);
    tcase_add_test(tc, backlog_brings_helpers);
    tcase_add_test(tc, batch_streak_follows_start_order);
    tcase_add_test(tc, auto_disable_and_enable);
    tcase_add_test(tc, given_up_after_window);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
