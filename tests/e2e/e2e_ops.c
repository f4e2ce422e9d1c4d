/* e2e_ops.c - end-to-end tests of vigil-api as an operated process: liveness and readiness, the
 * hotpath worker and PostgreSQL going away and coming back without an API restart (answers are
 * 503 + Retry-After, and arrive while the dependency is still down: never a hang), start-up
 * refusing bad configuration, migrations recorded with checksums (compared with sha256sum's own
 * digest of each migrations/NNNN_name.sql), a changed checksum stopping start-up, two APIs
 * migrating one fresh database concurrently, and graceful drain on SIGTERM with requests in flight
 * (held in flight by a table lock taken with psql).
 *
 * Two TCases, one environment each (unchecked fixtures, CK_NOFORK). */
#include <arpa/inet.h>
#include <check.h>
#include <glob.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "assert.h"
#include "harness.h"
#include "wire.h"

static h_env E;

static void env_up(void)
{
    e2e_env_up(&E, NULL);
}

static void env_down(void)
{
    e2e_env_down(&E);
}

static const char *jstr(const h_resp *r, const char *name)
{
    const char *s = h_str(r, name);
    return s ? s : "(absent)";
}

/* GET /ready; checks the three members. */
static void assert_ready(long status, const char *st, const char *db, const char *hp)
{
    h_resp r;
    char ra[16];
    ck_assert_int_eq(h_http(&E, "GET", "/ready", NULL, NULL, NULL, 0, NULL, &r), 0);
    ck_assert_msg(r.status == status, "/ready %ld (want %ld): %s", r.status, status, r.body);
    ck_assert_str_eq(jstr(&r, "status"), st);
    ck_assert_str_eq(jstr(&r, "database"), db);
    ck_assert_str_eq(jstr(&r, "hotpath"), hp);
    if (status == 503)
        ck_assert_msg(h_header(&r, "Retry-After", ra, sizeof ra) != NULL,
                      "503 without Retry-After");
    h_resp_free(&r);
}

/* ---- dependencies ------------------------------------------------------------------------------
 */

