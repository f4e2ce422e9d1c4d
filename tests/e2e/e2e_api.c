/* e2e_api.c - end-to-end tests of the HTTP API against real processes (a throwaway PostgreSQL,
 * vigil-hotpath and vigil-api started by the harness): the users resource (CRUD, partial update,
 * keyset pagination), field validation at N and N+1, the problem+json error format, strict JSON
 * bodies, the body-size limit, API keys (CLI and per request), request ids and the request log.
 *
 * One environment per TCase (unchecked fixture, CK_NOFORK): tests within a TCase share the
 * database, so every test uses its own external_id prefix.  Expected values are written here:
 * sizes are computed from the exact bytes sent, counts come from psql, not from the API. */
#include <check.h>
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "assert.h"
#include "clock.h"
#include "harness.h"
#include "json.h"

static h_env E;

static void env_up(void)
{
    e2e_env_up(&E, NULL);
}

static void env_down(void)
{
    e2e_env_down(&E);
}

/* ---- helpers ----------------------------------------------------------------------------------
 */

static void hdr(const h_resp *r, const char *name, char *out, size_t cap)
{
    ck_assert_msg(h_header(r, name, out, cap) != NULL, "no %s header", name);
}

static int is_uuid(const char *s)
{
    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ" within 10 minutes of now (UTC). */
static void assert_rfc3339_utc_now(const char *s)
{
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strlen(s) == 27, "timestamp '%s' is not YYYY-MM-DDTHH:MM:SS.ffffffZ", s);
    for (int i = 0; i < 27; i++) {
        char want = i == 4 || i == 7     ? '-'
                    : i == 10            ? 'T'
                    : i == 13 || i == 16 ? ':'
                    : i == 19            ? '.'
                    : i == 26            ? 'Z'
                                         : '9';
        if (want == '9')
            ck_assert_msg(isdigit((unsigned char)s[i]), "timestamp '%s' char %d", s, i);
        else
            ck_assert_msg(s[i] == want, "timestamp '%s' char %d", s, i);
    }
    struct tm tm = {0};
    ck_assert_int_eq(sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec),
                     6);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    long diff = (long)(t - time(NULL));
    ck_assert_msg(diff > -600 && diff < 600, "timestamp %s is %ld s away from now (not UTC?)", s,
                  diff);
}

/* Creates a user with only an external_id; copies its id. */
static void create_user(const char *ext, char *id_out)
{
    char body[300];
    h_resp r;
    snprintf(body, sizeof body, "{\"external_id\":\"%s\"}", ext);
    e2e_req(&E, "POST", "/api/v1/users", body, &r);
    ck_assert_msg(r.status == 201, "create %s: %ld %s", ext, r.status, r.body);
    snprintf(id_out, 37, "%s", h_str(&r, "id"));
    h_resp_free(&r);
}

/* POSTs body to /api/v1/users, returns the status (and frees the response). */
static long post_status(const char *body)
{
    h_resp r;
    e2e_req(&E, "POST", "/api/v1/users", body, &r);
    long st = r.status;
    h_resp_free(&r);
    return st;
}

static char *repeat(const char *unit, int n)
{
    size_t ul = strlen(unit);
    char *s = malloc(ul * (size_t)n + 1);
    for (int i = 0; i < n; i++)
        memcpy(s + ul * (size_t)i, unit, ul);
    s[ul * (size_t)n] = '\0';
    return s;
}

/* ---- users: CRUD ------------------------------------------------------------------------------
 */

START_TEST(users_create_get_delete)
{
    const char *body = "{\"external_id\":\"crud-1\",\"email\":\"ann@example.com\",\"name\":\"Ann "
                       "\xc3\x85str\xc3\xb6m\",\"country\":\"SE\",\"metadata\":{\"tier\":\"gold\","
                       "\"n\":3,\"tags\":[\"a\",\"b\"]}}";
    h_resp r, g;
    char loc[200], ct[100], id[40], want_loc[200];
    e2e_req(&E, "POST", "/api/v1/users", body, &r);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    hdr(&r, "Content-Type", ct, sizeof ct);
    ck_assert_str_eq(ct, "application/json");
    ck_assert(is_uuid(h_str(&r, "id")));
    snprintf(id, sizeof id, "%s", h_str(&r, "id"));
    hdr(&r, "Location", loc, sizeof loc);
    snprintf(want_loc, sizeof want_loc, "/api/v1/users/%s", id);
    ck_assert_str_eq(loc, want_loc);
    ck_assert_pstr_eq(h_str(&r, "external_id"), "crud-1");
    ck_assert_pstr_eq(h_str(&r, "email"), "ann@example.com");
    ck_assert_pstr_eq(h_str(&r, "name"), "Ann \xc3\x85str\xc3\xb6m");
    ck_assert_pstr_eq(h_str(&r, "country"), "SE");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(r.json, "metadata");
    ck_assert(cJSON_IsObject(m));
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(m, "tier")->valuestring, "gold");
    ck_assert(cJSON_GetObjectItemCaseSensitive(m, "n")->valuedouble == 3);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "tags")), 2);
    assert_rfc3339_utc_now(h_str(&r, "created_at"));
    assert_rfc3339_utc_now(h_str(&r, "updated_at"));
    ck_assert(strcmp(h_str(&r, "updated_at"), h_str(&r, "created_at")) >= 0);
    /* Exactly the documented members, nothing else. */
    ck_assert_int_eq(cJSON_GetArraySize(r.json), 8);

    /* GET by id returns the same representation. */
    e2e_req(&E, "GET", loc, NULL, &g);
    ck_assert_int_eq(g.status, 200);
    ck_assert_msg(cJSON_Compare(g.json, r.json, 1), "GET %s differs from POST %s", g.body, r.body);
    h_resp_free(&g);
    h_resp_free(&r);

    /* DELETE: 204 without a body, then 404 for GET and DELETE. */
    e2e_req(&E, "DELETE", loc, NULL, &r);
    ck_assert_int_eq(r.status, 204);
    ck_assert_uint_eq(r.len, 0);
    h_resp_free(&r);
    e2e_req(&E, "GET", loc, NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    e2e_req(&E, "DELETE", loc, NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
}
END_TEST

START_TEST(users_optional_fields_default)
{
    h_resp r;
    e2e_req(&E, "POST", "/api/v1/users", "{\"external_id\":\"opt-1\"}", &r);
    ck_assert_int_eq(r.status, 201);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "email")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "name")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "country")));
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(r.json, "metadata");
    ck_assert(cJSON_IsObject(m));
    ck_assert_int_eq(cJSON_GetArraySize(m), 0);
    h_resp_free(&r);
    /* Explicit nulls for the nullable fields are the same as absent. */
    e2e_req(&E, "POST", "/api/v1/users",
            "{\"external_id\":\"opt-2\",\"email\":null,\"name\":null,\"country\":null}", &r);
    ck_assert_int_eq(r.status, 201);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "email")));
    h_resp_free(&r);
    /* The charset parameter is fine. */
    ck_assert_int_eq(h_http(&E, "POST", "/api/v1/users", E.key, "application/json; charset=utf-8",
                            "{\"external_id\":\"opt-3\"}", 23, NULL, &r),
                     0);
    ck_assert_int_eq(r.status, 201);
    h_resp_free(&r);
}
END_TEST

