/* spanring.c - span records and their bounded ring.  See spanring.h. */
#include "spanring.h"

#include <stdlib.h>
#include <string.h>

static span_attr *next_attr(span_rec *s, const char *key, int type)
{
    if (s->nattrs >= SPAN_ATTRS_MAX)
        return NULL;
    span_attr *a = &s->attrs[s->nattrs++];
    a->key = key;
    a->type = type;
    a->i = 0;
    a->s[0] = '\0';
    return a;
}

/* Copies src into dst[cap], cut before a UTF-8 continuation byte so no character is split. */
static void copy_cut(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void span_attr_str(span_rec *s, const char *key, const char *value)
{
    span_attr *a = next_attr(s, key, SPAN_ATTR_STR);
    if (a)
        copy_cut(a->s, sizeof a->s, value ? value : "");
}

void span_attr_int(span_rec *s, const char *key, int64_t value)
{
    span_attr *a = next_attr(s, key, SPAN_ATTR_INT);
    if (a)
        a->i = value;
}

void span_attr_bool(span_rec *s, const char *key, int value)
{
    span_attr *a = next_attr(s, key, SPAN_ATTR_BOOL);
    if (a)
        a->i = value != 0;
}

void span_set_name(span_rec *s, const char *name)
{
    copy_cut(s->name, sizeof s->name, name);
}

int spanring_init(spanring *r, size_t cap)
{
    memset(r, 0, sizeof *r);
    if (cap == 0 || !(r->slots = calloc(cap, sizeof *r->slots)))
        return -1;
    r->cap = cap;
    pthread_mutex_init(&r->mu, NULL);
    return 0;
}

void spanring_free(spanring *r)
{
    if (!r->slots)
        return;
    pthread_mutex_destroy(&r->mu);
    free(r->slots);
    r->slots = NULL;
}

long spanring_push(spanring *r, const span_rec *s)
{
    long rc;
    pthread_mutex_lock(&r->mu);
    if (r->count == r->cap) {
        r->dropped++;
        rc = -1;
    } else {
        r->slots[(r->head + r->count) % r->cap] = *s;
        r->count++;
        r->pushed++;
        rc = (long)r->count;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

size_t spanring_pop(spanring *r, span_rec *out, size_t max)
{
    size_t got = 0;
    while (got < max) {
        pthread_mutex_lock(&r->mu);
        size_t n = 0;
        while (n < SPANRING_POP_CHUNK && got < max && r->count > 0) {
            out[got++] = r->slots[r->head];
            r->head = (r->head + 1) % r->cap;
            r->count--;
            n++;
        }
        int empty = r->count == 0;
        pthread_mutex_unlock(&r->mu);
        if (empty || n == 0)
            break;
    }
    return got;
}

void spanring_counts(spanring *r, size_t *held, uint64_t *pushed, uint64_t *dropped)
{
    pthread_mutex_lock(&r->mu);
    *held = r->count;
    *pushed = r->pushed;
    *dropped = r->dropped;
    pthread_mutex_unlock(&r->mu);
}
