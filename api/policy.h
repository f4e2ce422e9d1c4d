/* policy.h - GET/PUT /api/v1/policy: which model decides (champion), which is scored in shadow
 * (challenger), the thresholds, the fallback decision and the scoring timeout.  One row in
 * PostgreSQL, read by every transaction request, so a change applies to the next request. */
#ifndef VIGIL_POLICY_H
#define VIGIL_POLICY_H

#include "http.h"

void policy_get(http_req *req, http_resp *resp);
void policy_put(http_req *req, http_resp *resp);

#endif
