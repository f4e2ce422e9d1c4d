/* test_http.c - the lower floors of the API on their own: the logger (common/logline), the bounded
 * buffer (common/dynbuf), the pool wait (api/pool), the worker client's call timeout (api/hpclient)
 * and the HTTP layer (api/http) serving a tiny route table of this file's own, with its own key
 * check, on a free port, spoken to over a plain socket.
 *
 * This binary links only config, json, router, metrics, pool, db, hpclient, http and common/
 * (see API_FLOORS in the Makefile): no resource handler, no auth.o, no routes.o.  That it links at
 * all is half the test.  Expected values are written out by hand. */
#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "db.h"
#include "dynbuf.h"
#include "hpclient.h"
#include "http.h"
#include "json.h"
#include "logline.h"
#include "metrics.h"
#include "pool.h"

/* ---- stderr capture: log lines go to stderr ------------------------------------------------- */

static int saved_stderr = -1;
static char cap_path[256];

static void capture_begin(void)
{
    const char *tmp = getenv("VIGIL_TEST_TMP");
    snprintf(cap_path, sizeof cap_path, "%s/test_http.XXXXXX", tmp ? tmp : "/tmp");
    int fd = mkstemp(cap_path);
    ck_assert_int_ge(fd, 0);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
    close(fd);
}

/* Restores stderr; returns what was written (caller frees). */
static char *capture_end(void)
{
    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    FILE *f = fopen(cap_path, "r");
    ck_assert_ptr_nonnull(f);
    char *text = calloc(1, 1 << 16);
    size_t n = fread(text, 1, (1 << 16) - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(cap_path);
    return text;
}

/* ---- log ------------------------------------------------------------------------------------- */

START_TEST(log_line_schema)
{
    capture_begin();
    logline l;
    logline_begin(&l, "info", "unit_event");
    logline_str(&l, "request_id", "r-1");
    logline_str(&l, "detail", "a \"quoted\"\nline \xff");
    logline_str(&l, "none", NULL);
    logline_i64(&l, "n", -42);
    logline_bool(&l, "ok", 1);
    logline_end(&l);
    logline_event("warn", "second", NULL, NULL);
    char *text = capture_end();
    char *nl = strchr(text, '\n');
    ck_assert_ptr_nonnull(nl);
    *nl = '\0';
    char err[128];
    ck_assert_msg(json_validate(text, strlen(text), err, sizeof err) == 0, "%s: %s", err, text);
    cJSON *j = cJSON_Parse(text);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "time");
    ck_assert(cJSON_IsString(t));
    /* 2024-05-01T12:00:00.123456Z */
    ck_assert_uint_eq(strlen(t->valuestring), 27);
    ck_assert_int_eq(t->valuestring[10], 'T');
    ck_assert_int_eq(t->valuestring[19], '.');
    ck_assert_int_eq(t->valuestring[26], 'Z');
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "level")->valuestring, "info");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "event")->valuestring, "unit_event");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "request_id")->valuestring, "r-1");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "detail")->valuestring,
                     "a \"quoted\"\nline \xef\xbf\xbd");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "none")));
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(j, "n")->valueint, -42);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ok")));
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(j, "truncated"));
    cJSON_Delete(j);
    ck_assert_ptr_nonnull(strstr(nl + 1, "\"level\":\"warn\",\"event\":\"second\"}\n"));
    free(text);
}
END_TEST

/* A value longer than the line is shortened, the line says so and stays one strict JSON line. */
START_TEST(log_line_truncated)
{
    static char big[3 * LOGLINE_MAX];
    memset(big, 'x', sizeof big - 1);
    capture_begin();
    logline l;
    logline_begin(&l, "info", "big");
    logline_str(&l, "path", big);
    logline_i64(&l, "after", 1); /* no room left: dropped */
    logline_end(&l);
    char *text = capture_end();
    size_t n = strlen(text);
    ck_assert_uint_le(n, LOGLINE_MAX);
    ck_assert_int_eq(text[n - 1], '\n');
    ck_assert_ptr_eq(strchr(text, '\n'), text + n - 1); /* one line */
    text[n - 1] = '\0';
    char err[128];
    ck_assert_msg(json_validate(text, n - 1, err, sizeof err) == 0, "%s", err);
    ck_assert_ptr_nonnull(strstr(text, ",\"truncated\":true}"));
    ck_assert_ptr_null(strstr(text, "\"after\""));
    free(text);
}
END_TEST

