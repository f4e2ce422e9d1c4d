/* fuzz_lgbm.c - libFuzzer harness for common/lgbmmodel.c: lgbm_compile on an uploaded LightGBM
 * text model.
 *
 * Checks besides ASan/UBSan: the status is one of the four; LGBM_OK comes with a format-2 blob
 * that passes model_validate, whose counts match info, and which scores rows (all NaN, all zero,
 * edge values) identically, bit for bit, through refeval_lgbm_predict and the worker's hp_lgbm
 * walk; any other status leaves *blob NULL and a NUL-terminated reason; lgbm_info_free releases
 * everything (LeakSanitizer reports what it does not). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hp_lgbm.h"
#include "lgbmmodel.h"
#include "model.h"
#include "refeval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void score_both(const model_view *v)
{
    static const double edge[] = {NAN, 0.0, -0.0, 1e-36, 0.5, -1.0, 3.0, 1e10, INFINITY};
    enum { NR = sizeof edge / sizeof edge[0] };
    uint32_t nf = v->hdr->num_feature, k = v->hdr->num_class;
    if ((uint64_t)nf * NR > (1u << 22))
        return; /* huge feature counts: validated above, scoring them only costs time */
    double *rows = malloc((size_t)NR * nf * sizeof(double));
    double *a = malloc((size_t)NR * k * sizeof(double));
    double *b = malloc((size_t)NR * k * sizeof(double));
    size_t bytes = hp_lgbm_bytes(v);
    void *mem = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (rows && a && b && mem) {
        for (uint32_t r = 0; r < NR; r++)
            for (uint32_t j = 0; j < nf; j++)
                rows[(size_t)r * nf + j] = edge[(r + j) % NR];
        const hp_lgbm *m = hp_lgbm_build(v, mem, bytes);
        if (m == NULL)
            abort();
        for (int margin = 0; margin <= 1; margin++) {
            size_t per = model_outputs_per_row(v, margin);
            refeval_lgbm_predict(v, rows, NR, margin, a);
            hp_lgbm_score(m, rows, NR, margin, b);
            if (memcmp(a, b, NR * per * sizeof(double)) != 0) {
                fprintf(stderr, "worker and refeval differ (margin %d)\n", margin);
                abort();
            }
            /* one row at a time: the binned single-row walk (depth-sorted runs of trees) */
            for (uint32_t r = 0; r < NR; r++)
                hp_lgbm_score(m, rows + (size_t)r * nf, 1, margin, b + (size_t)r * per);
            if (memcmp(a, b, NR * per * sizeof(double)) != 0) {
                fprintf(stderr, "worker (single rows) and refeval differ (margin %d)\n", margin);
                abort();
            }
        }
    }
    free(rows);
    free(a);
    free(b);
    free(mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    lgbm_info info;
    memset(&info, 0, sizeof info);
    void *blob = (void *)1;
    size_t blob_len = 0;
    char err[256];
    int st = lgbm_compile(text, size, &info, &blob, &blob_len, err, sizeof err);
    (void)lgbm_status_name(st);
    if (st == LGBM_OK) {
        model_view v;
        if (blob == NULL || model_validate(blob, blob_len, NULL, 0, &v, err, sizeof err) != 0) {
            fprintf(stderr, "lgbm_compile OK but the blob does not validate: %s\n", err);
            abort();
        }
        if (v.format != MODEL_FORMAT_LGBM || v.hdr->num_feature != info.num_feature ||
            v.hdr->num_trees != info.num_trees || v.hdr->num_class != info.num_class)
            abort();
        score_both(&v);
        free(blob);
        lgbm_info_free(&info);
    } else {
        if (st != LGBM_INVALID && st != LGBM_UNSUPPORTED && st != LGBM_NOMEM)
            abort();
        if (blob != NULL || memchr(err, 0, sizeof err) == NULL)
            abort();
    }
    free(text);
    return 0;
}
