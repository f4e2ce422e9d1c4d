/* btreport.h - a backtest's aggregates and its report (issue 14): pure arithmetic, no I/O.
 *
 * Owns: btreport, the running aggregates of one backtest (counts of candidate decisions, the 3x3
 * matrix live -> candidate, labelled counts and amounts per candidate decision and currency, the
 * threshold-sweep histogram, missing-feature counts, the replay comparison), their JSON form (the
 * partial aggregates a job stores after each chunk, so it resumes after a restart) and the final
 * report (rates, precision/recall, the sweep, ROC AUC and PR AUC from the grouped scores).
 * Costs: btreport_add O(1) (the sweep bucket is found arithmetically); JSON O(size of the
 * aggregates); the AUCs O(distinct scores).  Not thread-safe: one job, one thread.
 *
 * Definitions (the README's "Backtests" section says the same):
 *   - "fraud" = label fraud (with a source among label_sources when the job restricts them);
 *     "legit" = label legit; a fraud label from another source is not a labelled row.
 *   - rates are over every row of the job; precision = fraud / labelled rows in the set,
 *     recall = fraud in the set / fraud rows.  A ratio with a zero denominator is null.
 *   - sweep point i (0..99) has threshold t = i / 100: block_rate = rows scored >= t / rows,
 *     review_rate = rows scored in [min(review_threshold, t), t) / rows, recall and precision of
 *     "score >= t" on the labelled rows, fraud_amount_caught = fraud amounts scored >= t.
 *   - ROC AUC = sklearn's roc_auc_score (ties count one half), PR AUC = sklearn's
 *     average_precision_score: sum over distinct scores s, from the highest, of
 *     (R(s) - R(prev)) * P(s), where P and R are precision and recall of "score >= s".
 *   Scores are compared as doubles with the thresholds, exactly as a live decision compares.
 *   - rules: a rule "hits" a row when it matched (active and shadow alike, as rules_eval says);
 *     precision = fraud hits / labelled hits; fraud_amount_caught = fraud amounts of its hits.
 *     "decided" counts the rows whose candidate decision it made (decided_by rule:<name>). */
#ifndef VIGIL_BTREPORT_H
#define VIGIL_BTREPORT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define BTREPORT_SWEEP 100
#define BTREPORT_MAX_CURRENCIES 200
#define BTREPORT_MAX_FEATURES 4096 /* names whose missing count is kept (the rest: "(other)") */

enum btreport_decision { BT_ALLOW, BT_REVIEW, BT_BLOCK, BT_NDEC };
enum btreport_label { BT_UNLABELLED, BT_FRAUD, BT_LEGIT };

#define BTREPORT_DECIDED_BY 4    /* rule, score_threshold, fallback, default (rules.h order) */
#define BTREPORT_MAX_OPERANDS 32 /* built-in operand names whose unavailable count is kept */

/* One rule of the candidate and what it did over the rows. */
typedef struct btreport_rule {
    char name[72];
    int action, mode;      /* rules_action, rules_mode */
    int64_t hits, decided; /* rows it matched; rows it decided (decided_by rule:<name>) */
    int64_t fraud, legit;  /* labelled rows it matched */
    int64_t *fraud_amt;    /* [BTREPORT_MAX_CURRENCIES]: minor units of its fraud hits */
} btreport_rule;

/* What one row contributes. */
typedef struct btreport_row {
    int live;          /* the stored decision (enum btreport_decision) */
    int live_degraded; /* the stored decision was a fallback */
    float live_score;  /* the stored champion score (NaN when none) */
    int cand;          /* the candidate's decision */
    int cand_scored;   /* the candidate champion gave a finite score */
    float score;       /* that score (NaN otherwise) */
    int over_review;   /* scored and score >= the candidate's review threshold */
    int chal_scored;   /* the candidate challenger gave a finite score */
    int label;         /* enum btreport_label, after the label-source restriction */
    int64_t amount;    /* minor units */
    int cur;           /* btreport_currency index */
} btreport_row;

