/* e2e_batchq.c - the batch queues (api/batchq.c) against a real PostgreSQL, in two races a
 * service meets only under load, made certain here:
 *  - a read lane given to a job that another lane's batch then takes: its thread, when it wakes,
 *    must not lead a batch of later jobs (it would wait on their round trip, past its own answer
 *    and its own deadline);
 *  - two API replicas' group commits taking two keys in crossed orders: PostgreSQL breaks the
 *    deadlock by failing one statement, which the batch caused, so no job may be answered with
 *    that deadlock; each gets what it would have got alone (committed, or 23505).
 * batchq.c is compiled into this binary, its public names renamed (the API's own copy is in the
 * link too) and pthread_cond_wait wrapped: a job that wakes holding a lane and not yet answered
 * sleeps a given time first, as a thread descheduled at that point would.  Nothing else of it is
 * changed.  Only PostgreSQL is started (the harness's), no API.
 *
 * One TCase, one PostgreSQL (unchecked fixtures, CK_NOFORK). */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static __thread struct batchq_job *tl_job; /* the job this thread runs */
static __thread int tl_delay_ms;           /* its one delay after a wake-up with a lane */
static int delayed_cond_wait(pthread_cond_t *c, pthread_mutex_t *m);

#define batchq_start t_batchq_start
#define batchq_run t_batchq_run
#define batchq_stop t_batchq_stop
#define batchq_counts t_batchq_counts
#define pthread_cond_wait(c, m) delayed_cond_wait(c, m)
/* batchq.c's <assert.h> is tests/e2e/assert.h on this include path: its asserts, kept */
#define assert(e) ((e) ? (void)0 : abort())
#include "batchq.c"
#undef pthread_cond_wait

#include "harness.h"

static int delayed_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    int rc = pthread_cond_wait(c, m);
    if (tl_job && tl_delay_ms > 0 && tl_job->lead && !tl_job->done) {
        int ms = tl_delay_ms;
        tl_delay_ms = 0;
        pthread_mutex_unlock(m);
        usleep((useconds_t)ms * 1000);
        pthread_mutex_lock(m);
    }
    return rc;
}

static h_env E;
static db_pool *pool;

static void env_up(void)
{
    const char *root = getenv("VIGIL_TEST_TMP");
    snprintf(E.dir, sizeof E.dir, "%s/batchq-XXXXXX", root ? root : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(E.dir));
    chmod(E.dir, 0755); /* the postgres user must reach its data directory */
    snprintf(E.pg_data, sizeof E.pg_data, "%s/pg", E.dir);
    snprintf(E.pg_sock, sizeof E.pg_sock, "%s/pgsock", E.dir);
    E.pg_port = h_free_port();
    snprintf(E.db_url, sizeof E.db_url, "postgresql://vigil@/vigil?host=%s&port=%d", E.pg_sock,
             E.pg_port);
    ck_assert_int_eq(h_pg_start(&E), 0);
    char err[256];
    pool = db_pool_create(E.db_url, 8, 5000, err, sizeof err);
    ck_assert_msg(pool != NULL, "%s", err);
}

static void env_down(void)
{
    db_pool_destroy(pool);
    pool = NULL;
    h_stop(&E);
}

/* One job of a test: up to two statements, sent at start_ms after the run's start on queue q. */
typedef struct tjob {
    const char *name, *sql, *sql2;
    batchq *q;
    int start_ms, delay_ms, deadline_in_ms;
    /* out */
    int rc;
    char sqlstate[8], pid[16];
    int64_t ret_ms, deadline_ms; /* from the run's start */
} tjob;

static int64_t t0;

static void *job_main(void *arg)
{
    tjob *a = arg;
    while (clock_now_ms() - t0 < a->start_ms)
        usleep(1000);
    db_stmt s[2] = {{a->sql, 0, NULL, NULL, NULL, 0, 0}, {a->sql2, 0, NULL, NULL, NULL, 0, 0}};
    batchq_job job;
    memset(&job, 0, sizeof job);
    job.stmts = s;
    job.n = a->sql2 ? 2 : 1;
    job.deadline_ms = clock_now_ms() + a->deadline_in_ms;
    a->deadline_ms = job.deadline_ms - t0;
    tl_job = &job;
    tl_delay_ms = a->delay_ms;
    a->rc = t_batchq_run(a->q, &job);
    a->ret_ms = clock_now_ms() - t0;
    tl_job = NULL;
    snprintf(a->sqlstate, sizeof a->sqlstate, "%s", job.error ? db_sqlstate(job.error) : "");
    if (job.res[0] && PQntuples(job.res[0]) == 1 && PQnfields(job.res[0]) == 1)
        snprintf(a->pid, sizeof a->pid, "%s", PQgetvalue(job.res[0], 0, 0));
    for (int i = 0; i < job.n; i++)
        PQclear(job.res[i]);
    PQclear(job.error);
    return NULL;
}