START_TEST(health_and_ready)
{
    h_resp r;
    char ct[64];
    ck_assert_int_eq(h_http(&E, "GET", "/health", NULL, NULL, NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(jstr(&r, "status"), "ok");
    ck_assert_ptr_nonnull(h_header(&r, "Content-Type", ct, sizeof ct));
    ck_assert_str_eq(ct, "application/json");
    h_resp_free(&r);
    assert_ready(200, "ready", "up", "up");
}
END_TEST

START_TEST(hotpath_down_and_back)
{
    pid_t api = E.api_pid;
    ck_assert_int_eq(h_hp_stop(&E, SIGKILL), 128 + SIGKILL);
    assert_ready(503, "not_ready", "up", "down");
    assert_ready(503, "not_ready", "up", "down"); /* stays down, answers every time */
    /* Routes that do not need the worker keep working. */
    h_resp r;
    e2e_req(&E, "GET", "/api/v1/users", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    ck_assert_int_eq(h_hp_start(&E), 0);
    assert_ready(200, "ready", "up", "up");
    ck_assert_int_eq(E.api_pid, api);
    ck_assert_int_eq(kill(api, 0), 0); /* the same API process throughout */
}
END_TEST

START_TEST(postgres_down_and_back)
{
    pid_t api = E.api_pid;
    h_resp r;
    char ra[16];
    /* Warm the pool so a now-dead pooled connection must be noticed. */
    for (int i = 0; i < 3; i++) {
        e2e_req(&E, "GET", "/api/v1/users", NULL, &r);
        ck_assert_int_eq(r.status, 200);
        h_resp_free(&r);
    }
    h_pg_stop(&E);

    /* Never a hang: each answer below arrives while PostgreSQL is still stopped (nothing else
     * could complete these requests), so the API gave up on the database by itself. */
    for (int i = 0; i < 3; i++) {
        e2e_req(&E, "GET", "/api/v1/users", NULL, &r);
        e2e_assert_problem(&r, 503, "unavailable", NULL);
        ck_assert_msg(h_header(&r, "Retry-After", ra, sizeof ra) != NULL, "no Retry-After");
        ck_assert_int_ge(atoi(ra), 1);
        h_resp_free(&r);
    }
    e2e_req(&E, "POST", "/api/v1/users", "{\"external_id\":\"pgdown\"}", &r);
    e2e_assert_problem(&r, 503, "unavailable", NULL);
    h_resp_free(&r);
    assert_ready(503, "not_ready", "down", "up");
    /* Liveness does not depend on the database. */
    ck_assert_int_eq(h_http(&E, "GET", "/health", NULL, NULL, NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);

    ck_assert_int_eq(h_pg_start(&E), 0);
    /* The first request after the restart already works. */
    e2e_req(&E, "GET", "/api/v1/users", NULL, &r);
    ck_assert_msg(r.status == 200, "after PostgreSQL restart: %ld %s", r.status, r.body);
    h_resp_free(&r);
    e2e_req(&E, "POST", "/api/v1/users", "{\"external_id\":\"pgback\"}", &r);
    ck_assert_int_eq(r.status, 201);
    h_resp_free(&r);
    assert_ready(200, "ready", "up", "up");
    ck_assert_int_eq(E.api_pid, api);
    ck_assert_int_eq(kill(api, 0), 0);
}
END_TEST

typedef struct acquire_arg {
    db_pool *pool;
    int rc;
    db_conn *conn;
} acquire_arg;

static void *acquire_late(void *p)
{
    acquire_arg *a = p;
    /* 999 ms past: left % 1000 makes tv_nsec negative unless the clock is in its last ms. */
    a->rc = db_acquire(a->pool, wire_now_ms() - 999, 1000, &a->conn);
    return NULL;
}

/* An exhausted pool and a deadline already passed: DB_TIMEOUT at once.  It used to build a
 * timespec with a negative tv_nsec, which pthread_cond_timedwait rejects with EINVAL (never
 * ETIMEDOUT) without ever releasing the mutex: the thread spun holding the pool's lock, and every
 * other acquire and release in the process blocked behind it, for good. */
START_TEST(pool_acquire_after_deadline)
{
    char err[256];
    db_pool *pool = db_pool_create(E.db_url, 1, 2000, err, sizeof err);
    ck_assert_msg(pool != NULL, "%s", err);
    db_conn *held = NULL;
    ck_assert_int_eq(db_acquire(pool, wire_now_ms() + 5000, 1000, &held), DB_OK);
    for (int i = 0; i < 3; i++) {
        acquire_arg a = {pool, -1, NULL};
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, acquire_late, &a), 0);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 2;
        /* On failure the thread is left behind: it spins holding the pool's mutex, so nothing
         * (not even db_release) could unblock it. */
        ck_assert_msg(pthread_timedjoin_np(t, NULL, &until) == 0,
                      "db_acquire past its deadline did not return within 2 s");
        ck_assert_int_eq(a.rc, DB_TIMEOUT);
        ck_assert_ptr_null(a.conn);
    }
    db_release(pool, held);
    db_pool_destroy(pool);
}
END_TEST

/* Runs sql on c alone (a one-statement pipeline); returns its status, *out the result. */
static int one(db_conn *c, const char *sql, int n, const char *const *v, PGresult **out)
{
    char err[256];
    return db_query(c, sql, n, v, NULL, NULL, 0, wire_now_ms() + 5000, out, err, sizeof err);
}

/* Runs sql on c as a prepared statement (a one-statement pipeline with prepare set). */
static int prep1(db_conn *c, const char *sql, int n, const char *const *v, PGresult **out)
{
    char err[256];
    int failed;
    db_stmt s = {sql, n, v, NULL, NULL, 0, 1};
    return db_pipeline(c, &s, 1, wire_now_ms() + 5000, out, &failed, err, sizeof err);
}

/* How many statements with exactly this text are prepared on c's server session. */
static int prepared_count(db_conn *c, const char *text)
{
    PGresult *r = NULL;
    const char *v[] = {text};
    ck_assert_int_eq(
        one(c, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", 1, v, &r),
        DB_OK);
    int n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* db_pipeline: statements run in order in one round trip, the first error stops the rest and is
 * reported at its index; a statement with prepare set is prepared once per connection and
 * reused (db_query's never are); a Parse error is the statement's error and leaves nothing cached;
 * a prepared statement whose table changed shape (0A000) is prepared afresh on its next use. */
START_TEST(pipeline_and_prepared_statements)
{
    char err[256];
    db_pool *pool = db_pool_create(E.db_url, 1, 2000, err, sizeof err);
    ck_assert_msg(pool != NULL, "%s", err);
    db_conn *c = NULL;
    ck_assert_int_eq(db_acquire(pool, wire_now_ms() + 10000, 1000, &c), DB_OK);
    PGresult *r = NULL;
    ck_assert_int_eq(one(c, "CREATE TABLE pipe_t (a int)", 0, NULL, &r), DB_OK);
    PQclear(r);

    /* In an explicit transaction: the error at index 3 stops index 4 and 5 (no COMMIT: the
     * INSERT is rolled back when the connection is released). */
    const char *v1[] = {"41"};
    db_stmt s[] = {
        {"BEGIN", 0, NULL, NULL, NULL, 0, 1},
        {"INSERT INTO pipe_t VALUES (1)", 0, NULL, NULL, NULL, 0, 1},
        {"SELECT $1::int + 1", 1, v1, NULL, NULL, 0, 1},
        {"SELECT 1 / (SELECT count(*) - 1 FROM pipe_t)", 0, NULL, NULL, NULL, 0, 1},
        {"INSERT INTO pipe_t VALUES (2)", 0, NULL, NULL, NULL, 0, 1},
        {"COMMIT", 0, NULL, NULL, NULL, 0, 1},
    };
    PGresult *res[6];
    int failed = -1;
    ck_assert_int_eq(db_pipeline(c, s, 6, wire_now_ms() + 5000, res, &failed, err, sizeof err),
                     DB_ERROR);
    ck_assert_int_eq(failed, 3);
    ck_assert_int_eq(PQresultStatus(res[1]), PGRES_COMMAND_OK);
    ck_assert_str_eq(PQgetvalue(res[2], 0, 0), "42");
    ck_assert_str_eq(db_sqlstate(res[3]), "22012"); /* division by zero */
    ck_assert_ptr_null(res[4]);
    ck_assert_ptr_null(res[5]);
    for (int i = 0; i < 6; i++)
        PQclear(res[i]);
    db_release(pool, c);
    ck_assert_int_eq(db_acquire(pool, wire_now_ms() + 10000, 1000, &c), DB_OK);
    ck_assert_int_eq(one(c, "SELECT count(*) FROM pipe_t", 0, NULL, &r), DB_OK);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "0");
    PQclear(r);

    /* Without BEGIN the list is one implicit transaction: the error undoes the INSERT too. */
    db_stmt implicit[] = {
        {"INSERT INTO pipe_t VALUES (1)", 0, NULL, NULL, NULL, 0, 1},
        {"SELECT 1 / 0", 0, NULL, NULL, NULL, 0, 1},
    };
    ck_assert_int_eq(
        db_pipeline(c, implicit, 2, wire_now_ms() + 5000, res, &failed, err, sizeof err), DB_ERROR);
    ck_assert_int_eq(failed, 1);
    PQclear(res[0]);
    PQclear(res[1]);
    ck_assert_int_eq(one(c, "SELECT count(*) FROM pipe_t", 0, NULL, &r), DB_OK);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "0");
    PQclear(r);

    /* With a Sync after each group (db_pipeline_groups), an error stops only the rest of its own
     * group.  The statement new on this connection gets its Parse in group 0, after the failing
     * statement: that Parse does not run, and group 1's use of the same text must not depend on
     * it (it would fail "prepared statement does not exist"). */
    db_stmt grouped[] = {
        {"SELECT 1 / 0", 0, NULL, NULL, NULL, 0, 1},
        {"SELECT $1::int * 3 /* groups */", 1, v1, NULL, NULL, 0, 1},
        {"SELECT $1::int * 3 /* groups */", 1, v1, NULL, NULL, 0, 1},
        {"SELECT 7", 0, NULL, NULL, NULL, 0, 1},
    };
    int ends[] = {2, 3, 4};
    PGresult *gres[4];
    ck_assert_int_eq(db_pipeline_groups(c, grouped, ends, 3, wire_now_ms() + 5000, gres, &failed,
                                        err, sizeof err),
                     DB_ERROR);
    ck_assert_int_eq(failed, 0);
    ck_assert_str_eq(db_sqlstate(gres[0]), "22012");
    ck_assert_ptr_null(gres[1]);
    ck_assert_msg(PQresultStatus(gres[2]) == PGRES_TUPLES_OK, "group 1: %s",
                  PQresultErrorMessage(gres[2]));
    ck_assert_str_eq(PQgetvalue(gres[2], 0, 0), "123");
    ck_assert_str_eq(PQgetvalue(gres[3], 0, 0), "7");
    for (int i = 0; i < 4; i++)
        PQclear(gres[i]);
    /* ... and the text is prepared properly the next time */
    ck_assert_int_eq(db_pipeline_groups(c, grouped + 1, (int[]){1, 2}, 2, wire_now_ms() + 5000,
                                        gres, &failed, err, sizeof err),
                     DB_OK);
    ck_assert_str_eq(PQgetvalue(gres[0], 0, 0), "123");
    ck_assert_str_eq(PQgetvalue(gres[1], 0, 0), "123");
    PQclear(gres[0]);
    PQclear(gres[1]);

    /* Prepared once on this connection, however often it runs; db_query never prepares. */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(prep1(c, "SELECT $1::int + 1", 1, v1, &r), DB_OK);
        ck_assert_str_eq(PQgetvalue(r, 0, 0), "42");
        PQclear(r);
        ck_assert_int_eq(one(c, "SELECT $1::int + 2", 1, v1, &r), DB_OK);
        PQclear(r);
    }
    ck_assert_int_eq(prepared_count(c, "SELECT $1::int + 1"), 1);
    ck_assert_int_eq(prepared_count(c, "SELECT $1::int + 2"), 0);

    /* A statement that does not parse: its error, nothing cached, the connection still good. */
    ck_assert_int_eq(prep1(c, "SELEC 1", 0, NULL, &r), DB_ERROR);
    ck_assert_str_eq(db_sqlstate(r), "42601");
    PQclear(r);
    ck_assert_int_eq(prepared_count(c, "SELEC 1"), 0);
    ck_assert_int_eq(prep1(c, "SELECT 1", 0, NULL, &r), DB_OK);
    PQclear(r);

    /* The table changes shape under a prepared SELECT *: that run fails (0A000), the next one
     * prepares it again and sees the new column. */
    ck_assert_int_eq(prep1(c, "SELECT * FROM pipe_t", 0, NULL, &r), DB_OK);
    ck_assert_int_eq(PQnfields(r), 1);
    PQclear(r);
    ck_assert_int_eq(one(c, "ALTER TABLE pipe_t ADD COLUMN b int", 0, NULL, &r), DB_OK);
    PQclear(r);
    ck_assert_int_eq(prep1(c, "SELECT * FROM pipe_t", 0, NULL, &r), DB_ERROR);
    ck_assert_str_eq(db_sqlstate(r), "0A000");
    PQclear(r);
    ck_assert_int_eq(prep1(c, "SELECT * FROM pipe_t", 0, NULL, &r), DB_OK);
    ck_assert_int_eq(PQnfields(r), 2);
    PQclear(r);
    ck_assert_int_eq(one(c, "DROP TABLE pipe_t", 0, NULL, &r), DB_OK);
    PQclear(r);
    db_release(pool, c);
    db_pool_destroy(pool);
}
END_TEST

/* ---- start-up ----------------------------------------------------------------------------------
 */

/* Starts `vigil-api serve` with env (plus a free port and the worker socket), waits up to
 * timeout_ms for it to exit; returns the status, with its output in a malloc'd *log. */
static int serve_once(const char *const *env, const char *logname, int timeout_ms, char **log)
{
    char exe[400], addr[64], sock[400];
    snprintf(exe, sizeof exe, "%s/vigil-api", E.bin);
    snprintf(addr, sizeof addr, "VIGIL_HTTP_ADDR=127.0.0.1:%d", h_free_port());
    snprintf(sock, sizeof sock, "VIGIL_HOTPATH_SOCKET=%s", E.hp_sock);
    const char *full[16];
    int n = 0;
    full[n++] = addr;
    full[n++] = sock;
    for (const char *const *p = env; *p && n < 15; p++)
        full[n++] = *p; /* later entries win: the test's values override the defaults above */
    full[n] = NULL;
    const char *argv[] = {exe, "serve", NULL};
    pid_t pid = h_spawn(&E, argv, full, logname);
    ck_assert_int_gt(pid, 0);
    int rc = h_wait(pid, timeout_ms);
    *log = h_read_file(&E, logname);
    ck_assert_ptr_nonnull(*log);
    return rc;
}

/* The plain-text line "vigil-api: ..." of a failed start. */
static void assert_startup_message(const char *log, const char *var)
{
    const char *p = strstr(log, "vigil-api: ");
    ck_assert_msg(p != NULL, "no 'vigil-api: ' message in:\n%s", log);
    ck_assert_msg(strstr(p + 1, "vigil-api: ") == NULL, "more than one message:\n%s", log);
    size_t n = strcspn(p, "\n");
    char line[600];
    snprintf(line, sizeof line, "%.*s", (int)n, p);
    ck_assert_msg(strncmp(line + 11, var, strlen(var)) == 0, "message does not name %s: %s", var,
                  line);
}

START_TEST(startup_rejects_bad_env)
{
    static const struct {
        const char *var, *assign;
    } t[] = {
        {"VIGIL_DB_POOL_SIZE", "VIGIL_DB_POOL_SIZE=0"},
        {"VIGIL_DB_POOL_SIZE", "VIGIL_DB_POOL_SIZE=257"},
        {"VIGIL_DB_POOL_SIZE", "VIGIL_DB_POOL_SIZE=eight"},
        {"VIGIL_HTTP_ADDR", "VIGIL_HTTP_ADDR=example.com:80"},
        {"VIGIL_HTTP_ADDR", "VIGIL_HTTP_ADDR=127.0.0.1:0"},
        {"VIGIL_MAX_BODY_BYTES", "VIGIL_MAX_BODY_BYTES=63"},
        {"VIGIL_HOTPATH_MODE", "VIGIL_HOTPATH_MODE=threads"},
        {"VIGIL_BOOTSTRAP_KEY", "VIGIL_BOOTSTRAP_KEY=short"},
        {"DATABASE_URL", "DATABASE_URL="},
    };
    char dburl[600];
    snprintf(dburl, sizeof dburl, "DATABASE_URL=%s", E.db_url);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char logname[32];
        char *log = NULL;
        snprintf(logname, sizeof logname, "bad-env-%zu.log", i);
        const char *env[] = {dburl, t[i].assign, NULL};
        int rc = serve_once(env, logname, 10000, &log);
        ck_assert_msg(rc != 0 && rc < 128, "%s: exit %d (want a clean non-zero exit)\n%s",
                      t[i].assign, rc, log);
        assert_startup_message(log, t[i].var);
        ck_assert_ptr_null(strstr(log, "\"event\":\"ready\""));
        ck_assert_ptr_null(strstr(log, "short\"")); /* a rejected key is not echoed */
        free(log);
    }
    /* N is accepted: 256 connections in the pool (the API comes up; stop it ourselves). */
    char exe[400], addr[64], sock[400], key[128];
    snprintf(exe, sizeof exe, "%s/vigil-api", E.bin);
    h_env other = E;
    other.api_port = h_free_port();
    snprintf(other.base, sizeof other.base, "http://127.0.0.1:%d", other.api_port);
    snprintf(addr, sizeof addr, "VIGIL_HTTP_ADDR=127.0.0.1:%d", other.api_port);
    snprintf(sock, sizeof sock, "VIGIL_HOTPATH_SOCKET=%s", E.hp_sock);
    snprintf(key, sizeof key, "VIGIL_BOOTSTRAP_KEY=%s", E.key);
    const char *env[] = {dburl, addr, sock, key, "VIGIL_DB_POOL_SIZE=256", NULL};
    const char *argv[] = {exe, "serve", NULL};
    pid_t pid = h_spawn(&E, argv, env, "pool-256.log");
    int up = 0;
    for (int i = 0; i < 500 && !up; i++) {
        h_resp r;
        if (h_http(&other, "GET", "/api/v1/users?limit=1", E.key, NULL, NULL, 0, NULL, &r) == 0) {
            up = r.status == 200;
            h_resp_free(&r);
        }
        if (!up)
            usleep(20000);
    }
    kill(pid, SIGTERM);
    ck_assert_int_eq(h_wait(pid, 15000), 0);
    ck_assert_msg(up, "VIGIL_DB_POOL_SIZE=256 did not serve");
}
END_TEST

/* Each migrations/NNNN_name.sql has a row (version, name, checksum = SHA-256 of the file). */
START_TEST(migrations_recorded_with_checksums)
{
    glob_t g;
    ck_assert_int_eq(glob("migrations/*.sql", 0, NULL, &g), 0);
    ck_assert_uint_gt(g.gl_pathc, 0);
    char out[8192];
    ck_assert_int_eq(h_psql(&E, NULL,
                            "SELECT version || '|' || name || '|' || checksum FROM "
                            "schema_migrations ORDER BY version",
                            out, sizeof out),
                     0);
    int rows = 0;
    for (const char *p = out; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
        rows++;
    ck_assert_msg((size_t)rows == g.gl_pathc, "%d rows for %zu files:\n%s", rows, g.gl_pathc, out);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char cmd[600], sum[80] = "", want[400], name[200];
        snprintf(cmd, sizeof cmd, "sha256sum '%s'", g.gl_pathv[i]);
        FILE *f = popen(cmd, "r");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fscanf(f, "%64s", sum), 1);
        pclose(f);
        const char *base = strrchr(g.gl_pathv[i], '/') + 1;
        snprintf(name, sizeof name, "%.*s", (int)(strlen(base) - 4), base);
        snprintf(want, sizeof want, "%ld|%s|%s", strtol(base, NULL, 10), name, sum);
        ck_assert_msg(strstr(out, want) != NULL, "no row '%s' in:\n%s", want, out);
    }
    globfree(&g);
    /* The API's own start said so. */
    char *log = h_read_file(&E, "api.log");
    ck_assert_ptr_nonnull(strstr(log, "\"event\":\"migrations_up_to_date\""));
    free(log);
}
END_TEST

