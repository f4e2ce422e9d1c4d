/* hp_k_score.h - the scoring kernels: LOAD_MODEL and SCORE (payloads: common/wire.h).
 *
 * Owns: the parsing and checking of both payloads and the answers.  Both handlers' state is the
 * model store (hp_store.h: the selected scorer, the arena, the compute pool), which the registry
 * creates once and hands to both inits explicitly (hp_kernel_env.store); nothing is kept in file
 * statics.  The layout and the walk are the scorer's (hp_scorer.h, e.g. hp_forest.c).
 *
 * LOAD_MODEL: key[48] u32 blob_len blob -> key bytes 16..47 != SHA-256(blob): BAD_PAYLOAD; then
 *   resident key: OK at once (nothing else is validated); else model_validate (BAD_PAYLOAD +
 *   reason), build into the arena (evicting least recently used unpinned models), TOO_LARGE +
 *   reason when it can never fit the arena, NO_MEMORY + reason when pinned models hold the space.
 * SCORE: u32 nsections, per section key[48] u32 flags u32 nrows u32 ncols f32 rows -> checks in
 *   this order: framing (sizes add up exactly, 1..WIRE_MAX_SECTIONS sections, known flags:
 *   BAD_PAYLOAD), residency (UNKNOWN_MODEL + u32 index of the first missing section), ncols ==
 *   num_feature (BAD_PAYLOAD), answer fits the frame (BAD_PAYLOAD); then OK + u32 nsections, per
 *   section u32 nrows u32 nout f32 out[nrows * nout], bit-identical to refeval_predict.
 * Both are handlers in the sense of hp_kernels.h: thread-safe, allocation-free. */
#ifndef VIGIL_HP_K_SCORE_H
#define VIGIL_HP_K_SCORE_H

#include <stddef.h>
#include <stdint.h>

#include "hp_kernels.h"

/* Handlers; state is an hp_store * (non-NULL). */
int hp_k_load_model(void *state, hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out);
int hp_k_score(void *state, hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out);

/* init hook of both: *state = env->store (owned by the registry, so there is no fini).  0. */
int hp_k_store_init(const hp_kernel_env *env, void **state, char *err, size_t errlen);
/* HELLO's impl of both: the store's scorer name ("forest"). */
const char *hp_k_store_impl(const void *state);
/* STATS: kernel_<scorer name> (1), arena_bytes_total, arena_bytes_used, arena_bytes_free,
 * models_resident, model_loads, model_load_hits, model_evictions, model_loads_refused,
 * pool_threads. */
void hp_k_store_stats(void *state, hp_stat_put_fn put, void *cookie);

#endif
