/* btreport.c - a backtest's aggregates and report.  See btreport.h. */
#include "btreport.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"

static const char *const dec_name[BT_NDEC] = {"allow", "review", "block"};

btreport *btreport_new(void)
{
    return calloc(1, sizeof(btreport));
}

void btreport_free(btreport *r)
{
    if (!r)
        return;
    for (int i = 0; i <= r->nmiss && i <= BTREPORT_MAX_FEATURES; i++)
        free(r->miss_name[i]);
    for (int i = 0; i < r->nrules; i++)
        free(r->rule[i].fraud_amt);
    free(r->rule);
    free(r);
}

int btreport_currency(btreport *r, const char *code)
{
    for (int i = 0; i < r->ncur; i++)
        if (memcmp(r->cur[i], code, 4) == 0)
            return i;
    if (r->ncur == BTREPORT_MAX_CURRENCIES || strlen(code) != 3)
        return -1;
    memcpy(r->cur[r->ncur], code, 4);
    return r->ncur++;
}

int btreport_missing(btreport *r, const char *name, int64_t n)
{
    int i = 0;
    while (i < r->nmiss && strcmp(r->miss_name[i], name) != 0)
        i++;
    if (i == r->nmiss) {
        /* Past the bound every further name shares the last slot. */
        int full = r->nmiss == BTREPORT_MAX_FEATURES;
        if (full && r->miss_name[i] == NULL && !(r->miss_name[i] = strdup("(other)")))
            return -1;
        if (!full && !(r->miss_name[i] = strdup(name)))
            return -1;
        if (!full)
            r->nmiss++;
    }
    r->miss_count[i] += n;
    return 0;
}

/* ---- rules ----------------------------------------------------------------------------------- */

/* Allocates n empty rules (names unset).  0, or -1 when out of memory (r unchanged). */
static int rules_alloc(btreport *r, int n)
{
    btreport_rule *rule = calloc((size_t)n + 1, sizeof *rule);
    int ok = rule != NULL;
    for (int i = 0; ok && i < n; i++)
        ok = (rule[i].fraud_amt = calloc(BTREPORT_MAX_CURRENCIES, sizeof(int64_t))) != NULL;
    if (!ok) {
        for (int i = 0; rule && i < n; i++)
            free(rule[i].fraud_amt);
        free(rule);
        return -1;
    }
    r->rule = rule;
    r->nrules = n;
    return 0;
}

int btreport_rules_init(btreport *r, int n, const char *const *names, const int *actions,
                        const int *modes)
{
    if (r->nrules) { /* restored from a partial: the same rules, or a corrupt job */
        if (r->nrules != n)
            return -1;
        for (int i = 0; i < n; i++)
            if (strcmp(r->rule[i].name, names[i]) || r->rule[i].action != actions[i] ||
                r->rule[i].mode != modes[i])
                return -1;
        return 0;
    }
    if (n == 0)
        return 0;
    if (rules_alloc(r, n))
        return -1;
    for (int i = 0; i < n; i++) {
        snprintf(r->rule[i].name, sizeof r->rule[i].name, "%s", names[i]);
        r->rule[i].action = actions[i], r->rule[i].mode = modes[i];
    }
    return 0;
}

void btreport_rules_add(btreport *r, const uint64_t *matched, int decided_by, int rule, int label,
                        int64_t amount, int cur)
{
    if (decided_by >= 0 && decided_by < BTREPORT_DECIDED_BY)
        r->decided_by[decided_by]++;
    if (rule >= 0 && rule < r->nrules)
        r->rule[rule].decided++;
    for (int i = 0; i < r->nrules; i++) {
        if (!(matched[i / 64] >> (i % 64) & 1))
            continue;
        btreport_rule *e = &r->rule[i];
        e->hits++;
        if (label == BT_FRAUD)
            e->fraud++, e->fraud_amt[cur] += amount;
        else if (label == BT_LEGIT)
            e->legit++;
    }
}

void btreport_probes(btreport *r, int64_t recorded, int64_t changed)
{
    r->probes_recorded += recorded;
    r->probes_changed += changed;
}

int btreport_operand_missing(btreport *r, const char *name, int64_t n)
{
    int i = 0;
    while (i < r->nopm && strcmp(r->opm_name[i], name) != 0)
        i++;
    if (i == r->nopm) {
        if (r->nopm == BTREPORT_MAX_OPERANDS || strlen(name) >= sizeof r->opm_name[0])
            return -1;
        snprintf(r->opm_name[r->nopm++], sizeof r->opm_name[0], "%s", name);
    }
    r->opm_count[i] += n;
    return 0;
}