START_TEST(changed_checksum_stops_startup)
{
    char saved[100], q[300], dburl[600], key[128];
    ck_assert_int_eq(h_psql(&E, NULL,
                            "SELECT checksum FROM schema_migrations ORDER BY version "
                            "LIMIT 1",
                            saved, sizeof saved),
                     0);
    ck_assert_uint_eq(strlen(saved), 64);
    ck_assert_int_eq(h_psql(&E, NULL,
                            "UPDATE schema_migrations SET checksum = 'x' WHERE version = "
                            "(SELECT min(version) FROM schema_migrations)",
                            NULL, 0),
                     0);
    snprintf(dburl, sizeof dburl, "DATABASE_URL=%s", E.db_url);
    snprintf(key, sizeof key, "VIGIL_BOOTSTRAP_KEY=%s", E.key);
    const char *env[] = {dburl, key, NULL};
    char *log = NULL;
    int rc = serve_once(env, "checksum.log", 15000, &log);
    /* Put it back before asserting, so a failure here does not poison later tests. */
    snprintf(q, sizeof q,
             "UPDATE schema_migrations SET checksum = '%s' WHERE version = "
             "(SELECT min(version) FROM schema_migrations)",
             saved);
    ck_assert_int_eq(h_psql(&E, NULL, q, NULL, 0), 0);
    ck_assert_msg(rc != 0 && rc < 128, "exit %d\n%s", rc, log);
    ck_assert_msg(strstr(log, "changed since it ran") != NULL, "no clear message:\n%s", log);
    ck_assert_ptr_nonnull(strstr(log, "vigil-api: migrate:"));
    ck_assert_ptr_null(strstr(log, "\"event\":\"ready\""));
    free(log);
    /* And with the checksum restored, a start succeeds again. */
    h_resp r;
    ck_assert_int_eq(h_api_stop(&E, SIGTERM), 0);
    ck_assert_int_eq(h_api_start(&E), 0);
    e2e_req(&E, "GET", "/api/v1/users", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
}
END_TEST

START_TEST(concurrent_start_on_fresh_database)
{
    ck_assert_int_eq(h_psql(&E, "postgres", "CREATE DATABASE fresh", NULL, 0), 0);
    char exe[400], dburl[600], sock[400], key[128], addr[2][64];
    snprintf(exe, sizeof exe, "%s/vigil-api", E.bin);
    snprintf(dburl, sizeof dburl, "DATABASE_URL=postgresql://vigil@/fresh?host=%s&port=%d",
             E.pg_sock, E.pg_port);
    snprintf(sock, sizeof sock, "VIGIL_HOTPATH_SOCKET=%s", E.hp_sock);
    snprintf(key, sizeof key, "VIGIL_BOOTSTRAP_KEY=%s", E.key);
    h_env view[2];
    pid_t pid[2];
    const char *argv[] = {exe, "serve", NULL};
    for (int i = 0; i < 2; i++) {
        view[i] = E;
        view[i].api_port = h_free_port();
        snprintf(view[i].base, sizeof view[i].base, "http://127.0.0.1:%d", view[i].api_port);
        snprintf(addr[i], sizeof addr[i], "VIGIL_HTTP_ADDR=127.0.0.1:%d", view[i].api_port);
    }
    for (int i = 0; i < 2; i++) { /* both spawned before either is waited for */
        const char *env[] = {dburl, sock, key, addr[i], NULL};
        pid[i] = h_spawn(&E, argv, env, i ? "api-b.log" : "api-a.log");
        ck_assert_int_gt(pid[i], 0);
    }
    int up[2] = {0, 0};
    for (int t = 0; t < 750 && !(up[0] && up[1]); t++) {
        for (int i = 0; i < 2; i++) {
            h_resp r;
            if (!up[i] &&
                h_http(&view[i], "GET", "/api/v1/users", E.key, NULL, NULL, 0, NULL, &r) == 0) {
                up[i] = r.status == 200;
                h_resp_free(&r);
            }
        }
        if (!(up[0] && up[1]))
            usleep(20000);
    }
    int rc0 = -1, rc1 = -1;
    kill(pid[0], SIGTERM);
    kill(pid[1], SIGTERM);
    rc0 = h_wait(pid[0], 15000);
    rc1 = h_wait(pid[1], 15000);
    char *la = h_read_file(&E, "api-a.log"), *lb = h_read_file(&E, "api-b.log");
    ck_assert_msg(up[0] && up[1], "not both up (%d, %d)\n--- a:\n%s\n--- b:\n%s", up[0], up[1], la,
                  lb);
    ck_assert_int_eq(rc0, 0);
    ck_assert_int_eq(rc1, 0);
    /* One of them applied every migration, the other none. */
    glob_t g;
    ck_assert_int_eq(glob("migrations/*.sql", 0, NULL, &g), 0);
    int applied = 0;
    const char *logs[2] = {la, lb};
    for (int i = 0; i < 2; i++) {
        const char *p = strstr(logs[i], "\"applied\":");
        ck_assert_ptr_nonnull(p);
        applied += atoi(p + 10);
    }
    ck_assert_int_eq(applied, (int)g.gl_pathc);
    char n[16];
    ck_assert_int_eq(h_psql(&E, "fresh", "SELECT count(*) FROM schema_migrations", n, sizeof n), 0);
    ck_assert_int_eq(atoi(n), (int)g.gl_pathc);
    ck_assert_int_eq(
        h_psql(&E, "fresh", "SELECT count(*) FROM api_keys WHERE name = 'bootstrap'", n, sizeof n),
        0);
    ck_assert_str_eq(n, "1");
    globfree(&g);
    free(la);
    free(lb);
}
END_TEST

/* ---- graceful shutdown -------------------------------------------------------------------------
 */

enum { WORKERS = 4, MAX_REQ = 200 };

typedef struct worker {
    int idx;
    long status[MAX_REQ];
    int complete[MAX_REQ]; /* the body was the whole JSON document it claims to be */
    int n;
    int transport_errors;
} worker;

static void *post_loop(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < MAX_REQ; i++) {
        char body[200];
        h_resp r;
        snprintf(body, sizeof body, "{\"external_id\":\"drain-%d-%d\",\"metadata\":{\"i\":%d}}",
                 w->idx, i, i);
        if (h_json(&E, "POST", "/api/v1/users", body, &r) != 0) {
            w->transport_errors++;
            break; /* the listener is gone */
        }
        w->status[w->n] = r.status;
        w->complete[w->n] =
            r.json != NULL && (r.status != 201 || (h_str(&r, "id") && h_str(&r, "created_at")));
        w->n++;
        h_resp_free(&r);
    }
    return NULL;
}

