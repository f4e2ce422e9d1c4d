/* fields.c - see fields.h. */
#include "fields.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "cursor.h"
#include "json.h"
#include "validate.h"

static const cJSON *member(const cJSON *obj, const char *name, int flags, http_resp *resp,
                           int *present, int *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *err = 0;
    if (present)
        *present = v != NULL;
    if (!v || cJSON_IsNull(v)) {
        if ((flags & FIELD_REQUIRED) && !v) {
            http_problem(resp, 400, "validation_failed", name, "'%s' is required", name);
            *err = 1;
        } else if (v && !(flags & FIELD_NULLABLE)) {
            http_problem(resp, 400, "validation_failed", name, "'%s' must not be null", name);
            *err = 1;
        }
        return NULL;
    }
    return v;
}

int field_string(http_resp *resp, const cJSON *obj, const char *name, size_t max_chars, int flags,
                 const char **out, int *present)
{
    int err;
    *out = NULL;
    const cJSON *v = member(obj, name, flags, resp, present, &err);
    if (err)
        return -1;
    if (!v)
        return 0;
    if (!cJSON_IsString(v)) {
        http_problem(resp, 400, "validation_failed", name, "'%s' must be a string", name);
        return -1;
    }
    size_t n = val_utf8_chars(v->valuestring);
    if (n == 0 || n > max_chars) {
        http_problem(resp, 400, "validation_failed", name, "'%s' must be 1..%zu characters", name,
                     max_chars);
        return -1;
    }
    *out = v->valuestring;
    return 0;
}

int field_object(http_resp *resp, const cJSON *obj, const char *name, size_t max_bytes, int flags,
                 const cJSON **out, int *present)
{
    int err;
    *out = NULL;
    const cJSON *v = member(obj, name, flags, resp, present, &err);
    if (err)
        return -1;
    if (!v)
        return 0;
    if (!cJSON_IsObject(v)) {
        http_problem(resp, 400, "validation_failed", name, "'%s' must be a JSON object", name);
        return -1;
    }
    char path[256];
    if ((flags & FIELD_EXACT_NUMBERS) && json_find_inexact_number(v, name, path, sizeof path)) {
        http_problem(resp, 400, "validation_failed", path,
                     "'%s': numbers in '%s' must be finite with magnitude at most "
                     "9007199254740991 (2^53 - 1); integers are stored exactly, other numbers "
                     "as the nearest IEEE-754 double",
                     path, name);
        return -1;
    }
    char *s = json_print(v);
    size_t n = s ? strlen(s) : 0;
    free(s);
    if (!s || n > max_bytes) {
        http_problem(resp, 400, "validation_failed", name, "'%s' must be at most %zu bytes", name,
                     max_bytes);
        return -1;
    }
    *out = v;
    return 0;
}

int field_no_unknown(http_resp *resp, const cJSON *obj, const char *const *allowed)
{
    const char *bad = json_unknown_member(obj, allowed);
    if (!bad)
        return 0;
    http_problem(resp, 400, "unknown_field", bad, "unknown field '%.64s'", bad);
    return -1;
}

int field_page_args(http_req *req, http_resp *resp, const char *const *allowed_args, field_page *pg)
{
    const char *bad = http_query_unknown(req, allowed_args);
    if (bad) {
        http_problem(resp, 400, "unknown_parameter", bad, "unknown query parameter '%.64s'", bad);
        return -1;
    }
    const char *s = http_query(req, "limit");
    long long v = 50;
    if (s && cfg_parse_int(s, 1, 500, &v) != 0) {
        http_problem(resp, 400, "validation_failed", "limit",
                     "'limit' must be an integer in 1..500");
        return -1;
    }
    pg->limit = (int)v;
    snprintf(pg->limit_plus_1, sizeof pg->limit_plus_1, "%lld", v + 1);
    pg->cursor_us = pg->cursor_id = NULL;
    const char *cur = http_query(req, "cursor");
    if (cur) {
        int64_t ts;
        if (cursor_decode(cur, &ts, pg->buf_id) != 0) {
            http_problem(resp, 400, "validation_failed", "cursor",
                         "'cursor' is not a valid cursor");
            return -1;
        }
        snprintf(pg->buf_us, sizeof pg->buf_us, "%lld", (long long)ts);
        pg->cursor_us = pg->buf_us;
        pg->cursor_id = pg->buf_id;
    }
    return 0;
}
