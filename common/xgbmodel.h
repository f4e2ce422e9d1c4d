/* xgbmodel.h - XGBoost model (Booster.save_model, xgboost 1.x/2.x/3.x; JSON "m.json" or UBJSON
 * "m.ubj", told apart by content) -> vigil's compiled blob (common/model.h).
 *
 * Owns: the mapping of xgboost's model layout onto model_builder, read through mdoc (common/mdoc.h:
 * one index, a JSON and a UBJSON front end), including xgboost 3.x's vector base_score and
 * multi-target models (num_target > 1: one_output_per_tree, and multi_output_tree's vector
 * leaves), and the split of failures into "invalid" (not a well-formed xgboost model: HTTP 400)
 * and "unsupported" (a well-formed model we cannot score exactly: HTTP 422).
 * Costs: O(len) time.  Memory: the blob (twice while it is emitted: the builder's records and
 * the blob) plus the mdoc index of the document's containers and strings (numbers inside arrays
 * are re-read from the source, never indexed), bounded by len/4 + 4096 entries of 16 bytes
 * whatever the document claims (about 1.5 x len for xgboost's densest JSON, single-leaf trees),
 * plus one tree's nodes and categories at a time.  Categorical sets compile to at most one word
 * per category listed, plus one per set (common/model.h). */
#ifndef VIGIL_XGBMODEL_H
#define VIGIL_XGBMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "mdoc.h"

#define XGB_MAX_DEPTH MDOC_MAX_DEPTH               /* nesting bound, JSON and UBJSON */
#define XGB_MAX_NUMBER_CHARS MDOC_MAX_NUMBER_CHARS /* longest JSON number token accepted */

enum xgb_status {
    XGB_OK = 0,
    XGB_INVALID = 1,     /* malformed JSON or not structurally an xgboost model  -> 400 */
    XGB_UNSUPPORTED = 2, /* well-formed, but a booster/objective/feature we do not run -> 422 */
    XGB_NOMEM = 3,       /* allocation failed -> 500/503 */
};

typedef struct xgb_info {
    char objective[64]; /* xgboost's name, e.g. "binary:logistic" (truncated if longer) */
    char booster[32];   /* "gbtree" or "dart" */
    uint32_t num_feature;
    uint32_t num_class;   /* output groups: learner num_class for multi:*, else num_target */
    uint32_t num_target;  /* learner num_target: 1, or the targets of a multi-target model */
    uint32_t num_trees;   /* as xgboost counts them (vector-leaf trees count once) */
    float base_score;     /* as written by xgboost; the first one of a vector */
    float base_margin;    /* base_score through the objective's ProbToMargin (first group) */
    int format;           /* MODELFILE_XGB_JSON or MODELFILE_XGB_UBJSON (common/modelfile.h) */
    char version[32];     /* the xgboost version the file declares ("3.5.0"), "" if none */
    char **feature_names; /* n_feature_names malloc'd UTF-8 strings; NULL/0 when absent */
    size_t n_feature_names;
    char **feature_types; /* "q", "c", "int", "float", "i"...; NULL/0 when absent */
    size_t n_feature_types;
} xgb_info;

/* Parses and validates src[0..len) (need not be NUL-terminated), JSON or UBJSON as
 * modelfile_detect says (anything it does not call UBJSON is parsed as JSON, so a broken file gets
 * the JSON parser's reason), and compiles it.  On XGB_OK,
 * *blob (malloc'd, caller frees with free()) and *blob_len hold a blob that passed model_validate,
 * and info is filled (caller releases with xgb_info_free).  On any other status, *blob is NULL,
 * info holds nothing to free, and err holds a one-line reason; for XGB_UNSUPPORTED the reason
 * names what is unsupported (e.g. `booster "gblinear"`).  info may be NULL.  Thread-safe. */
int xgb_compile(const char *src, size_t len, xgb_info *info, void **blob, size_t *blob_len,
                char *err, size_t errlen);

/* Releases the strings of info and zeroes it.  Safe on a zeroed info. */
void xgb_info_free(xgb_info *info);

/* Name of a status ("ok", "invalid", "unsupported", "nomem"). */
const char *xgb_status_name(int status);

#endif
