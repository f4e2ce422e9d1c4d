/* commitq.c - group commit of decisions' writes: the queue, the hand-over of the lead, and the
 * retry that keeps one job's failure from failing the others.  See commitq.h. */
#include "commitq.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "trace.h"

/* BEGIN, every job's statements, COMMIT. */
#define BATCH_STMTS (COMMITQ_BATCH_LIMIT * COMMITQ_JOB_MAX + 2)
_Static_assert(BATCH_STMTS <= DB_PIPELINE_MAX, "a batch must fit one pipeline");

/* One batch being sent: its jobs, which of them are still to be answered, and the statements of
 * the current attempt with where each job's begin. */
typedef struct batch {
    commitq_job *job[COMMITQ_BATCH_LIMIT];
    int njob;
    int open[COMMITQ_BATCH_LIMIT]; /* 1: not answered yet */
    db_stmt s[BATCH_STMTS];
    int first[COMMITQ_BATCH_LIMIT]; /* the job's first statement in s, -1 = not in this attempt */
    int ns, commit_at;
    int commits; /* attempts that committed at least one job */
    PGresult *res[BATCH_STMTS];
} batch;

struct commitq {
    db_pool *db;
    int max_jobs;
    pthread_mutex_t mu;
    commitq_job *head, *tail;         /* jobs waiting for a batch, FIFO; guarded by mu */
    int leading;                      /* a leader is sending a batch; guarded by mu */
    unsigned long long batches, jobs; /* guarded by mu */
    batch b;                          /* the leader's (one at a time) */
};

static void answer(commitq_job *j, int rc, int failed, PGresult *res, const char *err)
{
    j->rc = rc;
    j->failed = failed;
    j->res = res;
    snprintf(j->err, sizeof j->err, "%s", err ? err : "");
}

/* Lays out one attempt: BEGIN, the open jobs (only job `only` when >= 0), COMMIT. */
static void layout(batch *b, int only)
{
    b->ns = 0;
    b->s[b->ns++] = (db_stmt){"BEGIN", 0, NULL, NULL, NULL, 0, 0};
    for (int k = 0; k < b->njob; k++) {
        b->first[k] = -1;
        if (!b->open[k] || (only >= 0 && k != only))
            continue;
        b->first[k] = b->ns;
        for (int i = 0; i < b->job[k]->n; i++)
            b->s[b->ns++] = b->job[k]->stmts[i];
    }
    b->commit_at = b->ns;
    b->s[b->ns++] = (db_stmt){"COMMIT", 0, NULL, NULL, NULL, 0, 0};
}

/* The job of this attempt whose statements hold index f, or -1 (BEGIN, COMMIT). */
static int job_of(const batch *b, int f)
{
    for (int k = 0; k < b->njob; k++)
        if (b->first[k] >= 0 && f >= b->first[k] && f < b->first[k] + b->job[k]->n)
            return k;
    return -1;
}

static void clear_results(batch *b)
{
    for (int i = 0; i < b->ns; i++) {
        PQclear(b->res[i]);
        b->res[i] = NULL;
    }
}

/* Sends one attempt on c and answers what it settles.  Returns 1 when jobs remain open. */
static int attempt(batch *b, db_conn *c, int only, int64_t deadline_ms)
{
    char err[256];
    int failed;
    layout(b, only);
    int rc = db_pipeline(c, b->s, b->ns, deadline_ms, b->res, &failed, err, sizeof err);
    if (rc == DB_OK) { /* committed */
        b->commits++;
        for (int k = 0; k < b->njob; k++)
            if (b->first[k] >= 0) {
                int at = b->first[k] + b->job[k]->keep;
                answer(b->job[k], DB_OK, 0, b->res[at], NULL);
                b->res[at] = NULL;
                b->open[k] = 0;
            }
    } else if (rc == DB_ERROR) {
        int k = job_of(b, failed), own = k >= 0;
        if (!own && only >= 0)
            k = only; /* alone: BEGIN or COMMIT failed for this job */
        if (k >= 0) {
            answer(b->job[k], DB_ERROR, own ? failed - b->first[k] : -1, b->res[failed], err);
            b->res[failed] = NULL;
            b->open[k] = 0;
        }
        char e2[64];
        if (db_exec(c, "ROLLBACK", 0, NULL, deadline_ms, e2, sizeof e2) != DB_OK)
            rc = DB_DOWN; /* the connection cannot be trusted: give the rest that answer */
        else if (k < 0) {
            clear_results(b);
            return 2; /* no job to blame: each alone */
        }
    }
    if (rc != DB_OK && rc != DB_ERROR)
        for (int k = 0; k < b->njob; k++)
            if (b->open[k] && (only < 0 || k == only)) {
                answer(b->job[k], rc, 0, NULL, err);
                b->open[k] = 0;
            }
    clear_results(b);
    for (int k = 0; k < b->njob; k++)
        if (b->open[k])
            return 1;
    return 0;
}

