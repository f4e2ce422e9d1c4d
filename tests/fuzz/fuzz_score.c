/* fuzz_score.c - libFuzzer harness for the worker's LOAD_MODEL and SCORE handlers
 * (hotpath/hp_k_score.c, through hp_arena.c and EVERY scorer registered in hotpath/hp_scorers.def:
 * hp_forest.c, the plain layout, ...), called directly with an hp_ctx and in-memory payloads as
 * tests/unit/test_kernel.c does.  Every input runs once per registered scorer, each with a model
 * store (hp_store.h: 4 MiB arena, no pool threads) created afresh for the input, so a run never
 * depends on the inputs before it and a new scorer is fuzzed without an edit here.  The scorers
 * are listed on stderr at the first input.
 *
 * Input byte 0 chooses the mode:
 *   even: structured, differential.  Bytes 1..2 = SCORE flags (bit 0 margin, bit 1 a second
 *         section with the other margin flag) and nrows (mod 17); bytes 3..6 = blob length (mod
 *         what is left + 1); then the blob; the rest seeds the row values.  The blob is loaded
 *         under a fixed key; LOAD_MODEL must agree with model_validate; when loaded, a SCORE of the
 *         rows must answer OK with outputs bit-identical to refeval_predict on the same blob.
 *   odd:  raw.  Bytes 1..4 = length of a LOAD_MODEL payload, taken from what follows; the rest is
 *         a SCORE payload.  Both go to the handlers as they are (only ASan/UBSan and the answer
 *         framing are checked). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hp_k_score.h"
#include "hp_scorer.h"
#include "hp_store.h"
#include "model.h"
#include "refeval.h"
#include "sha256.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static _Alignas(4096) uint8_t in_buf[1 << 24];
static _Alignas(4096) uint8_t out_buf[1 << 22];
static _Alignas(16) uint8_t blob_copy[1 << 24];
static float rows_buf[1 << 20];
static float ref_buf[1 << 20];

static hp_store *store; /* the handlers' state, for the scorer of the current run */

static void store_reset(const hp_scorer *sc)
{
    char err[256];
    hp_store_destroy(store);
    store = NULL;
    if (hp_store_create(sc, (size_t)4 << 20, 0, &store, err, sizeof err) != 0) {
        fprintf(stderr, "hp_store_create (kernel %s): %s\n", sc->name, err);
        abort();
    }
}

static int call(hp_kernel_fn fn, uint32_t len, wire_writer *out)
{
    hp_ctx ctx = {0};
    wire_writer_init(out, out_buf, sizeof out_buf);
    int st = fn(store, &ctx, in_buf, len, out);
    if (st < 0 || st >= WIRE_STATUS_MAX || out->len > out->cap)
        abort();
    return st;
}

static void raw_mode(const uint8_t *data, size_t size)
{
    wire_writer out;
    if (size < 5)
        return;
    uint32_t ll = wire_le32(data + 1) % (uint32_t)(size - 5 + 1);
    if (size - 5 > sizeof in_buf)
        return;
    memcpy(in_buf, data + 5, ll);
    (void)call(hp_k_load_model, ll, &out);
    size_t sl = size - 5 - ll;
    memcpy(in_buf, data + 5 + ll, sl);
    (void)call(hp_k_score, (uint32_t)sl, &out);
}

static int same_bits(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0 && !(isnan(a[i]) && isnan(b[i])))
            return 0;
    return 1;
}

