/* test_wire.c - unit tests for common/wire.{h,c}: header codec and validation, bounded payload
 * cursors at N and N+1, and full-buffer socket I/O over a socketpair (short writes, EOF before
 * the first byte vs in the middle, deadlines).  Expected bytes are written out by hand from the
 * layout in wire.h, not produced by the encoder under test. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire.h"

/* ---- header --------------------------------------------------------------------------------- */

/* A HELLO request, id 0x0102030405060708, payload 0x11223344, spelled out byte by byte. */
static const uint8_t hello_bytes[WIRE_HEADER_SIZE] = {
    'V',  'G',  'L',  'W',  /* magic */
    0x01, 0x00,             /* version 1 */
    0x01, 0x00,             /* op HELLO */
    0x01, 0x00,             /* flags RESPONSE */
    0x08, 0x00,             /* status BUSY */
    0x44, 0x33, 0x22, 0x11, /* payload_len */
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
};

START_TEST(header_encode_matches_layout)
{
    wire_header h = {.magic = WIRE_MAGIC,
                     .version = 1,
                     .op = WIRE_OP_HELLO,
                     .flags = WIRE_F_RESPONSE,
                     .status = WIRE_E_BUSY,
                     .payload_len = 0x11223344u,
                     .request_id = 0x0102030405060708ull};
    uint8_t out[WIRE_HEADER_SIZE];
    wire_header_encode(out, &h);
    ck_assert_mem_eq(out, hello_bytes, WIRE_HEADER_SIZE);
}
END_TEST

START_TEST(header_round_trip)
{
    wire_header h = {.magic = WIRE_MAGIC,
                     .version = WIRE_VERSION,
                     .op = WIRE_OP_STATS,
                     .flags = 0xBEEF,
                     .status = 0xCAFE,
                     .payload_len = 1000,
                     .request_id = UINT64_MAX - 5};
    uint8_t raw[WIRE_HEADER_SIZE];
    wire_header d;
    wire_header_encode(raw, &h);
    ck_assert_int_eq(wire_header_decode(raw, 1000, &d), WIRE_OK);
    ck_assert_uint_eq(d.magic, h.magic);
    ck_assert_uint_eq(d.version, h.version);
    ck_assert_uint_eq(d.op, h.op);
    ck_assert_uint_eq(d.flags, h.flags);
    ck_assert_uint_eq(d.status, h.status);
    ck_assert_uint_eq(d.payload_len, h.payload_len);
    ck_assert(d.request_id == h.request_id);
}
END_TEST

static void make_raw(uint8_t *raw, uint32_t magic, uint16_t version, uint16_t op, uint32_t len)
{
    wire_header h = {
        .magic = magic, .version = version, .op = op, .payload_len = len, .request_id = 42};
    wire_header_encode(raw, &h);
}

START_TEST(header_bad_magic)
{
    uint8_t raw[WIRE_HEADER_SIZE];
    wire_header d;
    make_raw(raw, 0x574C4757u, WIRE_VERSION, WIRE_OP_PING, 0);
    ck_assert_int_eq(wire_header_decode(raw, 100, &d), WIRE_E_BAD_FRAME);
    ck_assert(d.request_id == 42); /* still filled, so it can be echoed */
    memset(raw, 0, sizeof raw);
    ck_assert_int_eq(wire_header_decode(raw, 100, &d), WIRE_E_BAD_FRAME);
}
END_TEST

START_TEST(header_bad_version)
{
    uint8_t raw[WIRE_HEADER_SIZE];
    wire_header d;
    make_raw(raw, WIRE_MAGIC, 0, WIRE_OP_PING, 0);
    ck_assert_int_eq(wire_header_decode(raw, 100, &d), WIRE_E_BAD_VERSION);
    make_raw(raw, WIRE_MAGIC, WIRE_VERSION + 1, WIRE_OP_PING, 0);
    ck_assert_int_eq(wire_header_decode(raw, 100, &d), WIRE_E_BAD_VERSION);
    ck_assert(d.request_id == 42);
}
END_TEST