/* Commits b's jobs: together while every failure names its job, then each alone.  A job whose
 * deadline has passed in the queue is not sent. */
static void send_batch(commitq *q, batch *b)
{
    int64_t now = clock_now_ms(), deadline = 0;
    int left = 0;
    b->commits = 0;
    for (int k = 0; k < b->njob; k++) {
        b->open[k] = b->job[k]->deadline_ms > now;
        if (!b->open[k])
            answer(b->job[k], DB_TIMEOUT, 0, NULL, "the request deadline passed in the queue");
        else if (b->job[k]->deadline_ms > deadline)
            deadline = b->job[k]->deadline_ms;
        left += b->open[k];
    }
    if (!left)
        return;
    memset(b->res, 0, sizeof b->res);
    db_conn *c = NULL;
    int64_t wait = deadline - now;
    int rc = db_acquire(q->db, deadline, wait > INT_MAX ? INT_MAX : (int)wait, &c);
    if (rc != DB_OK) {
        for (int k = 0; k < b->njob; k++)
            if (b->open[k])
                answer(b->job[k], rc, 0, NULL,
                       rc == DB_BUSY ? "pool exhausted" : "no database connection");
        return;
    }
    int more = attempt(b, c, -1, deadline);
    while (more == 1)
        more = attempt(b, c, -1, deadline);
    for (int k = 0; more == 2 && k < b->njob; k++)
        if (b->open[k])
            attempt(b, c, k, deadline);
    db_release(q->db, c);
}

/* Called by the leader with mu held: sends batches from the head of the queue until its own job
 * is done, then hands the lead to the next waiting job, if any. */
static void lead(commitq *q, commitq_job *self)
{
    batch *b = &q->b;
    while (!self->done) {
        b->njob = 0;
        while (q->head && b->njob < q->max_jobs) {
            b->job[b->njob++] = q->head;
            q->head = q->head->next;
        }
        if (!q->head)
            q->tail = NULL;
        pthread_mutex_unlock(&q->mu);
        trace_request_ctx mine; /* the batch is not the leader's own: no span in its trace */
        trace_request_detach(&mine);
        send_batch(q, b);
        trace_request_attach(&mine);
        pthread_mutex_lock(&q->mu);
        unsigned long long ok = 0;
        for (int k = 0; k < b->njob; k++) {
            commitq_job *j = b->job[k];
            ok += j->rc == DB_OK;
            j->done = 1;
            if (j != self)
                pthread_cond_signal(&j->cv);
        }
        q->batches += (unsigned long long)b->commits;
        q->jobs += ok;
    }
    q->leading = 0;
    if (q->head) {
        q->leading = 1;
        q->head->lead = 1;
        pthread_cond_signal(&q->head->cv);
    }
}

commitq *commitq_start(db_pool *db, int max_jobs, char *err, size_t errlen)
{
    assert(db && max_jobs >= 1 && max_jobs <= COMMITQ_BATCH_LIMIT);
    commitq *q = calloc(1, sizeof *q);
    if (!q) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    q->db = db;
    q->max_jobs = max_jobs;
    pthread_mutex_init(&q->mu, NULL);
    return q;
}

int commitq_run(commitq *q, commitq_job *job)
{
    assert(q && job && job->n >= 1 && job->n <= COMMITQ_JOB_MAX && job->keep < job->n);
    pthread_cond_init(&job->cv, NULL);
    job->done = job->lead = 0;
    job->next = NULL;
    job->res = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    if (!q->leading) {
        q->leading = 1;
        job->lead = 1;
    }
    while (!job->done && !job->lead)
        pthread_cond_wait(&job->cv, &q->mu);
    if (!job->done)
        lead(q, job);
    pthread_mutex_unlock(&q->mu);
    pthread_cond_destroy(&job->cv);
    return job->rc;
}

void commitq_stop(commitq *q, int abandoned)
{
    if (!q || abandoned > 0)
        return;
    pthread_mutex_lock(&q->mu);
    int busy = q->head || q->leading;
    pthread_mutex_unlock(&q->mu);
    if (busy)
        return; /* an abandoned request still holds it */
    pthread_mutex_destroy(&q->mu);
    free(q);
}

void commitq_counts(commitq *q, unsigned long long *batches, unsigned long long *jobs)
{
    pthread_mutex_lock(&q->mu);
    *batches = q->batches;
    *jobs = q->jobs;
    pthread_mutex_unlock(&q->mu);
}
