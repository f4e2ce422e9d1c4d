/* e2e_backtest.c - end-to-end tests of issue 14: backtests, replay, the transactions export and
 * the new label sources, against real PostgreSQL, vigil-hotpath and vigil-api (worker mode).
 *
 * TCase "history": ~2400 live decisions made through POST /api/v1/transactions, the first half by
 * the demo model (version 1 of model "bt"), the second by tests/fixtures/backtest_v2.json (version
 * 2, which also reads the client feature device_risk), with a burst of degraded decisions while the
 * worker is stopped; about a third labelled with every label source.  Then:
 *   - replay ("recorded") reproduces 100% of the stored non-degraded scores bit for bit, and their
 *     decisions, across both model versions (the counts come from SQL, not from the API);
 *   - "active" over the second version's window reproduces all of it too;
 *   - a candidate (version 2 with other thresholds, fraud restricted to two label sources) gives
 *     the report tests/tools/btcheck.py computes independently from the export with xgboost's
 *     predictor and scikit-learn (counts exact, AUCs within 1e-9);
 *   - the export streams every row exactly as GET /transactions/{id} answers it, NDJSON and CSV.
 * TCase "rules": ~600 live decisions by a policy with a champion, a challenger, a list and
 * active and shadow rules (built-ins from the user's history, fields, a client feature, the
 * scores, list membership), and a burst of degraded ones.  Then:
 *   - "active" (and the same policy as {"version": n}) reproduces 100% of the non-degraded live
 *     decisions and scores bit for bit, and the per-rule figures equal what the live decisions
 * recorded (SQL) and what btcheck.py computes from the export with each rule written again in
 * Python (which must also match every row's recorded rules);
 *   - a new candidate (other models, thresholds and rules, the list changed since: membership is
 *     the list's current content) gives btcheck.py's report, the challenger's AUCs included.
 * TCase "jobs": chunks of 100 rows with a pause, so a job is caught half-way: an API killed with
 * SIGKILL mid-job resumes it from its last chunk after a restart and ends with the report of an
 * uninterrupted run; cancel, list paging, and the validation answers.
 * BT_SMALL=1 in the environment makes the history 100 + 100 decisions (a quick run while
 * developing; the suite as `make test` runs it uses the full size). */
#include <check.h>
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "assert.h"
#include "clock.h"
#include "fixtures_io.h"
#include "harness.h"

#define N_V1 (getenv("BT_SMALL") ? 100 : 1200)
#define N_V2 (getenv("BT_SMALL") ? 100 : 1200)
#define N_DEGRADED 12
#define BASE_T 1767225600 /* 2026-01-01T00:00:00Z */

static h_env E;
static char g_v1[37], g_v2[37];
static int g_rows;         /* decisions made by populate */
static int g_n1, g_n2;     /* decisions by version 1, by version 2 (not degraded) */
static char g_v2_from[40]; /* occurred_at of the first decision of version 2 */

static const char *const ENV_HISTORY[] = {"PGTZ=Europe/Berlin", "VIGIL_BACKTEST_CHUNK_ROWS=500",
                                          NULL};
static const char *const ENV_JOBS[] = {"VIGIL_BACKTEST_CHUNK_ROWS=100",
                                       "VIGIL_BACKTEST_PAUSE_MS=250", NULL};

/* ---- helpers --------------------------------------------------------------------------------- */

static const cJSON *jget(const cJSON *o, const char *path)
{
    char part[64];
    while (o && *path) {
        size_t n = strcspn(path, ".");
        snprintf(part, sizeof part, "%.*s", (int)n, path);
        o = cJSON_IsArray(o) ? cJSON_GetArrayItem(o, atoi(part)) /* "by_rule.4.hits" */
                             : cJSON_GetObjectItemCaseSensitive(o, part);
        path += n + (path[n] == '.');
    }
    return o;
}

static double jnum(const cJSON *o, const char *path)
{
    const cJSON *v = jget(o, path);
    ck_assert_msg(cJSON_IsNumber(v), "%s is not a number", path);
    return v->valuedouble;
}

static long long sql_count(const char *sql)
{
    char out[64];
    ck_assert_int_eq(h_psql(&E, NULL, sql, out, sizeof out), 0);
    return atoll(out);
}

/* Polls the count sql answers until it reaches want (at most 5 s); asserts it did. */
static void await_count(const char *sql, long long want)
{
    long long got = sql_count(sql);
    for (int i = 0; i < 500 && got < want; i++) {
        usleep(10000);
        got = sql_count(sql);
    }
    ck_assert_msg(got == want, "%s: %lld, not %lld", sql, got, want);
}

