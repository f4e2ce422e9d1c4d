/* e2e_harden_http.c - issue 9 items 1, 2 and 14 against real processes (a throwaway PostgreSQL,
 * vigil-hotpath and vigil-api started by the harness), spoken to over raw sockets so the test
 * sees exactly what the server reads and when it closes:
 *
 *   - a 200 MiB upload without a key is answered 401 from its head: the API's peak RSS (VmHWM in
 *     /proc/<pid>/status) grows by less than 32 MB and the server closes the connection long
 *     before the body is through; a read-only key gets 403 the same way; a write key gets 413
 *     from Content-Length alone on a 1 MiB resource;
 *   - slowloris: 300 connections from 127.0.0.1, each sending one header line every 3 s, while a
 *     client bound to 127.0.0.2 asks GET /health every 250 ms: every probe is answered 200 before
 *     a 1 s client timeout; the attack's connections are refused past the per-address limit, and
 *     the accepted ones are closed by the head deadline (bounded: the whole case takes < 30 s);
 *   - request smuggling: conflicting Content-Length headers, Content-Length with
 *     Transfer-Encoding, or a transfer coding other than chunked are 400 and the connection is
 *     closed (a request hidden in the body is never answered);
 *   - Content-Type is the exact media type (application/jsonfoo is 415 on predict and on model
 *     upload; parameters are allowed) and malformed JSON on predict is malformed_json.
 *
 * Expected values are written here (sizes, limits from the README's defaults); the test never
 * asserts speed: the 1 s in the slowloris case is the correctness bound (a starved server
 * never answers at all). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "assert.h"
#include "resplog.h"
#include "fixtures_io.h"
#include "clock.h"
#include "harness.h"

static h_env E;

static const char *const ENV_DEFAULT[] = {NULL};
/* The slowloris case: a shorter head deadline, so the 12 s attack sees it fire three times. */
static const char *const ENV_SLOW[] = {"VIGIL_HEADER_TIMEOUT_S=4", NULL};

static void up_default(void)
{
    e2e_env_up(&E, ENV_DEFAULT);
}

static void up_slow(void)
{
    e2e_env_up(&E, ENV_SLOW);
}

static void env_down(void)
{
    e2e_env_down(&E);
}

/* Peak resident set of pid in kB (VmHWM), or -1. */
static long vm_hwm_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

/* A TCP connection to the API from source address src ("127.0.0.1", "127.0.0.2"); blocking
 * connect, then non-blocking when nonblock.  Returns the fd or -1. */
static int connect_from(const char *src, int nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in me = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &me.sin_addr);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)E.api_port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&me, sizeof me) != 0 ||
        connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
        close(fd);
        return -1;
    }
    if (nonblock)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* ---- item 1: no body is read before the key is checked ----------------------------------------
 */

typedef struct upload_result {
    char head[4096];   /* what the server answered (NUL-terminated) */
    size_t sent;       /* body bytes the server took before answering and closing */
    int closed;        /* the server closed (EOF or reset) after answering */
    long hwm_delta_kb; /* growth of the API's VmHWM over the upload */
} upload_result;

/* Sends a head announcing body_len bytes, then zeros, reading whatever the server answers as it
 * comes; stops when the server has answered and closed, when everything is sent and answered, or
 * after 60 s. */
static void big_upload(const char *head, size_t body_len, upload_result *u)
{
    memset(u, 0, sizeof *u);
    long hwm0 = vm_hwm_kb(E.api_pid);
    ck_assert_int_gt(hwm0, 0);
    int fd = connect_from("127.0.0.1", 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(send(fd, head, strlen(head), MSG_NOSIGNAL), (ssize_t)strlen(head));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    static char zeros[1 << 16];
    size_t got = 0;
    int write_open = 1;
    int64_t end = clock_now_ms() + 60000;
    while (clock_now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (write_open ? POLLOUT : 0)};
        if (poll(&p, 1, 200) < 0)
            break;
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, u->head + got, sizeof u->head - 1 - got, 0);
            if (n > 0) {
                got += (size_t)n;
                u->head[got] = '\0';
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                u->closed = 1;
                break;
            }
        }
        if (write_open && (p.revents & POLLOUT) && u->sent < body_len) {
            size_t n = body_len - u->sent < sizeof zeros ? body_len - u->sent : sizeof zeros;
            ssize_t w = send(fd, zeros, n, MSG_NOSIGNAL);
            if (w > 0)
                u->sent += (size_t)w;
            else if (errno != EAGAIN && errno != EWOULDBLOCK)
                write_open = 0; /* reset by the server: keep reading what it answered */
        }
        if (u->sent == body_len)
            write_open = 0;
    }
    close(fd);
    resplog_raw(head, strlen(head), u->head, got);
    long hwm1 = vm_hwm_kb(E.api_pid);
    u->hwm_delta_kb = hwm1 - hwm0;
}

