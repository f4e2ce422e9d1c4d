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
#include "listcache.h"
#include "logline.h"
#include "rulecat.h"
#include "rules.h"
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

/* The candidate's rules, prepared once per run of a job: the program compiled against the
 * catalogue of the candidate's models and the lists that exist (as a live decision compiles its
 * policy version's), the list sets as they are when the run starts (held for the run), and the
 * per-row scratch (operand slots, probe answers). */
typedef struct bt_rules {
    rulecat cat;
    rules_program *prog;
    listcache_set *held[RULES_MAX]; /* the set of each list the program names */
    const listset *sets[RULES_MAX];
    cJSON *list_versions;           /* {"list": version} of those sets */
    rules_value *slots;             /* cat.n_ops */
    uint8_t *probes;                /* rules_probe_count(prog) */
    int64_t op_missing[FEAT_COUNT]; /* rows whose built-in operand had no stored value */
} bt_rules;

typedef struct bt_job {
    btjob_runner *run;
    db_conn *c;
    char id[37];
    int recorded; /* replay: each row scored by the model and thresholds it was decided with */
    double review, block;
    int fallback;        /* enum btreport_decision */
    char champion[37];   /* candidate mode */
    char challenger[37]; /* candidate mode: "" without one */
    cJSON *rules;        /* candidate mode: the rules (a JSON array), NULL without */
    bt_rules *ru;        /* the rules prepared (NULL without rules) */
    cJSON *filter;       /* {"decision", "labelled_only", "user_id", "label_sources"} */
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
    for (int s = 0; j->ru && s < FEAT_COUNT; s++) {
        if (j->ru->op_missing[s] &&
            btreport_operand_missing(j->rep, feat_name(s), j->ru->op_missing[s]))
            return -1;
        j->ru->op_missing[s] = 0;
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
    K_FALLBACK,
    /* with rules only (chunk_rules_sql) */
    K_CLIENT,
    K_INPUTS,
    K_PROBES,
    K_AMOUNT_MAJOR,
    K_MERCHANT, /* ... then every string operand column in rulecat slot order */
    K_MCC,
    K_COUNTRY,
    K_CHANNEL,
    K_EMAIL,
    K_IP,
    K_DEVICE,
    K_CARD_FP,
    K_CARD_BIN,
    K_CARD_COUNTRY,
    K_SHIP_COUNTRY,
    K_USER_EXTERNAL_ID,
    K_USER_COUNTRY
};
/* fill_slots reads string operand s from column K_MERCHANT + (s - RC_MERCHANT_ID) */
_Static_assert(K_USER_COUNTRY - K_MERCHANT == RC_USER_COUNTRY - RC_MERCHANT_ID,
               "the string columns of chunk_rules_sql follow rulecat's slot order");

#define BT_WHERE                                                                                   \
    "t.occurred_at >= $1::timestamptz AND t.occurred_at < $2::timestamptz "                        \
    "AND t.created_at <= $3::timestamptz "                                                         \
    "AND ($4::text IS NULL OR t.decision = $4) "                                                   \
    "AND ($5::boolean IS NOT TRUE OR t.label IS NOT NULL) "                                        \
    "AND ($6::uuid IS NULL OR t.user_id = $6::uuid) "

#define BT_CHUNK_COLS                                                                              \
    "SELECT t.id, t.occurred_at::text, t.features::text, t.score, t.decision, t.degraded, "        \
    "t.label, t.label_source, t.amount, t.currency, t.model_id, t.review_threshold, "              \
    "t.block_threshold, t.fallback_decision"
#define BT_KEYSET                                                                                  \
    "AND ($7::timestamptz IS NULL OR (t.occurred_at, t.id) > ($7::timestamptz, $8::uuid)) "        \
    "ORDER BY t.occurred_at, t.id LIMIT $9"

static const char chunk_sql[] = BT_CHUNK_COLS " FROM transactions t WHERE " BT_WHERE BT_KEYSET;

/* The rules' operands too: client features, what the live rules evaluated, the fields and the
 * user's (amount_major's text is exact: PostgreSQL prints the shortest round-trip form). */
static const char chunk_rules_sql[] =
    BT_CHUNK_COLS ", t.client_features::text, t.rule_inputs::text, t.list_probes::text, "
                  "t.amount_major::text, "
                  "t.merchant_id, t.merchant_category, t.country, t.channel, t.email, "
                  "t.ip_address, t.device_id, t.card_fingerprint, t.card_bin, t.card_country, "
                  "t.shipping_country, u.external_id, u.country "
                  "FROM transactions t JOIN users u ON u.id = t.user_id WHERE " BT_WHERE BT_KEYSET;

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

/* The candidate's challenger scores of the chunk into chal[] (its missing features are not
 * counted: the report's are the champion's).  A scoring_status. */
static int score_challenger(bt_job *j, const PGresult *r, const bt_model *champ, const float *score,
                            float *chal, const int *idx)
{
    int n = PQntuples(r);
    bt_model *cm = job_model(j, j->challenger);
    if (!cm) {
        snprintf(j->err, sizeof j->err, "the candidate challenger %s cannot be read",
                 j->challenger);
        return SC_FAILED;
    }
    if (cm == champ) { /* the same model twice: the same scores */
        memcpy(chal, score, (size_t)n * sizeof *chal);
        return SC_OK;
    }
    int sc = score_group(j, r, cm, idx, n, chal);
    memset(cm->map.missing, 0, (size_t)cm->map.nfeat * sizeof *cm->map.missing);
    return sc;
}

/* Scores every row of the chunk with its model (the candidate's, or the recorded one): rows of
 * one model go together; a candidate's challenger too, into chal[].  score[i] (chal[i]) stays
 * NaN for a row no model scores.  Returns a scoring_status (j->err filled when not SC_OK). */
static int score_chunk(bt_job *j, const PGresult *r, float *score, float *chal, int *idx)
{
    int n = PQntuples(r);
    for (int i = 0; i < n; i++)
        score[i] = chal[i] = NAN;
    if (!j->recorded) {
        bt_model *bm = job_model(j, j->champion);
        for (int i = 0; i < n; i++)
            idx[i] = i;
        if (!bm) {
            snprintf(j->err, sizeof j->err, "the candidate champion %s cannot be read",
                     j->champion);
            return SC_FAILED;
        }
        int sc = score_group(j, r, bm, idx, n, score);
        if (sc == SC_OK && j->challenger[0])
            sc = score_challenger(j, r, bm, score, chal, idx);
        return sc;
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
    if (j->ru)
        memset(j->ru->op_missing, 0, sizeof j->ru->op_missing);
}

/* ---- rules ----------------------------------------------------------------------------------- */

/* Member name of a stored JSON object as a number: 1 with *x (NaN for null or a non-number),
 * 0 when the object lacks it. */
static int member_num(const cJSON *o, const char *name, double *x)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v)
        return 0;
    *x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    return 1;
}

