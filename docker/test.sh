#!/usr/bin/env bash
# docker/test.sh - end-to-end test of the container deployment (`make docker-test`).
#
# Builds the local base images if absent (docker/mkbase.sh), builds the three images through
# docker/compose.yaml, brings the stack up under a unique project name on a free port, and checks
# from the host with curl: users CRUD, model upload + predict, the worker being killed and
# restarted under a running API, socket permissions across uids, /metrics in strict Prometheus
# text format, image sizes, the Kubernetes manifest's structure, a graceful API stop with
# requests in flight, and last the optional "tracing" profile: the Jaeger image (from
# build/jaeger/jaeger, which `make deps` builds), the API recreated exporting to it, a decision
# sent with a known traceparent found in Jaeger's query API with the expected span tree, and with
# Jaeger stopped decisions still answering while vigil_trace_spans_dropped_total grows.
# Everything the run created (containers, volumes, network) is removed in an EXIT trap, also on
# failure; the images stay as a build cache.  Last line: "N passed, N failed".
#
# Environment: VIGIL_DOCKER_TEST_KEEP=1 keeps the stack up for inspection (prints how to remove it).
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0 failed=0 skipped=0
ok() { passed=$((passed + 1)); echo "  ok    $*"; }
bad() { failed=$((failed + 1)); echo "  FAIL  $*"; }
skip() { skipped=$((skipped + 1)); echo "  skip  $*"; }
check() { # check DESCRIPTION COMMAND...
    local d=$1
    shift
    if "$@"; then ok "$d"; else bad "$d"; fi
}
not() { ! "$@"; }
step() { echo "== $*"; }
finish() {
    [ "$skipped" -gt 0 ] && echo "($skipped skipped)"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

for tool in docker curl python3; do
    command -v "$tool" >/dev/null || { echo "docker-test: $tool not found"; echo "0 passed, 1 failed"; exit 1; }
done
if docker compose version >/dev/null 2>&1; then
    DC_BIN=(docker compose)
elif command -v docker-compose >/dev/null; then
    DC_BIN=(docker-compose)
else
    echo "docker-test: neither 'docker compose' nor docker-compose found"
    echo "0 passed, 1 failed"
    exit 1
fi

project=vigiltest$$
# Two free loopback ports at once (so they differ): the API's, then Jaeger's query API/UI's.
read -r port jport < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
work=$(mktemp -d /tmp/vigil-docker-test.XXXXXX)
export VIGIL_PORT=$port VIGIL_JAEGER_PORT=$jport VIGIL_BIND=127.0.0.1 VIGIL_TAG=test VIGIL_RESTART=no
# The main part runs the stack exactly as `compose up` does by default: tracing off.
unset VIGIL_OTLP_ENDPOINT VIGIL_TRACES_SAMPLER VIGIL_TRACES_SAMPLER_ARG
export VIGIL_BUILD_BASE=${VIGIL_BUILD_BASE:-vigil-build-base:bookworm}
export VIGIL_PG_BASE=${VIGIL_PG_BASE:-vigil-postgres-base:bookworm}
export VIGIL_BOOTSTRAP_KEY=vgl_test_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export VIGIL_PG_PASSWORD=pw_$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
DC=("${DC_BIN[@]}" -f docker/compose.yaml -p "$project")
DCT=("${DC[@]}" --profile tracing) # also sees the profile's jaeger service (so `down` removes it)
base=http://127.0.0.1:$port
auth=(-H "Authorization: Bearer $VIGIL_BOOTSTRAP_KEY")

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # shellcheck disable=SC2046
    [ -n "$(jobs -p)" ] && kill $(jobs -p) 2>/dev/null
    if [ "${VIGIL_DOCKER_TEST_KEEP:-0}" = 1 ]; then
        echo "kept: ${DCT[*]} down -v   (port $port, Jaeger UI port $jport)"
    else
        "${DCT[@]}" down -v --remove-orphans >"$work/down.log" 2>&1 ||
            { echo "compose down failed:"; tail -5 "$work/down.log"; }
        rm -rf "$work"
    fi
    [ -n "${made_jaeger_dir:-}" ] && rmdir $made_jaeger_dir 2>/dev/null
    # Superseded images of earlier runs (untagged, labelled by our Dockerfiles) would otherwise pile
    # up by ~600 MB a run; the last hour's stay as the build cache.
    docker image prune -f --filter label=org.vigil.image=1 --filter until=1h >/dev/null 2>&1 || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# docker-compose v1 refuses to load compose.yaml at all while a service's build context is missing,
# profile or not: without build/jaeger (`make deps` builds Jaeger there) an empty one lets the main
# part run; the tracing section then fails on the missing binary.  Removed again on exit.
made_jaeger_dir=""
if [ ! -d build/jaeger ]; then
    made_jaeger_dir=build/jaeger
    [ -d build ] || made_jaeger_dir="build/jaeger build"
    mkdir -p build/jaeger
fi

# req METHOD PATH [curl args...]: sets $code (000 when no answer) and leaves the body in $work/body.
req() {
    local m=$1 p=$2
    shift 2
    code=$(curl -s -o "$work/body" -w '%{http_code}' --max-time 20 -X "$m" "$@" "$base$p") || true
    [ -n "$code" ] || code=000
}
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$work/body" "$1"; }
# wait_for SECONDS CMD...: retries CMD every 0.5 s until it succeeds or the time is up.
wait_for() {
    local until=$((SECONDS + $1))
    shift
    while ! "$@"; do
        [ $SECONDS -ge "$until" ] && return 1
        sleep 0.5
    done
}
ready_is() { req GET /ready; [ "$code" = "$1" ]; }
cid() { "${DC[@]}" ps -q "$1" 2>/dev/null; }

# ---- images -------------------------------------------------------------------------------------
step "base images (docker/mkbase.sh; cached)"
t0=$SECONDS
if bash docker/mkbase.sh >"$work/mkbase.log" 2>&1; then
    ok "base images present ($((SECONDS - t0)) s)"
else
    tail -20 "$work/mkbase.log"
    bad "docker/mkbase.sh"
    finish
    exit 1
fi

step "build images (compose build)"
t0=$SECONDS
# The three services by name: the optional "tracing" profile's Jaeger is built in its own section.
if "${DC[@]}" build postgres hotpath api >"$work/build.log" 2>&1; then
    ok "vigil-postgres, vigil-hotpath, vigil-api built ($((SECONDS - t0)) s)"
else
    grep -iE 'error|failed' "$work/build.log" | tail -20
    bad "compose build"
    finish
    exit 1
fi

step "image sizes"
size_mb() { docker image inspect -f '{{.Size}}' "$1" | awk '{ printf "%.1f", $1 / 1000000 }'; }
api_mb=$(size_mb "vigil-api:$VIGIL_TAG")
hp_mb=$(size_mb "vigil-hotpath:$VIGIL_TAG")
pg_mb=$(size_mb "vigil-postgres:$VIGIL_TAG")
check "vigil-api image ${api_mb} MB (target <= 30 MB)" awk -v s="$api_mb" 'BEGIN { exit !(s <= 30) }'
check "vigil-hotpath image ${hp_mb} MB (target <= 10 MB)" awk -v s="$hp_mb" 'BEGIN { exit !(s <= 10) }'
echo "  info  vigil-postgres image ${pg_mb} MB (Debian postgresql-15, no target)"

# ---- stack --------------------------------------------------------------------------------------
step "compose up (project $project, port $port)"
t0=$SECONDS
if ! "${DC[@]}" up -d >"$work/up.log" 2>&1; then
    tail -20 "$work/up.log"
    "${DC[@]}" logs --tail=20
    bad "compose up"
    finish
    exit 1
fi
if wait_for 90 ready_is 200; then
    ok "/ready 200 after $((SECONDS - t0)) s"
else
    bad "/ready never 200 (last: $code $(cat "$work/body" 2>/dev/null))"
    "${DC[@]}" ps
    "${DC[@]}" logs --tail=30
    finish
    exit 1
fi
api_id=$(cid api)
hp_id=$(cid hotpath)
api_started=$(docker inspect -f '{{.State.StartedAt}}' "$api_id")

step "hardening as deployed"
for svc in api hotpath postgres; do
    id=$(cid $svc)
    ro=$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$id")
    user=$(docker inspect -f '{{.Config.User}}' "$id")
    check "$svc: read-only root fs ($ro), user '$user' is not root" \
        test "$ro" = true -a -n "$user" -a "$user" != root -a "${user%%:*}" != 0
done
check "hotpath has no network (NetworkMode $(docker inspect -f '{{.HostConfig.NetworkMode}}' "$hp_id"))" \
    test "$(docker inspect -f '{{.HostConfig.NetworkMode}}' "$hp_id")" = none
wait_for 30 test "$(docker inspect -f '{{.State.Health.Status}}' "$api_id")" = healthy
check "api HEALTHCHECK (vigil-api --health-check) reports healthy" \
    test "$(docker inspect -f '{{.State.Health.Status}}' "$api_id")" = healthy
check "hotpath HEALTHCHECK (vigil-hotpath --check) reports healthy" \
    test "$(docker inspect -f '{{.State.Health.Status}}' "$hp_id")" = healthy

# ---- users CRUD ---------------------------------------------------------------------------------
step "users CRUD"
req POST /api/v1/users "${auth[@]}" -H 'Content-Type: application/json' \
    -d '{"external_id":"docker-smoke-1","name":"Smoke","country":"DE"}'
uid=""
[ "$code" = 201 ] && uid=$(json 'd["id"]')
check "POST /api/v1/users -> 201 ($code)" test "$code" = 201 -a -n "$uid"
req GET "/api/v1/users/$uid" "${auth[@]}"
check "GET user -> 200 with external_id ($code)" \
    test "$code" = 200 -a "$(json 'd.get("external_id")' 2>/dev/null)" = docker-smoke-1
req PATCH "/api/v1/users/$uid" "${auth[@]}" -H 'Content-Type: application/json' -d '{"country":"FR"}'
check "PATCH user -> 200, country FR ($code)" test "$code" = 200 -a "$(json 'd.get("country")' 2>/dev/null)" = FR
req GET /api/v1/users "${auth[@]}"
check "GET /api/v1/users lists it ($code)" \
    test "$code" = 200 -a "$(json "any(u.get('id') == '$uid' for u in d['data'])" 2>/dev/null)" = True
req GET /api/v1/users
check "no key -> 401 ($code)" test "$code" = 401
req DELETE "/api/v1/users/$uid" "${auth[@]}"
check "DELETE user -> 204 ($code)" test "$code" = 204
req GET "/api/v1/users/$uid" "${auth[@]}"
check "GET deleted user -> 404 ($code)" test "$code" = 404

# ---- model + predict ----------------------------------------------------------------------------
step "model upload + predict"
fx=tests/fixtures/binary_logistic_named
req POST "/api/v1/models?name=docker-smoke" "${auth[@]}" -H 'Content-Type: application/json' \
    --data-binary "@$fx.model.json"
mid=""
[ "$code" = 201 ] && mid=$(json 'd["id"]')
check "POST /api/v1/models ($fx) -> 201 ($code)" test "$code" = 201 -a -n "$mid"
# The first 8 fixture rows as a predict body (nan -> null), and xgboost's predictions for them.
python3 - "$fx" "$work" <<'EOF'
import json, sys
fx, work = sys.argv[1], sys.argv[2]
rows = [[None if v == "nan" else float(v) for v in l.split()] for l in open(fx + ".rows.txt").read().splitlines()[1:9]]
json.dump({"rows": rows}, open(work + "/predict.json", "w"))
open(work + "/expected.txt", "w").write("\n".join(open(fx + ".pred.txt").read().splitlines()[1:9]))
EOF
predict() {
    req POST "/api/v1/models/$mid/predict" "${auth[@]}" -H 'Content-Type: application/json' \
        --data-binary "@$work/predict.json"
}
predictions_match() {
    python3 - "$work/body" "$work/expected.txt" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))["predictions"]
