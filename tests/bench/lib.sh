# lib.sh - shared by tests/bench/http.sh and tests/bench/profile.sh (sourced, not run).
#
# A throwaway stack under one temp directory: PostgreSQL (api/scripts/pgctl.sh, with its default,
# durable settings — fsync and synchronous_commit on — unless the caller sets B_PG_FAST=1, free
# port, Unix socket), vigil-hotpath and vigil-api on free loopback ports, an admin key, and
# the benchmark model.  bench_cleanup stops everything this file started (by pid) and removes the
# directory; the scripts install it as their EXIT/INT/TERM trap, so a failure leaves nothing behind.
#
# Needs, set by the caller before bench_init:  BIN (bin dir, absolute or relative to the repo root).
# Sets:  B_TMP, B_API (http://127.0.0.1:PORT), B_KEY, B_AUTH (header), B_DB_URL, B_PG_SOCK,
#        B_PG_PORT, B_CACHE (model cache), B_LOADGEN; bench_model sets B_MODEL.

bench_log() { printf '%s\n' "$*" >&2; }
bench_die() { bench_log "bench: $*"; exit 1; }

B_TMP="" B_API_PID="" B_HP_PID="" B_PG_UP=0 B_EXTRA_PIDS=""

bench_free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# bench_init: temp dir, PostgreSQL, key.  Call once, after `trap bench_cleanup EXIT INT TERM`.
bench_init() {
  cd "$(dirname "${BASH_SOURCE[0]}")/../.."
  B_ROOT=$PWD
  case "$BIN" in /*) ;; *) BIN=$B_ROOT/$BIN ;; esac
  [ -x "$BIN/vigil-api" ] && [ -x "$BIN/vigil-hotpath" ] || bench_die "no $BIN/vigil-api or vigil-hotpath (run make)"
  B_LOADGEN=$BIN/tests/loadgen
  [ -x "$B_LOADGEN" ] || bench_die "no $B_LOADGEN (run make tests-build)"
  B_TMP=$(mktemp -d "${TMPDIR:-/tmp}/vigil-bench.XXXXXX")
  chmod 755 "$B_TMP"   # the postgres user must reach its data directory
  B_PG_PORT=$(bench_free_port)
  B_PG_SOCK=$B_TMP/pgsock
  B_PG_UP=1
  VIGIL_PG_FAST=${B_PG_FAST:-0} bash api/scripts/pgctl.sh start "$B_TMP/pg" "$B_PG_SOCK" "$B_PG_PORT" "$B_TMP/pg.log" \
    >>"$B_TMP/pg.log" 2>&1 || { tail -n 20 "$B_TMP/pg.log" >&2; bench_die "PostgreSQL did not start"; }
  B_DB_URL="postgresql://vigil@/vigil?host=$B_PG_SOCK&port=$B_PG_PORT"
  B_KEY="vgl_bench_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  B_AUTH="Authorization: Bearer $B_KEY"
  B_CACHE=${VIGIL_BENCH_CACHE:-$B_ROOT/build/bench}
  B_VEGETA=${VIGIL_BENCH_VEGETA:-$B_ROOT/build/vegeta/vegeta}
}

# bench_start_app MODE [extra VAR=value ...]: the worker (MODE=worker only) and the API, fresh
# processes, logs in $B_TMP/{hotpath,api}-MODE.log.  Sets B_API.
bench_start_app() {
  local mode=$1; shift
  local port sock=$B_TMP/run/hotpath.sock
  port=$(bench_free_port)
  B_API=http://127.0.0.1:$port
  if [ "$mode" = worker ]; then
    VIGIL_HOTPATH_SOCKET=$sock "$BIN/vigil-hotpath" >>"$B_TMP/hotpath-$mode.log" 2>&1 &
    B_HP_PID=$!
    for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
    [ -S "$sock" ] || { tail -n 20 "$B_TMP/hotpath-$mode.log" >&2; bench_die "vigil-hotpath did not come up"; }
  fi
  env DATABASE_URL="$B_DB_URL" VIGIL_HTTP_ADDR=127.0.0.1:$port VIGIL_HOTPATH_SOCKET="$sock" \
      VIGIL_HOTPATH_MODE="$mode" VIGIL_BOOTSTRAP_KEY="$B_KEY" "$@" \
      "$BIN/vigil-api" serve >>"$B_TMP/api-$mode.log" 2>&1 &
  B_API_PID=$!
  bench_wait_api "$B_TMP/api-$mode.log"
}

bench_wait_api() {
  for _ in $(seq 300); do
    curl -fsS -o /dev/null "$B_API/health" 2>/dev/null && return 0
    kill -0 "$B_API_PID" 2>/dev/null || break
    sleep 0.05
  done
  tail -n 20 "$1" >&2
  bench_die "vigil-api did not come up"
}

# bench_stop_app: SIGTERM the API and the worker, wait for them (bounded), SIGKILL stragglers.
bench_stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
bench_stop_app() {
  bench_stop_pid "$B_API_PID"; B_API_PID=""
  bench_stop_pid "$B_HP_PID"; B_HP_PID=""
}

bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local p
  for p in $B_EXTRA_PIDS; do bench_stop_pid "$p"; done
  bench_stop_app
  if [ "$B_PG_UP" = 1 ] && [ -n "$B_TMP" ]; then bash api/scripts/pgctl.sh stop "$B_TMP/pg" || true; fi
  if [ -n "$B_TMP" ] && [ -z "${VIGIL_BENCH_KEEP:-}" ]; then rm -rf "$B_TMP"; fi
  [ -n "${VIGIL_BENCH_KEEP:-}" ] && bench_log "kept $B_TMP"
  exit "$rc"
}

# bench_machine: one line naming the machine the figures belong to.
bench_machine() {
  local cpu
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
  echo "machine: $(nproc) CPUs ($cpu), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
}

# bench_model: the benchmark model shared with the kernel benchmark (run.sh): a 1000-tree, depth-8,
# 50-feature binary:logistic model trained by tests/bench/gen_model.py into $B_CACHE (build/bench/
# unless VIGIL_BENCH_CACHE says otherwise; only the first run pays ~1 minute of training), plus its
# rows (bench.rows.txt, 10% NaN).  Sets B_MODEL and writes the predict bodies
# $B_TMP/big_rows_{1,1000,10000}.json ({"rows": [[...], ...]}, NaN as null) from those rows.
bench_model() {
  B_MODEL=$B_CACHE/bench.model.json
  if [ ! -s "$B_MODEL" ] || [ ! -s "$B_CACHE/bench.rows.txt" ]; then
    bench_log "training the benchmark model into $B_CACHE (tests/bench/gen_model.py, once: ~1 minute)"
    mkdir -p "$B_CACHE"
    /usr/bin/python3 tests/bench/gen_model.py "$B_CACHE" 10000 >&2 ||
      bench_die "model generation failed (needs /usr/bin/python3 with xgboost 1.7.4 and numpy)"
  fi
  [ "$(head -n 1 "$B_CACHE/bench.rows.txt" | cut -d' ' -f1)" -ge 10000 ] ||
    bench_die "$B_CACHE/bench.rows.txt has fewer than 10000 rows"
  local n
  for n in 1 1000 10000; do bench_rows "$n"; done
}

# bench_rows N: the first N rows of the benchmark rows (after bench_model) as a predict body
# $B_TMP/big_rows_N.json ({"rows": [[...], ...]}, NaN as null, the numbers' text unchanged) and
# as a matrix file $B_TMP/big_rows_N.txt (the tests/fixtures format, for tests/bench/xgb_time.py).
bench_rows() {
  local n=$1
  awk -v n="$n" 'NR == 1 { next } NR > n + 1 { exit }
    { gsub(/nan/, "null"); gsub(/ /, ","); printf "%s[%s]", (NR == 2 ? "{\"rows\":[" : ","), $0 }
    END { print "]}" }' "$B_CACHE/bench.rows.txt" >"$B_TMP/big_rows_$n.json"
  { echo "$n $(head -n 1 "$B_CACHE/bench.rows.txt" | cut -d' ' -f2)"
    sed -n "2,$((n + 1))p" "$B_CACHE/bench.rows.txt"; } >"$B_TMP/big_rows_$n.txt"
}

# bench_upload FILE NAME: uploads a model, prints its id.
bench_upload() {
  local out
  out=$(curl -sS -H "$B_AUTH" -H 'Content-Type: application/json' --data-binary @"$1" \
        "$B_API/api/v1/models?name=$2") || bench_die "upload of $1 failed"
  local id
  id=$(printf '%s' "$out" | sed -n 's/^{"id":"\([^"]*\)".*/\1/p')
  [ -n "$id" ] || bench_die "upload of $1 answered: ${out:0:300}"
  echo "$id"
}

