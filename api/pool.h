/* pool.h - the one pool-wait implementation: a fixed set of slots handed out one thread at a
 * time, with a bounded wait for a free one.  db.c (PostgreSQL connections) and hpclient.c (worker
 * sockets) keep their connections in arrays indexed by slot and use this for who holds which.
 *
 * Owns: the mutex, the condition variable (on CLOCK_MONOTONIC, so a wall-clock step never
 * stretches a wait), the in-use flags and the count of waits.  Costs: take/give O(size) under one
 * mutex; a wait never passes until_ms.  Thread-safe. */
#ifndef VIGIL_POOL_H
#define VIGIL_POOL_H

#include <pthread.h>
#include <stdint.h>

/* Whether slot i holds an open connection; called with the pool's mutex held, so it must only
 * read (and must not call back into the pool). */
typedef int (*pool_open_fn)(const void *ctx, int i);

typedef struct pool_slots {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int size;
    unsigned char *in_use; /* size flags, guarded by mu */
    unsigned long long waits;
} pool_slots;

/* size free slots.  Returns 0, or -1 on OOM (nothing to fini then). */
int pool_init(pool_slots *p, int size);
/* No slot may be taken. */
void pool_fini(pool_slots *p);

/* Takes a free slot, preferring one where is_open says a connection is already open, waiting until
 * until_ms (absolute, clock_now_ms) for one to be given back.  Returns the slot index, or -1 when
 * none was free in time.  The first wait of a call counts in waits. */
int pool_take(pool_slots *p, int64_t until_ms, pool_open_fn is_open, const void *ctx);
/* Gives slot i back (it must be taken) and wakes one waiter. */
void pool_give(pool_slots *p, int i);

/* Slots taken, slots with an open connection, and waits so far, read under the mutex. */
void pool_counts(pool_slots *p, pool_open_fn is_open, const void *ctx, int *in_use, int *open,
                 unsigned long long *waits);

#endif
