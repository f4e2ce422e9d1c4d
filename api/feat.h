/* feat.h - vigil's built-in transaction features, computed from PostgreSQL at request time.
 *
 * One SQL round trip (FEAT_SQL) resolves the user and reads every user aggregate over the
 * user's EARLIER transactions (occurred_at strictly before this one's), windows measured back
 * from this transaction's occurred_at and inclusive at their far end.  feat_compute turns that
 * row plus the request into values; NaN means "missing".  README's feature table documents the
 * same definitions. */
#ifndef VIGIL_FEAT_H
#define VIGIL_FEAT_H

#include <libpq-fe.h>

enum feature_id {
    FEAT_AMOUNT,                 /* amount in major units (amount / 10^exponent) */
    FEAT_LOG_AMOUNT,             /* ln(1 + amount in major units) */
    FEAT_HOUR_OF_DAY,            /* 0..23, UTC */
    FEAT_DAY_OF_WEEK,            /* 0..6, UTC, Monday = 0 */
    FEAT_USER_AGE_DAYS,          /* (occurred_at - user.created_at) in days, fractional */
    FEAT_USER_TXN_COUNT_1H,      /* earlier transactions in [t - 1 h, t) */
    FEAT_USER_TXN_COUNT_24H,     /* earlier transactions in [t - 24 h, t) */
    FEAT_USER_AMOUNT_SUM_24H,    /* sum of their major amounts, 0 when none */
    FEAT_USER_AMOUNT_AVG_30D,    /* mean major amount in [t - 30 d, t); missing when none */
    FEAT_USER_AMOUNT_MAX_30D,    /* max major amount in [t - 30 d, t); missing when none */
    FEAT_AMOUNT_TO_USER_AVG_30D, /* amount / user_amount_avg_30d; missing when no average */
    FEAT_SECONDS_SINCE_LAST_TXN, /* t - latest earlier occurred_at; missing when none */
    FEAT_MERCHANT_SEEN_BEFORE,   /* 1 if an earlier transaction of the user has merchant_id */
    FEAT_COUNTRY_MISMATCH,       /* 1 if user.country != country, 0 if equal, missing if unset */
    FEAT_USER_DISTINCT_COUNTRIES_30D, /* distinct countries in [t - 30 d, t) */
    FEAT_COUNT
};

/* Name of a built-in ("amount", ...), or NULL for an id out of range.  A decision finds built-ins
 * by name through its own index of these (decision_features.c). */
const char *feat_name(int id);

/* Parameters: $1 user id (uuid or NULL), $2 user external id (or NULL), $3 occurred_at
 * (RFC 3339 or NULL for now), $4 merchant_id.  Columns: see feat.c. */
extern const char FEAT_SQL[];

/* Column of the user id and of occurred_at (RFC 3339 UTC, microseconds) in FEAT_SQL's row. */
#define FEAT_COL_USER_ID 0
#define FEAT_COL_OCCURRED_AT 1
/* Column of the user's country (NULL when unset) and external id (rule operands, issue 12). */
#define FEAT_COL_USER_COUNTRY 2
#define FEAT_COL_USER_EXTERNAL_ID 14

/* Fills out[FEAT_COUNT] from FEAT_SQL's row 0 and the request's amount and country. */
void feat_compute(const PGresult *r, double amount_major, const char *country,
                  double out[FEAT_COUNT]);

#endif
