/* test_router.c - unit tests for api/router.{h,c}: static and {param} matches, 404 versus 405 with
 * the Allow list, malformed paths (trailing slash, "//", no leading slash, too many segments), and
 * the application's own table in routes.c.  Expected routes, parameters and Allow strings are
 * written out by hand. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "routes.h"
#include "users.h"

/* Distinct dummy handlers so a match can be identified by its function too. */
static void h_a(http_req *q, http_resp *r)
{
    (void)q;
    (void)r;
}
static void h_b(http_req *q, http_resp *r)
{
    (void)q;
    (void)r;
}
static void h_c(http_req *q, http_resp *r)
{
    (void)q;
    (void)r;
}
static void h_d(http_req *q, http_resp *r)
{
    (void)q;
    (void)r;
}
static void h_e(http_req *q, http_resp *r)
{
    (void)q;
    (void)r;
}
static void h_f(http_req *q, http_resp *r)
{
    (void)q;
    (void)r;
}

static const route local[] = {
    {"GET", "/", h_a, SCOPE_NONE, BODY_NONE, 0},
    {"GET", "/things", h_b, SCOPE_READ, BODY_NONE, 0},
    {"POST", "/things", h_c, SCOPE_WRITE, BODY_JSON, 0},
    {"GET", "/things/{id}", h_d, SCOPE_READ, BODY_NONE, 0},
    {"DELETE", "/things/{id}", h_e, SCOPE_WRITE, BODY_NONE, 0},
    {"PUT", "/things/{id}/parts/{part}", h_f, SCOPE_WRITE, BODY_JSON, 0},
    {"GET", "/things/special", h_a, SCOPE_NONE, BODY_NONE, 0}, /* shadowed by {id} for GET */
};
#define NLOCAL (sizeof local / sizeof local[0])

typedef struct match {
    const route *rt;
    const char *params[HTTP_MAX_PARAMS];
    int nparams;
    int status;
    char allow[64];
    char path[ROUTER_MAX_PATH + 64];
} match;

static const route *run(const route *table, size_t n, const char *method, const char *path,
                        match *m)
{
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "%s", path);
    m->rt = router_match(table, n, method, m->path, m->params, &m->nparams, &m->status, m->allow,
                         sizeof m->allow);
    return m->rt;
}

START_TEST(static_match)
{
    match m;
    ck_assert_ptr_eq(run(local, NLOCAL, "GET", "/things", &m), &local[1]);
    ck_assert_int_eq(m.status, 200);
    ck_assert_int_eq(m.nparams, 0);
    ck_assert_ptr_eq(run(local, NLOCAL, "POST", "/things", &m), &local[2]);
    ck_assert(m.rt->fn == h_c);
    ck_assert_ptr_eq(run(local, NLOCAL, "GET", "/", &m), &local[0]);
    ck_assert_int_eq(m.nparams, 0);
}
END_TEST

START_TEST(param_match)
{
    match m;
    ck_assert_ptr_eq(run(local, NLOCAL, "GET", "/things/abc-123", &m), &local[3]);
    ck_assert_int_eq(m.nparams, 1);
    ck_assert_str_eq(m.params[0], "abc-123");
    ck_assert_ptr_eq(run(local, NLOCAL, "DELETE", "/things/x", &m), &local[4]);
    ck_assert_str_eq(m.params[0], "x");
    ck_assert_ptr_eq(run(local, NLOCAL, "PUT", "/things/t1/parts/p2", &m), &local[5]);
    ck_assert_int_eq(m.nparams, 2);
    ck_assert_str_eq(m.params[0], "t1");
    ck_assert_str_eq(m.params[1], "p2");
    /* The first matching entry wins: "special" is an {id} for GET. */
    ck_assert_ptr_eq(run(local, NLOCAL, "GET", "/things/special", &m), &local[3]);
    ck_assert_str_eq(m.params[0], "special");
    /* Parameters are taken as they are (no decoding), any characters but '/'. */
    ck_assert_ptr_eq(run(local, NLOCAL, "GET", "/things/%41b.c", &m), &local[3]);
    ck_assert_str_eq(m.params[0], "%41b.c");
}
END_TEST

