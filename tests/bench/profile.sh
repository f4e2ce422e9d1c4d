#!/usr/bin/env bash
# profile.sh BIN_DIR - where vigil's CPU goes (`make profile`).
#
# Starts a throwaway PostgreSQL and the app, uploads the big benchmark model (1000 trees, depth 8,
# 50 features; tests/bench/gen_model.py, cached), puts a bounded loopback load on it and profiles:
#
# VIGIL_PROFILE_WORKLOAD=single (default): vigil-api with VIGIL_HOTPATH_MODE=inprocess under
#   one-row predict requests:
#   perf       `perf record -e cpu-clock` (sampling, real speed) on the running API for
#              VIGIL_PROFILE_SECONDS (8) at VIGIL_PROFILE_RATE (300) req/s, then the top
#              symbols by self time;
#   callgrind  the API restarted under `valgrind --tool=callgrind` (instruction counts, exact but
#              ~50x slower), 20 req/s for 8 s, then `callgrind_annotate` inclusive and self.
#   This is the "before" picture that motivated the worker: the reference tree walk (refeval_*)
#   dominates.
# VIGIL_PROFILE_WORKLOAD=batch (`make profile-batch`, issue 11 item 4): the HTTP batch path in
#   worker mode, POST /predict with VIGIL_PROFILE_BATCH_ROWS (5000) rows, one request at a time:
#   perf       cpu-clock samples of vigil-api and vigil-hotpath together (by command and symbol)
#              for VIGIL_PROFILE_SECONDS, closed loop on one connection;
#   callgrind  both processes restarted under callgrind, counters zeroed after a warm-up request
#              (so start-up and the model load are out), VIGIL_PROFILE_BATCH_REQUESTS (4)
#              requests, then instructions per request of each process and their top functions.
# VIGIL_PROFILER=perf|callgrind|both picks (default: both when `perf record` works here, else
# callgrind).  Measures only; about 1.5 minutes once the model is cached.
set -euo pipefail
BIN=${1:-bin}
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT INT TERM
bench_init
SECS=${VIGIL_PROFILE_SECONDS:-8}
RATE=${VIGIL_PROFILE_RATE:-300}
JSON='Content-Type: application/json'

# cg_top FILE N: the totals line and the first N functions of a callgrind_annotate listing, without
# callgrind's duplicate entries (no object name) and libmicrohttpd's anonymous frames.
cg_top() {
  { grep -m1 'PROGRAM TOTALS' "$1"
    sed -n '/file:function/,$p' "$1" | grep '\[' | grep -v '???\|clone\|start_thread' | head -n "$2"
  } | sed 's| \[/[^]]*/\([^/]*\)\]$| [\1]|' || true
}

perf_works() {
  command -v perf >/dev/null 2>&1 &&
    perf record -q -e cpu-clock -o "$B_TMP/probe.data" -- true >/dev/null 2>&1
}
PROFILER=${VIGIL_PROFILER:-}
if [ -z "$PROFILER" ]; then
  if perf_works; then PROFILER=both; else PROFILER=callgrind; fi
fi

bench_machine
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
bench_model

# cg_per_req FILE K: the instructions of a callgrind profile divided by K requests, in millions.
cg_per_req() {
  awk -v k="$2" '/PROGRAM TOTALS/ { gsub(/,/, "", $1); printf "%.1f M", $1 / k / 1e6; exit }' "$1"
}

