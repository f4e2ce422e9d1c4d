/* numtext.c - numbers as text, fast and exactly as libc would.  See numtext.h.
 *
 * Costs: numtext_strtod O(length of the number) with one multiplication or division on the fast
 * path; numtext_g9 a few 128-bit multiplications and shifts (one 128-bit division for floats of
 * 1e9 and more).  Everything outside the fast paths costs what libc costs. */
#include "numtext.h"

#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "numtext's exact paths need double arithmetic without extended precision (FLT_EVAL_METHOD 0)"
#endif

typedef unsigned __int128 u128;

/* 10^0 .. 10^22: every one is exactly a double (5^22 < 2^53). */
static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int is_digit(unsigned char c)
{
    return (unsigned)(c - '0') < 10u;
}

/* A byte after which strtod might read on where JSON's grammar stops ("0x1p3", "1e5.", "12abc"
 * is fine for strtod but costs nothing to hand over): digits, letters, '.'. */
static int may_continue(unsigned char c)
{
    return is_digit(c) || c == '.' || (unsigned)((c | 0x20) - 'a') < 26u;
}

/* The number of digits starting at p. */
static size_t digit_run(const unsigned char *p)
{
    const unsigned char *q = p;
    while (is_digit(*q))
        q++;
    return (size_t)(q - p);
}

/* The value of the 8 digits at p: the bytes known to be digits (SWAR, as in fast_float's
 * parse_eight_digits_unrolled: pairs, then quads, then the eight, by multiplications). */
static uint32_t eight_digits(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    v -= UINT64_C(0x3030303030303030);
    v = v * 10 + (v >> 8);
    v = ((v & UINT64_C(0x000000FF000000FF)) * UINT64_C(0x000F424000000064) +
         ((v >> 16) & UINT64_C(0x000000FF000000FF)) * UINT64_C(0x0000271000000001)) >>
        32;
    return (uint32_t)v;
}

/* m * 10^n + the n digits at p (m * 10^n < 10^19 is the caller's). */
static uint64_t accumulate(uint64_t m, const unsigned char *p, size_t n)
{
    for (; n >= 8; n -= 8, p += 8)
        m = m * 100000000u + eight_digits(p);
    for (; n > 0; n--)
        m = m * 10 + (unsigned)(*p++ - '0');
    return m;
}

double numtext_strtod(const char *s, char **end)
{
    const unsigned char *p = (const unsigned char *)s;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (!is_digit(*p))
        goto slow;
    uint64_t m = 0;
    int nsig = 0; /* significant digits in m (at most 19: m < 10^19 < 2^64) */
    int e10 = 0;  /* value = m * 10^e10 */
    size_t n;
    if (*p == '0') {
        p++;
    } else {
        n = digit_run(p);
        if (n > 19)
            goto slow;
        m = accumulate(m, p, n);
        nsig = (int)n;
        p += n;
    }
    if (*p == '.') {
        p++;
        if (!is_digit(*p))
            goto slow;
        if (m == 0) { /* leading zeros of the fraction are not significant */
            const unsigned char *z = p;
            while (*p == '0')
                p++;
            if (p - z > 100000)
                goto slow; /* keeps e10 far from overflow on absurd inputs */
            e10 -= (int)(p - z);
        }
        n = digit_run(p);
        if (n > (size_t)(19 - nsig))
            goto slow;
        m = accumulate(m, p, n);
        e10 -= (int)n;
        p += n;
    }
    if ((*p | 0x20) == 'e') {
        const unsigned char *q = p + 1;
        int eneg = 0;
        if (*q == '+' || *q == '-')
            eneg = *q++ == '-';
        if (!is_digit(*q))
            goto slow;
        int x = 0;
        do {
            if (x < 100000) /* past that the value is 0 or inf anyway: strtod decides */
                x = x * 10 + (*q - '0');
            q++;
        } while (is_digit(*q));
        e10 += eneg ? -x : x;
        p = q;
    }
    if (may_continue(*p))
        goto slow;
    double d;
    if (m == 0) {
        d = 0.0;
    } else if (m <= (UINT64_C(1) << 53) && e10 >= -22 && e10 <= 22) {
        /* Clinger: m and 10^|e10| are exact doubles, so one correctly rounded operation gives
         * the double nearest to m * 10^e10, which is what strtod returns. */
        d = e10 < 0 ? (double)m / pow10_exact[-e10] : (double)m * pow10_exact[e10];
    } else if (m <= (UINT64_C(1) << 53) && e10 > 22 && e10 <= 22 + 15) {
        /* "123e25": move the excess of the exponent into m while m stays exact. */
        uint64_t mm = m;
        for (int k = 22; k < e10; k++) {
            if (mm > (UINT64_C(1) << 53) / 10)
                goto slow;
            mm *= 10;
        }
        d = (double)mm * pow10_exact[22];
    } else {
        goto slow;
    }
    if (end)
        *end = (char *)p;
    return neg ? -d : d;
slow:
    return strtod(s, end);
}

