/* hp_scorer.c - the scorer registry: every HP_SCORER(name) line of hp_scorers.def, in order.
 * See hp_scorer.h.  Costs: O(scorers) lookups over a constant array. */
#include "hp_scorer.h"

#include <stdio.h>
#include <string.h>

#define HP_SCORER(n) extern const hp_scorer hp_scorer_##n;
#include "hp_scorers.def"
#undef HP_SCORER

static const hp_scorer *const scorers[] = {
#define HP_SCORER(n) &hp_scorer_##n,
#include "hp_scorers.def"
#undef HP_SCORER
};

#define N_SCORERS (sizeof scorers / sizeof scorers[0])

unsigned hp_scorer_count(void)
{
    return (unsigned)N_SCORERS;
}

const hp_scorer *hp_scorer_at(unsigned i)
{
    return i < N_SCORERS ? scorers[i] : NULL;
}

const hp_scorer *hp_scorer_find(const char *name)
{
    for (size_t i = 0; i < N_SCORERS; i++)
        if (strcmp(scorers[i]->name, name) == 0)
            return scorers[i];
    return NULL;
}

char *hp_scorer_names(char *buf, size_t len)
{
    size_t o = 0;
    if (len == 0)
        return buf;
    buf[0] = '\0';
    for (size_t i = 0; i < N_SCORERS && o < len; i++) {
        int n = snprintf(buf + o, len - o, "%s%s", i ? ", " : "", scorers[i]->name);
        if (n < 0)
            break;
        o += (size_t)n;
    }
    return buf;
}
