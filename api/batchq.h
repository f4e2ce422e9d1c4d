/* batchq.h - batch queues: the database round trips of concurrent decisions shared.
 *
 * A request hands its statements (a job) to a queue.  When fewer batches than the queue's lanes
 * are being sent, the request sends one itself (it leads): every job queued at that moment, at
 * most the queue's max_jobs, in one pipeline on a pooled connection.  Jobs queued while every
 * lane has a batch in flight wait; when one is answered, the first of them leads the next batch,
 * for all of them.  So with one request at a time a job costs what the request's own round trip
 * did (no other thread is involved), and under load N requests share one round trip.  Lanes
 * bound head-of-line blocking: a slow batch (a statement waiting on a lock, a read over a very
 * long history) holds up the jobs queued behind it only while every other lane is busy too.  A
 * queue works in one of two modes:
 *
 * BATCHQ_TXN (group commit, decisions' writes): BEGIN, each job's statements in queue order,
 * COMMIT: N decisions share one commit and one WAL flush.  An SQL error fails only the job whose
 * statement raised it: the batch is rolled back and sent again without that job (at most once
 * per job of the batch), so what a job gets back is what it would have got alone: committed
 * (every statement of it, and nothing of a failed job), or its own error.  A failure that names
 * no job (BEGIN or COMMIT) sends each job of the batch alone, and so does a conflict between
 * transactions (a deadlock, a serialization failure): with two API replicas, two batches that
 * take the same keys in crossed orders deadlock where each job alone would only have waited, so
 * the job whose statement PostgreSQL chose is not the one at fault.  What is not an SQL error is
 * shared by the batch: a statement that waits (on a row lock, say) delays every job of it, and a
 * lost connection or a passed deadline answers every job of the batch with that status, its commit
 * may or may not have happened, as for a request's own connection.
 *
 * BATCHQ_READ (decisions' reads): each job's statements followed by a Sync (db_pipeline_groups),
 * so each job is its own implicit transaction and gets exactly what its own pipeline would have:
 * an error stops the rest of its job only; nothing is sent twice.  Meant for statements that
 * change nothing.
 *
 * Costs: no thread of its own; one pooled connection while a batch is sent (taken per batch, so
 * requests and batches share VIGIL_DB_POOL_SIZE); no allocation per job (the job lives on the
 * caller's stack).  Thread-safe. */
#ifndef VIGIL_BATCHQ_H
#define VIGIL_BATCHQ_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

#define BATCHQ_JOB_MAX 4      /* statements one job may hold */
#define BATCHQ_BATCH_LIMIT 16 /* the largest max_jobs (VIGIL_COMMIT_BATCH, VIGIL_READ_BATCH) */
#define BATCHQ_LANES_MAX 8    /* the most batches one queue has in flight (VIGIL_READ_LANES) */

enum batchq_mode { BATCHQ_TXN, BATCHQ_READ };

typedef struct batchq batchq;

typedef struct batchq_job {
    /* in: set by the caller, which keeps them (and the statements' parameters) alive until
     * batchq_run returns */
    const db_stmt *stmts; /* the job's statements, in order */
    int n;                /* 1..BATCHQ_JOB_MAX */
    int64_t deadline_ms;  /* a job still queued at its deadline is not sent (DB_TIMEOUT); a batch
                           * is bounded by the latest deadline of its jobs */
    /* out: after batchq_run; the caller PQclear()s every non-NULL res[i] and error */
    int rc;     /* DB_OK: every statement ran (BATCHQ_TXN: and committed); DB_ERROR: stmts[failed]
                 * failed (BATCHQ_TXN: nothing of the job was committed); DB_BUSY/DB_DOWN/
                 * DB_TIMEOUT: see above */
    int failed; /* with DB_ERROR: the statement, or -1 when BEGIN or COMMIT failed */
    PGresult *res[BATCHQ_JOB_MAX]; /* DB_OK: each statement's result.  DB_ERROR: BATCHQ_READ, the
                                    * results before stmts[failed]; BATCHQ_TXN, none (rolled back).
                                    * NULL otherwise. */
    PGresult *error; /* with DB_ERROR: the error (of BEGIN or COMMIT when failed is -1) */
    char err[256];   /* with any status but DB_OK: what happened */
    /* private to batchq.c */
    pthread_cond_t cv;
    int done, lead, queued; /* queued: not yet taken into a batch */
    struct batchq_job *next;
} batchq_job;

/* A queue.  max_jobs (1..BATCHQ_BATCH_LIMIT) caps the jobs of one batch (1: every job is sent
 * alone); lanes (1..BATCHQ_LANES_MAX) the batches in flight at once, each on its own pooled
 * connection.  A batch waits for a pooled connection up to wait_ms, or with -1
 * up to its deadline (group commit: its jobs are decided already, failing them early would waste
 * that work); then its jobs get DB_BUSY.  Returns the queue, or NULL with err filled.  db must
 * outlive it. */
batchq *batchq_start(db_pool *db, enum batchq_mode mode, int max_jobs, int lanes, int wait_ms,
                     char *err, size_t errlen);

/* Queues job and returns when it is answered: after the batch before it and its own, each
 * bounded by the latest deadline of its jobs.  Returns job->rc. */
int batchq_run(batchq *q, batchq_job *job);

/* Frees q (NULL: nothing) unless abandoned requests (ones the shutdown drain gave up on, which may
 * still call batchq_run) remain: then q is left to the exiting process. */
void batchq_stop(batchq *q, int abandoned);

/* Round trips that answered jobs (BATCHQ_TXN: transactions that committed jobs), and jobs
 * answered DB_OK, so far (for /metrics). */
void batchq_counts(batchq *q, unsigned long long *batches, unsigned long long *jobs);

#endif