got = [g[0] if isinstance(g, list) else g for g in got]
want = [float(l) for l in open(sys.argv[2]).read().split()]
sys.exit(not (len(got) == len(want) and all(abs(g - w) <= 1e-6 * max(1.0, abs(w)) for g, w in zip(got, want))))
EOF
}
req GET /metrics
has_score=0
grep -q '^vigil_hotpath_kernel_info{op="score"' "$work/body" && has_score=1
predict
if [ "$has_score" = 1 ]; then
    check "predict 8 rows -> 200 ($code)" test "$code" = 200
    check "predictions equal xgboost's within 1e-6" predictions_match
else
    skip "predict -> $code: the worker has no SCORE kernel yet (its HELLO lists no 'score'); predictions not checked"
fi

# ---- /metrics -----------------------------------------------------------------------------------
step "/metrics"
req GET /metrics
cp "$work/body" "$work/metrics.txt"
check "GET /metrics -> 200 without a key ($code)" test "$code" = 200
if python3 docker/promcheck.py "$work/metrics.txt" >"$work/promcheck.log" 2>&1; then
    ok "/metrics parses as Prometheus text format 0.0.4 ($(cat "$work/promcheck.log"))"
else
    bad "/metrics format: $(head -5 "$work/promcheck.log")"
fi
mgrep() { grep -qE "$1" "$work/metrics.txt"; }
check "vigil_hotpath_alloc_calls_after_ready 0" mgrep '^vigil_hotpath_alloc_calls_after_ready 0$'
check "vigil_hotpath_up 1" mgrep '^vigil_hotpath_up 1$'
check 'vigil_build_info{version="0.1.0"} 1' mgrep '^vigil_build_info\{version="0\.1\.0"\} 1$'
check "requests labelled by route pattern" \
    mgrep '^vigil_http_requests_total\{route="/api/v1/users/\{id\}",method="PATCH",status="200"\} 1$'
