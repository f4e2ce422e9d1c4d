/* test_numtext.c - common/numtext.c against libc itself: numtext_strtod must give strtod's double
 * (bit for bit) and end pointer, numtext_g9 snprintf's "%.9g" text, on every input tried.  The
 * expected values are libc's, computed here on the same input; the inputs are millions of random
 * and constructed strings and floats: JSON numbers of 1..40 digits with exponents up to +-400,
 * 19- and 20-digit mantissas, subnormals, overflow, -0, strtod's halfway cases (midpoints between
 * adjacent doubles and floats written out exactly and cut near 17..19 digits), the text of %.9g
 * and %.17g of random values, random garbage over the characters strtod knows; every float in
 * [0.5, 2) (where %.9g has exact ties such as 1.001953125), random bit patterns (NaN, inf,
 * subnormals), the edges of every binade, and the floats around every power of ten.
 * A pseudo-random generator with a fixed seed keeps failures reproducible. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "numtext.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void)
{
    uint64_t x = rng_state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Du;
}

static unsigned rnd_below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static long failures;

/* Compares numtext_strtod with strtod on s; counts and prints (the first few) mismatches. */
static void check_strtod(const char *s)
{
    char *e1 = NULL, *e2 = NULL;
    double want = strtod(s, &e1);
    double got = numtext_strtod(s, &e2);
    uint64_t a, b;
    memcpy(&a, &want, sizeof a);
    memcpy(&b, &got, sizeof b);
    int same = (a == b || (isnan(want) && isnan(got))) && e1 == e2;
    /* the float a predict row stores: via the double, so equal doubles give equal floats */
    float fw = (float)want, fg = (float)got;
    same = same && (memcmp(&fw, &fg, sizeof fw) == 0 || (isnan(fw) && isnan(fg)));
    if (!same && failures++ < 10)
        fprintf(stderr, "numtext_strtod(\"%s\") = %a end +%td, strtod = %a end +%td\n", s, got,
                e2 - s, want, e1 - s);
}

static void check_g9(float v)
{
    char want[64], got[NUMTEXT_G9_MAX + 8];
    int wn = snprintf(want, sizeof want, "%.9g", (double)v);
    memset(got, 'X', sizeof got);
    size_t gn = numtext_g9(got, v);
    if ((gn != (size_t)wn || strcmp(want, got) != 0 || gn >= NUMTEXT_G9_MAX) && failures++ < 10) {
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        fprintf(stderr, "numtext_g9(0x%08x) = \"%.20s\" (%zu), snprintf = \"%s\"\n", bits, got, gn,
                want);
    }
}

/* Appends n random digits to s at *o, the first one nonzero when nonzero_first. */
static void put_digits(char *s, size_t *o, unsigned n, int nonzero_first)
{
    for (unsigned i = 0; i < n; i++)
        s[(*o)++] = (char)('0' + (i == 0 && nonzero_first ? 1 + rnd_below(9) : rnd_below(10)));
}

/* A random number in JSON's grammar: sign, 1..20 integer digits (or "0"), an optional fraction
 * of 1..20 digits (often led by zeros), an optional exponent up to +-400. */
static void random_json_number(char *s)
{
    size_t o = 0;
    if (rnd() & 1)
        s[o++] = '-';
    if (rnd_below(3) == 0)
        s[o++] = '0';
    else
        put_digits(s, &o, 1 + rnd_below(rnd_below(4) == 0 ? 20 : 10), 1);
    if (rnd_below(4) != 0) {
        s[o++] = '.';
        unsigned zeros = rnd_below(3) == 0 ? rnd_below(25) : 0;
        for (unsigned i = 0; i < zeros; i++)
            s[o++] = '0';
        put_digits(s, &o, 1 + rnd_below(rnd_below(4) == 0 ? 20 : 12), 0);
    }
    if (rnd_below(3) == 0) {
        s[o++] = rnd() & 1 ? 'e' : 'E';
        unsigned k = rnd_below(3);
        if (k)
            s[o++] = k == 1 ? '+' : '-';
        int x = rnd_below(4) == 0 ? (int)rnd_below(401) : (int)rnd_below(30);
        o += (size_t)sprintf(s + o, rnd_below(8) == 0 ? "%03d" : "%d", x);
    }
    s[o] = '\0';
}

START_TEST(strtod_random_json_numbers)
{
    char s[128];
    failures = 0;
    for (long i = 0; i < 3000000; i++) {
        random_json_number(s);
        check_strtod(s);
    }
    ck_assert_int_eq(failures, 0);
}
END_TEST

