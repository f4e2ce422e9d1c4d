/* fuzz_http.c - libFuzzer harness for the HTTP request path: the input is the raw byte stream a
 * client sends (request line, headers, body, possibly several pipelined requests), written on a
 * real TCP connection to an in-process server (http_start with a route table of this file's own,
 * as tests/unit/test_http.c does), so it goes through libmicrohttpd's parser and every callback
 * of api/http.c: the connection tracker, framing checks, the key check on the head, body limits,
 * dispatch, problem+json answers, the request log.
 *
 * Oracles besides ASan/UBSan (api/http.c and the modules it calls are instrumented;
 * libmicrohttpd is the system's, uninstrumented):
 *   - the key check never sees a body (it runs on the head alone);
 *   - a handler's body is NUL-terminated and within the route's limit;
 *   - the server closes the connection once the client's write side is shut (no hang: 5 s);
 *   - every answer starts with an HTTP/1.x status line, and every problem+json body the server
 *     writes is strict JSON;
 *   - an ambiguous framing (two different Content-Length values, or Content-Length with
 *     Transfer-Encoding) in the first request's head is never answered with 2xx.
 * The server logs a line per request: run with -close_fd_mask=2 (tests/fuzz/http.args) so the
 * log goes to /dev/null while libFuzzer's and the sanitizers' reports still reach the log. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "http.h"
#include "json.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_BODY_MAX 1024 /* JSON resources' limit here: small, so 413 paths are reached */

static cfg g_cfg;
static app g_app;
static http_server *g_srv;

static void fail(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_http: %s (input %zu bytes)\n", what, size);
    (void)data;
    abort();
}

/* Handlers: what they are handed must keep http.h's promises. */
static void check_body(const http_req *q, size_t limit)
{
    if (!q->body || q->body[q->body_len] != '\0' || q->body_len > limit) {
        fprintf(stderr, "fuzz_http: handler body broken (len %zu, limit %zu)\n", q->body_len,
                limit);
        abort();
    }
}

static void h_ping(http_req *q, http_resp *r)
{
    check_body(q, g_cfg.max_body_bytes);
    http_raw(r, 200, "text/plain", NULL, 0);
}

static void h_echo(http_req *q, http_resp *r)
{
    check_body(q, g_cfg.max_body_bytes);
    struct cJSON *o = NULL;
    if (http_body_object(q, r, &o) != 0)
        return;
    http_json(r, 200, o);
}

static void h_model(http_req *q, http_resp *r)
{
    check_body(q, g_cfg.max_model_bytes);
    if (!http_media_type_is(http_header(q, "Content-Type"), "text/plain"))
        http_problem(r, 415, "unsupported_media_type", NULL, "text/plain only");
    else
        http_raw(r, 201, NULL, NULL, 0);
}

static atomic_int g_auth_saw_body;

/* "Bearer w": read+write, "Bearer a": everything, anything else 401. */
static int fake_auth(http_req *q, http_resp *r, unsigned scope)
{
    if (q->body || q->body_len)
        atomic_store(&g_auth_saw_body, 1);
    const char *h = http_header(q, "Authorization");
    unsigned have = !h                           ? 0
                    : strcmp(h, "Bearer w") == 0 ? (SCOPE_READ | SCOPE_WRITE)
                    : strcmp(h, "Bearer a") == 0 ? (SCOPE_READ | SCOPE_WRITE | SCOPE_ADMIN)
                                                 : 0;
    if (!have) {
        http_problem(r, 401, "unauthorized", NULL, "no key");
        return -1;
    }
    if ((have & scope) != scope) {
        http_problem(r, 403, "forbidden", NULL, "scope");
        return -1;
    }
    return 0;
}

static const route g_routes[] = {
    {"GET", "/ping/{x}", h_ping, SCOPE_NONE, BODY_NONE, 0},
    {"POST", "/echo", h_echo, SCOPE_WRITE, BODY_JSON, 0},
    {"PATCH", "/echo/{id}", h_echo, SCOPE_READ, BODY_JSON, 0},
    {"POST", "/models", h_model, SCOPE_ADMIN, BODY_MODEL, 0},
};

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        abort();
    close(fd);
    return ntohs(sa.sin_port);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256];
    if (cfg_load(&g_cfg, 0, err, sizeof err) != 0)
        abort();
    g_cfg.http_port = free_port();
    g_cfg.max_body_bytes = FUZZ_BODY_MAX;
    g_cfg.max_model_bytes = 2 * FUZZ_BODY_MAX;
    g_cfg.max_predict_bytes = FUZZ_BODY_MAX;
    g_cfg.header_timeout_s = 5;
    g_cfg.conn_timeout_s = 5;
    g_cfg.max_conns_per_ip = 0; /* one connection at a time anyway */
    g_app.cfg = &g_cfg;
    http_setup setup = {g_routes, sizeof g_routes / sizeof g_routes[0], fake_auth, NULL};
    g_srv = http_start(&g_app, &setup, err, sizeof err);
    if (!g_srv) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        abort();
    }
    return 0;
}