typedef struct btreport {
    int64_t rows, scored, fallback;
    int64_t decisions[BT_NDEC];
    int64_t matrix[BT_NDEC][BT_NDEC]; /* [live][candidate] */
    int64_t live_degraded, compared, same_score, same_decision;
    int64_t over_review;     /* scored rows at or above the review threshold */
    int64_t lab[2][BT_NDEC]; /* [0 fraud, 1 legit][candidate decision] */
    int ncur;
    char cur[BTREPORT_MAX_CURRENCIES][4];
    int64_t lab_amt[2][BT_NDEC][BTREPORT_MAX_CURRENCIES];
    int64_t sweep_all[BTREPORT_SWEEP], sweep_fraud[BTREPORT_SWEEP], sweep_legit[BTREPORT_SWEEP];
    int64_t sweep_fraud_amt[BTREPORT_SWEEP][BTREPORT_MAX_CURRENCIES];
    int nmiss;
    char *miss_name[BTREPORT_MAX_FEATURES + 1]; /* malloc'd; the last slot is "(other)" */
    int64_t miss_count[BTREPORT_MAX_FEATURES + 1];
    int64_t chal_scored; /* rows the candidate challenger scored */
    /* the candidate's rules (nrules 0: none); btreport_rules_init sizes them */
    int nrules;
    btreport_rule *rule;
    int64_t decided_by[BTREPORT_DECIDED_BY]; /* enum rules_decided_by */
    /* list probes of the candidate the live decision made too (same list, same operand), and
     * those whose answer now (current list) differs from the recorded one */
    int64_t probes_recorded, probes_changed;
    int nopm; /* built-in rule operands with no stored value, by name */
    char opm_name[BTREPORT_MAX_OPERANDS][48];
    int64_t opm_count[BTREPORT_MAX_OPERANDS];
} btreport;

/* A zeroed report, malloc'd (it is ~300 KiB).  NULL when out of memory; free with btreport_free. */
btreport *btreport_new(void);
void btreport_free(btreport *r);

/* The index of currency code (3 letters) in r, added when new.  -1 when the table is full. */
int btreport_currency(btreport *r, const char *code);
/* Adds n to the missing count of feature name.  0, or -1 when out of memory. */
int btreport_missing(btreport *r, const char *name, int64_t n);
void btreport_add(btreport *r, const btreport_row *row);

/* The candidate's rules: n of them, names[i] / actions[i] / modes[i] in policy order.  On a
 * report restored from a partial that already has them, checks they are the same rules.  0, or
 * -1 when out of memory or the rules differ from the restored ones. */
int btreport_rules_init(btreport *r, int n, const char *const *names, const int *actions,
                        const int *modes);
/* One row's rule outcome: matched is rules_eval's bitmap, decided_by/rule rules_decide's verdict
 * (rule -1 unless decided by a rule); label, amount and cur as in btreport_row. */
void btreport_rules_add(btreport *r, const uint64_t *matched, int decided_by, int rule, int label,
                        int64_t amount, int cur);
/* Counts list probes answered now that the live decision also made: recorded of them, changed
 * of those with another answer now. */
void btreport_probes(btreport *r, int64_t recorded, int64_t changed);
/* Adds n to the count of rows where built-in operand name had no stored value (missing).  0, or
 * -1 when the table of names is full (the count is then dropped). */
int btreport_operand_missing(btreport *r, const char *name, int64_t n);

/* The sweep bucket of a score: the largest i in 0..99 with score >= i / 100.0, or -1. */
int btreport_bucket(float score);

/* The aggregates as JSON (the job's `partial`), and back.  to_json: NULL when out of memory;
 * from_json: 0, or -1 when j is not what to_json wrote (r is then unspecified). */
cJSON *btreport_to_json(const btreport *r);
int btreport_from_json(btreport *r, const cJSON *j);

/* One distinct candidate score of the labelled rows and how many fraud/legit rows have it. */
typedef struct btreport_score_group {
    double score;
    int64_t fraud, legit;
} btreport_score_group;

/* ROC AUC and average precision from the groups sorted by score, highest first.  Each is NaN
 * when undefined (no fraud, or for the ROC no legit row). */
void btreport_auc(const btreport_score_group *g, size_t n, double *roc_auc, double *pr_auc);

/* What the report is rendered with besides the aggregates. */
typedef struct btreport_extra {
    double review_threshold; /* the candidate's (NaN for a replay of the recorded policies,
                                whose thresholds vary: the sweep's review_rate is then null) */
    double roc_auc, pr_auc;  /* the champion's (NaN: undefined) */
    int has_challenger;      /* the candidate has a challenger: its AUCs are reported */
    double chal_roc_auc, chal_pr_auc;
    const cJSON *label_sources; /* the restriction as a JSON array, or NULL */
    const cJSON *list_versions; /* {"list": version} the rules read (NULL without rules) */
} btreport_extra;

/* The final report.  Caller deletes the result; NULL when out of memory. */
cJSON *btreport_render(const btreport *r, const btreport_extra *x);

#endif
