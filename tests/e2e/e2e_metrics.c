/* e2e_metrics.c - end-to-end test of GET /metrics against real processes: after traffic that
 * gives every family samples (users, a 404, a model upload, predictions and a decision scored by
 * the worker), the exposition passes `promtool check metrics` (Debian's prometheus package: the
 * text format and Prometheus' naming rules, base units included) without one complaint, every
 * family has at least one sample, and the worker's STATS values re-exported in base units equal
 * the values the worker itself reports over its socket (nanoseconds and milliseconds converted to
 * seconds, exactly).
 *
 * One environment (unchecked fixture, CK_NOFORK), worker mode. */
#include <check.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "assert.h"
#include "fixtures_io.h"
#include "harness.h"
#include "wire.h"

static h_env E;

static void env_up(void)
{
    e2e_env_up(&E, NULL);
}

static void env_down(void)
{
    e2e_env_down(&E);
}

/* Requests that touch every family: HTTP routes and statuses, the database pool, the worker's
 * HELLO/LOAD_MODEL/SCORE/STATS, and a decision. */
static void traffic(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    h_resp r;
    e2e_req(&E, "GET", "/api/v1/users", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/no-such-thing", NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);

    size_t len;
    char *model = fx_slurp("api/demo/demo_model.json", &len);
    ck_assert_msg(model != NULL, "cannot read api/demo/demo_model.json (run from the repo root)");
    ck_assert_int_eq(h_http(&E, "POST", "/api/v1/models?name=metrics-demo", E.key,
                            "application/json", model, len, NULL, &r),
                     0);
    free(model);
    ck_assert_msg(r.status == 201, "upload: %ld %s", r.status, r.body);
    char id[37], path[120], body[600];
    snprintf(id, sizeof id, "%s", h_str(&r, "id"));
    h_resp_free(&r);

    snprintf(path, sizeof path, "/api/v1/models/%s/predict", id);
    e2e_req(&E, "POST", path, "{\"rows\":[{\"amount\":950,\"country_mismatch\":1}]}", &r);
    ck_assert_msg(r.status == 200, "predict: %ld %s", r.status, r.body);
    h_resp_free(&r);

    snprintf(
        body, sizeof body,
        "{\"champion_model_id\":\"%s\",\"challenger_model_id\":null,\"review_threshold\":0.5,"
        "\"block_threshold\":0.9,\"fallback_decision\":\"review\",\"scoring_timeout_ms\":5000}",
        id);
    e2e_req(&E, "PUT", "/api/v1/policy", body, &r);
    ck_assert_msg(r.status == 200, "PUT policy: %ld %s", r.status, r.body);
    h_resp_free(&r);
    e2e_req(&E, "POST", "/api/v1/users", "{\"external_id\":\"metrics-u\",\"country\":\"DE\"}", &r);
    ck_assert_msg(r.status == 201, "create user: %ld %s", r.status, r.body);
    char uid[37];
    snprintf(uid, sizeof uid, "%s", h_str(&r, "id"));
    h_resp_free(&r);
    snprintf(body, sizeof body,
             "{\"user_id\":\"%s\",\"amount\":1200,\"currency\":\"EUR\",\"merchant_id\":\"m-1\","
             "\"merchant_category\":\"5411\",\"country\":\"DE\",\"channel\":\"ecommerce\"}",
             uid);
    e2e_req(&E, "POST", "/api/v1/transactions", body, &r);
    ck_assert_msg(r.status == 201, "transaction: %ld %s", r.status, r.body);
    h_resp_free(&r);
}

/* GET /metrics; the body goes to e->dir/name as well.  Caller frees the response. */
static void scrape(const char *name, h_resp *r)
{
    ck_assert_int_eq(h_http(&E, "GET", "/metrics", NULL, NULL, NULL, 0, NULL, r), 0);
    ck_assert_msg(r->status == 200, "/metrics: %ld %s", r->status, r->body);
    char path[400];
    snprintf(path, sizeof path, "%s/%s", E.dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(r->body, 1, r->len, f), r->len);
    ck_assert_int_eq(fclose(f), 0);
}

/* The value of the sample line "name value" (no labels), or -1 when absent. */
static int sample(const char *text, const char *name, char *val, size_t cap)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ') {
            snprintf(val, cap, "%.*s", (int)strcspn(p + n + 1, "\n"), p + n + 1);
            return 0;
        }
    }
    return -1;
}

