/* utf8.h - UTF-8 sequence checks shared by the strict JSON reader and the log line builder.
 *
 * Owns: what counts as valid UTF-8 (shortest form, no surrogates, at most U+10FFFF).  Costs: O(n),
 * no allocation, no state. */
#ifndef VIGIL_UTF8_H
#define VIGIL_UTF8_H

#include <stddef.h>

/* Length (1..4) of the valid UTF-8 sequence starting at p[0..n), or 0 when it is not valid or is
 * cut by n.  n must be >= 1. */
size_t utf8_seq_len(const unsigned char *p, size_t n);

/* True when s[0..len) is entirely valid UTF-8. */
int utf8_valid(const char *s, size_t len);

#endif
