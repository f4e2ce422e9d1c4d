/* hp_store.h - the model store: the service LOAD_MODEL and SCORE share.
 *
 * Owns: the selected scorer (hp_scorer.h, VIGIL_HOTPATH_KERNEL), the model arena built with it
 * (hp_arena.h, VIGIL_HOTPATH_MEMORY_MB), the explain arena (the same size, holding hp_shap.h's
 * explain layouts of the models LOAD_MODEL loaded that carry covers; EXPLAIN reads it) and the
 * compute pool (hp_pool.h, ncpu-1 helpers).  The
 * kernel registry (hp_kernels.c) creates exactly one before any kernel's init and hands it to
 * every kernel that asks for it (hp_kernel_env.store); it destroys it after every kernel's fini.
 * Nothing here is a file static: two stores (e.g. one per scorer in a test) coexist.
 *
 * Costs: create reserves the arena (mmap, untouched) and starts the pool's threads; the accessors
 * are O(1) and thread-safe (the fields never change after create). */
#ifndef VIGIL_HP_STORE_H
#define VIGIL_HP_STORE_H

#include <stddef.h>

#include "hp_arena.h"
#include "hp_pool.h"
#include "hp_scorer.h"

typedef struct hp_store hp_store;

/* Reserves an arena of arena_bytes for scorer's layouts and starts pool_threads helpers.
 * Before hp_ready() only (allocates, creates threads).  Returns 0 and *out, or -1 with err. */
int hp_store_create(const hp_scorer *scorer, size_t arena_bytes, unsigned pool_threads,
                    hp_store **out, char *err, size_t errlen);

/* Stops the pool, releases the arena.  s may be NULL.  No request may be running. */
void hp_store_destroy(hp_store *s);

/* Turns the arena's model_loaded/model_evicted log lines on (the worker) or off (tests). */
void hp_store_set_logging(hp_store *s, int on);

const hp_scorer *hp_store_scorer(const hp_store *s);
hp_arena *hp_store_arena(const hp_store *s);
hp_arena *hp_store_explain_arena(const hp_store *s);
hp_pool *hp_store_pool(const hp_store *s);

#endif
