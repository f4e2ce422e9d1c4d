/* resplog.c - see resplog.h. */
#include "resplog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* A growable line; on allocation failure ok drops to 0 and the line is not written. */
typedef struct line {
    char *p;
    size_t len, cap;
    int ok;
} line;

static void put(line *l, const char *s, size_t n)
{
    if (!l->ok)
        return;
    if (l->len + n + 1 > l->cap) {
        size_t cap = (l->cap ? l->cap : 256) * 2;
        while (cap < l->len + n + 1)
            cap *= 2;
        char *np = realloc(l->p, cap);
        if (!np) {
            l->ok = 0;
            return;
        }
        l->p = np;
        l->cap = cap;
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void puts_(line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* A JSON string of s[0..n): quote, backslash and control bytes escaped, other bytes as they are
 * (a JSON body is UTF-8; the checker reads the line as UTF-8 and fails on anything else). */
static void put_json_string(line *l, const char *s, size_t n)
{
    put(l, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(l, s + run, i - run);
        char esc[8];
        if (c == '"' || c == '\\')
            snprintf(esc, sizeof esc, "\\%c", c);
        else
            snprintf(esc, sizeof esc, "\\u%04x", c);
        put(l, esc, strlen(esc));
        run = i + 1;
    }
    put(l, s + run, n - run);
    put(l, "\"", 1);
}

/* True for the media types whose bodies the checker validates as JSON. */
static int json_type(const char *ct)
{
    static const char *const types[] = {"application/json", "application/problem+json"};
    for (size_t i = 0; ct && i < sizeof types / sizeof types[0]; i++) {
        size_t n = strlen(types[i]);
        if (strncasecmp(ct, types[i], n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' '))
            return 1;
    }
    return 0;
}

void resplog_record(const char *method, const char *path, long status, const char *ctype,
                    const char *body, size_t len, int raw)
{
    const char *file = getenv("VIGIL_E2E_RESPONSE_LOG");
    if (!file || !file[0])
        return;
    line l = {NULL, 0, 0, 1};
    char num[64];
    puts_(&l, "{\"bin\":");
    put_json_string(&l, program_invocation_short_name, strlen(program_invocation_short_name));
    puts_(&l, ",\"method\":");
    put_json_string(&l, method, strlen(method));
    puts_(&l, ",\"path\":");
    put_json_string(&l, path, strlen(path));
    snprintf(num, sizeof num, ",\"status\":%ld,\"content_type\":", status);
    puts_(&l, num);
    if (ctype)
        put_json_string(&l, ctype, strlen(ctype));
    else
        puts_(&l, "null");
    puts_(&l, ",\"body\":");
    if (body && json_type(ctype))
        put_json_string(&l, body, len);
    else
        puts_(&l, "null");
    snprintf(num, sizeof num, ",\"len\":%zu,\"raw\":%s}\n", body ? len : 0, raw ? "true" : "false");
    puts_(&l, num);
    int fd = l.ok ? open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
    if (fd < 0 || write(fd, l.p, l.len) != (ssize_t)l.len)
        fprintf(stderr, "resplog: cannot append to %s: %s\n", file, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(l.p);
}

/* The value of header name in the head hdr[0..n) copied into out[cap], or NULL. */
static const char *head_value(const char *hdr, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = hdr; p < hdr + n;) {
        const char *eol = memmem(p, (size_t)(hdr + n - p), "\r\n", 2);
        size_t ll = eol ? (size_t)(eol - p) : (size_t)(hdr + n - p);
        if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            snprintf(out, cap, "%.*s", (int)(ll - (size_t)(v - p)), v);
            return out;
        }
        if (!eol)
            break;
        p = eol + 2;
    }
    return NULL;
}

void resplog_raw(const char *req, size_t reqlen, const char *resp, size_t resplen)
{
    char method[32], path[2048], ct[256], cl[32];
    if (!getenv("VIGIL_E2E_RESPONSE_LOG") || resplen < 12 || strncmp(resp, "HTTP/1.", 7) != 0)
        return;
    /* request line: METHOD SP target SP version */
    const char *sp1 = memchr(req, ' ', reqlen);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', reqlen - (size_t)(sp1 + 1 - req)) : NULL;
    if (!sp1 || !sp2 || sp1 - req >= (long)sizeof method || sp2 - sp1 - 1 >= (long)sizeof path)
        return;
    snprintf(method, sizeof method, "%.*s", (int)(sp1 - req), req);
    snprintf(path, sizeof path, "%.*s", (int)(sp2 - sp1 - 1), sp1 + 1);
    /* interim answers (100 Continue to an Expect) come before the final one: skipped */
    while (resplen >= 12 && resp[9] == '1' && strncmp(resp, "HTTP/1.", 7) == 0) {
        const char *next = memmem(resp, resplen, "\r\n\r\n", 4);
        if (!next)
            return;
        resplen -= (size_t)(next + 4 - resp);
        resp = next + 4;
    }
    if (resplen < 12 || strncmp(resp, "HTTP/1.", 7) != 0)
        return;
    long status = strtol(resp + 9, NULL, 10);
    const char *end = memmem(resp, resplen, "\r\n\r\n", 4);
    size_t hlen = end ? (size_t)(end - resp) : resplen;
    const char *body = end ? end + 4 : NULL;
    size_t blen = end ? resplen - hlen - 4 : 0;
    /* only the first answer: a Content-Length bounds it (pipelined answers may follow) */
    if (body && head_value(resp, hlen, "Content-Length", cl, sizeof cl)) {
        size_t want = (size_t)strtoull(cl, NULL, 10);
        if (want < blen)
            blen = want;
        else if (want > blen)
            body = NULL; /* cut by the reader's buffer: the checker sees the content type only */
    }
    resplog_record(method, path, status, head_value(resp, hlen, "Content-Type", ct, sizeof ct),
                   body, blen, 1);
}