START_TEST(strtod_printed_values)
{
    /* What clients send: %.9g of floats (numpy float32 rows, the benchmark's rows), %.17g and
     * the shortest %.15g..%.17g of doubles (Python's repr), integers. */
    char s[64];
    failures = 0;
    for (long i = 0; i < 1000000; i++) {
        uint32_t fb = (uint32_t)rnd();
        float f;
        memcpy(&f, &fb, sizeof f);
        if (!isfinite(f))
            continue;
        snprintf(s, sizeof s, "%.9g", (double)f);
        check_strtod(s);
        /* and a typical feature value: normal(0, 1)-ish floats of a few significant digits */
        double g = ((double)(int64_t)(rnd() % 2000001) - 1000000) / 250000.0;
        snprintf(s, sizeof s, "%.9g", (double)(float)g);
        check_strtod(s);
        uint64_t db = rnd();
        double d;
        memcpy(&d, &db, sizeof d);
        if (!isfinite(d))
            continue;
        snprintf(s, sizeof s, "%.17g", d);
        check_strtod(s);
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(s, sizeof s, "%.*g", prec, d);
            if (strtod(s, NULL) == d)
                break;
        }
        check_strtod(s);
        snprintf(s, sizeof s, "%lld", (long long)(rnd() >> rnd_below(64)) * (rnd() & 1 ? 1 : -1));
        check_strtod(s);
    }
    ck_assert_int_eq(failures, 0);
}
END_TEST

/* Writes the exact decimal value of x (a long double holding a midpoint exactly) cut to ndig
 * significant digits, then bumps the last digit by delta (-1, 0, +1) when it can. */
static void midpoint_text(char *s, size_t cap, long double x, int ndig, int delta)
{
    snprintf(s, cap, "%.*Le", ndig - 1, x);
    char *e = strchr(s, 'e');
    if (!e || delta == 0)
        return;
    char *last = e - 1;
    if (delta > 0 && *last < '9')
        (*last)++;
    else if (delta < 0 && *last > '0')
        (*last)--;
}

START_TEST(strtod_halfway_cases)
{
    /* Midpoints between adjacent doubles (and adjacent floats, for the float a row stores): a
     * long double holds them exactly; written with 17..20 and 40 significant digits, and a unit
     * of the last digit either side. */
    char s[128];
    failures = 0;
    for (long i = 0; i < 300000; i++) {
        uint64_t db = rnd() >> 1;
        double d;
        memcpy(&d, &db, sizeof d);
        if (!isfinite(d) || !isfinite(nextafter(d, INFINITY)))
            continue;
        long double mid = ((long double)d + (long double)nextafter(d, INFINITY)) / 2;
        float f = (float)d;
        long double fmid = isfinite(nextafterf(f, INFINITY))
                               ? ((long double)f + (long double)nextafterf(f, INFINITY)) / 2
                               : (long double)f;
        static const int ndigs[] = {16, 17, 18, 19, 20, 40};
        for (size_t k = 0; k < sizeof ndigs / sizeof *ndigs; k++)
            for (int delta = -1; delta <= 1; delta++) {
                midpoint_text(s, sizeof s, mid, ndigs[k], delta);
                check_strtod(s);
                midpoint_text(s, sizeof s, fmid, ndigs[k], delta);
                check_strtod(s);
            }
    }
    ck_assert_int_eq(failures, 0);
}
END_TEST

