#!/usr/bin/env bash
# run.sh BIN_DIR - `make bench`: prints figures, asserts nothing about time.
#
# 1. Worker kernel vs reference evaluator vs xgboost, on a 1000-tree, depth-8, 50-feature model:
#    - with Debian's /usr/bin/python3 + xgboost: tests/bench/gen_model.py trains it (seeded; cached
#      in build/bench/, so only the first run pays the ~1 min of training) and times xgboost's own
#      predictor (inplace_predict, float32, nthread=1) on the same rows the C benchmark reads;
#    - without xgboost: bench_kernel --synthetic (model_builder random trees of the same shape),
#      and the xgboost column is skipped with a note.
#    Then bin/tests/bench_kernel prints ns/tree/row, rows/s, ratios and single-row latency.
# 2. Explanations: tests/bench/explain_xgb.py times xgboost's pred_contribs (nthread=1, one row at a
#    time) on the same model and rows; bin/tests/bench_explain prints the worker's explainer one
#    row at a time (and the ratio), and batch rows/s on 1 thread and on every CPU.
# 3. End-to-end HTTP benchmarks: see the hook section at the bottom.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-bin}
out=build/bench
py=/usr/bin/python3

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== kernel benchmark"
if [ ! -x "$bin/tests/bench_kernel" ]; then
  echo "$bin/tests/bench_kernel not built (make tests-build)"; exit 1
fi
xgb_line=""
if [ -x "$py" ] && "$py" -c 'import xgboost, numpy' 2>/dev/null; then
  [ -f "$out/bench.model.json" ] || echo "   (training the benchmark model with xgboost, once: ~1 min)"
  xgb_line=$("$py" tests/bench/gen_model.py "$out" 10000 | tail -n 1)
fi
if [[ "$xgb_line" == xgboost* ]]; then
  xgb_ns=$(echo "$xgb_line" | awk '{print $4}')
  echo "   $xgb_line"
  "$bin/tests/bench_kernel" "$out/bench.model.json" "$out/bench.rows.txt" "$xgb_ns"
else
  echo "   xgboost not available to $py: synthetic model, xgboost comparison skipped"
  "$bin/tests/bench_kernel" --synthetic
fi

# ---- explanations: the worker's TreeSHAP vs xgboost's pred_contribs on the same model and rows ---
echo "== explain benchmark"
if [ ! -x "$bin/tests/bench_explain" ]; then
  echo "$bin/tests/bench_explain not built (make tests-build)"; exit 1
fi
if [[ "$xgb_line" == xgboost* ]]; then
  ex_line=$("$py" tests/bench/explain_xgb.py "$out/bench.model.json" "$out/bench.rows.txt" 30 | tail -n 1)
  echo "   $ex_line"
  "$bin/tests/bench_explain" "$out/bench.model.json" "$out/bench.rows.txt" "$(echo "$ex_line" | awk '{print $4}')"
else
  echo "   xgboost not available to $py: the xgboost comparison is skipped"
  "$bin/tests/bench_explain" tests/fixtures/deep_softprob.model.json tests/fixtures/deep_softprob.rows.txt
fi

# ---- HOOK: end-to-end HTTP benchmarks ----------------------------------------------------------
# Owned by the API side.  Every executable tests/bench/http_*.sh is run here with BIN_DIR as its
# argument (add a file rather than editing this one).  Keep `make bench` under ~3 minutes overall.
shopt -s nullglob
for hook in tests/bench/http_*.sh; do
  echo "== $(basename "$hook")"
  bash "$hook" "$bin"
done
