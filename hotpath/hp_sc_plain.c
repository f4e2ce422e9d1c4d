/* hp_sc_plain.c - the "plain" scorer: the reference layout as a selectable kernel
 * (VIGIL_HOTPATH_KERNEL=plain), and the worked example of adding a scorer (hotpath/README.md).
 *
 * Layout: the validated blob itself, copied into the arena after a small header holding its
 * model_view (re-validated on the copy, so every pointer points into the arena, never into the
 * LOAD_MODEL payload).  Scoring: common/refeval.c's refeval_predict, one row and one tree at a
 * time over the blob's 16-byte node records; large batches are split into row ranges over the
 * compute pool as hp_forest does.  It is therefore bit-identical to refeval by construction and
 * serves as the baseline the tuned layouts are measured against (tests/tools/bench_kernel).
 *
 * This file is the whole scorer: the registry learns of it from one line, HP_SCORER(plain), in
 * hp_scorers.def (hp_scorer.c declares hp_scorer_plain from that line).
 *
 * Costs: bytes O(1); build O(blob) (memcpy + model_validate); score O(rows x sum of tree depths),
 * no allocation (refeval uses a MODEL_MAX_CLASSES-float stack array).  Nothing here allocates,
 * locks or keeps state outside the layout. */
#include <string.h>

#include "hp_assert.h"
#include "hp_pool.h"
#include "hp_scorer.h"
#include "model.h"
#include "refeval.h"

typedef struct plain_layout {
    model_view v; /* points into blob[] below */
    _Alignas(HP_LAYOUT_ALIGN) unsigned char blob[];
} plain_layout;

static size_t plain_bytes(const model_view *v)
{
    return sizeof(plain_layout) + v->blob_len;
}

static const void *plain_build(const model_view *v, void *dst, size_t len)
{
    plain_layout *l = dst;
    char err[128];
    if (len < plain_bytes(v))
        return NULL;
    memcpy(l->blob, v->hdr, v->blob_len);
    /* Cannot fail (the same bytes passed model_validate); O(blob), allocation-free. */
    if (model_validate(l->blob, v->blob_len, NULL, 0, &l->v, err, sizeof err) != 0)
        return NULL;
    return l;
}

typedef struct plain_job {
    const model_view *v;
    const float *rows;
    size_t nrows, chunk;
    int output_margin;
    uint32_t nout;
    float *out;
} plain_job;

static void plain_part(void *arg, unsigned part)
{
    const plain_job *j = arg;
    size_t a = (size_t)part * j->chunk;
    size_t b = a + j->chunk < j->nrows ? a + j->chunk : j->nrows;
    size_t nf = j->v->hdr->num_feature;
    if (a < b)
        refeval_predict(j->v, j->rows + a * nf, b - a, j->output_margin, j->out + a * j->nout);
}

static void plain_score(const void *layout, const float *rows, size_t nrows, int output_margin,
                        float *out, hp_pool *pool, uint64_t min_parallel_work)
{
    const plain_layout *l = layout;
    HP_ASSERT(l != NULL && (rows != NULL || nrows == 0) && (out != NULL || nrows == 0));
    unsigned helpers = hp_pool_threads(pool);
    uint32_t ntrees = l->v.hdr->num_trees ? l->v.hdr->num_trees : 1;
    if (helpers == 0 || nrows < 2 || (uint64_t)nrows * ntrees < min_parallel_work) {
        refeval_predict(&l->v, rows, nrows, output_margin, out);
        return;
    }
    unsigned nparts = helpers + 1;
    plain_job j = {&l->v,
                   rows,
                   nrows,
                   (nrows + nparts - 1) / nparts,
                   output_margin,
                   model_outputs_per_row(&l->v, output_margin),
                   out};
    hp_pool_run(pool, plain_part, &j, nparts);
}

/* LightGBM models: refeval_lgbm_predict itself, on the slot thread. */
static void plain_score64(const void *layout, const double *rows, size_t nrows, int output_margin,
                          double *out, hp_pool *pool, uint64_t min_parallel_work)
{
    const plain_layout *l = layout;
    (void)pool;
    (void)min_parallel_work;
    HP_ASSERT(l != NULL && l->v.format == MODEL_FORMAT_LGBM);
    refeval_lgbm_predict(&l->v, rows, nrows, output_margin, out);
}

const hp_scorer hp_scorer_plain = {
    .name = "plain",
    .bytes = plain_bytes,
    .build = plain_build,
    .score = plain_score,
    .score64 = plain_score64,
    .release = NULL, /* the layout lives entirely in the arena's memory */
};