static void structured_mode(const uint8_t *data, size_t size)
{
    uint8_t key[WIRE_MODEL_KEY_SIZE] = {1, 2, 3, 4, 5, 6, 7, 8}; /* + SHA-256(blob) below */
    static const float edge[] = {NAN,    0.0f,     -0.0f,     1.0f,   -1.0f,
                                 0.5f,   3.0f,     31.0f,     32.0f,  1e30f,
                                 -1e30f, INFINITY, -INFINITY, 1e-45f, 16777216.0f};
    wire_writer out, w;
    char err[256];
    if (size < 7)
        return;
    uint32_t flags = data[1];
    uint32_t nrows = data[2] % 17u;
    uint32_t bl = wire_le32(data + 3) % (uint32_t)(size - 7 + 1);
    if (bl > sizeof blob_copy || bl + 52u > sizeof in_buf)
        return;
    const uint8_t *blob = data + 7, *seed = data + 7 + bl;
    size_t nseed = size - 7 - bl;

    sha256(blob, bl, key + 16); /* the worker refuses a key not bound to its blob */
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_bytes(&w, key, sizeof key);
    wire_put_u32(&w, bl);
    wire_put_bytes(&w, blob, bl);
    int st = call(hp_k_load_model, (uint32_t)w.len, &out);

    memcpy(blob_copy, blob, bl);
    model_view v;
    int valid = model_validate(blob_copy, bl, NULL, 0, &v, err, sizeof err) == 0;
    if (!valid) {
        if (st != WIRE_E_BAD_PAYLOAD) {
            fprintf(stderr, "kernel %s: LOAD_MODEL answered %d for a blob model_validate rejects\n",
                    hp_store_scorer(store)->name, st);
            abort();
        }
        return;
    }
    if (st == WIRE_E_NO_MEMORY || st == WIRE_E_TOO_LARGE)
        return; /* a valid model too large for the 4 MiB arena */
    if (st == WIRE_E_BAD_PAYLOAD && hp_store_scorer(store)->bytes(&v) == 0)
        return; /* a model this scorer declares it cannot hold */
    if (st != WIRE_OK) {
        fprintf(stderr, "kernel %s: LOAD_MODEL answered %d for a valid blob\n",
                hp_store_scorer(store)->name, st);
        abort();
    }

    uint32_t nf = v.hdr->num_feature;
    int lgbm = v.format == MODEL_FORMAT_LGBM; /* f32 sections must then be refused */
    if ((uint64_t)nrows * nf > sizeof rows_buf / sizeof(float))
        nrows = (uint32_t)(sizeof rows_buf / sizeof(float) / nf);
    for (size_t i = 0; i < (size_t)nrows * nf; i++) {
        if (nseed >= 4 && (i * 4) % nseed + 4 <= nseed && (i / 4) % 2 == 0)
            memcpy(&rows_buf[i], seed + (i * 4) % nseed, 4);
        else
            rows_buf[i] = edge[(i + (nseed ? seed[i % nseed] : 0)) % (sizeof edge / sizeof *edge)];
    }
    uint32_t nsec = (flags & 2) ? 2 : 1;
    wire_writer_init(&w, in_buf, sizeof in_buf);
    wire_put_u32(&w, nsec);
    for (uint32_t s = 0; s < nsec; s++) {
        wire_put_bytes(&w, key, sizeof key);
        wire_put_u32(&w, (flags ^ s) & WIRE_SCORE_MARGIN);
        wire_put_u32(&w, nrows);
        wire_put_u32(&w, nf);
        wire_put_bytes(&w, rows_buf, (size_t)nrows * nf * sizeof(float));
    }
    if (w.err)
        return;
    st = call(hp_k_score, (uint32_t)w.len, &out);
    if (lgbm) {
        if (st != WIRE_E_BAD_PAYLOAD)
            abort();
        return;
    }
    if (st != WIRE_OK) {
        fprintf(stderr, "kernel %s: SCORE answered %d (%.*s)\n", hp_store_scorer(store)->name, st,
                (int)out.len, (const char *)out_buf);
        abort();
    }
    wire_reader r;
    wire_reader_init(&r, out_buf, out.len);
    if (wire_get_u32(&r) != nsec)
        abort();
    for (uint32_t s = 0; s < nsec; s++) {
        int margin = ((flags ^ s) & WIRE_SCORE_MARGIN) != 0;
        uint32_t nout = model_outputs_per_row(&v, margin);
        if (wire_get_u32(&r) != nrows || wire_get_u32(&r) != nout)
            abort();
        const float *got = (const float *)wire_get_bytes(&r, (size_t)nrows * nout * 4);
        if (got == NULL || (size_t)nrows * nout > sizeof ref_buf / sizeof(float))
            abort();
        refeval_predict(&v, rows_buf, nrows, margin, ref_buf);
        if (!same_bits(got, ref_buf, (size_t)nrows * nout)) {
            fprintf(stderr, "kernel %s: SCORE section %u differs from refeval_predict\n",
                    hp_store_scorer(store)->name, s);
            abort();
        }
    }
    if (wire_remaining(&r) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int listed;
    if (!listed) {
        char names[256];
        fprintf(stderr, "fuzz_score: kernels: %s\n", hp_scorer_names(names, sizeof names));
        listed = 1;
    }
    for (unsigned i = 0; i < hp_scorer_count(); i++) {
        store_reset(hp_scorer_at(i));
        if (size == 0)
            continue;
        if (data[0] & 1)
            raw_mode(data, size);
        else
            structured_mode(data, size);
    }
    return 0;
}
