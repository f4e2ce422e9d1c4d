/* hp_stats.h - the worker's counters, sharded so the hot path never contends on a cache line.
 *
 * Owns: the counter set reported by STATS, and the bridge to the optional allocation probe.
 * Each connection slot owns one shard (and the acceptor one more); a shard has exactly one writer
 * thread, so an increment is a relaxed load + store, not a locked read-modify-write.  Readers
 * (the STATS kernel, any thread) sum relaxed loads across shards: each value is exact, the set is
 * not a single atomic snapshot.  Costs: add O(1); totals O(shards). */
#ifndef VIGIL_HP_STATS_H
#define VIGIL_HP_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "wire.h"

enum hp_counter {
    HP_C_FRAMES_IN,       /* complete request frames read */
    HP_C_FRAMES_OUT,      /* response frames written (including error frames) */
    HP_C_BYTES_IN,        /* header + payload bytes of complete request frames */
    HP_C_BYTES_OUT,       /* bytes of response frames written */
    HP_C_ERR_BAD_FRAME,   /* bad magic */
    HP_C_ERR_BAD_VERSION, /* protocol version we do not speak */
    HP_C_ERR_UNKNOWN_OP,  /* op out of range or without a kernel */
    HP_C_ERR_TOO_LARGE,   /* payload_len over VIGIL_HOTPATH_MAX_FRAME_MB */
    HP_C_ERR_BAD_PAYLOAD, /* a kernel rejected the payload */
    HP_C_ERR_TRUNCATED,   /* peer closed or failed in the middle of a frame */
    HP_C_ERR_IO_TIMEOUT,  /* rest of a frame did not arrive within VIGIL_HOTPATH_IO_TIMEOUT_MS */
    HP_C_ERR_WRITE,       /* a response could not be written */
    HP_C_ERR_INTERNAL,    /* a kernel failed (or its answer did not fit the output buffer) */
    HP_C_ERR_ACCEPT,      /* accept() failed */
    HP_C_IDLE_CLOSED,     /* connections closed after VIGIL_HOTPATH_IDLE_TIMEOUT_S of silence */
    HP_C_CONNS_ACCEPTED,  /* connections handed to a slot */
    HP_C_CONNS_REJECTED,  /* connections answered WIRE_E_BUSY (all slots busy) */
    HP_C_CONNS_CLOSED,    /* slot connections closed, for any reason */
    HP_C_MAX
};

typedef struct hp_stats_shard {
    _Atomic uint64_t c[HP_C_MAX];
    _Atomic uint64_t op_calls[WIRE_OP_MAX];
    _Atomic uint64_t op_ns[WIRE_OP_MAX]; /* wall time inside the kernel function */
} __attribute__((aligned(64))) hp_stats_shard;

typedef struct hp_stats {
    hp_stats_shard *shards; /* nshards entries, reserved at start */
    unsigned nshards;
} hp_stats;

/* Reserves nshards zeroed shards.  Returns 0 or -1 (errno set).  Before hp_ready() only. */
int hp_stats_init(hp_stats *st, unsigned nshards);
void hp_stats_free(hp_stats *st);

/* Single-writer increment: only the thread owning shard s may call it. */
static inline void hp_stats_add(hp_stats_shard *s, enum hp_counter c, uint64_t v)
{
    atomic_store_explicit(&s->c[c], atomic_load_explicit(&s->c[c], memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static inline void hp_stats_op(hp_stats_shard *s, unsigned op, uint64_t ns)
{
    atomic_store_explicit(&s->op_calls[op],
                          atomic_load_explicit(&s->op_calls[op], memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&s->op_ns[op],
                          atomic_load_explicit(&s->op_ns[op], memory_order_relaxed) + ns,
                          memory_order_relaxed);
}

/* Sums over all shards.  Any thread. */
uint64_t hp_stats_total(const hp_stats *st, enum hp_counter c);
uint64_t hp_stats_op_calls(const hp_stats *st, unsigned op);
uint64_t hp_stats_op_ns(const hp_stats *st, unsigned op);
/* STATS name of a counter ("frames_in", ...).  Static string. */
const char *hp_counter_name(enum hp_counter c);

/* ---- allocation probe (tests/tools/alloccount.so, loaded with LD_PRELOAD) ---------------------
 * The worker never links the probe; it declares the probe's two entry points weak, so they are
 * NULL unless a preloaded library defines them (this relies on the default -z
 * dynamic-undefined-weak of GNU ld for PIE and non-PIE executables, which keeps an undefined weak
 * symbol in the dynamic symbol table with a GLOB_DAT relocation). */
void hp_alloc_probe_mark_ready(void); /* tells the probe to start counting, if present */
/* 1 once hp_alloc_probe_mark_ready() ran (the process passed hp_ready()), else 0.  The process'
 * phase is process-wide by nature; it backs the HP_ASSERT(!hp_after_ready()) checks of the
 * "before hp_ready() only" functions.  Any thread. */
int hp_after_ready(void);
int hp_alloc_probe_present(void);              /* 1 if the probe is loaded */
unsigned long long hp_alloc_probe_count(void); /* calls counted since ready; 0 without probe */

#endif
