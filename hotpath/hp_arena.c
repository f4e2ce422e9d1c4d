/* hp_arena.c - model store: fixed region, hash index, refcounts, LRU eviction.  See hp_arena.h.
 *
 * Data structures (all reserved by hp_arena_create, guarded by mu):
 *   ent[HP_ARENA_MAX_MODELS]   the entries; free ones are chained through next_free
 *   slot[2 x MAX]              linear-probing hash of keys -> entry index (-1 empty), deleted by
 *                              backward shift so lookups never walk tombstones
 *   order[0..nlive)            live entries (loading or ready) sorted by region offset: the gaps
 *                              between them are the free space (first fit, O(models)) */
#include "hp_arena.h"
#include "clock.h"
#include "hp_assert.h"
#include "hp_log.h"
#include "hp_stats.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define NSLOTS (2u * HP_ARENA_MAX_MODELS) /* power of two, load factor <= 1/2 */

enum { E_FREE, E_LOADING, E_READY };

typedef struct hp_entry {
    uint8_t key[WIRE_MODEL_KEY_SIZE];
    int state;
    uint32_t refs;
    uint64_t last_used;
    size_t off, len;
    hp_model model; /* model.layout is NULL until the entry is E_READY */
    int32_t next_free;
} hp_entry;

struct hp_arena {
    pthread_mutex_t mu;
    pthread_t holder; /* the thread holding mu (valid while held != 0): for HP_ASSERT(locked(a)) */
    int held;
    const hp_scorer *sc;
    pthread_cond_t cv; /* broadcast when a pin is dropped or a load is published */
    uint8_t *base;
    size_t size;
    uint64_t clock;
    hp_entry ent[HP_ARENA_MAX_MODELS];
    int32_t slot[NSLOTS];
    uint32_t order[HP_ARENA_MAX_MODELS];
    uint32_t nlive;
    int32_t free_head;
    uint64_t bytes_used, resident, loads, load_hits, evictions, load_refused;
    int log_models; /* one log line per model loaded/evicted (hp_arena_set_logging) */
};

/* mu with its holder recorded, so that "Locked." helpers can assert it (hp_assert.h). */
static void lock(hp_arena *a)
{
    pthread_mutex_lock(&a->mu);
    a->holder = pthread_self();
    a->held = 1;
}

static void unlock(hp_arena *a)
{
    HP_ASSERT(a->held && pthread_equal(a->holder, pthread_self()));
    a->held = 0;
    pthread_mutex_unlock(&a->mu);
}

/* 1 if the calling thread holds mu (only ever evaluated inside HP_ASSERT). */
static inline int locked(const hp_arena *a)
{
    return a->held && pthread_equal(a->holder, pthread_self());
}

static uint32_t key_hash(const uint8_t *key)
{
    /* The SHA-256 half is uniformly distributed already; mix in the UUID for distinct ids that
     * share a source. */
    uint64_t a, b;
    memcpy(&a, key + 16, 8);
    memcpy(&b, key, 8);
    uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;
    return (uint32_t)(h >> 40) & (NSLOTS - 1);
}

/* Hash slot holding key, or -1.  Locked. */
static int find_slot(const hp_arena *a, const uint8_t *key)
{
    HP_ASSERT(locked(a));
    for (uint32_t s = key_hash(key);; s = (s + 1) & (NSLOTS - 1)) {
        int32_t e = a->slot[s];
        if (e < 0)
            return -1;
        if (memcmp(a->ent[e].key, key, WIRE_MODEL_KEY_SIZE) == 0)
            return (int)s;
    }
}

static void hash_insert(hp_arena *a, int32_t e)
{
    HP_ASSERT(locked(a));
    uint32_t s = key_hash(a->ent[e].key);
    while (a->slot[s] >= 0)
        s = (s + 1) & (NSLOTS - 1);
    a->slot[s] = e;
}

/* Backward-shift deletion (Knuth 6.4 algorithm R): keeps every probe sequence unbroken. */
static void hash_delete(hp_arena *a, uint32_t s)
{
    HP_ASSERT(locked(a));
    uint32_t i = s;
    for (;;) {
        a->slot[i] = -1;
        uint32_t j = i;
        for (;;) {
            j = (j + 1) & (NSLOTS - 1);
            if (a->slot[j] < 0)
                return;
            uint32_t home = key_hash(a->ent[a->slot[j]].key);
            /* Move slot[j] into the hole at i unless its home lies cyclically in (i, j]. */
            int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays)
                break;
        }
        a->slot[i] = a->slot[j];
        i = j;
    }
}

