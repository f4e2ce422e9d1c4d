/* hp_prio.h - live frames before bulk ones: the worker's one scheduling rule.
 *
 * Owns: a count of the live frames (requests without WIRE_F_BULK) being served, and the condition
 * variable a bulk frame waits on while that count is not zero.  A bulk request (a backtest batch)
 * is scored in blocks of HP_BULK_BLOCK_ROWS rows; before each block it calls hp_prio_yield, which
 * returns at once when no live frame is in the worker and otherwise waits until the last one has
 * been answered (each wait bounded, so bulk work is slowed, never starved).  A live frame thus
 * waits for at most one block of a bulk request (plus the operating system's scheduling), however
 * large the batch is.  Costs: a live frame pays two atomic operations, plus a mutex and a broadcast
 * only when a bulk frame is waiting; a yield with no live frame is one atomic load.
 * Never allocates after hp_prio_init; thread-safe. */
#ifndef VIGIL_HP_PRIO_H
#define VIGIL_HP_PRIO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* Rows of a bulk SCORE section scored between two yields (~0.4-0.9 ms on a 1000-tree model). */
#define HP_BULK_BLOCK_ROWS 256u
/* The longest one yield waits for live frames to drain, in milliseconds. */
#define HP_BULK_MAX_WAIT_MS 20

typedef struct hp_prio {
    atomic_uint live;     /* live frames between payload read and answer sent */
    atomic_uint waiters;  /* bulk frames waiting in hp_prio_yield */
    atomic_ullong yields; /* waits that found live frames (STATS: bulk_yields) */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast when live drops to 0 with waiters; CLOCK_MONOTONIC */
} hp_prio;

/* Before hp_ready (initialises a mutex and a condition variable).  Returns 0 or -1. */
int hp_prio_init(hp_prio *p);
void hp_prio_destroy(hp_prio *p);

/* A live frame starts / has been answered.  Every begin is matched by one end. */
void hp_prio_live_begin(hp_prio *p);
void hp_prio_live_end(hp_prio *p);

/* Called by a bulk frame between blocks: waits while live frames are being served, at most
 * HP_BULK_MAX_WAIT_MS.  p may be NULL (no wait). */
void hp_prio_yield(hp_prio *p);

#endif