static void iso(long t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void upload(const char *path, char id[37])
{
    size_t len;
    char *txt = fx_slurp(path, &len);
    ck_assert_msg(txt != NULL, "cannot read %s (run from the repo root)", path);
    h_resp r;
    e2e_req_raw(&E, "POST", "/api/v1/models?name=bt", "application/json", txt, len, &r);
    ck_assert_msg(r.status == 201, "upload %s: %ld %s", path, r.status, r.body);
    snprintf(id, 37, "%s", h_str(&r, "id"));
    h_resp_free(&r);
    free(txt);
}

static void set_policy(const char *champion, double review, double block)
{
    char body[400];
    snprintf(
        body, sizeof body,
        "{\"champion_model_id\":\"%s\",\"challenger_model_id\":null,\"review_threshold\":%.17g,"
        "\"block_threshold\":%.17g,\"fallback_decision\":\"review\",\"scoring_timeout_ms\":"
        "2000}",
        champion, review, block);
    h_resp r;
    e2e_req(&E, "PUT", "/api/v1/policy", body, &r);
    ck_assert_msg(r.status == 200, "PUT policy: %ld %s", r.status, r.body);
    h_resp_free(&r);
}

/* Decision i: a deterministic mix of users, amounts, currencies, merchants and device_risk. */
static void decide(int i, int expect_degraded)
{
    char body[600], at[40], feat[80] = "";
    iso(BASE_T + 60L * i, at, sizeof at);
    unsigned h = (unsigned)i * 2654435761u;
    if (h % 3)
        snprintf(feat, sizeof feat, ",\"features\":{\"device_risk\":%.3f}",
                 (h >> 8) % 1000 / 1000.0);
    snprintf(body, sizeof body,
             "{\"user_external_id\":\"u%u\",\"amount\":%u,\"currency\":\"%s\",\"merchant_id\":"
             "\"m%u\",\"merchant_category\":\"5411\",\"country\":\"%s\",\"channel\":\"ecommerce\","
             "\"occurred_at\":\"%s\"%s}",
             h % 17, 100 + (h >> 4) % (h % 11 == 0 ? 900000 : 20000), h % 5 == 0 ? "JPY" : "EUR",
             (h >> 3) % 23, (h >> 7) % 4 == 0 ? "DE" : "FR", at, feat);
    h_resp r;
    e2e_req(&E, "POST", "/api/v1/transactions", body, &r);
    ck_assert_msg(r.status == 201, "decision %d: %ld %s", i, r.status, r.body);
    ck_assert_int_eq(cJSON_IsTrue(jget(r.json, "risk.degraded")), expect_degraded);
    h_resp_free(&r);
    g_rows++;
}

static void create_users(void)
{
    for (int u = 0; u < 17; u++) {
        char body[160];
        snprintf(body, sizeof body, "{\"external_id\":\"u%d\",\"country\":\"%s\"}", u,
                 u % 3 ? "FR" : "DE");
        h_resp r;
        e2e_req(&E, "POST", "/api/v1/users", body, &r);
        ck_assert_msg(r.status == 201, "user: %ld %s", r.status, r.body);
        h_resp_free(&r);
    }
}

/* Labels about a third of the rows, fraud more likely at high scores, with every source. */
static void label_rows(void)
{
    ck_assert_int_eq(
        h_psql(&E, NULL,
               "UPDATE transactions SET label = CASE WHEN abs(hashtext(id::text || 'l')) % 100 < "
               "coalesce(score, 0.2) * 100 THEN 'fraud' ELSE 'legit' END, label_source = "
               "(ARRAY['chargeback','early_fraud_warning','refund','analyst','customer'])"
               "[1 + abs(hashtext(id::text || 's')) % 5], labelled_at = now() "
               "WHERE abs(hashtext(id::text)) % 3 = 0",
               NULL, 0),
        0);
}

/* Version 1 decides N_V1 rows, version 2 the rest, with a burst of degraded decisions (worker
 * stopped) in the middle of version 2's window. */
static void populate(int n1, int n2, int degraded)
{
    g_rows = 0;
    g_n1 = n1, g_n2 = n2;
    upload("api/demo/demo_model.json", g_v1);
    upload("tests/fixtures/backtest_v2.json", g_v2);
    create_users();
    set_policy(g_v1, 0.3, 0.7);
    for (int i = 0; i < n1; i++)
        decide(i, 0);
    set_policy(g_v2, 0.25, 0.6);
    iso(BASE_T + 60L * n1, g_v2_from, sizeof g_v2_from);
    for (int i = n1; i < n1 + n2; i++) {
        if (degraded && i == n1 + n2 / 2) {
            ck_assert_int_eq(h_hp_stop(&E, SIGTERM), 0);
            for (int k = 0; k < degraded; k++)
                decide(n1 + n2 + k, 1); /* after the rest in time, same window */
            ck_assert_int_eq(h_hp_start(&E), 0);
        }
        decide(i, 0);
    }
    label_rows();
}

/* POSTs a backtest; asserts 202 + Location; its id into id[37]. */
static void post_backtest(const char *body, char id[37])
{
    h_resp r;
    char loc[128], want[128];
    e2e_req(&E, "POST", "/api/v1/backtests", body, &r);
    ck_assert_msg(r.status == 202, "POST backtest: %ld %s", r.status, r.body);
    snprintf(id, 37, "%s", h_str(&r, "id"));
    snprintf(want, sizeof want, "/api/v1/backtests/%s", id);
    ck_assert_str_eq(h_header(&r, "Location", loc, sizeof loc), want);
    h_resp_free(&r);
}

/* Polls the job until it leaves queued/running (at most 120 s); the final GET's JSON into *out
 * (caller deletes it). */
static cJSON *wait_job(const char *id)
{
    char path[96];
    snprintf(path, sizeof path, "/api/v1/backtests/%s", id);
    for (int tries = 0; tries < 1200; tries++) {
        h_resp r;
        e2e_req(&E, "GET", path, NULL, &r);
        ck_assert_msg(r.status == 200, "GET backtest: %ld %s", r.status, r.body);
        const char *st = h_str(&r, "state");
        if (strcmp(st, "queued") && strcmp(st, "running")) {
            cJSON *j = cJSON_Duplicate(r.json, 1);
            h_resp_free(&r);
            return j;
        }
        h_resp_free(&r);
        usleep(100000);
    }
    ck_abort_msg("backtest %s did not finish within 120 s", id);
    return NULL;
}

static cJSON *run_job(const char *body)
{
    char id[37];
    post_backtest(body, id);
    cJSON *j = wait_job(id);
    const char *st = cJSON_GetStringValue(jget(j, "state"));
    ck_assert_msg(strcmp(st, "succeeded") == 0, "backtest %s: %s (%s)", id, st,
                  cJSON_GetStringValue(jget(j, "error")) ? cJSON_GetStringValue(jget(j, "error"))
                                                         : "");
    return j;
}

static void up_history(void)
{
    e2e_env_up(&E, ENV_HISTORY);
    populate(N_V1, N_V2, N_DEGRADED);
}

static void up_jobs(void)
{
    e2e_env_up(&E, ENV_JOBS);
    populate(300, 300, 0);
}

static void env_down(void)
{
    e2e_env_down(&E);
}

/* ---- history: exactness, the independent report, the export -----------------------------------
 */

static const char WINDOW[] = "\"from\":\"2025-12-01T00:00:00Z\",\"to\":\"2027-01-01T00:00:00Z\"";

START_TEST(replay_reproduces_every_stored_score)
{
    char body[300];
    snprintf(body, sizeof body, "{\"name\":\"replay\",\"policy\":\"recorded\",%s}", WINDOW);
    cJSON *j = run_job(body);
    const cJSON *rep = jget(j, "report");
    long long total = sql_count("SELECT count(*) FROM transactions");
    long long nondeg = sql_count("SELECT count(*) FROM transactions WHERE NOT degraded");
    long long deg = sql_count("SELECT count(*) FROM transactions WHERE degraded");
    long long models = sql_count("SELECT count(DISTINCT model_id) FROM transactions");
    ck_assert_int_eq(total, g_rows);
    ck_assert_int_eq(models, 2); /* two model versions in the window */
    ck_assert_int_eq(deg, N_DEGRADED);
    ck_assert_int_eq((long long)jnum(rep, "rows"), total);
    ck_assert_int_eq((long long)jnum(j, "progress.processed"), total);
    ck_assert_int_eq((long long)jnum(j, "progress.total"), total);
    ck_assert(jnum(j, "progress.rows_per_second") > 0);
    ck_assert_int_eq((long long)jnum(rep, "replay.live_degraded"), deg);
    ck_assert_int_eq((long long)jnum(rep, "replay.compared"), nondeg);
    ck_assert_int_eq((long long)jnum(rep, "replay.same_score"), nondeg);    /* bit for bit */
    ck_assert_int_eq((long long)jnum(rep, "replay.same_decision"), nondeg); /* and decisions */
    cJSON_Delete(j);
}
END_TEST

START_TEST(active_policy_reproduces_its_own_history)
{
    char body[300];
    snprintf(body, sizeof body,
             "{\"policy\":\"active\",\"from\":\"%s\",\"to\":\"2027-01-01T00:00:00Z\"}", g_v2_from);
    cJSON *j = run_job(body);
    const cJSON *rep = jget(j, "report");
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM transactions WHERE NOT degraded AND occurred_at >= '%s'",
             g_v2_from);
    long long nondeg = sql_count(sql);
    ck_assert_int_eq(nondeg, g_n2);
    ck_assert_int_eq((long long)jnum(rep, "replay.compared"), nondeg);
    ck_assert_int_eq((long long)jnum(rep, "replay.same_score"), nondeg);
    ck_assert_int_eq((long long)jnum(rep, "replay.same_decision"), nondeg);
    ck_assert_str_eq(cJSON_GetStringValue(jget(j, "policy.champion_model_id")), g_v2);
    ck_assert_str_eq(cJSON_GetStringValue(jget(j, "policy_source")), "active");
    cJSON_Delete(j);
}
END_TEST

