/* router.c - path matching over the route table.  See router.h. */
#include "router.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

/* Splits path ("/a/b/c") into segments in place.  Returns the count, or -1 when there are too
 * many, an empty inner segment ("//") or the path does not start with '/'.  A trailing slash is
 * tolerated only for the root. */
static int split(char *path, char **seg)
{
    if (path[0] != '/')
        return -1;
    int n = 0;
    char *p = path + 1;
    if (*p == '\0')
        return 0;
    for (;;) {
        if (n == ROUTER_MAX_SEGMENTS)
            return -1;
        char *slash = strchr(p, '/');
        if (slash)
            *slash = '\0';
        if (*p == '\0')
            return -1;
        seg[n++] = p;
        if (!slash)
            return n;
        p = slash + 1;
    }
}

/* True when the pattern (segments separated by '/') matches seg[0..n); fills params. */
static int pattern_match(const char *pattern, char **seg, int n, const char **params, int *np)
{
    const char *p = pattern + 1;
    int i = 0, k = 0;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (i >= n)
            return 0;
        if (p[0] == '{') {
            if (k == ROUTER_MAX_PARAMS)
                return 0;
            params[k++] = seg[i];
        } else if (strlen(seg[i]) != len || memcmp(seg[i], p, len) != 0) {
            return 0;
        }
        i++;
        p += len;
        if (*p == '/')
            p++;
    }
    if (i != n)
        return 0;
    *np = k;
    return 1;
}

const route *router_match(const route *table, size_t n, const char *method, char *path,
                          const char **params, int *nparams, int *status, char *allow,
                          size_t allowlen)
{
    assert((table || n == 0) && method && path && params && nparams && status && allow);
    char *seg[ROUTER_MAX_SEGMENTS];
    int nseg = split(path, seg);
    *status = 404;
    *nparams = 0;
    if (allowlen)
        allow[0] = '\0';
    if (nseg < 0)
        return NULL;
    int path_matched = 0;
    for (size_t i = 0; i < n; i++) {
        const char *tmp[ROUTER_MAX_PARAMS];
        int k = 0;
        if (!pattern_match(table[i].pattern, seg, nseg, tmp, &k))
            continue;
        if (strcmp(table[i].method, method) == 0) {
            memcpy(params, tmp, sizeof tmp);
            *nparams = k;
            *status = 200;
            if (allowlen) /* the methods of earlier rows: an Allow header only for a 405 */
                allow[0] = '\0';
            return &table[i];
        }
        size_t used = strlen(allow);
        if (!strstr(allow, table[i].method))
            snprintf(allow + used, allowlen - used, "%s%s", used ? ", " : "", table[i].method);
        path_matched = 1;
    }
    if (path_matched)
        *status = 405;
    return NULL;
}
