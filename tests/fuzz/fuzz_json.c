/* fuzz_json.c - libFuzzer harness for api/json.c: json_validate, json_parse_strict, json_print.
 *
 * Properties checked besides memory safety (ASan/UBSan):
 *   - json_validate and json_parse_strict agree on accept/reject;
 *   - an accepted document prints (json_print) to text that is itself accepted (round trip);
 *   - json_utf8_valid never reads outside the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so ASan sees any read past the end (the parsers take no NUL). */
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    char err[256];
    (void)json_utf8_valid(buf, size);
    int v = json_validate(buf, size, err, sizeof err);
    cJSON *root = NULL;
    int p = json_parse_strict(buf, size, &root, err, sizeof err);
    if ((v == 0) != (p == 0)) {
        /* Only a duplicate key (checked after the tree is built) may separate the two. */
        if (!(v == 0 && strstr(err, "duplicate") != NULL)) {
            fprintf(stderr, "json_validate=%d json_parse_strict=%d (%s)\n", v, p, err);
            abort();
        }
    }
    if (p == 0) {
        if (root == NULL)
            abort();
        char *txt = json_print(root);
        if (txt != NULL) {
            cJSON *again = NULL;
            if (json_parse_strict(txt, strlen(txt), &again, err, sizeof err) != 0) {
                fprintf(stderr, "printed document does not re-parse: %s\n", err);
                abort();
            }
            cJSON_Delete(again);
            free(txt);
        }
        static const char *const allowed[] = {"rows", "output_margin", NULL};
        (void)json_unknown_member(root, allowed);
        cJSON_Delete(root);
    } else if (root != NULL) {
        abort(); /* contract: *out = NULL on failure */
    }
    free(buf);
    return 0;
}
