/* hp_pool.h - the worker's compute pool: ncpu-1 threads, created once before hp_ready(), that help
 * a slot thread with one large job at a time.
 *
 * Owns: the helper threads, one mutex and two condition variables.  A job is a function called
 * once per part index 0..nparts-1; the submitting thread takes parts too, so a job always
 * finishes even if no helper wakes up.  Only one job runs on the pool at a time: a second
 * submitter that finds it busy runs all its parts itself (with 2 cores and many slots, queueing
 * behind another slot's batch would only add latency).  Costs: hp_pool_run O(nparts) plus one
 * condition-variable broadcast and wait; never allocates, never creates threads. */
#ifndef VIGIL_HP_POOL_H
#define VIGIL_HP_POOL_H

#include <stddef.h>

typedef struct hp_pool hp_pool;

typedef void (*hp_pool_fn)(void *arg, unsigned part);

/* Starts nthreads helper threads (0 is valid: every job then runs on its submitter).  Before
 * hp_ready() only (allocates, creates threads).  Returns the pool, or NULL with err. */
hp_pool *hp_pool_create(unsigned nthreads, char *err, size_t errlen);

/* Stops and joins the helpers, frees the pool.  No job may be running.  p may be NULL. */
void hp_pool_destroy(hp_pool *p);

/* Helpers (not counting the submitter).  p may be NULL (0). */
unsigned hp_pool_threads(const hp_pool *p);

/* Runs fn(arg, part) for every part in 0..nparts-1, spread over the calling thread and the idle
 * helpers; returns when all parts have returned.  p may be NULL (all parts run here).  Parts run
 * concurrently and in any order: fn must only write what its part owns.  Thread-safe; never
 * allocates; blocks only on its own job's parts. */
void hp_pool_run(hp_pool *p, hp_pool_fn fn, void *arg, unsigned nparts);

#endif
