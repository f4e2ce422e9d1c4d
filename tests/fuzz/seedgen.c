/* seedgen.c - writes the seed corpora of the fuzz harnesses from tests/fixtures (make fuzz runs it
 * into build/fuzz/corpus/<target>/; nothing it writes is committed).
 *
 *   seedgen FIXTURE_DIR OUT_DIR
 *
 * For every fixture NAME.model.json: the JSON (xgb), its compiled blob (model), a LOAD_MODEL +
 * SCORE input built from NAME.rows.txt (score), predict bodies from its rows in array and object
 * form (json, rows).  Plus cursors (cursor) and one frame header per op (wire). */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cursor.h"
#include "model.h"
#include "sha256.h"
#include "wire.h"
#include "xgbmodel.h"

static const char *outdir;

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        *len = (size_t)n;
    }
    return buf;
}

static void put(const char *target, const char *name, const void *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", outdir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", outdir, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

/* Up to 4 rows of the fixture as a predict body; object form keys the first columns by the
 * names fuzz_rows.c passes. */
static size_t body(const float *m, size_t rows, size_t cols, int objects, int margin, char *out,
                   size_t cap)
{
    static const char *const names[] = {"age", "amount", "country", "a", "b"};
    size_t o = (size_t)snprintf(out, cap, "{\"rows\": [");
    for (size_t r = 0; r < rows && r < 4; r++) {
        o += (size_t)snprintf(out + o, cap - o, "%s%c", r ? ", " : "", objects ? '{' : '[');
        for (size_t c = 0; c < cols && c < (objects ? 5 : 8); c++) {
            float v = m[r * cols + c];
            if (objects)
                o += (size_t)snprintf(out + o, cap - o, "%s\"%s\": ", c ? ", " : "", names[c]);
            else if (c)
                o += (size_t)snprintf(out + o, cap - o, ", ");
            if (isnan(v))
                o += (size_t)snprintf(out + o, cap - o, "null");
            else
                o += (size_t)snprintf(out + o, cap - o, "%.9g", v);
        }
        o += (size_t)snprintf(out + o, cap - o, "%c", objects ? '}' : ']');
    }
    o += (size_t)snprintf(out + o, cap - o, "], \"output_margin\": %s}", margin ? "true" : "false");
    return o;
}

static void fixture(const char *dir, const char *stem)
{
    char path[1024], name[256], err[256];
    size_t len, tlen;
    snprintf(path, sizeof path, "%s/%s.model.json", dir, stem);
    char *json = slurp(path, &len);
    if (json == NULL)
        return;
    snprintf(name, sizeof name, "%s.json", stem);
    put("xgb", name, json, len);
    /* fuzz_json gets the predict bodies only: 100 KB model files would set libFuzzer's max_len
     * and slow every execution twenty-fold (fuzz_xgb covers them). */

    void *blob = NULL;
    size_t blob_len = 0;
    if (xgb_compile(json, len, NULL, &blob, &blob_len, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", stem, err);
        exit(1);
    }
    snprintf(name, sizeof name, "%s.blob", stem);
    put("model", name, blob, blob_len);

    /* Rows: "nrows ncols v v v ..." */
    snprintf(path, sizeof path, "%s/%s.rows.txt", dir, stem);
    char *txt = slurp(path, &tlen), *p = txt, *end;
    size_t rows = strtoul(p, &end, 10);
    p = end;
    size_t cols = strtoul(p, &end, 10);
    p = end;
    size_t nr = rows < 4 ? rows : 4;
    float *m = malloc(nr * cols * sizeof(float));
    for (size_t i = 0; i < nr * cols; i++) {
        m[i] = strtof(p, &end);
        p = end;
    }
    free(txt);

    size_t cap = 1 << 16;
    char *b = malloc(cap);
    for (int objects = 0; objects < 2; objects++) {
        size_t n = body(m, nr, cols, objects, objects, b + 3, cap - 3);
        snprintf(name, sizeof name, "%s.%s.body", stem, objects ? "obj" : "arr");
        put("json", name, b + 3, n);
        b[0] = (char)((cols < 8 ? cols : 8) - 1);
        b[1] = 16;
        b[2] = (char)objects;
        put("rows", name, b, n + 3);
    }
    free(b);

    /* fuzz_score, structured: mode 0, flags (margin + second section), nrows, blob length,
     * blob, then the fixture's rows as float32 seed bytes. */
    size_t n = 7 + blob_len + nr * cols * 4;
    uint8_t *s = malloc(n);
    s[0] = 0;
    s[1] = 3;
    s[2] = (uint8_t)nr;
    wire_st32(s + 3, (uint32_t)blob_len);
    memcpy(s + 7, blob, blob_len);
    memcpy(s + 7 + blob_len, m, nr * cols * 4);
    snprintf(name, sizeof name, "%s.structured", stem);
    put("score", name, s, n);
    free(s);

    /* fuzz_score, raw: mode 1, u32 load length, LOAD_MODEL payload, SCORE payload (same key). */
    size_t sl = 4 + 60 + nr * cols * 4, ll = 52 + blob_len;
    uint8_t *r = calloc(1, 5 + ll + sl);
    r[0] = 1;
    wire_st32(r + 1, (uint32_t)ll);
    memset(r + 5, 0x42, WIRE_MODEL_KEY_SIZE);
    sha256(blob, blob_len, r + 5 + 16); /* a key bound to its blob, as the worker requires */
    wire_st32(r + 5 + 48, (uint32_t)blob_len);
    memcpy(r + 5 + 52, blob, blob_len);
    uint8_t *q = r + 5 + ll;
    wire_st32(q, 1);
    memcpy(q + 4, r + 5, WIRE_MODEL_KEY_SIZE);
    wire_st32(q + 52, 0);
    wire_st32(q + 56, (uint32_t)nr);
    wire_st32(q + 60, (uint32_t)cols);
    memcpy(q + 64, m, nr * cols * 4);
    snprintf(name, sizeof name, "%s.raw", stem);
    put("score", name, r, 5 + ll + sl);
    free(r);

    free(m);
    free(blob);
    free(json);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: seedgen FIXTURE_DIR OUT_DIR\n");
        return 2;
    }
    outdir = argv[2];
    mkdir(outdir, 0755);
    DIR *d = opendir(argv[1]);
    if (d == NULL) {
        perror(argv[1]);
        return 1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 11 && strcmp(e->d_name + n - 11, ".model.json") == 0) {
            char stem[256];
            snprintf(stem, sizeof stem, "%.*s", (int)(n - 11), e->d_name);
            fixture(argv[1], stem);
        }
    }
    closedir(d);

    static const struct {
        long long ts;
        const char *id;
    } cur[] = {{0, "00000000-0000-0000-0000-000000000000"},
               {1700000000123456LL, "3f2504e0-4f89-41d3-9a0c-0305e82c3301"},
               {4102444800000000LL, "ffffffff-ffff-ffff-ffff-ffffffffffff"}};
    for (size_t i = 0; i < sizeof cur / sizeof *cur; i++) {
        char c[CURSOR_MAX], name[32];
        cursor_encode(cur[i].ts, cur[i].id, c);
        snprintf(name, sizeof name, "cursor%zu", i);
        put("cursor", name, c, strlen(c));
    }

    for (unsigned op = 1; op <= WIRE_OP_STATS; op++) {
        uint8_t f[WIRE_HEADER_SIZE + 1 + 32];
        wire_header h = {.magic = WIRE_MAGIC,
                         .version = WIRE_VERSION,
                         .op = (uint16_t)op,
                         .payload_len = 16,
                         .request_id = op};
        wire_header_encode(f, &h);
        f[WIRE_HEADER_SIZE] = 1; /* max_payload 256 */
        for (unsigned k = 0; k < 32; k++)
            f[WIRE_HEADER_SIZE + 1 + k] = (uint8_t)(k * 37 + op);
        char name[32];
        snprintf(name, sizeof name, "op%u", op);
        put("wire", name, f, sizeof f);
    }
    return 0;
}