static void assert_status(const upload_result *u, const char *status_line, const char *code)
{
    char want[64];
    ck_assert_msg(strncmp(u->head, status_line, strlen(status_line)) == 0, "answer: %.300s",
                  u->head);
    snprintf(want, sizeof want, "\"code\":\"%s\"", code);
    ck_assert_msg(strstr(u->head, want) != NULL, "no %s in: %.600s", want, u->head);
    ck_assert_msg(strcasestr(u->head, "\r\nConnection: close\r\n") != NULL,
                  "no Connection: close in: %.600s", u->head);
}

START_TEST(upload_without_key_is_401_from_the_head)
{
    const size_t body = (size_t)200 << 20;
    char head[512];
    snprintf(head, sizeof head,
             "POST /api/v1/models?name=big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
             "\r\nContent-Length: %zu\r\n\r\n",
             body);
    upload_result u;
    big_upload(head, body, &u);
    printf("  401: %zu of %zu body bytes taken, VmHWM +%ld kB\n", u.sent, body, u.hwm_delta_kb);
    ck_assert_msg(u.hwm_delta_kb < 32 * 1024, "VmHWM grew by %ld kB", u.hwm_delta_kb);
    /* The kernel buffers of both ends hold a few MB at most: far less than the body. */
    ck_assert_msg(u.sent < body / 4, "the server read %zu of %zu body bytes", u.sent, body);
    assert_status(&u, "HTTP/1.1 401", "unauthorized");
    ck_assert_msg(u.closed, "the server kept the connection open");

    /* An unknown key is the same. */
    snprintf(head, sizeof head,
             "POST /api/v1/models?name=big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
             "vgl_nosuchkeynosuchkeynosuchkeynosuchkeynosuchk\r\nContent-Type: application/json"
             "\r\nContent-Length: %zu\r\n\r\n",
             body);
    big_upload(head, body, &u);
    assert_status(&u, "HTTP/1.1 401", "unauthorized");
    ck_assert_msg(u.closed && u.sent < body / 4, "read %zu bytes", u.sent);
    ck_assert_msg(u.hwm_delta_kb < 32 * 1024, "VmHWM grew by %ld kB", u.hwm_delta_kb);

    /* A read key may not upload models: 403, from the head as well. */
    char rkey[128];
    ck_assert_int_eq(h_create_key(&E, "read", rkey, sizeof rkey), 0);
    snprintf(head, sizeof head,
             "POST /api/v1/models?name=big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
             rkey, body);
    big_upload(head, body, &u);
    assert_status(&u, "HTTP/1.1 403", "forbidden");
    ck_assert_msg(u.closed && u.sent < body / 4, "read %zu bytes", u.sent);
    ck_assert_msg(u.hwm_delta_kb < 32 * 1024, "VmHWM grew by %ld kB", u.hwm_delta_kb);

    /* A write key on a JSON resource: its limit is 1 MiB (not the models' 256 MiB), 413 from
     * Content-Length alone, at N + 1. */
    char wkey[128];
    ck_assert_int_eq(h_create_key(&E, "write", wkey, sizeof wkey), 0);
    snprintf(head, sizeof head,
             "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n",
             wkey, (1 << 20) + 1);
    big_upload(head, (1 << 20) + 1, &u);
    assert_status(&u, "HTTP/1.1 413", "body_too_large");
    ck_assert_msg(u.closed, "the server kept the connection open");
}
END_TEST