/* Powers of ten as 128-bit integers, 10^0 .. 10^31 (10^31 < 2^104). */
static u128 pow10_u128(int k)
{
    u128 r = 1;
    while (k-- > 0)
        r *= 10;
    return r;
}

static const char digit_pairs[201] = "00010203040506070809"
                                     "10111213141516171819"
                                     "20212223242526272829"
                                     "30313233343536373839"
                                     "40414243444546474849"
                                     "50515253545556575859"
                                     "60616263646566676869"
                                     "70717273747576777879"
                                     "80818283848586878889"
                                     "90919293949596979899";

/* The nine digits of q (10^8 <= q < 10^9) into d[9]. */
static void nine_digits(char d[9], uint32_t q)
{
    for (int i = 7; i >= 1; i -= 2) {
        memcpy(d + i, digit_pairs + 2 * (q % 100), 2);
        q /= 100;
    }
    d[0] = (char)('0' + q);
}

size_t numtext_g9(char *buf, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint32_t bexp = bits >> 23 & 0xffu, frac = bits & 0x7fffffu;
    char *o = buf;
    /* Not finite, or below 2^-73 (so below ~1.06e-22, where 10^(8-E) * 2^24 would not fit 128
     * bits): printf's own text.  Zero is below too, but its text is simple. */
    if (bexp == 0xffu || (bexp < 54 && (bexp | frac) != 0))
        return (size_t)snprintf(buf, NUMTEXT_G9_MAX, "%.9g", (double)v);
    if (bits >> 31)
        *o++ = '-';
    if (bexp == 0) {
        *o++ = '0';
        *o = '\0';
        return (size_t)(o - buf);
    }
    /* |v| = m * 2^e2 exactly, 2^23 <= m < 2^24; floor(log2 |v|) = b. */
    uint64_t m = frac | UINT32_C(1) << 23;
    int e2 = (int)bexp - 150, b = (int)bexp - 127;
    /* E = floor(log10 |v|) is floor(b log10 2) or one more (1292913986 / 2^32 is log10 2 within
     * 1e-10); the loop below corrects the estimate either way. */
    int64_t t = (int64_t)b * 1292913986;
    int E = (int)(t >= 0 ? t / (INT64_C(1) << 32)
                         : -((-t + (INT64_C(1) << 32) - 1) / (INT64_C(1) << 32)));
    uint64_t q;
    int up;
    for (;;) {
        /* S = |v| * 10^(8 - E); q = floor(S); up = round-half-even says q + 1. */
        int p = 8 - E;
        if (p >= 0) {
            u128 n = (u128)m * pow10_u128(p);
            if (e2 >= 0) {
                q = (uint64_t)(n << e2);
                up = 0;
            } else {
                int sh = -e2; /* <= 96 */
                u128 rem = n & (((u128)1 << sh) - 1), half = (u128)1 << (sh - 1);
                q = (uint64_t)(n >> sh);
                up = rem > half || (rem == half && (q & 1));
            }
        } else { /* |v| >= 1e9: an integer (e2 >= 7) below 2^128 */
            u128 n = (u128)m << e2, div = pow10_u128(-p);
            u128 rem = n % div;
            q = (uint64_t)(n / div);
            up = 2 * rem > div || (2 * rem == div && (q & 1));
        }
        if (q >= 1000000000u)
            E++; /* the estimate was one low */
        else if (q < 100000000u)
            E--; /* or high (cannot happen with this constant; kept so it never matters) */
        else
            break;
    }
    q += (uint64_t)up;
    if (q == 1000000000u) { /* 999999999.5 rounded up: one more digit position */
        q = 100000000u;
        E++;
    }
    char d[9];
    nine_digits(d, (uint32_t)q);
    int nd = 9;
    while (nd > 1 && d[nd - 1] == '0')
        nd--;
    if (E < -4 || E >= 9) { /* %e style: d[.ddd]e±XX */
        *o++ = d[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, d + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        *o++ = 'e';
        *o++ = E < 0 ? '-' : '+';
        int ax = E < 0 ? -E : E; /* <= 45: two digits */
        memcpy(o, digit_pairs + 2 * ax, 2);
        o += 2;
    } else if (E >= 0) { /* E + 1 integer digits, then the rest after a point */
        int ni = E + 1;
        if (nd <= ni) {
            memcpy(o, d, (size_t)ni); /* d holds the trailing zeros we stripped */
            o += ni;
        } else {
            memcpy(o, d, (size_t)ni);
            o += ni;
            *o++ = '.';
            memcpy(o, d + ni, (size_t)(nd - ni));
            o += nd - ni;
        }
    } else { /* -4 <= E <= -1: 0.000ddd */
        *o++ = '0';
        *o++ = '.';
        for (int k = -1; k > E; k--)
            *o++ = '0';
        memcpy(o, d, (size_t)nd);
        o += nd;
    }
    *o = '\0';
    return (size_t)(o - buf);
}

const char *numtext_digits(const char *s, const char *e)
{
    const unsigned char *p = (const unsigned char *)s, *end = (const unsigned char *)e;
    while (end - p >= 8) {
        uint64_t v;
        memcpy(&v, p, sizeof v);
        /* x = byte ^ '0' is a digit's value; a byte is not a digit when x has its high bit set
         * or (x & 0x7f) + 0x76 does (x >= 10); no carry crosses a byte (0x7f + 0x76 < 0x100). */
        uint64_t x = v ^ UINT64_C(0x3030303030303030);
        uint64_t bad = (x | ((x & UINT64_C(0x7f7f7f7f7f7f7f7f)) + UINT64_C(0x7676767676767676))) &
                       UINT64_C(0x8080808080808080);
        if (bad) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            return (const char *)p + (__builtin_clzll(bad) >> 3);
#else
            return (const char *)p + (__builtin_ctzll(bad) >> 3);
#endif
        }
        p += 8;
    }
    while (p < end && is_digit(*p))
        p++;
    return (const char *)p;
}

