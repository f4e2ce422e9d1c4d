/* e2e_lists.c - end-to-end tests of issue 12's data side: the identity fields of a transaction
 * (validated, canonical IP, stored, returned), the list resource (CRUD, idempotent adds, limits at
 * N and N+1, pages, membership, the audit of changes with the API key's id and name), IP/CIDR lists
 * (IPv4, IPv6, mapped addresses), a list of 100,000 items in one call, deletion refused while the
 * active policy uses a list, and two vigil-api processes on one database: a list change made
 * through one is seen by the very next decision and membership read on the other.
 *
 * One environment (in-process scoring; nothing here needs the worker).  Expected memberships are
 * written here by hand (CIDR arithmetic in the test), never read back from the API. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "assert.h"
#include "harness.h"

static h_env E;
static const char *const ENV[] = {"VIGIL_HOTPATH_MODE=inprocess", NULL};
static pid_t g_second; /* the second vigil-api of two_replicas_see_a_change, while it runs */

static void up(void)
{
    e2e_env_up(&E, ENV);
}

/* Also stops the second API when a failed assertion left it running. */
static void down(void)
{
    if (g_second > 0) {
        kill(g_second, SIGKILL);
        h_wait(g_second, 5000);
        g_second = 0;
    }
    e2e_env_down(&E);
}

/* ---- helpers -------------------------------------------------------------------------------- */

static const cJSON *get(const cJSON *o, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = get(o, name);
    ck_assert_msg(cJSON_IsNumber(v), "member %s is not a number", name);
    return v->valuedouble;
}

/* A request that must answer status; the caller frees r. */
static void req_ok(h_env *e, const char *method, const char *path, const char *body, long status,
                   h_resp *r)
{
    e2e_req(e, method, path, body, r);
    ck_assert_msg(r->status == status, "%s %s: %ld (want %ld) %s", method, path, r->status, status,
                  r->body);
}

/* Creates a list; its id into id[37]. */
static void create_list(const char *name, const char *kind, char id[37])
{
    char body[256];
    h_resp r;
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"kind\":\"%s\",\"description\":\"e2e\"}", name,
             kind);
    req_ok(&E, "POST", "/api/v1/lists", body, 201, &r);
    snprintf(id, 37, "%s", h_str(&r, "id"));
    char loc[200], want[200];
    snprintf(want, sizeof want, "/api/v1/lists/%s", id);
    ck_assert_str_eq(h_header(&r, "Location", loc, sizeof loc), want);
    ck_assert_int_eq((int)num(r.json, "version"), 1);
    ck_assert_int_eq((int)num(r.json, "item_count"), 0);
    h_resp_free(&r);
}

/* POST (add) or DELETE (remove) items; returns the answer's count and version. */
static int change(h_env *e, const char *id, const char *method, const char *items, long *version)
{
    char path[128];
    h_resp r;
    snprintf(path, sizeof path, "/api/v1/lists/%s/items", id);
    char *body = malloc(strlen(items) + 16);
    sprintf(body, "{\"items\":%s}", items);
    req_ok(e, method, path, body, 200, &r);
    free(body);
    int n = (int)num(r.json, strcmp(method, "POST") == 0 ? "added" : "removed");
    if (version)
        *version = (long)num(r.json, "version");
    h_resp_free(&r);
    return n;
}

/* GET membership of value (path-safe text); returns 1/0 and asserts 200. */
static int member(h_env *e, const char *id, const char *value)
{
    char path[300];
    h_resp r;
    snprintf(path, sizeof path, "/api/v1/lists/%s/items/%s", id, value);
    req_ok(e, "GET", path, NULL, 200, &r);
    int is = cJSON_IsTrue(get(r.json, "member"));
    ck_assert_str_eq(cJSON_GetStringValue(get(r.json, "value")), value);
    h_resp_free(&r);
    return is;
}

static void user(const char *ext)
{
    char body[200];
    h_resp r;
    snprintf(body, sizeof body, "{\"external_id\":\"%s\",\"country\":\"DE\"}", ext);
    e2e_req(&E, "POST", "/api/v1/users", body, &r);
    ck_assert_msg(r.status == 201 || r.status == 409, "user: %ld %s", r.status, r.body);
    h_resp_free(&r);
}

