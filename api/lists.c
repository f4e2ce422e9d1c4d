/* lists.c - the list resource: lists, their items, membership and the audit of changes.  See
 * lists.h.  Every statement on lists, list_items and list_changes is here; membership reads the
 * in-memory sets of listcache.c.
 *
 * Costs: adding or removing n items is one statement with the items as one text[] parameter
 * (unnest + INSERT ... ON CONFLICT DO NOTHING, or DELETE ... = ANY), O(n log N) in the primary-key
 * index; the body is parsed once (cJSON) and each item canonicalised (listset_canon). */
#include "lists.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbreq.h"
#include "dynbuf.h"
#include "fields.h"
#include "hex.h"
#include "json.h"
#include "listcache.h"
#include "listset.h"
#include "rules.h"
#include "validate.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define LIST_COLS                                                                                  \
    "l.id, l.name, l.kind, l.description, l.version, l.item_count, " TS("l.created_at") ", " TS(   \
        "l.updated_at") ", (extract(epoch FROM l.created_at) * 1000000)::bigint"
enum { L_ID, L_NAME, L_KIND, L_DESC, L_VERSION, L_COUNT, L_CREATED, L_UPDATED, L_CREATED_US };

/* The API key's name, for the audit columns, with the key's id as parameter $n. */
#define KEY_NAME(n) "(SELECT k.name FROM api_keys k WHERE k.id = $" #n "::uuid)"

static cJSON *list_json(const PGresult *r, int row)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", PQgetvalue(r, row, L_ID));
    cJSON_AddStringToObject(o, "name", PQgetvalue(r, row, L_NAME));
    cJSON_AddStringToObject(o, "kind", PQgetvalue(r, row, L_KIND));
    if (PQgetisnull(r, row, L_DESC))
        cJSON_AddNullToObject(o, "description");
    else
        cJSON_AddStringToObject(o, "description", PQgetvalue(r, row, L_DESC));
    cJSON_AddNumberToObject(o, "version", strtod(PQgetvalue(r, row, L_VERSION), NULL));
    cJSON_AddNumberToObject(o, "item_count", strtod(PQgetvalue(r, row, L_COUNT), NULL));
    cJSON_AddStringToObject(o, "created_at", PQgetvalue(r, row, L_CREATED));
    cJSON_AddStringToObject(o, "updated_at", PQgetvalue(r, row, L_UPDATED));
    return o;
}

/* The {id} path parameter, a UUID: 0, or -1 with a 400. */
static int list_id(http_req *req, http_resp *resp, const char **id)
{
    *id = req->nparams > 0 ? req->params[0] : NULL;
    if (!*id || !val_uuid(*id)) {
        http_problem(resp, 400, "validation_failed", "id", "list id must be a UUID");
        return -1;
    }
    return 0;
}

/* One statement on a pooled connection; DB_OK with *r, else resp filled (500 for SQL errors
 * other than the SQLSTATE expect, which is returned as DB_ERROR with *r for the caller). */
static int run(http_req *req, http_resp *resp, const char *sql, int n, const char *const *v,
               const char *expect, PGresult **r)
{
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return DB_DOWN;
    int rc = dbreq_query(req, resp, c, sql, n, v, r);
    dbreq_release(req, c);
    if (rc == DB_ERROR && !(expect && strcmp(db_sqlstate(*r), expect) == 0)) {
        dbreq_internal(req, resp, *r);
        PQclear(*r);
        *r = NULL;
        return DB_DOWN;
    }
    return rc;
}

/* ---- lists ---------------------------------------------------------------------------------- */

