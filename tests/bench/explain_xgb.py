#!/usr/bin/python3
"""explain_xgb.py MODEL ROWS [N] - xgboost's own one-row explanation time, for `make bench`.

Times Booster.predict(DMatrix(row, missing=nan), pred_contribs=True) with nthread=1, one row at a
time, on the first N (default 200) rows of ROWS (tests/fixtures matrix format); each row's DMatrix
is built before the clock starts.  Best of 3 passes, in thread CPU time.  Prints one line:
    xgboost <version> contribs_us_per_row <float> rows <n>
Exit status 3 when xgboost or numpy is missing."""
import sys
import time

try:
    import numpy as np
    import xgboost as xgb
except ImportError as e:  # pragma: no cover
    print("xgboost unavailable: %s" % e)
    sys.exit(3)

model, rows_path = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
with open(rows_path) as f:
    nr, nc = map(int, f.readline().split())
    X = np.array([[float(v) for v in f.readline().split()] for _ in range(min(n, nr))],
                 dtype=np.float32)
b = xgb.Booster(model_file=model)
b.set_param({"nthread": 1})
mats = [xgb.DMatrix(X[i:i + 1], missing=np.nan) for i in range(len(X))]
b.predict(mats[0], pred_contribs=True)  # warm-up
best = float("inf")
for _ in range(3):
    t0 = time.thread_time()  # CPU time, like bench_explain: the machine may be loaded
    for m in mats:
        b.predict(m, pred_contribs=True)
    best = min(best, time.thread_time() - t0)
print("xgboost %s contribs_us_per_row %.1f rows %d" % (xgb.__version__, best / len(mats) * 1e6,
                                                       len(mats)))