hp_arena *hp_arena_create(size_t bytes, const hp_scorer *scorer, char *err, size_t errlen)
{
    HP_ASSERT(scorer != NULL && scorer->bytes && scorer->build && scorer->score);
    HP_ASSERT(!hp_after_ready());
    hp_arena *a = calloc(1, sizeof *a);
    if (a == NULL) {
        snprintf(err, errlen, "out of memory for the model index");
        return NULL;
    }
    /* Committed (no MAP_NORESERVE: with strict overcommit start-up fails now rather than a load
     * later) but not touched: RAM is used as models arrive. */
    a->base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a->base == MAP_FAILED) {
        char eb[128];
        snprintf(err, errlen, "cannot reserve VIGIL_HOTPATH_MEMORY_MB=%zu MiB for models: %s",
                 bytes >> 20, strerror_r(errno, eb, sizeof eb));
        free(a);
        return NULL;
    }
    a->size = bytes;
    a->sc = scorer;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&a->mu, NULL);
    for (uint32_t i = 0; i < NSLOTS; i++)
        a->slot[i] = -1;
    for (uint32_t i = 0; i < HP_ARENA_MAX_MODELS; i++) {
        a->ent[i].state = E_FREE;
        a->ent[i].next_free = i + 1 < HP_ARENA_MAX_MODELS ? (int32_t)i + 1 : -1;
    }
    a->free_head = 0;
    return a;
}

const hp_scorer *hp_arena_scorer(const hp_arena *a)
{
    return a->sc;
}

void hp_arena_destroy(hp_arena *a)
{
    if (a == NULL)
        return;
    for (uint32_t i = 0; i < HP_ARENA_MAX_MODELS; i++) {
        HP_ASSERT(a->ent[i].refs == 0);
        if (a->ent[i].state == E_READY && a->sc->release)
            a->sc->release(a->ent[i].model.layout);
    }
    munmap(a->base, a->size);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

int hp_arena_touch(hp_arena *a, const uint8_t key[WIRE_MODEL_KEY_SIZE])
{
    lock(a);
    int s = find_slot(a, key);
    int yes = s >= 0 && a->ent[a->slot[s]].state == E_READY;
    if (yes) {
        a->ent[a->slot[s]].last_used = ++a->clock;
        a->load_hits++;
    }
    unlock(a);
    return yes;
}

/* First-fit offset for len bytes among the gaps, or SIZE_MAX; *pos gets the order[] position.
 * Locked. */
static size_t first_fit(const hp_arena *a, size_t len, uint32_t *pos)
{
    HP_ASSERT(locked(a));
    size_t at = 0;
    for (uint32_t i = 0; i < a->nlive; i++) {
        const hp_entry *e = &a->ent[a->order[i]];
        if (e->off - at >= len) {
            *pos = i;
            return at;
        }
        at = e->off + e->len;
    }
    if (a->size - at >= len) {
        *pos = a->nlive;
        return at;
    }
    return SIZE_MAX;
}

/* One log line per model placed or evicted: the model's UUID and the first 12 hex digits of its
 * SHA-256 (from the key), the bytes it holds and what the arena holds now.  Allocation-free. */
static void log_model(const char *event, const uint8_t *key, size_t bytes, size_t used,
                      uint32_t resident)
{
    static const char hx[] = "0123456789abcdef";
    char id[37], sha[13];
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            id[o++] = '-';
        id[o++] = hx[key[i] >> 4];
        id[o++] = hx[key[i] & 15];
    }
    id[o] = '\0';
    for (int i = 0; i < 6; i++) {
        sha[2 * i] = hx[key[16 + i] >> 4];
        sha[2 * i + 1] = hx[key[16 + i] & 15];
    }
    sha[12] = '\0';
    hp_log_line l;
    hp_log_begin(&l, "info", event);
    hp_log_str(&l, "model_id", id);
    hp_log_str(&l, "sha256_prefix", sha);
    hp_log_u64(&l, "bytes", bytes);
    hp_log_u64(&l, "arena_used", used);
    hp_log_u64(&l, "models_resident", resident);
    hp_log_end(&l);
}

