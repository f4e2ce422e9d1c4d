/* test_rows.c - unit tests of api/rows.c: predict bodies into a float32 matrix.  Expected values
 * are written by hand in each test. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rows.h"

static const char *const names[] = {"a", "b c", "\xc3\xa9t\xc3\xa9"};

static int parse(const char *body, rows_result *r)
{
    return rows_parse(body, strlen(body), names, 3, 3, 4, r);
}

START_TEST(dense_and_named_rows)
{
    rows_result r;
    ck_assert_int_eq(parse("{\"rows\": [[1.5, null, -3], {\"b c\": 2, \"\\u00e9t\\u00e9\": 4}],"
                           " \"output_margin\": true}",
                           &r),
                     0);
    ck_assert_uint_eq(r.nrows, 2);
    ck_assert_int_eq(r.output_margin, 1);
    ck_assert(r.rows[0] == 1.5f && isnan(r.rows[1]) && r.rows[2] == -3.0f);
    ck_assert(isnan(r.rows[3]) && r.rows[4] == 2.0f && r.rows[5] == 4.0f);
    rows_result_free(&r);
}
END_TEST

START_TEST(numbers_round_through_double)
{
    rows_result r;
    /* 0.1 as a double rounded to float is 0x3dcccccd; 1e39 overflows float to +inf. */
    ck_assert_int_eq(parse("{\"rows\": [[0.1, 1e39, -0.0]]}", &r), 0);
    ck_assert(r.rows[0] == 0.1f);
    ck_assert(isinf(r.rows[1]) && r.rows[1] > 0);
    ck_assert(r.rows[2] == 0.0f && signbit(r.rows[2]));
    rows_result_free(&r);
}
END_TEST

START_TEST(errors_name_row_and_field)
{
    rows_result r;
    ck_assert_int_eq(parse("{\"rows\": [[1, 2, 3], [1, 2]]}", &r), -1);
    ck_assert_int_eq(r.status, 400);
    ck_assert_str_eq(r.field, "rows[1]");
    ck_assert_int_eq(parse("{\"rows\": [[1, \"x\", 3]]}", &r), -1);
    ck_assert_str_eq(r.field, "rows[0][1]");
    ck_assert_int_eq(parse("{\"rows\": [{\"zz\": 1}]}", &r), -1);
    ck_assert_str_eq(r.field, "rows[0].zz");
    ck_assert_int_eq(parse("{\"rows\": [{\"a\": 1, \"a\": 2}]}", &r), -1);
    ck_assert_str_eq(r.field, "rows[0].a");
    ck_assert_int_eq(parse("{\"rows\": [[1, 2, true]]}", &r), -1);
    ck_assert_str_eq(r.field, "rows[0][2]");
    ck_assert_int_eq(parse("{\"rows\": [7]}", &r), -1);
    ck_assert_str_eq(r.field, "rows[0]");
    ck_assert_int_eq(parse("{\"rows\": []}", &r), -1);
    ck_assert_int_eq(parse("{}", &r), -1);
    ck_assert_str_eq(r.field, "rows");
    ck_assert_int_eq(parse("{\"rows\": [[1,2,3]], \"extra\": 1}", &r), -1);
    ck_assert_str_eq(r.field, "extra");
    ck_assert_int_eq(parse("{\"rows\": [[1,2,3]], \"rows\": [[1,2,3]]}", &r), -1);
    ck_assert_int_eq(parse("{\"output_margin\": 1, \"rows\": [[1,2,3]]}", &r), -1);
    ck_assert_str_eq(r.field, "output_margin");
    ck_assert_int_eq(parse("[[1,2,3]]", &r), -1);
    ck_assert_int_eq(parse("{\"rows\": [[1,2,3]]} x", &r), -1); /* strict JSON first */
}
END_TEST

