/* decision_explain.c - the explain stage of a decision (decision.h): with the policy's
 * explain.top_k > 0, the champion's row is explained in one scoring call (scoring_explain: the
 * worker's EXPLAIN, or common/treeshap.c in process), the champion's score is the objective's
 * transform of the margin that same call returned (bit-identical to what SCORE would have
 * answered: refeval_transform of the same float32 margin), and the top-k reasons are kept for the
 * store stage.  No database.
 *
 * Costs: one scoring call; O(num_features x top_k) to pick the reasons; O(num_features) memory. */
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

int decision_stage_explain(decision_request *d)
{
    decision_scoring *s = &d->scoring;
    const scoring_model *m = &d->policy.model[POLICY_CHAMPION];
    const float *row = d->row[POLICY_CHAMPION];
    /* A policy champion gives one score per row (policy.c check_model): one group. */
    if (d->policy.top_k <= 0 || !row || m->num_class != 1)
        return DECISION_NEXT;
    int64_t t0 = clock_now_us();
    float *contribs = malloc(((size_t)m->num_features + 1) * sizeof(float));
    float margin = NAN;
    if (!contribs)
        return DECISION_NEXT; /* the score stage scores it without reasons */
    int64_t deadline = clock_now_ms() + d->policy.timeout_ms;
    if (deadline > d->req->deadline_ms)
        deadline = d->req->deadline_ms;
    scoring_explain_job job = {m, row, 1, contribs, &margin};
    int st = scoring_explain(d->req->app, &job, deadline, s->err, sizeof s->err);
    if (st == SC_UNEXPLAINABLE) {
        logline l;
        logline_begin(&l, "warn", "explain_skipped");
        logline_str(&l, "request_id", d->req->request_id);
        logline_str(&l, "error", s->err);
        logline_end(&l);
        s->err[0] = '\0';
    } else {
        s->ran = 1;
        s->explained = 1;
        s->status = st;
        s->timed_out = clock_now_ms() >= deadline;
        s->score[POLICY_CHAMPION] = NAN;
        if (st == SC_OK) {
            refeval_transform(m->objective, &margin, 1, &s->score[POLICY_CHAMPION]);
            d->reasons = decision_reasons_json(m, row, contribs, d->policy.top_k);
        }
    }
    free(contribs);
    s->latency_us = (int)(clock_now_us() - t0);
    return DECISION_NEXT;
}