/* ---- dynbuf ---------------------------------------------------------------------------------- */

START_TEST(dynbuf_bound_n_and_n_plus_1)
{
    dynbuf b;
    dynbuf_init(&b, 10);
    ck_assert_int_eq(dynbuf_append(&b, "0123456789", 10), DYNBUF_OK); /* N */
    ck_assert_str_eq(b.p, "0123456789");
    ck_assert_int_eq(dynbuf_append(&b, "x", 1), DYNBUF_E_LIMIT);  /* N + 1 */
    ck_assert_int_eq(dynbuf_printf(&b, "%d", 1), DYNBUF_E_LIMIT); /* sticky */
    size_t len = 99;
    ck_assert_ptr_null(dynbuf_take(&b, &len));
    ck_assert_uint_eq(len, 0);

    dynbuf_init(&b, 1000);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(dynbuf_printf(&b, "%d,", i % 10), DYNBUF_OK);
    ck_assert_uint_eq(b.len, 200);
    float *row = dynbuf_extend(&b, 8);
    ck_assert_ptr_nonnull(row);
    ck_assert_uint_eq(b.len, 208);
    char *s = dynbuf_take(&b, &len);
    ck_assert_uint_eq(len, 208);
    ck_assert(strncmp(s, "0,1,2,", 6) == 0);
    free(s);
    ck_assert_ptr_null(b.p);
    dynbuf_free(&b);
}
END_TEST

/* ---- pool wait ------------------------------------------------------------------------------- */

static int never_open(const void *ctx, int i)
{
    (void)ctx;
    (void)i;
    return 0;
}

static int open_1(const void *ctx, int i)
{
    (void)ctx;
    return i == 1;
}

typedef struct waiter {
    pool_slots *p;
    int got;
} waiter;

static void *wait_thread(void *arg)
{
    waiter *w = arg;
    w->got = pool_take(w->p, clock_now_ms() + 60000, never_open, NULL);
    return NULL;
}

START_TEST(pool_wait)
{
    pool_slots p;
    ck_assert_int_eq(pool_init(&p, 2), 0);
    /* An open slot is preferred over an empty one. */
    ck_assert_int_eq(pool_take(&p, clock_now_ms() + 1000, open_1, NULL), 1);
    ck_assert_int_eq(pool_take(&p, clock_now_ms() + 1000, open_1, NULL), 0);
    /* Exhausted: a deadline already passed answers at once (no EINVAL spin), a short one too. */
    ck_assert_int_eq(pool_take(&p, clock_now_ms() - 1000, never_open, NULL), -1);
    ck_assert_int_eq(pool_take(&p, clock_now_ms() + 20, never_open, NULL), -1);
    int in_use, open;
    unsigned long long waits;
    pool_counts(&p, open_1, NULL, &in_use, &open, &waits);
    ck_assert_int_eq(in_use, 2);
    ck_assert_int_eq(open, 1);
    ck_assert_uint_eq(waits, 2);
    /* A waiter gets the slot given back, long before its own deadline. */
    waiter w = {&p, -2};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, wait_thread, &w), 0);
    pool_give(&p, 1);
    pthread_join(th, NULL);
    ck_assert_int_eq(w.got, 1);
    pool_give(&p, 1);
    pool_give(&p, 0);
    pool_counts(&p, open_1, NULL, &in_use, &open, &waits);
    ck_assert_int_eq(in_use, 0);
    pool_fini(&p);
}
END_TEST

/* ---- the worker client's call timeout -------------------------------------------------------- */

/* A "worker" that accepts connections (the backlog does) and never answers: only
 * VIGIL_HOTPATH_TIMEOUT_MS (the pool's call timeout) can end the call, well before the request's
 * one-minute deadline. */
