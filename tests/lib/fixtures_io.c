/* fixtures_io.c - fixture files for end-to-end tests.  See fixtures_io.h. */
#include "fixtures_io.h"

#include "model.h"
#include "xgbmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *fx_dir(void)
{
    const char *d = getenv("VIGIL_FIXTURES");
    return d && *d ? d : "tests/fixtures";
}

void fx_path(const char *name, const char *suffix, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s.%s", fx_dir(), name, suffix);
}

char *fx_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (!f)
        return NULL;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = (n + 65536 + 1) * 2;
            char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
        }
        size_t r = fread(buf + n, 1, 65536, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

char *fx_read(const char *name, const char *suffix, size_t *len)
{
    char path[512];
    fx_path(name, suffix, path, sizeof path);
    return fx_slurp(path, len);
}

size_t fx_manifest(char names[][FX_NAME_MAX], size_t cap)
{
    char path[512];
    snprintf(path, sizeof path, "%s/MANIFEST", fx_dir());
    char *txt = fx_slurp(path, NULL);
    size_t n = 0;
    if (!txt)
        return 0;
    char *save = NULL;
    for (char *line = strtok_r(txt, "\n", &save); line && n < cap;
         line = strtok_r(NULL, "\n", &save))
        if (*line)
            snprintf(names[n++], FX_NAME_MAX, "%s", line);
    free(txt);
    return n;
}

float *fx_matrix_file(const char *path, size_t *rows, size_t *cols)
{
    char *txt = fx_slurp(path, NULL);
    float *m = NULL;
    char *p = txt, *end;
    if (!txt)
        return NULL;
    *rows = strtoul(p, &end, 10);
    p = end;
    *cols = strtoul(p, &end, 10);
    p = end;
    if (*rows == 0 || *cols == 0 || !(m = malloc(*rows * *cols * sizeof(float))))
        goto fail;
    for (size_t i = 0; i < *rows * *cols; i++) {
        m[i] = strtof(p, &end);
        if (end == p)
            goto fail;
        p = end;
    }
    free(txt);
    return m;
fail:
    free(m);
    free(txt);
    return NULL;
}

float *fx_matrix(const char *name, const char *suffix, size_t *rows, size_t *cols)
{
    char path[600];
    fx_path(name, suffix, path, sizeof path);
    return fx_matrix_file(path, rows, cols);
}

void *fx_compile(const char *name, xgb_info *info, size_t *blob_len, model_view *v, char *err,
                 size_t errlen)
{
    size_t len;
    void *blob = NULL;
    char *json = fx_read(name, "model.json", &len);
    if (!json) {
        snprintf(err, errlen, "cannot read %s/%s.model.json", fx_dir(), name);
        return NULL;
    }
    int rc = xgb_compile(json, len, info, &blob, blob_len, err, errlen);
    free(json);
    if (rc != XGB_OK)
        return NULL;
    if (model_validate(blob, *blob_len, NULL, 0, v, err, errlen) != 0) {
        free(blob);
        if (info)
            xgb_info_free(info);
        return NULL;
    }
    return blob;
}

int fx_sha256_file(const char *path, char out[65])
{
    char cmd[700], line[200] = "";
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char *got = fgets(line, sizeof line, p);
    int rc = pclose(p);
    if (!got || rc != 0 || strlen(line) < 64)
        return -1;
    memcpy(out, line, 64);
    out[64] = '\0';
    return 0;
}

uint32_t fx_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

fx_cmp fx_compare(const float *got, const float *want, size_t n)
{
    fx_cmp r = {n, 0, 0.0};
    for (size_t i = 0; i < n; i++) {
        if (fx_bits(got[i]) == fx_bits(want[i]) || (isnan(got[i]) && isnan(want[i]))) {
            r.identical++;
            continue;
        }
        double a = got[i], b = want[i];
        double rel = fabs(a - b) / fmax(fabs(b), 1e-30);
        if (!(rel <= r.max_rel)) /* NaN counts as infinitely wrong */
            r.max_rel = isnan(rel) ? INFINITY : rel;
    }
    return r;
}
