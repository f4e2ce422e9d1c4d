#!/usr/bin/env bash
# http_rules.sh BIN_DIR - issue 12's benchmarks (run by run.sh's http_*.sh hook, `make bench`):
#   1. a list of 1,000,000 string items loaded through the API (10 POSTs of 100,000 items, the
#      per-call limit, two at a time as a client on 2 CPUs would), wall-clock time and the CPU
#      seconds vigil-api and PostgreSQL spent printed (target <= 30 s);
#   2. POST /api/v1/transactions (worker mode, demo model as champion) at a fixed rate (default
#      500 req/s, open loop, bin/tests/loadgen) with NO rules, then with 50 rules (25 active, 25
#      shadow) probing 3 lists of 1,000,000 items each (strings, IP addresses, numbers), in the same
#      run on the same database; p50/p99 of both printed and the p99 difference (target <= 1 ms).
# Lists 2 and 3 are filled by SQL (generate_series) to keep the run short: the API load path is
# measured once, by list 1.  The first decision after the rules are set waits for the three sets to
# be built (listcache.c); the load starts after it.  Measures only, asserts nothing.
# Knobs: VIGIL_BENCH_SECONDS (4), VIGIL_BENCH_RULES_RATE (500), VIGIL_BENCH_LIST_ITEMS (1000000).
set -euo pipefail
BIN=${1:-bin}
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT INT TERM
bench_init

SECS=${VIGIL_BENCH_SECONDS:-4}
RATE=${VIGIL_BENCH_RULES_RATE:-500}
N=${VIGIL_BENCH_LIST_ITEMS:-1000000}
JSON='Content-Type: application/json'
PSQL=(psql -X -q -At -h "$B_PG_SOCK" -p "$B_PG_PORT" -U vigil -d vigil)

api() { curl -fsS -H "$B_AUTH" -H "$JSON" "$@"; }
# CPU seconds (user + system) vigil-api and the PostgreSQL cluster's processes have used since
# snapshot $1 (bench_cpu_snap, lib.sh: exited backends included), as "API PG": figures that a
# machine shared with other work does not inflate, unlike wall-clock time.
cpu_since() {
  awk -v a="$1" -v b="$(bench_cpu_snap)" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    split(a, x, " "); split(b, y, " "); printf "%.2f %.2f", (y[2] - x[2]) / hz, (y[1] - x[1]) / hz }'
}
mklist() { api "$B_API/api/v1/lists" -d "{\"name\":\"$1\",\"kind\":\"$2\"}" | sed -n 's/^{"id":"\([^"]*\)".*/\1/p'; }

bench_machine
echo "   (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
# a loaded machine can take more than the default 10 s request deadline for 100,000 items
bench_start_app worker VIGIL_REQUEST_TIMEOUT_MS=120000
demo=$(bench_upload api/demo/demo_model.json bench-demo)
for i in $(seq 0 49); do
  api -o /dev/null "$B_API/api/v1/users" -d "{\"external_id\":\"r-$i\",\"country\":\"DE\"}"
done

# ---- 1. a list of N items through the API --------------------------------------------------------
cards=$(mklist bench_cards string)
ips=$(mklist bench_ips ip)
amounts=$(mklist bench_amounts number)
per=100000
for ((c = 0; c * per < N; c++)); do
  awk -v a=$((c * per)) -v b=$(((c + 1) * per < N ? (c + 1) * per : N)) 'BEGIN {
    printf "{\"items\":["; for (i = a; i < b; i++) printf "%s\"fp-%08d-card\"", (i > a ? "," : ""), i * 2;
    print "]}" }' >"$B_TMP/items$c.json"
done
echo
echo "== list load: $N string items through POST /api/v1/lists/{id}/items, $per a call, 2 calls at a time (target <= 30 s)"
t0=$(date +%s.%N) c0=$(bench_cpu_snap)
ls "$B_TMP"/items*.json | xargs -P 2 -I{} curl -fsS -o /dev/null -H "$B_AUTH" -H "$JSON" \
  --data-binary @{} "$B_API/api/v1/lists/$cards/items" || bench_die "loading the list failed"
t1=$(date +%s.%N)
load_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
read -r ca cp <<<"$(cpu_since "$c0")"
load_cpu="vigil-api $ca s, PostgreSQL $cp s of CPU"
echo "   $N items in $load_s s ($(awk -v n="$N" -v s="$load_s" 'BEGIN { printf "%.0f", n / s }') items/s); $load_cpu"
"${PSQL[@]}" -c "INSERT INTO list_items (list_id, value) SELECT '$ips', '10.' || (g >> 16 & 255)
  || '.' || (g >> 8 & 255) || '.' || (g & 255) FROM generate_series(0, $N - 1) g;
  INSERT INTO list_items (list_id, value) SELECT '$amounts', (g * 3)::text FROM generate_series(1, $N) g;
  UPDATE lists SET version = version + 1, item_count = $N WHERE id IN ('$ips', '$amounts')"

