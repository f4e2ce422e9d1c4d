/* test_metrics.c - unit tests for api/metrics.{h,c} (counters) through api/scrape.c (GET /metrics):
 * counters and histogram buckets land in the series named by route pattern, method and status;
 * unknown methods, statuses and unmatched paths fold into fixed "other"/"unmatched" series (the
 * label set cannot grow); worker calls by op and result; decisions.  The scrape runs against a pool
 * that never connects and no worker.  Expected lines are written out by hand from the text format.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "hpclient.h"
#include "metrics.h"
#include "routes.h"
#include "scrape.h"
#include "wire.h"

/* Runs the handler and returns its body (NUL-terminated, caller frees). */
static char *scrape(void)
{
    static cfg c;
    char err[256];
    c.db_pool_size = 3;
    db_pool *pool = db_pool_create("postgresql:///none?host=/nonexistent", 3, 100, err, sizeof err);
    ck_assert_ptr_nonnull(pool);
    app a = {.cfg = &c, .db = pool};
    http_req req = {.app = &a,
                    .method = "GET",
                    .path = "/metrics",
                    .routes = routes_table,
                    .nroutes = routes_count};
    http_resp resp = {0};
    scrape_handler(&req, &resp);
    db_pool_destroy(pool);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.content_type, "text/plain; version=0.0.4; charset=utf-8");
    char *s = malloc(resp.body_len + 1);
    ck_assert_ptr_nonnull(s);
    memcpy(s, resp.body, resp.body_len);
    s[resp.body_len] = '\0';
    free(resp.body);
    return s;
}

/* True when text holds line as a whole line. */
static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

static int count_prefix(const char *text, const char *prefix)
{
    int n = 0;
    size_t len = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, prefix, len) == 0)
            n++;
    return n;
}

static int route_index(const char *method, const char *pattern)
{
    for (size_t i = 0; i < routes_count; i++)
        if (strcmp(routes_table[i].method, method) == 0 &&
            strcmp(routes_table[i].pattern, pattern) == 0)
            return (int)i;
    ck_abort_msg("route %s %s not in routes_table", method, pattern);
    return -1;
}

START_TEST(request_counter_and_buckets)
{
    int r = route_index("PATCH", "/api/v1/users/{id}");
    metrics_observe_request(r, "PATCH", 200, 700);      /* 0.7 ms: first bucket is 0.5 ms */
    metrics_observe_request(r, "PATCH", 200, 500);      /* exactly on a bound: counts in it */
    metrics_observe_request(r, "PATCH", 200, 60000000); /* 60 s: only +Inf */
    char *s = scrape();
    ck_assert(has_line(s, "vigil_http_requests_total{route=\"/api/v1/users/{id}\",method=\"PATCH\","
                          "status=\"200\"} 3"));
    const char *h = "vigil_http_request_duration_seconds";
    char line[256];
    snprintf(
        line, sizeof line,
        "%s_bucket{route=\"/api/v1/users/{id}\",method=\"PATCH\",status=\"200\",le=\"0.0005\"} 1",
        h);
    ck_assert_msg(has_line(s, line), "%s", line);
    snprintf(
        line, sizeof line,
        "%s_bucket{route=\"/api/v1/users/{id}\",method=\"PATCH\",status=\"200\",le=\"0.001\"} 2",
        h);
    ck_assert_msg(has_line(s, line), "%s", line);
    snprintf(line, sizeof line,
             "%s_bucket{route=\"/api/v1/users/{id}\",method=\"PATCH\",status=\"200\",le=\"10\"} 2",
             h);
    ck_assert_msg(has_line(s, line), "%s", line);
    snprintf(
        line, sizeof line,
        "%s_bucket{route=\"/api/v1/users/{id}\",method=\"PATCH\",status=\"200\",le=\"+Inf\"} 3", h);
    ck_assert_msg(has_line(s, line), "%s", line);
    /* 0.0007 + 0.0005 + 60 s */
    snprintf(line, sizeof line,
             "%s_sum{route=\"/api/v1/users/{id}\",method=\"PATCH\",status=\"200\"} 60.001200", h);
    ck_assert_msg(has_line(s, line), "%s", line);
    ck_assert(has_line(s, "vigil_build_info{version=\"0.1.0\"} 1"));
    ck_assert(has_line(s, "vigil_db_pool_size 3"));
    ck_assert(has_line(s, "vigil_db_pool_connections_open 0"));
    /* No worker pool: no worker section at all. */
    ck_assert_ptr_null(strstr(s, "vigil_hotpath_up"));
    free(s);
}
END_TEST

