/* scoring.h - scoring rows with stored models, the one place that knows where the math runs:
 *   VIGIL_HOTPATH_MODE=worker     (default) SCORE frames to vigil-hotpath; a worker that lacks the
 *                                 model answers UNKNOWN_MODEL, we LOAD_MODEL it and retry once.
 *   VIGIL_HOTPATH_MODE=inprocess  the plain reference evaluator (common/refeval.c) in this process.
 * Both use compiled blobs cached here (bounded, LRU): in-process scoring reads them, and a worker
 * that lacks a model is loaded from them without a database round trip.
 * Owns: model metadata lookups, the compiled-blob cache, the SCORE/LOAD_MODEL payloads.
 * Thread-safe.  Every call honours the caller's absolute deadline. */
#ifndef VIGIL_SCORING_H
#define VIGIL_SCORING_H

#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "db.h"
#include <libpq-fe.h>

enum scoring_status {
    SC_OK = 0,
    SC_NOT_FOUND = 1,   /* no such model */
    SC_UNAVAILABLE = 2, /* worker unreachable/busy, or deadline passed */
    SC_DB = 3,          /* database unreachable/busy/timeout while fetching a model */
    SC_FAILED = 4,      /* the model or request was rejected (message in err) */
    SC_TOO_LARGE = 5, /* the worker cannot hold this model (frame or arena): err names the limit */
    SC_UNEXPLAINABLE = 6, /* explain: the compiled model has no covers, or a tree is too deep */
};

typedef struct scoring_model {
    char id[37];
    char sha256[65];      /* of the uploaded source: what decisions record */
    char blob_sha256[65]; /* of the compiled blob: the second half of the worker's model key */
    int version;
    uint32_t objective;
    uint32_t num_features;
    uint32_t num_class;
    uint32_t n_names;
    char **names; /* feature names, n_names of them (0 when the model has none) */
} scoring_model;

typedef struct scoring_job {
    const scoring_model *model;
    int output_margin;
    const float *rows; /* nrows x model->num_features, NaN = missing */
    uint32_t nrows;
    float *out; /* nrows x scoring_nout(model, output_margin), caller-allocated */
    /* NULL, or nrows x num_class x (num_features + 1) floats (caller-allocated) that receive the
     * rows' SHAP contributions in the same call (scoring_explain_job's layout): the worker's
     * SCORE section flag WIRE_SCORE_EXPLAIN, common/treeshap.c in process.  A model that cannot
     * be explained (no covers, too deep, LightGBM) fails the call with SC_UNEXPLAINABLE. */
    float *contribs;
} scoring_job;

/* The same in double, for models that score in double (scoring_is_f64: LightGBM).  A float
 * scoring_job for such a model is widened to double and its outputs narrowed to float. */
typedef struct scoring_job64 {
    const scoring_model *model;
    int output_margin;
    const double *rows; /* nrows x model->num_features, NaN = missing */
    uint32_t nrows;
    double *out; /* nrows x scoring_nout(model, output_margin), caller-allocated */
} scoring_job64;

/* 1 if the model scores in double (a LightGBM model). */
int scoring_is_f64(const scoring_model *m);

/* The columns scoring_model_from_row reads, for a models table aliased t (8 columns). */
#define SCORING_MODEL_COLS(t)                                                                      \
    t ".id, " t ".sha256, " t ".version, " t ".objective, " t ".num_features, " t ".num_class, "   \
      "coalesce(array_to_json(" t ".feature_names)::text, '[]'), "                                 \
      "encode(" t ".compiled_sha256, 'hex')"

/* Fills m from SCORING_MODEL_COLS starting at column col of row.  Returns 0, or -1 when the id
 * column is NULL (no model).  Free with scoring_model_free. */
int scoring_model_from_row(const PGresult *r, int row, int col, scoring_model *m);

/* Reads model id's metadata with connection c.  Returns SC_OK (free with scoring_model_free),
 * SC_NOT_FOUND, or SC_DB with *db_rc the db_status. */
