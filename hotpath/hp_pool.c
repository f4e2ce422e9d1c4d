/* hp_pool.c - compute pool.  See hp_pool.h.
 *
 * Protocol: the submitter wins `busy` (an atomic flag), publishes its job under mu with a new
 * generation number and broadcasts work_cv.  Helpers that see the new generation take a reference
 * on the job (job->active, under mu) and then claim parts with an atomic counter, exactly like the
 * submitter.  When the submitter runs out of parts it unpublishes the job (cur = NULL, so no late
 * helper can find it) and waits on done_cv until every part has finished and no helper holds a
 * reference: the job lives on the submitter's stack and must not be touched after that. */
#include "hp_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hp_assert.h"
#include "hp_stats.h"

typedef struct hp_job {
    hp_pool_fn fn;
    void *arg;
    unsigned nparts;
    atomic_uint next; /* next part to claim */
    atomic_uint done; /* parts finished */
    unsigned active;  /* helpers holding a reference; guarded by pool->mu */
} hp_job;

struct hp_pool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* helpers wait here for a new generation */
    pthread_cond_t done_cv; /* the submitter waits here for its job to drain */
    hp_job *cur;            /* guarded by mu */
    unsigned long gen;      /* guarded by mu */
    int stopping;           /* guarded by mu */
    atomic_flag busy;
    unsigned nthreads;
    unsigned started;
    pthread_t threads[];
};

/* Claims and runs parts until none is left.  Returns how many this thread ran. */
static unsigned run_parts(hp_job *j)
{
    unsigned ran = 0;
    for (;;) {
        unsigned part = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (part >= j->nparts)
            return ran;
        j->fn(j->arg, part);
        atomic_fetch_add_explicit(&j->done, 1, memory_order_release);
        ran++;
    }
}

static void *helper_main(void *arg)
{
    hp_pool *p = arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->stopping)
            pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->stopping)
            break;
        seen = p->gen;
        hp_job *j = p->cur;
        if (j == NULL)
            continue; /* woke after that job was already drained */
        j->active++;
        pthread_mutex_unlock(&p->mu);
        unsigned ran = run_parts(j);
        pthread_mutex_lock(&p->mu);
        j->active--;
        if (ran > 0 || j->active == 0)
            pthread_cond_broadcast(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

hp_pool *hp_pool_create(unsigned nthreads, char *err, size_t errlen)
{
    HP_ASSERT(!hp_after_ready()); /* allocates and creates threads */
    hp_pool *p = calloc(1, sizeof *p + (size_t)nthreads * sizeof(pthread_t));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory for the compute pool");
        return NULL;
    }
    atomic_flag_clear(&p->busy);
    p->nthreads = nthreads;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        snprintf(err, errlen, "compute pool: pthread_mutex_init failed");
        return NULL;
    }
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    for (unsigned i = 0; i < nthreads; i++) {
        int rc = pthread_create(&p->threads[i], NULL, helper_main, p);
        if (rc != 0) {
            snprintf(err, errlen, "compute pool: pthread_create: %s", strerror(rc));
            hp_pool_destroy(p);
            return NULL;
        }
        p->started++;
        char name[16];
        snprintf(name, sizeof name, "hp-pool-%u", i & 0xffffu);
        pthread_setname_np(p->threads[i], name);
    }
    return p;
}

void hp_pool_destroy(hp_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->started; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

unsigned hp_pool_threads(const hp_pool *p)
{
    return p ? p->nthreads : 0;
}

void hp_pool_run(hp_pool *p, hp_pool_fn fn, void *arg, unsigned nparts)
{
    HP_ASSERT(fn != NULL);
    if (p == NULL || p->nthreads == 0 || nparts < 2 ||
        atomic_flag_test_and_set_explicit(&p->busy, memory_order_acquire)) {
        for (unsigned i = 0; i < nparts; i++)
            fn(arg, i);
        return;
    }
    hp_job j = {.fn = fn, .arg = arg, .nparts = nparts, .active = 0};
    atomic_init(&j.next, 0);
    atomic_init(&j.done, 0);
    pthread_mutex_lock(&p->mu);
    p->cur = &j;
    p->gen++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);

    run_parts(&j);

    pthread_mutex_lock(&p->mu);
    p->cur = NULL;
    while (atomic_load_explicit(&j.done, memory_order_acquire) < nparts || j.active > 0)
        pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    atomic_flag_clear_explicit(&p->busy, memory_order_release);
}