START_TEST(literal_segments_exact)
{
    match m;
    ck_assert_ptr_null(run(local, NLOCAL, "GET", "/thing", &m));
    ck_assert_int_eq(m.status, 404);
    ck_assert_ptr_null(run(local, NLOCAL, "GET", "/thingss", &m));
    ck_assert_int_eq(m.status, 404);
    ck_assert_ptr_null(run(local, NLOCAL, "GET", "/Things", &m)); /* case-sensitive */
    ck_assert_int_eq(m.status, 404);
    ck_assert_ptr_null(run(local, NLOCAL, "PUT", "/things/t1/part/p2", &m));
    ck_assert_int_eq(m.status, 404);
    ck_assert_ptr_null(run(local, NLOCAL, "GET", "/things/a/b", &m)); /* too deep for {id} */
    ck_assert_int_eq(m.status, 404);
    ck_assert_ptr_null(run(local, NLOCAL, "PUT", "/things/t1/parts", &m)); /* too shallow */
    ck_assert_int_eq(m.status, 404);
}
END_TEST

START_TEST(method_not_allowed_lists_methods)
{
    match m;
    ck_assert_ptr_null(run(local, NLOCAL, "DELETE", "/things", &m));
    ck_assert_int_eq(m.status, 405);
    ck_assert_str_eq(m.allow, "GET, POST");
    ck_assert_ptr_null(run(local, NLOCAL, "PATCH", "/things/42", &m));
    ck_assert_int_eq(m.status, 405);
    ck_assert_str_eq(m.allow, "GET, DELETE");
    ck_assert_ptr_null(run(local, NLOCAL, "GET", "/things/1/parts/2", &m));
    ck_assert_int_eq(m.status, 405);
    ck_assert_str_eq(m.allow, "PUT");
    ck_assert_ptr_null(run(local, NLOCAL, "POST", "/", &m));
    ck_assert_int_eq(m.status, 405);
    ck_assert_str_eq(m.allow, "GET");
    /* /things/special matches two GET patterns: GET is listed once. */
    ck_assert_ptr_null(run(local, NLOCAL, "POST", "/things/special", &m));
    ck_assert_int_eq(m.status, 405);
    ck_assert_str_eq(m.allow, "GET, DELETE");
    /* Methods are case-sensitive (RFC 9110). */
    ck_assert_ptr_null(run(local, NLOCAL, "get", "/things", &m));
    ck_assert_int_eq(m.status, 405);
    /* A match lists nothing, even after rows of the same path with other methods. */
    ck_assert_ptr_eq(run(local, NLOCAL, "POST", "/things", &m)->fn, h_c);
    ck_assert_int_eq(m.status, 200);
    ck_assert_str_eq(m.allow, "");
    ck_assert_ptr_eq(run(local, NLOCAL, "DELETE", "/things/7", &m)->fn, h_e);
    ck_assert_str_eq(m.allow, "");
}
END_TEST

START_TEST(not_found_has_empty_allow)
{
    match m;
    ck_assert_ptr_null(run(local, NLOCAL, "GET", "/nope", &m));
    ck_assert_int_eq(m.status, 404);
    ck_assert_str_eq(m.allow, "");
    ck_assert_int_eq(m.nparams, 0);
}
END_TEST

START_TEST(malformed_paths)
{
    match m;
    const char *bad[] = {"/things/",   "//things",    "/things//x", "things",     "",
                         "/things/x/", "/things/x//", "//",         "/./things/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(run(local, NLOCAL, "GET", bad[i], &m) == NULL, "matched '%s'", bad[i]);
        ck_assert_msg(m.status == 404, "'%s' gave %d", bad[i], m.status);
        ck_assert_str_eq(m.allow, "");
    }
}
END_TEST

