/* hp_assert.h - HP_ASSERT: checks of internal contracts that comments state ("caller holds the
 * lock", "never NULL", "before hp_ready() only"), in the spirit of SQLite's assert() habit.
 *
 * Active in the sanitizer builds (`make asan`, the fuzzers: gcc's __SANITIZE_ADDRESS__, clang's
 * address_sanitizer feature) and whenever VIGIL_DEBUG is defined (EXTRA_CFLAGS=-DVIGIL_DEBUG);
 * compiled out of the release build, so a check may sit on a hot path.  A failed check prints the
 * expression and aborts (assert(3)).  Never used on peer input: malformed frames and model blobs
 * are answered with an error frame, never asserted on. */
#ifndef VIGIL_HP_ASSERT_H
#define VIGIL_HP_ASSERT_H

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HP_ASSERT_ON 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(VIGIL_DEBUG)
#undef HP_ASSERT_ON
#define HP_ASSERT_ON 1
#endif

#ifdef HP_ASSERT_ON
#undef NDEBUG
#include <assert.h>
#define HP_ASSERT(cond) assert(cond)
#else
#define HP_ASSERT(cond) ((void)sizeof(cond)) /* not evaluated; keeps its names used */
#endif

#endif
