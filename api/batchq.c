/* batchq.c - batch queues: the queue, the hand-over of the lead, the layouts of the two modes and,
 * for group commit, the retry that keeps one job's failure from failing the others.  See
 * batchq.h. */
#include "batchq.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "trace.h"

/* BEGIN, every job's statements, COMMIT. */
#define BATCH_STMTS (BATCHQ_BATCH_LIMIT * BATCHQ_JOB_MAX + 2)
_Static_assert(BATCH_STMTS <= DB_PIPELINE_MAX, "a batch must fit one pipeline");

/* One batch being sent: its jobs, which of them are still to be answered, and the statements of
 * the current attempt with where each job's begin. */
typedef struct batch {
    batchq_job *job[BATCHQ_BATCH_LIMIT];
    int njob;
    int open[BATCHQ_BATCH_LIMIT]; /* 1: not answered yet */
    db_stmt s[BATCH_STMTS];
    int first[BATCHQ_BATCH_LIMIT]; /* the job's first statement in s, -1 = not in this attempt */
    int ends[BATCHQ_BATCH_LIMIT];  /* BATCHQ_READ: where each sent job's statements end */
    int ns, nends;
    int trips; /* round trips that answered jobs (BATCHQ_TXN: attempts that committed) */
    PGresult *res[BATCH_STMTS];
} batch;

struct batchq {
    db_pool *db;
    enum batchq_mode mode;
    int wait_ms; /* the longest wait for a pooled connection, -1: the batch's deadline */
    int max_jobs;
    pthread_mutex_t mu;
    batchq_job *head, *tail;          /* jobs waiting for a batch, FIFO; guarded by mu */
    int lanes;                        /* batches that may be in flight at once */
    int leading;                      /* leaders sending batches (<= lanes); guarded by mu */
    int busy[BATCHQ_LANES_MAX];       /* lane in use by a leader; guarded by mu */
    unsigned long long batches, jobs; /* guarded by mu */
    batch b[BATCHQ_LANES_MAX];        /* each leader's, on its lane */
};

/* Answers job k of b: status, failed statement, error (taken from b->res[at] when at >= 0) and,
 * with keep, the results of the job's statements (taken from b->res). */
static void answer(batch *b, int k, int rc, int failed, int at, int keep, const char *err)
{
    batchq_job *j = b->job[k];
    j->rc = rc;
    j->failed = failed;
    j->error = NULL;
    if (at >= 0) {
        j->error = b->res[at];
        b->res[at] = NULL;
    }
    for (int i = 0; i < j->n; i++) {
        j->res[i] = keep ? b->res[b->first[k] + i] : NULL;
        if (keep)
            b->res[b->first[k] + i] = NULL;
    }
    snprintf(j->err, sizeof j->err, "%s", err ? err : "");
    b->open[k] = 0;
}

/* Lays out one attempt: BEGIN (BATCHQ_TXN), the open jobs (only job `only` when >= 0), each
 * ending a group (BATCHQ_READ), COMMIT (BATCHQ_TXN). */
