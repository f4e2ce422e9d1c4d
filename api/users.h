/* users.h - handlers of /api/v1/users (see users.c). */
#ifndef VIGIL_USERS_H
#define VIGIL_USERS_H

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "http.h"

void users_create(http_req *req, http_resp *resp);
void users_list(http_req *req, http_resp *resp);
void users_get(http_req *req, http_resp *resp);
void users_update(http_req *req, http_resp *resp);
void users_delete(http_req *req, http_resp *resp);

/* JSON of row `row` of a result selected with users.c's USER_COLS.  Caller owns the object. */
cJSON *users_row_json(const PGresult *r, int row);

#endif
