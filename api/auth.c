/* auth.c - API key management and per-request authentication.  See auth.h. */
#include "auth.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "dbreq.h"
#include "sha256.h"
#include "clock.h"

#define AUTH_CLI_TIMEOUT_MS 10000
#define AUTH_CACHE_SLOTS 64 /* keys in use at once by one deployment's clients: a handful */

/* One verified key: its hash, what the database said and when (clock_now_ms). */
typedef struct auth_entry {
    char hash[65]; /* "" = empty slot */
    char id[37];
    unsigned scopes;
    int64_t at_ms;
} auth_entry;

struct auth_cache {
    pthread_mutex_t mu;
    int ttl_ms;
    auth_entry e[AUTH_CACHE_SLOTS]; /* slot = first byte of the hash mod AUTH_CACHE_SLOTS,
                                     * replaced on a miss (a collision only costs a lookup) */
};

auth_cache *auth_cache_create(int ttl_ms)
{
    auth_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->ttl_ms = ttl_ms;
    return c;
}

void auth_cache_destroy(auth_cache *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static unsigned cache_slot(const char *hex)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++)
        v = v * 16 + (unsigned)(hex[i] <= '9' ? hex[i] - '0' : hex[i] - 'a' + 10);
    return v % AUTH_CACHE_SLOTS;
}

/* 1 with id/scopes when hex was verified less than ttl_ms ago, else 0. */
static int cache_get(auth_cache *c, const char *hex, char id[37], unsigned *scopes)
{
    int hit = 0;
    if (!c)
        return 0;
    int64_t now = clock_now_ms();
    pthread_mutex_lock(&c->mu);
    auth_entry *e = &c->e[cache_slot(hex)];
    if (strcmp(e->hash, hex) == 0 && now - e->at_ms < c->ttl_ms && now >= e->at_ms) {
        memcpy(id, e->id, 37);
        *scopes = e->scopes;
        hit = 1;
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

/* Remembers a key the database has just confirmed, from at_ms (taken before the lookup, so an
 * entry never outlives ttl_ms after the answer it holds was read). */
static void cache_put(auth_cache *c, const char *hex, const char *id, unsigned scopes,
                      int64_t at_ms)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    auth_entry *e = &c->e[cache_slot(hex)];
    snprintf(e->hash, sizeof e->hash, "%s", hex);
    snprintf(e->id, sizeof e->id, "%s", id);
    e->scopes = scopes;
    e->at_ms = at_ms;
    pthread_mutex_unlock(&c->mu);
}

static void hash_key(const char *key, char *hex_out /* 65 */)
{
    uint8_t d[32];
    sha256(key, strlen(key), d);
    sha256_hex(d, hex_out);
}

int auth_parse_scopes(const char *csv, unsigned *out)
{
    unsigned bits = 0;
    const char *p = csv;
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == 4 && strncmp(p, "read", 4) == 0)
            bits |= SCOPE_READ;
        else if (n == 5 && strncmp(p, "write", 5) == 0)
            bits |= SCOPE_WRITE;
        else if (n == 5 && strncmp(p, "admin", 5) == 0)
            bits |= SCOPE_ADMIN;
        else
            return -1;
        p = comma ? comma + 1 : NULL;
    }
    if (!bits)
        return -1;
    *out = bits;
    return 0;
}

static void scopes_array(unsigned bits, char *out, size_t cap)
{
    snprintf(out, cap, "{%s%s%s%s%s}", bits & SCOPE_READ ? "read" : "",
             (bits & SCOPE_READ) && (bits & (SCOPE_WRITE | SCOPE_ADMIN)) ? "," : "",
             bits & SCOPE_WRITE ? "write" : "",
             (bits & SCOPE_WRITE) && (bits & SCOPE_ADMIN) ? "," : "",
             bits & SCOPE_ADMIN ? "admin" : "");
}

/* Scope bits from PostgreSQL's text form of text[] ("{read,write}"). */
static unsigned scopes_from_pg(const char *arr)
{
    unsigned bits = 0;
    if (strstr(arr, "read"))
        bits |= SCOPE_READ;
    if (strstr(arr, "write"))
        bits |= SCOPE_WRITE;
    if (strstr(arr, "admin"))
        bits |= SCOPE_ADMIN | SCOPE_READ | SCOPE_WRITE;
    return bits;
}