int btreport_bucket(float score)
{
    double s = score;
    if (!(s >= 0.0)) /* negative or NaN: below every threshold */
        return -1;
    double f = floor(s * 100.0);
    int i = f > 99.0 ? 99 : (int)f;
    /* s * 100 is rounded: settle on the exact comparisons a decision makes (score >= i / 100). */
    while (i < BTREPORT_SWEEP - 1 && s >= (double)(i + 1) / 100.0)
        i++;
    while (i >= 0 && s < (double)i / 100.0)
        i--;
    return i;
}

void btreport_add(btreport *r, const btreport_row *w)
{
    r->rows++;
    r->decisions[w->cand]++;
    r->matrix[w->live][w->cand]++;
    r->over_review += w->over_review;
    r->chal_scored += w->chal_scored != 0;
    if (w->cand_scored)
        r->scored++;
    else
        r->fallback++;
    if (w->live_degraded) {
        r->live_degraded++;
    } else {
        /* The replay check: the stored score against the candidate's, bit for bit. */
        r->compared++;
        if (w->cand_scored && memcmp(&w->score, &w->live_score, sizeof(float)) == 0)
            r->same_score++;
        if (w->cand == w->live)
            r->same_decision++;
    }
    int b = w->cand_scored ? btreport_bucket(w->score) : -1;
    if (b >= 0)
        r->sweep_all[b]++;
    if (w->label == BT_UNLABELLED)
        return;
    int l = w->label == BT_FRAUD ? 0 : 1;
    r->lab[l][w->cand]++;
    r->lab_amt[l][w->cand][w->cur] += w->amount;
    if (b >= 0 && l == 0) {
        r->sweep_fraud[b]++;
        r->sweep_fraud_amt[b][w->cur] += w->amount;
    } else if (b >= 0) {
        r->sweep_legit[b]++;
    }
}

/* ---- partial aggregates as JSON -------------------------------------------------------------- */

static void put_counts(cJSON *o, const char *name, const int64_t *v, size_t n)
{
    cJSON *a = cJSON_AddArrayToObject(o, name);
    for (size_t i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
}

/* Amounts may pass 2^53 minor units summed: kept as decimal strings. */
static void put_amounts(cJSON *o, const char *name, const int64_t *v, size_t n)
{
    cJSON *a = cJSON_AddArrayToObject(o, name);
    char buf[24];
    for (size_t i = 0; a && i < n; i++) {
        snprintf(buf, sizeof buf, "%" PRId64, v[i]);
        cJSON_AddItemToArray(a, cJSON_CreateString(buf));
    }
}

cJSON *btreport_to_json(const btreport *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    const int64_t scalars[] = {r->rows,     r->scored,     r->fallback,      r->live_degraded,
                               r->compared, r->same_score, r->same_decision, r->over_review};
    put_counts(o, "scalars", scalars, sizeof scalars / sizeof scalars[0]);
    put_counts(o, "decisions", r->decisions, BT_NDEC);
    put_counts(o, "matrix", &r->matrix[0][0], BT_NDEC * BT_NDEC);
    put_counts(o, "lab", &r->lab[0][0], 2 * BT_NDEC);
    cJSON *cur = cJSON_AddArrayToObject(o, "currencies");
    for (int c = 0; cur && c < r->ncur; c++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToArray(cur, e);
        cJSON_AddStringToObject(e, "code", r->cur[c]);
        int64_t lab[2 * BT_NDEC], sweep[BTREPORT_SWEEP];
        for (int l = 0; l < 2; l++)
            for (int d = 0; d < BT_NDEC; d++)
                lab[l * BT_NDEC + d] = r->lab_amt[l][d][c];
        for (int b = 0; b < BTREPORT_SWEEP; b++)
            sweep[b] = r->sweep_fraud_amt[b][c];
        put_amounts(e, "lab", lab, 2 * BT_NDEC);
        put_amounts(e, "sweep", sweep, BTREPORT_SWEEP);
    }
    put_counts(o, "sweep_all", r->sweep_all, BTREPORT_SWEEP);
    put_counts(o, "sweep_fraud", r->sweep_fraud, BTREPORT_SWEEP);
    put_counts(o, "sweep_legit", r->sweep_legit, BTREPORT_SWEEP);
    cJSON *miss = cJSON_AddObjectToObject(o, "missing");
    for (int i = 0; miss && i <= r->nmiss && r->miss_name[i]; i++)
        cJSON_AddNumberToObject(miss, r->miss_name[i], (double)r->miss_count[i]);
    cJSON_AddNumberToObject(o, "chal_scored", (double)r->chal_scored);
    put_counts(o, "decided_by", r->decided_by, BTREPORT_DECIDED_BY);
    const int64_t probes[] = {r->probes_recorded, r->probes_changed};
    put_counts(o, "probes", probes, 2);
    cJSON *rules = cJSON_AddArrayToObject(o, "rules");
    for (int i = 0; rules && i < r->nrules; i++) {
        const btreport_rule *e = &r->rule[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddItemToArray(rules, x);
        cJSON_AddStringToObject(x, "name", e->name);
        const int64_t c[] = {e->action, e->mode, e->hits, e->decided, e->fraud, e->legit};
        put_counts(x, "c", c, sizeof c / sizeof c[0]);
        put_amounts(x, "fraud_amt", e->fraud_amt, (size_t)r->ncur);
    }
    cJSON *opm = cJSON_AddObjectToObject(o, "operand_missing");
    for (int i = 0; opm && i < r->nopm; i++)
        cJSON_AddNumberToObject(opm, r->opm_name[i], (double)r->opm_count[i]);
    return o;
}

/* Reads exactly n numbers (counts) or decimal strings (amounts) of array name into v. */
static int get_array(const cJSON *o, const char *name, int64_t *v, size_t n, int amounts)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsArray(a) || (size_t)cJSON_GetArraySize(a) != n)
        return -1;
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (amounts ? !cJSON_IsString(e) : !cJSON_IsNumber(e))
            return -1;
        v[i++] = amounts ? strtoll(e->valuestring, NULL, 10) : (int64_t)e->valuedouble;
    }
    return 0;
}

