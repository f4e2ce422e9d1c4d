#!/usr/bin/env bash
# run.sh BIN_DIR - `make bench`: prints figures, asserts nothing about time.
#
# 1. Worker kernel vs reference evaluator vs xgboost, on three models (each block prints the layout
#    the forest kernel gave the model and why):
#    a. the repo's 1000-tree, depth-8, 50-feature model:
#    - with Debian's /usr/bin/python3 + xgboost: tests/bench/gen_model.py trains it (seeded; cached
#      in build/bench/, so only the first run pays the ~1 min of training) and times xgboost's own
#      predictor (inplace_predict, float32, nthread=1) on the same rows the C benchmark reads;
#    - without xgboost: bench_kernel --synthetic (model_builder random trees of the same shape),
#      and the xgboost column is skipped with a note.
#    b. xgb_f (tests/fixtures/refs: xgboost 3.5 hist), beside Debian's xgboost 1.7.4 on the same
#       file and rows (tests/bench/xgb_time.py);
#    c. lgbm_k (LightGBM 4.6, 1000 trees of 255 leaves): the worker's LightGBM walk
#       (bin/tests/bench_lgbm) beside LightGBM's published figure.
#    bin/tests/bench_kernel prints ns/tree/row, rows/s, ratios and single-row latency.
# 2. Explanations: tests/bench/explain_xgb.py times xgboost's pred_contribs (nthread=1, one row at a
#    time, 7 rounds: best and median, CPU and wall clock) on the repo's model and rows;
#    bin/tests/bench_explain prints the worker's explainer the same way (and the ratios, best to
#    best and median to median), and batch rows/s on 1 thread and on every CPU.
# 3. Rules and lists (bin/tests/bench_rules): three 1M-item list sets (build time, bytes, lookup
#    CPU ns and p99) and a 50-rule policy (ns per decision, beside the same decision without rules).
# 4. End-to-end HTTP benchmarks: see the hook section at the bottom (VIGIL_BENCH_KERNEL_ONLY=1 skips
#    them).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-bin}
out=build/bench
py=/usr/bin/python3

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== kernel benchmark (1 thread figures are the best batch of ~0.7 s of repeats; single-row"
echo "   latency: p50/p99 of single-row calls on 1 thread, best round, by thread CPU time and by wall"
echo "   clock: the machine may be shared, see the load above; the wall-clock tail then holds other"
echo "   jobs' time slices)"
# background jobs at nice 19 (e.g. a fuzz campaign) take whatever CPU is idle: name them, since they
# share the cores with every figure below (CPU-time figures are what to quote then)
niced=$(ps -eo ni=,pcpu=,comm= 2>/dev/null | awk '$1 == 19 && $2 > 1 {n++; c += $2; if (!($3 in s)) {s[$3]; l = l " " $3}}
  END {if (n) printf "%d processes (%s), %.0f%% of a CPU on average over their lifetime", n, substr(l, 2), c}')
echo "== background at nice 19: ${niced:-none}"
if [ ! -x "$bin/tests/bench_kernel" ] && [ "${VIGIL_BENCH_EXPLAIN_ONLY:-0}" != 1 ]; then
  echo "$bin/tests/bench_kernel not built (make tests-build)"; exit 1
fi
have_xgb=0
if [ -x "$py" ] && "$py" -c 'import xgboost, numpy' 2>/dev/null; then
  have_xgb=1
else
  echo "   xgboost not available to $py (make deps installs python3-xgboost): xgboost columns skipped"
fi

# 1. The repo's own benchmark model (xgboost 1.7.4, trained once by gen_model.py), or model_builder
#    trees of the same shape without xgboost.
echo
echo "== model 1: the repo's benchmark model"
xgb_line=""
if [ "$have_xgb" = 1 ]; then
  [ -f "$out/bench.model.json" ] || echo "   (training the benchmark model with xgboost, once: ~1 min)"
  xgb_line=$("$py" tests/bench/gen_model.py "$out" 10000 | tail -n 1)
fi
explain_only=${VIGIL_BENCH_EXPLAIN_ONLY:-0} # 1: the machine line, the model, the explain part
if [ "$explain_only" = 1 ]; then
  echo "   (VIGIL_BENCH_EXPLAIN_ONLY=1: the kernel, rules and HTTP parts are skipped)"
elif [[ "$xgb_line" == xgboost* ]]; then
  echo "   $xgb_line"
  # kept for the backtest benchmark (http_backtest.sh prints its rows/s beside the kernel's)
  "$bin/tests/bench_kernel" "$out/bench.model.json" "$out/bench.rows.txt" \
    "$(echo "$xgb_line" | awk '{print $4}')" | tee "$out/kernel.bench.out"
else
  "$bin/tests/bench_kernel" --synthetic
fi

if [ "$explain_only" != 1 ]; then
  # 2. xgb_f: a model as current xgboost (3.5, hist) trains it, beside Debian's xgboost 1.7.4 on the
  #    same model file and rows (tests/fixtures/refs/xgb_f_speed_binary).
  echo
  echo "== model 2: xgb_f_speed_binary (xgboost 3.5 hist, 1000 trees, depth 8, 50 features)"
  ref=tests/fixtures/refs/xgb_f_speed_binary
  xgb_ns=0
  if [ "$have_xgb" = 1 ]; then
    xgbf_line=$("$py" tests/bench/xgb_time.py "$ref/model.ubj" "$ref/rows.txt" | tail -n 1)
    if [[ "$xgbf_line" == xgboost* ]]; then
      echo "   $xgbf_line (same model file, same rows)"
      xgb_ns=$(echo "$xgbf_line" | awk '{print $4}')
    fi
  fi
  "$bin/tests/bench_kernel" "$ref/model.ubj" "$ref/rows.txt" "$xgb_ns" \
    "xgb_f_speed_binary: xgboost 3.5 hist binary:logistic, 1000 trees, depth 8, 50 features, 2000 rows, no NaN"

  # 3. lgbm_k (LightGBM 4.6, 1000 trees of 255 leaves): the worker's LightGBM walk (hotpath/hp_lgbm.c).
  echo
  echo "== model 3: lgbm_k_speed_binary (LightGBM 4.6, 1000 trees, 255 leaves)"
  echo "   LightGBM C API, 1 thread: 133 ns/tree/row (../shared/refs/README.md); target <= 13.3"
  lk=tests/fixtures/refs/lgbm_k_speed_binary
  "$bin/tests/bench_lgbm" "$lk/model.txt" "$lk/rows.json" "$lk/expected.json"

fi

# ---- explanations: the worker's TreeSHAP vs xgboost's pred_contribs on the same model and rows ---
echo
echo "== explain benchmark (the repo's model)"
if [ ! -x "$bin/tests/bench_explain" ]; then
  echo "$bin/tests/bench_explain not built (make tests-build)"; exit 1
fi
if [[ "$xgb_line" == xgboost* ]]; then
  # xgboost first, then the worker, in the same run on the same 30 rows, 7 rounds each; the load
  # average before each (a fuzzer at nice 19 may hold both cores: CPU time is the figure to quote)
  echo "   load average $(cut -d' ' -f1-3 /proc/loadavg) (xgboost)"
  ex_line=$("$py" tests/bench/explain_xgb.py "$out/bench.model.json" "$out/bench.rows.txt" 30 7 | tail -n 1)
  echo "   $ex_line"
  echo "   load average $(cut -d' ' -f1-3 /proc/loadavg) (worker)"
  # fields: 4 CPU best, 6 CPU median, 8 wall best, 10 wall median
  "$bin/tests/bench_explain" "$out/bench.model.json" "$out/bench.rows.txt" \
    $(echo "$ex_line" | awk '{print $4, $6, $8, $10}')
  echo "   load average $(cut -d' ' -f1-3 /proc/loadavg) (after)"
else
  echo "   xgboost not available to $py: the xgboost comparison is skipped"
  "$bin/tests/bench_explain" tests/fixtures/deep_softprob.model.json tests/fixtures/deep_softprob.rows.txt
fi

[ "$explain_only" = 1 ] && exit 0

# ---- rules and lists: 1M-item list sets (memory, membership) and a 50-rule policy -----------------
echo
if [ -x "$bin/tests/bench_rules" ]; then
  "$bin/tests/bench_rules"
else
  echo "$bin/tests/bench_rules not built (make tests-build)"; exit 1
fi

# ---- HOOK: end-to-end HTTP benchmarks ----------------------------------------------------------
# Owned by the API side.  Every executable tests/bench/http_*.sh is run here with BIN_DIR as its
# argument (add a file rather than editing this one).  Keep `make bench` under ~3 minutes overall.
[ "${VIGIL_BENCH_KERNEL_ONLY:-0}" = 1 ] && exit 0 # the kernel part alone
shopt -s nullglob
for hook in tests/bench/http_*.sh; do
  echo "== $(basename "$hook")"
  bash "$hook" "$bin"
done
