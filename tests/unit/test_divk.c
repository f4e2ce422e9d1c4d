/* test_divk.c - the proof behind hotpath/hp_divk.h: for every divisor hp_divk_divisors() lists,
 * hp_divk16 (AVX-512F) gives the IEEE division's bits for every x in
 * [1, 2) and (-2, -1] (which, by the scaling argument in hp_divk.h, covers the whole range where
 * the fused form is taken), for every x in the range's two end binades and +-0, and for a sample
 * of 2^20 patterns spread over all 2^32 (NaNs, infinities, subnormals, huge values: the range
 * check and the fall-back division), and for vectors mixing lanes inside and outside the range. The
 * explainer's vector walks (hp_shap.c) divide by these divisors with them; test_kernel checks the
 * walks against the reference on fixtures and random models, which could not by itself reach every
 * x.
 *
 * Runs when the CPU has AVX-512F (without it the worker never takes this path either, and both
 * tests report themselves skipped: tests/lib/skip.h); the divisors are split over two threads.
 * About two seconds. */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hp_divk.h"
#include "skip.h"

#define DIVK_CAP 256

/* Bit-pattern runs swept for every divisor: start, count, stride. */
typedef struct run {
    uint32_t start, count, stride;
} run;

static const run runs[] = {
    {0x3f800000u, 1u << 23, 1},                        /* [1, 2) */
    {0xbf800000u, 1u << 23, 1},                        /* (-2, -1] */
    {HP_DIVK_LO_BITS, 1u << 23, 1},                    /* [2^-60, 2^-59) */
    {HP_DIVK_LO_BITS | 0x80000000u, 1u << 23, 1},      /* its negatives */
    {HP_DIVK_HI_BITS - (1u << 23), (1u << 23) + 1, 1}, /* [2^59, 2^60] */
    {(HP_DIVK_HI_BITS - (1u << 23)) | 0x80000000u, (1u << 23) + 1, 1},
    {0x00000000u, 1, 1},           /* +0 */
    {0x80000000u, 1, 1},           /* -0 */
    {0x00000007u, 1u << 20, 4099}, /* everything, sampled */
    /* vectors mixing lanes inside and outside the range: whatever way the range check sends
     * them, every lane must come out as the division's */
    {HP_DIVK_LO_BITS - 8u, 16, 1},                 /* 8 lanes just below 2^-60, 8 from it */
    {HP_DIVK_HI_BITS - 7u, 16, 1},                 /* 8 lanes up to 2^60, 8 just above */
    {(HP_DIVK_LO_BITS - 8u) | 0x80000000u, 16, 1}, /* the same, negative */
    {(HP_DIVK_HI_BITS - 7u) | 0x80000000u, 16, 1},
    {0x3f800000u, 16, 0x02000000u}, /* 1, 2^2, ... 2^30 and on past 2^60 in one vector */
};

typedef struct job {
    const float *divs;
    size_t from, to;     /* divisors [from, to) */
    uint64_t swept, bad; /* patterns compared; those whose bits differ from x / c */
    uint32_t first_bad;  /* the first such pattern, for the message */
    float first_bad_div; /* and its divisor */
} job;

/* Patterns r->start + i * r->stride (mod 2^32) in 16 lanes, divided by c with reciprocal rc
 * (hp_divk_recip(c), or a wrong one for the negative controls): differing lanes counted. */
__attribute__((target("avx512f"))) static uint64_t sweep16r(float c, float rc, const run *r,
                                                            uint32_t *first)
{
    const __m512 vc = _mm512_set1_ps(c), vr = _mm512_set1_ps(rc);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    uint64_t bad = 0;
    for (uint32_t i = 0; i < r->count; i += 16) {
        const __mmask16 live =
            r->count - i >= 16 ? 0xffff : (__mmask16)((1u << (r->count - i)) - 1);
        const __m512i bits =
            _mm512_add_epi32(_mm512_set1_epi32((int)(r->start + i * r->stride)),
                             _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)r->stride)));
        const __m512 x = _mm512_castsi512_ps(bits);
        const __m512i want = _mm512_castps_si512(_mm512_div_ps(x, vc));
        const __m512i got = _mm512_castps_si512(hp_divk16(x, vc, vr));
        const __mmask16 ne = _mm512_mask_cmpneq_epi32_mask(live, want, got);
        if (ne) {
            if (!bad)
                *first = r->start + (i + (uint32_t)__builtin_ctz(ne)) * r->stride;
            bad += (uint64_t)__builtin_popcount(ne);
        }
    }
    return bad;
}

