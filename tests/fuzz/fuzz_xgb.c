/* fuzz_xgb.c - libFuzzer harness for common/xgbmodel.c: xgb_compile on an uploaded model file.
 *
 * Checks besides ASan/UBSan: the status is one of the four; XGB_OK comes with a blob that passes
 * model_validate and scores (refeval_predict) rows of missing values and zeros; any other status
 * leaves *blob NULL and a NUL-terminated reason; xgb_info_free releases everything (LeakSanitizer
 * reports what it does not). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "refeval.h"
#include "xgbmodel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = malloc(size ? size : 1);
    if (json == NULL)
        return 0;
    memcpy(json, data, size);
    xgb_info info;
    memset(&info, 0, sizeof info);
    void *blob = (void *)1;
    size_t blob_len = 0;
    char err[256];
    int st = xgb_compile(json, size, &info, &blob, &blob_len, err, sizeof err);
    (void)xgb_status_name(st);
    if (st == XGB_OK) {
        model_view v;
        if (blob == NULL || model_validate(blob, blob_len, NULL, 0, &v, err, sizeof err) != 0) {
            fprintf(stderr, "xgb_compile OK but the blob does not validate: %s\n", err);
            abort();
        }
        if (v.hdr->num_feature != info.num_feature || v.hdr->num_class != info.num_class)
            abort();
        uint32_t nf = v.hdr->num_feature, nout = model_outputs_per_row(&v, 1);
        float *rows = malloc((size_t)2 * nf * sizeof(float));
        float *out = malloc((size_t)2 * nout * sizeof(float));
        if (rows && out) {
            for (uint32_t j = 0; j < nf; j++) {
                rows[j] = NAN;
                rows[nf + j] = 0.0f;
            }
            refeval_predict(&v, rows, 2, 0, out);
        }
        free(rows);
        free(out);
        free(blob);
        xgb_info_free(&info);
    } else {
        if (st != XGB_INVALID && st != XGB_UNSUPPORTED && st != XGB_NOMEM)
            abort();
        if (blob != NULL || memchr(err, 0, sizeof err) == NULL)
            abort();
    }
    free(json);
    return 0;
}