/* ROUTER_MAX_SEGMENTS segments are split, one more is a 404 even for a pattern that long. */
START_TEST(segment_limit_n_and_n_plus_1)
{
    ck_assert_int_eq(ROUTER_MAX_SEGMENTS, 16);
    const route deep[] = {
        {"GET", "/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/{x}", h_a, SCOPE_NONE, BODY_NONE, 0},
        {"GET", "/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/{x}", h_b, SCOPE_NONE, BODY_NONE, 0},
    };
    match m;
    ck_assert_ptr_eq(run(deep, 2, "GET", "/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/z", &m), &deep[0]);
    ck_assert_str_eq(m.params[0], "z");
    ck_assert_ptr_null(run(deep, 2, "GET", "/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/z", &m));
    ck_assert_int_eq(m.status, 404);
    ck_assert_ptr_null(run(deep, 2, "POST", "/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/z", &m));
    ck_assert_int_eq(m.status, 404); /* not 405: the path itself is refused */
}
END_TEST

/* HTTP_MAX_PARAMS placeholders match; a pattern with more never does. */
START_TEST(param_limit)
{
    ck_assert_int_eq(HTTP_MAX_PARAMS, 4);
    const route t[] = {
        {"GET", "/{a}/{b}/{c}/{d}", h_a, SCOPE_NONE, BODY_NONE, 0},
        {"GET", "/{a}/{b}/{c}/{d}/{e}", h_b, SCOPE_NONE, BODY_NONE, 0},
    };
    match m;
    ck_assert_ptr_eq(run(t, 2, "GET", "/1/2/3/4", &m), &t[0]);
    ck_assert_int_eq(m.nparams, 4);
    ck_assert_str_eq(m.params[0], "1");
    ck_assert_str_eq(m.params[3], "4");
    ck_assert_ptr_null(run(t, 2, "GET", "/1/2/3/4/5", &m));
    ck_assert_int_eq(m.status, 404);
}
END_TEST

START_TEST(allow_buffer_bounded)
{
    const route t[] = {
        {"GET", "/x", h_a, SCOPE_NONE, BODY_NONE, 0},
        {"POST", "/x", h_a, SCOPE_NONE, BODY_NONE, 0},
        {"PUT", "/x", h_a, SCOPE_NONE, BODY_NONE, 0},
        {"PATCH", "/x", h_a, SCOPE_NONE, BODY_NONE, 0},
        {"DELETE", "/x", h_a, SCOPE_NONE, BODY_NONE, 0},
    };
    char path[8] = "/x", allow[12];
    const char *params[HTTP_MAX_PARAMS];
    int np, st;
    ck_assert_ptr_null(router_match(t, 5, "OPTIONS", path, params, &np, &st, allow, sizeof allow));
    ck_assert_int_eq(st, 405);
    ck_assert_uint_lt(strlen(allow), sizeof allow); /* truncated, still terminated */
    ck_assert(strncmp(allow, "GET, POST, PUT", sizeof allow - 1) == 0);
}
END_TEST

/* ---- the application's table ------------------------------------------------------------------
 */

static const route *app_route(const char *method, const char *path, match *m)
{
    return run(routes_table, routes_count, method, path, m);
}

START_TEST(app_routes)
{
    match m;
    const char *id = "0b9f4f8e-3c1a-4d6e-9a52-1f0e5b7c2d11";
    char p[128];
    ck_assert_ptr_nonnull(app_route("GET", "/health", &m));
    ck_assert_uint_eq(m.rt->scope, SCOPE_NONE);
    ck_assert_ptr_nonnull(app_route("GET", "/ready", &m));
    ck_assert_uint_eq(m.rt->scope, SCOPE_NONE);
    ck_assert_ptr_nonnull(app_route("POST", "/api/v1/users", &m));
    ck_assert(m.rt->fn == users_create);
    ck_assert_uint_eq(m.rt->scope, SCOPE_WRITE);
    ck_assert_int_eq(m.rt->body, BODY_JSON);
    ck_assert_ptr_nonnull(app_route("GET", "/api/v1/users", &m));
    ck_assert(m.rt->fn == users_list);
    ck_assert_uint_eq(m.rt->scope, SCOPE_READ);
    snprintf(p, sizeof p, "/api/v1/users/%s", id);
    ck_assert_ptr_nonnull(app_route("GET", p, &m));
    ck_assert(m.rt->fn == users_get);
    ck_assert_int_eq(m.nparams, 1);
    ck_assert_str_eq(m.params[0], id);
    ck_assert_ptr_nonnull(app_route("PATCH", p, &m));
    ck_assert(m.rt->fn == users_update);
    ck_assert_uint_eq(m.rt->scope, SCOPE_WRITE);
    ck_assert_ptr_nonnull(app_route("DELETE", p, &m));
    ck_assert(m.rt->fn == users_delete);
    ck_assert_uint_eq(m.rt->scope, SCOPE_WRITE);
    /* The router does not validate parameters: a non-UUID id reaches the handler (400 there). */
    ck_assert_ptr_nonnull(app_route("GET", "/api/v1/users/not-a-uuid", &m));
    ck_assert_str_eq(m.params[0], "not-a-uuid");
}
END_TEST

