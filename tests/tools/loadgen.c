/* loadgen.c - an open-loop, fixed-rate HTTP/1.1 load generator for the benchmarks (tests/bench/).
 *
 * Request i is due at t0 + i / rate, whatever happened to the requests before it, and its latency
 * is measured from that due time.  When every connection is busy, due requests wait in a FIFO and
 * the wait counts: a stalled server shows up as latency, not as requests that were silently never
 * sent.  (A closed-loop tool such as wrk measures from the actual send, so one stall of S seconds
 * costs it a single slow sample instead of S x rate of them: "coordinated omission".)  The time
 * from the actual send is reported too, as "service time", so the two can be compared.
 *
 * Mechanics: one thread, one epoll loop, N keep-alive connections over plain TCP sockets
 * (TCP_NODELAY), at most one request in flight per connection (no pipelining).  Responses are
 * parsed just enough to find their end: status line, Content-Length, chunked encoding,
 * Connection: close.  `{seq}` (a per-process request counter), `{seq%N}` and `{run}` (unique per
 * process) are substituted in header values and the body, e.g. `Idempotency-Key: b-{run}-{seq}`.
 *
 * Modes:  fixed rate (-r R): R req/s for -d seconds, then waits for the answers (--drain);
 *         closed loop (-r 0): every connection sends again as soon as it is answered (throughput);
 *         --find-max: steps the rate up (x --factor) until p99 exceeds --p99-max-us, the achieved
 *         rate falls under 95% of the target, or more than 1% fail; then bisects --refine times.
 *
 * Bounds: rate x duration <= LG_MAX_REQUESTS per run, --duration <= 600 s, <= 1024 connections,
 * response <= 64 MiB, every request times out (--timeout).  Nothing here asserts on time: it
 * measures and prints.  Output: human lines, then one machine-readable `RESULT k=v ...` line per
 * run (and `MAXRATE k=v ...` in --find-max mode).
 *
 * Costs: O(1) per request plus two 8-byte samples; samples are sorted once per run. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LG_MAX_REQUESTS 5000000L
#define LG_MAX_CONNS 1024
#define LG_MAX_HEADERS 32
#define LG_MAX_RESPONSE (64u << 20)
#define LG_MAX_BODY (256u << 20)
#define LG_EXCERPT 300

/* ---- options -----------------------------------------------------------------------------------
 */

typedef struct opts {
    char host[256];
    char port[16];
    char path[2048];
    const char *method;
    const char *headers[LG_MAX_HEADERS];
    int nheaders;
    const char *body_file;
    double rate;     /* req/s; 0 = closed loop */
    double duration; /* s */
    int conns;
    double timeout_s; /* per request, from its actual send */
    double drain_s;   /* after the last due time */
    double warmup_s;  /* same load, results dropped */
    int find_max;
    double p99_max_us;
    double start_rate, factor, step_s;
    int max_steps, refine, retries;
    int quiet;
    int rt;
} opts;

/* ---- templates: literal text with {seq}, {seq%N}, {run} ----------------------------------------
 */

enum { SEG_LIT, SEG_SEQ, SEG_SEQMOD, SEG_RUN };

typedef struct seg {
    int kind;
    const char *s;
    size_t len;
    unsigned long long mod;
} seg;

typedef struct tmpl {
    seg *v;
    size_t n, cap;
    int dynamic; /* any non-literal segment */
} tmpl;

static char g_run[32]; /* {run}: unique per process */

static int tmpl_push(tmpl *t, seg s)
{
    if (t->n == t->cap) {
        size_t nc = t->cap ? 2 * t->cap : 16;
        seg *nv = realloc(t->v, nc * sizeof *nv);
        if (!nv)
            return -1;
        t->v = nv;
        t->cap = nc;
    }
    t->v[t->n++] = s;
    return 0;
}

/* If p[0..n) starts with a token, describes it in *s and returns its length, else returns 0. */
static size_t tmpl_token(const char *p, size_t n, seg *s)
{
    if (n >= 5 && memcmp(p, "{seq}", 5) == 0) {
        *s = (seg){SEG_SEQ, NULL, 0, 0};
        return 5;
    }
    if (n >= 5 && memcmp(p, "{run}", 5) == 0) {
        *s = (seg){SEG_RUN, NULL, 0, 0};
        return 5;
    }
    if (n >= 7 && memcmp(p, "{seq%", 5) == 0) {
        size_t j = 5;
        unsigned long long m = 0;
        while (j < n && isdigit((unsigned char)p[j]) && m < 1000000000ULL)
            m = m * 10 + (unsigned long long)(p[j++] - '0');
        if (j < n && p[j] == '}' && m > 0) {
            *s = (seg){SEG_SEQMOD, NULL, 0, m};
            return j + 1;
        }
    }
    return 0;
}

/* Appends the segments of text[0..len) to t.  Returns 0, or -1 when out of memory.  The text must
 * outlive t (literal segments point into it). */
static int tmpl_add(tmpl *t, const char *text, size_t len)
{
    size_t lit = 0, i = 0;
    while (i < len) {
        seg s;
        size_t adv = text[i] == '{' ? tmpl_token(text + i, len - i, &s) : 0;
        if (adv == 0) {
            i++;
            continue;
        }
        if (i > lit && tmpl_push(t, (seg){SEG_LIT, text + lit, i - lit, 0}) != 0)
            return -1;
        if (tmpl_push(t, s) != 0)
            return -1;
        t->dynamic = 1;
        i += adv;
        lit = i;
    }
    if (len > lit && tmpl_push(t, (seg){SEG_LIT, text + lit, len - lit, 0}) != 0)
        return -1;
    return 0;
}

