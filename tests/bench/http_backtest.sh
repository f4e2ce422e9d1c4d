#!/usr/bin/env bash
# http_backtest.sh BIN_DIR - issue 14's figures, run by `make bench` (run.sh's http_*.sh hook).
#
#   1. 1,000,000 stored transactions generated in PostgreSQL (the snapshots: the benchmark model's
#      10,000 rows, COPYed once, then one INSERT ... SELECT over generate_series), 10% labelled;
#   2. a backtest of the 1000-tree depth-8 benchmark model (named features f0..f49) over all of
#      them: wall time and rows/s, printed beside the kernel's own rows/s on the same model;
#   3. live decisions (POST /api/v1/transactions, the demo model, unique Idempotency-Keys) at
#      250 req/s for VIGIL_BENCH_LIVE_SECONDS (default 15) without, then during a second backtest:
#      p50/p99 of both, so the worker's live-before-bulk priority (hotpath/hp_prio.h) shows;
#   4. the export of the 1M rows (NDJSON, curl to /dev/null): wall time and the API's peak RSS
#      (VmHWM, reset just before through /proc/PID/clear_refs) against its RSS before.
# PostgreSQL runs with its default durable settings here (fsync on), unlike the other HTTP
# benchmarks.  Measures only; asserts nothing about time.  VIGIL_BENCH_BT_ROWS changes the size.
set -euo pipefail
BIN=${1:-bin}
. "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT INT TERM
B_PG_FAST=0 bench_init
bench_model
ROWS=${VIGIL_BENCH_BT_ROWS:-1000000}
LIVE_S=${VIGIL_BENCH_LIVE_SECONDS:-15}
PSQL=(psql -X -q -h "$B_PG_SOCK" -p "$B_PG_PORT" -U vigil -d vigil -v ON_ERROR_STOP=1)
JSON='Content-Type: application/json'
bench_machine
echo "postgres: default durable settings (fsync on, synchronous_commit on)"

bench_start_app worker VIGIL_BACKTEST_CONCURRENCY=1 VIGIL_REQUEST_TIMEOUT_MS=60000

# The benchmark model with feature names f0..f49 (vigil assembles a policy model's input by name).
/usr/bin/python3 - "$B_MODEL" "$B_TMP/big_named.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
n = int(m["learner"]["learner_model_param"]["num_feature"])
m["learner"]["feature_names"] = ["f%d" % i for i in range(n)]
m["learner"]["feature_types"] = ["float"] * n
json.dump(m, open(sys.argv[2], "w"))
EOF
big=$(bench_upload "$B_TMP/big_named.json" bench-big)
demo=$(bench_upload api/demo/demo_model.json bench-demo)
curl -fsS -o /dev/null -X PUT -H "$B_AUTH" -H "$JSON" "$B_API/api/v1/policy" \
  -d "{\"champion_model_id\":\"$demo\",\"review_threshold\":0.5,\"block_threshold\":0.8,\"fallback_decision\":\"review\",\"scoring_timeout_ms\":50}" ||
  bench_die "PUT /api/v1/policy failed"

# kernel rows/s on the same model: bench_kernel's batch figures, from run.sh's run of it in this
# `make bench` when there is one, else run here (in the background while the history is generated:
# it takes minutes on a loaded machine; it has ended before any backtest starts).
kout=$B_CACHE/kernel.bench.out
kpid=""
if [ ! -s "$kout" ] || [ "$kout" -ot "$B_MODEL" ] || [ "$kout" -ot "$BIN/tests/bench_kernel" ]; then
  kout=$B_TMP/kernel.out
  if [ "${VIGIL_BENCH_BT_KERNEL:-1}" = 1 ]; then
    "$BIN/tests/bench_kernel" "$B_MODEL" "$B_CACHE/bench.rows.txt" >"$kout" 2>/dev/null &
    kpid=$!
    B_EXTRA_PIDS="$kpid"
  fi
fi
# 1. the history
awk 'NR == 1 { next } NR > 10001 { exit } {
       printf "%d\t{", NR - 2
       for (i = 1; i <= NF; i++) printf "%s\"f%d\":%s", (i > 1 ? "," : ""), i - 1, ($i == "nan" ? "null" : $i)
       print "}" }' "$B_CACHE/bench.rows.txt" >"$B_TMP/snaps.tsv"