/* Asks the database for the key with this hash; fills req->key_id/key_scopes and the cache.
 * Returns 0, or -1 with resp filled (401 unknown/revoked, 503/500 database). */
static int lookup_key(http_req *req, http_resp *resp, const char *hex)
{
    int64_t asked_ms = clock_now_ms();
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return -1;
    const char *vals[] = {hex};
    PGresult *r = NULL;
    int rc = dbreq_query(req, resp, c,
                         "SELECT id, scopes FROM api_keys WHERE key_hash = decode($1, 'hex') "
                         "AND revoked_at IS NULL",
                         1, vals, &r);
    dbreq_release(req, c);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    if (rc != DB_OK) {
        PQclear(r);
        return -1;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        http_problem(resp, 401, "unauthorized", NULL, "unknown or revoked API key");
        return -1;
    }
    snprintf(req->key_id, sizeof req->key_id, "%s", PQgetvalue(r, 0, 0));
    req->key_scopes = scopes_from_pg(PQgetvalue(r, 0, 1));
    PQclear(r);
    cache_put(req->app->keys, hex, req->key_id, req->key_scopes, asked_ms);
    return 0;
}

/* The Bearer key's SHA-256 (hex) into hex.  Returns 0, or -1 with a 401 (no or malformed
 * header: no key to look up). */
static int bearer_hash(http_req *req, http_resp *resp, char hex[65])
{
    const char *h = http_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0 || strlen(h + 7) == 0 || strlen(h + 7) > 256) {
        http_problem(resp, 401, "unauthorized", NULL,
                     "missing or malformed 'Authorization: Bearer <key>' header");
        return -1;
    }
    hash_key(h + 7, hex);
    return 0;
}

/* 0 when req's key (already known) grants scope, else -1 with a 403. */
static int scope_check(http_req *req, http_resp *resp, unsigned scope)
{
    if ((req->key_scopes & scope) == scope)
        return 0;
    http_problem(resp, 403, "forbidden", NULL, "this API key lacks the '%s' scope",
                 scope == SCOPE_ADMIN   ? "admin"
                 : scope == SCOPE_WRITE ? "write"
                                        : "read");
    return -1;
}

int auth_authenticate(http_req *req, http_resp *resp, unsigned scope)
{
    assert(req && resp && scope != SCOPE_NONE); /* public routes never get here */
    char hex[65];
    if (bearer_hash(req, resp, hex) != 0)
        return -1;
    if (!cache_get(req->app->keys, hex, req->key_id, &req->key_scopes) &&
        lookup_key(req, resp, hex) != 0)
        return -1;
    return scope_check(req, resp, scope);
}

int auth_authenticate_cached(http_req *req, http_resp *resp, unsigned scope)
{
    assert(req && resp && scope != SCOPE_NONE);
    char hex[65];
    if (bearer_hash(req, resp, hex) != 0)
        return -1;
    if (!cache_get(req->app->keys, hex, req->key_id, &req->key_scopes))
        return 1;
    return scope_check(req, resp, scope);
}

/* Runs one statement on a fresh pooled connection for the CLI paths.  *res as db_query. */
static int cli_query(db_pool *pool, const char *sql, int n, const char *const *vals, PGresult **res,
                     char *err, size_t errlen)
{
    db_conn *c = NULL;
    int64_t dl = clock_now_ms() + AUTH_CLI_TIMEOUT_MS;
    *res = NULL;
    if (db_acquire(pool, dl, AUTH_CLI_TIMEOUT_MS, &c) != DB_OK) {
        snprintf(err, errlen, "cannot connect to the database (check DATABASE_URL)");
        return -1;
    }
    int rc = db_query(c, sql, n, vals, NULL, NULL, 0, dl, res, err, errlen);
    db_release(pool, c);
    return rc == DB_OK ? 0 : -1;
}

static int new_key(char *key_out, char *err, size_t errlen)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t rnd[33];
    if (getrandom(rnd, 32, 0) != 32) {
        snprintf(err, errlen, "getrandom failed");
        return -1;
    }
    rnd[32] = 0;
    memcpy(key_out, "vgl_", 4);
    char *o = key_out + 4;
    /* 32 bytes -> 43 base64url characters (the last group carries 2 bytes). */
    for (int i = 0; i < 33; i += 3) {
        uint32_t v = (uint32_t)rnd[i] << 16 | (uint32_t)(i + 1 < 33 ? rnd[i + 1] : 0) << 8 |
                     (i + 2 < 33 ? rnd[i + 2] : 0);
        *o++ = b64[v >> 18 & 63];
        *o++ = b64[v >> 12 & 63];
        if (i + 1 < 32)
            *o++ = b64[v >> 6 & 63];
        if (i + 2 < 32)
            *o++ = b64[v & 63];
    }
    *o = '\0';
    return 0;
}

