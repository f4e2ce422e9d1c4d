#!/usr/bin/env bash
# http_trace.sh BIN_DIR - the cost of tracing (issue 16): POST /api/v1/transactions at a fixed rate
# (default 500 req/s, open loop, bin/tests/loadgen) in worker mode with tracing off and with
# tracing on at 100% sampling (OTEL_TRACES_SAMPLER=always_on) exporting to a running Jaeger v1.76
# (build/jaeger/jaeger, `make deps`; in-memory storage, loopback), in the same run: off, on, off,
# on (interleaved, so drift of the shared machine hits both), fresh API and worker each time, one
# database.  Prints every run's p50/p99, the mean p99 of each side and their difference (target:
# within 0.5 ms), and the exporter's counters (spans exported / dropped) of the traced runs.
# Measures only: nothing here asserts on time.  About 1 minute.
#
# Knobs: VIGIL_BENCH_TRACE_RATE (500), VIGIL_BENCH_SECONDS (per run, default 4).
# run.sh (`make bench`) runs every tests/bench/http_*.sh.
set -euo pipefail
BIN=${1:-bin}
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT INT TERM
bench_init

RATE=${VIGIL_BENCH_TRACE_RATE:-500}
SECS=${VIGIL_BENCH_SECONDS:-4}
JAEGER=${VIGIL_JAEGER:-$B_ROOT/build/jaeger/jaeger}
JSON='Content-Type: application/json'
LG=("$B_LOADGEN" --rt)

printf '\n== tracing cost: POST /api/v1/transactions @ %s/s, tracing off vs on (100%% sampled, to Jaeger)\n' "$RATE"
bench_machine
[ -x "$JAEGER" ] || bench_die "no $JAEGER (make deps builds Jaeger v1.76)"

# Jaeger: OTLP/HTTP in, query API, memory storage, on free loopback ports.
OTLP_PORT=$(bench_free_port) QUERY_PORT=$(bench_free_port) GRPC_PORT=$(bench_free_port)
cat >"$B_TMP/jaeger.yaml" <<YAML
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: 127.0.0.1:$QUERY_PORT
    grpc:
      endpoint: 127.0.0.1:$GRPC_PORT
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:$OTLP_PORT
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
YAML
# At nice 10: a collector normally runs on other machines; here it shares the two CPUs with
# the API, the worker, PostgreSQL and the load generator, and should not be what is measured.
nice -n 10 "$JAEGER" --config="$B_TMP/jaeger.yaml" >>"$B_TMP/jaeger.log" 2>&1 &
B_EXTRA_PIDS="$B_EXTRA_PIDS $!"
for _ in $(seq 600); do
  curl -fsS -o /dev/null "http://127.0.0.1:$QUERY_PORT/api/services" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$QUERY_PORT/api/services" ||
  { tail -n 20 "$B_TMP/jaeger.log" >&2; bench_die "Jaeger did not come up"; }
echo "jaeger (nice 10): OTLP/HTTP on 127.0.0.1:$OTLP_PORT, query on 127.0.0.1:$QUERY_PORT"

TRACE_ENV=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" OTEL_TRACES_SAMPLER=always_on
           OTEL_SERVICE_NAME=vigil-api-bench)

# Data once (the database outlives the API processes): demo model as champion; users per run.
bench_start_app worker
demo=$(bench_upload api/demo/demo_model.json bench-demo)
curl -fsS -o /dev/null -X PUT -H "$B_AUTH" -H "$JSON" "$B_API/api/v1/policy" \
  -d "{\"champion_model_id\":\"$demo\",\"review_threshold\":0.5,\"block_threshold\":0.8,\"fallback_decision\":\"review\",\"scoring_timeout_ms\":50}" ||
  bench_die "PUT /api/v1/policy failed"
bench_stop_app

# CPU seconds (user + system) a process has used, from /proc/PID/stat (fields 14 and 15).
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }
JAEGER_PID=${B_EXTRA_PIDS##* }

declare -A P99 CPU
run_side() { # run_side off|on ROUND
  local side=$1 round=$2 out line a0 h0 j0 a1 h1 j1 n
  if [ "$side" = on ]; then bench_start_app worker "${TRACE_ENV[@]}"; else bench_start_app worker; fi
  bench_users "tr-$side-$round" # fresh users: no run reads the history an earlier one left
  a0=$(cpu_s "$B_API_PID") h0=$(cpu_s "$B_HP_PID") j0=$(cpu_s "$JAEGER_PID")
  out=$("${LG[@]}" -r "$RATE" -d "$SECS" -c 16 --warmup 1 -H "$B_AUTH" -H "$JSON" \
        -H "Idempotency-Key: trace-$side-$round-{run}-{seq}" -b "$B_TMP/txn-tr-$side-$round.json" \
        "$B_API/api/v1/transactions" 2>&1) || { echo "$out"; bench_die "loadgen failed"; }
  [ "$side" = on ] && sleep 1 # the last full batches reach Jaeger
  a1=$(cpu_s "$B_API_PID") h1=$(cpu_s "$B_HP_PID") j1=$(cpu_s "$JAEGER_PID")
  line=$(echo "$out" | grep '^RESULT' | tail -n 1)
  n=$(bench_field "$line" answered)
  P99[$side.$round]=$(bench_field "$line" p99_us)
  CPU[$side.$round]=$(awk -v a="$a1" -v b="$a0" -v n="$n" 'BEGIN { printf "%.0f", n ? (a - b) * 1e6 / n : 0 }')
  printf '   tracing %-3s run %s: p50 %6s us  p99 %7s us  (%s req/s achieved, %s non-2xx, %s errors)\n' \
    "$side" "$round" "$(bench_field "$line" p50_us)" "$(bench_field "$line" p99_us)" \
    "$(bench_field "$line" achieved)" "$(bench_field "$line" non2xx)" "$(bench_field "$line" errors)"
  awk -v a="$a1" -v b="$a0" -v c="$h1" -v d="$h0" -v e="$j1" -v f="$j0" -v n="$n" 'BEGIN { if (n)
    printf "      CPU per decision: vigil-api %.0f us, vigil-hotpath %.0f us, jaeger %.0f us\n",
      (a - b) * 1e6 / n, (c - d) * 1e6 / n, (e - f) * 1e6 / n }'
  if [ "$side" = on ]; then
    curl -fsS "$B_API/metrics" | grep '^vigil_trace_spans' | sed 's/^/      /'
  fi
  bench_stop_app
}
echo "   (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
for round in 1 2; do run_side off $round; run_side on $round; done

traces=$(curl -fsS "http://127.0.0.1:$QUERY_PORT/api/traces?service=vigil-api-bench&limit=20" |
         grep -o '"traceID"' | wc -l)
echo "   jaeger holds traces of vigil-api-bench: $traces span references in a 20-trace sample"
awk -v a="${P99[off.1]}" -v b="${P99[off.2]}" -v c="${P99[on.1]}" -v d="${P99[on.2]}" -v r="$RATE" \
    -v ca="${CPU[off.1]}" -v cb="${CPU[off.2]}" -v cc="${CPU[on.1]}" -v cd="${CPU[on.2]}" 'BEGIN {
  off = (a + b) / 2; on = (c + d) / 2;
  printf "\n== summary: transaction p99 @ %s/s: tracing off %.0f us, on (100%%, Jaeger) %.0f us, difference %+.0f us (target within 500 us)\n", r, off, on, on - off
  printf "   vigil-api CPU per decision: off %.0f us, on %.0f us (%+.0f us: spans, encoding, export)\n", (ca + cb) / 2, (cc + cd) / 2, (cc + cd - ca - cb) / 2 }'
