/* hex.h - the one hexadecimal decoder (the encoder is sha256_hex's and cursor's snprintf).
 *
 * Owns: digit values and fixed-length decoding.  Costs: O(n), no allocation, no state. */
#ifndef VIGIL_HEX_H
#define VIGIL_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Value of one hex digit (0-9, a-f, A-F), or -1 for any other character. */
int hex_digit(char c);

/* Decodes 2 * n hex digits of s into out[0..n).  Returns 0, or -1 at the first non-digit (out is
 * then partly written).  s need not be NUL-terminated but must hold 2 * n characters. */
int hex_decode(const char *s, size_t n, uint8_t *out);

#endif