START_TEST(header_op_range)
{
    uint8_t raw[WIRE_HEADER_SIZE];
    wire_header d;
    make_raw(raw, WIRE_MAGIC, WIRE_VERSION, 0, 0);
    ck_assert_int_eq(wire_header_decode(raw, 100, &d), WIRE_E_UNKNOWN_OP);
    make_raw(raw, WIRE_MAGIC, WIRE_VERSION, WIRE_OP_MAX, 0);
    ck_assert_int_eq(wire_header_decode(raw, 100, &d), WIRE_E_UNKNOWN_OP);
    make_raw(raw, WIRE_MAGIC, WIRE_VERSION, 0xFFFF, 0);
    ck_assert_int_eq(wire_header_decode(raw, 100, &d), WIRE_E_UNKNOWN_OP);
    make_raw(raw, WIRE_MAGIC, WIRE_VERSION, 1, 0);
    ck_assert_int_eq(wire_header_decode(raw, 100, &d), WIRE_OK);
    make_raw(raw, WIRE_MAGIC, WIRE_VERSION, WIRE_OP_MAX - 1, 0);
    ck_assert_int_eq(wire_header_decode(raw, 100, &d), WIRE_OK);
}
END_TEST

START_TEST(response_may_carry_any_op)
{
    /* A WIRE_E_BUSY answer has op 0; an answer to an unknown op echoes it.  The client must be
     * able to decode both and read the status. */
    static const uint16_t ops[] = {0, WIRE_OP_MAX, 0xFFFF};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        uint8_t raw[WIRE_HEADER_SIZE];
        wire_header h = {.magic = WIRE_MAGIC,
                         .version = WIRE_VERSION,
                         .op = ops[i],
                         .flags = WIRE_F_RESPONSE,
                         .status = WIRE_E_BUSY,
                         .payload_len = 3},
                    d;
        wire_header_encode(raw, &h);
        ck_assert_int_eq(wire_header_decode(raw, 100, &d), WIRE_OK);
        ck_assert_uint_eq(d.status, WIRE_E_BUSY);
        ck_assert_uint_eq(d.op, ops[i]);
        /* Length and magic are still checked for responses. */
        ck_assert_int_eq(wire_header_decode(raw, 2, &d), WIRE_E_TOO_LARGE);
    }
}
END_TEST

START_TEST(header_payload_limit)
{
    uint8_t raw[WIRE_HEADER_SIZE];
    wire_header d;
    make_raw(raw, WIRE_MAGIC, WIRE_VERSION, WIRE_OP_PING, 4096);
    ck_assert_int_eq(wire_header_decode(raw, 4096, &d), WIRE_OK); /* exactly at max */
    make_raw(raw, WIRE_MAGIC, WIRE_VERSION, WIRE_OP_PING, 4097);
    ck_assert_int_eq(wire_header_decode(raw, 4096, &d), WIRE_E_TOO_LARGE);
    make_raw(raw, WIRE_MAGIC, WIRE_VERSION, WIRE_OP_PING, UINT32_MAX);
    ck_assert_int_eq(wire_header_decode(raw, UINT32_MAX - 1, &d), WIRE_E_TOO_LARGE);
    ck_assert_int_eq(wire_header_decode(raw, UINT32_MAX, &d), WIRE_OK);
    make_raw(raw, WIRE_MAGIC, WIRE_VERSION, WIRE_OP_PING, 1);
    ck_assert_int_eq(wire_header_decode(raw, 0, &d), WIRE_E_TOO_LARGE);
}
END_TEST

START_TEST(status_and_op_names)
{
    ck_assert_str_eq(wire_status_name(WIRE_OK), "ok");
    ck_assert_str_eq(wire_status_name(WIRE_E_BUSY), "busy");
    ck_assert_str_eq(wire_status_name(WIRE_E_INTERNAL), "internal");
    ck_assert_str_eq(wire_status_name(WIRE_STATUS_MAX), "invalid_status");
    ck_assert_str_eq(wire_status_name(-1), "invalid_status");
    ck_assert_str_eq(wire_op_name(WIRE_OP_HELLO), "hello");
    ck_assert_str_eq(wire_op_name(WIRE_OP_STATS), "stats");
    ck_assert_str_eq(wire_op_name(0), "unknown");
}
END_TEST

/* ---- payload cursors ------------------------------------------------------------------------ */

