/* decision.h - POST /api/v1/transactions: one risk decision, run as a pipeline of stages over one
 * request struct (decision_request).  A stage reads fields earlier stages filled and fills its
 * own; it returns DECISION_NEXT, or DECISION_STOP with the response already in d->resp (an error,
 * or a replay).  decision_post runs the stages of decision.c's table in order, then frees the
 * request in one place.
 *
 * The stages, in order:
 *   parse        Idempotency-Key, strict body, every field checked; the request hash
 *   open         the read round trip: the claim's lookup (with a key), the policy SELECT and
 *                the user/features SELECT, one job of the read queue (batchq.h: with those of
 *                concurrent decisions in one round trip on a pooled connection, given back at
 *                once, VIGIL_READ_LANES such round trips at once; each decision's its own
 *                implicit read-only transaction); each of the
 *                next three stages reads its own result
 *   claim        with a key: replay a finished twin (422 for a different request), else go on
 *                (a twin still in flight is found when the later one commits: 409)
 *   load_policy  thresholds, fallback, timeout, both models' metadata (POLICY_LOAD_SQL, policy.c)
 *   load_user    the user and every built-in feature, one SELECT (feat.c)
 *   features     each model's input row by feature name, and the snapshot; linear in the
 *                feature count, a passed request deadline is a 503
 *   score        champion + challenger in one scoring call (one worker round trip), bounded by
 *                the policy's scoring_timeout_ms and the request deadline; with the policy's
 *                explain.top_k > 0 the champion's section also returns its SHAP contributions
 *                (WIRE_SCORE_EXPLAIN, or common/treeshap.c in process); a champion that cannot be
 *                explained (no covers) is scored again without them
 *   explain      the reasons: the top-k features by |contribution| (decision_explain.c), from
 *                what score returned; no I/O
 *   decide       thresholds, or the fallback with degraded = true and a reason
 *   rules        with rules in the policy version: its compiled rules (once per version,
 *                rulecat.h) over every operand, list probes answered from the in-memory sets of
 *                the list versions load_policy read (listcache.h), rules_decide's precedence
 *                overriding decide's verdict; what matched, what decided, the list versions,
 *                the probe answers and every operand value are stored (decision_rules.c)
 *   store        names the transaction (a random UUID, txn_new_id) and queues its INSERT (named
 *                columns) RETURNING the answer, the first statement of commit's round trip
 *   events       queues the outbox call (outbox.h): the decision.<outcome> webhook event and,
 *                for `review`, the review and its review.opened event, in this same transaction
 *   record       with a key: queues the INSERT of the idempotency record naming the transaction
 *   commit       the queued statements as one job of the commit queue (batchq.h): with those
 *                of concurrent decisions, in one database transaction and one round trip (a
 *                decision alone: BEGIN, its statements, COMMIT); before it nothing is stored,
 *                after it everything; another decision's SQL error never fails this one (a lost
 *                connection or a passed deadline is shared by the batch); the answer is printed
 *                from the row the INSERT returned
 *   expire       with a key, ~1 request in 64, after the commit: a DELETE of a batch of expired
 *                idempotency records, on a pooled connection of its own (its failure changes
 *                nothing)
 *   respond      201 + Location; decision metrics
 * Files: parse in decision_parse.c, features in decision_features.c, claim/store/events/record/
 * expire in decision_store.c, the table, the runner and the other stages in decision.c.
 * Round trips to PostgreSQL: two (open, commit), whatever the policy, and under load commit's is
 * shared by up to VIGIL_COMMIT_BATCH decisions, and open's by up to VIGIL_READ_BATCH (each
 * decision's reads still their own implicit transaction, batchq.h); the API key's check costs none
 * while it is cached (auth.h).  The INSERT joins commit's round trip because the API names the row:
 * the events and the idempotency record need only its id, and the answer (the stored row as
 * PostgreSQL formats it) comes back in the same round trip.  Fewer cannot be: scoring needs open's
 * features, and what is stored needs the score.  The reads and the writes are two database
 * transactions: no lock is held while the decision is scored, so a read connection is back in the
 * pool at once, and what the reads saw may change before the commit (a user deleted meanwhile: the
 * INSERT's foreign key answers 422; a twin with the same Idempotency-Key committed meanwhile: the
 * record's primary key answers 409).
 *
 * Where the next capabilities go (each is a new stage and new fields, never a branch inside one):
 *   - lists and rules: the rules stage (list versions come with load_policy's SELECT);
 *   - whatever a new stage decides that must be stored is a new row of the column table in
 *     decision_store.c (and a column of the transactions table); the answer follows from TXN_COLS.
 * A stage must stay readable on one screen; pure work (no database) goes in a function
 * of its own that tests call directly, as decision_parse_body, decision_row_build and
 * decision_decide are.
 *
 * Thread safety: a decision_request belongs to the one thread serving the request. */
