/* scoring.c - where rows meet models: the worker round trip or the in-process reference
 * evaluator.  See scoring.h.
 *
 * Worker mode costs one SCORE round trip per call (plus, the first time a worker sees a model, one
 * SELECT of the compiled blob and one LOAD_MODEL).  Inprocess mode costs one SELECT per model not
 * in the cache, then pure computation on the request's thread. */
#include "scoring.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hex.h"
#include "hpclient.h"
#include "model.h"
#include "refeval.h"
#include "treeshap.h"
#include "wire.h"

/* One job as the runners see it: float rows/out, or (LightGBM) rows64/out64. */
typedef struct sjob {
    const scoring_model *model;
    int output_margin;
    const float *rows;
    const double *rows64;
    uint32_t nrows;
    float *out;
    double *out64;
    float *contribs; /* scoring_job.contribs (float jobs only) */
} sjob;

/* ---- metadata ----------------------------------------------------------------------------------
 */

int scoring_model_from_row(const PGresult *r, int row, int col, scoring_model *m)
{
    memset(m, 0, sizeof *m);
    if (PQgetisnull(r, row, col))
        return -1;
    snprintf(m->id, sizeof m->id, "%s", PQgetvalue(r, row, col));
    snprintf(m->sha256, sizeof m->sha256, "%s", PQgetvalue(r, row, col + 1));
    m->version = atoi(PQgetvalue(r, row, col + 2));
    m->objective = model_objective_from_name(PQgetvalue(r, row, col + 3));
    m->num_features = (uint32_t)atol(PQgetvalue(r, row, col + 4));
    m->num_class = (uint32_t)atol(PQgetvalue(r, row, col + 5));
    cJSON *names = cJSON_Parse(PQgetvalue(r, row, col + 6));
    int n = cJSON_GetArraySize(names);
    if (n > 0 && (m->names = calloc((size_t)n, sizeof *m->names))) {
        const cJSON *it;
        cJSON_ArrayForEach(it, names)
        {
            if (cJSON_IsString(it) && (m->names[m->n_names] = strdup(it->valuestring)))
                m->n_names++;
        }
    }
    cJSON_Delete(names);
    if (PQnfields(r) > col + 7)
        snprintf(m->blob_sha256, sizeof m->blob_sha256, "%s", PQgetvalue(r, row, col + 7));
    return 0;
}

int scoring_meta(db_conn *c, const char *id, int64_t deadline_ms, scoring_model *m, int *db_rc)
{
    memset(m, 0, sizeof *m);
    char err[256];
    PGresult *r = NULL;
    const char *vals[] = {id};
    *db_rc = db_query(c, "SELECT " SCORING_MODEL_COLS("m") " FROM models m WHERE m.id = $1", 1,
                      vals, NULL, NULL, 0, deadline_ms, &r, err, sizeof err);
    if (*db_rc != DB_OK) {
        PQclear(r);
        return SC_DB;
    }
    int sc = PQntuples(r) == 1 && scoring_model_from_row(r, 0, 0, m) == 0 ? SC_OK : SC_NOT_FOUND;
    PQclear(r);
    return sc;
}

void scoring_model_free(scoring_model *m)
{
    for (uint32_t i = 0; i < m->n_names; i++)
        free(m->names[i]);
    free(m->names);
    memset(m, 0, sizeof *m);
}

uint32_t scoring_nout(const scoring_model *m, int output_margin)
{
    return model_outputs(m->objective, m->num_class, output_margin);
}

int scoring_is_f64(const scoring_model *m)
{
    return model_objective_is_lgbm(m->objective);
}

/* Fetches the compiled blob of model id.  Returns SC_OK with *blob (malloc'd) or SC_DB /
 * SC_NOT_FOUND. */
static int fetch_blob(const app *a, const char *id, int64_t deadline_ms, void **blob, size_t *len,
                      char *err, size_t errlen)
{
    db_conn *c = NULL;
    PGresult *r = NULL;
    *blob = NULL;
    if (db_acquire(a->db, deadline_ms, a->cfg->pool_wait_ms, &c) != DB_OK) {
        snprintf(err, errlen, "database unavailable while loading model %s", id);
        return SC_DB;
    }
    const char *vals[] = {id};
    int rc = db_query(c, "SELECT compiled FROM models WHERE id = $1", 1, vals, NULL, NULL, 1,
                      deadline_ms, &r, err, errlen);
    db_release(a->db, c);
    if (rc != DB_OK) {
        PQclear(r);
        return SC_DB;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        snprintf(err, errlen, "model %s no longer exists", id);
        return SC_NOT_FOUND;
    }
    *len = (size_t)PQgetlength(r, 0, 0);
    *blob = malloc(*len ? *len : 1);
    if (*blob)
        memcpy(*blob, PQgetvalue(r, 0, 0), *len);
    PQclear(r);
    if (!*blob) {
        snprintf(err, errlen, "out of memory");
        return SC_FAILED;
    }
    return SC_OK;
}

