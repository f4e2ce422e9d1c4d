/* fields.h - typed reads of request-body members with the problem+json answer built in: each
 * reader returns 0 (value in *out, or absent) or -1 after filling resp with a 400 naming the
 * field.  Keeps handlers to one line per field. */
#ifndef VIGIL_FIELDS_H
#define VIGIL_FIELDS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "http.h"

/* FIELD_EXACT_NUMBERS (objects): every number inside must be finite with magnitude at most
 * JSON_EXACT_MAX (2^53 - 1), so that what is stored (json_print_exact) is what was sent: integers
 * exactly, other numbers as the nearest double.  Otherwise 400 naming the number's path. */
enum field_flags { FIELD_REQUIRED = 1, FIELD_NULLABLE = 2, FIELD_EXACT_NUMBERS = 4 };

/* A string of 1..max_chars code points.  *out points into obj (or NULL when absent or null);
 * *present (may be NULL) tells whether the member was there at all. */
int field_string(http_resp *resp, const cJSON *obj, const char *name, size_t max_chars, int flags,
                 const char **out, int *present);

/* A JSON object whose compact form is at most max_bytes.  *out points into obj. */
int field_object(http_resp *resp, const cJSON *obj, const char *name, size_t max_bytes, int flags,
                 const cJSON **out, int *present);

/* Rejects the first member not in allowed with 400 "unknown_field". */
int field_no_unknown(http_resp *resp, const cJSON *obj, const char *const *allowed);

/* The keyset-pagination arguments of a list route, ready to bind as $1, $2, $3:
 * cursor_us/cursor_id (NULL without a cursor) and limit_plus_1 (one extra row tells whether
 * another page exists). */
typedef struct field_page {
    int limit;
    const char *cursor_us; /* points into buf_us or NULL */
    const char *cursor_id; /* points into buf_id or NULL */
    char limit_plus_1[16];
    char buf_us[24];
    char buf_id[37];
} field_page;

/* Answers 400 for unknown query arguments (allowed_args, NULL-terminated), a "limit" outside
 * 1..500 (default 50) or a malformed "cursor"; otherwise fills pg and returns 0. */
int field_page_args(http_req *req, http_resp *resp, const char *const *allowed_args,
                    field_page *pg);

#endif
