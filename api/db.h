/* db.h - a bounded pool of PostgreSQL connections with deadlines on everything.
 *
 * Owns: the connections (libpq), their (re)establishment, and deadline-bounded parameterised
 * queries.  A request that cannot get a connection before min(pool wait, its deadline) gets
 * DB_BUSY; a server that cannot be reached gives DB_DOWN; neither ever blocks past the deadline.
 * Lost connections (server restarted) are detected when a connection is taken from the pool and
 * re-established then, so the API recovers without a restart.
 * Thread-safe: any thread may acquire; a db_conn is used by one thread until released. */
#ifndef VIGIL_DB_H
#define VIGIL_DB_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

enum db_status {
    DB_OK = 0,
    DB_BUSY = 1,    /* pool exhausted for the whole wait */
    DB_DOWN = 2,    /* cannot connect, or the connection broke mid-query */
    DB_TIMEOUT = 3, /* deadline passed (query cancelled, connection discarded) */
    DB_ERROR = 4,   /* the server answered with an SQL error: see db_sqlstate(res) */
};

typedef struct db_pool db_pool;
typedef struct db_conn db_conn;

/* Creates a pool of at most size connections to url (opened lazily).  Returns NULL with err. */
db_pool *db_pool_create(const char *url, int size, int connect_timeout_ms, char *err,
                        size_t errlen);
/* Closes every connection and frees the pool.  No connection may be in use. */
void db_pool_destroy(db_pool *p);

/* Takes a connection, waiting at most wait_ms and never past deadline_ms (absolute, wire_now_ms
 * clock); a connect it needs (host name lookup included) is bounded the same way.  Returns DB_OK
 * and *out, DB_BUSY, DB_DOWN or DB_TIMEOUT. */
int db_acquire(db_pool *p, int64_t deadline_ms, int wait_ms, db_conn **out);
/* Returns c to the pool.  An open transaction is rolled back (waiting at most 1 s and never past
 * the deadline c was acquired with; otherwise the connection is dropped, which rolls back on the
 * server); a broken connection is closed. */
void db_release(db_pool *p, db_conn *c);

/* Runs one parameterised statement (text parameters; lengths/formats may be NULL for all-text;
 * result in text format unless binary_result).  Never waits past deadline_ms: an overrun drops
 * the connection at once and the cancel is sent from a background thread (DB_TIMEOUT).  On DB_OK or
 * DB_ERROR *res is set and the caller PQclear()s it; otherwise *res is NULL.  err gets a one-line
 * message for non-OK results (never the parameter values). */
int db_query(db_conn *c, const char *sql, int nparams, const char *const *values,
             const int *lengths, const int *formats, int binary_result, int64_t deadline_ms,
             PGresult **res, char *err, size_t errlen);

/* nparams < 0 runs sql through the simple query protocol (several statements, no parameters):
 * only for trusted SQL such as migrations, never for anything built from input. */

/* Same, for statements whose rows are not needed (BEGIN, COMMIT, INSERT without RETURNING). */
int db_exec(db_conn *c, const char *sql, int nparams, const char *const *values,
            int64_t deadline_ms, char *err, size_t errlen);

/* One statement of a pipeline: text parameters unless lengths/formats say otherwise (as db_query).
 */
typedef struct db_stmt {
    const char *sql;
    int nparams; /* >= 0: pipelines use the extended protocol only */
    const char *const *values;
    const int *lengths;
    const int *formats;
    int binary_result;
    int prepare; /* 1: prepared once per connection and reused (see below); 0: parsed and
                  * planned for these very parameters, every time */
} db_stmt;

#define DB_PIPELINE_MAX 72

/* Runs n (1..DB_PIPELINE_MAX) statements in one round trip (libpq pipeline mode, one Sync),
 * in order, never past deadline_ms.  Statements run as they would one by one on this connection:
 * inside the caller's transaction if one is open (or several, when the list holds BEGIN/COMMIT);
 * without one, the whole list is one implicit transaction.  The first statement that fails stops
 * the rest (not run).  Returns DB_OK with every res[i] set; DB_ERROR with res[*failed] the error
 * and res[i] set for the statements before it (NULL after); or DB_DOWN/DB_TIMEOUT with every
 * res[i] NULL.  The caller PQclear()s every non-NULL res[i].
 *
 * A statement with prepare set is prepared on its connection the first time its text is seen
 * there (at most 128 texts a connection; further ones run unprepared), so the server parses it
 * once per connection and, after five runs, may keep one generic plan for every parameter value.
 * Only for statements whose best plan does not depend on the values: never for keyset pages of
 * the "$n IS NULL OR (a, b) > ($n, $m)" kind, whose generic plan cannot use the index bound.
 * db_query never prepares. */
int db_pipeline(db_conn *c, const db_stmt *stmts, int n, int64_t deadline_ms, PGresult **res,
                int *failed, char *err, size_t errlen);

/* As db_pipeline, with a Sync after each group of statements: group g is stmts[ends[g-1]..ends[g])
 * (ends[-1] = 0; ends strictly increasing, ends[ngroups-1] = n <= DB_PIPELINE_MAX), all in one
 * round trip.  Outside a transaction each group is its own implicit transaction, and a failing
 * statement stops only the rest of its group: every group gets what it would alone.  Returns
 * DB_OK when every statement ran; DB_ERROR when some failed, *failed the first of them (err its
 * message), and each failing group's res[] as db_pipeline's (set before the error, the error,
 * NULL after); DB_DOWN/DB_TIMEOUT with every res[i] NULL.  The caller PQclear()s every non-NULL
 * res[i]. */
int db_pipeline_groups(db_conn *c, const db_stmt *stmts, const int *ends, int ngroups,
                       int64_t deadline_ms, PGresult **res, int *failed, char *err, size_t errlen);

/* SQLSTATE of an error result ("23505" unique violation...), "" when none. */
const char *db_sqlstate(const PGresult *res);

/* What a span's error.type says of a statement that ended with rc (res: its result, for DB_ERROR's
 * SQLSTATE): NULL for DB_OK, the SQLSTATE, "timeout", "pool_exhausted" (DB_BUSY) or
 * "connection_lost" (DB_DOWN). */
const char *db_error_type(int rc, const PGresult *res);

/* Number of connections currently handed out / currently open (for /metrics). */
void db_pool_counts(db_pool *p, int *in_use, int *open, unsigned long long *waits);

/* One round trip (SELECT 1) within deadline: DB_OK when the server answers. */
int db_ping(db_pool *p, int64_t deadline_ms);

#endif
