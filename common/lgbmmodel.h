/* lgbmmodel.h - LightGBM text model (Booster.save_model("m.txt"), "version=v4") -> vigil's
 * compiled blob, format 2 (common/model.h "Format 2").
 *
 * Owns: a line reader for LightGBM's text format (header key=value lines, "Tree=i" blocks,
 * "end of trees"), the objective line with its parameters (sigmoid read exactly as LightGBM's own
 * Common::Atof reads it), and the split of failures into "invalid" (not a well-formed LightGBM
 * model: HTTP 400) and "unsupported" (well-formed, but not something we score exactly: HTTP 422,
 * e.g. linear trees, average_output, custom objectives).
 * Costs: O(len) time.  Memory: the blob, plus one tree's arrays at a time (each array is counted in
 * its line before it is allocated, so a lying count costs nothing), plus the feature names. */
#ifndef VIGIL_LGBMMODEL_H
#define VIGIL_LGBMMODEL_H

#include <stddef.h>
#include <stdint.h>

enum lgbm_status {
    LGBM_OK = 0,
    LGBM_INVALID = 1,     /* malformed, truncated, inconsistent counts or references -> 400 */
    LGBM_UNSUPPORTED = 2, /* well-formed, but not scored exactly by vigil -> 422 */
    LGBM_NOMEM = 3,       /* allocation failed -> 500 */
};

typedef struct lgbm_info {
    char objective[64];   /* LightGBM's objective name, e.g. "binary", "multiclass" */
    char version[16];     /* the declared version, "v4" */
    uint32_t num_feature; /* max_feature_idx + 1 */
    uint32_t num_class;   /* num_tree_per_iteration (== num_class) */
    uint32_t num_trees;
    double sigmoid;       /* binary / multiclassova: the sigmoid parameter; else 0 */
    char **feature_names; /* n_feature_names malloc'd strings; NULL/0 when absent */
    size_t n_feature_names;
} lgbm_info;

/* 1 if text[0..len) starts like a LightGBM text model (first line "tree"). */
int lgbm_looks_like(const char *text, size_t len);

/* Parses and validates text[0..len) (need not be NUL-terminated) and compiles it.  On LGBM_OK,
 * *blob (malloc'd, caller frees with free()) and *blob_len hold a format-2 blob that passed
 * model_validate, and info is filled (caller releases with lgbm_info_free).  On any other status
 * *blob is NULL, info holds nothing to free, and err holds a one-line reason.  info may be NULL.
 * Thread-safe. */
int lgbm_compile(const char *text, size_t len, lgbm_info *info, void **blob, size_t *blob_len,
                 char *err, size_t errlen);

/* Releases the strings of info and zeroes it.  Safe on a zeroed info. */
void lgbm_info_free(lgbm_info *info);

/* Name of a status ("ok", "invalid", "unsupported", "nomem"). */
const char *lgbm_status_name(int status);

/* LightGBM's Common::Atof (utils/common.h): not correctly rounded, so the objective's sigmoid
 * must be read with it to score bit-identically.  Reads from s (NUL-terminated); returns NaN when
 * s is not a number. */
double lgbm_atof(const char *s);

#endif
