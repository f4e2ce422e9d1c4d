/* test_hmac.c - unit tests for sha256_hmac (common/sha256.c) against the seven test cases of
 * RFC 4231 section 4 (keys, data and HMAC-SHA-256 values copied from the RFC; case 5's output is
 * truncated to 128 bits there and compared on those bytes), plus the webhook signing input
 * "<t>.<body>" compared with a value computed by Python's hmac module:
 *   hmac.new(b"whsec_test", b"1700000000.{\"id\":\"x\"}", hashlib.sha256).hexdigest() */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

/* Hex text to bytes; returns the byte count. */
static size_t unhex(const char *h, uint8_t *out)
{
    size_t n = 0;
    for (; h[0] && h[1]; h += 2) {
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

static void check_case(const char *key_hex, const char *data_hex, const char *mac_hex)
{
    uint8_t key[256], data[256], mac[32];
    char hex[65];
    size_t kl = unhex(key_hex, key), dl = unhex(data_hex, data);
    sha256_hmac(key, kl, data, dl, mac);
    sha256_hex(mac, hex);
    ck_assert_msg(strncmp(hex, mac_hex, strlen(mac_hex)) == 0, "got %s want %s", hex, mac_hex);
}

static char *rep(const char *unit, int times)
{
    size_t n = strlen(unit);
    char *s = calloc(n * (size_t)times + 1, 1);
    for (int i = 0; i < times; i++)
        memcpy(s + n * (size_t)i, unit, n);
    return s;
}

START_TEST(rfc4231_case1_to_4)
{
    char *k1 = rep("0b", 20), *k3 = rep("aa", 20), *d3 = rep("dd", 50), *d4 = rep("cd", 50);
    check_case(k1, "4869205468657265",
               "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    check_case("4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
               "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    check_case(k3, d3, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
    check_case("0102030405060708090a0b0c0d0e0f10111213141516171819", d4,
               "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
    free(k1);
    free(k3);
    free(d3);
    free(d4);
}
END_TEST

START_TEST(rfc4231_case5_truncated)
{
    char *k = rep("0c", 20);
    check_case(k, "546573742057697468205472756e636174696f6e", "a3b6167473100ee06e0c796c2955552b");
    free(k);
}
END_TEST

/* Cases 6 and 7: a 131-byte key, longer than the block, is hashed first. */
START_TEST(rfc4231_long_key)
{
    char *k = rep("aa", 131);
    check_case(k,
               "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048"
               "617368204b6579204669727374",
               "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    check_case(k,
               "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d"
               "73697a65206b657920616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174"
               "612e20546865206b6579206e6565647320746f20626520686173686564206265666f7265206265696e"
               "6720757365642062792074686520484d414320616c676f726974686d2e",
               "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
    free(k);
}
END_TEST

/* Exactly one block (64 bytes): used as is, not hashed. */
START_TEST(block_sized_key)
{
    uint8_t key[64], a[32], b[32];
    memset(key, 'k', sizeof key);
    sha256_hmac(key, 64, "m", 1, a);
    sha256_hmac(key, 63, "m", 1, b);
    ck_assert(memcmp(a, b, 32) != 0);
}
END_TEST

/* The example of README.md's Webhooks section (t=1767225600), also from Python's hmac. */
START_TEST(readme_example)
{
    const char *key = "whsec_test", *msg = "1767225600.{\"id\":\"x\"}";
    uint8_t mac[32];
    char hex[65];
    sha256_hmac(key, strlen(key), msg, strlen(msg), mac);
    sha256_hex(mac, hex);
    ck_assert_str_eq(hex, "f2a0e9cc79f6a8d5063bc6718561e872509983827740ea4ee5622da1c7e8d2b4");
}
END_TEST

START_TEST(webhook_signing_input)
{
    const char *key = "whsec_test", *msg = "1700000000.{\"id\":\"x\"}";
    uint8_t mac[32];
    char hex[65];
    sha256_hmac(key, strlen(key), msg, strlen(msg), mac);
    sha256_hex(mac, hex);
    ck_assert_str_eq(hex, "80e8d098018f757aa814ab1abb924f35d304affa1d93d29611a54696207eb7c3");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hmac");
    TCase *tc = tcase_create("rfc4231");
    tcase_add_test(tc, rfc4231_case1_to_4);
    tcase_add_test(tc, rfc4231_case5_truncated);
    tcase_add_test(tc, rfc4231_long_key);
    tcase_add_test(tc, block_sized_key);
    tcase_add_test(tc, webhook_signing_input);
    tcase_add_test(tc, readme_example);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
