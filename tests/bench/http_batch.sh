#!/usr/bin/env bash
# http_batch.sh BIN_DIR - issue 11 item 4: the HTTP batch path end to end (JSON parse -> rows ->
# worker -> JSON print) beside xgboost's own predictor on the same rows, in the same run.
#
# Starts a throwaway PostgreSQL (lib.sh), vigil-hotpath and vigil-api (worker mode), uploads the
# benchmark model (1000 trees, depth 8, 50 features; tests/bench/gen_model.py, cached in
# build/bench/) and sends POST /api/v1/models/{id}/predict with the first VIGIL_BENCH_BATCH_ROWS
# (5000) rows of build/bench/bench.rows.txt, one request at a time on one keep-alive connection
# (loadgen closed loop, -c 1) for VIGIL_BENCH_BATCH_SECONDS (8) after a 1 s warm-up, and prints:
#   - wall time per request from the client: median (p50) and p90 over the N answered requests;
#   - CPU time per request of vigil-api and of vigil-hotpath (utime + stime from /proc over the
#     measured window, divided by N): the work done, which a shared machine inflates far less
#     than wall time;
#   - xgboost's in-process predict of the same rows (Debian's 1.7.4, inplace_predict, float32,
#     nthread=1, best of 7 by thread CPU time: tests/bench/xgb_time.py), and the ratio
#     xgboost / vigil (p50 wall).  xgboost's figure is CPU time of its best run, so the ratio
#     is, if anything, in xgboost's favour;
#   - the machine and the load average before and after.
# Also checks, once, that the answer holds N predictions (a figure of failed requests means nothing).
# Measures only: nothing here asserts on time.  About 30 s once the model is cached.
set -euo pipefail
BIN=${1:-bin}
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT INT TERM
bench_init
NROWS=${VIGIL_BENCH_BATCH_ROWS:-5000}
SECS=${VIGIL_BENCH_BATCH_SECONDS:-8}
JSON='Content-Type: application/json'
py=/usr/bin/python3

bench_machine
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
bench_model
bench_rows "$NROWS"
rows=$B_TMP/big_rows_$NROWS.txt
body=$B_TMP/big_rows_$NROWS.json

# cpu_ticks PID: utime + stime of a process (and all its threads), in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

bench_start_app worker
id=$(bench_upload "$B_MODEL" bench-batch)
url=$B_API/api/v1/models/$id/predict
n_pred=$(curl -sS -H "$B_AUTH" -H "$JSON" --data-binary @"$body" "$url" |
         tr ',' '\n' | grep -c '[0-9]' || true)
[ "$n_pred" -ge "$NROWS" ] || bench_die "the predict answer holds $n_pred numbers, expected $NROWS"
printf '\n== POST /api/v1/models/{id}/predict, %d rows x 50 features (%s KiB body), worker mode,\n' \
  "$NROWS" "$(( $(stat -c %s "$body") / 1024 ))"
echo "   closed loop, 1 connection, ${SECS} s after 1 s of warm-up (bin/tests/loadgen -r 0 -c 1)"
"$B_LOADGEN" -q -r 0 -d 1 -c 1 --timeout 30 -H "$B_AUTH" -H "$JSON" -b "$body" "$url" >/dev/null
a0=$(cpu_ticks "$B_API_PID") h0=$(cpu_ticks "$B_HP_PID")
res=$("$B_LOADGEN" -q -r 0 -d "$SECS" -c 1 --timeout 30 -H "$B_AUTH" -H "$JSON" -b "$body" "$url" |
      grep '^RESULT')
a1=$(cpu_ticks "$B_API_PID") h1=$(cpu_ticks "$B_HP_PID")
n=$(bench_field "$res" answered)
p50=$(bench_field "$res" p50_us) p90=$(bench_field "$res" p90_us)
[ "$(bench_field "$res" non2xx)" = 0 ] && [ "$(bench_field "$res" errors)" = 0 ] ||
  bench_die "failed requests: $res"
ms() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1000 }'; }
cpu_ms() { awk -v d="$1" -v n="$n" -v hz="$hz" 'BEGIN { printf "%.1f", d * 1000 / hz / n }'; }
echo "   vigil: $n requests: p50 $(ms "$p50") ms, p90 $(ms "$p90") ms (wall, from the client)"
echo "   CPU per request: vigil-api $(cpu_ms $((a1 - a0))) ms, vigil-hotpath $(cpu_ms $((h1 - h0))) ms" \
     "(utime+stime over the window / $n; the worker's compute pool runs on every CPU)"

xgb=$("$py" tests/bench/xgb_time.py "$B_MODEL" "$rows" 2>&1 | tail -n 1)
if [[ "$xgb" == xgboost* ]]; then
  xgb_ms=$(echo "$xgb" | awk '{ printf "%.1f", $4 * $6 / 1e6 }')
  echo "   $(echo "$xgb" | awk '{print $1, $2}') in-process predict of the same $NROWS rows, nthread=1" \
       "(inplace_predict, best of 7, thread CPU time): $xgb_ms ms"
  echo "   => vigil over HTTP (p50 wall) is $(awk -v x="$xgb_ms" -v v="$p50" 'BEGIN { printf "%.2f", x * 1000 / v }')x" \
       "xgboost in-process (target: p50 <= 40 ms and >= 5x)"
else
  echo "   xgboost unavailable to $py: $xgb"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
