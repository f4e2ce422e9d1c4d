/* assert.c - shared Check-level helpers of the end-to-end tests.  See assert.h. */
#include "assert.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void e2e_env_up(h_env *e, const char *const *api_env)
{
    e2e_env_up_hp(e, api_env, NULL);
}

void e2e_env_up_hp(h_env *e, const char *const *api_env, const char *const *hp_env)
{
    memset(e, 0, sizeof *e);
    e->api_env = api_env;
    e->hp_env = hp_env;
    if (h_start(e) != 0)
        ck_abort_msg("harness: environment did not start");
}

void e2e_env_down(h_env *e)
{
    h_stop(e);
}

void e2e_req(h_env *e, const char *method, const char *path, const char *body, h_resp *r)
{
    ck_assert_msg(h_json(e, method, path, body, r) == 0, "%s %s: no response", method, path);
}

void e2e_req_raw(h_env *e, const char *method, const char *path, const char *ctype,
                 const char *body, size_t len, h_resp *r)
{
    ck_assert_msg(h_http(e, method, path, e->key, ctype, body, len, NULL, r) == 0,
                  "%s %s: no response", method, path);
}

const char *e2e_status_title(long status)
{
    /* RFC 9110 section 15 reason phrases, for the statuses vigil answers with a problem. */
    static const struct {
        long status;
        const char *title;
    } titles[] = {
        {400, "Bad Request"},       {401, "Unauthorized"},           {403, "Forbidden"},
        {404, "Not Found"},         {405, "Method Not Allowed"},     {409, "Conflict"},
        {413, "Content Too Large"}, {415, "Unsupported Media Type"}, {422, "Unprocessable Content"},
        {429, "Too Many Requests"}, {500, "Internal Server Error"},  {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };
    for (size_t i = 0; i < sizeof titles / sizeof titles[0]; i++)
        if (titles[i].status == status)
            return titles[i].title;
    return NULL;
}

void e2e_assert_problem(const h_resp *r, long status, const char *code, const char *field)
{
    char ct[128], type[160];
    ck_assert_ptr_nonnull(code);
    ck_assert_msg(r->status == status, "status %ld, want %ld; body %s", r->status, status, r->body);
    ck_assert_msg(h_header(r, "Content-Type", ct, sizeof ct) != NULL, "no Content-Type; body %s",
                  r->body);
    ck_assert_msg(strcmp(ct, "application/problem+json") == 0,
                  "Content-Type %s, want application/problem+json; body %s", ct, r->body);
    ck_assert_msg(cJSON_IsObject(r->json), "problem body is not a JSON object: %s", r->body);

    const char *got_code = h_str(r, "code");
    ck_assert_msg(got_code && strcmp(got_code, code) == 0, "code %s, want %s; body %s",
                  got_code ? got_code : "(absent)", code, r->body);
    snprintf(type, sizeof type, "https://vigil.dev/problems/%s", code);
    const char *got_type = h_str(r, "type");
    ck_assert_msg(got_type && strcmp(got_type, type) == 0, "type %s, want %s; body %s",
                  got_type ? got_type : "(absent)", type, r->body);
    const char *want_title = e2e_status_title(status);
    ck_assert_msg(want_title != NULL, "no known title for status %ld", status);
    const char *got_title = h_str(r, "title");
    ck_assert_msg(got_title && strcmp(got_title, want_title) == 0, "title %s, want %s; body %s",
                  got_title ? got_title : "(absent)", want_title, r->body);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r->json, "status");
    ck_assert_msg(cJSON_IsNumber(st) && st->valuedouble == (double)status,
                  "member status is not %ld; body %s", status, r->body);
    const char *detail = h_str(r, "detail");
    ck_assert_msg(detail && detail[0], "no detail; body %s", r->body);

    const cJSON *f = cJSON_GetObjectItemCaseSensitive(r->json, "field");
    if (field)
        ck_assert_msg(cJSON_IsString(f) && strcmp(f->valuestring, field) == 0,
                      "field %s, want %s; body %s", cJSON_IsString(f) ? f->valuestring : "(absent)",
                      field, r->body);
    else
        ck_assert_msg(f == NULL, "unexpected field member; body %s", r->body);
}

double e2e_metric(h_env *e, const char *series)
{
    h_resp r;
    ck_assert_int_eq(h_http(e, "GET", "/metrics", NULL, NULL, NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    double v = -1;
    size_t n = strlen(series);
    for (const char *p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            v = strtod(p + n + 1, NULL);
    h_resp_free(&r);
    return v;
}

void e2e_user(h_env *e, const char *ext)
{
    char body[200];
    snprintf(body, sizeof body, "{\"external_id\":\"%s\"}", ext);
    h_resp r;
    e2e_req(e, "POST", "/api/v1/users", body, &r);
    ck_assert_msg(r.status == 201, "user: %ld %s", r.status, r.body);
    h_resp_free(&r);
}

void e2e_policy_fallback(h_env *e, const char *decision)
{
    char body[300];
    snprintf(body, sizeof body,
             "{\"champion_model_id\":null,\"challenger_model_id\":null,\"review_threshold\":0.5,"
             "\"block_threshold\":0.9,\"fallback_decision\":\"%s\",\"scoring_timeout_ms\":50}",
             decision);
    h_resp r;
    e2e_req(e, "PUT", "/api/v1/policy", body, &r);
    ck_assert_msg(r.status == 200, "PUT policy: %ld %s", r.status, r.body);
    h_resp_free(&r);
}

pid_t e2e_lock_table(h_env *e, const char *table, int seconds, const char *log)
{
    char port[16], sql[200], granted[200], n[16] = "0";
    snprintf(port, sizeof port, "%d", e->pg_port);
    snprintf(sql, sizeof sql,
             "BEGIN; LOCK TABLE %s IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(%d); COMMIT;", table,
             seconds);
    const char *argv[] = {"psql", "-X",    "-q", "-h",    e->pg_sock, "-p", port,
                          "-U",   "vigil", "-d", "vigil", "-c",       sql,  NULL};
    pid_t pid = h_spawn(e, argv, NULL, log);
    ck_assert_int_gt(pid, 0);
    snprintf(granted, sizeof granted,
             "SELECT count(*) FROM pg_locks WHERE relation = '%s'::regclass AND mode = "
             "'AccessExclusiveLock' AND granted",
             table);
    for (int i = 0; i < 300 && atoi(n) == 0; i++) {
        h_psql(e, NULL, granted, n, sizeof n);
        if (atoi(n) == 0)
            usleep(10000);
    }
    ck_assert_msg(atoi(n) == 1, "psql did not take the lock on %s", table);
    return pid;
}