check "DB pool gauges" mgrep '^vigil_db_pool_connections_open [0-9]+$'
check "worker calls by op and result" mgrep '^vigil_worker_calls_total\{op="hello",result="ok"\} [0-9]+$'
if [ "$has_score" = 1 ]; then
    check "worker reports the model resident (STATS re-exported)" mgrep '^vigil_hotpath_models_resident [1-9][0-9]*$'
fi
check "decision counters present (zero until used)" \
    mgrep '^vigil_decisions_total\{decision="allow",degraded="false"\} 0$'

# ---- socket permissions -------------------------------------------------------------------------
step "worker socket permissions"
vol=$(docker inspect -f '{{range .Mounts}}{{if eq .Destination "/run/vigil"}}{{.Name}}{{end}}{{end}}' "$hp_id")
sock_check() { # uid[:gid] -> exit status of vigil-hotpath --check against the shared volume
    docker run --rm --network none --read-only --user "$1" -v "$vol:/run/vigil" \
        "vigil-hotpath:$VIGIL_TAG" --check >>"$work/sock.log" 2>&1
}
check "uid 12345 (gid 0) cannot connect" not sock_check 12345
check "uid 12345:12345 cannot connect" not sock_check 12345:12345
check "the worker's uid 10002:10000 can connect" sock_check 10002:10000
check "the API's uid 10001:10000 can connect" sock_check 10001:10000

