/* wire.c - frame header codec, bounded payload cursors and full-frame socket I/O.
 * See wire.h for the layout.  No allocation; every function is safe to call from any thread on
 * objects that thread owns. */
#include "wire.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void st16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)wire_le32(p) | (uint64_t)wire_le32(p + 4) << 32;
}

static void st64(uint8_t *p, uint64_t v)
{
    wire_st32(p, (uint32_t)v);
    wire_st32(p + 4, (uint32_t)(v >> 32));
}

void wire_header_encode(uint8_t *out, const wire_header *h)
{
    wire_st32(out, h->magic);
    st16(out + 4, h->version);
    st16(out + 6, h->op);
    st16(out + 8, h->flags);
    st16(out + 10, h->status);
    wire_st32(out + 12, h->payload_len);
    st64(out + 16, h->request_id);
}

int wire_header_decode(const uint8_t *in, uint32_t max_payload, wire_header *h)
{
    h->magic = wire_le32(in);
    h->version = le16(in + 4);
    h->op = le16(in + 6);
    h->flags = le16(in + 8);
    h->status = le16(in + 10);
    h->payload_len = wire_le32(in + 12);
    h->request_id = le64(in + 16);
    if (h->magic != WIRE_MAGIC)
        return WIRE_E_BAD_FRAME;
    if (h->version != WIRE_VERSION)
        return WIRE_E_BAD_VERSION;
    if (h->payload_len > max_payload)
        return WIRE_E_TOO_LARGE;
    /* Only a request must name a known op.  A response may carry op 0 or an op the receiver does
     * not know: the worker answers WIRE_E_BUSY, a truncated or garbled header, or an unknown op
     * with such frames, and the client must still be able to read their status. */
    if (!(h->flags & WIRE_F_RESPONSE) && (h->op == 0 || h->op >= WIRE_OP_MAX))
        return WIRE_E_UNKNOWN_OP;
    return WIRE_OK;
}

const char *wire_status_name(int status)
{
    static const char *const names[WIRE_STATUS_MAX] = {
        "ok",          "bad_frame",     "bad_version", "unknown_op", "too_large",
        "bad_payload", "unknown_model", "no_memory",   "busy",       "internal",
    };
    if (status < 0 || status >= WIRE_STATUS_MAX)
        return "invalid_status";
    return names[status];
}

const char *wire_op_name(int op)
{
    switch (op) {
    case WIRE_OP_HELLO:
        return "hello";
    case WIRE_OP_PING:
        return "ping";
    case WIRE_OP_LOAD_MODEL:
        return "load_model";
    case WIRE_OP_SCORE:
        return "score";
    case WIRE_OP_STATS:
        return "stats";
    case WIRE_OP_EXPLAIN:
        return "explain";
    default:
        return "unknown";
    }
}

int64_t wire_now_ms(void)
{
    return clock_now_ms();
}

/* Waits until fd is ready for events: until the deadline (WIRE_IO_TIMEOUT once it has passed) or,
 * with deadline_ms < 0, for as long as it takes (only reached for an O_NONBLOCK fd, whose EAGAIN
 * must wait in poll rather than spin).  Returns WIRE_IO_OK, _TIMEOUT or _ERR. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        int timeout = -1;
        if (deadline_ms >= 0) {
            int64_t left = deadline_ms - wire_now_ms();
            if (left <= 0)
                return WIRE_IO_TIMEOUT;
            timeout = left > 60000 ? 60000 : (int)left;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, timeout);
        if (rc > 0)
            return WIRE_IO_OK; /* readable, writable, or HUP/ERR: the syscall will tell */
        if (rc < 0 && errno != EINTR)
            return WIRE_IO_ERR;
    }
}

/* Both loops try the syscall first and wait only when it would block: bytes already there are
 * taken even if the deadline has just passed, and the common case costs no poll() at all.  With a
 * deadline the syscall never blocks (MSG_DONTWAIT); without one it blocks on a blocking fd. */
int wire_read_full(int fd, void *buf, size_t n, int64_t deadline_ms)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, p + got, n - got, deadline_ms < 0 ? 0 : MSG_DONTWAIT);
        if (r > 0) {
            got += (size_t)r;
        } else if (r == 0) {
            if (got == 0)
                return WIRE_IO_EOF;
            errno = ECONNRESET;
            return WIRE_IO_ERR;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = wait_fd(fd, POLLIN, deadline_ms);
            if (w != WIRE_IO_OK)
                return w;
        } else if (errno != EINTR) {
            return WIRE_IO_ERR;
        }
    }
    return WIRE_IO_OK;
}

int wire_write_full(int fd, const void *buf, size_t n, int64_t deadline_ms)
{
    const uint8_t *p = buf;
    size_t put = 0;
    while (put < n) {
        ssize_t r = send(fd, p + put, n - put, MSG_NOSIGNAL | (deadline_ms < 0 ? 0 : MSG_DONTWAIT));
        if (r > 0) {
            put += (size_t)r;
        } else if (r == 0) {
            errno = EIO; /* no progress on a non-empty send: do not loop forever */
            return WIRE_IO_ERR;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = wait_fd(fd, POLLOUT, deadline_ms);
            if (w != WIRE_IO_OK)
                return w;
        } else if (errno != EINTR) {
            return WIRE_IO_ERR;
        }
    }
    return WIRE_IO_OK;
}