START_TEST(strtod_edge_inputs)
{
    static const char *const cases[] = {
        "0",
        "-0",
        "-0.0",
        "0.0",
        "0e0",
        "-0e-0",
        "0e999999999999",
        "-0.000000000000000000000000e5",
        "1",
        "-1",
        "9007199254740992",
        "9007199254740993",
        "9007199254740994",
        "9007199254740995",
        "-9007199254740993",
        "4503599627370497e1",
        "9999999999999999999",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999",
        "1234567890123456789012345678901234567890",
        "0.1",
        "0.2",
        "0.3",
        "1e22",
        "1e-22",
        "1e23",
        "1e-23",
        "9e22",
        "1.5e37",
        "123e25",
        "9007199254740991e15",
        "9007199254740993e15",
        "1e308",
        "1.7976931348623157e308",
        "1.7976931348623158e308",
        "1.7976931348623159e308",
        "1e309",
        "-1e309",
        "1e-400",
        "2.2250738585072011e-308",
        "2.2250738585072012e-308",
        "2.2250738585072014e-308",
        "4.9406564584124654e-324",
        "2.4703282292062327e-324",
        "2.4703282292062328e-324",
        "3.4028235e38",
        "3.40282347e+38",
        "3.4028236e38",
        "1.17549435e-38",
        "1.4e-45",
        "1.40129846e-45",
        "7.00649232e-46",
        "7.0064923e-46",
        "1.00000005960464477539062500",
        "1.0000000596046448",
        "1.0000000596046447",
        "0.000000000000000000000000000001",
        "1e+5",
        "1E5",
        "1e05",
        "1e-05",
        "1e000000000000000000000000000001",
        "1e99999999999999",
        "1e-99999999999999",
        "123456789e-30",
        "0.0216884166",
        "-1.11092126",
        "0.571518838",
        /* beyond JSON: strtod's own business, the end pointer must match too */
        "0x1p3",
        "0x10",
        "-0x1.8p1",
        "0X1P-2",
        "0x",
        "1e",
        "1e+",
        "1e-x",
        "1.",
        "1.e5",
        ".5",
        "-.5",
        "01",
        "00.5",
        "-",
        "--1",
        "+1",
        " 1",
        "\t-2",
        "1e5x",
        "1.5.5",
        "1,5",
        "infinity",
        "-inf",
        "INF",
        "nan",
        "-nan",
        "nan(123)",
        "",
        "e5",
        "1_000",
        "1e5e5",
        "0.5f",
        "12abc",
        "1d",
        "1p3",
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_strtod(cases[i]);
    ck_assert_int_eq(failures, 0);
    /* -0 keeps its sign; the fast path takes a JSON number and stops where strtod stops */
    char *end = NULL;
    double z = numtext_strtod("-0,", &end);
    ck_assert(z == 0.0 && signbit(z));
    ck_assert_int_eq(*end, ',');
    ck_assert(numtext_strtod("0.0216884166]", &end) == 0.0216884166 && *end == ']');
}
END_TEST

START_TEST(strtod_random_garbage)
{
    static const char alphabet[] = "0123456789-+.eExXpPaifnINF ";
    char s[16];
    failures = 0;
    for (long i = 0; i < 2000000; i++) {
        unsigned n = 1 + rnd_below(12);
        for (unsigned k = 0; k < n; k++)
            s[k] = rnd_below(3) ? (char)('0' + rnd_below(10))
                                : alphabet[rnd_below(sizeof alphabet - 1)];
        s[n] = '\0';
        check_strtod(s);
    }
    ck_assert_int_eq(failures, 0);
}
END_TEST

/* numtext_json on s (no NUL looked at: s is copied into a block of exactly its length, so a read
 * past the end is an ASan error in `make test-asan`).  A returned prefix must be a JSON number
 * (json_validate accepts it alone) whose value is strtod's; a whole valid JSON number shorter
 * than 128 bytes must be read to its end. */
static void check_json(const char *s)
{
    size_t n = strlen(s);
    char *blk = malloc(n ? n : 1);
    ck_assert(blk);
    memcpy(blk, s, n);
    double got = 12345.0;
    const char *end = numtext_json(blk, blk + n, &got);
    char err[128];
    if (end != NULL) {
        size_t k = (size_t)(end - blk);
        char pre[256];
        snprintf(pre, sizeof pre, "%.*s", (int)k, s);
        double want = strtod(pre, NULL);
        int ok = k > 0 && k <= n && json_validate(pre, k, err, sizeof err) == 0 &&
                 memcmp(&want, &got, sizeof want) == 0;
        if (!ok && failures++ < 10)
            fprintf(stderr, "numtext_json(\"%s\") read %zu bytes = %a, strtod(\"%s\") = %a\n", s, k,
                    got, pre, want);
    } else if (n < 128 && n > 0 && json_validate(s, n, err, sizeof err) == 0 &&
               (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) && !strpbrk(s, " \t\r\n")) {
        if (failures++ < 10)
            fprintf(stderr, "numtext_json(\"%s\") refused a JSON number\n", s);
    }
    free(blk);
}

START_TEST(json_numbers_read_as_strtod)
{
    char s[128];
    failures = 0;
    for (long i = 0; i < 1000000; i++) {
        random_json_number(s);
        check_json(s);
        size_t n = strlen(s);
        if (n > 1) { /* cut short: "1.", "1e", "-" must not be read as numbers */
            s[1 + rnd_below((unsigned)n - 1)] = '\0';
            check_json(s);
        }
    }
    static const char alphabet[] = "0123456789-+.eE,] x";
    for (long i = 0; i < 1000000; i++) {
        unsigned n = 1 + rnd_below(12);
        for (unsigned k = 0; k < n; k++)
            s[k] = alphabet[rnd_below(sizeof alphabet - 1)];
        s[n] = '\0';
        check_json(s);
    }
    static const char *const cases[] = {"0",     "-0",      "01",
                                        "-01",   "1.",      "1.e5",
                                        ".5",    "1e",      "1e+",
                                        "1E-0",  "-",       "--1",
                                        "+1",    "0x10",    "9007199254740993",
                                        "1e400", "-1e-400", "4.9406564584124654e-324"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_json(cases[i]);
    ck_assert_int_eq(failures, 0);
    /* by hand: a leading zero is refused; a number stops before what follows it */
    double v = 0;
    const char *t = "01";
    ck_assert_ptr_null(numtext_json(t, t + 2, &v));
    t = "-0,1";
    ck_assert_ptr_eq(numtext_json(t, t + 4, &v), t + 2);
    ck_assert(v == 0.0 && signbit(v));
    t = "2.5e1]";
    ck_assert_ptr_eq(numtext_json(t, t + 3, &v), t + 3); /* e stops it: "2.5" */
    ck_assert(v == 2.5);
}
END_TEST

START_TEST(g9_every_float_in_half_to_two)
{
    /* [0.5, 2): two binades exhaustively, 16.8 million floats, with %.9g's exact ties (e.g.
     * 1.001953125 = 1 + 2^-9, which prints as 1.00195312: half to even). */
    failures = 0;
    uint32_t lo = 0x3f000000u, hi = 0x40000000u; /* 0.5f, 2.0f */
    for (uint32_t b = lo; b < hi; b++) {
        float v;
        memcpy(&v, &b, sizeof v);
        check_g9(v);
    }
    check_g9(1.001953125f);
    char buf[NUMTEXT_G9_MAX];
    numtext_g9(buf, 1.001953125f);
    ck_assert_str_eq(buf, "1.00195312"); /* a tie, to even: computed by hand */
    ck_assert_int_eq(failures, 0);
}
END_TEST

START_TEST(g9_random_bits_and_edges)
{
    failures = 0;
    for (long i = 0; i < 6000000; i++) {
        uint32_t b = (uint32_t)rnd();
        float v;
        memcpy(&v, &b, sizeof v);
        check_g9(v);
    }
    /* both ends of every binade, both signs: zeros, subnormals, FLT_MIN, FLT_MAX, inf, NaNs */
    for (uint32_t e = 0; e < 256; e++)
        for (uint32_t k = 0; k < 1000; k++)
            for (uint32_t s = 0; s < 2; s++) {
                uint32_t b1 = s << 31 | e << 23 | k, b2 = s << 31 | e << 23 | (0x7fffffu - k);
                float v1, v2;
                memcpy(&v1, &b1, sizeof v1);
                memcpy(&v2, &b2, sizeof v2);
                check_g9(v1);
                check_g9(v2);
            }
    /* 200 floats either side of every power of ten a float reaches, and of the 9-digit
     * boundaries 999999999.5 * 10^k where the digit count rolls over */
    for (int k = -46; k <= 39; k++) {
        float c[2] = {(float)pow(10.0, k), (float)(9.999999995 * pow(10.0, k))};
        for (int j = 0; j < 2; j++) {
            float v = c[j];
            for (int n = 0; n < 200; n++)
                v = nextafterf(v, 0.0f);
            for (int n = 0; n < 400; n++) {
                check_g9(v);
                check_g9(-v);
                v = nextafterf(v, INFINITY);
            }
        }
    }
    ck_assert_int_eq(failures, 0);
}
END_TEST

START_TEST(g9_ties_constructed)
{
    /* Floats whose exact decimal expansion has exactly 10 significant digits ending in 5 are
     * %.9g's ties: v = m / 2^s.  Enumerate m over the float mantissas for s = 1..40 and keep those
     * with 10 significant digits; each is checked (and counted, so the test cannot pass on none).
     */
    failures = 0;
    long ties = 0;
    char buf[80];
    for (int s = 1; s <= 40; s++)
        for (uint32_t m = 1; m < (1u << 24); m += 1 + rnd_below(64)) {
            float v = ldexpf((float)m, -s);
            if (ldexpf(v, s) != (float)m || !(m & 1))
                continue; /* exactly m / 2^s with m odd: the expansion ends at digit s */
            snprintf(buf, sizeof buf, "%.40f", (double)v);
            char *p = buf;
            while (*p == '0' || *p == '.')
                p++;
            size_t sig = 0;
            for (char *q = p; *q; q++)
                sig += *q != '.';
            while (sig > 0 && buf[strlen(buf) - 1] == '0') { /* trailing zeros of %.40f */
                buf[strlen(buf) - 1] = '\0';
                sig--;
            }
            if (sig != 10)
                continue;
            ties++;
            check_g9(v);
            check_g9(-v);
        }
    ck_assert_int_gt(ties, 1000);
    ck_assert_int_eq(failures, 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("numtext");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, strtod_random_json_numbers);
    tcase_add_test(tc, strtod_printed_values);
    tcase_add_test(tc, strtod_halfway_cases);
    tcase_add_test(tc, strtod_edge_inputs);
    tcase_add_test(tc, strtod_random_garbage);
    tcase_add_test(tc, json_numbers_read_as_strtod);
    tcase_add_test(tc, g9_every_float_in_half_to_two);
    tcase_add_test(tc, g9_random_bits_and_edges);
    tcase_add_test(tc, g9_ties_constructed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