START_TEST(users_patch_partial)
{
    h_resp r, p, g;
    char path[100];
    e2e_req(&E, "POST", "/api/v1/users",
            "{\"external_id\":\"patch-1\",\"email\":\"p@example.com\",\"name\":\"Pat\",\"country\":"
            "\"FR\",\"metadata\":{\"a\":1}}",
            &r);
    ck_assert_int_eq(r.status, 201);
    snprintf(path, sizeof path, "/api/v1/users/%s", h_str(&r, "id"));
    usleep(2000); /* updated_at must visibly move */

    e2e_req(&E, "PATCH", path, "{\"name\":\"Patricia\"}", &p);
    ck_assert_msg(p.status == 200, "%ld %s", p.status, p.body);
    ck_assert_pstr_eq(h_str(&p, "name"), "Patricia");
    ck_assert_pstr_eq(h_str(&p, "email"), "p@example.com");
    ck_assert_pstr_eq(h_str(&p, "country"), "FR");
    ck_assert_pstr_eq(h_str(&p, "external_id"), "patch-1");
    ck_assert_pstr_eq(h_str(&p, "id"), h_str(&r, "id"));
    ck_assert(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(p.json, "metadata"),
                            cJSON_GetObjectItemCaseSensitive(r.json, "metadata"), 1));
    ck_assert_pstr_eq(h_str(&p, "created_at"), h_str(&r, "created_at"));
    assert_rfc3339_utc_now(h_str(&p, "updated_at"));
    ck_assert_msg(strcmp(h_str(&p, "updated_at"), h_str(&r, "updated_at")) > 0,
                  "updated_at did not move: %s -> %s", h_str(&r, "updated_at"),
                  h_str(&p, "updated_at"));

    /* The change is stored. */
    e2e_req(&E, "GET", path, NULL, &g);
    ck_assert_int_eq(g.status, 200);
    ck_assert(cJSON_Compare(g.json, p.json, 1));
    h_resp_free(&g);

    /* null clears a nullable field; metadata is replaced as a whole. */
    e2e_req(&E, "PATCH", path, "{\"email\":null,\"metadata\":{\"b\":2}}", &g);
    ck_assert_int_eq(g.status, 200);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(g.json, "email")));
    ck_assert_pstr_eq(h_str(&g, "name"), "Patricia");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(g.json, "metadata");
    ck_assert_int_eq(cJSON_GetArraySize(m), 1);
    ck_assert(cJSON_GetObjectItemCaseSensitive(m, "b")->valuedouble == 2);
    h_resp_free(&g);

    /* An empty patch changes nothing but updated_at. */
    e2e_req(&E, "PATCH", path, "{}", &g);
    ck_assert_int_eq(g.status, 200);
    ck_assert_pstr_eq(h_str(&g, "name"), "Patricia");
    ck_assert_pstr_eq(h_str(&g, "country"), "FR");
    h_resp_free(&g);
    h_resp_free(&p);
    h_resp_free(&r);
}
END_TEST

START_TEST(users_patch_rejections)
{
    char id[40], path[100];
    h_resp r;
    create_user("patch-rej", id);
    snprintf(path, sizeof path, "/api/v1/users/%s", id);
    static const struct {
        const char *body, *code, *field;
    } t[] = {
        {"{\"external_id\":\"other\"}", "immutable_field", "external_id"},
        {"{\"name\":\"x\",\"external_id\":\"patch-rej\"}", "immutable_field", "external_id"},
        {"{\"id\":\"00000000-0000-0000-0000-000000000000\"}", "immutable_field", "id"},
        {"{\"created_at\":\"2020-01-01T00:00:00Z\"}", "immutable_field", "created_at"},
        {"{\"updated_at\":\"2020-01-01T00:00:00Z\"}", "immutable_field", "updated_at"},
        {"{\"nickname\":\"x\"}", "unknown_field", "nickname"},
        {"{\"name\":\"ok\",\"Email\":\"a@b.co\"}", "unknown_field", "Email"},
        {"{\"country\":\"de\"}", "validation_failed", "country"},
        {"{\"email\":\"nope\"}", "validation_failed", "email"},
        {"{\"metadata\":null}", "validation_failed", "metadata"},
        {"{\"name\":\"\"}", "validation_failed", "name"},
        {"{\"name\":5}", "validation_failed", "name"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        e2e_req(&E, "PATCH", path, t[i].body, &r);
        e2e_assert_problem(&r, 400, t[i].code, t[i].field);
        h_resp_free(&r);
    }
    /* Nothing was changed by the rejected patches. */
    e2e_req(&E, "GET", path, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_pstr_eq(h_str(&r, "external_id"), "patch-rej");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "name")));
    h_resp_free(&r);
    /* Absent user. */
    e2e_req(&E, "PATCH", "/api/v1/users/00000000-0000-4000-8000-000000000000", "{\"name\":\"x\"}",
            &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
}
END_TEST

