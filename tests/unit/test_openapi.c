/* test_openapi.c - the OpenAPI document embedded in vigil-api (api/openapi.h) against the route
 * table (api/routes.c): the same method+path pairs in both, each operation's security exactly the
 * route's scope ([] for SCOPE_NONE, [{"bearer": ["read"|"write"|"admin"]}] otherwise), every
 * {param} of a pattern declared as a required path parameter, and the embedded bytes equal to
 * build/openapi.json (the file tests/tools/openapi_check.py validates).  The expected pairs come
 * from the table the server really dispatches through, never from the document. */
#include <check.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "openapi.h"
#include "routes.h"

static const char *const methods[] = {"get",     "put",  "post",  "delete",
                                      "options", "head", "patch", "trace"};

static cJSON *doc_parse(void)
{
    cJSON *d = cJSON_ParseWithLength(openapi_doc, openapi_doc_len);
    ck_assert_msg(cJSON_IsObject(d), "the embedded document is not a JSON object");
    return d;
}

/* The document's operation for a route, or NULL. */
static const cJSON *doc_op(const cJSON *doc, const char *method, const char *pattern)
{
    char lower[16];
    size_t i = 0;
    for (; method[i] && i + 1 < sizeof lower; i++)
        lower[i] = (char)tolower((unsigned char)method[i]);
    lower[i] = '\0';
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(paths, pattern);
    return cJSON_GetObjectItemCaseSensitive(item, lower);
}

static const char *scope_name(unsigned scope)
{
    return scope == SCOPE_READ    ? "read"
           : scope == SCOPE_WRITE ? "write"
           : scope == SCOPE_ADMIN ? "admin"
                                  : NULL;
}

START_TEST(every_route_is_documented_with_its_scope)
{
    cJSON *doc = doc_parse();
    for (size_t i = 0; i < routes_count; i++) {
        const route *rt = &routes_table[i];
        const cJSON *op = doc_op(doc, rt->method, rt->pattern);
        ck_assert_msg(op != NULL, "%s %s: not in api/openapi/ (add it to the area's fragment)",
                      rt->method, rt->pattern);
        const cJSON *sec = cJSON_GetObjectItemCaseSensitive(op, "security");
        ck_assert_msg(cJSON_IsArray(sec), "%s %s: no security", rt->method, rt->pattern);
        if (rt->scope == SCOPE_NONE) {
            ck_assert_msg(cJSON_GetArraySize(sec) == 0, "%s %s is public: security must be []",
                          rt->method, rt->pattern);
            continue;
        }
        const char *want = scope_name(rt->scope);
        ck_assert_msg(want != NULL, "%s %s: scope %u is not one of read/write/admin", rt->method,
                      rt->pattern, rt->scope);
        const cJSON *req = cJSON_GetArrayItem(sec, 0);
        const cJSON *scopes = cJSON_GetObjectItemCaseSensitive(req, "bearer");
        const cJSON *s0 = cJSON_GetArrayItem(scopes, 0);
        ck_assert_msg(cJSON_GetArraySize(sec) == 1 && cJSON_GetArraySize(req) == 1 &&
                          cJSON_GetArraySize(scopes) == 1 && cJSON_IsString(s0) &&
                          strcmp(s0->valuestring, want) == 0,
                      "%s %s: security must be [{\"bearer\": [\"%s\"]}]", rt->method, rt->pattern,
                      want);
    }
    cJSON_Delete(doc);
}
END_TEST

/* True when routes_table has (method in upper case of m, pattern). */
static int in_table(const char *m, const char *pattern)
{
    for (size_t i = 0; i < routes_count; i++)
        if (strcasecmp(routes_table[i].method, m) == 0 &&
            strcmp(routes_table[i].pattern, pattern) == 0)
            return 1;
    return 0;
}

START_TEST(every_documented_operation_is_a_route)
{
    cJSON *doc = doc_parse();
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
    size_t ops = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, paths)
    {
        for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
            if (!cJSON_GetObjectItemCaseSensitive(item, methods[m]))
                continue;
            ops++;
            ck_assert_msg(in_table(methods[m], item->string),
                          "%s %s is documented but api/routes.c has no such route", methods[m],
                          item->string);
        }
    }
    ck_assert_uint_eq(ops, routes_count);
    cJSON_Delete(doc);
}
END_TEST

/* True when params (an array of Parameter Objects, may be NULL) declares path parameter name. */
static int declares(const cJSON *params, const char *name, size_t len)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, params)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(p, "name");
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(p, "in");
        const cJSON *req = cJSON_GetObjectItemCaseSensitive(p, "required");
        if (cJSON_IsString(n) && strlen(n->valuestring) == len &&
            strncmp(n->valuestring, name, len) == 0 && cJSON_IsString(in) &&
            strcmp(in->valuestring, "path") == 0 && cJSON_IsTrue(req))
            return 1;
    }
    return 0;
}

START_TEST(path_parameters_are_declared)
{
    cJSON *doc = doc_parse();
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
    for (size_t i = 0; i < routes_count; i++) {
        const route *rt = &routes_table[i];
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(paths, rt->pattern);
        const cJSON *op = doc_op(doc, rt->method, rt->pattern);
        ck_assert_ptr_nonnull(op);
        for (const char *p = strchr(rt->pattern, '{'); p; p = strchr(p + 1, '{')) {
            size_t len = strcspn(p + 1, "}");
            ck_assert_msg(
                declares(cJSON_GetObjectItemCaseSensitive(item, "parameters"), p + 1, len) ||
                    declares(cJSON_GetObjectItemCaseSensitive(op, "parameters"), p + 1, len),
                "%s %s: path parameter {%.*s} is not declared (in: path, required)", rt->method,
                rt->pattern, (int)len, p + 1);
        }
    }
    cJSON_Delete(doc);
}
END_TEST

START_TEST(embedded_bytes_are_build_openapi_json)
{
    FILE *f = fopen("build/openapi.json", "rb");
    ck_assert_msg(f != NULL, "build/openapi.json missing (run from the repository root)");
    char *buf = malloc(openapi_doc_len + 2);
    ck_assert_ptr_nonnull(buf);
    size_t n = fread(buf, 1, openapi_doc_len + 1, f);
    fclose(f);
    ck_assert_msg(n == openapi_doc_len && memcmp(buf, openapi_doc, n) == 0,
                  "the embedded document differs from build/openapi.json: rebuild");
    ck_assert_uint_eq((unsigned char)openapi_doc[openapi_doc_len], 0);
    free(buf);
}
END_TEST

static Suite *openapi_suite(void)
{
    Suite *s = suite_create("openapi");
    TCase *tc = tcase_create("routes");
    tcase_add_test(tc, every_route_is_documented_with_its_scope);
    tcase_add_test(tc, every_documented_operation_is_a_route);
    tcase_add_test(tc, path_parameters_are_declared);
    tcase_add_test(tc, embedded_bytes_are_build_openapi_json);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(openapi_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
