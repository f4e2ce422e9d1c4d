/* app.h - the process-wide state of vigil-api, built once in main and passed explicitly to every
 * request (no hidden globals).  Owns nothing itself; main creates and destroys the parts. */
#ifndef VIGIL_APP_H
#define VIGIL_APP_H

#include <stdatomic.h>

#include "config.h"

struct db_pool;
struct hpc_pool;
struct scoring_cache;
struct listcache;
struct rulecat_cache;
struct auth_cache;
struct batchq;

typedef struct app {
    const cfg *cfg;
    struct db_pool *db;  /* PostgreSQL connections, see db.h */
    struct hpc_pool *hp; /* vigil-hotpath connections, see hpclient.h (NULL in inprocess mode) */
    struct scoring_cache *cache; /* compiled models (scoring.c), both modes */
    struct listcache *lists;     /* list sets per list version (listcache.c) */
    struct rulecat_cache *rules; /* the active policy version's compiled rules (rulecat.c) */
    struct auth_cache *keys;     /* recently verified API keys (auth.c), NULL = no cache */
    struct batchq *reads;        /* decisions' reads, sent in groups (batchq.h) */
    struct batchq *commits;      /* decisions' writes, committed in groups (batchq.h) */
    atomic_int *exports;         /* exports streaming now (export.c), <= export_concurrency */
} app;

#endif