t0=$(date +%s.%N)
"${PSQL[@]}" <<EOF
CREATE TABLE bench_snaps (k integer PRIMARY KEY, f json NOT NULL);
\copy bench_snaps FROM '$B_TMP/snaps.tsv'
INSERT INTO users (external_id, country) SELECT 'bt-' || g, 'FR' FROM generate_series(0, 99) g;
CREATE TABLE bench_users AS SELECT id, (row_number() OVER (ORDER BY id)) - 1 AS n FROM users
  WHERE external_id LIKE 'bt-%';
INSERT INTO transactions (user_id, amount, currency, amount_major, merchant_id, merchant_category,
    country, channel, occurred_at, features, score, decision, degraded, model_id, model_version,
    review_threshold, block_threshold, fallback_decision, scoring_timeout_ms, policy_version,
    scoring_latency_us, label, label_source, labelled_at)
SELECT u.id, 100 + g % 100000, 'EUR', (100 + g % 100000) / 100.0, 'm' || (g % 500), '5411', 'FR',
       'ecommerce', timestamptz '2025-06-01 00:00:00+00' + g * interval '10 seconds', s.f, 0.5,
       (ARRAY['allow', 'review', 'block'])[1 + g % 3], false, '$big', 1, 0.5, 0.9, 'review', 50, 1,
       100, CASE WHEN g % 10 = 0 THEN CASE WHEN g % 70 = 0 THEN 'fraud' ELSE 'legit' END END,
       CASE WHEN g % 10 = 0 THEN 'chargeback' END, NULL
FROM generate_series(0, $ROWS - 1) g
JOIN bench_snaps s ON s.k = g % 10000
JOIN bench_users u ON u.n = g % 100;
ANALYZE transactions;
EOF
t1=$(date +%s.%N)
echo "history: $ROWS transactions generated in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s (COPY of 10000 snapshots + INSERT ... SELECT), table $("${PSQL[@]}" -tAc "SELECT pg_size_pretty(pg_total_relation_size('transactions'))")"

if [ -n "$kpid" ]; then wait "$kpid" || true; B_EXTRA_PIDS=""; fi
echo "kernel on the same model (bin/tests/bench_kernel):"
grep -E '^  kernel, ' "$kout" 2>/dev/null | sed 's/^/  /' || echo "   (not run: VIGIL_BENCH_BT_KERNEL=0)"
kernel_rows=$(awk '/kernel, [0-9]+ threads \(pool\)/ { print $(NF-1); exit }' "$kout" 2>/dev/null || true)