START_TEST(row_limit_at_n_and_n_plus_1)
{
    rows_result r;
    ck_assert_int_eq(parse("{\"rows\": [[1,2,3],[1,2,3],[1,2,3],[1,2,3]]}", &r), 0);
    ck_assert_uint_eq(r.nrows, 4);
    rows_result_free(&r);
    ck_assert_int_eq(parse("{\"rows\": [[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3]]}", &r), -1);
    ck_assert_int_eq(r.status, 413);
}
END_TEST

/* A key longer than the reader's name buffer must not desynchronise it (it used to stop reading
 * mid-string): the answer is a clean 400 naming the row. */
START_TEST(overlong_keys_stay_in_step)
{
    size_t n = 5000;
    char *body = malloc(n + 200);
    char *key = malloc(n + 1);
    memset(key, 'k', n);
    key[n] = '\0';
    key[100] = '"'; /* would be a quote inside the name if escaped wrongly */
    key[99] = '\\';
    snprintf(body, n + 200, "{\"rows\": [{\"%s\": 1, \"a\": \"\\\"]}\"}]}", key);
    rows_result r;
    ck_assert_int_eq(rows_parse(body, strlen(body), names, 3, 3, 4, &r), -1);
    ck_assert_int_eq(r.status, 400);
    ck_assert(strncmp(r.field, "rows[0].", 8) == 0);
    snprintf(body, n + 200, "{\"%s\": 1, \"rows\": [[1,2,3]]}", key);
    ck_assert_int_eq(rows_parse(body, strlen(body), names, 3, 3, 4, &r), -1);
    ck_assert_int_eq(r.status, 400);
    free(key);
    free(body);
}
END_TEST

/* Every cell a 2000 x 50 body of varied numbers turns into is (float)strtod of its text, bit for
 * bit (rows_parse_f64: the double itself): the independent source is libc's strtod, called here
 * on each number's text.  The texts: %.9g of random floats, %.17g of random doubles, integers,
 * -0, subnormals, 20-digit mantissas, exponents past float's range, with whitespace around. */
START_TEST(cells_are_strtod_bit_for_bit)
{
    enum { NR = 2000, NF = 50 };
    size_t cap = (size_t)NR * NF * 48 + 64;
    char *body = malloc(cap);
    char(*text)[40] = malloc((size_t)NR * NF * sizeof *text);
    ck_assert(body && text);
    uint64_t x = 88172645463325252u;
    size_t o = (size_t)snprintf(body, cap, "{\"rows\": [");
    for (size_t i = 0; i < (size_t)NR * NF; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        char *t = text[i];
        switch (x % 8) {
        case 0: {
            uint32_t b = (uint32_t)(x >> 32);
            float f;
            memcpy(&f, &b, sizeof f);
            snprintf(t, 40, "%.9g", isfinite(f) ? (double)f : 1.5);
            break;
        }
        case 1: {
            uint64_t b = x * 0x9E3779B97F4A7C15u;
            double d;
            memcpy(&d, &b, sizeof d);
            snprintf(t, 40, "%.17g", isfinite(d) ? d : -2.25);
            break;
        }
        case 2:
            snprintf(t, 40, "%lld", (long long)(x >> (x % 40)) * ((x & 1) ? -1 : 1));
            break;
        case 3:
            snprintf(t, 40, "%s",
                     (const char *[]){"-0", "0.0", "1.4e-45", "7e-46", "4.9e-324", "3.4028236e38",
                                      "1e39", "-1e400", "12345678901234567890",
                                      "0.000000001"}[x % 10]);
            break;
        default: /* feature-like: a few digits, sometimes an exponent */
            snprintf(t, 40, "%.*f%s", (int)(x % 10), ((double)(x % 200000) - 100000) / 997.0,
                     x % 5 == 0 ? "e-3" : "");
            break;
        }
        o += (size_t)snprintf(body + o, cap - o, "%s%s%s%s", i % NF == 0 ? (i ? "], [" : "[") : ",",
                              x % 3 == 0 ? " " : "", t, x % 7 == 0 ? "\n" : "");
    }
    o += (size_t)snprintf(body + o, cap - o, "]]}");
    rows_result r, r64;
    ck_assert_int_eq(rows_parse(body, o, NULL, 0, NF, NR, &r), 0);
    ck_assert_int_eq(rows_parse_f64(body, o, NULL, 0, NF, NR, &r64), 0);
    ck_assert_uint_eq(r.nrows, NR);
    for (size_t i = 0; i < (size_t)NR * NF; i++) {
        double d = strtod(text[i], NULL);
        float f = (float)d;
        ck_assert_msg(
            memcmp(&r.rows[i], &f, sizeof f) == 0 && memcmp(&r64.rows64[i], &d, sizeof d) == 0,
            "cell %zu \"%s\": %a / %a, strtod %a", i, text[i], (double)r.rows[i], r64.rows64[i], d);
    }
    rows_result_free(&r);
    rows_result_free(&r64);
    free(body);
    free(text);
}
END_TEST

