/* hp_kernels.c - the kernel registry and the built-in kernels HELLO, PING and STATS.
 * See hp_kernels.h for the handler contract.  Costs: lookup O(1) through by_op[]; HELLO O(kernels);
 * PING O(payload); STATS O(counters x slots). */
#include "hp_kernels.h"

#include <stdio.h>
#include <string.h>

#include "hp_k_score.h"

static int hp_k_hello(hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out);
static int hp_k_ping(hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out);
static int hp_k_stats(hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out);

/* The registry.  One line per op; to swap an implementation, change fn/impl on its line. */
static const hp_kernel hp_kernel_table[] = {
    {WIRE_OP_HELLO, "hello", "v1", hp_k_hello, 0, NULL, NULL, NULL},
    {WIRE_OP_PING, "ping", "v1", hp_k_ping, 0, NULL, NULL, NULL},
    {WIRE_OP_STATS, "stats", "v1", hp_k_stats, 0, NULL, NULL, NULL},
    /* LOAD_MODEL and SCORE share the model arena and compute pool that SCORE's init creates. */
    {WIRE_OP_LOAD_MODEL, "load_model", "arena", hp_k_load_model, 0, NULL, NULL, NULL},
    {WIRE_OP_SCORE, "score", "blocked8", hp_k_score, 0, hp_k_score_init, hp_k_score_fini,
     hp_k_score_stats},
};

#define N_KERNELS (sizeof hp_kernel_table / sizeof hp_kernel_table[0])

static const hp_kernel *by_op[WIRE_OP_MAX];

int hp_kernels_init(const hp_config *cfg, unsigned ncpu, char *err, size_t errlen)
{
    size_t i;
    memset(by_op, 0, sizeof by_op);
    for (i = 0; i < N_KERNELS; i++) {
        const hp_kernel *k = &hp_kernel_table[i];
        if (k->op == 0 || k->op >= WIRE_OP_MAX || by_op[k->op] != NULL || k->fn == NULL) {
            snprintf(err, errlen, "kernel table: entry %zu (%s): op %u invalid or registered twice",
                     i, k->name, (unsigned)k->op);
            return -1;
        }
        by_op[k->op] = k;
    }
    for (i = 0; i < N_KERNELS; i++) {
        const hp_kernel *k = &hp_kernel_table[i];
        if (k->init && k->init(cfg, ncpu, err, errlen) != 0)
            goto fail;
    }
    return 0;
fail:
    while (i-- > 0)
        if (hp_kernel_table[i].init && hp_kernel_table[i].fini)
            hp_kernel_table[i].fini();
    memset(by_op, 0, sizeof by_op);
    return -1;
}

void hp_kernels_fini(void)
{
    for (size_t i = N_KERNELS; i-- > 0;)
        if (hp_kernel_table[i].fini)
            hp_kernel_table[i].fini();
}

const hp_kernel *hp_kernel_find(unsigned op)
{
    return op < WIRE_OP_MAX ? by_op[op] : NULL;
}

size_t hp_kernels_scratch_bytes(void)
{
    size_t m = 0;
    for (size_t i = 0; i < N_KERNELS; i++)
        if (hp_kernel_table[i].scratch_bytes > m)
            m = hp_kernel_table[i].scratch_bytes;
    return m;
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
static int hp_k_hello(hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out)
{
    (void)ctx;
    (void)in; /* the request payload is reserved for a client self-description; ignored */
    (void)in_len;
    wire_put_u16(out, WIRE_VERSION);
    wire_put_str(out, VIGIL_VERSION);
    wire_put_u16(out, (uint16_t)N_KERNELS);
    for (size_t i = 0; i < N_KERNELS; i++) {
        wire_put_u16(out, hp_kernel_table[i].op);
        wire_put_str(out, hp_kernel_table[i].name);
        wire_put_str(out, hp_kernel_table[i].impl);
    }
    return WIRE_OK;
}

/* ---- PING: the request payload, echoed ----------------------------------------------------- */
static int hp_k_ping(hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out)
{
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

static int hp_k_stats(hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out)
{
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
            hp_kernel_table[i].stats(put_kernel_counter, &cookie);
    put_counter(out, &n, "alloc_probe_present", (uint64_t)hp_alloc_probe_present());
    put_counter(out, &n, "alloc_calls_after_ready", hp_alloc_probe_count());

    if (count_at) {
        count_at[0] = (uint8_t)n;
        count_at[1] = (uint8_t)(n >> 8);
    }
    return WIRE_OK;
}