/* Polls (10 ms, at most 3 s) until want backends wait on a lock in a statement LIKE like. */
static void wait_lock_waiters(const char *like, int want)
{
    char sql[300], n[16];
    int waiting = 0;
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query "
             "LIKE '%s'",
             like);
    for (int i = 0; i < 300 && waiting < want; i++) {
        h_psql(&E, NULL, sql, n, sizeof n);
        waiting = atoi(n);
        if (waiting < want)
            usleep(10000);
    }
    ck_assert_int_eq(waiting, want);
}

/* A client on kept-alive connections (as a pool or a load balancer keeps them), sending
 * GET /api/v1/users?limit=1 again as soon as each answer is read.  An answer with Connection:
 * close (the server also closes one after a key check its cache could not settle) ends the
 * connection: before SIGTERM (term_ms 0) the client opens another, after it the client is done.
 * lost: a request sent on an open connection that got no answer, not counting one on a
 * connection opened within 100 ms of the SIGTERM (it may have waited in the listen backlog when
 * the server stopped accepting, never taken). */
typedef struct keepalive {
    atomic_llong term_ms; /* when SIGTERM was sent (wire_now_ms), 0 before */
    atomic_int stop;
    int answered, closed_after_term, lost, unattributable;
    int status; /* of the last answer */
} keepalive;

