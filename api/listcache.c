/* listcache.c - list sets per list version, built by one background thread.  See listcache.h.
 *
 * The entries (one per list id asked for) live in an array under one mutex; a waiter sleeps on one
 * condition variable that the builder broadcasts after every build.  The builder sleeps in poll()
 * on its PostgreSQL socket (notifications) and a self-pipe (work from listcache_get). */
#include "listcache.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "logline.h"

#define LC_MAX_ENTRIES 4096 /* distinct lists held; more is refused (LISTCACHE_FAILED) */
#define LC_FETCH "FETCH 50000 FROM lc_items"

struct listcache_set {
    listset *set;
    int64_t version;
    int refs;    /* references handed out and not released */
    int retired; /* replaced by a newer set: freed with its last reference */
};

typedef struct lc_entry {
    char id[37];
    listcache_set *cur; /* the newest set built, or NULL */
    int dirty;          /* a (re)build is wanted */
    int building;       /* the builder is reading it now */
    unsigned builds;    /* completed build attempts */
    int gone;           /* the last build found no such list */
    char err[200];      /* the last build's failure, "" after a success */
} lc_entry;

struct listcache {
    char *url;
    pthread_mutex_t mu;
    pthread_cond_t built; /* CLOCK_MONOTONIC */
    lc_entry *e;
    size_t n;
    int wake[2]; /* self-pipe: [1] written by listcache_get, [0] polled by the builder */
    int stop;
    pthread_t th;
    PGconn *pg; /* the builder's own; only the builder thread touches it */
};

/* ---- the builder ---------------------------------------------------------------------------- */

/* Rolls back (if a transaction is open) and says why a build failed. */
static int build_fail(PGconn *pg, PGresult *r, listset_builder *b, char *err, size_t errlen,
                      const char *what)
{
    snprintf(err, errlen, "%s: %s", what, pg ? PQerrorMessage(pg) : "no connection");
    err[strcspn(err, "\n")] = '\0';
    PQclear(r);
    listset_builder_free(b);
    if (pg && PQtransactionStatus(pg) != PQTRANS_IDLE)
        PQclear(PQexec(pg, "ROLLBACK"));
    return -1;
}

/* Reads the items of the cursor lc_items into b.  0, or -1 with err filled. */
static int build_fetch(PGconn *pg, listset_builder *b, char *err, size_t errlen)
{
    for (;;) {
        PGresult *r = PQexec(pg, LC_FETCH);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            return build_fail(pg, r, NULL, err, errlen, "fetch");
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            char why[160];
            int rc = listset_builder_add(b, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), why,
                                         sizeof why);
            if (rc == LISTSET_E_NOMEM) {
                PQclear(r);
                snprintf(err, errlen, "out of memory building the set");
                return -1;
            }
            /* LISTSET_E_INVALID cannot happen for items lists.c stored canonically; skipped */
        }
        PQclear(r);
        if (n == 0)
            return 0;
    }
}

/* Builds the set of list id from one snapshot.  0 with *out and *version; 1 when the list does
 * not exist; -1 with err filled. */
