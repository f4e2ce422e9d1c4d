/* btrows.h - a stored feature snapshot turned into a model's input row, by feature name (the
 * backtests' counterpart of decision_row_build).
 *
 * Owns: btrows_map, one model's feature names in an open-addressing hash (name -> first index),
 * and per-feature counts of rows whose snapshot lacked the name.  The snapshot is the flat JSON
 * object a decision stored (name -> float32 value printed with 9 significant digits, or null);
 * each value is read back with strtof, so a row is the float32 vector the decision scored, bit
 * for bit.  A name the snapshot lacks is missing (NaN) and counted; a null is missing too (it was
 * missing when the decision was made) and not counted.
 * Costs: btrows_fill is linear in the snapshot's bytes plus the model's features; a snapshot with
 * escaped names falls back to cJSON.  Not thread-safe (the counts): one map per job thread. */
#ifndef VIGIL_BTROWS_H
#define VIGIL_BTROWS_H

#include <stddef.h>
#include <stdint.h>

#include "scoring.h"

typedef struct btrows_map {
    const scoring_model *model;
    uint32_t nfeat;
    size_t mask;              /* hash capacity - 1 */
    struct btrows_slot *slot; /* name -> first feature index */
    uint32_t *alias;          /* feature i takes the value of feature alias[i] (duplicate names) */
    uint32_t *stamp;          /* per feature: the row number that last set it */
    uint32_t row_no;
    int64_t *missing; /* per feature: rows whose snapshot lacked it */
} btrows_map;

/* Indexes model m's feature names (m must outlive the map).  0, or -1 when out of memory. */
int btrows_map_init(btrows_map *map, const scoring_model *m);
void btrows_map_free(btrows_map *map);

/* Fills row[0..nfeat) from the snapshot text json (NUL-terminated) and counts the features it
 * lacked.  Returns 0, or -1 when json is not a flat object of numbers and nulls (row then holds
 * NaN for what could not be read). */
int btrows_fill(btrows_map *map, const char *json, float *row);

#endif
