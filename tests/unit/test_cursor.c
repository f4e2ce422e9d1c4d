/* test_cursor.c - unit tests for api/cursor.{h,c}: the exact encoding (base64url of
 * "v1:<ts_us>:<uuid>", no padding; the expected strings were computed with Python's
 * base64.urlsafe_b64encode and are written out here), round trips, and the rejection of garbled
 * or forged cursors (bad base64, padding, wrong prefix, bad UUID, negative or out-of-range
 * timestamps, embedded NULs). */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cursor.h"

#define ID "0b9f4f8e-3c1a-4d6e-9a52-1f0e5b7c2d11"

/* base64url("v1:1700000000123456:" ID) without the trailing '='. */
#define C_MAIN "djE6MTcwMDAwMDAwMDEyMzQ1NjowYjlmNGY4ZS0zYzFhLTRkNmUtOWE1Mi0xZjBlNWI3YzJkMTE"

START_TEST(encode_known_values)
{
    char out[CURSOR_MAX];
    cursor_encode(1700000000123456LL, ID, out);
    ck_assert_str_eq(out, C_MAIN);
    /* 41 raw bytes: 55 characters, the last group carries 2 bytes. */
    cursor_encode(0, "00000000-0000-0000-0000-000000000000", out);
    ck_assert_str_eq(out, "djE6MDowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA");
    cursor_encode(1, "ffffffff-ffff-ffff-ffff-ffffffffffff", out);
    ck_assert_str_eq(out, "djE6MTpmZmZmZmZmZi1mZmZmLWZmZmYtZmZmZi1mZmZmZmZmZmZmZmY");
}
END_TEST

START_TEST(encode_is_base64url_unpadded)
{
    char out[CURSOR_MAX];
    const int64_t ts[] = {0, 1, 12, 123, 999999, 1700000000123456LL, 4102444800000000LL};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        cursor_encode(ts[i], ID, out);
        size_t n = strlen(out);
        ck_assert_uint_lt(n, CURSOR_MAX);
        ck_assert_uint_ne(n % 4, 1); /* never a length base64 cannot produce */
        for (size_t k = 0; k < n; k++) {
            char c = out[k];
            int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_';
            ck_assert_msg(ok, "character '%c' in cursor %s", c, out);
        }
        ck_assert_ptr_null(strchr(out, '='));
    }
}
END_TEST

START_TEST(round_trip)
{
    const int64_t ts[] = {0, 1, 59, 1700000000123456LL, 4102444800000000LL};
    const char *ids[] = {ID, "00000000-0000-0000-0000-000000000000",
                         "ffffffff-ffff-ffff-ffff-ffffffffffff"};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        for (size_t j = 0; j < sizeof ids / sizeof ids[0]; j++) {
            char enc[CURSOR_MAX], id[37];
            int64_t back = -1;
            cursor_encode(ts[i], ids[j], enc);
            ck_assert_int_eq(cursor_decode(enc, &back, id), 0);
            ck_assert(back == ts[i]);
            ck_assert_str_eq(id, ids[j]);
        }
    }
}
END_TEST

START_TEST(decode_known_value)
{
    int64_t ts = 0;
    char id[37];
    ck_assert_int_eq(cursor_decode(C_MAIN, &ts, id), 0);
    ck_assert(ts == 1700000000123456LL);
    ck_assert_str_eq(id, ID);
    /* An upper-case UUID inside is accepted and comes back lower-case. */
    ck_assert_int_eq(
        cursor_decode("djE6MTcwMDAwMDAwMDEyMzQ1NjowQjlGNEY4RS0zQzFBLTRENkUtOUE1Mi0xRjBFNUI3QzJEMTE",
                      &ts, id),
        0);
    ck_assert_str_eq(id, ID);
    /* The largest accepted timestamp: 2100-01-01T00:00:00Z in microseconds. */
    ck_assert_int_eq(
        cursor_decode("djE6NDEwMjQ0NDgwMDAwMDAwMDowYjlmNGY4ZS0zYzFhLTRkNmUtOWE1Mi0xZjBlNWI3YzJkMTE",
                      &ts, id),
        0);
    ck_assert(ts == 4102444800000000LL);
}
END_TEST