#ifndef VIGIL_DECISION_H
#define VIGIL_DECISION_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "batchq.h"
#include "db.h"
#include "feat.h"
#include "http.h"
#include "policy.h"
#include "scoring.h"

#define DECISION_MAX_CLIENT_FEATURES 256
#define DECISION_METADATA_MAX 4096
#define DECISION_AMOUNT_MAX 9007199254740991.0 /* 2^53 - 1 */

enum decision_flow { DECISION_NEXT = 0, DECISION_STOP = 1 };

/* The statements of the first round trip (stage open: one job of the read queue), by what they
 * are for. */
enum decision_head { HEAD_CLAIM, HEAD_POLICY, HEAD_USER, HEAD_N };
_Static_assert(HEAD_N <= BATCHQ_JOB_MAX, "the reads must fit one job");

/* The decision's writes (store, events, record): one job of the commit queue (batchq.h). */
#define DECISION_TAIL_MAX BATCHQ_JOB_MAX

struct decision_store_vals; /* the INSERT's parameters (decision_store.c) */

/* The validated request body.  Strings point into the parsed body (live as long as it). */
typedef struct decision_input {
    const char *user_id, *user_external_id; /* exactly one is set */
    const char *currency, *merchant_id, *mcc, *country, *channel;
    const char *occurred_at; /* RFC 3339, or NULL for "now" */
    double amount;           /* minor units, integral, 1..2^53-1 */
    int exponent;            /* the currency's minor-unit exponent */
    double amount_major;     /* amount / 10^exponent */
    const cJSON *features;   /* the client's "features" object, or NULL */
    char *features_text;     /* its compact JSON (malloc'd), or NULL */
    char *metadata_text;     /* compact JSON of "metadata" (malloc'd), or NULL */
    /* identity fields (optional, NULL when absent); ip_address points at ip_canon */
    const char *email, *ip_address, *device_id, *card_fingerprint, *card_bin, *card_country,
        *shipping_country;
    char ip_canon[48]; /* the address in canonical form (inet_ntop: lower-case, RFC 5952) */
} decision_input;

/* What the scoring call did (score stage), the input of decide. */
typedef struct decision_scoring {
    int ran;                   /* 0: nothing was sent (the policy has no champion) */
    int status;                /* scoring_status of the call */
    int timed_out;             /* the scoring deadline had passed when the call returned */
    float score[POLICY_SLOTS]; /* each model's score; NaN when not returned */
    int latency_us;            /* time spent in the score stage */
    char err[512];             /* the scoring error, when status != SC_OK */
} decision_scoring;

/* The outcome of decide.  decision and reason are static strings. */
typedef struct decision_verdict {
    const char *decision;   /* "allow", "review" or "block" */
    int degraded;           /* the fallback was used */
    const char *reason;     /* why degraded (no_champion_model, scoring_timeout, ...), or NULL */
    const char *decided_by; /* "score_threshold", "fallback" or "default" (a rule: see rules) */
} decision_verdict;

