/* rows.h - parses a predict body, {"rows": [...], "output_margin": bool}, into a row-major float32
 * matrix, or float64 for LightGBM models (NaN = missing) without building a JSON tree.  Rows are
 * arrays in feature order (null = missing) or objects keyed by feature name (absent = missing).
 * Errors name the row and field. */
#ifndef VIGIL_ROWS_H
#define VIGIL_ROWS_H

#include <stddef.h>
#include <stdint.h>

typedef struct rows_result {
    float *rows;    /* malloc'd nrows x nfeat; free with rows_result_free */
    double *rows64; /* rows_parse_f64: the same as doubles (rows is then NULL) */
    uint32_t nrows;
    int output_margin;
    int status;      /* on failure: 400, 413 (too many rows) or 500 */
    int malformed;   /* on failure: 1 when the body is not strict JSON at all (400) */
    char field[192]; /* on failure: the offending field, e.g. "rows[3][2]" or "rows[0].age" */
    char err[320];   /* on failure: one-line reason */
} rows_result;

/* Parses body[0..len).  names (n_names, may be 0) map feature names to column indices; nfeat is
 * the model's feature count; more than max_rows rows is a 413.  Returns 0 (res->rows set) or -1
 * with res->status/field/err filled and nothing to free. */
int rows_parse(const char *body, size_t len, const char *const *names, uint32_t n_names,
               uint32_t nfeat, uint32_t max_rows, rows_result *res);
/* The same, into res->rows64 as doubles (exactly strtod of each number): LightGBM models, which
 * score in double. */
int rows_parse_f64(const char *body, size_t len, const char *const *names, uint32_t n_names,
                   uint32_t nfeat, uint32_t max_rows, rows_result *res);
/* rows_parse (f64 = 0) or rows_parse_f64 (f64 = 1) without their one-pass fast path for the
 * common body (array rows, known members, no escapes): json_validate, then the general reader.
 * Same contract; rows_parse answers exactly as this does for every body (test_rows compares the
 * two on random and mutated bodies). */
int rows_parse_general(const char *body, size_t len, const char *const *names, uint32_t n_names,
                       uint32_t nfeat, uint32_t max_rows, int f64, rows_result *res);
void rows_result_free(rows_result *res);

#endif