# ---- worker killed and restarted ----------------------------------------------------------------
step "worker killed, then restarted under the running API"
docker kill "$hp_id" >/dev/null
check "/ready -> 503 after docker kill hotpath" wait_for 10 ready_is 503
if [ -n "$mid" ]; then
    predict
    check "predict -> 503 while the worker is down ($code)" test "$code" = 503
fi
req GET /metrics
check "vigil_hotpath_up 0 while down" grep -q '^vigil_hotpath_up 0$' "$work/body"
"${DC[@]}" start hotpath >"$work/start.log" 2>&1
t0=$SECONDS
if wait_for 30 ready_is 200; then
    ok "/ready -> 200 again $((SECONDS - t0)) s after compose start hotpath"
else
    bad "/ready not 200 within 30 s of compose start hotpath ($code)"
    "${DC[@]}" logs --tail=10 hotpath
fi
if [ -n "$mid" ]; then
    predict
    if [ "$has_score" = 1 ]; then
        check "predict -> 200 after the restart ($code)" test "$code" = 200
    else
        skip "predict after restart: no SCORE kernel ($code)"
    fi
fi
check "the API was not restarted" \
    test "$(docker inspect -f '{{.State.StartedAt}} {{.RestartCount}}' "$api_id")" = "$api_started 0"

