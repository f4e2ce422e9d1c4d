/* e2e_harden_limits.c - end-to-end tests of issue 9's limits and deadlines, against a real
 * PostgreSQL, vigil-hotpath and vigil-api:
 *   - PostgreSQL frozen with SIGSTOP (postmaster and every backend): a request answers 503 with
 *     Retry-After within its deadline (VIGIL_REQUEST_TIMEOUT_MS=2000, answer in < 3 s), /ready
 *     says the database timed out and the worker is up, and after SIGCONT everything works again
 *     without a restart (items 5, 10);
 *   - with a 1 MiB worker frame on both sides: predict rows x features and rows x outputs are
 *     bounded by the frame (N rows answered, N+1 a 413 naming VIGIL_HOTPATH_MAX_FRAME_MB, the
 *     N computed here from the frame layout of common/wire.h), 100,000 "{}" rows against a
 *     4096-feature model cost the API no memory to speak of (items 3, 11); a model whose compiled
 *     form cannot fit a frame or the worker's arena is refused at upload and by the policy, and a
 *     model the worker refuses as too large is offered to it once, not on every request (item 4);
 *   - a DATABASE_URL host name is resolved within the connect deadline (item 5);
 *   - in-process mode: concurrent first predicts of one model cache it once (item 15).
 * The models are written here as xgboost JSON (the format's own field names, hand-built trees).
 * Each TCase has its own environment (unchecked fixture, CK_NOFORK). */
#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "db.h"
#include "assert.h"
#include "harness.h"

static h_env E;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- xgboost JSON writer -------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (b->p && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
}

/* One complete tree of the given depth (2^(depth+1)-1 nodes) splitting on feature (node % nfeat)
 * at 0.5, leaves worth (node index) / 1000.  depth 0 is a single leaf. */
static void put_tree(sbuf *b, int id, int depth, unsigned nfeat)
{
    unsigned nn = (2u << depth) - 1, inner = (1u << depth) - 1;
    static const char *const arrays[] = {
        "left_children", "right_children", "parents",      "split_indices", "split_conditions",
        "default_left",  "split_type",     "base_weights", "loss_changes",  "sum_hessian"};
    put(b,
        "{\"id\":%d,\"categories\":[],\"categories_nodes\":[],\"categories_segments\":[],"
        "\"categories_sizes\":[],\"tree_param\":{\"num_deleted\":\"0\",\"num_feature\":\"%u\","
        "\"num_nodes\":\"%u\",\"size_leaf_vector\":\"0\"}",
        id, nfeat, nn);
    for (size_t a = 0; a < sizeof arrays / sizeof *arrays; a++) {
        put(b, ",\"%s\":[", arrays[a]);
        for (unsigned i = 0; i < nn; i++) {
            int leaf = i >= inner;
            const char *sep = i ? "," : "";
            switch (a) {
            case 0:
                put(b, "%s%d", sep, leaf ? -1 : (int)(2 * i + 1));
                break;
            case 1:
                put(b, "%s%d", sep, leaf ? -1 : (int)(2 * i + 2));
                break;
            case 2:
                put(b, "%s%u", sep, i ? (i - 1) / 2 : 2147483647u);
                break;
            case 3:
                put(b, "%s%u", sep, leaf ? 0 : i % nfeat);
                break;
            case 4:
                put(b, "%s%g", sep, leaf ? i / 1000.0 : 0.5);
                break;
            case 5:
                put(b, "%s1", sep);
                break;
            case 6:
                put(b, "%s0", sep);
                break;
            default:
                put(b, "%s%g", sep, leaf ? i / 1000.0 : 1.0);
                break;
            }
        }
        put(b, "]");
    }
    put(b, "}");
}

/* A gbtree model: ntrees trees of depth, nfeat features with names f0..; num_class > 1 makes it
 * multi:softprob with tree t in class t % num_class, else binary:logistic. */
