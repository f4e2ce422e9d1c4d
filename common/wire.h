/* wire.h - the binary framed protocol between vigil-api and vigil-hotpath.
 *
 * Owns: the frame header layout, op and status codes, bounded little-endian payload readers and
 * writers, and full-frame socket I/O (short reads/writes, EINTR, MSG_NOSIGNAL, optional deadline).
 * Costs: header encode/decode O(1); payload helpers O(bytes); no allocation anywhere in this
 * module, so the worker may call all of it after it reports ready.
 *
 * Frame layout (all integers little-endian, 24-byte header then payload_len bytes):
 *   off  size  field
 *     0     4  magic        WIRE_MAGIC ("VGLW")
 *     4     2  version      WIRE_VERSION
 *     6     2  op           enum wire_op
 *     8     2  flags        WIRE_F_RESPONSE on answers
 *    10     2  status       enum wire_status (0 in requests)
 *    12     4  payload_len  <= the receiver's configured maximum
 *    16     8  request_id   chosen by the client, echoed in the response
 *
 * Error responses carry a UTF-8 message as payload (not NUL-terminated).
 *
 * Payloads of the scoring ops (all little-endian; a "model key" is the model's 16-byte UUID
 * followed by the 32-byte SHA-256 of its compiled blob, WIRE_MODEL_KEY_SIZE bytes; version 2
 * made it the blob's, where version 1 had the uploaded source's, so a worker can check it):
 *   LOAD_MODEL request   key[48] u32 blob_len  blob[blob_len]      (blob: common/model.h format,
 *                        at payload offset 52, so 4-byte aligned when the payload is)
 *              response  OK (empty) | BAD_PAYLOAD (also: key does not match SHA-256(blob)) /
 *                        NO_MEMORY (arena full of pinned models, try later) / TOO_LARGE (can
 *                        never fit the arena) + message
 *   SCORE request        u32 nsections (1..WIRE_MAX_SECTIONS), then per section:
 *                          key[48] u32 flags (WIRE_SCORE_MARGIN) u32 nrows u32 ncols
 *                          f32 rows[nrows * ncols] (row-major, NaN = missing)
 *                        With WIRE_SCORE_F64 in a section's flags (LightGBM models, format 2) the
 *                        section's rows are f64 instead, preceded by 0 or 4 zero bytes so that they
 *                        start at a payload offset that is a multiple of 8.
 *              response  OK: u32 nsections, then per section u32 nrows u32 nout f32 out[nrows*nout]
 *                        (for an F64 section: 0 or 4 zero bytes to the next multiple of 8 of the
 *                        payload offset, then f64 out[nrows*nout])
 *                        With WIRE_SCORE_EXPLAIN (issue 13; f32 sections only, not with F64) the
 *                        section's answer continues, after out[], with what EXPLAIN answers for
 *                        the same rows: u32 ngroups u32 ncontrib (= num_feature + 1)
 *                        f32 contribs[nrows * ngroups * ncontrib] f32 margins[nrows * ngroups]
 *                        (out[] is what the section would answer without the flag, bit for bit;
 *                        contribs and margins are EXPLAIN's, bit for bit).  So one frame carries
 *                        a decision's champion with its explanation and its challenger.
 *                        UNKNOWN_MODEL: u32 index of the first section whose model is not loaded
 *                        (for an EXPLAIN section: not loaded for explaining either: LOAD_MODEL
 *                        loads both when the blob has covers)
 *                        BAD_PAYLOAD + message (ncols != the model's num_feature, sizes, EXPLAIN
 *                        with F64, the model's explain scratch over the slot's...)
 *   EXPLAIN request      key[48] u32 flags (0) u32 nrows u32 ncols f32 rows[nrows * ncols]
 *              response  OK: u32 nrows u32 ngroups u32 ncontrib (= num_feature + 1), then
 *                        f32 contribs[nrows * ngroups * ncontrib] (per row, per group: the SHAP
 *                        value of each feature, then the bias; xgboost's pred_contribs layout),
 *                        then f32 margins[nrows * ngroups] (the raw margins, bit-identical to
 *                        SCORE with WIRE_SCORE_MARGIN: the score is their transform)
 *                        UNKNOWN_MODEL: u32 0 (the model is not loaded for explaining)
 *                        BAD_PAYLOAD + message (no covers, too deep, ncols, sizes...) */