/* Writes data[0..len) to e->dir/name; the full path into path[cap]. */
static void save(const char *name, const char *data, size_t len, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", E.dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Runs btcheck.py over the export of the whole window against report rep; params is the JSON
 * of its PARAMS without the file paths of the models (champion id, challenger id or NULL). */
static void btcheck(const cJSON *rep, const char *champion, const char *challenger,
                    const char *params_json)
{
    char p_rep[400], p_exp[400], p_model[400], p_chal[400], p_par[400], path[128];
    char *text = cJSON_PrintUnformatted(rep);
    save("btr_report.json", text, strlen(text), p_rep, sizeof p_rep);
    free(text);
    h_resp r;
    e2e_req(&E, "GET",
            "/api/v1/transactions/export?from=2025-12-01T00:00:00Z&to=2027-01-01T00:00:00Z", NULL,
            &r);
    ck_assert_int_eq(r.status, 200);
    save("btr_export.ndjson", r.body, r.len, p_exp, sizeof p_exp);
    h_resp_free(&r);
    const char *ids[2] = {champion, challenger};
    char *paths[2] = {p_model, p_chal};
    for (int m = 0; m < (challenger ? 2 : 1); m++) {
        snprintf(path, sizeof path, "/api/v1/models/%s/source", ids[m]);
        e2e_req(&E, "GET", path, NULL, &r);
        ck_assert_int_eq(r.status, 200);
        save(m ? "btr_chal.json" : "btr_model.json", r.body, r.len, paths[m], 400);
        h_resp_free(&r);
    }
    cJSON *par = cJSON_Parse(params_json);
    ck_assert_ptr_nonnull(par);
    if (challenger)
        cJSON_AddStringToObject(par, "challenger_model", p_chal);
    text = cJSON_PrintUnformatted(par);
    save("btr_params.json", text, strlen(text), p_par, sizeof p_par);
    free(text);
    cJSON_Delete(par);
    const char *argv[] = {
        "/usr/bin/python3", "tests/tools/btcheck.py", p_exp, p_model, p_rep, p_par, NULL};
    char out[8192];
    int rc = h_run(&E, argv, NULL, out, sizeof out);
    fprintf(stderr, "%s", out);
    ck_assert_msg(rc == 0, "btcheck.py failed (%d): %s", rc, out);
    ck_assert_ptr_nonnull(strstr(out, "btcheck: OK"));
}

START_TEST(report_equals_an_independent_computation)
{
    char body[600];
    snprintf(
        body, sizeof body,
        "{\"name\":\"v2 tighter\",\"policy\":{\"champion_model_id\":\"%s\",\"review_threshold\":"
        "0.2,\"block_threshold\":0.55,\"fallback_decision\":\"review\"},%s,\"filter\":"
        "{\"label_sources\":[\"chargeback\",\"refund\"]}}",
        g_v2, WINDOW);
    cJSON *j = run_job(body);
    const cJSON *rep = jget(j, "report");
    /* device_risk is absent from every snapshot version 1 made */
    ck_assert_int_eq((long long)jnum(rep, "missing_features.device_risk"), g_n1);
    ck_assert(jnum(rep, "labelled.fraud") > 10 && jnum(rep, "labelled.legit") > 10);
    btcheck(rep, g_v2, NULL,
            "{\"review_threshold\":0.2,\"block_threshold\":0.55,\"fallback_decision\":\"review\","
            "\"label_sources\":[\"chargeback\",\"refund\"],\"exponents\":{\"EUR\":2,\"JPY\":0}}");
    cJSON_Delete(j);
}
END_TEST

/* A candidate with rules on history decided WITHOUT rules (no recorded rule inputs): every operand
 * comes from the stored row (fields, the user's fields, client features, amount_major) and the
 * snapshot (built-ins), the list from its current set; btcheck.py evaluates the same rules in
 * Python from the export, the users' countries and the client features (read with SQL). */
START_TEST(rules_on_history_decided_without_rules)
{
    h_resp r;
    e2e_req(&E, "POST", "/api/v1/lists", "{\"name\":\"hist_merchants\",\"kind\":\"string\"}", &r);
    ck_assert_msg(r.status == 201, "list: %ld %s", r.status, r.body);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/lists/%s/items", h_str(&r, "id"));
    h_resp_free(&r);
    e2e_req(&E, "POST", path, "{\"items\":[\"m1\",\"m2\"]}", &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    static const char rules[] =
        "[{\"name\":\"jpy_big\",\"action\":\"block\",\"when\":\"currency = \\\"JPY\\\" and "
        "amount > 3000\"},"
        "{\"name\":\"fr_m5\",\"action\":\"review\",\"when\":\"country = \\\"FR\\\" and "
        "merchant_id in (\\\"m5\\\", \\\"m6\\\")\"},"
        "{\"name\":\"busy\",\"action\":\"allow\",\"when\":\"user_txn_count_24h >= 30 and "
        "score < 0.1\"},"
        "{\"name\":\"listed\",\"action\":\"review\",\"when\":\"merchant_id in @hist_merchants\"},"
        "{\"name\":\"de_user\",\"action\":\"review\",\"mode\":\"shadow\",\"when\":"
        "\"user_country = \\\"DE\\\"\"},"
        "{\"name\":\"device\",\"action\":\"block\",\"mode\":\"shadow\",\"when\":\"device_risk > "
        "0.5\"}]";
    static const char rules_py[] =
        "[{\"name\":\"jpy_big\",\"action\":\"block\",\"mode\":\"active\",\"py\":"
        "\"cur == 'JPY' and amt > 3000\"},"
        "{\"name\":\"fr_m5\",\"action\":\"review\",\"mode\":\"active\",\"py\":"
        "\"country == 'FR' and merchant in ('m5', 'm6')\"},"
        "{\"name\":\"busy\",\"action\":\"allow\",\"mode\":\"active\",\"py\":"
        "\"feat.get('user_txn_count_24h') is not None and feat['user_txn_count_24h'] >= 30 and "
        "not isnan(s) and s < 0.1\"},"
        "{\"name\":\"listed\",\"action\":\"review\",\"mode\":\"active\",\"py\":"
        "\"merchant in lists['hist_merchants']\"},"
        "{\"name\":\"de_user\",\"action\":\"review\",\"mode\":\"shadow\",\"py\":"
        "\"extra['users'][t['user_id']] == 'DE'\"},"
        "{\"name\":\"device\",\"action\":\"block\",\"mode\":\"shadow\",\"py\":"
        "\"isinstance((extra['cf'].get(t['id']) or {}).get('device_risk'), (int, float)) and "
        "extra['cf'][t['id']]['device_risk'] > 0.5\"}]";
    char *body = malloc(8192), *params = malloc(1 << 21), *users = malloc(1 << 16),
         *cf = malloc(1 << 20);
    ck_assert(body && params && users && cf);
    snprintf(body, 8192,
             "{\"name\":\"rules on plain history\",\"policy\":{\"champion_model_id\":\"%s\","
             "\"review_threshold\":0.25,\"block_threshold\":0.6,\"rules\":%s},%s}",
             g_v2, rules, WINDOW);
    cJSON *j = run_job(body);
    const cJSON *rep = jget(j, "report");
    ck_assert_int_eq(sql_count("SELECT count(*) FROM transactions WHERE rule_inputs IS NOT NULL"),
                     0);
    ck_assert_int_eq(cJSON_GetArraySize(jget(rep, "rules.operands_unavailable")), 0);
    ck_assert_int_eq((long long)jnum(rep, "rules.list_probes.recorded"), 0);
    ck_assert_int_eq(
        (long long)jnum(rep, "rules.by_rule.4.hits"),
        sql_count("SELECT count(*) FROM transactions t JOIN users u ON u.id = t.user_id "
                  "WHERE u.country = 'DE'"));
    const cJSON *e;
    cJSON_ArrayForEach(e, jget(rep, "rules.by_rule")) /* every rule discriminates */
    {
        long long hits = (long long)jnum(e, "hits");
        ck_assert_msg(hits > 0 && hits < (long long)jnum(rep, "rows"), "rule %s: %lld hits",
                      cJSON_GetStringValue(jget(e, "name")), hits);
    }
    ck_assert_int_eq(
        h_psql(&E, NULL, "SELECT json_object_agg(id, country) FROM users", users, 1 << 16), 0);
    ck_assert_int_eq(h_psql(&E, NULL,
                            "SELECT json_object_agg(id, client_features) FROM transactions", cf,
                            1 << 20),
                     0);
    snprintf(params, 1 << 21,
             "{\"review_threshold\":0.25,\"block_threshold\":0.6,\"fallback_decision\":\"review\","
             "\"label_sources\":null,\"exponents\":{\"EUR\":2,\"JPY\":0},\"lists\":"
             "{\"hist_merchants\":[\"m1\",\"m2\"]},\"extra\":{\"users\":%s,\"cf\":%s},"
             "\"rules\":%s}",
             users, cf, rules_py);
    btcheck(rep, g_v2, NULL, params);
    free(body);
    free(params);
    free(users);
    free(cf);
    cJSON_Delete(j);
}
END_TEST

/* Counts the lines of text. */
static long lines(const char *s)
{
    long n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

START_TEST(export_streams_every_row_as_get_answers_it)
{
    h_resp r;
    e2e_req(&E, "GET", "/api/v1/transactions/export", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    char ct[96];
    ck_assert_str_eq(h_header(&r, "Content-Type", ct, sizeof ct), "application/x-ndjson");
    ck_assert_int_eq(lines(r.body), sql_count("SELECT count(*) FROM transactions"));
    /* every 97th line equals GET /transactions/{id}, byte for byte */
    const char *line = r.body;
    for (int i = 0; *line; i++) {
        const char *nl = strchr(line, '\n');
        ck_assert_ptr_nonnull(nl);
        if (i % 97 == 0) {
            cJSON *o = cJSON_ParseWithLength(line, (size_t)(nl - line));
            ck_assert_ptr_nonnull(o);
            char path[96];
            snprintf(path, sizeof path, "/api/v1/transactions/%s",
                     cJSON_GetStringValue(jget(o, "id")));
            h_resp g;
            e2e_req(&E, "GET", path, NULL, &g);
            ck_assert_int_eq(g.status, 200);
            ck_assert_uint_eq(g.len, (size_t)(nl - line));
            ck_assert_int_eq(memcmp(g.body, line, g.len), 0);
            h_resp_free(&g);
            cJSON_Delete(o);
        }
        line = nl + 1;
    }
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/transactions/export?labelled_only=true", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(lines(r.body),
                     sql_count("SELECT count(*) FROM transactions WHERE label IS NOT NULL"));
    h_resp_free(&r);
    const char *const csv[] = {"Accept: text/csv", NULL};
    ck_assert_int_eq(h_http(&E, "GET", "/api/v1/transactions/export?labelled_only=true", E.key,
                            NULL, NULL, 0, csv, &r),
                     0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(h_header(&r, "Content-Type", ct, sizeof ct), "text/csv; charset=utf-8");
    ck_assert(strncmp(r.body, "id,user_id,amount,currency,", 27) == 0);
    ck_assert_int_eq(lines(r.body) - 1,
                     sql_count("SELECT count(*) FROM transactions WHERE label IS NOT NULL"));
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/transactions/export?since=x", NULL, &r);
    e2e_assert_problem(&r, 400, "unknown_parameter", "since");
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/transactions/export?from=yesterday", NULL, &r);
    e2e_assert_problem(&r, 400, "validation_failed", "from");
    h_resp_free(&r);
}
END_TEST

/* Sends a GET of path on a new connection (Connection: close) and returns its socket without
 * reading: the answer waits in it. */
static int get_unread(const char *path)
{
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: "
                     "close\r\n\r\n",
                     path, E.key);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)E.api_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    return fd;
}

/* The status line of fd's answer, read to its end (at most 20 s), into out[cap]; fd closed. */
static void read_status(int fd, char *out, size_t cap)
{
    static char buf[1 << 16];
    size_t got = 0;
    out[0] = '\0';
    for (int64_t end = clock_now_ms() + 20000; clock_now_ms() < end;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0)
            break;
        if (!got)
            snprintf(out, cap, "%.*s", (int)strcspn(buf, "\r"), buf);
        got += (size_t)r;
    }
    close(fd);
}

/* Exports streamed at once are bounded (VIGIL_EXPORT_CONCURRENCY, 2 by default): each holds a
 * pooled connection for its whole stream, at its client's pace.  Two exports held up (here by a
 * lock on transactions, as a client reading slowly holds one up) leave a third a 503 at once,
 * while the rest of the API is served from the pool; once they end, an export runs again. */
START_TEST(exports_at_once_are_bounded)
{
    char st[2][64];
    pid_t locker = e2e_lock_table(&E, "transactions", 4, "locker-export.log");
    int fd[2] = {get_unread("/api/v1/transactions/export"),
                 get_unread("/api/v1/transactions/export")};
    await_count("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query "
                "ILIKE '%vigil_export%'",
                2); /* both wait on the lock: both slots taken */
    h_resp r;
    e2e_req(&E, "GET", "/api/v1/transactions/export", NULL, &r);
    ck_assert_msg(r.status == 503, "a third export at once: %ld", r.status);
    e2e_assert_problem(&r, 503, "unavailable", NULL);
    char ra[16];
    ck_assert_str_eq(h_header(&r, "Retry-After", ra, sizeof ra), "1");
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/users?limit=1", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    for (int i = 0; i < 2; i++)
        read_status(fd[i], st[i], sizeof st[i]);
    h_wait(locker, 10000);
    ck_assert_str_eq(st[0], "HTTP/1.1 200 OK");
    ck_assert_str_eq(st[1], "HTTP/1.1 200 OK");
    e2e_req(&E, "GET", "/api/v1/transactions/export?labelled_only=true", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
}
END_TEST

START_TEST(label_sources_of_payments_teams)
{
    char id[40], path[96];
    ck_assert_int_eq(
        h_psql(&E, NULL, "SELECT id FROM transactions ORDER BY occurred_at LIMIT 1", id, sizeof id),
        0);
    snprintf(path, sizeof path, "/api/v1/transactions/%s", id);
    const char *sources[] = {"chargeback", "early_fraud_warning", "refund", "analyst", "customer"};
    for (int i = 0; i < 5; i++) {
        char body[120];
        snprintf(body, sizeof body, "{\"label\":\"fraud\",\"label_source\":\"%s\"}", sources[i]);
        h_resp r;
        e2e_req(&E, "PATCH", path, body, &r);
        ck_assert_msg(r.status == 200, "%s: %ld %s", sources[i], r.status, r.body);
        ck_assert_str_eq(h_str(&r, "label_source"), sources[i]);
        ck_assert_ptr_nonnull(h_str(&r, "labelled_at"));
        h_resp_free(&r);
    }
    h_resp r;
    e2e_req(&E, "PATCH", path, "{\"label\":\"fraud\",\"label_source\":\"dispute\"}", &r);
    e2e_assert_problem(&r, 400, "validation_failed", "label_source");
    h_resp_free(&r);
}
END_TEST

/* ---- rules: the live policy with rules, and a new candidate --------------------------------- */

#define N_RULES_ROWS (getenv("BT_SMALL") ? 200 : 600)
#define N_RULES_DEGRADED 6

static char g_list[37];
static long long g_rules_version; /* the policy version that decided every row */

/* The live policy's rules: JSON for the API, Python for btcheck.py (the same conditions written
 * independently; names as btcheck's rule_env gives them). */
static const char LIVE_RULES[] =
    "[{\"name\":\"big_jpy\",\"action\":\"block\",\"when\":\"currency = \\\"JPY\\\" and amount "
    "> 5000\"},"
    "{\"name\":\"bad_merchant\",\"action\":\"review\",\"when\":\"merchant_id in "
    "@bt_bad_merchants\"},"
    "{\"name\":\"trusted\",\"action\":\"allow\",\"when\":\"merchant_id = \\\"m7\\\" and amount < "
    "60\"},"
    "{\"name\":\"busy_user\",\"action\":\"review\",\"mode\":\"shadow\",\"when\":"
    "\"user_txn_count_1h >= 3\"},"
    "{\"name\":\"fr_high\",\"action\":\"block\",\"mode\":\"shadow\",\"when\":\"score > 0.5 and "
    "country = \\\"FR\\\"\"},"
    "{\"name\":\"chal_high\",\"action\":\"review\",\"mode\":\"shadow\",\"when\":"
    "\"challenger_score > 0.6\"},"
    "{\"name\":\"risky_device\",\"action\":\"review\",\"when\":\"device_risk > 0.8\"}]";
static const char LIVE_RULES_PY[] =
    "[{\"name\":\"big_jpy\",\"action\":\"block\",\"mode\":\"active\",\"py\":"
    "\"cur == 'JPY' and amt > 5000\"},"
    "{\"name\":\"bad_merchant\",\"action\":\"review\",\"mode\":\"active\",\"py\":"
    "\"merchant in lists['bt_bad_merchants']\"},"
    "{\"name\":\"trusted\",\"action\":\"allow\",\"mode\":\"active\",\"py\":"
    "\"merchant == 'm7' and amt < 60\"},"
    "{\"name\":\"busy_user\",\"action\":\"review\",\"mode\":\"shadow\",\"py\":"
    "\"inp.get('user_txn_count_1h') is not None and inp['user_txn_count_1h'] >= 3\"},"
    "{\"name\":\"fr_high\",\"action\":\"block\",\"mode\":\"shadow\",\"py\":"
    "\"not isnan(s) and s > 0.5 and country == 'FR'\"},"
    "{\"name\":\"chal_high\",\"action\":\"review\",\"mode\":\"shadow\",\"py\":"
    "\"not isnan(ch) and ch > 0.6\"},"
    "{\"name\":\"risky_device\",\"action\":\"review\",\"mode\":\"active\",\"py\":"
    "\"inp.get('device_risk') is not None and inp['device_risk'] > 0.8\"}]";

/* The new candidate's rules (the list changed after the live decisions). */
static const char NEW_RULES[] =
    "[{\"name\":\"jpy_chal\",\"action\":\"review\",\"when\":\"currency = \\\"JPY\\\" and "
    "challenger_score > 0.2\"},"
    "{\"name\":\"bad_merchant_big\",\"action\":\"block\",\"when\":\"merchant_id in "
    "@bt_bad_merchants and amount > 100\"},"
    "{\"name\":\"calm\",\"action\":\"allow\",\"when\":\"score < 0.05 and user_txn_count_24h > "
    "5\"},"
    "{\"name\":\"new_merchant_de\",\"action\":\"block\",\"mode\":\"shadow\",\"when\":"
    "\"country = \\\"DE\\\" and not merchant_seen_before\"}]";
static const char NEW_RULES_PY[] =
    "[{\"name\":\"jpy_chal\",\"action\":\"review\",\"mode\":\"active\",\"py\":"
    "\"cur == 'JPY' and not isnan(ch) and ch > 0.2\"},"
    "{\"name\":\"bad_merchant_big\",\"action\":\"block\",\"mode\":\"active\",\"py\":"
    "\"merchant in lists['bt_bad_merchants'] and amt > 100\"},"
    "{\"name\":\"calm\",\"action\":\"allow\",\"mode\":\"active\",\"py\":"
    "\"not isnan(s) and s < 0.05 and inp.get('user_txn_count_24h') is not None and "
    "inp['user_txn_count_24h'] > 5\"},"
    "{\"name\":\"new_merchant_de\",\"action\":\"block\",\"mode\":\"shadow\",\"py\":"
    "\"country == 'DE' and not (inp.get('merchant_seen_before') is not None and "
    "inp['merchant_seen_before'] != 0)\"}]";

static void list_items(const char *method, const char *items)
{
    char body[300], path[128];
    snprintf(body, sizeof body, "{\"items\":%s}", items);
    snprintf(path, sizeof path, "/api/v1/lists/%s/items", g_list);
    h_resp r;
    e2e_req(&E, method, path, body, &r);
    ck_assert_msg(r.status == 200, "list items: %ld %s", r.status, r.body);
    h_resp_free(&r);
}

static void up_rules(void)
{
    e2e_env_up(&E, ENV_HISTORY);
    g_rows = 0;
    upload("api/demo/demo_model.json", g_v1);
    upload("tests/fixtures/backtest_v2.json", g_v2);
    create_users();
    h_resp r;
    e2e_req(&E, "POST", "/api/v1/lists", "{\"name\":\"bt_bad_merchants\",\"kind\":\"string\"}", &r);
    ck_assert_msg(r.status == 201, "list: %ld %s", r.status, r.body);
    snprintf(g_list, sizeof g_list, "%s", h_str(&r, "id"));
    h_resp_free(&r);
    list_items("POST", "[\"m3\",\"m11\",\"m19\"]");
    char *body = malloc(8192);
    ck_assert_ptr_nonnull(body);
    snprintf(body, 8192,
             "{\"champion_model_id\":\"%s\",\"challenger_model_id\":\"%s\",\"review_threshold\":"
             "0.3,\"block_threshold\":0.7,\"fallback_decision\":\"review\",\"scoring_timeout_ms\":"
             "2000,\"rules\":%s}",
             g_v1, g_v2, LIVE_RULES);
    e2e_req(&E, "PUT", "/api/v1/policy", body, &r);
    ck_assert_msg(r.status == 200, "PUT policy: %ld %s", r.status, r.body);
    h_resp_free(&r);
    free(body);
    g_rules_version = sql_count("SELECT version FROM policy");
    for (int i = 0; i < N_RULES_ROWS; i++) {
        if (i == N_RULES_ROWS / 2) { /* a burst of degraded decisions, the worker stopped */
            ck_assert_int_eq(h_hp_stop(&E, SIGTERM), 0);
            for (int k = 0; k < N_RULES_DEGRADED; k++)
                decide(N_RULES_ROWS + k, 1);
            ck_assert_int_eq(h_hp_start(&E), 0);
        }
        decide(i, 0);
    }
    label_rows();
}

/* The hits of rule name in the live decisions, from the stored rules_matched. */
static long long live_hits(const char *name)
{
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM transactions t, json_array_elements(t.rules_matched) e "
             "WHERE e->>'name' = '%s'",
             name);
    return sql_count(sql);
}

START_TEST(rules_reproduce_the_live_decisions)
{
    char body[300];
    snprintf(body, sizeof body, "{\"name\":\"rules live\",\"policy\":\"active\",%s}", WINDOW);
    cJSON *j = run_job(body);
    const cJSON *rep = jget(j, "report");
    long long n = sql_count("SELECT count(*) FROM transactions WHERE NOT degraded");
    long long all = sql_count("SELECT count(*) FROM transactions");
    ck_assert_int_eq(n, N_RULES_ROWS);
    ck_assert_int_eq(all, N_RULES_ROWS + N_RULES_DEGRADED);
    ck_assert_int_eq((long long)jnum(rep, "replay.live_degraded"), N_RULES_DEGRADED);
    ck_assert_int_eq((long long)jnum(rep, "replay.compared"), n);
    ck_assert_int_eq((long long)jnum(rep, "replay.same_score"), n);    /* bit for bit */
    ck_assert_int_eq((long long)jnum(rep, "replay.same_decision"), n); /* rules included */
    /* every rule's hits: as the live decisions recorded them; a degraded decision skipped the
     * rules reading a score, which the backtest (scoring every row) evaluates there too */
    const cJSON *e;
    long long active = 0, shadow = 0, some = 0;
    cJSON_ArrayForEach(e, jget(rep, "rules.by_rule"))
    {
        const char *name = cJSON_GetStringValue(jget(e, "name"));
        long long hits = (long long)jnum(e, "hits"), live = live_hits(name);
        int reads_score = strcmp(name, "fr_high") == 0 || strcmp(name, "chal_high") == 0;
        ck_assert_msg(reads_score ? hits >= live && hits <= live + N_RULES_DEGRADED : hits == live,
                      "rule %s: %lld hits, live %lld", name, hits, live);
        *(strcmp(cJSON_GetStringValue(jget(e, "mode")), "shadow") ? &active : &shadow) += hits;
        some += hits > 0 && hits < n; /* the rule discriminates */
    }
    ck_assert_int_eq(cJSON_GetArraySize(jget(rep, "rules.by_rule")), 7);
    ck_assert_int_ge(some, 6);
    ck_assert_int_eq((long long)jnum(rep, "rules.active_hits"), active);
    ck_assert_int_eq((long long)jnum(rep, "rules.shadow_hits"), shadow);
    ck_assert(cJSON_IsNumber(jget(rep, "labelled.challenger_roc_auc")));
    /* every row probed the list live as the backtest did, and the list has not changed */
    ck_assert_int_eq((long long)jnum(rep, "rules.list_probes.recorded"), all);
    ck_assert_int_eq((long long)jnum(rep, "rules.list_probes.changed"), 0);
    /* the same policy as its version gives the same report */
    char vbody[300];
    snprintf(vbody, sizeof vbody, "{\"policy\":{\"version\":%lld},%s}", g_rules_version, WINDOW);
    cJSON *v = run_job(vbody);
    char *a = cJSON_PrintUnformatted(rep), *b = cJSON_PrintUnformatted(jget(v, "report"));
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    cJSON_Delete(v);
    char *params = malloc(8192);
    ck_assert_ptr_nonnull(params);
    snprintf(params, 8192,
             "{\"review_threshold\":0.3,\"block_threshold\":0.7,\"fallback_decision\":\"review\","
             "\"label_sources\":null,\"exponents\":{\"EUR\":2,\"JPY\":0},\"live_rules\":true,"
             "\"lists\":{\"bt_bad_merchants\":[\"m3\",\"m11\",\"m19\"]},\"rules\":%s}",
             LIVE_RULES_PY);
    btcheck(rep, g_v1, g_v2, params);
    free(params);
    cJSON_Delete(j);
}
END_TEST

START_TEST(new_rules_on_history_equal_an_independent_computation)
{
    list_items("POST", "[\"m5\"]");
    list_items("DELETE", "[\"m19\"]");
    char *body = malloc(8192), *params = malloc(8192);
    ck_assert_ptr_nonnull(body);
    ck_assert_ptr_nonnull(params);
    snprintf(body, 8192,
             "{\"name\":\"new rules\",\"policy\":{\"champion_model_id\":\"%s\","
             "\"challenger_model_id\":\"%s\",\"review_threshold\":0.2,\"block_threshold\":0.55,"
             "\"fallback_decision\":\"block\",\"rules\":%s},%s,\"filter\":{\"label_sources\":"
             "[\"chargeback\",\"refund\",\"analyst\"]}}",
             g_v2, g_v1, NEW_RULES, WINDOW);
    cJSON *j = run_job(body);
    const cJSON *rep = jget(j, "report");
    ck_assert_int_eq(cJSON_GetArraySize(jget(rep, "rules.by_rule")), 4);
    ck_assert_str_eq(cJSON_GetStringValue(jget(rep, "rules.list_membership")), "current");
    ck_assert_int_eq((long long)jnum(rep, "rules.list_versions.bt_bad_merchants"),
                     sql_count("SELECT version FROM lists WHERE name = 'bt_bad_merchants'"));
    /* membership is the list's current content: the rows of the merchants added and removed
     * since the live decisions probed it with another answer */
    ck_assert_int_eq((long long)jnum(rep, "rules.list_probes.recorded"),
                     sql_count("SELECT count(*) FROM transactions"));
    long long moved = sql_count("SELECT count(*) FROM transactions WHERE merchant_id IN "
                                "('m5', 'm19')");
    ck_assert_int_gt(moved, 0);
    ck_assert_int_eq((long long)jnum(rep, "rules.list_probes.changed"), moved);
    snprintf(params, 8192,
             "{\"review_threshold\":0.2,\"block_threshold\":0.55,\"fallback_decision\":\"block\","
             "\"label_sources\":[\"chargeback\",\"refund\",\"analyst\"],\"exponents\":{\"EUR\":2,"
             "\"JPY\":0},\"lists\":{\"bt_bad_merchants\":[\"m3\",\"m11\",\"m5\"]},\"rules\":%s}",
             NEW_RULES_PY);
    btcheck(rep, g_v2, g_v1, params);
    /* a rule that does not compile is refused when the job is created */
    snprintf(body, 8192,
             "{\"policy\":{\"champion_model_id\":\"%s\",\"review_threshold\":0.5,"
             "\"block_threshold\":0.9,\"rules\":[{\"name\":\"r\",\"action\":\"block\",\"when\":"
             "\"amout > 1\"}]},%s}",
             g_v1, WINDOW);
    h_resp r;
    e2e_req(&E, "POST", "/api/v1/backtests", body, &r);
    e2e_assert_problem(&r, 422, "rule_invalid", "rules[0].when");
    h_resp_free(&r);
    free(body);
    free(params);
    cJSON_Delete(j);
}
END_TEST

/* ---- jobs: restart, cancel, lists, validation ---------------------------------------------------
 */

/* The report without what differs run to run (none of it: the report holds no timings). */
/* Posts policy_json as job `name`, kills the API (SIGKILL) once the job has done two chunks of
 * its 600 rows, restarts it and checks the job resumed and ended with the report an
 * uninterrupted run of the same job gives.  Returns the resumed job's JSON (caller deletes it). */
static cJSON *crash_and_resume(const char *name, const char *policy_json)
{
    char body[2048], id[37], path[96], sql[160];
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"policy\":%s,%s}", name, policy_json, WINDOW);
    post_backtest(body, id);
    snprintf(path, sizeof path, "/api/v1/backtests/%s", id);
    /* 600 rows in chunks of 100, 250 ms apart: caught after its second chunk */
    long long done = 0;
    for (int tries = 0; tries < 600 && done < 200; tries++) {
        h_resp r;
        e2e_req(&E, "GET", path, NULL, &r);
        done = (long long)jnum(r.json, "progress.processed");
        h_resp_free(&r);
        if (done < 200)
            usleep(20000);
    }
    ck_assert_int_ge(done, 200);
    ck_assert_int_eq(h_api_stop(&E, SIGKILL), 128 + SIGKILL);
    snprintf(sql, sizeof sql, "SELECT processed FROM backtests WHERE id = '%s'", id);
    long long kept = sql_count(sql);
    ck_assert_int_ge(kept, 200);
    ck_assert_int_lt(kept, 600); /* it was stopped half-way */
    ck_assert_int_eq(h_api_start(&E), 0);
    cJSON *j = wait_job(id);
    ck_assert_str_eq(cJSON_GetStringValue(jget(j, "state")), "succeeded");
    char *log = h_read_file(&E, "api.log");
    ck_assert_ptr_nonnull(log);
    int resumed = 0; /* a backtest_resumed line of this job */
    for (const char *l = log; l && *l && !resumed; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        const char *end = strchr(l, '\n');
        size_t len = end ? (size_t)(end - l) : strlen(l);
        resumed = memmem(l, len, "\"backtest_resumed\"", 18) && memmem(l, len, id, 36);
    }
    ck_assert_msg(resumed, "no backtest_resumed line for job %s", id);
    free(log);
    /* the same job uninterrupted gives the same report */
    snprintf(body, sizeof body, "{\"name\":\"%s whole\",\"policy\":%s,%s}", name, policy_json,
             WINDOW);
    cJSON *w = run_job(body);
    char *a = cJSON_PrintUnformatted(jget(j, "report"));
    char *b = cJSON_PrintUnformatted(jget(w, "report"));
    ck_assert_str_eq(a, b);
    ck_assert_int_eq((long long)jnum(j, "report.rows"), 600);
    free(a);
    free(b);
    cJSON_Delete(w);
    return j;
}