/* A transaction body for user u with extra members (",\"k\":v..." or ""). */
static char *txn_body(const char *u, const char *extra)
{
    char *b = malloc(1024);
    snprintf(b, 1024,
             "{\"user_external_id\":\"%s\",\"amount\":1250,\"currency\":\"EUR\","
             "\"merchant_id\":\"m-1\",\"merchant_category\":\"5411\",\"country\":\"DE\","
             "\"channel\":\"ecommerce\"%s}",
             u, extra);
    return b;
}

/* ---- identity fields ------------------------------------------------------------------------ */

START_TEST(identity_fields_stored_and_returned)
{
    user("idf");
    char *b = txn_body("idf", ",\"email\":\"a.b@example.com\",\"ip_address\":\"2001:DB8:0:0::0:1\","
                              "\"device_id\":\"dev-42\",\"card_fingerprint\":\"fp_9f8e\","
                              "\"card_bin\":\"42424242\",\"card_country\":\"FR\","
                              "\"shipping_country\":\"IT\"");
    h_resp r, g;
    req_ok(&E, "POST", "/api/v1/transactions", b, 201, &r);
    free(b);
    static const char *const want[][2] = {
        {"email", "a.b@example.com"},    {"ip_address", "2001:db8::1"}, {"device_id", "dev-42"},
        {"card_fingerprint", "fp_9f8e"}, {"card_bin", "42424242"},      {"card_country", "FR"},
        {"shipping_country", "IT"}};
    char path[200];
    snprintf(path, sizeof path, "/api/v1/transactions/%s", h_str(&r, "id"));
    req_ok(&E, "GET", path, NULL, 200, &g);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ck_assert_str_eq(h_str(&r, want[i][0]), want[i][1]);
        ck_assert_str_eq(h_str(&g, want[i][0]), want[i][1]);
    }
    const cJSON *risk = get(r.json, "risk");
    ck_assert_str_eq(cJSON_GetStringValue(get(risk, "decided_by")), "fallback");
    ck_assert(cJSON_IsNull(get(risk, "rules"))); /* the policy has no rules */
    h_resp_free(&r);
    h_resp_free(&g);
    /* absent fields are null; an IPv4 address stays dotted */
    b = txn_body("idf", ",\"ip_address\":\"192.0.2.7\"");
    req_ok(&E, "POST", "/api/v1/transactions", b, 201, &r);
    free(b);
    ck_assert_str_eq(h_str(&r, "ip_address"), "192.0.2.7");
    ck_assert(cJSON_IsNull(get(r.json, "email")));
    ck_assert(cJSON_IsNull(get(r.json, "card_bin")));
    h_resp_free(&r);
}
END_TEST