/* Length of t rendered for request number seq (digits are counted, not printed). */
static size_t tmpl_len(const tmpl *t, unsigned long long seq)
{
    size_t n = 0;
    char num[32];
    for (size_t i = 0; i < t->n; i++) {
        const seg *s = &t->v[i];
        if (s->kind == SEG_LIT)
            n += s->len;
        else if (s->kind == SEG_RUN)
            n += strlen(g_run);
        else
            n += (size_t)snprintf(num, sizeof num, "%llu", s->kind == SEG_SEQ ? seq : seq % s->mod);
    }
    return n;
}

/* Renders t into p (which has room for tmpl_len bytes); returns the bytes written. */
static size_t tmpl_render(const tmpl *t, unsigned long long seq, char *p)
{
    char *o = p;
    for (size_t i = 0; i < t->n; i++) {
        const seg *s = &t->v[i];
        if (s->kind == SEG_LIT) {
            memcpy(o, s->s, s->len);
            o += s->len;
        } else if (s->kind == SEG_RUN) {
            size_t l = strlen(g_run);
            memcpy(o, g_run, l);
            o += l;
        } else {
            char num[32];
            int l = snprintf(num, sizeof num, "%llu", s->kind == SEG_SEQ ? seq : seq % s->mod);
            memcpy(o, num, (size_t)l);
            o += l;
        }
    }
    return (size_t)(o - p);
}

/* ---- the request --------------------------------------------------------------------------------
 */

typedef struct request_proto {
    char *head_text; /* "METHOD PATH HTTP/1.1\r\nHost: ..\r\n<headers>" (template text) */
    char *body_text;
    size_t body_text_len;
    tmpl head, body;
    int has_body;
    char *fixed; /* the whole request when neither template is dynamic */
    size_t fixed_len;
} request_proto;

/* Builds request number seq into *buf (grown as needed; the caller frees it).  Returns its length,
 * or 0 when out of memory. */
static size_t proto_build(const request_proto *rp, unsigned long long seq, char **buf, size_t *cap)
{
    size_t bl = rp->has_body ? tmpl_len(&rp->body, seq) : 0;
    char cl[64] = "";
    if (rp->has_body)
        snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", bl);
    size_t need = tmpl_len(&rp->head, seq) + strlen(cl) + 2 + bl;
    if (need > *cap) {
        char *nb = realloc(*buf, need);
        if (!nb)
            return 0;
        *buf = nb;
        *cap = need;
    }
    char *p = *buf;
    p += tmpl_render(&rp->head, seq, p);
    memcpy(p, cl, strlen(cl));
    p += strlen(cl);
    memcpy(p, "\r\n", 2);
    p += 2;
    if (rp->has_body)
        p += tmpl_render(&rp->body, seq, p);
    return (size_t)(p - *buf);
}

static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *b = NULL;
    size_t n = 0, cap = 0;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (n + 65536 > cap) {
            cap = cap ? 2 * cap : 1 << 20;
            char *nb = cap <= LG_MAX_BODY + 65536 ? realloc(b, cap) : NULL;
            if (!nb) {
                snprintf(err, errlen, "%s: larger than %u MiB or out of memory", path,
                         LG_MAX_BODY >> 20);
                goto fail;
            }
            b = nb;
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        goto fail;
    }
    fclose(f);
    *out = b;
    *len = n;
    return 0;
fail:
    free(b);
    fclose(f);
    return -1;
}

static void proto_free(request_proto *rp)
{
    free(rp->head_text);
    free(rp->body_text);
    free(rp->head.v);
    free(rp->body.v);
    free(rp->fixed);
    memset(rp, 0, sizeof *rp);
}

/* Builds the request prototype from the options.  Returns 0, or -1 with err filled; either way the
 * caller releases rp with proto_free. */
static int proto_init(request_proto *rp, const opts *o, char *err, size_t errlen)
{
    size_t cap = strlen(o->method) + strlen(o->path) + strlen(o->host) + 64;
    for (int i = 0; i < o->nheaders; i++)
        cap += strlen(o->headers[i]) + 2;
    memset(rp, 0, sizeof *rp);
    if (!(rp->head_text = malloc(cap)))
        goto oom;
    size_t n = (size_t)snprintf(rp->head_text, cap, "%s %s HTTP/1.1\r\nHost: %s:%s\r\n", o->method,
                                o->path, o->host, o->port);
    for (int i = 0; i < o->nheaders; i++)
        n += (size_t)snprintf(rp->head_text + n, cap - n, "%s\r\n", o->headers[i]);
    if (o->body_file) {
        if (read_file(o->body_file, &rp->body_text, &rp->body_text_len, err, errlen) != 0)
            return -1;
        rp->has_body = 1;
    } else if (!strcmp(o->method, "POST") || !strcmp(o->method, "PUT") ||
               !strcmp(o->method, "PATCH")) {
        rp->has_body = 1; /* Content-Length: 0 */
        rp->body_text = strdup("");
    }
    if (tmpl_add(&rp->head, rp->head_text, n) != 0 ||
        (rp->has_body && tmpl_add(&rp->body, rp->body_text, rp->body_text_len) != 0))
        goto oom;
    if (!rp->head.dynamic && !rp->body.dynamic) {
        size_t fc = 0;
        if (!(rp->fixed_len = proto_build(rp, 0, &rp->fixed, &fc)))
            goto oom;
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* ---- connections
 * ---------------------------------------------------------------------------------- */

enum { C_DOWN, C_CONNECTING, C_IDLE, C_SENDING, C_READING };

typedef struct conn {
    int fd, state, idx;
    int64_t due_ns, sent_ns, retry_ns;
    const char *w; /* bytes being written: rp->fixed or own */
    size_t wlen, woff;
    char *own;
    size_t own_cap;
    char *r;
    size_t rlen, rcap;
    /* response parse state */
    size_t hdr_end, scan, chunk_pos;
    long status;
    long long clen;
    int chunked, close_after, until_eof;
} conn;

typedef struct run_result {
    double rate, duration, achieved, elapsed_s;
    long sent, answered, errors, non2xx, unfinished;
    long err_connect, err_timeout, err_io, err_parse;
    long status[600];
    int64_t *lat, *svc; /* ns, one per answered request */
    long nlat, latcap;
    int64_t *late; /* ns, one per due request: when this process noticed it minus when it was due */
    long nlate;
    char first_bad[LG_EXCERPT + 1];
    long first_bad_status;
    int64_t p50, p90, p99, p999, max, svc_p50, svc_p99, late_p50, late_p99;
} run_result;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct addrinfo *g_addr;
static unsigned long long g_seq;

static void conn_close(int ep, conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = C_DOWN;
    c->rlen = 0;
}

/* Starts a non-blocking connect.  On failure the connection stays down and retries later. */
static void conn_open(int ep, conn *c, run_result *res)
{
    int fd = socket(g_addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    c->fd = -1;
    c->state = C_DOWN;
    if (fd < 0)
        goto fail;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, g_addr->ai_addr, g_addr->ai_addrlen) != 0 && errno != EINPROGRESS) {
        close(fd);
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)c->idx};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        goto fail;
    }
    c->fd = fd;
    c->state = C_CONNECTING;
    return;
