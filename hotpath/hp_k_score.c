/* hp_k_score.c - LOAD_MODEL and SCORE handlers.  See hp_k_score.h.
 *
 * Costs: LOAD_MODEL O(blob) (validate + build), plus O(models) under the arena mutex; a resident
 * key is O(1).  SCORE O(payload) parsing + the walk; the arena mutex is taken twice per request
 * (pin, unpin), each time for O(sections). */
#include "hp_k_score.h"

#include <stdio.h>
#include <string.h>

#include "hp_arena.h"
#include "hp_forest.h"
#include "hp_lgbm.h"
#include "hp_pool.h"
#include "model.h"

static hp_arena *arena;
static hp_pool *pool;

int hp_k_score_init(const hp_config *cfg, unsigned ncpu, char *err, size_t errlen)
{
    arena = hp_arena_create(cfg->memory_bytes, err, errlen);
    if (arena)
        hp_arena_set_logging(arena, 1);
    if (arena == NULL)
        return -1;
    pool = hp_pool_create(ncpu > 1 ? ncpu - 1 : 0, err, errlen);
    if (pool == NULL) {
        hp_arena_destroy(arena);
        arena = NULL;
        return -1;
    }
    return 0;
}

void hp_k_score_fini(void)
{
    hp_pool_destroy(pool);
    pool = NULL;
    hp_arena_destroy(arena);
    arena = NULL;
}

void hp_k_score_stats(hp_stat_put_fn put, void *cookie)
{
    hp_arena_stats st = {0};
    if (arena)
        hp_arena_get_stats(arena, &st);
    put(cookie, "arena_bytes_total", st.bytes_total);
    put(cookie, "arena_bytes_used", st.bytes_used);
    put(cookie, "arena_bytes_free", st.bytes_total - st.bytes_used);
    put(cookie, "models_resident", st.models_resident);
    put(cookie, "model_loads", st.loads);
    put(cookie, "model_load_hits", st.load_hits);
    put(cookie, "model_evictions", st.evictions);
    put(cookie, "model_loads_refused", st.load_refused);
    put(cookie, "pool_threads", hp_pool_threads(pool));
}

/* ---- LOAD_MODEL ------------------------------------------------------------------------------ */

int hp_k_load_model(hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out)
{
    (void)ctx;
    char err[256], msg[320];
    if (in_len < WIRE_MODEL_KEY_SIZE + 4)
        return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD,
                              "LOAD_MODEL payload shorter than key + length");
    const uint8_t *key = in;
    uint32_t blob_len = wire_le32(in + WIRE_MODEL_KEY_SIZE);
    if ((uint64_t)blob_len + WIRE_MODEL_KEY_SIZE + 4 != in_len)
        return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD,
                              "LOAD_MODEL blob_len does not match the payload");
    if (hp_arena_touch(arena, key))
        return WIRE_OK;
    model_view v;
    /* The blob sits at payload offset 52 of a page-aligned buffer: 4-byte aligned, as required. */
    if (model_validate(in + WIRE_MODEL_KEY_SIZE + 4, blob_len, NULL, 0, &v, err, sizeof err) != 0) {
        snprintf(msg, sizeof msg, "invalid model blob: %s", err);
        return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, msg);
    }
    switch (hp_arena_load(arena, key, &v, err, sizeof err)) {
    case HP_ARENA_LOADED:
    case HP_ARENA_RESIDENT:
        return WIRE_OK;
    default:
        return hp_kernel_fail(out, WIRE_E_NO_MEMORY, err);
    }
}

/* ---- SCORE ----------------------------------------------------------------------------------- */

typedef struct section {
    const uint8_t *key;
    uint32_t flags, nrows, ncols;
    const float *rows;
    const double *rows64; /* WIRE_SCORE_F64 sections (LightGBM models) */
} section;

