/* btrows.c - snapshots into model rows by name.  See btrows.h. */
#include "btrows.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct btrows_slot {
    const char *name; /* borrowed from the model; NULL = empty */
    size_t len;
    uint32_t index;
};

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static struct btrows_slot *find(const btrows_map *m, const char *name, size_t len)
{
    size_t i = (size_t)hash_bytes(name, len) & m->mask;
    while (m->slot[i].name && (m->slot[i].len != len || memcmp(m->slot[i].name, name, len) != 0))
        i = (i + 1) & m->mask;
    return &m->slot[i];
}

int btrows_map_init(btrows_map *map, const scoring_model *m)
{
    memset(map, 0, sizeof *map);
    map->model = m;
    map->nfeat = m->num_features;
    size_t cap = 16;
    while (cap < 2 * (size_t)map->nfeat)
        cap *= 2;
    map->mask = cap - 1;
    map->slot = calloc(cap, sizeof *map->slot);
    map->alias = calloc((size_t)map->nfeat + 1, sizeof *map->alias);
    map->stamp = calloc((size_t)map->nfeat + 1, sizeof *map->stamp);
    map->missing = calloc((size_t)map->nfeat + 1, sizeof *map->missing);
    if (!map->slot || !map->alias || !map->stamp || !map->missing) {
        btrows_map_free(map);
        return -1;
    }
    for (uint32_t i = 0; i < map->nfeat; i++) {
        const char *name = i < m->n_names ? m->names[i] : "";
        struct btrows_slot *s = find(map, name, strlen(name));
        if (!s->name)
            *s = (struct btrows_slot){name, strlen(name), i};
        map->alias[i] = s->index; /* a repeated name reads the first one's value */
    }
    return 0;
}

void btrows_map_free(btrows_map *map)
{
    free(map->slot);
    free(map->alias);
    free(map->stamp);
    free(map->missing);
    memset(map, 0, sizeof *map);
}

static void set(btrows_map *m, const char *name, size_t len, float v, float *row)
{
    struct btrows_slot *s = find(m, name, len);
    if (s->name) {
        row[s->index] = v;
        m->stamp[s->index] = m->row_no;
    }
}

static const char *ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* The fast path: {"name": number | null, ...} without escapes.  Returns 0, 1 when the snapshot
 * needs the full parser (an escaped name), -1 when malformed. */
static int fill_flat(btrows_map *m, const char *p, float *row)
{
    p = ws(p);
    if (*p++ != '{')
        return -1;
    p = ws(p);
    if (*p == '}')
        return 0;
    for (;;) {
        if (*p++ != '"')
            return -1;
        const char *k = p;
        while (*p && *p != '"' && *p != '\\')
            p++;
        if (*p != '"')
            return *p == '\\' ? 1 : -1;
        size_t klen = (size_t)(p - k);
        p = ws(p + 1);
        if (*p++ != ':')
            return -1;
        p = ws(p);
        float v = NAN;
        if (strncmp(p, "null", 4) == 0) {
            p += 4;
        } else {
            char *end;
            v = strtof(p, &end);
            if (end == p)
                return -1;
            p = end;
        }
        set(m, k, klen, v, row);
        p = ws(p);
        if (*p == '}')
            return 0;
        if (*p++ != ',')
            return -1;
        p = ws(p);
    }
}

/* The slow path: any JSON object (escaped names). */
static int fill_json(btrows_map *m, const char *json, float *row)
{
    cJSON *o = cJSON_Parse(json);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return -1;
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, o)
    {
        /* The text is a float32 printed with 9 digits: the nearest double rounds back to it. */
        float f = cJSON_IsNumber(v) ? (float)v->valuedouble : NAN;
        set(m, v->string, strlen(v->string), f, row);
    }
    cJSON_Delete(o);
    return 0;
}

int btrows_fill(btrows_map *m, const char *json, float *row)
{
    if (++m->row_no == 0) { /* stamps wrapped: start over */
        memset(m->stamp, 0, (size_t)m->nfeat * sizeof *m->stamp);
        m->row_no = 1;
    }
    for (uint32_t i = 0; i < m->nfeat; i++)
        row[i] = NAN;
    int rc = fill_flat(m, json, row);
    if (rc == 1)
        rc = fill_json(m, json, row);
    for (uint32_t i = 0; i < m->nfeat; i++) {
        uint32_t a = m->alias[i];
        if (m->stamp[a] != m->row_no)
            m->missing[i]++;
        else if (a != i)
            row[i] = row[a];
    }
    return rc;
}
