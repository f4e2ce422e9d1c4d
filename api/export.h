/* export.h - GET /api/v1/transactions/export?from=&to=&labelled_only=: every stored transaction of
 * the window, oldest first, streamed for retraining (issue 14).
 *
 * NDJSON by default (application/x-ndjson): each line is exactly the body GET
 * /api/v1/transactions/{id} answers for that transaction (txn_row_json, printed by the same
 * printer), so the features are the snapshot scored at decision time (no leakage).  With
 * `Accept: text/csv`, RFC 4180 CSV with a header line: the transaction's scalar fields, then
 * `features` and `metadata` as JSON text cells.
 * Point in time: one REPEATABLE READ, READ ONLY database transaction for the whole export, read
 * through a server-side cursor, so the export is one consistent snapshot however long it streams.
 * Memory: bounded whatever the size: EXPORT_FETCH_ROWS rows and one formatted row at a time (plus
 * libmicrohttpd's 64 KiB block).  Holds one pooled database connection while it streams; each
 * FETCH is bounded by VIGIL_REQUEST_TIMEOUT_MS. */
#ifndef VIGIL_EXPORT_H
#define VIGIL_EXPORT_H

#include "http.h"

#define EXPORT_FETCH_ROWS 1000

void export_transactions(http_req *req, http_resp *resp);

#endif
