/* assert.h - the Check-level helpers every end-to-end test shares: bring one harness environment
 * up and down inside a TCase fixture, send a request that must get an answer, and check an RFC 9457
 * problem response completely (status, content type, type, title, code, detail and field).
 *
 * Every function here fails the running Check test (ck_assert/ck_abort) instead of returning an
 * error, so call them only from a test or a fixture.  Costs: one HTTP round trip per request;
 * no allocation beyond what h_http does.  Not thread-safe where the h_env is shared. */
#ifndef VIGIL_E2E_ASSERT_H
#define VIGIL_E2E_ASSERT_H

#include "harness.h"

/* Zeroes *e, sets the extra API environment (NULL-terminated NAME=VALUE list, may be NULL) and
 * starts PostgreSQL, the worker and the API with h_start.  Aborts the test (ck_abort) when the
 * environment does not come up; h_start has printed which part failed. */
void e2e_env_up(h_env *e, const char *const *api_env);
/* e2e_env_up that also gives the worker extra environment (hp_env, NULL-terminated NAME=VALUE,
 * may be NULL), e.g. a preloaded allocation probe. */
void e2e_env_up_hp(h_env *e, const char *const *api_env, const char *const *hp_env);
/* Stops everything e2e_env_up started and removes its temp dir (h_stop).  Idempotent. */
void e2e_env_down(h_env *e);

/* One request with the bootstrap key; body (may be NULL) goes as application/json.  Fails the
 * test when no response arrives.  The caller frees *r with h_resp_free. */
void e2e_req(h_env *e, const char *method, const char *path, const char *body, h_resp *r);

/* One request with the bootstrap key carrying len raw bytes of body (may be NULL) as Content-Type
 * ctype (NULL: none), e.g. a model upload that is not JSON.  Fails the test when no response
 * arrives.  The caller frees *r with h_resp_free. */
void e2e_req_raw(h_env *e, const char *method, const char *path, const char *ctype,
                 const char *body, size_t len, h_resp *r);

/* The reason phrase RFC 9110 gives status (vigil's problem "title"), or NULL for a status that
 * vigil never answers with a problem.  Written here from the RFC, not taken from the API. */
const char *e2e_status_title(long status);

/* Checks that r is a complete RFC 9457 problem: HTTP status == status, Content-Type
 * application/problem+json, a JSON object whose "status" equals status, "type" is
 * "https://vigil.dev/problems/<code>", "title" is e2e_status_title(status), "code" == code, a
 * non-empty "detail", and "field" == field, or no "field" member at all when field is NULL.
 * code must not be NULL. */
void e2e_assert_problem(const h_resp *r, long status, const char *code, const char *field);

/* The value of series (a metric name with its labels, exactly as printed) in GET /metrics, or -1
 * when no line carries it.  Asserts the scrape answers 200. */
double e2e_metric(h_env *e, const char *series);

/* POST /api/v1/users {"external_id": ext}; asserts 201. */
void e2e_user(h_env *e, const char *ext);

/* PUT /api/v1/policy with no models and the given fallback_decision (thresholds 0.5/0.9, scoring
 * timeout 50 ms), so every decision is the fallback; asserts 200. */
void e2e_policy_fallback(h_env *e, const char *decision);

/* Starts psql holding an ACCESS EXCLUSIVE lock on table for seconds (pg_sleep), its output in
 * log, and waits (at most 3 s) until PostgreSQL shows the lock granted; fails the test when it
 * does not.  Returns psql's pid (h_wait it). */
pid_t e2e_lock_table(h_env *e, const char *table, int seconds, const char *log);

#endif