/* Takes the live entry at order[] position vpos out of the index, the placement order and the
 * byte count, and frees it.  Locked. */
static void remove_at(hp_arena *a, uint32_t vpos)
{
    HP_ASSERT(locked(a) && vpos < a->nlive);
    int32_t v = (int32_t)a->order[vpos];
    hp_entry *e = &a->ent[v];
    HP_ASSERT(e->refs == 0);
    hash_delete(a, (uint32_t)find_slot(a, e->key));
    memmove(&a->order[vpos], &a->order[vpos + 1], (a->nlive - vpos - 1) * sizeof a->order[0]);
    a->nlive--;
    a->bytes_used -= e->len;
    e->state = E_FREE;
    e->model.layout = NULL;
    e->next_free = a->free_head;
    a->free_head = v;
}

/* Evicts the least recently used ready, unpinned model.  Returns 0, or -1 if there is none.
 * Locked. */
static int evict_lru(hp_arena *a)
{
    HP_ASSERT(locked(a));
    uint32_t vpos = UINT32_MAX;
    for (uint32_t i = 0; i < a->nlive; i++) {
        const hp_entry *e = &a->ent[a->order[i]];
        if (e->state == E_READY && e->refs == 0 &&
            (vpos == UINT32_MAX || e->last_used < a->ent[a->order[vpos]].last_used))
            vpos = i;
    }
    if (vpos == UINT32_MAX)
        return -1;
    hp_entry *e = &a->ent[a->order[vpos]];
    if (a->sc->release)
        a->sc->release(e->model.layout);
    a->resident--;
    a->evictions++;
    if (a->log_models)
        log_model("model_evicted", e->key, e->len, a->bytes_used - e->len, a->resident);
    remove_at(a, vpos);
    return 0;
}

/* Waits on cv until woken or the absolute monotonic deadline passes.  Returns 0, or -1 once the
 * deadline has passed.  Locked. */
static int wait_until(hp_arena *a, const struct timespec *deadline)
{
    HP_ASSERT(locked(a));
    a->held = 0; /* the wait gives mu up */
    int rc = pthread_cond_timedwait(&a->cv, &a->mu, deadline);
    a->holder = pthread_self();
    a->held = 1;
    return rc == ETIMEDOUT ? -1 : 0;
}

