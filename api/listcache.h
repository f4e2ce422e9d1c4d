/* listcache.h - the in-memory list sets of vigil-api: one immutable listset (common/listset.h) per
 * list version, so a membership probe during a decision is a hash or binary search in memory, never
 * a PostgreSQL round trip.
 *
 * Owns: the sets of the lists decisions and membership reads asked for, a builder thread with its
 * own PostgreSQL connection, and the LISTEN on channel "vigil_lists".  Sets are built OFF the
 * request path, by the builder: each build reads the list's version and items in one REPEATABLE
 * READ snapshot (a cursor, 50,000 rows a fetch), so a set is exactly its version.
 *
 * Freshness on every replica: a list change NOTIFYs "vigil_lists" with the list's id (lists.c);
 * each replica's builder rebuilds the lists it holds at once.  Independently of notifications, a
 * caller asks for a minimum version (the decision reads the current versions of its policy's lists
 * in the policy query it already makes): a set older than that is never used while a newer one can
 * be built before the request's deadline.  So a change is seen by the next decision on every
 * replica, a lost notification only costs that decision the wait.
 *
 * Costs: a build is O(items) time and the set's memory (listset.h; ~56 MB for 1M strings); while
 * it runs the old set stays in use, so a list costs up to twice its set during a rebuild.
 * Thread-safe: any thread may get and release sets; a set is freed when it is replaced and its
 * last reference is released. */
#ifndef VIGIL_LISTCACHE_H
#define VIGIL_LISTCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "listset.h"

typedef struct listcache listcache;
typedef struct listcache_set listcache_set; /* a reference to one version's set */

/* Starts the builder thread, connecting to database_url when it first has work or to LISTEN.
 * Returns NULL with err filled when out of memory or the thread cannot start.  Never blocks on
 * the database. */
listcache *listcache_create(const char *database_url, char *err, size_t errlen);
/* Stops the builder and frees every set.  No reference may be held.  Waits at most 2 s for the
 * builder (a connect or build against a stalled server); past that it leaves everything to the
 * exiting process. */
void listcache_destroy(listcache *lc);

enum listcache_status {
    LISTCACHE_OK = 0,
    LISTCACHE_TIMEOUT = 1, /* no set of at least that version before the deadline */
    LISTCACHE_GONE = 2,    /* the list does not exist (deleted) */
    LISTCACHE_FAILED = 3,  /* the build failed (database down, out of memory): err says why */
};

/* The set of list list_id (a canonical UUID) at version >= min_version, waiting for the builder at
 * most until deadline_ms (absolute, clock_now_ms).  Returns LISTCACHE_OK with *out (release it
 * with listcache_release); on LISTCACHE_TIMEOUT *out is the newest older set when one is held
 * (the caller may use it and must release it), else NULL; otherwise *out is NULL. */
int listcache_get(listcache *lc, const char *list_id, int64_t min_version, int64_t deadline_ms,
                  listcache_set **out, char *err, size_t errlen);
void listcache_release(listcache *lc, listcache_set *s);

/* The set and the list version a reference holds (valid until released). */
const listset *listcache_set_get(const listcache_set *s);
int64_t listcache_set_version(const listcache_set *s);

/* Sets held and their bytes (for /metrics and the README). */
void listcache_stats(listcache *lc, size_t *sets, size_t *bytes);

#endif