# ---- K8s manifest -------------------------------------------------------------------------------
step "docker/k8s/vigil.yaml (structure only: no cluster here)"
if /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
    if /usr/bin/python3 docker/k8scheck.py docker/k8s/vigil.yaml >"$work/k8s.log" 2>&1; then
        ok "manifest: $(tail -1 "$work/k8s.log")"
    else
        bad "manifest: $(cat "$work/k8s.log")"
    fi
else
    bad "python3-yaml missing (make deps installs it)"
fi

# ---- graceful stop with requests in flight ------------------------------------------------------
step "compose stop api with requests in flight"
# Four model uploads throttled to ~4.5 s each are in flight when SIGTERM arrives; the API must stop
# accepting, finish them, and exit 0 within 10 s.
for i in 1 2 3 4; do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 --limit-rate 8k "${auth[@]}" \
        -H 'Content-Type: application/json' --data-binary "@$fx.model.json" \
        "$base/api/v1/models?name=drain-$i" >"$work/inflight.$i" 2>/dev/null &
done
sleep 1
t0=$(date +%s.%N)
"${DC[@]}" stop -t 20 api >"$work/stop.log" 2>&1
t1=$(date +%s.%N)
wait
elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$api_id")
check "API exited with code 0 ($exit_code)" test "$exit_code" = 0
check "API stopped in ${elapsed} s (<= 10 s)" awk -v e="$elapsed" 'BEGIN { exit !(e <= 10) }'
codes=$(cat "$work"/inflight.* | tr '\n' ' ')
check "the 4 in-flight uploads completed (HTTP: $codes)" test "$codes" = "201 201 201 201 "
docker logs "$api_id" >"$work/api.log" 2>&1
check "API log: stopped with 0 abandoned requests" grep -q '"abandoned_requests":0' "$work/api.log"
# The uploads were really in flight: their request lines come after the "shutdown" line.
check "API log: uploads finished after SIGTERM" awk '
    /"event":"shutdown"/ { down = NR }
    /"path":"\/api\/v1\/models"/ && /"method":"POST"/ && down { after++ }
    END { exit !(after == 4) }' "$work/api.log"

