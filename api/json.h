/* json.h - strict JSON input for the API, on top of cJSON.
 *
 * Owns: the checks cJSON does not make (RFC 8259 grammar exactly, valid UTF-8, no unescaped
 * control characters, no \u0000, no trailing garbage, nesting <= JSON_MAX_DEPTH, no duplicate
 * object keys) and small helpers to read typed fields and reject unknown ones.
 * Costs: one linear pre-scan plus cJSON's parse; duplicate-key check O(k log k) per object. */
#ifndef VIGIL_JSON_H
#define VIGIL_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define JSON_MAX_DEPTH 32

/* Parses buf[0..len) strictly.  On success returns 0 and *out (caller frees with cJSON_Delete).
 * On failure returns -1, *out = NULL, and a one-line reason with the byte offset in err. */
int json_parse_strict(const char *buf, size_t len, cJSON **out, char *err, size_t errlen);

/* Validates only (no tree built).  Same contract as json_parse_strict. */
int json_validate(const char *buf, size_t len, char *err, size_t errlen);

/* Returns the name of the first member of obj not listed in allowed (NULL-terminated), or NULL
 * when every member is allowed.  NULL too when obj is NULL or not an object (an array's elements
 * have no names): callers check the type first, this only keeps a wrong call from crashing. */
const char *json_unknown_member(const cJSON *obj, const char *const *allowed);

/* Prints item without formatting.  Returns a malloc'd string (caller frees) or NULL on OOM. */
char *json_print(const cJSON *item);

/* True when the string is valid UTF-8 (used for header and query values too). */
int json_utf8_valid(const char *s, size_t len);

#endif
