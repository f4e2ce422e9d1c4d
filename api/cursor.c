/* cursor.c - base64url("v1:<ts_us>:<uuid>") cursors.  See cursor.h. */
#include "cursor.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "validate.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void cursor_encode(int64_t ts_us, const char *id, char *out)
{
    assert(id && val_uuid(id)); /* contract: a canonical UUID (it fits raw) */
    char raw[80];
    int n = snprintf(raw, sizeof raw, "v1:%lld:%s", (long long)ts_us, id);
    size_t o = 0;
    for (int i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)raw[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)raw[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)raw[i + 2];
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = b64[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = b64[v & 63];
    }
    out[o] = '\0';
}

static int val64(char c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

int cursor_decode(const char *s, int64_t *ts_us, char *id_out)
{
    size_t n = strlen(s);
    if (n == 0 || n >= CURSOR_MAX || n % 4 == 1)
        return -1;
    char raw[80];
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int a = val64(s[i]), b = val64(s[i + 1]);
        int c = i + 2 < n ? val64(s[i + 2]) : 0, d = i + 3 < n ? val64(s[i + 3]) : 0;
        if (a < 0 || b < 0 || c < 0 || d < 0 || o + 3 >= sizeof raw)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        raw[o++] = (char)(v >> 16);
        if (i + 2 < n)
            raw[o++] = (char)(v >> 8);
        if (i + 3 < n)
            raw[o++] = (char)v;
    }
    raw[o] = '\0';
    if (strlen(raw) != o || strncmp(raw, "v1:", 3) != 0)
        return -1;
    char *colon = strchr(raw + 3, ':');
    if (!colon)
        return -1;
    *colon = '\0';
    long long ts;
    if (cfg_parse_int(raw + 3, 0, 4102444800000000LL, &ts) != 0 || !val_uuid(colon + 1))
        return -1;
    *ts_us = ts;
    for (int i = 0; i < 37; i++)
        id_out[i] = (char)tolower((unsigned char)colon[1 + i]);
    return 0;
}
