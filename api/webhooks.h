/* webhooks.h - the webhook endpoint resource, /api/v1/webhooks (admin scope: an endpoint receives
 * every transaction it subscribes to, so only admins may point one somewhere): create (the answer
 * carries the signing `secret`, shown once), list, get, PATCH (url, events, description, enabled:
 * re-enabling resets the failure streak), DELETE, rotate-secret (the new secret, shown once), and
 * the deliveries of an endpoint with every attempt.  URLs pass netguard.h's SSRF policy on create
 * and update.  Delivery itself is dispatch.h's. */
#ifndef VIGIL_WEBHOOKS_H
#define VIGIL_WEBHOOKS_H

#include "http.h"

#define WEBHOOK_URL_MAX 2048
#define WEBHOOK_DESCRIPTION_MAX 512
#define WEBHOOK_EVENTS_MAX 32

void webhooks_create(http_req *req, http_resp *resp);
void webhooks_list(http_req *req, http_resp *resp);
void webhooks_get(http_req *req, http_resp *resp);
void webhooks_update(http_req *req, http_resp *resp);
void webhooks_delete(http_req *req, http_resp *resp);
void webhooks_rotate_secret(http_req *req, http_resp *resp);
void webhooks_deliveries(http_req *req, http_resp *resp);

#endif