static int get_currencies(btreport *r, const cJSON *o)
{
    const cJSON *cur = cJSON_GetObjectItemCaseSensitive(o, "currencies"), *e;
    if (!cJSON_IsArray(cur))
        return -1;
    cJSON_ArrayForEach(e, cur)
    {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
        int64_t lab[2 * BT_NDEC], sweep[BTREPORT_SWEEP];
        int c = cJSON_IsString(code) ? btreport_currency(r, code->valuestring) : -1;
        if (c < 0 || get_array(e, "lab", lab, 2 * BT_NDEC, 1) ||
            get_array(e, "sweep", sweep, BTREPORT_SWEEP, 1))
            return -1;
        for (int l = 0; l < 2; l++)
            for (int d = 0; d < BT_NDEC; d++)
                r->lab_amt[l][d][c] = lab[l * BT_NDEC + d];
        for (int b = 0; b < BTREPORT_SWEEP; b++)
            r->sweep_fraud_amt[b][c] = sweep[b];
    }
    return 0;
}

/* The rule and challenger members of a partial (after the currencies).  A partial written
 * before backtests had rules has none of them (all zero).  0, or -1 when malformed. */
static int get_rules(btreport *r, const cJSON *j)
{
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(j, "chal_scored");
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(j, "rules");
    const cJSON *opm = cJSON_GetObjectItemCaseSensitive(j, "operand_missing"), *e;
    int64_t probes[2];
    if (!cs && !rules && !opm)
        return 0;
    if (!cJSON_IsNumber(cs) || !cJSON_IsArray(rules) || !cJSON_IsObject(opm) ||
        get_array(j, "decided_by", r->decided_by, BTREPORT_DECIDED_BY, 0) ||
        get_array(j, "probes", probes, 2, 0))
        return -1;
    r->probes_recorded = probes[0], r->probes_changed = probes[1];
    r->chal_scored = (int64_t)cs->valuedouble;
    int n = cJSON_GetArraySize(rules), i = 0;
    if (n > 0 && rules_alloc(r, n))
        return -1;
    cJSON_ArrayForEach(e, rules)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
        int64_t c[6];
        btreport_rule *x = &r->rule[i++];
        if (!cJSON_IsString(name) || get_array(e, "c", c, 6, 0) ||
            get_array(e, "fraud_amt", x->fraud_amt, (size_t)r->ncur, 1))
            return -1;
        snprintf(x->name, sizeof x->name, "%s", name->valuestring);
        x->action = (int)c[0], x->mode = (int)c[1], x->hits = c[2], x->decided = c[3];
        x->fraud = c[4], x->legit = c[5];
    }
    cJSON_ArrayForEach(e, opm)
    {
        if (!cJSON_IsNumber(e) || btreport_operand_missing(r, e->string, (int64_t)e->valuedouble))
            return -1;
    }
    return 0;
}