/* One STATS round trip straight to the worker's socket: the value of counter name. */
static uint64_t worker_stat(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", E.hp_sock);
    ck_assert_msg(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect %s",
                  E.hp_sock);
    wire_header h = {
        .magic = WIRE_MAGIC, .version = WIRE_VERSION, .op = WIRE_OP_STATS, .request_id = 7};
    ck_assert_int_eq(wire_send_frame(fd, &h, NULL, wire_now_ms() + 10000), WIRE_IO_OK);
    uint8_t raw[WIRE_HEADER_SIZE];
    static uint8_t payload[65536];
    ck_assert_int_eq(wire_read_full(fd, raw, sizeof raw, wire_now_ms() + 10000), WIRE_IO_OK);
    ck_assert_int_eq(wire_header_decode(raw, sizeof payload, &h), 0);
    ck_assert_uint_eq(h.status, WIRE_OK);
    ck_assert_int_eq(wire_read_full(fd, payload, h.payload_len, wire_now_ms() + 10000), WIRE_IO_OK);
    close(fd);
    wire_reader rd;
    wire_reader_init(&rd, payload, h.payload_len);
    unsigned n = wire_get_u16(&rd);
    for (unsigned i = 0; i < n; i++) {
        char k[64];
        wire_get_str(&rd, k, sizeof k);
        uint64_t v = wire_get_u64(&rd);
        ck_assert(!rd.err);
        if (strcmp(k, name) == 0)
            return v;
    }
    ck_abort_msg("worker STATS has no %s", name);
    return 0;
}

START_TEST(promtool_accepts_metrics)
{
    traffic();
    h_resp r;
    scrape("metrics-warm.txt", &r); /* /metrics itself now has a request count too */
    h_resp_free(&r);
    scrape("metrics.txt", &r);

    ck_assert_msg(access("/usr/bin/promtool", X_OK) == 0,
                  "promtool missing: install Debian's prometheus package (make deps)");
    char cmd[1200], out[8192];
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s/metrics.txt' > '%s/promtool.out' 2>&1",
             E.dir, E.dir);
    int rc = system(cmd);
    char *log = h_read_file(&E, "promtool.out");
    snprintf(out, sizeof out, "%s", log ? log : "(no output)");
    free(log);
    if (rc != 0 || out[0] != '\0')
        fprintf(stderr, "promtool check metrics (exit %d):\n%s\n", rc, out);
    ck_assert_msg(rc == 0 && out[0] == '\0', "promtool check metrics complained (exit %d): %.300s",
                  rc, out);

    /* Every family promised by a TYPE line has at least one sample. */
    for (const char *p = strstr(r.body, "# TYPE "); p; p = strstr(p + 1, "# TYPE ")) {
        char fam[128], want[140];
        ck_assert_int_eq(sscanf(p + 7, "%127s", fam), 1);
        snprintf(want, sizeof want, "\n%s", fam);
        const char *s = strstr(p, want);
        ck_assert_msg(
            s && (s[strlen(want)] == ' ' || s[strlen(want)] == '{' || s[strlen(want)] == '_'),
            "family %s has no sample", fam);
    }
    /* No abbreviated unit is left in a name. */
    static const char *const abbreviated[] = {"_ns ", "_us ", "_ms ", "_ns{",
                                              "_ms{", "_mb ", "_kb "};
    for (size_t i = 0; i < sizeof abbreviated / sizeof abbreviated[0]; i++)
        ck_assert_msg(strstr(r.body, abbreviated[i]) == NULL, "a name ends in %.3s",
                      abbreviated[i]);
    h_resp_free(&r);
}
END_TEST

/* The worker's nanosecond and millisecond counters come out in seconds, exactly: op_score_ns does
 * not move between the direct read and the scrape (nothing scores in between). */
START_TEST(worker_units_converted)
{
    traffic();
    uint64_t ns = worker_stat("op_score_ns");
    uint64_t calls = worker_stat("op_score_calls");
    ck_assert_uint_gt(calls, 0);
    ck_assert_uint_gt(ns, 0);
    h_resp r;
    scrape("metrics-units.txt", &r);
    char val[64], want[64];
    ck_assert_msg(sample(r.body, "vigil_hotpath_op_score_seconds", val, sizeof val) == 0,
                  "no vigil_hotpath_op_score_seconds (see %s/metrics-units.txt)", E.dir);
    snprintf(want, sizeof want, "%" PRIu64 ".%09" PRIu64, ns / 1000000000u, ns % 1000000000u);
    ck_assert_str_eq(val, want);
    ck_assert_int_eq(sample(r.body, "vigil_hotpath_op_score_calls", val, sizeof val), 0);
    snprintf(want, sizeof want, "%" PRIu64, calls);
    ck_assert_str_eq(val, want);
    /* Uptime: seconds with three decimals, never the old millisecond name. */
    ck_assert_int_eq(sample(r.body, "vigil_hotpath_uptime_seconds", val, sizeof val), 0);
    char *dot = strchr(val, '.');
    ck_assert_msg(dot && strlen(dot + 1) == 3, "uptime %s", val);
    ck_assert_int_ne(sample(r.body, "vigil_hotpath_uptime_ms", val, sizeof val), 0);
    ck_assert_int_ne(sample(r.body, "vigil_hotpath_op_score_ns", val, sizeof val), 0);
    h_resp_free(&r);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("e2e_metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_unchecked_fixture(tc, env_up, env_down);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, promtool_accepts_metrics);
    tcase_add_test(tc, worker_units_converted);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