START_TEST(garbage_rejected)
{
    static const char *const bad[] = {
        "",
        "x",
        "====",
        "not a cursor",
        "djE6",     /* "v1:" */
        C_MAIN "=", /* padding */
        C_MAIN "A", /* 76 chars: 76 % 4 == 0 but extra byte */
        "djE6MTcwMDAwMDAwMDEyMzQ1NjowYjlmNGY4ZS0zYzFhLTRkNmUtOWE1Mi0xZjBlNWI3YzJkMTE=",
        "djE6MTcwMDAwMDAwMDEyMzQ1NjowYjlmNGY4ZS0zYzFhLTRkNmUtOWE1Mi0xZjBlNWI3YzJkMT", /* 74 */
        "djE6MTcwMDAwMDAwMDEyMzQ1NjowYjlmNGY4ZS0zYzFhLTRkNmUtOWE1Mi0xZjBlNWI3YzJkM",  /* n%4==1 */
        "djE6MTcwMDAwMDAwMDEyMzQ1NjowYjlmNGY4ZS0zYzFhLTRkNmUtOWE1Mi0xZjBlNWI3YzJkMTE!",
        "djE6MTcwMDAwMDAwMDEyMzQ1NjowYjlmNGY4ZS0zYzFhLTRkNmUtOWE1Mi0xZjBlNWI3YzJkM+E",  /* '+' */
        "djE6MTcwMDAwMDAwMDEyMzQ1NjowYjlmNGY4ZS0zYzFhLTRkNmUtOWE1Mi0xZjBlNWI3YzJkM/E",  /* '/' */
        "djE6MTcwMDAwMDAw MDEyMzQ1NjowYjlmNGY4ZS0zYzFhLTRkNmUtOWE1Mi0xZjBlNWI3YzJkMTE", /* space */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ts = 42;
        char id[37] = "untouched";
        ck_assert_msg(cursor_decode(bad[i], &ts, id) == -1, "accepted '%s'", bad[i]);
    }
    /* Longer than CURSOR_MAX. */
    char longc[200];
    memset(longc, 'A', sizeof longc - 1);
    longc[sizeof longc - 1] = '\0';
    int64_t ts;
    char id[37];
    ck_assert_int_eq(cursor_decode(longc, &ts, id), -1);
}
END_TEST

/* Well-formed base64url of text that is not a valid cursor (encodings computed in Python). */
START_TEST(forged_rejected)
{
    static const struct {
        const char *why, *enc;
    } bad[] = {
        {"prefix v2",
         "djI6MTcwMDAwMDAwMDEyMzQ1NjowYjlmNGY4ZS0zYzFhLTRkNmUtOWE1Mi0xZjBlNWI3YzJkMTE"},
        {"negative ts", "djE6LTU6MGI5ZjRmOGUtM2MxYS00ZDZlLTlhNTItMWYwZTViN2MyZDEx"},
        {"ts not a number", "djE6YWJjOjBiOWY0ZjhlLTNjMWEtNGQ2ZS05YTUyLTFmMGU1YjdjMmQxMQ"},
        {"ts empty", "djE6OjBiOWY0ZjhlLTNjMWEtNGQ2ZS05YTUyLTFmMGU1YjdjMmQxMQ"},
        {"ts with space", "djE6IDE3OjBiOWY0ZjhlLTNjMWEtNGQ2ZS05YTUyLTFmMGU1YjdjMmQxMQ"},
        {"ts above 2100",
         "djE6NDEwMjQ0NDgwMDAwMDAwMTowYjlmNGY4ZS0zYzFhLTRkNmUtOWE1Mi0xZjBlNWI3YzJkMTE"},
        {"ts overflow",
         "djE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk6MGI5ZjRmOGUtM2MxYS00ZDZlLTlhNTItMWYwZTViN2MyZDEx"},
        {"no uuid", "djE6MTcwMDAwMDAwMDEyMzQ1Ng"},
        {"uuid short",
         "djE6MTcwMDAwMDAwMDEyMzQ1NjowYjlmNGY4ZS0zYzFhLTRkNmUtOWE1Mi0xZjBlNWI3YzJkMQ"},
        {"uuid long",
         "djE6MTcwMDAwMDAwMDEyMzQ1NjowYjlmNGY4ZS0zYzFhLTRkNmUtOWE1Mi0xZjBlNWI3YzJkMTF4"},
        {"uuid bad dash",
         "djE6MTcwMDAwMDAwMDEyMzQ1NjowYjlmNGY4ZSszYzFhLTRkNmUtOWE1Mi0xZjBlNWI3YzJkMTE"},
        {"uuid non-hex", "djE6NTowYjlmNGY4ZS0zYzFhLTRkNmUtOWE1Mi0xZjBlNWI3YzJkMWc"},
        {"trailing NUL",
         "djE6MTcwMDAwMDAwMDEyMzQ1NjowYjlmNGY4ZS0zYzFhLTRkNmUtOWE1Mi0xZjBlNWI3YzJkMTEA"},
        {"inner NUL",
         "djE6MTcwMDAwMDAwMDEyMzQ1NjowYjlmNGY4ZS0zYzFhLTRkNmUtOWE1MgAxZjBlNWI3YzJkMTE"},
        {"plain text x", "eA"},
        {"plain text xyz", "eHl6"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ts = 42;
        char id[37];
        ck_assert_msg(cursor_decode(bad[i].enc, &ts, id) == -1, "accepted (%s)", bad[i].why);
    }
}
END_TEST

static Suite *cursor_suite(void)
{
    Suite *s = suite_create("cursor");
    TCase *tc = tcase_create("cursor");
    tcase_add_test(tc, encode_known_values);
    tcase_add_test(tc, encode_is_base64url_unpadded);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, decode_known_value);
    tcase_add_test(tc, garbage_rejected);
    tcase_add_test(tc, forged_rejected);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cursor_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
