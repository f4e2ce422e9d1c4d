#!/usr/bin/env bash
# http_health.sh BIN_DIR - issue 11 item 6: the plumbing every request pays, measured on
# GET /health against Gin's hello handler on the same machine.
#
# Both servers run at once on free loopback ports; wrk (closed loop: the right tool for "how many
# requests a second at most", not for latency under a rate) hits them alternately A/B/A/B
# (VIGIL_BENCH_HEALTH_ROUNDS rounds of VIGIL_BENCH_HEALTH_SECONDS s each, after a 2 s warm-up of
# each), with the same threads and connections (VIGIL_BENCH_HEALTH_CONNS, default 32: under the
# API's per-address limit).  Prints every run's req/s and the server's CPU time per request
# (utime + stime from /proc over the run), the median of each side and their ratios,
# each server's VmHWM/VmRSS after the runs, the machine and the load average before and after
# (the machine may be shared: other processes' CPU is printed too).
#
# vigil-api runs as shipped (worker mode is not needed for /health: inprocess), with its access
# log written to a file; VIGIL_ACCESS_LOG_PROBES=0 (the setting that leaves /health, /ready and
# /metrics out of the access log) unless VIGIL_BENCH_HEALTH_LOG_PROBES=1.  The Gin peer is
# tests/bench/gin_health/main.go (gin.New(): no logger), built in GOPATH mode from Debian's
# golang-github-gin-gonic-gin-dev into build/bench/gin-health.
set -euo pipefail
BIN=${1:-bin}
. "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT INT TERM

ROUNDS=${VIGIL_BENCH_HEALTH_ROUNDS:-3}
SECS=${VIGIL_BENCH_HEALTH_SECONDS:-8}
CONNS=${VIGIL_BENCH_HEALTH_CONNS:-32}
THREADS=${VIGIL_BENCH_HEALTH_THREADS:-2}
LOG_PROBES=${VIGIL_BENCH_HEALTH_LOG_PROBES:-0}

command -v wrk >/dev/null || bench_die "wrk not installed (make deps installs it)"
GOBIN_=${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}
[ -d /usr/share/gocode/src/github.com/gin-gonic/gin ] ||
  bench_die "Gin not installed (Debian golang-github-gin-gonic-gin-dev; make deps installs it)"

bench_init
GIN=$B_ROOT/build/bench/gin-health
if [ ! -x "$GIN" ] || [ tests/bench/gin_health/main.go -nt "$GIN" ]; then
  bench_log "building $GIN (Gin from /usr/share/gocode, GOPATH mode)"
  mkdir -p "$(dirname "$GIN")"
  (cd tests/bench/gin_health && GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= GOPROXY=off \
     GOCACHE=${VIGIL_BENCH_GOCACHE:-$B_ROOT/build/bench/gocache} "$GOBIN_" build -o "$GIN.tmp" .) &&
    mv "$GIN.tmp" "$GIN" || bench_die "Gin peer did not build"
fi

bench_start_app inprocess VIGIL_ACCESS_LOG_PROBES="$LOG_PROBES"
VIGIL_URL=$B_API/health
GIN_PORT=$(bench_free_port)
"$GIN" "127.0.0.1:$GIN_PORT" >>"$B_TMP/gin.log" 2>&1 &
GIN_PID=$!
B_EXTRA_PIDS="$B_EXTRA_PIDS $GIN_PID"
GIN_URL=http://127.0.0.1:$GIN_PORT/health
for _ in $(seq 100); do curl -fsS -o /dev/null "$GIN_URL" 2>/dev/null && break; sleep 0.05; done
curl -fsS -o /dev/null "$GIN_URL" || bench_die "the Gin peer did not come up"

echo "   $(bench_machine)"
echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg); other busy processes (nice, %CPU, name):" \
     "$(ps -eo ni=,pcpu=,comm= --sort=-pcpu | awk -v me=$$ '$2 > 5 {printf "%s%s/%s%%/%s", s, $1, $2, $3; s=", "}' | head -c 300)"
echo "   wrk $(wrk -v 2>&1 | head -n 1 | awk '{print $2}'), closed loop, -t$THREADS -c$CONNS -d${SECS}s, keep-alive;" \
     "vigil-api inprocess, access log of probes: $([ "$LOG_PROBES" = 1 ] && echo on || echo off); Gin $(sed -n 's/.*Version = "\(.*\)"/\1/p' /usr/share/gocode/src/github.com/gin-gonic/gin/version.go) gin.New(), $("$GOBIN_" version | awk '{print $3}')"

# CPU time (user + system, clock ticks) the process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
# wrk_run URL SECONDS PID: one closed-loop run; prints "REQ_PER_S CPU_US_PER_REQ" (the server's
# CPU time per answered request, less sensitive to the other load than req/s).  Fails on any
# non-2xx answer or socket error.
wrk_run() {
  local out c0 c1 rps
  c0=$(cpu_ticks "$3")
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$2"s "$1" 2>&1)
  c1=$(cpu_ticks "$3")
  if printf '%s\n' "$out" | grep -qE 'Non-2xx|Socket errors'; then
    printf '%s\n' "$out" >&2
    bench_die "wrk saw errors against $1"
  fi
  rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ {printf "%.0f", $2}')
  awk -v r="$rps" -v t=$((c1 - c0)) -v s="$2" -v hz="$TCK" 'BEGIN {printf "%d %.1f\n", r, t * 1e6 / hz / (r * s)}'
}
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

wrk_run "$VIGIL_URL" 2 "$B_API_PID" >/dev/null
wrk_run "$GIN_URL" 2 "$GIN_PID" >/dev/null
V_ALL="" G_ALL="" VC_ALL="" GC_ALL=""
for r in $(seq "$ROUNDS"); do
  read -r v vc < <(wrk_run "$VIGIL_URL" "$SECS" "$B_API_PID")
  read -r g gc < <(wrk_run "$GIN_URL" "$SECS" "$GIN_PID")
  echo "   round $r: vigil-api $v req/s ($vc us CPU/request), Gin $g req/s ($gc us CPU/request)"
  V_ALL="$V_ALL $v" G_ALL="$G_ALL $g" VC_ALL="$VC_ALL $vc" GC_ALL="$GC_ALL $gc"
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
VM=$(echo "$V_ALL" | median) GM=$(echo "$G_ALL" | median)
VCM=$(echo "$VC_ALL" | median) GCM=$(echo "$GC_ALL" | median)
echo "   median: vigil-api $VM req/s, Gin $GM req/s: ratio $(awk -v a="$VM" -v b="$GM" 'BEGIN {printf "%.2f", a / b}')x;" \
     "CPU/request vigil-api $VCM us, Gin $GCM us: Gin spends $(awk -v a="$VCM" -v b="$GCM" 'BEGIN {printf "%.2f", b / a}')x vigil's"
echo "   RSS after the runs: vigil-api VmHWM $(status_kb "$B_API_PID" VmHWM) kB, VmRSS $(status_kb "$B_API_PID" VmRSS) kB;" \
     "Gin VmHWM $(status_kb "$GIN_PID" VmHWM) kB, VmRSS $(status_kb "$GIN_PID" VmRSS) kB"
echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
