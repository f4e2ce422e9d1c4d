/* dynbuf.c - bounded growable buffer.  See dynbuf.h. */
#include "dynbuf.h"

#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DYNBUF_FIRST_CAP 256

void dynbuf_init(dynbuf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

static int fail(dynbuf *b, int err)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->err = err;
    return err;
}

int dynbuf_reserve(dynbuf *b, size_t extra)
{
    assert(b->len <= b->max && (b->p || (b->len == 0 && b->cap == 0)));
    if (b->err)
        return b->err;
    if (extra > b->max - b->len)
        return fail(b, DYNBUF_E_LIMIT);
    size_t need = b->len + extra + 1; /* + NUL; <= max + 1 */
    if (need <= b->cap)
        return DYNBUF_OK;
    /* Doubling keeps appends amortised O(1); a first reserve of a known size (a Content-Length)
     * gets exactly that, in one allocation. */
    size_t cap = b->cap ? (b->cap <= (b->max + 1) / 2 ? b->cap * 2 : b->max + 1) : DYNBUF_FIRST_CAP;
    if (cap < need)
        cap = need;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *np = realloc(b->p, cap);
    if (!np)
        return fail(b, DYNBUF_E_NOMEM);
    b->p = np;
    b->cap = cap;
    return DYNBUF_OK;
}

int dynbuf_append(dynbuf *b, const void *data, size_t n)
{
    int rc = dynbuf_reserve(b, n);
    if (rc != DYNBUF_OK)
        return rc;
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return DYNBUF_OK;
}

void *dynbuf_extend(dynbuf *b, size_t n)
{
    if (dynbuf_reserve(b, n) != DYNBUF_OK)
        return NULL;
    char *at = b->p + b->len;
    b->len += n;
    b->p[b->len] = '\0';
    return at;
}

int dynbuf_printf(dynbuf *b, const char *fmt, ...)
{
    if (b->err)
        return b->err;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return fail(b, DYNBUF_E_NOMEM);
    if (b->p && (size_t)n < b->cap - b->len) {
        b->len += (size_t)n;
        return DYNBUF_OK;
    }
    int rc = dynbuf_reserve(b, (size_t)n);
    if (rc != DYNBUF_OK)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    assert(b->len < b->cap && b->p[b->len] == '\0');
    return DYNBUF_OK;
}

char *dynbuf_take(dynbuf *b, size_t *len)
{
    char *p = b->err ? NULL : b->p;
    *len = p ? b->len : 0;
    if (b->err)
        free(b->p);
    size_t max = b->max;
    dynbuf_init(b, max);
    return p;
}

void dynbuf_free(dynbuf *b)
{
    free(b->p);
    dynbuf_init(b, b->max);
}

int dynbuf_grow_array(void **arr, size_t *cap, size_t need, size_t elem, size_t max_elems)
{
    assert(arr != NULL && cap != NULL && elem > 0);
    if (need <= *cap && (*arr != NULL || need == 0))
        return DYNBUF_OK;
    if (need > max_elems || max_elems > SIZE_MAX / elem)
        return DYNBUF_E_LIMIT;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap = ncap > max_elems / 2 ? max_elems : ncap * 2;
    if (ncap > max_elems)
        ncap = max_elems;
    void *p = realloc(*arr, ncap * elem);
    if (p == NULL)
        return DYNBUF_E_NOMEM;
    *arr = p;
    *cap = ncap;
    return DYNBUF_OK;
}