/* ---- item 14: ambiguous framing is refused and ends the connection --------------------------- */

/* Sends req on a new connection and reads until the server closes (or 5 s).  Returns what was
 * read; *closed says whether the server closed. */
static void exchange(const char *req, char *out, size_t cap, int *closed)
{
    int fd = connect_from("127.0.0.1", 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    size_t n = 0;
    *closed = 0;
    out[0] = '\0';
    int64_t end = clock_now_ms() + 5000;
    while (n + 1 < cap && clock_now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = recv(fd, out + n, cap - 1 - n, 0);
        if (r <= 0) {
            *closed = 1;
            break;
        }
        n += (size_t)r;
        out[n] = '\0';
    }
    close(fd);
    resplog_raw(req, strlen(req), out, n);
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* A request whose key is not cached yet (checked on a handler thread, the handler run there too)
 * is answered on a connection that stays open: the two pipelined requests below are both
 * answered, with and without "Expect: 100-continue".  Queued during libmicrohttpd's first call,
 * the first answer was an "early" one, sent with Connection: close, and the second request was
 * never read. */
START_TEST(uncached_key_keeps_the_connection)
{
    /* With "Expect: 100-continue" libmicrohttpd answers 100 Continue, then makes an empty body
     * call, the pipelined bytes being there. */
    static const char *const first_extra[] = {"", "Expect: 100-continue\r\n"};
    for (int k = 0; k < 2; k++) {
        char key[128], req[1024], out[16384];
        int closed = 0;
        ck_assert_int_eq(h_create_key(&E, "read", key, sizeof key), 0);
        snprintf(req, sizeof req,
                 "GET /api/v1/users?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "%s\r\nGET /api/v1/users?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                 "%s\r\nConnection: close\r\n\r\n",
                 key, first_extra[k], key);
        exchange(req, out, sizeof out, &closed);
        ck_assert_msg(count_of(out, "HTTP/1.1 200 ") == 2, "answers (%s): %s", first_extra[k], out);
        ck_assert_int_eq(count_of(out, "Connection: close"), 1); /* the second's, as asked */
        ck_assert(closed);
    }
}
END_TEST

START_TEST(ambiguous_framing_is_400_and_closes)
{
    /* The body smuggles a second request; a server that took the first length would answer it. */
    static const char smuggled[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    char req[2048], out[8192];
    int closed;
    struct {
        const char *why, *headers;
    } cases[] = {
        {"conflicting Content-Length", "Content-Length: 0\r\nContent-Length: 33\r\n"},
        {"conflicting Content-Length, longer first", "Content-Length: 33\r\nContent-Length: 0\r\n"},
        {"Content-Length with chunked", "Content-Length: 33\r\nTransfer-Encoding: chunked\r\n"},
        {"chunked with Content-Length", "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n"},
        {"a coding other than chunked", "Transfer-Encoding: gzip\r\n"},
        {"two Transfer-Encoding headers",
         "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"},
    };
    ck_assert_uint_eq(strlen(smuggled), 33);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(req, sizeof req,
                 "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Content-Type: application/json\r\n%s\r\n%s",
                 E.key, cases[i].headers, smuggled);
        exchange(req, out, sizeof out, &closed);
        ck_assert_msg(strncmp(out, "HTTP/1.1 400", 12) == 0, "%s: %.400s", cases[i].why, out);
        ck_assert_msg(strstr(out, "\"code\":\"bad_request\"") != NULL, "%s: %.600s", cases[i].why,
                      out);
        ck_assert_msg(strcasestr(out, "\r\nConnection: close\r\n") != NULL, "%s: %.600s",
                      cases[i].why, out);
        ck_assert_msg(closed, "%s: connection left open", cases[i].why);
        ck_assert_msg(count_of(out, "HTTP/1.1 ") == 1, "%s: the smuggled request was answered: %s",
                      cases[i].why, out);
    }
    /* Repeated identical lengths are one length (RFC 9110 8.6): served, as a single request. */
    static const char user[] = "{\"external_id\":\"framing-dup\"}";
    snprintf(req, sizeof req,
             "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n%s",
             E.key, strlen(user), strlen(user), user);
    exchange(req, out, sizeof out, &closed);
    ck_assert_msg(strncmp(out, "HTTP/1.1 201", 12) == 0, "duplicate equal lengths: %.400s", out);
    /* Nothing was created by the refused requests. */
    char cnt[16];
    ck_assert_int_eq(h_psql(&E, NULL, "SELECT count(*) FROM users", cnt, sizeof cnt), 0);
    ck_assert_str_eq(cnt, "1");
}
END_TEST

/* ---- item 14: exact media types, malformed JSON on predict ----------------------------------- */

START_TEST(content_type_is_exact_and_predict_json_is_strict)
{
    size_t len;
    char *model = fx_read("binary_logistic_named", "model.json", &len);
    ck_assert_ptr_nonnull(model);
    h_resp r;
    /* Upload: a longer type is not the type. */
    static const char *const bad_upload[] = {"application/jsonfoo", "text/plainx",
                                             "application/octet-streamy"};
    for (size_t i = 0; i < sizeof bad_upload / sizeof bad_upload[0]; i++) {
        e2e_req_raw(&E, "POST", "/api/v1/models?name=ct", bad_upload[i], model, len, &r);
        e2e_assert_problem(&r, 415, "unsupported_media_type", NULL);
        h_resp_free(&r);
    }
    /* Parameters (and optional white space before them) are allowed. */
    e2e_req_raw(&E, "POST", "/api/v1/models?name=ct", "application/json ; charset=utf-8", model,
                len, &r);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/models/%s/predict", h_str(&r, "id"));
    h_resp_free(&r);
    free(model);

    size_t rows, cols;
    float *m = fx_matrix("binary_logistic_named", "rows.txt", &rows, &cols);
    ck_assert_ptr_nonnull(m);
    char body[4096];
    size_t o = (size_t)snprintf(body, sizeof body, "{\"rows\":[[");
    for (size_t k = 0; k < cols; k++)
        o += (size_t)snprintf(body + o, sizeof body - o, "%s%.9g", k ? "," : "", (double)m[k]);
    snprintf(body + o, sizeof body - o, "]]}");
    free(m);

    e2e_req_raw(&E, "POST", path, "application/jsonfoo", body, strlen(body), &r);
    e2e_assert_problem(&r, 415, "unsupported_media_type", NULL);
    h_resp_free(&r);
    e2e_req_raw(&E, "POST", path, "application/json; charset=utf-8", body, strlen(body), &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    /* Malformed JSON is malformed_json here as everywhere else; a well-formed body with a wrong
     * shape stays validation_failed. */
    static const char *const malformed[] = {"{\"rows\":[[1,2]", "{\"rows\":[[1,]]}", "", "nope"};
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        e2e_req(&E, "POST", path, malformed[i], &r);
        e2e_assert_problem(&r, 400, "malformed_json", NULL);
        h_resp_free(&r);
    }
    e2e_req(&E, "POST", path, "{\"rows\":7}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "rows");
    h_resp_free(&r);
}
END_TEST

/* ---- item 2: slowloris from one address does not lock out another --------------------------- */

#define SLOW_CONNS 300
#define SLOW_ATTACK_MS 12000
#define SLOW_LINE_MS 3000
#define SLOW_HEADER_TIMEOUT_MS 4000 /* ENV_SLOW */

typedef struct slow_stats {
    int opened, refused, deadline_closed, still_open;
    int64_t max_life_ms; /* longest an accepted attack connection lived */
    int answered;        /* bytes came back on an attack connection (must not: no head ends) */
} slow_stats;

typedef struct slow_conn {
    int fd;
    int64_t opened_ms, next_line_ms;
    int64_t reopen_ms; /* a closed connection is opened again at this time */
    int lines;
} slow_conn;

static void slow_open(slow_conn *c, slow_stats *st)
{
    c->fd = connect_from("127.0.0.1", 1);
    c->opened_ms = clock_now_ms();
    c->next_line_ms = c->opened_ms + SLOW_LINE_MS;
    c->lines = 0;
    c->reopen_ms = c->opened_ms + 1000;
    if (c->fd >= 0) {
        static const char first[] = "POST /api/v1/users HTTP/1.1\r\n";
        if (send(c->fd, first, sizeof first - 1, MSG_NOSIGNAL) < 0) {
            /* refused at once: counted when poll reports it */
        }
        st->opened++;
    }
}

/* The attacker: SLOW_CONNS connections, one header line each every SLOW_LINE_MS; a connection
 * the server closes is counted (refused at once, or closed at the head deadline) and opened
 * again a second later, so the pressure holds for the whole attack. */
static void *slowloris(void *arg)
{
    slow_stats *st = arg;
    static slow_conn c[SLOW_CONNS];
    static struct pollfd p[SLOW_CONNS];
    for (int i = 0; i < SLOW_CONNS; i++)
        slow_open(&c[i], st);
    int64_t end = clock_now_ms() + SLOW_ATTACK_MS;
    while (clock_now_ms() < end) {
        for (int i = 0; i < SLOW_CONNS; i++)
            p[i] = (struct pollfd){.fd = c[i].fd, .events = POLLIN};
        poll(p, SLOW_CONNS, 50);
        int64_t t = clock_now_ms();
        for (int i = 0; i < SLOW_CONNS; i++) {
            if (c[i].fd < 0) {
                if (t >= c[i].reopen_ms)
                    slow_open(&c[i], st);
                continue;
            }
            if (p[i].revents) {
                char buf[512];
                ssize_t n = recv(c[i].fd, buf, sizeof buf, 0);
                if (n > 0) {
                    st->answered++;
                    continue;
                }
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    continue;
                int64_t life = t - c[i].opened_ms;
                if (life < 1000)
                    st->refused++;
                else
                    st->deadline_closed++;
                if (life > st->max_life_ms && life >= 1000)
                    st->max_life_ms = life;
                close(c[i].fd);
                c[i].fd = -1;
                c[i].reopen_ms = t + 1000; /* the attacker tries again a second later */
                continue;
            }
            if (t >= c[i].next_line_ms) {
                char line[64];
                int n = snprintf(line, sizeof line, "X-Slow-%d: x\r\n", c[i].lines++);
                (void)send(c[i].fd, line, (size_t)n, MSG_NOSIGNAL);
                c[i].next_line_ms += SLOW_LINE_MS;
            }
        }
    }
    for (int i = 0; i < SLOW_CONNS; i++)
        if (c[i].fd >= 0) {
            int64_t life = clock_now_ms() - c[i].opened_ms;
            if (life > st->max_life_ms)
                st->max_life_ms = life;
            st->still_open++;
            close(c[i].fd);
        }
    return NULL;
}

/* GET /health from 127.0.0.2 on a new connection; 1 when "200" arrived within timeout_ms. */
static int health_probe(int timeout_ms)
{
    int64_t end = clock_now_ms() + timeout_ms;
    int fd = connect_from("127.0.0.2", 1);
    if (fd < 0)
        return 0;
    static const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    int ok = 0;
    if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1)) {
        char buf[256];
        size_t n = 0;
        while (n < 12 && clock_now_ms() < end) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, (int)(end - clock_now_ms())) <= 0)
                break;
            ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, 0);
            if (r <= 0)
                break;
            n += (size_t)r;
        }
        buf[n] = '\0';
        ok = n >= 12 && strncmp(buf, "HTTP/1.1 200", 12) == 0;
    }
    close(fd);
    return ok;
}

