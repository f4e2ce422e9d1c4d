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

#include "hex.h"
#include "hpclient.h"
#include "model.h"
#include "refeval.h"
#include "treeshap.h"
#include "wire.h"

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

struct scoring_cache {
    pthread_mutex_t mu;
    size_t max_bytes;
    size_t bytes;
    uint64_t clock;
    cache_entry *head;
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

/* Returns a referenced entry for the model (fetching and validating it when absent) or NULL. */
static cache_entry *cache_get(const app *a, const scoring_model *m, int64_t deadline_ms, int *sc,
                              char *err, size_t errlen)
{
    scoring_cache *c = a->cache;
    pthread_mutex_lock(&c->mu);
    for (cache_entry *e = c->head; e; e = e->next) {
        if (strcmp(e->id, m->id) == 0 && strcmp(e->sha256, m->sha256) == 0) {
            e->refs++;
            e->last_used = ++c->clock;
            pthread_mutex_unlock(&c->mu);
            return e;
        }
    }
    pthread_mutex_unlock(&c->mu);

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

static int run_inprocess(const app *a, scoring_job *jobs, int njobs, int64_t deadline_ms, char *err,
                         size_t errlen)
{
    for (int j = 0; j < njobs; j++) {
        int sc = SC_OK;
        cache_entry *e = cache_get(a, jobs[j].model, deadline_ms, &sc, err, errlen);
        if (!e)
            return sc;
        refeval_predict(&e->view, jobs[j].rows, jobs[j].nrows, jobs[j].output_margin, jobs[j].out);
        cache_put(a->cache, e);
    }
    return SC_OK;
}

/* ---- worker mode -------------------------------------------------------------------------------
 */

/* The 48-byte model key: UUID bytes then SHA-256 bytes, both from their hex text. */
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
    if (hex_decode(m->sha256, 32, p + 16) != 0)
        memset(p + 16, 0, 32);
}

static int map_hpc(int rc, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    return rc == HPC_OK ? SC_OK : SC_UNAVAILABLE;
}

/* LOAD_MODEL for m.  The compiled blob comes from the API's cache (filled from PostgreSQL once
 * per API process), so refilling a restarted worker needs no database round trip.  Returns an
 * scoring_status. */
static int load_model(const app *a, const scoring_model *m, int64_t deadline_ms, char *err,
                      size_t errlen)
{
    int sc = SC_OK;
    cache_entry *e = cache_get(a, m, deadline_ms, &sc, err, errlen);
    if (!e)
        return sc;
    const void *blob = e->blob;
    size_t len = e->len;
    size_t plen = WIRE_MODEL_KEY_SIZE + 4 + len;
    uint8_t *payload = plen <= UINT32_MAX ? malloc(plen) : NULL;
    if (!payload) {
        cache_put(a->cache, e);
        snprintf(err, errlen, "model too large to send to the worker");
        return SC_FAILED;
    }
    wire_writer w;
    wire_writer_init(&w, payload, plen);
    put_key(&w, m);
    wire_put_u32(&w, (uint32_t)len);
    wire_put_bytes(&w, blob, len);
    cache_put(a->cache, e);
    hpc_reply r;
    int rc = hpc_call(a->hp, WIRE_OP_LOAD_MODEL, payload, (uint32_t)plen, deadline_ms,
                      a->cfg->pool_wait_ms, &r, err, errlen);
    free(payload);
    if (rc != HPC_OK)
        return map_hpc(rc, err, errlen);
    sc = SC_OK;
    if (r.status != WIRE_OK) {
        snprintf(err, errlen, "worker refused model %s: %s: %.*s", m->id,
                 wire_status_name(r.status), (int)(r.len > 200 ? 200 : r.len),
                 (const char *)r.payload);
        sc = r.status == WIRE_E_NO_MEMORY ? SC_UNAVAILABLE : SC_FAILED;
    }
    hpc_reply_free(&r);
    return sc;
}

static int run_worker(const app *a, scoring_job *jobs, int njobs, int64_t deadline_ms, char *err,
                      size_t errlen)
{
    size_t plen = 4;
    for (int j = 0; j < njobs; j++)
        plen += WIRE_MODEL_KEY_SIZE + 12 +
                (size_t)jobs[j].nrows * jobs[j].model->num_features * sizeof(float);
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
    wire_put_u32(&w, (uint32_t)njobs);
    for (int j = 0; j < njobs; j++) {
        put_key(&w, jobs[j].model);
        wire_put_u32(&w, jobs[j].output_margin ? WIRE_SCORE_MARGIN : 0);
        wire_put_u32(&w, jobs[j].nrows);
        wire_put_u32(&w, jobs[j].model->num_features);
        /* float32 rows go as raw bytes: every host we build for is little-endian. */
        wire_put_bytes(&w, jobs[j].rows,
                       (size_t)jobs[j].nrows * jobs[j].model->num_features * sizeof(float));
    }
    int sc = SC_FAILED;
    for (int attempt = 0; attempt <= njobs; attempt++) {
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
            /* Each UNKNOWN_MODEL names one missing section: load it and ask again. */
            sc = load_model(a, jobs[idx].model, deadline_ms, err, errlen);
            if (sc != SC_OK)
                break;
            continue;
        }
        if (r.status != WIRE_OK) {
            snprintf(err, errlen, "worker answered %s: %.*s", wire_status_name(r.status),
                     (int)(r.len > 200 ? 200 : r.len), (const char *)r.payload);
            /* BUSY/NO_MEMORY pass; UNKNOWN_OP/BAD_VERSION mean a worker of another release
             * (mid-rollout): unavailable too, not a fault of this request. */
            sc = r.status == WIRE_E_BUSY || r.status == WIRE_E_NO_MEMORY ||
                         r.status == WIRE_E_UNKNOWN_OP || r.status == WIRE_E_BAD_VERSION
                     ? SC_UNAVAILABLE
                     : SC_FAILED;
            hpc_reply_free(&r);
            break;
        }
        wire_reader rd;
        wire_reader_init(&rd, r.payload, r.len);
        sc = wire_get_u32(&rd) == (uint32_t)njobs ? SC_OK : SC_FAILED;
        for (int j = 0; j < njobs && sc == SC_OK; j++) {
            uint32_t nrows = wire_get_u32(&rd), nout = wire_get_u32(&rd);
            uint32_t want = scoring_nout(jobs[j].model, jobs[j].output_margin);
            const uint8_t *p = wire_get_bytes(&rd, (size_t)nrows * nout * sizeof(float));
            if (rd.err || nrows != jobs[j].nrows || nout != want || !p)
                sc = SC_FAILED;
            else
                memcpy(jobs[j].out, p, (size_t)nrows * nout * sizeof(float));
        }
        if (sc != SC_OK)
            snprintf(err, errlen, "worker sent a malformed SCORE response");
        hpc_reply_free(&r);
        break;
    }
    free(payload);
    return sc;
}

