/* test_validate.c - unit tests for api/validate.{h,c}: UUIDs, ISO 3166-1 alpha-2 country codes
 * (hand-picked cases plus every two-letter combination against the list of officially assigned
 * codes in Debian's iso-codes package, which `make deps` installs: without it the test fails),
 * e-mail sanity and UTF-8 character counts. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"

START_TEST(uuid)
{
    ck_assert(val_uuid("0b9f4f8e-3c1a-4d6e-9a52-1f0e5b7c2d11"));
    ck_assert(val_uuid("0B9F4F8E-3C1A-4D6E-9A52-1F0E5B7C2D11"));
    ck_assert(val_uuid("0b9F4f8E-3c1a-4D6e-9a52-1f0e5b7c2d11"));
    ck_assert(val_uuid("00000000-0000-0000-0000-000000000000"));
    ck_assert(val_uuid("ffffffff-ffff-ffff-ffff-ffffffffffff"));
    static const char *const bad[] = {
        "",
        "0b9f4f8e-3c1a-4d6e-9a52-1f0e5b7c2d1",   /* 35 */
        "0b9f4f8e-3c1a-4d6e-9a52-1f0e5b7c2d111", /* 37 */
        "0b9f4f8e3c1a4d6e9a521f0e5b7c2d11",      /* no dashes */
        "0b9f4f8e-3c1a-4d6e-9a521f0e5b7c2d11-",  /* dash moved */
        "0b9f4f8-e3c1a-4d6e-9a52-1f0e5b7c2d11",
        "0b9f4f8e_3c1a_4d6e_9a52_1f0e5b7c2d11",
        "0b9f4f8g-3c1a-4d6e-9a52-1f0e5b7c2d11", /* g */
        "0b9f4f8e-3c1a-4d6e-9a52-1f0e5b7c2d1 ",
        " b9f4f8e-3c1a-4d6e-9a52-1f0e5b7c2d11",
        "{b9f4f8e-3c1a-4d6e-9a52-1f0e5b7c2d1}",
        "0b9f4f8e-3c1a-4d6e-9a52-1f0e5b7c2d1\xc3",
        "------------------------------------",
        "x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!val_uuid(bad[i]), "accepted '%s'", bad[i]);
    ck_assert(!val_uuid(NULL));
}
END_TEST