/* Reads one response on fd: its status (0: the connection ended first) and whether it says
 * Connection: close. */
static int read_response(int fd, int *close_after)
{
    char buf[8192];
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        ssize_t n = len < sizeof buf - 1 ? recv(fd, buf + len, sizeof buf - 1 - len, 0) : -1;
        if (n <= 0)
            return 0;
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    *close_after = strcasestr(buf, "\r\nConnection: close\r\n") != NULL;
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0, have = len - (size_t)(end + 4 - buf);
    while (have < want) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return 0;
        have += (size_t)n;
    }
    return atoi(buf + 9);
}

static int keepalive_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)E.api_port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void *keepalive_loop(void *arg)
{
    keepalive *k = arg;
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET /api/v1/users?limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Authorization: Bearer %s\r\n\r\n",
                     E.key);
    while (!atomic_load(&k->stop) && atomic_load(&k->term_ms) == 0) {
        int64_t opened = wire_now_ms();
        int fd = keepalive_connect();
        if (fd < 0) {
            k->lost++;
            return NULL;
        }
        int open = 1;
        while (open && !atomic_load(&k->stop)) {
            int close_after = 0;
            if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n ||
                (k->status = read_response(fd, &close_after)) == 0) {
                int64_t term = atomic_load(&k->term_ms);
                if (term && opened > term - 100)
                    k->unattributable++;
                else
                    k->lost++;
                close(fd);
                return NULL;
            }
            k->answered++;
            if (close_after) {
                open = 0;
                k->closed_after_term = atomic_load(&k->term_ms) != 0;
            }
            usleep(2000);
        }
        close(fd);
    }
    return NULL;
}

