/* bench_lgbm.c - speed of the worker's LightGBM walk (hotpath/hp_lgbm.c) against the reference
 * evaluator (common/refeval.c), single thread.
 *
 *   bench_lgbm MODEL.txt ROWS.json [EXPECTED.json]
 *     e.g. bin/tests/bench_lgbm tests/fixtures/refs/lgbm_k_speed_binary/{model.txt,rows.json,
 *          expected.json}
 *
 * Prints ns per tree per row (best of 25 passes over all rows, thread CPU time) for refeval and the
 * worker walk, and the single-row median.  Checks that both are bit-identical to each other and,
 * with EXPECTED, to LightGBM's predictions and raw scores (exit 1 if not).  Timing is never
 * asserted.  LightGBM's own figure on lgbm_k (tests/fixtures/refs, refs README) is 133 ns/tree/row
 * (C API, 1 thread). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hp_lgbm.h"
#include "lgbmmodel.h"
#include "model.h"
#include "refeval.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: the machine is shared */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = '\0';
        *len = (size_t)n;
    }
    return b;
}

/* A [n] or [n][k] JSON array of numbers (null = NaN) into a malloc'd matrix. */
static double *matrix(const char *path, const char *member, size_t *n, size_t *k)
{
    size_t len;
    char *s = slurp(path, &len);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    const cJSON *a = cJSON_GetObjectItem(j, member);
    double *m = NULL;
    if (cJSON_IsArray(a)) {
        *n = (size_t)cJSON_GetArraySize(a);
        const cJSON *f = cJSON_GetArrayItem(a, 0);
        *k = cJSON_IsArray(f) ? (size_t)cJSON_GetArraySize(f) : 1;
        m = malloc(*n * *k * sizeof(double) + 8);
        size_t i = 0;
        const cJSON *row, *v;
        cJSON_ArrayForEach(row, a)
        {
            if (cJSON_IsArray(row)) {
                cJSON_ArrayForEach(v, row) m[i++] = cJSON_IsNumber(v) ? v->valuedouble : NAN;
            } else {
                m[i++] = cJSON_IsNumber(row) ? row->valuedouble : NAN;
            }
        }
    }
    cJSON_Delete(j);
    return m;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_lgbm MODEL.txt ROWS.json [EXPECTED.json]\n");
        return 2;
    }
    size_t len, nrows, ncols;
    char *text = slurp(argv[1], &len), err[256];
    void *blob;
    size_t blob_len;
    model_view v;
    if (!text || lgbm_compile(text, len, NULL, &blob, &blob_len, err, sizeof err) != LGBM_OK ||
        model_validate(blob, blob_len, NULL, 0, &v, err, sizeof err) != 0) {
        fprintf(stderr, "bench_lgbm: %s: %s\n", argv[1], text ? err : "unreadable");
        return 2;
    }
    double *rows = matrix(argv[2], "rows", &nrows, &ncols);
    if (!rows || ncols != v.hdr->num_feature) {
        fprintf(stderr, "bench_lgbm: %s: bad rows\n", argv[2]);
        return 2;
    }
    size_t bytes = hp_lgbm_bytes(&v);
    void *mem = aligned_alloc(64, (bytes + 63) / 64 * 64);
    const hp_lgbm *m = hp_lgbm_build(&v, mem, bytes);
    uint32_t k = v.hdr->num_class, T = v.hdr->num_trees;
    double *a = malloc(nrows * k * sizeof(double)), *b = malloc(nrows * k * sizeof(double));
    int bad = 0;
    double best_ref = 1e30, best_hp = 1e30;
    for (int rep = 0; rep < 25; rep++) {
        double t0 = now_s();
        if (rep < 2)
            refeval_lgbm_predict(&v, rows, nrows, 1, a);
        double t1 = now_s();
        hp_lgbm_score(m, rows, nrows, 1, b);
        double t2 = now_s();
        if (rep < 2 && t1 - t0 < best_ref)
            best_ref = t1 - t0;
        if (t2 - t1 < best_hp)
            best_hp = t2 - t1;
    }
    if (memcmp(a, b, nrows * k * sizeof(double)) != 0) {
        fprintf(stderr, "bench_lgbm: worker and refeval differ\n");
        bad = 1;
    }
    if (argc > 3) {
        for (int margin = 0; margin <= 1; margin++) {
            size_t en, ek;
            double *want = matrix(argv[3], margin ? "margins" : "predictions", &en, &ek);
            hp_lgbm_score(m, rows, nrows, margin, b);
            if (!want || en != nrows || memcmp(want, b, nrows * ek * sizeof(double)) != 0) {
                fprintf(stderr, "bench_lgbm: %s differ from %s\n",
                        margin ? "raw scores" : "predictions", argv[3]);
                bad = 1;
            }
            free(want);
        }
    }
    /* single rows */
    size_t ns = nrows < 1000 ? nrows : 1000;
    double *lat = malloc(ns * sizeof(double));
    for (size_t i = 0; i < ns; i++) {
        double t0 = now_s();
        hp_lgbm_score(m, rows + (i % nrows) * ncols, 1, 0, b);
        lat[i] = now_s() - t0;
    }
    qsort(lat, ns, sizeof(double), cmp_double);
    double cells = (double)nrows * T;
    printf("model %s: %u trees, %u features, %u outputs; %zu rows%s\n", argv[1], T,
           ncols == 0 ? 0 : v.hdr->num_feature, k, nrows,
           (m->flags & HPL_F_SLOW) ? " (general decision: categorical or missing-Zero nodes)" : "");
    printf("  refeval        %8.2f ns/tree/row  %10.0f rows/s\n", best_ref * 1e9 / cells,
           nrows / best_ref);
    printf("  worker (1 thr) %8.2f ns/tree/row  %10.0f rows/s  (%.1fx refeval; LightGBM C API "
           "on lgbm_k: 133 ns/tree/row)\n",
           best_hp * 1e9 / cells, nrows / best_hp, best_ref / best_hp);
    printf("  single row     median %.1f us, p90 %.1f us\n", lat[ns / 2] * 1e6,
           lat[ns * 9 / 10] * 1e6);
    printf("  bit-identical: %s\n", bad ? "NO" : "yes");
    free(lat);
    free(a);
    free(b);
    free(mem);
    free(rows);
    free(blob);
    free(text);
    return bad;
}