void lists_create(http_req *req, http_resp *resp)
{
    static const char *const allowed[] = {"name", "kind", "description", NULL};
    cJSON *body = NULL;
    PGresult *r = NULL;
    const char *name, *kind, *desc = NULL;
    if (http_body_object(req, resp, &body) || field_no_unknown(resp, body, allowed) ||
        field_string(resp, body, "name", RULES_LISTNAME_MAX, FIELD_REQUIRED, &name, NULL) ||
        field_string(resp, body, "kind", 16, FIELD_REQUIRED, &kind, NULL) ||
        field_string(resp, body, "description", 1024, FIELD_NULLABLE, &desc, NULL))
        goto done;
    if (!rules_list_name_valid(name, strlen(name))) {
        http_problem(resp, 400, "validation_failed", "name",
                     "'name' must be 1..64 of A-Z a-z 0-9 _ - . (not starting with - or .)");
        goto done;
    }
    if (!listset_kind_parse(kind, strlen(kind))) {
        http_problem(resp, 400, "validation_failed", "kind", "'kind' must be string, ip or number");
        goto done;
    }
    const char *v[] = {name, kind, desc, req->key_id};
    int rc = run(req, resp,
                 "WITH l AS (INSERT INTO lists (name, kind, description) VALUES ($1, $2, $3) "
                 "RETURNING *), a AS (INSERT INTO list_changes (list_id, list_name, action, "
                 "version, api_key_id, api_key_name) SELECT l.id, l.name, 'create', l.version, "
                 "$4::uuid, " KEY_NAME(4) " FROM l) SELECT " LIST_COLS " FROM l",
                 4, v, "23505", &r);
    if (rc == DB_ERROR) {
        http_problem(resp, 409, "list_exists", "name", "a list named '%s' exists", name);
    } else if (rc == DB_OK) {
        snprintf(resp->location, sizeof resp->location, "/api/v1/lists/%s", PQgetvalue(r, 0, L_ID));
        http_json(resp, 201, list_json(r, 0));
    }
done:
    PQclear(r);
    cJSON_Delete(body);
}

void lists_list(http_req *req, http_resp *resp)
{
    static const char *const args[] = {"limit", "cursor", NULL};
    field_page pg;
    PGresult *r = NULL;
    if (field_page_args(req, resp, args, &pg))
        return;
    const char *v[] = {pg.cursor_us, pg.cursor_id, pg.limit_plus_1};
    if (run(req, resp,
            "SELECT " LIST_COLS " FROM lists l WHERE ($1::bigint IS NULL OR "
            "(l.created_at, l.id) < ('epoch'::timestamptz + $1::bigint * interval '1 microsecond', "
            "$2::uuid)) ORDER BY l.created_at DESC, l.id DESC LIMIT $3",
            3, v, NULL, &r) == DB_OK)
        http_json(resp, 200, dbreq_page(r, pg.limit, L_CREATED_US, L_ID, list_json));
    PQclear(r);
}

void lists_get(http_req *req, http_resp *resp)
{
    const char *id;
    PGresult *r = NULL;
    if (list_id(req, resp, &id) ||
        dbreq_fetch_by_id(req, resp, "SELECT " LIST_COLS " FROM lists l WHERE l.id = $1", id,
                          "list", 0, &r))
        return;
    http_json(resp, 200, list_json(r, 0));
    PQclear(r);
}

/* Locks the policy row, then the list: 0 when it may go, else -1 with resp filled (404, 409).
 * The policy is locked first, as PUT /policy does, so the two never deadlock. */
static int delete_check(http_req *req, http_resp *resp, db_conn *c, const char *id)
{
    PGresult *r = NULL;
    const char *v[] = {id};
    int rc = dbreq_query(req, resp, c, "SELECT 1 FROM policy FOR UPDATE", 0, NULL, &r);
    if (rc == DB_OK) {
        PQclear(r);
        rc = dbreq_query(req, resp, c,
                         "SELECT l.name, l.name = ANY (p.rule_lists) FROM lists l, policy p "
                         "WHERE l.id = $1 FOR UPDATE OF l",
                         1, v, &r);
    }
    int ok = -1;
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK && PQntuples(r) == 0)
        http_problem(resp, 404, "not_found", NULL, "no list with id %s", id);
    else if (rc == DB_OK && PQgetvalue(r, 0, 1)[0] == 't')
        http_problem(resp, 409, "list_in_use", NULL,
                     "list '%s' is used by the active policy's rules; change the policy first",
                     PQgetvalue(r, 0, 0));
    else if (rc == DB_OK)
        ok = 0;
    PQclear(r);
    return ok;
}

