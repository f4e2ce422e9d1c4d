/* fuzz_wire.c - libFuzzer harness for common/wire.c: wire_header_decode and the bounded payload
 * readers, as the worker and the API use them on bytes from the socket.
 *
 * Input: the first 24 bytes (zero-padded) are a frame header, decoded with a max_payload taken
 * from byte 24; the rest is a payload read by a program of reader calls (byte 25 onwards chooses
 * the next call, the payload is the second half of what remains).  Checks besides ASan/UBSan:
 * a decode that says OK means magic/version/payload bound hold; header encode(decode(x)) is x for
 * accepted headers; the reader never reports more than it holds; wire_get_str always NUL-
 * terminates within its capacity. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t sink; /* keeps the payload reads */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t hdr[WIRE_HEADER_SIZE] = {0};
    memcpy(hdr, data, size < WIRE_HEADER_SIZE ? size : WIRE_HEADER_SIZE);
    uint32_t max_payload = size > WIRE_HEADER_SIZE ? (uint32_t)data[WIRE_HEADER_SIZE] << 8 : 0;
    wire_header h;
    int st = wire_header_decode(hdr, max_payload, &h);
    if (st < 0 || st >= WIRE_STATUS_MAX)
        abort();
    (void)wire_status_name(st);
    (void)wire_status_name(h.status);
    (void)wire_op_name(h.op);
    if (st == WIRE_OK) {
        if (h.magic != WIRE_MAGIC || h.version != WIRE_VERSION || h.payload_len > max_payload)
            abort();
        uint8_t again[WIRE_HEADER_SIZE];
        wire_header_encode(again, &h);
        if (memcmp(again, hdr, WIRE_HEADER_SIZE) != 0)
            abort();
    }
    if (size <= WIRE_HEADER_SIZE + 1)
        return 0;

    /* Program and payload: exact-size heap copies so ASan sees any overread. */
    size_t rest = size - WIRE_HEADER_SIZE - 1;
    size_t nprog = rest / 2, nbuf = rest - nprog;
    const uint8_t *prog = data + WIRE_HEADER_SIZE + 1;
    uint8_t *buf = malloc(nbuf ? nbuf : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, prog + nprog, nbuf);
    wire_reader r;
    wire_reader_init(&r, buf, nbuf);
    char str[64];
    for (size_t i = 0; i < nprog; i++) {
        size_t before = wire_remaining(&r);
        switch (prog[i] % 8) {
        case 0:
            (void)wire_get_u8(&r);
            break;
        case 1:
            (void)wire_get_u16(&r);
            break;
        case 2:
            (void)wire_get_u32(&r);
            break;
        case 3:
            (void)wire_get_u64(&r);
            break;
        case 4:
            (void)wire_get_f32(&r);
            break;
        case 5: {
            size_t n = prog[i] >> 3;
            const uint8_t *p = wire_get_bytes(&r, n);
            if (p != NULL) {
                uint8_t x = 0;
                for (size_t k = 0; k < n; k++)
                    x ^= p[k];
                sink = x;
            }
            break;
        }
        case 6: {
            size_t cap = (size_t)(prog[i] >> 3) % sizeof str + 1;
            memset(str, 'Z', sizeof str);
            wire_get_str(&r, str, cap);
            if (!r.err && memchr(str, 0, cap) == NULL)
                abort();
            break;
        }
        default:
            (void)wire_get_bytes(&r, SIZE_MAX - (prog[i] >> 3));
            break;
        }
        if (wire_remaining(&r) > before || wire_remaining(&r) > nbuf)
            abort();
    }

    /* The writer over a small buffer, with the same program: never writes past cap. */
    uint8_t *wbuf = malloc(nbuf ? nbuf : 1);
    if (wbuf != NULL) {
        wire_writer w;
        wire_writer_init(&w, wbuf, nbuf);
        for (size_t i = 0; i < nprog; i++) {
            switch (prog[i] % 7) {
            case 0:
                wire_put_u8(&w, prog[i]);
                break;
            case 1:
                wire_put_u16(&w, prog[i]);
                break;
            case 2:
                wire_put_u32(&w, prog[i]);
                break;
            case 3:
                wire_put_u64(&w, prog[i]);
                break;
            case 4:
                wire_put_f32(&w, (float)prog[i]);
                break;
            case 5: {
                char s[32];
                size_t n = (size_t)(prog[i] >> 3) % sizeof s;
                memset(s, 'a', n);
                s[n] = '\0';
                wire_put_str(&w, s);
                break;
            }
            default:
                (void)wire_put_reserve(&w, prog[i] >> 3);
                break;
            }
            if (w.len > w.cap)
                abort();
        }
        free(wbuf);
    }
    free(buf);
    return 0;
}