# bench_field LINE KEY: the value of KEY=value in a RESULT/MAXRATE line.
bench_field() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
# bench_warmup_answered OUT: how many requests loadgen's warm-up (--warmup) answered, from its
# output OUT ("warm-up: N answered, ..."); 0 without a warm-up.
bench_warmup_answered() {
  local n
  n=$(printf '%s\n' "$1" | sed -n 's/.*warm-up: \([0-9]*\) answered.*/\1/p' | head -n 1)
  echo "${n:-0}"
}

# bench_wal_lsn: the database's current WAL insert position (pg_current_wal_lsn), for WAL bytes
# per request: bench_wal_bytes FROM TO.
bench_wal_lsn() {
  psql -X -qtA -h "$B_PG_SOCK" -p "$B_PG_PORT" -U vigil -d vigil -c "SELECT pg_current_wal_lsn()"
}
bench_wal_bytes() {
  psql -X -qtA -h "$B_PG_SOCK" -p "$B_PG_PORT" -U vigil -d vigil -c "SELECT pg_wal_lsn_diff('$2', '$1')::bigint"
}

# bench_cpu_snap: cumulative CPU time so far, in clock ticks, as "postgres vigil-api
# vigil-hotpath": PostgreSQL's processes alive now plus those that have exited (the postmaster's
# reaped children: backends, autovacuum workers), the API and the worker.  bench_cpu_report
# BEFORE AFTER N prints that CPU per request for N requests, and their sum.  (The machine's own
# busy time from /proc/stat is not used: in this project's VM guests it read below the sum of
# these three processes in some runs.)
bench_cpu_snap() {
  local pg=0 api=0 hp=0 f line comm pm
  pm=$(head -n 1 "$B_TMP/pg/postmaster.pid" 2>/dev/null || echo 0)
  for f in /proc/[0-9]*/stat; do
    read -r line <"$f" 2>/dev/null || continue
    comm=${line#*(}
    comm=${comm%%)*}
    # shellcheck disable=SC2086
    set -- ${line##*) } # $1 is field 3 (state): utime ${12}, stime ${13}, cutime ${14}, cstime ${15}
    case $comm in
      postgres) pg=$((pg + ${12} + ${13}))
        [ "${f#/proc/}" = "$pm/stat" ] && pg=$((pg + ${14} + ${15})) ;;
      vigil-api) api=$((api + ${12} + ${13})) ;;
      vigil-hotpath) hp=$((hp + ${12} + ${13})) ;;
    esac
  done
  echo "$pg $api $hp"
}
bench_cpu_report() {
  awk -v a="$1" -v b="$2" -v n="$3" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    split(a, x, " "); split(b, y, " "); if (n <= 0) exit
    f = 1e6 / hz / n; p = (y[1] - x[1]) * f; q = (y[2] - x[2]) * f; r = (y[3] - x[3]) * f
    printf "   CPU per request: postgres %d us, vigil-api %d us, vigil-hotpath %d us: %d us in all (%d requests; the load generator and the kernel not counted)\n",
      p, q, r, p + q + r, n }'
}

