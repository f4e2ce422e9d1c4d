/* hp_kernels.c - the kernel registry and the built-in kernels HELLO, PING and STATS.
 * See hp_kernels.h for the handler contract.  Costs: lookup O(1) through by_op[]; HELLO O(kernels);
 * PING O(payload); STATS O(counters x slots). */
#include "hp_kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hp_assert.h"
#include "hp_k_explain.h"
#include "hp_k_score.h"
#include "hp_prio.h"
#include "hp_stats.h"

static int hp_k_hello(void *state, hp_ctx *ctx, const uint8_t *in, uint32_t in_len,
                      wire_writer *out);
static int hp_k_ping(void *state, hp_ctx *ctx, const uint8_t *in, uint32_t in_len,
                     wire_writer *out);
static int hp_k_stats(void *state, hp_ctx *ctx, const uint8_t *in, uint32_t in_len,
                      wire_writer *out);

/* The registry.  One line per op.  LOAD_MODEL and SCORE share the model store: both inits take
 * env->store as their state, and HELLO reports the store's scorer as their impl. */
static const hp_kernel hp_kernel_table[] = {
    {.op = WIRE_OP_HELLO, .name = "hello", .impl = "v1", .fn = hp_k_hello},
    {.op = WIRE_OP_PING, .name = "ping", .impl = "v1", .fn = hp_k_ping},
    {.op = WIRE_OP_STATS, .name = "stats", .impl = "v1", .fn = hp_k_stats},
    {.op = WIRE_OP_LOAD_MODEL,
     .name = "load_model",
     .fn = hp_k_load_model,
     .init = hp_k_store_init,
     .impl_of = hp_k_store_impl},
    {.op = WIRE_OP_SCORE,
     .name = "score",
     .fn = hp_k_score,
     .init = hp_k_store_init,
     .stats = hp_k_store_stats,
     .impl_of = hp_k_store_impl},
    {.op = WIRE_OP_EXPLAIN,
     .name = "explain",
     .impl = "treeshap",
     .fn = hp_k_explain,
     .scratch_bytes = HP_EXPLAIN_SCRATCH_BYTES,
     .init = hp_k_store_init},
};

#define N_KERNELS (sizeof hp_kernel_table / sizeof hp_kernel_table[0])

struct hp_kernels {
    hp_store *store;
    void *state[N_KERNELS];
    size_t ninit;               /* table entries whose init ran (for undo) */
    uint8_t by_op[WIRE_OP_MAX]; /* table index + 1, 0 = no kernel */
};

int hp_kernels_create(const hp_config *cfg, unsigned ncpu, hp_kernels **out, char *err,
                      size_t errlen)
{
    HP_ASSERT(cfg != NULL && out != NULL);
    HP_ASSERT(!hp_after_ready());
    _Static_assert(N_KERNELS < 255, "by_op holds table index + 1 in a byte");
    hp_kernels *ks = calloc(1, sizeof *ks);
    if (ks == NULL) {
        snprintf(err, errlen, "out of memory for the kernel registry");
        return -1;
    }
    for (size_t i = 0; i < N_KERNELS; i++) {
        const hp_kernel *k = &hp_kernel_table[i];
        if (k->op == 0 || k->op >= WIRE_OP_MAX || ks->by_op[k->op] != 0 || k->fn == NULL ||
            (k->impl == NULL && k->impl_of == NULL)) {
            snprintf(err, errlen,
                     "kernel table: entry %zu (%s): op %u invalid or registered twice, or no "
                     "handler or impl",
                     i, k->name, (unsigned)k->op);
            goto fail;
        }
        ks->by_op[k->op] = (uint8_t)(i + 1);
    }
    const hp_scorer *sc = hp_scorer_find(cfg->kernel);
    if (sc == NULL) { /* hp_config_load checked it; a hand-made config may not have */
        char names[256];
        snprintf(err, errlen, "VIGIL_HOTPATH_KERNEL: unknown kernel '%s' (registered: %s)",
                 cfg->kernel, hp_scorer_names(names, sizeof names));
        goto fail;
    }
    if (hp_store_create(sc, cfg->memory_bytes, ncpu > 1 ? ncpu - 1 : 0, &ks->store, err, errlen) !=
        0)
        goto fail;
    hp_store_set_logging(ks->store, 1);
    hp_kernel_env env = {.cfg = cfg, .ncpu = ncpu, .store = ks->store};
    for (; ks->ninit < N_KERNELS; ks->ninit++) {
        const hp_kernel *k = &hp_kernel_table[ks->ninit];
        if (k->init && k->init(&env, &ks->state[ks->ninit], err, errlen) != 0)
            goto fail;
    }
    *out = ks;
    return 0;
fail:
    hp_kernels_destroy(ks);
    return -1;
}

void hp_kernels_destroy(hp_kernels *ks)
{
    if (ks == NULL)
        return;
    for (size_t i = ks->ninit; i-- > 0;)
        if (hp_kernel_table[i].fini)
            hp_kernel_table[i].fini(ks->state[i]);
    hp_store_destroy(ks->store);
    free(ks);
}

const hp_kernel *hp_kernels_find(const hp_kernels *ks, unsigned op, void **state)
{
    HP_ASSERT(ks != NULL && state != NULL);
    if (op >= WIRE_OP_MAX || ks->by_op[op] == 0)
        return NULL;
    *state = ks->state[ks->by_op[op] - 1];
    return &hp_kernel_table[ks->by_op[op] - 1];
}