START_TEST(users_conflict_and_ids)
{
    char id[40];
    h_resp r;
    create_user("dup-1", id);
    e2e_req(&E, "POST", "/api/v1/users", "{\"external_id\":\"dup-1\",\"name\":\"again\"}", &r);
    e2e_assert_problem(&r, 409, "conflict", "external_id");
    h_resp_free(&r);
    /* external_id is case-sensitive: a different value. */
    ck_assert_int_eq(post_status("{\"external_id\":\"DUP-1\"}"), 201);

    static const char *const bad_ids[] = {
        "/api/v1/users/not-a-uuid",
        "/api/v1/users/123",
        "/api/v1/users/0b9f4f8e-3c1a-4d6e-9a52-1f0e5b7c2d1",   /* 35 */
        "/api/v1/users/0b9f4f8e-3c1a-4d6e-9a52-1f0e5b7c2d111", /* 37 */
        "/api/v1/users/0b9f4f8e3c1a4d6e9a521f0e5b7c2d11xxxx",
        "/api/v1/users/zb9f4f8e-3c1a-4d6e-9a52-1f0e5b7c2d11",
    };
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        e2e_req(&E, "GET", bad_ids[i], NULL, &r);
        e2e_assert_problem(&r, 400, "validation_failed", "id");
        h_resp_free(&r);
        e2e_req(&E, "DELETE", bad_ids[i], NULL, &r);
        e2e_assert_problem(&r, 400, "validation_failed", "id");
        h_resp_free(&r);
        e2e_req(&E, "PATCH", bad_ids[i], "{}", &r);
        e2e_assert_problem(&r, 400, "validation_failed", "id");
        h_resp_free(&r);
    }
    e2e_req(&E, "GET", "/api/v1/users/00000000-0000-4000-8000-000000000000", NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    /* Upper-case UUIDs name the same row. */
    char up[40], path[100];
    for (int i = 0; i < 37; i++)
        up[i] = (char)toupper((unsigned char)id[i]);
    snprintf(path, sizeof path, "/api/v1/users/%s", up);
    e2e_req(&E, "GET", path, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_pstr_eq(h_str(&r, "id"), id);
    h_resp_free(&r);
}
END_TEST

/* ---- users: pagination ------------------------------------------------------------------------
 */

START_TEST(users_pagination)
{
    enum { N = 7, LIMIT = 3 };
    char ids[N][40], ext[40];
    for (int i = 0; i < N; i++) {
        snprintf(ext, sizeof ext, "page-%d", i);
        create_user(ext, ids[i]);
    }
    char total_s[32];
    ck_assert_int_eq(h_psql(&E, NULL, "SELECT count(*) FROM users", total_s, sizeof total_s), 0);
    int total = atoi(total_s);
    ck_assert_int_ge(total, N);

    char(*seen)[40] = calloc((size_t)total + 1, sizeof *seen);
    char prev_created[40] = "";
    int nseen = 0, pages = 0;
    char cursor[200] = "";
    for (;;) {
        char path[300];
        h_resp r;
        if (cursor[0])
            snprintf(path, sizeof path, "/api/v1/users?limit=%d&cursor=%s", LIMIT, cursor);
        else
            snprintf(path, sizeof path, "/api/v1/users?limit=%d", LIMIT);
        e2e_req(&E, "GET", path, NULL, &r);
        ck_assert_msg(r.status == 200, "%s: %ld %s", path, r.status, r.body);
        pages++;
        ck_assert_int_le(pages, total); /* no endless loop */
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(r.json, "data");
        const cJSON *next = cJSON_GetObjectItemCaseSensitive(r.json, "next_cursor");
        ck_assert(cJSON_IsArray(data));
        int n = cJSON_GetArraySize(data);
        ck_assert_int_le(n, LIMIT);
        ck_assert_int_ge(n, 1); /* never an empty page */
        const cJSON *u;
        cJSON_ArrayForEach(u, data)
        {
            const char *id = cJSON_GetObjectItemCaseSensitive(u, "id")->valuestring;
            const char *ca = cJSON_GetObjectItemCaseSensitive(u, "created_at")->valuestring;
            for (int k = 0; k < nseen; k++)
                ck_assert_msg(strcmp(seen[k], id) != 0, "user %s listed twice", id);
            ck_assert_int_lt(nseen, total);
            snprintf(seen[nseen++], 40, "%s", id);
            if (prev_created[0])
                ck_assert_msg(strcmp(ca, prev_created) <= 0, "not newest first: %s after %s", ca,
                              prev_created);
            snprintf(prev_created, sizeof prev_created, "%s", ca);
        }
        if (cJSON_IsNull(next)) {
            h_resp_free(&r);
            break;
        }
        ck_assert(cJSON_IsString(next));
        ck_assert_int_eq(n, LIMIT); /* only full pages have a successor */
        /* The cursor is URL-safe as it is. */
        for (const char *c = next->valuestring; *c; c++)
            ck_assert(isalnum((unsigned char)*c) || *c == '-' || *c == '_');
        snprintf(cursor, sizeof cursor, "%s", next->valuestring);
        h_resp_free(&r);
    }
    ck_assert_int_eq(nseen, total);
    ck_assert_int_eq(pages, (total + LIMIT - 1) / LIMIT);
    /* Ours are the newest N, newest first. */
    for (int i = 0; i < N; i++)
        ck_assert_msg(strcmp(seen[i], ids[N - 1 - i]) == 0, "position %d: %s, want %s", i, seen[i],
                      ids[N - 1 - i]);
    free(seen);

    /* Default limit (50) and limit=1. */
    h_resp r;
    e2e_req(&E, "GET", "/api/v1/users", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "data")),
                     total < 50 ? total : 50);
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/users?limit=1", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "data")), 1);
    ck_assert_pstr_eq(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "data"), 0), "id")
            ->valuestring,
        ids[N - 1]);
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/users?limit=500", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "data")), total);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "next_cursor")));
    h_resp_free(&r);
}
END_TEST