/* Every operand of row i, resolved as the live decision resolved it (decision_rules.c):
 *   score, challenger_score  the candidate's scores (missing when the champion gave none);
 *   any other operand the live rules evaluated (rule_inputs: the exact value, incl. the user's
 *                            fields as they were then);
 *   string operands          the stored transaction fields, the user's current fields;
 *   client features          the stored client_features (exact, as the client sent them);
 *   amount                   amount_major (exact);
 *   other built-ins          the feature snapshot (the float32 a model scored; exact for
 *                            counts, flags, hour and day), else missing (counted).
 * Strings point into r and into *inputs (the caller deletes the parsed JSON). */
static void fill_slots(bt_job *j, const PGresult *r, int i, float score, float chal, cJSON **inputs,
                       cJSON **client, cJSON **snap)
{
    bt_rules *ru = j->ru;
    const rulecat *cat = &ru->cat;
    int degraded = !isfinite(score);
    *inputs = PQgetisnull(r, i, K_INPUTS) ? NULL : cJSON_Parse(PQgetvalue(r, i, K_INPUTS));
    *client = PQgetisnull(r, i, K_CLIENT) ? NULL : cJSON_Parse(PQgetvalue(r, i, K_CLIENT));
    *snap = NULL;
    const cJSON *in_num = cJSON_GetObjectItemCaseSensitive(*inputs, "numbers");
    const cJSON *in_str = cJSON_GetObjectItemCaseSensitive(*inputs, "strings");
    for (size_t s = 0; s < cat->n_ops; s++) {
        const char *name = cat->ops[s].name;
        double x = NAN;
        if (s == RC_SCORE || s == RC_CHALLENGER_SCORE) {
            x = s == RC_SCORE ? (double)score : j->challenger[0] ? (double)chal : NAN;
            ru->slots[s] = rulecat_num(degraded ? NAN : x);
        } else if (cat->ops[s].type == RULES_STRING) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(in_str, name);
            int col = s == RC_CURRENCY ? K_CURRENCY : K_MERCHANT + (int)(s - RC_MERCHANT_ID);
            ru->slots[s] = v                        ? rulecat_str(cJSON_GetStringValue(v))
                           : PQgetisnull(r, i, col) ? rulecat_str(NULL)
                                                    : rulecat_str(PQgetvalue(r, i, col));
        } else if (member_num(in_num, name, &x)) {
            ru->slots[s] = rulecat_num(x);
        } else if (s >= RC_CLIENT) {
            member_num(*client, name, &x);
            ru->slots[s] = rulecat_num(x);
        } else if (s == FEAT_AMOUNT) {
            ru->slots[s] = rulecat_num(strtod(PQgetvalue(r, i, K_AMOUNT_MAJOR), NULL));
        } else {
            if (!*snap)
                *snap = cJSON_Parse(PQgetvalue(r, i, K_FEATURES));
            if (!member_num(*snap, name, &x))
                ru->op_missing[s]++;
            ru->slots[s] = rulecat_num(x);
        }
    }
}