/* ---- in-process cache --------------------------------------------------------------------------
 */

typedef struct cache_entry {
    char id[37];
    char sha256[65];
    void *blob;
    size_t len;
    model_view view;
    int refs;
    uint64_t last_used;
    struct cache_entry *next;
} cache_entry;

/* A model the worker refused as too large: not offered again before until_ms. */
typedef struct refused_key {
    char id[37];
    char blob_sha256[65];
    int64_t until_ms;
    char why[360];
} refused_key;

struct scoring_cache {
    pthread_mutex_t mu;
    size_t max_bytes;
    size_t bytes;
    uint64_t clock;
    cache_entry *head;
    refused_key refused[SCORING_REFUSED_MAX]; /* ring, guarded by mu */
    unsigned refused_next;
};

scoring_cache *scoring_cache_create(size_t max_bytes)
{
    scoring_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->max_bytes = max_bytes;
    return c;
}

static void entry_free(cache_entry *e)
{
    free(e->blob);
    free(e);
}

void scoring_cache_destroy(scoring_cache *c)
{
    if (!c)
        return;
    for (cache_entry *e = c->head, *n; e; e = n) {
        n = e->next;
        entry_free(e);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Evicts least-recently-used unreferenced entries until need more bytes fit.  Locked. */
static void cache_make_room(scoring_cache *c, size_t need)
{
    while (c->bytes + need > c->max_bytes) {
        cache_entry **victim = NULL;
        for (cache_entry **pp = &c->head; *pp; pp = &(*pp)->next)
            if ((*pp)->refs == 0 && (!victim || (*pp)->last_used < (*victim)->last_used))
                victim = pp;
        if (!victim)
            return; /* everything in use: go over the bound briefly rather than fail */
        cache_entry *e = *victim;
        *victim = e->next;
        c->bytes -= e->len;
        entry_free(e);
    }
}

void scoring_cache_counts(scoring_cache *c, unsigned *models, size_t *bytes)
{
    unsigned n = 0;
    *bytes = 0;
    if (!c) {
        *models = 0;
        return;
    }
    pthread_mutex_lock(&c->mu);
    for (cache_entry *e = c->head; e; e = e->next)
        n++;
    *bytes = c->bytes;
    pthread_mutex_unlock(&c->mu);
    *models = n;
}

/* The entry for m, referenced, or NULL.  Locked. */
static cache_entry *cache_find(scoring_cache *c, const scoring_model *m)
{
    for (cache_entry *e = c->head; e; e = e->next) {
        if (strcmp(e->id, m->id) == 0 && strcmp(e->sha256, m->sha256) == 0) {
            e->refs++;
            e->last_used = ++c->clock;
            return e;
        }
    }
    return NULL;
}

/* Returns a referenced entry for the model (fetching and validating it when absent) or NULL.
 * Two threads that miss at once both fetch (the lock is not held over the database round trip),
 * but only the first to finish inserts: the other takes that entry and drops its copy, so a model
 * is never cached twice. */
static cache_entry *cache_get(const app *a, const scoring_model *m, int64_t deadline_ms, int *sc,
                              char *err, size_t errlen)
{
    scoring_cache *c = a->cache;
    pthread_mutex_lock(&c->mu);
    cache_entry *hit = cache_find(c, m);
    pthread_mutex_unlock(&c->mu);
    if (hit)
        return hit;

    cache_entry *e = calloc(1, sizeof *e);
    if (!e) {
        *sc = SC_FAILED;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *sc = fetch_blob(a, m->id, deadline_ms, &e->blob, &e->len, err, errlen);
    if (*sc != SC_OK) {
        entry_free(e);
        return NULL;
    }
    if (model_validate(e->blob, e->len, NULL, 0, &e->view, err, errlen) != 0) {
        *sc = SC_FAILED;
        entry_free(e);
        return NULL;
    }
    snprintf(e->id, sizeof e->id, "%s", m->id);
    snprintf(e->sha256, sizeof e->sha256, "%s", m->sha256);
    e->refs = 1;
    pthread_mutex_lock(&c->mu);
    if ((hit = cache_find(c, m)) != NULL) {
        pthread_mutex_unlock(&c->mu);
        entry_free(e);
        return hit;
    }
    cache_make_room(c, e->len);
    e->last_used = ++c->clock;
    e->next = c->head;
    c->head = e;
    c->bytes += e->len;
    pthread_mutex_unlock(&c->mu);
    return e;
}

static void cache_put(scoring_cache *c, cache_entry *e)
{
    pthread_mutex_lock(&c->mu);
    e->refs--;
    pthread_mutex_unlock(&c->mu);
}

/* The reference TreeSHAP (common/treeshap.c) of nrows rows of a cached view into contribs and
 * margins (may be NULL), or with rows NULL only whether v can be explained.  Returns SC_OK,
 * SC_UNEXPLAINABLE (no covers, a tree too deep, LightGBM) or SC_FAILED (out of memory), err
 * filled. */
static int explain_view(const model_view *v, const scoring_model *m, const float *rows,
                        uint32_t nrows, float *contribs, float *margins, char *err, size_t errlen)
{
    size_t need = v->format == MODEL_FORMAT_LGBM ? 0 : treeshap_scratch_bytes(v);
    if (need == 0) {
        snprintf(err, errlen,
                 "model %s cannot be explained: compiled without node covers or with a tree "
                 "deeper than %u",
                 m->id, TREESHAP_MAX_DEPTH);
        return SC_UNEXPLAINABLE;
    }
    if (rows == NULL)
        return SC_OK;
    void *scratch = malloc(need);
    if (!scratch) {
        snprintf(err, errlen, "out of memory");
        return SC_FAILED;
    }
    treeshap_explain(v, rows, nrows, contribs, margins, scratch);
    free(scratch);
    return SC_OK;
}

static int run_inprocess(const app *a, sjob *jobs, int njobs, int64_t deadline_ms, char *err,
                         size_t errlen)
{
    for (int j = 0; j < njobs; j++) {
        int sc = SC_OK;
        cache_entry *e = cache_get(a, jobs[j].model, deadline_ms, &sc, err, errlen);
        if (!e)
            return sc;
        if (scoring_is_f64(jobs[j].model) != (e->view.format == MODEL_FORMAT_LGBM)) {
            cache_put(a->cache, e);
            snprintf(err, errlen, "model %s: compiled blob does not match its objective",
                     jobs[j].model->id);
            return SC_FAILED;
        }
        if (e->view.format == MODEL_FORMAT_LGBM)
            refeval_lgbm_predict(&e->view, jobs[j].rows64, jobs[j].nrows, jobs[j].output_margin,
                                 jobs[j].out64);
        else
            refeval_predict(&e->view, jobs[j].rows, jobs[j].nrows, jobs[j].output_margin,
                            jobs[j].out);
        sc = jobs[j].contribs ? explain_view(&e->view, jobs[j].model, jobs[j].rows, jobs[j].nrows,
                                             jobs[j].contribs, NULL, err, errlen)
                              : SC_OK;
        cache_put(a->cache, e);
        if (sc != SC_OK)
            return sc;
    }
    return SC_OK;
}

/* ---- what the worker can hold ------------------------------------------------------------------
 */

uint64_t scoring_frame_bytes(const app *a)
{
    return (uint64_t)a->cfg->hotpath_max_frame_mb << 20;
}

uint64_t scoring_request_bytes(uint32_t nrows, uint32_t nfeat, size_t elem)
{
    return 4 + WIRE_MODEL_KEY_SIZE + 12 + (elem == 8 ? 4 : 0) + (uint64_t)nrows * nfeat * elem;
}

uint64_t scoring_answer_bytes(uint32_t nrows, uint32_t nout, size_t elem)
{
    return 4 + 8 + (elem == 8 ? 4 : 0) + (uint64_t)nrows * nout * elem;
}

/* Whether model (id, blob_sha256) was refused as too large lately; why gets the reason. */
static int refused_lookup(scoring_cache *c, const char *id, const char *blob_sha256, char *why,
                          size_t whylen)
{
    int64_t now = clock_now_ms();
    int hit = 0;
    pthread_mutex_lock(&c->mu);
    for (unsigned i = 0; i < SCORING_REFUSED_MAX && !hit; i++) {
        const refused_key *k = &c->refused[i];
        if (k->until_ms > now && strcmp(k->id, id) == 0 &&
            strcmp(k->blob_sha256, blob_sha256) == 0) {
            snprintf(why, whylen, "%s", k->why);
            hit = 1;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

static void refused_remember(scoring_cache *c, const scoring_model *m, const char *why)
{
    pthread_mutex_lock(&c->mu);
    refused_key *k = &c->refused[c->refused_next++ % SCORING_REFUSED_MAX];
    snprintf(k->id, sizeof k->id, "%s", m->id);
    snprintf(k->blob_sha256, sizeof k->blob_sha256, "%s", m->blob_sha256);
    snprintf(k->why, sizeof k->why, "%s", why);
    k->until_ms = clock_now_ms() + SCORING_REFUSED_TTL_MS;
    pthread_mutex_unlock(&c->mu);
}

/* The worker's arena size from STATS ("arena_bytes_total"), or 0 when it does not say in time. */
static uint64_t worker_arena_bytes(const app *a, int64_t deadline_ms)
{
    hpc_reply r;
    char err[160];
    uint64_t total = 0;
    if (hpc_call(a->hp, WIRE_OP_STATS, NULL, 0, deadline_ms, a->cfg->pool_wait_ms, &r, err,
                 sizeof err) != HPC_OK)
        return 0;
    wire_reader rd;
    wire_reader_init(&rd, r.payload, r.status == WIRE_OK ? r.len : 0);
    unsigned n = wire_get_u16(&rd);
    for (unsigned i = 0; i < n && !rd.err; i++) {
        char name[64];
        wire_get_str(&rd, name, sizeof name);
        uint64_t v = wire_get_u64(&rd);
        if (!rd.err && strcmp(name, "arena_bytes_total") == 0)
            total = v;
    }
    hpc_reply_free(&r);
    return total;
}

int scoring_loadable(const app *a, const char *id, const char *blob_sha256, uint64_t blob_len,
                     int64_t deadline_ms, char *why, size_t whylen)
{
    uint64_t frame = scoring_frame_bytes(a);
    if (WIRE_MODEL_KEY_SIZE + 4 + blob_len > frame) {
        snprintf(why, whylen,
                 "the compiled model is %llu bytes; with its key it must fit one worker frame "
                 "(VIGIL_HOTPATH_MAX_FRAME_MB=%d, %llu bytes)",
                 (unsigned long long)blob_len, a->cfg->hotpath_max_frame_mb,
                 (unsigned long long)frame);
        return -1;
    }
    if (id && blob_sha256 && refused_lookup(a->cache, id, blob_sha256, why, whylen))
        return -1;
    uint64_t arena = a->hp ? worker_arena_bytes(a, deadline_ms) : 0;
    if (arena && blob_len > arena) {
        snprintf(why, whylen,
                 "the compiled model is %llu bytes, larger than the worker's model arena "
                 "(VIGIL_HOTPATH_MEMORY_MB, %llu bytes)",
                 (unsigned long long)blob_len, (unsigned long long)arena);
        return -1;
    }
    return 0;
}

/* ---- worker mode -------------------------------------------------------------------------------
 */

/* The 48-byte model key: UUID bytes then the compiled blob's SHA-256 bytes, both from their hex
 * text.  The worker recomputes the second half over the blob it is sent and refuses a mismatch. */
static void put_key(wire_writer *w, const scoring_model *m)
{
    uint8_t *p = wire_put_reserve(w, WIRE_MODEL_KEY_SIZE);
    if (!p)
        return;
    int k = 0;
    for (const char *s = m->id; *s && k < 16; s++) {
        if (*s == '-')
            continue;
        if (hex_decode(s, 1, p + k) != 0)
            p[k] = 0; /* ids come from the database: never reached */
        s++;
        k++;
    }
    if (hex_decode(m->blob_sha256, 32, p + 16) != 0)
        memset(p + 16, 0, 32);
}

static int map_hpc(int rc, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    return rc == HPC_OK ? SC_OK : SC_UNAVAILABLE;
}

/* Sends LOAD_MODEL for (m, blob).  Returns an scoring_status; a TOO_LARGE answer is remembered. */
static int send_load(const app *a, const scoring_model *m, const void *blob, size_t len,
                     int64_t deadline_ms, char *err, size_t errlen)
{
    size_t plen = WIRE_MODEL_KEY_SIZE + 4 + len;
    uint8_t *payload = malloc(plen);
    if (!payload) {
        snprintf(err, errlen, "out of memory");
        return SC_FAILED;
    }
    wire_writer w;
    wire_writer_init(&w, payload, plen);
    put_key(&w, m);
    wire_put_u32(&w, (uint32_t)len);
    wire_put_bytes(&w, blob, len);
    hpc_reply r;
    int rc = hpc_call(a->hp, WIRE_OP_LOAD_MODEL, payload, (uint32_t)plen, deadline_ms,
                      a->cfg->pool_wait_ms, &r, err, errlen);
    free(payload);
    if (rc != HPC_OK)
        return map_hpc(rc, err, errlen);
    int sc = SC_OK;
    if (r.status != WIRE_OK) {
        snprintf(err, errlen, "worker refused it (%s): %.*s", wire_status_name(r.status),
                 (int)(r.len > 300 ? 300 : r.len), (const char *)r.payload);
        sc = r.status == WIRE_E_NO_MEMORY   ? SC_UNAVAILABLE
             : r.status == WIRE_E_TOO_LARGE ? SC_TOO_LARGE
                                            : SC_FAILED;
    }
    hpc_reply_free(&r);
    if (sc == SC_TOO_LARGE)
        refused_remember(a->cache, m, err);
    return sc;
}

/* LOAD_MODEL for m.  The compiled blob comes from the API's cache (filled from PostgreSQL once
 * per API process), so refilling a restarted worker needs no database round trip.  A model that
 * cannot fit a frame, or that the worker refused as too large in the last
 * SCORING_REFUSED_TTL_MS, is answered SC_TOO_LARGE without sending anything.  Returns an
 * scoring_status. */
static int load_model(const app *a, const scoring_model *m, int64_t deadline_ms, char *err,
                      size_t errlen)
{
    if (refused_lookup(a->cache, m->id, m->blob_sha256, err, errlen))
        return SC_TOO_LARGE;
    int sc = SC_OK;
    cache_entry *e = cache_get(a, m, deadline_ms, &sc, err, errlen);
    if (!e)
        return sc;
    if (WIRE_MODEL_KEY_SIZE + 4 + (uint64_t)e->len > scoring_frame_bytes(a)) {
        snprintf(err, errlen,
                 "model %s: %zu compiled bytes do not fit one worker frame "
                 "(VIGIL_HOTPATH_MAX_FRAME_MB=%d)",
                 m->id, e->len, a->cfg->hotpath_max_frame_mb);
        cache_put(a->cache, e);
        refused_remember(a->cache, m, err);
        return SC_TOO_LARGE;
    }
    sc = send_load(a, m, e->blob, e->len, deadline_ms, err, errlen);
    cache_put(a->cache, e);
    return sc;
}

/* Builds the SCORE payload of njobs sections into a malloc'd buffer (*payload, caller frees),
 * *len its size.  Returns SC_OK, or SC_FAILED with err (too large for one frame, or OOM). */
static int score_payload(const app *a, const sjob *jobs, int njobs, uint8_t **payload, size_t *len,
                         char *err, size_t errlen)
{
    size_t plen = 4;
    for (int j = 0; j < njobs; j++) {
        int f64 = scoring_is_f64(jobs[j].model);
        plen += WIRE_MODEL_KEY_SIZE + 12 + (f64 ? 4 : 0) +
                (size_t)jobs[j].nrows * jobs[j].model->num_features *
                    (f64 ? sizeof(double) : sizeof(float));
    }
    if (plen > ((size_t)a->cfg->hotpath_max_frame_mb << 20)) {
        snprintf(err, errlen, "request too large for one worker frame (%zu bytes)", plen);
        return SC_FAILED;
    }
    if (!(*payload = malloc(plen))) {
        snprintf(err, errlen, "out of memory");
        return SC_FAILED;
    }
    wire_writer w;
    wire_writer_init(&w, *payload, plen);
    wire_put_u32(&w, (uint32_t)njobs);
    for (int j = 0; j < njobs; j++) {
        int f64 = scoring_is_f64(jobs[j].model);
        size_t cells = (size_t)jobs[j].nrows * jobs[j].model->num_features;
        put_key(&w, jobs[j].model);
        wire_put_u32(&w, (jobs[j].output_margin ? WIRE_SCORE_MARGIN : 0) |
                             (f64 ? WIRE_SCORE_F64 : 0) |
                             (jobs[j].contribs ? WIRE_SCORE_EXPLAIN : 0));
        wire_put_u32(&w, jobs[j].nrows);
        wire_put_u32(&w, jobs[j].model->num_features);
        if (f64) { /* doubles start 8-byte aligned in the payload */
            for (size_t k = wire_pad8(w.len); k > 0; k--)
                wire_put_u8(&w, 0);
            wire_put_bytes(&w, jobs[j].rows64, cells * sizeof(double));
        } else { /* float32 rows go as raw bytes: every host we build for is little-endian */
            wire_put_bytes(&w, jobs[j].rows, cells * sizeof(float));
        }
    }
    *len = w.len;
    return SC_OK;
}

/* Reads a WIRE_SCORE_EXPLAIN section's explanation (u32 ngroups u32 ncontrib f32 contribs[]
 * f32 margins[]) into contribs.  Returns SC_OK, or SC_FAILED when it does not match the model. */
static int explain_part(wire_reader *rd, const scoring_model *m, uint32_t nrows, float *contribs)
{
    uint32_t ng = wire_get_u32(rd), nc = wire_get_u32(rd);
    size_t n = (size_t)nrows * m->num_class * (m->num_features + 1);
    const uint8_t *c = ng == m->num_class && nc == m->num_features + 1
                           ? wire_get_bytes(rd, n * sizeof(float))
                           : NULL;
    wire_get_bytes(rd, (size_t)nrows * m->num_class * sizeof(float)); /* the margins */
    if (rd->err || !c)
        return SC_FAILED;
    memcpy(contribs, c, n * sizeof(float));
    return SC_OK;
}

/* Copies an OK SCORE answer into the jobs' outputs.  Returns SC_OK, or SC_FAILED with err when
 * the answer does not match the request. */
static int score_answer(const hpc_reply *r, sjob *jobs, int njobs, char *err, size_t errlen)
{
    wire_reader rd;
    wire_reader_init(&rd, r->payload, r->len);
    int sc = wire_get_u32(&rd) == (uint32_t)njobs ? SC_OK : SC_FAILED;
    for (int j = 0; j < njobs && sc == SC_OK; j++) {
        uint32_t nrows = wire_get_u32(&rd), nout = wire_get_u32(&rd);
        uint32_t want = scoring_nout(jobs[j].model, jobs[j].output_margin);
        int f64 = scoring_is_f64(jobs[j].model);
        if (f64 && !rd.err)
            wire_get_bytes(&rd, wire_pad8(rd.off));
        size_t cell = f64 ? sizeof(double) : sizeof(float);
        const uint8_t *p = rd.err || nrows != jobs[j].nrows || nout != want
                               ? NULL
                               : wire_get_bytes(&rd, (size_t)nrows * nout * cell);
        if (rd.err || !p)
            sc = SC_FAILED;
        else
            memcpy(f64 ? (void *)jobs[j].out64 : (void *)jobs[j].out, p,
                   (size_t)nrows * nout * cell);
        if (sc == SC_OK && jobs[j].contribs) /* WIRE_SCORE_EXPLAIN: EXPLAIN's answer follows */
            sc = explain_part(&rd, jobs[j].model, nrows, jobs[j].contribs);
    }
    if (sc != SC_OK)
        snprintf(err, errlen, "worker sent a malformed SCORE response");
    return sc;
}

/* A non-OK status other than UNKNOWN_MODEL as a scoring status (err filled). */
static int score_refused(const hpc_reply *r, char *err, size_t errlen)
{
    snprintf(err, errlen, "worker answered %s: %.*s", wire_status_name(r->status),
             (int)(r->len > 200 ? 200 : r->len), (const char *)r->payload);
    /* BUSY/NO_MEMORY pass; UNKNOWN_OP/BAD_VERSION mean a worker of another release
     * (mid-rollout): unavailable too, not a fault of this request. */
    return r->status == WIRE_E_BUSY || r->status == WIRE_E_NO_MEMORY ||
                   r->status == WIRE_E_UNKNOWN_OP || r->status == WIRE_E_BAD_VERSION
               ? SC_UNAVAILABLE
               : SC_FAILED;
}

/* Whether model m's cached blob can be explained (SC_OK), else SC_UNEXPLAINABLE (or the blob's
 * fetch error), err filled. */
static int explain_check(const app *a, const scoring_model *m, int64_t deadline_ms, char *err,
                         size_t errlen)
{
    int sc = SC_OK;
    cache_entry *e = cache_get(a, m, deadline_ms, &sc, err, errlen);
    if (!e)
        return sc;
    sc = explain_view(&e->view, m, NULL, 0, NULL, NULL, err, errlen);
    cache_put(a->cache, e);
    return sc;
}

/* One SCORE round trip for every job; each UNKNOWN_MODEL answer names one section whose model is
 * loaded before asking again (at most njobs times). */
static int run_worker(const app *a, sjob *jobs, int njobs, int64_t deadline_ms, char *err,
                      size_t errlen)
{
    uint8_t *payload = NULL;
    size_t plen = 0;
    int sc = score_payload(a, jobs, njobs, &payload, &plen, err, errlen);
    for (int attempt = 0; sc == SC_OK && attempt <= njobs; attempt++) {
        hpc_reply r;
        int rc = hpc_call(a->hp, WIRE_OP_SCORE, payload, (uint32_t)plen, deadline_ms,
                          a->cfg->pool_wait_ms, &r, err, errlen);
        if (rc != HPC_OK) {
            sc = map_hpc(rc, err, errlen);
            break;
        }
        if (r.status == WIRE_E_UNKNOWN_MODEL && attempt < njobs) {
            wire_reader rd;
            wire_reader_init(&rd, r.payload, r.len);
            uint32_t idx = wire_get_u32(&rd);
            hpc_reply_free(&r);
            if (rd.err || idx >= (uint32_t)njobs) {
                snprintf(err, errlen, "worker answered UNKNOWN_MODEL without a valid index");
                sc = SC_FAILED;
                break;
            }
            if (jobs[idx].contribs) /* an explained section: can it be explained at all? */
                sc = explain_check(a, jobs[idx].model, deadline_ms, err, errlen);
            if (sc == SC_OK)
                sc = load_model(a, jobs[idx].model, deadline_ms, err, errlen);
            continue;
        }
        sc = r.status == WIRE_OK ? score_answer(&r, jobs, njobs, err, errlen)
                                 : score_refused(&r, err, errlen);
        hpc_reply_free(&r);
        break;
    }
    free(payload);
    return sc;
}

static int run(const app *a, sjob *jobs, int njobs, int64_t deadline_ms, char *err, size_t errlen)
{
    if (!a->hp)
        return run_inprocess(a, jobs, njobs, deadline_ms, err, errlen);
    return run_worker(a, jobs, njobs, deadline_ms, err, errlen);
}

/* ---- explanations -----------------------------------------------------------------------------
 */

/* Explains in process with the reference (common/treeshap.c); also tells whether the cached blob
 * can be explained at all (check_only: no computation). */
static int explain_inprocess(const app *a, scoring_explain_job *job, int64_t deadline_ms,
                             int check_only, char *err, size_t errlen)
{
    int sc = SC_OK;
    cache_entry *e = cache_get(a, job->model, deadline_ms, &sc, err, errlen);
    if (!e)
        return sc;
    sc = explain_view(&e->view, job->model, check_only ? NULL : job->rows, job->nrows,
                      job->contribs, job->margins, err, errlen);
    cache_put(a->cache, e);
    return sc;
}

/* Copies an OK EXPLAIN answer into the job.  Returns SC_OK, or SC_FAILED with err when the
 * answer does not match the request. */
static int explain_answer(const hpc_reply *r, scoring_explain_job *job, char *err, size_t errlen)
{
    uint32_t nf = job->model->num_features, k = job->model->num_class;
    wire_reader rd;
    wire_reader_init(&rd, r->payload, r->len);
    uint32_t nrows = wire_get_u32(&rd), ng = wire_get_u32(&rd), nc = wire_get_u32(&rd);
    size_t ncontrib = (size_t)job->nrows * k * (nf + 1);
    const uint8_t *c = wire_get_bytes(&rd, ncontrib * sizeof(float));
    const uint8_t *m = wire_get_bytes(&rd, (size_t)job->nrows * k * sizeof(float));
    if (rd.err || nrows != job->nrows || ng != k || nc != nf + 1 || !c || !m ||
        wire_remaining(&rd) != 0) {
        snprintf(err, errlen, "worker sent a malformed EXPLAIN response");
        return SC_FAILED;
    }
    memcpy(job->contribs, c, ncontrib * sizeof(float));
    memcpy(job->margins, m, (size_t)job->nrows * k * sizeof(float));
    return SC_OK;
}

/* One EXPLAIN round trip; on UNKNOWN_MODEL the model is loaded once and asked again. */
static int explain_worker(const app *a, scoring_explain_job *job, int64_t deadline_ms, char *err,
                          size_t errlen)
{
    uint32_t nf = job->model->num_features;
    size_t plen = WIRE_MODEL_KEY_SIZE + 12 + (size_t)job->nrows * nf * sizeof(float);
    if (plen > ((size_t)a->cfg->hotpath_max_frame_mb << 20)) {
        snprintf(err, errlen, "request too large for one worker frame (%zu bytes)", plen);
        return SC_FAILED;
    }
    uint8_t *payload = malloc(plen);
    if (!payload) {
        snprintf(err, errlen, "out of memory");
        return SC_FAILED;
    }
    wire_writer w;
    wire_writer_init(&w, payload, plen);
    put_key(&w, job->model);
    wire_put_u32(&w, 0);
    wire_put_u32(&w, job->nrows);
    wire_put_u32(&w, nf);
    wire_put_bytes(&w, job->rows, (size_t)job->nrows * nf * sizeof(float));
    int sc = SC_FAILED;
    for (int attempt = 0; attempt < 2; attempt++) {
        hpc_reply r;
        int rc = hpc_call(a->hp, WIRE_OP_EXPLAIN, payload, (uint32_t)plen, deadline_ms,
                          a->cfg->pool_wait_ms, &r, err, errlen);
        if (rc != HPC_OK) {
            sc = map_hpc(rc, err, errlen);
            break;
        }
        if (r.status == WIRE_E_UNKNOWN_MODEL) {
            hpc_reply_free(&r);
            /* Not explainable at all, or not loaded (yet, or evicted): the blob says which. */
            sc = explain_inprocess(a, job, deadline_ms, 1, err, errlen);
            if (sc != SC_OK)
                break;
            if (attempt == 1) {
                snprintf(err, errlen, "the worker could not keep model %s for explaining",
                         job->model->id);
                sc = SC_UNAVAILABLE;
                break;
            }
            sc = load_model(a, job->model, deadline_ms, err, errlen);
            if (sc != SC_OK)
                break;
            continue;
        }
        sc = r.status == WIRE_OK ? explain_answer(&r, job, err, errlen)
                                 : score_refused(&r, err, errlen);
        hpc_reply_free(&r);
        break;
    }
    free(payload);
    return sc;
}

int scoring_explain(const app *a, scoring_explain_job *job, int64_t deadline_ms, char *err,
                    size_t errlen)
{
    if (!a->hp)
        return explain_inprocess(a, job, deadline_ms, 0, err, errlen);
    return explain_worker(a, job, deadline_ms, err, errlen);
}

int scoring_run(const app *a, scoring_job *jobs, int njobs, int64_t deadline_ms, char *err,
                size_t errlen)
{
    if (njobs < 1 || njobs > (int)WIRE_MAX_SECTIONS) {
        snprintf(err, errlen, "bad number of scoring jobs");
        return SC_FAILED;
    }
    /* A LightGBM job given float rows (the decision pipeline): widen here, narrow the outputs. */
    double *tmp[WIRE_MAX_SECTIONS] = {0};
    int sc = SC_OK;
    for (int j = 0; j < njobs; j++) {
        scoring_job *jb = &jobs[j];
        if (!scoring_is_f64(jb->model))
            continue;
        size_t cells = (size_t)jb->nrows * jb->model->num_features;
        size_t outs = (size_t)jb->nrows * scoring_nout(jb->model, jb->output_margin);
        tmp[j] = malloc((cells + outs) * sizeof(double) + 8);
        if (!tmp[j]) {
            snprintf(err, errlen, "out of memory");
            sc = SC_FAILED;
            goto done;
        }
        for (size_t i = 0; i < cells; i++)
            tmp[j][i] = jb->rows[i];
    }
    sjob wide[WIRE_MAX_SECTIONS];
    for (int j = 0; j < njobs; j++) {
        wide[j] = (sjob){jobs[j].model, jobs[j].output_margin, jobs[j].rows, NULL,
                         jobs[j].nrows, jobs[j].out,           NULL,         jobs[j].contribs};
        if (tmp[j] && jobs[j].contribs) {
            snprintf(err, errlen, "model %s cannot be explained: LightGBM models are not",
                     jobs[j].model->id);
            sc = SC_UNEXPLAINABLE;
            goto done;
        }
        if (tmp[j]) {
            wide[j].rows64 = tmp[j];
            wide[j].out64 = tmp[j] + (size_t)jobs[j].nrows * jobs[j].model->num_features;
        }
    }
    sc = run(a, wide, njobs, deadline_ms, err, errlen);
    for (int j = 0; j < njobs && sc == SC_OK; j++) {
        if (!tmp[j])
            continue;
        size_t outs = (size_t)jobs[j].nrows * scoring_nout(jobs[j].model, jobs[j].output_margin);
        for (size_t i = 0; i < outs; i++)
            jobs[j].out[i] = (float)wide[j].out64[i];
    }
done:
    for (int j = 0; j < njobs; j++)
        free(tmp[j]);
    return sc;
}

int scoring_run64(const app *a, scoring_job64 *jobs, int njobs, int64_t deadline_ms, char *err,
                  size_t errlen)
{
    if (njobs < 1 || njobs > (int)WIRE_MAX_SECTIONS) {
        snprintf(err, errlen, "bad number of scoring jobs");
        return SC_FAILED;
    }
    sjob s[WIRE_MAX_SECTIONS];
    for (int j = 0; j < njobs; j++) {
        if (!scoring_is_f64(jobs[j].model)) {
            snprintf(err, errlen, "model %s does not score in double", jobs[j].model->id);
            return SC_FAILED;
        }
        s[j] = (sjob){jobs[j].model, jobs[j].output_margin, NULL, jobs[j].rows, jobs[j].nrows,
                      NULL,          jobs[j].out,           NULL};
    }
    return run(a, s, njobs, deadline_ms, err, errlen);
}
