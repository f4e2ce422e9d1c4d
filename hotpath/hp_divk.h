/* hp_divk.h - x / c without a division instruction, bit for bit, for the divisors the explainer
 * knows in advance: TreeSHAP's (d + 1) and (d - k) / (d + 1) (treeshap_path.h) for path depths
 * d <= HP_DIVK_MAX_D.  The 16-lane division bounds the explainer's AVX-512 walk (one issued every
 * ~8 cycles on the CPU measured; perf put half of the leaf sums' cycles behind it); this is a
 * multiply and two fused multiply-adds, which overlap.
 *
 * For c > 0 and r = 1 / c rounded to nearest (hp_divk_recip):
 *   q0 = x * r                  (rounded)
 *   a  = q0 * c - x             (fused: one rounding)
 *   q  = q0 - a * r             (fused)
 * Markstein's correction step (the IA-64 division sequences).  It is correctly rounded for these
 * divisors only where nothing underflows or overflows: measured over all 2^32 patterns of x, it
 * differs from the division for subnormal x (divisor 6 first) and for infinities.  So it is taken
 * only when every lane has x = +-0 or 2^-60 <= |x| <= 2^60 (HP_DIVK_LO_BITS..HP_DIVK_HI_BITS);
 * otherwise the whole vector is divided (NaN, infinities, tiny and huge values: exact, and rare in
 * TreeSHAP's pweights).  Why one binade proves the whole range: with |x| in it and 1/16 <= c <= 16,
 * q0 is within 2^-64..2^64, a is zero or at least 2^-114 (a multiple of the product q0 * c's last
 * place), so every rounding happens in the normal range, where rounding commutes with scaling by
 * a power of two: x * 2^k gives q * 2^k, and x / c gives (x / c) * 2^k.  tests/unit/test_divk.c
 * checks, for every divisor of hp_divk_divisors(), every x in [1, 2) and (-2, -1] (2^24
 * patterns), the range's two end binades, +-0, and a sample over all patterns (the range check
 * and the fall-back); a = q0 * c - x (not x - q0 * c) keeps -0 / c = -0.
 *
 * Only IEEE binary32 operations with round-to-nearest (the default MXCSR) and no flush-to-zero or
 * denormals-are-zero (never set by the worker).  AVX-512F only: an AVX2 + FMA form measured slower
 * than the 8-lane division it replaced (the explainer's AVX2 level-order walk 18.4 -> 21.5 ms a
 * row on the benchmark model; an 8-lane division costs half a 16-lane one, the range check as
 * much).  Header-only: static inline, target attribute (callers check the CPU). */
#ifndef VIGIL_HP_DIVK_H
#define VIGIL_HP_DIVK_H

#include <stddef.h>
#include <stdint.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Deepest path whose divisors are covered: the explainer's vector walks take paths up to 15 deep
 * (HP_SHAP_VEC_DEPTH, hp_shap.c checks it against this). */
#define HP_DIVK_MAX_D 15u

/* The divisors covered, in a fixed order, as the reference computes them: (float)(d + 1) for
 * d = 0..HP_DIVK_MAX_D, then (float)(d - k) / (float)(d + 1) for d = 1..HP_DIVK_MAX_D and
 * k = 0..d-1.  Writes at most cap of them to out; returns how many there are. */
static inline size_t hp_divk_divisors(float *out, size_t cap)
{
    size_t n = 0;
    for (uint32_t d = 0; d <= HP_DIVK_MAX_D; d++, n++)
        if (n < cap)
            out[n] = (float)(d + 1);
    for (uint32_t d = 1; d <= HP_DIVK_MAX_D; d++)
        for (uint32_t k = 0; k < d; k++, n++)
            if (n < cap)
                out[n] = (float)(d - k) / (float)(d + 1);
    return n;
}

/* r for divisor c: 1 / c rounded to nearest. */
static inline float hp_divk_recip(float c)
{
    return 1.0f / c;
}

/* The range where the fused form is taken: bit patterns of 2^-60 and 2^60. */
#define HP_DIVK_LO_BITS 0x21800000u
#define HP_DIVK_HI_BITS 0x5d800000u

#if defined(__x86_64__)
/* x / c in 16 lanes, r = hp_divk_recip(c) in every lane: the fused form when every lane is in
 * range, else the division. */
__attribute__((target("avx512f"), always_inline)) static inline __m512 hp_divk16(__m512 x, __m512 c,
                                                                                 __m512 r)
{
    const __m512i ax = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff));
    const __mmask16 in =
        _mm512_cmp_epu32_mask(_mm512_sub_epi32(ax, _mm512_set1_epi32((int)HP_DIVK_LO_BITS)),
                              _mm512_set1_epi32((int)(HP_DIVK_HI_BITS - HP_DIVK_LO_BITS)),
                              _MM_CMPINT_LE) |
        _mm512_cmpeq_epi32_mask(ax, _mm512_setzero_si512());
    if (in != 0xffff)
        return _mm512_div_ps(x, c);
    const __m512 q0 = _mm512_mul_ps(x, r);
    return _mm512_fnmadd_ps(_mm512_fmsub_ps(q0, c, x), r, q0);
}
#endif

#endif
