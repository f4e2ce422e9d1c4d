/* backtests.h - the backtest resource (issue 14): POST/GET /api/v1/backtests,
 * GET/DELETE /api/v1/backtests/{id}.  The jobs are run by btjob.h's runner threads; this module
 * validates and resolves what a job is asked to test and reads jobs back.
 *
 * The candidate ("policy" member) is resolved and frozen into the job when it is created:
 *   "active"         the policy in force now (models and thresholds);
 *   {"version": n}   a recorded policy version (policy_versions, issue 12's table);
 *   "recorded"       a replay: every row with the model and thresholds it was decided with
 *                    (the exactness check: 100% of the non-degraded scores, bit for bit);
 *   {...}            a full policy object as PUT /api/v1/policy takes it.
 * Rules: a candidate's rules (from the object, the active policy or the version) are kept with it
 * and must compile now as PUT /api/v1/policy compiles them (policy_check: 400/422 rule_invalid);
 * btjob.c evaluates them on every row (list membership: the lists' current sets).  A "recorded"
 * replay decides by each row's thresholds only.  Every statement of the handlers is here, static
 * and parameterised. */
#ifndef VIGIL_BACKTESTS_H
#define VIGIL_BACKTESTS_H

#include "http.h"

void backtests_create(http_req *req, http_resp *resp);
void backtests_list(http_req *req, http_resp *resp);
void backtests_get(http_req *req, http_resp *resp);
void backtests_cancel(http_req *req, http_resp *resp);

#endif