static uint64_t sweep16(float c, const run *r, uint32_t *first)
{
    return sweep16r(c, hp_divk_recip(c), r, first);
}

static void *run_job(void *arg)
{
    job *j = arg;
    for (size_t i = j->from; i < j->to; i++)
        for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
            uint32_t fb = 0;
            uint64_t b = sweep16(j->divs[i], &runs[k], &fb);
            if (b && !j->bad) {
                j->first_bad = fb;
                j->first_bad_div = j->divs[i];
            }
            j->bad += b;
            j->swept += runs[k].count;
        }
    return NULL;
}

static void prove(void)
{
    float divs[DIVK_CAP];
    size_t n = hp_divk_divisors(divs, DIVK_CAP);
    ck_assert_uint_le(n, DIVK_CAP);
    ck_assert_uint_eq(n, 16 + 15 * 16 / 2); /* d + 1 for d = 0..15, then 120 ratios */
    job jobs[2] = {{divs, 0, n / 2, 0, 0, 0, 0}, {divs, n / 2, n, 0, 0, 0, 0}};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, run_job, &jobs[1]), 0);
    run_job(&jobs[0]);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(jobs[i].bad == 0,
                      "%llu patterns differ from the division, first x bits %#x for c = %.9g",
                      (unsigned long long)jobs[i].bad, jobs[i].first_bad,
                      (double)jobs[i].first_bad_div);
    printf("hp_divk16: %zu divisors, %llu (x, c) pairs, all bit-identical to the division\n", n,
           (unsigned long long)(jobs[0].swept + jobs[1].swept));
}

START_TEST(test_equals_division)
{
    if (!__builtin_cpu_supports("avx512f")) {
        t_skip("test_divk", "test_equals_division",
               "no AVX-512F on this CPU (the worker does not use hp_divk16 either)");
        return;
    }
    prove();
}
END_TEST

/* The sweep can fail: a divisor outside what hp_divk.h allows (1/16..16) whose reciprocal
 * overflows to infinity takes the fused form in range and gets NaN, which must be reported; and
 * so must a reciprocal of a divisor the explainer uses (3) that is 2048 ulps off the rounded
 * 1/3 either way (measured: about 3.26 million of the 2^23 quotients in [1, 2) then differ; up to
 * 1024 ulps off, the correction step repairs every one of them, so the sweep checks the fused
 * form as a whole, not only the reciprocal's last bit). */
START_TEST(test_sweep_detects_a_wrong_divisor)
{
    const run one = {0x3f800000u, 1u << 23, 1};
    uint32_t fb = 0;
    if (!__builtin_cpu_supports("avx512f")) {
        t_skip("test_divk", "test_sweep_detects_a_wrong_divisor", "no AVX-512F on this CPU");
        return;
    }
    uint64_t bad = sweep16(1e-39f, &one, &fb);
    ck_assert_msg(bad > 0, "divisor 1e-39 passes: the sweep proves nothing");
    float r3 = hp_divk_recip(3.0f), off;
    uint32_t bits;
    for (int sign = -1; sign <= 1; sign += 2) {
        memcpy(&bits, &r3, sizeof bits);
        bits += (uint32_t)(sign * 2048);
        memcpy(&off, &bits, sizeof off);
        bad = sweep16r(3.0f, off, &one, &fb);
        ck_assert_msg(bad > 0, "1/3 %+d ulps passes the sweep", sign * 2048);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("divk");
    TCase *tc = tcase_create("exhaustive");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_equals_division);
    tcase_add_test(tc, test_sweep_detects_a_wrong_divisor);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