const char *numtext_json(const char *s, const char *e, double *out)
{
    const unsigned char *p = (const unsigned char *)s, *end = (const unsigned char *)e, *q;
    int neg = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end || !is_digit(*p))
        return NULL;
    uint64_t m = 0;
    int nsig = 0, e10 = 0, exact = 1; /* exact: m * 10^e10 is the number, m < 10^19 */
    size_t n;
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p))
            return NULL; /* a leading zero */
    } else {
        q = (const unsigned char *)numtext_digits((const char *)p, e);
        n = (size_t)(q - p);
        if (n > 19)
            exact = 0;
        else
            m = accumulate(m, p, n), nsig = (int)n;
        p = q;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p))
            return NULL;
        if (m == 0 && exact) { /* leading zeros of the fraction are not significant */
            q = p;
            while (p < end && *p == '0')
                p++;
            if (p - q > 100000)
                exact = 0;
            else
                e10 -= (int)(p - q);
        }
        q = (const unsigned char *)numtext_digits((const char *)p, e);
        n = (size_t)(q - p);
        if (exact && n <= (size_t)(19 - nsig))
            m = accumulate(m, p, n), e10 -= (int)n;
        else if (n > 0)
            exact = 0;
        p = q;
    }
    if (p < end && (*p | 0x20) == 'e') {
        p++;
        int eneg = 0;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p >= end || !is_digit(*p))
            return NULL;
        int x = 0;
        for (; p < end && is_digit(*p); p++)
            if (x < 100000) /* past that the value is 0 or inf anyway: strtod decides */
                x = x * 10 + (*p - '0');
        e10 += eneg ? -x : x;
    }
    double d;
    if (exact && m == 0) {
        d = 0.0;
    } else if (exact && m <= (UINT64_C(1) << 53) && e10 >= -22 && e10 <= 22) {
        d = e10 < 0 ? (double)m / pow10_exact[-e10] : (double)m * pow10_exact[e10];
    } else {
        /* strtod on a NUL-terminated copy reads exactly this number (JSON's number grammar is a
         * subset of strtod's decimal form); longer texts are left to the caller. */
        char buf[128];
        size_t len = (size_t)(p - (const unsigned char *)s);
        if (len >= sizeof buf)
            return NULL;
        memcpy(buf, s, len);
        buf[len] = '\0';
        *out = strtod(buf, NULL);
        return (const char *)p;
    }
    *out = neg ? -d : d;
    return (const char *)p;
}
