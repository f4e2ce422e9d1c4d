/* bench_rules.c - `make bench`: list sets of 1M items and a 50-rule policy (issue 12).
 *
 * Prints, for three lists of 1,000,000 items (strings of 26-29 bytes, IPv4 addresses with some
 * CIDR ranges, numbers): build time, bytes held (listset_bytes, and the process RSS growth), and
 * the membership cost: mean thread-CPU ns over 1M lookups (half members), best of 5 rounds, and
 * the p99 of single wall-clock-timed lookups (which includes ~20-40 ns of clock reads).  Then a
 * policy of 50 rules over the API's operand catalogue with 3 probes into those lists: compile time,
 * program bytes, and ns per decision (probe resolution + evaluation + precedence) over 1,024 varied
 * transactions, next to the same decision without rules (the baseline, rules_decide alone).
 * Wall-clock figures on a shared machine: compare within one run. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "listset.h"
#include "rules.h"

#define N_ITEMS 1000000
#define ROUNDS 5

static uint64_t rng = 88172645463325252ULL;

static uint64_t xs(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Thread CPU time: the machine is shared, and wall-clock means would count other processes. */
static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * 4;
}

static int card_text(char *buf, size_t n, unsigned i)
{
    return snprintf(buf, n, "card_%08u_%x@example", i, i * 2654435761u);
}

static int ip_text(char *buf, size_t n, uint32_t a)
{
    return snprintf(buf, n, "%u.%u.%u.%u", a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255);
}

static int dcmp(const void *a, const void *b)
{
    return *(const int64_t *)a < *(const int64_t *)b ? -1
                                                     : *(const int64_t *)a > *(const int64_t *)b;
}

/* Mean ns of lookups over queries[0..n) (best of ROUNDS) and the p99 of single timed lookups. */
typedef int (*probe_fn)(const listset *s, const char *const *q, const uint32_t *len, size_t i);

static void time_lookups(const char *what, const listset *s, probe_fn fn, const char *const *q,
                         const uint32_t *len, size_t n)
{
    double best = 1e30;
    long hits = 0;
    for (int r = 0; r < ROUNDS; r++) {
        hits = 0;
        int64_t t0 = cpu_ns();
        for (size_t i = 0; i < n; i++)
            hits += fn(s, q, len, i);
        double ns = (double)(cpu_ns() - t0) / (double)n;
        if (ns < best)
            best = ns;
    }
    size_t m = n < 200000 ? n : 200000;
    int64_t *one = malloc(m * sizeof *one);
    for (size_t i = 0; i < m; i++) {
        int64_t t0 = clock_now_ns();
        hits += fn(s, q, len, i);
        one[i] = clock_now_ns() - t0;
    }
    qsort(one, m, sizeof *one, dcmp);
    printf("   %-34s %7.1f ns/lookup mean CPU (best of %d x %zu), p99 %lld ns, max %lld ns "
           "(%ld hits)\n",
           what, best, ROUNDS, n, (long long)one[m * 99 / 100], (long long)one[m - 1], hits);
    free(one);
}

static int probe_string(const listset *s, const char *const *q, const uint32_t *len, size_t i)
{
    return listset_has_string(s, q[i], len[i]);
}

static int probe_ip(const listset *s, const char *const *q, const uint32_t *len, size_t i)
{
    return listset_has_ip_text(s, q[i], len[i]);
}

static double *num_queries;

static int probe_number(const listset *s, const char *const *q, const uint32_t *len, size_t i)
{
    (void)q, (void)len;
    return listset_has_number(s, num_queries[i]);
}

/* Texts for queries, in one block: n strings of <= 47 bytes. */
static char *qblock;
static const char **qtext;
static uint32_t *qlen;

static void query_alloc(size_t n)
{
    qblock = malloc(n * 48);
    qtext = malloc(n * sizeof *qtext);
    qlen = malloc(n * sizeof *qlen);
    if (!qblock || !qtext || !qlen) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
}

/* ---- the policy ---------------------------------------------------------------------------- */

