/* fx_lgbm.c - reading the LightGBM reference cases.  See fx_lgbm.h. */
#include "fx_lgbm.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures_io.h"

const char *const fx_lgbm_cases[] = {"lgbm_g_binary",       "lgbm_h_regression",
                                     "lgbm_i_multiclass",   "lgbm_j_categorical",
                                     "lgbm_k_speed_binary", NULL};

uint64_t fx_dbits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

size_t fx_dmismatch(const double *got, const double *want, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!(isnan(got[i]) && isnan(want[i])) && fx_dbits(got[i]) != fx_dbits(want[i]))
            bad++;
    return bad;
}

static cJSON *read_json(const char *name, const char *file)
{
    char path[1024];
    size_t len;
    snprintf(path, sizeof path, "%s/refs/%s/%s", fx_dir(), name, file);
    char *s = fx_slurp(path, &len);
    if (!s)
        return NULL;
    cJSON *j = cJSON_ParseWithLength(s, len);
    free(s);
    return j;
}

/* A [n] or [n][k] array of numbers/nulls into a malloc'd matrix. */
static double *matrix(const cJSON *a, size_t *n, size_t *k)
{
    if (!cJSON_IsArray(a))
        return NULL;
    *n = (size_t)cJSON_GetArraySize(a);
    const cJSON *first = cJSON_GetArrayItem(a, 0);
    *k = cJSON_IsArray(first) ? (size_t)cJSON_GetArraySize(first) : 1;
    double *m = malloc((*n) * (*k) * sizeof(double) + 8);
    if (!m)
        return NULL;
    size_t i = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, a)
    {
        if (cJSON_IsArray(row)) {
            if ((size_t)cJSON_GetArraySize(row) != *k)
                goto bad;
            const cJSON *v;
            cJSON_ArrayForEach(v, row) m[i++] = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        } else {
            if (*k != 1)
                goto bad;
            m[i++] = cJSON_IsNumber(row) ? row->valuedouble : NAN;
        }
    }
    return m;
bad:
    free(m);
    return NULL;
}

int fx_lgbm_load(const char *name, fx_lgbm_case *c)
{
    memset(c, 0, sizeof *c);
    char path[1024];
    snprintf(path, sizeof path, "%s/refs/%s/model.txt", fx_dir(), name);
    c->model = fx_slurp(path, &c->model_len);
    cJSON *rows = read_json(name, "rows.json"), *exp = read_json(name, "expected.json");
    size_t n1 = 0, n2 = 0;
    if (c->model && rows && exp) {
        c->rows = matrix(cJSON_GetObjectItem(rows, "rows"), &c->nrows, &c->ncols);
        c->pred = matrix(cJSON_GetObjectItem(exp, "predictions"), &n1, &c->npred);
        c->margin = matrix(cJSON_GetObjectItem(exp, "margins"), &n2, &c->nmargin);
    }
    cJSON_Delete(rows);
    cJSON_Delete(exp);
    if (!c->model || !c->rows || !c->pred || !c->margin || n1 != c->nrows || n2 != c->nrows) {
        fx_lgbm_free(c);
        return -1;
    }
    return 0;
}

void fx_lgbm_free(fx_lgbm_case *c)
{
    free(c->model);
    free(c->rows);
    free(c->pred);
    free(c->margin);
    memset(c, 0, sizeof *c);
}
