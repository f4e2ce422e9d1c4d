/* hp_stats.c - sharded counters and the allocation-probe bridge.  See hp_stats.h. */
#include "hp_stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Provided by tests/tools/alloccount.so when preloaded; NULL otherwise. */
void vigil_alloc_mark_ready(void) __attribute__((weak));
unsigned long long vigil_alloc_calls_after_ready(void) __attribute__((weak));

int hp_stats_init(hp_stats *st, unsigned nshards)
{
    void *p = NULL;
    int rc = posix_memalign(&p, 64, (size_t)nshards * sizeof(hp_stats_shard));
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    memset(p, 0, (size_t)nshards * sizeof(hp_stats_shard));
    st->shards = p;
    st->nshards = nshards;
    return 0;
}

void hp_stats_free(hp_stats *st)
{
    free(st->shards);
    st->shards = NULL;
    st->nshards = 0;
}

uint64_t hp_stats_total(const hp_stats *st, enum hp_counter c)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < st->nshards; i++)
        sum += atomic_load_explicit(&st->shards[i].c[c], memory_order_relaxed);
    return sum;
}

uint64_t hp_stats_op_calls(const hp_stats *st, unsigned op)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < st->nshards; i++)
        sum += atomic_load_explicit(&st->shards[i].op_calls[op], memory_order_relaxed);
    return sum;
}

uint64_t hp_stats_op_ns(const hp_stats *st, unsigned op)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < st->nshards; i++)
        sum += atomic_load_explicit(&st->shards[i].op_ns[op], memory_order_relaxed);
    return sum;
}

const char *hp_counter_name(enum hp_counter c)
{
    static const char *const names[HP_C_MAX] = {
        [HP_C_FRAMES_IN] = "frames_in",
        [HP_C_FRAMES_OUT] = "frames_out",
        [HP_C_BYTES_IN] = "bytes_in",
        [HP_C_BYTES_OUT] = "bytes_out",
        [HP_C_ERR_BAD_FRAME] = "errors_bad_frame",
        [HP_C_ERR_BAD_VERSION] = "errors_bad_version",
        [HP_C_ERR_UNKNOWN_OP] = "errors_unknown_op",
        [HP_C_ERR_TOO_LARGE] = "errors_too_large",
        [HP_C_ERR_BAD_PAYLOAD] = "errors_bad_payload",
        [HP_C_ERR_TRUNCATED] = "errors_truncated",
        [HP_C_ERR_IO_TIMEOUT] = "errors_io_timeout",
        [HP_C_ERR_WRITE] = "errors_write",
        [HP_C_ERR_INTERNAL] = "errors_internal",
        [HP_C_ERR_ACCEPT] = "errors_accept",
        [HP_C_IDLE_CLOSED] = "idle_closed",
        [HP_C_CONNS_ACCEPTED] = "conns_accepted",
        [HP_C_CONNS_REJECTED] = "conns_rejected",
        [HP_C_CONNS_CLOSED] = "conns_closed",
    };
    return (unsigned)c < HP_C_MAX && names[c] ? names[c] : "unknown";
}

/* Set once by hp_alloc_probe_mark_ready (the acceptor thread, at hp_ready), read by HP_ASSERTs. */
static atomic_int after_ready;

int hp_after_ready(void)
{
    return atomic_load_explicit(&after_ready, memory_order_relaxed);
}

void hp_alloc_probe_mark_ready(void)
{
    atomic_store_explicit(&after_ready, 1, memory_order_relaxed);
    if (vigil_alloc_mark_ready)
        vigil_alloc_mark_ready();
}

int hp_alloc_probe_present(void)
{
    return vigil_alloc_calls_after_ready != NULL;
}

unsigned long long hp_alloc_probe_count(void)
{
    return vigil_alloc_calls_after_ready ? vigil_alloc_calls_after_ready() : 0;
}
