/* rulecat.h - what a policy's rules may name (the operand catalogue of common/rules.h), and the
 * compiled program of the active policy version, cached so it is compiled once per version.
 *
 * The catalogue, in slot order: every built-in feature (feat.h, numbers, slot = feature id), the
 * transaction's fields (strings: currency, merchant_id, merchant_category, country, channel,
 * email, ip_address, device_id, card_fingerprint, card_bin, card_country, shipping_country), the
 * user's (user_external_id, user_country), score and challenger_score (numbers, flagged
 * RULES_OPERAND_SCORE), then every feature name of the policy's champion and challenger models
 * not named before (numbers: the client's value, as the model is fed).  `amount` is the built-in:
 * the amount in major units.  Lists: every list that exists, by name and kind.
 *
 * Thread safety: a rulecat is immutable once built; the cache is guarded by its own mutex and an
 * entry lives until its last reference is released. */
#ifndef VIGIL_RULECAT_H
#define VIGIL_RULECAT_H

#include <stddef.h>

#include "feat.h"
#include "rules.h"
#include "scoring.h"

struct cJSON;

enum rulecat_slot {
    RC_CURRENCY = FEAT_COUNT,
    RC_MERCHANT_ID,
    RC_MERCHANT_CATEGORY,
    RC_COUNTRY,
    RC_CHANNEL,
    RC_EMAIL,
    RC_IP_ADDRESS,
    RC_DEVICE_ID,
    RC_CARD_FINGERPRINT,
    RC_CARD_BIN,
    RC_CARD_COUNTRY,
    RC_SHIPPING_COUNTRY,
    RC_USER_EXTERNAL_ID,
    RC_USER_COUNTRY,
    RC_SCORE,
    RC_CHALLENGER_SCORE,
    RC_CLIENT /* the first client feature */
};

typedef struct rulecat {
    rules_operand *ops; /* names owned (one block, names) */
    size_t n_ops;
    rules_list *lists; /* names owned */
    size_t n_lists;
    char *names; /* every name above, NUL-separated */
    rules_catalog cat;
} rulecat;

/* One list a catalogue may name. */
typedef struct rulecat_list {
    const char *name;
    listset_kind kind;
} rulecat_list;

/* Builds the catalogue of a policy whose models are models[0..n_models) (NULL entries skipped)
 * and of the lists lists[0..n_lists).  0, or -1 when out of memory (rc zeroed).  Free with
 * rulecat_free. */
int rulecat_build(rulecat *rc, const scoring_model *const *models, size_t n_models,
                  const rulecat_list *lists, size_t n_lists);
void rulecat_free(rulecat *rc);

/* The rules of a policy, a JSON array [{name, action, when, mode, description}] already
 * validated (policy.c), as specs pointing into it.  0, or -1 when not such an array. */
int rulecat_specs(const struct cJSON *rules, rules_spec *specs, size_t *n);

/* A slot's value as a live decision gives it: a string (NULL or "" is missing), a number (NaN is
 * missing).  The string is borrowed, not copied. */
rules_value rulecat_str(const char *s);
rules_value rulecat_num(double x);

/* ---- the compiled program of a policy version ---------------------------------------------- */

typedef struct rulecat_cache rulecat_cache;
typedef struct rulecat_entry {
    long long version; /* the policy version */
    rules_program *prog;
    rulecat cat;
    int refs;
} rulecat_entry;

rulecat_cache *rulecat_cache_create(void);
void rulecat_cache_destroy(rulecat_cache *c);
/* The entry of policy version, with a reference (release it), or NULL when not cached. */
rulecat_entry *rulecat_cache_get(rulecat_cache *c, long long version);
/* Caches a built entry (taking it: prog and cat) and returns it with a reference; an entry of the
 * same version built by another thread meanwhile is returned instead (and e freed).  NULL when out
 * of memory (e freed). */
rulecat_entry *rulecat_cache_put(rulecat_cache *c, rulecat_entry *e);
void rulecat_cache_release(rulecat_cache *c, rulecat_entry *e);

#endif