int btreport_from_json(btreport *r, const cJSON *j)
{
    int64_t s[8];
    const cJSON *miss = cJSON_GetObjectItemCaseSensitive(j, "missing"), *e;
    if (get_array(j, "scalars", s, 8, 0) || get_array(j, "decisions", r->decisions, BT_NDEC, 0) ||
        get_array(j, "matrix", &r->matrix[0][0], BT_NDEC * BT_NDEC, 0) ||
        get_array(j, "lab", &r->lab[0][0], 2 * BT_NDEC, 0) || get_currencies(r, j) ||
        get_array(j, "sweep_all", r->sweep_all, BTREPORT_SWEEP, 0) ||
        get_array(j, "sweep_fraud", r->sweep_fraud, BTREPORT_SWEEP, 0) ||
        get_array(j, "sweep_legit", r->sweep_legit, BTREPORT_SWEEP, 0) || !cJSON_IsObject(miss) ||
        get_rules(r, j))
        return -1;
    r->rows = s[0], r->scored = s[1], r->fallback = s[2], r->live_degraded = s[3];
    r->compared = s[4], r->same_score = s[5], r->same_decision = s[6], r->over_review = s[7];
    cJSON_ArrayForEach(e, miss)
    {
        if (!cJSON_IsNumber(e) || btreport_missing(r, e->string, (int64_t)e->valuedouble))
            return -1;
    }
    return 0;
}

/* ---- AUCs ------------------------------------------------------------------------------------ */

void btreport_auc(const btreport_score_group *g, size_t n, double *roc_auc, double *pr_auc)
{
    int64_t P = 0, N = 0;
    for (size_t i = 0; i < n; i++)
        P += g[i].fraud, N += g[i].legit;
    *roc_auc = *pr_auc = NAN;
    if (P == 0)
        return;
    /* Walk the distinct scores from the highest: each group moves the ROC curve by
     * (legit / N, fraud / P); the area under that step is a trapezoid (ties count one half). */
    double area = 0, ap = 0, prev_recall = 0;
    int64_t tp = 0, fp = 0;
    for (size_t i = 0; i < n; i++) {
        area += (double)g[i].legit * ((double)tp + (double)g[i].fraud / 2.0);
        tp += g[i].fraud;
        fp += g[i].legit;
        double recall = (double)tp / (double)P;
        ap += (recall - prev_recall) * ((double)tp / (double)(tp + fp));
        prev_recall = recall;
    }
    *pr_auc = ap;
    if (N > 0)
        *roc_auc = area / ((double)P * (double)N);
}

/* ---- the report ------------------------------------------------------------------------------ */

static void add_ratio(cJSON *o, const char *name, double num, double den)
{
    if (den > 0)
        cJSON_AddNumberToObject(o, name, num / den);
    else
        cJSON_AddNullToObject(o, name);
}

static void add_number_or_null(cJSON *o, const char *name, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, name, v);
    else
        cJSON_AddNullToObject(o, name);
}

/* {"EUR": 123.45, ...}: amounts in major units, exact decimals (skipping zero sums). */
static cJSON *amounts_json(const btreport *r, const int64_t *minor, size_t stride)
{
    cJSON *o = cJSON_CreateObject();
    for (int c = 0; o && c < r->ncur; c++) {
        int64_t v = minor[(size_t)c * stride];
        if (v == 0)
            continue;
        int exp = val_currency_exponent(r->cur[c]);
        char buf[48];
        if (exp <= 0) {
            snprintf(buf, sizeof buf, "%" PRId64, v);
        } else {
            int64_t p = 1;
            for (int k = 0; k < exp; k++)
                p *= 10;
            snprintf(buf, sizeof buf, "%" PRId64 ".%0*" PRId64, v / p, exp, v % p);
        }
        cJSON_AddRawToObject(o, r->cur[c], buf);
    }
    return o;
}