/* First-request framing as the client wrote it: 1 when its head has two different
 * Content-Length values or Content-Length together with Transfer-Encoding. */
static int ambiguous_head(const char *in, size_t n)
{
    const char *end = memmem(in, n, "\r\n\r\n", 4);
    if (!end)
        return 0;
    /* libmicrohttpd also ends lines at a bare LF: then the head is not what this reads. */
    for (const char *c = in; c < end; c++)
        if (*c == '\n' && (c == in || c[-1] != '\r'))
            return 0;
    const char *cl = NULL;
    size_t cl_len = 0;
    int te = 0, conflict = 0;
    const char *line = memmem(in, (size_t)(end - in), "\r\n", 2);
    while (line && line < end) {
        line += 2;
        const char *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        if (!eol)
            break;
        size_t ll = (size_t)(eol - line);
        if (ll > 15 && strncasecmp(line, "Content-Length:", 15) == 0) {
            const char *v = line + 15;
            size_t vl = ll - 15;
            while (vl && (*v == ' ' || *v == '\t'))
                v++, vl--;
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (cl && (vl != cl_len || memcmp(v, cl, vl) != 0))
                conflict = 1;
            cl = v;
            cl_len = vl;
        } else if (ll >= 18 && strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
            te = 1;
        }
        line = eol;
    }
    return conflict || (cl && te);
}

/* Checks one answer stream: status lines, and problem+json bodies strict JSON. */
static void check_answers(const char *out, size_t n, int ambiguous, const uint8_t *data,
                          size_t size)
{
    if (n == 0)
        return; /* closed without an answer: an incomplete or unparsable head */
    if (n < 12 || strncmp(out, "HTTP/1.", 7) != 0)
        fail("answer does not start with a status line", data, size);
    if (ambiguous && out[9] == '2')
        fail("ambiguous framing answered 2xx", data, size);
    for (const char *p = out; (p = strstr(p, "application/problem+json")) != NULL;) {
        const char *hdr_end = strstr(p, "\r\n\r\n");
        const char *cl = NULL;
        for (const char *h = p; h && h < (hdr_end ? hdr_end : out + n); h = strstr(h + 1, "\r\n"))
            if (strncasecmp(h, "\r\nContent-Length:", 17) == 0)
                cl = h + 17;
        if (!hdr_end || !cl)
            break; /* a truncated tail: the connection was cut mid-answer */
        size_t blen = (size_t)strtoul(cl, NULL, 10);
        const char *body = hdr_end + 4;
        if ((size_t)(out + n - body) < blen)
            break;
        char err[128];
        if (json_validate(body, blen, err, sizeof err) != 0)
            fail("problem+json body is not strict JSON", data, size);
        p = body + blen;
    }
}

/* A connection to the server.  Connecting can fail for reasons of the machine, not of the
 * server (the loopback's ephemeral ports are shared with every other test running): retried for
 * up to 5 s, then the harness gives up with errno (not a finding). */
static int client_connect(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)g_cfg.http_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    static unsigned next_src;
    for (int attempt = 0; attempt < 500; attempt++) {
        /* Source addresses rotate over 127.1.0.0/16: each has its own ephemeral ports, so the
         * TIME_WAIT tuples of earlier inputs never run the loopback out of them. */
        unsigned k = next_src++ % 65536;
        struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f010000u | k)};
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd >= 0 && bind(fd, (struct sockaddr *)&src, sizeof src) == 0 &&
            connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            return fd;
        int e = errno;
        if (fd >= 0)
            close(fd);
        if (attempt == 499) {
            fprintf(stderr, "fuzz_http: cannot connect to the server: %s\n", strerror(e));
            abort();
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = client_connect();
    /* The whole input, then end-of-stream: the server must answer what is complete and close. */
    for (size_t off = 0; off < size;) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* answered and closed early */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    static char out[1 << 16], spill[1 << 12];
    size_t n = 0;
    int whole = 1; /* out holds the whole answer stream */
    int64_t end = clock_now_ms() + 5000;
    for (;;) {
        int64_t left = end - clock_now_ms();
        if (left <= 0)
            fail("server did not close the connection within 5 s of end-of-stream", data, size);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        int full = n == sizeof out - 1; /* a long pipeline: drain the rest unchecked */
        ssize_t r =
            full ? recv(fd, spill, sizeof spill, 0) : recv(fd, out + n, sizeof out - 1 - n, 0);
        if (r <= 0)
            break;
        if (full)
            whole = 0;
        else
            n += (size_t)r;
    }
    out[n] = '\0';
    close(fd);
    if (atomic_load(&g_auth_saw_body))
        fail("the key check was handed a body", data, size);
    if (whole)
        check_answers(out, n, ambiguous_head((const char *)data, size), data, size);
    return 0;
}