/* Compares the candidate's probe answers of row i with those the live decision recorded for the
 * same (list, operand): how much "membership is current" changed the row.  Counted into the
 * report; nothing else depends on it. */
static void probes_compare(bt_job *j, const PGresult *r, int i)
{
    static const char *const answer[] = {"not_member", "member", "missing"};
    bt_rules *ru = j->ru;
    size_t np = rules_probe_count(ru->prog);
    if (np == 0 || PQgetisnull(r, i, K_PROBES))
        return;
    cJSON *stored = cJSON_Parse(PQgetvalue(r, i, K_PROBES)), *e;
    int64_t recorded = 0, changed = 0;
    for (size_t k = 0; k < np; k++) {
        const char *list = rules_list_name(ru->prog, rules_probe_list(ru->prog, k));
        const char *op = ru->cat.ops[rules_probe_slot(ru->prog, k)].name;
        cJSON_ArrayForEach(e, stored)
        {
            const char *l = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "list"));
            const char *o = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "operand"));
            const char *res = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "result"));
            if (l && o && res && strcmp(l, list) == 0 && strcmp(o, op) == 0) {
                recorded++;
                changed += strcmp(res, answer[ru->probes[k] <= 2 ? ru->probes[k] : 2]) != 0;
                break;
            }
        }
    }
    btreport_probes(j->rep, recorded, changed);
    cJSON_Delete(stored);
}

/* Evaluates the candidate's rules on row i and decides with rules_decide's precedence, as a live
 * decision does; the outcome goes into w->cand and the report's rule figures. */
static void rules_row(bt_job *j, const PGresult *r, int i, float chal, double review, double block,
                      int fallback, btreport_row *w)
{
    bt_rules *ru = j->ru;
    cJSON *inputs, *client, *snap;
    uint64_t matched[RULES_BITMAP_WORDS] = {0};
    fill_slots(j, r, i, w->score, chal, &inputs, &client, &snap);
    rules_probe_resolve(ru->prog, ru->slots, ru->sets, ru->probes);
    probes_compare(j, r, i);
    rules_eval(ru->prog, ru->slots, ru->cat.n_ops, ru->probes,
               w->cand_scored ? 0 : RULES_EVAL_DEGRADED, matched);
    rules_decide_in in = {!w->cand_scored, (rules_action)fallback, (double)w->score, review, block};
    rules_verdict v = rules_decide(ru->prog, matched, &in);
    w->cand = (int)v.decision;
    btreport_rules_add(j->rep, matched, (int)v.by, v.by == RULES_BY_RULE ? v.rule : -1, w->label,
                       w->amount, w->cur);
    cJSON_Delete(inputs);
    cJSON_Delete(client);
    cJSON_Delete(snap);
}