START_TEST(slowloris_does_not_lock_out_another_address)
{
    /* 127.0.0.2 must be usable as a source address (Linux routes all of 127/8 to lo). */
    int fd = connect_from("127.0.0.2", 0);
    ck_assert_msg(fd >= 0, "cannot connect from 127.0.0.2: %s", strerror(errno));
    close(fd);

    static slow_stats st;
    memset(&st, 0, sizeof st);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, slowloris, &st), 0);
    int probes = 0, ok = 0;
    int64_t start = clock_now_ms();
    while (clock_now_ms() - start < SLOW_ATTACK_MS - 500) {
        int64_t t0 = clock_now_ms();
        int good = health_probe(1000);
        probes++;
        ok += good;
        if (!good)
            fprintf(stderr, "  probe %d at +%lld ms: no 200 within 1 s\n", probes,
                    (long long)(t0 - start));
        int64_t wait = 250 - (clock_now_ms() - t0);
        if (wait > 0)
            usleep((useconds_t)wait * 1000);
    }
    pthread_join(th, NULL);
    printf("  slowloris: %d connections opened, %d refused at once, %d closed at the head "
           "deadline (longest %lld ms), %d open at the end; /health from 127.0.0.2: %d/%d\n",
           st.opened, st.refused, st.deadline_closed, (long long)st.max_life_ms, st.still_open, ok,
           probes);
    ck_assert_int_ge(probes, 20);
    ck_assert_int_eq(ok, probes);
    /* Default per-address limit 64: most of the 300 are refused at once ... */
    ck_assert_int_ge(st.refused, SLOW_CONNS - 64);
    /* ... and the accepted ones die at the head deadline, not when the client gives up. */
    ck_assert_int_ge(st.deadline_closed, 64);
    ck_assert_int_le(st.max_life_ms, SLOW_HEADER_TIMEOUT_MS + 1500);
    ck_assert_int_eq(st.answered, 0);
    /* The attacker's address is served again once its connections are gone. */
    h_resp r;
    int rc = -1;
    for (int i = 0; i < 20 && rc != 0; i++) {
        rc = h_http(&E, "GET", "/health", NULL, NULL, NULL, 0, NULL, &r);
        if (rc != 0)
            usleep(100 * 1000);
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
}
END_TEST