START_TEST(writer_scalars_little_endian)
{
    uint8_t buf[19];
    wire_writer w;
    wire_writer_init(&w, buf, sizeof buf);
    wire_put_u8(&w, 0xAB);
    wire_put_u16(&w, 0x1234);
    wire_put_u32(&w, 0x89ABCDEFu);
    wire_put_u64(&w, 0x0102030405060708ull);
    wire_put_f32(&w, 1.0f); /* IEEE 754 single 1.0 = 0x3F800000 */
    ck_assert_int_eq(w.err, 0);
    ck_assert_uint_eq(w.len, 19);
    static const uint8_t want[19] = {0xAB, 0x34, 0x12, 0xEF, 0xCD, 0xAB, 0x89, 0x08, 0x07, 0x06,
                                     0x05, 0x04, 0x03, 0x02, 0x01, 0x00, 0x00, 0x80, 0x3F};
    ck_assert_mem_eq(buf, want, sizeof want);

    wire_reader r;
    wire_reader_init(&r, buf, sizeof buf);
    ck_assert_uint_eq(wire_get_u8(&r), 0xAB);
    ck_assert_uint_eq(wire_get_u16(&r), 0x1234);
    ck_assert_uint_eq(wire_get_u32(&r), 0x89ABCDEFu);
    ck_assert(wire_get_u64(&r) == 0x0102030405060708ull);
    ck_assert(wire_get_f32(&r) == 1.0f);
    ck_assert_uint_eq(wire_remaining(&r), 0);
    ck_assert_int_eq(r.err, 0);
}
END_TEST

START_TEST(writer_exact_fit_and_overflow)
{
    uint8_t buf[8];
    wire_writer w;
    wire_writer_init(&w, buf, 8);
    wire_put_u32(&w, 1);
    wire_put_u32(&w, 2); /* exactly 8 */
    ck_assert_int_eq(w.err, 0);
    ck_assert_uint_eq(w.len, 8);
    wire_put_u8(&w, 3); /* 9th byte */
    ck_assert_int_eq(w.err, 1);
    ck_assert_uint_eq(w.len, 8);
    wire_put_u8(&w, 3); /* sticky */
    ck_assert_int_eq(w.err, 1);

    wire_writer_init(&w, buf, 8);
    wire_put_u32(&w, 1);
    wire_put_u64(&w, 2); /* 12 > 8: nothing written, len unchanged */
    ck_assert_int_eq(w.err, 1);
    ck_assert_uint_eq(w.len, 4);

    wire_writer_init(&w, buf, 8);
    ck_assert_ptr_nonnull(wire_put_reserve(&w, 8));
    ck_assert_ptr_null(wire_put_reserve(&w, 1));
    wire_writer_init(&w, buf, 8);
    ck_assert_ptr_null(wire_put_reserve(&w, 9));
    ck_assert_ptr_null(wire_put_reserve(&w, SIZE_MAX));

    wire_writer_init(&w, buf, 0);
    wire_put_bytes(&w, NULL, 0); /* zero bytes into zero capacity is fine */
    ck_assert_int_eq(w.err, 0);
}
END_TEST

START_TEST(writer_strings)
{
    uint8_t buf[7];
    wire_writer w;
    wire_writer_init(&w, buf, sizeof buf);
    wire_put_str(&w, "hello"); /* 2 + 5 = 7: exact fit */
    ck_assert_int_eq(w.err, 0);
    static const uint8_t want[7] = {5, 0, 'h', 'e', 'l', 'l', 'o'};
    ck_assert_mem_eq(buf, want, 7);
    wire_writer_init(&w, buf, sizeof buf);
    wire_put_str(&w, "hello!"); /* 8 > 7 */
    ck_assert_int_eq(w.err, 1);
    wire_writer_init(&w, buf, sizeof buf);
    wire_put_str(&w, "");
    ck_assert_int_eq(w.err, 0);
    ck_assert_uint_eq(w.len, 2);

    /* 65535 bytes is the longest string; 65536 sets err. */
    size_t cap = 70000;
    uint8_t *big = malloc(cap);
    char *s = malloc(65537);
    ck_assert_ptr_nonnull(big);
    ck_assert_ptr_nonnull(s);
    memset(s, 'x', 65536);
    s[65535] = '\0';
    wire_writer_init(&w, big, cap);
    wire_put_str(&w, s);
    ck_assert_int_eq(w.err, 0);
    ck_assert_uint_eq(w.len, 65537);
    s[65535] = 'x';
    s[65536] = '\0';
    wire_writer_init(&w, big, cap);
    wire_put_str(&w, s);
    ck_assert_int_eq(w.err, 1);
    free(s);
    free(big);
}
END_TEST