static char *model_json(unsigned nfeat, unsigned num_class, unsigned ntrees, int depth, size_t *len)
{
    sbuf b = {0};
    put(&b, "{\"version\":[1,7,4],\"learner\":{\"attributes\":{},\"feature_names\":[");
    for (unsigned f = 0; f < nfeat; f++)
        put(&b, "%s\"f%u\"", f ? "," : "", f);
    put(&b, "],\"feature_types\":[");
    for (unsigned f = 0; f < nfeat; f++)
        put(&b, "%s\"float\"", f ? "," : "");
    put(&b,
        "],\"learner_model_param\":{\"base_score\":\"5E-1\",\"boost_from_average\":\"1\","
        "\"num_class\":\"%u\",\"num_feature\":\"%u\",\"num_target\":\"1\"},",
        num_class > 1 ? num_class : 0, nfeat);
    if (num_class > 1)
        put(&b,
            "\"objective\":{\"name\":\"multi:softprob\",\"softmax_multiclass_param\":"
            "{\"num_class\":\"%u\"}},",
            num_class);
    else
        put(&b, "\"objective\":{\"name\":\"binary:logistic\",\"reg_loss_param\":"
                "{\"scale_pos_weight\":\"1\"}},");
    put(&b,
        "\"gradient_booster\":{\"name\":\"gbtree\",\"model\":{\"gbtree_model_param\":"
        "{\"num_parallel_tree\":\"1\",\"num_trees\":\"%u\",\"size_leaf_vector\":\"0\"},"
        "\"tree_info\":[",
        ntrees);
    for (unsigned t = 0; t < ntrees; t++)
        put(&b, "%s%u", t ? "," : "", num_class > 1 ? t % num_class : 0);
    put(&b, "],\"trees\":[");
    for (unsigned t = 0; t < ntrees; t++) {
        if (t)
            put(&b, ",");
        put_tree(&b, (int)t, depth, nfeat);
    }
    put(&b, "]}}}}");
    *len = b.len;
    return b.p;
}

/* Uploads a model; returns the HTTP status and copies the id (on 201) into id[37]. */
static long upload(const char *name, const char *json, size_t len, char id[37], h_resp *keep)
{
    char path[128];
    h_resp r;
    snprintf(path, sizeof path, "/api/v1/models?name=%s", name);
    e2e_req_raw(&E, "POST", path, "application/json", json, len, &r);
    long st = r.status;
    if (st == 201)
        snprintf(id, 37, "%s", h_str(&r, "id"));
    if (keep)
        *keep = r;
    else
        h_resp_free(&r);
    return st;
}

static long upload_model(const char *name, unsigned nfeat, unsigned ncls, unsigned ntrees,
                         int depth, char id[37], h_resp *keep)
{
    size_t len;
    char *json = model_json(nfeat, ncls, ntrees, depth, &len);
    long st = upload(name, json, len, id, keep);
    free(json);
    return st;
}

/* POST predict with nrows rows of the given text each ("{}" or "[0.1,...]"). */
static void predict(const char *id, const char *row, unsigned nrows, h_resp *r)
{
    sbuf b = {0};
    put(&b, "{\"rows\":[");
    for (unsigned i = 0; i < nrows; i++)
        put(&b, "%s%s", i ? "," : "", row);
    put(&b, "]}");
    char path[128];
    snprintf(path, sizeof path, "/api/v1/models/%s/predict", id);
    e2e_req_raw(&E, "POST", path, "application/json", b.p, b.len, r);
    free(b.p);
}

/* A complete problem (e2e_assert_problem) whose detail names needle, e.g. the limit to raise. */
static void assert_problem_names(const h_resp *r, long status, const char *code, const char *field,
                                 const char *needle)
{
    e2e_assert_problem(r, status, code, field);
    const char *detail = h_str(r, "detail");
    ck_assert_msg(strstr(detail, needle) != NULL, "detail lacks '%s': %.400s", needle, r->body);
}

/* A value of /proc/PID/status ("VmHWM") in kB. */
static long proc_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = atol(line + n + 1);
    if (f)
        fclose(f);
    return v;
}

