/* fx_lgbm.h - the LightGBM 4.6 ground truth of tests/fixtures/refs/lgbm_* (copied from the shared
 * reference set; see tests/fixtures/README.md): the model text, the exact double input rows and
 * LightGBM's own predictions and raw scores, read with cJSON (strtod: every double exact).
 * Returns -1 on any failure (the caller asserts); nothing here aborts. */
#ifndef VIGIL_FX_LGBM_H
#define VIGIL_FX_LGBM_H

#include <stddef.h>
#include <stdint.h>

/* The five LightGBM cases, NULL-terminated. */
extern const char *const fx_lgbm_cases[];

typedef struct fx_lgbm_case {
    char *model; /* model.txt, NUL-terminated */
    size_t model_len;
    double *rows; /* nrows x ncols, NaN for null */
    size_t nrows, ncols;
    double *pred; /* nrows x npred */
    size_t npred;
    double *margin; /* nrows x nmargin */
    size_t nmargin;
} fx_lgbm_case;

/* Loads case NAME (e.g. "lgbm_g_binary") from <fixtures>/refs/NAME/.  Free with fx_lgbm_free. */
int fx_lgbm_load(const char *name, fx_lgbm_case *c);
void fx_lgbm_free(fx_lgbm_case *c);

/* The bits of a double, for bit-identity checks. */
uint64_t fx_dbits(double d);

/* Number of positions where got and want differ in bits (two NaNs count as equal). */
size_t fx_dmismatch(const double *got, const double *want, size_t n);

#endif
