/* rules.c - see rules.h.  Stub: compiles, refuses everything (being implemented). */
#include "rules.h"

#include <stdio.h>
#include <string.h>

const char *rules_action_name(rules_action a)
{
    return a == RULES_ALLOW    ? "allow"
           : a == RULES_REVIEW ? "review"
           : a == RULES_BLOCK  ? "block"
                               : NULL;
}
int rules_action_parse(const char *s, size_t len, rules_action *out)
{
    (void)s;
    (void)len;
    (void)out;
    return -1;
}
const char *rules_mode_name(rules_mode m)
{
    return m == RULES_ACTIVE ? "active" : m == RULES_SHADOW ? "shadow" : NULL;
}
int rules_mode_parse(const char *s, size_t len, rules_mode *out)
{
    (void)s;
    (void)len;
    (void)out;
    return -1;
}
int rules_compile(const rules_spec *rules, size_t n, const rules_catalog *cat, rules_program **out,
                  rules_error *err)
{
    (void)rules;
    (void)n;
    (void)cat;
    *out = NULL;
    if (err) {
        err->rule = -1;
        err->column = 0;
        snprintf(err->message, sizeof err->message, "not implemented");
    }
    return RULES_E_NOMEM;
}
void rules_free(rules_program *p)
{
    (void)p;
}
int rules_name_valid(const char *name, size_t len)
{
    (void)name;
    (void)len;
    return 0;
}
int rules_list_name_valid(const char *name, size_t len)
{
    (void)name;
    (void)len;
    return 0;
}
size_t rules_count(const rules_program *p)
{
    (void)p;
    return 0;
}
const char *rules_rule_name(const rules_program *p, size_t i)
{
    (void)p;
    (void)i;
    return NULL;
}
rules_action rules_rule_action(const rules_program *p, size_t i)
{
    (void)p;
    (void)i;
    return RULES_ALLOW;
}
rules_mode rules_rule_mode(const rules_program *p, size_t i)
{
    (void)p;
    (void)i;
    return RULES_ACTIVE;
}
int rules_rule_uses_score(const rules_program *p, size_t i)
{
    (void)p;
    (void)i;
    return 0;
}
size_t rules_program_bytes(const rules_program *p)
{
    (void)p;
    return 0;
}
size_t rules_list_count(const rules_program *p)
{
    (void)p;
    return 0;
}
const char *rules_list_name(const rules_program *p, size_t li)
{
    (void)p;
    (void)li;
    return NULL;
}
listset_kind rules_list_kind(const rules_program *p, size_t li)
{
    (void)p;
    (void)li;
    return LISTSET_STRING;
}
size_t rules_probe_count(const rules_program *p)
{
    (void)p;
    return 0;
}
size_t rules_probe_list(const rules_program *p, size_t k)
{
    (void)p;
    (void)k;
    return 0;
}
size_t rules_probe_slot(const rules_program *p, size_t k)
{
    (void)p;
    (void)k;
    return 0;
}
void rules_probe_resolve(const rules_program *p, const rules_value *slots,
                         const listset *const *sets, uint8_t *probes)
{
    (void)p;
    (void)slots;
    (void)sets;
    (void)probes;
}
int rules_eval(const rules_program *p, const rules_value *slots, size_t n_slots,
               const uint8_t *probes, unsigned flags, uint64_t matched[RULES_BITMAP_WORDS])
{
    (void)p;
    (void)slots;
    (void)n_slots;
    (void)probes;
    (void)flags;
    memset(matched, 0, RULES_BITMAP_WORDS * sizeof matched[0]);
    return 0;
}
rules_verdict rules_decide(const rules_program *p, const uint64_t matched[RULES_BITMAP_WORDS],
                           const rules_decide_in *in)
{
    (void)p;
    (void)matched;
    rules_verdict v = {RULES_ALLOW, RULES_BY_DEFAULT, -1};
    if (in->degraded)
        v.decision = in->fallback, v.by = RULES_BY_FALLBACK;
    return v;
}
size_t rules_decided_by_text(const rules_program *p, const rules_verdict *v, char *out,
                             size_t outlen)
{
    (void)p;
    (void)v;
    if (outlen)
        out[0] = 0;
    return 0;
}