# The batch workload (issue 11 item 4): worker mode, 5000-row requests, both processes profiled.
profile_batch() {
  local n=${VIGIL_PROFILE_BATCH_ROWS:-5000} k=${VIGIL_PROFILE_BATCH_REQUESTS:-4}
  bench_rows "$n"
  local body=$B_TMP/big_rows_$n.json
  bench_start_app worker
  local big url
  big=$(bench_upload "$B_MODEL" bench-big)
  url=$B_API/api/v1/models/$big/predict
  echo "model: big (1000 trees, depth 8, 50 features) $big; $n rows per request, worker mode"
  if [ "$PROFILER" = perf ] || [ "$PROFILER" = both ]; then
    printf '\n== perf: %s-row predicts one at a time (closed loop, 1 connection) for %s s,\n' "$n" "$SECS"
    echo "   cpu-clock samples of vigil-api (pid $B_API_PID) and vigil-hotpath (pid $B_HP_PID)"
    "$B_LOADGEN" -q -r 0 -d 1 -c 1 --timeout 30 -H "$B_AUTH" -H "$JSON" -b "$body" "$url" >/dev/null
    perf record -q -e cpu-clock -F 999 -p "$B_API_PID,$B_HP_PID" -o "$B_TMP/perf.data" -- \
      sleep "$((SECS + 1))" >"$B_TMP/perf.log" 2>&1 &
    local perf_pid=$!
    B_EXTRA_PIDS="$perf_pid"
    sleep 0.5
    "$B_LOADGEN" -r 0 -d "$SECS" -c 1 --timeout 30 -H "$B_AUTH" -H "$JSON" -b "$body" "$url" |
      grep 'latency from\|answered\|achieved' || true
    wait "$perf_pid" || true
    B_EXTRA_PIDS=""
    perf report -i "$B_TMP/perf.data" --stdio --no-children --sort comm,symbol >"$B_TMP/perf.txt" 2>/dev/null || true
    echo "$(sed -n 's/^# Samples: \([^ ]*\) .*/\1 samples/p' "$B_TMP/perf.txt" | head -n 1) of cpu-clock;" \
         "by process: $(perf report -i "$B_TMP/perf.data" --stdio --no-children --sort comm 2>/dev/null |
                         grep -v '^#' | grep '%' | awk '{ printf "%s %s  ", $2, $1 }')"
    echo "top symbols by self time (perf report --no-children --sort comm,symbol):"
    grep -v '^#' "$B_TMP/perf.txt" | grep -v '^$' | head -n 25 || true
  fi
  if [ "$PROFILER" = callgrind ] || [ "$PROFILER" = both ]; then
    command -v valgrind >/dev/null 2>&1 || bench_die "valgrind is not installed"
    printf '\n== callgrind: vigil-api and vigil-hotpath under valgrind, %s requests of %s rows\n' "$k" "$n"
    bench_stop_app
    local port sock=$B_TMP/run/hotpath.sock
    rm -f "$sock"
    VIGIL_HOTPATH_SOCKET=$sock VIGIL_HOTPATH_IO_TIMEOUT_MS=600000 \
      valgrind --tool=callgrind --callgrind-out-file="$B_TMP/cg-hp.out" \
      "$BIN/vigil-hotpath" >>"$B_TMP/hotpath-callgrind.log" 2>&1 &
    B_HP_PID=$!
    for _ in $(seq 600); do [ -S "$sock" ] && break; sleep 0.05; done
    [ -S "$sock" ] || bench_die "vigil-hotpath under valgrind did not come up"
    port=$(bench_free_port)
    B_API=http://127.0.0.1:$port
    url=$B_API/api/v1/models/$big/predict
    env DATABASE_URL="$B_DB_URL" VIGIL_HTTP_ADDR=127.0.0.1:$port VIGIL_HOTPATH_MODE=worker \
        VIGIL_HOTPATH_SOCKET="$sock" VIGIL_HOTPATH_TIMEOUT_MS=600000 VIGIL_REQUEST_TIMEOUT_MS=600000 \
        VIGIL_BOOTSTRAP_KEY="$B_KEY" valgrind --tool=callgrind --callgrind-out-file="$B_TMP/cg-api.out" \
        "$BIN/vigil-api" serve >>"$B_TMP/api-callgrind.log" 2>&1 &
    B_API_PID=$!
    bench_wait_api "$B_TMP/api-callgrind.log"
    "$B_LOADGEN" -q -r 0 -d 1 -c 1 --timeout 600 --drain 600 -H "$B_AUTH" -H "$JSON" -b "$body" "$url" >/dev/null
    callgrind_control -z "$B_API_PID" >/dev/null 2>&1 || bench_die "callgrind_control -z failed (api)"
    callgrind_control -z "$B_HP_PID" >/dev/null 2>&1 || bench_die "callgrind_control -z failed (hotpath)"
    local i code
    for i in $(seq "$k"); do
      code=$(curl -sS -o /dev/null -w '%{http_code}' -H "$B_AUTH" -H "$JSON" --data-binary @"$body" "$url")
      [ "$code" = 200 ] || bench_die "request $i under callgrind answered $code"
    done
    bench_stop_app
    [ -s "$B_TMP/cg-api.out" ] && [ -s "$B_TMP/cg-hp.out" ] || bench_die "callgrind wrote no profile"
    local f
    for f in api hp; do
      # --threshold=100: list every function (the default stops at 99% of the total, and with
      # the counters zeroed mid-run callgrind books most of the cost on the thread's clone frame)
      callgrind_annotate --threshold=100 "$B_TMP/cg-$f.out" >"$B_TMP/cg-$f-self.txt" 2>/dev/null || true
      callgrind_annotate --threshold=100 --inclusive=yes "$B_TMP/cg-$f.out" >"$B_TMP/cg-$f-incl.txt" 2>/dev/null || true
    done
    echo "instructions per request: vigil-api $(cg_per_req "$B_TMP/cg-api-self.txt" "$k")," \
         "vigil-hotpath $(cg_per_req "$B_TMP/cg-hp-self.txt" "$k") (totals / $k requests)"
    echo
    echo "vigil-api, self (callgrind_annotate), top 14:"
    cg_top "$B_TMP/cg-api-self.txt" 14
    echo
    echo "vigil-api, inclusive, top 14:"
    cg_top "$B_TMP/cg-api-incl.txt" 14
    echo
    echo "vigil-hotpath, self, top 8:"
    cg_top "$B_TMP/cg-hp-self.txt" 8
  fi
}
if [ "${VIGIL_PROFILE_WORKLOAD:-single}" = batch ]; then
  profile_batch
  exit 0
