/* bench_kernel.c - speed of the worker's scoring kernels, EVERY scorer registered in
 * hotpath/hp_scorers.def (hp_scorer_at(0..count-1); the default first), against the reference
 * evaluator (common/refeval.c) and, when given its figure, xgboost's own predictor.
 *
 *   bench_kernel MODEL ROWS.txt [XGB_NS_PER_ROW [LABEL]] an xgboost model (JSON or UBJSON) + rows
 *                                                         (gen_model.py, tests/fixtures/refs);
 *                                                         LABEL names the model in the output
 *   bench_kernel --synthetic                              1000 random complete-ish depth-8 trees,
 *                                                         50 features (model_builder), random rows
 *
 * Prints ns per tree per row and rows/s for: refeval, the kernel on 1 thread (best batch by the
 * thread's CPU time), the kernel on all CPUs (its compute pool, as the worker runs it; wall clock),
 * xgboost (if given), the ratios, and single-row latency percentiles beside the host's own floor
 * for a call that long (a register-only loop: what interrupts and the hypervisor add to any call),
 * one block per kernel, each headed "kernel <name>" and, for the forest kernel, the layout the
 * model got and why (hp_forest_describe) (only the one named by VIGIL_HOTPATH_KERNEL when that is
 * set).  Also checks
 * that each kernel's outputs are bit-identical to refeval's on every row (exit 1 if not).  Timing
 * is never asserted.  Built by the Makefile as bin/tests/bench_kernel (links api/ for xgb_compile).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hp_forest.h"
#include "hp_pool.h"
#include "hp_scorer.h"
#include "model.h"
#include "model_build.h"
#include "refeval.h"
#include "xgbmodel.h"

static double now_s(void)
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
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        *len = (size_t)n;
    }
    return buf;
}

static float *read_rows(const char *path, size_t *rows, size_t *cols)
{
    size_t len;
    char *txt = slurp(path, &len);
    if (!txt)
        return NULL;
    char *p = txt, *end;
    *rows = strtoul(p, &end, 10);
    p = end;
    *cols = strtoul(p, &end, 10);
    p = end;
    float *m = malloc(*rows * *cols * sizeof(float));
    for (size_t i = 0; m && i < *rows * *cols; i++) {
        m[i] = strtof(p, &end);
        p = end;
    }
    free(txt);
    return m;
}

static uint64_t rs = 0x853C49E6748FEA9Bull;
static uint32_t rnd(uint32_t n)
{
    rs ^= rs >> 12;
    rs ^= rs << 25;
    rs ^= rs >> 27;
    return (uint32_t)(((rs * 0x2545F4914F6CDD1Dull) >> 32) % n);
}
static float rndf(void)
{
    return (float)rnd(1u << 24) / (float)(1 << 24) * 4.0f - 2.0f;
}

/* 1000 trees of depth 8 over 50 features, each node internal with probability 0.95 above depth 8,
 * i.e. close to what xgboost grows with max_depth=8. */
static void *synthetic_model(size_t *len)
{
    enum { NF = 50, NT = 1000, D = 8 };
    model_src_node nodes[(2 << D) - 1];
    model_builder *b = model_builder_new(MODEL_OBJ_BINARY_LOGISTIC, 0, NF, 1, 0.5f, 0.0f);
    char err[256];
    for (int t = 0; t < NT; t++) {
        uint32_t n = (2u << D) - 1;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t depth = 0;
            for (uint32_t j = i + 1; j > 1; j >>= 1)
                depth++;
            int internal = depth < D && rnd(100) < 95;
            memset(&nodes[i], 0, sizeof nodes[i]);
            nodes[i].left = internal ? (int32_t)(2 * i + 1) : -1;
            nodes[i].right = internal ? (int32_t)(2 * i + 2) : -1;
            nodes[i].feature = rnd(NF);
            nodes[i].default_left = (int)rnd(2);
            nodes[i].value = internal ? rndf() : rndf() * 0.05f;
        }
        if (model_builder_add_tree(b, 0, 1.0f, nodes, n, err, sizeof err) != 0) {
            fprintf(stderr, "add_tree: %s\n", err);
            exit(2);
        }
    }
    void *blob;
    if (model_build(b, &blob, len, err, sizeof err) != 0) {
        fprintf(stderr, "build: %s\n", err);
        exit(2);
    }
    model_builder_free(b);
    return blob;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