CAND="{\"champion_model_id\":\"$big\",\"review_threshold\":0.5,\"block_threshold\":0.9}"
# backtest NAME: POSTs the backtest over the whole history, waits for it; prints its line.
backtest() {
  local out id state t0 t1
  t0=$(date +%s.%N)
  out=$(curl -fsS -H "$B_AUTH" -H "$JSON" "$B_API/api/v1/backtests" \
        -d "{\"name\":\"$1\",\"policy\":$CAND,\"from\":\"2025-01-01T00:00:00Z\",\"to\":\"2027-01-01T00:00:00Z\"}") ||
    bench_die "POST /api/v1/backtests failed"
  id=$(printf '%s' "$out" | sed -n 's/^{"id":"\([^"]*\)".*/\1/p')
  while :; do
    out=$(curl -fsS -H "$B_AUTH" "$B_API/api/v1/backtests/$id")
    state=$(printf '%s' "$out" | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p')
    [ "$state" = queued ] || [ "$state" = running ] || break
    sleep 0.2
  done
  t1=$(date +%s.%N)
  [ "$state" = succeeded ] || bench_die "backtest $1 ended $state: ${out:0:400}"
  BT_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  BT_RATE=$(printf '%s' "$out" | sed -n 's/.*"rows_per_second":\([0-9.]*\).*/\1/p')
  BT_AUC=$(printf '%s' "$out" | sed -n 's/.*"roc_auc":\([0-9.e-]*\).*/\1/p')
}
echo
echo "-- backtest alone: 1000-tree depth-8 model over $ROWS stored decisions"
backtest alone
echo "   backtest: $BT_WALL s wall (target <= 60 s), $BT_RATE rows/s (read + assemble + score +"
echo "   aggregate); the kernel alone on every CPU: $kernel_rows rows/s; roc_auc $BT_AUC"
ALONE_WALL=$BT_WALL ALONE_RATE=$BT_RATE

# 3. live decisions with and without a backtest
for i in $(seq 0 49); do
  curl -fsS -o /dev/null -H "$B_AUTH" -H "$JSON" "$B_API/api/v1/users" \
    -d "{\"external_id\":\"live-$i\",\"country\":\"DE\"}" || bench_die "creating user live-$i failed"
done
printf '%s\n' '{"user_external_id": "live-{seq%50}", "amount": 1{seq%100000}, "currency": "EUR",' \
  ' "merchant_id": "shop-{seq%200}", "merchant_category": "5411", "country": "FR",' \
  ' "channel": "ecommerce"}' >"$B_TMP/txn.json"
live() {
  "$B_LOADGEN" -r 250 -d "$LIVE_S" -c 16 --warmup 1 -H "$B_AUTH" -H "$JSON" \
    -H "Idempotency-Key: bt-$1-{run}-{seq}" -b "$B_TMP/txn.json" "$B_API/api/v1/transactions" 2>&1 |
    grep -E '^RESULT' | tail -n 1
}
f() { bench_field "$1" "$2"; }
echo
echo "-- live decisions at 250 req/s for $LIVE_S s, no backtest"
quiet=$(live quiet)
echo "   $quiet"
echo "-- live decisions at 250 req/s for $LIVE_S s, while a backtest of $ROWS rows runs"
(backtest during && echo "$BT_WALL $BT_RATE") >"$B_TMP/during.out" 2>&1 &
bt_pid=$!
B_EXTRA_PIDS="$bt_pid"
sleep 2
busy=$(live busy)
echo "   $busy"
wait "$bt_pid" || bench_die "the concurrent backtest failed: $(cat "$B_TMP/during.out")"
B_EXTRA_PIDS=""
read -r DURING_WALL DURING_RATE <"$B_TMP/during.out" || true
echo "   the concurrent backtest: $DURING_WALL s wall, $DURING_RATE rows/s"

# 4. the export
echo
echo "-- export of $ROWS transactions (NDJSON, to /dev/null)"
api_pid=$B_API_PID
rss_before=$(awk '/VmRSS/ { print $2 }' "/proc/$api_pid/status")
echo 5 >"/proc/$api_pid/clear_refs" 2>/dev/null || echo "   (cannot reset VmHWM: the peak includes earlier work)"
t0=$(date +%s.%N)
bytes=$(curl -fsS -H "$B_AUTH" -o /dev/null -w '%{size_download}' "$B_API/api/v1/transactions/export")
t1=$(date +%s.%N)
hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$api_pid/status")
EXP_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
echo "   export: $bytes bytes in $EXP_WALL s (target <= 30 s); API RSS before $((rss_before / 1024)) MiB, peak during the export (VmHWM) $((hwm / 1024)) MiB"

echo
echo "== summary (issue 14)"
bench_machine
printf '  backtest, %s rows, 1000 trees depth 8: %s s alone, %s rows/s (kernel alone: %s rows/s)\n' \
  "$ROWS" "$ALONE_WALL" "$ALONE_RATE" "$kernel_rows"
printf '  the backtest during the live load: %s s, %s rows/s\n' "$DURING_WALL" "$DURING_RATE"
printf '  live decisions @250/s: p99 %s us without a backtest, %s us during one (p50 %s / %s us, %s / %s non-2xx)\n' \
  "$(f "$quiet" p99_us)" "$(f "$busy" p99_us)" "$(f "$quiet" p50_us)" "$(f "$busy" p50_us)" \
  "$(f "$quiet" non2xx)" "$(f "$busy" non2xx)"
printf '  export of %s rows: %s s, %s bytes, API VmHWM %s MiB (RSS before %s MiB)\n' "$ROWS" "$EXP_WALL" \
  "$bytes" "$((hwm / 1024))" "$((rss_before / 1024))"
