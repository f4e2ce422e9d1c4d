#!/usr/bin/python3
"""explain_xgb.py MODEL ROWS [N] [ROUNDS] - xgboost's own one-row explanation time, for `make bench`.

Times Booster.predict(DMatrix(row, missing=nan), pred_contribs=True) with nthread=1, one row at a
time, on the first N (default 30) rows of ROWS (tests/fixtures matrix format); each row's DMatrix
is built before the clock starts.  ROUNDS (default 7) passes over the rows after a warm-up, each
timed by the thread's CPU clock and by the wall clock.  Prints one line (µs per row):
    xgboost <version> contribs_us_per_row <cpu best> cpu_median <m> wall_best <b> wall_median <m>
        rows <n> rounds <r>
Exit status 3 when xgboost or numpy is missing."""
import statistics
import sys
import time

try:
    import numpy as np
    import xgboost as xgb
except ImportError as e:  # pragma: no cover
    print("xgboost unavailable: %s" % e)
    sys.exit(3)

model, rows_path = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 30
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 7
with open(rows_path) as f:
    nr, nc = map(int, f.readline().split())
    X = np.array([[float(v) for v in f.readline().split()] for _ in range(min(n, nr))],
                 dtype=np.float32)
b = xgb.Booster(model_file=model)
b.set_param({"nthread": 1})
mats = [xgb.DMatrix(X[i:i + 1], missing=np.nan) for i in range(len(X))]
b.predict(mats[0], pred_contribs=True)  # warm-up
cpu, wall = [], []
for _ in range(rounds):
    t0, w0 = time.thread_time(), time.perf_counter()  # CPU time: the machine may be loaded
    for m in mats:
        b.predict(m, pred_contribs=True)
    cpu.append((time.thread_time() - t0) / len(mats) * 1e6)
    wall.append((time.perf_counter() - w0) / len(mats) * 1e6)
print("xgboost %s contribs_us_per_row %.1f cpu_median %.1f wall_best %.1f wall_median %.1f "
      "rows %d rounds %d" % (xgb.__version__, min(cpu), statistics.median(cpu), min(wall),
                             statistics.median(wall), len(mats), rounds))