enum { NLAT = 20000, LAT_ROUNDS = 5 };

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Single-row latency percentiles (lat_stats: p50, p99, max), wall clock and thread CPU time. */
typedef struct lat_stats {
    double p50, p99, max;
} lat_stats;

static void percentiles(double *lat, lat_stats *st)
{
    qsort(lat, NLAT, sizeof lat[0], cmp_double);
    st->p50 = lat[NLAT / 2];
    st->p99 = lat[NLAT * 99 / 100];
    st->max = lat[NLAT - 1];
}

/* Times NLAT calls of call(arg, i) in LAT_ROUNDS rounds.  Each call is timed twice: by the wall
 * clock (what a caller waits, including any time the scheduler gave the CPU to another process)
 * and by the thread's CPU clock (the work's own time: on a shared machine the wall-clock tail is
 * mostly other jobs' time slices).  The CPU clock's own cost (one clock_gettime pair, measured
 * here) is subtracted.  Per clock, the round with the lowest p99 is reported. */
static void timed_rounds(void (*call)(void *, int), void *arg, lat_stats *wall, lat_stats *cpu)
{
    static double lw[NLAT], lc[NLAT];
    double over = INFINITY;
    for (int i = 0; i < 1000; i++) {
        double a = cpu_s(), b = cpu_s();
        over = b - a < over ? b - a : over;
    }
    wall->p99 = cpu->p99 = INFINITY;
    for (int round = 0; round < LAT_ROUNDS; round++) {
        for (int i = 0; i < NLAT; i++) {
            double a = now_s(), c = cpu_s();
            call(arg, i);
            double d = cpu_s();
            lw[i] = now_s() - a;
            lc[i] = d - c - over;
        }
        lat_stats w, c;
        percentiles(lw, &w);
        percentiles(lc, &c);
        if (w.p99 < wall->p99)
            *wall = w;
        if (c.p99 < cpu->p99)
            *cpu = c;
    }
}

/* One single-row call of a scorer: the path the slot thread takes for one row, 1 thread. */
typedef struct row_call {
    const hp_scorer *sc;
    const void *f;
    const float *rows;
    size_t nrows, ncols;
    hp_pool *pool;
    float *out;
} row_call;

static void score_one(void *arg, int i)
{
    const row_call *rc = arg;
    const float *r = rc->rows + (size_t)i % rc->nrows * rc->ncols;
    rc->sc->score(rc->f, r, 1, 0, rc->out, rc->pool, HP_PARALLEL_MIN_WORK);
}

/* Single-row latency: sc->score on 1 row, NLAT calls cycling through the rows (timed_rounds). */
static void latency(const hp_scorer *sc, const void *f, const float *rows, size_t nrows,
                    size_t ncols, hp_pool *pool, float *out, lat_stats *wall, lat_stats *cpu)
{
    row_call rc = {sc, f, rows, nrows, ncols, pool, out};
    timed_rounds(score_one, &rc, wall, cpu);
}

/* The host's own floor for a call of a given length: a chain of multiply-adds on registers only
 * (no memory, no branch to mispredict), iters long.  Its tail is what this machine adds to ANY
 * call that long (timer and other interrupts, the hypervisor's exits, counted in the thread's CPU
 * time), so a kernel's single-row p99 is read beside it. */
static volatile uint64_t floor_sink;

static void reg_chain(void *arg, int i)
{
    uint64_t n = *(const uint64_t *)arg, s = (uint64_t)i;
    for (uint64_t k = 0; k < n; k++)
        s = s * 6364136223846793005u + k;
    floor_sink = s;
}