START_TEST(users_list_bad_params)
{
    static const struct {
        const char *q, *code, *field;
    } t[] = {
        {"?limit=0", "validation_failed", "limit"},
        {"?limit=501", "validation_failed", "limit"},
        {"?limit=abc", "validation_failed", "limit"},
        {"?limit=-1", "validation_failed", "limit"},
        {"?limit=1.5", "validation_failed", "limit"},
        {"?limit=", "validation_failed", "limit"},
        {"?limit=%203", "validation_failed", "limit"},
        {"?limit=99999999999999999999", "validation_failed", "limit"},
        {"?cursor=garbage", "validation_failed", "cursor"},
        {"?cursor=djE6", "validation_failed", "cursor"},
        /* base64url("v1:-5:<uuid>"): well-formed base64 of a negative timestamp. */
        {"?cursor=djE6LTU6MGI5ZjRmOGUtM2MxYS00ZDZlLTlhNTItMWYwZTViN2MyZDEx", "validation_failed",
         "cursor"},
        {"?limit=3&cursor=%27%3B%20DROP%20TABLE%20users%3B--", "validation_failed", "cursor"},
        {"?foo=1", "unknown_parameter", "foo"},
        {"?limit=3&offset=3", "unknown_parameter", "offset"},
        {"?Limit=3", "unknown_parameter", "Limit"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char path[200];
        h_resp r;
        snprintf(path, sizeof path, "/api/v1/users%s", t[i].q);
        e2e_req(&E, "GET", path, NULL, &r);
        e2e_assert_problem(&r, 400, t[i].code, t[i].field);
        h_resp_free(&r);
    }
    /* The table survived the cursor above. */
    char n[32];
    ck_assert_int_eq(h_psql(&E, NULL, "SELECT count(*) >= 0 FROM users", n, sizeof n), 0);
    ck_assert_str_eq(n, "t");
}
END_TEST

/* ---- validation at N and N+1 ------------------------------------------------------------------
 */

START_TEST(validation_external_id)
{
    h_resp r;
    e2e_req(&E, "POST", "/api/v1/users", "{\"name\":\"no ext\"}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "external_id");
    h_resp_free(&r);
    e2e_req(&E, "POST", "/api/v1/users", "{\"external_id\":\"\"}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "external_id");
    h_resp_free(&r);
    e2e_req(&E, "POST", "/api/v1/users", "{\"external_id\":null}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "external_id");
    h_resp_free(&r);
    e2e_req(&E, "POST", "/api/v1/users", "{\"external_id\":42}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "external_id");
    h_resp_free(&r);

    char body[600];
    char *x128 = repeat("x", 128), *x129 = repeat("y", 129);
    snprintf(body, sizeof body, "{\"external_id\":\"%s\"}", x128);
    e2e_req(&E, "POST", "/api/v1/users", body, &r);
    ck_assert_msg(r.status == 201, "128 chars: %ld %s", r.status, r.body);
    ck_assert_uint_eq(strlen(h_str(&r, "external_id")), 128);
    h_resp_free(&r);
    snprintf(body, sizeof body, "{\"external_id\":\"%s\"}", x129);
    e2e_req(&E, "POST", "/api/v1/users", body, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "external_id");
    h_resp_free(&r);
    free(x128);
    free(x129);
    /* Characters, not bytes: 128 two-byte characters are fine. */
    char *e128 = repeat("\xc3\xa9", 128);
    snprintf(body, sizeof body, "{\"external_id\":\"%s\"}", e128);
    ck_assert_int_eq(post_status(body), 201);
    free(e128);
}
END_TEST

START_TEST(validation_email_country)
{
    static const char *const bad_email[] = {"\"nope\"",    "\"a@b\"", "\"@b.co\"", "\"a b@c.de\"",
                                            "\"a@@b.co\"", "\"\"",    "5",         "[]"};
    for (size_t i = 0; i < sizeof bad_email / sizeof bad_email[0]; i++) {
        char body[200];
        h_resp r;
        snprintf(body, sizeof body, "{\"external_id\":\"em-%zu\",\"email\":%s}", i, bad_email[i]);
        e2e_req(&E, "POST", "/api/v1/users", body, &r);
        e2e_assert_problem(&r, 400, "validation_failed", "email");
        h_resp_free(&r);
    }
    static const char *const bad_country[] = {"\"de\"", "\"XX\"", "\"DEU\"", "\"D\"",
                                              "\"\"",   "\"UK\"", "49"};
    for (size_t i = 0; i < sizeof bad_country / sizeof bad_country[0]; i++) {
        char body[200];
        h_resp r;
        snprintf(body, sizeof body, "{\"external_id\":\"co-%zu\",\"country\":%s}", i,
                 bad_country[i]);
        e2e_req(&E, "POST", "/api/v1/users", body, &r);
        e2e_assert_problem(&r, 400, "validation_failed", "country");
        h_resp_free(&r);
    }
    ck_assert_int_eq(post_status("{\"external_id\":\"co-ok\",\"country\":\"DE\",\"email\":"
                                 "\"x.y+z@example.co.uk\"}"),
                     201);
}
END_TEST

START_TEST(validation_name_length)
{
    char body[2000];
    h_resp r;
    char *n256 = repeat("n", 256), *n257 = repeat("n", 257);
    snprintf(body, sizeof body, "{\"external_id\":\"name-256\",\"name\":\"%s\"}", n256);
    e2e_req(&E, "POST", "/api/v1/users", body, &r);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    ck_assert_str_eq(h_str(&r, "name"), n256);
    h_resp_free(&r);
    snprintf(body, sizeof body, "{\"external_id\":\"name-257\",\"name\":\"%s\"}", n257);
    e2e_req(&E, "POST", "/api/v1/users", body, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "name");
    h_resp_free(&r);
    free(n256);
    free(n257);
    /* 256 three-byte characters (768 bytes) are 256 characters. */
    char *e256 = repeat("\xe2\x82\xac", 256), *e257 = repeat("\xe2\x82\xac", 257);
    snprintf(body, sizeof body, "{\"external_id\":\"name-e256\",\"name\":\"%s\"}", e256);
    ck_assert_int_eq(post_status(body), 201);
    snprintf(body, sizeof body, "{\"external_id\":\"name-e257\",\"name\":\"%s\"}", e257);
    e2e_req(&E, "POST", "/api/v1/users", body, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "name");
    h_resp_free(&r);
    free(e256);
    free(e257);
}
END_TEST

/* metadata: the compact JSON sent is {"k":"<n x's>"}, 8 + n bytes. */
START_TEST(validation_metadata)
{
    h_resp r;
    static const char *const not_obj[] = {"[]", "\"x\"", "1", "true", "null", "[{}]"};
    for (size_t i = 0; i < sizeof not_obj / sizeof not_obj[0]; i++) {
        char body[200];
        snprintf(body, sizeof body, "{\"external_id\":\"md-%zu\",\"metadata\":%s}", i, not_obj[i]);
        e2e_req(&E, "POST", "/api/v1/users", body, &r);
        e2e_assert_problem(&r, 400, "validation_failed", "metadata");
        h_resp_free(&r);
    }
    for (int size = 4096; size <= 4097; size++) {
        char *pad = repeat("x", size - 8);
        char meta[5000], body[5200];
        snprintf(meta, sizeof meta, "{\"k\":\"%s\"}", pad);
        ck_assert_uint_eq(strlen(meta), (size_t)size);
        snprintf(body, sizeof body, "{\"external_id\":\"md-size-%d\",\"metadata\":%s}", size, meta);
        e2e_req(&E, "POST", "/api/v1/users", body, &r);
        if (size == 4096) {
            ck_assert_msg(r.status == 201, "4096 bytes: %ld %s", r.status, r.body);
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(r.json, "metadata");
            ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(m, "k")->valuestring, pad);
        } else {
            e2e_assert_problem(&r, 400, "validation_failed", "metadata");
        }
        h_resp_free(&r);
        free(pad);
    }
}
END_TEST

START_TEST(validation_unknown_and_shape)
{
    h_resp r;
    e2e_req(&E, "POST", "/api/v1/users", "{\"external_id\":\"unk-1\",\"nickname\":\"x\"}", &r);
    e2e_assert_problem(&r, 400, "unknown_field", "nickname");
    ck_assert_ptr_nonnull(strstr(h_str(&r, "detail"), "nickname"));
    h_resp_free(&r);
    e2e_req(&E, "POST", "/api/v1/users", "{\"external_id\":\"unk-2\",\"id\":\"x\"}", &r);
    e2e_assert_problem(&r, 400, "unknown_field", "id");
    h_resp_free(&r);
    e2e_req(&E, "POST", "/api/v1/users", "[{\"external_id\":\"arr\"}]", &r);
    e2e_assert_problem(&r, 400, "validation_failed", NULL);
    h_resp_free(&r);
    e2e_req(&E, "POST", "/api/v1/users", "\"just a string\"", &r);
    e2e_assert_problem(&r, 400, "validation_failed", NULL);
    h_resp_free(&r);
    /* None of the rejected bodies created a row. */
    char n[16];
    ck_assert_int_eq(
        h_psql(&E, NULL, "SELECT count(*) FROM users WHERE external_id IN ('unk-1','unk-2','arr')",
               n, sizeof n),
        0);
    ck_assert_str_eq(n, "0");
}
END_TEST

/* ---- error format, routing, strict JSON -------------------------------------------------------
 */

START_TEST(errors_routing)
{
    h_resp r;
    char allow[100];
    e2e_req(&E, "GET", "/nope", NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/users/", NULL, &r); /* trailing slash */
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1//users", NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    /* Unknown routes answer 404 even without a key (no information about auth). */
    ck_assert_int_eq(h_http(&E, "GET", "/nope", NULL, NULL, NULL, 0, NULL, &r), 0);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);

    e2e_req(&E, "DELETE", "/api/v1/users", NULL, &r);
    e2e_assert_problem(&r, 405, "method_not_allowed", NULL);
    hdr(&r, "Allow", allow, sizeof allow);
    ck_assert_msg(strcmp(allow, "POST, GET") == 0, "Allow: %s", allow);
    h_resp_free(&r);
    e2e_req(&E, "PUT", "/api/v1/users/00000000-0000-4000-8000-000000000000", "{}", &r);
    e2e_assert_problem(&r, 405, "method_not_allowed", NULL);
    hdr(&r, "Allow", allow, sizeof allow);
    ck_assert_str_eq(allow, "GET, PATCH, DELETE");
    h_resp_free(&r);
    e2e_req(&E, "POST", "/health", "{}", &r);
    e2e_assert_problem(&r, 405, "method_not_allowed", NULL);
    hdr(&r, "Allow", allow, sizeof allow);
    ck_assert_str_eq(allow, "GET");
    h_resp_free(&r);
    /* A 404 carries no Allow header. */
    e2e_req(&E, "GET", "/nope", NULL, &r);
    ck_assert_ptr_null(h_header(&r, "Allow", allow, sizeof allow));
    h_resp_free(&r);
    /* A very long path is a 404, not a crash. */
    char longp[2100] = "/";
    memset(longp + 1, 'a', 2000);
    longp[2001] = '\0';
    e2e_req(&E, "GET", longp, NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
}
END_TEST

START_TEST(errors_content_type)
{
    h_resp r;
    const char *b = "{\"external_id\":\"ct-1\"}";
    static const char *const bad[] = {"text/plain", "application/x-www-form-urlencoded",
                                      "application/jsonx", "application/problem+json"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(h_http(&E, "POST", "/api/v1/users", E.key, bad[i], b, strlen(b), NULL, &r),
                         0);
        e2e_assert_problem(&r, 415, "unsupported_media_type", NULL);
        h_resp_free(&r);
    }
    /* No Content-Type at all (curl would add a form type: remove it explicitly). */
    const char *no_ct[] = {"Content-Type:", NULL};
    ck_assert_int_eq(h_http(&E, "POST", "/api/v1/users", E.key, NULL, b, strlen(b), no_ct, &r), 0);
    e2e_assert_problem(&r, 415, "unsupported_media_type", NULL);
    h_resp_free(&r);
    /* PATCH too. */
    char id[40], path[100];
    create_user("ct-patch", id);
    snprintf(path, sizeof path, "/api/v1/users/%s", id);
    ck_assert_int_eq(h_http(&E, "PATCH", path, E.key, "text/plain", "{}", 2, NULL, &r), 0);
    e2e_assert_problem(&r, 415, "unsupported_media_type", NULL);
    h_resp_free(&r);
}
END_TEST

/* {"external_id":"<ext>","metadata":{"a":{"a":...{}}}} nested depth levels in total. */
static char *deep_body(const char *ext, int depth)
{
    size_t cap = (size_t)depth * 8 + 200, o = 0;
    char *s = malloc(cap);
    o += (size_t)snprintf(s + o, cap - o, "{\"external_id\":\"%s\",\"metadata\":", ext);
    for (int i = 0; i < depth - 2; i++)
        o += (size_t)snprintf(s + o, cap - o, "{\"a\":");
    o += (size_t)snprintf(s + o, cap - o, "{}");
    for (int i = 0; i < depth - 2; i++)
        s[o++] = '}';
    s[o++] = '}';
    s[o] = '\0';
    return s;
}

START_TEST(errors_strict_json)
{
    static const struct {
        const char *why, *body;
        size_t len; /* 0: strlen */
    } bad[] = {
        {"truncated", "{\"external_id\":", 0},
        {"trailing garbage", "{\"external_id\":\"sj-1\"} x", 0},
        {"two documents", "{\"external_id\":\"sj-2\"}{}", 0},
        {"duplicate key", "{\"external_id\":\"sj-3\",\"external_id\":\"sj-4\"}", 0},
        {"duplicate nested key", "{\"external_id\":\"sj-5\",\"metadata\":{\"a\":1,\"a\":2}}", 0},
        {"duplicate via escape", "{\"external_id\":\"sj-6\",\"\\u0065xternal_id\":\"sj-7\"}", 0},
        {"invalid UTF-8", "{\"external_id\":\"sj-\xc3\"}", 0},
        {"overlong UTF-8", "{\"external_id\":\"sj-\xc0\xaf\"}", 0},
        {"surrogate in UTF-8", "{\"external_id\":\"sj-\xed\xa0\x80\"}", 0},
        {"lone surrogate escape", "{\"external_id\":\"sj-\\ud800\"}", 0},
        {"NUL escape", "{\"external_id\":\"sj-\\u0000\"}", 0},
        {"raw control char", "{\"external_id\":\"sj-\x01\"}", 0},
        {"raw NUL", "{\"external_id\":\"sj\0\"}", 19},
        {"leading zero", "{\"external_id\":\"sj-8\",\"metadata\":{\"n\":01}}", 0},
        {"single quotes", "{'external_id':'sj-9'}", 0},
        {"trailing comma", "{\"external_id\":\"sj-10\",}", 0},
        {"empty body", "", 0},
        {"whitespace only", "   ", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h_resp r;
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].body);
        ck_assert_int_eq(h_http(&E, "POST", "/api/v1/users", E.key, "application/json", bad[i].body,
                                len, NULL, &r),
                         0);
        ck_assert_msg(r.status == 400, "%s: %ld %s", bad[i].why, r.status, r.body);
        e2e_assert_problem(&r, 400, "malformed_json", NULL);
        h_resp_free(&r);
    }
    /* Nesting: 32 levels accepted, 33 rejected. */
    char *d32 = deep_body("sj-deep-32", 32), *d33 = deep_body("sj-deep-33", 33);
    int opens = 0;
    for (const char *p = d33; *p; p++)
        opens += *p == '{';
    ck_assert_int_eq(opens, 33);
    h_resp r;
    e2e_req(&E, "POST", "/api/v1/users", d32, &r);
    ck_assert_msg(r.status == 201, "depth 32: %ld %s", r.status, r.body);
    h_resp_free(&r);
    e2e_req(&E, "POST", "/api/v1/users", d33, &r);
    e2e_assert_problem(&r, 400, "malformed_json", NULL);
    ck_assert_ptr_nonnull(strstr(h_str(&r, "detail"), "nesting"));
    h_resp_free(&r);
    free(d32);
    free(d33);
    /* None of the bad bodies created a row. */
    char n[16];
    ck_assert_int_eq(h_psql(&E, NULL,
                            "SELECT count(*) FROM users WHERE external_id LIKE 'sj-%' AND "
                            "external_id <> 'sj-deep-32'",
                            n, sizeof n),
                     0);
    ck_assert_str_eq(n, "0");
}
END_TEST

/* ---- auth -------------------------------------------------------------------------------------
 */

/* Runs `vigil-api keys ARGS...` with DATABASE_URL; returns the exit status, output in out. */
static int keys_cmd(const char *a1, const char *a2, const char *a3, const char *a4, const char *a5,
                    char *out, size_t cap)
{
    char exe[400], dburl[600];
    snprintf(exe, sizeof exe, "%s/vigil-api", E.bin);
    snprintf(dburl, sizeof dburl, "DATABASE_URL=%s", E.db_url);
    const char *argv[] = {exe, "keys", a1, a2, a3, a4, a5, NULL};
    const char *env[] = {dburl, NULL};
    return h_run(&E, argv, env, out, cap);
}

/* Copies the value after "label" up to the end of the line. */
static void line_value(const char *out, const char *label, char *val, size_t cap)
{
    const char *p = strstr(out, label);
    ck_assert_msg(p != NULL, "no '%s' in output:\n%s", label, out);
    p += strlen(label);
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, "\n");
    snprintf(val, cap, "%.*s", (int)n, p);
}

START_TEST(auth_rejections)
{
    h_resp r;
    /* No header. */
    ck_assert_int_eq(h_http(&E, "GET", "/api/v1/users", NULL, NULL, NULL, 0, NULL, &r), 0);
    e2e_assert_problem(&r, 401, "unauthorized", NULL);
    h_resp_free(&r);
    ck_assert_int_eq(h_http(&E, "POST", "/api/v1/users", NULL, "application/json",
                            "{\"external_id\":\"noauth\"}", 24, NULL, &r),
                     0);
    e2e_assert_problem(&r, 401, "unauthorized", NULL);
    h_resp_free(&r);
    /* Unknown key; wrong scheme; empty bearer. */
    ck_assert_int_eq(h_http(&E, "GET", "/api/v1/users",
                            "vgl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL, NULL, 0, NULL,
                            &r),
                     0);
    e2e_assert_problem(&r, 401, "unauthorized", NULL);
    h_resp_free(&r);
    char basic[200];
    snprintf(basic, sizeof basic, "Authorization: Basic %s", E.key);
    const char *h1[] = {basic, NULL};
    ck_assert_int_eq(h_http(&E, "GET", "/api/v1/users", NULL, NULL, NULL, 0, h1, &r), 0);
    e2e_assert_problem(&r, 401, "unauthorized", NULL);
    h_resp_free(&r);
    const char *h2[] = {"Authorization: Bearer ", NULL};
    ck_assert_int_eq(h_http(&E, "GET", "/api/v1/users", NULL, NULL, NULL, 0, h2, &r), 0);
    e2e_assert_problem(&r, 401, "unauthorized", NULL);
    h_resp_free(&r);
    /* A key with a suffix is another key. */
    char longer[100];
    snprintf(longer, sizeof longer, "%sx", E.key);
    ck_assert_int_eq(h_http(&E, "GET", "/api/v1/users", longer, NULL, NULL, 0, NULL, &r), 0);
    e2e_assert_problem(&r, 401, "unauthorized", NULL);
    h_resp_free(&r);
    /* Public routes need no key. */
    ck_assert_int_eq(h_http(&E, "GET", "/health", NULL, NULL, NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
}
END_TEST

START_TEST(auth_keys_cli)
{
    char out[4096], id[64], key[128], id_w[64], key_w[128];
    h_resp r;
    ck_assert_int_eq(keys_cmd("create", "--name", "t", "--scopes", "read", out, sizeof out), 0);
    line_value(out, "id:", id, sizeof id);
    line_value(out, "key:", key, sizeof key);
    ck_assert_msg(is_uuid(id), "id '%s'", id);
    ck_assert_uint_eq(strlen(key), 47); /* "vgl_" + 43 base64url characters */
    ck_assert(strncmp(key, "vgl_", 4) == 0);
    for (const char *p = key + 4; *p; p++)
        ck_assert(isalnum((unsigned char)*p) || *p == '-' || *p == '_');

    /* The read key reads but may not write. */
    ck_assert_int_eq(h_http(&E, "GET", "/api/v1/users", key, NULL, NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    ck_assert_int_eq(h_http(&E, "POST", "/api/v1/users", key, "application/json",
                            "{\"external_id\":\"ro\"}", 20, NULL, &r),
                     0);
    e2e_assert_problem(&r, 403, "forbidden", NULL);
    h_resp_free(&r);
    char id_path[100];
    snprintf(id_path, sizeof id_path, "/api/v1/users/00000000-0000-4000-8000-000000000000");
    ck_assert_int_eq(h_http(&E, "DELETE", id_path, key, NULL, NULL, 0, NULL, &r), 0);
    e2e_assert_problem(&r, 403, "forbidden", NULL);
    h_resp_free(&r);

    /* A read,write key writes. */
    ck_assert_int_eq(
        keys_cmd("create", "--name", "writer", "--scopes", "read,write", out, sizeof out), 0);
    line_value(out, "id:", id_w, sizeof id_w);
    line_value(out, "key:", key_w, sizeof key_w);
    ck_assert_str_ne(key_w, key);
    ck_assert_int_eq(h_http(&E, "POST", "/api/v1/users", key_w, "application/json",
                            "{\"external_id\":\"rw\"}", 20, NULL, &r),
                     0);
    ck_assert_int_eq(r.status, 201);
    h_resp_free(&r);

    /* Bad invocations. */
    ck_assert_int_ne(keys_cmd("create", "--name", "x", "--scopes", "root", out, sizeof out), 0);
    ck_assert_int_ne(keys_cmd("create", "--scopes", "read", NULL, NULL, out, sizeof out), 0);

    /* list shows both keys, never a secret. */
    ck_assert_int_eq(keys_cmd("list", NULL, NULL, NULL, NULL, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, id));
    ck_assert_ptr_nonnull(strstr(out, id_w));
    ck_assert_ptr_nonnull(strstr(out, "bootstrap"));
    ck_assert_ptr_null(strstr(out, key));
    ck_assert_ptr_null(strstr(out, key_w));
    ck_assert_ptr_null(strstr(out, E.key));
    ck_assert_ptr_null(strstr(out, key + 16)); /* not even the tail of it */
    /* The line of the read key says read and active. */
    const char *line = strstr(out, id);
    size_t ll = strcspn(line, "\n");
    char l1[512];
    snprintf(l1, sizeof l1, "%.*s", (int)ll, line);
    ck_assert_ptr_nonnull(strstr(l1, " t "));
    ck_assert_ptr_nonnull(strstr(l1, "read"));
    ck_assert_ptr_null(strstr(l1, "write"));
    ck_assert_ptr_nonnull(strstr(l1, "active"));

    /* Revoke: 401 within VIGIL_AUTH_CACHE_MS (1 s by default: the key was just used, so its
     * answer is cached) and from then on; revoking again fails; the other key still works. */
    ck_assert_int_eq(h_http(&E, "GET", "/api/v1/users", key, NULL, NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200); /* cached now */
    h_resp_free(&r);
    ck_assert_int_eq(keys_cmd("revoke", id, NULL, NULL, NULL, out, sizeof out), 0);
    int64_t revoked_ms = clock_now_ms(), refused_ms = -1;
    while (refused_ms < 0 && clock_now_ms() - revoked_ms < 3000) {
        ck_assert_int_eq(h_http(&E, "GET", "/api/v1/users", key, NULL, NULL, 0, NULL, &r), 0);
        if (r.status == 401)
            refused_ms = clock_now_ms();
        else
            ck_assert_int_eq(r.status, 200);
        h_resp_free(&r);
        if (refused_ms < 0)
            usleep(50000);
    }
    ck_assert_msg(refused_ms >= 0 && refused_ms - revoked_ms <= 1500,
                  "a revoked key still worked %lld ms after the revocation",
                  (long long)(clock_now_ms() - revoked_ms));
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(h_http(&E, "GET", "/api/v1/users", key, NULL, NULL, 0, NULL, &r), 0);
        e2e_assert_problem(&r, 401, "unauthorized", NULL);
        h_resp_free(&r);
    }
    ck_assert_int_ne(keys_cmd("revoke", id, NULL, NULL, NULL, out, sizeof out), 0);
    ck_assert_int_ne(keys_cmd("revoke", "00000000-0000-4000-8000-000000000000", NULL, NULL, NULL,
                              out, sizeof out),
                     0);
    ck_assert_int_eq(h_http(&E, "GET", "/api/v1/users", key_w, NULL, NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    ck_assert_int_eq(keys_cmd("list", NULL, NULL, NULL, NULL, out, sizeof out), 0);
    line = strstr(out, id);
    ll = strcspn(line, "\n");
    snprintf(l1, sizeof l1, "%.*s", (int)ll, line);
    ck_assert_ptr_nonnull(strstr(l1, "revoked"));

    /* Only the SHA-256 is stored: the key text is nowhere in the table. */
    char q[300], n[16];
    snprintf(q, sizeof q,
             "SELECT count(*) FROM api_keys WHERE encode(key_hash,'escape') LIKE '%%%s%%' OR "
             "name LIKE '%%%s%%' OR prefix = '%s'",
             key + 4, key + 4, key);
    ck_assert_int_eq(h_psql(&E, NULL, q, n, sizeof n), 0);
    ck_assert_str_eq(n, "0");
    /* The stored hash is the SHA-256 of the key (pgcrypto-free: sha256() is built in). */
    snprintf(q, sizeof q, "SELECT count(*) FROM api_keys WHERE key_hash = sha256('%s'::bytea)",
             key_w);
    ck_assert_int_eq(h_psql(&E, NULL, q, n, sizeof n), 0);
    ck_assert_str_eq(n, "1");
}
END_TEST

/* ---- request ids and the request log ----------------------------------------------------------
 */

/* Waits until api.log holds a line containing needle; returns the file (caller frees). */
static char *wait_log(const char *needle)
{
    for (int i = 0; i < 200; i++) {
        char *log = h_read_file(&E, "api.log");
        if (log && strstr(log, needle))
            return log;
        free(log);
        usleep(10000);
    }
    ck_abort_msg("'%s' never appeared in api.log", needle);
    return NULL;
}

static int is_hex32(const char *s)
{
    if (strlen(s) != 32)
        return 0;
    for (int i = 0; i < 32; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
            return 0;
    return 1;
}

START_TEST(request_ids_and_log)
{
    h_resp r;
    char rid[100];
    const char *h[] = {"X-Request-Id: e2e-req-0001", NULL};
    ck_assert_int_eq(h_http(&E, "GET", "/api/v1/users?limit=2", E.key, NULL, NULL, 0, h, &r), 0);
    ck_assert_int_eq(r.status, 200);
    hdr(&r, "X-Request-Id", rid, sizeof rid);
    ck_assert_str_eq(rid, "e2e-req-0001");
    h_resp_free(&r);

    /* Absent: 32 lower-case hex, different each time. */
    char rid2[100];
    e2e_req(&E, "GET", "/health", NULL, &r);
    hdr(&r, "X-Request-Id", rid, sizeof rid);
    ck_assert_msg(is_hex32(rid), "generated id '%s'", rid);
    h_resp_free(&r);
    e2e_req(&E, "GET", "/health", NULL, &r);
    hdr(&r, "X-Request-Id", rid2, sizeof rid2);
    ck_assert(is_hex32(rid2));
    ck_assert_str_ne(rid, rid2);
    h_resp_free(&r);

    /* Invalid ids are replaced, not echoed: a space, a quote, 65 characters.  64 is fine. */
    char long64[100], long65[100];
    snprintf(long64, sizeof long64, "X-Request-Id: %s",
             "0123456789abcdef0123456789abcdef"
             "0123456789abcdef0123456789abcdef");
    snprintf(long65, sizeof long65, "X-Request-Id: %s",
             "0123456789abcdef0123456789abcdef"
             "0123456789abcdef0123456789abcdefX");
    const char *bad[] = {"X-Request-Id: has space", "X-Request-Id: quo\"te", long65,
                         "X-Request-Id: caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *hh[] = {bad[i], NULL};
        ck_assert_int_eq(h_http(&E, "GET", "/health", NULL, NULL, NULL, 0, hh, &r), 0);
        hdr(&r, "X-Request-Id", rid, sizeof rid);
        ck_assert_msg(is_hex32(rid), "'%s' gave '%s'", bad[i], rid);
        h_resp_free(&r);
    }
    const char *h64[] = {long64, NULL};
    ck_assert_int_eq(h_http(&E, "GET", "/health", NULL, NULL, NULL, 0, h64, &r), 0);
    hdr(&r, "X-Request-Id", rid, sizeof rid);
    ck_assert_str_eq(rid, long64 + 14);
    h_resp_free(&r);

    /* Error responses carry it too, and a 404 is logged. */
    const char *h404[] = {"X-Request-Id: e2e-req-404", NULL};
    ck_assert_int_eq(h_http(&E, "GET", "/nope?x=1", NULL, NULL, NULL, 0, h404, &r), 0);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    hdr(&r, "X-Request-Id", rid, sizeof rid);
    ck_assert_str_eq(rid, "e2e-req-404");
    h_resp_free(&r);
    /* A method is whatever the client sends up to the space: it is escaped in the log line. */
    const char *hm[] = {"X-Request-Id: e2e-req-method", NULL};
    ck_assert_int_eq(h_http(&E, "GE\"T\\", "/health", NULL, NULL, NULL, 0, hm, &r), 0);
    e2e_assert_problem(&r, 405, "method_not_allowed", NULL);
    h_resp_free(&r);
    const char *h401[] = {"X-Request-Id: e2e-req-401", NULL};
    ck_assert_int_eq(h_http(&E, "GET", "/api/v1/users", "vgl_wrong_key_in_log_check_0000", NULL,
                            NULL, 0, h401, &r),
                     0);
    e2e_assert_problem(&r, 401, "unauthorized", NULL);
    h_resp_free(&r);

    /* The log: exactly one line per request id, JSON, with the documented members. */
    char *log = wait_log("e2e-req-401");
    h_resp_free(&r);
    int lines_ok = 0, found = 0, found404 = 0, found_method = 0;
    for (char *line = log, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        ck_assert_msg(nl != NULL, "last log line not terminated");
        *nl = '\0';
        cJSON *j = cJSON_Parse(line);
        ck_assert_msg(j != NULL, "log line is not JSON: %s", line);
        ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "time")));
        ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "level")));
        ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "event")));
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "request_id");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "event");
        if (cJSON_IsString(id) && strcmp(msg->valuestring, "request") == 0) {
            ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "method")));
            ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "path")));
            ck_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "status")));
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "duration_us");
            ck_assert(cJSON_IsNumber(d));
            ck_assert(d->valuedouble >= 0 && d->valuedouble < 60e6);
            if (strcmp(id->valuestring, "e2e-req-0001") == 0) {
                found++;
                ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "method")->valuestring, "GET");
                ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "path")->valuestring,
                                 "/api/v1/users");
                ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(j, "status")->valueint, 200);
            }
            if (strcmp(id->valuestring, "e2e-req-method") == 0) {
                found_method++;
                ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "method")->valuestring,
                                 "GE\"T\\");
            }
            if (strcmp(id->valuestring, "e2e-req-404") == 0) {
                found404++;
                ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(j, "status")->valueint, 404);
                ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "path")->valuestring, "/nope");
            }
        }
        cJSON_Delete(j);
        lines_ok++;
    }
    ck_assert_int_eq(found, 1);
    ck_assert_int_eq(found404, 1);
    ck_assert_int_eq(found_method, 1);
    ck_assert_int_gt(lines_ok, 5);
    free(log);
    log = h_read_file(&E, "api.log");
    ck_assert_ptr_null(strstr(log, E.key));
    ck_assert_ptr_null(strstr(log, "vgl_wrong_key_in_log_check_0000"));
    ck_assert_ptr_null(strstr(log, "Bearer"));
    free(log);
}
END_TEST