static int insert_key(db_pool *pool, const char *name, unsigned scopes, const char *key,
                      char *id_out, int ignore_conflict, char *err, size_t errlen)
{
    char hex[65], arr[32], prefix[13];
    hash_key(key, hex);
    scopes_array(scopes, arr, sizeof arr);
    snprintf(prefix, sizeof prefix, "%.12s", key);
    const char *vals[] = {name, prefix, hex, arr};
    PGresult *r = NULL;
    int rc = cli_query(
        pool,
        ignore_conflict ? "INSERT INTO api_keys (name, prefix, key_hash, scopes) VALUES ($1, $2, "
                          "decode($3, 'hex'), $4) ON CONFLICT (key_hash) DO NOTHING RETURNING id"
                        : "INSERT INTO api_keys (name, prefix, key_hash, scopes) VALUES ($1, $2, "
                          "decode($3, 'hex'), $4) RETURNING id",
        4, vals, &r, err, errlen);
    if (rc == 0 && id_out) {
        if (PQntuples(r) == 1)
            snprintf(id_out, 37, "%s", PQgetvalue(r, 0, 0));
        else
            id_out[0] = '\0';
    }
    PQclear(r);
    return rc;
}

int auth_key_create(db_pool *pool, const char *name, unsigned scopes, char *key_out, char *id_out,
                    char *err, size_t errlen)
{
    if (!name || !*name || strlen(name) > 128) {
        snprintf(err, errlen, "--name must be 1..128 characters");
        return -1;
    }
    if (new_key(key_out, err, errlen) != 0)
        return -1;
    return insert_key(pool, name, scopes, key_out, id_out, 0, err, errlen);
}

int auth_ensure_bootstrap(db_pool *pool, const char *key, char *err, size_t errlen)
{
    char id[40];
    if (insert_key(pool, "bootstrap", SCOPE_ADMIN | SCOPE_READ | SCOPE_WRITE, key, id, 1, err,
                   errlen) != 0)
        return -1;
    if (id[0])
        return 0; /* newly created */
    char hex[65];
    hash_key(key, hex);
    const char *vals[] = {hex};
    PGresult *r = NULL;
    if (cli_query(pool,
                  "SELECT revoked_at IS NOT NULL FROM api_keys WHERE key_hash = "
                  "decode($1, 'hex')",
                  1, vals, &r, err, errlen) != 0)
        return -1;
    int revoked = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (revoked) {
        snprintf(err, errlen, "VIGIL_BOOTSTRAP_KEY is revoked; it stays revoked");
        return 1;
    }
    return 0;
}

int auth_key_list(db_pool *pool, FILE *out, char *err, size_t errlen)
{
    PGresult *r = NULL;
    if (cli_query(pool,
                  "SELECT id, name, prefix || '...', array_to_string(scopes, ','), "
                  "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                  "CASE WHEN revoked_at IS NULL THEN 'active' ELSE 'revoked' END "
                  "FROM api_keys ORDER BY created_at",
                  0, NULL, &r, err, errlen) != 0)
        return -1;
    fprintf(out, "%-36s  %-20s  %-16s  %-16s  %-20s  %s\n", "ID", "NAME", "PREFIX", "SCOPES",
            "CREATED", "STATE");
    for (int i = 0; i < PQntuples(r); i++)
        fprintf(out, "%-36s  %-20s  %-16s  %-16s  %-20s  %s\n", PQgetvalue(r, i, 0),
                PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
                PQgetvalue(r, i, 5));
    PQclear(r);
    return 0;
}

int auth_key_revoke(db_pool *pool, const char *id, char *err, size_t errlen)
{
    const char *vals[] = {id};
    PGresult *r = NULL;
    if (cli_query(pool,
                  "UPDATE api_keys SET revoked_at = clock_timestamp() WHERE id::text = $1 AND "
                  "revoked_at IS NULL",
                  1, vals, &r, err, errlen) != 0)
        return -1;
    int n = atoi(PQcmdTuples(r));
    PQclear(r);
    return n == 1 ? 0 : 1;
}
