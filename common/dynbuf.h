/* dynbuf.h - the one bounded growable byte buffer (curl's dynbuf idea).
 *
 * Owns: one malloc'd block that grows by doubling up to a maximum fixed at init.  The contents are
 * always NUL-terminated (one byte beyond len, not counted), so text built here is a C string.
 * Failure is sticky: once an append fails (bound or allocator), the block is freed, every later
 * append is a no-op returning the same error, and the owner checks once at the end - the way a
 * long printf-style page (/metrics) is written without a check per line.
 * Costs: amortised O(1) per appended byte; at most max + 1 bytes held.  Not thread-safe: one
 * owner at a time.  API side only (the worker never allocates after ready). */
#ifndef VIGIL_DYNBUF_H
#define VIGIL_DYNBUF_H

#include <stddef.h>

enum dynbuf_status { DYNBUF_OK = 0, DYNBUF_E_LIMIT = -1, DYNBUF_E_NOMEM = -2 };

typedef struct dynbuf {
    char *p;    /* NULL until the first append/reserve */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
    size_t max; /* len never exceeds this */
    int err;    /* DYNBUF_OK, or the first failure (sticky) */
} dynbuf;

/* An empty buffer holding at most max bytes.  Allocates nothing. */
void dynbuf_init(dynbuf *b, size_t max);

/* Makes room for extra more bytes (plus the NUL).  Returns DYNBUF_OK or the sticky error. */
int dynbuf_reserve(dynbuf *b, size_t extra);

/* Appends data[0..n).  Returns DYNBUF_OK or the sticky error. */
int dynbuf_append(dynbuf *b, const void *data, size_t n);

/* Appends n uninitialised bytes and returns where they start (for the caller to fill in place,
 * e.g. one row of a matrix), or NULL on failure (the sticky error says which).  Earlier pointers
 * into the buffer may move. */
void *dynbuf_extend(dynbuf *b, size_t n);

/* Appends printf-style text.  Returns DYNBUF_OK or the sticky error. */
int dynbuf_printf(dynbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Hands the block to the caller (who frees it; NULL when nothing was appended) with its length in
 * *len, and leaves b empty with the same bound.  After a failure returns NULL. */
char *dynbuf_take(dynbuf *b, size_t *len);

/* Frees the block; b is empty again (same bound, error cleared). */
void dynbuf_free(dynbuf *b);

/* The same growth rule for a caller-owned array of elem-byte elements (the model compilers'
 * trees, nodes, document index): makes *arr (capacity *cap elements) hold at least need elements,
 * doubling from 64, never past max_elems.  Returns DYNBUF_OK, DYNBUF_E_LIMIT (need > max_elems)
 * or DYNBUF_E_NOMEM; on failure *arr and *cap are unchanged (still the caller's to free). */
int dynbuf_grow_array(void **arr, size_t *cap, size_t need, size_t elem, size_t max_elems);

#endif
