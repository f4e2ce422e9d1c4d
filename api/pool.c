/* pool.c - slot hand-out with a bounded wait.  See pool.h. */
#include "pool.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "clock.h"

int pool_init(pool_slots *p, int size)
{
    assert(size > 0);
    p->in_use = calloc((size_t)size, 1);
    if (!p->in_use)
        return -1;
    p->size = size;
    p->waits = 0;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    return 0;
}

void pool_fini(pool_slots *p)
{
    if (!p->in_use)
        return;
    for (int i = 0; i < p->size; i++)
        assert(!p->in_use[i]);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->in_use);
    p->in_use = NULL;
}

/* A free slot, open ones first, or -1.  Caller holds p->mu. */
static int pick(const pool_slots *p, pool_open_fn is_open, const void *ctx)
{
    int empty = -1;
    for (int i = 0; i < p->size; i++) {
        if (p->in_use[i])
            continue;
        if (is_open(ctx, i))
            return i;
        if (empty < 0)
            empty = i;
    }
    return empty;
}

int pool_take(pool_slots *p, int64_t until_ms, pool_open_fn is_open, const void *ctx)
{
    /* clock_abs_timespec never yields a negative tv_nsec for a passed deadline: timedwait would
     * answer EINVAL without ever timing out, and this loop would spin holding the mutex that every
     * give needs. */
    struct timespec ts = clock_abs_timespec(until_ms);
    int i, waited = 0;
    pthread_mutex_lock(&p->mu);
    while ((i = pick(p, is_open, ctx)) < 0) {
        if (!waited) {
            p->waits++;
            waited = 1;
        }
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT) {
            i = pick(p, is_open, ctx);
            break;
        }
    }
    if (i >= 0)
        p->in_use[i] = 1;
    pthread_mutex_unlock(&p->mu);
    return i;
}

void pool_give(pool_slots *p, int i)
{
    assert(i >= 0 && i < p->size);
    pthread_mutex_lock(&p->mu);
    assert(p->in_use[i]);
    p->in_use[i] = 0;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void pool_counts(pool_slots *p, pool_open_fn is_open, const void *ctx, int *in_use, int *open,
                 unsigned long long *waits)
{
    int u = 0, o = 0;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->size; i++) {
        u += p->in_use[i];
        o += is_open(ctx, i) != 0;
    }
    *waits = p->waits;
    pthread_mutex_unlock(&p->mu);
    *in_use = u;
    *open = o;
}