# ---- 2. decisions without and with 50 rules ----------------------------------------------------
policy() {
  api -o /dev/null -X PUT "$B_API/api/v1/policy" -d "{\"champion_model_id\":\"$demo\",
    \"review_threshold\":0.5,\"block_threshold\":0.8,\"fallback_decision\":\"review\",
    \"scoring_timeout_ms\":50,\"rules\":$1}"
}
rules="[{\"name\":\"card\",\"action\":\"block\",\"when\":\"card_fingerprint in @bench_cards\"},
  {\"name\":\"ip\",\"action\":\"review\",\"when\":\"ip_address in @bench_ips and amount > 50\"},
  {\"name\":\"amt\",\"action\":\"review\",\"when\":\"amount in @bench_amounts\"}"
for i in $(seq 3 49); do
  mode=active; [ $((i % 2)) = 0 ] && mode=shadow
  case $((i % 5)) in
    0) w="amount > $((i * 40)) and hour_of_day < $((i % 24))" ;;
    1) w="not merchant_seen_before and amount > $((i * 100)) or user_txn_count_24h > $((i + 10))" ;;
    2) w="is_missing(user_amount_avg_30d) and amount > $((i * 70))" ;;
    3) w="country_mismatch = 1 and (amount / 2 > $((i * 30)) or score > 0.9$i)" ;;
    4) w="card_country != country and channel in (\\\"ecommerce\\\", \\\"wallet\\\") and amount > $((i * 90))" ;;
  esac
  act=review; [ $((i % 3)) = 0 ] && act=block
  rules+=",{\"name\":\"r$i\",\"action\":\"$act\",\"mode\":\"$mode\",\"when\":\"$w\"}"
done
rules+="]"
printf '%s\n' '{"user_external_id": "r-{seq%50}", "amount": 1{seq%100000}, "currency": "EUR",' \
  ' "merchant_id": "shop-{seq%200}", "merchant_category": "5411", "country": "FR",' \
  ' "channel": "ecommerce", "card_fingerprint": "fp-{seq%2000000}-card", "card_country": "DE",' \
  ' "ip_address": "10.{seq%20}.{seq%250}.7"}' >"$B_TMP/txn.json"

declare -A R
declare -A CPU
run() {
  local out c0 ca cp
  # fresh users: no run reads the history an earlier one left (bench_users, lib.sh)
  bench_users "r-$1" ', "card_fingerprint": "fp-{seq%2000000}-card", "card_country": "DE", "ip_address": "10.{seq%20}.{seq%250}.7"'
  c0=$(bench_cpu_snap)
  out=$("$B_LOADGEN" --rt -r "$RATE" -d "$SECS" -c 16 --warmup 1 -H "$B_AUTH" -H "$JSON" \
        -H 'Idempotency-Key: rules-{run}-{seq}' -b "$B_TMP/txn-r-$1.json" "$B_API/api/v1/transactions" 2>&1) ||
    { echo "$out"; bench_die "loadgen failed ($1)"; }
  echo "$out" | grep -v '^RESULT\|^  scheduling' || true
  R[$1]=$(echo "$out" | grep -E '^RESULT' | tail -n 1)
  read -r ca cp <<<"$(cpu_since "$c0")"
  CPU[$1]=$(awk -v a="$ca" -v p="$cp" \
    -v n="$(bench_field "${R[$1]}" answered)" \
    -v w="$(bench_warmup_answered "$out")" 'BEGIN { n += w; if (n == 0) n = 1;
    printf "CPU per decision: vigil-api %.0f us, PostgreSQL %.0f us", a * 1e6 / n, p * 1e6 / n }')
  echo "   ${CPU[$1]}"
}
echo
echo "== decisions at $RATE req/s for $SECS s: no rules, then 50 rules over 3 lists of $N items"
policy '[]'
echo "-- no rules"
run none
policy "$rules"
t0=$(date +%s.%N)
sample=$(api "$B_API/api/v1/transactions" -d '{"user_external_id":"r-1","amount":1999,"currency":"EUR",
  "merchant_id":"shop-1","merchant_category":"5411","country":"FR","channel":"ecommerce",
  "card_fingerprint":"fp-00000002-card","ip_address":"10.0.1.7"}')
t1=$(date +%s.%N)
echo "   first decision with the rules (builds the 3 list sets): $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s;" \
  "decided_by $(printf '%s' "$sample" | grep -o '"decided_by":"[^"]*"'), lists $(printf '%s' "$sample" | grep -o '"lists":{[^}]*}')"
echo "-- 50 rules (25 active, 25 shadow), 3 list probes per decision"
run rules
p99a=$(bench_field "${R[none]}" p99_us) p99b=$(bench_field "${R[rules]}" p99_us)
echo
echo "== summary (rules)"
echo "   list load: $N string items through the API in $load_s s (target <= 30 s); $load_cpu"
printf '   decisions @ %s/s, no rules:             p50 %6s us  p99 %7s us  (%s non-2xx)\n' "$RATE" \
  "$(bench_field "${R[none]}" p50_us)" "$p99a" "$(bench_field "${R[none]}" non2xx)"
printf '   decisions @ %s/s, 50 rules, 3x%s lists: p50 %6s us  p99 %7s us  (%s non-2xx)\n' "$RATE" "$N" \
  "$(bench_field "${R[rules]}" p50_us)" "$p99b" "$(bench_field "${R[rules]}" non2xx)"
echo "   p99 difference: $(awk -v a="$p99a" -v b="$p99b" 'BEGIN { printf "%+d us", b - a }') (target <= +1000 us)"
echo "   no rules: ${CPU[none]}"
echo "   50 rules: ${CPU[rules]}"
bench_stop_app
