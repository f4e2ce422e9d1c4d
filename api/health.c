/* health.c - liveness and readiness.  See health.h.
 *
 * /ready checks PostgreSQL and the worker at the same time, each with its own budget
 * (READY_BUDGET_MS, capped by the request's deadline) and its own verdict, so a slow database
 * never makes the worker look down or the other way round.  Costs: one extra thread per /ready
 * in worker mode, one SELECT 1 and one HELLO. */
#include "health.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <string.h>

#include "clock.h"
#include "db.h"
#include "hpclient.h"

#define READY_BUDGET_MS 1000

/* ROUTE_INLINE: runs on an event thread, so no lock, no allocation, no I/O. */
void health_live(http_req *req, http_resp *resp)
{
    (void)req;
    static const char body[] = "{\"status\":\"ok\"}";
    http_static(resp, 200, "application/json", body, sizeof body - 1);
}

/* One dependency check: its deadline in, its status out. */
typedef struct ready_check {
    const app *a;
    int64_t deadline_ms;
    int rc;
} ready_check;

static void *check_hotpath(void *arg)
{
    ready_check *k = arg;
    char err[256];
    k->rc = hpc_hello(k->a->hp, k->deadline_ms, err, sizeof err);
    return NULL;
}

/* "up", "timeout" (no answer within its budget) or "down" (refused, broken, or an error). */
static const char *verdict(int ok, int timed_out)
{
    return ok ? "up" : timed_out ? "timeout" : "down";
}

void health_ready(http_req *req, http_resp *resp)
{
    int64_t dl = clock_now_ms() + READY_BUDGET_MS;
    if (dl > req->deadline_ms)
        dl = req->deadline_ms;
    int worker = strcmp(req->app->cfg->hotpath_mode, "worker") == 0;
    ready_check hp = {req->app, dl, HPC_OK};
    pthread_t t;
    int threaded = worker && pthread_create(&t, NULL, check_hotpath, &hp) == 0;
    int db_rc = db_ping(req->app->db, dl);
    if (threaded)
        pthread_join(t, NULL);
    else if (worker)
        check_hotpath(&hp); /* no thread: one after the other, still each within dl */
    int db_up = db_rc == DB_OK, hp_up = hp.rc == HPC_OK;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", db_up && hp_up ? "ready" : "not_ready");
    cJSON_AddStringToObject(o, "database", verdict(db_up, db_rc == DB_TIMEOUT));
    cJSON_AddStringToObject(o, "hotpath",
                            !worker ? "inprocess" : verdict(hp_up, hp.rc == HPC_TIMEOUT));
    if (!(db_up && hp_up))
        resp->retry_after = 1;
    http_json(resp, db_up && hp_up ? 200 : 503, o);
}
