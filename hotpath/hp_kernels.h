/* hp_kernels.h - the kernel registry: which function answers which wire op.
 *
 * Owns: hp_kernel (one row per op), hp_ctx (what a kernel may touch while answering), the
 * registry lookup, and the built-in kernels HELLO, PING and STATS.
 *
 * Adding or swapping a hot path = one new file (hotpath/hp_k_<name>.c with the handler and, if it
 * needs memory or threads, an init hook) + one line in hp_kernel_table[] in hp_kernels.c.
 *
 * Contract for a handler (hp_kernel_fn):
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
#include "wire.h"

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
} hp_ctx;

typedef int (*hp_kernel_fn)(hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out);

/* How a kernel adds its own counters to STATS: put(cookie, "name", value) once per counter. */
typedef void (*hp_stat_put_fn)(void *cookie, const char *name, uint64_t value);

typedef struct hp_kernel {
    uint16_t op;      /* enum wire_op, < WIRE_OP_MAX, unique in the table */
    const char *name; /* reported by HELLO and STATS ("score") */
    const char *impl; /* which implementation answers ("blocked8"), reported by HELLO */
    hp_kernel_fn fn;
    size_t scratch_bytes; /* per-slot scratch this kernel needs (0: none) */
    /* Optional, called once before hp_ready(), may allocate and start threads (e.g. a model arena
     * or a compute pool of ncpu threads).  Returns 0, or -1 with a message in err (start-up
     * fails). */
    int (*init)(const hp_config *cfg, unsigned ncpu, char *err, size_t errlen);
    /* Optional, called at shutdown after every slot thread has stopped. */
    void (*fini)(void);
    /* Optional: the kernel's own STATS counters (any thread, after init, never allocates). */
    void (*stats)(hp_stat_put_fn put, void *cookie);
} hp_kernel;

/* Validates the table (ops in range and unique) and runs every init hook.  Returns 0, or -1 with a
 * message in err (earlier inits are undone).  Before hp_ready() only. */
int hp_kernels_init(const hp_config *cfg, unsigned ncpu, char *err, size_t errlen);
void hp_kernels_fini(void);

/* The kernel for op, or NULL.  O(1), any thread, after hp_kernels_init. */
const hp_kernel *hp_kernel_find(unsigned op);

/* The largest scratch_bytes of any registered kernel. */
size_t hp_kernels_scratch_bytes(void);

/* Replaces whatever out holds with msg (truncated to fit) and returns status; for handlers'
 * error paths:  return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, "rows do not match features"); */
int hp_kernel_fail(wire_writer *out, int status, const char *msg);

#endif
