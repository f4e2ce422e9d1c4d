/* hp_k_score.c - LOAD_MODEL and SCORE handlers.  See hp_k_score.h.
 *
 * Costs: LOAD_MODEL O(blob) (SHA-256 of the blob against its key, validate + build), plus
 * O(models) under the arena mutex; a resident key costs the SHA-256 only.  SCORE O(payload) parsing
 * + the walk; the arena mutex is taken twice per request (pin, unpin), each time for O(sections).
 */
#include "hp_k_score.h"

#include <stdio.h>
#include <string.h>

#include "hp_arena.h"
#include "hp_assert.h"
#include "hp_k_explain.h"
#include "hp_shap.h"
#include "model.h"
#include "sha256.h"

int hp_k_store_init(const hp_kernel_env *env, void **state, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    HP_ASSERT(env != NULL && env->store != NULL && state != NULL);
    *state = env->store;
    return 0;
}

const char *hp_k_store_impl(const void *state)
{
    return hp_store_scorer(state)->name;
}

void hp_k_store_stats(void *state, hp_stat_put_fn put, void *cookie)
{
    hp_store *store = state;
    hp_arena_stats st = {0};
    char name[48];
    snprintf(name, sizeof name, "kernel_%s", hp_store_scorer(store)->name);
    put(cookie, name, 1);
    hp_arena_get_stats(hp_store_arena(store), &st);
    put(cookie, "arena_bytes_total", st.bytes_total);
    put(cookie, "arena_bytes_used", st.bytes_used);
    put(cookie, "arena_bytes_free", st.bytes_total - st.bytes_used);
    put(cookie, "models_resident", st.models_resident);
    put(cookie, "model_loads", st.loads);
    put(cookie, "model_load_hits", st.load_hits);
    put(cookie, "model_evictions", st.evictions);
    put(cookie, "model_loads_refused", st.load_refused);
    put(cookie, "pool_threads", hp_pool_threads(hp_store_pool(store)));
}

/* ---- LOAD_MODEL ------------------------------------------------------------------------------ */

int hp_k_load_model(void *state, hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out)
{
    (void)ctx;
    HP_ASSERT(state != NULL && out != NULL);
    hp_arena *arena = hp_store_arena(state);
    char err[256], msg[320];
    if (in_len < WIRE_MODEL_KEY_SIZE + 4)
        return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD,
                              "LOAD_MODEL payload shorter than key + length");
    const uint8_t *key = in;
    uint32_t blob_len = wire_le32(in + WIRE_MODEL_KEY_SIZE);
    if ((uint64_t)blob_len + WIRE_MODEL_KEY_SIZE + 4 != in_len)
        return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD,
                              "LOAD_MODEL blob_len does not match the payload");
    /* The key's second half is the blob's SHA-256: checked before anything else, so a key names
     * exactly one blob and no peer on the socket can load another blob under a model's key. */
    uint8_t digest[32];
    sha256(in + WIRE_MODEL_KEY_SIZE + 4, blob_len, digest);
    if (memcmp(digest, key + 16, sizeof digest) != 0)
        return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD,
                              "LOAD_MODEL key does not match the blob's SHA-256");
    hp_arena *explain = hp_store_explain_arena(state);
    int resident = hp_arena_touch(arena, key);
    if (resident && hp_arena_touch(explain, key))
        return WIRE_OK;
    model_view v;
    /* The blob sits at payload offset 52 of a page-aligned buffer: 4-byte aligned, as required. */
    if (model_validate(in + WIRE_MODEL_KEY_SIZE + 4, blob_len, NULL, 0, &v, err, sizeof err) != 0) {
        snprintf(msg, sizeof msg, "invalid model blob: %s", err);
        return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, msg);
    }
    /* The explain layout (hp_shap.h) is loaded too when the blob can be explained; its failure
     * never fails the load: EXPLAIN then answers UNKNOWN_MODEL and the API says why. */
    if (v.covers != NULL)
        (void)hp_arena_load(explain, key, &v, err, sizeof err);
    if (resident)
        return WIRE_OK;
    switch (hp_arena_load(arena, key, &v, err, sizeof err)) {
    case HP_ARENA_LOADED:
    case HP_ARENA_RESIDENT:
        return WIRE_OK;
    case HP_ARENA_UNSUPPORTED:
        return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, err);
    case HP_ARENA_BUILD_FAILED:
        return hp_kernel_fail(out, WIRE_E_INTERNAL, err);
    case HP_ARENA_TOO_BIG: /* permanent: the API remembers it and stops offering the model */
        return hp_kernel_fail(out, WIRE_E_TOO_LARGE, err);
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

