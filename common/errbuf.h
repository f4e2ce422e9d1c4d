/* errbuf.h - the one way a function fills a caller's error buffer (char *err, size_t errlen):
 * printf-style, always NUL-terminated, truncated to fit, and a no-op when the caller passed no
 * buffer (err NULL or errlen 0).  Never allocates: the worker's validators use it after ready. */
#ifndef VIGIL_ERRBUF_H
#define VIGIL_ERRBUF_H

#include <stdarg.h>
#include <stddef.h>

void errbuf_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void errbuf_vset(char *err, size_t errlen, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