static void rules_release(bt_job *j)
{
    bt_rules *ru = j->ru;
    if (!ru)
        return;
    for (size_t li = 0; ru->prog && li < rules_list_count(ru->prog) && li < RULES_MAX; li++)
        listcache_release(j->run->a->lists, ru->held[li]);
    rules_free(ru->prog);
    rulecat_free(&ru->cat);
    cJSON_Delete(ru->list_versions);
    free(ru->slots);
    free(ru->probes);
    free(ru);
    j->ru = NULL;
}

/* The set of the program's list li as it is now, into ru->held[li].  lists: name, kind, id,
 * version of every list.  0, or -1 (j->err). */
static int rules_take_list(bt_job *j, const PGresult *lists, size_t li)
{
    bt_rules *ru = j->ru;
    const char *name = rules_list_name(ru->prog, li);
    char e[256] = "it does not exist any more";
    int rc = LISTCACHE_FAILED;
    for (int k = 0; k < PQntuples(lists); k++)
        if (strcmp(PQgetvalue(lists, k, 0), name) == 0 && j->run->a->lists)
            rc = listcache_get(j->run->a->lists, PQgetvalue(lists, k, 2),
                               strtoll(PQgetvalue(lists, k, 3), NULL, 10), dl(), &ru->held[li], e,
                               sizeof e);
    if (rc != LISTCACHE_OK && !(rc == LISTCACHE_TIMEOUT && ru->held[li])) {
        listcache_release(j->run->a->lists, ru->held[li]);
        ru->held[li] = NULL;
        snprintf(j->err, sizeof j->err, "list '%s' of the candidate's rules is not available: %s",
                 name, e);
        return -1;
    }
    ru->sets[li] = listcache_set_get(ru->held[li]);
    cJSON_AddNumberToObject(ru->list_versions, name, (double)listcache_set_version(ru->held[li]));
    return 0;
}

/* Prepares the candidate's rules (nothing without rules): compiles them against the catalogue
 * of its models and the lists that exist now, takes the current set of every list they name and
 * sizes the report's rule figures.  0, or -1 (j->err). */