/* Compares two parses field by field (status, field, reason, rows, flags, every cell's bits). */
static void same_result(const char *body, int rc_a, const rows_result *a, int rc_b,
                        const rows_result *b, int f64, uint32_t nfeat)
{
    ck_assert_msg(rc_a == rc_b, "rc %d vs general %d for body %.300s", rc_a, rc_b, body);
    if (rc_a != 0) {
        ck_assert_msg(a->status == b->status && a->malformed == b->malformed &&
                          strcmp(a->field, b->field) == 0 && strcmp(a->err, b->err) == 0,
                      "error %d/%s/%s vs general %d/%s/%s for body %.300s", a->status, a->field,
                      a->err, b->status, b->field, b->err, body);
        return;
    }
    ck_assert_msg(a->nrows == b->nrows && a->output_margin == b->output_margin,
                  "rows %u/%d vs general %u/%d for body %.300s", a->nrows, a->output_margin,
                  b->nrows, b->output_margin, body);
    size_t n = (size_t)a->nrows * nfeat;
    ck_assert(memcmp(f64 ? (const void *)a->rows64 : (const void *)a->rows,
                     f64 ? (const void *)b->rows64 : (const void *)b->rows,
                     n * (f64 ? sizeof(double) : sizeof(float))) == 0);
}

/* rows_parse (its one-pass fast path, falling back to the general path) answers exactly as
 * rows_parse_general (json_validate + the general reader) on random bodies of the common shape
 * and on the same bodies with bytes deleted, inserted or replaced (keys, literals, escapes,
 * numbers cut short, leading zeros, trailing commas, nesting, object rows, wrong row lengths,
 * too many rows, trailing data): every status, field, message and cell. */
