/* decision.c - the decision pipeline: its stage table, the runner, and the stages that are a few
 * lines each (open, load_policy, load_user, score, decide, commit, respond).  See decision.h for
 * the stage list and where a new stage goes.
 *
 * A decision reads in one round trip (open: with an Idempotency-Key the record lookup, policy,
 * user and features), which the read queue shares with concurrent decisions, and writes in one
 * database transaction (commit: the INSERT, the outbox call, with a key the record INSERT), which
 * the commit queue shares with concurrent decisions (batchq.h): a crash anywhere before that commit
 * leaves nothing, after it the whole result.  Every statement is prepared once per connection
 * (db.h); at most one scoring call (a worker round trip or in-process evaluation); O(body +
 * features of both models) memory, all freed by decision_request_free. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decision.h"

#include "clock.h"
#include "dbreq.h"
#include "logline.h"
#include "metrics.h"
#include "trace.h"
#include "wire.h"

/* ---- open, load ----------------------------------------------------------------------------- */

/* batchq_run in a PostgreSQL span of the request's trace (the batch's connection is the leader's,
 * untraced): one statement per job statement; the span keeps the first error, so it is named
 * once, on the failed statement (else the first).  Returns job->rc. */
static int run_traced(batchq *q, batchq_job *job)
{
    trace_db span;
    trace_db_begin(&span, trace_enabled() ? trace_now_ns() : 0);
    int rc = batchq_run(q, job);
    const char *why = db_error_type(rc, job->error);
    int at = rc == DB_ERROR && job->failed >= 0 ? job->failed : 0;
    for (int i = 0; i < job->n; i++)
        trace_db_statement(&span, job->stmts[i].sql, i == at ? why : NULL);
    trace_db_end(&span);
    return rc;
}

/* The read round trip, one job of the read queue (batchq.h): with a key the claim's lookup, then
 * the policy and the user's features (one implicit, read-only transaction).  Answers only a
 * failure of the round trip itself; a statement's error is answered by the stage that owns it
 * (claim, load_policy, load_user run in the job's order, so the first error is met first). */
static int stage_open(decision_request *d)
{
    const decision_input *in = &d->in;
    const char *claim_v[2];
    const char *feat_v[] = {in->user_id, in->user_id ? NULL : in->user_external_id, in->occurred_at,
                            in->merchant_id};
    db_stmt s[HEAD_N];
    int at[HEAD_N], n = 0;
    if (d->idem_key) {
        decision_claim_stmt(d, &s[n], claim_v);
        at[n++] = HEAD_CLAIM;
    }
    s[n] = (db_stmt){POLICY_LOAD_SQL, 0, NULL, NULL, NULL, 0, 1};
    at[n++] = HEAD_POLICY;
    s[n] = (db_stmt){FEAT_SQL, 4, feat_v, NULL, NULL, 0, 1};
    at[n++] = HEAD_USER;
    batchq_job job = {.stmts = s, .n = n, .deadline_ms = d->req->deadline_ms};
    int rc = run_traced(d->req->app->reads, &job);
    if (rc == DB_ERROR) /* the failed statement's stage answers its error */
        job.res[job.failed] = job.error;
    for (int i = 0; i < n; i++)
        d->head[at[i]] = job.res[i];
    if (rc == DB_OK || rc == DB_ERROR)
        return DECISION_NEXT;
    dbreq_unavailable(d->req, d->resp, rc, job.err);
    return DECISION_STOP;
}

static int stage_load_policy(decision_request *d)
{
    return policy_from_result(d->req, d->resp, d->head[HEAD_POLICY], &d->policy) ? DECISION_STOP
                                                                                 : DECISION_NEXT;
}