START_TEST(unbounded_inputs_fold)
{
    char m[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(m, sizeof m, "M%d", i);
        metrics_observe_request(-1, m, 404, 10);
        metrics_observe_request(-1, "GET", 100 + i % 500, 10);
    }
    metrics_observe_request(-1, NULL, 0, 10);
    char *s = scrape();
    ck_assert(has_line(s, "vigil_http_requests_total{route=\"unmatched\",method=\"other\","
                          "status=\"404\"} 1000"));
    ck_assert(has_line(s, "vigil_http_requests_total{route=\"unmatched\",method=\"other\","
                          "status=\"other\"} 1"));
    /* 1000 statuses 100..599 of GET: 2 per code; listed codes get their own series, the rest
     * one "other" series.  So at most 23 listed + 1 other series for unmatched GET. */
    int n = count_prefix(s, "vigil_http_requests_total{route=\"unmatched\",method=\"GET\"");
    ck_assert_int_le(n, 24);
    ck_assert(has_line(s, "vigil_http_requests_total{route=\"unmatched\",method=\"GET\","
                          "status=\"404\"} 2"));
    /* 500 codes, 23 listed in metrics.c, 2 observations each: (500 - 23) * 2 = 954. */
    ck_assert(has_line(s, "vigil_http_requests_total{route=\"unmatched\",method=\"GET\","
                          "status=\"other\"} 954"));
    free(s);
}
END_TEST

START_TEST(decisions)
{
    char *s = scrape();
    ck_assert(has_line(s, "vigil_decisions_total{decision=\"block\",degraded=\"true\"} 0"));
    free(s);
    metrics_observe_decision("block", 1);
    metrics_observe_decision("block", 1);
    metrics_observe_decision("allow", 0);
    metrics_observe_decision("maybe", 0);
    metrics_observe_decision(NULL, 1);
    s = scrape();
    ck_assert(has_line(s, "vigil_decisions_total{decision=\"block\",degraded=\"true\"} 2"));
    ck_assert(has_line(s, "vigil_decisions_total{decision=\"block\",degraded=\"false\"} 0"));
    ck_assert(has_line(s, "vigil_decisions_total{decision=\"allow\",degraded=\"false\"} 1"));
    ck_assert(has_line(s, "vigil_decisions_total{decision=\"other\",degraded=\"false\"} 1"));
    ck_assert(has_line(s, "vigil_decisions_total{decision=\"other\",degraded=\"true\"} 1"));
    free(s);
}
END_TEST

/* Worker calls are only printed with a worker pool; a pool to a path nobody listens on gives a
 * scrape with vigil_hotpath_up 0 and the calls observed so far (plus the scrape's own HELLO). */
START_TEST(worker_calls)
{
    static cfg c;
    char err[256];
    c.db_pool_size = 1;
    metrics_observe_hotpath(WIRE_OP_SCORE, WIRE_OK, 300);
    metrics_observe_hotpath(WIRE_OP_SCORE, WIRE_E_UNKNOWN_MODEL, 300);
    metrics_observe_hotpath(WIRE_OP_LOAD_MODEL, METRICS_HP_TIMEOUT, 2000000);
    metrics_observe_hotpath(WIRE_OP_SCORE, METRICS_HP_BUSY, 10);
    db_pool *pool = db_pool_create("postgresql:///none?host=/nonexistent", 1, 100, err, sizeof err);
    hpc_pool *hp = hpc_pool_create("/nonexistent/hotpath.sock", 1, 1 << 20, 2000, err, sizeof err);
    ck_assert_ptr_nonnull(pool);
    ck_assert_ptr_nonnull(hp);
    app a = {.cfg = &c, .db = pool, .hp = hp};
    http_req req = {.app = &a, .method = "GET", .path = "/metrics"};
    http_resp resp = {0};
    scrape_handler(&req, &resp);
    ck_assert_int_eq(resp.status, 200);
    char *s = strndup(resp.body, resp.body_len);
    free(resp.body);
    hpc_pool_destroy(hp);
    db_pool_destroy(pool);
    ck_assert(has_line(s, "vigil_hotpath_up 0"));
    ck_assert(has_line(s, "vigil_worker_calls_total{op=\"score\",result=\"ok\"} 1"));
    ck_assert(has_line(s, "vigil_worker_calls_total{op=\"score\",result=\"unknown_model\"} 1"));
    ck_assert(has_line(s, "vigil_worker_calls_total{op=\"score\",result=\"pool_busy\"} 1"));
    ck_assert(has_line(s, "vigil_worker_calls_total{op=\"load_model\",result=\"timeout\"} 1"));
    ck_assert(has_line(s, "vigil_worker_calls_total{op=\"hello\",result=\"down\"} 1"));
    ck_assert(has_line(s, "vigil_worker_call_duration_seconds_bucket{op=\"load_model\","
                          "result=\"timeout\",le=\"1\"} 0"));
    ck_assert(has_line(s, "vigil_worker_call_duration_seconds_bucket{op=\"load_model\","
                          "result=\"timeout\",le=\"+Inf\"} 1"));
    free(s);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *t = tcase_create("metrics");
    tcase_add_test(t, request_counter_and_buckets);
    tcase_add_test(t, unbounded_inputs_fold);
    tcase_add_test(t, decisions);
    tcase_add_test(t, worker_calls);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
