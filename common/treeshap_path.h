/* treeshap_path.h - TreeSHAP's path arithmetic (xgboost 1.7.4 src/tree/tree_model.cc ExtendPath,
 * UnwindPath, UnwoundPathSum), written once for the reference (common/treeshap.c) and the worker's
 * explainer (hotpath/hp_shap.c): static inline so that both compile the very same float32
 * operations inlined into their walks (an out-of-line call per path element costs more than the
 * arithmetic).  path[0..d] is the unique path of depth d; see treeshap.h for treeshap_elem.
 *
 * Costs: extend and unwound_sum O(d), unwind O(d). */
#ifndef VIGIL_TREESHAP_PATH_H
#define VIGIL_TREESHAP_PATH_H

#include <stdint.h>

#include "treeshap.h"

/* ---- the path arithmetic (tree_model.cc ExtendPath, UnwindPath, UnwoundPathSum) ------------- */

static inline void treeshap_extend(treeshap_elem *path, uint32_t d, float zero, float one,
                                   int32_t feature)
{
    path[d].feature = feature;
    path[d].zero = zero;
    path[d].one = one;
    path[d].pweight = d == 0 ? 1.0f : 0.0f;
    for (int i = (int)d - 1; i >= 0; i--) {
        path[i + 1].pweight += one * path[i].pweight * (float)(i + 1) / (float)(d + 1);
        path[i].pweight = zero * path[i].pweight * (float)(d - (uint32_t)i) / (float)(d + 1);
    }
}

static inline void treeshap_unwind(treeshap_elem *path, uint32_t d, uint32_t pi)
{
    const float one = path[pi].one, zero = path[pi].zero;
    float next_one = path[d].pweight;
    for (int i = (int)d - 1; i >= 0; i--) {
        if (one != 0) {
            const float tmp = path[i].pweight;
            path[i].pweight = next_one * (float)(d + 1) / ((float)(i + 1) * one);
            next_one = tmp - path[i].pweight * zero * (float)(d - (uint32_t)i) / (float)(d + 1);
        } else {
            path[i].pweight =
                (path[i].pweight * (float)(d + 1)) / (zero * (float)(d - (uint32_t)i));
        }
    }
    /* pweight stays where it is; only the split descriptions move down */
    for (uint32_t i = pi; i < d; i++) {
        path[i].feature = path[i + 1].feature;
        path[i].zero = path[i + 1].zero;
        path[i].one = path[i + 1].one;
    }
}

static inline float treeshap_unwound_sum(const treeshap_elem *path, uint32_t d, uint32_t pi)
{
    const float one = path[pi].one, zero = path[pi].zero;
    float next_one = path[d].pweight;
    float total = 0;
    for (int i = (int)d - 1; i >= 0; i--) {
        if (one != 0) {
            const float tmp = next_one * (float)(d + 1) / ((float)(i + 1) * one);
            total += tmp;
            next_one = path[i].pweight - tmp * zero * ((float)(d - (uint32_t)i) / (float)(d + 1));
        } else if (zero != 0) {
            total += (path[i].pweight / zero) / ((float)(d - (uint32_t)i) / (float)(d + 1));
        }
        /* else: xgboost CHECKs that pweight is 0, which adds nothing */
    }
    return total;
}

#endif