void lists_delete(http_req *req, http_resp *resp)
{
    const char *id;
    PGresult *r = NULL;
    db_conn *c = NULL;
    if (list_id(req, resp, &id) || !(c = dbreq_acquire(req, resp)) || dbreq_begin(req, resp, c) ||
        delete_check(req, resp, c, id))
        goto done;
    const char *v[] = {id, req->key_id};
    int rc = dbreq_query(
        req, resp, c,
        "WITH d AS (DELETE FROM lists WHERE id = $1 RETURNING id, name, version) "
        "INSERT INTO list_changes (list_id, list_name, action, version, "
        "removed, api_key_id, api_key_name) SELECT d.id, d.name, 'delete', "
        "d.version + 1, 0, $2::uuid, " KEY_NAME(2) " FROM d "
                                                   "RETURNING pg_notify('vigil_lists', $1::text)",
        2, v, &r);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK && dbreq_commit(req, resp, c) == 0)
        http_raw(resp, 204, NULL, NULL, 0);
done:
    PQclear(r);
    if (c)
        dbreq_release(req, c);
}

/* ---- items ---------------------------------------------------------------------------------- */

/* The list's kind and version: 0, or -1 with resp filled (404, 503, 500). */
static int list_kind(http_req *req, http_resp *resp, const char *id, listset_kind *kind,
                     long long *version)
{
    PGresult *r = NULL;
    if (dbreq_fetch_by_id(req, resp, "SELECT kind, version FROM lists WHERE id = $1", id, "list", 0,
                          &r))
        return -1;
    *kind = listset_kind_parse(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
    *version = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return 0;
}

/* Appends item i's canonical text, quoted for a PostgreSQL array literal, to arr.  0, or -1 with
 * a 400 naming items[i]. */
static int item_append(http_resp *resp, listset_kind kind, const cJSON *it, int i, dynbuf *arr)
{
    char canon[LISTSET_ITEM_MAX + 1], why[200] = "";
    int rc = LISTSET_E_INVALID;
    if (cJSON_IsString(it))
        rc = listset_canon(kind, it->valuestring, strlen(it->valuestring), canon, sizeof canon, why,
                           sizeof why);
    else if (cJSON_IsNumber(it) && kind == LISTSET_NUMBER)
        rc = listset_number_canon(it->valuedouble, canon, sizeof canon);
    if (rc != LISTSET_OK) {
        char field[32];
        snprintf(field, sizeof field, "items[%d]", i);
        http_problem(resp, 400, "validation_failed", field, "%s: %s", field,
                     why[0] ? why : "must be a string (or a number in a number list)");
        return -1;
    }
    dynbuf_append(arr, i ? ",\"" : "\"", i ? 2 : 1);
    for (const char *p = canon; *p; p++) {
        if (*p == '"' || *p == '\\')
            dynbuf_append(arr, "\\", 1);
        dynbuf_append(arr, p, 1);
    }
    return dynbuf_append(arr, "\"", 1) == DYNBUF_OK ? 0 : -1;
}

/* The body {"items": [...]} of a list of kind as a PostgreSQL text[] literal (malloc'd).  0, or
 * -1 with resp filled (400 naming the field, 500). */
static int items_literal(http_req *req, http_resp *resp, listset_kind kind, char **out)
{
    static const char *const allowed[] = {"items", NULL};
    cJSON *body = NULL;
    dynbuf arr;
    size_t used;
    int rc = -1;
    dynbuf_init(&arr, req->body_len * 2 + 16); /* quoting at most doubles an item */
    if (http_body_object(req, resp, &body) || field_no_unknown(resp, body, allowed))
        goto done;
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(body, "items");
    int n = cJSON_GetArraySize(items);
    if (!cJSON_IsArray(items) || n < 1 || n > LISTS_ITEMS_PER_CALL) {
        http_problem(resp, 400, "validation_failed", "items",
                     "'items' must be an array of 1..%d items", LISTS_ITEMS_PER_CALL);
        goto done;
    }
    dynbuf_append(&arr, "{", 1);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        if (item_append(resp, kind, it, i++, &arr))
            goto done;
    }
    if (dynbuf_append(&arr, "}", 1) != DYNBUF_OK || !(*out = dynbuf_take(&arr, &used))) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
        goto done;
    }
    rc = 0;
done:
    dynbuf_free(&arr);
    cJSON_Delete(body);
    return rc;
}