fi

bench_start_app inprocess
big=$(bench_upload "$B_MODEL" bench-big)
url=$B_API/api/v1/models/$big/predict
body=$B_TMP/big_rows_1.json
echo "model: big (1000 trees, depth 8, 50 features) $big; API: VIGIL_HOTPATH_MODE=inprocess"

if [ "$PROFILER" = perf ] || [ "$PROFILER" = both ]; then
  printf '\n== perf: %s req/s of one-row predicts for %s s, cpu-clock samples of vigil-api (pid %s)\n' \
    "$RATE" "$SECS" "$B_API_PID"
  "$B_LOADGEN" -q -r 200 -d 1 -c 8 -H "$B_AUTH" -H "$JSON" -b "$body" "$url" >/dev/null  # warm cache
  perf record -q -e cpu-clock -F 999 -p "$B_API_PID" -o "$B_TMP/perf.data" -- sleep "$((SECS + 1))" \
    >"$B_TMP/perf.log" 2>&1 &
  perf_pid=$!
  B_EXTRA_PIDS="$perf_pid"
  sleep 0.5
  "$B_LOADGEN" --rt -r "$RATE" -d "$SECS" -c 8 -H "$B_AUTH" -H "$JSON" -b "$body" "$url" |
    grep -v '^RESULT\|^  scheduling' || true
  wait "$perf_pid" || true
  B_EXTRA_PIDS=""
  echo
  perf report -i "$B_TMP/perf.data" --stdio --no-children --sort dso,symbol >"$B_TMP/perf.txt" 2>/dev/null || true
  echo "vigil-api, $(sed -n 's/^# Samples: \([^ ]*\) .*/\1 samples/p' "$B_TMP/perf.txt" | head -n 1) of cpu-clock;"
  echo "top symbols by self time (perf report --no-children --sort dso,symbol):"
  grep -v '^#' "$B_TMP/perf.txt" | grep -v '^$' | sed 's/[[:space:]]*-[[:space:]]*-[[:space:]]*$//' | head -n 25 || true
fi

if [ "$PROFILER" = callgrind ] || [ "$PROFILER" = both ]; then
  command -v valgrind >/dev/null 2>&1 || bench_die "valgrind is not installed"
  printf '\n== callgrind: vigil-api under valgrind, 20 req/s of one-row predicts for 8 s\n'
  bench_stop_app
  port=$(bench_free_port)
  B_API=http://127.0.0.1:$port
  url=$B_API/api/v1/models/$big/predict
  env DATABASE_URL="$B_DB_URL" VIGIL_HTTP_ADDR=127.0.0.1:$port VIGIL_HOTPATH_MODE=inprocess \
      VIGIL_BOOTSTRAP_KEY="$B_KEY" valgrind --tool=callgrind --callgrind-out-file="$B_TMP/callgrind.out" \
      "$BIN/vigil-api" serve >>"$B_TMP/api-callgrind.log" 2>&1 &
  B_API_PID=$!
  bench_wait_api "$B_TMP/api-callgrind.log"
  # Start-up and the first request (which loads and validates the model into the cache) are not
  # what we want to see: warm up, then zero the counters (callgrind_control -z).
  "$B_LOADGEN" -q -r 5 -d 1 -c 1 --timeout 30 -H "$B_AUTH" -H "$JSON" -b "$body" "$url" >/dev/null
  callgrind_control -z "$B_API_PID" >/dev/null 2>&1 || bench_die "callgrind_control -z failed"
  "$B_LOADGEN" -r 20 -d 8 -c 4 --timeout 30 -H "$B_AUTH" -H "$JSON" -b "$body" "$url" |
    grep -v '^RESULT' || true
  bench_stop_app   # SIGTERM: the API drains and exits, valgrind writes the profile
  [ -s "$B_TMP/callgrind.out" ] || bench_die "callgrind wrote no profile (see $B_TMP/api-callgrind.log)"
  echo
  echo "inclusive (callgrind_annotate --inclusive=yes), top 16 (libmicrohttpd frames left out):"
  callgrind_annotate --inclusive=yes "$B_TMP/callgrind.out" >"$B_TMP/cg-incl.txt" 2>/dev/null || true
  callgrind_annotate "$B_TMP/callgrind.out" >"$B_TMP/cg-self.txt" 2>/dev/null || true
  cg_top "$B_TMP/cg-incl.txt" 16
  echo
  echo "self (callgrind_annotate), top 12:"
  cg_top "$B_TMP/cg-self.txt" 12
fi
