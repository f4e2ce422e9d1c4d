/* scrape.h - GET /metrics (Prometheus text format 0.0.4): the handler that gathers what the
 * counters of metrics.h hold, adds gauges read at scrape time - the PostgreSQL pool
 * (db_pool_counts), the worker's liveness (a HELLO with a short deadline) and the worker's own
 * counters (its STATS op, re-exported one by one as vigil_hotpath_<name>) - and answers.
 *
 * Costs: O(series) plus two worker round trips bounded by SCRAPE_HOTPATH_DEADLINE_MS each; the
 * output is bounded by SCRAPE_MAX_OUTPUT bytes (500 beyond).  /metrics needs no key: restrict it
 * at the network (see docker/README.md). */
#ifndef VIGIL_SCRAPE_H
#define VIGIL_SCRAPE_H

#include "http.h"

#define SCRAPE_HOTPATH_DEADLINE_MS 300
#define SCRAPE_MAX_OUTPUT (1u << 20)

/* GET /metrics.  No authentication (route scope SCOPE_NONE).  Route labels come from the server's
 * table (req->routes). */
void scrape_handler(http_req *req, http_resp *resp);

#endif