/* The user and every built-in feature (FEAT_SQL's row, sent by open). */
static int stage_load_user(decision_request *d)
{
    const PGresult *r = d->head[HEAD_USER];
    const decision_input *in = &d->in;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        /* Class 22 (data exception) can only come from occurred_at here ($1 is a checked UUID):
         * 22007/22008 for impossible dates, 22009 for an offset out of range, ... */
        if (strncmp(db_sqlstate(r), "22", 2) == 0)
            http_problem(d->resp, 400, "validation_failed", "occurred_at",
                         "'occurred_at' is not a valid date-time");
        else
            dbreq_internal(d->req, d->resp, r);
        return DECISION_STOP;
    }
    if (PQntuples(r) != 1) {
        http_problem(d->resp, 422, "unknown_user", in->user_id ? "user_id" : "user_external_id",
                     "no such user");
        return DECISION_STOP;
    }
    feat_compute(r, in->amount_major, in->country, d->builtin);
    snprintf(d->user_id, sizeof d->user_id, "%s", PQgetvalue(r, 0, FEAT_COL_USER_ID));
    snprintf(d->occurred_at, sizeof d->occurred_at, "%s", PQgetvalue(r, 0, FEAT_COL_OCCURRED_AT));
    snprintf(d->user_external_id, sizeof d->user_external_id, "%s",
             PQgetvalue(r, 0, FEAT_COL_USER_EXTERNAL_ID));
    snprintf(d->user_country, sizeof d->user_country, "%s",
             PQgetvalue(r, 0, FEAT_COL_USER_COUNTRY));
    return DECISION_NEXT;
}

/* ---- score, decide -------------------------------------------------------------------------- */

/* Scores every model that has a row, in one call (one worker round trip), by the earlier of the
 * policy's scoring timeout and the request deadline; with explain.top_k > 0 the champion's
 * section also returns its contributions (decision_explain_buffer).  A champion that cannot be
 * explained (no covers) is scored again without them.  Never answers: decide turns a failure into
 * a fallback. */
static int stage_score(decision_request *d)
{
    decision_scoring *s = &d->scoring;
    scoring_job jobs[POLICY_SLOTS];
    int njobs = 0;
    int64_t t0 = clock_now_us();
    for (int m = 0; m < POLICY_SLOTS; m++) {
        s->score[m] = NAN;
        if (d->row[m])
            jobs[njobs++] = (scoring_job){
                &d->policy.model[m], 0,
                d->row[m],           1,
                &s->score[m],        m == POLICY_CHAMPION ? decision_explain_buffer(d) : NULL};
    }
    if (d->row[POLICY_CHAMPION]) {
        int64_t deadline = clock_now_ms() + d->policy.timeout_ms;
        if (deadline > d->req->deadline_ms)
            deadline = d->req->deadline_ms;
        s->ran = 1;
        s->status = scoring_run(d->req->app, jobs, njobs, deadline, s->err, sizeof s->err);
        if (s->status == SC_UNEXPLAINABLE) {
            decision_explain_skipped(d);
            jobs[0].contribs = NULL;
            s->status = scoring_run(d->req->app, jobs, njobs, deadline, s->err, sizeof s->err);
        }
        s->timed_out = clock_now_ms() >= deadline;
    }
    s->latency_us += (int)(clock_now_us() - t0);
    return DECISION_NEXT;
}

decision_verdict decision_decide(const policy_rules *p, const decision_scoring *s)
{
    decision_verdict v = {p->fallback, 1, NULL, "fallback"};
    float score = s->score[POLICY_CHAMPION];
    if (!s->ran) {
        v.reason = "no_champion_model";
    } else if (s->status == SC_OK && isfinite(score)) {
        v.decision = score >= p->block_v ? "block" : score >= p->review_v ? "review" : "allow";
        v.degraded = 0;
        v.decided_by = score >= p->review_v ? "score_threshold" : "default";
    } else {
        v.reason = s->status == SC_OK            ? "non_finite_score"
                   : s->timed_out                ? "scoring_timeout"
                   : s->status == SC_UNAVAILABLE ? "hotpath_unavailable"
                   : s->status == SC_NOT_FOUND   ? "model_not_found"
                   : s->status == SC_DB          ? "model_load_failed"
                   : s->status == SC_TOO_LARGE   ? "model_too_large"
                                                 : "scoring_failed";
    }
    return v;
}