/* ---- body limit (restarts the API with VIGIL_MAX_BODY_BYTES=1024) ------------------------------
 */

/* A valid user body of exactly n bytes: the metadata string pads it. */
static char *body_of_size(const char *ext, size_t n)
{
    char head[200];
    snprintf(head, sizeof head, "{\"external_id\":\"%s\",\"metadata\":{\"p\":\"", ext);
    const char *tail = "\"}}";
    size_t pad = n - strlen(head) - strlen(tail);
    char *s = malloc(n + 1);
    memcpy(s, head, strlen(head));
    memset(s + strlen(head), 'p', pad);
    memcpy(s + strlen(head) + pad, tail, strlen(tail) + 1);
    ck_assert_uint_eq(strlen(s), n);
    return s;
}

START_TEST(body_limit_n_and_n_plus_1)
{
    static const char *const small[] = {"VIGIL_MAX_BODY_BYTES=1024", NULL};
    ck_assert_int_eq(h_api_stop(&E, SIGTERM), 0);
    E.api_env = small;
    ck_assert_int_eq(h_api_start(&E), 0);

    h_resp r;
    char *b1024 = body_of_size("limit-1024", 1024), *b1025 = body_of_size("limit-1025", 1025);
    e2e_req(&E, "POST", "/api/v1/users", b1024, &r);
    ck_assert_msg(r.status == 201, "1024 bytes: %ld %s", r.status, r.body);
    h_resp_free(&r);
    e2e_req(&E, "POST", "/api/v1/users", b1025, &r);
    e2e_assert_problem(&r, 413, "body_too_large", NULL);
    h_resp_free(&r);

    /* 413 is decided from Content-Length before any body byte is read: the body never comes. */
    char raw[4096], resp[4096];
    int n = snprintf(raw, sizeof raw,
                     "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: 1025\r\n\r\n",
                     E.key);
    long got = h_raw(&E, raw, (size_t)n, resp, sizeof resp, 5000);
    ck_assert_msg(got > 0 && strncmp(resp, "HTTP/1.1 413", 12) == 0, "got: %s", resp);
    ck_assert_ptr_nonnull(strstr(resp, "application/problem+json"));
    /* A huge announced size is answered the same way, at once. */
    n = snprintf(raw, sizeof raw,
                 "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n",
                 E.key);
    got = h_raw(&E, raw, (size_t)n, resp, sizeof resp, 5000);
    ck_assert_msg(got > 0 && strncmp(resp, "HTTP/1.1 413", 12) == 0, "got: %s", resp);
    /* A negative announced size is malformed (400), not a huge one (413). */
    n = snprintf(raw, sizeof raw,
                 "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Content-Type: application/json\r\nContent-Length: -1\r\n\r\n",
                 E.key);
    got = h_raw(&E, raw, (size_t)n, resp, sizeof resp, 5000);
    ck_assert_msg(got > 0 && strncmp(resp, "HTTP/1.1 400", 12) == 0, "got: %s", resp);
    /* Exactly N announced: the server waits for the body instead of refusing. */
    n = snprintf(raw, sizeof raw,
                 "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Content-Type: application/json\r\nContent-Length: 1024\r\n\r\n",
                 E.key);
    got = h_raw(&E, raw, (size_t)n, resp, sizeof resp, 700);
    ck_assert_msg(got == 0, "answered before the body arrived: %s", resp);

    /* Chunked uploads (no Content-Length) are bounded while reading: 1024 ok, 1025 refused. */
    char *chunked = malloc(4096);
    char *b1024c = body_of_size("limit-chunked", 1024);
    n = snprintf(chunked, 4096,
                 "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                 "Connection: close\r\n\r\n400\r\n%s\r\n0\r\n\r\n",
                 E.key, b1024c);
    got = h_raw(&E, chunked, (size_t)n, resp, sizeof resp, 5000);
    ck_assert_msg(got > 0 && strncmp(resp, "HTTP/1.1 201", 12) == 0, "chunked 1024: %s", resp);
    n = snprintf(chunked, 4096,
                 "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                 "Connection: close\r\n\r\n401\r\n%s\r\n0\r\n\r\n",
                 E.key, b1025);
    got = h_raw(&E, chunked, (size_t)n, resp, sizeof resp, 5000);
    ck_assert_msg(got > 0 && strncmp(resp, "HTTP/1.1 413", 12) == 0, "chunked 1025: %s", resp);
    free(chunked);
    free(b1024c);
    free(b1024);
    free(b1025);

    /* The limit-1025 bodies created nothing. */
    char cnt[16];
    ck_assert_int_eq(h_psql(&E, NULL, "SELECT count(*) FROM users WHERE external_id LIKE 'limit-%'",
                            cnt, sizeof cnt),
                     0);
    ck_assert_str_eq(cnt, "2");

    ck_assert_int_eq(h_api_stop(&E, SIGTERM), 0);
    E.api_env = NULL;
    ck_assert_int_eq(h_api_start(&E), 0);
}
END_TEST