fail:
    res->err_connect++;
    c->retry_ns = now_ns() + 100000000LL; /* 100 ms */
}

static void conn_watch(int ep, conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)c->idx};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void record(run_result *res, int64_t lat, int64_t svc)
{
    if (res->nlat == res->latcap) {
        long nc = res->latcap ? 2 * res->latcap : 65536;
        int64_t *a = realloc(res->lat, (size_t)nc * sizeof *a);
        if (a)
            res->lat = a;
        int64_t *b = a ? realloc(res->svc, (size_t)nc * sizeof *b) : NULL;
        if (b)
            res->svc = b;
        if (!a || !b)
            return; /* counted as answered, sample dropped: cannot happen within the bounds */
        res->latcap = nc;
    }
    res->lat[res->nlat] = lat;
    res->svc[res->nlat++] = svc;
}

/* Parses what is buffered.  Returns 1 when a whole response is there (c->status set), 0 when more
 * is needed, -1 on a malformed or oversized response. */
static int parse_response(conn *c)
{
    for (;;) {
        if (!c->hdr_end) {
            size_t from = c->scan > 3 ? c->scan - 3 : 0;
            char *e = c->rlen >= 4 ? memmem(c->r + from, c->rlen - from, "\r\n\r\n", 4) : NULL;
            c->scan = c->rlen;
            if (!e)
                return c->rlen > 65536 ? -1 : 0;
            c->hdr_end = (size_t)(e - c->r) + 4;
            if (c->rlen < 12 || memcmp(c->r, "HTTP/1.", 7) != 0)
                return -1;
            c->status = strtol(c->r + 9, NULL, 10);
            if (c->status < 100 || c->status > 599)
                return -1;
            c->clen = -1;
            c->chunked = c->close_after = c->until_eof = 0;
            if (!memcmp(c->r + 5, "1.0", 3))
                c->close_after = 1;
            for (char *l = memchr(c->r, '\n', c->hdr_end) + 1; l < c->r + c->hdr_end - 2;) {
                char *eol = memchr(l, '\n', (size_t)(c->r + c->hdr_end - l));
                if (!eol)
                    break;
                if (!strncasecmp(l, "content-length:", 15))
                    c->clen = strtoll(l + 15, NULL, 10);
                else if (!strncasecmp(l, "transfer-encoding:", 18) &&
                         memmem(l, (size_t)(eol - l), "chunked", 7))
                    c->chunked = 1;
                else if (!strncasecmp(l, "connection:", 11)) {
                    if (memmem(l, (size_t)(eol - l), "close", 5))
                        c->close_after = 1;
                    else if (memmem(l, (size_t)(eol - l), "keep-alive", 10))
                        c->close_after = 0;
                }
                l = eol + 1;
            }
            if (c->status < 200) { /* 1xx: drop it, the real answer follows */
                memmove(c->r, c->r + c->hdr_end, c->rlen - c->hdr_end);
                c->rlen -= c->hdr_end;
                c->hdr_end = c->scan = 0;
                continue;
            }
            if (c->status == 204 || c->status == 304)
                c->clen = 0;
            if (c->chunked)
                c->chunk_pos = c->hdr_end;
            else if (c->clen < 0)
                c->until_eof = 1;
            else if ((unsigned long long)c->clen > LG_MAX_RESPONSE)
                return -1;
        }
        if (c->until_eof)
            return c->rlen > LG_MAX_RESPONSE ? -1 : 0;
        if (!c->chunked)
            return c->rlen >= c->hdr_end + (size_t)c->clen ? 1 : 0;
        /* chunked: walk from the first chunk not yet complete */
        for (;;) {
            char *p = c->r + c->chunk_pos, *end = c->r + c->rlen;
            char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
            if (!eol)
                return 0;
            char *hx;
            unsigned long long sz = strtoull(p, &hx, 16);
            if (hx == p || sz > LG_MAX_RESPONSE)
                return -1;
            if (sz == 0) { /* trailers end with an empty line */
                char *t = eol + 2;
                for (;;) {
                    char *te = memmem(t, (size_t)(end - t), "\r\n", 2);
                    if (!te)
                        return 0;
                    if (te == t)
                        return 1;
                    t = te + 2;
                }
            }
            size_t need = (size_t)(eol + 2 - c->r) + sz + 2;
            if (c->rlen < need)
                return 0;
            c->chunk_pos = need;
        }
    }
}