/* decision_decide, plus a log line for a decision degraded by a scoring failure. */
static int stage_decide(decision_request *d)
{
    d->verdict = decision_decide(&d->policy, &d->scoring);
    snprintf(d->rules.decided_by, sizeof d->rules.decided_by, "%s", d->verdict.decided_by);
    if (d->verdict.degraded && d->scoring.ran) {
        logline l;
        logline_begin(&l, "warn", "degraded_decision");
        logline_str(&l, "request_id", d->req->request_id);
        logline_str(&l, "reason", d->verdict.reason);
        logline_str(&l, "error", d->scoring.err);
        logline_end(&l);
    }
    return DECISION_NEXT;
}

/* ---- commit, respond ------------------------------------------------------------------------ */

/* The decision's writes (what store/events/record queued), committed by the commit queue
 * (batchq.h) in one database transaction with those of concurrent decisions; then the answer,
 * from the row the INSERT returned. */
static int stage_commit(decision_request *d)
{
    batchq_job job = {.stmts = d->tail, .n = d->ntail, .deadline_ms = d->req->deadline_ms};
    int rc = run_traced(d->req->app->commits, &job);
    int flow = DECISION_STOP;
    if (rc == DB_OK || (rc == DB_ERROR && job.failed == d->store_at))
        flow = decision_store_answer(d, rc, rc == DB_OK ? job.res[d->store_at] : job.error);
    else if (rc == DB_ERROR && job.failed == d->record_at &&
             strcmp(db_sqlstate(job.error), "23505") == 0)
        http_problem(d->resp, 409, "idempotency_key_in_use", NULL,
                     "a request with this Idempotency-Key was being processed at the same time; "
                     "retry to get its answer");
    else if (rc == DB_ERROR)
        dbreq_internal(d->req, d->resp, job.error);
    else
        dbreq_unavailable(d->req, d->resp, rc, job.err);
    for (int i = 0; i < d->ntail; i++)
        PQclear(job.res[i]);
    PQclear(job.error);
    decision_store_free(d);
    return flow;
}

static int stage_respond(decision_request *d)
{
    metrics_observe_decision(d->verdict.decision, d->verdict.degraded);
    http_raw(d->resp, 201, "application/json", d->answer, strlen(d->answer));
    d->answer = NULL; /* the response owns it now */
    snprintf(d->resp->location, sizeof d->resp->location, "%s", d->location);
    return DECISION_NEXT;
}

/* ---- the pipeline --------------------------------------------------------------------------- */

static const struct {
    const char *name;
    decision_stage_fn run;
} stages[] = {
    {"parse", decision_stage_parse},
    {"open", stage_open},
    {"claim", decision_stage_claim},
    {"load_policy", stage_load_policy},
    {"load_user", stage_load_user},
    {"features", decision_stage_features},
    {"score", stage_score},
    {"explain", decision_stage_explain},
    {"decide", stage_decide},
    {"rules", decision_stage_rules},
    {"store", decision_stage_store},
    {"events", decision_stage_events},
    {"record", decision_stage_record},
    {"commit", stage_commit},
    {"expire", decision_stage_expire},
    {"respond", stage_respond},
};

/* Frees everything the stages acquired; an uncommitted transaction is rolled back by the
 * release of its connection. */
static void decision_request_free(decision_request *d)
{
    for (int i = 0; i < HEAD_N; i++)
        PQclear(d->head[i]);
    decision_store_free(d);
    free(d->answer);
    free(d->snapshot);
    free(d->reasons);
    free(d->rules.matched);
    free(d->rules.list_versions);
    free(d->rules.probes);
    free(d->rules.inputs);
    free(d->contribs);
    for (int s = 0; s < POLICY_SLOTS; s++)
        free(d->row[s]);
    policy_rules_free(&d->policy);
    decision_input_free(&d->in);
    cJSON_Delete(d->body);
}

void decision_post(http_req *req, http_resp *resp)
{
    decision_request d;
    memset(&d, 0, sizeof d);
    d.req = req;
    d.resp = resp;
    d.record_at = -1;
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++)
        if (stages[i].run(&d) != DECISION_NEXT)
            break;
    decision_request_free(&d);
}
