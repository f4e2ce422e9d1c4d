/* decision_explain.c - explanations in a decision (decision.h): with the policy's explain.top_k >
 * 0, the score stage asks for the champion's contributions in its one scoring call (the SCORE
 * section flag WIRE_SCORE_EXPLAIN to the worker, common/treeshap.c in process), into the buffer
 * decision_explain_buffer gives; the explain stage, after score, keeps the top-k reasons for the
 * store stage.  The champion's score is the SCORE answer itself, so it is the same with
 * explanations on or off.  No database, no I/O.
 *
 * Costs: O(num_features x top_k) to pick the reasons; O(num_features) memory. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decision.h"

#include "clock.h"
#include "logline.h"
#include "refeval.h"

/* A float32 as the shortest text that round-trips it (null when not finite), raw into o. */
static void add_f32(cJSON *o, const char *k, float v)
{
    char buf[32];
    if (!isfinite(v)) {
        cJSON_AddNullToObject(o, k);
        return;
    }
    snprintf(buf, sizeof buf, "%.9g", (double)v);
    cJSON_AddRawToObject(o, k, buf);
}

char *decision_reasons_json(const scoring_model *m, const float *row, const float *contribs,
                            int top_k)
{
    uint32_t nf = m->num_features;
    unsigned char *taken = calloc(nf ? nf : 1, 1);
    cJSON *arr = cJSON_CreateArray();
    char *out = NULL;
    if (!taken || !arr)
        goto done;
    for (int k = 0; k < top_k; k++) {
        /* the largest |contribution| not yet taken; the lower index wins a tie */
        uint32_t best = nf;
        for (uint32_t i = 0; i < nf; i++)
            if (!taken[i] && contribs[i] != 0 &&
                (best == nf || fabsf(contribs[i]) > fabsf(contribs[best])))
                best = i;
        if (best == nf)
            break;
        taken[best] = 1;
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            goto done;
        }
        cJSON_AddStringToObject(o, "feature", best < m->n_names ? m->names[best] : "");
        add_f32(o, "value", row[best]);
        add_f32(o, "contribution", contribs[best]);
    }
    out = cJSON_PrintUnformatted(arr);
done:
    cJSON_Delete(arr);
    free(taken);
    return out;
}

float *decision_explain_buffer(decision_request *d)
{
    const scoring_model *m = &d->policy.model[POLICY_CHAMPION];
    /* A policy champion gives one score per row (policy.c check_model): one group. */
    if (d->policy.top_k <= 0 || !d->row[POLICY_CHAMPION] || m->num_class != 1)
        return NULL;
    free(d->contribs);
    d->contribs = malloc(((size_t)m->num_features + 1) * sizeof(float));
    return d->contribs; /* NULL when out of memory: scored without reasons */
}

void decision_explain_skipped(decision_request *d)
{
    logline l;
    logline_begin(&l, "warn", "explain_skipped");
    logline_str(&l, "request_id", d->req->request_id);
    logline_str(&l, "error", d->scoring.err);
    logline_end(&l);
    d->scoring.err[0] = '\0';
    free(d->contribs);
    d->contribs = NULL;
}

int decision_stage_explain(decision_request *d)
{
    const decision_scoring *s = &d->scoring;
    if (d->contribs && s->ran && s->status == SC_OK)
        d->reasons = decision_reasons_json(&d->policy.model[POLICY_CHAMPION],
                                           d->row[POLICY_CHAMPION], d->contribs, d->policy.top_k);
    return DECISION_NEXT;
}
