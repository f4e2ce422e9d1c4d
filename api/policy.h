/* policy.h - GET/PUT /api/v1/policy: which model decides (champion), which is scored in shadow
 * (challenger), the thresholds, the fallback decision and the scoring timeout.  One row in
 * PostgreSQL, read by every transaction request, so a change applies to the next request. */
#ifndef VIGIL_POLICY_H
#define VIGIL_POLICY_H

#include "dbreq.h"
#include "http.h"
#include "scoring.h"

void policy_get(http_req *req, http_resp *resp);
void policy_put(http_req *req, http_resp *resp);

/* Makes body (a PUT /policy body, or a stored version's content) the active policy: validates it
 * (400), checks its models (422) and compiles its rules against the catalogue of rulecat.h (422
 * rule_invalid naming the rule, column and what was expected; unknown lists are named), then
 * writes the policy row and a new policy version recording the API key, activated_from (a
 * version number as text, or NULL) and the time, in one transaction.  Answers 200 with the
 * policy.  Returns 0, or -1 with resp filled. */
int policy_apply(http_req *req, http_resp *resp, const struct cJSON *body,
                 const char *activated_from);

/* Validates body as policy_apply does (400) and compiles its rules against the catalogue of its
 * models and the lists that exist now (422 rule_invalid), writing nothing: a backtest's candidate
 * with rules.  The models themselves are the caller's to check (policy_model_check).  Returns 0,
 * or -1 with resp filled. */
int policy_check(http_req *req, http_resp *resp, db_conn *c, const struct cJSON *body);

/* The models a policy names: the champion decides, the challenger is scored in its shadow. */
enum policy_slot { POLICY_CHAMPION, POLICY_CHALLENGER, POLICY_SLOTS };

/* The policy as one decision reads it.  The text fields are the stored values, copied verbatim
 * into the transaction row; the numbers are the same values parsed for arithmetic. */
typedef struct policy_rules {
    char review[32], block[32], fallback[8], timeout[12], version[12];
    double review_v, block_v;
    int timeout_ms;
    int top_k;                         /* explain.top_k: reasons per decision, 0 = off */
    scoring_model model[POLICY_SLOTS]; /* metadata of each named model */
    int has_model[POLICY_SLOTS];       /* 0 when the policy names none for that slot */
    char *rules_json; /* the rules as stored, a JSON array (malloc'd; "[]" without rules) */
    char *lists_json; /* [[name, id, version, kind]...] of the lists the rules use, read in the
                       * same SELECT (malloc'd) */
} policy_rules;

/* The policy and both models' metadata in one SELECT, no parameters: a decision sends it in its
 * first round trip (decision.c, stage open), inside its database transaction. */
extern const char POLICY_LOAD_SQL[];

/* Fills *out from POLICY_LOAD_SQL's result r (or answers r's error).  Returns 0 with *out filled
 * (free with policy_rules_free), or -1 with resp filled (500: an SQL error, no policy row, out of
 * memory).  r stays the caller's. */
int policy_from_result(http_req *req, http_resp *resp, const PGresult *r, policy_rules *out);
void policy_rules_free(policy_rules *p);

/* Checks that model id can be a policy model: it exists, has feature names, gives one score per
 * row and the worker can load it.  Returns 0, or -1 with resp filled (422 naming field, 503/500).
 * Used by PUT /api/v1/policy and by backtest candidates. */
int policy_model_check(http_req *req, http_resp *resp, db_conn *c, const char *id,
                       const char *field);

#endif
