/* transactions.h - handlers of /api/v1/transactions and /api/v1/users/{id}/transactions. */
#ifndef VIGIL_TRANSACTIONS_H
#define VIGIL_TRANSACTIONS_H

#include "http.h"

void txn_create(http_req *req, http_resp *resp);
void txn_get(http_req *req, http_resp *resp);
void txn_list(http_req *req, http_resp *resp);
void txn_list_for_user(http_req *req, http_resp *resp);
void txn_label(http_req *req, http_resp *resp);

#endif