#ifndef VIGIL_WIRE_H
#define VIGIL_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define WIRE_MAGIC 0x574C4756u /* "VGLW" read as little-endian bytes */
#define WIRE_VERSION 2u        /* 2: model keys carry the compiled blob's SHA-256 */
#define WIRE_HEADER_SIZE 24u
#define WIRE_F_RESPONSE 0x0001u

#define WIRE_MODEL_KEY_SIZE 48u
#define WIRE_MAX_SECTIONS 8u
#define WIRE_SCORE_MARGIN 0x1u  /* SCORE section flag: raw margins instead of transformed output */
#define WIRE_SCORE_F64 0x2u     /* SCORE section flag: f64 rows and outputs (format-2 models) */
#define WIRE_SCORE_EXPLAIN 0x4u /* SCORE section flag: the answer adds SHAP contributions (f32) */

/* Padding bytes from payload offset off to the next multiple of 8 (F64 sections). */
static inline size_t wire_pad8(size_t off)
{
    return (8u - (off & 7u)) & 7u;
}

enum wire_op {
    WIRE_OP_HELLO = 1,      /* -> u16 proto, str version, u16 n, n x (u16 op, str name, str impl) */
    WIRE_OP_PING = 2,       /* echo of the payload */
    WIRE_OP_LOAD_MODEL = 3, /* issue 3: compiled model blob */
    WIRE_OP_SCORE = 4,      /* issue 3: model key + float32 rows */
    WIRE_OP_STATS = 5,      /* worker counters */
    WIRE_OP_EXPLAIN = 6,    /* issue 13: model key + float32 rows -> SHAP contributions + margins */
    WIRE_OP_MAX = 64        /* op codes are < WIRE_OP_MAX (size of the worker's registry) */
};

enum wire_status {
    WIRE_OK = 0,
    WIRE_E_BAD_FRAME = 1,     /* bad magic, truncated frame */
    WIRE_E_BAD_VERSION = 2,   /* protocol version we do not speak */
    WIRE_E_UNKNOWN_OP = 3,    /* no kernel registered for the op */
    WIRE_E_TOO_LARGE = 4,     /* payload_len over the receiver's maximum */
    WIRE_E_BAD_PAYLOAD = 5,   /* payload does not parse for this op */
    WIRE_E_UNKNOWN_MODEL = 6, /* SCORE for a model the worker does not hold */
    WIRE_E_NO_MEMORY = 7,     /* arena cannot hold the model even after eviction */
    WIRE_E_BUSY = 8,          /* no free connection slot */
    WIRE_E_INTERNAL = 9,
    WIRE_STATUS_MAX = 10
};

/* Results of the socket helpers (negative, distinct from wire_status). */
enum wire_io {
    WIRE_IO_OK = 0,
    WIRE_IO_EOF = -1,     /* peer closed before the first byte */
    WIRE_IO_ERR = -2,     /* I/O error or peer closed mid-buffer; errno is set */
    WIRE_IO_TIMEOUT = -3, /* deadline passed */
};

typedef struct wire_header {
    uint32_t magic;
    uint16_t version;
    uint16_t op;
    uint16_t flags;
    uint16_t status;
    uint32_t payload_len;
    uint64_t request_id;
} wire_header;

/* Encodes h into exactly WIRE_HEADER_SIZE bytes at out.  Never fails. */
void wire_header_encode(uint8_t *out, const wire_header *h);

