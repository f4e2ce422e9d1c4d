/* migrate.h - schema migrations embedded from migrations/NNNN_name.sql at build time.
 *
 * Owns: applying pending migrations in order, each in its own transaction, recorded in
 * schema_migrations(version, name, checksum, applied_at), under a PostgreSQL advisory lock so
 * replicas starting together do not race; refusing to start when an applied migration's file has
 * changed (checksum mismatch).  Costs: one lock + one SELECT when nothing is pending. */
#ifndef VIGIL_MIGRATE_H
#define VIGIL_MIGRATE_H

#include <stddef.h>

#include "db.h"

typedef struct migrate_file {
    const char *name; /* "0001_init" */
    const char *sql;
    size_t len;
} migrate_file;

extern const migrate_file migrate_files[]; /* generated, sorted by name */
extern const int migrate_nfiles;

/* Applies pending migrations.  *applied gets how many ran.  Returns 0, or -1 with a one-line
 * message in err (database unreachable, a migration failed, a checksum mismatch). */
int migrate_run(db_pool *pool, int *applied, char *err, size_t errlen);

#endif