static cJSON *labelled_json(const btreport *r, const btreport_extra *x)
{
    const cJSON *sources = x->label_sources;
    cJSON *o = cJSON_CreateObject();
    int64_t fraud = 0, legit = 0;
    for (int d = 0; d < BT_NDEC; d++)
        fraud += r->lab[0][d], legit += r->lab[1][d];
    cJSON_AddNumberToObject(o, "rows", (double)(fraud + legit));
    cJSON_AddNumberToObject(o, "fraud", (double)fraud);
    cJSON_AddNumberToObject(o, "legit", (double)legit);
    cJSON_AddItemToObject(o, "label_sources",
                          sources ? cJSON_Duplicate(sources, 1) : cJSON_CreateNull());
    cJSON *by = cJSON_AddObjectToObject(o, "by_decision");
    for (int d = 0; by && d < BT_NDEC; d++) {
        cJSON *e = cJSON_AddObjectToObject(by, dec_name[d]);
        cJSON_AddNumberToObject(e, "fraud", (double)r->lab[0][d]);
        cJSON_AddNumberToObject(e, "legit", (double)r->lab[1][d]);
        cJSON_AddItemToObject(e, "fraud_amount", amounts_json(r, &r->lab_amt[0][d][0], 1));
        cJSON_AddItemToObject(e, "legit_amount", amounts_json(r, &r->lab_amt[1][d][0], 1));
    }
    int64_t fb = r->lab[0][BT_BLOCK], fr = r->lab[0][BT_REVIEW];
    cJSON *blk = cJSON_AddObjectToObject(o, "block");
    add_ratio(blk, "precision", (double)fb, (double)(fb + r->lab[1][BT_BLOCK]));
    add_ratio(blk, "recall", (double)fb, (double)fraud);
    cJSON *br = cJSON_AddObjectToObject(o, "block_or_review");
    add_ratio(br, "precision", (double)(fb + fr),
              (double)(fb + fr + r->lab[1][BT_BLOCK] + r->lab[1][BT_REVIEW]));
    add_ratio(br, "recall", (double)(fb + fr), (double)fraud);
    add_number_or_null(o, "roc_auc", x->roc_auc);
    add_number_or_null(o, "pr_auc", x->pr_auc);
    add_number_or_null(o, "challenger_roc_auc", x->has_challenger ? x->chal_roc_auc : NAN);
    add_number_or_null(o, "challenger_pr_auc", x->has_challenger ? x->chal_pr_auc : NAN);
    return o;
}

/* The 100-point sweep: cumulative sums of the buckets from the top. */
static cJSON *sweep_json(const btreport *r, double review_threshold)
{
    cJSON *a = cJSON_CreateArray();
    int64_t all = 0, fraud = 0, legit = 0, fraud_total = 0;
    int64_t amt[BTREPORT_MAX_CURRENCIES] = {0};
    for (int d = 0; d < BT_NDEC; d++)
        fraud_total += r->lab[0][d];
    cJSON *pts[BTREPORT_SWEEP];
    for (int i = BTREPORT_SWEEP - 1; i >= 0; i--) {
        all += r->sweep_all[i], fraud += r->sweep_fraud[i], legit += r->sweep_legit[i];
        for (int c = 0; c < r->ncur; c++)
            amt[c] += r->sweep_fraud_amt[i][c];
        double t = (double)i / 100.0;
        cJSON *p = pts[i] = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "threshold", t);
        add_ratio(p, "block_rate", (double)all, (double)r->rows);
        /* the review band [min(review_threshold, t), t) */
        if (isnan(review_threshold))
            cJSON_AddNullToObject(p, "review_rate");
        else
            add_ratio(p, "review_rate", review_threshold < t ? (double)(r->over_review - all) : 0.0,
                      (double)r->rows);
        add_ratio(p, "recall", (double)fraud, (double)fraud_total);
        add_ratio(p, "precision", (double)fraud, (double)(fraud + legit));
        cJSON_AddItemToObject(p, "fraud_amount_caught", amounts_json(r, amt, 1));
    }
    for (int i = 0; i < BTREPORT_SWEEP; i++)
        cJSON_AddItemToArray(a, pts[i]);
    return a;
}

