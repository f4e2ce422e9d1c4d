/* decision_features.c - the features stage of a decision: each policy model's input row,
 * assembled by feature name from the built-ins (feat.c) and the client's "features", and the
 * snapshot of every value scored (stored with the transaction, so a decision can be replayed
 * through /predict).  No database, no clock.  decision_row_build is the one function that builds a
 * model's input vector; a model format wanting another element type gets its variant beside it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "decision.h"

double decision_feature_value(const decision_sources *src, const char *name)
{
    int b = feat_lookup(name);
    if (b >= 0)
        return src->builtin[b];
    const cJSON *v = src->client ? cJSON_GetObjectItemCaseSensitive(src->client, name) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Appends "name": v to the snapshot unless name is there already.  The value is the float32
 * scored, printed with 9 significant digits (enough to round-trip it); NaN and inf are null. */
static int snap_add(cJSON *snap, const char *name, float v)
{
    if (cJSON_GetObjectItemCaseSensitive(snap, name))
        return 0;
    if (isnan(v) || isinf(v))
        return cJSON_AddNullToObject(snap, name) ? 0 : -1;
    char buf[32];
    snprintf(buf, sizeof buf, "%.9g", (double)v);
    return cJSON_AddRawToObject(snap, name, buf) ? 0 : -1;
}

int decision_row_build(const decision_sources *src, const scoring_model *m, float *row, cJSON *snap)
{
    for (uint32_t i = 0; i < m->num_features; i++) {
        const char *name = i < m->n_names ? m->names[i] : "";
        row[i] = (float)decision_feature_value(src, name);
        if (snap_add(snap, name, row[i]))
            return -1;
    }
    return 0;
}

/* Champion first, so its values win in the snapshot; the challenger only beside a champion. */
int decision_stage_features(decision_request *d)
{
    const decision_sources src = {d->builtin, d->in.features};
    const policy_rules *p = &d->policy;
    cJSON *snap = cJSON_CreateObject();
    int ok = snap != NULL;
    for (int s = 0; ok && s < POLICY_SLOTS && p->has_model[POLICY_CHAMPION]; s++) {
        if (!p->has_model[s])
            continue;
        d->row[s] = malloc(((size_t)p->model[s].num_features + 1) * sizeof(float));
        ok = d->row[s] && decision_row_build(&src, &p->model[s], d->row[s], snap) == 0;
    }
    if (ok)
        ok = (d->snapshot = cJSON_PrintUnformatted(snap)) != NULL;
    cJSON_Delete(snap);
    if (!ok) {
        http_problem(d->resp, 500, "internal", NULL, "out of memory");
        return DECISION_STOP;
    }
    return DECISION_NEXT;
}