/* ---- one run ------------------------------------------------------------------------------------
 */

static volatile sig_atomic_t g_stop;
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t pct(const int64_t *v, long n, double p)
{
    if (n == 0)
        return 0;
    long k = (long)ceil(p * (double)n) - 1;
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    return v[k];
}

/* One request finished on c (answered or failed): record it, free the connection. */
static void finish(int ep, conn *c, run_result *res, int answered, int64_t t, int *idle, int *nidle)
{
    if (answered) {
        res->answered++;
        res->status[c->status]++;
        if (c->status < 200 || c->status > 299) {
            res->non2xx++;
            if (!res->first_bad_status) {
                size_t n = c->rlen - c->hdr_end;
                if (n > LG_EXCERPT)
                    n = LG_EXCERPT;
                memcpy(res->first_bad, c->r + c->hdr_end, n);
                res->first_bad[n] = '\0';
                for (char *p = res->first_bad; *p; p++)
                    if (*p == '\n' || *p == '\r')
                        *p = ' ';
                res->first_bad_status = c->status;
            }
        }
        record(res, t - c->due_ns, t - c->sent_ns);
    } else {
        res->errors++;
    }
    int keep = answered && !c->close_after && !c->until_eof;
    size_t used =
        answered && c->hdr_end ? (c->chunked ? c->rlen : c->hdr_end + (size_t)c->clen) : 0;
    if (keep && (used < c->rlen || c->woff < c->wlen))
        keep = 0; /* extra bytes, or answered before we finished sending: start clean */
    c->rlen = 0;
    c->hdr_end = c->scan = 0;
    if (keep) {
        c->state = C_IDLE;
        conn_watch(ep, c, EPOLLIN);
        idle[(*nidle)++] = c->idx;
    } else {
        conn_close(ep, c);
        c->retry_ns = 0; /* reconnect at once */
    }
}

static void start_request(int ep, conn *c, const request_proto *rp, int64_t due, int64_t t,
                          run_result *res)
{
    unsigned long long seq = g_seq++;
    if (rp->fixed) {
        c->w = rp->fixed;
        c->wlen = rp->fixed_len;
    } else {
        c->wlen = proto_build(rp, seq, &c->own, &c->own_cap);
        c->w = c->own;
    }
    c->woff = 0;
    c->due_ns = due;
    c->sent_ns = t;
    c->state = C_SENDING;
    c->rlen = c->hdr_end = c->scan = 0;
    res->sent++;
    conn_watch(ep, c, EPOLLOUT | EPOLLIN);
}

/* Returns 0 on I/O progress or would-block, -1 when the connection failed. */
static int do_write(int ep, conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->w + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (n > 0) {
            c->woff += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        return -1;
    }
    c->state = C_READING;
    conn_watch(ep, c, EPOLLIN);
    return 0;
}

/* Reads what is there.  Returns 1 when a response is complete, 0 when more is needed, -1 on a
 * failure (reset, EOF before the end, malformed), -2 on a malformed response. */
static int do_read(conn *c)
{
    for (;;) {
        if (c->rcap - c->rlen < 65536) {
            size_t nc = c->rcap ? 2 * c->rcap : 262144;
            if (nc > LG_MAX_RESPONSE + 131072)
                return -2;
            char *nr = realloc(c->r, nc);
            if (!nr)
                return -1;
            c->r = nr;
            c->rcap = nc;
        }
        ssize_t n = recv(c->fd, c->r + c->rlen, c->rcap - c->rlen, 0);
        if (n > 0) {
            c->rlen += (size_t)n;
            int p = parse_response(c);
            if (p != 0)
                return p < 0 ? -2 : 1;
            continue;
        }
        if (n == 0) { /* EOF: ends a close-delimited body, anything else failed */
            if (c->hdr_end && c->until_eof) {
                c->close_after = 1;
                return 1;
            }
            return -1;
        }
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        return -1;
    }
}

static void result_free(run_result *r)
{
    free(r->lat);
    free(r->svc);
    free(r->late);
    memset(r, 0, sizeof *r);
}

/* Runs one load of o->rate req/s (0: closed loop) for `duration` seconds over o->conns
 * connections, then waits up to o->drain_s for the answers.  Fills *res (caller frees with
 * result_free).  Returns 0, or -1 when the run could not start (message on stderr). */