/* SIGTERM while clients keep kept-alive connections busy, each with a request in flight (held
 * by a lock on users): once the drain has begun every answer closes its connection
 * (Connection: close), so the clients stop bringing requests, and every request the server took
 * is answered before the daemon stops (none logged "aborted", none lost by a client).  The drain
 * used to answer them as usual, keep serving the next ones for all of VIGIL_DRAIN_TIMEOUT_S and
 * then drop answers it had computed. */
START_TEST(drain_closes_kept_alive_connections)
{
    enum { CLIENTS = 3 };
    static keepalive k[CLIENTS];
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        memset(&k[i], 0, sizeof k[i]);
        ck_assert_int_eq(pthread_create(&th[i], NULL, keepalive_loop, &k[i]), 0);
    }
    int ready = 0;
    for (int i = 0; i < 500 && ready < CLIENTS; i++) { /* every client on its connection */
        usleep(10000);
        ready = 0;
        for (int c = 0; c < CLIENTS; c++)
            ready += k[c].answered >= 20;
    }
    ck_assert_int_eq(ready, CLIENTS);
    pid_t locker = e2e_lock_table(&E, "users", 2, "locker-ka.log");
    wait_lock_waiters("SELECT%FROM users%", CLIENTS);
    char *before = h_read_file(&E, "api.log");
    size_t skip = before ? strlen(before) : 0; /* earlier tests' lines */
    free(before);
    for (int i = 0; i < CLIENTS; i++)
        atomic_store(&k[i].term_ms, wire_now_ms());
    int rc = h_api_stop(&E, SIGTERM);
    for (int i = 0; i < CLIENTS; i++)
        atomic_store(&k[i].stop, 1);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    h_wait(locker, 10000);
    ck_assert_int_eq(rc, 0);
    for (int i = 0; i < CLIENTS; i++) {
        printf("  kept-alive client %d: %d answered (last %d), closed by an answer after SIGTERM "
               "%d, lost %d (+%d not attributable)\n",
               i, k[i].answered, k[i].status, k[i].closed_after_term, k[i].lost,
               k[i].unattributable);
        ck_assert_int_eq(k[i].status, 200); /* the request in flight at SIGTERM was answered */
        ck_assert_msg(k[i].lost == 0 && k[i].unattributable == 0,
                      "client %d: a request on an open connection got no answer", i);
        ck_assert_msg(k[i].closed_after_term,
                      "client %d: the drain did not close its connection with an answer", i);
    }
    char *log = h_read_file(&E, "api.log");
    ck_assert_ptr_nonnull(log);
    ck_assert_uint_ge(strlen(log), skip);
    ck_assert_msg(strstr(log + skip, "\"aborted\":true") == NULL,
                  "a request taken was not answered");
    ck_assert_ptr_nonnull(strstr(log + skip, "\"abandoned_requests\":0"));
    free(log);
    ck_assert_int_eq(h_api_start(&E), 0);
}
END_TEST

