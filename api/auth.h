/* auth.h - API keys: creation (shown once), storage as SHA-256 hashes, lookup per request, scopes.
 *
 * Keys look like "vgl_" + 43 base64url characters (32 random bytes from getrandom).  Only the
 * SHA-256 of the whole key is stored, which is enough for a 256-bit random secret.  Scopes: read,
 * write, admin; admin implies read and write.  Costs: one indexed SELECT per authenticated
 * request, or none while the key's answer is in the cache (below).  Keys never appear in logs or
 * error messages.
 *
 * The cache (app->keys) keeps the lookup's answer for a valid key (its id and scopes, keyed by the
 * key's SHA-256) for at most ttl_ms, so a revocation or a scope change (CLI, another process)
 * takes effect within ttl_ms (default 1000).  Unknown and revoked keys are never cached: every
 * such request asks the database. */
#ifndef VIGIL_AUTH_H
#define VIGIL_AUTH_H

#include <stddef.h>
#include <stdio.h>

#include "db.h"
#include "http.h"

#define AUTH_KEY_LEN 47 /* "vgl_" + 43 */

/* Checks the Bearer key of req and that it grants scope.  Returns 0 (req->key_id, key_scopes set)
 * or -1 with resp filled: 401 missing/unknown/revoked key, 403 missing scope, 503 database. */
int auth_authenticate(http_req *req, http_resp *resp, unsigned scope);

typedef struct auth_cache auth_cache;

/* A cache of AUTH_CACHE_SLOTS keys whose entries live ttl_ms (> 0).  NULL on out of memory. */
auth_cache *auth_cache_create(int ttl_ms);
void auth_cache_destroy(auth_cache *c);

/* auth_authenticate without the database: the same answer when the header is malformed (401) or
 * the key is in the cache (0, or 403 for a missing scope); 1 when only the database can say.
 * Never blocks: the HTTP layer calls it on its event thread and hands the request to a handler
 * thread for auth_authenticate only when it answers 1. */
int auth_authenticate_cached(http_req *req, http_resp *resp, unsigned scope);

/* "read,write" -> SCOPE_* bits.  Returns 0 or -1 on an unknown or empty scope list. */
int auth_parse_scopes(const char *csv, unsigned *out);

/* Creates a key.  key_out gets the secret (AUTH_KEY_LEN + 1 bytes), id_out its UUID (37 bytes).
 * Returns 0 or -1 with err. */
int auth_key_create(db_pool *pool, const char *name, unsigned scopes, char *key_out, char *id_out,
                    char *err, size_t errlen);

/* Makes sure key exists as an admin key named "bootstrap" (no-op if present, even if revoked: a
 * revoked bootstrap key stays revoked and a warning is returned in err with rc 1).  Returns 0, 1,
 * or -1 with err. */
int auth_ensure_bootstrap(db_pool *pool, const char *key, char *err, size_t errlen);

/* Prints the keys (never secrets) as a table to out.  Returns 0 or -1 with err. */
int auth_key_list(db_pool *pool, FILE *out, char *err, size_t errlen);

/* Revokes the key with this UUID.  Returns 0, 1 when no such active key, -1 with err. */
int auth_key_revoke(db_pool *pool, const char *id, char *err, size_t errlen);

#endif