START_TEST(hpc_call_timeout_bounds_the_call)
{
    const char *tmp = getenv("VIGIL_TEST_TMP");
    char path[108];
    snprintf(path, sizeof path, "%s/mute.sock", tmp ? tmp : "/tmp");
    unlink(path);
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(lfd, 8), 0);
    char err[256];
    hpc_pool *hp = hpc_pool_create(path, 1, 1 << 20, 200, err, sizeof err);
    ck_assert_ptr_nonnull(hp);
    hpc_reply rep;
    int64_t request_deadline = clock_now_ms() + 60000;
    int rc = hpc_call(hp, WIRE_OP_HELLO, NULL, 0, request_deadline, 1000, &rep, err, sizeof err);
    ck_assert_int_eq(rc, HPC_TIMEOUT);
    ck_assert_msg(clock_now_ms() < request_deadline, "the call waited for the request deadline");
    hpc_reply_free(&rep);
    hpc_pool_destroy(hp);
    close(lfd);
    unlink(path);
}
END_TEST

/* ---- the HTTP layer with a route table of its own -------------------------------------------- */

static void h_ping(http_req *q, http_resp *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "pong", q->nparams ? q->params[0] : "");
    http_json(r, 200, o);
}

static void h_secret(http_req *q, http_resp *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "key", q->key_id);
    http_json(r, 200, o);
}

static atomic_int auth_calls, auth_saw_body; /* the key check runs on the head alone */

/* The key check main would hand over (auth.c); here: "Bearer good" has the read scope only,
 * "Bearer writer" read and write. */
static int fake_auth(http_req *q, http_resp *r, unsigned scope)
{
    atomic_fetch_add(&auth_calls, 1);
    if (q->body || q->body_len)
        atomic_fetch_add(&auth_saw_body, 1);
    const char *h = http_header(q, "Authorization");
    int writer = h && strcmp(h, "Bearer writer") == 0;
    if (!h || (strcmp(h, "Bearer good") != 0 && !writer)) {
        http_problem(r, 401, "unauthorized", NULL, "no");
        return -1;
    }
    if (scope & ~(unsigned)(writer ? SCOPE_READ | SCOPE_WRITE : SCOPE_READ)) {
        http_problem(r, 403, "forbidden", NULL, "read only");
        return -1;
    }
    snprintf(q->key_id, sizeof q->key_id, "k-1");
    return 0;
}

/* The non-blocking first try main hands over (auth_authenticate_cached): "Bearer cached" is a
 * known key with the read scope; no header is a 401 at once; anything else needs fake_auth. */
static atomic_int try_calls;
static int fake_try(http_req *q, http_resp *r, unsigned scope)
{
    atomic_fetch_add(&try_calls, 1);
    const char *h = http_header(q, "Authorization");
    if (!h) {
        http_problem(r, 401, "unauthorized", NULL, "no");
        return -1;
    }
    if (strcmp(h, "Bearer cached") != 0)
        return 1;
    snprintf(q->key_id, sizeof q->key_id, "k-cached");
    if (scope & ~(unsigned)SCOPE_READ) {
        http_problem(r, 403, "forbidden", NULL, "read only");
        return -1;
    }
    return 0;
}

static const route tiny[] = {
    {"GET", "/ping/{x}", h_ping, SCOPE_NONE, BODY_NONE, 0},
    {"GET", "/secret", h_secret, SCOPE_READ, BODY_NONE, 0},
    {"POST", "/secret", h_secret, SCOPE_WRITE, BODY_JSON, 0},
};

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

/* Sends raw (a whole HTTP/1.0 request) and returns the status; body (if not NULL) gets the rest
 * of the answer after the headers. */
