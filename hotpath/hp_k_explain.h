/* hp_k_explain.h - the EXPLAIN kernel (payload: common/wire.h): SHAP contributions and margins of
 * rows, from the explain layouts LOAD_MODEL puts into the model store's explain arena (hp_store.h,
 * hp_shap.h).
 *
 * EXPLAIN: key[48] u32 flags (0) u32 nrows u32 ncols f32 rows -> checks in this order: framing
 *   (sizes add up exactly, flags 0: BAD_PAYLOAD), residency in the explain arena (UNKNOWN_MODEL +
 *   u32 0: not loaded, or loaded without covers), ncols == num_feature, the answer fits the
 *   frame, the model's scratch fits the slot's (BAD_PAYLOAD); then OK + u32 nrows u32 ngroups u32
 *   ncontrib, f32 contribs[nrows x ngroups x ncontrib], f32 margins[nrows x ngroups],
 *   bit-identical to common/treeshap.c.  Large batches are split into row ranges over the compute
 *   pool, each part with its own share of the slot's scratch.
 * A handler in the sense of hp_kernels.h: thread-safe, allocation-free.  Its state is the model
 * store (hp_k_store_init). */
#ifndef VIGIL_HP_K_EXPLAIN_H
#define VIGIL_HP_K_EXPLAIN_H

#include <stddef.h>
#include <stdint.h>

#include "hp_kernels.h"

/* Per-slot scratch EXPLAIN asks for (the slot's is max(this, VIGIL_HOTPATH_SCRATCH_MB)). */
#define HP_EXPLAIN_SCRATCH_BYTES (4u << 20)

/* Scratch bytes one part of an explanation of layout (an explain-arena model) takes from a slot's
 * scratch (64-byte multiple).  Any thread. */
size_t hp_k_explain_scratch(const void *layout);

/* Explains nrows rows with layout into contribs / margins (hp_shap_explain's layouts), split
 * into row ranges over the store's compute pool when the work is large (each part with its own
 * share of ctx's scratch).  The caller checked hp_k_explain_scratch(layout) <= ctx->scratch_len
 * and holds the layout pinned.  Shared by EXPLAIN and SCORE's WIRE_SCORE_EXPLAIN sections.  Never
 * fails, never allocates. */
void hp_k_explain_rows(void *state, hp_ctx *ctx, const void *layout, const float *rows,
                       uint32_t nrows, float *contribs, float *margins);

int hp_k_explain(void *state, hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out);

#endif