START_TEST(app_routes_errors)
{
    match m;
    ck_assert_ptr_null(app_route("DELETE", "/api/v1/users", &m));
    ck_assert_int_eq(m.status, 405);
    ck_assert_ptr_nonnull(strstr(m.allow, "GET"));
    ck_assert_ptr_nonnull(strstr(m.allow, "POST"));
    ck_assert_ptr_null(strstr(m.allow, "DELETE"));
    ck_assert_ptr_null(app_route("PUT", "/api/v1/users/x", &m));
    ck_assert_int_eq(m.status, 405);
    ck_assert_str_eq(m.allow, "GET, PATCH, DELETE");
    ck_assert_ptr_null(app_route("POST", "/health", &m));
    ck_assert_int_eq(m.status, 405);
    ck_assert_str_eq(m.allow, "GET");
    ck_assert_ptr_null(app_route("GET", "/api/v1/users/", &m));
    ck_assert_int_eq(m.status, 404);
    ck_assert_ptr_null(app_route("GET", "/api/v1//users", &m));
    ck_assert_int_eq(m.status, 404);
    ck_assert_ptr_null(app_route("GET", "/api/v2/users", &m));
    ck_assert_int_eq(m.status, 404);
    ck_assert_ptr_null(app_route("GET", "/health/", &m));
    ck_assert_int_eq(m.status, 404);
    ck_assert_ptr_null(app_route("GET", "/api/v1/users/x/y", &m));
    ck_assert_int_eq(m.status, 404);
}
END_TEST

/* Every entry of the table is reachable: its own pattern (placeholders filled in) routes to it
 * unless an earlier entry has the same method and pattern shape. */
START_TEST(app_table_well_formed)
{
    ck_assert_uint_gt(routes_count, 0);
    for (size_t i = 0; i < routes_count; i++) {
        const route *r = &routes_table[i];
        ck_assert_ptr_nonnull(r->fn);
        ck_assert_int_eq(r->pattern[0], '/');
        ck_assert_uint_le(strlen(r->pattern), ROUTER_MAX_PATH);
        char path[ROUTER_MAX_PATH + 1];
        size_t o = 0;
        for (const char *p = r->pattern; *p && o < sizeof path - 2;) {
            if (*p == '{') {
                path[o++] = 'v';
                p = strchr(p, '}') + 1;
            } else {
                path[o++] = *p++;
            }
        }
        path[o] = '\0';
        match m;
        const route *got = app_route(r->method, path, &m);
        ck_assert_msg(got == r, "route %zu (%s %s) not reached by %s", i, r->method, r->pattern,
                      path);
    }
}
END_TEST

static Suite *router_suite(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("local");
    tcase_add_test(tc, static_match);
    tcase_add_test(tc, param_match);
    tcase_add_test(tc, literal_segments_exact);
    tcase_add_test(tc, method_not_allowed_lists_methods);
    tcase_add_test(tc, not_found_has_empty_allow);
    tcase_add_test(tc, malformed_paths);
    tcase_add_test(tc, segment_limit_n_and_n_plus_1);
    tcase_add_test(tc, param_limit);
    tcase_add_test(tc, allow_buffer_bounded);
    suite_add_tcase(s, tc);
    tc = tcase_create("app");
    tcase_add_test(tc, app_routes);
    tcase_add_test(tc, app_routes_errors);
    tcase_add_test(tc, app_table_well_formed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(router_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