/* Decodes WIRE_HEADER_SIZE bytes into h and validates them: magic, version, payload_len <=
 * max_payload and, for requests only (no WIRE_F_RESPONSE), the op range: error responses may carry
 * op 0 (WIRE_E_BUSY, garbled headers).  Returns WIRE_OK or the wire_status that should be
 * answered; h is filled as far as it could be read either way (so request_id can be echoed). */
int wire_header_decode(const uint8_t *in, uint32_t max_payload, wire_header *h);

/* Human-readable name of a status or op ("ok", "unknown_model", "hello", ...).  Static strings. */
const char *wire_status_name(int status);
const char *wire_op_name(int op);

/* Monotonic clock in milliseconds, for deadlines: clock_now_ms() (common/clock.h), kept under this
 * name for the worker and the tests; new code calls clock_now_ms. */
int64_t wire_now_ms(void);

/* Reads exactly n bytes from fd.  deadline_ms is an absolute wire_now_ms() value, or -1 to block.
 * The deadline bounds waiting only: bytes already queued are taken even after it.  Retries on
 * EINTR; works on blocking and O_NONBLOCK fds.  Returns WIRE_IO_OK, WIRE_IO_EOF (clean close
 * before any byte), WIRE_IO_ERR, or WIRE_IO_TIMEOUT.  Thread-safe per fd owner; never allocates. */
int wire_read_full(int fd, void *buf, size_t n, int64_t deadline_ms);

/* Writes exactly n bytes with send(MSG_NOSIGNAL), so a closed peer gives EPIPE, not SIGPIPE.
 * Same deadline and return convention as wire_read_full (never WIRE_IO_EOF). */
int wire_write_full(int fd, const void *buf, size_t n, int64_t deadline_ms);

/* Sends one frame: header then payload (payload may be NULL when len is 0). */
int wire_send_frame(int fd, const wire_header *h, const void *payload, int64_t deadline_ms);

/* ---- bounded payload cursors ------------------------------------------------------------------
 * A writer/reader over a caller-owned buffer.  Any overflow or underflow sets err and every
 * later call is a no-op, so a sequence of puts/gets is checked once at the end. */
typedef struct wire_writer {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int err;
} wire_writer;

typedef struct wire_reader {
    const uint8_t *buf;
    size_t len;
    size_t off;
    int err;
} wire_reader;

void wire_writer_init(wire_writer *w, void *buf, size_t cap);
void wire_put_u8(wire_writer *w, uint8_t v);
void wire_put_u16(wire_writer *w, uint16_t v);
void wire_put_u32(wire_writer *w, uint32_t v);
void wire_put_u64(wire_writer *w, uint64_t v);
void wire_put_f32(wire_writer *w, float v);
void wire_put_bytes(wire_writer *w, const void *p, size_t n);
/* A string is u16 length + bytes (no NUL); strings longer than 65535 bytes set err. */
void wire_put_str(wire_writer *w, const char *s);
/* Reserves n bytes and returns a pointer to them (NULL and err on overflow). */
uint8_t *wire_put_reserve(wire_writer *w, size_t n);

void wire_reader_init(wire_reader *r, const void *buf, size_t len);
uint8_t wire_get_u8(wire_reader *r);
uint16_t wire_get_u16(wire_reader *r);
uint32_t wire_get_u32(wire_reader *r);
uint64_t wire_get_u64(wire_reader *r);
float wire_get_f32(wire_reader *r);
/* Returns a pointer to the next n bytes inside the buffer (no copy), NULL and err on underflow. */
const uint8_t *wire_get_bytes(wire_reader *r, size_t n);
/* Copies a u16-length string into out (NUL-terminated); err if it does not fit in outcap-1. */
void wire_get_str(wire_reader *r, char *out, size_t outcap);
/* Bytes left unread. */
size_t wire_remaining(const wire_reader *r);

/* Little-endian scalar access on raw bytes, shared by the model format. */
static inline uint32_t wire_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void wire_st32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

#endif
