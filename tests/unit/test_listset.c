/* test_listset.c - list items and list sets (common/listset.h).
 *
 * What is checked, each against an independent source:
 *   - canonical text of every kind, by hand: numbers (12 = 12.0 = 1.2e1, -0 = 0, shortest
 *     round-trip), IPv4/IPv6 addresses and CIDRs (/0, /32, /128, mapped addresses, host bits
 *     refused with the network named), strings; every refusal;
 *   - sets of 1,000,000 items (strings, numbers, IPv4 addresses): every item is a member, as many
 *     non-members are not (the reference: the generator's own rule, or a sorted array searched
 *     with bsearch); duplicates are idempotent; the memory a 1M string set holds is printed;
 *   - IP ranges: random v4 and v6 CIDR lists against a linear scan with masks written here
 *     (overlapping, nested and adjacent ranges; both ends of the address space);
 *   - a set never answers for another kind; hostile lookups return 0. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "listset.h"

static void canon_ok(listset_kind k, const char *in, const char *want)
{
    char out[LISTSET_ITEM_MAX + 1], err[160] = "";
    int rc = listset_canon(k, in, strlen(in), out, sizeof out, err, sizeof err);
    ck_assert_msg(rc == LISTSET_OK, "'%s' refused: %s", in, err);
    ck_assert_msg(strcmp(out, want) == 0, "'%s' -> '%s', want '%s'", in, out, want);
}

static void canon_bad(listset_kind k, const char *in, size_t len, const char *want_err)
{
    char out[LISTSET_ITEM_MAX + 1], err[160] = "";
    int rc = listset_canon(k, in, len, out, sizeof out, err, sizeof err);
    ck_assert_msg(rc == LISTSET_E_INVALID, "'%s' accepted as '%s'", in, out);
    ck_assert_msg(strcmp(err, want_err) == 0, "'%s': error '%s', want '%s'", in, err, want_err);
}

/* Assertions inside loops of millions: Check's own macros report every passing check to the
 * parent process (a write per call), these only act on failure. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("line %d: %s", __LINE__, #cond);                                          \
    } while (0)
#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

#define NUM_ERR "expected a number (JSON syntax: -12, 0.5, 1e6)"
#define IP_ERR "expected an IPv4 or IPv6 address (or a CIDR range such as 10.0.0.0/8)"

START_TEST(canonical_numbers)
{
    canon_ok(LISTSET_NUMBER, "12", "12");
    canon_ok(LISTSET_NUMBER, "12.0", "12");
    canon_ok(LISTSET_NUMBER, "1.2e1", "12");
    canon_ok(LISTSET_NUMBER, "1200E-2", "12");
    canon_ok(LISTSET_NUMBER, "-0", "0");
    canon_ok(LISTSET_NUMBER, "-0.0e5", "0");
    canon_ok(LISTSET_NUMBER, "0.1", "0.1");
    canon_ok(LISTSET_NUMBER, "-1.5", "-1.5");
    canon_ok(LISTSET_NUMBER, "1e21", "1e+21");
    canon_ok(LISTSET_NUMBER, "1E2", "100");
    canon_ok(LISTSET_NUMBER, "0.30000000000000004", "0.30000000000000004");
    canon_ok(LISTSET_NUMBER, "123456789012345678", "123456789012345680");
    canon_ok(LISTSET_NUMBER, "1e20", "100000000000000000000");
    canon_ok(LISTSET_NUMBER, "0.000001", "0.000001");
    canon_ok(LISTSET_NUMBER, "1e-7", "1e-07");
    canon_ok(LISTSET_NUMBER, "-2.5e-8", "-2.5e-08");
    canon_ok(LISTSET_NUMBER, "1.7976931348623157e308", "1.7976931348623157e+308");
    canon_ok(LISTSET_NUMBER, "412345", "412345");
    canon_ok(LISTSET_NUMBER, "5e-324", "5e-324");
    canon_ok(LISTSET_NUMBER, "1e-400", "0"); /* underflows to 0: the same item as 0 */
    const char *bad[] = {"+1", "01", "1.",  ".5", "0x10", "inf", "nan", "Infinity", " 1",
                         "1 ", "",   "--1", "1e", "-",    "1e+", "1,5", "１"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        canon_bad(LISTSET_NUMBER, bad[i], strlen(bad[i]), NUM_ERR);
    canon_bad(LISTSET_NUMBER, "1e999", 5, "number out of range");
    canon_bad(LISTSET_NUMBER, "-1e999", 6, "number out of range");
    char out[64];
    ck_assert_int_eq(listset_number_canon(-0.0, out, sizeof out), LISTSET_OK);
    ck_assert_str_eq(out, "0");
    ck_assert_int_eq(listset_number_canon(NAN, out, sizeof out), LISTSET_E_INVALID);
    ck_assert_int_eq(listset_number_canon(INFINITY, out, sizeof out), LISTSET_E_INVALID);
    ck_assert_int_eq(listset_number_canon(1, out, 8), LISTSET_E_INVALID);
}
END_TEST

