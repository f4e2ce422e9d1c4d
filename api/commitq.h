/* commitq.h - group commit: the writes of concurrent decisions committed in one database
 * transaction.
 *
 * A request hands its writes (a job: a few statements, e.g. the transaction row, its outbox
 * events, its idempotency record) to the queue.  When no batch is being sent, the request sends
 * one itself (it leads): every job queued at that moment, at most VIGIL_COMMIT_BATCH, in one
 * pipeline on a pooled connection: BEGIN, each job's statements in queue order, COMMIT.  Jobs
 * queued while a batch is in flight wait; when it is answered, the first of them leads the next
 * batch, for all of them.  So with one request at a time a job costs what the request's own round
 * trip did (no other thread is involved), and under load N decisions share one round trip, one
 * commit and one WAL flush.
 *
 * Failure isolation: an SQL error fails only the job whose statement raised it.  The batch is
 * rolled back and sent again without that job (at most once per job of the batch), so what a job
 * gets back is what it would have got alone: committed (every statement of it, and nothing of a
 * failed job), or its own error.  A failure that names no job (BEGIN or COMMIT) sends each job of
 * the batch alone.  What is not an SQL error is shared by the batch: a statement that waits (on a
 * row lock, say) delays every job of it, and a lost connection or a passed deadline answers every
 * job of the batch with that status, its commit may or may not have happened, as for a request's
 * own connection.
 *
 * Costs: no thread of its own; one pooled connection while a batch is sent (taken per batch, so
 * requests and batches share VIGIL_DB_POOL_SIZE); no allocation per job (the job lives on the
 * caller's stack).  Thread-safe; one per process. */
#ifndef VIGIL_COMMITQ_H
#define VIGIL_COMMITQ_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

#define COMMITQ_JOB_MAX 4      /* statements one job may hold */
#define COMMITQ_BATCH_LIMIT 16 /* the largest VIGIL_COMMIT_BATCH */

typedef struct commitq commitq;

typedef struct commitq_job {
    /* in: set by the caller, which keeps them (and the statements' parameters) alive until
     * commitq_run returns */
    const db_stmt *stmts; /* the job's statements, in order */
    int n;                /* 1..COMMITQ_JOB_MAX */
    int keep;             /* the statement whose result *res returns on success */
    int64_t deadline_ms;  /* a job still queued at its deadline is not sent (DB_TIMEOUT); a batch
                           * is bounded by the latest deadline of its jobs */
    /* out: after commitq_run */
    int rc;        /* DB_OK: committed; DB_ERROR: stmts[failed] failed, nothing of the job was
                    * committed; DB_BUSY/DB_DOWN/DB_TIMEOUT: see above */
    int failed;    /* with DB_ERROR: the statement, or -1 when BEGIN or COMMIT failed */
    PGresult *res; /* DB_OK: the result of stmts[keep]; DB_ERROR: the error; the caller
                    * PQclear()s it.  NULL otherwise. */
    char err[256]; /* with any status but DB_OK: what happened */
    /* private to commitq.c */
    pthread_cond_t cv;
    int done, lead;
    struct commitq_job *next;
} commitq_job;

/* A queue.  max_jobs (1..COMMITQ_BATCH_LIMIT) caps the jobs of one transaction
 * (1: every job commits alone, as without the queue).  A batch waits for a pooled connection up
 * to its deadline (its jobs are decided already: failing them early would waste that work).
 * Returns the queue, or NULL with err filled.  db must outlive it. */
commitq *commitq_start(db_pool *db, int max_jobs, char *err, size_t errlen);

/* Queues job and returns when it is committed or failed: the batch before it and its own, each
 * bounded by the latest deadline of its jobs.  Returns job->rc. */
int commitq_run(commitq *q, commitq_job *job);

/* Frees q (NULL: nothing) unless abandoned requests (ones the shutdown drain gave up on, which may
 * still call commitq_run) remain: then q is left to the exiting process. */
void commitq_stop(commitq *q, int abandoned);

/* Transactions that committed jobs, and jobs committed, so far (for /metrics). */
void commitq_counts(commitq *q, unsigned long long *batches, unsigned long long *jobs);

#endif