/* A SIGTERM that arrives as soon as the API answers, before its main thread waits for signals,
 * is still a clean stop (exit 0): no thread of the API may take it with the default action (the
 * database pool's helper thread, started before the signals are blocked, did: exit 128+15 about
 * one restart in ten on a fast machine).  60 restarts, each stopped at once. */
START_TEST(sigterm_right_after_start)
{
    for (int i = 0; i < 60; i++) {
        ck_assert_int_eq(h_api_stop(&E, SIGTERM), 0);
        ck_assert_int_eq(h_api_start(&E), 0);
    }
}
END_TEST

START_TEST(graceful_shutdown_drains)
{
    char n[16];
    /* Hold the users table so the workers' first INSERTs are in flight when SIGTERM arrives: 4 s,
     * so that on a loaded machine the polling below (a psql process a round) and the workers'
     * first requests reach the lock before it is released.  All four must wait there at once:
     * a handler blocked on the lock must not hold back the other requests (it did: two jobs
     * submitted while one handler thread was idle and not yet awake got one thread between
     * them, http.c job_submit). */
    pid_t locker = e2e_lock_table(&E, "users", 4, "locker.log");

    static worker w[WORKERS];
    pthread_t th[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].idx = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, post_loop, &w[i]), 0);
    }
    wait_lock_waiters("INSERT INTO users%", WORKERS); /* all blocked inside PostgreSQL */

    /* The drain ends by itself: exit status 0 (h_api_stop kills after 30 s, which would show as
     * 128+9), with every in-flight request answered in full below.  How long it took is not
     * asserted. */
    int rc = h_api_stop(&E, SIGTERM);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    h_wait(locker, 10000);

    ck_assert_int_eq(rc, 0);
    int ok = 0;
    for (int i = 0; i < WORKERS; i++) {
        ck_assert_msg(w[i].n >= 1, "worker %d got no response at all", i);
        /* Its first request was in flight at SIGTERM: it completed normally. */
        ck_assert_msg(w[i].status[0] == 201, "worker %d in-flight request: %ld", i, w[i].status[0]);
        for (int k = 0; k < w[i].n; k++) {
            ck_assert_msg(w[i].status[k] == 201 || w[i].status[k] == 503,
                          "worker %d request %d: status %ld", i, k, w[i].status[k]);
            ck_assert_msg(w[i].complete[k], "worker %d request %d: incomplete body", i, k);
            ok += w[i].status[k] == 201;
        }
    }
    /* Every 201 is a stored row. */
    char q[200];
    snprintf(q, sizeof q, "SELECT count(*) FROM users WHERE external_id LIKE 'drain-%%'");
    ck_assert_int_eq(h_psql(&E, NULL, q, n, sizeof n), 0);
    ck_assert_int_eq(atoi(n), ok);

    char *log = h_read_file(&E, "api.log");
    ck_assert_ptr_nonnull(strstr(log, "\"event\":\"shutdown\""));
    ck_assert_ptr_nonnull(strstr(log, "\"event\":\"stopped\""));
    ck_assert_ptr_nonnull(strstr(log, "\"abandoned_requests\":0"));
    free(log);
}
END_TEST

static Suite *ops_suite(void)
{
    Suite *s = suite_create("e2e_ops");
    TCase *tc = tcase_create("dependencies");
    tcase_add_unchecked_fixture(tc, env_up, env_down);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, health_and_ready);
    tcase_add_test(tc, hotpath_down_and_back);
    tcase_add_test(tc, postgres_down_and_back);
    tcase_add_test(tc, pool_acquire_after_deadline);
    tcase_add_test(tc, pipeline_and_prepared_statements);
    suite_add_tcase(s, tc);

    tc = tcase_create("lifecycle");
    tcase_add_unchecked_fixture(tc, env_up, env_down);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, startup_rejects_bad_env);
    tcase_add_test(tc, migrations_recorded_with_checksums);
    tcase_add_test(tc, changed_checksum_stops_startup);
    tcase_add_test(tc, concurrent_start_on_fresh_database);
    tcase_add_test(tc, sigterm_right_after_start);
    tcase_add_test(tc, drain_closes_kept_alive_connections);
    tcase_add_test(tc, graceful_shutdown_drains); /* last: stops the API */
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ops_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