static int rules_prepare(bt_job *j)
{
    if (!cJSON_IsArray(j->rules) || cJSON_GetArraySize(j->rules) == 0)
        return 0;
    bt_model *ch = job_model(j, j->champion);
    bt_model *cl = j->challenger[0] ? job_model(j, j->challenger) : NULL;
    const scoring_model *mp[2] = {ch ? &ch->m : NULL, cl ? &cl->m : NULL};
    rules_spec *specs = calloc(RULES_MAX, sizeof *specs);
    rulecat_list *known = NULL;
    PGresult *lr = NULL;
    size_t n_specs = 0;
    rules_error rerr = {0};
    int rc = -1;
    bt_rules *ru = j->ru = calloc(1, sizeof *ru);
    if (!ch || (j->challenger[0] && !cl)) {
        snprintf(j->err, sizeof j->err, "the candidate's models cannot be read");
        goto done;
    }
    if (!specs || !ru || !(ru->list_versions = cJSON_CreateObject())) {
        snprintf(j->err, sizeof j->err, "out of memory");
        goto done;
    }
    if (db_query(j->c, "SELECT name, kind, id::text, version FROM lists ORDER BY name", 0, NULL,
                 NULL, NULL, 0, dl(), &lr, j->err, sizeof j->err) != DB_OK)
        goto done;
    size_t n_lists = (size_t)PQntuples(lr);
    if (!(known = calloc(n_lists + 1, sizeof *known))) {
        snprintf(j->err, sizeof j->err, "out of memory");
        goto done;
    }
    for (size_t k = 0; k < n_lists; k++)
        known[k] = (rulecat_list){
            PQgetvalue(lr, (int)k, 0),
            listset_kind_parse(PQgetvalue(lr, (int)k, 1), (size_t)PQgetlength(lr, (int)k, 1))};
    if (rulecat_specs(j->rules, specs, &n_specs) ||
        rulecat_build(&ru->cat, mp, 2, known, n_lists) ||
        rules_compile(specs, n_specs, &ru->cat.cat, &ru->prog, &rerr) != RULES_OK) {
        snprintf(j->err, sizeof j->err, "the candidate's rules do not compile any more: %s",
                 rerr.message[0] ? rerr.message : "out of memory");
        goto done;
    }
    if (rules_list_count(ru->prog) > RULES_MAX) {
        snprintf(j->err, sizeof j->err, "the candidate's rules name too many lists");
        goto done;
    }
    for (size_t li = 0; li < rules_list_count(ru->prog); li++)
        if (rules_take_list(j, lr, li))
            goto done;
    ru->slots = calloc(ru->cat.n_ops + 1, sizeof *ru->slots);
    ru->probes = calloc(rules_probe_count(ru->prog) + 1, 1);
    const char *names[RULES_MAX];
    int actions[RULES_MAX], modes[RULES_MAX];
    int n = (int)rules_count(ru->prog);
    for (int i = 0; i < n; i++) {
        names[i] = rules_rule_name(ru->prog, (size_t)i);
        actions[i] = (int)rules_rule_action(ru->prog, (size_t)i);
        modes[i] = (int)rules_rule_mode(ru->prog, (size_t)i);
    }
    if (!ru->slots || !ru->probes) {
        snprintf(j->err, sizeof j->err, "out of memory");
        goto done;
    }
    if (btreport_rules_init(j->rep, n, names, actions, modes)) {
        snprintf(j->err, sizeof j->err, "the job's partial rule figures do not fit its rules");
        goto done;
    }
    rc = 0;
done:
    free(specs);
    free(known);
    PQclear(lr);
    return rc;
}

/* Aggregates the scored chunk into j->rep and appends the labelled rows' scores to arrays (the
 * backtest_scores rows of this chunk).  0, or -1 (j->err). */
static int aggregate_chunk(bt_job *j, const PGresult *r, const float *score, const float *chal,
                           dynbuf *s_arr, dynbuf *f_arr, dynbuf *c_arr)
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
        w.chal_scored = isfinite(chal[i]);
        w.label = row_label(j, r, i);
        w.amount = strtoll(PQgetvalue(r, i, K_AMOUNT), NULL, 10);
        w.cur = btreport_currency(j->rep, PQgetvalue(r, i, K_CURRENCY));
        if (w.cur < 0) {
            snprintf(j->err, sizeof j->err, "more than %d currencies", BTREPORT_MAX_CURRENCIES);
            return -1;
        }
        /* The live decision's rule (decision_decide): thresholds on a finite score, compared in
         * double; with rules, rules_decide's precedence over the rules' matches (rules_row). */
        w.cand = !w.cand_scored      ? fallback
                 : w.score >= block  ? BT_BLOCK
                 : w.score >= review ? BT_REVIEW
                                     : BT_ALLOW;
        if (j->ru)
            rules_row(j, r, i, chal[i], review, block, fallback, &w);
        w.over_review = w.cand_scored && w.score >= review;
        btreport_add(j->rep, &w);
        if (w.label != BT_UNLABELLED && (w.cand_scored || w.chal_scored)) {
            const char *sep = f_arr->len > 1 ? "," : "";
            if (w.cand_scored)
                dynbuf_printf(s_arr, "%s%.9g", sep, (double)w.score);
            else
                dynbuf_printf(s_arr, "%sNULL", sep);
            if (w.chal_scored)
                dynbuf_printf(c_arr, "%s%.9g", sep, (double)chal[i]);
            else
                dynbuf_printf(c_arr, "%sNULL", sep);
            dynbuf_printf(f_arr, "%s%c", sep, w.label == BT_FRAUD ? 't' : 'f');
        }
    }
    return job_fold_missing(j);
}