static int request(int port, const char *raw, char *body, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(send(fd, raw, strlen(raw), 0), (ssize_t)strlen(raw));
    char in[16384]; /* per call: bg_request threads run this concurrently */
    size_t got = 0;
    ssize_t n;
    while (got < sizeof in - 1 && (n = recv(fd, in + got, sizeof in - 1 - got, 0)) > 0)
        got += (size_t)n;
    in[got] = '\0';
    close(fd);
    int status = 0;
    ck_assert_int_eq(sscanf(in, "HTTP/1.%*d %d", &status), 1);
    if (body) {
        const char *b = strstr(in, "\r\n\r\n");
        snprintf(body, cap, "%s", b ? b + 4 : "");
    }
    return status;
}

START_TEST(http_serves_a_table_it_is_given)
{
    static cfg c;
    char err[256], body[4096], raw[512];
    ck_assert_int_eq(cfg_load(&c, 0, err, sizeof err), 0);
    c.http_port = free_port();
    app a = {.cfg = &c};
    http_setup setup = {tiny, sizeof tiny / sizeof tiny[0], fake_auth, NULL};
    capture_begin();
    http_server *s = http_start(&a, &setup, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);

    int st = request(c.http_port, "GET /ping/abc HTTP/1.0\r\nX-Request-Id: t-1\r\n\r\n", body,
                     sizeof body);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(body, "{\"pong\":\"abc\"}");
    ck_assert_int_eq(request(c.http_port, "GET /nope HTTP/1.0\r\n\r\n", NULL, 0), 404);
    ck_assert_int_eq(request(c.http_port, "DELETE /secret HTTP/1.0\r\n\r\n", body, sizeof body),
                     405);
    /* A method that is not UTF-8 is echoed in the 405 detail as U+FFFD: the problem body stays
     * strict JSON (fuzz_http, seeds/http/regress-405-method-not-utf8). */
    ck_assert_int_eq(request(c.http_port, "P\x82OST /secret HTTP/1.0\r\n\r\n", body, sizeof body),
                     405);
    ck_assert_msg(json_validate(body, strlen(body), err, sizeof err) == 0, "%s: %s", err, body);
    ck_assert_ptr_nonnull(strstr(body, "P\xef\xbf\xbdOST is not allowed"));
    ck_assert_int_eq(request(c.http_port, "GET /secret HTTP/1.0\r\n\r\n", NULL, 0), 401);
    st = request(c.http_port, "GET /secret HTTP/1.0\r\nAuthorization: Bearer good\r\n\r\n", body,
                 sizeof body);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(body, "{\"key\":\"k-1\"}");
    snprintf(raw, sizeof raw,
             "POST /secret HTTP/1.0\r\nAuthorization: Bearer good\r\nContent-Type: "
             "application/json\r\nContent-Length: 2\r\n\r\n{}");
    ck_assert_int_eq(request(c.http_port, raw, NULL, 0), 403);
    /* Body limit at N + 1: refused from Content-Length alone, once the key is known to allow the
     * route (without a key the answer is 401, whatever the length). */
    snprintf(raw, sizeof raw,
             "POST /secret HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "\r\n",
             c.max_body_bytes + 1);
    ck_assert_int_eq(request(c.http_port, raw, NULL, 0), 401);
    snprintf(raw, sizeof raw,
             "POST /secret HTTP/1.0\r\nAuthorization: Bearer writer\r\nContent-Type: "
             "application/json\r\nContent-Length: %zu\r\n\r\n",
             c.max_body_bytes + 1);
    ck_assert_int_eq(request(c.http_port, raw, NULL, 0), 413);
    snprintf(raw, sizeof raw,
             "POST /secret HTTP/1.0\r\nAuthorization: Bearer writer\r\nContent-Type: "
             "application/json\r\nContent-Length: 2\r\n\r\n{}");
    ck_assert_int_eq(request(c.http_port, raw, NULL, 0), 200);
    /* Every key check ran before the handler had a body. */
    ck_assert_int_eq(atomic_load(&auth_calls), 6);
    ck_assert_int_eq(atomic_load(&auth_saw_body), 0);
    ck_assert_int_eq(http_stop(s), 0);
    char *log = capture_end();

    /* One request line per request, in the shared schema, with the route's own request id. */
    int lines = 0, found = 0;
    for (char *line = log, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        ck_assert_ptr_nonnull(nl);
        *nl = '\0';
        cJSON *j = cJSON_Parse(line);
        ck_assert_msg(j != NULL, "not JSON: %s", line);
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "event");
        ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "time")));
        ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "level")));
        ck_assert(cJSON_IsString(ev));
        if (strcmp(ev->valuestring, "request") == 0) {
            lines++;
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "request_id");
            if (strcmp(id->valuestring, "t-1") == 0) {
                found++;
                ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "path")->valuestring,
                                 "/ping/abc");
                ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(j, "status")->valueint, 200);
            }
        }
        cJSON_Delete(j);
    }
    free(log);
    ck_assert_int_eq(lines, 10);
    ck_assert_int_eq(found, 1);

    /* The counters name routes from the table the server was given. */
    dynbuf b;
    dynbuf_init(&b, 1 << 20);
    metrics_write_http(&b, tiny, sizeof tiny / sizeof tiny[0]);
    ck_assert_msg(strstr(b.p, "vigil_http_requests_total{route=\"/ping/{x}\",method=\"GET\","
                              "status=\"200\"} 1\n") != NULL,
                  "%s", b.p);
    ck_assert_ptr_nonnull(strstr(b.p, "route=\"unmatched\",method=\"GET\",status=\"404\"} 1\n"));
    dynbuf_free(&b);
}
END_TEST