int wire_send_frame(int fd, const wire_header *h, const void *payload, int64_t deadline_ms)
{
    uint8_t hdr[WIRE_HEADER_SIZE];
    wire_header_encode(hdr, h);
    int rc = wire_write_full(fd, hdr, sizeof hdr, deadline_ms);
    if (rc == WIRE_IO_OK && h->payload_len > 0)
        rc = wire_write_full(fd, payload, h->payload_len, deadline_ms);
    return rc;
}

/* ---- payload cursors ------------------------------------------------------------------------ */

void wire_writer_init(wire_writer *w, void *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->err = 0;
}

uint8_t *wire_put_reserve(wire_writer *w, size_t n)
{
    if (w->err || n > w->cap - w->len) {
        w->err = 1;
        return NULL;
    }
    uint8_t *p = w->buf + w->len;
    w->len += n;
    return p;
}

void wire_put_u8(wire_writer *w, uint8_t v)
{
    uint8_t *p = wire_put_reserve(w, 1);
    if (p)
        *p = v;
}

void wire_put_u16(wire_writer *w, uint16_t v)
{
    uint8_t *p = wire_put_reserve(w, 2);
    if (p)
        st16(p, v);
}

void wire_put_u32(wire_writer *w, uint32_t v)
{
    uint8_t *p = wire_put_reserve(w, 4);
    if (p)
        wire_st32(p, v);
}

void wire_put_u64(wire_writer *w, uint64_t v)
{
    uint8_t *p = wire_put_reserve(w, 8);
    if (p)
        st64(p, v);
}

void wire_put_f32(wire_writer *w, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    wire_put_u32(w, u);
}

void wire_put_bytes(wire_writer *w, const void *src, size_t n)
{
    uint8_t *p = wire_put_reserve(w, n);
    if (p && n)
        memcpy(p, src, n);
}

void wire_put_str(wire_writer *w, const char *s)
{
    size_t n = strlen(s);
    if (n > 0xFFFF) {
        w->err = 1;
        return;
    }
    wire_put_u16(w, (uint16_t)n);
    wire_put_bytes(w, s, n);
}

void wire_reader_init(wire_reader *r, const void *buf, size_t len)
{
    r->buf = buf;
    r->len = len;
    r->off = 0;
    r->err = 0;
}

const uint8_t *wire_get_bytes(wire_reader *r, size_t n)
{
    if (r->err || n > r->len - r->off) {
        r->err = 1;
        return NULL;
    }
    const uint8_t *p = r->buf + r->off;
    r->off += n;
    return p;
}

uint8_t wire_get_u8(wire_reader *r)
{
    const uint8_t *p = wire_get_bytes(r, 1);
    return p ? *p : 0;
}

uint16_t wire_get_u16(wire_reader *r)
{
    const uint8_t *p = wire_get_bytes(r, 2);
    return p ? le16(p) : 0;
}

uint32_t wire_get_u32(wire_reader *r)
{
    const uint8_t *p = wire_get_bytes(r, 4);
    return p ? wire_le32(p) : 0;
}

uint64_t wire_get_u64(wire_reader *r)
{
    const uint8_t *p = wire_get_bytes(r, 8);
    return p ? le64(p) : 0;
}

float wire_get_f32(wire_reader *r)
{
    uint32_t u = wire_get_u32(r);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void wire_get_str(wire_reader *r, char *out, size_t outcap)
{
    uint16_t n = wire_get_u16(r);
    const uint8_t *p = wire_get_bytes(r, n);
    if (!p || outcap == 0 || n >= outcap) {
        r->err = 1;
        if (outcap)
            out[0] = '\0';
        return;
    }
    memcpy(out, p, n);
    out[n] = '\0';
}

size_t wire_remaining(const wire_reader *r)
{
    return r->len - r->off;
}

/* ---- trace blocks (WIRE_F_TRACE) --------------------------------------------------------------
 */

void wire_trace_ctx_encode(uint8_t *out, const wire_trace_ctx *t)
{
    memcpy(out, t->trace_id, 16);
    memcpy(out + 16, t->span_id, 8);
    out[24] = t->flags;
    memset(out + 25, 0, WIRE_TRACE_CTX_SIZE - 25);
}

void wire_trace_ctx_decode(const uint8_t *in, wire_trace_ctx *t)
{
    memcpy(t->trace_id, in, 16);
    memcpy(t->span_id, in + 16, 8);
    t->flags = in[24];
}

void wire_trace_timing_encode(uint8_t *out, uint64_t queue_ns, uint64_t compute_ns)
{
    st64(out, queue_ns);
    st64(out + 8, compute_ns);
}

void wire_trace_timing_decode(const uint8_t *in, uint64_t *queue_ns, uint64_t *compute_ns)
{
    *queue_ns = le64(in);
    *compute_ns = le64(in + 8);
}
