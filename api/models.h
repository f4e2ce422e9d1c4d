/* models.h - handlers of /api/v1/models, /api/v1/models/{id}/predict and .../explain (see
 * models.c). */
#ifndef VIGIL_MODELS_H
#define VIGIL_MODELS_H

#include "http.h"

void models_create(http_req *req, http_resp *resp);
void models_list(http_req *req, http_resp *resp);
void models_get(http_req *req, http_resp *resp);
void models_source(http_req *req, http_resp *resp);
void models_delete(http_req *req, http_resp *resp);
void models_predict(http_req *req, http_resp *resp);
/* POST /api/v1/models/{id}/explain: the predict body -> SHAP contributions and margins. */
void models_explain(http_req *req, http_resp *resp);

#endif