/* After the restarts above (the second start finds schema_migrations already there, which makes
 * PostgreSQL send a NOTICE): every line of the API's output is still one JSON object. */
START_TEST(log_is_json_lines_after_restart)
{
    /* Paths with bytes that are not UTF-8, quotes, backslashes and control characters (percent-
     * encoded: libmicrohttpd decodes them) must still give a valid log line. */
    static const char *const odd[] = {"/%ff%fe", "/a%22b%5cc", "/x%01y%1fz", "/%c3%28",
                                      "/api/v1/users/%ed%a0%80"};
    const char *h[] = {"X-Request-Id: e2e-odd-last", NULL};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        h_resp r;
        ck_assert_int_eq(h_http(&E, "GET", odd[i], E.key, NULL, NULL, 0,
                                i + 1 == sizeof odd / sizeof odd[0] ? h : NULL, &r),
                         0);
        ck_assert_int_lt(r.status, 500);
        h_resp_free(&r);
    }
    free(wait_log("e2e-odd-last"));
    char *log = h_read_file(&E, "api.log");
    ck_assert_ptr_nonnull(log);
    int starts = 0;
    for (char *line = log, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        ck_assert_msg(nl != NULL, "last log line not terminated");
        *nl = '\0';
        char why[200];
        ck_assert_msg(json_validate(line, strlen(line), why, sizeof why) == 0,
                      "log line is not strict JSON (%s): %s", why, line);
        cJSON *j = cJSON_Parse(line);
        ck_assert_msg(cJSON_IsObject(j), "log line is not a JSON object: %s", line);
        ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "time")));
        ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "level")));
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "event");
        ck_assert(cJSON_IsString(msg));
        starts += strcmp(msg->valuestring, "ready") == 0;
        cJSON_Delete(j);
    }
    ck_assert_int_ge(starts, 3);
    free(log);
}
END_TEST

static Suite *api_suite(void)
{
    Suite *s = suite_create("e2e_api");
    TCase *tc = tcase_create("api");
    tcase_add_unchecked_fixture(tc, env_up, env_down);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, users_create_get_delete);
    tcase_add_test(tc, users_optional_fields_default);
    tcase_add_test(tc, users_patch_partial);
    tcase_add_test(tc, users_patch_rejections);
    tcase_add_test(tc, users_conflict_and_ids);
    tcase_add_test(tc, users_pagination);
    tcase_add_test(tc, users_list_bad_params);
    tcase_add_test(tc, validation_external_id);
    tcase_add_test(tc, validation_email_country);
    tcase_add_test(tc, validation_name_length);
    tcase_add_test(tc, validation_metadata);
    tcase_add_test(tc, validation_unknown_and_shape);
    tcase_add_test(tc, errors_routing);
    tcase_add_test(tc, errors_content_type);
    tcase_add_test(tc, errors_strict_json);
    tcase_add_test(tc, auth_rejections);
    tcase_add_test(tc, auth_keys_cli);
    tcase_add_test(tc, request_ids_and_log);
    tcase_add_test(tc, body_limit_n_and_n_plus_1);
    tcase_add_test(tc, log_is_json_lines_after_restart);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(api_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