static int build(PGconn *pg, const char *id, listset **out, int64_t *version, char *err,
                 size_t errlen)
{
    const char *v[] = {id};
    listset_builder *b = NULL;
    PGresult *r = PQexec(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return build_fail(pg, r, b, err, errlen, "begin");
    PQclear(r);
    r = PQexecParams(pg, "SELECT kind, version, item_count FROM lists WHERE id = $1", 1, NULL, v,
                     NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return build_fail(pg, r, b, err, errlen, "select");
    if (PQntuples(r) == 0) {
        PQclear(r);
        PQclear(PQexec(pg, "ROLLBACK"));
        return 1;
    }
    const char *kind = PQgetvalue(r, 0, 0);
    *version = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    b = listset_builder_new(listset_kind_parse(kind, strlen(kind)),
                            strtoull(PQgetvalue(r, 0, 2), NULL, 10));
    PQclear(r);
    if (!b)
        return build_fail(pg, NULL, NULL, err, errlen, "out of memory");
    r = PQexecParams(pg,
                     "DECLARE lc_items NO SCROLL CURSOR FOR "
                     "SELECT value FROM list_items WHERE list_id = $1",
                     1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return build_fail(pg, r, b, err, errlen, "declare");
    PQclear(r);
    if (build_fetch(pg, b, err, errlen)) {
        listset_builder_free(b);
        PQclear(PQexec(pg, "ROLLBACK"));
        return -1;
    }
    PQclear(PQexec(pg, "COMMIT"));
    if (!(*out = listset_build(b))) {
        snprintf(err, errlen, "out of memory building the set");
        return -1;
    }
    return 0;
}

static lc_entry *find(listcache *lc, const char *id)
{
    for (size_t i = 0; i < lc->n; i++)
        if (strcmp(lc->e[i].id, id) == 0)
            return &lc->e[i];
    return NULL;
}

static void set_unref(listcache_set *s)
{
    if (--s->refs == 0 && s->retired) {
        listset_free(s->set);
        free(s);
    }
}

/* Installs the outcome of one build of entry id (under the mutex) and wakes the waiters. */
static void install(listcache *lc, const char *id, int rc, listset *set, int64_t version,
                    const char *err)
{
    listcache_set *s = rc == 0 ? calloc(1, sizeof *s) : NULL;
    pthread_mutex_lock(&lc->mu);
    lc_entry *e = find(lc, id);
    e->building = 0;
    e->builds++;
    e->gone = rc == 1;
    snprintf(e->err, sizeof e->err, "%s", rc < 0 ? err : rc == 0 && !s ? "out of memory" : "");
    if (s) {
        *s = (listcache_set){set, version, 1, 0};
        if (e->cur) {
            e->cur->retired = 1;
            set_unref(e->cur);
        }
        e->cur = s;
        set = NULL;
    } else if (rc == 1 && e->cur) {
        e->cur->retired = 1;
        set_unref(e->cur);
        e->cur = NULL;
    }
    pthread_cond_broadcast(&lc->built);
    pthread_mutex_unlock(&lc->mu);
    listset_free(set);
}

/* Connects (bounded: connect_timeout) and LISTENs.  0, or -1 (lc->pg NULL) with err filled. */
static int builder_connect(listcache *lc, char *err, size_t errlen)
{
    const char *const keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *const vals[] = {lc->url, "5", "vigil-api listcache", NULL};
    lc->pg = PQconnectdbParams(keys, vals, 1);
    PGresult *r = NULL;
    if (PQstatus(lc->pg) == CONNECTION_OK) {
        r = PQexec(lc->pg, "LISTEN vigil_lists");
        if (PQresultStatus(r) == PGRES_COMMAND_OK) {
            PQclear(r);
            return 0;
        }
    }
    snprintf(err, errlen, "list sets: %s", PQerrorMessage(lc->pg));
    err[strcspn(err, "\n")] = '\0';
    PQclear(r);
    PQfinish(lc->pg);
    lc->pg = NULL;
    return -1;
}

/* Marks every held list whose id a notification named as wanting a rebuild. */
static void builder_notifications(listcache *lc)
{
    PGnotify *n;
    if (!PQconsumeInput(lc->pg)) {
        PQfinish(lc->pg); /* reconnected (and every held list rebuilt) by the loop */
        lc->pg = NULL;
        return;
    }
    pthread_mutex_lock(&lc->mu);
    while ((n = PQnotifies(lc->pg)) != NULL) {
        lc_entry *e = find(lc, n->extra);
        if (e)
            e->dirty = 1;
        PQfreemem(n);
    }
    pthread_mutex_unlock(&lc->mu);
}

/* Takes the next entry wanting a build into id[37] (marking it building).  1 when there is one. */
static int next_dirty(listcache *lc, char *id)
{
    int found = 0;
    pthread_mutex_lock(&lc->mu);
    for (size_t i = 0; i < lc->n && !found; i++)
        if (lc->e[i].dirty) {
            lc->e[i].dirty = 0;
            lc->e[i].building = 1;
            memcpy(id, lc->e[i].id, 37);
            found = 1;
        }
    pthread_mutex_unlock(&lc->mu);
    return found;
}

/* After a reconnect every held list is rebuilt: notifications may have been missed meanwhile. */
static void mark_all_dirty(listcache *lc)
{
    pthread_mutex_lock(&lc->mu);
    for (size_t i = 0; i < lc->n; i++)
        lc->e[i].dirty = 1;
    pthread_mutex_unlock(&lc->mu);
}

/* Fails every wanted build (the database cannot be reached) so waiters need not sit out their
 * whole deadline. */
static void fail_dirty(listcache *lc, const char *err)
{
    char id[37];
    while (next_dirty(lc, id))
        install(lc, id, -1, NULL, 0, err);
}

static void *builder_main(void *arg)
{
    listcache *lc = arg;
    char err[256], id[37];
    for (;;) {
        pthread_mutex_lock(&lc->mu);
        int stop = lc->stop;
        pthread_mutex_unlock(&lc->mu);
        if (stop)
            break;
        if (!lc->pg && builder_connect(lc, err, sizeof err) == 0)
            mark_all_dirty(lc);
        else if (!lc->pg)
            fail_dirty(lc, err);
        while (lc->pg && next_dirty(lc, id)) {
            listset *set = NULL;
            int64_t version = 0;
            int rc = build(lc->pg, id, &set, &version, err, sizeof err);
            install(lc, id, rc, set, version, err);
            if (rc < 0 && PQstatus(lc->pg) != CONNECTION_OK) {
                PQfinish(lc->pg);
                lc->pg = NULL;
            }
        }
        struct pollfd p[2] = {{lc->wake[0], POLLIN, 0},
                              {lc->pg ? PQsocket(lc->pg) : -1, POLLIN, 0}};
        if (poll(p, 2, lc->pg ? 1000 : 500) > 0 && (p[0].revents & POLLIN)) {
            char buf[64];
            while (read(lc->wake[0], buf, sizeof buf) == (ssize_t)sizeof buf) {
            }
        }
        if (lc->pg)
            builder_notifications(lc);
    }
    return NULL;
}

static void nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* ---- the API -------------------------------------------------------------------------------- */

listcache *listcache_create(const char *database_url, char *err, size_t errlen)
{
    listcache *lc = calloc(1, sizeof *lc);
    pthread_condattr_t ca;
    if (!lc || !(lc->url = strdup(database_url)) ||
        !(lc->e = calloc(LC_MAX_ENTRIES, sizeof *lc->e)) || pipe(lc->wake) != 0) {
        snprintf(err, errlen, "list sets: out of memory");
        if (lc) {
            free(lc->url);
            free(lc->e);
        }
        free(lc);
        return NULL;
    }
    for (int i = 0; i < 2; i++)
        nonblocking(lc->wake[i]);
    pthread_mutex_init(&lc->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&lc->built, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&lc->th, NULL, builder_main, lc) != 0) {
        snprintf(err, errlen, "list sets: cannot start the builder thread");
        close(lc->wake[0]);
        close(lc->wake[1]);
        free(lc->url);
        free(lc->e);
        free(lc);
        return NULL;
    }
    return lc;
}

void listcache_destroy(listcache *lc)
{
    if (!lc)
        return;
    pthread_mutex_lock(&lc->mu);
    lc->stop = 1;
    pthread_mutex_unlock(&lc->mu);
    (void)!write(lc->wake[1], "x", 1);
    /* The builder may sit in a connect (<= 5 s) or a build against a stalled server: shutdown
     * does not wait for it longer than 2 s; the process is exiting, so what it holds is left. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    if (pthread_timedjoin_np(lc->th, NULL, &until) != 0)
        return;
    PQfinish(lc->pg);
    for (size_t i = 0; i < lc->n; i++)
        if (lc->e[i].cur) {
            listset_free(lc->e[i].cur->set);
            free(lc->e[i].cur);
        }
    close(lc->wake[0]);
    close(lc->wake[1]);
    pthread_cond_destroy(&lc->built);
    pthread_mutex_destroy(&lc->mu);
    free(lc->e);
    free(lc->url);
    free(lc);
}

/* The entry of id, added when new (under the mutex).  NULL when the table is full. */
static lc_entry *entry(listcache *lc, const char *id)
{
    lc_entry *e = find(lc, id);
    if (e || lc->n == LC_MAX_ENTRIES)
        return e;
    e = &lc->e[lc->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, "%s", id);
    return e;
}

int listcache_get(listcache *lc, const char *list_id, int64_t min_version, int64_t deadline_ms,
                  listcache_set **out, char *err, size_t errlen)
{
    int rc = LISTCACHE_TIMEOUT;
    *out = NULL;
    pthread_mutex_lock(&lc->mu);
    lc_entry *e = entry(lc, list_id);
    if (!e) {
        pthread_mutex_unlock(&lc->mu);
        snprintf(err, errlen, "more than %d lists held", LC_MAX_ENTRIES);
        return LISTCACHE_FAILED;
    }
    unsigned seen = e->builds;
    if (!(e->cur && e->cur->version >= min_version)) {
        e->dirty = 1;
        (void)!write(lc->wake[1], "x", 1);
    }
    struct timespec until = clock_abs_timespec(deadline_ms);
    for (;;) {
        if (e->cur && e->cur->version >= min_version) {
            rc = LISTCACHE_OK;
            break;
        }
        /* a build that started after this call and still did not reach min_version failed */
        if (e->builds != seen && !e->dirty && !e->building && (e->gone || e->err[0])) {
            rc = e->gone ? LISTCACHE_GONE : LISTCACHE_FAILED;
            snprintf(err, errlen, "%s", e->gone ? "no such list" : e->err);
            break;
        }
        if (pthread_cond_timedwait(&lc->built, &lc->mu, &until) == ETIMEDOUT) {
            snprintf(err, errlen, "the list set was not built before the deadline");
            break;
        }
    }
    if (e->cur && rc != LISTCACHE_GONE && rc != LISTCACHE_FAILED) {
        e->cur->refs++;
        *out = e->cur;
    }
    pthread_mutex_unlock(&lc->mu);
    return rc;
}

void listcache_release(listcache *lc, listcache_set *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&lc->mu);
    set_unref(s);
    pthread_mutex_unlock(&lc->mu);
}

const listset *listcache_set_get(const listcache_set *s)
{
    return s->set;
}

int64_t listcache_set_version(const listcache_set *s)
{
    return s->version;
}

void listcache_stats(listcache *lc, size_t *sets, size_t *bytes)
{
    *sets = *bytes = 0;
    pthread_mutex_lock(&lc->mu);
    for (size_t i = 0; i < lc->n; i++)
        if (lc->e[i].cur) {
            (*sets)++;
            *bytes += listset_bytes(lc->e[i].cur->set);
        }
    pthread_mutex_unlock(&lc->mu);
}