/* The change statements: $1 list id, $2 items (text[]), $3 API key id.  Each changes the items,
 * bumps the version when anything changed, records the change and notifies every replica, in one
 * statement.  The list row is locked only by the final UPDATE, so changes to one list insert their
 * items in parallel and take their version numbers one after the other (each commit makes items
 * and version visible together). */
#define CHANGE_TAIL(sign, action, added, removed)                                                  \
    "n AS (SELECT count(*)::int AS c FROM x), "                                                    \
    "u AS (UPDATE lists SET version = lists.version + (n.c > 0)::int, "                            \
    "item_count = lists.item_count " sign " n.c, updated_at = clock_timestamp() FROM n "           \
    "WHERE lists.id = $1 RETURNING lists.version, lists.name, lists.item_count, n.c), "            \
    "a AS (INSERT INTO list_changes (list_id, list_name, action, version, added, removed, "        \
    "api_key_id, api_key_name) SELECT $1, u.name, " action ", u.version, " added ", " removed      \
    ", $3::uuid, " KEY_NAME(                                                                       \
        3) " FROM u) "                                                                             \
           "SELECT u.version, u.c, u.item_count, pg_notify('vigil_lists', $1::text) FROM u"

static const char ADD_SQL[] =
    "WITH l AS (SELECT id FROM lists WHERE id = $1), "
    "x AS (INSERT INTO list_items (list_id, value) SELECT l.id, v FROM l, unnest($2::text[]) v "
    "ORDER BY v "
    "ON CONFLICT DO NOTHING RETURNING 1), " CHANGE_TAIL("+", "'add'", "u.c", "0");
static const char REMOVE_SQL[] =
    "WITH l AS (SELECT id FROM lists WHERE id = $1), "
    "x AS (DELETE FROM list_items i USING l WHERE i.list_id = l.id AND i.value = ANY ($2::text[]) "
    "RETURNING 1), " CHANGE_TAIL("-", "'remove'", "0", "u.c");

static void items_change(http_req *req, http_resp *resp, int add)
{
    const char *id;
    char *arr = NULL;
    PGresult *r = NULL;
    listset_kind kind;
    long long version;
    if (list_id(req, resp, &id) || list_kind(req, resp, id, &kind, &version) ||
        items_literal(req, resp, kind, &arr))
        goto done;
    const char *v[] = {id, arr, req->key_id};
    if (run(req, resp, add ? ADD_SQL : REMOVE_SQL, 3, v, NULL, &r) != DB_OK)
        goto done;
    if (PQntuples(r) == 0) {
        http_problem(resp, 404, "not_found", NULL, "no list with id %s", id);
        goto done;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "list_id", id);
    cJSON_AddNumberToObject(o, "version", strtod(PQgetvalue(r, 0, 0), NULL));
    cJSON_AddNumberToObject(o, add ? "added" : "removed", strtod(PQgetvalue(r, 0, 1), NULL));
    cJSON_AddNumberToObject(o, "item_count", strtod(PQgetvalue(r, 0, 2), NULL));
    http_json(resp, 200, o);
done:
    PQclear(r);
    free(arr);
}

void lists_items_add(http_req *req, http_resp *resp)
{
    items_change(req, resp, 1);
}

void lists_items_remove(http_req *req, http_resp *resp)
{
    items_change(req, resp, 0);
}

/* The cursor of an items page: the last value shown, hex-encoded.  0 with value (or NULL without
 * a cursor) in buf[cap], or -1 with a 400. */
static int items_cursor(http_req *req, http_resp *resp, char *buf, size_t cap, const char **value)
{
    const char *cur = http_query(req, "cursor");
    size_t n = cur ? strlen(cur) : 0;
    *value = NULL;
    if (!cur)
        return 0;
    if (n % 2 || n / 2 >= cap || hex_decode(cur, n / 2, (uint8_t *)buf) != 0 ||
        memchr(buf, 0, n / 2) || !json_utf8_valid(buf, n / 2)) {
        http_problem(resp, 400, "validation_failed", "cursor", "'cursor' is not a valid cursor");
        return -1;
    }
    buf[n / 2] = '\0';
    *value = buf;
    return 0;
}