START_TEST(canonical_ips)
{
    canon_ok(LISTSET_IP, "10.0.0.1", "10.0.0.1");
    canon_ok(LISTSET_IP, "10.0.0.0/8", "10.0.0.0/8");
    canon_ok(LISTSET_IP, "10.0.0.1/32", "10.0.0.1");
    canon_ok(LISTSET_IP, "0.0.0.0/0", "0.0.0.0/0");
    canon_ok(LISTSET_IP, "255.255.255.255", "255.255.255.255");
    canon_ok(LISTSET_IP, "2001:DB8::1", "2001:db8::1");
    canon_ok(LISTSET_IP, "2001:db8:0:0:0:0:0:1/128", "2001:db8::1");
    canon_ok(LISTSET_IP, "2001:db8::/32", "2001:db8::/32");
    canon_ok(LISTSET_IP, "::/0", "::/0");
    canon_ok(LISTSET_IP, "::", "::");
    canon_ok(LISTSET_IP, "::ffff:10.0.0.1", "10.0.0.1");
    canon_ok(LISTSET_IP, "0:0:0:0:0:ffff:a00:1", "10.0.0.1");
    canon_ok(LISTSET_IP, "::ffff:10.0.0.0/104", "10.0.0.0/8");
    canon_ok(LISTSET_IP, "::ffff:0:0/96", "0.0.0.0/0");
    canon_ok(LISTSET_IP, "::ffff:1.2.3.4/128", "1.2.3.4");
    canon_ok(LISTSET_IP, "::1.2.3.4", "::1.2.3.4"); /* IPv4-compatible: an IPv6 address */
    canon_ok(LISTSET_IP, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
             "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    canon_bad(LISTSET_IP, "10.0.0.1/8", 10,
              "host bits are set in the range (the network is 10.0.0.0/8)");
    canon_bad(LISTSET_IP, "2001:db8::1/64", 14,
              "host bits are set in the range (the network is 2001:db8::/64)");
    canon_bad(LISTSET_IP, "::ffff:0:0/80", 13,
              "host bits are set in the range (the network is ::/80)");
    canon_bad(LISTSET_IP, "::ffff:10.0.0.1/104", 19,
              "host bits are set in the range (the network is 10.0.0.0/8)");
    canon_bad(LISTSET_IP, "fe80::1%eth0", 12, "expected an IPv4 or IPv6 address without a zone id");
    const char *bad[] = {"010.0.0.1", "1.2.3",   "256.1.1.1",        " 1.2.3.4",
                         "1.2.3.4 ",  "1::2::3", "::ffff:010.0.0.1", "",
                         "/8",        "abc",     "1.2.3.4.5",        "::ffff:1.2.3.4.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        canon_bad(LISTSET_IP, bad[i], strlen(bad[i]), IP_ERR);
    const char *badp[] = {"10.0.0.0/08", "10.0.0.0/33",  "10.0.0.0/",     "10.0.0.0/+8",
                          "10.0.0.0/-1", "10.0.0.0/8/8", "10.0.0.0/1000", "10.0.0.0/ 8"};
    for (size_t i = 0; i < sizeof badp / sizeof badp[0]; i++)
        canon_bad(LISTSET_IP, badp[i], strlen(badp[i]), "expected a prefix length 0..32 after '/'");
    canon_bad(LISTSET_IP, "::/129", 6, "expected a prefix length 0..128 after '/'");
    canon_bad(LISTSET_IP, "1.2.3.4\0x", 9, IP_ERR);
}
END_TEST

START_TEST(canonical_strings)
{
    canon_ok(LISTSET_STRING, "m_42", "m_42");
    canon_ok(LISTSET_STRING, " Mixed Case ", " Mixed Case ");
    canon_ok(LISTSET_STRING, "caf\xc3\xa9", "caf\xc3\xa9");
    canon_bad(LISTSET_STRING, "", 0, "expected a non-empty UTF-8 string");
    canon_bad(LISTSET_STRING, "\xff", 1, "expected a non-empty UTF-8 string");
    canon_bad(LISTSET_STRING, "\xc3", 1, "expected a non-empty UTF-8 string");
    canon_bad(LISTSET_STRING, "a\0b", 3, "a string item cannot contain U+0000");
    static char big[LISTSET_ITEM_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    char out[LISTSET_ITEM_MAX + 1];
    ck_assert_int_eq(listset_canon(LISTSET_STRING, big, LISTSET_ITEM_MAX, out, sizeof out, NULL, 0),
                     LISTSET_OK);
    canon_bad(LISTSET_STRING, big, LISTSET_ITEM_MAX + 1, "item longer than 512 bytes");
    canon_bad((listset_kind)9, "x", 1, "unknown list kind");
    ck_assert_int_eq(listset_kind_parse("ip", 2), LISTSET_IP);
    ck_assert_int_eq(listset_kind_parse("IP", 2), 0);
    ck_assert_str_eq(listset_kind_name(LISTSET_NUMBER), "number");
}
END_TEST

/* ---- 1M items -------------------------------------------------------------------------------- */

#define MILLION 1000000

/* Item i of the string test: 20-30 bytes. */
static size_t item_text(char *buf, size_t n, unsigned i)
{
    return (size_t)snprintf(buf, n, "card_%08u_%x@example", i, i * 2654435761u);
}

START_TEST(million_strings)
{
    listset_builder *b = listset_builder_new(LISTSET_STRING, MILLION);
    char buf[64];
    for (unsigned i = 0; i < MILLION; i++) {
        size_t n = item_text(buf, sizeof buf, i);
        CHECK((listset_builder_add(b, buf, n, NULL, 0)) == LISTSET_OK);
    }
    for (unsigned i = 0; i < 1000; i++) { /* twice is not an error */
        size_t n = item_text(buf, sizeof buf, i * 997);
        CHECK((listset_builder_add(b, buf, n, NULL, 0)) == LISTSET_OK);
    }
    listset *s = listset_build(b);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(listset_count(s), MILLION);
    printf("listset: 1,000,000 string items of 26-29 bytes hold %zu bytes (%.1f MB)\n",
           listset_bytes(s), listset_bytes(s) / 1e6);
    for (unsigned i = 0; i < MILLION; i++) {
        size_t n = item_text(buf, sizeof buf, i);
        CHECK(listset_has_string(s, buf, n));
        /* the same text one byte shorter, or with one byte changed, is not a member */
        CHECK(!listset_has_string(s, buf, n - 1));
        buf[5] = 'X';
        CHECK(!listset_has_string(s, buf, n));
    }
    for (unsigned i = MILLION; i < 2 * MILLION; i++) {
        size_t n = item_text(buf, sizeof buf, i);
        CHECK(!listset_has_string(s, buf, n));
    }
    ck_assert(!listset_has_string(s, "", 0));
    ck_assert(!listset_has_number(s, 1));
    ck_assert(!listset_has_ip_text(s, "1.2.3.4", 7));
    listset_free(s);
}
END_TEST

static uint64_t xs(uint64_t *r)
{
    *r ^= *r << 13;
    *r ^= *r >> 7;
    *r ^= *r << 17;
    return *r;
}

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

START_TEST(million_numbers)
{
    double *items = malloc(MILLION * sizeof *items);
    uint64_t r = 7;
    listset_builder *b = listset_builder_new(LISTSET_NUMBER, 0); /* no hint: grows */
    for (int i = 0; i < MILLION; i++) {
        uint64_t x = xs(&r);
        items[i] = x % 3 == 0 ? (double)(x >> 40) : (double)(int64_t)(x >> 11) / 1024.0;
        CHECK(listset_builder_add_number(b, items[i]) == LISTSET_OK);
    }
    ck_assert_int_eq(listset_builder_add_number(b, -0.0), LISTSET_OK);
    ck_assert_int_eq(listset_builder_add_number(b, NAN), LISTSET_E_INVALID);
    ck_assert_int_eq(listset_builder_add_number(b, INFINITY), LISTSET_E_INVALID);
    ck_assert_int_eq(listset_builder_add(b, "1e1", 3, NULL, 0), LISTSET_OK);
    ck_assert_int_eq(listset_builder_add(b, "x", 1, NULL, 0), LISTSET_E_INVALID);
    listset *s = listset_build(b);
    ck_assert_ptr_nonnull(s);
    /* the reference: a sorted array with 0 and 10 added, searched with bsearch */
    items = realloc(items, (MILLION + 2) * sizeof *items);
    items[MILLION] = 0;
    items[MILLION + 1] = 10;
    qsort(items, MILLION + 2, sizeof *items, dcmp);
    size_t distinct = 0;
    for (size_t i = 0; i < MILLION + 2; i++)
        distinct += i == 0 || items[i] != items[i - 1];
    ck_assert_uint_eq(listset_count(s), distinct);
    for (size_t i = 0; i < MILLION + 2; i += 1) {
        CHECK(listset_has_number(s, items[i]));
        double near = nextafter(items[i], INFINITY);
        int want = bsearch(&near, items, MILLION + 2, sizeof *items, dcmp) != NULL;
        CHECK((listset_has_number(s, near)) == want);
    }
    ck_assert(listset_has_number(s, 0.0) && listset_has_number(s, -0.0));
    ck_assert(!listset_has_number(s, NAN));
    ck_assert(!listset_has_string(s, "10", 2));
    listset_free(s);
    free(items);
}
END_TEST

static int ucmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

START_TEST(million_ipv4)
{
    uint32_t *items = malloc(MILLION * sizeof *items);
    uint64_t r = 11;
    listset_builder *b = listset_builder_new(LISTSET_IP, MILLION);
    char buf[64];
    for (int i = 0; i < MILLION; i++) {
        items[i] = (uint32_t)xs(&r);
        uint32_t a = items[i];
        int n =
            snprintf(buf, sizeof buf, "%u.%u.%u.%u", a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255);
        CHECK((listset_builder_add(b, buf, (size_t)n, NULL, 0)) == LISTSET_OK);
    }
    listset *s = listset_build(b);
    ck_assert_ptr_nonnull(s);
    qsort(items, MILLION, sizeof *items, ucmp);
    for (int i = 0; i < 2 * MILLION; i++) {
        uint32_t a = i < MILLION ? items[i] : (uint32_t)xs(&r);
        int n =
            snprintf(buf, sizeof buf, "%u.%u.%u.%u", a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255);
        int want = bsearch(&a, items, MILLION, sizeof *items, ucmp) != NULL;
        CHECK((listset_has_ip_text(s, buf, (size_t)n)) == want);
        if (i < MILLION) {
            /* the same address as an IPv4-mapped IPv6 address */
            n = snprintf(buf, sizeof buf, "::ffff:%u.%u.%u.%u", a >> 24, a >> 16 & 255,
                         a >> 8 & 255, a & 255);
            CHECK(listset_has_ip_text(s, buf, (size_t)n));
        }
    }
    listset_free(s);
    free(items);
}
END_TEST

/* ---- CIDR ranges against a linear scan ------------------------------------------------------- */

typedef struct ref_range {
    uint8_t a[16];
    int bits; /* over the 128-bit form (IPv4: 96 + prefix) */
} ref_range;

static int ref_member(const ref_range *rs, int n, const uint8_t *a)
{
    for (int i = 0; i < n; i++) {
        int bits = rs[i].bits, in = 1;
        for (int k = 0; k < 16 && in; k++) {
            int keep = bits - 8 * k;
            uint8_t m = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
            in = (a[k] & m) == (rs[i].a[k] & m);
        }
        if (in)
            return 1;
    }
    return 0;
}

static void addr_text(const uint8_t *a, int v4, char *buf, size_t n)
{
    if (v4)
        snprintf(buf, n, "%u.%u.%u.%u", a[12], a[13], a[14], a[15]);
    else
        snprintf(buf, n, "%x:%x:%x:%x:%x:%x:%x:%x", a[0] << 8 | a[1], a[2] << 8 | a[3],
                 a[4] << 8 | a[5], a[6] << 8 | a[7], a[8] << 8 | a[9], a[10] << 8 | a[11],
                 a[12] << 8 | a[13], a[14] << 8 | a[15]);
}

/* A random address near a few "hot" prefixes so ranges overlap, nest and touch. */
static void rand_addr(uint64_t *r, int v4, uint8_t *a)
{
    memset(a, 0, 16);
    uint64_t x = xs(r), y = xs(r);
    for (int k = 0; k < 8; k++)
        a[k] = (uint8_t)(x >> (8 * k)), a[8 + k] = (uint8_t)(y >> (8 * k));
    if (v4) {
        memset(a, 0, 10);
        a[10] = a[11] = 0xff;
        a[12] = (uint8_t)(10 + x % 3); /* 10..12 */
        if (x % 17 == 0)
            memset(a + 12, 0xff, 4); /* the top of the space */
        if (x % 19 == 0)
            memset(a + 12, 0, 4); /* the bottom */
    } else {
        a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = (uint8_t)(0xb8 + x % 2);
        if (x % 17 == 0)
            memset(a, 0xff, 16);
        if (x % 19 == 0)
            memset(a, 0, 16);
    }
}

START_TEST(cidr_against_linear_scan)
{
    int total_hits = 0, total_misses = 0;
    for (int round = 0; round < 8; round++) {
        uint64_t r = 1000 + (uint64_t)round;
        int v4 = round % 2 == 0, n = round < 4 ? 50 : 2000;
        static ref_range rs[2000];
        listset_builder *b = listset_builder_new(LISTSET_IP, 0);
        char buf[80], txt[64], err[128];
        for (int i = 0; i < n; i++) {
            rand_addr(&r, v4, rs[i].a);
            int width = v4 ? 32 : 128;
            /* mostly long prefixes (so that some addresses miss), a few short ones */
            int p = xs(&r) % 50 == 0 ? (int)(xs(&r) % (uint64_t)(width + 1))
                                     : width - (int)(xs(&r) % (uint64_t)(v4 ? 17 : 81));
            if (i % 5 == 0)
                p = width; /* single addresses */
            if (round == 6 && i == 7)
                p = 0; /* a /0 */
            rs[i].bits = v4 ? 96 + p : p;
            for (int k = 0; k < 16; k++) { /* mask host bits */
                int keep = rs[i].bits - 8 * k;
                rs[i].a[k] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
            }
            if (v4) {
                memset(rs[i].a, 0, 10); /* the mask may have cleared the mapped prefix */
                rs[i].a[10] = rs[i].a[11] = 0xff;
            }
            addr_text(rs[i].a, v4, txt, sizeof txt);
            snprintf(buf, sizeof buf, "%s/%d", txt, p);
            CHECK_MSG(listset_builder_add(b, buf, strlen(buf), err, sizeof err) == LISTSET_OK,
                      "%s: %s", buf, err);
        }
        listset *s = listset_build(b);
        ck_assert_ptr_nonnull(s);
        int hits = 0;
        for (int q = 0; q < 20000; q++) {
            uint8_t a[16];
            if (q % 4 == 0) { /* an item's first or last address, or one past either */
                const ref_range *x = &rs[q / 4 % n];
                memcpy(a, x->a, 16);
                int last = q % 8 == 0;
                for (int k = 0; k < 16 && last; k++) {
                    int keep = x->bits - 8 * k;
                    a[k] |= (uint8_t) ~(keep >= 8 ? 0xff : keep <= 0 ? 0 : (0xff << (8 - keep)));
                }
                int step = (q / 8) % 3 - 1; /* -1, 0, +1 */
                for (int k = 15; k >= (v4 ? 12 : 0) && step; k--) {
                    if (step > 0 && a[k]++ != 0xff)
                        break;
                    if (step < 0 && a[k]-- != 0)
                        break;
                }
            } else {
                rand_addr(&r, v4, a);
            }
            int want = ref_member(rs, n, a);
            static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
            if (!v4 && memcmp(a, mapped, 12) == 0)
                want = 0; /* an IPv4-mapped address is IPv4: the v6 ranges never hold it */
            listset_ip ip;
            addr_text(a, v4, txt, sizeof txt);
            CHECK((listset_ip_parse(txt, strlen(txt), &ip, NULL, 0)) == LISTSET_OK);
            CHECK_MSG(listset_has_ip(s, &ip) == want, "round %d: %s: want %d", round, txt, want);
            CHECK((listset_has_ip_text(s, txt, strlen(txt))) == want);
            hits += want;
        }
        total_hits += hits;
        total_misses += 20000 - hits;
        listset_free(s);
    }
    ck_assert_int_gt(total_hits, 5000);
    ck_assert_int_gt(total_misses, 5000);
}
END_TEST

START_TEST(ip_edges)
{
    listset_builder *b = listset_builder_new(LISTSET_IP, 0);
    const char *items[] = {
        "10.0.0.0/9",     "10.128.0.0/9", "192.168.1.1", "192.168.1.1/32", "::ffff:172.16.0.0/108",
        "2001:db8::/127", "ffff::/16",    "::1"};
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++)
        ck_assert_int_eq(listset_builder_add(b, items[i], strlen(items[i]), NULL, 0), LISTSET_OK);
    char err[128];
    ck_assert_int_eq(listset_builder_add(b, "10.0.0.1/8", 10, err, sizeof err), LISTSET_E_INVALID);
    ck_assert_str_eq(err, "host bits are set in the range (the network is 10.0.0.0/8)");
    listset *s = listset_build(b);
    ck_assert_uint_eq(listset_count(s), 7); /* 192.168.1.1 twice */
    static const struct {
        const char *a;
        int in;
    } q[] = {
        {"10.0.0.0", 1},
        {"10.127.255.255", 1},
        {"10.128.0.0", 1},
        {"10.255.255.255", 1},
        {"9.255.255.255", 0},
        {"11.0.0.0", 0},
        {"192.168.1.1", 1},
        {"192.168.1.2", 0},
        {"172.16.0.1", 1},
        {"::ffff:172.31.255.255", 1},
        {"172.32.0.0", 0},
        {"2001:db8::", 1},
        {"2001:db8::1", 1},
        {"2001:db8::2", 0},
        {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1},
        {"fffe::", 0},
        {"::1", 1},
        {"::", 0},
        {"::2", 0},
        {"10.0.0.0/8", 0}, /* a CIDR is not an address */
        {"not an ip", 0},
        {"", 0},
        {"::ffff:10.0.0.1", 1},
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
        ck_assert_msg(listset_has_ip_text(s, q[i].a, strlen(q[i].a)) == q[i].in, "%s", q[i].a);
    listset_free(s);

    /* the families never mix: ::/0 is every IPv6 address, 0.0.0.0/0 every IPv4 one */
    b = listset_builder_new(LISTSET_IP, 0);
    listset_builder_add(b, "::/0", 4, NULL, 0);
    s = listset_build(b);
    ck_assert(listset_has_ip_text(s, "2001:db8::1", 11));
    ck_assert(listset_has_ip_text(s, "::", 2));
    ck_assert(!listset_has_ip_text(s, "1.2.3.4", 7));
    ck_assert(!listset_has_ip_text(s, "::ffff:1.2.3.4", 14));
    listset_free(s);
    b = listset_builder_new(LISTSET_IP, 0);
    listset_builder_add(b, "0.0.0.0/0", 9, NULL, 0);
    s = listset_build(b);
    ck_assert(listset_has_ip_text(s, "0.0.0.0", 7));
    ck_assert(listset_has_ip_text(s, "255.255.255.255", 15));
    ck_assert(!listset_has_ip_text(s, "::1", 3));
    listset_free(s);
    /* an empty set of each kind */
    for (int k = LISTSET_STRING; k <= LISTSET_IP; k++) {
        s = listset_build(listset_builder_new((listset_kind)k, 0));
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_eq(listset_count(s), 0);
        ck_assert(!listset_has_string(s, "a", 1) && !listset_has_number(s, 0) &&
                  !listset_has_ip_text(s, "1.2.3.4", 7));
        listset_free(s);
    }
    ck_assert_ptr_null(listset_builder_new((listset_kind)0, 0));
    listset_builder_free(listset_builder_new(LISTSET_STRING, 10));
    ck_assert_ptr_null(listset_build(NULL));
    listset_free(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("listset");
    TCase *canon = tcase_create("canon"), *big = tcase_create("million"),
          *ranges = tcase_create("ranges");
    tcase_set_timeout(big, 300);
    tcase_set_timeout(ranges, 120);
    tcase_add_test(canon, canonical_numbers);
    tcase_add_test(canon, canonical_ips);
    tcase_add_test(canon, canonical_strings);
    tcase_add_test(big, million_strings);
    tcase_add_test(big, million_numbers);
    tcase_add_test(big, million_ipv4);
    tcase_add_test(ranges, cidr_against_linear_scan);
    tcase_add_test(ranges, ip_edges);
    suite_add_tcase(s, canon);
    suite_add_tcase(s, ranges);
    suite_add_tcase(s, big);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
