/* fuzz_ubj.c - libFuzzer harness for the UBJSON path: mdoc's UBJSON front end
 * (common/mdoc_ubjson.c) and its accessors (common/mdoc.c), then xgb_compile (common/xgbmodel.c) on
 * the same bytes as an uploaded .ubj model.
 *
 * Checks besides ASan/UBSan: mdoc_parse answers MDOC_OK / MDOC_INVALID / MDOC_NOMEM with a
 * NUL-terminated reason; an accepted document's index stays within len/4 + 4096 nodes, every
 * node's subtree end is in order, and every accessor (strings, integer and float arrays, member
 * look-up) runs on every node without reading outside the input; xgb_compile's oracles are those of
 * fuzz_xgb.c (an OK blob validates and scores; failures leave no blob), and an OK compile of input
 * that modelfile_detect calls UBJSON reports format MODELFILE_XGB_UBJSON. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mdoc.h"
#include "model.h"
#include "modelfile.h"
#include "refeval.h"
#include "xgbmodel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs every accessor over the index. */
static void walk(const mdoc *d)
{
    if ((size_t)d->count > d->len / 4 + 4096)
        abort();
    for (uint32_t i = 0; i < d->count; i++) {
        if (d->n[i].end <= i || d->n[i].end > d->count)
            abort();
        int t = mdoc_type(d, i);
        if (t == MDOC_STR) {
            char buf[256];
            (void)mdoc_str(d, i, buf, sizeof buf);
        } else if (t == MDOC_SCALAR) {
            int64_t v;
            (void)mdoc_int(d, i, INT64_MIN, INT64_MAX, &v);
        } else if (t == MDOC_ARR) {
            uint32_t n = mdoc_count(d, i);
            if (n <= 4096) {
                int64_t iv[4096];
                float fv[4096];
                (void)mdoc_arr_ints(d, i, n, INT64_MIN, INT64_MAX, iv, 1);
                (void)mdoc_arr_floats(d, i, n, fv);
            }
        } else if (t == MDOC_OBJ) {
            (void)mdoc_get(d, i, "learner");
            (void)mdoc_get_type(d, i, "version", MDOC_ARR);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    char err[256];
    mdoc d;
    int st = mdoc_parse(&d, MDOC_UBJSON, buf, size, err, sizeof err);
    if (st == MDOC_OK) {
        walk(&d);
        mdoc_free(&d);
    } else if ((st != MDOC_INVALID && st != MDOC_NOMEM) || memchr(err, 0, sizeof err) == NULL) {
        abort();
    }

    xgb_info info;
    memset(&info, 0, sizeof info);
    void *blob = (void *)1;
    size_t blob_len = 0;
    st = xgb_compile(buf, size, &info, &blob, &blob_len, err, sizeof err);
    if (st == XGB_OK) {
        model_view v;
        if (blob == NULL || model_validate(blob, blob_len, NULL, 0, &v, err, sizeof err) != 0) {
            fprintf(stderr, "xgb_compile OK but the blob does not validate: %s\n", err);
            abort();
        }
        if (v.hdr->num_feature != info.num_feature || v.hdr->num_class != info.num_class)
            abort();
        if (modelfile_detect(buf, size) == MODELFILE_XGB_UBJSON &&
            info.format != MODELFILE_XGB_UBJSON)
            abort();
        uint32_t nf = v.hdr->num_feature, nout = model_outputs_per_row(&v, 0);
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
    free(buf);
    return 0;
}
