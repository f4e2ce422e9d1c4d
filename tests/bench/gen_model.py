#!/usr/bin/python3
"""gen_model.py OUT_DIR [NROWS] - the benchmark model and xgboost's own predictor timing.

Trains a 1000-tree, depth-8, 50-feature binary:logistic model with xgboost (seeded, so reruns give
the same model), writes OUT_DIR/bench.model.json and OUT_DIR/bench.rows.txt (NROWS rows, 10% NaN,
the tests/fixtures matrix format), and prints xgboost's own single-thread predictor speed on those
rows as one line:  xgboost <version> ns_per_row <float> rows <n>
(Booster.inplace_predict on a float32 array, nthread=1, best of 5 runs).  Reuses an existing model
file (training takes a while); the timing is measured on every run.
Exit status 3 when xgboost or numpy is missing (run.sh then falls back to model_builder trees)."""
import os
import sys
import time

try:
    import numpy as np
    import xgboost as xgb
except ImportError as e:  # pragma: no cover
    print("xgboost unavailable: %s" % e)
    sys.exit(3)

out = sys.argv[1]
nrows = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
os.makedirs(out, exist_ok=True)
model_path = os.path.join(out, "bench.model.json")
rows_path = os.path.join(out, "bench.rows.txt")

rng = np.random.default_rng(20240501)
NF = 50
if not os.path.exists(model_path):
    n_train = 10000
    X = rng.standard_normal((n_train, NF)).astype(np.float32)
    w = rng.standard_normal(NF)
    y = ((X @ w + 0.5 * np.sin(3 * X[:, 0]) * X[:, 1] + rng.standard_normal(n_train)) > 0)
    X[rng.random(X.shape) < 0.1] = np.nan
    d = xgb.DMatrix(X, label=y.astype(np.float32), missing=np.nan)
    params = {"objective": "binary:logistic", "max_depth": 8, "eta": 0.1, "tree_method": "hist",
              "seed": 7, "nthread": os.cpu_count() or 1, "min_child_weight": 0}
    bst = xgb.train(params, d, num_boost_round=1000)
    bst.save_model(model_path + ".tmp.json")
    os.replace(model_path + ".tmp.json", model_path)

bst = xgb.Booster(model_file=model_path)
bst.set_param({"nthread": 1})
Xs = rng.standard_normal((nrows, NF)).astype(np.float32)
Xs[rng.random(Xs.shape) < 0.1] = np.nan
if not os.path.exists(rows_path):
    with open(rows_path + ".tmp", "w") as f:
        f.write("%d %d\n" % Xs.shape)
        for r in Xs:
            f.write(" ".join("nan" if np.isnan(v) else "%.9g" % v for v in r) + "\n")
    os.replace(rows_path + ".tmp", rows_path)
else:  # time on the very rows the C benchmark reads
    with open(rows_path) as f:
        f.readline()
        Xs = np.array([[float(t) for t in line.split()] for line in f], dtype=np.float32)

bst.inplace_predict(Xs[:100], missing=np.nan)  # warm-up
best = float("inf")
for _ in range(5):
    t0 = time.thread_time()
    bst.inplace_predict(Xs, missing=np.nan)
    best = min(best, time.thread_time() - t0)
print("xgboost %s ns_per_row %.1f rows %d" % (xgb.__version__, best * 1e9 / len(Xs), len(Xs)))
