/* hp_log.c - the worker's log lines.  See hp_log.h.
 *
 * The line builder is common/logline.c (allocation-free: no stdio stream, no gmtime_r, whose first
 * call may load the time-zone database); the functions here give it the worker's names. */
#include "hp_log.h"

#include <stdatomic.h>
#include <string.h>

#include "clock.h"

void hp_log_begin(hp_log_line *l, const char *level, const char *event)
{
    logline_begin(l, level, event);
}

void hp_log_str(hp_log_line *l, const char *key, const char *value)
{
    logline_str(l, key, value);
}

void hp_log_u64(hp_log_line *l, const char *key, uint64_t value)
{
    logline_u64(l, key, value);
}

void hp_log_i64(hp_log_line *l, const char *key, int64_t value)
{
    logline_i64(l, key, value);
}

void hp_log_errno(hp_log_line *l, const char *key, int errnum)
{
    char tmp[128];
    /* _GNU_SOURCE gives the GNU strerror_r, which may return a static string instead of tmp. */
    const char *msg = strerror_r(errnum, tmp, sizeof tmp);
    hp_log_str(l, key, msg);
}

void hp_log_end(hp_log_line *l)
{
    logline_end(l);
}

/* One window per monotonic second.  The reset at a window change races benignly with concurrent
 * callers: at worst a few lines more or fewer than the limit in that second. */
static _Atomic int64_t rl_window = -1;
static _Atomic uint32_t rl_count;
static _Atomic uint64_t rl_dropped;

int hp_log_ratelimit(uint64_t *suppressed)
{
    int64_t now = clock_now_ms() / 1000;
    int64_t w = atomic_load_explicit(&rl_window, memory_order_relaxed);
    if (w != now && atomic_compare_exchange_strong(&rl_window, &w, now))
        atomic_store(&rl_count, 0);
    if (atomic_fetch_add(&rl_count, 1) < HP_LOG_ERRORS_PER_SEC) {
        *suppressed = atomic_exchange(&rl_dropped, 0);
        return 1;
    }
    atomic_fetch_add(&rl_dropped, 1);
    *suppressed = 0;
    return 0;
}
