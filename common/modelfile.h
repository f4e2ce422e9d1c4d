/* modelfile.h - what kind of model file an upload is, decided by its content alone (never by a
 * file name or a Content-Type header), and the names the API shows for each kind.
 *
 * Owns: the detection rules and the format names/content types.  Costs: O(1) for the JSON/UBJSON
 * decision (the first bytes) and for LightGBM text (its first line).  No allocation, thread-safe.
 */
#ifndef VIGIL_MODELFILE_H
#define VIGIL_MODELFILE_H

#include <stddef.h>

enum modelfile_format {
    MODELFILE_UNKNOWN = 0,
    MODELFILE_XGB_JSON = 1,   /* Booster.save_model("m.json") */
    MODELFILE_XGB_UBJSON = 2, /* Booster.save_model("m.ubj"), xgboost >= 2.1's default */
    MODELFILE_LGBM_TEXT = 3,  /* LightGBM Booster.save_model("m.txt"), version=v4 */
};

/* Detects the format of bytes[0..len):
 *   - UBJSON: '{' followed by a UBJSON length marker (i U I l L) or a count ('#'), as xgboost's
 *     UBJWriter starts every file ("{L\0\0\0\0\0\0\0\x07learner...");
 *   - JSON: optional whitespace, then '{' followed by whitespace, '"' or '}';
 *   - LightGBM text: starts with the line "tree" (lgbm_compile then checks its "version=" line
 *     and answers an unsupported version with a 422 naming it);
 *   - anything else (including empty input): MODELFILE_UNKNOWN.
 * Returns an enum modelfile_format. */
int modelfile_detect(const void *bytes, size_t len);

/* "xgboost-json", "xgboost-ubjson", "lightgbm-text", or NULL for MODELFILE_UNKNOWN. */
const char *modelfile_format_name(int format);
/* The format of a name modelfile_format_name returns, or MODELFILE_UNKNOWN. */
int modelfile_format_from_name(const char *name);
/* Content-Type of the uploaded bytes: "application/json", "application/ubjson", "text/plain";
 * "application/octet-stream" for MODELFILE_UNKNOWN. */
const char *modelfile_content_type(int format);

#endif
