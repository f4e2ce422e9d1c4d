/* numtext.h - numbers as text, fast and exactly as libc would: decimal text to double (strtod's
 * value and end, bit for bit) and float32 to the text of printf's "%.9g".
 *
 * Why: a 5000-row predict body is 250,000 numbers, and glibc's strtod (arbitrary-precision for
 * every input) cost ~70% of the API's instructions on it; the answer's %.9g through printf cost
 * ~1 µs per number.  Both here take a short exact path for the common inputs and hand everything
 * else to libc itself, so the results cannot differ from libc's:
 *   numtext_strtod  Clinger's fast path: a decimal mantissa of at most 19 significant digits that
 *                   is <= 2^53, times 10^e with |e| <= 22, is one IEEE multiplication or division
 *                   of two exact doubles, hence correctly rounded; strtod is correctly rounded
 *                   too, so both give the same double.  Anything else (more digits, larger
 *                   exponents, syntax beyond JSON's number grammar) calls strtod.
 *   numtext_g9      the 9 significant digits of %.9g, computed exactly in 128-bit integers
 *                   (a float is m * 2^e with m < 2^24) with printf's round-half-even, then
 *                   printf's %g layout; a float below 1e-22 in magnitude (or not finite) is
 *                   printed by snprintf itself.
 * Both assume the "C" locale (decimal point '.'), IEEE binary64 arithmetic without extended
 * precision (FLT_EVAL_METHOD 0, checked at build time) and the default rounding mode, as the rest
 * of vigil does.  tests/unit/test_numtext.c compares both against libc on millions of inputs.
 * Pure functions: no allocation, no global state, thread-safe. */
#ifndef VIGIL_NUMTEXT_H
#define VIGIL_NUMTEXT_H

#include <stddef.h>

/* Exactly strtod(s, end) (same double, bit for bit, same *end) for any NUL-terminated s (or s
 * followed by any byte that cannot continue a number: the fast path reads one byte past the
 * number's JSON syntax and no further).  end may be NULL.  Fast for JSON numbers with at most 19
 * significant digits whose value is exactly m * 10^e, m <= 2^53, |e| <= 22 after moving the
 * decimal point (e.g. every %.9g of a float down to ~1e-13, every integer up to 2^53). */
double numtext_strtod(const char *s, char **end);

/* Reads one JSON number (RFC 8259's grammar exactly: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?)
 * at s, never reading at or past e.  Returns the end of the longest such number at s, with *out
 * set to what strtod gives for exactly that text (bit for bit); or NULL, *out untouched, when s
 * does not start with one (a leading zero followed by a digit, "1.", "1e+", "-" ...) or when the
 * number is longer than 127 bytes and off the fast path (the caller then takes its general
 * path, e.g. json_validate + numtext_strtod).  Does not look at the byte after the number: the
 * caller decides whether it may follow one. */
const char *numtext_json(const char *s, const char *e, double *out);

/* The end of the run of ASCII digits at s (s itself when none), never reading at or past e:
 * eight bytes at a time while eight remain. */
const char *numtext_digits(const char *s, const char *e);

/* The longest numtext_g9 text: "-1.23456789e-45" and a NUL. */
#define NUMTEXT_G9_MAX 16

/* Writes snprintf(buf, NUMTEXT_G9_MAX, "%.9g", (double)v)'s text into buf[NUMTEXT_G9_MAX] (NUL
 * terminated) and returns its length: the same characters for every float, including -0, the
 * subnormals, inf and nan (those two through snprintf). */
size_t numtext_g9(char *buf, float v);

#endif
