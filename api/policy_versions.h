/* policy_versions.h - the history of the policy (issue 12): every PUT /api/v1/policy and every
 * rollback appends an immutable version recording its content (models, thresholds, fallback,
 * scoring timeout, explain, rules), when, and which API key (id and name) made it.
 *
 *   GET  /api/v1/policy/versions                  newest first, paged (limit, cursor)
 *   GET  /api/v1/policy/versions/{n}
 *   POST /api/v1/policy/versions/{n}/activate     rollback: a NEW version with n's content,
 *                                                 validated as a PUT is (policy_apply), recording
 *                                                 activated_from = n */
#ifndef VIGIL_POLICY_VERSIONS_H
#define VIGIL_POLICY_VERSIONS_H

#include "http.h"

void policy_versions_list(http_req *req, http_resp *resp);
void policy_versions_get(http_req *req, http_resp *resp);
void policy_versions_activate(http_req *req, http_resp *resp);

#endif
