/* dispatch.h - the webhook dispatcher: VIGIL_WEBHOOK_CONCURRENCY threads of vigil-api that deliver
 * the outbox (migration 0009; written by outbox.h) to the endpoints over HTTP with libcurl.
 *
 * Each thread loops: claim up to VIGIL_WEBHOOK_BATCH due deliveries (SELECT ... FOR UPDATE SKIP
 * LOCKED, then one lease of 2 x VIGIL_WEBHOOK_TIMEOUT_MS + 6 s, committed at once, so no other
 * replica or thread can claim them while they are in flight), POST them one after another on one
 * kept-alive connection per endpoint, each only while its whole timeout and the record's 5 s
 * budget still fit in the lease (the rest are given back at once, unattempted), record the
 * attempts in one statement
 * (webhook_record: delivered, retried later with exponential backoff and jitter, or given up
 * after the retry window).  One thread at a time polls: it sleeps VIGIL_WEBHOOK_POLL_MS when
 * its claim was not full, and a thread whose claim returns deliveries first hands the polling to
 * a sleeping thread; the sleeping threads also wake for a claim that found a backlog (a full
 * batch, or deliveries given back), each such claim waking one more.  A
 * delivery is due only when no earlier event of the same transaction is still pending for the
 * same endpoint (per-transaction order: a batch holds at most one delivery per transaction and
 * endpoint); a replica that dies mid-delivery leaves its lease to expire and the delivery is
 * made again: at least once,
 * consumers dedupe on the event id.  Concurrent deliveries per replica are bounded by the thread
 * count.  Every request: the body is the event JSON, Content-Type application/json, header
 * `Vigil-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, no redirects,
 * no proxies, http(s) only, bounded by VIGIL_WEBHOOK_TIMEOUT_MS, and the address connected to is
 * checked by netguard.h unless the URL's host is allow-listed.
 *
 * The dispatcher has its own database pool (one connection per thread), so deliveries never
 * take connections from requests.  Thread-safe; one per process. */
#ifndef VIGIL_DISPATCH_H
#define VIGIL_DISPATCH_H

#include <stddef.h>

#include "config.h"

typedef struct dispatch dispatch;

/* Starts the threads (none when c->webhook_concurrency is 0: returns a dispatcher that does
 * nothing).  Calls curl_global_init, so call it before other threads use libcurl.  Returns the
 * dispatcher, or NULL with err filled.  c must outlive it. */
dispatch *dispatch_start(const cfg *c, char *err, size_t errlen);
/* Stops the threads, then frees d.  An attempt in flight is aborted and not recorded: its lease
 * expires and it is made again (by this process after a restart, or another replica).  NULL is a
 * no-op. */
void dispatch_stop(dispatch *d);

#endif
