/* hp_k_score.h - the scoring kernels: LOAD_MODEL and SCORE (payloads: common/wire.h).
 *
 * Owns: the process-wide model arena (hp_arena.h, VIGIL_HOTPATH_MEMORY_MB) and compute pool
 * (hp_pool.h, ncpu-1 helpers), both created by hp_k_score_init before hp_ready(); the parsing and
 * checking of both payloads; the answers.  The walk itself is hp_forest.c.
 *
 * LOAD_MODEL: key[48] u32 blob_len blob -> resident key: OK at once (nothing is validated); else
 *   model_validate (BAD_PAYLOAD + reason), build into the arena (evicting least recently used
 *   unpinned models), NO_MEMORY + reason when it can never fit or pinned models hold the space.
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

int hp_k_load_model(hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out);
int hp_k_score(hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out);

/* Reserves the arena (cfg->memory_bytes) and starts ncpu-1 pool threads.  0, or -1 with err. */
int hp_k_score_init(const hp_config *cfg, unsigned ncpu, char *err, size_t errlen);
void hp_k_score_fini(void);
/* STATS: arena_bytes_total, arena_bytes_used, arena_bytes_free, models_resident, model_loads,
 * model_load_hits, model_evictions, model_loads_refused, pool_threads. */
void hp_k_score_stats(hp_stat_put_fn put, void *cookie);

#endif