static cJSON *items_page_json(const PGresult *r, int limit)
{
    cJSON *out = cJSON_CreateObject();
    cJSON *data = cJSON_AddArrayToObject(out, "data");
    int n = PQntuples(r), shown = 0;
    for (int i = 0; i < n && shown < limit; i++)
        if (!PQgetisnull(r, i, 0)) {
            cJSON_AddItemToArray(data, cJSON_CreateString(PQgetvalue(r, i, 0)));
            shown++;
        }
    if (n > limit) {
        const char *last = PQgetvalue(r, limit - 1, 0);
        size_t len = strlen(last);
        char *hex = malloc(2 * len + 1);
        for (size_t i = 0; hex && i < len; i++)
            snprintf(hex + 2 * i, 3, "%02x", (unsigned char)last[i]);
        if (hex) {
            hex[2 * len] = '\0';
            cJSON_AddStringToObject(out, "next_cursor", hex);
        }
        free(hex);
    } else {
        cJSON_AddNullToObject(out, "next_cursor");
    }
    return out;
}

void lists_items_page(http_req *req, http_resp *resp)
{
    static const char *const args[] = {"limit", "cursor", NULL};
    const char *id, *after;
    char buf[LISTSET_ITEM_MAX + 1], lim[16];
    long long limit = 100;
    PGresult *r = NULL;
    const char *bad = http_query_unknown(req, args);
    if (bad) {
        http_problem(resp, 400, "unknown_parameter", bad, "unknown query parameter '%.64s'", bad);
        return;
    }
    const char *ls = http_query(req, "limit");
    if (ls && cfg_parse_int(ls, 1, 1000, &limit) != 0) {
        http_problem(resp, 400, "validation_failed", "limit",
                     "'limit' must be an integer in 1..1000");
        return;
    }
    if (list_id(req, resp, &id) || items_cursor(req, resp, buf, sizeof buf, &after))
        return;
    snprintf(lim, sizeof lim, "%lld", limit + 1);
    const char *v[] = {id, after, lim};
    if (run(req, resp,
            "SELECT i.value FROM lists l LEFT JOIN LATERAL (SELECT value FROM list_items "
            "WHERE list_id = l.id AND ($2::text IS NULL OR value > $2) ORDER BY value LIMIT $3) i "
            "ON true WHERE l.id = $1",
            3, v, NULL, &r) != DB_OK)
        return;
    if (PQntuples(r) == 0)
        http_problem(resp, 404, "not_found", NULL, "no list with id %s", id);
    else
        http_json(resp, 200, items_page_json(r, (int)limit));
    PQclear(r);
}

/* Whether value is in set (of kind): an ip set answers for an address (inside a range counts). */
static int member(const listset *set, listset_kind kind, const char *value, int *is)
{
    char canon[LISTSET_ITEM_MAX + 1];
    size_t n = strlen(value);
    if (kind == LISTSET_IP) {
        listset_ip a;
        if (strchr(value, '/') || listset_ip_parse(value, n, &a, NULL, 0) != LISTSET_OK)
            return -1;
        *is = listset_has_ip(set, &a);
    } else if (listset_canon(kind, value, n, canon, sizeof canon, NULL, 0) != LISTSET_OK) {
        return -1;
    } else {
        *is = kind == LISTSET_NUMBER ? listset_has_number(set, strtod(canon, NULL))
                                     : listset_has_string(set, canon, strlen(canon));
    }
    return 0;
}

void lists_item_member(http_req *req, http_resp *resp)
{
    const char *id, *value = req->nparams > 1 ? req->params[1] : "";
    listset_kind kind;
    long long version;
    listcache_set *s = NULL;
    char err[256];
    int is = 0;
    if (list_id(req, resp, &id) || list_kind(req, resp, id, &kind, &version))
        return;
    int rc = listcache_get(req->app->lists, id, version, req->deadline_ms, &s, err, sizeof err);
    if (rc == LISTCACHE_GONE) {
        http_problem(resp, 404, "not_found", NULL, "no list with id %s", id);
    } else if (rc != LISTCACHE_OK) {
        resp->retry_after = 1;
        http_problem(resp, 503, "lists_unavailable", NULL, "the list set is not ready: %s", err);
    } else if (member(listcache_set_get(s), kind, value, &is) != 0) {
        http_problem(resp, 400, "validation_failed", "value", "'%.64s' is not %s", value,
                     kind == LISTSET_IP       ? "an IP address"
                     : kind == LISTSET_NUMBER ? "a number"
                                              : "a valid item");
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "list_id", id);
        cJSON_AddStringToObject(o, "value", value);
        cJSON_AddBoolToObject(o, "member", is);
        cJSON_AddNumberToObject(o, "version", (double)listcache_set_version(s));
        http_json(resp, 200, o);
    }
    listcache_release(req->app->lists, s);
}