static const char *const num_ops[] = {"amount",
                                      "log_amount",
                                      "hour_of_day",
                                      "day_of_week",
                                      "user_age_days",
                                      "user_txn_count_1h",
                                      "user_txn_count_24h",
                                      "user_amount_sum_24h",
                                      "user_amount_avg_30d",
                                      "user_amount_max_30d",
                                      "amount_to_user_avg_30d",
                                      "seconds_since_last_txn",
                                      "merchant_seen_before",
                                      "country_mismatch",
                                      "user_distinct_countries_30d",
                                      "score",
                                      "challenger_score"};
static const char *const str_ops[] = {
    "currency",     "merchant_id",      "merchant_category", "country",          "channel",
    "email",        "ip_address",       "device_id",         "card_fingerprint", "card_bin",
    "card_country", "shipping_country", "user_external_id",  "user_country"};
#define N_NUM (sizeof num_ops / sizeof num_ops[0])
#define N_STR (sizeof str_ops / sizeof str_ops[0])
#define N_OPS (N_NUM + N_STR)

static int slot_of(const char *name)
{
    for (size_t i = 0; i < N_NUM; i++)
        if (strcmp(num_ops[i], name) == 0)
            return (int)i;
    for (size_t i = 0; i < N_STR; i++)
        if (strcmp(str_ops[i], name) == 0)
            return (int)(N_NUM + i);
    return -1;
}

static const char *const templates[10] = {
    "card_fingerprint in @blocked_cards and amount > %d",
    "user_external_id in @vip_customers and amount < %d00",
    "ip_address in @bad_ips or ip_address in @bad_ips and amount > %d",
    "amount > %d000 and not merchant_seen_before and hour_of_day < 6",
    "score >= 0.9%d and card_country != country",
    "is_missing(user_amount_avg_30d) and amount > %d00",
    "amount / user_amount_avg_30d > %d and user_txn_count_24h >= 3",
    "country in (\"FR\", \"DE\", \"US\", \"GB\") and amount > %d000 and channel = \"web\"",
    "user_txn_count_1h >= %d or user_txn_count_24h > 40 or seconds_since_last_txn < 2",
    "card_country not in (\"FR\", \"DE\") and shipping_country != country and amount * 1.2 > "
    "%d00",
};