START_TEST(reader_underflow)
{
    static const uint8_t buf[4] = {1, 2, 3, 4};
    wire_reader r;
    wire_reader_init(&r, buf, 4);
    ck_assert_uint_eq(wire_get_u32(&r), 0x04030201u); /* exactly 4 */
    ck_assert_int_eq(r.err, 0);
    ck_assert_uint_eq(wire_get_u8(&r), 0); /* 5th byte */
    ck_assert_int_eq(r.err, 1);

    wire_reader_init(&r, buf, 4);
    wire_get_u8(&r);
    ck_assert_uint_eq(wire_get_u32(&r), 0); /* needs 4, 3 left */
    ck_assert_int_eq(r.err, 1);
    ck_assert_uint_eq(wire_remaining(&r), 3); /* a failed get consumes nothing */

    wire_reader_init(&r, buf, 4);
    ck_assert_ptr_eq(wire_get_bytes(&r, 4), buf);
    ck_assert_ptr_null(wire_get_bytes(&r, 1));
    wire_reader_init(&r, buf, 4);
    ck_assert_ptr_null(wire_get_bytes(&r, SIZE_MAX));
    ck_assert(wire_get_u64(&r) == 0); /* sticky */
}
END_TEST

START_TEST(reader_strings)
{
    static const uint8_t buf[] = {3, 0, 'a', 'b', 'c', 2, 0, 'd'};
    wire_reader r;
    char out[8];
    wire_reader_init(&r, buf, 5);
    wire_get_str(&r, out, 4); /* "abc" + NUL = 4: exact fit */
    ck_assert_int_eq(r.err, 0);
    ck_assert_str_eq(out, "abc");

    wire_reader_init(&r, buf, 5);
    wire_get_str(&r, out, 3); /* one short */
    ck_assert_int_eq(r.err, 1);
    ck_assert_str_eq(out, "");

    wire_reader_init(&r, buf, sizeof buf);
    wire_get_str(&r, out, sizeof out);
    ck_assert_str_eq(out, "abc");
    wire_get_str(&r, out, sizeof out); /* claims 2 bytes, 1 present */
    ck_assert_int_eq(r.err, 1);
    ck_assert_str_eq(out, "");

    wire_reader_init(&r, buf, 1); /* length prefix itself truncated */
    wire_get_str(&r, out, sizeof out);
    ck_assert_int_eq(r.err, 1);
}
END_TEST

START_TEST(le32_helpers)
{
    uint8_t b[4];
    wire_st32(b, 0xA1B2C3D4u);
    ck_assert_uint_eq(b[0], 0xD4);
    ck_assert_uint_eq(b[3], 0xA1);
    ck_assert_uint_eq(wire_le32(b), 0xA1B2C3D4u);
}
END_TEST

/* ---- socket I/O ----------------------------------------------------------------------------- */

static int sp[2];

static void io_setup(void)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
}

static void io_teardown(void)
{
    if (sp[0] >= 0)
        close(sp[0]);
    if (sp[1] >= 0)
        close(sp[1]);
    sp[0] = sp[1] = -1;
}

typedef struct {
    int fd;
    const uint8_t *data;
    size_t len;
    size_t chunk;
    int close_after;
    unsigned pause_us; /* between chunks; 0 means 2 ms */
} dribble_arg;

/* Writes data in chunk-sized pieces with pauses, forcing the reader through short reads. */
static void *dribble(void *p)
{
    dribble_arg *a = p;
    for (size_t off = 0; off < a->len; off += a->chunk) {
        size_t n = a->len - off < a->chunk ? a->len - off : a->chunk;
        if (write(a->fd, a->data + off, n) != (ssize_t)n)
            break;
        usleep(a->pause_us ? a->pause_us : 2000);
    }
    if (a->close_after)
        shutdown(a->fd, SHUT_WR);
    return NULL;
}

START_TEST(read_full_assembles_short_reads)
{
    uint8_t data[1000], got[1000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7);
    dribble_arg a = {sp[1], data, sizeof data, 97, 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, dribble, &a);
    ck_assert_int_eq(wire_read_full(sp[0], got, sizeof got, wire_now_ms() + 5000), WIRE_IO_OK);
    pthread_join(t, NULL);
    ck_assert_mem_eq(got, data, sizeof data);

    /* Same without a deadline (blocking recv). */
    pthread_create(&t, NULL, dribble, &a);
    memset(got, 0, sizeof got);
    ck_assert_int_eq(wire_read_full(sp[0], got, sizeof got, -1), WIRE_IO_OK);
    pthread_join(t, NULL);
    ck_assert_mem_eq(got, data, sizeof data);
}
END_TEST

