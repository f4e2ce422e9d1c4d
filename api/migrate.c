/* migrate.c - ordered, locked, checksummed migrations.  See migrate.h. */
#include "migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "clock.h"

/* Arbitrary constant naming vigil's migration lock in pg_advisory_lock's key space. */
#define MIGRATE_LOCK_KEY "7238041972"
#define MIGRATE_TIMEOUT_MS 120000

/* The numeric prefix of a migration name ("0012_x" -> 12), or -1. */
static long version_of(const char *name)
{
    char *end = NULL;
    long v = strtol(name, &end, 10);
    return end && *end == '_' && v > 0 ? v : -1;
}

static int apply_one(db_conn *c, const migrate_file *m, const char *sum, int64_t dl, char *err,
                     size_t errlen)
{
    char e[400], ver[24];
    snprintf(ver, sizeof ver, "%ld", version_of(m->name));
    const char *params[] = {ver, m->name, sum};
    if (db_exec(c, "BEGIN", 0, NULL, dl, e, sizeof e) != DB_OK)
        goto fail;
    if (db_exec(c, m->sql, -1, NULL, dl, e, sizeof e) != DB_OK)
        goto fail_rb;
    if (db_exec(c, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", 3,
                params, dl, e, sizeof e) != DB_OK)
        goto fail_rb;
    if (db_exec(c, "COMMIT", 0, NULL, dl, e, sizeof e) != DB_OK)
        goto fail;
    return 0;
fail_rb:
    db_exec(c, "ROLLBACK", 0, NULL, dl, e + 200, 200);
fail:
    snprintf(err, errlen, "migration %s failed: %s", m->name, e);
    return -1;
}

int migrate_run(db_pool *pool, int *applied, char *err, size_t errlen)
{
    int64_t dl = clock_now_ms() + MIGRATE_TIMEOUT_MS;
    db_conn *c = NULL;
    PGresult *r = NULL;
    int locked = 0, rc = -1;
    char e[400];
    *applied = 0;
    if (db_acquire(pool, dl, 10000, &c) != DB_OK) {
        snprintf(err, errlen, "migrate: cannot connect to the database (check DATABASE_URL)");
        return -1;
    }
    if (db_exec(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", 0, NULL, dl, e, sizeof e) !=
        DB_OK)
        goto fail;
    locked = 1;
    if (db_exec(c,
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, checksum text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())",
                0, NULL, dl, e, sizeof e) != DB_OK)
        goto fail;
    if (db_query(c, "SELECT version, name, checksum FROM schema_migrations ORDER BY version", 0,
                 NULL, NULL, NULL, 0, dl, &r, e, sizeof e) != DB_OK)
        goto fail;
    for (int i = 0; i < migrate_nfiles; i++) {
        const migrate_file *m = &migrate_files[i];
        long v = version_of(m->name);
        if (v < 0) {
            snprintf(e, sizeof e, "bad migration file name %s (want NNNN_name.sql)", m->name);
            goto fail;
        }
        uint8_t d[32];
        char sum[65];
        sha256(m->sql, m->len, d);
        sha256_hex(d, sum);
        int found = 0;
        for (int row = 0; row < PQntuples(r); row++) {
            if (atol(PQgetvalue(r, row, 0)) != v)
                continue;
            found = 1;
            if (strcmp(PQgetvalue(r, row, 2), sum) != 0) {
                snprintf(e, sizeof e,
                         "applied migration %s has changed since it ran (checksum %.12s, file "
                         "%.12s); restore the file and add a new migration instead",
                         m->name, PQgetvalue(r, row, 2), sum);
                goto fail;
            }
        }
        if (found)
            continue;
        if (apply_one(c, m, sum, dl, e, sizeof e) != 0)
            goto fail;
        (*applied)++;
    }
    rc = 0;
fail:
    if (rc != 0)
        snprintf(err, errlen, "migrate: %s", e);
    PQclear(r);
    if (locked)
        db_exec(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", 0, NULL, dl, e, sizeof e);
    db_release(pool, c);
    return rc;
}
