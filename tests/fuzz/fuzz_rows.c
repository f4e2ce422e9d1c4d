/* fuzz_rows.c - libFuzzer harness for api/rows.c: rows_parse on a predict body.
 *
 * Input: byte 0 = nfeat - 1 (mod 8, so 1..8 features), byte 1 = max_rows (0..255), byte 2 bit 0 =
 * pass feature names or not; the rest is the body.  Checks besides ASan/UBSan: on success
 * nrows <= max_rows and every value is readable; on failure status is 400/413/500 and nothing is
 * left to free. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rows.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile float sink; /* keeps the matrix reads */

static const char *const names[] = {"age",  "amount", "country", "a", "b", "\xc3\xa9t\xc3\xa9",
                                    "x\"y", ""};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint32_t nfeat = (uint32_t)(data[0] % 8) + 1;
    uint32_t max_rows = data[1];
    uint32_t n_names = (data[2] & 1) ? nfeat : 0;
    size_t len = size - 3;
    char *body = malloc(len ? len : 1);
    if (body == NULL)
        return 0;
    memcpy(body, data + 3, len);
    rows_result res;
    if (rows_parse(body, len, n_names ? names : NULL, n_names, nfeat, max_rows, &res) == 0) {
        if (res.nrows > max_rows || (res.nrows > 0 && res.rows == NULL))
            abort();
        float sum = 0.0f;
        for (size_t i = 0; i < (size_t)res.nrows * nfeat; i++)
            sum += isnan(res.rows[i]) ? 0.0f : res.rows[i];
        sink = sum;
        rows_result_free(&res);
    } else {
        if (res.status != 400 && res.status != 413 && res.status != 500)
            abort();
        if (memchr(res.err, 0, sizeof res.err) == NULL ||
            memchr(res.field, 0, sizeof res.field) == NULL)
            abort();
    }
    free(body);
    return 0;
}