START_TEST(fast_path_answers_as_the_general_path)
{
    static const char *const pieces[] = {" ",
                                         "\n",
                                         "\t",
                                         "\r",
                                         ",",
                                         "[",
                                         "]",
                                         "{",
                                         "}",
                                         ":",
                                         "\"",
                                         "null",
                                         "nul",
                                         "true",
                                         "fals",
                                         "-",
                                         "0",
                                         "01",
                                         "1.",
                                         ".5",
                                         "1e",
                                         "1e+",
                                         "-0",
                                         "1.5e-7",
                                         "12345678901234567890123",
                                         "x",
                                         "\\u0072",
                                         "\"rows\"",
                                         "\"output_margin\"",
                                         "\"a\"",
                                         "\xc3\xa9",
                                         "\xff",
                                         "[]",
                                         "{}"};
    static const char *const nums[] = {"0",
                                       "-0",
                                       "1",
                                       "-2.5",
                                       "0.0216884166",
                                       "1e3",
                                       "-1.11092126",
                                       "3.4028236e38",
                                       "1e-46",
                                       "12345678901234567890",
                                       "7E+2",
                                       "0.000001",
                                       "99.5e-1",
                                       "null"};
    uint64_t x = 0x1234567887654321u;
#define NEXT() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
    char body[4096], mut[4200];
    long fast_ok = 0;
    for (long it = 0; it < 60000; it++) {
        uint32_t nfeat = 1 + (uint32_t)(NEXT() % 4), nrows = 1 + (uint32_t)(NEXT() % 4);
        size_t o = 0;
        int margin_first = NEXT() % 3 == 0, margin_last = !margin_first && NEXT() % 3 == 0;
        const char *ws = NEXT() % 4 == 0 ? " \n" : "";
        o += (size_t)snprintf(body + o, sizeof body - o, "%s{%s", ws, ws);
        if (margin_first)
            o += (size_t)snprintf(body + o, sizeof body - o, "\"output_margin\":%s%s,",
                                  NEXT() & 1 ? "true" : "false", ws);
        o += (size_t)snprintf(body + o, sizeof body - o, "\"rows\"%s:%s[", ws, ws);
        for (uint32_t r = 0; r < nrows; r++) {
            o += (size_t)snprintf(body + o, sizeof body - o, "%s[", r ? "," : "");
            for (uint32_t k = 0; k < nfeat; k++)
                o += (size_t)snprintf(body + o, sizeof body - o, "%s%s%s", k ? "," : "", ws,
                                      nums[NEXT() % (sizeof nums / sizeof *nums)]);
            o += (size_t)snprintf(body + o, sizeof body - o, "%s]", ws);
        }
        o += (size_t)snprintf(body + o, sizeof body - o, "]");
        if (margin_last)
            o += (size_t)snprintf(body + o, sizeof body - o, ",%s\"output_margin\": true", ws);
        o += (size_t)snprintf(body + o, sizeof body - o, "}%s", ws);
        /* mutate: none, or 1..3 edits */
        size_t len = o;
        memcpy(mut, body, len + 1);
        int edits = NEXT() % 3 == 0 ? 0 : 1 + (int)(NEXT() % 3);
        for (int ed = 0; ed < edits && len > 0; ed++) {
            size_t at = NEXT() % len;
            const char *pc = pieces[NEXT() % (sizeof pieces / sizeof *pieces)];
            size_t pl = strlen(pc);
            switch (NEXT() % 3) {
            case 0: /* delete one byte */
                memmove(mut + at, mut + at + 1, len - at);
                len--;
                break;
            case 1: /* insert a piece */
                if (len + pl + 1 >= sizeof mut)
                    break;
                memmove(mut + at + pl, mut + at, len - at + 1);
                memcpy(mut + at, pc, pl);
                len += pl;
                break;
            default: /* replace one byte with a piece */
                if (len + pl + 1 >= sizeof mut)
                    break;
                memmove(mut + at + pl, mut + at + 1, len - at);
                memcpy(mut + at, pc, pl);
                len += pl - 1;
                break;
            }
        }
        uint32_t max_rows = 1 + (uint32_t)(NEXT() % 5);
        for (int f64 = 0; f64 <= 1; f64++) {
            rows_result a, b;
            int ra = f64 ? rows_parse_f64(mut, len, names, 3, nfeat, max_rows, &a)
                         : rows_parse(mut, len, names, 3, nfeat, max_rows, &a);
            int rb = rows_parse_general(mut, len, names, 3, nfeat, max_rows, f64, &b);
            same_result(mut, ra, &a, rb, &b, f64, nfeat);
            fast_ok += ra == 0;
            if (ra == 0)
                rows_result_free(&a);
            if (rb == 0)
                rows_result_free(&b);
        }
    }
#undef NEXT
    ck_assert_int_gt(fast_ok, 10000); /* the comparison covered many accepted bodies */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rows");
    TCase *tc = tcase_create("rows");
    tcase_add_test(tc, dense_and_named_rows);
    tcase_add_test(tc, numbers_round_through_double);
    tcase_add_test(tc, errors_name_row_and_field);
    tcase_add_test(tc, row_limit_at_n_and_n_plus_1);
    tcase_add_test(tc, overlong_keys_stay_in_step);
    tcase_add_test(tc, cells_are_strtod_bit_for_bit);
    tcase_add_test(tc, fast_path_answers_as_the_general_path);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