/* The worker's STATS value name from /metrics (vigil_hotpath_NAME), or -1. */
static long long metric(const char *name)
{
    h_resp r;
    ck_assert_int_eq(h_http(&E, "GET", "/metrics", NULL, NULL, NULL, 0, NULL, &r), 0);
    char pat[128];
    snprintf(pat, sizeof pat, "\n%s ", name);
    const char *p = strstr(r.body, pat);
    long long v = p ? atoll(p + strlen(pat)) : -1;
    h_resp_free(&r);
    return v;
}

/* ---- PostgreSQL frozen ------------------------------------------------------------------------
 */

static pid_t pg_pids[256];
static int n_pg_pids;

/* SIGSTOPs (sig) the postmaster and every process whose parent it is. */
static void pg_signal_all(int sig)
{
    if (sig == SIGSTOP) {
        char path[400], line[64];
        snprintf(path, sizeof path, "%s/postmaster.pid", E.pg_data);
        FILE *f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
        fclose(f);
        pid_t pm = (pid_t)atol(line);
        n_pg_pids = 0;
        pg_pids[n_pg_pids++] = pm;
        DIR *d = opendir("/proc");
        struct dirent *de;
        while (d && (de = readdir(d)) && n_pg_pids < 256) {
            pid_t pid = (pid_t)atol(de->d_name);
            char st[400], buf[512];
            if (pid <= 0)
                continue;
            snprintf(st, sizeof st, "/proc/%d/stat", (int)pid);
            FILE *s = fopen(st, "r");
            if (!s)
                continue;
            size_t n = fread(buf, 1, sizeof buf - 1, s);
            fclose(s);
            buf[n] = '\0';
            const char *rp = strrchr(buf, ')');
            int ppid = 0;
            if (rp && sscanf(rp + 2, "%*c %d", &ppid) == 1 && ppid == pm)
                pg_pids[n_pg_pids++] = pid;
        }
        if (d)
            closedir(d);
    }
    for (int i = 0; i < n_pg_pids; i++)
        kill(pg_pids[i], sig);
    if (sig == SIGCONT)
        n_pg_pids = 0;
}

static const char *const frozen_api_env[] = {"VIGIL_REQUEST_TIMEOUT_MS=2000", NULL};

static void frozen_up(void)
{
    e2e_env_up(&E, frozen_api_env);
}

static void frozen_down(void)
{
    if (n_pg_pids)
        pg_signal_all(SIGCONT); /* a failed test must not leave PostgreSQL stopped */
    e2e_env_down(&E);
}

/* GET path; asserts 503 + Retry-After within 3 s (deadline 2 s). */
static void assert_503_in_time(const char *path)
{
    h_resp r;
    char ra[16];
    double t0 = now_s();
    e2e_req(&E, "GET", path, NULL, &r);
    double dt = now_s() - t0;
    e2e_assert_problem(&r, 503, "unavailable", NULL);
    ck_assert_msg(h_header(&r, "Retry-After", ra, sizeof ra) != NULL, "503 without Retry-After");
    ck_assert_msg(dt < 3.0, "GET %s took %.2f s with a 2 s deadline", path, dt);
    h_resp_free(&r);
}

START_TEST(frozen_postgres_answers_503_within_deadline)
{
    h_resp r;
    e2e_req(&E, "GET", "/api/v1/models", NULL, &r);
    ck_assert_int_eq(r.status, 200); /* a pooled connection is open now */
    h_resp_free(&r);
    pg_signal_all(SIGSTOP);
    assert_503_in_time("/api/v1/models"); /* the query overruns: cancelled, connection dropped */
    assert_503_in_time("/api/v1/models"); /* the reconnect overruns */
    assert_503_in_time("/api/v1/policy");
    pg_signal_all(SIGCONT);
    double t0 = now_s();
    long st = 0;
    while (now_s() - t0 < 15 && st != 200) {
        e2e_req(&E, "GET", "/api/v1/models", NULL, &r);
        st = r.status;
        h_resp_free(&r);
        if (st != 200)
            usleep(200 * 1000);
    }
    ck_assert_msg(st == 200, "no recovery after SIGCONT (last status %ld)", st);
    char id[37];
    ck_assert_int_eq(upload_model("after-thaw", 2, 1, 1, 1, id, NULL), 201);
    predict(id, "[0.1,0.9]", 2, &r);
    ck_assert_msg(r.status == 200, "predict after thaw: %ld %s", r.status, r.body);
    h_resp_free(&r);
}
END_TEST