/* What decided and what the rules stage recorded (decision_rules.c): JSON texts (malloc'd)
 * stored with the transaction, NULL when the policy has no rules; decided_by is always set. */
typedef struct decision_rules_out {
    char *matched;        /* [{"name", "action", "mode"}] of every matched rule */
    char *list_versions;  /* {"<list>": version} */
    char *probes;         /* [{"list", "operand", "result"}] */
    char *inputs;         /* {"numbers": {...}, "strings": {...}}: every operand as evaluated */
    char decided_by[160]; /* rule:<name>, score_threshold, fallback or default */
} decision_rules_out;

/* One decision, filled stage by stage; each field is written by the stage named beside it. */
typedef struct decision_request {
    http_req *req; /* the exchange: stages answer through resp */
    http_resp *resp;
    /* parse */
    cJSON *body;
    decision_input in;
    const char *idem_key; /* the Idempotency-Key header, or NULL */
    char idem_hash[65];   /* SHA-256 (hex) of the method, path and body; "" without a key */
    /* open */
    PGresult *head[HEAD_N]; /* each statement's result (NULL: not sent, or not run after an
                             * earlier error); freed by decision_request_free */
    /* load_policy */
    policy_rules policy;
    /* load_user */
    char user_id[40];           /* the resolved user's UUID */
    char occurred_at[40];       /* the transaction time, RFC 3339 UTC with microseconds */
    char user_external_id[520]; /* the user's external id (rule operand user_external_id) */
    char user_country[4];       /* the user's country, "" when unset (rule operand user_country) */
    double builtin[FEAT_COUNT];
    /* features */
    float *row[POLICY_SLOTS]; /* each scored model's input row (malloc'd), or NULL */
    char *snapshot;           /* JSON object, feature name -> value scored, as stored */
    /* score */
    decision_scoring scoring;
    float *contribs; /* score: the champion's contributions (malloc'd, decision_explain_buffer) */
    /* explain */
    char *reasons; /* JSON array of the top-k reasons (malloc'd), or NULL */
    /* decide (and rules, which may override the verdict) */
    decision_verdict verdict;
    decision_rules_out rules;
    /* store */
    char txn_id[40];                   /* the transaction's UUID, made by store */
    struct decision_store_vals *store; /* the INSERT's parameters (malloc'd), live until commit */
    int store_at;                      /* the INSERT's place in tail */
    int record_at;                     /* record: the idempotency record's place, or -1 */
    /* store, events, record: what commit sends */
    db_stmt tail[DECISION_TAIL_MAX];
    const char *tail_v[DECISION_TAIL_MAX][4]; /* their parameters (borrowed strings) */
    int ntail;
    /* commit */
    char *answer; /* the 201 body (malloc'd), printed from the row the INSERT returned */
    char location[128];
} decision_request;

typedef int (*decision_stage_fn)(decision_request *d);

/* The route handler of POST /api/v1/transactions. */
void decision_post(http_req *req, http_resp *resp);

/* ---- stages (shared between the decision*.c files; each returns DECISION_NEXT/STOP) ---- */
int decision_stage_parse(decision_request *d);
int decision_stage_claim(decision_request *d);
/* The claim's record lookup for open's round trip.  Fills *s; v (2) must live as long as *s. */
void decision_claim_stmt(const decision_request *d, db_stmt *s, const char *v[2]);
int decision_stage_features(decision_request *d);
int decision_stage_explain(decision_request *d);
int decision_stage_rules(decision_request *d);

/* For the score stage (decision_explain.c): the buffer (num_features + 1 floats, owned by d) the
 * champion's contributions go to when the policy wants reasons, else NULL; and the log line and
 * cleanup when the champion turned out not explainable (SC_UNEXPLAINABLE, err in d->scoring). */
float *decision_explain_buffer(decision_request *d);
void decision_explain_skipped(decision_request *d);
int decision_stage_store(decision_request *d);
/* For commit: after its round trip, the answer and Location from the INSERT's result r (a
 * DECISION_STOP with resp filled when the INSERT failed: 422 for a user deleted meanwhile, else
 * 500).  decision_store_free frees what store kept (idempotent). */
