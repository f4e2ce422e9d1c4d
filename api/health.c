/* health.c - liveness and readiness.  See health.h. */
#include "health.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "db.h"
#include "hpclient.h"
#include "clock.h"

#define READY_TIMEOUT_MS 1000

void health_live(http_req *req, http_resp *resp)
{
    (void)req;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    http_json(resp, 200, o);
}

void health_ready(http_req *req, http_resp *resp)
{
    int64_t dl = clock_now_ms() + READY_TIMEOUT_MS;
    if (dl > req->deadline_ms)
        dl = req->deadline_ms;
    int db_up = db_ping(req->app->db, dl) == DB_OK;
    int worker = strcmp(req->app->cfg->hotpath_mode, "worker") == 0;
    char err[256];
    int hp_up = !worker || hpc_hello(req->app->hp, dl, err, sizeof err) == HPC_OK;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", db_up && hp_up ? "ready" : "not_ready");
    cJSON_AddStringToObject(o, "database", db_up ? "up" : "down");
    cJSON_AddStringToObject(o, "hotpath", !worker ? "inprocess" : hp_up ? "up" : "down");
    if (!(db_up && hp_up))
        resp->retry_after = 1;
    http_json(resp, db_up && hp_up ? 200 : 503, o);
}
