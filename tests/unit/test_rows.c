/* test_rows.c - unit tests of api/rows.c: predict bodies into a float32 matrix.  Expected values
 * are written by hand in each test. */
#include <check.h>
#include <math.h>
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

int main(void)
{
    Suite *s = suite_create("rows");
    TCase *tc = tcase_create("rows");
    tcase_add_test(tc, dense_and_named_rows);
    tcase_add_test(tc, numbers_round_through_double);
    tcase_add_test(tc, errors_name_row_and_field);
    tcase_add_test(tc, row_limit_at_n_and_n_plus_1);
    tcase_add_test(tc, overlong_keys_stay_in_step);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
