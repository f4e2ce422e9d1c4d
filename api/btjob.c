/* btjob.c - the backtest runner.  See btjob.h for the job's life; backtests.h for the resource.
 *
 * One job = one struct bt_job on the stack of the thread running it: the resolved candidate,
 * the models it scores with (one for a candidate, the recorded ones for a replay), the keyset
 * position and the aggregates.  Every statement on the backtests tables made by the runner is in
 * this file; the handlers' are in backtests.c. */
#include "btjob.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "btreport.h"
#include "btrows.h"
#include "clock.h"
#include "db.h"
#include "dynbuf.h"
#include "logline.h"
#include "scoring.h"
#include "wire.h"

#define BT_QUERY_MS 120000        /* bound of one runner statement */
#define BT_LOCK_CLASS "723804197" /* pg_advisory_lock(class, hashtext(id)) of a running job */
#define BT_MAX_MODELS 64          /* distinct models one replay job keeps */
#define BT_RETRY_MS 500           /* wait before retrying a chunk the worker could not score */
#define BT_RETRIES 120            /* ... that many times in a row (a minute) before failing */

struct btjob_runner {
    const app *a;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping; /* guarded by mu */
    int nthreads;
    pthread_t threads[16];
};

typedef struct bt_model {
    scoring_model m;
    btrows_map map;
    int ok; /* metadata read (0: the model is gone, its rows are the candidate's fallback) */
} bt_model;

typedef struct bt_job {
    btjob_runner *run;
    db_conn *c;
    char id[37];
    int recorded; /* replay: each row scored by the model and thresholds it was decided with */
    double review, block;
    int fallback;      /* enum btreport_decision */
    char champion[37]; /* candidate mode */
    cJSON *filter;     /* {"decision", "labelled_only", "user_id", "label_sources"} */
    char from[64], to[64], snap[64];
    char cur_at[64], cur_id[37]; /* keyset position, "" before the first chunk */
    long long total, processed;
    double run_base_s; /* run_seconds before this run */
    int64_t run_start_us;
    bt_model model[BT_MAX_MODELS];
    int nmodels;
    int unavailable; /* chunks in a row the worker could not score */
    btreport *rep;
    char err[512];
} bt_job;

static int64_t dl(void)
{
    return clock_now_ms() + BT_QUERY_MS;
}

static int stopping(btjob_runner *r)
{
    pthread_mutex_lock(&r->mu);
    int s = r->stopping;
    pthread_mutex_unlock(&r->mu);
    return s;
}

static int decision_of(const char *s)
{
    return strcmp(s, "block") == 0 ? BT_BLOCK : strcmp(s, "review") == 0 ? BT_REVIEW : BT_ALLOW;
}