int hp_k_score(hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out)
{
    (void)ctx;
    section sec[WIRE_MAX_SECTIONS];
    const uint8_t *keys[WIRE_MAX_SECTIONS];
    const hp_forest *forests[WIRE_MAX_SECTIONS];
    uint32_t handles[WIRE_MAX_SECTIONS];
    char msg[160];
    wire_reader r;

    wire_reader_init(&r, in, in_len);
    uint32_t n = wire_get_u32(&r);
    if (r.err || n < 1 || n > WIRE_MAX_SECTIONS) {
        snprintf(msg, sizeof msg, "SCORE needs 1..%u sections", WIRE_MAX_SECTIONS);
        return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, msg);
    }
    for (uint32_t i = 0; i < n; i++) {
        section *s = &sec[i];
        s->key = wire_get_bytes(&r, WIRE_MODEL_KEY_SIZE);
        s->flags = wire_get_u32(&r);
        s->nrows = wire_get_u32(&r);
        s->ncols = wire_get_u32(&r);
        /* Cells, not bytes: nrows x ncols x 4 can wrap 64 bits (2^31 x 2^31 x 4 = 2^64 -> 0). */
        uint64_t cells = (uint64_t)s->nrows * s->ncols;
        int f64 = (s->flags & WIRE_SCORE_F64) != 0;
        if (f64 && !r.err) { /* f64 rows start 8-byte aligned in the payload */
            size_t pad = wire_pad8(r.off);
            const uint8_t *z = wire_get_bytes(&r, pad);
            for (size_t k = 0; z && k < pad; k++)
                if (z[k] != 0)
                    r.err = 1;
        }
        size_t cell = f64 ? sizeof(double) : sizeof(float);
        if (r.err || cells > wire_remaining(&r) / cell) {
            snprintf(msg, sizeof msg, "SCORE section %u: truncated (rows x cols do not fit)", i);
            return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, msg);
        }
        if (s->flags & ~(WIRE_SCORE_MARGIN | WIRE_SCORE_F64)) {
            snprintf(msg, sizeof msg, "SCORE section %u: unknown flags 0x%x", i, s->flags);
            return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, msg);
        }
        /* Offsets are multiples of 4 in a page-aligned buffer: the floats are aligned. */
        const uint8_t *cells_p = wire_get_bytes(&r, (size_t)cells * cell);
        s->rows = f64 ? NULL : (const float *)cells_p;
        s->rows64 = f64 ? (const double *)cells_p : NULL;
        if (f64 && ((uintptr_t)cells_p & 7u) != 0) /* the slot buffer is page-aligned */
            return hp_kernel_fail(out, WIRE_E_INTERNAL, "SCORE f64 rows are not aligned");
        keys[i] = s->key;
    }
    if (wire_remaining(&r) != 0)
        return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, "SCORE payload has trailing bytes");

    int missing = hp_arena_acquire(arena, keys, n, forests, handles);
    if (missing >= 0) {
        out->len = 0;
        out->err = 0;
        wire_put_u32(out, (uint32_t)missing);
        return WIRE_E_UNKNOWN_MODEL;
    }
    int st = WIRE_OK;
    uint64_t answer = 4;
    for (uint32_t i = 0; i < n; i++) {
        if (sec[i].ncols != forests[i]->num_feature) {
            snprintf(msg, sizeof msg, "SCORE section %u: %u columns, the model has %u features", i,
                     sec[i].ncols, forests[i]->num_feature);
            st = hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, msg);
            goto done;
        }
        int f64 = (sec[i].flags & WIRE_SCORE_F64) != 0;
        if (f64 != (forests[i]->lgbm != NULL)) {
            snprintf(msg, sizeof msg, "SCORE section %u: the model takes %s rows", i,
                     forests[i]->lgbm ? "f64 (WIRE_SCORE_F64)" : "f32");
            st = hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, msg);
            goto done;
        }
        answer += 8 + (f64 ? 4 : 0) +
                  (uint64_t)sec[i].nrows *
                      hp_forest_outputs(forests[i], sec[i].flags & WIRE_SCORE_MARGIN) *
                      (f64 ? 8 : 4);
    }
    if (answer > out->cap - out->len) {
        snprintf(msg, sizeof msg, "SCORE answer of %llu bytes exceeds VIGIL_HOTPATH_MAX_FRAME_MB",
                 (unsigned long long)answer);
        st = hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, msg);
        goto done;
    }
    wire_put_u32(out, n);
    for (uint32_t i = 0; i < n; i++) {
        int margin = (sec[i].flags & WIRE_SCORE_MARGIN) != 0;
        uint32_t nout = hp_forest_outputs(forests[i], margin);
        wire_put_u32(out, sec[i].nrows);
        wire_put_u32(out, nout);
        if (forests[i]->lgbm) {
            /* LightGBM: doubles at the next 8-byte payload offset (out->buf is 8-aligned). */
            for (size_t k = wire_pad8(out->len); k > 0; k--)
                wire_put_u8(out, 0);
            double *o64 =
                (double *)wire_put_reserve(out, (size_t)sec[i].nrows * nout * sizeof(double));
            if (o64 == NULL)
                break;
            hp_lgbm_score_pool(forests[i]->lgbm, sec[i].rows64, sec[i].nrows, margin, o64, pool,
                               HPF_PARALLEL_MIN_WORK);
            continue;
        }
        /* The answer starts 8-byte aligned and every field is a multiple of 4 bytes. */
        float *o = (float *)wire_put_reserve(out, (size_t)sec[i].nrows * nout * sizeof(float));
        if (o == NULL)
            break; /* cannot happen (size checked above); the server answers INTERNAL */
        hp_forest_score(forests[i], sec[i].rows, sec[i].nrows, margin, o, pool,
                        HPF_PARALLEL_MIN_WORK);
    }
done:
    hp_arena_release(arena, handles, n);
    return st;
}
