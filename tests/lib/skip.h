/* skip.h - how a test says it could not test what it is for on this build (e.g. the allocation
 * probe cannot be preloaded under ASan).  Prints one line
 *     SKIPPED: <binary>: <test>: <reason>
 * on stdout, flushed at once (so a forked Check child cannot lose it); tests/run.sh counts each
 * such line as one skipped test instead of a passed one in its closing line
 * "N passed, N failed, N skipped".  Call it at most once per test; the test then returns without
 * failing.  A missing dependency that `make deps` installs is a failure, never a skip. */
#ifndef VIGIL_TEST_SKIP_H
#define VIGIL_TEST_SKIP_H

#include <stdio.h>

static inline void t_skip(const char *binary, const char *test, const char *reason)
{
    printf("SKIPPED: %s: %s: %s\n", binary, test, reason);
    fflush(stdout);
}

#endif