/* ---- audit ---------------------------------------------------------------------------------- */

static cJSON *change_json(const PGresult *r, int row)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", strtod(PQgetvalue(r, row, 0), NULL));
    cJSON_AddStringToObject(o, "list_id", PQgetvalue(r, row, 1));
    cJSON_AddStringToObject(o, "list_name", PQgetvalue(r, row, 2));
    cJSON_AddStringToObject(o, "action", PQgetvalue(r, row, 3));
    cJSON_AddNumberToObject(o, "version", strtod(PQgetvalue(r, row, 4), NULL));
    cJSON_AddNumberToObject(o, "added", atoi(PQgetvalue(r, row, 5)));
    cJSON_AddNumberToObject(o, "removed", atoi(PQgetvalue(r, row, 6)));
    cJSON *k = cJSON_AddObjectToObject(o, "api_key");
    if (PQgetisnull(r, row, 7))
        cJSON_AddNullToObject(k, "id");
    else
        cJSON_AddStringToObject(k, "id", PQgetvalue(r, row, 7));
    if (PQgetisnull(r, row, 8))
        cJSON_AddNullToObject(k, "name");
    else
        cJSON_AddStringToObject(k, "name", PQgetvalue(r, row, 8));
    cJSON_AddStringToObject(o, "created_at", PQgetvalue(r, row, 9));
    return o;
}

/* Newest first; the cursor is the id of the last change shown (decimal). */
void lists_changes(http_req *req, http_resp *resp)
{
    static const char *const args[] = {"limit", "cursor", NULL};
    const char *id, *cur = http_query(req, "cursor"), *bad = http_query_unknown(req, args);
    const char *ls = http_query(req, "limit");
    long long limit = 50, before;
    char lim[16];
    PGresult *r = NULL;
    if (bad) {
        http_problem(resp, 400, "unknown_parameter", bad, "unknown query parameter '%.64s'", bad);
        return;
    }
    if ((ls && cfg_parse_int(ls, 1, 500, &limit) != 0) ||
        (cur && cfg_parse_int(cur, 1, INT64_MAX, &before) != 0)) {
        http_problem(resp, 400, "validation_failed",
                     ls && cfg_parse_int(ls, 1, 500, &limit) ? "limit" : "cursor",
                     "'limit' must be an integer in 1..500 and 'cursor' a cursor");
        return;
    }
    if (list_id(req, resp, &id))
        return;
    snprintf(lim, sizeof lim, "%lld", limit + 1);
    const char *v[] = {id, cur, lim};
    if (run(req, resp,
            "SELECT c.id, c.list_id, c.list_name, c.action, c.version, c.added, c.removed, "
            "c.api_key_id, c.api_key_name, " TS(
                "c.created_at") " FROM list_changes c "
                                "WHERE c.list_id = $1 AND ($2::bigint IS NULL OR c.id < "
                                "$2::bigint) "
                                "ORDER BY c.id DESC LIMIT $3",
            3, v, NULL, &r) != DB_OK)
        return;
    cJSON *out = cJSON_CreateObject();
    cJSON *data = cJSON_AddArrayToObject(out, "data");
    int n = PQntuples(r);
    for (int i = 0; i < n && i < limit; i++)
        cJSON_AddItemToArray(data, change_json(r, i));
    if (n > limit)
        cJSON_AddStringToObject(out, "next_cursor", PQgetvalue(r, (int)limit - 1, 0));
    else
        cJSON_AddNullToObject(out, "next_cursor");
    http_json(resp, 200, out);
    PQclear(r);
}