/* Calibrates reg_chain to take about target_s of CPU time, then times it like latency(). */
static void host_floor(double target_s, lat_stats *wall, lat_stats *cpu)
{
    uint64_t n = 1000000;
    double best = INFINITY;
    for (int i = 0; i < 5; i++) {
        double a = cpu_s();
        reg_chain(&n, i);
        double d = cpu_s() - a;
        best = d < best ? d : best;
    }
    n = (uint64_t)(target_s / (best / 1e6));
    /* again at about the target length (a short chain runs at another pace): the best of 5
     * batches of 100 calls, so the clock's own cost does not count */
    best = INFINITY;
    for (int i = 0; i < 5; i++) {
        double a = cpu_s();
        for (int j = 0; j < 100; j++)
            reg_chain(&n, j);
        double d = (cpu_s() - a) / 100;
        best = d < best ? d : best;
    }
    n = (uint64_t)((double)n * target_s / best);
    timed_rounds(reg_chain, &n, wall, cpu);
}

typedef struct bench_ctx {
    const model_view *v;
    const float *rows;
    size_t nrows, ncols;
    const float *want; /* refeval's outputs for rows */
    hp_pool *pool;
    long ncpu;
    uint32_t nt;
    double ref_s, xgb_ns_row; /* refeval s/row; xgboost ns/row (0: not given) */
} bench_ctx;

/* Builds sc's layout of the model, checks its outputs against refeval bit for bit, prints its
 * figures.  Returns 0, or 1 when the outputs differ or the build fails. */
