/* rulecat.c - the rule operand catalogue and the per-version program cache.  See rulecat.h.
 * Costs: building a catalogue is O(names^2) string compares for the de-duplication of the models'
 * feature names (once per policy version); the cache holds one entry (the active version). */
#include "rulecat.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const char *const fixed_names[RC_CLIENT - FEAT_COUNT] = {
    [RC_CURRENCY - FEAT_COUNT] = "currency",
    [RC_MERCHANT_ID - FEAT_COUNT] = "merchant_id",
    [RC_MERCHANT_CATEGORY - FEAT_COUNT] = "merchant_category",
    [RC_COUNTRY - FEAT_COUNT] = "country",
    [RC_CHANNEL - FEAT_COUNT] = "channel",
    [RC_EMAIL - FEAT_COUNT] = "email",
    [RC_IP_ADDRESS - FEAT_COUNT] = "ip_address",
    [RC_DEVICE_ID - FEAT_COUNT] = "device_id",
    [RC_CARD_FINGERPRINT - FEAT_COUNT] = "card_fingerprint",
    [RC_CARD_BIN - FEAT_COUNT] = "card_bin",
    [RC_CARD_COUNTRY - FEAT_COUNT] = "card_country",
    [RC_SHIPPING_COUNTRY - FEAT_COUNT] = "shipping_country",
    [RC_USER_EXTERNAL_ID - FEAT_COUNT] = "user_external_id",
    [RC_USER_COUNTRY - FEAT_COUNT] = "user_country",
    [RC_SCORE - FEAT_COUNT] = "score",
    [RC_CHALLENGER_SCORE - FEAT_COUNT] = "challenger_score",
};

static const char *slot_name(int slot)
{
    return slot < FEAT_COUNT ? feat_name(slot) : fixed_names[slot - FEAT_COUNT];
}

/* 1 when name is already an operand of ops[0..n). */
static int known(const rules_operand *ops, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ops[i].name, name) == 0)
            return 1;
    return 0;
}

/* Copies s into the names block at *at. */
static const char *keep(char *block, size_t *at, const char *s)
{
    size_t n = strlen(s) + 1;
    memcpy(block + *at, s, n);
    *at += n;
    return block + *at - n;
}

int rulecat_build(rulecat *rc, const scoring_model *const *models, size_t n_models,
                  const rulecat_list *lists, size_t n_lists)
{
    size_t max_ops = RC_CLIENT, bytes = 0, at = 0;
    memset(rc, 0, sizeof *rc);
    for (size_t m = 0; m < n_models; m++)
        for (uint32_t i = 0; models[m] && i < models[m]->n_names; i++) {
            max_ops++;
            bytes += strlen(models[m]->names[i]) + 1;
        }
    for (size_t l = 0; l < n_lists; l++)
        bytes += strlen(lists[l].name) + 1;
    rc->ops = calloc(max_ops, sizeof *rc->ops);
    rc->lists = calloc(n_lists ? n_lists : 1, sizeof *rc->lists);
    rc->names = malloc(bytes ? bytes : 1);
    if (!rc->ops || !rc->lists || !rc->names) {
        rulecat_free(rc);
        return -1;
    }
    for (int s = 0; s < RC_CLIENT; s++) {
        int is_str = s >= RC_CURRENCY && s <= RC_USER_COUNTRY;
        rc->ops[s] =
            (rules_operand){slot_name(s), is_str ? RULES_STRING : RULES_NUMBER,
                            s == RC_SCORE || s == RC_CHALLENGER_SCORE ? RULES_OPERAND_SCORE : 0u};
    }
    rc->n_ops = RC_CLIENT;
    for (size_t m = 0; m < n_models; m++)
        for (uint32_t i = 0; models[m] && i < models[m]->n_names; i++)
            if (models[m]->names[i][0] && !known(rc->ops, rc->n_ops, models[m]->names[i]))
                rc->ops[rc->n_ops++] =
                    (rules_operand){keep(rc->names, &at, models[m]->names[i]), RULES_NUMBER, 0};
    for (size_t l = 0; l < n_lists; l++)
        rc->lists[l] = (rules_list){keep(rc->names, &at, lists[l].name), lists[l].kind};
    rc->n_lists = n_lists;
    rc->cat = (rules_catalog){rc->ops, rc->n_ops, rc->lists, rc->n_lists};
    return 0;
}

