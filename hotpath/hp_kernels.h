/* hp_kernels.h - the kernel registry: which function answers which wire op, with which state.
 *
 * Owns: hp_kernel (one row per op in hp_kernel_table[], hp_kernels.c), the registry instance
 * (hp_kernels: every kernel's state pointer, and the model store service LOAD_MODEL and SCORE
 * share), hp_ctx (what a handler may touch while answering), and the built-in kernels HELLO, PING
 * and STATS.  No kernel keeps state in file statics: whatever it needs comes from its init hook as
 * an opaque pointer the registry hands back to its handler, fini and stats.
 *
 * Two registries, two different swaps:
 *   - a new wire op = a handler file + one line in hp_kernel_table[] (hp_kernels.c);
 *   - a new scoring implementation (model layout + walk) for LOAD_MODEL/SCORE = one file + one
 *     line in hp_scorers.def (hp_scorer.h), selected by VIGIL_HOTPATH_KERNEL.
 *
 * Contract for a handler (hp_kernel_fn):
 *   - state is what its init hook stored (NULL without init); ctx is the slot's context;
 *   - it runs on a slot thread, concurrently with the same handler on other slots: shared state
 *     must be read-only or synchronised by the kernel;
 *   - in/in_len is the complete request payload (in_len <= cfg->max_payload, 4-byte aligned,
 *     valid until the handler returns; it may be modified in place);
 *   - it writes its answer payload to out (capacity cfg->max_payload); on overflow (out->err) the
 *     server answers WIRE_E_INTERNAL instead;
 *   - it returns a wire_status; for anything but WIRE_OK, use hp_kernel_fail() so the payload is
 *     a short UTF-8 message.  A non-OK answer keeps the connection open (the frame was sound);
 *   - it never allocates, creates threads or blocks on anything but its own compute: everything it
 *     needs was reserved before hp_ready(), by its init hook or as per-slot scratch. */
#ifndef VIGIL_HP_KERNELS_H
#define VIGIL_HP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "hp_config.h"
#include "hp_stats.h"
#include "hp_store.h"
#include "wire.h"

typedef struct hp_kernels hp_kernels; /* the registry instance (hp_kernels_create) */

/* Per-slot context, built once at start-up and reused for every request on that slot. */
typedef struct hp_ctx {
    const hp_config *cfg;
    hp_stats *stats;       /* all counters (read by STATS) */
    hp_stats_shard *shard; /* this slot's counters: the only shard this thread may add to */
    uint8_t *scratch;      /* per-slot scratch, reserved at start; contents undefined on entry */
    size_t scratch_len;    /* >= max(VIGIL_HOTPATH_SCRATCH_MB, every kernel's scratch_bytes) */
    unsigned slot;         /* 0..nslots-1 */
    unsigned nslots;       /* VIGIL_HOTPATH_MAX_CONNS: handlers that may run at once */
    unsigned ncpu;         /* online CPUs at start: size a compute pool from this, in init */
    int64_t started_ms;    /* wire_now_ms() at start-up */
    uint64_t request_id;   /* of the frame being answered */
    const hp_kernels *kernels; /* the registry answering (HELLO and STATS walk it) */
    struct hp_prio *prio;      /* live-before-bulk scheduling (hp_prio.h), shared by every slot */
    int bulk;                  /* the frame being answered carries WIRE_F_BULK */
} hp_ctx;

typedef int (*hp_kernel_fn)(void *state, hp_ctx *ctx, const uint8_t *in, uint32_t in_len,
                            wire_writer *out);

/* How a kernel adds its own counters to STATS: put(cookie, "name", value) once per counter. */
typedef void (*hp_stat_put_fn)(void *cookie, const char *name, uint64_t value);

/* What an init hook gets: the settings, the CPUs, and the services the registry created for the
 * kernels to share explicitly (today one: the model store of LOAD_MODEL and SCORE). */
typedef struct hp_kernel_env {
    const hp_config *cfg;
    unsigned ncpu;
    hp_store *store; /* never NULL: scorer VIGIL_HOTPATH_KERNEL, arena, compute pool */
} hp_kernel_env;

typedef struct hp_kernel {
    uint16_t op;      /* enum wire_op, < WIRE_OP_MAX, unique in the table */
    const char *name; /* reported by HELLO and STATS ("score") */
    const char *impl; /* which implementation answers ("v1"), reported by HELLO unless impl_of */
    hp_kernel_fn fn;
    size_t scratch_bytes; /* per-slot scratch this kernel needs (0: none) */
    /* Optional, called once before hp_ready() in table order; may allocate and start threads.
     * Stores the kernel's state in *state (handed to fn, fini, stats, impl_of).  Returns 0, or -1
     * with a message in err (start-up fails; earlier kernels' fini run). */
    int (*init)(const hp_kernel_env *env, void **state, char *err, size_t errlen);
    /* Optional, called at shutdown after every slot thread has stopped, in reverse table order. */
    void (*fini)(void *state);
    /* Optional: the kernel's own STATS counters (any thread, after init, never allocates). */
    void (*stats)(void *state, hp_stat_put_fn put, void *cookie);
    /* Optional: the impl HELLO reports when it depends on the state (SCORE: the scorer's name);
     * the string must live as long as the state. */
    const char *(*impl_of)(const void *state);
} hp_kernel;

/* Validates the table (ops in range and unique), creates the model store (scorer cfg->kernel,
 * arena cfg->memory_bytes, ncpu-1 pool threads) and runs every init hook.  Returns 0 and *out,
 * or -1 with a message in err (everything created is undone).  Before hp_ready() only. */
int hp_kernels_create(const hp_config *cfg, unsigned ncpu, hp_kernels **out, char *err,
                      size_t errlen);

/* Runs every fini hook (reverse order), then destroys the store.  ks may be NULL.  After every
 * slot thread has stopped. */
void hp_kernels_destroy(hp_kernels *ks);

/* The kernel for op (and its state in *state), or NULL.  O(1), any thread. */
const hp_kernel *hp_kernels_find(const hp_kernels *ks, unsigned op, void **state);

/* The scorer answering LOAD_MODEL/SCORE (for log lines).  Any thread. */
const hp_scorer *hp_kernels_scorer(const hp_kernels *ks);

/* The largest scratch_bytes of any registered kernel. */
size_t hp_kernels_scratch_bytes(void);

/* Replaces whatever out holds with msg (truncated to fit) and returns status; for handlers'
 * error paths:  return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, "rows do not match features"); */
int hp_kernel_fail(wire_writer *out, int status, const char *msg);

#endif
