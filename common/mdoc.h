/* mdoc.h - a read-only, format-neutral index of a model document: what xgbmodel.c reads an xgboost
 * model through, whether the upload was JSON (`Booster.save_model("m.json")`) or UBJSON (".ubj",
 * xgboost's default since 2.1).
 *
 * Owns: the index (one 16-byte node per object, array, string and member-level scalar; scalars
 * inside arrays are never indexed, only counted, and are read back from the source bytes on
 * demand), the two front ends that build it (mdoc_json.c: strict RFC 8259 plus xgboost's NaN /
 * Infinity / -Infinity tokens; mdoc_ubjson.c: UBJSON draft 12 as xgboost writes it, big-endian,
 * typed arrays), and the accessors below, which hide which front end built the index.
 *
 * Costs: parsing O(len) time; index memory at most (len/4 + 4096) * 16 bytes whatever the
 * document claims (a UBJSON count is never trusted for an allocation: nodes are added only for
 * elements actually read, and a count larger than the bytes left is refused before any loop).
 * Nesting deeper than MDOC_MAX_DEPTH is refused.  The source bytes are borrowed: they must
 * outlive the mdoc.  Nothing here is thread-unsafe except sharing one mdoc while parsing it. */
#ifndef VIGIL_MDOC_H
#define VIGIL_MDOC_H

#include <stddef.h>
#include <stdint.h>

#define MDOC_MAX_DEPTH 64        /* nesting bound, both formats */
#define MDOC_MAX_NUMBER_CHARS 64 /* longest JSON number token accepted */
#define MDOC_NONE UINT32_MAX     /* "no such node" */

enum mdoc_format { MDOC_JSON = 1, MDOC_UBJSON = 2 };

enum mdoc_status {
    MDOC_OK = 0,
    MDOC_INVALID = 1, /* malformed document (err says where) */
    MDOC_NOMEM = 3,   /* allocation failed; same value as XGB_NOMEM on purpose */
};

enum mdoc_type { MDOC_OBJ = 1, MDOC_ARR, MDOC_STR, MDOC_SCALAR };

/* One indexed value.  Private to mdoc*.c; exposed only so that mdoc can be a stack object. */
typedef struct mdoc_node {
    uint32_t off; /* string: first payload byte; scalar: token / payload; array: see mdoc_json.c,
                     mdoc_ubjson.c (where its scalars are re-read from).  32 bits: mdoc_parse
                     refuses documents of 4 GiB or more */
    union {
        uint32_t len;   /* string: raw byte length; scalar: token / payload length */
        uint32_t count; /* object: members; array: elements (indexed or not) */
    };
    uint32_t end;  /* index one past this node's subtree (its next sibling) */
    uint8_t type;  /* enum mdoc_type */
    uint8_t kind;  /* scalar: JSON token kind or UBJSON marker; typed array: element marker */
    uint8_t flags; /* MDOC_NF_* */
    uint8_t pad;
} mdoc_node;

typedef struct mdoc {
    const char *s; /* borrowed source */
    size_t len;
    int format; /* enum mdoc_format */
    mdoc_node *n;
    uint32_t count, cap, max;
} mdoc;

/* Parses src[0..len) as JSON (format MDOC_JSON) or UBJSON (MDOC_UBJSON) into d, whose root is node
 * 0 and must be an object.  Returns MDOC_OK, or MDOC_INVALID / MDOC_NOMEM with a one-line reason
 * in err ("... at byte N").  On failure d holds nothing to free; on success release with
 * mdoc_free.  Never reads outside src[0..len). */
int mdoc_parse(mdoc *d, int format, const char *src, size_t len, char *err, size_t errlen);
void mdoc_free(mdoc *d);

/* Navigation.  Every function accepts MDOC_NONE and answers "absent"/0 for it. */
int mdoc_type(const mdoc *d, uint32_t i); /* enum mdoc_type, 0 for MDOC_NONE */
uint32_t mdoc_count(const mdoc *d, uint32_t i);
/* Member named key of object obj (first match), or MDOC_NONE. */
uint32_t mdoc_get(const mdoc *d, uint32_t obj, const char *key);
/* The same, MDOC_NONE unless the member has the given type. */
uint32_t mdoc_get_type(const mdoc *d, uint32_t obj, const char *key, int type);
/* Array a holds only indexed elements (objects, arrays, strings): they are nodes a+1 onwards,
 * walked with mdoc_next.  An empty array qualifies. */
int mdoc_arr_nodes_only(const mdoc *d, uint32_t a);
/* First element of array a (when mdoc_arr_nodes_only), and the sibling after node i. */
uint32_t mdoc_first(const mdoc *d, uint32_t a);
uint32_t mdoc_next(const mdoc *d, uint32_t i);

/* Decodes string node i into out[cap] (NUL-terminated, valid UTF-8; an embedded NUL, invalid
 * UTF-8 or a string that does not fit is refused).  Returns 0 or -1. */
int mdoc_str(const mdoc *d, uint32_t i, char *out, size_t cap);
/* Upper bound of the decoded size of string node i, plus 1 for the NUL. */
size_t mdoc_str_cap(const mdoc *d, uint32_t i);

/* Scalar node i as an integer in [lo, hi] (JSON: an integer token; UBJSON: an integer type).
 * Returns 0 or -1. */
int mdoc_int(const mdoc *d, uint32_t i, int64_t lo, int64_t hi, int64_t *out);

/* Array a of exactly n scalars (generic or typed) read as integers in [lo, hi] into out[n]; with
 * allow_bool, true/false read as 1/0.  Returns 0 or -1. */
int mdoc_arr_ints(const mdoc *d, uint32_t a, uint32_t n, int64_t lo, int64_t hi, int64_t *out,
                  int allow_bool);
/* Array a of exactly n numbers read as float32 into out[n]: JSON text through strtof (never via
 * double), UBJSON float32 as is, float64 and integers rounded to nearest; a finite value beyond
 * float's range is refused, NaN and infinities are kept.  Returns 0 or -1. */
int mdoc_arr_floats(const mdoc *d, uint32_t a, uint32_t n, float *out);

/* Text helpers for numbers that xgboost writes inside strings ("5E-1", "30"), following the JSON
 * number grammar (plus NaN / Infinity / -Infinity for floats).  The whole of s[0..n) must be the
 * number.  Return 0 or -1. */
int mdoc_text_float(const char *s, size_t n, float *out);
int mdoc_text_int(const char *s, size_t n, int64_t lo, int64_t hi, int64_t *out);

#endif
