/* fuzz_model.c - libFuzzer harness for common/model.c (model_validate) and common/refeval.c.
 *
 * The input is a compiled-model blob as it arrives over the socket (LOAD_MODEL), copied to a
 * 4-byte-aligned buffer of exactly its size.  When model_validate accepts it, refeval_predict
 * scores a few hostile rows (all missing, zeros, +-huge, +-inf, small integers as categories,
 * negative zero) with and without the output transform: model.h promises that evaluation of a
 * validated blob cannot read out of bounds or loop, which ASan/UBSan and the timeout check. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "refeval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NROWS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* malloc is 16-byte aligned; the exact size lets ASan catch any read past the end. */
    void *blob = malloc(size ? size : 1);
    if (blob == NULL)
        return 0;
    memcpy(blob, data, size);
    model_view v;
    char err[256];
    if (model_validate(blob, size, NULL, 0, &v, err, sizeof err) != 0) {
        if (memchr(err, 0, sizeof err) == NULL)
            abort();
        free(blob);
        return 0;
    }
    if (v.hdr == NULL || v.blob_len != size)
        abort();
    uint32_t nf = v.hdr->num_feature;
    uint32_t nout = model_outputs_per_row(&v, 1);
    if (nout == 0 || nout > MODEL_MAX_CLASSES || model_outputs_per_row(&v, 0) > nout)
        abort();
    (void)model_objective_name(v.hdr->objective);
    if (v.format == MODEL_FORMAT_LGBM) { /* LightGBM blobs score in double */
        double *r64 = malloc((size_t)NROWS * nf * sizeof(double));
        double *o64 = malloc((size_t)NROWS * nout * sizeof(double));
        if (r64 && o64) {
            static const double fill64[NROWS] = {NAN,      0.0,       -1e30, 1e30,
                                                 INFINITY, -INFINITY, -0.0,  1e-36};
            for (uint32_t r = 0; r < NROWS; r++)
                for (uint32_t j = 0; j < nf; j++)
                    r64[(size_t)r * nf + j] = r == 7 ? (double)(j % 70) : fill64[r];
            refeval_lgbm_predict(&v, r64, NROWS, 1, o64);
            refeval_lgbm_predict(&v, r64, NROWS, 0, o64);
        }
        free(r64);
        free(o64);
        free(blob);
        return 0;
    }
    float *rows = malloc((size_t)NROWS * nf * sizeof(float));
    float *out = malloc((size_t)NROWS * nout * sizeof(float));
    if (rows && out) {
        static const float fill[NROWS] = {NAN,      0.0f,      -1e30f, 1e30f,
                                          INFINITY, -INFINITY, -0.0f,  3.0f};
        for (uint32_t r = 0; r < NROWS; r++)
            for (uint32_t j = 0; j < nf; j++)
                rows[(size_t)r * nf + j] = r == 7 ? (float)(j % 70) : fill[r];
        refeval_predict(&v, rows, NROWS, 1, out);
        refeval_predict(&v, rows, NROWS, 0, out);
    }
    free(rows);
    free(out);
    free(blob);
    return 0;
}
