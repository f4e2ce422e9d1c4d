/* health.h - /health (liveness: answers without touching anything) and /ready (PostgreSQL and,
 * in worker mode, vigil-hotpath both answer within a short deadline). */
#ifndef VIGIL_HEALTH_H
#define VIGIL_HEALTH_H

#include "http.h"

void health_live(http_req *req, http_resp *resp);
void health_ready(http_req *req, http_resp *resp);

#endif