static void run_jobs(tjob *j, int n)
{
    pthread_t th[8];
    ck_assert_int_le(n, 8);
    t0 = clock_now_ms();
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, job_main, &j[i]), 0);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < n; i++)
        printf("  %-8s returned at %5lld ms (deadline %5lld), rc %d %s%s%s\n", j[i].name,
               (long long)j[i].ret_ms, (long long)j[i].deadline_ms, j[i].rc, j[i].sqlstate,
               j[i].pid[0] ? " backend " : "", j[i].pid);
}

/* One statement on a pooled connection; its first value as a number. */
static long one_number(const char *sql)
{
    db_conn *c = NULL;
    char err[256];
    PGresult *r = NULL;
    ck_assert_int_eq(db_acquire(pool, clock_now_ms() + 5000, 5000, &c), DB_OK);
    ck_assert_int_eq(
        db_query(c, sql, 0, NULL, NULL, NULL, 0, clock_now_ms() + 5000, &r, err, sizeof err),
        DB_OK);
    long v = PQntuples(r) > 0 ? atol(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    db_release(pool, c);
    return v;
}

/* Two lanes.  J1 and J2 hold both for 0.3 s; J3 and J4 queue meanwhile, and when the lanes come
 * free both are given one.  J3 wakes first and sends a batch holding J3 and J4; J4's thread wakes
 * 250 ms later, after J5 has queued (its read takes 2 s).  J4 is answered by J3's batch and must
 * return then, within its own 1 s deadline, not after J5's round trip. */
START_TEST(a_lane_whose_job_was_taken_sends_nothing)
{
    char err[256];
    batchq *q = t_batchq_start(pool, BATCHQ_READ, 16, 2, 5000, err, sizeof err);
    ck_assert_msg(q != NULL, "%s", err);
    tjob warm[2] = {{"warm-1", "SELECT pg_sleep(0.05)", NULL, q, 0, 0, 10000, 0, "", "", 0, 0},
                    {"warm-2", "SELECT pg_sleep(0.05)", NULL, q, 0, 0, 10000, 0, "", "", 0, 0}};
    run_jobs(warm, 2); /* two connections open */
    tjob j[5] = {
        {"J1", "SELECT pg_sleep(0.3)", NULL, q, 0, 0, 10000, 0, "", "", 0, 0},
        {"J2", "SELECT pg_sleep(0.3)", NULL, q, 0, 0, 10000, 0, "", "", 0, 0},
        {"J3", "SELECT pg_backend_pid() FROM pg_sleep(0.4)", NULL, q, 100, 80, 10000, 0, "", "", 0,
         0},
        {"J4", "SELECT pg_backend_pid()", NULL, q, 110, 250, 1000, 0, "", "", 0, 0},
        {"J5", "SELECT pg_backend_pid() FROM pg_sleep(2)", NULL, q, 450, 0, 10000, 0, "", "", 0, 0},
    };
    run_jobs(j, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_msg(j[i].rc == DB_OK, "%s: rc %d", j[i].name, j[i].rc);
    /* the race this test is for happened: J4 was read in J3's batch, on its connection */
    ck_assert_str_ne(j[3].pid, "");
    ck_assert_msg(strcmp(j[2].pid, j[3].pid) == 0, "J4 was not in J3's batch (%s vs %s)", j[3].pid,
                  j[2].pid);
    ck_assert_msg(j[3].ret_ms <= j[3].deadline_ms,
                  "J4 returned at %lld ms, past its deadline %lld ms (J5 returned at %lld ms)",
                  (long long)j[3].ret_ms, (long long)j[3].deadline_ms, (long long)j[4].ret_ms);
    ck_assert_int_lt(j[3].ret_ms + 1000, j[4].ret_ms);
    t_batchq_stop(q, 0);
}
END_TEST

/* Two commit queues of one lane each (two API replicas).  Each first holds its lane 0.2 s, so the
 * next two jobs queue and go in one batch: replica 1 inserts k1, then (0.3 s later) k2; replica
 * 2 inserts k2, then k1.  Each waits for the other's first key: PostgreSQL detects the deadlock
 * after deadlock_timeout and fails one statement with 40P01.  Its batch is rolled back and its
 * jobs sent alone: the other replica's commit makes both keys theirs, so they get 23505, what
 * each would have got alone (vigil answers a twin's record 23505 with 409). */
START_TEST(crossed_batches_of_two_replicas_answer_what_each_job_would_alone)
{
    char err[256];
    long deadlocks0 = one_number("SELECT deadlocks FROM pg_stat_database WHERE datname = "
                                 "current_database()");
    one_number("CREATE TABLE ik (key text PRIMARY KEY)");
    batchq *r1 = t_batchq_start(pool, BATCHQ_TXN, 16, 1, -1, err, sizeof err);
    batchq *r2 = t_batchq_start(pool, BATCHQ_TXN, 16, 1, -1, err, sizeof err);
    ck_assert(r1 && r2);
    tjob j[6] = {
        {"r1-hold", "SELECT pg_sleep(0.2)", NULL, r1, 0, 0, 10000, 0, "", "", 0, 0},
        {"r1-k1", "INSERT INTO ik VALUES ('k1')", NULL, r1, 50, 0, 10000, 0, "", "", 0, 0},
        {"r1-k2", "SELECT pg_sleep(0.3)", "INSERT INTO ik VALUES ('k2')", r1, 60, 0, 10000, 0, "",
         "", 0, 0},
        {"r2-hold", "SELECT pg_sleep(0.2)", NULL, r2, 0, 0, 10000, 0, "", "", 0, 0},
        {"r2-k2", "INSERT INTO ik VALUES ('k2')", NULL, r2, 50, 0, 10000, 0, "", "", 0, 0},
        {"r2-k1", "SELECT pg_sleep(0.3)", "INSERT INTO ik VALUES ('k1')", r2, 60, 0, 10000, 0, "",
         "", 0, 0},
    };
    run_jobs(j, 6);
    /* a statistic PostgreSQL's collector reports after the transaction: wait for it */
    long deadlocks = deadlocks0;
    for (int i = 0; i < 50 && deadlocks == deadlocks0; i++) {
        usleep(100 * 1000);
        deadlocks = one_number("SELECT deadlocks FROM pg_stat_database WHERE datname = "
                               "current_database()");
    }
    ck_assert_msg(deadlocks == deadlocks0 + 1, "the batches did not deadlock (%ld -> %ld)",
                  deadlocks0, deadlocks);
    int ok = 0, dup = 0;
    for (int i = 0; i < 6; i++) {
        ck_assert_msg(j[i].rc == DB_OK || (j[i].rc == DB_ERROR && !strcmp(j[i].sqlstate, "23505")),
                      "%s: rc %d, sqlstate %s (alone it commits or gets 23505)", j[i].name, j[i].rc,
                      j[i].sqlstate);
        if (strcmp(j[i].name + 3, "hold") != 0) {
            ok += j[i].rc == DB_OK;
            dup += j[i].rc == DB_ERROR;
        }
    }
    /* one replica committed both keys, the other's two jobs were refused */
    ck_assert_int_eq(ok, 2);
    ck_assert_int_eq(dup, 2);
    ck_assert_int_eq(j[1].rc, j[2].rc);
    ck_assert_int_eq(j[4].rc, j[5].rc);
    ck_assert_int_eq(one_number("SELECT count(*) FROM ik"), 2);
    t_batchq_stop(r1, 0);
    t_batchq_stop(r2, 0);
}
END_TEST

static Suite *batchq_suite(void)
{
    Suite *s = suite_create("batchq");
    TCase *tc = tcase_create("races");
    tcase_add_unchecked_fixture(tc, env_up, env_down);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, a_lane_whose_job_was_taken_sends_nothing);
    tcase_add_test(tc, crossed_batches_of_two_replicas_answer_what_each_job_would_alone);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(batchq_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