const hp_scorer *hp_kernels_scorer(const hp_kernels *ks)
{
    return hp_store_scorer(ks->store);
}

size_t hp_kernels_scratch_bytes(void)
{
    size_t m = 0;
    for (size_t i = 0; i < N_KERNELS; i++)
        if (hp_kernel_table[i].scratch_bytes > m)
            m = hp_kernel_table[i].scratch_bytes;
    return m;
}

/* The impl HELLO reports for table entry i. */
static const char *impl_of(const hp_kernels *ks, size_t i)
{
    const hp_kernel *k = &hp_kernel_table[i];
    return k->impl_of ? k->impl_of(ks->state[i]) : k->impl;
}

int hp_kernel_fail(wire_writer *out, int status, const char *msg)
{
    size_t n = strlen(msg);
    out->len = 0;
    out->err = 0;
    if (n > out->cap)
        n = out->cap;
    wire_put_bytes(out, msg, n);
    return status;
}

/* ---- HELLO: u16 protocol, str worker version, u16 n, n x (u16 op, str name, str impl) -------- */
static int hp_k_hello(void *state, hp_ctx *ctx, const uint8_t *in, uint32_t in_len,
                      wire_writer *out)
{
    (void)state;
    HP_ASSERT(ctx->kernels != NULL);
    (void)in; /* the request payload is reserved for a client self-description; ignored */
    (void)in_len;
    wire_put_u16(out, WIRE_VERSION);
    wire_put_str(out, VIGIL_VERSION);
    wire_put_u16(out, (uint16_t)N_KERNELS);
    for (size_t i = 0; i < N_KERNELS; i++) {
        wire_put_u16(out, hp_kernel_table[i].op);
        wire_put_str(out, hp_kernel_table[i].name);
        wire_put_str(out, impl_of(ctx->kernels, i));
    }
    return WIRE_OK;
}

/* ---- PING: the request payload, echoed ----------------------------------------------------- */
static int hp_k_ping(void *state, hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out)
{
    (void)state;
    (void)ctx;
    wire_put_bytes(out, in, in_len);
    return WIRE_OK;
}

/* ---- STATS: u16 n, n x (str name, u64 value) ----------------------------------------------- */
static void put_counter(wire_writer *out, uint16_t *n, const char *name, uint64_t v)
{
    wire_put_str(out, name);
    wire_put_u64(out, v);
    (*n)++;
}

typedef struct stat_cookie {
    wire_writer *out;
    uint16_t *n;
} stat_cookie;

static void put_kernel_counter(void *cookie, const char *name, uint64_t v)
{
    stat_cookie *c = cookie;
    put_counter(c->out, c->n, name, v);
}

static int hp_k_stats(void *state, hp_ctx *ctx, const uint8_t *in, uint32_t in_len,
                      wire_writer *out)
{
    (void)state;
    HP_ASSERT(ctx->kernels != NULL);
    (void)in;
    (void)in_len;
    const hp_stats *st = ctx->stats;
    uint16_t n = 0;
    uint8_t *count_at = wire_put_reserve(out, 2);
    char name[64];

    for (int c = 0; c < HP_C_MAX; c++)
        put_counter(out, &n, hp_counter_name(c), hp_stats_total(st, c));
    /* Closed is read before accepted: a slot counts its close only after the acceptor counted
     * the accept, so in this order we cannot see more closes than accepts (the clamp guards). */
    uint64_t closed = hp_stats_total(st, HP_C_CONNS_CLOSED);
    uint64_t accepted = hp_stats_total(st, HP_C_CONNS_ACCEPTED);
    put_counter(out, &n, "conns_active", accepted >= closed ? accepted - closed : 0);
    put_counter(out, &n, "slots", ctx->nslots);
    put_counter(out, &n, "max_payload", ctx->cfg->max_payload);
    put_counter(out, &n, "uptime_ms", (uint64_t)(wire_now_ms() - ctx->started_ms));
    /* waits of bulk frames that found live frames in the worker, and the bulk frames waiting
     * now (hp_prio.h) */
    put_counter(out, &n, "bulk_yields",
                ctx->prio ? (uint64_t)atomic_load_explicit(&ctx->prio->yields, memory_order_relaxed)
                          : 0);
    put_counter(out, &n, "bulk_waiting",
                ctx->prio ? (uint64_t)atomic_load(&ctx->prio->waiters) : 0);
    for (size_t i = 0; i < N_KERNELS; i++) {
        const hp_kernel *k = &hp_kernel_table[i];
        snprintf(name, sizeof name, "op_%s_calls", k->name);
        put_counter(out, &n, name, hp_stats_op_calls(st, k->op));
        snprintf(name, sizeof name, "op_%s_ns", k->name);
        put_counter(out, &n, name, hp_stats_op_ns(st, k->op));
    }
    stat_cookie cookie = {out, &n};
    for (size_t i = 0; i < N_KERNELS; i++)
        if (hp_kernel_table[i].stats)
            hp_kernel_table[i].stats(ctx->kernels->state[i], put_kernel_counter, &cookie);
    put_counter(out, &n, "alloc_probe_present", (uint64_t)hp_alloc_probe_present());
    put_counter(out, &n, "alloc_calls_after_ready", hp_alloc_probe_count());

    if (count_at) {
        count_at[0] = (uint8_t)n;
        count_at[1] = (uint8_t)(n >> 8);
    }
    return WIRE_OK;
}
