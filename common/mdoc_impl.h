/* mdoc_impl.h - what mdoc.c shares with its two front ends (mdoc_json.c, mdoc_ubjson.c).  Not for
 * other modules: they use mdoc.h. */
#ifndef VIGIL_MDOC_IMPL_H
#define VIGIL_MDOC_IMPL_H

#include "mdoc.h"

/* Node flags. */
#define MDOC_NF_ESC 0x1     /* JSON string with escapes */
#define MDOC_NF_SCALARS 0x2 /* array holds scalars (not indexed) */
#define MDOC_NF_NODES 0x4   /* array holds indexed elements */
#define MDOC_NF_TYPED 0x8   /* UBJSON typed array: kind = element marker, off = payload */

/* JSON scalar token kinds (mdoc_node.kind for MDOC_JSON). */
enum mdoc_jkind {
    MDOC_K_INT = 1,
    MDOC_K_REAL,
    MDOC_K_NAN,
    MDOC_K_INF,
    MDOC_K_NINF,
    MDOC_K_TRUE,
    MDOC_K_FALSE,
    MDOC_K_NULL
};

/* Parser state shared by the front ends. */
typedef struct mdoc_parser {
    mdoc *d;
    size_t pos;
    char *err;
    size_t errlen;
    int status; /* first failure */
} mdoc_parser;

/* Records the first failure as "what at byte pos".  Returns -1. */
int mdoc_fail(mdoc_parser *p, int status, const char *what);
/* Appends a node of type at p->pos.  Returns its index or MDOC_NONE (failure recorded). */
uint32_t mdoc_new_node(mdoc_parser *p, int type);

/* Lexes one JSON scalar token at s[p..len).  Returns its end and sets *kind, or sets *kind = 0. */
size_t mdoc_json_lex(const char *s, size_t len, size_t p, int *kind);

/* Front ends: fill p->d (already initialised with s, len, max) starting at byte 0.  0 or -1. */
int mdoc_json_parse(mdoc_parser *p);
int mdoc_ubjson_parse(mdoc_parser *p);

/* UBJSON: payload size of a scalar marker (i U I l L d D: 1..8; T F Z: 0), or -1 if not one. */
int mdoc_ubj_scalar_size(char marker);

#endif
