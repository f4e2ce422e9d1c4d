/* bench_lgbm.c - speed of the worker's LightGBM walk (hotpath/hp_lgbm.c) against the reference
 * evaluator (common/refeval.c), single thread.
 *
 *   bench_lgbm MODEL.txt ROWS.json [EXPECTED.json]
 *     e.g. bin/tests/bench_lgbm tests/fixtures/refs/lgbm_k_speed_binary/{model.txt,rows.json,
 *          expected.json}
 *
 * Prints the layout the model got and why (hp_lgbm_describe), ns per tree per row (best of 25
 * passes over all rows, thread CPU time) for refeval and the worker walk beside LightGBM's own
 * figure on lgbm_k (refs README: 133 ns/tree/row, C API, 1 thread; LightGBM is not packaged in
 * Debian, so it is quoted, not run), and single-row latency (p50/p99, CPU time and wall clock).
 * Checks that both are bit-identical to each other and, with EXPECTED, to LightGBM's predictions
 * and raw scores (exit 1 if not).  Timing is never asserted. */
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

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
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
    /* single rows: 1 thread, NLAT calls cycling through the rows, best of 3 rounds by p99; each
     * call timed by the thread's CPU clock (now_s) and by the wall clock */
    enum { NLAT = 5000 };
    double *lat = malloc(NLAT * sizeof(double)), *latw = malloc(NLAT * sizeof(double));
    double c50 = 0, c99 = INFINITY, w50 = 0, w99 = INFINITY;
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < NLAT; i++) {
            double w0 = wall_s(), t0 = now_s();
            hp_lgbm_score(m, rows + (i % nrows) * ncols, 1, 0, b);
            double t1 = now_s();
            latw[i] = wall_s() - w0;
            lat[i] = t1 - t0;
        }
        qsort(lat, NLAT, sizeof(double), cmp_double);
        qsort(latw, NLAT, sizeof(double), cmp_double);
        if (lat[NLAT * 99 / 100] < c99) {
            c50 = lat[NLAT / 2];
            c99 = lat[NLAT * 99 / 100];
        }
        if (latw[NLAT * 99 / 100] < w99) {
            w50 = latw[NLAT / 2];
            w99 = latw[NLAT * 99 / 100];
        }
    }
    double cells = (double)nrows * T;
    char desc[256];
    printf("model %s: %u trees, %u features, %u outputs; %zu rows\n", argv[1], T,
           v.hdr->num_feature, k, nrows);
    printf("  layout: %s\n", hp_lgbm_describe(m, desc, sizeof desc));
    printf("  %-38s %12s %12s %14s\n", "batch scoring, 1 thread", "ns/tree/row", "rows/s",
           "vs LightGBM");
    printf("  %-38s %12.2f %12.0f %14s\n", "LightGBM 4.6 C API (refs README)", 133.0,
           1e9 / (133.0 * T), "1.00x");
    printf("  %-38s %12.2f %12.0f %13.2fx\n", "reference evaluator (common/)",
           best_ref * 1e9 / cells, nrows / best_ref, 133.0 / (best_ref * 1e9 / cells));
    printf("  %-38s %12.2f %12.0f %13.2fx   (target >= 10x: <= 13.3 ns/tree/row)\n",
           "kernel (hp_lgbm), 1 thread", best_hp * 1e9 / cells, nrows / best_hp,
           133.0 / (best_hp * 1e9 / cells));
    printf("  single-row latency, 1 thread, %d calls (best of 3 rounds): CPU time p50 %.1f us, "
           "p99 %.1f us; wall clock p50 %.1f us, p99 %.1f us (LightGBM SingleRowFast median "
           "132-135 us)\n",
           NLAT, c50 * 1e6, c99 * 1e6, w50 * 1e6, w99 * 1e6);
    printf("  bit-identical: %s\n", bad ? "NO" : "yes");
    free(latw);
    free(lat);
    free(a);
    free(b);
    free(mem);
    free(rows);
    free(blob);
    free(text);
    return bad;
}