# bench_pg_settings: one line saying how durable the benchmark's PostgreSQL is (every figure that
# touches it depends on this).
bench_pg_settings() {
  local v
  v=$(psql -X -qtA -h "$B_PG_SOCK" -p "$B_PG_PORT" -U vigil -d vigil -F' ' -c \
      "SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('full_page_writes'), current_setting('server_version')")
  set -- $v
  local label="durable: PostgreSQL's defaults"
  [ "$1" = on ] && [ "$2" = on ] || label="NOT durable (VIGIL_PG_FAST=1): a crash can lose committed decisions"
  echo "postgresql $4: fsync=$1 synchronous_commit=$2 full_page_writes=$3 ($label)"
}

# bench_vegeta NAME RATE SECS URL BODY_TEMPLATE [HEADER...]: an independent open-loop load from
# vegeta ($B_VEGETA, `make vegeta`) at RATE req/s for SECS s: one POST per target, every target
# with its own Idempotency-Key (vg-NAME-<seq>) and BODY_TEMPLATE's {seq%N} / {seq} filled in as
# loadgen does.  Prints vegeta's text report and one line
#   VEGETA name=NAME rate=R achieved=A p50_us= p90_us= p99_us= max_us= success= non2xx= errors=
# (latency from each request's actual send: vegeta's own clock).  At most 48 connections, like a
# client pool sized below vigil-api's per-address limit (VIGIL_MAX_CONNECTIONS_PER_IP, 64): a
# request waiting for one of them is timed from vegeta's send, wait included.  Returns 0 even when requests
# failed (the line says so); 1 when vegeta is missing.
bench_vegeta() {
  local name=$1 rate=$2 secs=$3 url=$4 tmpl=$5
  shift 5
  [ -x "${B_VEGETA:-}" ] || { echo "VEGETA name=$name skipped=no-vegeta-binary"; return 1; }
  local tg=$B_TMP/vegeta-$name.targets
  /usr/bin/python3 - "$rate" "$secs" "$url" "$tmpl" "$name" "$@" >"$tg" <<'PY'
import base64, json, re, sys
rate, secs, url, tmpl, name = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], open(sys.argv[4]).read(), sys.argv[5]
hdrs = {}
for h in sys.argv[6:]:
    k, v = h.split(':', 1)
    hdrs[k.strip()] = [v.strip()]
