/* hp_prio.c - live frames before bulk ones.  See hp_prio.h. */
#include "hp_prio.h"

#include <time.h>

int hp_prio_init(hp_prio *p)
{
    atomic_init(&p->live, 0);
    atomic_init(&p->waiters, 0);
    atomic_init(&p->yields, 0);
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return -1;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        pthread_cond_destroy(&p->cv);
        return -1;
    }
    return 0;
}

void hp_prio_destroy(hp_prio *p)
{
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

void hp_prio_live_begin(hp_prio *p)
{
    atomic_fetch_add(&p->live, 1);
}

void hp_prio_live_end(hp_prio *p)
{
    /* The last live frame out wakes the bulk frames; taking mu orders the broadcast after a
     * waiter's check of `live` (no lost wake-up). */
    if (atomic_fetch_sub(&p->live, 1) == 1 && atomic_load(&p->waiters) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

void hp_prio_yield(hp_prio *p)
{
    if (p == NULL || atomic_load_explicit(&p->live, memory_order_acquire) == 0)
        return;
    atomic_fetch_add_explicit(&p->yields, 1, memory_order_relaxed);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (long)HP_BULK_MAX_WAIT_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->waiters, 1); /* seq_cst: pairs with live_end's store-load */
    while (atomic_load(&p->live) > 0)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &until) != 0)
            break; /* ETIMEDOUT: bulk work is slowed, never starved */
    atomic_fetch_sub(&p->waiters, 1);
    pthread_mutex_unlock(&p->mu);
}
