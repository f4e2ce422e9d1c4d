/* decision_features.c - the features stage of a decision: each policy model's input row,
 * assembled by feature name from the built-ins (feat.c) and the client's "features", and the
 * snapshot of every value scored (stored with the transaction, so a decision can be replayed
 * through /predict).  No database; the clock only for the request deadline.
 *
 * Costs: linear in the features of both models.  Names are found through two open-addressing
 * hash tables (name_index): the sources (built-ins + client features, at most 15 + 256 names,
 * built once per request) and the names already in the snapshot (sized for both models).  The
 * deadline is checked every DECISION_DEADLINE_STRIDE features.  decision_row_build is the one
 * function that builds a model's input vector; a model format wanting another element type gets
 * its variant beside it. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decision.h"

#include "clock.h"
#include "wire.h"

#define DECISION_DEADLINE_STRIDE 4096

/* ---- name_index: name -> value, insert-if-absent, no removal ------------------------------- */

struct name_slot {
    const char *name; /* borrowed; NULL = empty slot */
    double value;
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Room for n names at a load factor <= 1/2.  0, or -1 when out of memory. */
static int index_init(name_index *ix, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    ix->slot = calloc(cap, sizeof *ix->slot);
    ix->mask = cap - 1;
    ix->count = 0;
    return ix->slot ? 0 : -1;
}

static void index_free(name_index *ix)
{
    free(ix->slot);
    ix->slot = NULL;
}

/* The slot of name: its entry, or the empty slot where it belongs (name == NULL). */
static struct name_slot *index_slot(const name_index *ix, const char *name)
{
    size_t i = (size_t)name_hash(name) & ix->mask;
    while (ix->slot[i].name && strcmp(ix->slot[i].name, name) != 0)
        i = (i + 1) & ix->mask;
    return &ix->slot[i];
}

/* Adds name -> value unless name is present (the first value stays).  Returns 1 when added, 0
 * when present.  The caller sized the index for every name it adds. */
static int index_add(name_index *ix, const char *name, double value)
{
    struct name_slot *s = index_slot(ix, name);
    if (s->name)
        return 0;
    s->name = name;
    s->value = value;
    ix->count++;
    return 1;
}

/* ---- sources -------------------------------------------------------------------------------- */

int decision_sources_init(decision_sources *src, const double *builtin, const cJSON *client)
{
    if (index_init(&src->names, FEAT_COUNT + (size_t)cJSON_GetArraySize(client)))
        return -1;
    for (int i = 0; i < FEAT_COUNT; i++) /* first, so a client value never overrides one */
        index_add(&src->names, feat_name(i), builtin[i]);
    const cJSON *v;
    cJSON_ArrayForEach(v, client)
    {
        index_add(&src->names, v->string, cJSON_IsNumber(v) ? v->valuedouble : NAN);
    }
    return 0;
}

void decision_sources_free(decision_sources *src)
{
    index_free(&src->names);
}

double decision_feature_value(const decision_sources *src, const char *name)
{
    const struct name_slot *s = index_slot(&src->names, name);
    return s->name ? s->value : NAN;
}

/* ---- snapshot ------------------------------------------------------------------------------- */

int decision_snapshot_init(decision_snapshot *snap, size_t max_names)
{
    snap->obj = cJSON_CreateObject();
    if (!snap->obj || index_init(&snap->seen, max_names)) {
        cJSON_Delete(snap->obj);
        snap->obj = NULL;
        return -1;
    }
    return 0;
}

void decision_snapshot_free(decision_snapshot *snap)
{
    cJSON_Delete(snap->obj);
    snap->obj = NULL;
    index_free(&snap->seen);
}

/* Appends "name": v unless name is there already.  The value is the float32 scored, printed with
 * 9 significant digits (enough to round-trip it); NaN and inf are null. */
static int snap_add(decision_snapshot *snap, const char *name, float v)
{
    if (snap->seen.count > snap->seen.mask / 2)
        return -1; /* more names than the snapshot was sized for */
    if (!index_add(&snap->seen, name, 0))
        return 0;
    if (isnan(v) || isinf(v))
        return cJSON_AddNullToObject(snap->obj, name) ? 0 : -1;
    char buf[32];
    snprintf(buf, sizeof buf, "%.9g", (double)v);
    return cJSON_AddRawToObject(snap->obj, name, buf) ? 0 : -1;
}

int decision_row_build(const decision_sources *src, const scoring_model *m, float *row,
                       decision_snapshot *snap, int64_t deadline_ms)
{
    for (uint32_t i = 0; i < m->num_features; i++) {
        if (deadline_ms >= 0 && i % DECISION_DEADLINE_STRIDE == 0 && clock_now_ms() >= deadline_ms)
            return DECISION_ROW_DEADLINE;
        const char *name = i < m->n_names ? m->names[i] : "";
        row[i] = (float)decision_feature_value(src, name);
        if (snap_add(snap, name, row[i]))
            return -1;
    }
    return 0;
}

/* ---- the stage ------------------------------------------------------------------------------ */

/* Champion first, so its values win in the snapshot; the challenger only beside a champion. */
int decision_stage_features(decision_request *d)
{
    const policy_rules *p = &d->policy;
    int active = p->has_model[POLICY_CHAMPION] ? POLICY_SLOTS : 0;
    size_t total = 0;
    for (int s = 0; s < active; s++)
        total += p->has_model[s] ? p->model[s].num_features : 0;
    decision_sources src = {0};
    decision_snapshot snap = {0};
    int rc = 0;
    if (decision_sources_init(&src, d->builtin, d->in.features) ||
        decision_snapshot_init(&snap, total))
        rc = -1;
    for (int s = 0; rc == 0 && s < active; s++) {
        if (!p->has_model[s])
            continue;
        float *row = d->row[s] = malloc(((size_t)p->model[s].num_features + 1) * sizeof(float));
        rc = row ? decision_row_build(&src, &p->model[s], row, &snap, d->req->deadline_ms) : -1;
    }
    if (rc == 0 && !(d->snapshot = cJSON_PrintUnformatted(snap.obj)))
        rc = -1;
    decision_snapshot_free(&snap);
    decision_sources_free(&src);
    if (rc == DECISION_ROW_DEADLINE)
        http_unavailable(d->resp, "the request deadline passed while assembling features");
    else if (rc)
        http_problem(d->resp, 500, "internal", NULL, "out of memory");
    return rc ? DECISION_STOP : DECISION_NEXT;
}
