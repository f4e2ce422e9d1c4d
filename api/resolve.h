/* resolve.h - host name lookups bounded by a deadline, and the detached helper threads they run
 * on.  getaddrinfo has no timeout of its own (a resolver that does not answer holds it for the
 * resolver's whole retry schedule, tens of seconds); here it runs on a short-lived detached thread
 * and the caller waits no longer than its deadline.  A lookup the caller gave up on finishes on
 * its own and frees what it found.  Used by the database pool's connects (db.c) and by the SSRF
 * check of webhook URLs at create/update time (netguard.c).  Thread-safe.
 *
 * Process-wide state, on purpose: the number of lookup threads running for each purpose, bounded
 * (resolve.c: 8 for the database pool, 32 for webhook checks).  A resolver that does not answer
 * would otherwise leave one thread per timed-out request behind (a client looping on webhook
 * creates could pile up thousands); past the bound a lookup fails at once as RESOLVE_BUSY.  Each
 * purpose has a bound of its own, so webhook creates against a stalled domain cannot take the
 * lookups the database pool needs to reconnect.  A counter owned by a caller's object could not be,
 * as the threads may outlive every object of the process but the process itself. */
#ifndef VIGIL_RESOLVE_H
#define VIGIL_RESOLVE_H

#include <stdint.h>

struct addrinfo;

/* Who asks, each with its bound on lookup threads running at once. */
enum resolve_purpose {
    RESOLVE_FOR_DB,      /* the database pool's connects: 8 */
    RESOLVE_FOR_WEBHOOK, /* a webhook URL's check at create/update: 32 */
    RESOLVE_PURPOSES
};

enum resolve_result {
    RESOLVE_OK = 0,
    RESOLVE_NONE,    /* no such host, no address of a stream socket, or no thread to ask */
    RESOLVE_TIMEOUT, /* no answer before the deadline */
    RESOLVE_BUSY,    /* as many lookups for this purpose as its bound are running: not asked */
};

/* Resolves host (a name or a numeric address, for stream sockets, any family) for purpose before
 * deadline_ms (clock_now_ms()).  On RESOLVE_OK *res is getaddrinfo's list: the caller frees it
 * with freeaddrinfo.  Otherwise *res is NULL. */
int resolve_host(int purpose, const char *host, int64_t deadline_ms, struct addrinfo **res);

/* Starts fn(arg) on a detached thread with every signal blocked (a thread that left SIGTERM
 * deliverable could take the signal vigil-api's main waits for with sigwait, whose default action
 * ends the process without the drain).  Returns pthread_create's result. */
int resolve_start_detached(void *(*fn)(void *), void *arg);

#endif
