/* fuzz_cursor.c - libFuzzer harness for api/cursor.c: cursor_decode of client-supplied text.
 *
 * The input becomes a NUL-terminated string (cut at the first NUL, as the HTTP layer would hand
 * it over).  Checks besides ASan/UBSan: an accepted cursor re-encodes to a cursor that decodes to
 * the same (timestamp, id). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cursor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t ts = 0, ts2 = 0;
    char id[37], id2[37], enc[CURSOR_MAX];
    if (cursor_decode(s, &ts, id) == 0) {
        if (id[36] != '\0')
            abort();
        cursor_encode(ts, id, enc);
        if (cursor_decode(enc, &ts2, id2) != 0 || ts2 != ts || strcmp(id, id2) != 0) {
            fprintf(stderr, "cursor round trip failed for %s\n", s);
            abort();
        }
    }
    free(s);
    return 0;
}