static int run_once(const opts *o, const request_proto *rp, double rate, double duration,
                    run_result *res)
{
    int ep = -1, rc = -1, nidle = 0;
    conn *cs = NULL;
    int *idle = NULL;
    memset(res, 0, sizeof *res);
    res->rate = rate;
    res->duration = duration;
    long total = rate > 0 ? (long)llround(rate * duration) : LG_MAX_REQUESTS;
    if (total > LG_MAX_REQUESTS) {
        fprintf(stderr, "loadgen: rate x duration = %ld requests, more than the bound %ld\n", total,
                LG_MAX_REQUESTS);
        return -1;
    }
    if (rate > 0 && !(res->late = malloc((size_t)(total ? total : 1) * sizeof *res->late))) {
        perror("loadgen: setup");
        goto done;
    }
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0 || !(cs = calloc((size_t)o->conns, sizeof *cs)) ||
        !(idle = calloc((size_t)o->conns, sizeof *idle))) {
        perror("loadgen: setup");
        goto done;
    }
    for (int i = 0; i < o->conns; i++) {
        cs[i].idx = i;
        cs[i].fd = -1;
        conn_open(ep, &cs[i], res);
    }
    /* Let the connections come up before the clock starts: connecting is not the server's
     * latency.  Bounded at 2 s; whatever is not up by then joins later. */
    int64_t t_conn_end = now_ns() + 2000000000LL;
    struct epoll_event evs[256];
    for (int up = 0; up < o->conns && now_ns() < t_conn_end && !g_stop;) {
        int n = epoll_wait(ep, evs, 256, 50);
        for (int k = 0; k < n; k++) {
            conn *c = &cs[evs[k].data.u32];
            int e = 0;
            socklen_t el = sizeof e;
            if (c->state != C_CONNECTING)
                continue;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
            if (e) {
                res->err_connect++;
                conn_close(ep, c);
                c->retry_ns = now_ns() + 100000000LL;
                continue;
            }
            c->state = C_IDLE;
            conn_watch(ep, c, EPOLLIN);
            idle[nidle++] = c->idx;
            up++;
        }
        if (n == 0 && res->err_connect >= o->conns)
            break;
    }

    const int64_t t0 = now_ns();
    const double step_ns = rate > 0 ? 1e9 / rate : 0;
    const int64_t t_end = t0 + (int64_t)(duration * 1e9);
    const int64_t t_drain = t_end + (int64_t)(o->drain_s * 1e9);
    const int64_t tmo = (int64_t)(o->timeout_s * 1e9);
    long due_n = 0, assigned = 0, inflight = 0;
    int64_t t_last = t0;
    for (;;) {
        int64_t t = now_ns();
        if (g_stop)
            break;
        /* requests that are due now (open loop) */
        if (rate > 0) {
            for (int64_t d; due_n < total && (d = t0 + (int64_t)((double)due_n * step_ns)) <= t;)
                res->late[res->nlate++] = t - d, due_n++;
            while (assigned < due_n && nidle > 0) {
                conn *c = &cs[idle[--nidle]];
                start_request(ep, c, rp, t0 + (int64_t)((double)assigned * step_ns), t, res);
                assigned++;
                inflight++;
            }
        } else {
            while (t < t_end && nidle > 0 && res->sent < LG_MAX_REQUESTS) {
                conn *c = &cs[idle[--nidle]];
                start_request(ep, c, rp, t, t, res);
                assigned++;
                inflight++;
            }
        }
        int finished_sending = rate > 0 ? assigned == total : t >= t_end;
        if (finished_sending && inflight == 0)
            break;
        if (t >= t_drain)
            break;
        /* timeouts and reconnects; the next wake-up */
        int64_t wake = t_drain;
        if (rate > 0 && due_n < total) {
            int64_t nd = t0 + (int64_t)((double)due_n * step_ns);
            if (nd < wake)
                wake = nd;
        } else if (rate == 0 && t < t_end && t_end < wake) {
            wake = t_end;
        }
        for (int i = 0; i < o->conns; i++) {
            conn *c = &cs[i];
            if ((c->state == C_SENDING || c->state == C_READING)) {
                if (t - c->sent_ns >= tmo) {
                    res->err_timeout++;
                    inflight--;
                    finish(ep, c, res, 0, t, idle, &nidle);
                } else if (c->sent_ns + tmo < wake) {
                    wake = c->sent_ns + tmo;
                }
            }
            if (c->state == C_DOWN) {
                if (c->retry_ns <= t)
                    conn_open(ep, c, res);
                else if (c->retry_ns < wake)
                    wake = c->retry_ns;
            }
        }
        int64_t wait = wake - t;
        if (wait < 0)
            wait = 0;
        struct timespec ts = {(time_t)(wait / 1000000000LL), (long)(wait % 1000000000LL)};
        int n = epoll_pwait2(ep, evs, 256, &ts, NULL);
        if (n < 0 && errno == ENOSYS)
            n = epoll_wait(ep, evs, 256, (int)((wait + 999999) / 1000000));
        if (n < 0 && errno != EINTR) {
            perror("loadgen: epoll");
            goto done;
        }
        for (int k = 0; k < n; k++) {
            conn *c = &cs[evs[k].data.u32];
            uint32_t ev = evs[k].events;
            if (c->fd < 0)
                continue;
            if (c->state == C_CONNECTING) {
                int e = 0;
                socklen_t el = sizeof e;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
                if (e) {
                    res->err_connect++;
                    conn_close(ep, c);
                    c->retry_ns = now_ns() + 100000000LL;
                } else {
                    c->state = C_IDLE;
                    conn_watch(ep, c, EPOLLIN);
                    idle[nidle++] = c->idx;
                }
                continue;
            }
            if (c->state == C_IDLE) { /* the server closed an idle connection (or sent junk) */
                char b[256];
                if (recv(c->fd, b, sizeof b, MSG_DONTWAIT) != -1 || errno != EAGAIN) {
                    for (int j = 0; j < nidle; j++)
                        if (idle[j] == c->idx) {
                            idle[j] = idle[--nidle];
                            break;
                        }
                    conn_close(ep, c);
                    c->retry_ns = 0;
                }
                continue;
            }
            int64_t tn = now_ns();
            int st = 0;
            if (c->state == C_SENDING && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                st = do_write(ep, c);
            if (st == 0 && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                st = do_read(c);
            if (st == 0)
                continue;
            inflight--;
            if (st == 1) {
                finish(ep, c, res, 1, tn, idle, &nidle);
                t_last = tn;
            } else {
                if (st == -2)
                    res->err_parse++;
                else
                    res->err_io++;
                finish(ep, c, res, 0, tn, idle, &nidle);
            }
        }
    }
    res->unfinished = (rate > 0 ? total - assigned : 0) + inflight;
    res->errors += res->unfinished;
    /* Answers per second over the load window, or until the last answer when that came later:
     * an ideal server scores exactly the target rate, a lagging one less. */
    res->elapsed_s = (double)(t_last - t0) / 1e9;
    if (res->elapsed_s < duration)
        res->elapsed_s = duration;
    res->achieved = (double)res->answered / res->elapsed_s;
    if (res->nlat > 0) {
        qsort(res->lat, (size_t)res->nlat, sizeof *res->lat, cmp_i64);
        qsort(res->svc, (size_t)res->nlat, sizeof *res->svc, cmp_i64);
    }
    res->p50 = pct(res->lat, res->nlat, 0.50);
    res->p90 = pct(res->lat, res->nlat, 0.90);
    res->p99 = pct(res->lat, res->nlat, 0.99);
    res->p999 = pct(res->lat, res->nlat, 0.999);
    res->max = res->nlat ? res->lat[res->nlat - 1] : 0;
    res->svc_p50 = pct(res->svc, res->nlat, 0.50);
    res->svc_p99 = pct(res->svc, res->nlat, 0.99);
    if (res->nlate > 0)
        qsort(res->late, (size_t)res->nlate, sizeof *res->late, cmp_i64);
    res->late_p50 = pct(res->late, res->nlate, 0.50);
    res->late_p99 = pct(res->late, res->nlate, 0.99);
    rc = 0;
done:
    if (cs)
        for (int i = 0; i < o->conns; i++) {
            if (cs[i].fd >= 0)
                close(cs[i].fd);
            free(cs[i].own);
            free(cs[i].r);
        }
    free(cs);
    free(idle);
    if (ep >= 0)
        close(ep);
    if (rc != 0)
        result_free(res);
    return rc;
}

static void print_result(const opts *o, const run_result *r, const char *tag)
{
    if (!o->quiet) {
        printf("  %s%s %.0f req/s for %.1f s over %d connections%s\n", tag, o->method, r->rate,
               r->duration, o->conns, r->rate > 0 ? " (open loop)" : " (closed loop)");
        printf("    sent %ld, answered %ld, errors %ld (timeout %ld, io %ld, parse %ld, never "
               "answered %ld), failed connects %ld; achieved %.1f req/s\n",
               r->sent, r->answered, r->errors, r->err_timeout, r->err_io, r->err_parse,
               r->unfinished, r->err_connect, r->achieved);
        printf("    status:");
        for (int s = 0; s < 600; s++)
            if (r->status[s])
                printf(" %d=%ld", s, r->status[s]);
        printf("\n");
        printf(
            "    latency from the scheduled send (us): p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  "
            "max %.0f\n",
            r->p50 / 1e3, r->p90 / 1e3, r->p99 / 1e3, r->p999 / 1e3, r->max / 1e3);
        printf("    service time from the actual send (us): p50 %.0f  p99 %.0f\n", r->svc_p50 / 1e3,
               r->svc_p99 / 1e3);
        if (r->rate > 0)
            printf(
                "    loadgen's own lateness in noticing a due request (us): p50 %.0f  p99 %.0f%s\n",
                r->late_p50 / 1e3, r->late_p99 / 1e3,
                r->nlat && r->late_p99 > r->p99 / 4
                    ? "  (a large share of p99: the machine is short of CPU)"
                    : "");
        if (r->first_bad_status)
            printf("    first non-2xx answer: %ld %s\n", r->first_bad_status, r->first_bad);
    }
    printf("RESULT rate=%.0f duration_s=%.1f conns=%d sent=%ld answered=%ld errors=%ld non2xx=%ld "
           "achieved=%.1f p50_us=%.0f p90_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%.0f "
           "svc_p50_us=%.0f svc_p99_us=%.0f late_p50_us=%.0f late_p99_us=%.0f\n",
           r->rate, r->duration, o->conns, r->sent, r->answered, r->errors, r->non2xx, r->achieved,
           r->p50 / 1e3, r->p90 / 1e3, r->p99 / 1e3, r->p999 / 1e3, r->max / 1e3, r->svc_p50 / 1e3,
           r->svc_p99 / 1e3, r->late_p50 / 1e3, r->late_p99 / 1e3);
    fflush(stdout);
}

/* A step passes when p99 is within the bound, at least 95% of the target rate was achieved and at
 * most 1% of the requests failed or were answered with a non-2xx status. */
static int step_ok(const opts *o, const run_result *r)
{
    long bad = r->errors + r->non2xx;
    return r->answered > 0 && (double)r->p99 / 1e3 <= o->p99_max_us &&
           r->achieved >= 0.95 * r->rate && (double)bad <= 0.01 * (double)(r->sent + r->unfinished);
}

/* Runs one find-max step at `rate`, again up to o->retries times while it fails (one stall of a
 * shared machine should not end the search).  Prints a line per attempt.  Returns 1 when a run
 * passed (*r holds it), 0 when all failed (*r holds the last), -1 when a run could not start. */
static int find_step(const opts *o, const request_proto *rp, double rate, int *steps, run_result *r)
{
    for (int attempt = 0;; attempt++) {
        if (run_once(o, rp, rate, o->step_s, r) != 0)
            return -1;
        (*steps)++;
        int ok = step_ok(o, r);
        printf(
            "    step %2d  target %7.0f  achieved %8.1f  p50 %7.0f us  p99 %8.0f us  failed %ld  "
            "-> %s\n",
            *steps, rate, r->achieved, r->p50 / 1e3, r->p99 / 1e3, r->errors + r->non2xx,
            ok                     ? "ok"
            : attempt < o->retries ? "over, once more"
                                   : "over");
        fflush(stdout);
        if (ok || attempt >= o->retries)
            return ok;
        result_free(r);
        sleep(2); /* let the server finish the backlog of the overloaded run */
    }
}

static int find_max(const opts *o, const request_proto *rp)
{
    double rate = o->start_rate, pass = 0, fail = 0;
    run_result r, best = {0};
    int steps = 0;
    printf("  max sustained rate: step x%.2f from %.0f req/s, %.1f s per step, pass = p99 <= %.0f "
           "us, achieved >= 95%% of target, <= 1%% failed (a failing step runs %d more time%s)\n",
           o->factor, rate, o->step_s, o->p99_max_us, o->retries, o->retries == 1 ? "" : "s");
    for (int up = 0; up < o->max_steps && !g_stop; up++) {
        int ok = find_step(o, rp, rate, &steps, &r);
        if (ok < 0) {
            result_free(&best);
            return 1;
        }
        if (ok) {
            pass = rate;
            result_free(&best);
            best = r; /* best takes the samples over */
            r.lat = r.svc = r.late = NULL;
        }
        result_free(&r);
        if (!ok) {
            fail = rate;
            break;
        }
        rate *= o->factor;
    }
    for (int i = 0; i < o->refine && fail > 0 && pass > 0 && !g_stop; i++) {
        sleep(2); /* let the server finish the backlog of the overloaded run */
        rate = floor((pass + fail) / 2);
        if (rate <= pass || rate >= fail)
            break;
        int ok = find_step(o, rp, rate, &steps, &r);
        if (ok < 0) {
            result_free(&best);
            return 1;
        }
        if (ok) {
            pass = rate;
            result_free(&best);
            best = r; /* best takes the samples over */
            r.lat = r.svc = r.late = NULL;
        } else {
            fail = rate;
        }
        result_free(&r);
    }
    printf("MAXRATE rate=%.0f p50_us=%.0f p99_us=%.0f achieved=%.1f first_over=%.0f "
           "p99_bound_us=%.0f%s\n",
           pass, best.p50 / 1e3, best.p99 / 1e3, best.achieved, fail, o->p99_max_us,
           fail == 0 ? " (never over: raise --max-steps)" : "");
    result_free(&best);
    return 0;
}

/* ---- main ---------------------------------------------------------------------------------------
 */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: loadgen [options] URL        URL = http://HOST:PORT/PATH or HOST:PORT\n"
        "  -m, --method M          HTTP method (GET; POST when -b is given)\n"
        "  -p, --path P            request path (overrides the URL's)\n"
        "  -H, --header 'K: V'     extra header, repeatable (up to 32)\n"
        "  -b, --body FILE         request body (Content-Length is added)\n"
        "  -r, --rate R            requests per second, open loop (default 100); 0 = closed loop\n"
        "  -d, --duration S        seconds of load (default 10, at most 600)\n"
        "  -c, --connections N     keep-alive connections (default 8, at most 1024)\n"
        "      --timeout S         per-request timeout from its send (default 10)\n"
        "      --drain S           wait for answers after the last send (default = --timeout)\n"
        "      --warmup S          the same load for S seconds first, not counted (default 0)\n"
        "      --find-max          step the rate up until a step fails (see below)\n"
        "      --p99-max-us U      find-max: p99 bound in microseconds (default 10000)\n"
        "      --start R           find-max: first rate (default 100)\n"
        "      --factor F          find-max: rate multiplier per step (default 1.5)\n"
        "      --step-duration S   find-max: seconds per step (default 3)\n"
        "      --max-steps N       find-max: at most N stepping runs (default 12)\n"
        "      --refine N          find-max: bisection runs after the first failure (default 2)\n"
        "      --retries N         find-max: run a failing step again up to N times (default 1)\n"
        "      --rt                run under SCHED_FIFO when permitted, so that on a busy machine\n"
        "                          this process wakes on time (it sleeps in epoll, never spins)\n"
        "  -q, --quiet             only the RESULT / MAXRATE lines\n"
        "In header values and the body, {seq} is a per-request counter, {seq%%N} that counter\n"
        "modulo N, {run} a token unique to this process (e.g. 'Idempotency-Key: "
        "k-{run}-{seq}').\n");
}