START_TEST(ready_gives_each_dependency_its_budget)
{
    h_resp r;
    pg_signal_all(SIGSTOP);
    double t0 = now_s();
    ck_assert_int_eq(h_http(&E, "GET", "/ready", NULL, NULL, NULL, 0, NULL, &r), 0);
    double dt = now_s() - t0;
    pg_signal_all(SIGCONT);
    ck_assert_msg(r.status == 503, "/ready with PostgreSQL frozen: %ld %s", r.status, r.body);
    ck_assert_str_eq(h_str(&r, "database"), "timeout");
    ck_assert_msg(strcmp(h_str(&r, "hotpath"), "up") == 0,
                  "a slow database made the worker "
                  "look %s: %s",
                  h_str(&r, "hotpath"), r.body);
    ck_assert_msg(dt < 2.5, "/ready took %.2f s", dt);
    h_resp_free(&r);
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(h_http(&E, "GET", "/ready", NULL, NULL, NULL, 0, NULL, &r), 0);
        long st = r.status;
        h_resp_free(&r);
        if (st == 200)
            return;
        usleep(200 * 1000);
    }
    ck_abort_msg("/ready did not recover after SIGCONT");
}
END_TEST

/* The host name of DATABASE_URL is looked up on a helper thread and passed on as hostaddr: a
 * real name connects, and a lookup that cannot finish never holds a connect past its deadline. */
