/* resolve.c - bounded host name lookups.  See resolve.h.  Costs: one thread per lookup (they are
 * rare: a pool's connect, a webhook endpoint's create or update). */
#include "resolve.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"

/* Lookup threads running now in the whole process, per purpose (resolve.h), and their bounds. */
static atomic_int running[RESOLVE_PURPOSES];
static const int max_running[RESOLVE_PURPOSES] = {[RESOLVE_FOR_DB] = 8, [RESOLVE_FOR_WEBHOOK] = 32};

/* One lookup, shared by the waiting caller and the lookup thread; the last to let go frees it,
 * with the answer when the caller did not take it. */
typedef struct lookup {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs, done;
    struct addrinfo *res; /* the answer until the caller takes it */
    int purpose;
    char host[256];
} lookup;

int resolve_start_detached(void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &at, fn, arg);
    pthread_attr_destroy(&at);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static void unref(lookup *l)
{
    pthread_mutex_lock(&l->mu);
    int last = --l->refs == 0;
    pthread_mutex_unlock(&l->mu);
    if (last) {
        if (l->res)
            freeaddrinfo(l->res);
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
        free(l);
    }
}

static void *lookup_main(void *arg)
{
    lookup *l = arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(l->host, NULL, &hints, &res) != 0)
        res = NULL;
    pthread_mutex_lock(&l->mu);
    l->res = res;
    l->done = 1;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    int purpose = l->purpose;
    unref(l);
    atomic_fetch_sub(&running[purpose], 1);
    return NULL;
}

int resolve_host(int purpose, const char *host, int64_t deadline_ms, struct addrinfo **res)
{
    *res = NULL;
    if (purpose < 0 || purpose >= RESOLVE_PURPOSES || strlen(host) >= sizeof((lookup *)0)->host)
        return RESOLVE_NONE; /* longer than any host name (253) */
    atomic_int *n = &running[purpose];
    if (atomic_fetch_add(n, 1) >= max_running[purpose]) {
        atomic_fetch_sub(n, 1);
        return RESOLVE_BUSY;
    }
    lookup *l = calloc(1, sizeof *l);
    if (!l) {
        atomic_fetch_sub(n, 1);
        return RESOLVE_NONE;
    }
    l->purpose = purpose;
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(l->host, sizeof l->host, "%s", host);
    l->refs = 2;
    if (resolve_start_detached(lookup_main, l) != 0) {
        l->refs = 1;
        l->done = 1;
        atomic_fetch_sub(n, 1);
    }
    struct timespec ts = clock_abs_timespec(deadline_ms);
    pthread_mutex_lock(&l->mu);
    while (!l->done && pthread_cond_timedwait(&l->cv, &l->mu, &ts) != ETIMEDOUT)
        ;
    int rc = !l->done ? RESOLVE_TIMEOUT : l->res ? RESOLVE_OK : RESOLVE_NONE;
    if (rc == RESOLVE_OK) {
        *res = l->res;
        l->res = NULL;
    }
    pthread_mutex_unlock(&l->mu);
    unref(l);
    return rc;
}