static int bench_one(const bench_ctx *b, const hp_scorer *sc)
{
    const model_view *v = b->v;
    size_t nrows = b->nrows, ncols = b->ncols;
    long ncpu = b->ncpu;
    uint32_t nt = b->nt;
    double ref_s = b->ref_s, xgb_ns_row = b->xgb_ns_row;
    hp_pool *pool = b->pool;
    const float *want = b->want;
    size_t fbytes = sc->bytes(v);
    if (fbytes == 0) {
        printf("\n== kernel %s: cannot hold this model (skipped)\n", sc->name);
        return 0;
    }
    size_t mbytes = (fbytes + HP_LAYOUT_ALIGN - 1) / HP_LAYOUT_ALIGN * HP_LAYOUT_ALIGN;
    void *mem = aligned_alloc(HP_LAYOUT_ALIGN, mbytes);
    float *rows = malloc(nrows * ncols * sizeof(float)), *got = malloc(nrows * sizeof(float));
    memcpy(rows, b->rows, nrows * ncols * sizeof(float)); /* NaNs are replaced below */
    const void *f = sc->build(v, mem, mbytes);
    if (f == NULL) {
        fprintf(stderr, "bench_kernel: kernel %s: build failed\n", sc->name);
        free(mem);
        free(rows);
        free(got);
        return 1;
    }
    printf("\n== kernel %s: layout %zu bytes reserved in the arena\n", sc->name, mbytes);
    if (sc == &hp_scorer_forest) {
        char why[256];
        printf("  layout: %s\n", hp_forest_describe(f, why, sizeof why));
    }

    /* Kernel: repeat the whole batch until ~0.7 s has passed; best batch time counts. */
    double k1 = INFINITY, kn = INFINITY;
    for (int mode = 0; mode < 2; mode++) {
        double best = INFINITY, start = now_s();
        int reps = 0;
        while (reps < 3 || now_s() - start < 0.7) {
            /* 1 thread: the thread's CPU time (xgb_time.py times xgboost the same way), so a
             * time slice given to another job mid-batch does not count; the pool: wall clock */
            double a = mode ? now_s() : cpu_s();
            sc->score(f, rows, nrows, 0, got, mode ? pool : NULL, HP_PARALLEL_MIN_WORK);
            double d = (mode ? now_s() : cpu_s()) - a;
            best = d < best ? d : best;
            reps++;
        }
        if (memcmp(got, want, nrows * sizeof(float)) != 0) {
            fprintf(stderr, "bench_kernel: kernel %s: output differs from refeval!\n", sc->name);
            free(mem);
            free(rows);
            free(got);
            return 1;
        }
        *(mode ? &kn : &k1) = best / (double)nrows;
    }
    printf("  outputs: kernel %s == refeval bit for bit on all %zu rows\n", sc->name, nrows);

    lat_stats lw, lc;
    latency(sc, f, rows, nrows, ncols, pool, got, &lw, &lc);

    double per = 1e9 / nt;
    printf("\n  %-34s %12s %14s %12s\n", "batch scoring", "ns/tree/row", "rows/s", "vs xgboost");
    printf("  %-34s %12.2f %14.0f %12s\n", "reference evaluator (common/)", ref_s * per,
           1.0 / ref_s, xgb_ns_row > 0 ? "" : "-");
    if (xgb_ns_row > 0)
        printf("  %-34s %12.2f %14.0f %12s\n", "xgboost inplace_predict nthread=1", xgb_ns_row / nt,
               1e9 / xgb_ns_row, "1.00x");
    char r1[32] = "-", rn[32] = "-";
    if (xgb_ns_row > 0) {
        snprintf(r1, sizeof r1, "%.2fx", xgb_ns_row * 1e-9 / k1);
        snprintf(rn, sizeof rn, "%.2fx", xgb_ns_row * 1e-9 / kn);
    }
    printf("  %-34s %12.2f %14.0f %12s\n", "kernel, 1 thread", k1 * per, 1.0 / k1, r1);
    char lbl[64];
    snprintf(lbl, sizeof lbl, "kernel, %ld threads (pool)", ncpu);
    printf("  %-34s %12.2f %14.0f %12s\n", lbl, kn * per, 1.0 / kn, rn);
    printf("  kernel vs reference evaluator: %.1fx (1 thread), %.1fx (%ld threads)\n", ref_s / k1,
           ref_s / kn, ncpu);
    /* The same rows with every NaN replaced by 0: the compare-only fast path. */
    size_t nan_vals = 0;
    for (size_t i = 0; i < nrows * ncols; i++)
        if (isnan(rows[i])) {
            rows[i] = 0.0f;
            nan_vals++;
        }
    if (nan_vals > 0) {
        double best = INFINITY, start = now_s();
        int reps = 0;
        while (reps < 3 || now_s() - start < 0.5) {
            double a = cpu_s();
            sc->score(f, rows, nrows, 0, got, NULL, 0);
            double d = cpu_s() - a;
            best = d < best ? d : best;
            reps++;
        }
        best /= (double)nrows;
        printf("  %-34s %12.2f %14.0f %12s\n", "kernel, 1 thread, rows without NaN", best * per,
               1.0 / best, "");
    }
    printf("\n  single-row latency, 1 thread, %d calls cycling through the rows (best of %d "
           "rounds):\n",
           NLAT, LAT_ROUNDS);
    printf("    rows as given, thread CPU time:  p50 %7.2f us, p99 %7.2f us, max %8.2f us\n",
           lc.p50 * 1e6, lc.p99 * 1e6, lc.max * 1e6);
    printf("    rows as given, wall clock:       p50 %7.2f us, p99 %7.2f us, max %8.2f us\n",
           lw.p50 * 1e6, lw.p99 * 1e6, lw.max * 1e6);
    lat_stats fw, fc;
    host_floor(lc.p50, &fw, &fc);
    printf("    host floor, a register-only loop of that CPU p50 (no memory): CPU p50 %7.2f us, "
           "p99 %7.2f us; wall p99 %7.2f us\n",
           fc.p50 * 1e6, fc.p99 * 1e6, fw.p99 * 1e6);
    if (nan_vals > 0) {
        latency(sc, f, rows, nrows, ncols, pool, got, &lw, &lc);
        printf("    rows without NaN, CPU time:      p50 %7.2f us, p99 %7.2f us, max %8.2f us\n",
               lc.p50 * 1e6, lc.p99 * 1e6, lc.max * 1e6);
        printf("    rows without NaN, wall clock:    p50 %7.2f us, p99 %7.2f us, max %8.2f us\n",
               lw.p50 * 1e6, lw.p99 * 1e6, lw.max * 1e6);
    }

    free(mem);
    free(rows);
    free(got);
    return 0;
}