def fill(seq):
    return re.sub(r'\{seq(?:%(\d+))?\}', lambda m: str(seq % int(m.group(1)) if m.group(1) else seq), tmpl)
for seq in range(int(rate * secs) + rate):  # a second spare: vegeta stops at the duration
    h = dict(hdrs)
    h['Idempotency-Key'] = ['vg-%s-%d' % (name, seq)]
    print(json.dumps({'method': 'POST', 'url': url, 'header': h,
                      'body': base64.b64encode(fill(seq).encode()).decode()}))
PY
  "$B_VEGETA" attack -format=json -targets="$tg" -rate="$rate/1s" -duration="${secs}s" \
      -timeout=10s -workers=16 -max-workers=256 ${VEGETA_FLAGS:--max-connections=48} >"$B_TMP/vegeta-$name.bin" 2>"$B_TMP/vegeta-$name.err" || true
  "$B_VEGETA" report -type=text <"$B_TMP/vegeta-$name.bin" | sed 's/^/   vegeta: /'
  "$B_VEGETA" report -type=json <"$B_TMP/vegeta-$name.bin" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin); l = r["latencies"]; codes = r.get("status_codes") or {}
ok = sum(v for k, v in codes.items() if k.startswith("2")); n = r["requests"]
print("VEGETA name=%s rate=%s achieved=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d success=%.4f non2xx=%d errors=%d" % (
    sys.argv[1], sys.argv[2], r["throughput"], l["50th"] / 1000, l["90th"] / 1000, l["99th"] / 1000,
    l["max"] / 1000, r["success"], n - ok, len(r.get("errors") or [])))' "$name" "$rate"
}

# bench_users NAME [EXTRA_JSON]: 50 users NAME-0..49 with no history (a third of them FR, the
# rest DE) and their transaction body $B_TMP/txn-NAME.json for loadgen/vegeta ({seq%50} picks the
# user; EXTRA_JSON, e.g. ', "ip_address": "10.0.0.{seq%250}"', is appended to the body).  Every
# measured run of decisions takes a fresh set: the built-in features read each user's earlier
# transactions (30 days), so a set reused run after run would make each figure depend on how many
# runs came before it (at 1200/s one of 50 users gains 24 rows a second).  Within one run its
# users do gain history: duration x rate / 50 rows each by its end.
bench_users() {
  local name=$1 extra=${2:-} i c
  for i in $(seq 0 49); do
    c=DE; [ $((i % 3)) = 0 ] && c=FR
    curl -fsS -o /dev/null -H "$B_AUTH" -H 'Content-Type: application/json' "$B_API/api/v1/users" \
      -d "{\"external_id\":\"$name-$i\",\"country\":\"$c\"}" || bench_die "creating user $name-$i failed"
  done
  printf '%s\n' '{"user_external_id": "'"$name"'-{seq%50}", "amount": 1{seq%100000}, "currency": "EUR",' \
    ' "merchant_id": "shop-{seq%200}", "merchant_category": "5411", "country": "FR",' \
    ' "channel": "ecommerce"'"$extra"'}' >"$B_TMP/txn-$name.json"
}