/* The chunk's progress, in one transaction, only while the job is still running.  Returns 0, 1
 * when the job is no longer running (cancelled: nothing recorded), -1 on error (j->err). */
static int record_chunk(bt_job *j, const char *scores, const char *frauds, const char *chals)
{
    cJSON *pj = btreport_to_json(j->rep);
    char *partial = pj ? cJSON_PrintUnformatted(pj) : NULL;
    cJSON_Delete(pj);
    char processed[24], secs[32];
    snprintf(processed, sizeof processed, "%lld", j->processed);
    snprintf(secs, sizeof secs, "%.6f", j->run_base_s + (clock_now_us() - j->run_start_us) / 1e6);
    const char *ins[] = {j->id, scores, frauds, chals};
    const char *upd[] = {j->id, processed, j->cur_at, j->cur_id, partial, secs};
    PGresult *r = NULL;
    int rc = partial ? 0 : -1, st = DB_OK;
    if (rc == 0 && ((st = db_exec(j->c, "BEGIN", 0, NULL, dl(), j->err, sizeof j->err)) ||
                    (st = db_exec(j->c,
                                  "INSERT INTO backtest_scores (backtest_id, score, fraud, "
                                  "challenger_score) SELECT $1, unnest($2::real[]), "
                                  "unnest($3::boolean[]), unnest($4::real[])",
                                  4, ins, dl(), j->err, sizeof j->err))))
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
    if (db_query(j->c, j->ru ? chunk_rules_sql : chunk_sql, 9, v, NULL, NULL, 0, dl(), &r, j->err,
                 sizeof j->err) != DB_OK) {
        PQclear(r);
        return -1;
    }
    int n = PQntuples(r), rc = n == 0 ? 2 : 0;
    float *score = malloc(((size_t)n + 1) * sizeof(float));
    float *chal = malloc(((size_t)n + 1) * sizeof(float));
    int *idx = malloc(((size_t)n + 1) * sizeof(int));
    dynbuf s_arr, f_arr, c_arr;
    dynbuf_init(&s_arr, (size_t)n * 20 + 16);
    dynbuf_init(&f_arr, (size_t)n * 2 + 16);
    dynbuf_init(&c_arr, (size_t)n * 20 + 16);
    dynbuf_append(&s_arr, "{", 1), dynbuf_append(&f_arr, "{", 1), dynbuf_append(&c_arr, "{", 1);
    if (rc == 0 && (!score || !chal || !idx))
        rc = -1, snprintf(j->err, sizeof j->err, "out of memory");
    int sc = rc == 0 ? score_chunk(j, r, score, chal, idx) : SC_OK;
    if (sc == SC_UNAVAILABLE && ++j->unavailable <= BT_RETRIES)
        rc = 3, job_reset_missing(j); /* the worker is away: the same chunk again, later */
    else if (sc != SC_OK || (rc == 0 && aggregate_chunk(j, r, score, chal, &s_arr, &f_arr, &c_arr)))
        rc = -1;
    else if (rc == 0)
        j->unavailable = 0;
    dynbuf_append(&s_arr, "}", 1), dynbuf_append(&f_arr, "}", 1), dynbuf_append(&c_arr, "}", 1);
    if (rc == 0 && (s_arr.err || f_arr.err || c_arr.err))
        rc = -1, snprintf(j->err, sizeof j->err, "out of memory");
    if (rc == 0) {
        j->processed += n;
        snprintf(j->cur_at, sizeof j->cur_at, "%s", PQgetvalue(r, n - 1, K_AT));
        snprintf(j->cur_id, sizeof j->cur_id, "%s", PQgetvalue(r, n - 1, K_ID));
        rc = record_chunk(j, s_arr.p, f_arr.p, c_arr.p);
    }
    dynbuf_free(&s_arr);
    dynbuf_free(&f_arr);
    dynbuf_free(&c_arr);
    free(score);
    free(chal);
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

/* The AUCs from the job's labelled scores (the champion's, or with challenger 1 the
 * challenger's), grouped by distinct score, highest first. */
static int job_aucs(bt_job *j, int challenger, double *roc, double *pr)
{
    static const char *const sql[2] = {
        "SELECT score, count(*) FILTER (WHERE fraud), count(*) FILTER (WHERE NOT fraud) FROM "
        "backtest_scores WHERE backtest_id = $1 AND score IS NOT NULL GROUP BY score "
        "ORDER BY score DESC",
        "SELECT challenger_score, count(*) FILTER (WHERE fraud), count(*) FILTER (WHERE NOT "
        "fraud) FROM backtest_scores WHERE backtest_id = $1 AND challenger_score IS NOT NULL "
        "GROUP BY challenger_score ORDER BY challenger_score DESC"};
    const char *v[] = {j->id};
    PGresult *r = NULL;
    int st =
        db_query(j->c, sql[challenger != 0], 1, v, NULL, NULL, 0, dl(), &r, j->err, sizeof j->err);
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
    btreport_extra x = {j->recorded ? NAN : j->review,
                        NAN,
                        NAN,
                        j->challenger[0] != 0,
                        NAN,
                        NAN,
                        cJSON_GetObjectItemCaseSensitive(j->filter, "label_sources"),
                        j->ru ? j->ru->list_versions : NULL};
    if (job_aucs(j, 0, &x.roc_auc, &x.pr_auc) ||
        (x.has_challenger && job_aucs(j, 1, &x.chal_roc_auc, &x.chal_pr_auc)))
        return -1;
    cJSON *rep = btreport_render(j->rep, &x);
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

/* Takes job id's advisory lock on c without waiting.  1 when taken, 0 when another session holds
 * it or the statement failed (e gets why). */
static int job_trylock(db_conn *c, const char *id, char *e, size_t elen)
{
    const char *v[] = {id};
    PGresult *r = NULL;
    int got = db_query(c, "SELECT pg_try_advisory_lock(" BT_LOCK_CLASS ", hashtext($1))", 1, v,
                       NULL, NULL, 0, dl(), &r, e, elen) == DB_OK &&
              PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return got;
}

static void job_unlock(db_conn *c, const char *id, char *e, size_t elen)
{
    const char *v[] = {id};
    db_exec(c, "SELECT pg_advisory_unlock(" BT_LOCK_CLASS ", hashtext($1))", 1, v, dl(), e, elen);
}

/* The failure's two statements on c: state failed (while running), the partial scores gone. */
static int record_failure(db_conn *c, const char *const v[2], char *e, size_t elen)
{
    int rc = db_exec(c,
                     "UPDATE backtests SET state = 'failed', error = $2, finished_at = "
                     "clock_timestamp(), updated_at = clock_timestamp() WHERE id = $1 AND state = "
                     "'running'",
                     2, v, dl(), e, elen);
    if (rc == DB_OK)
        db_exec(c, "DELETE FROM backtest_scores WHERE backtest_id = $1", 1, v, dl(), e, elen);
    return rc;
}

/* Records j's failure (j->err).  On the job's own connection; when that one is gone (a statement
 * overran BT_QUERY_MS and was abandoned, or its backend was ended), on a fresh one under the job's
 * advisory lock: otherwise nothing is recorded, the lock goes with the old session and the job is
 * claimed again at once, failing again for good when its failure is deterministic.  A job another
 * runner claimed meanwhile (it holds the lock) is left to it; with the database unreachable the
 * job stays running and is resumed once it is back. */
static void fail(bt_job *j)
{
    char scratch[256];
    const char *v[] = {j->id, j->err};
    db_conn *fresh = NULL;
    int rc = record_failure(j->c, v, scratch, sizeof scratch);
    if ((rc == DB_DOWN || rc == DB_TIMEOUT) &&
        db_acquire(j->run->a->db, dl(), j->run->a->cfg->pool_wait_ms, &fresh) == DB_OK) {
        if (job_trylock(fresh, j->id, scratch, sizeof scratch)) {
            record_failure(fresh, v, scratch, sizeof scratch);
            job_unlock(fresh, j->id, scratch, sizeof scratch);
        }
        db_release(j->run->a->db, fresh);
    }
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
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(p, "challenger_model_id");
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(p, "rules");
    int rc = 0;
    if (cJSON_IsString(mode) && strcmp(mode->valuestring, "recorded") == 0)
        j->recorded = 1;
    else if (cJSON_IsString(champ) && cJSON_IsNumber(rv) && cJSON_IsNumber(bv) &&
             cJSON_IsString(fb) && strlen(champ->valuestring) < sizeof j->champion) {
        snprintf(j->champion, sizeof j->champion, "%s", champ->valuestring);
        if (cJSON_IsString(cl) && strlen(cl->valuestring) < sizeof j->challenger)
            snprintf(j->challenger, sizeof j->challenger, "%s", cl->valuestring);
        j->review = rv->valuedouble, j->block = bv->valuedouble;
        j->fallback = decision_of(fb->valuestring);
        if (cJSON_IsArray(rules) && cJSON_GetArraySize(rules) > 0 &&
            !(j->rules = cJSON_Duplicate(rules, 1)))
            rc = -1, snprintf(j->err, sizeof j->err, "out of memory");
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
    return job_policy(j, PQgetvalue(r, 0, J_POLICY)) || rules_prepare(j) ? -1 : 0;
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

/* The runnable jobs after (created_at, id) = ($1 microseconds after the epoch, $2), oldest first
 * ($1 NULL: from the first), a page at a time: claim walks them all if it must, so however many
 * the other runners hold, a free one is found.  The position travels as an integer, never as
 * timestamp text, whose form depends on the session's DateStyle and TimeZone. */
#define CLAIM_PAGE 16
#define CLAIM_PAGE_TEXT "16"
static const char runnable_sql[] =
    "SELECT id, (extract(epoch FROM created_at) * 1000000)::bigint FROM backtests WHERE state IN "
    "('queued', 'running') AND ($1::bigint IS NULL OR (created_at, id) > ('epoch'::timestamptz + "
    "$1::bigint * interval '1 microsecond', $2::uuid)) ORDER BY created_at, id "
    "LIMIT " CLAIM_PAGE_TEXT;

/* Tries to take job id: its advisory lock, then the row.  1 with *out, else 0 (lock released). */
static int claim_one(db_conn *c, const char *id, PGresult **out, char *e, size_t elen)
{
    const char *v[] = {id};
    PGresult *r = NULL;
    int got = 0;
    if (job_trylock(c, id, e, elen)) {
        if (db_query(c, claim_sql, 1, v, NULL, NULL, 0, dl(), &r, e, elen) == DB_OK &&
            PQntuples(r) == 1)
            got = 1, *out = r, r = NULL;
        else /* finished or cancelled meanwhile */
            job_unlock(c, id, e, elen);
    }
    PQclear(r);
    return got;
}

/* Takes the oldest runnable job no other runner holds.  Returns 1 with *out (caller PQclear()s
 * it; the lock stays held on c), 0 when there is none, -1 on error. */
static int claim(db_conn *c, PGresult **out)
{
    char e[256]; /* db_query's message: nothing to report here, the next poll retries */
    char at[24] = "", id[37] = "";
    int got = 0, full = 1;
    *out = NULL;
    while (!got && full) {
        const char *v[] = {at[0] ? at : NULL, id[0] ? id : NULL};
        PGresult *ids = NULL;
        if (db_query(c, runnable_sql, 2, v, NULL, NULL, 0, dl(), &ids, e, sizeof e) != DB_OK) {
            PQclear(ids);
            return -1;
        }
        int n = PQntuples(ids);
        for (int i = 0; i < n && !got; i++)
            got = claim_one(c, PQgetvalue(ids, i, 0), out, e, sizeof e);
        full = n == CLAIM_PAGE;
        if (n > 0) {
            snprintf(id, sizeof id, "%s", PQgetvalue(ids, n - 1, 0));
            snprintf(at, sizeof at, "%s", PQgetvalue(ids, n - 1, 1));
        }
        PQclear(ids);
    }
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
            rules_release(j);
            cJSON_Delete(j->rules);
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
