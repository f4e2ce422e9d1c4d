/* hp_k_explain.c - the EXPLAIN handler.  See hp_k_explain.h.
 *
 * Costs: O(payload) parsing, the arena mutex twice (pin, unpin), then the TreeSHAP walk
 * (hp_shap.c), split over the compute pool when rows x trees >= HP_PARALLEL_MIN_WORK. */
#include "hp_k_explain.h"

#include <stdio.h>
#include <string.h>

#include "hp_arena.h"
#include "hp_assert.h"
#include "hp_shap.h"

typedef struct explain_job {
    const void *layout;
    const float *rows;
    size_t nrows, chunk, nf, ncontrib, k;
    float *contribs, *margins;
    unsigned char *scratch;
    size_t part_scratch;
} explain_job;

static void explain_part(void *arg, unsigned part)
{
    const explain_job *j = arg;
    size_t a = (size_t)part * j->chunk;
    size_t b = a + j->chunk < j->nrows ? a + j->chunk : j->nrows;
    if (a < b)
        hp_shap_explain(j->layout, j->rows + a * j->nf, b - a, j->contribs + a * j->k * j->ncontrib,
                        j->margins + a * j->k, j->scratch + (size_t)part * j->part_scratch);
}

size_t hp_k_explain_scratch(const void *layout)
{
    return (hp_shap_scratch_bytes(layout) + 63u) & ~(size_t)63u;
}

void hp_k_explain_rows(void *state, hp_ctx *ctx, const void *layout, const float *rows,
                       uint32_t nrows, float *contribs, float *margins)
{
    const model_view *v = hp_shap_view(layout);
    size_t k = v->hdr->num_class, nf = v->hdr->num_feature, ncontrib = nf + 1;
    size_t need = hp_k_explain_scratch(layout);
    HP_ASSERT(need <= ctx->scratch_len);
    hp_pool *pool = hp_store_pool(state);
    unsigned nparts = hp_pool_threads(pool) + 1;
    if (nparts > ctx->scratch_len / need)
        nparts = (unsigned)(ctx->scratch_len / need);
    if (nparts > nrows)
        nparts = nrows;
    uint64_t work = (uint64_t)nrows * (v->hdr->num_trees ? v->hdr->num_trees : 1);
    if (nparts < 2 || work < HP_PARALLEL_MIN_WORK) {
        hp_shap_explain(layout, rows, nrows, contribs, margins, ctx->scratch);
        return;
    }
    explain_job j = {layout,  rows,         nrows, (nrows + nparts - 1) / nparts,
                     nf,      ncontrib,     k,     contribs,
                     margins, ctx->scratch, need};
    hp_pool_run(pool, explain_part, &j, nparts);
}

int hp_k_explain(void *state, hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out)
{
    HP_ASSERT(state != NULL && ctx != NULL && out != NULL);
    hp_arena *arena = hp_store_explain_arena(state);
    char msg[200];
    wire_reader r;

    wire_reader_init(&r, in, in_len);
    const uint8_t *key = wire_get_bytes(&r, WIRE_MODEL_KEY_SIZE);
    uint32_t flags = wire_get_u32(&r), nrows = wire_get_u32(&r), ncols = wire_get_u32(&r);
    uint64_t cells = (uint64_t)nrows * ncols;
    if (r.err || cells > wire_remaining(&r) / sizeof(float))
        return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD,
                              "EXPLAIN: truncated (rows x cols do not fit)");
    if (flags != 0) {
        snprintf(msg, sizeof msg, "EXPLAIN: unknown flags 0x%x", flags);
        return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, msg);
    }
    const float *rows = (const float *)wire_get_bytes(&r, (size_t)cells * sizeof(float));
    if (wire_remaining(&r) != 0)
        return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, "EXPLAIN payload has trailing bytes");

    const hp_model *model;
    uint32_t handle;
    if (hp_arena_acquire(arena, &key, 1, &model, &handle) >= 0) {
        out->len = 0;
        out->err = 0;
        wire_put_u32(out, 0);
        return WIRE_E_UNKNOWN_MODEL;
    }
    int st = WIRE_OK;
    const model_view *v = hp_shap_view(model->layout);
    size_t k = v->hdr->num_class, nf = v->hdr->num_feature, ncontrib = nf + 1;
    if (ncols != nf) {
        snprintf(msg, sizeof msg, "EXPLAIN: %u columns, the model has %zu features", ncols, nf);
        st = hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, msg);
        goto done;
    }
    uint64_t answer = 12 + (uint64_t)nrows * k * (ncontrib + 1) * 4;
    if (answer > out->cap - out->len) {
        snprintf(msg, sizeof msg, "EXPLAIN answer of %llu bytes exceeds VIGIL_HOTPATH_MAX_FRAME_MB",
                 (unsigned long long)answer);
        st = hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, msg);
        goto done;
    }
    size_t need = hp_k_explain_scratch(model->layout);
    if (need > ctx->scratch_len) {
        snprintf(msg, sizeof msg,
                 "EXPLAIN: this model needs %zu bytes of scratch, the slot has %zu "
                 "(VIGIL_HOTPATH_SCRATCH_MB)",
                 need, ctx->scratch_len);
        st = hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, msg);
        goto done;
    }
    wire_put_u32(out, nrows);
    wire_put_u32(out, (uint32_t)k);
    wire_put_u32(out, (uint32_t)ncontrib);
    float *contribs = (float *)wire_put_reserve(out, (size_t)nrows * k * ncontrib * sizeof(float));
    float *margins = (float *)wire_put_reserve(out, (size_t)nrows * k * sizeof(float));
    if (contribs == NULL || margins == NULL)
        goto done; /* cannot happen (size checked above); the server answers INTERNAL */
    hp_k_explain_rows(state, ctx, model->layout, rows, nrows, contribs, margins);
done:
    hp_arena_release(arena, &handle, 1);
    return st;
}