/* ---- blocking handlers on one event thread ----------------------------------------------------
 * VIGIL_HTTP_THREADS=1: SLOW_N requests sit in a handler that blocks until released (as a
 * transaction holding a database connection does), and a streamed body's producer blocks between
 * two blocks; meanwhile an inline route, another handler and the rest of the stream are served:
 * the event thread never waits for a handler, and every blocked request has a thread of its own
 * (all SLOW_N are inside the handler at once).  The waits below are hang guards, not timings. */

#define SLOW_N 8
static atomic_int slow_inside, slow_release, stream_release;

static int wait_flag(atomic_int *v, int want)
{
    for (int i = 0; i < 2000 && atomic_load(v) < want; i++)
        usleep(5000);
    return atomic_load(v) >= want;
}

static void h_slow(http_req *q, http_resp *r)
{
    (void)q;
    atomic_fetch_add(&slow_inside, 1);
    wait_flag(&slow_release, 1);
    http_raw(r, 200, "text/plain", strdup("slow"), 4);
}

static void h_fast(http_req *q, http_resp *r)
{
    (void)q;
    http_static(r, 200, "text/plain", "fast", 4);
}

/* The payload of a chunked body (chunks up to the last chunk, as request() returns it) into out.
 * Returns 0, or -1 when body is not chunked or the payload does not fit. */
static int dechunk(const char *body, char *out, size_t cap)
{
    const char *p = body;
    size_t len = 0;
    for (;;) {
        char *end;
        unsigned long n = strtoul(p, &end, 16);
        if (end == p || strncmp(end, "\r\n", 2) != 0)
            return -1;
        p = end + 2;
        if (n == 0)
            break;
        if (len + n >= cap || strlen(p) < n + 2 || strncmp(p + n, "\r\n", 2) != 0)
            return -1;
        memcpy(out + len, p, n);
        len += n;
        p += n + 2;
    }
    out[len] = '\0';
    return 0;
}

static long stream_next(void *ctx, char *buf, size_t max)
{
    int *step = ctx;
    (void)max;
    if (*step == 2)
        return 0;
    if (*step == 1)
        wait_flag(&stream_release, 1); /* the producer blocks between its two blocks */
    buf[0] = *step ? 'b' : 'a';
    (*step)++;
    return 1;
}

static void h_stream(http_req *q, http_resp *r)
{
    (void)q;
    int *step = calloc(1, sizeof *step);
    http_stream(r, 200, "text/plain", stream_next, step, free);
}

static const route blocking[] = {
    {"GET", "/slow", h_slow, SCOPE_NONE, BODY_NONE, 0},
    {"GET", "/fast", h_fast, SCOPE_NONE, BODY_NONE, ROUTE_INLINE},
    {"GET", "/ping/{x}", h_ping, SCOPE_NONE, BODY_NONE, 0},
    {"GET", "/stream", h_stream, SCOPE_NONE, BODY_NONE, 0},
};