/* ---- explanations -----------------------------------------------------------------------------
 */

/* Explains in process with the reference (common/treeshap.c); also tells whether the cached blob
 * can be explained at all (explain_only_check: no computation). */
static int explain_inprocess(const app *a, scoring_explain_job *job, int64_t deadline_ms,
                             int check_only, char *err, size_t errlen)
{
    int sc = SC_OK;
    cache_entry *e = cache_get(a, job->model, deadline_ms, &sc, err, errlen);
    if (!e)
        return sc;
    size_t need = treeshap_scratch_bytes(&e->view);
    if (need == 0) {
        snprintf(err, errlen,
                 "model %s cannot be explained: compiled without node covers or with a tree "
                 "deeper than %u",
                 job->model->id, TREESHAP_MAX_DEPTH);
        sc = SC_UNEXPLAINABLE;
    } else if (!check_only) {
        void *scratch = malloc(need);
        if (scratch) {
            treeshap_explain(&e->view, job->rows, job->nrows, job->contribs, job->margins, scratch);
            free(scratch);
        } else {
            snprintf(err, errlen, "out of memory");
            sc = SC_FAILED;
        }
    }
    cache_put(a->cache, e);
    return sc;
}

static int explain_worker(const app *a, scoring_explain_job *job, int64_t deadline_ms, char *err,
                          size_t errlen)
{
    uint32_t nf = job->model->num_features, k = job->model->num_class;
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
        if (r.status != WIRE_OK) {
            snprintf(err, errlen, "worker answered %s: %.*s", wire_status_name(r.status),
                     (int)(r.len > 200 ? 200 : r.len), (const char *)r.payload);
            sc = r.status == WIRE_E_BUSY || r.status == WIRE_E_NO_MEMORY ||
                         r.status == WIRE_E_UNKNOWN_OP || r.status == WIRE_E_BAD_VERSION
                     ? SC_UNAVAILABLE
                     : SC_FAILED;
            hpc_reply_free(&r);
            break;
        }
        wire_reader rd;
        wire_reader_init(&rd, r.payload, r.len);
        uint32_t nrows = wire_get_u32(&rd), ng = wire_get_u32(&rd), nc = wire_get_u32(&rd);
        size_t ncontrib = (size_t)job->nrows * k * (nf + 1);
        const uint8_t *c = wire_get_bytes(&rd, ncontrib * sizeof(float));
        const uint8_t *m = wire_get_bytes(&rd, (size_t)job->nrows * k * sizeof(float));
        if (rd.err || nrows != job->nrows || ng != k || nc != nf + 1 || !c || !m ||
            wire_remaining(&rd) != 0) {
            snprintf(err, errlen, "worker sent a malformed EXPLAIN response");
            sc = SC_FAILED;
        } else {
            memcpy(job->contribs, c, ncontrib * sizeof(float));
            memcpy(job->margins, m, (size_t)job->nrows * k * sizeof(float));
            sc = SC_OK;
        }
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
    if (!a->hp)
        return run_inprocess(a, jobs, njobs, deadline_ms, err, errlen);
    return run_worker(a, jobs, njobs, deadline_ms, err, errlen);
}