int main(void)
{
    FILE *la = fopen("/proc/loadavg", "r");
    char load[64] = "?";
    if (la) {
        if (fgets(load, sizeof load, la) == NULL)
            snprintf(load, sizeof load, "?");
        fclose(la);
        load[strcspn(load, "\n")] = 0;
    }
    printf("== rules and lists (common/rules.c, common/listset.c); load average %s\n", load);
    char buf[64];
    long rss0 = rss_kb();

    /* 1. strings */
    int64_t t0 = clock_now_ns();
    listset_builder *b = listset_builder_new(LISTSET_STRING, N_ITEMS);
    for (unsigned i = 0; i < N_ITEMS; i++) {
        int n = card_text(buf, sizeof buf, i);
        listset_builder_add(b, buf, (size_t)n, NULL, 0);
    }
    listset *cards = listset_build(b);
    double build_s = (double)(clock_now_ns() - t0) / 1e9;
    long rss1 = rss_kb();
    printf(
        "   1M string items (26-29 bytes): built in %.2f s, listset_bytes %.1f MB, RSS +%.1f MB\n",
        build_s, (double)listset_bytes(cards) / 1e6, (double)(rss1 - rss0) / 1e3);
    query_alloc(N_ITEMS);
    for (size_t i = 0; i < N_ITEMS; i++) {
        unsigned k = (unsigned)(xs() % (2 * N_ITEMS)); /* half members */
        qtext[i] = qblock + i * 48;
        qlen[i] = (uint32_t)card_text(qblock + i * 48, 48, k);
    }
    time_lookups("string set, 1M items:", cards, probe_string, qtext, qlen, N_ITEMS);

    /* 2. ip: 990k addresses + 10k ranges (/16 .. /30) */
    t0 = clock_now_ns();
    b = listset_builder_new(LISTSET_IP, N_ITEMS);
    for (unsigned i = 0; i < N_ITEMS; i++) {
        uint32_t a = (uint32_t)xs();
        int n = ip_text(buf, sizeof buf, a);
        if (i % 100 == 0) {
            int p = 16 + (int)(xs() % 15);
            a &= ~(UINT32_MAX >> p);
            n = ip_text(buf, sizeof buf, a);
            n += snprintf(buf + n, sizeof buf - (size_t)n, "/%d", p);
        }
        listset_builder_add(b, buf, (size_t)n, NULL, 0);
    }
    listset *ips = listset_build(b);
    printf("   1M ip items (1%% CIDR ranges): built in %.2f s, listset_bytes %.1f MB\n",
           (double)(clock_now_ns() - t0) / 1e9, (double)listset_bytes(ips) / 1e6);
    for (size_t i = 0; i < N_ITEMS; i++)
        qlen[i] = (uint32_t)ip_text(qblock + i * 48, 48, (uint32_t)xs());
    time_lookups("ip set, 1M items (parse + search):", ips, probe_ip, qtext, qlen, N_ITEMS);

    /* 3. numbers */
    t0 = clock_now_ns();
    b = listset_builder_new(LISTSET_NUMBER, N_ITEMS);
    for (unsigned i = 0; i < N_ITEMS; i++)
        listset_builder_add_number(b, (double)(i * 7u));
    listset *nums = listset_build(b);
    printf("   1M number items: built in %.2f s, listset_bytes %.1f MB\n",
           (double)(clock_now_ns() - t0) / 1e9, (double)listset_bytes(nums) / 1e6);
    num_queries = malloc(N_ITEMS * sizeof *num_queries);
    for (size_t i = 0; i < N_ITEMS; i++)
        num_queries[i] = (double)(xs() % (7u * N_ITEMS));
    time_lookups("number set, 1M items:", nums, probe_number, NULL, NULL, N_ITEMS);

    /* 4. a policy of 50 rules */
    rules_operand ops[N_OPS];
    for (size_t i = 0; i < N_NUM; i++)
        ops[i] = (rules_operand){num_ops[i], RULES_NUMBER,
                                 strstr(num_ops[i], "score") ? RULES_OPERAND_SCORE : 0u};
    for (size_t i = 0; i < N_STR; i++)
        ops[N_NUM + i] = (rules_operand){str_ops[i], RULES_STRING, 0};
    const rules_list lists[] = {{"blocked_cards", LISTSET_STRING},
                                {"vip_customers", LISTSET_STRING},
                                {"bad_ips", LISTSET_IP}};
    rules_catalog cat = {ops, N_OPS, lists, 3};
    static char texts[50][256], names[50][16];
    rules_spec spec[50];
    for (int i = 0; i < 50; i++) {
        snprintf(texts[i], sizeof texts[i], templates[i % 10], 1 + i / 10);
        snprintf(names[i], sizeof names[i], "rule_%02d", i);
        spec[i] =
            (rules_spec){names[i], (rules_action)(i % 3), i % 7 == 6 ? RULES_SHADOW : RULES_ACTIVE,
                         texts[i], strlen(texts[i])};
    }
    rules_program *prog;
    rules_error err;
    t0 = clock_now_ns();
    int rc = rules_compile(spec, 50, &cat, &prog, &err);
    double compile_us = (double)(clock_now_ns() - t0) / 1e3;
    if (rc != RULES_OK) {
        fprintf(stderr, "rule %d column %d: %s\n", err.rule, err.column, err.message);
        return 1;
    }
    /* the vip list is the card list reused under another name (1M items as well) */
    const listset *sets[3];
    for (size_t li = 0; li < rules_list_count(prog); li++) {
        const char *nm = rules_list_name(prog, li);
        sets[li] = strcmp(nm, "bad_ips") == 0 ? ips : cards;
    }
    printf("   50 rules (%zu probes into 3 lists of 1M): compiled in %.0f us into %zu bytes\n",
           rules_probe_count(prog), compile_us, rules_program_bytes(prog));

    enum { NTX = 1024 };
    static rules_value tx[NTX][N_OPS];
    static char strs[NTX][4][48];
    static const char *const countries[] = {"FR", "DE", "US", "GB", "ES"};
    for (int t = 0; t < NTX; t++) {
        rules_value *v = tx[t];
        for (size_t i = 0; i < N_NUM; i++)
            v[i] = (rules_value){NULL, (double)(xs() % 5000) / 3.0, 0, RULES_NUMBER};
        if (t % 5 == 0)
            v[slot_of("user_amount_avg_30d")].type = RULES_MISSING;
        v[slot_of("score")].num = (double)(xs() % 1000) / 1000.0;
        for (size_t i = 0; i < N_STR; i++)
            v[N_NUM + i] = (rules_value){countries[xs() % 5], 0, 2, RULES_STRING};
        int n = card_text(strs[t][0], 48, (unsigned)(xs() % (2 * N_ITEMS)));
        v[slot_of("card_fingerprint")] = (rules_value){strs[t][0], 0, (uint32_t)n, RULES_STRING};
        n = card_text(strs[t][1], 48, (unsigned)(xs() % (2 * N_ITEMS)));
        v[slot_of("user_external_id")] = (rules_value){strs[t][1], 0, (uint32_t)n, RULES_STRING};
        n = ip_text(strs[t][2], 48, (uint32_t)xs());
        v[slot_of("ip_address")] = (rules_value){strs[t][2], 0, (uint32_t)n, RULES_STRING};
        v[slot_of("channel")] = (rules_value){t % 2 ? "web" : "app", 0, 3, RULES_STRING};
    }
    rules_decide_in din = {0, RULES_REVIEW, 0.5, 0.7, 0.95};
    double best_rules = 1e30, best_none = 1e30;
    long matched = 0, decided_by_rule = 0;
    const int reps = 200;
    for (int r = 0; r < ROUNDS; r++) {
        matched = decided_by_rule = 0;
        t0 = cpu_ns();
        for (int k = 0; k < reps; k++) {
            for (int t = 0; t < NTX; t++) {
                uint8_t probes[16];
                uint64_t m[RULES_BITMAP_WORDS];
                rules_probe_resolve(prog, tx[t], sets, probes);
                rules_eval(prog, tx[t], N_OPS, probes, 0, m);
                din.score = tx[t][slot_of("score")].num;
                rules_verdict vd = rules_decide(prog, m, &din);
                matched += __builtin_popcountll(m[0]);
                decided_by_rule += vd.by == RULES_BY_RULE;
            }
        }
        double ns = (double)(cpu_ns() - t0) / (reps * NTX);
        if (ns < best_rules)
            best_rules = ns;
        long sink = 0;
        t0 = cpu_ns();
        for (int k = 0; k < reps; k++) {
            for (int t = 0; t < NTX; t++) {
                uint64_t none[RULES_BITMAP_WORDS] = {0};
                din.score = tx[t][slot_of("score")].num;
                sink += rules_decide(NULL, none, &din).decision;
            }
        }
        ns = (double)(cpu_ns() - t0) / (reps * NTX);
        if (ns < best_none)
            best_none = ns;
        if (sink < 0)
            printf("%ld", sink);
    }
    printf("   decision with 50 rules: %.0f ns (thread CPU; probes + eval + decide; %.1f rules "
           "matched, %.0f%% "
           "decided by a rule); without rules: %.0f ns (best of %d x %d)\n",
           best_rules, (double)matched / (reps * NTX),
           100.0 * (double)decided_by_rule / (reps * NTX), best_none, ROUNDS, reps * NTX);
    rules_free(prog);
    listset_free(cards);
    listset_free(ips);
    listset_free(nums);
    free(num_queries);
    free(qblock);
    free(qtext);
    free(qlen);
    return 0;
}