typedef struct bg_req {
    int port;
    const char *raw;
    int status;
    char body[256];
} bg_req;

static void *bg_request(void *arg)
{
    bg_req *b = arg;
    b->status = request(b->port, b->raw, b->body, sizeof b->body);
    return NULL;
}

START_TEST(slow_handlers_never_block_the_event_thread)
{
    static cfg c;
    char err[256], body[4096];
    ck_assert_int_eq(cfg_load(&c, 0, err, sizeof err), 0);
    c.http_port = free_port();
    c.http_threads = 1;
    app a = {.cfg = &c};
    http_setup setup = {blocking, sizeof blocking / sizeof blocking[0], NULL, NULL};
    capture_begin();
    http_server *s = http_start(&a, &setup, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);

    static bg_req slow[SLOW_N], stream;
    pthread_t th[SLOW_N], st;
    for (int i = 0; i < SLOW_N; i++) {
        slow[i] = (bg_req){.port = c.http_port, .raw = "GET /slow HTTP/1.0\r\n\r\n"};
        ck_assert_int_eq(pthread_create(&th[i], NULL, bg_request, &slow[i]), 0);
    }
    ck_assert_msg(wait_flag(&slow_inside, SLOW_N), "only %d of %d slow requests got a thread",
                  atomic_load(&slow_inside), SLOW_N);
    stream = (bg_req){.port = c.http_port,
                      .raw = "GET /stream HTTP/1.1\r\nHost: x\r\n"
                             "Connection: close\r\n\r\n"};
    ck_assert_int_eq(pthread_create(&st, NULL, bg_request, &stream), 0);

    /* Every slow handler is blocked and the stream's producer will block: still served. */
    ck_assert_int_eq(request(c.http_port, "GET /fast HTTP/1.0\r\n\r\n", body, sizeof body), 200);
    ck_assert_str_eq(body, "fast");
    ck_assert_int_eq(request(c.http_port, "GET /ping/z HTTP/1.0\r\n\r\n", body, sizeof body), 200);
    ck_assert_str_eq(body, "{\"pong\":\"z\"}");
    ck_assert_int_eq(atomic_load(&slow_inside), SLOW_N);

    atomic_store(&stream_release, 1);
    pthread_join(st, NULL);
    ck_assert_int_eq(stream.status, 200);
    /* The body, de-chunked, is "ab" and ends with the last chunk (how the two bytes were cut
     * into chunks is libmicrohttpd's business). */
    char payload[16];
    ck_assert_msg(dechunk(stream.body, payload, sizeof payload) == 0, "not a chunked body: %s",
                  stream.body);
    ck_assert_str_eq(payload, "ab");

    atomic_store(&slow_release, 1);
    for (int i = 0; i < SLOW_N; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(slow[i].status, 200);
        ck_assert_str_eq(slow[i].body, "slow");
    }
    ck_assert_int_eq(http_stop(s), 0);
    free(capture_end());
}
END_TEST

/* The database pool: a server that cannot be reached is DB_DOWN, never a hang, and the pool
 * counts stay right (the slot is given back). */