START_TEST(job_resumes_after_a_crash_from_its_last_chunk)
{
    cJSON *j = crash_and_resume("crash", "\"recorded\"");
    ck_assert_int_eq((long long)jnum(j, "report.replay.same_score"), 600);
    cJSON_Delete(j);
}
END_TEST

/* The same with rules and a challenger: the rule figures of the chunks before the crash are kept
 * with the job and the rules prepared again on resume. */
START_TEST(job_with_rules_resumes_after_a_crash)
{
    char policy[1024];
    snprintf(policy, sizeof policy,
             "{\"champion_model_id\":\"%s\",\"challenger_model_id\":\"%s\",\"review_threshold\":"
             "0.3,\"block_threshold\":0.7,\"rules\":[{\"name\":\"jpy\",\"action\":\"block\","
             "\"when\":\"currency = \\\"JPY\\\" and challenger_score > 0.1\"},{\"name\":\"m3\","
             "\"action\":\"review\",\"mode\":\"shadow\",\"when\":\"merchant_id = \\\"m3\\\"\"}]}",
             g_v1, g_v2);
    cJSON *j = crash_and_resume("crash rules", policy);
    ck_assert_int_eq(cJSON_GetArraySize(jget(j, "report.rules.by_rule")), 2);
    ck_assert_int_gt((long long)jnum(j, "report.rules.active_hits"), 0);
    ck_assert_int_eq((long long)jnum(j, "report.rules.shadow_hits"),
                     sql_count("SELECT count(*) FROM transactions WHERE merchant_id = 'm3'"));
    ck_assert_int_eq((long long)jnum(j, "report.candidate.challenger_scored"), 600);
    cJSON_Delete(j);
}
END_TEST

