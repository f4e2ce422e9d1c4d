/* fixtures_io.h - reading tests/fixtures (xgboost 1.7.4 models and xgboost's own predictions, see
 * tests/fixtures/README.md) from unit and end-to-end tests, and expected values that must not come
 * from vigil's code: the SHA-256 of a file comes from the system's sha256sum.
 *
 * Fixtures are found through $VIGIL_FIXTURES, else tests/fixtures relative to the cwd.  Every
 * function returns NULL/-1 on failure (the caller asserts); nothing here aborts.  Not thread-safe
 * only in the sense that fx_dir() reads the environment. */
#ifndef VIGIL_FIXTURES_IO_H
#define VIGIL_FIXTURES_IO_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "xgbmodel.h"

#define FX_NAME_MAX 64

/* The fixtures directory. */
const char *fx_dir(void);
/* Reads a whole file into a malloc'd buffer (NUL-terminated, *len excludes the NUL). */
char *fx_slurp(const char *path, size_t *len);
/* Reads fixture file "NAME.SUFFIX" (e.g. "model.json") of the fixtures directory. */
char *fx_read(const char *name, const char *suffix, size_t *len);
/* Fixture names from MANIFEST into names[cap]; returns how many (0 on failure). */
size_t fx_manifest(char names[][FX_NAME_MAX], size_t cap);
/* A "ROWS COLS" + values matrix file (NAME.SUFFIX, e.g. "rows.txt") parsed with strtof; returns
 * malloc'd rows*cols floats or NULL. */
float *fx_matrix(const char *name, const char *suffix, size_t *rows, size_t *cols);
/* The same format read from any path. */
float *fx_matrix_file(const char *path, size_t *rows, size_t *cols);
/* Compiles fixture NAME.model.json with xgb_compile and validates the blob.  Returns the malloc'd
 * blob (*blob_len, *v set; info filled when non-NULL, release with xgb_info_free) or NULL with err.
 */
void *fx_compile(const char *name, xgb_info *info, size_t *blob_len, model_view *v, char *err,
                 size_t errlen);
/* The bits of a float, for bit-identity checks. */
uint32_t fx_bits(float f);

/* How close got[0..n) is to want[0..n) (xgboost's outputs): how many are bit-identical (two NaNs
 * count as identical) and the largest relative error of the others (a NaN error is infinite). */
typedef struct fx_cmp {
    size_t n, identical;
    double max_rel;
} fx_cmp;
fx_cmp fx_compare(const float *got, const float *want, size_t n);

/* Lower-case hex SHA-256 of a file, computed by `sha256sum` (an implementation independent of
 * common/sha256.c).  Returns 0 or -1. */
int fx_sha256_file(const char *path, char out[65]);
/* Path of fixture file NAME.SUFFIX into out[cap]. */
void fx_path(const char *name, const char *suffix, char *out, size_t cap);

#endif