static void layout(batch *b, enum batchq_mode mode, int only)
{
    b->ns = b->nends = 0;
    if (mode == BATCHQ_TXN)
        b->s[b->ns++] = (db_stmt){"BEGIN", 0, NULL, NULL, NULL, 0, 0};
    for (int k = 0; k < b->njob; k++) {
        b->first[k] = -1;
        if (!b->open[k] || (only >= 0 && k != only))
            continue;
        b->first[k] = b->ns;
        for (int i = 0; i < b->job[k]->n; i++)
            b->s[b->ns++] = b->job[k]->stmts[i];
        b->ends[b->nends++] = b->ns;
    }
    if (mode == BATCHQ_TXN) {
        b->s[b->ns++] = (db_stmt){"COMMIT", 0, NULL, NULL, NULL, 0, 0};
        b->ends[0] = b->ns;
        b->nends = 1;
    }
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

/* Answers the jobs of this attempt still open (only job `only` when >= 0) with rc. */
static void answer_rest(batch *b, int only, int rc, const char *err)
{
    for (int k = 0; k < b->njob; k++)
        if (b->open[k] && (only < 0 || k == only))
            answer(b, k, rc, 0, -1, 0, err);
}

/* BATCHQ_READ: one round trip, every job answered with what its own group got. */
static void read_all(batch *b, db_conn *c, int64_t deadline_ms)
{
    char err[256];
    int failed;
    layout(b, BATCHQ_READ, -1);
    int rc = db_pipeline_groups(c, b->s, b->ends, b->nends, deadline_ms, b->res, &failed, err,
                                sizeof err);
    if (rc == DB_OK || rc == DB_ERROR) {
        b->trips++;
        for (int k = 0; k < b->njob; k++) {
            if (b->first[k] < 0)
                continue;
            int f = -1;
            for (int i = 0; f < 0 && i < b->job[k]->n; i++) {
                const PGresult *r = b->res[b->first[k] + i];
                if (r && PQresultStatus(r) == PGRES_FATAL_ERROR)
                    f = i;
            }
            answer(b, k, f < 0 ? DB_OK : DB_ERROR, f, f < 0 ? -1 : b->first[k] + f, 1,
                   f < 0 ? NULL : PQresultErrorMessage(b->res[b->first[k] + f]));
        }
    }
    answer_rest(b, -1, rc, err);
    clear_results(b);
}

/* Whether error r is a conflict between transactions (a deadlock, a serialization failure): with
 * several jobs in one transaction it may be the batch's doing, not the failing statement's (two
 * batches that take the same keys in crossed orders, where each job alone would only wait). */
static int conflict(const PGresult *r)
{
    const char *st = db_sqlstate(r);
    return strcmp(st, "40P01") == 0 || strcmp(st, "40001") == 0;
}

/* BATCHQ_TXN: sends one attempt on c and answers what it settles.  Returns 1 when jobs remain
 * open, 2 when a failure named no job, or was a conflict between transactions (each is then
 * sent alone, and gets what it would have got alone). */
static int attempt(batch *b, db_conn *c, int only, int64_t deadline_ms)
{
    char err[256];
    int failed;
    layout(b, BATCHQ_TXN, only);
    int rc = db_pipeline(c, b->s, b->ns, deadline_ms, b->res, &failed, err, sizeof err);
    if (rc == DB_OK) { /* committed */
        b->trips++;
        for (int k = 0; k < b->njob; k++)
            if (b->first[k] >= 0)
                answer(b, k, DB_OK, 0, -1, 1, NULL);
    } else if (rc == DB_ERROR) {
        int k = job_of(b, failed), own = k >= 0;
        if (!own && only >= 0)
            k = only; /* alone: BEGIN or COMMIT failed for this job */
        if (only < 0 && failed >= 0 && conflict(b->res[failed]))
            k = -1; /* in a batch: not the job's to answer */
        if (k >= 0)
            answer(b, k, DB_ERROR, own ? failed - b->first[k] : -1, failed, 0, err);
        char e2[64];
        if (db_exec(c, "ROLLBACK", 0, NULL, deadline_ms, e2, sizeof e2) != DB_OK)
            rc = DB_DOWN; /* the connection cannot be trusted: give the rest that answer */
        else if (k < 0) {
            clear_results(b);
            return 2; /* no job to blame: each alone */
        }
    }
    if (rc != DB_OK && rc != DB_ERROR)
        answer_rest(b, only, rc, err);
    clear_results(b);
    for (int k = 0; k < b->njob; k++)
        if (b->open[k])
            return 1;
    return 0;
}

/* Sends b's jobs.  BATCHQ_TXN: together while every failure names its job, then each alone.  A
 * job whose deadline has passed in the queue is not sent. */
static void send_batch(batchq *q, batch *b)
{
    int64_t now = clock_now_ms(), deadline = 0;
    int left = 0;
    b->trips = 0;
    memset(b->res, 0, sizeof b->res);
    for (int k = 0; k < b->njob; k++) {
        b->first[k] = -1;
        b->open[k] = 1;
        if (b->job[k]->deadline_ms <= now)
            answer(b, k, DB_TIMEOUT, 0, -1, 0, "the request deadline passed in the queue");
        else if (b->job[k]->deadline_ms > deadline)
            deadline = b->job[k]->deadline_ms;
        left += b->open[k];
    }
    if (!left)
        return;
    db_conn *c = NULL;
    int64_t wait = deadline - now;
    if (q->wait_ms >= 0 && wait > q->wait_ms)
        wait = q->wait_ms;
    int rc = db_acquire(q->db, deadline, wait > INT_MAX ? INT_MAX : (int)wait, &c);
    if (rc != DB_OK) {
        answer_rest(b, -1, rc, rc == DB_BUSY ? "pool exhausted" : "no database connection");
        return;
    }
    if (q->mode == BATCHQ_READ) {
        read_all(b, c, deadline);
    } else {
        int more = attempt(b, c, -1, deadline);
        while (more == 1)
            more = attempt(b, c, -1, deadline);
        for (int k = 0; more == 2 && k < b->njob; k++)
            if (b->open[k])
                attempt(b, c, k, deadline);
    }
    db_release(q->db, c);
}

/* When a lane is free, gives it to the first queued job that holds none (a job given one may
 * still be queued until it wakes).  mu held. */
static void promote(batchq *q)
{
    batchq_job *j = q->head;
    while (j && j->lead)
        j = j->next;
    if (j && q->leading < q->lanes) {
        q->leading++;
        j->lead = 1;
        pthread_cond_signal(&j->cv);
    }
}

/* Gives up self's lane and passes it on.  mu held. */
static void release_lane(batchq *q, batchq_job *self)
{
    self->lead = 0;
    q->leading--;
    promote(q);
}

/* Called by a leader (job->lead set: it holds one of the lanes) with mu held: sends batches from
 * the head of the queue until one of them takes its own job (then its job is done); when another
 * leader's batch took its job first (a job promoted while queued may wake after that), sends
 * nothing, so its return never waits on a batch its job is not in.  Then frees the lane and
 * promotes the next waiting job, if any. */
static void lead(batchq *q, batchq_job *self)
{
    int lane = 0;
    while (q->busy[lane])
        lane++;
    assert(lane < q->lanes);
    q->busy[lane] = 1;
    batch *b = &q->b[lane];
    while (self->queued) {
        b->njob = 0;
        while (q->head && b->njob < q->max_jobs) {
            q->head->queued = 0;
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
            batchq_job *j = b->job[k];
            ok += j->rc == DB_OK;
            j->done = 1;
            if (j != self)
                pthread_cond_signal(&j->cv);
        }
        q->batches += (unsigned long long)b->trips;
        q->jobs += ok;
    }
    q->busy[lane] = 0;
    release_lane(q, self);
}

batchq *batchq_start(db_pool *db, enum batchq_mode mode, int max_jobs, int lanes, int wait_ms,
                     char *err, size_t errlen)
{
    assert(db && max_jobs >= 1 && max_jobs <= BATCHQ_BATCH_LIMIT && lanes >= 1 &&
           lanes <= BATCHQ_LANES_MAX);
    batchq *q = calloc(1, sizeof *q);
    if (!q) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    q->db = db;
    q->mode = mode;
    q->wait_ms = wait_ms;
    q->max_jobs = max_jobs;
    q->lanes = lanes;
    pthread_mutex_init(&q->mu, NULL);
    return q;
}

int batchq_run(batchq *q, batchq_job *job)
{
    assert(q && job && job->n >= 1 && job->n <= BATCHQ_JOB_MAX);
    pthread_cond_init(&job->cv, NULL);
    job->done = job->lead = 0;
    job->queued = 1;
    job->next = NULL;
    job->error = NULL;
    for (int i = 0; i < BATCHQ_JOB_MAX; i++)
        job->res[i] = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    if (q->leading < q->lanes) {
        q->leading++;
        job->lead = 1;
    }
    for (;;) {
        while (!job->done && !job->lead)
            pthread_cond_wait(&job->cv, &q->mu);
        if (job->done)
            break;
        lead(q, job); /* returns with job done, or in another leader's batch, lane given up */
    }
    if (job->lead) /* given a lane after another leader's batch took it: pass it on */
        release_lane(q, job);
    pthread_mutex_unlock(&q->mu);
    pthread_cond_destroy(&job->cv);
    return job->rc;
}

void batchq_stop(batchq *q, int abandoned)
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

void batchq_counts(batchq *q, unsigned long long *batches, unsigned long long *jobs)
{
    pthread_mutex_lock(&q->mu);
    *batches = q->batches;
    *jobs = q->jobs;
    pthread_mutex_unlock(&q->mu);
}