/* A keep-alive connection: the second request's head has its own deadline, counted from its
 * request line, and a connection idle between requests is closed after VIGIL_CONN_TIMEOUT_S
 * even when it trickles bytes. */
START_TEST(keepalive_head_has_a_deadline_too)
{
    int fd = connect_from("127.0.0.1", 0);
    ck_assert_int_ge(fd, 0);
    static const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
    char buf[1024];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 5000), 1);
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    ck_assert_int_gt(n, 12);
    ck_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0);
    /* Next request: the request line, then a header line every second, never the end. */
    static const char line[] = "GET /health HTTP/1.1\r\n";
    ck_assert_int_eq(send(fd, line, sizeof line - 1, MSG_NOSIGNAL), (ssize_t)(sizeof line - 1));
    int64_t t0 = clock_now_ms(), closed_at = -1;
    while (clock_now_ms() - t0 < SLOW_HEADER_TIMEOUT_MS + 3000) {
        p = (struct pollfd){.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1000) == 1) {
            n = recv(fd, buf, sizeof buf - 1, 0);
            ck_assert_msg(n <= 0, "answered a head that never ended");
            closed_at = clock_now_ms() - t0;
            break;
        }
        (void)send(fd, "X-Slow: x\r\n", 11, MSG_NOSIGNAL);
    }
    close(fd);
    ck_assert_msg(
        closed_at >= SLOW_HEADER_TIMEOUT_MS - 200 && closed_at <= SLOW_HEADER_TIMEOUT_MS + 1500,
        "closed after %lld ms (head deadline %d ms)", (long long)closed_at, SLOW_HEADER_TIMEOUT_MS);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("harden_http");
    TCase *tc = tcase_create("bodies_and_framing");
    tcase_add_unchecked_fixture(tc, up_default, env_down);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, upload_without_key_is_401_from_the_head);
    tcase_add_test(tc, ambiguous_framing_is_400_and_closes);
    tcase_add_test(tc, content_type_is_exact_and_predict_json_is_strict);
    tcase_add_test(tc, uncached_key_keeps_the_connection);
    suite_add_tcase(s, tc);
    /* Bounded: 12 s of attack plus the environment's start (the issue asks for <= 30 s). */
    TCase *slow = tcase_create("slowloris");
    tcase_add_unchecked_fixture(slow, up_slow, env_down);
    tcase_set_timeout(slow, 60);
    tcase_add_test(slow, slowloris_does_not_lock_out_another_address);
    tcase_add_test(slow, keepalive_head_has_a_deadline_too);
    suite_add_tcase(s, slow);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