int decision_store_answer(decision_request *d, int rc, PGresult *r);
void decision_store_free(decision_request *d);
int decision_stage_events(decision_request *d);
int decision_stage_record(decision_request *d);
int decision_stage_expire(decision_request *d);

/* ---- pure parts, tested directly ---- */

/* Validates body into *in.  Returns 0, or -1 with resp filled (400 naming the field).  Free
 * in's texts with decision_input_free, whatever the result. */
int decision_parse_body(http_resp *resp, const cJSON *body, decision_input *in);
void decision_input_free(decision_input *in);

/* An Idempotency-Key is 1..255 printable ASCII characters (0x21..0x7e). */
int decision_idem_key_ok(const char *key);

/* An open-addressing hash table of borrowed names (decision_features.c).  Lookups are O(1)
 * expected, so building rows and the snapshot is linear in the feature count. */
typedef struct name_index {
    struct name_slot *slot;
    size_t mask; /* capacity - 1, capacity a power of two */
    size_t count;
} name_index;

/* Where a feature's value comes from: the built-in of that name, else the client's member of
 * that name, else missing (NaN).  A client value never overrides a built-in. */
typedef struct decision_sources {
    name_index names; /* name -> value; names borrowed from feat.c and the client object */
} decision_sources;

/* Indexes builtin[FEAT_COUNT] and the client's "features" object (may be NULL), which must
 * outlive src.  Returns 0, or -1 when out of memory; free with decision_sources_free. */
int decision_sources_init(decision_sources *src, const double *builtin, const cJSON *client);
void decision_sources_free(decision_sources *src);
double decision_feature_value(const decision_sources *src, const char *name);

/* The snapshot being built: a JSON object name -> value scored, plus the names it holds. */
typedef struct decision_snapshot {
    cJSON *obj;
    name_index seen;
} decision_snapshot;

/* Sized for max_names names (the features of every model that adds to it).  0, or -1 when out of
 * memory; free with decision_snapshot_free. */
int decision_snapshot_init(decision_snapshot *snap, size_t max_names);
void decision_snapshot_free(decision_snapshot *snap);

#define DECISION_ROW_DEADLINE (-2)

/* Builds model m's float32 input row, one value per feature by name (names past m->n_names are
 * ""), into row[0..m->num_features), and appends each name -> value to snap unless the name is
 * already there (first value wins; non-finite values are null).  This is the one place a model's
 * input vector is assembled.  Linear in m->num_features; checks deadline_ms (absolute,
 * wire_now_ms clock; -1 = none) every few thousand features.  Returns 0, -1 when out of memory
 * (or snap was sized too small), or DECISION_ROW_DEADLINE once the deadline has passed. */
int decision_row_build(const decision_sources *src, const scoring_model *m, float *row,
                       decision_snapshot *snap, int64_t deadline_ms);

/* The decision for what scoring did under policy p: thresholds on the champion's score when it
 * ran, succeeded and is finite; otherwise p's fallback, degraded, with the reason. */
decision_verdict decision_decide(const policy_rules *p, const decision_scoring *s);

/* The reasons of one explained row: the top_k features of m by |contribs[i]| (largest first, the
 * lower feature index first among equals; exact zeros are no reason and left out), as a JSON
 * array [{"feature": name, "value": row[i] or null when missing, "contribution": contribs[i]}],
 * numbers as the shortest text that round-trips float32.  contribs: num_features + 1 values (the
 * last, the bias, is never a reason).  Returns malloc'd text, or NULL when out of memory. */
char *decision_reasons_json(const scoring_model *m, const float *row, const float *contribs,
                            int top_k);

/* The INSERT statement of the store stage, assembled from its column table into buf[cap].
 * Returns the number of parameters, or -1 when cap is too small.  Exposed for its test. */
int decision_store_sql(char *buf, size_t cap);

#endif