/* A runner statement whose connection goes (here its backend is ended while it waits on a lock
 * a psql session holds; a statement past BT_QUERY_MS is abandoned the same way) fails the job
 * once, with the error recorded on a fresh connection: the job is not claimed again at once and
 * run from the start, as it was when the failure could only be written on the lost connection
 * (a deterministic overrun then ran forever).  Without that, this job would wait for the lock
 * again and succeed once it was released. */
START_TEST(job_whose_connection_is_lost_fails_once)
{
    char n[64], body[300], id[37], sql[300];
    pid_t locker = e2e_lock_table(&E, "transactions", 5, "locker-bt.log");
    snprintf(body, sizeof body, "{\"name\":\"lost\",\"policy\":\"recorded\",%s}", WINDOW);
    post_backtest(body, id);
    const char *waiter = "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                         "query ILIKE '%FROM transactions%' AND pid <> pg_backend_pid() LIMIT 1";
    n[0] = '\0';
    for (int i = 0; i < 300 && !n[0]; i++) {
        ck_assert_int_eq(h_psql(&E, NULL, waiter, n, sizeof n), 0);
        if (!n[0])
            usleep(10000);
    }
    ck_assert_msg(n[0], "the runner did not wait on the lock");
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%s)", n);
    ck_assert_int_eq(h_psql(&E, NULL, sql, n, sizeof n), 0);
    ck_assert_str_eq(n, "t");
    cJSON *j = wait_job(id);
    h_wait(locker, 10000);
    const char *err = cJSON_GetStringValue(jget(j, "error"));
    ck_assert_msg(strcmp(cJSON_GetStringValue(jget(j, "state")), "failed") == 0, "backtest %s: %s",
                  id, cJSON_GetStringValue(jget(j, "state")));
    ck_assert_msg(err && err[0], "no error recorded");
    cJSON_Delete(j);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM backtest_scores WHERE backtest_id = '%s'", id);
    ck_assert_int_eq(sql_count(sql), 0);
}
END_TEST