int scoring_meta(db_conn *c, const char *id, int64_t deadline_ms, scoring_model *m, int *db_rc);
void scoring_model_free(scoring_model *m);

/* Outputs per row for this model and mode. */
uint32_t scoring_nout(const scoring_model *m, int output_margin);

/* Scores njobs (1..WIRE_MAX_SECTIONS) jobs in one round trip (worker mode) or in process.
 * Returns an scoring_status, err filled when not SC_OK.  May take a database connection from
 * a->db to fetch a compiled model. */
int scoring_run(const app *a, scoring_job *jobs, int njobs, int64_t deadline_ms, char *err,
                size_t errlen);

/* scoring_run for double jobs; every job's model must satisfy scoring_is_f64. */
int scoring_run64(const app *a, scoring_job64 *jobs, int njobs, int64_t deadline_ms, char *err,
                  size_t errlen);

/* An explanation job (POST /models/{id}/explain, the decision's reasons). */
typedef struct scoring_explain_job {
    const scoring_model *model;
    const float *rows; /* nrows x model->num_features, NaN = missing */
    uint32_t nrows;
    float *contribs; /* nrows x num_class x (num_features + 1), caller-allocated: per row, per
                        group, the SHAP value of each feature then the bias (pred_contribs) */
    float *margins;  /* nrows x num_class raw margins, caller-allocated: bit-identical to a SCORE
                        with output_margin, so the objective's transform of them is the score */
} scoring_explain_job;

/* Explains one job: EXPLAIN to the worker (loading the model once on UNKNOWN_MODEL) or, in
 * process, common/treeshap.c.  Returns a scoring_status (SC_UNEXPLAINABLE: the model was compiled
 * without covers or is too deep); err filled when not SC_OK.  Thread-safe. */
int scoring_explain(const app *a, scoring_explain_job *job, int64_t deadline_ms, char *err,
                    size_t errlen);

/* The API's cache of compiled blobs (both modes), created by main; max_bytes bounds it.  It also
 * remembers (SCORING_REFUSED_TTL_MS, at most SCORING_REFUSED_MAX keys) the models the worker
 * refused as too large, so such a model is not pushed into the socket on every request. */
typedef struct scoring_cache scoring_cache;
scoring_cache *scoring_cache_create(size_t max_bytes);
void scoring_cache_destroy(scoring_cache *c);
/* Models held and their bytes (for /metrics; 0 and 0 for a NULL cache).  Thread-safe. */
void scoring_cache_counts(scoring_cache *c, unsigned *models, size_t *bytes);

#define SCORING_REFUSED_TTL_MS 60000
#define SCORING_REFUSED_MAX 32

/* The largest payload of one worker frame (VIGIL_HOTPATH_MAX_FRAME_MB), in bytes. */
uint64_t scoring_frame_bytes(const app *a);
/* Bytes of a SCORE request with one section of nrows x nfeat values of elem bytes (4: float32;
 * 8: float64, whose sections carry up to 4 bytes of alignment padding), and of its answer with
 * nout outputs per row: what must fit scoring_frame_bytes (the same bound applies in process). */
uint64_t scoring_request_bytes(uint32_t nrows, uint32_t nfeat, size_t elem);
uint64_t scoring_answer_bytes(uint32_t nrows, uint32_t nout, size_t elem);

/* Whether the worker can load a compiled blob of blob_len bytes for model id (blob_sha256 hex):
 * it must fit one LOAD_MODEL frame, fit the worker's arena when STATS reports its size (worker
 * mode; asked within deadline_ms, skipped when the worker does not answer), and not have been
 * refused as too large recently.  Returns 0, or -1 with why naming the limit.  Thread-safe. */
int scoring_loadable(const app *a, const char *id, const char *blob_sha256, uint64_t blob_len,
                     int64_t deadline_ms, char *why, size_t whylen);

#endif