START_TEST(country_hand_picked)
{
    static const char *const good[] = {"DE", "JP", "US", "GB", "FR", "AD", "ZW", "AQ",
                                       "AX", "BQ", "CW", "SS", "SX", "PS", "TW", "UM"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg(val_country(good[i]), "rejected %s", good[i]);
    static const char *const bad[] = {
        "de",
        "De",
        "dE",
        "jp", /* lower case */
        "XX",
        "ZZ",
        "AA",
        "QQ", /* unassigned / user-assigned */
        "XK", /* Kosovo: user-assigned, not official */
        "UK",
        "EU",
        "UN", /* exceptionally reserved */
        "AN",
        "YU",
        "CS",
        "TP",
        "ZR", /* withdrawn */
        "DEU",
        "D",
        "",
        "D1",
        "1D",
        "D ",
        " D",
        "\xc3\x84"
        "D",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!val_country(bad[i]), "accepted '%s'", bad[i]);
    ck_assert(!val_country(NULL));
}
END_TEST

/* Compares all 26*26 codes with /usr/share/iso-codes/json/iso_3166-1.json (Debian iso-codes),
 * an independent list: 249 officially assigned codes. */
START_TEST(country_matches_iso_codes)
{
    FILE *f = fopen("/usr/share/iso-codes/json/iso_3166-1.json", "r");
    ck_assert_msg(f != NULL, "/usr/share/iso-codes/json/iso_3166-1.json missing: install Debian's "
                             "iso-codes package (make deps)");
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char assigned[26][26];
    memset(assigned, 0, sizeof assigned);
    int count = 0;
    for (const char *p = text; (p = strstr(p, "\"alpha_2\"")) != NULL; p++) {
        const char *q = strchr(p + 9, '"');
        ck_assert_ptr_nonnull(q);
        ck_assert(q[1] >= 'A' && q[1] <= 'Z' && q[2] >= 'A' && q[2] <= 'Z' && q[3] == '"');
        assigned[q[1] - 'A'][q[2] - 'A'] = 1;
        count++;
    }
    ck_assert_int_eq(count, 249);
    for (int a = 0; a < 26; a++) {
        for (int b = 0; b < 26; b++) {
            char code[3] = {(char)('A' + a), (char)('A' + b), 0};
            ck_assert_msg(val_country(code) == assigned[a][b], "%s: validator %d, iso-codes %d",
                          code, val_country(code), assigned[a][b]);
            char lower[3] = {(char)('a' + a), (char)('a' + b), 0};
            ck_assert(!val_country(lower));
        }
    }
}
END_TEST

START_TEST(email)
{
    static const char *const good[] = {
        "a@b.co",
        "first.last+tag@example.co.uk",
        "x_y-z@sub.domain.example",
        "\xc3\xbc@b\xc3\xbc.de", /* UTF-8 is allowed */
        "a@b.c",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg(val_email(good[i]), "rejected '%s'", good[i]);
    static const char *const bad[] = {
        "",        "a",       "ab",        "@b.c",    "a@",      "a@b",
        "a@b.",    "a@.b",    "a@@b.c",    "a@b@c.d", "a b@c.d", "a@b .c",
        "a\t@b.c", "a@b.c\n", "a\x7f@b.c", "a@b.c ",  " a@b.c",  "a.b.c",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!val_email(bad[i]), "accepted '%s'", bad[i]);
    ck_assert(!val_email(NULL));
}
END_TEST

/* 254 bytes accepted, 255 refused. */
START_TEST(email_length_limit)
{
    char s[300];
    /* "aaa...a@example.com": the local part fills up to the total. */
    const char *dom = "@example.com";
    size_t dl = strlen(dom);
    memset(s, 'a', 254 - dl);
    memcpy(s + 254 - dl, dom, dl + 1);
    ck_assert_uint_eq(strlen(s), 254);
    ck_assert(val_email(s));
    memset(s, 'a', 255 - dl);
    memcpy(s + 255 - dl, dom, dl + 1);
    ck_assert_uint_eq(strlen(s), 255);
    ck_assert(!val_email(s));
}
END_TEST

START_TEST(utf8_chars)
{
    ck_assert_uint_eq(val_utf8_chars(""), 0);
    ck_assert_uint_eq(val_utf8_chars("abc"), 3);
    ck_assert_uint_eq(val_utf8_chars("\xc3\xa9"), 1);         /* é */
    ck_assert_uint_eq(val_utf8_chars("\xe2\x82\xac"), 1);     /* € */
    ck_assert_uint_eq(val_utf8_chars("\xf0\x9f\x98\x80"), 1); /* 😀 */
    ck_assert_uint_eq(val_utf8_chars("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"), 5);
}
END_TEST

/* The transaction's ip_address in canonical text (RFC 5952 for IPv6), written here by hand. */
START_TEST(ip_canonical)
{
    static const char *const ok[][2] = {{"192.0.2.7", "192.0.2.7"},
                                        {"2001:DB8:0:0::0:1", "2001:db8::1"},
                                        {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},
                                        {"::", "::"},
                                        {"0:0:0:0:0:0:0:1", "::1"},
                                        {"::ffff:10.1.2.3", "::ffff:10.1.2.3"},
                                        {"fe80:0:0:0:0:0:0:1", "fe80::1"}};
    static const char *const bad[] = {"",           "1.2.3",        "1.2.3.256",
                                      "10.0.0.0/8", "fe80::1%eth0", " 1.2.3.4",
                                      "1.2.3.4 ",   "::g",          "1:2:3:4:5:6:7:8:9"};
    char out[48];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ck_assert_int_eq(val_ip_canonical(ok[i][0], out, sizeof out), 0);
        ck_assert_str_eq(out, ok[i][1]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(val_ip_canonical(bad[i], out, sizeof out) != 0, "'%s' accepted", bad[i]);
    ck_assert_int_ne(val_ip_canonical("1.2.3.4", out, 16), 0); /* a short buffer is refused */
}
END_TEST

static Suite *validate_suite(void)
{
    Suite *s = suite_create("validate");
    TCase *tc = tcase_create("validate");
    tcase_add_test(tc, uuid);
    tcase_add_test(tc, country_hand_picked);
    tcase_add_test(tc, country_matches_iso_codes);
    tcase_add_test(tc, email);
    tcase_add_test(tc, email_length_limit);
    tcase_add_test(tc, utf8_chars);
    tcase_add_test(tc, ip_canonical);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(validate_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
