#!/usr/bin/python3
"""Trains the demo fraud model that `make run` loads into an empty database.

Run with Debian's python (python3-xgboost 1.7.4, numpy):  /usr/bin/python3 api/demo/train_demo.py
It writes api/demo/demo_model.json next to this script.  The data is synthetic: transactions
described by vigil's built-in feature names (README, "Built-in features"), with fraud more likely
for large amounts relative to the user's average, unseen merchants, foreign countries, night
hours, bursts of activity and young accounts.  Seeded, so a rerun gives the same file.
"""
import os

import numpy as np
import xgboost as xgb

FEATURES = [
    "amount", "log_amount", "hour_of_day", "day_of_week", "user_age_days",
    "user_txn_count_1h", "user_txn_count_24h", "user_amount_sum_24h",
    "user_amount_avg_30d", "user_amount_max_30d", "amount_to_user_avg_30d",
    "seconds_since_last_txn", "merchant_seen_before", "country_mismatch",
    "user_distinct_countries_30d",
]


def synth(n, rng):
    avg = rng.lognormal(3.5, 1.0, n)                      # user's usual spend
    has_hist = rng.random(n) > 0.15
    ratio = rng.lognormal(0.0, 0.8, n)
    fraud_pull = rng.random(n) < 0.08
    ratio[fraud_pull] *= rng.uniform(3, 20, fraud_pull.sum())
    amount = np.round(avg * ratio, 2) + 0.01
    hour = rng.integers(0, 24, n).astype(float)
    dow = rng.integers(0, 7, n).astype(float)
    age = rng.exponential(400, n)
    c1h = rng.poisson(0.3, n).astype(float)
    c1h[fraud_pull] += rng.poisson(2, fraud_pull.sum())
    c24h = c1h + rng.poisson(2, n)
    sum24 = c24h * avg * rng.uniform(0.5, 1.5, n)
    max30 = avg * rng.uniform(1.5, 4, n)
    since = rng.exponential(36000, n)
    since[fraud_pull] = rng.exponential(300, fraud_pull.sum())
    seen = (rng.random(n) < np.where(fraud_pull, 0.1, 0.7)).astype(float)
    mismatch = (rng.random(n) < np.where(fraud_pull, 0.5, 0.05)).astype(float)
    countries = 1 + rng.poisson(np.where(fraud_pull, 1.5, 0.2))
    X = np.column_stack([
        amount, np.log1p(amount), hour, dow, age, c1h, c24h, sum24,
        np.where(has_hist, avg, np.nan), np.where(has_hist, max30, np.nan),
        np.where(has_hist, amount / avg, np.nan), np.where(has_hist, since, np.nan),
        seen, mismatch, countries.astype(float),
    ]).astype(np.float32)
    logit = (-4.0 + 1.2 * np.log1p(np.nan_to_num(X[:, 10], nan=1.0)) + 0.8 * (1 - seen)
             + 1.5 * mismatch + 0.6 * c1h + 0.7 * ((hour < 6) | (hour > 22))
             - 0.002 * np.minimum(age, 700) + 0.4 * (countries - 1))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def main():
    assert xgb.__version__ == "1.7.4", xgb.__version__
    rng = np.random.default_rng(20261123)
    X, y = synth(20000, rng)
    d = xgb.DMatrix(X, label=y, feature_names=FEATURES, missing=np.nan)
    params = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.2, "nthread": 1,
              "seed": 7, "eval_metric": "auc"}
    booster = xgb.train(params, d, num_boost_round=60)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_model.json")
    booster.save_model(out)
    print("wrote", out, "positive rate", y.mean())


if __name__ == "__main__":
    main()