START_TEST(cancel_and_list)
{
    char body[300], id[37], path[96];
    snprintf(body, sizeof body, "{\"name\":\"to cancel\",\"policy\":\"active\",%s}", WINDOW);
    post_backtest(body, id);
    snprintf(path, sizeof path, "/api/v1/backtests/%s", id);
    h_resp r;
    e2e_req(&E, "DELETE", path, NULL, &r);
    ck_assert_msg(r.status == 200, "DELETE: %ld %s", r.status, r.body);
    ck_assert_str_eq(h_str(&r, "state"), "cancelled");
    h_resp_free(&r);
    e2e_req(&E, "DELETE", path, NULL, &r);
    e2e_assert_problem(&r, 409, "conflict", NULL);
    h_resp_free(&r);
    usleep(600000); /* a runner that had taken it stops at its next chunk, recording nothing */
    e2e_req(&E, "GET", path, NULL, &r);
    ck_assert_str_eq(h_str(&r, "state"), "cancelled");
    ck_assert(cJSON_IsNull(jget(r.json, "report")));
    h_resp_free(&r);
    e2e_req(&E, "DELETE", "/api/v1/backtests/00000000-0000-0000-0000-000000000000", NULL, &r);
    e2e_assert_problem(&r, 404, "not_found", NULL);
    h_resp_free(&r);
    /* newest first, one per page */
    e2e_req(&E, "GET", "/api/v1/backtests?limit=1", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(r.json, "data")), 1);
    ck_assert_str_eq(cJSON_GetStringValue(jget(cJSON_GetArrayItem(jget(r.json, "data"), 0), "id")),
                     id);
    const char *next = cJSON_GetStringValue(jget(r.json, "next_cursor"));
    ck_assert_ptr_nonnull(next);
    char p2[200];
    snprintf(p2, sizeof p2, "/api/v1/backtests?limit=1&cursor=%s", next);
    h_resp_free(&r);
    e2e_req(&E, "GET", p2, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_ne(cJSON_GetStringValue(jget(cJSON_GetArrayItem(jget(r.json, "data"), 0), "id")),
                     id);
    h_resp_free(&r);
    e2e_req(&E, "GET", "/api/v1/backtests?state=cancelled", NULL, &r);
    ck_assert_int_eq(cJSON_GetArraySize(jget(r.json, "data")), 1);
    h_resp_free(&r);
}
END_TEST

