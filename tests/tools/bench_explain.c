/* bench_explain.c - one-row and batch explanation speed of the worker's explainer (hotpath/
 * hp_shap.c) and the reference (common/treeshap.c) on a model file and rows (tests/fixtures
 * matrix format).
 * Usage: bench_explain MODEL.json ROWS.txt [XGB_CPU_BEST XGB_CPU_MEDIAN [XGB_WALL_BEST
 * XGB_WALL_MEDIAN]] (the xgboost figures: µs per row of pred_contribs, nthread=1, measured by
 * tests/bench/explain_xgb.py on the same rows in the same `make bench`).  Prints µs per row on one
 * thread, the first 30 rows one at a time: the worker over 7 rounds (best and median, by the
 * thread's CPU clock and by the wall clock), the reference over 3; the ratios to xgboost (best to
 * best, median to median); then batch rows/s with 1 thread and with one thread per CPU.  Checks
 * that worker and reference agree bit for bit on every row timed.  Not a test: numbers only. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <time.h>

#include "clock.h"
#include "fixtures_io.h"
#include "hp_shap.h"
#include "model.h"
#include "treeshap.h"
#include "xgbmodel.h"

typedef struct batch_arg {
    const void *layout;
    const float *rows;
    size_t nrows, nc, ncol;
    void *scratch;
    float *contribs, *margins;
} batch_arg;

static void *batch_run(void *p)
{
    batch_arg *a = p;
    hp_shap_explain(a->layout, a->rows, a->nrows, a->contribs, a->margins, a->scratch);
    return NULL;
}

/* rows/s explaining rows[0..nrows) split over nthreads threads. */
static double batch_rate(const void *l, const float *rows, size_t nrows, size_t nc, size_t ncol,
                         size_t k, unsigned nthreads)
{
    pthread_t t[64];
    batch_arg a[64];
    size_t chunk = (nrows + nthreads - 1) / nthreads;
    int64_t t0 = clock_now_ns();
    for (unsigned i = 0; i < nthreads; i++) {
        size_t lo = i * chunk, hi = lo + chunk < nrows ? lo + chunk : nrows;
        a[i] = (batch_arg){l,
                           rows + lo * nc,
                           hi > lo ? hi - lo : 0,
                           nc,
                           ncol,
                           malloc(hp_shap_scratch_bytes(l)),
                           malloc((chunk * ncol + 1) * 4),
                           malloc((chunk * k + 1) * 4)};
        pthread_create(&t[i], NULL, batch_run, &a[i]);
    }
    for (unsigned i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        free(a[i].scratch), free(a[i].contribs), free(a[i].margins);
    }
    return (double)nrows / ((double)(clock_now_ns() - t0) / 1e9);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* This thread's CPU time in ns: on a loaded machine (the 2-core box is shared) wall time swings by
 * several x, CPU time much less. */
static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 5 && argc != 7) {
        fprintf(stderr, "usage: bench_explain MODEL.json ROWS.txt [XGB_CPU_BEST XGB_CPU_MEDIAN "
                        "[XGB_WALL_BEST XGB_WALL_MEDIAN]]\n");
        return 2;
    }
    size_t len, blen, nr, nc;
    char *src = fx_slurp(argv[1], &len), err[256];
    float *rows = fx_matrix_file(argv[2], &nr, &nc);
    void *blob = NULL;
    xgb_info info;
    model_view v;
    if (src == NULL || rows == NULL ||
        xgb_compile(src, len, &info, &blob, &blen, err, sizeof err) != XGB_OK ||
        model_validate(blob, blen, NULL, 0, &v, err, sizeof err) != 0) {
        fprintf(stderr, "bench_explain: cannot load: %s\n", err);
        return 1;
    }
    if (nc != v.hdr->num_feature || hp_shap_layout.bytes(&v) == 0) {
        fprintf(stderr, "bench_explain: %zu columns for %u features, or the model has no covers\n",
                nc, v.hdr->num_feature);
        return 1;
    }
    size_t need = hp_shap_layout.bytes(&v);
    void *mem = aligned_alloc(64, (need + 63) & ~(size_t)63);
    const void *l = hp_shap_layout.build(&v, mem, need);
    size_t ncol = (size_t)v.hdr->num_class * (v.hdr->num_feature + 1);
    float *c1 = malloc(ncol * 4), *c2 = malloc(ncol * 4), m1[MODEL_MAX_CLASSES],
          m2[MODEL_MAX_CLASSES];
    void *s1 = malloc(treeshap_scratch_bytes(&v)), *s2 = malloc(hp_shap_scratch_bytes(l));
    size_t n = nr < 30 ? nr : 30; /* one row at a time: ~7-50 ms each on the benchmark model */
    enum { HP_ROUNDS = 7, REF_ROUNDS = 3 };
    double hp_cpu[HP_ROUNDS], hp_wall[HP_ROUNDS], ref_cpu[REF_ROUNDS];
    for (size_t r = 0; r < n; r++) /* warm-up: the model's pages, the caches */
        hp_shap_explain(l, rows + r * nc, 1, c2, m2, s2);
    for (int rep = 0; rep < HP_ROUNDS; rep++) {
        if (rep < REF_ROUNDS) {
            int64_t t0 = cpu_ns();
            for (size_t r = 0; r < n; r++)
                treeshap_explain(&v, rows + r * nc, 1, c1, m1, s1);
            ref_cpu[rep] = (double)(cpu_ns() - t0) / 1e3 / (double)n;
        }
        int64_t t1 = cpu_ns(), w1 = clock_now_ns();
        for (size_t r = 0; r < n; r++)
            hp_shap_explain(l, rows + r * nc, 1, c2, m2, s2);
        hp_cpu[rep] = (double)(cpu_ns() - t1) / 1e3 / (double)n;
        hp_wall[rep] = (double)(clock_now_ns() - w1) / 1e3 / (double)n;
    }
    for (size_t r = 0; r < n; r++) {
        treeshap_explain(&v, rows + r * nc, 1, c1, m1, s1);
        hp_shap_explain(l, rows + r * nc, 1, c2, m2, s2);
        if (memcmp(c1, c2, ncol * 4) != 0) {
            fprintf(stderr, "bench_explain: row %zu differs\n", r);
            return 1;
        }
    }
    qsort(hp_cpu, HP_ROUNDS, sizeof(double), cmp_double);
    qsort(hp_wall, HP_ROUNDS, sizeof(double), cmp_double);
    qsort(ref_cpu, REF_ROUNDS, sizeof(double), cmp_double);
    const double cpu_best = hp_cpu[0], cpu_med = hp_cpu[HP_ROUNDS / 2];
    const double wall_best = hp_wall[0], wall_med = hp_wall[HP_ROUNDS / 2];
    printf("explain one row, single thread, %zu rows, %u trees, bit-identical to the reference:\n",
           n, v.hdr->num_trees);
    printf("  reference (common/treeshap.c)  CPU time best %.1f  median %.1f us/row (%d rounds)\n",
           ref_cpu[0], ref_cpu[REF_ROUNDS / 2], REF_ROUNDS);
    printf("  worker (hotpath/hp_shap.c)     CPU time best %.1f  median %.1f us/row; wall clock "
           "best %.1f  median %.1f (%d rounds)\n",
           cpu_best, cpu_med, wall_best, wall_med, HP_ROUNDS);
    if (argc >= 5) {
        double xb = strtod(argv[3], NULL), xm = strtod(argv[4], NULL);
        printf(
            "explain one row vs xgboost 1.7.4 pred_contribs (nthread=1, same rows), CPU time: "
            "xgboost best %.1f / median %.1f us/row, worker best %.1f / median %.1f: %.2fx best, "
            "%.2fx median (target >= 5x)\n",
            xb, xm, cpu_best, cpu_med, xb / cpu_best, xm / cpu_med);
        if (argc >= 7) {
            double wb = strtod(argv[5], NULL), wm = strtod(argv[6], NULL);
            printf("  same by the wall clock (the shared machine's other jobs included): xgboost "
                   "best %.1f / median %.1f, worker best %.1f / median %.1f: %.2fx best, %.2fx "
                   "median\n",
                   wb, wm, wall_best, wall_med, wb / wall_best, wm / wall_med);
        }
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned nth = ncpu > 1 ? (unsigned)(ncpu < 64 ? ncpu : 64) : 1;
    size_t nb = nr < 200 ? nr : 200;
    double r1 = batch_rate(l, rows, nb, nc, ncol, v.hdr->num_class, 1);
    double rn = batch_rate(l, rows, nb, nc, ncol, v.hdr->num_class, nth);
    printf("explain batch of %zu rows: %.0f rows/s on 1 thread, %.0f rows/s on %u threads\n", nb,
           r1, rn, nth);
    free(s1), free(s2), free(c1), free(c2), free(mem), free(blob), free(src), free(rows);
    xgb_info_free(&info);
    return 0;
}
