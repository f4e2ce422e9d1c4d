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

/* The largest magnitude a number in stored client JSON may have: 2^53 - 1, the last integer
 * below which every integer is exactly a double (I-JSON, RFC 7493 section 2.2). */
#define JSON_EXACT_MAX 9007199254740991.0

/* Path (".key" / "[i]" steps after prefix) of the first number in item's subtree that is not
 * finite or whose magnitude exceeds JSON_EXACT_MAX, written into path[cap]; returns 1 when there
 * is one, 0 when every number is within range.  O(size of the subtree), no allocation. */
int json_find_inexact_number(const cJSON *item, const char *prefix, char *path, size_t cap);

/* Prints item compactly like json_print, except numbers: an integer (|x| <= JSON_EXACT_MAX) is
 * written with all its digits, any other finite number in the shortest of %.15g/%.16g/%.17g that
 * reads back to the same double (cJSON's own printer writes 9007199254740991 as
 * 9.00719925474099e+15, another value).  Non-finite numbers print as null, as cJSON does; callers
 * refuse them first (json_find_inexact_number).  Returns a malloc'd string (caller frees) or NULL
 * on OOM. */
char *json_print_exact(const cJSON *item);

#endif