/* The jobs' advisory locks (btjob.c's BT_LOCK_CLASS) that psql sessions hold (a runner's own, on
 * the job it has just finished, is the API's until it lets go). */
#define PSQL_JOB_LOCKS                                                                             \
    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = " \
    "'advisory' AND l.classid = 723804197 AND l.granted AND a.application_name = 'psql'"

/* Runners of other replicas hold the 16 oldest runnable jobs (here a psql session holds their
 * advisory locks, as a runner does while it runs one): this replica's idle runner still finds
 * and runs the 17th.  A claim that looked at the 16 oldest only would wait for one of them to
 * finish, with a runner idle. */
START_TEST(claim_finds_a_job_past_the_ones_held_elsewhere)
{
    static const char *const no_runner[] = {"VIGIL_BACKTEST_CONCURRENCY=0", NULL};
    char body[300], ids[17][37], port[16], n[16] = "0", sql[200];
    ck_assert_int_eq(h_api_stop(&E, SIGTERM), 0);
    E.api_env = no_runner;
    ck_assert_int_eq(h_api_start(&E), 0);
    for (int i = 0; i < 17; i++) {
        snprintf(body, sizeof body, "{\"name\":\"held %d\",\"policy\":\"recorded\",%s}", i, WINDOW);
        post_backtest(body, ids[i]);
    }
    snprintf(port, sizeof port, "%d", E.pg_port);
    const char *argv[] = {"psql",
                          "-X",
                          "-q",
                          "-h",
                          E.pg_sock,
                          "-p",
                          port,
                          "-U",
                          "vigil",
                          "-d",
                          "vigil",
                          "-c",
                          "SELECT count(pg_advisory_lock(723804197, hashtext(id::text))) FROM "
                          "(SELECT id FROM backtests WHERE state = 'queued' ORDER BY created_at, "
                          "id LIMIT 16) s; SELECT pg_sleep(600);",
                          NULL};
    pid_t locker = h_spawn(&E, argv, NULL, "locker-claim.log");
    ck_assert_int_gt(locker, 0);
    await_count(PSQL_JOB_LOCKS, 16);
    ck_assert_int_eq(h_api_stop(&E, SIGTERM), 0);
    /* one runner, in a session whose timestamps print neither in ISO form nor in UTC (libpq
     * passes these variables to the server): the claim's position must not depend on them */
    static const char *const odd_session[] = {"PGTZ=Asia/Kolkata", "PGDATESTYLE=SQL, DMY",
                                              "VIGIL_BACKTEST_CHUNK_ROWS=100", NULL};
    E.api_env = odd_session;
    ck_assert_int_eq(h_api_start(&E), 0);
    cJSON *j = wait_job(ids[16]);
    ck_assert_str_eq(cJSON_GetStringValue(jget(j, "state")), "succeeded");
    ck_assert_int_eq((long long)jnum(j, "report.rows"), 600); /* chunks of 100: none skipped */
    cJSON_Delete(j);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM backtests WHERE state = 'queued' AND created_at < (SELECT "
             "created_at FROM backtests WHERE id = '%s')",
             ids[16]);
    ck_assert_int_eq(sql_count(sql), 16); /* the held ones were left alone */
    ck_assert_int_eq(sql_count(PSQL_JOB_LOCKS),
                     16); /* and are held still: wait_job gives up long before pg_sleep ends */
    ck_assert_int_eq(h_psql(&E, NULL,
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE "
                            "locktype = 'advisory' AND classid = 723804197",
                            n, sizeof n),
                     0);
    h_wait(locker, 10000);
    ck_assert_int_eq(h_api_stop(&E, SIGTERM), 0);
    E.api_env = NULL;
    ck_assert_int_eq(h_api_start(&E), 0);
    for (int i = 0; i < 16; i++) {
        char path[96];
        h_resp r;
        snprintf(path, sizeof path, "/api/v1/backtests/%s", ids[i]);
        e2e_req(&E, "DELETE", path, NULL, &r); /* 409: the runner finished it first */
        ck_assert_msg(r.status == 200 || r.status == 409, "DELETE: %ld %s", r.status, r.body);
        h_resp_free(&r);
    }
}
END_TEST

