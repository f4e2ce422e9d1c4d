/* reviews.h - the review queue, /api/v1/reviews: a decision of `review` opens a review in the
 * decision's own transaction (migration 0009's decision_events, called by decision_store.c);
 * analysts list, claim and close them here.
 *
 * States: open -> claimed (POST .../claim by an API key; the same key may claim again, another
 * key gets 409 review_claimed) -> closed (POST .../close {"outcome", "note"} by the claiming key,
 * or by any key while still open; a closed review answers 409 review_closed).  Closing labels the
 * transaction with label_source `analyst` (approved -> legit, fraud -> fraud; refunded leaves the
 * label unset: a refund settles the payment without saying whether it was fraud) and writes the
 * review.closed (and transaction.labelled) webhook events in the same database transaction.
 * Each review records who (API key id) claimed and closed it, and when. */
#ifndef VIGIL_REVIEWS_H
#define VIGIL_REVIEWS_H

#include "http.h"

void reviews_list(http_req *req, http_resp *resp);
void reviews_get(http_req *req, http_resp *resp);
void reviews_claim(http_req *req, http_resp *resp);
void reviews_close(http_req *req, http_resp *resp);

#endif