START_TEST(identity_fields_validated)
{
    user("idv");
    static const char *const bad[][2] = {
        {"email", "\"no-at-sign\""},
        {"ip_address", "\"1.2.3\""},
        {"ip_address", "\"10.0.0.0/8\""},
        {"ip_address", "\"fe80::1%eth0\""},
        {"ip_address", "7"},
        {"card_bin", "\"12345\""},
        {"card_bin", "\"123456789\""},
        {"card_bin", "\"12a456\""},
        {"card_country", "\"XX\""},
        {"card_country", "\"de\""},
        {"shipping_country", "\"ZZ\""},
        {"device_id", "\"\""},
        {"card_fingerprint", "{}"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char extra[200];
        h_resp r;
        snprintf(extra, sizeof extra, ",\"%s\":%s", bad[i][0], bad[i][1]);
        char *b = txn_body("idv", extra);
        e2e_req(&E, "POST", "/api/v1/transactions", b, &r);
        free(b);
        e2e_assert_problem(&r, 400, "validation_failed", bad[i][0]);
        h_resp_free(&r);
    }
    /* N and N+1: a BIN of 6 and 8 digits is fine (above), 5 and 9 are not; an unknown field */
    h_resp r;
    char *b = txn_body("idv", ",\"card_bin\":\"123456\",\"ip_addr\":\"1.2.3.4\"");
    e2e_req(&E, "POST", "/api/v1/transactions", b, &r);
    free(b);
    e2e_assert_problem(&r, 400, "unknown_field", "ip_addr");
    h_resp_free(&r);
}
END_TEST

/* ---- lists ---------------------------------------------------------------------------------- */

START_TEST(lists_crud_and_errors)
{
    char id[37], path[200];
    h_resp r;
    create_list("crud_list", "string", id);
    e2e_req(&E, "POST", "/api/v1/lists", "{\"name\":\"crud_list\",\"kind\":\"string\"}", &r);
    e2e_assert_problem(&r, 409, "list_exists", "name");
    h_resp_free(&r);
    static const char *const bad[][2] = {
        {"{\"name\":\"-x\",\"kind\":\"string\"}", "name"},
        {"{\"name\":\"has space\",\"kind\":\"string\"}", "name"},
        {"{\"name\":\"ok\",\"kind\":\"set\"}", "kind"},
        {"{\"kind\":\"ip\"}", "name"},
        {"{\"name\":\"ok\"}", "kind"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        e2e_req(&E, "POST", "/api/v1/lists", bad[i][0], &r);
        e2e_assert_problem(&r, 400, "validation_failed", bad[i][1]);
        h_resp_free(&r);
    }
    e2e_req(&E, "POST", "/api/v1/lists", "{\"name\":\"ok\",\"kind\":\"ip\",\"color\":1}", &r);
    e2e_assert_problem(&r, 400, "unknown_field", "color");
    h_resp_free(&r);
    /* adds are idempotent: the second add changes nothing and keeps the version */
    long v1, v2, v3;
    ck_assert_int_eq(change(&E, id, "POST", "[\"a\",\"b\",\"c\",\"b\"]", &v1), 3);
    ck_assert_int_eq(change(&E, id, "POST", "[\"a\",\"b\"]", &v2), 0);
    ck_assert_int_eq(v1, 2);
    ck_assert_int_eq(v2, 2);
    ck_assert_int_eq(change(&E, id, "DELETE", "[\"b\",\"zz\"]", &v3), 1);
    ck_assert_int_eq(v3, 3);
    ck_assert(member(&E, id, "a"));
    ck_assert(!member(&E, id, "b"));
    ck_assert(!member(&E, id, "A")); /* exact bytes */
    snprintf(path, sizeof path, "/api/v1/lists/%s", id);
    req_ok(&E, "GET", path, NULL, 200, &r);
    ck_assert_int_eq((int)num(r.json, "item_count"), 2);
    ck_assert_int_eq((int)num(r.json, "version"), 3);
    h_resp_free(&r);
    req_ok(&E, "GET", "/api/v1/lists?limit=500", NULL, 200, &r);
    ck_assert_int_ge(cJSON_GetArraySize(get(r.json, "data")), 1);
    h_resp_free(&r);
    /* item errors name the item; an empty array and a non-array are refused */
    snprintf(path, sizeof path, "/api/v1/lists/%s/items", id);
    e2e_req(&E, "POST", path, "{\"items\":[\"ok\",7]}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "items[1]");
    h_resp_free(&r);
    e2e_req(&E, "POST", path, "{\"items\":[]}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "items");
    h_resp_free(&r);
    e2e_req(&E, "POST", path, "{\"items\":\"a\"}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "items");
    h_resp_free(&r);
    e2e_req(&E, "POST", path, "{\"items\":[\"a\"],\"x\":1}", &r);
    e2e_assert_problem(&r, 400, "unknown_field", "x");
    h_resp_free(&r);
    /* delete, then everything about it is a 404 */
    snprintf(path, sizeof path, "/api/v1/lists/%s", id);
    req_ok(&E, "DELETE", path, NULL, 204, &r);
    h_resp_free(&r);
    static const char *const gone[][2] = {
        {"GET", ""}, {"DELETE", ""}, {"GET", "/items"}, {"GET", "/items/a"}, {"POST", "/items"}};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
        snprintf(path, sizeof path, "/api/v1/lists/%s%s", id, gone[i][1]);
        e2e_req(&E, gone[i][0], path, strcmp(gone[i][0], "POST") ? NULL : "{\"items\":[\"a\"]}",
                &r);
        e2e_assert_problem(&r, 404, "not_found", NULL);
        h_resp_free(&r);
    }
    e2e_req(&E, "GET", "/api/v1/lists/not-a-uuid", NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "id");
    h_resp_free(&r);
}
END_TEST

/* Every change is recorded: action, counts, the version after it, the key's id and name. */
START_TEST(list_audit_records_who)
{
    char id[37], key[128], path[200];
    ck_assert_int_eq(h_create_key(&E, "write", key, sizeof key), 0);
    create_list("audited", "number", id);
    ck_assert_int_eq(change(&E, id, "POST", "[1, 2.5, \"3\", \"1e0\"]", NULL), 3);
    snprintf(path, sizeof path, "/api/v1/lists/%s/items", id);
    h_resp r;
    ck_assert_int_eq(
        h_http(&E, "DELETE", path, key, "application/json", "{\"items\":[2.5]}", 15, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    snprintf(path, sizeof path, "/api/v1/lists/%s/changes?limit=2", id);
    req_ok(&E, "GET", path, NULL, 200, &r);
    const cJSON *d = get(r.json, "data");
    ck_assert_int_eq(cJSON_GetArraySize(d), 2);
    const cJSON *c0 = cJSON_GetArrayItem(d, 0), *c1 = cJSON_GetArrayItem(d, 1);
    ck_assert_str_eq(cJSON_GetStringValue(get(c0, "action")), "remove");
    ck_assert_int_eq((int)num(c0, "removed"), 1);
    ck_assert_int_eq((int)num(c0, "version"), 3);
    ck_assert_str_eq(cJSON_GetStringValue(get(get(c0, "api_key"), "name")), "e2e");
    ck_assert_str_eq(cJSON_GetStringValue(get(c1, "action")), "add");
    ck_assert_int_eq((int)num(c1, "added"), 3);
    ck_assert_str_eq(cJSON_GetStringValue(get(get(c1, "api_key"), "name")), "bootstrap");
    const char *next = cJSON_GetStringValue(get(r.json, "next_cursor"));
    ck_assert_ptr_nonnull(next);
    snprintf(path, sizeof path, "/api/v1/lists/%s/changes?cursor=%s", id, next);
    h_resp_free(&r);
    req_ok(&E, "GET", path, NULL, 200, &r);
    d = get(r.json, "data");
    ck_assert_int_eq(cJSON_GetArraySize(d), 1);
    ck_assert_str_eq(cJSON_GetStringValue(get(cJSON_GetArrayItem(d, 0), "action")), "create");
    h_resp_free(&r);
    /* numbers are one item per value: 1 == 1e0; 3 came as a string */
    ck_assert(member(&E, id, "1"));
    ck_assert(member(&E, id, "3.0"));
    ck_assert(!member(&E, id, "2.5"));
    snprintf(path, sizeof path, "/api/v1/lists/%s/items/abc", id);
    e2e_req(&E, "GET", path, NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "value");
    h_resp_free(&r);
    /* the audit is append-only (the schema refuses changes) and outlives the list */
    char out[512];
    ck_assert_int_ne(h_psql(&E, NULL, "UPDATE list_changes SET added = 0", out, sizeof out), 0);
    snprintf(path, sizeof path, "/api/v1/lists/%s", id);
    req_ok(&E, "DELETE", path, NULL, 204, &r);
    h_resp_free(&r);
    snprintf(path, sizeof path, "/api/v1/lists/%s/changes", id);
    req_ok(&E, "GET", path, NULL, 200, &r);
    const cJSON *last = cJSON_GetArrayItem(get(r.json, "data"), 0);
    ck_assert_str_eq(cJSON_GetStringValue(get(last, "action")), "delete");
    ck_assert_int_eq(cJSON_GetArraySize(get(r.json, "data")), 4);
    h_resp_free(&r);
}
END_TEST

START_TEST(ip_lists_cidr_v4_v6)
{
    char id[37], path[200];
    h_resp r;
    create_list("ips", "ip", id);
    ck_assert_int_eq(change(&E, id, "POST",
                            "[\"10.0.0.0/8\",\"192.0.2.7\",\"2001:db8::/32\",\"198.51.100.0/24\","
                            "\"192.0.2.7/32\",\"::ffff:203.0.113.9\"]",
                            NULL),
                     5);
    static const struct {
        const char *addr;
        int in;
    } t[] = {{"10.0.0.0", 1},        {"10.255.255.255", 1},
             {"11.0.0.0", 0},        {"9.255.255.255", 0},
             {"192.0.2.7", 1},       {"192.0.2.8", 0},
             {"198.51.100.200", 1},  {"198.51.101.1", 0},
             {"2001:db8::1", 1},     {"2001:db8:ffff::9", 1},
             {"2001:db9::", 0},      {"203.0.113.9", 1},
             {"::ffff:10.1.2.3", 1}, {"::1", 0}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        ck_assert_msg(member(&E, id, t[i].addr) == t[i].in, "%s", t[i].addr);
    snprintf(path, sizeof path, "/api/v1/lists/%s/items", id);
    e2e_req(&E, "POST", path, "{\"items\":[\"10.0.0.1/8\"]}", &r); /* host bits set */
    e2e_assert_problem(&r, 400, "validation_failed", "items[0]");
    h_resp_free(&r);
    e2e_req(&E, "POST", path, "{\"items\":[\"1.2.3.4\",\"1.2.3.4/33\"]}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "items[1]");
    h_resp_free(&r);
    snprintf(path, sizeof path, "/api/v1/lists/%s/items/not-an-ip", id);
    e2e_req(&E, "GET", path, NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "value");
    h_resp_free(&r);
    /* the stored items are canonical: /32 is the address, mapped is IPv4 */
    snprintf(path, sizeof path, "/api/v1/lists/%s/items?limit=2", id);
    req_ok(&E, "GET", path, NULL, 200, &r);
    char seen[1024] = "";
    for (int page = 0; page < 5; page++) {
        const cJSON *it;
        cJSON_ArrayForEach(it, get(r.json, "data"))
        {
            strcat(seen, it->valuestring);
            strcat(seen, " ");
        }
        const char *next = cJSON_GetStringValue(get(r.json, "next_cursor"));
        if (!next)
            break;
        snprintf(path, sizeof path, "/api/v1/lists/%s/items?limit=2&cursor=%s", id, next);
        h_resp_free(&r);
        req_ok(&E, "GET", path, NULL, 200, &r);
    }
    h_resp_free(&r);
    ck_assert_str_eq(seen, "10.0.0.0/8 192.0.2.7 198.51.100.0/24 2001:db8::/32 203.0.113.9 ");
}
END_TEST

/* 100,000 items in one call (N) and 100,001 refused (N+1); membership in the big set. */
START_TEST(list_of_100k_items)
{
    char id[37], path[200];
    create_list("big100k", "string", id);
    size_t cap = 100001 * 24 + 64, at = 0;
    char *body = malloc(cap);
    at += (size_t)sprintf(body, "{\"items\":[");
    for (int i = 0; i < 100001; i++)
        at += (size_t)sprintf(body + at, "%s\"fp_%07d\"", i ? "," : "", i);
    sprintf(body + at, "]}");
    snprintf(path, sizeof path, "/api/v1/lists/%s/items", id);
    h_resp r;
    e2e_req(&E, "POST", path, body, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "items");
    h_resp_free(&r);
    char *last = strrchr(body, ',');
    strcpy(last, "]}"); /* drop the 100,001st */
    req_ok(&E, "POST", path, body, 200, &r);
    ck_assert_int_eq((int)num(r.json, "added"), 100000);
    h_resp_free(&r);
    free(body);
    ck_assert(member(&E, id, "fp_0000000"));
    ck_assert(member(&E, id, "fp_0099999"));
    ck_assert(!member(&E, id, "fp_0100000"));
}
END_TEST

/* ---- two replicas ---------------------------------------------------------------------------- */

/* Starts a second vigil-api on E's database; its environment into *b.  Returns its pid. */
static pid_t second_api(h_env *b)
{
    char exe[400], addr[64], db[600], key[128];
    static char envs[4][600];
    *b = E;
    b->api_port = h_free_port();
    snprintf(b->base, sizeof b->base, "http://127.0.0.1:%d", b->api_port);
    snprintf(exe, sizeof exe, "%s/vigil-api", E.bin);
    snprintf(addr, sizeof addr, "VIGIL_HTTP_ADDR=127.0.0.1:%d", b->api_port);
    snprintf(db, sizeof db, "DATABASE_URL=%s", E.db_url);
    snprintf(key, sizeof key, "VIGIL_BOOTSTRAP_KEY=%s", E.key);
    snprintf(envs[0], sizeof envs[0], "%s", addr);
    snprintf(envs[1], sizeof envs[1], "%s", db);
    snprintf(envs[2], sizeof envs[2], "%s", key);
    const char *env[] = {envs[0], envs[1], envs[2], NULL};
    const char *argv[] = {exe, "serve", NULL};
    pid_t pid = h_spawn(&E, argv, env, "api-b.log");
    for (int i = 0; i < 500; i++) {
        h_resp r;
        if (h_http(b, "GET", "/health", NULL, NULL, NULL, 0, NULL, &r) == 0) {
            long st = r.status;
            h_resp_free(&r);
            if (st == 200)
                return pid;
        }
        usleep(20000);
    }
    kill(pid, SIGKILL);
    ck_abort_msg("the second vigil-api did not come up");
    return -1;
}

static const char *decide(h_env *e, const char *ip, char *by, size_t cap)
{
    static char dec[16];
    char extra[100];
    h_resp r;
    snprintf(extra, sizeof extra, ",\"ip_address\":\"%s\"", ip);
    char *b = txn_body("rep", extra);
    req_ok(e, "POST", "/api/v1/transactions", b, 201, &r);
    free(b);
    const cJSON *risk = get(r.json, "risk");
    snprintf(dec, sizeof dec, "%s", cJSON_GetStringValue(get(risk, "decision")));
    snprintf(by, cap, "%s", cJSON_GetStringValue(get(risk, "decided_by")));
    h_resp_free(&r);
    return dec;
}

/* A change through replica A is seen by the next decision and membership read on replica B (the
 * version check rides on B's policy query; membership reads check the version the same way). */
START_TEST(two_replicas_see_a_change)
{
    char id[37], by[200];
    h_env b;
    h_resp r;
    user("rep");
    create_list("rep_ips", "ip", id);
    ck_assert_int_eq(change(&E, id, "POST", "[\"10.0.0.0/8\"]", NULL), 1);
    req_ok(&E, "PUT", "/api/v1/policy",
           "{\"champion_model_id\":null,\"review_threshold\":0.5,\"block_threshold\":0.9,"
           "\"fallback_decision\":\"allow\",\"rules\":[{\"name\":\"bad_ip\",\"action\":\"block\","
           "\"when\":\"ip_address in @rep_ips\"}]}",
           200, &r);
    h_resp_free(&r);
    pid_t pid = g_second = second_api(&b);
    ck_assert_str_eq(decide(&b, "172.16.0.1", by, sizeof by), "allow"); /* B holds version 2 */
    ck_assert_str_eq(by, "fallback");
    ck_assert_str_eq(decide(&b, "10.9.9.9", by, sizeof by), "block");
    ck_assert_str_eq(by, "rule:bad_ip");
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(change(&E, id, "POST", "[\"172.16.0.0/12\"]", NULL), 1);
        ck_assert_str_eq(decide(&b, "172.16.0.1", by, sizeof by), "block");
        ck_assert(member(&b, id, "172.20.1.1"));
        ck_assert_int_eq(change(&E, id, "DELETE", "[\"172.16.0.0/12\"]", NULL), 1);
        ck_assert(!member(&b, id, "172.20.1.1"));
        ck_assert_str_eq(decide(&b, "172.16.0.1", by, sizeof by), "allow");
    }
    kill(pid, SIGTERM);
    g_second = 0;
    ck_assert_int_eq(h_wait(pid, 15000), 0);
    req_ok(&E, "PUT", "/api/v1/policy",
           "{\"champion_model_id\":null,\"review_threshold\":0.5,\"block_threshold\":0.9}", 200,
           &r);
    h_resp_free(&r);
}
END_TEST

/* A list the active policy's rules name cannot be deleted (409); once the policy stops naming it,
 * it can. */
START_TEST(list_in_use_409)
{
    char id[37], path[200];
    h_resp r;
    create_list("in_use", "string", id);
    req_ok(&E, "PUT", "/api/v1/policy",
           "{\"champion_model_id\":null,\"review_threshold\":0.5,\"block_threshold\":0.9,"
           "\"rules\":[{\"name\":\"r\",\"action\":\"review\",\"when\":\"email in @in_use\"}]}",
           200, &r);
    h_resp_free(&r);
    snprintf(path, sizeof path, "/api/v1/lists/%s", id);
    e2e_req(&E, "DELETE", path, NULL, &r);
    e2e_assert_problem(&r, 409, "list_in_use", NULL);
    h_resp_free(&r);
    req_ok(&E, "PUT", "/api/v1/policy",
           "{\"champion_model_id\":null,\"review_threshold\":0.5,\"block_threshold\":0.9}", 200,
           &r);
    h_resp_free(&r);
    req_ok(&E, "DELETE", path, NULL, 204, &r);
    h_resp_free(&r);
}
END_TEST

static Suite *lists_suite(void)
{
    Suite *s = suite_create("lists");
    TCase *tc = tcase_create("lists");
    tcase_add_unchecked_fixture(tc, up, down);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, identity_fields_stored_and_returned);
    tcase_add_test(tc, identity_fields_validated);
    tcase_add_test(tc, lists_crud_and_errors);
    tcase_add_test(tc, list_audit_records_who);
    tcase_add_test(tc, ip_lists_cidr_v4_v6);
    tcase_add_test(tc, list_of_100k_items);
    tcase_add_test(tc, two_replicas_see_a_change);
    tcase_add_test(tc, list_in_use_409);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lists_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