/* The rules section: totals, what decided, each rule's hits and labelled figures. */
static cJSON *rules_json(const btreport *r, const cJSON *list_versions)
{
    static const char *const by_name[BTREPORT_DECIDED_BY] = {"rule", "score_threshold", "fallback",
                                                             "default"};
    static const char *const action_name[] = {"allow", "review", "block"};
    cJSON *o = cJSON_CreateObject();
    int64_t hits[2] = {0, 0};
    cJSON_AddStringToObject(o, "list_membership", "current");
    cJSON_AddItemToObject(o, "list_versions",
                          list_versions ? cJSON_Duplicate(list_versions, 1) : cJSON_CreateObject());
    cJSON *by = cJSON_AddObjectToObject(o, "decided_by");
    for (int i = 0; by && i < BTREPORT_DECIDED_BY; i++)
        cJSON_AddNumberToObject(by, by_name[i], (double)r->decided_by[i]);
    cJSON *a = cJSON_AddArrayToObject(o, "by_rule");
    for (int i = 0; a && i < r->nrules; i++) {
        const btreport_rule *e = &r->rule[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddItemToArray(a, x);
        hits[e->mode == 1] += e->hits;
        cJSON_AddStringToObject(x, "name", e->name);
        cJSON_AddStringToObject(x, "action",
                                action_name[e->action >= 0 && e->action < 3 ? e->action : 0]);
        cJSON_AddStringToObject(x, "mode", e->mode == 1 ? "shadow" : "active");
        cJSON_AddNumberToObject(x, "hits", (double)e->hits);
        cJSON_AddNumberToObject(x, "decided", (double)e->decided);
        cJSON_AddNumberToObject(x, "fraud_hits", (double)e->fraud);
        cJSON_AddNumberToObject(x, "legit_hits", (double)e->legit);
        add_ratio(x, "precision", (double)e->fraud, (double)(e->fraud + e->legit));
        cJSON_AddItemToObject(x, "fraud_amount_caught", amounts_json(r, e->fraud_amt, 1));
    }
    cJSON *pr = cJSON_AddObjectToObject(o, "list_probes");
    cJSON_AddNumberToObject(pr, "recorded", (double)r->probes_recorded);
    cJSON_AddNumberToObject(pr, "changed", (double)r->probes_changed);
    cJSON_AddNumberToObject(o, "active_hits", (double)hits[0]);
    cJSON_AddNumberToObject(o, "shadow_hits", (double)hits[1]);
    cJSON *opm = cJSON_AddObjectToObject(o, "operands_unavailable");
    for (int i = 0; opm && i < r->nopm; i++)
        cJSON_AddNumberToObject(opm, r->opm_name[i], (double)r->opm_count[i]);
    return o;
}

cJSON *btreport_render(const btreport *r, const btreport_extra *x)
{
    double review_threshold = x->review_threshold;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "rows", (double)r->rows);
    cJSON *cand = cJSON_AddObjectToObject(o, "candidate");
    cJSON_AddNumberToObject(cand, "scored", (double)r->scored);
    cJSON_AddNumberToObject(cand, "fallback", (double)r->fallback);
    if (x->has_challenger)
        cJSON_AddNumberToObject(cand, "challenger_scored", (double)r->chal_scored);
    else
        cJSON_AddNullToObject(cand, "challenger_scored");
    cJSON *dec = cJSON_AddObjectToObject(o, "decisions");
    for (int d = 0; d < BT_NDEC; d++)
        cJSON_AddNumberToObject(dec, dec_name[d], (double)r->decisions[d]);
    add_ratio(o, "block_rate", (double)r->decisions[BT_BLOCK], (double)r->rows);
    add_ratio(o, "review_rate", (double)r->decisions[BT_REVIEW], (double)r->rows);
    cJSON *m = cJSON_AddObjectToObject(o, "live_to_candidate");
    for (int l = 0; m && l < BT_NDEC; l++) {
        cJSON *row = cJSON_AddObjectToObject(m, dec_name[l]);
        for (int d = 0; d < BT_NDEC; d++)
            cJSON_AddNumberToObject(row, dec_name[d], (double)r->matrix[l][d]);
    }
    cJSON *rp = cJSON_AddObjectToObject(o, "replay");
    cJSON_AddNumberToObject(rp, "live_degraded", (double)r->live_degraded);
    cJSON_AddNumberToObject(rp, "compared", (double)r->compared);
    cJSON_AddNumberToObject(rp, "same_score", (double)r->same_score);
    cJSON_AddNumberToObject(rp, "same_decision", (double)r->same_decision);
    cJSON_AddItemToObject(o, "labelled", labelled_json(r, x));
    cJSON_AddItemToObject(o, "sweep", sweep_json(r, review_threshold));
    cJSON *miss = cJSON_AddObjectToObject(o, "missing_features");
    for (int i = 0; miss && i <= r->nmiss && r->miss_name[i]; i++)
        cJSON_AddNumberToObject(miss, r->miss_name[i], (double)r->miss_count[i]);
    if (r->nrules)
        cJSON_AddItemToObject(o, "rules", rules_json(r, x->list_versions));
    else
        cJSON_AddNullToObject(o, "rules");
    return o;
}
