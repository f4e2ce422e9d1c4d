/* clock.h - the one monotonic clock of both processes.
 *
 * Owns: reading CLOCK_MONOTONIC in the units callers need, and turning an absolute deadline on
 * that clock into the timespec pthread_cond_timedwait wants (for condition variables created with
 * pthread_condattr_setclock(CLOCK_MONOTONIC)).  Every deadline in vigil ("deadline_ms") is an
 * absolute clock_now_ms() value.  Costs: one clock_gettime (vDSO, no syscall) per call; no
 * allocation, no state: safe in the worker after it reports ready and from any thread. */
#ifndef VIGIL_CLOCK_H
#define VIGIL_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds / microseconds / nanoseconds on CLOCK_MONOTONIC (arbitrary origin). */
int64_t clock_now_ms(void);
int64_t clock_now_us(void);
int64_t clock_now_ns(void);

/* The CLOCK_MONOTONIC timespec of the absolute time until_ms (a clock_now_ms() value).  A time
 * already passed gives "now", never a negative tv_nsec: pthread_cond_timedwait answers EINVAL for
 * that (without ever timing out), which would turn a wait loop into a spin. */
struct timespec clock_abs_timespec(int64_t until_ms);

#endif