static const char *filter_str(const bt_job *j, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->filter, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- models ---------------------------------------------------------------------------------- */

/* The job's model with this id, read (metadata + feature map) on first use; NULL when it cannot
 * be read (deleted: its rows fall back) or the job already holds BT_MAX_MODELS. */
static bt_model *job_model(bt_job *j, const char *id)
{
    for (int i = 0; i < j->nmodels; i++)
        if (strcmp(j->model[i].m.id, id) == 0)
            return j->model[i].ok ? &j->model[i] : NULL;
    if (j->nmodels == BT_MAX_MODELS)
        return NULL;
    bt_model *bm = &j->model[j->nmodels++];
    memset(bm, 0, sizeof *bm);
    snprintf(bm->m.id, sizeof bm->m.id, "%s", id);
    int dbrc = DB_OK;
    if (scoring_meta(j->c, id, dl(), &bm->m, &dbrc) != SC_OK)
        return NULL;
    if (btrows_map_init(&bm->map, &bm->m) != 0) {
        scoring_model_free(&bm->m);
        return NULL;
    }
    bm->ok = 1;
    return bm;
}

static void job_models_free(bt_job *j)
{
    for (int i = 0; i < j->nmodels; i++) {
        if (!j->model[i].ok)
            continue;
        btrows_map_free(&j->model[i].map);
        scoring_model_free(&j->model[i].m);
    }
    j->nmodels = 0;
}

/* Folds every model's missing-feature counts into the report (then zeroes them). */
static int job_fold_missing(bt_job *j)
{
    for (int i = 0; i < j->nmodels; i++) {
        bt_model *bm = &j->model[i];
        for (uint32_t f = 0; bm->ok && f < bm->map.nfeat; f++) {
            if (!bm->map.missing[f])
                continue;
            const char *name = f < bm->m.n_names ? bm->m.names[f] : "";
            if (btreport_missing(j->rep, name, bm->map.missing[f]))
                return -1;
            bm->map.missing[f] = 0;
        }
    }
    return 0;
}

/* ---- one chunk ------------------------------------------------------------------------------- */

/* Columns of the chunk query, in order. */
enum {
    K_ID,
    K_AT,
    K_FEATURES,
    K_SCORE,
    K_DECISION,
    K_DEGRADED,
    K_LABEL,
    K_SOURCE,
    K_AMOUNT,
    K_CURRENCY,
    K_MODEL,
    K_REVIEW,
    K_BLOCK,
    K_FALLBACK
};

#define BT_WHERE                                                                                   \
    "t.occurred_at >= $1::timestamptz AND t.occurred_at < $2::timestamptz "                        \
    "AND t.created_at <= $3::timestamptz "                                                         \
    "AND ($4::text IS NULL OR t.decision = $4) "                                                   \
    "AND ($5::boolean IS NOT TRUE OR t.label IS NOT NULL) "                                        \
    "AND ($6::uuid IS NULL OR t.user_id = $6::uuid) "

static const char chunk_sql[] =
    "SELECT t.id, t.occurred_at::text, t.features::text, t.score, t.decision, t.degraded, "
    "t.label, t.label_source, t.amount, t.currency, t.model_id, t.review_threshold, "
    "t.block_threshold, t.fallback_decision FROM transactions t WHERE " BT_WHERE
    "AND ($7::timestamptz IS NULL OR (t.occurred_at, t.id) > ($7::timestamptz, $8::uuid)) "
    "ORDER BY t.occurred_at, t.id LIMIT $9";

/* The filter parameters $1..$6 shared by the chunk and count queries. */
static void where_params(const bt_job *j, const char **v)
{
    const cJSON *lo = cJSON_GetObjectItemCaseSensitive(j->filter, "labelled_only");
    v[0] = j->from, v[1] = j->to, v[2] = j->snap;
    v[3] = filter_str(j, "decision");
    v[4] = cJSON_IsTrue(lo) ? "true" : NULL;
    v[5] = filter_str(j, "user_id");
}

/* The row's label after the job's label-source restriction. */
static int row_label(const bt_job *j, const PGresult *r, int i)
{
    if (PQgetisnull(r, i, K_LABEL))
        return BT_UNLABELLED;
    if (strcmp(PQgetvalue(r, i, K_LABEL), "legit") == 0)
        return BT_LEGIT;
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(j->filter, "label_sources"), *e;
    if (!cJSON_IsArray(src))
        return BT_FRAUD;
    const char *s = PQgetisnull(r, i, K_SOURCE) ? "" : PQgetvalue(r, i, K_SOURCE);
    cJSON_ArrayForEach(e, src)
    {
        if (cJSON_IsString(e) && strcmp(e->valuestring, s) == 0)
            return BT_FRAUD;
    }
    return BT_UNLABELLED; /* fraud by a source the report does not count */
}

/* Scores rows idx[0..n) of the chunk with model bm into score[idx[k]], in sub-batches that fit
 * one worker frame.  Returns an scoring_status (err filled). */
static int score_group(bt_job *j, const PGresult *r, bt_model *bm, const int *idx, int n,
                       float *score)
{
    uint32_t nf = bm->m.num_features ? bm->m.num_features : 1;
    uint64_t fit = (scoring_frame_bytes(j->run->a) - 4096) / ((uint64_t)nf * 8);
    int batch = fit < 1 ? 1 : fit < (uint64_t)n ? (int)fit : n;
    float *rows = malloc((size_t)batch * nf * sizeof(float));
    float *out = malloc((size_t)batch * sizeof(float));
    int sc = rows && out ? SC_OK : SC_FAILED;
    for (int k0 = 0; sc == SC_OK && k0 < n; k0 += batch) {
        int nb = n - k0 < batch ? n - k0 : batch;
        for (int k = 0; k < nb; k++)
            btrows_fill(&bm->map, PQgetvalue(r, idx[k0 + k], K_FEATURES),
                        rows + (size_t)k * bm->m.num_features);
        scoring_job job = {&bm->m, 0, rows, (uint32_t)nb, out, NULL};
        sc = scoring_run_flags(j->run->a, &job, 1, WIRE_F_BULK, dl(), j->err, sizeof j->err);
        for (int k = 0; sc == SC_OK && k < nb; k++)
            score[idx[k0 + k]] = out[k];
    }
    if (!rows || !out)
        snprintf(j->err, sizeof j->err, "out of memory");
    free(rows);
    free(out);
    return sc;
}

/* Scores every row of the chunk with its model (the candidate's, or the recorded one): rows of
 * one model go together.  score[i] stays NaN for a row no model scores.  Returns a
 * scoring_status (j->err filled when not SC_OK). */
static int score_chunk(bt_job *j, const PGresult *r, float *score, int *idx)
{
    int n = PQntuples(r);
    for (int i = 0; i < n; i++)
        score[i] = NAN;
    if (!j->recorded) {
        bt_model *bm = job_model(j, j->champion);
        for (int i = 0; i < n; i++)
            idx[i] = i;
        if (!bm) {
            snprintf(j->err, sizeof j->err, "the candidate champion %s cannot be read",
                     j->champion);
            return SC_FAILED;
        }
        return score_group(j, r, bm, idx, n, score);
    }
    char *done = calloc((size_t)n + 1, 1);
    int sc = done ? SC_OK : SC_FAILED;
    for (int i = 0; sc == SC_OK && i < n; i++) {
        if (done[i] || PQgetisnull(r, i, K_MODEL))
            continue;
        const char *id = PQgetvalue(r, i, K_MODEL);
        int m = 0;
        for (int k = i; k < n; k++)
            if (!done[k] && !PQgetisnull(r, k, K_MODEL) &&
                strcmp(PQgetvalue(r, k, K_MODEL), id) == 0)
                idx[m++] = k, done[k] = 1;
        bt_model *bm = job_model(j, id);
        if (bm)
            sc = score_group(j, r, bm, idx, m, score);
    }
    free(done);
    return sc;
}

/* Forgets the missing-feature counts of a chunk that is not recorded (retried). */
static void job_reset_missing(bt_job *j)
{
    for (int i = 0; i < j->nmodels; i++)
        if (j->model[i].ok)
            memset(j->model[i].map.missing, 0,
                   (size_t)j->model[i].map.nfeat * sizeof *j->model[i].map.missing);
}

/* Aggregates the scored chunk into j->rep and appends the labelled rows' scores to arrays (the
 * backtest_scores rows of this chunk).  0, or -1 (j->err). */
static int aggregate_chunk(bt_job *j, const PGresult *r, const float *score, dynbuf *s_arr,
                           dynbuf *f_arr)
{
    for (int i = 0; i < PQntuples(r); i++) {
        btreport_row w = {0};
        double review = j->review, block = j->block;
        int fallback = j->fallback;
        if (j->recorded) { /* each row's own policy */
            review = strtod(PQgetvalue(r, i, K_REVIEW), NULL);
            block = strtod(PQgetvalue(r, i, K_BLOCK), NULL);
            fallback = decision_of(PQgetvalue(r, i, K_FALLBACK));
        }
        w.live = decision_of(PQgetvalue(r, i, K_DECISION));
        w.live_degraded = PQgetvalue(r, i, K_DEGRADED)[0] == 't';
        w.live_score = PQgetisnull(r, i, K_SCORE) ? NAN : strtof(PQgetvalue(r, i, K_SCORE), NULL);
        w.score = score[i];
        w.cand_scored = isfinite(score[i]);
        /* The live decision's rule (decision_decide): thresholds on a finite score, compared in
         * double.  Rules, once policies have them, go here (backtests.h). */
        w.cand = !w.cand_scored      ? fallback
                 : w.score >= block  ? BT_BLOCK
                 : w.score >= review ? BT_REVIEW
                                     : BT_ALLOW;
        w.over_review = w.cand_scored && w.score >= review;
        w.label = row_label(j, r, i);
        w.amount = strtoll(PQgetvalue(r, i, K_AMOUNT), NULL, 10);
        w.cur = btreport_currency(j->rep, PQgetvalue(r, i, K_CURRENCY));
        if (w.cur < 0) {
            snprintf(j->err, sizeof j->err, "more than %d currencies", BTREPORT_MAX_CURRENCIES);
            return -1;
        }
        btreport_add(j->rep, &w);
        if (w.label != BT_UNLABELLED && w.cand_scored) {
            dynbuf_printf(s_arr, "%s%.9g", s_arr->len > 1 ? "," : "", (double)w.score);
            dynbuf_printf(f_arr, "%s%c", f_arr->len > 1 ? "," : "",
                          w.label == BT_FRAUD ? 't' : 'f');
        }
    }
    return job_fold_missing(j);
}

/* The chunk's progress, in one transaction, only while the job is still running.  Returns 0, 1
 * when the job is no longer running (cancelled: nothing recorded), -1 on error (j->err). */
static int record_chunk(bt_job *j, const char *scores, const char *frauds)
{
    cJSON *pj = btreport_to_json(j->rep);
    char *partial = pj ? cJSON_PrintUnformatted(pj) : NULL;
    cJSON_Delete(pj);
    char processed[24], secs[32];
    snprintf(processed, sizeof processed, "%lld", j->processed);
    snprintf(secs, sizeof secs, "%.6f", j->run_base_s + (clock_now_us() - j->run_start_us) / 1e6);
    const char *ins[] = {j->id, scores, frauds};
    const char *upd[] = {j->id, processed, j->cur_at, j->cur_id, partial, secs};
    PGresult *r = NULL;
    int rc = partial ? 0 : -1, st = DB_OK;
    if (rc == 0 && ((st = db_exec(j->c, "BEGIN", 0, NULL, dl(), j->err, sizeof j->err)) ||
                    (st = db_exec(j->c,
                                  "INSERT INTO backtest_scores (backtest_id, score, fraud) "
                                  "SELECT $1, unnest($2::real[]), unnest($3::boolean[])",
                                  3, ins, dl(), j->err, sizeof j->err))))
        rc = -1;
    if (rc == 0)
        st = db_query(j->c,
                      "UPDATE backtests SET processed = $2, cursor_at = $3, cursor_id = $4, "
                      "partial = $5, run_seconds = $6, updated_at = clock_timestamp() "
                      "WHERE id = $1 AND state = 'running' RETURNING 1",
                      6, upd, NULL, NULL, 0, dl(), &r, j->err, sizeof j->err);
    if (rc == 0 && st != DB_OK)
        rc = -1;
    else if (rc == 0 && PQntuples(r) == 0)
        rc = 1;
    PQclear(r);
    if (rc == 0 && db_exec(j->c, "COMMIT", 0, NULL, dl(), j->err, sizeof j->err) != DB_OK)
        rc = -1;
    if (rc != 0)
        db_exec(j->c, "ROLLBACK", 0, NULL, dl(), j->err + 256, sizeof j->err - 256);
    if (!partial)
        snprintf(j->err, sizeof j->err, "out of memory");
    free(partial);
    return rc;
}

/* Reads, scores, aggregates and records the next chunk.  Returns 0 (recorded), 2 when there was
 * no row left, 1 when the job was cancelled, 3 when the worker was unavailable (nothing recorded:
 * retry), -1 on error (j->err). */
static int run_chunk(bt_job *j)
{
    const char *v[9];
    char limit[16];
    where_params(j, v);
    snprintf(limit, sizeof limit, "%d", j->run->a->cfg->backtest_chunk_rows);
    v[6] = j->cur_at[0] ? j->cur_at : NULL, v[7] = j->cur_at[0] ? j->cur_id : NULL, v[8] = limit;
    PGresult *r = NULL;
    if (db_query(j->c, chunk_sql, 9, v, NULL, NULL, 0, dl(), &r, j->err, sizeof j->err) != DB_OK) {
        PQclear(r);
        return -1;
    }
    int n = PQntuples(r), rc = n == 0 ? 2 : 0;
    float *score = malloc(((size_t)n + 1) * sizeof(float));
    int *idx = malloc(((size_t)n + 1) * sizeof(int));
    dynbuf s_arr, f_arr;
    dynbuf_init(&s_arr, (size_t)n * 20 + 16);
    dynbuf_init(&f_arr, (size_t)n * 2 + 16);
    dynbuf_append(&s_arr, "{", 1), dynbuf_append(&f_arr, "{", 1);
    if (rc == 0 && (!score || !idx))
        rc = -1, snprintf(j->err, sizeof j->err, "out of memory");
    int sc = rc == 0 ? score_chunk(j, r, score, idx) : SC_OK;
    if (sc == SC_UNAVAILABLE && ++j->unavailable <= BT_RETRIES)
        rc = 3, job_reset_missing(j); /* the worker is away: the same chunk again, later */
    else if (sc != SC_OK || (rc == 0 && aggregate_chunk(j, r, score, &s_arr, &f_arr)))
        rc = -1;
    else if (rc == 0)
        j->unavailable = 0;
    dynbuf_append(&s_arr, "}", 1), dynbuf_append(&f_arr, "}", 1);
    if (rc == 0 && (s_arr.err || f_arr.err))
        rc = -1, snprintf(j->err, sizeof j->err, "out of memory");
    if (rc == 0) {
        j->processed += n;
        snprintf(j->cur_at, sizeof j->cur_at, "%s", PQgetvalue(r, n - 1, K_AT));
        snprintf(j->cur_id, sizeof j->cur_id, "%s", PQgetvalue(r, n - 1, K_ID));
        rc = record_chunk(j, s_arr.p, f_arr.p);
    }
    dynbuf_free(&s_arr);
    dynbuf_free(&f_arr);
    free(score);
    free(idx);
    PQclear(r);
    return rc;
}

/* ---- start, finish --------------------------------------------------------------------------- */

/* Counts the job's rows once (total is NULL until then). */
static int count_total(bt_job *j)
{
    if (j->total >= 0)
        return 0;
    const char *v[7];
    where_params(j, v);
    v[6] = j->id;
    PGresult *r = NULL;
    int st = db_query(j->c,
                      "WITH n AS (SELECT count(*) AS n FROM transactions t WHERE " BT_WHERE ") "
                      "UPDATE backtests SET total = (SELECT n FROM n) WHERE id = $7::uuid "
                      "RETURNING total",
                      7, v, NULL, NULL, 0, dl(), &r, j->err, sizeof j->err);
    if (st == DB_OK && PQntuples(r) == 1)
        j->total = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return st == DB_OK ? 0 : -1;
}

/* The AUCs from the job's labelled scores, grouped by distinct score, highest first. */
static int job_aucs(bt_job *j, double *roc, double *pr)
{
    const char *v[] = {j->id};
    PGresult *r = NULL;
    int st = db_query(j->c,
                      "SELECT score, count(*) FILTER (WHERE fraud), count(*) FILTER (WHERE NOT "
                      "fraud) FROM backtest_scores WHERE backtest_id = $1 GROUP BY score "
                      "ORDER BY score DESC",
                      1, v, NULL, NULL, 0, dl(), &r, j->err, sizeof j->err);
    size_t n = st == DB_OK ? (size_t)PQntuples(r) : 0;
    btreport_score_group *g = malloc((n + 1) * sizeof *g);
    if (st == DB_OK && g) {
        for (size_t i = 0; i < n; i++)
            g[i] = (btreport_score_group){(double)strtof(PQgetvalue(r, (int)i, 0), NULL),
                                          strtoll(PQgetvalue(r, (int)i, 1), NULL, 10),
                                          strtoll(PQgetvalue(r, (int)i, 2), NULL, 10)};
        btreport_auc(g, n, roc, pr);
    } else if (st == DB_OK) {
        snprintf(j->err, sizeof j->err, "out of memory");
    }
    free(g);
    PQclear(r);
    return st == DB_OK && g ? 0 : -1;
}

/* Renders and stores the report (state succeeded) and drops the job's scores, in one
 * transaction.  0, 1 when the job was cancelled meanwhile, -1 on error. */
static int finish(bt_job *j)
{
    double roc = NAN, pr = NAN;
    if (job_aucs(j, &roc, &pr))
        return -1;
    cJSON *rep = btreport_render(j->rep, j->recorded ? NAN : j->review, roc, pr,
                                 cJSON_GetObjectItemCaseSensitive(j->filter, "label_sources"));
    char *text = rep ? cJSON_PrintUnformatted(rep) : NULL;
    cJSON_Delete(rep);
    char processed[24], secs[32];
    snprintf(processed, sizeof processed, "%lld", j->processed);
    snprintf(secs, sizeof secs, "%.6f", j->run_base_s + (clock_now_us() - j->run_start_us) / 1e6);
    const char *v[] = {j->id, text, processed, secs};
    PGresult *r = NULL;
    int rc = text ? 0 : -1;
    if (rc == 0 && db_exec(j->c, "BEGIN", 0, NULL, dl(), j->err, sizeof j->err) != DB_OK)
        rc = -1;
    if (rc == 0 && db_query(j->c,
                            "UPDATE backtests SET state = 'succeeded', report = $2, partial = "
                            "NULL, processed = $3, total = $3, run_seconds = $4, finished_at = "
                            "clock_timestamp(), updated_at = clock_timestamp() "
                            "WHERE id = $1 AND state = 'running' RETURNING 1",
                            4, v, NULL, NULL, 0, dl(), &r, j->err, sizeof j->err) != DB_OK)
        rc = -1;
    if (rc == 0 && PQntuples(r) == 0)
        rc = 1;
    if (rc == 0 && (db_exec(j->c, "DELETE FROM backtest_scores WHERE backtest_id = $1", 1, v, dl(),
                            j->err, sizeof j->err) != DB_OK ||
                    db_exec(j->c, "COMMIT", 0, NULL, dl(), j->err, sizeof j->err) != DB_OK))
        rc = -1;
    if (rc != 0)
        db_exec(j->c, "ROLLBACK", 0, NULL, dl(), j->err + 256, sizeof j->err - 256);
    if (!text)
        snprintf(j->err, sizeof j->err, "out of memory");
    PQclear(r);
    free(text);
    return rc;
}

/* Marks the job failed with j->err (unless it was cancelled meanwhile). */
static void fail(bt_job *j)
{
    char scratch[256];
    const char *v[] = {j->id, j->err};
    db_exec(j->c,
            "UPDATE backtests SET state = 'failed', error = $2, finished_at = clock_timestamp(), "
            "updated_at = clock_timestamp() WHERE id = $1 AND state = 'running'",
            2, v, dl(), scratch, sizeof scratch);
    db_exec(j->c, "DELETE FROM backtest_scores WHERE backtest_id = $1", 1, v, dl(), scratch,
            sizeof scratch);
    logline l;
    logline_begin(&l, "warn", "backtest_failed");
    logline_str(&l, "backtest_id", j->id);
    logline_str(&l, "error", j->err);
    logline_end(&l);
}

/* ---- taking a job ---------------------------------------------------------------------------- */

/* Columns of the claim's RETURNING, in order. */
enum {
    J_ID,
    J_POLICY,
    J_FROM,
    J_TO,
    J_FILTER,
    J_TOTAL,
    J_PROCESSED,
    J_CUR_AT,
    J_CUR_ID,
    J_PARTIAL,
    J_SECONDS,
    J_CREATED
};

/* Reads the candidate out of the job's stored policy.  0, or -1 (j->err). */
static int job_policy(bt_job *j, const char *text)
{
    cJSON *p = cJSON_Parse(text);
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(p, "mode");
    const cJSON *champ = cJSON_GetObjectItemCaseSensitive(p, "champion_model_id");
    const cJSON *rv = cJSON_GetObjectItemCaseSensitive(p, "review_threshold");
    const cJSON *bv = cJSON_GetObjectItemCaseSensitive(p, "block_threshold");
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(p, "fallback_decision");
    int rc = 0;
    if (cJSON_IsString(mode) && strcmp(mode->valuestring, "recorded") == 0)
        j->recorded = 1;
    else if (cJSON_IsString(champ) && cJSON_IsNumber(rv) && cJSON_IsNumber(bv) &&
             cJSON_IsString(fb) && strlen(champ->valuestring) < sizeof j->champion) {
        snprintf(j->champion, sizeof j->champion, "%s", champ->valuestring);
        j->review = rv->valuedouble, j->block = bv->valuedouble;
        j->fallback = decision_of(fb->valuestring);
    } else {
        rc = -1, snprintf(j->err, sizeof j->err, "the job's stored policy is unreadable");
    }
    cJSON_Delete(p);
    return rc;
}

/* Fills j from the claimed row (resuming from its keyset position and partial aggregates). */
static int job_load(bt_job *j, const PGresult *r)
{
    snprintf(j->id, sizeof j->id, "%s", PQgetvalue(r, 0, J_ID));
    snprintf(j->from, sizeof j->from, "%s", PQgetvalue(r, 0, J_FROM));
    snprintf(j->to, sizeof j->to, "%s", PQgetvalue(r, 0, J_TO));
    snprintf(j->snap, sizeof j->snap, "%s", PQgetvalue(r, 0, J_CREATED));
    snprintf(j->cur_at, sizeof j->cur_at, "%s", PQgetvalue(r, 0, J_CUR_AT));
    snprintf(j->cur_id, sizeof j->cur_id, "%s", PQgetvalue(r, 0, J_CUR_ID));
    j->total = strtoll(PQgetvalue(r, 0, J_TOTAL), NULL, 10);
    j->processed = strtoll(PQgetvalue(r, 0, J_PROCESSED), NULL, 10);
    j->run_base_s = strtod(PQgetvalue(r, 0, J_SECONDS), NULL);
    j->run_start_us = clock_now_us();
    j->filter = cJSON_Parse(PQgetvalue(r, 0, J_FILTER));
    j->rep = btreport_new();
    if (!j->filter || !j->rep) {
        snprintf(j->err, sizeof j->err, "out of memory");
        return -1;
    }
    if (!PQgetisnull(r, 0, J_PARTIAL)) {
        cJSON *p = cJSON_Parse(PQgetvalue(r, 0, J_PARTIAL));
        int bad = !p || btreport_from_json(j->rep, p);
        cJSON_Delete(p);
        if (bad) {
            snprintf(j->err, sizeof j->err, "the job's partial aggregates are unreadable");
            return -1;
        }
    }
    return job_policy(j, PQgetvalue(r, 0, J_POLICY));
}

/* Waits ms (0: not at all) or until the runner stops.  Returns 0 (run the next chunk). */
static int pause(bt_job *j, int ms)
{
    if (ms <= 0)
        return 0;
    btjob_runner *run = j->run;
    struct timespec ts = clock_abs_timespec(clock_now_ms() + ms);
    pthread_mutex_lock(&run->mu);
    if (!run->stopping)
        pthread_cond_timedwait(&run->cv, &run->mu, &ts);
    pthread_mutex_unlock(&run->mu);
    return 0;
}

/* Runs a loaded job to its end, its cancellation, an error or the runner's stop. */
static void job_run(bt_job *j)
{
    logline l;
    logline_begin(&l, "info", j->processed ? "backtest_resumed" : "backtest_started");
    logline_str(&l, "backtest_id", j->id);
    logline_i64(&l, "processed", j->processed);
    logline_end(&l);
    int rc = count_total(j);
    while (rc == 0 && !stopping(j->run)) {
        rc = run_chunk(j);
        if (rc == 0 || rc == 3)
            rc = pause(j, rc == 3 ? BT_RETRY_MS : j->run->a->cfg->backtest_pause_ms);
    }
    if (rc == 2)
        rc = finish(j);
    if (rc < 0) {
        fail(j);
        return;
    }
    logline_begin(&l, "info",
                  rc == 0 && stopping(j->run) ? "backtest_paused"
                  : rc == 0                   ? "backtest_succeeded"
                                              : "backtest_cancelled");
    logline_str(&l, "backtest_id", j->id);
    logline_i64(&l, "processed", j->processed);
    logline_end(&l);
}

static const char claim_sql[] =
    "UPDATE backtests SET state = 'running', started_at = coalesce(started_at, "
    "clock_timestamp()), updated_at = clock_timestamp() WHERE id = $1 AND state IN ('queued', "
    "'running') RETURNING id, policy::text, from_at::text, to_at::text, filter::text, "
    "coalesce(total, -1), processed, coalesce(cursor_at::text, ''), coalesce(cursor_id::text, ''), "
    "partial::text, run_seconds, created_at::text";

/* Takes one runnable job no other runner holds: its advisory lock, then the row.  Returns 1 with
 * *out (caller PQclear()s it; the lock stays held on c), 0 when there is none, -1 on error. */
static int claim(db_conn *c, PGresult **out)
{
    char e[256]; /* db_query's message: nothing to report here, the next poll retries */
    PGresult *ids = NULL;
    *out = NULL;
    if (db_query(c,
                 "SELECT id FROM backtests WHERE state IN ('queued', 'running') "
                 "ORDER BY created_at LIMIT 16",
                 0, NULL, NULL, NULL, 0, dl(), &ids, e, sizeof e) != DB_OK) {
        PQclear(ids);
        return -1;
    }
    int got = 0;
    for (int i = 0; i < PQntuples(ids) && !got; i++) {
        const char *v[] = {PQgetvalue(ids, i, 0)};
        PGresult *r = NULL;
        if (db_query(c, "SELECT pg_try_advisory_lock(" BT_LOCK_CLASS ", hashtext($1))", 1, v, NULL,
                     NULL, 0, dl(), &r, e, sizeof e) == DB_OK &&
            PQgetvalue(r, 0, 0)[0] == 't') {
            PQclear(r);
            r = NULL;
            if (db_query(c, claim_sql, 1, v, NULL, NULL, 0, dl(), &r, e, sizeof e) == DB_OK &&
                PQntuples(r) == 1)
                got = 1, *out = r, r = NULL;
            else /* finished or cancelled meanwhile */
                db_exec(c, "SELECT pg_advisory_unlock(" BT_LOCK_CLASS ", hashtext($1))", 1, v, dl(),
                        e, sizeof e);
        }
        PQclear(r);
    }
    PQclear(ids);
    return got;
}

/* One poll: claims a job and runs it.  Returns 1 when it ran one (poll again at once). */
static int poll_once(btjob_runner *run)
{
    db_conn *c = NULL;
    if (db_acquire(run->a->db, dl(), run->a->cfg->pool_wait_ms, &c) != DB_OK)
        return 0;
    PGresult *r = NULL;
    int got = claim(c, &r);
    if (got == 1) {
        bt_job *j = calloc(1, sizeof *j);
        if (j) {
            j->run = run, j->c = c;
            if (job_load(j, r) == 0)
                job_run(j);
            else
                fail(j);
            job_models_free(j);
            btreport_free(j->rep);
            cJSON_Delete(j->filter);
            free(j);
        }
        char e[256];
        db_exec(c, "SELECT pg_advisory_unlock_all()", 0, NULL, dl(), e, sizeof e);
    }
    PQclear(r);
    db_release(run->a->db, c);
    return got == 1;
}

static void *runner_main(void *arg)
{
    btjob_runner *run = arg;
    for (;;) {
        if (stopping(run))
            break;
        if (poll_once(run))
            continue;
        pthread_mutex_lock(&run->mu);
        struct timespec ts = clock_abs_timespec(clock_now_ms() + BTJOB_POLL_MS);
        if (!run->stopping)
            pthread_cond_timedwait(&run->cv, &run->mu, &ts);
        pthread_mutex_unlock(&run->mu);
    }
    return NULL;
}

btjob_runner *btjob_start(const app *a, char *err, size_t errlen)
{
    btjob_runner *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->a = a;
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca; /* the monotonic clock, as clock_abs_timespec wants */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    int want = a->cfg->backtest_concurrency;
    for (; r->nthreads < want && r->nthreads < 16; r->nthreads++) {
        if (pthread_create(&r->threads[r->nthreads], NULL, runner_main, r) != 0) {
            snprintf(err, errlen, "cannot start the backtest runner threads");
            btjob_stop(r);
            return NULL;
        }
    }
    return r;
}

void btjob_stop(btjob_runner *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < r->nthreads; i++)
        pthread_join(r->threads[i], NULL);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