int hp_k_score(void *state, hp_ctx *ctx, const uint8_t *in, uint32_t in_len, wire_writer *out)
{
    HP_ASSERT(state != NULL && out != NULL);
    hp_arena *arena = hp_store_arena(state);
    const hp_scorer *sc = hp_store_scorer(state);
    section sec[WIRE_MAX_SECTIONS];
    const uint8_t *keys[WIRE_MAX_SECTIONS];
    const hp_model *models[WIRE_MAX_SECTIONS];
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
        if (s->flags & ~(WIRE_SCORE_MARGIN | WIRE_SCORE_F64 | WIRE_SCORE_EXPLAIN)) {
            snprintf(msg, sizeof msg, "SCORE section %u: unknown flags 0x%x", i, s->flags);
            return hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, msg);
        }
        if ((s->flags & WIRE_SCORE_EXPLAIN) && f64) {
            snprintf(msg, sizeof msg, "SCORE section %u: WIRE_SCORE_EXPLAIN needs f32 rows", i);
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

    int missing = hp_arena_acquire(arena, keys, n, models, handles);
    if (missing >= 0) {
        out->len = 0;
        out->err = 0;
        wire_put_u32(out, (uint32_t)missing);
        return WIRE_E_UNKNOWN_MODEL;
    }
    /* WIRE_SCORE_EXPLAIN sections also pin their explain layout (hp_shap.h) */
    hp_arena *xarena = hp_store_explain_arena(state);
    const uint8_t *xkeys[WIRE_MAX_SECTIONS];
    const hp_model *xmodels[WIRE_MAX_SECTIONS];
    uint32_t xhandles[WIRE_MAX_SECTIONS], xsec[WIRE_MAX_SECTIONS], nx = 0;
    for (uint32_t i = 0; i < n; i++)
        if (sec[i].flags & WIRE_SCORE_EXPLAIN) {
            xsec[nx] = i;
            xkeys[nx++] = sec[i].key;
        }
    HP_ASSERT(nx == 0 || ctx != NULL);
    if (nx > 0 && (missing = hp_arena_acquire(xarena, xkeys, nx, xmodels, xhandles)) >= 0) {
        hp_arena_release(arena, handles, n);
        out->len = 0;
        out->err = 0;
        wire_put_u32(out, xsec[missing]);
        return WIRE_E_UNKNOWN_MODEL;
    }
    int st = WIRE_OK;
    uint64_t answer = 4;
    for (uint32_t i = 0, x = 0; i < n; i++) {
        if (sec[i].ncols != models[i]->num_feature) {
            snprintf(msg, sizeof msg, "SCORE section %u: %u columns, the model has %u features", i,
                     sec[i].ncols, models[i]->num_feature);
            st = hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, msg);
            goto done;
        }
        int f64 = (sec[i].flags & WIRE_SCORE_F64) != 0;
        if (f64 != models[i]->f64) {
            snprintf(msg, sizeof msg, "SCORE section %u: the model takes %s rows", i,
                     models[i]->f64 ? "f64 (WIRE_SCORE_F64)" : "f32");
            st = hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, msg);
            goto done;
        }
        answer += 8 + (f64 ? 4 : 0) +
                  (uint64_t)sec[i].nrows *
                      models[i]->nout[(sec[i].flags & WIRE_SCORE_MARGIN) != 0] * (f64 ? 8 : 4);
        if (sec[i].flags & WIRE_SCORE_EXPLAIN) {
            const model_view *xv = hp_shap_view(xmodels[x]->layout);
            size_t need = hp_k_explain_scratch(xmodels[x++]->layout);
            if (need > ctx->scratch_len) {
                snprintf(msg, sizeof msg,
                         "SCORE section %u: explaining needs %zu bytes of scratch, the slot "
                         "has %zu (VIGIL_HOTPATH_SCRATCH_MB)",
                         i, need, ctx->scratch_len);
                st = hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, msg);
                goto done;
            }
            answer += 8 + (uint64_t)sec[i].nrows * xv->hdr->num_class *
                              ((uint64_t)xv->hdr->num_feature + 2) * 4;
        }
    }
    if (answer > out->cap - out->len) {
        snprintf(msg, sizeof msg, "SCORE answer of %llu bytes exceeds VIGIL_HOTPATH_MAX_FRAME_MB",
                 (unsigned long long)answer);
        st = hp_kernel_fail(out, WIRE_E_BAD_PAYLOAD, msg);
        goto done;
    }
    wire_put_u32(out, n);
    for (uint32_t i = 0, x = 0; i < n; i++) {
        int margin = (sec[i].flags & WIRE_SCORE_MARGIN) != 0;
        uint32_t nout = models[i]->nout[margin];
        wire_put_u32(out, sec[i].nrows);
        wire_put_u32(out, nout);
        if (models[i]->f64) {
            /* LightGBM: doubles at the next 8-byte payload offset (out->buf is 8-aligned).  The
             * arena only holds f64 models when the scorer has score64 (hp_arena_load). */
            for (size_t k = wire_pad8(out->len); k > 0; k--)
                wire_put_u8(out, 0);
            double *o64 =
                (double *)wire_put_reserve(out, (size_t)sec[i].nrows * nout * sizeof(double));
            if (o64 == NULL)
                break;
            sc->score64(models[i]->layout, sec[i].rows64, sec[i].nrows, margin, o64,
                        hp_store_pool(state), HP_PARALLEL_MIN_WORK);
            continue;
        }
        /* The answer starts 8-byte aligned and every field is a multiple of 4 bytes. */
        float *o = (float *)wire_put_reserve(out, (size_t)sec[i].nrows * nout * sizeof(float));
        if (o == NULL)
            break; /* cannot happen (size checked above); the server answers INTERNAL */
        sc->score(models[i]->layout, sec[i].rows, sec[i].nrows, margin, o, hp_store_pool(state),
                  HP_PARALLEL_MIN_WORK);
        if (sec[i].flags & WIRE_SCORE_EXPLAIN) {
            /* u32 ngroups u32 ncontrib f32 contribs[] f32 margins[], as EXPLAIN answers */
            const void *xl = xmodels[x++]->layout;
            const model_view *xv = hp_shap_view(xl);
            uint32_t k = xv->hdr->num_class, ncontrib = xv->hdr->num_feature + 1;
            wire_put_u32(out, k);
            wire_put_u32(out, ncontrib);
            float *c = (float *)wire_put_reserve(out, (size_t)sec[i].nrows * k * ncontrib * 4);
            float *mg = (float *)wire_put_reserve(out, (size_t)sec[i].nrows * k * 4);
            if (c == NULL || mg == NULL)
                break; /* cannot happen (size checked above) */
            hp_k_explain_rows(state, ctx, xl, sec[i].rows, sec[i].nrows, c, mg);
        }
    }
done:
    if (nx > 0)
        hp_arena_release(xarena, xhandles, nx);
    hp_arena_release(arena, handles, n);
    return st;
}