START_TEST(db_pool_unreachable)
{
    char err[256];
    db_pool *p = db_pool_create("postgresql:///none?host=/nonexistent", 1, 100, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    db_conn *c = NULL;
    ck_assert_int_eq(db_acquire(p, clock_now_ms() + 5000, 1000, &c), DB_DOWN);
    ck_assert_ptr_null(c);
    int in_use, open;
    unsigned long long waits;
    db_pool_counts(p, &in_use, &open, &waits);
    ck_assert_int_eq(in_use, 0);
    ck_assert_int_eq(open, 0);
    db_pool_destroy(p);
}
END_TEST

/* With authenticate_try, a key it knows is settled on the event thread (the blocking check never
 * runs, the answer and the body limit are the same), one it does not know goes to the blocking
 * check, and a refusal it can give is given without it. */
START_TEST(key_try_settles_known_keys)
{
    static cfg c;
    char err[256], body[4096], raw[512];
    ck_assert_int_eq(cfg_load(&c, 0, err, sizeof err), 0);
    c.http_port = free_port();
    app a = {.cfg = &c};
    http_setup setup = {tiny, sizeof tiny / sizeof tiny[0], fake_auth, fake_try};
    capture_begin();
    http_server *s = http_start(&a, &setup, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    int calls0 = atomic_load(&auth_calls);
    ck_assert_int_eq(request(c.http_port,
                             "GET /secret HTTP/1.0\r\nAuthorization: Bearer cached\r\n\r\n", body,
                             sizeof body),
                     200);
    ck_assert_str_eq(body, "{\"key\":\"k-cached\"}");
    snprintf(raw, sizeof raw,
             "POST /secret HTTP/1.0\r\nAuthorization: Bearer cached\r\nContent-Type: "
             "application/json\r\nContent-Length: 2\r\n\r\n{}");
    ck_assert_int_eq(request(c.http_port, raw, NULL, 0), 403);
    ck_assert_int_eq(request(c.http_port, "GET /secret HTTP/1.0\r\n\r\n", NULL, 0), 401);
    ck_assert_int_eq(atomic_load(&auth_calls), calls0); /* none of those blocked */
    ck_assert_int_eq(request(c.http_port,
                             "GET /secret HTTP/1.0\r\nAuthorization: Bearer good\r\n\r\n", body,
                             sizeof body),
                     200);
    ck_assert_str_eq(body, "{\"key\":\"k-1\"}");
    ck_assert_int_eq(atomic_load(&auth_calls), calls0 + 1);
    ck_assert_int_eq(atomic_load(&try_calls), 4);
    ck_assert_int_eq(http_stop(s), 0);
    free(capture_end());
}
END_TEST

/* A client that sends part of a request head and half-closes (end-of-stream) is closed at once,
 * not at the head deadline (10 s here): fuzz_http's "GET /D" after an empty input found the epoll
 * event loop keeping such a connection until the deadline. */
START_TEST(half_closed_partial_head_is_closed)
{
    static cfg c;
    char err[256];
    ck_assert_int_eq(cfg_load(&c, 0, err, sizeof err), 0);
    c.http_port = free_port();
    c.header_timeout_s = 10;
    app a = {.cfg = &c};
    http_setup setup = {tiny, sizeof tiny / sizeof tiny[0], fake_auth, NULL};
    capture_begin();
    http_server *s = http_start(&a, &setup, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    for (int round = 0; round < 4; round++) {
        const char *part = round % 2 ? "GET /D" : ""; /* the empty one first, as fuzz_http did */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)c.http_port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        if (*part)
            ck_assert_int_eq(send(fd, part, strlen(part), 0), (ssize_t)strlen(part));
        shutdown(fd, SHUT_WR);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char buf[512];
        ssize_t n = 1;
        /* 5 s: far below the 10 s head deadline, far above any scheduling delay */
        while (n > 0 && poll(&p, 1, 5000) == 1)
            n = recv(fd, buf, sizeof buf, 0);
        ck_assert_msg(n <= 0, "round %d: the server kept a half-closed connection open", round);
        close(fd);
    }
    ck_assert_int_eq(http_stop(s), 0);
    free(capture_end());
}
END_TEST

static Suite *floors_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("floors");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, log_line_schema);
    tcase_add_test(tc, log_line_truncated);
    tcase_add_test(tc, dynbuf_bound_n_and_n_plus_1);
    tcase_add_test(tc, pool_wait);
    tcase_add_test(tc, hpc_call_timeout_bounds_the_call);
    tcase_add_test(tc, http_serves_a_table_it_is_given);
    tcase_add_test(tc, key_try_settles_known_keys);
    tcase_add_test(tc, half_closed_partial_head_is_closed);
    tcase_add_test(tc, slow_handlers_never_block_the_event_thread);
    tcase_add_test(tc, db_pool_unreachable);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(floors_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
