/* sha256.h - SHA-256 (FIPS 180-4), streaming.  Used for API-key hashes, model checksums and
 * (as HMAC-SHA256) webhook signatures.
 * Costs: O(n) per update, no allocation, 112-byte context on the caller's stack. */
#ifndef VIGIL_SHA256_H
#define VIGIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t total;
    uint8_t buf[64];
    size_t used;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, uint8_t out[32]);
/* One-shot digest of data. */
void sha256(const void *data, size_t len, uint8_t out[32]);
/* HMAC-SHA256 (RFC 2104) of msg under key: out = H((K ^ opad) || H((K ^ ipad) || msg)), a key
 * longer than the 64-byte block hashed first.  Tested with the RFC 4231 vectors.  Used to sign
 * webhook bodies.  No allocation; thread-safe. */
void sha256_hmac(const void *key, size_t keylen, const void *msg, size_t msglen, uint8_t out[32]);
/* Lower-case hex of 32 bytes into out[65] (NUL-terminated). */
void sha256_hex(const uint8_t digest[32], char out[65]);

#endif