int main(int argc, char **argv)
{
    char err[256];
    void *blob = NULL;
    size_t blob_len = 0, nrows = 10000, ncols = 50;
    float *rows = NULL;
    double xgb_ns_row = 0;
    const char *what;
    if (argc >= 2 && strcmp(argv[1], "--synthetic") == 0) {
        blob = synthetic_model(&blob_len);
        rows = malloc(nrows * ncols * sizeof(float));
        for (size_t i = 0; i < nrows * ncols; i++)
            rows[i] = rnd(10) == 0 ? NAN : rndf();
        what = "synthetic (model_builder random trees: 1000 x depth 8, 50 features, 10% NaN)";
    } else if (argc >= 3) {
        size_t len;
        char *json = slurp(argv[1], &len);
        if (!json || xgb_compile(json, len, NULL, &blob, &blob_len, err, sizeof err) != 0) {
            fprintf(stderr, "bench_kernel: %s: %s\n", argv[1], json ? err : "cannot read");
            return 2;
        }
        free(json);
        rows = read_rows(argv[2], &nrows, &ncols);
        if (!rows) {
            fprintf(stderr, "bench_kernel: cannot read %s\n", argv[2]);
            return 2;
        }
        if (argc >= 4)
            xgb_ns_row = atof(argv[3]);
        what = argc >= 5 ? argv[4]
                         : "xgboost 1.7.4 binary:logistic, 1000 trees, max_depth 8, 50 features, "
                           "10% NaN rows";
    } else {
        fprintf(stderr,
                "usage: bench_kernel MODEL ROWS.txt [XGB_NS_PER_ROW [LABEL]] | --synthetic\n");
        return 2;
    }
    model_view v;
    if (model_validate(blob, blob_len, NULL, 0, &v, err, sizeof err) != 0 ||
        v.hdr->num_feature != ncols) {
        fprintf(stderr, "bench_kernel: invalid model or rows: %s\n", err);
        return 2;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    hp_pool *pool = hp_pool_create(ncpu > 1 ? (unsigned)ncpu - 1 : 0, err, sizeof err);
    uint32_t nt = v.hdr->num_trees;
    uint64_t nodes = v.hdr->num_nodes;

    printf("model: %s\n", what);
    printf("  %u trees, %llu nodes (%.1f per tree), blob %zu bytes, %zu rows; %ld CPUs\n", nt,
           (unsigned long long)nodes, (double)nodes / nt, blob_len, nrows, ncpu);

    float *want = malloc(nrows * sizeof(float));
    /* refeval: on a slice (it is slow), scaled. */
    size_t ref_rows = nrows < 2000 ? nrows : 2000;
    double t0 = now_s();
    refeval_predict(&v, rows, ref_rows, 0, want);
    double ref_s = (now_s() - t0) / (double)ref_rows;
    refeval_predict(&v, rows + ref_rows * ncols, nrows - ref_rows, 0, want + ref_rows);
    bench_ctx b = {&v, rows, nrows, ncols, want, pool, ncpu, nt, ref_s, xgb_ns_row};
    int rc = 0;
    const char *only = getenv("VIGIL_HOTPATH_KERNEL"); /* set: that kernel alone */
    if (only && *only && hp_scorer_find(only) == NULL) {
        char names[256];
        fprintf(stderr, "bench_kernel: VIGIL_HOTPATH_KERNEL: unknown kernel '%s' (one of: %s)\n",
                only, hp_scorer_names(names, sizeof names));
        rc = 2;
    }
    for (unsigned i = 0; i < hp_scorer_count() && rc == 0; i++)
        if (!only || !*only || strcmp(only, hp_scorer_at(i)->name) == 0)
            rc = bench_one(&b, hp_scorer_at(i));
    if (xgb_ns_row <= 0)
        printf("\n  xgboost: skipped (no figure given: xgboost not available to run.sh)\n");

    hp_pool_destroy(pool);
    free(blob);
    free(rows);
    free(want);
    return rc;
}