START_TEST(host_name_lookup_bounded)
{
    char url[256], err[128];
    snprintf(url, sizeof url, "postgresql://vigil@localhost:%d/vigil", E.pg_port);
    db_pool *p = db_pool_create(url, 1, 2000, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(db_ping(p, clock_now_ms() + 5000), DB_OK);
    db_pool_destroy(p);
    /* .invalid never resolves (RFC 6761); without a resolver the lookup may hang instead. */
    p = db_pool_create("postgresql://vigil@vigil-db.invalid:5432/vigil", 1, 2000, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    double t0 = now_s();
    ck_assert_int_ne(db_ping(p, clock_now_ms() + 1000), DB_OK);
    ck_assert_msg(now_s() - t0 < 1.5, "lookup held the connect %.2f s", now_s() - t0);
    db_pool_destroy(p);
}
END_TEST

/* ---- limits: a 1 MiB worker frame ------------------------------------------------------------
 */

#define FRAME (1u << 20)
static const char *const small_frame_env[] = {"VIGIL_HOTPATH_MAX_FRAME_MB=1", NULL};

static void limits_up(void)
{
    e2e_env_up_hp(&E, small_frame_env, small_frame_env);
}

static void limits_down(void)
{
    e2e_env_down(&E);
}

START_TEST(predict_rows_times_features_bounded)
{
    char id[37];
    ck_assert_int_eq(upload_model("wide", 4096, 1, 1, 2, id, NULL), 201);
    /* SCORE payload: u32 nsections + key[48] + 3 x u32 + rows x 4096 x 4 <= FRAME (wire.h). */
    unsigned n = (FRAME - 4 - 48 - 12) / (4096 * 4);
    h_resp r;
    predict(id, "{}", n, &r);
    ck_assert_msg(r.status == 200, "%u rows: %ld %.300s", n, r.status, r.body);
    h_resp_free(&r);
    predict(id, "{}", n + 1, &r);
    assert_problem_names(&r, 413, "too_many_rows", "rows", "VIGIL_HOTPATH_MAX_FRAME_MB");
    h_resp_free(&r);
    /* The probe's body: 100,000 empty rows (300 KB) would have been 1.6 GB of floats. */
    long before = proc_kb(E.api_pid, "VmHWM");
    predict(id, "{}", 100000, &r);
    long after = proc_kb(E.api_pid, "VmHWM");
    assert_problem_names(&r, 413, "too_many_rows", "rows", "VIGIL_HOTPATH_MAX_FRAME_MB");
    h_resp_free(&r);
    ck_assert_msg(after - before < 32 * 1024, "API peak RSS grew %ld kB", after - before);
}
END_TEST

START_TEST(predict_answer_fits_one_frame)
{
    char id[37];
    /* 4096 classes, one depth-0 tree each: softprob answers 4096 floats per row. */
    ck_assert_int_eq(upload_model("many-classes", 2, 4096, 4096, 0, id, NULL), 201);
    /* SCORE answer: u32 nsections + u32 nrows + u32 nout + rows x 4096 x 4 <= FRAME. */
    unsigned n = (FRAME - 12) / (4096 * 4);
    h_resp r;
    predict(id, "[0.1,0.9]", n, &r);
    ck_assert_msg(r.status == 200, "%u rows: %ld %.300s", n, r.status, r.body);
    h_resp_free(&r);
    long loads = metric("vigil_hotpath_model_loads");
    predict(id, "[0.1,0.9]", n + 1, &r);
    assert_problem_names(&r, 413, "too_many_rows", "rows", "VIGIL_HOTPATH_MAX_FRAME_MB");
    h_resp_free(&r);
    predict(id, "[0.1,0.9]", 20000, &r); /* the probe's 20,000 rows x 4096 classes */
    assert_problem_names(&r, 413, "too_many_rows", "rows", "outputs");
    h_resp_free(&r);
    ck_assert_int_eq(metric("vigil_hotpath_model_loads"), loads); /* refused before scoring */
}
END_TEST

START_TEST(upload_refuses_model_larger_than_a_frame)
{
    char id[37];
    h_resp r;
    /* 128 depth-10 trees: 262,016 nodes of 16 compiled bytes, about 4 MiB > 1 MiB frame. */
    ck_assert_int_eq(upload_model("huge", 8, 1, 128, 10, id, &r), 422);
    assert_problem_names(&r, 422, "model_too_large", NULL, "VIGIL_HOTPATH_MAX_FRAME_MB");
    h_resp_free(&r);
    /* One that fits (8 trees: about 256 KiB) is accepted and scores. */
    ck_assert_int_eq(upload_model("fits", 8, 1, 8, 10, id, NULL), 201);
    predict(id, "[0,0,0,0,0,0,0,0]", 1, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    h_resp_free(&r);
}
END_TEST

/* An 8 MiB frame on both sides, then the worker restarted with a 1 MiB arena: a model uploaded
 * while the worker had its default arena no longer fits.  It is offered to the worker once; later
 * predicts answer 422 at once; the policy refuses it, and so does a new upload (STATS). */
static const char *const big_frame_env[] = {"VIGIL_HOTPATH_MAX_FRAME_MB=8", NULL};
static const char *const tiny_arena_env[] = {"VIGIL_HOTPATH_MAX_FRAME_MB=8",
                                             "VIGIL_HOTPATH_MEMORY_MB=1", NULL};

static void arena_up(void)
{
    e2e_env_up_hp(&E, big_frame_env, big_frame_env);
}

START_TEST(refused_model_not_retried_and_policy_refuses_it)
{
    char id[37], id2[37];
    h_resp r;
    /* 40 complete depth-12 trees: 327,640 nodes, about 5 MiB compiled (< 8 MiB frame) and about
     * 2 MiB in the worker's layout (> 1 MiB arena). */
    size_t len;
    char *json = model_json(8, 1, 40, 12, &len);
    ck_assert_int_eq(upload("arena-buster", json, len, id, NULL), 201);
    h_hp_stop(&E, SIGTERM);
    E.hp_env = tiny_arena_env;
    ck_assert_int_eq(h_hp_start(&E), 0);
    for (int i = 0; i < 3; i++) {
        predict(id, "[0,0,0,0,0,0,0,0]", 1, &r);
        assert_problem_names(&r, 422, "model_too_large", NULL, "VIGIL_HOTPATH_MEMORY_MB");
        h_resp_free(&r);
    }
    ck_assert_int_eq(metric("vigil_hotpath_model_loads_refused"), 1); /* offered once */
    char body[200];
    snprintf(body, sizeof body,
             "{\"champion_model_id\":\"%s\",\"challenger_model_id\":null,"
             "\"review_threshold\":0.5,\"block_threshold\":0.9,\"fallback_decision\":\"review\"}",
             id);
    e2e_req(&E, "PUT", "/api/v1/policy", body, &r);
    assert_problem_names(&r, 422, "model_too_large", "champion_model_id",
                         "VIGIL_HOTPATH_MEMORY_MB");
    h_resp_free(&r);
    ck_assert_int_eq(upload("arena-buster-2", json, len, id2, &r), 422);
    assert_problem_names(&r, 422, "model_too_large", NULL, "VIGIL_HOTPATH_MEMORY_MB");
    h_resp_free(&r);
    free(json);
}
END_TEST

/* ---- in-process: one cache entry per model -------------------------------------------------- */

static const char *const inprocess_env[] = {"VIGIL_HOTPATH_MODE=inprocess", NULL};

static void inprocess_up(void)
{
    e2e_env_up(&E, inprocess_env);
}

static char race_id[37];

static void *race_predict(void *arg)
{
    h_resp *r = arg;
    char path[128];
    static const char body[] = "{\"rows\":[[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8]]}";
    snprintf(path, sizeof path, "/api/v1/models/%s/predict", race_id);
    if (h_http(&E, "POST", path, E.key, "application/json", body, sizeof body - 1, NULL, r) != 0)
        r->status = -1;
    return NULL;
}

START_TEST(concurrent_misses_cache_a_model_once)
{
    enum { N = 8 };
    /* Large enough (about 2 MiB compiled) that fetching it from PostgreSQL takes a while. */
    ck_assert_int_eq(upload_model("raced", 8, 1, 64, 10, race_id, NULL), 201);
    long long before = metric("vigil_model_cache_models");
    pthread_t t[N];
    h_resp r[N];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, race_predict, &r[i]), 0);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ck_assert_msg(r[i].status == 200, "predict %d: %ld", i, r[i].status);
        h_resp_free(&r[i]);
    }
    ck_assert_int_eq(metric("vigil_model_cache_models"), before + 1);
}
END_TEST

static Suite *limits_suite(void)
{
    Suite *s = suite_create("e2e_harden_limits");
    TCase *tc = tcase_create("frozen_postgres");
    tcase_add_unchecked_fixture(tc, frozen_up, frozen_down);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, ready_gives_each_dependency_its_budget);
    tcase_add_test(tc, frozen_postgres_answers_503_within_deadline);
    tcase_add_test(tc, host_name_lookup_bounded);
    suite_add_tcase(s, tc);

    tc = tcase_create("frame_limits");
    tcase_add_unchecked_fixture(tc, limits_up, limits_down);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, predict_rows_times_features_bounded);
    tcase_add_test(tc, predict_answer_fits_one_frame);
    tcase_add_test(tc, upload_refuses_model_larger_than_a_frame);
    suite_add_tcase(s, tc);

    tc = tcase_create("arena_limits");
    tcase_add_unchecked_fixture(tc, arena_up, limits_down);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, refused_model_not_retried_and_policy_refuses_it);
    suite_add_tcase(s, tc);

    tc = tcase_create("inprocess_cache");
    tcase_add_unchecked_fixture(tc, inprocess_up, limits_down);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, concurrent_misses_cache_a_model_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(limits_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
