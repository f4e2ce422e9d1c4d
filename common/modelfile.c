/* modelfile.c - model file detection by content.  See modelfile.h. */
#include "modelfile.h"

#include <string.h>

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int modelfile_detect(const void *bytes, size_t len)
{
    const char *s = bytes;
    if (len >= 2 && s[0] == '{' && strchr("iUIlL#", s[1]) != NULL && s[1] != 0)
        return MODELFILE_XGB_UBJSON;
    size_t i = 0;
    while (i < len && is_ws(s[i]))
        i++;
    if (i < len && s[i] == '{') {
        if (i + 1 == len || is_ws(s[i + 1]) || s[i + 1] == '"' || s[i + 1] == '}')
            return MODELFILE_XGB_JSON;
        return MODELFILE_UNKNOWN;
    }
    /* LightGBM text: its first line is "tree"; lgbm_compile checks the rest (version=...). */
    if (len >= 5 && memcmp(s, "tree", 4) == 0 && (s[4] == '\n' || s[4] == '\r'))
        return MODELFILE_LGBM_TEXT;
    return MODELFILE_UNKNOWN;
}

static const struct {
    int format;
    const char *name, *content_type;
} formats[] = {
    {MODELFILE_XGB_JSON, "xgboost-json", "application/json"},
    {MODELFILE_XGB_UBJSON, "xgboost-ubjson", "application/ubjson"},
    {MODELFILE_LGBM_TEXT, "lightgbm-text", "text/plain"},
};

const char *modelfile_format_name(int format)
{
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
        if (formats[i].format == format)
            return formats[i].name;
    return NULL;
}

int modelfile_format_from_name(const char *name)
{
    for (size_t i = 0; name != NULL && i < sizeof(formats) / sizeof(formats[0]); i++)
        if (strcmp(formats[i].name, name) == 0)
            return formats[i].format;
    return MODELFILE_UNKNOWN;
}

const char *modelfile_content_type(int format)
{
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
        if (formats[i].format == format)
            return formats[i].content_type;
    return "application/octet-stream";
}