void rulecat_free(rulecat *rc)
{
    free(rc->ops);
    free(rc->lists);
    free(rc->names);
    memset(rc, 0, sizeof *rc);
}

int rulecat_specs(const cJSON *rules, rules_spec *specs, size_t *n)
{
    const cJSON *r;
    *n = 0;
    if (!cJSON_IsArray(rules) || cJSON_GetArraySize(rules) > RULES_MAX)
        return -1;
    cJSON_ArrayForEach(r, rules)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(r, "name");
        const cJSON *action = cJSON_GetObjectItemCaseSensitive(r, "action");
        const cJSON *mode = cJSON_GetObjectItemCaseSensitive(r, "mode");
        const cJSON *when = cJSON_GetObjectItemCaseSensitive(r, "when");
        rules_spec *s = &specs[*n];
        if (!cJSON_IsString(name) || !cJSON_IsString(action) || !cJSON_IsString(when) ||
            rules_action_parse(action->valuestring, strlen(action->valuestring), &s->action) ||
            (mode && (!cJSON_IsString(mode) ||
                      rules_mode_parse(mode->valuestring, strlen(mode->valuestring), &s->mode))))
            return -1;
        if (!mode)
            s->mode = RULES_ACTIVE;
        s->name = name->valuestring;
        s->when = when->valuestring;
        s->when_len = strlen(when->valuestring);
        (*n)++;
    }
    return 0;
}

rules_value rulecat_str(const char *s)
{
    rules_value v = {0};
    if (s && s[0]) {
        v.s = s;
        v.len = (uint32_t)strlen(s);
        v.type = RULES_STRING;
    }
    return v;
}

rules_value rulecat_num(double x)
{
    rules_value v = {0};
    if (!isnan(x)) {
        v.num = x;
        v.type = RULES_NUMBER;
    }
    return v;
}

/* ---- the cache ------------------------------------------------------------------------------ */

struct rulecat_cache {
    pthread_mutex_t mu;
    rulecat_entry *cur; /* the newest version compiled, holding one reference of its own */
};

rulecat_cache *rulecat_cache_create(void)
{
    rulecat_cache *c = calloc(1, sizeof *c);
    if (c)
        pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void entry_unref(rulecat_entry *e)
{
    if (e && --e->refs == 0) {
        rules_free(e->prog);
        rulecat_free(&e->cat);
        free(e);
    }
}

void rulecat_cache_destroy(rulecat_cache *c)
{
    if (!c)
        return;
    entry_unref(c->cur);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

rulecat_entry *rulecat_cache_get(rulecat_cache *c, long long version)
{
    rulecat_entry *e = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->cur && c->cur->version == version) {
        e = c->cur;
        e->refs++;
    }
    pthread_mutex_unlock(&c->mu);
    return e;
}

rulecat_entry *rulecat_cache_put(rulecat_cache *c, rulecat_entry *e)
{
    rulecat_entry *keep_e = malloc(sizeof *keep_e);
    if (!keep_e) {
        rules_free(e->prog);
        rulecat_free(&e->cat);
        return NULL;
    }
    *keep_e = *e;
    keep_e->refs = 2; /* the cache's and the caller's */
    pthread_mutex_lock(&c->mu);
    if (c->cur && c->cur->version == keep_e->version) {
        keep_e->refs = 1;
        entry_unref(keep_e);
        keep_e = c->cur;
        keep_e->refs++;
    } else if (!c->cur || c->cur->version < keep_e->version) {
        entry_unref(c->cur);
        c->cur = keep_e;
    } else {
        keep_e->refs = 1; /* an older version than the cached one: used once, not cached */
    }
    pthread_mutex_unlock(&c->mu);
    return keep_e;
}

void rulecat_cache_release(rulecat_cache *c, rulecat_entry *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&c->mu);
    entry_unref(e);
    pthread_mutex_unlock(&c->mu);
}