# ---- tracing profile ----------------------------------------------------------------------------
step "tracing profile: Jaeger, the API exporting to it (OTLP/HTTP, sampler 1.0)"
t_tracing=$SECONDS
jbase=http://127.0.0.1:$jport
# jget PATH: GET on Jaeger's query API (published on the free port $jport); body in $work/jbody.
jget() {
    jcode=$(curl -s -o "$work/jbody" -w '%{http_code}' --max-time 5 "$jbase$1") || true
    [ "$jcode" = 200 ]
}
# The trace as Jaeger's query API returns it, checked against what the test sent: prints one
# "ok|..." or "FAIL|..." line per assertion, exits 0 when all hold.
trace_checks() { # FILE TRACE_ID CALLER_SPAN_ID SERVER_SPAN_ID USER_ID
    python3 - "$@" <<'EOF'
import json, sys
path, tid, caller, server, uid = sys.argv[1:6]
results = []
def check(desc, cond):
    results.append((bool(cond), desc))
try:
    t = json.load(open(path))["data"][0]
    spans = t["spans"]
except (OSError, ValueError, KeyError, IndexError, TypeError):
    print("FAIL|trace %s not in Jaeger's answer" % tid)
    sys.exit(1)
by_id = {s["spanID"]: s for s in spans}
def svc(s): return t["processes"][s["processID"]]["serviceName"]
def tags(s): return {g["key"]: g.get("value") for g in s.get("tags", [])}
def parent(s):
    return next((r["spanID"] for r in s.get("references", []) if r["refType"] == "CHILD_OF"), None)
check("trace id %s, %d spans" % (tid, len(spans)), all(s["traceID"] == tid for s in spans))
srv = by_id.get(server)
check("server span %s (the response's traceparent) is in the trace" % server, srv)
if not srv:
    for ok, d in results: print(("ok|" if ok else "FAIL|") + d)
    sys.exit(1)
st = tags(srv)
check("server span: 'POST /api/v1/transactions' of service vigil-api (%s of %s)"
      % (srv["operationName"], svc(srv)),
      srv["operationName"] == "POST /api/v1/transactions" and svc(srv) == "vigil-api")
check("server span is a child of the caller's span %s (parent %s)" % (caller, parent(srv)),
      parent(srv) == caller)
check("server span: span.kind server, http.route /api/v1/transactions, status 201",
      st.get("span.kind") == "server" and st.get("http.route") == "/api/v1/transactions"
      and st.get("http.response.status_code") == 201)
db = [s for s in spans if tags(s).get("db.system.name") is not None]
summaries = [tags(s).get("db.query.summary") or "" for s in db]
check("%d PostgreSQL spans (db.system.name=postgresql, client), all children of the server span"
      % len(db), db and all(tags(s)["db.system.name"] == "postgresql"
                            and tags(s).get("span.kind") == "client"
                            and parent(s) == server for s in db))
check("one PostgreSQL span is the decision's transaction (INSERT transactions in %s)" % summaries,
      any("INSERT transactions" in x for x in summaries))
check("no span attribute carries a parameter value (the user id)",
      not any(isinstance(v, str) and uid in v for s in spans for v in tags(s).values()))
calls = [s for s in spans if svc(s) == "vigil-api" and s["operationName"].startswith("vigil-hotpath/")]
score = [s for s in calls if s["operationName"] == "vigil-hotpath/score"]
check("worker client span vigil-hotpath/score under the server span (calls: %s)"
      % [c["operationName"] for c in calls],
      score and all(parent(s) == server and tags(s).get("span.kind") == "client" for s in calls))
check("worker client span: vigil.wire.status ok",
      any(tags(s).get("vigil.wire.status") == "ok" for s in score))
hp = [s for s in spans if svc(s) == "vigil-hotpath" and parent(s) in {c["spanID"] for c in score}]
compute = [tags(s).get("vigil.hotpath.compute_ns") for s in hp]
check("vigil-hotpath service span under the score call, compute time > 0 (compute_ns %s)" % compute,
      any(isinstance(c, (int, float)) and c > 0 for c in compute))
outside = []
for s in spans:
    p = by_id.get(parent(s))
    if p and not (s["startTime"] >= p["startTime"] - 1 and
                  s["startTime"] + s["duration"] <= p["startTime"] + p["duration"] + 1):
        outside.append("%s outside %s" % (s["operationName"], p["operationName"]))
check("every span lies within its parent's time (%s)" % ("; ".join(outside) or "all nested"),
      not outside)
for ok, d in results: print(("ok|" if ok else "FAIL|") + d)
sys.exit(0 if all(ok for ok, _ in results) else 1)
EOF
}
report_checks() { # FILE: the "ok|"/"FAIL|" lines of trace_checks as passes/failures
    local line
    while IFS= read -r line; do
        case $line in
        ok\|*) ok "${line#ok|}" ;;
        *) bad "${line#FAIL|}" ;;
        esac
    done <"$1"
}
log_has() { # FILE KEY=VALUE...: FILE has a JSON log line holding all these fields
    python3 - "$@" <<'EOF'
import json, sys
want = dict(a.split("=", 1) for a in sys.argv[2:])
for line in open(sys.argv[1], errors="replace"):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if isinstance(d, dict) and all(d.get(k) == v for k, v in want.items()):
        sys.exit(0)
sys.exit(1)
EOF
}
# The sum of vigil_trace_spans_dropped_total over its reasons (and exported), from /metrics.
span_counts() {
    req GET /metrics
    awk '/^vigil_trace_spans_dropped_total[{ ]/ { d += $NF }
         /^vigil_trace_spans_exported_total[{ ]/ { e += $NF }
         END { printf "%d %d\n", d, e }' "$work/body"
}
# The last answer is a decision the worker scored: risk.degraded false and a score.
scored() {
    test "$(json 'd["risk"]["degraded"] is False and type(d["risk"]["score"]) in (int, float)' 2>/dev/null)" = True
}
random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
# txn TRACEPARENT: POST /api/v1/transactions for $tuid; response headers in $work/headers.
txn() {
    req POST /api/v1/transactions "${auth[@]}" -H 'Content-Type: application/json' \
        -H "traceparent: $1" -D "$work/headers" \
        -d "{\"user_id\":\"$tuid\",\"amount\":1999,\"currency\":\"EUR\",\"merchant_id\":\"m1\",\"merchant_category\":\"5411\",\"country\":\"DE\",\"channel\":\"ecommerce\"}"
}
tracing_section() {
    if [ ! -x build/jaeger/jaeger ]; then
        bad "build/jaeger/jaeger missing: \`make deps\` (or \`make jaeger\`) builds Jaeger v1.76"
        return
    fi
    local t0=$SECONDS
    if "${DCT[@]}" build jaeger >"$work/build-jaeger.log" 2>&1; then
        ok "vigil-jaeger built ($((SECONDS - t0)) s)"
    else
        grep -iE 'error|failed' "$work/build-jaeger.log" | tail -20
        bad "compose --profile tracing build jaeger"
        return
    fi
    # Jaeger first, then the (stopped) API recreated with the exporter's variables; PostgreSQL
    # and the worker stay as they are.
    t0=$SECONDS
    if ! "${DCT[@]}" up -d jaeger >"$work/up-tracing.log" 2>&1; then
        tail -20 "$work/up-tracing.log"
        bad "compose --profile tracing up -d jaeger"
        return
    fi
    if wait_for 60 jget /api/services; then
        ok "Jaeger's query API answers on the published port $jport after $((SECONDS - t0)) s"
    else
        bad "Jaeger's query API not up within 60 s ($jcode)"
        "${DCT[@]}" logs --tail=20 jaeger
        return
    fi
    t0=$SECONDS
    if ! VIGIL_OTLP_ENDPOINT=http://jaeger:4318 VIGIL_TRACES_SAMPLER=parentbased_traceidratio \
        VIGIL_TRACES_SAMPLER_ARG=1.0 "${DCT[@]}" up -d api >>"$work/up-tracing.log" 2>&1; then
        tail -20 "$work/up-tracing.log"
        bad "compose --profile tracing up -d api (exporting to jaeger)"
        return
    fi
    if wait_for 60 ready_is 200; then
        ok "API recreated with tracing, /ready 200 after $((SECONDS - t0)) s"
    else
        bad "/ready not 200 within 60 s of recreating the API ($code)"
        "${DCT[@]}" logs --tail=20 api
        return
    fi
    local api_env jg_id
    api_id=$(cid api)
    jg_id=$("${DCT[@]}" ps -q jaeger 2>/dev/null)
    api_env=$(docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$api_id")
    check "API container exports to http://jaeger:4318, sampler parentbased_traceidratio 1.0" \
        test "$(grep -cxE 'OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4318|OTEL_TRACES_SAMPLER=parentbased_traceidratio|OTEL_TRACES_SAMPLER_ARG=1.0' <<<"$api_env")" = 3
    check "jaeger: read-only root fs, user '$(docker inspect -f '{{.Config.User}}' "$jg_id")'" \
        test "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}' "$jg_id")" = "true 10003:10000"

    # A user and a champion model in the policy, so the decision calls the worker.
    req POST "/api/v1/models?name=trace-demo" "${auth[@]}" -H 'Content-Type: application/json' \
        --data-binary @api/demo/demo_model.json
    local tmid=""
    [ "$code" = 201 ] && tmid=$(json 'd["id"]')
    req PUT /api/v1/policy "${auth[@]}" -H 'Content-Type: application/json' -d "{\"champion_model_id\":\"$tmid\",\"review_threshold\":0.5,\"block_threshold\":0.9,\"fallback_decision\":\"review\",\"scoring_timeout_ms\":5000}"
    local pcode=$code
    req POST /api/v1/users "${auth[@]}" -H 'Content-Type: application/json' \
        -d '{"external_id":"docker-trace-1","country":"DE"}'
    tuid=""
    [ "$code" = 201 ] && tuid=$(json 'd["id"]')
    if [ -z "$tmid" ] || [ "$pcode" != 200 ] || [ -z "$tuid" ]; then
        bad "decision set-up: model ${tmid:-none}, PUT policy $pcode, user ${tuid:-none}"
        return
    fi
    ok "api/demo/demo_model.json is the policy's champion, user $tuid"

    local tid psid rtp server_id
    tid=$(random_hex 16)
    psid=$(random_hex 8)
    txn "00-$tid-$psid-01"
    check "POST /api/v1/transactions with traceparent 00-$tid-$psid-01 -> 201 ($code)" test "$code" = 201
    check "scored by the worker ($(json '"decision %s, score %s, degraded %s" % tuple(d["risk"].get(k) for k in ("decision", "score", "degraded"))' 2>/dev/null))" scored
    rtp=$(tr -d '\r' <"$work/headers" | awk -F': ' 'tolower($1) == "traceparent" { print $2 }')
    server_id=${rtp:36:16}
    check "response traceparent $rtp: the same trace, a new span, sampled" \
        test "${rtp:0:36}" = "00-$tid-" -a "${#rtp}" = 55 -a "${rtp:52}" = -01 -a "$server_id" != "$psid"
    # Spans leave in batches (OTEL_BSP_SCHEDULE_DELAY, 5 s by default), the worker's possibly in
    # another batch than the server span's: poll until the whole tree is there (or 60 s).
    t0=$SECONDS
    trace_ready() {
        jget "/api/traces/$tid" && trace_checks "$work/jbody" "$tid" "$psid" "$server_id" "$tuid" >/dev/null
    }
    wait_for 60 trace_ready
    echo "  info  trace polled for $((SECONDS - t0)) s (Jaeger answered $jcode)"
    trace_checks "$work/jbody" "$tid" "$psid" "$server_id" "$tuid" >"$work/trace-checks.txt"
    report_checks "$work/trace-checks.txt"
    # Both processes log about this request (the worker: loading the new model) with its trace id.
    docker logs "$api_id" >"$work/api-traced.log" 2>&1
    docker logs "$(cid hotpath)" >"$work/hotpath-traced.log" 2>&1
    check "API log: the request line carries trace_id $tid and span_id $server_id" \
        log_has "$work/api-traced.log" event=request trace_id="$tid" span_id="$server_id"
    check "worker log: a line with trace_id $tid" log_has "$work/hotpath-traced.log" trace_id="$tid"

    # Jaeger stopped: decisions answer as before, the spans are dropped and counted.
    local before exported after
    "${DCT[@]}" stop -t 5 jaeger >"$work/stop-jaeger.log" 2>&1
    check "jaeger stopped" test "$(docker inspect -f '{{.State.Running}}' "$jg_id")" = false
    read -r before exported < <(span_counts)
    check "vigil_trace_spans_exported_total > 0 before ($exported)" test "$exported" -gt 0
    txn "00-$(random_hex 16)-$(random_hex 8)-01"
    check "with Jaeger stopped: POST /api/v1/transactions -> 201 ($code)" test "$code" = 201
    check "with Jaeger stopped: scored by the worker" scored
    dropped_grew() {
        read -r after _ < <(span_counts)
        [ "$after" -gt "$before" ]
    }
    t0=$SECONDS
    after=$before
    if wait_for 60 dropped_grew; then
        ok "vigil_trace_spans_dropped_total grows ($before -> $after within $((SECONDS - t0)) s)"
    else
        bad "vigil_trace_spans_dropped_total did not grow within 60 s ($before -> $after)"
    fi
    req GET /ready
    check "with Jaeger stopped: /ready 200 ($code)" test "$code" = 200
}
tracing_section
echo "  info  tracing section: $((SECONDS - t_tracing)) s"

finish