START_TEST(read_full_eof_before_first_byte)
{
    uint8_t got[8];
    shutdown(sp[1], SHUT_WR);
    ck_assert_int_eq(wire_read_full(sp[0], got, sizeof got, wire_now_ms() + 1000), WIRE_IO_EOF);
    ck_assert_int_eq(wire_read_full(sp[0], got, sizeof got, -1), WIRE_IO_EOF);
}
END_TEST

START_TEST(read_full_eof_mid_buffer)
{
    uint8_t got[8];
    ck_assert_int_eq(write(sp[1], "abc", 3), 3);
    shutdown(sp[1], SHUT_WR);
    errno = 0;
    ck_assert_int_eq(wire_read_full(sp[0], got, sizeof got, wire_now_ms() + 1000), WIRE_IO_ERR);
    ck_assert_int_eq(errno, ECONNRESET);
}
END_TEST

START_TEST(read_full_timeout)
{
    uint8_t got[8];
    ck_assert_int_eq(write(sp[1], "abc", 3), 3); /* some bytes, never the rest */
    int64_t t0 = wire_now_ms();
    ck_assert_int_eq(wire_read_full(sp[0], got, sizeof got, t0 + 150), WIRE_IO_TIMEOUT);
    /* The event is the timeout status with the peer still open and silent; the clock check is a
     * lower bound only (the deadline is not cut short), never how fast it returned. */
    ck_assert_int_ge(wire_now_ms() - t0, 149);
    /* A deadline already in the past times out at once, even with nothing to read. */
    ck_assert_int_eq(wire_read_full(sp[0], got, 1, wire_now_ms() - 1), WIRE_IO_TIMEOUT);
}
END_TEST

START_TEST(read_full_nonblocking_fd_without_deadline)
{
    /* Regression: with O_NONBLOCK and no deadline, EAGAIN used to spin the CPU instead of waiting.
     * Here it must simply wait for the writer. */
    uint8_t data[300], got[300];
    memset(data, 0x5A, sizeof data);
    fcntl(sp[0], F_SETFL, fcntl(sp[0], F_GETFL) | O_NONBLOCK);
    dribble_arg a = {sp[1], data, sizeof data, 50, 0, 40000}; /* ~240 ms of wall time */
    pthread_t t;
    struct rusage r0, r1;
    getrusage(RUSAGE_THREAD, &r0);
    pthread_create(&t, NULL, dribble, &a);
    ck_assert_int_eq(wire_read_full(sp[0], got, sizeof got, -1), WIRE_IO_OK);
    getrusage(RUSAGE_THREAD, &r1);
    pthread_join(t, NULL);
    ck_assert_mem_eq(got, data, sizeof data);
    long cpu_us = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) * 1000000L +
                  (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) +
                  (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1000000L +
                  (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
    ck_assert_int_lt(cpu_us, 100000); /* a spinning reader burns ~all of the 240 ms */
}
END_TEST

typedef struct {
    int fd;
    uint8_t *buf;
    size_t len;
    int rc;
} drain_arg;

/* Reads slowly in small pieces so the writer sees a full socket buffer and short writes. */
static void *drain(void *p)
{
    drain_arg *a = p;
    size_t got = 0;
    usleep(20000);
    while (got < a->len) {
        size_t n = a->len - got < 4096 ? a->len - got : 4096;
        ssize_t r = read(a->fd, a->buf + got, n);
        if (r <= 0) {
            a->rc = -1;
            return NULL;
        }
        got += (size_t)r;
    }
    a->rc = 0;
    return NULL;
}

START_TEST(write_full_short_writes)
{
    int sz = 4096;
    setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    size_t n = 1 << 20; /* far more than the send buffer: many short sends */
    uint8_t *data = malloc(n), *got = malloc(n);
    ck_assert_ptr_nonnull(data);
    ck_assert_ptr_nonnull(got);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i ^ (i >> 8));
    drain_arg a = {sp[1], got, n, -1};
    pthread_t t;
    pthread_create(&t, NULL, drain, &a);
    ck_assert_int_eq(wire_write_full(sp[0], data, n, wire_now_ms() + 10000), WIRE_IO_OK);
    pthread_join(t, NULL);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_mem_eq(got, data, n);

    a.rc = -1;
    memset(got, 0, n);
    pthread_create(&t, NULL, drain, &a);
    ck_assert_int_eq(wire_write_full(sp[0], data, n, -1), WIRE_IO_OK);
    pthread_join(t, NULL);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_mem_eq(got, data, n);
    free(data);
    free(got);
}
END_TEST

