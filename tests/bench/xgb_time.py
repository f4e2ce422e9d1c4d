#!/usr/bin/python3
"""xgb_time.py MODEL ROWS - xgboost's own single-thread predictor speed on a model file and rows.

MODEL is any file xgboost's Booster can load (JSON or UBJSON; xgboost 1.7.4 reads the 3.x files of
tests/fixtures/refs), ROWS the tests/fixtures matrix format ("ROWS COLS", then values, "nan" =
missing).  Times Booster.inplace_predict on a float32 array with nthread=1, best of 7 runs after a
warm-up, by the thread's CPU time (nthread=1 predicts on the calling thread; bench_kernel times
the kernel the same way, so time slices given to other jobs count for neither), and prints one
line:  xgboost <version> ns_per_row <float> rows <n>
Exit status 3 when xgboost or numpy is missing (run.sh then leaves the xgboost column out)."""
import sys
import time

try:
    import numpy as np
    import xgboost as xgb
except ImportError as e:  # pragma: no cover
    print("xgboost unavailable: %s" % e)
    sys.exit(3)

model_path, rows_path = sys.argv[1], sys.argv[2]
with open(rows_path) as f:
    f.readline()
    X = np.array([[float(t) for t in line.split()] for line in f], dtype=np.float32)
bst = xgb.Booster(model_file=model_path)
bst.set_param({"nthread": 1})
bst.inplace_predict(X[:100], missing=np.nan)  # warm-up
best = float("inf")
for _ in range(7):
    t0 = time.thread_time()
    bst.inplace_predict(X, missing=np.nan)
    best = min(best, time.thread_time() - t0)
print("xgboost %s ns_per_row %.1f rows %d" % (xgb.__version__, best * 1e9 / len(X), len(X)))