int hp_arena_load(hp_arena *a, const uint8_t key[WIRE_MODEL_KEY_SIZE], const model_view *v,
                  char *err, size_t errlen)
{
    HP_ASSERT(a != NULL && key != NULL && v != NULL && v->hdr != NULL);
    /* O(blob) at most, outside the lock; rounded so that every layout starts aligned. */
    size_t need = v->format == MODEL_FORMAT_LGBM && a->sc->score64 == NULL ? 0 : a->sc->bytes(v);
    if (need == 0) {
        snprintf(err, errlen, "the %s kernel (VIGIL_HOTPATH_KERNEL) cannot score this model",
                 a->sc->name);
        return HP_ARENA_UNSUPPORTED;
    }
    size_t len = (need + HP_LAYOUT_ALIGN - 1) / HP_LAYOUT_ALIGN * HP_LAYOUT_ALIGN;
    struct timespec deadline = clock_abs_timespec(clock_now_ms() + HP_ARENA_WAIT_MS);

    lock(a);
    int s;
    while ((s = find_slot(a, key)) >= 0) {
        hp_entry *e = &a->ent[a->slot[s]];
        if (e->state == E_READY) {
            e->last_used = ++a->clock;
            a->load_hits++;
            unlock(a);
            return HP_ARENA_RESIDENT;
        }
        /* Another slot is building the same key: wait for it (if its build fails, the entry is
         * gone when we wake and this slot builds it). */
        if (wait_until(a, &deadline) != 0) {
            a->load_refused++;
            unlock(a);
            snprintf(err, errlen, "model is still being loaded by another connection");
            return HP_ARENA_BUSY;
        }
    }
    if (len > a->size) {
        a->load_refused++;
        unlock(a);
        snprintf(err, errlen,
                 "model needs %zu bytes in the worker's layout, more than the whole arena (%zu "
                 "bytes, VIGIL_HOTPATH_MEMORY_MB)",
                 len, a->size);
        return HP_ARENA_TOO_BIG;
    }
    uint32_t pos = 0;
    size_t off;
    for (;;) {
        off = first_fit(a, len, &pos);
        if (off != SIZE_MAX && a->free_head >= 0)
            break;
        if (evict_lru(a) == 0)
            continue;
        /* Everything left is pinned by a scorer or still loading: wait for a release. */
        if (a->nlive == 0 || wait_until(a, &deadline) != 0) {
            a->load_refused++;
            unlock(a);
            snprintf(err, errlen,
                     "arena full: %zu bytes needed, models in use hold the space (try again)", len);
            return HP_ARENA_BUSY;
        }
        /* Someone may have loaded our key while we waited. */
        if ((s = find_slot(a, key)) >= 0) {
            unlock(a);
            return hp_arena_load(a, key, v, err, errlen);
        }
    }
    int32_t ei = a->free_head;
    hp_entry *e = &a->ent[ei];
    a->free_head = e->next_free;
    memcpy(e->key, key, WIRE_MODEL_KEY_SIZE);
    e->state = E_LOADING;
    e->refs = 0;
    e->off = off;
    e->len = len;
    e->model = (hp_model){.layout = NULL,
                          .num_feature = v->hdr->num_feature,
                          .f64 = v->format == MODEL_FORMAT_LGBM,
                          .nout = {model_outputs_per_row(v, 0), model_outputs_per_row(v, 1)}};
    memmove(&a->order[pos + 1], &a->order[pos], (a->nlive - pos) * sizeof a->order[0]);
    a->order[pos] = (uint32_t)ei;
    a->nlive++;
    a->bytes_used += len;
    hash_insert(a, ei);
    unlock(a);

    /* Build outside the lock: scorers of other models are not held up. */
    const void *layout = a->sc->build(v, a->base + off, len);

    lock(a);
    if (layout == NULL) { /* a scorer bug (bytes() said it fits): keep nothing */
        uint32_t at = 0;
        while (a->order[at] != (uint32_t)ei)
            at++;
        remove_at(a, at);
        a->load_refused++;
        pthread_cond_broadcast(&a->cv);
        unlock(a);
        snprintf(err, errlen, "the %s kernel failed to build the model", a->sc->name);
        return HP_ARENA_BUILD_FAILED;
    }
    e->model.layout = layout;
    e->state = E_READY;
    e->last_used = ++a->clock;
    a->resident++;
    a->loads++;
    if (a->log_models)
        log_model("model_loaded", e->key, e->len, a->bytes_used, a->resident);
    pthread_cond_broadcast(&a->cv);
    unlock(a);
    return HP_ARENA_LOADED;
}

int hp_arena_acquire(hp_arena *a, const uint8_t *const *keys, unsigned n, const hp_model **models,
                     uint32_t *handles)
{
    HP_ASSERT(a != NULL && keys != NULL && models != NULL && handles != NULL);
    lock(a);
    for (unsigned i = 0; i < n; i++) {
        int s = find_slot(a, keys[i]);
        if (s < 0 || a->ent[a->slot[s]].state != E_READY) {
            unlock(a);
            return (int)i;
        }
        handles[i] = (uint32_t)a->slot[s];
    }
    uint64_t now = ++a->clock;
    for (unsigned i = 0; i < n; i++) {
        hp_entry *e = &a->ent[handles[i]];
        e->refs++;
        e->last_used = now;
        models[i] = &e->model;
    }
    unlock(a);
    return -1;
}

void hp_arena_release(hp_arena *a, const uint32_t *handles, unsigned n)
{
    int wake = 0;
    lock(a);
    for (unsigned i = 0; i < n; i++) {
        HP_ASSERT(handles[i] < HP_ARENA_MAX_MODELS && a->ent[handles[i]].refs > 0);
        wake |= --a->ent[handles[i]].refs == 0;
    }
    if (wake)
        pthread_cond_broadcast(&a->cv);
    unlock(a);
}

void hp_arena_get_stats(hp_arena *a, hp_arena_stats *st)
{
    lock(a);
    st->bytes_total = a->size;
    st->bytes_used = a->bytes_used;
    st->models_resident = a->resident;
    st->loads = a->loads;
    st->load_hits = a->load_hits;
    st->evictions = a->evictions;
    st->load_refused = a->load_refused;
    unlock(a);
}

void hp_arena_set_logging(hp_arena *a, int on)
{
    a->log_models = on;
}