START_TEST(write_full_timeout_and_closed_peer)
{
    int sz = 4096;
    setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    size_t n = 1 << 20;
    uint8_t *data = calloc(1, n);
    ck_assert_ptr_nonnull(data);
    /* Nobody reads: the buffer fills and the deadline passes. */
    ck_assert_int_eq(wire_write_full(sp[0], data, n, wire_now_ms() + 100), WIRE_IO_TIMEOUT);
    /* Peer gone: EPIPE, reported as an error, and no SIGPIPE kills the test (MSG_NOSIGNAL). */
    close(sp[1]);
    sp[1] = -1;
    ck_assert_int_eq(wire_write_full(sp[0], data, 10, wire_now_ms() + 1000), WIRE_IO_ERR);
    ck_assert_int_eq(wire_write_full(sp[0], data, 10, -1), WIRE_IO_ERR);
    free(data);
}
END_TEST

START_TEST(send_frame_then_read_back)
{
    wire_header h = {.magic = WIRE_MAGIC,
                     .version = WIRE_VERSION,
                     .op = WIRE_OP_PING,
                     .payload_len = 5,
                     .request_id = 99};
    ck_assert_int_eq(wire_send_frame(sp[0], &h, "hello", wire_now_ms() + 1000), WIRE_IO_OK);
    wire_header h0 = h;
    h0.payload_len = 0;
    ck_assert_int_eq(wire_send_frame(sp[0], &h0, NULL, -1), WIRE_IO_OK);
    uint8_t raw[WIRE_HEADER_SIZE], p[5];
    wire_header d;
    ck_assert_int_eq(wire_read_full(sp[1], raw, sizeof raw, wire_now_ms() + 1000), WIRE_IO_OK);
    ck_assert_int_eq(wire_header_decode(raw, 5, &d), WIRE_OK);
    ck_assert_uint_eq(d.payload_len, 5);
    ck_assert_int_eq(wire_read_full(sp[1], p, 5, wire_now_ms() + 1000), WIRE_IO_OK);
    ck_assert_mem_eq(p, "hello", 5);
    ck_assert_int_eq(wire_read_full(sp[1], raw, sizeof raw, wire_now_ms() + 1000), WIRE_IO_OK);
    ck_assert_int_eq(wire_header_decode(raw, 0, &d), WIRE_OK);
    ck_assert_uint_eq(d.payload_len, 0);
}
END_TEST

static Suite *wire_suite(void)
{
    Suite *s = suite_create("wire");
    TCase *hdr = tcase_create("header");
    tcase_add_test(hdr, header_encode_matches_layout);
    tcase_add_test(hdr, header_round_trip);
    tcase_add_test(hdr, header_bad_magic);
    tcase_add_test(hdr, header_bad_version);
    tcase_add_test(hdr, header_op_range);
    tcase_add_test(hdr, response_may_carry_any_op);
    tcase_add_test(hdr, header_payload_limit);
    tcase_add_test(hdr, status_and_op_names);
    suite_add_tcase(s, hdr);

    TCase *cur = tcase_create("cursors");
    tcase_add_test(cur, writer_scalars_little_endian);
    tcase_add_test(cur, writer_exact_fit_and_overflow);
    tcase_add_test(cur, writer_strings);
    tcase_add_test(cur, reader_underflow);
    tcase_add_test(cur, reader_strings);
    tcase_add_test(cur, le32_helpers);
    suite_add_tcase(s, cur);

    TCase *io = tcase_create("io");
    tcase_add_checked_fixture(io, io_setup, io_teardown);
    tcase_set_timeout(io, 30);
    tcase_add_test(io, read_full_assembles_short_reads);
    tcase_add_test(io, read_full_eof_before_first_byte);
    tcase_add_test(io, read_full_eof_mid_buffer);
    tcase_add_test(io, read_full_timeout);
    tcase_add_test(io, read_full_nonblocking_fd_without_deadline);
    tcase_add_test(io, write_full_short_writes);
    tcase_add_test(io, write_full_timeout_and_closed_peer);
    tcase_add_test(io, send_frame_then_read_back);
    suite_add_tcase(s, io);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(wire_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
