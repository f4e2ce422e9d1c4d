/* hp_scorer.h - the scoring implementations ("kernels") the worker can run, and their registry.
 *
 * A scorer turns a validated model blob (common/model.h) into its own in-memory layout inside
 * memory the model arena hands it (hp_arena.h), and scores rows on that layout, bit-identical to
 * common/refeval.c.  Which one runs is chosen once at start-up (VIGIL_HOTPATH_KERNEL, default:
 * the first registered, the tuned one); HELLO reports its name as the impl of LOAD_MODEL and
 * SCORE, STATS as kernel_<name> = 1, the "start"/"ready" log lines as "kernel".
 *
 * Registering one = ONE new file + ONE line:
 *   hotpath/hp_sc_<name>.c   defines  const hp_scorer hp_scorer_<name> = {"<name>", ...};
 *   hotpath/hp_scorers.def   gets     HP_SCORER(<name>)
 * (the Makefile compiles every .c file of hotpath/ by wildcard; hp_scorer.c declares and lists
 * every entry of hp_scorers.def, and every test that proves exactness iterates over
 * hp_scorer_at(0..count-1)). hotpath/hp_sc_plain.c is the worked example; hotpath/README.md walks
 * through it.
 *
 * The contract of each member is written next to it below.  Common to all: no member may
 * allocate, create threads, take locks others hold for long, or keep state outside the layout
 * (there is one process, many slot threads, and models come and go); a layout is read-only once
 * built, so `score` runs on many slot threads at once on the same layout.
 *
 * Costs: the registry is a constant array; lookups are O(scorers). */
#ifndef VIGIL_HP_SCORER_H
#define VIGIL_HP_SCORER_H

#include <stddef.h>
#include <stdint.h>

#include "hp_pool.h"
#include "model.h"

/* Memory handed to build() starts on this boundary, and the arena rounds every reservation up to
 * a multiple of it. */
#define HP_LAYOUT_ALIGN 64u

/* The default min_parallel_work the SCORE kernel passes: below ~64 rows of a 1000-tree model
 * (well under a millisecond of walking) waking a helper costs about as much as it saves. */
#define HP_PARALLEL_MIN_WORK 65536u

typedef struct hp_scorer {
    /* Lower-case [a-z0-9_], unique, <= 31 bytes: the value of VIGIL_HOTPATH_KERNEL, HELLO's impl
     * for LOAD_MODEL and SCORE, the STATS counter kernel_<name>, the log field "kernel". */
    const char *name;

    /* Bytes build() needs for the validated model v (model_validate returned 0 for it), or 0
     * when this implementation cannot hold such a model (LOAD_MODEL then answers BAD_PAYLOAD
     * "the <name> kernel cannot score this model").  Must not depend on anything but v.
     * Runs on a slot thread, outside every lock; O(blob) at most; never allocates. */
    size_t (*bytes)(const model_view *v);

    /* Builds the layout for v into dst[0..len): dst is HP_LAYOUT_ALIGN-aligned, len >= bytes(v)
     * (rounded up), the memory is the arena's and its contents are undefined on entry.  Returns
     * the layout (any pointer into dst the scorer likes; the arena keeps it as an opaque handle
     * and hands it back to score/release), or NULL if it could not (the load then fails with
     * INTERNAL; only a bug gets here, since bytes() said it fits).  The layout must point only
     * into dst: the blob in v is gone once LOAD_MODEL returns.  Runs outside every lock, on a
     * slot thread, concurrently with other builds into other memory; never allocates. */
    const void *(*build)(const model_view *v, void *dst, size_t len);

    /* Scores rows[0..nrows) (row-major nrows x num_feature floats, NaN = missing) into out
     * (nrows x model_outputs_per_row(v, output_margin) floats), bit-identical to
     * refeval_predict(v, ...) on the blob the layout was built from.  pool (may be NULL) offers
     * the compute pool's helpers (hp_pool_run): a scorer may split a batch over it when nrows x
     * trees >= min_parallel_work, or ignore both.  The SCORE handler has checked ncols ==
     * num_feature and that out fits.  Never fails, never allocates; thread-safe (the layout is
     * read-only). */
    void (*score)(const void *layout, const float *rows, size_t nrows, int output_margin,
                  float *out, hp_pool *pool, uint64_t min_parallel_work);

    /* Optional: the same for a LightGBM model (model_view format MODEL_FORMAT_LGBM): rows and
     * outputs are doubles, bit-identical to refeval_lgbm_predict.  A scorer without it (NULL)
     * never holds such a model: the arena answers LOAD_MODEL with BAD_PAYLOAD "cannot score". */
    void (*score64)(const void *layout, const double *rows, size_t nrows, int output_margin,
                    double *out, hp_pool *pool, uint64_t min_parallel_work);

    /* Optional (NULL: nothing to do): called once when the model is evicted or the arena is
     * destroyed, before its memory is reused, with no scorer using it.  Under the arena mutex:
     * O(1), never blocks, never allocates. */
    void (*release)(const void *layout);
} hp_scorer;

/* Number of registered scorers (>= 1) and the i-th, in hp_scorers.def order (0 = the default).
 * Any thread, any time. */
unsigned hp_scorer_count(void);
const hp_scorer *hp_scorer_at(unsigned i);

/* The scorer called name, or NULL.  Any thread, any time. */
const hp_scorer *hp_scorer_find(const char *name);

/* Writes the registered names as "a, b, c" into buf (for messages).  Returns buf. */
char *hp_scorer_names(char *buf, size_t len);

#endif
