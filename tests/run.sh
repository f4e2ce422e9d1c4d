#!/usr/bin/env bash
# run.sh BIN_DIR [lint|unit|e2e|docker|all] - runs the clang-format check (make lint, one check),
# the Check test binaries built under BIN_DIR/tests, the script checks (one test each:
# tests/tools/apigraph.py, tests/tools/funclen.py and tests/tools/openapi_check.py's document and
# selftest checks with the unit stage; its responses check, over every answer the e2e binaries
# received, after the e2e stage) and, for "all" and "docker", docker/test.sh when a Docker engine
# answers; prints one closing line "N passed, N failed, N skipped" adding up the lint check,
# Check's per-binary summaries, the script checks and docker/test.sh's own lines.
# A test that cannot test what it is for on this build says so on a line of its own,
#   SKIPPED: <binary>: <test>: <reason>
# (tests/lib/skip.h); each such line moves one test from "passed" to "skipped".  Each e2e binary
# gets its own temp root, swept afterwards so no server outlives the run even when a test binary
# crashes.  Before the closing lines: the slowest steps with their wall-clock seconds (the whole
# run should stay well under 15 minutes; this says where it goes).
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${1:-bin}
what=${2:-all}
export VIGIL_BIN_DIR=$bin
export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-120}

passed=0 failed=0 skipped=0 bad_bins=()
timings=() # "SECONDS NAME" per step
started=$SECONDS
# What each failure said, printed again just above the closing lines: CI keeps the tail of a run.
fail_lines=()
sweep() {
  local root=$1
  # Stop any PostgreSQL cluster or vigil process left under this root, then remove it.
  for pid in $(pgrep -f -- "$root" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  rm -rf "$root"
}

run_one() {
  local t=$1 out rc root t0=$SECONDS
  root=$(mktemp -d /tmp/vigil-test.XXXXXX)
  chmod 755 "$root"
  echo "=== $(basename "$t")"
  out=$(VIGIL_TEST_TMP=$root "$t" 2>&1)
  rc=$?
  echo "$out"
  sweep "$root"
  timings+=("$((SECONDS - t0)) $(basename "$t")")
  local line c f e s
  line=$(echo "$out" | grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' | tail -n 1)
  if [ -n "$line" ]; then
    c=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
    f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
    e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
    s=$(echo "$out" | grep -c '^SKIPPED: ')
    passed=$((passed + c - f - e - s))
    failed=$((failed + f + e))
    skipped=$((skipped + s))
  fi
  if [ $rc -ne 0 ] || [ -z "$line" ]; then
    while IFS= read -r l; do fail_lines+=("$(basename "$t"): $l"); done \
      < <(echo "$out" | grep -E ':[EF]:' | head -n 10)
    bad_bins+=("$(basename "$t") (exit $rc)")
    [ -z "$line" ] && failed=$((failed + 1))
  fi
}

# A check that is a script rather than a Check binary: one test, passed when it exits 0.
run_script() {
  local name=$1 out rc t0=$SECONDS
  shift
  echo "=== $name"
  out=$("$@" 2>&1)
  rc=$?
  echo "$out"
  timings+=("$((SECONDS - t0)) $name")
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    while IFS= read -r l; do fail_lines+=("$name: $l"); done < <(echo "$out" | tail -n 12)
    bad_bins+=("$name (exit $rc)")
  fi
}

# Objects of the build whose binaries are tested (bin -> build/release, bin/asan -> build/asan).
objdir=build/release
case "$bin" in *asan*) objdir=build/asan ;; esac

shopt -s nullglob
if [ "$what" = all ] || [ "$what" = lint ]; then
  echo "=== lint (make lint: clang-format --dry-run --Werror on every tracked .c/.h)"
  if out=$(make --no-print-directory -s lint 2>&1); then
    echo "lint: clean"
    passed=$((passed + 1))
  else
    echo "$out" | head -n 60
    failed=$((failed + 1))
    bad_bins+=("make lint")
  fi
fi
if [ "$what" = all ] || [ "$what" = unit ]; then
  for t in "$bin"/tests/test_*; do run_one "$t"; done
  # The include/call graph of api/ has no cycle (tests/tools/apigraph.py).
  run_script apigraph /usr/bin/python3 tests/tools/apigraph.py "$objdir/api" api
  # No function in api/ is longer than ~80 lines (tests/tools/funclen.py).
  run_script funclen /usr/bin/python3 tests/tools/funclen.py api 80
  # The OpenAPI document validates against the OpenAPI 3.1 meta-schema, and its checks can fail.
  run_script "openapi document" /usr/bin/python3 tests/tools/openapi_check.py document \
    build/openapi.json tests/fixtures/openapi/schema-3.1-2022-10-07.json
  run_script "openapi selftest" /usr/bin/python3 tests/tools/openapi_check.py selftest \
    build/openapi.json tests/fixtures/openapi/schema-3.1-2022-10-07.json
fi
if [ "$what" = all ] || [ "$what" = e2e ]; then
  # Every answer the e2e client receives is appended to this log (tests/e2e/resplog.h); the
  # openapi stage then validates each against the OpenAPI document (one python process).
  resplog="$objdir/e2e-responses.ndjson"
  mkdir -p "$objdir" && : >"$resplog"
  export VIGIL_E2E_RESPONSE_LOG="$PWD/$resplog"
  for t in "$bin"/tests/e2e_*; do run_one "$t"; done
  unset VIGIL_E2E_RESPONSE_LOG
  run_script "openapi responses ($resplog)" \
    /usr/bin/python3 tests/tools/openapi_check.py responses build/openapi.json "$resplog"
fi

if [ "$what" = all ] || [ "$what" = docker ]; then
  if [ "$bin" != bin ]; then
    echo "=== docker-test: skipped (runs against the release build in bin/ only)"
  elif ! docker info >/dev/null 2>&1; then
    echo "=== docker-test: skipped (no Docker engine answers 'docker info')"
  else
    echo "=== docker-test"
    t0=$SECONDS
    out=$(bash docker/test.sh 2>&1)
    rc=$?
    echo "$out"
    timings+=("$((SECONDS - t0)) docker-test")
    line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -n "$line" ]; then
      passed=$((passed + $(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')))
      failed=$((failed + $(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
      # docker/test.sh says "(N skipped)" on the line before its closing line.
      s=$(echo "$out" | sed -nE 's/^\(([0-9]+) skipped\)$/\1/p' | tail -n 1)
      skipped=$((skipped + ${s:-0}))
    else
      failed=$((failed + 1))
    fi
    [ $rc -ne 0 ] && bad_bins+=("docker/test.sh (exit $rc)")
  fi
fi

if [ ${#timings[@]} -gt 0 ]; then
  echo "slowest steps (wall-clock s; whole run $((SECONDS - started)) s):" \
    "$(printf '%s\n' "${timings[@]}" | sort -rn | head -n 8 | sed -E 's/^([0-9]+) (.*)$/\2 \1 s;/' | paste -sd' ')"
fi
if [ ${#bad_bins[@]} -gt 0 ]; then
  echo "what failed (again, from above):"
  for l in "${fail_lines[@]}"; do echo "  ${l:0:300}"; done
  echo "failing test binaries: ${bad_bins[*]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ ${#bad_bins[@]} -eq 0 ] && [ "$passed" -gt 0 ]
