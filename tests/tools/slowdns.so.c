/* slowdns.so - LD_PRELOAD shim: a name resolver that stalls.  getaddrinfo() of a host name ending
 * in ".slow.test" sleeps VIGIL_SLOWDNS_S seconds (default 10) and then fails (EAI_AGAIN), as a
 * resolver whose nameservers do not answer does; every other name goes to the real getaddrinfo.
 * Used by tests/e2e/e2e_webhooks.c to check that a webhook attempt ends within its timeout while
 * the name of its endpoint does not resolve. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    static const char suffix[] = ".slow.test";
    size_t n = node ? strlen(node) : 0, k = sizeof suffix - 1;
    if (n > k && strcmp(node + n - k, suffix) == 0) {
        const char *s = getenv("VIGIL_SLOWDNS_S");
        int secs = s ? atoi(s) : 10;
        sleep((unsigned)(secs > 0 && secs < 600 ? secs : 10));
        return EAI_AGAIN;
    }
    gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    return real ? real(node, service, hints, res) : EAI_SYSTEM;
}