/* One POST that must be refused with status, code and field. */
static void refused(const char *body, long status, const char *code, const char *field)
{
    h_resp r;
    e2e_req(&E, "POST", "/api/v1/backtests", body, &r);
    e2e_assert_problem(&r, status, code, field);
    h_resp_free(&r);
}

START_TEST(validation)
{
    char body[600];
    refused("{\"policy\":\"active\",\"from\":\"2026-01-01T00:00:00Z\"}", 400, "validation_failed",
            "to");
    refused(
        "{\"policy\":\"best\",\"from\":\"2026-01-01T00:00:00Z\",\"to\":\"2026-02-01T00:00:00Z\"}",
        400, "validation_failed", "policy");
    refused(
        "{\"policy\":\"active\",\"from\":\"2026-02-01T00:00:00Z\",\"to\":\"2026-01-01T00:00:00Z\"}",
        400, "validation_failed", "to");
    refused(
        "{\"policy\":\"active\",\"from\":\"2026-01-01T00:00:00Z\",\"to\":\"2026-02-01T00:00:00Z\","
        "\"speed\":1}",
        400, "unknown_field", "speed");
    refused(
        "{\"policy\":\"active\",\"from\":\"2026-01-01T00:00:00Z\",\"to\":\"2026-02-01T00:00:00Z\","
        "\"filter\":{\"label_sources\":[\"rumour\"]}}",
        400, "validation_failed", "filter.label_sources");
    refused(
        "{\"policy\":\"active\",\"from\":\"2026-01-01T00:00:00Z\",\"to\":\"2026-02-01T00:00:00Z\","
        "\"filter\":{\"decision\":\"maybe\"}}",
        400, "validation_failed", "filter.decision");
    snprintf(body, sizeof body,
             "{\"policy\":{\"champion_model_id\":\"%s\",\"review_threshold\":0.5,"
             "\"block_threshold\":0.9,\"rules\":5},\"from\":\"2026-01-01T00:00:00Z\",\"to\":"
             "\"2026-02-01T00:00:00Z\"}",
             g_v1);
    refused(body, 400, "validation_failed", "policy");
    snprintf(body, sizeof body,
             "{\"policy\":{\"champion_model_id\":\"%s\",\"review_threshold\":0.5,"
             "\"block_threshold\":0.9,\"rules\":[{\"name\":\"r\",\"action\":\"hold\","
             "\"when\":\"amount > 1\"}]},\"from\":\"2026-01-01T00:00:00Z\",\"to\":"
             "\"2026-02-01T00:00:00Z\"}",
             g_v1);
    refused(body, 400, "validation_failed", "rules[0].action");
    snprintf(body, sizeof body,
             "{\"policy\":{\"champion_model_id\":\"%s\",\"review_threshold\":0.5,"
             "\"block_threshold\":0.9,\"rules\":[{\"name\":\"r\",\"action\":\"block\","
             "\"when\":\"merchant_id in @no_such_list\"}]},\"from\":\"2026-01-01T00:00:00Z\","
             "\"to\":\"2026-02-01T00:00:00Z\"}",
             g_v1);
    refused(body, 422, "rule_invalid", "rules[0].when");
    snprintf(body, sizeof body,
             "{\"policy\":{\"champion_model_id\":\"%s\",\"review_threshold\":0.5,"
             "\"block_threshold\":0.9},\"from\":\"2026-01-01T00:00:00Z\",\"to\":"
             "\"2026-02-01T00:00:00Z\"}",
             "00000000-0000-0000-0000-000000000000");
    refused(body, 422, "unknown_model", "policy");
    h_resp r;
    e2e_req(&E, "POST", "/api/v1/backtests",
            "{\"policy\":{\"version\":999},\"from\":\"2026-01-01T00:00:00Z\",\"to\":"
            "\"2026-02-01T00:00:00Z\"}",
            &r);
    ck_assert_int_eq(r.status, 422); /* no such version, or (before issue 12) no versions kept */
    const char *code = h_str(&r, "code");
    ck_assert(strcmp(code, "unknown_policy_version") == 0 ||
              strcmp(code, "policy_versions_unavailable") == 0);
    h_resp_free(&r);
    char key[128];
    ck_assert_int_eq(h_create_key(&E, "read,write", key, sizeof key), 0);
    ck_assert_int_eq(h_http(&E, "POST", "/api/v1/backtests", key, "application/json",
                            "{\"policy\":\"active\"}", 19, NULL, &r),
                     0);
    e2e_assert_problem(&r, 403, "forbidden", NULL);
    h_resp_free(&r);
}
END_TEST

static Suite *backtest_suite(void)
{
    Suite *s = suite_create("backtest");
    TCase *h = tcase_create("history");
    tcase_set_timeout(h, 600);
    tcase_add_unchecked_fixture(h, up_history, env_down);
    tcase_add_test(h, replay_reproduces_every_stored_score);
    tcase_add_test(h, active_policy_reproduces_its_own_history);
    tcase_add_test(h, report_equals_an_independent_computation);
    tcase_add_test(h, rules_on_history_decided_without_rules);
    tcase_add_test(h, export_streams_every_row_as_get_answers_it);
    tcase_add_test(h, exports_at_once_are_bounded);
    tcase_add_test(h, label_sources_of_payments_teams);
    suite_add_tcase(s, h);
    TCase *ru = tcase_create("rules");
    tcase_set_timeout(ru, 600);
    tcase_add_unchecked_fixture(ru, up_rules, env_down);
    tcase_add_test(ru, rules_reproduce_the_live_decisions);
    tcase_add_test(ru, new_rules_on_history_equal_an_independent_computation);
    suite_add_tcase(s, ru);
    TCase *j = tcase_create("jobs");
    tcase_set_timeout(j, 300);
    tcase_add_unchecked_fixture(j, up_jobs, env_down);
    tcase_add_test(j, job_resumes_after_a_crash_from_its_last_chunk);
    tcase_add_test(j, job_with_rules_resumes_after_a_crash);
    tcase_add_test(j, job_whose_connection_is_lost_fails_once);
    tcase_add_test(j, cancel_and_list);
    tcase_add_test(j, validation);
    tcase_add_test(j, claim_finds_a_job_past_the_ones_held_elsewhere);
    suite_add_tcase(s, j);
    return s;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    SRunner *sr = srunner_create(backtest_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
