/* feat.c - built-in features: one aggregate query, then arithmetic.  See feat.h. */
#include "feat.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[FEAT_COUNT] = {
    "amount",
    "log_amount",
    "hour_of_day",
    "day_of_week",
    "user_age_days",
    "user_txn_count_1h",
    "user_txn_count_24h",
    "user_amount_sum_24h",
    "user_amount_avg_30d",
    "user_amount_max_30d",
    "amount_to_user_avg_30d",
    "seconds_since_last_txn",
    "merchant_seen_before",
    "country_mismatch",
    "user_distinct_countries_30d",
};

const char *feat_name(int id)
{
    return id >= 0 && id < FEAT_COUNT ? names[id] : NULL;
}

/* Columns of FEAT_SQL's row, in order. */
enum {
    COL_USER_ID = FEAT_COL_USER_ID,
    COL_OCCURRED_AT = FEAT_COL_OCCURRED_AT,
    COL_USER_COUNTRY,
    COL_USER_AGE_DAYS,
    COL_HOUR,
    COL_DAY_OF_WEEK,
    COL_COUNT_1H,
    COL_COUNT_24H,
    COL_SUM_24H,
    COL_AVG_30D,
    COL_MAX_30D,
    COL_SECONDS_SINCE_LAST,
    COL_MERCHANT_SEEN,
    COL_DISTINCT_COUNTRIES_30D,
    COL_USER_EXTERNAL_ID,
};
_Static_assert(COL_USER_COUNTRY == FEAT_COL_USER_COUNTRY, "feat.h names this column");
_Static_assert(COL_USER_EXTERNAL_ID == FEAT_COL_USER_EXTERNAL_ID, "feat.h names this column");

/* The 30-day scan is bounded by the index on
 * (user_id, occurred_at); "last" and "merchant seen" are separate index probes.  Windows are in
 * hours, never days: timestamptz - interval '30 days' steps calendar days in the session's time
 * zone, which across a summer-time change is 720 h +- 1 h. */
const char FEAT_SQL[] =
    "WITH u AS (SELECT id, created_at, country, external_id FROM users "
    "           WHERE ($1::uuid IS NOT NULL AND id = $1::uuid) "
    "              OR ($1::uuid IS NULL AND external_id = $2)), "
    "     o AS (SELECT coalesce($3::timestamptz, clock_timestamp()) AS t) "
    "SELECT u.id, "
    "  to_char(o.t AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
    "  u.country, "
    "  extract(epoch FROM o.t - u.created_at) / 86400.0, "
    "  extract(hour FROM o.t AT TIME ZONE 'UTC'), "
    "  extract(isodow FROM o.t AT TIME ZONE 'UTC') - 1, "
    "  a.c1h, a.c24h, a.s24h, a.avg30, a.max30, "
    "  extract(epoch FROM o.t - (SELECT max(l.occurred_at) FROM transactions l "
    "                            WHERE l.user_id = u.id AND l.occurred_at < o.t)), "
    "  EXISTS (SELECT 1 FROM transactions m WHERE m.user_id = u.id AND m.merchant_id = $4 "
    "          AND m.occurred_at < o.t), "
    "  a.dc30, u.external_id "
    "FROM u CROSS JOIN o CROSS JOIN LATERAL ("
    "  SELECT count(*) FILTER (WHERE t.occurred_at >= o.t - interval '1 hour') AS c1h, "
    "         count(*) FILTER (WHERE t.occurred_at >= o.t - interval '24 hours') AS c24h, "
    "         coalesce(sum(t.amount_major) FILTER (WHERE t.occurred_at >= o.t - interval "
    "'24 hours'), 0) AS s24h, "
    "         avg(t.amount_major) AS avg30, max(t.amount_major) AS max30, "
    "         count(DISTINCT t.country) AS dc30 "
    "  FROM transactions t WHERE t.user_id = u.id AND t.occurred_at < o.t "
    "    AND t.occurred_at >= o.t - interval '720 hours') a";

static double col(const PGresult *r, int c)
{
    return PQgetisnull(r, 0, c) ? NAN : strtod(PQgetvalue(r, 0, c), NULL);
}

void feat_compute(const PGresult *r, double amount_major, const char *country,
                  double out[FEAT_COUNT])
{
    out[FEAT_AMOUNT] = amount_major;
    out[FEAT_LOG_AMOUNT] = log1p(amount_major);
    out[FEAT_HOUR_OF_DAY] = col(r, COL_HOUR);
    out[FEAT_DAY_OF_WEEK] = col(r, COL_DAY_OF_WEEK);
    out[FEAT_USER_AGE_DAYS] = col(r, COL_USER_AGE_DAYS);
    out[FEAT_USER_TXN_COUNT_1H] = col(r, COL_COUNT_1H);
    out[FEAT_USER_TXN_COUNT_24H] = col(r, COL_COUNT_24H);
    out[FEAT_USER_AMOUNT_SUM_24H] = col(r, COL_SUM_24H);
    out[FEAT_USER_AMOUNT_AVG_30D] = col(r, COL_AVG_30D);
    out[FEAT_USER_AMOUNT_MAX_30D] = col(r, COL_MAX_30D);
    double avg = out[FEAT_USER_AMOUNT_AVG_30D];
    out[FEAT_AMOUNT_TO_USER_AVG_30D] = isnan(avg) || avg == 0 ? NAN : amount_major / avg;
    out[FEAT_SECONDS_SINCE_LAST_TXN] = col(r, COL_SECONDS_SINCE_LAST);
    out[FEAT_MERCHANT_SEEN_BEFORE] = PQgetvalue(r, 0, COL_MERCHANT_SEEN)[0] == 't' ? 1 : 0;
    out[FEAT_COUNTRY_MISMATCH] = PQgetisnull(r, 0, COL_USER_COUNTRY)                        ? NAN
                                 : strcmp(PQgetvalue(r, 0, COL_USER_COUNTRY), country) != 0 ? 1
                                                                                            : 0;
    out[FEAT_USER_DISTINCT_COUNTRIES_30D] = col(r, COL_DISTINCT_COUNTRIES_30D);
}