static int parse_url(const char *u, opts *o)
{
    if (!strncmp(u, "http://", 7))
        u += 7;
    else if (strstr(u, "://"))
        return -1; /* https and friends: not supported */
    const char *slash = strchr(u, '/');
    size_t hl = slash ? (size_t)(slash - u) : strlen(u);
    char hp[sizeof o->host];
    if (hl == 0 || hl >= sizeof hp)
        return -1;
    memcpy(hp, u, hl);
    hp[hl] = '\0';
    char *colon = strrchr(hp, ':');
    if (colon) {
        *colon = '\0';
        snprintf(o->port, sizeof o->port, "%s", colon + 1);
    } else {
        snprintf(o->port, sizeof o->port, "80");
    }
    snprintf(o->host, sizeof o->host, "%s", hp);
    if (slash && !o->path[0])
        snprintf(o->path, sizeof o->path, "%s", slash);
    return 0;
}

static int num_arg(const char *s, double lo, double hi, double *out)
{
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno || e == s || *e || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    opts o = {.method = NULL,
              .rate = 100,
              .duration = 10,
              .conns = 8,
              .timeout_s = 10,
              .drain_s = -1,
              .p99_max_us = 10000,
              .start_rate = 100,
              .factor = 1.5,
              .step_s = 3,
              .max_steps = 12,
              .refine = 2,
              .retries = 1};
    enum {
        O_TIMEOUT = 256,
        O_DRAIN,
        O_WARMUP,
        O_FIND,
        O_P99,
        O_START,
        O_FACTOR,
        O_STEP,
        O_STEPS,
        O_REFINE,
        O_RT,
        O_RETRIES
    };
    static const struct option lo[] = {{"method", 1, 0, 'm'},
                                       {"path", 1, 0, 'p'},
                                       {"header", 1, 0, 'H'},
                                       {"body", 1, 0, 'b'},
                                       {"rate", 1, 0, 'r'},
                                       {"duration", 1, 0, 'd'},
                                       {"connections", 1, 0, 'c'},
                                       {"quiet", 0, 0, 'q'},
                                       {"help", 0, 0, 'h'},
                                       {"timeout", 1, 0, O_TIMEOUT},
                                       {"drain", 1, 0, O_DRAIN},
                                       {"warmup", 1, 0, O_WARMUP},
                                       {"find-max", 0, 0, O_FIND},
                                       {"p99-max-us", 1, 0, O_P99},
                                       {"start", 1, 0, O_START},
                                       {"factor", 1, 0, O_FACTOR},
                                       {"step-duration", 1, 0, O_STEP},
                                       {"max-steps", 1, 0, O_STEPS},
                                       {"refine", 1, 0, O_REFINE},
                                       {"rt", 0, 0, O_RT},
                                       {"retries", 1, 0, O_RETRIES},
                                       {0, 0, 0, 0}};
    int ch;
    double v;
    while ((ch = getopt_long(argc, argv, "m:p:H:b:r:d:c:qh", lo, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'm':
            o.method = optarg;
            break;
        case 'p':
            snprintf(o.path, sizeof o.path, "%s", optarg);
            break;
        case 'H':
            if (o.nheaders == LG_MAX_HEADERS || !strchr(optarg, ':') || strpbrk(optarg, "\r\n"))
                bad = 1;
            else
                o.headers[o.nheaders++] = optarg;
            break;
        case 'b':
            o.body_file = optarg;
            break;
        case 'r':
            bad = num_arg(optarg, 0, 1e6, &o.rate);
            break;
        case 'd':
            bad = num_arg(optarg, 0.1, 600, &o.duration);
            break;
        case 'c':
            bad = num_arg(optarg, 1, LG_MAX_CONNS, &v);
            o.conns = (int)v;
            break;
        case 'q':
            o.quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case O_TIMEOUT:
            bad = num_arg(optarg, 0.001, 600, &o.timeout_s);
            break;
        case O_DRAIN:
            bad = num_arg(optarg, 0, 600, &o.drain_s);
            break;
        case O_WARMUP:
            bad = num_arg(optarg, 0, 600, &o.warmup_s);
            break;
        case O_FIND:
            o.find_max = 1;
            break;
        case O_RT:
            o.rt = 1;
            break;
        case O_RETRIES:
            bad = num_arg(optarg, 0, 5, &v);
            o.retries = (int)v;
            break;
        case O_P99:
            bad = num_arg(optarg, 1, 1e9, &o.p99_max_us);
            break;
        case O_START:
            bad = num_arg(optarg, 1, 1e6, &o.start_rate);
            break;
        case O_FACTOR:
            bad = num_arg(optarg, 1.01, 10, &o.factor);
            break;
        case O_STEP:
            bad = num_arg(optarg, 0.1, 600, &o.step_s);
            break;
        case O_STEPS:
            bad = num_arg(optarg, 1, 100, &v);
            o.max_steps = (int)v;
            break;
        case O_REFINE:
            bad = num_arg(optarg, 0, 20, &v);
            o.refine = (int)v;
            break;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "loadgen: bad value for -%c / --%s: '%s'\n", ch < 256 ? ch : '-',
                    ch < 256 ? "" : "option", optarg);
            return 2;
        }
    }
    if (optind != argc - 1 || parse_url(argv[optind], &o) != 0) {
        usage(stderr);
        return 2;
    }
    if (!o.path[0])
        snprintf(o.path, sizeof o.path, "/");
    if (!o.method)
        o.method = o.body_file ? "POST" : "GET";
    if (o.drain_s < 0)
        o.drain_s = o.timeout_s;
    if (o.find_max && o.start_rate <= 0)
        o.start_rate = 100;

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int gai = getaddrinfo(o.host, o.port, &hints, &g_addr);
    if (gai != 0) {
        fprintf(stderr, "loadgen: %s:%s: %s\n", o.host, o.port, gai_strerror(gai));
        return 2;
    }
    char err[512];
    request_proto rp;
    int rc = 0;
    run_result r;
    if (proto_init(&rp, &o, err, sizeof err) != 0) {
        fprintf(stderr, "loadgen: %s\n", err);
        rc = 2;
        goto done;
    }
    snprintf(g_run, sizeof g_run, "%x%llx", (unsigned)getpid(),
             (unsigned long long)now_ns() & 0xffffffffULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* wake-ups on time, not up to 50 us late */
    if (o.rt) {
        struct sched_param sp = {.sched_priority = 1};
        int ok = sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
        if (!o.quiet)
            printf("  scheduling: %s\n",
                   ok ? "SCHED_FIFO priority 1" : "SCHED_OTHER (SCHED_FIFO not permitted)");
    }

    if (o.warmup_s > 0) {
        double wr = o.find_max ? o.start_rate : o.rate;
        if (run_once(&o, &rp, wr, o.warmup_s, &r) != 0) {
            rc = 1;
            goto done;
        }
        if (!o.quiet)
            printf("  warm-up: %ld answered, %ld errors, p99 %.0f us (not counted)\n", r.answered,
                   r.errors, r.p99 / 1e3);
        result_free(&r);
    }
    if (o.find_max) {
        rc = find_max(&o, &rp);
    } else {
        if (run_once(&o, &rp, o.rate, o.duration, &r) != 0) {
            rc = 1;
            goto done;
        }
        print_result(&o, &r, "");
        result_free(&r);
    }
done:
    proto_free(&rp);
    freeaddrinfo(g_addr);
    return rc;
}
