/* hp_store.c - the model store (scorer + arena + pool).  See hp_store.h. */
#include "hp_store.h"

#include <stdio.h>
#include <stdlib.h>

#include "hp_assert.h"
#include "hp_shap.h"
#include "hp_stats.h"

struct hp_store {
    const hp_scorer *scorer;
    hp_arena *arena;
    hp_arena *explain; /* the explain layouts (hp_shap.h) of the same models */
    hp_pool *pool;
};

int hp_store_create(const hp_scorer *scorer, size_t arena_bytes, unsigned pool_threads,
                    hp_store **out, char *err, size_t errlen)
{
    HP_ASSERT(scorer != NULL && out != NULL);
    HP_ASSERT(!hp_after_ready());
    hp_store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory for the model store");
        return -1;
    }
    s->scorer = scorer;
    s->arena = hp_arena_create(arena_bytes, scorer, err, errlen);
    if (s->arena == NULL)
        goto fail;
    /* Same size: the reservation is address space until models are loaded into it. */
    s->explain = hp_arena_create(arena_bytes, &hp_shap_layout, err, errlen);
    if (s->explain == NULL)
        goto fail;
    s->pool = hp_pool_create(pool_threads, err, errlen);
    if (s->pool == NULL)
        goto fail;
    *out = s;
    return 0;
fail:
    hp_store_destroy(s);
    return -1;
}

void hp_store_destroy(hp_store *s)
{
    if (s == NULL)
        return;
    hp_pool_destroy(s->pool);
    hp_arena_destroy(s->explain);
    hp_arena_destroy(s->arena);
    free(s);
}

void hp_store_set_logging(hp_store *s, int on)
{
    hp_arena_set_logging(s->arena, on);
}

hp_arena *hp_store_explain_arena(const hp_store *s)
{
    HP_ASSERT(s != NULL);
    return s->explain;
}

const hp_scorer *hp_store_scorer(const hp_store *s)
{
    HP_ASSERT(s != NULL);
    return s->scorer;
}

hp_arena *hp_store_arena(const hp_store *s)
{
    HP_ASSERT(s != NULL);
    return s->arena;
}

hp_pool *hp_store_pool(const hp_store *s)
{
    HP_ASSERT(s != NULL);
    return s->pool;
}
