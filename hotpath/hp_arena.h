/* hp_arena.h - the worker's model store: one fixed region (VIGIL_HOTPATH_MEMORY_MB) reserved at
 * start-up, holding the layouts of the resident models as the arena's scorer builds them
 * (hp_scorer.h: bytes/build/release; e.g. hp_forest.h), found by their 48-byte wire key (UUID +
 * SHA-256 of the source).  The arena knows nothing of a layout beyond its size and its handle.
 *
 * Owns: the region, a fixed-capacity index (HP_ARENA_MAX_MODELS entries, open-addressing hash),
 * per-model reference counts, LRU eviction, and the load/evict counters.
 *
 * Concurrency: one mutex guards the index and is held only for O(1) lookups (scoring) or O(models)
 * bookkeeping (loading); never while a layout is built or scored.  A scorer pins each model it
 * uses (hp_arena_acquire) and unpins it afterwards; a pinned model is never evicted or moved, so
 * slot threads score in parallel while another slot loads.  A load reserves its space under the
 * mutex, builds the layout outside it, then publishes it; until then scorers do not see it.
 *
 * Placement: first fit in address order among the live models' gaps; when nothing fits, evict the
 * least recently used unpinned model and retry; when only pinned (or still-loading) models remain
 * in the way, wait (bounded, HP_ARENA_WAIT_MS) for one to be released.
 *
 * Costs: acquire/release O(1) expected (hash); load O(models) + O(blob) for the build.  Nothing
 * here allocates after hp_arena_create. */
#ifndef VIGIL_HP_ARENA_H
#define VIGIL_HP_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "hp_scorer.h"
#include "model.h"
#include "wire.h"

#define HP_ARENA_MAX_MODELS 4096u /* resident models at most (more evicts the LRU one) */
#define HP_ARENA_WAIT_MS 2000     /* longest a load waits for pinned models to be released */

typedef struct hp_arena hp_arena;

/* A resident model as a scorer sees it: its layout (what scorer->build returned) and the facts the
 * SCORE handler checks before calling scorer->score, taken from the validated blob at load. */
typedef struct hp_model {
    const void *layout;
    uint32_t num_feature;
    int f64;          /* a LightGBM model: SCORE takes f64 rows, scored by the scorer's score64 */
    uint32_t nout[2]; /* outputs per row: [0] predictions, [1] margins (model_outputs_per_row) */
} hp_model;

enum hp_arena_status {
    HP_ARENA_LOADED = 0,       /* built and published */
    HP_ARENA_RESIDENT = 1,     /* the key was already resident (or being loaded by another slot) */
    HP_ARENA_TOO_BIG = 2,      /* larger than the whole region: can never be loaded */
    HP_ARENA_BUSY = 3,         /* would fit, but pinned models occupy the space beyond the wait */
    HP_ARENA_UNSUPPORTED = 4,  /* the scorer cannot hold this model (its bytes() returned 0) */
    HP_ARENA_BUILD_FAILED = 5, /* the scorer's build() returned NULL (a bug): nothing was kept */
};

typedef struct hp_arena_stats {
    uint64_t bytes_total, bytes_used, models_resident;
    uint64_t loads, load_hits, evictions, load_refused;
} hp_arena_stats;

/* Reserves a region of `bytes` bytes (mmap, committed but not touched) and the index; every model
 * is built and scored with scorer (non-NULL, kept: a constant registry entry).  Before hp_ready()
 * only.  Returns the arena, or NULL with err. */
hp_arena *hp_arena_create(size_t bytes, const hp_scorer *scorer, char *err, size_t errlen);

/* The scorer given to hp_arena_create.  Any thread. */
const hp_scorer *hp_arena_scorer(const hp_arena *a);

/* Turns the "model_loaded"/"model_evicted" log lines on (the worker) or off (the default, for
 * tests that churn thousands of models).  Call before the arena is shared. */
void hp_arena_set_logging(hp_arena *a, int on);
/* Releases every resident layout (scorer->release) and frees the arena.  a may be NULL; no model
 * may be pinned and no other thread may use it any more. */
void hp_arena_destroy(hp_arena *a);

/* 1 if key is resident (published), else 0.  A hit counts as a load hit and as a use for the LRU
 * order; it does not pin.  Thread-safe, O(1). */
int hp_arena_touch(hp_arena *a, const uint8_t key[WIRE_MODEL_KEY_SIZE]);

/* Loads the validated model v under key: reserves ALIGN(scorer->bytes(v)) bytes and builds the
 * layout there with scorer->build.  Returns an hp_arena_status; for anything but LOADED and
 * RESIDENT err holds a one-line reason.  May block: up to HP_ARENA_WAIT_MS for pinned models, and
 * while another slot finishes loading the same key.  Thread-safe, never allocates. */
int hp_arena_load(hp_arena *a, const uint8_t key[WIRE_MODEL_KEY_SIZE], const model_view *v,
                  char *err, size_t errlen);

/* Pins the models of keys[0..n) all at once.  On success returns -1 and fills models[i] (valid
 * until released) and handles[i] (for hp_arena_release).  If some key is not resident, pins
 * nothing and returns the index of the first such key.  Thread-safe, O(n), never blocks but on
 * the mutex. */
int hp_arena_acquire(hp_arena *a, const uint8_t *const *keys, unsigned n, const hp_model **models,
                     uint32_t *handles);

/* Unpins what hp_arena_acquire pinned.  Thread-safe. */
void hp_arena_release(hp_arena *a, const uint32_t *handles, unsigned n);

/* A consistent snapshot of the counters.  Thread-safe. */
void hp_arena_get_stats(hp_arena *a, hp_arena_stats *st);

#endif
