/* e2e_openapi.c - GET /api/v1/openapi.json on a live vigil-api (issue 15 part 1): answered without
 * a key (and with any key), as application/json, byte for byte the document the build assembled
 * (build/openapi.json, which tests/tools/openapi_check.py validates against the OpenAPI 3.1
 * meta-schema), and only for GET.  The route table against the document is test_openapi's; every
 * response of every e2e suite against the document is run.sh's openapi stage. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert.h"
#include "harness.h"

static h_env E;

static void env_up(void)
{
    e2e_env_up(&E, NULL);
}

static void env_down(void)
{
    e2e_env_down(&E);
}

/* build/openapi.json (tests run from the repository root), malloc'd; *len its size. */
static char *built_document(size_t *len)
{
    FILE *f = fopen("build/openapi.json", "rb");
    ck_assert_msg(f != NULL, "build/openapi.json missing (run from the repository root)");
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    for (size_t r; b && (r = fread(b + n, 1, cap - n, f)) > 0;) {
        n += r;
        if (n == cap)
            b = realloc(b, cap *= 2);
    }
    fclose(f);
    ck_assert_ptr_nonnull(b);
    *len = n;
    return b;
}

START_TEST(served_without_a_key_as_built)
{
    size_t len;
    char *want = built_document(&len);
    const char *keys[] = {NULL, "vgl_not_a_key", E.key};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        h_resp r;
        char ct[128];
        ck_assert_int_eq(
            h_http(&E, "GET", "/api/v1/openapi.json", keys[i], NULL, NULL, 0, NULL, &r), 0);
        ck_assert_msg(r.status == 200, "key %s: %ld %s", keys[i] ? keys[i] : "(none)", r.status,
                      r.body);
        ck_assert_str_eq(h_header(&r, "Content-Type", ct, sizeof ct), "application/json");
        ck_assert_msg(r.len == len && memcmp(r.body, want, len) == 0,
                      "the served document (%zu bytes) is not build/openapi.json (%zu bytes)",
                      r.len, len);
        ck_assert_str_eq(h_str(&r, "openapi"), "3.1.0");
        h_resp_free(&r);
    }
    free(want);
}
END_TEST

START_TEST(only_get)
{
    static const char *const others[] = {"POST", "PUT", "DELETE", "PATCH"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        h_resp r;
        char allow[64];
        e2e_req(&E, others[i], "/api/v1/openapi.json", NULL, &r);
        e2e_assert_problem(&r, 405, "method_not_allowed", NULL);
        ck_assert_str_eq(h_header(&r, "Allow", allow, sizeof allow), "GET");
        h_resp_free(&r);
    }
}
END_TEST

static Suite *openapi_suite(void)
{
    Suite *s = suite_create("e2e_openapi");
    TCase *tc = tcase_create("document");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, env_up, env_down);
    tcase_add_test(tc, served_without_a_key_as_built);
    tcase_add_test(tc, only_get);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(openapi_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
